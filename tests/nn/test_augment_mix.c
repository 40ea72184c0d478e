/* fer_aug_mix_batch (fer-train's mixup and cutmix): the pairing it returns
 * is the one it used. perm is a permutation, y_b[i] = y[perm[i]], and each
 * image is mixed with image perm[i] only: under mixup every pixel is
 * lam x_i + (1 - lam) x_perm[i] (the same float expression), under cutmix
 * every pixel comes from x_i or x_perm[i] at the same place and the share
 * from x_i is lam. Without mixing, perm is the identity and x is left
 * alone. fer-train mixes the teacher's targets with this pairing, so a
 * pairing that differed from the pixels' would train on wrong targets. */
#include <string.h>

#include "augment.h"

enum
{
  N = 9,
  C = 2,
  S = 12,
  IMAGE = C * S * S
};

static void
fill (float *x)
{
  /* image i, channel c, pixel p: distinct per image, so a pixel tells its
   * source */
  for (int i = 0; i < N; i++)
    for (int j = 0; j < IMAGE; j++)
      x[i * IMAGE + j] = (float) (i * 1000 + j);
}

static void
check_permutation (const int *perm, const int *y, const int *y_b)
{
  int seen[N] = { 0 };
  for (int i = 0; i < N; i++) {
    g_assert_cmpint (perm[i], >=, 0);
    g_assert_cmpint (perm[i], <, N);
    seen[perm[i]]++;
    g_assert_cmpint (y_b[i], ==, y[perm[i]]);
  }
  for (int i = 0; i < N; i++)
    g_assert_cmpint (seen[i], ==, 1);
}

static void
test_mix (gconstpointer data)
{
  const gboolean cutmix = GPOINTER_TO_INT (data);
  static float x[N * IMAGE], orig[N * IMAGE], tmp[N * IMAGE];
  int y[N], y_b[N], perm[N];
  for (int i = 0; i < N; i++)
    y[i] = (i * 5) % 4;
  double worst = 0.0;
  for (uint64_t seed = 1; seed <= 20; seed++) {
    fer_rng rng;
    fer_rng_seed (&rng, seed);
    fill (x);
    memcpy (orig, x, sizeof x);
    const float lam = fer_aug_mix_batch (x, N, C, S, y, y_b,
        cutmix ? 0.0f : 0.4f, cutmix ? 1.0f : 0.0f, tmp, perm, &rng);
    check_permutation (perm, y, y_b);
    for (int i = 0; i < N; i++) {
      const float *xi = x + i * IMAGE, *a = orig + i * IMAGE,
                  *b = orig + perm[i] * IMAGE;
      int from_a = 0;
      for (int j = 0; j < IMAGE; j++) {
        if (!cutmix) {
          g_assert_cmpfloat (xi[j], ==, lam * a[j] + (1.0f - lam) * b[j]);
        } else {
          g_assert_true (xi[j] == a[j] || xi[j] == b[j]);
          from_a += xi[j] == a[j];
        }
      }
      if (cutmix && perm[i] != i) {
        const double share = (double) from_a / IMAGE;
        worst = MAX (worst, ABS (share - lam));
        g_assert_cmpfloat (ABS (share - lam), <, 1e-6);
      }
    }
  }
  if (cutmix)
    g_test_message ("cutmix: max |share of x_i - lam| = %.2e", worst);
}

static void
test_no_mix (void)
{
  static float x[N * IMAGE], orig[N * IMAGE], tmp[N * IMAGE];
  int y[N], y_b[N], perm[N];
  for (int i = 0; i < N; i++)
    y[i] = i % 3;
  fer_rng rng;
  fer_rng_seed (&rng, 7);
  fill (x);
  memcpy (orig, x, sizeof x);
  g_assert_cmpfloat (
      fer_aug_mix_batch (x, N, C, S, y, y_b, 0.0f, 0.0f, tmp, perm, &rng), ==,
      1.0f);
  for (int i = 0; i < N; i++) {
    g_assert_cmpint (perm[i], ==, i);
    g_assert_cmpint (y_b[i], ==, y[i]);
  }
  g_assert_cmpmem (x, sizeof x, orig, sizeof orig);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_data_func ("/mix/mixup", GINT_TO_POINTER (FALSE), test_mix);
  g_test_add_data_func ("/mix/cutmix", GINT_TO_POINTER (TRUE), test_mix);
  g_test_add_func ("/mix/none", test_no_mix);
  return g_test_run ();
}
