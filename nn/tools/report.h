/* The tools' records: fer-train's per-epoch metrics CSV, and the Markdown
 * report that fer-eval --report and fer-train's end of run both write with
 * fer_report_write (the seed report's tables: plain and TTA accuracy,
 * per-class precision/recall/F1/support, macro and weighted averages, the
 * confusion matrix and the most confused class pairs). */
#ifndef FER_TOOLS_REPORT_H
#define FER_TOOLS_REPORT_H

#include <stdint.h>
#include <glib.h>

#include "metrics.h"

G_BEGIN_DECLS

/* One epoch, as in metrics.csv. */
typedef struct
{
  int epoch;         /* 1-based */
  double lr;         /* learning rate of the epoch */
  double train_loss; /* mean training loss (augmented, mixed batches) */
  double train_acc;  /* training-mode accuracy on the same batches */
  double val_loss;   /* the training criterion on the validation set */
  double val_acc;
  double seconds; /* wall time of the epoch, validation included */
} fer_epoch_row;

#define FER_METRICS_CSV_HEADER                                                 \
  "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds"

/* Writes the header and every row to path through a temporary file and a
 * rename, so a reader (or a killed run) never sees half a file. */
gboolean fer_metrics_csv_write (
    const char *path, const fer_epoch_row *rows, int n, GError **error);

/* An image that was left out of an evaluation, and why. */
typedef struct
{
  char *path;
  char *message;
} fer_skipped_file;

/* Clears a fer_skipped_file (a GArray clear function). */
void fer_skipped_file_clear (gpointer p);

/* What only a training run reports. */
typedef struct
{
  const fer_metrics *plain; /* best checkpoint, one view */
  const fer_metrics
      *with_tta; /* best checkpoint, tta views; NULL when tta is 1 */
  int tta;
  const fer_epoch_row *rows; /* every epoch of the run, resumed ones too */
  int n_rows;
  int best_epoch;         /* the epoch of best.safetensors */
  const char *recipe;     /* the options that define the run */
  const char *curves_png; /* file names relative to the report */
  const char *confusion_png;
} fer_report_training;

typedef struct
{
  const char *title;          /* the heading */
  const char *const *facts;   /* name, value, ..., NULL: the table under it */
  const char *command;        /* the command line that produced the results */
  const fer_metrics *metrics; /* the per-class results */
  /* A training run's report: accuracy with and without TTA, the evaluation
   * during training, the most confused classes, curves and recipe. NULL
   * for an evaluation: the command under the table, the skipped files at
   * the end. */
  const fer_report_training *training;
  /* An evaluation with TTA: `metrics` are the tta-view results and `plain`
   * the same images with one view (NULL: no accuracy table). */
  const fer_metrics *plain;
  int tta;
  const GArray *skipped; /* of fer_skipped_file; may be NULL */
} fer_report;

/* Writes the report as Markdown to path (atomically). */
gboolean fer_report_write (
    const char *path, const fer_report *r, GError **error);

/* The `max` most confused (true, predicted) pairs of m, off the diagonal,
 * largest count first (ties: by row, then column); pairs receives
 * 2 * returned ints (true, predicted). Zero counts are left out. */
int fer_metrics_most_confused (const fer_metrics *m, int max, int *pairs);

G_END_DECLS

#endif
