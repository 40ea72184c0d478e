/* The CPU backend: host memory (64-byte aligned, for the vector kernels),
 * our own packed-weight convolution kernels (conv.c, gemm.c) split across
 * our own thread team (workers.c), for inference and training alike;
 * OpenBLAS for the small linear head.
 * The convolution scratch grows to the largest conv seen and is then
 * reused, so a steady stream of same-sized batches allocates nothing. */
#include "cpu/ops.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/ops_train.h"
#include "cpu/workers.h"

typedef struct
{
  fer_backend base;
  fer_cpu_conv_scratch *conv;
  fer_cpu_workers *workers;    /* NULL: one thread */
} cpu_backend;

static void
cpu_destroy (fer_backend *be)
{
  cpu_backend *cpu = (cpu_backend *) be;
  fer_cpu_workers_free (cpu->workers);
  fer_cpu_conv_scratch_free (cpu->conv);
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
cpu_copy (fer_backend *be, float *dst, const float *src, size_t n,
    GError **error)
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

static float *
cpu_conv2d_prepare_weight (fer_backend *be, const float *weight, int cout,
    int k, int cin, GError **error)
{
  float *w = cpu_alloc (be, fer_cpu_conv2d_weight_floats (cout, k, cin),
      error);
  if (w)
    fer_cpu_conv2d_pack_weight (w, weight, cout, k, cin);
  return w;
}

static gboolean
cpu_conv2d_forward (fer_backend *be, float *out, const float *inp,
    const float *weight, const float *bias, const float *residual,
    const fer_conv_shape *s, gboolean relu, GError **error)
{
  cpu_backend *cpu = (cpu_backend *) be;
  return fer_cpu_conv2d_forward (out, inp, weight, bias, residual, s, relu,
      cpu->conv, cpu->workers, error);
}

static size_t
cpu_conv2d_train_workspace (fer_backend *be, const fer_conv_shape *s)
{
  return fer_cpu_conv2d_train_col_per_image (s) * s->n;
}

static gboolean
cpu_conv2d_forward_train (fer_backend *be, float *out, const float *inp,
    const float *weight, const fer_conv_shape *s, float *ws, size_t ws_floats,
    GError **error)
{
  cpu_backend *cpu = (cpu_backend *) be;
  return fer_cpu_conv2d_forward_train_mt (out, inp, weight, s, cpu->conv,
      cpu->workers, error);
}

static gboolean
cpu_conv2d_backward (fer_backend *be, float *dinp, float *dweight,
    const float *dout, const float *inp, const float *weight,
    const fer_conv_shape *s, float *ws, size_t ws_floats, GError **error)
{
  cpu_backend *cpu = (cpu_backend *) be;
  return fer_cpu_conv2d_backward_mt (dinp, dweight, dout, inp, weight, s, ws,
      ws_floats, cpu->conv, cpu->workers, error);
}

static gboolean
cpu_maxpool2d_forward (fer_backend *be, float *out, const float *inp, int n,
    int h, int w, int c, int k, int stride, int pad, GError **error)
{
  fer_cpu_maxpool2d_forward (out, inp, n, h, w, c, k, stride, pad);
  return TRUE;
}

static gboolean
cpu_avgpool_forward (fer_backend *be, float *out, const float *inp, int n,
    int hw, int c, GError **error)
{
  fer_cpu_avgpool_forward (out, inp, n, hw, c);
  return TRUE;
}

static gboolean
cpu_linear_forward (fer_backend *be, float *out, const float *inp,
    const float *weight, const float *bias, int n, int nin, int nout,
    gboolean relu, GError **error)
{
  fer_cpu_linear_forward (out, inp, weight, bias, n, nin, nout, relu);
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
  .conv2d_prepare_weight = cpu_conv2d_prepare_weight,
  .conv2d_forward = cpu_conv2d_forward,
  .maxpool2d_forward = cpu_maxpool2d_forward,
  .avgpool_forward = cpu_avgpool_forward,
  .linear_forward = cpu_linear_forward,
  .conv2d_train_workspace = cpu_conv2d_train_workspace,
  .conv2d_forward_train = cpu_conv2d_forward_train,
  .conv2d_backward = cpu_conv2d_backward,
  FER_CPU_TRAIN_OPS,
};

fer_backend *
fer_backend_cpu_new (int threads, GError **error)
{
  cpu_backend *cpu = g_new0 (cpu_backend, 1);
  cpu->base.ops = &cpu_ops;
  cpu->conv = fer_cpu_conv_scratch_new ();
  if (!cpu_set_threads (&cpu->base, threads, error)) {
    cpu_destroy (&cpu->base);
    return NULL;
  }
  return &cpu->base;
}
