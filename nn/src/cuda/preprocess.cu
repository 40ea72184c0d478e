/* Face-crop preprocessing on the device: fer_preprocess (nn/src/
 * preprocess.c) for a batch of views of one frame, written straight into
 * the network's NHWC input, a thread per value. The host side (cuda/
 * preprocess.c) validates, computes the views' filter taps (one set per
 * distinct axis) with nn/src/preprocess.c's own code and uploads the
 * frame's planes once; the arithmetic is in preprocess-math.h, which a
 * CPU test checks against fer_preprocess. */
#include "kernels.h"
#include "plan.h"
#include "preprocess-math.h"

static __global__ void
preprocess_kernel (float *out, fer_cuda_frame f, const unsigned char *data,
    fer_cuda_taps taps, int n, int S, int C, fer_cuda_norm norm)
{
  const size_t total = (size_t) n * S * S * C;
  for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t) gridDim.x * blockDim.x) {
    const int c = (int) (i % C);
    const int ox = (int) (i / C % S), oy = (int) (i / C / S % S);
    const int v = (int) (i / ((size_t) C * S * S));
    out[i] = fer_pp_value (&f, data, &taps, S, C, &norm, v, oy, ox, c);
  }
}

extern "C" cudaError_t
fer_cuda_preprocess (cudaStream_t stream, float *out,
    const fer_cuda_frame *frame, const unsigned char *data,
    const fer_cuda_taps *taps, int n, int S, int C, const fer_cuda_norm *norm)
{
  const size_t total = (size_t) n * S * S * C;
  if (total > 0)
    preprocess_kernel<<<fer_cuda_blocks (total), FER_CUDA_THREADS, 0,
        stream>>> (out, *frame, data, *taps, n, S, C, *norm);
  return cudaGetLastError ();
}
