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
 * FER_CUDA_MATH=fp16 (plan.h): the inference plans (but the stem's, whose
 * 1 or 3 input channels do not suit half-precision NHWC kernels, see
 * fer_cuda_math_half) describe half-precision tensors and filter with FP32
 * accumulation (cuDNN's pseudo-half
 * configuration: x, w, y CUDNN_DATA_HALF, compute type CUDNN_DATA_FLOAT)
 * on tensor cores. The weights are folded and rounded to halves once at
 * load; at each convolution a kernel rounds the FP32 input to halves, cuDNN
 * writes halves, and the epilogue widens them into the FP32 output with
 * bias, residual and ReLU (activation.cu). The activations stay FP32
 * between ops, so every other op (pooling, the head, the training ops) is
 * unchanged; the fused call is not used in half. Both half buffers are
 * the backend's `halves`, grown like the workspace.
 *
 * Training uses the backend's own workspace, not the trainer's `ws`
 * (conv2d_train_workspace asks for none). The backend table's entries are
 * the functions here that take a fer_backend. Filter gradients accumulate
 * (beta = 1), as the backend contract wants. */
#include "cuda/backend_cuda.h"

#include <math.h>
#include <string.h>

#include <fer/safetensors.h>

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

/* The key of the plan for s and kind under math: half precision runs on
 * tensor cores. */
static void
plan_key (fer_cuda_conv_key *key, const fer_conv_shape *s,
    fer_cuda_conv_kind kind, fer_cuda_math math)
{
  const int half = fer_cuda_math_half (math, kind, s->cin, s->cout);
  fer_cuda_conv_key_init (key, s->n, s->h, s->w, s->cin, s->cout, s->k,
      s->stride, s->pad, kind, half || fer_cuda_math_tensor_op (math, kind),
      half);
}

/* The precision named in messages. */
static const char *
math_name (const fer_cuda_conv_key *k)
{
  return k->half ? "FP16" : k->tensor_op ? "TF32" : "FP32";
}

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

/* Whether a candidate's math may leave exact FP32: every type but FMA
 * (DEFAULT lets Ampere and later use TF32 for float data), so that a plan
 * without tensor cores only takes FMA candidates. */
static gboolean
tensor_op_math (cudnnMathType_t m)
{
  return m != CUDNN_FMA_MATH;
}

/* perf[0 .. *n) (any of cuDNN's three *AlgoPerf_t types) into cand. */
#define TO_CANDIDATES(perf)                                                    \
  for (int i = 0; i < *n; i++)                                                 \
    cand[i] = (fer_cuda_algo_candidate)                                        \
    {                                                                          \
      (perf)[i].algo,                                                          \
          (perf)[i].status == CUDNN_STATUS_SUCCESS                             \
          && (p->key.half                                                      \
              || (perf)[i].mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION), \
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
  /* the accumulation (compute type) is FP32 in every math */
  const cudnnDataType_t data = k->half ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
  CUDNN_CHECK (cudnnCreateTensorDescriptor (&p->x));
  CUDNN_CHECK (cudnnCreateTensorDescriptor (&p->y));
  CUDNN_CHECK (cudnnCreateFilterDescriptor (&p->w));
  CUDNN_CHECK (cudnnCreateConvolutionDescriptor (&p->conv));
  CUDNN_CHECK (cudnnSetTensor4dDescriptor (
      p->x, CUDNN_TENSOR_NHWC, data, s->n, s->cin, s->h, s->w));
  CUDNN_CHECK (cudnnSetTensor4dDescriptor (
      p->y, CUDNN_TENSOR_NHWC, data, s->n, s->cout, s->oh, s->ow));
  CUDNN_CHECK (cudnnSetFilter4dDescriptor (
      p->w, data, CUDNN_TENSOR_NHWC, s->cout, s->cin, s->k, s->k));
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
        p->relu, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
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

  plan_key (&key, s, kind, cb->math);
  if (!fer_cuda_enter (cb, error))
    return NULL;
  p = g_hash_table_lookup (cb->conv_plans, &key);
  if (p)
    goto ready;

  p = g_new0 (cuda_conv_plan, 1);
  p->key = key;
  p->fused = !key.half;
  if (!describe (p, s, error) || !rank_algorithms (cb, p, cand, &n_cand, error))
    goto fail;
  pick = fer_cuda_pick_algo (cand, n_cand, FER_CUDA_WS_LIMIT, key.tensor_op);
  if (pick < 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_UNSUPPORTED,
        "cuda backend: cuDNN offers no %s algorithm for a %dx%d/%d pad %d "
        "convolution of (%d, %d, %d, %d) to %d channels within %zu MiB",
        math_name (&key), s->k, s->k, s->stride, s->pad, s->n, s->h, s->w,
        s->cin, s->cout, FER_CUDA_WS_LIMIT >> 20);
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

/* Weight i of n folded with its output channel's scale (NULL: 1). */
static float
folded_weight (
    const float *weight, const double *scale, size_t i, size_t n, int cout)
{
  return scale ? (float) (weight[i] * scale[i / (n / cout)]) : weight[i];
}

gboolean
fer_cuda_weight_halves (uint16_t *dst, const float *weight, const double *scale,
    int cout, int k, int cin, GError **error)
{
  const size_t n = (size_t) cout * k * k * cin;
  for (size_t i = 0; i < n; i++) {
    const float f = folded_weight (weight, scale, i, n, cout);
    dst[i] = fer_f32_to_f16 (f);
    if ((dst[i] & 0x7fff) == 0x7c00 && !isinf (f)) {
      g_set_error (error, FER_ERROR, FER_ERROR_UNSUPPORTED,
          "cuda backend: FER_CUDA_MATH=fp16: weight %zu of a %dx%d "
          "convolution of %d to %d channels is %g with its batch-norm scale, "
          "beyond half precision's 65504 (use FER_CUDA_MATH=default)",
          i, k, k, cin, cout, f);
      return FALSE;
    }
  }
  return TRUE;
}

/* (Cout, K, K, Cin) is cuDNN's NHWC filter layout: the weight goes up as
 * it is, folded, in floats or (FER_CUDA_MATH=fp16) in halves. */
float *
fer_cuda_op_conv2d_prepare_weight (fer_backend *be, const float *weight,
    const double *scale, const fer_conv_shape *s, gboolean halves,
    GError **error)
{
  const int cout = s->cout, k = s->k, cin = s->cin;
  /* `halves` (keep F16 weights unfolded) is the CPU backend's; here the
   * math mode decides */
  cuda_backend *cb = (cuda_backend *) be;
  const gboolean half =
      fer_cuda_math_half (cb->math, FER_CUDA_CONV_FORWARD, cin, cout);
  const size_t n = (size_t) cout * k * k * cin;
  const size_t bytes = n * (half ? sizeof (uint16_t) : sizeof (float));
  void *host = half || scale ? g_try_malloc (bytes) : NULL;
  float *w = NULL;

  if ((half || scale) && !host) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "cuda backend: cannot allocate %zu bytes to fold a weight", bytes);
    return NULL;
  }
  if (half) {
    if (!fer_cuda_weight_halves (host, weight, scale, cout, k, cin, error))
      goto done;
  } else {
    for (size_t i = 0; host && i < n; i++)
      ((float *) host)[i] = folded_weight (weight, scale, i, n, cout);
  }
  /* alloc counts floats: (n + 1) / 2 of them hold n halves */
  w = be->ops->alloc (be, half ? (n + 1) / 2 : n, error);
  if (w && !fer_cuda_upload_bytes (cb, w, host ? host : weight, bytes, error)) {
    be->ops->release (be, w);
    w = NULL;
  }
done:
  g_free (host);
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

/* FER_CUDA_MATH=fp16: inp rounded to halves, cuDNN's convolution (weight:
 * the halves of prepare_weight) into halves, widened into out by the
 * epilogue. The halves of y start on a
 * 128-byte boundary, as those of x do (cudaMalloc's alignment), for the
 * tensor cores' vector loads. */
static gboolean
half_forward (cuda_backend *cb, const cuda_conv_plan *p, float *out,
    const float *inp, const float *weight, const float *bias,
    const float *residual, const fer_conv_shape *s, gboolean relu,
    GError **error)
{
  const float one = 1.0f, zero = 0.0f;
  const size_t n_in = (size_t) s->n * s->h * s->w * s->cin;
  const size_t rows = (size_t) s->n * s->oh * s->ow;
  const size_t y_at = (n_in + 63) / 64 * 64;
  uint16_t *x, *y;

  if (!fer_cuda_grow_device (cb, &cb->halves, &cb->halves_bytes,
          (y_at + rows * s->cout) * sizeof (uint16_t), error))
    return FALSE;
  x = cb->halves;
  y = x + y_at;
  CUDA_CHECK (fer_cuda_floats_to_halves (cb->stream, x, inp, n_in));
  CUDNN_CHECK (cudnnConvolutionForward (cb->dnn, &one, p->x, x, p->w, weight,
      p->conv, (cudnnConvolutionFwdAlgo_t) p->algo, cb->workspace,
      cb->workspace_bytes, &zero, p->y, y));
  CUDA_CHECK (fer_cuda_halves_bias_act (
      cb->stream, out, y, bias, residual, rows, s->cout, relu));
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
  if (p->key.half)
    return half_forward (
        cb, p, out, inp, weight, bias, residual, s, relu, error);

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
fer_cuda_conv_describe (const fer_conv_shape *s, fer_cuda_conv_kind kind,
    fer_cuda_math math, fer_cuda_conv_layout *out, GError **error)
{
  cuda_conv_plan p;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  int n, c, h, w, x_strides[4], pad_h, pad_w, u, v, dil_h, dil_w;
  cudnnConvolutionMode_t mode;
  gboolean ok;

  memset (&p, 0, sizeof p);
  memset (out, 0, sizeof *out);
  plan_key (&p.key, s, kind, math);
  ok = describe (&p, s, error)
      && CUDNN_OK (cudnnGetConvolution2dForwardOutputDim (p.conv, p.x, p.w,
          &out->dims[0], &out->dims[1], &out->dims[2], &out->dims[3]))
      && CUDNN_OK (cudnnGetTensor4dDescriptor (p.y, &out->y_type, &n, &c, &h,
          &w, &out->strides[0], &out->strides[1], &out->strides[2],
          &out->strides[3]))
      && CUDNN_OK (cudnnGetTensor4dDescriptor (p.x, &out->x_type, &n, &c, &h,
          &w, &x_strides[0], &x_strides[1], &x_strides[2], &x_strides[3]))
      && CUDNN_OK (cudnnGetFilter4dDescriptor (
          p.w, &out->w_type, &format, &n, &c, &h, &w))
      && CUDNN_OK (cudnnGetConvolution2dDescriptor (p.conv, &pad_h, &pad_w, &u,
          &v, &dil_h, &dil_w, &mode, &out->compute_type))
      && CUDNN_OK (cudnnGetConvolutionMathType (p.conv, &out->math_type));
  out->w_nhwc = ok && format == CUDNN_TENSOR_NHWC;
  destroy_descriptors (&p);
  return ok;
}
