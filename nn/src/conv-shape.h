/* The shape of a convolution (private). The graph code, the backend
 * interface (backend.h) and both backends' kernels all speak it; it has a
 * header of its own so that the kernels (cpu/ops.h, cuda/) need not
 * include the backend interface they are adapted to. Activations are NHWC,
 * kernels square. */
#ifndef FER_CONV_SHAPE_H
#define FER_CONV_SHAPE_H

typedef struct
{
  int n, h, w, cin;         /* input, NHWC */
  int cout, k, stride, pad; /* square kernels */
  int oh, ow;               /* output spatial size */
} fer_conv_shape;

static inline void
fer_conv_shape_init (fer_conv_shape *s, int n, int h, int w, int cin, int cout,
    int k, int stride, int pad)
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

#endif
