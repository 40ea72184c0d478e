/* The CUDA backend's loss entry: the kernel (loss.cu) on the device's
 * logits, with the labels going up and the loss coming down through the
 * staging buffer. */
#include "cuda/backend_cuda.h"

/* The scratch holds the labels, the targets and the loss on the device:
 * loss (one float, padded to 16 bytes), y_a (n), y_b (n), soft (n x k). */
gboolean
fer_cuda_op_softmax_xent (fer_backend *be, float *loss, float *dlogits,
    const float *logits, const int *y_a, const int *y_b, float lam,
    const float *class_weights, int n, int k, float smoothing,
    float focal_gamma, const float *soft, float soft_weight, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  const size_t labels = (size_t) n * sizeof (int);
  const size_t targets = soft ? (size_t) n * k * sizeof (float) : 0;
  char *scratch;
  float *dev_loss, *dev_soft = NULL;
  int *dev_a, *dev_b = NULL;

  if (n <= 0) {
    *loss = 0.0f;
    return TRUE;
  }
  if (!fer_cuda_enter (cb, error)
      || !(scratch = fer_cuda_scratch (cb, 16 + 2 * labels + targets, error)))
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
  if (soft) {
    dev_soft = (float *) (scratch + 16 + 2 * labels);
    if (!fer_cuda_upload_bytes (cb, dev_soft, soft, targets, error))
      return FALSE;
  }
  return CUDA_OK (fer_cuda_softmax_xent (cb->stream, dev_loss, dlogits, logits,
             dev_a, dev_b, lam, class_weights, n, k, smoothing, focal_gamma,
             dev_soft, soft_weight))
      && fer_cuda_download_bytes (cb, loss, dev_loss, sizeof (float), error);
}
