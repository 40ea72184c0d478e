/* Emotions inside the recording: videotestsrc frames with face ROI metas
 * (none on the first frames and on a run in the middle, two faces on
 * some) go through feremotion and feremotionexport, whose subtitle_src and
 * json_src are muxed by matroskamux next to the video; the file is then
 * demuxed by matroskademux and every frame is checked against the JSON
 * lines the export wrote in the same run: every video frame present, the
 * JSON track holding exactly the file's line for every frame at its PTS,
 * the subtitle track "label NN%" per face for every frame with faces and
 * nothing for the others, the tracks titled. The model is the shipped one
 * (the name "fast", found through FER_MODEL_PATH as the tests set it). */
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>


#define N_FRAMES 24
#define FPS 25 /* 40 ms frames: Matroska's millisecond ticks keep them exact */
#define FRAME_DURATION (GST_SECOND / FPS)

/* faces per frame: none at the start, one, none in the middle, two, one */
static guint
faces_in_frame (guint i)
{
  if (i < 3 || (i >= 8 && i < 15))
    return 0;
  return i >= 15 && i < 20 ? 2 : 1;
}

static GstPadProbeReturn
add_faces (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstBuffer *buf = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
  guint i = (guint) (GST_BUFFER_PTS (buf) / FRAME_DURATION);

  for (guint f = 0; f < faces_in_frame (i); f++)
    gst_buffer_add_video_region_of_interest_meta (
        buf, "face", 4 + 44 * f, 8 + i, 40, 40);
  GST_PAD_PROBE_INFO_DATA (info) = buf;
  return GST_PAD_PROBE_OK;
}

/* Plays @pipeline to EOS; fails on an error, a warning or a stall. */
static void
run_to_eos (GstElement *pipeline)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg;

  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING);
  fail_unless (msg != NULL, "no EOS within a minute: the pipeline stalled");
  if (GST_MESSAGE_TYPE (msg) != GST_MESSAGE_EOS) {
    GError *err = NULL;
    gchar *debug = NULL;

    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR)
      gst_message_parse_error (msg, &err, &debug);
    else
      gst_message_parse_warning (msg, &err, &debug);
    fail ("%s from %s: %s (%s)", GST_MESSAGE_TYPE_NAME (msg),
        GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), err->message, debug);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
}

static void
record (const gchar *model, const gchar *jsonl, const gchar *mkv)
{
  gchar *desc = g_strdup_printf (
      "videotestsrc num-buffers=%d pattern=ball "
      "! video/x-raw,format=I420,width=96,height=96,framerate=%d/1 "
      "! identity name=detector "
      "! feremotion model=%s mode=roi tta=1 "
      "! feremotionexport name=export location=%s "
      "! matroskamux name=mux ! filesink location=%s "
      "export.subtitle_src ! queue ! mux.subtitle_%%u "
      "export.json_src ! queue ! mux.subtitle_%%u",
      N_FRAMES, FPS, model, jsonl, mkv);
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &err);
  GstElement *detector;
  GstPad *pad;

  fail_unless (pipeline != NULL, "%s: %s", desc, err ? err->message : "");
  detector = gst_bin_get_by_name (GST_BIN (pipeline), "detector");
  pad = gst_element_get_static_pad (detector, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, add_faces, NULL, NULL);
  gst_object_unref (pad);
  gst_object_unref (detector);

  run_to_eos (pipeline);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  g_free (desc);
}

typedef struct
{
  GstClockTime pts, duration;
  gchar *text;
} Block;

static void
block_clear (Block *b)
{
  g_free (b->text);
}

static void
collect (GstElement *sink, GstBuffer *buf, GstPad *pad, GArray *blocks)
{
  GstMapInfo map;
  Block b = { GST_BUFFER_PTS (buf), GST_BUFFER_DURATION (buf), NULL };

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  b.text = g_strndup ((const gchar *) map.data, map.size);
  gst_buffer_unmap (buf, &map);
  g_array_append_val (blocks, b);
}

/* The title of the track that reached @sink. */
static gchar *
track_title (GstElement *sink)
{
  GstPad *pad = gst_element_get_static_pad (sink, "sink");
  gchar *title = NULL;
  GstEvent *event;

  for (guint i = 0;
       !title && (event = gst_pad_get_sticky_event (pad, GST_EVENT_TAG, i));
       i++) {
    GstTagList *tags;

    gst_event_parse_tag (event, &tags);
    gst_tag_list_get_string (tags, GST_TAG_TITLE, &title);
    gst_event_unref (event);
  }
  gst_object_unref (pad);
  return title;
}

/* matroskademux gives a UTF-8 text track as Pango markup, escaped */
static gchar *
unescape_markup (const gchar *s)
{
  static const gchar *const entities[][2] = { { "&quot;", "\"" },
    { "&apos;", "'" }, { "&lt;", "<" }, { "&gt;", ">" }, { "&amp;", "&" } };
  GString *out = g_string_new (NULL);

  while (*s) {
    gboolean replaced = FALSE;

    for (guint i = 0; i < G_N_ELEMENTS (entities) && !replaced; i++)
      if (g_str_has_prefix (s, entities[i][0])) {
        g_string_append (out, entities[i][1]);
        s += strlen (entities[i][0]);
        replaced = TRUE;
      }
    if (!replaced)
      g_string_append_c (out, *s++);
  }
  return g_string_free (out, FALSE);
}

/* The demuxed tracks: video, subtitle (track 1) and JSON (track 2). */
static void
demux (const gchar *mkv, GArray *tracks[3], gchar *titles[3])
{
  static const gchar *const names[] = { "video", "subtitle", "json" };
  gchar *desc =
      g_strdup_printf ("filesrc location=%s ! matroskademux name=d "
                       "d.video_0 ! queue ! fakesink name=video "
                       "d.subtitle_0 ! queue ! fakesink name=subtitle "
                       "d.subtitle_1 ! queue ! fakesink name=json",
          mkv);
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &err);

  fail_unless (pipeline != NULL, "%s: %s", desc, err ? err->message : "");
  for (guint t = 0; t < 3; t++) {
    GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), names[t]);

    tracks[t] = g_array_new (FALSE, FALSE, sizeof (Block));
    g_array_set_clear_func (tracks[t], (GDestroyNotify) block_clear);
    g_object_set (sink, "signal-handoffs", TRUE, "sync", FALSE, NULL);
    g_signal_connect (sink, "handoff", G_CALLBACK (collect), tracks[t]);
    gst_object_unref (sink);
  }
  run_to_eos (pipeline);
  for (guint t = 0; t < 3; t++) {
    GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), names[t]);

    titles[t] = track_title (sink);
    gst_object_unref (sink);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  g_free (desc);
}

static JsonObject *
parse_line (const gchar *line)
{
  JsonParser *parser = json_parser_new ();
  GError *err = NULL;
  JsonObject *o;

  fail_unless (json_parser_load_from_data (parser, line, -1, &err), "%s: %s",
      line, err ? err->message : "");
  o = json_object_ref (json_node_get_object (json_parser_get_root (parser)));
  g_object_unref (parser);
  return o;
}

/* What subtitle_src shows for a JSON line's faces, "" for none. */
static gchar *
subtitle_for (JsonObject *line)
{
  JsonArray *faces = json_object_get_array_member (line, "faces");
  GString *s = g_string_new (NULL);

  for (guint f = 0; f < json_array_get_length (faces); f++) {
    JsonObject *face = json_array_get_object_element (faces, f);
    gfloat c = (gfloat) json_object_get_double_member (face, "confidence");

    g_string_append_printf (s, "%s%s %d%%", f ? "\n" : "",
        json_object_get_string_member (face, "label"),
        (gint) (CLAMP (c, 0.0f, 1.0f) * 100.0f + 0.5f));
  }
  return g_string_free (s, FALSE);
}

GST_START_TEST (test_record_and_read_back)
{
  gchar *tmpdir = g_dir_make_tmp ("feremotion-record-XXXXXX", NULL);
  gchar *jsonl = g_build_filename (tmpdir, "rec.jsonl", NULL);
  gchar *mkv = g_build_filename (tmpdir, "rec.mkv", NULL);
  GArray *tracks[3];
  gchar *titles[3], *contents, **lines;
  guint n_subtitles = 0, n_faces = 0;
  GArray *video, *subtitle, *json;

  fail_unless (tmpdir != NULL);
  record ("fast", jsonl, mkv);
  demux (mkv, tracks, titles);
  video = tracks[0];
  subtitle = tracks[1];
  json = tracks[2];

  fail_unless_equals_string (titles[1], "Emotions");
  fail_unless_equals_string (titles[2], "Emotions (JSON lines)");

  fail_unless (g_file_get_contents (jsonl, &contents, NULL, NULL));
  fail_unless (g_str_has_suffix (contents, "\n"));
  contents[strlen (contents) - 1] = '\0';
  lines = g_strsplit (contents, "\n", -1);
  fail_unless_equals_int (g_strv_length (lines), N_FRAMES);
  /* no frame dropped, the faceless ones included */
  fail_unless_equals_int (video->len, N_FRAMES);
  fail_unless_equals_int (json->len, N_FRAMES);

  for (guint i = 0; i < N_FRAMES; i++) {
    Block *v = &g_array_index (video, Block, i);
    Block *j = &g_array_index (json, Block, i);
    JsonObject *line = parse_line (lines[i]);
    gint64 pts = json_object_get_int_member (line, "pts");
    guint faces =
        json_array_get_length (json_object_get_array_member (line, "faces"));
    gchar *text = unescape_markup (j->text);
    gchar *expected = subtitle_for (line);

    fail_unless_equals_int (faces, faces_in_frame (i));
    n_faces += faces;
    fail_unless_equals_uint64 (pts, i * FRAME_DURATION);
    fail_unless_equals_uint64 (v->pts, pts);
    fail_unless_equals_uint64 (j->pts, pts);
    fail_unless_equals_uint64 (j->duration, FRAME_DURATION);
    /* the very line, byte for byte */
    fail_unless_equals_string (text, lines[i]);

    if (faces > 0) {
      Block *s;

      fail_unless (n_subtitles < subtitle->len, "frame %u: no subtitle", i);
      s = &g_array_index (subtitle, Block, n_subtitles++);
      fail_unless_equals_uint64 (s->pts, pts);
      fail_unless_equals_uint64 (s->duration, FRAME_DURATION);
      fail_unless_equals_string (s->text, expected);
    }
    g_free (expected);
    g_free (text);
    json_object_unref (line);
  }
  /* frames without faces have no subtitle */
  fail_unless_equals_int (subtitle->len, n_subtitles);
  g_print ("%d frames, %u subtitles, %u faces: all match\n", N_FRAMES,
      n_subtitles, n_faces);

  for (guint t = 0; t < 3; t++) {
    g_array_unref (tracks[t]);
    g_free (titles[t]);
  }
  g_strfreev (lines);
  g_free (contents);
  g_unlink (jsonl);
  g_unlink (mkv);
  g_rmdir (tmpdir);
  g_free (jsonl);
  g_free (mkv);
  g_free (tmpdir);
}

GST_END_TEST;

static Suite *
record_suite (void)
{
  Suite *s = suite_create ("feremotion-record");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_record_and_read_back);
  return s;
}

GST_CHECK_MAIN (record);
