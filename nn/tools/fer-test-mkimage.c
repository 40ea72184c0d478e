/* fer-test-mkimage: test images for tests/nn/test_tools.sh (not installed).
 *
 *   fer-test-mkimage KIND WIDTH HEIGHT OUT
 *     writes a smooth test pattern as KIND;
 *   fer-test-mkimage --verify KIND WIDTH HEIGHT FILE
 *     decodes FILE with the tools' decoder and checks the format, the size
 *     and every pixel against the pattern (exactly for PNG, within JPEG's
 *     loss for JPEG), printing the largest difference.
 *
 * The PNG kinds cover what the decoder must normalise (16-bit, 1-bit,
 * palette with and without transparency, gray + alpha, Adam7 interlacing);
 * gray/rgb/rgba go through the tools' own PNG writer. jpeg-cmyk exists to
 * check that CMYK is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "imageio.h"

typedef enum
{
  PNG_WRITER,
  PNG_RAW,
  JPEG
} kind_family;

typedef struct
{
  const char *name;
  kind_family family;
  int channels;              /* of the pattern written */
  int bit_depth, color_type; /* PNG_RAW */
  gboolean interlace, trns;  /* PNG_RAW */
  fer_pixel_format decoded;  /* what the decoder must return */
} kind;

static const kind kinds[] = {
  { "gray", PNG_WRITER, 1, 8, 0, FALSE, FALSE, FER_PIXEL_GRAY8 },
  { "rgb", PNG_WRITER, 3, 8, 0, FALSE, FALSE, FER_PIXEL_RGB },
  { "rgba", PNG_WRITER, 4, 8, 0, FALSE, FALSE, FER_PIXEL_RGBA },
  { "png-gray16", PNG_RAW, 1, 16, PNG_COLOR_TYPE_GRAY, FALSE, FALSE,
      FER_PIXEL_GRAY8 },
  { "png-rgba16", PNG_RAW, 4, 16, PNG_COLOR_TYPE_RGB_ALPHA, FALSE, FALSE,
      FER_PIXEL_RGBA },
  { "png-gray1", PNG_RAW, 1, 1, PNG_COLOR_TYPE_GRAY, FALSE, FALSE,
      FER_PIXEL_GRAY8 },
  { "png-gray-alpha", PNG_RAW, 2, 8, PNG_COLOR_TYPE_GRAY_ALPHA, FALSE, FALSE,
      FER_PIXEL_GRAY8 },
  { "png-palette", PNG_RAW, 3, 8, PNG_COLOR_TYPE_PALETTE, FALSE, FALSE,
      FER_PIXEL_RGB },
  { "png-palette-trns", PNG_RAW, 4, 8, PNG_COLOR_TYPE_PALETTE, FALSE, TRUE,
      FER_PIXEL_RGBA },
  { "png-interlaced", PNG_RAW, 3, 8, PNG_COLOR_TYPE_RGB, TRUE, FALSE,
      FER_PIXEL_RGB },
  { "jpeg-gray", JPEG, 1, 8, 0, FALSE, FALSE, FER_PIXEL_GRAY8 },
  { "jpeg-rgb", JPEG, 3, 8, 0, FALSE, FALSE, FER_PIXEL_RGB },
  { "jpeg-cmyk", JPEG, 4, 8, 0, FALSE, FALSE, FER_PIXEL_N_FORMATS },
};

/* Smooth, so that JPEG keeps it closely, and below 256 without wrapping. */
static uint8_t
pattern (const kind *k, int x, int y, int c, int w, int h)
{
  if (k->bit_depth == 1)
    return ((x / 3 + y / 2) & 1) ? 255 : 0;
  if (k->color_type == PNG_COLOR_TYPE_PALETTE) {
    /* Colour (and alpha) of palette entry x % 16. */
    int i = x % 16;
    return (uint8_t) (c == 0 ? i * 16
            : c == 1         ? 255 - i * 16
            : c == 2         ? 100 + i
                             : 128 + i * 8);
  }
  return (uint8_t) (x * 120 / w + y * 60 / h + c * 25);
}

static int
decoded_channels (fer_pixel_format f)
{
  return f == FER_PIXEL_GRAY8 ? 1 : f == FER_PIXEL_RGB ? 3 : 4;
}

static void die (const char *fmt, ...) G_GNUC_PRINTF (1, 2) G_GNUC_NORETURN;

static void
die (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "fer-test-mkimage: ");
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  va_end (ap);
  exit (1);
}

static void
write_png_raw (const kind *k, int w, int h, const char *path)
{
  FILE *f = fopen (path, "wb");
  if (f == NULL)
    die ("cannot create %s", path);
  png_structp png =
      png_create_write_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct (png);
  if (setjmp (png_jmpbuf (png)))
    die ("libpng failed writing %s", path);
  png_init_io (png, f);
  png_set_IHDR (png, info, w, h, k->bit_depth, k->color_type,
      k->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
      PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (k->color_type == PNG_COLOR_TYPE_PALETTE) {
    png_color palette[16];
    png_byte alpha[16];
    for (int i = 0; i < 16; i++) {
      palette[i].red = pattern (k, i, 0, 0, w, h);
      palette[i].green = pattern (k, i, 0, 1, w, h);
      palette[i].blue = pattern (k, i, 0, 2, w, h);
      alpha[i] = pattern (k, i, 0, 3, w, h);
    }
    png_set_PLTE (png, info, palette, 16);
    if (k->trns)
      png_set_tRNS (png, info, alpha, 16, NULL);
  }
  png_write_info (png, info);

  /* One row buffer in the file's own layout; 16-bit samples are big-endian
   * with a low byte that the decoder must drop. */
  int bytes = k->bit_depth == 16 ? 2 : 1;
  int row_channels = k->color_type == PNG_COLOR_TYPE_PALETTE ? 1 : k->channels;
  png_bytep *rows = g_new (png_bytep, h);
  for (int y = 0; y < h; y++) {
    rows[y] = g_malloc0 ((size_t) w * row_channels * bytes);
    for (int x = 0; x < w; x++)
      for (int c = 0; c < row_channels; c++) {
        uint8_t v = pattern (k, x, y, c, w, h);
        if (k->color_type == PNG_COLOR_TYPE_PALETTE)
          rows[y][x] = x % 16;
        else if (k->bit_depth == 1)
          rows[y][x / 8] |= (v ? 0x80 : 0) >> (x % 8);
        else if (bytes == 2) {
          rows[y][(x * row_channels + c) * 2] = v;
          rows[y][(x * row_channels + c) * 2 + 1] = (uint8_t) (x * 37 + y);
        } else
          rows[y][x * row_channels + c] = v;
      }
  }
  png_write_image (png, rows);
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  for (int y = 0; y < h; y++)
    g_free (rows[y]);
  g_free (rows);
  if (fclose (f) != 0)
    die ("cannot write %s", path);
}

static void
write_jpeg (const kind *k, int w, int h, const char *path)
{
  FILE *f = fopen (path, "wb");
  if (f == NULL)
    die ("cannot create %s", path);
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error (&jerr);
  jpeg_create_compress (&cinfo);
  jpeg_stdio_dest (&cinfo, f);
  cinfo.image_width = w;
  cinfo.image_height = h;
  cinfo.input_components = k->channels;
  cinfo.in_color_space = k->channels == 1 ? JCS_GRAYSCALE
      : k->channels == 3                  ? JCS_RGB
                                          : JCS_CMYK;
  jpeg_set_defaults (&cinfo);
  jpeg_set_quality (&cinfo, 95, TRUE);
  jpeg_start_compress (&cinfo, TRUE);
  JSAMPLE *row = g_new (JSAMPLE, (size_t) w * k->channels);
  while (cinfo.next_scanline < cinfo.image_height) {
    for (int x = 0; x < w; x++)
      for (int c = 0; c < k->channels; c++)
        row[x * k->channels + c] = pattern (k, x, cinfo.next_scanline, c, w, h);
    jpeg_write_scanlines (&cinfo, &row, 1);
  }
  jpeg_finish_compress (&cinfo);
  jpeg_destroy_compress (&cinfo);
  g_free (row);
  if (fclose (f) != 0)
    die ("cannot write %s", path);
}

static void
write_with_imageio (const kind *k, int w, int h, const char *path)
{
  uint8_t *pixels = g_malloc ((size_t) w * h * k->channels);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < k->channels; c++)
        pixels[((size_t) y * w + x) * k->channels + c] =
            pattern (k, x, y, c, w, h);
  fer_image img = { .format = k->decoded,
    .width = w,
    .height = h,
    .planes = { pixels },
    .strides = { w * k->channels } };
  GError *error = NULL;
  if (!fer_png_write (path, &img, &error))
    die ("%s", error->message);
  g_free (pixels);
}

static int
verify (const kind *k, int w, int h, const char *path)
{
  fer_decoded_image d = FER_DECODED_IMAGE_INIT;
  GError *error = NULL;
  if (!fer_decoded_image_load (&d, path, &error))
    die ("%s", error->message);
  const fer_image *img = &d.image;
  if (img->format != k->decoded || img->width != w || img->height != h) {
    printf ("%s: decoded as format %d, %dx%d; expected format %d, %dx%d\n",
        path, img->format, img->width, img->height, k->decoded, w, h);
    return 1;
  }

  int channels = decoded_channels (img->format);
  int max_diff = 0;
  double sum_diff = 0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < channels; c++) {
        int got =
            img->planes[0][(size_t) y * img->strides[0] + x * channels + c];
        int diff = abs (got - pattern (k, x, y, c, w, h));
        max_diff = MAX (max_diff, diff);
        sum_diff += diff;
      }
  double mean_diff = sum_diff / ((double) w * h * channels);
  fer_decoded_image_clear (&d);

  /* Quality-95 JPEG of a smooth gradient stays within a few levels. */
  gboolean ok =
      k->family == JPEG ? max_diff <= 16 && mean_diff <= 2.0 : max_diff == 0;
  printf ("%s: %s %dx%d, max |diff| %d, mean |diff| %.3f: %s\n", path, k->name,
      w, h, max_diff, mean_diff, ok ? "ok" : "MISMATCH");
  return ok ? 0 : 1;
}

int
main (int argc, char **argv)
{
  gboolean check = argc == 6 && strcmp (argv[1], "--verify") == 0;
  if (argc != 5 && !check) {
    fprintf (stderr,
        "usage: fer-test-mkimage [--verify] KIND WIDTH HEIGHT "
        "FILE\nKIND:");
    for (size_t i = 0; i < G_N_ELEMENTS (kinds); i++)
      fprintf (stderr, " %s", kinds[i].name);
    fputc ('\n', stderr);
    return 2;
  }
  char **args = argv + (check ? 2 : 1);
  const kind *k = NULL;
  for (size_t i = 0; i < G_N_ELEMENTS (kinds); i++)
    if (strcmp (kinds[i].name, args[0]) == 0)
      k = &kinds[i];
  if (k == NULL)
    die ("unknown KIND '%s'", args[0]);
  int w = atoi (args[1]), h = atoi (args[2]);
  if (w < 1 || h < 1 || w > 4096 || h > 4096)
    die ("WIDTH and HEIGHT must be 1 to 4096, got '%s' '%s'", args[1], args[2]);

  if (check)
    return verify (k, w, h, args[3]);
  if (k->family == PNG_WRITER)
    write_with_imageio (k, w, h, args[3]);
  else if (k->family == PNG_RAW)
    write_png_raw (k, w, h, args[3]);
  else
    write_jpeg (k, w, h, args[3]);
  return 0;
}
