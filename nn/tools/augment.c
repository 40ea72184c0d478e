/* fer-train's augmentation (contract in augment.h). */
#include "augment.h"

#include <math.h>
#include <string.h>

double
fer_aug_range (fer_rng *r, double lo, double hi)
{
  return lo + (hi - lo) * fer_rng_uniform_double (r);
}

/* Gamma(a, 1): Marsaglia and Tsang's method; a < 1 through
 * Gamma(a + 1) * U^(1/a). */
static double
rng_gamma (fer_rng *r, double a)
{
  if (a < 1.0)
    return rng_gamma (r, a + 1.0)
        * pow (1.0 - fer_rng_uniform_double (r), 1.0 / a);
  double d = a - 1.0 / 3.0, c = 1.0 / sqrt (9.0 * d);
  for (;;) {
    double x = fer_rng_normal_double (r), v = 1.0 + c * x;
    if (v <= 0.0)
      continue;
    v = v * v * v;
    double u = 1.0 - fer_rng_uniform_double (r);
    if (u < 1.0 - 0.0331 * x * x * x * x
        || log (u) < 0.5 * x * x + d * (1.0 - v + log (v)))
      return d * v;
  }
}

double
fer_aug_beta (fer_rng *r, double a)
{
  double x = rng_gamma (r, a), y = rng_gamma (r, a);
  return x + y > 0.0 ? x / (x + y) : 0.5;
}

void
fer_aug_shuffle (fer_rng *r, int *v, int n)
{
  for (int i = n - 1; i > 0; i--) {
    int j = (int) fer_rng_below (r, (uint32_t) i + 1);
    int t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
}

static float
clamp01 (float v)
{
  return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* Crop + flip + affine into dst (channels x n x n) on the 0..1 scale. */
static void
sample_geometry (const fer_aug_config *c, const uint8_t *src, float *dst,
    int ox, int oy, gboolean flip, double angle, double scale, double tx,
    double ty)
{
  int s = c->size, n = c->crop, ch = c->channels;
  size_t plane = (size_t) n * n;

  if (angle == 0.0 && scale == 1.0 && tx == 0.0 && ty == 0.0) {
    /* Whole pixels only: copy, so the common case is exact and cheap. */
    for (int y = 0; y < n; y++)
      for (int x = 0; x < n; x++) {
        int sx = ox + (flip ? n - 1 - x : x);
        const uint8_t *p = src + ((size_t) (oy + y) * s + sx) * ch;
        for (int k = 0; k < ch; k++)
          dst[k * plane + (size_t) y * n + x] = p[k] * (1.0f / 255.0f);
      }
    return;
  }

  double a = scale * cos (angle), b = -scale * sin (angle);
  double d = scale * sin (angle), e = scale * cos (angle);
  for (int y = 0; y < n; y++) {
    double yn = (2.0 * y + 1.0) / n - 1.0;
    for (int x = 0; x < n; x++) {
      double xn = (2.0 * x + 1.0) / n - 1.0;
      double qx = a * xn + b * yn + tx, qy = d * xn + e * yn + ty;
      if (flip)
        qx = -qx; /* the peer flips the image before the affine map */
      double px = ((qx + 1.0) * n - 1.0) / 2.0 + ox;
      double py = ((qy + 1.0) * n - 1.0) / 2.0 + oy;
      px = CLAMP (px, 0.0, s - 1.0);
      py = CLAMP (py, 0.0, s - 1.0);
      int x0 = (int) px, y0 = (int) py;
      int x1 = MIN (x0 + 1, s - 1), y1 = MIN (y0 + 1, s - 1);
      float fx = (float) (px - x0), fy = (float) (py - y0);
      const uint8_t *r0 = src + (size_t) y0 * s * ch;
      const uint8_t *r1 = src + (size_t) y1 * s * ch;
      for (int k = 0; k < ch; k++) {
        float top = r0[x0 * ch + k] + fx * (r0[x1 * ch + k] - r0[x0 * ch + k]);
        float bottom =
            r1[x0 * ch + k] + fx * (r1[x1 * ch + k] - r1[x0 * ch + k]);
        dst[k * plane + (size_t) y * n + x] =
            (top + fy * (bottom - top)) * (1.0f / 255.0f);
      }
    }
  }
}

static void
jitter (const fer_aug_config *c, float *img, fer_rng *r)
{
  int ch = c->channels;
  size_t plane = (size_t) c->crop * c->crop;
  float brightness =
      (float) fer_aug_range (r, MAX (0.0, 1.0 - c->jitter), 1.0 + c->jitter);
  float contrast =
      (float) fer_aug_range (r, MAX (0.0, 1.0 - c->jitter), 1.0 + c->jitter);

  for (size_t i = 0; i < plane * ch; i++)
    img[i] = clamp01 (img[i] * brightness);

  /* Contrast blends with the mean of the grayscale image (ITU-R 601-2 luma
   * for RGB), as torchvision's adjust_contrast does. */
  double sum = 0.0;
  for (size_t i = 0; i < plane; i++)
    sum += ch == 1
        ? img[i]
        : 0.299 * img[i] + 0.587 * img[plane + i] + 0.114 * img[2 * plane + i];
  float mean = (float) (sum / plane);
  for (size_t i = 0; i < plane * ch; i++)
    img[i] = clamp01 (contrast * img[i] + (1.0f - contrast) * mean);
}

static void
normalise (const fer_aug_config *c, float *img)
{
  size_t plane = (size_t) c->crop * c->crop;
  for (int k = 0; k < c->channels; k++) {
    float mean = c->mean[k], inv_std = 1.0f / c->std[k];
    for (size_t i = 0; i < plane; i++)
      img[k * plane + i] = (img[k * plane + i] - mean) * inv_std;
  }
}

static void
erase (const fer_aug_config *c, float *img, fer_rng *r)
{
  int n = c->crop;
  double area = (double) n * n;
  for (int attempt = 0; attempt < 10; attempt++) {
    double target = area * fer_aug_range (r, 0.02, 0.33);
    double ratio = exp (fer_aug_range (r, log (0.3), log (3.3)));
    int h = (int) lround (sqrt (target * ratio));
    int w = (int) lround (sqrt (target / ratio));
    if (h < 1 || w < 1 || h >= n || w >= n)
      continue;
    int top = (int) fer_rng_below (r, (uint32_t) (n - h + 1));
    int left = (int) fer_rng_below (r, (uint32_t) (n - w + 1));
    for (int k = 0; k < c->channels; k++)
      for (int y = top; y < top + h; y++)
        memset (img + ((size_t) k * n + y) * n + left, 0, sizeof (float) * w);
    return;
  }
}

void
fer_aug_train_image (
    const fer_aug_config *c, const uint8_t *src, float *dst, fer_rng *r)
{
  int ox = 0, oy = 0;
  if (c->crop < c->size) {
    ox = (int) fer_rng_below (r, (uint32_t) (c->size - c->crop + 1));
    oy = (int) fer_rng_below (r, (uint32_t) (c->size - c->crop + 1));
  }
  gboolean flip = c->flip && fer_rng_uniform_double (r) < 0.5;
  double angle = 0.0, scale = 1.0, tx = 0.0, ty = 0.0;
  if (c->rotate_deg > 0.0f)
    angle = fer_aug_range (r, -1.0, 1.0) * c->rotate_deg * G_PI / 180.0;
  if (c->scale > 0.0f)
    scale = 1.0 + fer_aug_range (r, -c->scale, c->scale);
  if (c->translate > 0.0f) {
    tx = fer_aug_range (r, -c->translate, c->translate);
    ty = fer_aug_range (r, -c->translate, c->translate);
  }

  sample_geometry (c, src, dst, ox, oy, flip, angle, scale, tx, ty);
  if (c->jitter > 0.0f)
    jitter (c, dst, r);
  normalise (c, dst);
  if (c->erase > 0.0f && fer_rng_uniform_double (r) < c->erase)
    erase (c, dst, r);
}

void
fer_aug_eval_image (const fer_aug_config *c, const uint8_t *src, float *dst)
{
  int k = (c->size - c->crop) / 2;
  sample_geometry (c, src, dst, k, k, FALSE, 0.0, 1.0, 0.0, 0.0);
  normalise (c, dst);
}

float
fer_aug_mix_batch (float *x, int n, int channels, int side, const int *y,
    int *y_b, float mixup_alpha, float cutmix_alpha, float *tmp, int *perm,
    fer_rng *r)
{
  if (mixup_alpha <= 0.0f && cutmix_alpha <= 0.0f) {
    memcpy (y_b, y, sizeof (int) * n);
    for (int i = 0; i < n; i++)
      perm[i] = i;
    return 1.0f;
  }

  gboolean cutmix = cutmix_alpha > 0.0f
      && (mixup_alpha <= 0.0f || fer_rng_uniform_double (r) < 0.5);
  double lam = fer_aug_beta (r, cutmix ? cutmix_alpha : mixup_alpha);
  for (int i = 0; i < n; i++)
    perm[i] = i;
  fer_aug_shuffle (r, perm, n);
  for (int i = 0; i < n; i++)
    y_b[i] = y[perm[i]];

  size_t plane = (size_t) side * side, image = plane * channels;
  memcpy (tmp, x, sizeof (float) * image * n);
  if (!cutmix) {
    float a = (float) lam, b = 1.0f - (float) lam;
    for (int i = 0; i < n; i++) {
      float *xi = x + image * i;
      const float *other = tmp + image * perm[i];
      for (size_t j = 0; j < image; j++)
        xi[j] = a * xi[j] + b * other[j];
    }
    return a;
  }

  /* One box for the whole batch, as in the CutMix paper's code. */
  int cut = (int) (side * sqrt (1.0 - lam));
  int cx = (int) fer_rng_below (r, (uint32_t) side);
  int cy = (int) fer_rng_below (r, (uint32_t) side);
  int x1 = CLAMP (cx - cut / 2, 0, side), x2 = CLAMP (cx + cut / 2, 0, side);
  int y1 = CLAMP (cy - cut / 2, 0, side), y2 = CLAMP (cy + cut / 2, 0, side);
  for (int i = 0; i < n && x2 > x1; i++)
    for (int k = 0; k < channels; k++)
      for (int yy = y1; yy < y2; yy++)
        memcpy (x + image * i + k * plane + (size_t) yy * side + x1,
            tmp + image * perm[i] + k * plane + (size_t) yy * side + x1,
            sizeof (float) * (x2 - x1));
  return (float) (1.0 - (double) (x2 - x1) * (y2 - y1) / (double) plane);
}
