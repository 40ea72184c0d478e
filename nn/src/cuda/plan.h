/* Host-side planning for the CUDA backend (private): pure functions of
 * shapes and candidate lists, with no CUDA call, so that CPU-only machines
 * test them (tests/nn/test_cuda_plan.c). Plain C without GLib: the kernels
 * (.cu, nvcc) include this header too. */
#ifndef FER_CUDA_PLAN_H
#define FER_CUDA_PLAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Which convolution a cached plan serves. The inference forward and the
 * training forward differ in math mode (see fer_cuda_math_tensor_op) and
 * in fusion, so they are planned apart. */
typedef enum
{
  FER_CUDA_CONV_FORWARD, /* inference: conv + bias (+ residual) (+ ReLU) */
  FER_CUDA_CONV_FORWARD_TRAIN, /* conv only */
  FER_CUDA_CONV_BACKWARD_DATA,
  FER_CUDA_CONV_BACKWARD_FILTER,
  FER_CUDA_CONV_N_KINDS
} fer_cuda_conv_kind;

/* What a plan is cached under: the whole shape, the kind, the math. */
typedef struct
{
  int n, h, w, cin, cout, k, stride, pad;
  int kind;      /* fer_cuda_conv_kind */
  int tensor_op; /* tensor cores allowed (TF32, or FP16 with `half`) */
  int half;      /* FP16 data, FP32 accumulation (FER_CUDA_MATH=fp16) */
} fer_cuda_conv_key;

/* Math modes: FER_CUDA_MATH=fp32 (exact FP32 everywhere: cuDNN FMA
 * kernels, cuBLAS without TF32), FER_CUDA_MATH=tf32 (TF32 everywhere),
 * unset / "default": TF32 for the training ops, exact FP32 for inference,
 * whose probabilities are compared with the CPU backend's, or
 * FER_CUDA_MATH=fp16: the default, except that the inference convolutions
 * take half-precision data on tensor cores with FP32 accumulation (the
 * activations stay FP32 between ops; the linear head stays FP32, and
 * training is the default's TF32). */
typedef enum
{
  FER_CUDA_MATH_DEFAULT,
  FER_CUDA_MATH_FP32,
  FER_CUDA_MATH_TF32,
  FER_CUDA_MATH_FP16,
} fer_cuda_math;

/* The values FER_CUDA_MATH accepts, for messages. */
#define FER_CUDA_MATH_VALUES "default, fp32, tf32 or fp16"

/* Parses FER_CUDA_MATH's value (NULL: unset). Returns 0 and sets *out, or
 * -1 for a value that is none of FER_CUDA_MATH_VALUES. */
int fer_cuda_math_parse (const char *value, fer_cuda_math *out);
/* Whether cuDNN's convolutions of `kind` and cuBLAS's products (the
 * inference kind for the forward, the training kinds for the backward)
 * may use TF32 tensor cores under `math`. */
int fer_cuda_math_tensor_op (fer_cuda_math math, fer_cuda_conv_kind kind);
/* Whether a convolution of `kind` from cin to cout channels runs on
 * half-precision data under `math`: only the inference forward, only
 * under fp16, and only with channel counts that are multiples of 8, which
 * NHWC half-precision tensor-core kernels want (the stem's 1 or 3 input
 * channels do not: the stem, a few per cent of the work, stays FP32). */
int fer_cuda_math_half (
    fer_cuda_math math, fer_cuda_conv_kind kind, int cin, int cout);
/* The load-time self-test's tolerance under `math` (backend.h's
 * FER_SELFTEST_TOLERANCE_*, docs/architecture.md "Fail-safe"). */
double fer_cuda_math_selftest_tolerance (fer_cuda_math math);

void fer_cuda_conv_key_init (fer_cuda_conv_key *key, int n, int h, int w,
    int cin, int cout, int k, int stride, int pad, fer_cuda_conv_kind kind,
    int tensor_op, int half);
unsigned fer_cuda_conv_key_hash (const fer_cuda_conv_key *key);
int fer_cuda_conv_key_equal (
    const fer_cuda_conv_key *a, const fer_cuda_conv_key *b);

/* One candidate from cuDNN's heuristics (cudnnGetConvolution*Algorithm_v7),
 * in its order (best first). */
typedef struct
{
  int algo;
  int ok;        /* status == CUDNN_STATUS_SUCCESS */
  size_t memory; /* workspace bytes */
  int tensor_op; /* its math type uses tensor cores */
  int math_type; /* the cudnnMathType_t it was ranked with, to run it in */
} fer_cuda_algo_candidate;

/* Workspace bytes a convolution may ask for: past this, a slower algorithm
 * that needs less is taken. */
#define FER_CUDA_WS_LIMIT ((size_t) 1 << 30)

/* Index of the first usable candidate: ok, within ws_limit, and without
 * tensor cores unless allowed. -1 when none is. */
int fer_cuda_pick_algo (const fer_cuda_algo_candidate *c, int n,
    size_t ws_limit, int allow_tensor_op);

/* Bytes a growing buffer takes to hold `want`: at least `want`, rounded up
 * to 1 MiB, and at least 1.5 times `have` so that a slowly growing demand
 * does not reallocate at every step. 0 when `want` fits in `have`. */
size_t fer_cuda_grow_bytes (size_t have, size_t want);

/* Batch-norm reductions over (rows, c): the rows are split into this many
 * slices, each reduced by one row of thread blocks into partial sums that
 * a second kernel adds up in a fixed order (deterministic, no atomics). */
int fer_cuda_bn_splits (int rows);
/* Scratch bytes the batch-norm kernels need for (rows, c): two partial
 * sums (double) per split and channel, the mean in double, and four
 * per-channel float coefficients. */
size_t fer_cuda_bn_scratch_bytes (int rows, int c);

/* Threads per block and blocks for an element-wise kernel over n items
 * (grid-stride loops take what one grid cannot). */
#define FER_CUDA_THREADS 256
unsigned fer_cuda_blocks (size_t n);

#ifdef __cplusplus
}
#endif

#endif
