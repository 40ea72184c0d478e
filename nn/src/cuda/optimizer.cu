/* Optimizer CUDA kernels: the Adam/AdamW and SGD steps and the weights'
 * moving average over the trainer's
 * single parameter buffer, grid-stride loops with the CPU ops' arithmetic
 * (cpu/optimizer.c) in the same order, without FMA contraction
 * (kernels.h); the per-step scalars come from the host (optimizer.c). */
#include "kernels.h"

static __global__ void
adam_kernel (float *params, float *m, float *v, const float *grads, size_t n,
    float p_scale, float g_decay, float b1, float omb1, float b2, float omb2,
    float neg_step_size, float bc2_sqrt, float eps)
{
  FER_CUDA_GRID_STRIDE (i, n)
  {
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
  FER_CUDA_GRID_STRIDE (i, n)
  {
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

static __global__ void
ema_kernel (float *ema, const float *x, size_t n, float w)
{
  FER_CUDA_GRID_STRIDE (i, n)
  {
    const float e = ema[i];
    ema[i] = e + w * (x[i] - e);
  }
}

extern "C" cudaError_t
fer_cuda_adam_update (cudaStream_t stream, float *params, float *m, float *v,
    const float *grads, size_t n, float p_scale, float g_decay, float b1,
    float omb1, float b2, float omb2, float neg_step_size, float bc2_sqrt,
    float eps)
{
  FER_CUDA_LAUNCH (adam_kernel, n, stream, params, m, v, grads, n, p_scale,
      g_decay, b1, omb1, b2, omb2, neg_step_size, bc2_sqrt, eps);
}

extern "C" cudaError_t
fer_cuda_sgd_update (cudaStream_t stream, float *params, float *buf,
    const float *grads, size_t n, float lr, float momentum, float weight_decay,
    int nesterov, int first_step)
{
  FER_CUDA_LAUNCH (sgd_kernel, n, stream, params, buf, grads, n, -lr, momentum,
      weight_decay, nesterov, first_step);
}

extern "C" cudaError_t
fer_cuda_ema_update (
    cudaStream_t stream, float *ema, const float *x, size_t n, float w)
{
  FER_CUDA_LAUNCH (ema_kernel, n, stream, ema, x, n, w);
}
