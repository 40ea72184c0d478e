/* JPEG (libjpeg-turbo) and PNG (libpng) decoding for the tools, and a PNG
 * writer. Both libraries report fatal errors by calling a handler that must
 * not return; ours record the message and longjmp back to the decode call,
 * which turns it into a GError. The error paths only read state that lives
 * in memory (the decoder structs and our error state, whose addresses the
 * libraries hold), never a local that the jump could have clobbered. */
#include "imageio.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/* Face crops and plots are kilobytes; this only stops a mislabelled huge
 * file from being read whole before its signature is checked. */
#define MAX_FILE_SIZE ((size_t) 256 << 20)

static const uint8_t png_signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a,
  '\n' };

/* `name` is the path quoted for messages. */
static gboolean
read_file (
    fer_decoded_image *d, const char *path, const char *name, GError **error)
{
  FILE *f = fopen (path, "rb");
  if (f == NULL) {
    int e = errno;
    g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot open image %s: %s",
        name, g_strerror (e));
    return FALSE;
  }

  d->file_size = 0;
  for (;;) {
    if (d->file_size == d->file_capacity) {
      if (d->file_capacity >= MAX_FILE_SIZE) {
        fclose (f);
        g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
            "image %s is larger than %zu MiB; expected a JPEG or PNG "
            "face crop",
            name, MAX_FILE_SIZE >> 20);
        return FALSE;
      }
      d->file_capacity = MAX (d->file_capacity * 2, (size_t) 64 << 10);
      d->file_data = g_realloc (d->file_data, d->file_capacity);
    }
    size_t got = fread (
        d->file_data + d->file_size, 1, d->file_capacity - d->file_size, f);
    if (got == 0)
      break;
    d->file_size += got;
  }

  if (ferror (f)) {
    int e = errno;
    fclose (f);
    g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot read image %s: %s",
        name, g_strerror (e));
    return FALSE;
  }
  fclose (f);
  return TRUE;
}

static gboolean
check_dimensions (const char *path, const char *kind, uint64_t width,
    uint64_t height, GError **error)
{
  if (width == 0 || height == 0
      || width * height > FER_DECODED_IMAGE_MAX_PIXELS) {
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s: %s of %" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT " pixels; "
        "expected 1 to %d pixels",
        path, kind, width, height, FER_DECODED_IMAGE_MAX_PIXELS);
    return FALSE;
  }
  return TRUE;
}

static gboolean
reserve_pixels (
    fer_decoded_image *d, const char *path, size_t size, GError **error)
{
  if (size <= d->pixels_size)
    return TRUE;
  g_free (d->pixels);
  d->pixels = g_try_malloc (size);
  d->pixels_size = d->pixels ? size : 0;
  if (d->pixels == NULL) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "%s: cannot allocate %zu bytes for the decoded image", path, size);
    return FALSE;
  }
  return TRUE;
}

static void
set_image (fer_decoded_image *d, fer_pixel_format format, int width, int height,
    int channels)
{
  memset (&d->image, 0, sizeof d->image);
  d->image.format = format;
  d->image.width = width;
  d->image.height = height;
  d->image.planes[0] = d->pixels;
  d->image.strides[0] = width * channels;
  d->image.full_range = TRUE;
}

/* ---- JPEG ---------------------------------------------------------------- */

typedef struct
{
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
} jpeg_error_state;

static void
jpeg_error_exit_cb (j_common_ptr cinfo)
{
  jpeg_error_state *st = (jpeg_error_state *) cinfo->err;
  st->pub.format_message (cinfo, st->message);
  longjmp (st->jump, 1);
}

/* libjpeg only warns about damaged or missing compressed data and pads the
 * picture with gray; for a classifier that is a wrong input, not a degraded
 * one, so these fail like any other corrupt file. Other warnings (unknown
 * JFIF revision, stray bytes between markers) leave the pixels intact. */
static void
jpeg_emit_message_cb (j_common_ptr cinfo, int msg_level)
{
  if (msg_level >= 0)
    return;
  switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
      jpeg_error_exit_cb (cinfo);
      break;
    default:
      break;
  }
}

static gboolean
decode_jpeg (fer_decoded_image *d, const char *path, GError **error)
{
  struct jpeg_decompress_struct cinfo;
  jpeg_error_state err;

  cinfo.err = jpeg_std_error (&err.pub);
  err.pub.error_exit = jpeg_error_exit_cb;
  err.pub.emit_message = jpeg_emit_message_cb;
  err.message[0] = '\0';
  if (setjmp (err.jump)) {
    jpeg_destroy_decompress (&cinfo);
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s: corrupt or truncated JPEG: %s", path, err.message);
    return FALSE;
  }
  jpeg_create_decompress (&cinfo);
  jpeg_mem_src (&cinfo, d->file_data, d->file_size);
  jpeg_read_header (&cinfo, TRUE);

  if (cinfo.jpeg_color_space == JCS_CMYK
      || cinfo.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress (&cinfo);
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s is a CMYK JPEG; expected a grayscale or colour (YCbCr/RGB) JPEG",
        path);
    return FALSE;
  }
  if (!check_dimensions (
          path, "JPEG", cinfo.image_width, cinfo.image_height, error)) {
    jpeg_destroy_decompress (&cinfo);
    return FALSE;
  }

  gboolean gray = cinfo.num_components == 1;
  cinfo.out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress (&cinfo);

  int width = cinfo.output_width, height = cinfo.output_height;
  int channels = cinfo.output_components;
  size_t stride = (size_t) width * channels;
  if (!reserve_pixels (d, path, stride * height, error)) {
    jpeg_destroy_decompress (&cinfo);
    return FALSE;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = d->pixels + cinfo.output_scanline * stride;
    jpeg_read_scanlines (&cinfo, &row, 1);
  }
  jpeg_finish_decompress (&cinfo);
  jpeg_destroy_decompress (&cinfo);

  set_image (
      d, gray ? FER_PIXEL_GRAY8 : FER_PIXEL_RGB, width, height, channels);
  return TRUE;
}

/* ---- PNG ----------------------------------------------------------------- */

typedef struct
{
  const uint8_t *data;
  size_t size, pos;
  png_bytep *rows;
  char message[256];
} png_state;

static void
png_error_cb (png_structp png, png_const_charp msg)
{
  png_state *st = png_get_error_ptr (png);
  g_strlcpy (st->message, msg, sizeof st->message);
  png_longjmp (png, 1);
}

/* Warnings concern ancillary chunks (colour profiles, text) that neither the
 * decoder's output nor the written file depend on. */
static void
png_warning_cb (png_structp png, png_const_charp msg)
{
}

static void
png_read_cb (png_structp png, png_bytep out, size_t n)
{
  png_state *st = png_get_io_ptr (png);
  if (n > st->size - st->pos)
    png_error (png, "the file ends early");
  memcpy (out, st->data + st->pos, n);
  st->pos += n;
}

/* Sets up libpng's transformations so that every colour type and bit depth
 * comes out as 8-bit gray, RGB or RGBA; returns the channel count. */
static int
png_normalise (png_structp png, png_infop info)
{
  int color_type = png_get_color_type (png, info);
  int bit_depth = png_get_bit_depth (png, info);

  if (color_type == PNG_COLOR_TYPE_PALETTE)
    png_set_palette_to_rgb (png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
    png_set_expand_gray_1_2_4_to_8 (png);
  if ((color_type & PNG_COLOR_MASK_COLOR)
      && png_get_valid (png, info, PNG_INFO_tRNS))
    png_set_tRNS_to_alpha (png);
  if (!(color_type & PNG_COLOR_MASK_COLOR))
    png_set_strip_alpha (png);
  png_set_strip_16 (png);
  png_set_interlace_handling (png);
  png_read_update_info (png, info);

  int channels = png_get_channels (png, info);
  if ((channels != 1 && channels != 3 && channels != 4)
      || png_get_bit_depth (png, info) != 8)
    png_error (png, "unsupported colour type / bit depth combination");
  return channels;
}

static gboolean
decode_png (fer_decoded_image *d, const char *path, GError **error)
{
  png_state st = { .data = d->file_data, .size = d->file_size };
  png_structp png = png_create_read_struct (
      PNG_LIBPNG_VER_STRING, &st, png_error_cb, png_warning_cb);
  png_infop info = png ? png_create_info_struct (png) : NULL;
  if (info == NULL) {
    png_destroy_read_struct (&png, NULL, NULL);
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "%s: cannot allocate the PNG decoder", path);
    return FALSE;
  }
  if (setjmp (png_jmpbuf (png))) {
    png_destroy_read_struct (&png, &info, NULL);
    g_free (st.rows);
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s: corrupt or truncated PNG: %s", path, st.message);
    return FALSE;
  }
  png_set_read_fn (png, &st, png_read_cb);
  png_read_info (png, info);

  png_uint_32 width = png_get_image_width (png, info);
  png_uint_32 height = png_get_image_height (png, info);
  if (!check_dimensions (path, "PNG", width, height, error)) {
    png_destroy_read_struct (&png, &info, NULL);
    return FALSE;
  }
  int channels = png_normalise (png, info);
  size_t stride = (size_t) width * channels;
  if (!reserve_pixels (d, path, stride * height, error)) {
    png_destroy_read_struct (&png, &info, NULL);
    return FALSE;
  }

  st.rows = g_new (png_bytep, height);
  for (png_uint_32 y = 0; y < height; y++)
    st.rows[y] = d->pixels + y * stride;
  png_read_image (png, st.rows);
  png_read_end (png, NULL);
  png_destroy_read_struct (&png, &info, NULL);
  g_free (st.rows);

  set_image (d,
      channels == 1       ? FER_PIXEL_GRAY8
          : channels == 3 ? FER_PIXEL_RGB
                          : FER_PIXEL_RGBA,
      width, height, channels);
  return TRUE;
}

/* ---- public -------------------------------------------------------------- */

gboolean
fer_decoded_image_load (fer_decoded_image *d, const char *path, GError **error)
{
  g_return_val_if_fail (d != NULL && path != NULL, FALSE);

  memset (&d->image, 0, sizeof d->image);
  /* a file name is whatever bytes the file system holds: quoted in
   * messages */
  g_autofree char *name = fer_text_quote (path, 0);
  if (!read_file (d, path, name, error))
    return FALSE;

  const uint8_t *b = d->file_data;
  if (d->file_size >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
    return decode_jpeg (d, name, error);
  if (d->file_size >= sizeof png_signature
      && memcmp (b, png_signature, sizeof png_signature) == 0)
    return decode_png (d, name, error);

  if (d->file_size == 0)
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "image %s is empty; expected a JPEG or PNG file", name);
  else
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s is neither a JPEG nor a PNG file (it does not start with a JPEG "
        "or PNG signature)",
        name);
  return FALSE;
}

void
fer_decoded_image_clear (fer_decoded_image *d)
{
  if (d == NULL)
    return;
  g_free (d->pixels);
  g_free (d->file_data);
  memset (d, 0, sizeof *d);
}

static void write_error (GError **error, int code, const char *verb,
    const char *path, const char *format, ...) G_GNUC_PRINTF (5, 6);

/* "<verb> <path>: <what>", the path (bytes) shown as valid UTF-8. */
static void
write_error (GError **error, int code, const char *verb, const char *path,
    const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *what = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_autofree char *shown = fer_text_quote (path, 0);
  g_set_error (error, FER_ERROR, code, "%s %s: %s", verb, shown, what);
}

gboolean
fer_png_write (const char *path, const fer_image *img, GError **error)
{
  int color_type, channels;
  switch (img->format) {
    case FER_PIXEL_GRAY8:
      color_type = PNG_COLOR_TYPE_GRAY;
      channels = 1;
      break;
    case FER_PIXEL_RGB:
      color_type = PNG_COLOR_TYPE_RGB;
      channels = 3;
      break;
    case FER_PIXEL_RGBA:
      color_type = PNG_COLOR_TYPE_RGB_ALPHA;
      channels = 4;
      break;
    default:
      write_error (error, FER_ERROR_INVALID_ARGUMENT, "cannot write", path,
          "PNG output takes GRAY8, RGB or RGBA images (got pixel format %d)",
          img->format);
      return FALSE;
  }
  if (img->width <= 0 || img->height <= 0 || img->planes[0] == NULL
      || img->strides[0] < img->width * channels) {
    write_error (error, FER_ERROR_INVALID_ARGUMENT, "cannot write", path,
        "invalid %dx%d image (stride %d)", img->width, img->height,
        img->strides[0]);
    return FALSE;
  }

  FILE *f = fopen (path, "wb");
  if (f == NULL) {
    int e = errno;
    write_error (
        error, FER_ERROR_IO, "cannot create", path, "%s", g_strerror (e));
    return FALSE;
  }

  png_state st = { 0 };
  png_structp png = png_create_write_struct (
      PNG_LIBPNG_VER_STRING, &st, png_error_cb, png_warning_cb);
  png_infop info = png ? png_create_info_struct (png) : NULL;
  if (info == NULL) {
    png_destroy_write_struct (&png, NULL);
    fclose (f);
    write_error (error, FER_ERROR_NOMEM, "cannot write", path,
        "cannot allocate the PNG encoder");
    return FALSE;
  }
  if (setjmp (png_jmpbuf (png))) {
    png_destroy_write_struct (&png, &info);
    fclose (f);
    remove (path);
    write_error (error, FER_ERROR_IO, "cannot write", path, "%s", st.message);
    return FALSE;
  }
  png_init_io (png, f);
  png_set_IHDR (png, info, img->width, img->height, 8, color_type,
      PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
      PNG_FILTER_TYPE_DEFAULT);
  png_write_info (png, info);
  for (int y = 0; y < img->height; y++)
    png_write_row (png, img->planes[0] + (size_t) y * img->strides[0]);
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);

  if (fclose (f) != 0) {
    int e = errno;
    write_error (
        error, FER_ERROR_IO, "cannot write", path, "%s", g_strerror (e));
    return FALSE;
  }
  return TRUE;
}
