/* Tests for the safetensors reader and writer (fer/safetensors.h).
 *
 * Round trips go through real files in a private temporary directory;
 * hostile inputs are built in memory by each test, so every one of them
 * documents the exact bytes it feeds the reader. Run with --seed to replay
 * the fuzz loop and the random half-precision checks. */

#include <fer/safetensors.h>

#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#define HOSTILE_NAME "hostile.safetensors"

static char *tmp_dir;

static char *
tmp_path (const char *basename)
{
  return g_build_filename (tmp_dir, basename, NULL);
}

static float
random_float (float lo, float hi)
{
  return (float) g_test_rand_double_range (lo, hi);
}

/* A file image: u64 little-endian header length, `header`, then `data`. */
static guint8 *
build_file (const char *header, size_t header_len, const void *data,
    size_t data_len, size_t *size)
{
  guint64 len_le = GUINT64_TO_LE ((guint64) header_len);
  guint8 *bytes = g_malloc0 (8 + header_len + data_len + 1);

  memcpy (bytes, &len_le, 8);
  memcpy (bytes + 8, header, header_len);
  if (data_len > 0 && data != NULL)
    memcpy (bytes + 8 + header_len, data, data_len);
  *size = 8 + header_len + data_len;
  return bytes;
}

static void
assert_error_names (
    const GError *error, gint code, const char *subject, const char *word)
{
  g_assert_nonnull (error);
  g_test_message ("error: %s", error->message);
  g_assert_true (error->domain == FER_ERROR);
  g_assert_cmpint (error->code, ==, code);
  g_assert_nonnull (strstr (error->message, subject));
  g_assert_nonnull (strstr (error->message, word));
  g_assert_null (strchr (error->message, '\n'));
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
}

/* `word2`, when not NULL, must be in the message too. */
static void
assert_bytes_rejected (
    const guint8 *bytes, size_t size, const char *word, const char *word2)
{
  GError *error = NULL;
  fer_safetensors *st;

  st = fer_safetensors_open_bytes (bytes, size, HOSTILE_NAME, &error);
  g_assert_null (st);
  assert_error_names (error, FER_ERROR_FORMAT, HOSTILE_NAME, word);
  if (word2 != NULL)
    g_assert_nonnull (strstr (error->message, word2));
  g_error_free (error);
}

/* ------------------------------------------------------------ round trip */

static fer_safetensors *
save_and_open (fer_st_writer *w, const char *basename, char **path_out)
{
  GError *error = NULL;
  char *path = tmp_path (basename);
  fer_safetensors *st;

  g_assert_true (fer_st_writer_save (w, path, &error));
  g_assert_no_error (error);
  st = fer_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (st);
  g_assert_cmpstr (fer_safetensors_path (st), ==, path);
  if (path_out != NULL)
    *path_out = path;
  else
    g_free (path);
  return st;
}

typedef struct
{
  const char *name;
  int ndim;
  int64_t shape[4];
} tensor_spec;

static const tensor_spec roundtrip_tensors[] = {
  { "conv1.weight", 4, { 4, 3, 3, 3 } },
  { "fc.bias", 1, { 7 } },
  { "scale", 0, { 0 } },
  { "empty", 2, { 0, 5 } },
};

static int64_t
spec_numel (const tensor_spec *spec)
{
  int64_t n = 1;

  for (int d = 0; d < spec->ndim; d++)
    n *= spec->shape[d];
  return n;
}

static void
check_roundtrip (fer_dtype dtype)
{
  const int n_tensors = G_N_ELEMENTS (roundtrip_tensors);
  fer_st_writer *w = fer_st_writer_new ();
  float *values[G_N_ELEMENTS (roundtrip_tensors)];
  const char *const *keys;
  fer_safetensors *st;
  GError *error = NULL;
  double max_abs = 0, max_rel = 0;

  for (int i = 0; i < n_tensors; i++) {
    const tensor_spec *spec = &roundtrip_tensors[i];
    int64_t numel = spec_numel (spec);

    values[i] = g_new (float, numel > 0 ? numel : 1);
    for (int64_t j = 0; j < numel; j++)
      values[i][j] = random_float (-100, 100) * (j % 3 == 0 ? 1e-3f : 1.0f);
    g_assert_true (fer_st_writer_add (
        w, spec->name, dtype, spec->ndim, spec->shape, values[i], &error));
    g_assert_no_error (error);
  }
  fer_st_writer_set_metadata (w, "format", "pt");
  fer_st_writer_set_metadata (w, "arch", "fer-cnn");
  fer_st_writer_set_metadata (w, "format", "fer");

  st = save_and_open (
      w, dtype == FER_DTYPE_F32 ? "f32.safetensors" : "f16.safetensors", NULL);
  fer_st_writer_free (w);

  g_assert_cmpint (fer_safetensors_n_tensors (st), ==, n_tensors);
  for (int i = 0; i < n_tensors; i++) {
    const tensor_spec *spec = &roundtrip_tensors[i];
    const fer_st_tensor *t = fer_safetensors_tensor (st, i);
    float *out = g_new (float, t->numel > 0 ? t->numel : 1);

    g_assert_cmpstr (t->name, ==, spec->name);
    g_assert_true (fer_safetensors_find (st, spec->name) == t);
    g_assert_cmpint (t->dtype, ==, dtype);
    g_assert_cmpint (t->ndim, ==, spec->ndim);
    for (int d = 0; d < spec->ndim; d++)
      g_assert_cmpint (t->shape[d], ==, spec->shape[d]);
    g_assert_cmpint (t->numel, ==, spec_numel (spec));
    g_assert_cmpuint (
        t->nbytes, ==, (size_t) t->numel * (dtype == FER_DTYPE_F32 ? 4 : 2));

    fer_safetensors_read_f32 (st, t, out);
    for (int64_t j = 0; j < t->numel; j++) {
      double x = values[i][j], y = out[j];
      double err = fabs (x - y);

      max_abs = MAX (max_abs, err);
      if (x != 0)
        max_rel = MAX (max_rel, err / fabs (x));
      if (dtype == FER_DTYPE_F32)
        g_assert_true (out[j] == values[i][j]);
      else
        /* Half an ulp of half precision, or half the smallest subnormal. */
        g_assert_cmpfloat (err, <=, MAX (fabs (x) / 2048, ldexp (1, -25)));
    }
    g_free (out);
    g_free (values[i]);
  }
  g_test_message ("%s round trip: max abs error %.3g, max rel error %.3g",
      dtype == FER_DTYPE_F32 ? "F32" : "F16", max_abs, max_rel);

  g_assert_null (fer_safetensors_find (st, "absent"));
  g_assert_cmpstr (fer_safetensors_metadata (st, "format"), ==, "fer");
  g_assert_cmpstr (fer_safetensors_metadata (st, "arch"), ==, "fer-cnn");
  g_assert_null (fer_safetensors_metadata (st, "absent"));
  keys = fer_safetensors_metadata_keys (st);
  g_assert_cmpuint (g_strv_length ((char **) keys), ==, 2);
  g_assert_true (g_strv_contains (keys, "format"));
  g_assert_true (g_strv_contains (keys, "arch"));

  fer_safetensors_free (st);
}

static void
test_roundtrip_f32 (void)
{
  check_roundtrip (FER_DTYPE_F32);
}

static void
test_roundtrip_f16 (void)
{
  check_roundtrip (FER_DTYPE_F16);
}

static void
test_header_order (void)
{
  /* Deliberately not alphabetical: the reader must not sort. */
  static const char *const names[] = { "z.last", "a.first", "m.middle" };
  fer_st_writer *w = fer_st_writer_new ();
  const int64_t shape[] = { 2 };
  const float data[] = { 1, 2 };
  fer_safetensors *st;

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    g_assert_true (
        fer_st_writer_add (w, names[i], FER_DTYPE_F32, 1, shape, data, NULL));
  st = save_and_open (w, "order.safetensors", NULL);
  fer_st_writer_free (w);

  g_assert_cmpint (fer_safetensors_n_tensors (st), ==, 3);
  for (int i = 0; i < 3; i++)
    g_assert_cmpstr (fer_safetensors_tensor (st, i)->name, ==, names[i]);
  g_assert_nonnull (fer_safetensors_metadata_keys (st));
  g_assert_null (fer_safetensors_metadata_keys (st)[0]);
  fer_safetensors_free (st);
}

static void
test_file_layout (void)
{
  fer_st_writer *w = fer_st_writer_new ();
  const int64_t shape[] = { 3 };
  const float first[] = { 1, 2, 3 }, second[] = { 4, 5, 6 };
  guint64 header_len;
  GError *error = NULL;
  char *path, *contents;
  const char *name;
  fer_safetensors *st;
  float out[3];
  gsize size;
  GDir *dir;

  g_assert_true (
      fer_st_writer_add (w, "x", FER_DTYPE_F16, 1, shape, first, NULL));
  fer_st_writer_set_metadata (w, "k", "v");
  st = save_and_open (w, "layout.safetensors", &path);
  fer_safetensors_free (st);
  fer_st_writer_free (w);

  g_assert_true (g_file_get_contents (path, &contents, &size, &error));
  memcpy (&header_len, contents, 8);
  header_len = GUINT64_FROM_LE (header_len);
  g_test_message ("header (%" G_GUINT64_FORMAT " bytes): %.*s", header_len,
      (int) header_len, contents + 8);
  g_assert_cmpuint (header_len % 8, ==, 0);
  g_assert_cmpuint (size, ==, 8 + header_len + 3 * 2);
  g_assert_true (contents[8] == '{');
  g_assert_nonnull (
      g_strstr_len (contents + 8, (gssize) header_len, "\"__metadata__\""));
  for (guint64 i = header_len; i > 0 && contents[8 + i - 1] != '}'; i--)
    g_assert_true (contents[8 + i - 1] == ' ');
  g_free (contents);

  /* Saving again replaces the file and leaves no temporary behind. */
  w = fer_st_writer_new ();
  g_assert_true (
      fer_st_writer_add (w, "x", FER_DTYPE_F32, 1, shape, second, NULL));
  g_assert_true (fer_st_writer_save (w, path, &error));
  g_assert_no_error (error);
  fer_st_writer_free (w);
  st = fer_safetensors_open (path, &error);
  g_assert_no_error (error);
  fer_safetensors_read_f32 (st, fer_safetensors_find (st, "x"), out);
  g_assert_cmpfloat (out[2], ==, 6);
  g_assert_null (fer_safetensors_metadata (st, "k"));
  fer_safetensors_free (st);

  dir = g_dir_open (tmp_dir, 0, &error);
  g_assert_no_error (error);
  while ((name = g_dir_read_name (dir)) != NULL)
    g_assert_null (strstr (name, ".tmp-"));
  g_dir_close (dir);
  g_free (path);
}

/* Hand-written file: BF16 and F16 data at odd offsets, a gap before the
 * first tensor, and an unpadded header, all of which the format allows. */
static void
test_unaligned_mixed_dtypes (void)
{
  const char *header =
      "{\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[1,5]},"
      "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[5,9]},"
      "\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[9,11]}}";
  const guint8 data[] = { 0xee, 0x80, 0x3f, 0x00, 0xc0, 0x00, 0x00, 0xc0, 0x3f,
    0x00, 0x3c };
  GError *error = NULL;
  fer_safetensors *st;
  guint8 *bytes;
  size_t size;
  float b[2], f, h;

  bytes = build_file (header, strlen (header), data, sizeof data, &size);
  st = fer_safetensors_open_bytes (bytes, size, "mixed", &error);
  g_free (bytes);
  g_assert_no_error (error);
  g_assert_cmpstr (fer_safetensors_path (st), ==, "mixed");

  fer_safetensors_read_f32 (st, fer_safetensors_find (st, "b"), b);
  fer_safetensors_read_f32 (st, fer_safetensors_find (st, "f"), &f);
  fer_safetensors_read_f32 (st, fer_safetensors_find (st, "h"), &h);
  g_assert_cmpfloat (b[0], ==, 1.0f);
  g_assert_cmpfloat (b[1], ==, -2.0f);
  g_assert_cmpfloat (f, ==, 1.5f);
  g_assert_cmpfloat (h, ==, 1.0f);
  g_assert_cmpint (fer_safetensors_find (st, "b")->dtype, ==, FER_DTYPE_BF16);
  fer_safetensors_free (st);
}

/* PyTorch state dicts carry integer tensors (num_batches_tracked is I64):
 * they load, and read_f32 converts every dtype. */
static void
test_integer_dtypes (void)
{
  const char *header =
      "{\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
      "\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[8,12]},"
      "\"s\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[12,14]},"
      "\"c\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[14,15]},"
      "\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[15,16]},"
      "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[16,24]},"
      "\"b\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[24,25]}}";
  guint8 data[25] = { 0 };
  gint64 n = GINT64_TO_LE (-123456);
  gint32 i32 = GINT32_TO_LE (-70000);
  gint16 i16 = GINT16_TO_LE (-300);
  double d = -2.5; /* little-endian host assumed, as the format */
  GError *error = NULL;
  size_t size;
  float v;

  memcpy (data, &n, 8);
  memcpy (data + 8, &i32, 4);
  memcpy (data + 12, &i16, 2);
  data[14] = 0xfe; /* -2 */
  data[15] = 200;
  memcpy (data + 16, &d, 8);
  data[24] = 1;
  guint8 *bytes =
      build_file (header, strlen (header), data, sizeof data, &size);
  fer_safetensors *st =
      fer_safetensors_open_bytes (bytes, size, "ints", &error);
  g_free (bytes);
  g_assert_no_error (error);
  const struct
  {
    const char *name;
    fer_dtype dtype;
    float value;
  } want[] = {
    { "n", FER_DTYPE_I64, -123456.0f },
    { "i", FER_DTYPE_I32, -70000.0f },
    { "s", FER_DTYPE_I16, -300.0f },
    { "c", FER_DTYPE_I8, -2.0f },
    { "u", FER_DTYPE_U8, 200.0f },
    { "d", FER_DTYPE_F64, -2.5f },
    { "b", FER_DTYPE_BOOL, 1.0f },
  };
  for (guint k = 0; k < G_N_ELEMENTS (want); k++) {
    const fer_st_tensor *t = fer_safetensors_find (st, want[k].name);
    g_assert_nonnull (t);
    g_assert_cmpint (t->dtype, ==, want[k].dtype);
    fer_safetensors_read_f32 (st, t, &v);
    g_assert_cmpfloat (v, ==, want[k].value);
  }
  fer_safetensors_free (st);
}

/* -------------------------------------------------------- half precision */

static void
test_f16_known_bits (void)
{
  g_assert_cmpfloat (fer_f16_to_f32 (0x3c00), ==, 1.0f);
  g_assert_cmpfloat (fer_f16_to_f32 (0xc000), ==, -2.0f);
  g_assert_cmpfloat (fer_f16_to_f32 (0x7bff), ==, 65504.0f);
  g_assert_cmpfloat (fer_f16_to_f32 (0x3555), ==, 0.333251953125f);
  g_assert_cmpfloat (fer_f16_to_f32 (0x0001), ==, ldexpf (1, -24));
  g_assert_cmpfloat_with_epsilon (fer_f16_to_f32 (0x0001), 5.96e-8, 1e-10);
  g_assert_cmpfloat (fer_f16_to_f32 (0x03ff), ==, ldexpf (1023, -24));
  g_assert_cmpfloat (fer_f16_to_f32 (0x0400), ==, ldexpf (1, -14));
  g_assert_true (
      isinf (fer_f16_to_f32 (0x7c00)) && fer_f16_to_f32 (0x7c00) > 0);
  g_assert_true (
      isinf (fer_f16_to_f32 (0xfc00)) && fer_f16_to_f32 (0xfc00) < 0);
  g_assert_true (isnan (fer_f16_to_f32 (0x7e00)));
  g_assert_true (isnan (fer_f16_to_f32 (0x7c01)));
  g_assert_true (
      fer_f16_to_f32 (0x8000) == 0 && signbit (fer_f16_to_f32 (0x8000)));

  g_assert_cmphex (fer_f32_to_f16 (1.0f), ==, 0x3c00);
  g_assert_cmphex (fer_f32_to_f16 (-2.0f), ==, 0xc000);
  g_assert_cmphex (fer_f32_to_f16 (65504.0f), ==, 0x7bff);
  g_assert_cmphex (fer_f32_to_f16 (1.0f / 3), ==, 0x3555);
  g_assert_cmphex (fer_f32_to_f16 (0.0f), ==, 0x0000);
  g_assert_cmphex (fer_f32_to_f16 (-0.0f), ==, 0x8000);
  g_assert_cmphex (fer_f32_to_f16 (ldexpf (1, -24)), ==, 0x0001);
  g_assert_cmphex (fer_f32_to_f16 (ldexpf (1, -14)), ==, 0x0400);
  g_assert_cmphex (fer_f32_to_f16 (INFINITY), ==, 0x7c00);
  g_assert_cmphex (fer_f32_to_f16 (-INFINITY), ==, 0xfc00);
  g_assert_cmphex (fer_f32_to_f16 (1e10f), ==, 0x7c00);
  g_assert_cmphex (fer_f32_to_f16 (-1e-10f), ==, 0x8000);
  {
    uint16_t nan = fer_f32_to_f16 (NAN);
    g_assert_cmphex (nan & 0x7c00, ==, 0x7c00);
    g_assert_cmphex (nan & 0x03ff, !=, 0);
  }

  /* Round to nearest, ties to even. */
  g_assert_cmphex (fer_f32_to_f16 (65519.0f), ==, 0x7bff);
  g_assert_cmphex (fer_f32_to_f16 (65520.0f), ==, 0x7c00);
  g_assert_cmphex (fer_f32_to_f16 (1 + ldexpf (1, -11)), ==, 0x3c00);
  g_assert_cmphex (fer_f32_to_f16 (1 + 3 * ldexpf (1, -11)), ==, 0x3c02);
  g_assert_cmphex (
      fer_f32_to_f16 (1 + ldexpf (1, -11) + ldexpf (1, -20)), ==, 0x3c01);
  g_assert_cmphex (fer_f32_to_f16 (ldexpf (1, -25)), ==, 0x0000);
  g_assert_cmphex (fer_f32_to_f16 (ldexpf (3, -26)), ==, 0x0001);
  g_assert_cmphex (fer_f32_to_f16 (ldexpf (3, -25)), ==, 0x0002);
  g_assert_cmphex (fer_f32_to_f16 (ldexpf (5, -25)), ==, 0x0002);
  g_assert_cmphex (fer_f32_to_f16 (ldexpf (2047, -25)), ==, 0x0400);
}

static void
test_bf16_known_bits (void)
{
  g_assert_cmpfloat (fer_bf16_to_f32 (0x3f80), ==, 1.0f);
  g_assert_cmpfloat (fer_bf16_to_f32 (0xc000), ==, -2.0f);
  g_assert_cmpfloat (fer_bf16_to_f32 (0x4049), ==, 3.140625f);
  g_assert_cmpfloat (fer_bf16_to_f32 (0x0001), ==, ldexpf (1, -133));
  g_assert_true (isinf (fer_bf16_to_f32 (0x7f80)));
  g_assert_true (isnan (fer_bf16_to_f32 (0x7fc0)));
}

/* Every half value survives half -> float -> half (NaN as some NaN). */
static void
test_f16_all_values_roundtrip (void)
{
  for (guint32 h = 0; h <= 0xffff; h++) {
    float f = fer_f16_to_f32 ((uint16_t) h);

    if (isnan (f))
      g_assert_true (isnan (fer_f16_to_f32 (fer_f32_to_f16 (f))));
    else
      g_assert_cmphex (fer_f32_to_f16 (f), ==, h);
  }
}

/* For random floats, no half value is closer than the one returned, and a
 * tie went to the even mantissa. */
static void
test_f16_rounding_property (void)
{
  for (int i = 0; i < 200000; i++) {
    guint32 bits = g_test_rand_int ();
    uint16_t h, mag;
    double x, got, below, above;
    float f;

    /* Half the draws land in the range a half can hold. */
    if (i % 2 == 0)
      bits = (bits & 0x80000000) | (bits % 0x477ff000);
    memcpy (&f, &bits, 4);
    h = fer_f32_to_f16 (f);

    if (isnan (f)) {
      g_assert_true (isnan (fer_f16_to_f32 (h)));
      continue;
    }
    g_assert_cmphex (h & 0x8000, ==, (bits >> 16) & 0x8000);
    x = fabs ((double) f);
    mag = h & 0x7fff;
    if (x >= 65520) {
      g_assert_cmphex (mag, ==, 0x7c00);
      continue;
    }
    g_assert_cmphex (mag, <=, 0x7bff);
    got = fer_f16_to_f32 (mag);
    below = mag > 0 ? fer_f16_to_f32 (mag - 1) : -INFINITY;
    above = mag < 0x7bff ? fer_f16_to_f32 (mag + 1) : 65536.0;
    g_assert_cmpfloat (fabs (got - x), <=, x - below);
    g_assert_cmpfloat (fabs (got - x), <=, above - x);
    if (fabs (got - x) == x - below || fabs (got - x) == above - x)
      g_assert_cmphex (mag & 1, ==, 0);
  }
}

/* ------------------------------------------------------------- hostile */

static void
test_empty_file (void)
{
  const guint8 nothing[1] = { 0 };

  assert_bytes_rejected (nothing, 0, "too short", NULL);
}

static void
test_truncated_length (void)
{
  const guint8 bytes[5] = { 0x10, 0, 0, 0, 0 };

  assert_bytes_rejected (bytes, sizeof bytes, "too short", NULL);
}

static void
test_header_length_past_end (void)
{
  const char *header = "{}      ";
  guint8 *bytes;
  size_t size;
  guint64 len_le = GUINT64_TO_LE (100);

  bytes = build_file (header, strlen (header), NULL, 0, &size);
  memcpy (bytes, &len_le, 8);
  assert_bytes_rejected (bytes, size, "exceeds", NULL);
  g_free (bytes);
}

/* What fer-classify --model face.png met: the file is named for what it
 * is not, not for an absurd header length alone. */
static void
test_not_safetensors (void)
{
  const guint8 png[16] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0,
    13, 'I', 'H', 'D', 'R' };
  const char text[] = "just some text, not a model\n";

  assert_bytes_rejected (png, sizeof png, "not a safetensors file", NULL);
  assert_bytes_rejected (
      (const guint8 *) text, sizeof text - 1, "not a safetensors file", NULL);
}

static void
test_header_length_absurd (void)
{
  const char *header = "{}      ";
  guint8 *bytes;
  size_t size;
  guint64 len_le = GUINT64_TO_LE (G_GUINT64_CONSTANT (1) << 63);

  bytes = build_file (header, strlen (header), NULL, 0, &size);
  memcpy (bytes, &len_le, 8);
  assert_bytes_rejected (bytes, size, "limit", NULL);
  g_free (bytes);
}

static void
test_truncated_data (void)
{
  const char *header =
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
  const guint8 data[16] = { 0 };
  guint8 *bytes;
  size_t size;

  bytes = build_file (header, strlen (header), data, sizeof data, &size);
  assert_bytes_rejected (bytes, size - 4, "truncated", "'w'");
  g_free (bytes);
}

typedef struct
{
  const char *test_name;
  const char *header;
  size_t data_len;
  const char *word;  /* expected in the message */
  const char *word2; /* also expected, or NULL */
} hostile_header;

static const hostile_header hostile_headers[] = {
  { "empty-header", "", 0, "empty", NULL },
  { "blank-header", "        ", 0, "empty", NULL },
  { "invalid-json", "{\"a\": {", 0, "JSON", NULL },
  { "trailing-garbage", "{} x", 0, "JSON", NULL },
  { "single-quotes", "{\"a\": 'x'}", 0, "JSON", "unexpected character" },
  { "comment", "{/* \" */}", 0, "JSON", "unexpected character" },
  { "deep-nesting", NULL, 0, "JSON", "nested deeper" },
  { "root-array", "[1, 2]", 0, "not a JSON object", NULL },
  { "root-string", "\"model\"", 0, "not a JSON object", NULL },
  { "entry-not-object", "{\"a\": 5}", 0, "not a JSON object", "'a'" },
  { "missing-dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
      "missing \"dtype\"", "'a'" },
  { "missing-shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
      "missing \"shape\"", "'a'" },
  { "missing-offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
      "missing \"data_offsets\"", "'a'" },
  { "dtype-not-string",
      "{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
      "not a string", "'a'" },
  { "dtype-i64",
      "{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
      "unsupported dtype 'C64'", "'a'" },
  { "shape-not-array",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4,
      "not an array", "'a'" },
  { "negative-dim",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
      "negative", "'a'" },
  { "fractional-dim",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
      "not an integer", "'a'" },
  { "too-many-dims",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
      "\"data_offsets\":[0,4]}}",
      4, "dimensions", "'a'" },
  { "numel-overflow",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,"
      "4294967296,4294967296],\"data_offsets\":[0,4]}}",
      4, "too many elements", "'a'" },
  { "bytes-overflow",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":"
      "[4611686018427387905],\"data_offsets\":[0,4]}}",
      4, "too large", "'a'" },
  { "offsets-not-pair",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
      "two integers", "'a'" },
  { "offsets-negative",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
      "negative", "'a'" },
  { "offsets-beyond-int64",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
      "\"data_offsets\":[0,99999999999999999999]}}",
      4, "negative", "'a'" },
  { "offsets-reversed",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
      "begin after", "'a'" },
  { "offsets-out-of-range",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}",
      16, "out of range", "'a'" },
  { "size-mismatch",
      "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],"
      "\"data_offsets\":[0,12]}}",
      16, "do not match shape [2, 2] of F32 (16 bytes)", "'fc.weight'" },
  { "overlap",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
      12, "overlap", "'a'" },
  { "overlap-same-range",
      "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
      4, "overlap", "'b'" },
  { "metadata-not-object", "{\"__metadata__\": \"x\"}", 0, "\"__metadata__\"",
      "not a JSON object" },
  { "metadata-not-string", "{\"__metadata__\": {\"epochs\": 30}}", 0,
      "not a string", "'epochs'" },
  { "name-with-newline", "{\"a\\nb\": 5}", 0, "'a?b'", "not a JSON object" },
  /* JSON escapes of lone surrogates decode to bytes that are not UTF-8;
   * messages show them escaped, and such names and metadata are refused. */
  { "utf8-tensor-name",
      "{\"\\udfffa\":{\"dtype\":\"F32\",\"shape\":[1],"
      "\"data_offsets\":[0,4]}}",
      4, "'\\xED\\xBF\\xBF'", "tensor name is not valid UTF-8" },
  { "utf8-dtype",
      "{\"a\":{\"dtype\":\"F\\ud800 \",\"shape\":[1],"
      "\"data_offsets\":[0,4]}}",
      4, "unsupported dtype 'F\\xED\\xA0\\x80'", "'a'" },
  { "utf8-metadata-key", "{\"__metadata__\":{\"\\ud800 \":\"x\"}}", 0,
      "'\\xED\\xA0\\x80'", "key is not valid UTF-8" },
  { "utf8-metadata-value", "{\"__metadata__\":{\"fer.labels\":\"\\ud800 \"}}",
      0, "'fer.labels'", "value is not valid UTF-8" },
  { "utf8-json-error",
      "{\"a\\ud800\":{\"dtype\":\"X\",\"shape\":[1],"
      "\"data_offsets\":[0,4]}}",
      4, "JSON", "\\xED\\xA0\\x80" },
};

/* fer_text_quote: every message string from a file goes through it. */
static void
test_quote (void)
{
  const struct
  {
    const char *in;
    int max;
    const char *out;
  } cases[] = {
    { "conv1.weight", 0, "conv1.weight" },
    { "a\nb\x7f", 0, "a?b?" },
    { "caf\xc3\xa9 \xe2\x82\xac", 0, "caf\xc3\xa9 \xe2\x82\xac" },
    /* a sequence cut short at the very end: never read past the NUL */
    { "a\xe2\x82", 0, "a\\xE2\\x82" },
    { "\xf0\x9f\x98", 0, "\\xF0\\x9F\\x98" },
    { "\x80x", 0, "\\x80x" },
    { "\xff\xfe", 0, "\\xFF\\xFE" },
    /* an encoded surrogate (what "\ud800" in JSON becomes) */
    { "\xed\xa0\x80", 0, "\\xED\\xA0\\x80" },
    /* cut at a character boundary */
    { "h\xc3\xa9llo", 2, "h\xc3\xa9..." },
    { "abc", 3, "abc" },
    { "", 0, "" },
    { NULL, 0, "(null)" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    char *q = fer_text_quote (cases[i].in, cases[i].max);
    g_assert_cmpstr (q, ==, cases[i].out);
    g_assert_true (g_utf8_validate (q, -1, NULL));
    g_free (q);
  }
  /* A partial sequence at the end of a heap block of exactly its size:
   * ASan reports any read past it. */
  char *tail = g_malloc (3);
  memcpy (tail, "\xe2\x82", 3);
  char *q = fer_text_quote (tail, 0);
  g_assert_cmpstr (q, ==, "\\xE2\\x82");
  g_free (q);
  g_free (tail);
}

static void
test_hostile_header (gconstpointer data)
{
  const hostile_header *c = data;
  char *header;
  guint8 *bytes;
  size_t size;

  if (c->header != NULL) {
    header = g_strdup (c->header);
  } else {
    /* Deep enough to overflow the stack inside json-glib. */
    header = g_malloc (1000001);
    memset (header, '[', 1000000);
    header[1000000] = '\0';
  }
  bytes = build_file (header, strlen (header), NULL, c->data_len, &size);
  assert_bytes_rejected (bytes, size, c->word, c->word2);
  g_free (bytes);
  g_free (header);
}

/* Errors for a file on disk name its path. */
static void
test_hostile_file_on_disk (void)
{
  const char *header = "{\"a\":{\"dtype\":\"C64\",\"shape\":[1],"
                       "\"data_offsets\":[0,8]}}";
  const guint8 data[8] = { 0 };
  GError *error = NULL;
  char *path = tmp_path ("c64.safetensors");
  guint8 *bytes;
  size_t size;

  bytes = build_file (header, strlen (header), data, sizeof data, &size);
  g_assert_true (
      g_file_set_contents (path, (const char *) bytes, (gssize) size, &error));
  g_assert_null (fer_safetensors_open (path, &error));
  assert_error_names (error, FER_ERROR_FORMAT, path, "C64");
  g_error_free (error);
  g_unlink (path);
  g_free (bytes);
  g_free (path);
}

static void
test_missing_file (void)
{
  GError *error = NULL;
  char *path = tmp_path ("does-not-exist.safetensors");

  g_assert_null (fer_safetensors_open (path, &error));
  assert_error_names (error, FER_ERROR_IO, path, "cannot read");
  g_error_free (error);
  g_free (path);
}

static void
test_directory (void)
{
  GError *error = NULL;

  g_assert_null (fer_safetensors_open (tmp_dir, &error));
  assert_error_names (error, FER_ERROR_IO, tmp_dir, "cannot read");
  g_error_free (error);
}

/* Random mutations of a valid file: each open either succeeds, and then
 * every tensor can be read, or fails with a clean FORMAT error. Valgrind
 * checks the "clean" part. */
static void
test_fuzz (void)
{
  const int64_t shape_a[] = { 3, 5 }, shape_b[] = { 4 }, shape_c[] = { 0 };
  float values[15];
  fer_st_writer *w = fer_st_writer_new ();
  char *path = tmp_path ("fuzz.safetensors");
  guint8 *valid, *mutated;
  gsize size;
  guint64 header_len;
  int opened = 0, rejected = 0;

  for (int i = 0; i < 15; i++)
    values[i] = (float) i - 7;
  g_assert_true (
      fer_st_writer_add (w, "a", FER_DTYPE_F32, 2, shape_a, values, NULL));
  g_assert_true (
      fer_st_writer_add (w, "b", FER_DTYPE_F16, 1, shape_b, values, NULL));
  g_assert_true (
      fer_st_writer_add (w, "c", FER_DTYPE_F32, 1, shape_c, NULL, NULL));
  fer_st_writer_set_metadata (w, "note", "fuzz");
  g_assert_true (fer_st_writer_save (w, path, NULL));
  fer_st_writer_free (w);
  g_assert_true (g_file_get_contents (path, (char **) &valid, &size, NULL));
  g_unlink (path);
  g_free (path);
  memcpy (&header_len, valid, 8);
  header_len = GUINT64_FROM_LE (header_len);

  mutated = g_malloc (size);
  for (int iter = 0; iter < 2000; iter++) {
    static const char json_chars[] = "{}[]\":,-0123456789eE. \\'/";
    size_t len = size;
    GError *error = NULL;
    fer_safetensors *st;
    int n_changes = g_test_rand_int_range (1, 5);

    memcpy (mutated, valid, size);
    for (int k = 0; k < n_changes; k++) {
      /* Mostly inside the header, where the parser and checks are. */
      size_t at =
          (size_t) g_test_rand_int_range (0, (gint32) (8 + header_len + 4));

      switch (g_test_rand_int_range (0, 5)) {
        case 0:
          mutated[at] = (guint8) g_test_rand_int_range (0, 256);
          break;
        case 1:
          mutated[at] = (guint8)
              json_chars[g_test_rand_int_range (0, sizeof json_chars - 1)];
          break;
        case 2:
          mutated[at] ^= (guint8) (1u << g_test_rand_int_range (0, 8));
          break;
        case 3:
          len = (size_t) g_test_rand_int_range (0, (gint32) size + 1);
          break;
        case 4:
          mutated[g_test_rand_int_range (0, 8)] =
              (guint8) g_test_rand_int_range (0, 256);
          break;
      }
    }

    st = fer_safetensors_open_bytes (mutated, len, HOSTILE_NAME, &error);
    if (st != NULL) {
      g_assert_no_error (error);
      for (int i = 0; i < fer_safetensors_n_tensors (st); i++) {
        const fer_st_tensor *t = fer_safetensors_tensor (st, i);
        float *out = g_new (float, t->numel > 0 ? t->numel : 1);

        g_assert_cmpuint (t->offset + t->nbytes, <=, len);
        fer_safetensors_read_f32 (st, t, out);
        g_free (out);
      }
      fer_safetensors_free (st);
      opened++;
    } else {
      g_assert_nonnull (error);
      g_assert_true (error->domain == FER_ERROR);
      g_assert_cmpint (error->code, ==, FER_ERROR_FORMAT);
      g_assert_nonnull (strstr (error->message, HOSTILE_NAME));
      g_assert_null (strchr (error->message, '\n'));
      g_error_free (error);
      rejected++;
    }
  }
  g_test_message (
      "fuzz: %d mutated files opened, %d rejected", opened, rejected);
  g_assert_cmpint (rejected, >, 0);
  g_free (mutated);
  g_free (valid);
}

/* ---------------------------------------------------------------- writer */

static void
test_writer_rejects (void)
{
  fer_st_writer *w = fer_st_writer_new ();
  const int64_t shape[] = { 2 }, negative[] = { -2 };
  const float data[] = { 1, 2 };
  GError *error = NULL;

  g_assert_true (fer_st_writer_add (
      w, "fc.weight", FER_DTYPE_F32, 1, shape, data, &error));
  g_assert_no_error (error);

  g_assert_false (fer_st_writer_add (
      w, "fc.weight", FER_DTYPE_F16, 1, shape, data, &error));
  assert_error_names (
      error, FER_ERROR_INVALID_ARGUMENT, "'fc.weight'", "already");
  g_clear_error (&error);

  g_assert_false (
      fer_st_writer_add (w, "bf", FER_DTYPE_BF16, 1, shape, data, &error));
  assert_error_names (error, FER_ERROR_INVALID_ARGUMENT, "'bf'", "BF16");
  g_clear_error (&error);

  g_assert_false (fer_st_writer_add (
      w, "__metadata__", FER_DTYPE_F32, 1, shape, data, &error));
  assert_error_names (
      error, FER_ERROR_INVALID_ARGUMENT, "__metadata__", "invalid tensor name");
  g_clear_error (&error);

  g_assert_false (
      fer_st_writer_add (w, "neg", FER_DTYPE_F32, 1, negative, data, &error));
  assert_error_names (error, FER_ERROR_INVALID_ARGUMENT, "'neg'", "negative");
  g_clear_error (&error);

  g_assert_false (fer_st_writer_add (
      w, "deep", FER_DTYPE_F32, FER_ST_MAX_DIMS + 1, shape, data, &error));
  assert_error_names (
      error, FER_ERROR_INVALID_ARGUMENT, "'deep'", "dimensions");
  g_clear_error (&error);

  /* a path that is not UTF-8 (file names are bytes), in a missing folder
   * and in the reader: shown as valid UTF-8 */
  g_assert_false (
      fer_st_writer_save (w, "/nonexistent/caf\xE9/m.safetensors", &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_IO);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
  g_assert_nonnull (strstr (error->message, "/nonexistent/caf\\xE9/m"));
  g_clear_error (&error);
  g_assert_null (
      fer_safetensors_open ("/nonexistent/caf\xE9/m.safetensors", &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_IO);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
  g_assert_nonnull (strstr (error->message, "/nonexistent/caf\\xE9/m"));
  g_clear_error (&error);

  fer_st_writer_free (w);
}

/* Metadata that is not UTF-8 (a label from a folder name, say) is refused
 * without a critical (the tests run with fatal criticals); save names it,
 * quoted, and writes nothing. */
static void
test_writer_metadata_utf8 (void)
{
  static const struct
  {
    const char *key, *value, *named, *problem;
  } cases[] = {
    { "fer.labels", "happy,sad\xff", "sad\\xFF", "value is not valid UTF-8" },
    { "fer.\xc3", "x", "fer.\\xC3", "key is not valid UTF-8" },
    { "", "x", "''", "empty key" },
    { "fer.labels", NULL, "(null)", "has no value" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *path =
        g_build_filename (tmp_dir, "refused.safetensors", NULL);
    fer_st_writer *w = fer_st_writer_new ();
    const int64_t shape[] = { 1 };
    const float data[] = { 1 };
    GError *error = NULL;

    g_assert_true (
        fer_st_writer_add (w, "t", FER_DTYPE_F32, 1, shape, data, &error));
    fer_st_writer_set_metadata (w, "fer.ok", "fine");
    fer_st_writer_set_metadata (w, cases[i].key, cases[i].value);
    g_assert_false (fer_st_writer_save (w, path, &error));
    g_test_message ("case %u: %s", i, error->message);
    assert_error_names (
        error, FER_ERROR_INVALID_ARGUMENT, cases[i].named, cases[i].problem);
    g_assert_true (g_utf8_validate (error->message, -1, NULL));
    g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
    g_clear_error (&error);
    fer_st_writer_free (w);
  }
}

static void
test_writer_missing_directory (void)
{
  fer_st_writer *w = fer_st_writer_new ();
  const int64_t shape[] = { 1 };
  const float data[] = { 1 };
  GError *error = NULL;
  char *path = g_build_filename (tmp_dir, "no-such-dir", "m.safetensors", NULL);

  g_assert_true (
      fer_st_writer_add (w, "x", FER_DTYPE_F32, 1, shape, data, NULL));
  g_assert_false (fer_st_writer_save (w, path, &error));
  assert_error_names (error, FER_ERROR_IO, path, "cannot create");
  g_error_free (error);
  g_free (path);
  fer_st_writer_free (w);
}

static void
test_free_null (void)
{
  fer_safetensors_free (NULL);
  fer_st_writer_free (NULL);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  int ret;

  g_test_init (&argc, &argv, NULL);

  tmp_dir = g_dir_make_tmp ("fer-safetensors-XXXXXX", &error);
  g_assert_no_error (error);

  g_test_add_func ("/safetensors/roundtrip/f32", test_roundtrip_f32);
  g_test_add_func ("/safetensors/roundtrip/f16", test_roundtrip_f16);
  g_test_add_func ("/safetensors/roundtrip/header-order", test_header_order);
  g_test_add_func ("/safetensors/roundtrip/file-layout", test_file_layout);
  g_test_add_func ("/safetensors/read/integer-dtypes", test_integer_dtypes);
  g_test_add_func (
      "/safetensors/read/unaligned-mixed-dtypes", test_unaligned_mixed_dtypes);
  g_test_add_func ("/safetensors/half/f16-known-bits", test_f16_known_bits);
  g_test_add_func ("/safetensors/half/bf16-known-bits", test_bf16_known_bits);
  g_test_add_func (
      "/safetensors/half/f16-all-values", test_f16_all_values_roundtrip);
  g_test_add_func (
      "/safetensors/half/f16-rounding", test_f16_rounding_property);
  g_test_add_func ("/safetensors/hostile/empty-file", test_empty_file);
  g_test_add_func (
      "/safetensors/hostile/truncated-length", test_truncated_length);
  g_test_add_func ("/safetensors/hostile/header-length-past-end",
      test_header_length_past_end);
  g_test_add_func (
      "/safetensors/hostile/header-length-absurd", test_header_length_absurd);
  g_test_add_func (
      "/safetensors/hostile/not-safetensors", test_not_safetensors);
  g_test_add_func ("/safetensors/hostile/truncated-data", test_truncated_data);
  for (guint i = 0; i < G_N_ELEMENTS (hostile_headers); i++) {
    char *name = g_strconcat (
        "/safetensors/hostile/", hostile_headers[i].test_name, NULL);
    g_test_add_data_func (name, &hostile_headers[i], test_hostile_header);
    g_free (name);
  }
  g_test_add_func (
      "/safetensors/hostile/file-on-disk", test_hostile_file_on_disk);
  g_test_add_func ("/safetensors/hostile/fuzz", test_fuzz);
  g_test_add_func ("/safetensors/io/missing-file", test_missing_file);
  g_test_add_func ("/safetensors/io/directory", test_directory);
  g_test_add_func ("/safetensors/writer/rejects", test_writer_rejects);
  g_test_add_func (
      "/safetensors/writer/missing-directory", test_writer_missing_directory);
  g_test_add_func (
      "/safetensors/writer/metadata-utf8", test_writer_metadata_utf8);
  g_test_add_func ("/safetensors/free-null", test_free_null);
  g_test_add_func ("/safetensors/quote", test_quote);

  ret = g_test_run ();

  /* Each test removes what it leaves only on success; this catches the
   * round-trip files. */
  {
    GDir *dir = g_dir_open (tmp_dir, 0, NULL);
    const char *name;

    while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
      char *path = tmp_path (name);
      g_unlink (path);
      g_free (path);
    }
    if (dir != NULL)
      g_dir_close (dir);
  }
  g_rmdir (tmp_dir);
  g_free (tmp_dir);
  return ret;
}
