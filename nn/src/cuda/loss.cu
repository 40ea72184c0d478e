/* The training loss on the device: weighted, label-smoothed (focal)
 * softmax cross-entropy with mixup, cpu/loss.c's formulas and double
 * arithmetic, so that the loss curve matches the CPU backend's. A batch
 * has a few hundred rows of a few classes: one block, a thread per row
 * (grid-stride within the block), and block reductions for the weight sums
 * and the loss. */
#include <math.h>

#include "kernels.h"
#include "plan.h"

/* Sum over the block of v; every thread gets the result. */
static __device__ double
block_sum (double v, double *shared)
{
  shared[threadIdx.x] = v;
  __syncthreads ();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if ((int) threadIdx.x < stride)
      shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads ();
  }
  const double r = shared[0];
  __syncthreads ();
  return r;
}

/* One row's term: scale * L_i to the return value, scale * dL_i/dz added
 * to d (when not NULL). norm = scale / W. */
static __device__ double
xent_row (float *d, const float *z, int t, double norm, const float *w,
    int k, double smoothing, double gamma)
{
  double mx = z[0];
  for (int j = 1; j < k; j++)
    mx = fmax (mx, (double) z[j]);
  double se = 0.0;
  for (int j = 0; j < k; j++)
    se += exp (z[j] - mx);
  const double lse = mx + log (se);

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

static __global__ void
xent_kernel (float *loss, float *dlogits, const float *logits,
    const int *y_a, const int *y_b, float lam, const float *w, int n, int k,
    float smoothing, float focal_gamma)
{
  extern __shared__ double shared[];
  const int *labels[2] = { y_a, y_b };
  const double scales[2] = { y_b ? (double) lam : 1.0, 1.0 - lam };
  double my_loss = 0.0;

  if (dlogits)
    for (int i = threadIdx.x; i < n * k; i += blockDim.x)
      dlogits[i] = 0.0f;
  for (int term = 0; term < (y_b ? 2 : 1); term++) {
    const int *y = labels[term];
    double wpart = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      wpart += w ? w[y[i]] : 1.0;
    const double wsum = block_sum (wpart, shared);
    if (wsum <= 0.0)
      continue;
    const double norm = scales[term] / wsum;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      my_loss += xent_row (dlogits ? dlogits + (size_t) i * k : NULL,
          logits + (size_t) i * k, y[i], norm, w, k, smoothing, focal_gamma);
  }
  const double total = block_sum (my_loss, shared);
  if (threadIdx.x == 0)
    *loss = (float) total;
}

extern "C" cudaError_t
fer_cuda_softmax_xent (cudaStream_t stream, float *loss, float *dlogits,
    const float *logits, const int *y_a, const int *y_b, float lam,
    const float *class_weights, int n, int k, float smoothing,
    float focal_gamma)
{
  xent_kernel<<<1, FER_CUDA_THREADS, FER_CUDA_THREADS * sizeof (double),
      stream>>> (loss, dlogits, logits, y_a, y_b, lam, class_weights, n, k,
      smoothing, focal_gamma);
  return cudaGetLastError ();
}
