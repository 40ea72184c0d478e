/* Convolution on the CPU as an implicit GEMM: output pixels x output
 * channels, reduced over (ky, kx, ci). The weights are packed once into
 * panels of FER_CPU_NR channels; the pixels are packed a tile (a few
 * pixels) at a time and handed with a panel to the micro-kernel of
 * cpu/gemm.h, which stores act(. + bias [+ residual]) straight into the
 * NHWC output. With NHWC, one kernel row (ky) of a pixel's patch is k * Cin
 * contiguous input floats.
 *
 * Padding taps are left out. That matters on small maps: with a 3 x 3
 * kernel only 60% of the taps of a 3 x 3 map (layer3 at 48 x 48 input) and
 * 44% of a 2 x 2 map (layer4) are inside the image. A tile skips the taps
 * that are outside for all its pixels, so pixels are ordered either
 * naturally or grouped by the taps they see ("classes": corners, edges,
 * inside); schedule() prices both orders and keeps the cheaper. Skipping
 * needs Cin to be a multiple of FER_CPU_KB ("skip mode"). Other
 * convolutions (the 1- or 3-channel stem) are "dense": they read a
 * zero-padded copy of the input and pack every tap; their kernel rows are
 * padded to `rowlen` floats when that costs no extra reduction blocks (the
 * 7 x 7 x 1 stem: 8), so they pack with whole-vector copies.
 *
 * Work is handed out in items (a chunk of tiles x a range of panels) from
 * a shared counter, so threads balance themselves and a thread that does
 * not get a core in time does not hold the others up.
 *
 * The training convolution (forward, input and weight gradients) comes
 * next and runs on the same kernels and threads; the backend table's
 * entries, which hand each call the backend's scratch and threads, are at
 * the end of the file. */
#include "cpu/backend_cpu.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/gemm.h"
#include "cpu/workers.h"

/* Floats of packed pixels one item packs and runs its panels over: small
 * enough to stay in L2 next to a panel. */
#define CHUNK_FLOATS_DEFAULT ((size_t) 96 * 1024)

/* Taps are skipped for kernels up to this size (runs per tile, below). */
#define SKIP_MAX_K 8

/* Work items per thread when there are several threads. */
#define ITEMS_PER_THREAD 3

/* A panel of halves is widened to float32 (in the thread's scratch, where
 * it stays in L2) for a chunk of at least this many tiles: then the
 * conversion is paid once, not by every tile, and the float32 kernel runs;
 * fewer tiles (a forward of a face or two) convert as they load. Either
 * way the panel comes from memory as halves. */
#define WIDEN_TILES 3

typedef struct
{
  int row0, rows;     /* order[row0 .. row0 + rows) */
  int y0, y1, x0, x1; /* taps packed (inclusive; skip mode only) */
  int klen;           /* packed reduction length */
  int n_runs;
  fer_cpu_krun runs[SKIP_MAX_K];
  gint64 cost;
} conv_tile;

/* A scheduled pixel: output (b, oy, ox); its output row is order[]. */
typedef struct
{
  int b, oy, ox;
} conv_pixel;

/* Pixels [g0, g1) of an order that all see the taps ky in [win[0], win[1]],
 * kx in [win[2], win[3]] (and no others). */
typedef struct
{
  int g0, g1;
  int win[4];
} conv_class;

struct fer_cpu_conv_scratch
{
  int *order; /* output row of each scheduled pixel */
  size_t order_cap;
  conv_pixel *where; /* and the pixel itself */
  size_t where_cap;
  conv_tile *tiles, *other; /* the schedule; the other order's, priced */
  size_t tiles_cap;
  int *chunks; /* first tile of each chunk, then n_tiles */
  size_t chunks_cap;
  int *ranges; /* valid ky per oy, kx per ox: 4 per entry */
  size_t ranges_cap;
  conv_class *classes;
  size_t classes_cap;
  float *padded; /* dense mode: zero-bordered input */
  size_t padded_cap;
  float **packed; /* per thread, 64-byte aligned */
  size_t *packed_cap;
  int n_packed;
  size_t chunk;
  float *train_weight; /* training: the weight (or its transpose),
                                * packed afresh for each call */
  size_t train_weight_cap;
  int *ids; /* 0, 1, 2...: output rows of a weight
                                * gradient tile */
  size_t ids_cap;
  float *wino_u; /* Winograd: transformed weights, or their gradient */
  size_t wino_u_cap;
  fer_cpu_conv_algo winograd;
};

static int
round_up (int x, int to)
{
  return (x + to - 1) / to * to;
}

static gboolean
skip_mode (const fer_conv_shape *s)
{
  return s->cin % FER_CPU_KB == 0 && s->k <= SKIP_MAX_K;
}

/* Floats per kernel row (ky) in the reduction: k * cin, or that rounded up
 * to 8 when it does not make the reduction longer. */
static int
reduction_rowlen (int k, int cin)
{
  int exact = k * cin, padded = round_up (exact, 8);
  return round_up (k * padded, FER_CPU_KB) <= round_up (k * exact, FER_CPU_KB)
      ? padded
      : exact;
}

/* Rows of a weight panel: the whole reduction, in blocks. */
static int
reduction_rows (int k, int cin)
{
  return round_up (k * reduction_rowlen (k, cin), FER_CPU_KB);
}

size_t
fer_cpu_conv2d_weight_floats (int cout, int k, int cin)
{
  size_t blocks = (size_t) (cout + FER_CPU_NR - 1) / FER_CPU_NR;
  return blocks * reduction_rows (k, cin) * FER_CPU_NR;
}

/* Where value (o, ky, kx, c) of a weight to pack is: src[o * so + ky * sy
 * + kx * sx + c * sc]; so that the same packing serves the weight
 * (Cout, K, K, Cin), its transpose and its flipped transpose. */
typedef struct
{
  const float *src;
  ptrdiff_t so, sy, sx, sc;
} weight_view;

/* Panel jb of `packed`: the reduction (k rows of k * cin values, each
 * padded to rowlen) x FER_CPU_NR outputs from jb * NR, a block of KB rows
 * at a time. Outputs side by side in src (so == 1: the transposes) pack a
 * row with one copy; otherwise output by output, reading along the
 * reduction, with the block's writes within a few cache lines. */
static void
pack_panel (
    float *packed, const weight_view *v, int cout, int k, int cin, int jb)
{
  const int kc = k * cin, rowlen = reduction_rowlen (k, cin);
  const int krows = reduction_rows (k, cin);
  const int o0 = jb * FER_CPU_NR, ncols = MIN (FER_CPU_NR, cout - o0);
  ptrdiff_t off[FER_CPU_KB];
  gboolean valid[FER_CPU_KB];

  for (int kb = 0; kb < krows; kb += FER_CPU_KB) {
    float *dst = packed + ((size_t) jb * krows + kb) * FER_CPU_NR;
    gboolean all_valid = TRUE;
    for (int i = 0; i < FER_CPU_KB; i++) {
      int ky = (kb + i) / rowlen, j = (kb + i) % rowlen;
      valid[i] = ky < k && j < kc;
      off[i] = valid[i] ? ky * v->sy + j / cin * v->sx + j % cin * v->sc : 0;
      all_valid = all_valid && valid[i];
    }
    if (ncols < FER_CPU_NR || !all_valid)
      memset (dst, 0, FER_CPU_KB * FER_CPU_NR * sizeof (float));
    if (v->so == 1) {
      /* whole rows as copies of constant size, which the compiler inlines */
      for (int i = 0; i < FER_CPU_KB; i++)
        if (valid[i] && ncols == FER_CPU_NR)
          memcpy (dst + i * FER_CPU_NR, v->src + o0 + off[i],
              FER_CPU_NR * sizeof (float));
        else if (valid[i])
          memcpy (dst + i * FER_CPU_NR, v->src + o0 + off[i],
              ncols * sizeof (float));
      continue;
    }
    for (int c = 0; c < ncols; c++) {
      const float *src = v->src + (o0 + c) * v->so;
      if (all_valid)
        for (int i = 0; i < FER_CPU_KB; i++)
          dst[i * FER_CPU_NR + c] = src[off[i]];
      else
        for (int i = 0; i < FER_CPU_KB; i++)
          if (valid[i])
            dst[i * FER_CPU_NR + c] = src[off[i]];
    }
  }
}

static weight_view
weight_view_plain (const float *weight, int k, int cin)
{
  return (weight_view){ weight, (ptrdiff_t) k * k * cin, (ptrdiff_t) k * cin,
    cin, 1 };
}

void
fer_cpu_conv2d_pack_weight (
    float *packed, const float *weight, int cout, int k, int cin)
{
  const weight_view v = weight_view_plain (weight, k, cin);
  for (int jb = 0; jb < (cout + FER_CPU_NR - 1) / FER_CPU_NR; jb++)
    pack_panel (packed, &v, cout, k, cin, jb);
}

gboolean
fer_cpu_conv2d_pack_weight_f16 (uint16_t *packed, const float *weight, int cout,
    int k, int cin, GError **error)
{
  const size_t n = fer_cpu_conv2d_weight_floats (cout, k, cin);
  float *tmp = g_try_new (float, n);
  if (!tmp) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "cpu backend: cannot allocate %zu floats to pack a weight", n);
    return FALSE;
  }
  fer_cpu_conv2d_pack_weight (tmp, weight, cout, k, cin);
  for (size_t i = 0; i < n; i++)
    packed[i] = fer_f32_to_f16 (tmp[i]);
  g_free (tmp);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Scratch                                                             */

fer_cpu_conv_scratch *
fer_cpu_conv_scratch_new (void)
{
  fer_cpu_conv_scratch *sc = g_new0 (fer_cpu_conv_scratch, 1);
  const char *algo = g_getenv ("FER_CPU_CONV");
  sc->chunk = CHUNK_FLOATS_DEFAULT;
  sc->winograd = g_strcmp0 (algo, "direct") == 0 ? FER_CPU_CONV_DIRECT
      : g_strcmp0 (algo, "winograd") == 0        ? FER_CPU_CONV_WINOGRAD
                                                 : FER_CPU_CONV_AUTO;
  return sc;
}

void
fer_cpu_conv_scratch_free (fer_cpu_conv_scratch *sc)
{
  if (!sc)
    return;
  g_free (sc->order);
  g_free (sc->where);
  g_free (sc->tiles);
  g_free (sc->other);
  g_free (sc->chunks);
  g_free (sc->ranges);
  g_free (sc->classes);
  g_free (sc->padded);
  for (int i = 0; i < sc->n_packed; i++)
    free (sc->packed[i]);
  g_free (sc->packed);
  g_free (sc->packed_cap);
  free (sc->train_weight);
  free (sc->wino_u);
  g_free (sc->ids);
  g_free (sc);
}

fer_cpu_conv_algo
fer_cpu_conv_scratch_set_algo (fer_cpu_conv_scratch *sc, fer_cpu_conv_algo algo)
{
  sc->winograd = algo;
  return algo;
}

size_t
fer_cpu_conv_scratch_set_chunk (fer_cpu_conv_scratch *sc, size_t floats)
{
  sc->chunk = floats ? floats : CHUNK_FLOATS_DEFAULT;
  return sc->chunk;
}

/* *buf holds at least want elements of `size` bytes. */
static gboolean
grow (void **buf, size_t *cap, size_t want, size_t size, GError **error)
{
  if (want <= *cap)
    return TRUE;
  void *p = g_try_realloc_n (*buf, want, size);
  if (!p) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "cpu backend: cannot allocate %zu bytes of convolution scratch",
        want * size);
    return FALSE;
  }
  *buf = p;
  *cap = want;
  return TRUE;
}

/* *buf holds at least `floats` floats, 64-byte aligned (old contents
 * dropped). */
static gboolean
grow_aligned (float **buf, size_t *cap, size_t floats, GError **error)
{
  void *p;

  if (floats <= *cap)
    return TRUE;
  if (posix_memalign (&p, 64, floats * sizeof (float)) != 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "cpu backend: cannot allocate %zu floats of convolution scratch",
        floats);
    return FALSE;
  }
  free (*buf);
  *buf = p;
  *cap = floats;
  return TRUE;
}

static gboolean
grow_packed (
    fer_cpu_conv_scratch *sc, int threads, size_t floats, GError **error)
{
  if (threads > sc->n_packed) {
    sc->packed = g_renew (float *, sc->packed, threads);
    sc->packed_cap = g_renew (size_t, sc->packed_cap, threads);
    for (int i = sc->n_packed; i < threads; i++) {
      sc->packed[i] = NULL;
      sc->packed_cap[i] = 0;
    }
    sc->n_packed = threads;
  }
  for (int i = 0; i < threads; i++)
    if (!grow_aligned (&sc->packed[i], &sc->packed_cap[i], floats, error))
      return FALSE;
  return TRUE;
}

/* Room for `orders` orders of s's pixels, their tap ranges and classes. */
static gboolean
grow_orders (fer_cpu_conv_scratch *sc, const fer_conv_shape *s, int orders,
    GError **error)
{
  const size_t m = (size_t) s->n * s->oh * s->ow;
  return grow ((void **) &sc->order, &sc->order_cap, orders * m, sizeof (int),
             error)
      && grow ((void **) &sc->where, &sc->where_cap, orders * m,
          sizeof (conv_pixel), error)
      && grow ((void **) &sc->ranges, &sc->ranges_cap,
          4 * (size_t) MAX (s->oh, s->ow), sizeof (int), error)
      && grow ((void **) &sc->classes, &sc->classes_cap, (size_t) s->oh * s->ow,
          sizeof (conv_class), error);
}

static void
run_job (fer_cpu_workers *workers, fer_cpu_job fn, void *job)
{
  if (workers)
    fer_cpu_workers_run (workers, fn, job);
  else
    fn (job, 0, 1);
}

/* The next of a job's n_items work items, or -1 when all are taken. */
static int
take_item (atomic_int *next_item, int n_items)
{
  int item = atomic_fetch_add_explicit (next_item, 1, memory_order_relaxed);
  return item < n_items ? item : -1;
}

/* ------------------------------------------------------------------ */
/* Schedule                                                            */

/* Taps [*lo, *hi] of a k-tap kernel that land inside [0, size) for output
 * position o. */
static void
valid_taps (int o, int stride, int pad, int k, int size, int *lo, int *hi)
{
  int i0 = o * stride - pad;
  *lo = MAX (0, -i0);
  *hi = MIN (k - 1, size - 1 - i0);
}

/* Fills klen and runs from the tap hull. */
static void
tile_runs (conv_tile *t, const fer_conv_shape *s)
{
  t->n_runs = 0;
  t->klen = 0;
  if (!skip_mode (s)) {
    t->klen = reduction_rows (s->k, s->cin);
    t->runs[0] = (fer_cpu_krun){ 0, t->klen };
    t->n_runs = 1;
    return;
  }
  if (t->y1 < t->y0 || t->x1 < t->x0)
    return;
  for (int ky = t->y0; ky <= t->y1; ky++) {
    int k0 = (ky * s->k + t->x0) * s->cin, len = (t->x1 - t->x0 + 1) * s->cin;
    fer_cpu_krun *last = t->n_runs ? &t->runs[t->n_runs - 1] : NULL;
    if (last && last->k0 + last->len == k0)
      last->len += len;
    else
      t->runs[t->n_runs++] = (fer_cpu_krun){ k0, len };
    t->klen += len;
  }
}

/* Cost of a tile in kernel steps: below 4 pixels a tile has too few
 * accumulators to hide the FMA latency; +1 for packing and panel loads. */
static gint64
tile_cost (const conv_tile *t)
{
  return (gint64) t->klen * (MAX (t->rows, 4) + 1);
}

/* Cuts order[g0 .. g1) into tiles of at most mr rows, as even as possible;
 * the tap hull is the class's (cls) or the union of the rows'. */
static int
cut_group (conv_tile *tiles, int n_tiles, const conv_pixel *where, int g0,
    int g1, int mr, const int *cls, const int *ranges, const fer_conv_shape *s,
    gint64 *cost)
{
  const int g = g1 - g0, nt = (g + mr - 1) / mr;
  int row = g0;

  for (int i = 0; i < nt; i++) {
    conv_tile *t = &tiles[n_tiles++];
    t->row0 = row;
    t->rows = g / nt + (i < g % nt);
    row += t->rows;
    if (cls) {
      t->y0 = cls[0];
      t->y1 = cls[1];
      t->x0 = cls[2];
      t->x1 = cls[3];
    } else if (skip_mode (s)) {
      t->y0 = t->x0 = s->k;
      t->y1 = t->x1 = -1;
      for (int r = t->row0; r < t->row0 + t->rows; r++) {
        const int *yr = &ranges[4 * where[r].oy];
        const int *xr = &ranges[4 * where[r].ox + 2];
        t->y0 = MIN (t->y0, yr[0]);
        t->y1 = MAX (t->y1, yr[1]);
        t->x0 = MIN (t->x0, xr[0]);
        t->x1 = MAX (t->x1, xr[1]);
      }
    }
    tile_runs (t, s);
    t->cost = tile_cost (t);
    *cost += t->cost;
  }
  return n_tiles;
}

/* ranges[4 * o]: valid ky lo, hi of output row o; ranges[4 * o + 2]: valid
 * kx lo, hi of output column o. */
static void
fill_ranges (int *ranges, const fer_conv_shape *s)
{
  for (int o = 0; o < MAX (s->oh, s->ow); o++) {
    if (o < s->oh)
      valid_taps (
          o, s->stride, s->pad, s->k, s->h, &ranges[4 * o], &ranges[4 * o + 1]);
    if (o < s->ow)
      valid_taps (o, s->stride, s->pad, s->k, s->w, &ranges[4 * o + 2],
          &ranges[4 * o + 3]);
  }
}

/* order, where (n * oh * ow each) = the pixels grouped by the taps they
 * see, and classes (at most oh * ow) the groups; returns how many. Rows
 * (columns) with the same valid taps are contiguous, since the valid range
 * only shrinks towards the borders. */
static int
order_by_class (int *order, conv_pixel *where, conv_class *classes,
    const int *ranges, const fer_conv_shape *s)
{
  const int ohw = s->oh * s->ow;
  int pos = 0, n = 0;

  for (int y0 = 0, y1; y0 < s->oh; y0 = y1) {
    for (y1 = y0 + 1; y1 < s->oh && ranges[4 * y1] == ranges[4 * y0]
         && ranges[4 * y1 + 1] == ranges[4 * y0 + 1];
         y1++)
      ;
    for (int x0 = 0, x1; x0 < s->ow; x0 = x1) {
      for (x1 = x0 + 1; x1 < s->ow && ranges[4 * x1 + 2] == ranges[4 * x0 + 2]
           && ranges[4 * x1 + 3] == ranges[4 * x0 + 3];
           x1++)
        ;
      conv_class *c = &classes[n++];
      c->g0 = pos;
      c->win[0] = ranges[4 * y0];
      c->win[1] = ranges[4 * y0 + 1];
      c->win[2] = ranges[4 * x0 + 2];
      c->win[3] = ranges[4 * x0 + 3];
      for (int b = 0; b < s->n; b++)
        for (int oy = y0; oy < y1; oy++)
          for (int ox = x0; ox < x1; ox++, pos++) {
            order[pos] = b * ohw + oy * s->ow + ox;
            where[pos] = (conv_pixel){ b, oy, ox };
          }
      c->g1 = pos;
    }
  }
  return n;
}

/* Orders the pixels and cuts them into tiles (sc->order, sc->tiles);
 * returns the number of tiles. sc->order has room for two orders. */
static int
schedule (fer_cpu_conv_scratch *sc, const fer_conv_shape *s, int mr)
{
  const int m = s->n * s->oh * s->ow;
  gint64 natural_cost = 0, class_cost = 0;
  int n_natural, n_class = 0;

  fill_ranges (sc->ranges, s);
  for (int b = 0, i = 0; b < s->n; b++)
    for (int oy = 0; oy < s->oh; oy++)
      for (int ox = 0; ox < s->ow; ox++, i++) {
        sc->order[i] = i;
        sc->where[i] = (conv_pixel){ b, oy, ox };
      }
  n_natural = cut_group (
      sc->tiles, 0, sc->where, 0, m, mr, NULL, sc->ranges, s, &natural_cost);
  if (!skip_mode (s))
    return n_natural;

  int *order = sc->order + m;
  conv_pixel *where = sc->where + m;
  const int n_classes =
      order_by_class (order, where, sc->classes, sc->ranges, s);
  for (int i = 0; i < n_classes; i++)
    n_class = cut_group (sc->other, n_class, where, sc->classes[i].g0,
        sc->classes[i].g1, mr, sc->classes[i].win, sc->ranges, s, &class_cost);
  if (class_cost >= natural_cost)
    return n_natural;
  memcpy (sc->order, order, (size_t) m * sizeof (int));
  memcpy (sc->where, where, (size_t) m * sizeof (conv_pixel));
  conv_tile *t = sc->tiles;
  sc->tiles = sc->other;
  sc->other = t;
  return n_class;
}

/* ------------------------------------------------------------------ */
/* Packing                                                             */

static size_t
tile_floats (const conv_tile *t)
{
  return (size_t) t->rows * t->klen;
}

/* padded (n, h + 2 pad, w + 2 pad, cin) = inp with a zero border, then
 * `slack` zeros that the row copies of the last pixel may read. */
static void
pad_input (float *padded, const float *inp, const fer_conv_shape *s, int slack)
{
  const int hp = s->h + 2 * s->pad, wp = s->w + 2 * s->pad;
  const size_t row = (size_t) s->w * s->cin;
  const size_t total = (size_t) s->n * hp * wp * s->cin;

  memset (padded, 0, (total + slack) * sizeof (float));
  for (int b = 0; b < s->n; b++)
    for (int y = 0; y < s->h; y++)
      memcpy (padded + (((size_t) b * hp + y + s->pad) * wp + s->pad) * s->cin,
          inp + ((size_t) b * s->h + y) * row, row * sizeof (float));
}

/* Skip mode: the taps of t's hull, whole blocks of KB values per copy. */
static void
pack_tile_skip (float *a, const conv_tile *t, const conv_pixel *where,
    const float *inp, const fer_conv_shape *s, fer_cpu_isa isa)
{
  const int R = t->rows, cin = s->cin, nb = cin / FER_CPU_KB;
  const ptrdiff_t stride = (ptrdiff_t) R * FER_CPU_KB;

  for (int r = 0; r < R; r++) {
    const conv_pixel *px = &where[t->row0 + r];
    const int iy0 = px->oy * s->stride - s->pad;
    const int ix0 = px->ox * s->stride - s->pad;
    const float *img = inp + (size_t) px->b * s->h * s->w * cin;
    float *dst = a + r * FER_CPU_KB;

    for (int ky = t->y0; ky <= t->y1; ky++)
      for (int kx = t->x0; kx <= t->x1; kx++, dst += nb * stride) {
        int iy = iy0 + ky, ix = ix0 + kx;
        gboolean inside = iy >= 0 && iy < s->h && ix >= 0 && ix < s->w;
        fer_cpu_pack_blocks (isa, dst, stride,
            inside ? img + ((size_t) iy * s->w + ix) * cin : NULL, nb);
      }
  }
}

/* Dense mode: every tap from the zero-padded input, kernel row by kernel
 * row (k * cin contiguous floats, then zeros up to rowlen). */
static void
pack_tile_dense (float *a, const conv_tile *t, const conv_pixel *where,
    const float *padded, const fer_conv_shape *s)
{
  const int R = t->rows, cin = s->cin;
  const int wp = s->w + 2 * s->pad, hp = s->h + 2 * s->pad;
  const int kc = s->k * cin, rowlen = reduction_rowlen (s->k, cin);
  const size_t row_stride = (size_t) wp * cin;
  const ptrdiff_t block = (ptrdiff_t) R * FER_CPU_KB;

  for (int r = 0; r < R; r++) {
    const conv_pixel *px = &where[t->row0 + r];
    const float *src = padded
        + (((size_t) px->b * hp + px->oy * s->stride) * wp + px->ox * s->stride)
            * cin;
    float *dst = a + r * FER_CPU_KB;
    int kk = 0;

    if (rowlen % 8 == 0) {
      /* 8-float pieces, which never straddle a block: dst is the next
       * piece, `half` whether it is the second of its block */
      int half = 0;
      for (int ky = 0; ky < s->k; ky++, src += row_stride)
        for (int j = 0; j < rowlen; j += 8, kk += 8) {
          memcpy (dst, src + j, 8 * sizeof (float));
          for (int z = MAX (kc - j, 0); z < 8; z++)
            dst[z] = 0.0f;
          dst += half ? block - 8 : 8;
          half = !half;
        }
      for (; kk < t->klen; kk += 8) {
        memset (dst, 0, 8 * sizeof (float));
        dst += half ? block - 8 : 8;
        half = !half;
      }
    } else {
      for (int ky = 0; ky < s->k; ky++, src += row_stride)
        for (int j = 0; j < rowlen; j++, kk++)
          dst[kk / FER_CPU_KB * block + kk % FER_CPU_KB] =
              j < kc ? src[j] : 0.0f;
      for (; kk < t->klen; kk++)
        dst[kk / FER_CPU_KB * block + kk % FER_CPU_KB] = 0.0f;
    }
  }
}

/* ------------------------------------------------------------------ */
/* The work                                                            */

typedef struct
{
  float *out;
  const float *inp, *weight, *bias, *residual;
  const uint16_t *weight16; /* a panel of halves instead of weight */
  const float *scale;       /* of the sums, or NULL */
  const fer_conv_shape *s;
  gboolean relu;
  fer_cpu_isa isa;
  const fer_cpu_conv_scratch *sc;
  int n_chunks, parts; /* item i: chunk i / parts, part i % parts */
  atomic_int next_item;
  size_t panel_at; /* floats into a thread's packed buffer: the widened
                    * panel (weight16 only) */
} conv_job;

static void
conv_job_run (void *data, int thread, int threads)
{
  conv_job *j = data;
  const fer_conv_shape *s = j->s;
  const fer_cpu_conv_scratch *sc = j->sc;
  const int blocks = (s->cout + FER_CPU_NR - 1) / FER_CPU_NR;
  const int krows = reduction_rows (s->k, s->cin);
  const int n_items = j->n_chunks * j->parts;
  const gboolean skip = skip_mode (s);
  float *buf = sc->packed[thread];
  int packed_chunk = -1;

  for (int item; (item = take_item (&j->next_item, n_items)) >= 0;) {
    const int c = item / j->parts, part = item % j->parts;
    const int t0 = sc->chunks[c], t1 = sc->chunks[c + 1];

    if (c != packed_chunk) {
      size_t off = 0;
      for (int i = t0; i < t1; i++) {
        if (skip)
          pack_tile_skip (
              buf + off, &sc->tiles[i], sc->where, j->inp, s, j->isa);
        else
          pack_tile_dense (buf + off, &sc->tiles[i], sc->where, sc->padded, s);
        off += tile_floats (&sc->tiles[i]);
      }
      packed_chunk = c;
    }
    for (int nb = part * blocks / j->parts; nb < (part + 1) * blocks / j->parts;
         nb++) {
      const int n0 = nb * FER_CPU_NR;
      const size_t panel = (size_t) nb * krows * FER_CPU_NR;
      const gboolean widen = j->weight16 && t1 - t0 >= WIDEN_TILES;
      if (widen)
        fer_cpu_halves_to_floats (j->isa, buf + j->panel_at,
            j->weight16 + panel, (size_t) krows * FER_CPU_NR);
      fer_cpu_tile kt = {
        .b = widen      ? buf + j->panel_at
            : j->weight ? j->weight + panel
                        : NULL,
        .b16 = j->weight16 && !widen ? j->weight16 + panel : NULL,
        .c = j->out + n0,
        .res = j->residual ? j->residual + n0 : NULL,
        .scale = j->scale ? j->scale + n0 : NULL,
        .bias = j->bias ? j->bias + n0 : NULL,
        .ldc = s->cout,
        .ncols = MIN (FER_CPU_NR, s->cout - n0),
        .relu = j->relu,
      };
      size_t off = 0;
      for (int i = t0; i < t1; i++) {
        kt.rows = sc->tiles[i].rows;
        kt.a = buf + off;
        kt.runs = sc->tiles[i].runs;
        kt.n_runs = sc->tiles[i].n_runs;
        kt.row_ids = sc->order + sc->tiles[i].row0;
        fer_cpu_gemm_tile (j->isa, &kt);
        off += tile_floats (&sc->tiles[i]);
      }
    }
  }
}

/* Cuts the tiles into chunks of at most `budget` packed floats (or one
 * tile); returns the number of chunks, *largest their largest size. */
static int
cut_chunks (int *chunks, const conv_tile *tiles, int n_tiles, size_t budget,
    size_t *largest)
{
  int n = 0;
  size_t used = 0;

  *largest = 0;
  for (int i = 0; i < n_tiles; i++) {
    if (i == 0 || used + tile_floats (&tiles[i]) > budget) {
      chunks[n++] = i;
      used = 0;
    }
    used += tile_floats (&tiles[i]);
    *largest = MAX (*largest, used);
  }
  chunks[n] = n_tiles;
  return n;
}

/* fer_cpu_conv2d_forward and its half-panel twin: weight or weight16. */
static gboolean
conv_forward (float *out, const float *inp, const float *weight,
    const uint16_t *weight16, const float *scale, const float *bias,
    const float *residual, const fer_conv_shape *s, gboolean relu,
    fer_cpu_conv_scratch *sc, fer_cpu_workers *workers, GError **error)
{
  const fer_cpu_isa isa = fer_cpu_isa_get ();
  const int threads = workers ? fer_cpu_workers_n (workers) : 1;
  const int blocks = (s->cout + FER_CPU_NR - 1) / FER_CPU_NR;
  const size_t m = (size_t) s->n * s->oh * s->ow;
  size_t total = 0, largest, budget = sc->chunk;
  int n_tiles;

  if (m == 0)
    return TRUE;
  if (!grow_orders (sc, s, 2, error)
      || !grow (
          (void **) &sc->chunks, &sc->chunks_cap, m + 1, sizeof (int), error))
    return FALSE;
  if (m > sc->tiles_cap) {
    size_t cap = sc->tiles_cap;
    if (!grow ((void **) &sc->tiles, &cap, m, sizeof (conv_tile), error)
        || !grow (
            (void **) &sc->other, &sc->tiles_cap, m, sizeof (conv_tile), error))
      return FALSE;
  }
  if (!skip_mode (s)) {
    const int slack = reduction_rowlen (s->k, s->cin);
    const size_t floats =
        (size_t) s->n * (s->h + 2 * s->pad) * (s->w + 2 * s->pad) * s->cin
        + slack;
    if (!grow ((void **) &sc->padded, &sc->padded_cap, floats, sizeof (float),
            error))
      return FALSE;
    pad_input (sc->padded, inp, s, slack);
  }

  n_tiles = schedule (sc, s, fer_cpu_isa_mr (isa));
  for (int i = 0; i < n_tiles; i++)
    total += tile_floats (&sc->tiles[i]);

  conv_job j = { out, inp, weight, bias, residual, weight16, scale, s, relu,
    isa, sc, 0, 1, 0, 0 };
  /* With threads, enough items to balance: smaller chunks when the pixels
   * outweigh the weights (each item packs its chunk), else panel ranges
   * (each thread reads only its panels). */
  const int want = threads > 1 ? ITEMS_PER_THREAD * threads : 1;
  const size_t weight_floats =
      fer_cpu_conv2d_weight_floats (s->cout, s->k, s->cin) / (weight16 ? 2 : 1);
  if (threads > 1 && total > weight_floats)
    budget = MIN (budget, MAX (total / want, 1));
  j.n_chunks = cut_chunks (sc->chunks, sc->tiles, n_tiles, budget, &largest);
  j.parts = CLAMP ((want + j.n_chunks - 1) / j.n_chunks, 1, blocks);
  atomic_init (&j.next_item, 0);

  /* the widened panel after the packed pixels, 64-byte aligned */
  j.panel_at = weight16 ? (size_t) round_up ((int) largest, 16) : 0;
  if (!grow_packed (sc, threads,
          MAX (j.panel_at
                  + (weight16
                          ? (size_t) reduction_rows (s->k, s->cin) * FER_CPU_NR
                          : largest),
              1),
          error))
    return FALSE;
  run_job (workers, conv_job_run, &j);
  return TRUE;
}

gboolean
fer_cpu_conv2d_forward (float *out, const float *inp, const float *weight,
    const float *bias, const float *residual, const fer_conv_shape *s,
    gboolean relu, fer_cpu_conv_scratch *sc, fer_cpu_workers *workers,
    GError **error)
{
  return conv_forward (out, inp, weight, NULL, NULL, bias, residual, s, relu,
      sc, workers, error);
}

gboolean
fer_cpu_conv2d_forward_f16 (float *out, const float *inp,
    const uint16_t *weight, const float *scale, const float *bias,
    const float *residual, const fer_conv_shape *s, gboolean relu,
    fer_cpu_conv_scratch *sc, fer_cpu_workers *workers, GError **error)
{
  return conv_forward (out, inp, NULL, weight, scale, bias, residual, s, relu,
      sc, workers, error);
}

/* ------------------------------------------------------------------ */
/* Training                                                            */
/*
 * The trainer's weights change every step, so each call packs them afresh
 * into the scratch (in parallel, a panel per item), then:
 *   forward: the convolution above, without bias or activation;
 *   dinp:    stride 1: the convolution above over dout (dinp_is_conv);
 *            else dcol (pixels, kdim) = dout (pixels, cout) . weight (cout,
 *            kdim), which is the convolution above as a 1 x 1 conv over
 *            dout with the transposed weight, then a col2im that sums the
 *            taps back into dinp, image by image; kdim = k * k * cin;
 *   dweight: (cout, kdim) += dout^T . im2col(inp) on the same micro-kernel:
 *            a tile is a few output channels x one panel of NR kdim
 *            columns, reduced over the pixels, with the kernel's residual
 *            pointing at the tile itself so that it accumulates. Each item
 *            owns a range of panels (no two threads write the same dweight)
 *            and, chunk of pixels by chunk of pixels, packs dout^T (every
 *            channel) and the im2col panel of its columns straight from inp;
 *            the pixels go by class, so that panels of padding are skipped.
 * The workspace holds dcol for as many images as fit; with fewer than the
 * batch, dinp runs in chunks of images. Stride-1 convs need none. */

/* Floats of dout^T a weight-gradient item packs per chunk of pixels. */
#define DWEIGHT_CHUNK_FLOATS ((size_t) 64 * 1024)
#define DWEIGHT_CHUNK_MAX_PIXELS 512

/* ------------------------------------------------------------------ */
/* Winograd F(2x2, 3x3)                                                */
/*
 * A 3 x 3, stride-1, pad-1 convolution computes 2 x 2 output pixels from
 * a 4 x 4 input tile as Y = A^T [U . V] A, U = G g G^T (the weight), V =
 * B^T d B (the input tile): 16 products per channel pair where the direct
 * convolution has 36, i.e. 2.25x fewer multiply-adds. The 16 products of
 * a tile are 16 independent GEMMs over the channels, (tiles, cin) x (cin,
 * cout), and those run on the micro-kernel of cpu/gemm.h (every ISA):
 * the 16 transformed weights are packed as 16 1 x 1 convolutions' panels,
 * the transformed input as packed pixels.
 *
 * Training uses it for the forward pass, for the input gradient (the
 * stride-1 input gradient is such a convolution, with the flipped,
 * transposed weight) and for the weight gradient: the gradient of U is
 * dU[p] (cout, cin) = sum over tiles of dM[p]^T V[p], dM = A dY A^T,
 * another 16 GEMMs, reduced over the tiles, then dW = G^T dU G.
 *
 * Numerics: the transforms add and subtract up to 4 (input, output) or 9
 * (weight) values, so the float rounding is a little larger than the
 * direct convolution's (tests/nn/test_op_conv.c bounds it), but every
 * output is still computed by one fixed sequence of operations, so the
 * results do not depend on the number of threads. F(4x4, 3x3) would save
 * more (4x) but its transforms have coefficients up to 8 and errors about
 * 10x larger; F(2x2) keeps training close to the direct convolution.
 *
 * Inference: the backend's prepare_weight transforms and packs a weight
 * once at load time when the shape the model runs it at is one that
 * winograd_applies() takes (layer1-3 of the nopool stem at 44 px, layer1-2
 * of the torchvision stem); its conv2d_forward then runs wino_forward
 * with it. Such weights are float32 (the BatchNorm scale folded in, as for
 * F32 files): 16 / 9 the memory of a float32 weight, 32 / 9 of a half
 * one. At the element's batches (1-4 faces x 1-10 views) the whole
 * forward measured 3-22% faster than with the direct convolution of half
 * weights for the torchvision stem and 25-43% for nopool
 * (docs/benchmarks.md, "Winograd in inference"). */

/* G of F(2x2, 3x3); B^T and A^T are in the transforms of cpu/gemm.c */
static const float wino_g[4][3] = { { 1, 0, 0 }, { 0.5f, 0.5f, 0.5f },
  { 0.5f, -0.5f, 0.5f }, { 0, 0, 1 } };

/* Smallest output side at which the automatic choice takes Winograd: on
 * smaller maps most of a tile is padding, which the direct convolution
 * skips. */
#define WINO_MIN_SIDE 4
/* Floats of transformed pixels one forward item packs (all 16 products). */
#define WINO_CHUNK_FLOATS ((size_t) 128 * 1024)
/* Floats of packed dM^T and V (all 16 products) per chunk of tiles. */
#define WINO_DW_CHUNK_FLOATS ((size_t) 256 * 1024)

static gboolean
winograd_applies (const fer_conv_shape *s, const fer_cpu_conv_scratch *sc)
{
  if (s->k != 3 || s->stride != 1 || s->pad != 1
      || sc->winograd == FER_CPU_CONV_DIRECT)
    return FALSE;
  return sc->winograd == FER_CPU_CONV_WINOGRAD
      || (s->cin >= FER_CPU_KB && s->cout >= FER_CPU_KB
          && MIN (s->oh, s->ow) >= WINO_MIN_SIDE);
}

G_NO_INLINE static void
axpy_row (float *restrict dst, const float *restrict src, float a, size_t n)
{
  if (a == 1.0f)
    FER_FOR_VEC (i, n, dst[i] += src[i]);
  else if (a == -1.0f)
    FER_FOR_VEC (i, n, dst[i] -= src[i]);
  else
    FER_FOR_VEC (i, n, dst[i] += a * src[i]);
}

/* The tile grid: tiles of 2 x 2 outputs, th x tw per image. */
static void
wino_tiles (const fer_conv_shape *s, int *th, int *tw, int *n_tiles)
{
  *th = (s->oh + 1) / 2;
  *tw = (s->ow + 1) / 2;
  *n_tiles = s->n * *th * *tw;
}

/* ---- weights ---- */

/* Row i of G reversed is row wino_flip (i). */
static int
wino_flip (int i)
{
  return i == 0 ? 3 : i == 3 ? 0 : i;
}

typedef struct
{
  float *packed;       /* 16 x fer_cpu_conv2d_weight_floats (pcout, 1, pcin) */
  float *u;            /* (16, cout, cin) */
  const float *weight; /* (cout, 3, 3, cin) */
  int cout, cin;
  gboolean flipped; /* pack the flipped transpose: pcout = cin, pcin = cout */
  int phase;        /* 0: transform, 1: pack */
  atomic_int next_item;
} wino_weight_job;

static void
wino_weight_job_run (void *data, int thread, int threads)
{
  wino_weight_job *j = data;
  const size_t plane = (size_t) j->cout * j->cin;
  const int pcout = j->flipped ? j->cin : j->cout;
  const int pcin = j->flipped ? j->cout : j->cin;
  const size_t floats = fer_cpu_conv2d_weight_floats (pcout, 1, pcin);

  for (int p; (p = take_item (&j->next_item, 16)) >= 0;) {
    if (j->phase == 0) {
      /* U[p] = (G g G^T)[p / 4][p % 4] for every channel pair */
      float *u = j->u + p * plane;
      memset (u, 0, plane * sizeof (float));
      for (int o = 0; o < j->cout; o++)
        for (int tap = 0; tap < 9; tap++) {
          const float c = wino_g[p / 4][tap / 3] * wino_g[p % 4][tap % 3];
          if (c != 0.0f)
            axpy_row (u + (size_t) o * j->cin,
                j->weight + ((size_t) o * 9 + tap) * j->cin, c,
                (size_t) j->cin);
        }
      continue;
    }
    /* flipping the kernel in space reverses G's columns, which swaps its
     * rows 0 and 3: the flipped weight's U[i][j] is U[f(i)][f(j)] */
    const int fp = 4 * wino_flip (p / 4) + wino_flip (p % 4);
    const weight_view v = j->flipped
        ? (weight_view){ j->u + fp * plane, 1, 0, 0, j->cin }
        : weight_view_plain (j->u + p * plane, 1, j->cin);
    for (int jb = 0; jb < (pcout + FER_CPU_NR - 1) / FER_CPU_NR; jb++)
      pack_panel (j->packed + p * floats, &v, pcout, 1, pcin, jb);
  }
}

/* packed = the 16 transformed weights of weight (cout, 3, 3, cin), or of
 * its flipped transpose (the input gradient's), each packed as a 1 x 1
 * convolution's; u: room for 16 * cout * cin floats. */
static void
wino_transform_weight (float *packed, float *u, const float *weight, int cout,
    int cin, gboolean flipped, fer_cpu_workers *workers)
{
  wino_weight_job j = { packed, u, weight, cout, cin, flipped, 0, 0 };

  for (j.phase = 0; j.phase < 2; j.phase++) {
    atomic_init (&j.next_item, 0);
    run_job (workers, wino_weight_job_run, &j);
  }
}

/* Floats of wino_transform_weight's packed weights. */
static size_t
wino_weight_floats (int cout, int cin)
{
  return 16
      * MAX (fer_cpu_conv2d_weight_floats (cout, 1, cin),
          fer_cpu_conv2d_weight_floats (cin, 1, cout));
}

/* sc->train_weight = wino_transform_weight's packing of weight. */
static gboolean
wino_pack_weight (fer_cpu_conv_scratch *sc, const float *weight, int cout,
    int cin, gboolean flipped, fer_cpu_workers *workers, GError **error)
{
  if (!grow_aligned (&sc->train_weight, &sc->train_weight_cap,
          wino_weight_floats (cout, cin), error)
      || !grow_aligned (
          &sc->wino_u, &sc->wino_u_cap, 16 * (size_t) cout * cin, error))
    return FALSE;
  wino_transform_weight (
      sc->train_weight, sc->wino_u, weight, cout, cin, flipped, workers);
  return TRUE;
}

/* ---- forward ---- */

typedef struct
{
  float *out;
  const float *inp, *weight, *bias, *residual;
  const fer_conv_shape *s;
  gboolean relu;
  fer_cpu_isa isa;
  int mr, th, tw, n_tiles, chunk, kr;
  const fer_cpu_conv_scratch *sc;
  atomic_int next_item;
} wino_job;

/* A block of zeros as wide as a Winograd transform's channel block. */
static const float wino_zero[FER_CPU_KB];

/* d[q] = channels [c0, c0 + KB) of pixel (y0 + q / side, x0 + q % side)
 * of img (h, w, c), for q < side * side: a block of zeros outside the map
 * or when nc (the valid channels from c0) is 0, a zero-padded copy in
 * part[q] when nc < KB. */
static void
wino_gather (const float **d, float (*part)[FER_CPU_KB], int side,
    const float *img, int h, int w, int c, int y0, int x0, int c0, int nc)
{
  for (int q = 0; q < side * side; q++) {
    const int y = y0 + q / side, x = x0 + q % side;
    d[q] = wino_zero;
    if (y < 0 || y >= h || x < 0 || x >= w || nc <= 0)
      continue;
    d[q] = img + ((size_t) y * w + x) * c + c0;
    if (nc < FER_CPU_KB) {
      memset (part[q], 0, sizeof part[q]);
      memcpy (part[q], d[q], (size_t) nc * sizeof (float));
      d[q] = part[q];
    }
  }
}

/* Tile t's transformed pixels: V[p] of channels [0, kr) to the packed
 * blocks at a (a tile row of a group of `rows`; product p at a + p *
 * aplane). */
static void
wino_pack_tile (float *a, size_t aplane, int rows, const wino_job *j, int t,
    float (*part)[FER_CPU_KB])
{
  const fer_conv_shape *s = j->s;
  const int b = t / (j->th * j->tw), ty = t / j->tw % j->th, tx = t % j->tw;
  const float *img = j->inp + (size_t) b * s->h * s->w * s->cin;

  for (int c0 = 0; c0 < j->kr; c0 += FER_CPU_KB) {
    const float *d[16];
    wino_gather (d, part, 4, img, s->h, s->w, s->cin, 2 * ty - 1, 2 * tx - 1,
        c0, MIN (FER_CPU_KB, s->cin - c0));
    fer_cpu_wino_input (j->isa, a + (size_t) c0 * rows, (ptrdiff_t) aplane, d);
  }
}

/* Output tile t from m (its row of 16 planes of `plane` floats): Y = A^T M
 * A, + bias [+ residual], ReLU; outputs past the map are not stored. */
static void
wino_output (const wino_job *j, const float *m, size_t plane, int t)
{
  const fer_conv_shape *s = j->s;
  const int b = t / (j->th * j->tw), ty = t / j->tw % j->th, tx = t % j->tw;
  size_t off[4];
  gboolean inside[4];

  for (int q = 0; q < 4; q++) {
    const int oy = 2 * ty + q / 2, ox = 2 * tx + q % 2;
    inside[q] = oy < s->oh && ox < s->ow;
    off[q] = (((size_t) b * s->oh + oy) * s->ow + ox) * s->cout;
  }
  for (int c0 = 0; c0 < s->cout; c0 += FER_CPU_KB) {
    float *out[4];
    const float *res[4];
    for (int q = 0; q < 4; q++) {
      out[q] = inside[q] ? j->out + off[q] + c0 : NULL;
      res[q] = inside[q] && j->residual ? j->residual + off[q] + c0 : NULL;
    }
    fer_cpu_wino_output (j->isa, out, res, j->bias ? j->bias + c0 : NULL,
        MIN (FER_CPU_KB, s->cout - c0), j->relu, m + c0, (ptrdiff_t) plane);
  }
}

static void
wino_job_run (void *data, int thread, int threads)
{
  wino_job *j = data;
  const fer_conv_shape *s = j->s;
  const int kr = j->kr, blocks = (s->cout + FER_CPU_NR - 1) / FER_CPU_NR;
  const int n_items = (j->n_tiles + j->chunk - 1) / j->chunk;
  const size_t wfloats = fer_cpu_conv2d_weight_floats (s->cout, 1, s->cin);
  const size_t aplane = (size_t) j->chunk * kr;
  const size_t mplane = (size_t) j->chunk * s->cout;
  float *a = j->sc->packed[thread], *m = a + 16 * aplane;
  /* partial channel blocks, zero-padded */
  float (*part)[FER_CPU_KB] = (void *) (m + 16 * mplane + FER_CPU_KB);
  const fer_cpu_krun run = { 0, kr };

  for (int item; (item = take_item (&j->next_item, n_items)) >= 0;) {
    const int t0 = item * j->chunk, n = MIN (j->chunk, j->n_tiles - t0);
    const int groups = (n + j->mr - 1) / j->mr;

    /* the transformed pixels, tile groups of the kernel's height packed as
     * (kr / KB, rows, KB) per product */
    for (int g = 0, r0 = 0; g < groups; g++) {
      const int rows = n / groups + (g < n % groups);
      for (int r = 0; r < rows; r++)
        wino_pack_tile (a + (size_t) r0 * kr + r * FER_CPU_KB, aplane, rows, j,
            t0 + r0 + r, part);
      r0 += rows;
    }
    /* M[p] (n, cout) = V[p] U[p] */
    for (int p = 0; p < 16; p++)
      for (int nb = 0; nb < blocks; nb++) {
        fer_cpu_tile kt = {
          .b = j->weight + p * wfloats + (size_t) nb * kr * FER_CPU_NR,
          .runs = &run,
          .n_runs = 1,
          .c = m + p * mplane + nb * FER_CPU_NR,
          .ldc = s->cout,
          .ncols = MIN (FER_CPU_NR, s->cout - nb * FER_CPU_NR),
        };
        for (int g = 0, r0 = 0; g < groups; g++) {
          kt.rows = n / groups + (g < n % groups);
          kt.a = a + p * aplane + (size_t) r0 * kr;
          kt.row_ids = j->sc->ids + r0;
          fer_cpu_gemm_tile (j->isa, &kt);
          r0 += kt.rows;
        }
      }
    for (int r = 0; r < n; r++)
      wino_output (j, m + (size_t) r * s->cout, mplane, t0 + r);
  }
}

/* out = act(conv(inp, weight) + bias [+ residual]) for a
 * winograd_applies() shape; the weight from wino_pack_weight. */
static gboolean
wino_forward (float *out, const float *inp, const float *weight,
    const float *bias, const float *residual, const fer_conv_shape *s,
    gboolean relu, fer_cpu_conv_scratch *sc, fer_cpu_workers *workers,
    GError **error)
{
  const int threads = workers ? fer_cpu_workers_n (workers) : 1;
  const int kr = reduction_rows (1, s->cin);
  wino_job j = { out, inp, weight, bias, residual, s, relu, fer_cpu_isa_get (),
    0, 0, 0, 0, 0, kr, sc, 0 };

  wino_tiles (s, &j.th, &j.tw, &j.n_tiles);
  if (j.n_tiles == 0 || s->cout == 0)
    return TRUE;
  j.mr = fer_cpu_isa_mr (j.isa);
  j.chunk = (int) CLAMP (WINO_CHUNK_FLOATS / (16 * (size_t) MAX (kr, s->cout)),
      (size_t) 2 * j.mr, (size_t) 32 * j.mr);
  /* with threads, at least ITEMS_PER_THREAD items each */
  if (threads > 1)
    j.chunk = MIN (j.chunk,
        MAX (j.mr,
            (j.n_tiles + ITEMS_PER_THREAD * threads - 1)
                / (ITEMS_PER_THREAD * threads)));
  j.chunk = MIN (j.chunk, j.n_tiles);
  if (!grow ((void **) &sc->ids, &sc->ids_cap, j.chunk, sizeof (int), error)
      || !grow_packed (sc, threads,
          16 * ((size_t) j.chunk * (kr + s->cout) + 2 * FER_CPU_KB), error))
    return FALSE;
  for (int i = 0; i < j.chunk; i++)
    sc->ids[i] = i;
  atomic_init (&j.next_item, 0);
  run_job (workers, wino_job_run, &j);
  return TRUE;
}

/* ---- weight gradient ---- */
/*
 * Chunk by chunk of tiles, two jobs: the transforms (an item per 16
 * tiles: V[p] into panels (tiles, NR) of cin, dM[p] transposed into the
 * kernel's packed pixels, cout rows reduced over the tiles), then the 16
 * GEMMs dU[p] (cout, cin) += dM[p]^T V[p] (an item per product and range
 * of panels). Each dU value adds its chunks in order, whatever the
 * threads. */

typedef struct
{
  float *du; /* (16, cout, cin) */
  const float *dout, *inp;
  const fer_conv_shape *s;
  fer_cpu_isa isa;
  int mr, th, tw, n_tiles, chunk, panels, parts;
  int t0, len, lenp;     /* the chunk: tiles [t0, t0 + len), lenp rounded */
  float *a, *b;          /* dM^T (16, cout, lenp), V (16, panels, lenp, NR) */
  size_t aplane, bplane; /* floats of a product in a, in b */
  const fer_cpu_conv_scratch *sc;
  atomic_int next_item;
} wino_dw_job;

/* Channel groups of the weight gradient's tiles: cut as cut_group cuts
 * pixels. */
static int
wino_dw_groups (const wino_dw_job *j)
{
  return (j->s->cout + j->mr - 1) / j->mr;
}

/* Floats of a weight-gradient chunk's shared buffers (dM^T and V), and of
 * each thread's own blocks after them. */
#define WINO_DW_SHARED(j)                                                      \
  (16 * ((size_t) (j)->s->cout + (size_t) (j)->panels * FER_CPU_NR)            \
      * (size_t) (j)->chunk)
#define WINO_DW_OWN (18 * FER_CPU_KB * FER_CPU_KB)

static void
wino_dw_transform_run (void *data, int thread, int threads)
{
  wino_dw_job *j = data;
  const fer_conv_shape *s = j->s;
  const int cin = s->cin, cout = s->cout, nt = wino_dw_groups (j);
  const size_t aplane = j->aplane, bplane = j->bplane;
  /* this thread's blocks, after the shared chunk */
  float (*blk)[FER_CPU_KB][FER_CPU_KB] =
      (void *) (j->sc->packed[thread] + WINO_DW_SHARED (j));
  float (*tr)[FER_CPU_KB] = (void *) (blk + 16);
  float (*part)[FER_CPU_KB] = tr + FER_CPU_KB;

  for (int tb; (tb = take_item (&j->next_item, j->lenp / FER_CPU_KB)) >= 0;) {
    /* V[p] of the block's tiles */
    for (int i = tb * FER_CPU_KB; i < (tb + 1) * FER_CPU_KB; i++) {
      const int t = j->t0 + i, b = t / (j->th * j->tw);
      const int ty = t / j->tw % j->th, tx = t % j->tw;
      const float *img = j->inp + (size_t) b * s->h * s->w * cin;
      for (int c0 = 0; c0 < j->panels * FER_CPU_NR; c0 += FER_CPU_KB) {
        const float *d[16];
        wino_gather (d, part, 4, img, s->h, s->w, cin, 2 * ty - 1, 2 * tx - 1,
            c0, i < j->len ? MIN (FER_CPU_KB, cin - c0) : 0);
        fer_cpu_wino_input (j->isa,
            j->b + ((size_t) (c0 / FER_CPU_NR) * j->lenp + i) * FER_CPU_NR
                + c0 % FER_CPU_NR,
            (ptrdiff_t) bplane, d);
      }
    }
    /* dM[p] of the block's tiles, 16 channels at a time, transposed */
    for (int c0 = 0; c0 < cout; c0 += FER_CPU_KB) {
      const int nc = MIN (FER_CPU_KB, cout - c0);
      for (int i = 0; i < FER_CPU_KB; i++) {
        const int t = j->t0 + tb * FER_CPU_KB + i, b = t / (j->th * j->tw);
        const int ty = t / j->tw % j->th, tx = t % j->tw;
        const float *d[4];
        wino_gather (d, part, 2, j->dout + (size_t) b * s->oh * s->ow * cout,
            s->oh, s->ow, cout, 2 * ty, 2 * tx, c0,
            tb * FER_CPU_KB + i < j->len ? nc : 0);
        fer_cpu_wino_dout (j->isa, blk[0][i], FER_CPU_KB * FER_CPU_KB, d);
      }
      for (int p = 0; p < 16; p++) {
        fer_cpu_transpose16 (j->isa, tr[0], FER_CPU_KB, blk[p][0], FER_CPU_KB);
        for (int c = c0; c < c0 + nc; c++) {
          /* channel c is row r of group g */
          const int base = cout / nt, extra = cout % nt;
          const int g = c < extra * (base + 1)
              ? c / (base + 1)
              : extra + (c - extra * (base + 1)) / base;
          const int g0 = g * base + MIN (g, extra), rows = base + (g < extra);
          memcpy (j->a + p * aplane + (size_t) g0 * j->lenp
                  + ((size_t) tb * rows + (c - g0)) * FER_CPU_KB,
              tr[c - c0], FER_CPU_KB * sizeof (float));
        }
      }
    }
  }
}

static void
wino_dw_gemm_run (void *data, int thread, int threads)
{
  wino_dw_job *j = data;
  const fer_conv_shape *s = j->s;
  const int cin = s->cin, cout = s->cout, nt = wino_dw_groups (j);
  const size_t aplane = j->aplane, bplane = j->bplane;
  const fer_cpu_krun run = { 0, j->lenp };

  for (int item; (item = take_item (&j->next_item, 16 * j->parts)) >= 0;) {
    const int p = item / j->parts, part = item % j->parts;
    float *du = j->du + (size_t) p * cout * cin;
    for (int nb = part * j->panels / j->parts;
         nb < (part + 1) * j->panels / j->parts; nb++) {
      fer_cpu_tile kt = {
        .b = j->b + p * bplane + (size_t) nb * j->lenp * FER_CPU_NR,
        .runs = &run,
        .n_runs = 1,
        .c = du + nb * FER_CPU_NR,
        .res = du + nb * FER_CPU_NR,
        .ldc = cin,
        .ncols = MIN (FER_CPU_NR, cin - nb * FER_CPU_NR),
      };
      for (int g = 0, c0 = 0; g < nt; g++) {
        kt.rows = cout / nt + (g < cout % nt);
        kt.a = j->a + p * aplane + (size_t) c0 * j->lenp;
        kt.row_ids = j->sc->ids + c0;
        fer_cpu_gemm_tile (j->isa, &kt);
        c0 += kt.rows;
      }
    }
  }
}

/* dweight (cout, 3, 3, cin) += G^T dU G. */
static void
wino_dweight_fold (float *dweight, const float *du, const fer_conv_shape *s)
{
  const size_t plane = (size_t) s->cout * s->cin;

  for (int o = 0; o < s->cout; o++)
    for (int ky = 0; ky < 3; ky++)
      for (int kx = 0; kx < 3; kx++) {
        float *dw = dweight + (((size_t) o * 3 + ky) * 3 + kx) * s->cin;
        for (int p = 0; p < 16; p++) {
          const float c = wino_g[p / 4][ky] * wino_g[p % 4][kx];
          if (c != 0.0f)
            axpy_row (
                dw, du + p * plane + (size_t) o * s->cin, c, (size_t) s->cin);
        }
      }
}

/* dweight += the weight gradient, for a winograd_applies() shape. */
static gboolean
wino_dweight (float *dweight, const float *dout, const float *inp,
    const fer_conv_shape *s, fer_cpu_conv_scratch *sc, fer_cpu_workers *workers,
    GError **error)
{
  const int threads = workers ? fer_cpu_workers_n (workers) : 1;
  wino_dw_job j = { NULL, dout, inp, s, fer_cpu_isa_get (), 0, 0, 0, 0, 0,
    (s->cin + FER_CPU_NR - 1) / FER_CPU_NR, 1, 0, 0, 0, NULL, NULL, 0, 0, sc,
    0 };
  const size_t row = (size_t) j.panels * FER_CPU_NR;

  wino_tiles (s, &j.th, &j.tw, &j.n_tiles);
  if (j.n_tiles == 0 || s->cout == 0)
    return TRUE;
  j.mr = fer_cpu_isa_mr (j.isa);
  j.chunk = (int) CLAMP (WINO_DW_CHUNK_FLOATS / (16 * (s->cout + row)),
                FER_CPU_KB, DWEIGHT_CHUNK_MAX_PIXELS)
      / FER_CPU_KB * FER_CPU_KB;
  j.chunk = MIN (j.chunk, round_up (j.n_tiles, FER_CPU_KB));
  if (threads > 1)
    j.parts = MIN (j.panels, 2);
  if (!grow ((void **) &sc->ids, &sc->ids_cap, s->cout, sizeof (int), error)
      || !grow_aligned (
          &sc->wino_u, &sc->wino_u_cap, 16 * (size_t) s->cout * s->cin, error)
      || !grow_packed (sc, threads, WINO_DW_SHARED (&j) + WINO_DW_OWN, error))
    return FALSE;
  for (int i = 0; i < s->cout; i++)
    sc->ids[i] = i;
  j.du = sc->wino_u;
  memset (j.du, 0, 16 * (size_t) s->cout * s->cin * sizeof (float));
  j.a = sc->packed[0];
  for (j.t0 = 0; j.t0 < j.n_tiles; j.t0 += j.chunk) {
    j.len = MIN (j.chunk, j.n_tiles - j.t0);
    j.lenp = round_up (j.len, FER_CPU_KB);
    j.aplane = (size_t) s->cout * j.lenp;
    j.bplane = (size_t) j.panels * j.lenp * FER_CPU_NR;
    j.b = j.a + 16 * j.aplane;
    atomic_init (&j.next_item, 0);
    run_job (workers, wino_dw_transform_run, &j);
    atomic_init (&j.next_item, 0);
    run_job (workers, wino_dw_gemm_run, &j);
  }
  wino_dweight_fold (dweight, sc->wino_u, s);
  return TRUE;
}

/* With stride 1 the input gradient is itself a stride-1 convolution: of
 * dout, padded by k - 1 - pad, with the weight flipped in space and its
 * channels transposed. No workspace, no col2im, and the padding taps are
 * skipped as in any forward. */
static gboolean
dinp_is_conv (const fer_conv_shape *s)
{
  return s->stride == 1 && s->pad < s->k;
}

size_t
fer_cpu_conv2d_train_col_per_image (const fer_conv_shape *s)
{
  if (dinp_is_conv (s))
    return 0;
  return (size_t) s->oh * s->ow * s->k * s->k * s->cin;
}

typedef struct
{
  float *packed;
  weight_view v;
  int cout, k, cin, blocks;
  atomic_int next_item;
} pack_job;

static void
pack_job_run (void *data, int thread, int threads)
{
  pack_job *j = data;

  for (int jb; (jb = take_item (&j->next_item, j->blocks)) >= 0;)
    pack_panel (j->packed, &j->v, j->cout, j->k, j->cin, jb);
}

/* sc->train_weight = the panels of a conv with cout outputs and a k x k x
 * cin reduction whose values v gives. */
static gboolean
pack_train_weight (fer_cpu_conv_scratch *sc, weight_view v, int cout, int k,
    int cin, fer_cpu_workers *workers, GError **error)
{
  pack_job j = { NULL, v, cout, k, cin, (cout + FER_CPU_NR - 1) / FER_CPU_NR,
    0 };

  if (!grow_aligned (&sc->train_weight, &sc->train_weight_cap,
          fer_cpu_conv2d_weight_floats (cout, k, cin), error))
    return FALSE;
  j.packed = sc->train_weight;
  atomic_init (&j.next_item, 0);
  run_job (workers, pack_job_run, &j);
  return TRUE;
}

gboolean
fer_cpu_conv2d_forward_train (float *out, const float *inp, const float *weight,
    const fer_conv_shape *s, fer_cpu_conv_scratch *sc, fer_cpu_workers *workers,
    GError **error)
{
  if (winograd_applies (s, sc))
    return wino_pack_weight (sc, weight, s->cout, s->cin, FALSE, workers, error)
        && wino_forward (out, inp, sc->train_weight, NULL, NULL, s, FALSE, sc,
            workers, error);
  return pack_train_weight (sc, weight_view_plain (weight, s->k, s->cin),
             s->cout, s->k, s->cin, workers, error)
      && fer_cpu_conv2d_forward (
          out, inp, sc->train_weight, NULL, NULL, s, FALSE, sc, workers, error);
}

/* ---- weight gradient ---- */

typedef struct
{
  float *dweight; /* (cout, kdim) */
  const float *dout, *inp;
  const fer_conv_shape *s;
  fer_cpu_isa isa;
  const fer_cpu_conv_scratch *sc;
  const conv_pixel *where; /* the pixels by class */
  const conv_class *classes;
  int n_classes;
  int chunk;         /* pixels per step, a multiple of KB */
  int mr;            /* channels per tile, at most */
  int panels, parts; /* item i: panels [i, i + 1) * panels / parts */
  atomic_int next_item;
} dweight_job;

/* a (tiles of dout^T: for each, (chunk / KB, rows, KB)) from dout's pixels
 * where[0 .. len), zeros up to len rounded up to KB. The tiles cut cout as
 * cut_group cuts pixels: nt tiles, as even as possible. */
static void
pack_dout_t (float *a, const float *dout, const fer_conv_shape *s, int mr,
    const conv_pixel *where, int len)
{
  const int cout = s->cout, nt = (cout + mr - 1) / mr;
  const int lenp = round_up (len, FER_CPU_KB);

  for (int t = 0, c0 = 0; t < nt; t++) {
    const int rows = cout / nt + (t < cout % nt);
    float *at = a + (size_t) c0 * lenp;
    for (int i = 0; i < lenp; i++) {
      float *dst =
          at + (size_t) (i / FER_CPU_KB) * rows * FER_CPU_KB + i % FER_CPU_KB;
      if (i < len) {
        const conv_pixel *px = &where[i];
        const float *src = dout
            + (((size_t) px->b * s->oh + px->oy) * s->ow + px->ox) * cout + c0;
        for (int r = 0; r < rows; r++)
          dst[r * FER_CPU_KB] = src[r];
      } else {
        for (int r = 0; r < rows; r++)
          dst[r * FER_CPU_KB] = 0.0f;
      }
    }
    c0 += rows;
  }
}

/* Columns [j, j + n) of an im2col panel: input floats [ci, ci + n) of tap
 * (ky, kx); within one tap the columns are contiguous input floats. */
typedef struct
{
  int j, n, ky, kx, ci;
} panel_run;

/* The runs of kdim columns [j0, j0 + ncols); returns how many. */
static int
panel_runs (panel_run *runs, const fer_conv_shape *s, int j0, int ncols)
{
  int n_runs = 0;

  for (int j = 0; j < ncols;) {
    const int kk = j0 + j, tap = kk / s->cin, ci = kk % s->cin;
    const int n = MIN (s->cin - ci, ncols - j);
    runs[n_runs++] = (panel_run){ j, n, tap / s->k, tap % s->k, ci };
    j += n;
  }
  return n_runs;
}

/* Whether any column of `runs` is a tap inside the window win. */
static gboolean
panel_sees (const panel_run *runs, int n_runs, const int *win)
{
  for (int r = 0; r < n_runs; r++)
    if (runs[r].ky >= win[0] && runs[r].ky <= win[1] && runs[r].kx >= win[2]
        && runs[r].kx <= win[3])
      return TRUE;
  return FALSE;
}

/* b (lenp, NR) = im2col(inp) of the pixels where[0 .. len) for the columns
 * of `runs`, zeros elsewhere (past ncols, past len up to KB). */
static void
pack_im2col_panel (float *b, const float *inp, const fer_conv_shape *s,
    const panel_run *runs, int n_runs, int ncols, const conv_pixel *where,
    int len)
{
  const int lenp = round_up (len, FER_CPU_KB);

  for (int i = 0; i < lenp; i++, b += FER_CPU_NR) {
    if (i >= len || ncols < FER_CPU_NR)
      memset (b, 0, FER_CPU_NR * sizeof (float));
    if (i >= len)
      continue;
    const conv_pixel *px = &where[i];
    const float *img = inp + (size_t) px->b * s->h * s->w * s->cin;
    const int iy0 = px->oy * s->stride - s->pad;
    const int ix0 = px->ox * s->stride - s->pad;
    for (int r = 0; r < n_runs; r++) {
      const panel_run *run = &runs[r];
      const int iy = iy0 + run->ky, ix = ix0 + run->kx;
      const float *src = iy >= 0 && iy < s->h && ix >= 0 && ix < s->w
          ? img + ((size_t) iy * s->w + ix) * s->cin + run->ci
          : NULL;
      /* a whole panel from one tap (cin >= NR): a copy of constant size,
       * which the compiler inlines */
      if (run->n == FER_CPU_NR && src)
        memcpy (b, src, FER_CPU_NR * sizeof (float));
      else if (run->n == FER_CPU_NR)
        memset (b, 0, FER_CPU_NR * sizeof (float));
      else if (src)
        memcpy (b + run->j, src, run->n * sizeof (float));
      else
        memset (b + run->j, 0, run->n * sizeof (float));
    }
  }
}

static void
dweight_job_run (void *data, int thread, int threads)
{
  dweight_job *j = data;
  const fer_conv_shape *s = j->s;
  const int kdim = s->k * s->k * s->cin, cout = s->cout;
  const int nt = (cout + j->mr - 1) / j->mr;
  float *a = j->sc->packed[thread];
  float *b = a + (size_t) cout * j->chunk;
  panel_run runs[FER_CPU_NR];

  for (int item; (item = take_item (&j->next_item, j->parts)) >= 0;) {
    const int p0 = item * j->panels / j->parts;
    const int p1 = (item + 1) * j->panels / j->parts;

    for (int cl = 0; cl < j->n_classes; cl++) {
      const conv_class *c = &j->classes[cl];
      for (int g = c->g0; g < c->g1; g += j->chunk) {
        const int len = MIN (j->chunk, c->g1 - g);
        const fer_cpu_krun run = { 0, round_up (len, FER_CPU_KB) };
        gboolean packed_a = FALSE;
        for (int p = p0; p < p1; p++) {
          const int c0 = p * FER_CPU_NR;
          fer_cpu_tile kt = {
            .b = b,
            .runs = &run,
            .n_runs = 1,
            .c = j->dweight + c0,
            .res = j->dweight + c0,
            .ldc = kdim,
            .ncols = MIN (FER_CPU_NR, kdim - c0),
          };
          const int n_runs = panel_runs (runs, s, c0, kt.ncols);
          /* taps outside for the whole class: only zeros to add */
          if (!panel_sees (runs, n_runs, c->win))
            continue;
          if (!packed_a) {
            pack_dout_t (a, j->dout, s, j->mr, j->where + g, len);
            packed_a = TRUE;
          }
          pack_im2col_panel (
              b, j->inp, s, runs, n_runs, kt.ncols, j->where + g, len);
          for (int t = 0, o0 = 0; t < nt; t++) {
            kt.rows = cout / nt + (t < cout % nt);
            kt.a = a + (size_t) o0 * run.len;
            kt.row_ids = j->sc->ids + o0;
            fer_cpu_gemm_tile (j->isa, &kt);
            o0 += kt.rows;
          }
        }
      }
    }
  }
}

/* dweight (cout, kdim) += dout^T . im2col(inp) over the whole batch. The
 * pixels go by class (order_by_class), so that a chunk of them skips the
 * panels of taps that are all padding for it: on the small maps of the
 * last layers (2 x 2 at 48 x 48 input), most of them. */
static gboolean
conv2d_dweight (float *dweight, const float *dout, const float *inp,
    const fer_conv_shape *s, fer_cpu_conv_scratch *sc, fer_cpu_workers *workers,
    GError **error)
{
  const int threads = workers ? fer_cpu_workers_n (workers) : 1;
  const int kdim = s->k * s->k * s->cin;
  const size_t pixels = (size_t) s->n * s->oh * s->ow;
  dweight_job j = { dweight, dout, inp, s, fer_cpu_isa_get (), sc, NULL, NULL,
    0, 0, 0, (kdim + FER_CPU_NR - 1) / FER_CPU_NR, 1, 0 };

  if (pixels == 0 || s->cout == 0)
    return TRUE;
  j.mr = fer_cpu_isa_mr (j.isa);
  j.chunk = (int) CLAMP (DWEIGHT_CHUNK_FLOATS / (size_t) s->cout, FER_CPU_KB,
                DWEIGHT_CHUNK_MAX_PIXELS)
      / FER_CPU_KB * FER_CPU_KB;
  j.chunk = MIN (j.chunk, round_up ((int) pixels, FER_CPU_KB));
  if (threads > 1)
    j.parts = MIN (ITEMS_PER_THREAD * threads, j.panels);
  if (!grow_orders (sc, s, 1, error)
      || !grow ((void **) &sc->ids, &sc->ids_cap, s->cout, sizeof (int), error)
      || !grow_packed (
          sc, threads, (size_t) (s->cout + FER_CPU_NR) * j.chunk, error))
    return FALSE;
  for (int i = 0; i < s->cout; i++)
    sc->ids[i] = i;
  fill_ranges (sc->ranges, s);
  j.n_classes =
      order_by_class (sc->order, sc->where, sc->classes, sc->ranges, s);
  j.where = sc->where;
  j.classes = sc->classes;
  atomic_init (&j.next_item, 0);
  run_job (workers, dweight_job_run, &j);
  return TRUE;
}

/* ---- input gradient ---- */

/* Input columns ix = ox*stride - pad + kx for kx in [k0, k1) are inside the
 * image; for one output pixel and kernel row they are one contiguous run of
 * (k1 - k0) * cin floats in NHWC. */
static inline void
valid_kx (const fer_conv_shape *s, int ox, int *k0, int *k1)
{
  int ix0 = ox * s->stride - s->pad;
  *k0 = ix0 < 0 ? -ix0 : 0;
  *k1 = s->w - ix0 < s->k ? s->w - ix0 : s->k;
  if (*k1 < *k0)
    *k1 = *k0;
}

G_NO_INLINE static void
add_run (float *restrict dst, const float *restrict src, size_t n)
{
  FER_FOR_VEC (i, n, dst[i] += src[i]);
}

/* img (h, w, cin) = the taps of col (oh, ow, k, k, cin) summed back. */
static void
col2im (float *img, const float *col, const fer_conv_shape *s)
{
  const int cin = s->cin, k = s->k;

  memset (img, 0, (size_t) s->h * s->w * cin * sizeof (float));
  for (int oy = 0; oy < s->oh; oy++)
    for (int ox = 0; ox < s->ow; ox++) {
      int k0, k1;
      valid_kx (s, ox, &k0, &k1);
      int ix0 = ox * s->stride - s->pad;
      for (int ky = 0; ky < k; ky++) {
        int iy = oy * s->stride - s->pad + ky;
        if (iy >= 0 && iy < s->h && k0 < k1)
          add_run (img + ((size_t) iy * s->w + ix0 + k0) * cin,
              col + (size_t) k0 * cin, (size_t) (k1 - k0) * cin);
        col += (size_t) k * cin;
      }
    }
}

typedef struct
{
  float *dinp;
  const float *col;
  const fer_conv_shape *s;
  int n;
  atomic_int next_item;
} col2im_job;

static void
col2im_job_run (void *data, int thread, int threads)
{
  col2im_job *j = data;
  const fer_conv_shape *s = j->s;

  for (int b; (b = take_item (&j->next_item, j->n)) >= 0;) {
    col2im (j->dinp + (size_t) b * s->h * s->w * s->cin,
        j->col + (size_t) b * fer_cpu_conv2d_train_col_per_image (s), s);
  }
}

gboolean
fer_cpu_conv2d_backward (float *dinp, float *dweight, const float *dout,
    const float *inp, const float *weight, const fer_conv_shape *s, float *col,
    size_t col_cap, fer_cpu_conv_scratch *sc, fer_cpu_workers *workers,
    GError **error)
{
  const int kdim = s->k * s->k * s->cin;
  const size_t per_image = fer_cpu_conv2d_train_col_per_image (s);
  const size_t out_floats = (size_t) s->oh * s->ow * s->cout;
  const size_t in_floats = (size_t) s->h * s->w * s->cin;
  fer_conv_shape t;

  if (winograd_applies (s, sc)
          ? !wino_dweight (dweight, dout, inp, s, sc, workers, error)
          : !conv2d_dweight (dweight, dout, inp, s, sc, workers, error))
    return FALSE;
  if (!dinp)
    return TRUE;
  if (dinp_is_conv (s)) {
    const weight_view flipped = { weight
          + ((size_t) (s->k - 1) * s->k + s->k - 1) * s->cin,
      1, -(ptrdiff_t) s->k * s->cin, -(ptrdiff_t) s->cin, kdim };
    fer_conv_shape_init (
        &t, s->n, s->oh, s->ow, s->cout, s->cin, s->k, 1, s->k - 1 - s->pad);
    if (winograd_applies (&t, sc))
      return wino_pack_weight (
                 sc, weight, s->cout, s->cin, TRUE, workers, error)
          && wino_forward (dinp, dout, sc->train_weight, NULL, NULL, &t, FALSE,
              sc, workers, error);
    return pack_train_weight (
               sc, flipped, s->cin, s->k, s->cout, workers, error)
        && fer_cpu_conv2d_forward (dinp, dout, sc->train_weight, NULL, NULL, &t,
            FALSE, sc, workers, error);
  }

  /* dcol (pixels, kdim) = dout . weight: a 1 x 1 conv over dout, cout ->
   * kdim channels, with the transposed weight; then col2im */
  const weight_view transposed = { weight, 1, 0, 0, kdim };
  if (per_image > col_cap) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "cpu backend: convolution workspace of %zu floats, expected at "
        "least %zu",
        col_cap, per_image);
    return FALSE;
  }
  if (!pack_train_weight (sc, transposed, kdim, 1, s->cout, workers, error))
    return FALSE;
  const int chunk = (int) MIN ((size_t) s->n, col_cap / per_image);
  for (int b0 = 0; b0 < s->n; b0 += chunk) {
    const int nb = MIN (chunk, s->n - b0);
    col2im_job c = { dinp + b0 * in_floats, col, s, nb, 0 };
    fer_conv_shape_init (&t, nb, s->oh, s->ow, s->cout, kdim, 1, 1, 0);
    if (!fer_cpu_conv2d_forward (col, dout + b0 * out_floats, sc->train_weight,
            NULL, NULL, &t, FALSE, sc, workers, error))
      return FALSE;
    atomic_init (&c.next_item, 0);
    run_job (workers, col2im_job_run, &c);
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* The backend table's entries                                         */

/* A prepared weight (the backend's conv2d_prepare_weight): a header of
 * PREP_HEADER floats whose first word says the format, then either the
 * float32 panels (scale folded in), or the cout factors (rounded up to
 * PREP_HEADER floats, so the panels stay 64-byte aligned) and the panels
 * as halves. */
#define PREP_HEADER 16
enum
{
  PREP_F32 = 0x46333220,  /* "F32 " */
  PREP_F16 = 0x46313620,  /* "F16 " */
  PREP_WINO = 0x57494e4f, /* "WINO": wino_transform_weight's, float32 */
};

gboolean
fer_cpu_conv2d_prepared_is_winograd (const float *prepared)
{
  uint32_t format;
  memcpy (&format, prepared, sizeof format);
  return format == PREP_WINO;
}

/* weight (n floats, cout rows) with row o times scale[o], in double as
 * PyTorch's fusion does: a new array, or NULL with the error set. */
static float *
fold_weight (const float *weight, const double *scale, size_t n, int cout,
    GError **error)
{
  const size_t per_out = n / cout;
  float *folded = g_try_new (float, n);

  if (folded == NULL)
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "cpu backend: cannot allocate %zu floats to fold a weight", n);
  for (size_t i = 0; folded && i < n; i++)
    folded[i] = scale ? (float) (weight[i] * scale[i / per_out]) : weight[i];
  return folded;
}

float *
fer_cpu_op_conv2d_prepare_weight (fer_backend *be, const float *weight,
    const double *scale, const fer_conv_shape *s, gboolean halves,
    GError **error)
{
  cpu_backend *cpu = (cpu_backend *) be;
  const int cout = s->cout, k = s->k, cin = s->cin;
  const size_t n = (size_t) cout * k * k * cin;
  const size_t panel = fer_cpu_conv2d_weight_floats (cout, k, cin);
  const size_t factors = (size_t) round_up (cout, PREP_HEADER);
  const gboolean wino = winograd_applies (s, cpu->conv);
  const uint32_t format = wino ? PREP_WINO : halves ? PREP_F16 : PREP_F32;
  float *w = be->ops->alloc (be,
      PREP_HEADER
          + (wino          ? wino_weight_floats (cout, cin)
                  : halves ? factors + (panel + 1) / 2
                           : panel),
      error);
  float *folded = NULL, *u = NULL;
  gboolean ok = w != NULL;

  if (ok)
    memcpy (w, &format, sizeof format);
  if (ok && format == PREP_F16) {
    for (int o = 0; o < cout; o++)
      w[PREP_HEADER + o] = scale ? (float) scale[o] : 1.0f;
    ok = fer_cpu_conv2d_pack_weight_f16 (
        (uint16_t *) (w + PREP_HEADER + factors), weight, cout, k, cin, error);
  } else if (ok) {
    if (scale || wino)
      ok = (folded = fold_weight (weight, scale, n, cout, error)) != NULL;
    if (ok && wino) {
      u = g_try_new (float, 16 * (size_t) cout * cin);
      if (!(ok = u != NULL))
        g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
            "cpu backend: cannot allocate %zu floats to transform a weight",
            16 * (size_t) cout * cin);
      else
        wino_transform_weight (
            w + PREP_HEADER, u, folded, cout, cin, FALSE, cpu->workers);
    } else if (ok) {
      fer_cpu_conv2d_pack_weight (
          w + PREP_HEADER, folded ? folded : weight, cout, k, cin);
    }
  }
  g_free (folded);
  g_free (u);
  if (!ok && w) {
    be->ops->release (be, w);
    w = NULL;
  }
  return w;
}

gboolean
fer_cpu_op_conv2d_forward (fer_backend *be, float *out, const float *inp,
    const float *weight, const float *bias, const float *residual,
    const fer_conv_shape *s, gboolean relu, GError **error)
{
  cpu_backend *cpu = (cpu_backend *) be;
  uint32_t format;
  memcpy (&format, weight, sizeof format);
  if (format == PREP_WINO)
    return wino_forward (out, inp, weight + PREP_HEADER, bias, residual, s,
        relu, cpu->conv, cpu->workers, error);
  if (format == PREP_F16) {
    const float *scale = weight + PREP_HEADER;
    const uint16_t *panel =
        (const uint16_t *) (scale + round_up (s->cout, PREP_HEADER));
    return fer_cpu_conv2d_forward_f16 (out, inp, panel, scale, bias, residual,
        s, relu, cpu->conv, cpu->workers, error);
  }
  return fer_cpu_conv2d_forward (out, inp, weight + PREP_HEADER, bias, residual,
      s, relu, cpu->conv, cpu->workers, error);
}

size_t
fer_cpu_op_conv2d_train_workspace (fer_backend *be, const fer_conv_shape *s)
{
  return fer_cpu_conv2d_train_col_per_image (s) * s->n;
}

gboolean
fer_cpu_op_conv2d_forward_train (fer_backend *be, float *out, const float *inp,
    const float *weight, const fer_conv_shape *s, GError **error)
{
  cpu_backend *cpu = (cpu_backend *) be;
  return fer_cpu_conv2d_forward_train (
      out, inp, weight, s, cpu->conv, cpu->workers, error);
}

gboolean
fer_cpu_op_conv2d_backward (fer_backend *be, float *dinp, float *dweight,
    const float *dout, const float *inp, const float *weight,
    const fer_conv_shape *s, float *ws, size_t ws_floats, GError **error)
{
  cpu_backend *cpu = (cpu_backend *) be;
  return fer_cpu_conv2d_backward (dinp, dweight, dout, inp, weight, s, ws,
      ws_floats, cpu->conv, cpu->workers, error);
}
