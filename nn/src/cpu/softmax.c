/* Softmax on the CPU: the per-face average of the probabilities of a
 * face's test-time-augmented views, which every classification ends with
 * (fer_model_classify; the arithmetic is softmax-average.h's, shared with
 * the CUDA kernel), and the backend table's entry for it. The training
 * loss differentiates through its own log-softmax (loss.c). */
#include "cpu/backend_cpu.h"
#include "softmax-average.h"

void
fer_cpu_softmax_average (
    float *probs, const float *logits, int n_faces, int views, int k)
{
  for (int f = 0; f < n_faces; f++)
    fer_softmax_average_face (
        probs + (size_t) f * k, logits + (size_t) f * views * k, views, k);
}

gboolean
fer_cpu_op_softmax_average (fer_backend *be, float *probs, const float *logits,
    int n_faces, int views, int k, GError **error)
{
  fer_cpu_softmax_average (probs, logits, n_faces, views, k);
  return TRUE;
}
