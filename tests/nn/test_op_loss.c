/* The CPU training loss (cpu/loss.c): the value against the formula
 * written out naively here (log-softmax, class weights, label smoothing,
 * the focal factor, mixup, distillation targets), and the gradient against
 * central finite differences of the value. Every case prints its errors. Contract checked
 * on the way: dlogits is overwritten. */
#include <math.h>
#include <stdio.h>

#include <fer/rng.h>
#include "cpu/ops.h"
#include "test-util.h"

#define REF_TOL 1e-5

static fer_rng rng;

typedef struct
{
  int n, k;
  float *logits, *w;
  int *ya, *yb;
  float lam, smoothing, gamma;
  float *soft, soft_weight; /* n x k target distributions, or NULL */
} loss_ctx;

/* The definition, per label set: log-softmax, PyTorch's weighted,
 * label-smoothed cross-entropy per sample, the focal factor, divided by
 * the sum of the targets' weights. */
static double
naive_term (const loss_ctx *l, const int *y)
{
  double total = 0.0, wsum = 0.0;
  for (int i = 0; i < l->n; i++) {
    const float *z = l->logits + (size_t) i * l->k;
    double lse = 0.0, logp[16];
    for (int j = 0; j < l->k; j++)
      lse += exp (z[j]);
    lse = log (lse);
    for (int j = 0; j < l->k; j++)
      logp[j] = z[j] - lse;
    double w_t = l->w ? l->w[y[i]] : 1.0;
    double nll = -w_t * logp[y[i]], smooth = 0.0;
    for (int j = 0; j < l->k; j++)
      smooth -= (l->w ? l->w[j] : 1.0) * logp[j];
    double ce = (1 - l->smoothing) * nll + l->smoothing / l->k * smooth;
    total += ce * pow (1.0 - exp (logp[y[i]]), l->gamma);
    wsum += w_t;
  }
  return total / wsum;
}

/* Distillation: the mean over samples of -sum_c q_c log p_c. */
static double
naive_soft (const loss_ctx *l)
{
  double total = 0.0;
  for (int i = 0; i < l->n; i++) {
    const float *z = l->logits + (size_t) i * l->k;
    double lse = 0.0;
    for (int j = 0; j < l->k; j++)
      lse += exp (z[j]);
    lse = log (lse);
    for (int j = 0; j < l->k; j++)
      total -= l->soft[(size_t) i * l->k + j] * (z[j] - lse);
  }
  return total / l->n;
}

static double
naive_loss (const loss_ctx *l)
{
  double hard = !l->yb
      ? naive_term (l, l->ya)
      : l->lam * naive_term (l, l->ya) + (1 - l->lam) * naive_term (l, l->yb);
  if (!l->soft)
    return hard;
  return (1 - l->soft_weight) * hard + l->soft_weight * naive_soft (l);
}

static double
loss_value (void *p)
{
  loss_ctx *l = p;
  float loss;
  fer_cpu_softmax_xent (&loss, NULL, l->logits, l->ya, l->yb, l->lam, l->w,
      l->n, l->k, l->smoothing, l->gamma, l->soft, l->soft_weight);
  return loss;
}

typedef struct
{
  const char *name;
  gboolean weights, mixup;
  float smoothing, gamma;
  float soft_weight; /* > 0: random target distributions */
} loss_case;

static void
check_loss (gconstpointer data)
{
  const loss_case *lc = data;
  loss_ctx l = { .n = 6, .k = 5 };
  int ya[6] = { 0, 3, 1, 4, 3, 2 }, yb[6] = { 2, 2, 0, 1, 4, 3 };
  float w[5] = { 0.5f, 2.0f, 1.0f, 0.8f, 1.3f };
  char what[96];
  l.logits = test_random_floats (&rng, (size_t) l.n * l.k, 1.5f);
  l.w = lc->weights ? w : NULL;
  l.ya = ya;
  l.yb = lc->mixup ? yb : NULL;
  l.lam = 0.65f;
  l.smoothing = lc->smoothing;
  l.gamma = lc->gamma;
  if (lc->soft_weight > 0) {
    l.soft = test_random_floats (&rng, (size_t) l.n * l.k, 1.0f);
    for (int i = 0; i < l.n; i++) {
      double sum = 0.0;
      for (int j = 0; j < l.k; j++)
        sum += l.soft[i * l.k + j] = fabsf (l.soft[i * l.k + j]) + 0.01f;
      for (int j = 0; j < l.k; j++)
        l.soft[i * l.k + j] = (float) (l.soft[i * l.k + j] / sum);
    }
    l.soft_weight = lc->soft_weight;
  }
  float loss, *d = g_new (float, (size_t) l.n *l.k);
  for (int i = 0; i < l.n * l.k; i++)
    d[i] = 1e6f; /* overwritten */

  fer_cpu_softmax_xent (&loss, d, l.logits, l.ya, l.yb, l.lam, l.w, l.n, l.k,
      l.smoothing, l.gamma, l.soft, l.soft_weight);
  double ref = naive_loss (&l);
  double rel = fabs (loss - ref) / fabs (ref);
  g_printerr ("# loss %-40s value %.6f, naive %.6f, relative error %.2e\n",
      lc->name, loss, ref, rel);
  g_assert_cmpfloat (rel, <, REF_TOL);
  snprintf (what, sizeof what, "loss %s: dlogits", lc->name);
  test_fd_check (what, l.logits, (size_t) l.n * l.k, loss_value, &l, d, 0.0f);
  g_free (l.logits);
  g_free (l.soft);
  g_free (d);
}

int
main (int argc, char **argv)
{
  static const loss_case losses[] = {
    { "plain", FALSE, FALSE, 0.0f, 0.0f, 0.0f },
    { "weights", TRUE, FALSE, 0.0f, 0.0f, 0.0f },
    { "weights+smoothing", TRUE, FALSE, 0.1f, 0.0f, 0.0f },
    { "weights+smoothing+focal2", TRUE, FALSE, 0.1f, 2.0f, 0.0f },
    { "focal0.5", FALSE, FALSE, 0.0f, 0.5f, 0.0f },
    { "weights+smoothing+focal2+mixup", TRUE, TRUE, 0.1f, 2.0f, 0.0f },
    { "soft-only", FALSE, FALSE, 0.0f, 0.0f, 1.0f },
    { "soft0.7+weights+smoothing", TRUE, FALSE, 0.1f, 0.0f, 0.7f },
    { "soft0.5+weights+smoothing+focal2+mixup", TRUE, TRUE, 0.1f, 2.0f, 0.5f },
  };
  char name[96];

  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 12345);
  for (guint i = 0; i < G_N_ELEMENTS (losses); i++) {
    snprintf (name, sizeof name, "/loss/%s", losses[i].name);
    g_test_add_data_func (name, &losses[i], check_loss);
  }
  return g_test_run ();
}
