/* One face's test-time-augmentation average, shared by the CPU backend
 * (cpu/softmax.c) and the CUDA kernel (cuda/softmax.cu) so that both
 * compute the same formula in the same order, as xent-row.h does for the
 * loss: p (k) = the mean over `views` consecutive rows of z (views, k) of
 * softmax(z_v), each row max-subtracted so that large logits do not
 * overflow, its exponentials and their sum in double, each term rounded to
 * float and added up in view order. Plain C for gcc, and CUDA for nvcc. */
#ifndef FER_SOFTMAX_AVERAGE_H
#define FER_SOFTMAX_AVERAGE_H

#include <math.h>
#include <stddef.h>

#ifdef __CUDACC__
#define FER_SOFTMAX_FN static __host__ __device__ inline
#else
#define FER_SOFTMAX_FN static inline
#endif

FER_SOFTMAX_FN void
fer_softmax_average_face (float *p, const float *z, int views, int k)
{
  for (int j = 0; j < k; j++)
    p[j] = 0.0f;
  for (int v = 0; v < views; v++, z += k) {
    float mx = z[0];
    double sum = 0.0;
    for (int j = 1; j < k; j++)
      mx = mx > z[j] ? mx : z[j];
    for (int j = 0; j < k; j++)
      sum += exp ((double) z[j] - mx);
    for (int j = 0; j < k; j++)
      p[j] += (float) (exp ((double) z[j] - mx) / sum / views);
  }
}

#endif
