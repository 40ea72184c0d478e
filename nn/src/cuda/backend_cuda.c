/* The CUDA backend object and its table: device memory, one stream per
 * backend on which every op is queued in order. The ops are in their
 * families' files (backend_cuda.h): cuDNN for the convolutions (conv.c),
 * cuBLAS for the linear layers (linear.c), our kernels for the rest
 * (<family>.c calling <family>.cu).
 * Host <-> device copies go through one pinned staging buffer, reused, so
 * a steady stream of same-sized batches allocates nothing; an upload
 * returns once its data is in the staging buffer (the copy overlaps the
 * work queued before it), a download waits for the stream.
 *
 * Device selection: fer_backend_cuda_new fails with FER_ERROR_NO_DEVICE
 * ("no CUDA device ...") when the runtime reports no device, or when
 * cudaGetDeviceCount fails (no driver, a driver older than the runtime,
 * CUDA_VISIBLE_DEVICES hiding them all); backend.c turns that into the
 * CPU backend for backend=auto. */
#include "cuda/backend_cuda.h"

#include <string.h>

/* Largest pinned staging buffer: bigger copies (the weights at load time)
 * go through it in pieces. */
#define STAGING_MAX_BYTES ((size_t) 16 << 20)

/* ------------------------------------------------------------------ */
/* Checks                                                              */

static gboolean
fail (int code, const char *what, const char *name, const char *text,
    const char *stmt, const char *file, int line, GError **error)
{
  g_set_error (error, FER_ERROR, code, "%s error %s (%s) in `%s` at %s:%d",
      what, name, text, stmt, file, line);
  return FALSE;
}

gboolean
fer_cuda_check_runtime (cudaError_t status, const char *stmt, const char *file,
    int line, GError **error)
{
  if (status == cudaSuccess)
    return TRUE;
  /* clear the runtime's last-error slot, so that the next check does not
   * report this failure again (sticky errors stay regardless) */
  (void) cudaGetLastError ();
  return fail (
      status == cudaErrorMemoryAllocation ? FER_ERROR_NOMEM : FER_ERROR_BACKEND,
      "CUDA", cudaGetErrorName (status), cudaGetErrorString (status), stmt,
      file, line, error);
}

gboolean
fer_cuda_check_cublas (cublasStatus_t status, const char *stmt,
    const char *file, int line, GError **error)
{
  if (status == CUBLAS_STATUS_SUCCESS)
    return TRUE;
  return fail (status == CUBLAS_STATUS_ALLOC_FAILED ? FER_ERROR_NOMEM
                                                    : FER_ERROR_BACKEND,
      "cuBLAS", cublasGetStatusName (status), cublasGetStatusString (status),
      stmt, file, line, error);
}

gboolean
fer_cuda_check_cudnn (cudnnStatus_t status, const char *stmt, const char *file,
    int line, GError **error)
{
  char detail[256] = "";
  if (status == CUDNN_STATUS_SUCCESS)
    return TRUE;
  cudnnGetLastErrorString (detail, sizeof detail);
  if (!*detail)
    g_strlcpy (detail, "no detail", sizeof detail);
  /* cuDNN 9: host and device allocation failures (ALLOC_FAILED is the
   * deprecated name of the host one) */
  const gboolean nomem =
      status == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED
      || status == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED;
  return fail (nomem ? FER_ERROR_NOMEM : FER_ERROR_BACKEND, "cuDNN",
      cudnnGetErrorString (status), detail, stmt, file, line, error);
}

/* ------------------------------------------------------------------ */
/* Memory                                                              */

gboolean
fer_cuda_enter (cuda_backend *cb, GError **error)
{
  return CUDA_OK (cudaSetDevice (cb->device));
}

gboolean
fer_cuda_grow_device (
    cuda_backend *cb, void **buf, size_t *have, size_t bytes, GError **error)
{
  size_t want = fer_cuda_grow_bytes (*have, bytes);
  if (want == 0)
    return TRUE;
  CUDA_CHECK (cudaStreamSynchronize (cb->stream));
  CUDA_CHECK (cudaFree (*buf));
  *buf = NULL;
  *have = 0;
  CUDA_CHECK (cudaMalloc (buf, want));
  *have = want;
  return TRUE;
}

void *
fer_cuda_scratch (cuda_backend *cb, size_t bytes, GError **error)
{
  if (!fer_cuda_grow_device (
          cb, &cb->scratch, &cb->scratch_bytes, bytes, error))
    return NULL;
  return cb->scratch;
}

static gboolean
ensure_staging (cuda_backend *cb, size_t bytes, GError **error)
{
  size_t want =
      fer_cuda_grow_bytes (cb->staging_bytes, MIN (bytes, STAGING_MAX_BYTES));
  if (want == 0)
    return TRUE;
  want = MIN (want, STAGING_MAX_BYTES);
  CUDA_CHECK (cudaEventSynchronize (cb->staging_done));
  CUDA_CHECK (cudaFreeHost (cb->staging));
  cb->staging = NULL;
  cb->staging_bytes = 0;
  CUDA_CHECK (cudaMallocHost (&cb->staging, want));
  cb->staging_bytes = want;
  return TRUE;
}

gboolean
fer_cuda_upload_bytes (
    cuda_backend *cb, void *dst, const void *src, size_t bytes, GError **error)
{
  if (!fer_cuda_enter (cb, error) || !ensure_staging (cb, bytes, error))
    return FALSE;
  for (size_t off = 0; off < bytes; off += cb->staging_bytes) {
    size_t len = MIN (cb->staging_bytes, bytes - off);
    /* the previous copy out of the staging buffer must be done */
    CUDA_CHECK (cudaEventSynchronize (cb->staging_done));
    memcpy (cb->staging, (const char *) src + off, len);
    CUDA_CHECK (cudaMemcpyAsync ((char *) dst + off, cb->staging, len,
        cudaMemcpyHostToDevice, cb->stream));
    CUDA_CHECK (cudaEventRecord (cb->staging_done, cb->stream));
  }
  return TRUE;
}

gboolean
fer_cuda_download_bytes (
    cuda_backend *cb, void *dst, const void *src, size_t bytes, GError **error)
{
  if (!fer_cuda_enter (cb, error) || !ensure_staging (cb, bytes, error))
    return FALSE;
  for (size_t off = 0; off < bytes; off += cb->staging_bytes) {
    size_t len = MIN (cb->staging_bytes, bytes - off);
    CUDA_CHECK (cudaMemcpyAsync (cb->staging, (const char *) src + off, len,
        cudaMemcpyDeviceToHost, cb->stream));
    CUDA_CHECK (cudaStreamSynchronize (cb->stream));
    memcpy ((char *) dst + off, cb->staging, len);
  }
  return TRUE;
}

static float *
cuda_alloc (fer_backend *be, size_t n, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  size_t bytes = MAX (n, 1) * sizeof (float);
  void *p = NULL;

  if (bytes / sizeof (float) < n) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "cuda backend: cannot allocate %zu floats", n);
    return NULL;
  }
  /* zeroed, as the CPU backend's memory is */
  if (!fer_cuda_enter (cb, error) || !CUDA_OK (cudaMalloc (&p, bytes)))
    return NULL;
  if (!CUDA_OK (cudaMemsetAsync (p, 0, bytes, cb->stream))) {
    (void) cudaFree (p); /* the memset's error is the one reported */
    return NULL;
  }
  return p;
}

static void
cuda_release (fer_backend *be, float *p)
{
  cuda_backend *cb = (cuda_backend *) be;
  if (!p)
    return;
  /* release cannot report: a failure here is one of the stream's (it
   * surfaces at the next op) */
  if (cudaSetDevice (cb->device) != cudaSuccess || cudaFree (p) != cudaSuccess)
    (void) cudaGetLastError ();
}

static gboolean
cuda_upload (
    fer_backend *be, float *dst, const float *src, size_t n, GError **error)
{
  return fer_cuda_upload_bytes (
      (cuda_backend *) be, dst, src, n * sizeof (float), error);
}

static gboolean
cuda_download (
    fer_backend *be, float *dst, const float *src, size_t n, GError **error)
{
  return fer_cuda_download_bytes (
      (cuda_backend *) be, dst, src, n * sizeof (float), error);
}

static gboolean
cuda_set_threads (fer_backend *be, int threads, GError **error)
{
  /* host threads do nothing for this backend; the range is the CPU's so
   * that a value is valid or not whatever the backend */
  if (threads < 0 || threads > 1024) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "cuda backend: threads=%d, expected 0 (default) to 1024", threads);
    return FALSE;
  }
  return TRUE;
}

/* The load-time self-test (model.c) accepts this backend when its
 * probabilities are within this of the CPU backend's: exact FP32 inference
 * agrees to rounding (tests/gpu see about 1e-5), reduced-precision math
 * (TF32, FP16) to its shorter significand (plan.c). */
static double
cuda_selftest_tolerance (fer_backend *be)
{
  return fer_cuda_math_selftest_tolerance (((const cuda_backend *) be)->math);
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */

static void
cuda_destroy (fer_backend *be)
{
  cuda_backend *cb = (cuda_backend *) be;
  /* teardown reports nothing: each step is tried whatever came before */
  if (cudaSetDevice (cb->device) == cudaSuccess && cb->stream)
    (void) cudaStreamSynchronize (cb->stream);
  if (cb->conv_plans)
    g_hash_table_destroy (cb->conv_plans);
  if (cb->workspace)
    (void) cudaFree (cb->workspace);
  if (cb->scratch)
    (void) cudaFree (cb->scratch);
  if (cb->halves)
    (void) cudaFree (cb->halves);
  if (cb->frame)
    (void) cudaFree (cb->frame);
  g_free (cb->taps_host);
  if (cb->staging)
    (void) cudaFreeHost (cb->staging);
  if (cb->staging_done)
    (void) cudaEventDestroy (cb->staging_done);
  if (cb->blas)
    (void) cublasDestroy (cb->blas);
  if (cb->dnn)
    (void) cudnnDestroy (cb->dnn);
  if (cb->stream)
    (void) cudaStreamDestroy (cb->stream);
  (void) cudaGetLastError ();
  g_free (cb);
}

static const fer_backend_ops cuda_ops = {
  .name = "cuda",
  /* a GPU wants big batches: 512 views of 48x48 (torchvision stem) take
   * about 80 MB per activation buffer */
  .forward_chunk = 512,
  .destroy = cuda_destroy,
  .alloc = cuda_alloc,
  .release = cuda_release,
  .upload = cuda_upload,
  .download = cuda_download,
  .set_threads = cuda_set_threads,

  .conv2d_prepare_weight = fer_cuda_op_conv2d_prepare_weight,
  .conv2d_forward = fer_cuda_op_conv2d_forward,
  .maxpool2d_forward = fer_cuda_op_maxpool2d_forward,
  .avgpool_forward = fer_cuda_op_avgpool_forward,
  .linear_forward = fer_cuda_op_linear_forward,
  .softmax_average = fer_cuda_op_softmax_average,
  .preprocess = fer_cuda_op_preprocess,

  .conv2d_train_workspace = fer_cuda_op_conv2d_train_workspace,
  .conv2d_forward_train = fer_cuda_op_conv2d_forward_train,
  .conv2d_backward = fer_cuda_op_conv2d_backward,
  .maxpool2d_backward = fer_cuda_op_maxpool2d_backward,
  .avgpool_backward = fer_cuda_op_avgpool_backward,
  .linear_backward = fer_cuda_op_linear_backward,
  .batchnorm_forward_train = fer_cuda_op_batchnorm_forward_train,
  .batchnorm_forward_eval = fer_cuda_op_batchnorm_forward_eval,
  .batchnorm_backward = fer_cuda_op_batchnorm_backward,
  .relu_backward = fer_cuda_op_relu_backward,
  .add = fer_cuda_op_add,
  .dropout_forward = fer_cuda_op_dropout_forward,
  .dropout_backward = fer_cuda_op_dropout_backward,
  .softmax_xent = fer_cuda_op_softmax_xent,
  .adam_update = fer_cuda_op_adam_update,
  .sgd_update = fer_cuda_op_sgd_update,
  .ema_update = fer_cuda_op_ema_update,
  .zero = fer_cuda_op_zero,

  .selftest_tolerance = cuda_selftest_tolerance,
};

const fer_backend_ops *
fer_cuda_backend_ops (void)
{
  return &cuda_ops;
}

gboolean
fer_backend_cuda_probe (int device_id, GError **error)
{
  int count = 0;
  /* Not CUDA_OK: every failure here means "no usable device", which
   * backend=auto answers with the CPU backend. */
  cudaError_t status = cudaGetDeviceCount (&count);
  if (status != cudaSuccess) {
    (void) cudaGetLastError ();
    g_set_error (error, FER_ERROR, FER_ERROR_NO_DEVICE,
        "no CUDA device (cudaGetDeviceCount: %s, %s)",
        cudaGetErrorName (status), cudaGetErrorString (status));
    return FALSE;
  }
  if (count <= 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_NO_DEVICE,
        "no CUDA device (the CUDA runtime reports none)");
    return FALSE;
  }
  if (device_id < 0 || device_id >= count) {
    g_set_error (error, FER_ERROR, FER_ERROR_NO_DEVICE,
        "no CUDA device %d: device-id must be 0..%d (%d device%s)", device_id,
        count - 1, count, count == 1 ? "" : "s");
    return FALSE;
  }
  return TRUE;
}

gboolean
fer_cuda_math_from_env (fer_cuda_math *math, GError **error)
{
  const char *v = g_getenv ("FER_CUDA_MATH");
  if (fer_cuda_math_parse (v, math) == 0)
    return TRUE;
  g_autofree char *quoted = fer_text_quote (v, 40);
  g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
      "FER_CUDA_MATH='%s', expected " FER_CUDA_MATH_VALUES " (or unset)",
      quoted);
  return FALSE;
}

fer_backend *
fer_backend_cuda_new (int device_id, GError **error)
{
  cuda_backend *cb;

  if (!fer_backend_cuda_probe (device_id, error))
    return NULL;
  cb = g_new0 (cuda_backend, 1);
  cb->base.ops = &cuda_ops;
  cb->device = device_id;
  if (!fer_cuda_math_from_env (&cb->math, error))
    goto fail;
  cb->find_algorithms = g_strcmp0 (g_getenv ("FER_CUDA_CONV_FIND"), "1") == 0;
  cb->conv_plans = g_hash_table_new_full ((GHashFunc) fer_cuda_conv_key_hash,
      (GEqualFunc) fer_cuda_conv_key_equal, NULL, fer_cuda_conv_plan_free);
  if (!fer_cuda_enter (cb, error)
      || !CUDA_OK (
          cudaStreamCreateWithFlags (&cb->stream, cudaStreamNonBlocking))
      || !CUDA_OK (
          cudaEventCreateWithFlags (&cb->staging_done, cudaEventDisableTiming))
      || !CUBLAS_OK (cublasCreate (&cb->blas))
      || !CUBLAS_OK (cublasSetStream (cb->blas, cb->stream))
      || !CUDNN_OK (cudnnCreate (&cb->dnn))
      || !CUDNN_OK (cudnnSetStream (cb->dnn, cb->stream)))
    goto fail;
  return &cb->base;

fail:
  cuda_destroy (&cb->base);
  return NULL;
}
