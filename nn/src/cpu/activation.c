/* Element-wise training ops on the CPU: ReLU backward, the residual add, and
 * dropout with a mask drawn by the trainer (so every backend drops the same
 * units and a run is reproducible from its seed). ReLU's forward is fused
 * into the conv / batch-norm / linear ops that precede it.
 * Contract: outputs and activation gradients are overwritten; all of these
 * may run in place. */
#include "cpu/ops_train.h"

void
fer_cpu_relu_backward (float *dinp, const float *dout, const float *out,
    size_t n)
{
  for (size_t i = 0; i < n; i++)
    dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

void
fer_cpu_add (float *out, const float *a, const float *b, size_t n)
{
  for (size_t i = 0; i < n; i++)
    out[i] = a[i] + b[i];
}

void
fer_cpu_dropout_forward (float *out, const float *inp, const float *mask,
    size_t n)
{
  for (size_t i = 0; i < n; i++)
    out[i] = inp[i] * mask[i];
}

void
fer_cpu_dropout_backward (float *dinp, const float *dout, const float *mask,
    size_t n)
{
  for (size_t i = 0; i < n; i++)
    dinp[i] = dout[i] * mask[i];
}
