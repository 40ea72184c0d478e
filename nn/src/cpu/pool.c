/* Pooling on the CPU, NHWC: max-pool and global average pool, forward and
 * backward, and the backend table's entries for them. Backward contract:
 * dinp is overwritten. */
#include "cpu/backend_cpu.h"

#include <float.h>
#include <math.h>
#include <string.h>

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
        for (int ch = 0; ch < c; ch++)
          o[ch] = -FLT_MAX;
        for (int ky = 0; ky < k; ky++) {
          int iy = oy * stride - pad + ky;
          if (iy < 0 || iy >= h)
            continue;
          for (int kx = 0; kx < k; kx++) {
            int ix = ox * stride - pad + kx;
            if (ix < 0 || ix >= w)
              continue;
            const float *p = img + ((size_t) iy * w + ix) * c;
            for (int ch = 0; ch < c; ch++)
              o[ch] = p[ch] > o[ch] ? p[ch] : o[ch];
          }
        }
      }
    }
  }
}

/* The forward pass picks the same window maximum; here the first one in
 * (ky, kx) scan order wins (strict >, starting from -inf), which is where
 * PyTorch's CPU kernel sends the gradient. Channels run innermost, so the
 * running maximum and its position are kept per channel. */
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
  size_t where[CBLOCK];

  memset (dinp, 0, sizeof (float) * n * h * w * c);
  for (int b = 0; b < n; b++) {
    const float *img = inp + (size_t) b * h * w * c;
    float *dimg = dinp + (size_t) b * h * w * c;
    for (int oy = 0; oy < oh; oy++) {
      for (int ox = 0; ox < ow; ox++) {
        const float *d = dout + (((size_t) b * oh + oy) * ow + ox) * c;
        for (int c0 = 0; c0 < c; c0 += CBLOCK) {
          const int cb = MIN (CBLOCK, c - c0);
          for (int j = 0; j < cb; j++) {
            best[j] = -INFINITY;
            where[j] = 0;
          }
          gboolean first = TRUE;
          for (int ky = 0; ky < k; ky++) {
            int iy = oy * stride - pad + ky;
            if (iy < 0 || iy >= h)
              continue;
            for (int kx = 0; kx < k; kx++) {
              int ix = ox * stride - pad + kx;
              if (ix < 0 || ix >= w)
                continue;
              size_t pos = ((size_t) iy * w + ix) * c + c0;
              const float *p = img + pos;
              if (first) {
                for (int j = 0; j < cb; j++)
                  where[j] = pos + j;
                first = FALSE;
              }
              for (int j = 0; j < cb; j++) {
                if (p[j] > best[j]) {
                  best[j] = p[j];
                  where[j] = pos + j;
                }
              }
            }
          }
          for (int j = 0; j < cb; j++)
            dimg[where[j]] += d[c0 + j];
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
