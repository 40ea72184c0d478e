/* Host-side planning for the CUDA backend: see cuda/plan.h. */
#include "cuda/plan.h"

#include <string.h>

#include "backend.h"

int
fer_cuda_math_parse (const char *value, fer_cuda_math *out)
{
  if (!value || !*value || strcmp (value, "default") == 0)
    *out = FER_CUDA_MATH_DEFAULT;
  else if (strcmp (value, "fp32") == 0)
    *out = FER_CUDA_MATH_FP32;
  else if (strcmp (value, "tf32") == 0)
    *out = FER_CUDA_MATH_TF32;
  else if (strcmp (value, "fp16") == 0)
    *out = FER_CUDA_MATH_FP16;
  else
    return -1;
  return 0;
}

int
fer_cuda_math_tensor_op (fer_cuda_math math, fer_cuda_conv_kind kind)
{
  switch (math) {
    case FER_CUDA_MATH_FP32:
      return 0;
    case FER_CUDA_MATH_TF32:
      return 1;
    case FER_CUDA_MATH_DEFAULT:
    case FER_CUDA_MATH_FP16: /* its half convolutions: fer_cuda_math_half */
      break;
  }
  return kind != FER_CUDA_CONV_FORWARD;
}

int
fer_cuda_math_half (
    fer_cuda_math math, fer_cuda_conv_kind kind, int cin, int cout)
{
  return math == FER_CUDA_MATH_FP16 && kind == FER_CUDA_CONV_FORWARD
      && cin % 8 == 0 && cout % 8 == 0;
}

double
fer_cuda_math_selftest_tolerance (fer_cuda_math math)
{
  switch (math) {
    case FER_CUDA_MATH_DEFAULT:
    case FER_CUDA_MATH_FP32:
      return FER_SELFTEST_TOLERANCE_FP32;
    case FER_CUDA_MATH_TF32:
      return FER_SELFTEST_TOLERANCE_REDUCED;
    case FER_CUDA_MATH_FP16:
      return FER_SELFTEST_TOLERANCE_FP16;
  }
  return FER_SELFTEST_TOLERANCE_FP32;
}

void
fer_cuda_conv_key_init (fer_cuda_conv_key *key, int n, int h, int w, int cin,
    int cout, int k, int stride, int pad, fer_cuda_conv_kind kind,
    int tensor_op, int half)
{
  /* memset: the key is hashed and compared as a whole */
  memset (key, 0, sizeof *key);
  key->n = n;
  key->h = h;
  key->w = w;
  key->cin = cin;
  key->cout = cout;
  key->k = k;
  key->stride = stride;
  key->pad = pad;
  key->kind = kind;
  key->tensor_op = tensor_op ? 1 : 0;
  key->half = half ? 1 : 0;
}

unsigned
fer_cuda_conv_key_hash (const fer_cuda_conv_key *key)
{
  const int v[] = { key->n, key->h, key->w, key->cin, key->cout, key->k,
    key->stride, key->pad, key->kind, key->tensor_op, key->half };
  unsigned h = 2166136261u; /* FNV-1a over the fields */
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    h ^= (unsigned) v[i];
    h *= 16777619u;
  }
  return h;
}

int
fer_cuda_conv_key_equal (const fer_cuda_conv_key *a, const fer_cuda_conv_key *b)
{
  return memcmp (a, b, sizeof *a) == 0;
}

int
fer_cuda_pick_algo (const fer_cuda_algo_candidate *c, int n, size_t ws_limit,
    int allow_tensor_op)
{
  for (int i = 0; i < n; i++)
    if (c[i].ok && c[i].memory <= ws_limit
        && (allow_tensor_op || !c[i].tensor_op))
      return i;
  return -1;
}

size_t
fer_cuda_grow_bytes (size_t have, size_t want)
{
  const size_t mib = (size_t) 1 << 20;
  if (want <= have)
    return 0;
  size_t bytes = have + have / 2;
  if (bytes < want)
    bytes = want;
  return (bytes + mib - 1) / mib * mib;
}

int
fer_cuda_bn_splits (int rows)
{
  int s = rows / 256;
  return s < 1 ? 1 : s > 128 ? 128 : s;
}

size_t
fer_cuda_bn_scratch_bytes (int rows, int c)
{
  size_t splits = (size_t) fer_cuda_bn_splits (rows);
  return (2 * splits + 1) * (size_t) c * sizeof (double)
      + 4 * (size_t) c * sizeof (float);
}

unsigned
fer_cuda_blocks (size_t n)
{
  size_t b = (n + FER_CUDA_THREADS - 1) / FER_CUDA_THREADS;
  return b < 1 ? 1u : b > 65535u * 16 ? 65535u * 16 : (unsigned) b;
}
