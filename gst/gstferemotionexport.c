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
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=interview.mp4 ! decodebin ! videoconvert ! feremotion model=model.safetensors ! feremotionexport location=interview.jsonl ! fakesink
 * ]| Writes the emotions of a recorded video to interview.jsonl.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstferemotionexport.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>
#include <json-glib/json-glib.h>
#include <math.h>

#include "feremotion/gstferemotionmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_fer_emotion_export_debug);
#define GST_CAT_DEFAULT gst_fer_emotion_export_debug

#define DEFAULT_ALL_BUFFERS TRUE

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_ALL_BUFFERS,
};

struct _GstFerEmotionExport
{
  GstBaseTransform parent;

  /* under the object lock */
  gchar *location;
  gboolean all_buffers;
  gint fd; /* open between start() and stop(), else -1 */

  /* streaming thread, and start()/stop() */
  gchar *filename;       /* the location the file was opened with */
  gboolean write_failed; /* already reported: say it once */
  gint width, height;    /* from the caps; 0 when they have none */
  JsonBuilder *builder;
  JsonGenerator *generator;
  GString *line;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));

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
  if (errsv == ENOSPC)
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
        ("No space left to write file \"%s\".", self->filename),
        ("system error: %s", g_strerror (errsv)));
  else
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write to file \"%s\".", self->filename),
        ("system error: %s", g_strerror (errsv)));
}

static void
add_int (JsonBuilder *b, const gchar *name, gint64 value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, value);
}

static void
add_time (JsonBuilder *b, const gchar *name, GstClockTime t)
{
  json_builder_set_member_name (b, name);
  if (GST_CLOCK_TIME_IS_VALID (t))
    json_builder_add_int_value (b, (gint64) t);
  else
    json_builder_add_null_value (b);
}

static void
add_size (JsonBuilder *b, const gchar *name, gint size)
{
  json_builder_set_member_name (b, name);
  if (size > 0)
    json_builder_add_int_value (b, size);
  else
    json_builder_add_null_value (b);
}

/* JSON has no NaN or infinity (a broken model can produce them): null */
static void
add_number (JsonBuilder *b, const gchar *name, gfloat value)
{
  json_builder_set_member_name (b, name);
  if (isfinite (value))
    json_builder_add_double_value (b, value);
  else
    json_builder_add_null_value (b);
}

static void
add_face (JsonBuilder *b, const GstFerEmotionMeta *m)
{
  guint n_classes = MIN (m->n_classes, GST_FER_EMOTION_MAX_CLASSES);

  json_builder_begin_object (b);
  add_int (b, "x", m->x);
  add_int (b, "y", m->y);
  add_int (b, "w", m->w);
  add_int (b, "h", m->h);
  add_int (b, "roi_id", m->roi_id);
  add_int (b, "track_id", m->track_id);
  json_builder_set_member_name (b, "label");
  if (m->label)
    json_builder_add_string_value (b, m->label);
  else
    json_builder_add_null_value (b);
  add_int (b, "label_id", m->label_id);
  add_number (b, "confidence", m->confidence);
  json_builder_set_member_name (b, "probabilities");
  json_builder_begin_object (b);
  for (guint i = 0; i < n_classes; i++)
    if (m->class_labels[i])
      add_number (b, m->class_labels[i], m->probabilities[i]);
  json_builder_end_object (b);
  json_builder_end_object (b);
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

static GstFlowReturn
gst_fer_emotion_export_transform_ip (GstBaseTransform *trans, GstBuffer *buffer)
{
  GstFerEmotionExport *self = GST_FER_EMOTION_EXPORT (trans);
  JsonBuilder *b = self->builder;
  GstFerEmotionMeta *m;
  gpointer state = NULL;
  gboolean all_buffers;
  JsonNode *root;

  GST_OBJECT_LOCK (self);
  all_buffers = self->all_buffers;
  GST_OBJECT_UNLOCK (self);

  /* the stream is in an unknown state after a failed write */
  if (self->write_failed)
    return GST_FLOW_ERROR;
  if (!all_buffers
      && !gst_buffer_get_meta (buffer, GST_FER_EMOTION_META_API_TYPE))
    return GST_FLOW_OK;

  json_builder_reset (b);
  json_builder_begin_object (b);
  add_time (b, "pts", GST_BUFFER_PTS (buffer));
  add_time (b, "duration", GST_BUFFER_DURATION (buffer));
  add_size (b, "width", self->width);
  add_size (b, "height", self->height);
  json_builder_set_member_name (b, "faces");
  json_builder_begin_array (b);
  while ((m = gst_buffer_iterate_fer_emotion_meta (buffer, &state)))
    add_face (b, m);
  json_builder_end_array (b);
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  json_generator_set_root (self->generator, root);
  json_node_unref (root);
  g_string_truncate (self->line, 0);
  json_generator_to_gstring (self->generator, self->line);
  g_string_append_c (self->line, '\n');

  if (!write_line (self->fd, self->line->str, self->line->len))
    goto write_failed;
  return GST_FLOW_OK;

write_failed : {
  gst_fer_emotion_export_write_failed (self, errno);
  return GST_FLOW_ERROR;
}
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
  return TRUE;
}

static gboolean
gst_fer_emotion_export_start (GstBaseTransform *trans)
{
  GstFerEmotionExport *self = GST_FER_EMOTION_EXPORT (trans);
  gchar *location;
  gint fd;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  GST_OBJECT_UNLOCK (self);

  if (!location || !*location)
    goto no_location;
  fd = g_open (location, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0)
    goto open_failed;
  GST_DEBUG_OBJECT (self, "writing to %s", location);

  self->filename = location;
  self->write_failed = FALSE;
  self->width = self->height = 0;
  GST_OBJECT_LOCK (self);
  self->fd = fd;
  GST_OBJECT_UNLOCK (self);
  return TRUE;

no_location : {
  GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
      ("No file name specified for writing."),
      ("the \"location\" property is %s", location ? "empty" : "not set"));
  g_free (location);
  return FALSE;
}
open_failed : {
  gint errsv = errno;

  GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
      ("Could not open file \"%s\" for writing.", location),
      ("system error: %s", g_strerror (errsv)));
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
  g_object_unref (self->builder);
  g_object_unref (self->generator);
  g_string_free (self->line, TRUE);
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
          "File to write the JSON lines to (created or truncated)", NULL,
          rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_ALL_BUFFERS,
      g_param_spec_boolean ("all-buffers", "All buffers",
          "Also write a line for buffers without faces", DEFAULT_ALL_BUFFERS,
          rw | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Facial expression JSON export", "Filter/Metadata/Video",
      "Writes the GstFerEmotionMeta of each buffer to a JSON Lines file "
      "and passes the buffer on",
      "gst-feremotion authors");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_fer_emotion_export_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_fer_emotion_export_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_fer_emotion_export_set_caps);
  trans_class->transform_ip =
      GST_DEBUG_FUNCPTR (gst_fer_emotion_export_transform_ip);
}

static void
gst_fer_emotion_export_init (GstFerEmotionExport *self)
{
  self->all_buffers = DEFAULT_ALL_BUFFERS;
  self->fd = -1;
  self->builder = json_builder_new ();
  self->generator = json_generator_new ();
  self->line = g_string_new (NULL);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}
