/* libfernn: training the ResNet-18 (the graph of model.h with BatchNorm in
 * training mode, backward passes, loss and optimizer).
 *
 * A fer_trainer owns one network's parameters, their gradients and the
 * optimizer state, all in one allocation each with named views (so zeroing,
 * updating and saving are single loops). It consumes batches that the
 * caller has already decoded, augmented and normalised; data loading,
 * augmentation, schedules and reports live in the fer-train tool.
 *
 * Loss (matches torch.nn.functional.cross_entropy(weight=w,
 * label_smoothing=eps), reduction "mean", i.e. divided by the sum of the
 * target classes' weights; with focal_gamma > 0, the focal variant
 * (1 - p_t)^gamma * CE per sample, averaged the same way). Mixup/cutmix: the
 * caller mixes the images and passes both label sets and lambda; the loss is
 * lam * L(y_a) + (1 - lam) * L(y_b), as in the mixup paper's code.
 *
 * Determinism: for a given seed, thread count and sequence of calls, results
 * are bit-identical (dropout masks come from the trainer's own generator).
 *
 * Thread safety: every call on a fer_trainer, the accessors included, uses
 * or changes its buffers, backend, step count or generator, so calls on one
 * trainer must not overlap. Distinct trainers are independent and may run
 * in different threads at once; fer_train_config_init shares no state. */
#ifndef FER_TRAIN_H
#define FER_TRAIN_H

#include <fer/model.h>

G_BEGIN_DECLS

typedef enum
{
  FER_OPTIMIZER_ADAM,
  FER_OPTIMIZER_ADAMW,
  FER_OPTIMIZER_SGD, /* momentum, optionally Nesterov */
} fer_optimizer;

typedef struct
{
  fer_arch arch;
  int input_size; /* side of the batches' images (crop size when cropping) */
  float dropout;  /* mlp head dropout probability (PyTorch: fc.3) */

  fer_optimizer optimizer;
  float lr;           /* initial; fer_trainer_set_lr changes it */
  float weight_decay; /* Adam/SGD: L2 added to the gradient; AdamW: decoupled */
  float momentum;     /* SGD */
  gboolean nesterov;  /* SGD */
  float beta1, beta2, eps; /* Adam/AdamW (PyTorch defaults 0.9, 0.999, 1e-8) */

  float label_smoothing; /* 0..1 */
  float focal_gamma;     /* 0 = plain cross-entropy */
  const float
      *class_weights; /* n_classes weights, or NULL for all 1 (copied) */

  fer_backend_type backend;
  int device_id;
  int threads;
  uint64_t seed; /* initialisation (when no init model) and dropout */

  /* An exponential moving average of the weights, 0 (off, the default) or
   * 0 < ema_decay < 1: see fer_trainer_swap_ema. Taken from reserved[0],
   * the struct's size and layout are those of 0.1's. */
  float ema_decay;

  void *reserved[7]; /* for later settings; zeroed by the init function */
} fer_train_config;

/* Fills a config with PyTorch's defaults (Adam, lr 1e-3, betas 0.9/0.999,
 * eps 1e-8, no decay, no smoothing) for `arch` at input_size 48. Start
 * every config here, then set fields: settings added in later versions
 * take their defaults from it. */
FER_API void fer_train_config_init (
    fer_train_config *cfg, const fer_arch *arch);

typedef struct fer_trainer fer_trainer;

/* init_model: a .safetensors model to start from (its tensors must match
 * cfg->arch), or NULL for a fresh initialisation as fer_model_write_random
 * does from cfg->seed. */
FER_API fer_trainer *fer_trainer_new (
    const fer_train_config *cfg, const char *init_model, GError **error);
FER_API void fer_trainer_free (fer_trainer *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (fer_trainer, fer_trainer_free)

/* Fail-safe (see fer_model_fallback_reason in model.h): on the CUDA
 * backend, fer_trainer_new first runs one training forward and backward
 * pass on a fixed batch on the device and on the CPU and compares loss,
 * logits and gradients (docs/architecture.md, "Fail-safe"); the trainer
 * is left as if it had not run. Under backend=auto a device that fails to
 * start or this self-test gives a CPU trainer, and
 * fer_trainer_fallback_reason says why (one line; NULL otherwise); under
 * backend=cuda it is fer_trainer_new's error. A device failure during
 * training is the failing call's error under every backend (the device's
 * parameters and moments cannot be trusted after it: resume from the
 * last checkpoint, e.g. fer-train --resume --backend cpu).
 * fer_trainer_backend: the backend the trainer runs on (CPU or CUDA). */
FER_API fer_backend_type fer_trainer_backend (const fer_trainer *t);
FER_API const char *fer_trainer_fallback_reason (const fer_trainer *t);

FER_API void fer_trainer_set_lr (fer_trainer *t, float lr);
FER_API float fer_trainer_get_lr (const fer_trainer *t);
FER_API int64_t fer_trainer_step_count (const fer_trainer *t);

/* The moving average of the weights (cfg->ema_decay > 0), as timm's
 * ModelEmaV3 keeps it: after every step, for every learnable parameter
 * and BatchNorm running statistic, ema += (1 - d) (x - ema) with the
 * warmed-up decay d = min(ema_decay, (1 + step) / (10 + step)) (step: the
 * steps taken before this one; TensorFlow's ExponentialMovingAverage with
 * num_updates), so early averages are not dominated by the random
 * initialisation. The average starts at the initial weights.
 *
 * fer_trainer_swap_ema exchanges the live weights and the average: then
 * fer_trainer_eval, fer_trainer_save_model and fer_trainer_param_get see
 * the average, and fer_trainer_step refuses (training the average would
 * be a mistake) until a second swap puts the live weights back. A pointer
 * exchange: no copy. Fails (naming the reason) on a trainer without EMA.
 * fer_trainer_ema_swapped says whether the average is swapped in. */
FER_API gboolean fer_trainer_has_ema (const fer_trainer *t);
FER_API gboolean fer_trainer_swap_ema (fer_trainer *t, GError **error);
FER_API gboolean fer_trainer_ema_swapped (const fer_trainer *t);

/* One optimisation step on a batch: x is n x C x S x S (NCHW, normalised),
 * y_a the labels; y_b and lam for mixup/cutmix (y_b NULL: lam ignored).
 * Writes the batch's mean loss and, when logits is not NULL, the n x K
 * training-mode logits (for training accuracy). */
FER_API gboolean fer_trainer_step (fer_trainer *t, const float *x,
    const int *y_a, const int *y_b, float lam, int n, float *loss,
    float *logits, GError **error);

/* The same step with knowledge distillation (Hinton et al. 2015, arXiv
 * 1503.02531, at temperature 1): soft is n x K target distributions (a
 * teacher's probabilities for these images, mixed as lam q_a + (1 - lam)
 * q_b under mixup; each row non-negative, summing to 1), and the loss is
 * (1 - soft_weight) x the configured loss + soft_weight x the mean over the
 * batch of -sum_c soft_c log p_c (not class-weighted, not smoothed, no
 * focal factor). soft_weight in 0..1; 0 (soft may be NULL) is
 * fer_trainer_step. */
FER_API gboolean fer_trainer_step_distill (fer_trainer *t, const float *x,
    const int *y_a, const int *y_b, float lam, const float *soft,
    float soft_weight, int n, float *loss, float *logits, GError **error);

/* Evaluation-mode forward (BatchNorm running statistics, no dropout); any n,
 * run in chunks of the largest batch seen so far (64 before any step). */
FER_API gboolean fer_trainer_eval (
    fer_trainer *t, const float *x, int n, float *logits, GError **error);

/* The loss above without a trainer or gradients, on logits the caller has
 * (e.g. fer_trainer_eval's, for a validation loss): n x K logits (K =
 * cfg->arch.n_classes) against labels y with cfg's class weights, label
 * smoothing and focal exponent, the backends' per-sample formula in double,
 * summed and divided by the sum of the targets' weights. *loss is NAN when
 * that sum is 0 (n = 0, or only targets of weight 0), where a training step
 * counts 0. Fails on a label outside 0..K-1. Reads only its arguments. */
FER_API gboolean fer_train_loss (const fer_train_config *cfg,
    const float *logits, const int *y, int n, double *loss, GError **error);

/* The loss and the gradients of every parameter for one batch, without an
 * update (for tests against PyTorch): grads receive the parameter
 * gradients in fer_trainer_param order. Training-mode forward (batch
 * statistics, dropout), but the BatchNorm running statistics are left as
 * they are, so that a following fer_trainer_step on the same batch sees
 * what PyTorch's single training forward would.
 * Parameters are numbered as PyTorch's model.named_parameters() lists them
 * (torchvision names, running statistics excluded); param_get and
 * param_grad write PyTorch's layout (conv weights Cout x Cin x KH x KW). */
FER_API int fer_trainer_n_params (const fer_trainer *t);
FER_API const char *fer_trainer_param_name (const fer_trainer *t, int i);
FER_API int64_t fer_trainer_param_numel (const fer_trainer *t, int i);
FER_API gboolean fer_trainer_param_get (
    fer_trainer *t, int i, float *out, GError **error);
FER_API gboolean fer_trainer_param_grad (
    fer_trainer *t, int i, float *out, GError **error);
FER_API gboolean fer_trainer_forward_backward (fer_trainer *t, const float *x,
    const int *y_a, const int *y_b, float lam, int n, float *loss,
    GError **error);

/* The network as a model file (torchvision names, running statistics,
 * metadata as in fer_model_write_random plus the NULL-terminated key/value
 * list `metadata`), written atomically. dtype F32 or F16. */
FER_API gboolean fer_trainer_save_model (fer_trainer *t, const char *path,
    fer_dtype dtype, const char *const *metadata, GError **error);
/* Optimizer state (moments, step count, lr, dropout generator) beside the
 * model, so that resume continues bit-for-bit. The file is safetensors:
 * torch.optim's state names per parameter ("<name>.exp_avg",
 * "<name>.exp_avg_sq"; SGD with momentum "<name>.momentum_buffer"), F32,
 * PyTorch layout, and metadata fer.state.{format,optimizer,step,lr,n_params,
 * rng}. With EMA also "ema.<name>" for every tensor of the model file
 * (learnable and running statistics) and fer.state.ema_decay. load_state
 * refuses a file whose optimizer, parameter count or tensor names/shapes
 * differ from this trainer's, or that holds an average this trainer does
 * not keep, naming the file; a state without an average loaded into a
 * trainer with EMA starts the average at the current weights (EMA turned
 * on for a run that had none). Neither works while the average is
 * swapped in. */
FER_API gboolean fer_trainer_save_state (
    fer_trainer *t, const char *path, GError **error);
FER_API gboolean fer_trainer_load_state (
    fer_trainer *t, const char *path, GError **error);

G_END_DECLS

#endif
