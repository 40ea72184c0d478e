/* Activation CUDA kernels: ReLU backward, the residual add, dropout (a
 * multiply by the trainer's mask), and the bias/residual/ReLU epilogue of
 * the convolutions cuDNN does not fuse and of the linear layers, with its
 * half-precision variant and the conversion to halves for
 * FER_CUDA_MATH=fp16's convolutions.
 * Grid-stride loops; the arithmetic is the CPU ops' (cpu/activation.c), in
 * the same order, without FMA contraction (kernels.h). */
#include <cuda_fp16.h>

#include "kernels.h"

static __global__ void
relu_backward_kernel (
    float *dinp, const float *dout, const float *out, size_t n)
{
  FER_CUDA_GRID_STRIDE (i, n)
  {
    const float d = dout[i];
    dinp[i] = out[i] > 0.0f ? d : 0.0f;
  }
}

static __global__ void
add_kernel (float *out, const float *a, const float *b, size_t n)
{
  FER_CUDA_GRID_STRIDE (i, n) out[i] = a[i] + b[i];
}

static __global__ void
mul_kernel (float *out, const float *a, const float *b, size_t n)
{
  FER_CUDA_GRID_STRIDE (i, n) out[i] = a[i] * b[i];
}

/* act(v + bias [+ residual]) for element i of (rows, c) */
static __device__ float
bias_act_value (float v, const float *bias, const float *residual, size_t i,
    int c, int relu)
{
  if (bias)
    v += bias[i % c];
  if (residual)
    v += residual[i];
  return relu && v < 0.0f ? 0.0f : v;
}

static __global__ void
bias_act_kernel (float *out, const float *bias, const float *residual, size_t n,
    int c, int relu)
{
  FER_CUDA_GRID_STRIDE (i, n)
  out[i] = bias_act_value (out[i], bias, residual, i, c, relu);
}

static __global__ void
halves_bias_act_kernel (float *out, const uint16_t *halves, const float *bias,
    const float *residual, size_t n, int c, int relu)
{
  FER_CUDA_GRID_STRIDE (i, n)
  out[i] = bias_act_value (
      __half2float (__ushort_as_half (halves[i])), bias, residual, i, c, relu);
}

static __global__ void
floats_to_halves_kernel (uint16_t *halves, const float *floats, size_t n)
{
  FER_CUDA_GRID_STRIDE (i, n)
  halves[i] = __half_as_ushort (__float2half_rn (floats[i]));
}

extern "C" cudaError_t
fer_cuda_relu_backward (cudaStream_t stream, float *dinp, const float *dout,
    const float *out, size_t n)
{
  FER_CUDA_LAUNCH (relu_backward_kernel, n, stream, dinp, dout, out, n);
}

extern "C" cudaError_t
fer_cuda_add (
    cudaStream_t stream, float *out, const float *a, const float *b, size_t n)
{
  FER_CUDA_LAUNCH (add_kernel, n, stream, out, a, b, n);
}

extern "C" cudaError_t
fer_cuda_dropout_forward (cudaStream_t stream, float *out, const float *inp,
    const float *mask, size_t n)
{
  FER_CUDA_LAUNCH (mul_kernel, n, stream, out, inp, mask, n);
}

extern "C" cudaError_t
fer_cuda_bias_act (cudaStream_t stream, float *out, const float *bias,
    const float *residual, size_t rows, int c, int relu)
{
  const size_t n = rows * (size_t) c;
  FER_CUDA_LAUNCH (bias_act_kernel, n, stream, out, bias, residual, n, c, relu);
}

extern "C" cudaError_t
fer_cuda_floats_to_halves (
    cudaStream_t stream, uint16_t *halves, const float *floats, size_t n)
{
  FER_CUDA_LAUNCH (floats_to_halves_kernel, n, stream, halves, floats, n);
}

extern "C" cudaError_t
fer_cuda_halves_bias_act (cudaStream_t stream, float *out,
    const uint16_t *halves, const float *bias, const float *residual,
    size_t rows, int c, int relu)
{
  const size_t n = rows * (size_t) c;
  FER_CUDA_LAUNCH (halves_bias_act_kernel, n, stream, out, halves, bias,
      residual, n, c, relu);
}
