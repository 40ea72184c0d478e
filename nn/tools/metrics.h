/* Classification metrics shared by fer-eval and fer-train: a confusion
 * matrix and what scikit-learn's classification_report derives from it.
 *
 * Conventions (scikit-learn's, with zero_division=0): a class that is never
 * predicted has precision 0, a class with no samples has recall 0, and F1 is
 * 0 when precision + recall is 0. The macro average weighs equally every
 * class present in the data (support > 0): a class without samples has no
 * recall to average, and counting it as 0 would put a perfect result on a
 * one-class folder at 1/k. The weighted average weighs each class by its
 * support.
 *
 * Usage: fer_metrics_new, fer_metrics_add per sample, fer_metrics_compute,
 * then read the fields or use the output functions. */
#ifndef FER_TOOLS_METRICS_H
#define FER_TOOLS_METRICS_H

#include <stdint.h>
#include <stdio.h>
#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct
{
  double precision, recall, f1;
  int64_t support; /* samples whose true class this is (total for averages) */
} fer_class_scores;

typedef struct
{
  int n_classes;
  char **labels; /* n_classes names, NULL-terminated */
  int64_t
      *confusion; /* (n_classes, n_classes): [true * n_classes + predicted] */
  int64_t n;      /* samples added */
  /* Set by fer_metrics_compute, stale after the next fer_metrics_add. */
  gboolean computed;
  double accuracy;
  fer_class_scores *per_class; /* n_classes */
  fer_class_scores macro, weighted;
  int macro_classes; /* classes the macro average is over */
} fer_metrics;

/* labels: n_classes names (copied). */
fer_metrics *fer_metrics_new (int n_classes, const char *const *labels);
void fer_metrics_free (fer_metrics *m);

void fer_metrics_add (fer_metrics *m, int true_class, int predicted_class);
void fer_metrics_compute (fer_metrics *m);

/* The output functions below need fer_metrics_compute first. */

/* Per-class table with averages and accuracy, then the confusion matrix. */
void fer_metrics_print_text (const fer_metrics *m, FILE *out);

/* Adds members to the object b is building: "accuracy", "n", "labels",
 * "per_class" ({label: {precision, recall, f1, support}}), "macro_avg",
 * "macro_avg_classes" (how many classes it is over), "weighted_avg" and
 * "confusion" (rows = true classes, in label order). */
void fer_metrics_to_json (const fer_metrics *m, JsonBuilder *b);

/* Appends the same tables as GitHub-flavoured Markdown. */
void fer_metrics_append_markdown (const fer_metrics *m, GString *out);

G_END_DECLS

#endif
