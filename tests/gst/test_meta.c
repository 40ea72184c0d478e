/* GstFerEmotionMeta on its own (no element, no model): add with the derived
 * label, the refusals, get, iterate and get-for-roi, the accessors for
 * bindings (count, nth, per class), a copy that owns its
 * arrays (read after the original is gone), the scale transform's boxes,
 * the registration tags, and videoscale rescaling the box because of them;
 * the lookup by track id; what 1.22's videocrop and videoflip do to it. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "feremotion/gstferemotionmeta.h"

static const gchar *const labels3[] = { "angry", "happy", "sad" };
static const gfloat probs3[] = { 0.2f, 0.5f, 0.3f };

static GstFerEmotionMeta *
add_face (GstBuffer *buf, gint x, gint y, gint w, gint h, gint roi_id)
{
  GstFerEmotionMeta *m = gst_buffer_add_fer_emotion_meta (
      buf, x, y, w, h, roi_id, G_N_ELEMENTS (labels3), labels3, probs3);
  fail_unless (m != NULL);
  return m;
}

static guint
count_metas (GstBuffer *buf)
{
  return gst_buffer_get_n_meta (buf, GST_FER_EMOTION_META_API_TYPE);
}

/* A meta with all GST_FER_EMOTION_MAX_CLASSES classes, each with its own
 * label and probability; class 7 is the most probable. */
static GstFerEmotionMeta *
add_full_face (GstBuffer *buf, gint x, gint y, gint w, gint h)
{
  const gchar *names[GST_FER_EMOTION_MAX_CLASSES];
  gfloat p[GST_FER_EMOTION_MAX_CLASSES];
  gchar name[16];

  for (guint i = 0; i < GST_FER_EMOTION_MAX_CLASSES; i++) {
    g_snprintf (name, sizeof name, "class%u", i);
    names[i] = g_intern_string (name);
    p[i] = i == 7 ? 0.5f : 0.5f / (GST_FER_EMOTION_MAX_CLASSES - 1);
  }
  return gst_buffer_add_fer_emotion_meta (
      buf, x, y, w, h, 4, GST_FER_EMOTION_MAX_CLASSES, names, p);
}

/* dst holds src's face (box aside) in arrays of its own. */
static void
assert_same_face (const GstFerEmotionMeta *dst, const GstFerEmotionMeta *src)
{
  fail_unless (dst != src);
  fail_unless_equals_int (dst->roi_id, src->roi_id);
  fail_unless_equals_int (dst->track_id, src->track_id);
  fail_unless_equals_int (dst->label_id, src->label_id);
  fail_unless (dst->label == src->label);
  fail_unless_equals_float (dst->confidence, src->confidence);
  fail_unless_equals_int (dst->n_classes, src->n_classes);
  fail_unless (dst->class_labels != src->class_labels);
  fail_unless (dst->probabilities != src->probabilities);
  for (guint i = 0; i < src->n_classes; i++) {
    fail_unless (dst->class_labels[i] == src->class_labels[i]);
    fail_unless_equals_float (dst->probabilities[i], src->probabilities[i]);
  }
}

static void
assert_box (const GstFerEmotionMeta *m, gint x, gint y, gint w, gint h)
{
  fail_unless (m->x == x && m->y == y && m->w == w && m->h == h,
      "box %d,%d %dx%d, expected %d,%d %dx%d", m->x, m->y, m->w, m->h, x, y, w,
      h);
}

GST_START_TEST (test_add)
{
  GstBuffer *buf = gst_buffer_new ();
  gchar *transient = g_strdup ("happy");
  const gchar *names[3] = { "angry", transient, "sad" };
  const gfloat tie[3] = { 0.4f, 0.4f, 0.2f };
  GstFerEmotionMeta *m;

  fail_unless (gst_buffer_get_fer_emotion_meta (buf) == NULL);
  m = gst_buffer_add_fer_emotion_meta (
      buf, 10, 20, 30, 40, 3, 3, names, probs3);
  fail_unless (m != NULL);
  /* the meta keeps interned names, not the caller's strings */
  g_free (transient);
  assert_box (m, 10, 20, 30, 40);
  fail_unless_equals_int (m->roi_id, 3);
  fail_unless_equals_int (m->n_classes, 3);
  fail_unless_equals_int (m->label_id, 1);
  fail_unless (m->label == g_intern_static_string ("happy"));
  fail_unless_equals_float (m->confidence, 0.5f);
  for (guint i = 0; i < 3; i++) {
    fail_unless (m->class_labels[i] == g_intern_string (labels3[i]));
    fail_unless_equals_float (m->probabilities[i], probs3[i]);
  }
  fail_unless (gst_buffer_get_fer_emotion_meta (buf) == m);

  /* a tie goes to the first class */
  m = gst_buffer_add_fer_emotion_meta (buf, 0, 0, 1, 1, -1, 3, labels3, tie);
  fail_unless_equals_int (m->label_id, 0);
  fail_unless_equals_string (m->label, "angry");

  /* every class a meta can hold */
  m = add_full_face (buf, 0, 0, 8, 8);
  fail_unless (m != NULL);
  fail_unless_equals_int (m->label_id, 7);
  fail_unless_equals_string (
      m->class_labels[GST_FER_EMOTION_MAX_CLASSES - 1], "class31");
  fail_unless_equals_int (count_metas (buf), 3);
  gst_buffer_unref (buf);
}

GST_END_TEST;

GST_START_TEST (test_add_refused)
{
  GstBuffer *buf = gst_buffer_new ();
  const gchar *names[GST_FER_EMOTION_MAX_CLASSES + 1] = { NULL };
  gfloat p[GST_FER_EMOTION_MAX_CLASSES + 1] = { 0 };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    names[i] = "x";
  fail_unless (
      gst_buffer_add_fer_emotion_meta (buf, 0, 0, 1, 1, -1, 0, names, p)
      == NULL);
  fail_unless (gst_buffer_add_fer_emotion_meta (buf, 0, 0, 1, 1, -1,
                   GST_FER_EMOTION_MAX_CLASSES + 1, names, p)
      == NULL);
  fail_unless (gst_buffer_add_fer_emotion_meta (buf, 0, 0, 1, 1, -1, 3, NULL, p)
      == NULL);
  fail_unless (
      gst_buffer_add_fer_emotion_meta (buf, 0, 0, 1, 1, -1, 3, names, NULL)
      == NULL);
  fail_unless_equals_int (count_metas (buf), 0);
  gst_buffer_unref (buf);
}

GST_END_TEST;

GST_START_TEST (test_get_for_roi)
{
  GstBuffer *buf = gst_buffer_new ();
  GstFerEmotionMeta *a, *b, *whole, *m;
  gpointer state = NULL;

  fail_unless (gst_buffer_get_fer_emotion_meta_for_roi (buf, 0) == NULL);
  a = add_face (buf, 0, 0, 10, 10, 0);
  b = add_face (buf, 20, 0, 10, 10, 5);
  whole = add_face (buf, 0, 0, 64, 48, -1);

  fail_unless (gst_buffer_get_fer_emotion_meta_for_roi (buf, 0) == a);
  fail_unless (gst_buffer_get_fer_emotion_meta_for_roi (buf, 5) == b);
  fail_unless (gst_buffer_get_fer_emotion_meta_for_roi (buf, -1) == whole);
  fail_unless (gst_buffer_get_fer_emotion_meta_for_roi (buf, 7) == NULL);
  fail_unless (gst_buffer_get_fer_emotion_meta (buf) == a);

  /* iteration sees each face once, in the order they were added */
  fail_unless ((m = gst_buffer_iterate_fer_emotion_meta (buf, &state)) == a);
  fail_unless ((m = gst_buffer_iterate_fer_emotion_meta (buf, &state)) == b);
  fail_unless (
      (m = gst_buffer_iterate_fer_emotion_meta (buf, &state)) == whole);
  fail_unless (gst_buffer_iterate_fer_emotion_meta (buf, &state) == NULL);
  gst_buffer_unref (buf);
}

GST_END_TEST;

/* The accessors for bindings: count and nth in iteration order, the class
 * arrays and single classes, and the out-of-range answers. */
GST_START_TEST (test_binding_accessors)
{
  GstBuffer *buf = gst_buffer_new ();
  GstFerEmotionMeta *a, *b, *full;
  const gchar **names;
  const gfloat *p;
  guint n = 0;

  fail_unless_equals_int (gst_buffer_get_fer_emotion_meta_count (buf), 0);
  fail_unless (gst_buffer_get_nth_fer_emotion_meta (buf, 0) == NULL);
  a = add_face (buf, 0, 0, 10, 10, 0);
  /* a meta of another API in between is not counted */
  gst_buffer_add_video_region_of_interest_meta (buf, "face", 0, 0, 4, 4);
  b = add_face (buf, 20, 0, 10, 10, 5);
  full = add_full_face (buf, 1, 2, 3, 4);
  fail_unless_equals_int (gst_buffer_get_fer_emotion_meta_count (buf), 3);
  fail_unless (gst_buffer_get_nth_fer_emotion_meta (buf, 0) == a);
  fail_unless (gst_buffer_get_nth_fer_emotion_meta (buf, 1) == b);
  fail_unless (gst_buffer_get_nth_fer_emotion_meta (buf, 2) == full);
  fail_unless (gst_buffer_get_nth_fer_emotion_meta (buf, 3) == NULL);
  fail_unless (gst_buffer_get_nth_fer_emotion_meta (buf, G_MAXUINT) == NULL);

  p = gst_fer_emotion_meta_get_probabilities (full, &n);
  fail_unless_equals_int (n, GST_FER_EMOTION_MAX_CLASSES);
  fail_unless (p == full->probabilities);
  names = gst_fer_emotion_meta_get_class_labels (full);
  for (guint i = 0; i < n; i++) {
    fail_unless (names[i] == full->class_labels[i]);
    fail_unless_equals_float (
        gst_fer_emotion_meta_get_probability (full, i), p[i]);
    fail_unless (gst_fer_emotion_meta_get_class_label (full, i) == names[i]);
  }
  fail_unless (names[n] == NULL);
  g_free (names);
  fail_unless_equals_float (gst_fer_emotion_meta_get_probability (a, 3), -1.0f);
  fail_unless (gst_fer_emotion_meta_get_class_label (a, 3) == NULL);
  fail_unless_equals_string (
      gst_fer_emotion_meta_get_class_label (a, 1), "happy");
  gst_buffer_unref (buf);
}

GST_END_TEST;

/* facedetect leaves every ROI id at 0: the track id tells faces apart */
GST_START_TEST (test_get_for_track)
{
  GstBuffer *buf = gst_buffer_new ();
  GstFerEmotionMeta *a, *b, *untracked;

  fail_unless (gst_buffer_get_fer_emotion_meta_for_track (buf, 1) == NULL);
  a = add_face (buf, 0, 0, 10, 10, 0);
  b = add_face (buf, 20, 0, 10, 10, 0);
  untracked = add_face (buf, 40, 0, 10, 10, 0);
  fail_unless_equals_int (untracked->track_id, -1);
  a->track_id = 4;
  b->track_id = 9;

  fail_unless (gst_buffer_get_fer_emotion_meta_for_roi (buf, 0) == a);
  fail_unless (gst_buffer_get_fer_emotion_meta_for_track (buf, 4) == a);
  fail_unless (gst_buffer_get_fer_emotion_meta_for_track (buf, 9) == b);
  fail_unless (gst_buffer_get_fer_emotion_meta_for_track (buf, 1) == NULL);
  /* -1 means untracked, not an id to look up */
  fail_unless (gst_buffer_get_fer_emotion_meta_for_track (buf, -1) == NULL);
  gst_buffer_unref (buf);
}

GST_END_TEST;

GST_START_TEST (test_copy)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 64, NULL);
  GstBuffer *copies[2];
  GstFerEmotionMeta *m, *c;
  GstFerEmotionMeta saved;
  gfloat probs[GST_FER_EMOTION_MAX_CLASSES];
  const gchar *names[GST_FER_EMOTION_MAX_CLASSES];

  add_face (buf, 1, 2, 3, 4, 0);
  m = add_full_face (buf, 5, 6, 7, 8);
  m->track_id = 17;
  saved = *m;
  memcpy (probs, m->probabilities, sizeof probs);
  memcpy (names, m->class_labels, sizeof names);

  /* a buffer copy, and a metadata copy into another buffer */
  copies[0] = gst_buffer_copy (buf);
  copies[1] = gst_buffer_new ();
  fail_unless (
      gst_buffer_copy_into (copies[1], buf, GST_BUFFER_COPY_METADATA, 0, -1));
  for (guint k = 0; k < 2; k++) {
    fail_unless_equals_int (count_metas (copies[k]), 2);
    c = gst_buffer_get_fer_emotion_meta_for_roi (copies[k], 4);
    fail_unless (c != NULL);
    assert_same_face (c, m);
    assert_box (c, 5, 6, 7, 8);
  }

  /* the copies' arrays are their own: they outlive the original */
  gst_buffer_unref (buf);
  for (guint k = 0; k < 2; k++) {
    c = gst_buffer_get_fer_emotion_meta_for_roi (copies[k], 4);
    fail_unless_equals_int (c->n_classes, saved.n_classes);
    fail_unless (c->label == saved.label);
    for (guint i = 0; i < GST_FER_EMOTION_MAX_CLASSES; i++) {
      fail_unless (c->class_labels[i] == names[i]);
      fail_unless_equals_float (c->probabilities[i], probs[i]);
    }
    gst_buffer_unref (copies[k]);
  }
}

GST_END_TEST;

/* Runs the meta's scale transform from a w0 x h0 frame to w1 x h1, as
 * videoscale does, and returns the new meta (on *dest). */
static GstFerEmotionMeta *
scale (GstFerEmotionMeta *m, GstBuffer *src, gint w0, gint h0, gint w1, gint h1,
    GstBuffer **dest)
{
  GstVideoInfo in, out;
  GstVideoMetaTransform trans = { &in, &out };

  gst_video_info_set_format (&in, GST_VIDEO_FORMAT_GRAY8, w0, h0);
  gst_video_info_set_format (&out, GST_VIDEO_FORMAT_GRAY8, w1, h1);
  *dest = gst_buffer_new ();
  fail_unless (m->meta.info->transform_func (*dest, &m->meta, src,
      gst_video_meta_transform_scale_get_quark (), &trans));
  fail_unless_equals_int (count_metas (*dest), 1);
  return gst_buffer_get_fer_emotion_meta (*dest);
}

GST_START_TEST (test_scale_transform)
{
  GstBuffer *buf = gst_buffer_new ();
  GstBuffer *dest;
  GstFerEmotionMeta *m = add_full_face (buf, 64, 48, 128, 96), *s;
  GstMetaTransformCopy copy = { FALSE, 0, (gsize) -1 };

  /* half size */
  s = scale (m, buf, 640, 480, 320, 240, &dest);
  assert_box (s, 32, 24, 64, 48);
  assert_same_face (s, m);
  gst_buffer_unref (dest);

  /* each axis on its own */
  s = scale (m, buf, 640, 480, 1280, 160, &dest);
  assert_box (s, 128, 16, 256, 32);
  gst_buffer_unref (dest);
  /* rounding down, as GstVideoRegionOfInterestMeta does */
  s = scale (m, buf, 641, 481, 320, 240, &dest);
  assert_box (s, 31, 23, 63, 47);
  gst_buffer_unref (dest);

  /* a plain copy keeps the box */
  dest = gst_buffer_new ();
  fail_unless (m->meta.info->transform_func (
      dest, &m->meta, buf, _gst_meta_transform_copy, &copy));
  assert_box (gst_buffer_get_fer_emotion_meta (dest), 64, 48, 128, 96);
  gst_buffer_unref (dest);

  /* any other transform would leave the box wrong: refused, nothing added */
  dest = gst_buffer_new ();
  fail_if (m->meta.info->transform_func (dest, &m->meta, buf,
      g_quark_from_static_string ("fer-test-unknown-transform"), NULL));
  fail_unless_equals_int (count_metas (dest), 0);
  gst_buffer_unref (dest);
  gst_buffer_unref (buf);
}

GST_END_TEST;

/* The tags that GStreamer's scalers look for before they call the scale
 * transform (GstVideoRegionOfInterestMeta registers the same three). */
GST_START_TEST (test_tags)
{
  GType api = GST_FER_EMOTION_META_API_TYPE;
  const gchar *const *tags = gst_meta_api_type_get_tags (api);

  fail_unless (gst_meta_api_type_has_tag (
      api, g_quark_from_string (GST_META_TAG_VIDEO_STR)));
  fail_unless (gst_meta_api_type_has_tag (
      api, g_quark_from_string (GST_META_TAG_VIDEO_SIZE_STR)));
  fail_unless (gst_meta_api_type_has_tag (
      api, g_quark_from_string (GST_META_TAG_VIDEO_ORIENTATION_STR)));
  fail_unless (tags != NULL);
  fail_unless_equals_int (g_strv_length ((gchar **) tags), 3);
  fail_unless (GST_FER_EMOTION_META_INFO->api == api);
}

GST_END_TEST;

/* The videoscale element rescales the box (with the "video" tag alone it
 * copied the box unchanged). */
GST_START_TEST (test_videoscale)
{
  GstHarness *h = gst_harness_new ("videoscale");
  GstBuffer *in, *out;
  GstFerEmotionMeta *m, *s;

  gst_harness_set_src_caps_str (
      h, "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");
  gst_harness_set_sink_caps_str (
      h, "video/x-raw,format=GRAY8,width=32,height=24,framerate=30/1");
  in = gst_buffer_new_allocate (NULL, 64 * 48, NULL);
  gst_buffer_memset (in, 0, 128, 64 * 48);
  m = add_face (in, 16, 8, 32, 24, 2);
  /* the harness takes the buffer: check against a copy of the face */
  GstFerEmotionMeta before = *m;

  out = gst_harness_push_and_pull (h, in);
  fail_unless (out != NULL);
  fail_unless_equals_int (count_metas (out), 1);
  s = gst_buffer_get_fer_emotion_meta (out);
  assert_box (s, 8, 4, 16, 12);
  fail_unless_equals_int (s->roi_id, before.roi_id);
  fail_unless (s->label == before.label);
  for (guint i = 0; i < G_N_ELEMENTS (labels3); i++)
    fail_unless_equals_float (s->probabilities[i], probs3[i]);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Pushes one 64x48 GRAY8 frame with a face (16,8 32x24, track 3) through
 * the harness's element and returns what comes out. */
static GstBuffer *
through (GstHarness *h)
{
  GstBuffer *in = gst_buffer_new_allocate (NULL, 64 * 48, NULL);
  GstFerEmotionMeta *m;

  gst_buffer_memset (in, 0, 128, 64 * 48);
  m = add_face (in, 16, 8, 32, 24, 0);
  m->track_id = 3;
  return gst_harness_push_and_pull (h, in);
}

static void
assert_out_size (GstHarness *h, gint w, gint h_)
{
  GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
  GstVideoInfo info;

  fail_unless (caps && gst_video_info_from_caps (&info, caps));
  fail_unless (info.width == w && info.height == h_, "output %dx%d", info.width,
      info.height);
  gst_caps_unref (caps);
}

/* What GStreamer 1.22's videocrop and videoflip do with the meta. Neither
 * calls a meta's transform function with the crop or the flip (GstVideoFilter
 * copies only metas tagged "video" alone, and neither element overrides
 * that): when they change the picture they drop the meta, like the ROI
 * meta, so no box is ever left wrong. When they pass the buffer through,
 * the box is kept, and right. */
GST_START_TEST (test_videocrop_videoflip)
{
  const struct
  {
    const gchar *launch;
    gint out_w, out_h;
    gboolean kept;
  } cases[] = {
    { "videocrop left=8 top=4", 56, 44, FALSE },
    { "videocrop left=0 top=0", 64, 48, TRUE },
    { "videoflip video-direction=horiz", 64, 48, FALSE },
    { "videoflip video-direction=vert", 64, 48, FALSE },
    { "videoflip video-direction=90r", 48, 64, FALSE },
    { "videoflip video-direction=180", 64, 48, FALSE },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GstHarness *h = gst_harness_new_parse (cases[i].launch);
    gst_harness_set_src_caps_str (
        h, "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");
    GstBuffer *out = through (h);

    assert_out_size (h, cases[i].out_w, cases[i].out_h);
    fail_unless_equals_int (count_metas (out), cases[i].kept ? 1 : 0);
    if (cases[i].kept) {
      assert_box (gst_buffer_get_fer_emotion_meta (out), 16, 8, 32, 24);
      fail_unless (gst_buffer_get_fer_emotion_meta_for_track (out, 3));
    }
    gst_buffer_unref (out);
    gst_harness_teardown (h);
  }

  /* downstream that takes crop metas: videocrop passes the whole frame on
   * with a GstVideoCropMeta, and the box stays in that frame's coordinates
   * (subtract the crop meta's x and y for the cropped picture's) */
  GstHarness *h = gst_harness_new_parse ("videocrop left=8 top=4");
  gst_harness_add_propose_allocation_meta (h, GST_VIDEO_META_API_TYPE, NULL);
  gst_harness_add_propose_allocation_meta (
      h, GST_VIDEO_CROP_META_API_TYPE, NULL);
  gst_harness_set_src_caps_str (
      h, "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");
  GstBuffer *out = through (h);
  GstVideoCropMeta *crop = gst_buffer_get_video_crop_meta (out);
  fail_unless (crop != NULL);
  fail_unless (
      crop->x == 8 && crop->y == 4 && crop->width == 56 && crop->height == 44);
  assert_box (gst_buffer_get_fer_emotion_meta (out), 16, 8, 32, 24);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
feremotionmeta_suite (void)
{
  Suite *s = suite_create ("feremotionmeta");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_add);
  tcase_add_test (tc, test_add_refused);
  tcase_add_test (tc, test_get_for_roi);
  tcase_add_test (tc, test_binding_accessors);
  tcase_add_test (tc, test_get_for_track);
  tcase_add_test (tc, test_copy);
  tcase_add_test (tc, test_scale_transform);
  tcase_add_test (tc, test_tags);
  tcase_add_test (tc, test_videoscale);
  tcase_add_test (tc, test_videocrop_videoflip);
  return s;
}

GST_CHECK_MAIN (feremotionmeta);
