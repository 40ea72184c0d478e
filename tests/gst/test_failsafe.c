/* The element's fail-safe, on any machine: FER_CUDA_FAULT=init|selftest|
 * runtime imitates a CUDA device that fails to start, fails the load-time
 * self-test, or fails every forward after it. Under backend=auto each
 * fault gives, buffer for buffer and face for face, the metas of
 * backend=cpu (a run-time fault on the first buffer with faces after one
 * without: the failed batch is recomputed on the CPU, nothing lost) and
 * exactly one warning on the bus naming the fault; under backend=cuda the
 * start fails (init, selftest) or the first buffer with faces does
 * (runtime), with an error message naming the fault. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>
#include <string.h>

#include <fer/fer.h>
#include "feremotion/gstferemotionmeta.h"

#define WIDTH 64
#define HEIGHT 48
#define N_BUFFERS 5 /* the first without faces */
#define N_FACES 2
#define K 7

static char *tmpdir;
static char *model;
static const char *const faults[] = { "init", "selftest", "runtime" };

static void
setup_model (void)
{
  fer_arch a = { FER_STEM_TORCHVISION, FER_HEAD_FC, 1, K };
  GError *error = NULL;
  tmpdir = g_dir_make_tmp ("feremotion-failsafe-XXXXXX", &error);
  g_assert_no_error (error);
  model = g_build_filename (tmpdir, "m.safetensors", NULL);
  fail_unless (
      fer_model_write_random (&a, 3, TRUE, FER_DTYPE_F32, NULL, model, &error),
      "%s", error ? error->message : "");
}

static void
teardown_model (void)
{
  g_unlink (model);
  g_rmdir (tmpdir);
  g_free (model);
  g_free (tmpdir);
}

/* Buffer i: a GRAY8 pattern; from i = 1 on, two face ROIs (ids 1, 2). */
static GstBuffer *
buffer (guint i)
{
  gsize size = WIDTH * HEIGHT;
  guint8 *px = g_malloc (size);
  for (gsize p = 0; p < size; p++)
    px[p] = (guint8) ((p % WIDTH) * 5 + (p / WIDTH) * 3 + i * 17 + p % 11);
  GstBuffer *buf = gst_buffer_new_wrapped (px, size);
  GST_BUFFER_PTS (buf) = i * GST_SECOND / 30;
  if (i > 0) {
    GstVideoRegionOfInterestMeta *roi =
        gst_buffer_add_video_region_of_interest_meta (
            buf, "face", 4 + i, 3, 30, 32);
    roi->id = 1;
    roi = gst_buffer_add_video_region_of_interest_meta (
        buf, "face", 30, 10 + i, 28, 30);
    roi->id = 2;
  }
  return buf;
}

/* A feremotion on `backend` whose bus is `bus` (roi mode, 2 TTA views). */
static GstElement *
element (const char *backend, GstBus *bus)
{
  GstElement *e = gst_element_factory_make ("feremotion", NULL);
  fail_unless (e != NULL);
  g_object_set (e, "model", model, "tta", 2, "threads", 1, NULL);
  gst_util_set_object_arg (G_OBJECT (e), "backend", backend);
  gst_util_set_object_arg (G_OBJECT (e), "mode", "roi");
  gst_element_set_bus (e, bus);
  return e;
}

/* The element started (PLAYING) in a harness. */
static GstHarness *
harness (GstElement *e)
{
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  gst_harness_set_src_caps_str (
      h, "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");
  return h;
}

/* The element cannot start: it is stopped and released. */
static void
fails_to_start (GstElement *e)
{
  fail_unless_equals_int (
      gst_element_set_state (e, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_object_unref (e);
}

/* The probabilities of each buffer's faces (N_BUFFERS x N_FACES x K). */
static void
run_stream (GstHarness *h, gfloat *probs)
{
  for (guint i = 0; i < N_BUFFERS; i++) {
    GstBuffer *out = gst_harness_push_and_pull (h, buffer (i));
    fail_unless (out != NULL, "buffer %u lost", i);
    for (gint id = 1; id <= N_FACES; id++) {
      GstFerEmotionMeta *m = gst_buffer_get_fer_emotion_meta_for_roi (out, id);
      fail_unless ((m != NULL) == (i > 0), "buffer %u face %d", i, id);
      if (m) {
        fail_unless_equals_int (m->n_classes, K);
        memcpy (probs + ((gsize) i * N_FACES + id - 1) * K, m->probabilities,
            K * sizeof (gfloat));
      }
    }
    gst_buffer_unref (out);
  }
}

/* Pops every message off the bus: the number of warnings and errors, and
 * the debug text of the last of them (g_free). */
static void
pop_all (GstBus *bus, guint *warnings, guint *errors, gchar **debug)
{
  GstMessage *msg;
  *warnings = *errors = 0;
  *debug = NULL;
  while ((msg = gst_bus_pop_filtered (
              bus, GST_MESSAGE_WARNING | GST_MESSAGE_ERROR))) {
    GError *err = NULL;
    g_free (*debug);
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_WARNING) {
      gst_message_parse_warning (msg, &err, debug);
      (*warnings)++;
    } else {
      gst_message_parse_error (msg, &err, debug);
      (*errors)++;
    }
    GST_INFO ("%s: %s", err->message, *debug);
    g_error_free (err);
    gst_message_unref (msg);
  }
}

GST_START_TEST (test_auto_is_cpu)
{
  const char *fault = faults[__i__];
  gfloat want[N_BUFFERS * N_FACES * K] = { 0 };
  gfloat got[N_BUFFERS * N_FACES * K] = { 0 };
  GstBus *bus = gst_bus_new ();
  guint warnings, errors;
  gchar *debug;

  /* backend=cpu never looks at FER_CUDA_FAULT */
  g_setenv ("FER_CUDA_FAULT", fault, TRUE);
  GstHarness *h = harness (element ("cpu", bus));
  run_stream (h, want);
  gst_harness_teardown (h);
  pop_all (bus, &warnings, &errors, &debug);
  fail_unless (warnings == 0 && errors == 0);
  g_free (debug);

  h = harness (element ("auto", bus));
  g_unsetenv ("FER_CUDA_FAULT");
  run_stream (h, got);
  gst_harness_teardown (h);
  fail_unless (memcmp (got, want, sizeof want) == 0,
      "%s: the metas differ from backend=cpu's", fault);
  pop_all (bus, &warnings, &errors, &debug);
  fail_unless_equals_int (warnings, 1);
  fail_unless_equals_int (errors, 0);
  fail_unless (strstr (debug, fault) != NULL, "'%s' lacks %s", debug, fault);
  fail_unless (strstr (debug, "CPU") != NULL);
  g_free (debug);
  gst_object_unref (bus);
}

GST_END_TEST;

GST_START_TEST (test_cuda_is_an_error)
{
  const char *fault = faults[__i__];
  GstBus *bus = gst_bus_new ();
  guint warnings, errors;
  gchar *debug;

  g_setenv ("FER_CUDA_FAULT", fault, TRUE);
  if (strcmp (fault, "runtime") != 0) {
    fails_to_start (element ("cuda", bus));
  } else {
    GstHarness *h = harness (element ("cuda", bus));
    fail_unless_equals_int (gst_harness_push (h, buffer (0)), GST_FLOW_OK);
    fail_unless_equals_int (gst_harness_push (h, buffer (1)), GST_FLOW_ERROR);
    gst_harness_teardown (h);
  }
  g_unsetenv ("FER_CUDA_FAULT");
  pop_all (bus, &warnings, &errors, &debug);
  fail_unless_equals_int (errors, 1);
  fail_unless_equals_int (warnings, 0);
  fail_unless (strstr (debug, fault) != NULL, "'%s' lacks %s", debug, fault);
  g_free (debug);
  gst_object_unref (bus);
}

GST_END_TEST;

/* A bad FER_CUDA_FAULT value fails the start under auto, naming it. */
GST_START_TEST (test_bad_value)
{
  GstBus *bus = gst_bus_new ();
  guint warnings, errors;
  gchar *debug;

  g_setenv ("FER_CUDA_FAULT", "sometimes", TRUE);
  fails_to_start (element ("auto", bus));
  g_unsetenv ("FER_CUDA_FAULT");
  pop_all (bus, &warnings, &errors, &debug);
  fail_unless (errors == 1 && warnings == 0);
  fail_unless (strstr (debug, "FER_CUDA_FAULT='sometimes'") != NULL);
  g_free (debug);
  gst_object_unref (bus);
}

GST_END_TEST;

static Suite *
failsafe_suite (void)
{
  Suite *s = suite_create ("feremotion-failsafe");
  TCase *tc = tcase_create ("general");
  tcase_add_unchecked_fixture (tc, setup_model, teardown_model);
  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_loop_test (tc, test_auto_is_cpu, 0, G_N_ELEMENTS (faults));
  tcase_add_loop_test (tc, test_cuda_is_an_error, 0, G_N_ELEMENTS (faults));
  tcase_add_test (tc, test_bad_value);
  return s;
}

GST_CHECK_MAIN (failsafe);
