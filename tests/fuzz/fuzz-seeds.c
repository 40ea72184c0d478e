/* Writes the fuzz targets' seed corpora into OUTDIR/<target>/: small valid
 * inputs made here (no FER2013 image ever enters the tree). tests/fuzz/
 * run-fuzz.sh calls it before each run.
 *   fuzz-seeds OUTDIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <glib.h>
#include <glib/gstdio.h>

#include <fer/fer.h>
#include "imageio.h"
#include "packfile.h"

static void
die (const char *what, GError *error)
{
  fprintf (
      stderr, "fuzz-seeds: %s: %s\n", what, error ? error->message : "failed");
  exit (1);
}

static char *
seed_dir (const char *out, const char *target)
{
  char *dir = g_build_filename (out, target, NULL);
  if (g_mkdir_with_parents (dir, 0755) != 0)
    die (dir, NULL);
  return dir;
}

static void
write_bytes (const char *dir, const char *name, const void *data, size_t n)
{
  GError *error = NULL;
  char *path = g_build_filename (dir, name, NULL);
  if (!g_file_set_contents (path, data, (gssize) n, &error))
    die (path, error);
  g_free (path);
}

/* u64 little-endian header length, the header, the data. */
static void
write_raw (const char *dir, const char *name, const char *header,
    const guint8 *data, size_t data_len)
{
  size_t hlen = strlen (header);
  guint8 *bytes = g_malloc (8 + hlen + data_len);
  guint64 len = GUINT64_TO_LE ((guint64) hlen);
  memcpy (bytes, &len, 8);
  memcpy (bytes + 8, header, hlen);
  if (data_len)
    memcpy (bytes + 8 + hlen, data, data_len);
  write_bytes (dir, name, bytes, 8 + hlen + data_len);
  g_free (bytes);
}

static void
safetensors_seeds (const char *out)
{
  char *dir = seed_dir (out, "safetensors");
  float w[6] = { 0.5f, -1.0f, 2.0f, 0.0f, 1e-3f, -7.25f };
  const struct
  {
    const char *name;
    fer_dtype dtype;
  } files[] = {
    { "f32.safetensors", FER_DTYPE_F32 },
    { "f16.safetensors", FER_DTYPE_F16 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    GError *error = NULL;
    fer_st_writer *wr = fer_st_writer_new ();
    int64_t shape2[2] = { 2, 3 }, shape1[1] = { 6 };
    if (!fer_st_writer_add (
            wr, "conv1.weight", files[i].dtype, 2, shape2, w, &error)
        || !fer_st_writer_add (
            wr, "fc.bias", files[i].dtype, 1, shape1, w, &error))
      die (files[i].name, error);
    fer_st_writer_set_metadata (wr, "fer.labels", "a,b,c");
    fer_st_writer_set_metadata (wr, "fer.stem", "nopool");
    char *path = g_build_filename (dir, files[i].name, NULL);
    if (!fer_st_writer_save (wr, path, &error))
      die (path, error);
    g_free (path);
    fer_st_writer_free (wr);
  }
  /* Written by hand: the writer makes F32 and F16 only. */
  write_raw (dir, "metadata-only.safetensors",
      "{\"__metadata__\":{\"k\":\"v\"}}", NULL, 0);
  const guint8 bf16[4] = { 0x80, 0x3f, 0x00, 0xc0 }; /* 1.0, -2.0 */
  write_raw (dir, "bf16.safetensors",
      "{\"w\":{\"dtype\":\"BF16\","
      "\"shape\":[2],\"data_offsets\":[0,4]},\"__metadata__\":"
      "{\"fer.labels\":\"a,b\"}}",
      bf16, sizeof bf16);
  g_free (dir);
}

/* A small JPEG of `components` (1 or 3) through libjpeg. */
static void
write_jpeg (const char *dir, const char *name, int w, int h, int components)
{
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr err;
  unsigned char *mem = NULL;
  unsigned long mem_size = 0;
  guint8 *row = g_malloc ((size_t) w * components);

  c.err = jpeg_std_error (&err);
  jpeg_create_compress (&c);
  jpeg_mem_dest (&c, &mem, &mem_size);
  c.image_width = (JDIMENSION) w;
  c.image_height = (JDIMENSION) h;
  c.input_components = components;
  c.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults (&c);
  jpeg_set_quality (&c, 75, TRUE);
  jpeg_start_compress (&c, TRUE);
  while (c.next_scanline < c.image_height) {
    for (int x = 0; x < w * components; x++)
      row[x] = (guint8) (x * 7 + c.next_scanline * 13);
    JSAMPROW r = row;
    jpeg_write_scanlines (&c, &r, 1);
  }
  jpeg_finish_compress (&c);
  jpeg_destroy_compress (&c);
  write_bytes (dir, name, mem, mem_size);
  free (mem);
  g_free (row);
}

static void
image_seeds (const char *out)
{
  char *dir = seed_dir (out, "image");
  const struct
  {
    const char *name;
    fer_pixel_format format;
    int bpp;
  } pngs[] = {
    { "gray.png", FER_PIXEL_GRAY8, 1 },
    { "rgb.png", FER_PIXEL_RGB, 3 },
    { "rgba.png", FER_PIXEL_RGBA, 4 },
  };
  guint8 pixels[8 * 6 * 4];
  for (guint i = 0; i < sizeof pixels; i++)
    pixels[i] = (guint8) (i * 37);
  for (guint i = 0; i < G_N_ELEMENTS (pngs); i++) {
    GError *error = NULL;
    fer_image img = { pngs[i].format, 8, 6, { pixels }, { 8 * pngs[i].bpp },
      TRUE };
    char *path = g_build_filename (dir, pngs[i].name, NULL);
    if (!fer_png_write (path, &img, &error))
      die (path, error);
    g_free (path);
  }
  write_jpeg (dir, "gray.jpg", 9, 7, 1);
  write_jpeg (dir, "rgb.jpg", 16, 9, 3);
  g_free (dir);
}

static void
csv_seeds (const char *out)
{
  char *dir = seed_dir (out, "csv");
  const char *usages[] = { "Training", "PublicTest", "PrivateTest" };
  GString *s = g_string_new ("emotion,pixels,Usage\n");
  GString *plain = g_string_new ("emotion,pixels\n");
  for (int r = 0; r < 3; r++) {
    GString *px = g_string_new (NULL);
    for (int i = 0; i < 48 * 48; i++)
      g_string_append_printf (px, i ? " %d" : "%d", (i * 31 + r * 7) % 256);
    g_string_append_printf (s, "%d,%s,%s\n", r * 3, px->str, usages[r]);
    g_string_append_printf (plain, "%d,\"%s\"\n", r + 1, px->str);
    g_string_free (px, TRUE);
  }
  write_bytes (dir, "usage.csv", s->str, s->len);
  write_bytes (dir, "plain.csv", plain->str, plain->len);
  g_string_free (s, TRUE);
  g_string_free (plain, TRUE);
  g_free (dir);
}

/* fuzz-model's input: u32 data-area size + the JSON header of a real
 * model (its weights are not part of the input; the target adds a zero
 * data area of the given size). */
static void
write_model_seed (const char *dir, const char *name, const fer_arch *arch,
    fer_dtype dtype, const char *const *metadata)
{
  GError *error = NULL;
  char *tmp = g_build_filename (dir, "model.tmp", NULL);
  if (!fer_model_write_random (arch, 1, FALSE, dtype, metadata, tmp, &error))
    die (name, error);
  char *bytes = NULL;
  gsize size = 0;
  guint64 hlen = 0;
  if (!g_file_get_contents (tmp, &bytes, &size, &error))
    die (tmp, error);
  memcpy (&hlen, bytes, 8);
  hlen = GUINT64_FROM_LE (hlen);
  if (size < 8 || hlen > size - 8)
    die (tmp, NULL);
  guint32 data_size = GUINT32_TO_LE ((guint32) (size - 8 - hlen));
  /* the size replaces the header length: the header follows at offset 4 */
  memcpy (bytes + 4, &data_size, 4);
  write_bytes (dir, name, bytes + 4, 4 + hlen);
  g_unlink (tmp);
  g_free (bytes);
  g_free (tmp);
}

static void
model_seeds (const char *out)
{
  char *dir = seed_dir (out, "model");
  const fer_stem stems[] = { FER_STEM_TORCHVISION, FER_STEM_SMALL,
    FER_STEM_NOPOOL };
  for (guint s = 0; s < G_N_ELEMENTS (stems); s++)
    for (int head = FER_HEAD_FC; head <= FER_HEAD_MLP; head++)
      for (int channels = 1; channels <= 3; channels += 2) {
        fer_arch a = { stems[s], (fer_head) head, channels, 7 };
        const char *md[] = { "fer.stem", fer_stem_name (stems[s]), NULL };
        char *name =
            g_strdup_printf ("%s-%s-%d.model", fer_stem_name (stems[s]),
                head == FER_HEAD_FC ? "fc" : "mlp", channels);
        write_model_seed (dir, name, &a, FER_DTYPE_F16, md);
        g_free (name);
      }
  /* Metadata variants: every key the loader reads, in F32 too. */
  const fer_arch small3 = { FER_STEM_SMALL, FER_HEAD_FC, 3, 3 };
  const char *md3[] = { "fer.labels",
    "caf\xc3\xa9, \xc3\xbc"
    "ber,x",
    "fer.input_size", "32", "fer.crop_size", "28", "fer.input_channels", "3",
    "fer.mean", "0.485,0.456,0.406", "fer.std", "0.229,0.224,0.225", "fer.stem",
    "small", NULL };
  write_model_seed (dir, "metadata-3ch.model", &small3, FER_DTYPE_F32, md3);
  const fer_arch tv2 = { FER_STEM_TORCHVISION, FER_HEAD_FC, 1, 2 };
  const char *md2[] = { "fer.labels", "no,yes", "fer.input_size", "8",
    "fer.mean", "0.5", "fer.std", "0.25", NULL };
  write_model_seed (dir, "metadata-2class.model", &tv2, FER_DTYPE_F16, md2);
  g_free (dir);
}

/* fuzz-folder's trees: a flags byte, then "path\0kind" entries (kind 0
 * a folder, 1 a gray PNG, 2 an RGB PNG, 3 a few bytes, 4 empty). */
static void
folder_seeds (const char *out)
{
  char *dir = seed_dir (out, "folder");
  static const char two[] = "\0angry/a.png\0\1angry/b.PNG\0\2"
                            "happy/c.jpg\0\3happy/d.png\0\1";
  static const char odd[] = "\2caf\xc3\xa9/x.png\0\1.hidden/y.png\0\1"
                            "happy/notes.txt\0\4happy/z.jpeg\0\2empty\0\0"
                            "root.png\0\1happy/sub/w.png\0\1";
  static const char given[] = "\1angry/a.png\0\1happy/b.png\0\2"
                              "caf\xc3\xa9/c.png\0\1";
  static const char bad[] = "\0\xff\xfe/a.png\0\1ok/b.png\0\1"
                            "a,b/c.png\0\1";
  write_bytes (dir, "two-labels", two, sizeof two - 1);
  write_bytes (dir, "odd-names", odd, sizeof odd - 1);
  write_bytes (dir, "given-labels", given, sizeof given - 1);
  write_bytes (dir, "not-utf8", bad, sizeof bad - 1);
  g_free (dir);
}

/* fuzz-element's inputs: 8 setting bytes (format, width - 1, height - 1,
 * mode, margin, min-size - 1, tta - 1, flags), ROI records (x, y, w, h,
 * type, id; int16 little-endian but the type byte), pixels. */
static void
element_seed (const char *dir, const char *name, const guint8 settings[8],
    const gint16 (*rois)[6], int n_rois)
{
  GByteArray *b = g_byte_array_new ();
  g_byte_array_append (b, settings, 8);
  for (int i = 0; i < n_rois; i++)
    for (int k = 0; k < 6; k++) {
      guint8 le[2] = { (guint8) (rois[i][k] & 0xff),
        (guint8) ((guint16) rois[i][k] >> 8) };
      g_byte_array_append (b, le, k == 4 ? 1 : 2);
    }
  const guint8 end[11] = { 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0 };
  g_byte_array_append (b, end, sizeof end);
  for (int i = 0; i < 64; i++) {
    guint8 px = (guint8) (i * 37);
    g_byte_array_append (b, &px, 1);
  }
  write_bytes (dir, name, b->data, b->len);
  g_byte_array_unref (b);
}

static void
element_seeds (const char *out)
{
  char *dir = seed_dir (out, "element");
  /* formats: 0 GRAY8, 1 RGB, 6 BGRx, 9 I420, 10 NV12; modes 0 auto,
   * 1 frame, 2 roi */
  const guint8 frame[8] = { 0, 47, 47, 1, 0, 0, 0, 1 };
  element_seed (dir, "gray8-frame", frame, NULL, 0);
  const guint8 roi[8] = { 1, 63, 47, 2, 25, 7, 1, 1 };
  const gint16 two[][6] = { { 4, 4, 24, 24, 0, 1 }, { 30, 10, 30, 30, 0, 2 } };
  element_seed (dir, "rgb-roi", roi, two, 2);
  const guint8 odd[8] = { 9, 32, 16, 0, 51, 0, 0, 0 };
  const gint16 edge[][6] = { { -5, -3, 20, 12, 0, 7 }, { 30, 14, 40, 40, 1, 8 },
    { 2, 2, 0, 9, 0, -1 } };
  element_seed (dir, "i420-odd-auto", odd, edge, 3);
  const guint8 person[8] = { 10, 40, 30, 2, 0, 3, 0, 3 };
  const gint16 people[][6] = { { 1, 1, 38, 28, 1, 3 }, { 0, 0, 9, 9, 0, 4 } };
  element_seed (dir, "nv12-person", person, people, 2);
  const guint8 bgrx[8] = { 6, 0, 0, 0, 255, 0, 1, 1 };
  const gint16 tiny[][6] = { { 0, 0, 1, 1, 0, 5 } };
  element_seed (dir, "bgrx-1x1", bgrx, tiny, 1);
  g_free (dir);
}

/* Packed datasets (fer-pack): one small gray set and one RGB set. */
static void
pack_seeds (const char *out)
{
  char *dir = seed_dir (out, "pack");
  char *path = g_build_filename (dir, "two-sets.ferpack", NULL);
  const char *labels[] = { "angry", "happy", NULL };
  fer_dataset gray = { .source = (char *) "seed",
    .size = 8,
    .channels = 1,
    .n_classes = 2,
    .labels = (char **) labels,
    .n = 3 };
  fer_dataset rgb = gray;
  int y[3] = { 0, 1, 1 };
  int64_t counts[2] = { 1, 2 };
  uint8_t px[3 * 8 * 8 * 3];
  for (size_t i = 0; i < sizeof px; i++)
    px[i] = (uint8_t) ((i * 37) % 251);
  gray.pixels = rgb.pixels = px;
  gray.y = rgb.y = y;
  gray.counts = rgb.counts = counts;
  rgb.channels = 3;
  fer_pack_set sets[] = { { "train", &gray, 2 }, { "publictest", &rgb, 0 } };
  if (!fer_pack_write (path, sets, 2, NULL))
    abort ();
  g_free (path);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  if (argc != 2) {
    fprintf (stderr, "usage: fuzz-seeds OUTDIR\n");
    return 2;
  }
  safetensors_seeds (argv[1]);
  image_seeds (argv[1]);
  csv_seeds (argv[1]);
  model_seeds (argv[1]);
  folder_seeds (argv[1]);
  element_seeds (argv[1]);
  pack_seeds (argv[1]);
  return 0;
}
