/* The CUDA backend's host side, which runs without a GPU: the planning
 * (cuda/plan.c: the math modes, which convolutions may use TF32 or run in
 * half precision, the self-test's tolerance per mode, FER_CUDA_MATH's
 * error, the plan cache's key, the algorithm choice from cuDNN's ranked candidates,
 * the growth of the workspace and scratch buffers, the batch-norm
 * reduction split, launch sizes), the check macros that turn CUDA,
 * cuBLAS and cuDNN failures into GErrors, the backend table, the cuDNN
 * descriptors of a convolution in each math (cuDNN's descriptor calls need
 * no device), and FP16's weights folded into halves. Built only with the
 * CUDA backend. */
#include <math.h>
#include <string.h>
#include <glib.h>

#include "cuda/backend_cuda.h"
#include "cuda/preprocess-math.h"
#include "test-images.h"

static void
test_math (void)
{
  fer_cuda_math m = FER_CUDA_MATH_TF32;
  g_assert_cmpint (fer_cuda_math_parse (NULL, &m), ==, 0);
  g_assert_cmpint (m, ==, FER_CUDA_MATH_DEFAULT);
  g_assert_cmpint (fer_cuda_math_parse ("fp32", &m), ==, 0);
  g_assert_cmpint (m, ==, FER_CUDA_MATH_FP32);
  g_assert_cmpint (fer_cuda_math_parse ("tf32", &m), ==, 0);
  g_assert_cmpint (m, ==, FER_CUDA_MATH_TF32);
  g_assert_cmpint (fer_cuda_math_parse ("", &m), ==, 0);
  g_assert_cmpint (m, ==, FER_CUDA_MATH_DEFAULT);
  g_assert_cmpint (fer_cuda_math_parse ("fp16", &m), ==, 0);
  g_assert_cmpint (m, ==, FER_CUDA_MATH_FP16);
  g_assert_cmpint (fer_cuda_math_parse ("FP16", &m), ==, -1);
  g_assert_cmpint (fer_cuda_math_parse ("half", &m), ==, -1);
  g_assert_cmpint (fer_cuda_math_parse ("bf16", &m), ==, -1);

  /* default: TF32 for training, exact inference */
  g_assert_false (
      fer_cuda_math_tensor_op (FER_CUDA_MATH_DEFAULT, FER_CUDA_CONV_FORWARD));
  for (int k = FER_CUDA_CONV_FORWARD_TRAIN; k < FER_CUDA_CONV_N_KINDS; k++) {
    g_assert_true (fer_cuda_math_tensor_op (FER_CUDA_MATH_DEFAULT, k));
    g_assert_false (fer_cuda_math_tensor_op (FER_CUDA_MATH_FP32, k));
    g_assert_true (fer_cuda_math_tensor_op (FER_CUDA_MATH_TF32, k));
  }
  g_assert_true (
      fer_cuda_math_tensor_op (FER_CUDA_MATH_TF32, FER_CUDA_CONV_FORWARD));

  /* fp16: half precision for the inference convolutions only, and only
   * with channel counts that are multiples of 8 (not the stem's); TF32
   * and FP32 otherwise as in the default (the training ops, the head) */
  for (int k = FER_CUDA_CONV_FORWARD; k < FER_CUDA_CONV_N_KINDS; k++) {
    g_assert_cmpint (fer_cuda_math_half (FER_CUDA_MATH_FP16, k, 64, 128), ==,
        k == FER_CUDA_CONV_FORWARD);
    g_assert_cmpint (fer_cuda_math_tensor_op (FER_CUDA_MATH_FP16, k), ==,
        fer_cuda_math_tensor_op (FER_CUDA_MATH_DEFAULT, k));
    g_assert_false (fer_cuda_math_half (FER_CUDA_MATH_DEFAULT, k, 64, 128));
    g_assert_false (fer_cuda_math_half (FER_CUDA_MATH_FP32, k, 64, 128));
    g_assert_false (fer_cuda_math_half (FER_CUDA_MATH_TF32, k, 64, 128));
  }
  g_assert_true (
      fer_cuda_math_half (FER_CUDA_MATH_FP16, FER_CUDA_CONV_FORWARD, 512, 512));
  g_assert_true (
      fer_cuda_math_half (FER_CUDA_MATH_FP16, FER_CUDA_CONV_FORWARD, 8, 8));
  static const int odd[][2] = { { 1, 64 }, { 3, 64 }, { 64, 7 }, { 12, 64 },
    { 5, 9 } };
  for (guint i = 0; i < G_N_ELEMENTS (odd); i++)
    g_assert_false (fer_cuda_math_half (
        FER_CUDA_MATH_FP16, FER_CUDA_CONV_FORWARD, odd[i][0], odd[i][1]));
}

/* The self-test's tolerance follows the math (docs/architecture.md). */
static void
test_tolerance (void)
{
  g_assert_cmpfloat (fer_cuda_math_selftest_tolerance (FER_CUDA_MATH_DEFAULT),
      ==, FER_SELFTEST_TOLERANCE_FP32);
  g_assert_cmpfloat (fer_cuda_math_selftest_tolerance (FER_CUDA_MATH_FP32), ==,
      FER_SELFTEST_TOLERANCE_FP32);
  g_assert_cmpfloat (fer_cuda_math_selftest_tolerance (FER_CUDA_MATH_TF32), ==,
      FER_SELFTEST_TOLERANCE_REDUCED);
  g_assert_cmpfloat (fer_cuda_math_selftest_tolerance (FER_CUDA_MATH_FP16), ==,
      FER_SELFTEST_TOLERANCE_FP16);
  g_assert_cmpfloat (
      FER_SELFTEST_TOLERANCE_FP32, <, FER_SELFTEST_TOLERANCE_FP16);
  /* below the smallest wrong answer the self-test exists to catch: a wrong
   * kernel moves probabilities by 0.1 or more */
  g_assert_cmpfloat (FER_SELFTEST_TOLERANCE_FP16, <, 0.1);
}

/* FER_CUDA_MATH read from the environment, and its error naming the value
 * and the accepted ones. */
static void
test_math_env (void)
{
  static const struct
  {
    const char *value;
    fer_cuda_math math;
  } good[] = { { "default", FER_CUDA_MATH_DEFAULT },
    { "fp32", FER_CUDA_MATH_FP32 }, { "tf32", FER_CUDA_MATH_TF32 },
    { "fp16", FER_CUDA_MATH_FP16 }, { "", FER_CUDA_MATH_DEFAULT } };
  fer_cuda_math m;
  GError *error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (good); i++) {
    g_setenv ("FER_CUDA_MATH", good[i].value, TRUE);
    g_assert_true (fer_cuda_math_from_env (&m, &error));
    g_assert_no_error (error);
    g_assert_cmpint (m, ==, good[i].math);
  }
  g_unsetenv ("FER_CUDA_MATH");
  g_assert_true (fer_cuda_math_from_env (&m, &error));
  g_assert_cmpint (m, ==, FER_CUDA_MATH_DEFAULT);

  g_setenv ("FER_CUDA_MATH", "half", TRUE);
  g_assert_false (fer_cuda_math_from_env (&m, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_test_message ("%s", error->message);
  g_assert_cmpstr (error->message, ==,
      "FER_CUDA_MATH='half', expected default, fp32, tf32 or fp16 (or unset)");
  g_clear_error (&error);
  g_unsetenv ("FER_CUDA_MATH");
}

static void
test_key (void)
{
  fer_cuda_conv_key a, b;
  fer_cuda_conv_key_init (
      &a, 8, 48, 48, 1, 64, 7, 2, 3, FER_CUDA_CONV_FORWARD, 0, 0);
  fer_cuda_conv_key_init (
      &b, 8, 48, 48, 1, 64, 7, 2, 3, FER_CUDA_CONV_FORWARD, 0, 0);
  g_assert_true (fer_cuda_conv_key_equal (&a, &b));
  g_assert_cmpuint (
      fer_cuda_conv_key_hash (&a), ==, fer_cuda_conv_key_hash (&b));
  /* every field takes part */
  const fer_cuda_conv_key variants[] = {
    { 9, 48, 48, 1, 64, 7, 2, 3, FER_CUDA_CONV_FORWARD, 0, 0 },
    { 8, 47, 48, 1, 64, 7, 2, 3, FER_CUDA_CONV_FORWARD, 0, 0 },
    { 8, 48, 47, 1, 64, 7, 2, 3, FER_CUDA_CONV_FORWARD, 0, 0 },
    { 8, 48, 48, 3, 64, 7, 2, 3, FER_CUDA_CONV_FORWARD, 0, 0 },
    { 8, 48, 48, 1, 32, 7, 2, 3, FER_CUDA_CONV_FORWARD, 0, 0 },
    { 8, 48, 48, 1, 64, 3, 2, 3, FER_CUDA_CONV_FORWARD, 0, 0 },
    { 8, 48, 48, 1, 64, 7, 1, 3, FER_CUDA_CONV_FORWARD, 0, 0 },
    { 8, 48, 48, 1, 64, 7, 2, 1, FER_CUDA_CONV_FORWARD, 0, 0 },
    { 8, 48, 48, 1, 64, 7, 2, 3, FER_CUDA_CONV_BACKWARD_DATA, 0, 0 },
    { 8, 48, 48, 1, 64, 7, 2, 3, FER_CUDA_CONV_FORWARD, 1, 0 },
    { 8, 48, 48, 1, 64, 7, 2, 3, FER_CUDA_CONV_FORWARD, 0, 1 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (variants); i++) {
    fer_cuda_conv_key v;
    const fer_cuda_conv_key *s = &variants[i];
    fer_cuda_conv_key_init (&v, s->n, s->h, s->w, s->cin, s->cout, s->k,
        s->stride, s->pad, s->kind, s->tensor_op, s->half);
    g_assert_false (fer_cuda_conv_key_equal (&a, &v));
    g_assert_cmpuint (
        fer_cuda_conv_key_hash (&a), !=, fer_cuda_conv_key_hash (&v));
  }
  /* any non-zero tensor_op or half is the same key */
  fer_cuda_conv_key_init (
      &a, 1, 2, 2, 1, 1, 1, 1, 0, FER_CUDA_CONV_FORWARD, 5, 7);
  fer_cuda_conv_key_init (
      &b, 1, 2, 2, 1, 1, 1, 1, 0, FER_CUDA_CONV_FORWARD, 1, 1);
  g_assert_true (fer_cuda_conv_key_equal (&a, &b));
}

static void
test_pick_algo (void)
{
  const fer_cuda_algo_candidate c[] = {
    { 7, 0, 0, 0, 0 },                /* not supported */
    { 6, 1, (size_t) 2 << 30, 0, 0 }, /* too much workspace */
    { 5, 1, 1000, 1, 1 },             /* tensor cores */
    { 1, 1, 5000, 0, 3 },
    { 0, 1, 0, 0, 3 },
  };
  g_assert_cmpint (fer_cuda_pick_algo (c, 5, FER_CUDA_WS_LIMIT, 1), ==, 2);
  g_assert_cmpint (fer_cuda_pick_algo (c, 5, FER_CUDA_WS_LIMIT, 0), ==, 3);
  g_assert_cmpint (fer_cuda_pick_algo (c, 5, (size_t) 4 << 30, 0), ==, 1);
  g_assert_cmpint (fer_cuda_pick_algo (c, 5, 100, 0), ==, 4);
  g_assert_cmpint (fer_cuda_pick_algo (c, 1, FER_CUDA_WS_LIMIT, 1), ==, -1);
  g_assert_cmpint (fer_cuda_pick_algo (c, 0, FER_CUDA_WS_LIMIT, 1), ==, -1);
}

static void
test_grow (void)
{
  const size_t mib = 1 << 20;
  g_assert_cmpuint (fer_cuda_grow_bytes (0, 0), ==, 0);
  g_assert_cmpuint (fer_cuda_grow_bytes (mib, mib), ==, 0);
  g_assert_cmpuint (fer_cuda_grow_bytes (mib, 10), ==, 0);
  g_assert_cmpuint (fer_cuda_grow_bytes (0, 1), ==, mib);
  g_assert_cmpuint (fer_cuda_grow_bytes (0, 3 * mib + 1), ==, 4 * mib);
  /* a little more than there is: half as much again */
  g_assert_cmpuint (fer_cuda_grow_bytes (10 * mib, 10 * mib + 1), ==, 15 * mib);
  /* much more: what is asked, rounded */
  g_assert_cmpuint (fer_cuda_grow_bytes (mib, 100 * mib - 5), ==, 100 * mib);
}

static void
test_batchnorm_split (void)
{
  g_assert_cmpint (fer_cuda_bn_splits (1), ==, 1);
  g_assert_cmpint (fer_cuda_bn_splits (511), ==, 1);
  g_assert_cmpint (fer_cuda_bn_splits (2304), ==, 9);
  g_assert_cmpint (fer_cuda_bn_splits (256 * 24 * 24), ==, 128);
  /* two partials per split and channel + mean in double, 4 floats */
  g_assert_cmpuint (fer_cuda_bn_scratch_bytes (2304, 512), ==,
      (2 * 9 + 1) * 512 * 8 + 4 * 512 * 4);
  g_assert_cmpuint (fer_cuda_bn_scratch_bytes (1, 1), ==, 3 * 8 + 16);
}

static void
test_blocks (void)
{
  g_assert_cmpuint (fer_cuda_blocks (0), ==, 1);
  g_assert_cmpuint (fer_cuda_blocks (1), ==, 1);
  g_assert_cmpuint (fer_cuda_blocks (FER_CUDA_THREADS), ==, 1);
  g_assert_cmpuint (fer_cuda_blocks (FER_CUDA_THREADS + 1), ==, 2);
  /* capped: grid-stride loops do the rest */
  g_assert_cmpuint (fer_cuda_blocks ((size_t) 1 << 40), ==, 65535u * 16);
}

static void
expect (GError *error, int code, const char *const *needles)
{
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_cmpint (error->code, ==, code);
  for (int i = 0; needles[i]; i++)
    if (!strstr (error->message, needles[i]))
      g_error ("'%s' lacks '%s'", error->message, needles[i]);
}

/* A function in the backend's style: CUDA_CHECK returns FALSE from it. */
static gboolean
two_calls (cudaError_t first, cudaError_t second, int *reached, GError **error)
{
  CUDA_CHECK (first);
  *reached = 1;
  CUDA_CHECK (second);
  *reached = 2;
  return TRUE;
}

static void
test_checks (void)
{
  GError *error = NULL;
  int reached = 0;

  g_assert_true (fer_cuda_check_runtime (cudaSuccess, "x", "f.c", 1, &error));
  g_assert_no_error (error);
  g_assert_false (fer_cuda_check_runtime (cudaErrorMemoryAllocation,
      "cudaMalloc (&p, bytes)", "conv.c", 42, &error));
  expect (error, FER_ERROR_NOMEM,
      (const char *const[]){ "cudaErrorMemoryAllocation",
          "`cudaMalloc (&p, bytes)`", "conv.c:42", NULL });
  g_clear_error (&error);
  g_assert_false (fer_cuda_check_cublas (CUBLAS_STATUS_EXECUTION_FAILED,
      "cublasSgemm (...)", "linear.c", 7, &error));
  expect (error, FER_ERROR_BACKEND,
      (const char *const[]){ "cuBLAS", "CUBLAS_STATUS_EXECUTION_FAILED",
          "`cublasSgemm (...)`", "linear.c:7", NULL });
  g_clear_error (&error);
  g_assert_false (fer_cuda_check_cudnn (CUDNN_STATUS_BAD_PARAM,
      "cudnnConvolutionForward (...)", "conv.c", 9, &error));
  expect (error, FER_ERROR_BACKEND,
      (const char *const[]){ "cuDNN", "CUDNN_STATUS_BAD_PARAM",
          "`cudnnConvolutionForward (...)`", "conv.c:9", NULL });
  g_clear_error (&error);

  /* the macro form: the statement text, this file, and an early return */
  g_assert_true (two_calls (cudaSuccess, cudaSuccess, &reached, &error));
  g_assert_cmpint (reached, ==, 2);
  g_assert_false (
      two_calls (cudaSuccess, cudaErrorInvalidValue, &reached, &error));
  g_assert_cmpint (reached, ==, 1);
  expect (error, FER_ERROR_BACKEND,
      (const char *const[]){
          "cudaErrorInvalidValue", "`second`", "test_cuda_host.c", NULL });
  g_clear_error (&error);
  reached = 0;
  g_assert_false (
      two_calls (cudaErrorLaunchFailure, cudaSuccess, &reached, &error));
  g_assert_cmpint (reached, ==, 0);
  g_clear_error (&error);
}

/* The descriptors a convolution plan makes, read back from cuDNN (no
 * device needed): cuDNN derives our output size from them, with the
 * channel count of the NHWC filter, and the output tensor is NHWC; the
 * data are halves for the inference forward under fp16 only (not the
 * stems' and odd shapes'), floats
 * otherwise, the accumulation is FP32 always, and the math type allows
 * tensor cores where plan.c says so. */
static void
test_descriptors (void)
{
  static const int shapes[][6] = {
    /* h, cin, cout, k, stride, pad */
    { 48, 1, 64, 7, 2, 3 },
    { 48, 3, 64, 3, 1, 1 },
    { 12, 64, 64, 3, 1, 1 },
    { 12, 64, 128, 3, 2, 1 },
    { 12, 64, 128, 1, 2, 0 },
    { 6, 128, 256, 3, 2, 1 },
    { 3, 256, 512, 3, 2, 1 },
    { 2, 512, 512, 3, 1, 1 },
    { 7, 5, 9, 3, 2, 1 },
  };
  static const fer_cuda_math maths[] = { FER_CUDA_MATH_DEFAULT,
    FER_CUDA_MATH_FP32, FER_CUDA_MATH_TF32, FER_CUDA_MATH_FP16 };
  int halves = 0;
  for (guint i = 0; i < G_N_ELEMENTS (shapes); i++) {
    const int *v = shapes[i];
    fer_conv_shape s;
    fer_conv_shape_init (&s, 3, v[0], v[0], v[1], v[2], v[3], v[4], v[5]);
    for (guint mi = 0; mi < G_N_ELEMENTS (maths); mi++) {
      for (int kind = 0; kind < FER_CUDA_CONV_N_KINDS; kind++) {
        const gboolean half = maths[mi] == FER_CUDA_MATH_FP16
            && kind == FER_CUDA_CONV_FORWARD && s.cin % 8 == 0
            && s.cout % 8 == 0;
        const cudnnDataType_t data = half ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
        fer_cuda_conv_layout l;
        GError *error = NULL;
        g_assert_true (
            fer_cuda_conv_describe (&s, kind, maths[mi], &l, &error));
        g_assert_no_error (error);
        if (mi == 0 && kind == 0)
          g_test_message ("%dx%d/%d %d>%d at %d: (%d, %d, %d, %d)", s.k, s.k,
              s.stride, s.cin, s.cout, s.h, l.dims[0], l.dims[1], l.dims[2],
              l.dims[3]);
        g_assert_cmpint (l.dims[0], ==, s.n);
        g_assert_cmpint (l.dims[1], ==, s.cout);
        g_assert_cmpint (l.dims[2], ==, s.oh);
        g_assert_cmpint (l.dims[3], ==, s.ow);
        g_assert_cmpint (l.strides[0], ==, s.oh * s.ow * s.cout);
        g_assert_cmpint (l.strides[1], ==, 1);
        g_assert_cmpint (l.strides[2], ==, s.ow * s.cout);
        g_assert_cmpint (l.strides[3], ==, s.cout);
        g_assert_cmpint (l.x_type, ==, data);
        g_assert_cmpint (l.y_type, ==, data);
        g_assert_cmpint (l.w_type, ==, data);
        g_assert_cmpint (l.compute_type, ==, CUDNN_DATA_FLOAT);
        g_assert_true (l.w_nhwc);
        g_assert_cmpint (l.math_type, ==,
            half || fer_cuda_math_tensor_op (maths[mi], kind)
                ? CUDNN_TENSOR_OP_MATH
                : CUDNN_FMA_MATH);
        halves += half;
      }
    }
  }
  /* all but the stems' and the odd shape's */
  g_assert_cmpint (halves, ==, G_N_ELEMENTS (shapes) - 3);
}

/* FP16's weights: folded in double as the FP32 path folds them, then
 * rounded to the nearest half, ties to even; a folded weight beyond
 * half's range is an error naming it, not an infinity. */
static void
test_weight_halves (void)
{
  enum
  {
    COUT = 3,
    K = 3,
    CIN = 5,
    N = COUT * K * K * CIN
  };
  const float one_ulp = 1.0f / 1024; /* a half's ulp at 1 */
  float w[N];
  uint16_t h[N];
  const double scale[COUT] = { 0.5, 3.0, 1.0 / 3.0 };
  GError *error = NULL;
  double worst = 0.0;
  GRand *r = g_rand_new_with_seed (12);

  for (int i = 0; i < N; i++)
    w[i] = (float) g_rand_double_range (r, -4.0, 4.0);
  /* exact halves, and ties between two halves at 1 */
  w[0] = 1.0f;
  w[1] = -2.5f;
  w[2] = 65504.0f;
  w[3] = 1.0f + one_ulp / 2;     /* tie: to even, 1 */
  w[4] = 1.0f + 3 * one_ulp / 2; /* tie: to even, 1 + 2 ulp */
  w[5] = ldexpf (1.0f, -24);     /* the smallest subnormal half */
  g_assert_true (fer_cuda_weight_halves (h, w, NULL, COUT, K, CIN, &error));
  g_assert_no_error (error);
  g_assert_cmphex (h[0], ==, 0x3c00);
  g_assert_cmphex (h[1], ==, 0xc100);
  g_assert_cmphex (h[2], ==, 0x7bff);
  g_assert_cmphex (h[3], ==, 0x3c00);
  g_assert_cmphex (h[4], ==, 0x3c02);
  g_assert_cmphex (h[5], ==, 0x0001);

  /* folded: the nearest half to float (w * scale) */
  w[2] = 3.0f;
  g_assert_true (fer_cuda_weight_halves (h, w, scale, COUT, K, CIN, &error));
  g_assert_no_error (error);
  for (int i = 0; i < N; i++) {
    const double want = (double) (float) (w[i] * scale[i / (K * K * CIN)]);
    const double got = fer_f16_to_f32 (h[i]);
    const double rel = fabs (got - want) / fmax (fabs (want), ldexp (1, -14));
    if (i >= 6) /* past the ties made above */
      worst = fmax (worst, rel);
    /* within half an ulp: 2^-11 relative for normal halves */
    g_assert_cmpfloat (rel, <=, ldexp (1.0, -11));
  }
  g_assert_cmphex (h[0], ==, 0x3800); /* 1 x 0.5 */
  g_test_message ("max relative error of the folded halves: %.3g (bound %.3g)",
      worst, ldexp (1.0, -11));
  g_assert_cmpfloat (worst, >, 0.0); /* some weights were rounded */

  /* beyond 65504 with the scale: an error naming the weight */
  w[K * K * CIN + 7] = 30000.0f; /* x 3 */
  g_assert_false (fer_cuda_weight_halves (h, w, scale, COUT, K, CIN, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_UNSUPPORTED);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "weight 52 "));
  g_assert_nonnull (strstr (error->message, "90000"));
  g_assert_nonnull (strstr (error->message, "FER_CUDA_MATH=default"));
  g_clear_error (&error);
  /* 65519 still rounds to 65504, 65520 does not */
  w[K * K * CIN + 7] = 65519.0f / 3.0f;
  w[0] = 65519.0f;
  g_assert_true (fer_cuda_weight_halves (h, w, NULL, COUT, K, CIN, &error));
  g_assert_cmphex (h[0], ==, 0x7bff);
  w[0] = 65520.0f;
  g_assert_false (fer_cuda_weight_halves (h, w, NULL, COUT, K, CIN, &error));
  g_clear_error (&error);
  g_rand_free (r);
}

/* The device's preprocessing without the device: the host plan (taps,
 * layout) and the arithmetic the kernel runs (preprocess-math.h), on the
 * frame laid out as the upload lays it, against fer_preprocess, bit for
 * bit: every pixel format, gray and colour inputs, both YUV ranges, views
 * flipped, across the frame's edges, up- and downscaled. */
static int
check_plan_math (const fer_image *img, const fer_view *views, int n,
    const fer_input_spec *spec, void **buf, size_t *cap)
{
  const int S = spec->size, C = spec->channels;
  fer_cuda_batch_plan p;
  GError *error = NULL;
  int checked = 0;

  g_assert_true (
      fer_cuda_batch_plan_make (&p, buf, cap, img, views, n, spec, &error));
  g_assert_no_error (error);
  /* the frame and the taps as the uploads lay them out */
  guint8 *data = g_malloc0 (p.frame_bytes + p.taps_bytes);
  for (int k = 0; k < 3; k++)
    if (p.plane_bytes[k])
      memcpy (data + p.frame.offsets[k], img->planes[k], p.plane_bytes[k]);
  memcpy (data + p.frame_bytes, *buf, p.taps_bytes);
  fer_cuda_taps_rebase (&p.taps, *buf, data + p.frame_bytes);
  memset (*buf, 0xff, p.taps_bytes); /* nothing reads the host's taps now */
  float *ref = g_new (float, (size_t) C *S *S);
  for (int v = 0; v < n; v++) {
    g_assert_true (fer_preprocess (img, &views[v], spec, ref, NULL, &error));
    for (int c = 0; c < C; c++)
      for (int oy = 0; oy < S; oy++)
        for (int ox = 0; ox < S; ox++) {
          float got = fer_pp_value (
              &p.frame, data, &p.taps, S, C, &p.norm, v, oy, ox, c);
          float want = ref[((size_t) c * S + oy) * S + ox];
          if (memcmp (&got, &want, sizeof got) != 0)
            g_error ("%dx%d format %d, %d channels, range %d, view %d, "
                     "(%d, %d, %d): %.9g, fer_preprocess %.9g",
                img->width, img->height, img->format, C, img->full_range, v, c,
                oy, ox, got, want);
          checked++;
        }
  }
  g_free (ref);
  g_free (data);
  return checked;
}

static void
test_preprocess_math (void)
{
  enum
  {
    W = 101,
    H = 77,
    S = 48,
    N = 5
  };
  static const fer_pixel_format formats[] = { FER_PIXEL_GRAY8, FER_PIXEL_RGB,
    FER_PIXEL_BGR, FER_PIXEL_RGBA, FER_PIXEL_BGRA, FER_PIXEL_RGBX,
    FER_PIXEL_BGRX, FER_PIXEL_XRGB, FER_PIXEL_ARGB, FER_PIXEL_I420,
    FER_PIXEL_NV12 };
  static const int bpp[] = { 1, 3, 3, 4, 4, 4, 4, 4, 4, 1, 1 };
  const fer_view views[N] = {
    { { 10.0f, 5.0f, 60.0f, 60.0f }, FALSE },
    { { 10.0f, 5.0f, 60.0f, 60.0f }, TRUE },
    { { -12.5f, 30.25f, 40.0f, 52.0f }, FALSE },
    { { 3.0f, 2.0f, 20.0f, 17.0f }, TRUE },
    { { 0.0f, 0.0f, (float) W, (float) H }, FALSE },
  };
  GRand *r = g_rand_new_with_seed (3);
  void *buf = NULL;
  size_t cap = 0;
  int checked = 0;

  for (guint fi = 0; fi < G_N_ELEMENTS (formats); fi++) {
    const gboolean yuv =
        formats[fi] == FER_PIXEL_I420 || formats[fi] == FER_PIXEL_NV12;
    for (int C = 1; C <= 3; C += 2) {
      for (int full = 0; full < (yuv ? 2 : 1); full++) {
        const int stride = W * bpp[fi] + 7, cstride = W + 9;
        guint8 *planes[3];
        for (int k = 0; k < 3; k++) {
          planes[k] = g_new (guint8, (size_t) (k ? cstride : stride) * H);
          for (int i = 0; i < (k ? cstride : stride) * H; i++)
            planes[k][i] = (guint8) g_rand_int_range (r, 0, 256);
        }
        fer_image img = { formats[fi], W, H,
          { planes[0], planes[1], planes[2] }, { stride, cstride, cstride },
          full };
        fer_input_spec spec = { S, C, { 0.5f, 0.4f, 0.3f },
          { 0.25f, 0.2f, 0.3f } };
        checked += check_plan_math (&img, views, N, &spec, &buf, &cap);
        for (int k = 0; k < 3; k++)
          g_free (planes[k]);
      }
    }
  }
  g_test_message ("%d values equal to fer_preprocess's", checked);

  /* fer_preprocess's validation, with its message */
  guint8 px[4] = { 0 };
  fer_image tiny = { FER_PIXEL_GRAY8, 2, 2, { px }, { 2 }, TRUE };
  fer_input_spec spec = { S, 1, { 0.5f }, { 0.25f } };
  fer_view bad = { { 0.0f, 0.0f, 0.0f, 1.0f }, FALSE };
  fer_cuda_batch_plan p;
  GError *e1 = NULL, *e2 = NULL;
  float out[S * S];
  g_assert_false (
      fer_cuda_batch_plan_make (&p, &buf, &cap, &tiny, &bad, 1, &spec, &e1));
  g_assert_false (fer_preprocess (&tiny, &bad, &spec, out, NULL, &e2));
  g_assert_cmpstr (e1->message, ==, e2->message);
  g_clear_error (&e1);
  g_clear_error (&e2);
  g_free (buf);
  g_rand_free (r);
}

/* The tools' path (fer_model_classify_images) through the device: each
 * image's TTA views of the whole image (1 to 10, as model.c makes them)
 * on images of odd sizes and formats, the kernel's arithmetic against
 * fer_preprocess bit for bit; and the taps, the part the host computes
 * per call, laid out for one upload (ints, zeroed padding, weights) in a
 * buffer that a call no larger than the last one does not reallocate. */
static void
test_preprocess_images (void)
{
  static const fer_input_spec specs[] = { { 48, 1, { 0.5f }, { 0.25f } },
    { 40, 3, { 0.485f, 0.456f, 0.406f }, { 0.229f, 0.224f, 0.225f } } };
  test_odd_images t;
  void *buf = NULL;
  size_t cap = 0;
  int checked = 0;

  test_odd_images_make (&t, 9);
  for (guint si = 0; si < G_N_ELEMENTS (specs); si++)
    for (int i = 0; i < TEST_N_ODD_IMAGES; i++) {
      const fer_image *img = &t.img[i];
      const fer_rect whole = { 0, 0, (float) img->width, (float) img->height };
      fer_view views[FER_TTA_MAX];
      GError *error = NULL;
      g_assert_true (fer_tta_views (
          &whole, specs[si].size, 0, FER_TTA_MAX, views, &error));
      checked +=
          check_plan_math (img, views, FER_TTA_MAX, &specs[si], &buf, &cap);
    }
  /* three faces' views in one batch, longer than the window in which a
   * view looks for its twins: the whole image, a face, the whole again */
  for (int i = 0; i < TEST_N_ODD_IMAGES; i++) {
    const fer_image *img = &t.img[i];
    const fer_rect rects[3] = { { 0, 0, (float) img->width,
                                    (float) img->height },
      { 2.5f, 1.0f, img->width / 2.0f, img->height / 1.5f },
      { 0, 0, (float) img->width, (float) img->height } };
    fer_view views[3 * FER_TTA_MAX];
    GError *error = NULL;
    for (int f = 0; f < 3; f++)
      g_assert_true (fer_tta_views (&rects[f], specs[0].size, 0, FER_TTA_MAX,
          views + f * FER_TTA_MAX, &error));
    checked +=
        check_plan_math (img, views, 3 * FER_TTA_MAX, &specs[0], &buf, &cap);
  }
  g_test_message ("%d values of whole images' views equal to "
                  "fer_preprocess's",
      checked);
  test_odd_images_free (&t);

  /* 10 views of a 1080p frame's face: the layout of one upload */
  static guint8 frame[1920 * 1080];
  const fer_image big = { FER_PIXEL_GRAY8, 1920, 1080, { frame }, { 1920 },
    TRUE };
  const fer_rect face = { 700.5f, 300.25f, 301.0f, 333.0f };
  fer_view views[FER_TTA_MAX];
  fer_cuda_batch_plan p;
  GError *error = NULL;
  g_assert_true (fer_tta_views (&face, 48, 0, FER_TTA_MAX, views, &error));
  g_assert_true (fer_cuda_batch_plan_make (
      &p, &buf, &cap, &big, views, FER_TTA_MAX, &specs[0], &error));
  const size_t ints_bytes = p.n_ints * sizeof (int);
  const size_t floats_at = (ints_bytes + 15) / 16 * 16;
  const int S = specs[0].size;
  /* the ten face transforms have five column ranges and five row ranges
   * (identity, zoom-in, zoom-out, shifted back, shifted forward) */
  g_assert_cmpint (p.n_x_axes, ==, 5);
  g_assert_cmpint (p.n_y_axes, ==, 5);
  g_assert_true ((void *) p.taps.x_axes == buf);
  g_assert_true (p.taps.y_axes == p.taps.x_axes + 2 * S * p.n_x_axes);
  g_assert_true (p.taps.views == p.taps.y_axes + 2 * S * p.n_y_axes);
  g_assert_cmpuint (p.n_ints, ==, 2 * S * (5 + 5) + 3 * FER_TTA_MAX);
  g_assert_true ((char *) p.taps.x_weights == (char *) buf + floats_at);
  g_assert_true (p.taps.y_weights
      == p.taps.x_weights + (size_t) S * p.taps.stride_x * p.n_x_axes);
  g_assert_cmpuint (
      p.n_floats, ==, (size_t) S * 5 * (p.taps.stride_x + p.taps.stride_y));
  g_assert_cmpuint (p.taps_bytes, ==, floats_at + p.n_floats * sizeof (float));
  g_assert_cmpuint (p.taps_bytes, <=, cap);
  for (size_t b = ints_bytes; b < floats_at; b++)
    g_assert_cmpint (((const char *) buf)[b], ==, 0);
  g_assert_cmpuint (p.frame_bytes % 16, ==, 0);
  /* a flipped view shares its twin's axes; shifts share one of them */
  g_assert_cmpint (p.taps.views[3 * 1], ==, p.taps.views[3 * 0]);
  g_assert_cmpint (p.taps.views[3 * 1 + 1], ==, p.taps.views[3 * 0 + 1]);
  g_assert_cmpint (p.taps.views[3 * 1 + 2], ==, 1);
  g_assert_cmpint (p.taps.views[3 * 6], ==, p.taps.views[3 * 3]);
  g_assert_cmpint (p.taps.views[3 * 6 + 1], ==, p.taps.views[3 * 4 + 1]);
  /* ten crops: three column and three row positions */
  g_assert_true (fer_tta_views (&face, 48, 40, FER_TTA_MAX, views, &error));
  g_assert_true (fer_cuda_batch_plan_make (
      &p, &buf, &cap, &big, views, FER_TTA_MAX, &specs[0], &error));
  g_assert_cmpint (p.n_x_axes, ==, 3);
  g_assert_cmpint (p.n_y_axes, ==, 3);
  g_assert_true (fer_tta_views (&face, 48, 0, FER_TTA_MAX, views, &error));
  g_assert_true (fer_cuda_batch_plan_make (
      &p, &buf, &cap, &big, views, FER_TTA_MAX, &specs[0], &error));
  g_test_message (
      "10 views of a 301x333 face on 1080p: %zu bytes of taps", p.taps_bytes);
  void *was = buf;
  const size_t cap_was = cap;
  for (int n = FER_TTA_MAX; n >= 1; n--) {
    g_assert_true (fer_cuda_batch_plan_make (
        &p, &buf, &cap, &big, views, n, &specs[0], &error));
    g_assert_true (buf == was);
    g_assert_cmpuint (cap, ==, cap_was);
  }
  g_free (buf);
}

/* Every entry of the table is there: a missing one would only show on a
 * GPU (the trainer refuses a backend without all its training ops). */
static void
test_table (void)
{
  const fer_backend_ops *o = fer_cuda_backend_ops ();
  const gboolean present[] = { o->name != NULL, o->destroy != NULL,
    o->alloc != NULL, o->release != NULL, o->upload != NULL,
    o->download != NULL, o->set_threads != NULL,
    o->conv2d_prepare_weight != NULL, o->conv2d_forward != NULL,
    o->maxpool2d_forward != NULL, o->avgpool_forward != NULL,
    o->linear_forward != NULL, o->softmax_average != NULL,
    o->conv2d_train_workspace != NULL, o->conv2d_forward_train != NULL,
    o->conv2d_backward != NULL, o->batchnorm_forward_train != NULL,
    o->batchnorm_forward_eval != NULL, o->batchnorm_backward != NULL,
    o->relu_backward != NULL, o->add != NULL, o->dropout_forward != NULL,
    o->dropout_backward != NULL, o->maxpool2d_backward != NULL,
    o->avgpool_backward != NULL, o->linear_backward != NULL,
    o->softmax_xent != NULL, o->adam_update != NULL, o->sgd_update != NULL,
    o->zero != NULL, o->preprocess != NULL };
  for (guint i = 0; i < G_N_ELEMENTS (present); i++)
    if (!present[i])
      g_error ("entry %u of the cuda backend's table is NULL", i);
  g_assert_cmpstr (o->name, ==, "cuda");
  g_assert_cmpint (o->forward_chunk, >, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cuda-plan/math", test_math);
  g_test_add_func ("/cuda-plan/tolerance", test_tolerance);
  g_test_add_func ("/cuda-host/math-env", test_math_env);
  g_test_add_func ("/cuda-plan/key", test_key);
  g_test_add_func ("/cuda-plan/pick-algo", test_pick_algo);
  g_test_add_func ("/cuda-plan/grow", test_grow);
  g_test_add_func ("/cuda-plan/batchnorm-split", test_batchnorm_split);
  g_test_add_func ("/cuda-plan/blocks", test_blocks);
  g_test_add_func ("/cuda-host/checks", test_checks);
  g_test_add_func ("/cuda-host/table", test_table);
  g_test_add_func ("/cuda-host/descriptors", test_descriptors);
  g_test_add_func ("/cuda-host/weight-halves", test_weight_halves);
  g_test_add_func ("/cuda-host/preprocess", test_preprocess_math);
  g_test_add_func ("/cuda-host/preprocess-images", test_preprocess_images);
  return g_test_run ();
}
