/* Fully connected layer on the CPU: one SGEMM, fused bias and ReLU. */
#include "cpu/ops.h"

#include <cblas.h>

void
fer_cpu_linear_forward (float *out, const float *inp, const float *weight,
    const float *bias, int n, int nin, int nout, gboolean relu)
{
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, n, nout, nin, 1.0f,
      inp, nin, weight, nin, 0.0f, out, nout);
  for (int b = 0; b < n; b++) {
    float *o = out + (size_t) b * nout;
    for (int j = 0; j < nout; j++) {
      float v = o[j] + (bias ? bias[j] : 0.0f);
      o[j] = relu && v < 0.0f ? 0.0f : v;
    }
  }
}
