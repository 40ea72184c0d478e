/* The linear layer, forward (with and without ReLU) and backward with
 * accumulating parameter gradients, CUDA against CPU (cuda-op-test.h). */
#include "cuda-op-test.h"

static void
test_linear (void)
{
  const int n = 37, nin = 512, nout = 256;
  size_t nx = (size_t) n * nin, nw = (size_t) nout * nin,
         ny = (size_t) n * nout;
  float *x = host_random (nx, 1.0f), *w = host_random (nw, 0.05f);
  float *bias = host_random (nout, 0.5f), *dy = host_random (ny, 1.0f);
  float *dw0 = host_random (nw, 0.1f), *db0 = host_random (nout, 0.1f);
  float *out = g_new (float, ny), *dx = g_new (float, nx);
  float *dw = host_copy (dw0, nw), *db = host_copy (db0, nout);
  float *d_x = dev (x, nx), *d_w = dev (w, nw), *d_bias = dev (bias, nout);
  float *d_dy = dev (dy, ny), *d_dw = dev (dw0, nw), *d_db = dev (db0, nout);
  float *d_out = dev_zeros (ny), *d_dx = dev_zeros (nx);
  GError *e_ = NULL;

  for (int relu = 0; relu < 2; relu++) {
    OK (cpu->ops->linear_forward (
        cpu, out, x, w, bias, n, nin, nout, relu, &e_));
    OK (gpu->ops->linear_forward (
        gpu, d_out, d_x, d_w, d_bias, n, nin, nout, relu, &e_));
    check (relu ? "linear_forward relu" : "linear_forward", out, d_out, ny,
        TOL_FP32);
  }
  OK (cpu->ops->linear_backward (cpu, dx, dw, db, dy, x, w, n, nin, nout, &e_));
  OK (gpu->ops->linear_backward (
      gpu, d_dx, d_dw, d_db, d_dy, d_x, d_w, n, nin, nout, &e_));
  check ("linear_backward dinp", dx, d_dx, nx, TOL_FP32);
  check ("linear_backward dweight+=", dw, d_dw, nw, TOL_FP32);
  check ("linear_backward dbias+=", db, d_db, nout, TOL_FP32);

  float *dbufs[] = { d_x, d_w, d_bias, d_dy, d_dw, d_db, d_out, d_dx };
  for (guint i = 0; i < G_N_ELEMENTS (dbufs); i++)
    gpu->ops->release (gpu, dbufs[i]);
  float *hbufs[] = { x, w, bias, dy, dw0, db0, out, dx, dw, db };
  for (guint i = 0; i < G_N_ELEMENTS (hbufs); i++)
    g_free (hbufs[i]);
}

int
main (void)
{
  cuda_op_test_begin (2024);
  test_linear ();
  return cuda_op_test_end ();
}
