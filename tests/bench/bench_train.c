/* Training throughput of libfernn: images/second through fer_trainer_step
 * (forward with batch statistics, loss, backward, Adam) on random batches,
 * after two warm-up steps. One JSON object per line.
 *   bench-train [--model M] [--stem torchvision|small|nopool] [--head fc|mlp] [--channels N]
 *               [--batch N] [--size S] [--threads N] [--seconds S]
 *               [--backend cpu|cuda|auto]
 * cpu_images_per_s divides by the process's CPU time instead of the wall
 * clock: on a shared machine, where other processes take the cores for a
 * while, it is the steadier number at one thread (with more, it counts
 * the workers' waiting too).
 * forward_gflop is a forward pass at --size as direct convolutions plus
 * the head (2 FLOPs per multiply-add: fer_arch_forward_macs), and
 * train_gflop_per_s counts 3 of those per image (forward, input gradient,
 * weight gradient) at the wall-clock rate: how fast the convolutions would
 * have to run done directly. Winograd does fewer multiplies, so this can
 * pass the cores' FMA peak.
 * The PyTorch number to compare with comes from the same loop in PyTorch:
 * torchvision resnet18 with the same stem/head, Adam, cross_entropy with
 * class weights and label smoothing, torch.set_num_threads(threads).
 * Most of a step is the convolutions, on libfernn's own micro-kernels
 * (cpu/gemm.c); only the head's linear layers go through CBLAS. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <fer/train.h>
#include "arch.h"

int
main (int argc, char **argv)
{
  char *stem = NULL, *head = NULL, *model = NULL, *backend_s = NULL;
  fer_backend_type backend = FER_BACKEND_CPU;
  int channels = 1, batch = 64, size = 48, threads = 1, classes = 7;
  double seconds = 10.0;
  GOptionEntry entries[] = {
    { "model", 0, 0, G_OPTION_ARG_FILENAME, &model,
        "Start from this model (its architecture; default: a fresh one)", "M" },
    { "stem", 0, 0, G_OPTION_ARG_STRING, &stem, "torchvision, small or nopool",
        "S" },
    { "head", 0, 0, G_OPTION_ARG_STRING, &head, "fc or mlp", "H" },
    { "channels", 0, 0, G_OPTION_ARG_INT, &channels, "Input channels", "N" },
    { "batch", 0, 0, G_OPTION_ARG_INT, &batch, "Batch size", "N" },
    { "size", 0, 0, G_OPTION_ARG_INT, &size, "Input side", "S" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, "CPU threads", "N" },
    { "seconds", 0, 0, G_OPTION_ARG_DOUBLE, &seconds, "Time to run", "S" },
    { "backend", 0, 0, G_OPTION_ARG_STRING, &backend_s,
        "cpu (default), cuda or auto", "B" },
    { NULL }
  };
  GError *error = NULL;
  GOptionContext *ctx = g_option_context_new ("- libfernn training benchmark");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "bench-train: %s\n", error->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (backend_s && !fer_backend_type_from_string (backend_s, &backend)) {
    fprintf (stderr, "bench-train: --backend %s: expected cpu, cuda or auto\n",
        backend_s);
    return 2;
  }
  g_free (backend_s);

  fer_arch arch = { FER_STEM_TORCHVISION,
    g_strcmp0 (head, "mlp") == 0 ? FER_HEAD_MLP : FER_HEAD_FC, channels,
    classes };
  if (stem && !fer_stem_from_name (stem, &arch.stem)) {
    fprintf (stderr,
        "bench-train: --stem %s: expected torchvision, small "
        "or nopool\n",
        stem);
    return 2;
  }
  float weights[7] = { 1.0f, 9.4f, 1.0f, 0.6f, 0.8f, 0.9f, 1.3f };
  fer_train_config cfg;
  fer_train_config_init (&cfg, &arch);
  cfg.input_size = size;
  cfg.backend = backend;
  cfg.threads = threads;
  cfg.label_smoothing = 0.1f;
  cfg.class_weights = weights;
  fer_trainer *t = fer_trainer_new (&cfg, model, &error);
  if (!t) {
    fprintf (stderr, "bench-train: %s\n", error->message);
    return 1;
  }

  size_t per_image = (size_t) channels * size * size;
  float *x = g_new (float, per_image *batch);
  int *y = g_new (int, batch);
  GRand *r = g_rand_new_with_seed (1);
  for (size_t i = 0; i < per_image * batch; i++)
    x[i] = (float) g_rand_double_range (r, -2.0, 2.0);
  for (int i = 0; i < batch; i++)
    y[i] = g_rand_int_range (r, 0, classes);
  g_rand_free (r);

  float loss = 0.0f;
  int steps = 0;
  double elapsed = 0.0;
  for (int i = 0; i < 2; i++)
    if (!fer_trainer_step (t, x, y, NULL, 0.0f, batch, &loss, NULL, &error))
      goto fail;
  gint64 t0 = g_get_monotonic_time ();
  clock_t c0 = clock ();
  while (elapsed < seconds || steps < 3) {
    if (!fer_trainer_step (t, x, y, NULL, 0.0f, batch, &loss, NULL, &error))
      goto fail;
    steps++;
    elapsed = (g_get_monotonic_time () - t0) / 1e6;
  }
  double cpu = (double) (clock () - c0) / CLOCKS_PER_SEC;
  /* FLOPs (2 per multiply-add) of a forward pass as direct convolutions; a
   * training step counts 3 of them (forward, input and weight gradients) */
  const double gflop = 2e-9 * (double) fer_arch_forward_macs (&arch, size);
  printf ("{\"impl\": \"libfernn\", \"backend\": \"%s\", "
          "\"stem\": \"%s\", \"head\": \"%s\", "
          "\"channels\": %d, \"size\": %d, \"batch\": %d, \"threads\": %d, "
          "\"steps\": %d, \"images_per_s\": %.1f, \"cpu_images_per_s\": %.1f, "
          "\"forward_gflop\": %.4f, \"train_gflop_per_s\": %.1f, "
          "\"loss\": %.4f}\n",
      fer_backend_type_to_string (backend), fer_stem_name (arch.stem),
      arch.head == FER_HEAD_MLP ? "mlp" : "fc", channels, size, batch, threads,
      steps, steps * batch / elapsed, steps * batch / cpu, gflop,
      3.0 * gflop * steps * batch / elapsed, loss);
  fer_trainer_free (t);
  g_free (x);
  g_free (y);
  return 0;

fail:
  fprintf (stderr, "bench-train: %s\n", error->message);
  fer_trainer_free (t);
  g_free (x);
  g_free (y);
  return 1;
}
