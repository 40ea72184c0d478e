/* feremotion element tests (GstHarness): every caps format, every mode,
 * metadata contents against libfernn's own answer, ROI params, bus
 * messages, bad models, state cycles, model swaps while playing, QoS. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include <fer/fer.h>
#include "feremotion/gstferemotionmeta.h"

#include "test-models.h"

static GstHarness *
harness (const char *props, const char *caps)
{
  char *desc = g_strdup_printf ("feremotion model=%s %s", model7, props);
  GstHarness *h = gst_harness_new_parse (desc);
  g_free (desc);
  gst_harness_set_src_caps_str (h, caps);
  return h;
}

/* A frame whose gray level at (x, y) is a fixed pattern, in any format:
 * RGB formats carry the gray value in every channel, YUV formats in luma
 * (full range) with neutral chroma. */
static GstBuffer *
pattern_buffer (GstVideoFormat format, int w, int h, guint seed)
{
  GstVideoInfo info;
  GstVideoFrame frame;
  gst_video_info_set_format (&info, format, w, h);
  info.colorimetry.range = GST_VIDEO_COLOR_RANGE_0_255;
  GstBuffer *buf = gst_buffer_new_and_alloc (GST_VIDEO_INFO_SIZE (&info));
  gst_buffer_memset (buf, 0, 128, GST_VIDEO_INFO_SIZE (&info));
  fail_unless (gst_video_frame_map (&frame, &info, buf, GST_MAP_WRITE));
  const GstVideoFormatInfo *fi = info.finfo;
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++) {
      guint8 g = (guint8) ((x * 7 + y * 13 + seed * 31 + (x * y) % 17) & 0xff);
      if (GST_VIDEO_FORMAT_INFO_IS_YUV (fi)
          || format == GST_VIDEO_FORMAT_GRAY8) {
        guint8 *row = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0)
            + y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
        row[x] = g;
      } else {
        guint8 *row = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0)
            + y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
        int ps = GST_VIDEO_FRAME_COMP_PSTRIDE (&frame, 0);
        for (int c = 0; c < 3; c++)
          row[x * ps + GST_VIDEO_FRAME_COMP_OFFSET (&frame, c)] = g;
      }
    }
  }
  gst_video_frame_unmap (&frame);
  GST_BUFFER_PTS (buf) = seed * GST_SECOND / 30;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 30;
  return buf;
}

/* libfernn's answer for the whole GRAY8 pattern frame. */
static void
reference_probs (const char *model, int w, int h, guint seed, int T,
    const fer_rect *face, float *probs)
{
  GError *error = NULL;
  fer_model_options opts;
  fer_model_options_init (&opts);
  opts.backend = FER_BACKEND_CPU;
  fer_model *m = fer_model_load (model, &opts, &error);
  GstBuffer *buf = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, w, h, seed);
  GstMapInfo map;
  fail_unless (m != NULL);
  gst_buffer_map (buf, &map, GST_MAP_READ);
  GstVideoInfo info;
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_GRAY8, w, h);
  fer_image img = { FER_PIXEL_GRAY8, w, h, { map.data },
    { GST_VIDEO_INFO_PLANE_STRIDE (&info, 0) }, TRUE };
  fer_rect whole = { 0, 0, (float) w, (float) h };
  fail_unless (
      fer_model_classify (m, &img, face ? face : &whole, 1, T, probs, &error));
  gst_buffer_unmap (buf, &map);
  gst_buffer_unref (buf);
  fer_model_free (m);
}

static void
assert_meta_valid (const GstFerEmotionMeta *m)
{
  double sum = 0;
  guint best = 0;
  fail_unless (m->n_classes >= 2);
  for (guint i = 0; i < m->n_classes; i++) {
    sum += m->probabilities[i];
    if (m->probabilities[i] > m->probabilities[best])
      best = i;
    fail_unless (m->class_labels[i] != NULL);
  }
  fail_unless (fabs (sum - 1.0) < 1e-4, "probabilities sum to %f", sum);
  fail_unless_equals_int (m->label_id, best);
  fail_unless_equals_string (m->label, m->class_labels[best]);
  fail_unless (m->confidence == m->probabilities[best]);
}

static guint
count_metas (GstBuffer *buf)
{
  gpointer state = NULL;
  guint n = 0;
  while (gst_buffer_iterate_fer_emotion_meta (buf, &state))
    n++;
  return n;
}

GST_START_TEST (test_caps_formats)
{
  static const GstVideoFormat formats[] = {
    GST_VIDEO_FORMAT_GRAY8,
    GST_VIDEO_FORMAT_RGB,
    GST_VIDEO_FORMAT_BGR,
    GST_VIDEO_FORMAT_RGBA,
    GST_VIDEO_FORMAT_BGRA,
    GST_VIDEO_FORMAT_RGBx,
    GST_VIDEO_FORMAT_BGRx,
    GST_VIDEO_FORMAT_xRGB,
    GST_VIDEO_FORMAT_ARGB,
    GST_VIDEO_FORMAT_I420,
    GST_VIDEO_FORMAT_NV12,
  };
  float ref[7];
  reference_probs (model7, 64, 48, 3, 1, NULL, ref);
  for (guint i = 0; i < G_N_ELEMENTS (formats); i++) {
    const char *name = gst_video_format_to_string (formats[i]);
    char *caps = g_strdup_printf ("video/x-raw,format=%s,width=64,height=48,"
                                  "framerate=30/1,colorimetry=%s",
        name,
        GST_VIDEO_FORMAT_INFO_IS_YUV (gst_video_format_get_info (formats[i]))
            ? "1:4:0:0"
            : "sRGB");
    GstHarness *h = harness ("tta=1", caps);
    GstBuffer *out =
        gst_harness_push_and_pull (h, pattern_buffer (formats[i], 64, 48, 3));
    fail_unless (out != NULL, "%s: no buffer", name);
    fail_unless_equals_int (count_metas (out), 1);
    GstFerEmotionMeta *m = gst_buffer_get_fer_emotion_meta (out);
    assert_meta_valid (m);
    fail_unless_equals_int (m->x, 0);
    fail_unless_equals_int (m->y, 0);
    fail_unless_equals_int (m->w, 64);
    fail_unless_equals_int (m->h, 48);
    fail_unless_equals_int (m->roi_id, -1);
    /* the same gray picture in every format: the same answer */
    double err = 0;
    for (int j = 0; j < 7; j++)
      err = fmax (err, fabs (m->probabilities[j] - ref[j]));
    GST_INFO ("%s: max probability difference to libfernn %g", name, err);
    fail_unless (err < 1e-4, "%s: probabilities differ by %g", name, err);
    gst_buffer_unref (out);
    gst_harness_teardown (h);
    g_free (caps);
  }
}

GST_END_TEST;

static GstVideoRegionOfInterestMeta *
add_roi (
    GstBuffer *buf, const char *type, gint x, gint y, gint w, gint h, gint id)
{
  GstVideoRegionOfInterestMeta *roi =
      gst_buffer_add_video_region_of_interest_meta (
          buf, type, (guint) x, (guint) y, (guint) w, (guint) h);
  roi->id = id;
  return roi;
}

static GstStructure *
roi_param (GstBuffer *buf, gint id)
{
  gpointer state = NULL;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered (
              buf, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
    if (roi->id == id)
      return gst_video_region_of_interest_meta_get_param (roi, "emotion");
  }
  return NULL;
}

GST_START_TEST (test_roi_mode)
{
  GstHarness *h = harness ("tta=5 mode=roi",
      "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");
  GstBuffer *in = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 64, 48, 1);
  add_roi (in, "face", 10, 8, 30, 30, 1);
  add_roi (in, "face", 5, 5, 0, 0, 2);         /* empty */
  add_roi (in, "face", -5, -5, 20, 20, 3);     /* negative: wraps around */
  add_roi (in, "face", 1000, 1000, 20, 20, 4); /* outside */
  add_roi (in, "face", 50, 30, 40, 40, 5);     /* partly outside */
  add_roi (in, "car", 0, 0, 64, 48, 6);        /* not a face */
  GstBuffer *out = gst_harness_push_and_pull (h, in);

  fail_unless_equals_int (count_metas (out), 2);
  GstFerEmotionMeta *a = gst_buffer_get_fer_emotion_meta_for_roi (out, 1);
  GstFerEmotionMeta *b = gst_buffer_get_fer_emotion_meta_for_roi (out, 5);
  fail_unless (a && b);
  assert_meta_valid (a);
  assert_meta_valid (b);
  fail_unless (a->x == 10 && a->y == 8 && a->w == 30 && a->h == 30);
  fail_unless (b->x == 50 && b->y == 30 && b->w == 14 && b->h == 18,
      "clipped box %d,%d %dx%d", b->x, b->y, b->w, b->h);

  float ref[7];
  fer_rect face = { 10, 8, 30, 30 };
  reference_probs (model7, 64, 48, 1, 5, &face, ref);
  for (int j = 0; j < 7; j++)
    fail_unless (fabs (a->probabilities[j] - ref[j]) < 1e-5);

  /* the ROI param, on the classified faces only */
  GstStructure *s = roi_param (out, 1);
  fail_unless (s != NULL);
  fail_unless_equals_string (gst_structure_get_string (s, "label"), a->label);
  gint label_id;
  gdouble conf;
  fail_unless (gst_structure_get_int (s, "label_id", &label_id));
  fail_unless_equals_int (label_id, a->label_id);
  fail_unless (gst_structure_get_double (s, "confidence", &conf));
  fail_unless (fabs (conf - a->confidence) < 1e-6);
  const GValue *probs = gst_structure_get_value (s, "probabilities");
  fail_unless_equals_int (gst_value_array_get_size (probs), 7);
  fail_unless (roi_param (out, 5) != NULL);
  for (int id = 2; id <= 4; id++)
    fail_unless (roi_param (out, id) == NULL);
  fail_unless (roi_param (out, 6) == NULL);
  gst_buffer_unref (out);

  /* roi mode and no ROI: nothing classified, buffer still passes */
  out = gst_harness_push_and_pull (
      h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 64, 48, 2));
  fail_unless_equals_int (count_metas (out), 0);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_frame_and_auto_modes)
{
  const char *caps =
      "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1";
  /* frame mode ignores ROIs */
  GstHarness *h = harness ("tta=1 mode=frame", caps);
  GstBuffer *in = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 64, 48, 1);
  add_roi (in, "face", 10, 8, 30, 30, 1);
  GstBuffer *out = gst_harness_push_and_pull (h, in);
  fail_unless_equals_int (count_metas (out), 1);
  fail_unless_equals_int (gst_buffer_get_fer_emotion_meta (out)->roi_id, -1);
  fail_unless (roi_param (out, 1) == NULL);
  gst_buffer_unref (out);
  gst_harness_teardown (h);

  /* auto on a stream without ROIs: each frame is a face crop */
  h = harness ("tta=1 mode=auto", caps);
  for (guint i = 0; i < 2; i++) {
    out = gst_harness_push_and_pull (
        h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 64, 48, i));
    fail_unless_equals_int (count_metas (out), 1);
    fail_unless_equals_int (gst_buffer_get_fer_emotion_meta (out)->roi_id, -1);
    gst_buffer_unref (out);
  }
  /* ... until a detector's face ROIs arrive: then only ROIs are faces */
  in = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 64, 48, 1);
  add_roi (in, "face", 10, 8, 30, 30, 7);
  add_roi (in, "face", 20, 10, 20, 20, 8);
  out = gst_harness_push_and_pull (h, in);
  fail_unless_equals_int (count_metas (out), 2);
  fail_unless (gst_buffer_get_fer_emotion_meta_for_roi (out, 7) != NULL);
  gst_buffer_unref (out);
  /* a frame where the detector found nothing: no emotion (issue 13, 1) */
  GstBus *bus = gst_bus_new ();
  gst_element_set_bus (fer (h), bus);
  out = gst_harness_push_and_pull (
      h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 64, 48, 2));
  fail_unless_equals_int (count_metas (out), 0);
  gst_buffer_unref (out);
  /* the bus message says which rule applied, with no face */
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT);
  fail_unless (msg != NULL);
  const GstStructure *st = gst_message_get_structure (msg);
  fail_unless_equals_string (gst_structure_get_string (st, "mode"), "roi");
  fail_unless_equals_int (
      gst_value_list_get_size (gst_structure_get_value (st, "faces")), 0);
  gst_message_unref (msg);
  /* ROIs of another type do not count as a detector's faces, and a frame
   * with only those gets nothing either once the stream had faces */
  in = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 64, 48, 3);
  add_roi (in, "car", 0, 0, 64, 48, 9);
  out = gst_harness_push_and_pull (h, in);
  fail_unless_equals_int (count_metas (out), 0);
  gst_buffer_unref (out);
  gst_message_unref (gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT));
  /* a new stream decides afresh */
  fail_unless (gst_harness_push_event (
      h, gst_event_new_stream_start ("another-stream")));
  gst_harness_set_src_caps_str (h, caps);
  out = gst_harness_push_and_pull (
      h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 64, 48, 4));
  fail_unless_equals_int (count_metas (out), 1);
  fail_unless_equals_int (gst_buffer_get_fer_emotion_meta (out)->roi_id, -1);
  gst_buffer_unref (out);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT);
  fail_unless (msg != NULL);
  fail_unless_equals_string (
      gst_structure_get_string (gst_message_get_structure (msg), "mode"),
      "frame");
  gst_message_unref (msg);
  gst_element_set_bus (fer (h), NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);

  /* auto on a stream with only "car" ROIs: still whole frames */
  h = harness ("tta=1 mode=auto", caps);
  in = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 64, 48, 3);
  add_roi (in, "car", 0, 0, 64, 48, 9);
  out = gst_harness_push_and_pull (h, in);
  fail_unless_equals_int (count_metas (out), 1);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_batch_size_and_tta)
{
  const char *caps =
      "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1";
  float results[3][4][7];
  const char *props[3] = { "tta=5 batch-size=0", "tta=5 batch-size=1",
    "tta=1" };
  for (int k = 0; k < 3; k++) {
    GstHarness *h = harness (props[k], caps);
    GstBuffer *in = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 64, 48, 4);
    for (int i = 0; i < 4; i++)
      add_roi (in, "face", 4 * i, 2 * i, 30 + i, 30, i + 1);
    GstBuffer *out = gst_harness_push_and_pull (h, in);
    fail_unless_equals_int (count_metas (out), 4);
    for (int i = 0; i < 4; i++) {
      GstFerEmotionMeta *m =
          gst_buffer_get_fer_emotion_meta_for_roi (out, i + 1);
      assert_meta_valid (m);
      memcpy (results[k][i], m->probabilities, sizeof results[k][i]);
    }
    gst_buffer_unref (out);
    gst_harness_teardown (h);
  }
  /* batching never changes an answer; TTA does */
  double same = 0, diff = 0;
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 7; j++) {
      same = fmax (same, fabs (results[0][i][j] - results[1][i][j]));
      diff = fmax (diff, fabs (results[0][i][j] - results[2][i][j]));
    }
  fail_unless (same < 1e-5, "batch-size changed probabilities by %g", same);
  fail_unless (diff > 1e-6, "tta=5 gave exactly tta=1's probabilities");
}

GST_END_TEST;

/* `as_array` (the GValueArray for PyGObject) holds the values of `values`
 * (a GstValueArray or GstValueList): doubles and strings equal; structures
 * equal but for a GstValueArray `probabilities`, which must be a GValueArray
 * of the same doubles. */
G_GNUC_BEGIN_IGNORE_DEPRECATIONS
static void
assert_python_copy (const GValue *as_array, const GValue *values)
{
  gboolean is_list = GST_VALUE_HOLDS_LIST (values);
  guint n = is_list ? gst_value_list_get_size (values)
                    : gst_value_array_get_size (values);
  const GValueArray *a;

  fail_unless (as_array && G_VALUE_HOLDS (as_array, g_value_array_get_type ()));
  a = g_value_get_boxed (as_array);
  fail_unless_equals_int (a->n_values, n);
  for (guint i = 0; i < n; i++) {
    const GValue *want = is_list ? gst_value_list_get_value (values, i)
                                 : gst_value_array_get_value (values, i);
    const GValue *got = &a->values[i];

    if (GST_VALUE_HOLDS_STRUCTURE (want)) {
      GstStructure *w = gst_structure_copy (gst_value_get_structure (want));
      GstStructure *g = gst_structure_copy (gst_value_get_structure (got));

      assert_python_copy (gst_structure_get_value (g, "probabilities"),
          gst_structure_get_value (w, "probabilities"));
      gst_structure_remove_field (w, "probabilities");
      gst_structure_remove_field (g, "probabilities");
      fail_unless (gst_structure_is_equal (w, g));
      gst_structure_free (w);
      gst_structure_free (g);
    } else {
      fail_unless_equals_int (gst_value_compare (want, got), GST_VALUE_EQUAL);
    }
  }
}
G_GNUC_END_IGNORE_DEPRECATIONS

GST_START_TEST (test_bus_message)
{
  GstHarness *h = harness ("tta=1 mode=roi",
      "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");
  GstBus *bus = gst_bus_new ();
  gst_element_set_bus (fer (h), bus);
  GstBuffer *in = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 64, 48, 5);
  add_roi (in, "face", 10, 8, 30, 30, 3);
  GstBuffer *out = gst_harness_push_and_pull (h, in);
  GstFerEmotionMeta *m = gst_buffer_get_fer_emotion_meta (out);

  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT);
  fail_unless (msg != NULL);
  const GstStructure *s = gst_message_get_structure (msg);
  fail_unless (gst_structure_has_name (s, "feremotion"));
  guint64 ts, rt, st;
  fail_unless (gst_structure_get_uint64 (s, "timestamp", &ts));
  fail_unless_equals_uint64 (ts, GST_BUFFER_PTS (out));
  fail_unless (gst_structure_get_uint64 (s, "running-time", &rt));
  fail_unless_equals_uint64 (rt, ts);
  fail_unless (gst_structure_get_uint64 (s, "stream-time", &st));
  const GValue *labels = gst_structure_get_value (s, "labels");
  fail_unless_equals_int (gst_value_array_get_size (labels), 7);
  const GValue *faces = gst_structure_get_value (s, "faces");
  fail_unless_equals_int (gst_value_list_get_size (faces), 1);
  const GstStructure *face =
      gst_value_get_structure (gst_value_list_get_value (faces, 0));
  gint x, w, roi_id;
  fail_unless (gst_structure_get_int (face, "x", &x) && x == 10);
  fail_unless (gst_structure_get_int (face, "width", &w) && w == 30);
  fail_unless (gst_structure_get_int (face, "roi-id", &roi_id) && roi_id == 3);
  fail_unless_equals_string (
      gst_structure_get_string (face, "label"), m->label);
  /* the same again as GValueArrays, the type PyGObject reads */
  assert_python_copy (gst_structure_get_value (s, "label-array"), labels);
  assert_python_copy (gst_structure_get_value (s, "face-array"), faces);
  gst_message_unref (msg);
  gst_buffer_unref (out);

  /* post-messages=false: silence */
  g_object_set (fer (h), "post-messages", FALSE, NULL);
  gst_buffer_unref (gst_harness_push_and_pull (
      h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 64, 48, 6)));
  fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT) == NULL);
  gst_element_set_bus (fer (h), NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Whether backend=auto finds a CUDA device here. */
static gboolean
cuda_device_present (void)
{
  fer_model_options opts;
  fer_model_options_init (&opts);
  opts.threads = 1;
  fer_model *m = fer_model_load (model7, &opts, NULL);
  gboolean cuda = m && fer_model_backend (m) == FER_BACKEND_CUDA;
  fer_model_free (m);
  return cuda;
}

/* Starting with this model/backend fails; the error names `needle`. */
static void
expect_start_error (const char *props, const char *needle)
{
  char *desc = g_strdup_printf ("feremotion %s", props);
  GstElement *e = gst_parse_launch (desc, NULL);
  GstBus *bus = gst_bus_new ();
  gst_element_set_bus (e, bus);
  fail_unless_equals_int (
      gst_element_set_state (e, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "%s: no error message", props);
  GError *err = NULL;
  gchar *debug = NULL;
  gst_message_parse_error (msg, &err, &debug);
  GST_INFO ("%s -> %s (%s)", props, err->message, debug);
  fail_unless (strstr (err->message, needle) || strstr (debug, needle),
      "'%s' / '%s' lacks '%s'", err->message, debug, needle);
  g_error_free (err);
  g_free (debug);
  gst_message_unref (msg);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
  g_free (desc);
}

GST_START_TEST (test_bad_models)
{
  char *missing = g_build_filename (tmpdir, "missing.safetensors", NULL);
  char *corrupt = g_build_filename (tmpdir, "corrupt.safetensors", NULL);
  char *props;
  fail_unless (
      g_file_set_contents (corrupt, "\x10\0\0\0\0\0\0\0{not json}", 18, NULL));

  props = g_strdup_printf ("model=%s", missing);
  expect_start_error (props, missing);
  g_free (props);
  props = g_strdup_printf ("model=%s", corrupt);
  expect_start_error (props, corrupt);
  g_free (props);
  if (!fer_have_cuda_build ()) {
    props = g_strdup_printf ("model=%s backend=cuda", model7);
    expect_start_error (props, "cuda");
    g_free (props);
  } else if (!cuda_device_present ()) {
    props = g_strdup_printf ("model=%s backend=cuda", model7);
    expect_start_error (props, "no CUDA device");
    g_free (props);
    props = g_strdup_printf ("model=%s backend=cuda device-id=3", model7);
    expect_start_error (props, "no CUDA device");
    g_free (props);
  }
  g_unlink (corrupt);
  g_free (missing);
  g_free (corrupt);
}

GST_END_TEST;

/* A model file name is bytes: the error of a missing or corrupt file with
 * a name that is not UTF-8, shared or not, and the warning of such a swap
 * while playing, show it as valid UTF-8 (\xNN), in the text and the debug
 * string alike. */
static void
assert_message_utf8 (GstMessage *msg)
{
  GError *err = NULL;
  gchar *debug = NULL;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR)
    gst_message_parse_error (msg, &err, &debug);
  else
    gst_message_parse_warning (msg, &err, &debug);
  GST_INFO ("%s (%s)", err->message, debug);
  fail_unless (g_utf8_validate (err->message, -1, NULL), "text not UTF-8");
  fail_unless (debug == NULL || g_utf8_validate (debug, -1, NULL),
      "debug string not UTF-8");
  fail_unless (strstr (err->message, "caf\\xE9") != NULL, "%s", err->message);
  g_error_free (err);
  g_free (debug);
}

GST_START_TEST (test_model_name_not_utf8)
{
  char *missing =
      g_build_filename (tmpdir, "caf\xE9-missing.safetensors", NULL);
  char *corrupt = g_build_filename (tmpdir, "caf\xE9.safetensors", NULL);
  fail_unless (
      g_file_set_contents (corrupt, "\x10\0\0\0\0\0\0\0{not json}", 18, NULL));
  const char *files[] = { missing, corrupt };
  for (int f = 0; f < 2; f++)
    for (int shared = 0; shared < 2; shared++) {
      GstElement *e = gst_element_factory_make ("feremotion", NULL);
      GstBus *bus = gst_bus_new ();
      gst_element_set_bus (e, bus);
      g_object_set (e, "model", files[f], "shared", shared, NULL);
      fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
          GST_STATE_CHANGE_FAILURE);
      GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
      fail_unless (msg != NULL);
      assert_message_utf8 (msg);
      gst_message_unref (msg);
      gst_element_set_state (e, GST_STATE_NULL);
      gst_element_set_bus (e, NULL);
      gst_object_unref (bus);
      gst_object_unref (e);
    }

  /* a swap to such a file while playing: a warning, the old model stays */
  GstHarness *h = harness (
      "tta=1", "video/x-raw,format=GRAY8,width=48,height=48,framerate=30/1");
  gst_buffer_unref (gst_harness_push_and_pull (
      h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, 1)));
  GstBus *bus = gst_bus_new ();
  gst_element_set_bus (fer (h), bus);
  g_object_set (fer (h), "model", corrupt, NULL);
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL);
  assert_message_utf8 (msg);
  gst_message_unref (msg);
  gst_element_set_bus (fer (h), NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  g_unlink (corrupt);
  g_free (missing);
  g_free (corrupt);
}

GST_END_TEST;

/* model=NAME: found in $FER_MODEL_PATH; the default, "fast", is the shipped
 * model (tests/meson.build points FER_MODEL_PATH at the source's models/);
 * a name that matches nothing fails with the names that exist. */
GST_START_TEST (test_model_names)
{
  const char *caps =
      "video/x-raw,format=GRAY8,width=48,height=48,framerate=30/1";
  GstHarness *h = gst_harness_new_parse ("feremotion tta=1");
  gchar *model = NULL;
  g_object_get (fer (h), "model", &model, NULL);
  fail_unless_equals_string (model, "fast");
  g_free (model);
  gst_harness_set_src_caps_str (h, caps);
  GstBuffer *out = gst_harness_push_and_pull (
      h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, 1));
  fail_unless_equals_int (gst_buffer_get_fer_emotion_meta (out)->n_classes, 7);
  gst_buffer_unref (out);
  gst_harness_teardown (h);

  g_setenv ("FER_MODEL_PATH", tmpdir, TRUE);
  h = gst_harness_new_parse ("feremotion model=m5 tta=1");
  gst_harness_set_src_caps_str (h, caps);
  out = gst_harness_push_and_pull (
      h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, 1));
  fail_unless_equals_int (gst_buffer_get_fer_emotion_meta (out)->n_classes, 5);
  gst_buffer_unref (out);
  gst_harness_teardown (h);

  expect_start_error ("model=nosuch", "models there: m5, m7");
  g_unsetenv ("FER_MODEL_PATH");
}

GST_END_TEST;

GST_START_TEST (test_state_cycles)
{
  char *desc = g_strdup_printf (
      "videotestsrc num-buffers=2 ! "
      "video/x-raw,format=GRAY8,width=48,height=48 ! feremotion model=%s "
      "tta=1 ! fakesink",
      model7);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  fail_unless (pipe != NULL);
  for (int i = 0; i < 50; i++) {
    fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING)
        != GST_STATE_CHANGE_FAILURE);
    fail_unless_equals_int (
        gst_element_get_state (pipe, NULL, NULL, GST_CLOCK_TIME_NONE),
        GST_STATE_CHANGE_SUCCESS);
    fail_unless_equals_int (
        gst_element_set_state (pipe, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  }
  gst_object_unref (pipe);
  g_free (desc);
}

GST_END_TEST;

GST_START_TEST (test_labels_and_latency)
{
  GstHarness *h = harness (
      "tta=1", "video/x-raw,format=GRAY8,width=48,height=48,framerate=30/1");
  gchar **labels = NULL;
  g_object_get (fer (h), "labels", &labels, NULL);
  fail_unless_equals_int (g_strv_length (labels), 7);
  fail_unless_equals_string (labels[3], "happy");
  g_strfreev (labels);
  gst_buffer_unref (gst_harness_push_and_pull (
      h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, 1)));
  /* the query is answered through us; a shared model's batcher may hold a
   * buffer for max-batch-wait (default 1 ms), which is our latency */
  fail_unless_equals_uint64 (gst_harness_query_latency (h), GST_MSECOND);
  GstBus *bus = gst_bus_new ();
  gst_element_set_bus (fer (h), bus);
  g_object_set (fer (h), "max-batch-wait", 50000, NULL);
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_LATENCY);
  fail_unless (msg != NULL, "no latency message after max-batch-wait");
  gst_message_unref (msg);
  gst_element_set_bus (fer (h), NULL);
  gst_object_unref (bus);
  fail_unless_equals_uint64 (gst_harness_query_latency (h), 50 * GST_MSECOND);
  gst_harness_teardown (h);
  /* a model of its own: nothing waits */
  h = harness ("tta=1 shared=false",
      "video/x-raw,format=GRAY8,width=48,height=48,framerate=30/1");
  fail_unless_equals_uint64 (gst_harness_query_latency (h), 0);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* What gst-inspect-1.0 shows: a real origin, one spelling of the authors
 * for all three elements, one late-buffer knob (`qos`, on by default:
 * GstBaseTransform's own `qos` is replaced, no `skip-late` beside it). */
GST_START_TEST (test_plugin_metadata)
{
  GstPlugin *plugin =
      gst_registry_find_plugin (gst_registry_get (), "feremotion");
  const char *elements[] = { "feremotion", "feremotionoverlay",
    "feremotionexport" };
  const char *author = NULL;

  fail_unless (plugin != NULL);
  fail_unless (
      strstr (gst_plugin_get_origin (plugin), "example.invalid") == NULL,
      "origin %s", gst_plugin_get_origin (plugin));
  gst_object_unref (plugin);
  for (guint i = 0; i < G_N_ELEMENTS (elements); i++) {
    GstElementFactory *f = gst_element_factory_find (elements[i]);
    const char *a =
        gst_element_factory_get_metadata (f, GST_ELEMENT_METADATA_AUTHOR);
    fail_unless (f != NULL);
    if (author)
      fail_unless_equals_string (a, author);
    author = a;
    gst_object_unref (f);
  }

  GstElement *e = gst_element_factory_make ("feremotion", NULL);
  GObjectClass *klass = G_OBJECT_GET_CLASS (e);
  GParamSpec *qos = g_object_class_find_property (klass, "qos");
  fail_unless (g_object_class_find_property (klass, "skip-late") == NULL);
  fail_unless (qos != NULL && qos->owner_type == G_OBJECT_TYPE (e));
  fail_unless (G_PARAM_SPEC_BOOLEAN (qos)->default_value);
  gboolean on;
  g_object_get (e, "qos", &on, NULL);
  fail_unless (on);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_qos_skips_inference_not_buffers)
{
  GstHarness *h = harness (
      "tta=1", "video/x-raw,format=GRAY8,width=48,height=48,framerate=30/1");
  gst_buffer_unref (gst_harness_push_and_pull (
      h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, 0)));
  /* downstream: the buffer at 1 s was 1 s late */
  fail_unless (gst_harness_push_upstream_event (h,
      gst_event_new_qos (GST_QOS_TYPE_UNDERFLOW, 0.5, GST_SECOND, GST_SECOND)));
  GstBuffer *late = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, 1);
  GST_BUFFER_PTS (late) = 2 * GST_SECOND;
  GstBuffer *out = gst_harness_push_and_pull (h, late);
  fail_unless (out != NULL);
  fail_unless_equals_int (count_metas (out), 0);
  gst_buffer_unref (out);
  GstBuffer *on_time = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, 1);
  GST_BUFFER_PTS (on_time) = 10 * GST_SECOND;
  out = gst_harness_push_and_pull (h, on_time);
  fail_unless_equals_int (count_metas (out), 1);
  gst_buffer_unref (out);
  /* a buffer before the segment has no running time: never late (its
   * duration added to GST_CLOCK_TIME_NONE wrapped to 33 ms, "late") */
  GstSegment seg;
  gst_segment_init (&seg, GST_FORMAT_TIME);
  seg.start = seg.time = 5 * GST_SECOND;
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));
  fail_unless (gst_harness_push_upstream_event (h,
      gst_event_new_qos (GST_QOS_TYPE_UNDERFLOW, 0.5, GST_SECOND, GST_SECOND)));
  GstBuffer *outside = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, 1);
  GST_BUFFER_PTS (outside) = GST_SECOND;
  GST_BUFFER_DURATION (outside) = GST_SECOND / 30;
  out = gst_harness_push_and_pull (h, outside);
  fail_unless_equals_int (count_metas (out), 1);
  gst_buffer_unref (out);
  /* qos=false: always inference */
  g_object_set (fer (h), "qos", FALSE, NULL);
  fail_unless (gst_harness_push_upstream_event (h,
      gst_event_new_qos (
          GST_QOS_TYPE_UNDERFLOW, 0.5, GST_SECOND, 20 * GST_SECOND)));
  late = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, 1);
  GST_BUFFER_PTS (late) = 11 * GST_SECOND;
  out = gst_harness_push_and_pull (h, late);
  fail_unless_equals_int (count_metas (out), 1);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_smoothing)
{
  const char *caps =
      "video/x-raw,format=GRAY8,width=48,height=48,framerate=30/1";
  float p1[7], p2[7];
  reference_probs (model7, 48, 48, 1, 1, NULL, p1);
  reference_probs (model7, 48, 48, 2, 1, NULL, p2);
  GstHarness *h = harness ("tta=1 smoothing=0.75", caps);
  gst_buffer_unref (gst_harness_push_and_pull (
      h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, 1)));
  GstBuffer *out = gst_harness_push_and_pull (
      h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, 2));
  GstFerEmotionMeta *m = gst_buffer_get_fer_emotion_meta (out);
  assert_meta_valid (m);
  for (int j = 0; j < 7; j++) {
    float want = 0.75f * p1[j] + 0.25f * p2[j];
    fail_unless (fabsf (m->probabilities[j] - want) < 1e-5,
        "class %d: %f, expected %f", j, m->probabilities[j], want);
  }
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Three faces, all with ROI id 0 as facedetect leaves them, moving a few
 * pixels a frame: the metas, ROI params and bus message agree on three
 * track ids that stay with their face. Returns the faces' ids in @ids. */
static void
push_three_faces (GstHarness *h, GstBus *bus, const gint xs[3], gint dx,
    gint frame, gint ids[3])
{
  GstBuffer *in = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 96, 48, frame);
  for (int i = 0; i < 3; i++)
    add_roi (in, "face", xs[i] + dx, 4 + dx / 2, 20, 20, 0);
  GstBuffer *out = gst_harness_push_and_pull (h, in);
  fail_unless_equals_int (count_metas (out), 3);

  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT);
  fail_unless (msg != NULL);
  const GValue *faces =
      gst_structure_get_value (gst_message_get_structure (msg), "faces");
  fail_unless_equals_int (gst_value_list_get_size (faces), 3);

  gpointer state = NULL, roi_state = NULL;
  GstFerEmotionMeta *m;
  GstMeta *roi;
  int f = 0;
  while ((m = gst_buffer_iterate_fer_emotion_meta (out, &state))) {
    fail_unless_equals_int (m->roi_id, 0);
    fail_unless_equals_int (m->x, xs[f] + dx);
    fail_unless (m->track_id > 0, "face %d: track_id %d", f, m->track_id);
    ids[f] = m->track_id;
    /* the lookup finds this face, where the ROI-id one cannot */
    fail_unless (
        gst_buffer_get_fer_emotion_meta_for_track (out, m->track_id) == m);
    const GstStructure *face =
        gst_value_get_structure (gst_value_list_get_value (faces, f));
    gint id;
    fail_unless (gst_structure_get_int (face, "track-id", &id));
    fail_unless_equals_int (id, m->track_id);
    roi = gst_buffer_iterate_meta_filtered (
        out, &roi_state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE);
    fail_unless (roi != NULL);
    GstStructure *param = gst_video_region_of_interest_meta_get_param (
        (GstVideoRegionOfInterestMeta *) roi, "emotion");
    fail_unless (param && gst_structure_get_int (param, "track_id", &id));
    fail_unless_equals_int (id, m->track_id);
    f++;
  }
  fail_unless (ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
      "ids %d %d %d", ids[0], ids[1], ids[2]);
  fail_unless (gst_buffer_get_fer_emotion_meta_for_track (out, 0) == NULL);
  fail_unless (gst_buffer_get_fer_emotion_meta_for_track (out, -1) == NULL);
  gst_message_unref (msg);
  gst_buffer_unref (out);
}

GST_START_TEST (test_track_ids)
{
  /* tracking does not depend on smoothing */
  const char *props[] = { "tta=1 mode=roi smoothing=0",
    "tta=1 mode=roi smoothing=0.5" };
  const gint xs[3] = { 4, 36, 68 };

  for (guint p = 0; p < G_N_ELEMENTS (props); p++) {
    GstHarness *h = harness (
        props[p], "video/x-raw,format=GRAY8,width=96,height=48,framerate=30/1");
    GstBus *bus = gst_bus_new ();
    gst_element_set_bus (fer (h), bus);
    gint born[3], ids[3];

    /* numbered from 1 in the order the faces came */
    push_three_faces (h, bus, xs, 0, 1, born);
    for (int i = 0; i < 3; i++)
      fail_unless_equals_int (born[i], i + 1);
    for (gint dx = 1; dx <= 6; dx++) {
      push_three_faces (h, bus, xs, dx, 1 + dx, ids);
      for (int i = 0; i < 3; i++)
        fail_unless_equals_int (ids[i], born[i]);
    }

    /* the middle face leaves, a new one comes elsewhere: a new id, the
     * others keep theirs */
    GstBuffer *in = pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 96, 48, 9);
    add_roi (in, "face", xs[0] + 6, 7, 20, 20, 0);
    add_roi (in, "face", xs[2] + 6, 7, 20, 20, 0);
    add_roi (in, "face", 40, 27, 20, 20, 0);
    GstBuffer *out = gst_harness_push_and_pull (h, in);
    fail_unless_equals_int (count_metas (out), 3);
    fail_unless (gst_buffer_get_fer_emotion_meta_for_track (out, 2) == NULL);
    GstFerEmotionMeta *a = gst_buffer_get_fer_emotion_meta_for_track (out, 1);
    GstFerEmotionMeta *c = gst_buffer_get_fer_emotion_meta_for_track (out, 3);
    GstFerEmotionMeta *n = gst_buffer_get_fer_emotion_meta_for_track (out, 4);
    fail_unless (a && c && n);
    fail_unless_equals_int (a->x, xs[0] + 6);
    fail_unless_equals_int (c->x, xs[2] + 6);
    fail_unless_equals_int (n->y, 27);
    gst_buffer_unref (out);
    gst_message_unref (gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT));

    /* a flush (seek) forgets the faces; their new ids stay unique */
    fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
    fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
    GstSegment segment;
    gst_segment_init (&segment, GST_FORMAT_TIME);
    fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
    push_three_faces (h, bus, xs, 0, 1, ids);
    for (int i = 0; i < 3; i++)
      fail_unless_equals_int (ids[i], 5 + i);

    /* a new stream numbers from 1 again */
    fail_unless (gst_harness_push_event (
        h, gst_event_new_stream_start ("another-stream")));
    push_three_faces (h, bus, xs, 0, 1, ids);
    for (int i = 0; i < 3; i++)
      fail_unless_equals_int (ids[i], i + 1);

    gst_element_set_bus (fer (h), NULL);
    gst_object_unref (bus);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

typedef struct
{
  GstHarness *h;
  volatile gint stop;
} swap_ctx;

GST_START_TEST (test_model_swap_while_playing)
{
  GstHarness *h = harness (
      "tta=1", "video/x-raw,format=GRAY8,width=48,height=48,framerate=30/1");
  guint seen5 = 0, seen7 = 0;
  for (int i = 0; i < 40; i++) {
    if (i % 4 == 0)
      g_object_set (fer (h), "model", (i / 4) % 2 ? model7 : model5, NULL);
    GstBuffer *out = gst_harness_push_and_pull (
        h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, i));
    GstFerEmotionMeta *m = gst_buffer_get_fer_emotion_meta (out);
    assert_meta_valid (m);
    fail_unless (m->n_classes == 5 || m->n_classes == 7);
    if (m->n_classes == 5) {
      seen5++;
      fail_unless_equals_string (m->class_labels[4], "class4");
    } else {
      seen7++;
      fail_unless_equals_string (m->class_labels[6], "surprise");
    }
    gst_buffer_unref (out);
  }
  fail_unless (seen5 == 20 && seen7 == 20, "5: %u, 7: %u", seen5, seen7);

  /* a bad model while playing: a warning, and the old model goes on */
  GstBus *bus = gst_bus_new ();
  gst_element_set_bus (fer (h), bus);
  g_object_set (fer (h), "model", "/nonexistent/model.safetensors", NULL);
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL);
  gst_message_unref (msg);
  GstBuffer *out = gst_harness_push_and_pull (
      h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, 1));
  assert_meta_valid (gst_buffer_get_fer_emotion_meta (out));
  gst_buffer_unref (out);
  gst_element_set_bus (fer (h), NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A model swap from another thread while buffers stream. */
static gpointer
swapper (gpointer data)
{
  swap_ctx *ctx = data;
  for (int i = 0; !g_atomic_int_get (&ctx->stop) && i < 20; i++)
    g_object_set (fer (ctx->h), "model", i % 2 ? model7 : model5, NULL);
  return NULL;
}

GST_START_TEST (test_model_swap_concurrent)
{
  swap_ctx ctx = {
    harness (
        "tta=1", "video/x-raw,format=GRAY8,width=48,height=48,framerate=30/1"),
    0
  };
  GThread *t = g_thread_new ("swapper", swapper, &ctx);
  for (int i = 0; i < 60; i++) {
    GstBuffer *out = gst_harness_push_and_pull (
        ctx.h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, i));
    GstFerEmotionMeta *m = gst_buffer_get_fer_emotion_meta (out);
    assert_meta_valid (m);
    fail_unless (m->n_classes == 5 || m->n_classes == 7);
    gst_buffer_unref (out);
  }
  g_atomic_int_set (&ctx.stop, 1);
  g_thread_join (t);
  gst_harness_teardown (ctx.h);
}

GST_END_TEST;

/* Two threads set the model property at once; each load runs unlocked and
 * may finish before or after the other's. */
typedef struct
{
  GstElement *e;
  const char *model;
} setter_ctx;

static gpointer
setter (gpointer data)
{
  setter_ctx *ctx = data;
  for (int i = 0; i < 15; i++)
    g_object_set (ctx->e, "model", ctx->model, NULL);
  return NULL;
}

/* Whatever order concurrent loads finish in, the model in use is the one
 * the property names (the last value set wins); and a swap racing with
 * stop() leaves no model held by the stopped element. */
GST_START_TEST (test_model_swap_last_wins)
{
  const char *caps =
      "video/x-raw,format=GRAY8,width=48,height=48,framerate=30/1";
  for (int round = 0; round < 3; round++) {
    GstHarness *h = harness ("tta=1 shared=false", caps);
    setter_ctx a = { fer (h), model5 }, b = { fer (h), model7 };
    GThread *ta = g_thread_new ("set5", setter, &a);
    GThread *tb = g_thread_new ("set7", setter, &b);
    g_thread_join (ta);
    g_thread_join (tb);
    gchar *model = NULL;
    GStrv labels = NULL;
    g_object_get (fer (h), "model", &model, "labels", &labels, NULL);
    const guint want = g_strcmp0 (model, model5) == 0 ? 5 : 7;
    fail_unless_equals_int (g_strv_length (labels), want);
    GstBuffer *out = gst_harness_push_and_pull (
        h, pattern_buffer (GST_VIDEO_FORMAT_GRAY8, 48, 48, round));
    fail_unless_equals_int (
        gst_buffer_get_fer_emotion_meta (out)->n_classes, want);
    gst_buffer_unref (out);
    g_free (model);
    g_strfreev (labels);
    gst_harness_teardown (h);
  }

  /* stop() while a swap loads: the shared models all released */
  for (int round = 0; round < 3; round++) {
    GstHarness *h = harness ("tta=1", caps);
    setter_ctx a = { fer (h), round % 2 ? model5 : model7 };
    GThread *ta = g_thread_new ("set", setter, &a);
    fail_unless_equals_int (gst_element_set_state (h->element, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    g_thread_join (ta);
    fail_unless_equals_int (fer_model_cache_size (), 0);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

static Suite *
feremotion_suite (void)
{
  Suite *s = suite_create ("feremotion");
  TCase *tc = tcase_create ("general");
  tcase_add_unchecked_fixture (tc, setup_models, teardown_models);
  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_caps_formats);
  tcase_add_test (tc, test_roi_mode);
  tcase_add_test (tc, test_frame_and_auto_modes);
  tcase_add_test (tc, test_model_names);
  tcase_add_test (tc, test_batch_size_and_tta);
  tcase_add_test (tc, test_bus_message);
  tcase_add_test (tc, test_bad_models);
  tcase_add_test (tc, test_model_swap_last_wins);
  tcase_add_test (tc, test_model_name_not_utf8);
  tcase_add_test (tc, test_state_cycles);
  tcase_add_test (tc, test_labels_and_latency);
  tcase_add_test (tc, test_plugin_metadata);
  tcase_add_test (tc, test_qos_skips_inference_not_buffers);
  tcase_add_test (tc, test_smoothing);
  tcase_add_test (tc, test_track_ids);
  tcase_add_test (tc, test_model_swap_while_playing);
  tcase_add_test (tc, test_model_swap_concurrent);
  return s;
}

GST_CHECK_MAIN (feremotion);
