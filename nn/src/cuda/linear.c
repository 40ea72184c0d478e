/* Fully connected layers on the CUDA backend: cuBLAS SGEMM and our
 * bias/ReLU epilogue (activation.cu); the backward pass is two SGEMMs and
 * a column sum (linear.cu).
 * Our matrices are row-major and cuBLAS's column-major, so every product
 * is written for the transposes: a row-major (r, c) matrix is a
 * column-major (c, r) one with leading dimension c.
 * TF32: the inference head stays FP32 unless FER_CUDA_MATH=tf32; the
 * backward pass (training) uses TF32 unless FER_CUDA_MATH=fp32. */
#include "cuda/backend_cuda.h"

static gboolean
set_math (cuda_backend *cb, fer_cuda_conv_kind kind, GError **error)
{
  CUBLAS_CHECK (cublasSetMathMode (cb->blas,
      fer_cuda_math_tensor_op (cb->math, kind) ? CUBLAS_TF32_TENSOR_OP_MATH
                                               : CUBLAS_DEFAULT_MATH));
  return TRUE;
}

gboolean
fer_cuda_op_linear_forward (fer_backend *be, float *out, const float *inp,
    const float *weight, const float *bias, int n, int nin, int nout,
    gboolean relu, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  const float one = 1.0f, zero = 0.0f;

  if (n <= 0)
    return TRUE;
  /* The trainer's forward is a training op too; inference and training
   * share this entry, so the math follows the inference kind here and
   * FER_CUDA_MATH=tf32 opts in. */
  if (!fer_cuda_enter (cb, error)
      || !set_math (cb, FER_CUDA_CONV_FORWARD, error))
    return FALSE;
  /* out^T (nout, n) = weight^T^T (nout, nin) . inp^T (nin, n) */
  CUBLAS_CHECK (cublasSgemm (cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, nout, n, nin,
      &one, weight, nin, inp, nin, &zero, out, nout));
  CUDA_CHECK (
      fer_cuda_bias_act (cb->stream, out, bias, NULL, (size_t) n, nout, relu));
  return TRUE;
}

gboolean
fer_cuda_op_linear_backward (fer_backend *be, float *dinp, float *dweight,
    float *dbias, const float *dout, const float *inp, const float *weight,
    int n, int nin, int nout, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  const float one = 1.0f, zero = 0.0f;

  if (n <= 0)
    return TRUE;
  if (!fer_cuda_enter (cb, error)
      || !set_math (cb, FER_CUDA_CONV_BACKWARD_DATA, error))
    return FALSE;
  /* dinp^T (nin, n) = weight^T (nin, nout) . dout^T (nout, n) */
  if (dinp)
    CUBLAS_CHECK (cublasSgemm (cb->blas, CUBLAS_OP_N, CUBLAS_OP_N, nin, n, nout,
        &one, weight, nin, dout, nout, &zero, dinp, nin));
  /* dweight^T (nin, nout) += inp^T (nin, n) . dout (n, nout) */
  CUBLAS_CHECK (cublasSgemm (cb->blas, CUBLAS_OP_N, CUBLAS_OP_T, nin, nout, n,
      &one, inp, nin, dout, nout, &one, dweight, nin));
  if (dbias)
    CUDA_CHECK (fer_cuda_column_sums (cb->stream, dbias, dout, n, nout));
  return TRUE;
}
