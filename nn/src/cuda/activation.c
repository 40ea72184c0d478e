/* The CUDA backend's activation entries (ReLU backward, the residual add,
 * dropout): our kernels (activation.cu), queued on the backend's stream. */
#include "cuda/backend_cuda.h"

gboolean
fer_cuda_op_relu_backward (fer_backend *be, float *dinp, const float *dout,
    const float *out, size_t n, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return CUDA_LAUNCH_OK (
      cb, fer_cuda_relu_backward (cb->stream, dinp, dout, out, n));
}

gboolean
fer_cuda_op_add (fer_backend *be, float *out, const float *a, const float *b,
    size_t n, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return CUDA_LAUNCH_OK (cb, fer_cuda_add (cb->stream, out, a, b, n));
}

gboolean
fer_cuda_op_dropout_forward (fer_backend *be, float *out, const float *inp,
    const float *mask, size_t n, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return CUDA_LAUNCH_OK (
      cb, fer_cuda_dropout_forward (cb->stream, out, inp, mask, n));
}

/* The same multiply by the mask. */
gboolean
fer_cuda_op_dropout_backward (fer_backend *be, float *dinp, const float *dout,
    const float *mask, size_t n, GError **error)
{
  return fer_cuda_op_dropout_forward (be, dinp, dout, mask, n, error);
}
