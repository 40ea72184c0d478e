/* fer_train_loss, the training criterion on given logits: against a naive
 * double-precision cross_entropy(weight, label_smoothing) (+ focal factor)
 * written from its definition, for plain, weighted, smoothed, focal and
 * very large logits (max relative error printed); against the loss that
 * fer_trainer_step reports for the logits it returns; and its edge cases
 * (no samples, only zero-weight targets: NaN; a label out of range: an
 * error naming the sample); and the distillation step
 * (fer_trainer_step_distill). */
#include <math.h>
#include <string.h>

#include <fer/train.h>
#include <fer/rng.h>

#define K 7
#define N 64

/* mean_i sum_c -q_c log p_c (1 - p_t)^gamma / sum_i w_t, with
 * q_c = (1 - eps) w_t [c == t] + eps / K w_c, p = softmax(z). */
static double
naive_loss (const float *logits, const int *y, int n, int k, const float *w,
    double eps, double gamma)
{
  double sum = 0.0, weight_sum = 0.0;
  for (int i = 0; i < n; i++) {
    const float *z = logits + (size_t) i * k;
    double zmax = z[0], total = 0.0;
    for (int c = 1; c < k; c++)
      zmax = fmax (zmax, z[c]);
    for (int c = 0; c < k; c++)
      total += exp (z[c] - zmax);
    double ce = 0.0;
    for (int c = 0; c < k; c++) {
      double wc = w ? w[c] : 1.0;
      double q = eps / k * wc + (c == y[i] ? (1.0 - eps) * wc : 0.0);
      ce -= q * (z[c] - zmax - log (total));
    }
    double pt = exp (z[y[i]] - zmax) / total;
    sum += ce * (gamma > 0.0 ? pow (1.0 - pt, gamma) : 1.0);
    weight_sum += w ? w[y[i]] : 1.0;
  }
  return sum / weight_sum;
}

/* A config of k classes (small stem, fc head) with this criterion. */
static fer_train_config
criterion_config (int k, const float *weights, float smoothing, float gamma)
{
  fer_arch arch = {
    .stem = FER_STEM_SMALL, .head = FER_HEAD_FC, .channels = 1, .n_classes = k
  };
  fer_train_config cfg;
  fer_train_config_init (&cfg, &arch);
  cfg.class_weights = weights;
  cfg.label_smoothing = smoothing;
  cfg.focal_gamma = gamma;
  return cfg;
}

/* A one-thread CPU trainer of cfg's criterion on size x size inputs,
 * seed 4 (cfg's input size, backend, threads and seed are set here). */
static fer_trainer *
small_trainer (fer_train_config *cfg, int size)
{
  cfg->input_size = size;
  cfg->backend = FER_BACKEND_CPU;
  cfg->threads = 1;
  cfg->seed = 4;
  GError *error = NULL;
  fer_trainer *t = fer_trainer_new (cfg, NULL, &error);
  g_assert_no_error (error);
  return t;
}

static void
random_batch (fer_rng *rng, float *logits, int *y, int n, int k, float scale)
{
  for (int i = 0; i < n * k; i++)
    logits[i] = scale * fer_rng_normal (rng);
  for (int i = 0; i < n; i++)
    y[i] = (int) fer_rng_below (rng, (uint32_t) k);
}

static void
test_against_naive (void)
{
  static const float weights[K] = { 1.0f, 9.4f, 0.97f, 0.57f, 0.83f, 1.5f,
    0.0f };
  static const struct
  {
    const char *name;
    gboolean weighted;
    float smoothing, gamma, scale;
  } cases[] = {
    { "plain", FALSE, 0.0f, 0.0f, 2.0f },
    { "weighted", TRUE, 0.0f, 0.0f, 2.0f },
    { "smoothed", FALSE, 0.1f, 0.0f, 2.0f },
    { "weighted, smoothed", TRUE, 0.1f, 0.0f, 2.0f },
    { "weighted, smoothed, focal 2", TRUE, 0.1f, 2.0f, 2.0f },
    { "focal 0.5", FALSE, 0.0f, 0.5f, 1.0f },
    { "weighted, smoothed, logits x 40", TRUE, 0.2f, 0.0f, 40.0f },
  };
  float logits[N * K];
  int y[N];
  fer_rng rng;
  fer_rng_seed (&rng, 7);
  double worst = 0.0;
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    fer_train_config cfg = criterion_config (K,
        cases[c].weighted ? weights : NULL, cases[c].smoothing, cases[c].gamma);
    random_batch (&rng, logits, y, N, K, cases[c].scale);
    y[0] = 1; /* at least one target of non-zero weight */

    GError *error = NULL;
    double loss = NAN;
    g_assert_true (fer_train_loss (&cfg, logits, y, N, &loss, &error));
    g_assert_no_error (error);
    double ref = naive_loss (logits, y, N, K, cfg.class_weights,
        cfg.label_smoothing, cfg.focal_gamma);
    double err = fabs (loss - ref) / fmax (1.0, fabs (ref));
    g_test_message ("%s: loss %.12g, naive %.12g, rel. error %.3g",
        cases[c].name, loss, ref, err);
    g_assert_true (isfinite (loss));
    g_assert_cmpfloat (err, <, 1e-12);
    worst = fmax (worst, err);
  }
  g_test_message ("max rel. error against the naive loss: %.3g", worst);
}

/* fer_trainer_step reports the loss of the logits it writes: the same
 * criterion, in float. */
static void
test_against_trainer_step (void)
{
  enum
  {
    S = 8,
    B = 6,
    C = 5
  };
  static const float weights[C] = { 0.5f, 2.0f, 1.0f, 0.8f, 3.0f };
  fer_train_config cfg = criterion_config (C, weights, 0.1f, 1.5f);
  GError *error = NULL;
  fer_trainer *t = small_trainer (&cfg, S);
  float x[B * S * S], logits[B * C], step_loss = NAN;
  int y[B] = { 0, 1, 2, 3, 4, 1 };
  fer_rng rng;
  fer_rng_seed (&rng, 9);
  for (int i = 0; i < B * S * S; i++)
    x[i] = fer_rng_normal (&rng);
  g_assert_true (
      fer_trainer_step (t, x, y, NULL, 1.0f, B, &step_loss, logits, &error));
  g_assert_no_error (error);
  fer_trainer_free (t);

  double loss = NAN;
  g_assert_true (fer_train_loss (&cfg, logits, y, B, &loss, &error));
  g_assert_no_error (error);
  double err = fabs (loss - step_loss) / fmax (1.0, fabs (loss));
  g_test_message ("fer_trainer_step %.9g, fer_train_loss %.12g, rel. error "
                  "%.3g",
      (double) step_loss, loss, err);
  g_assert_cmpfloat (err, <, 1e-6);
}

/* fer_trainer_step_distill: at weight 0 it is fer_trainer_step bit for bit;
 * at weight 1 with one-hot targets and a plain criterion it is the same
 * loss and the same step as the labels alone (to float rounding); at 0.5
 * with soft targets the reported loss is the mix of fer_train_loss and the
 * targets' cross-entropy on the returned logits; bad targets are refused,
 * naming the sample. */
static fer_trainer *
distill_trainer (float smoothing)
{
  fer_train_config cfg = criterion_config (5, NULL, smoothing, 0.0f);
  return small_trainer (&cfg, 8);
}

static double
params_difference (fer_trainer *a, fer_trainer *b)
{
  double worst = 0.0;
  for (int i = 0; i < fer_trainer_n_params (a); i++) {
    const int64_t numel = fer_trainer_param_numel (a, i);
    float *pa = g_new (float, numel), *pb = g_new (float, numel);
    g_assert_true (fer_trainer_param_get (a, i, pa, NULL));
    g_assert_true (fer_trainer_param_get (b, i, pb, NULL));
    for (int64_t j = 0; j < numel; j++)
      worst = fmax (worst, fabs ((double) pa[j] - pb[j]));
    g_free (pa);
    g_free (pb);
  }
  return worst;
}

static void
test_distill (void)
{
  enum
  {
    B = 6,
    C = 5,
    IN = 8 * 8
  };
  float x[B * IN], soft[B * C], onehot[B * C], logits[B * C];
  int y[B] = { 0, 1, 2, 3, 4, 1 };
  fer_rng rng;
  fer_rng_seed (&rng, 9);
  for (int i = 0; i < B * IN; i++)
    x[i] = fer_rng_normal (&rng);
  for (int i = 0; i < B; i++) {
    double sum = 0.0;
    for (int c = 0; c < C; c++)
      sum += soft[i * C + c] = 0.05f + (float) fer_rng_uniform (&rng);
    for (int c = 0; c < C; c++) {
      soft[i * C + c] = (float) (soft[i * C + c] / sum);
      onehot[i * C + c] = c == y[i] ? 1.0f : 0.0f;
    }
  }
  GError *error = NULL;
  float la = NAN, lb = NAN;

  /* weight 0: the plain step, bit for bit */
  fer_trainer *a = distill_trainer (0.1f), *b = distill_trainer (0.1f);
  g_assert_true (fer_trainer_step (a, x, y, NULL, 1.0f, B, &la, NULL, &error));
  g_assert_true (fer_trainer_step_distill (
      b, x, y, NULL, 1.0f, soft, 0.0f, B, &lb, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (la, ==, lb);
  g_assert_cmpfloat (params_difference (a, b), ==, 0.0);
  fer_trainer_free (a);
  fer_trainer_free (b);

  /* weight 1, one-hot targets, no smoothing: the labels' step */
  a = distill_trainer (0.0f);
  b = distill_trainer (0.0f);
  g_assert_true (fer_trainer_step (a, x, y, NULL, 1.0f, B, &la, NULL, &error));
  g_assert_true (fer_trainer_step_distill (
      b, x, y, NULL, 1.0f, onehot, 1.0f, B, &lb, NULL, &error));
  g_assert_no_error (error);
  double dp = params_difference (a, b);
  g_test_message ("one-hot targets at weight 1: loss %.9g vs %.9g, max "
                  "parameter difference after the step %.3g",
      (double) la, (double) lb, dp);
  g_assert_cmpfloat (fabs (la - lb), <, 1e-6 * fmax (1.0, fabs (la)));
  g_assert_cmpfloat (dp, <, 1e-6);
  fer_trainer_free (a);
  fer_trainer_free (b);

  /* weight 0.5: the reported loss mixes the two criteria */
  fer_train_config cfg = criterion_config (C, NULL, 0.1f, 0.0f);
  b = distill_trainer (0.1f);
  g_assert_true (fer_trainer_step_distill (
      b, x, y, NULL, 1.0f, soft, 0.5f, B, &lb, logits, &error));
  g_assert_no_error (error);
  double hard = NAN, ce = 0.0;
  g_assert_true (fer_train_loss (&cfg, logits, y, B, &hard, &error));
  for (int i = 0; i < B; i++) {
    const float *z = logits + i * C;
    double lse = 0.0;
    for (int c = 0; c < C; c++)
      lse += exp (z[c]);
    lse = log (lse);
    for (int c = 0; c < C; c++)
      ce -= soft[i * C + c] * (z[c] - lse) / B;
  }
  const double want = 0.5 * hard + 0.5 * ce;
  g_test_message ("weight 0.5: step loss %.9g, 0.5 x %.9g + 0.5 x %.9g = "
                  "%.9g, rel. error %.3g",
      (double) lb, hard, ce, want, fabs (lb - want) / want);
  g_assert_cmpfloat (fabs (lb - want) / want, <, 1e-6);

  /* bad targets: refused before the step, naming what is wrong */
  float bad[B * C];
  memcpy (bad, soft, sizeof bad);
  bad[3 * C + 2] += 0.1f;
  g_assert_false (fer_trainer_step_distill (
      b, x, y, NULL, 1.0f, bad, 0.5f, B, &lb, NULL, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "sample 3 sum to"));
  g_clear_error (&error);
  bad[3 * C + 2] = NAN;
  g_assert_false (fer_trainer_step_distill (
      b, x, y, NULL, 1.0f, bad, 0.5f, B, &lb, NULL, &error));
  g_assert_nonnull (strstr (error->message, "soft target [3][2] = nan"));
  g_clear_error (&error);
  g_assert_false (fer_trainer_step_distill (
      b, x, y, NULL, 1.0f, soft, 1.5f, B, &lb, NULL, &error));
  g_assert_nonnull (strstr (error->message, "weight 1.5"));
  g_clear_error (&error);
  g_assert_false (fer_trainer_step_distill (
      b, x, y, NULL, 1.0f, NULL, 0.5f, B, &lb, NULL, &error));
  g_assert_nonnull (strstr (error->message, "without targets"));
  g_clear_error (&error);
  fer_trainer_free (b);
}

static void
test_edges (void)
{
  static const float weights[3] = { 0.0f, 1.0f, 2.0f };
  fer_train_config cfg = criterion_config (3, NULL, 0.0f, 0.0f);
  const float logits[6] = { 1.0f, 2.0f, 3.0f, -1.0f, 0.0f, 1.0f };
  GError *error = NULL;
  double loss = 0.0;

  g_assert_true (fer_train_loss (&cfg, logits, NULL, 0, &loss, &error));
  g_assert_true (isnan (loss));

  cfg.class_weights = weights;
  const int zero_weight[2] = { 0, 0 };
  g_assert_true (fer_train_loss (&cfg, logits, zero_weight, 2, &loss, &error));
  g_assert_true (isnan (loss));

  const int bad[2] = { 1, 3 };
  g_assert_false (fer_train_loss (&cfg, logits, bad, 2, &loss, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "sample 1 has label 3"));
  g_clear_error (&error);

  g_assert_false (fer_train_loss (&cfg, logits, bad, -1, &loss, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/train-loss/naive", test_against_naive);
  g_test_add_func ("/train-loss/trainer-step", test_against_trainer_step);
  g_test_add_func ("/train-loss/edges", test_edges);
  g_test_add_func ("/train-loss/distill", test_distill);
  return g_test_run ();
}
