/**
 * SECTION:element-feremotionexport
 * @title: feremotionexport
 * @see_also: feremotion, feremotionoverlay
 *
 * Writes the #GstFerEmotionMeta of every buffer to a file, one JSON object
 * per line (JSON Lines):
 * |[
 * {"pts":0,"duration":33333333,"width":640,"height":480,"faces":[{"x":212,"y":96,"w":180,"h":180,"roi_id":0,"track_id":1,"label":"happy","label_id":3,"confidence":0.87,"probabilities":{"angry":0.01,...}}]}
 * ]|
 * `pts` and `duration` are in nanoseconds, or null when the buffer has
 * none; `width` and `height` come from the caps; numbers in `faces` are the
 * meta's values, the probabilities keyed by class name. With
 * #GstFerEmotionExport:all-buffers=false, buffers without faces get no line.
 *
 * The element passes buffers through without copying or mapping them, so it
 * takes raw video in any format and memory. The file is created when the
 * element goes to PAUSED and closed when it goes back to READY. Each line
 * goes to the file with one write(2) before its buffer is passed on, never
 * held in a user-space buffer: a pipeline stopped at any moment (EOS, state
 * NULL, SIGTERM, even SIGKILL) leaves whole lines for every buffer that
 * passed, and `tail -f` readers never see half a line. A file that cannot
 * be opened or written is an element error.
 *
 * The same results can go into the recording itself. Two request pads
 * carry them as timestamped text (`text/x-raw,format=utf8`, what
 * `matroskamux` takes for a subtitle track), one buffer per video buffer
 * with the video buffer's PTS and duration:
 *
 * - `subtitle_src`: what a player shows, one line per face (`happy 83%`);
 *   a buffer without faces is a GAP event, so the subtitle goes away and a
 *   muxer never waits for it. Track title "Emotions".
 * - `json_src`: the buffer's JSON line as written to the file (without the
 *   newline); a buffer that gets no line (#GstFerEmotionExport:all-buffers
 *   false) is a GAP event. Track title "Emotions (JSON lines)".
 *
 * Each pad gets its own stream-start, caps, title tag and the video's
 * segment, and EOS, flushes and GAP events follow the video. With a pad
 * requested, #GstFerEmotionExport:location may stay unset (no file). The
 * text is pushed from the video's streaming thread before the video buffer
 * goes on, so, as on any branch that splits and meets again at a muxer, a
 * `queue` must sit between the pad and the muxer. A pad that is requested
 * but not linked gets one warning on the bus and the video goes on, as
 * it does when a pad is released while playing; a downstream that refuses
 * the caps is an element error. Text buffers come
 * from a buffer pool per pad: nothing is allocated per buffer once the pool
 * holds as many buffers as downstream keeps at once (GAP events, a few
 * bytes each, are allocated as they are sent).
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=interview.mp4 ! decodebin ! videoconvert ! feremotion model=model.safetensors ! feremotionexport location=interview.jsonl ! fakesink
 * ]| Writes the emotions of a recorded video to interview.jsonl.
 * |[
 * gst-launch-1.0 -e v4l2src ! videoconvert ! facedetect display=false ! feremotion mode=roi ! feremotionexport name=e ! videoconvert ! vp8enc ! matroskamux name=mux ! filesink location=rec.mkv  e.subtitle_src ! queue ! mux.subtitle_%u  e.json_src ! queue ! mux.subtitle_%u
 * ]| Records the camera with two subtitle tracks: the emotions as a player
 * shows them, and the JSON lines.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstferemotionexport.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>
#include <math.h>
#include <string.h>

#include "feremotion/gstferemotionmeta.h"
#include <fer/error.h>

GST_DEBUG_CATEGORY_STATIC (gst_fer_emotion_export_debug);
#define GST_CAT_DEFAULT gst_fer_emotion_export_debug

#define DEFAULT_ALL_BUFFERS TRUE

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_ALL_BUFFERS,
};

#define TEXT_CAPS "text/x-raw, format=(string)utf8"

/* One of the request pads that carry the results as text. */
typedef struct
{
  const gchar *template_name;
  const gchar *stream_name; /* suffix of its stream id */
  const gchar *title;       /* its track's title */
  GstStreamFlags flags;

  GstPad *pad; /* under the object lock; NULL until requested */

  /* streaming thread */
  gboolean need_stream_start; /* and caps and tags: a new stream */
  gboolean need_segment;
  gboolean warned_not_linked;
  GstBufferPool *pool; /* buffers of pool_size bytes; NULL until used */
  gsize pool_size;
} TextOut;

enum
{
  OUT_SUBTITLE,
  OUT_JSON,
  N_OUTS
};

struct _GstFerEmotionExport
{
  GstBaseTransform parent;

  /* under the object lock */
  gchar *location;
  gboolean all_buffers;
  gint fd; /* open between start() and stop(), else -1 */
  TextOut out[N_OUTS];

  /* streaming thread, and start()/stop() */
  gchar *filename;       /* the location the file was opened with */
  gboolean write_failed; /* already reported: say it once */
  gint width, height;    /* from the caps; 0 when they have none */
  gint fps_n, fps_d;     /* from the caps; 0/1 when they have none */
  GstSegment segment;    /* the video's, for the text pads */
  guint group_id;
  gboolean have_group_id;
  GString *line;
  GString *subtitle;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));

static GstStaticPadTemplate subtitle_src_template = GST_STATIC_PAD_TEMPLATE (
    "subtitle_src", GST_PAD_SRC, GST_PAD_REQUEST, GST_STATIC_CAPS (TEXT_CAPS));

static GstStaticPadTemplate json_src_template = GST_STATIC_PAD_TEMPLATE (
    "json_src", GST_PAD_SRC, GST_PAD_REQUEST, GST_STATIC_CAPS (TEXT_CAPS));

#define gst_fer_emotion_export_parent_class parent_class
G_DEFINE_TYPE (
    GstFerEmotionExport, gst_fer_emotion_export, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (feremotionexport, "feremotionexport",
    GST_RANK_NONE, GST_TYPE_FER_EMOTION_EXPORT);

static void
gst_fer_emotion_export_write_failed (GstFerEmotionExport *self, gint errsv)
{
  if (self->write_failed)
    return;
  self->write_failed = TRUE;
  /* a file name is bytes: shown as valid UTF-8 */
  g_autofree char *shown = fer_text_quote (self->filename, 0);
  if (errsv == ENOSPC)
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
        ("No space left to write file \"%s\".", shown),
        ("system error: %s", g_strerror (errsv)));
  else
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write to file \"%s\".", shown),
        ("system error: %s", g_strerror (errsv)));
}

/* The JSON line is written straight into self->line, a GString that keeps
 * its capacity from buffer to buffer: no allocation per buffer (json-glib's
 * builder made a tree of nodes for every line). Numbers as json-glib wrote
 * them (integers; %.17g for the floats), NaN and infinity (a broken model
 * can produce them) as null, which JSON has instead. */
static void
json_int (GString *out, gint64 value)
{
  gchar buf[24];
  gint n = g_snprintf (buf, sizeof buf, "%" G_GINT64_FORMAT, value);
  g_string_append_len (out, buf, n);
}

static void
json_number (GString *out, gfloat value)
{
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];
  if (isfinite (value))
    g_string_append (out, g_ascii_dtostr (buf, sizeof buf, (gdouble) value));
  else
    g_string_append (out, "null");
}

/* A string, escaped: quote, backslash and control characters, and < and >
 * as \u003c / \u003e, so that no line holds a markup tag (a muxer may take
 * the json_src text as Pango markup). Labels come from metas any element
 * may have made: one that is not UTF-8 is written quoted (\xNN). */
static void
json_string (GString *out, const gchar *s)
{
  g_autofree gchar *shown = NULL;
  if (!g_utf8_validate (s, -1, NULL))
    s = shown = fer_text_quote (s, 0);
  g_string_append_c (out, '"');
  for (const guchar *p = (const guchar *) s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      g_string_append_c (out, '\\');
      g_string_append_c (out, (gchar) *p);
    } else if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>') {
      gchar buf[8];
      g_snprintf (buf, sizeof buf, "\\u%04x", *p);
      g_string_append (out, buf);
    } else {
      g_string_append_c (out, (gchar) *p);
    }
  }
  g_string_append_c (out, '"');
}

/* ,"name": (the first member of an object has no comma: first) */
static void
json_key (GString *out, const gchar *name, gboolean first)
{
  if (!first)
    g_string_append_c (out, ',');
  json_string (out, name);
  g_string_append_c (out, ':');
}

/* a time or a size, null when unknown */
static void
json_int_or_null (GString *out, gboolean known, gint64 value)
{
  if (known)
    json_int (out, value);
  else
    g_string_append (out, "null");
}

static void
json_face (GString *out, const GstFerEmotionMeta *m)
{
  guint n_classes = MIN (m->n_classes, GST_FER_EMOTION_MAX_CLASSES);
  const struct
  {
    const gchar *name;
    gint64 value;
  } ints[] = { { "x", m->x }, { "y", m->y }, { "w", m->w }, { "h", m->h },
    { "roi_id", m->roi_id }, { "track_id", m->track_id } };
  gboolean first = TRUE;

  g_string_append_c (out, '{');
  for (guint i = 0; i < G_N_ELEMENTS (ints); i++) {
    json_key (out, ints[i].name, i == 0);
    json_int (out, ints[i].value);
  }
  json_key (out, "label", FALSE);
  if (m->label)
    json_string (out, m->label);
  else
    g_string_append (out, "null");
  json_key (out, "label_id", FALSE);
  json_int (out, m->label_id);
  json_key (out, "confidence", FALSE);
  json_number (out, m->confidence);
  json_key (out, "probabilities", FALSE);
  g_string_append_c (out, '{');
  for (guint i = 0; i < n_classes; i++)
    if (m->class_labels[i]) {
      json_key (out, m->class_labels[i], first);
      json_number (out, m->probabilities[i]);
      first = FALSE;
    }
  g_string_append (out, "}}");
}

/* The whole line in one write(2) (looping only on what the kernel refuses
 * to take at once): the kernel has it when this returns, whatever happens
 * to the process next. FALSE with errno set on failure; a line the file
 * took only part of (the disk filled up in the middle, a file size limit)
 * is cut off again where it began, so that the file still ends with a
 * whole line. */
static gboolean
write_line (gint fd, const gchar *line, gsize len)
{
  gsize written = 0;

  while (written < len) {
    gssize n = write (fd, line + written, len - written);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      gint errsv = n == 0 ? EIO : errno;
      off_t end;
      if (written > 0 && (end = lseek (fd, 0, SEEK_CUR)) >= (off_t) written)
        while (ftruncate (fd, end - (off_t) written) < 0 && errno == EINTR)
          ;
      errno = errsv;
      return FALSE;
    }
    written += (gsize) n;
  }
  return TRUE;
}

/* A text pad, referenced, or NULL when it was not requested. */
static GstPad *
text_out_get_pad (GstFerEmotionExport *self, TextOut *out)
{
  GstPad *pad;

  GST_OBJECT_LOCK (self);
  pad = out->pad ? gst_object_ref (out->pad) : NULL;
  GST_OBJECT_UNLOCK (self);
  return pad;
}

/* What a text pad needs before its first buffer, GAP or EOS: a
 * stream-start of its own (its id derived from upstream's, upstream's
 * group id), the caps, its title and the video's segment. A refusal
 * shows as the flow return of the next buffer. */
static void
text_out_prepare (GstFerEmotionExport *self, TextOut *out, GstPad *pad)
{
  if (out->need_stream_start) {
    gchar *id =
        gst_pad_create_stream_id (pad, GST_ELEMENT (self), out->stream_name);
    GstEvent *event = gst_event_new_stream_start (id);
    GstCaps *caps = gst_pad_get_pad_template_caps (pad);
    GstTagList *tags = gst_tag_list_new (GST_TAG_TITLE, out->title, NULL);

    g_free (id);
    if (self->have_group_id)
      gst_event_set_group_id (event, self->group_id);
    gst_event_set_stream_flags (event, out->flags);
    gst_pad_push_event (pad, event);
    gst_pad_push_event (pad, gst_event_new_caps (caps));
    gst_caps_unref (caps);
    gst_tag_list_set_scope (tags, GST_TAG_SCOPE_STREAM);
    gst_pad_push_event (pad, gst_event_new_tag (tags));
    out->need_stream_start = FALSE;
    out->need_segment = TRUE;
  }
  if (out->need_segment && self->segment.format != GST_FORMAT_UNDEFINED) {
    gst_pad_push_event (pad, gst_event_new_segment (&self->segment));
    out->need_segment = FALSE;
  }
}

/* The video goes on whatever becomes of the text, except on an error. */
static GstFlowReturn
text_out_flow (
    GstFerEmotionExport *self, TextOut *out, GstPad *pad, GstFlowReturn ret)
{
  switch (ret) {
    case GST_FLOW_OK:
    case GST_FLOW_EOS: /* downstream wants no more text */
      return GST_FLOW_OK;
    case GST_FLOW_NOT_LINKED:
      if (!out->warned_not_linked) {
        out->warned_not_linked = TRUE;
        GST_ELEMENT_WARNING (self, CORE, PAD,
            ("Pad \"%s\" is not linked: the emotions it carries are not "
             "recorded.",
                GST_PAD_NAME (pad)),
            ("link %s:%s (through a queue) or release it; the video goes on",
                GST_DEBUG_PAD_NAME (pad)));
      }
      return GST_FLOW_OK;
    case GST_FLOW_NOT_NEGOTIATED: {
      GstPad *peer = gst_pad_get_peer (pad);
      gchar *peer_name = peer
          ? g_strdup_printf ("%s:%s", GST_DEBUG_PAD_NAME (peer))
          : g_strdup ("(no peer)");

      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Downstream of pad \"%s\" does not accept text (%s).",
              GST_PAD_NAME (pad), TEXT_CAPS),
          ("%s refused the caps of %s:%s; link the pad to a muxer's "
           "subtitle pad or another element that takes UTF-8 text",
              peer_name, GST_DEBUG_PAD_NAME (pad)));
      g_free (peer_name);
      if (peer)
        gst_object_unref (peer);
      return ret;
    }
    case GST_FLOW_FLUSHING: {
      gboolean released;

      /* a pad released while its text was on the way: the video goes on */
      GST_OBJECT_LOCK (self);
      released = out->pad != pad;
      GST_OBJECT_UNLOCK (self);
      return released ? GST_FLOW_OK : ret;
    }
    default: /* an error downstream has posted */
      return ret;
  }
}

/* A buffer from the pad's pool holding @text; the pool grows (a new pool
 * of twice the size) when a text is longer than its buffers. */
static GstFlowReturn
text_out_buffer (GstFerEmotionExport *self, TextOut *out, const gchar *text,
    gsize len, GstBuffer **buf)
{
  GstFlowReturn ret;

  if (!out->pool || len > out->pool_size) {
    gsize size = MAX (len, MAX (2 * out->pool_size, 256));
    GstBufferPool *pool = gst_buffer_pool_new ();
    GstStructure *config = gst_buffer_pool_get_config (pool);

    gst_buffer_pool_config_set_params (config, NULL, (guint) size, 0, 0);
    if (size > G_MAXUINT || !gst_buffer_pool_set_config (pool, config)
        || !gst_buffer_pool_set_active (pool, TRUE)) {
      gst_object_unref (pool);
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
          ("Could not allocate a %" G_GSIZE_FORMAT "-byte text buffer.", size),
          ("buffer pool of pad %s", out->template_name));
      return GST_FLOW_ERROR;
    }
    if (out->pool) {
      gst_buffer_pool_set_active (out->pool, FALSE);
      gst_object_unref (out->pool);
    }
    out->pool = pool;
    out->pool_size = size;
  }
  ret = gst_buffer_pool_acquire_buffer (out->pool, buf, NULL);
  if (ret != GST_FLOW_OK)
    return ret;
  gst_buffer_fill (*buf, 0, text, len);
  gst_buffer_set_size (*buf, (gssize) len);
  return GST_FLOW_OK;
}

static void
text_out_clear_pool (TextOut *out)
{
  if (out->pool) {
    gst_buffer_pool_set_active (out->pool, FALSE);
    gst_object_unref (out->pool);
    out->pool = NULL;
  }
  out->pool_size = 0;
}

/* The video buffer's duration, else one frame of the caps' rate. */
static GstClockTime
text_duration (GstFerEmotionExport *self, GstBuffer *video)
{
  if (GST_BUFFER_DURATION_IS_VALID (video))
    return GST_BUFFER_DURATION (video);
  if (self->fps_n > 0 && self->fps_d > 0)
    return gst_util_uint64_scale_int (GST_SECOND, self->fps_d, self->fps_n);
  return GST_CLOCK_TIME_NONE;
}

/* @text for the time of @video on @pad, or a GAP event when @text is
 * NULL. A buffer without a PTS has no place in a text track: nothing. */
static GstFlowReturn
text_out_push (GstFerEmotionExport *self, TextOut *out, GstPad *pad,
    GstBuffer *video, const gchar *text, gsize len)
{
  GstClockTime duration = text_duration (self, video);
  GstBuffer *buf;
  GstFlowReturn ret;

  if (!GST_BUFFER_PTS_IS_VALID (video)) {
    GST_LOG_OBJECT (pad, "buffer without PTS: nothing on %s", out->stream_name);
    return GST_FLOW_OK;
  }
  text_out_prepare (self, out, pad);
  if (!text) {
    gst_pad_push_event (
        pad, gst_event_new_gap (GST_BUFFER_PTS (video), duration));
    return GST_FLOW_OK;
  }
  ret = text_out_buffer (self, out, text, len, &buf);
  if (ret != GST_FLOW_OK)
    return ret;
  GST_BUFFER_PTS (buf) = GST_BUFFER_PTS (video);
  GST_BUFFER_DURATION (buf) = duration;
  return text_out_flow (self, out, pad, gst_pad_push (pad, buf));
}

/* One line per face, "happy 83%", in the order of the metas (the JSON
 * line's order); FALSE when the buffer has no labelled face. */
static gboolean
subtitle_text (GString *text, GstBuffer *buffer)
{
  GstFerEmotionMeta *m;
  gpointer state = NULL;

  g_string_truncate (text, 0);
  while ((m = gst_buffer_iterate_fer_emotion_meta (buffer, &state))) {
    if (!m->label)
      continue;
    if (text->len > 0)
      g_string_append_c (text, '\n');
    g_string_append (text, m->label);
    if (isfinite (m->confidence)) {
      /* into the stack: g_string_append_printf allocates each time */
      gchar pct[8];
      gint n = g_snprintf (pct, sizeof pct, " %d%%",
          (gint) (CLAMP (m->confidence, 0.0f, 1.0f) * 100.0f + 0.5f));
      g_string_append_len (text, pct, n);
    }
  }
  return text->len > 0;
}

/* The buffer's JSON line in self->line, newline included. */
static void
build_line (GstFerEmotionExport *self, GstBuffer *buffer)
{
  GString *out = self->line;
  GstFerEmotionMeta *m;
  gpointer state = NULL;
  gboolean first = TRUE;

  g_string_truncate (out, 0);
  g_string_append_c (out, '{');
  json_key (out, "pts", TRUE);
  json_int_or_null (
      out, GST_BUFFER_PTS_IS_VALID (buffer), (gint64) GST_BUFFER_PTS (buffer));
  json_key (out, "duration", FALSE);
  json_int_or_null (out, GST_BUFFER_DURATION_IS_VALID (buffer),
      (gint64) GST_BUFFER_DURATION (buffer));
  json_key (out, "width", FALSE);
  json_int_or_null (out, self->width > 0, self->width);
  json_key (out, "height", FALSE);
  json_int_or_null (out, self->height > 0, self->height);
  json_key (out, "faces", FALSE);
  g_string_append_c (out, '[');
  while ((m = gst_buffer_iterate_fer_emotion_meta (buffer, &state))) {
    if (!first)
      g_string_append_c (out, ',');
    json_face (out, m);
    first = FALSE;
  }
  g_string_append (out, "]}\n");
}

static GstFlowReturn
gst_fer_emotion_export_transform_ip (GstBaseTransform *trans, GstBuffer *buffer)
{
  GstFerEmotionExport *self = GST_FER_EMOTION_EXPORT (trans);
  TextOut *json_out = &self->out[OUT_JSON];
  TextOut *subtitle_out = &self->out[OUT_SUBTITLE];
  GstPad *json_pad, *subtitle_pad;
  GstFlowReturn ret = GST_FLOW_OK;
  gboolean all_buffers, has_line;

  GST_OBJECT_LOCK (self);
  all_buffers = self->all_buffers;
  GST_OBJECT_UNLOCK (self);

  /* the stream is in an unknown state after a failed write */
  if (self->write_failed)
    return GST_FLOW_ERROR;
  json_pad = text_out_get_pad (self, json_out);
  subtitle_pad = text_out_get_pad (self, subtitle_out);

  has_line = all_buffers
      || gst_buffer_get_meta (buffer, GST_FER_EMOTION_META_API_TYPE);
  if (has_line && (self->fd >= 0 || json_pad)) {
    build_line (self, buffer);
    if (self->fd >= 0
        && !write_line (self->fd, self->line->str, self->line->len))
      goto write_failed;
  }
  if (json_pad)
    ret = text_out_push (self, json_out, json_pad, buffer,
        has_line ? self->line->str : NULL, has_line ? self->line->len - 1 : 0);
  if (subtitle_pad && ret == GST_FLOW_OK) {
    gboolean has_faces = subtitle_text (self->subtitle, buffer);

    ret = text_out_push (self, subtitle_out, subtitle_pad, buffer,
        has_faces ? self->subtitle->str : NULL, self->subtitle->len);
  }

done:
  if (json_pad)
    gst_object_unref (json_pad);
  if (subtitle_pad)
    gst_object_unref (subtitle_pad);
  return ret;

write_failed : {
  gst_fer_emotion_export_write_failed (self, errno);
  ret = GST_FLOW_ERROR;
  goto done;
}
}

/* The text pads follow the video: their own stream-start and the video's
 * segment before their first data, and the video's GAP, EOS and flushes. */
static gboolean
gst_fer_emotion_export_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  GstFerEmotionExport *self = GST_FER_EMOTION_EXPORT (trans);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_STREAM_START:
      self->have_group_id = gst_event_parse_group_id (event, &self->group_id);
      for (guint i = 0; i < N_OUTS; i++)
        self->out[i].need_stream_start = TRUE;
      break;
    case GST_EVENT_SEGMENT:
      gst_event_copy_segment (event, &self->segment);
      for (guint i = 0; i < N_OUTS; i++)
        self->out[i].need_segment = TRUE;
      break;
    case GST_EVENT_GAP:
    case GST_EVENT_EOS:
    case GST_EVENT_FLUSH_START:
    case GST_EVENT_FLUSH_STOP:
      for (guint i = 0; i < N_OUTS; i++) {
        GstPad *pad = text_out_get_pad (self, &self->out[i]);

        if (!pad)
          continue;
        /* a GAP or EOS must follow the pad's stream-start, caps and
         * segment; flushes need none of them: flush-start comes from
         * another thread, and during flush-stop the pad is still flushing
         * and would refuse them (lost, as the first buffer would find
         * them sent) */
        if (GST_EVENT_TYPE (event) == GST_EVENT_GAP
            || GST_EVENT_TYPE (event) == GST_EVENT_EOS)
          text_out_prepare (self, &self->out[i], pad);
        gst_pad_push_event (pad, gst_event_ref (event));
        gst_object_unref (pad);
      }
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

/* Nothing goes upstream through a text pad: seeks, QoS and the like
 * reach the source through the video's own path. */
static gboolean
text_out_src_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GST_LOG_OBJECT (pad, "dropping %" GST_PTR_FORMAT, event);
  gst_event_unref (event);
  return FALSE;
}

static GstPad *
gst_fer_emotion_export_request_new_pad (GstElement *element,
    GstPadTemplate *templ, const gchar *name, const GstCaps *caps)
{
  GstFerEmotionExport *self = GST_FER_EMOTION_EXPORT (element);
  const gchar *template_name = GST_PAD_TEMPLATE_NAME_TEMPLATE (templ);
  TextOut *out = NULL;
  gboolean taken;
  GstPad *pad;

  for (guint i = 0; i < N_OUTS; i++)
    if (!strcmp (template_name, self->out[i].template_name))
      out = &self->out[i];
  if (!out)
    return NULL;

  pad = gst_pad_new_from_template (templ, template_name);
  gst_pad_set_event_function (pad, text_out_src_event);
  gst_pad_use_fixed_caps (pad);

  GST_OBJECT_LOCK (self);
  taken = out->pad != NULL;
  if (!taken) {
    out->need_stream_start = TRUE;
    out->need_segment = TRUE;
    out->warned_not_linked = FALSE;
    out->pad = pad;
  }
  GST_OBJECT_UNLOCK (self);
  if (taken) {
    GST_WARNING_OBJECT (self, "pad %s was already requested", template_name);
    gst_object_unref (pad);
    return NULL;
  }
  gst_element_add_pad (element, pad);
  return pad;
}

static void
gst_fer_emotion_export_release_pad (GstElement *element, GstPad *pad)
{
  GstFerEmotionExport *self = GST_FER_EMOTION_EXPORT (element);

  GST_OBJECT_LOCK (self);
  for (guint i = 0; i < N_OUTS; i++)
    if (self->out[i].pad == pad)
      self->out[i].pad = NULL;
  GST_OBJECT_UNLOCK (self);
  gst_pad_set_active (pad, FALSE);
  gst_element_remove_pad (element, pad);
}

static gboolean
gst_fer_emotion_export_set_caps (
    GstBaseTransform *trans, GstCaps *incaps, GstCaps *outcaps)
{
  GstFerEmotionExport *self = GST_FER_EMOTION_EXPORT (trans);
  const GstStructure *s = gst_caps_get_structure (incaps, 0);

  if (!gst_structure_get_int (s, "width", &self->width))
    self->width = 0;
  if (!gst_structure_get_int (s, "height", &self->height))
    self->height = 0;
  if (!gst_structure_get_fraction (s, "framerate", &self->fps_n, &self->fps_d))
    self->fps_n = 0, self->fps_d = 1;
  return TRUE;
}

static gboolean
gst_fer_emotion_export_start (GstBaseTransform *trans)
{
  GstFerEmotionExport *self = GST_FER_EMOTION_EXPORT (trans);
  gboolean text_pads = FALSE;
  gchar *location;
  gint fd = -1;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  for (guint i = 0; i < N_OUTS; i++)
    text_pads |= self->out[i].pad != NULL;
  GST_OBJECT_UNLOCK (self);

  if (location && *location) {
    fd = g_open (location, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
      goto open_failed;
    GST_DEBUG_OBJECT (self, "writing to %s", location);
  } else if (!text_pads)
    goto no_location;
  else
    g_clear_pointer (&location, g_free);

  self->filename = location;
  self->write_failed = FALSE;
  self->width = self->height = 0;
  self->fps_n = 0;
  self->fps_d = 1;
  gst_segment_init (&self->segment, GST_FORMAT_UNDEFINED);
  self->have_group_id = FALSE;
  for (guint i = 0; i < N_OUTS; i++) {
    self->out[i].need_stream_start = TRUE;
    self->out[i].need_segment = TRUE;
    self->out[i].warned_not_linked = FALSE;
  }
  GST_OBJECT_LOCK (self);
  self->fd = fd;
  GST_OBJECT_UNLOCK (self);
  return TRUE;

no_location : {
  GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
      ("No file name specified for writing."),
      ("the \"location\" property is %s and neither subtitle_src nor "
       "json_src is requested",
          location ? "empty" : "not set"));
  g_free (location);
  return FALSE;
}
open_failed : {
  gint errsv = errno;
  char *shown = fer_text_quote (location, 0);

  GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
      ("Could not open file \"%s\" for writing.", shown),
      ("system error: %s", g_strerror (errsv)));
  g_free (shown);
  g_free (location);
  return FALSE;
}
}

static gboolean
gst_fer_emotion_export_stop (GstBaseTransform *trans)
{
  GstFerEmotionExport *self = GST_FER_EMOTION_EXPORT (trans);
  gboolean ok = TRUE;
  gint fd;

  GST_OBJECT_LOCK (self);
  fd = self->fd;
  self->fd = -1;
  GST_OBJECT_UNLOCK (self);

  /* every line is already written: close can only report a deferred
   * error (e.g. from a network file system), once */
  if (fd >= 0 && close (fd) != 0 && !self->write_failed) {
    gst_fer_emotion_export_write_failed (self, errno);
    ok = FALSE;
  }
  g_clear_pointer (&self->filename, g_free);
  for (guint i = 0; i < N_OUTS; i++)
    text_out_clear_pool (&self->out[i]);
  return ok;
}

static void
gst_fer_emotion_export_set_property (
    GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstFerEmotionExport *self = GST_FER_EMOTION_EXPORT (object);

  switch (prop_id) {
    case PROP_LOCATION: {
      gboolean open;

      GST_OBJECT_LOCK (self);
      open = self->fd >= 0;
      if (!open) {
        g_free (self->location);
        self->location = g_value_dup_string (value);
      }
      GST_OBJECT_UNLOCK (self);
      if (open)
        g_warning ("%s: cannot change \"location\" while the file is open; "
                   "set it before the element leaves READY",
            GST_OBJECT_NAME (self));
      break;
    }
    case PROP_ALL_BUFFERS:
      GST_OBJECT_LOCK (self);
      self->all_buffers = g_value_get_boolean (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_fer_emotion_export_get_property (
    GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstFerEmotionExport *self = GST_FER_EMOTION_EXPORT (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_ALL_BUFFERS:
      g_value_set_boolean (value, self->all_buffers);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_fer_emotion_export_finalize (GObject *object)
{
  GstFerEmotionExport *self = GST_FER_EMOTION_EXPORT (object);

  g_free (self->location);
  g_string_free (self->line, TRUE);
  g_string_free (self->subtitle, TRUE);
  for (guint i = 0; i < N_OUTS; i++)
    text_out_clear_pool (&self->out[i]);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_fer_emotion_export_class_init (GstFerEmotionExportClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  GST_DEBUG_CATEGORY_INIT (gst_fer_emotion_export_debug, "feremotionexport", 0,
      "Writes facial expression results as JSON lines");

  gobject_class->set_property = gst_fer_emotion_export_set_property;
  gobject_class->get_property = gst_fer_emotion_export_get_property;
  gobject_class->finalize = gst_fer_emotion_export_finalize;

  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "File location",
          "File to write the JSON lines to (created or truncated); may "
          "stay unset when subtitle_src or json_src is requested",
          NULL, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_ALL_BUFFERS,
      g_param_spec_boolean ("all-buffers", "All buffers",
          "Also write a line for buffers without faces", DEFAULT_ALL_BUFFERS,
          rw | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_add_static_pad_template (
      element_class, &subtitle_src_template);
  gst_element_class_add_static_pad_template (element_class, &json_src_template);
  element_class->request_new_pad =
      GST_DEBUG_FUNCPTR (gst_fer_emotion_export_request_new_pad);
  element_class->release_pad =
      GST_DEBUG_FUNCPTR (gst_fer_emotion_export_release_pad);
  gst_element_class_set_static_metadata (element_class,
      "Facial expression JSON export", "Filter/Metadata/Video",
      "Writes the GstFerEmotionMeta of each buffer to a JSON Lines file "
      "and, on request pads, as timestamped text for a muxer's subtitle "
      "tracks, and passes the buffer on",
      "gst-feremotion authors");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_fer_emotion_export_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_fer_emotion_export_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_fer_emotion_export_set_caps);
  trans_class->sink_event =
      GST_DEBUG_FUNCPTR (gst_fer_emotion_export_sink_event);
  trans_class->transform_ip =
      GST_DEBUG_FUNCPTR (gst_fer_emotion_export_transform_ip);
}

static void
gst_fer_emotion_export_init (GstFerEmotionExport *self)
{
  self->all_buffers = DEFAULT_ALL_BUFFERS;
  self->fd = -1;
  self->line = g_string_new (NULL);
  self->subtitle = g_string_new (NULL);
  self->out[OUT_SUBTITLE] = (TextOut){ .template_name = "subtitle_src",
    .stream_name = "subtitle",
    .title = "Emotions",
    .flags = GST_STREAM_FLAG_SPARSE };
  self->out[OUT_JSON] = (TextOut){ .template_name = "json_src",
    .stream_name = "json",
    .title = "Emotions (JSON lines)",
    .flags = GST_STREAM_FLAG_NONE };
  gst_segment_init (&self->segment, GST_FORMAT_UNDEFINED);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}
