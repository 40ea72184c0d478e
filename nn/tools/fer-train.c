/* fer-train: trains libfernn's ResNet-18 on an image-folder tree, on
 * fer2013.csv or on a packed dataset (fer-pack) and writes the checkpoints, curves and report of the run.
 *
 * Run directory (--out RUNDIR):
 *   run.json          the run's options, labels, data fingerprint, progress
 *                     (epochs done, best epoch, plateau state) and the
 *                     per-epoch history: the commit record of each epoch
 *   last.safetensors  the network after the last finished epoch (F32)
 *   last.state        its optimizer state (fer_trainer_save_state)
 *   best.safetensors  the epoch with the best validation accuracy
 *   metrics.csv       one row per epoch, regenerated from run.json
 *   curves.png        loss, accuracy and learning rate per epoch
 *   confusion.png, report.md   at the end: the best checkpoint reloaded
 *                     with fer_model_load and evaluated plain and with TTA
 *   train.log         everything said on stderr, with times
 *
 * Killed at any moment, a run loses at most the epoch in progress (staged
 * checkpoints, then run.json as the commit: train-run.h); --resume RUNDIR
 * continues it.
 *
 * Reproducibility: for a seed and a thread count a run is bit-for-bit the
 * same, resumed or not. The data order and every random augmentation of
 * epoch e come from the tool's own generator (augment.h) seeded with
 * (seed, e), so resuming needs only the epoch number; the trainer's own
 * state (moments, step count, dropout generator) is in last.state.
 *
 * The rooms: train-options.c (the options, the recipe, merging a resumed
 * run's), train-run.c (run.json, the checkpoints, staging and recovery, an
 * epoch's commit), train-loop.c (the epochs), train-report.c (curves and
 * the final report), train-log.c (messages and train.log). This file reads
 * the command line, opens or resumes the run, loads the data and hands over
 * to the loop and the report. */
#include <stdio.h>
#include <string.h>

#include <fer/fer.h>

#include "cli.h"
#include "dataset.h"
#include "packfile.h"
#include "plots.h"
#include "train-log.h"
#include "train-loop.h"
#include "train-options.h"
#include "train-report.h"
#include "train-run.h"
#include "train-teacher.h"

#ifndef FER_TRAIN_VERSION
#define FER_TRAIN_VERSION "unknown"
#endif

static void
dataset_skipped (const char *message, gpointer user_data)
{
  train_say ("skipped: %s", message);
}

static void
dataset_progress (
    const char *what, gint64 done, gint64 total, gpointer user_data)
{
  gint64 *last_tenth = user_data;
  gint64 tenth = total > 0 ? done * 10 / total : 10;
  if (train_log_is_tty ()) {
    train_log_bar ("%s: loading %s: %3d%%", g_get_prgname (), what,
        (int) (total > 0 ? done * 100 / total : 100));
    if (done == total)
      train_log_end_bar ();
  } else if (tenth > *last_tenth || done == total) {
    *last_tenth = done == total ? 0 : tenth;
    fprintf (stderr, "%s: loading %s: %d%%\n", g_get_prgname (), what,
        (int) (total > 0 ? done * 100 / total : 100));
  }
}

static char *
fingerprint_hex (const fer_dataset *d)
{
  return g_strdup_printf (
      "%016" G_GINT64_MODIFIER "x", fer_dataset_fingerprint (d));
}

/* Labels of a model file, or NULL with an error. */
static char **
model_labels (const char *path, const train_options *o, GError **error)
{
  fer_model_options mo;
  fer_model_options_init (&mo);
  mo.backend = FER_BACKEND_CPU;
  mo.threads = 1;
  fer_model *m = fer_model_load (path, &mo, error);
  if (m == NULL)
    return NULL;
  fer_arch a = fer_model_arch (m);
  if (a.stem != o->stem || a.head != o->head || a.channels != o->channels) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s is a ResNet-18 with the %s stem, the %s head and %d input "
        "channel(s); the options ask for %s, %s and %d (set --stem, --head "
        "and --channels to match)",
        path, fer_stem_name (a.stem), train_head_name (a.head), a.channels,
        fer_stem_name (o->stem), train_head_name (o->head), o->channels);
    fer_model_free (m);
    return NULL;
  }
  char **labels = g_new0 (char *, fer_model_n_classes (m) + 1);
  for (int i = 0; i < fer_model_n_classes (m); i++)
    labels[i] = g_strdup (fer_model_label (m, i));
  fer_model_free (m);
  return labels;
}

static void
describe_dataset (const char *role, const fer_dataset *d)
{
  g_autoptr (GString) s = g_string_new (NULL);
  for (int c = 0; c < d->n_classes; c++)
    g_string_append_printf (
        s, "%s%s %" G_GINT64_FORMAT, c ? ", " : "", d->labels[c], d->counts[c]);
  train_say ("%s: %s: %d images (%s), %d skipped", role, d->source, d->n,
      s->str, d->n_skipped);
}

/* The sets "train" and "publictest" of a packed dataset (--pack); their
 * images must have the size and channels the options ask for. */
static gboolean
load_pack (const train_options *o, const char *const *fixed, const char *origin,
    fer_dataset **train, fer_dataset **val, GError **error)
{
  *train = fer_pack_load (o->pack, "train", fixed, origin, error);
  if (*train == NULL)
    return FALSE;
  g_autofree char *train_origin =
      g_strdup_printf ("the training data %s", (*train)->source);
  *val = fer_pack_load (o->pack, "publictest",
      (const char *const *) (*train)->labels, train_origin, error);
  if (*val == NULL)
    return FALSE;
  if ((*train)->size != o->input_size || (*train)->channels != o->channels
      || (*val)->size != o->input_size || (*val)->channels != o->channels) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s holds %dx%d images with %d channel(s); the options ask for "
        "--input-size %d and --channels %d",
        o->pack, (*train)->size, (*train)->size, (*train)->channels,
        o->input_size, o->channels);
    return FALSE;
  }
  return TRUE;
}

/* Loads the training and validation sets. labels: fixed labels (resume,
 * --init) or NULL; origin says where they come from. */
static gboolean
load_data (train_run *r, char **labels, const char *origin, GError **error)
{
  train_options *o = &r->o;
  gint64 last_tenth = 0;
  fer_dataset_callbacks cb = { dataset_skipped, dataset_progress, &last_tenth };
  const char *const *fixed = (const char *const *) labels;

  if (o->csv != NULL) {
    if (!fer_dataset_load_csv (o->csv, fixed, origin, o->input_size,
            o->channels, &cb, &r->train, &r->val, error))
      return FALSE;
  } else if (o->pack != NULL) {
    if (!load_pack (o, fixed, origin, &r->train, &r->val, error))
      return FALSE;
  } else if ((r->train = fer_dataset_load_folder (o->data, fixed, origin,
                  o->input_size, o->channels, &cb, error))
      == NULL)
    return FALSE;

  if (o->val != NULL || o->val_split > 0)
    g_clear_pointer (&r->val, fer_dataset_free);
  if (o->val != NULL) {
    g_autofree char *train_origin = labels != NULL
        ? g_strdup (origin)
        : g_strdup_printf ("the training data %s", r->train->source);
    r->val =
        fer_dataset_load_folder (o->val, (const char *const *) r->train->labels,
            train_origin, o->input_size, o->channels, &cb, error);
    if (r->val == NULL)
      return FALSE;
  } else if (o->val_split > 0) {
    r->val = fer_dataset_split (r->train, o->val_split, o->seed, error);
    if (r->val == NULL)
      return FALSE;
  } else if (r->val == NULL) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s has no PublicTest rows to validate on; give --val DIR or "
        "--val-split F",
        o->csv);
    return FALSE;
  }
  /* no validation image: its loss and accuracy would be NaN, and the
   * run's state (run.json) could not be read back */
  if (r->val->n == 0) {
    g_autofree char *shown = fer_text_quote (r->val->source, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "the validation set (%s) has no images", shown);
    return FALSE;
  }
  describe_dataset ("training data", r->train);
  describe_dataset ("validation data", r->val);
  return TRUE;
}

/* N / (K * n_c) from the training counts, as the seed report; a class
 * without training images gets 0 (it has no samples to weigh). */
static void
compute_class_weights (train_run *r)
{
  const fer_dataset *d = r->train;
  if (!r->o.class_weights)
    return;
  r->class_weights = g_new (float, d->n_classes);
  g_autoptr (GString) s = g_string_new (NULL);
  for (int c = 0; c < d->n_classes; c++) {
    r->class_weights[c] = d->counts[c] > 0
        ? (float) ((double) d->n / ((double) d->n_classes * d->counts[c]))
        : 0.0f;
    if (d->counts[c] == 0)
      train_say (
          "class '%s' has no training images: its weight is 0", d->labels[c]);
    g_string_append_printf (
        s, "%s%s %.4f", c ? ", " : "", d->labels[c], r->class_weights[c]);
  }
  train_say ("class weights N/(K*n_c): %s", s->str);
}

static int
fail (const GError *error)
{
  train_say ("%s", error->message);
  return 1;
}

/* Reads a resumed run's state, or checks that a new run may start; fixed
 * labels (resume, --init) go to *labels. Returns an exit status, or -1 to
 * go on. A new run's directory is created only once its data loaded and
 * its trainer started, so a mistyped option leaves nothing behind. */
static int
open_run (train_run *r, const GArray *given, const char *command,
    char ***labels, char **labels_origin, GError **error)
{
  if (r->o.resume != NULL) {
    if (r->o.out != NULL && strcmp (r->o.out, r->o.resume) != 0)
      return fer_cli_usage_error ("--out %s and --resume %s name different "
                                  "run directories",
          r->o.out, r->o.resume);
    r->dir = g_strdup (r->o.resume);
    if (!train_run_load (r, error))
      return fer_cli_usage_error ("--resume %s: %s", r->dir, (*error)->message);
    gboolean same_machine = TRUE;
    if (!train_options_merge_resume (
            &r->o, r->state.options, given, r->dir, &same_machine, error))
      return fer_cli_usage_error ("%s", (*error)->message);
    if (!same_machine)
      train_say ("note: the run continues with other --threads or --backend "
                 "than it started with; it stays valid but will not repeat an "
                 "uninterrupted run bit for bit");
    if (!train_options_check (&r->o, error))
      return fer_cli_usage_error ("%s", (*error)->message);
    if (!train_log_open (r->dir, error))
      return fail (*error);
    train_say ("%s (fer-train %s)", command, FER_TRAIN_VERSION);
    train_say ("resuming %s after %d epoch%s", r->dir, r->state.epochs_done,
        r->state.epochs_done == 1 ? "" : "s");
    if (!train_run_recover (r, error))
      return fail (*error);
    *labels = g_strdupv (r->state.labels);
    *labels_origin = g_strdup_printf ("the resumed run %s", r->dir);
    return -1;
  }

  if (!train_options_check (&r->o, error))
    return fer_cli_usage_error ("%s", (*error)->message);
  if (r->o.out == NULL)
    return fer_cli_usage_error ("--out RUNDIR is required (or --resume "
                                "RUNDIR)");
  r->dir = g_strdup (r->o.out);
  g_autofree char *run_json = train_run_path (r, "run.json");
  if (g_file_test (run_json, G_FILE_TEST_EXISTS))
    return fer_cli_usage_error ("%s already holds a run (%s); continue it with "
                                "--resume %s or choose another --out",
        r->dir, run_json, r->dir);
  r->state.command = g_strdup (command);
  train_options_save (r->state.options, given);
  train_say ("%s (fer-train %s)", command, FER_TRAIN_VERSION);
  if (r->o.init != NULL) {
    *labels = model_labels (r->o.init, &r->o, error);
    if (*labels == NULL)
      return fail (*error);
    *labels_origin = g_strdup_printf ("model %s (--init)", r->o.init);
  }
  return -1;
}

/* Loads the data and checks it against a resumed run. */
static gboolean
prepare_data (
    train_run *r, char **labels, const char *labels_origin, GError **error)
{
  if (!load_data (r, labels, labels_origin, error))
    return FALSE;

  g_autofree char *train_fp = fingerprint_hex (r->train);
  g_autofree char *val_fp = fingerprint_hex (r->val);
  if (r->o.resume != NULL) {
    gboolean train_same = strcmp (train_fp, r->state.train_fingerprint) == 0;
    if (!train_same || strcmp (val_fp, r->state.val_fingerprint) != 0)
      train_say (
          "warning: the %s data differs from the data this run "
          "started with; the resumed run will not repeat an uninterrupted "
          "one",
          train_same ? "validation" : "training");
    return TRUE;
  }
  r->state.labels = g_strdupv (r->train->labels);
  r->state.train_fingerprint = g_strdup (train_fp);
  r->state.val_fingerprint = g_strdup (val_fp);
  return TRUE;
}

static int
run_command (train_run *r, const GArray *given, const char *command)
{
  g_autoptr (GError) error = NULL;
  train_options_init (&r->o);
  if (!train_options_apply (&r->o, given, &error))
    return fer_cli_usage_error ("%s", error->message);

  char **labels = NULL;
  g_autofree char *labels_origin = NULL;
  int status = open_run (r, given, command, &labels, &labels_origin, &error);
  if (status >= 0) {
    g_strfreev (labels);
    return status;
  }
  g_autofree char *recipe = train_options_recipe (&r->o, TRUE);
  train_say ("recipe: %s", recipe);
  if (r->o.balanced && r->o.class_weights)
    train_say ("note: --balanced-sampling and class weights both correct the "
               "class imbalance; --no-class-weights leaves it to the sampling");
  gboolean ok = prepare_data (r, labels, labels_origin, &error);
  g_strfreev (labels);
  if (!ok)
    return fail (error);

  compute_class_weights (r);
  r->side = r->o.crop ? r->o.crop : r->o.input_size;
  r->aug = (fer_aug_config){
    .size = r->o.input_size,
    .crop = r->side,
    .channels = r->o.channels,
    .flip = r->o.flip,
    .rotate_deg = (float) r->o.rotate,
    .scale = (float) r->o.scale,
    .translate = (float) r->o.translate,
    .jitter = (float) r->o.jitter,
    .erase = (float) r->o.erase,
  };
  memcpy (r->aug.mean, r->o.mean, sizeof r->aug.mean);
  memcpy (r->aug.std, r->o.std, sizeof r->aug.std);
  if (!train_run_start_trainer (r, &error)
      || !train_teacher_targets (r, &error))
    return fail (error);

  /* A new run exists from here: its data loaded, its trainer works and its
   * teacher's targets are there. */
  if ((r->o.resume == NULL && !train_log_open (r->dir, &error))
      || !train_teacher_save (r, &error) || !train_run_save (r, &error))
    return fail (error);
  g_autofree char *arch =
      train_options_describe_arch (&r->o, r->train->n_classes);
  train_say ("model: %s; run directory %s", arch, r->dir);

  g_autofree char *finished = NULL;
  if (!train_loop_run (r, &finished, &error))
    return fail (error);
  if (finished == NULL)
    return train_log_check (&error) ? 0 : fail (error);
  train_say ("training finished (%s); best epoch %d, validation accuracy "
             "%.4f",
      finished, r->state.best_epoch, r->state.best_val_acc);
  return train_report_curves (r, &error)
          && train_report_final (r, finished, &error)
          && train_log_check (&error)
      ? 0
      : fail (error);
}

int
main (int argc, char **argv)
{
  g_autofree char *command = fer_cli_shell_command (argc, argv);
  g_autoptr (GArray) given = train_option_values_new ();
  g_autoptr (GOptionContext) ctx =
      g_option_context_new ("- train the "
                            "ResNet-18 expression classifier");
  g_option_context_set_main_group (ctx, train_options_group_new (given));
  g_option_context_set_description (ctx,
      "The defaults are the PyTorch peer recipe "
      "(../shared/reference/torch_fer_cpu.py): 1 channel, 48x48, torchvision "
      "stem, Adam 1e-3 with a cosine schedule, batch 64, class-weighted "
      "cross-entropy with label smoothing 0.1, flip + affine (rotation 10, "
      "scale 0.1, translate 0.1), mean 0.5, std 0.25.\n\n"
      "Examples:\n"
      "  fer-train --data fer2013/train --val fer2013/publictest --epochs 10 "
      "--patience 0 --out runs/peer\n"
      "  fer-train --csv fer2013.csv --head mlp --crop 44 --erase 0.5 --out "
      "runs/b\n"
      "  fer-train --resume runs/peer\n\n"
      "Exit status: 0 when training finished or stopped as asked, 1 when it "
      "could not go on, 2 on a command-line error.\n");
  if (!fer_cli_parse (ctx, &argc, &argv, FALSE))
    return FER_CLI_USAGE;
  train_log_init ();

  train_run r;
  train_run_init (&r);
  int status = run_command (&r, given, command);
  train_run_clear (&r);
  train_log_close ();
  fer_plots_release ();
  return status;
}
