/* Every backend op, CUDA against CPU: the same random inputs through both
 * backends' vtables, outputs (and accumulated parameter gradients)
 * compared by normalised error ||gpu - cpu|| / ||cpu||, printed per op,
 * then checked against the op's tolerance. Runs in exact FP32
 * (FER_CUDA_MATH=fp32, set here) so that the tolerances can be tight;
 * the convolutions are also run once in TF32 against a looser bound.
 * Shapes: every distinct convolution of ResNet-18 at 48x48 (both stems)
 * at batch 3, plus odd sizes. Also the preprocess op (the input batch
 * built on the device from a frame) against fer_preprocess, every pixel
 * format.
 * Skips (exit 77) with "SKIP: no CUDA device (...)" without a device. */
#include <string.h>

#include <fer/image.h>
#include "gpu-common.h"
#include <fer/rng.h>

static fer_backend *cpu, *gpu;
static fer_rng rng;
static int failures;

/* tolerances: ops whose floats are computed the same way on both sides
 * (element-wise, pooling, optimizer steps, batch-norm epilogues), FP32
 * GEMM-like ops (different summation order), FP32 convolutions (cuDNN may
 * pick an FFT or Winograd algorithm, a few 1e-6 to 1e-5 off), TF32 */
#define TOL_EXACT 1e-6
#define TOL_FP32 2e-5
#define TOL_CONV 1e-4
#define TOL_TF32 5e-3

static float *
host_random (size_t n, float scale)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = scale * fer_rng_normal (&rng);
  return x;
}

static float *
host_copy (const float *x, size_t n)
{
  return g_memdup2 (x, n * sizeof (float));
}

/* A device copy of host x. */
static float *
dev (const float *x, size_t n)
{
  GError *error = NULL;
  float *d = gpu->ops->alloc (gpu, n, &error);
  g_assert_no_error (error);
  g_assert_true (gpu->ops->upload (gpu, d, x, n, &error));
  return d;
}

static float *
dev_zeros (size_t n)
{
  GError *error = NULL;
  float *d = gpu->ops->alloc (gpu, n, &error);
  g_assert_no_error (error);
  return d;
}

static void
check (const char *op, const float *ref, float *d, size_t n, double tol)
{
  GError *error = NULL;
  float *got = g_new (float, n);
  g_assert_true (gpu->ops->download (gpu, got, d, n, &error));
  g_assert_no_error (error);
  double e = normalised_error (ref, got, n);
  gboolean ok = e <= tol;
  printf ("%-4s %-44s %zu values, normalised error %.3g (tolerance %.0e)\n",
      ok ? "ok" : "FAIL", op, n, e, tol);
  failures += !ok;
  g_free (got);
}

/* An op call that must succeed; the calls pass &e_, a GError * of the
 * calling function. */
#define OK(call) \
  do { if (!(call)) { \
      printf ("FAIL %s: %s\n", #call, e_ ? e_->message : "?"); \
      failures++; g_clear_error (&e_); } } while (0)

/* ---- convolutions ---- */

static void
conv_case (int n, int h, int cin, int cout, int k, int stride, int pad,
    double tol)
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
  float *wp_c = cpu->ops->conv2d_prepare_weight (cpu, w, cout, k, cin, &e_);
  float *wp_g = gpu->ops->conv2d_prepare_weight (gpu, w, cout, k, cin, &e_);
  g_assert_no_error (e_);
  float *dx_in = dev (x, ni), *d_out = dev_zeros (no), *d_bias = dev (bias,
      cout), *d_res = dev (res, no);
  for (int variant = 0; variant < 3; variant++) {
    gboolean relu = variant != 1;
    gboolean with_res = variant == 2;
    OK (cpu->ops->conv2d_forward (cpu, out, x, wp_c, bias,
            with_res ? res : NULL, &s, relu, &e_));
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
  OK (cpu->ops->conv2d_forward_train (cpu, out, x, w, &s, ws, ws_n, &e_));
  OK (gpu->ops->conv2d_forward_train (gpu, d_out, dx_in, d_w, &s, NULL, 0,
          &e_));
  g_snprintf (name, sizeof name, "conv2d_forward_train %dx%d/%d %d>%d",
      k, k, stride, cin, cout);
  check (name, out, d_out, no, tol);
  OK (cpu->ops->conv2d_backward (cpu, dx, dw, dy, x, w, &s, ws, ws_n, &e_));
  OK (gpu->ops->conv2d_backward (gpu, d_dx, d_dw, d_dy, dx_in, d_w, &s, NULL,
          0, &e_));
  g_snprintf (name, sizeof name, "conv2d_backward dinp %dx%d/%d %d>%d",
      k, k, stride, cin, cout);
  check (name, dx, d_dx, ni, tol);
  g_snprintf (name, sizeof name, "conv2d_backward dweight+= %dx%d/%d %d>%d",
      k, k, stride, cin, cout);
  check (name, dw, d_dw, nw, tol);

  cpu->ops->release (cpu, wp_c);
  cpu->ops->release (cpu, ws);
  float *dbufs[] = { wp_g, dx_in, d_out, d_bias, d_res, d_w, d_dy, d_dx,
    d_dw };
  for (guint i = 0; i < G_N_ELEMENTS (dbufs); i++)
    gpu->ops->release (gpu, dbufs[i]);
  float *hbufs[] = { x, w, bias, res, dy, dw0, out, dx, dw };
  for (guint i = 0; i < G_N_ELEMENTS (hbufs); i++)
    g_free (hbufs[i]);
}

static void
test_convolutions (double tol)
{
  conv_case (3, 48, 1, 64, 7, 2, 3, tol);   /* torchvision stem */
  conv_case (3, 48, 3, 64, 3, 1, 1, tol);   /* small stem, colour */
  conv_case (3, 12, 64, 64, 3, 1, 1, tol);
  conv_case (3, 12, 64, 128, 3, 2, 1, tol);
  conv_case (3, 12, 64, 128, 1, 2, 0, tol); /* downsample */
  conv_case (3, 6, 128, 256, 3, 2, 1, tol);
  conv_case (3, 3, 256, 512, 3, 2, 1, tol);
  conv_case (3, 2, 512, 512, 3, 1, 1, tol);
  conv_case (1, 7, 5, 9, 3, 2, 1, tol);     /* odd sizes */
}

/* ---- the rest ---- */

static void
test_pooling (void)
{
  const int n = 3, h = 24, w = 23, c = 64, hw = 36;
  const int oh = (h + 2 - 3) / 2 + 1, ow = (w + 2 - 3) / 2 + 1;
  size_t ni = (size_t) n * h * w * c, no = (size_t) n * oh * ow * c;
  float *x = host_random (ni, 1.0f), *dy = host_random (no, 1.0f);
  GError *e_ = NULL;
  /* ReLU-like ties: a third of the inputs exactly 0 */
  for (size_t i = 0; i < ni; i += 3)
    x[i] = 0.0f;
  float *out = g_new (float, no), *dx = g_new (float, ni);
  float *d_x = dev (x, ni), *d_out = dev_zeros (no), *d_dy = dev (dy, no);
  float *d_dx = dev_zeros (ni);
  OK (cpu->ops->maxpool2d_forward (cpu, out, x, n, h, w, c, 3, 2, 1, &e_));
  OK (gpu->ops->maxpool2d_forward (gpu, d_out, d_x, n, h, w, c, 3, 2, 1,
          &e_));
  check ("maxpool2d_forward 3x3/2", out, d_out, no, TOL_EXACT);
  OK (cpu->ops->maxpool2d_backward (cpu, dx, dy, x, n, h, w, c, 3, 2, 1,
          &e_));
  OK (gpu->ops->maxpool2d_backward (gpu, d_dx, d_dy, d_x, n, h, w, c, 3, 2,
          1, &e_));
  check ("maxpool2d_backward (ties)", dx, d_dx, ni, TOL_EXACT);

  float *feat = g_new (float, n * c), *d_feat = dev_zeros (n * c);
  OK (cpu->ops->avgpool_forward (cpu, feat, x, n, hw, c, &e_));
  OK (gpu->ops->avgpool_forward (gpu, d_feat, d_x, n, hw, c, &e_));
  check ("avgpool_forward", feat, d_feat, (size_t) n * c, TOL_EXACT);
  float *dfeat = host_random (n * c, 1.0f), *d_dfeat = dev (dfeat, n * c);
  OK (cpu->ops->avgpool_backward (cpu, dx, dfeat, n, hw, c, &e_));
  OK (gpu->ops->avgpool_backward (gpu, d_dx, d_dfeat, n, hw, c, &e_));
  check ("avgpool_backward", dx, d_dx, (size_t) n * hw * c, TOL_EXACT);

  float *dbufs[] = { d_x, d_out, d_dy, d_dx, d_feat, d_dfeat };
  for (guint i = 0; i < G_N_ELEMENTS (dbufs); i++)
    gpu->ops->release (gpu, dbufs[i]);
  float *hbufs[] = { x, dy, out, dx, feat, dfeat };
  for (guint i = 0; i < G_N_ELEMENTS (hbufs); i++)
    g_free (hbufs[i]);
}

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
    x[i] += 0.5f * (float) (i % c);   /* per-channel offsets */
  float *out = g_new (float, n), *sm = g_new (float, c), *sr = g_new (float,
      c), *dx = g_new (float, n), *rm_c = host_copy (rm, c), *rv_c =
      host_copy (rv, c), *dg = host_copy (dg0, c), *db = host_copy (db0, c);
  float *d_x = dev (x, n), *d_res = dev (res, n), *d_g = dev (gamma, c);
  float *d_b = dev (beta, c), *d_rm = dev (rm, c), *d_rv = dev (rv, c);
  float *d_out = dev_zeros (n), *d_sm = dev_zeros (c), *d_sr = dev_zeros (c);
  float *d_dy = dev (dy, n), *d_dx = dev_zeros (n), *d_dg = dev (dg0, c);
  float *d_db = dev (db0, c);
  GError *e_ = NULL;

  g_snprintf (name, sizeof name, " rows %d c %d%s%s", rows, c,
      with_res ? " +res" : "", relu ? " relu" : "");
  OK (cpu->ops->batchnorm_forward_train (cpu, out, sm, sr, rm_c, rv_c, x,
          gamma, beta, with_res ? res : NULL, rows, c, 0.1f, 1e-5f, relu,
          &e_));
  OK (gpu->ops->batchnorm_forward_train (gpu, d_out, d_sm, d_sr, d_rm, d_rv,
          d_x, d_g, d_b, with_res ? d_res : NULL, rows, c, 0.1f, 1e-5f, relu,
          &e_));
  char *what = g_strconcat ("batchnorm_forward_train out", name, NULL);
  check (what, out, d_out, n, TOL_EXACT);
  g_free (what);
  check ("batchnorm_forward_train save_mean", sm, d_sm, c, TOL_EXACT);
  check ("batchnorm_forward_train save_rstd", sr, d_sr, c, TOL_EXACT);
  check ("batchnorm_forward_train running_mean", rm_c, d_rm, c, TOL_EXACT);
  check ("batchnorm_forward_train running_var", rv_c, d_rv, c, TOL_EXACT);

  OK (cpu->ops->batchnorm_forward_eval (cpu, out, x, gamma, beta, rm, rv,
          with_res ? res : NULL, rows, c, 1e-5f, relu, &e_));
  OK (gpu->ops->batchnorm_forward_eval (gpu, d_out, d_x, d_g, d_b, d_rm,
          d_rv, with_res ? d_res : NULL, rows, c, 1e-5f, relu, &e_));
  /* d_rm, d_rv moved above; upload the originals again */
  OK (gpu->ops->upload (gpu, d_rm, rm, c, &e_));
  OK (gpu->ops->upload (gpu, d_rv, rv, c, &e_));
  OK (gpu->ops->batchnorm_forward_eval (gpu, d_out, d_x, d_g, d_b, d_rm,
          d_rv, with_res ? d_res : NULL, rows, c, 1e-5f, relu, &e_));
  what = g_strconcat ("batchnorm_forward_eval", name, NULL);
  check (what, out, d_out, n, TOL_EXACT);
  g_free (what);

  OK (cpu->ops->batchnorm_backward (cpu, dx, dg, db, dy, x, sm, sr, gamma,
          rows, c, &e_));
  OK (gpu->ops->batchnorm_backward (gpu, d_dx, d_dg, d_db, d_dy, d_x, d_sm,
          d_sr, d_g, rows, c, &e_));
  what = g_strconcat ("batchnorm_backward dinp", name, NULL);
  check (what, dx, d_dx, n, TOL_FP32);
  g_free (what);
  check ("batchnorm_backward dgamma+=", dg, d_dg, c, TOL_FP32);
  check ("batchnorm_backward dbeta+=", db, d_db, c, TOL_FP32);

  float *dbufs[] = { d_x, d_res, d_g, d_b, d_rm, d_rv, d_out, d_sm, d_sr,
    d_dy, d_dx, d_dg, d_db };
  for (guint i = 0; i < G_N_ELEMENTS (dbufs); i++)
    gpu->ops->release (gpu, dbufs[i]);
  float *hbufs[] = { x, res, gamma, beta, rm, rv, dy, dg0, db0, out, sm, sr,
    dx, rm_c, rv_c, dg, db };
  for (guint i = 0; i < G_N_ELEMENTS (hbufs); i++)
    g_free (hbufs[i]);
}

static void
test_elementwise (void)
{
  const size_t n = 100003;
  float *a = host_random (n, 1.0f), *b = host_random (n, 1.0f);
  float *mask = g_new (float, n), *out = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    mask[i] = fer_rng_uniform (&rng) < 0.5f ? 0.0f : 2.0f;
  float *d_a = dev (a, n), *d_b = dev (b, n), *d_m = dev (mask, n);
  float *d_out = dev_zeros (n);
  GError *e_ = NULL;

  OK (cpu->ops->relu_backward (cpu, out, a, b, n, &e_));
  OK (gpu->ops->relu_backward (gpu, d_out, d_a, d_b, n, &e_));
  check ("relu_backward", out, d_out, n, TOL_EXACT);
  OK (cpu->ops->add (cpu, out, a, b, n, &e_));
  OK (gpu->ops->add (gpu, d_out, d_a, d_b, n, &e_));
  check ("add", out, d_out, n, TOL_EXACT);
  OK (cpu->ops->dropout_forward (cpu, out, a, mask, n, &e_));
  OK (gpu->ops->dropout_forward (gpu, d_out, d_a, d_m, n, &e_));
  check ("dropout_forward", out, d_out, n, TOL_EXACT);
  OK (cpu->ops->dropout_backward (cpu, out, b, mask, n, &e_));
  OK (gpu->ops->dropout_backward (gpu, d_out, d_b, d_m, n, &e_));
  check ("dropout_backward", out, d_out, n, TOL_EXACT);
  /* in place, as the trainer calls them */
  OK (cpu->ops->relu_backward (cpu, a, a, b, n, &e_));
  OK (gpu->ops->relu_backward (gpu, d_a, d_a, d_b, n, &e_));
  check ("relu_backward in place", a, d_a, n, TOL_EXACT);
  OK (cpu->ops->add (cpu, a, a, b, n, &e_));
  OK (gpu->ops->add (gpu, d_a, d_a, d_b, n, &e_));
  check ("add in place", a, d_a, n, TOL_EXACT);
  OK (cpu->ops->zero (cpu, a, n, &e_));
  OK (gpu->ops->zero (gpu, d_a, n, &e_));
  check ("zero", a, d_a, n, TOL_EXACT);

  float *dbufs[] = { d_a, d_b, d_m, d_out };
  for (guint i = 0; i < G_N_ELEMENTS (dbufs); i++)
    gpu->ops->release (gpu, dbufs[i]);
  g_free (a);
  g_free (b);
  g_free (mask);
  g_free (out);
}

static void
test_linear (void)
{
  const int n = 37, nin = 512, nout = 256;
  size_t nx = (size_t) n * nin, nw = (size_t) nout * nin, ny = (size_t) n *
      nout;
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
    OK (cpu->ops->linear_forward (cpu, out, x, w, bias, n, nin, nout, relu,
            &e_));
    OK (gpu->ops->linear_forward (gpu, d_out, d_x, d_w, d_bias, n, nin, nout,
            relu, &e_));
    check (relu ? "linear_forward relu" : "linear_forward", out, d_out, ny,
        TOL_FP32);
  }
  OK (cpu->ops->linear_backward (cpu, dx, dw, db, dy, x, w, n, nin, nout,
          &e_));
  OK (gpu->ops->linear_backward (gpu, d_dx, d_dw, d_db, d_dy, d_x, d_w, n,
          nin, nout, &e_));
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

static void
test_loss (void)
{
  const int n = 300, k = 7;
  float *z = host_random ((size_t) n * k, 3.0f);
  float wts[7] = { 1.0f, 9.4f, 1.0f, 0.6f, 0.8f, 0.9f, 1.2f };
  int *ya = g_new (int, n), *yb = g_new (int, n);
  for (int i = 0; i < n; i++) {
    ya[i] = (int) (fer_rng_uniform (&rng) * k) % k;
    yb[i] = (int) (fer_rng_uniform (&rng) * k) % k;
  }
  float *dz = g_new (float, (size_t) n * k);
  float *d_z = dev (z, (size_t) n * k), *d_w = dev (wts, k);
  float *d_dz = dev_zeros ((size_t) n * k);
  const struct { const char *name; gboolean weights, mixup; float smooth,
        gamma; } cases[] = {
    { "plain", FALSE, FALSE, 0.0f, 0.0f },
    { "weights + smoothing", TRUE, FALSE, 0.1f, 0.0f },
    { "weights + focal", TRUE, FALSE, 0.0f, 2.0f },
    { "mixup + smoothing + focal", TRUE, TRUE, 0.1f, 1.5f },
  };
  GError *e_ = NULL;
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    float lc = 0.0f, lg = 0.0f;
    char name[96];
    OK (cpu->ops->softmax_xent (cpu, &lc, dz, z, ya,
            cases[c].mixup ? yb : NULL, 0.3f, cases[c].weights ? wts : NULL,
            n, k, cases[c].smooth, cases[c].gamma, &e_));
    OK (gpu->ops->softmax_xent (gpu, &lg, d_dz, d_z, ya,
            cases[c].mixup ? yb : NULL, 0.3f, cases[c].weights ? d_w : NULL,
            n, k, cases[c].smooth, cases[c].gamma, &e_));
    g_snprintf (name, sizeof name, "softmax_xent loss (%s)", cases[c].name);
    double e = fabs ((double) lg - lc) / fmax (fabs (lc), 1e-30);
    gboolean ok = e <= TOL_EXACT;
    printf ("%-4s %-44s cpu %.9g gpu %.9g, normalised error %.3g\n",
        ok ? "ok" : "FAIL", name, lc, lg, e);
    failures += !ok;
    g_snprintf (name, sizeof name, "softmax_xent dlogits (%s)",
        cases[c].name);
    check (name, dz, d_dz, (size_t) n * k, TOL_EXACT);
  }
  gpu->ops->release (gpu, d_z);
  gpu->ops->release (gpu, d_w);
  gpu->ops->release (gpu, d_dz);
  g_free (z);
  g_free (ya);
  g_free (yb);
  g_free (dz);
}

static void
test_optimizers (void)
{
  const size_t n = 50021;
  float *p = host_random (n, 1.0f), *m = host_random (n, 0.1f);
  float *v = host_random (n, 0.1f), *g = host_random (n, 1.0f);
  for (size_t i = 0; i < n; i++)
    v[i] = fabsf (v[i]);
  float *d_p = dev (p, n), *d_m = dev (m, n), *d_v = dev (v, n);
  float *d_g = dev (g, n);
  GError *e_ = NULL;

  for (int step = 1; step <= 3; step++) {
    OK (cpu->ops->adam_update (cpu, p, m, v, g, n, 1e-3f, 0.9f, 0.999f,
            1e-8f, 1e-2f, step, FALSE, &e_));
    OK (gpu->ops->adam_update (gpu, d_p, d_m, d_v, d_g, n, 1e-3f, 0.9f,
            0.999f, 1e-8f, 1e-2f, step, FALSE, &e_));
  }
  check ("adam_update (L2) params, 3 steps", p, d_p, n, TOL_EXACT);
  check ("adam_update (L2) m", m, d_m, n, TOL_EXACT);
  check ("adam_update (L2) v", v, d_v, n, TOL_EXACT);
  for (int step = 4; step <= 5; step++) {
    OK (cpu->ops->adam_update (cpu, p, m, v, g, n, 1e-3f, 0.9f, 0.999f,
            1e-8f, 5e-2f, step, TRUE, &e_));
    OK (gpu->ops->adam_update (gpu, d_p, d_m, d_v, d_g, n, 1e-3f, 0.9f,
            0.999f, 1e-8f, 5e-2f, step, TRUE, &e_));
  }
  check ("adam_update (AdamW) params", p, d_p, n, TOL_EXACT);
  for (int step = 0; step < 3; step++) {
    OK (cpu->ops->sgd_update (cpu, p, m, g, n, 1e-2f, 0.9f, 1e-4f, TRUE,
            step == 0, &e_));
    OK (gpu->ops->sgd_update (gpu, d_p, d_m, d_g, n, 1e-2f, 0.9f, 1e-4f,
            TRUE, step == 0, &e_));
  }
  check ("sgd_update (Nesterov) params", p, d_p, n, TOL_EXACT);
  check ("sgd_update (Nesterov) buf", m, d_m, n, TOL_EXACT);

  float *dbufs[] = { d_p, d_m, d_v, d_g };
  for (guint i = 0; i < G_N_ELEMENTS (dbufs); i++)
    gpu->ops->release (gpu, dbufs[i]);
  g_free (p);
  g_free (m);
  g_free (v);
  g_free (g);
}

/* ---- preprocessing on the device ---- */

/* Every pixel format, gray and colour inputs, views inside, across and
 * outside the frame edges, flipped, downscaled: the backend's preprocess
 * op against fer_preprocess (NCHW, transposed here to NHWC). */
static void
test_preprocess (void)
{
  enum { W = 101, H = 77, S = 48, N_VIEWS = 5 };
  static const fer_pixel_format formats[] = { FER_PIXEL_GRAY8,
    FER_PIXEL_RGB, FER_PIXEL_BGRA, FER_PIXEL_XRGB, FER_PIXEL_I420,
    FER_PIXEL_NV12 };
  static const char *const names[] = { "GRAY8", "RGB", "BGRA", "xRGB",
    "I420", "NV12" };
  const fer_view views[N_VIEWS] = {
    { { 10.0f, 5.0f, 60.0f, 60.0f }, FALSE },
    { { 10.0f, 5.0f, 60.0f, 60.0f }, TRUE },
    { { -12.5f, 30.25f, 40.0f, 52.0f }, FALSE },   /* across the edges */
    { { 3.0f, 2.0f, 20.0f, 17.0f }, TRUE },        /* upscaled */
    { { 0.0f, 0.0f, (float) W, (float) H }, FALSE },
  };
  const int bpp[] = { 1, 3, 4, 4, 1, 1 };
  GError *e_ = NULL;

  for (guint fi = 0; fi < G_N_ELEMENTS (formats); fi++) {
    for (int C = 1; C <= 3; C += 2) {
      for (int full = 0; full < 2; full++) {
        const int stride = W * bpp[fi] + 7, cstride = (W + 1) / 2 * 2 + 5;
        guint8 *p0 = g_new (guint8, (size_t) stride * H);
        guint8 *p1 = g_new (guint8, (size_t) cstride * H);
        guint8 *p2 = g_new (guint8, (size_t) cstride * H);
        for (size_t i = 0; i < (size_t) stride * H; i++)
          p0[i] = (guint8) (fer_rng_uniform (&rng) * 256.0f);
        for (size_t i = 0; i < (size_t) cstride * H; i++) {
          p1[i] = (guint8) (fer_rng_uniform (&rng) * 256.0f);
          p2[i] = (guint8) (fer_rng_uniform (&rng) * 256.0f);
        }
        fer_image img = { formats[fi], W, H, { p0, p1, p2 },
          { stride, cstride, cstride }, full };
        fer_input_spec spec = { S, C, { 0.5f, 0.4f, 0.3f },
          { 0.25f, 0.2f, 0.3f } };
        const size_t per = (size_t) S * S * C;
        float *ref = g_new (float, per * N_VIEWS), *one = g_new (float, per);
        for (int v = 0; v < N_VIEWS; v++) {
          g_assert_true (fer_preprocess (&img, &views[v], &spec, one, NULL,
                  &e_));
          for (int c = 0; c < C; c++)
            for (int p = 0; p < S * S; p++)
              ref[per * v + (size_t) p * C + c] = one[(size_t) c * S * S + p];
        }
        float *d_out = dev_zeros (per * N_VIEWS);
        char name[96];
        OK (gpu->ops->preprocess (gpu, d_out, &img, views, N_VIEWS, &spec,
                &e_));
        g_snprintf (name, sizeof name, "preprocess %s -> %d channel%s%s",
            names[fi], C, C > 1 ? "s" : "",
            fi >= 4 ? (full ? " full range" : " limited range") : "");
        check (name, ref, d_out, per * N_VIEWS, TOL_EXACT);
        gpu->ops->release (gpu, d_out);
        g_free (ref);
        g_free (one);
        g_free (p0);
        g_free (p1);
        g_free (p2);
        if (fi < 4)
          break;   /* full_range matters to YUV only */
      }
    }
  }
}

/* A failure of a CUDA call comes back as a GError naming the call. */
static void
test_error_path (void)
{
  GError *error = NULL;
  float *p = gpu->ops->alloc (gpu, (size_t) 1 << 62, &error);
  gboolean ok = !p && error && strstr (error->message, "cudaMalloc");
  printf ("%-4s %-44s %s\n", ok ? "ok" : "FAIL", "alloc of 2^62 floats",
      error ? error->message : "(no error)");
  failures += !ok;
  g_clear_error (&error);
}

int
main (void)
{
  GError *error = NULL;

  g_setenv ("FER_CUDA_MATH", "fp32", TRUE);
  gpu = gpu_backend_or_skip ();
  cpu = fer_backend_new (FER_BACKEND_CPU, 0, 1, NULL, &error);
  g_assert_no_error (error);
  fer_rng_seed (&rng, 2024);

  printf ("# exact FP32 (FER_CUDA_MATH=fp32)\n");
  test_convolutions (TOL_CONV);
  test_pooling ();
  batchnorm_case (3 * 12 * 12, 64, FALSE, TRUE);
  batchnorm_case (3 * 12 * 12, 64, TRUE, TRUE);
  batchnorm_case (300 * 24 * 24, 64, FALSE, FALSE);  /* 128 splits */
  batchnorm_case (37, 256, FALSE, TRUE);             /* BatchNorm1d */
  batchnorm_case (1, 5, FALSE, FALSE);
  test_elementwise ();
  test_linear ();
  test_loss ();
  test_optimizers ();
  test_preprocess ();
  test_error_path ();
  fer_backend_free (gpu);

  printf ("# TF32 (FER_CUDA_MATH=tf32): convolutions\n");
  g_setenv ("FER_CUDA_MATH", "tf32", TRUE);
  gpu = gpu_backend_or_skip ();
  test_convolutions (TOL_TF32);
  fer_backend_free (gpu);
  fer_backend_free (cpu);

  printf ("%d failure%s\n", failures, failures == 1 ? "" : "s");
  return failures ? 1 : 0;
}
