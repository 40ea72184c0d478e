/* Batch normalisation CUDA kernels over NHWC activations, i.e. per column
 * of (rows, c): training forward (batch statistics, running statistics),
 * evaluation forward, backward. Our own kernels rather than cuDNN's batch
 * norm: ours fuse the residual add and the ReLU that follow it in ResNet
 * (cuDNN fuses those only for half-precision NHWC), and they follow
 * cpu/batchnorm.c's numerics (two-pass statistics in double, the same
 * float epilogue), so the two backends agree to rounding.
 *
 * Reductions: reduce_kernel's grid is (column tiles of 32) x (row splits,
 * fer_cuda_bn_splits); a block of 32 x 8 threads walks its split's rows,
 * 32 adjacent channels per row (coalesced), then adds its 8 row-partials
 * in shared memory and writes one partial per (split, channel). A
 * per-channel kernel adds the splits in order: deterministic, no atomics.
 *
 * Scratch (fer_cuda_bn_scratch_bytes): part_a, part_b (splits x c double),
 * mean (c double), then four float coefficients per channel. */
#include <math.h>

#include "kernels.h"
#include "plan.h"

#define TILE_C 32
#define TILE_R 8

typedef enum
{
  SUM_X,        /* a += x */
  SUM_SQ,       /* a += (x - mean)^2, mean in double (forward) */
  SUM_BACKWARD, /* a += dy, b += dy * (x - mean), mean in float */
} reduce_mode;

typedef struct
{
  double *part_a, *part_b, *mean;
  float *k0, *k1, *k2, *k3;
} bn_scratch;

static bn_scratch
scratch_views (void *scratch, int rows, int c)
{
  bn_scratch s;
  const size_t per = (size_t) fer_cuda_bn_splits (rows) * c;
  s.part_a = (double *) scratch;
  s.part_b = s.part_a + per;
  s.mean = s.part_b + per;
  s.k0 = (float *) (s.mean + c);
  s.k1 = s.k0 + c;
  s.k2 = s.k1 + c;
  s.k3 = s.k2 + c;
  return s;
}

static __global__ void
reduce_kernel (double *part_a, double *part_b, const float *x, const float *dy,
    const double *mean_d, const float *mean_f, int rows, int c, int mode)
{
  __shared__ double sa[TILE_R][TILE_C], sb[TILE_R][TILE_C];
  const int ch = blockIdx.x * TILE_C + threadIdx.x;
  const int split = blockIdx.y, splits = gridDim.y;
  double a = 0.0, b = 0.0;

  if (ch < c) {
    for (int r = split * TILE_R + threadIdx.y; r < rows; r += splits * TILE_R) {
      const float v = x[(size_t) r * c + ch];
      if (mode == SUM_X) {
        a += v;
      } else if (mode == SUM_SQ) {
        const double d = v - mean_d[ch];
        a += d * d;
      } else {
        const float g = dy[(size_t) r * c + ch];
        a += g;
        b += (double) g * (v - mean_f[ch]);
      }
    }
  }
  sa[threadIdx.y][threadIdx.x] = a;
  sb[threadIdx.y][threadIdx.x] = b;
  __syncthreads ();
  if (threadIdx.y == 0 && ch < c) {
    for (int i = 1; i < TILE_R; i++) {
      a += sa[i][threadIdx.x];
      b += sb[i][threadIdx.x];
    }
    part_a[(size_t) split * c + ch] = a;
    part_b[(size_t) split * c + ch] = b;
  }
}

static cudaError_t
reduce (cudaStream_t stream, const bn_scratch *s, const float *x,
    const float *dy, const float *mean_f, int rows, int c, reduce_mode mode)
{
  dim3 grid ((c + TILE_C - 1) / TILE_C, fer_cuda_bn_splits (rows));
  dim3 block (TILE_C, TILE_R);
  reduce_kernel<<<grid, block, 0, stream>>> (
      s->part_a, s->part_b, x, dy, s->mean, mean_f, rows, c, mode);
  return cudaGetLastError ();
}

/* Sum of a channel's partials, splits in order. */
static __device__ double
total (const double *part, int splits, int c, int ch)
{
  double t = 0.0;
  for (int i = 0; i < splits; i++)
    t += part[(size_t) i * c + ch];
  return t;
}

static __global__ void
mean_kernel (double *mean, const double *part_a, int splits, int rows, int c)
{
  const int ch = blockIdx.x * blockDim.x + threadIdx.x;
  if (ch < c)
    mean[ch] = total (part_a, splits, c, ch) / rows;
}

/* alpha (k0), shift (k1) and the saved and running statistics. */
static __global__ void
train_stats_kernel (float *alpha, float *shift, float *save_mean,
    float *save_rstd, float *running_mean, float *running_var,
    const double *mean_d, const double *part_a, const float *gamma,
    const float *beta, int splits, int rows, int c, float momentum, float eps)
{
  const int ch = blockIdx.x * blockDim.x + threadIdx.x;
  if (ch >= c)
    return;
  const double sq = total (part_a, splits, c, ch);
  const double mean = mean_d[ch], var = sq / rows;
  const double rstd = 1.0 / sqrt (var + eps);
  save_mean[ch] = (float) mean;
  save_rstd[ch] = (float) rstd;
  if (running_mean)
    running_mean[ch] =
        (float) (momentum * mean + (1.0 - momentum) * running_mean[ch]);
  if (running_var)
    running_var[ch] = (float) (momentum * (rows > 1 ? sq / (rows - 1) : var)
        + (1.0 - momentum) * running_var[ch]);
  alpha[ch] = (float) (rstd * gamma[ch]);
  shift[ch] = (float) (beta[ch] - mean * (float) (rstd * gamma[ch]));
}

static __global__ void
eval_stats_kernel (float *alpha, float *shift, const float *gamma,
    const float *beta, const float *running_mean, const float *running_var,
    int c, float eps)
{
  const int ch = blockIdx.x * blockDim.x + threadIdx.x;
  if (ch >= c)
    return;
  const double a = gamma[ch] / sqrt ((double) running_var[ch] + eps);
  alpha[ch] = (float) a;
  shift[ch] = (float) (beta[ch] - running_mean[ch] * a);
}

/* out = act(x * alpha + shift [+ residual]) */
static __global__ void
affine_kernel (float *out, const float *x, const float *alpha,
    const float *shift, const float *residual, size_t n, int c, int relu)
{
  for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x) {
    const int ch = (int) (i % c);
    float y = x[i] * alpha[ch] + shift[ch];
    if (residual)
      y += residual[i];
    out[i] = relu ? (y > 0.0f ? y : 0.0f) : y;
  }
}

/* k_dy (k0), k_xmu (k1), k_const (k2), and the parameter gradients. */
static __global__ void
backward_coef_kernel (float *k_dy, float *k_xmu, float *k_const, float *dgamma,
    float *dbeta, const double *part_a, const double *part_b,
    const float *save_rstd, const float *gamma, int splits, int rows, int c)
{
  const int ch = blockIdx.x * blockDim.x + threadIdx.x;
  if (ch >= c)
    return;
  const double sum_dy = total (part_a, splits, c, ch);
  const double sum_dy_xmu = total (part_b, splits, c, ch);
  const double rstd = save_rstd[ch];
  const double g = rstd * gamma[ch];
  dgamma[ch] += (float) (sum_dy_xmu * rstd);
  dbeta[ch] += (float) sum_dy;
  k_dy[ch] = (float) g;
  k_xmu[ch] = (float) (-g * rstd * rstd * sum_dy_xmu / rows);
  k_const[ch] = (float) (-g * sum_dy / rows);
}

static __global__ void
backward_dx_kernel (float *dinp, const float *dout, const float *x,
    const float *mean, const float *k_dy, const float *k_xmu,
    const float *k_const, size_t n, int c)
{
  for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x) {
    const int ch = (int) (i % c);
    dinp[i] = dout[i] * k_dy[ch] + (x[i] - mean[ch]) * k_xmu[ch] + k_const[ch];
  }
}

static unsigned
channel_blocks (int c)
{
  return (unsigned) ((c + FER_CUDA_THREADS - 1) / FER_CUDA_THREADS);
}

extern "C" cudaError_t
fer_cuda_batchnorm_forward_train (cudaStream_t stream, float *out,
    float *save_mean, float *save_rstd, float *running_mean, float *running_var,
    const float *inp, const float *gamma, const float *beta,
    const float *residual, int rows, int c, float momentum, float eps, int relu,
    void *scratch)
{
  const bn_scratch s = scratch_views (scratch, rows, c);
  const int splits = fer_cuda_bn_splits (rows);
  const size_t n = (size_t) rows * c;
  cudaError_t e;

  if (rows <= 0 || c <= 0)
    return cudaSuccess;
  if ((e = reduce (stream, &s, inp, NULL, NULL, rows, c, SUM_X)))
    return e;
  mean_kernel<<<channel_blocks (c), FER_CUDA_THREADS, 0, stream>>> (
      s.mean, s.part_a, splits, rows, c);
  if ((e = cudaGetLastError ())
      || (e = reduce (stream, &s, inp, NULL, NULL, rows, c, SUM_SQ)))
    return e;
  train_stats_kernel<<<channel_blocks (c), FER_CUDA_THREADS, 0, stream>>> (s.k0,
      s.k1, save_mean, save_rstd, running_mean, running_var, s.mean, s.part_a,
      gamma, beta, splits, rows, c, momentum, eps);
  affine_kernel<<<fer_cuda_blocks (n), FER_CUDA_THREADS, 0, stream>>> (
      out, inp, s.k0, s.k1, residual, n, c, relu);
  return cudaGetLastError ();
}

extern "C" cudaError_t
fer_cuda_batchnorm_forward_eval (cudaStream_t stream, float *out,
    const float *inp, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var, const float *residual,
    int rows, int c, float eps, int relu, void *scratch)
{
  const bn_scratch s = scratch_views (scratch, rows, c);
  const size_t n = (size_t) rows * c;

  if (rows <= 0 || c <= 0)
    return cudaSuccess;
  eval_stats_kernel<<<channel_blocks (c), FER_CUDA_THREADS, 0, stream>>> (
      s.k0, s.k1, gamma, beta, running_mean, running_var, c, eps);
  affine_kernel<<<fer_cuda_blocks (n), FER_CUDA_THREADS, 0, stream>>> (
      out, inp, s.k0, s.k1, residual, n, c, relu);
  return cudaGetLastError ();
}

extern "C" cudaError_t
fer_cuda_batchnorm_backward (cudaStream_t stream, float *dinp, float *dgamma,
    float *dbeta, const float *dout, const float *inp, const float *save_mean,
    const float *save_rstd, const float *gamma, int rows, int c, void *scratch)
{
  const bn_scratch s = scratch_views (scratch, rows, c);
  const int splits = fer_cuda_bn_splits (rows);
  const size_t n = (size_t) rows * c;
  cudaError_t e;

  if (rows <= 0 || c <= 0)
    return cudaSuccess;
  if ((e = reduce (stream, &s, inp, dout, save_mean, rows, c, SUM_BACKWARD)))
    return e;
  backward_coef_kernel<<<channel_blocks (c), FER_CUDA_THREADS, 0, stream>>> (
      s.k0, s.k1, s.k2, dgamma, dbeta, s.part_a, s.part_b, save_rstd, gamma,
      splits, rows, c);
  backward_dx_kernel<<<fer_cuda_blocks (n), FER_CUDA_THREADS, 0, stream>>> (
      dinp, dout, inp, save_mean, s.k0, s.k1, s.k2, n, c);
  return cudaGetLastError ();
}
