/* Training loss on the CPU: softmax cross-entropy with class weights, label
 * smoothing and an optional focal factor, and its gradient, in one pass.
 *
 * With p = softmax(z), log p computed as z - logsumexp(z) (in double), and
 * w the class weights (all 1 when absent), sample i with target t has the
 * target distribution
 *   q_c = (1 - eps) * w_t * [c == t] + (eps / K) * w_c,  Q = sum_c q_c,
 *   CE_i = -sum_c q_c log p_c,   dCE_i/dz_j = Q p_j - q_j,
 * which is PyTorch's cross_entropy(weight, label_smoothing) per sample; the
 * batch loss divides sum_i CE_i by W = sum_i w_{t_i} ("mean" reduction with
 * weights). The focal variant multiplies CE_i by f = (1 - p_t)^gamma, with
 *   df/dz_j = -gamma (1 - p_t)^(gamma - 1) p_t ([j == t] - p_j),
 * 1 - p_t taken as sum_{j != t} p_j so that it keeps its precision when the
 * model is confident. Mixup: lam * L(y_a) + (1 - lam) * L(y_b), each term
 * with its own W. Distillation: with target distributions q_i (soft, one
 * row per sample, already mixed as lam q_a + (1 - lam) q_b under mixup) and
 * weight a, the loss is (1 - a) L + a (1/n) sum_i -sum_c q_ic log p_ic
 * (Hinton et al. 2015, arXiv 1503.02531, at temperature 1), the soft term
 * unweighted by class. dlogits is overwritten. The backend table's entry is
 * at the end. */
#include "cpu/backend_cpu.h"
#include "xent-row.h"

#include <math.h>
#include <string.h>

/* Adds scale * L(y) to *loss and scale * dL/dz to dlogits (when not NULL). */
static void
xent_term (double *loss, float *dlogits, const float *logits, const int *y,
    double scale, const float *w, int n, int k, double smoothing, double gamma)
{
  double wsum = 0.0;
  for (int i = 0; i < n; i++)
    wsum += w ? w[y[i]] : 1.0;
  if (wsum <= 0.0)
    return;
  const double norm = scale / wsum;

  for (int i = 0; i < n; i++)
    *loss += fer_xent_row (dlogits ? dlogits + (size_t) i * k : NULL,
        logits + (size_t) i * k, y[i], norm, w, k, smoothing, gamma);
}

void
fer_cpu_softmax_xent (float *loss, float *dlogits, const float *logits,
    const int *y_a, const int *y_b, float lam, const float *class_weights,
    int n, int k, float smoothing, float focal_gamma, const float *soft,
    float soft_weight)
{
  double total = 0.0;
  const double hard = soft ? 1.0 - (double) soft_weight : 1.0;
  if (dlogits)
    memset (dlogits, 0, sizeof (float) * n * k);
  if (hard > 0.0) {
    xent_term (&total, dlogits, logits, y_a, hard * (y_b ? lam : 1.0),
        class_weights, n, k, smoothing, focal_gamma);
    if (y_b)
      xent_term (&total, dlogits, logits, y_b, hard * (1.0 - lam),
          class_weights, n, k, smoothing, focal_gamma);
  }
  if (soft && soft_weight > 0.0f && n > 0)
    for (int i = 0; i < n; i++)
      total += fer_soft_xent_row (dlogits ? dlogits + (size_t) i * k : NULL,
          logits + (size_t) i * k, soft + (size_t) i * k,
          (double) soft_weight / n, k);
  *loss = (float) total;
}

gboolean
fer_cpu_op_softmax_xent (fer_backend *be, float *loss, float *dlogits,
    const float *logits, const int *y_a, const int *y_b, float lam,
    const float *class_weights, int n, int k, float smoothing,
    float focal_gamma, const float *soft, float soft_weight, GError **error)
{
  fer_cpu_softmax_xent (loss, dlogits, logits, y_a, y_b, lam, class_weights, n,
      k, smoothing, focal_gamma, soft, soft_weight);
  return TRUE;
}
