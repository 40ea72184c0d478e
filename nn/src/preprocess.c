/* libfernn: face-crop preprocessing (contract in fer/image.h).
 *
 * Geometry: output pixel (ox, oy) of the S x S output has its centre at
 *   sx = src.x + (ox + 0.5) * src.w / S   (same for y)
 * in frame coordinates where source pixel i covers [i, i + 1), i.e. the
 * align_corners=False convention of PIL, OpenCV INTER_LINEAR and torch.
 * Source pixel i gets the weight tri((i + 0.5 - sx) / f), with tri the unit
 * triangle and f = max(1, src.w / S), normalised to sum 1: PIL's
 * antialiased BILINEAR, and plain bilinear interpolation when f = 1. Source
 * indices outside the frame are clamped to the edge, so a rectangle partly
 * or even entirely outside the frame is valid (the caller clips faces; a
 * view that zooms out of a face at the frame edge must still work).
 *
 * Order of work: every source row the view's footprint touches is converted
 * to the model's channels (clamped to 0..255 per pixel, as the contract
 * asks) and filtered horizontally once; output rows are then weighted sums
 * of those filtered rows. Converting before filtering is what the contract
 * defines and costs each source pixel one conversion. */

#include <math.h>
#include <string.h>

#include "preprocess-private.h"

struct fer_scratch
{
  float *floats;
  size_t floats_cap;
  int *ints;
  size_t ints_cap;
  guint n_allocations;
};

fer_scratch *
fer_scratch_new (void)
{
  return g_new0 (fer_scratch, 1);
}

void
fer_scratch_free (fer_scratch *s)
{
  if (!s)
    return;
  g_free (s->floats);
  g_free (s->ints);
  g_free (s);
}

guint
fer_scratch_n_allocations (const fer_scratch *s)
{
  return s->n_allocations;
}

/* Grows only: a later call with the same or smaller sizes allocates nothing. */
static gboolean
scratch_reserve (fer_scratch *s, size_t n_floats, size_t n_ints, GError **error)
{
  if (n_floats > s->floats_cap) {
    float *f = g_try_new (float, n_floats);
    if (!f)
      goto nomem;
    g_free (s->floats);
    s->floats = f;
    s->floats_cap = n_floats;
    s->n_allocations++;
  }
  if (n_ints > s->ints_cap) {
    int *i = g_try_new (int, n_ints);
    if (!i)
      goto nomem;
    g_free (s->ints);
    s->ints = i;
    s->ints_cap = n_ints;
    s->n_allocations++;
  }
  return TRUE;

nomem:
  g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
      "preprocessing scratch: cannot allocate %zu floats and %zu ints",
      n_floats, n_ints);
  return FALSE;
}

static const char *const format_names[FER_PIXEL_N_FORMATS] = {
  [FER_PIXEL_GRAY8] = "GRAY8",
  [FER_PIXEL_RGB] = "RGB",
  [FER_PIXEL_BGR] = "BGR",
  [FER_PIXEL_RGBA] = "RGBA",
  [FER_PIXEL_BGRA] = "BGRA",
  [FER_PIXEL_RGBX] = "RGBx",
  [FER_PIXEL_BGRX] = "BGRx",
  [FER_PIXEL_XRGB] = "xRGB",
  [FER_PIXEL_ARGB] = "ARGB",
  [FER_PIXEL_I420] = "I420",
  [FER_PIXEL_NV12] = "NV12",
};

/* Byte layout of the packed RGB formats (bytes_per_pixel 0: not packed RGB).
 * Alpha is ignored rather than composited: the face is what the camera saw. */
typedef struct
{
  int bytes_per_pixel;
  int r, g, b;
} packed_layout;

static const packed_layout packed_layouts[FER_PIXEL_N_FORMATS] = {
  [FER_PIXEL_RGB] = { 3, 0, 1, 2 },
  [FER_PIXEL_BGR] = { 3, 2, 1, 0 },
  [FER_PIXEL_RGBA] = { 4, 0, 1, 2 },
  [FER_PIXEL_BGRA] = { 4, 2, 1, 0 },
  [FER_PIXEL_RGBX] = { 4, 0, 1, 2 },
  [FER_PIXEL_BGRX] = { 4, 2, 1, 0 },
  [FER_PIXEL_XRGB] = { 4, 1, 2, 3 },
  [FER_PIXEL_ARGB] = { 4, 1, 2, 3 },
};

/* The planes a format uses and the bytes one row of each must hold. gint64
 * because width * 4 overflows int for absurd widths, which we must report
 * rather than wrap. */
static int
plane_rows (fer_pixel_format format, int width, gint64 row_bytes[3],
    const char *names[3])
{
  gint64 chroma_width = ((gint64) width + 1) / 2;

  switch (format) {
    case FER_PIXEL_GRAY8:
      row_bytes[0] = width;
      names[0] = "gray";
      return 1;
    case FER_PIXEL_I420:
      row_bytes[0] = width;
      row_bytes[1] = chroma_width;
      row_bytes[2] = chroma_width;
      names[0] = "Y";
      names[1] = "U";
      names[2] = "V";
      return 3;
    case FER_PIXEL_NV12:
      row_bytes[0] = width;
      row_bytes[1] = 2 * chroma_width;
      names[0] = "Y";
      names[1] = "UV";
      return 2;
    default:
      row_bytes[0] = (gint64) width * packed_layouts[format].bytes_per_pixel;
      names[0] = "pixels";
      return 1;
  }
}

void
fer_preprocess_packed_layout (
    fer_pixel_format format, int *bytes_per_pixel, int rgb[3])
{
  const packed_layout *l = &packed_layouts[format];
  *bytes_per_pixel = l->bytes_per_pixel;
  rgb[0] = l->r;
  rgb[1] = l->g;
  rgb[2] = l->b;
}

size_t
fer_image_plane_bytes (const fer_image *img, int plane)
{
  gint64 row_bytes[3];
  const char *names[3];
  int n_planes = plane_rows (img->format, img->width, row_bytes, names);
  int rows = plane == 0 ? img->height : (img->height + 1) / 2;
  if (plane < 0 || plane >= n_planes)
    return 0;
  return (size_t) (rows - 1) * (size_t) img->strides[plane]
      + (size_t) row_bytes[plane];
}

gboolean
fer_image_validate (const fer_image *img, GError **error)
{
  gint64 row_bytes[3];
  const char *names[3];
  int n_planes;

  if (!img) {
    g_set_error_literal (
        error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT, "image is NULL");
    return FALSE;
  }
  if ((int) img->format < 0 || img->format >= FER_PIXEL_N_FORMATS) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "pixel format %d is not a fer_pixel_format: expected 0..%d",
        (int) img->format, FER_PIXEL_N_FORMATS - 1);
    return FALSE;
  }
  if (img->width <= 0 || img->height <= 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s image size %dx%d: expected width > 0 and height > 0",
        format_names[img->format], img->width, img->height);
    return FALSE;
  }

  n_planes = plane_rows (img->format, img->width, row_bytes, names);
  for (int p = 0; p < n_planes; p++) {
    if (!img->planes[p]) {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "%s image: plane %d (%s) is NULL: the format has %d "
          "plane(s), all required",
          format_names[img->format], p, names[p], n_planes);
      return FALSE;
    }
    if (img->strides[p] < row_bytes[p]) {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "%dx%d %s image: stride %d of plane %d (%s) is too small: "
          "expected >= %" G_GINT64_FORMAT " bytes",
          img->width, img->height, format_names[img->format], img->strides[p],
          p, names[p], row_bytes[p]);
      return FALSE;
    }
  }
  return TRUE;
}

/* Beyond 2^24 consecutive floats stop being integers, so pixel positions
 * there are meaningless; the bound also keeps tap indices inside int. */
#define MAX_COORDINATE 16777216.0

static gboolean
view_rect_validate (const fer_rect *r, GError **error)
{
  if (!(r->w > 0 && r->h > 0) || !isfinite (r->x) || !isfinite (r->y)
      || !isfinite (r->w) || !isfinite (r->h)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "view rectangle (x=%g, y=%g, w=%g, h=%g) is empty or not finite: "
        "expected finite values with w > 0 and h > 0",
        r->x, r->y, r->w, r->h);
    return FALSE;
  }
  if (fabs (r->x) > MAX_COORDINATE || fabs (r->y) > MAX_COORDINATE
      || r->w > MAX_COORDINATE || r->h > MAX_COORDINATE) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "view rectangle (x=%g, y=%g, w=%g, h=%g): expected coordinates "
        "and sizes within +-%g pixels",
        r->x, r->y, r->w, r->h, MAX_COORDINATE);
    return FALSE;
  }
  return TRUE;
}

static gboolean
input_spec_validate (const fer_input_spec *spec, GError **error)
{
  if (spec->size <= 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "model input size %d: expected > 0", spec->size);
    return FALSE;
  }
  if (spec->channels != 1 && spec->channels != 3) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "model input channels %d: expected 1 or 3", spec->channels);
    return FALSE;
  }
  for (int c = 0; c < spec->channels; c++)
    if (!isfinite (spec->mean[c]) || !isfinite (spec->std[c])
        || spec->std[c] == 0.0f) {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "model input channel %d: mean %g, std %g: expected finite "
          "values and std != 0",
          c, spec->mean[c], spec->std[c]);
      return FALSE;
    }
  return TRUE;
}

/* Filter taps along one axis: output o reads count[o] consecutive source
 * samples starting at first[o], with weights weights[o * stride + k]. */
typedef struct
{
  int *first;     /* (S) */
  int *count;     /* (S) */
  float *weights; /* (S, stride) */
  int stride;
} axis_taps;

/* Centre of output sample o in source coordinates. The footprint and the
 * taps must agree to the last bit, so both go through here. */
static inline double
sample_centre (double origin, double length, int S, int o)
{
  return origin + (o + 0.5) * length / S;
}

/* The unclamped source indices with non-zero weight for a sample centred at
 * `centre`: those i with |i + 0.5 - centre| < filterscale. */
static void
tap_range (double centre, double filterscale, int *lo, int *hi)
{
  *lo = (int) floor (centre - 0.5 - filterscale) + 1;
  *hi = (int) ceil (centre - 0.5 + filterscale) - 1;
}

/* Upper bound on taps per output once indices are clamped to n_src:
 * an open interval of length 2f holds at most ceil(2f) integers; the
 * margin absorbs rounding in tap_range. */
static int
taps_stride (double filterscale, int n_src)
{
  return (int) MIN ((double) n_src, ceil (2.0 * filterscale) + 2.0);
}

/* Clamping indices to the edge turns the out-of-frame taps into extra
 * weight on the edge sample, so each output's taps stay a contiguous,
 * in-frame run. */
static void
axis_taps_compute (axis_taps *t, double origin, double length,
    double filterscale, int S, int n_src)
{
  for (int o = 0; o < S; o++) {
    double centre = sample_centre (origin, length, S, o);
    float *w = t->weights + (size_t) o * t->stride;
    double total = 0.0;
    int lo, hi, first, last;

    tap_range (centre, filterscale, &lo, &hi);
    first = CLAMP (lo, 0, n_src - 1);
    last = CLAMP (hi, 0, n_src - 1);
    memset (w, 0, sizeof (float) * (size_t) (last - first + 1));
    for (int i = lo; i <= hi; i++) {
      double wi = MAX (0.0, 1.0 - fabs ((i + 0.5 - centre) / filterscale));
      w[CLAMP (i, 0, n_src - 1) - first] += (float) wi;
      total += wi;
    }
    for (int k = 0; k <= last - first; k++)
      w[k] = (float) (w[k] / total);
    t->first[o] = first;
    t->count[o] = last - first + 1;
  }
}

int
fer_preprocess_taps_stride (double length, int S, int n_src)
{
  return taps_stride (MAX (length / S, 1.0), n_src);
}

void
fer_preprocess_axis_taps (int *first, int *count, float *weights, int stride,
    double origin, double length, int S, int n_src)
{
  axis_taps t = { first, count, weights, stride };
  axis_taps_compute (&t, origin, length, MAX (length / S, 1.0), S, n_src);
}

static inline float
clamp_255 (float v)
{
  return v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
}

/* PIL's convert('L') weights, kept in float: rounding to integers would
 * throw away precision the model can use. */
static inline float
luma_of_rgb (float r, float g, float b)
{
  return clamp_255 (0.299f * r + 0.587f * g + 0.114f * b);
}

static void
convert_row_gray8 (
    const uint8_t *p, int n, int channels, float *dst, size_t plane_stride)
{
  for (int i = 0; i < n; i++) {
    float v = p[i];
    for (int c = 0; c < channels; c++)
      dst[c * plane_stride + i] = v;
  }
}

static void
convert_row_packed (const uint8_t *p, const packed_layout *l, int n,
    int channels, float *dst, size_t plane_stride)
{
  if (channels == 1) {
    for (int i = 0; i < n; i++, p += l->bytes_per_pixel)
      dst[i] = luma_of_rgb (p[l->r], p[l->g], p[l->b]);
    return;
  }
  for (int i = 0; i < n; i++, p += l->bytes_per_pixel) {
    dst[i] = p[l->r];
    dst[plane_stride + i] = p[l->g];
    dst[2 * plane_stride + i] = p[l->b];
  }
}

/* BT.601: limited range with the customary 3-decimal coefficients, full
 * range with the JPEG/JFIF equations. */
typedef struct
{
  float y_offset, y_gain, r_v, g_u, g_v, b_u;
} yuv_coefficients;

static const yuv_coefficients bt601_limited = { 16.0f, 1.164f, 1.596f, -0.391f,
  -0.813f, 2.018f };
static const yuv_coefficients bt601_full = { 0.0f, 1.0f, 1.402f, -0.344136f,
  -0.714136f, 1.772f };

/* Chroma comes from the chroma sample covering the pixel (x/2, y/2), not
 * interpolated: cheap, and the resampling filter smooths it anyway.
 * chroma_step is 1 for planar U/V, 2 for interleaved UV. */
static void
convert_row_yuv (const uint8_t *yp, const uint8_t *up, const uint8_t *vp,
    int chroma_step, int x0, int n, gboolean full_range, int channels,
    float *dst, size_t plane_stride)
{
  const yuv_coefficients *k = full_range ? &bt601_full : &bt601_limited;

  if (channels == 1) {
    /* Gray is the luma itself, stretched to 0..255 for limited range. */
    for (int i = 0; i < n; i++) {
      float y = yp[x0 + i];
      dst[i] = full_range ? y : clamp_255 ((y - 16.0f) * (255.0f / 219.0f));
    }
    return;
  }
  for (int i = 0; i < n; i++) {
    int cx = ((x0 + i) / 2) * chroma_step;
    float y = k->y_gain * (yp[x0 + i] - k->y_offset);
    float u = up[cx] - 128.0f;
    float v = vp[cx] - 128.0f;

    dst[i] = clamp_255 (y + k->r_v * v);
    dst[plane_stride + i] = clamp_255 (y + k->g_u * u + k->g_v * v);
    dst[2 * plane_stride + i] = clamp_255 (y + k->b_u * u);
  }
}

/* Source row y, columns x0 .. x0 + n - 1 (all inside the frame), converted
 * to `channels` planes of dst, plane_stride floats apart. */
static void
convert_row (const fer_image *img, int y, int x0, int n, int channels,
    float *dst, size_t plane_stride)
{
  const uint8_t *row0 = img->planes[0] + (size_t) y * img->strides[0];
  size_t chroma_row = (size_t) (y / 2);

  switch (img->format) {
    case FER_PIXEL_GRAY8:
      convert_row_gray8 (row0 + x0, n, channels, dst, plane_stride);
      break;
    case FER_PIXEL_I420:
      convert_row_yuv (row0, img->planes[1] + chroma_row * img->strides[1],
          img->planes[2] + chroma_row * img->strides[2], 1, x0, n,
          img->full_range, channels, dst, plane_stride);
      break;
    case FER_PIXEL_NV12: {
      const uint8_t *uv = img->planes[1] + chroma_row * img->strides[1];
      convert_row_yuv (row0, uv, uv + 1, 2, x0, n, img->full_range, channels,
          dst, plane_stride);
    } break;
    default: {
      const packed_layout *l = &packed_layouts[img->format];
      convert_row_packed (row0 + (size_t) x0 * l->bytes_per_pixel, l, n,
          channels, dst, plane_stride);
    } break;
  }
}

gboolean
fer_preprocess_validate (const fer_image *img, const fer_view *view,
    const fer_input_spec *spec, GError **error)
{
  if (!fer_image_validate (img, error))
    return FALSE;
  if (!view || !spec) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "fer_preprocess: %s is NULL", !view ? "view" : "input spec");
    return FALSE;
  }
  return view_rect_validate (&view->src, error)
      && input_spec_validate (spec, error);
}

gboolean
fer_preprocess (const fer_image *img, const fer_view *view,
    const fer_input_spec *spec, float *out, fer_scratch *scratch,
    GError **error)
{
  fer_scratch local = { 0 };
  fer_scratch *s = scratch ? scratch : &local;
  gboolean ok = FALSE;
  axis_taps tx, ty;
  int S, C, W, H, lo, hi, fx0, fx1, fy0, fy1, F, FH;
  double fsx, fsy;
  size_t row_floats, hbuf_floats;
  float *row, *hbuf;

  if (!fer_preprocess_validate (img, view, spec, error))
    return FALSE;
  if (!out) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "fer_preprocess: output buffer is NULL");
    return FALSE;
  }

  S = spec->size;
  C = spec->channels;
  W = img->width;
  H = img->height;
  fsx = MAX ((double) view->src.w / S, 1.0);
  fsy = MAX ((double) view->src.h / S, 1.0);
  tx.stride = taps_stride (fsx, W);
  ty.stride = taps_stride (fsy, H);

  /* Centres grow with the output index, so the footprint runs from the
   * first output's lowest tap to the last output's highest. */
  tap_range (sample_centre (view->src.x, view->src.w, S, 0), fsx, &lo, &hi);
  fx0 = CLAMP (lo, 0, W - 1);
  tap_range (sample_centre (view->src.x, view->src.w, S, S - 1), fsx, &lo, &hi);
  fx1 = CLAMP (hi, 0, W - 1);
  tap_range (sample_centre (view->src.y, view->src.h, S, 0), fsy, &lo, &hi);
  fy0 = CLAMP (lo, 0, H - 1);
  tap_range (sample_centre (view->src.y, view->src.h, S, S - 1), fsy, &lo, &hi);
  fy1 = CLAMP (hi, 0, H - 1);
  F = fx1 - fx0 + 1;
  FH = fy1 - fy0 + 1;

  row_floats = (size_t) C * F;
  hbuf_floats = (size_t) FH * C * S;
  if (!scratch_reserve (s,
          row_floats + hbuf_floats + (size_t) S * (tx.stride + ty.stride),
          (size_t) 4 * S, error))
    goto out;

  row = s->floats;                 /* (C, F) */
  hbuf = row + row_floats;         /* (FH, C, S) */
  tx.weights = hbuf + hbuf_floats; /* (S, tx.stride) */
  ty.weights = tx.weights + (size_t) S * tx.stride;
  tx.first = s->ints;
  tx.count = tx.first + S;
  ty.first = tx.count + S;
  ty.count = ty.first + S;
  axis_taps_compute (&tx, view->src.x, view->src.w, fsx, S, W);
  axis_taps_compute (&ty, view->src.y, view->src.h, fsy, S, H);

  for (int y = fy0; y <= fy1; y++) {
    float *h = hbuf + (size_t) (y - fy0) * C * S; /* (C, S) */

    convert_row (img, y, fx0, F, C, row, F);
    for (int c = 0; c < C; c++)
      for (int o = 0; o < S; o++) {
        const float *src = row + (size_t) c * F + (tx.first[o] - fx0);
        const float *w = tx.weights + (size_t) o * tx.stride;
        int n = tx.count[o], k;
        /* Two chains of additions instead of one: the loop is bound by
             * addition latency, not throughput. */
        float even = 0.0f, odd = 0.0f;

        for (k = 0; k + 1 < n; k += 2) {
          even += w[k] * src[k];
          odd += w[k + 1] * src[k + 1];
        }
        if (k < n)
          even += w[k] * src[k];
        h[(size_t) c * S + (view->flip ? S - 1 - o : o)] = even + odd;
      }
  }

  for (int c = 0; c < C; c++) {
    /* (v / 255 - mean) / std as one multiply-add. */
    float gain = 1.0f / (255.0f * spec->std[c]);
    float bias = -spec->mean[c] / spec->std[c];

    for (int oy = 0; oy < S; oy++) {
      float *restrict dst = out + ((size_t) c * S + oy) * S;
      const float *w = ty.weights + (size_t) oy * ty.stride;

      memset (dst, 0, sizeof (float) * (size_t) S);
      for (int k = 0; k < ty.count[oy]; k++) {
        const float *restrict h =
            hbuf + ((size_t) (ty.first[oy] + k - fy0) * C + c) * S;
        for (int ox = 0; ox < S; ox++)
          dst[ox] += w[k] * h[ox];
      }
      for (int ox = 0; ox < S; ox++)
        dst[ox] = dst[ox] * gain + bias;
    }
  }
  ok = TRUE;

out:
  if (s == &local) {
    g_free (local.floats);
    g_free (local.ints);
  }
  return ok;
}
