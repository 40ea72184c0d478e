/* Image files for the command-line tools: JPEG and PNG decoding into a
 * fer_image, and a small PNG writer.
 *
 * The decoder picks the format from the file's first bytes, never from its
 * name, and normalises every variant to 8 bits per sample: a JPEG becomes
 * GRAY8 (one component) or RGB; a PNG becomes GRAY8 (gray, with any alpha
 * dropped, since preprocessing ignores alpha), RGB or RGBA (palette expanded,
 * 16-bit samples stripped, interlacing undone). A corrupt, truncated or
 * unreadable file is a GError in the FER_ERROR domain (FER_ERROR_IO for the
 * file system, FER_ERROR_FORMAT for the contents) naming the path; neither
 * libjpeg nor libpng ever prints or exits. */
#ifndef FER_TOOLS_IMAGEIO_H
#define FER_TOOLS_IMAGEIO_H

#include <stddef.h>
#include <stdint.h>
#include <fer/image.h>

G_BEGIN_DECLS

/* A decoded image that owns its pixels. The file and pixel buffers are kept
 * across fer_decoded_image_load calls, so decoding thousands of files into
 * one fer_decoded_image allocates only when an image is larger than all
 * before it. Zero-initialise (or FER_DECODED_IMAGE_INIT) before first use. */
typedef struct
{
  fer_image image; /* planes[0] points into pixels; one tightly packed plane */
  uint8_t *pixels;
  size_t pixels_size;
  uint8_t *file_data; /* the last file read */
  size_t file_size;
  size_t file_capacity;
} fer_decoded_image;

#define FER_DECODED_IMAGE_INIT                                                 \
  {                                                                            \
    0                                                                          \
  }

/* Images above this many pixels are refused: a small header can claim a
 * gigapixel image, and the tools only ever read face crops and plots. */
#define FER_DECODED_IMAGE_MAX_PIXELS (1 << 26)

/* Replaces d's contents with the image in `path`. On failure d->image is
 * zeroed (the buffers stay for the next call) and error names the path. */
gboolean fer_decoded_image_load (
    fer_decoded_image *d, const char *path, GError **error);

/* Frees the buffers; d may be reused afterwards as if just initialised. */
void fer_decoded_image_clear (fer_decoded_image *d);

/* Writes img (GRAY8, RGB or RGBA; any stride) as an 8-bit PNG. */
gboolean fer_png_write (const char *path, const fer_image *img, GError **error);

G_END_DECLS

#endif
