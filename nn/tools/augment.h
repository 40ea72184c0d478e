/* fer-train's data augmentation and the random draws it needs beyond
 * libfernn's generator (fer/rng.h): fer-train seeds one fer_rng per epoch
 * with fer_rng_seed_stream (seed, epoch + 1), so an epoch's data order and
 * augmentation depend only on the seed and the epoch number, and a resumed
 * run needs no saved generator state for them.
 *
 * Augmentation works on images stored as size x size x channels uint8
 * (interleaved, as fer_image GRAY8/RGB) and writes channels x out x out
 * floats (CHW, the trainer's layout), normalised as (x/255 - mean) / std.
 * The geometric part follows the PyTorch peer recipe
 * (../shared/reference/torch_fer_cpu.py): flip, then one affine map
 * theta = [[s cos a, -s sin a, tx], [s sin a, s cos a, ty]] from output to
 * source in grid_sample's normalised coordinates (-1..1 across the output,
 * align_corners=False), bilinear with the border replicated (padding_mode
 * "border"). With a random crop the map works in the crop's coordinates and
 * samples outside the crop read the real neighbouring pixels of the stored
 * image; only samples outside the whole image repeat its edge. */
#ifndef FER_TOOLS_AUGMENT_H
#define FER_TOOLS_AUGMENT_H

#include <stdint.h>
#include <glib.h>
#include <fer/rng.h>

G_BEGIN_DECLS

/* Uniform in [lo, hi). */
double fer_aug_range (fer_rng *r, double lo, double hi);
/* Beta(a, a), a > 0 (mixup's and cutmix's lambda). */
double fer_aug_beta (fer_rng *r, double a);
/* Fisher-Yates shuffle of v[0..n-1]. */
void fer_aug_shuffle (fer_rng *r, int *v, int n);

typedef struct
{
  int size;         /* side of the stored images */
  int crop;         /* side of the output: random crops when < size */
  int channels;     /* 1 or 3 */
  gboolean flip;    /* horizontal flip with p = 0.5 */
  float rotate_deg; /* angle uniform in [-rotate_deg, rotate_deg] */
  float scale;      /* s uniform in [1 - scale, 1 + scale] */
  float translate;  /* tx, ty uniform in [-translate, translate], in
                        * normalised units (the image spans 2, so 0.1 moves
                        * by up to 5% of the side, as the peer recipe does) */
  float jitter;     /* brightness and contrast factors in [1-j, 1+j] */
  float erase;      /* probability of random erasing */
  float mean[3], std[3];
} fer_aug_config;

/* One training view of `src` into dst (channels x crop x crop): crop, flip,
 * affine, brightness then contrast jitter (as torchvision's ColorJitter, on
 * the 0..1 scale, clamped), normalisation, then random erasing (as
 * torchvision's RandomErasing with scale 0.02-0.33, ratio 0.3-3.3 and value
 * 0, on the normalised image). Draws from r in a fixed order. */
void fer_aug_train_image (
    const fer_aug_config *c, const uint8_t *src, float *dst, fer_rng *r);

/* The evaluation view: the centre crop (offset (size - crop) / 2 rounded
 * down, as the ten-crop TTA's centre view), normalised. */
void fer_aug_eval_image (
    const fer_aug_config *c, const uint8_t *src, float *dst);

/* Mixes a batch x (n images of `image_floats` floats, each channels x side x
 * side) with a random permutation of itself: y_b[i] receives the label of
 * the image mixed into image i, and the return value is lambda, the share of
 * the original image (the loss is lam * L(y) + (1 - lam) * L(y_b)).
 * Mixup blends whole images with lambda ~ Beta(alpha, alpha); cutmix pastes
 * a box of area (1 - lambda) and returns the exact pasted share. With both
 * alphas > 0 each batch uses one of them with p = 0.5 (timm's switch).
 * tmp holds n * image_floats floats; perm (n ints) receives the pairing:
 * image i was mixed with image perm[i] (distillation targets mix the same
 * way). Returns 1, leaves x alone and perm the identity when both alphas
 * are 0. */
float fer_aug_mix_batch (float *x, int n, int channels, int side, const int *y,
    int *y_b, float mixup_alpha, float cutmix_alpha, float *tmp, int *perm,
    fer_rng *r);

G_END_DECLS

#endif
