/* libfernn: safetensors reader and writer (contract in fer/safetensors.h).
 *
 * The reader keeps the whole file in one buffer; tensors are views into it,
 * converted to float only when fer_safetensors_read_f32 is called. Nothing
 * read from the file is used before every entry has been checked, so a
 * truncated download or a hostile file ends in a GError, never in an
 * out-of-bounds read.
 *
 * Tensors are listed in header order: json_object_get_members returns the
 * members in the order the parser met them (checked with json-glib 1.6).
 * A name that appears twice in the header is kept once, at its first
 * position with its last value, as json-glib does. */

#include <fer/safetensors.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

/* Same limit as the reference implementation; a real header takes about a
 * hundred bytes per tensor. */
#define MAX_HEADER_BYTES (100 * 1024 * 1024)

/* A safetensors header nests three levels (root, entry, shape). json-glib
 * recurses once per level with no bound of its own, so a header of
 * "[[[[..." would overflow the stack if it reached the parser. */
#define MAX_HEADER_DEPTH 64

/* Longest tensor name or value quoted in an error message. */
#define MAX_QUOTED_CHARS 120

struct fer_safetensors
{
  char *path;
  guint8 *bytes;      /* the whole file */
  const guint8 *data; /* first byte after the header */
  size_t data_size;
  fer_st_tensor *tensors; /* (n_tensors) */
  int n_tensors;
  GHashTable *by_name;      /* name -> fer_st_tensor * */
  GStringChunk *strings;    /* tensor names, metadata keys and values */
  GPtrArray *metadata_keys; /* NULL-terminated */
  GHashTable *metadata;     /* key -> value */
};

typedef struct
{
  char *name;
  fer_dtype dtype;
  int ndim;
  int64_t shape[FER_ST_MAX_DIMS];
  guint8 *bytes; /* little-endian, in dtype */
  size_t nbytes;
} writer_tensor;

struct fer_st_writer
{
  GPtrArray *tensors;   /* writer_tensor *, in add order */
  GHashTable *names;    /* set of tensor names, owned by tensors */
  GHashTable *metadata; /* key -> value, both owned */
  char *refused;        /* first refused metadata entry (save reports it) */
};

static const struct
{
  const char *name;
  size_t size;
} dtypes[] = {
  [FER_DTYPE_F32] = { "F32", 4 },
  [FER_DTYPE_F16] = { "F16", 2 },
  [FER_DTYPE_BF16] = { "BF16", 2 },
  [FER_DTYPE_F64] = { "F64", 8 },
  [FER_DTYPE_I64] = { "I64", 8 },
  [FER_DTYPE_I32] = { "I32", 4 },
  [FER_DTYPE_I16] = { "I16", 2 },
  [FER_DTYPE_I8] = { "I8", 1 },
  [FER_DTYPE_U8] = { "U8", 1 },
  [FER_DTYPE_BOOL] = { "BOOL", 1 },
};

static size_t
dtype_size (fer_dtype dtype)
{
  return (guint) dtype < G_N_ELEMENTS (dtypes) ? dtypes[dtype].size : 0;
}

static const char *
dtype_name (fer_dtype dtype)
{
  return (guint) dtype < G_N_ELEMENTS (dtypes) ? dtypes[dtype].name
                                               : "(invalid dtype)";
}

static gboolean
dtype_from_name (const char *name, fer_dtype *dtype)
{
  for (guint i = 0; i < G_N_ELEMENTS (dtypes); i++) {
    if (strcmp (name, dtypes[i].name) == 0) {
      *dtype = (fer_dtype) i;
      return TRUE;
    }
  }
  return FALSE;
}

/* Number of elements of `shape`, FALSE when it does not fit in an int64. */
static gboolean
shape_numel (const int64_t *shape, int ndim, int64_t *numel)
{
  guint64 n = 1;

  for (int i = 0; i < ndim; i++) {
    if (!g_uint64_checked_mul (&n, n, (guint64) shape[i]) || n > G_MAXINT64)
      return FALSE;
  }
  *numel = (int64_t) n;
  return TRUE;
}

static char *
format_shape (const int64_t *shape, int ndim)
{
  GString *s = g_string_new ("[");

  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" PRId64, i > 0 ? ", " : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* Strings from a file go into one-line messages: see fer_text_quote. */
static char *
quotable (const char *s)
{
  return fer_text_quote (s, MAX_QUOTED_CHARS);
}

static void set_format_error (GError **error, const char *file,
    const char *tensor, const char *format, ...) G_GNUC_PRINTF (4, 5);

/* "<file>: tensor '<tensor>': <what>", or "<file>: <what>" without a
 * tensor. */
static void
set_format_error (GError **error, const char *file, const char *tensor,
    const char *format, ...)
{
  va_list args;
  char *what;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);

  /* A path is whatever bytes the caller's file system holds. */
  char *shown_file = fer_text_quote (file, 0);
  if (tensor != NULL) {
    char *quoted = quotable (tensor);
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT, "%s: tensor '%s': %s",
        shown_file, quoted, what);
    g_free (quoted);
  } else {
    g_set_error (
        error, FER_ERROR, FER_ERROR_FORMAT, "%s: %s", shown_file, what);
  }
  g_free (shown_file);
  g_free (what);
}

/* ---------------------------------------------------------------- reader */

static guint8 *
read_whole_file (const char *path, size_t *size_out, GError **error)
{
  struct stat st;
  guint8 *bytes = NULL;
  size_t size, done = 0;
  int fd, saved_errno;

  fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0 || fstat (fd, &st) != 0)
    goto io_error;
  if ((guint64) st.st_size > G_MAXSIZE) {
    errno = EFBIG;
    goto io_error;
  }
  size = (size_t) st.st_size;

  bytes = g_try_malloc (size > 0 ? size : 1);
  if (bytes == NULL) {
    g_autofree char *shown = fer_text_quote (path, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "%s: cannot allocate %zu bytes to read the file", shown, size);
    close (fd);
    return NULL;
  }

  while (done < size) {
    ssize_t n = read (fd, bytes + done, size - done);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      goto io_error;
    /* The file shrank since fstat: validate what is there. */
    if (n == 0)
      break;
    done += (size_t) n;
  }
  close (fd);
  *size_out = done;
  return bytes;

io_error:
  saved_errno = errno;
  if (fd >= 0)
    close (fd);
  g_free (bytes);
  /* a file name is bytes: shown as valid UTF-8 */
  g_autofree char *shown = fer_text_quote (path, 0);
  g_set_error (error, FER_ERROR, FER_ERROR_IO, "%s: cannot read: %s", shown,
      g_strerror (saved_errno));
  return NULL;
}

/* Checks, before json-glib sees the header, that it nests at most
 * MAX_HEADER_DEPTH levels. json-glib also accepts single-quoted strings and
 * comments, which could hide a '"' from the count; outside double-quoted
 * strings only characters that strict JSON allows there are accepted, so
 * that the strings counted here are the strings json-glib parses. */
static gboolean
check_header_nesting (
    const char *header, size_t len, const char *file, GError **error)
{
  gboolean in_string = FALSE, escaped = FALSE;
  int depth = 0;

  for (size_t i = 0; i < len; i++) {
    char c = header[i];

    if (in_string) {
      if (escaped)
        escaped = FALSE;
      else if (c == '\\')
        escaped = TRUE;
      else if (c == '"')
        in_string = FALSE;
      continue;
    }

    if (c == '"') {
      in_string = TRUE;
    } else if (c == '[' || c == '{') {
      if (++depth > MAX_HEADER_DEPTH) {
        set_format_error (error, file, NULL,
            "header is not valid JSON: "
            "nested deeper than %d levels at byte %zu",
            MAX_HEADER_DEPTH, i);
        return FALSE;
      }
    } else if (c == ']' || c == '}') {
      /* An unmatched closer is a parse error anyway; not letting the count
       * go negative keeps it an upper bound of json-glib's depth. */
      if (depth > 0)
        depth--;
    } else if (!g_ascii_isalnum (c) && strchr (" \t\r\n:,-+.", c) == NULL) {
      set_format_error (error, file, NULL,
          "header is not valid JSON: "
          "unexpected character 0x%02x at byte %zu",
          (guchar) c, i);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
node_get_int64 (JsonNode *node, gint64 *value)
{
  if (!JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  *value = json_node_get_int (node);
  return TRUE;
}

static gboolean
node_is_string (JsonNode *node)
{
  return JSON_NODE_HOLDS_VALUE (node)
      && json_node_get_value_type (node) == G_TYPE_STRING;
}

static gboolean
parse_shape (fer_safetensors *st, const char *name, JsonNode *node,
    fer_st_tensor *t, GError **error)
{
  JsonArray *dims;
  guint ndim;

  if (node == NULL) {
    set_format_error (error, st->path, name, "missing \"shape\"");
    return FALSE;
  }
  if (!JSON_NODE_HOLDS_ARRAY (node)) {
    set_format_error (error, st->path, name, "\"shape\" is not an array");
    return FALSE;
  }
  dims = json_node_get_array (node);
  ndim = json_array_get_length (dims);
  if (ndim > FER_ST_MAX_DIMS) {
    set_format_error (error, st->path, name,
        "shape has %u dimensions, at most %d are supported", ndim,
        FER_ST_MAX_DIMS);
    return FALSE;
  }

  t->ndim = (int) ndim;
  for (guint i = 0; i < ndim; i++) {
    gint64 dim;

    if (!node_get_int64 (json_array_get_element (dims, i), &dim)) {
      set_format_error (
          error, st->path, name, "shape[%u] is not an integer", i);
      return FALSE;
    }
    if (dim < 0) {
      set_format_error (error, st->path, name,
          "shape[%u] is negative (%" PRId64 ")", i, (int64_t) dim);
      return FALSE;
    }
    t->shape[i] = dim;
  }

  if (!shape_numel (t->shape, t->ndim, &t->numel)) {
    char *shape = format_shape (t->shape, t->ndim);
    set_format_error (
        error, st->path, name, "shape %s has too many elements", shape);
    g_free (shape);
    return FALSE;
  }
  return TRUE;
}

static gboolean
parse_data_offsets (fer_safetensors *st, const char *name, JsonNode *node,
    fer_st_tensor *t, GError **error)
{
  JsonArray *offsets;
  gint64 begin, end;
  guint64 expected;
  char *shape;

  if (node == NULL) {
    set_format_error (error, st->path, name, "missing \"data_offsets\"");
    return FALSE;
  }
  offsets = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
  if (offsets == NULL || json_array_get_length (offsets) != 2
      || !node_get_int64 (json_array_get_element (offsets, 0), &begin)
      || !node_get_int64 (json_array_get_element (offsets, 1), &end)) {
    set_format_error (error, st->path, name,
        "\"data_offsets\" is not an array of two integers");
    return FALSE;
  }
  if (begin < 0 || end < 0) {
    set_format_error (error, st->path, name,
        "data_offsets [%" PRId64 ", %" PRId64 "] are negative", (int64_t) begin,
        (int64_t) end);
    return FALSE;
  }
  if (begin > end) {
    set_format_error (error, st->path, name,
        "data_offsets [%" PRId64 ", %" PRId64 "] begin after they end",
        (int64_t) begin, (int64_t) end);
    return FALSE;
  }
  if ((guint64) end > st->data_size) {
    set_format_error (error, st->path, name,
        "data_offsets [%" PRId64 ", %" PRId64 "] are out of range: "
        "the data area holds %zu bytes (truncated file?)",
        (int64_t) begin, (int64_t) end, st->data_size);
    return FALSE;
  }

  shape = format_shape (t->shape, t->ndim);
  if (!g_uint64_checked_mul (
          &expected, (guint64) t->numel, dtype_size (t->dtype))) {
    set_format_error (error, st->path, name, "shape %s of %s is too large",
        shape, dtype_name (t->dtype));
    g_free (shape);
    return FALSE;
  }
  if ((guint64) (end - begin) != expected) {
    set_format_error (error, st->path, name,
        "data_offsets [%" PRId64 ", %" PRId64 "] do not match shape %s "
        "of %s (%" G_GUINT64_FORMAT " bytes)",
        (int64_t) begin, (int64_t) end, shape, dtype_name (t->dtype), expected);
    g_free (shape);
    return FALSE;
  }
  g_free (shape);

  t->offset = (size_t) begin;
  t->nbytes = (size_t) expected;
  return TRUE;
}

static gboolean
parse_tensor (fer_safetensors *st, const char *name, JsonNode *node,
    fer_st_tensor *t, GError **error)
{
  JsonObject *entry;
  JsonNode *dtype;

  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    set_format_error (error, st->path, name, "entry is not a JSON object");
    return FALSE;
  }
  entry = json_node_get_object (node);

  dtype = json_object_get_member (entry, "dtype");
  if (dtype == NULL) {
    set_format_error (error, st->path, name, "missing \"dtype\"");
    return FALSE;
  }
  if (!node_is_string (dtype)) {
    set_format_error (error, st->path, name, "\"dtype\" is not a string");
    return FALSE;
  }
  if (!dtype_from_name (json_node_get_string (dtype), &t->dtype)) {
    char *quoted = quotable (json_node_get_string (dtype));
    set_format_error (error, st->path, name,
        "unsupported dtype '%s' (expected F32, F16 or BF16)", quoted);
    g_free (quoted);
    return FALSE;
  }

  if (!parse_shape (st, name, json_object_get_member (entry, "shape"), t, error)
      || !parse_data_offsets (
          st, name, json_object_get_member (entry, "data_offsets"), t, error))
    return FALSE;

  t->name = g_string_chunk_insert (st->strings, name);
  g_hash_table_insert (st->by_name, (gpointer) t->name, t);
  return TRUE;
}

static gboolean
parse_metadata (fer_safetensors *st, JsonNode *node, GError **error)
{
  JsonObject *metadata;
  GList *keys;
  gboolean ok = TRUE;

  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    set_format_error (
        error, st->path, NULL, "\"__metadata__\" is not a JSON object");
    return FALSE;
  }
  metadata = json_node_get_object (node);
  keys = json_object_get_members (metadata);

  for (GList *l = keys; l != NULL; l = l->next) {
    const char *key = l->data;
    JsonNode *value = json_object_get_member (metadata, key);
    char *k;

    const char *problem = NULL;
    if (!g_utf8_validate (key, -1, NULL))
      problem = "key is not valid UTF-8";
    else if (!node_is_string (value))
      problem = "value is not a string";
    else if (!g_utf8_validate (json_node_get_string (value), -1, NULL))
      problem = "value is not valid UTF-8";
    if (problem) {
      char *quoted = quotable (key);
      set_format_error (error, st->path, NULL,
          "\"__metadata__\" entry '%s': %s", quoted, problem);
      g_free (quoted);
      ok = FALSE;
      break;
    }
    k = g_string_chunk_insert (st->strings, key);
    g_ptr_array_insert (
        st->metadata_keys, (gint) st->metadata_keys->len - 1, k);
    g_hash_table_insert (st->metadata, k,
        g_string_chunk_insert (st->strings, json_node_get_string (value)));
  }
  g_list_free (keys);
  return ok;
}

static int
compare_by_offset (const void *a, const void *b)
{
  const fer_st_tensor *ta = *(const fer_st_tensor *const *) a;
  const fer_st_tensor *tb = *(const fer_st_tensor *const *) b;

  if (ta->offset != tb->offset)
    return ta->offset < tb->offset ? -1 : 1;
  if (ta->nbytes != tb->nbytes)
    return ta->nbytes < tb->nbytes ? -1 : 1;
  /* Ties in header order, so that the error names the same pair on every
   * run. */
  return (ta > tb) - (ta < tb);
}

static gboolean
check_overlaps (fer_safetensors *st, GError **error)
{
  const fer_st_tensor **sorted =
      g_new (const fer_st_tensor *, st->n_tensors > 0 ? st->n_tensors : 1);
  const fer_st_tensor *prev = NULL;
  gboolean ok = TRUE;

  for (int i = 0; i < st->n_tensors; i++)
    sorted[i] = &st->tensors[i];
  qsort (sorted, (size_t) st->n_tensors, sizeof *sorted, compare_by_offset);

  /* Empty tensors occupy no bytes and so cannot overlap anything. Once the
   * ranges so far are disjoint, the previous one ends last. */
  for (int i = 0; i < st->n_tensors; i++) {
    const fer_st_tensor *t = sorted[i];

    if (t->nbytes == 0)
      continue;
    if (prev != NULL && t->offset < prev->offset + prev->nbytes) {
      char *other = quotable (prev->name);
      set_format_error (error, st->path, t->name,
          "data_offsets [%zu, %zu] overlap tensor '%s' [%zu, %zu]", t->offset,
          t->offset + t->nbytes, other, prev->offset,
          prev->offset + prev->nbytes);
      g_free (other);
      ok = FALSE;
      break;
    }
    prev = t;
  }
  g_free (sorted);
  return ok;
}

static gboolean
parse_header (
    fer_safetensors *st, const char *header, size_t header_len, GError **error)
{
  JsonParser *parser = NULL;
  GError *json_error = NULL;
  JsonNode *root;
  JsonObject *entries;
  GList *names = NULL;
  int n = 0;
  gboolean ok = FALSE;

  if (!check_header_nesting (header, header_len, st->path, error))
    return FALSE;

  parser = json_parser_new ();
  if (!json_parser_load_from_data (
          parser, header, (gssize) header_len, &json_error)) {
    char *quoted = quotable (json_error->message);
    set_format_error (
        error, st->path, NULL, "header is not valid JSON: %s", quoted);
    g_free (quoted);
    g_error_free (json_error);
    goto done;
  }
  root = json_parser_get_root (parser);
  if (root == NULL) {
    set_format_error (error, st->path, NULL, "header is empty");
    goto done;
  }
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    set_format_error (error, st->path, NULL, "header is not a JSON object");
    goto done;
  }

  entries = json_node_get_object (root);
  names = json_object_get_members (entries);
  st->tensors = g_new0 (fer_st_tensor, g_list_length (names));

  for (GList *l = names; l != NULL; l = l->next) {
    const char *name = l->data;
    JsonNode *node = json_object_get_member (entries, name);

    /* JSON escapes such as "\\ud800" decode to bytes that are not UTF-8,
     * and json-glib passes them on: names, like every string the file
     * holds, must be text before they go anywhere else. */
    if (!g_utf8_validate (name, -1, NULL)) {
      set_format_error (error, st->path, name,
          "tensor name is not valid "
          "UTF-8");
      goto done;
    }
    if (strcmp (name, "__metadata__") == 0) {
      if (!parse_metadata (st, node, error))
        goto done;
    } else {
      if (!parse_tensor (st, name, node, &st->tensors[n], error))
        goto done;
      st->n_tensors = ++n;
    }
  }
  ok = check_overlaps (st, error);

done:
  g_list_free (names);
  g_object_unref (parser);
  return ok;
}

/* Takes ownership of `bytes`. */
static fer_safetensors *
parse_file (guint8 *bytes, size_t size, const char *name, GError **error)
{
  fer_safetensors *st = g_new0 (fer_safetensors, 1);
  guint64 header_len;

  st->path = g_strdup (name);
  st->bytes = bytes;
  st->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  st->strings = g_string_chunk_new (256);
  st->metadata_keys = g_ptr_array_new ();
  g_ptr_array_add (st->metadata_keys, NULL);
  st->metadata = g_hash_table_new (g_str_hash, g_str_equal);

  if (size < 8) {
    set_format_error (error, name, NULL,
        "file is too short (%zu bytes) "
        "for a safetensors header length (8 bytes)",
        size);
    goto fail;
  }
  memcpy (&header_len, bytes, 8);
  header_len = GUINT64_FROM_LE (header_len);
  /* what an image, a text or any other file usually gets here */
  if (header_len > MAX_HEADER_BYTES) {
    set_format_error (error, name, NULL,
        "not a safetensors file (its first "
        "8 bytes, read as the JSON header's length, give %" G_GUINT64_FORMAT
        " bytes, over the limit of %d)",
        header_len, MAX_HEADER_BYTES);
    goto fail;
  }
  if (header_len > size - 8) {
    set_format_error (error, name, NULL,
        "header length %" G_GUINT64_FORMAT
        " exceeds the %zu bytes that follow it (truncated file?)",
        header_len, size - 8);
    goto fail;
  }
  st->data = bytes + 8 + header_len;
  st->data_size = size - 8 - (size_t) header_len;

  if (!parse_header (st, (const char *) bytes + 8, (size_t) header_len, error))
    goto fail;
  return st;

fail:
  fer_safetensors_free (st);
  return NULL;
}

fer_safetensors *
fer_safetensors_open (const char *path, GError **error)
{
  guint8 *bytes;
  size_t size;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  bytes = read_whole_file (path, &size, error);
  if (bytes == NULL)
    return NULL;
  return parse_file (bytes, size, path, error);
}

fer_safetensors *
fer_safetensors_open_bytes (
    const void *data, size_t size, const char *name, GError **error)
{
  guint8 *bytes;

  g_return_val_if_fail (data != NULL || size == 0, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  bytes = g_try_malloc (size > 0 ? size : 1);
  if (bytes == NULL) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "%s: cannot allocate %zu bytes to copy the file", name, size);
    return NULL;
  }
  if (size > 0)
    memcpy (bytes, data, size);
  return parse_file (bytes, size, name, error);
}

void
fer_safetensors_free (fer_safetensors *st)
{
  if (st == NULL)
    return;
  g_hash_table_unref (st->metadata);
  g_ptr_array_unref (st->metadata_keys);
  g_string_chunk_free (st->strings);
  g_hash_table_unref (st->by_name);
  g_free (st->tensors);
  g_free (st->bytes);
  g_free (st->path);
  g_free (st);
}

const char *
fer_safetensors_path (const fer_safetensors *st)
{
  g_return_val_if_fail (st != NULL, NULL);
  return st->path;
}

int
fer_safetensors_n_tensors (const fer_safetensors *st)
{
  g_return_val_if_fail (st != NULL, 0);
  return st->n_tensors;
}

const fer_st_tensor *
fer_safetensors_tensor (const fer_safetensors *st, int i)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_return_val_if_fail (i >= 0 && i < st->n_tensors, NULL);
  return &st->tensors[i];
}

const fer_st_tensor *
fer_safetensors_find (const fer_safetensors *st, const char *name)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  return g_hash_table_lookup (st->by_name, name);
}

const char *
fer_safetensors_metadata (const fer_safetensors *st, const char *key)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_return_val_if_fail (key != NULL, NULL);
  return g_hash_table_lookup (st->metadata, key);
}

const char *const *
fer_safetensors_metadata_keys (const fer_safetensors *st)
{
  g_return_val_if_fail (st != NULL, NULL);
  return (const char *const *) st->metadata_keys->pdata;
}

void
fer_safetensors_read_f32 (
    const fer_safetensors *st, const fer_st_tensor *t, float *out)
{
  /* Tensors sit at any byte offset: every load goes through memcpy. */
  const guint8 *src;

  g_return_if_fail (st != NULL && t != NULL);
  g_return_if_fail (out != NULL || t->numel == 0);

  src = st->data + t->offset;
  switch (t->dtype) {
    case FER_DTYPE_F32:
      for (int64_t i = 0; i < t->numel; i++) {
        guint32 bits;
        memcpy (&bits, src + 4 * i, 4);
        bits = GUINT32_FROM_LE (bits);
        memcpy (&out[i], &bits, 4);
      }
      break;
    case FER_DTYPE_F16:
      for (int64_t i = 0; i < t->numel; i++) {
        guint16 bits;
        memcpy (&bits, src + 2 * i, 2);
        out[i] = fer_f16_to_f32 (GUINT16_FROM_LE (bits));
      }
      break;
    case FER_DTYPE_BF16:
      for (int64_t i = 0; i < t->numel; i++) {
        guint16 bits;
        memcpy (&bits, src + 2 * i, 2);
        out[i] = fer_bf16_to_f32 (GUINT16_FROM_LE (bits));
      }
      break;
    case FER_DTYPE_F64:
      for (int64_t i = 0; i < t->numel; i++) {
        guint64 bits;
        double d;
        memcpy (&bits, src + 8 * i, 8);
        bits = GUINT64_FROM_LE (bits);
        memcpy (&d, &bits, 8);
        out[i] = (float) d;
      }
      break;
    case FER_DTYPE_I64:
      for (int64_t i = 0; i < t->numel; i++) {
        guint64 bits;
        memcpy (&bits, src + 8 * i, 8);
        out[i] = (float) (gint64) GUINT64_FROM_LE (bits);
      }
      break;
    case FER_DTYPE_I32:
      for (int64_t i = 0; i < t->numel; i++) {
        guint32 bits;
        memcpy (&bits, src + 4 * i, 4);
        out[i] = (float) (gint32) GUINT32_FROM_LE (bits);
      }
      break;
    case FER_DTYPE_I16:
      for (int64_t i = 0; i < t->numel; i++) {
        guint16 bits;
        memcpy (&bits, src + 2 * i, 2);
        out[i] = (float) (gint16) GUINT16_FROM_LE (bits);
      }
      break;
    case FER_DTYPE_I8:
      for (int64_t i = 0; i < t->numel; i++)
        out[i] = (float) (gint8) src[i];
      break;
    case FER_DTYPE_U8:
    case FER_DTYPE_BOOL:
      for (int64_t i = 0; i < t->numel; i++)
        out[i] = (float) src[i];
      break;
  }
}

/* ------------------------------------------------------ half precision */

static float
f32_from_bits (guint32 bits)
{
  float f;

  memcpy (&f, &bits, 4);
  return f;
}

float
fer_f16_to_f32 (uint16_t h)
{
  guint32 sign = (guint32) (h & 0x8000) << 16;
  guint32 exponent = (h >> 10) & 0x1f;
  guint32 mantissa = h & 0x3ff;

  if (exponent == 0) {
    /* Zero or subnormal: mantissa * 2^-24, exact in float. */
    float magnitude = ldexpf ((float) mantissa, -24);
    return sign != 0 ? -magnitude : magnitude;
  }
  if (exponent == 0x1f)
    return f32_from_bits (sign | 0x7f800000 | (mantissa << 13));
  return f32_from_bits (
      sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

uint16_t
fer_f32_to_f16 (float f)
{
  guint32 bits, sign, magnitude, mantissa, exponent, shift, rest, halfway;
  guint32 h;

  memcpy (&bits, &f, 4);
  sign = (bits >> 16) & 0x8000;
  magnitude = bits & 0x7fffffff;

  if (magnitude > 0x7f800000) {
    /* NaN stays NaN: keep the top payload bits and force the quiet bit,
     * which also keeps the mantissa non-zero. */
    return (uint16_t) (sign | 0x7e00 | ((magnitude >> 13) & 0x3ff));
  }
  /* 65520 is halfway between 65504 (largest half, odd mantissa) and 2^16:
   * it and everything above round to infinity. */
  if (magnitude >= 0x477ff000)
    return (uint16_t) (sign | 0x7c00);

  if (magnitude < 0x38800000) {
    /* Below 2^-14: a half subnormal, counted in units of 2^-24. At 2^-25
     * and below the nearest value is 0 (2^-25 itself ties to even 0). */
    if (magnitude <= 0x33000000)
      return (uint16_t) sign;
    exponent = magnitude >> 23;
    mantissa = (magnitude & 0x7fffff) | 0x800000;
    shift = 126 - exponent;
    h = mantissa >> shift;
    rest = mantissa & ((1u << shift) - 1);
    halfway = 1u << (shift - 1);
  } else {
    h = (((magnitude >> 23) - 127 + 15) << 10) | ((magnitude >> 13) & 0x3ff);
    rest = magnitude & 0x1fff;
    halfway = 0x1000;
  }
  /* Round to nearest even; a carry out of the mantissa correctly bumps the
   * exponent (largest subnormal -> smallest normal, 2047.5 ulp -> 2^k). */
  if (rest > halfway || (rest == halfway && (h & 1)))
    h++;
  return (uint16_t) (sign | h);
}

float
fer_bf16_to_f32 (uint16_t h)
{
  return f32_from_bits ((guint32) h << 16);
}

/* ---------------------------------------------------------------- writer */

static void
writer_tensor_free (gpointer data)
{
  writer_tensor *t = data;

  g_free (t->name);
  g_free (t->bytes);
  g_free (t);
}

fer_st_writer *
fer_st_writer_new (void)
{
  fer_st_writer *w = g_new0 (fer_st_writer, 1);

  w->tensors = g_ptr_array_new_with_free_func (writer_tensor_free);
  w->names = g_hash_table_new (g_str_hash, g_str_equal);
  w->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return w;
}

void
fer_st_writer_free (fer_st_writer *w)
{
  if (w == NULL)
    return;
  g_hash_table_unref (w->metadata);
  g_free (w->refused);
  g_hash_table_unref (w->names);
  g_ptr_array_unref (w->tensors);
  g_free (w);
}

gboolean
fer_st_writer_add (fer_st_writer *w, const char *name, fer_dtype dtype,
    int ndim, const int64_t *shape, const float *data, GError **error)
{
  writer_tensor *t;
  int64_t numel;

  g_return_val_if_fail (w != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (name == NULL || name[0] == '\0' || !g_utf8_validate (name, -1, NULL)
      || strcmp (name, "__metadata__") == 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "safetensors writer: invalid tensor name '%s'",
        name != NULL ? name : "(null)");
    return FALSE;
  }
  if (g_hash_table_contains (w->names, name)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "safetensors writer: tensor '%s' was already added", name);
    return FALSE;
  }
  if (dtype != FER_DTYPE_F32 && dtype != FER_DTYPE_F16) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "safetensors writer: tensor '%s': dtype %s cannot be written "
        "(expected F32 or F16)",
        name, dtype_name (dtype));
    return FALSE;
  }
  if (ndim < 0 || ndim > FER_ST_MAX_DIMS || (ndim > 0 && shape == NULL)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "safetensors writer: tensor '%s': %d dimensions (expected 0 to %d)",
        name, ndim, FER_ST_MAX_DIMS);
    return FALSE;
  }
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "safetensors writer: tensor '%s': shape[%d] is negative (%" PRId64
          ")",
          name, i, shape[i]);
      return FALSE;
    }
  }
  if (!shape_numel (shape, ndim, &numel)
      || (guint64) numel > G_MAXSIZE / dtype_size (dtype)) {
    char *s = format_shape (shape, ndim);
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "safetensors writer: tensor '%s': shape %s is too large", name, s);
    g_free (s);
    return FALSE;
  }
  if (numel > 0 && data == NULL) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "safetensors writer: tensor '%s': no data", name);
    return FALSE;
  }

  t = g_new0 (writer_tensor, 1);
  t->nbytes = (size_t) numel * dtype_size (dtype);
  t->bytes = g_try_malloc (t->nbytes > 0 ? t->nbytes : 1);
  if (t->bytes == NULL) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "safetensors writer: tensor '%s': cannot allocate %zu bytes", name,
        t->nbytes);
    g_free (t);
    return FALSE;
  }
  t->name = g_strdup (name);
  t->dtype = dtype;
  t->ndim = ndim;
  if (ndim > 0)
    memcpy (t->shape, shape, (size_t) ndim * sizeof *shape);

  for (int64_t i = 0; i < numel; i++) {
    if (dtype == FER_DTYPE_F32) {
      guint32 bits;
      memcpy (&bits, &data[i], 4);
      bits = GUINT32_TO_LE (bits);
      memcpy (t->bytes + 4 * i, &bits, 4);
    } else {
      guint16 bits = GUINT16_TO_LE (fer_f32_to_f16 (data[i]));
      memcpy (t->bytes + 2 * i, &bits, 2);
    }
  }

  g_ptr_array_add (w->tensors, t);
  g_hash_table_add (w->names, t->name);
  return TRUE;
}

void
fer_st_writer_set_metadata (
    fer_st_writer *w, const char *key, const char *value)
{
  const char *problem = NULL;

  g_return_if_fail (w != NULL);
  /* Keys and values often come from outside (folder names, options):
   * refuse what is not UTF-8 (JSON must be) without a critical; the
   * first refusal is fer_st_writer_save's error. */
  if (key == NULL || key[0] == '\0')
    problem = "has an empty key";
  else if (value == NULL)
    problem = "has no value";
  else if (!g_utf8_validate (key, -1, NULL))
    problem = "key is not valid UTF-8";
  else if (!g_utf8_validate (value, -1, NULL))
    problem = "value is not valid UTF-8";
  if (problem != NULL) {
    if (w->refused == NULL) {
      g_autofree char *qkey = fer_text_quote (key, 64);
      g_autofree char *qvalue = fer_text_quote (value, 64);
      w->refused = g_strdup_printf (
          "metadata entry '%s' = '%s' %s", qkey, qvalue, problem);
    }
    return;
  }
  g_hash_table_replace (w->metadata, g_strdup (key), g_strdup (value));
}

/* The JSON header, padded with spaces to a multiple of 8 bytes as the
 * reference implementation does, so that the data area starts aligned. */
static char *
build_header (fer_st_writer *w, size_t *len)
{
  JsonBuilder *builder = json_builder_new ();
  JsonGenerator *generator;
  JsonNode *root;
  gsize json_len, padded_len;
  char *header;
  size_t offset = 0;

  json_builder_begin_object (builder);

  if (g_hash_table_size (w->metadata) > 0) {
    /* Sorted, so that the same model always gives the same bytes. */
    GList *keys = g_list_sort (
        g_hash_table_get_keys (w->metadata), (GCompareFunc) strcmp);

    json_builder_set_member_name (builder, "__metadata__");
    json_builder_begin_object (builder);
    for (GList *l = keys; l != NULL; l = l->next) {
      json_builder_set_member_name (builder, l->data);
      json_builder_add_string_value (
          builder, g_hash_table_lookup (w->metadata, l->data));
    }
    json_builder_end_object (builder);
    g_list_free (keys);
  }

  for (guint i = 0; i < w->tensors->len; i++) {
    const writer_tensor *t = g_ptr_array_index (w->tensors, i);

    json_builder_set_member_name (builder, t->name);
    json_builder_begin_object (builder);
    json_builder_set_member_name (builder, "dtype");
    json_builder_add_string_value (builder, dtype_name (t->dtype));
    json_builder_set_member_name (builder, "shape");
    json_builder_begin_array (builder);
    for (int d = 0; d < t->ndim; d++)
      json_builder_add_int_value (builder, t->shape[d]);
    json_builder_end_array (builder);
    json_builder_set_member_name (builder, "data_offsets");
    json_builder_begin_array (builder);
    json_builder_add_int_value (builder, (gint64) offset);
    json_builder_add_int_value (builder, (gint64) (offset + t->nbytes));
    json_builder_end_array (builder);
    json_builder_end_object (builder);
    offset += t->nbytes;
  }

  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  generator = json_generator_new ();
  json_generator_set_root (generator, root);
  header = json_generator_to_data (generator, &json_len);

  padded_len = (json_len + 7) / 8 * 8;
  header = g_realloc (header, padded_len + 1);
  memset (header + json_len, ' ', padded_len - json_len);
  header[padded_len] = '\0';
  *len = padded_len;

  json_node_unref (root);
  g_object_unref (generator);
  g_object_unref (builder);
  return header;
}

static gboolean
write_all (int fd, const void *buf, size_t len)
{
  const guint8 *p = buf;

  while (len > 0) {
    ssize_t n = write (fd, p, len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return FALSE;
    p += n;
    len -= (size_t) n;
  }
  return TRUE;
}

gboolean
fer_st_writer_save (fer_st_writer *w, const char *path, GError **error)
{
  char *header, *tmp_path;
  size_t header_len;
  guint64 header_len_le;
  gboolean ok = FALSE;
  int fd, saved_errno;

  g_return_val_if_fail (w != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* file names are bytes: shown as valid UTF-8 */
  g_autofree char *shown = fer_text_quote (path, 0);
  if (w->refused != NULL) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s: not written: %s", shown, w->refused);
    return FALSE;
  }
  header = build_header (w, &header_len);
  header_len_le = GUINT64_TO_LE ((guint64) header_len);

  /* Same directory as `path`, so that rename() stays on one file system
   * and replaces the file in one step. */
  tmp_path = g_strconcat (path, ".tmp-XXXXXX", NULL);
  fd = g_mkstemp_full (tmp_path, O_RDWR | O_CLOEXEC, 0666);
  if (fd < 0) {
    saved_errno = errno;
    g_set_error (error, FER_ERROR, FER_ERROR_IO,
        "%s: cannot create a temporary file next to it: %s", shown,
        g_strerror (saved_errno));
    goto out;
  }

  if (!write_all (fd, &header_len_le, 8) || !write_all (fd, header, header_len))
    goto write_error;
  for (guint i = 0; i < w->tensors->len; i++) {
    const writer_tensor *t = g_ptr_array_index (w->tensors, i);
    if (!write_all (fd, t->bytes, t->nbytes))
      goto write_error;
  }
  /* Data on disk before the rename makes it visible; otherwise a crash can
   * leave an empty file under the final name. */
  if (fsync (fd) != 0)
    goto write_error;
  if (close (fd) != 0) {
    fd = -1;
    goto write_error;
  }
  fd = -1;

  if (g_rename (tmp_path, path) != 0) {
    saved_errno = errno;
    g_autofree char *shown_tmp = fer_text_quote (tmp_path, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_IO,
        "%s: cannot rename %s over it: %s", shown, shown_tmp,
        g_strerror (saved_errno));
    g_unlink (tmp_path);
    goto out;
  }
  ok = TRUE;
  goto out;

write_error:
  saved_errno = errno;
  char *shown_tmp = fer_text_quote (tmp_path, 0);
  g_set_error (error, FER_ERROR, FER_ERROR_IO, "%s: cannot write %s: %s", shown,
      shown_tmp, g_strerror (saved_errno));
  g_free (shown_tmp);
  if (fd >= 0)
    close (fd);
  g_unlink (tmp_path);

out:
  g_free (tmp_path);
  g_free (header);
  return ok;
}
