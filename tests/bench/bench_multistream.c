/* Several streams through feremotion, one shared model (shared=true, with
 * cross-stream batching) against a model per element (shared=false).
 * Prints one Markdown table row per run (--header prints the header).
 *
 *   bench-multistream --model M --streams S --shared true|false
 *                     [--buffers N] [--tta T] [--max-batch-wait US]
 *                     [--threads T] [--header]
 *
 * S branches in one pipeline, each: videotestsrc num-buffers=N
 * pattern=snow ! GRAY8 144x48 ! feremotion mode=roi ! fakesink sync=false,
 * with 1, 2 or 3 48x48 face ROIs per buffer (cycling, added by a probe on
 * feremotion's sink pad, as a detector would). The sources run free: every
 * stream has a buffer waiting, the throughput case. Reported: faces per
 * second (first buffer in to EOS), per-buffer latency through feremotion
 * (sink pad to src pad) p50 and p99 over all streams, and the process's
 * resident memory (VmRSS at EOS, VmHWM). Run each case in its own process
 * (docs/benchmarks.md has the loop) so that memory is the case's own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>
#include <gst/video/video.h>

#include "bench-proc.h"

#define FACE_SIZE 48
#define MAX_FACES 3

typedef struct
{
  gint stream;
  gint n_in, n_out, n;
  gint64 *t_in;     /* monotonic us, per buffer */
  gint64 *latency;  /* shared array of all streams' latencies */
  gint *n_latency;  /* its fill, under lat_lock */
  guint64 *faces;   /* all streams' faces, under lat_lock */
  gint64 *first_in; /* the first buffer of any stream */
} Stream;

static GMutex lat_lock;

static GstPadProbeReturn
on_in (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Stream *s = user_data;
  GstBuffer *buf = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
  gint nf = 1 + (s->stream + s->n_in) % MAX_FACES;
  gint64 t = g_get_monotonic_time ();

  for (gint f = 0; f < nf; f++)
    gst_buffer_add_video_region_of_interest_meta (
        buf, "face", (guint) (f * FACE_SIZE), 0, FACE_SIZE, FACE_SIZE);
  GST_PAD_PROBE_INFO_DATA (info) = buf;
  g_mutex_lock (&lat_lock);
  if (!*s->first_in)
    *s->first_in = t;
  *s->faces += (guint64) nf;
  g_mutex_unlock (&lat_lock);
  if (s->n_in < s->n)
    s->t_in[s->n_in++] = t;
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_out (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Stream *s = user_data;
  gint64 t = g_get_monotonic_time ();

  if (s->n_out < s->n_in) {
    g_mutex_lock (&lat_lock);
    s->latency[(*s->n_latency)++] = t - s->t_in[s->n_out++];
    g_mutex_unlock (&lat_lock);
  }
  return GST_PAD_PROBE_OK;
}

static gint
cmp_int64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  gchar *model = NULL, *shared = g_strdup ("true");
  gint streams = 1, buffers = 40, tta = 1, threads = 0, wait_us = 1000;
  gboolean header = FALSE;
  GOptionEntry entries[] = {
    { "model", 0, 0, G_OPTION_ARG_STRING, &model, "Model file", "M" },
    { "streams", 0, 0, G_OPTION_ARG_INT, &streams, "Streams (1..64)", "S" },
    { "shared", 0, 0, G_OPTION_ARG_STRING, &shared, "true|false", "B" },
    { "buffers", 0, 0, G_OPTION_ARG_INT, &buffers, "Buffers per stream", "N" },
    { "tta", 0, 0, G_OPTION_ARG_INT, &tta, "TTA views", "T" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, "CPU threads", "T" },
    { "max-batch-wait", 0, 0, G_OPTION_ARG_INT, &wait_us,
        "feremotion max-batch-wait", "US" },
    { "header", 0, 0, G_OPTION_ARG_NONE, &header, "Print the table header",
        NULL },
    { NULL },
  };
  GOptionContext *ctx = g_option_context_new ("- feremotion multi-stream");
  GError *error = NULL;
  GString *desc = g_string_new (NULL);
  GstElement *pipeline;
  GstMessage *msg;
  GstBus *bus;
  Stream *st;
  gint64 *latency, first_in = 0, end;
  gint n_latency = 0, rc = 0;
  guint64 faces = 0;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "bench-multistream: %s\n", error->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (header) {
    printf ("| streams | model | faces/s | latency p50 (ms) | latency p99 "
            "(ms) | VmRSS (MB) | VmHWM (MB) |\n"
            "|---|---|---|---|---|---|---|\n");
    return 0;
  }
  if (!model || streams < 1 || streams > 64 || buffers < 1) {
    fprintf (stderr,
        "bench-multistream: --model M and --streams 1..64 "
        "needed\n");
    return 2;
  }

  for (gint s = 0; s < streams; s++)
    g_string_append_printf (desc,
        "videotestsrc num-buffers=%d pattern=snow "
        "! video/x-raw,format=GRAY8,width=%d,height=%d,framerate=30/1 "
        "! feremotion name=fer%d model=%s shared=%s max-batch-wait=%d "
        "tta=%d threads=%d mode=roi post-messages=false "
        "! fakesink sync=false ",
        buffers, FACE_SIZE * MAX_FACES, FACE_SIZE, s, model, shared, wait_us,
        tta, threads);
  pipeline = gst_parse_launch (desc->str, &error);
  g_string_free (desc, TRUE);
  if (!pipeline || error) {
    fprintf (stderr, "bench-multistream: %s\n",
        error ? error->message : "no pipeline");
    return 1;
  }
  st = g_new0 (Stream, streams);
  latency = g_new (gint64, (gsize) streams * buffers);
  for (gint s = 0; s < streams; s++) {
    gchar *name = g_strdup_printf ("fer%d", s);
    GstElement *fer = gst_bin_get_by_name (GST_BIN (pipeline), name);
    GstPad *sink = gst_element_get_static_pad (fer, "sink");
    GstPad *src = gst_element_get_static_pad (fer, "src");
    st[s] = (Stream){ s, 0, 0, buffers, g_new (gint64, buffers), latency,
      &n_latency, &faces, &first_in };
    gst_pad_add_probe (sink, GST_PAD_PROBE_TYPE_BUFFER, on_in, &st[s], NULL);
    gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER, on_out, &st[s], NULL);
    gst_object_unref (sink);
    gst_object_unref (src);
    gst_object_unref (fer);
    g_free (name);
  }

  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (
      bus, GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  end = g_get_monotonic_time ();
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *dbg = NULL;
    gst_message_parse_error (msg, &error, &dbg);
    fprintf (
        stderr, "bench-multistream: %s\n%s\n", error->message, dbg ? dbg : "");
    g_clear_error (&error);
    g_free (dbg);
    rc = 1;
  } else {
    qsort (latency, n_latency, sizeof (gint64), cmp_int64);
    printf ("| %d | %s | %.0f | %.1f | %.1f | %.0f | %.0f |\n", streams,
        strcmp (shared, "true") == 0 ? "shared" : "separate",
        faces / ((end - first_in) / 1e6), latency[n_latency / 2] / 1e3,
        latency[MIN (n_latency - 1, n_latency * 99 / 100)] / 1e3,
        status_kb ("VmRSS:") / 1024.0, status_kb ("VmHWM:") / 1024.0);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  for (gint s = 0; s < streams; s++)
    g_free (st[s].t_in);
  g_free (st);
  g_free (latency);
  g_free (model);
  g_free (shared);
  return rc;
}
