/* fer-train's data loaders (contract in dataset.h).
 *
 * Folder trees are walked by imagefolder.c in byte order of the names, so
 * two loads (and two machines) give the same image order, and with it the
 * same training run for a seed. */
#include "dataset.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "augment.h"
#include "imagefolder.h"
#include "imageio.h"

/* Bad images or rows reported one by one; beyond this only counted, so that
 * a wrong file does not bury the terminal under thousands of lines. */
#define MAX_REPORTED_SKIPS 20

/* FER2013's CSV files and their emotion numbers. */
#define FER2013_SIDE 48
#define FER2013_PIXELS (FER2013_SIDE * FER2013_SIDE)

const char *const fer_dataset_fer2013_labels[8] = { "angry", "disgust", "fear",
  "happy", "neutral", "sad", "surprise", NULL };

/* emotion number -> index in fer_dataset_fer2013_labels */
static const int fer2013_emotion_label[7] = { 0, 1, 2, 3, 5, 6, 4 };

/* Random stream of the validation split (epochs use 1, 2, 3...). */
#define SPLIT_STREAM G_GUINT64_CONSTANT (0x53504c4954)

static fer_dataset *
dataset_new (const char *source, int size, int channels,
    const char *const *labels, int n_labels)
{
  fer_dataset *d = g_new0 (fer_dataset, 1);
  d->source = g_strdup (source);
  d->size = size;
  d->channels = channels;
  d->n_classes = n_labels;
  d->labels = g_new0 (char *, n_labels + 1);
  for (int i = 0; i < n_labels; i++)
    d->labels[i] = g_strdup (labels[i]);
  d->counts = g_new0 (int64_t, n_labels);
  return d;
}

void
fer_dataset_free (fer_dataset *d)
{
  if (d == NULL)
    return;
  g_free (d->source);
  g_strfreev (d->labels);
  g_free (d->pixels);
  g_free (d->y);
  g_free (d->counts);
  g_free (d);
}

static size_t
image_bytes (const fer_dataset *d)
{
  return (size_t) d->size * d->size * d->channels;
}

fer_image
fer_dataset_fer_image (const fer_dataset *d, int i)
{
  fer_image img = { .format =
                        d->channels == 1 ? FER_PIXEL_GRAY8 : FER_PIXEL_RGB,
    .width = d->size,
    .height = d->size,
    .full_range = TRUE };
  img.planes[0] = fer_dataset_image (d, i);
  img.strides[0] = d->size * d->channels;
  return img;
}

/* Room for `n` images. */
static void
dataset_reserve (fer_dataset *d, int n)
{
  d->pixels = g_realloc (d->pixels, image_bytes (d) * MAX (n, 1));
  d->y = g_realloc (d->y, sizeof (int) * MAX (n, 1));
}

/* Converts a decoded image to the stored size and channels at dst. The
 * common case (already the right size and kind) is a plain copy, so
 * FER2013's 48x48 gray images are stored exactly. */
static gboolean
store_image (const fer_image *img, int size, int channels, uint8_t *dst,
    float *tmp, fer_scratch *scratch, GError **error)
{
  size_t row = (size_t) size * channels;
  if (img->width == size && img->height == size
      && ((channels == 1 && img->format == FER_PIXEL_GRAY8)
          || (channels == 3 && img->format == FER_PIXEL_RGB))) {
    for (int y = 0; y < size; y++)
      memcpy (
          dst + row * y, img->planes[0] + (size_t) img->strides[0] * y, row);
    return TRUE;
  }

  fer_view view = { { 0.0f, 0.0f, (float) img->width, (float) img->height },
    FALSE };
  fer_input_spec spec = {
    .size = size, .channels = channels, .mean = { 0, 0, 0 }, .std = { 1, 1, 1 }
  };
  if (!fer_preprocess (img, &view, &spec, tmp, scratch, error))
    return FALSE;
  size_t plane = (size_t) size * size;
  for (size_t i = 0; i < plane; i++)
    for (int k = 0; k < channels; k++) {
      float v = tmp[k * plane + i] * 255.0f + 0.5f;
      dst[i * channels + k] = (uint8_t) CLAMP (v, 0.0f, 255.0f);
    }
  return TRUE;
}

/* Counts skips and reports the first MAX_REPORTED_SKIPS of them. */
static void
report_skip (
    const fer_dataset_callbacks *cb, int *n_skipped, const char *message)
{
  (*n_skipped)++;
  if (cb == NULL || cb->skipped == NULL || *n_skipped > MAX_REPORTED_SKIPS + 1)
    return;
  if (*n_skipped == MAX_REPORTED_SKIPS + 1)
    cb->skipped ("more skipped images or rows follow; they are counted, not "
                 "listed",
        cb->user_data);
  else
    cb->skipped (message, cb->user_data);
}

static void
report_progress (const fer_dataset_callbacks *cb, const char *what, gint64 done,
    gint64 total)
{
  if (cb != NULL && cb->progress != NULL)
    cb->progress (what, done, total, cb->user_data);
}

static int
label_index (const char *const *labels, const char *name)
{
  for (int i = 0; labels[i] != NULL; i++)
    if (strcmp (labels[i], name) == 0)
      return i;
  return -1;
}

typedef struct
{
  char *path;
  int label;
} labelled_file;

static void
labelled_file_clear (gpointer p)
{
  g_free (((labelled_file *) p)->path);
}

/* Why a folder name cannot be a label, or NULL. A label goes into the
 * model's comma-separated fer.labels, bus messages, JSON lines, drawn text
 * and subtitles: it must be text, on one line, without a comma (the loader
 * refuses a model with a control character in a label). */
static const char *
label_problem (const char *name)
{
  if (!g_utf8_validate (name, -1, NULL))
    return "is not a valid UTF-8 name; rename it (labels become model "
           "metadata)";
  for (const char *c = name; *c; c++)
    if ((guchar) *c < 0x20 || *c == 0x7f)
      return "has a control character in its name (labels are shown on one "
             "line); rename it";
  if (strchr (name, ',') != NULL)
    return "has a comma in its name, which the model's comma-separated "
           "fer.labels cannot hold";
  return NULL;
}

/* The label folders of root with their image files; fills *folder_labels
 * (the sorted folder names) when labels is NULL. */
static GArray *
collect_files (const char *root, const char *const *labels,
    const char *labels_origin, GPtrArray **folder_labels, GError **error)
{
  /* names in messages are quoted: a file name is whatever bytes the file
   * system holds */
  g_autofree char *r = fer_text_quote (root, 0);
  if (!g_file_test (root, G_FILE_TEST_EXISTS)) {
    g_set_error (error, FER_ERROR, FER_ERROR_IO,
        "data directory %s does "
        "not exist; expected an image-folder tree ROOT/<label>/*.jpg|*.png",
        r);
    return NULL;
  }
  g_autoptr (GPtrArray) folders = fer_image_folder_labels (root, error);
  if (folders == NULL)
    return NULL;
  if (folders->len == 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s has no label folders; expected an image-folder tree "
        "ROOT/<label>/*.jpg|*.jpeg|*.png with one folder per class",
        r);
    return NULL;
  }

  if (labels == NULL) {
    if (folders->len < 2) {
      g_autofree char *q = fer_text_quote (folders->pdata[0], 0);
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "%s has only one label folder ('%s'); a classifier needs two "
          "or more classes",
          r, q);
      return NULL;
    }
    for (guint i = 0; i < folders->len; i++) {
      const char *why = label_problem (folders->pdata[i]);
      if (why != NULL) {
        g_autofree char *q = fer_text_quote (folders->pdata[i], 0);
        g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
            "%s: label folder '%s' %s", r, q, why);
        return NULL;
      }
    }
    *folder_labels = g_ptr_array_new_with_free_func (g_free);
    for (guint i = 0; i < folders->len; i++)
      g_ptr_array_add (*folder_labels, g_strdup (folders->pdata[i]));
    g_ptr_array_add (*folder_labels, NULL);
    labels = (const char *const *) (*folder_labels)->pdata;
  }

  GArray *files = g_array_new (FALSE, FALSE, sizeof (labelled_file));
  g_array_set_clear_func (files, labelled_file_clear);
  for (guint i = 0; i < folders->len; i++) {
    const char *name = folders->pdata[i];
    int label = label_index (labels, name);
    if (label < 0) {
      g_autofree char *list = g_strjoinv (", ", (char **) labels);
      g_autofree char *q = fer_text_quote (name, 0);
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "%s: folder '%s' is not a label of %s; expected folders named "
          "after its labels: %s",
          r, q, labels_origin, list);
      goto fail;
    }
    g_autofree char *dir = g_build_filename (root, name, NULL);
    g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
    if (!fer_image_folder_files (dir, paths, error))
      goto fail;
    for (guint j = 0; j < paths->len; j++) {
      labelled_file f = { g_strdup (paths->pdata[j]), label };
      g_array_append_val (files, f);
    }
    if (paths->len == 0) {
      g_autofree char *q = fer_text_quote (dir, 0);
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "label folder %s has no *.jpg, *.jpeg or *.png images", q);
      goto fail;
    }
  }
  return files;

fail:
  g_array_unref (files);
  if (*folder_labels != NULL)
    g_clear_pointer (folder_labels, g_ptr_array_unref);
  return NULL;
}

fer_dataset *
fer_dataset_load_folder (const char *root, const char *const *labels,
    const char *labels_origin, int size, int channels,
    const fer_dataset_callbacks *cb, GError **error)
{
  g_autoptr (GPtrArray) folder_labels = NULL;
  g_autoptr (GArray) files =
      collect_files (root, labels, labels_origin, &folder_labels, error);
  if (files == NULL)
    return NULL;
  if (labels == NULL)
    labels = (const char *const *) folder_labels->pdata;

  fer_dataset *d = dataset_new (
      root, size, channels, labels, (int) g_strv_length ((char **) labels));
  dataset_reserve (d, (int) files->len);
  fer_decoded_image decoded = FER_DECODED_IMAGE_INIT;
  fer_scratch *scratch = fer_scratch_new ();
  float *tmp = g_new (float, image_bytes (d));
  int64_t *files_per_class = g_new0 (int64_t, d->n_classes);

  for (guint i = 0; i < files->len; i++) {
    const labelled_file *f = &g_array_index (files, labelled_file, i);
    files_per_class[f->label]++;
    g_autoptr (GError) e = NULL;
    if (!fer_decoded_image_load (&decoded, f->path, &e)
        || !store_image (&decoded.image, size, channels,
            d->pixels + image_bytes (d) * d->n, tmp, scratch, &e)) {
      g_autofree char *message =
          g_strdup_printf ("%s; image skipped", e->message);
      report_skip (cb, &d->n_skipped, message);
    } else {
      d->y[d->n++] = f->label;
      d->counts[f->label]++;
    }
    if ((i + 1) % 1000 == 0 || i + 1 == files->len)
      report_progress (cb, root, i + 1, files->len);
  }

  fer_decoded_image_clear (&decoded);
  fer_scratch_free (scratch);
  g_free (tmp);

  for (int c = 0; c < d->n_classes; c++)
    if (files_per_class[c] > 0 && d->counts[c] == 0) {
      g_autofree char *dir = g_build_filename (root, d->labels[c], NULL);
      g_autofree char *q = fer_text_quote (dir, 0);
      g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
          "none of the %" G_GINT64_FORMAT " images in %s could be read",
          files_per_class[c], q);
      g_free (files_per_class);
      fer_dataset_free (d);
      return NULL;
    }
  g_free (files_per_class);
  dataset_reserve (d, d->n);
  return d;
}

/* ---- fer2013.csv ---------------------------------------------------------- */

/* Splits a CSV line into fields in place: commas separate, a field may be
 * wrapped in double quotes (FER2013 variants quote the pixels), and
 * surrounding spaces are trimmed. */
static int
split_csv (char *line, char **fields, int max_fields)
{
  int n = 0;
  char *p = line;
  for (;;) {
    while (*p == ' ' || *p == '\t')
      p++;
    char *start = p, *end;
    if (*p == '"') {
      start = ++p;
      while (*p != '\0' && *p != '"')
        p++;
      end = p;
      if (*p == '"')
        p++;
      while (*p != '\0' && *p != ',')
        p++;
    } else {
      while (*p != '\0' && *p != ',')
        p++;
      end = p;
      while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    }
    char sep = *p;
    *end = '\0';
    if (n < max_fields)
      fields[n] = start;
    n++;
    if (sep != ',')
      return n;
    p++;
  }
}

/* Parses exactly FER2013_PIXELS numbers 0..255 separated by spaces. */
static gboolean
parse_pixels (const char *s, uint8_t *out, char **why)
{
  int n = 0;
  const char *p = s;
  for (;;) {
    while (*p == ' ')
      p++;
    if (*p == '\0')
      break;
    if (!g_ascii_isdigit (*p)) {
      g_autofree char *q = fer_text_quote (p, 10);
      *why = g_strdup_printf ("pixel %d is '%s', expected a number "
                              "from 0 to 255",
          n + 1, q);
      return FALSE;
    }
    int v = 0, digits = 0;
    while (g_ascii_isdigit (*p) && digits < 4) {
      v = v * 10 + (*p - '0');
      p++;
      digits++;
    }
    if (v > 255 || g_ascii_isdigit (*p) || (*p != ' ' && *p != '\0')) {
      *why = g_strdup_printf ("pixel %d is not a number from 0 to 255", n + 1);
      return FALSE;
    }
    if (n < FER2013_PIXELS)
      out[n] = (uint8_t) v;
    n++;
  }
  if (n != FER2013_PIXELS) {
    *why = g_strdup_printf (
        "%d pixel values, expected %d (48x48)", n, FER2013_PIXELS);
    return FALSE;
  }
  return TRUE;
}

typedef enum
{
  USAGE_TRAIN,
  USAGE_VAL,
  USAGE_TEST,
  USAGE_BAD
} csv_usage;

static csv_usage
parse_usage (const char *s)
{
  if (strcmp (s, "Training") == 0)
    return USAGE_TRAIN;
  if (strcmp (s, "PublicTest") == 0)
    return USAGE_VAL;
  if (strcmp (s, "PrivateTest") == 0)
    return USAGE_TEST;
  return USAGE_BAD;
}

static void
dataset_append (fer_dataset *d, int *capacity, const uint8_t *gray48, int label,
    float *tmp, fer_scratch *scratch)
{
  if (d->n == *capacity) {
    *capacity = MAX (1024, *capacity * 2);
    dataset_reserve (d, *capacity);
  }
  fer_image img = { .format = FER_PIXEL_GRAY8,
    .width = FER2013_SIDE,
    .height = FER2013_SIDE,
    .full_range = TRUE };
  img.planes[0] = gray48;
  img.strides[0] = FER2013_SIDE;
  /* A valid 48x48 gray image and a positive size cannot fail. */
  store_image (&img, d->size, d->channels, d->pixels + image_bytes (d) * d->n,
      tmp, scratch, NULL);
  d->y[d->n++] = label;
  d->counts[label]++;
}

gboolean
fer_dataset_load_csv (const char *path, const char *const *labels,
    const char *labels_origin, int size, int channels,
    const fer_dataset_callbacks *cb, fer_dataset **train, fer_dataset **val,
    GError **error)
{
  *train = *val = NULL;
  /* Messages carry the path and the file's own text: both shown as valid
   * UTF-8 whatever their bytes (fer_text_quote). */
  g_autofree char *shown = fer_text_quote (path, 0);
  if (labels == NULL)
    labels = fer_dataset_fer2013_labels;
  int emotion_label[7];
  for (int e = 0; e < 7; e++) {
    const char *name = fer_dataset_fer2013_labels[fer2013_emotion_label[e]];
    emotion_label[e] = label_index (labels, name);
    if (emotion_label[e] < 0) {
      g_autofree char *list = g_strjoinv (", ", (char **) labels);
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "%s: FER2013 emotion %d ('%s') is not a label of %s (%s)", shown, e,
          name, labels_origin, list);
      return FALSE;
    }
  }

  FILE *f = fopen (path, "rb");
  if (f == NULL) {
    int e = errno;
    g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot open %s: %s", shown,
        g_strerror (e));
    return FALSE;
  }
  fseek (f, 0, SEEK_END);
  long file_size = ftell (f);
  fseek (f, 0, SEEK_SET);

  char *line = NULL;
  size_t line_cap = 0;
  gboolean ok = FALSE;
  fer_dataset *sets[2] = { NULL, NULL };
  int capacity[2] = { 0, 0 };
  fer_scratch *scratch = fer_scratch_new ();
  float *tmp = g_new (float, (size_t) size *size *channels);
  uint8_t gray[FER2013_PIXELS];
  char *fields[8];
  char *header = NULL, *first_bad = NULL;
  int n_labels = (int) g_strv_length ((char **) labels);

  ssize_t len = getline (&line, &line_cap, f);
  if (len < 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s is empty; expected "
        "fer2013.csv with the header emotion,pixels,Usage",
        shown);
    goto out;
  }
  line[strcspn (line, "\r\n")] = '\0';
  header = g_strdup (line);
  int n_columns = split_csv (line, fields, G_N_ELEMENTS (fields));
  int col_emotion = -1, col_pixels = -1, col_usage = -1;
  for (int i = 0; i < MIN (n_columns, (int) G_N_ELEMENTS (fields)); i++) {
    if (g_ascii_strcasecmp (fields[i], "emotion") == 0)
      col_emotion = i;
    else if (g_ascii_strcasecmp (fields[i], "pixels") == 0)
      col_pixels = i;
    else if (g_ascii_strcasecmp (fields[i], "usage") == 0)
      col_usage = i;
  }
  if (col_emotion < 0 || col_pixels < 0
      || n_columns > (int) G_N_ELEMENTS (fields)) {
    g_autofree char *quoted_header = fer_text_quote (header, 80);
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s:1: header '%s' "
        "lacks the columns emotion and pixels; expected fer2013.csv's "
        "emotion,pixels,Usage",
        shown, quoted_header);
    goto out;
  }

  char *source = g_strdup_printf (
      "%s (%s rows)", shown, col_usage >= 0 ? "Training" : "all");
  sets[0] = dataset_new (source, size, channels, labels, n_labels);
  g_free (source);
  if (col_usage >= 0) {
    source = g_strdup_printf ("%s (PublicTest rows)", shown);
    sets[1] = dataset_new (source, size, channels, labels, n_labels);
    g_free (source);
  }

  int n_rows = 0, n_bad = 0, first_bad_line = 0;
  for (int lineno = 2; (len = getline (&line, &line_cap, f)) >= 0; lineno++) {
    line[strcspn (line, "\r\n")] = '\0';
    if (line[0] == '\0')
      continue;
    n_rows++;
    g_autofree char *why = NULL;
    int n_fields = split_csv (line, fields, G_N_ELEMENTS (fields));
    gint64 emotion = -1;
    csv_usage usage = USAGE_TRAIN;
    if (n_fields != n_columns)
      why = g_strdup_printf (
          "%d fields, expected %d as in the header", n_fields, n_columns);
    else if (!g_ascii_string_to_signed (
                 fields[col_emotion], 10, 0, 6, &emotion, NULL)) {
      g_autofree char *q = fer_text_quote (fields[col_emotion], 20);
      why = g_strdup_printf ("emotion '%s', expected 0 to 6", q);
    } else if (col_usage >= 0
        && (usage = parse_usage (fields[col_usage])) == USAGE_BAD) {
      g_autofree char *q = fer_text_quote (fields[col_usage], 20);
      why = g_strdup_printf ("Usage '%s', expected Training, "
                             "PublicTest or PrivateTest",
          q);
    } else
      parse_pixels (fields[col_pixels], gray, &why);

    if (why != NULL) {
      if (first_bad == NULL) {
        first_bad = g_strdup (why);
        first_bad_line = lineno;
      }
      g_autofree char *message =
          g_strdup_printf ("%s:%d: %s; row skipped", shown, lineno, why);
      report_skip (cb, &n_bad, message);
      continue;
    }
    if (usage == USAGE_TEST)
      continue;
    int s = usage == USAGE_VAL ? 1 : 0;
    dataset_append (
        sets[s], &capacity[s], gray, emotion_label[emotion], tmp, scratch);
    if (n_rows % 2000 == 0)
      report_progress (cb, path, ftell (f), file_size);
  }
  report_progress (cb, path, file_size, file_size);
  if (ferror (f)) {
    int e = errno;
    g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot read %s: %s", shown,
        g_strerror (e));
    goto out;
  }
  if (n_bad > 10 && n_bad * 100 > n_rows) {
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s: %d of %d rows are "
        "malformed (the first, line %d: %s); expected fer2013.csv rows "
        "emotion,pixels,Usage",
        shown, n_bad, n_rows, first_bad_line, first_bad);
    goto out;
  }
  if (sets[0]->n == 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s has no usable "
        "%s rows (%d rows read, %d malformed)",
        shown, col_usage >= 0 ? "Training" : "", n_rows, n_bad);
    goto out;
  }
  sets[0]->n_skipped = n_bad;
  for (int s = 0; s < 2; s++)
    if (sets[s] != NULL)
      dataset_reserve (sets[s], sets[s]->n);
  if (sets[1] != NULL && sets[1]->n == 0)
    g_clear_pointer (&sets[1], fer_dataset_free);
  *train = sets[0];
  *val = sets[1];
  sets[0] = sets[1] = NULL;
  ok = TRUE;

out:
  g_free (header);
  g_free (first_bad);
  fer_dataset_free (sets[0]);
  fer_dataset_free (sets[1]);
  fer_scratch_free (scratch);
  g_free (tmp);
  free (line);
  fclose (f);
  return ok;
}

/* ---- split and fingerprint ------------------------------------------------ */

fer_dataset *
fer_dataset_split (
    fer_dataset *d, double fraction, uint64_t seed, GError **error)
{
  gboolean *to_val = g_new0 (gboolean, MAX (d->n, 1));
  int *idx = g_new (int, MAX (d->n, 1));
  fer_rng rng;
  fer_rng_seed_stream (&rng, seed, SPLIT_STREAM);

  int n_val = 0;
  for (int c = 0; c < d->n_classes; c++) {
    int m = 0;
    for (int i = 0; i < d->n; i++)
      if (d->y[i] == c)
        idx[m++] = i;
    int k = (int) lround (fraction * m);
    if (m >= 2 && k == 0)
      k = 1;
    if (m > 0 && k >= m) {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "%s: class '%s' has %d image%s; a validation split of %g would "
          "leave none for training",
          d->source, d->labels[c], m, m == 1 ? "" : "s", fraction);
      g_free (to_val);
      g_free (idx);
      return NULL;
    }
    fer_aug_shuffle (&rng, idx, m);
    for (int j = 0; j < k; j++)
      to_val[idx[j]] = TRUE;
    n_val += k;
  }

  g_autofree char *source = g_strdup_printf ("%s (%g validation split, "
                                             "seed %" G_GUINT64_FORMAT ")",
      d->source, fraction, seed);
  fer_dataset *val = dataset_new (source, d->size, d->channels,
      (const char *const *) d->labels, d->n_classes);
  dataset_reserve (val, n_val);
  size_t bytes = image_bytes (d);
  int kept = 0;
  memset (d->counts, 0, sizeof (int64_t) * d->n_classes);
  for (int i = 0; i < d->n; i++) {
    fer_dataset *to = to_val[i] ? val : d;
    int j = to_val[i] ? val->n++ : kept++;
    /* kept <= i: moving down within d never overwrites an unread image. */
    memmove (to->pixels + bytes * j, d->pixels + bytes * i, bytes);
    to->y[j] = d->y[i];
    to->counts[d->y[i]]++;
  }
  d->n = kept;
  dataset_reserve (d, d->n);
  g_free (to_val);
  g_free (idx);
  return val;
}

static uint64_t
fnv1a (uint64_t h, const void *data, size_t n)
{
  const uint8_t *p = data;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

uint64_t
fer_dataset_fingerprint (const fer_dataset *d)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  int32_t dims[4] = { d->size, d->channels, d->n_classes, d->n };
  h = fnv1a (h, dims, sizeof dims);
  for (int c = 0; c < d->n_classes; c++)
    h = fnv1a (h, d->labels[c], strlen (d->labels[c]) + 1);
  h = fnv1a (h, d->pixels, image_bytes (d) * d->n);
  for (int i = 0; i < d->n; i++) {
    int32_t y = d->y[i];
    h = fnv1a (h, &y, sizeof y);
  }
  return h;
}
