/* Fully connected layer on the CPU: one SGEMM, fused bias and ReLU; the
 * backward pass is two SGEMMs and a column sum; then the backend table's
 * entries. Backward contract: dweight and dbias accumulate, dinp is
 * overwritten. */
#include "cpu/backend_cpu.h"

#include <cblas.h>

void
fer_cpu_linear_forward (float *out, const float *inp, const float *weight,
    const float *bias, int n, int nin, int nout, gboolean relu)
{
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, n, nout, nin, 1.0f, inp,
      nin, weight, nin, 0.0f, out, nout);
  for (int b = 0; b < n; b++) {
    float *o = out + (size_t) b * nout;
    for (int j = 0; j < nout; j++) {
      float v = o[j] + (bias ? bias[j] : 0.0f);
      o[j] = relu && v < 0.0f ? 0.0f : v;
    }
  }
}

void
fer_cpu_linear_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight, int n, int nin,
    int nout)
{
  /* dinp (n, nin) = dout (n, nout) . weight (nout, nin) */
  if (dinp)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, n, nin, nout, 1.0f,
        dout, nout, weight, nin, 0.0f, dinp, nin);
  /* dweight (nout, nin) += dout (n, nout)^T . inp (n, nin) */
  cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, nout, nin, n, 1.0f,
      dout, nout, inp, nin, 1.0f, dweight, nin);
  if (dbias)
    for (int b = 0; b < n; b++)
      for (int j = 0; j < nout; j++)
        dbias[j] += dout[(size_t) b * nout + j];
}

gboolean
fer_cpu_op_linear_forward (fer_backend *be, float *out, const float *inp,
    const float *weight, const float *bias, int n, int nin, int nout,
    gboolean relu, GError **error)
{
  fer_cpu_linear_forward (out, inp, weight, bias, n, nin, nout, relu);
  return TRUE;
}

gboolean
fer_cpu_op_linear_backward (fer_backend *be, float *dinp, float *dweight,
    float *dbias, const float *dout, const float *inp, const float *weight,
    int n, int nin, int nout, GError **error)
{
  fer_cpu_linear_backward (
      dinp, dweight, dbias, dout, inp, weight, n, nin, nout);
  return TRUE;
}
