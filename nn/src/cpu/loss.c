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
 * with its own W. dlogits is overwritten. */
#include "cpu/ops_train.h"

#include <math.h>
#include <string.h>

/* Adds scale * L(y) to *loss and scale * dL/dz to dlogits (when not NULL). */
static void
xent_term (double *loss, float *dlogits, const float *logits, const int *y,
    double scale, const float *w, int n, int k, double smoothing,
    double gamma)
{
  double wsum = 0.0;
  for (int i = 0; i < n; i++)
    wsum += w ? w[y[i]] : 1.0;
  if (wsum <= 0.0)
    return;
  const double norm = scale / wsum;

  for (int i = 0; i < n; i++) {
    const float *z = logits + (size_t) i * k;
    const int t = y[i];
    double mx = z[0];
    for (int j = 1; j < k; j++)
      mx = fmax (mx, z[j]);
    double se = 0.0;
    for (int j = 0; j < k; j++)
      se += exp (z[j] - mx);
    const double lse = mx + log (se);

    /* CE_i, Q and 1 - p_t */
    const double wt = w ? w[t] : 1.0;
    double ce = -(1.0 - smoothing) * wt * (z[t] - lse), q_total =
        (1.0 - smoothing) * wt, rest = 0.0;
    for (int j = 0; j < k; j++) {
      const double wj = w ? w[j] : 1.0;
      ce -= smoothing / k * wj * (z[j] - lse);
      q_total += smoothing / k * wj;
      if (j != t)
        rest += exp (z[j] - lse);
    }
    const double pt = exp (z[t] - lse);
    double f = 1.0, df_common = 0.0;
    if (gamma > 0.0) {
      f = pow (rest, gamma);
      /* df/dz_j = df_common * ([j == t] - p_j); 0 when p_t is exactly 1 */
      df_common = rest > 0.0 ? -gamma * pow (rest, gamma - 1.0) * pt : 0.0;
    }
    *loss += norm * f * ce;
    if (!dlogits)
      continue;
    float *d = dlogits + (size_t) i * k;
    for (int j = 0; j < k; j++) {
      const double pj = exp (z[j] - lse);
      const double qj = smoothing / k * (w ? w[j] : 1.0)
          + (j == t ? (1.0 - smoothing) * wt : 0.0);
      double g = f * (q_total * pj - qj);
      if (gamma > 0.0)
        g += ce * df_common * ((j == t ? 1.0 : 0.0) - pj);
      d[j] += (float) (norm * g);
    }
  }
}

void
fer_cpu_softmax_xent (float *loss, float *dlogits, const float *logits,
    const int *y_a, const int *y_b, float lam, const float *class_weights,
    int n, int k, float smoothing, float focal_gamma)
{
  double total = 0.0;
  if (dlogits)
    memset (dlogits, 0, sizeof (float) * n * k);
  xent_term (&total, dlogits, logits, y_a, y_b ? lam : 1.0, class_weights,
      n, k, smoothing, focal_gamma);
  if (y_b)
    xent_term (&total, dlogits, logits, y_b, 1.0 - lam, class_weights, n, k,
        smoothing, focal_gamma);
  *loss = (float) total;
}
