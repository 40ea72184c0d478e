/* CPU kernels (private), by op family: each family's file (cpu/<family>.c)
 * holds its forward and backward passes side by side, and also the backend
 * table's entries for them (cpu/backend_cpu.h). Argument order: outputs,
 * inputs, then sizes. Activations are NHWC, i.e. (rows, C) with
 * rows = n*h*w; conv weights (Cout, KH, KW, Cin); linear weights (out, in).
 * The kernels know nothing of backends; only those that allocate report
 * errors.
 *
 * Contract (llm.c's): parameter gradients (dweight, dbias, dgamma, dbeta)
 * ACCUMULATE with +=, so a caller zeroes them once per step; activation
 * gradients (dinp) and outputs are OVERWRITTEN. Reductions that decide
 * numerics (batch statistics, loss) run in double, as PyTorch's CPU kernels
 * accumulate float in double. */
#ifndef FER_CPU_OPS_H
#define FER_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <fer/image.h>

#include "conv-shape.h"

/* for (size_t i = 0; i < n; i++) body; split into a part whose length is a
 * multiple of 8 and a tail. GCC's -O2 vectoriser ("very cheap" cost model)
 * only takes loops that need no scalar epilogue and no run-time alias
 * checks, so in a function with restrict-qualified pointers (G_NO_INLINE:
 * inlining into a caller without restrict loses it) the first part runs in
 * SIMD; that is about 10% of a training step at 48x48. */
#define FER_FOR_VEC(i, n, body)                                                \
  do {                                                                         \
    const size_t fer_n8_ = (size_t) (n) & ~(size_t) 7;                         \
    for (size_t i = 0; i < fer_n8_; i++) {                                     \
      body;                                                                    \
    }                                                                          \
    for (size_t i = fer_n8_; i < (size_t) (n); i++) {                          \
      body;                                                                    \
    }                                                                          \
  } while (0)

/* ---- conv.c (on our thread team, cpu/workers.h, and micro-kernels,
 * cpu/gemm.h) ---- */

typedef struct fer_cpu_workers fer_cpu_workers;

/* Inference conv weights are packed once (at load time) into panels of
 * FER_CPU_NR output channels, see cpu/gemm.h. Floats of the packed
 * weight: */
size_t fer_cpu_conv2d_weight_floats (int cout, int k, int cin);
/* packed (fer_cpu_conv2d_weight_floats) from weight (Cout, K, K, Cin). */
void fer_cpu_conv2d_pack_weight (
    float *packed, const float *weight, int cout, int k, int cin);
/* The same panels as IEEE halves (round to nearest even): packed holds
 * fer_cpu_conv2d_weight_floats values. FALSE only without memory. */
gboolean fer_cpu_conv2d_pack_weight_f16 (uint16_t *packed, const float *weight,
    int cout, int k, int cin, GError **error);

/* The convolution's scratch (schedule, packed pixels per thread, the
 * training weights packed afresh): grows to the largest convolution seen,
 * then is reused. */
typedef struct fer_cpu_conv_scratch fer_cpu_conv_scratch;
fer_cpu_conv_scratch *fer_cpu_conv_scratch_new (void);
/* Accepts NULL. */
void fer_cpu_conv_scratch_free (fer_cpu_conv_scratch *scratch);
/* Which algorithm the training convolutions take for 3 x 3, stride-1,
 * pad-1 shapes: AUTO (the default) takes Winograd F(2x2, 3x3) when both
 * channel counts are at least 16 and the map at least 4 x 4, else the
 * direct convolution; the others force one (for tests and benchmarks; the
 * environment variable FER_CPU_CONV=direct|winograd sets it for a new
 * scratch). Returns the value now in effect. */
typedef enum
{
  FER_CPU_CONV_AUTO,
  FER_CPU_CONV_DIRECT,
  FER_CPU_CONV_WINOGRAD,
} fer_cpu_conv_algo;
fer_cpu_conv_algo fer_cpu_conv_scratch_set_algo (
    fer_cpu_conv_scratch *scratch, fer_cpu_conv_algo algo);
/* For tests: floats of packed pixels each thread works through at a time
 * (0: the default). Returns the value in effect. */
size_t fer_cpu_conv_scratch_set_chunk (
    fer_cpu_conv_scratch *scratch, size_t floats);

/* out (n, oh, ow, cout) = act(conv(inp (n, h, w, cin), weight) + bias
 * [+ residual]); weight from fer_cpu_conv2d_pack_weight, bias (cout) and
 * residual (like out) may be NULL. Work is split across `workers` (NULL:
 * this thread only). FALSE only when scratch cannot grow. */
gboolean fer_cpu_conv2d_forward (float *out, const float *inp,
    const float *weight, const float *bias, const float *residual,
    const fer_conv_shape *s, gboolean relu, fer_cpu_conv_scratch *scratch,
    fer_cpu_workers *workers, GError **error);
/* The same with a weight of halves (fer_cpu_conv2d_pack_weight_f16),
 * converted to float32 in registers, and out = act(scale * conv + bias
 * [+ residual]) with scale (cout) per output channel, or NULL for 1. */
gboolean fer_cpu_conv2d_forward_f16 (float *out, const float *inp,
    const uint16_t *weight, const float *scale, const float *bias,
    const float *residual, const fer_conv_shape *s, gboolean relu,
    fer_cpu_conv_scratch *scratch, fer_cpu_workers *workers, GError **error);

/* Whether a weight from the backend's conv2d_prepare_weight runs as
 * Winograd F(2x2, 3x3) (its transformed weights) rather than directly. */
gboolean fer_cpu_conv2d_prepared_is_winograd (const float *prepared);

/* Training: out (n, oh, ow, cout) = conv(inp (n, h, w, cin), weight (cout,
 * k, k, cin)), no bias (ResNet's convs have none; BatchNorm follows). The
 * weight is packed into `scratch` and the work split across `workers`
 * (NULL: this thread only). FALSE only when scratch cannot grow. */
gboolean fer_cpu_conv2d_forward_train (float *out, const float *inp,
    const float *weight, const fer_conv_shape *s, fer_cpu_conv_scratch *scratch,
    fer_cpu_workers *workers, GError **error);

/* Floats of workspace (col) one image needs for the input gradient (0:
 * stride-1 convs need none). */
size_t fer_cpu_conv2d_train_col_per_image (const fer_conv_shape *s);

/* dinp (n, h, w, cin) = conv^T(dout, weight), overwritten (NULL: not
 * wanted, e.g. for the network input); dweight (cout, k, k, cin) +=
 * dout^T . im2col(inp). col: workspace of col_cap >= col_per_image floats;
 * the input gradient runs in chunks of images that fit. FALSE when scratch
 * cannot grow or col_cap is too small. */
gboolean fer_cpu_conv2d_backward (float *dinp, float *dweight,
    const float *dout, const float *inp, const float *weight,
    const fer_conv_shape *s, float *col, size_t col_cap,
    fer_cpu_conv_scratch *scratch, fer_cpu_workers *workers, GError **error);

/* ---- pool.c ---- */

/* out (n, oh, ow, c) = k x k max over inp (n, h, w, c); padding never wins. */
void fer_cpu_maxpool2d_forward (float *out, const float *inp, int n, int h,
    int w, int c, int k, int stride, int pad);
/* dinp (n, h, w, c) overwritten: each output's gradient goes to the first
 * maximum of its window in (ky, kx) scan order, as PyTorch's CPU kernel
 * picks it (ties happen after ReLU: all-zero windows). */
void fer_cpu_maxpool2d_backward (float *dinp, const float *dout,
    const float *inp, int n, int h, int w, int c, int k, int stride, int pad);

/* out (n, c) = mean over hw of inp (n, hw, c). */
void fer_cpu_avgpool_forward (
    float *out, const float *inp, int n, int hw, int c);
/* dinp (n, hw, c) = dout (n, c) / hw. */
void fer_cpu_avgpool_backward (
    float *dinp, const float *dout, int n, int hw, int c);

/* ---- linear.c ---- */

/* out (n, nout) = act(inp (n, nin) . weight (nout, nin)^T + bias (nout)). */
void fer_cpu_linear_forward (float *out, const float *inp, const float *weight,
    const float *bias, int n, int nin, int nout, gboolean relu);
/* dinp (n, nin) = dout (n, nout) . weight (nout, nin), overwritten (NULL:
 * not wanted); dweight (nout, nin) += dout^T . inp; dbias (nout) += column
 * sums of dout (NULL: no bias). */
void fer_cpu_linear_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight, int n, int nin,
    int nout);

/* ---- batchnorm.c: BatchNorm2d over NHWC (rows = n*h*w) and BatchNorm1d
 * over (n, c) are the same op. ---- */

/* Training mode: batch mean and biased variance normalise;
 * out = act(gamma * (inp - mean) * rstd + beta [+ residual]).
 * save_mean, save_rstd (c): for the backward pass. running_mean/var (c),
 * when not NULL, move toward the batch mean and the UNBIASED variance:
 * r = (1 - momentum) * r + momentum * stat (PyTorch). out may not alias inp. */
void fer_cpu_batchnorm_forward_train (float *out, float *save_mean,
    float *save_rstd, float *running_mean, float *running_var, const float *inp,
    const float *gamma, const float *beta, const float *residual, int rows,
    int c, float momentum, float eps, gboolean relu);
/* Evaluation mode: the running statistics normalise. */
void fer_cpu_batchnorm_forward_eval (float *out, const float *inp,
    const float *gamma, const float *beta, const float *running_mean,
    const float *running_var, const float *residual, int rows, int c, float eps,
    gboolean relu);
/* dinp (rows, c) overwritten; dgamma, dbeta (c) +=. dout is the gradient of
 * the BatchNorm output (before any ReLU: apply relu_backward first). dinp
 * may not alias dout or inp. */
void fer_cpu_batchnorm_backward (float *dinp, float *dgamma, float *dbeta,
    const float *dout, const float *inp, const float *save_mean,
    const float *save_rstd, const float *gamma, int rows, int c);

/* ---- activation.c: ReLU, residual add, dropout ---- */

/* dinp = dout * (out > 0), out being the ReLU's output; dinp may be dout. */
void fer_cpu_relu_backward (
    float *dinp, const float *dout, const float *out, size_t n);
/* Residual add: out = a + b (out may be a or b). Its backward is the
 * identity into both branches, and summing two branches' gradients is this
 * same op. */
void fer_cpu_add (float *out, const float *a, const float *b, size_t n);
/* Dropout with a precomputed mask (0 or 1/(1-p), inverted scaling):
 * out = inp * mask, and dinp = dout * mask. The mask comes from the
 * trainer's generator (fer_dropout_mask in train.c), so every backend drops
 * the same units. Outputs may alias inputs. */
void fer_cpu_dropout_forward (
    float *out, const float *inp, const float *mask, size_t n);
void fer_cpu_dropout_backward (
    float *dinp, const float *dout, const float *mask, size_t n);

/* ---- softmax.c ---- */

/* probs (n_faces, k) = per face, the mean over its `views` consecutive rows
 * of logits (n_faces * views, k) of their softmax (softmax-average.h);
 * probs may not alias logits. */
void fer_cpu_softmax_average (
    float *probs, const float *logits, int n_faces, int views, int k);

/* ---- loss.c ---- */

/* Softmax cross-entropy as torch.nn.functional.cross_entropy(logits, y,
 * weight=class_weights, label_smoothing=smoothing) (reduction "mean": sum of
 * the per-sample losses divided by the sum of the target classes' weights),
 * each per-sample loss times (1 - p_target)^focal_gamma when focal_gamma > 0.
 * With y_b: lam * L(y_a) + (1 - lam) * L(y_b) (mixup/cutmix), each term
 * normalised by its own weight sum. class_weights (k) may be NULL (all 1).
 * loss: the scalar; dlogits (n, k), overwritten with d loss / d logits (NULL:
 * loss only). A label set whose target weights sum to 0 contributes nothing
 * (PyTorch would return NaN). */
void fer_cpu_softmax_xent (float *loss, float *dlogits, const float *logits,
    const int *y_a, const int *y_b, float lam, const float *class_weights,
    int n, int k, float smoothing, float focal_gamma, const float *soft,
    float soft_weight);

/* ---- optimizer.c: one loop over the whole parameter buffer ---- */

/* torch.optim.Adam (decoupled FALSE: weight decay added to the gradient) or
 * AdamW (decoupled TRUE: params *= 1 - lr * weight_decay first), PyTorch
 * 1.13's single-tensor arithmetic, bias corrections for `step` (>= 1, the
 * step being taken). m, v: first and second moments. */
void fer_cpu_adam_update (float *params, float *m, float *v, const float *grads,
    size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
    int64_t step, gboolean decoupled);
/* torch.optim.SGD (dampening 0): weight decay into the gradient; with
 * momentum, buf = grad on the first step, else momentum * buf + grad; the
 * update direction is buf, or grad + momentum * buf with Nesterov. buf may
 * be NULL when momentum is 0. */
void fer_cpu_sgd_update (float *params, float *buf, const float *grads,
    size_t n, float lr, float momentum, float weight_decay, gboolean nesterov,
    gboolean first_step);
/* The weights' moving average: ema += (1 - decay) (x - ema) (torch's
 * lerp_ form), 1 - decay rounded to float once. */
void fer_cpu_ema_update (float *ema, const float *x, size_t n, float decay);

/* ---- preprocess.c ---- */

/* out (n, S, S, C) NHWC = fer_preprocess of views[0..n) of img for spec.
 * planar: (C, S, S) floats for fer_preprocess's NCHW output (NULL when C is
 * 1: then it writes straight into out). scratch may be NULL, as for
 * fer_preprocess. FALSE with fer_preprocess's error. */
gboolean fer_cpu_preprocess (float *out, float *planar, const fer_image *img,
    const fer_view *views, int n, const fer_input_spec *spec,
    fer_scratch *scratch, GError **error);

#endif
