/* The CPU optimizer steps (cpu/optimizer.c): Adam, Adam with L2 weight
 * decay, AdamW, SGD with and without momentum, weight decay and Nesterov,
 * each over several steps against a naive double-precision reference
 * written from torch.optim's documentation; the weights' moving average
 * over many steps (rounding must not accumulate) against the same in
 * double. Every case prints its max error. */
#include <math.h>
#include <stdio.h>

#include <fer/rng.h>
#include "cpu/ops.h"
#include "test-util.h"

#define REF_TOL 1e-5

static fer_rng rng;

typedef struct
{
  const char *name;
  int kind; /* 0 Adam, 1 AdamW, 2 SGD */
  float wd, momentum;
  gboolean nesterov;
} opt_case;

static void
check_optimizer (gconstpointer data)
{
  const opt_case *oc = data;
  const size_t n = 257;
  const int steps = 6;
  const float lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  float *p = test_random_floats (&rng, n, 1.0f), *m = g_new0 (float, n),
        *v = g_new0 (float, n), *g = g_new (float, n);
  double *rp = g_new (double, n), *rm = g_new0 (double, n),
         *rv = g_new0 (double, n);
  double err = 0.0;
  for (size_t i = 0; i < n; i++)
    rp[i] = p[i];

  for (int t = 1; t <= steps; t++) {
    for (size_t i = 0; i < n; i++)
      g[i] = fer_rng_normal (&rng) * (i % 3 ? 1.0f : 1e-3f);
    if (oc->kind == 2)
      fer_cpu_sgd_update (
          p, m, g, n, lr, oc->momentum, oc->wd, oc->nesterov, t == 1);
    else
      fer_cpu_adam_update (
          p, m, v, g, n, lr, b1, b2, eps, oc->wd, t, oc->kind == 1);
    /* the reference, straight from torch.optim's documentation */
    for (size_t i = 0; i < n; i++) {
      double gi = g[i];
      if (oc->kind == 1) {
        rp[i] *= 1.0 - (double) lr * oc->wd;
      } else {
        gi += (double) oc->wd * rp[i];
      }
      if (oc->kind == 2) {
        if (oc->momentum != 0.0f) {
          rm[i] = t == 1 ? gi : oc->momentum * rm[i] + gi;
          gi = oc->nesterov ? gi + oc->momentum * rm[i] : rm[i];
        }
        rp[i] -= lr * gi;
      } else {
        rm[i] = b1 * rm[i] + (1.0 - b1) * gi;
        rv[i] = b2 * rv[i] + (1.0 - b2) * gi * gi;
        double mhat = rm[i] / (1.0 - pow (b1, t));
        double vhat = rv[i] / (1.0 - pow (b2, t));
        rp[i] -= lr * mhat / (sqrt (vhat) + eps);
      }
    }
  }
  for (size_t i = 0; i < n; i++)
    err = fmax (err, fabs (p[i] - rp[i]) / (1.0 + fabs (rp[i])));
  g_printerr ("# %-40s %d steps: max |p - p_ref| / (1 + |p_ref|) = %.2e\n",
      oc->name, steps, err);
  g_assert_cmpfloat (err, <, REF_TOL);
  g_free (p);
  g_free (m);
  g_free (v);
  g_free (g);
  g_free (rp);
  g_free (rm);
  g_free (rv);
}

/* 2000 steps of ema += (1 - decay) (x - ema) on a drifting x, decays from
 * the warm-up's 0.1 to 0.9999: float accumulates no more than a few ulps
 * per step relative to the double reference. */
static void
check_ema (void)
{
  const size_t n = 129;
  const float decays[] = { 0.1f, 0.9f, 0.999f, 0.9999f };
  float *x = test_random_floats (&rng, n, 1.0f), *ema = g_new (float, n);
  double *ref = g_new (double, n);
  for (guint d = 0; d < G_N_ELEMENTS (decays); d++) {
    double err = 0.0;
    for (size_t i = 0; i < n; i++)
      ema[i] = ref[i] = x[i];
    for (int step = 0; step < 2000; step++) {
      for (size_t i = 0; i < n; i++)
        x[i] += 0.01f * fer_rng_normal (&rng);
      fer_cpu_ema_update (ema, x, n, decays[d]);
      for (size_t i = 0; i < n; i++)
        ref[i] += (1.0 - (double) decays[d]) * (x[i] - ref[i]);
    }
    for (size_t i = 0; i < n; i++)
      err = fmax (err, fabs (ema[i] - ref[i]) / (1.0 + fabs (ref[i])));
    g_printerr ("# ema decay %-8g 2000 steps: max |ema - ema_ref| / "
                "(1 + |ema_ref|) = %.2e\n",
        (double) decays[d], err);
    g_assert_cmpfloat (err, <, REF_TOL);
  }
  g_free (x);
  g_free (ema);
  g_free (ref);
}

int
main (int argc, char **argv)
{
  static const opt_case opts[] = {
    { "adam", 0, 0.0f, 0.0f, FALSE },
    { "adam weight_decay 0.1 (L2)", 0, 0.1f, 0.0f, FALSE },
    { "adamw weight_decay 0.1 (decoupled)", 1, 0.1f, 0.0f, FALSE },
    { "sgd", 2, 0.0f, 0.0f, FALSE },
    { "sgd momentum 0.9 weight_decay 0.01", 2, 0.01f, 0.9f, FALSE },
    { "sgd nesterov momentum 0.9", 2, 0.0f, 0.9f, TRUE },
  };
  char name[96];

  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 12345);
  for (guint i = 0; i < G_N_ELEMENTS (opts); i++) {
    snprintf (name, sizeof name, "/optimizer/%u", i);
    g_test_add_data_func (name, &opts[i], check_optimizer);
  }
  g_test_add_func ("/optimizer/ema", check_ema);
  return g_test_run ();
}
