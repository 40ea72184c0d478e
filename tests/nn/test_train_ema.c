/* The weights' moving average of fer_trainer (cfg.ema_decay): against a
 * double-precision reference kept from the live weights after every step
 * (learnable parameters and BatchNorm running statistics, the decay's
 * warm-up included; max relative error printed); evaluation with the
 * average swapped in equals a trainer started from the saved average;
 * resuming from a saved state gives the uninterrupted run's average bit
 * for bit; and the refusals (a step or a state while swapped, a state
 * with an average into a trainer without one, bad decays), each naming
 * the problem. */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include <fer/fer.h>
#include <fer/rng.h>
#include <fer/safetensors.h>

#include "test-util.h"

#define S 16 /* input side: small and quick */
#define N 6  /* images per batch */
#define K 3  /* classes */
#define STEPS 6
#define DECAY 0.3f /* reached at step 4: the warm-up covers steps 1-3 */
#define REF_TOL 1e-5

static const fer_arch arch = { .stem = FER_STEM_TORCHVISION,
  .head = FER_HEAD_FC,
  .channels = 1,
  .n_classes = K };

static float batches[STEPS][N * S * S];
static int labels[STEPS][N];
static char *tmp_dir;

static fer_trainer *
new_trainer (float decay, const char *init)
{
  fer_train_config cfg;
  GError *error = NULL;
  fer_train_config_init (&cfg, &arch);
  cfg.input_size = S;
  cfg.backend = FER_BACKEND_CPU;
  cfg.threads = 1;
  cfg.seed = 7;
  cfg.optimizer = FER_OPTIMIZER_SGD;
  cfg.lr = 0.05f;
  cfg.momentum = 0.9f;
  cfg.ema_decay = decay;
  fer_trainer *t = fer_trainer_new (&cfg, init, &error);
  g_assert_no_error (error);
  return t;
}

static void
step (fer_trainer *t, int i)
{
  GError *error = NULL;
  float loss;
  g_assert_true (fer_trainer_step (
      t, batches[i], labels[i], NULL, 0.0f, N, &loss, NULL, &error));
  g_assert_no_error (error);
}

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmp_dir, name, NULL);
}

/* Every tensor of the model file the trainer writes now, as doubles, in
 * file order: the live weights, or the average when swapped in. */
static GPtrArray *
model_tensors (fer_trainer *t)
{
  GError *error = NULL;
  g_autofree char *path = tmp_path ("snapshot.safetensors");
  g_assert_true (fer_trainer_save_model (t, path, FER_DTYPE_F32, NULL, &error));
  g_assert_no_error (error);
  fer_safetensors *st = fer_safetensors_open (path, &error);
  g_assert_no_error (error);
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  for (int i = 0; i < fer_safetensors_n_tensors (st); i++) {
    const fer_st_tensor *tensor = fer_safetensors_tensor (st, i);
    size_t n = (size_t) tensor->numel;
    float *f = g_new (float, n);
    double *d = g_new (double, n + 1);
    fer_safetensors_read_f32 (st, tensor, f);
    d[0] = (double) n;
    for (size_t j = 0; j < n; j++)
      d[j + 1] = f[j];
    g_free (f);
    g_ptr_array_add (out, d);
  }
  fer_safetensors_free (st);
  g_unlink (path);
  return out;
}

/* max |a - b| / (1 + |b|) over every tensor; exact: whether all equal. */
static double
tensors_error (GPtrArray *a, GPtrArray *b)
{
  double err = 0.0;
  g_assert_cmpuint (a->len, ==, b->len);
  for (guint i = 0; i < a->len; i++) {
    const double *x = a->pdata[i], *y = b->pdata[i];
    g_assert_cmpfloat (x[0], ==, y[0]);
    for (size_t j = 1; j <= (size_t) x[0]; j++)
      err = fmax (err, fabs (x[j] - y[j]) / (1.0 + fabs (y[j])));
  }
  return err;
}

static void
swap (fer_trainer *t)
{
  GError *error = NULL;
  g_assert_true (fer_trainer_swap_ema (t, &error));
  g_assert_no_error (error);
}

static void
test_reference (void)
{
  g_autoptr (fer_trainer) t = new_trainer (DECAY, NULL);
  g_autoptr (GPtrArray) ref = model_tensors (t);
  g_assert_true (fer_trainer_has_ema (t));
  g_assert_false (fer_trainer_ema_swapped (t));
  for (int s = 1; s <= STEPS; s++) {
    step (t, s - 1);
    /* TensorFlow's num_updates warm-up: min(decay, (1 + u) / (10 + u)),
     * u = the steps before this one */
    double d = fmin (DECAY, (double) s / (s + 9));
    g_autoptr (GPtrArray) live = model_tensors (t);
    for (guint i = 0; i < ref->len; i++) {
      double *r = ref->pdata[i];
      const double *x = live->pdata[i];
      for (size_t j = 1; j <= (size_t) r[0]; j++)
        r[j] = d * r[j] + (1.0 - d) * x[j];
    }
  }
  g_autoptr (GPtrArray) live = model_tensors (t);
  swap (t);
  g_assert_true (fer_trainer_ema_swapped (t));
  g_autoptr (GPtrArray) ema = model_tensors (t);
  double err = tensors_error (ema, ref);
  double moved = tensors_error (live, ref);
  g_printerr ("# EMA of %d steps (decay %g, warm-up) vs double reference, "
              "every tensor: max |ema - ref| / (1 + |ref|) = %.2e (live "
              "weights differ by %.2e)\n",
      STEPS, (double) DECAY, err, moved);
  g_assert_cmpfloat (err, <, REF_TOL);
  g_assert_cmpfloat (moved, >, 100 * REF_TOL);

  /* evaluation sees the average, running statistics included: the same
   * logits as a trainer started from the average's file */
  GError *error = NULL;
  g_autofree char *path = tmp_path ("ema.safetensors");
  g_assert_true (fer_trainer_save_model (t, path, FER_DTYPE_F32, NULL, &error));
  g_autoptr (fer_trainer) from_file = new_trainer (0.0f, path);
  float a[N * K], b[N * K];
  g_assert_true (fer_trainer_eval (t, batches[0], N, a, &error));
  g_assert_true (fer_trainer_eval (from_file, batches[0], N, b, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (a, sizeof a, b, sizeof b);
  g_unlink (path);

  /* no training, no state while swapped; swapping back restores */
  float loss;
  g_assert_false (fer_trainer_step (
      t, batches[0], labels[0], NULL, 0.0f, N, &loss, NULL, &error));
  g_printerr ("# step while swapped: %s\n", error->message);
  g_assert_nonnull (strstr (error->message, "swapped in"));
  g_clear_error (&error);
  g_autofree char *state = tmp_path ("swapped.state");
  g_assert_false (fer_trainer_save_state (t, state, &error));
  g_printerr ("# state while swapped: %s\n", error->message);
  g_assert_nonnull (strstr (error->message, "swapped in"));
  g_clear_error (&error);
  g_assert_false (g_file_test (state, G_FILE_TEST_EXISTS));
  swap (t);
  g_autoptr (GPtrArray) back = model_tensors (t);
  g_assert_cmpfloat (tensors_error (back, live), ==, 0.0);
}

/* Three steps, model + state saved, three more in a new trainer: the
 * same average and weights as six steps in one. */
static void
test_resume (void)
{
  GError *error = NULL;
  g_autofree char *model = tmp_path ("half.safetensors");
  g_autofree char *state = tmp_path ("half.state");
  g_autoptr (fer_trainer) whole = new_trainer (DECAY, NULL);
  g_autoptr (fer_trainer) first = new_trainer (DECAY, NULL);
  for (int s = 0; s < STEPS; s++)
    step (whole, s);
  for (int s = 0; s < STEPS / 2; s++)
    step (first, s);
  g_assert_true (
      fer_trainer_save_model (first, model, FER_DTYPE_F32, NULL, &error));
  g_assert_true (fer_trainer_save_state (first, state, &error));
  g_assert_no_error (error);
  g_autoptr (fer_trainer) second = new_trainer (DECAY, model);
  g_assert_true (fer_trainer_load_state (second, state, &error));
  g_assert_no_error (error);
  for (int s = STEPS / 2; s < STEPS; s++)
    step (second, s);
  g_autoptr (GPtrArray) live_a = model_tensors (whole);
  g_autoptr (GPtrArray) live_b = model_tensors (second);
  swap (whole);
  swap (second);
  g_autoptr (GPtrArray) ema_a = model_tensors (whole);
  g_autoptr (GPtrArray) ema_b = model_tensors (second);
  double e_live = tensors_error (live_b, live_a);
  double e_ema = tensors_error (ema_b, ema_a);
  g_printerr ("# resumed at step %d vs uninterrupted: live weights differ "
              "by %.2e, average by %.2e (expected 0: bit for bit)\n",
      STEPS / 2, e_live, e_ema);
  g_assert_cmpfloat (e_live, ==, 0.0);
  g_assert_cmpfloat (e_ema, ==, 0.0);

  /* a state with an average into a trainer without one: refused */
  g_autoptr (fer_trainer) plain = new_trainer (0.0f, model);
  g_assert_false (fer_trainer_load_state (plain, state, &error));
  g_printerr ("# EMA state into a trainer without EMA: %s\n", error->message);
  g_assert_nonnull (strstr (error->message, "average of the weights"));
  g_assert_nonnull (strstr (error->message, state));
  g_clear_error (&error);
  g_assert_false (fer_trainer_swap_ema (plain, &error));
  g_printerr ("# swap without EMA: %s\n", error->message);
  g_assert_nonnull (strstr (error->message, "no average"));
  g_clear_error (&error);

  /* a state without an average into a trainer with EMA: the average
   * starts at the loaded weights */
  g_autofree char *plain_state = tmp_path ("plain.state");
  for (int s = 0; s < 2; s++)
    step (plain, s);
  g_assert_true (fer_trainer_save_state (plain, plain_state, &error));
  g_assert_true (
      fer_trainer_save_model (plain, model, FER_DTYPE_F32, NULL, &error));
  g_autoptr (fer_trainer) turned_on = new_trainer (DECAY, model);
  g_assert_true (fer_trainer_load_state (turned_on, plain_state, &error));
  g_assert_no_error (error);
  g_autoptr (GPtrArray) loaded = model_tensors (turned_on);
  swap (turned_on);
  g_autoptr (GPtrArray) started = model_tensors (turned_on);
  g_assert_cmpfloat (tensors_error (started, loaded), ==, 0.0);
  g_assert_cmpint (fer_trainer_step_count (turned_on), ==, 2);
  g_unlink (model);
  g_unlink (state);
  g_unlink (plain_state);
}

/* A state file whose name is not UTF-8 and which is not a state: the
 * refusal is one line of UTF-8 that names it quoted. */
static void
test_state_name_not_utf8 (void)
{
  GError *error = NULL;
  g_autofree char *odd = tmp_path ("st\xff\xe2.state");
  g_autoptr (fer_trainer) t = new_trainer (DECAY, NULL);
  g_assert_true (fer_trainer_save_model (t, odd, FER_DTYPE_F32, NULL, &error));
  g_assert_false (fer_trainer_load_state (t, odd, &error));
  g_printerr ("# a model as a state, name not UTF-8: %s\n", error->message);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
  g_assert_nonnull (strstr (error->message, "st\\xFF\\xE2.state"));
  g_assert_nonnull (strstr (error->message, "not a libfernn optimizer state"));
  g_clear_error (&error);
  g_unlink (odd);
}

static void
test_bad_decay (void)
{
  const float bad[] = { 1.0f, -0.1f, NAN, 2.0f };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    fer_train_config cfg;
    GError *error = NULL;
    fer_train_config_init (&cfg, &arch);
    cfg.input_size = S;
    cfg.backend = FER_BACKEND_CPU;
    cfg.ema_decay = bad[i];
    g_assert_null (fer_trainer_new (&cfg, NULL, &error));
    g_printerr ("# ema_decay %g: %s\n", (double) bad[i], error->message);
    g_assert_nonnull (strstr (error->message, "ema_decay"));
    g_clear_error (&error);
  }
}

int
main (int argc, char **argv)
{
  fer_rng rng;
  int status;
  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 99);
  for (int s = 0; s < STEPS; s++) {
    for (int i = 0; i < N * S * S; i++)
      batches[s][i] = fer_rng_normal (&rng);
    for (int i = 0; i < N; i++)
      labels[s][i] = (s + i) % K;
  }
  tmp_dir = g_dir_make_tmp ("fer-ema-XXXXXX", NULL);
  g_assert_nonnull (tmp_dir);
  g_test_add_func ("/train-ema/reference", test_reference);
  g_test_add_func ("/train-ema/resume", test_resume);
  g_test_add_func ("/train-ema/bad-decay", test_bad_decay);
  g_test_add_func ("/train-ema/state-name-not-utf8", test_state_name_not_utf8);
  status = g_test_run ();
  g_rmdir (tmp_dir);
  g_free (tmp_dir);
  return status;
}
