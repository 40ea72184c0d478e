/* The CPU backend: host memory, OpenBLAS GEMMs. One im2col scratch buffer
 * grows to the largest conv seen and is then reused, so a steady stream of
 * same-sized batches allocates nothing. */
#include "cpu/ops.h"

#include <cblas.h>
#include <string.h>

/* Upper bound on im2col scratch; larger batches are convolved in chunks. */
#define COL_CAP_FLOATS ((size_t) 32 << 20)

typedef struct
{
  fer_backend base;
  float *col;
  size_t col_cap;
} cpu_backend;

static void
cpu_destroy (fer_backend *be)
{
  cpu_backend *cpu = (cpu_backend *) be;
  g_free (cpu->col);
  g_free (cpu);
}

static float *
cpu_alloc (fer_backend *be, size_t n, GError **error)
{
  float *p = g_try_malloc0_n (MAX (n, 1), sizeof (float));
  if (!p)
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "cpu backend: cannot allocate %zu floats", n);
  return p;
}

static void
cpu_release (fer_backend *be, float *p)
{
  g_free (p);
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
  if (threads < 0 || threads > 1024) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "cpu backend: threads=%d, expected 0 (default) to 1024", threads);
    return FALSE;
  }
  /* OpenBLAS's thread count is process-wide: the last model to set it wins. */
  if (threads > 0)
    openblas_set_num_threads (threads);
  return TRUE;
}

static float *
cpu_conv2d_prepare_weight (fer_backend *be, const float *weight, int cout,
    int k, int cin, GError **error)
{
  size_t n = (size_t) cout * k * k * cin;
  float *w = cpu_alloc (be, n, error);
  if (w)
    memcpy (w, weight, n * sizeof (float));
  return w;
}

static gboolean
cpu_conv2d_forward (fer_backend *be, float *out, const float *inp,
    const float *weight, const float *bias, const float *residual,
    const fer_conv_shape *s, gboolean relu, GError **error)
{
  cpu_backend *cpu = (cpu_backend *) be;
  size_t per_image = fer_cpu_conv2d_col_per_image (s);
  size_t want = MIN (per_image * s->n, MAX (per_image, COL_CAP_FLOATS));
  if (want > cpu->col_cap) {
    float *col = g_try_realloc_n (cpu->col, want, sizeof (float));
    if (!col) {
      g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
          "cpu backend: cannot allocate %zu floats of im2col scratch", want);
      return FALSE;
    }
    cpu->col = col;
    cpu->col_cap = want;
  }
  fer_cpu_conv2d_forward (out, inp, weight, bias, residual, s, relu, cpu->col,
      cpu->col_cap);
  return TRUE;
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
};

fer_backend *
fer_backend_cpu_new (int threads, GError **error)
{
  cpu_backend *cpu = g_new0 (cpu_backend, 1);
  cpu->base.ops = &cpu_ops;
  if (!cpu_set_threads (&cpu->base, threads, error)) {
    cpu_destroy (&cpu->base);
    return NULL;
  }
  return &cpu->base;
}
