/* The CUDA backend's preprocess op: a batch of views of one frame into the
 * network's NHWC input on the device (preprocess.cu), as the CPU backend's
 * op (cpu/preprocess.c) builds it with fer_preprocess. The host validates
 * (fer_preprocess's checks and messages) and computes the views' filter
 * taps, one set per distinct column or row range, with nn/src/
 * preprocess.c's own code (fer_cuda_batch_plan_make); the frame's planes
 * then go up once (a copy per plane), the taps in one more copy, and one
 * kernel does the rest. The taps stay on the host on purpose: about 2 kB
 * and 2 to 6 us per TTA view (docs/gpu.md, tests/bench/bench_tta_plan.c),
 * and computing them in double on the host keeps them bit for bit
 * fer_preprocess's (a device would fuse multiply-adds). */
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

/* Views with equal axes share their taps: the first of views[i - 9 .. i]
 * (a face's TTA views are consecutive, at most FER_TTA_MAX) whose column
 * range (x, w), or row range (y, h) with `rows`, equals view i's. */
static int
first_same_axis (const fer_view *views, int i, gboolean rows)
{
  const fer_rect *b = &views[i].src;
  for (int j = MAX (0, i - (FER_TTA_MAX - 1));; j++) {
    const fer_rect *a = &views[j].src;
    if (rows ? a->y == b->y && a->h == b->h : a->x == b->x && a->w == b->w)
      return j;
  }
}

void
fer_cuda_taps_rebase (fer_cuda_taps *t, const void *from, const void *to)
{
#define REBASE(ptr, type)                                                      \
  ptr = (type) ((const char *) to                                              \
      + ((const char *) (ptr) - (const char *) from))
  REBASE (t->x_axes, const int *);
  REBASE (t->y_axes, const int *);
  REBASE (t->views, const int *);
  REBASE (t->x_weights, const float *);
  REBASE (t->y_weights, const float *);
#undef REBASE
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
  int stride_x = 1, stride_y = 1;
  for (int i = 0; i < n; i++) {
    stride_x = MAX (
        stride_x, fer_preprocess_taps_stride (views[i].src.w, S, img->width));
    stride_y = MAX (
        stride_y, fer_preprocess_taps_stride (views[i].src.h, S, img->height));
    p->n_x_axes += first_same_axis (views, i, FALSE) == i;
    p->n_y_axes += first_same_axis (views, i, TRUE) == i;
  }
  p->n_ints = (size_t) 2 * S * (p->n_x_axes + p->n_y_axes) + (size_t) 3 * n;
  p->n_floats = (size_t) S
      * ((size_t) p->n_x_axes * stride_x + (size_t) p->n_y_axes * stride_y);
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
  p->taps_bytes = bytes;

  int *x_axes = *buf;
  int *y_axes = x_axes + (size_t) 2 * S * p->n_x_axes;
  int *view_axes = y_axes + (size_t) 2 * S * p->n_y_axes;
  float *x_weights =
      (float *) ((char *) *buf + ALIGN16 (p->n_ints * sizeof (int)));
  float *y_weights = x_weights + (size_t) S * stride_x * p->n_x_axes;
  /* the padding goes up with the rest: defined bytes */
  memset (x_axes + p->n_ints, 0,
      (size_t) ((char *) x_weights - (char *) (x_axes + p->n_ints)));
  int nx = 0, ny = 0;
  for (int i = 0; i < n; i++) {
    const fer_rect *r = &views[i].src;
    const int jx = first_same_axis (views, i, FALSE);
    const int jy = first_same_axis (views, i, TRUE);
    if (jx == i) {
      int *t = x_axes + (size_t) nx * 2 * S;
      fer_preprocess_axis_taps (t, t + S,
          x_weights + (size_t) nx * S * stride_x, stride_x, r->x, r->w, S,
          img->width);
      view_axes[3 * i] = nx++;
    } else {
      view_axes[3 * i] = view_axes[3 * jx];
    }
    if (jy == i) {
      int *t = y_axes + (size_t) ny * 2 * S;
      fer_preprocess_axis_taps (t, t + S,
          y_weights + (size_t) ny * S * stride_y, stride_y, r->y, r->h, S,
          img->height);
      view_axes[3 * i + 1] = ny++;
    } else {
      view_axes[3 * i + 1] = view_axes[3 * jy + 1];
    }
    view_axes[3 * i + 2] = views[i].flip ? 1 : 0;
  }
  p->taps = (fer_cuda_taps){ x_axes, y_axes, view_axes, x_weights, y_weights,
    stride_x, stride_y };
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

  /* device: the planes, then the taps as the host buffer lays them out */
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
  if (!fer_cuda_upload_bytes (
          cb, dev + taps_at, cb->taps_host, p.taps_bytes, error))
    return FALSE;
  fer_cuda_taps_rebase (&p.taps, cb->taps_host, dev + taps_at);
  return CUDA_OK (fer_cuda_preprocess (cb->stream, out, &p.frame,
      (const unsigned char *) dev, &p.taps, n, spec->size, spec->channels,
      &p.norm));
}
