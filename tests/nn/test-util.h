/* Helpers that the op tests (test_op_<family>.c) share: random inputs, the
 * error measure they print and assert on, and the finite-difference check
 * of a backward pass; model loading with given options for the model
 * tests. */
#ifndef FER_TEST_UTIL_H
#define FER_TEST_UTIL_H

#include <math.h>
#include <stddef.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <fer/model.h>
#include <fer/rng.h>

/* n normal floats of standard deviation `scale` (g_free them). */
static inline float *
test_random_floats (fer_rng *rng, size_t n, float scale)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = scale * fer_rng_normal (rng);
  return x;
}

/* max |a - b| relative to max(1, max |b|); a NaN in a counts as infinite,
 * so that an output left unwritten fails. */
static inline double
test_max_rel_error (const float *a, const double *b, size_t n)
{
  double err = 0.0, scale = 1.0;
  for (size_t i = 0; i < n; i++) {
    err = fmax (err, isnan (a[i]) ? INFINITY : fabs (a[i] - b[i]));
    scale = fmax (scale, fabs (b[i]));
  }
  return err / scale;
}

/* fer_model_load with `backend` and `threads` CPU threads, the other
 * options at their defaults. */
static inline fer_model *
test_load_model (
    const char *path, fer_backend_type backend, int threads, GError **error)
{
  fer_model_options opts;
  fer_model_options_init (&opts);
  opts.backend = backend;
  opts.threads = threads;
  return fer_model_load (path, &opts, error);
}

/* A random model of shape `a` (random batch norm, F32, seed) in a new
 * temporary folder: its path (test_remove_temp_model removes both). */
static inline char *
test_write_temp_model (const fer_arch *a, uint64_t seed)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("fer-test-XXXXXX", &error);
  g_assert_no_error (error);
  char *path = g_build_filename (dir, "m.safetensors", NULL);
  g_assert_true (fer_model_write_random (
      a, seed, TRUE, FER_DTYPE_F32, NULL, path, &error));
  g_assert_no_error (error);
  g_free (dir);
  return path;
}

static inline void
test_remove_temp_model (char *path)
{
  char *dir = g_path_get_dirname (path);
  g_remove (path);
  g_rmdir (dir);
  g_free (dir);
  g_free (path);
}

/* sum a[i] * b[i], in double. */
static inline double
test_dot (const float *a, const float *b, size_t n)
{
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += (double) a[i] * b[i];
  return s;
}

/* Backward passes are checked against central finite differences of our
 * own float forward: L(x) = sum(dout * forward(x)), accumulated in double
 * (test_dot), step TEST_FD_STEP, every input element; the max error
 * relative to the largest |gradient| must stay under TEST_FD_TOL. */
#define TEST_FD_STEP 1e-3
#define TEST_FD_TOL 1e-2

/* L(x) with the current inputs, for finite differences. */
typedef double (*test_loss_fn) (void *ctx);

/* Central differences of f over x[0..n), against analytic[0..n) minus
 * `offset` (what an accumulating gradient held before). Prints and
 * returns max |analytic - fd| / max |fd|. */
static inline double
test_fd_check (const char *what, float *x, size_t n, test_loss_fn f, void *ctx,
    const float *analytic, float offset)
{
  double err = 0.0, scale = 1e-12;
  for (size_t i = 0; i < n; i++) {
    float orig = x[i];
    float xp = (float) (orig + TEST_FD_STEP);
    float xm = (float) (orig - TEST_FD_STEP);
    x[i] = xp;
    double lp = f (ctx);
    x[i] = xm;
    double lm = f (ctx);
    x[i] = orig;
    double fd = (lp - lm) / ((double) xp - xm);
    err = fmax (err, fabs ((analytic[i] - offset) - fd));
    scale = fmax (scale, fabs (fd));
  }
  double rel = err / scale;
  g_printerr ("# %-44s max |g - fd| / max |fd| = %.2e\n", what, rel);
  g_assert_cmpfloat (rel, <, TEST_FD_TOL);
  return rel;
}

#endif
