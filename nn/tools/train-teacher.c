/* fer-train --teacher (contract in train-teacher.h). */
#include "train-teacher.h"

#include <math.h>
#include <string.h>

#include "cli.h"
#include "progress.h"
#include "train-log.h"

/* The file: this magic, then little-endian u64 fingerprint, i32 n, i32 k,
 * i32 views, i32 zero, then n x k float32 in the machine's byte order
 * (little-endian on x86-64 and aarch64). */
static const char magic[8] = { 'F', 'E', 'R', 'S', 'O', 'F', 'T', '1' };
#define HEADER_BYTES (8 + 8 + 4 * 4)

typedef struct
{
  guint64 fingerprint;
  gint32 n, k, views, zero;
} header;
G_STATIC_ASSERT (sizeof magic + sizeof (header) == HEADER_BYTES);

float *
train_teacher_read (const char *path, guint64 fingerprint, int n, int k,
    int views, GError **error)
{
  g_autofree char *bytes = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &bytes, &len, error))
    return NULL;
  g_autofree char *shown = fer_text_quote (path, 0);
  header h;
  if (len < HEADER_BYTES || memcmp (bytes, magic, sizeof magic) != 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s is not a teacher-targets file (%" G_GSIZE_FORMAT " bytes)", shown,
        len);
    return NULL;
  }
  memcpy (&h, bytes + sizeof magic, sizeof h);
  h.fingerprint = GUINT64_FROM_LE (h.fingerprint);
  h.n = GINT32_FROM_LE (h.n);
  h.k = GINT32_FROM_LE (h.k);
  h.views = GINT32_FROM_LE (h.views);
  if (h.zero != 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s: header field 6 is %d, expected 0", shown, h.zero);
    return NULL;
  }
  if (h.fingerprint != fingerprint || h.n != n || h.k != k
      || h.views != views) {
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s holds targets for other data (%d images, %d classes, %d views, "
        "data %016" G_GINT64_MODIFIER "x; the run has %d, %d, %d, "
        "%016" G_GINT64_MODIFIER "x)",
        shown, h.n, h.k, h.views, h.fingerprint, n, k, views, fingerprint);
    return NULL;
  }
  const gsize want = HEADER_BYTES + (gsize) n * k * sizeof (float);
  if (len != want) {
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s has %" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT, shown,
        len, want);
    return NULL;
  }
  float *soft = g_new (float, MAX ((gsize) n * k, 1));
  memcpy (soft, bytes + HEADER_BYTES, (gsize) n * k * sizeof (float));
  for (gsize i = 0; i < (gsize) n; i++) {
    double sum = 0.0;
    gboolean ok = TRUE;
    for (int j = 0; j < k; j++) {
      const float q = soft[i * k + j];
      ok = ok && q >= 0.0f && q <= 1.0f;
      sum += q;
    }
    if (!ok || fabs (sum - 1.0) > 1e-3) {
      g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
          "%s: the targets of image %" G_GSIZE_FORMAT " are not probabilities",
          shown, i);
      g_free (soft);
      return NULL;
    }
  }
  return soft;
}

static gboolean
write_targets (const char *path, const float *soft, guint64 fingerprint, int n,
    int k, int views, GError **error)
{
  const gsize data = (gsize) n * k * sizeof (float);
  g_autofree char *bytes = g_malloc (HEADER_BYTES + data);
  header h = { GUINT64_TO_LE (fingerprint), GINT32_TO_LE (n), GINT32_TO_LE (k),
    GINT32_TO_LE (views), 0 };
  memcpy (bytes, magic, sizeof magic);
  memcpy (bytes + sizeof magic, &h, sizeof h);
  memcpy (bytes + HEADER_BYTES, soft, data);
  GError *e = NULL;
  if (g_file_set_contents (path, bytes, HEADER_BYTES + data, &e))
    return TRUE;
  g_autofree char *shown = fer_text_quote (path, 0);
  g_set_error (error, FER_ERROR, FER_ERROR_IO,
      "cannot write the teacher's targets to %s: %s", shown, e->message);
  g_error_free (e);
  return FALSE;
}

/* Runs the teacher over the training images. */
static float *
compute_targets (train_run *r, GError **error)
{
  const fer_dataset *d = r->train;
  const int k = d->n_classes, views = r->o.teacher_tta, chunk = 32;
  g_autofree char *shown = fer_text_quote (r->o.teacher, 0);
  g_autoptr (GError) e = NULL;
  g_autofree char *path = fer_model_find (r->o.teacher, &e);
  if (path == NULL) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT, "--teacher: %s",
        e->message);
    return NULL;
  }
  fer_model_options mo;
  fer_model_options_init (&mo);
  mo.backend = r->o.backend;
  mo.threads = r->o.threads;
  fer_model *m = fer_model_load (path, &mo, &e);
  if (m == NULL) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "--teacher %s: %s", shown, e->message);
    return NULL;
  }
  gboolean same = fer_model_n_classes (m) == k;
  for (int j = 0; same && j < k; j++)
    same = strcmp (fer_model_label (m, j), d->labels[j]) == 0;
  if (!same) {
    g_autoptr (GString) list = g_string_new (NULL);
    for (int j = 0; j < fer_model_n_classes (m); j++)
      g_string_append_printf (
          list, "%s%s", j ? "," : "", fer_model_label (m, j));
    const char *theirs = list->str;
    g_autofree char *joined = g_strjoinv (",", d->labels);
    g_autofree char *ours = fer_text_quote (joined, 0);
    g_autofree char *theirs_q = fer_text_quote (theirs, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "--teacher %s has the labels %s; the run's are %s (same names in the "
        "same order needed)",
        shown, theirs_q, ours);
    fer_model_free (m);
    return NULL;
  }

  float *soft = g_new (float, MAX ((gsize) d->n * k, 1));
  fer_image imgs[32];
  fer_progress count;
  fer_progress_init (&count, d->n);
  const gint64 start = g_get_monotonic_time ();
  train_say (
      "teacher %s: %d views of each of %d training images", shown, views, d->n);
  for (int i = 0; i < d->n; i += chunk) {
    const int n = MIN (chunk, d->n - i);
    for (int j = 0; j < n; j++)
      imgs[j] = fer_dataset_fer_image (d, i + j);
    if (!fer_model_classify_images (
            m, imgs, n, views, soft + (gsize) i * k, &e)) {
      g_set_error (error, FER_ERROR, FER_ERROR_BACKEND,
          "--teacher %s on training images %d-%d: %s", shown, i + 1, i + n,
          e->message);
      g_free (soft);
      fer_model_free (m);
      return NULL;
    }
    const int done = i + n;
    const double s = (g_get_monotonic_time () - start) / 1e6;
    if (count.tty) {
      g_autofree char *bar = fer_progress_bar (&count, done, 30);
      train_log_bar ("teacher %s %d/%d %.0f img/s\033[K", bar, done, d->n,
          done / fmax (s, 1e-3));
    } else if (fer_progress_next_tenth (&count, done))
      train_say ("teacher: %d/%d images, %.0f s", done, d->n, s);
  }
  train_log_end_bar ();
  fer_model_free (m);
  return soft;
}

gboolean
train_teacher_targets (train_run *r, GError **error)
{
  if (r->o.teacher == NULL)
    return TRUE;
  const fer_dataset *d = r->train;
  const guint64 fp = fer_dataset_fingerprint (d);
  g_autofree char *path = train_run_path (r, "teacher-targets.bin");
  if (r->o.resume != NULL) {
    g_autoptr (GError) e = NULL;
    g_autofree char *shown = fer_text_quote (path, 0);
    g_autofree char *teacher = fer_text_quote (r->o.teacher, 0);
    if (!g_file_test (path, G_FILE_TEST_EXISTS))
      g_set_error (&e, FER_ERROR, FER_ERROR_IO, "%s is missing", shown);
    else
      r->soft = train_teacher_read (
          path, fp, d->n, d->n_classes, r->o.teacher_tta, &e);
    if (r->soft != NULL) {
      train_say ("teacher: the run's targets from %s", shown);
      return TRUE;
    }
    /* the teacher may no longer be the file the run started with (a name
     * resolves per machine, a file may have changed): say so */
    train_say ("note: %s; running the teacher again (the run repeats an "
               "uninterrupted one only if --teacher %s is still the same "
               "model)",
        e->message, teacher);
  }
  r->soft = compute_targets (r, error);
  if (r->soft == NULL)
    return FALSE;
  r->soft_unsaved = TRUE;
  /* how much the teacher agrees with the labels, for the log */
  int agree = 0;
  for (int i = 0; i < d->n; i++)
    agree += fer_argmax (r->soft + (gsize) i * d->n_classes, d->n_classes)
        == d->y[i];
  train_say ("teacher: its top class is the label on %.2f%% of the training "
             "images",
      100.0 * agree / MAX (d->n, 1));
  return TRUE;
}

gboolean
train_teacher_save (train_run *r, GError **error)
{
  if (!r->soft_unsaved)
    return TRUE;
  const fer_dataset *d = r->train;
  g_autofree char *path = train_run_path (r, "teacher-targets.bin");
  if (!write_targets (path, r->soft, fer_dataset_fingerprint (d), d->n,
          d->n_classes, r->o.teacher_tta, error))
    return FALSE;
  r->soft_unsaved = FALSE;
  return TRUE;
}
