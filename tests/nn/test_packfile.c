/* Packed datasets (nn/tools/packfile.c) on generated images: lossless and
 * near-lossless round trips (every pixel within delta, printed), label
 * order given by the caller, damaged files (every truncation of a small
 * file, flipped bytes everywhere) and decompression bombs: a message
 * naming the file, never a crash, a wrong dataset or gigabytes decoded. */
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

/* The file offset of set 0's u32 payload size, for a one-set file of
 * labels3 written by fer_pack_write. */
static gsize
payload_size_at (const char *name, int n)
{
  return 8 + 4 + 1 + strlen (name) + 2 + 1 + 1 + 1 + 3 * 2 + 4 + (gsize) n + 8;
}

/* Decompression bombs: a set that claims more pixels than its payload can
 * code is refused before anything is allocated or decoded, and a payload
 * that runs out is refused where it does; constant images, the most a
 * payload byte can code, still load. */
static void
test_bomb (void)
{
  g_autofree char *path = pack_path ();
  GError *error = NULL;

  /* constant images: every residual 0, the coder's best case */
  fer_dataset *flat = generated (300, 48, 1, 4);
  memset (flat->pixels, 0, (size_t) 300 * 48 * 48);
  fer_pack_set set = { "train", flat, 0 };
  g_assert_true (fer_pack_write (path, &set, 1, &error));
  gchar *bytes;
  gsize len;
  g_assert_true (g_file_get_contents (path, &bytes, &len, &error));
  gsize at = payload_size_at ("train", 300);
  guint32 payload = (guint32) bytes[at] | (guint32) (guint8) bytes[at + 1] << 8
      | (guint32) (guint8) bytes[at + 2] << 16
      | (guint32) (guint8) bytes[at + 3] << 24;
  g_assert_cmpuint (at + 4 + payload, ==, len);
  double per_byte = 300.0 * 48 * 48 / payload;
  printf ("# constant images: %.1f pixels per payload byte (bound 40.4)\n",
      per_byte);
  g_assert_cmpfloat (per_byte, <=, 40.4);
  fer_dataset *back = fer_pack_parse ((const uint8_t *) bytes, len,
      "flat.ferpack", "train", NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (back->pixels, 300 * 48 * 48, flat->pixels, 300 * 48 * 48);
  fer_dataset_free (back);
  g_free (bytes);
  fer_dataset_free (flat);

  /* 1000 images of 1024 x 1024 x 3 (3 GB) from 16 bytes */
  GByteArray *b = g_byte_array_new ();
  const guint8 head[] = { 'F', 'E', 'R', 'P', 'A', 'C', 'K', '1', 1, 0, 0, 0, 5,
    't', 'r', 'a', 'i', 'n', 0x00, 0x04, 3, 0, 1, 1, 'x', 0xe8, 0x03, 0, 0 };
  g_byte_array_append (b, head, sizeof head);
  for (int i = 0; i < 1000 + 8; i++) /* labels 0, checksum */
    g_byte_array_append (b, (const guint8 *) "", 1);
  const guint8 size16[] = { 16, 0, 0, 0 };
  g_byte_array_append (b, size16, 4);
  for (int i = 0; i < 16; i++)
    g_byte_array_append (b, (const guint8 *) "\x5a", 1);
  g_assert_null (fer_pack_parse (
      b->data, b->len, "bomb.ferpack", "train", NULL, NULL, &error));
  g_assert_nonnull (strstr (error->message, "bomb.ferpack"));
  g_assert_nonnull (strstr (error->message,
      "1000 images of 1024x1024x3 (3145728000 pixels) cannot come from a "
      "payload of 16 bytes"));
  printf ("# %s\n", error->message);
  g_clear_error (&error);
  g_byte_array_unref (b);

  /* a payload cut in half, its size field made to match: the checksum
   * would refuse it too, but only after decoding past the end */
  fer_dataset *noise = generated (8, 48, 1, 5);
  fer_pack_set noisy = { "train", noise, 0 };
  g_assert_true (fer_pack_write (path, &noisy, 1, &error));
  g_assert_true (g_file_get_contents (path, &bytes, &len, &error));
  at = payload_size_at ("train", 8);
  payload =
      (guint32) (guint8) bytes[at] | (guint32) (guint8) bytes[at + 1] << 8;
  g_assert_cmpuint (at + 4 + payload, ==, len);
  guint32 half = payload / 2;
  bytes[at] = (char) (half & 0xFF);
  bytes[at + 1] = (char) (half >> 8);
  g_assert_null (fer_pack_parse ((const uint8_t *) bytes, at + 4 + half,
      "half.ferpack", "train", NULL, NULL, &error));
  g_assert_nonnull (strstr (error->message, "half.ferpack"));
  g_assert_nonnull (strstr (error->message, "ends before the last of its 8"));
  printf ("# %s\n", error->message);
  g_clear_error (&error);
  g_free (bytes);
  fer_dataset_free (noise);
  g_unlink (path);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/packfile/round-trip", test_round_trip);
  g_test_add_func ("/packfile/damaged", test_damaged);
  g_test_add_func ("/packfile/bomb", test_bomb);
  return g_test_run ();
}
