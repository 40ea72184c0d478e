/* The CPU linear layer (cpu/linear.c): the forward (with and without the
 * fused ReLU) against a naive double-precision reference written here,
 * the backward pass against central finite differences of the forward.
 * Every case prints its max error. Contract checked on the way: dweight
 * and dbias accumulate onto what is there. */
#include <math.h>

#include <fer/rng.h>
#include "cpu/ops.h"
#include "test-util.h"

static fer_rng rng;

static void
test_forward (void)
{
  const int n = 4, nin = 37, nout = 11;
  for (int relu = 0; relu < 2; relu++) {
    float *inp = test_random_floats (&rng, (size_t) n * nin, 1.0f);
    float *w = test_random_floats (&rng, (size_t) nout * nin, 1.0f);
    float *b = test_random_floats (&rng, nout, 1.0f);
    float out[4 * 11];
    double ref[4 * 11];
    fer_cpu_linear_forward (out, inp, w, b, n, nin, nout, relu);
    for (int i = 0; i < n; i++)
      for (int j = 0; j < nout; j++) {
        double s = b[j];
        for (int k = 0; k < nin; k++)
          s += (double) inp[i * nin + k] * w[j * nin + k];
        ref[i * nout + j] = relu && s < 0 ? 0 : s;
      }
    double err = test_max_rel_error (out, ref, n * nout);
    g_test_message ("linear relu=%d: max rel error %.3g", relu, err);
    g_assert_cmpfloat (err, <, 1e-5);
    g_free (inp);
    g_free (w);
    g_free (b);
  }
}

typedef struct
{
  int n, nin, nout;
  float *inp, *w, *b, *dout, *out;
} linear_ctx;

static double
linear_loss (void *p)
{
  linear_ctx *l = p;
  fer_cpu_linear_forward (
      l->out, l->inp, l->w, l->b, l->n, l->nin, l->nout, FALSE);
  return test_dot (l->out, l->dout, (size_t) l->n * l->nout);
}

static void
test_backward (void)
{
  linear_ctx l = { .n = 5, .nin = 12, .nout = 7 };
  l.inp = test_random_floats (&rng, (size_t) l.n * l.nin, 1.0f);
  l.w = test_random_floats (&rng, (size_t) l.nout * l.nin, 0.5f);
  l.b = test_random_floats (&rng, l.nout, 0.5f);
  l.dout = test_random_floats (&rng, (size_t) l.n * l.nout, 1.0f);
  l.out = g_new (float, (size_t) l.n *l.nout);
  float *dinp = g_new (float, (size_t) l.n *l.nin);
  float *dw = g_new (float, (size_t) l.nout *l.nin);
  float *db = g_new (float, l.nout);
  for (int i = 0; i < l.nout * l.nin; i++)
    dw[i] = 1.0f;
  for (int i = 0; i < l.nout; i++)
    db[i] = 1.0f;
  fer_cpu_linear_backward (
      dinp, dw, db, l.dout, l.inp, l.w, l.n, l.nin, l.nout);
  test_fd_check ("linear backward: dinp", l.inp, (size_t) l.n * l.nin,
      linear_loss, &l, dinp, 0.0f);
  test_fd_check ("linear backward: dweight", l.w, (size_t) l.nout * l.nin,
      linear_loss, &l, dw, 1.0f);
  test_fd_check (
      "linear backward: dbias", l.b, l.nout, linear_loss, &l, db, 1.0f);
  g_free (l.inp);
  g_free (l.w);
  g_free (l.b);
  g_free (l.dout);
  g_free (l.out);
  g_free (dinp);
  g_free (dw);
  g_free (db);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 42);
  g_test_add_func ("/linear/forward", test_forward);
  g_test_add_func ("/linear/backward", test_backward);
  return g_test_run ();
}
