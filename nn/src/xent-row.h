/* One sample's term of the training loss, shared by the CPU backend
 * (cpu/loss.c) and the CUDA kernel (cuda/loss.cu) so that both compute the
 * same formulas in the same order (the derivation is in cpu/loss.c's
 * header): softmax cross-entropy of logits z (k classes) against target t
 * with class weights w (NULL: all 1), label smoothing and a focal exponent
 * gamma (0: plain cross-entropy), in double. Returns norm * L_i and adds
 * norm * dL_i/dz to d (when not NULL). Plain C for gcc, and CUDA for nvcc. */
#ifndef FER_XENT_ROW_H
#define FER_XENT_ROW_H

#include <math.h>

#ifdef __CUDACC__
#define FER_XENT_FN static __host__ __device__ inline
#else
#define FER_XENT_FN static inline
#endif

/* log sum_j exp z_j, shifted by the largest z_j. */
FER_XENT_FN double
fer_xent_logsumexp (const float *z, int k)
{
  double mx = z[0];
  for (int j = 1; j < k; j++)
    mx = fmax (mx, (double) z[j]);
  double se = 0.0;
  for (int j = 0; j < k; j++)
    se += exp (z[j] - mx);
  return mx + log (se);
}

FER_XENT_FN double
fer_xent_row (float *d, const float *z, int t, double norm, const float *w,
    int k, double smoothing, double gamma)
{
  const double lse = fer_xent_logsumexp (z, k);

  /* CE_i, Q and 1 - p_t */
  const double wt = w ? w[t] : 1.0;
  double ce = -(1.0 - smoothing) * wt * (z[t] - lse);
  double q_total = (1.0 - smoothing) * wt, rest = 0.0;
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
  if (d) {
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
  return norm * f * ce;
}

/* The distillation term of one sample: cross-entropy of softmax(z) against
 * a target distribution q (k probabilities, a teacher's; they sum to Q,
 * 1 up to rounding), -sum_c q_c log p_c, whose gradient is Q p_j - q_j.
 * Returns norm times it and adds norm times the gradient to d (when not
 * NULL). */
FER_XENT_FN double
fer_soft_xent_row (float *d, const float *z, const float *q, double norm, int k)
{
  const double lse = fer_xent_logsumexp (z, k);
  double ce = 0.0, q_total = 0.0;
  for (int j = 0; j < k; j++) {
    ce -= q[j] * (z[j] - lse);
    q_total += q[j];
  }
  if (d)
    for (int j = 0; j < k; j++)
      d[j] += (float) (norm * (q_total * exp (z[j] - lse) - q[j]));
  return norm * ce;
}

#endif
