/* feremotion: facial expression recognition on video buffers. */
#ifndef __GST_FER_EMOTION_H__
#define __GST_FER_EMOTION_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>
#include <fer/fer.h>

#include "feremotion/gstferemotionmeta.h"
#include "ferbatcher.h"

G_BEGIN_DECLS

#define GST_TYPE_FER_EMOTION (gst_fer_emotion_get_type ())
G_DECLARE_FINAL_TYPE (
    GstFerEmotion, gst_fer_emotion, GST, FER_EMOTION, GstBaseTransform)

typedef enum
{
  GST_FER_EMOTION_MODE_AUTO,
  GST_FER_EMOTION_MODE_FRAME,
  GST_FER_EMOTION_MODE_ROI,
} GstFerEmotionMode;

typedef struct
{
  gchar *model;
  fer_backend_type backend;
  gint device_id;
  gint tta;
  gint batch_size;
  GstFerEmotionMode mode;
  GQuark roi_type;
  gdouble face_margin;
  gint min_face_size;
  gdouble smoothing;
  gboolean post_messages;
  gboolean qos;
  gint threads;
  gboolean shared;
  guint max_batch_wait; /* microseconds */
  gint max_batch;
} GstFerEmotionSettings;

/* A face followed across frames: its track id, and its probabilities for
 * temporal smoothing. */
typedef struct
{
  gboolean live;
  gboolean has_probs; /* probs are this model's (a model swap clears it) */
  gint id;            /* the faces' track_id */
  gint roi_id;
  fer_rect box;
  guint64 last_seen;
  gfloat probs[GST_FER_EMOTION_MAX_CLASSES];
} GstFerEmotionTrack;

#define GST_FER_EMOTION_MAX_TRACKS 32

struct _GstFerEmotion
{
  GstBaseTransform parent;

  /* properties, under the object lock */
  GstFerEmotionSettings settings;
  gboolean started;
  /* counts the model property's changes: a model loaded for an older value
   * is not installed (loads run unlocked and may finish out of order) */
  guint model_generation;

  /* the model; model_lock is held for a whole buffer, so a model swap
   * happens between buffers */
  GMutex model_lock;
  fer_model *model;
  FerBatchClient *batch; /* shared model: its cross-stream batcher */
  guint n_classes;
  const gchar *labels[GST_FER_EMOTION_MAX_CLASSES]; /* interned */

  /* streaming thread only */
  GstVideoInfo info;
  fer_pixel_format pixel_format;
  guint capacity; /* faces the arrays below hold */
  fer_rect *rects;
  gint *roi_ids;
  gint *track_ids;
  GstVideoRegionOfInterestMeta **rois;
  gfloat *probs;
  GstStructure **faces; /* for the bus message */
  gboolean seen_rois;   /* this stream carried face ROI metas */
  GstFerEmotionTrack tracks[GST_FER_EMOTION_MAX_TRACKS];
  guint64 frame_count;
  gint next_track_id; /* 1 at stream-start, then counting up */

  /* QoS, under the object lock */
  GstClockTime earliest_time;
  guint64 skipped_late;
};

GST_ELEMENT_REGISTER_DECLARE (feremotion);

G_END_DECLS

#endif
