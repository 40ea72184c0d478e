/**
 * SECTION:element-feremotion
 * @title: feremotion
 *
 * Recognises facial expressions with a ResNet-18 (libfernn) and attaches
 * the result to each buffer, three ways: a #GstFerEmotionMeta per face
 * (public header gst/feremotion/gstferemotionmeta.h), a GstStructure param
 * named `emotion` on the face's GstVideoRegionOfInterestMeta, and an
 * element message named `feremotion` on the bus. Pixels are never touched.
 *
 * Modes: `frame` classifies each whole buffer as one face crop; `roi`
 * classifies every region-of-interest meta of type #GstFerEmotion:roi-type
 * (as attached by `facedetect`); `auto` (the default) classifies whole
 * frames until the stream carries such a ROI meta, and from then on only
 * ROIs, so that a frame where the detector found no face gets no emotion;
 * a stream-start event starts the decision afresh. With a detector upstream,
 * `roi` also leaves the frames before its first face unlabelled. Every face
 * is evaluated with
 * #GstFerEmotion:tta test-time-augmented views, all faces x views of a
 * buffer in one batched forward pass.
 *
 * Input: GRAY8, packed RGB and BGR (with or without alpha), I420 and NV12. The
 * shipped models are grey and use the luma plane as it is; a colour model
 * fed YUV gets it converted with the BT.601 matrix whatever the caps'
 * colorimetry says (full or limited range as the caps say): for BT.709 HD
 * sources put `videoconvert ! video/x-raw,format=RGB` before it.
 *
 * Every face gets a track id (`track_id` in the meta and the ROI param,
 * `track-id` in the message) that stays with it from frame to frame: faces
 * are matched to the previous frames' by ROI id, when the detector sets
 * distinct ones, else by box overlap, with or without
 * #GstFerEmotion:smoothing. Ids count from 1 per stream (stream-start) and
 * are not reused in it (a flush forgets the faces; docs/metadata.md).
 *
 * Several streams: elements that load the same model file with the same
 * backend, device-id and threads share one loaded model
 * (#GstFerEmotion:shared, the default) and batch the faces of buffers that
 * arrive together into one forward, waiting at most
 * #GstFerEmotion:max-batch-wait microseconds for the other streams (never
 * for one that stalled, paused or ended); docs/architecture.md.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 -m multifilesrc location=faces/%04d.png caps=image/png,framerate=1/1 \
 *     ! pngdec ! videoconvert ! video/x-raw,format=GRAY8 \
 *     ! feremotion model=model.safetensors ! fakesink
 * ]| prints one `feremotion` element message per face crop.
 * |[
 * gst-launch-1.0 v4l2src ! videoconvert ! facedetect display=false \
 *     ! feremotion mode=roi ! videoconvert ! feremotionoverlay ! videoconvert ! autovideosink
 * ]| shows the webcam with an emotion label on every detected face.
 * |[
 * gst-launch-1.0 -m \
 *     v4l2src device=/dev/video0 ! videoconvert ! facedetect display=false \
 *       ! feremotion mode=roi ! fakesink \
 *     v4l2src device=/dev/video1 ! videoconvert ! facedetect display=false \
 *       ! feremotion mode=roi ! fakesink
 * ]| two cameras, one model in memory, their faces classified together.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstferemotion.h"

#include <math.h>
#include <string.h>

#include "fer-config.h"

GST_DEBUG_CATEGORY_STATIC (gst_fer_emotion_debug);
#define GST_CAT_DEFAULT gst_fer_emotion_debug

#define DEFAULT_MODEL FER_MODEL_DEFAULT
#define DEFAULT_BACKEND FER_BACKEND_AUTO
#define DEFAULT_DEVICE_ID 0
#define DEFAULT_TTA FER_TTA_DEFAULT
#define DEFAULT_BATCH_SIZE 0
#define DEFAULT_MODE GST_FER_EMOTION_MODE_AUTO
#define DEFAULT_ROI_TYPE "face"
#define DEFAULT_FACE_MARGIN 0.0
#define DEFAULT_MIN_FACE_SIZE 8
#define DEFAULT_SMOOTHING 0.0
#define DEFAULT_POST_MESSAGES TRUE
#define DEFAULT_QOS TRUE
#define DEFAULT_THREADS 0
#define DEFAULT_SHARED TRUE
#define DEFAULT_MAX_BATCH_WAIT 1000
#define DEFAULT_MAX_BATCH 32

/* A track not matched for this many frames is forgotten. */
#define TRACK_MAX_AGE 30
/* Boxes overlapping at least this much (IoU) are the same face. */
#define TRACK_MIN_IOU 0.3f

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_BACKEND,
  PROP_DEVICE_ID,
  PROP_TTA,
  PROP_BATCH_SIZE,
  PROP_MODE,
  PROP_ROI_TYPE,
  PROP_FACE_MARGIN,
  PROP_MIN_FACE_SIZE,
  PROP_SMOOTHING,
  PROP_POST_MESSAGES,
  PROP_QOS,
  PROP_THREADS,
  PROP_LABELS,
  PROP_SHARED,
  PROP_MAX_BATCH_WAIT,
  PROP_MAX_BATCH,
};

#define FORMATS                                                                \
  "{ GRAY8, RGB, BGR, RGBA, BGRA, RGBx, BGRx, xRGB, ARGB, I420, NV12 }"

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (FORMATS)));

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (FORMATS)));

#define gst_fer_emotion_parent_class parent_class
G_DEFINE_TYPE (GstFerEmotion, gst_fer_emotion, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (
    feremotion, "feremotion", GST_RANK_NONE, GST_TYPE_FER_EMOTION);

#define GST_TYPE_FER_EMOTION_MODE (gst_fer_emotion_mode_get_type ())
static GType
gst_fer_emotion_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_FER_EMOTION_MODE_AUTO,
        "The whole frame until the stream carries "
        "a region-of-interest meta of roi-type, then roi (until the next "
        "stream-start)",
        "auto" },
    { GST_FER_EMOTION_MODE_FRAME, "Each buffer is one face crop", "frame" },
    { GST_FER_EMOTION_MODE_ROI, "Every region-of-interest meta of roi-type",
        "roi" },
    { 0, NULL, NULL }
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstFerEmotionMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_FER_EMOTION_BACKEND (gst_fer_emotion_backend_get_type ())
static GType
gst_fer_emotion_backend_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { FER_BACKEND_AUTO, "CUDA when available, else CPU", "auto" },
    { FER_BACKEND_CPU, "CPU (own SIMD kernels)", "cpu" },
    { FER_BACKEND_CUDA, "NVIDIA GPU (CUDA/cuDNN)", "cuda" }, { 0, NULL, NULL }
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstFerEmotionBackend", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
pixel_format_from_video (GstVideoFormat f, fer_pixel_format *out)
{
  static const struct
  {
    GstVideoFormat video;
    fer_pixel_format fer;
  } map[] = {
    { GST_VIDEO_FORMAT_GRAY8, FER_PIXEL_GRAY8 },
    { GST_VIDEO_FORMAT_RGB, FER_PIXEL_RGB },
    { GST_VIDEO_FORMAT_BGR, FER_PIXEL_BGR },
    { GST_VIDEO_FORMAT_RGBA, FER_PIXEL_RGBA },
    { GST_VIDEO_FORMAT_BGRA, FER_PIXEL_BGRA },
    { GST_VIDEO_FORMAT_RGBx, FER_PIXEL_RGBX },
    { GST_VIDEO_FORMAT_BGRx, FER_PIXEL_BGRX },
    { GST_VIDEO_FORMAT_xRGB, FER_PIXEL_XRGB },
    { GST_VIDEO_FORMAT_ARGB, FER_PIXEL_ARGB },
    { GST_VIDEO_FORMAT_I420, FER_PIXEL_I420 },
    { GST_VIDEO_FORMAT_NV12, FER_PIXEL_NV12 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (map); i++) {
    if (map[i].video == f) {
      *out = map[i].fer;
      return TRUE;
    }
  }
  return FALSE;
}

/* ------------------------------------------------------------------ */
/* Model                                                               */

static void
settings_copy (GstFerEmotionSettings *dst, const GstFerEmotionSettings *src)
{
  *dst = *src;
  dst->model = g_strdup (src->model);
}

static fer_model *
load_model (const GstFerEmotionSettings *s, GError **error)
{
  fer_model_options opts;
  fer_model *m;
  gchar *path;

  fer_model_options_init (&opts);
  opts.backend = s->backend;
  opts.device_id = s->device_id;
  opts.threads = s->threads;
  /* a name ("fast") is looked up in $FER_MODEL_PATH, then $datadir */
  path = fer_model_find (s->model, error);
  if (!path)
    return NULL;
  /* shared: the model of every element with this file and options */
  m = s->shared ? fer_model_load_shared (path, &opts, error)
                : fer_model_load (path, &opts, error);
  if (m && fer_model_n_classes (m) > GST_FER_EMOTION_MAX_CLASSES) {
    g_autofree char *shown = fer_text_quote (path, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: %d classes, this element supports at most %d", shown,
        fer_model_n_classes (m), GST_FER_EMOTION_MAX_CLASSES);
    fer_model_free (m);
    m = NULL;
  }
  g_free (path);
  return m;
}

/* backend=auto gave up the GPU for the CPU (libfernn's fail-safe, at
 * load or in the call just made): one warning that says why. */
static void
warn_fallback (GstFerEmotion *self, const fer_model *m)
{
  GST_ELEMENT_WARNING (self, RESOURCE, FAILED,
      ("The GPU failed; emotion inference runs on the CPU."),
      ("%s", fer_model_fallback_reason (m)));
}

/* Installs `m` as the model (a shared one with its batcher); called with
 * model_lock held. */
static void
install_model (GstFerEmotion *self, fer_model *m, gboolean shared)
{
  g_clear_pointer (&self->batch, fer_batch_client_free);
  fer_model_free (self->model);
  self->model = m;
  self->batch = m && shared ? fer_batch_client_new (m) : NULL;
  self->n_classes = m ? (guint) fer_model_n_classes (m) : 0;
  for (guint i = 0; i < self->n_classes; i++)
    self->labels[i] = g_intern_string (fer_model_label (m, (int) i));
  /* a new model's probabilities do not mix with the old one's; the faces
   * keep their track ids */
  for (guint t = 0; t < GST_FER_EMOTION_MAX_TRACKS; t++)
    self->tracks[t].has_probs = FALSE;
}

/* Forgets every face; with new_stream, track ids start again at 1. Called
 * with model_lock held (or before streaming). */
static void
reset_tracks (GstFerEmotion *self, gboolean new_stream)
{
  memset (self->tracks, 0, sizeof self->tracks);
  self->frame_count = 0;
  if (new_stream)
    self->next_track_id = 1;
}

static gboolean
gst_fer_emotion_start (GstBaseTransform *trans)
{
  GstFerEmotion *self = GST_FER_EMOTION (trans);
  GstFerEmotionSettings s;
  GError *error = NULL;
  g_autofree char *shown = NULL;
  fer_model *m;

  guint generation;

reload:
  GST_OBJECT_LOCK (self);
  settings_copy (&s, &self->settings);
  generation = self->model_generation;
  GST_OBJECT_UNLOCK (self);
  /* the property's bytes, shown as valid UTF-8 (a file name need not be) */
  g_free (shown);
  shown = fer_text_quote (s.model ? s.model : "", 0);

  m = load_model (&s, &error);
  if (!m)
    goto load_failed;
  if (s.backend == FER_BACKEND_AUTO)
    GST_INFO_OBJECT (self, "backend=auto chose the %s backend",
        fer_backend_type_to_string (fer_model_backend (m)));
  if (fer_model_fallback_reason (m))
    warn_fallback (self, m);
  GST_INFO_OBJECT (self, "loaded %s: %d classes, input %d", shown,
      fer_model_n_classes (m), fer_model_input_spec (m)->size);

  /* lock order: model_lock, then the object lock. The model property may
   * have changed while this one loaded: then load the newer one. */
  g_mutex_lock (&self->model_lock);
  GST_OBJECT_LOCK (self);
  if (generation != self->model_generation) {
    GST_OBJECT_UNLOCK (self);
    g_mutex_unlock (&self->model_lock);
    fer_model_free (m);
    g_free (s.model);
    goto reload;
  }
  self->started = TRUE;
  self->earliest_time = GST_CLOCK_TIME_NONE;
  self->skipped_late = 0;
  GST_OBJECT_UNLOCK (self);
  install_model (self, m, s.shared);
  reset_tracks (self, TRUE);
  self->seen_rois = FALSE;
  g_mutex_unlock (&self->model_lock);
  g_free (s.model);
  g_object_notify (G_OBJECT (self), "labels");
  return TRUE;

load_failed:
  if (g_error_matches (error, FER_ERROR, FER_ERROR_NO_DEVICE))
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("Backend \"%s\" is not available.",
            fer_backend_type_to_string (s.backend)),
        ("%s", error->message));
  else if (g_error_matches (error, FER_ERROR, FER_ERROR_IO))
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not read emotion model \"%s\".", shown),
        ("%s", error->message));
  else
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("Could not load emotion model \"%s\".", shown),
        ("%s", error->message));
  g_clear_error (&error);
  g_free (s.model);
  return FALSE;
}

static gboolean
gst_fer_emotion_stop (GstBaseTransform *trans)
{
  GstFerEmotion *self = GST_FER_EMOTION (trans);

  GST_OBJECT_LOCK (self);
  self->started = FALSE;
  GST_OBJECT_UNLOCK (self);

  g_mutex_lock (&self->model_lock);
  install_model (self, NULL, FALSE);
  g_mutex_unlock (&self->model_lock);

  g_clear_pointer (&self->rects, g_free);
  g_clear_pointer (&self->roi_ids, g_free);
  g_clear_pointer (&self->track_ids, g_free);
  g_clear_pointer (&self->rois, g_free);
  g_clear_pointer (&self->probs, g_free);
  g_clear_pointer (&self->faces, g_free);
  self->capacity = 0;
  return TRUE;
}

/* A new model while running: loaded in the caller's thread, swapped in
 * between two buffers; on failure the old model stays and a warning says
 * why. */
static void
swap_model (
    GstFerEmotion *self, const GstFerEmotionSettings *s, guint generation)
{
  GError *error = NULL;
  fer_model *m = load_model (s, &error);
  g_autofree char *shown = fer_text_quote (s->model ? s->model : "", 0);

  if (!m) {
    GST_ELEMENT_WARNING (self, RESOURCE, OPEN_READ,
        ("Could not load emotion model \"%s\"; keeping the previous one.",
            shown),
        ("%s", error->message));
    g_clear_error (&error);
    return;
  }
  /* installed only while started (stop() may have run meanwhile) and only
   * when no later value of the property came in: the last value set wins,
   * whichever load finishes first. Lock order as in start(). */
  g_mutex_lock (&self->model_lock);
  GST_OBJECT_LOCK (self);
  gboolean current = self->started && generation == self->model_generation;
  GST_OBJECT_UNLOCK (self);
  if (!current) {
    g_mutex_unlock (&self->model_lock);
    GST_INFO_OBJECT (self, "model %s loaded too late: dropped", shown);
    fer_model_free (m);
    return;
  }
  /* a reference: once model_lock is released, a later swap may free it */
  fer_model *fell_back =
      fer_model_fallback_reason (m) ? fer_model_ref (m) : NULL;
  install_model (self, m, s->shared);
  g_mutex_unlock (&self->model_lock);
  if (fell_back) {
    warn_fallback (self, fell_back);
    fer_model_free (fell_back);
  }
  GST_INFO_OBJECT (self, "switched to model %s", shown);
  g_object_notify (G_OBJECT (self), "labels");
}

/* ------------------------------------------------------------------ */
/* Caps and events                                                     */

static gboolean
gst_fer_emotion_set_caps (
    GstBaseTransform *trans, GstCaps *incaps, GstCaps *outcaps)
{
  GstFerEmotion *self = GST_FER_EMOTION (trans);
  GstVideoInfo info;

  if (!gst_video_info_from_caps (&info, incaps)
      || !pixel_format_from_video (
          GST_VIDEO_INFO_FORMAT (&info), &self->pixel_format)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("unsupported caps %" GST_PTR_FORMAT, incaps));
    return FALSE;
  }
  self->info = info;
  return TRUE;
}

static gboolean
gst_fer_emotion_src_event (GstBaseTransform *trans, GstEvent *event)
{
  GstFerEmotion *self = GST_FER_EMOTION (trans);

  if (GST_EVENT_TYPE (event) == GST_EVENT_QOS) {
    GstQOSType type;
    gdouble proportion;
    GstClockTimeDiff diff;
    GstClockTime timestamp;

    gst_event_parse_qos (event, &type, &proportion, &diff, &timestamp);
    GST_OBJECT_LOCK (self);
    if (GST_CLOCK_TIME_IS_VALID (timestamp) && diff > 0)
      /* like GstVideoDecoder: expect the next buffers to be as late again */
      self->earliest_time = timestamp + 2 * diff;
    else
      self->earliest_time = GST_CLOCK_TIME_NONE;
    GST_OBJECT_UNLOCK (self);
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->src_event (trans, event);
}

static gboolean
gst_fer_emotion_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  GstFerEmotion *self = GST_FER_EMOTION (trans);

  /* a new stream may come without a detector: mode=auto decides afresh.
   * A seek (flush, segment) or a caps change keeps the stream's decision:
   * its detector is still there. */
  if (GST_EVENT_TYPE (event) == GST_EVENT_STREAM_START)
    self->seen_rois = FALSE;
  /* Track ids: a new stream numbers its faces from 1 again; after a flush
   * (a seek) the boxes jump, so faces get new ids, but still unique in the
   * stream. The streaming thread may still be in a buffer on FLUSH_STOP's
   * thread: model_lock. */
  if (GST_EVENT_TYPE (event) == GST_EVENT_STREAM_START
      || GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP) {
    g_mutex_lock (&self->model_lock);
    reset_tracks (self, GST_EVENT_TYPE (event) == GST_EVENT_STREAM_START);
    g_mutex_unlock (&self->model_lock);
  }
  /* serialised: this thread is not in the batcher now. The other streams
   * stop waiting for this one (a flushing or paused one they stop waiting
   * for after one max-batch-wait). */
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
    g_mutex_lock (&self->model_lock);
    if (self->batch)
      fer_batch_client_set_idle (self->batch);
    g_mutex_unlock (&self->model_lock);
  }
  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP
      || GST_EVENT_TYPE (event) == GST_EVENT_SEGMENT) {
    GST_OBJECT_LOCK (self);
    self->earliest_time = GST_CLOCK_TIME_NONE;
    GST_OBJECT_UNLOCK (self);
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

/* A shared model's batcher may hold a buffer up to max-batch-wait for the
 * other streams: that much latency is ours, added to upstream's. */
static gboolean
gst_fer_emotion_query (
    GstBaseTransform *trans, GstPadDirection direction, GstQuery *query)
{
  GstFerEmotion *self = GST_FER_EMOTION (trans);
  gboolean live;
  GstClockTime min, max, wait;

  if (direction != GST_PAD_SRC || GST_QUERY_TYPE (query) != GST_QUERY_LATENCY)
    return GST_BASE_TRANSFORM_CLASS (parent_class)
        ->query (trans, direction, query);
  if (!GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, direction, query))
    return FALSE;
  GST_OBJECT_LOCK (self);
  wait = self->settings.shared
      ? (GstClockTime) self->settings.max_batch_wait * GST_USECOND
      : 0;
  GST_OBJECT_UNLOCK (self);
  gst_query_parse_latency (query, &live, &min, &max);
  GST_DEBUG_OBJECT (self,
      "upstream latency %" GST_TIME_FORMAT ", ours %" GST_TIME_FORMAT,
      GST_TIME_ARGS (min), GST_TIME_ARGS (wait));
  gst_query_set_latency (query, live, min + wait,
      GST_CLOCK_TIME_IS_VALID (max) ? max + wait : max);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Streaming                                                           */

static gboolean
ensure_capacity (GstFerEmotion *self, guint n)
{
  if (n <= self->capacity)
    return TRUE;
  n = MAX (n, MAX (8, self->capacity * 2));
  self->rects = g_renew (fer_rect, self->rects, n);
  self->roi_ids = g_renew (gint, self->roi_ids, n);
  self->track_ids = g_renew (gint, self->track_ids, n);
  self->rois = g_renew (GstVideoRegionOfInterestMeta *, self->rois, n);
  self->probs =
      g_renew (gfloat, self->probs, (gsize) n * GST_FER_EMOTION_MAX_CLASSES);
  self->faces = g_renew (GstStructure *, self->faces, n);
  self->capacity = n;
  return TRUE;
}

/* The ROI box grown by `margin` of its size on every side and clipped to
 * the frame; FALSE when nothing of at least `min_size` pixels is left. */
static gboolean
face_rect (const GstVideoRegionOfInterestMeta *roi, gint width, gint height,
    gdouble margin, gint min_size, fer_rect *out)
{
  /* ROI fields are unsigned: a detector's negative coordinate arrives as a
   * huge value, which lands outside the frame and is refused below. */
  gdouble x = roi->x, y = roi->y, w = roi->w, h = roi->h;
  gdouble x0 = x - margin * w, y0 = y - margin * h;
  gdouble x1 = x + w + margin * w, y1 = y + h + margin * h;

  x0 = CLAMP (x0, 0.0, (gdouble) width);
  y0 = CLAMP (y0, 0.0, (gdouble) height);
  x1 = CLAMP (x1, 0.0, (gdouble) width);
  y1 = CLAMP (y1, 0.0, (gdouble) height);
  if (x1 - x0 < MAX (min_size, 1) || y1 - y0 < MAX (min_size, 1))
    return FALSE;
  out->x = (gfloat) x0;
  out->y = (gfloat) y0;
  out->w = (gfloat) (x1 - x0);
  out->h = (gfloat) (y1 - y0);
  return TRUE;
}

/* Whether this buffer is one face: mode=frame, or mode=auto on a stream
 * that has not carried a face ROI meta since it started. Once a detector's
 * ROIs were seen, a frame without one is a frame where the detector found
 * no face, not a face crop. */
static gboolean
classifies_whole_frame (GstFerEmotion *self, const GstFerEmotionSettings *s)
{
  return s->mode == GST_FER_EMOTION_MODE_FRAME
      || (s->mode == GST_FER_EMOTION_MODE_AUTO && !self->seen_rois);
}

/* Fills rects/roi_ids/rois with the faces to classify; returns their count. */
static guint
collect_faces (
    GstFerEmotion *self, GstBuffer *buf, const GstFerEmotionSettings *s)
{
  gint width = GST_VIDEO_INFO_WIDTH (&self->info);
  gint height = GST_VIDEO_INFO_HEIGHT (&self->info);
  guint n = 0, n_roi = 0;

  if (s->mode != GST_FER_EMOTION_MODE_FRAME) {
    gpointer state = NULL;
    GstMeta *meta;
    while ((meta = gst_buffer_iterate_meta_filtered (
                buf, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
      GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
      fer_rect r;
      if (roi->roi_type != s->roi_type)
        continue;
      n_roi++;
      if (!face_rect (
              roi, width, height, s->face_margin, s->min_face_size, &r)) {
        GST_LOG_OBJECT (self,
            "skipping ROI %d (%u,%u %ux%u): empty, outside "
            "the %dx%d frame or smaller than min-face-size=%d",
            roi->id, roi->x, roi->y, roi->w, roi->h, width, height,
            s->min_face_size);
        continue;
      }
      ensure_capacity (self, n + 1);
      self->rects[n] = r;
      self->roi_ids[n] = roi->id;
      self->rois[n] = roi;
      n++;
    }
  }
  if (s->mode == GST_FER_EMOTION_MODE_AUTO && n_roi > 0 && !self->seen_rois) {
    GST_INFO_OBJECT (self,
        "mode=auto: the stream carries \"%s\" ROI metas; "
        "frames without one get no emotion until the next stream",
        g_quark_to_string (s->roi_type));
    self->seen_rois = TRUE;
  }
  if (classifies_whole_frame (self, s)) {
    ensure_capacity (self, 1);
    self->rects[0] = (fer_rect){ 0.0f, 0.0f, (gfloat) width, (gfloat) height };
    self->roi_ids[0] = -1;
    self->rois[0] = NULL;
    n = 1;
  }
  return n;
}

/* Called with model_lock held; *fell_back says that this call made the
 * model give up its GPU (the caller warns once the lock is released: a
 * sync bus handler may call back into the element). */
static gboolean
classify_faces (GstFerEmotion *self, GstBuffer *buf, guint n,
    const GstFerEmotionSettings *s, gboolean *fell_back, GError **error)
{
  GstVideoFrame frame;
  fer_image img = { 0 };
  gboolean ok = TRUE;
  guint batch = s->batch_size > 0 ? (guint) s->batch_size : n;
  fer_backend_type was = fer_model_backend (self->model);

  if (!gst_video_frame_map (&frame, &self->info, buf, GST_MAP_READ)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "could not map the video frame for reading");
    return FALSE;
  }
  img.format = self->pixel_format;
  img.width = GST_VIDEO_FRAME_WIDTH (&frame);
  img.height = GST_VIDEO_FRAME_HEIGHT (&frame);
  for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES (&frame) && p < 3; p++) {
    img.planes[p] = GST_VIDEO_FRAME_PLANE_DATA (&frame, p);
    img.strides[p] = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, p);
  }
  img.full_range = self->info.colorimetry.range == GST_VIDEO_COLOR_RANGE_0_255;

  for (guint f0 = 0; ok && f0 < n; f0 += batch) {
    guint nb = MIN (batch, n - f0);
    gfloat *probs = self->probs + (gsize) f0 * self->n_classes;
    ok = self->batch
        ? fer_batch_client_classify (self->batch, &img, self->rects + f0,
            (int) nb, s->tta, s->max_batch_wait, s->max_batch, probs, error)
        : fer_model_classify (self->model, &img, self->rects + f0, (int) nb,
            s->tta, probs, error);
  }
  gst_video_frame_unmap (&frame);
  *fell_back = fer_model_backend (self->model) != was;
  return ok;
}

static gfloat
box_iou (const fer_rect *a, const fer_rect *b)
{
  gfloat x0 = MAX (a->x, b->x), y0 = MAX (a->y, b->y);
  gfloat x1 = MIN (a->x + a->w, b->x + b->w);
  gfloat y1 = MIN (a->y + a->h, b->y + b->h);
  gfloat inter = MAX (0.0f, x1 - x0) * MAX (0.0f, y1 - y0);
  gfloat uni = a->w * a->h + b->w * b->h - inter;
  return uni > 0.0f ? inter / uni : 0.0f;
}

/* Matches each face to a track (by ROI id when the detector sets distinct
 * ids, else by the best box overlap), gives it the track's id
 * (self->track_ids) and, with smoothing > 0, the exponential moving
 * average of its probabilities over frames:
 * p = smoothing * p_previous + (1 - smoothing) * p_now. */
static void
track_faces (GstFerEmotion *self, guint n, gdouble smoothing)
{
  gboolean taken[GST_FER_EMOTION_MAX_TRACKS] = { FALSE };
  guint k = self->n_classes;

  self->frame_count++;
  for (guint f = 0; f < n; f++) {
    gfloat *p = self->probs + (gsize) f * k;
    gint best = -1;
    gfloat best_iou = TRACK_MIN_IOU;
    self->track_ids[f] = -1;
    for (gint t = 0; t < GST_FER_EMOTION_MAX_TRACKS; t++) {
      GstFerEmotionTrack *tr = &self->tracks[t];
      if (!tr->live || taken[t])
        continue;
      if (self->roi_ids[f] > 0 && tr->roi_id == self->roi_ids[f]) {
        best = t;
        break;
      }
      gfloat iou = box_iou (&tr->box, &self->rects[f]);
      if (iou >= best_iou) {
        best_iou = iou;
        best = t;
      }
    }
    if (best < 0) {
      /* a new face: the free slot, or the stalest track */
      guint64 oldest = G_MAXUINT64;
      for (gint t = 0; t < GST_FER_EMOTION_MAX_TRACKS; t++) {
        guint64 age = self->tracks[t].live ? self->tracks[t].last_seen : 0;
        if (!taken[t] && age < oldest) {
          oldest = age;
          best = t;
        }
      }
      if (best < 0)
        continue; /* more faces than tracks: this one goes untracked */
      self->tracks[best].live = FALSE;
      self->tracks[best].has_probs = FALSE;
      self->tracks[best].id = self->next_track_id;
      /* ids stay positive: after 2^31 - 1 faces in one stream, wrap */
      self->next_track_id =
          self->next_track_id == G_MAXINT ? 1 : self->next_track_id + 1;
    }
    GstFerEmotionTrack *tr = &self->tracks[best];
    if (smoothing > 0.0 && tr->has_probs) {
      for (guint j = 0; j < k; j++)
        p[j] = (gfloat) (smoothing * tr->probs[j] + (1.0 - smoothing) * p[j]);
    }
    memcpy (tr->probs, p, k * sizeof (gfloat));
    tr->has_probs = TRUE;
    tr->live = TRUE;
    tr->roi_id = self->roi_ids[f];
    tr->box = self->rects[f];
    tr->last_seen = self->frame_count;
    taken[best] = TRUE;
    self->track_ids[f] = tr->id;
  }
  for (gint t = 0; t < GST_FER_EMOTION_MAX_TRACKS; t++)
    if (self->tracks[t].live
        && self->frame_count - self->tracks[t].last_seen > TRACK_MAX_AGE)
      self->tracks[t].live = FALSE;
}

static GstStructure *
face_structure (GstFerEmotion *self, const GstFerEmotionMeta *m,
    const gchar *name, gboolean with_box)
{
  GValue arr = G_VALUE_INIT, v = G_VALUE_INIT;
  GstStructure *s = gst_structure_new (name, "label", G_TYPE_STRING, m->label,
      "label_id", G_TYPE_INT, m->label_id, "confidence", G_TYPE_DOUBLE,
      (gdouble) m->confidence, NULL);

  /* the ROI param uses the meta's field names, the message its own style */
  if (with_box)
    gst_structure_set (s, "x", G_TYPE_INT, m->x, "y", G_TYPE_INT, m->y, "width",
        G_TYPE_INT, m->w, "height", G_TYPE_INT, m->h, "roi-id", G_TYPE_INT,
        m->roi_id, "track-id", G_TYPE_INT, m->track_id, NULL);
  else
    gst_structure_set (s, "track_id", G_TYPE_INT, m->track_id, NULL);
  g_value_init (&arr, GST_TYPE_ARRAY);
  for (guint i = 0; i < m->n_classes; i++) {
    g_value_init (&v, G_TYPE_DOUBLE);
    g_value_set_double (&v, m->probabilities[i]);
    gst_value_array_append_and_take_value (&arr, &v);
  }
  gst_structure_take_value (s, "probabilities", &arr);
  return s;
}

/* Replaces any earlier `emotion` param (a second feremotion downstream). */
static void
set_roi_param (GstVideoRegionOfInterestMeta *roi, GstStructure *s)
{
  for (GList *l = roi->params; l; l = l->next) {
    if (gst_structure_has_name (l->data, "emotion")) {
      gst_structure_free (l->data);
      roi->params = g_list_delete_link (roi->params, l);
      break;
    }
  }
  gst_video_region_of_interest_meta_add_param (roi, s);
}

/* The same values as a GValueArray: the one container type that PyGObject
 * turns into a Python list on its own (without gst-python's overrides it
 * reads neither GstValueList nor GstValueArray: "unknown type
 * GstValueList"). GValueArray is deprecated in GLib, not in GStreamer's
 * structures, which serialize it. */
G_GNUC_BEGIN_IGNORE_DEPRECATIONS
static GValueArray *
to_value_array (const GValue *values)
{
  gboolean is_list = GST_VALUE_HOLDS_LIST (values);
  guint n = is_list ? gst_value_list_get_size (values)
                    : gst_value_array_get_size (values);
  GValueArray *a = g_value_array_new (n);

  for (guint i = 0; i < n; i++)
    g_value_array_append (a,
        is_list ? gst_value_list_get_value (values, i)
                : gst_value_array_get_value (values, i));
  return a;
}

static void
take_value_array (GstStructure *s, const gchar *field, GValueArray *a)
{
  GValue v = G_VALUE_INIT;

  g_value_init (&v, g_value_array_get_type ());
  g_value_take_boxed (&v, a);
  gst_structure_take_value (s, field, &v);
}

/* `face-array`: the faces of `faces` with `probabilities` a GValueArray. */
static GValueArray *
faces_for_python (const GValue *faces)
{
  guint n = gst_value_list_get_size (faces);
  GValueArray *a = g_value_array_new (n);
  GValue v = G_VALUE_INIT;

  g_value_init (&v, GST_TYPE_STRUCTURE);
  for (guint f = 0; f < n; f++) {
    const GstStructure *face =
        gst_value_get_structure (gst_value_list_get_value (faces, f));
    GstStructure *copy = gst_structure_copy (face);

    take_value_array (copy, "probabilities",
        to_value_array (gst_structure_get_value (face, "probabilities")));
    g_value_take_boxed (&v, copy);
    g_value_array_append (a, &v);
  }
  g_value_unset (&v);
  return a;
}
G_GNUC_END_IGNORE_DEPRECATIONS

static void
post_message (GstFerEmotion *self, GstBuffer *buf, const gchar *mode,
    guint n_classes, const gchar *const *labels_of, GstStructure **faces,
    guint n)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  GstClockTime ts = GST_BUFFER_PTS (buf);
  GValue list = G_VALUE_INIT, labels = G_VALUE_INIT, v = G_VALUE_INIT;
  GstStructure *s = gst_structure_new ("feremotion", "timestamp", G_TYPE_UINT64,
      ts, "stream-time", G_TYPE_UINT64,
      gst_segment_to_stream_time (&trans->segment, GST_FORMAT_TIME, ts),
      "running-time", G_TYPE_UINT64,
      gst_segment_to_running_time (&trans->segment, GST_FORMAT_TIME, ts),
      "duration", G_TYPE_UINT64, GST_BUFFER_DURATION (buf), "mode",
      G_TYPE_STRING, mode, NULL);

  g_value_init (&labels, GST_TYPE_ARRAY);
  for (guint i = 0; i < n_classes; i++) {
    g_value_init (&v, G_TYPE_STRING);
    g_value_set_static_string (&v, labels_of[i]);
    gst_value_array_append_and_take_value (&labels, &v);
  }
  take_value_array (s, "label-array", to_value_array (&labels));
  gst_structure_take_value (s, "labels", &labels);
  g_value_init (&list, GST_TYPE_LIST);
  for (guint f = 0; f < n; f++) {
    g_value_init (&v, GST_TYPE_STRUCTURE);
    g_value_take_boxed (&v, faces[f]);
    gst_value_list_append_and_take_value (&list, &v);
  }
  take_value_array (s, "face-array", faces_for_python (&list));
  gst_structure_take_value (s, "faces", &list);
  gst_element_post_message (
      GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), s));
}

static gboolean
is_late (GstFerEmotion *self, GstBuffer *buf)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  GstClockTime rt, earliest;

  GST_OBJECT_LOCK (self);
  earliest = self->earliest_time;
  GST_OBJECT_UNLOCK (self);
  if (!GST_CLOCK_TIME_IS_VALID (earliest) || !GST_BUFFER_PTS_IS_VALID (buf))
    return FALSE;
  rt = gst_segment_to_running_time (
      &trans->segment, GST_FORMAT_TIME, GST_BUFFER_PTS (buf));
  /* outside the segment: no running time, so not late (adding the
   * duration to GST_CLOCK_TIME_NONE would wrap to a small time) */
  if (!GST_CLOCK_TIME_IS_VALID (rt))
    return FALSE;
  if (GST_BUFFER_DURATION_IS_VALID (buf))
    rt += GST_BUFFER_DURATION (buf);
  return rt < earliest;
}

static GstFlowReturn
gst_fer_emotion_transform_ip (GstBaseTransform *trans, GstBuffer *buf)
{
  GstFerEmotion *self = GST_FER_EMOTION (trans);
  GstFerEmotionSettings s;
  GError *error = NULL;
  gboolean fell_back = FALSE;
  fer_model *fell_back_model;
  guint n;

  GST_OBJECT_LOCK (self);
  s = self->settings;
  s.model = NULL; /* not needed here: no copy */
  GST_OBJECT_UNLOCK (self);

  if (s.qos && is_late (self, buf)) {
    GST_OBJECT_LOCK (self);
    self->skipped_late++;
    GST_OBJECT_UNLOCK (self);
    GST_DEBUG_OBJECT (self,
        "late buffer %" GST_TIME_FORMAT ": passed on "
        "without inference",
        GST_TIME_ARGS (GST_BUFFER_PTS (buf)));
    return GST_FLOW_OK;
  }

  g_mutex_lock (&self->model_lock);
  if (!self->model) {
    g_mutex_unlock (&self->model_lock);
    GST_ELEMENT_ERROR (self, CORE, STATE_CHANGE, (NULL), ("no model loaded"));
    return GST_FLOW_ERROR;
  }
  n = collect_faces (self, buf, &s);
  if (n > 0 && !classify_faces (self, buf, n, &s, &fell_back, &error)) {
    g_mutex_unlock (&self->model_lock);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Emotion inference failed."),
        ("%s", error->message));
    g_clear_error (&error);
    return GST_FLOW_ERROR;
  }
  track_faces (self, n, s.smoothing);

  for (guint f = 0; f < n; f++) {
    const fer_rect *r = &self->rects[f];
    GstFerEmotionMeta *m = gst_buffer_add_fer_emotion_meta (buf,
        (gint) lroundf (r->x), (gint) lroundf (r->y), (gint) lroundf (r->w),
        (gint) lroundf (r->h), self->roi_ids[f], self->n_classes, self->labels,
        self->probs + (gsize) f * self->n_classes);
    m->track_id = self->track_ids[f];
    if (self->rois[f]) {
      GstStructure *param = face_structure (self, m, "emotion", FALSE);
      GST_LOG_OBJECT (self, "ROI %d param: %" GST_PTR_FORMAT, m->roi_id, param);
      set_roi_param (self->rois[f], param);
    }
    if (s.post_messages)
      self->faces[f] = face_structure (self, m, "face", TRUE);
  }
  fell_back_model = fell_back ? fer_model_ref (self->model) : NULL;
  /* the message's labels are those of the model that gave the
   * probabilities: a swap may come in once model_lock is released */
  const guint n_classes = self->n_classes;
  const gchar *labels[GST_FER_EMOTION_MAX_CLASSES];
  memcpy (labels, self->labels, n_classes * sizeof labels[0]);
  g_mutex_unlock (&self->model_lock);
  if (fell_back_model) {
    warn_fallback (self, fell_back_model);
    fer_model_free (fell_back_model);
  }
  if (s.post_messages)
    post_message (self, buf,
        classifies_whole_frame (self, &s) ? "frame" : "roi", n_classes, labels,
        self->faces, n);
  return GST_FLOW_OK;
}

/* ------------------------------------------------------------------ */
/* Properties                                                          */

static void
gst_fer_emotion_set_property (
    GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstFerEmotion *self = GST_FER_EMOTION (object);
  GstFerEmotionSettings swap;
  gboolean do_swap = FALSE, post_latency = FALSE;
  guint generation = 0;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_free (self->settings.model);
      self->settings.model = g_value_dup_string (value);
      generation = ++self->model_generation;
      if (self->started) {
        settings_copy (&swap, &self->settings);
        do_swap = TRUE;
      }
      break;
    case PROP_BACKEND:
      self->settings.backend = g_value_get_enum (value);
      break;
    case PROP_DEVICE_ID:
      self->settings.device_id = g_value_get_int (value);
      break;
    case PROP_TTA:
      self->settings.tta = g_value_get_int (value);
      break;
    case PROP_BATCH_SIZE:
      self->settings.batch_size = g_value_get_int (value);
      break;
    case PROP_MODE:
      self->settings.mode = g_value_get_enum (value);
      break;
    case PROP_ROI_TYPE:
      self->settings.roi_type = g_quark_from_string (g_value_get_string (value)
              ? g_value_get_string (value)
              : DEFAULT_ROI_TYPE);
      break;
    case PROP_FACE_MARGIN:
      self->settings.face_margin = g_value_get_double (value);
      break;
    case PROP_MIN_FACE_SIZE:
      self->settings.min_face_size = g_value_get_int (value);
      break;
    case PROP_SMOOTHING:
      self->settings.smoothing = g_value_get_double (value);
      break;
    case PROP_POST_MESSAGES:
      self->settings.post_messages = g_value_get_boolean (value);
      break;
    case PROP_QOS:
      self->settings.qos = g_value_get_boolean (value);
      break;
    case PROP_THREADS:
      self->settings.threads = g_value_get_int (value);
      break;
    case PROP_SHARED:
      self->settings.shared = g_value_get_boolean (value);
      break;
    case PROP_MAX_BATCH_WAIT:
      self->settings.max_batch_wait = g_value_get_uint (value);
      /* our latency changes: the pipeline asks again */
      post_latency = self->started;
      break;
    case PROP_MAX_BATCH:
      self->settings.max_batch = g_value_get_int (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);

  if (post_latency)
    gst_element_post_message (
        GST_ELEMENT (self), gst_message_new_latency (GST_OBJECT (self)));
  if (do_swap) {
    swap_model (self, &swap, generation);
    g_free (swap.model);
  }
}

static void
gst_fer_emotion_get_property (
    GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstFerEmotion *self = GST_FER_EMOTION (object);

  if (prop_id == PROP_LABELS) {
    GStrv labels;
    g_mutex_lock (&self->model_lock);
    labels = g_new0 (gchar *, self->n_classes + 1);
    for (guint i = 0; i < self->n_classes; i++)
      labels[i] = g_strdup (self->labels[i]);
    g_mutex_unlock (&self->model_lock);
    g_value_take_boxed (value, labels);
    return;
  }

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->settings.model);
      break;
    case PROP_BACKEND:
      g_value_set_enum (value, self->settings.backend);
      break;
    case PROP_DEVICE_ID:
      g_value_set_int (value, self->settings.device_id);
      break;
    case PROP_TTA:
      g_value_set_int (value, self->settings.tta);
      break;
    case PROP_BATCH_SIZE:
      g_value_set_int (value, self->settings.batch_size);
      break;
    case PROP_MODE:
      g_value_set_enum (value, self->settings.mode);
      break;
    case PROP_ROI_TYPE:
      g_value_set_string (value, g_quark_to_string (self->settings.roi_type));
      break;
    case PROP_FACE_MARGIN:
      g_value_set_double (value, self->settings.face_margin);
      break;
    case PROP_MIN_FACE_SIZE:
      g_value_set_int (value, self->settings.min_face_size);
      break;
    case PROP_SMOOTHING:
      g_value_set_double (value, self->settings.smoothing);
      break;
    case PROP_POST_MESSAGES:
      g_value_set_boolean (value, self->settings.post_messages);
      break;
    case PROP_QOS:
      g_value_set_boolean (value, self->settings.qos);
      break;
    case PROP_THREADS:
      g_value_set_int (value, self->settings.threads);
      break;
    case PROP_SHARED:
      g_value_set_boolean (value, self->settings.shared);
      break;
    case PROP_MAX_BATCH_WAIT:
      g_value_set_uint (value, self->settings.max_batch_wait);
      break;
    case PROP_MAX_BATCH:
      g_value_set_int (value, self->settings.max_batch);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_fer_emotion_finalize (GObject *object)
{
  GstFerEmotion *self = GST_FER_EMOTION (object);

  install_model (self, NULL, FALSE);
  g_free (self->rects);
  g_free (self->roi_ids);
  g_free (self->track_ids);
  g_free (self->rois);
  g_free (self->probs);
  g_free (self->faces);
  g_free (self->settings.model);
  g_mutex_clear (&self->model_lock);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_fer_emotion_class_init (GstFerEmotionClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  gchar **names, *known, *model_blurb;

  GST_DEBUG_CATEGORY_INIT (
      gst_fer_emotion_debug, "feremotion", 0, "facial expression recognition");

  gobject_class->set_property = gst_fer_emotion_set_property;
  gobject_class->get_property = gst_fer_emotion_get_property;
  gobject_class->finalize = gst_fer_emotion_finalize;

  names = fer_model_names ();
  known = g_strjoinv (", ", names);
  /* the names that exist where this process looks, as gst-inspect shows */
  model_blurb = g_strdup_printf (
      "Emotion model: a name, looked up in "
      "$FER_MODEL_PATH, then " FER_DATADIR " (found here: %s), or a "
      ".safetensors file (torchvision ResNet-18 names); may be changed "
      "while playing: the new model is loaded, then swapped in between two "
      "buffers",
      names[0] ? known : "none");
  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model", model_blurb, DEFAULT_MODEL,
          G_PARAM_READWRITE | G_PARAM_STATIC_NAME | G_PARAM_STATIC_NICK
              | GST_PARAM_MUTABLE_PLAYING));
  g_free (model_blurb);
  g_free (known);
  g_strfreev (names);
  g_object_class_install_property (gobject_class, PROP_BACKEND,
      g_param_spec_enum ("backend", "Backend",
          "Where inference runs. A GPU is first checked against the CPU "
          "(self-test); under auto, a GPU that fails to start, the self-test "
          "or later falls back to the CPU with one warning (no buffer or "
          "face lost), under cuda that is an error",
          GST_TYPE_FER_EMOTION_BACKEND, DEFAULT_BACKEND,
          rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_DEVICE_ID,
      g_param_spec_int ("device-id", "Device id", "CUDA device (backend=cuda)",
          0, 64, DEFAULT_DEVICE_ID, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_TTA,
      g_param_spec_int ("tta", "TTA views",
          "Test-time-augmented views per face (1 = none; docs/tta.md)", 1,
          FER_TTA_MAX, DEFAULT_TTA, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_BATCH_SIZE,
      g_param_spec_int ("batch-size", "Batch size",
          "Faces per forward batch (0 = all faces of a buffer at once)", 0,
          4096, DEFAULT_BATCH_SIZE, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MODE,
      g_param_spec_enum ("mode", "Mode",
          "What is classified. auto: whole "
          "frames until the stream carries a face ROI meta (roi-type), then "
          "ROIs only: frames without a face get no emotion. With a face "
          "detector upstream use roi, which also skips the frames before "
          "its first face",
          GST_TYPE_FER_EMOTION_MODE, DEFAULT_MODE,
          rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_ROI_TYPE,
      g_param_spec_string ("roi-type", "ROI type",
          "Type of the region-of-interest metas that are faces",
          DEFAULT_ROI_TYPE, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_FACE_MARGIN,
      g_param_spec_double ("face-margin", "Face margin",
          "Fraction of the ROI size added on every side before cropping", 0.0,
          1.0, DEFAULT_FACE_MARGIN, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MIN_FACE_SIZE,
      g_param_spec_int ("min-face-size", "Minimum face size",
          "ROIs narrower or shorter than this (pixels, after clipping to "
          "the frame) are not classified",
          1, G_MAXINT, DEFAULT_MIN_FACE_SIZE, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_SMOOTHING,
      g_param_spec_double ("smoothing", "Smoothing",
          "Weight of the previous frames in a per-face exponential moving "
          "average of the probabilities (0 = off)",
          0.0, 0.99, DEFAULT_SMOOTHING, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
          "Post a 'feremotion' element message per buffer",
          DEFAULT_POST_MESSAGES, rw | GST_PARAM_MUTABLE_PLAYING));
  /* GstBaseTransform's own `qos` (off by default) would drop late buffers;
   * this one replaces it, so that there is one late-buffer knob, and a
   * recording or a JSON export downstream never loses a frame. */
  g_object_class_install_property (gobject_class, PROP_QOS,
      g_param_spec_boolean ("qos", "QoS",
          "Handle downstream Quality-of-Service events: buffers reported "
          "late are passed on without inference (never dropped)",
          DEFAULT_QOS, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_THREADS,
      g_param_spec_int ("threads", "Threads",
          "CPU backend threads (0 = library default)", 0, 1024, DEFAULT_THREADS,
          rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_LABELS,
      g_param_spec_boxed ("labels", "Labels",
          "Class names of the loaded model, in probability order", G_TYPE_STRV,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_SHARED,
      g_param_spec_boolean ("shared", "Shared model",
          "Share one loaded model with every other feremotion (and libfernn "
          "user) of this process that loads the same file with the same "
          "backend, device-id and threads, and batch their faces together "
          "(max-batch-wait); false = a model of this element's own. "
          "Changing model on one element never changes the others'",
          DEFAULT_SHARED, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_MAX_BATCH_WAIT,
      g_param_spec_uint ("max-batch-wait", "Maximum batch wait",
          "shared=true: microseconds a buffer may wait for the other "
          "streams' buffers to run in one forward with them (0 = never "
          "wait; a forward running already still collects what comes "
          "meanwhile). Streams that stalled, paused or ended are not "
          "waited for. Reported as this element's latency",
          0, 1000000, DEFAULT_MAX_BATCH_WAIT, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MAX_BATCH,
      g_param_spec_int ("max-batch", "Maximum batch",
          "shared=true: faces of several streams run in one forward at most "
          "(a buffer with more runs alone)",
          1, 4096, DEFAULT_MAX_BATCH, rw | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_set_static_metadata (element_class,
      "Facial expression recognition", "Filter/Analyzer/Video",
      "Classifies the facial expression of faces (whole frames or "
      "region-of-interest metas) with a ResNet-18 and attaches emotion "
      "metadata",
      "gst-feremotion authors");
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_fer_emotion_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_fer_emotion_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_fer_emotion_set_caps);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_fer_emotion_transform_ip);
  trans_class->src_event = GST_DEBUG_FUNCPTR (gst_fer_emotion_src_event);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_fer_emotion_sink_event);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_fer_emotion_query);
  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_ip_on_passthrough = FALSE;

  gst_type_mark_as_plugin_api (GST_TYPE_FER_EMOTION_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_FER_EMOTION_BACKEND, 0);
}

static void
gst_fer_emotion_init (GstFerEmotion *self)
{
  GstFerEmotionSettings *s = &self->settings;

  g_mutex_init (&self->model_lock);
  s->model = g_strdup (DEFAULT_MODEL);
  s->backend = DEFAULT_BACKEND;
  s->device_id = DEFAULT_DEVICE_ID;
  s->tta = DEFAULT_TTA;
  s->batch_size = DEFAULT_BATCH_SIZE;
  s->mode = DEFAULT_MODE;
  s->roi_type = g_quark_from_static_string (DEFAULT_ROI_TYPE);
  s->face_margin = DEFAULT_FACE_MARGIN;
  s->min_face_size = DEFAULT_MIN_FACE_SIZE;
  s->smoothing = DEFAULT_SMOOTHING;
  s->post_messages = DEFAULT_POST_MESSAGES;
  s->qos = DEFAULT_QOS;
  s->threads = DEFAULT_THREADS;
  s->shared = DEFAULT_SHARED;
  s->max_batch_wait = DEFAULT_MAX_BATCH_WAIT;
  s->max_batch = DEFAULT_MAX_BATCH;
  self->earliest_time = GST_CLOCK_TIME_NONE;
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), FALSE);
}
