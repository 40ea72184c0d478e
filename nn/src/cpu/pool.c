/* Pooling on the CPU, NHWC: max-pool and global average pool, forward and
 * backward, and the backend table's entries for them. Backward contract:
 * dinp is overwritten. */
#include "cpu/backend_cpu.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Max-pool runs channels innermost: each window tap is a row of c
 * contiguous floats, merged into the output row (forward) or the running
 * maximum and its position (backward) by loops that the compiler
 * vectorises (FER_FOR_VEC, restrict, no inlining). */

G_NO_INLINE static void
max_into (float *restrict o, const float *restrict p, size_t n)
{
  FER_FOR_VEC (i, n, o[i] = p[i] > o[i] ? p[i] : o[i]);
}

/* Where p beats best (strictly: an earlier tap keeps a tie), best = p and
 * at = pos. GCC's -O2 does not vectorise this select, so it is written in
 * its generic 4-lane vectors (SSE2 on x86-64, NEON elsewhere). */
typedef float pool_v4f __attribute__ ((vector_size (16)));
typedef int pool_v4i __attribute__ ((vector_size (16)));

static void
argmax_into (float *best, int *at, const float *p, int pos, size_t n)
{
  const pool_v4i vpos = { pos, pos, pos, pos };
  size_t i = 0;

  for (; i + 4 <= n; i += 4) {
    pool_v4f b, v;
    pool_v4i a;
    memcpy (&b, best + i, sizeof b);
    memcpy (&v, p + i, sizeof v);
    memcpy (&a, at + i, sizeof a);
    const pool_v4i gt = v > b;
    a = (a & ~gt) | (vpos & gt);
    b = (pool_v4f) (((pool_v4i) b & ~gt) | ((pool_v4i) v & gt));
    memcpy (best + i, &b, sizeof b);
    memcpy (at + i, &a, sizeof a);
  }
  for (; i < n; i++)
    if (p[i] > best[i]) {
      best[i] = p[i];
      at[i] = pos;
    }
}

/* The taps [*y0, *y1) x [*x0, *x1) of output (oy, ox) inside the map. */
static void
window (int oy, int ox, int h, int w, int k, int stride, int pad, int *y0,
    int *y1, int *x0, int *x1)
{
  *y0 = MAX (oy * stride - pad, 0);
  *y1 = MIN (oy * stride - pad + k, h);
  *x0 = MAX (ox * stride - pad, 0);
  *x1 = MIN (ox * stride - pad + k, w);
}

void
fer_cpu_maxpool2d_forward (float *out, const float *inp, int n, int h, int w,
    int c, int k, int stride, int pad)
{
  int oh = (h + 2 * pad - k) / stride + 1;
  int ow = (w + 2 * pad - k) / stride + 1;
  for (int b = 0; b < n; b++) {
    const float *img = inp + (size_t) b * h * w * c;
    for (int oy = 0; oy < oh; oy++) {
      for (int ox = 0; ox < ow; ox++) {
        float *o = out + (((size_t) b * oh + oy) * ow + ox) * c;
        int y0, y1, x0, x1;
        window (oy, ox, h, w, k, stride, pad, &y0, &y1, &x0, &x1);
        if (y0 >= y1 || x0 >= x1) {
          /* a window of padding only (pad >= k): PyTorch refuses these */
          for (int ch = 0; ch < c; ch++)
            o[ch] = -FLT_MAX;
          continue;
        }
        memcpy (o, img + ((size_t) y0 * w + x0) * c, (size_t) c * sizeof *o);
        for (int iy = y0; iy < y1; iy++)
          for (int ix = iy == y0 ? x0 + 1 : x0; ix < x1; ix++)
            max_into (o, img + ((size_t) iy * w + ix) * c, (size_t) c);
      }
    }
  }
}

/* The forward pass picks the same window maximum; here the first one in
 * (ky, kx) scan order wins (strict >, starting from -inf at the first tap
 * inside), which is where PyTorch's CPU kernel sends the gradient. */
void
fer_cpu_maxpool2d_backward (float *dinp, const float *dout, const float *inp,
    int n, int h, int w, int c, int k, int stride, int pad)
{
  enum
  {
    CBLOCK = 256
  };
  int oh = (h + 2 * pad - k) / stride + 1;
  int ow = (w + 2 * pad - k) / stride + 1;
  float best[CBLOCK];
  int at[CBLOCK];

  memset (dinp, 0, sizeof (float) * n * h * w * c);
  for (int b = 0; b < n; b++) {
    const float *img = inp + (size_t) b * h * w * c;
    float *dimg = dinp + (size_t) b * h * w * c;
    for (int oy = 0; oy < oh; oy++) {
      for (int ox = 0; ox < ow; ox++) {
        const float *d = dout + (((size_t) b * oh + oy) * ow + ox) * c;
        int y0, y1, x0, x1;
        window (oy, ox, h, w, k, stride, pad, &y0, &y1, &x0, &x1);
        if (y0 >= y1 || x0 >= x1)
          continue;
        for (int c0 = 0; c0 < c; c0 += CBLOCK) {
          const int cb = MIN (CBLOCK, c - c0);
          const int first = (y0 * w + x0) * c + c0;
          for (int j = 0; j < cb; j++) {
            best[j] = -INFINITY;
            at[j] = first;
          }
          for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) {
              const int pos = (iy * w + ix) * c + c0;
              argmax_into (best, at, img + pos, pos, (size_t) cb);
            }
          for (int j = 0; j < cb; j++)
            dimg[at[j] + j] += d[c0 + j];
        }
      }
    }
  }
}

void
fer_cpu_avgpool_forward (float *out, const float *inp, int n, int hw, int c)
{
  for (int b = 0; b < n; b++) {
    float *o = out + (size_t) b * c;
    const float *p = inp + (size_t) b * hw * c;
    for (int ch = 0; ch < c; ch++)
      o[ch] = 0.0f;
    for (int i = 0; i < hw; i++)
      for (int ch = 0; ch < c; ch++)
        o[ch] += p[(size_t) i * c + ch];
    for (int ch = 0; ch < c; ch++)
      o[ch] /= (float) hw;
  }
}

void
fer_cpu_avgpool_backward (float *dinp, const float *dout, int n, int hw, int c)
{
  for (int b = 0; b < n; b++) {
    const float *d = dout + (size_t) b * c;
    float *p = dinp + (size_t) b * hw * c;
    for (int i = 0; i < hw; i++)
      for (int ch = 0; ch < c; ch++)
        p[(size_t) i * c + ch] = d[ch] / (float) hw;
  }
}

gboolean
fer_cpu_op_maxpool2d_forward (fer_backend *be, float *out, const float *inp,
    int n, int h, int w, int c, int k, int stride, int pad, GError **error)
{
  fer_cpu_maxpool2d_forward (out, inp, n, h, w, c, k, stride, pad);
  return TRUE;
}

gboolean
fer_cpu_op_maxpool2d_backward (fer_backend *be, float *dinp, const float *dout,
    const float *inp, int n, int h, int w, int c, int k, int stride, int pad,
    GError **error)
{
  fer_cpu_maxpool2d_backward (dinp, dout, inp, n, h, w, c, k, stride, pad);
  return TRUE;
}

gboolean
fer_cpu_op_avgpool_forward (fer_backend *be, float *out, const float *inp,
    int n, int hw, int c, GError **error)
{
  fer_cpu_avgpool_forward (out, inp, n, hw, c);
  return TRUE;
}

gboolean
fer_cpu_op_avgpool_backward (fer_backend *be, float *dinp, const float *dout,
    int n, int hw, int c, GError **error)
{
  fer_cpu_avgpool_backward (dinp, dout, n, hw, c);
  return TRUE;
}
