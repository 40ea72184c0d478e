/* The CUDA backend's softmax entry: each face's views averaged on the
 * device (softmax.cu), so that one download brings the probabilities of a
 * whole chunk of faces rather than every view's logits. */
#include "cuda/backend_cuda.h"

gboolean
fer_cuda_op_softmax_average (fer_backend *be, float *probs, const float *logits,
    int n_faces, int views, int k, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  const size_t bytes = (size_t) n_faces * k * sizeof (float);
  float *dev_probs;

  if (n_faces <= 0)
    return TRUE;
  if (!fer_cuda_enter (cb, error)
      || !(dev_probs = fer_cuda_scratch (cb, bytes, error)))
    return FALSE;
  return CUDA_OK (fer_cuda_softmax_average (
             cb->stream, dev_probs, logits, n_faces, views, k))
      && fer_cuda_download_bytes (cb, probs, dev_probs, bytes, error);
}
