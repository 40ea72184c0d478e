/* fer-train's PNG plots, drawn with cairo: the training curves (loss,
 * accuracy and learning rate per epoch) and the confusion matrix. Files are
 * written through a temporary name and a rename. */
#ifndef FER_TOOLS_PLOTS_H
#define FER_TOOLS_PLOTS_H

#include <glib.h>

#include "metrics.h"
#include "report.h"

G_BEGIN_DECLS

/* Three panels side by side: loss (train, val), accuracy (train, val, with
 * the best epoch marked) and learning rate. best_epoch <= 0: none marked. */
gboolean fer_plot_curves (const char *path, const fer_epoch_row *rows, int n,
    int best_epoch, const char *title, GError **error);

/* Heat map coloured by the share of each true class (row-normalised, so
 * small classes are as readable as large ones), with counts and shares in
 * the cells, class names on both axes and a colour scale. Needs
 * fer_metrics_compute first. */
gboolean fer_plot_confusion (
    const char *path, const fer_metrics *m, const char *title, GError **error);

/* Releases the font caches the plots filled (cairo's and, through it,
 * fontconfig's), so that leak checkers see a clean exit. Call once, when no
 * more plots will be drawn. */
void fer_plots_release (void);

G_END_DECLS

#endif
