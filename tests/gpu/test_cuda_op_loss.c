/* The training loss and its gradient, plain, weighted, label-smoothed,
 * focal, with mixup and with distillation targets, CUDA against CPU
 * (cuda-op-test.h). */
#include "cuda-op-test.h"

static void
test_loss (void)
{
  const int n = 300, k = 7;
  float *z = host_random ((size_t) n * k, 3.0f);
  float wts[7] = { 1.0f, 9.4f, 1.0f, 0.6f, 0.8f, 0.9f, 1.2f };
  int *ya = g_new (int, n), *yb = g_new (int, n);
  for (int i = 0; i < n; i++) {
    ya[i] = (int) (fer_rng_uniform (&rng) * k) % k;
    yb[i] = (int) (fer_rng_uniform (&rng) * k) % k;
  }
  /* distillation targets: random distributions (host memory, as the op
   * takes them) */
  float *soft = host_random ((size_t) n * k, 1.0f);
  for (int i = 0; i < n; i++) {
    double sum = 0.0;
    for (int j = 0; j < k; j++)
      sum += soft[i * k + j] = fabsf (soft[i * k + j]) + 0.01f;
    for (int j = 0; j < k; j++)
      soft[i * k + j] = (float) (soft[i * k + j] / sum);
  }
  float *dz = g_new (float, (size_t) n *k);
  float *d_z = dev (z, (size_t) n * k), *d_w = dev (wts, k);
  float *d_dz = dev_zeros ((size_t) n * k);
  const struct
  {
    const char *name;
    gboolean weights, mixup;
    float smooth, gamma, soft_weight;
  } cases[] = {
    { "plain", FALSE, FALSE, 0.0f, 0.0f, 0.0f },
    { "weights + smoothing", TRUE, FALSE, 0.1f, 0.0f, 0.0f },
    { "weights + focal", TRUE, FALSE, 0.0f, 2.0f, 0.0f },
    { "mixup + smoothing + focal", TRUE, TRUE, 0.1f, 1.5f, 0.0f },
    { "soft 0.6 + mixup + smoothing", TRUE, TRUE, 0.1f, 0.0f, 0.6f },
    { "soft only", FALSE, FALSE, 0.0f, 0.0f, 1.0f },
  };
  GError *e_ = NULL;
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    float lc = 0.0f, lg = 0.0f;
    char name[96];
    OK (cpu->ops->softmax_xent (cpu, &lc, dz, z, ya, cases[c].mixup ? yb : NULL,
        0.3f, cases[c].weights ? wts : NULL, n, k, cases[c].smooth,
        cases[c].gamma, cases[c].soft_weight > 0 ? soft : NULL,
        cases[c].soft_weight, &e_));
    OK (gpu->ops->softmax_xent (gpu, &lg, d_dz, d_z, ya,
        cases[c].mixup ? yb : NULL, 0.3f, cases[c].weights ? d_w : NULL, n, k,
        cases[c].smooth, cases[c].gamma, cases[c].soft_weight > 0 ? soft : NULL,
        cases[c].soft_weight, &e_));
    g_snprintf (name, sizeof name, "softmax_xent loss (%s)", cases[c].name);
    double e = fabs ((double) lg - lc) / fmax (fabs (lc), 1e-30);
    gboolean ok = e <= TOL_EXACT;
    printf ("%-4s %-44s cpu %.9g gpu %.9g, normalised error %.3g\n",
        ok ? "ok" : "FAIL", name, lc, lg, e);
    failures += !ok;
    g_snprintf (name, sizeof name, "softmax_xent dlogits (%s)", cases[c].name);
    check (name, dz, d_dz, (size_t) n * k, TOL_EXACT);
  }
  gpu->ops->release (gpu, d_z);
  gpu->ops->release (gpu, d_w);
  gpu->ops->release (gpu, d_dz);
  g_free (z);
  g_free (ya);
  g_free (yb);
  g_free (soft);
  g_free (dz);
}

int
main (void)
{
  cuda_op_test_begin (2024);
  test_loss ();
  return cuda_op_test_end ();
}
