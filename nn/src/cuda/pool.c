/* The CUDA backend's pooling entries: our kernels (pool.cu, which says why
 * not cuDNN's), queued on the backend's stream. */
#include "cuda/backend_cuda.h"

gboolean
fer_cuda_op_maxpool2d_forward (fer_backend *be, float *out, const float *inp,
    int n, int h, int w, int c, int k, int stride, int pad, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return CUDA_LAUNCH_OK (cb,
      fer_cuda_maxpool2d_forward (
          cb->stream, out, inp, n, h, w, c, k, stride, pad));
}

gboolean
fer_cuda_op_maxpool2d_backward (fer_backend *be, float *dinp, const float *dout,
    const float *inp, int n, int h, int w, int c, int k, int stride, int pad,
    GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return CUDA_LAUNCH_OK (cb,
      fer_cuda_maxpool2d_backward (
          cb->stream, dinp, dout, inp, n, h, w, c, k, stride, pad));
}

gboolean
fer_cuda_op_avgpool_forward (fer_backend *be, float *out, const float *inp,
    int n, int hw, int c, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return CUDA_LAUNCH_OK (
      cb, fer_cuda_avgpool_forward (cb->stream, out, inp, n, hw, c));
}

gboolean
fer_cuda_op_avgpool_backward (fer_backend *be, float *dinp, const float *dout,
    int n, int hw, int c, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  return CUDA_LAUNCH_OK (
      cb, fer_cuda_avgpool_backward (cb->stream, dinp, dout, n, hw, c));
}
