/* Helpers that the nn tests share: random inputs and the error measure the
 * numerical op tests (test_ops.c, test_train_conv.c) print and assert on,
 * and model loading with given options. */
#ifndef FER_TEST_UTIL_H
#define FER_TEST_UTIL_H

#include <math.h>
#include <stddef.h>
#include <glib.h>
#include <fer/model.h>
#include <fer/rng.h>

/* n standard normal floats (g_free them). */
static inline float *
test_random_floats (fer_rng *rng, size_t n)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = fer_rng_normal (rng);
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
test_load_model (const char *path, fer_backend_type backend, int threads,
    GError **error)
{
  fer_model_options opts;
  fer_model_options_init (&opts);
  opts.backend = backend;
  opts.threads = threads;
  return fer_model_load (path, &opts, error);
}

#endif
