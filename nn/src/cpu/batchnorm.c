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
 * Contract: dgamma, dbeta accumulate; out, dinp are overwritten. */
#include "cpu/ops_train.h"

#include <math.h>

#define BLOCK 256

/* y = act(x * alpha + shift [+ residual]) over columns [c0, c0 + cb). */
static void
affine_act (float *out, const float *inp, const float *alpha,
    const float *shift, const float *residual, int rows, int c, int c0,
    int cb, gboolean relu)
{
  for (int r = 0; r < rows; r++) {
    const float *x = inp + (size_t) r * c + c0;
    float *y = out + (size_t) r * c + c0;
    if (residual) {
      const float *res = residual + (size_t) r * c + c0;
      for (int j = 0; j < cb; j++)
        y[j] = x[j] * alpha[j] + shift[j] + res[j];
    } else {
      for (int j = 0; j < cb; j++)
        y[j] = x[j] * alpha[j] + shift[j];
    }
    if (relu)
      for (int j = 0; j < cb; j++)
        y[j] = y[j] > 0.0f ? y[j] : 0.0f;
  }
}

void
fer_cpu_batchnorm_forward_train (float *out, float *save_mean,
    float *save_rstd, float *running_mean, float *running_var,
    const float *inp, const float *gamma, const float *beta,
    const float *residual, int rows, int c, float momentum, float eps,
    gboolean relu)
{
  double sum[BLOCK], sq[BLOCK];
  float alpha[BLOCK], shift[BLOCK];

  for (int c0 = 0; c0 < c; c0 += BLOCK) {
    const int cb = MIN (BLOCK, c - c0);
    for (int j = 0; j < cb; j++)
      sum[j] = sq[j] = 0.0;
    for (int r = 0; r < rows; r++) {
      const float *x = inp + (size_t) r * c + c0;
      for (int j = 0; j < cb; j++)
        sum[j] += x[j];
    }
    for (int j = 0; j < cb; j++)
      sum[j] /= rows;  /* now the mean */
    for (int r = 0; r < rows; r++) {
      const float *x = inp + (size_t) r * c + c0;
      for (int j = 0; j < cb; j++) {
        double d = x[j] - sum[j];
        sq[j] += d * d;
      }
    }
    for (int j = 0; j < cb; j++) {
      const int ch = c0 + j;
      double mean = sum[j], var = sq[j] / rows;
      double rstd = 1.0 / sqrt (var + eps);
      save_mean[ch] = (float) mean;
      save_rstd[ch] = (float) rstd;
      if (running_mean)
        running_mean[ch] = (float) (momentum * mean
            + (1.0 - momentum) * running_mean[ch]);
      if (running_var)
        running_var[ch] = (float) (momentum * (rows > 1 ? sq[j] / (rows - 1)
                : var) + (1.0 - momentum) * running_var[ch]);
      alpha[j] = (float) (rstd * gamma[ch]);
      shift[j] = (float) (beta[ch] - mean * (float) (rstd * gamma[ch]));
    }
    affine_act (out, inp, alpha, shift, residual, rows, c, c0, cb, relu);
  }
}

void
fer_cpu_batchnorm_forward_eval (float *out, const float *inp,
    const float *gamma, const float *beta, const float *running_mean,
    const float *running_var, const float *residual, int rows, int c,
    float eps, gboolean relu)
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
      const float *x = inp + (size_t) r * c + c0;
      const float *dy = dout + (size_t) r * c + c0;
      for (int j = 0; j < cb; j++) {
        sum_dy[j] += dy[j];
        sum_dy_xmu[j] += (double) dy[j] * (x[j] - mean[j]);
      }
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
      const float *x = inp + (size_t) r * c + c0;
      const float *dy = dout + (size_t) r * c + c0;
      float *dx = dinp + (size_t) r * c + c0;
      for (int j = 0; j < cb; j++)
        dx[j] = dy[j] * k_dy[j] + (x[j] - mean[j]) * k_xmu[j] + k_const[j];
    }
  }
}
