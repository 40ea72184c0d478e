/* libfernn: face-crop preprocessing and test-time-augmentation views.
 *
 * A face is a rectangle in a raw frame (any of the pixel formats below, with
 * strides). Preprocessing maps a *view* of that rectangle to the model input:
 * resample (bilinear; when shrinking, the filter widens to cover the source
 * footprint, like PIL's antialiased BILINEAR) -> channels (luma for
 * grayscale models, RGB for colour models) -> (x/255 - mean) / std.
 * Samples outside the frame repeat the nearest edge pixel.
 *
 * Thread safety: every function here may be called from any number of
 * threads at once; they share no state. The exception is a fer_scratch,
 * which serves one call at a time: give each thread its own (or NULL). */
#ifndef FER_IMAGE_H
#define FER_IMAGE_H

#include <stdint.h>
#include <fer/error.h>

G_BEGIN_DECLS

typedef enum
{
  FER_PIXEL_GRAY8,
  FER_PIXEL_RGB,
  FER_PIXEL_BGR,
  FER_PIXEL_RGBA,
  FER_PIXEL_BGRA,
  FER_PIXEL_RGBX,
  FER_PIXEL_BGRX,
  FER_PIXEL_XRGB,
  FER_PIXEL_ARGB,
  FER_PIXEL_I420, /* planes: Y, U, V; chroma subsampled 2x2 */
  FER_PIXEL_NV12, /* planes: Y, interleaved UV; chroma subsampled 2x2 */
  FER_PIXEL_N_FORMATS
} fer_pixel_format;

/* A frame. Planes and strides as in GstVideoFrame; `full_range` says whether
 * YUV luma spans 0..255 (JPEG) or 16..235 (video, the default for I420/NV12
 * from a camera or decoder). YUV->RGB uses BT.601 coefficients. */
typedef struct
{
  fer_pixel_format format;
  int width, height;
  const uint8_t *planes[3];
  int strides[3];
  gboolean full_range;
} fer_image;

/* A rectangle in frame pixels. */
typedef struct
{
  float x, y, w, h;
} fer_rect;

/* One view of a face: the source rectangle actually resampled, and whether
 * the result is mirrored left-right. */
typedef struct
{
  fer_rect src;
  gboolean flip;
} fer_view;

/* What the model wants. */
typedef struct
{
  int size;      /* output width = height */
  int channels;  /* 1 or 3 */
  float mean[3]; /* per channel, on the 0..1 scale */
  float std[3];
} fer_input_spec;

#define FER_TTA_MAX 10
/* The views the feremotion element and fer-classify use unless told. */
#define FER_TTA_DEFAULT 5

/* Growable scratch memory so that steady-state preprocessing allocates
 * nothing. May be NULL (then each call allocates and frees its own). */
typedef struct fer_scratch fer_scratch;
FER_API fer_scratch *fer_scratch_new (void);
FER_API void fer_scratch_free (fer_scratch *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (fer_scratch, fer_scratch_free)

/* Checks that planes/strides/size are usable for the format. */
FER_API gboolean fer_image_validate (const fer_image *img, GError **error);

/* Writes spec->channels x spec->size x spec->size floats (CHW) to `out`.
 * Fails (naming the problem) on an invalid image or an empty rectangle. */
FER_API gboolean fer_preprocess (const fer_image *img, const fer_view *view,
    const fer_input_spec *spec, float *out, fer_scratch *scratch,
    GError **error);

/* The T test-time-augmentation views of a face rectangle, written to
 * views[0..T-1]. Fails (FALSE, with error) when T is outside 1..10, the
 * rectangle is empty or not finite, or the sizes are out of range.
 *
 * input_size is the model's fer.input_size; crop_size is fer.crop_size
 * (0 or == input_size: no crops). Views:
 * - without crops (each a transform of the face rectangle, in this order):
 *   identity, flip, zoom-in 10%, shift right-down by 1/24 of the face,
 *   shift left-up by 1/24, zoom-in 10% + flip, shift right-up,
 *   shift left-down, zoom-out 10%, zoom-out 10% + flip;
 * - with crops (the model input is crop_size): the ten-crop scheme on the
 *   face resized to input_size: centre, centre flipped, top-left, top-left
 *   flipped, top-right, top-right flipped, bottom-left, bottom-left
 *   flipped, bottom-right, bottom-right flipped. */
FER_API gboolean fer_tta_views (const fer_rect *face, int input_size,
    int crop_size, int T, fer_view *views, GError **error);

G_END_DECLS

#endif
