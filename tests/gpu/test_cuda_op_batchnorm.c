/* Batch norm, training and evaluation forwards (plain, with the fused
 * residual add and ReLU) and backward, CUDA against CPU
 * (cuda-op-test.h): BatchNorm2d shapes, one that the reduction splits 128
 * ways, BatchNorm1d, a single row. */
#include "cuda-op-test.h"

static void
batchnorm_case (int rows, int c, gboolean with_res, gboolean relu)
{
  size_t n = (size_t) rows * c;
  char name[96];
  float *x = host_random (n, 2.0f), *res = host_random (n, 1.0f);
  float *gamma = host_random (c, 1.0f), *beta = host_random (c, 1.0f);
  float *rm = host_random (c, 1.0f), *rv = host_random (c, 1.0f);
  float *dy = host_random (n, 1.0f), *dg0 = host_random (c, 1.0f);
  float *db0 = host_random (c, 1.0f);
  for (int j = 0; j < c; j++)
    rv[j] = fabsf (rv[j]) + 0.1f;
  for (size_t i = 0; i < n; i++)
    x[i] += 0.5f * (float) (i % c); /* per-channel offsets */
  float *out = g_new (float, n), *sm = g_new (float, c), *sr = g_new (float, c),
        *dx = g_new (float, n), *rm_c = host_copy (rm, c),
        *rv_c = host_copy (rv, c), *dg = host_copy (dg0, c),
        *db = host_copy (db0, c);
  float *d_x = dev (x, n), *d_res = dev (res, n), *d_g = dev (gamma, c);
  float *d_b = dev (beta, c), *d_rm = dev (rm, c), *d_rv = dev (rv, c);
  float *d_out = dev_zeros (n), *d_sm = dev_zeros (c), *d_sr = dev_zeros (c);
  float *d_dy = dev (dy, n), *d_dx = dev_zeros (n), *d_dg = dev (dg0, c);
  float *d_db = dev (db0, c);
  GError *e_ = NULL;

  g_snprintf (name, sizeof name, " rows %d c %d%s%s", rows, c,
      with_res ? " +res" : "", relu ? " relu" : "");
  OK (cpu->ops->batchnorm_forward_train (cpu, out, sm, sr, rm_c, rv_c, x, gamma,
      beta, with_res ? res : NULL, rows, c, 0.1f, 1e-5f, relu, &e_));
  OK (gpu->ops->batchnorm_forward_train (gpu, d_out, d_sm, d_sr, d_rm, d_rv,
      d_x, d_g, d_b, with_res ? d_res : NULL, rows, c, 0.1f, 1e-5f, relu, &e_));
  char *what = g_strconcat ("batchnorm_forward_train out", name, NULL);
  check (what, out, d_out, n, TOL_EXACT);
  g_free (what);
  check ("batchnorm_forward_train save_mean", sm, d_sm, c, TOL_EXACT);
  check ("batchnorm_forward_train save_rstd", sr, d_sr, c, TOL_EXACT);
  check ("batchnorm_forward_train running_mean", rm_c, d_rm, c, TOL_EXACT);
  check ("batchnorm_forward_train running_var", rv_c, d_rv, c, TOL_EXACT);

  OK (cpu->ops->batchnorm_forward_eval (cpu, out, x, gamma, beta, rm, rv,
      with_res ? res : NULL, rows, c, 1e-5f, relu, &e_));
  OK (gpu->ops->batchnorm_forward_eval (gpu, d_out, d_x, d_g, d_b, d_rm, d_rv,
      with_res ? d_res : NULL, rows, c, 1e-5f, relu, &e_));
  /* d_rm, d_rv moved above; upload the originals again */
  OK (gpu->ops->upload (gpu, d_rm, rm, c, &e_));
  OK (gpu->ops->upload (gpu, d_rv, rv, c, &e_));
  OK (gpu->ops->batchnorm_forward_eval (gpu, d_out, d_x, d_g, d_b, d_rm, d_rv,
      with_res ? d_res : NULL, rows, c, 1e-5f, relu, &e_));
  what = g_strconcat ("batchnorm_forward_eval", name, NULL);
  check (what, out, d_out, n, TOL_EXACT);
  g_free (what);

  OK (cpu->ops->batchnorm_backward (
      cpu, dx, dg, db, dy, x, sm, sr, gamma, rows, c, &e_));
  OK (gpu->ops->batchnorm_backward (
      gpu, d_dx, d_dg, d_db, d_dy, d_x, d_sm, d_sr, d_g, rows, c, &e_));
  what = g_strconcat ("batchnorm_backward dinp", name, NULL);
  check (what, dx, d_dx, n, TOL_FP32);
  g_free (what);
  check ("batchnorm_backward dgamma+=", dg, d_dg, c, TOL_FP32);
  check ("batchnorm_backward dbeta+=", db, d_db, c, TOL_FP32);

  float *dbufs[] = { d_x, d_res, d_g, d_b, d_rm, d_rv, d_out, d_sm, d_sr, d_dy,
    d_dx, d_dg, d_db };
  for (guint i = 0; i < G_N_ELEMENTS (dbufs); i++)
    gpu->ops->release (gpu, dbufs[i]);
  float *hbufs[] = { x, res, gamma, beta, rm, rv, dy, dg0, db0, out, sm, sr, dx,
    rm_c, rv_c, dg, db };
  for (guint i = 0; i < G_N_ELEMENTS (hbufs); i++)
    g_free (hbufs[i]);
}

int
main (void)
{
  cuda_op_test_begin (2024);
  batchnorm_case (3 * 12 * 12, 64, FALSE, TRUE);
  batchnorm_case (3 * 12 * 12, 64, TRUE, TRUE);
  batchnorm_case (300 * 24 * 24, 64, FALSE, FALSE); /* 128 splits */
  batchnorm_case (37, 256, FALSE, TRUE);            /* BatchNorm1d */
  batchnorm_case (1, 5, FALSE, FALSE);
  return cuda_op_test_end ();
}
