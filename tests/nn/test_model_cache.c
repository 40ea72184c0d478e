/* Shared models (fer_model_load_shared, nn/src/model-cache.c) and the
 * multi-frame batch (fer_model_classify_frames), through the public API:
 * one model per file identity and options, references counted, concurrent
 * loads from threads load once, concurrent callers of one model get what
 * they get alone, and faces of several frames in one batch get exactly
 * their per-frame probabilities. A shared model whose thread count
 * changed, or whose device failed (FER_CUDA_FAULT=runtime), is no longer
 * handed to new users; its users keep it. */
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <utime.h>
#include <glib/gstdio.h>

#include <fer/fer.h>

#define N_THREADS 8
#define SIDE 64

static char *dir, *path;

static fer_model *
load_shared_on (const char *p, fer_backend_type backend, int threads)
{
  fer_model_options opts;
  GError *error = NULL;
  fer_model *m;

  fer_model_options_init (&opts);
  opts.backend = backend;
  opts.threads = threads;
  m = fer_model_load_shared (p, &opts, &error);
  g_assert_no_error (error);
  g_assert_nonnull (m);
  return m;
}

static fer_model *
load_shared (const char *p, int threads)
{
  return load_shared_on (p, FER_BACKEND_CPU, threads);
}

/* A GRAY8 frame of deterministic texture: seed picks the pattern. */
static void
make_frame (uint8_t *px, int seed, fer_image *img)
{
  for (int y = 0; y < SIDE; y++)
    for (int x = 0; x < SIDE; x++)
      px[y * SIDE + x] = (uint8_t) ((x * (3 + seed) + y * (7 + 2 * seed)
                                        + (x * y * (seed + 1)) / 5)
          & 0xff);
  *img = (fer_image){ .format = FER_PIXEL_GRAY8,
    .width = SIDE,
    .height = SIDE,
    .planes = { px },
    .strides = { SIDE } };
}

static void
test_refcount (void)
{
  g_autofree char *other_spelling =
      g_build_filename (dir, ".", "m.safetensors", NULL);
  g_autofree char *link = g_build_filename (dir, "link.safetensors", NULL);
  fer_model *a, *b, *c, *d, *own;
  GError *error = NULL;

  g_assert_cmpint (fer_model_cache_size (), ==, 0);
  a = load_shared (path, 1);
  b = load_shared (other_spelling, 1);
  g_assert_cmpint (symlink (path, link), ==, 0);
  c = load_shared (link, 1);
  g_assert_true (a == b);
  g_assert_true (a == c);
  g_assert_cmpint (fer_model_ref_count (a), ==, 3);
  /* other options: another model */
  d = load_shared (path, 2);
  g_assert_true (d != a);
  g_assert_cmpint (fer_model_cache_size (), ==, 2);
  /* fer_model_load never shares */
  own = fer_model_load (path, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (own != a);
  g_assert_cmpint (fer_model_ref_count (own), ==, 1);
  fer_model_free (own);

  fer_model_free (b);
  fer_model_free (c);
  g_assert_cmpint (fer_model_ref_count (a), ==, 1);
  g_assert_cmpint (fer_model_cache_size (), ==, 2);
  fer_model_free (a);
  fer_model_free (d);
  g_assert_cmpint (fer_model_cache_size (), ==, 0);
  g_unlink (link);

  /* a missing file: NULL, an error naming it, nothing cached */
  g_assert_null (
      fer_model_load_shared ("/nonexistent/m.safetensors", NULL, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "/nonexistent/m.safetensors"));
  g_clear_error (&error);
  /* its name is bytes: shown as valid UTF-8 */
  g_assert_null (
      fer_model_load_shared ("/nonexistent/caf\xE9.safetensors", NULL, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_IO);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
  g_assert_nonnull (
      strstr (error->message, "/nonexistent/caf\\xE9.safetensors"));
  g_clear_error (&error);
  g_assert_cmpint (fer_model_cache_size (), ==, 0);
}

/* A file rewritten in place is a new model; users of the old one keep it. */
static void
test_changed_file (void)
{
  const fer_arch arch = {
    .stem = FER_STEM_SMALL, .head = FER_HEAD_FC, .channels = 1, .n_classes = 7
  };
  g_autofree char *p2 = g_build_filename (dir, "m2.safetensors", NULL);
  struct utimbuf old = { .actime = 1000000000, .modtime = 1000000000 };
  GError *error = NULL;
  fer_model *a, *b;

  g_assert_true (fer_model_write_random (
      &arch, 5, FALSE, FER_DTYPE_F32, NULL, p2, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_utime (p2, &old), ==, 0);
  a = load_shared (p2, 1);
  g_assert_true (fer_model_write_random (
      &arch, 6, FALSE, FER_DTYPE_F32, NULL, p2, &error));
  g_assert_no_error (error);
  b = load_shared (p2, 1);
  g_assert_true (a != b);
  g_assert_cmpint (fer_model_ref_count (a), ==, 1);
  fer_model_free (a);
  fer_model_free (b);
  g_assert_cmpint (fer_model_cache_size (), ==, 0);
  g_unlink (p2);
}

typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean go;
  fer_model *got[N_THREADS];
  float expected[2 * 7];
  float probs[N_THREADS][2 * 7];
} race;

static race r;

static gpointer
load_and_classify (gpointer data)
{
  const int i = GPOINTER_TO_INT (data);
  const fer_rect faces[2] = { { 4, 4, 40, 40 }, { 10, 12, 50, 48 } };
  uint8_t px[SIDE * SIDE];
  GError *error = NULL;
  fer_image img;

  make_frame (px, 1, &img);
  g_mutex_lock (&r.lock);
  while (!r.go)
    g_cond_wait (&r.cond, &r.lock);
  g_mutex_unlock (&r.lock);
  r.got[i] = load_shared (path, 1);
  for (int rep = 0; rep < 3; rep++) {
    g_assert_true (
        fer_model_classify (r.got[i], &img, faces, 2, 2, r.probs[i], &error));
    g_assert_no_error (error);
  }
  return NULL;
}

/* N threads load the same file at once: one model, N references; they
 * classify on it at the same time and each gets what a lone caller gets. */
static void
test_concurrent (void)
{
  const fer_rect faces[2] = { { 4, 4, 40, 40 }, { 10, 12, 50, 48 } };
  GThread *threads[N_THREADS];
  uint8_t px[SIDE * SIDE];
  GError *error = NULL;
  fer_image img;
  fer_model *alone;
  double err = 0.0;

  make_frame (px, 1, &img);
  alone = fer_model_load (path, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (
      fer_model_classify (alone, &img, faces, 2, 2, r.expected, &error));
  fer_model_free (alone);

  g_mutex_init (&r.lock);
  g_cond_init (&r.cond);
  for (int i = 0; i < N_THREADS; i++)
    threads[i] = g_thread_new ("load", load_and_classify, GINT_TO_POINTER (i));
  g_mutex_lock (&r.lock);
  r.go = TRUE;
  g_cond_broadcast (&r.cond);
  g_mutex_unlock (&r.lock);
  for (int i = 0; i < N_THREADS; i++)
    g_thread_join (threads[i]);
  for (int i = 1; i < N_THREADS; i++)
    g_assert_true (r.got[i] == r.got[0]);
  g_assert_cmpint (fer_model_ref_count (r.got[0]), ==, N_THREADS);
  g_assert_cmpint (fer_model_cache_size (), ==, 1);
  for (int i = 0; i < N_THREADS; i++)
    for (int j = 0; j < 2 * 7; j++)
      err = MAX (err, fabs (r.probs[i][j] - r.expected[j]));
  g_print ("# %d threads on one shared model: max |p - p_alone| = %g\n",
      N_THREADS, err);
  g_assert_cmpfloat (err, ==, 0.0);
  for (int i = 0; i < N_THREADS; i++)
    fer_model_free (r.got[i]);
  g_assert_cmpint (fer_model_cache_size (), ==, 0);
  g_mutex_clear (&r.lock);
  g_cond_clear (&r.cond);
}

/* Faces of three frames, interleaved, in one batch = each face alone, to
 * rounding: the convolution kernels block a batch by its size, so the sums
 * of a face may be added in another order (measured: 6e-8). */
static void
test_classify_frames (void)
{
  enum
  {
    N_IMG = 3,
    N_FACES = 7,
    K = 7,
    T = 3
  };
  static uint8_t px[N_IMG][SIDE * SIDE];
  const fer_rect faces[N_FACES] = { { 0, 0, 64, 64 }, { 4, 4, 40, 40 },
    { 10, 12, 50, 48 }, { 20, 2, 30, 30 }, { 1, 30, 33, 33 }, { 8, 8, 48, 48 },
    { 0, 0, 32, 64 } };
  const int face_image[N_FACES] = { 0, 1, 1, 2, 0, 2, 1 };
  fer_image imgs[N_IMG];
  float batch[N_FACES * K], alone[K];
  GError *error = NULL;
  fer_model *m = load_shared (path, 2);
  double err = 0.0;

  for (int i = 0; i < N_IMG; i++)
    make_frame (px[i], i, &imgs[i]);
  g_assert_true (fer_model_classify_frames (
      m, imgs, N_IMG, face_image, faces, N_FACES, T, batch, &error));
  g_assert_no_error (error);
  for (int f = 0; f < N_FACES; f++) {
    g_assert_true (fer_model_classify (
        m, &imgs[face_image[f]], &faces[f], 1, T, alone, &error));
    for (int j = 0; j < K; j++)
      err = MAX (err, fabs (batch[f * K + j] - alone[j]));
  }
  g_print (
      "# %d faces of %d frames in one batch vs one at a time: max |dp| = %g\n",
      N_FACES, N_IMG, err);
  g_assert_cmpfloat (err, <=, 1e-6);

  /* bad input: a clear error, nothing computed */
  {
    const int bad[1] = { 3 };
    g_assert_false (fer_model_classify_frames (
        m, imgs, N_IMG, bad, faces, 1, T, batch, &error));
    g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (error->message, "image 3"));
    g_clear_error (&error);
    g_assert_false (fer_model_classify_frames (
        m, imgs, N_IMG, NULL, faces, 1, T, batch, &error));
    g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
    g_assert_true (fer_model_classify_frames (
        m, imgs, N_IMG, face_image, faces, 0, T, batch, &error));
  }
  fer_model_free (m);
}

/* fer_model_set_threads on a shared model: its users keep it (changed
 * for all of them), a later load with the old count gets another. */
static void
test_set_threads (void)
{
  GError *error = NULL;
  fer_model *a = load_shared (path, 1), *b = load_shared (path, 1), *c;

  g_assert_true (a == b);
  /* a refused count changes nothing: the model stays shared */
  g_assert_false (fer_model_set_threads (a, 5000, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  c = load_shared (path, 1);
  g_assert_true (c == a);
  fer_model_free (c);
  g_assert_true (fer_model_set_threads (a, 2, &error));
  g_assert_no_error (error);
  c = load_shared (path, 1);
  g_assert_true (c != a);
  g_assert_cmpint (fer_model_ref_count (a), ==, 2);
  g_assert_cmpint (fer_model_cache_size (), ==, 1);
  fer_model_free (a);
  fer_model_free (b);
  g_assert_cmpint (fer_model_cache_size (), ==, 1);
  fer_model_free (c);
  g_assert_cmpint (fer_model_cache_size (), ==, 0);
}

/* A device that fails at run time (FER_CUDA_FAULT=runtime: any build,
 * no GPU needed): under auto the model falls back to the CPU and its
 * users keep it, but the next load gets a fresh model that tries the
 * device again; under cuda the next load is fresh too. */
static void
test_failed_device (void)
{
  const fer_backend_type backends[] = { FER_BACKEND_AUTO, FER_BACKEND_CUDA };
  const fer_rect face = { 0, 0, SIDE, SIDE };
  static uint8_t px[SIDE * SIDE];
  fer_image img;
  float probs[7];

  make_frame (px, 0, &img);
  for (guint i = 0; i < G_N_ELEMENTS (backends); i++) {
    GError *error = NULL;
    fer_model *a, *b, *c;
    gboolean ok;

    g_setenv ("FER_CUDA_FAULT", "runtime", TRUE);
    a = load_shared_on (path, backends[i], 1);
    b = load_shared_on (path, backends[i], 1);
    g_assert_true (a == b);
    g_assert_null (fer_model_fallback_reason (a));
    ok = fer_model_classify (a, &img, &face, 1, 1, probs, &error);
    g_assert_true (ok == (backends[i] == FER_BACKEND_AUTO));
    g_print ("# backend %s, device failed: %s\n",
        backends[i] == FER_BACKEND_AUTO ? "auto" : "cuda",
        ok ? fer_model_fallback_reason (a) : error->message);
    g_clear_error (&error);
    c = load_shared_on (path, backends[i], 1);
    g_unsetenv ("FER_CUDA_FAULT");
    g_assert_true (c != a);
    g_assert_null (fer_model_fallback_reason (c));
    g_assert_cmpint (fer_model_backend (c), ==, FER_BACKEND_CUDA);
    g_assert_cmpint (fer_model_cache_size (), ==, 1);
    fer_model_free (a);
    fer_model_free (b);
    fer_model_free (c);
    g_assert_cmpint (fer_model_cache_size (), ==, 0);
  }
}

int
main (int argc, char **argv)
{
  const fer_arch arch = {
    .stem = FER_STEM_SMALL, .head = FER_HEAD_FC, .channels = 1, .n_classes = 7
  };
  GError *error = NULL;
  int rc;

  g_test_init (&argc, &argv, NULL);
  dir = g_dir_make_tmp ("fer-cache-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (dir, "m.safetensors", NULL);
  g_assert_true (fer_model_write_random (
      &arch, 1, TRUE, FER_DTYPE_F32, NULL, path, &error));
  g_assert_no_error (error);
  g_test_add_func ("/model-cache/refcount", test_refcount);
  g_test_add_func ("/model-cache/changed-file", test_changed_file);
  g_test_add_func ("/model-cache/concurrent", test_concurrent);
  g_test_add_func ("/model-cache/classify-frames", test_classify_frames);
  g_test_add_func ("/model-cache/set-threads", test_set_threads);
  g_test_add_func ("/model-cache/failed-device", test_failed_device);
  rc = g_test_run ();
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
  return rc;
}
