/* CPU ops (private). One op family per file, forward (and, with training,
 * backward) side by side; argument order: outputs, inputs, then sizes.
 * Activations are NHWC; conv weights (Cout, KH, KW, Cin); linear weights
 * (out, in). Outputs are overwritten. */
#ifndef FER_CPU_OPS_H
#define FER_CPU_OPS_H

#include <stddef.h>
#include "backend.h"

/* Floats of im2col scratch one image needs (0 for 1x1/stride-1 convs). */
size_t fer_cpu_conv2d_col_per_image (const fer_conv_shape *s);

/* out (n, oh, ow, cout) = act(conv(inp (n, h, w, cin), weight) + bias
 * [+ residual]). col: scratch of col_cap floats, at least
 * fer_cpu_conv2d_col_per_image(s); images are processed in chunks that fit. */
void fer_cpu_conv2d_forward (float *out, const float *inp, const float *weight,
    const float *bias, const float *residual, const fer_conv_shape *s,
    gboolean relu, float *col, size_t col_cap);

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
