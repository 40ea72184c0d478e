/* CPU batch normalisation (cpu/batchnorm.c; BatchNorm2d over NHWC and
 * BatchNorm1d are the same per-column op): the backward pass against
 * central finite differences of the training forward, and the training and
 * evaluation forwards against a naive double-precision reference
 * (statistics, output, running statistics with the unbiased variance),
 * plain and with the fused residual add and ReLU. Every case prints its
 * max error. Contract checked on the way: dgamma and dbeta accumulate onto
 * what is there. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <fer/rng.h>
#include "cpu/ops.h"
#include "test-util.h"

#define REF_TOL 1e-5

static fer_rng rng;

typedef struct
{
  int rows, c;
  float *inp, *gamma, *beta, *dout, *out, *mean, *rstd;
} bn_ctx;

static double
bn_loss (void *p)
{
  bn_ctx *b = p;
  fer_cpu_batchnorm_forward_train (b->out, b->mean, b->rstd, NULL, NULL, b->inp,
      b->gamma, b->beta, NULL, b->rows, b->c, 0.1f, 1e-5f, FALSE);
  return test_dot (b->out, b->dout, (size_t) b->rows * b->c);
}

static void
check_bn_backward (int rows, int c)
{
  bn_ctx b = { .rows = rows, .c = c };
  char what[96];
  size_t n = (size_t) rows * c;
  b.inp = test_random_floats (&rng, n, 2.0f);
  for (size_t i = 0; i < n; i++)
    b.inp[i] += 1.0f;
  b.gamma = test_random_floats (&rng, c, 1.0f);
  b.beta = test_random_floats (&rng, c, 1.0f);
  b.dout = test_random_floats (&rng, n, 1.0f);
  b.out = g_new (float, n);
  b.mean = g_new (float, c);
  b.rstd = g_new (float, c);
  float *dinp = g_new (float, n), *dg = g_new (float, c),
        *db = g_new (float, c);
  for (int j = 0; j < c; j++)
    dg[j] = db[j] = -0.5f;

  bn_loss (&b);
  fer_cpu_batchnorm_backward (
      dinp, dg, db, b.dout, b.inp, b.mean, b.rstd, b.gamma, rows, c);
  snprintf (what, sizeof what, "batchnorm (%d, %d): dinp", rows, c);
  test_fd_check (what, b.inp, n, bn_loss, &b, dinp, 0.0f);
  snprintf (what, sizeof what, "batchnorm (%d, %d): dgamma", rows, c);
  test_fd_check (what, b.gamma, c, bn_loss, &b, dg, -0.5f);
  snprintf (what, sizeof what, "batchnorm (%d, %d): dbeta", rows, c);
  test_fd_check (what, b.beta, c, bn_loss, &b, db, -0.5f);
  g_free (b.inp);
  g_free (b.gamma);
  g_free (b.beta);
  g_free (b.dout);
  g_free (b.out);
  g_free (b.mean);
  g_free (b.rstd);
  g_free (dinp);
  g_free (dg);
  g_free (db);
}

static void
test_bn_backward (void)
{
  check_bn_backward (2 * 3 * 3, 5); /* BatchNorm2d, n=2, 3x3 */
  check_bn_backward (4, 300);       /* BatchNorm1d, more than one block */
}

/* Training and evaluation forwards against the definition, in double. */
static void
test_bn_forward (void)
{
  const int rows = 37, c = 270;
  const float momentum = 0.1f, eps = 1e-5f;
  size_t n = (size_t) rows * c;
  float *inp = test_random_floats (&rng, n, 3.0f);
  float *gamma = test_random_floats (&rng, c, 1.0f);
  float *beta = test_random_floats (&rng, c, 1.0f);
  float *res = test_random_floats (&rng, n, 1.0f);
  float *rm = test_random_floats (&rng, c, 0.2f), *rv = g_new (float, c);
  float *out = g_new (float, n), *mean = g_new (float, c),
        *rstd = g_new (float, c);
  double err_out = 0.0, err_stat = 0.0, err_run = 0.0, err_eval = 0.0;
  for (int j = 0; j < c; j++) {
    rv[j] = 0.5f + fer_rng_uniform (&rng);
    for (int r = 0; r < rows; r++)
      inp[(size_t) r * c + j] += 0.1f * j; /* per-channel offsets */
  }
  float *rm0 = g_memdup2 (rm, sizeof (float) * c);
  float *rv0 = g_memdup2 (rv, sizeof (float) * c);

  for (int variant = 0; variant < 2; variant++) {
    gboolean fused = variant == 1; /* + residual, ReLU */
    memcpy (rm, rm0, sizeof (float) * c);
    memcpy (rv, rv0, sizeof (float) * c);
    fer_cpu_batchnorm_forward_train (out, mean, rstd, rm, rv, inp, gamma, beta,
        fused ? res : NULL, rows, c, momentum, eps, fused);
    for (int j = 0; j < c; j++) {
      double m = 0.0, v = 0.0;
      for (int r = 0; r < rows; r++)
        m += inp[(size_t) r * c + j];
      m /= rows;
      for (int r = 0; r < rows; r++)
        v += pow (inp[(size_t) r * c + j] - m, 2);
      double var = v / rows, unbiased = v / (rows - 1);
      double is = 1.0 / sqrt (var + eps);
      err_stat = fmax (err_stat, fabs (mean[j] - m) / (1 + fabs (m)));
      err_stat = fmax (err_stat, fabs (rstd[j] - is) / is);
      err_run = fmax (err_run, fabs (rm[j] - (0.9 * rm0[j] + 0.1 * m)));
      err_run = fmax (err_run,
          fabs (rv[j] - (0.9 * rv0[j] + 0.1 * unbiased))
              / (0.9 * rv0[j] + 0.1 * unbiased));
      for (int r = 0; r < rows; r++) {
        size_t i = (size_t) r * c + j;
        double y = (inp[i] - m) * is * gamma[j] + beta[j];
        if (fused)
          y = fmax (y + res[i], 0.0);
        err_out = fmax (err_out, fabs (out[i] - y) / (1 + fabs (y)));
      }
    }
    fer_cpu_batchnorm_forward_eval (out, inp, gamma, beta, rm0, rv0,
        fused ? res : NULL, rows, c, eps, fused);
    for (int j = 0; j < c; j++)
      for (int r = 0; r < rows; r++) {
        size_t i = (size_t) r * c + j;
        double y = (inp[i] - rm0[j]) / sqrt (rv0[j] + (double) eps) * gamma[j]
            + beta[j];
        if (fused)
          y = fmax (y + res[i], 0.0);
        err_eval = fmax (err_eval, fabs (out[i] - y) / (1 + fabs (y)));
      }
  }
  g_printerr ("# batchnorm train forward (%d, %d): output %.2e, batch stats "
              "%.2e, running stats (unbiased var) %.2e; eval forward %.2e\n",
      rows, c, err_out, err_stat, err_run, err_eval);
  g_assert_cmpfloat (err_out, <, REF_TOL);
  g_assert_cmpfloat (err_stat, <, REF_TOL);
  g_assert_cmpfloat (err_run, <, REF_TOL);
  g_assert_cmpfloat (err_eval, <, REF_TOL);
  g_free (inp);
  g_free (gamma);
  g_free (beta);
  g_free (res);
  g_free (rm);
  g_free (rv);
  g_free (rm0);
  g_free (rv0);
  g_free (out);
  g_free (mean);
  g_free (rstd);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 12345);
  g_test_add_func ("/batchnorm/backward", test_bn_backward);
  g_test_add_func ("/batchnorm/forward", test_bn_forward);
  return g_test_run ();
}
