/* The arithmetic of one preprocessed input value, shared by the kernel
 * (preprocess.cu, on the device) and a CPU test (tests/nn/
 * test_cuda_host.c) that checks it against fer_preprocess bit for bit:
 * the same conversions as preprocess.c's convert_row, the horizontal taps
 * summed in two chains (even, odd), then the vertical taps, then the
 * normalisation, in that order. Plain C for gcc, and CUDA for nvcc. */
#ifndef FER_CUDA_PREPROCESS_MATH_H
#define FER_CUDA_PREPROCESS_MATH_H

#include "kernels.h"

#ifdef __CUDACC__
#define FER_PP_FN static __host__ __device__ inline
#else
#define FER_PP_FN static inline
#endif

FER_PP_FN float
fer_pp_clamp_255 (float v)
{
  return v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
}

/* Source pixel (x, y) as channel c of a `channels`-channel input. */
FER_PP_FN float
fer_pp_pixel (const fer_cuda_frame *f, const unsigned char *data, int x, int y,
    int c, int channels)
{
  const unsigned char *row0 = data + f->offsets[0] + (size_t) y * f->strides[0];
  if (f->kind == FER_CUDA_FRAME_GRAY)
    return row0[x];
  if (f->kind == FER_CUDA_FRAME_PACKED) {
    const unsigned char *p = row0 + (size_t) x * f->bytes_per_pixel;
    if (channels == 1)
      return fer_pp_clamp_255 (0.299f * p[f->rgb[0]] + 0.587f * p[f->rgb[1]]
          + 0.114f * p[f->rgb[2]]);
    return p[f->rgb[c]];
  }
  /* I420 (planar U, V) or NV12 (interleaved UV), BT.601: limited range
   * with the 3-decimal coefficients, full range with the JFIF equations;
   * chroma from the sample covering the pixel */
  const float luma = row0[x];
  if (channels == 1)
    return f->full_range
        ? luma
        : fer_pp_clamp_255 ((luma - 16.0f) * (255.0f / 219.0f));
  const int nv12 = f->kind == FER_CUDA_FRAME_NV12;
  const int cx = (x / 2) * (nv12 ? 2 : 1);
  const size_t crow = (size_t) (y / 2);
  const unsigned char *up = data + f->offsets[1] + crow * f->strides[1];
  const unsigned char *vp =
      nv12 ? up + 1 : data + f->offsets[2] + crow * f->strides[2];
  const float yy =
      (f->full_range ? 1.0f : 1.164f) * (luma - (f->full_range ? 0.0f : 16.0f));
  const float u = up[cx] - 128.0f, v = vp[cx] - 128.0f;
  if (c == 0)
    return fer_pp_clamp_255 (yy + (f->full_range ? 1.402f : 1.596f) * v);
  if (c == 1)
    return fer_pp_clamp_255 (yy + (f->full_range ? -0.344136f : -0.391f) * u
        + (f->full_range ? -0.714136f : -0.813f) * v);
  return fer_pp_clamp_255 (yy + (f->full_range ? 1.772f : 2.018f) * u);
}

/* Value (view v, row oy, column ox, channel c) of the batch, with the
 * views' taps t (kernels.h). */
FER_PP_FN float
fer_pp_value (const fer_cuda_frame *f, const unsigned char *data,
    const fer_cuda_taps *t, int S, int C, const fer_cuda_norm *norm, int v,
    int oy, int ox, int c)
{
  const int *view = t->views + (size_t) 3 * v;
  const int *xa = t->x_axes + (size_t) view[0] * 2 * S;
  const int *ya = t->y_axes + (size_t) view[1] * 2 * S;
  /* a flipped view's column ox is the unflipped filter's output S-1-ox */
  const int o = view[2] ? S - 1 - ox : ox;
  const int x0 = xa[o], nx = xa[S + o];
  const int y0 = ya[oy], ny = ya[S + oy];
  const float *wx = t->x_weights + ((size_t) view[0] * S + o) * t->stride_x;
  const float *wy = t->y_weights + ((size_t) view[1] * S + oy) * t->stride_y;
  float acc = 0.0f;
  for (int k = 0; k < ny; k++) {
    float even = 0.0f, odd = 0.0f;
    int kk;
    for (kk = 0; kk + 1 < nx; kk += 2) {
      even += wx[kk] * fer_pp_pixel (f, data, x0 + kk, y0 + k, c, C);
      odd += wx[kk + 1] * fer_pp_pixel (f, data, x0 + kk + 1, y0 + k, c, C);
    }
    if (kk < nx)
      even += wx[kk] * fer_pp_pixel (f, data, x0 + kk, y0 + k, c, C);
    acc += wy[k] * (even + odd);
  }
  return acc * norm->gain[c] + norm->bias[c];
}

#endif
