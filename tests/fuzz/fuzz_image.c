/* libFuzzer target: the tools' JPEG/PNG decoder (nn/tools/imageio.c) on a
 * file of fuzzed bytes. A decoded image must be consistent (size within
 * the pixel limit, every pixel readable); a refusal must be a clean message
 * naming the file. One fer_decoded_image is reused across inputs, as the
 * dataset loader does. */
#include "fuzz-common.h"

#include "imageio.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static fer_decoded_image d = FER_DECODED_IMAGE_INIT;
  GError *error = NULL;
  const char *path = fuzz_write_file ("image", data, size);
  if (!fer_decoded_image_load (&d, path, &error)) {
    fuzz_check_error (error, path);
    return 0;
  }
  const fer_image *img = &d.image;
  if (img->width < 1 || img->height < 1
      || (int64_t) img->width * img->height > FER_DECODED_IMAGE_MAX_PIXELS)
    abort ();
  /* Touch the last byte of every row: ASan reports a short buffer. */
  volatile uint8_t sink = 0;
  for (int y = 0; y < img->height; y++)
    sink ^= img->planes[0][(size_t) y * img->strides[0]
        + (size_t) img->strides[0] - 1];
  (void) sink;
  return 0;
}
