/* Max-pool and global average pool, forward and backward, CUDA against
 * CPU (cuda-op-test.h), with ReLU-like ties in the max-pool windows. */
#include "cuda-op-test.h"

static void
test_pooling (void)
{
  const int n = 3, h = 24, w = 23, c = 64, hw = 36;
  const int oh = (h + 2 - 3) / 2 + 1, ow = (w + 2 - 3) / 2 + 1;
  size_t ni = (size_t) n * h * w * c, no = (size_t) n * oh * ow * c;
  float *x = host_random (ni, 1.0f), *dy = host_random (no, 1.0f);
  GError *e_ = NULL;
  /* ReLU-like ties: a third of the inputs exactly 0 */
  for (size_t i = 0; i < ni; i += 3)
    x[i] = 0.0f;
  float *out = g_new (float, no), *dx = g_new (float, ni);
  float *d_x = dev (x, ni), *d_out = dev_zeros (no), *d_dy = dev (dy, no);
  float *d_dx = dev_zeros (ni);
  OK (cpu->ops->maxpool2d_forward (cpu, out, x, n, h, w, c, 3, 2, 1, &e_));
  OK (gpu->ops->maxpool2d_forward (gpu, d_out, d_x, n, h, w, c, 3, 2, 1, &e_));
  check ("maxpool2d_forward 3x3/2", out, d_out, no, TOL_EXACT);
  OK (cpu->ops->maxpool2d_backward (cpu, dx, dy, x, n, h, w, c, 3, 2, 1, &e_));
  OK (gpu->ops->maxpool2d_backward (
      gpu, d_dx, d_dy, d_x, n, h, w, c, 3, 2, 1, &e_));
  check ("maxpool2d_backward (ties)", dx, d_dx, ni, TOL_EXACT);

  float *feat = g_new (float, n *c), *d_feat = dev_zeros (n * c);
  OK (cpu->ops->avgpool_forward (cpu, feat, x, n, hw, c, &e_));
  OK (gpu->ops->avgpool_forward (gpu, d_feat, d_x, n, hw, c, &e_));
  check ("avgpool_forward", feat, d_feat, (size_t) n * c, TOL_EXACT);
  float *dfeat = host_random (n * c, 1.0f), *d_dfeat = dev (dfeat, n * c);
  OK (cpu->ops->avgpool_backward (cpu, dx, dfeat, n, hw, c, &e_));
  OK (gpu->ops->avgpool_backward (gpu, d_dx, d_dfeat, n, hw, c, &e_));
  check ("avgpool_backward", dx, d_dx, (size_t) n * hw * c, TOL_EXACT);

  float *dbufs[] = { d_x, d_out, d_dy, d_dx, d_feat, d_dfeat };
  for (guint i = 0; i < G_N_ELEMENTS (dbufs); i++)
    gpu->ops->release (gpu, dbufs[i]);
  float *hbufs[] = { x, dy, out, dx, feat, dfeat };
  for (guint i = 0; i < G_N_ELEMENTS (hbufs); i++)
    g_free (hbufs[i]);
}

int
main (void)
{
  cuda_op_test_begin (2024);
  test_pooling ();
  return cuda_op_test_end ();
}
