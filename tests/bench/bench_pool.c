/* The max-pool alone (issue 9): microseconds per call of libfernn's CPU
 * forward and backward (NHWC, cpu/pool.c) at the torchvision stem's pool
 * (3 x 3, stride 2, pad 1 over the stem's 64-channel map), best of --reps
 * rounds of --seconds each, one JSON object per case, for
 * tests/bench/compare_pool.py (which times PyTorch on the same shapes).
 *   bench-pool [--batches 1,40,64] [--side 22] [--channels 64]
 *              [--seconds S] [--reps R]
 * Single-threaded: the op has no threads of its own. */
#include <stdio.h>
#include <stdlib.h>

#include "cpu/ops.h"

static double
best_us (void (*call) (void *), void *ctx, double seconds, int reps)
{
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    int iters = 0;
    gint64 t0 = g_get_monotonic_time (), t;
    do {
      call (ctx);
      iters++;
    } while ((t = g_get_monotonic_time () - t0) < seconds * 1e6);
    best = MIN (best, (double) t / iters);
  }
  return best;
}

typedef struct
{
  float *out, *inp, *dout, *dinp;
  int n, h, c, oh;
} pool_case;

static void
forward (void *p)
{
  pool_case *x = p;
  fer_cpu_maxpool2d_forward (x->out, x->inp, x->n, x->h, x->h, x->c, 3, 2, 1);
}

static void
backward (void *p)
{
  pool_case *x = p;
  fer_cpu_maxpool2d_backward (
      x->dinp, x->dout, x->inp, x->n, x->h, x->h, x->c, 3, 2, 1);
}

int
main (int argc, char **argv)
{
  char *batches_s = NULL;
  int side = 22, channels = 64, reps = 3;
  double seconds = 0.5;
  GOptionEntry entries[] = { { "batches", 0, 0, G_OPTION_ARG_STRING, &batches_s,
                                 "Batch sizes", "LIST" },
    { "side", 0, 0, G_OPTION_ARG_INT, &side, "Input side (default 22)", "S" },
    { "channels", 0, 0, G_OPTION_ARG_INT, &channels, "Channels", "C" },
    { "seconds", 0, 0, G_OPTION_ARG_DOUBLE, &seconds, "Time per round", "S" },
    { "reps", 0, 0, G_OPTION_ARG_INT, &reps, "Rounds (best counts)", "R" },
    { NULL } };
  GError *error = NULL;
  GOptionContext *ctx = g_option_context_new ("- libfernn max-pool benchmark");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || side < 2
      || channels < 1 || reps < 1) {
    fprintf (stderr, "bench-pool: %s\n",
        error ? error->message : "bad --side, --channels or --reps");
    return 2;
  }
  g_option_context_free (ctx);
  char **parts = g_strsplit (batches_s ? batches_s : "1,40,64", ",", -1);
  for (int i = 0; parts[i]; i++) {
    pool_case x = { .n = atoi (parts[i]), .h = side, .c = channels };
    if (x.n < 1)
      continue;
    x.oh = (side + 2 - 3) / 2 + 1;
    size_t nin = (size_t) x.n * side * side * channels;
    size_t nout = (size_t) x.n * x.oh * x.oh * channels;
    x.inp = g_new (float, nin);
    x.dinp = g_new (float, nin);
    x.out = g_new (float, nout);
    x.dout = g_new (float, nout);
    for (size_t j = 0; j < nin; j++)
      /* post-ReLU-like: a third zeros, ties included */
      x.inp[j] = (float) ((j * 2654435761u) % 997) / 997.0f - 0.33f;
    for (size_t j = 0; j < nin; j++)
      x.inp[j] = MAX (x.inp[j], 0.0f);
    for (size_t j = 0; j < nout; j++)
      x.dout[j] = (float) ((j * 40503u) % 101) / 101.0f;
    printf ("{\"impl\": \"libfernn\", \"batch\": %d, \"side\": %d, "
            "\"channels\": %d, \"forward_us\": %.1f, \"backward_us\": %.1f}\n",
        x.n, side, channels, best_us (forward, &x, seconds, reps),
        best_us (backward, &x, seconds, reps));
    fflush (stdout);
    g_free (x.inp);
    g_free (x.dinp);
    g_free (x.out);
    g_free (x.dout);
  }
  g_strfreev (parts);
  g_free (batches_s);
  return 0;
}
