/* The CUDA backend's preprocess op: a batch of views of one frame into the
 * network's NHWC input on the device (preprocess.cu), as the CPU backend's
 * op (cpu/preprocess.c) builds it with fer_preprocess. The host validates
 * (fer_preprocess's checks and messages) and computes each view's filter
 * taps with nn/src/preprocess.c's own code (fer_cuda_batch_plan_make); the
 * frame's planes then go up once, the taps in one more copy, and one
 * kernel does the rest. The taps stay on the host on purpose: they are a
 * few kilobytes per view, computed in microseconds (docs/gpu.md has the
 * measurement, tests/bench/bench_tta_plan.c), and computing them in double
 * on the host keeps them bit for bit fer_preprocess's (a device would
 * fuse multiply-adds). */
#include "cuda/backend_cuda.h"

#include <string.h>

#include "preprocess-private.h"

#define ALIGN16(n) (((n) + 15) / 16 * 16)

static void
describe_frame (fer_cuda_frame *f, const fer_image *img)
{
  memset (f, 0, sizeof *f);
  f->width = img->width;
  f->height = img->height;
  f->full_range = img->full_range;
  switch (img->format) {
    case FER_PIXEL_GRAY8:
      f->kind = FER_CUDA_FRAME_GRAY;
      break;
    case FER_PIXEL_I420:
      f->kind = FER_CUDA_FRAME_I420;
      break;
    case FER_PIXEL_NV12:
      f->kind = FER_CUDA_FRAME_NV12;
      break;
    default:
      f->kind = FER_CUDA_FRAME_PACKED;
      fer_preprocess_packed_layout (img->format, &f->bytes_per_pixel, f->rgb);
      break;
  }
}

gboolean
fer_cuda_batch_plan_make (fer_cuda_batch_plan *p, void **buf, size_t *cap,
    const fer_image *img, const fer_view *views, int n,
    const fer_input_spec *spec, GError **error)
{
  const int S = spec->size;
  size_t bytes;

  memset (p, 0, sizeof *p);
  for (int i = 0; i < n; i++)
    if (!fer_preprocess_validate (img, &views[i], spec, error))
      return FALSE;
  describe_frame (&p->frame, img);
  for (int k = 0; k < 3; k++) {
    p->plane_bytes[k] = fer_image_plane_bytes (img, k);
    p->frame.strides[k] = img->strides[k];
    p->frame.offsets[k] = p->frame_bytes;
    p->frame_bytes += ALIGN16 (p->plane_bytes[k]);
  }
  p->stride_x = p->stride_y = 1;
  for (int i = 0; i < n; i++) {
    p->stride_x = MAX (p->stride_x,
        fer_preprocess_taps_stride (views[i].src.w, S, img->width));
    p->stride_y = MAX (p->stride_y,
        fer_preprocess_taps_stride (views[i].src.h, S, img->height));
  }
  p->n_ints = (size_t) n * 4 * S + (size_t) n;
  p->n_floats = (size_t) n * S * (p->stride_x + p->stride_y);
  bytes = ALIGN16 (p->n_ints * sizeof (int)) + p->n_floats * sizeof (float);
  if (bytes > *cap) {
    void *grown = g_try_realloc (*buf, bytes);
    if (!grown) {
      g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
          "cuda backend: cannot allocate the filter taps of %d views", n);
      return FALSE;
    }
    *buf = grown;
    *cap = bytes;
  }
  p->ints = *buf;
  p->flips = p->ints + (size_t) n * 4 * S;
  p->floats = (float *) ((char *) *buf + ALIGN16 (p->n_ints * sizeof (int)));
  p->taps_bytes = bytes;
  /* the padding goes up with the rest: defined bytes */
  memset (p->ints + p->n_ints, 0,
      (size_t) ((char *) p->floats - (char *) (p->ints + p->n_ints)));
  for (int i = 0; i < n; i++) {
    const fer_view *v = &views[i];
    int *t = p->ints + (size_t) i * 4 * S;
    float *w = p->floats + (size_t) i * S * (p->stride_x + p->stride_y);
    fer_preprocess_axis_taps (
        t, t + S, w, p->stride_x, v->src.x, v->src.w, S, img->width);
    fer_preprocess_axis_taps (t + 2 * S, t + 3 * S,
        w + (size_t) S * p->stride_x, p->stride_y, v->src.y, v->src.h, S,
        img->height);
    p->flips[i] = v->flip ? 1 : 0;
  }
  for (int c = 0; c < spec->channels; c++) {
    /* fer_preprocess's (v / 255 - mean) / std as one multiply-add */
    p->norm.gain[c] = 1.0f / (255.0f * spec->std[c]);
    p->norm.bias[c] = -spec->mean[c] / spec->std[c];
  }
  return TRUE;
}

gboolean
fer_cuda_op_preprocess (fer_backend *be, float *out, const fer_image *img,
    const fer_view *views, int n, const fer_input_spec *spec, GError **error)
{
  cuda_backend *cb = (cuda_backend *) be;
  fer_cuda_batch_plan p;

  if (n <= 0)
    return TRUE;
  if (!fer_cuda_batch_plan_make (
          &p, &cb->taps_host, &cb->taps_host_bytes, img, views, n, spec, error))
    return FALSE;

  /* device: the planes, then the taps as the host buffer lays them out
   * (ints and flips, padding, weights) */
  const size_t taps_at = p.frame_bytes;
  if (!fer_cuda_enter (cb, error)
      || !fer_cuda_grow_device (
          cb, &cb->frame, &cb->frame_bytes, taps_at + p.taps_bytes, error))
    return FALSE;
  char *dev = cb->frame;
  for (int k = 0; k < 3; k++)
    if (p.plane_bytes[k]
        && !fer_cuda_upload_bytes (cb, dev + p.frame.offsets[k], img->planes[k],
            p.plane_bytes[k], error))
      return FALSE;
  const int *dev_ints = (const int *) (dev + taps_at);
  const float *dev_floats =
      (const float *) (dev + taps_at + ((char *) p.floats - (char *) p.ints));
  return fer_cuda_upload_bytes (cb, dev + taps_at, p.ints, p.taps_bytes, error)
      && CUDA_OK (fer_cuda_preprocess (cb->stream, out, &p.frame,
          (const unsigned char *) dev, dev_ints, dev_floats,
          dev_ints + (p.flips - p.ints), n, spec->size, spec->channels,
          p.stride_x, p.stride_y, &p.norm));
}
