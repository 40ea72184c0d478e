/* fer_preprocess and fer_tta_views against a deliberately naive reference:
 * double precision, every output pixel summed directly over its 2-D
 * footprint, every source pixel converted through "RGB (or gray) of pixel
 * (x, y)". Random frames (fixed seeds) in every pixel format, with padded
 * strides whose padding is garbage and is rewritten between two runs that
 * must agree bit for bit; planes end exactly at the last row byte so that
 * valgrind sees any read past them. */

#include <math.h>
#include <string.h>

#include <fer/image.h>
#include "preprocess-private.h"

#define TOLERANCE 1e-4
#define IDENTITY_TOLERANCE 1e-5

static const fer_input_spec spec_gray = { 0, 1, { 0.5f }, { 0.25f } };
static const fer_input_spec spec_rgb = { 0, 3, { 0.485f, 0.456f, 0.406f },
  { 0.229f, 0.224f, 0.225f } };

static fer_input_spec
spec_sized (const fer_input_spec *base, int size)
{
  fer_input_spec s = *base;
  s.size = size;
  return s;
}

/* ---- test frames ---- */

typedef struct
{
  fer_image img;
  uint8_t *data[3];
  int row_bytes[3], rows[3], n_planes;
} test_frame;

static const char *
format_name (fer_pixel_format f)
{
  static const char *const names[FER_PIXEL_N_FORMATS] = {
    "GRAY8",
    "RGB",
    "BGR",
    "RGBA",
    "BGRA",
    "RGBX",
    "BGRX",
    "XRGB",
    "ARGB",
    "I420",
    "NV12",
  };
  return names[f];
}

static int
bytes_per_packed_pixel (fer_pixel_format f)
{
  return f == FER_PIXEL_RGB || f == FER_PIXEL_BGR ? 3 : 4;
}

static int
frame_layout (fer_pixel_format f, int w, int h, int row_bytes[3], int rows[3])
{
  int cw = (w + 1) / 2, ch = (h + 1) / 2;

  row_bytes[0] = w;
  rows[0] = h;
  switch (f) {
    case FER_PIXEL_GRAY8:
      return 1;
    case FER_PIXEL_I420:
      row_bytes[1] = row_bytes[2] = cw;
      rows[1] = rows[2] = ch;
      return 3;
    case FER_PIXEL_NV12:
      row_bytes[1] = 2 * cw;
      rows[1] = ch;
      return 2;
    default:
      row_bytes[0] = w * bytes_per_packed_pixel (f);
      return 1;
  }
}

static void
test_frame_scramble_padding (test_frame *t, GRand *rng)
{
  for (int p = 0; p < t->n_planes; p++)
    for (int y = 0; y + 1 < t->rows[p]; y++)
      for (int x = t->row_bytes[p]; x < t->img.strides[p]; x++)
        t->data[p][(size_t) y * t->img.strides[p] + x] =
            (uint8_t) g_rand_int (rng);
}

/* Random pixels; each plane's stride is its row plus `pad` garbage bytes. */
static test_frame *
test_frame_new (
    fer_pixel_format f, int w, int h, gboolean full_range, int pad, GRand *rng)
{
  test_frame *t = g_new0 (test_frame, 1);

  t->img.format = f;
  t->img.width = w;
  t->img.height = h;
  t->img.full_range = full_range;
  t->n_planes = frame_layout (f, w, h, t->row_bytes, t->rows);
  for (int p = 0; p < t->n_planes; p++) {
    int stride = t->row_bytes[p] + pad;
    size_t size = (size_t) stride * (t->rows[p] - 1) + t->row_bytes[p];

    t->data[p] = g_malloc (size);
    for (size_t i = 0; i < size; i++)
      t->data[p][i] = (uint8_t) g_rand_int (rng);
    t->img.planes[p] = t->data[p];
    t->img.strides[p] = stride;
  }
  return t;
}

static void
test_frame_free (test_frame *t)
{
  for (int p = 0; p < t->n_planes; p++)
    g_free (t->data[p]);
  g_free (t);
}

/* Writes one pixel of a packed format, from first principles. */
static void
put_packed_rgb (fer_pixel_format f, uint8_t *p, uint8_t r, uint8_t g, uint8_t b,
    uint8_t filler)
{
  switch (f) {
    case FER_PIXEL_RGB:
      p[0] = r, p[1] = g, p[2] = b;
      break;
    case FER_PIXEL_BGR:
      p[0] = b, p[1] = g, p[2] = r;
      break;
    case FER_PIXEL_RGBA:
    case FER_PIXEL_RGBX:
      p[0] = r, p[1] = g, p[2] = b, p[3] = filler;
      break;
    case FER_PIXEL_BGRA:
    case FER_PIXEL_BGRX:
      p[0] = b, p[1] = g, p[2] = r, p[3] = filler;
      break;
    case FER_PIXEL_XRGB:
    case FER_PIXEL_ARGB:
      p[0] = filler, p[1] = r, p[2] = g, p[3] = b;
      break;
    default:
      g_assert_not_reached ();
  }
}

/* ---- the naive reference ---- */

static double
clamp_255 (double v)
{
  return v < 0.0 ? 0.0 : (v > 255.0 ? 255.0 : v);
}

/* R, G, B of pixel (x, y), which must be inside the frame. */
static void
ref_rgb (const fer_image *img, int x, int y, double rgb[3])
{
  const uint8_t *row = img->planes[0] + (size_t) y * img->strides[0];
  double Y, U, V;

  switch (img->format) {
    case FER_PIXEL_GRAY8:
      rgb[0] = rgb[1] = rgb[2] = row[x];
      return;
    case FER_PIXEL_RGB:
      rgb[0] = row[3 * x], rgb[1] = row[3 * x + 1], rgb[2] = row[3 * x + 2];
      return;
    case FER_PIXEL_BGR:
      rgb[0] = row[3 * x + 2], rgb[1] = row[3 * x + 1], rgb[2] = row[3 * x];
      return;
    case FER_PIXEL_RGBA:
    case FER_PIXEL_RGBX:
      rgb[0] = row[4 * x], rgb[1] = row[4 * x + 1], rgb[2] = row[4 * x + 2];
      return;
    case FER_PIXEL_BGRA:
    case FER_PIXEL_BGRX:
      rgb[0] = row[4 * x + 2], rgb[1] = row[4 * x + 1], rgb[2] = row[4 * x];
      return;
    case FER_PIXEL_XRGB:
    case FER_PIXEL_ARGB:
      rgb[0] = row[4 * x + 1], rgb[1] = row[4 * x + 2], rgb[2] = row[4 * x + 3];
      return;
    case FER_PIXEL_I420:
      Y = row[x];
      U = img->planes[1][(size_t) (y / 2) * img->strides[1] + x / 2];
      V = img->planes[2][(size_t) (y / 2) * img->strides[2] + x / 2];
      break;
    case FER_PIXEL_NV12:
      Y = row[x];
      U = img->planes[1][(size_t) (y / 2) * img->strides[1] + 2 * (x / 2)];
      V = img->planes[1][(size_t) (y / 2) * img->strides[1] + 2 * (x / 2) + 1];
      break;
    default:
      g_assert_not_reached ();
  }

  U -= 128.0;
  V -= 128.0;
  if (img->full_range) {
    rgb[0] = Y + 1.402 * V;
    rgb[1] = Y - 0.344136 * U - 0.714136 * V;
    rgb[2] = Y + 1.772 * U;
  } else {
    rgb[0] = 1.164 * (Y - 16.0) + 1.596 * V;
    rgb[1] = 1.164 * (Y - 16.0) - 0.813 * V - 0.391 * U;
    rgb[2] = 1.164 * (Y - 16.0) + 2.018 * U;
  }
  for (int c = 0; c < 3; c++)
    rgb[c] = clamp_255 (rgb[c]);
}

static double
ref_gray (const fer_image *img, int x, int y)
{
  double Y, rgb[3];

  switch (img->format) {
    case FER_PIXEL_I420:
    case FER_PIXEL_NV12:
      Y = img->planes[0][(size_t) y * img->strides[0] + x];
      return img->full_range ? Y : clamp_255 ((Y - 16.0) * 255.0 / 219.0);
    default:
      ref_rgb (img, x, y, rgb);
      return clamp_255 (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]);
  }
}

/* The model's channel c of pixel (x, y), with coordinates clamped to the
 * frame (border replicate). */
static double
ref_channel (const fer_image *img, long x, long y, int channels, int c)
{
  int cx = (int) CLAMP (x, 0, img->width - 1);
  int cy = (int) CLAMP (y, 0, img->height - 1);
  double rgb[3];

  if (channels == 1)
    return ref_gray (img, cx, cy);
  ref_rgb (img, cx, cy, rgb);
  return rgb[c];
}

static double
triangle (double t)
{
  return fabs (t) < 1.0 ? 1.0 - fabs (t) : 0.0;
}

/* Output pixel (ox, oy) of channel c, straight from the definition. */
static double
ref_output (const fer_image *img, const fer_view *view,
    const fer_input_spec *spec, int c, int ox, int oy)
{
  const fer_rect *r = &view->src;
  int S = spec->size;
  int col = view->flip ? S - 1 - ox : ox;
  double sx = r->x + (col + 0.5) * r->w / S;
  double sy = r->y + (oy + 0.5) * r->h / S;
  double fx = MAX (r->w / S, 1.0), fy = MAX (r->h / S, 1.0);
  double sum = 0.0, wsum = 0.0;

  for (long j = (long) floor (sy - fy) - 2; j <= (long) ceil (sy + fy) + 2; j++)
    for (long i = (long) floor (sx - fx) - 2; i <= (long) ceil (sx + fx) + 2;
         i++) {
      double w =
          triangle ((i + 0.5 - sx) / fx) * triangle ((j + 0.5 - sy) / fy);

      if (w > 0.0) {
        sum += w * ref_channel (img, i, j, spec->channels, c);
        wsum += w;
      }
    }
  return (sum / wsum / 255.0 - spec->mean[c]) / spec->std[c];
}

static double
max_error_against_reference (const fer_image *img, const fer_view *view,
    const fer_input_spec *spec, const float *out)
{
  int S = spec->size;
  double max_err = 0.0;

  for (int c = 0; c < spec->channels; c++)
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++) {
        double ref = ref_output (img, view, spec, c, x, y);
        max_err = MAX (max_err, fabs (ref - out[((size_t) c * S + y) * S + x]));
      }
  return max_err;
}

static double
max_abs_diff (const float *a, const float *b, size_t n)
{
  double m = 0.0;

  for (size_t i = 0; i < n; i++)
    m = MAX (m, fabs ((double) a[i] - b[i]));
  return m;
}

/* ---- fer_preprocess against the reference ---- */

typedef struct
{
  const char *name;
  int width, height;
  fer_view view;
  int size;
} geometry_case;

static const geometry_case geometry_cases[] = {
  { "upscale", 37, 29, { { 3.5f, 2.25f, 20.3f, 17.7f }, FALSE }, 48 },
  { "downscale-4.3", 151, 143, { { 5.3f, 3.9f, 137.6f, 137.6f }, FALSE }, 32 },
  { "identity", 37, 29, { { 7.0f, 2.0f, 25.0f, 25.0f }, FALSE }, 25 },
  { "identity-flip", 37, 29, { { 3.0f, 1.0f, 27.0f, 27.0f }, TRUE }, 27 },
  { "flip-downscale", 37, 29, { { 4.2f, 3.1f, 27.5f, 22.8f }, TRUE }, 20 },
  { "partly-outside", 37, 29, { { -9.5f, -6.2f, 40.0f, 30.0f }, FALSE }, 24 },
  { "partly-outside-flip", 37, 29, { { 20.5f, 15.3f, 30.0f, 25.0f }, TRUE },
      16 },
  { "entirely-outside", 37, 29, { { 45.0f, -20.0f, 10.0f, 8.0f }, FALSE }, 8 },
};

typedef struct
{
  fer_pixel_format format;
  gboolean full_range;
} format_case;

static const format_case format_cases[] = {
  { FER_PIXEL_GRAY8, FALSE },
  { FER_PIXEL_RGB, FALSE },
  { FER_PIXEL_BGR, FALSE },
  { FER_PIXEL_RGBA, FALSE },
  { FER_PIXEL_BGRA, FALSE },
  { FER_PIXEL_RGBX, FALSE },
  { FER_PIXEL_BGRX, FALSE },
  { FER_PIXEL_XRGB, FALSE },
  { FER_PIXEL_ARGB, FALSE },
  { FER_PIXEL_I420, FALSE },
  { FER_PIXEL_I420, TRUE },
  { FER_PIXEL_NV12, FALSE },
  { FER_PIXEL_NV12, TRUE },
};

static void
test_preprocess_matches_reference (void)
{
  GRand *rng = g_rand_new_with_seed (20240611);
  fer_scratch *scratch = fer_scratch_new ();
  double worst = 0.0, worst_identity = 0.0;

  for (gsize f = 0; f < G_N_ELEMENTS (format_cases); f++)
    for (gsize g = 0; g < G_N_ELEMENTS (geometry_cases); g++)
      for (int channels = 1; channels <= 3; channels += 2) {
        const format_case *fc = &format_cases[f];
        const geometry_case *gc = &geometry_cases[g];
        gboolean identity = g_str_has_prefix (gc->name, "identity");
        fer_input_spec spec =
            spec_sized (channels == 1 ? &spec_gray : &spec_rgb, gc->size);
        size_t n = (size_t) channels * gc->size * gc->size;
        float *out = g_new (float, n), *again = g_new (float, n);
        test_frame *t = test_frame_new (fc->format, gc->width, gc->height,
            fc->full_range, g_rand_int_range (rng, 1, 17), rng);
        GError *error = NULL;
        double err;

        g_assert_true (
            fer_preprocess (&t->img, &gc->view, &spec, out, scratch, &error));
        g_assert_no_error (error);
        test_frame_scramble_padding (t, rng);
        g_assert_true (
            fer_preprocess (&t->img, &gc->view, &spec, again, scratch, &error));
        g_assert_cmpmem (out, n * sizeof (float), again, n * sizeof (float));

        err = max_error_against_reference (&t->img, &gc->view, &spec, out);
        g_test_message ("%s%s %s C=%d: max |err| %.3g",
            format_name (fc->format), fc->full_range ? "-full" : "", gc->name,
            channels, err);
        g_assert_cmpfloat (err, <, identity ? IDENTITY_TOLERANCE : TOLERANCE);
        if (identity)
          worst_identity = MAX (worst_identity, err);
        else
          worst = MAX (worst, err);

        test_frame_free (t);
        g_free (again);
        g_free (out);
      }
  g_test_message (
      "worst max |err|: %.3g resampled, %.3g identity", worst, worst_identity);
  fer_scratch_free (scratch);
  g_rand_free (rng);
}

/* Identity geometry must reproduce the converted pixels themselves. */
static void
test_preprocess_identity_reproduces_pixels (void)
{
  GRand *rng = g_rand_new_with_seed (7);
  fer_input_spec spec = spec_sized (&spec_rgb, 21);
  fer_view view = { { 5.0f, 3.0f, 21.0f, 21.0f }, FALSE };
  float out[3 * 21 * 21];
  double max_err = 0.0;

  for (int f = 0; f < FER_PIXEL_N_FORMATS; f++) {
    test_frame *t = test_frame_new (f, 31, 27, FALSE, 3, rng);
    GError *error = NULL;

    g_assert_true (fer_preprocess (&t->img, &view, &spec, out, NULL, &error));
    g_assert_no_error (error);
    for (int c = 0; c < 3; c++)
      for (int y = 0; y < 21; y++)
        for (int x = 0; x < 21; x++) {
          double rgb[3], want;

          ref_rgb (&t->img, x + 5, y + 3, rgb);
          want = (rgb[c] / 255.0 - spec.mean[c]) / spec.std[c];
          max_err = MAX (max_err, fabs (want - out[(c * 21 + y) * 21 + x]));
        }
    test_frame_free (t);
  }
  g_test_message ("identity vs pixels, all formats: max |err| %.3g", max_err);
  g_assert_cmpfloat (max_err, <, IDENTITY_TOLERANCE);
  g_rand_free (rng);
}

/* The same RGB content in every packed layout gives bit-identical output. */
static void
test_preprocess_packed_formats_agree (void)
{
  static const fer_pixel_format packed[] = {
    FER_PIXEL_BGR,
    FER_PIXEL_RGBA,
    FER_PIXEL_BGRA,
    FER_PIXEL_RGBX,
    FER_PIXEL_BGRX,
    FER_PIXEL_XRGB,
    FER_PIXEL_ARGB,
  };
  GRand *rng = g_rand_new_with_seed (99);
  test_frame *rgb = test_frame_new (FER_PIXEL_RGB, 37, 29, FALSE, 5, rng);
  fer_view view = { { -2.5f, 1.5f, 33.0f, 30.0f }, TRUE };

  for (int channels = 1; channels <= 3; channels += 2) {
    fer_input_spec spec =
        spec_sized (channels == 1 ? &spec_gray : &spec_rgb, 17);
    size_t n = (size_t) channels * 17 * 17;
    float *want = g_new (float, n), *got = g_new (float, n);

    g_assert_true (fer_preprocess (&rgb->img, &view, &spec, want, NULL, NULL));
    for (gsize f = 0; f < G_N_ELEMENTS (packed); f++) {
      test_frame *t = test_frame_new (packed[f], 37, 29, FALSE, 2, rng);

      for (int y = 0; y < 29; y++)
        for (int x = 0; x < 37; x++) {
          const uint8_t *p =
              rgb->img.planes[0] + (size_t) y * rgb->img.strides[0] + 3 * x;
          put_packed_rgb (packed[f],
              t->data[0] + (size_t) y * t->img.strides[0]
                  + x * bytes_per_packed_pixel (packed[f]),
              p[0], p[1], p[2], (uint8_t) g_rand_int (rng));
        }
      g_assert_true (fer_preprocess (&t->img, &view, &spec, got, NULL, NULL));
      g_test_message ("%s vs RGB C=%d: max |diff| %.3g",
          format_name (packed[f]), channels, max_abs_diff (want, got, n));
      g_assert_cmpmem (want, n * sizeof (float), got, n * sizeof (float));
      test_frame_free (t);
    }
    g_free (got);
    g_free (want);
  }
  test_frame_free (rgb);
  g_rand_free (rng);
}

static void
test_preprocess_gray_to_rgb_replicates (void)
{
  GRand *rng = g_rand_new_with_seed (3);
  test_frame *t = test_frame_new (FER_PIXEL_GRAY8, 37, 29, FALSE, 4, rng);
  fer_input_spec rgb = { 19, 3, { 0.3f, 0.3f, 0.3f }, { 0.7f, 0.7f, 0.7f } };
  fer_input_spec gray = { 19, 1, { 0.3f }, { 0.7f } };
  fer_view view = { { 1.5f, -2.0f, 30.0f, 26.0f }, FALSE };
  float out3[3 * 19 * 19], out1[19 * 19];

  g_assert_true (fer_preprocess (&t->img, &view, &rgb, out3, NULL, NULL));
  g_assert_true (fer_preprocess (&t->img, &view, &gray, out1, NULL, NULL));
  for (int c = 0; c < 3; c++)
    g_assert_cmpmem (out3 + c * 19 * 19, sizeof out1, out1, sizeof out1);
  test_frame_free (t);
  g_rand_free (rng);
}

/* ---- invalid input ---- */

static void
expect_invalid (const fer_image *img, const fer_view *view,
    const fer_input_spec *spec, const char *needle)
{
  float out[3 * 8 * 8];
  GError *error = NULL;

  g_assert_false (fer_preprocess (img, view, spec, out, NULL, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_test_message ("rejected: %s", error->message);
  if (!strstr (error->message, needle))
    g_error ("message \"%s\" does not mention \"%s\"", error->message, needle);
  g_clear_error (&error);
}

static void
test_preprocess_rejects_invalid (void)
{
  GRand *rng = g_rand_new_with_seed (11);
  test_frame *rgb = test_frame_new (FER_PIXEL_RGB, 37, 29, FALSE, 0, rng);
  test_frame *i420 = test_frame_new (FER_PIXEL_I420, 37, 29, FALSE, 0, rng);
  test_frame *nv12 = test_frame_new (FER_PIXEL_NV12, 37, 29, FALSE, 0, rng);
  fer_input_spec spec = spec_sized (&spec_rgb, 8);
  fer_view view = { { 0.0f, 0.0f, 20.0f, 20.0f }, FALSE };
  fer_image img;
  GError *error = NULL;

  g_assert_true (fer_image_validate (&rgb->img, &error));
  g_assert_true (fer_image_validate (&i420->img, &error));
  g_assert_true (fer_image_validate (&nv12->img, &error));
  g_assert_no_error (error);

  expect_invalid (NULL, &view, &spec, "image is NULL");

  img = rgb->img;
  img.format = (fer_pixel_format) 99;
  expect_invalid (&img, &view, &spec, "pixel format 99");

  img = rgb->img;
  img.planes[0] = NULL;
  expect_invalid (&img, &view, &spec, "plane 0");

  img = i420->img;
  img.planes[2] = NULL;
  expect_invalid (&img, &view, &spec, "plane 2 (V)");

  img = nv12->img;
  img.planes[1] = NULL;
  expect_invalid (&img, &view, &spec, "plane 1 (UV)");

  img = rgb->img;
  img.strides[0] = 3 * 37 - 1;
  expect_invalid (&img, &view, &spec, "stride 110 of plane 0");

  img = i420->img;
  img.strides[1] = 18;
  expect_invalid (&img, &view, &spec, ">= 19 bytes");

  img = nv12->img;
  img.strides[1] = 37;
  expect_invalid (&img, &view, &spec, "stride 37 of plane 1 (UV)");

  img = rgb->img;
  img.width = 0;
  expect_invalid (&img, &view, &spec, "0x29");

  img = rgb->img;
  img.height = -3;
  expect_invalid (&img, &view, &spec, "37x-3");

  view.src.w = 0.0f;
  expect_invalid (&rgb->img, &view, &spec, "w=0");
  view.src.w = 20.0f;
  view.src.h = -1.0f;
  expect_invalid (&rgb->img, &view, &spec, "h=-1");
  view.src.h = 20.0f;
  view.src.x = NAN;
  expect_invalid (&rgb->img, &view, &spec, "x=nan");
  view.src.x = 0.0f;
  view.src.w = NAN;
  expect_invalid (&rgb->img, &view, &spec, "w=nan");
  view.src.w = INFINITY;
  expect_invalid (&rgb->img, &view, &spec, "w=inf");
  view.src.w = 20.0f;
  view.src.y = 1e30f;
  expect_invalid (&rgb->img, &view, &spec, "y=1e+30");
  view.src.y = 0.0f;

  spec.channels = 2;
  expect_invalid (&rgb->img, &view, &spec, "channels 2");
  spec.channels = 3;
  spec.size = 0;
  expect_invalid (&rgb->img, &view, &spec, "size 0");
  spec.size = 8;
  spec.std[1] = 0.0f;
  expect_invalid (&rgb->img, &view, &spec, "channel 1");

  test_frame_free (nv12);
  test_frame_free (i420);
  test_frame_free (rgb);
  g_rand_free (rng);
}

/* ---- scratch memory and speed ---- */

static void
test_preprocess_scratch_reuse (void)
{
  GRand *rng = g_rand_new_with_seed (5);
  test_frame *big = test_frame_new (FER_PIXEL_I420, 200, 200, FALSE, 8, rng);
  test_frame *small = test_frame_new (FER_PIXEL_BGRA, 48, 48, FALSE, 0, rng);
  fer_scratch *scratch = fer_scratch_new ();
  fer_input_spec spec = spec_sized (&spec_rgb, 48);
  fer_view whole = { { 0.0f, 0.0f, 200.0f, 200.0f }, FALSE };
  fer_view face = { { 10.0f, 12.0f, 48.0f, 48.0f }, TRUE };
  float out[3 * 48 * 48], unscratched[3 * 48 * 48];
  guint grown;

  g_assert_cmpuint (fer_scratch_n_allocations (scratch), ==, 0);
  g_assert_true (fer_preprocess (&big->img, &whole, &spec, out, scratch, NULL));
  grown = fer_scratch_n_allocations (scratch);
  g_assert_cmpuint (grown, >, 0);

  g_assert_true (fer_preprocess (&big->img, &whole, &spec, out, scratch, NULL));
  g_assert_true (fer_preprocess (&big->img, &face, &spec, out, scratch, NULL));
  g_assert_true (
      fer_preprocess (&small->img, &whole, &spec, out, scratch, NULL));
  spec.channels = 1;
  g_assert_true (
      fer_preprocess (&small->img, &face, &spec, out, scratch, NULL));
  spec.size = 24;
  g_assert_true (fer_preprocess (&big->img, &face, &spec, out, scratch, NULL));
  g_assert_cmpuint (fer_scratch_n_allocations (scratch), ==, grown);

  /* Scratch changes where memory comes from, never the result. */
  g_assert_true (
      fer_preprocess (&big->img, &face, &spec, unscratched, NULL, NULL));
  g_assert_cmpmem (
      out, 24 * 24 * sizeof (float), unscratched, 24 * 24 * sizeof (float));

  spec.channels = 3;
  spec.size = 96;
  {
    float *large = g_new (float, 3 * 96 * 96);
    g_assert_true (
        fer_preprocess (&big->img, &whole, &spec, large, scratch, NULL));
    g_free (large);
  }
  g_assert_cmpuint (fer_scratch_n_allocations (scratch), >, grown);

  fer_scratch_free (scratch);
  fer_scratch_free (NULL);
  test_frame_free (small);
  test_frame_free (big);
  g_rand_free (rng);
}

static void
test_preprocess_speed (void)
{
  static const struct
  {
    int side;
    int channels;
  } cases[] = { { 48, 1 }, { 48, 3 }, { 200, 1 }, { 200, 3 } };
  const int iterations = 200;
  GRand *rng = g_rand_new_with_seed (1);
  fer_scratch *scratch = fer_scratch_new ();
  float out[3 * 48 * 48];

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    test_frame *t = test_frame_new (
        FER_PIXEL_RGB, cases[i].side, cases[i].side, FALSE, 0, rng);
    fer_input_spec spec =
        spec_sized (cases[i].channels == 1 ? &spec_gray : &spec_rgb, 48);
    fer_view view = {
      { 0.0f, 0.0f, (float) cases[i].side, (float) cases[i].side }, FALSE
    };
    gint64 start = g_get_monotonic_time ();

    for (int k = 0; k < iterations; k++)
      g_assert_true (
          fer_preprocess (&t->img, &view, &spec, out, scratch, NULL));
    g_test_message ("48x48x%d from %dx%d RGB: %.1f us per call",
        cases[i].channels, cases[i].side, cases[i].side,
        (double) (g_get_monotonic_time () - start) / iterations);
    test_frame_free (t);
  }
  fer_scratch_free (scratch);
  g_rand_free (rng);
}

/* ---- TTA views ---- */

static void
assert_view (
    const fer_view *v, double x, double y, double w, double h, gboolean flip)
{
  g_assert_cmpfloat_with_epsilon (v->src.x, x, 1e-4);
  g_assert_cmpfloat_with_epsilon (v->src.y, y, 1e-4);
  g_assert_cmpfloat_with_epsilon (v->src.w, w, 1e-4);
  g_assert_cmpfloat_with_epsilon (v->src.h, h, 1e-4);
  g_assert_cmpint (v->flip, ==, flip);
}

static void
test_tta_without_crops (void)
{
  const fer_rect face = { 10.0f, 20.0f, 48.0f, 96.0f };
  fer_view views[FER_TTA_MAX];
  /* 1/24 of the face is 2 x 4 pixels; zoom about the centre (34, 68). */
  double zin_w = 48.0 / 1.1, zin_h = 96.0 / 1.1;
  double zout_w = 48.0 * 1.1, zout_h = 96.0 * 1.1;

  g_assert_true (fer_tta_views (&face, 48, 0, 1, views, NULL));
  g_assert_true (memcmp (&views[0].src, &face, sizeof face) == 0);
  g_assert_false (views[0].flip);

  g_assert_true (fer_tta_views (&face, 48, 48, 2, views, NULL));
  g_assert_true (memcmp (&views[0].src, &face, sizeof face) == 0);
  g_assert_true (memcmp (&views[1].src, &face, sizeof face) == 0);
  g_assert_false (views[0].flip);
  g_assert_true (views[1].flip);

  g_assert_true (fer_tta_views (&face, 48, 0, 10, views, NULL));
  assert_view (&views[0], 10, 20, 48, 96, FALSE);
  assert_view (&views[1], 10, 20, 48, 96, TRUE);
  assert_view (&views[2], 34 - zin_w / 2, 68 - zin_h / 2, zin_w, zin_h, FALSE);
  assert_view (&views[3], 8, 16, 48, 96, FALSE);  /* content right-down */
  assert_view (&views[4], 12, 24, 48, 96, FALSE); /* content left-up */
  assert_view (&views[5], 34 - zin_w / 2, 68 - zin_h / 2, zin_w, zin_h, TRUE);
  assert_view (&views[6], 8, 24, 48, 96, FALSE);  /* content right-up */
  assert_view (&views[7], 12, 16, 48, 96, FALSE); /* content left-down */
  assert_view (
      &views[8], 34 - zout_w / 2, 68 - zout_h / 2, zout_w, zout_h, FALSE);
  assert_view (
      &views[9], 34 - zout_w / 2, 68 - zout_h / 2, zout_w, zout_h, TRUE);
}

static void
test_tta_ten_crop (void)
{
  /* 96 x 48 face pixels onto 48 x 48 model pixels: 2 x 1 face px each. */
  const fer_rect face = { 10.0f, 20.0f, 96.0f, 48.0f };
  fer_view views[FER_TTA_MAX];
  static const int offsets[5][2] = { { 2, 2 }, { 0, 0 }, { 4, 0 }, { 0, 4 },
    { 4, 4 } };

  g_assert_true (fer_tta_views (&face, 48, 44, 10, views, NULL));
  for (int i = 0; i < 10; i++)
    assert_view (&views[i], 10 + 2 * offsets[i / 2][0], 20 + offsets[i / 2][1],
        88, 44, i % 2 == 1);
}

static void
expect_tta_invalid (const fer_rect *face, int input_size, int crop_size, int T,
    const char *needle)
{
  fer_view views[FER_TTA_MAX];
  GError *error = NULL;

  g_assert_false (
      fer_tta_views (face, input_size, crop_size, T, views, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_test_message ("rejected: %s", error->message);
  if (!strstr (error->message, needle))
    g_error ("message \"%s\" does not mention \"%s\"", error->message, needle);
  g_clear_error (&error);
}

static void
test_tta_rejects_invalid (void)
{
  const fer_rect face = { 0.0f, 0.0f, 48.0f, 48.0f };
  const fer_rect empty = { 0.0f, 0.0f, 0.0f, 48.0f };

  expect_tta_invalid (&face, 48, 0, 0, "T=0");
  expect_tta_invalid (&face, 48, 0, 11, "T=11");
  expect_tta_invalid (&face, 48, 44, -1, "T=-1");
  expect_tta_invalid (&face, 48, 49, 1, "crop size 49");
  expect_tta_invalid (&face, 48, -2, 1, "crop size -2");
  expect_tta_invalid (&face, 0, 0, 1, "input size 0");
  expect_tta_invalid (&empty, 48, 0, 1, "w=0");
}

/* A 48x48 face filling a 48x48 frame, model input 48 cropped to 44: the
 * centre crop is pixels 2..45 and its flip their mirror, with no
 * resampling at all. */
static void
test_tta_centre_crop_is_pixels (void)
{
  GRand *rng = g_rand_new_with_seed (44);
  test_frame *t = test_frame_new (FER_PIXEL_GRAY8, 48, 48, FALSE, 7, rng);
  const fer_rect face = { 0.0f, 0.0f, 48.0f, 48.0f };
  fer_input_spec spec = { 44, 1, { 0.0f }, { 1.0f } };
  fer_view views[2];
  float out[44 * 44];
  double max_err = 0.0;

  g_assert_true (fer_tta_views (&face, 48, 44, 2, views, NULL));
  for (int v = 0; v < 2; v++) {
    g_assert_true (fer_preprocess (&t->img, &views[v], &spec, out, NULL, NULL));
    for (int y = 0; y < 44; y++)
      for (int x = 0; x < 44; x++) {
        int sx = v == 0 ? x + 2 : 45 - x;
        double want =
            t->img.planes[0][(y + 2) * t->img.strides[0] + sx] / 255.0;
        max_err = MAX (max_err, fabs (want - out[y * 44 + x]));
      }
  }
  g_test_message (
      "centre crop (and flip) vs pixels 2..45: max |err| %.3g", max_err);
  g_assert_cmpfloat (max_err, <, 2.5e-7);
  test_frame_free (t);
  g_rand_free (rng);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func (
      "/preprocess/matches-reference", test_preprocess_matches_reference);
  g_test_add_func ("/preprocess/identity-reproduces-pixels",
      test_preprocess_identity_reproduces_pixels);
  g_test_add_func (
      "/preprocess/packed-formats-agree", test_preprocess_packed_formats_agree);
  g_test_add_func ("/preprocess/gray-to-rgb-replicates",
      test_preprocess_gray_to_rgb_replicates);
  g_test_add_func (
      "/preprocess/rejects-invalid", test_preprocess_rejects_invalid);
  g_test_add_func ("/preprocess/scratch-reuse", test_preprocess_scratch_reuse);
  g_test_add_func ("/preprocess/speed", test_preprocess_speed);
  g_test_add_func ("/tta/without-crops", test_tta_without_crops);
  g_test_add_func ("/tta/ten-crop", test_tta_ten_crop);
  g_test_add_func ("/tta/rejects-invalid", test_tta_rejects_invalid);
  g_test_add_func (
      "/tta/centre-crop-is-pixels", test_tta_centre_crop_is_pixels);

  return g_test_run ();
}
