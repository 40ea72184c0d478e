/* The backend interface (private): what the graph code in model.c and the
 * trainer in train.c call. Only backend.c knows which backends exist; cpu/
 * and cuda/ never include each other. Tensors are activations in NHWC
 * order; conv weights are (Cout, KH, KW, Cin) after load-time reordering;
 * linear weights are (out, in) as in PyTorch. Pointers passed to ops are
 * backend memory (from alloc); only upload/download touch host memory,
 * and the few host arguments an op takes are named so below.
 *
 * The ops come in families, one file per family and backend with the same
 * name: cpu/<family>.c holds the CPU kernels and this table's entries for
 * them (fer_cpu_op_<entry>), cuda/<family>.c the CUDA entries
 * (fer_cuda_op_<entry>) and cuda/<family>.cu their kernels. Each entry's
 * type, fer_op_<entry>, is declared here once; the backends' private
 * headers declare their entries with it.
 *
 * Training contract: parameter gradients (dweight, dbias, dgamma, dbeta)
 * accumulate with +=; activation gradients and outputs are overwritten.
 * Conv weights in the training ops are the trainer's plain (Cout, K, K,
 * Cin) parameters, never conv2d_prepare_weight's. Activations are NHWC, so
 * BatchNorm2d is a per-column op over (rows = n*h*w, c) and BatchNorm1d the
 * same op over (n, c). A backend that cannot train leaves the training
 * entries NULL, and fer_trainer_new refuses it. */
#ifndef FER_BACKEND_H
#define FER_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <fer/model.h>

#include "conv-shape.h"

typedef struct fer_backend fer_backend;

/* ---- conv: cpu/conv.c, cuda/conv.c ---- */

/* Turns host conv weights (Cout, K, K, Cin) into whatever layout this
 * backend's conv2d_forward wants (packed, on the device...), once at load
 * time; the result is released with release(). s is the convolution as
 * the model runs it on one image (n = 1; its sides those of the model's
 * input size): channels, kernel, stride and padding, and the map sides,
 * by which a backend may pick an algorithm (the CPU's Winograd); the
 * forward then takes any n and, correctly if not always as fast, any
 * sides. The convolution computes with weight[o] * scale[o] (scale: cout
 * factors, the folded BatchNorm's; NULL for 1): a backend folds them into
 * the weights (float(w * scale), in double, as PyTorch's fusion does) or,
 * with `halves`, may keep the weights as IEEE halves and apply the factors
 * to the sums (the CPU backend's direct convolution: half the memory and
 * memory traffic; exact when every weight is a half, see model.c). */
typedef float *fer_op_conv2d_prepare_weight (fer_backend *be,
    const float *weight, const double *scale, const fer_conv_shape *s,
    gboolean halves, GError **error);
/* Inference: out = act(conv(inp, weight) + bias [+ residual]); act = ReLU
 * or none. weight comes from conv2d_prepare_weight; residual (same shape
 * as out) may be NULL. */
typedef gboolean fer_op_conv2d_forward (fer_backend *be, float *out,
    const float *inp, const float *weight, const float *bias,
    const float *residual, const fer_conv_shape *s, gboolean relu,
    GError **error);
/* Training: floats of conv workspace that conv2d_backward wants for the
 * whole batch of s; it also works with less, down to this value for
 * s->n = 1, by running the batch in chunks. */
typedef size_t fer_op_conv2d_train_workspace (
    fer_backend *be, const fer_conv_shape *s);
/* Training: out = conv(inp, weight), no bias, no activation. */
typedef gboolean fer_op_conv2d_forward_train (fer_backend *be, float *out,
    const float *inp, const float *weight, const fer_conv_shape *s,
    GError **error);
/* dinp (may be NULL: not wanted) = conv^T(dout, weight); dweight +=.
 * ws: conv2d_train_workspace's floats (or fewer, see there). */
typedef gboolean fer_op_conv2d_backward (fer_backend *be, float *dinp,
    float *dweight, const float *dout, const float *inp, const float *weight,
    const fer_conv_shape *s, float *ws, size_t ws_floats, GError **error);

/* ---- pool: cpu/pool.c, cuda/pool.c ---- */

/* k x k max-pool; padded positions never win (PyTorch semantics). */
typedef gboolean fer_op_maxpool2d_forward (fer_backend *be, float *out,
    const float *inp, int n, int h, int w, int c, int k, int stride, int pad,
    GError **error);
/* Gradient to the first maximum of each window, (ky, kx) scan order. */
typedef gboolean fer_op_maxpool2d_backward (fer_backend *be, float *dinp,
    const float *dout, const float *inp, int n, int h, int w, int c, int k,
    int stride, int pad, GError **error);
/* (n, hw, c) -> (n, c) mean over hw. */
typedef gboolean fer_op_avgpool_forward (fer_backend *be, float *out,
    const float *inp, int n, int hw, int c, GError **error);
typedef gboolean fer_op_avgpool_backward (fer_backend *be, float *dinp,
    const float *dout, int n, int hw, int c, GError **error);

/* ---- linear: cpu/linear.c, cuda/linear.c ---- */

/* out (n, nout) = act(inp (n, nin) . weight^T + bias). */
typedef gboolean fer_op_linear_forward (fer_backend *be, float *out,
    const float *inp, const float *weight, const float *bias, int n, int nin,
    int nout, gboolean relu, GError **error);
/* dinp (may be NULL) = dout . weight; dweight += dout^T . inp; dbias +=. */
typedef gboolean fer_op_linear_backward (fer_backend *be, float *dinp,
    float *dweight, float *dbias, const float *dout, const float *inp,
    const float *weight, int n, int nin, int nout, GError **error);

/* ---- batchnorm: cpu/batchnorm.c, cuda/batchnorm.c (inference folds it
 * into the convolutions; these are the trainer's) ---- */

/* out = act(BN(inp) [+ residual]) with batch statistics (biased variance)
 * saved for the backward pass; running_mean/var (NULL: left alone) move
 * by `momentum` toward the batch mean and unbiased variance (PyTorch). */
typedef gboolean fer_op_batchnorm_forward_train (fer_backend *be, float *out,
    float *save_mean, float *save_rstd, float *running_mean, float *running_var,
    const float *inp, const float *gamma, const float *beta,
    const float *residual, int rows, int c, float momentum, float eps,
    gboolean relu, GError **error);
/* out = act(BN(inp) [+ residual]) with the running statistics. */
typedef gboolean fer_op_batchnorm_forward_eval (fer_backend *be, float *out,
    const float *inp, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var, const float *residual,
    int rows, int c, float eps, gboolean relu, GError **error);
typedef gboolean fer_op_batchnorm_backward (fer_backend *be, float *dinp,
    float *dgamma, float *dbeta, const float *dout, const float *inp,
    const float *save_mean, const float *save_rstd, const float *gamma,
    int rows, int c, GError **error);

/* ---- activation: cpu/activation.c, cuda/activation.c (ReLU's forward
 * is fused into the conv, batch-norm and linear ops) ---- */

/* dinp = dout * (out > 0); dinp may be dout. */
typedef gboolean fer_op_relu_backward (fer_backend *be, float *dinp,
    const float *dout, const float *out, size_t n, GError **error);
/* out = a + b (residual add; also sums two branches' gradients). */
typedef gboolean fer_op_add (fer_backend *be, float *out, const float *a,
    const float *b, size_t n, GError **error);
/* out = inp * mask and dinp = dout * mask; the mask (0 or 1/(1-p)) is
 * drawn by the trainer on the host and uploaded, so that every backend
 * drops the same units. */
typedef gboolean fer_op_dropout_forward (fer_backend *be, float *out,
    const float *inp, const float *mask, size_t n, GError **error);
typedef gboolean fer_op_dropout_backward (fer_backend *be, float *dinp,
    const float *dout, const float *mask, size_t n, GError **error);

/* ---- softmax: cpu/softmax.c, cuda/softmax.c ---- */

/* probs (n_faces, k), HOST memory = for each face, the mean over its
 * `views` consecutive rows of logits (n_faces * views, k) of their softmax:
 * the test-time-augmentation average of fer_model_classify. */
typedef gboolean fer_op_softmax_average (fer_backend *be, float *probs,
    const float *logits, int n_faces, int views, int k, GError **error);

/* ---- loss: cpu/loss.c, cuda/loss.c ---- */

/* Weighted, label-smoothed (focal) softmax cross-entropy, mixup as
 * lam * L(y_a) + (1 - lam) * L(y_b) when y_b is not NULL; see
 * fer_cpu_softmax_xent; with soft (n x k target distributions, NULL: none)
 * the distillation mix (1 - soft_weight) L + soft_weight L_soft. loss, y_a,
 * y_b and soft are HOST memory; dlogits (NULL: loss only) is overwritten. */
typedef gboolean fer_op_softmax_xent (fer_backend *be, float *loss,
    float *dlogits, const float *logits, const int *y_a, const int *y_b,
    float lam, const float *class_weights, int n, int k, float smoothing,
    float focal_gamma, const float *soft, float soft_weight, GError **error);

/* ---- optimizer: cpu/optimizer.c, cuda/optimizer.c ---- */

/* torch.optim.Adam / AdamW (decoupled) over a whole parameter buffer. */
typedef gboolean fer_op_adam_update (fer_backend *be, float *params, float *m,
    float *v, const float *grads, size_t n, float lr, float beta1, float beta2,
    float eps, float weight_decay, int64_t step, gboolean decoupled,
    GError **error);
/* torch.optim.SGD with momentum (optionally Nesterov), dampening 0. */
typedef gboolean fer_op_sgd_update (fer_backend *be, float *params, float *buf,
    const float *grads, size_t n, float lr, float momentum, float weight_decay,
    gboolean nesterov, gboolean first_step, GError **error);
/* The weights' exponential moving average: ema += (1 - decay) (x - ema),
 * torch.Tensor.lerp_'s form (the EMA of timm's ModelEmaV3 and of
 * torch.optim.swa_utils.get_ema_multi_avg_fn). */
typedef gboolean fer_op_ema_update (fer_backend *be, float *ema, const float *x,
    size_t n, float decay, GError **error);
/* p (n) = 0: the gradients before each backward pass, the moments of a
 * new trainer. */
typedef gboolean fer_op_zero (
    fer_backend *be, float *p, size_t n, GError **error);

/* ---- preprocess: cpu/preprocess.c, cuda/preprocess.c ---- */

/* out (n, S, S, C) NHWC = fer_preprocess of views[0..n) of img for spec,
 * with its validation and messages. img, views and spec are HOST memory. */
typedef gboolean fer_op_preprocess (fer_backend *be, float *out,
    const fer_image *img, const fer_view *views, int n,
    const fer_input_spec *spec, GError **error);

typedef struct
{
  const char *name;
  /* Images per inference forward (model.c runs larger batches in chunks
   * of this many); 0: the model's default. */
  int forward_chunk;

  /* The backend object: backend_cpu.c, backend_cuda.c */
  void (*destroy) (fer_backend *be);
  float *(*alloc) (fer_backend *be, size_t n_floats, GError **error);
  void (*release) (fer_backend *be, float *p);
  gboolean (*upload) (
      fer_backend *be, float *dst, const float *src, size_t n, GError **error);
  gboolean (*download) (
      fer_backend *be, float *dst, const float *src, size_t n, GError **error);
  gboolean (*set_threads) (fer_backend *be, int threads, GError **error);

  /* Inference (model.c). Every classification (frames, faces and whole
   * images alike) builds its input batch with preprocess, so that a device
   * gets the frames' bytes rather than the views' floats. */
  fer_op_conv2d_prepare_weight *conv2d_prepare_weight;
  fer_op_conv2d_forward *conv2d_forward;
  fer_op_maxpool2d_forward *maxpool2d_forward;
  fer_op_avgpool_forward *avgpool_forward;
  fer_op_linear_forward *linear_forward;
  fer_op_softmax_average *softmax_average;
  fer_op_preprocess *preprocess;

  /* Training (train.c); NULL in a backend that cannot train. */
  fer_op_conv2d_train_workspace *conv2d_train_workspace;
  fer_op_conv2d_forward_train *conv2d_forward_train;
  fer_op_conv2d_backward *conv2d_backward;
  fer_op_maxpool2d_backward *maxpool2d_backward;
  fer_op_avgpool_backward *avgpool_backward;
  fer_op_linear_backward *linear_backward;
  fer_op_batchnorm_forward_train *batchnorm_forward_train;
  fer_op_batchnorm_forward_eval *batchnorm_forward_eval;
  fer_op_batchnorm_backward *batchnorm_backward;
  fer_op_relu_backward *relu_backward;
  fer_op_add *add;
  fer_op_dropout_forward *dropout_forward;
  fer_op_dropout_backward *dropout_backward;
  fer_op_softmax_xent *softmax_xent;
  fer_op_adam_update *adam_update;
  fer_op_sgd_update *sgd_update;
  fer_op_ema_update *ema_update;
  fer_op_zero *zero;

  /* The fail-safe (docs/architecture.md, "Fail-safe"). A device backend
   * sets selftest_tolerance: the largest |difference| between its
   * probabilities and the CPU backend's that the load-time self-test
   * (model.c) accepts, for the math it was set up with; NULL (the CPU
   * backend) means no self-test. selftest_passed (optional) is told once a
   * model's self-test on this backend has passed. */
  double (*selftest_tolerance) (fer_backend *be);
  void (*selftest_passed) (fer_backend *be);
} fer_backend_ops;

struct fer_backend
{
  const fer_backend_ops *ops;
};

/* Creates the requested backend (AUTO resolves here): under AUTO "no
 * device" is the CPU backend, and any other failure of the device backend
 * an error. */
fer_backend *fer_backend_new (fer_backend_type type, int device_id, int threads,
    fer_backend_type *resolved, GError **error);
/* The same, except that under AUTO a device backend that fails to start
 * (not "no device": a device that is there, or FER_CUDA_FAULT=init) gives
 * the CPU backend and *fallback (g_free) says why, in one line; *fallback
 * is NULL otherwise. A bad FER_CUDA_FAULT or FER_CUDA_MATH value stays an
 * error. */
fer_backend *fer_backend_new_with_fallback (fer_backend_type type,
    int device_id, int threads, fer_backend_type *resolved, char **fallback,
    GError **error);
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

/* A device backend that failed `stage` ("to start", "its self-test"...)
 * with dev_error (taken over): under backend=auto (requested), the
 * fallback reason for the CPU object that replaces it (g_free), "the
 * CUDA backend failed STAGE (ERROR); running on the CPU"; under
 * backend=cuda NULL and *error = "backend=cuda: the CUDA backend failed
 * STAGE: ERROR". */
char *fer_backend_device_failed (fer_backend_type requested, const char *stage,
    GError *dev_error, GError **error);
/* Tells be that a self-test on it passed (ops->selftest_passed). */
void fer_backend_selftest_passed (fer_backend *be);

/* Fault injection (backend_fault.c, any build): FER_CUDA_FAULT=init,
 * selftest, runtime or nan stands in for the CUDA backend an imitation of
 * a device that fails at that point (nan: answers NaN). */
typedef enum
{
  FER_FAULT_NONE,
  FER_FAULT_INIT,     /* the backend does not start */
  FER_FAULT_SELFTEST, /* its probabilities differ from the CPU's */
  FER_FAULT_RUNTIME,  /* every forward after the self-test fails */
  FER_FAULT_NAN,      /* its probabilities and losses are NaN */
} fer_fault_point;

/* FER_CUDA_FAULT's value: FER_FAULT_NONE when unset or empty; FALSE with
 * FER_ERROR_INVALID_ARGUMENT for anything but init, selftest, runtime,
 * nan. */
gboolean fer_fault_point_from_env (fer_fault_point *point, GError **error);
/* The imitation (for FER_FAULT_INIT: NULL with the error it imitates). */
fer_backend *fer_backend_fault_new (
    fer_fault_point point, int threads, GError **error);

/* The self-test's tolerance for inference in exact FP32 (the CUDA
 * backend's default math): see docs/architecture.md, "Fail-safe". */
#define FER_SELFTEST_TOLERANCE_FP32 1e-3
/* ... and in reduced-precision math (TF32; training's self-test too). */
#define FER_SELFTEST_TOLERANCE_REDUCED 3e-2
/* ... and with half-precision convolutions (FER_CUDA_MATH=fp16): the same
 * 11-bit significand as TF32, plus one rounding of each convolution's
 * output to half (docs/architecture.md, "Fail-safe"). */
#define FER_SELFTEST_TOLERANCE_FP16 3e-2

#endif
