/* Throughput of the feremotion element next to bare libfernn doing the same
 * work, so that what the element adds (GStreamer buffers and caps, frame
 * mapping, metas, bus messages) shows as the difference. Prints a Markdown
 * table.
 *
 *   bench-element --model M [--frames N] [--tta 1,5] [--faces 1]
 *                 [--repeat R] [--threads T] [--backend cpu|cuda|auto]
 *
 * Element: videotestsrc num-buffers=N ! video/x-raw,format=GRAY8,
 * width=48*F,height=48 ! feremotion tta=T post-messages=true|false !
 * fakesink sync=false. With F = 1 the element runs in mode=frame (the
 * whole 48x48 frame is the face); with F > 1 in mode=roi, with F 48x48
 * region-of-interest metas side by side added by a probe on its sink pad,
 * and N/F frames so that every case classifies about N faces. Timed from
 * the first buffer entering the element to EOS on the bus (which the main
 * thread pops, unreffing the element messages as an application would).
 *
 * libfernn: fer_model_classify on the same frame and rectangles, T views,
 * as many times as the element saw frames, with the same backend and
 * threads. Each case runs R times and the fastest run counts, on both
 * sides. Both use the same model file. Needs GST_PLUGIN_PATH to reach
 * the plugin (tests/bench/meson.build sets it to the build tree). */
#include <stdio.h>
#include <stdlib.h>

#include <fer/fer.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#define FACE_SIZE 48

typedef struct
{
  gint faces;
  gint64 first_in; /* monotonic us, 0 until the first buffer */
} BenchProbe;

static double
now (void)
{
  return g_get_monotonic_time () / 1e6;
}

static gint *
parse_list (const gchar *s, gint *n)
{
  gchar **parts = g_strsplit (s, ",", -1);
  gint *v;

  *n = (gint) g_strv_length (parts);
  v = g_new (gint, *n);
  for (gint i = 0; i < *n; i++)
    v[i] = atoi (parts[i]);
  g_strfreev (parts);
  return v;
}

/* Sink pad of feremotion: stamps the first buffer and, for F > 1, gives
 * each buffer its F face ROIs (what facedetect would attach). */
static GstPadProbeReturn
on_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  BenchProbe *p = user_data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);

  if (!p->first_in)
    p->first_in = g_get_monotonic_time ();
  if (p->faces > 1) {
    buf = gst_buffer_make_writable (buf);
    for (gint f = 0; f < p->faces; f++)
      gst_buffer_add_video_region_of_interest_meta (
          buf, "face", (guint) (f * FACE_SIZE), 0, FACE_SIZE, FACE_SIZE);
    GST_PAD_PROBE_INFO_DATA (info) = buf;
  }
  return GST_PAD_PROBE_OK;
}

/* Frames per second through the element, or a negative value after
 * printing why the pipeline failed. */
static double
run_element (const gchar *model, const gchar *backend, gint threads,
    gint frames, gint faces, gint tta, gboolean post)
{
  gchar *desc = g_strdup_printf (
      "videotestsrc num-buffers=%d pattern=snow "
      "! video/x-raw,format=GRAY8,width=%d,height=%d,framerate=30/1 "
      "! feremotion name=fer backend=%s threads=%d tta=%d mode=%s "
      "post-messages=%s ! fakesink sync=false",
      frames, FACE_SIZE * faces, FACE_SIZE, backend, threads, tta,
      faces > 1 ? "roi" : "frame", post ? "true" : "false");
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &error);
  GstElement *fer;
  GstPad *sink;
  GstBus *bus;
  GstMessage *msg;
  BenchProbe probe = { faces, 0 };
  double fps = -1.0;

  g_free (desc);
  if (!pipeline || error) {
    fprintf (
        stderr, "bench-element: %s\n", error ? error->message : "no pipeline");
    g_clear_error (&error);
    if (pipeline)
      gst_object_unref (pipeline);
    return -1.0;
  }
  fer = gst_bin_get_by_name (GST_BIN (pipeline), "fer");
  g_object_set (fer, "model", model, NULL);
  sink = gst_element_get_static_pad (fer, "sink");
  gst_pad_add_probe (sink, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, &probe, NULL);
  gst_object_unref (sink);
  gst_object_unref (fer);

  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  /* pops and drops every other message, the element's included */
  msg = gst_bus_timed_pop_filtered (
      bus, GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *dbg = NULL;
    gst_message_parse_error (msg, &error, &dbg);
    fprintf (stderr, "bench-element: %s\n%s\n", error->message, dbg ? dbg : "");
    g_clear_error (&error);
    g_free (dbg);
  } else if (probe.first_in) {
    fps = frames / ((g_get_monotonic_time () - probe.first_in) / 1e6);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  return fps;
}

/* Frames per second of fer_model_classify on one such frame. */
static double
run_libfernn (fer_model *m, gint frames, gint faces, gint tta)
{
  gint w = FACE_SIZE * faces, k = fer_model_n_classes (m);
  guint8 *pixels = g_new (guint8, (gsize) w * FACE_SIZE);
  fer_rect *rects = g_new (fer_rect, faces);
  gfloat *probs = g_new (gfloat, (gsize) faces * k);
  GRand *r = g_rand_new_with_seed (1);
  GError *error = NULL;
  double t0, fps = -1.0;

  for (gint i = 0; i < w * FACE_SIZE; i++)
    pixels[i] = (guint8) g_rand_int_range (r, 0, 256);
  g_rand_free (r);
  for (gint f = 0; f < faces; f++)
    rects[f] =
        (fer_rect){ (gfloat) (f * FACE_SIZE), 0.0f, FACE_SIZE, FACE_SIZE };
  fer_image img = { FER_PIXEL_GRAY8, w, FACE_SIZE, { pixels }, { w }, TRUE };

  /* the element's first buffer grows its buffers too, and is timed: so is
   * this one */
  t0 = now ();
  for (gint i = 0; i < frames; i++) {
    if (!fer_model_classify (m, &img, rects, faces, tta, probs, &error)) {
      fprintf (stderr, "bench-element: %s\n", error->message);
      g_clear_error (&error);
      goto out;
    }
  }
  fps = frames / (now () - t0);
out:
  g_free (pixels);
  g_free (rects);
  g_free (probs);
  return fps;
}

/* The best of `repeat` runs, in frames/s, of libfernn (*bare) and of the
 * element with post-messages false (element[0]) and true (element[1]);
 * FALSE when a run failed. */
static gboolean
measure (fer_model *m, const gchar *model, const gchar *backend, gint threads,
    gint frames, gint faces, gint tta, gint repeat, double *bare,
    double element[2])
{
  double v;

  *bare = element[0] = element[1] = 0.0;
  /* interleaved, so that a load that comes and goes on the machine hits
   * both sides alike */
  for (gint r = 0; r < repeat; r++) {
    if ((v = run_libfernn (m, frames, faces, tta)) < 0)
      return FALSE;
    *bare = MAX (*bare, v);
    for (gint post = 0; post < 2; post++) {
      if ((v = run_element (model, backend, threads, frames, faces, tta, post))
          < 0)
        return FALSE;
      element[post] = MAX (element[post], v);
    }
  }
  return TRUE;
}

int
main (int argc, char **argv)
{
  gchar *model = NULL, *tta_s = NULL, *faces_s = NULL, *backend_s = NULL;
  gint frames = 200, threads = 1, repeat = 3, n_tta, n_faces;
  GOptionEntry entries[] = { { "model", 0, 0, G_OPTION_ARG_FILENAME, &model,
                                 "Model file", "M" },
    { "frames", 0, 0, G_OPTION_ARG_INT, &frames, "Faces per case (default 200)",
        "N" },
    { "tta", 0, 0, G_OPTION_ARG_STRING, &tta_s, "TTA views (default 1,5)",
        "LIST" },
    { "faces", 0, 0, G_OPTION_ARG_STRING, &faces_s,
        "Faces per frame (default 1)", "LIST" },
    { "repeat", 0, 0, G_OPTION_ARG_INT, &repeat,
        "Runs per case, the fastest reported (default 3)", "R" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads,
        "CPU threads, 0 for the library default (default 1)", "T" },
    { "backend", 0, 0, G_OPTION_ARG_STRING, &backend_s,
        "cpu, cuda or auto (default cpu)", "B" },
    { NULL } };
  GOptionContext *ctx =
      g_option_context_new ("- feremotion element "
                            "throughput against bare libfernn");
  GError *error = NULL;
  fer_model_options opts;
  GstElementFactory *feremotion;
  fer_model *m;
  gint *ttas, *faces;
  int status = 0;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || !model) {
    fprintf (stderr, "bench-element: %s\n",
        error ? error->message : "--model is required");
    return 2;
  }
  g_option_context_free (ctx);
  if (!backend_s)
    backend_s = g_strdup ("cpu");
  fer_model_options_init (&opts);
  if (!fer_backend_type_from_string (backend_s, &opts.backend)) {
    fprintf (stderr,
        "bench-element: --backend %s: expected cpu, cuda or "
        "auto\n",
        backend_s);
    return 2;
  }
  if (frames < 1 || repeat < 1) {
    fprintf (stderr,
        "bench-element: --frames %d --repeat %d: expected at "
        "least 1 each\n",
        frames, repeat);
    return 2;
  }
  feremotion = gst_element_factory_find ("feremotion");
  if (!feremotion) {
    fprintf (stderr,
        "bench-element: no feremotion element: set "
        "GST_PLUGIN_PATH to the build's gst/ directory\n");
    return 1;
  }
  gst_object_unref (feremotion);
  opts.threads = threads;
  m = fer_model_load (model, &opts, &error);
  if (!m) {
    fprintf (stderr, "bench-element: %s\n", error->message);
    return 1;
  }
  ttas = parse_list (tta_s ? tta_s : "1,5", &n_tta);
  faces = parse_list (faces_s ? faces_s : "1", &n_faces);

  printf ("feremotion element vs libfernn, backend %s (%s), threads=%d, "
          "%dx%d GRAY8 faces, ~%d faces per case, best of %d runs\n\n",
      backend_s, fer_backend_type_to_string (fer_model_backend (m)), threads,
      FACE_SIZE, FACE_SIZE, frames, repeat);
  printf ("| faces/frame | TTA | post-messages | element frames/s | "
          "element faces/s | libfernn faces/s | element overhead/frame |\n");
  printf ("|---:|---:|:---|---:|---:|---:|---:|\n");
  fflush (stdout);
  for (gint fi = 0; fi < n_faces; fi++) {
    for (gint ti = 0; ti < n_tta; ti++) {
      gint F = MAX (faces[fi], 1), T = ttas[ti];
      gint n = MAX (frames / F, 10);
      double bare, element[2];

      if (!measure (
              m, model, backend_s, threads, n, F, T, repeat, &bare, element)) {
        status = 1;
        goto done;
      }
      for (gint post = 1; post >= 0; post--) {
        double fps = element[post];
        printf ("| %d | %d | %s | %.1f | %.1f | %.1f | %+.2f ms (%+.1f%%) |\n",
            F, T, post ? "true" : "false", fps, fps * F, bare * F,
            1e3 / fps - 1e3 / bare, (bare / fps - 1.0) * 100.0);
        fflush (stdout);
      }
    }
  }
done:
  g_free (ttas);
  g_free (faces);
  g_free (model);
  g_free (tta_s);
  g_free (faces_s);
  g_free (backend_s);
  fer_model_free (m);
  return status;
}
