/* Batch normalisation on the CPU, training and evaluation mode.
 *
 * With NHWC activations BatchNorm2d is a per-column op over (rows, c),
 * rows = n*h*w, and BatchNorm1d over (n, c) is the same op. Statistics are
 * accumulated in double, channels in blocks of BLOCK so that the inner loop
 * runs along a contiguous row (vectorised) with the accumulators in cache.
 *
 * Numerics follow PyTorch 1.13's CPU kernels: batch mean and biased
 * variance normalise; the running variance takes the unbiased one; the
 * output is inp * alpha + beta' with alpha = rstd * gamma and
 * beta' = beta - mean * alpha per channel; the backward pass is
 *   dinp = (dout - sum(dout)/N - (x - mean) * rstd^2 * sum(dout*(x - mean))/N)
 *          * rstd * gamma,  dgamma += rstd * sum(dout*(x - mean)),
 *   dbeta += sum(dout).
 * Contract: dgamma, dbeta accumulate; out, dinp are overwritten. The
 * backend table's entries are at the end. */
#include "cpu/backend_cpu.h"

#include <math.h>

#define BLOCK 256

/* One row's columns [0, cb): y = x * alpha + shift [+ res], and ReLU.
 * One loop per function and no branch around it: the shape GCC -O2
 * vectorises. */
G_NO_INLINE static void
affine_row (float *restrict y, const float *restrict x,
    const float *restrict alpha, const float *restrict shift, size_t cb)
{
  FER_FOR_VEC (j, cb, y[j] = x[j] * alpha[j] + shift[j]);
}

G_NO_INLINE static void
affine_res_row (float *restrict y, const float *restrict x,
    const float *restrict alpha, const float *restrict shift,
    const float *restrict res, size_t cb)
{
  FER_FOR_VEC (j, cb, y[j] = x[j] * alpha[j] + shift[j] + res[j]);
}

G_NO_INLINE static void
relu_row (float *restrict y, size_t cb)
{
  FER_FOR_VEC (j, cb, y[j] = y[j] > 0.0f ? y[j] : 0.0f);
}

/* y = act(x * alpha + shift [+ residual]) over columns [c0, c0 + cb). */
static void
affine_act (float *out, const float *inp, const float *alpha,
    const float *shift, const float *residual, int rows, int c, int c0, int cb,
    gboolean relu)
{
  for (int r = 0; r < rows; r++) {
    size_t at = (size_t) r * c + c0;
    if (residual)
      affine_res_row (out + at, inp + at, alpha, shift, residual + at, cb);
    else
      affine_row (out + at, inp + at, alpha, shift, cb);
    if (relu)
      relu_row (out + at, cb);
  }
}

/* sum[j] += x[j] and, with mean, sq[j] += (x[j] - mean[j])^2, j < cb. */
G_NO_INLINE static void
sum_row (double *restrict sum, const float *restrict x, size_t cb)
{
  FER_FOR_VEC (j, cb, sum[j] += x[j]);
}

G_NO_INLINE static void
sq_row (double *restrict sq, const double *restrict mean,
    const float *restrict x, size_t cb)
{
  FER_FOR_VEC (j, cb, sq[j] += (x[j] - mean[j]) * (x[j] - mean[j]));
}

/* Backward sums of one row: sum(dy) and sum(dy * (x - mean)). */
G_NO_INLINE static void
dsum_row (double *restrict sum_dy, double *restrict sum_dy_xmu,
    const float *restrict dy, const float *restrict x,
    const float *restrict mean, size_t cb)
{
  FER_FOR_VEC (j, cb, sum_dy[j] += dy[j];
               sum_dy_xmu[j] += (double) dy[j] * (x[j] - mean[j]));
}

G_NO_INLINE static void
dx_row (float *restrict dx, const float *restrict dy, const float *restrict x,
    const float *restrict mean, const float *restrict k_dy,
    const float *restrict k_xmu, const float *restrict k_const, size_t cb)
{
  FER_FOR_VEC (j, cb,
      dx[j] = dy[j] * k_dy[j] + (x[j] - mean[j]) * k_xmu[j] + k_const[j]);
}

void
fer_cpu_batchnorm_forward_train (float *out, float *save_mean, float *save_rstd,
    float *running_mean, float *running_var, const float *inp,
    const float *gamma, const float *beta, const float *residual, int rows,
    int c, float momentum, float eps, gboolean relu)
{
  double sum[BLOCK], sq[BLOCK];
  float alpha[BLOCK], shift[BLOCK];

  for (int c0 = 0; c0 < c; c0 += BLOCK) {
    const int cb = MIN (BLOCK, c - c0);
    for (int j = 0; j < cb; j++)
      sum[j] = sq[j] = 0.0;
    for (int r = 0; r < rows; r++)
      sum_row (sum, inp + (size_t) r * c + c0, cb);
    for (int j = 0; j < cb; j++)
      sum[j] /= rows; /* now the mean */
    for (int r = 0; r < rows; r++)
      sq_row (sq, sum, inp + (size_t) r * c + c0, cb);
    for (int j = 0; j < cb; j++) {
      const int ch = c0 + j;
      double mean = sum[j], var = sq[j] / rows;
      double rstd = 1.0 / sqrt (var + eps);
      save_mean[ch] = (float) mean;
      save_rstd[ch] = (float) rstd;
      if (running_mean)
        running_mean[ch] =
            (float) (momentum * mean + (1.0 - momentum) * running_mean[ch]);
      if (running_var)
        running_var[ch] =
            (float) (momentum * (rows > 1 ? sq[j] / (rows - 1) : var)
                + (1.0 - momentum) * running_var[ch]);
      alpha[j] = (float) (rstd * gamma[ch]);
      shift[j] = (float) (beta[ch] - mean * (float) (rstd * gamma[ch]));
    }
    affine_act (out, inp, alpha, shift, residual, rows, c, c0, cb, relu);
  }
}

void
fer_cpu_batchnorm_forward_eval (float *out, const float *inp,
    const float *gamma, const float *beta, const float *running_mean,
    const float *running_var, const float *residual, int rows, int c, float eps,
    gboolean relu)
{
  float alpha[BLOCK], shift[BLOCK];

  for (int c0 = 0; c0 < c; c0 += BLOCK) {
    const int cb = MIN (BLOCK, c - c0);
    for (int j = 0; j < cb; j++) {
      const int ch = c0 + j;
      double a = gamma[ch] / sqrt ((double) running_var[ch] + eps);
      alpha[j] = (float) a;
      shift[j] = (float) (beta[ch] - running_mean[ch] * a);
    }
    affine_act (out, inp, alpha, shift, residual, rows, c, c0, cb, relu);
  }
}

void
fer_cpu_batchnorm_backward (float *dinp, float *dgamma, float *dbeta,
    const float *dout, const float *inp, const float *save_mean,
    const float *save_rstd, const float *gamma, int rows, int c)
{
  double sum_dy[BLOCK], sum_dy_xmu[BLOCK];
  float mean[BLOCK], k_xmu[BLOCK], k_dy[BLOCK], k_const[BLOCK];

  for (int c0 = 0; c0 < c; c0 += BLOCK) {
    const int cb = MIN (BLOCK, c - c0);
    for (int j = 0; j < cb; j++) {
      sum_dy[j] = sum_dy_xmu[j] = 0.0;
      mean[j] = save_mean[c0 + j];
    }
    for (int r = 0; r < rows; r++) {
      size_t at = (size_t) r * c + c0;
      dsum_row (sum_dy, sum_dy_xmu, dout + at, inp + at, mean, cb);
    }
    /* dinp = dy * k_dy + (x - mean) * k_xmu + k_const */
    for (int j = 0; j < cb; j++) {
      const int ch = c0 + j;
      double rstd = save_rstd[ch];
      double g = rstd * gamma[ch];
      dgamma[ch] += (float) (sum_dy_xmu[j] * rstd);
      dbeta[ch] += (float) sum_dy[j];
      k_dy[j] = (float) g;
      k_xmu[j] = (float) (-g * rstd * rstd * sum_dy_xmu[j] / rows);
      k_const[j] = (float) (-g * sum_dy[j] / rows);
    }
    for (int r = 0; r < rows; r++) {
      size_t at = (size_t) r * c + c0;
      dx_row (dinp + at, dout + at, inp + at, mean, k_dy, k_xmu, k_const, cb);
    }
  }
}

gboolean
fer_cpu_op_batchnorm_forward_train (fer_backend *be, float *out,
    float *save_mean, float *save_rstd, float *running_mean, float *running_var,
    const float *inp, const float *gamma, const float *beta,
    const float *residual, int rows, int c, float momentum, float eps,
    gboolean relu, GError **error)
{
  fer_cpu_batchnorm_forward_train (out, save_mean, save_rstd, running_mean,
      running_var, inp, gamma, beta, residual, rows, c, momentum, eps, relu);
  return TRUE;
}

gboolean
fer_cpu_op_batchnorm_forward_eval (fer_backend *be, float *out,
    const float *inp, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var, const float *residual,
    int rows, int c, float eps, gboolean relu, GError **error)
{
  fer_cpu_batchnorm_forward_eval (out, inp, gamma, beta, running_mean,
      running_var, residual, rows, c, eps, relu);
  return TRUE;
}

gboolean
fer_cpu_op_batchnorm_backward (fer_backend *be, float *dinp, float *dgamma,
    float *dbeta, const float *dout, const float *inp, const float *save_mean,
    const float *save_rstd, const float *gamma, int rows, int c, GError **error)
{
  fer_cpu_batchnorm_backward (
      dinp, dgamma, dbeta, dout, inp, save_mean, save_rstd, gamma, rows, c);
  return TRUE;
}
