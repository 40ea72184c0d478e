/* The CPU backend's training ops: thin adapters from the backend vtable
 * (backend.h, "training ops") to the op files, which know nothing of
 * backends or errors. CPU backend memory is host memory, so every pointer
 * goes straight through. Hooked into backend_cpu.c's table with
 * FER_CPU_TRAIN_OPS (cpu/ops_train.h); the convolution's adapters are in
 * backend_cpu.c, next to the scratch and threads they share with the
 * inference convolution. */
#include "cpu/ops_train.h"

#include <string.h>

gboolean
fer_cpu_train_batchnorm_forward_train (fer_backend *be, float *out,
    float *save_mean, float *save_rstd, float *running_mean,
    float *running_var, const float *inp, const float *gamma,
    const float *beta, const float *residual, int rows, int c,
    float momentum, float eps, gboolean relu, GError **error)
{
  fer_cpu_batchnorm_forward_train (out, save_mean, save_rstd, running_mean,
      running_var, inp, gamma, beta, residual, rows, c, momentum, eps, relu);
  return TRUE;
}

gboolean
fer_cpu_train_batchnorm_forward_eval (fer_backend *be, float *out,
    const float *inp, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var,
    const float *residual, int rows, int c, float eps, gboolean relu,
    GError **error)
{
  fer_cpu_batchnorm_forward_eval (out, inp, gamma, beta, running_mean,
      running_var, residual, rows, c, eps, relu);
  return TRUE;
}

gboolean
fer_cpu_train_batchnorm_backward (fer_backend *be, float *dinp,
    float *dgamma, float *dbeta, const float *dout, const float *inp,
    const float *save_mean, const float *save_rstd, const float *gamma,
    int rows, int c, GError **error)
{
  fer_cpu_batchnorm_backward (dinp, dgamma, dbeta, dout, inp, save_mean,
      save_rstd, gamma, rows, c);
  return TRUE;
}

gboolean
fer_cpu_train_relu_backward (fer_backend *be, float *dinp, const float *dout,
    const float *out, size_t n, GError **error)
{
  fer_cpu_relu_backward (dinp, dout, out, n);
  return TRUE;
}

gboolean
fer_cpu_train_add (fer_backend *be, float *out, const float *a,
    const float *b, size_t n, GError **error)
{
  fer_cpu_add (out, a, b, n);
  return TRUE;
}

gboolean
fer_cpu_train_dropout_forward (fer_backend *be, float *out, const float *inp,
    const float *mask, size_t n, GError **error)
{
  fer_cpu_dropout_forward (out, inp, mask, n);
  return TRUE;
}

gboolean
fer_cpu_train_dropout_backward (fer_backend *be, float *dinp,
    const float *dout, const float *mask, size_t n, GError **error)
{
  fer_cpu_dropout_backward (dinp, dout, mask, n);
  return TRUE;
}

gboolean
fer_cpu_train_maxpool2d_backward (fer_backend *be, float *dinp,
    const float *dout, const float *inp, int n, int h, int w, int c, int k,
    int stride, int pad, GError **error)
{
  fer_cpu_maxpool2d_backward (dinp, dout, inp, n, h, w, c, k, stride, pad);
  return TRUE;
}

gboolean
fer_cpu_train_avgpool_backward (fer_backend *be, float *dinp,
    const float *dout, int n, int hw, int c, GError **error)
{
  fer_cpu_avgpool_backward (dinp, dout, n, hw, c);
  return TRUE;
}

gboolean
fer_cpu_train_linear_backward (fer_backend *be, float *dinp, float *dweight,
    float *dbias, const float *dout, const float *inp, const float *weight,
    int n, int nin, int nout, GError **error)
{
  fer_cpu_linear_backward (dinp, dweight, dbias, dout, inp, weight, n, nin,
      nout);
  return TRUE;
}

gboolean
fer_cpu_train_softmax_xent (fer_backend *be, float *loss, float *dlogits,
    const float *logits, const int *y_a, const int *y_b, float lam,
    const float *class_weights, int n, int k, float smoothing,
    float focal_gamma, GError **error)
{
  fer_cpu_softmax_xent (loss, dlogits, logits, y_a, y_b, lam, class_weights,
      n, k, smoothing, focal_gamma);
  return TRUE;
}

gboolean
fer_cpu_train_adam_update (fer_backend *be, float *params, float *m,
    float *v, const float *grads, size_t n, float lr, float beta1,
    float beta2, float eps, float weight_decay, int64_t step,
    gboolean decoupled, GError **error)
{
  fer_cpu_adam_update (params, m, v, grads, n, lr, beta1, beta2, eps,
      weight_decay, step, decoupled);
  return TRUE;
}

gboolean
fer_cpu_train_sgd_update (fer_backend *be, float *params, float *buf,
    const float *grads, size_t n, float lr, float momentum,
    float weight_decay, gboolean nesterov, gboolean first_step,
    GError **error)
{
  fer_cpu_sgd_update (params, buf, grads, n, lr, momentum, weight_decay,
      nesterov, first_step);
  return TRUE;
}

gboolean
fer_cpu_train_zero (fer_backend *be, float *p, size_t n, GError **error)
{
  memset (p, 0, n * sizeof (float));
  return TRUE;
}
