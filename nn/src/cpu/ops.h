/* CPU ops (private). One op family per file, forward (and, with training,
 * backward) side by side; argument order: outputs, inputs, then sizes.
 * Activations are NHWC; conv weights (Cout, KH, KW, Cin); linear weights
 * (out, in). Outputs are overwritten. */
#ifndef FER_CPU_OPS_H
#define FER_CPU_OPS_H

#include <stddef.h>
#include "backend.h"

typedef struct fer_cpu_workers fer_cpu_workers;

/* Conv weights are packed once (at load time) into panels of FER_CPU_NR
 * output channels, see cpu/gemm.h. Floats of the packed weight: */
size_t fer_cpu_conv2d_weight_floats (int cout, int k, int cin);
/* packed (fer_cpu_conv2d_weight_floats) from weight (Cout, K, K, Cin). */
void fer_cpu_conv2d_pack_weight (float *packed, const float *weight, int cout,
    int k, int cin);

/* The convolution's scratch (schedule and packed pixels per thread): grows
 * to the largest convolution seen, then is reused. */
typedef struct fer_cpu_conv_scratch fer_cpu_conv_scratch;
fer_cpu_conv_scratch *fer_cpu_conv_scratch_new (void);
/* Accepts NULL. */
void fer_cpu_conv_scratch_free (fer_cpu_conv_scratch *scratch);
/* For tests: floats of packed pixels each thread works through at a time
 * (0: the default). Returns the value in effect. */
size_t fer_cpu_conv_scratch_set_chunk (fer_cpu_conv_scratch *scratch,
    size_t floats);

/* out (n, oh, ow, cout) = act(conv(inp (n, h, w, cin), weight) + bias
 * [+ residual]); weight from fer_cpu_conv2d_pack_weight, bias (cout) and
 * residual (like out) may be NULL. Work is split across `workers` (NULL:
 * this thread only). FALSE only when scratch cannot grow. */
gboolean fer_cpu_conv2d_forward (float *out, const float *inp,
    const float *weight, const float *bias, const float *residual,
    const fer_conv_shape *s, gboolean relu, fer_cpu_conv_scratch *scratch,
    fer_cpu_workers *workers, GError **error);

/* out (n, oh, ow, c) = k x k max over inp (n, h, w, c); padding never wins. */
void fer_cpu_maxpool2d_forward (float *out, const float *inp, int n, int h,
    int w, int c, int k, int stride, int pad);

/* out (n, c) = mean over hw of inp (n, hw, c). */
void fer_cpu_avgpool_forward (float *out, const float *inp, int n, int hw,
    int c);

/* out (n, nout) = act(inp (n, nin) . weight (nout, nin)^T + bias (nout)). */
void fer_cpu_linear_forward (float *out, const float *inp, const float *weight,
    const float *bias, int n, int nin, int nout, gboolean relu);

/* out (n, c) = softmax over c of inp (n, c); out may equal inp. */
void fer_cpu_softmax_forward (float *out, const float *inp, int n, int c);

#endif
