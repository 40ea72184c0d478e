/* Optimizer updates on the CPU: one loop over the trainer's single
 * parameter buffer (gradients and moments mirror its layout), with
 * torch.optim's (1.13, single-tensor path) arithmetic in the same order:
 * the per-step scalars (bias corrections, step size) in double, the
 * element-wise work in float with those scalars rounded to float, as
 * PyTorch's CPU kernels receive them.
 *
 * Adam:  g = grad (+ wd * p);  m = beta1 m + (1 - beta1) g;
 *        v = beta2 v + (1 - beta2) g^2;
 *        p += -lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * AdamW: p *= 1 - lr * wd first, and g = grad.
 * SGD:   g = grad (+ wd * p); with momentum, buf = g at t = 1, else
 *        buf = momentum buf + g; d = nesterov ? g + momentum buf : buf;
 *        p += -lr d.
 * EMA:   ema += (1 - decay) (x - ema), with 1 - decay rounded to float.
 * The backend table's entries are at the end, with the zeroing of the
 * gradients and moments. */
#include "cpu/backend_cpu.h"

#include <math.h>
#include <string.h>

void
fer_cpu_adam_update (float *restrict params, float *restrict m,
    float *restrict v, const float *restrict grads, size_t n, float lr,
    float beta1, float beta2, float eps, float weight_decay, int64_t step,
    gboolean decoupled)
{
  const double bc1 = 1.0 - pow (beta1, (double) step);
  const double bc2 = 1.0 - pow (beta2, (double) step);
  const float neg_step_size = (float) (-(double) lr / bc1);
  const float bc2_sqrt = (float) sqrt (bc2);
  const float b1 = beta1, one_minus_b1 = (float) (1.0 - beta1);
  const float b2 = beta2, one_minus_b2 = (float) (1.0 - beta2);
  const float decay = (float) (1.0 - (double) lr * weight_decay);
  const gboolean l2 = weight_decay != 0.0f && !decoupled;

  /* The decay factors are 1 and 0 when unused, which changes no finite value:
   * one branch-free loop (FER_FOR_VEC). */
  const float p_scale = decoupled ? decay : 1.0f;
  const float g_decay = l2 ? weight_decay : 0.0f;
  FER_FOR_VEC (
      i, n, const float p = params[i] * p_scale;
      const float g = grads[i] + g_decay * p;
      const float mi = m[i] * b1 + one_minus_b1 * g;
      const float vi = v[i] * b2 + one_minus_b2 * g * g; m[i] = mi; v[i] = vi;
      params[i] = p + neg_step_size * mi / (sqrtf (vi) / bc2_sqrt + eps));
}

void
fer_cpu_sgd_update (float *params, float *buf, const float *grads, size_t n,
    float lr, float momentum, float weight_decay, gboolean nesterov,
    gboolean first_step)
{
  const float neg_lr = -lr;
  for (size_t i = 0; i < n; i++) {
    float g = grads[i];
    if (weight_decay != 0.0f)
      g += weight_decay * params[i];
    if (momentum != 0.0f) {
      float b = first_step ? g : buf[i] * momentum + g;
      buf[i] = b;
      g = nesterov ? g + momentum * b : b;
    }
    params[i] += neg_lr * g;
  }
}

void
fer_cpu_ema_update (
    float *restrict ema, const float *restrict x, size_t n, float decay)
{
  const float w = (float) (1.0 - (double) decay);
  FER_FOR_VEC (i, n, ema[i] = ema[i] + w * (x[i] - ema[i]));
}

gboolean
fer_cpu_op_adam_update (fer_backend *be, float *params, float *m, float *v,
    const float *grads, size_t n, float lr, float beta1, float beta2, float eps,
    float weight_decay, int64_t step, gboolean decoupled, GError **error)
{
  fer_cpu_adam_update (params, m, v, grads, n, lr, beta1, beta2, eps,
      weight_decay, step, decoupled);
  return TRUE;
}

gboolean
fer_cpu_op_sgd_update (fer_backend *be, float *params, float *buf,
    const float *grads, size_t n, float lr, float momentum, float weight_decay,
    gboolean nesterov, gboolean first_step, GError **error)
{
  fer_cpu_sgd_update (
      params, buf, grads, n, lr, momentum, weight_decay, nesterov, first_step);
  return TRUE;
}

gboolean
fer_cpu_op_ema_update (fer_backend *be, float *ema, const float *x, size_t n,
    float decay, GError **error)
{
  fer_cpu_ema_update (ema, x, n, decay);
  return TRUE;
}

gboolean
fer_cpu_op_zero (fer_backend *be, float *p, size_t n, GError **error)
{
  memset (p, 0, n * sizeof (float));
  return TRUE;
}
