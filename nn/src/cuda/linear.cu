/* The linear layers' own CUDA kernel: the bias gradient, column sums of
 * dout added in row order as cpu/linear.c adds them. The products are
 * cuBLAS's (linear.c); the forward's bias and ReLU are activation.cu's
 * epilogue. */
#include "kernels.h"

static __global__ void
column_sums_kernel (float *sums, const float *x, int rows, int c)
{
  FER_CUDA_GRID_STRIDE (j, (size_t) c)
  {
    float s = sums[j];
    for (int r = 0; r < rows; r++)
      s += x[(size_t) r * c + j];
    sums[j] = s;
  }
}

extern "C" cudaError_t
fer_cuda_column_sums (
    cudaStream_t stream, float *sums, const float *x, int rows, int c)
{
  FER_CUDA_LAUNCH (column_sums_kernel, (size_t) c, stream, sums, x, rows, c);
}
