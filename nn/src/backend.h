/* The backend interface (private): what the graph code in model.c calls.
 * Only backend.c knows which backends exist; cpu/ and cuda/ never include
 * each other. Tensors are activations in NHWC order; conv weights are
 * (Cout, KH, KW, Cin) after load-time reordering; linear weights are
 * (out, in) as in PyTorch. Pointers passed to ops are backend memory
 * (from alloc); only upload/download touch host memory. */
#ifndef FER_BACKEND_H
#define FER_BACKEND_H

#include <stddef.h>
#include <fer/model.h>

typedef struct
{
  int n, h, w, cin;          /* input, NHWC */
  int cout, k, stride, pad;  /* square kernels */
  int oh, ow;                /* output spatial size */
} fer_conv_shape;

static inline void
fer_conv_shape_init (fer_conv_shape *s, int n, int h, int w, int cin,
    int cout, int k, int stride, int pad)
{
  s->n = n;
  s->h = h;
  s->w = w;
  s->cin = cin;
  s->cout = cout;
  s->k = k;
  s->stride = stride;
  s->pad = pad;
  s->oh = (h + 2 * pad - k) / stride + 1;
  s->ow = (w + 2 * pad - k) / stride + 1;
}

typedef struct fer_backend fer_backend;

typedef struct
{
  const char *name;
  /* Images per inference forward (model.c runs larger batches in chunks
   * of this many); 0: the model's default. */
  int forward_chunk;
  void (*destroy) (fer_backend *be);
  float *(*alloc) (fer_backend *be, size_t n_floats, GError **error);
  void (*release) (fer_backend *be, float *p);
  gboolean (*upload) (fer_backend *be, float *dst, const float *src, size_t n,
      GError **error);
  gboolean (*download) (fer_backend *be, float *dst, const float *src,
      size_t n, GError **error);
  gboolean (*set_threads) (fer_backend *be, int threads, GError **error);

  /* Turns host conv weights (Cout, K, K, Cin) into whatever layout this
   * backend's conv2d_forward wants (packed, on the device...), once at
   * load time; the result is released with release(). */
  float *(*conv2d_prepare_weight) (fer_backend *be, const float *weight,
      int cout, int k, int cin, GError **error);
  /* out = act(conv(inp, weight) + bias [+ residual]); act = ReLU or none.
   * weight comes from conv2d_prepare_weight; residual (same shape as out)
   * may be NULL. */
  gboolean (*conv2d_forward) (fer_backend *be, float *out, const float *inp,
      const float *weight, const float *bias, const float *residual,
      const fer_conv_shape *s, gboolean relu, GError **error);
  /* k x k max-pool; padded positions never win (PyTorch semantics). */
  gboolean (*maxpool2d_forward) (fer_backend *be, float *out, const float *inp,
      int n, int h, int w, int c, int k, int stride, int pad, GError **error);
  /* (n, hw, c) -> (n, c) mean over hw. */
  gboolean (*avgpool_forward) (fer_backend *be, float *out, const float *inp,
      int n, int hw, int c, GError **error);
  /* out (n, nout) = act(inp (n, nin) . weight^T + bias). */
  gboolean (*linear_forward) (fer_backend *be, float *out, const float *inp,
      const float *weight, const float *bias, int n, int nin, int nout,
      gboolean relu, GError **error);

  /* Optional (NULL: model.c runs fer_preprocess on the host and uploads
   * the result): out (n, S, S, C) NHWC, backend memory, = fer_preprocess
   * of views[0..n) of img for spec, with its validation and messages. img,
   * views and spec are host memory. */
  gboolean (*preprocess) (fer_backend *be, float *out, const fer_image *img,
      const fer_view *views, int n, const fer_input_spec *spec,
      GError **error);

  /* ---- Training ops (train.c) ------------------------------------------
   * NULL in a backend that cannot train: fer_trainer_new then refuses it.
   * Contract: parameter gradients (dweight, dbias, dgamma, dbeta) accumulate
   * with +=; activation gradients and outputs are overwritten. Conv weights
   * here are the trainer's plain (Cout, K, K, Cin) parameters, never
   * conv2d_prepare_weight's. Activations are NHWC, so BatchNorm2d is a
   * per-column op over (rows = n*h*w, c) and BatchNorm1d the same op over
   * (n, c). All pointers are backend memory except the labels and the loss
   * of softmax_xent, which are host memory. */

  /* Floats of conv workspace that conv2d_forward_train / conv2d_backward
   * want for the whole batch of s; they also work with less, down to this
   * value for s->n = 1, by running the batch in chunks. */
  size_t (*conv2d_train_workspace) (fer_backend *be, const fer_conv_shape *s);
  /* out = conv(inp, weight), no bias, no activation. */
  gboolean (*conv2d_forward_train) (fer_backend *be, float *out,
      const float *inp, const float *weight, const fer_conv_shape *s,
      float *ws, size_t ws_floats, GError **error);
  /* dinp (may be NULL: not wanted) = conv^T(dout, weight); dweight +=. */
  gboolean (*conv2d_backward) (fer_backend *be, float *dinp, float *dweight,
      const float *dout, const float *inp, const float *weight,
      const fer_conv_shape *s, float *ws, size_t ws_floats, GError **error);
  /* out = act(BN(inp) [+ residual]) with batch statistics (biased variance)
   * saved for the backward pass; running_mean/var (NULL: left alone) move
   * by `momentum` toward the batch mean and unbiased variance (PyTorch). */
  gboolean (*batchnorm_forward_train) (fer_backend *be, float *out,
      float *save_mean, float *save_rstd, float *running_mean,
      float *running_var, const float *inp, const float *gamma,
      const float *beta, const float *residual, int rows, int c,
      float momentum, float eps, gboolean relu, GError **error);
  /* out = act(BN(inp) [+ residual]) with the running statistics. */
  gboolean (*batchnorm_forward_eval) (fer_backend *be, float *out,
      const float *inp, const float *gamma, const float *beta,
      const float *running_mean, const float *running_var,
      const float *residual, int rows, int c, float eps, gboolean relu,
      GError **error);
  gboolean (*batchnorm_backward) (fer_backend *be, float *dinp,
      float *dgamma, float *dbeta, const float *dout, const float *inp,
      const float *save_mean, const float *save_rstd, const float *gamma,
      int rows, int c, GError **error);
  /* dinp = dout * (out > 0); dinp may be dout. */
  gboolean (*relu_backward) (fer_backend *be, float *dinp, const float *dout,
      const float *out, size_t n, GError **error);
  /* out = a + b (residual add; also sums two branches' gradients). */
  gboolean (*add) (fer_backend *be, float *out, const float *a,
      const float *b, size_t n, GError **error);
  /* out = inp * mask and dinp = dout * mask; the mask (0 or 1/(1-p)) is
   * drawn by the trainer on the host and uploaded, so that every backend
   * drops the same units. */
  gboolean (*dropout_forward) (fer_backend *be, float *out, const float *inp,
      const float *mask, size_t n, GError **error);
  gboolean (*dropout_backward) (fer_backend *be, float *dinp,
      const float *dout, const float *mask, size_t n, GError **error);
  /* Gradient to the first maximum of each window, (ky, kx) scan order. */
  gboolean (*maxpool2d_backward) (fer_backend *be, float *dinp,
      const float *dout, const float *inp, int n, int h, int w, int c, int k,
      int stride, int pad, GError **error);
  gboolean (*avgpool_backward) (fer_backend *be, float *dinp,
      const float *dout, int n, int hw, int c, GError **error);
  /* dinp (may be NULL) = dout . weight; dweight += dout^T . inp; dbias +=. */
  gboolean (*linear_backward) (fer_backend *be, float *dinp, float *dweight,
      float *dbias, const float *dout, const float *inp, const float *weight,
      int n, int nin, int nout, GError **error);
  /* Weighted, label-smoothed (focal) softmax cross-entropy, mixup as
   * lam * L(y_a) + (1 - lam) * L(y_b) when y_b is not NULL; see
   * fer_cpu_softmax_xent. loss (host) and dlogits (NULL: loss only). */
  gboolean (*softmax_xent) (fer_backend *be, float *loss, float *dlogits,
      const float *logits, const int *y_a, const int *y_b, float lam,
      const float *class_weights, int n, int k, float smoothing,
      float focal_gamma, GError **error);
  /* torch.optim.Adam / AdamW (decoupled) over a whole parameter buffer. */
  gboolean (*adam_update) (fer_backend *be, float *params, float *m, float *v,
      const float *grads, size_t n, float lr, float beta1, float beta2,
      float eps, float weight_decay, int64_t step, gboolean decoupled,
      GError **error);
  /* torch.optim.SGD with momentum (optionally Nesterov), dampening 0. */
  gboolean (*sgd_update) (fer_backend *be, float *params, float *buf,
      const float *grads, size_t n, float lr, float momentum,
      float weight_decay, gboolean nesterov, gboolean first_step,
      GError **error);
  gboolean (*zero) (fer_backend *be, float *p, size_t n, GError **error);
} fer_backend_ops;

struct fer_backend
{
  const fer_backend_ops *ops;
};

/* Creates the requested backend (AUTO resolves here). */
fer_backend *fer_backend_new (fer_backend_type type, int device_id, int threads,
    fer_backend_type *resolved, GError **error);
void fer_backend_free (fer_backend *be);

/* Implemented in cpu/backend_cpu.c. */
fer_backend *fer_backend_cpu_new (int threads, GError **error);

/* Implemented in cuda/backend_cuda.c, in builds with FER_HAVE_CUDA. probe:
 * TRUE when device_id names a usable CUDA device, else FALSE with
 * FER_ERROR_NO_DEVICE ("no CUDA device ..."). new: the backend on that
 * device (FER_ERROR_NO_DEVICE as probe, other codes for failures of a
 * device that is there). FER_CUDA_MATH picks the math (cuda/plan.h). */
gboolean fer_backend_cuda_probe (int device_id, GError **error);
fer_backend *fer_backend_cuda_new (int device_id, GError **error);

#endif
