/* Convolutions on the CUDA backend, through cuDNN, NHWC activations and
 * NHWC filters ((Cout, K, K, Cin): the trainer's and the model's layout as
 * it is). One plan per (shape, kind, math): descriptors and the algorithm
 * cuDNN's heuristics (cudnnGetConvolution*Algorithm_v7) rank first among
 * those that fit FER_CUDA_WS_LIMIT and the math mode, made once and kept in
 * a hash table; all plans share the backend's one workspace, grown to the
 * largest that any chosen algorithm asks for.
 *
 * Inference (conv2d_forward) with ReLU runs cudnnConvolutionBiasActivation-
 * Forward: y = relu(conv(x) + residual + bias) in one call. cuDNN offers
 * that fusion only for ReLU (identity only with one algorithm) and may
 * still refuse a shape (CUDNN_STATUS_NOT_SUPPORTED), so the downsample
 * convs (no ReLU) and refused shapes take the plain convolution and our
 * bias/residual/ReLU epilogue; a refusal is remembered in the plan.
 *
 * Training uses the backend's own workspace, not the trainer's `ws`
 * (conv2d_train_workspace asks for none). The backend table's entries are
 * the functions here that take a fer_backend. Filter gradients accumulate
 * (beta = 1), as the backend contract wants. */
#include "cuda/backend_cuda.h"

#include <string.h>

#define MAX_ALGOS 16

typedef struct
{
  fer_cuda_conv_key key;
  cudnnTensorDescriptor_t x, y, bias;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  cudnnActivationDescriptor_t relu;
  int algo;
  size_t ws_bytes;
  gboolean fused; /* forward: the fused call accepted this shape so far */
} cuda_conv_plan;

static void
destroy_descriptors (cuda_conv_plan *p)
{
  if (p->x)
    cudnnDestroyTensorDescriptor (p->x);
  if (p->y)
    cudnnDestroyTensorDescriptor (p->y);
  if (p->bias)
    cudnnDestroyTensorDescriptor (p->bias);
  if (p->w)
    cudnnDestroyFilterDescriptor (p->w);
  if (p->conv)
    cudnnDestroyConvolutionDescriptor (p->conv);
  if (p->relu)
    cudnnDestroyActivationDescriptor (p->relu);
}

void
fer_cuda_conv_plan_free (gpointer data)
{
  destroy_descriptors (data);
  g_free (data);
}

static gboolean
tensor_op_math (cudnnMathType_t m)
{
  return m == CUDNN_TENSOR_OP_MATH
      || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

/* perf[0 .. *n) (any of cuDNN's three *AlgoPerf_t types) into cand. */
#define TO_CANDIDATES(perf)                                                    \
  for (int i = 0; i < *n; i++)                                                 \
    cand[i] = (fer_cuda_algo_candidate)                                        \
    {                                                                          \
      (perf)[i].algo, (perf)[i].status == CUDNN_STATUS_SUCCESS,                \
          (perf)[i].memory, tensor_op_math ((perf)[i].mathType),               \
          (perf)[i].mathType                                                   \
    }

/* cuDNN's ranked candidates for the plan's kind, as plan.h's list. */
static gboolean
rank_algorithms (cuda_backend *cb, cuda_conv_plan *p,
    fer_cuda_algo_candidate *cand, int *n, GError **error)
{
  switch ((fer_cuda_conv_kind) p->key.kind) {
    case FER_CUDA_CONV_FORWARD:
    case FER_CUDA_CONV_FORWARD_TRAIN: {
      cudnnConvolutionFwdAlgoPerf_t perf[MAX_ALGOS];
      if (cb->find_algorithms)
        CUDNN_CHECK (cudnnFindConvolutionForwardAlgorithm (
            cb->dnn, p->x, p->w, p->conv, p->y, MAX_ALGOS, n, perf));
      else
        CUDNN_CHECK (cudnnGetConvolutionForwardAlgorithm_v7 (
            cb->dnn, p->x, p->w, p->conv, p->y, MAX_ALGOS, n, perf));
      TO_CANDIDATES (perf);
      return TRUE;
    }
    case FER_CUDA_CONV_BACKWARD_DATA: {
      cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_ALGOS];
      if (cb->find_algorithms)
        CUDNN_CHECK (cudnnFindConvolutionBackwardDataAlgorithm (
            cb->dnn, p->w, p->y, p->conv, p->x, MAX_ALGOS, n, perf));
      else
        CUDNN_CHECK (cudnnGetConvolutionBackwardDataAlgorithm_v7 (
            cb->dnn, p->w, p->y, p->conv, p->x, MAX_ALGOS, n, perf));
      TO_CANDIDATES (perf);
      return TRUE;
    }
    case FER_CUDA_CONV_BACKWARD_FILTER: {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_ALGOS];
      if (cb->find_algorithms)
        CUDNN_CHECK (cudnnFindConvolutionBackwardFilterAlgorithm (
            cb->dnn, p->x, p->y, p->conv, p->w, MAX_ALGOS, n, perf));
      else
        CUDNN_CHECK (cudnnGetConvolutionBackwardFilterAlgorithm_v7 (
            cb->dnn, p->x, p->y, p->conv, p->w, MAX_ALGOS, n, perf));
      TO_CANDIDATES (perf);
      return TRUE;
    }
    case FER_CUDA_CONV_N_KINDS:
      break;
  }
  g_set_error (error, FER_ERROR, FER_ERROR_BACKEND,
      "cuda backend: unknown convolution kind %d", p->key.kind);
  return FALSE;
}

static gboolean
workspace_size (
    cuda_backend *cb, const cuda_conv_plan *p, size_t *bytes, GError **error)
{
  switch ((fer_cuda_conv_kind) p->key.kind) {
    case FER_CUDA_CONV_FORWARD:
    case FER_CUDA_CONV_FORWARD_TRAIN:
      return CUDNN_OK (cudnnGetConvolutionForwardWorkspaceSize (cb->dnn, p->x,
          p->w, p->conv, p->y, (cudnnConvolutionFwdAlgo_t) p->algo, bytes));
    case FER_CUDA_CONV_BACKWARD_DATA:
      return CUDNN_OK (
          cudnnGetConvolutionBackwardDataWorkspaceSize (cb->dnn, p->w, p->y,
              p->conv, p->x, (cudnnConvolutionBwdDataAlgo_t) p->algo, bytes));
    case FER_CUDA_CONV_BACKWARD_FILTER:
      return CUDNN_OK (
          cudnnGetConvolutionBackwardFilterWorkspaceSize (cb->dnn, p->x, p->y,
              p->conv, p->w, (cudnnConvolutionBwdFilterAlgo_t) p->algo, bytes));
    case FER_CUDA_CONV_N_KINDS:
      break;
  }
  g_set_error (error, FER_ERROR, FER_ERROR_BACKEND,
      "cuda backend: unknown convolution kind %d", p->key.kind);
  return FALSE;
}

static gboolean
describe (cuda_conv_plan *p, const fer_conv_shape *s, GError **error)
{
  const fer_cuda_conv_key *k = &p->key;
  CUDNN_CHECK (cudnnCreateTensorDescriptor (&p->x));
  CUDNN_CHECK (cudnnCreateTensorDescriptor (&p->y));
  CUDNN_CHECK (cudnnCreateFilterDescriptor (&p->w));
  CUDNN_CHECK (cudnnCreateConvolutionDescriptor (&p->conv));
  CUDNN_CHECK (cudnnSetTensor4dDescriptor (
      p->x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s->n, s->cin, s->h, s->w));
  CUDNN_CHECK (cudnnSetTensor4dDescriptor (
      p->y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s->n, s->cout, s->oh, s->ow));
  CUDNN_CHECK (cudnnSetFilter4dDescriptor (
      p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, s->cout, s->cin, s->k, s->k));
  CUDNN_CHECK (cudnnSetConvolution2dDescriptor (p->conv, s->pad, s->pad,
      s->stride, s->stride, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_CHECK (cudnnSetConvolutionMathType (
      p->conv, k->tensor_op ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
  if (k->kind == FER_CUDA_CONV_FORWARD) {
    CUDNN_CHECK (cudnnCreateTensorDescriptor (&p->bias));
    CUDNN_CHECK (cudnnSetTensor4dDescriptor (
        p->bias, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, s->cout, 1, 1));
    CUDNN_CHECK (cudnnCreateActivationDescriptor (&p->relu));
    CUDNN_CHECK (cudnnSetActivationDescriptor (
        p->relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  }
  return TRUE;
}

/* The plan for s and kind, made on first use; the workspace is grown to
 * what its algorithm needs. NULL on failure. */
static cuda_conv_plan *
get_plan (cuda_backend *cb, const fer_conv_shape *s, fer_cuda_conv_kind kind,
    GError **error)
{
  fer_cuda_conv_key key;
  fer_cuda_algo_candidate cand[MAX_ALGOS];
  int n_cand = 0, pick;
  cuda_conv_plan *p;

  fer_cuda_conv_key_init (&key, s->n, s->h, s->w, s->cin, s->cout, s->k,
      s->stride, s->pad, kind, fer_cuda_math_tensor_op (cb->math, kind));
  if (!fer_cuda_enter (cb, error))
    return NULL;
  p = g_hash_table_lookup (cb->conv_plans, &key);
  if (p)
    goto ready;

  p = g_new0 (cuda_conv_plan, 1);
  p->key = key;
  p->fused = TRUE;
  if (!describe (p, s, error) || !rank_algorithms (cb, p, cand, &n_cand, error))
    goto fail;
  pick = fer_cuda_pick_algo (cand, n_cand, FER_CUDA_WS_LIMIT, key.tensor_op);
  if (pick < 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_UNSUPPORTED,
        "cuda backend: cuDNN offers no %s algorithm for a %dx%d/%d pad %d "
        "convolution of (%d, %d, %d, %d) to %d channels within %zu MiB",
        key.tensor_op ? "TF32" : "FP32", s->k, s->k, s->stride, s->pad, s->n,
        s->h, s->w, s->cin, s->cout, FER_CUDA_WS_LIMIT >> 20);
    goto fail;
  }
  p->algo = cand[pick].algo;
  /* run in the math the chosen algorithm was ranked with, and ask for its
   * workspace in that math (the ranking's figure is an estimate) */
  if (!CUDNN_OK (cudnnSetConvolutionMathType (
          p->conv, (cudnnMathType_t) cand[pick].math_type))
      || !workspace_size (cb, p, &p->ws_bytes, error))
    goto fail;
  g_hash_table_insert (cb->conv_plans, &p->key, p);

ready:
  if (!fer_cuda_grow_device (
          cb, &cb->workspace, &cb->workspace_bytes, p->ws_bytes, error))
    return NULL;
  return p;

fail:
  fer_cuda_conv_plan_free (p);
  return NULL;
}

/* (Cout, K, K, Cin) is cuDNN's NHWC filter layout: the weight goes up as
 * it is. */
float *
fer_cuda_op_conv2d_prepare_weight (fer_backend *be, const float *weight,
    const double *scale, int cout, int k, int cin, gboolean halves,
    GError **error)
{
  /* halves: float32 here too (cuDNN's FP32 and TF32 paths) */
  size_t n = (size_t) cout * k * k * cin, per_out = n / cout;
  float *folded = scale ? g_try_new (float, n) : NULL;
  float *w;
  if (scale && !folded) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "cuda backend: cannot allocate %zu floats to fold a weight", n);
    return NULL;
  }
  for (size_t i = 0; folded && i < n; i++)
    folded[i] = (float) (weight[i] * scale[i / per_out]);
  w = be->ops->alloc (be, n, error);
  if (w && !be->ops->upload (be, w, folded ? folded : weight, n, error)) {
    be->ops->release (be, w);
    w = NULL;
  }
  g_free (folded);
  return w;
}

static gboolean
plain_forward (cuda_backend *cb, const cuda_conv_plan *p, float *out,
    const float *inp, const float *weight, GError **error)
{
  const float one = 1.0f, zero = 0.0f;
  CUDNN_CHECK (cudnnConvolutionForward (cb->dnn, &one, p->x, inp, p->w, weight,
      p->conv, (cudnnConvolutionFwdAlgo_t) p->algo, cb->workspace,
      cb->workspace_bytes, &zero, p->y, out));
  return TRUE;
}

gboolean
fer_cuda_op_conv2d_forward (fer_backend *be, float *out, const float *inp,
    const float *weight, const float *bias, const float *residual,
    const fer_conv_shape *s, gboolean relu, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  cuda_conv_plan *p = get_plan (cb, s, FER_CUDA_CONV_FORWARD, error);
  if (!p)
    return FALSE;

  if (relu && bias && p->fused) {
    const float one = 1.0f, alpha2 = residual ? 1.0f : 0.0f;
    cudnnStatus_t status = cudnnConvolutionBiasActivationForward (cb->dnn, &one,
        p->x, inp, p->w, weight, p->conv, (cudnnConvolutionFwdAlgo_t) p->algo,
        cb->workspace, cb->workspace_bytes, &alpha2, p->y,
        residual ? residual : out, p->bias, bias, p->relu, p->y, out);
    /* a refusal (unsupported, or parameters this fusion does not take)
     * sends this shape down the plain path from now on; the plain call
     * reports anything that is really wrong with them */
    if (CUDNN_STATUS_CATEGORY (status) != CUDNN_STATUS_NOT_SUPPORTED
        && CUDNN_STATUS_CATEGORY (status) != CUDNN_STATUS_BAD_PARAM)
      return fer_cuda_check_cudnn (status,
          "cudnnConvolutionBiasActivationForward (...)", __FILE__, __LINE__,
          error);
    char detail[256] = "";
    cudnnGetLastErrorString (detail, sizeof detail);
    g_debug ("cuda backend: no fused conv+bias+ReLU for %dx%d/%d %d>%d at "
             "%dx%d (%s: %s), using conv + epilogue",
        s->k, s->k, s->stride, s->cin, s->cout, s->h, s->w,
        cudnnGetErrorString (status), detail);
    p->fused = FALSE;
  }
  return plain_forward (cb, p, out, inp, weight, error)
      && CUDA_OK (fer_cuda_bias_act (cb->stream, out, bias, residual,
          (size_t) s->n * s->oh * s->ow, s->cout, relu));
}

size_t
fer_cuda_op_conv2d_train_workspace (fer_backend *be, const fer_conv_shape *s)
{
  return 0;
}

gboolean
fer_cuda_op_conv2d_forward_train (fer_backend *be, float *out, const float *inp,
    const float *weight, const fer_conv_shape *s, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  cuda_conv_plan *p = get_plan (cb, s, FER_CUDA_CONV_FORWARD_TRAIN, error);
  return p && plain_forward (cb, p, out, inp, weight, error);
}

gboolean
fer_cuda_op_conv2d_backward (fer_backend *be, float *dinp, float *dweight,
    const float *dout, const float *inp, const float *weight,
    const fer_conv_shape *s, float *ws, size_t ws_floats, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  const float one = 1.0f, zero = 0.0f;
  cuda_conv_plan *p;

  if (dinp) {
    if (!(p = get_plan (cb, s, FER_CUDA_CONV_BACKWARD_DATA, error)))
      return FALSE;
    CUDNN_CHECK (cudnnConvolutionBackwardData (cb->dnn, &one, p->w, weight,
        p->y, dout, p->conv, (cudnnConvolutionBwdDataAlgo_t) p->algo,
        cb->workspace, cb->workspace_bytes, &zero, p->x, dinp));
  }
  if (!(p = get_plan (cb, s, FER_CUDA_CONV_BACKWARD_FILTER, error)))
    return FALSE;
  CUDNN_CHECK (cudnnConvolutionBackwardFilter (cb->dnn, &one, p->x, inp, p->y,
      dout, p->conv, (cudnnConvolutionBwdFilterAlgo_t) p->algo, cb->workspace,
      cb->workspace_bytes, &one, p->w, dweight));
  return TRUE;
}

gboolean
fer_cuda_conv_output_layout (
    const fer_conv_shape *s, int dims[4], int strides[4], GError **error)
{
  cuda_conv_plan p;
  cudnnDataType_t type;
  int n, c, h, w;
  gboolean ok;

  memset (&p, 0, sizeof p);
  fer_cuda_conv_key_init (&p.key, s->n, s->h, s->w, s->cin, s->cout, s->k,
      s->stride, s->pad, FER_CUDA_CONV_FORWARD, 0);
  ok = describe (&p, s, error)
      && CUDNN_OK (cudnnGetConvolution2dForwardOutputDim (
          p.conv, p.x, p.w, &dims[0], &dims[1], &dims[2], &dims[3]))
      && CUDNN_OK (cudnnGetTensor4dDescriptor (p.y, &type, &n, &c, &h, &w,
          &strides[0], &strides[1], &strides[2], &strides[3]));
  destroy_descriptors (&p);
  return ok;
}
