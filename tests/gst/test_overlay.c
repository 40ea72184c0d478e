/* feremotionoverlay: every format negotiates and draws the class colour in
 * the right bytes; a buffer without meta passes through as the same,
 * unmodified buffer; with faces, only the box outline, the tag and the bars
 * change, every other pixel is compared with the input and must be equal. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <math.h>
#include <string.h>

#include "feremotion/gstferemotionmeta.h"

#define WIDTH 320
#define HEIGHT 240
#define FONT_SIZE 12
#define LINE_WIDTH 2

typedef struct
{
  gint x, y, w, h;
} Rect;

static const gchar *const labels[] = { "angry", "disgust", "fear", "happy",
  "neutral", "sad", "surprise" };

/* argmax is "happy", class 3: the overlay's yellow, (255, 204, 0) */
static const gfloat probabilities[] = { 0.02f, 0.01f, 0.03f, 0.87f, 0.04f,
  0.02f, 0.01f };

static const guint8 happy_rgb[] = { 255, 204, 0 };

static const gchar *const formats[] = { "BGRx", "BGRA", "RGBx", "RGBA", "xRGB",
  "ARGB", "xBGR", "ABGR", "RGB", "BGR" };

/* A face box well inside the frame, with room above it for the tag and
 * right of it for the bars. */
static const Rect face = { 60, 80, 100, 100 };

/* Generous bounds for where the tag and the bars may go (their exact size
 * depends on the font). */
static Rect
tag_zone (const Rect *box)
{
  Rect r = { box->x, box->y - 3 * FONT_SIZE, 16 * FONT_SIZE, 3 * FONT_SIZE };
  return r;
}

static Rect
bars_zone (const Rect *box)
{
  Rect r = { box->x + box->w, box->y, WIDTH - box->x - box->w, 10 * FONT_SIZE };
  return r;
}

static Rect
interior (const Rect *box)
{
  Rect r = { box->x + LINE_WIDTH, box->y + LINE_WIDTH, box->w - 2 * LINE_WIDTH,
    box->h - 2 * LINE_WIDTH };
  return r;
}

static gboolean
in_rect (const Rect *r, gint x, gint y)
{
  return x >= r->x && x < r->x + r->w && y >= r->y && y < r->y + r->h;
}

static GstHarness *
overlay_harness (const gchar *format, gboolean show_bars)
{
  GstHarness *h = gst_harness_new ("feremotionoverlay");

  g_object_set (h->element, "font-size", FONT_SIZE, "line-width", LINE_WIDTH,
      "show-bars", show_bars, NULL);
  gst_harness_set_src_caps (h,
      gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, format,
          "width", G_TYPE_INT, WIDTH, "height", G_TYPE_INT, HEIGHT, "framerate",
          GST_TYPE_FRACTION, 30, 1, NULL));
  return h;
}

/* Noise in every byte, alpha included: translucent pixels too must come
 * out untouched where nothing is drawn. */
static GstBuffer *
make_frame (GstVideoInfo *info, const gchar *format)
{
  GstBuffer *buf;
  GstMapInfo map;
  GRand *rand = g_rand_new_with_seed (20240611);

  gst_video_info_set_format (
      info, gst_video_format_from_string (format), WIDTH, HEIGHT);
  buf = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (info), NULL);
  fail_unless (gst_buffer_map (buf, &map, GST_MAP_WRITE));
  for (gsize i = 0; i < map.size; i++)
    map.data[i] = (guint8) g_rand_int_range (rand, 0, 256);
  gst_buffer_unmap (buf, &map);
  g_rand_free (rand);
  GST_BUFFER_PTS (buf) = 0;
  return buf;
}

static void
add_face (GstBuffer *buf, const Rect *box)
{
  GstFerEmotionMeta *m = gst_buffer_add_fer_emotion_meta (buf, box->x, box->y,
      box->w, box->h, 0, G_N_ELEMENTS (labels), labels, probabilities);

  fail_unless (m != NULL);
  m->track_id = 12;
}

/* Pushes a copy of @in (pixels and metas) and returns what came out. */
static GstBuffer *
push_copy (GstHarness *h, GstBuffer *in)
{
  GstBuffer *out = gst_harness_push_and_pull (h, gst_buffer_copy_deep (in));

  fail_unless (out != NULL);
  ASSERT_BUFFER_REFCOUNT (out, "out", 1);
  return out;
}

typedef struct
{
  GstVideoInfo *info;
  GstMapInfo in, out;
} Diff;

static void
diff_begin (Diff *d, GstVideoInfo *info, GstBuffer *in, GstBuffer *out)
{
  d->info = info;
  fail_unless (gst_buffer_map (in, &d->in, GST_MAP_READ));
  fail_unless (gst_buffer_map (out, &d->out, GST_MAP_READ));
  fail_unless_equals_uint64 (d->in.size, d->out.size);
}

static void
diff_end (Diff *d, GstBuffer *in, GstBuffer *out)
{
  gst_buffer_unmap (in, &d->in);
  gst_buffer_unmap (out, &d->out);
}

static gsize
pixel_offset (const Diff *d, gint x, gint y)
{
  gsize stride = GST_VIDEO_INFO_PLANE_STRIDE (d->info, 0);
  gsize pstride = GST_VIDEO_INFO_COMP_PSTRIDE (d->info, 0);

  return y * stride + x * pstride;
}

static gboolean
changed (const Diff *d, gint x, gint y)
{
  gsize off = pixel_offset (d, x, y);

  return memcmp (d->in.data + off, d->out.data + off,
             GST_VIDEO_INFO_COMP_PSTRIDE (d->info, 0))
      != 0;
}

static guint
count_changed (const Diff *d, const Rect *r)
{
  guint n = 0;

  for (gint y = MAX (r->y, 0); y < MIN (r->y + r->h, HEIGHT); y++)
    for (gint x = MAX (r->x, 0); x < MIN (r->x + r->w, WIDTH); x++)
      n += changed (d, x, y);
  return n;
}

/* Fails on any changed pixel outside all of @allowed; returns how many
 * changed in all. */
static guint
check_changes_within (const Diff *d, const Rect *allowed, guint n_allowed)
{
  guint n = 0;

  for (gint y = 0; y < HEIGHT; y++)
    for (gint x = 0; x < WIDTH; x++) {
      gboolean ok = FALSE;

      if (!changed (d, x, y))
        continue;
      n++;
      for (guint i = 0; i < n_allowed && !ok; i++)
        ok = in_rect (&allowed[i], x, y);
      fail_unless (ok, "pixel %d,%d changed outside the drawn areas", x, y);
    }
  return n;
}

static void
check_outline_and_interior (const Diff *d, const Rect *box)
{
  Rect inner = interior (box);
  guint outline = (guint) (box->w * box->h - inner.w * inner.h);

  fail_unless_equals_int (
      count_changed (d, box) - count_changed (d, &inner), outline);
  fail_unless_equals_int (count_changed (d, &inner), 0);
}

GST_START_TEST (test_properties)
{
  GstElement *e = gst_element_factory_make ("feremotionoverlay", NULL);
  gboolean show_bars, show_confidence, show_track_id;
  guint line_width, font_size;

  fail_unless (e != NULL);
  g_object_get (e, "show-bars", &show_bars, "line-width", &line_width,
      "font-size", &font_size, "show-confidence", &show_confidence,
      "show-track-id", &show_track_id, NULL);
  fail_unless (!show_bars);
  fail_unless_equals_int (line_width, 2);
  fail_unless_equals_int (font_size, 0);
  fail_unless (show_confidence);
  fail_unless (!show_track_id);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_formats)
{
  for (guint f = 0; f < G_N_ELEMENTS (formats); f++) {
    GstHarness *h = overlay_harness (formats[f], FALSE);
    const GstVideoFormatInfo *finfo;
    Rect allowed[2] = { face, tag_zone (&face) };
    GstVideoInfo info;
    GstBuffer *in, *out;
    Diff d;
    gsize off;

    GST_INFO ("format %s", formats[f]);
    in = make_frame (&info, formats[f]);
    add_face (in, &face);
    out = push_copy (h, in);

    diff_begin (&d, &info, in, out);
    check_changes_within (&d, allowed, G_N_ELEMENTS (allowed));
    check_outline_and_interior (&d, &face);
    fail_unless (count_changed (&d, &allowed[1]) > 200,
        "%s: no tag above the box", formats[f]);

    /* the outline is the class colour, in this format's byte order */
    finfo = info.finfo;
    off = pixel_offset (&d, face.x, face.y + face.h / 2);
    for (guint c = 0; c < 3; c++)
      fail_unless_equals_int (
          d.out.data[off + finfo->poffset[c]], happy_rgb[c]);
    if (GST_VIDEO_INFO_HAS_ALPHA (&info))
      fail_unless_equals_int (d.out.data[off + finfo->poffset[3]], 255);
    diff_end (&d, in, out);

    gst_buffer_unref (out);
    ASSERT_BUFFER_REFCOUNT (in, "in", 1);
    gst_buffer_unref (in);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

GST_START_TEST (test_unsupported_format_refused)
{
  GstElement *e = gst_element_factory_make ("feremotionoverlay", NULL);
  GstPad *sink = gst_element_get_static_pad (e, "sink");
  GstCaps *caps = gst_caps_from_string ("video/x-raw,format=I420,width=320,"
                                        "height=240,framerate=30/1");

  fail_if (gst_pad_query_accept_caps (sink, caps));
  gst_caps_unref (caps);
  gst_object_unref (sink);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_no_meta_untouched)
{
  GstHarness *h = overlay_harness ("RGBA", TRUE);
  GstVideoInfo info;
  GstBuffer *in = make_frame (&info, "RGBA");
  GstBuffer *expected = gst_buffer_copy_deep (in);
  GstBuffer *out;
  GstMapInfo a, b;

  /* our extra reference makes it read-only: it must not be copied */
  out = gst_harness_push_and_pull (h, gst_buffer_ref (in));
  fail_unless (out == in);
  ASSERT_BUFFER_REFCOUNT (in, "in", 2);

  fail_unless (gst_buffer_map (out, &a, GST_MAP_READ));
  fail_unless (gst_buffer_map (expected, &b, GST_MAP_READ));
  fail_unless_equals_uint64 (a.size, b.size);
  fail_unless (memcmp (a.data, b.data, a.size) == 0);
  gst_buffer_unmap (out, &a);
  gst_buffer_unmap (expected, &b);

  gst_buffer_unref (out);
  ASSERT_BUFFER_REFCOUNT (in, "in", 1);
  gst_buffer_unref (in);
  gst_buffer_unref (expected);
  gst_harness_teardown (h);
}

GST_END_TEST;

static guint
changes_for (const gchar *format, gboolean show_bars, gboolean confidence,
    gboolean track_id, Rect *allowed, guint n_allowed)
{
  GstHarness *h = overlay_harness (format, show_bars);
  GstVideoInfo info;
  GstBuffer *in = make_frame (&info, format), *out;
  Diff d;
  guint n;

  g_object_set (h->element, "show-confidence", confidence, "show-track-id",
      track_id, NULL);
  add_face (in, &face);
  out = push_copy (h, in);
  diff_begin (&d, &info, in, out);
  n = check_changes_within (&d, allowed, n_allowed);
  check_outline_and_interior (&d, &face);
  diff_end (&d, in, out);
  gst_buffer_unref (out);
  gst_buffer_unref (in);
  gst_harness_teardown (h);
  return n;
}

GST_START_TEST (test_show_bars_draws_more)
{
  Rect allowed[3] = { face, tag_zone (&face), bars_zone (&face) };
  guint plain = changes_for ("BGRx", FALSE, TRUE, FALSE, allowed, 2);
  guint bars = changes_for ("BGRx", TRUE, TRUE, FALSE, allowed, 3);

  GST_INFO ("changed pixels: %u without bars, %u with", plain, bars);
  /* seven rows of bars at least a few pixels high and 40 wide */
  fail_unless (bars > plain + 7 * 40 * 4, "%u vs %u", bars, plain);
}

GST_END_TEST;

/* The tag's text: "happy 87%" by default, "happy" without the confidence,
 * "#12 happy 87%" with the track id; each a wider tag within the tag zone. */
GST_START_TEST (test_tag_text)
{
  Rect allowed[2] = { face, tag_zone (&face) };
  guint plain = changes_for ("RGB", FALSE, FALSE, FALSE, allowed, 2);
  guint confidence = changes_for ("RGB", FALSE, TRUE, FALSE, allowed, 2);
  guint track = changes_for ("RGB", FALSE, TRUE, TRUE, allowed, 2);

  fail_unless (plain < confidence, "%u vs %u", plain, confidence);
  fail_unless (confidence < track, "%u vs %u", confidence, track);
}

GST_END_TEST;

/* A box in the top right corner: the tag goes inside the box, shifted left
 * to stay in the frame, and nothing is drawn below the box. */
GST_START_TEST (test_tag_stays_in_frame)
{
  const Rect corner = { 220, 0, 100, 80 };
  Rect below = { 0, corner.h, WIDTH, HEIGHT - corner.h };
  Rect left_of_box = { 0, 0, corner.x, corner.h };
  GstHarness *h = overlay_harness ("BGRA", FALSE);
  GstVideoInfo info;
  GstBuffer *in = make_frame (&info, "BGRA"), *out;
  Diff d;

  g_object_set (h->element, "font-size", 24, NULL);
  add_face (in, &corner);
  out = push_copy (h, in);
  diff_begin (&d, &info, in, out);
  fail_unless_equals_int (count_changed (&d, &below), 0);
  fail_unless (count_changed (&d, &left_of_box) > 100);
  fail_unless (changed (&d, corner.x + corner.w - 1, corner.h / 2));
  diff_end (&d, in, out);
  gst_buffer_unref (out);
  gst_buffer_unref (in);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Boxes reaching outside the frame, empty ones and overlapping ones are
 * clipped, not trusted. */
GST_START_TEST (test_boxes_clipped)
{
  const Rect boxes[] = {
    { -20, -10, WIDTH + 40, HEIGHT + 20 },
    { WIDTH - 10, HEIGHT - 10, 50, 50 },
    { WIDTH + 5, 10, 20, 20 },
    { 30, 30, 0, 0 },
    { 40, 40, 60, 60 },
  };
  GstHarness *h = overlay_harness ("xBGR", TRUE);
  GstVideoInfo info;
  GstBuffer *in = make_frame (&info, "xBGR"), *out;
  Diff d;

  for (guint i = 0; i < G_N_ELEMENTS (boxes); i++)
    add_face (in, &boxes[i]);
  out = push_copy (h, in);
  diff_begin (&d, &info, in, out);
  fail_unless (changed (&d, 0, HEIGHT / 2));
  fail_unless (changed (&d, WIDTH - 1, HEIGHT / 2));
  fail_unless (changed (&d, WIDTH - 1, HEIGHT - 1));
  diff_end (&d, in, out);
  gst_buffer_unref (out);
  gst_buffer_unref (in);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A broken model's NaN probabilities draw as 0%, not as a cairo error. */
GST_START_TEST (test_nan_probabilities)
{
  gfloat nan[G_N_ELEMENTS (labels)];
  GstHarness *h = overlay_harness ("BGRx", TRUE);
  GstVideoInfo info;
  GstBuffer *in = make_frame (&info, "BGRx"), *out;

  for (guint i = 0; i < G_N_ELEMENTS (nan); i++)
    nan[i] = NAN;
  fail_unless (gst_buffer_add_fer_emotion_meta (in, face.x, face.y, face.w,
                   face.h, 0, G_N_ELEMENTS (labels), labels, nan)
      != NULL);
  out = push_copy (h, in);
  gst_buffer_unref (out);
  out = push_copy (h, in);
  gst_buffer_unref (out);
  gst_buffer_unref (in);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A stream of frames, then a new frame size: the canvas is remade and the
 * drawing stays within the new frame. */
GST_START_TEST (test_caps_change)
{
  const Rect small_face = { 10, 10, 40, 30 };
  GstHarness *h = overlay_harness ("RGBx", TRUE);
  GstVideoInfo info;
  GstBuffer *in = make_frame (&info, "RGBx"), *out;
  const guint8 *pixel;
  GstMapInfo map;

  add_face (in, &face);
  for (guint i = 0; i < 3; i++)
    gst_buffer_unref (push_copy (h, in));
  gst_buffer_unref (in);

  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGBx,width=64,"
      "height=48,framerate=30/1");
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGBx, 64, 48);
  in = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  gst_buffer_memset (in, 0, 0x80, GST_VIDEO_INFO_SIZE (&info));
  add_face (in, &small_face);
  /* the bars would not fit beside the box and cover it */
  g_object_set (h->element, "show-bars", FALSE, NULL);
  out = push_copy (h, in);
  fail_unless (gst_buffer_map (out, &map, GST_MAP_READ));
  /* left edge of the box, below the tag inside it */
  pixel = map.data + 36 * GST_VIDEO_INFO_PLANE_STRIDE (&info, 0) + 10 * 4;
  fail_unless (pixel[0] == happy_rgb[0] && pixel[1] == happy_rgb[1]
      && pixel[2] == happy_rgb[2]);
  gst_buffer_unmap (out, &map);
  gst_buffer_unref (out);
  gst_buffer_unref (in);
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
feremotionoverlay_suite (void)
{
  Suite *s = suite_create ("feremotionoverlay");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_formats);
  tcase_add_test (tc, test_unsupported_format_refused);
  tcase_add_test (tc, test_no_meta_untouched);
  tcase_add_test (tc, test_show_bars_draws_more);
  tcase_add_test (tc, test_tag_text);
  tcase_add_test (tc, test_tag_stays_in_frame);
  tcase_add_test (tc, test_boxes_clipped);
  tcase_add_test (tc, test_nan_probabilities);
  tcase_add_test (tc, test_caps_change);
  return s;
}

GST_CHECK_MAIN (feremotionoverlay);
