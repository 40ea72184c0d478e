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

#endif
