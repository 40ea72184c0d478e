/* The training criterion on logits the caller already has (fer/train.h):
 * the same per-sample term as the backends' loss (xent-row.h), summed and
 * averaged as they average a batch, without gradients. */
#include <fer/train.h>
#include "xent-row.h"

#include <math.h>

gboolean
fer_train_loss (const fer_train_config *cfg, const float *logits, const int *y,
    int n, double *loss, GError **error)
{
  const int k = cfg->arch.n_classes;
  const float *w = cfg->class_weights;
  if (k < 1 || n < 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "fer_train_loss: %d samples of %d classes; expected n >= 0 and at "
        "least one class",
        n, k);
    return FALSE;
  }
  for (int i = 0; i < n; i++)
    if (y[i] < 0 || y[i] >= k) {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "fer_train_loss: sample %d has label %d; expected 0..%d", i, y[i],
          k - 1);
      return FALSE;
    }

  double sum = 0.0, weight_sum = 0.0;
  for (int i = 0; i < n; i++) {
    sum += fer_xent_row (NULL, logits + (size_t) i * k, y[i], 1.0, w, k,
        cfg->label_smoothing, cfg->focal_gamma);
    weight_sum += w ? w[y[i]] : 1.0;
  }
  *loss = weight_sum > 0.0 ? sum / weight_sum : NAN;
  return TRUE;
}
