#include "metrics.h"

#include <string.h>

fer_metrics *
fer_metrics_new (int n_classes, const char *const *labels)
{
  g_return_val_if_fail (n_classes >= 1 && labels != NULL, NULL);

  fer_metrics *m = g_new0 (fer_metrics, 1);
  m->n_classes = n_classes;
  m->labels = g_new0 (char *, n_classes + 1);
  for (int i = 0; i < n_classes; i++)
    m->labels[i] = g_strdup (labels[i]);
  m->confusion = g_new0 (int64_t, (size_t) n_classes * n_classes);
  m->per_class = g_new0 (fer_class_scores, n_classes);
  return m;
}

void
fer_metrics_free (fer_metrics *m)
{
  if (m == NULL)
    return;
  g_strfreev (m->labels);
  g_free (m->confusion);
  g_free (m->per_class);
  g_free (m);
}

void
fer_metrics_add (fer_metrics *m, int true_class, int predicted_class)
{
  g_return_if_fail (true_class >= 0 && true_class < m->n_classes);
  g_return_if_fail (predicted_class >= 0 && predicted_class < m->n_classes);

  m->confusion[(size_t) true_class * m->n_classes + predicted_class]++;
  m->n++;
  m->computed = FALSE;
}

static double
ratio (int64_t num, int64_t den)
{
  return den > 0 ? (double) num / (double) den : 0.0;
}

void
fer_metrics_compute (fer_metrics *m)
{
  int k = m->n_classes;
  int64_t correct = 0;
  fer_class_scores macro = { 0 }, weighted = { 0 };

  m->macro_classes = 0;
  for (int c = 0; c < k; c++) {
    int64_t tp = m->confusion[(size_t) c * k + c];
    int64_t support = 0, predicted = 0;
    for (int j = 0; j < k; j++) {
      support += m->confusion[(size_t) c * k + j];
      predicted += m->confusion[(size_t) j * k + c];
    }
    fer_class_scores *s = &m->per_class[c];
    s->precision = ratio (tp, predicted);
    s->recall = ratio (tp, support);
    s->f1 = s->precision + s->recall > 0
        ? 2 * s->precision * s->recall / (s->precision + s->recall)
        : 0.0;
    s->support = support;
    correct += tp;

    if (support > 0) {
      macro.precision += s->precision;
      macro.recall += s->recall;
      macro.f1 += s->f1;
      m->macro_classes++;
    }
    weighted.precision += s->precision * support;
    weighted.recall += s->recall * support;
    weighted.f1 += s->f1 * support;
  }

  macro.support = weighted.support = m->n;
  if (m->macro_classes > 0) {
    macro.precision /= m->macro_classes;
    macro.recall /= m->macro_classes;
    macro.f1 /= m->macro_classes;
  }
  if (m->n > 0) {
    weighted.precision /= m->n;
    weighted.recall /= m->n;
    weighted.f1 /= m->n;
  }
  m->macro = macro;
  m->weighted = weighted;
  m->accuracy = ratio (correct, m->n);
  m->computed = TRUE;
}

/* Width of the widest label, at least `min` (the row titles of the
 * averages must fit too). */
static int
label_width (const fer_metrics *m, int min)
{
  int w = min;
  for (int i = 0; i < m->n_classes; i++)
    w = MAX (w, (int) strlen (m->labels[i]));
  return w;
}

static void
print_scores_row (
    FILE *out, int width, const char *title, const fer_class_scores *s)
{
  fprintf (out, "%*s  %9.4f  %9.4f  %9.4f  %9" G_GINT64_FORMAT "\n", width,
      title, s->precision, s->recall, s->f1, s->support);
}

void
fer_metrics_print_text (const fer_metrics *m, FILE *out)
{
  g_return_if_fail (m->computed);

  int w = label_width (m, (int) strlen ("weighted avg"));
  fprintf (out, "%*s  %9s  %9s  %9s  %9s\n", w, "", "precision", "recall",
      "f1-score", "support");
  for (int c = 0; c < m->n_classes; c++)
    print_scores_row (out, w, m->labels[c], &m->per_class[c]);
  fprintf (out, "\n%*s  %9s  %9s  %9.4f  %9" G_GINT64_FORMAT "\n", w,
      "accuracy", "", "", m->accuracy, m->n);
  print_scores_row (out, w, "macro avg", &m->macro);
  print_scores_row (out, w, "weighted avg", &m->weighted);
  if (m->macro_classes < m->n_classes)
    fprintf (out,
        "(macro avg over the %d of %d classes present in the "
        "data)\n",
        m->macro_classes, m->n_classes);

  /* Columns wide enough for both the largest count and the label. */
  int64_t max_count = 0;
  for (size_t i = 0; i < (size_t) m->n_classes * m->n_classes; i++)
    max_count = MAX (max_count, m->confusion[i]);
  char digits[32];
  int cw =
      MAX (g_snprintf (digits, sizeof digits, "%" G_GINT64_FORMAT, max_count),
          label_width (m, 1));
  int rw = label_width (m, (int) strlen ("true \\ pred"));

  fprintf (out,
      "\nconfusion matrix (rows: true class, columns: predicted "
      "class)\n%*s",
      rw, "true \\ pred");
  for (int j = 0; j < m->n_classes; j++)
    fprintf (out, "  %*s", cw, m->labels[j]);
  fputc ('\n', out);
  for (int i = 0; i < m->n_classes; i++) {
    fprintf (out, "%*s", rw, m->labels[i]);
    for (int j = 0; j < m->n_classes; j++)
      fprintf (out, "  %*" G_GINT64_FORMAT, cw,
          m->confusion[(size_t) i * m->n_classes + j]);
    fputc ('\n', out);
  }
}

static void
scores_to_json (JsonBuilder *b, const fer_class_scores *s)
{
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "precision");
  json_builder_add_double_value (b, s->precision);
  json_builder_set_member_name (b, "recall");
  json_builder_add_double_value (b, s->recall);
  json_builder_set_member_name (b, "f1");
  json_builder_add_double_value (b, s->f1);
  json_builder_set_member_name (b, "support");
  json_builder_add_int_value (b, s->support);
  json_builder_end_object (b);
}

void
fer_metrics_to_json (const fer_metrics *m, JsonBuilder *b)
{
  g_return_if_fail (m->computed);

  json_builder_set_member_name (b, "accuracy");
  json_builder_add_double_value (b, m->accuracy);
  json_builder_set_member_name (b, "n");
  json_builder_add_int_value (b, m->n);

  json_builder_set_member_name (b, "labels");
  json_builder_begin_array (b);
  for (int c = 0; c < m->n_classes; c++)
    json_builder_add_string_value (b, m->labels[c]);
  json_builder_end_array (b);

  json_builder_set_member_name (b, "per_class");
  json_builder_begin_object (b);
  for (int c = 0; c < m->n_classes; c++) {
    json_builder_set_member_name (b, m->labels[c]);
    scores_to_json (b, &m->per_class[c]);
  }
  json_builder_end_object (b);
  json_builder_set_member_name (b, "macro_avg");
  scores_to_json (b, &m->macro);
  json_builder_set_member_name (b, "macro_avg_classes");
  json_builder_add_int_value (b, m->macro_classes);
  json_builder_set_member_name (b, "weighted_avg");
  scores_to_json (b, &m->weighted);

  json_builder_set_member_name (b, "confusion");
  json_builder_begin_array (b);
  for (int i = 0; i < m->n_classes; i++) {
    json_builder_begin_array (b);
    for (int j = 0; j < m->n_classes; j++)
      json_builder_add_int_value (
          b, m->confusion[(size_t) i * m->n_classes + j]);
    json_builder_end_array (b);
  }
  json_builder_end_array (b);
}

static void
markdown_scores_row (GString *out, const char *title, const fer_class_scores *s)
{
  g_string_append_printf (out,
      "| %s | %.4f | %.4f | %.4f | %" G_GINT64_FORMAT " |\n", title,
      s->precision, s->recall, s->f1, s->support);
}

void
fer_metrics_append_markdown (const fer_metrics *m, GString *out)
{
  g_return_if_fail (m->computed);

  g_string_append_printf (out,
      "Accuracy: **%.4f** (%" G_GINT64_FORMAT " images)\n\n", m->accuracy,
      m->n);
  g_string_append (out,
      "| class | precision | recall | F1 | support |\n"
      "|---|---:|---:|---:|---:|\n");
  for (int c = 0; c < m->n_classes; c++)
    markdown_scores_row (out, m->labels[c], &m->per_class[c]);
  markdown_scores_row (out, "*macro avg*", &m->macro);
  markdown_scores_row (out, "*weighted avg*", &m->weighted);
  if (m->macro_classes < m->n_classes)
    g_string_append_printf (out,
        "\nThe macro average is over the %d of %d "
        "classes present in the data.\n",
        m->macro_classes, m->n_classes);

  g_string_append (out,
      "\nConfusion matrix (rows: true class, columns: "
      "predicted class):\n\n| true \\ predicted |");
  for (int j = 0; j < m->n_classes; j++)
    g_string_append_printf (out, " %s |", m->labels[j]);
  g_string_append (out, "\n|---|");
  for (int j = 0; j < m->n_classes; j++)
    g_string_append (out, "---:|");
  g_string_append_c (out, '\n');
  for (int i = 0; i < m->n_classes; i++) {
    g_string_append_printf (out, "| **%s** |", m->labels[i]);
    for (int j = 0; j < m->n_classes; j++)
      g_string_append_printf (out, " %" G_GINT64_FORMAT " |",
          m->confusion[(size_t) i * m->n_classes + j]);
    g_string_append_c (out, '\n');
  }
}
