/* Softmax CUDA kernel: the per-face average of the probabilities of a
 * face's test-time-augmented views, a thread per face (a batch holds a few
 * hundred views of a few classes), with the CPU backend's arithmetic
 * (softmax-average.h), so that only the averages come back to the host. */
#include "kernels.h"
#include "softmax-average.h"

static __global__ void
softmax_average_kernel (
    float *probs, const float *logits, int n_faces, int views, int k)
{
  FER_CUDA_GRID_STRIDE (f, (size_t) n_faces)
  fer_softmax_average_face (probs + f * k, logits + f * views * k, views, k);
}

extern "C" cudaError_t
fer_cuda_softmax_average (cudaStream_t stream, float *probs,
    const float *logits, int n_faces, int views, int k)
{
  FER_CUDA_LAUNCH (softmax_average_kernel, (size_t) n_faces, stream, probs,
      logits, n_faces, views, k);
}
