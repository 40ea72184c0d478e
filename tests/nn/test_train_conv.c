/* The CPU training convolution (forward, input gradient, weight gradient)
 * against a naive double-precision reference written here from the
 * definition, on odd shapes: 1x1, 3x3 and 7x7 kernels, strides 1 and 2,
 * padding 0 to 3 (also more than the kernel reaches), channel counts that
 * are not multiples of any vector width, batches of 1 and more, and a
 * workspace smaller than the batch needs (the input gradient then runs in
 * chunks of images). Every case runs on each kernel this CPU has (C, AVX2,
 * AVX-512) with 1 and 2 threads, and prints its max error. Contract checked
 * on the way: dweight accumulates onto what is there, dinp and out are
 * overwritten (they start as NaN, so that anything left unwritten shows). */
#include <math.h>
#include <string.h>

#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/ops_train.h"
#include "cpu/workers.h"
#include <fer/rng.h>
#include "test-util.h"

#define TOL 1e-5
#define DWEIGHT_START 0.25f

static fer_rng rng;

static float *
nan_floats (size_t n)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = NAN;
  return x;
}

/* out = conv(inp, w); dinp = conv^T(dout, w); dw = start + dout^T . im2col */
static void
naive_conv_train (double *out, double *dinp, double *dw, const float *inp,
    const float *w, const float *dout, const fer_conv_shape *s)
{
  const size_t nin = (size_t) s->n * s->h * s->w * s->cin;
  const size_t nw = (size_t) s->cout * s->k * s->k * s->cin;

  memset (dinp, 0, nin * sizeof (double));
  for (size_t i = 0; i < nw; i++)
    dw[i] = DWEIGHT_START;
  for (int b = 0; b < s->n; b++)
    for (int oy = 0; oy < s->oh; oy++)
      for (int ox = 0; ox < s->ow; ox++)
        for (int o = 0; o < s->cout; o++) {
          size_t oi = (((size_t) b * s->oh + oy) * s->ow + ox) * s->cout + o;
          double acc = 0.0;
          for (int ky = 0; ky < s->k; ky++)
            for (int kx = 0; kx < s->k; kx++) {
              int iy = oy * s->stride - s->pad + ky;
              int ix = ox * s->stride - s->pad + kx;
              if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                continue;
              size_t ii = (((size_t) b * s->h + iy) * s->w + ix) * s->cin;
              size_t wi = (((size_t) o * s->k + ky) * s->k + kx) * s->cin;
              for (int c = 0; c < s->cin; c++) {
                acc += (double) inp[ii + c] * w[wi + c];
                dinp[ii + c] += (double) dout[oi] * w[wi + c];
                dw[wi + c] += (double) dout[oi] * inp[ii + c];
              }
            }
          out[oi] = acc;
        }
}

typedef struct
{
  int n, h, w, cin, cout, k, stride, pad;
  int ws_images;    /* workspace for this many images; 0: the whole batch */
} conv_case;

static void
check_case (const conv_case *c, fer_cpu_conv_scratch *scratch,
    fer_cpu_workers *two)
{
  fer_conv_shape s;
  fer_conv_shape_init (&s, c->n, c->h, c->w, c->cin, c->cout, c->k,
      c->stride, c->pad);
  const size_t nin = (size_t) s.n * s.h * s.w * s.cin;
  const size_t nw = (size_t) s.cout * s.k * s.k * s.cin;
  const size_t nout = (size_t) s.n * s.oh * s.ow * s.cout;
  const size_t per_image = fer_cpu_conv2d_train_col_per_image (&s);
  const size_t ws_floats = per_image * (c->ws_images ? c->ws_images : s.n);
  float *inp = test_random_floats (&rng, nin), *w = test_random_floats (&rng, nw);
  float *dout = test_random_floats (&rng, nout);
  float *ws = g_new (float, MAX (ws_floats, 1));
  double *ref_out = g_new (double, nout), *ref_dinp = g_new (double, nin);
  double *ref_dw = g_new (double, nw);
  const fer_cpu_isa best = fer_cpu_isa_best ();

  naive_conv_train (ref_out, ref_dinp, ref_dw, inp, w, dout, &s);
  for (int isa = FER_CPU_ISA_C; isa <= (int) best; isa++) {
    g_assert_cmpint (fer_cpu_isa_set (isa), ==, isa);
    for (int threads = 1; threads <= 2; threads++) {
      fer_cpu_workers *workers = threads == 2 ? two : NULL;
      float *out = nan_floats (nout), *dinp = nan_floats (nin);
      float *dw = g_new (float, nw), *dw_only = g_new (float, nw);
      GError *error = NULL;

      for (size_t i = 0; i < nw; i++)
        dw[i] = dw_only[i] = DWEIGHT_START;
      g_assert_true (fer_cpu_conv2d_forward_train_mt (out, inp, w, &s,
              scratch, workers, &error));
      g_assert_true (fer_cpu_conv2d_backward_mt (dinp, dw, dout, inp, w, &s,
              ws, ws_floats, scratch, workers, &error));
      /* dinp NULL: the weight gradient alone, and the same */
      g_assert_true (fer_cpu_conv2d_backward_mt (NULL, dw_only, dout, inp, w,
              &s, ws, ws_floats, scratch, workers, &error));
      g_assert_no_error (error);

      double e_out = test_max_rel_error (out, ref_out, nout);
      double e_dinp = test_max_rel_error (dinp, ref_dinp, nin);
      double e_dw = test_max_rel_error (dw, ref_dw, nw);
      g_test_message ("conv n=%d %dx%dx%d -> %d k=%d s=%d p=%d ws=%d img "
          "%s x%d: max rel err out %.2e dinp %.2e dweight %.2e",
          c->n, c->h, c->w, c->cin, c->cout, c->k, c->stride, c->pad,
          c->ws_images ? c->ws_images : c->n, fer_cpu_isa_name (isa),
          threads, e_out, e_dinp, e_dw);
      g_assert_cmpfloat (e_out, <, TOL);
      g_assert_cmpfloat (e_dinp, <, TOL);
      g_assert_cmpfloat (e_dw, <, TOL);
      g_assert_cmpmem (dw, nw * sizeof (float), dw_only, nw * sizeof (float));
      g_free (out);
      g_free (dinp);
      g_free (dw);
      g_free (dw_only);
    }
  }
  fer_cpu_isa_set (best);
  g_free (inp);
  g_free (w);
  g_free (dout);
  g_free (ws);
  g_free (ref_out);
  g_free (ref_dinp);
  g_free (ref_dw);
}

static void
test_train_conv (void)
{
  static const conv_case cases[] = {
    { 1, 7, 7, 3, 5, 3, 1, 1, 0 },
    { 3, 9, 8, 5, 17, 3, 2, 1, 1 },      /* chunks of one image */
    { 2, 11, 11, 1, 33, 7, 2, 3, 1 },    /* torchvision-like stem */
    { 1, 9, 9, 6, 7, 7, 1, 3, 0 },       /* 7x7 stride 1 */
    { 2, 6, 5, 48, 40, 3, 1, 1, 0 },     /* taps skipped; 40 outputs */
    { 3, 6, 6, 64, 70, 1, 2, 0, 2 },     /* downsample, chunks of 2 of 3 */
    { 2, 5, 5, 17, 9, 1, 1, 0, 0 },      /* pointwise */
    { 2, 4, 4, 16, 8, 1, 1, 1, 1 },      /* padding beyond a 1x1 kernel */
    { 4, 2, 2, 32, 48, 3, 1, 1, 0 },     /* layer4 at 48x48 input: 2x2 */
    { 2, 3, 3, 16, 20, 3, 2, 1, 1 },     /* 3x3 -> 2x2, stride 2 */
    { 2, 8, 8, 20, 30, 3, 1, 0, 0 },     /* no padding */
    { 2, 10, 10, 35, 33, 3, 2, 0, 1 },   /* stride 2, no padding */
    { 1, 5, 5, 16, 16, 3, 1, 2, 0 },     /* pad 2 with a 3x3 kernel */
    { 3, 20, 20, 16, 24, 3, 1, 1, 0 },   /* 1200 pixels: weight gradient
                                          * in several pixel chunks */
  };
  fer_cpu_conv_scratch *scratch = fer_cpu_conv_scratch_new ();
  GError *error = NULL;
  fer_cpu_workers *two = fer_cpu_workers_new (2, &error);

  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_case (&cases[i], scratch, two);
  /* a small chunk of packed pixels in the forwards: many work items */
  fer_cpu_conv_scratch_set_chunk (scratch, 64);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_case (&cases[i], scratch, two);
  fer_cpu_workers_free (two);
  fer_cpu_conv_scratch_free (scratch);
}

/* The single-threaded entries with a scratch of their own (the ones the
 * finite-difference test drives) give the same numbers. */
static void
test_train_conv_own_scratch (void)
{
  fer_conv_shape s;
  fer_conv_shape_init (&s, 2, 6, 6, 5, 7, 3, 2, 1);
  const size_t nin = (size_t) s.n * s.h * s.w * s.cin;
  const size_t nw = (size_t) s.cout * s.k * s.k * s.cin;
  const size_t nout = (size_t) s.n * s.oh * s.ow * s.cout;
  const size_t ws_floats = fer_cpu_conv2d_train_col_per_image (&s);
  float *inp = test_random_floats (&rng, nin), *w = test_random_floats (&rng, nw);
  float *dout = test_random_floats (&rng, nout), *ws = g_new (float, ws_floats);
  float *out = nan_floats (nout), *dinp = nan_floats (nin);
  float *dw = g_new0 (float, nw);
  double *ref_out = g_new (double, nout), *ref_dinp = g_new (double, nin);
  double *ref_dw = g_new (double, nw);

  for (size_t i = 0; i < nw; i++)
    dw[i] = DWEIGHT_START;
  naive_conv_train (ref_out, ref_dinp, ref_dw, inp, w, dout, &s);
  g_assert_true (fer_cpu_conv2d_forward_train (out, inp, w, &s, ws,
          ws_floats));
  g_assert_true (fer_cpu_conv2d_backward (dinp, dw, dout, inp, w, &s, ws,
          ws_floats));
  double e_out = test_max_rel_error (out, ref_out, nout);
  double e_dinp = test_max_rel_error (dinp, ref_dinp, nin);
  double e_dw = test_max_rel_error (dw, ref_dw, nw);
  g_test_message ("own scratch: max rel err out %.2e dinp %.2e dweight %.2e",
      e_out, e_dinp, e_dw);
  g_assert_cmpfloat (e_out, <, TOL);
  g_assert_cmpfloat (e_dinp, <, TOL);
  g_assert_cmpfloat (e_dw, <, TOL);
  g_free (inp);
  g_free (w);
  g_free (dout);
  g_free (ws);
  g_free (out);
  g_free (dinp);
  g_free (dw);
  g_free (ref_out);
  g_free (ref_dinp);
  g_free (ref_dw);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 4242);
  g_test_add_func ("/train-conv/against-naive", test_train_conv);
  g_test_add_func ("/train-conv/own-scratch", test_train_conv_own_scratch);
  return g_test_run ();
}
