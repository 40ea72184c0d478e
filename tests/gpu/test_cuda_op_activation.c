/* ReLU backward, the residual add and dropout, out of place and in place
 * as the trainer calls them, CUDA against CPU (cuda-op-test.h). */
#include "cuda-op-test.h"

static void
test_activation (void)
{
  const size_t n = 100003;
  float *a = host_random (n, 1.0f), *b = host_random (n, 1.0f);
  float *mask = g_new (float, n), *out = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    mask[i] = fer_rng_uniform (&rng) < 0.5f ? 0.0f : 2.0f;
  float *d_a = dev (a, n), *d_b = dev (b, n), *d_m = dev (mask, n);
  float *d_out = dev_zeros (n);
  GError *e_ = NULL;

  OK (cpu->ops->relu_backward (cpu, out, a, b, n, &e_));
  OK (gpu->ops->relu_backward (gpu, d_out, d_a, d_b, n, &e_));
  check ("relu_backward", out, d_out, n, TOL_EXACT);
  OK (cpu->ops->add (cpu, out, a, b, n, &e_));
  OK (gpu->ops->add (gpu, d_out, d_a, d_b, n, &e_));
  check ("add", out, d_out, n, TOL_EXACT);
  OK (cpu->ops->dropout_forward (cpu, out, a, mask, n, &e_));
  OK (gpu->ops->dropout_forward (gpu, d_out, d_a, d_m, n, &e_));
  check ("dropout_forward", out, d_out, n, TOL_EXACT);
  OK (cpu->ops->dropout_backward (cpu, out, b, mask, n, &e_));
  OK (gpu->ops->dropout_backward (gpu, d_out, d_b, d_m, n, &e_));
  check ("dropout_backward", out, d_out, n, TOL_EXACT);
  /* in place, as the trainer calls them */
  OK (cpu->ops->relu_backward (cpu, a, a, b, n, &e_));
  OK (gpu->ops->relu_backward (gpu, d_a, d_a, d_b, n, &e_));
  check ("relu_backward in place", a, d_a, n, TOL_EXACT);
  OK (cpu->ops->add (cpu, a, a, b, n, &e_));
  OK (gpu->ops->add (gpu, d_a, d_a, d_b, n, &e_));
  check ("add in place", a, d_a, n, TOL_EXACT);

  float *dbufs[] = { d_a, d_b, d_m, d_out };
  for (guint i = 0; i < G_N_ELEMENTS (dbufs); i++)
    gpu->ops->release (gpu, dbufs[i]);
  g_free (a);
  g_free (b);
  g_free (mask);
  g_free (out);
}

int
main (void)
{
  cuda_op_test_begin (2024);
  test_activation ();
  return cuda_op_test_end ();
}
