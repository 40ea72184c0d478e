/* The optimizer steps (Adam with L2 decay, AdamW, SGD with Nesterov
 * momentum) over several steps, the weights' moving average, and the zeroing of gradients and moments,
 * CUDA against CPU (cuda-op-test.h). */
#include "cuda-op-test.h"

static void
test_optimizers (void)
{
  const size_t n = 50021;
  float *p = host_random (n, 1.0f), *m = host_random (n, 0.1f);
  float *v = host_random (n, 0.1f), *g = host_random (n, 1.0f);
  for (size_t i = 0; i < n; i++)
    v[i] = fabsf (v[i]);
  float *d_p = dev (p, n), *d_m = dev (m, n), *d_v = dev (v, n);
  float *d_g = dev (g, n);
  GError *e_ = NULL;

  for (int step = 1; step <= 3; step++) {
    OK (cpu->ops->adam_update (cpu, p, m, v, g, n, 1e-3f, 0.9f, 0.999f, 1e-8f,
        1e-2f, step, FALSE, &e_));
    OK (gpu->ops->adam_update (gpu, d_p, d_m, d_v, d_g, n, 1e-3f, 0.9f, 0.999f,
        1e-8f, 1e-2f, step, FALSE, &e_));
  }
  check ("adam_update (L2) params, 3 steps", p, d_p, n, TOL_EXACT);
  check ("adam_update (L2) m", m, d_m, n, TOL_EXACT);
  check ("adam_update (L2) v", v, d_v, n, TOL_EXACT);
  for (int step = 4; step <= 5; step++) {
    OK (cpu->ops->adam_update (cpu, p, m, v, g, n, 1e-3f, 0.9f, 0.999f, 1e-8f,
        5e-2f, step, TRUE, &e_));
    OK (gpu->ops->adam_update (gpu, d_p, d_m, d_v, d_g, n, 1e-3f, 0.9f, 0.999f,
        1e-8f, 5e-2f, step, TRUE, &e_));
  }
  check ("adam_update (AdamW) params", p, d_p, n, TOL_EXACT);
  for (int step = 0; step < 3; step++) {
    OK (cpu->ops->sgd_update (
        cpu, p, m, g, n, 1e-2f, 0.9f, 1e-4f, TRUE, step == 0, &e_));
    OK (gpu->ops->sgd_update (
        gpu, d_p, d_m, d_g, n, 1e-2f, 0.9f, 1e-4f, TRUE, step == 0, &e_));
  }
  check ("sgd_update (Nesterov) params", p, d_p, n, TOL_EXACT);
  check ("sgd_update (Nesterov) buf", m, d_m, n, TOL_EXACT);
  /* the weights' average of p into v (any two buffers do) */
  for (int step = 0; step < 3; step++) {
    const float decay = step == 0 ? 0.1f : 0.999f;
    OK (cpu->ops->ema_update (cpu, v, p, n, decay, &e_));
    OK (gpu->ops->ema_update (gpu, d_v, d_p, n, decay, &e_));
  }
  check ("ema_update, 3 steps", v, d_v, n, TOL_EXACT);
  OK (cpu->ops->zero (cpu, g, n, &e_));
  OK (gpu->ops->zero (gpu, d_g, n, &e_));
  check ("zero", g, d_g, n, TOL_EXACT);

  float *dbufs[] = { d_p, d_m, d_v, d_g };
  for (guint i = 0; i < G_N_ELEMENTS (dbufs); i++)
    gpu->ops->release (gpu, dbufs[i]);
  g_free (p);
  g_free (m);
  g_free (v);
  g_free (g);
}

int
main (void)
{
  cuda_op_test_begin (2024);
  test_optimizers ();
  return cuda_op_test_end ();
}
