/* feremotionexport: three buffers (0, 1 and 2 faces) give three JSON lines
 * that parse back to the pushed values, each on disk as soon as its buffer
 * has passed; buffers pass through uncopied; a
 * bad location fails the state change with an error naming the file; a
 * full disk is an element error, not a silent loss. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#include "feremotion/gstferemotionmeta.h"

#define FRAME_DURATION (GST_SECOND / 30)

static const gchar *const labels[] = { "angry", "disgust", "fear", "happy",
  "neutral", "sad", "surprise" };

typedef struct
{
  gint x, y, w, h, roi_id, track_id;
  gfloat probabilities[7];
  const gchar *label;
  gint label_id;
} Face;

static const Face faces[] = {
  { 40, 30, 120, 140, 0, 7, { 0.02f, 0.01f, 0.03f, 0.87f, 0.04f, 0.02f, 0.01f },
      "happy", 3 },
  { 200, 50, 90, 100, 0, 12, { 0.1f, 0.05f, 0.25f, 0.05f, 0.05f, 0.1f, 0.4f },
      "surprise", 6 },
};

typedef struct
{
  gchar *dir;
  gchar *location;
} TmpFile;

static void
tmp_file_init (TmpFile *t)
{
  t->dir = g_dir_make_tmp ("feremotionexport-XXXXXX", NULL);
  fail_unless (t->dir != NULL);
  t->location = g_build_filename (t->dir, "faces.jsonl", NULL);
}

static void
tmp_file_clear (TmpFile *t)
{
  g_unlink (t->location);
  g_rmdir (t->dir);
  g_free (t->location);
  g_free (t->dir);
}

static GstHarness *
export_harness (const gchar *location, const gchar *caps)
{
  GstElement *e = gst_element_factory_make ("feremotionexport", NULL);
  GstHarness *h;

  fail_unless (e != NULL);
  g_object_set (e, "location", location, NULL);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h, caps);
  return h;
}

static GstBuffer *
make_buffer (guint index, guint n_faces)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 64, NULL);

  GST_BUFFER_PTS (buf) = index * FRAME_DURATION;
  /* the first buffer has no duration: it must come out as null */
  if (index > 0)
    GST_BUFFER_DURATION (buf) = FRAME_DURATION;
  for (guint i = 0; i < n_faces; i++) {
    const Face *f = &faces[i];

    GstFerEmotionMeta *m = gst_buffer_add_fer_emotion_meta (buf, f->x, f->y,
        f->w, f->h, f->roi_id, G_N_ELEMENTS (labels), labels, f->probabilities);

    fail_unless (m != NULL);
    m->track_id = f->track_id;
  }
  return buf;
}

/* Pushes @buf, keeping a reference so that it is read-only in the element,
 * and checks that the very same buffer comes out. */
static void
push_passthrough (GstHarness *h, GstBuffer *buf)
{
  GstBuffer *out = gst_harness_push_and_pull (h, gst_buffer_ref (buf));

  fail_unless (out == buf);
  gst_buffer_unref (out);
  ASSERT_BUFFER_REFCOUNT (buf, "buf", 1);
  gst_buffer_unref (buf);
}

/* The file's lines, each parsed; fails on anything that is not one JSON
 * object per line. */
static GPtrArray *
read_lines (const gchar *location)
{
  GPtrArray *objects =
      g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  gchar *contents, **lines;
  GError *err = NULL;
  guint n;

  fail_unless (g_file_get_contents (location, &contents, NULL, &err), "%s",
      err ? err->message : "");
  fail_unless (g_str_has_suffix (contents, "\n"));
  lines = g_strsplit (contents, "\n", -1);
  n = g_strv_length (lines);
  for (guint i = 0; i + 1 < n; i++) {
    JsonParser *parser = json_parser_new ();
    JsonNode *root;

    fail_unless (json_parser_load_from_data (parser, lines[i], -1, &err),
        "line %u: %s", i + 1, err ? err->message : "");
    root = json_parser_get_root (parser);
    fail_unless (
        JSON_NODE_HOLDS_OBJECT (root), "line %u: not an object", i + 1);
    g_ptr_array_add (objects, json_object_ref (json_node_get_object (root)));
    g_object_unref (parser);
  }
  fail_unless_equals_string (lines[n - 1], "");
  g_strfreev (lines);
  g_free (contents);
  return objects;
}

static void
check_face (JsonObject *o, const Face *f)
{
  JsonObject *p = json_object_get_object_member (o, "probabilities");

  fail_unless_equals_int (json_object_get_int_member (o, "x"), f->x);
  fail_unless_equals_int (json_object_get_int_member (o, "y"), f->y);
  fail_unless_equals_int (json_object_get_int_member (o, "w"), f->w);
  fail_unless_equals_int (json_object_get_int_member (o, "h"), f->h);
  fail_unless_equals_int (json_object_get_int_member (o, "roi_id"), f->roi_id);
  /* both faces have roi_id 0 (facedetect's): the track tells them apart */
  fail_unless (json_object_has_member (o, "track_id"));
  fail_unless_equals_int (
      json_object_get_int_member (o, "track_id"), f->track_id);
  fail_unless_equals_string (
      json_object_get_string_member (o, "label"), f->label);
  fail_unless_equals_int (
      json_object_get_int_member (o, "label_id"), f->label_id);
  fail_unless_equals_float (json_object_get_double_member (o, "confidence"),
      f->probabilities[f->label_id]);
  fail_unless (p != NULL);
  fail_unless_equals_int (json_object_get_size (p), G_N_ELEMENTS (labels));
  for (guint i = 0; i < G_N_ELEMENTS (labels); i++)
    fail_unless_equals_float (
        json_object_get_double_member (p, labels[i]), f->probabilities[i]);
}

static void
check_line (JsonObject *o, guint index, guint n_faces, gint width, gint height)
{
  JsonArray *a = json_object_get_array_member (o, "faces");

  fail_unless_equals_uint64 (
      json_object_get_int_member (o, "pts"), index * FRAME_DURATION);
  if (index == 0)
    fail_unless (json_object_get_null_member (o, "duration"));
  else
    fail_unless_equals_uint64 (
        json_object_get_int_member (o, "duration"), FRAME_DURATION);
  fail_unless_equals_int (json_object_get_int_member (o, "width"), width);
  fail_unless_equals_int (json_object_get_int_member (o, "height"), height);
  fail_unless (a != NULL);
  fail_unless_equals_int (json_array_get_length (a), n_faces);
  for (guint i = 0; i < n_faces; i++)
    check_face (json_array_get_object_element (a, i), &faces[i]);
}

GST_START_TEST (test_three_buffers)
{
  TmpFile t;
  GstHarness *h;
  GPtrArray *lines;

  tmp_file_init (&t);
  h = export_harness (t.location,
      "video/x-raw,format=I420,width=320,height=240,framerate=30/1");
  /* each buffer's line is on disk, whole, once the buffer has passed: no
   * EOS, no state change (a pipeline killed then loses nothing it passed) */
  for (guint i = 0; i < 3; i++) {
    push_passthrough (h, make_buffer (i, i));
    lines = read_lines (t.location);
    fail_unless_equals_int (lines->len, i + 1);
    check_line (g_ptr_array_index (lines, i), i, i, 320, 240);
    g_ptr_array_unref (lines);
  }
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));

  /* read before teardown */
  lines = read_lines (t.location);
  fail_unless_equals_int (lines->len, 3);
  for (guint i = 0; i < 3; i++)
    check_line (g_ptr_array_index (lines, i), i, i, 320, 240);

  g_ptr_array_unref (lines);
  gst_harness_teardown (h);
  tmp_file_clear (&t);
}

GST_END_TEST;

GST_START_TEST (test_only_buffers_with_faces)
{
  TmpFile t;
  GstHarness *h;
  GPtrArray *lines;

  tmp_file_init (&t);
  h = export_harness (
      t.location, "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  g_object_set (h->element, "all-buffers", FALSE, NULL);
  for (guint i = 0; i < 3; i++)
    push_passthrough (h, make_buffer (i, i));
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));

  lines = read_lines (t.location);
  fail_unless_equals_int (lines->len, 2);
  check_line (g_ptr_array_index (lines, 0), 1, 1, 64, 48);
  check_line (g_ptr_array_index (lines, 1), 2, 2, 64, 48);

  g_ptr_array_unref (lines);
  gst_harness_teardown (h);
  tmp_file_clear (&t);
}

GST_END_TEST;

/* Never mapped, so any raw video goes: other memory, any format. */
GST_START_TEST (test_any_raw_video)
{
  TmpFile t;
  GstHarness *h;
  GPtrArray *lines;

  tmp_file_init (&t);
  h = export_harness (t.location,
      "video/x-raw(memory:DMABuf),format=NV12,"
      "width=1920,height=1080,framerate=25/1");
  push_passthrough (h, make_buffer (1, 1));
  gst_harness_teardown (h);

  lines = read_lines (t.location);
  fail_unless_equals_int (lines->len, 1);
  check_line (g_ptr_array_index (lines, 0), 1, 1, 1920, 1080);
  g_ptr_array_unref (lines);
  tmp_file_clear (&t);
}

GST_END_TEST;

/* JSON has no NaN: a broken model's output is written as null. */
GST_START_TEST (test_nan_is_null)
{
  gfloat nan[G_N_ELEMENTS (labels)];
  TmpFile t;
  GstHarness *h;
  GstBuffer *buf;
  GPtrArray *lines;
  JsonObject *f, *p;

  for (guint i = 0; i < G_N_ELEMENTS (nan); i++)
    nan[i] = NAN;
  tmp_file_init (&t);
  h = export_harness (
      t.location, "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  buf = make_buffer (1, 0);
  fail_unless (gst_buffer_add_fer_emotion_meta (
                   buf, 0, 0, 64, 48, -1, G_N_ELEMENTS (labels), labels, nan)
      != NULL);
  push_passthrough (h, buf);
  gst_harness_teardown (h);

  lines = read_lines (t.location);
  fail_unless_equals_int (lines->len, 1);
  f = json_array_get_object_element (
      json_object_get_array_member (g_ptr_array_index (lines, 0), "faces"), 0);
  fail_unless (json_object_get_null_member (f, "confidence"));
  p = json_object_get_object_member (f, "probabilities");
  for (guint i = 0; i < G_N_ELEMENTS (labels); i++)
    fail_unless (json_object_get_null_member (p, labels[i]));
  g_ptr_array_unref (lines);
  tmp_file_clear (&t);
}

GST_END_TEST;

/* Sets @location and goes to PAUSED, which must fail; returns the error
 * posted on the bus. */
static GError *
start_error (const gchar *location)
{
  GstElement *e = gst_element_factory_make ("feremotionexport", NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;
  gchar *debug = NULL;

  g_object_set (e, "location", location, NULL);
  gst_element_set_bus (e, bus);
  fail_unless_equals_int (
      gst_element_set_state (e, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error message on the bus");
  gst_message_parse_error (msg, &err, &debug);
  GST_INFO ("error: %s (%s)", err->message, debug);

  gst_message_unref (msg);
  g_free (debug);
  fail_unless_equals_int (
      gst_element_set_state (e, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
  return err;
}

GST_START_TEST (test_missing_directory)
{
  TmpFile t;
  gchar *location;
  GError *err;

  tmp_file_init (&t);
  location = g_build_filename (t.dir, "missing", "faces.jsonl", NULL);
  err = start_error (location);
  fail_unless (
      g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_WRITE),
      "%s", err->message);
  fail_unless (strstr (err->message, location) != NULL, "%s", err->message);
  g_error_free (err);
  g_free (location);
  tmp_file_clear (&t);
}

GST_END_TEST;

/* A location that is not UTF-8 (a file name is bytes): the error shows it
 * as valid UTF-8 (\xNN). */
GST_START_TEST (test_location_not_utf8)
{
  TmpFile t;
  tmp_file_init (&t);
  gchar *location = g_build_filename (t.dir, "missing", "caf\xE9.jsonl", NULL);
  GError *err = start_error (location);
  fail_unless (
      g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_WRITE),
      "%s", err->message);
  fail_unless (g_utf8_validate (err->message, -1, NULL), "not UTF-8");
  fail_unless (
      strstr (err->message, "caf\\xE9.jsonl") != NULL, "%s", err->message);
  g_error_free (err);
  g_free (location);
  tmp_file_clear (&t);
}

GST_END_TEST;

GST_START_TEST (test_empty_location)
{
  GError *err = start_error ("");

  fail_unless (
      g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND),
      "%s", err->message);
  g_error_free (err);
}

GST_END_TEST;

/* /dev/full fails every write with ENOSPC: the first buffer's line, written
 * as the buffer passes, reports it. */
GST_START_TEST (test_disk_full)
{
  GstElement *e;
  GstBus *bus;
  GstHarness *h;
  GstMessage *msg;
  GError *err = NULL;

  if (!g_file_test ("/dev/full", G_FILE_TEST_EXISTS))
    return;
  bus = gst_bus_new ();
  e = gst_element_factory_make ("feremotionexport", NULL);
  g_object_set (e, "location", "/dev/full", NULL);
  gst_element_set_bus (e, bus);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_harness_set_src_caps_str (
      h, "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");

  fail_unless_equals_int (
      gst_harness_push (h, make_buffer (0, 2)), GST_FLOW_ERROR);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "disk full went unreported");
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (g_error_matches (
                   err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NO_SPACE_LEFT),
      "%s", err->message);
  fail_unless (strstr (err->message, "/dev/full") != NULL, "%s", err->message);
  /* reported once, and closing still succeeds */
  gst_message_unref (msg);
  fail_unless_equals_int (
      gst_harness_push (h, make_buffer (1, 2)), GST_FLOW_ERROR);
  g_error_free (err);
  gst_harness_teardown (h);
  fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR) == NULL);

  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

GST_END_TEST;

/* The disk fills up in the middle of a line (simulated with a file size
 * limit, which needs no privileges: the kernel takes the bytes up to the
 * limit, then refuses with EFBIG): the error names the file, and the part
 * of the line that went in is cut off again, so the file ends with the
 * last whole line. */
GST_START_TEST (test_full_mid_line)
{
  TmpFile t;
  GstElement *e;
  GstBus *bus = gst_bus_new ();
  GstHarness *h;
  GstMessage *msg;
  GError *err = NULL;
  gchar *contents = NULL;
  gsize first_len, len;
  struct rlimit saved, limit;
  void (*saved_handler) (int);

  tmp_file_init (&t);
  e = gst_element_factory_make ("feremotionexport", NULL);
  g_object_set (e, "location", t.location, NULL);
  gst_element_set_bus (e, bus);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_harness_set_src_caps_str (
      h, "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");

  fail_unless_equals_int (
      gst_harness_push (h, make_buffer (0, 2)), GST_FLOW_OK);
  fail_unless (g_file_get_contents (t.location, &contents, &first_len, NULL));
  fail_unless (first_len > 20 && contents[first_len - 1] == '\n');
  g_free (contents);

  /* room for half of the next line */
  fail_unless (getrlimit (RLIMIT_FSIZE, &saved) == 0);
  limit = saved;
  limit.rlim_cur = first_len + first_len / 2;
  saved_handler = signal (SIGXFSZ, SIG_IGN);
  fail_unless (setrlimit (RLIMIT_FSIZE, &limit) == 0);
  fail_unless_equals_int (
      gst_harness_push (h, make_buffer (1, 2)), GST_FLOW_ERROR);
  fail_unless (setrlimit (RLIMIT_FSIZE, &saved) == 0);
  signal (SIGXFSZ, saved_handler);

  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "the failed write went unreported");
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (strstr (err->message, t.location) != NULL, "%s", err->message);
  g_error_free (err);
  gst_message_unref (msg);

  fail_unless (g_file_get_contents (t.location, &contents, &len, NULL));
  fail_unless_equals_int ((gint) len, (gint) first_len);
  fail_unless (contents[len - 1] == '\n');
  g_free (contents);

  gst_harness_teardown (h);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
  tmp_file_clear (&t);
}

GST_END_TEST;

GST_START_TEST (test_location_fixed_while_running)
{
  TmpFile t;
  GstHarness *h;
  GstElement *e;
  gchar *location;

  tmp_file_init (&t);
  h = export_harness (
      t.location, "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  e = gst_object_ref (h->element);

  ASSERT_WARNING (g_object_set (e, "location", "elsewhere.jsonl", NULL));
  g_object_get (e, "location", &location, NULL);
  fail_unless_equals_string (location, t.location);
  g_free (location);

  gst_harness_teardown (h);
  g_object_set (e, "location", "elsewhere.jsonl", NULL);
  g_object_get (e, "location", &location, NULL);
  fail_unless_equals_string (location, "elsewhere.jsonl");
  g_free (location);
  gst_object_unref (e);
  tmp_file_clear (&t);
}

GST_END_TEST;

/* The text of a buffer from a text pad. */
static gchar *
buffer_text (GstBuffer *buf)
{
  GstMapInfo map;
  gchar *text;

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  text = g_strndup ((const gchar *) map.data, map.size);
  gst_buffer_unmap (buf, &map);
  return text;
}

/* Pulls the next event of @h, which must be of @type. */
static GstEvent *
pull_event (GstHarness *h, GstEventType type)
{
  GstEvent *event = gst_harness_try_pull_event (h);

  fail_unless (event != NULL, "no %s event", gst_event_type_get_name (type));
  fail_unless_equals_string (gst_event_type_get_name (GST_EVENT_TYPE (event)),
      gst_event_type_get_name (type));
  return event;
}

/* A text pad's stream: stream-start (own id, @flags), utf8 caps, @title,
 * the video's time segment. */
static void
check_text_stream_start (GstHarness *h, const gchar *stream_name,
    GstStreamFlags flags, const gchar *title)
{
  GstEvent *event = pull_event (h, GST_EVENT_STREAM_START);
  const gchar *id;
  GstStreamFlags stream_flags;
  GstCaps *caps, *expected;
  GstTagList *tags;
  gchar *s = NULL;
  const GstSegment *segment;

  gst_event_parse_stream_start (event, &id);
  fail_unless (g_str_has_suffix (id, stream_name), "stream id %s", id);
  gst_event_parse_stream_flags (event, &stream_flags);
  fail_unless_equals_int (stream_flags, flags);
  gst_event_unref (event);

  event = pull_event (h, GST_EVENT_CAPS);
  gst_event_parse_caps (event, &caps);
  expected = gst_caps_from_string ("text/x-raw,format=utf8");
  fail_unless (
      gst_caps_is_equal_fixed (caps, expected), "caps %" GST_PTR_FORMAT, caps);
  gst_caps_unref (expected);
  gst_event_unref (event);

  event = pull_event (h, GST_EVENT_TAG);
  gst_event_parse_tag (event, &tags);
  fail_unless (gst_tag_list_get_string (tags, GST_TAG_TITLE, &s));
  fail_unless_equals_string (s, title);
  fail_unless_equals_int (gst_tag_list_get_scope (tags), GST_TAG_SCOPE_STREAM);
  g_free (s);
  gst_event_unref (event);

  event = pull_event (h, GST_EVENT_SEGMENT);
  gst_event_parse_segment (event, &segment);
  fail_unless_equals_int (segment->format, GST_FORMAT_TIME);
  gst_event_unref (event);
}

/* The next buffer of @h: @text at the video buffer's time. */
static void
check_text_buffer (GstHarness *h, const gchar *text, GstClockTime pts)
{
  GstBuffer *buf = gst_harness_try_pull (h);
  gchar *s;

  fail_unless (
      buf != NULL, "no text buffer at %" GST_TIME_FORMAT, GST_TIME_ARGS (pts));
  s = buffer_text (buf);
  fail_unless_equals_string (s, text);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), pts);
  /* the first video buffer has no duration: one frame of the caps' 30/1 */
  fail_unless_equals_uint64 (
      GST_BUFFER_DURATION (buf), gst_util_uint64_scale_int (GST_SECOND, 1, 30));
  g_free (s);
  gst_buffer_unref (buf);
}

static void
check_gap (GstHarness *h, GstClockTime pts)
{
  GstEvent *event = pull_event (h, GST_EVENT_GAP);
  GstClockTime ts, duration;

  gst_event_parse_gap (event, &ts, &duration);
  fail_unless_equals_uint64 (ts, pts);
  fail_unless_equals_uint64 (duration, FRAME_DURATION);
  gst_event_unref (event);
}

/* The file's lines as written, newlines stripped. */
static gchar **
raw_lines (const gchar *location)
{
  gchar *contents, **lines;

  fail_unless (g_file_get_contents (location, &contents, NULL, NULL));
  fail_unless (g_str_has_suffix (contents, "\n"));
  contents[strlen (contents) - 1] = '\0';
  lines = g_strsplit (contents, "\n", -1);
  g_free (contents);
  return lines;
}

/* Three buffers (one face, none, two faces): subtitle_src has "happy 87%",
 * a GAP, "happy 87%\nsurprise 40%"; json_src has the file's three lines;
 * EOS follows. With all-buffers=false the faceless buffer is a GAP on
 * json_src too. */
GST_START_TEST (test_text_pads)
{
  for (gint all_buffers = 1; all_buffers >= 0; all_buffers--) {
    GstHarness *h, *sub, *json;
    gchar **lines;
    TmpFile t;
    guint line = 0;

    tmp_file_init (&t);
    h = export_harness (t.location,
        "video/x-raw,format=I420,width=320,height=240,framerate=30/1");
    g_object_set (h->element, "all-buffers", all_buffers, NULL);
    sub = gst_harness_new_with_element (h->element, NULL, "subtitle_src");
    json = gst_harness_new_with_element (h->element, NULL, "json_src");
    push_passthrough (h, make_buffer (0, 1));
    push_passthrough (h, make_buffer (1, 0));
    push_passthrough (h, make_buffer (2, 2));
    fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
    lines = raw_lines (t.location);
    fail_unless_equals_int (g_strv_length (lines), all_buffers ? 3 : 2);

    check_text_stream_start (
        sub, "/subtitle", GST_STREAM_FLAG_SPARSE, "Emotions");
    check_text_buffer (sub, "happy 87%", 0);
    check_gap (sub, FRAME_DURATION);
    check_text_buffer (sub, "happy 87%\nsurprise 40%", 2 * FRAME_DURATION);
    gst_event_unref (pull_event (sub, GST_EVENT_EOS));
    fail_unless (gst_harness_try_pull_event (sub) == NULL);

    check_text_stream_start (
        json, "/json", GST_STREAM_FLAG_NONE, "Emotions (JSON lines)");
    check_text_buffer (json, lines[line++], 0);
    if (all_buffers)
      check_text_buffer (json, lines[line++], FRAME_DURATION);
    else
      check_gap (json, FRAME_DURATION);
    check_text_buffer (json, lines[line++], 2 * FRAME_DURATION);
    gst_event_unref (pull_event (json, GST_EVENT_EOS));
    fail_unless (gst_harness_try_pull_event (json) == NULL);
    fail_unless_equals_int (gst_harness_buffers_in_queue (json), 0);

    g_strfreev (lines);
    gst_harness_teardown (sub);
    gst_harness_teardown (json);
    gst_harness_teardown (h);
    tmp_file_clear (&t);
  }
}

GST_END_TEST;

/* With a text pad requested, location may stay unset: no file, the text
 * still flows. Without either, the state change fails (test_empty_location). */
/* An export without a file whose subtitle_src is requested before the
 * element starts (*sub), and its video harness (the return), started. */
static GstHarness *
subtitle_harnesses (GstHarness **sub)
{
  GstElement *e = gst_element_factory_make ("feremotionexport", NULL);
  *sub = gst_harness_new_with_element (e, NULL, "subtitle_src");
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_src_caps_str (
      h, "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");
  return h;
}

/* Pushes one buffer with a face and checks sub's stream and text. */
static void
push_and_check_subtitle (GstHarness *h, GstHarness *sub)
{
  push_passthrough (h, make_buffer (0, 1));
  check_text_stream_start (
      sub, "/subtitle", GST_STREAM_FLAG_SPARSE, "Emotions");
  check_text_buffer (sub, "happy 87%", 0);
  gst_harness_teardown (sub);
  gst_harness_teardown (h);
}

GST_START_TEST (test_text_pad_without_file)
{
  GstHarness *sub, *h = subtitle_harnesses (&sub);
  push_and_check_subtitle (h, sub);
}

GST_END_TEST;

/* A flush before the text pad's first buffer (a seek right after a pad
 * was requested): the flush passes on, and the first buffer still comes
 * after its stream-start, caps, title and segment. */
GST_START_TEST (test_flush_before_text)
{
  GstHarness *sub, *h = subtitle_harnesses (&sub);
  GstSegment segment;

  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  gst_segment_init (&segment, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  /* the flush first, then the stream as without it */
  GstEvent *start = gst_harness_try_pull_event (sub);
  GstEvent *stop = gst_harness_try_pull_event (sub);
  fail_unless (start && GST_EVENT_TYPE (start) == GST_EVENT_FLUSH_START);
  fail_unless (stop && GST_EVENT_TYPE (stop) == GST_EVENT_FLUSH_STOP);
  gst_event_unref (start);
  gst_event_unref (stop);
  push_and_check_subtitle (h, sub);
}

GST_END_TEST;

/* Pushes @n buffers with faces into @h and returns the first message of
 * @type the element posted on @bus, or NULL. */
static GstMessage *
push_faces_and_pop (GstHarness *h, GstBus *bus, guint n, GstMessageType type)
{
  for (guint i = 0; i < n; i++)
    gst_buffer_unref (gst_harness_push_and_pull (h, make_buffer (i, 1)));
  return gst_bus_pop_filtered (bus, type);
}

/* A pad requested and left unlinked: one warning that names it, and the
 * video goes on. */
GST_START_TEST (test_text_pad_not_linked)
{
  GstBus *bus = gst_bus_new ();
  GstHarness *h = export_harness (
      "/dev/null", "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  GstPad *pad = gst_element_request_pad_simple (h->element, "json_src");
  GError *err = NULL;
  gchar *debug = NULL;
  GstMessage *msg;

  fail_unless (pad != NULL);
  gst_element_set_bus (h->element, bus);
  msg = push_faces_and_pop (h, bus, 3, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL, "no warning for the unlinked pad");
  gst_message_parse_warning (msg, &err, &debug);
  GST_INFO ("warning: %s (%s)", err->message, debug);
  fail_unless (strstr (err->message, "json_src") != NULL, "%s", err->message);
  fail_unless (strstr (err->message, "not linked") != NULL, "%s", err->message);
  fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING) == NULL,
      "warned more than once");
  g_error_free (err);
  g_free (debug);
  gst_message_unref (msg);

  gst_element_release_request_pad (h->element, pad);
  gst_object_unref (pad);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Downstream of a text pad takes no UTF-8 text: the buffer's flow is
 * not-negotiated and the error names the pad. */
GST_START_TEST (test_text_pad_not_negotiated)
{
  GstBus *bus = gst_bus_new ();
  GstHarness *h = export_harness (
      "/dev/null", "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  GstHarness *sub =
      gst_harness_new_with_element (h->element, NULL, "subtitle_src");
  GError *err = NULL;
  gchar *debug = NULL;
  GstMessage *msg;

  gst_harness_set_sink_caps_str (sub, "text/x-raw,format=pango-markup");
  gst_element_set_bus (h->element, bus);
  fail_unless_equals_int (
      gst_harness_push (h, make_buffer (0, 1)), GST_FLOW_NOT_NEGOTIATED);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error");
  gst_message_parse_error (msg, &err, &debug);
  GST_INFO ("error: %s (%s)", err->message, debug);
  fail_unless (
      g_error_matches (err, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION), "%s",
      err->message);
  fail_unless (
      strstr (err->message, "subtitle_src") != NULL, "%s", err->message);
  g_error_free (err);
  g_free (debug);
  gst_message_unref (msg);

  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (sub);
  gst_harness_teardown (h);
}

GST_END_TEST;

static GstFlowReturn
release_subtitle_pad (GstPad *pad, GstObject *parent, GstBuffer *buf)
{
  GstElement *e = g_object_get_data (G_OBJECT (pad), "export");
  GstPad *subtitle = gst_element_get_static_pad (e, "subtitle_src");

  if (subtitle) {
    gst_element_release_request_pad (e, subtitle);
    gst_object_unref (subtitle);
  }
  gst_buffer_unref (buf);
  return GST_FLOW_OK;
}

/* subtitle_src released by another thread while a buffer is on its way
 * (here: by json_src's peer, which gets the text just before): the video
 * buffer still goes on, and the next ones too. */
GST_START_TEST (test_text_pad_released_while_playing)
{
  GstHarness *h = export_harness (
      "/dev/null", "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  GstPad *json = gst_element_request_pad_simple (h->element, "json_src");
  GstPad *sub = gst_element_request_pad_simple (h->element, "subtitle_src");
  GstPad *sink = gst_pad_new ("sink", GST_PAD_SINK);

  fail_unless (json != NULL && sub != NULL);
  g_object_set_data (G_OBJECT (sink), "export", h->element);
  gst_pad_set_chain_function (sink, release_subtitle_pad);
  gst_pad_set_active (sink, TRUE);
  fail_unless_equals_int (gst_pad_link (json, sink), GST_PAD_LINK_OK);
  for (guint i = 0; i < 3; i++)
    fail_unless_equals_int (
        gst_harness_push (h, make_buffer (i, 1)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_received (h), 3);
  fail_unless (gst_element_get_static_pad (h->element, "subtitle_src") == NULL);

  gst_element_release_request_pad (h->element, json);
  gst_object_unref (json);
  gst_object_unref (sub);
  gst_object_unref (sink);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* No allocation per buffer: once downstream gives a text buffer back, the
 * next text goes out in that very buffer (the pad's pool, which grows
 * once here, when the first longer text comes). */
GST_START_TEST (test_text_pool_reuse)
{
  GstHarness *h = export_harness (
      "/dev/null", "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  GstHarness *harnesses[2] = {
    gst_harness_new_with_element (h->element, NULL, "subtitle_src"),
    gst_harness_new_with_element (h->element, NULL, "json_src"),
  };
  gpointer first[2] = { NULL, NULL };

  for (guint i = 0; i < 20; i++) {
    gst_buffer_unref (
        gst_harness_push_and_pull (h, make_buffer (i, 1 + i % 2)));
    for (guint k = 0; k < 2; k++) {
      GstBuffer *buf = gst_harness_pull (harnesses[k]);

      fail_unless (buf->pool != NULL);
      /* the two-face line outgrows the pool the one-face line made */
      if (i == 1)
        first[k] = buf;
      fail_unless (
          i <= 1 || buf == first[k], "buffer %u on pad %u is a new one", i, k);
      gst_buffer_unref (buf);
    }
  }
  gst_harness_teardown (harnesses[0]);
  gst_harness_teardown (harnesses[1]);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A label with '<' and '>' (from a model's metadata) comes out as \u003c
 * and \u003e in the file and on json_src, and parses back unchanged; so do
 * a quote, a backslash and a tab (a meta any element may add); a label that
 * is not UTF-8 comes out quoted (\xNN), the line valid UTF-8. */
GST_START_TEST (test_angle_brackets)
{
  static const gchar *const odd[] = { "<b>a</b>", "q\"u\\o\tte", "caf\xE9" };
  static const gfloat p[] = { 0.5f, 0.3f, 0.2f };
  GstHarness *h, *json;
  GPtrArray *objects;
  GstBuffer *buf;
  gchar **lines, *text;
  JsonArray *a;
  TmpFile t;

  tmp_file_init (&t);
  h = export_harness (
      t.location, "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  json = gst_harness_new_with_element (h->element, NULL, "json_src");
  buf = gst_buffer_new_allocate (NULL, 64, NULL);
  GST_BUFFER_PTS (buf) = 0;
  fail_unless (
      gst_buffer_add_fer_emotion_meta (buf, 1, 2, 30, 30, 0, 3, odd, p));
  push_passthrough (h, buf);

  lines = raw_lines (t.location);
  fail_unless (strchr (lines[0], '<') == NULL && strchr (lines[0], '>') == NULL,
      "%s", lines[0]);
  fail_unless (strstr (lines[0], "\\u003cb\\u003ea\\u003c/b\\u003e") != NULL,
      "%s", lines[0]);
  buf = gst_harness_pull (json);
  text = buffer_text (buf);
  fail_unless_equals_string (text, lines[0]);
  objects = read_lines (t.location);
  a = json_object_get_array_member (g_ptr_array_index (objects, 0), "faces");
  fail_unless_equals_string (json_object_get_string_member (
                                 json_array_get_object_element (a, 0), "label"),
      "<b>a</b>");
  fail_unless (g_utf8_validate (lines[0], -1, NULL), "%s", lines[0]);
  JsonObject *probs = json_object_get_object_member (
      json_array_get_object_element (a, 0), "probabilities");
  fail_unless_equals_int (json_object_get_size (probs), 3);
  fail_unless (json_object_has_member (probs, "q\"u\\o\tte"), "%s", lines[0]);
  fail_unless (json_object_has_member (probs, "caf\\xE9"), "%s", lines[0]);
  fail_unless (
      fabs (json_object_get_double_member (probs, "q\"u\\o\tte") - 0.3) < 1e-7);

  g_ptr_array_unref (objects);
  g_free (text);
  gst_buffer_unref (buf);
  g_strfreev (lines);
  gst_harness_teardown (json);
  gst_harness_teardown (h);
  tmp_file_clear (&t);
}

GST_END_TEST;

static Suite *
feremotionexport_suite (void)
{
  Suite *s = suite_create ("feremotionexport");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_three_buffers);
  tcase_add_test (tc, test_only_buffers_with_faces);
  tcase_add_test (tc, test_any_raw_video);
  tcase_add_test (tc, test_nan_is_null);
  tcase_add_test (tc, test_missing_directory);
  tcase_add_test (tc, test_location_not_utf8);
  tcase_add_test (tc, test_empty_location);
  tcase_add_test (tc, test_disk_full);
  tcase_add_test (tc, test_full_mid_line);
  tcase_add_test (tc, test_location_fixed_while_running);
  tcase_add_test (tc, test_text_pads);
  tcase_add_test (tc, test_text_pad_without_file);
  tcase_add_test (tc, test_flush_before_text);
  tcase_add_test (tc, test_text_pad_not_linked);
  tcase_add_test (tc, test_text_pad_not_negotiated);
  tcase_add_test (tc, test_text_pad_released_while_playing);
  tcase_add_test (tc, test_text_pool_reuse);
  tcase_add_test (tc, test_angle_brackets);
  return s;
}

GST_CHECK_MAIN (feremotionexport);
