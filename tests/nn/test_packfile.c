/* Packed datasets (nn/tools/packfile.c) on generated images: lossless and
 * near-lossless round trips (every pixel within delta, printed), label
 * order given by the caller, and damaged files (every truncation of a
 * small file, flipped bytes everywhere): a message naming the file, never
 * a crash or a wrong dataset. */
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>

#include "packfile.h"

static const char *const labels3[] = { "b", "a", "c", NULL };

/* n images of side s, c channels: smooth gradients plus seeded noise, so
 * that prediction has both easy and hard pixels. */
static fer_dataset *
generated (int n, int s, int c, guint32 seed)
{
  GRand *rng = g_rand_new_with_seed (seed);
  fer_dataset *d = g_new0 (fer_dataset, 1);
  d->source = g_strdup ("generated");
  d->size = s;
  d->channels = c;
  d->n_classes = 3;
  d->labels = g_strdupv ((char **) labels3);
  d->n = n;
  d->pixels = g_new (uint8_t, (size_t) n * s * s * c);
  d->y = g_new (int, n);
  d->counts = g_new0 (int64_t, 3);
  for (int i = 0; i < n; i++) {
    d->y[i] = i % 3;
    d->counts[i % 3]++;
    for (int p = 0; p < s * s * c; p++) {
      int x = p / c % s, y = p / c / s;
      int v = (x * 5 + y * 3 + i * 17) % 200 + g_rand_int_range (rng, 0, 40);
      if (i % 4 == 3) /* some images of pure noise and saturation */
        v = g_rand_int_range (rng, -20, 276);
      d->pixels[(size_t) i * s * s * c + p] = (uint8_t) CLAMP (v, 0, 255);
    }
  }
  g_rand_free (rng);
  return d;
}

static int
largest_error (const fer_dataset *a, const fer_dataset *b)
{
  size_t total = (size_t) a->n * a->size * a->size * a->channels;
  int worst = 0;
  for (size_t i = 0; i < total; i++)
    worst = MAX (worst, abs ((int) a->pixels[i] - (int) b->pixels[i]));
  return worst;
}

static char *
pack_path (void)
{
  return g_build_filename (g_get_tmp_dir (), "fer-test-packfile.ferpack", NULL);
}

static void
test_round_trip (void)
{
  g_autofree char *path = pack_path ();
  fer_dataset *gray = generated (13, 20, 1, 1), *rgb = generated (5, 9, 3, 2);
  GError *error = NULL;

  for (int delta = 0; delta <= FER_PACK_MAX_DELTA; delta += 1) {
    fer_pack_set sets[] = { { "train", gray, delta }, { "rgb", rgb, 0 } };
    g_assert_true (fer_pack_write (path, sets, 2, &error));
    g_assert_no_error (error);
    fer_dataset *back = fer_pack_load (path, "train", NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_nonnull (back);
    int err = largest_error (gray, back);
    GStatBuf st;
    g_assert_cmpint (g_stat (path, &st), ==, 0);
    printf ("# delta %2d: largest error %d, file %lld bytes for %d pixels\n",
        delta, err, (long long) st.st_size, 13 * 20 * 20 + 5 * 9 * 9 * 3);
    g_assert_cmpint (err, <=, delta);
    if (delta == 0)
      g_assert_cmpmem (back->pixels, 13 * 400, gray->pixels, 13 * 400);
    g_assert_cmpint (back->n, ==, 13);
    g_assert_cmpint (back->size, ==, 20);
    g_assert_cmpint (back->channels, ==, 1);
    g_assert_cmpmem (back->y, 13 * sizeof (int), gray->y, 13 * sizeof (int));
    g_assert_cmpstr (back->labels[1], ==, "a");
    g_assert_cmpint (back->counts[0], ==, 5);
    fer_dataset_free (back);

    back = fer_pack_load (path, "rgb", NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpint (back->channels, ==, 3);
    g_assert_cmpmem (back->pixels, 5 * 243, rgb->pixels, 5 * 243);
    fer_dataset_free (back);
  }

  /* given labels fix the order: "a" becomes class 0 */
  const char *const order[] = { "a", "b", "c", "d", NULL };
  fer_dataset *back = fer_pack_load (path, "train", order, "test", &error);
  g_assert_no_error (error);
  g_assert_cmpint (back->n_classes, ==, 4);
  for (int i = 0; i < back->n; i++)
    g_assert_cmpint (
        back->y[i], ==, gray->y[i] == 0 ? 1 : (gray->y[i] == 1 ? 0 : 2));
  g_assert_cmpint (back->counts[3], ==, 0);
  fer_dataset_free (back);

  const char *const missing[] = { "a", "b", NULL };
  g_assert_null (fer_pack_load (path, "train", missing, "model m", &error));
  g_assert_nonnull (strstr (error->message, "'c' is not one of the labels"));
  g_clear_error (&error);

  g_assert_null (fer_pack_load (path, "val", NULL, NULL, &error));
  g_assert_nonnull (strstr (error->message, "no set 'val'"));
  g_assert_nonnull (strstr (error->message, "train, rgb"));
  g_clear_error (&error);

  fer_pack_set bad = { "x", gray, 16 };
  g_assert_false (fer_pack_write (path, &bad, 1, &error));
  g_assert_nonnull (strstr (error->message, "delta"));
  g_clear_error (&error);

  g_unlink (path);
  fer_dataset_free (gray);
  fer_dataset_free (rgb);
}

/* Every prefix and many one-byte changes of a small file: refused with a
 * message naming it, or (a changed byte the format cannot notice, such as
 * a label's letter) a consistent dataset. */
static void
test_damaged (void)
{
  g_autofree char *path = pack_path ();
  fer_dataset *d = generated (4, 6, 1, 3);
  fer_pack_set set = { "train", d, 1 };
  GError *error = NULL;
  gchar *bytes;
  gsize len;

  g_assert_true (fer_pack_write (path, &set, 1, &error));
  g_assert_true (g_file_get_contents (path, &bytes, &len, &error));
  int refused = 0, accepted = 0;
  for (gsize cut = 0; cut < len; cut++) {
    fer_dataset *back = fer_pack_parse ((const uint8_t *) bytes, cut,
        "cut.ferpack", "train", NULL, NULL, &error);
    g_assert_null (back);
    g_assert_nonnull (strstr (error->message, "cut.ferpack"));
    g_clear_error (&error);
    refused++;
  }
  guint8 *copy = g_memdup2 (bytes, len);
  for (gsize at = 0; at < len; at++)
    for (int bit = 0; bit < 8; bit += 3) {
      memcpy (copy, bytes, len);
      copy[at] ^= (guint8) (1u << bit);
      fer_dataset *back = fer_pack_parse (
          copy, len, "flip.ferpack", "train", NULL, NULL, &error);
      if (back == NULL) {
        g_assert_nonnull (strstr (error->message, "flip.ferpack"));
        g_clear_error (&error);
        refused++;
        continue;
      }
      int64_t total = 0;
      for (int c = 0; c < back->n_classes; c++)
        total += back->counts[c];
      g_assert_cmpint (total, ==, back->n);
      g_assert_cmpint (back->n, ==, 4);
      accepted++;
      fer_dataset_free (back);
    }
  printf (
      "# %d damaged files refused, %d accepted (a changed letter of a label)\n",
      refused, accepted);
  g_free (copy);
  g_free (bytes);
  g_unlink (path);
  fer_dataset_free (d);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/packfile/round-trip", test_round_trip);
  g_test_add_func ("/packfile/damaged", test_damaged);
  return g_test_run ();
}
