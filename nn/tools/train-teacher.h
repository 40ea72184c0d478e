/* fer-train --teacher: a model's probabilities for every training image,
 * the soft targets of knowledge distillation (fer_trainer_step_distill).
 *
 * The teacher classifies each training image as stored for the run (at
 * --input-size, with --channels), as fer-classify classifies an image file
 * (fer_model_classify_images, --teacher-tta views averaged), once per run:
 * the targets are part of the run's state and are kept in
 * RUNDIR/teacher-targets.bin (written before run.json), so a resumed run
 * uses the same targets without running the teacher again. The file records
 * the training data's fingerprint, the image and class counts and the
 * views; one that is missing or does not match the run (other data,
 * damaged, cut short) is replaced by a fresh computation, with a note that
 * the run repeats an uninterrupted one only if the teacher is still the
 * same model. */
#ifndef FER_TOOLS_TRAIN_TEACHER_H
#define FER_TOOLS_TRAIN_TEACHER_H

#include "train-run.h"

G_BEGIN_DECLS

/* Fills r->soft (r->train->n x n_classes): a resumed run's from
 * RUNDIR/teacher-targets.bin, else by running r->o.teacher (before a new
 * run's directory exists, so that a bad teacher leaves nothing behind).
 * Fails, naming the model, when the teacher cannot be found or loaded or
 * its labels are not the run's (same names, same order). */
gboolean train_teacher_targets (train_run *r, GError **error);

/* Writes RUNDIR/teacher-targets.bin when train_teacher_targets computed the
 * targets (atomically; an error names the file). */
gboolean train_teacher_save (train_run *r, GError **error);

/* The targets' file format, for tests: reads `path` into a new array of
 * n x k floats when its header matches (fingerprint, n, k, views); NULL
 * with an error saying what differs otherwise. */
float *train_teacher_read (const char *path, guint64 fingerprint, int n, int k,
    int views, GError **error);

G_END_DECLS

#endif
