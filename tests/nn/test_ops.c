/* Every CPU op against a naive double-precision reference written here,
 * directly from the definition (NHWC activations, (Cout, K, K, Cin) conv
 * weights, (out, in) linear weights). Prints the max error of each case. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include <fer/rng.h>
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/workers.h"
#include "test-util.h"

static fer_rng rng;

static void
naive_conv (double *out, const float *inp, const float *w, const float *bias,
    const float *res, const fer_conv_shape *s, gboolean relu)
{
  for (int b = 0; b < s->n; b++)
    for (int oy = 0; oy < s->oh; oy++)
      for (int ox = 0; ox < s->ow; ox++)
        for (int o = 0; o < s->cout; o++) {
          double acc = bias ? bias[o] : 0.0;
          for (int ky = 0; ky < s->k; ky++)
            for (int kx = 0; kx < s->k; kx++) {
              int iy = oy * s->stride - s->pad + ky;
              int ix = ox * s->stride - s->pad + kx;
              if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                continue;
              for (int c = 0; c < s->cin; c++)
                acc += (double) inp[(((size_t) b * s->h + iy) * s->w + ix)
                    * s->cin + c]
                    * w[(((size_t) o * s->k + ky) * s->k + kx) * s->cin + c];
            }
          size_t oi = (((size_t) b * s->oh + oy) * s->ow + ox) * s->cout + o;
          if (res)
            acc += res[oi];
          out[oi] = relu && acc < 0 ? 0 : acc;
        }
}

typedef struct
{
  int n, h, w, cin, cout, k, stride, pad;
  gboolean bias, residual, relu;
  size_t chunk;     /* floats of packed pixels per step; 0: the default */
} conv_case;

/* Runs c on every kernel this CPU has (C, AVX2, AVX-512; the lower ones
 * forced through fer_cpu_isa_set) with 1 and 2 threads, against one naive
 * reference. */
static void
check_conv (const conv_case *c)
{
  fer_conv_shape s;
  fer_conv_shape_init (&s, c->n, c->h, c->w, c->cin, c->cout, c->k,
      c->stride, c->pad);
  size_t nin = (size_t) s.n * s.h * s.w * s.cin;
  size_t nout = (size_t) s.n * s.oh * s.ow * s.cout;
  float *inp = test_random_floats (&rng, nin);
  float *w = test_random_floats (&rng, (size_t) s.cout * s.k * s.k * s.cin);
  float *packed = g_new (float,
      fer_cpu_conv2d_weight_floats (s.cout, s.k, s.cin));
  float *bias = c->bias ? test_random_floats (&rng, s.cout) : NULL;
  float *res = c->residual ? test_random_floats (&rng, nout) : NULL;
  float *out = g_new (float, nout);
  double *ref = g_new (double, nout);
  fer_cpu_conv_scratch *scratch = fer_cpu_conv_scratch_new ();
  fer_cpu_workers *two = fer_cpu_workers_new (2, NULL);
  const fer_cpu_isa best = fer_cpu_isa_best ();
  size_t chunk = fer_cpu_conv_scratch_set_chunk (scratch, c->chunk);

  g_assert_nonnull (two);
  fer_cpu_conv2d_pack_weight (packed, w, s.cout, s.k, s.cin);
  naive_conv (ref, inp, w, bias, res, &s, c->relu);
  for (int isa = FER_CPU_ISA_C; isa <= (int) best; isa++) {
    g_assert_cmpint (fer_cpu_isa_set (isa), ==, isa);
    for (int threads = 1; threads <= 2; threads++) {
      GError *error = NULL;
      /* NaN: any output the convolution fails to write shows */
      for (size_t i = 0; i < nout; i++)
        out[i] = NAN;
      g_assert_true (fer_cpu_conv2d_forward (out, inp, packed, bias, res, &s,
              c->relu, scratch, threads == 2 ? two : NULL, &error));
      g_assert_no_error (error);
      double err = test_max_rel_error (out, ref, nout);
      g_test_message ("conv n=%d %dx%dx%d -> %d k=%d s=%d p=%d bias=%d "
          "res=%d relu=%d chunk=%zu %s threads=%d: max rel error %.3g",
          c->n, c->h, c->w, c->cin, c->cout, c->k, c->stride, c->pad,
          c->bias, c->residual, c->relu, chunk, fer_cpu_isa_name (isa),
          threads, err);
      g_assert_cmpfloat (err, <, 1e-5);
    }
  }
  fer_cpu_isa_set (best);
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
test_conv2d (void)
{
  const conv_case cases[] = {
    /* the ResNet-18 shapes, small spatial sizes */
    {2, 12, 12, 1, 64, 7, 2, 3, TRUE, FALSE, TRUE, 0},      /* stem */
    {2, 9, 9, 3, 64, 3, 1, 1, TRUE, FALSE, TRUE, 0},        /* small stem */
    {3, 6, 6, 16, 16, 3, 1, 1, TRUE, TRUE, TRUE, 0},        /* block */
    {2, 7, 7, 16, 32, 3, 2, 1, TRUE, FALSE, TRUE, 0},       /* stride 2, odd */
    {2, 7, 7, 16, 32, 1, 2, 0, TRUE, FALSE, FALSE, 0},      /* downsample */
    {2, 5, 5, 8, 12, 1, 1, 0, FALSE, TRUE, FALSE, 0},       /* 1x1 */
    {1, 1, 1, 8, 8, 3, 1, 1, TRUE, FALSE, TRUE, 0},         /* 1x1 map */
    {5, 6, 6, 4, 8, 3, 1, 1, TRUE, TRUE, TRUE, 6 * 6 * 9 * 4 * 2}, /* chunks */
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_conv (&cases[i]);
}

/* The kernel's edges: channel counts that leave a partial panel, tiles of
 * every height (pixel counts around multiples of the tile heights), padding
 * skipped and not (Cin a multiple of 16 or not), both pixel orders (small
 * maps with many images take the class order), tiny chunks. */
static void
test_conv2d_edges (void)
{
  const conv_case cases[] = {
    {1, 1, 1, 16, 1, 1, 1, 0, TRUE, TRUE, TRUE, 0},         /* 1 x 1 x 1 */
    {1, 1, 13, 16, 17, 1, 1, 0, TRUE, TRUE, FALSE, 0},      /* 13 pixels */
    {1, 3, 5, 32, 31, 1, 1, 0, TRUE, FALSE, TRUE, 0},       /* 15 */
    {1, 29, 1, 16, 33, 1, 1, 0, FALSE, TRUE, TRUE, 0},      /* 29 */
    {1, 7, 6, 48, 47, 3, 1, 1, TRUE, TRUE, TRUE, 0},        /* 42 */
    {3, 5, 5, 16, 70, 3, 1, 1, TRUE, FALSE, FALSE, 0},      /* 75 */
    {1, 11, 13, 5, 19, 3, 1, 1, TRUE, TRUE, TRUE, 0},       /* Cin 5 */
    {2, 9, 8, 1, 7, 5, 2, 2, TRUE, FALSE, TRUE, 0},         /* Cin 1 */
    {16, 2, 2, 32, 40, 3, 1, 1, TRUE, TRUE, TRUE, 0},       /* class order */
    {9, 3, 3, 16, 64, 3, 1, 1, TRUE, TRUE, TRUE, 0},        /* class order */
    {7, 5, 5, 16, 96, 3, 2, 1, TRUE, FALSE, TRUE, 0},       /* class, s=2 */
    {6, 4, 4, 32, 48, 3, 1, 1, TRUE, TRUE, TRUE, 512},      /* 1-tile chunks */
    {1, 2, 2, 16, 8, 3, 2, 2, TRUE, FALSE, TRUE, 0},        /* pixel w/o taps */
    {2, 6, 6, 64, 128, 7, 1, 3, TRUE, FALSE, TRUE, 0},      /* 7x7, Cin 64 */
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_conv (&cases[i]);
}

/* A NaN in the input poisons exactly the outputs whose receptive field
 * holds it (as in PyTorch, ReLU included): no kernel leaks it into other
 * pixels through padding or packing, and none drops it. */
static void
test_conv2d_nan (void)
{
  const conv_case cases[] = {
    {2, 12, 12, 1, 64, 7, 2, 3, TRUE, FALSE, TRUE, 0},      /* dense */
    {2, 9, 9, 3, 40, 3, 1, 1, TRUE, FALSE, TRUE, 0},        /* dense */
    {9, 3, 3, 16, 40, 3, 1, 1, TRUE, TRUE, TRUE, 0},        /* skip */
  };
  for (guint ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const conv_case *c = &cases[ci];
    fer_conv_shape s;
    fer_conv_shape_init (&s, c->n, c->h, c->w, c->cin, c->cout, c->k,
        c->stride, c->pad);
    size_t nin = (size_t) s.n * s.h * s.w * s.cin;
    size_t nout = (size_t) s.n * s.oh * s.ow * s.cout;
    float *inp = test_random_floats (&rng, nin);
    float *w = test_random_floats (&rng, (size_t) s.cout * s.k * s.k * s.cin);
    float *packed = g_new (float,
        fer_cpu_conv2d_weight_floats (s.cout, s.k, s.cin));
    float *bias = test_random_floats (&rng, s.cout);
    float *res = c->residual ? test_random_floats (&rng, nout) : NULL;
    float *out = g_new (float, nout);
    double *ref = g_new (double, nout);
    fer_cpu_conv_scratch *scratch = fer_cpu_conv_scratch_new ();
    const fer_cpu_isa best = fer_cpu_isa_best ();
    size_t poisoned = 0;

    /* one channel of one pixel of the last image, off the border */
    inp[nin - (size_t) (s.w + 2) * s.cin + s.cin / 2] = NAN;
    fer_cpu_conv2d_pack_weight (packed, w, s.cout, s.k, s.cin);
    naive_conv (ref, inp, w, bias, res, &s, c->relu);
    for (size_t i = 0; i < nout; i++)
      poisoned += isnan (ref[i]);
    g_assert_cmpuint (poisoned, >, 0);
    for (int isa = FER_CPU_ISA_C; isa <= (int) best; isa++) {
      size_t same = 0;
      fer_cpu_isa_set (isa);
      g_assert_true (fer_cpu_conv2d_forward (out, inp, packed, bias, res, &s,
              c->relu, scratch, NULL, NULL));
      for (size_t i = 0; i < nout; i++)
        same += !isnan (out[i]) == !isnan (ref[i]);
      g_test_message ("conv NaN %dx%dx%d k=%d %s: %zu outputs NaN, %zu of "
          "%zu agree", c->h, c->w, c->cin, c->k, fer_cpu_isa_name (isa),
          poisoned, same, nout);
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
test_conv2d_resnet18 (void)
{
  const int batches[] = { 1, 5 };
  for (guint bi = 0; bi < G_N_ELEMENTS (batches); bi++) {
    const int n = batches[bi];
    const conv_case cases[] = {
      {n, 48, 48, 1, 64, 7, 2, 3, TRUE, FALSE, TRUE, 0},    /* conv1 */
      {n, 48, 48, 3, 64, 3, 1, 1, TRUE, FALSE, TRUE, 0},    /* small stem */
      {n, 12, 12, 64, 64, 3, 1, 1, TRUE, FALSE, TRUE, 0},   /* layer1 */
      {n, 12, 12, 64, 64, 3, 1, 1, TRUE, TRUE, TRUE, 0},
      {n, 12, 12, 64, 128, 3, 2, 1, TRUE, FALSE, TRUE, 0},  /* layer2 */
      {n, 12, 12, 64, 128, 1, 2, 0, TRUE, FALSE, FALSE, 0},
      {n, 6, 6, 128, 128, 3, 1, 1, TRUE, TRUE, TRUE, 0},
      {n, 6, 6, 128, 256, 3, 2, 1, TRUE, FALSE, TRUE, 0},   /* layer3 */
      {n, 6, 6, 128, 256, 1, 2, 0, TRUE, FALSE, FALSE, 0},
      {n, 3, 3, 256, 256, 3, 1, 1, TRUE, TRUE, TRUE, 0},
      {n, 3, 3, 256, 512, 3, 2, 1, TRUE, FALSE, TRUE, 0},   /* layer4 */
      {n, 3, 3, 256, 512, 1, 2, 0, TRUE, FALSE, FALSE, 0},
      {n, 2, 2, 512, 512, 3, 1, 1, TRUE, TRUE, TRUE, 0},
    };
    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      check_conv (&cases[i]);
  }
}

/* A job as the convolution hands out work: items from a shared counter. */
typedef struct
{
  atomic_int next;
  int n_items;
  atomic_int *done;      /* n_items: times each item ran */
  atomic_int ran_on[4];  /* items per thread */
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
    g_test_message ("workers: %d threads, %d of 2000 jobs shared", threads,
        helped);
    g_free (j.done);
    fer_cpu_workers_free (w);
  }
  fer_cpu_workers_free (NULL);
}

static void
test_maxpool (void)
{
  const int n = 2, h = 7, w = 6, c = 5, k = 3, st = 2, p = 1;
  int oh = (h + 2 * p - k) / st + 1, ow = (w + 2 * p - k) / st + 1;
  float *inp = test_random_floats (&rng, (size_t) n * h * w * c);
  float *out = g_new (float, (size_t) n * oh * ow * c);
  double *ref = g_new (double, (size_t) n * oh * ow * c);

  /* all-negative inputs prove padding never wins over a real pixel */
  for (int i = 0; i < n * h * w * c; i++)
    inp[i] = -fabsf (inp[i]) - 1.0f;
  fer_cpu_maxpool2d_forward (out, inp, n, h, w, c, k, st, p);
  for (int b = 0; b < n; b++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++)
        for (int ch = 0; ch < c; ch++) {
          double m = -INFINITY;
          for (int y = oy * st - p; y < oy * st - p + k; y++)
            for (int x = ox * st - p; x < ox * st - p + k; x++)
              if (y >= 0 && y < h && x >= 0 && x < w)
                m = fmax (m, inp[(((size_t) b * h + y) * w + x) * c + ch]);
          ref[(((size_t) b * oh + oy) * ow + ox) * c + ch] = m;
        }
  double err = test_max_rel_error (out, ref, (size_t) n * oh * ow * c);
  g_test_message ("maxpool 3x3/2 pad 1: max rel error %.3g", err);
  g_assert_cmpfloat (err, ==, 0.0);
  g_free (inp);
  g_free (out);
  g_free (ref);
}

static void
test_avgpool (void)
{
  const int n = 3, hw = 9, c = 7;
  float *inp = test_random_floats (&rng, (size_t) n * hw * c);
  float out[3 * 7];
  double ref[3 * 7];
  fer_cpu_avgpool_forward (out, inp, n, hw, c);
  for (int b = 0; b < n; b++)
    for (int ch = 0; ch < c; ch++) {
      double s = 0;
      for (int i = 0; i < hw; i++)
        s += inp[((size_t) b * hw + i) * c + ch];
      ref[b * c + ch] = s / hw;
    }
  double err = test_max_rel_error (out, ref, n * c);
  g_test_message ("global avgpool: max rel error %.3g", err);
  g_assert_cmpfloat (err, <, 1e-6);
  g_free (inp);
}

static void
test_linear (void)
{
  const int n = 4, nin = 37, nout = 11;
  for (int relu = 0; relu < 2; relu++) {
    float *inp = test_random_floats (&rng, (size_t) n * nin);
    float *w = test_random_floats (&rng, (size_t) nout * nin);
    float *b = test_random_floats (&rng, nout);
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

static void
test_softmax (void)
{
  /* a row of huge logits would overflow a naive exp */
  float x[2 * 4] = { 1, 2, 3, 4, 1000, 1001, 999, -1000 };
  float y[2 * 4];
  double ref[2 * 4];
  fer_cpu_softmax_forward (y, x, 2, 4);
  for (int r = 0; r < 2; r++) {
    double mx = -INFINITY, s = 0;
    for (int j = 0; j < 4; j++)
      mx = fmax (mx, x[r * 4 + j]);
    for (int j = 0; j < 4; j++)
      s += exp (x[r * 4 + j] - mx);
    for (int j = 0; j < 4; j++)
      ref[r * 4 + j] = exp (x[r * 4 + j] - mx) / s;
  }
  double err = test_max_rel_error (y, ref, 8);
  g_test_message ("softmax: max error %.3g", err);
  g_assert_cmpfloat (err, <, 1e-6);
  /* in place */
  fer_cpu_softmax_forward (x, x, 2, 4);
  g_assert_cmpfloat (test_max_rel_error (x, ref, 8), <, 1e-6);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 42);
  g_test_add_func ("/ops/conv2d", test_conv2d);
  g_test_add_func ("/ops/conv2d-edges", test_conv2d_edges);
  g_test_add_func ("/ops/conv2d-resnet18", test_conv2d_resnet18);
  g_test_add_func ("/ops/conv2d-nan", test_conv2d_nan);
  g_test_add_func ("/ops/workers", test_workers);
  g_test_add_func ("/ops/maxpool2d", test_maxpool);
  g_test_add_func ("/ops/avgpool", test_avgpool);
  g_test_add_func ("/ops/linear", test_linear);
  g_test_add_func ("/ops/softmax", test_softmax);
  return g_test_run ();
}
