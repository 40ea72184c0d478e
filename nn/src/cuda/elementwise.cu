/* Element-wise CUDA kernels: ReLU backward, add, multiply (dropout), the
 * bias/residual/ReLU epilogue, column sums (bias gradients) and the
 * optimizer steps over the single parameter buffer. Grid-stride loops;
 * the arithmetic is the CPU ops' (cpu/activation.c, cpu/optimizer.c), in
 * the same order, without FMA contraction (kernels.h). */
#include "kernels.h"
#include "plan.h"

#define GRID_STRIDE(i, n) \
  for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
      i += (size_t) gridDim.x * blockDim.x)

#define LAUNCH(kernel, n, stream, ...) \
  do { \
    if ((n) > 0) \
      kernel<<<fer_cuda_blocks (n), FER_CUDA_THREADS, 0, stream>>> (__VA_ARGS__); \
    return cudaGetLastError (); \
  } while (0)

static __global__ void
relu_backward_kernel (float *dinp, const float *dout, const float *out,
    size_t n)
{
  GRID_STRIDE (i, n) {
    const float d = dout[i];
    dinp[i] = out[i] > 0.0f ? d : 0.0f;
  }
}

static __global__ void
add_kernel (float *out, const float *a, const float *b, size_t n)
{
  GRID_STRIDE (i, n) out[i] = a[i] + b[i];
}

static __global__ void
mul_kernel (float *out, const float *a, const float *b, size_t n)
{
  GRID_STRIDE (i, n) out[i] = a[i] * b[i];
}

static __global__ void
bias_act_kernel (float *out, const float *bias, const float *residual,
    size_t n, int c, int relu)
{
  GRID_STRIDE (i, n) {
    float v = out[i];
    if (bias)
      v += bias[i % c];
    if (residual)
      v += residual[i];
    out[i] = relu && v < 0.0f ? 0.0f : v;
  }
}

static __global__ void
column_sums_kernel (float *sums, const float *x, int rows, int c)
{
  GRID_STRIDE (j, (size_t) c) {
    float s = sums[j];
    for (int r = 0; r < rows; r++)
      s += x[(size_t) r * c + j];
    sums[j] = s;
  }
}

static __global__ void
adam_kernel (float *params, float *m, float *v, const float *grads, size_t n,
    float p_scale, float g_decay, float b1, float omb1, float b2, float omb2,
    float neg_step_size, float bc2_sqrt, float eps)
{
  GRID_STRIDE (i, n) {
    const float p = params[i] * p_scale;
    const float g = grads[i] + g_decay * p;
    const float mi = m[i] * b1 + omb1 * g;
    const float vi = v[i] * b2 + omb2 * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = p + neg_step_size * mi / (sqrtf (vi) / bc2_sqrt + eps);
  }
}

static __global__ void
sgd_kernel (float *params, float *buf, const float *grads, size_t n,
    float neg_lr, float momentum, float weight_decay, int nesterov,
    int first_step)
{
  GRID_STRIDE (i, n) {
    float g = grads[i];
    if (weight_decay != 0.0f)
      g += weight_decay * params[i];
    if (momentum != 0.0f) {
      const float b = first_step ? g : buf[i] * momentum + g;
      buf[i] = b;
      g = nesterov ? g + momentum * b : b;
    }
    params[i] += neg_lr * g;
  }
}

extern "C" cudaError_t
fer_cuda_relu_backward (cudaStream_t stream, float *dinp, const float *dout,
    const float *out, size_t n)
{
  LAUNCH (relu_backward_kernel, n, stream, dinp, dout, out, n);
}

extern "C" cudaError_t
fer_cuda_add (cudaStream_t stream, float *out, const float *a,
    const float *b, size_t n)
{
  LAUNCH (add_kernel, n, stream, out, a, b, n);
}

extern "C" cudaError_t
fer_cuda_mul (cudaStream_t stream, float *out, const float *a,
    const float *b, size_t n)
{
  LAUNCH (mul_kernel, n, stream, out, a, b, n);
}

extern "C" cudaError_t
fer_cuda_bias_act (cudaStream_t stream, float *out, const float *bias,
    const float *residual, size_t rows, int c, int relu)
{
  const size_t n = rows * (size_t) c;
  LAUNCH (bias_act_kernel, n, stream, out, bias, residual, n, c, relu);
}

extern "C" cudaError_t
fer_cuda_column_sums (cudaStream_t stream, float *sums, const float *x,
    int rows, int c)
{
  LAUNCH (column_sums_kernel, (size_t) c, stream, sums, x, rows, c);
}

extern "C" cudaError_t
fer_cuda_adam (cudaStream_t stream, float *params, float *m, float *v,
    const float *grads, size_t n, float p_scale, float g_decay, float b1,
    float omb1, float b2, float omb2, float neg_step_size, float bc2_sqrt,
    float eps)
{
  LAUNCH (adam_kernel, n, stream, params, m, v, grads, n, p_scale, g_decay,
      b1, omb1, b2, omb2, neg_step_size, bc2_sqrt, eps);
}

extern "C" cudaError_t
fer_cuda_sgd (cudaStream_t stream, float *params, float *buf,
    const float *grads, size_t n, float lr, float momentum,
    float weight_decay, int nesterov, int first_step)
{
  LAUNCH (sgd_kernel, n, stream, params, buf, grads, n, -lr, momentum,
      weight_decay, nesterov, first_step);
}
