/* Seeded images of odd sizes in each family of pixel format (gray, packed
 * RGB with and without alpha, planar and semi-planar YUV in both ranges),
 * rows padded past their bytes: what the tools' path
 * (fer_model_classify_images) is tested on, on the CPU (tests/nn/
 * test_model.c) and on a device (tests/gpu/test_cuda_model.c). */
#ifndef FER_TEST_IMAGES_H
#define FER_TEST_IMAGES_H

#include <glib.h>
#include <fer/image.h>

#define TEST_N_ODD_IMAGES 6

typedef struct
{
  fer_image img[TEST_N_ODD_IMAGES];
  guint8 *bytes[TEST_N_ODD_IMAGES][3];
} test_odd_images;

static inline void
test_odd_images_make (test_odd_images *t, guint32 seed)
{
  static const struct
  {
    fer_pixel_format format;
    int w, h, bytes_per_pixel, full_range;
  } kinds[TEST_N_ODD_IMAGES] = {
    { FER_PIXEL_GRAY8, 37, 23, 1, TRUE },
    { FER_PIXEL_RGB, 29, 31, 3, TRUE },
    { FER_PIXEL_BGRA, 41, 17, 4, TRUE },
    { FER_PIXEL_XRGB, 15, 52, 4, TRUE },
    { FER_PIXEL_I420, 33, 19, 1, FALSE },
    { FER_PIXEL_NV12, 45, 27, 1, TRUE },
  };
  GRand *r = g_rand_new_with_seed (seed);

  for (int i = 0; i < TEST_N_ODD_IMAGES; i++) {
    const int w = kinds[i].w, h = kinds[i].h, cw = (w + 1) / 2;
    const fer_pixel_format f = kinds[i].format;
    /* strides past the rows' bytes; chroma: I420's U and V, NV12's UV */
    const int strides[3] = { w * kinds[i].bytes_per_pixel + 3,
      f == FER_PIXEL_NV12 ? 2 * cw + 2 : cw + 1, cw + 1 };
    const int n_planes = f == FER_PIXEL_I420 ? 3 : f == FER_PIXEL_NV12 ? 2 : 1;
    fer_image *img = &t->img[i];

    *img = (fer_image){
      .format = f, .width = w, .height = h, .full_range = kinds[i].full_range
    };
    for (int k = 0; k < 3; k++) {
      const size_t n = k < n_planes
          ? (size_t) strides[k] * (size_t) (k ? (h + 1) / 2 : h)
          : 0;
      t->bytes[i][k] = n ? g_new (guint8, n) : NULL;
      for (size_t j = 0; j < n; j++)
        t->bytes[i][k][j] = (guint8) g_rand_int_range (r, 0, 256);
      img->planes[k] = t->bytes[i][k];
      img->strides[k] = k < n_planes ? strides[k] : 0;
    }
  }
  g_rand_free (r);
}

static inline void
test_odd_images_free (test_odd_images *t)
{
  for (int i = 0; i < TEST_N_ODD_IMAGES; i++)
    for (int k = 0; k < 3; k++)
      g_free (t->bytes[i][k]);
}

#endif
