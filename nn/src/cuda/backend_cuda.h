/* The CUDA backend's private header: its state, the check macros, and the
 * entry points its files share. Only cuda/ includes it (and tests that
 * reach into the backend); CUDA types never leave nn/src/cuda.
 *
 * Every CUDA runtime, cuBLAS and cuDNN call goes through CUDA_OK, CUBLAS_OK
 * or CUDNN_OK: a failure becomes a GError (FER_ERROR_BACKEND, or
 * FER_ERROR_NOMEM for out-of-memory) naming the status, the statement and
 * its file and line, and the macro is FALSE; the *_CHECK forms return FALSE
 * from the calling function. Nothing here exits or aborts. The functions
 * using them have a `GError **error` in scope. */
#ifndef FER_CUDA_BACKEND_H
#define FER_CUDA_BACKEND_H

#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <cudnn.h>

#include "backend.h"
#include "cuda/kernels.h"
#include "cuda/plan.h"

typedef struct
{
  fer_backend base;
  int device;
  fer_cuda_math math;
  gboolean find_algorithms; /* FER_CUDA_CONV_FIND=1: measure, not rank */
  cudaStream_t stream;
  cublasHandle_t blas;
  cudnnHandle_t dnn;

  GHashTable *conv_plans; /* fer_cuda_conv_key -> cuda_conv_plan */
  void *workspace;        /* cuDNN's, one for all convolutions, grows */
  size_t workspace_bytes;
  void *halves; /* FER_CUDA_MATH=fp16: a convolution's input and output */
  size_t halves_bytes;
  void *scratch; /* batch-norm partial sums, the loss, labels */
  size_t scratch_bytes;
  void *frame; /* preprocess: the frame's planes and taps */
  size_t frame_bytes;
  void *taps_host; /* preprocess: the taps, built on the host */
  size_t taps_host_bytes;

  /* Pinned host memory through which every upload and download goes,
   * reused; `staging_done` is recorded after the last copy out of it. */
  void *staging;
  size_t staging_bytes;
  cudaEvent_t staging_done;
} cuda_backend;

gboolean fer_cuda_check_runtime (cudaError_t status, const char *stmt,
    const char *file, int line, GError **error);
gboolean fer_cuda_check_cublas (cublasStatus_t status, const char *stmt,
    const char *file, int line, GError **error);
gboolean fer_cuda_check_cudnn (cudnnStatus_t status, const char *stmt,
    const char *file, int line, GError **error);

#define CUDA_OK(stmt)                                                          \
  fer_cuda_check_runtime ((stmt), #stmt, __FILE__, __LINE__, error)
#define CUBLAS_OK(stmt)                                                        \
  fer_cuda_check_cublas ((stmt), #stmt, __FILE__, __LINE__, error)
#define CUDNN_OK(stmt)                                                         \
  fer_cuda_check_cudnn ((stmt), #stmt, __FILE__, __LINE__, error)
#define CUDA_CHECK(stmt)                                                       \
  do {                                                                         \
    if (!CUDA_OK (stmt))                                                       \
      return FALSE;                                                            \
  } while (0)
#define CUBLAS_CHECK(stmt)                                                     \
  do {                                                                         \
    if (!CUBLAS_OK (stmt))                                                     \
      return FALSE;                                                            \
  } while (0)
#define CUDNN_CHECK(stmt)                                                      \
  do {                                                                         \
    if (!CUDNN_OK (stmt))                                                      \
      return FALSE;                                                            \
  } while (0)
/* A launch of our kernels (kernels.h) from a table entry: the backend cb's
 * device made current, then `call`, whose launch error is checked. */
#define CUDA_LAUNCH_OK(cb, call)                                               \
  (fer_cuda_enter ((cb), error) && CUDA_OK (call))

/* FER_CUDA_MATH's value; FALSE with FER_ERROR_INVALID_ARGUMENT naming
 * the value and FER_CUDA_MATH_VALUES for anything else. */
gboolean fer_cuda_math_from_env (fer_cuda_math *math, GError **error);

/* The backend's table, for tests that check it is complete without a
 * device to make a backend on. */
const fer_backend_ops *fer_cuda_backend_ops (void);

/* Makes the backend's device current for the calling thread (the element
 * loads the model in one thread and streams in another). */
gboolean fer_cuda_enter (cuda_backend *cb, GError **error);
/* The scratch buffer, grown to at least `bytes`. */
void *fer_cuda_scratch (cuda_backend *cb, size_t bytes, GError **error);
/* Grows *buf (device memory) to hold `bytes`; the stream is drained first,
 * since kernels queued on it may still use the old buffer. */
gboolean fer_cuda_grow_device (
    cuda_backend *cb, void **buf, size_t *have, size_t bytes, GError **error);
/* Host <-> device copies of `bytes` through the pinned staging buffer. */
gboolean fer_cuda_upload_bytes (
    cuda_backend *cb, void *dst, const void *src, size_t bytes, GError **error);
gboolean fer_cuda_download_bytes (
    cuda_backend *cb, void *dst, const void *src, size_t bytes, GError **error);

/* The table's entries, each in its op family's file next to the calls
 * it makes (cuDNN, cuBLAS, our kernels). */

/* conv.c: cuDNN's convolutions */
fer_op_conv2d_prepare_weight fer_cuda_op_conv2d_prepare_weight;
fer_op_conv2d_forward fer_cuda_op_conv2d_forward;
fer_op_conv2d_train_workspace fer_cuda_op_conv2d_train_workspace;
fer_op_conv2d_forward_train fer_cuda_op_conv2d_forward_train;
fer_op_conv2d_backward fer_cuda_op_conv2d_backward;
void fer_cuda_conv_plan_free (gpointer plan);
/* For tests, without a device: what cuDNN reads back from the descriptors
 * a plan for s, kind and math gets: the output's (n, c, h, w) and their
 * strides, the data types, the filter's layout, the math type. */
typedef struct
{
  int dims[4], strides[4];
  cudnnDataType_t x_type, y_type, w_type, compute_type;
  gboolean w_nhwc;
  cudnnMathType_t math_type;
} fer_cuda_conv_layout;
gboolean fer_cuda_conv_describe (const fer_conv_shape *s,
    fer_cuda_conv_kind kind, fer_cuda_math math, fer_cuda_conv_layout *out,
    GError **error);
/* The weights (Cout, K, K, Cin) folded with scale (NULL: 1) as the FP32
 * path folds them, float (w * scale), then rounded to the nearest half
 * (FER_CUDA_MATH=fp16). FALSE (FER_ERROR_UNSUPPORTED) when one is beyond
 * half's range. */
gboolean fer_cuda_weight_halves (uint16_t *dst, const float *weight,
    const double *scale, int cout, int k, int cin, GError **error);

/* pool.c */
fer_op_maxpool2d_forward fer_cuda_op_maxpool2d_forward;
fer_op_maxpool2d_backward fer_cuda_op_maxpool2d_backward;
fer_op_avgpool_forward fer_cuda_op_avgpool_forward;
fer_op_avgpool_backward fer_cuda_op_avgpool_backward;

/* linear.c: cuBLAS's products */
fer_op_linear_forward fer_cuda_op_linear_forward;
fer_op_linear_backward fer_cuda_op_linear_backward;

/* batchnorm.c */
fer_op_batchnorm_forward_train fer_cuda_op_batchnorm_forward_train;
fer_op_batchnorm_forward_eval fer_cuda_op_batchnorm_forward_eval;
fer_op_batchnorm_backward fer_cuda_op_batchnorm_backward;

/* activation.c */
fer_op_relu_backward fer_cuda_op_relu_backward;
fer_op_add fer_cuda_op_add;
fer_op_dropout_forward fer_cuda_op_dropout_forward;
fer_op_dropout_backward fer_cuda_op_dropout_backward;

/* softmax.c */
fer_op_softmax_average fer_cuda_op_softmax_average;

/* loss.c */
fer_op_softmax_xent fer_cuda_op_softmax_xent;

/* optimizer.c */
fer_op_adam_update fer_cuda_op_adam_update;
fer_op_sgd_update fer_cuda_op_sgd_update;
fer_op_ema_update fer_cuda_op_ema_update;
fer_op_zero fer_cuda_op_zero;

/* preprocess.c: the input batch from a frame, on the device. The host
 * part (no CUDA call; tests run it): validation, the frame's layout, the
 * views' filter taps (kernels.h: one set per distinct axis) in *buf, grown
 * to *cap bytes so that a steady stream of calls allocates nothing: the
 * ints (x axes, y axes, views), zeros up to a multiple of 16 bytes, the
 * weights (x, y). Its taps_bytes go up in one copy, just after the frame,
 * and fer_cuda_taps_rebase points the taps there. */
typedef struct
{
  fer_cuda_frame frame; /* offsets: where upload puts each plane */
  fer_cuda_norm norm;
  size_t plane_bytes[3];
  size_t frame_bytes;
  int n_x_axes, n_y_axes;
  size_t n_ints, n_floats;
  fer_cuda_taps taps; /* into *buf, which taps.x_axes starts */
  size_t taps_bytes;
} fer_cuda_batch_plan;

/* t's pointers moved from the copy of its buffer at `from` to the one at
 * `to`. */
void fer_cuda_taps_rebase (fer_cuda_taps *t, const void *from, const void *to);

gboolean fer_cuda_batch_plan_make (fer_cuda_batch_plan *p, void **buf,
    size_t *cap, const fer_image *img, const fer_view *views, int n,
    const fer_input_spec *spec, GError **error);
fer_op_preprocess fer_cuda_op_preprocess;

#endif
