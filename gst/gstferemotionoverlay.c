/**
 * SECTION:element-feremotionoverlay
 * @title: feremotionoverlay
 * @see_also: feremotion, feremotionexport
 *
 * Draws what feremotion found. For every #GstFerEmotionMeta on a buffer it
 * draws the face box, a tag with the label and its confidence above the box
 * (inside it when the box touches the top of the frame; with
 * #GstFerEmotionOverlay:show-track-id, the face's track id before the label)
 * and, with #GstFerEmotionOverlay:show-bars, one bar per class with its
 * name beside the box. Each class has a fixed colour.
 *
 * Only the pixels of those boxes, tags and bars are written. Buffers without
 * emotion metas pass through as they are: not copied, not even mapped.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=300 ! videoconvert ! feremotion model=model.safetensors ! videoconvert ! feremotionoverlay show-bars=true ! videoconvert ! autovideosink
 * ]| Classifies the whole frame and draws the result with per-class bars.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstferemotionoverlay.h"

#include <cairo.h>
#include <gst/video/video.h>
#include <math.h>

#include "feremotion/gstferemotionmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_fer_emotion_overlay_debug);
#define GST_CAT_DEFAULT gst_fer_emotion_overlay_debug

#define DEFAULT_SHOW_BARS FALSE
#define DEFAULT_LINE_WIDTH 2
#define DEFAULT_FONT_SIZE 0
#define DEFAULT_SHOW_CONFIDENCE TRUE
#define DEFAULT_SHOW_TRACK_ID FALSE

/* Padding inside the probability panel, and its distance from the box. */
#define BARS_PAD 3
#define BARS_GAP 2

enum
{
  PROP_0,
  PROP_SHOW_BARS,
  PROP_LINE_WIDTH,
  PROP_FONT_SIZE,
  PROP_SHOW_CONFIDENCE,
  PROP_SHOW_TRACK_ID,
};

typedef struct
{
  gboolean show_bars;
  guint line_width;
  guint font_size;
  gboolean show_confidence;
  gboolean show_track_id;
} GstFerEmotionOverlaySettings;

/* Where one face is drawn. The tag and panel rectangles are where they were
 * placed, which may reach past the frame when the frame is smaller than
 * them; what gets written is always clipped to the frame. */
typedef struct
{
  const GstFerEmotionMeta *meta;
  cairo_rectangle_int_t box; /* clipped to the frame */
  gint line_width;

  gboolean has_tag;
  cairo_rectangle_int_t tag;
  gint font_size;
  gdouble text_x, text_y; /* baseline origin of the tag text */
  gchar prefix[16];       /* "#3 ", or empty without show-track-id */
  gchar suffix[8];        /* " 87%", or empty without show-confidence */

  gboolean has_bars;
  cairo_rectangle_int_t bars;
  gint bar_font_size;
  gdouble bar_ascent;
  gint row_height, name_width, bar_length;
  guint32 named; /* bit i: class_labels[i] can be drawn */
} GstFerEmotionFaceLayout;

struct _GstFerEmotionOverlay
{
  GstVideoFilter parent;

  /* under the object lock */
  GstFerEmotionOverlaySettings settings;

  /* Streaming thread only. Every frame is drawn on this frame-sized ARGB32
   * canvas, whatever the video format: the touched rectangles are copied
   * in, drawn on, and copied back. Canvas and context live until the frame
   * size changes; the arrays only ever grow, so a steady stream allocates
   * nothing. */
  cairo_surface_t *canvas;
  cairo_t *cr;
  GArray *faces; /* of GstFerEmotionFaceLayout */
  GArray *rects; /* of cairo_rectangle_int_t */
};

#define OVERLAY_FORMATS                                                        \
  "{ BGRx, BGRA, RGBx, RGBA, xRGB, ARGB, xBGR, ABGR, RGB, BGR }"

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (OVERLAY_FORMATS)));

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (OVERLAY_FORMATS)));

#define gst_fer_emotion_overlay_parent_class parent_class
G_DEFINE_TYPE (
    GstFerEmotionOverlay, gst_fer_emotion_overlay, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (feremotionoverlay, "feremotionoverlay",
    GST_RANK_NONE, GST_TYPE_FER_EMOTION_OVERLAY);

/* Indexed by class id. Chosen so that the FER2013 classes in their default
 * (alphabetical) order read naturally: angry red, disgust green, fear
 * purple, happy yellow, neutral grey, sad blue, surprise orange. */
static const gdouble palette[][3] = {
  { 0.84, 0.15, 0.16 },
  { 0.17, 0.63, 0.17 },
  { 0.58, 0.40, 0.74 },
  { 1.00, 0.80, 0.00 },
  { 0.50, 0.50, 0.50 },
  { 0.12, 0.47, 0.71 },
  { 1.00, 0.50, 0.05 },
  { 0.55, 0.34, 0.29 },
  { 0.89, 0.47, 0.76 },
  { 0.09, 0.75, 0.81 },
};

static const gdouble *
class_colour (gint class_id)
{
  return palette[(guint) MAX (class_id, 0) % G_N_ELEMENTS (palette)];
}

/* A probability clamped to [0, 1]; NaN (from a broken model) reads as 0. */
static gfloat
unit (gfloat p)
{
  return p > 0.0f ? MIN (p, 1.0f) : 0.0f;
}

static cairo_rectangle_int_t
rect (gint x, gint y, gint width, gint height)
{
  cairo_rectangle_int_t r = { x, y, width, height };

  return r;
}

static gboolean
clip_to_frame (cairo_rectangle_int_t *r, gint width, gint height)
{
  gint x1 = MIN (r->x + r->width, width), y1 = MIN (r->y + r->height, height);

  r->x = MAX (r->x, 0);
  r->y = MAX (r->y, 0);
  r->width = x1 - r->x;
  r->height = y1 - r->y;
  return r->width > 0 && r->height > 0;
}

/* The outline as four filled strips inside the box: pixel-exact, so the
 * rectangles copied back are exactly the pixels painted. */
static void
box_strips (const GstFerEmotionFaceLayout *f, cairo_rectangle_int_t s[4])
{
  const cairo_rectangle_int_t *b = &f->box;
  gint lw = f->line_width, side = MAX (b->height - 2 * lw, 0);

  s[0] = rect (b->x, b->y, b->width, lw);
  s[1] = rect (b->x, b->y + b->height - lw, b->width, lw);
  s[2] = rect (b->x, b->y + lw, lw, side);
  s[3] = rect (b->x + b->width - lw, b->y + lw, lw, side);
}

static void
gst_fer_emotion_overlay_layout_bars (GstFerEmotionOverlay *self,
    GstFerEmotionFaceLayout *f, gint width, gint height)
{
  const GstFerEmotionMeta *m = f->meta;
  const cairo_rectangle_int_t *b = &f->box;
  cairo_font_extents_t fe;
  cairo_text_extents_t te;
  gdouble name_width = 0.0;

  f->bar_font_size = MAX (f->font_size * 3 / 4, 8);
  cairo_set_font_size (self->cr, f->bar_font_size);
  cairo_font_extents (self->cr, &fe);
  f->named = 0;
  for (guint i = 0; i < m->n_classes; i++) {
    const gchar *name = m->class_labels[i];

    /* invalid UTF-8 would put the context in an error state for good */
    if (!name || !g_utf8_validate (name, -1, NULL))
      continue;
    f->named |= 1u << i;
    cairo_text_extents (self->cr, name, &te);
    name_width = MAX (name_width, te.x_advance);
  }
  f->bar_ascent = fe.ascent;
  f->row_height = (gint) ceil (fe.ascent + fe.descent) + 2;
  f->name_width = (gint) ceil (name_width);
  f->bar_length = 5 * f->bar_font_size;

  f->bars.width = 3 * BARS_PAD + f->name_width + f->bar_length;
  f->bars.height = 2 * BARS_PAD + (gint) m->n_classes * f->row_height;
  /* right of the box, else left of it, else over it at the frame's edge */
  if (b->x + b->width + BARS_GAP + f->bars.width <= width)
    f->bars.x = b->x + b->width + BARS_GAP;
  else if (b->x - BARS_GAP - f->bars.width >= 0)
    f->bars.x = b->x - BARS_GAP - f->bars.width;
  else
    f->bars.x = MAX (width - f->bars.width, 0);
  f->bars.y = MAX (MIN (b->y, height - f->bars.height), 0);
}

/* Returns FALSE when nothing of the face is inside the frame. */
static gboolean
gst_fer_emotion_overlay_layout_face (GstFerEmotionOverlay *self,
    const GstFerEmotionOverlaySettings *s, const GstFerEmotionMeta *m,
    gint width, gint height, GstFerEmotionFaceLayout *f)
{
  gint x0 = (gint) CLAMP ((gint64) m->x, 0, width);
  gint y0 = (gint) CLAMP ((gint64) m->y, 0, height);
  gint x1 = (gint) CLAMP ((gint64) m->x + m->w, 0, width);
  gint y1 = (gint) CLAMP ((gint64) m->y + m->h, 0, height);

  if (x1 <= x0 || y1 <= y0)
    return FALSE;

  f->meta = m;
  f->box = rect (x0, y0, x1 - x0, y1 - y0);
  f->line_width = MIN ((gint) s->line_width, MIN (x1 - x0, y1 - y0));
  /* whole pixels: cairo caches a scaled font per size, and auto sizes
   * would otherwise differ with every jitter of the box */
  f->font_size =
      s->font_size ? (gint) s->font_size : CLAMP ((y1 - y0) / 10, 10, 40);

  f->has_tag = m->label && g_utf8_validate (m->label, -1, NULL);
  if (f->has_tag) {
    cairo_font_extents_t fe;
    cairo_text_extents_t te;
    gint pad = MAX (2, f->font_size / 4);
    gdouble text_width;

    f->prefix[0] = '\0';
    if (s->show_track_id && m->track_id >= 0)
      g_snprintf (f->prefix, sizeof f->prefix, "#%d ", m->track_id);
    f->suffix[0] = '\0';
    if (s->show_confidence)
      g_snprintf (f->suffix, sizeof f->suffix, " %d%%",
          (gint) (unit (m->confidence) * 100.0f + 0.5f));
    cairo_set_font_size (self->cr, f->font_size);
    cairo_font_extents (self->cr, &fe);
    cairo_text_extents (self->cr, f->prefix, &te);
    text_width = te.x_advance;
    cairo_text_extents (self->cr, m->label, &te);
    text_width += te.x_advance;
    cairo_text_extents (self->cr, f->suffix, &te);
    text_width += te.x_advance;

    f->tag.width = (gint) ceil (text_width) + 2 * pad;
    f->tag.height = (gint) ceil (fe.ascent + fe.descent) + 2 * pad;
    f->tag.x = MAX (MIN (x0, width - f->tag.width), 0);
    f->tag.y = y0 >= f->tag.height ? y0 - f->tag.height : y0;
    f->text_x = f->tag.x + pad;
    f->text_y = f->tag.y + pad + fe.ascent;
  }

  f->has_bars = s->show_bars && m->n_classes > 0
      && m->n_classes <= GST_FER_EMOTION_MAX_CLASSES;
  if (f->has_bars)
    gst_fer_emotion_overlay_layout_bars (self, f, width, height);
  return TRUE;
}

static void
gst_fer_emotion_overlay_draw_face (
    cairo_t *cr, const GstFerEmotionFaceLayout *f)
{
  const GstFerEmotionMeta *m = f->meta;
  const gdouble *c = class_colour (m->label_id);
  cairo_rectangle_int_t strips[4];

  box_strips (f, strips);
  cairo_set_source_rgb (cr, c[0], c[1], c[2]);
  for (guint i = 0; i < G_N_ELEMENTS (strips); i++)
    cairo_rectangle (
        cr, strips[i].x, strips[i].y, strips[i].width, strips[i].height);
  cairo_fill (cr);

  if (f->has_tag) {
    gboolean light = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 0.6;

    cairo_save (cr);
    cairo_rectangle (cr, f->tag.x, f->tag.y, f->tag.width, f->tag.height);
    cairo_clip (cr);
    cairo_set_source_rgb (cr, c[0], c[1], c[2]);
    cairo_paint (cr);
    cairo_set_source_rgb (cr, !light, !light, !light);
    cairo_set_font_size (cr, f->font_size);
    cairo_move_to (cr, f->text_x, f->text_y);
    cairo_show_text (cr, f->prefix);
    cairo_show_text (cr, m->label);
    cairo_show_text (cr, f->suffix);
    cairo_restore (cr);
  }

  if (f->has_bars) {
    gdouble bar_x = f->bars.x + 2 * BARS_PAD + f->name_width;
    gdouble bar_h = f->row_height - 4;

    cairo_save (cr);
    cairo_rectangle (cr, f->bars.x, f->bars.y, f->bars.width, f->bars.height);
    cairo_clip (cr);
    cairo_set_source_rgba (cr, 0.0, 0.0, 0.0, 0.6);
    cairo_paint (cr);
    cairo_set_font_size (cr, f->bar_font_size);
    for (guint i = 0; i < m->n_classes; i++) {
      gdouble row_y = f->bars.y + BARS_PAD + (gdouble) i * f->row_height;
      const gdouble *ci = class_colour ((gint) i);

      if (f->named & (1u << i)) {
        cairo_set_source_rgb (cr, 1.0, 1.0, 1.0);
        cairo_move_to (cr, f->bars.x + BARS_PAD, row_y + 1 + f->bar_ascent);
        cairo_show_text (cr, m->class_labels[i]);
      }
      cairo_set_source_rgba (cr, 1.0, 1.0, 1.0, 0.25);
      cairo_rectangle (cr, bar_x, row_y + 2, f->bar_length, bar_h);
      cairo_fill (cr);
      cairo_set_source_rgb (cr, ci[0], ci[1], ci[2]);
      cairo_rectangle (cr, bar_x, row_y + 2,
          f->bar_length * unit (m->probabilities[i]), bar_h);
      cairo_fill (cr);
    }
    cairo_restore (cr);
  }
}

/* A packed 8-bit RGB frame, any component order. */
typedef struct
{
  guint8 *data;
  gint stride, pstride;
  gint r, g, b, a; /* byte offsets in a pixel; a < 0: no alpha */
} PackedRgb;

static inline guint32
premultiply (const PackedRgb *px, const guint8 *p)
{
  guint a = px->a >= 0 ? p[px->a] : 255;

  return a << 24 | (p[px->r] * a + 127) / 255 << 16
      | (p[px->g] * a + 127) / 255 << 8 | (p[px->b] * a + 127) / 255;
}

static inline guint8
unpremultiply (guint c, guint a)
{
  return (guint8) MIN ((c * 255 + a / 2) / a, 255);
}

static void
load_rect (const PackedRgb *px, guint8 *canvas, gint canvas_stride,
    const cairo_rectangle_int_t *r)
{
  for (gint y = r->y; y < r->y + r->height; y++) {
    const guint8 *p =
        px->data + (gsize) y * px->stride + (gsize) r->x * px->pstride;
    guint32 *c = (guint32 *) (canvas + (gsize) y * canvas_stride) + r->x;

    for (gint x = 0; x < r->width; x++, p += px->pstride)
      c[x] = premultiply (px, p);
  }
}

/* Pixels that came out of the canvas as they went in are not written, so
 * that the premultiply round trip cannot alter untouched translucent ones. */
static void
store_rect (const PackedRgb *px, const guint8 *canvas, gint canvas_stride,
    const cairo_rectangle_int_t *r)
{
  for (gint y = r->y; y < r->y + r->height; y++) {
    guint8 *p = px->data + (gsize) y * px->stride + (gsize) r->x * px->pstride;
    const guint32 *c =
        (const guint32 *) (canvas + (gsize) y * canvas_stride) + r->x;

    for (gint x = 0; x < r->width; x++, p += px->pstride) {
      guint32 v = c[x];
      guint a = v >> 24;

      if (v == premultiply (px, p))
        continue;
      if (px->a >= 0)
        p[px->a] = (guint8) a;
      if (a == 0) {
        p[px->r] = p[px->g] = p[px->b] = 0;
        continue;
      }
      p[px->r] = unpremultiply ((v >> 16) & 0xff, a);
      p[px->g] = unpremultiply ((v >> 8) & 0xff, a);
      p[px->b] = unpremultiply (v & 0xff, a);
    }
  }
}

static void
add_rect (GArray *rects, cairo_rectangle_int_t r, gint width, gint height)
{
  if (clip_to_frame (&r, width, height))
    g_array_append_val (rects, r);
}

static GstFlowReturn
gst_fer_emotion_overlay_transform_frame_ip (
    GstVideoFilter *filter, GstVideoFrame *frame)
{
  GstFerEmotionOverlay *self = GST_FER_EMOTION_OVERLAY (filter);
  gint width = GST_VIDEO_FRAME_WIDTH (frame);
  gint height = GST_VIDEO_FRAME_HEIGHT (frame);
  GstFerEmotionOverlaySettings settings;
  GstFerEmotionFaceLayout layout;
  GstFerEmotionMeta *meta;
  gpointer state = NULL;
  PackedRgb px;
  guint8 *canvas;
  gint canvas_stride;
  cairo_status_t status;

  GST_OBJECT_LOCK (self);
  settings = self->settings;
  GST_OBJECT_UNLOCK (self);

  g_array_set_size (self->faces, 0);
  g_array_set_size (self->rects, 0);
  cairo_save (self->cr);
  while ((meta = gst_buffer_iterate_fer_emotion_meta (frame->buffer, &state)))
    if (gst_fer_emotion_overlay_layout_face (
            self, &settings, meta, width, height, &layout))
      g_array_append_val (self->faces, layout);

  for (guint i = 0; i < self->faces->len; i++) {
    const GstFerEmotionFaceLayout *f =
        &g_array_index (self->faces, GstFerEmotionFaceLayout, i);
    cairo_rectangle_int_t strips[4];

    box_strips (f, strips);
    for (guint s = 0; s < G_N_ELEMENTS (strips); s++)
      add_rect (self->rects, strips[s], width, height);
    if (f->has_tag)
      add_rect (self->rects, f->tag, width, height);
    if (f->has_bars)
      add_rect (self->rects, f->bars, width, height);
  }
  GST_LOG_OBJECT (
      self, "%u faces, %u rectangles", self->faces->len, self->rects->len);

  px.data = GST_VIDEO_FRAME_PLANE_DATA (frame, 0);
  px.stride = GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0);
  px.pstride = GST_VIDEO_FRAME_COMP_PSTRIDE (frame, 0);
  px.r = GST_VIDEO_FRAME_COMP_POFFSET (frame, GST_VIDEO_COMP_R);
  px.g = GST_VIDEO_FRAME_COMP_POFFSET (frame, GST_VIDEO_COMP_G);
  px.b = GST_VIDEO_FRAME_COMP_POFFSET (frame, GST_VIDEO_COMP_B);
  px.a = GST_VIDEO_INFO_HAS_ALPHA (&frame->info)
      ? (gint) GST_VIDEO_FRAME_COMP_POFFSET (frame, GST_VIDEO_COMP_A)
      : -1;

  cairo_surface_flush (self->canvas);
  canvas = cairo_image_surface_get_data (self->canvas);
  canvas_stride = cairo_image_surface_get_stride (self->canvas);
  /* all rectangles are loaded before any is drawn on: faces overlap */
  for (guint i = 0; i < self->rects->len; i++)
    load_rect (&px, canvas, canvas_stride,
        &g_array_index (self->rects, cairo_rectangle_int_t, i));
  cairo_surface_mark_dirty (self->canvas);

  for (guint i = 0; i < self->faces->len; i++)
    gst_fer_emotion_overlay_draw_face (
        self->cr, &g_array_index (self->faces, GstFerEmotionFaceLayout, i));
  cairo_restore (self->cr);
  status = cairo_status (self->cr);
  if (status != CAIRO_STATUS_SUCCESS)
    goto draw_failed;

  cairo_surface_flush (self->canvas);
  for (guint i = 0; i < self->rects->len; i++)
    store_rect (&px, canvas, canvas_stride,
        &g_array_index (self->rects, cairo_rectangle_int_t, i));
  return GST_FLOW_OK;

draw_failed : {
  GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
      ("Could not draw the emotion overlay."),
      ("cairo: %s", cairo_status_to_string (status)));
  return GST_FLOW_ERROR;
}
}

static gboolean
has_faces (GstBuffer *buffer)
{
  return gst_buffer_get_meta (buffer, GST_FER_EMOTION_META_API_TYPE) != NULL;
}

/* The base class makes an in-place buffer writable (copying it when it is
 * shared) before transform_ip; a buffer without faces skips that. */
static GstFlowReturn
gst_fer_emotion_overlay_prepare_output_buffer (
    GstBaseTransform *trans, GstBuffer *inbuf, GstBuffer **outbuf)
{
  if (!has_faces (inbuf)) {
    *outbuf = inbuf;
    return GST_FLOW_OK;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)
      ->prepare_output_buffer (trans, inbuf, outbuf);
}

/* ... and is not mapped for writing, which a shared buffer could not be. */
static GstFlowReturn
gst_fer_emotion_overlay_transform_ip (
    GstBaseTransform *trans, GstBuffer *buffer)
{
  if (!has_faces (buffer))
    return GST_FLOW_OK;
  return GST_BASE_TRANSFORM_CLASS (parent_class)->transform_ip (trans, buffer);
}

static void
gst_fer_emotion_overlay_free_canvas (GstFerEmotionOverlay *self)
{
  g_clear_pointer (&self->cr, cairo_destroy);
  g_clear_pointer (&self->canvas, cairo_surface_destroy);
}

static gboolean
gst_fer_emotion_overlay_set_info (GstVideoFilter *filter, GstCaps *incaps,
    GstVideoInfo *in_info, GstCaps *outcaps, GstVideoInfo *out_info)
{
  GstFerEmotionOverlay *self = GST_FER_EMOTION_OVERLAY (filter);
  gint width = GST_VIDEO_INFO_WIDTH (in_info);
  gint height = GST_VIDEO_INFO_HEIGHT (in_info);
  cairo_status_t status;

  if (self->canvas && cairo_image_surface_get_width (self->canvas) == width
      && cairo_image_surface_get_height (self->canvas) == height)
    return TRUE;

  gst_fer_emotion_overlay_free_canvas (self);
  self->canvas =
      cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
  self->cr = cairo_create (self->canvas);
  cairo_select_font_face (
      self->cr, "Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  /* a failed surface hands its status on to the context */
  status = cairo_status (self->cr);
  if (status != CAIRO_STATUS_SUCCESS)
    goto no_canvas;
  return TRUE;

no_canvas : {
  GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
      ("Could not allocate a %dx%d drawing surface.", width, height),
      ("cairo: %s", cairo_status_to_string (status)));
  gst_fer_emotion_overlay_free_canvas (self);
  return FALSE;
}
}

static gboolean
gst_fer_emotion_overlay_stop (GstBaseTransform *trans)
{
  gst_fer_emotion_overlay_free_canvas (GST_FER_EMOTION_OVERLAY (trans));
  return TRUE;
}

static void
gst_fer_emotion_overlay_set_property (
    GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstFerEmotionOverlay *self = GST_FER_EMOTION_OVERLAY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SHOW_BARS:
      self->settings.show_bars = g_value_get_boolean (value);
      break;
    case PROP_LINE_WIDTH:
      self->settings.line_width = g_value_get_uint (value);
      break;
    case PROP_FONT_SIZE:
      self->settings.font_size = g_value_get_uint (value);
      break;
    case PROP_SHOW_CONFIDENCE:
      self->settings.show_confidence = g_value_get_boolean (value);
      break;
    case PROP_SHOW_TRACK_ID:
      self->settings.show_track_id = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_fer_emotion_overlay_get_property (
    GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstFerEmotionOverlay *self = GST_FER_EMOTION_OVERLAY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SHOW_BARS:
      g_value_set_boolean (value, self->settings.show_bars);
      break;
    case PROP_LINE_WIDTH:
      g_value_set_uint (value, self->settings.line_width);
      break;
    case PROP_FONT_SIZE:
      g_value_set_uint (value, self->settings.font_size);
      break;
    case PROP_SHOW_CONFIDENCE:
      g_value_set_boolean (value, self->settings.show_confidence);
      break;
    case PROP_SHOW_TRACK_ID:
      g_value_set_boolean (value, self->settings.show_track_id);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_fer_emotion_overlay_finalize (GObject *object)
{
  GstFerEmotionOverlay *self = GST_FER_EMOTION_OVERLAY (object);

  g_array_unref (self->faces);
  g_array_unref (self->rects);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_fer_emotion_overlay_class_init (GstFerEmotionOverlayClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  GST_DEBUG_CATEGORY_INIT (gst_fer_emotion_overlay_debug, "feremotionoverlay",
      0, "Draws facial expression results on video");

  gobject_class->set_property = gst_fer_emotion_overlay_set_property;
  gobject_class->get_property = gst_fer_emotion_overlay_get_property;
  gobject_class->finalize = gst_fer_emotion_overlay_finalize;

  g_object_class_install_property (gobject_class, PROP_SHOW_BARS,
      g_param_spec_boolean ("show-bars", "Show bars",
          "Draw one bar per class with its probability beside each face",
          DEFAULT_SHOW_BARS, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_LINE_WIDTH,
      g_param_spec_uint ("line-width", "Line width",
          "Width of the face box outline in pixels", 1, 64, DEFAULT_LINE_WIDTH,
          rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_FONT_SIZE,
      g_param_spec_uint ("font-size", "Font size",
          "Label font size in pixels (0 = a tenth of the face height, "
          "between 10 and 40)",
          0, 512, DEFAULT_FONT_SIZE, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_SHOW_CONFIDENCE,
      g_param_spec_boolean ("show-confidence", "Show confidence",
          "Append the confidence in percent to the label",
          DEFAULT_SHOW_CONFIDENCE, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_SHOW_TRACK_ID,
      g_param_spec_boolean ("show-track-id", "Show track id",
          "Put the face's track id before the label (\"#3 happy 87%\"), to "
          "tell faces apart from frame to frame",
          DEFAULT_SHOW_TRACK_ID, rw | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Facial expression overlay", "Filter/Effect/Video",
      "Draws face boxes, emotion labels and class probabilities from "
      "GstFerEmotionMeta",
      "gst-feremotion authors");

  trans_class->prepare_output_buffer =
      GST_DEBUG_FUNCPTR (gst_fer_emotion_overlay_prepare_output_buffer);
  trans_class->transform_ip =
      GST_DEBUG_FUNCPTR (gst_fer_emotion_overlay_transform_ip);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_fer_emotion_overlay_stop);
  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_fer_emotion_overlay_set_info);
  filter_class->transform_frame_ip =
      GST_DEBUG_FUNCPTR (gst_fer_emotion_overlay_transform_frame_ip);
}

static void
gst_fer_emotion_overlay_init (GstFerEmotionOverlay *self)
{
  self->settings.show_bars = DEFAULT_SHOW_BARS;
  self->settings.line_width = DEFAULT_LINE_WIDTH;
  self->settings.font_size = DEFAULT_FONT_SIZE;
  self->settings.show_confidence = DEFAULT_SHOW_CONFIDENCE;
  self->settings.show_track_id = DEFAULT_SHOW_TRACK_ID;
  self->faces = g_array_new (FALSE, FALSE, sizeof (GstFerEmotionFaceLayout));
  self->rects = g_array_new (FALSE, FALSE, sizeof (cairo_rectangle_int_t));
}
