/* The convolutions, CUDA against CPU (cuda-op-test.h): inference with
 * and without ReLU and residual, the training forward, the input gradient
 * and the accumulating weight gradient, for every distinct convolution of
 * ResNet-18 at 48x48 (both stems) at batch 3 and odd sizes, in exact FP32
 * and once more in TF32 and in FP16 (half-precision inference, the
 * training ops in TF32) against looser bounds. */
#include "cuda-op-test.h"

static void
conv_case (
    int n, int h, int cin, int cout, int k, int stride, int pad, double tol)
{
  fer_conv_shape s;
  char name[96];
  fer_conv_shape_init (&s, n, h, h, cin, cout, k, stride, pad);
  size_t ni = (size_t) n * h * h * cin, no = (size_t) n * s.oh * s.ow * cout;
  size_t nw = (size_t) cout * k * k * cin;
  float *x = host_random (ni, 1.0f), *w = host_random (nw, 0.1f);
  float *bias = host_random (cout, 0.5f), *res = host_random (no, 1.0f);
  float *dy = host_random (no, 1.0f), *dw0 = host_random (nw, 0.1f);
  float *out = g_new (float, no), *dx = g_new (float, ni);
  float *dw = host_copy (dw0, nw);
  GError *e_ = NULL;

  /* inference: with and without ReLU and residual */
  float *wp_c = cpu->ops->conv2d_prepare_weight (cpu, w, NULL, &s, FALSE, &e_);
  float *wp_g = gpu->ops->conv2d_prepare_weight (gpu, w, NULL, &s, FALSE, &e_);
  g_assert_no_error (e_);
  float *dx_in = dev (x, ni), *d_out = dev_zeros (no),
        *d_bias = dev (bias, cout), *d_res = dev (res, no);
  for (int variant = 0; variant < 3; variant++) {
    gboolean relu = variant != 1;
    gboolean with_res = variant == 2;
    OK (cpu->ops->conv2d_forward (
        cpu, out, x, wp_c, bias, with_res ? res : NULL, &s, relu, &e_));
    OK (gpu->ops->conv2d_forward (gpu, d_out, dx_in, wp_g, d_bias,
        with_res ? d_res : NULL, &s, relu, &e_));
    g_snprintf (name, sizeof name, "conv2d_forward %dx%d/%d %d>%d n%d h%d%s%s",
        k, k, stride, cin, cout, n, h, relu ? " relu" : "",
        with_res ? " +res" : "");
    check (name, out, d_out, no, tol);
  }

  /* training: forward, then backward with dinp and accumulating dweight */
  size_t ws_n = MAX (cpu->ops->conv2d_train_workspace (cpu, &s), 1);
  float *ws = cpu->ops->alloc (cpu, ws_n, &e_);
  float *d_w = dev (w, nw), *d_dy = dev (dy, no), *d_dx = dev_zeros (ni);
  float *d_dw = dev (dw0, nw);
  OK (cpu->ops->conv2d_forward_train (cpu, out, x, w, &s, &e_));
  OK (gpu->ops->conv2d_forward_train (gpu, d_out, dx_in, d_w, &s, &e_));
  g_snprintf (name, sizeof name, "conv2d_forward_train %dx%d/%d %d>%d", k, k,
      stride, cin, cout);
  check (name, out, d_out, no, tol);
  OK (cpu->ops->conv2d_backward (cpu, dx, dw, dy, x, w, &s, ws, ws_n, &e_));
  OK (gpu->ops->conv2d_backward (
      gpu, d_dx, d_dw, d_dy, dx_in, d_w, &s, NULL, 0, &e_));
  g_snprintf (name, sizeof name, "conv2d_backward dinp %dx%d/%d %d>%d", k, k,
      stride, cin, cout);
  check (name, dx, d_dx, ni, tol);
  g_snprintf (name, sizeof name, "conv2d_backward dweight+= %dx%d/%d %d>%d", k,
      k, stride, cin, cout);
  check (name, dw, d_dw, nw, tol);

  cpu->ops->release (cpu, wp_c);
  cpu->ops->release (cpu, ws);
  float *dbufs[] = { wp_g, dx_in, d_out, d_bias, d_res, d_w, d_dy, d_dx, d_dw };
  for (guint i = 0; i < G_N_ELEMENTS (dbufs); i++)
    gpu->ops->release (gpu, dbufs[i]);
  float *hbufs[] = { x, w, bias, res, dy, dw0, out, dx, dw };
  for (guint i = 0; i < G_N_ELEMENTS (hbufs); i++)
    g_free (hbufs[i]);
}

static void
test_convolutions (double tol)
{
  conv_case (3, 48, 1, 64, 7, 2, 3, tol); /* torchvision stem */
  conv_case (3, 48, 3, 64, 3, 1, 1, tol); /* small stem, colour */
  conv_case (3, 12, 64, 64, 3, 1, 1, tol);
  conv_case (3, 12, 64, 128, 3, 2, 1, tol);
  conv_case (3, 12, 64, 128, 1, 2, 0, tol); /* downsample */
  conv_case (3, 6, 128, 256, 3, 2, 1, tol);
  conv_case (3, 3, 256, 512, 3, 2, 1, tol);
  conv_case (3, 2, 512, 512, 3, 1, 1, tol);
  conv_case (1, 7, 5, 9, 3, 2, 1, tol); /* odd sizes */
}

int
main (void)
{
  cuda_op_test_begin (2024);
  printf ("# exact FP32 (FER_CUDA_MATH=fp32)\n");
  test_convolutions (TOL_CONV);
  printf ("# TF32 (FER_CUDA_MATH=tf32)\n");
  cuda_op_test_math ("tf32");
  test_convolutions (TOL_TF32);
  printf ("# FP16 inference, TF32 training (FER_CUDA_MATH=fp16)\n");
  cuda_op_test_math ("fp16");
  test_convolutions (TOL_FP16);
  return cuda_op_test_end ();
}
