/* The CUDA backend's optimizer entries: the steps' per-step scalars are
 * computed here, on the host, exactly as cpu/optimizer.c computes them,
 * and the element-wise work is our kernels' (optimizer.cu); zeroing the
 * gradients and moments is a memset on the stream. */
#include "cuda/backend_cuda.h"

#include <math.h>

gboolean
fer_cuda_op_adam_update (fer_backend *be, float *params, float *m, float *v,
    const float *grads, size_t n, float lr, float beta1, float beta2, float eps,
    float weight_decay, int64_t step, gboolean decoupled, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  /* cpu/optimizer.c's scalars, rounded to float the same way */
  const double bc1 = 1.0 - pow (beta1, (double) step);
  const double bc2 = 1.0 - pow (beta2, (double) step);
  const float neg_step_size = (float) (-(double) lr / bc1);
  const float bc2_sqrt = (float) sqrt (bc2);
  const float decay = (float) (1.0 - (double) lr * weight_decay);
  const gboolean l2 = weight_decay != 0.0f && !decoupled;

  return CUDA_LAUNCH_OK (cb,
      fer_cuda_adam_update (cb->stream, params, m, v, grads, n,
          decoupled ? decay : 1.0f, l2 ? weight_decay : 0.0f, beta1,
          (float) (1.0 - beta1), beta2, (float) (1.0 - beta2), neg_step_size,
          bc2_sqrt, eps));
}

gboolean
fer_cuda_op_sgd_update (fer_backend *be, float *params, float *buf,
    const float *grads, size_t n, float lr, float momentum, float weight_decay,
    gboolean nesterov, gboolean first_step, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return CUDA_LAUNCH_OK (cb,
      fer_cuda_sgd_update (cb->stream, params, buf, grads, n, lr, momentum,
          weight_decay, nesterov, first_step));
}

gboolean
fer_cuda_op_ema_update (fer_backend *be, float *ema, const float *x, size_t n,
    float decay, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return CUDA_LAUNCH_OK (cb,
      fer_cuda_ema_update (
          cb->stream, ema, x, n, (float) (1.0 - (double) decay)));
}

gboolean
fer_cuda_op_zero (fer_backend *be, float *p, size_t n, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return CUDA_LAUNCH_OK (
      cb, cudaMemsetAsync (p, 0, n * sizeof (float), cb->stream));
}
