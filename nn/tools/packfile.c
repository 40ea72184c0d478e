/* Packed datasets (contract and file layout in packfile.h).
 *
 * The range coder is the classic carry-less-by-cache binary coder with
 * 11-bit adaptive probabilities; a residual is a 9-bit symbol coded by a
 * binary tree of such probabilities, one tree per activity context. The
 * encoder and the decoder walk the image with the same function
 * (code_image), so their predictions and contexts cannot drift apart. The
 * decoder reads exactly the bytes the encoder wrote, never past the
 * payload: a payload that runs out is refused as soon as it does, and one
 * that decodes to wrong pixels is refused by the checksum.
 *
 * A payload byte cannot decode to more than about 40 pixels: the likeliest
 * bit has a probability of at most 2017/2048 (PROB_SHIFT stops the update
 * there), so it narrows the range by at least -log2(2017/2048) = 0.022
 * bits, a 9-bit symbol by 0.198 bits, and the decoder reads a byte per 8
 * bits. A set that claims more pixels than MAX_PIXELS_PER_BYTE times its
 * payload (a few bytes that would decode gigabytes) is refused before
 * anything is allocated. */
#include "packfile.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAGIC "FERPACK1"
#define MAX_SETS 16
#define MAX_NAME 64
#define MAX_SIDE 1024
#define MAX_IMAGES (1 << 24)
#define PROB_BITS 11
#define PROB_INIT (1u << (PROB_BITS - 1))
#define PROB_SHIFT 5
#define TOP (1u << 24)
#define SYMBOL_BITS 9
#define N_CONTEXTS 8
#define MAX_PIXELS_PER_BYTE 48

/* ------------------------------------------------------------------ */
/* Range coder                                                         */

typedef struct
{
  /* encoder */
  uint64_t low;
  uint8_t cache;
  uint64_t cache_size;
  GByteArray *out;
  /* decoder */
  uint32_t code;
  const uint8_t *in;
  size_t in_len, in_pos;
  gboolean overrun; /* the decoder wanted a byte past the payload */
  /* both */
  uint32_t range;
  gboolean encode;
  uint16_t probs[N_CONTEXTS][1 << SYMBOL_BITS];
} coder;

static void
coder_init (coder *c, gboolean encode)
{
  memset (c, 0, sizeof *c);
  c->encode = encode;
  c->range = 0xFFFFFFFFu;
  c->cache_size = 1;
  for (int k = 0; k < N_CONTEXTS; k++)
    for (int i = 0; i < (1 << SYMBOL_BITS); i++)
      c->probs[k][i] = PROB_INIT;
}

static void
shift_low (coder *c)
{
  if ((uint32_t) c->low < 0xFF000000u || (c->low >> 32) != 0) {
    uint8_t carry = (uint8_t) (c->low >> 32), b = c->cache;
    do {
      uint8_t v = (uint8_t) (b + carry);
      g_byte_array_append (c->out, &v, 1);
      b = 0xFF;
    } while (--c->cache_size != 0);
    c->cache = (uint8_t) ((uint32_t) c->low >> 24);
  }
  c->cache_size++;
  c->low = (uint32_t) c->low << 8;
}

static void
encoder_flush (coder *c)
{
  for (int i = 0; i < 5; i++)
    shift_low (c);
}

static uint8_t
next_byte (coder *c)
{
  if (c->in_pos < c->in_len)
    return c->in[c->in_pos++];
  c->overrun = TRUE;
  return 0;
}

static void
decoder_start (coder *c, const uint8_t *in, size_t len)
{
  c->in = in;
  c->in_len = len;
  for (int i = 0; i < 5; i++)
    c->code = (c->code << 8) | next_byte (c);
}

/* Codes one bit with probability *p (of a 0), returning the bit. */
static int
code_bit (coder *c, uint16_t *p, int bit)
{
  uint32_t bound = (c->range >> PROB_BITS) * *p;
  if (c->encode) {
    if (bit == 0)
      c->range = bound;
    else {
      c->low += bound;
      c->range -= bound;
    }
  } else {
    bit = c->code >= bound;
    if (bit == 0)
      c->range = bound;
    else {
      c->code -= bound;
      c->range -= bound;
    }
  }
  if (bit == 0)
    *p += ((1u << PROB_BITS) - *p) >> PROB_SHIFT;
  else
    *p -= *p >> PROB_SHIFT;
  while (c->range < TOP) {
    c->range <<= 8;
    if (c->encode)
      shift_low (c);
    else
      c->code = (c->code << 8) | next_byte (c);
  }
  return bit;
}

static int
code_symbol (coder *c, int ctx, int symbol)
{
  int m = 1;
  for (int i = SYMBOL_BITS - 1; i >= 0; i--)
    m = (m << 1) | code_bit (c, &c->probs[ctx][m], (symbol >> i) & 1);
  return m - (1 << SYMBOL_BITS);
}

/* ------------------------------------------------------------------ */
/* Images                                                              */

static int
activity_context (int a)
{
  static const int upper[N_CONTEXTS - 1] = { 0, 2, 5, 9, 16, 30, 60 };
  for (int k = 0; k < N_CONTEXTS - 1; k++)
    if (a <= upper[k])
      return k;
  return N_CONTEXTS - 1;
}

static int
median_predict (int w, int n, int nw)
{
  int hi = MAX (w, n), lo = MIN (w, n);
  return nw >= hi ? lo : nw <= lo ? hi : w + n - nw;
}

/* Encodes src (side x side x channels) or decodes into rec; rec holds the
 * decoded pixels either way (the encoder predicts from them, as the
 * decoder will). */
static void
code_image (coder *c, const uint8_t *src, uint8_t *rec, int side, int channels,
    int delta)
{
  const int step = 2 * delta + 1, row = side * channels;
  for (int ch = 0; ch < channels; ch++)
    for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++) {
        const size_t at = (size_t) y * row + (size_t) x * channels + ch;
        int n, w, nw, ne;
        if (y == 0) {
          n = w = nw = ne = x > 0 ? rec[at - channels] : 128;
        } else {
          n = rec[at - row];
          w = x > 0 ? rec[at - channels] : n;
          nw = x > 0 ? rec[at - row - channels] : n;
          ne = x + 1 < side ? rec[at - row + channels] : n;
        }
        const int pred = y == 0 ? w : median_predict (w, n, nw);
        const int ctx =
            activity_context (abs (n - nw) + abs (nw - w) + abs (ne - n));
        int q = 0;
        if (c->encode) {
          int e = src[at] - pred;
          q = e >= 0 ? (e + delta) / step : -((-e + delta) / step);
          code_symbol (c, ctx, q >= 0 ? 2 * q : -2 * q - 1);
        } else {
          int z = code_symbol (c, ctx, 0);
          q = z & 1 ? -(z + 1) / 2 : z / 2;
        }
        rec[at] = (uint8_t) CLAMP (pred + q * step, 0, 255);
      }
}

#define FNV_START G_GUINT64_CONSTANT (14695981039346656037)

static uint64_t
fnv1a (uint64_t h, const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= G_GUINT64_CONSTANT (1099511628211);
  }
  return h;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

static void
put_u8 (GByteArray *b, unsigned v)
{
  uint8_t x = (uint8_t) v;
  g_byte_array_append (b, &x, 1);
}

static void
put_le (GByteArray *b, uint64_t v, int bytes)
{
  for (int i = 0; i < bytes; i++)
    put_u8 (b, (unsigned) (v >> (8 * i)) & 0xFF);
}

static void
put_string (GByteArray *b, const char *s)
{
  put_u8 (b, (unsigned) strlen (s));
  g_byte_array_append (b, (const uint8_t *) s, (guint) strlen (s));
}

static gboolean
check_set (const char *path, const fer_pack_set *s, GError **error)
{
  const fer_dataset *d = s->data;
  const char *why = NULL;
  size_t name_len = s->name ? strlen (s->name) : 0;
  if (name_len < 1 || name_len > MAX_NAME)
    why = "a set name must have 1 to 64 bytes";
  else if (s->delta < 0 || s->delta > FER_PACK_MAX_DELTA)
    why = "delta must be 0..15";
  else if (d->size < 1 || d->size > MAX_SIDE
      || (d->channels != 1 && d->channels != 3))
    why = "images must be 1..1024 pixels square with 1 or 3 channels";
  else if (d->n_classes < 1 || d->n_classes > 255)
    why = "a set must have 1 to 255 classes";
  else if (d->n < 0 || d->n >= MAX_IMAGES)
    why = "a set must have fewer than 2^24 images";
  for (int k = 0; why == NULL && k < d->n_classes; k++) {
    size_t len = strlen (d->labels[k]);
    if (len < 1 || len > MAX_NAME)
      why = "labels must have 1 to 64 bytes";
  }
  if (why != NULL) {
    /* the file and set names are bytes: shown as valid UTF-8 */
    g_autofree char *shown = fer_text_quote (path, 0);
    g_autofree char *name = fer_text_quote (s->name ? s->name : "", 0);
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s: set '%s': %s", shown, name, why);
  }
  return why == NULL;
}

gboolean
fer_pack_write (
    const char *path, const fer_pack_set *sets, int n_sets, GError **error)
{
  if (n_sets < 1 || n_sets > MAX_SETS) {
    g_autofree char *shown = fer_text_quote (path, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s: %d sets, expected 1..%d", shown, n_sets, MAX_SETS);
    return FALSE;
  }
  for (int i = 0; i < n_sets; i++)
    if (!check_set (path, &sets[i], error))
      return FALSE;

  g_autoptr (GByteArray) file = g_byte_array_new ();
  g_byte_array_append (file, (const uint8_t *) MAGIC, 8);
  put_le (file, (uint64_t) n_sets, 4);
  coder *c = g_new (coder, 1);
  for (int i = 0; i < n_sets; i++) {
    const fer_dataset *d = sets[i].data;
    const size_t image = (size_t) d->size * d->size * d->channels;
    put_string (file, sets[i].name);
    put_le (file, (uint64_t) d->size, 2);
    put_u8 (file, (unsigned) d->channels);
    put_u8 (file, (unsigned) sets[i].delta);
    put_u8 (file, (unsigned) d->n_classes);
    for (int k = 0; k < d->n_classes; k++)
      put_string (file, d->labels[k]);
    put_le (file, (uint64_t) d->n, 4);
    const guint labels_at = file->len;
    for (int j = 0; j < d->n; j++)
      put_u8 (file, (unsigned) d->y[j]);

    uint8_t *rec = g_malloc (MAX (image * d->n, 1));
    coder_init (c, TRUE);
    c->out = g_byte_array_new ();
    for (int j = 0; j < d->n; j++)
      code_image (c, fer_dataset_image (d, j), rec + image * j, d->size,
          d->channels, sets[i].delta);
    encoder_flush (c);
    put_le (file,
        fnv1a (
            fnv1a (FNV_START, file->data + labels_at, d->n), rec, image * d->n),
        8);
    put_le (file, c->out->len, 4);
    g_byte_array_append (file, c->out->data, c->out->len);
    g_byte_array_unref (c->out);
    g_free (rec);
  }
  g_free (c);
  return g_file_set_contents (
      path, (const char *) file->data, file->len, error);
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */

typedef struct
{
  const uint8_t *p;
  size_t len, pos;
  const char *source;
} reader;

static gboolean
truncated (reader *r, const char *what, GError **error)
{
  g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
      "%s: packed dataset is truncated at byte %zu (reading %s)", r->source,
      r->pos, what);
  return FALSE;
}

static gboolean
get_le (reader *r, int bytes, uint64_t *v, const char *what, GError **error)
{
  if (r->len - r->pos < (size_t) bytes)
    return truncated (r, what, error);
  *v = 0;
  for (int i = 0; i < bytes; i++)
    *v |= (uint64_t) r->p[r->pos++] << (8 * i);
  return TRUE;
}

/* A length-prefixed string of 1..64 bytes, NUL-terminated into out. */
static gboolean
get_string (reader *r, char out[MAX_NAME + 1], const char *what, GError **error)
{
  uint64_t len;
  if (!get_le (r, 1, &len, what, error))
    return FALSE;
  if (len < 1 || len > MAX_NAME) {
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: packed dataset: %s of %u bytes at byte %zu, expected 1..%d",
        r->source, what, (unsigned) len, r->pos - 1, MAX_NAME);
    return FALSE;
  }
  if (r->len - r->pos < len)
    return truncated (r, what, error);
  memcpy (out, r->p + r->pos, len);
  out[len] = '\0';
  r->pos += len;
  return TRUE;
}

static gboolean bad (reader *r, GError **error, const char *format, ...)
    G_GNUC_PRINTF (3, 4);

static gboolean
bad (reader *r, GError **error, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *text = g_strdup_vprintf (format, ap);
  va_end (ap);
  /* names and labels come from the file: shown as valid UTF-8 */
  g_autofree char *shown = fer_text_quote (text, 0);
  g_set_error (error, FER_ERROR, FER_ERROR_MODEL, "%s: packed dataset: %s",
      r->source, shown);
  return FALSE;
}

typedef struct
{
  char name[MAX_NAME + 1];
  int side, channels, delta, n_classes, n;
  char labels[255][MAX_NAME + 1];
  const uint8_t *y;
  uint64_t checksum;
  const uint8_t *payload;
  size_t payload_len;
} set_header;

static gboolean
read_set_header (reader *r, set_header *h, GError **error)
{
  uint64_t v;
  if (!get_string (r, h->name, "a set name", error)
      || !get_le (r, 2, &v, "the image side", error))
    return FALSE;
  h->side = (int) v;
  if (!get_le (r, 1, &v, "the channels", error))
    return FALSE;
  h->channels = (int) v;
  if (!get_le (r, 1, &v, "delta", error))
    return FALSE;
  h->delta = (int) v;
  if (h->side < 1 || h->side > MAX_SIDE
      || (h->channels != 1 && h->channels != 3)
      || h->delta > FER_PACK_MAX_DELTA)
    return bad (r, error,
        "set '%s': side %d, %d channels, delta %d: expected 1..%d, 1 or 3, "
        "0..%d",
        h->name, h->side, h->channels, h->delta, MAX_SIDE, FER_PACK_MAX_DELTA);
  if (!get_le (r, 1, &v, "the number of classes", error))
    return FALSE;
  h->n_classes = (int) v;
  if (h->n_classes < 1)
    return bad (r, error, "set '%s' has no classes", h->name);
  for (int k = 0; k < h->n_classes; k++) {
    if (!get_string (r, h->labels[k], "a label", error))
      return FALSE;
    for (int j = 0; j < k; j++)
      if (strcmp (h->labels[j], h->labels[k]) == 0)
        return bad (
            r, error, "set '%s' names label '%s' twice", h->name, h->labels[k]);
  }
  if (!get_le (r, 4, &v, "the number of images", error))
    return FALSE;
  if (v >= MAX_IMAGES)
    return bad (r, error,
        "set '%s' claims %" G_GUINT64_FORMAT
        " images, expected fewer than 2^24",
        h->name, v);
  h->n = (int) v;
  if (r->len - r->pos < (size_t) h->n)
    return truncated (r, "the image labels", error);
  h->y = r->p + r->pos;
  r->pos += (size_t) h->n;
  for (int i = 0; i < h->n; i++)
    if (h->y[i] >= h->n_classes)
      return bad (r, error, "set '%s': image %d has label %d of %d classes",
          h->name, i, h->y[i], h->n_classes);
  if (!get_le (r, 8, &h->checksum, "the checksum", error)
      || !get_le (r, 4, &v, "the payload size", error))
    return FALSE;
  if (r->len - r->pos < v)
    return truncated (r, "the payload", error);
  h->payload = r->p + r->pos;
  h->payload_len = (size_t) v;
  r->pos += (size_t) v;
  return TRUE;
}

static fer_dataset *
decode_set (reader *r, const set_header *h, const char *const *labels,
    const char *labels_origin, GError **error)
{
  int map[255];
  int n_classes = h->n_classes;
  const char *const *names = labels;
  if (labels != NULL) {
    n_classes = (int) g_strv_length ((char **) labels);
    for (int k = 0; k < h->n_classes; k++) {
      map[k] = -1;
      for (int j = 0; j < n_classes; j++)
        if (strcmp (labels[j], h->labels[k]) == 0)
          map[k] = j;
      if (map[k] < 0) {
        bad (r, error, "set '%s': label '%s' is not one of the labels of %s",
            h->name, h->labels[k], labels_origin ? labels_origin : "the run");
        return NULL;
      }
    }
  } else {
    for (int k = 0; k < n_classes; k++)
      map[k] = k;
  }

  const size_t image = (size_t) h->side * h->side * h->channels;
  const size_t total = image * (size_t) h->n;
  if (total / MAX_PIXELS_PER_BYTE > h->payload_len) {
    bad (r, error,
        "set '%s': %d images of %dx%dx%d (%zu pixels) cannot come from a "
        "payload of %zu bytes (at most %d pixels per byte)",
        h->name, h->n, h->side, h->side, h->channels, total, h->payload_len,
        MAX_PIXELS_PER_BYTE);
    return NULL;
  }
  uint8_t *pixels = g_try_malloc (MAX (total, 1));
  if (pixels == NULL) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "%s: cannot allocate %zu bytes for set '%s'", r->source, total,
        h->name);
    return NULL;
  }
  coder *c = g_new (coder, 1);
  coder_init (c, FALSE);
  decoder_start (c, h->payload, h->payload_len);
  for (int i = 0; i < h->n && !c->overrun; i++)
    code_image (c, NULL, pixels + image * i, h->side, h->channels, h->delta);
  const gboolean overrun = c->overrun;
  g_free (c);
  if (overrun) {
    g_free (pixels);
    bad (r, error,
        "set '%s': the payload of %zu bytes ends before the last of its %d "
        "images (the file is damaged)",
        h->name, h->payload_len, h->n);
    return NULL;
  }
  if (fnv1a (fnv1a (FNV_START, h->y, h->n), pixels, total) != h->checksum) {
    g_free (pixels);
    bad (r, error,
        "set '%s': the labels and pixels do not match their "
        "checksum (the file is damaged)",
        h->name);
    return NULL;
  }

  fer_dataset *d = g_new0 (fer_dataset, 1);
  d->source = g_strdup_printf ("%s (set %s)", r->source, h->name);
  d->size = h->side;
  d->channels = h->channels;
  d->n_classes = n_classes;
  d->labels = g_new0 (char *, n_classes + 1);
  for (int k = 0; k < n_classes; k++)
    d->labels[k] = g_strdup (names ? names[k] : h->labels[k]);
  d->n = h->n;
  d->pixels = pixels;
  d->y = g_new (int, MAX (h->n, 1));
  d->counts = g_new0 (int64_t, n_classes);
  for (int i = 0; i < h->n; i++) {
    d->y[i] = map[h->y[i]];
    d->counts[d->y[i]]++;
  }
  return d;
}

fer_dataset *
fer_pack_parse (const uint8_t *data, size_t len, const char *source,
    const char *name, const char *const *labels, const char *labels_origin,
    GError **error)
{
  g_autofree char *shown = fer_text_quote (source, 0);
  reader r = { data, len, 0, shown };
  uint64_t n_sets;
  set_header *h = NULL;
  fer_dataset *d = NULL;
  GString *names = g_string_new (NULL);

  if (len < 8 || memcmp (data, MAGIC, 8) != 0) {
    bad (&r, error, "not a packed dataset (no '%s' at the start)", MAGIC);
    goto done;
  }
  r.pos = 8;
  if (!get_le (&r, 4, &n_sets, "the number of sets", error))
    goto done;
  if (n_sets < 1 || n_sets > MAX_SETS) {
    bad (&r, error, "%" G_GUINT64_FORMAT " sets, expected 1..%d", n_sets,
        MAX_SETS);
    goto done;
  }
  h = g_new (set_header, 1);
  for (uint64_t i = 0; i < n_sets; i++) {
    if (!read_set_header (&r, h, error))
      goto done;
    if (strcmp (h->name, name) == 0) {
      d = decode_set (&r, h, labels, labels_origin, error);
      goto done;
    }
    g_string_append_printf (names, "%s%s", i ? ", " : "", h->name);
  }
  bad (&r, error, "no set '%s' (the file has: %s)", name, names->str);

done:
  g_free (h);
  g_string_free (names, TRUE);
  return d;
}

fer_dataset *
fer_pack_load (const char *path, const char *name, const char *const *labels,
    const char *labels_origin, GError **error)
{
  char *bytes = NULL;
  gsize len = 0;
  GError *read_error = NULL;
  if (!g_file_get_contents (path, &bytes, &len, &read_error)) {
    g_set_error (error, FER_ERROR, FER_ERROR_IO,
        "cannot read the packed dataset: %s", read_error->message);
    g_error_free (read_error);
    return NULL;
  }
  fer_dataset *d = fer_pack_parse (
      (const uint8_t *) bytes, len, path, name, labels, labels_origin, error);
  g_free (bytes);
  return d;
}
