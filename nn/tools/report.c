/* The metrics CSV and the Markdown report (contract in report.h). */
#include "report.h"

#include <fer/fer.h>

static gboolean
write_atomically (
    const char *path, const char *what, const GString *text, GError **error)
{
  /* g_file_set_contents writes a temporary file and renames it. */
  g_autoptr (GError) e = NULL;
  if (!g_file_set_contents (path, text->str, (gssize) text->len, &e)) {
    g_autofree char *shown = fer_text_quote (path, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot write %s %s: %s", what,
        shown, e->message);
    return FALSE;
  }
  return TRUE;
}

gboolean
fer_metrics_csv_write (
    const char *path, const fer_epoch_row *rows, int n, GError **error)
{
  g_autoptr (GString) s = g_string_new (FER_METRICS_CSV_HEADER "\n");
  for (int i = 0; i < n; i++) {
    const fer_epoch_row *r = &rows[i];
    g_string_append_printf (s, "%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.1f\n", r->epoch,
        r->lr, r->train_loss, r->train_acc, r->val_loss, r->val_acc,
        r->seconds);
  }
  return write_atomically (path, "metrics file", s, error);
}

int
fer_metrics_most_confused (const fer_metrics *m, int max, int *pairs)
{
  int k = m->n_classes, found = 0;
  /* Selection of the max largest cells: K is small (7 for FER2013). */
  while (found < max) {
    int best_i = -1, best_j = -1;
    int64_t best = 0;
    for (int i = 0; i < k; i++)
      for (int j = 0; j < k; j++) {
        if (i == j)
          continue;
        int64_t v = m->confusion[(size_t) i * k + j];
        gboolean taken = FALSE;
        for (int p = 0; p < found; p++)
          taken |= pairs[2 * p] == i && pairs[2 * p + 1] == j;
        if (!taken && v > best) {
          best = v;
          best_i = i;
          best_j = j;
        }
      }
    if (best_i < 0)
      break;
    pairs[2 * found] = best_i;
    pairs[2 * found + 1] = best_j;
    found++;
  }
  return found;
}

static int64_t
row_total (const fer_metrics *m, int i)
{
  int64_t total = 0;
  for (int j = 0; j < m->n_classes; j++)
    total += m->confusion[(size_t) i * m->n_classes + j];
  return total;
}

static void
append_confused_pairs (GString *md, const fer_metrics *m)
{
  int pairs[2 * 10];
  int n = fer_metrics_most_confused (m, 10, pairs);
  if (n == 0) {
    g_string_append (md, "No class was mistaken for another.\n");
    return;
  }
  g_string_append (md,
      "| true class | predicted as | images | share of the "
      "true class |\n|---|---|---:|---:|\n");
  for (int p = 0; p < n; p++) {
    int i = pairs[2 * p], j = pairs[2 * p + 1];
    int64_t v = m->confusion[(size_t) i * m->n_classes + j];
    g_string_append_printf (md, "| %s | %s | %" G_GINT64_FORMAT " | %.1f%% |\n",
        m->labels[i], m->labels[j], v, 100.0 * v / MAX (row_total (m, i), 1));
  }
}

static void
append_accuracy_row (GString *md, const char *title, const fer_metrics *m)
{
  g_string_append_printf (md, "| %s | %.2f%% | %.4f | %.4f |\n", title,
      100.0 * m->accuracy, m->macro.f1, m->weighted.f1);
}

void
fer_skipped_file_clear (gpointer p)
{
  fer_skipped_file *s = p;
  g_free (s->path);
  g_free (s->message);
}

static void
append_facts (GString *md, const char *const *facts)
{
  g_string_append (md, "| | |\n|---|---|\n");
  for (const char *const *f = facts; f[0] != NULL; f += 2)
    g_string_append_printf (md, "| %s | %s |\n", f[0], f[1]);
  g_string_append_c (md, '\n');
}

/* Plain and (with_tta: may be NULL) TTA accuracy. */
static void
append_accuracy_table (GString *md, const char *heading,
    const fer_metrics *plain, const fer_metrics *with_tta, int tta)
{
  g_string_append_printf (md,
      "## %s\n\n"
      "| evaluation | accuracy | macro F1 | weighted F1 |\n"
      "|---|---:|---:|---:|\n",
      heading);
  append_accuracy_row (md, "plain (1 view)", plain);
  if (with_tta != NULL) {
    g_autofree char *title = g_strdup_printf ("TTA (%d views)", tta);
    append_accuracy_row (md, title, with_tta);
  }
}

/* Plain and TTA accuracy, and what the trainer measured at the time. */
static void
append_accuracy (GString *md, const fer_report_training *t)
{
  append_accuracy_table (
      md, "Accuracy on the validation set", t->plain, t->with_tta, t->tta);
  const fer_epoch_row *best = NULL;
  for (int i = 0; i < t->n_rows; i++)
    if (t->rows[i].epoch == t->best_epoch)
      best = &t->rows[i];
  if (best != NULL)
    g_string_append_printf (md,
        "\nDuring training (epoch %d, the trainer's "
        "own evaluation before the checkpoint was written): %.2f%%.\n",
        best->epoch, 100.0 * best->val_acc);
}

static void
append_curves (GString *md, const fer_report_training *t)
{
  g_string_append_printf (
      md, "\n## Training curves\n\n![training curves](%s)\n\n", t->curves_png);
  g_string_append (md,
      "| epoch | lr | train loss | train acc | val loss | "
      "val acc | seconds |\n|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int i = 0; i < t->n_rows; i++) {
    const fer_epoch_row *e = &t->rows[i];
    g_string_append_printf (md,
        "| %d%s | %.3g | %.4f | %.4f | %.4f | "
        "%.4f | %.0f |\n",
        e->epoch, e->epoch == t->best_epoch ? " (best)" : "", e->lr,
        e->train_loss, e->train_acc, e->val_loss, e->val_acc, e->seconds);
  }
}

gboolean
fer_report_write (const char *path, const fer_report *r, GError **error)
{
  const fer_report_training *t = r->training;
  g_autoptr (GString) md = g_string_new (NULL);

  g_string_append_printf (md, "# %s\n\n", r->title);
  append_facts (md, r->facts);
  if (t == NULL) {
    g_string_append_printf (md, "Command: `%s`\n\n", r->command);
    if (r->plain != NULL) {
      append_accuracy_table (md, "Accuracy", r->plain, r->metrics, r->tta);
      g_string_append_printf (
          md, "\n## Per-class results (%d views)\n\n", r->tta);
    }
  } else {
    append_accuracy (md, t);
    g_string_append_printf (md, "\n## Per-class results (%s)\n\n",
        t->with_tta != NULL ? "with TTA" : "one view");
  }

  fer_metrics_append_markdown (r->metrics, md);

  if (t != NULL)
    g_string_append_printf (
        md, "\n![confusion matrix](%s)\n", t->confusion_png);
  g_string_append (md, "\n## Most confused classes\n\n");
  append_confused_pairs (md, r->metrics);
  if (t != NULL) {
    append_curves (md, t);
    g_string_append_printf (md,
        "\n## Recipe\n\n```\n%s\n```\n\n"
        "Options: `%s`\n",
        r->command, t->recipe);
  }
  if (r->skipped != NULL && r->skipped->len > 0) {
    g_string_append (md, "\n## Skipped files\n\n");
    for (guint i = 0; i < r->skipped->len; i++) {
      const fer_skipped_file *s =
          &g_array_index (r->skipped, fer_skipped_file, i);
      g_string_append_printf (md, "- `%s`: %s\n", s->path, s->message);
    }
  }
  return write_atomically (path, "report", md, error);
}
