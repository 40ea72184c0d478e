/* Every CPU op against a naive double-precision reference written here,
 * directly from the definition (NHWC activations, (Cout, K, K, Cin) conv
 * weights, (out, in) linear weights). Prints the max error of each case. */
#include <math.h>
#include <string.h>

#include "cpu/ops.h"
#include "rng.h"

static fer_rng rng;

static float *
random_floats (size_t n)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = fer_rng_normal (&rng);
  return x;
}

/* max |a - b| relative to max(1, max |b|) */
static double
max_rel_error (const float *a, const double *b, size_t n)
{
  double err = 0.0, scale = 1.0;
  for (size_t i = 0; i < n; i++) {
    err = fmax (err, fabs (a[i] - b[i]));
    scale = fmax (scale, fabs (b[i]));
  }
  return err / scale;
}

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
  size_t col_cap;   /* 0: enough for the whole batch */
} conv_case;

static void
check_conv (const conv_case *c)
{
  fer_conv_shape s;
  fer_conv_shape_init (&s, c->n, c->h, c->w, c->cin, c->cout, c->k,
      c->stride, c->pad);
  size_t nin = (size_t) s.n * s.h * s.w * s.cin;
  size_t nout = (size_t) s.n * s.oh * s.ow * s.cout;
  float *inp = random_floats (nin);
  float *w = random_floats ((size_t) s.cout * s.k * s.k * s.cin);
  float *bias = c->bias ? random_floats (s.cout) : NULL;
  float *res = c->residual ? random_floats (nout) : NULL;
  float *out = g_new (float, nout);
  double *ref = g_new (double, nout);
  size_t per = fer_cpu_conv2d_col_per_image (&s);
  size_t cap = c->col_cap ? c->col_cap : MAX (per * s.n, 1);
  float *col = g_new (float, cap);

  fer_cpu_conv2d_forward (out, inp, w, bias, res, &s, c->relu, col, cap);
  naive_conv (ref, inp, w, bias, res, &s, c->relu);
  double err = max_rel_error (out, ref, nout);
  g_test_message ("conv n=%d %dx%dx%d -> %d k=%d s=%d p=%d bias=%d res=%d "
      "relu=%d col_cap=%zu: max rel error %.3g", c->n, c->h, c->w, c->cin,
      c->cout, c->k, c->stride, c->pad, c->bias, c->residual, c->relu, cap,
      err);
  g_assert_cmpfloat (err, <, 1e-5);
  g_free (inp);
  g_free (w);
  g_free (bias);
  g_free (res);
  g_free (out);
  g_free (ref);
  g_free (col);
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
    {2, 5, 5, 8, 12, 1, 1, 0, FALSE, TRUE, FALSE, 0},       /* 1x1: no im2col */
    {1, 1, 1, 8, 8, 3, 1, 1, TRUE, FALSE, TRUE, 0},         /* 1x1 map */
    {5, 6, 6, 4, 8, 3, 1, 1, TRUE, TRUE, TRUE, 6 * 6 * 9 * 4 * 2}, /* chunks */
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_conv (&cases[i]);
}

static void
test_maxpool (void)
{
  const int n = 2, h = 7, w = 6, c = 5, k = 3, st = 2, p = 1;
  int oh = (h + 2 * p - k) / st + 1, ow = (w + 2 * p - k) / st + 1;
  float *inp = random_floats ((size_t) n * h * w * c);
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
  double err = max_rel_error (out, ref, (size_t) n * oh * ow * c);
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
  float *inp = random_floats ((size_t) n * hw * c);
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
  double err = max_rel_error (out, ref, n * c);
  g_test_message ("global avgpool: max rel error %.3g", err);
  g_assert_cmpfloat (err, <, 1e-6);
  g_free (inp);
}

static void
test_linear (void)
{
  const int n = 4, nin = 37, nout = 11;
  for (int relu = 0; relu < 2; relu++) {
    float *inp = random_floats ((size_t) n * nin);
    float *w = random_floats ((size_t) nout * nin);
    float *b = random_floats (nout);
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
    double err = max_rel_error (out, ref, n * nout);
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
  double err = max_rel_error (y, ref, 8);
  g_test_message ("softmax: max error %.3g", err);
  g_assert_cmpfloat (err, <, 1e-6);
  /* in place */
  fer_cpu_softmax_forward (x, x, 2, 4);
  g_assert_cmpfloat (max_rel_error (x, ref, 8), <, 1e-6);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 42);
  g_test_add_func ("/ops/conv2d", test_conv2d);
  g_test_add_func ("/ops/maxpool2d", test_maxpool);
  g_test_add_func ("/ops/avgpool", test_avgpool);
  g_test_add_func ("/ops/linear", test_linear);
  g_test_add_func ("/ops/softmax", test_softmax);
  return g_test_run ();
}
