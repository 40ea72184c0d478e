/* A fer-train run: what it needs in memory (options, data, trainer) and
 * what it keeps in its directory (run.json, the checkpoints).
 *
 * run.json holds the run's options, labels, data fingerprints, progress
 * (epochs done, best epoch, plateau state) and the per-epoch history: it is
 * the commit record of each epoch. Killed at any moment, a run loses at
 * most the epoch in progress: an epoch's checkpoints (last.safetensors,
 * last.state, best.safetensors) are first written under staging names
 * NAME.epoch-N (each through the library's temporary file and rename),
 * then run.json is replaced atomically (the commit), then the staged files
 * are renamed over the old ones. A resumed run finishes a committed
 * epoch's renames and deletes uncommitted staging files. */
#ifndef FER_TOOLS_TRAIN_RUN_H
#define FER_TOOLS_TRAIN_RUN_H

#include <fer/fer.h>

#include "augment.h"
#include "dataset.h"
#include "report.h"
#include "train-options.h"

G_BEGIN_DECLS

/* What run.json records. */
typedef struct
{
  GArray *options; /* of train_option_value: the run's saved options */
  char *command;   /* the command that started the run */
  char **labels;
  char *train_fingerprint, *val_fingerprint;
  int epochs_done;
  int best_epoch; /* 0: none yet */
  double best_val_acc;
  double plateau_best;  /* plateau schedule: best accuracy so far */
  int plateau_bad;      /* epochs since it improved */
  double plateau_scale; /* product of the reductions so far */
  GArray *history;      /* of fer_epoch_row */
} train_run_state;

typedef struct
{
  train_options o;
  char *dir;
  train_run_state state;
  fer_dataset *train, *val;
  float *class_weights; /* n_classes, or NULL */
  fer_train_config cfg; /* the trainer's (its class weights above) */
  fer_trainer *trainer;
  fer_aug_config aug;
  int side;    /* of the network input (the crop when cropping) */
  float *soft; /* --teacher: train->n x n_classes targets, else NULL */
  gboolean soft_unsaved; /* computed, not yet in RUNDIR */
} train_run;

void train_run_init (train_run *r);
void train_run_clear (train_run *r);

/* RUNDIR/name. */
char *train_run_path (const train_run *r, const char *name);

/* Writes r->state to RUNDIR/run.json (atomically). */
gboolean train_run_save (const train_run *r, GError **error);
/* Reads RUNDIR/run.json into r->state. */
gboolean train_run_load (train_run *r, GError **error);

/* Resume: completes the renames of the committed epoch and removes staging
 * files of an epoch that never committed. */
gboolean train_run_recover (const train_run *r, GError **error);

/* Creates the trainer for the run's options and classes: from --init or a
 * fresh initialisation for a new run, from last.safetensors and last.state
 * for a resumed one. */
gboolean train_run_start_trainer (train_run *r, GError **error);

/* Commits the epoch that r->state now ends with: stages its checkpoints
 * (best.safetensors too when it improved), writes run.json, renames. */
gboolean train_run_commit_epoch (
    train_run *r, int epoch, double val_acc, gboolean improved, GError **error);

G_END_DECLS

#endif
