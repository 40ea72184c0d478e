/* Convolution for training on the CPU: a plain forward (no bias: BatchNorm
 * follows every ResNet conv) and the backward pass, both through im2col and
 * one SGEMM per chunk of images.
 *
 * This file moves into conv.c (forward and backward side by side) once that
 * file's rewrite for speed has landed; it keeps its own plain im2col so that
 * the training path does not depend on the inference path's weight packing.
 *
 * Shapes (NHWC): inp (n, h, w, cin), out/dout (n, oh, ow, cout), weight
 * (cout, k, k, cin) = (cout, kdim) with kdim = k*k*cin, col (pixels, kdim).
 *   forward: out (pixels, cout) = col . weight^T
 *   dweight (cout, kdim)       += dout^T . col
 *   dcol (pixels, kdim)         = dout . weight, then col2im into dinp
 * Contract: dweight accumulates, dinp is overwritten. */
#include "cpu/ops_train.h"

#include <string.h>
#include <cblas.h>

static gboolean
is_pointwise (const fer_conv_shape *s)
{
  return s->k == 1 && s->stride == 1 && s->pad == 0;
}

size_t
fer_cpu_conv2d_train_col_per_image (const fer_conv_shape *s)
{
  if (is_pointwise (s))
    return 0;
  return (size_t) s->oh * s->ow * s->k * s->k * s->cin;
}

/* Input columns ix = ox*stride - pad + kx for kx in [k0, k1) are inside the
 * image; for one output pixel and kernel row they are one contiguous run of
 * (k1 - k0) * cin floats in NHWC. */
static inline void
valid_kx (const fer_conv_shape *s, int ox, int *k0, int *k1)
{
  int ix0 = ox * s->stride - s->pad;
  *k0 = ix0 < 0 ? -ix0 : 0;
  *k1 = s->w - ix0 < s->k ? s->w - ix0 : s->k;
  if (*k1 < *k0)
    *k1 = *k0;
}

/* col (nb, oh, ow, k, k, cin) from inp (nb, h, w, cin); zero outside. */
static void
im2col (float *col, const float *inp, const fer_conv_shape *s, int nb)
{
  const int cin = s->cin, k = s->k;
  for (int b = 0; b < nb; b++) {
    const float *img = inp + (size_t) b * s->h * s->w * cin;
    for (int oy = 0; oy < s->oh; oy++) {
      for (int ox = 0; ox < s->ow; ox++) {
        int k0, k1;
        valid_kx (s, ox, &k0, &k1);
        int ix0 = ox * s->stride - s->pad;
        for (int ky = 0; ky < k; ky++) {
          int iy = oy * s->stride - s->pad + ky;
          if (iy < 0 || iy >= s->h || k0 == k1) {
            memset (col, 0, sizeof (float) * k * cin);
          } else {
            if (k0 > 0)
              memset (col, 0, sizeof (float) * k0 * cin);
            memcpy (col + (size_t) k0 * cin,
                img + ((size_t) iy * s->w + ix0 + k0) * cin,
                sizeof (float) * (k1 - k0) * cin);
            if (k1 < k)
              memset (col + (size_t) k1 * cin, 0,
                  sizeof (float) * (k - k1) * cin);
          }
          col += (size_t) k * cin;
        }
      }
    }
  }
}

G_NO_INLINE static void
add_run (float *restrict dst, const float *restrict src, size_t n)
{
  FER_FOR_VEC (i, n, dst[i] += src[i]);
}

/* dinp (nb, h, w, cin) += scatter of col (nb, oh, ow, k, k, cin). */
static void
col2im_add (float *dinp, const float *col, const fer_conv_shape *s, int nb)
{
  const int cin = s->cin, k = s->k;
  for (int b = 0; b < nb; b++) {
    float *img = dinp + (size_t) b * s->h * s->w * cin;
    for (int oy = 0; oy < s->oh; oy++) {
      for (int ox = 0; ox < s->ow; ox++) {
        int k0, k1;
        valid_kx (s, ox, &k0, &k1);
        int ix0 = ox * s->stride - s->pad;
        for (int ky = 0; ky < k; ky++) {
          int iy = oy * s->stride - s->pad + ky;
          if (iy >= 0 && iy < s->h && k0 < k1)
            add_run (img + ((size_t) iy * s->w + ix0 + k0) * cin,
                col + (size_t) k0 * cin, (size_t) (k1 - k0) * cin);
          col += (size_t) k * cin;
        }
      }
    }
  }
}

static int
chunk_images (const fer_conv_shape *s, size_t col_cap)
{
  size_t per_image = fer_cpu_conv2d_train_col_per_image (s);
  if (!per_image)
    return s->n;
  g_assert (col_cap >= per_image);
  return (int) MIN ((size_t) s->n, col_cap / per_image);
}

void
fer_cpu_conv2d_forward_train (float *out, const float *inp,
    const float *weight, const fer_conv_shape *s, float *col, size_t col_cap)
{
  const int kdim = s->k * s->k * s->cin;
  const size_t out_pixels = (size_t) s->oh * s->ow;
  const size_t in_floats = (size_t) s->h * s->w * s->cin;
  const int chunk = chunk_images (s, col_cap);

  for (int b0 = 0; b0 < s->n; b0 += chunk) {
    int nb = MIN (chunk, s->n - b0);
    const float *a = inp + (size_t) b0 * in_floats;
    if (!is_pointwise (s)) {
      im2col (col, a, s, nb);
      a = col;
    }
    /* out (pixels, cout) = col (pixels, kdim) . weight (cout, kdim)^T */
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans,
        (int) (nb * out_pixels), s->cout, kdim, 1.0f, a, kdim, weight, kdim,
        0.0f, out + (size_t) b0 * out_pixels * s->cout, s->cout);
  }
}

void
fer_cpu_conv2d_backward (float *dinp, float *dweight, const float *dout,
    const float *inp, const float *weight, const fer_conv_shape *s,
    float *col, size_t col_cap)
{
  const int kdim = s->k * s->k * s->cin;
  const size_t out_pixels = (size_t) s->oh * s->ow;
  const size_t in_floats = (size_t) s->h * s->w * s->cin;
  const int chunk = chunk_images (s, col_cap);
  const gboolean pointwise = is_pointwise (s);

  if (dinp && !pointwise)
    memset (dinp, 0, sizeof (float) * s->n * in_floats);
  for (int b0 = 0; b0 < s->n; b0 += chunk) {
    int nb = MIN (chunk, s->n - b0);
    int rows = (int) (nb * out_pixels);
    const float *a = inp + (size_t) b0 * in_floats;
    const float *d = dout + (size_t) b0 * out_pixels * s->cout;
    if (!pointwise) {
      im2col (col, a, s, nb);
      a = col;
    }
    /* dweight (cout, kdim) += dout (rows, cout)^T . col (rows, kdim) */
    cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, s->cout, kdim, rows,
        1.0f, d, s->cout, a, kdim, 1.0f, dweight, kdim);
    if (!dinp)
      continue;
    /* dcol (rows, kdim) = dout (rows, cout) . weight (cout, kdim); the
     * columns are no longer needed, so dcol takes their place. */
    float *dcol = pointwise ? dinp + (size_t) b0 * in_floats : col;
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, kdim,
        s->cout, 1.0f, d, s->cout, weight, kdim, 0.0f, dcol, kdim);
    if (!pointwise)
      col2im_add (dinp + (size_t) b0 * in_floats, dcol, s, nb);
  }
}
