/* The CUDA backend's pooling, batch-norm, element-wise, loss and optimizer
 * entries: thin adapters from the backend vtable (backend.h) to our kernels
 * (kernels.h), which queue on the backend's stream. The batch-norm
 * kernels' partial sums and the loss's labels live in the backend's
 * scratch buffer; the optimizers' per-step scalars are computed here, on
 * the host, exactly as cpu/optimizer.c computes them. */
#include "cuda/backend_cuda.h"

#include <math.h>

#define LAUNCH(cb, call) (fer_cuda_enter ((cb), error) && CUDA_OK (call))

gboolean
fer_cuda_op_maxpool2d_forward (fer_backend *be, float *out, const float *inp,
    int n, int h, int w, int c, int k, int stride, int pad, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return LAUNCH (cb, fer_cuda_maxpool_forward (cb->stream, out, inp, n, h, w,
          c, k, stride, pad));
}

gboolean
fer_cuda_op_maxpool2d_backward (fer_backend *be, float *dinp, const float *dout,
    const float *inp, int n, int h, int w, int c, int k, int stride, int pad,
    GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return LAUNCH (cb, fer_cuda_maxpool_backward (cb->stream, dinp, dout, inp,
          n, h, w, c, k, stride, pad));
}

gboolean
fer_cuda_op_avgpool_forward (fer_backend *be, float *out, const float *inp,
    int n, int hw, int c, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return LAUNCH (cb, fer_cuda_avgpool_forward (cb->stream, out, inp, n, hw,
          c));
}

gboolean
fer_cuda_op_avgpool_backward (fer_backend *be, float *dinp,
    const float *dout, int n, int hw, int c, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return LAUNCH (cb, fer_cuda_avgpool_backward (cb->stream, dinp, dout, n,
          hw, c));
}

static void *
bn_scratch (cuda_backend *cb, int rows, int c, GError **error)
{
  if (!fer_cuda_enter (cb, error))
    return NULL;
  return fer_cuda_scratch (cb, fer_cuda_bn_scratch_bytes (rows, c), error);
}

gboolean
fer_cuda_op_batchnorm_forward_train (fer_backend *be, float *out,
    float *save_mean, float *save_rstd, float *running_mean,
    float *running_var, const float *inp, const float *gamma,
    const float *beta, const float *residual, int rows, int c,
    float momentum, float eps, gboolean relu, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  void *scratch = bn_scratch (cb, rows, c, error);
  return scratch && CUDA_OK (fer_cuda_batchnorm_forward_train (cb->stream,
          out, save_mean, save_rstd, running_mean, running_var, inp, gamma,
          beta, residual, rows, c, momentum, eps, relu, scratch));
}

gboolean
fer_cuda_op_batchnorm_forward_eval (fer_backend *be, float *out,
    const float *inp, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var,
    const float *residual, int rows, int c, float eps, gboolean relu,
    GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  void *scratch = bn_scratch (cb, rows, c, error);
  return scratch && CUDA_OK (fer_cuda_batchnorm_forward_eval (cb->stream,
          out, inp, gamma, beta, running_mean, running_var, residual, rows,
          c, eps, relu, scratch));
}

gboolean
fer_cuda_op_batchnorm_backward (fer_backend *be, float *dinp, float *dgamma,
    float *dbeta, const float *dout, const float *inp,
    const float *save_mean, const float *save_rstd, const float *gamma,
    int rows, int c, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  void *scratch = bn_scratch (cb, rows, c, error);
  return scratch && CUDA_OK (fer_cuda_batchnorm_backward (cb->stream, dinp,
          dgamma, dbeta, dout, inp, save_mean, save_rstd, gamma, rows, c,
          scratch));
}

gboolean
fer_cuda_op_relu_backward (fer_backend *be, float *dinp, const float *dout,
    const float *out, size_t n, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return LAUNCH (cb, fer_cuda_relu_backward (cb->stream, dinp, dout, out, n));
}

gboolean
fer_cuda_op_add (fer_backend *be, float *out, const float *a, const float *b,
    size_t n, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return LAUNCH (cb, fer_cuda_add (cb->stream, out, a, b, n));
}

gboolean
fer_cuda_op_dropout_forward (fer_backend *be, float *out, const float *inp,
    const float *mask, size_t n, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return LAUNCH (cb, fer_cuda_mul (cb->stream, out, inp, mask, n));
}

gboolean
fer_cuda_op_dropout_backward (fer_backend *be, float *dinp, const float *dout,
    const float *mask, size_t n, GError **error)
{
  return fer_cuda_op_dropout_forward (be, dinp, dout, mask, n, error);
}

/* The labels go up and the loss comes down through the staging buffer;
 * the scratch holds them on the device: loss (one float, padded to 16
 * bytes), y_a (n), y_b (n). */
gboolean
fer_cuda_op_softmax_xent (fer_backend *be, float *loss, float *dlogits,
    const float *logits, const int *y_a, const int *y_b, float lam,
    const float *class_weights, int n, int k, float smoothing,
    float focal_gamma, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  const size_t labels = (size_t) n * sizeof (int);
  char *scratch;
  float *dev_loss;
  int *dev_a, *dev_b = NULL;

  if (n <= 0) {
    *loss = 0.0f;
    return TRUE;
  }
  if (!fer_cuda_enter (cb, error)
      || !(scratch = fer_cuda_scratch (cb, 16 + 2 * labels, error)))
    return FALSE;
  dev_loss = (float *) scratch;
  dev_a = (int *) (scratch + 16);
  if (!fer_cuda_upload_bytes (cb, dev_a, y_a, labels, error))
    return FALSE;
  if (y_b) {
    dev_b = dev_a + n;
    if (!fer_cuda_upload_bytes (cb, dev_b, y_b, labels, error))
      return FALSE;
  }
  return CUDA_OK (fer_cuda_softmax_xent (cb->stream, dev_loss, dlogits,
          logits, dev_a, dev_b, lam, class_weights, n, k, smoothing,
          focal_gamma))
      && fer_cuda_download_bytes (cb, loss, dev_loss, sizeof (float), error);
}

gboolean
fer_cuda_op_adam_update (fer_backend *be, float *params, float *m, float *v,
    const float *grads, size_t n, float lr, float beta1, float beta2,
    float eps, float weight_decay, int64_t step, gboolean decoupled,
    GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  /* cpu/optimizer.c's scalars, rounded to float the same way */
  const double bc1 = 1.0 - pow (beta1, (double) step);
  const double bc2 = 1.0 - pow (beta2, (double) step);
  const float neg_step_size = (float) (-(double) lr / bc1);
  const float bc2_sqrt = (float) sqrt (bc2);
  const float decay = (float) (1.0 - (double) lr * weight_decay);
  const gboolean l2 = weight_decay != 0.0f && !decoupled;

  return LAUNCH (cb, fer_cuda_adam (cb->stream, params, m, v, grads, n,
          decoupled ? decay : 1.0f, l2 ? weight_decay : 0.0f, beta1,
          (float) (1.0 - beta1), beta2, (float) (1.0 - beta2),
          neg_step_size, bc2_sqrt, eps));
}

gboolean
fer_cuda_op_sgd_update (fer_backend *be, float *params, float *buf,
    const float *grads, size_t n, float lr, float momentum,
    float weight_decay, gboolean nesterov, gboolean first_step,
    GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return LAUNCH (cb, fer_cuda_sgd (cb->stream, params, buf, grads, n, lr,
          momentum, weight_decay, nesterov, first_step));
}

gboolean
fer_cuda_op_zero (fer_backend *be, float *p, size_t n, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return LAUNCH (cb, cudaMemsetAsync (p, 0, n * sizeof (float), cb->stream));
}
