/* Backend selection, on any machine: backend=cuda without a usable device
 * (or in a CPU-only build) is a clean FER_ERROR_NO_DEVICE error that says
 * "no CUDA device" / "no CUDA backend", for every device id; and
 * backend=auto without a device is the CPU backend, bit for bit: the same
 * probabilities from the model and the same losses, logits and parameters
 * from the trainer. On a machine with a GPU the no-device cases skip (the
 * GPU tests in tests/gpu cover that side). */
#include <string.h>
#include <glib/gstdio.h>

#include <fer/model.h>
#include <fer/train.h>
#include "backend.h"
#include <fer/rng.h>
#include "test-util.h"

static char *model_path;

/* TRUE when this machine has a device that backend=auto would take. */
static gboolean
have_device (void)
{
  GError *error = NULL;
  fer_backend_type resolved;
  fer_backend *be = fer_backend_new (FER_BACKEND_AUTO, 0, 1, &resolved, &error);
  g_assert_no_error (error);
  fer_backend_free (be);
  return resolved == FER_BACKEND_CUDA;
}

static void
test_cuda_without_device (void)
{
  const int ids[] = { 0, 1, -1, 7 };
  if (have_device ()) {
    g_test_skip ("a CUDA device is present");
    return;
  }
  for (guint i = 0; i < G_N_ELEMENTS (ids); i++) {
    GError *error = NULL;
    fer_backend_type resolved = FER_BACKEND_AUTO;
    fer_backend *be =
        fer_backend_new (FER_BACKEND_CUDA, ids[i], 1, &resolved, &error);
    g_assert_null (be);
    g_assert_error (error, FER_ERROR, FER_ERROR_NO_DEVICE);
    g_test_message ("device %d: %s", ids[i], error->message);
    g_assert_nonnull (strstr (error->message,
        fer_have_cuda_build () ? "no CUDA device" : "no CUDA backend"));
    g_assert_null (strchr (error->message, '\n'));
    g_clear_error (&error);
  }

  /* the same through the public entry points */
  GError *error = NULL;
  g_assert_null (test_load_model (model_path, FER_BACKEND_CUDA, 1, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_NO_DEVICE);
  g_assert_nonnull (strstr (error->message, model_path));
  g_clear_error (&error);

  fer_arch a = { FER_STEM_SMALL, FER_HEAD_FC, 1, 7 };
  fer_train_config cfg;
  fer_train_config_init (&cfg, &a);
  cfg.backend = FER_BACKEND_CUDA;
  g_assert_null (fer_trainer_new (&cfg, NULL, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_NO_DEVICE);
  g_clear_error (&error);
}

static void
random_gray (uint8_t *px, int n, fer_rng *rng)
{
  for (int i = 0; i < n; i++)
    px[i] = (uint8_t) (fer_rng_uniform (rng) * 255.0f);
}

static void
test_auto_is_cpu_model (void)
{
  enum
  {
    W = 64,
    H = 56,
    FACES = 3,
    K = 7
  };
  const fer_rect faces[FACES] = { { 0, 0, W, H }, { 4, 6, 30, 30 },
    { 20, 10, 40, 44 } };
  float p_auto[FACES * K], p_cpu[FACES * K];
  uint8_t px[W * H];
  GError *error = NULL;
  fer_rng rng;

  if (have_device ()) {
    g_test_skip ("a CUDA device is present: auto is CUDA here");
    return;
  }
  fer_rng_seed (&rng, 11);
  random_gray (px, W * H, &rng);
  fer_image img = { FER_PIXEL_GRAY8, W, H, { px }, { W }, TRUE };
  fer_model *ma = test_load_model (model_path, FER_BACKEND_AUTO, 1, &error);
  g_assert_no_error (error);
  fer_model *mc = test_load_model (model_path, FER_BACKEND_CPU, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (fer_model_backend (ma), ==, FER_BACKEND_CPU);
  for (int T = 1; T <= 5; T += 4) {
    g_assert_true (
        fer_model_classify (ma, &img, faces, FACES, T, p_auto, &error));
    g_assert_true (
        fer_model_classify (mc, &img, faces, FACES, T, p_cpu, &error));
    g_assert_no_error (error);
    g_assert_cmpmem (p_auto, sizeof p_auto, p_cpu, sizeof p_cpu);
  }
  fer_model_free (ma);
  fer_model_free (mc);
}

static void
test_auto_is_cpu_trainer (void)
{
  enum
  {
    N = 4,
    S = 24,
    K = 7,
    STEPS = 2
  };
  fer_arch a = { FER_STEM_SMALL, FER_HEAD_MLP, 1, K };
  fer_trainer *t[2];
  float x[N * S * S], logits[2][N * K], loss[2];
  int y[N] = { 0, 3, 6, 3 };
  GError *error = NULL;
  fer_rng rng;

  if (have_device ()) {
    g_test_skip ("a CUDA device is present: auto is CUDA here");
    return;
  }
  fer_rng_seed (&rng, 12);
  for (int i = 0; i < N * S * S; i++)
    x[i] = fer_rng_normal (&rng);
  for (int b = 0; b < 2; b++) {
    fer_train_config cfg;
    fer_train_config_init (&cfg, &a);
    cfg.input_size = S;
    cfg.threads = 1;
    cfg.seed = 3;
    cfg.backend = b == 0 ? FER_BACKEND_AUTO : FER_BACKEND_CPU;
    t[b] = fer_trainer_new (&cfg, NULL, &error);
    g_assert_no_error (error);
  }
  for (int s = 0; s < STEPS; s++) {
    for (int b = 0; b < 2; b++) {
      g_assert_true (fer_trainer_step (
          t[b], x, y, NULL, 1.0f, N, &loss[b], logits[b], &error));
      g_assert_no_error (error);
    }
    g_test_message (
        "step %d: loss %.9g (auto) %.9g (cpu)", s + 1, loss[0], loss[1]);
    g_assert_cmpmem (&loss[0], sizeof (float), &loss[1], sizeof (float));
    g_assert_cmpmem (logits[0], sizeof logits[0], logits[1], sizeof logits[1]);
  }
  for (int i = 0; i < fer_trainer_n_params (t[0]); i++) {
    int64_t numel = fer_trainer_param_numel (t[0], i);
    float *p0 = g_new (float, numel), *p1 = g_new (float, numel);
    g_assert_true (fer_trainer_param_get (t[0], i, p0, &error));
    g_assert_true (fer_trainer_param_get (t[1], i, p1, &error));
    g_assert_cmpmem (p0, numel * sizeof (float), p1, numel * sizeof (float));
    g_free (p0);
    g_free (p1);
  }
  fer_trainer_free (t[0]);
  fer_trainer_free (t[1]);
}

int
main (int argc, char **argv)
{
  fer_arch a = { FER_STEM_TORCHVISION, FER_HEAD_MLP, 1, 7 };
  int status;

  g_test_init (&argc, &argv, NULL);
  model_path = test_write_temp_model (&a, 5);
  g_test_add_func ("/backend/cuda-without-device", test_cuda_without_device);
  g_test_add_func ("/backend/auto-is-cpu/model", test_auto_is_cpu_model);
  g_test_add_func ("/backend/auto-is-cpu/trainer", test_auto_is_cpu_trainer);
  status = g_test_run ();
  test_remove_temp_model (model_path);
  return status;
}
