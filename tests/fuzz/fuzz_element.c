/* libFuzzer target: the feremotion element's caps and region-of-interest
 * handling, driven from bytes through a GstHarness, at tta 1..2, with a
 * small-input model (below). The element's code is compiled into this binary (with the
 * fuzz build's instrumentation and sanitizers) and registered statically,
 * so that no plugin is loaded from disk. Input:
 *   byte 0: format (the element's sink formats, in template order), 1: width - 1, 2: height - 1 (1..64, odd
 *   sizes allowed), 3: mode, 4: face-margin x 255, 5: min-face-size - 1,
 *   6: tta - 1, 7: flags (bit 0 post-messages, bit 1 roi-type=person),
 *   then up to MAX_ROIS records of 11 bytes: x, y, w, h as int16 LE (a
 *   negative one reaches the element as a huge unsigned value, as from a
 *   detector that computes boxes in signed integers), the ROI type (table
 *   below) and the id as int16 LE; what is left fills the frame.
 * One harness serves every input (loading the model per input would cost
 * most of the time); each input starts a new stream (stream-start, caps,
 * segment), so the per-stream state does not carry over. Checks: the one
 * buffer pushed comes out, alone; its emotion metas are inside the frame
 * (the element clips boxes to it), name a face ROI of the buffer (or the
 * whole frame, roi-id -1), carry UTF-8 labels of the model and
 * probabilities that add up to one; each classified ROI got one
 * "emotion" param with the same label.
 *
 * The model: a ResNet-18 like the shipped one (torchvision stem, F16
 * weights, the FER2013 labels, a crop of its input) but for 8 x 8 crops of
 * a 12 x 12 input instead of 44 of 48, with random weights written at
 * start-up. The bytes steer the caps, the regions, the crops and their
 * resizing, never the network, whose input has a fixed shape; at 48 x 48
 * its forward passes were most of the time (about 100 inputs/s), at 8 x 8
 * they cost a few percent of it. The values of the weights do not matter
 * to the checks. */
#include "fuzz-common.h"

#include <math.h>

#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "gstferemotion.h"

#include <fer/fer.h>

#define MAX_ROIS 6
#define ROI_RECORD 11

static GstHarness *harness;

/* The raw formats the element accepts, from its sink pad template. */
static GArray *formats;
static const char *const modes[] = { "auto", "frame", "roi" };
static const char *const roi_types[] = { "face", "person", "Face", "" };

/* The model the harness runs (see the top): written to dir, a private
 * temporary folder, as dir/model.safetensors. */
static char *
write_model (const char *dir)
{
  static const char *const metadata[] = { "fer.input_size", "12",
    "fer.crop_size", "8", NULL };
  const fer_arch arch = { FER_STEM_TORCHVISION, FER_HEAD_FC, 1, 7 };
  GError *error = NULL;
  char *path = g_build_filename (dir, "model.safetensors", NULL);

  if (!fer_model_write_random (
          &arch, 1, TRUE, FER_DTYPE_F16, metadata, path, &error)) {
    fprintf (stderr, "fuzz-element: %s\n", error->message);
    abort ();
  }
  return path;
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  /* no registry, no system plugins: the harness needs only the element */
  g_setenv ("GST_REGISTRY_DISABLE", "yes", TRUE);
  g_setenv ("GST_PLUGIN_SYSTEM_PATH_1_0", "", TRUE);
  gst_init (NULL, NULL);
  if (!GST_ELEMENT_REGISTER (feremotion, NULL))
    abort ();
  GstElementFactory *f = gst_element_factory_find ("feremotion");
  /* sink and src take the same formats */
  GstStaticPadTemplate *t =
      gst_element_factory_get_static_pad_templates (f)->data;
  GstCaps *caps = gst_static_caps_get (&t->static_caps);
  const GValue *list =
      gst_structure_get_value (gst_caps_get_structure (caps, 0), "format");
  formats = g_array_new (FALSE, FALSE, sizeof (GstVideoFormat));
  for (guint i = 0; i < gst_value_list_get_size (list); i++) {
    GstVideoFormat v = gst_video_format_from_string (
        g_value_get_string (gst_value_list_get_value (list, i)));
    g_array_append_val (formats, v);
  }
  gst_caps_unref (caps);
  gst_object_unref (f);
  /* the model is set before the harness starts the element */
  GstElement *e = gst_element_factory_make ("feremotion", NULL);
  if (e == NULL)
    abort ();
  char *dir = g_dir_make_tmp ("fer-fuzz-element-XXXXXX", NULL);
  char *path = dir ? write_model (dir) : NULL;
  if (path == NULL)
    abort ();
  g_object_set (e, "model", path, "threads", 1, NULL);
  gst_util_set_object_arg (G_OBJECT (e), "backend", "cpu");
  harness = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  /* started, so the model is loaded: nothing is left in the folder */
  if (g_unlink (path) != 0 || g_rmdir (dir) != 0)
    abort ();
  g_free (path);
  g_free (dir);
  gst_harness_set_src_caps_str (
      harness, "video/x-raw,format=GRAY8,width=48,height=48,framerate=30/1");
  return 0;
}

typedef struct
{
  gint16 x, y, w, h, id;
  const char *type;
} roi_record;

static gint16
le16 (const uint8_t *p)
{
  return (gint16) (p[0] | (p[1] << 8));
}

/* The meta's box is within the frame (the element clips to it). */
static void
check_box (const GstFerEmotionMeta *m, int width, int height)
{
  if (m->x < 0 || m->y < 0 || m->w < 1 || m->h < 1 || m->x + m->w > width
      || m->y + m->h > height) {
    fprintf (stderr, "box %d,%d %dx%d outside the %dx%d frame\n", m->x, m->y,
        m->w, m->h, width, height);
    abort ();
  }
}

static void
check_meta (const GstFerEmotionMeta *m)
{
  if (m->n_classes < 2 || m->n_classes > GST_FER_EMOTION_MAX_CLASSES
      || m->label_id < 0 || (guint) m->label_id >= m->n_classes
      || m->label == NULL || !g_utf8_validate (m->label, -1, NULL)
      || strcmp (m->label, m->class_labels[m->label_id]) != 0)
    abort ();
  double sum = 0.0;
  for (guint i = 0; i < m->n_classes; i++) {
    if (!g_utf8_validate (m->class_labels[i], -1, NULL)
        || !isfinite (m->probabilities[i]) || m->probabilities[i] < 0.0f)
      abort ();
    sum += m->probabilities[i];
  }
  if (!(fabs (sum - 1.0) < 1e-3)
      || !(fabs (m->confidence - m->probabilities[m->label_id]) < 1e-6))
    abort ();
}

/* A face ROI of buf with m's id whose "emotion" param carries m's label
 * (ids need not be unique: any such ROI will do). */
static void
check_roi (GstBuffer *buf, const GstFerEmotionMeta *m, const char *face_type)
{
  gpointer state = NULL;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered (
              buf, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
    if (roi->id != m->roi_id
        || roi->roi_type != g_quark_from_string (face_type))
      continue;
    GstStructure *s =
        gst_video_region_of_interest_meta_get_param (roi, "emotion");
    const char *label = s ? gst_structure_get_string (s, "label") : NULL;
    if (label != NULL && !g_utf8_validate (label, -1, NULL))
      abort ();
    if (label != NULL && strcmp (label, m->label) == 0)
      return;
  }
  fprintf (stderr, "emotion meta for roi-id %d: no face ROI with its label\n",
      m->roi_id);
  abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 8)
    return 0;
  GstVideoFormat format =
      g_array_index (formats, GstVideoFormat, data[0] % formats->len);
  int width = 1 + data[1] % 64, height = 1 + data[2] % 64;
  const char *mode = modes[data[3] % G_N_ELEMENTS (modes)];
  const char *face_type = data[7] & 2 ? "person" : "face";
  GstElement *e = harness->element;
  g_object_set (e, "face-margin", data[4] / 255.0, "min-face-size",
      1 + data[5] % 16, "tta", 1 + data[6] % 2, "post-messages",
      (gboolean) (data[7] & 1), "roi-type", face_type, NULL);
  gst_util_set_object_arg (G_OBJECT (e), "mode", mode);

  roi_record rois[MAX_ROIS];
  int n_rois = 0;
  size_t at = 8;
  while (
      n_rois < MAX_ROIS && at + ROI_RECORD <= size && !(data[at + 8] & 0x80)) {
    const uint8_t *r = data + at;
    rois[n_rois++] = (roi_record){ le16 (r), le16 (r + 2), le16 (r + 4),
      le16 (r + 6), le16 (r + 9), roi_types[r[8] % G_N_ELEMENTS (roi_types)] };
    at += ROI_RECORD;
  }
  /* a record whose type byte has the top bit set ends the list */
  at += at + ROI_RECORD <= size ? ROI_RECORD : 0;

  GstVideoInfo info;
  if (!gst_video_info_set_format (&info, format, width, height))
    abort ();
  GST_VIDEO_INFO_FPS_N (&info) = 30;
  GST_VIDEO_INFO_FPS_D (&info) = 1;
  gst_harness_push_event (harness, gst_event_new_stream_start ("fuzz"));
  gst_harness_set_src_caps (harness, gst_video_info_to_caps (&info));
  GstSegment segment;
  gst_segment_init (&segment, GST_FORMAT_TIME);
  gst_harness_push_event (harness, gst_event_new_segment (&segment));

  GstBuffer *buf = gst_buffer_new_allocate (NULL, info.size, NULL);
  GstMapInfo map;
  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (gsize i = 0; i < map.size; i++)
    map.data[i] = at < size ? data[at + i % (size - at)] : (guint8) (i * 29);
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = 0;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 30;
  for (int i = 0; i < n_rois; i++) {
    GstVideoRegionOfInterestMeta *roi =
        gst_buffer_add_video_region_of_interest_meta (buf, rois[i].type,
            (guint) rois[i].x, (guint) rois[i].y, (guint) rois[i].w,
            (guint) rois[i].h);
    roi->id = rois[i].id;
  }

  if (gst_harness_push (harness, buf) != GST_FLOW_OK)
    abort ();
  GstBuffer *out = gst_harness_try_pull (harness);
  if (out == NULL || gst_harness_buffers_in_queue (harness) != 0)
    abort ();

  int n_face_rois = 0;
  for (int i = 0; i < n_rois; i++)
    n_face_rois += strcmp (rois[i].type, face_type) == 0;
  gpointer state = NULL;
  GstFerEmotionMeta *m;
  int n_metas = 0;
  while ((m = gst_buffer_iterate_fer_emotion_meta (out, &state)) != NULL) {
    n_metas++;
    check_meta (m);
    check_box (m, width, height);
    if (m->roi_id == -1 && m->x == 0 && m->y == 0 && m->w == width
        && m->h == height && strcmp (mode, "roi") != 0)
      continue; /* the whole frame */
    if (strcmp (mode, "frame") == 0)
      abort ();
    check_roi (out, m, face_type);
  }
  if ((strcmp (mode, "frame") == 0 && n_metas != 1)
      || (strcmp (mode, "roi") == 0 && n_metas > n_face_rois)
      || (strcmp (mode, "auto") == 0 && n_metas > MAX (n_face_rois, 1)))
    abort ();
  gst_buffer_unref (out);
  /* the harness queues the events that came through: drained, or they
   * would pile up over millions of inputs (posted element messages go to
   * no bus and are dropped) */
  GstEvent *event;
  while ((event = gst_harness_try_pull_event (harness)) != NULL)
    gst_event_unref (event);
  while ((event = gst_harness_try_pull_upstream_event (harness)) != NULL)
    gst_event_unref (event);
  return 0;
}
