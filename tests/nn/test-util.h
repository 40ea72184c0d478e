/* Helpers that the numerical op tests (test_ops.c, test_train_conv.c)
 * share: random inputs and the error measure they print and assert on. */
#ifndef FER_TEST_UTIL_H
#define FER_TEST_UTIL_H

#include <math.h>
#include <stddef.h>
#include <glib.h>
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

#endif
