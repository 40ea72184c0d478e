/* The CPU backend's preprocess op (cpu/preprocess.c): a batch of views of
 * one frame written into the network's NHWC input is fer_preprocess of
 * each view (NCHW) transposed, bit for bit, for gray and colour frames
 * into gray and colour inputs, views inside, across and outside the frame
 * edges, flipped, up- and downscaled; invalid views fail with
 * fer_preprocess's message; a steady stream of batches allocates nothing.
 * (fer_preprocess itself is tested in test_preprocess.c, the CUDA op in
 * tests/gpu/test_cuda_op_preprocess.c.) */
#include <string.h>

#include <fer/image.h>
#include "cpu/backend_cpu.h"
#include "preprocess-private.h"

enum
{
  W = 101,
  H = 77,
  S = 48,
  N_VIEWS = 5
};

static const fer_view views[N_VIEWS] = {
  { { 10.0f, 5.0f, 60.0f, 60.0f }, FALSE },
  { { 10.0f, 5.0f, 60.0f, 60.0f }, TRUE },
  { { -12.5f, 30.25f, 40.0f, 52.0f }, FALSE }, /* across the edges */
  { { 3.0f, 2.0f, 20.0f, 17.0f }, TRUE },      /* upscaled */
  { { 0.0f, 0.0f, (float) W, (float) H }, FALSE },
};

/* A frame of random bytes whose planes have `stride` (plane 0) and
 * `cstride` (the others) bytes per row. */
static void
random_frame (fer_image *img, guint8 *planes[3], fer_pixel_format format,
    int stride, int cstride, GRand *r)
{
  for (int k = 0; k < 3; k++) {
    const size_t bytes = (size_t) (k ? cstride : stride) * H;
    planes[k] = g_malloc (bytes);
    for (size_t i = 0; i < bytes; i++)
      planes[k][i] = (guint8) g_rand_int (r);
    img->planes[k] = planes[k];
    img->strides[k] = k ? cstride : stride;
  }
  img->format = format;
  img->width = W;
  img->height = H;
  img->full_range = TRUE;
}

static void
test_matches_fer_preprocess (void)
{
  static const fer_pixel_format formats[] = { FER_PIXEL_GRAY8, FER_PIXEL_RGB,
    FER_PIXEL_I420 };
  static const int bpp[] = { 1, 3, 1 };
  GError *error = NULL;
  fer_backend *be = fer_backend_new (FER_BACKEND_CPU, 0, 1, NULL, &error);
  GRand *r = g_rand_new_with_seed (11);

  g_assert_no_error (error);
  for (guint fi = 0; fi < G_N_ELEMENTS (formats); fi++) {
    fer_image img;
    guint8 *planes[3];
    random_frame (&img, planes, formats[fi], W * bpp[fi] + 7, W + 9, r);
    for (int C = 1; C <= 3; C += 2) {
      const fer_input_spec spec = { S, C, { 0.5f, 0.4f, 0.3f },
        { 0.25f, 0.2f, 0.3f } };
      const size_t plane = (size_t) S * S;
      float *batch = be->ops->alloc (be, plane * C * N_VIEWS, &error);
      float *planar = g_new (float, plane *C);
      size_t differ = 0;

      g_assert_true (
          be->ops->preprocess (be, batch, &img, views, N_VIEWS, &spec, &error));
      g_assert_no_error (error);
      /* view v's pixel p, channel c: at (v, p, c) in the batch, at (c, p)
       * in fer_preprocess's output */
      for (int v = 0; v < N_VIEWS; v++) {
        const float *nhwc = batch + (size_t) v * plane * C;
        g_assert_true (
            fer_preprocess (&img, &views[v], &spec, planar, NULL, &error));
        for (size_t p = 0; p < plane; p++)
          for (int c = 0; c < C; c++)
            differ += memcmp (&nhwc[p * C + c], &planar[c * plane + p],
                          sizeof (float))
                != 0;
      }
      g_test_message ("preprocess op, format %d -> %d channel(s), %d views: "
                      "%zu values differ from fer_preprocess's",
          formats[fi], C, N_VIEWS, differ);
      g_assert_cmpuint (differ, ==, 0);
      be->ops->release (be, batch);
      g_free (planar);
    }
    for (int k = 0; k < 3; k++)
      g_free (planes[k]);
  }
  g_rand_free (r);
  fer_backend_free (be);
}

static void
test_rejects_and_reuses (void)
{
  guint8 px[W * H] = { 0 };
  fer_image img = { FER_PIXEL_GRAY8, W, H, { px }, { W }, TRUE };
  fer_input_spec spec = { S, 3, { 0.5f, 0.5f, 0.5f }, { 0.25f, 0.25f, 0.25f } };
  fer_view bad[2] = { views[0], { { 0.0f, 0.0f, 0.0f, 1.0f }, FALSE } };
  GError *e1 = NULL, *e2 = NULL;
  fer_backend *be = fer_backend_new (FER_BACKEND_CPU, 0, 1, NULL, &e1);
  cpu_backend *cpu = (cpu_backend *) be;
  float *out = be->ops->alloc (be, (size_t) 2 * S * S * 3, &e1), one[S * S];

  g_assert_no_error (e1);
  /* no views: nothing to do */
  g_assert_true (be->ops->preprocess (be, out, &img, views, 0, &spec, &e1));
  /* an empty view: fer_preprocess's error */
  g_assert_false (be->ops->preprocess (be, out, &img, bad, 2, &spec, &e1));
  g_assert_false (fer_preprocess (&img, &bad[1], &spec, one, NULL, &e2));
  g_assert_cmpstr (e1->message, ==, e2->message);
  g_clear_error (&e1);
  g_clear_error (&e2);

  /* the same batch again grows nothing */
  g_assert_true (be->ops->preprocess (be, out, &img, views, 2, &spec, &e1));
  guint grown = fer_scratch_n_allocations (cpu->preprocess);
  float *planar = cpu->planar;
  for (int i = 0; i < 3; i++)
    g_assert_true (be->ops->preprocess (be, out, &img, views, 2, &spec, &e1));
  g_assert_cmpuint (fer_scratch_n_allocations (cpu->preprocess), ==, grown);
  g_assert_true (cpu->planar == planar);
  be->ops->release (be, out);
  fer_backend_free (be);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func (
      "/preprocess-op/matches-fer-preprocess", test_matches_fer_preprocess);
  g_test_add_func (
      "/preprocess-op/rejects-and-reuses", test_rejects_and_reuses);
  return g_test_run ();
}
