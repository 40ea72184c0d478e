/* libfernn internals: what tests may observe of preprocessing scratch
 * memory, and the pieces of fer_preprocess that the backends' preprocess
 * ops (cpu/preprocess.c, cuda/preprocess.c) reuse, so that they validate
 * with the same messages and (on the device) filter with the same
 * weights. */
#ifndef FER_PREPROCESS_PRIVATE_H
#define FER_PREPROCESS_PRIVATE_H

#include <fer/image.h>

G_BEGIN_DECLS

/* How many times `s` has grown its buffers since fer_scratch_new: steady-state
 * preprocessing must leave this unchanged. */
guint fer_scratch_n_allocations (const fer_scratch *s);

/* fer_preprocess's checks of its arguments (the output aside). */
gboolean fer_preprocess_validate (const fer_image *img, const fer_view *view,
    const fer_input_spec *spec, GError **error);

/* Bytes of plane `plane` of a valid image, from its first byte to the end
 * of its last row (0 for a plane its format does not have). */
size_t fer_image_plane_bytes (const fer_image *img, int plane);

/* Byte size and R, G, B byte offsets of a packed RGB pixel format. */
void fer_preprocess_packed_layout (
    fer_pixel_format format, int *bytes_per_pixel, int rgb[3]);

/* One axis of fer_preprocess's separable filter for a view of that axis's
 * `length` from `origin`, S outputs, n_src source pixels: for output o,
 * the first source index first[o], count[o] taps and their weights at
 * weights[o * stride ...]; stride >= fer_preprocess_taps_stride (). */
int fer_preprocess_taps_stride (double length, int S, int n_src);
void fer_preprocess_axis_taps (int *first, int *count, float *weights,
    int stride, double origin, double length, int S, int n_src);

G_END_DECLS

#endif
