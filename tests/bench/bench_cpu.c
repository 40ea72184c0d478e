/* Inference throughput of libfernn: faces/second through fer_model_classify
 * (preprocessing + TTA views + one batched forward + softmax averaging) for
 * TTA 1 and 5 at 1, 8 and 32 faces per frame, and the bare forward pass on
 * the same number of views. One JSON object per line, for
 * tests/bench/compare_torch.py (which runs PyTorch on the same batches) and
 * tests/gpu/check.sh (--backend cuda).
 *   bench-cpu --model M [--backend cpu|cuda|auto] [--threads N] [--seconds S]
 *             [--faces 1,8,32] [--tta 1,5] [--weights auto|f32|f16] */
#include <stdio.h>
#include <stdlib.h>

#include <fer/model.h>

static double
now (void)
{
  return g_get_monotonic_time () / 1e6;
}

static int *
parse_list (const char *s, int *n)
{
  char **parts = g_strsplit (s, ",", -1);
  *n = (int) g_strv_length (parts);
  int *v = g_new (int, *n);
  for (int i = 0; i < *n; i++)
    v[i] = atoi (parts[i]);
  g_strfreev (parts);
  return v;
}

int
main (int argc, char **argv)
{
  char *model = NULL, *faces_s = NULL, *tta_s = NULL, *backend_s = NULL;
  char *weights_s = NULL;
  fer_backend_type backend = FER_BACKEND_CPU;
  int threads = 1;
  double seconds = 2.0;
  GOptionEntry entries[] = { { "model", 0, 0, G_OPTION_ARG_FILENAME, &model,
                                 "Model file", "M" },
    { "backend", 0, 0, G_OPTION_ARG_STRING, &backend_s,
        "cpu (default), cuda or auto", "B" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, "CPU threads", "N" },
    { "seconds", 0, 0, G_OPTION_ARG_DOUBLE, &seconds, "Time per case", "S" },
    { "faces", 0, 0, G_OPTION_ARG_STRING, &faces_s, "Faces per frame", "LIST" },
    { "tta", 0, 0, G_OPTION_ARG_STRING, &tta_s, "TTA views", "LIST" },
    { "weights", 0, 0, G_OPTION_ARG_STRING, &weights_s,
        "Conv weights: auto (default), f32 or f16", "W" },
    { NULL } };
  GError *error = NULL;
  GOptionContext *ctx = g_option_context_new ("- libfernn CPU benchmark");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || !model) {
    fprintf (stderr, "bench-cpu: %s\n",
        error ? error->message : "--model is required");
    return 2;
  }
  g_option_context_free (ctx);
  if (backend_s && !fer_backend_type_from_string (backend_s, &backend)) {
    fprintf (stderr, "bench-cpu: --backend %s: expected cpu, cuda or auto\n",
        backend_s);
    return 2;
  }

  fer_model_options opts;
  fer_model_options_init (&opts);
  opts.backend = backend;
  opts.threads = threads;
  if (weights_s && g_strcmp0 (weights_s, "auto") != 0) {
    if (g_strcmp0 (weights_s, "f32") != 0
        && g_strcmp0 (weights_s, "f16") != 0) {
      fprintf (stderr, "bench-cpu: --weights %s: expected auto, f32 or f16\n",
          weights_s);
      return 2;
    }
    opts.weights = weights_s[1] == '3' ? FER_WEIGHTS_F32 : FER_WEIGHTS_F16;
  }
  fer_model *m = fer_model_load (model, &opts, &error);
  if (!m) {
    fprintf (stderr, "bench-cpu: %s\n", error->message);
    return 1;
  }
  int nf, nt;
  int *faces = parse_list (faces_s ? faces_s : "1,8,32", &nf);
  int *ttas = parse_list (tta_s ? tta_s : "1,5", &nt);
  const fer_input_spec *spec = fer_model_input_spec (m);
  int k = fer_model_n_classes (m);

  /* A 640x480 gray frame of noise with faces of 96x96 pixels. */
  const int W = 640, H = 480;
  guint8 *pixels = g_new (guint8, W * H);
  GRand *r = g_rand_new_with_seed (1);
  for (int i = 0; i < W * H; i++)
    pixels[i] = (guint8) g_rand_int_range (r, 0, 256);
  g_rand_free (r);
  fer_image img = { FER_PIXEL_GRAY8, W, H, { pixels }, { W }, TRUE };

  for (int ti = 0; ti < nt; ti++) {
    for (int fi = 0; fi < nf; fi++) {
      int n = faces[fi], T = ttas[ti];
      fer_rect *rects = g_new (fer_rect, n);
      for (int i = 0; i < n; i++)
        rects[i] = (fer_rect){ (float) (i * 17 % (W - 96)),
          (float) (i * 29 % (H - 96)), 96, 96 };
      float *probs = g_new (float, (size_t) n *k);
      size_t per = (size_t) spec->channels * spec->size * spec->size;
      float *x = g_new0 (float, per *n *T);
      float *logits = g_new (float, (size_t) n *T *k);

      /* warm-up: grows every buffer to its steady-state size */
      if (!fer_model_classify (m, &img, rects, n, T, probs, &error))
        g_error ("%s", error->message);
      int iters = 0;
      double t0 = now (), t;
      do {
        fer_model_classify (m, &img, rects, n, T, probs, NULL);
        iters++;
      } while ((t = now () - t0) < seconds);
      double classify_fps = iters * n / t;

      fer_model_forward (m, x, n * T, logits, NULL);
      iters = 0;
      t0 = now ();
      do {
        fer_model_forward (m, x, n * T, logits, NULL);
        iters++;
      } while ((t = now () - t0) < seconds);
      double forward_vps = iters * n * T / t;

      printf ("{\"impl\": \"libfernn\", \"backend\": \"%s\", "
              "\"weights\": \"%s\", \"threads\": %d, \"tta\": %d, "
              "\"faces\": %d, \"faces_per_s\": %.2f, "
              "\"forward_views_per_s\": %.2f}\n",
          fer_backend_type_to_string (fer_model_backend (m)),
          fer_model_weight_format (m) == FER_WEIGHTS_F16 ? "f16" : "f32",
          threads, T, n, classify_fps, forward_vps);
      fflush (stdout);
      g_free (rects);
      g_free (probs);
      g_free (x);
      g_free (logits);
    }
  }
  g_free (faces);
  g_free (ttas);
  g_free (pixels);
  g_free (model);
  g_free (faces_s);
  g_free (tta_s);
  g_free (backend_s);
  g_free (weights_s);
  fer_model_free (m);
  return 0;
}
