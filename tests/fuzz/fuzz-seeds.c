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

#include <fer/safetensors.h>
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
  pack_seeds (argv[1]);
  return 0;
}
