/* GStreamer emotion metadata, as attached by the feremotion element.
 *
 * Thread safety: the registration functions may be called from any thread.
 * A meta lives in its buffer and follows GStreamer's buffer rules: add one
 * only to a writable buffer; any number of threads may read the metas of a
 * buffer that no thread modifies. */
#ifndef __GST_FER_EMOTION_META_H__
#define __GST_FER_EMOTION_META_H__

#include <gst/gst.h>

G_BEGIN_DECLS

/**
 * SECTION:gstferemotionmeta
 * @title: GstFerEmotionMeta
 * @short_description: Per-face facial expression results on a buffer
 *
 * The feremotion element attaches one #GstFerEmotionMeta per classified
 * face. Read them with
 *
 * |[<!-- language="C" -->
 *   gpointer state = NULL;
 *   GstFerEmotionMeta *m;
 *   while ((m = gst_buffer_iterate_fer_emotion_meta (buffer, &state)))
 *     g_print ("%s %.2f at %d,%d\n", m->label, m->confidence, m->x, m->y);
 * ]|
 *
 * Build against it with `pkg-config --cflags --libs gst-feremotion-1.0`.
 * Bindings (Python's python3-gi) load the GstFerEmotion-1.0 typelib and
 * read every face with gst_buffer_get_fer_emotion_meta_count() and
 * gst_buffer_get_nth_fer_emotion_meta():
 *
 * |[<!-- language="Python" -->
 *   for i in range(GstFerEmotion.buffer_get_fer_emotion_meta_count(buf)):
 *       m = GstFerEmotion.buffer_get_nth_fer_emotion_meta(buf, i)
 *       print(m.label, m.confidence, m.x, m.y, list(m.probabilities))
 * ]|
 *
 * The meta is registered with the tags "video", "size" and "orientation",
 * like #GstVideoRegionOfInterestMeta: it is copied with the buffer's
 * metadata, a scale (videoscale, videoconvertscale) rescales its box, and
 * other transforms, which would leave the box wrong, drop it.
 */

/**
 * GST_FER_META_API:
 *
 * Marks the functions that the gstferemotionmeta library exports.
 */
#ifdef BUILDING_GST_FER_META
#define GST_FER_META_API __attribute__ ((visibility ("default")))
#else
#define GST_FER_META_API
#endif

/**
 * GST_FER_EMOTION_MAX_CLASSES:
 *
 * The most classes one #GstFerEmotionMeta holds; the element refuses
 * models with more. A later version may raise it without an ABI break
 * (the per-class arrays live outside #GstFerEmotionMeta's layout), so
 * size loops and arrays by #GstFerEmotionMeta.n_classes, not by this value.
 */
#define GST_FER_EMOTION_MAX_CLASSES 32

/**
 * GST_FER_EMOTION_META_API_TYPE:
 *
 * The #GType of the #GstFerEmotionMeta API, for gst_buffer_get_meta() and
 * gst_buffer_iterate_meta_filtered().
 */
#define GST_FER_EMOTION_META_API_TYPE (gst_fer_emotion_meta_api_get_type ())

/**
 * GST_FER_EMOTION_META_INFO:
 *
 * The #GstMetaInfo of #GstFerEmotionMeta, for gst_buffer_add_meta().
 */
#define GST_FER_EMOTION_META_INFO (gst_fer_emotion_meta_get_info ())

typedef struct _GstFerEmotionMeta GstFerEmotionMeta;

/**
 * GstFerEmotionMeta:
 * @meta: parent #GstMeta
 * @x: left edge of the face box in frame pixels (the box is clipped to the
 *   frame)
 * @y: top edge of the face box
 * @w: width of the face box
 * @h: height of the face box
 * @roi_id: id of the #GstVideoRegionOfInterestMeta the face came from, or
 *   -1 when the whole frame was classified
 * @label_id: index of the most probable class
 * @label: its name (an interned string, valid for the process lifetime)
 * @confidence: its probability
 * @n_classes: number of classes of the model, 1 to
 *   #GST_FER_EMOTION_MAX_CLASSES
 * @class_labels: (array length=n_classes): name of each class (interned
 *   strings)
 * @probabilities: (array length=n_classes): probability of each class,
 *   summing to 1 (after TTA averaging and, when enabled, temporal
 *   smoothing)
 * @track_id: the face's track: the same id on every buffer of the stream
 *   on which the element saw this face (matched by box overlap from frame
 *   to frame, or by ROI id when the detector sets distinct ids), 1 for the
 *   first face of a stream, then counting up; -1 when the face is not
 *   tracked (a meta added by gst_buffer_add_fer_emotion_meta() alone).
 *   It took the place of one reserved pointer: the earlier fields and
 *   the structure's size are unchanged.
 *
 * The emotion of one face. @class_labels and @probabilities point into
 * storage that the meta itself carries, valid as long as the meta.
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
  const gchar **class_labels;
  gfloat *probabilities;
  gint track_id;

  /*< private >*/
  gpointer _gst_reserved[GST_PADDING - 1];
};

/**
 * gst_fer_emotion_meta_api_get_type:
 *
 * Registers the #GstFerEmotionMeta API (tags "video", "size",
 * "orientation") on first use.
 *
 * Returns: the API's #GType
 */
GST_FER_META_API GType gst_fer_emotion_meta_api_get_type (void);

/**
 * gst_fer_emotion_meta_get_info:
 *
 * Registers the #GstFerEmotionMeta implementation on first use.
 *
 * Returns: (transfer none): its #GstMetaInfo
 */
GST_FER_META_API const GstMetaInfo *gst_fer_emotion_meta_get_info (void);

/**
 * gst_buffer_add_fer_emotion_meta:
 * @buffer: a writable #GstBuffer
 * @x: left edge of the face box in frame pixels
 * @y: top edge of the face box
 * @w: width of the face box
 * @h: height of the face box
 * @roi_id: id of the face's #GstVideoRegionOfInterestMeta, or -1
 * @n_classes: number of classes, 1 to #GST_FER_EMOTION_MAX_CLASSES
 * @class_labels: (array length=n_classes): class names (interned by the
 *   meta)
 * @probabilities: (array length=n_classes): class probabilities (copied)
 *
 * Adds a meta for one face. The label, label_id and confidence are derived
 * (the first most probable class).
 *
 * Returns: (transfer none) (nullable): the new meta, or %NULL when
 *   @n_classes is 0 or above #GST_FER_EMOTION_MAX_CLASSES or an array is
 *   %NULL
 */
GST_FER_META_API GstFerEmotionMeta *gst_buffer_add_fer_emotion_meta (
    GstBuffer *buffer, gint x, gint y, gint w, gint h, gint roi_id,
    guint n_classes, const gchar *const *class_labels,
    const gfloat *probabilities);

/**
 * gst_buffer_get_fer_emotion_meta:
 * @b: a #GstBuffer
 *
 * The first #GstFerEmotionMeta of a buffer; use
 * gst_buffer_iterate_fer_emotion_meta() to see them all.
 *
 * Returns: (transfer none) (nullable): the meta, or %NULL when the buffer
 *   has none
 */
#define gst_buffer_get_fer_emotion_meta(b)                                     \
  ((GstFerEmotionMeta *) gst_buffer_get_meta (                                 \
      (b), GST_FER_EMOTION_META_API_TYPE))

/**
 * gst_buffer_iterate_fer_emotion_meta:
 * @buffer: a #GstBuffer
 * @state: (inout): iteration state, %NULL before the first call
 *
 * Iterates the emotion metas of a buffer, in the order they were added.
 *
 * Returns: (transfer none) (nullable): the next meta, or %NULL after the
 *   last one
 */
GST_FER_META_API GstFerEmotionMeta *gst_buffer_iterate_fer_emotion_meta (
    GstBuffer *buffer, gpointer *state);

/**
 * gst_buffer_get_fer_emotion_meta_for_roi:
 * @buffer: a #GstBuffer
 * @roi_id: the id of a #GstVideoRegionOfInterestMeta (or -1 for the
 *   whole-frame face)
 *
 * Finds the face that came from one region of interest.
 *
 * Returns: (transfer none) (nullable): the first emotion meta whose
 *   roi_id is @roi_id, or %NULL
 */
GST_FER_META_API GstFerEmotionMeta *gst_buffer_get_fer_emotion_meta_for_roi (
    GstBuffer *buffer, gint roi_id);

/**
 * gst_buffer_get_fer_emotion_meta_count:
 * @buffer: a #GstBuffer
 *
 * The number of faces (emotion metas) on a buffer. With
 * gst_buffer_get_nth_fer_emotion_meta() this reads every face from
 * languages that cannot call gst_buffer_iterate_fer_emotion_meta() (its
 * opaque state), such as Python through GObject introspection.
 *
 * Returns: the number of #GstFerEmotionMeta on @buffer
 */
GST_FER_META_API guint gst_buffer_get_fer_emotion_meta_count (
    GstBuffer *buffer);

/**
 * gst_buffer_get_nth_fer_emotion_meta:
 * @buffer: a #GstBuffer
 * @index: 0 to gst_buffer_get_fer_emotion_meta_count() - 1
 *
 * The face at @index, in the order the metas were added (the order of
 * gst_buffer_iterate_fer_emotion_meta()).
 *
 * Returns: (transfer none) (nullable): the meta, or %NULL when @index is
 *   past the last face
 */
GST_FER_META_API GstFerEmotionMeta *gst_buffer_get_nth_fer_emotion_meta (
    GstBuffer *buffer, guint index);

/**
 * gst_fer_emotion_meta_get_probabilities:
 * @meta: a #GstFerEmotionMeta
 * @n_classes: (out): where to store the number of classes
 *
 * The probability of every class, for bindings (C reads
 * #GstFerEmotionMeta.probabilities).
 *
 * Returns: (transfer none) (array length=n_classes): the probabilities, in
 *   the order of gst_fer_emotion_meta_get_class_labels(), valid as long as
 *   @meta
 */
GST_FER_META_API const gfloat *gst_fer_emotion_meta_get_probabilities (
    const GstFerEmotionMeta *meta, guint *n_classes);

/**
 * gst_fer_emotion_meta_get_class_labels:
 * @meta: a #GstFerEmotionMeta
 *
 * The name of every class, for bindings (C reads
 * #GstFerEmotionMeta.class_labels).
 *
 * Returns: (transfer container) (array zero-terminated=1): the class names
 *   in probability order (the strings are interned; free only the array,
 *   with g_free())
 */
GST_FER_META_API const gchar **gst_fer_emotion_meta_get_class_labels (
    const GstFerEmotionMeta *meta);

/**
 * gst_fer_emotion_meta_get_probability:
 * @meta: a #GstFerEmotionMeta
 * @index: a class index, 0 to #GstFerEmotionMeta.n_classes - 1
 *
 * Returns: the probability of class @index, or -1 when @index is not a
 *   class
 */
GST_FER_META_API gfloat gst_fer_emotion_meta_get_probability (
    const GstFerEmotionMeta *meta, guint index);

/**
 * gst_fer_emotion_meta_get_class_label:
 * @meta: a #GstFerEmotionMeta
 * @index: a class index, 0 to #GstFerEmotionMeta.n_classes - 1
 *
 * Returns: (transfer none) (nullable): the name of class @index (an
 *   interned string), or %NULL when @index is not a class
 */
GST_FER_META_API const gchar *gst_fer_emotion_meta_get_class_label (
    const GstFerEmotionMeta *meta, guint index);

/**
 * gst_buffer_get_fer_emotion_meta_for_track:
 * @buffer: a #GstBuffer
 * @track_id: a track id (#GstFerEmotionMeta.track_id), 1 or more
 *
 * Finds one face by its track: unlike the ROI id, which detectors such as
 * facedetect leave at 0 for every face, the element gives every face its
 * own track id, so this picks one face of several.
 *
 * Returns: (transfer none) (nullable): the emotion meta whose track_id is
 *   @track_id, or %NULL (also for a negative @track_id)
 */
GST_FER_META_API GstFerEmotionMeta *gst_buffer_get_fer_emotion_meta_for_track (
    GstBuffer *buffer, gint track_id);

G_END_DECLS

#endif
