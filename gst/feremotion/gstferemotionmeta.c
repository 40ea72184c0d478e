/* GstFerEmotionMeta: per-face emotion results. Copied with the buffer's
 * metadata; on a scale transform (videoscale) the box is rescaled, like
 * GstVideoRegionOfInterestMeta, whose tags it carries so that videoscale
 * calls the scale transform at all (with "video" alone it copies the box
 * unscaled). */
#include "gstferemotionmeta.h"

#include <gst/video/video.h>
#include <string.h>

/* The meta as allocated: the public part, then the per-class storage its
 * array pointers point to. Only this file knows the storage's layout, so
 * raising GST_FER_EMOTION_MAX_CLASSES moves no public field. */
/* track_id took one reserved pointer: the public size must not change */
G_STATIC_ASSERT (sizeof (GstFerEmotionMeta)
    == G_STRUCT_OFFSET (GstFerEmotionMeta, probabilities)
        + (GST_PADDING + 1) * sizeof (gpointer));

typedef struct
{
  GstFerEmotionMeta meta;
  const gchar *class_labels[GST_FER_EMOTION_MAX_CLASSES];
  gfloat probabilities[GST_FER_EMOTION_MAX_CLASSES];
} GstFerEmotionMetaStorage;

GType
gst_fer_emotion_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { GST_META_TAG_VIDEO_STR,
    GST_META_TAG_VIDEO_ORIENTATION_STR, GST_META_TAG_VIDEO_SIZE_STR, NULL };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register ("GstFerEmotionMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
gst_fer_emotion_meta_init (GstMeta *meta, gpointer params, GstBuffer *buffer)
{
  GstFerEmotionMetaStorage *st = (GstFerEmotionMetaStorage *) meta;
  GstFerEmotionMeta *m = &st->meta;

  memset ((guint8 *) st + sizeof (GstMeta), 0, sizeof *st - sizeof (GstMeta));
  m->roi_id = -1;
  m->label_id = -1;
  m->track_id = -1;
  m->class_labels = st->class_labels;
  m->probabilities = st->probabilities;
  return TRUE;
}

/* Copies the face, its classes into dst's own storage. */
static void
copy_face (GstFerEmotionMeta *dst, const GstFerEmotionMeta *src)
{
  guint n = MIN (src->n_classes, GST_FER_EMOTION_MAX_CLASSES);

  dst->x = src->x;
  dst->y = src->y;
  dst->w = src->w;
  dst->h = src->h;
  dst->roi_id = src->roi_id;
  dst->track_id = src->track_id;
  dst->label_id = src->label_id;
  dst->label = src->label;
  dst->confidence = src->confidence;
  dst->n_classes = n;
  memcpy (dst->class_labels, src->class_labels, n * sizeof (const gchar *));
  memcpy (dst->probabilities, src->probabilities, n * sizeof (gfloat));
}

static gboolean
gst_fer_emotion_meta_transform (GstBuffer *dest, GstMeta *meta,
    GstBuffer *buffer, GQuark type, gpointer data)
{
  GstFerEmotionMeta *src = (GstFerEmotionMeta *) meta, *dst;
  GstVideoMetaTransform *scale = NULL;

  if (GST_VIDEO_META_TRANSFORM_IS_SCALE (type)) {
    scale = data;
    if (GST_VIDEO_INFO_WIDTH (scale->in_info) <= 0
        || GST_VIDEO_INFO_HEIGHT (scale->in_info) <= 0)
      return FALSE;
  } else if (!GST_META_TRANSFORM_IS_COPY (type)) {
    /* other transforms (crops, format changes...) would invalidate the box */
    return FALSE;
  }

  dst = (GstFerEmotionMeta *) gst_buffer_add_meta (
      dest, GST_FER_EMOTION_META_INFO, NULL);
  if (!dst)
    return FALSE;
  copy_face (dst, src);
  if (scale) {
    gint ow = GST_VIDEO_INFO_WIDTH (scale->in_info);
    gint oh = GST_VIDEO_INFO_HEIGHT (scale->in_info);
    gint nw = GST_VIDEO_INFO_WIDTH (scale->out_info);
    gint nh = GST_VIDEO_INFO_HEIGHT (scale->out_info);

    dst->x = (gint) ((gint64) src->x * nw / ow);
    dst->y = (gint) ((gint64) src->y * nh / oh);
    dst->w = (gint) ((gint64) src->w * nw / ow);
    dst->h = (gint) ((gint64) src->h * nh / oh);
  }
  return TRUE;
}

const GstMetaInfo *
gst_fer_emotion_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **) &info)) {
    const GstMetaInfo *mi = gst_meta_register (GST_FER_EMOTION_META_API_TYPE,
        "GstFerEmotionMeta", sizeof (GstFerEmotionMetaStorage),
        gst_fer_emotion_meta_init, NULL, gst_fer_emotion_meta_transform);
    g_once_init_leave ((GstMetaInfo **) &info, (GstMetaInfo *) mi);
  }
  return info;
}

GstFerEmotionMeta *
gst_buffer_add_fer_emotion_meta (GstBuffer *buffer, gint x, gint y, gint w,
    gint h, gint roi_id, guint n_classes, const gchar *const *class_labels,
    const gfloat *probabilities)
{
  GstFerEmotionMeta *m;
  guint best = 0;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (gst_buffer_is_writable (buffer), NULL);
  if (n_classes == 0 || n_classes > GST_FER_EMOTION_MAX_CLASSES || !class_labels
      || !probabilities)
    return NULL;

  m = (GstFerEmotionMeta *) gst_buffer_add_meta (
      buffer, GST_FER_EMOTION_META_INFO, NULL);
  if (!m)
    return NULL;
  m->x = x;
  m->y = y;
  m->w = w;
  m->h = h;
  m->roi_id = roi_id;
  m->n_classes = n_classes;
  for (guint i = 0; i < n_classes; i++) {
    m->class_labels[i] = g_intern_string (class_labels[i]);
    m->probabilities[i] = probabilities[i];
    if (probabilities[i] > probabilities[best])
      best = i;
  }
  m->label_id = (gint) best;
  m->label = m->class_labels[best];
  m->confidence = probabilities[best];
  return m;
}

GstFerEmotionMeta *
gst_buffer_iterate_fer_emotion_meta (GstBuffer *buffer, gpointer *state)
{
  return (GstFerEmotionMeta *) gst_buffer_iterate_meta_filtered (
      buffer, state, GST_FER_EMOTION_META_API_TYPE);
}

GstFerEmotionMeta *
gst_buffer_get_fer_emotion_meta_for_roi (GstBuffer *buffer, gint roi_id)
{
  gpointer state = NULL;
  GstFerEmotionMeta *m;

  while ((m = gst_buffer_iterate_fer_emotion_meta (buffer, &state)))
    if (m->roi_id == roi_id)
      return m;
  return NULL;
}

guint
gst_buffer_get_fer_emotion_meta_count (GstBuffer *buffer)
{
  gpointer state = NULL;
  guint n = 0;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), 0);
  while (gst_buffer_iterate_fer_emotion_meta (buffer, &state))
    n++;
  return n;
}

GstFerEmotionMeta *
gst_buffer_get_nth_fer_emotion_meta (GstBuffer *buffer, guint index)
{
  gpointer state = NULL;
  GstFerEmotionMeta *m;
  guint i = 0;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  while ((m = gst_buffer_iterate_fer_emotion_meta (buffer, &state)))
    if (i++ == index)
      return m;
  return NULL;
}

const gfloat *
gst_fer_emotion_meta_get_probabilities (
    const GstFerEmotionMeta *meta, guint *n_classes)
{
  g_return_val_if_fail (meta != NULL, NULL);
  if (n_classes)
    *n_classes = meta->n_classes;
  return meta->probabilities;
}

const gchar **
gst_fer_emotion_meta_get_class_labels (const GstFerEmotionMeta *meta)
{
  const gchar **labels;

  g_return_val_if_fail (meta != NULL, NULL);
  labels = g_new (const gchar *, meta->n_classes + 1);
  memcpy (labels, meta->class_labels, meta->n_classes * sizeof *labels);
  labels[meta->n_classes] = NULL;
  return labels;
}

gfloat
gst_fer_emotion_meta_get_probability (
    const GstFerEmotionMeta *meta, guint index)
{
  g_return_val_if_fail (meta != NULL, -1.0f);
  return index < meta->n_classes ? meta->probabilities[index] : -1.0f;
}

const gchar *
gst_fer_emotion_meta_get_class_label (
    const GstFerEmotionMeta *meta, guint index)
{
  g_return_val_if_fail (meta != NULL, NULL);
  return index < meta->n_classes ? meta->class_labels[index] : NULL;
}

GstFerEmotionMeta *
gst_buffer_get_fer_emotion_meta_for_track (GstBuffer *buffer, gint track_id)
{
  gpointer state = NULL;
  GstFerEmotionMeta *m;

  if (track_id < 0)
    return NULL;
  while ((m = gst_buffer_iterate_fer_emotion_meta (buffer, &state)))
    if (m->track_id == track_id)
      return m;
  return NULL;
}
