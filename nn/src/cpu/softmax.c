/* Softmax on the CPU, max-subtracted so large logits do not overflow. */
#include "cpu/ops.h"
#include "cpu/ops_train.h"

#include <math.h>

void
fer_cpu_softmax_forward (float *out, const float *inp, int n, int c)
{
  for (int b = 0; b < n; b++) {
    const float *x = inp + (size_t) b * c;
    float *y = out + (size_t) b * c;
    float mx = x[0];
    for (int j = 1; j < c; j++)
      mx = x[j] > mx ? x[j] : mx;
    double sum = 0.0;
    for (int j = 0; j < c; j++) {
      y[j] = expf (x[j] - mx);
      sum += y[j];
    }
    for (int j = 0; j < c; j++)
      y[j] = (float) (y[j] / sum);
  }
}

/* dinp = out * (dout - <dout, out>) per row; dinp is overwritten. (The
 * training loss differentiates through its own log-softmax in loss.c; this
 * is the op for a softmax inside a graph.) */
void
fer_cpu_softmax_backward (float *dinp, const float *dout, const float *out,
    int n, int c)
{
  for (int b = 0; b < n; b++) {
    const float *d = dout + (size_t) b * c;
    const float *y = out + (size_t) b * c;
    float *dx = dinp + (size_t) b * c;
    double dot = 0.0;
    for (int j = 0; j < c; j++)
      dot += (double) d[j] * y[j];
    for (int j = 0; j < c; j++)
      dx[j] = (float) (y[j] * (d[j] - dot));
  }
}
