/* The CPU convolution (cpu/conv.c, on the micro-kernels of cpu/gemm.h and
 * the thread team of cpu/workers.h), forward and backward:
 *   the inference forward (bias, residual, ReLU fused) and the training
 *   forward, input gradient and weight gradient against a naive
 *   double-precision reference written here from the definition, on every
 *   kernel this CPU has (C, AVX2, AVX-512) with 1 and 2 threads: the
 *   ResNet-18 shapes, odd shapes (1x1, 3x3, 5x5 and 7x7 kernels, strides 1
 *   and 2, padding 0 to 3, also more than the kernel reaches, channel
 *   counts that are not multiples of any vector width), tile and chunk
 *   edges, a workspace smaller than the batch needs (the input gradient
 *   then runs in chunks of images), NaN propagation;
 *   the backward pass against central finite differences of the forward;
 *   the thread team itself.
 * Every case prints its max error. Contract checked on the way: dweight
 * accumulates onto what is there, dinp and out are overwritten (they start
 * as NaN, so that anything left unwritten shows). */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <fer/rng.h>
#include "backend.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/workers.h"
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

/* out = act(conv(inp, w) + bias [+ res]) (bias, res may be NULL); with
 * dout (else NULL, and dinp, dw too) also dinp = conv^T(dout, w) and
 * dw += dout^T . im2col(inp). */
static void
naive_conv (double *out, double *dinp, double *dw, const float *inp,
    const float *w, const float *bias, const float *res, const float *dout,
    const fer_conv_shape *s, gboolean relu)
{
  if (dinp)
    memset (dinp, 0, (size_t) s->n * s->h * s->w * s->cin * sizeof (double));
  for (int b = 0; b < s->n; b++)
    for (int oy = 0; oy < s->oh; oy++)
      for (int ox = 0; ox < s->ow; ox++)
        for (int o = 0; o < s->cout; o++) {
          size_t oi = (((size_t) b * s->oh + oy) * s->ow + ox) * s->cout + o;
          double acc = bias ? bias[o] : 0.0;
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
                if (dout) {
                  dinp[ii + c] += (double) dout[oi] * w[wi + c];
                  dw[wi + c] += (double) dout[oi] * inp[ii + c];
                }
              }
            }
          if (res)
            acc += res[oi];
          out[oi] = relu && acc < 0 ? 0 : acc;
        }
}

/* ------------------------------------------------------------------ */
/* Inference forward                                                   */

typedef struct
{
  int n, h, w, cin, cout, k, stride, pad;
  gboolean bias, residual, relu;
  size_t chunk; /* floats of packed pixels per step; 0: the default */
} forward_case;

/* The half-weight convolution's inputs for c (fer_cpu_conv2d_forward_f16):
 * w rounded to halves (as an F16 file's weights are), packed, a scale per
 * output channel, and the naive convolution with those weights times the
 * scale. The same tolerance as float32 weights holds: halves lose nothing
 * more. */
typedef struct
{
  uint16_t *packed;
  float *scale;
  double *ref;
} half_case;

static half_case
half_case_new (const forward_case *c, const fer_conv_shape *s, const float *inp,
    const float *w, const float *bias, const float *res)
{
  const size_t nw = (size_t) s->cout * s->k * s->k * s->cin;
  const size_t nout = (size_t) s->n * s->oh * s->ow * s->cout;
  float *halves = g_new (float, nw), *folded = g_new (float, nw);
  half_case h = { g_new (uint16_t,
                      fer_cpu_conv2d_weight_floats (s->cout, s->k, s->cin)),
    test_random_floats (&rng, s->cout, 1.0f), g_new (double, nout) };

  for (int o = 0; o < s->cout; o++)
    h.scale[o] = 0.5f + fabsf (h.scale[o]);
  for (size_t i = 0; i < nw; i++) {
    halves[i] = fer_f16_to_f32 (fer_f32_to_f16 (w[i]));
    folded[i] = halves[i] * h.scale[i / (nw / s->cout)];
  }
  g_assert_true (fer_cpu_conv2d_pack_weight_f16 (
      h.packed, halves, s->cout, s->k, s->cin, NULL));
  naive_conv (h.ref, NULL, NULL, inp, folded, bias, res, NULL, s, c->relu);
  g_free (halves);
  g_free (folded);
  return h;
}

/* Runs c on every kernel this CPU has (C, AVX2, AVX-512; the lower ones
 * forced through fer_cpu_isa_set) with 1 and 2 threads, against one naive
 * reference, with float32 weights and with halves (half_case). */
static void
check_forward (const forward_case *c)
{
  fer_conv_shape s;
  fer_conv_shape_init (
      &s, c->n, c->h, c->w, c->cin, c->cout, c->k, c->stride, c->pad);
  size_t nin = (size_t) s.n * s.h * s.w * s.cin;
  size_t nout = (size_t) s.n * s.oh * s.ow * s.cout;
  float *inp = test_random_floats (&rng, nin, 1.0f);
  float *w =
      test_random_floats (&rng, (size_t) s.cout * s.k * s.k * s.cin, 1.0f);
  float *packed =
      g_new (float, fer_cpu_conv2d_weight_floats (s.cout, s.k, s.cin));
  float *bias = c->bias ? test_random_floats (&rng, s.cout, 1.0f) : NULL;
  float *res = c->residual ? test_random_floats (&rng, nout, 1.0f) : NULL;
  float *out = g_new (float, nout);
  double *ref = g_new (double, nout);
  fer_cpu_conv_scratch *scratch = fer_cpu_conv_scratch_new ();
  fer_cpu_workers *two = fer_cpu_workers_new (2, NULL);
  const fer_cpu_isa best = fer_cpu_isa_best ();
  size_t chunk = fer_cpu_conv_scratch_set_chunk (scratch, c->chunk);

  g_assert_nonnull (two);
  fer_cpu_conv2d_pack_weight (packed, w, s.cout, s.k, s.cin);
  naive_conv (ref, NULL, NULL, inp, w, bias, res, NULL, &s, c->relu);
  half_case h = half_case_new (c, &s, inp, w, bias, res);
  for (int isa = FER_CPU_ISA_C; isa <= (int) best; isa++) {
    g_assert_cmpint (fer_cpu_isa_set (isa), ==, isa);
    for (int run = 0; run < 4; run++) {
      const int threads = 1 + run % 2;
      const gboolean halves = run >= 2;
      GError *error = NULL;
      /* NaN: any output the convolution fails to write shows */
      for (size_t i = 0; i < nout; i++)
        out[i] = NAN;
      g_assert_true (halves
              ? fer_cpu_conv2d_forward_f16 (out, inp, h.packed, h.scale, bias,
                  res, &s, c->relu, scratch, threads == 2 ? two : NULL, &error)
              : fer_cpu_conv2d_forward (out, inp, packed, bias, res, &s,
                  c->relu, scratch, threads == 2 ? two : NULL, &error));
      g_assert_no_error (error);
      double err = test_max_rel_error (out, halves ? h.ref : ref, nout);
      g_test_message (
          "conv n=%d %dx%dx%d -> %d k=%d s=%d p=%d bias=%d "
          "res=%d relu=%d chunk=%zu %s threads=%d weights %s: max rel error "
          "%.3g",
          c->n, c->h, c->w, c->cin, c->cout, c->k, c->stride, c->pad, c->bias,
          c->residual, c->relu, chunk, fer_cpu_isa_name (isa), threads,
          halves ? "f16" : "f32", err);
      g_assert_cmpfloat (err, <, 1e-5);
    }
  }
  fer_cpu_isa_set (best);
  g_free (h.packed);
  g_free (h.scale);
  g_free (h.ref);
  fer_cpu_workers_free (two);
  fer_cpu_conv_scratch_free (scratch);
  g_free (inp);
  g_free (w);
  g_free (packed);
  g_free (bias);
  g_free (res);
  g_free (out);
  g_free (ref);
}

static void
test_forward (void)
{
  const forward_case cases[] = {
    /* the ResNet-18 shapes, small spatial sizes */
    { 2, 12, 12, 1, 64, 7, 2, 3, TRUE, FALSE, TRUE, 0 }, /* stem */
    { 2, 9, 9, 3, 64, 3, 1, 1, TRUE, FALSE, TRUE, 0 },   /* small stem */
    { 3, 6, 6, 16, 16, 3, 1, 1, TRUE, TRUE, TRUE, 0 },   /* block */
    { 2, 7, 7, 16, 32, 3, 2, 1, TRUE, FALSE, TRUE, 0 },  /* stride 2, odd */
    { 2, 7, 7, 16, 32, 1, 2, 0, TRUE, FALSE, FALSE, 0 }, /* downsample */
    { 2, 5, 5, 8, 12, 1, 1, 0, FALSE, TRUE, FALSE, 0 },  /* 1x1 */
    { 1, 1, 1, 8, 8, 3, 1, 1, TRUE, FALSE, TRUE, 0 },    /* 1x1 map */
    { 5, 6, 6, 4, 8, 3, 1, 1, TRUE, TRUE, TRUE,
        6 * 6 * 9 * 4 * 2 }, /* chunks */
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_forward (&cases[i]);
}

/* The kernel's edges: channel counts that leave a partial panel, tiles of
 * every height (pixel counts around multiples of the tile heights), padding
 * skipped and not (Cin a multiple of 16 or not), both pixel orders (small
 * maps with many images take the class order), tiny chunks. */
static void
test_forward_edges (void)
{
  const forward_case cases[] = {
    { 1, 1, 1, 16, 1, 1, 1, 0, TRUE, TRUE, TRUE, 0 },    /* 1 x 1 x 1 */
    { 1, 1, 13, 16, 17, 1, 1, 0, TRUE, TRUE, FALSE, 0 }, /* 13 pixels */
    { 1, 3, 5, 32, 31, 1, 1, 0, TRUE, FALSE, TRUE, 0 },  /* 15 */
    { 1, 29, 1, 16, 33, 1, 1, 0, FALSE, TRUE, TRUE, 0 }, /* 29 */
    { 1, 7, 6, 48, 47, 3, 1, 1, TRUE, TRUE, TRUE, 0 },   /* 42 */
    { 3, 5, 5, 16, 70, 3, 1, 1, TRUE, FALSE, FALSE, 0 }, /* 75 */
    { 1, 11, 13, 5, 19, 3, 1, 1, TRUE, TRUE, TRUE, 0 },  /* Cin 5 */
    { 2, 9, 8, 1, 7, 5, 2, 2, TRUE, FALSE, TRUE, 0 },    /* Cin 1 */
    { 16, 2, 2, 32, 40, 3, 1, 1, TRUE, TRUE, TRUE, 0 },  /* class order */
    { 9, 3, 3, 16, 64, 3, 1, 1, TRUE, TRUE, TRUE, 0 },   /* class order */
    { 7, 5, 5, 16, 96, 3, 2, 1, TRUE, FALSE, TRUE, 0 },  /* class, s=2 */
    { 6, 4, 4, 32, 48, 3, 1, 1, TRUE, TRUE, TRUE, 512 }, /* 1-tile chunks */
    { 1, 2, 2, 16, 8, 3, 2, 2, TRUE, FALSE, TRUE, 0 },   /* pixel w/o taps */
    { 2, 6, 6, 64, 128, 7, 1, 3, TRUE, FALSE, TRUE, 0 }, /* 7x7, Cin 64 */
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_forward (&cases[i]);
}

/* A NaN in the input poisons exactly the outputs whose receptive field
 * holds it (as in PyTorch, ReLU included): no kernel leaks it into other
 * pixels through padding or packing, and none drops it. */
static void
test_forward_nan (void)
{
  const forward_case cases[] = {
    { 2, 12, 12, 1, 64, 7, 2, 3, TRUE, FALSE, TRUE, 0 }, /* dense */
    { 2, 9, 9, 3, 40, 3, 1, 1, TRUE, FALSE, TRUE, 0 },   /* dense */
    { 9, 3, 3, 16, 40, 3, 1, 1, TRUE, TRUE, TRUE, 0 },   /* skip */
  };
  for (guint ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const forward_case *c = &cases[ci];
    fer_conv_shape s;
    fer_conv_shape_init (
        &s, c->n, c->h, c->w, c->cin, c->cout, c->k, c->stride, c->pad);
    size_t nin = (size_t) s.n * s.h * s.w * s.cin;
    size_t nout = (size_t) s.n * s.oh * s.ow * s.cout;
    float *inp = test_random_floats (&rng, nin, 1.0f);
    float *w =
        test_random_floats (&rng, (size_t) s.cout * s.k * s.k * s.cin, 1.0f);
    float *packed =
        g_new (float, fer_cpu_conv2d_weight_floats (s.cout, s.k, s.cin));
    float *bias = test_random_floats (&rng, s.cout, 1.0f);
    float *res = c->residual ? test_random_floats (&rng, nout, 1.0f) : NULL;
    float *out = g_new (float, nout);
    double *ref = g_new (double, nout);
    fer_cpu_conv_scratch *scratch = fer_cpu_conv_scratch_new ();
    const fer_cpu_isa best = fer_cpu_isa_best ();
    size_t poisoned = 0;

    /* one channel of one pixel of the last image, off the border */
    inp[nin - (size_t) (s.w + 2) * s.cin + s.cin / 2] = NAN;
    fer_cpu_conv2d_pack_weight (packed, w, s.cout, s.k, s.cin);
    naive_conv (ref, NULL, NULL, inp, w, bias, res, NULL, &s, c->relu);
    for (size_t i = 0; i < nout; i++)
      poisoned += isnan (ref[i]);
    g_assert_cmpuint (poisoned, >, 0);
    for (int isa = FER_CPU_ISA_C; isa <= (int) best; isa++) {
      size_t same = 0;
      fer_cpu_isa_set (isa);
      g_assert_true (fer_cpu_conv2d_forward (
          out, inp, packed, bias, res, &s, c->relu, scratch, NULL, NULL));
      for (size_t i = 0; i < nout; i++)
        same += !isnan (out[i]) == !isnan (ref[i]);
      g_test_message ("conv NaN %dx%dx%d k=%d %s: %zu outputs NaN, %zu of "
                      "%zu agree",
          c->h, c->w, c->cin, c->k, fer_cpu_isa_name (isa), poisoned, same,
          nout);
      g_assert_cmpuint (same, ==, nout);
    }
    fer_cpu_isa_set (best);
    fer_cpu_conv_scratch_free (scratch);
    g_free (inp);
    g_free (w);
    g_free (packed);
    g_free (bias);
    g_free (res);
    g_free (out);
    g_free (ref);
  }
}

/* Every convolution of ResNet-18 on a 48 x 48 input (torchvision stem:
 * 24 x 24 after conv1, 12 after the max-pool; and the small stem) at 1 and
 * 5 images. */
static void
test_forward_resnet18 (void)
{
  const int batches[] = { 1, 5 };
  for (guint bi = 0; bi < G_N_ELEMENTS (batches); bi++) {
    const int n = batches[bi];
    const forward_case cases[] = {
      { n, 48, 48, 1, 64, 7, 2, 3, TRUE, FALSE, TRUE, 0 },  /* conv1 */
      { n, 48, 48, 3, 64, 3, 1, 1, TRUE, FALSE, TRUE, 0 },  /* small stem */
      { n, 12, 12, 64, 64, 3, 1, 1, TRUE, FALSE, TRUE, 0 }, /* layer1 */
      { n, 12, 12, 64, 64, 3, 1, 1, TRUE, TRUE, TRUE, 0 },
      { n, 12, 12, 64, 128, 3, 2, 1, TRUE, FALSE, TRUE, 0 }, /* layer2 */
      { n, 12, 12, 64, 128, 1, 2, 0, TRUE, FALSE, FALSE, 0 },
      { n, 6, 6, 128, 128, 3, 1, 1, TRUE, TRUE, TRUE, 0 },
      { n, 6, 6, 128, 256, 3, 2, 1, TRUE, FALSE, TRUE, 0 }, /* layer3 */
      { n, 6, 6, 128, 256, 1, 2, 0, TRUE, FALSE, FALSE, 0 },
      { n, 3, 3, 256, 256, 3, 1, 1, TRUE, TRUE, TRUE, 0 },
      { n, 3, 3, 256, 512, 3, 2, 1, TRUE, FALSE, TRUE, 0 }, /* layer4 */
      { n, 3, 3, 256, 512, 1, 2, 0, TRUE, FALSE, FALSE, 0 },
      { n, 2, 2, 512, 512, 3, 1, 1, TRUE, TRUE, TRUE, 0 },
    };
    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      check_forward (&cases[i]);
  }
}

/* The backend's prepared weights, the way the model loader uses them:
 * conv2d_prepare_weight with the shape the model runs at, a BatchNorm
 * scale per output channel and float32 or half weights, then
 * conv2d_forward with bias, residual and ReLU, against the naive
 * convolution with the folded weights, on every kernel this CPU has with
 * 1 and 2 threads. The 3 x 3 stride-1 shapes on maps of 4 x 4 and more
 * with 16+ channels take Winograd (its float32 transformed weights), the
 * others the direct convolution (checked). A weight prepared for one side
 * also runs at another (the last cases). */
typedef struct
{
  int n, h, cin, cout, k, stride, pad;
  int prepared_side; /* the side given to prepare; 0: h */
  gboolean winograd; /* what the automatic choice should take */
} prepared_case;

static void
check_prepared (const prepared_case *c, fer_backend *be, int threads)
{
  fer_conv_shape s, ps;
  fer_conv_shape_init (
      &s, c->n, c->h, c->h, c->cin, c->cout, c->k, c->stride, c->pad);
  const int side = c->prepared_side ? c->prepared_side : c->h;
  fer_conv_shape_init (
      &ps, 1, side, side, c->cin, c->cout, c->k, c->stride, c->pad);
  const size_t nin = (size_t) s.n * s.h * s.w * s.cin;
  const size_t nw = (size_t) s.cout * s.k * s.k * s.cin;
  const size_t nout = (size_t) s.n * s.oh * s.ow * s.cout;
  float *inp = test_random_floats (&rng, nin, 1.0f);
  float *w = test_random_floats (&rng, nw, 1.0f);
  float *bias = test_random_floats (&rng, s.cout, 1.0f);
  float *res = test_random_floats (&rng, nout, 1.0f);
  float *folded = g_new (float, nw), *out = g_new (float, nout);
  double *scale = g_new (double, s.cout), *ref = g_new (double, nout);
  const fer_cpu_isa best = fer_cpu_isa_best ();

  float *r = test_random_floats (&rng, s.cout, 1.0f);
  for (int o = 0; o < s.cout; o++)
    scale[o] = 0.5 + fabs (r[o]);
  g_free (r);
  for (int halves = 0; halves < 2; halves++) {
    GError *error = NULL;
    if (halves) /* an F16 file's weights */
      for (size_t i = 0; i < nw; i++)
        w[i] = fer_f16_to_f32 (fer_f32_to_f16 (w[i]));
    for (size_t i = 0; i < nw; i++)
      folded[i] = (float) (w[i] * scale[i / (nw / s.cout)]);
    naive_conv (ref, NULL, NULL, inp, folded, bias, res, NULL, &s, TRUE);
    float *prepared =
        be->ops->conv2d_prepare_weight (be, w, scale, &ps, halves, &error);
    g_assert_no_error (error);
    g_assert_cmpint (
        fer_cpu_conv2d_prepared_is_winograd (prepared), ==, c->winograd);
    for (int isa = FER_CPU_ISA_C; isa <= (int) best; isa++) {
      g_assert_cmpint (fer_cpu_isa_set (isa), ==, isa);
      for (size_t i = 0; i < nout; i++)
        out[i] = NAN;
      g_assert_true (be->ops->conv2d_forward (
          be, out, inp, prepared, bias, res, &s, TRUE, &error));
      g_assert_no_error (error);
      const double err = test_max_rel_error (out, ref, nout);
      g_test_message ("prepared conv n=%d %dx%dx%d -> %d k=%d s=%d p=%d, "
                      "prepared at %d (%s), %s threads=%d weights %s: max "
                      "rel error %.3g",
          c->n, c->h, c->h, c->cin, c->cout, c->k, c->stride, c->pad, side,
          c->winograd ? "winograd" : "direct", fer_cpu_isa_name (isa), threads,
          halves ? "f16" : "f32", err);
      g_assert_cmpfloat (err, <, TOL);
    }
    fer_cpu_isa_set (best);
    be->ops->release (be, prepared);
  }
  g_free (inp);
  g_free (w);
  g_free (bias);
  g_free (res);
  g_free (folded);
  g_free (out);
  g_free (scale);
  g_free (ref);
}

static void
test_prepared (void)
{
  static const prepared_case cases[] = {
    { 1, 22, 64, 64, 3, 1, 1, 0, TRUE }, /* nopool layer1 at 44 px */
    { 5, 11, 128, 128, 3, 1, 1, 0, TRUE }, { 2, 6, 256, 256, 3, 1, 1, 0, TRUE },
    { 2, 9, 20, 17, 3, 1, 1, 0, TRUE },    /* partial tiles and blocks */
    { 3, 3, 256, 256, 3, 1, 1, 0, FALSE }, /* map too small */
    { 2, 12, 8, 24, 3, 1, 1, 0, FALSE },   /* too few channels */
    { 2, 11, 64, 128, 3, 2, 1, 0, FALSE }, /* stride 2 */
    { 1, 44, 1, 64, 7, 2, 3, 0, FALSE },   /* the 7x7 stem */
    { 2, 5, 32, 32, 3, 1, 1, 12, TRUE },   /* prepared for 12, run at 5 */
    { 2, 12, 32, 32, 3, 1, 1, 3, FALSE },  /* prepared for 3, run at 12 */
  };
  for (int threads = 1; threads <= 2; threads++) {
    GError *error = NULL;
    fer_backend *be =
        fer_backend_new (FER_BACKEND_CPU, 0, threads, NULL, &error);
    g_assert_no_error (error);
    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      check_prepared (&cases[i], be, threads);
    fer_backend_free (be);
  }
}

/* ------------------------------------------------------------------ */
/* Training forward and backward                                       */

typedef struct
{
  int n, h, w, cin, cout, k, stride, pad;
  int ws_images; /* workspace for this many images; 0: the whole batch */
} train_case;

/* The algorithm check_train's scratch was set to, for its messages. */
static const char *train_algo = "auto";

static void
check_train (
    const train_case *c, fer_cpu_conv_scratch *scratch, fer_cpu_workers *two)
{
  fer_conv_shape s;
  fer_conv_shape_init (
      &s, c->n, c->h, c->w, c->cin, c->cout, c->k, c->stride, c->pad);
  const size_t nin = (size_t) s.n * s.h * s.w * s.cin;
  const size_t nw = (size_t) s.cout * s.k * s.k * s.cin;
  const size_t nout = (size_t) s.n * s.oh * s.ow * s.cout;
  const size_t per_image = fer_cpu_conv2d_train_col_per_image (&s);
  const size_t ws_floats = per_image * (c->ws_images ? c->ws_images : s.n);
  float *inp = test_random_floats (&rng, nin, 1.0f);
  float *w = test_random_floats (&rng, nw, 1.0f);
  float *dout = test_random_floats (&rng, nout, 1.0f);
  float *ws = g_new (float, MAX (ws_floats, 1));
  double *ref_out = g_new (double, nout), *ref_dinp = g_new (double, nin);
  double *ref_dw = g_new (double, nw);
  const fer_cpu_isa best = fer_cpu_isa_best ();

  for (size_t i = 0; i < nw; i++)
    ref_dw[i] = DWEIGHT_START;
  naive_conv (ref_out, ref_dinp, ref_dw, inp, w, NULL, NULL, dout, &s, FALSE);
  for (int isa = FER_CPU_ISA_C; isa <= (int) best; isa++) {
    g_assert_cmpint (fer_cpu_isa_set (isa), ==, isa);
    for (int threads = 1; threads <= 2; threads++) {
      fer_cpu_workers *workers = threads == 2 ? two : NULL;
      float *out = nan_floats (nout), *dinp = nan_floats (nin);
      float *dw = g_new (float, nw), *dw_only = g_new (float, nw);
      GError *error = NULL;

      for (size_t i = 0; i < nw; i++)
        dw[i] = dw_only[i] = DWEIGHT_START;
      g_assert_true (fer_cpu_conv2d_forward_train (
          out, inp, w, &s, scratch, workers, &error));
      g_assert_true (fer_cpu_conv2d_backward (
          dinp, dw, dout, inp, w, &s, ws, ws_floats, scratch, workers, &error));
      /* dinp NULL: the weight gradient alone, and the same */
      g_assert_true (fer_cpu_conv2d_backward (NULL, dw_only, dout, inp, w, &s,
          ws, ws_floats, scratch, workers, &error));
      g_assert_no_error (error);

      double e_out = test_max_rel_error (out, ref_out, nout);
      double e_dinp = test_max_rel_error (dinp, ref_dinp, nin);
      double e_dw = test_max_rel_error (dw, ref_dw, nw);
      g_test_message ("conv n=%d %dx%dx%d -> %d k=%d s=%d p=%d ws=%d img "
                      "%s %s x%d: max rel err out %.2e dinp %.2e dweight %.2e",
          c->n, c->h, c->w, c->cin, c->cout, c->k, c->stride, c->pad,
          c->ws_images ? c->ws_images : c->n, train_algo,
          fer_cpu_isa_name (isa), threads, e_out, e_dinp, e_dw);
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
test_train (void)
{
  static const train_case cases[] = {
    { 1, 7, 7, 3, 5, 3, 1, 1, 0 },
    { 3, 9, 8, 5, 17, 3, 2, 1, 1 },    /* chunks of one image */
    { 2, 11, 11, 1, 33, 7, 2, 3, 1 },  /* torchvision-like stem */
    { 1, 9, 9, 6, 7, 7, 1, 3, 0 },     /* 7x7 stride 1 */
    { 2, 6, 5, 48, 40, 3, 1, 1, 0 },   /* taps skipped; 40 outputs */
    { 3, 6, 6, 64, 70, 1, 2, 0, 2 },   /* downsample, chunks of 2 of 3 */
    { 2, 5, 5, 17, 9, 1, 1, 0, 0 },    /* pointwise */
    { 2, 4, 4, 16, 8, 1, 1, 1, 1 },    /* padding beyond a 1x1 kernel */
    { 4, 2, 2, 32, 48, 3, 1, 1, 0 },   /* layer4 at 48x48 input: 2x2 */
    { 2, 3, 3, 16, 20, 3, 2, 1, 1 },   /* 3x3 -> 2x2, stride 2 */
    { 2, 8, 8, 20, 30, 3, 1, 0, 0 },   /* no padding */
    { 2, 10, 10, 35, 33, 3, 2, 0, 1 }, /* stride 2, no padding */
    { 1, 5, 5, 16, 16, 3, 1, 2, 0 },   /* pad 2 with a 3x3 kernel */
    { 3, 20, 20, 16, 24, 3, 1, 1, 0 }, /* 1200 pixels: weight gradient
                                          * in several pixel chunks */
  };
  fer_cpu_conv_scratch *scratch = fer_cpu_conv_scratch_new ();
  GError *error = NULL;
  fer_cpu_workers *two = fer_cpu_workers_new (2, &error);

  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_train (&cases[i], scratch, two);
  /* a small chunk of packed pixels in the forwards: many work items */
  fer_cpu_conv_scratch_set_chunk (scratch, 64);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_train (&cases[i], scratch, two);
  fer_cpu_workers_free (two);
  fer_cpu_conv_scratch_free (scratch);
}

/* Winograd F(2x2, 3x3) against the naive reference, forced on shapes the
 * automatic choice would not give it too: odd sides (partial output
 * tiles), channel counts that are not multiples of the vector width or of
 * a panel (partial channel blocks, zero-padded reductions), 1 x 1 and 2 x 3
 * maps, batches of 1 and more, several chunks of tiles; and the direct
 * convolution forced on the same shapes. The tolerance is the direct
 * convolution's, TOL: F(2x2, 3x3)'s transforms only add and subtract (and
 * halve, for the weight), so its rounding error stays within a few float
 * ulps of the largest value, about 1e-6 here; F(4x4, 3x3), with
 * coefficients up to 8, is the one whose error grows past such a bound.
 * Then 1 and 2 threads give the same bits. */
static void
test_train_winograd (void)
{
  static const train_case cases[] = {
    { 1, 7, 7, 3, 5, 3, 1, 1, 0 },
    { 2, 9, 7, 20, 17, 3, 1, 1, 0 },
    { 3, 5, 6, 33, 40, 3, 1, 1, 0 },
    { 1, 1, 1, 16, 16, 3, 1, 1, 0 },
    { 2, 2, 3, 16, 48, 3, 1, 1, 0 },
    { 1, 11, 13, 64, 64, 3, 1, 1, 0 },
    { 5, 12, 12, 64, 64, 3, 1, 1, 0 }, /* 180 tiles: several chunks */
    { 2, 6, 6, 128, 96, 3, 1, 1, 0 },
    { 2, 3, 3, 200, 40, 3, 1, 1, 0 },
  };
  static const fer_cpu_conv_algo algos[] = { FER_CPU_CONV_WINOGRAD,
    FER_CPU_CONV_DIRECT };
  fer_cpu_conv_scratch *scratch = fer_cpu_conv_scratch_new ();
  GError *error = NULL;
  fer_cpu_workers *two = fer_cpu_workers_new (2, &error);

  g_assert_no_error (error);
  for (guint a = 0; a < G_N_ELEMENTS (algos); a++) {
    g_assert_cmpint (
        fer_cpu_conv_scratch_set_algo (scratch, algos[a]), ==, algos[a]);
    train_algo = algos[a] == FER_CPU_CONV_WINOGRAD ? "winograd" : "direct";
    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      check_train (&cases[i], scratch, two);
  }
  train_algo = "auto";

  /* bit-identical with 1 and 2 threads (training is deterministic across
   * thread counts) */
  fer_cpu_conv_scratch_set_algo (scratch, FER_CPU_CONV_WINOGRAD);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const train_case *c = &cases[i];
    fer_conv_shape s;
    fer_conv_shape_init (&s, c->n, c->h, c->w, c->cin, c->cout, 3, 1, 1);
    const size_t nin = (size_t) s.n * s.h * s.w * s.cin;
    const size_t nw = (size_t) s.cout * 9 * s.cin;
    const size_t nout = (size_t) s.n * s.oh * s.ow * s.cout;
    float *inp = test_random_floats (&rng, nin, 1.0f);
    float *w = test_random_floats (&rng, nw, 1.0f);
    float *dout = test_random_floats (&rng, nout, 1.0f);
    float *got[2][3];
    for (int t = 0; t < 2; t++) {
      got[t][0] = g_new (float, nout);
      got[t][1] = g_new (float, nin);
      got[t][2] = g_new0 (float, nw);
      g_assert_true (fer_cpu_conv2d_forward_train (
          got[t][0], inp, w, &s, scratch, t ? two : NULL, &error));
      g_assert_true (fer_cpu_conv2d_backward (got[t][1], got[t][2], dout, inp,
          w, &s, NULL, 0, scratch, t ? two : NULL, &error));
      g_assert_no_error (error);
    }
    g_assert_cmpmem (
        got[0][0], nout * sizeof (float), got[1][0], nout * sizeof (float));
    g_assert_cmpmem (
        got[0][1], nin * sizeof (float), got[1][1], nin * sizeof (float));
    g_assert_cmpmem (
        got[0][2], nw * sizeof (float), got[1][2], nw * sizeof (float));
    for (int t = 0; t < 2; t++)
      for (int k = 0; k < 3; k++)
        g_free (got[t][k]);
    g_free (inp);
    g_free (w);
    g_free (dout);
  }
  fer_cpu_workers_free (two);
  fer_cpu_conv_scratch_free (scratch);
}

/* On this thread with a fresh scratch for each call (as the
 * finite-difference test below drives it), and a workspace of one image:
 * the same numbers. */
static void
test_train_fresh_scratch (void)
{
  fer_conv_shape s;
  fer_conv_shape_init (&s, 2, 6, 6, 5, 7, 3, 2, 1);
  const size_t nin = (size_t) s.n * s.h * s.w * s.cin;
  const size_t nw = (size_t) s.cout * s.k * s.k * s.cin;
  const size_t nout = (size_t) s.n * s.oh * s.ow * s.cout;
  const size_t ws_floats = fer_cpu_conv2d_train_col_per_image (&s);
  float *inp = test_random_floats (&rng, nin, 1.0f);
  float *w = test_random_floats (&rng, nw, 1.0f);
  float *dout = test_random_floats (&rng, nout, 1.0f);
  float *ws = g_new (float, ws_floats);
  float *out = nan_floats (nout), *dinp = nan_floats (nin);
  float *dw = g_new0 (float, nw);
  double *ref_out = g_new (double, nout), *ref_dinp = g_new (double, nin);
  double *ref_dw = g_new (double, nw);

  fer_cpu_conv_scratch *scratch;

  for (size_t i = 0; i < nw; i++)
    dw[i] = ref_dw[i] = DWEIGHT_START;
  naive_conv (ref_out, ref_dinp, ref_dw, inp, w, NULL, NULL, dout, &s, FALSE);
  scratch = fer_cpu_conv_scratch_new ();
  g_assert_true (
      fer_cpu_conv2d_forward_train (out, inp, w, &s, scratch, NULL, NULL));
  fer_cpu_conv_scratch_free (scratch);
  scratch = fer_cpu_conv_scratch_new ();
  g_assert_true (fer_cpu_conv2d_backward (
      dinp, dw, dout, inp, w, &s, ws, ws_floats, scratch, NULL, NULL));
  fer_cpu_conv_scratch_free (scratch);
  double e_out = test_max_rel_error (out, ref_out, nout);
  double e_dinp = test_max_rel_error (dinp, ref_dinp, nin);
  double e_dw = test_max_rel_error (dw, ref_dw, nw);
  g_test_message ("fresh scratch: max rel err out %.2e dinp %.2e dweight %.2e",
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

/* ------------------------------------------------------------------ */
/* Backward against finite differences                                 */

typedef struct
{
  fer_conv_shape s;
  float *inp, *w, *dout, *out, *col;
  size_t col_cap;
  fer_cpu_conv_scratch *scratch;
} fd_ctx;

static double
fd_loss (void *p)
{
  fd_ctx *c = p;
  g_assert_true (fer_cpu_conv2d_forward_train (
      c->out, c->inp, c->w, &c->s, c->scratch, NULL, NULL));
  return test_dot (
      c->out, c->dout, (size_t) c->s.n * c->s.oh * c->s.ow * c->s.cout);
}

typedef struct
{
  int n, h, cin, cout, k, stride, pad;
  gboolean small_col; /* workspace for one image only: chunked */
} fd_case;

static void
check_fd (gconstpointer data)
{
  const fd_case *cc = data;
  fd_ctx c;
  char what[96];
  fer_conv_shape_init (
      &c.s, cc->n, cc->h, cc->h, cc->cin, cc->cout, cc->k, cc->stride, cc->pad);
  size_t nin = (size_t) c.s.n * c.s.h * c.s.w * c.s.cin;
  size_t nw = (size_t) c.s.cout * c.s.k * c.s.k * c.s.cin;
  size_t nout = (size_t) c.s.n * c.s.oh * c.s.ow * c.s.cout;
  size_t per = fer_cpu_conv2d_train_col_per_image (&c.s);
  c.col_cap = cc->small_col ? per : per * c.s.n;
  c.col = g_new (float, MAX (c.col_cap, 1));
  c.scratch = fer_cpu_conv_scratch_new ();
  c.inp = test_random_floats (&rng, nin, 1.0f);
  c.w = test_random_floats (&rng, nw, 0.5f);
  c.dout = test_random_floats (&rng, nout, 1.0f);
  c.out = g_new (float, nout);
  float *dinp = g_new (float, nin);
  float *dw = g_new (float, nw);
  for (size_t i = 0; i < nw; i++)
    dw[i] = 0.25f; /* accumulates onto this */
  for (size_t i = 0; i < nin; i++)
    dinp[i] = 1e6f; /* overwritten */

  g_assert_true (fer_cpu_conv2d_backward (dinp, dw, c.dout, c.inp, c.w, &c.s,
      c.col, c.col_cap, c.scratch, NULL, NULL));
  snprintf (what, sizeof what, "conv %dx%d/%d pad %d %d->%d%s: dinp", cc->k,
      cc->k, cc->stride, cc->pad, cc->cin, cc->cout,
      cc->small_col ? " chunked" : "");
  test_fd_check (what, c.inp, nin, fd_loss, &c, dinp, 0.0f);
  snprintf (what, sizeof what, "conv %dx%d/%d pad %d %d->%d%s: dweight", cc->k,
      cc->k, cc->stride, cc->pad, cc->cin, cc->cout,
      cc->small_col ? " chunked" : "");
  test_fd_check (what, c.w, nw, fd_loss, &c, dw, 0.25f);

  /* dinp NULL: only the weight gradient, the same one */
  float *dw2 = g_new0 (float, nw);
  g_assert_true (fer_cpu_conv2d_backward (NULL, dw2, c.dout, c.inp, c.w, &c.s,
      c.col, c.col_cap, c.scratch, NULL, NULL));
  for (size_t i = 0; i < nw; i++)
    g_assert_cmpfloat (
        fabsf (dw2[i] + 0.25f - dw[i]), <=, 1e-5f * (1.0f + fabsf (dw[i])));
  fer_cpu_conv_scratch_free (c.scratch);
  g_free (dw2);
  g_free (c.col);
  g_free (c.inp);
  g_free (c.w);
  g_free (c.dout);
  g_free (c.out);
  g_free (dinp);
  g_free (dw);
}

/* ------------------------------------------------------------------ */
/* The thread team                                                     */

/* A job as the convolution hands out work: items from a shared counter. */
typedef struct
{
  atomic_int next;
  int n_items;
  atomic_int *done;     /* n_items: times each item ran */
  atomic_int ran_on[4]; /* items per thread */
} workers_job;

static void
workers_job_run (void *data, int thread, int threads)
{
  workers_job *j = data;
  int i;
  g_assert_cmpint (thread, <, threads);
  while ((i = atomic_fetch_add (&j->next, 1)) < j->n_items) {
    atomic_fetch_add (&j->done[i], 1);
    atomic_fetch_add (&j->ran_on[thread], 1);
  }
}

/* Every item of every job runs exactly once, with the workers spinning
 * (back-to-back jobs) and asleep (a pause longer than their spin). */
static void
test_workers (void)
{
  for (int threads = 1; threads <= 4; threads *= 2) {
    fer_cpu_workers *w = fer_cpu_workers_new (threads, NULL);
    workers_job j;
    int helped = 0;

    g_assert_nonnull (w);
    g_assert_cmpint (fer_cpu_workers_n (w), ==, threads);
    j.n_items = 64;
    j.done = g_new (atomic_int, j.n_items);
    for (int job = 0; job < 2000; job++) {
      atomic_init (&j.next, 0);
      for (int i = 0; i < j.n_items; i++)
        atomic_init (&j.done[i], 0);
      for (int t = 0; t < 4; t++)
        atomic_init (&j.ran_on[t], 0);
      if (job % 500 == 499)
        g_usleep (5000);
      fer_cpu_workers_run (w, workers_job_run, &j);
      for (int i = 0; i < j.n_items; i++)
        g_assert_cmpint (atomic_load (&j.done[i]), ==, 1);
      helped += atomic_load (&j.ran_on[0]) < j.n_items;
    }
    g_test_message (
        "workers: %d threads, %d of 2000 jobs shared", threads, helped);
    g_free (j.done);
    fer_cpu_workers_free (w);
  }
  fer_cpu_workers_free (NULL);
}

int
main (int argc, char **argv)
{
  static const fd_case fd_cases[] = {
    { 2, 6, 3, 4, 3, 1, 1, FALSE }, { 2, 7, 3, 5, 3, 2, 1, FALSE },
    { 3, 7, 4, 6, 1, 2, 0, FALSE }, /* downsample */
    { 2, 9, 1, 4, 7, 2, 3, FALSE }, /* torchvision stem, 1 channel */
    { 2, 5, 3, 4, 1, 1, 0, FALSE }, /* pointwise: no im2col */
    { 3, 6, 3, 4, 3, 1, 1, TRUE },  /* workspace for one image: chunks */
    { 4, 2, 6, 5, 3, 1, 1, FALSE }, /* layer4 at 48x48: 2x2 */
    { 4, 3, 6, 5, 3, 2, 1, FALSE }, /* layer4.0 conv1: 3x3 -> 2x2 */
    { 4, 3, 6, 5, 1, 2, 0, FALSE }, /* layer4.0 downsample */
  };
  char name[96];

  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 42);
  /* say which kernels this machine can test: a kernel above its best is
   * left to a machine that has it */
  for (int isa = FER_CPU_ISA_C; isa <= FER_CPU_ISA_AVX512; isa++)
    g_printerr ("# kernel %s: %s\n", fer_cpu_isa_name (isa),
        isa <= (int) fer_cpu_isa_best ()
            ? "tested"
            : "NOT tested (this CPU cannot run it; run these tests on one "
              "that can)");
  g_test_add_func ("/conv/forward", test_forward);
  g_test_add_func ("/conv/forward-edges", test_forward_edges);
  g_test_add_func ("/conv/forward-resnet18", test_forward_resnet18);
  g_test_add_func ("/conv/forward-nan", test_forward_nan);
  g_test_add_func ("/conv/prepared", test_prepared);
  g_test_add_func ("/conv/train-against-naive", test_train);
  g_test_add_func ("/conv/train-winograd", test_train_winograd);
  g_test_add_func ("/conv/train-fresh-scratch", test_train_fresh_scratch);
  for (guint i = 0; i < G_N_ELEMENTS (fd_cases); i++) {
    snprintf (name, sizeof name, "/conv/backward-fd/%u", i);
    g_test_add_data_func (name, &fd_cases[i], check_fd);
  }
  g_test_add_func ("/conv/workers", test_workers);
  return g_test_run ();
}
