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
/* Functions (inlined ones too) that use the ISA's intrinsics. */
#define TARGET_AVX512 __attribute__ ((target ("avx512f,avx2,fma")))
#define TARGET_AVX2 __attribute__ ((target ("avx2,fma")))
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
  const float *a = t->a;

  for (int i = 0; i < t->n_runs; i++) {
    const float *b = t->b + (size_t) t->runs[i].k0 * FER_CPU_NR;
    for (int kb = 0; kb < t->runs[i].len; kb += FER_CPU_KB) {
      for (int kk = 0; kk < FER_CPU_KB; kk++)
        for (int r = 0; r < t->rows; r++) {
          float av = a[r * FER_CPU_KB + kk];
          for (int j = 0; j < FER_CPU_NR; j++)
            acc[r][j] += av * b[kk * FER_CPU_NR + j];
        }
      a += t->rows * FER_CPU_KB;
      b += FER_CPU_KB * FER_CPU_NR;
    }
  }
  for (int r = 0; r < t->rows; r++) {
    ptrdiff_t off = t->row_ids[r] * t->ldc;
    for (int j = 0; j < t->ncols; j++) {
      float v = acc[r][j] + (t->bias ? t->bias[j] : 0.0f)
          + (t->res ? t->res[off + j] : 0.0f);
      t->c[off + j] = t->relu && v < 0.0f ? 0.0f : v;
    }
  }
}

#if FER_CPU_X86

/* ------------------------------------------------------------------ */
/* AVX-512                                                             */

static ALWAYS_INLINE TARGET_AVX512 NO_ASAN void
tile_avx512_rows (const int R, const fer_cpu_tile *t)
{
  __m512 acc[MR_AVX512][2];
  const float *a = t->a;

#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
    acc[r][0] = acc[r][1] = _mm512_setzero_ps ();
  for (int i = 0; i < t->n_runs; i++) {
    const float *b = t->b + (size_t) t->runs[i].k0 * FER_CPU_NR;
    for (int kb = 0; kb < t->runs[i].len; kb += FER_CPU_KB) {
#pragma GCC unroll 16
      for (int kk = 0; kk < FER_CPU_KB; kk++) {
        __m512 b0 = _mm512_loadu_ps (b + kk * FER_CPU_NR);
        __m512 b1 = _mm512_loadu_ps (b + kk * FER_CPU_NR + 16);
        const float *ahead =
            b + (PREFETCH_BLOCKS * FER_CPU_KB + kk) * FER_CPU_NR;
        _mm_prefetch ((const char *) ahead, _MM_HINT_T0);
        _mm_prefetch ((const char *) (ahead + 16), _MM_HINT_T0);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
          __m512 av = _mm512_set1_ps (a[r * FER_CPU_KB + kk]);
          acc[r][0] = _mm512_fmadd_ps (av, b0, acc[r][0]);
          acc[r][1] = _mm512_fmadd_ps (av, b1, acc[r][1]);
        }
      }
      a += R * FER_CPU_KB;
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

static TARGET_AVX512 NO_ASAN void
tile_avx512 (const fer_cpu_tile *t)
{
  switch (t->rows) {
    case 1:
      tile_avx512_rows (1, t);
      break;
    case 2:
      tile_avx512_rows (2, t);
      break;
    case 3:
      tile_avx512_rows (3, t);
      break;
    case 4:
      tile_avx512_rows (4, t);
      break;
    case 5:
      tile_avx512_rows (5, t);
      break;
    case 6:
      tile_avx512_rows (6, t);
      break;
    case 7:
      tile_avx512_rows (7, t);
      break;
    case 8:
      tile_avx512_rows (8, t);
      break;
    case 9:
      tile_avx512_rows (9, t);
      break;
    case 10:
      tile_avx512_rows (10, t);
      break;
    case 11:
      tile_avx512_rows (11, t);
      break;
    case 12:
      tile_avx512_rows (12, t);
      break;
    case 13:
      tile_avx512_rows (13, t);
      break;
    case 14:
      tile_avx512_rows (14, t);
      break;
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

static ALWAYS_INLINE TARGET_AVX2 NO_ASAN void
tile_avx2_half (const int R, const fer_cpu_tile *t, int half)
{
  __m256 acc[MR_AVX2][2];
  const float *a = t->a;
  const int col0 = half * 16;
  const int ncols = MIN (t->ncols - col0, 16);

#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
    acc[r][0] = acc[r][1] = _mm256_setzero_ps ();
  for (int i = 0; i < t->n_runs; i++) {
    const float *b = t->b + (size_t) t->runs[i].k0 * FER_CPU_NR + col0;
    for (int kb = 0; kb < t->runs[i].len; kb += FER_CPU_KB) {
#pragma GCC unroll 16
      for (int kk = 0; kk < FER_CPU_KB; kk++) {
        __m256 b0 = _mm256_loadu_ps (b + kk * FER_CPU_NR);
        __m256 b1 = _mm256_loadu_ps (b + kk * FER_CPU_NR + 8);
        _mm_prefetch ((const char *) (b
                          + (PREFETCH_BLOCKS * FER_CPU_KB + kk) * FER_CPU_NR),
            _MM_HINT_T0);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
          __m256 av = _mm256_broadcast_ss (a + r * FER_CPU_KB + kk);
          acc[r][0] = _mm256_fmadd_ps (av, b0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps (av, b1, acc[r][1]);
        }
      }
      a += R * FER_CPU_KB;
      b += FER_CPU_KB * FER_CPU_NR;
    }
  }

  const float *bias = t->bias ? t->bias + col0 : NULL;
  const __m256 zero = _mm256_setzero_ps ();
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
        float x = v[j] + (bias ? bias[j] : 0.0f) + (res ? res[j] : 0.0f);
        c[j] = t->relu && x < 0.0f ? 0.0f : x;
      }
    }
  }
}

static ALWAYS_INLINE TARGET_AVX2 NO_ASAN void
tile_avx2_rows (const int R, const fer_cpu_tile *t)
{
  tile_avx2_half (R, t, 0);
  if (t->ncols > 16)
    tile_avx2_half (R, t, 1);
}

static TARGET_AVX2 NO_ASAN void
tile_avx2 (const fer_cpu_tile *t)
{
  switch (t->rows) {
    case 1:
      tile_avx2_rows (1, t);
      break;
    case 2:
      tile_avx2_rows (2, t);
      break;
    case 3:
      tile_avx2_rows (3, t);
      break;
    case 4:
      tile_avx2_rows (4, t);
      break;
    case 5:
      tile_avx2_rows (5, t);
      break;
    case 6:
      tile_avx2_rows (6, t);
      break;
    default:
      g_assert_not_reached ();
  }
}

#endif /* FER_CPU_X86 */

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */

/* -1 until first asked; then a fer_cpu_isa. Racing first calls agree. */
static gint active_isa = -1;

fer_cpu_isa
fer_cpu_isa_best (void)
{
#if FER_CPU_X86
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx512f"))
    return FER_CPU_ISA_AVX512;
  if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma"))
    return FER_CPU_ISA_AVX2;
#endif
  return FER_CPU_ISA_C;
}

fer_cpu_isa
fer_cpu_isa_get (void)
{
  gint isa = g_atomic_int_get (&active_isa);
  if (isa < 0) {
    isa = (gint) fer_cpu_isa_best ();
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
