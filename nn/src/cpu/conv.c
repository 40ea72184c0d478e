/* Convolution on the CPU: im2col into a (pixels, KH*KW*Cin) matrix, then one
 * SGEMM against the (Cout, KH*KW*Cin) weights. With NHWC activations the
 * patch of one output pixel is KH*KW runs of Cin contiguous floats, and a
 * 1x1 stride-1 convolution needs no im2col at all. Bias, residual and ReLU
 * are fused into one pass over the GEMM output. */
#include "cpu/ops.h"

#include <string.h>
#include <cblas.h>

size_t
fer_cpu_conv2d_col_per_image (const fer_conv_shape *s)
{
  if (s->k == 1 && s->stride == 1 && s->pad == 0)
    return 0;
  return (size_t) s->oh * s->ow * s->k * s->k * s->cin;
}

/* col (n, oh, ow, k, k, cin) from inp (n, h, w, cin); zero outside. */
static void
im2col (float *col, const float *inp, const fer_conv_shape *s, int n)
{
  const size_t run = (size_t) s->cin * sizeof (float);
  for (int b = 0; b < n; b++) {
    const float *img = inp + (size_t) b * s->h * s->w * s->cin;
    for (int oy = 0; oy < s->oh; oy++) {
      for (int ox = 0; ox < s->ow; ox++) {
        for (int ky = 0; ky < s->k; ky++) {
          int iy = oy * s->stride - s->pad + ky;
          for (int kx = 0; kx < s->k; kx++) {
            int ix = ox * s->stride - s->pad + kx;
            if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
              memset (col, 0, run);
            else
              memcpy (col, img + ((size_t) iy * s->w + ix) * s->cin, run);
            col += s->cin;
          }
        }
      }
    }
  }
}

static void
bias_residual_act (float *out, const float *bias, const float *residual,
    size_t rows, int cols, gboolean relu)
{
  for (size_t r = 0; r < rows; r++) {
    float *o = out + r * cols;
    const float *res = residual ? residual + r * cols : NULL;
    for (int c = 0; c < cols; c++) {
      float v = o[c] + (bias ? bias[c] : 0.0f) + (res ? res[c] : 0.0f);
      o[c] = relu && v < 0.0f ? 0.0f : v;
    }
  }
}

void
fer_cpu_conv2d_forward (float *out, const float *inp, const float *weight,
    const float *bias, const float *residual, const fer_conv_shape *s,
    gboolean relu, float *col, size_t col_cap)
{
  const size_t per_image = fer_cpu_conv2d_col_per_image (s);
  const int kdim = s->k * s->k * s->cin;
  const size_t out_pixels = (size_t) s->oh * s->ow;
  const size_t in_floats = (size_t) s->h * s->w * s->cin;
  int chunk = per_image ? (int) MIN ((size_t) s->n, col_cap / per_image) : s->n;

  g_assert (chunk > 0);
  for (int b0 = 0; b0 < s->n; b0 += chunk) {
    int nb = MIN (chunk, s->n - b0);
    const float *a = inp + (size_t) b0 * in_floats;
    float *o = out + (size_t) b0 * out_pixels * s->cout;
    if (per_image) {
      im2col (col, a, s, nb);
      a = col;
    }
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans,
        (int) (nb * out_pixels), s->cout, kdim, 1.0f, a, kdim, weight, kdim,
        0.0f, o, s->cout);
    bias_residual_act (o, bias,
        residual ? residual + (size_t) b0 * out_pixels * s->cout : NULL,
        nb * out_pixels, s->cout, relu);
  }
}
