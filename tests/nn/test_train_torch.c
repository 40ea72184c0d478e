/* The trainer as a whole.
 *
 * /train-torch/<variant>: one full training step of the whole network
 * against PyTorch. tests/fixtures/torch_grads.json holds, for models that
 * fer-init writes from a seed with --randomize-bn, torchvision resnet18's
 * loss on a noise-like formula batch (class weights and label smoothing;
 * focal and mixup in the second variant), every parameter's gradient (norm,
 * sum and sampled entries), the parameters after one optimizer step and
 * after a second step on a second batch, and sampled BatchNorm running
 * statistics. This test writes the same models with the same seeds and
 * compares. The inputs are small (24x24, 8x8) and the batch's phase was
 * chosen by the generator so that no pre-activation sits within a few
 * rounding errors of a ReLU or max-pool kink (fixture: kink_margin, in RMS
 * float32 rounding differences), which is what makes two float
 * implementations comparable at all: across a kink a whole channel's
 * gradient changes, by 1e-3 to 1e-1 everywhere upstream. Regenerate the
 * fixture with tests/torch_reference.py (its docstring).
 *
 * /trainer/...: fresh initialisation equals fer_model_write_random's,
 * resume from save_model + save_state continues bit for bit, a saved model
 * runs in fer_model (BatchNorm folded) as it does in fer_trainer_eval, bad
 * input is refused with clear errors, and training on a synthetic data set
 * learns. */
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include <glib/gstdio.h>

#include <fer/train.h>
#include <fer/rng.h>

#include "test-util.h"
#include "torch_fixture.h"

/* Error bounds: gradients relative to the tensor's scale in the fixture (its
 * largest |g|, at least 1e-3 of the network's largest), norms and sums
 * relative to themselves (or that scale, when smaller), the loss relative to
 * itself; parameters after an Adam step relative to the learning rate, i.e.
 * to the size of one step. PyTorch's float32 run agrees with its float64 run
 * within 1e-4 and 5e-3 x lr on this data (the fixture's float32_vs_float64);
 * libfernn with PyTorch's float32 within 2e-5 and 1e-3 x lr. */
#define GRAD_TOL 1e-3
#define LOSS_TOL 1e-4
#define PARAM_TOL_STEPS 1e-2
#define RUNNING_TOL 1e-3

static JsonNode *fixture;
static char *tmpdir;

/* torch_reference.py's noise_input: sin(12.9898 i + 78.233 b + phase) * 1.5
 * in double, rounded to float. */
static float *
noise_input (int n, int c, int s, double phase)
{
  size_t total = (size_t) n * c * s * s;
  float *x = g_new (float, total);
  for (size_t i = 0; i < total; i++) {
    size_t b = i / ((size_t) c * s * s);
    x[i] = (float) (sin (12.9898 * (double) i + 78.233 * (double) b + phase)
        * 1.5);
  }
  return x;
}

/* As torch_reference.py's train_labels. */
static void
train_labels (int n, int k, int batch, int *y_a, int *y_b)
{
  for (int i = 0; i < n; i++) {
    y_a[i] = batch == 1 ? (3 * i + 1) % k : (5 * i + 2) % k;
    y_b[i] = batch == 1 ? (i + 3) % k : (2 * i + 1) % k;
  }
}

/* max over samples [[index, value], ...] of |x[index] - value| */
static double
max_sample_error (JsonArray *samples, const float *x, double *ref_max)
{
  double err = 0.0;
  for (guint j = 0; j < json_array_get_length (samples); j++) {
    JsonArray *s = json_array_get_array_element (samples, j);
    gint64 idx = json_array_get_int_element (s, 0);
    double ref = json_array_get_double_element (s, 1);
    err = fmax (err, fabs (x[idx] - ref));
    if (ref_max)
      *ref_max = fmax (*ref_max, fabs (ref));
  }
  return err;
}

static void
check_variant (gconstpointer data)
{
  JsonObject *v = (JsonObject *) data;
  const char *name = json_object_get_string_member (v, "name");
  fer_arch a = torch_fixture_arch (v);
  const int n = (int) json_object_get_int_member (
      json_object_get_object_member (json_node_get_object (fixture), "batch"),
      "n");
  const int size = (int) json_object_get_int_member (v, "size");
  const double lr = json_object_get_double_member (v, "lr");
  const gboolean mixup = !json_object_get_null_member (v, "lam");
  const double phase = json_object_get_double_member (v, "phase");
  const float lam =
      mixup ? (float) json_object_get_double_member (v, "lam") : 0.0f;
  char *path = torch_fixture_write_model (v, &a, FER_DTYPE_F32, tmpdir);
  GError *error = NULL;
  float weights[64];
  int ya1[64], yb1[64], ya2[64], yb2[64];
  float loss = 0.0f;

  fer_train_config cfg;
  fer_train_config_init (&cfg, &a);
  cfg.input_size = size;
  cfg.dropout = 0.0f;
  cfg.backend = FER_BACKEND_CPU;
  cfg.threads = 1;
  cfg.optimizer =
      g_strcmp0 (json_object_get_string_member (v, "optimizer"), "adamw") == 0
      ? FER_OPTIMIZER_ADAMW
      : FER_OPTIMIZER_ADAM;
  cfg.lr = (float) lr;
  cfg.eps = (float) json_object_get_double_member (v, "eps");
  cfg.weight_decay = (float) json_object_get_double_member (v, "weight_decay");
  cfg.label_smoothing =
      (float) json_object_get_double_member (v, "label_smoothing");
  cfg.focal_gamma = (float) json_object_get_double_member (v, "focal_gamma");
  JsonArray *w = json_object_get_array_member (v, "class_weights");
  g_assert_cmpint (json_array_get_length (w), ==, a.n_classes);
  for (int c = 0; c < a.n_classes; c++)
    weights[c] = (float) json_array_get_double_element (w, c);
  cfg.class_weights = weights;

  fer_trainer *t = fer_trainer_new (&cfg, path, &error);
  g_assert_no_error (error);
  float *x1 = noise_input (n, a.channels, size, phase);
  float *x2 = noise_input (n, a.channels, size, phase + 1.0);
  train_labels (n, a.n_classes, 1, ya1, yb1);
  train_labels (n, a.n_classes, 2, ya2, yb2);

  /* Loss and gradients */
  g_assert_true (fer_trainer_forward_backward (
      t, x1, ya1, mixup ? yb1 : NULL, lam, n, &loss, &error));
  g_assert_no_error (error);
  double loss_ref = json_object_get_double_member (v, "loss1");
  double loss_err = fabs (loss - loss_ref) / fabs (loss_ref);
  g_printerr ("# %s: loss %.7f vs torch %.7f, relative error %.2g\n", name,
      loss, loss_ref, loss_err);
  g_assert_cmpfloat (loss_err, <, LOSS_TOL);

  JsonArray *tensors = json_object_get_array_member (v, "tensors");
  g_assert_cmpint (
      json_array_get_length (tensors), ==, fer_trainer_n_params (t));
  double worst_grad = 0.0, worst_norm = 0.0;
  const char *worst_name = "";
  for (int i = 0; i < fer_trainer_n_params (t); i++) {
    JsonObject *e = json_array_get_object_element (tensors, i);
    JsonObject *g = json_object_get_object_member (e, "grad");
    g_assert_cmpstr (fer_trainer_param_name (t, i), ==,
        json_object_get_string_member (e, "name"));
    int64_t numel = fer_trainer_param_numel (t, i);
    g_assert_cmpint (numel, ==, json_object_get_int_member (e, "numel"));
    float *grad = g_new (float, numel);
    g_assert_true (fer_trainer_param_grad (t, i, grad, &error));
    double norm = 0.0, sum = 0.0;
    for (int64_t j = 0; j < numel; j++) {
      norm += (double) grad[j] * grad[j];
      sum += grad[j];
    }
    norm = sqrt (norm);
    double scale = json_object_get_double_member (g, "scale");
    double rel = max_sample_error (
                     json_object_get_array_member (g, "samples"), grad, NULL)
        / scale;
    double norm_rel = fabs (norm - json_object_get_double_member (g, "norm"))
        / fmax (json_object_get_double_member (g, "norm"), scale);
    double sum_rel = fabs (sum - json_object_get_double_member (g, "sum"))
        / fmax (json_object_get_double_member (g, "abs_sum"), scale);
    if (rel > worst_grad)
      worst_name = fer_trainer_param_name (t, i);
    worst_grad = fmax (worst_grad, rel);
    worst_norm = fmax (worst_norm, fmax (norm_rel, sum_rel));
    if (rel >= GRAD_TOL || norm_rel >= GRAD_TOL || sum_rel >= GRAD_TOL)
      g_printerr ("# %s: %s: sampled |g - g_ref| / max|g_ref| %.3g, norm "
                  "%.3g, sum %.3g\n",
          name, fer_trainer_param_name (t, i), rel, norm_rel, sum_rel);
    g_assert_cmpfloat (rel, <, GRAD_TOL);
    g_assert_cmpfloat (norm_rel, <, GRAD_TOL);
    g_assert_cmpfloat (sum_rel, <, GRAD_TOL);
    g_free (grad);
  }
  g_printerr ("# %s: gradients of %d tensors: max sampled |g - g_ref| / "
              "scale %.2g (%s), max norm/sum relative error %.2g (bound %g)\n",
      name, fer_trainer_n_params (t), worst_grad, worst_name, worst_norm,
      GRAD_TOL);

  /* Two optimizer steps */
  for (int s = 1; s <= 2; s++) {
    g_assert_true (fer_trainer_step (t, s == 1 ? x1 : x2, s == 1 ? ya1 : ya2,
        mixup ? (s == 1 ? yb1 : yb2) : NULL, lam, n, &loss, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpint (fer_trainer_step_count (t), ==, s);
    loss_ref = json_object_get_double_member (v, s == 1 ? "loss1" : "loss2");
    loss_err = fabs (loss - loss_ref) / fabs (loss_ref);
    double worst = 0.0;
    worst_name = "";
    for (int i = 0; i < fer_trainer_n_params (t); i++) {
      JsonObject *e = json_array_get_object_element (tensors, i);
      float *p = g_new (float, fer_trainer_param_numel (t, i));
      g_assert_true (fer_trainer_param_get (t, i, p, &error));
      double err = max_sample_error (json_object_get_array_member (
                                         e, s == 1 ? "param1" : "param2"),
                       p, NULL)
          / lr;
      if (err > worst)
        worst_name = fer_trainer_param_name (t, i);
      worst = fmax (worst, err);
      g_free (p);
    }
    g_printerr ("# %s: after step %d: loss relative error %.2g, sampled "
                "parameters max |p - p_ref| = %.2g x lr (%s; bound %g x lr)\n",
        name, s, loss_err, worst, worst_name, PARAM_TOL_STEPS);
    g_assert_cmpfloat (loss_err, <, LOSS_TOL);
    g_assert_cmpfloat (worst, <, PARAM_TOL_STEPS);
  }

  /* Running statistics, through the saved model file */
  g_assert_true (fer_trainer_save_model (t, path, FER_DTYPE_F32, NULL, &error));
  g_assert_no_error (error);
  fer_safetensors *st = fer_safetensors_open (path, &error);
  g_assert_no_error (error);
  JsonArray *running = json_object_get_array_member (v, "running");
  double worst_running = 0.0;
  for (guint i = 0; i < json_array_get_length (running); i++) {
    JsonObject *e = json_array_get_object_element (running, i);
    const fer_st_tensor *tensor =
        fer_safetensors_find (st, json_object_get_string_member (e, "name"));
    g_assert_nonnull (tensor);
    float *r = g_new (float, tensor->numel);
    fer_safetensors_read_f32 (st, tensor, r);
    double ref_max = 0.0;
    double err = max_sample_error (
        json_object_get_array_member (e, "samples"), r, &ref_max);
    worst_running = fmax (worst_running, err / fmax (ref_max, 1e-3));
    g_free (r);
  }
  g_printerr ("# %s: running statistics after 2 steps: max relative error "
              "%.2g (bound %g)\n",
      name, worst_running, RUNNING_TOL);
  g_assert_cmpfloat (worst_running, <, RUNNING_TOL);

  fer_safetensors_free (st);
  fer_trainer_free (t);
  g_free (x1);
  g_free (x2);
  g_unlink (path);
  g_free (path);
}

/* ------------------------------------------------------------------ */

static fer_trainer *
new_trainer (fer_stem stem, fer_head head, int channels, int classes, int size,
    const char *init, guint64 seed)
{
  fer_arch a = { stem, head, channels, classes };
  fer_train_config cfg;
  GError *error = NULL;
  fer_train_config_init (&cfg, &a);
  cfg.input_size = size;
  cfg.backend = FER_BACKEND_CPU;
  cfg.threads = 1;
  cfg.seed = seed;
  fer_trainer *t = fer_trainer_new (&cfg, init, &error);
  g_assert_no_error (error);
  return t;
}

/* Fresh parameters equal the file fer_model_write_random writes for the
 * same seed, value for value, through param_get (PyTorch layout). */
static void
test_init_matches_write_random (void)
{
  fer_arch a = { FER_STEM_SMALL, FER_HEAD_MLP, 3, 5 };
  char *path = g_build_filename (tmpdir, "init.safetensors", NULL);
  GError *error = NULL;
  g_assert_true (fer_model_write_random (
      &a, 77, FALSE, FER_DTYPE_F32, NULL, path, &error));
  fer_safetensors *st = fer_safetensors_open (path, &error);
  g_assert_no_error (error);
  fer_trainer *t =
      new_trainer (a.stem, a.head, a.channels, a.n_classes, 32, NULL, 77);
  for (int i = 0; i < fer_trainer_n_params (t); i++) {
    const fer_st_tensor *tensor =
        fer_safetensors_find (st, fer_trainer_param_name (t, i));
    g_assert_nonnull (tensor);
    g_assert_cmpint (tensor->numel, ==, fer_trainer_param_numel (t, i));
    float *want = g_new (float, tensor->numel);
    float *got = g_new (float, tensor->numel);
    fer_safetensors_read_f32 (st, tensor, want);
    g_assert_true (fer_trainer_param_get (t, i, got, &error));
    g_assert_cmpmem (got, tensor->numel * sizeof (float), want,
        tensor->numel * sizeof (float));
    g_free (want);
    g_free (got);
  }
  fer_trainer_free (t);
  fer_safetensors_free (st);
  g_unlink (path);
  g_free (path);
}

static void
random_batch (fer_rng *rng, float *x, int *y, int n, int per_image, int k)
{
  for (int i = 0; i < n * per_image; i++)
    x[i] = fer_rng_normal (rng);
  for (int i = 0; i < n; i++)
    y[i] = (int) (fer_rng_next (rng) % (guint64) k);
}

static void
get_all_params (fer_trainer *t, GByteArray *out)
{
  GError *error = NULL;
  g_byte_array_set_size (out, 0);
  for (int i = 0; i < fer_trainer_n_params (t); i++) {
    guint len = out->len;
    g_byte_array_set_size (
        out, len + fer_trainer_param_numel (t, i) * sizeof (float));
    g_assert_true (
        fer_trainer_param_get (t, i, (float *) (out->data + len), &error));
  }
}

/* save_model + save_state, then a new trainer from both continues exactly
 * as the original does (mlp head: dropout's generator is part of it). */
static void
test_resume_bit_exact (gconstpointer data)
{
  const fer_optimizer opt = (fer_optimizer) GPOINTER_TO_INT (data);
  const int n = 6, size = 32, k = 4, per_image = size * size;
  fer_arch a = { FER_STEM_TORCHVISION, FER_HEAD_MLP, 1, k };
  fer_train_config cfg;
  char *model = g_build_filename (tmpdir, "resume.safetensors", NULL);
  char *state = g_build_filename (tmpdir, "resume.state.safetensors", NULL);
  GError *error = NULL;
  fer_rng rng;
  float *x = g_new (float, n *per_image);
  int y[6];
  float loss_a = 0.0f, loss_b = 0.0f;

  fer_train_config_init (&cfg, &a);
  cfg.input_size = size;
  cfg.backend = FER_BACKEND_CPU;
  cfg.threads = 1;
  cfg.seed = 5;
  cfg.optimizer = opt;
  cfg.momentum = 0.9f;
  cfg.nesterov = opt == FER_OPTIMIZER_SGD;
  cfg.weight_decay = 1e-3f;
  cfg.lr = 1e-2f;
  fer_trainer *t = fer_trainer_new (&cfg, NULL, &error);
  g_assert_no_error (error);
  fer_rng_seed (&rng, 9);
  for (int s = 0; s < 2; s++) {
    random_batch (&rng, x, y, n, per_image, k);
    g_assert_true (
        fer_trainer_step (t, x, y, NULL, 0.0f, n, &loss_a, NULL, &error));
  }
  fer_trainer_set_lr (t, 3e-3f);
  g_assert_true (
      fer_trainer_save_model (t, model, FER_DTYPE_F32, NULL, &error));
  g_assert_true (fer_trainer_save_state (t, state, &error));
  g_assert_no_error (error);

  fer_trainer *r = fer_trainer_new (&cfg, model, &error);
  g_assert_no_error (error);
  g_assert_true (fer_trainer_load_state (r, state, &error));
  g_assert_no_error (error);
  g_assert_cmpint (fer_trainer_step_count (r), ==, 2);
  g_assert_cmpfloat (fer_trainer_get_lr (r), ==, 3e-3f);

  random_batch (&rng, x, y, n, per_image, k);
  g_assert_true (
      fer_trainer_step (t, x, y, NULL, 0.0f, n, &loss_a, NULL, &error));
  g_assert_true (
      fer_trainer_step (r, x, y, NULL, 0.0f, n, &loss_b, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (&loss_a, sizeof loss_a, &loss_b, sizeof loss_b);
  GByteArray *pa = g_byte_array_new (), *pb = g_byte_array_new ();
  get_all_params (t, pa);
  get_all_params (r, pb);
  g_assert_cmpmem (pa->data, pa->len, pb->data, pb->len);
  g_printerr ("# resume (%s): step 3 loss %.6f identical, %u parameter "
              "bytes identical\n",
      opt == FER_OPTIMIZER_SGD         ? "sgd+nesterov"
          : opt == FER_OPTIMIZER_ADAMW ? "adamw"
                                       : "adam",
      loss_a, pa->len);
  g_byte_array_unref (pa);
  g_byte_array_unref (pb);

  /* Eval-mode logits of both agree too (running statistics restored). */
  float la[6 * 4], lb[6 * 4];
  g_assert_true (fer_trainer_eval (t, x, n, la, &error));
  g_assert_true (fer_trainer_eval (r, x, n, lb, &error));
  g_assert_cmpmem (la, sizeof la, lb, sizeof lb);

  fer_trainer_free (r);
  fer_trainer_free (t);
  g_unlink (model);
  g_unlink (state);
  g_free (model);
  g_free (state);
  g_free (x);
}

/* A saved model, loaded by fer_model (BatchNorm folded, inference
 * kernels), gives the logits fer_trainer_eval gives. */
static void
test_saved_model_runs (void)
{
  const int n = 5, size = 40, k = 7;
  char *path = g_build_filename (tmpdir, "saved.safetensors", NULL);
  GError *error = NULL;
  fer_rng rng;
  float *x = g_new (float, n * 3 * size * size);
  int y[5];
  float loss, la[5 * 7], lb[5 * 7];
  const char *meta[] = { "fer.dataset", "synthetic", "fer.labels",
    "a,b,c,d,e,f,g", NULL };

  fer_trainer *t =
      new_trainer (FER_STEM_TORCHVISION, FER_HEAD_MLP, 3, k, size, NULL, 3);
  fer_rng_seed (&rng, 4);
  for (int s = 0; s < 3; s++) {
    random_batch (&rng, x, y, n, 3 * size * size, k);
    g_assert_true (
        fer_trainer_step (t, x, y, NULL, 0.0f, n, &loss, NULL, &error));
  }
  g_assert_true (fer_trainer_save_model (t, path, FER_DTYPE_F32, meta, &error));
  g_assert_no_error (error);
  fer_model *m = test_load_model (path, FER_BACKEND_CPU, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (fer_model_input_size (m), ==, size);
  g_assert_cmpstr (fer_model_label (m, 6), ==, "g");
  g_assert_cmpstr (fer_model_metadata (m, "fer.dataset"), ==, "synthetic");
  g_assert_cmpstr (
      fer_model_metadata (m, "fer.trained_by"), ==, "libfernn fer_trainer");
  /* the seed report's network: 3 channels, mlp head, 7 classes */
  g_assert_cmpint (fer_model_n_params (m), ==, 11310151);
  g_assert_true (fer_trainer_eval (t, x, n, la, &error));
  g_assert_true (fer_model_forward (m, x, n, lb, &error));
  g_assert_no_error (error);
  double err = 0.0, range = 0.0;
  for (int i = 0; i < n * k; i++) {
    err = fmax (err, fabs (la[i] - lb[i]));
    range = fmax (range, fabs (la[i]));
  }
  g_printerr ("# saved model vs trainer eval: max abs logit error %.2g "
              "(max |logit| %.3g)\n",
      err, range);
  g_assert_cmpfloat (err / range, <, 1e-4);
  fer_model_free (m);
  fer_trainer_free (t);
  g_unlink (path);
  g_free (path);
  g_free (x);
}

static void
expect_error (gboolean ok, GError **error, int code, const char *part)
{
  g_assert_false (ok);
  g_assert_error (*error, FER_ERROR, code);
  if (!strstr ((*error)->message, part))
    g_error ("error '%s' does not mention '%s'", (*error)->message, part);
  g_printerr ("# refused: %s\n", (*error)->message);
  g_clear_error (error);
}

static void
test_bad_input (void)
{
  const int size = 32;
  fer_arch a = { FER_STEM_TORCHVISION, FER_HEAD_FC, 1, 7 };
  fer_train_config cfg;
  GError *error = NULL;
  float x[2 * 32 * 32] = { 0 }, loss;
  int y[2] = { 0, 9 };
  char *model = g_build_filename (tmpdir, "bad.safetensors", NULL);
  char *state = g_build_filename (tmpdir, "bad.state.safetensors", NULL);

  fer_train_config_init (&cfg, &a);
  cfg.input_size = size;
  cfg.backend = FER_BACKEND_CPU;
  cfg.lr = -1.0f;
  expect_error (fer_trainer_new (&cfg, NULL, &error) != NULL, &error,
      FER_ERROR_INVALID_ARGUMENT, "lr");
  cfg.lr = 1e-3f;
  cfg.input_size = 4;
  expect_error (fer_trainer_new (&cfg, NULL, &error) != NULL, &error,
      FER_ERROR_INVALID_ARGUMENT, "input_size");
  cfg.input_size = size;
  cfg.nesterov = TRUE;
  expect_error (fer_trainer_new (&cfg, NULL, &error) != NULL, &error,
      FER_ERROR_INVALID_ARGUMENT, "nesterov");
  cfg.nesterov = FALSE;

  /* an init model of another architecture */
  fer_arch other = { FER_STEM_SMALL, FER_HEAD_FC, 1, 7 };
  g_assert_true (fer_model_write_random (
      &other, 1, FALSE, FER_DTYPE_F16, NULL, model, &error));
  expect_error (fer_trainer_new (&cfg, model, &error) != NULL, &error,
      FER_ERROR_MODEL, "conv1.weight");
  expect_error (
      fer_trainer_new (&cfg, "/nonexistent/m.safetensors", &error) != NULL,
      &error, FER_ERROR_IO, "/nonexistent/m.safetensors");

  fer_trainer *t = fer_trainer_new (&cfg, NULL, &error);
  g_assert_no_error (error);
  expect_error (fer_trainer_step (t, x, y, NULL, 0.0f, 2, &loss, NULL, &error),
      &error, FER_ERROR_INVALID_ARGUMENT, "y_a[1] = 9");
  y[1] = 1;
  expect_error (fer_trainer_step (t, x, y, y, 1.5f, 2, &loss, NULL, &error),
      &error, FER_ERROR_INVALID_ARGUMENT, "lam");
  expect_error (fer_trainer_step (t, x, y, NULL, 0.0f, 1, &loss, NULL, &error),
      &error, FER_ERROR_INVALID_ARGUMENT, "batch of 1");
  expect_error (
      fer_trainer_step (t, NULL, y, NULL, 0.0f, 2, &loss, NULL, &error), &error,
      FER_ERROR_INVALID_ARGUMENT, "no input");
  expect_error (fer_trainer_save_model (t, model, FER_DTYPE_BF16, NULL, &error),
      &error, FER_ERROR_INVALID_ARGUMENT, "F32 or F16");
  g_assert_true (
      fer_trainer_step (t, x, y, NULL, 0.0f, 2, &loss, NULL, &error));
  g_assert_no_error (error);

  /* state files: a model file is not one; another optimizer's is refused;
   * another architecture's is refused */
  g_assert_true (
      fer_trainer_save_model (t, model, FER_DTYPE_F32, NULL, &error));
  expect_error (fer_trainer_load_state (t, model, &error), &error,
      FER_ERROR_FORMAT, model);
  fer_train_config sgd = cfg;
  sgd.optimizer = FER_OPTIMIZER_SGD;
  sgd.momentum = 0.9f;
  fer_trainer *s = fer_trainer_new (&sgd, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (fer_trainer_save_state (s, state, &error));
  expect_error (fer_trainer_load_state (t, state, &error), &error,
      FER_ERROR_FORMAT, "optimizer state of 'sgd'");
  fer_trainer_free (s);
  fer_train_config mlp = cfg;
  mlp.arch.head = FER_HEAD_MLP;
  s = fer_trainer_new (&mlp, NULL, &error);
  g_assert_true (fer_trainer_save_state (s, state, &error));
  expect_error (fer_trainer_load_state (t, state, &error), &error,
      FER_ERROR_FORMAT, state);
  fer_trainer_free (s);
  expect_error (
      fer_trainer_load_state (t, "/nonexistent/s.safetensors", &error), &error,
      FER_ERROR_IO, "/nonexistent/s.safetensors");

  fer_trainer_free (t);
  g_unlink (model);
  g_unlink (state);
  g_free (model);
  g_free (state);
}

/* A class-specific bright square (plus noise, random brightness) at one of
 * `k` positions in an image of noise: learnable, and not by chance. */
static void
synthetic_images (fer_rng *rng, float *x, int *y, int n, int size, int k)
{
  const int sq = size / 6;
  for (int i = 0; i < n; i++) {
    int c = (int) (fer_rng_next (rng) % (guint64) k);
    float *img = x + (size_t) i * size * size;
    int cx = (c % 2) ? size - sq - size / 8 : size / 8;
    int cy = (c / 2) ? size - sq - size / 8 : size / 8;
    float gain = 1.0f + fer_rng_uniform (rng);
    cx += (int) (fer_rng_next (rng) % 5) - 2;
    cy += (int) (fer_rng_next (rng) % 5) - 2;
    for (int p = 0; p < size * size; p++)
      img[p] = 0.7f * fer_rng_normal (rng);
    for (int yy = cy; yy < cy + sq; yy++)
      for (int xx = cx; xx < cx + sq; xx++)
        img[yy * size + xx] += gain;
    y[i] = c;
  }
}

static double
accuracy (fer_trainer *t, const float *x, const int *y, int n, int k)
{
  float *logits = g_new (float, n *k);
  GError *error = NULL;
  int right = 0;
  g_assert_true (fer_trainer_eval (t, x, n, logits, &error));
  g_assert_no_error (error);
  for (int i = 0; i < n; i++) {
    int best = 0;
    for (int j = 1; j < k; j++)
      if (logits[i * k + j] > logits[i * k + best])
        best = j;
    right += best == y[i];
  }
  g_free (logits);
  return (double) right / n;
}

static void
test_learns (void)
{
  const int size = 48, k = 4, n_train = 384, n_val = 128, batch = 16;
  const int epochs = 2;
  fer_rng rng;
  GError *error = NULL;
  float *x = g_new (float, (size_t) (n_train + n_val) * size * size);
  int *y = g_new (int, n_train + n_val);
  float loss = 0.0f, first_loss = 0.0f;
  gint64 t0 = g_get_monotonic_time ();

  fer_rng_seed (&rng, 2024);
  synthetic_images (&rng, x, y, n_train + n_val, size, k);
  fer_trainer *t =
      new_trainer (FER_STEM_TORCHVISION, FER_HEAD_FC, 1, k, size, NULL, 1);
  const float *val_x = x + (size_t) n_train * size * size;
  double before = accuracy (t, val_x, y + n_train, n_val, k);
  for (int e = 0; e < epochs; e++) {
    double sum = 0.0;
    for (int b = 0; b < n_train / batch; b++) {
      g_assert_true (fer_trainer_step (t, x + (size_t) b * batch * size * size,
          y + b * batch, NULL, 0.0f, batch, &loss, NULL, &error));
      g_assert_no_error (error);
      if (e == 0 && b == 0)
        first_loss = loss;
      sum += loss;
    }
    g_printerr (
        "# learns: epoch %d mean loss %.4f\n", e + 1, sum / (n_train / batch));
  }
  double after = accuracy (t, val_x, y + n_train, n_val, k);
  double seconds = (g_get_monotonic_time () - t0) / 1e6;
  g_printerr ("# learns: held-out accuracy %.3f before, %.3f after %d epochs "
              "(chance %.2f), first loss %.3f, last %.3f, %.1f s\n",
      before, after, epochs, 1.0 / k, first_loss, loss, seconds);
  g_assert_cmpfloat (after, >, 0.6);
  g_assert_cmpfloat (loss, <, first_loss);
  fer_trainer_free (t);
  g_free (x);
  g_free (y);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  g_test_init (&argc, &argv, NULL);

  fixture = torch_fixture_load ("torch_grads.json");
  tmpdir = g_dir_make_tmp ("fer-train-XXXXXX", &error);
  g_assert_no_error (error);

  torch_fixture_add_variants (fixture, "/train-torch", check_variant);
  g_test_add_func (
      "/trainer/init-matches-write-random", test_init_matches_write_random);
  g_test_add_data_func ("/trainer/resume-bit-exact/adam",
      GINT_TO_POINTER (FER_OPTIMIZER_ADAM), test_resume_bit_exact);
  g_test_add_data_func ("/trainer/resume-bit-exact/sgd",
      GINT_TO_POINTER (FER_OPTIMIZER_SGD), test_resume_bit_exact);
  g_test_add_func ("/trainer/saved-model-runs", test_saved_model_runs);
  g_test_add_func ("/trainer/bad-input", test_bad_input);
  g_test_add_func ("/trainer/learns", test_learns);
  int rc = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  json_node_unref (fixture);
  return rc;
}
