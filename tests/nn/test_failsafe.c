/* The fail-safe, on any machine, through FER_CUDA_FAULT (an imitation of a
 * CUDA device that fails to start, fails the self-test, or fails every
 * forward after the self-test): under backend=auto each fault gives a model
 * that answers exactly as a plain CPU model (probabilities, logits, for the
 * element's path, the tools' path and the raw forward) with one reason
 * that names the stage and the fault (a run-time fault names the device's
 * first failing op: preprocess, through which every classification, the
 * tools' whole images too, builds its input); under backend=cuda each is
 * an error that names it. The trainer likewise (its self-test is one training
 * step). Also: a bad FER_CUDA_FAULT value is an error, and a bad argument
 * on a device model is not taken for a device failure. */
#include <string.h>
#include <glib/gstdio.h>

#include <fer/model.h>
#include <fer/train.h>
#include <fer/rng.h>
#include "test-util.h"

enum
{
  W = 64,
  H = 56,
  FACES = 3,
  K = 7,
  T = 2
};

static char *model_path;
static uint8_t px[W * H];
static fer_image img = { FER_PIXEL_GRAY8, W, H, { px }, { W }, TRUE };
static const fer_rect faces[FACES] = { { 0, 0, W, H }, { 4, 6, 30, 30 },
  { 20, 10, 40, 44 } };

/* What a plain CPU model answers, for every entry point. */
static float cpu_probs[FACES * K], cpu_images[K], cpu_logits[K];
static float input[48 * 48];

static const char *const fault_names[] = { "init", "selftest", "runtime" };
/* what the reason or error names, per fault */
static const char *const stage_text[] = { "failed to start",
  "failed its self-test", "failed at run time" };

static fer_model *
load (const char *fault, fer_backend_type backend, GError **error)
{
  if (fault)
    g_setenv ("FER_CUDA_FAULT", fault, TRUE);
  else
    g_unsetenv ("FER_CUDA_FAULT");
  fer_model *m = test_load_model (model_path, backend, 1, error);
  g_unsetenv ("FER_CUDA_FAULT");
  return m;
}

typedef enum
{
  VIA_CLASSIFY,
  VIA_IMAGES,
  VIA_FORWARD
} entry;

static gboolean
compute (fer_model *m, entry via, float *out, GError **error)
{
  switch (via) {
    case VIA_CLASSIFY:
      return fer_model_classify (m, &img, faces, FACES, T, out, error);
    case VIA_IMAGES:
      return fer_model_classify_images (m, &img, 1, T, out, error);
    case VIA_FORWARD:
      return fer_model_forward (m, input, 1, out, error);
  }
  return FALSE;
}

static const float *
expected (entry via, size_t *bytes)
{
  switch (via) {
    case VIA_CLASSIFY:
      *bytes = sizeof cpu_probs;
      return cpu_probs;
    case VIA_IMAGES:
      *bytes = sizeof cpu_images;
      return cpu_images;
    case VIA_FORWARD:
      *bytes = sizeof cpu_logits;
      return cpu_logits;
  }
  return NULL;
}

static void
assert_reason (const fer_model *m, int fault)
{
  const char *reason = fer_model_fallback_reason (m);
  g_assert_nonnull (reason);
  g_test_message ("%s: %s", fault_names[fault], reason);
  g_assert_nonnull (strstr (reason, stage_text[fault]));
  g_assert_nonnull (strstr (reason, fault_names[fault]));
  g_assert_nonnull (strstr (reason, "CPU"));
  g_assert_null (strchr (reason, '\n'));
}

/* backend=auto: the CPU's answers, twice, through entry `via`; the reason
 * appears once (at load, or with the first call for a run-time fault) and
 * stays the same. */
static void
auto_is_cpu (int fault, entry via)
{
  GError *error = NULL;
  float out[FACES * K];
  size_t bytes;
  const float *want = expected (via, &bytes);
  fer_model *m = load (fault_names[fault], FER_BACKEND_AUTO, &error);

  g_assert_no_error (error);
  if (fault == 2) {
    /* the imitation passed its self-test: on the "device" until it fails */
    g_assert_cmpint (fer_model_backend (m), ==, FER_BACKEND_CUDA);
    g_assert_null (fer_model_fallback_reason (m));
  } else {
    g_assert_cmpint (fer_model_backend (m), ==, FER_BACKEND_CPU);
    assert_reason (m, fault);
  }
  const char *first = NULL;
  for (int i = 0; i < 2; i++) {
    memset (out, 0xff, sizeof out);
    g_assert_true (compute (m, via, out, &error));
    g_assert_no_error (error);
    g_assert_cmpmem (out, bytes, want, bytes);
    g_assert_cmpint (fer_model_backend (m), ==, FER_BACKEND_CPU);
    assert_reason (m, fault);
    /* the device's first op that failed: every classification, the
     * tools' whole images too, builds its input with the device's
     * preprocess op (fer_model_forward takes the caller's input) */
    if (fault == 2)
      g_assert_nonnull (strstr (fer_model_fallback_reason (m),
          via == VIA_FORWARD ? "`conv2d_forward`" : "`preprocess`"));
    if (i == 0)
      first = fer_model_fallback_reason (m);
    g_assert_true (fer_model_fallback_reason (m) == first);
  }
  /* the thread setting reaches the model that computes now */
  g_assert_true (fer_model_set_threads (m, 2, &error));
  g_assert_true (compute (m, via, out, &error));
  g_assert_cmpmem (out, bytes, want, bytes);
  fer_model_free (m);
}

static void
test_auto (gconstpointer data)
{
  int fault = GPOINTER_TO_INT (data);
  for (entry via = VIA_CLASSIFY; via <= VIA_FORWARD; via++)
    auto_is_cpu (fault, via);
}

/* m computes on the (imitated) device: classifying with `tta` views fails
 * with `code` and a message holding `needle`, and m stays on the device. */
static void
refused_on_device (fer_model *m, int tta, int code, const char *needle)
{
  GError *error = NULL;
  float out[FACES * K];
  g_assert_cmpint (fer_model_backend (m), ==, FER_BACKEND_CUDA);
  g_assert_false (fer_model_classify (m, &img, faces, FACES, tta, out, &error));
  g_assert_error (error, FER_ERROR, code);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, needle));
  g_clear_error (&error);
  g_assert_cmpint (fer_model_backend (m), ==, FER_BACKEND_CUDA);
  g_assert_null (fer_model_fallback_reason (m));
}

/* backend=cuda: init and selftest fail the load, runtime the first call
 * (and every later one: no silent switch), each naming the fault. */
static void
test_cuda (gconstpointer data)
{
  int fault = GPOINTER_TO_INT (data);
  GError *error = NULL;
  fer_model *m = load (fault_names[fault], FER_BACKEND_CUDA, &error);

  if (fault < 2) {
    g_assert_null (m);
    g_assert_nonnull (error);
    g_test_message ("%s: %s", fault_names[fault], error->message);
    g_assert_nonnull (strstr (error->message, "backend=cuda"));
    g_assert_nonnull (strstr (error->message, fault_names[fault]));
    g_assert_nonnull (strstr (error->message, model_path));
    if (fault == 1)
      g_assert_nonnull (strstr (error->message, "self-test"));
    g_clear_error (&error);
    return;
  }
  g_assert_no_error (error);
  for (int i = 0; i < 2; i++)
    refused_on_device (m, T, FER_ERROR_BACKEND, "FER_CUDA_FAULT=runtime");
  fer_model_free (m);
}

/* A bad argument is the caller's: refused as on the CPU, no fallback. */
static void
test_bad_argument_is_not_a_device_failure (void)
{
  GError *error = NULL;
  fer_model *m = load ("runtime", FER_BACKEND_AUTO, &error);
  g_assert_no_error (error);
  refused_on_device (m, 0, FER_ERROR_INVALID_ARGUMENT, "tta=0");
  fer_model_free (m);
}

static void
test_bad_value (void)
{
  const fer_backend_type backends[] = { FER_BACKEND_AUTO, FER_BACKEND_CUDA };
  GError *error = NULL;
  for (guint i = 0; i < G_N_ELEMENTS (backends); i++) {
    g_assert_null (load ("sometimes", backends[i], &error));
    g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
    g_test_message ("%s", error->message);
    g_assert_nonnull (strstr (error->message, "FER_CUDA_FAULT='sometimes'"));
    g_clear_error (&error);
  }
  /* the CPU backend never looks at it; empty is unset */
  fer_model *m = load ("sometimes", FER_BACKEND_CPU, &error);
  g_assert_no_error (error);
  g_assert_null (fer_model_fallback_reason (m));
  fer_model_free (m);
  m = load ("", FER_BACKEND_AUTO, &error);
  g_assert_no_error (error);
  g_assert_null (fer_model_fallback_reason (m));
  fer_model_free (m);
}

/* The trainer under every fault: auto gives a CPU trainer (reason named)
 * whose steps equal a plain CPU trainer's bit for bit, or for a run-time
 * fault a device trainer that passed the self-test unchanged and then
 * fails its first step with the fault's error; cuda refuses init and
 * selftest at creation. */
static fer_trainer *
new_trainer (const char *fault, fer_backend_type backend, GError **error)
{
  fer_arch a = { FER_STEM_SMALL, FER_HEAD_MLP, 1, K };
  fer_train_config cfg;
  fer_train_config_init (&cfg, &a);
  cfg.input_size = 24;
  cfg.threads = 1;
  cfg.seed = 9;
  cfg.dropout = 0.5f;
  cfg.backend = backend;
  if (fault)
    g_setenv ("FER_CUDA_FAULT", fault, TRUE);
  fer_trainer *t = fer_trainer_new (&cfg, NULL, error);
  g_unsetenv ("FER_CUDA_FAULT");
  return t;
}

static void
assert_same_params (fer_trainer *a, fer_trainer *b)
{
  GError *error = NULL;
  for (int i = 0; i < fer_trainer_n_params (a); i++) {
    int64_t numel = fer_trainer_param_numel (a, i);
    float *pa = g_new (float, numel), *pb = g_new (float, numel);
    g_assert_true (fer_trainer_param_get (a, i, pa, &error));
    g_assert_true (fer_trainer_param_get (b, i, pb, &error));
    g_assert_no_error (error);
    g_assert_cmpmem (pa, numel * sizeof (float), pb, numel * sizeof (float));
    g_free (pa);
    g_free (pb);
  }
}

static void
test_trainer (gconstpointer data)
{
  enum
  {
    N = 4,
    S = 24
  };
  int fault = GPOINTER_TO_INT (data);
  float x[N * S * S], loss[2], logits[2][N * K];
  int y[N] = { 0, 3, 6, 3 };
  GError *error = NULL;
  fer_rng rng;

  fer_rng_seed (&rng, 12);
  for (int i = 0; i < N * S * S; i++)
    x[i] = fer_rng_normal (&rng);
  fer_trainer *cpu = new_trainer (NULL, FER_BACKEND_CPU, &error);
  g_assert_no_error (error);

  fer_trainer *t = new_trainer (fault_names[fault], FER_BACKEND_CUDA, &error);
  if (fault < 2) {
    g_assert_null (t);
    g_assert_error (error, FER_ERROR, FER_ERROR_BACKEND);
    g_test_message ("cuda: %s", error->message);
    g_assert_nonnull (strstr (error->message, fault_names[fault]));
    g_assert_nonnull (strstr (error->message, "backend=cuda"));
    g_clear_error (&error);
  } else {
    g_assert_no_error (error);
    g_assert_cmpint (fer_trainer_backend (t), ==, FER_BACKEND_CUDA);
    g_assert_false (
        fer_trainer_step (t, x, y, NULL, 1.0f, N, &loss[0], NULL, &error));
    g_assert_error (error, FER_ERROR, FER_ERROR_BACKEND);
    g_assert_nonnull (strstr (error->message, "FER_CUDA_FAULT=runtime"));
    g_clear_error (&error);
    fer_trainer_free (t);
  }

  t = new_trainer (fault_names[fault], FER_BACKEND_AUTO, &error);
  g_assert_no_error (error);
  if (fault == 2) {
    /* the self-test passed and left the trainer as new; then the device
     * fails, which a trainer does not survive */
    g_assert_cmpint (fer_trainer_backend (t), ==, FER_BACKEND_CUDA);
    g_assert_null (fer_trainer_fallback_reason (t));
    assert_same_params (t, cpu);
    g_assert_false (
        fer_trainer_step (t, x, y, NULL, 1.0f, N, &loss[0], NULL, &error));
    g_assert_error (error, FER_ERROR, FER_ERROR_BACKEND);
    g_clear_error (&error);
  } else {
    const char *reason = fer_trainer_fallback_reason (t);
    g_assert_cmpint (fer_trainer_backend (t), ==, FER_BACKEND_CPU);
    g_assert_nonnull (reason);
    g_test_message ("auto: %s", reason);
    g_assert_nonnull (strstr (reason, fault_names[fault]));
    g_assert_nonnull (
        strstr (reason, fault == 0 ? "failed to start" : "training self-test"));
    for (int s = 0; s < 2; s++) {
      g_assert_true (fer_trainer_step (
          t, x, y, NULL, 1.0f, N, &loss[0], logits[0], &error));
      g_assert_true (fer_trainer_step (
          cpu, x, y, NULL, 1.0f, N, &loss[1], logits[1], &error));
      g_assert_no_error (error);
      g_test_message (
          "step %d: loss %.9g (auto) %.9g (cpu)", s + 1, loss[0], loss[1]);
      g_assert_cmpmem (&loss[0], sizeof (float), &loss[1], sizeof (float));
      g_assert_cmpmem (
          logits[0], sizeof logits[0], logits[1], sizeof logits[1]);
    }
    assert_same_params (t, cpu);
  }
  fer_trainer_free (t);
  fer_trainer_free (cpu);
}

/* A device whose answers are NaN (NaN compares false with everything, and
 * fmax drops it): its inference and training self-tests fail all the same.
 * backend=auto runs on the CPU with the reason, backend=cuda is an error. */
static void
test_nan_device (void)
{
  GError *error = NULL;
  float out[FACES * K];
  fer_model *m = load ("nan", FER_BACKEND_AUTO, &error);
  g_assert_no_error (error);
  g_assert_cmpint (fer_model_backend (m), ==, FER_BACKEND_CPU);
  const char *reason = fer_model_fallback_reason (m);
  g_assert_nonnull (reason);
  g_test_message ("auto: %s", reason);
  g_assert_nonnull (strstr (reason, "failed its self-test"));
  g_assert_nonnull (strstr (reason, "FER_CUDA_FAULT=nan"));
  g_assert_true (compute (m, VIA_CLASSIFY, out, &error));
  g_assert_cmpmem (out, sizeof out, cpu_probs, sizeof cpu_probs);
  fer_model_free (m);

  g_assert_null (load ("nan", FER_BACKEND_CUDA, &error));
  g_assert_nonnull (error);
  g_test_message ("cuda: %s", error->message);
  g_assert_nonnull (strstr (error->message, "self-test"));
  g_clear_error (&error);

  fer_trainer *t = new_trainer ("nan", FER_BACKEND_AUTO, &error);
  g_assert_no_error (error);
  g_assert_cmpint (fer_trainer_backend (t), ==, FER_BACKEND_CPU);
  g_assert_nonnull (
      strstr (fer_trainer_fallback_reason (t), "training self-test"));
  fer_trainer_free (t);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  fer_arch a = { FER_STEM_TORCHVISION, FER_HEAD_MLP, 1, K };
  fer_rng rng;
  int status;

  g_test_init (&argc, &argv, NULL);
  g_unsetenv ("FER_CUDA_FAULT");
  model_path = test_write_temp_model (&a, 5);

  fer_rng_seed (&rng, 21);
  for (int i = 0; i < W * H; i++)
    px[i] = (uint8_t) (fer_rng_uniform (&rng) * 255.0f);
  for (int i = 0; i < 48 * 48; i++)
    input[i] = fer_rng_normal (&rng);
  fer_model *cpu = load (NULL, FER_BACKEND_CPU, &error);
  g_assert_no_error (error);
  g_assert_true (compute (cpu, VIA_CLASSIFY, cpu_probs, &error));
  g_assert_true (compute (cpu, VIA_IMAGES, cpu_images, &error));
  g_assert_true (compute (cpu, VIA_FORWARD, cpu_logits, &error));
  g_assert_no_error (error);
  fer_model_free (cpu);

  for (int f = 0; f < 3; f++) {
    char *path = g_strdup_printf ("/failsafe/auto/%s", fault_names[f]);
    g_test_add_data_func (path, GINT_TO_POINTER (f), test_auto);
    g_free (path);
    path = g_strdup_printf ("/failsafe/cuda/%s", fault_names[f]);
    g_test_add_data_func (path, GINT_TO_POINTER (f), test_cuda);
    g_free (path);
    path = g_strdup_printf ("/failsafe/trainer/%s", fault_names[f]);
    g_test_add_data_func (path, GINT_TO_POINTER (f), test_trainer);
    g_free (path);
  }
  g_test_add_func ("/failsafe/bad-argument-is-not-a-device-failure",
      test_bad_argument_is_not_a_device_failure);
  g_test_add_func ("/failsafe/bad-value", test_bad_value);
  g_test_add_func ("/failsafe/nan-device", test_nan_device);
  status = g_test_run ();

  test_remove_temp_model (model_path);
  return status;
}
