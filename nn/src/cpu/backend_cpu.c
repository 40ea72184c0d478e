/* The CPU backend object and its table: host memory (64-byte aligned, for
 * the vector kernels), our own thread team (workers.c) and the scratch
 * the ops share. The ops are in their families' files (backend_cpu.h):
 * our own packed-weight convolution kernels (conv.c, gemm.c) for inference
 * and training alike, OpenBLAS for the small linear head (linear.c).
 * The convolution scratch grows to the largest conv seen and is then
 * reused, so a steady stream of same-sized batches allocates nothing. */
#include "cpu/backend_cpu.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/workers.h"

static void
cpu_destroy (fer_backend *be)
{
  cpu_backend *cpu = (cpu_backend *) be;
  fer_cpu_workers_free (cpu->workers);
  fer_cpu_conv_scratch_free (cpu->conv);
  fer_scratch_free (cpu->preprocess);
  g_free (cpu->planar);
  g_free (cpu);
}

static float *
cpu_alloc (fer_backend *be, size_t n, GError **error)
{
  void *p = NULL;
  size_t bytes = MAX (n, 1) * sizeof (float);
  if (bytes / sizeof (float) < n || posix_memalign (&p, 64, bytes) != 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "cpu backend: cannot allocate %zu floats", n);
    return NULL;
  }
  memset (p, 0, bytes);
  return p;
}

static void
cpu_release (fer_backend *be, float *p)
{
  free (p);
}

static gboolean
cpu_copy (
    fer_backend *be, float *dst, const float *src, size_t n, GError **error)
{
  memcpy (dst, src, n * sizeof (float));
  return TRUE;
}

static gboolean
cpu_set_threads (fer_backend *be, int threads, GError **error)
{
  cpu_backend *cpu = (cpu_backend *) be;
  fer_cpu_workers *workers = NULL;

  if (threads < 0 || threads > 1024) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "cpu backend: threads=%d, expected 0 (default) to 1024", threads);
    return FALSE;
  }
  if (threads == 0)
    threads = (int) MIN (g_get_num_processors (), 1024);
  if (threads > 1 && !(workers = fer_cpu_workers_new (threads, error)))
    return FALSE;
  fer_cpu_workers_free (cpu->workers);
  cpu->workers = workers;
  /* The threads are ours: OpenBLAS (the linear head, a few thousand
   * multiply-adds) stays on the caller's. Its setting is process-wide. */
  openblas_set_num_threads (1);
  return TRUE;
}

static const fer_backend_ops cpu_ops = {
  .name = "cpu",
  .destroy = cpu_destroy,
  .alloc = cpu_alloc,
  .release = cpu_release,
  .upload = cpu_copy,
  .download = cpu_copy,
  .set_threads = cpu_set_threads,

  .conv2d_prepare_weight = fer_cpu_op_conv2d_prepare_weight,
  .conv2d_forward = fer_cpu_op_conv2d_forward,
  .maxpool2d_forward = fer_cpu_op_maxpool2d_forward,
  .avgpool_forward = fer_cpu_op_avgpool_forward,
  .linear_forward = fer_cpu_op_linear_forward,
  .softmax_average = fer_cpu_op_softmax_average,
  .preprocess = fer_cpu_op_preprocess,

  .conv2d_train_workspace = fer_cpu_op_conv2d_train_workspace,
  .conv2d_forward_train = fer_cpu_op_conv2d_forward_train,
  .conv2d_backward = fer_cpu_op_conv2d_backward,
  .maxpool2d_backward = fer_cpu_op_maxpool2d_backward,
  .avgpool_backward = fer_cpu_op_avgpool_backward,
  .linear_backward = fer_cpu_op_linear_backward,
  .batchnorm_forward_train = fer_cpu_op_batchnorm_forward_train,
  .batchnorm_forward_eval = fer_cpu_op_batchnorm_forward_eval,
  .batchnorm_backward = fer_cpu_op_batchnorm_backward,
  .relu_backward = fer_cpu_op_relu_backward,
  .add = fer_cpu_op_add,
  .dropout_forward = fer_cpu_op_dropout_forward,
  .dropout_backward = fer_cpu_op_dropout_backward,
  .softmax_xent = fer_cpu_op_softmax_xent,
  .adam_update = fer_cpu_op_adam_update,
  .sgd_update = fer_cpu_op_sgd_update,
  .ema_update = fer_cpu_op_ema_update,
  .zero = fer_cpu_op_zero,
};

fer_backend *
fer_backend_cpu_new (int threads, GError **error)
{
  cpu_backend *cpu = g_new0 (cpu_backend, 1);
  cpu->base.ops = &cpu_ops;
  cpu->conv = fer_cpu_conv_scratch_new ();
  cpu->preprocess = fer_scratch_new ();
  if (!cpu_set_threads (&cpu->base, threads, error)) {
    cpu_destroy (&cpu->base);
    return NULL;
  }
  return &cpu->base;
}
