/* CPU pooling (cpu/pool.c), NHWC: max-pool and global average pool, the
 * forwards against a naive double-precision reference written here, the
 * backward passes against central finite differences of the forwards, and
 * max-pool's ties (the first maximum in scan order gets the gradient, as
 * in PyTorch). Every case prints its max error. */
#include <math.h>

#include <fer/rng.h>
#include "cpu/ops.h"
#include "test-util.h"

static fer_rng rng;

static void
test_maxpool_forward (void)
{
  const int n = 2, h = 7, w = 6, c = 5, k = 3, st = 2, p = 1;
  int oh = (h + 2 * p - k) / st + 1, ow = (w + 2 * p - k) / st + 1;
  float *inp = test_random_floats (&rng, (size_t) n * h * w * c, 1.0f);
  float *out = g_new (float, (size_t) n *oh *ow *c);
  double *ref = g_new (double, (size_t) n *oh *ow *c);

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
test_avgpool_forward (void)
{
  const int n = 3, hw = 9, c = 7;
  float *inp = test_random_floats (&rng, (size_t) n * hw * c, 1.0f);
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

typedef struct
{
  int n, h, w, c, k, stride, pad, oh, ow;
  float *inp, *dout, *out;
} pool_ctx;

static double
maxpool_loss (void *p)
{
  pool_ctx *q = p;
  fer_cpu_maxpool2d_forward (
      q->out, q->inp, q->n, q->h, q->w, q->c, q->k, q->stride, q->pad);
  return test_dot (q->out, q->dout, (size_t) q->n * q->oh * q->ow * q->c);
}

static double
avgpool_loss (void *p)
{
  pool_ctx *q = p;
  fer_cpu_avgpool_forward (q->out, q->inp, q->n, q->h * q->w, q->c);
  return test_dot (q->out, q->dout, (size_t) q->n * q->c);
}

static void
test_backward (void)
{
  pool_ctx q = {
    .n = 2, .h = 7, .w = 6, .c = 3, .k = 3, .stride = 2, .pad = 1
  };
  q.oh = (q.h + 2 * q.pad - q.k) / q.stride + 1;
  q.ow = (q.w + 2 * q.pad - q.k) / q.stride + 1;
  size_t nin = (size_t) q.n * q.h * q.w * q.c;
  /* distinct values 0.01 apart: no window has a near-tie */
  q.inp = g_new (float, nin);
  for (size_t i = 0; i < nin; i++)
    q.inp[i] = 0.01f * (float) i;
  for (size_t i = nin - 1; i > 0; i--) {
    size_t j = fer_rng_next (&rng) % (i + 1);
    float tmp = q.inp[i];
    q.inp[i] = q.inp[j];
    q.inp[j] = tmp;
  }
  q.dout = test_random_floats (&rng, (size_t) q.n * q.oh * q.ow * q.c, 1.0f);
  q.out = g_new (float, (size_t) q.n *q.oh *q.ow *q.c);
  float *d = g_new (float, nin);
  fer_cpu_maxpool2d_backward (
      d, q.dout, q.inp, q.n, q.h, q.w, q.c, q.k, q.stride, q.pad);
  test_fd_check (
      "maxpool 3x3/2 pad 1 backward", q.inp, nin, maxpool_loss, &q, d, 0.0f);

  /* Ties (all-zero windows after ReLU): the first position in scan order
   * gets the gradient, as in PyTorch. */
  float zeros[1 * 4 * 4 * 1] = { 0 }, dz[16], g[4] = { 1, 2, 3, 4 };
  fer_cpu_maxpool2d_backward (dz, g, zeros, 1, 4, 4, 1, 3, 2, 1);
  float want[16] = { 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
  g_assert_cmpmem (dz, sizeof dz, want, sizeof want);

  q.dout = g_realloc (q.dout, sizeof (float) * q.n * q.c);
  for (int i = 0; i < q.n * q.c; i++)
    q.dout[i] = fer_rng_normal (&rng);
  fer_cpu_avgpool_backward (d, q.dout, q.n, q.h * q.w, q.c);
  test_fd_check (
      "global avgpool backward", q.inp, nin, avgpool_loss, &q, d, 0.0f);
  g_free (q.inp);
  g_free (q.dout);
  g_free (q.out);
  g_free (d);
}

/* Forward and backward against naive references (written here: the
 * window scanned in (ky, kx) order, the first maximum taking the gradient)
 * on shapes that exercise the vector loops' tails (channels not a multiple
 * of 4, more than the backward's block of 256), odd maps, batches of 1 and
 * more, and inputs drawn from 3 values so that most windows tie. Both must
 * agree exactly: max-pool only compares and copies. */
static void
test_maxpool_naive (void)
{
  static const int cases[][7] = {
    /* n, h, w, c, k, stride, pad */
    { 1, 5, 5, 1, 3, 2, 1 },
    { 2, 7, 9, 5, 3, 2, 1 },
    { 3, 24, 24, 64, 3, 2, 1 },
    { 1, 11, 10, 67, 3, 2, 1 },
    { 2, 6, 7, 300, 3, 2, 1 },
    { 2, 8, 8, 19, 2, 2, 0 },
    { 1, 9, 9, 6, 3, 1, 1 },
  };
  for (guint ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const int n = cases[ci][0], h = cases[ci][1], w = cases[ci][2];
    const int c = cases[ci][3], k = cases[ci][4], st = cases[ci][5];
    const int p = cases[ci][6];
    const int oh = (h + 2 * p - k) / st + 1, ow = (w + 2 * p - k) / st + 1;
    const size_t nin = (size_t) n * h * w * c, nout = (size_t) n * oh * ow * c;
    float *inp = g_new (float, nin), *out = g_new (float, nout);
    float *dout = test_random_floats (&rng, nout, 1.0f);
    float *dinp = g_new (float, nin), *ref_dinp = g_new0 (float, nin);
    double *ref = g_new (double, nout);
    double err_fwd, err_bwd = 0.0;

    for (size_t i = 0; i < nin; i++)
      inp[i] = (float) (fer_rng_next (&rng) % 3) - 1.0f;
    for (int b = 0; b < n; b++)
      for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
          for (int ch = 0; ch < c; ch++) {
            const size_t o = (((size_t) b * oh + oy) * ow + ox) * c + ch;
            float m = -INFINITY;
            size_t at = 0;
            for (int y = oy * st - p; y < oy * st - p + k; y++)
              for (int x = ox * st - p; x < ox * st - p + k; x++) {
                if (y < 0 || y >= h || x < 0 || x >= w)
                  continue;
                const size_t i = (((size_t) b * h + y) * w + x) * c + ch;
                if (inp[i] > m) {
                  m = inp[i];
                  at = i;
                }
              }
            ref[o] = m;
            ref_dinp[at] += dout[o];
          }
    fer_cpu_maxpool2d_forward (out, inp, n, h, w, c, k, st, p);
    fer_cpu_maxpool2d_backward (dinp, dout, inp, n, h, w, c, k, st, p);
    err_fwd = test_max_rel_error (out, ref, nout);
    for (size_t i = 0; i < nin; i++)
      err_bwd = fmax (err_bwd, fabs (dinp[i] - ref_dinp[i]));
    g_test_message ("maxpool n=%d %dx%dx%d k=%d s=%d p=%d, ties: forward max "
                    "rel error %.3g, backward max abs error %.3g",
        n, h, w, c, k, st, p, err_fwd, err_bwd);
    g_assert_cmpfloat (err_fwd, ==, 0.0);
    g_assert_cmpmem (
        dinp, nin * sizeof (float), ref_dinp, nin * sizeof (float));
    g_free (inp);
    g_free (out);
    g_free (dout);
    g_free (dinp);
    g_free (ref_dinp);
    g_free (ref);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 42);
  g_test_add_func ("/pool/maxpool2d-forward", test_maxpool_forward);
  g_test_add_func ("/pool/avgpool-forward", test_avgpool_forward);
  g_test_add_func ("/pool/backward", test_backward);
  g_test_add_func ("/pool/maxpool-naive", test_maxpool_naive);
  return g_test_run ();
}
