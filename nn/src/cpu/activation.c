/* Element-wise training ops on the CPU: ReLU backward, the residual add, and
 * dropout with a mask drawn by the trainer (so every backend drops the same
 * units and a run is reproducible from its seed). ReLU's forward is fused
 * into the conv / batch-norm / linear ops that precede it.
 * Contract: outputs and activation gradients are overwritten; all of these
 * may run in place. The backend table's entries are at the end. */
#include "cpu/backend_cpu.h"

/* In-place and out-of-place versions of each loop, so that every pointer
 * can be restrict (see FER_FOR_VEC); not inlined, since GCC loses restrict
 * when it inlines a function into a caller whose pointers may alias. */

G_NO_INLINE static void
relu_backward_inplace (float *restrict d, const float *restrict out, size_t n)
{
  FER_FOR_VEC (i, n, d[i] = out[i] > 0.0f ? d[i] : 0.0f);
}

G_NO_INLINE static void
relu_backward_copy (float *restrict dinp, const float *restrict dout,
    const float *restrict out, size_t n)
{
  FER_FOR_VEC (i, n, const float d = dout[i];
               dinp[i] = out[i] > 0.0f ? d : 0.0f);
}

void
fer_cpu_relu_backward (
    float *dinp, const float *dout, const float *out, size_t n)
{
  if (dinp == dout)
    relu_backward_inplace (dinp, out, n);
  else
    relu_backward_copy (dinp, dout, out, n);
}

G_NO_INLINE static void
accumulate (float *restrict acc, const float *restrict x, size_t n)
{
  FER_FOR_VEC (i, n, acc[i] += x[i]);
}

G_NO_INLINE static void
multiply_inplace (float *restrict x, const float *restrict y, size_t n)
{
  FER_FOR_VEC (i, n, x[i] *= y[i]);
}

G_NO_INLINE static void
multiply (float *restrict out, const float *restrict a, const float *restrict b,
    size_t n)
{
  FER_FOR_VEC (i, n, out[i] = a[i] * b[i]);
}

G_NO_INLINE static void
add (float *restrict out, const float *restrict a, const float *restrict b,
    size_t n)
{
  FER_FOR_VEC (i, n, out[i] = a[i] + b[i]);
}

void
fer_cpu_add (float *out, const float *a, const float *b, size_t n)
{
  if (out == a && out != b)
    accumulate (out, b, n);
  else if (out == b && out != a)
    accumulate (out, a, n);
  else if (out != a)
    add (out, a, b, n);
  else
    FER_FOR_VEC (i, n, out[i] = a[i] + b[i]);
}

void
fer_cpu_dropout_forward (
    float *out, const float *inp, const float *mask, size_t n)
{
  if (out == inp)
    multiply_inplace (out, mask, n);
  else
    multiply (out, inp, mask, n);
}

void
fer_cpu_dropout_backward (
    float *dinp, const float *dout, const float *mask, size_t n)
{
  fer_cpu_dropout_forward (dinp, dout, mask, n);
}

gboolean
fer_cpu_op_relu_backward (fer_backend *be, float *dinp, const float *dout,
    const float *out, size_t n, GError **error)
{
  fer_cpu_relu_backward (dinp, dout, out, n);
  return TRUE;
}

gboolean
fer_cpu_op_add (fer_backend *be, float *out, const float *a, const float *b,
    size_t n, GError **error)
{
  fer_cpu_add (out, a, b, n);
  return TRUE;
}

gboolean
fer_cpu_op_dropout_forward (fer_backend *be, float *out, const float *inp,
    const float *mask, size_t n, GError **error)
{
  fer_cpu_dropout_forward (out, inp, mask, n);
  return TRUE;
}

gboolean
fer_cpu_op_dropout_backward (fer_backend *be, float *dinp, const float *dout,
    const float *mask, size_t n, GError **error)
{
  fer_cpu_dropout_backward (dinp, dout, mask, n);
  return TRUE;
}
