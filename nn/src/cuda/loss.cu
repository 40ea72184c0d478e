/* The training loss on the device: weighted, label-smoothed (focal)
 * softmax cross-entropy with mixup, the CPU backend's formulas (xent-row.h) in
 * double arithmetic, so that the loss curve matches the CPU backend's. A batch
 * has a few hundred rows of a few classes: one block, a thread per row
 * (grid-stride within the block), and block reductions for the weight sums
 * and the loss. */
#include <math.h>

#include "kernels.h"
#include "plan.h"
#include "xent-row.h"

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

static __global__ void
xent_kernel (float *loss, float *dlogits, const float *logits, const int *y_a,
    const int *y_b, float lam, const float *w, int n, int k, float smoothing,
    float focal_gamma, const float *soft, float soft_weight)
{
  extern __shared__ double shared[];
  const int *labels[2] = { y_a, y_b };
  const double hard = soft ? 1.0 - (double) soft_weight : 1.0;
  const double scales[2] = { hard * (y_b ? (double) lam : 1.0),
    hard * (1.0 - lam) };
  double my_loss = 0.0;

  if (dlogits)
    for (int i = threadIdx.x; i < n * k; i += blockDim.x)
      dlogits[i] = 0.0f;
  /* the rows below are another thread's than the elements zeroed above */
  __syncthreads ();
  for (int term = 0; hard > 0.0 && term < (y_b ? 2 : 1); term++) {
    const int *y = labels[term];
    double wpart = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      wpart += w ? w[y[i]] : 1.0;
    const double wsum = block_sum (wpart, shared);
    if (wsum <= 0.0)
      continue;
    const double norm = scales[term] / wsum;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      my_loss += fer_xent_row (dlogits ? dlogits + (size_t) i * k : NULL,
          logits + (size_t) i * k, y[i], norm, w, k, smoothing, focal_gamma);
  }
  if (soft && soft_weight > 0.0f)
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      my_loss += fer_soft_xent_row (dlogits ? dlogits + (size_t) i * k : NULL,
          logits + (size_t) i * k, soft + (size_t) i * k,
          (double) soft_weight / n, k);
  const double total = block_sum (my_loss, shared);
  if (threadIdx.x == 0)
    *loss = (float) total;
}

extern "C" cudaError_t
fer_cuda_softmax_xent (cudaStream_t stream, float *loss, float *dlogits,
    const float *logits, const int *y_a, const int *y_b, float lam,
    const float *class_weights, int n, int k, float smoothing,
    float focal_gamma, const float *soft, float soft_weight)
{
  xent_kernel<<<1, FER_CUDA_THREADS, FER_CUDA_THREADS * sizeof (double),
      stream>>> (loss, dlogits, logits, y_a, y_b, lam, class_weights, n, k,
      smoothing, focal_gamma, soft, soft_weight);
  return cudaGetLastError ();
}
