/* The cross-stream batcher (gst/ferbatcher.c) on its own, without
 * GStreamer: clients in threads are batched together (fewer forwards than
 * requests) and get fer_model_classify's results; a client that stopped
 * coming is waited for once at most; a client whose last request used
 * other views, or came from the leader's own thread (elements in series),
 * is not waited for; one client's bad request fails only that client. */
#include <math.h>
#include <glib/gstdio.h>

#include <fer/fer.h>
#include "ferbatcher.h"

#define N_CLIENTS 4
#define N_REQUESTS 6
#define SIDE 96
#define K 7

static char *dir, *path;
static fer_model *model;

static void
frame (int c, int r, uint8_t *px, fer_image *img)
{
  for (int y = 0; y < SIDE; y++)
    for (int x = 0; x < SIDE; x++)
      px[y * SIDE + x] =
          (uint8_t) ((x * (3 + c) + y * (5 + r) + x * y / 7) & 0xff);
  *img = (fer_image){ .format = FER_PIXEL_GRAY8,
    .width = SIDE,
    .height = SIDE,
    .planes = { px },
    .strides = { SIDE } };
}

static int
n_faces (int c, int r)
{
  return 1 + (c + r) % 3;
}

static fer_rect
face (int c, int r, int f)
{
  return (fer_rect){ (float) (2 + 10 * f + c), (float) (4 + r), 48.0f, 50.0f };
}

typedef struct
{
  FerBatchClient *client;
  int c;
  GMutex *start_lock;
  double err;
  float want[N_REQUESTS][3 * K]; /* fer_model_classify's, made first */
} client_ctx;

/* Client c's request r: its frame and faces; returns the face count. */
static int
request (int c, int r, uint8_t *px, fer_image *img, fer_rect *faces)
{
  const int n = n_faces (c, r);
  frame (c, r, px, img);
  for (int f = 0; f < n; f++)
    faces[f] = face (c, r, f);
  return n;
}

static gpointer
run_client (gpointer data)
{
  client_ctx *x = data;
  uint8_t px[SIDE * SIDE];
  float probs[3 * K];
  fer_rect faces[3];
  GError *error = NULL;
  fer_image img;

  /* all clients start together */
  g_mutex_lock (x->start_lock);
  g_mutex_unlock (x->start_lock);
  for (int r = 0; r < N_REQUESTS; r++) {
    const int n = request (x->c, r, px, &img, faces);
    g_assert_true (fer_batch_client_classify (
        x->client, &img, faces, n, 2, 200000, 64, probs, &error));
    g_assert_no_error (error);
    for (int j = 0; j < n * K; j++)
      x->err = MAX (x->err, fabs (probs[j] - x->want[r][j]));
  }
  return NULL;
}

static void
test_batches_across_clients (void)
{
  client_ctx ctx[N_CLIENTS];
  GThread *t[N_CLIENTS];
  GMutex start_lock;
  guint64 batches, faces, want_faces = 0;
  double err = 0.0;

  g_mutex_init (&start_lock);
  g_mutex_lock (&start_lock);
  for (int c = 0; c < N_CLIENTS; c++) {
    uint8_t px[SIDE * SIDE];
    fer_rect faces[3];
    GError *error = NULL;
    fer_image img;
    ctx[c] = (client_ctx){ fer_batch_client_new (model), c, &start_lock, 0.0,
      { { 0 } } };
    for (int r = 0; r < N_REQUESTS; r++) {
      const int n = request (c, r, px, &img, faces);
      g_assert_true (fer_model_classify (
          model, &img, faces, n, 2, ctx[c].want[r], &error));
    }
  }
  for (int c = 0; c < N_CLIENTS; c++) {
    t[c] = g_thread_new ("client", run_client, &ctx[c]);
    for (int r = 0; r < N_REQUESTS; r++)
      want_faces += (guint64) n_faces (c, r);
  }
  g_mutex_unlock (&start_lock);
  for (int c = 0; c < N_CLIENTS; c++) {
    g_thread_join (t[c]);
    err = MAX (err, ctx[c].err);
  }
  fer_batch_client_stats (ctx[0].client, &batches, &faces);
  g_print ("# %d clients x %d requests: %" G_GUINT64_FORMAT
           " forwards, %" G_GUINT64_FORMAT " faces, max |p - alone| = %g\n",
      N_CLIENTS, N_REQUESTS, batches, faces, err);
  g_assert_cmpuint (faces, ==, want_faces);
  /* batched: clearly fewer forwards than the 24 requests */
  g_assert_cmpuint (batches, <=, N_CLIENTS * N_REQUESTS / 2);
  g_assert_cmpfloat (err, <=, 1e-6);
  for (int c = 0; c < N_CLIENTS; c++)
    fer_batch_client_free (ctx[c].client);
  g_mutex_clear (&start_lock);
}

typedef struct
{
  FerBatchClient *client;
  int T;
} once_ctx;

static gpointer
run_once (gpointer data)
{
  once_ctx *x = data;
  uint8_t px[SIDE * SIDE];
  float probs[K];
  fer_rect r = face (0, 0, 0);
  GError *error = NULL;
  fer_image img;

  frame (0, 0, px, &img);
  g_assert_true (fer_batch_client_classify (
      x->client, &img, &r, 1, x->T, 0, 8, probs, &error));
  g_assert_no_error (error);
  return NULL;
}

/* One request of client c with T views from a thread of its own: the
 * client is live, and its last thread is not the caller's. */
static void
once_in_thread (FerBatchClient *c, int T)
{
  once_ctx x = { c, T };
  g_thread_join (g_thread_new ("once", run_once, &x));
}

/* Microseconds one request of c with T views takes from this thread. */
static gint64
timed_request (FerBatchClient *c, int T, guint wait_us)
{
  uint8_t px[SIDE * SIDE];
  float probs[K];
  fer_rect r = face (0, 0, 0);
  GError *error = NULL;
  fer_image img;
  gint64 t0;

  frame (0, 0, px, &img);
  t0 = g_get_monotonic_time ();
  g_assert_true (
      fer_batch_client_classify (c, &img, &r, 1, T, wait_us, 8, probs, &error));
  g_assert_no_error (error);
  return g_get_monotonic_time () - t0;
}

/* B came once with 5 views: A's one-view requests do not wait for it
 * (they cannot share a forward); once B used one view, A waits. */
static void
test_other_views (void)
{
  FerBatchClient *a = fer_batch_client_new (model),
                 *b = fer_batch_client_new (model);
  const guint wait_us = 500000;
  gint64 other, same;

  once_in_thread (b, 5);
  other = timed_request (a, 1, wait_us);
  once_in_thread (b, 1);
  same = timed_request (a, 1, wait_us);
  g_print ("# A (1 view) after B with 5 views: %" G_GINT64_FORMAT
           " us; after B with 1 view: %" G_GINT64_FORMAT " us (wait %u us)\n",
      other, same, wait_us);
  g_assert_cmpint (other, <, wait_us / 2);
  g_assert_cmpint (same, >=, wait_us);
  fer_batch_client_free (a);
  fer_batch_client_free (b);
}

/* Two elements in series share the model and one streaming thread: each
 * request of one would wait for the other, which cannot come before it
 * returns. Neither waits. */
static void
test_series (void)
{
  FerBatchClient *a = fer_batch_client_new (model),
                 *b = fer_batch_client_new (model);
  const guint wait_us = 500000;
  gint64 total = 0;

  for (int i = 0; i < 5; i++)
    total += timed_request (a, 1, wait_us) + timed_request (b, 1, wait_us);
  g_print (
      "# two clients in series in one thread, 5 buffers each: %" G_GINT64_FORMAT
      " us (one wait would be %u us)\n",
      total, wait_us);
  g_assert_cmpint (total, <, wait_us);
  fer_batch_client_free (a);
  fer_batch_client_free (b);
}

/* B came once (from its own thread) and then stopped: A waits for it
 * once, then never. */
static void
test_stalled_client (void)
{
  FerBatchClient *a = fer_batch_client_new (model),
                 *b = fer_batch_client_new (model);
  const guint wait_us = 500000;
  uint8_t px[SIDE * SIDE];
  float probs[K];
  fer_rect r = face (0, 0, 0);
  GError *error = NULL;
  fer_image img;
  gint64 t0, first, rest;

  frame (0, 0, px, &img);
  once_in_thread (b, 1);
  t0 = g_get_monotonic_time ();
  g_assert_true (
      fer_batch_client_classify (a, &img, &r, 1, 1, wait_us, 8, probs, &error));
  first = g_get_monotonic_time () - t0;
  t0 = g_get_monotonic_time ();
  for (int i = 0; i < 5; i++)
    g_assert_true (fer_batch_client_classify (
        a, &img, &r, 1, 1, wait_us, 8, probs, &error));
  rest = g_get_monotonic_time () - t0;
  g_print ("# stalled client: first request %" G_GINT64_FORMAT
           " us (wait %u us), next 5 in %" G_GINT64_FORMAT " us\n",
      first, wait_us, rest);
  g_assert_cmpint (first, >=, wait_us);
  /* five waits would be 2.5 s */
  g_assert_cmpint (rest, <, 2 * wait_us);
  /* idle (EOS): not waited for even once */
  once_in_thread (b, 1);
  fer_batch_client_set_idle (b);
  t0 = g_get_monotonic_time ();
  g_assert_true (
      fer_batch_client_classify (a, &img, &r, 1, 1, wait_us, 8, probs, &error));
  g_assert_cmpint (g_get_monotonic_time () - t0, <, wait_us);
  g_assert_no_error (error);
  fer_batch_client_free (a);
  fer_batch_client_free (b);
}

typedef struct
{
  FerBatchClient *client;
  gboolean bad;
  gboolean ok;
  GError *error;
  float probs[K];
} bad_ctx;

static gpointer
run_bad (gpointer data)
{
  bad_ctx *x = data;
  static uint8_t px[2][SIDE * SIDE];
  fer_rect r = x->bad ? (fer_rect){ 0, 0, NAN, 10 } : face (1, 1, 0);
  fer_image img;

  frame (x->bad, 1, px[x->bad], &img);
  x->ok = fer_batch_client_classify (
      x->client, &img, &r, 1, 1, 500000, 8, x->probs, &x->error);
  return NULL;
}

/* A bad face rectangle in one client's request, batched with a good one:
 * only the bad one fails. */
static void
test_bad_request (void)
{
  bad_ctx good = { fer_batch_client_new (model), FALSE, FALSE, NULL, { 0 } };
  bad_ctx bad = { fer_batch_client_new (model), TRUE, FALSE, NULL, { 0 } };
  GThread *t1, *t2;
  uint8_t px[SIDE * SIDE];
  float want[K];
  fer_rect r = face (1, 1, 0);
  fer_image img;
  GError *error = NULL;

  /* both live, so that the first to come waits for the other */
  run_bad (&good);
  run_bad (&bad);
  g_clear_error (&bad.error);
  t1 = g_thread_new ("good", run_bad, &good);
  t2 = g_thread_new ("bad", run_bad, &bad);
  g_thread_join (t1);
  g_thread_join (t2);
  g_assert_true (good.ok);
  g_assert_no_error (good.error);
  g_assert_false (bad.ok);
  g_assert_error (bad.error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_print ("# the bad request's error: %s\n", bad.error->message);
  g_clear_error (&bad.error);
  frame (0, 1, px, &img);
  g_assert_true (fer_model_classify (model, &img, &r, 1, 1, want, &error));
  for (int j = 0; j < K; j++)
    g_assert_cmpfloat (fabs (good.probs[j] - want[j]), <=, 1e-6);
  fer_batch_client_free (good.client);
  fer_batch_client_free (bad.client);
}

int
main (int argc, char **argv)
{
  const fer_arch arch = { .stem = FER_STEM_TORCHVISION,
    .head = FER_HEAD_FC,
    .channels = 1,
    .n_classes = K };
  fer_model_options opts;
  GError *error = NULL;
  int rc;

  g_test_init (&argc, &argv, NULL);
  dir = g_dir_make_tmp ("fer-batcher-XXXXXX", &error);
  path = g_build_filename (dir, "m.safetensors", NULL);
  g_assert_true (fer_model_write_random (
      &arch, 3, TRUE, FER_DTYPE_F32, NULL, path, &error));
  fer_model_options_init (&opts);
  opts.backend = FER_BACKEND_CPU;
  model = fer_model_load_shared (path, &opts, &error);
  g_assert_no_error (error);
  g_test_add_func (
      "/batcher/batches-across-clients", test_batches_across_clients);
  g_test_add_func ("/batcher/stalled-client", test_stalled_client);
  g_test_add_func ("/batcher/bad-request", test_bad_request);
  g_test_add_func ("/batcher/other-views", test_other_views);
  g_test_add_func ("/batcher/series", test_series);
  rc = g_test_run ();
  fer_model_free (model);
  g_assert_cmpint (fer_model_cache_size (), ==, 0);
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
  return rc;
}
