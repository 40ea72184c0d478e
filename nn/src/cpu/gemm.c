/* The convolution micro-kernels; layouts in gemm.h. Each ISA's kernel is
 * one always-inline function specialised per tile height by a switch, so
 * the accumulators of every height live in registers: AVX-512 keeps
 * 14 x 2 zmm (14 pixels x 32 channels), AVX2 6 x 2 ymm per 16-channel half
 * of the panel. The vector kernels are compiled with GCC target attributes
 * and chosen at run time, so the library runs on any x86-64 (and builds
 * anywhere: other architectures get the C kernel). */
#include "cpu/gemm.h"

#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FER_CPU_X86 1
#include <immintrin.h>
#include <cpuid.h>
/* Functions (inlined ones too) that use the ISA's intrinsics. */
#define TARGET_AVX512 __attribute__ ((target ("avx512f,avx2,fma")))
#define TARGET_AVX2 __attribute__ ((target ("avx2,fma,f16c")))
#define ALWAYS_INLINE inline __attribute__ ((always_inline))
/* The vector kernels are left out of AddressSanitizer's instrumentation:
 * instrumented, they made training under ASan ten times slower, past the
 * tests' timeouts. They read only the packed scratch and the output rows
 * that a tile names; the C kernel reads the same tile description, stays
 * instrumented, and the tests run it on every shape. */
#define NO_ASAN __attribute__ ((no_sanitize_address))
#else
#define FER_CPU_X86 0
#endif

/* A panel row of halves, converted: the C kernel's and the tests'. */
#include <fer/safetensors.h>

#define MR_AVX512 14
#define MR_AVX2 6
#define MR_C 4

/* The vector kernels prefetch the weight panel this many blocks (of KB
 * rows) ahead: with few pixels per tile a panel row is used for a few
 * cycles only, and the hardware prefetcher alone leaves the kernel waiting
 * on memory (ResNet-18's 44 MB of weights do not stay in cache between
 * forward passes). Measured on Zen 5: +30% at 1 to 5 views, +10% at 40. */
#define PREFETCH_BLOCKS 4

G_STATIC_ASSERT (MR_AVX512 <= FER_CPU_MR_MAX);
G_STATIC_ASSERT (FER_CPU_NR == 32 && FER_CPU_KB == 16);

/* ------------------------------------------------------------------ */
/* Plain C                                                             */

static void
tile_c (const fer_cpu_tile *t)
{
  float acc[MR_C][FER_CPU_NR] = { { 0 } };
  float row[FER_CPU_NR];
  const float *a = t->a;

  for (int i = 0; i < t->n_runs; i++) {
    const size_t k0 = (size_t) t->runs[i].k0 * FER_CPU_NR;
    for (int kb = 0; kb < t->runs[i].len; kb += FER_CPU_KB) {
      for (int kk = 0; kk < FER_CPU_KB; kk++) {
        const size_t at = k0 + (size_t) (kb + kk) * FER_CPU_NR;
        const float *b = t->b + at;
        if (t->b16) {
          for (int j = 0; j < FER_CPU_NR; j++)
            row[j] = fer_f16_to_f32 (t->b16[at + j]);
          b = row;
        }
        for (int r = 0; r < t->rows; r++) {
          float av = a[r * FER_CPU_KB + kk];
          for (int j = 0; j < FER_CPU_NR; j++)
            acc[r][j] += av * b[j];
        }
      }
      a += t->rows * FER_CPU_KB;
    }
  }
  for (int r = 0; r < t->rows; r++) {
    ptrdiff_t off = t->row_ids[r] * t->ldc;
    for (int j = 0; j < t->ncols; j++) {
      float v = (t->scale ? acc[r][j] * t->scale[j] : acc[r][j])
          + (t->bias ? t->bias[j] : 0.0f) + (t->res ? t->res[off + j] : 0.0f);
      t->c[off + j] = t->relu && v < 0.0f ? 0.0f : v;
    }
  }
}

#if FER_CPU_X86

/* ------------------------------------------------------------------ */
/* AVX-512                                                             */

/* H: the panel holds halves (t->b16), converted as loaded (VCVTPH2PS);
 * one 64-byte line is then a whole panel row, prefetched once. */
static ALWAYS_INLINE TARGET_AVX512 NO_ASAN void
tile_avx512_rows (const int R, const int H, const fer_cpu_tile *t)
{
  __m512 acc[MR_AVX512][2];
  const float *a = t->a;

#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
    acc[r][0] = acc[r][1] = _mm512_setzero_ps ();
  for (int i = 0; i < t->n_runs; i++) {
    const size_t k0 = (size_t) t->runs[i].k0 * FER_CPU_NR;
    const float *b = H ? NULL : t->b + k0;
    const uint16_t *bh = H ? t->b16 + k0 : NULL;
    for (int kb = 0; kb < t->runs[i].len; kb += FER_CPU_KB) {
#pragma GCC unroll 16
      for (int kk = 0; kk < FER_CPU_KB; kk++) {
        __m512 b0, b1;
        if (H) {
          const uint16_t *row = bh + kk * FER_CPU_NR;
          b0 = _mm512_cvtph_ps (_mm256_loadu_si256 ((const __m256i *) row));
          b1 = _mm512_cvtph_ps (
              _mm256_loadu_si256 ((const __m256i *) (row + 16)));
          _mm_prefetch ((const char *) (bh
                            + (PREFETCH_BLOCKS * FER_CPU_KB + kk) * FER_CPU_NR),
              _MM_HINT_T0);
        } else {
          b0 = _mm512_loadu_ps (b + kk * FER_CPU_NR);
          b1 = _mm512_loadu_ps (b + kk * FER_CPU_NR + 16);
          const float *ahead =
              b + (PREFETCH_BLOCKS * FER_CPU_KB + kk) * FER_CPU_NR;
          _mm_prefetch ((const char *) ahead, _MM_HINT_T0);
          _mm_prefetch ((const char *) (ahead + 16), _MM_HINT_T0);
        }
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
          __m512 av = _mm512_set1_ps (a[r * FER_CPU_KB + kk]);
          acc[r][0] = _mm512_fmadd_ps (av, b0, acc[r][0]);
          acc[r][1] = _mm512_fmadd_ps (av, b1, acc[r][1]);
        }
      }
      a += R * FER_CPU_KB;
      if (H)
        bh += FER_CPU_KB * FER_CPU_NR;
      else
        b += FER_CPU_KB * FER_CPU_NR;
    }
  }

  const __mmask16 m0 =
      t->ncols >= 16 ? 0xffff : (__mmask16) ((1u << t->ncols) - 1);
  const __mmask16 m1 = t->ncols >= 32 ? 0xffff
      : t->ncols <= 16                ? 0
                       : (__mmask16) ((1u << (t->ncols - 16)) - 1);
  const __m512 zero = _mm512_setzero_ps ();
  __m512 bias0 = zero, bias1 = zero;
  if (t->bias) {
    bias0 = _mm512_maskz_loadu_ps (m0, t->bias);
    bias1 = _mm512_maskz_loadu_ps (m1, t->bias + 16);
  }
  if (t->scale) {
    const __m512 s0 = _mm512_maskz_loadu_ps (m0, t->scale);
    const __m512 s1 = _mm512_maskz_loadu_ps (m1, t->scale + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      acc[r][0] = _mm512_mul_ps (acc[r][0], s0);
      acc[r][1] = _mm512_mul_ps (acc[r][1], s1);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; r++) {
    ptrdiff_t off = t->row_ids[r] * t->ldc;
    __m512 v0 = _mm512_add_ps (acc[r][0], bias0);
    __m512 v1 = _mm512_add_ps (acc[r][1], bias1);
    if (t->res) {
      v0 = _mm512_add_ps (v0, _mm512_maskz_loadu_ps (m0, t->res + off));
      v1 = _mm512_add_ps (v1, _mm512_maskz_loadu_ps (m1, t->res + off + 16));
    }
    if (t->relu) {
      /* max (0, v), in this order, keeps a NaN as PyTorch's ReLU does */
      v0 = _mm512_max_ps (zero, v0);
      v1 = _mm512_max_ps (zero, v1);
    }
    _mm512_mask_storeu_ps (t->c + off, m0, v0);
    _mm512_mask_storeu_ps (t->c + off + 16, m1, v1);
  }
}

/* One case per tile height and panel type: each a kernel of its own. */
#define TILE_CASES(rows_fn, R)                                                 \
  case R:                                                                      \
    if (t->b16)                                                                \
      rows_fn (R, 1, t);                                                       \
    else                                                                       \
      rows_fn (R, 0, t);                                                       \
    break;

static TARGET_AVX512 NO_ASAN void
tile_avx512 (const fer_cpu_tile *t)
{
  switch (t->rows) {
    TILE_CASES (tile_avx512_rows, 1)
    TILE_CASES (tile_avx512_rows, 2)
    TILE_CASES (tile_avx512_rows, 3)
    TILE_CASES (tile_avx512_rows, 4)
    TILE_CASES (tile_avx512_rows, 5)
    TILE_CASES (tile_avx512_rows, 6)
    TILE_CASES (tile_avx512_rows, 7)
    TILE_CASES (tile_avx512_rows, 8)
    TILE_CASES (tile_avx512_rows, 9)
    TILE_CASES (tile_avx512_rows, 10)
    TILE_CASES (tile_avx512_rows, 11)
    TILE_CASES (tile_avx512_rows, 12)
    TILE_CASES (tile_avx512_rows, 13)
    TILE_CASES (tile_avx512_rows, 14)
    default:
      g_assert_not_reached ();
  }
}

static TARGET_AVX512 void
pack_blocks_avx512 (
    float *dst, ptrdiff_t stride, const float *src, int n_blocks)
{
  if (src)
    for (int i = 0; i < n_blocks; i++, dst += stride)
      _mm512_storeu_ps (dst, _mm512_loadu_ps (src + i * FER_CPU_KB));
  else
    for (int i = 0; i < n_blocks; i++, dst += stride)
      _mm512_storeu_ps (dst, _mm512_setzero_ps ());
}

/* ------------------------------------------------------------------ */
/* AVX2 + FMA: 16 ymm registers hold 6 x 16 channels, so a tile is done   */
/* as two halves of the panel.                                          */

/* H: halves, converted as loaded (F16C's VCVTPH2PS). */
static ALWAYS_INLINE TARGET_AVX2 NO_ASAN void
tile_avx2_half (const int R, const int H, const fer_cpu_tile *t, int half)
{
  __m256 acc[MR_AVX2][2];
  const float *a = t->a;
  const int col0 = half * 16;
  const int ncols = MIN (t->ncols - col0, 16);

#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
    acc[r][0] = acc[r][1] = _mm256_setzero_ps ();
  for (int i = 0; i < t->n_runs; i++) {
    const size_t k0 = (size_t) t->runs[i].k0 * FER_CPU_NR + col0;
    const float *b = H ? NULL : t->b + k0;
    const uint16_t *bh = H ? t->b16 + k0 : NULL;
    for (int kb = 0; kb < t->runs[i].len; kb += FER_CPU_KB) {
#pragma GCC unroll 16
      for (int kk = 0; kk < FER_CPU_KB; kk++) {
        __m256 b0, b1;
        if (H) {
          const uint16_t *row = bh + kk * FER_CPU_NR;
          b0 = _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) row));
          b1 = _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) (row + 8)));
          _mm_prefetch ((const char *) (bh
                            + (PREFETCH_BLOCKS * FER_CPU_KB + kk) * FER_CPU_NR),
              _MM_HINT_T0);
        } else {
          b0 = _mm256_loadu_ps (b + kk * FER_CPU_NR);
          b1 = _mm256_loadu_ps (b + kk * FER_CPU_NR + 8);
          _mm_prefetch ((const char *) (b
                            + (PREFETCH_BLOCKS * FER_CPU_KB + kk) * FER_CPU_NR),
              _MM_HINT_T0);
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
          __m256 av = _mm256_broadcast_ss (a + r * FER_CPU_KB + kk);
          acc[r][0] = _mm256_fmadd_ps (av, b0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps (av, b1, acc[r][1]);
        }
      }
      a += R * FER_CPU_KB;
      if (H)
        bh += FER_CPU_KB * FER_CPU_NR;
      else
        b += FER_CPU_KB * FER_CPU_NR;
    }
  }

  const float *bias = t->bias ? t->bias + col0 : NULL;
  const float *scale = t->scale ? t->scale + col0 : NULL;
  const __m256 zero = _mm256_setzero_ps ();
  if (scale && ncols == 16) {
    const __m256 s0 = _mm256_loadu_ps (scale), s1 = _mm256_loadu_ps (scale + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      acc[r][0] = _mm256_mul_ps (acc[r][0], s0);
      acc[r][1] = _mm256_mul_ps (acc[r][1], s1);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    ptrdiff_t off = t->row_ids[r] * t->ldc + col0;
    float *c = t->c + off;
    const float *res = t->res ? t->res + off : NULL;
    if (ncols == 16) {
      __m256 v0 = acc[r][0], v1 = acc[r][1];
      if (bias) {
        v0 = _mm256_add_ps (v0, _mm256_loadu_ps (bias));
        v1 = _mm256_add_ps (v1, _mm256_loadu_ps (bias + 8));
      }
      if (res) {
        v0 = _mm256_add_ps (v0, _mm256_loadu_ps (res));
        v1 = _mm256_add_ps (v1, _mm256_loadu_ps (res + 8));
      }
      if (t->relu) {
        /* max (0, v), in this order, keeps a NaN */
        v0 = _mm256_max_ps (zero, v0);
        v1 = _mm256_max_ps (zero, v1);
      }
      _mm256_storeu_ps (c, v0);
      _mm256_storeu_ps (c + 8, v1);
    } else {
      float v[16];
      _mm256_storeu_ps (v, acc[r][0]);
      _mm256_storeu_ps (v + 8, acc[r][1]);
      for (int j = 0; j < ncols; j++) {
        float x = (scale ? v[j] * scale[j] : v[j]) + (bias ? bias[j] : 0.0f)
            + (res ? res[j] : 0.0f);
        c[j] = t->relu && x < 0.0f ? 0.0f : x;
      }
    }
  }
}

static ALWAYS_INLINE TARGET_AVX2 NO_ASAN void
tile_avx2_rows (const int R, const int H, const fer_cpu_tile *t)
{
  tile_avx2_half (R, H, t, 0);
  if (t->ncols > 16)
    tile_avx2_half (R, H, t, 1);
}

static TARGET_AVX2 NO_ASAN void
tile_avx2 (const fer_cpu_tile *t)
{
  switch (t->rows) {
    TILE_CASES (tile_avx2_rows, 1)
    TILE_CASES (tile_avx2_rows, 2)
    TILE_CASES (tile_avx2_rows, 3)
    TILE_CASES (tile_avx2_rows, 4)
    TILE_CASES (tile_avx2_rows, 5)
    TILE_CASES (tile_avx2_rows, 6)
    default:
      g_assert_not_reached ();
  }
}

#endif /* FER_CPU_X86 */

/* ------------------------------------------------------------------ */
/* Winograd transforms: one body in GCC's generic vectors of 16 floats,
 * compiled for each ISA (the C build splits them into SSE or scalar
 * operations). Vectors stay local: passing 64-byte vectors by value would
 * depend on the ISA's calling convention. */

/* 16-byte aligned, so that no build needs to realign its stack. */
typedef float wino_v16 __attribute__ ((vector_size (64), aligned (16)));
typedef int wino_i16 __attribute__ ((vector_size (64), aligned (16)));
/* Unaligned loads and stores of 16 floats, as vector moves: a memcpy could
 * become a call, which AddressSanitizer intercepts, and then it checks the
 * uninstrumented (NO_ASAN) frame's locals against stale shadow. */
typedef float wino_v16u
    __attribute__ ((vector_size (64), aligned (4), may_alias));
#define WINO_LOAD(p) (*(const wino_v16u *) (p))
#define WINO_STORE(p, v) (*(wino_v16u *) (p) = (v))

/* The transforms are left out of AddressSanitizer: their bodies are
 * inlined into the uninstrumented vector builds, and GCC 12 kept the
 * bodies' scope poisoning of block-local vectors there, without the
 * frame's cleanup, leaving stale poison on the stack for later frames. They
 * touch only the blocks their arguments name; the tests check their
 * results on every shape. */
#if defined(__GNUC__)
#define WINO_C_ATTR __attribute__ ((no_sanitize_address))
#else
#define WINO_C_ATTR
#endif

#ifndef ALWAYS_INLINE
#define ALWAYS_INLINE inline __attribute__ ((always_inline))
#endif

static ALWAYS_INLINE WINO_C_ATTR void
wino_input_body (float *dst, ptrdiff_t ds, const float *const d[16])
{
  wino_v16 x[4][4], t[4][4];

  for (int p = 0; p < 16; p++)
    x[p / 4][p % 4] = WINO_LOAD (d[p]);
  for (int v = 0; v < 4; v++) {
    t[0][v] = x[0][v] - x[2][v];
    t[1][v] = x[1][v] + x[2][v];
    t[2][v] = x[2][v] - x[1][v];
    t[3][v] = x[1][v] - x[3][v];
  }
  for (int i = 0; i < 4; i++) {
    wino_v16 r[4] = { t[i][0] - t[i][2], t[i][1] + t[i][2], t[i][2] - t[i][1],
      t[i][1] - t[i][3] };
    for (int j = 0; j < 4; j++)
      WINO_STORE (dst + (4 * i + j) * ds, r[j]);
  }
}

static ALWAYS_INLINE WINO_C_ATTR void
wino_dout_body (float *dst, ptrdiff_t ds, const float *const d[4])
{
  wino_v16 y[4], t[4][2];

  for (int q = 0; q < 4; q++)
    y[q] = WINO_LOAD (d[q]);
  /* the rows of A: (1, 0), (1, 1), (1, -1), (0, -1) */
  for (int b = 0; b < 2; b++) {
    t[0][b] = y[b];
    t[1][b] = y[b] + y[2 + b];
    t[2][b] = y[b] - y[2 + b];
    t[3][b] = -y[2 + b];
  }
  for (int i = 0; i < 4; i++) {
    wino_v16 r[4] = { t[i][0], t[i][0] + t[i][1], t[i][0] - t[i][1], -t[i][1] };
    for (int j = 0; j < 4; j++)
      WINO_STORE (dst + (4 * i + j) * ds, r[j]);
  }
}

static ALWAYS_INLINE WINO_C_ATTR void
wino_output_body (float *const out[4], const float *const res[4],
    const float *bias, int ncols, gboolean relu, const float *m, ptrdiff_t ms)
{
  wino_v16 x[4][4], t[2][4], y[4], b = { 0 };
  const wino_v16 zero = { 0 };

  for (int p = 0; p < 16; p++)
    x[p / 4][p % 4] = WINO_LOAD (m + p * ms);
  for (int j = 0; j < 4; j++) {
    t[0][j] = x[0][j] + x[1][j] + x[2][j];
    t[1][j] = x[1][j] - x[2][j] - x[3][j];
  }
  for (int a = 0; a < 2; a++) {
    y[2 * a] = t[a][0] + t[a][1] + t[a][2];
    y[2 * a + 1] = t[a][1] - t[a][2] - t[a][3];
  }
  if (bias && ncols == FER_CPU_KB)
    b = WINO_LOAD (bias);
  for (int c = 0; bias && ncols < FER_CPU_KB && c < ncols; c++)
    b[c] = bias[c];
  for (int q = 0; q < 4; q++) {
    wino_v16 v = y[q] + b, r = { 0 };
    if (!out[q])
      continue;
    if (res[q] && ncols == FER_CPU_KB)
      r = WINO_LOAD (res[q]);
    for (int c = 0; res[q] && ncols < FER_CPU_KB && c < ncols; c++)
      r[c] = res[q][c];
    v += r;
    if (relu) /* v < 0 ? 0 : v, which keeps a NaN as the kernels do */
      v = (wino_v16) ((wino_i16) v & ~(v < zero));
    if (ncols == FER_CPU_KB)
      WINO_STORE (out[q], v);
    for (int c = 0; ncols < FER_CPU_KB && c < ncols; c++)
      out[q][c] = v[c];
  }
}

static WINO_C_ATTR void
wino_input_c (float *dst, ptrdiff_t ds, const float *const d[16])
{
  wino_input_body (dst, ds, d);
}

static WINO_C_ATTR void
wino_output_c (float *const out[4], const float *const res[4],
    const float *bias, int ncols, gboolean relu, const float *m, ptrdiff_t ms)
{
  wino_output_body (out, res, bias, ncols, relu, m, ms);
}

static WINO_C_ATTR void
wino_dout_c (float *dst, ptrdiff_t ds, const float *const d[4])
{
  wino_dout_body (dst, ds, d);
}

#if FER_CPU_X86
static TARGET_AVX2 NO_ASAN void
wino_dout_avx2 (float *dst, ptrdiff_t ds, const float *const d[4])
{
  wino_dout_body (dst, ds, d);
}

static TARGET_AVX512 NO_ASAN void
wino_dout_avx512 (float *dst, ptrdiff_t ds, const float *const d[4])
{
  wino_dout_body (dst, ds, d);
}

/* 8 x 8 transpose in registers (unpack, shuffle, then swap 128-bit
 * halves). */
static ALWAYS_INLINE TARGET_AVX2 NO_ASAN void
transpose8_avx2 (float *dst, ptrdiff_t ds, const float *src, ptrdiff_t ss)
{
  __m256 r[8], t[8], u[8];

  for (int i = 0; i < 8; i++)
    r[i] = _mm256_loadu_ps (src + i * ss);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps (r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps (r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps (t[i], t[i + 2], _MM_SHUFFLE (1, 0, 1, 0));
    u[i + 1] = _mm256_shuffle_ps (t[i], t[i + 2], _MM_SHUFFLE (3, 2, 3, 2));
    u[i + 2] = _mm256_shuffle_ps (t[i + 1], t[i + 3], _MM_SHUFFLE (1, 0, 1, 0));
    u[i + 3] = _mm256_shuffle_ps (t[i + 1], t[i + 3], _MM_SHUFFLE (3, 2, 3, 2));
  }
  for (int i = 0; i < 4; i++) {
    _mm256_storeu_ps (
        dst + i * ds, _mm256_permute2f128_ps (u[i], u[i + 4], 0x20));
    _mm256_storeu_ps (
        dst + (i + 4) * ds, _mm256_permute2f128_ps (u[i], u[i + 4], 0x31));
  }
}

static TARGET_AVX2 NO_ASAN void
transpose16_avx2 (float *dst, ptrdiff_t ds, const float *src, ptrdiff_t ss)
{
  for (int i = 0; i < 16; i += 8)
    for (int j = 0; j < 16; j += 8)
      transpose8_avx2 (dst + j * ds + i, ds, src + i * ss + j, ss);
}

static TARGET_AVX2 NO_ASAN void
wino_input_avx2 (float *dst, ptrdiff_t ds, const float *const d[16])
{
  wino_input_body (dst, ds, d);
}

static TARGET_AVX2 NO_ASAN void
wino_output_avx2 (float *const out[4], const float *const res[4],
    const float *bias, int ncols, gboolean relu, const float *m, ptrdiff_t ms)
{
  wino_output_body (out, res, bias, ncols, relu, m, ms);
}

static TARGET_AVX512 NO_ASAN void
wino_input_avx512 (float *dst, ptrdiff_t ds, const float *const d[16])
{
  wino_input_body (dst, ds, d);
}

static TARGET_AVX512 NO_ASAN void
wino_output_avx512 (float *const out[4], const float *const res[4],
    const float *bias, int ncols, gboolean relu, const float *m, ptrdiff_t ms)
{
  wino_output_body (out, res, bias, ncols, relu, m, ms);
}
#endif

void
fer_cpu_wino_input (
    fer_cpu_isa isa, float *dst, ptrdiff_t dstride, const float *const d[16])
{
#if FER_CPU_X86
  if (isa == FER_CPU_ISA_AVX512) {
    wino_input_avx512 (dst, dstride, d);
    return;
  }
  if (isa == FER_CPU_ISA_AVX2) {
    wino_input_avx2 (dst, dstride, d);
    return;
  }
#endif
  wino_input_c (dst, dstride, d);
}

void
fer_cpu_wino_dout (
    fer_cpu_isa isa, float *dst, ptrdiff_t dstride, const float *const d[4])
{
#if FER_CPU_X86
  if (isa == FER_CPU_ISA_AVX512) {
    wino_dout_avx512 (dst, dstride, d);
    return;
  }
  if (isa == FER_CPU_ISA_AVX2) {
    wino_dout_avx2 (dst, dstride, d);
    return;
  }
#endif
  wino_dout_c (dst, dstride, d);
}

void
fer_cpu_transpose16 (fer_cpu_isa isa, float *dst, ptrdiff_t dst_stride,
    const float *src, ptrdiff_t src_stride)
{
#if FER_CPU_X86
  /* AVX-512 machines run the AVX2 transpose: 8 x 8 blocks are enough */
  if (isa >= FER_CPU_ISA_AVX2) {
    transpose16_avx2 (dst, dst_stride, src, src_stride);
    return;
  }
#endif
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++)
      dst[j * dst_stride + i] = src[i * src_stride + j];
}

void
fer_cpu_wino_output (fer_cpu_isa isa, float *const out[4],
    const float *const res[4], const float *bias, int ncols, gboolean relu,
    const float *m, ptrdiff_t mstride)
{
#if FER_CPU_X86
  if (isa == FER_CPU_ISA_AVX512) {
    wino_output_avx512 (out, res, bias, ncols, relu, m, mstride);
    return;
  }
  if (isa == FER_CPU_ISA_AVX2) {
    wino_output_avx2 (out, res, bias, ncols, relu, m, mstride);
    return;
  }
#endif
  wino_output_c (out, res, bias, ncols, relu, m, mstride);
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */

/* -1 until first asked; then a fer_cpu_isa. Racing first calls agree. */
static gint active_isa = -1;

#if FER_CPU_X86
/* F16C (the half weights' conversions) from CPUID leaf 1: clang 14's
 * __builtin_cpu_supports does not know "f16c". The OS saves the YMM state
 * it needs whenever AVX2 is usable. */
static gboolean
has_f16c (void)
{
  unsigned a, b, c, d;
  return __get_cpuid (1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}
#endif

fer_cpu_isa
fer_cpu_isa_best (void)
{
#if FER_CPU_X86
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx512f"))
    return FER_CPU_ISA_AVX512;
  if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma")
      && has_f16c ())
    return FER_CPU_ISA_AVX2;
#endif
  return FER_CPU_ISA_C;
}

fer_cpu_isa
fer_cpu_isa_get (void)
{
  gint isa = g_atomic_int_get (&active_isa);
  if (isa < 0) {
    /* FER_CPU_ISA=avx2|c: a lower kernel than the best, for benchmarks of
     * the paths other machines take (never a higher one) */
    const char *want = g_getenv ("FER_CPU_ISA");
    isa = (gint) fer_cpu_isa_best ();
    for (int i = FER_CPU_ISA_C; want && i < isa; i++)
      if (g_ascii_strcasecmp (want, fer_cpu_isa_name ((fer_cpu_isa) i)) == 0)
        isa = i;
    g_atomic_int_set (&active_isa, isa);
  }
  return (fer_cpu_isa) isa;
}

fer_cpu_isa
fer_cpu_isa_set (fer_cpu_isa isa)
{
  fer_cpu_isa best = fer_cpu_isa_best ();
  g_atomic_int_set (&active_isa, (gint) (isa <= best ? isa : best));
  return fer_cpu_isa_get ();
}

const char *
fer_cpu_isa_name (fer_cpu_isa isa)
{
  switch (isa) {
    case FER_CPU_ISA_AVX512:
      return "avx512";
    case FER_CPU_ISA_AVX2:
      return "avx2";
    case FER_CPU_ISA_C:
      return "c";
  }
  return "?";
}

int
fer_cpu_isa_mr (fer_cpu_isa isa)
{
  switch (isa) {
    case FER_CPU_ISA_AVX512:
      return MR_AVX512;
    case FER_CPU_ISA_AVX2:
      return MR_AVX2;
    case FER_CPU_ISA_C:
      return MR_C;
  }
  return MR_C;
}

void
fer_cpu_pack_blocks (fer_cpu_isa isa, float *dst, ptrdiff_t stride,
    const float *src, int n_blocks)
{
#if FER_CPU_X86
  if (isa == FER_CPU_ISA_AVX512) {
    pack_blocks_avx512 (dst, stride, src, n_blocks);
    return;
  }
#endif
  for (int i = 0; i < n_blocks; i++, dst += stride) {
    if (src)
      memcpy (dst, src + i * FER_CPU_KB, FER_CPU_KB * sizeof (float));
    else
      memset (dst, 0, FER_CPU_KB * sizeof (float));
  }
}

#if FER_CPU_X86
static TARGET_AVX512 NO_ASAN void
halves_avx512 (float *dst, const uint16_t *src, size_t n)
{
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps (dst + i,
        _mm512_cvtph_ps (_mm256_loadu_si256 ((const __m256i *) (src + i))));
  for (; i < n; i++)
    dst[i] = fer_f16_to_f32 (src[i]);
}

static TARGET_AVX2 NO_ASAN void
halves_avx2 (float *dst, const uint16_t *src, size_t n)
{
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps (dst + i,
        _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) (src + i))));
  for (; i < n; i++)
    dst[i] = fer_f16_to_f32 (src[i]);
}
#endif

void
fer_cpu_halves_to_floats (
    fer_cpu_isa isa, float *dst, const uint16_t *src, size_t n)
{
#if FER_CPU_X86
  if (isa == FER_CPU_ISA_AVX512) {
    halves_avx512 (dst, src, n);
    return;
  }
  if (isa == FER_CPU_ISA_AVX2) {
    halves_avx2 (dst, src, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; i++)
    dst[i] = fer_f16_to_f32 (src[i]);
}

void
fer_cpu_gemm_tile (fer_cpu_isa isa, const fer_cpu_tile *t)
{
  switch (isa) {
#if FER_CPU_X86
    case FER_CPU_ISA_AVX512:
      tile_avx512 (t);
      return;
    case FER_CPU_ISA_AVX2:
      tile_avx2 (t);
      return;
#endif
    default:
      tile_c (t);
      return;
  }
}
