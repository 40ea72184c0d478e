/* What fer-train reports: after every epoch, metrics.csv and curves.png
 * from run.json's history; at the end, the best checkpoint reloaded with
 * fer_model_load and evaluated on the validation set plain and with TTA,
 * written as confusion.png and report.md (report.h) and summed up on
 * stdout. */
#ifndef FER_TOOLS_TRAIN_REPORT_H
#define FER_TOOLS_TRAIN_REPORT_H

#include "train-run.h"

G_BEGIN_DECLS

/* RUNDIR/metrics.csv and, once an epoch is done, RUNDIR/curves.png. */
gboolean train_report_curves (const train_run *r, GError **error);

/* The end of the run; stop_reason says why it ended. */
gboolean train_report_final (
    const train_run *r, const char *stop_reason, GError **error);

G_END_DECLS

#endif
