/* Shared by the GPU op tests (test_cuda_op_<family>.c): each runs its op
 * family through both backends' tables, CUDA against CPU, on the same
 * random inputs, and compares outputs (and accumulated parameter
 * gradients) by normalised error ||gpu - cpu|| / ||cpu||, printed per op,
 * then checked against the op's tolerance. They run in exact FP32
 * (FER_CUDA_MATH=fp32, set by cuda_op_test_begin) so that the tolerances
 * can be tight. Each skips (exit 77) with "SKIP: no CUDA device (...)"
 * without a device. */
#ifndef FER_TEST_CUDA_OP_TEST_H
#define FER_TEST_CUDA_OP_TEST_H

#include <fer/rng.h>
#include "gpu-common.h"

static fer_backend *cpu, *gpu;
static fer_rng rng;
static int failures;

/* tolerances: ops whose floats are computed the same way on both sides
 * (element-wise, pooling, optimizer steps, batch-norm epilogues), FP32
 * GEMM-like ops (different summation order), FP32 convolutions (cuDNN may
 * pick an FFT or Winograd algorithm, a few 1e-6 to 1e-5 off), TF32, and
 * FER_CUDA_MATH=fp16 (inference convolutions with input, weights and
 * output rounded to halves, each about 3e-4 RMS relative, FP32 sums: a
 * normalised error near 5e-4; its training ops are TF32) */
#define TOL_EXACT 1e-6
#define TOL_FP32 2e-5
#define TOL_CONV 1e-4
#define TOL_TF32 5e-3
#define TOL_FP16 5e-3

/* Both backends (the CUDA one in FER_CUDA_MATH=fp32), or exits 77. */
static inline void
cuda_op_test_begin (guint64 seed)
{
  GError *error = NULL;

  g_setenv ("FER_CUDA_MATH", "fp32", TRUE);
  gpu = gpu_backend_or_skip ();
  cpu = fer_backend_new (FER_BACKEND_CPU, 0, 1, NULL, &error);
  g_assert_no_error (error);
  fer_rng_seed (&rng, seed);
}

/* A new CUDA backend in FER_CUDA_MATH=math. */
static inline void
cuda_op_test_math (const char *math)
{
  fer_backend_free (gpu);
  g_setenv ("FER_CUDA_MATH", math, TRUE);
  gpu = gpu_backend_or_skip ();
}

/* Frees the backends, prints the count; the exit status for main. */
static inline int
cuda_op_test_end (void)
{
  fer_backend_free (gpu);
  fer_backend_free (cpu);
  printf ("%d failure%s\n", failures, failures == 1 ? "" : "s");
  return failures ? 1 : 0;
}

static inline float *
host_random (size_t n, float scale)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = scale * fer_rng_normal (&rng);
  return x;
}

static inline float *
host_copy (const float *x, size_t n)
{
  return g_memdup2 (x, n * sizeof (float));
}

/* A device copy of host x. */
static inline float *
dev (const float *x, size_t n)
{
  GError *error = NULL;
  float *d = gpu->ops->alloc (gpu, n, &error);
  g_assert_no_error (error);
  g_assert_true (gpu->ops->upload (gpu, d, x, n, &error));
  return d;
}

static inline float *
dev_zeros (size_t n)
{
  GError *error = NULL;
  float *d = gpu->ops->alloc (gpu, n, &error);
  g_assert_no_error (error);
  return d;
}

/* Device d (n floats) against host ref, printed and counted. */
static inline void
check (const char *op, const float *ref, float *d, size_t n, double tol)
{
  GError *error = NULL;
  float *got = g_new (float, n);
  g_assert_true (gpu->ops->download (gpu, got, d, n, &error));
  g_assert_no_error (error);
  double e = normalised_error (ref, got, n);
  gboolean ok = e <= tol;
  printf ("%-4s %-44s %zu values, normalised error %.3g (tolerance %.0e)\n",
      ok ? "ok" : "FAIL", op, n, e, tol);
  failures += !ok;
  g_free (got);
}

/* An op call that must succeed; the calls pass &e_, a GError * of the
 * calling function. */
#define OK(call)                                                               \
  do {                                                                         \
    if (!(call)) {                                                             \
      printf ("FAIL %s: %s\n", #call, e_ ? e_->message : "?");                 \
      failures++;                                                              \
      g_clear_error (&e_);                                                     \
    }                                                                          \
  } while (0)

#endif
