/* Pooling on the CPU, NHWC. */
#include "cpu/ops.h"

#include <float.h>

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
