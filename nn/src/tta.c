/* libfernn: test-time-augmentation views (contract in fer/image.h, the
 * exact table in docs/tta.md).
 *
 * Shifts are stated as what the viewer sees: "shift right" moves the face
 * content right in the model input, which means moving the source window
 * left (src.x decreases). Zooms scale the source window about the face
 * centre: zoom-in 10% divides its size by 1.1, zoom-out multiplies by 1.1. */

#include <math.h>

#include <fer/image.h>

#define SHIFT (1.0 / 24.0)
#define ZOOM_IN (1.0 / 1.1)
#define ZOOM_OUT 1.1

/* A view without crops: the source window is the face scaled by `zoom`
 * about its centre, then moved by (dx, dy) face widths / heights. */
typedef struct
{
  double zoom, dx, dy;
  gboolean flip;
} face_transform;

static const face_transform face_transforms[FER_TTA_MAX] = {
  { 1.0, 0.0, 0.0, FALSE },       /* identity */
  { 1.0, 0.0, 0.0, TRUE },        /* flip */
  { ZOOM_IN, 0.0, 0.0, FALSE },   /* zoom-in 10% */
  { 1.0, -SHIFT, -SHIFT, FALSE }, /* content right-down */
  { 1.0, SHIFT, SHIFT, FALSE },   /* content left-up */
  { ZOOM_IN, 0.0, 0.0, TRUE },    /* zoom-in 10% + flip */
  { 1.0, -SHIFT, SHIFT, FALSE },  /* content right-up */
  { 1.0, SHIFT, -SHIFT, FALSE },  /* content left-down */
  { ZOOM_OUT, 0.0, 0.0, FALSE },  /* zoom-out 10% */
  { ZOOM_OUT, 0.0, 0.0, TRUE },   /* zoom-out 10% + flip */
};

/* Ten-crop positions along one axis: start, centre or end of the margin
 * input_size - crop_size. */
typedef enum
{
  CROP_START,
  CROP_CENTRE,
  CROP_END
} crop_position;

static const struct
{
  crop_position x, y;
  gboolean flip;
} ten_crops[FER_TTA_MAX] = {
  { CROP_CENTRE, CROP_CENTRE, FALSE },
  { CROP_CENTRE, CROP_CENTRE, TRUE },
  { CROP_START, CROP_START, FALSE }, /* top-left */
  { CROP_START, CROP_START, TRUE },
  { CROP_END, CROP_START, FALSE }, /* top-right */
  { CROP_END, CROP_START, TRUE },
  { CROP_START, CROP_END, FALSE }, /* bottom-left */
  { CROP_START, CROP_END, TRUE },
  { CROP_END, CROP_END, FALSE }, /* bottom-right */
  { CROP_END, CROP_END, TRUE },
};

/* Offsets are whole model pixels; an odd margin puts the centre crop
 * half a pixel up-left of the true centre. */
static int
crop_offset (crop_position p, int margin)
{
  switch (p) {
    case CROP_START:
      return 0;
    case CROP_CENTRE:
      return margin / 2;
    default:
      return margin;
  }
}

static fer_view
face_transform_view (const fer_rect *face, const face_transform *t)
{
  double w = face->w * t->zoom;
  double h = face->h * t->zoom;
  fer_view v;

  v.src.x = (float) (face->x + (face->w - w) / 2.0 + t->dx * face->w);
  v.src.y = (float) (face->y + (face->h - h) / 2.0 + t->dy * face->h);
  v.src.w = (float) w;
  v.src.h = (float) h;
  v.flip = t->flip;
  return v;
}

/* The face maps to input_size x input_size model pixels; a crop at model
 * pixel offset (ox, oy) is the matching part of the face rectangle. */
static fer_view
ten_crop_view (const fer_rect *face, int input_size, int crop_size, int i)
{
  int margin = input_size - crop_size;
  int ox = crop_offset (ten_crops[i].x, margin);
  int oy = crop_offset (ten_crops[i].y, margin);
  double sx = (double) face->w / input_size;
  double sy = (double) face->h / input_size;
  fer_view v;

  v.src.x = (float) (face->x + ox * sx);
  v.src.y = (float) (face->y + oy * sy);
  v.src.w = (float) (crop_size * sx);
  v.src.h = (float) (crop_size * sy);
  v.flip = ten_crops[i].flip;
  return v;
}

gboolean
fer_tta_views (const fer_rect *face, int input_size, int crop_size, int T,
    fer_view *views, GError **error)
{
  gboolean crops;

  if (T < 1 || T > FER_TTA_MAX) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "TTA views T=%d: expected 1..%d", T, FER_TTA_MAX);
    return FALSE;
  }
  if (!face || !views) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "fer_tta_views: %s is NULL", !face ? "face" : "views");
    return FALSE;
  }
  if (!(face->w > 0 && face->h > 0) || !isfinite (face->x)
      || !isfinite (face->y) || !isfinite (face->w) || !isfinite (face->h)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "face rectangle (x=%g, y=%g, w=%g, h=%g) is empty or not finite: "
        "expected finite values with w > 0 and h > 0",
        face->x, face->y, face->w, face->h);
    return FALSE;
  }
  if (input_size <= 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "model input size %d: expected > 0", input_size);
    return FALSE;
  }
  if (crop_size < 0 || crop_size > input_size) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "crop size %d: expected 0 (no crops) or 1..%d (the input size)",
        crop_size, input_size);
    return FALSE;
  }

  crops = crop_size != 0 && crop_size != input_size;
  for (int i = 0; i < T; i++)
    views[i] = crops ? ten_crop_view (face, input_size, crop_size, i)
                     : face_transform_view (face, &face_transforms[i]);
  return TRUE;
}
