/* fer-train's epochs: for each, the learning rate of the schedule, a pass
 * over the training set in the epoch's order with its augmentation, the
 * validation pass (accuracy and the training criterion, fer_train_loss),
 * the best-epoch and plateau bookkeeping, and the commit (train-run.h).
 *
 * The data order and every random augmentation of epoch e come from a
 * generator seeded with (seed, e + 1) (augment.h), so a resumed run needs
 * only the epoch number to continue bit for bit. */
#ifndef FER_TOOLS_TRAIN_LOOP_H
#define FER_TOOLS_TRAIN_LOOP_H

#include "train-run.h"

G_BEGIN_DECLS

/* Runs epochs until the run is over or --stop-after-epochs stops this
 * invocation. *finished receives why the run is over ("completed 30
 * epochs", early stopping), or NULL when it is not. */
gboolean train_loop_run (train_run *r, char **finished, GError **error);

G_END_DECLS

#endif
