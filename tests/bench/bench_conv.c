/* The training convolutions alone, direct vs Winograd: milliseconds of
 * CPU time (best of --reps) for the forward pass, the weight gradient and
 * the input gradient of ResNet-18's 3 x 3 stride-1 convolutions at the map
 * sizes of a stem, one JSON object per shape and algorithm.
 *   bench-conv [--batch N] [--sides 48,24,12,6] [--threads N] [--reps R]
 * --sides: the maps of layer1..4 (the small stem at 48 x 48: 48,24,12,6;
 * nopool: 24,12,6,3; torchvision: 12,6,3,2). Channels 64, 128, 256, 512. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/workers.h"

static double
cpu_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static float *
filled (size_t n)
{
  float *p = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    p[i] = (float) ((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  return p;
}

int
main (int argc, char **argv)
{
  int batch = 64, threads = 1, reps = 3;
  char *sides_s = NULL;
  GOptionEntry entries[] = { { "batch", 0, 0, G_OPTION_ARG_INT, &batch,
                                 "Batch size", "N" },
    { "sides", 0, 0, G_OPTION_ARG_STRING, &sides_s, "Map sides of layer1..4",
        "A,B,C,D" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, "CPU threads", "N" },
    { "reps", 0, 0, G_OPTION_ARG_INT, &reps, "Repetitions (best counts)", "R" },
    { NULL } };
  GError *error = NULL;
  GOptionContext *ctx = g_option_context_new ("- training convolution timing");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "bench-conv: %s\n", error->message);
    return 2;
  }
  g_option_context_free (ctx);
  char **sides = g_strsplit (sides_s ? sides_s : "48,24,12,6", ",", 4);
  fer_cpu_workers *workers =
      threads > 1 ? fer_cpu_workers_new (threads, NULL) : NULL;
  fer_cpu_conv_scratch *sc = fer_cpu_conv_scratch_new ();

  for (int l = 0; sides[l]; l++) {
    const int side = atoi (sides[l]), c = 64 << l;
    fer_conv_shape s;
    fer_conv_shape_init (&s, batch, side, side, c, c, 3, 1, 1);
    const size_t n_act = (size_t) batch * side * side * c;
    float *inp = filled (n_act), *dout = filled (n_act);
    float *w = filled ((size_t) c * 9 * c), *dw = g_new0 (float, c * 9 * c);
    float *out = g_new (float, n_act), *dinp = g_new (float, n_act);
    for (int algo = FER_CPU_CONV_DIRECT; algo <= FER_CPU_CONV_WINOGRAD;
         algo++) {
      double best[3] = { 1e30, 1e30, 1e30 };
      fer_cpu_conv_scratch_set_algo (sc, algo);
      for (int r = 0; r < reps; r++) {
        double t0 = cpu_ms ();
        if (!fer_cpu_conv2d_forward_train (
                out, inp, w, &s, sc, workers, &error))
          break;
        double t1 = cpu_ms ();
        if (!fer_cpu_conv2d_backward (
                NULL, dw, dout, inp, w, &s, NULL, 0, sc, workers, &error))
          break;
        double t2 = cpu_ms ();
        if (!fer_cpu_conv2d_backward (
                dinp, dw, dout, inp, w, &s, NULL, 0, sc, workers, &error))
          break;
        double t3 = cpu_ms ();
        best[0] = MIN (best[0], t1 - t0);
        best[1] = MIN (best[1], t2 - t1);
        best[2] = MIN (best[2], t3 - t2 - (t2 - t1));
      }
      if (error) {
        fprintf (stderr, "bench-conv: %s\n", error->message);
        return 1;
      }
      printf (
          "{\"layer\": %d, \"side\": %d, \"channels\": %d, \"batch\": %d, "
          "\"threads\": %d, \"isa\": \"%s\", \"algo\": \"%s\", "
          "\"forward_ms\": %.1f, \"dweight_ms\": %.1f, \"dinp_ms\": %.1f}\n",
          l + 1, side, c, batch, threads, fer_cpu_isa_name (fer_cpu_isa_get ()),
          algo == FER_CPU_CONV_DIRECT ? "direct" : "winograd", best[0], best[1],
          best[2]);
      fflush (stdout);
    }
    g_free (inp);
    g_free (dout);
    g_free (w);
    g_free (dw);
    g_free (out);
    g_free (dinp);
  }
  g_strfreev (sides);
  g_free (sides_s);
  fer_cpu_conv_scratch_free (sc);
  fer_cpu_workers_free (workers);
  return 0;
}
