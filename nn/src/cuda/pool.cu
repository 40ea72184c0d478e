/* Pooling CUDA kernels, NHWC: max-pool and global average pool, forward
 * and backward (the backend table's entries are in pool.c). Our own
 * kernels rather than cuDNN's pooling: the backward pass must send each
 * window's gradient to the FIRST maximum in (ky, kx) order, as PyTorch's
 * and our CPU kernel do (ties are common after ReLU: all-zero windows), and
 * it gathers per input element so that no atomics make it run-to-run
 * different. */
#include <float.h>
#include <math.h>

#include "kernels.h"

/* Position (iy * w + ix) of the first maximum of output (oy, ox)'s window
 * in channel ch, as fer_cpu_maxpool2d_backward picks it. */
static __device__ int
window_argmax (const float *img, int h, int w, int c, int ch, int k, int stride,
    int pad, int oy, int ox)
{
  float best = -INFINITY;
  int where = -1;
  for (int ky = 0; ky < k; ky++) {
    const int iy = oy * stride - pad + ky;
    if (iy < 0 || iy >= h)
      continue;
    for (int kx = 0; kx < k; kx++) {
      const int ix = ox * stride - pad + kx;
      if (ix < 0 || ix >= w)
        continue;
      const float v = img[((size_t) iy * w + ix) * c + ch];
      if (where < 0)
        where = iy * w + ix;
      if (v > best) {
        best = v;
        where = iy * w + ix;
      }
    }
  }
  return where;
}

/* The window's maximum is the value at its first maximum; padding never
 * wins (the window always holds a real pixel). */
static __global__ void
maxpool2d_forward_kernel (float *out, const float *inp, int n, int h, int w,
    int c, int k, int stride, int pad, int oh, int ow)
{
  FER_CUDA_GRID_STRIDE (i, (size_t) n * oh * ow * c)
  {
    const int ch = (int) (i % c);
    const size_t pix = i / c;
    const int ox = (int) (pix % ow), oy = (int) (pix / ow % oh);
    const int b = (int) (pix / ((size_t) ow * oh));
    const float *img = inp + (size_t) b * h * w * c;
    const int where = window_argmax (img, h, w, c, ch, k, stride, pad, oy, ox);
    out[i] = where < 0 ? -FLT_MAX : img[(size_t) where * c + ch];
  }
}

static __global__ void
maxpool2d_backward_kernel (float *dinp, const float *dout, const float *inp,
    int n, int h, int w, int c, int k, int stride, int pad, int oh, int ow)
{
  FER_CUDA_GRID_STRIDE (i, (size_t) n * h * w * c)
  {
    const int ch = (int) (i % c);
    const size_t pix = i / c;
    const int ix = (int) (pix % w), iy = (int) (pix / w % h);
    const int b = (int) (pix / ((size_t) w * h));
    const float *img = inp + (size_t) b * h * w * c;
    const float *d = dout + (size_t) b * oh * ow * c;
    /* the outputs whose window holds (iy, ix):
     * oy * stride - pad <= iy <= oy * stride - pad + k - 1 */
    const int oy0 = max (0, (iy + pad - k + stride) / stride);
    const int oy1 = min (oh - 1, (iy + pad) / stride);
    const int ox0 = max (0, (ix + pad - k + stride) / stride);
    const int ox1 = min (ow - 1, (ix + pad) / stride);
    float acc = 0.0f;
    for (int oy = oy0; oy <= oy1; oy++)
      for (int ox = ox0; ox <= ox1; ox++)
        if (window_argmax (img, h, w, c, ch, k, stride, pad, oy, ox)
            == iy * w + ix)
          acc += d[((size_t) oy * ow + ox) * c + ch];
    dinp[i] = acc;
  }
}

static __global__ void
avgpool_forward_kernel (float *out, const float *inp, int n, int hw, int c)
{
  FER_CUDA_GRID_STRIDE (i, (size_t) n * c)
  {
    const int ch = (int) (i % c);
    const float *p = inp + i / c * hw * c;
    float s = 0.0f;
    for (int j = 0; j < hw; j++)
      s += p[(size_t) j * c + ch];
    out[i] = s / (float) hw;
  }
}

static __global__ void
avgpool_backward_kernel (float *dinp, const float *dout, int n, int hw, int c)
{
  FER_CUDA_GRID_STRIDE (i, (size_t) n * hw * c)
  {
    const size_t b = i / ((size_t) hw * c);
    dinp[i] = dout[b * c + i % c] / (float) hw;
  }
}

extern "C" cudaError_t
fer_cuda_maxpool2d_forward (cudaStream_t stream, float *out, const float *inp,
    int n, int h, int w, int c, int k, int stride, int pad)
{
  const int oh = (h + 2 * pad - k) / stride + 1;
  const int ow = (w + 2 * pad - k) / stride + 1;
  const size_t total = (size_t) n * oh * ow * c;
  if (total > 0)
    maxpool2d_forward_kernel<<<fer_cuda_blocks (total), FER_CUDA_THREADS, 0,
        stream>>> (out, inp, n, h, w, c, k, stride, pad, oh, ow);
  return cudaGetLastError ();
}

extern "C" cudaError_t
fer_cuda_maxpool2d_backward (cudaStream_t stream, float *dinp,
    const float *dout, const float *inp, int n, int h, int w, int c, int k,
    int stride, int pad)
{
  const int oh = (h + 2 * pad - k) / stride + 1;
  const int ow = (w + 2 * pad - k) / stride + 1;
  const size_t total = (size_t) n * h * w * c;
  if (total > 0)
    maxpool2d_backward_kernel<<<fer_cuda_blocks (total), FER_CUDA_THREADS, 0,
        stream>>> (dinp, dout, inp, n, h, w, c, k, stride, pad, oh, ow);
  return cudaGetLastError ();
}

extern "C" cudaError_t
fer_cuda_avgpool_forward (
    cudaStream_t stream, float *out, const float *inp, int n, int hw, int c)
{
  const size_t total = (size_t) n * c;
  if (total > 0)
    avgpool_forward_kernel<<<fer_cuda_blocks (total), FER_CUDA_THREADS, 0,
        stream>>> (out, inp, n, hw, c);
  return cudaGetLastError ();
}

extern "C" cudaError_t
fer_cuda_avgpool_backward (
    cudaStream_t stream, float *dinp, const float *dout, int n, int hw, int c)
{
  const size_t total = (size_t) n * hw * c;
  if (total > 0)
    avgpool_backward_kernel<<<fer_cuda_blocks (total), FER_CUDA_THREADS, 0,
        stream>>> (dinp, dout, n, hw, c);
  return cudaGetLastError ();
}
