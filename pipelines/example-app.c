/* feremotion-example: how an application reads the emotion metadata.
 *
 *   feremotion-example [--model M] FILE
 *   feremotion-example [--model M] --pipeline "DESCRIPTION"
 *
 * Builds `filesrc location=FILE ! decodebin ! videoconvert ! facedetect
 * display=false ! feremotion model=M mode=roi ! fakesink` for a photo or a
 * video (every frame of it), or runs any description with an element named
 * `feremotion`, whose model --model then sets (a name such as `fast`, the
 * default, or a .safetensors file), and prints one line per face from the
 * GstFerEmotionMeta that feremotion attaches:
 *
 *   pts=0:00:00.000000000 face 175,64 97x97 track 1: happy (0.31) [angry=0.12 ...]
 *
 * (the track id tells the faces of a video apart from frame to frame).
 *
 * It uses only the installed API: gstreamer-1.0 and gst-feremotion-1.0
 * (gst/feremotion/gstferemotionmeta.h). Exits 1 on a pipeline error (a bad
 * model path, a missing element, a file that does not decode), 2 on bad
 * arguments, and 0 otherwise, printing how many faces it saw. */
#include <gst/gst.h>
#include <gst/feremotion/gstferemotionmeta.h>

typedef struct
{
  guint buffers;
  guint faces;
} ExampleCounts;

/* Runs in the streaming thread: the meta is only valid while the buffer is
 * alive, so it is read here rather than handed to the main thread. */
static GstPadProbeReturn
print_emotions (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  ExampleCounts *counts = user_data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  gpointer state = NULL;
  GstFerEmotionMeta *m;

  counts->buffers++;
  while ((m = gst_buffer_iterate_fer_emotion_meta (buf, &state))) {
    GString *line = g_string_new (NULL);

    g_string_append_printf (line,
        "pts=%" GST_TIME_FORMAT " face %d,%d %dx%d track %d: %s (%.2f) [",
        GST_TIME_ARGS (GST_BUFFER_PTS (buf)), m->x, m->y, m->w, m->h,
        m->track_id, m->label, m->confidence);
    for (guint i = 0; i < m->n_classes; i++)
      g_string_append_printf (line, "%s%s=%.2f", i ? " " : "",
          m->class_labels[i], m->probabilities[i]);
    g_string_append_c (line, ']');
    g_print ("%s\n", line->str);
    g_string_free (line, TRUE);
    counts->faces++;
  }
  return GST_PAD_PROBE_OK;
}

/* The file's path and the model's are set as properties below, so that no
 * file name needs quoting for the parser. decodebin gives a photo's one
 * frame or every frame of a video. mode=roi: a frame without a detected
 * face has nothing to classify. */
#define FILE_PIPELINE                                                          \
  "filesrc name=file ! decodebin ! videoconvert "                              \
  "! facedetect display=false min-size-width=48 min-size-height=48 "           \
  "min-neighbors=5 ! feremotion name=feremotion mode=roi ! fakesink"

/* The elements this program needs, checked up front to say how to get
 * them rather than just that the pipeline does not parse. */
static gboolean
have_element (const gchar *name, const gchar *how)
{
  GstElementFactory *f = gst_element_factory_find (name);

  if (!f) {
    g_printerr (
        "feremotion-example: no GStreamer element \"%s\": %s\n", name, how);
    return FALSE;
  }
  gst_object_unref (f);
  return TRUE;
}

/* Returns TRUE at EOS, FALSE after printing the first error. */
static gboolean
run_until_done (GstElement *pipeline)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  gboolean ok = FALSE;
  GstMessage *msg;
  GstClockTime wait = GST_CLOCK_TIME_NONE;

  /* An element that fails its state change has already posted the error
   * that names the cause (feremotion: the model file and why), so it is
   * taken from the bus rather than waited for. */
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING)
      == GST_STATE_CHANGE_FAILURE)
    wait = 0;
  msg = gst_bus_timed_pop_filtered (
      bus, wait, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (!msg) {
    g_printerr ("feremotion-example: the pipeline did not start\n");
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    g_printerr ("feremotion-example: error from %s: %s\n%s\n",
        GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), err->message, dbg ? dbg : "");
    g_clear_error (&err);
    g_free (dbg);
  } else {
    ok = TRUE;
  }
  if (msg)
    gst_message_unref (msg);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  return ok;
}

int
main (int argc, char **argv)
{
  gchar *model = NULL, *description = NULL;
  const gchar *file_path = NULL;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model,
        "Emotion model: a name (default: fast) or a .safetensors file", "M" },
    { "pipeline", 'p', 0, G_OPTION_ARG_STRING, &description,
        "Pipeline description instead of the file pipeline; needs an "
        "element named feremotion",
        "DESC" },
    { NULL }
  };
  GOptionContext *ctx = g_option_context_new ("[FILE]");
  GError *error = NULL;
  GstElement *pipeline = NULL, *fer = NULL;
  GstPad *src = NULL;
  ExampleCounts counts = { 0, 0 };
  int status = 1;

  /* facedetect's constructor loads nose/mouth/eye cascades that Debian's
   * opencv-data does not ship, and OpenCV logs each miss as an error that
   * would read as ours; the face cascade it needs is present. */
  g_setenv ("OPENCV_LOG_LEVEL", "FATAL", FALSE);
  g_option_context_set_summary (ctx,
      "Prints the facial expression that "
      "feremotion attaches to each face of a photo or video FILE (or of any "
      "pipeline).");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("feremotion-example: %s\n", error->message);
    g_clear_error (&error);
    status = 2;
    goto out;
  }
  if (!description && argc != 2) {
    g_printerr ("feremotion-example: give one FILE, or --pipeline DESC\n");
    status = 2;
    goto out;
  }
  if (!description && !g_file_test (argv[1], G_FILE_TEST_IS_REGULAR)) {
    g_printerr ("feremotion-example: %s: no such file\n", argv[1]);
    status = 2;
    goto out;
  }
  if (!have_element ("feremotion",
          "build the project, and from a "
          "checkout set GST_PLUGIN_PATH to its build/gst"))
    goto out;
  if (!description) {
    if (!have_element ("facedetect", "install gstreamer1.0-opencv"))
      goto out;
    file_path = argv[1];
    description = g_strdup (FILE_PIPELINE);
  }

  pipeline = gst_parse_launch (description, &error);
  if (!pipeline) {
    g_printerr ("feremotion-example: could not build \"%s\": %s\n", description,
        error->message);
    g_clear_error (&error);
    goto out;
  }
  /* gst_parse_launch returns a pipeline with a missing element reported
   * only in `error`: refuse it rather than run something else. */
  if (error) {
    g_printerr ("feremotion-example: %s\n", error->message);
    g_clear_error (&error);
    goto out;
  }
  fer = gst_bin_get_by_name (GST_BIN (pipeline), "feremotion");
  if (!fer) {
    g_printerr ("feremotion-example: the pipeline has no element named "
                "\"feremotion\"\n");
    goto out;
  }
  if (model)
    g_object_set (fer, "model", model, NULL);
  if (file_path) {
    GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "file");
    g_object_set (src, "location", file_path, NULL);
    gst_object_unref (src);
  }
  src = gst_element_get_static_pad (fer, "src");
  gst_pad_add_probe (
      src, GST_PAD_PROBE_TYPE_BUFFER, print_emotions, &counts, NULL);

  if (run_until_done (pipeline)) {
    g_print ("%u buffer(s), %u face(s)\n", counts.buffers, counts.faces);
    status = 0;
  }

out:
  if (src)
    gst_object_unref (src);
  if (fer)
    gst_object_unref (fer);
  if (pipeline)
    gst_object_unref (pipeline);
  g_option_context_free (ctx);
  g_free (model);
  g_free (description);
  return status;
}
