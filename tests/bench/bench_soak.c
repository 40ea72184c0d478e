/* A soak run (issue 10): several branches through feremotion on one shared
 * model for a long time, with the model swapped under load, watching the
 * process's resident memory. A benchmark, not a test: it prints what it
 * measured and exits non-zero only when the pipeline failed.
 *
 *   bench-soak --model M [--frames N] [--streams S] [--swap-every SECONDS]
 *              [--tta T] [--threads T]
 *
 * S branches (default 4) in one pipeline, each: videotestsrc pattern=snow
 * (unbounded) ! GRAY8 144x48 ! feremotion mode=roi shared=true ! a tail:
 *   branch 0: fakesink (and bus messages on);
 *   branch 1: feremotionexport location=/dev/null ! fakesink;
 *   branch 2: videoscale to 72x24 (the meta is rescaled) ! fakesink;
 *   branch 3 and up: fakesink, and every --swap-every seconds the model
 *     property changes between M and a copy of it (another file: another
 *     shared model), so loads, swaps and frees happen while the others run.
 * A probe adds 1 to 3 face ROIs per buffer, as a detector would. Once the
 * branches have passed --frames buffers in all, EOS ends the run.
 *
 * Every second it samples VmRSS; the report gives the frames, the rate,
 * VmRSS after the warm-up (the first 10% of the samples, at least 5 s) and
 * at the end, VmHWM, and the least-squares slope of VmRSS over the samples
 * after the warm-up, in kB per minute and per million frames: a leak of a
 * few bytes per buffer shows there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include "bench-proc.h"

#define FACE_SIZE 48
#define MAX_FACES 3

typedef struct
{
  GstElement *pipeline, *swapper;
  GMainLoop *loop;
  const char *models[2];
  int next_model;
  guint64 target;
  gint64 t0, last_swap;
  int swap_every, swaps, warnings, errors;
  gboolean eos_sent;
  GArray *t, *rss, *frames; /* samples: seconds, kB, frames */
  volatile gint n_out;
  int rc;
} Soak;

typedef struct
{
  int stream, n_in;
} Branch;

static GstPadProbeReturn
on_in (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Branch *b = user_data;
  GstBuffer *buf = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
  const int nf = 1 + (b->stream + b->n_in++) % MAX_FACES;

  for (int f = 0; f < nf; f++)
    gst_buffer_add_video_region_of_interest_meta (
        buf, "face", (guint) (f * FACE_SIZE), 0, FACE_SIZE, FACE_SIZE);
  GST_PAD_PROBE_INFO_DATA (info) = buf;
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_out (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Soak *s = user_data;
  g_atomic_int_inc (&s->n_out);
  return GST_PAD_PROBE_OK;
}

static gboolean
on_tick (gpointer user_data)
{
  Soak *s = user_data;
  const gint64 now = g_get_monotonic_time ();
  const double t = (now - s->t0) / 1e6;
  const double kb = (double) status_kb ("VmRSS:");
  const double frames = (double) g_atomic_int_get (&s->n_out);

  g_array_append_val (s->t, t);
  g_array_append_val (s->rss, kb);
  g_array_append_val (s->frames, frames);
  if (s->swapper && s->swap_every > 0
      && now - s->last_swap >= (gint64) s->swap_every * G_USEC_PER_SEC
      && !s->eos_sent) {
    s->next_model ^= 1;
    g_object_set (s->swapper, "model", s->models[s->next_model], NULL);
    s->swaps++;
    s->last_swap = now;
  }
  if (!s->eos_sent && frames >= (double) s->target) {
    s->eos_sent = TRUE;
    gst_element_send_event (s->pipeline, gst_event_new_eos ());
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_message (GstBus *bus, GstMessage *msg, gpointer user_data)
{
  Soak *s = user_data;
  GError *error = NULL;
  gchar *dbg = NULL;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_EOS:
      g_main_loop_quit (s->loop);
      break;
    case GST_MESSAGE_ERROR:
      gst_message_parse_error (msg, &error, &dbg);
      fprintf (stderr, "bench-soak: error from %s: %s\n",
          GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), error->message);
      s->errors++;
      s->rc = 1;
      g_main_loop_quit (s->loop);
      break;
    case GST_MESSAGE_WARNING:
      gst_message_parse_warning (msg, &error, &dbg);
      if (s->warnings++ < 5)
        fprintf (stderr, "bench-soak: warning from %s: %s\n",
            GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), error->message);
      break;
    default:
      break;
  }
  g_clear_error (&error);
  g_free (dbg);
  return G_SOURCE_CONTINUE;
}

/* Least-squares slope of y over x, samples [from, n). */
static double
slope (const GArray *x, const GArray *y, guint from)
{
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (guint i = from; i < x->len; i++) {
    double a = g_array_index (x, double, i), b = g_array_index (y, double, i);
    n++;
    sx += a;
    sy += b;
    sxx += a * a;
    sxy += a * b;
  }
  return n < 2 || n * sxx - sx * sx == 0
      ? 0.0
      : (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

int
main (int argc, char **argv)
{
  gchar *model = NULL;
  gint streams = 4, tta = 1, threads = 0, swap_every = 10;
  gint64 frames = 1000000;
  GOptionEntry entries[] = {
    { "model", 0, 0, G_OPTION_ARG_FILENAME, &model, "Model file", "M" },
    { "frames", 0, 0, G_OPTION_ARG_INT64, &frames,
        "Buffers through all branches (default 1000000)", "N" },
    { "streams", 0, 0, G_OPTION_ARG_INT, &streams, "Branches (1..16)", "S" },
    { "swap-every", 0, 0, G_OPTION_ARG_INT, &swap_every,
        "Seconds between model swaps on branch 3 (0: none)", "S" },
    { "tta", 0, 0, G_OPTION_ARG_INT, &tta, "TTA views", "T" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, "CPU threads", "T" },
    { NULL },
  };
  GOptionContext *ctx = g_option_context_new ("- feremotion soak run");
  GError *error = NULL;
  Soak s = { 0 };
  Branch *branches;
  GString *desc = g_string_new (NULL);
  gchar *dir, *copy, *contents = NULL;
  gsize length;
  GstBus *bus;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "bench-soak: %s\n", error->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (!model || streams < 1 || streams > 16 || frames < 1) {
    fprintf (stderr, "bench-soak: --model M and --streams 1..16 needed\n");
    return 2;
  }
  /* the other model of the swaps: a copy (another file, another model) */
  dir = g_dir_make_tmp ("fer-soak-XXXXXX", &error);
  copy = dir ? g_build_filename (dir, "copy.safetensors", NULL) : NULL;
  if (!dir || !g_file_get_contents (model, &contents, &length, &error)
      || !g_file_set_contents (copy, contents, (gssize) length, &error)) {
    fprintf (stderr, "bench-soak: %s\n", error->message);
    return 1;
  }
  g_free (contents);

  for (gint b = 0; b < streams; b++) {
    const char *tail = b == 1
        ? "feremotionexport location=/dev/null ! fakesink sync=false"
        : b == 2 ? "videoscale ! video/x-raw,width=72,height=24 ! fakesink "
                   "sync=false"
                 : "fakesink sync=false";
    g_string_append_printf (desc,
        "videotestsrc pattern=snow "
        "! video/x-raw,format=GRAY8,width=%d,height=%d,framerate=30/1 "
        "! feremotion name=fer%d model=%s tta=%d threads=%d mode=roi "
        "post-messages=%s ! %s ",
        FACE_SIZE * MAX_FACES, FACE_SIZE, b, model, tta, threads,
        b == 0 ? "true" : "false", tail);
  }
  s.pipeline = gst_parse_launch (desc->str, &error);
  g_string_free (desc, TRUE);
  if (!s.pipeline || error) {
    fprintf (
        stderr, "bench-soak: %s\n", error ? error->message : "no pipeline");
    return 1;
  }
  branches = g_new0 (Branch, streams);
  for (gint b = 0; b < streams; b++) {
    gchar *name = g_strdup_printf ("fer%d", b);
    GstElement *fer = gst_bin_get_by_name (GST_BIN (s.pipeline), name);
    GstPad *sink = gst_element_get_static_pad (fer, "sink");
    GstPad *src = gst_element_get_static_pad (fer, "src");
    branches[b].stream = b;
    gst_pad_add_probe (
        sink, GST_PAD_PROBE_TYPE_BUFFER, on_in, &branches[b], NULL);
    gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER, on_out, &s, NULL);
    if (b == 3)
      s.swapper = gst_object_ref (fer);
    gst_object_unref (sink);
    gst_object_unref (src);
    gst_object_unref (fer);
    g_free (name);
  }

  s.models[0] = model;
  s.models[1] = copy;
  s.target = (guint64) frames;
  s.swap_every = swap_every;
  s.t = g_array_new (FALSE, FALSE, sizeof (double));
  s.rss = g_array_new (FALSE, FALSE, sizeof (double));
  s.frames = g_array_new (FALSE, FALSE, sizeof (double));
  s.loop = g_main_loop_new (NULL, FALSE);
  bus = gst_element_get_bus (s.pipeline);
  gst_bus_add_watch (bus, on_message, &s);
  s.t0 = s.last_swap = g_get_monotonic_time ();
  g_timeout_add_seconds (1, on_tick, &s);
  gst_element_set_state (s.pipeline, GST_STATE_PLAYING);
  g_main_loop_run (s.loop);
  on_tick (&s);

  const double secs = (g_get_monotonic_time () - s.t0) / 1e6;
  const guint n = s.t->len;
  const guint warm = MAX (n / 10, MIN (5, n - 1));
  const double per_s = slope (s.t, s.rss, warm);
  const double per_frame = slope (s.frames, s.rss, warm);
  printf ("bench-soak: %d branches, tta %d, model %s (swapped with a copy "
          "every %d s on branch 3: %d swaps)\n",
      streams, tta, model, swap_every, streams > 3 ? s.swaps : 0);
  printf ("frames: %d in %.0f s (%.0f frames/s); bus: %d warnings, %d "
          "errors\n",
      g_atomic_int_get (&s.n_out), secs, g_atomic_int_get (&s.n_out) / secs,
      s.warnings, s.errors);
  printf ("VmRSS: %.1f MB after the warm-up (%.0f s), %.1f MB at the end; "
          "VmHWM %.1f MB\n",
      g_array_index (s.rss, double, warm) / 1024,
      g_array_index (s.t, double, warm),
      g_array_index (s.rss, double, n - 1) / 1024,
      status_kb ("VmHWM:") / 1024.0);
  printf ("VmRSS slope after the warm-up: %+.1f kB/min, %+.1f kB per million "
          "frames (%u samples)\n",
      per_s * 60, per_frame * 1e6, n - warm);

  gst_element_set_state (s.pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  if (s.swapper)
    gst_object_unref (s.swapper);
  gst_object_unref (s.pipeline);
  g_main_loop_unref (s.loop);
  g_array_free (s.t, TRUE);
  g_array_free (s.rss, TRUE);
  g_array_free (s.frames, TRUE);
  g_free (branches);
  g_unlink (copy);
  g_rmdir (dir);
  g_free (copy);
  g_free (dir);
  g_free (model);
  return s.rc;
}
