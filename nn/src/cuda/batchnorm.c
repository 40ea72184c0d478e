/* The CUDA backend's batch-norm entries: our kernels (batchnorm.cu, which
 * says why not cuDNN's), whose partial sums and coefficients live in the
 * backend's scratch buffer. */
#include "cuda/backend_cuda.h"

static void *
bn_scratch (cuda_backend *cb, int rows, int c, GError **error)
{
  if (!fer_cuda_enter (cb, error))
    return NULL;
  return fer_cuda_scratch (cb, fer_cuda_bn_scratch_bytes (rows, c), error);
}

gboolean
fer_cuda_op_batchnorm_forward_train (fer_backend *be, float *out,
    float *save_mean, float *save_rstd, float *running_mean, float *running_var,
    const float *inp, const float *gamma, const float *beta,
    const float *residual, int rows, int c, float momentum, float eps,
    gboolean relu, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  void *scratch = bn_scratch (cb, rows, c, error);
  return scratch
      && CUDA_OK (fer_cuda_batchnorm_forward_train (cb->stream, out, save_mean,
          save_rstd, running_mean, running_var, inp, gamma, beta, residual,
          rows, c, momentum, eps, relu, scratch));
}

gboolean
fer_cuda_op_batchnorm_forward_eval (fer_backend *be, float *out,
    const float *inp, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var, const float *residual,
    int rows, int c, float eps, gboolean relu, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  void *scratch = bn_scratch (cb, rows, c, error);
  return scratch
      && CUDA_OK (fer_cuda_batchnorm_forward_eval (cb->stream, out, inp, gamma,
          beta, running_mean, running_var, residual, rows, c, eps, relu,
          scratch));
}

gboolean
fer_cuda_op_batchnorm_backward (fer_backend *be, float *dinp, float *dgamma,
    float *dbeta, const float *dout, const float *inp, const float *save_mean,
    const float *save_rstd, const float *gamma, int rows, int c, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  void *scratch = bn_scratch (cb, rows, c, error);
  return scratch
      && CUDA_OK (fer_cuda_batchnorm_backward (cb->stream, dinp, dgamma, dbeta,
          dout, inp, save_mean, save_rstd, gamma, rows, c, scratch));
}
