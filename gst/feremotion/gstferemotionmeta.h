/* GStreamer emotion metadata, as attached by the feremotion element.
 *
 * One GstFerEmotionMeta per classified face. Read it with
 *
 *   gpointer state = NULL;
 *   GstFerEmotionMeta *m;
 *   while ((m = gst_buffer_iterate_fer_emotion_meta (buffer, &state)))
 *     g_print ("%s %.2f at %d,%d\n", m->label, m->confidence, m->x, m->y);
 *
 * Build against it with `pkg-config --cflags --libs gst-feremotion-1.0`. */
#ifndef __GST_FER_EMOTION_META_H__
#define __GST_FER_EMOTION_META_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#ifdef BUILDING_GST_FER_META
#define GST_FER_META_API __attribute__ ((visibility ("default")))
#else
#define GST_FER_META_API
#endif

/* Models with more classes are refused by the element. */
#define GST_FER_EMOTION_MAX_CLASSES 32

#define GST_FER_EMOTION_META_API_TYPE (gst_fer_emotion_meta_api_get_type ())
#define GST_FER_EMOTION_META_INFO (gst_fer_emotion_meta_get_info ())

typedef struct _GstFerEmotionMeta GstFerEmotionMeta;

/**
 * GstFerEmotionMeta:
 * @meta: parent
 * @x, @y, @w, @h: the face box in frame pixels (clipped to the frame)
 * @roi_id: id of the GstVideoRegionOfInterestMeta the face came from, or -1
 *   when the whole frame was classified
 * @label_id: index of the most probable class
 * @label: its name (an interned string, valid for the process lifetime)
 * @confidence: its probability
 * @n_classes: number of classes of the model
 * @class_labels: name of each class (interned strings)
 * @probabilities: probability of each class, summing to 1 (after TTA
 *   averaging and, when enabled, temporal smoothing)
 */
struct _GstFerEmotionMeta
{
  GstMeta meta;

  gint x, y, w, h;
  gint roi_id;
  gint label_id;
  const gchar *label;
  gfloat confidence;
  guint n_classes;
  const gchar *class_labels[GST_FER_EMOTION_MAX_CLASSES];
  gfloat probabilities[GST_FER_EMOTION_MAX_CLASSES];
};

GST_FER_META_API GType gst_fer_emotion_meta_api_get_type (void);
GST_FER_META_API const GstMetaInfo *gst_fer_emotion_meta_get_info (void);

/* Adds a meta for one face; label, label_id and confidence are derived
 * (argmax). Returns NULL when n_classes is 0 or above
 * GST_FER_EMOTION_MAX_CLASSES. The buffer must be writable. */
GST_FER_META_API GstFerEmotionMeta *gst_buffer_add_fer_emotion_meta (
    GstBuffer *buffer, gint x, gint y, gint w, gint h, gint roi_id,
    guint n_classes, const gchar *const *class_labels,
    const gfloat *probabilities);

/* The first emotion meta of the buffer, or NULL. */
#define gst_buffer_get_fer_emotion_meta(b) \
  ((GstFerEmotionMeta *) gst_buffer_get_meta ((b), GST_FER_EMOTION_META_API_TYPE))

/* Iterates the emotion metas of a buffer (state starts at NULL). */
GST_FER_META_API GstFerEmotionMeta *gst_buffer_iterate_fer_emotion_meta (
    GstBuffer *buffer, gpointer *state);

/* The emotion meta whose roi_id is `roi_id`, or NULL. */
GST_FER_META_API GstFerEmotionMeta *gst_buffer_get_fer_emotion_meta_for_roi (
    GstBuffer *buffer, gint roi_id);

G_END_DECLS

#endif
