/* The per-face average of the views' softmax that ends every
 * classification, CUDA against CPU (cuda-op-test.h): one view (a plain row
 * softmax), a few and the most views per face, one face and a chunk's
 * worth, logits large enough to overflow a naive exp. The probabilities
 * come back to host memory, so they are compared here rather than by
 * check(). */
#include "cuda-op-test.h"

static void
softmax_case (int n_faces, int views, float scale)
{
  const int k = 7;
  const size_t n_logits = (size_t) n_faces * views * k;
  float *z = host_random (n_logits, scale), *d_z = dev (z, n_logits);
  float *pc = g_new (float, (size_t) n_faces *k);
  float *pg = g_new (float, (size_t) n_faces *k);
  GError *e_ = NULL;
  char name[96];

  OK (cpu->ops->softmax_average (cpu, pc, z, n_faces, views, k, &e_));
  OK (gpu->ops->softmax_average (gpu, pg, d_z, n_faces, views, k, &e_));
  double e = normalised_error (pc, pg, (size_t) n_faces * k);
  gboolean ok = e <= TOL_EXACT;
  g_snprintf (name, sizeof name,
      "softmax_average %d faces x %d views, "
      "logits x%g",
      n_faces, views, scale);
  printf ("%-4s %-44s normalised error %.3g (tolerance %.0e)\n",
      ok ? "ok" : "FAIL", name, e, TOL_EXACT);
  failures += !ok;
  gpu->ops->release (gpu, d_z);
  g_free (z);
  g_free (pc);
  g_free (pg);
}

int
main (void)
{
  cuda_op_test_begin (2024);
  softmax_case (1, 1, 1.0f);
  softmax_case (300, 1, 3.0f);
  softmax_case (64, 5, 3.0f);
  softmax_case (51, 10, 3.0f);
  softmax_case (8, 5, 1000.0f);
  return cuda_op_test_end ();
}
