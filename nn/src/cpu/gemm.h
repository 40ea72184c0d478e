/* The convolution micro-kernels (private to cpu/): one output tile of up to
 * FER_CPU_MR_MAX pixels x FER_CPU_NR channels, accumulated in registers in
 * float32 over a packed reduction and stored with bias, residual and ReLU
 * fused. Three builds of the same kernel, chosen at run time: AVX-512,
 * AVX2+FMA and plain C. All of them read the same packed layouts:
 *
 *   weight panel (conv.c packs it once, at load time):
 *     (krows, NR) = the rows kk = (ky * K + kx) * Cin + ci of one block of
 *     NR output channels; channels past Cout and rows past K*K*Cin are 0;
 *     float32, or IEEE half (binary16) values converted to float32 in
 *     registers as they are loaded (half the memory traffic for the
 *     memory-bound small batches; the arithmetic stays float32);
 *   packed pixels (conv.c packs them per tile, skipping padded taps):
 *     (klen / KB, rows, KB): the reduction in blocks of KB values, the rows
 *     of one block side by side, so a kernel walks A with one pointer. */
#ifndef FER_CPU_GEMM_H
#define FER_CPU_GEMM_H

#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#define FER_CPU_NR 32     /* output channels per weight panel */
#define FER_CPU_KB 16     /* reduction values per packed block */
#define FER_CPU_MR_MAX 14 /* most pixels per tile (the AVX-512 kernel's) */

typedef enum
{
  FER_CPU_ISA_C,
  FER_CPU_ISA_AVX2,   /* AVX2 + FMA + F16C */
  FER_CPU_ISA_AVX512, /* AVX-512 F */
} fer_cpu_isa;

/* A run of the reduction: len (a multiple of KB) consecutive panel rows
 * from row k0. A tile's packed pixels are its runs one after the other. */
typedef struct
{
  int k0, len;
} fer_cpu_krun;

typedef struct
{
  int rows;            /* pixels in the tile, 1..fer_cpu_isa_mr() */
  const float *a;      /* packed pixels (klen / KB, rows, KB) */
  const float *b;      /* weight panel (krows, NR), float32; or */
  const uint16_t *b16; /* the same panel of halves (when not NULL) */
  const fer_cpu_krun *runs;
  int n_runs;
  const int *row_ids; /* rows: output row of each pixel */
  float *c;           /* out + first channel; row m at c + m * ldc */
  const float *res;   /* residual, indexed like c; or NULL */
  const float *scale; /* + first channel: multiplies the sums before
                       * bias; or NULL */
  const float *bias;  /* + first channel; or NULL */
  ptrdiff_t ldc;      /* Cout */
  int ncols;          /* valid channels in the panel, 1..NR */
  gboolean relu;
} fer_cpu_tile;

/* The best kernel this CPU runs, and the one in use (the best, unless
 * fer_cpu_isa_set() or the environment variable FER_CPU_ISA=avx2|c, read
 * once, asked for a lower one). */
fer_cpu_isa fer_cpu_isa_best (void);
fer_cpu_isa fer_cpu_isa_get (void);
/* For tests: use `isa`, or the best one if this CPU cannot run it; returns
 * the one now in use. Not thread-safe against running convolutions. */
fer_cpu_isa fer_cpu_isa_set (fer_cpu_isa isa);
const char *fer_cpu_isa_name (fer_cpu_isa isa);
/* Most pixels per tile for `isa`'s kernel. */
int fer_cpu_isa_mr (fer_cpu_isa isa);

/* Packing helper: n_blocks blocks of KB floats from src (contiguous) to dst,
 * dst + stride, dst + 2 stride...; src NULL: zeros. */
void fer_cpu_pack_blocks (fer_cpu_isa isa, float *dst, ptrdiff_t stride,
    const float *src, int n_blocks);

/* dst (n floats) = the halves of src, exactly (VCVTPH2PS where the ISA
 * has it). */
void fer_cpu_halves_to_floats (
    fer_cpu_isa isa, float *dst, const uint16_t *src, size_t n);

/* c rows = act(scale * (packed pixels . panel) + bias [+ res]) over
 * t->ncols columns. */
void fer_cpu_gemm_tile (fer_cpu_isa isa, const fer_cpu_tile *t);

/* Winograd F(2x2, 3x3) transforms (cpu/conv.c), 16 channels at a time.
 * Input: V = B^T d B of a 4 x 4 tile whose pixel (u, v) is the 16 floats at
 * d[4 u + v] (a block of zeros for padding); V[p] (p = 4 i + j) goes to
 * dst + p * dstride. */
void fer_cpu_wino_input (
    fer_cpu_isa isa, float *dst, ptrdiff_t dstride, const float *const d[16]);
/* Weight gradient: dM = A dY A^T of the 2 x 2 output gradient tile whose
 * pixel (a, b) is the 16 floats at d[2 a + b]; dM[p] to dst + p * dstride. */
void fer_cpu_wino_dout (
    fer_cpu_isa isa, float *dst, ptrdiff_t dstride, const float *const d[4]);
/* dst (16, 16) with rows dst_stride apart = the transpose of src (16, 16),
 * rows src_stride apart. */
void fer_cpu_transpose16 (fer_cpu_isa isa, float *dst, ptrdiff_t dst_stride,
    const float *src, ptrdiff_t src_stride);
/* Output: Y = A^T M A of M[p] = m + p * mstride; out[q] (q = 2 a + b, NULL:
 * not stored) = act(Y[a][b] + bias [+ res[q]]), columns [0, ncols);
 * bias and res[q] may be NULL. */
void fer_cpu_wino_output (fer_cpu_isa isa, float *const out[4],
    const float *const res[4], const float *bias, int ncols, gboolean relu,
    const float *m, ptrdiff_t mstride);

#endif
