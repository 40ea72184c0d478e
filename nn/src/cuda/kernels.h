/* Our own CUDA kernels (private), one launcher per op, by op family
 * (cuda/<family>.cu; the backend table's entries that call them are in
 * cuda/<family>.c), plain C so that the host side (.c, gcc) calls what
 * nvcc built (.cu). Same conventions as the CPU kernels (cpu/ops.h):
 * arguments are outputs, inputs, then sizes; activations NHWC, i.e.
 * (rows, c); parameter gradients accumulate (+=), outputs and activation
 * gradients are overwritten. Every pointer is device memory. Each launcher
 * queues its kernels on `stream` and returns cudaGetLastError() (launch
 * errors; faults surface at the next synchronising call). Booleans are
 * ints.
 *
 * Numerics mirror the CPU ops: the same reductions in double, the same
 * order of float operations, and nvcc's FMA contraction is off
 * (--fmad=false in meson.build), so that element-wise ops, the optimizer
 * steps and pooling give the CPU backend's floats bit for bit. */
#ifndef FER_CUDA_KERNELS_H
#define FER_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __CUDACC__
#include "plan.h"

/* For the kernels: a grid-stride loop of i over [0, n), and the launch of
 * such a kernel over n items (none when n is 0) that returns the launch
 * error from the calling launcher. */
#define FER_CUDA_GRID_STRIDE(i, n)                                             \
  for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < (n);     \
       i += (size_t) gridDim.x * blockDim.x)
#define FER_CUDA_LAUNCH(kernel, n, stream, ...)                                \
  do {                                                                         \
    (void) cudaGetLastError (); /* a library call's leftover is not ours */    \
    if ((n) > 0)                                                               \
      kernel<<<fer_cuda_blocks (n), FER_CUDA_THREADS, 0, stream>>> (           \
          __VA_ARGS__);                                                        \
    return cudaGetLastError ();                                                \
  } while (0)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- pool.cu ---- */

/* k x k max-pool, padding never wins (fer_cpu_maxpool2d_forward). */
cudaError_t fer_cuda_maxpool2d_forward (cudaStream_t stream, float *out,
    const float *inp, int n, int h, int w, int c, int k, int stride, int pad);
/* dinp overwritten: each output's gradient to the first maximum of its
 * window in (ky, kx) order, gathered per input element (no atomics; the
 * contributions add in output order, as on the CPU). */
cudaError_t fer_cuda_maxpool2d_backward (cudaStream_t stream, float *dinp,
    const float *dout, const float *inp, int n, int h, int w, int c, int k,
    int stride, int pad);
/* out (n, c) = mean over hw of inp (n, hw, c), summed in hw order. */
cudaError_t fer_cuda_avgpool_forward (
    cudaStream_t stream, float *out, const float *inp, int n, int hw, int c);
cudaError_t fer_cuda_avgpool_backward (
    cudaStream_t stream, float *dinp, const float *dout, int n, int hw, int c);

/* ---- linear.cu (the GEMMs are cuBLAS's, in linear.c) ---- */

/* sums (c) += column sums of x (rows, c), each column added in row order:
 * the bias gradient. */
cudaError_t fer_cuda_column_sums (
    cudaStream_t stream, float *sums, const float *x, int rows, int c);

/* ---- batchnorm.cu: scratch of fer_cuda_bn_scratch_bytes (rows, c) ---- */

cudaError_t fer_cuda_batchnorm_forward_train (cudaStream_t stream, float *out,
    float *save_mean, float *save_rstd, float *running_mean, float *running_var,
    const float *inp, const float *gamma, const float *beta,
    const float *residual, int rows, int c, float momentum, float eps, int relu,
    void *scratch);
cudaError_t fer_cuda_batchnorm_forward_eval (cudaStream_t stream, float *out,
    const float *inp, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var, const float *residual,
    int rows, int c, float eps, int relu, void *scratch);
cudaError_t fer_cuda_batchnorm_backward (cudaStream_t stream, float *dinp,
    float *dgamma, float *dbeta, const float *dout, const float *inp,
    const float *save_mean, const float *save_rstd, const float *gamma,
    int rows, int c, void *scratch);

/* ---- activation.cu ---- */

/* dinp = dout * (out > 0); dinp may be dout. */
cudaError_t fer_cuda_relu_backward (cudaStream_t stream, float *dinp,
    const float *dout, const float *out, size_t n);
/* out = a + b; out may be a or b. */
cudaError_t fer_cuda_add (
    cudaStream_t stream, float *out, const float *a, const float *b, size_t n);
/* out = inp * mask: dropout, and its backward with the same mask; in
 * place ok. */
cudaError_t fer_cuda_dropout_forward (cudaStream_t stream, float *out,
    const float *inp, const float *mask, size_t n);
/* out (rows, c) = act(out + bias [+ residual]) in place; bias (c) and
 * residual (rows, c) may be NULL. The epilogue of unfused convolutions and
 * of the linear layers. */
cudaError_t fer_cuda_bias_act (cudaStream_t stream, float *out,
    const float *bias, const float *residual, size_t rows, int c, int relu);

/* FER_CUDA_MATH=fp16's convolutions (halves are IEEE binary16 bit
 * patterns, uint16_t since C has no half type): halves (n) = floats
 * rounded to the nearest half, ties to even (CUDA's __float2half_rn, the
 * rounding of fer_f32_to_f16); beyond 65504 they become infinities. */
cudaError_t fer_cuda_floats_to_halves (
    cudaStream_t stream, uint16_t *halves, const float *floats, size_t n);
/* out (rows, c) = act(halves + bias [+ residual]), the halves widened to
 * float exactly, then fer_cuda_bias_act's arithmetic in its order. */
cudaError_t fer_cuda_halves_bias_act (cudaStream_t stream, float *out,
    const uint16_t *halves, const float *bias, const float *residual,
    size_t rows, int c, int relu);

/* ---- softmax.cu ---- */

/* probs (n_faces, k) = fer_cpu_softmax_average of logits (n_faces * views,
 * k), a thread per face. */
cudaError_t fer_cuda_softmax_average (cudaStream_t stream, float *probs,
    const float *logits, int n_faces, int views, int k);

/* ---- optimizer.cu ---- */

/* The Adam/AdamW step with the per-step scalars computed on the host as
 * fer_cpu_adam_update does: p = params * p_scale; g = grads + g_decay * p;
 * m = b1 m + omb1 g; v = b2 v + omb2 g^2;
 * params = p + neg_step_size * m / (sqrt(v) / bc2_sqrt + eps). */
cudaError_t fer_cuda_adam_update (cudaStream_t stream, float *params, float *m,
    float *v, const float *grads, size_t n, float p_scale, float g_decay,
    float b1, float omb1, float b2, float omb2, float neg_step_size,
    float bc2_sqrt, float eps);
/* torch.optim.SGD as fer_cpu_sgd_update; buf may be NULL when momentum is 0. */
cudaError_t fer_cuda_sgd_update (cudaStream_t stream, float *params, float *buf,
    const float *grads, size_t n, float lr, float momentum, float weight_decay,
    int nesterov, int first_step);

/* The weights' moving average as fer_cpu_ema_update: ema += w (x - ema),
 * w = 1 - decay rounded to float on the host. */
cudaError_t fer_cuda_ema_update (
    cudaStream_t stream, float *ema, const float *x, size_t n, float w);

/* ---- preprocess.cu ---- */

typedef enum
{
  FER_CUDA_FRAME_GRAY,
  FER_CUDA_FRAME_PACKED, /* RGB, BGR, RGBA... : bytes_per_pixel, rgb */
  FER_CUDA_FRAME_I420,
  FER_CUDA_FRAME_NV12,
} fer_cuda_frame_kind;

/* A frame whose planes were uploaded into one device buffer. */
typedef struct
{
  int kind; /* fer_cuda_frame_kind */
  int width, height, full_range;
  int bytes_per_pixel, rgb[3];
  int strides[3];
  size_t offsets[3]; /* of each plane in the buffer */
} fer_cuda_frame;

/* Per channel: value = filtered pixel * gain + bias. */
typedef struct
{
  float gain[3], bias[3];
} fer_cuda_norm;

/* The filter taps of a batch of views (fer_preprocess's separable
 * filter), one set per distinct axis: views with the same source column
 * range (x, w) share their x taps, as a flipped view and its twin do, and
 * likewise for rows. An axis holds, for each of the S outputs, the first
 * source index (S ints) then the tap count (S ints), and the weights
 * (S x stride floats). */
typedef struct
{
  const int *x_axes, *y_axes;         /* (axes, 2, S) */
  const int *views;                   /* (n, 3): x axis, y axis, flip */
  const float *x_weights, *y_weights; /* (axes, S, stride_x or stride_y) */
  int stride_x, stride_y;
} fer_cuda_taps;

/* out (n, S, S, C) = fer_preprocess of n views of the frame in `data`.
 * taps' pointers and data are device memory. */
cudaError_t fer_cuda_preprocess (cudaStream_t stream, float *out,
    const fer_cuda_frame *frame, const unsigned char *data,
    const fer_cuda_taps *taps, int n, int S, int C, const fer_cuda_norm *norm);

/* ---- loss.cu ---- */

/* fer_cpu_softmax_xent on the device: *loss (device, one float) and
 * dlogits (n, k; NULL: loss only); y_a, y_b (NULL: no mixup),
 * class_weights (NULL: all 1) and soft (n, k; NULL: no distillation) are
 * device memory. One block. */
cudaError_t fer_cuda_softmax_xent (cudaStream_t stream, float *loss,
    float *dlogits, const float *logits, const int *y_a, const int *y_b,
    float lam, const float *class_weights, int n, int k, float smoothing,
    float focal_gamma, const float *soft, float soft_weight);

#ifdef __cplusplus
}
#endif

#endif
