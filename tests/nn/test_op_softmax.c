/* CPU softmax (cpu/softmax.c): the per-face average of the probabilities
 * of a face's test-time-augmented views, which fer_model_classify ends
 * with, against a naive double-precision reference written here: one view
 * per face (a plain row softmax, with logits large enough to overflow a
 * naive exp) and several views per face. Every case prints its max error. */
#include <math.h>

#include <fer/rng.h>
#include "cpu/ops.h"
#include "test-util.h"

static fer_rng rng;

/* ref (n_faces, k) = per face, the mean of the views' softmax. */
static void
naive_softmax_average (
    double *ref, const float *x, int n_faces, int views, int k)
{
  for (int f = 0; f < n_faces; f++)
    for (int j = 0; j < k; j++)
      ref[f * k + j] = 0.0;
  for (int r = 0; r < n_faces * views; r++) {
    double mx = -INFINITY, s = 0;
    for (int j = 0; j < k; j++)
      mx = fmax (mx, x[r * k + j]);
    for (int j = 0; j < k; j++)
      s += exp (x[r * k + j] - mx);
    for (int j = 0; j < k; j++)
      ref[r / views * k + j] += exp (x[r * k + j] - mx) / s / views;
  }
}

static void
test_rows (void)
{
  /* a row of huge logits would overflow a naive exp */
  float x[2 * 4] = { 1, 2, 3, 4, 1000, 1001, 999, -1000 };
  float y[2 * 4];
  double ref[2 * 4];
  fer_cpu_softmax_average (y, x, 2, 1, 4);
  naive_softmax_average (ref, x, 2, 1, 4);
  double err = test_max_rel_error (y, ref, 8);
  g_test_message ("softmax: max error %.3g", err);
  g_assert_cmpfloat (err, <, 1e-6);
}

static void
test_average (void)
{
  const int n_faces = 3, views = 5, k = 7;
  float *x = test_random_floats (&rng, (size_t) n_faces * views * k, 4.0f);
  float y[3 * 7];
  double ref[3 * 7], sum = 0.0;
  fer_cpu_softmax_average (y, x, n_faces, views, k);
  naive_softmax_average (ref, x, n_faces, views, k);
  double err = test_max_rel_error (y, ref, (size_t) n_faces * k);
  for (int j = 0; j < k; j++)
    sum += y[k + j];
  g_test_message ("softmax average of %d views: max error %.3g, a face's "
                  "sum %.9g",
      views, err, sum);
  g_assert_cmpfloat (err, <, 1e-6);
  g_assert_cmpfloat (fabs (sum - 1.0), <, 1e-6);
  g_free (x);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 42);
  g_test_add_func ("/softmax/rows", test_rows);
  g_test_add_func ("/softmax/average", test_average);
  return g_test_run ();
}
