/* The preprocess op, the input batch built on the device from a frame,
 * against fer_preprocess (cuda-op-test.h's check): every pixel format,
 * gray and colour inputs, both YUV ranges. */
#include <fer/image.h>
#include "cuda-op-test.h"

/* ---- preprocessing on the device ---- */

/* Every pixel format, gray and colour inputs, views inside, across and
 * outside the frame edges, flipped, downscaled: the backend's preprocess
 * op against fer_preprocess (NCHW, transposed here to NHWC). */
static void
test_preprocess (void)
{
  enum
  {
    W = 101,
    H = 77,
    S = 48,
    N_VIEWS = 5
  };
  static const fer_pixel_format formats[] = { FER_PIXEL_GRAY8, FER_PIXEL_RGB,
    FER_PIXEL_BGRA, FER_PIXEL_XRGB, FER_PIXEL_I420, FER_PIXEL_NV12 };
  static const char *const names[] = { "GRAY8", "RGB", "BGRA", "xRGB", "I420",
    "NV12" };
  const fer_view views[N_VIEWS] = {
    { { 10.0f, 5.0f, 60.0f, 60.0f }, FALSE },
    { { 10.0f, 5.0f, 60.0f, 60.0f }, TRUE },
    { { -12.5f, 30.25f, 40.0f, 52.0f }, FALSE }, /* across the edges */
    { { 3.0f, 2.0f, 20.0f, 17.0f }, TRUE },      /* upscaled */
    { { 0.0f, 0.0f, (float) W, (float) H }, FALSE },
  };
  const int bpp[] = { 1, 3, 4, 4, 1, 1 };
  GError *e_ = NULL;

  for (guint fi = 0; fi < G_N_ELEMENTS (formats); fi++) {
    for (int C = 1; C <= 3; C += 2) {
      for (int full = 0; full < 2; full++) {
        const int stride = W * bpp[fi] + 7, cstride = (W + 1) / 2 * 2 + 5;
        guint8 *p0 = g_new (guint8, (size_t) stride * H);
        guint8 *p1 = g_new (guint8, (size_t) cstride * H);
        guint8 *p2 = g_new (guint8, (size_t) cstride * H);
        for (size_t i = 0; i < (size_t) stride * H; i++)
          p0[i] = (guint8) (fer_rng_uniform (&rng) * 256.0f);
        for (size_t i = 0; i < (size_t) cstride * H; i++) {
          p1[i] = (guint8) (fer_rng_uniform (&rng) * 256.0f);
          p2[i] = (guint8) (fer_rng_uniform (&rng) * 256.0f);
        }
        fer_image img = { formats[fi], W, H, { p0, p1, p2 },
          { stride, cstride, cstride }, full };
        fer_input_spec spec = { S, C, { 0.5f, 0.4f, 0.3f },
          { 0.25f, 0.2f, 0.3f } };
        const size_t per = (size_t) S * S * C;
        float *ref = g_new (float, per *N_VIEWS), *one = g_new (float, per);
        for (int v = 0; v < N_VIEWS; v++) {
          g_assert_true (
              fer_preprocess (&img, &views[v], &spec, one, NULL, &e_));
          for (int c = 0; c < C; c++)
            for (int p = 0; p < S * S; p++)
              ref[per * v + (size_t) p * C + c] = one[(size_t) c * S * S + p];
        }
        float *d_out = dev_zeros (per * N_VIEWS);
        char name[96];
        OK (gpu->ops->preprocess (
            gpu, d_out, &img, views, N_VIEWS, &spec, &e_));
        g_snprintf (name, sizeof name, "preprocess %s -> %d channel%s%s",
            names[fi], C, C > 1 ? "s" : "",
            fi >= 4 ? (full ? " full range" : " limited range") : "");
        check (name, ref, d_out, per * N_VIEWS, TOL_EXACT);
        gpu->ops->release (gpu, d_out);
        g_free (ref);
        g_free (one);
        g_free (p0);
        g_free (p1);
        g_free (p2);
        if (fi < 4)
          break; /* full_range matters to YUV only */
      }
    }
  }
}

int
main (void)
{
  cuda_op_test_begin (2024);
  test_preprocess ();
  return cuda_op_test_end ();
}
