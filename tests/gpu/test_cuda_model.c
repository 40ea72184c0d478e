/* The whole network on the CUDA backend against the CPU backend:
 *   - probabilities of a random model (torchvision stem, mlp head, random
 *     batch-norm statistics) for faces x TTA views, T = 1 and 5, in the
 *     default math (exact FP32 inference), in TF32 and in FP16
 *     (FER_CUDA_MATH=fp16: half-precision convolutions; the load's
 *     self-test runs with its tolerance);
 *   - the loss curve of the first training steps (Adam, dropout, class
 *     weights, label smoothing) in exact FP32 and in the default math
 *     (TF32 training), from the same initial model and batches;
 *   - faces of three frames in one batch (fer_model_classify_frames: the
 *     device preprocesses each frame's run of views into one input) against
 *     each face alone, on the GPU;
 *   - the tools' path (fer_model_classify_images: each image's views built
 *     on the device) on images of odd sizes and formats, gray and colour
 *     models, 1 and 10 views, against the CPU backend;
 *   - a failing CUDA call: a GError that names it.
 * (Each op alone: test_cuda_op_<family>.c.)
 * Prints max |difference| per case. Skips (exit 77) without a device. */
#include <string.h>
#include <glib/gstdio.h>

#include <fer/train.h>
#include "gpu-common.h"
#include "../nn/test-images.h"
#include <fer/rng.h>

static int failures;

static void
verdict (const char *what, double err, double tol)
{
  gboolean ok = err <= tol;
  printf (
      "%-4s %-52s %.3g (tolerance %.0e)\n", ok ? "ok" : "FAIL", what, err, tol);
  failures += !ok;
}

/* The GPU's probabilities pg (n) against the CPU's pc; gpu_ok FALSE: the
 * GPU's call failed with *error. */
static void
compare_probabilities (const char *what, gboolean gpu_ok, GError **error,
    const float *pc, const float *pg, int n, double tol)
{
  double err = 0.0;
  if (!gpu_ok) {
    printf ("FAIL %s on cuda: %s\n", what, (*error)->message);
    failures++;
    g_clear_error (error);
    return;
  }
  for (int i = 0; i < n; i++)
    err = isnan (pg[i]) || isnan (pc[i])
        ? INFINITY
        : fmax (err, fabs ((double) pg[i] - pc[i]));
  verdict (what, err, tol);
}

static void
probabilities (const char *model, const char *math, double tol)
{
  enum
  {
    W = 160,
    H = 120,
    FACES = 8,
    K = 7
  };
  fer_model_options opts;
  static uint8_t px[W * H];
  fer_rect faces[FACES];
  float pc[FACES * K], pg[FACES * K];
  GError *error = NULL;
  fer_rng rng;

  fer_rng_seed (&rng, 7);
  for (int i = 0; i < W * H; i++)
    px[i] = (uint8_t) (fer_rng_uniform (&rng) * 255.0f);
  for (int f = 0; f < FACES; f++)
    faces[f] = (fer_rect){ 5.0f * f, 3.0f * f, 40.0f + 4 * f, 44.0f + 3 * f };
  fer_image img = { FER_PIXEL_GRAY8, W, H, { px }, { W }, TRUE };

  g_setenv ("FER_CUDA_MATH", math, TRUE);
  fer_model_options_init (&opts);
  opts.backend = FER_BACKEND_CPU;
  fer_model *mc = fer_model_load (model, &opts, &error);
  g_assert_no_error (error);
  opts.backend = FER_BACKEND_CUDA;
  fer_model *mg = fer_model_load (model, &opts, &error);
  g_assert_no_error (error);
  g_assert_cmpint (fer_model_backend (mg), ==, FER_BACKEND_CUDA);
  for (int T = 1; T <= 5; T += 4) {
    char what[96];
    g_assert_true (fer_model_classify (mc, &img, faces, FACES, T, pc, &error));
    g_snprintf (what, sizeof what, "probabilities, %d faces x %d views, %s",
        FACES, T, math);
    compare_probabilities (what,
        fer_model_classify (mg, &img, faces, FACES, T, pg, &error), &error, pc,
        pg, FACES * K, tol);
  }
  fer_model_free (mc);
  fer_model_free (mg);
}

static void
loss_curve (const char *model, const char *math, double tol)
{
  enum
  {
    N = 16,
    S = 48,
    K = 7,
    STEPS = 6
  };
  const fer_arch a = { FER_STEM_TORCHVISION, FER_HEAD_MLP, 1, K };
  const float weights[K] = { 1.0f, 9.0f, 1.0f, 0.6f, 0.8f, 0.9f, 1.2f };
  float *x = g_new (float, (size_t) STEPS *N *S *S);
  int y[STEPS * N];
  float loss[2][STEPS];
  GError *error = NULL;
  fer_rng rng;

  fer_rng_seed (&rng, 8);
  for (size_t i = 0; i < (size_t) STEPS * N * S * S; i++)
    x[i] = fer_rng_normal (&rng);
  for (int i = 0; i < STEPS * N; i++)
    y[i] = (int) (fer_rng_uniform (&rng) * K) % K;
  g_setenv ("FER_CUDA_MATH", math, TRUE);
  for (int b = 0; b < 2; b++) {
    fer_train_config cfg;
    fer_train_config_init (&cfg, &a);
    cfg.backend = b == 0 ? FER_BACKEND_CPU : FER_BACKEND_CUDA;
    cfg.seed = 9;
    cfg.dropout = 0.5f;
    cfg.label_smoothing = 0.1f;
    cfg.class_weights = weights;
    fer_trainer *t = fer_trainer_new (&cfg, model, &error);
    g_assert_no_error (error);
    for (int s = 0; s < STEPS; s++) {
      if (!fer_trainer_step (t, x + (size_t) s * N * S * S, y + s * N, NULL,
              1.0f, N, &loss[b][s], NULL, &error)) {
        printf ("FAIL training step %d on %s: %s\n", s + 1, b ? "cuda" : "cpu",
            error->message);
        failures++;
        g_clear_error (&error);
        loss[b][s] = NAN;
      }
    }
    fer_trainer_free (t);
  }
  printf ("loss curve (%s): step, cpu, cuda\n", math);
  double err = 0.0;
  for (int s = 0; s < STEPS; s++) {
    printf ("  %d  %.7f  %.7f\n", s + 1, loss[0][s], loss[1][s]);
    double e = fabs ((double) loss[1][s] - loss[0][s]) / fabs (loss[0][s]);
    err = isnan (e) ? INFINITY : fmax (err, e);
  }
  char what[96];
  g_snprintf (what, sizeof what, "loss curve, %d Adam steps, relative, %s",
      STEPS, math);
  verdict (what, err, tol);
  g_free (x);
}

/* Faces of three GRAY8 frames, interleaved, in one batch on the GPU
 * against each face classified alone on the GPU. */
static void
frames_batch (const char *model)
{
  enum
  {
    N_IMG = 3,
    N_FACES = 6,
    K = 7,
    T = 5,
    SIDE = 80
  };
  static uint8_t px[N_IMG][SIDE * SIDE];
  const fer_rect faces[N_FACES] = { { 0, 0, 80, 80 }, { 4, 4, 40, 40 },
    { 10, 12, 50, 48 }, { 20, 2, 30, 30 }, { 1, 30, 33, 33 },
    { 8, 8, 48, 48 } };
  const int face_image[N_FACES] = { 0, 1, 1, 2, 0, 2 };
  float batch[N_FACES * K], alone[N_FACES * K];
  fer_image imgs[N_IMG];
  fer_model_options opts;
  GError *error = NULL;
  fer_model *m;

  fer_model_options_init (&opts);
  opts.backend = FER_BACKEND_CUDA;
  m = fer_model_load (model, &opts, &error);
  g_assert_no_error (error);
  for (int i = 0; i < N_IMG; i++) {
    for (int p = 0; p < SIDE * SIDE; p++)
      px[i][p] = (uint8_t) ((p * (3 + i) + p / SIDE * 7) & 0xff);
    imgs[i] = (fer_image){ .format = FER_PIXEL_GRAY8,
      .width = SIDE,
      .height = SIDE,
      .planes = { px[i] },
      .strides = { SIDE } };
  }
  g_assert_true (fer_model_classify_frames (
      m, imgs, N_IMG, face_image, faces, N_FACES, T, batch, &error));
  g_assert_no_error (error);
  for (int f = 0; f < N_FACES; f++)
    g_assert_true (fer_model_classify (
        m, &imgs[face_image[f]], &faces[f], 1, T, alone + f * K, &error));
  verdict ("classify_frames, 3 frames in one batch vs alone",
      normalised_error (alone, batch, N_FACES * K), 1e-4);
  fer_model_free (m);
}

/* fer_model_classify_images on the GPU against the CPU backend: six
 * images of odd sizes in gray, packed RGB and YUV formats, all in one
 * call, with a gray and a colour model. */
static void
images_batch (const char *model, const char *colour_model)
{
  enum
  {
    K = 7
  };
  const char *const models[] = { model, colour_model };
  float pc[TEST_N_ODD_IMAGES * K], pg[TEST_N_ODD_IMAGES * K];
  fer_model_options opts;
  test_odd_images t;
  GError *error = NULL;

  g_setenv ("FER_CUDA_MATH", "default", TRUE);
  test_odd_images_make (&t, 12);
  for (guint i = 0; i < G_N_ELEMENTS (models); i++) {
    fer_model_options_init (&opts);
    opts.backend = FER_BACKEND_CPU;
    fer_model *mc = fer_model_load (models[i], &opts, &error);
    g_assert_no_error (error);
    opts.backend = FER_BACKEND_CUDA;
    fer_model *mg = fer_model_load (models[i], &opts, &error);
    g_assert_no_error (error);
    for (int T = 1; T <= FER_TTA_MAX; T += FER_TTA_MAX - 1) {
      char what[96];
      g_assert_true (fer_model_classify_images (
          mc, t.img, TEST_N_ODD_IMAGES, T, pc, &error));
      g_snprintf (what, sizeof what, "classify_images, %d odd images x %d, %s",
          TEST_N_ODD_IMAGES, T, i ? "colour" : "gray");
      compare_probabilities (what,
          fer_model_classify_images (
              mg, t.img, TEST_N_ODD_IMAGES, T, pg, &error),
          &error, pc, pg, TEST_N_ODD_IMAGES * K, 1e-4);
    }
    fer_model_free (mc);
    fer_model_free (mg);
  }
  test_odd_images_free (&t);
}

/* A failure of a CUDA call comes back as a GError naming the call. */
static void
error_path (fer_backend *gpu)
{
  GError *error = NULL;
  float *p = gpu->ops->alloc (gpu, (size_t) 1 << 62, &error);
  gboolean ok = !p && error && strstr (error->message, "cudaMalloc");
  printf ("%-4s %-52s %s\n", ok ? "ok" : "FAIL", "alloc of 2^62 floats",
      error ? error->message : "(no error)");
  failures += !ok;
  g_clear_error (&error);
}

int
main (void)
{
  GError *error = NULL;
  const fer_arch a = { FER_STEM_TORCHVISION, FER_HEAD_MLP, 1, 7 };
  const fer_arch colour = { FER_STEM_TORCHVISION, FER_HEAD_FC, 3, 7 };
  fer_backend *gpu = gpu_backend_or_skip ();
  char *dir, *model, *colour_model;

  error_path (gpu);
  fer_backend_free (gpu);
  dir = g_dir_make_tmp ("fer-cuda-model-XXXXXX", &error);
  g_assert_no_error (error);
  model = g_build_filename (dir, "m.safetensors", NULL);
  g_assert_true (fer_model_write_random (
      &a, 21, TRUE, FER_DTYPE_F32, NULL, model, &error));
  colour_model = g_build_filename (dir, "colour.safetensors", NULL);
  g_assert_true (fer_model_write_random (
      &colour, 22, TRUE, FER_DTYPE_F32, NULL, colour_model, &error));

  probabilities (model, "default", 1e-4);
  probabilities (model, "tf32", 1e-2);
  probabilities (model, "fp16", 1e-2);
  frames_batch (model);
  images_batch (model, colour_model);
  loss_curve (model, "fp32", 1e-3);
  loss_curve (model, "default", 3e-2);

  g_unlink (model);
  g_unlink (colour_model);
  g_rmdir (dir);
  g_free (model);
  g_free (colour_model);
  g_free (dir);
  printf ("%d failure%s\n", failures, failures == 1 ? "" : "s");
  return failures ? 1 : 0;
}
