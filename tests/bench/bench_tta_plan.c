/* The host's share of the CUDA backend's preprocessing, per call: the TTA
 * rectangles of each face (fer_tta_views, model.c) and the batch plan
 * (cuda/preprocess.c: validation and each view's filter taps), for faces
 * of a 1920 x 1080 I420 frame. Runs without a GPU: no CUDA call is made.
 * One JSON object per case: microseconds per call (best of --reps
 * rounds of --calls calls), the taps' bytes that go up in one copy, and
 * the frame's bytes that go up beside them.
 *   bench-tta-plan [--size 48] [--reps 5] [--calls 200]
 * Cases: 1 and 4 faces of 100, 300 and 700 pixels, with 1 and 10 views. */
#include <stdio.h>
#include <time.h>

#include "cuda/backend_cuda.h"

enum
{
  W = 1920,
  H = 1080
};

static double
now_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int
main (int argc, char **argv)
{
  int size = 48, reps = 5, calls = 200;
  GOptionEntry entries[] = { { "size", 0, 0, G_OPTION_ARG_INT, &size,
                                 "Model input side", "S" },
    { "reps", 0, 0, G_OPTION_ARG_INT, &reps, "Rounds (best counts)", "R" },
    { "calls", 0, 0, G_OPTION_ARG_INT, &calls, "Calls per round", "N" },
    { NULL } };
  GError *error = NULL;
  GOptionContext *ctx = g_option_context_new ("- host part of TTA views");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || size < 1
      || reps < 1 || calls < 1) {
    fprintf (stderr, "bench-tta-plan: %s\n",
        error ? error->message : "--size, --reps and --calls must be >= 1");
    return 2;
  }
  g_option_context_free (ctx);

  static uint8_t y[W * H], u[W / 2 * H / 2], v[W / 2 * H / 2];
  const fer_image img = { FER_PIXEL_I420, W, H, { y, u, v },
    { W, W / 2, W / 2 }, FALSE };
  const fer_input_spec spec = { size, 1, { 0.5f }, { 0.25f } };
  const int sides[] = { 100, 300, 700 }, n_faces[] = { 1, 4 };
  fer_view views[4 * FER_TTA_MAX];
  void *buf = NULL;
  size_t cap = 0;

  for (guint si = 0; si < G_N_ELEMENTS (sides); si++)
    for (guint fi = 0; fi < G_N_ELEMENTS (n_faces); fi++)
      for (int T = 1; T <= FER_TTA_MAX; T += FER_TTA_MAX - 1) {
        const int F = n_faces[fi];
        fer_rect faces[4];
        fer_cuda_batch_plan p = { 0 };
        double best = G_MAXDOUBLE;
        for (int f = 0; f < F; f++)
          faces[f] = (fer_rect){ 100.5f + 400.0f * f, 150.25f + 50.0f * f,
            (float) sides[si], sides[si] * 1.1f };
        for (int r = 0; r < reps; r++) {
          const double t0 = now_us ();
          for (int c = 0; c < calls; c++) {
            for (int f = 0; f < F; f++)
              if (!fer_tta_views (&faces[f], size, 0, T, views + f * T, &error))
                goto fail;
            if (!fer_cuda_batch_plan_make (
                    &p, &buf, &cap, &img, views, F * T, &spec, &error))
              goto fail;
          }
          best = MIN (best, (now_us () - t0) / calls);
        }
        printf ("{\"faces\": %d, \"face_px\": %d, \"views\": %d, "
                "\"input\": %d, \"host_us_per_call\": %.2f, "
                "\"taps_bytes\": %zu, \"frame_bytes\": %zu}\n",
            F, sides[si], T, size, best, p.taps_bytes, p.frame_bytes);
      }
  g_free (buf);
  return 0;

fail:
  fprintf (stderr, "bench-tta-plan: %s\n", error->message);
  g_free (buf);
  return 1;
}
