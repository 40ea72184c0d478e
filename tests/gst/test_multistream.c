/* Several feremotion elements on one shared model (shared=true, the
 * default) with cross-stream batching: N streams pushed from N threads get
 * the per-stream results of separate models; a stalled stream delays the
 * others by one max-batch-wait at most; flushes, EOS and state changes of
 * one stream while the others run; a model swap on one element leaves the
 * others' model alone; shared=false opts out. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include <fer/fer.h>
#include "feremotion/gstferemotionmeta.h"

#define W 96
#define H 96
#define T_VIEWS 2
#define N_BUFFERS 8
#define CAPS "video/x-raw,format=GRAY8,width=96,height=96,framerate=30/1"

#include "test-models.h"

static GstHarness *
harness (const char *model, const char *props)
{
  char *desc =
      g_strdup_printf ("feremotion model=%s backend=cpu mode=roi tta=%d %s",
          model, T_VIEWS, props);
  GstHarness *h = gst_harness_new_parse (desc);
  g_free (desc);
  gst_harness_set_src_caps_str (h, CAPS);
  return h;
}

/* 1..3 faces: stream s, buffer i. */
static int
n_faces (int s, int i)
{
  return 1 + (s + i) % 3;
}

static fer_rect
face_box (int s, int i, int f)
{
  return (fer_rect){ (float) (4 + 9 * f + s), (float) (3 + 5 * f + i % 4),
    (float) (40 + 3 * s), (float) (44 - f) };
}

/* A GRAY8 frame of a pattern set by (s, i), with its faces as ROI metas. */
static GstBuffer *
stream_buffer (int s, int i)
{
  GstBuffer *buf = gst_buffer_new_and_alloc (W * H);
  GstMapInfo map;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      map.data[y * W + x] =
          (guint8) ((x * (5 + s) + y * (11 + i) + (x * y) % (13 + s)) & 0xff);
  gst_buffer_unmap (buf, &map);
  for (int f = 0; f < n_faces (s, i); f++) {
    fer_rect r = face_box (s, i, f);
    gst_buffer_add_video_region_of_interest_meta (
        buf, "face", (guint) r.x, (guint) r.y, (guint) r.w, (guint) r.h);
  }
  GST_BUFFER_PTS (buf) = i * GST_SECOND / 30;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 30;
  return buf;
}

/* What a model of its own gives buffer (s, i): all faces in one call. */
static void
reference (fer_model *m, int s, int i, float *probs)
{
  GstBuffer *buf = stream_buffer (s, i);
  fer_rect faces[3];
  GError *error = NULL;
  GstMapInfo map;

  gst_buffer_map (buf, &map, GST_MAP_READ);
  fer_image img = { FER_PIXEL_GRAY8, W, H, { map.data }, { W }, FALSE };
  for (int f = 0; f < n_faces (s, i); f++)
    faces[f] = face_box (s, i, f);
  fail_unless (fer_model_classify (
                   m, &img, faces, n_faces (s, i), T_VIEWS, probs, &error),
      "%s", error ? error->message : "");
  gst_buffer_unmap (buf, &map);
  gst_buffer_unref (buf);
}

/* max |p - reference| over the faces of an output buffer, in ROI order. */
static double
buffer_error (GstBuffer *out, fer_model *ref, int s, int i)
{
  float want[3 * 7];
  gpointer state = NULL;
  GstMeta *meta;
  double err = 0.0;
  int f = 0;

  reference (ref, s, i, want);
  while ((meta = gst_buffer_iterate_meta_filtered (
              out, &state, GST_FER_EMOTION_META_API_TYPE))) {
    GstFerEmotionMeta *m = (GstFerEmotionMeta *) meta;
    fail_unless (f < n_faces (s, i));
    fail_unless_equals_int (m->n_classes, fer_model_n_classes (ref));
    for (guint j = 0; j < m->n_classes; j++)
      err = MAX (err, fabs (m->probabilities[j] - want[f * m->n_classes + j]));
    f++;
  }
  fail_unless_equals_int (f, n_faces (s, i));
  return err;
}

static fer_model *
own_model (const char *path)
{
  fer_model_options opts;
  GError *error = NULL;
  fer_model *m;

  fer_model_options_init (&opts);
  opts.backend = FER_BACKEND_CPU;
  m = fer_model_load (path, &opts, &error);
  fail_unless (m != NULL, "%s", error ? error->message : "");
  return m;
}

typedef struct
{
  GstHarness *h;
  int s, n;
  fer_model *ref;
  double err;
  gint64 elapsed_us;
} stream_ctx;

static gpointer
run_stream (gpointer data)
{
  stream_ctx *c = data;
  gint64 t0 = g_get_monotonic_time ();

  for (int i = 0; i < c->n; i++) {
    GstBuffer *out = gst_harness_push_and_pull (c->h, stream_buffer (c->s, i));
    fail_unless (out != NULL);
    c->err = MAX (c->err, buffer_error (out, c->ref, c->s, i));
    gst_buffer_unref (out);
  }
  c->elapsed_us = g_get_monotonic_time () - t0;
  return NULL;
}

/* n streams from n threads; returns the max error against own models. */
static double
run_streams (GstHarness **h, int n, fer_model *ref)
{
  stream_ctx c[8];
  GThread *t[8];
  double err = 0.0;

  for (int s = 0; s < n; s++) {
    c[s] = (stream_ctx){ h[s], s, N_BUFFERS, ref, 0.0, 0 };
    t[s] = g_thread_new ("stream", run_stream, &c[s]);
  }
  for (int s = 0; s < n; s++) {
    g_thread_join (t[s]);
    err = MAX (err, c[s].err);
  }
  return err;
}

GST_START_TEST (test_shared_matches_separate)
{
  enum
  {
    N = 4
  };
  const char *modes[2] = { "shared=true max-batch-wait=20000", "shared=false" };
  fer_model *ref = own_model (model7);

  for (int k = 0; k < 2; k++) {
    GstHarness *h[N];
    for (int s = 0; s < N; s++)
      h[s] = harness (model7, modes[k]);
    /* one loaded model for the four, or none in the cache */
    fail_unless_equals_int (fer_model_cache_size (), k == 0 ? 1 : 0);
    double err = run_streams (h, N, ref);
    g_print (
        "%d streams, %s: max |p - own model's p| = %g\n", N, modes[k], err);
    /* batch composition may reorder a face's sums (tests/nn model-cache) */
    fail_unless (err <= 1e-6, "error %g", err);
    for (int s = 0; s < N; s++)
      gst_harness_teardown (h[s]);
    fail_unless_equals_int (fer_model_cache_size (), 0);
  }
  fer_model_free (ref);
}

GST_END_TEST;

/* Stream B hands in one buffer, then stalls; stream A waits for it once
 * (at most max-batch-wait), then no more. */
GST_START_TEST (test_stalled_stream)
{
  const guint wait_us = 1000000;
  char *props = g_strdup_printf ("max-batch-wait=%u", wait_us);
  GstHarness *a = harness (model7, props), *b = harness (model7, props);
  fer_model *ref = own_model (model7);
  gint64 t0, one, total, alone;
  GstBuffer *out;

  /* A alone first (B has not come yet: nobody waits for it) */
  stream_ctx c = { a, 0, N_BUFFERS, ref, 0.0, 0 };
  run_stream (&c);
  alone = c.elapsed_us;
  out = gst_harness_push_and_pull (b, stream_buffer (1, 0));
  gst_buffer_unref (out);
  /* the first of A's buffers may wait for B: B is live */
  t0 = g_get_monotonic_time ();
  out = gst_harness_push_and_pull (a, stream_buffer (0, 0));
  gst_buffer_unref (out);
  one = g_get_monotonic_time () - t0;
  fail_unless (one < wait_us + 2000000,
      "first buffer took %" G_GINT64_FORMAT " us", one);
  /* B did not come: A no longer waits for it (waiting for it every time
   * would take N_BUFFERS x wait_us) */
  c.elapsed_us = 0;
  run_stream (&c);
  total = c.elapsed_us;
  g_print ("stalled stream: A alone %d buffers in %" G_GINT64_FORMAT
           " us; with B stalled its first buffer %" G_GINT64_FORMAT
           " us (max-batch-wait %u us), then %d buffers in %" G_GINT64_FORMAT
           " us\n",
      N_BUFFERS, alone, one, wait_us, N_BUFFERS, total);
  fail_unless (total < alone + wait_us,
      "%d buffers took %" G_GINT64_FORMAT " us", N_BUFFERS, total);
  fail_unless (c.err <= 1e-6);
  /* EOS: nobody waits for B, not even once, when it comes back and ends */
  out = gst_harness_push_and_pull (b, stream_buffer (1, 1));
  gst_buffer_unref (out);
  fail_unless (gst_harness_push_event (b, gst_event_new_eos ()));
  t0 = g_get_monotonic_time ();
  out = gst_harness_push_and_pull (a, stream_buffer (0, 1));
  gst_buffer_unref (out);
  one = g_get_monotonic_time () - t0;
  fail_unless (one < wait_us, "after EOS: %" G_GINT64_FORMAT " us", one);
  gst_harness_teardown (a);
  gst_harness_teardown (b);
  fer_model_free (ref);
  g_free (props);
}

GST_END_TEST;

/* Two elements in series on one shared model: one streaming thread, so
 * neither may wait for the other (which cannot come before it returns).
 * Timed against the same pipeline with max-batch-wait=0, so that a slow
 * (sanitizer, loaded) machine does not matter: waiting would add one
 * max-batch-wait per buffer. */
static gint64
series_us (guint wait_us)
{
  char *desc = g_strdup_printf (
      "feremotion model=%s backend=cpu mode=roi tta=%d max-batch-wait=%u ! "
      "feremotion model=%s backend=cpu mode=roi tta=%d max-batch-wait=%u",
      model7, T_VIEWS, wait_us, model7, T_VIEWS, wait_us);
  GstHarness *h = gst_harness_new_parse (desc);
  gint64 t0 = 0;

  gst_harness_set_src_caps_str (h, CAPS);
  /* buffer 0 loads the model: not timed */
  for (int i = 0; i <= N_BUFFERS; i++) {
    GstBuffer *out = gst_harness_push_and_pull (h, stream_buffer (0, i));
    fail_unless (out != NULL);
    gst_buffer_unref (out);
    if (i == 0)
      t0 = g_get_monotonic_time ();
  }
  t0 = g_get_monotonic_time () - t0;
  gst_harness_teardown (h);
  g_free (desc);
  return t0;
}

GST_START_TEST (test_series)
{
  const guint wait_us = 1000000;
  gint64 base = series_us (0), total = series_us (wait_us);

  g_print ("two elements in series, one shared model: %d buffers in "
           "%" G_GINT64_FORMAT
           " us with max-batch-wait %u us, %" G_GINT64_FORMAT " us with 0\n",
      N_BUFFERS, total, wait_us, base);
  fail_unless (total < base + (gint64) N_BUFFERS * wait_us / 2,
      "%d buffers took %" G_GINT64_FORMAT " us", N_BUFFERS, total);
}

GST_END_TEST;

/* A and B stream from threads while C flushes, ends, and goes to READY
 * and back; everybody's results stay right. */
GST_START_TEST (test_events_while_others_run)
{
  GstHarness *h[3];
  fer_model *ref = own_model (model7);
  stream_ctx c[2];
  GThread *t[2];
  GstSegment seg;

  for (int s = 0; s < 3; s++)
    h[s] = harness (model7, "max-batch-wait=5000");
  for (int s = 0; s < 2; s++) {
    c[s] = (stream_ctx){ h[s], s, 3 * N_BUFFERS, ref, 0.0, 0 };
    t[s] = g_thread_new ("stream", run_stream, &c[s]);
  }
  for (int round = 0; round < 3; round++) {
    GstBuffer *out = gst_harness_push_and_pull (h[2], stream_buffer (2, round));
    fail_unless (buffer_error (out, ref, 2, round) <= 1e-6);
    gst_buffer_unref (out);
    fail_unless (gst_harness_push_event (h[2], gst_event_new_flush_start ()));
    fail_unless (
        gst_harness_push_event (h[2], gst_event_new_flush_stop (TRUE)));
    gst_segment_init (&seg, GST_FORMAT_TIME);
    fail_unless (gst_harness_push_event (h[2], gst_event_new_segment (&seg)));
    out = gst_harness_push_and_pull (h[2], stream_buffer (2, round + 1));
    fail_unless (buffer_error (out, ref, 2, round + 1) <= 1e-6);
    gst_buffer_unref (out);
    fail_unless (gst_harness_push_event (h[2], gst_event_new_eos ()));
    fail_unless (gst_element_set_state (fer (h[2]), GST_STATE_READY)
        == GST_STATE_CHANGE_SUCCESS);
    fail_unless (gst_element_set_state (fer (h[2]), GST_STATE_PLAYING)
        != GST_STATE_CHANGE_FAILURE);
    /* the restarted element wants the stream's sticky events again */
    fail_unless (
        gst_harness_push_event (h[2], gst_event_new_stream_start ("c")));
    fail_unless (gst_harness_push_event (
        h[2], gst_event_new_caps (gst_caps_from_string (CAPS))));
    fail_unless (gst_harness_push_event (h[2], gst_event_new_segment (&seg)));
  }
  for (int s = 0; s < 2; s++) {
    g_thread_join (t[s]);
    fail_unless (c[s].err <= 1e-6, "stream %d: %g", s, c[s].err);
  }
  for (int s = 0; s < 3; s++)
    gst_harness_teardown (h[s]);
  fail_unless_equals_int (fer_model_cache_size (), 0);
  fer_model_free (ref);
}

GST_END_TEST;

/* A swaps to another model while B streams: B keeps its model. */
GST_START_TEST (test_model_swap_isolation)
{
  GstHarness *a = harness (model7, ""), *b = harness (model7, "");
  fer_model *ref7 = own_model (model7), *ref5 = own_model (model5);
  GstBuffer *out;

  fail_unless_equals_int (fer_model_cache_size (), 1);
  g_object_set (fer (a), "model", model5, NULL);
  fail_unless_equals_int (fer_model_cache_size (), 2);
  for (int i = 0; i < 3; i++) {
    out = gst_harness_push_and_pull (a, stream_buffer (0, i));
    fail_unless (buffer_error (out, ref5, 0, i) <= 1e-6);
    gst_buffer_unref (out);
    out = gst_harness_push_and_pull (b, stream_buffer (1, i));
    fail_unless (buffer_error (out, ref7, 1, i) <= 1e-6);
    gst_buffer_unref (out);
  }
  /* back to model7: A shares B's model again */
  g_object_set (fer (a), "model", model7, NULL);
  fail_unless_equals_int (fer_model_cache_size (), 1);
  out = gst_harness_push_and_pull (a, stream_buffer (0, 5));
  fail_unless (buffer_error (out, ref7, 0, 5) <= 1e-6);
  gst_buffer_unref (out);
  gst_harness_teardown (a);
  gst_harness_teardown (b);
  fail_unless_equals_int (fer_model_cache_size (), 0);
  fer_model_free (ref7);
  fer_model_free (ref5);
}

GST_END_TEST;

GST_START_TEST (test_properties)
{
  GstElement *e = gst_element_factory_make ("feremotion", NULL);
  gboolean shared;
  guint wait;
  gint max_batch;

  g_object_get (e, "shared", &shared, "max-batch-wait", &wait, "max-batch",
      &max_batch, NULL);
  fail_unless (shared);
  fail_unless_equals_int (wait, 1000);
  fail_unless_equals_int (max_batch, 32);
  gst_object_unref (e);
}

GST_END_TEST;

static Suite *
multistream_suite (void)
{
  Suite *s = suite_create ("feremotion-multistream");
  TCase *tc = tcase_create ("general");
  tcase_add_unchecked_fixture (tc, setup_models, teardown_models);
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_shared_matches_separate);
  tcase_add_test (tc, test_stalled_stream);
  tcase_add_test (tc, test_series);
  tcase_add_test (tc, test_events_while_others_run);
  tcase_add_test (tc, test_model_swap_isolation);
  return s;
}

GST_CHECK_MAIN (multistream);
