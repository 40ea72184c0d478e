/* fer-train: trains libfernn's ResNet-18 on an image-folder tree or on
 * fer2013.csv and writes the checkpoints, curves and report of the run.
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
 * Killed at any moment, a run loses at most the epoch in progress: an
 * epoch's checkpoints are first written under staging names
 * (NAME.epoch-N, each through the library's temporary file and rename),
 * then run.json is replaced atomically (the commit), then the staged files
 * are renamed over the old ones. --resume RUNDIR finishes a committed
 * epoch's renames, deletes uncommitted staging files and continues.
 *
 * Reproducibility: for a seed and a thread count a run is bit-for-bit the
 * same, resumed or not. The data order and every random augmentation of
 * epoch e come from the tool's own generator (augment.h) seeded with
 * (seed, e), so resuming needs only the epoch number; the trainer's own
 * state (moments, step count, dropout generator) is in last.state. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <fer/fer.h>

#include "augment.h"
#include "cli.h"
#include "dataset.h"
#include "metrics.h"
#include "plots.h"
#include "progress.h"
#include "report.h"

#ifndef FER_TRAIN_VERSION
#define FER_TRAIN_VERSION "unknown"
#endif

#define RUN_FORMAT "fer-train run 1"
#define MAX_BATCH 4096

/* ---- options --------------------------------------------------------------
 *
 * Options are collected as (name, value) pairs and applied in order, so
 * that a resumed run can replay the pairs saved in run.json and then the
 * new command line over them, and tell which recipe options would change. */

typedef enum
{
  OPT_DATA,      /* where the data is: may move between machines */
  OPT_RECIPE,    /* defines the training: fixed once a run started */
  OPT_CONTROL,   /* how long, how fast, how to evaluate: may change on resume */
  OPT_INVOCATION /* this command only: never saved */
} option_class;

typedef struct
{
  const char *name;
  gboolean takes_value;
  option_class cls;
  const char *arg;
  const char *help;
} option_spec;

static const option_spec option_specs[] = {
  { "data", TRUE, OPT_DATA, "DIR",
    "Training images, DIR/<label>/*.jpg|*.jpeg|*.png (labels = sorted folder names)" },
  { "csv", TRUE, OPT_DATA, "FILE",
    "fer2013.csv instead: Training rows train, PublicTest rows validate" },
  { "val", TRUE, OPT_DATA, "DIR", "Validation images, laid out as --data" },
  { "val-split", TRUE, OPT_RECIPE, "F",
    "Validate on this fraction of each class of the training data (seeded)" },
  { "input-size", TRUE, OPT_RECIPE, "N", "Side of the stored images (default 48)" },
  { "stem", TRUE, OPT_RECIPE, "STEM", "torchvision (7x7/2 + max-pool, default), small (3x3/1) or nopool (7x7/2, no max-pool)" },
  { "channels", TRUE, OPT_RECIPE, "N", "1 (gray, default) or 3 (RGB)" },
  { "head", TRUE, OPT_RECIPE, "HEAD", "fc (default) or mlp (512-256-BN-ReLU-Dropout-K)" },
  { "dropout", TRUE, OPT_RECIPE, "P", "Dropout of the mlp head (default 0.5)" },
  { "mean", TRUE, OPT_RECIPE, "M[,M,M]", "Normalisation mean on the 0..1 scale (default 0.5)" },
  { "std", TRUE, OPT_RECIPE, "S[,S,S]", "Normalisation std on the 0..1 scale (default 0.25)" },
  { "init", TRUE, OPT_RECIPE, "MODEL", "Start from this model's weights and labels" },
  { "optimizer", TRUE, OPT_RECIPE, "NAME", "adam (default), adamw or sgd" },
  { "lr", TRUE, OPT_RECIPE, "LR", "Initial learning rate (default 0.001)" },
  { "weight-decay", TRUE, OPT_RECIPE, "WD", "L2 (adam, sgd) or decoupled (adamw) decay (default 0)" },
  { "momentum", TRUE, OPT_RECIPE, "M", "SGD momentum (default 0.9)" },
  { "nesterov", FALSE, OPT_RECIPE, NULL, "Nesterov momentum (sgd)" },
  { "schedule", TRUE, OPT_RECIPE, "NAME",
    "cosine (over --epochs, default), step (x gamma every step-size epochs) or "
    "plateau (x gamma when validation accuracy stalls)" },
  { "step-size", TRUE, OPT_RECIPE, "N", "Epochs between steps of the step schedule (default 10)" },
  { "gamma", TRUE, OPT_RECIPE, "G", "Factor of the step and plateau schedules (default 0.5)" },
  { "plateau-patience", TRUE, OPT_RECIPE, "N",
    "Epochs without better validation accuracy before plateau lowers the rate (default 3)" },
  { "warmup", TRUE, OPT_RECIPE, "N", "Epochs of linear warm-up before the schedule (default 0)" },
  { "class-weights", FALSE, OPT_RECIPE, NULL,
    "Weight the loss by N/(K*n_c) from the training set's counts (default)" },
  { "no-class-weights", FALSE, OPT_RECIPE, NULL, "Unweighted loss" },
  { "label-smoothing", TRUE, OPT_RECIPE, "E", "Label smoothing, 0 to below 1 (default 0.1)" },
  { "focal-gamma", TRUE, OPT_RECIPE, "G", "Focal loss exponent (default 0: cross-entropy)" },
  { "mixup", TRUE, OPT_RECIPE, "A", "Mixup with lambda ~ Beta(A, A) (default 0: off)" },
  { "cutmix", TRUE, OPT_RECIPE, "A", "CutMix with lambda ~ Beta(A, A) (default 0: off)" },
  { "balanced-sampling", FALSE, OPT_RECIPE, NULL,
    "Draw every class equally often (with replacement)" },
  { "flip", FALSE, OPT_RECIPE, NULL, "Random horizontal flips (default)" },
  { "no-flip", FALSE, OPT_RECIPE, NULL, "No flips" },
  { "rotate", TRUE, OPT_RECIPE, "DEG", "Random rotation up to DEG degrees (default 10)" },
  { "scale", TRUE, OPT_RECIPE, "F", "Random scale in [1-F, 1+F] (default 0.1)" },
  { "translate", TRUE, OPT_RECIPE, "F",
    "Random shift up to F in grid_sample units: F/2 of the side (default 0.1, as the PyTorch peer)" },
  { "crop", TRUE, OPT_RECIPE, "N",
    "Random N x N crops of the input-size image; recorded as fer.crop_size (TTA: ten-crop)" },
  { "jitter", TRUE, OPT_RECIPE, "F", "Brightness and contrast jitter in [1-F, 1+F] (default 0)" },
  { "erase", TRUE, OPT_RECIPE, "P", "Random erasing with probability P (default 0)" },
  { "batch", TRUE, OPT_RECIPE, "B", "Images per step (default 64)" },
  { "seed", TRUE, OPT_RECIPE, "S", "Random seed (default 0)" },
  { "epochs", TRUE, OPT_CONTROL, "N", "Epochs in all (default 30)" },
  { "patience", TRUE, OPT_CONTROL, "N",
    "Stop after N epochs without better validation accuracy (default 10, 0: never)" },
  { "threads", TRUE, OPT_CONTROL, "N", "CPU threads (default 0: the library's choice)" },
  { "backend", TRUE, OPT_CONTROL, "NAME", "cpu, cuda or auto (default)" },
  { "tta", TRUE, OPT_CONTROL, "N", "Views of the final TTA evaluation, 1 to 10 (default 5)" },
  { "out", TRUE, OPT_INVOCATION, "RUNDIR", "Run directory to create (required)" },
  { "resume", TRUE, OPT_INVOCATION, "RUNDIR", "Continue the run in RUNDIR" },
  { "stop-after-epochs", TRUE, OPT_INVOCATION, "N",
    "Stop after N epochs of this invocation (resume later)" },
};

typedef enum { SCHEDULE_COSINE, SCHEDULE_STEP, SCHEDULE_PLATEAU } schedule_kind;

typedef struct
{
  char *data, *csv, *val, *init;
  double val_split;
  int input_size, channels;
  fer_stem stem;
  fer_head head;
  double dropout;
  gboolean dropout_set;
  float mean[3], std[3];
  int n_mean, n_std;
  fer_optimizer optimizer;
  double lr, weight_decay, momentum;
  gboolean momentum_set, nesterov;
  schedule_kind schedule;
  int step_size, plateau_patience, warmup;
  gboolean step_size_set, plateau_patience_set;
  double gamma;
  gboolean class_weights, balanced;
  double label_smoothing, focal_gamma, mixup, cutmix;
  gboolean flip;
  double rotate, scale, translate, jitter, erase;
  int crop;
  int batch;
  guint64 seed;
  int epochs, patience, threads, tta, stop_after;
  fer_backend_type backend;
  char *out, *resume;
} train_options;

typedef struct
{
  char *name;
  char *value;   /* NULL for flags */
} option_value;

static void
option_value_clear (gpointer p)
{
  option_value *o = p;
  g_free (o->name);
  g_free (o->value);
}

static const option_spec *
find_option (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (option_specs); i++)
    if (strcmp (option_specs[i].name, name) == 0)
      return &option_specs[i];
  return NULL;
}

static gboolean
collect_option (const char *option_name, const char *value, gpointer data,
    GError **error)
{
  GArray *given = data;
  option_value o = { g_strdup (option_name + 2), g_strdup (value) };
  g_array_append_val (given, o);
  return TRUE;
}

static void
options_init (train_options *o)
{
  *o = (train_options) {
    .input_size = 48, .channels = 1, .stem = FER_STEM_TORCHVISION,
    .head = FER_HEAD_FC, .dropout = 0.5,
    .mean = { 0.5f, 0.5f, 0.5f }, .std = { 0.25f, 0.25f, 0.25f },
    .n_mean = 1, .n_std = 1,
    .optimizer = FER_OPTIMIZER_ADAM, .lr = 1e-3, .momentum = 0.9,
    .schedule = SCHEDULE_COSINE, .step_size = 10, .gamma = 0.5,
    .plateau_patience = 3, .class_weights = TRUE, .label_smoothing = 0.1,
    .flip = TRUE, .rotate = 10, .scale = 0.1, .translate = 0.1,
    .batch = 64, .epochs = 30, .patience = 10, .tta = 5,
    .backend = FER_BACKEND_AUTO,
  };
}

static void
options_clear (train_options *o)
{
  g_free (o->data);
  g_free (o->csv);
  g_free (o->val);
  g_free (o->init);
  g_free (o->out);
  g_free (o->resume);
}

static gboolean
parse_double (const char *name, const char *value, double lo, double hi,
    gboolean lo_open, double *out, GError **error)
{
  char *end = NULL;
  double v = g_ascii_strtod (value, &end);
  if (end == value || *end != '\0' || !isfinite (v) || v < lo || v > hi
      || (lo_open && v == lo))
    {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          lo_open ? "--%s '%s': expected a number above %g and at most %g"
          : "--%s '%s': expected a number from %g to %g", name, value, lo, hi);
      return FALSE;
    }
  *out = v;
  return TRUE;
}

static gboolean
parse_int (const char *name, const char *value, int lo, int hi, int *out,
    GError **error)
{
  gint64 v;
  if (!g_ascii_string_to_signed (value, 10, lo, hi, &v, NULL))
    {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "--%s '%s': expected an integer from %d to %d", name, value, lo, hi);
      return FALSE;
    }
  *out = (int) v;
  return TRUE;
}

/* "0.5" or "0.485,0.456,0.406": values above lo (lo_open) or from lo. */
static gboolean
parse_floats (const char *name, const char *value, double lo, gboolean lo_open,
    float *out, int *n, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (value, ",", -1);
  int count = (int) g_strv_length (parts);
  if (count != 1 && count != 3)
    {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "--%s '%s': expected one value or three separated by commas", name,
          value);
      return FALSE;
    }
  for (int i = 0; i < count; i++)
    {
      double v;
      if (!parse_double (name, g_strstrip (parts[i]), lo, 1e6, lo_open, &v,
              error))
        return FALSE;
      out[i] = (float) v;
    }
  if (count == 1)
    out[1] = out[2] = out[0];
  *n = count;
  return TRUE;
}

#define CHOICE_ERROR(expected) \
  (g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT, \
      "--%s '%s': expected %s", name, value, expected), FALSE)

/* Applies one option; `value` is NULL for flags. */
static gboolean
apply_option (train_options *o, const char *name, const char *value,
    GError **error)
{
  const option_spec *spec = find_option (name);
  if (spec == NULL)
    {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "unknown option --%s", name);
      return FALSE;
    }
  if (spec->takes_value != (value != NULL))
    {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "--%s %s", name, spec->takes_value ? "needs a value" : "takes no value");
      return FALSE;
    }
#define IS(n) (strcmp (name, n) == 0)
  if (IS ("data"))
    g_free (o->data), o->data = g_strdup (value);
  else if (IS ("csv"))
    g_free (o->csv), o->csv = g_strdup (value);
  else if (IS ("val"))
    g_free (o->val), o->val = g_strdup (value);
  else if (IS ("init"))
    g_free (o->init), o->init = g_strdup (value);
  else if (IS ("out"))
    g_free (o->out), o->out = g_strdup (value);
  else if (IS ("resume"))
    g_free (o->resume), o->resume = g_strdup (value);
  else if (IS ("val-split"))
    {
      if (!parse_double (name, value, 0.0, 1.0, TRUE, &o->val_split, error))
        return FALSE;
      if (o->val_split >= 1.0)
        return CHOICE_ERROR ("a fraction above 0 and below 1");
    }
  else if (IS ("input-size"))
    return parse_int (name, value, 8, 1024, &o->input_size, error);
  else if (IS ("stem"))
    {
      if (!fer_stem_from_name (value, &o->stem))
        return CHOICE_ERROR ("torchvision, small or nopool");
    }
  else if (IS ("channels"))
    {
      if (strcmp (value, "1") != 0 && strcmp (value, "3") != 0)
        return CHOICE_ERROR ("1 or 3");
      o->channels = value[0] - '0';
    }
  else if (IS ("head"))
    {
      if (strcmp (value, "fc") == 0)
        o->head = FER_HEAD_FC;
      else if (strcmp (value, "mlp") == 0)
        o->head = FER_HEAD_MLP;
      else
        return CHOICE_ERROR ("fc or mlp");
    }
  else if (IS ("dropout"))
    {
      o->dropout_set = TRUE;
      if (!parse_double (name, value, 0.0, 1.0, FALSE, &o->dropout, error))
        return FALSE;
      if (o->dropout >= 1.0)
        return CHOICE_ERROR ("a probability from 0 to below 1");
    }
  else if (IS ("mean"))
    return parse_floats (name, value, 0.0, FALSE, o->mean, &o->n_mean, error);
  else if (IS ("std"))
    return parse_floats (name, value, 0.0, TRUE, o->std, &o->n_std, error);
  else if (IS ("optimizer"))
    {
      if (strcmp (value, "adam") == 0)
        o->optimizer = FER_OPTIMIZER_ADAM;
      else if (strcmp (value, "adamw") == 0)
        o->optimizer = FER_OPTIMIZER_ADAMW;
      else if (strcmp (value, "sgd") == 0)
        o->optimizer = FER_OPTIMIZER_SGD;
      else
        return CHOICE_ERROR ("adam, adamw or sgd");
    }
  else if (IS ("lr"))
    return parse_double (name, value, 0.0, 10.0, TRUE, &o->lr, error);
  else if (IS ("weight-decay"))
    return parse_double (name, value, 0.0, 1.0, FALSE, &o->weight_decay, error);
  else if (IS ("momentum"))
    {
      o->momentum_set = TRUE;
      if (!parse_double (name, value, 0.0, 1.0, FALSE, &o->momentum, error))
        return FALSE;
      if (o->momentum >= 1.0)
        return CHOICE_ERROR ("a number from 0 to below 1");
    }
  else if (IS ("nesterov"))
    o->nesterov = TRUE;
  else if (IS ("schedule"))
    {
      if (strcmp (value, "cosine") == 0)
        o->schedule = SCHEDULE_COSINE;
      else if (strcmp (value, "step") == 0)
        o->schedule = SCHEDULE_STEP;
      else if (strcmp (value, "plateau") == 0)
        o->schedule = SCHEDULE_PLATEAU;
      else
        return CHOICE_ERROR ("cosine, step or plateau");
    }
  else if (IS ("step-size"))
    {
      o->step_size_set = TRUE;
      return parse_int (name, value, 1, 100000, &o->step_size, error);
    }
  else if (IS ("gamma"))
    return parse_double (name, value, 0.0, 1.0, TRUE, &o->gamma, error);
  else if (IS ("plateau-patience"))
    {
      o->plateau_patience_set = TRUE;
      return parse_int (name, value, 0, 100000, &o->plateau_patience, error);
    }
  else if (IS ("warmup"))
    return parse_int (name, value, 0, 100000, &o->warmup, error);
  else if (IS ("class-weights"))
    o->class_weights = TRUE;
  else if (IS ("no-class-weights"))
    o->class_weights = FALSE;
  else if (IS ("label-smoothing"))
    {
      if (!parse_double (name, value, 0.0, 1.0, FALSE, &o->label_smoothing,
              error))
        return FALSE;
      if (o->label_smoothing >= 1.0)
        return CHOICE_ERROR ("a number from 0 to below 1");
    }
  else if (IS ("focal-gamma"))
    return parse_double (name, value, 0.0, 10.0, FALSE, &o->focal_gamma, error);
  else if (IS ("mixup"))
    return parse_double (name, value, 0.0, 100.0, FALSE, &o->mixup, error);
  else if (IS ("cutmix"))
    return parse_double (name, value, 0.0, 100.0, FALSE, &o->cutmix, error);
  else if (IS ("balanced-sampling"))
    o->balanced = TRUE;
  else if (IS ("flip"))
    o->flip = TRUE;
  else if (IS ("no-flip"))
    o->flip = FALSE;
  else if (IS ("rotate"))
    return parse_double (name, value, 0.0, 180.0, FALSE, &o->rotate, error);
  else if (IS ("scale"))
    {
      if (!parse_double (name, value, 0.0, 1.0, FALSE, &o->scale, error))
        return FALSE;
      if (o->scale >= 1.0)
        return CHOICE_ERROR ("a number from 0 to below 1");
    }
  else if (IS ("translate"))
    return parse_double (name, value, 0.0, 1.0, FALSE, &o->translate, error);
  else if (IS ("crop"))
    return parse_int (name, value, 0, 1024, &o->crop, error);
  else if (IS ("jitter"))
    {
      if (!parse_double (name, value, 0.0, 1.0, FALSE, &o->jitter, error))
        return FALSE;
    }
  else if (IS ("erase"))
    return parse_double (name, value, 0.0, 1.0, FALSE, &o->erase, error);
  else if (IS ("batch"))
    return parse_int (name, value, 2, MAX_BATCH, &o->batch, error);
  else if (IS ("seed"))
    {
      if (!g_ascii_string_to_unsigned (value, 10, 0, G_MAXUINT64, &o->seed, NULL))
        return CHOICE_ERROR ("an integer from 0 to 2^64-1");
    }
  else if (IS ("epochs"))
    return parse_int (name, value, 1, 100000, &o->epochs, error);
  else if (IS ("patience"))
    return parse_int (name, value, 0, 100000, &o->patience, error);
  else if (IS ("threads"))
    return parse_int (name, value, 0, 1024, &o->threads, error);
  else if (IS ("backend"))
    {
      if (!fer_backend_type_from_string (value, &o->backend))
        return CHOICE_ERROR ("cpu, cuda or auto");
    }
  else if (IS ("tta"))
    return parse_int (name, value, 1, FER_TTA_MAX, &o->tta, error);
  else if (IS ("stop-after-epochs"))
    return parse_int (name, value, 1, 100000, &o->stop_after, error);
#undef IS
  return TRUE;
}

static gboolean
apply_options (train_options *o, const GArray *given, GError **error)
{
  for (guint i = 0; i < given->len; i++)
    {
      const option_value *v = &g_array_index (given, option_value, i);
      if (!apply_option (o, v->name, v->value, error))
        return FALSE;
    }
  return TRUE;
}

/* Checks between options, once all are applied. */
static gboolean
check_options (train_options *o, GError **error)
{
#define FAIL(...) \
  do { g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT, __VA_ARGS__); \
       return FALSE; } while (0)
  if ((o->data == NULL) == (o->csv == NULL))
    FAIL ("give the training data with either --data DIR or --csv FILE");
  if (o->val != NULL && o->val_split > 0)
    FAIL ("--val and --val-split both give a validation set; choose one");
  if (o->data != NULL && o->val == NULL && o->val_split == 0)
    FAIL ("--data needs a validation set: --val DIR or --val-split F");
  if (o->crop == o->input_size)
    o->crop = 0;
  if (o->crop != 0 && (o->crop < 8 || o->crop > o->input_size))
    FAIL ("--crop %d: expected 8 to --input-size (%d)", o->crop, o->input_size);
  if (o->n_mean == 3 && o->channels == 1)
    FAIL ("--mean has three values but --channels is 1");
  if (o->n_std == 3 && o->channels == 1)
    FAIL ("--std has three values but --channels is 1");
  if (o->dropout_set && o->head != FER_HEAD_MLP && o->dropout > 0)
    FAIL ("--dropout applies to the mlp head only (--head mlp)");
  if (o->optimizer != FER_OPTIMIZER_SGD && (o->nesterov || o->momentum_set))
    FAIL ("--momentum and --nesterov apply to --optimizer sgd only");
  if (o->step_size_set && o->schedule != SCHEDULE_STEP)
    FAIL ("--step-size applies to --schedule step only");
  if (o->plateau_patience_set && o->schedule != SCHEDULE_PLATEAU)
    FAIL ("--plateau-patience applies to --schedule plateau only");
  if (o->warmup >= o->epochs)
    FAIL ("--warmup %d: expected fewer warm-up epochs than --epochs (%d)",
        o->warmup, o->epochs);
  return TRUE;
#undef FAIL
}

static const char *
optimizer_name (fer_optimizer o)
{
  return o == FER_OPTIMIZER_SGD ? "sgd" : o == FER_OPTIMIZER_ADAMW ? "adamw"
      : "adam";
}

static const char *
schedule_name (schedule_kind s)
{
  return s == SCHEDULE_STEP ? "step" : s == SCHEDULE_PLATEAU ? "plateau"
      : "cosine";
}

static void
append_floats (GString *s, const char *key, const float *v, int n)
{
  g_string_append_printf (s, " %s=%g", key, v[0]);
  for (int i = 1; i < n; i++)
    g_string_append_printf (s, ",%g", v[i]);
}

/* The options that define the training, canonically ("lr=0.001" however
 * it was typed); with_control adds epochs and patience. */
static char *
recipe_string (const train_options *o, gboolean with_control)
{
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "input-size=%d stem=%s channels=%d head=%s",
      o->input_size, fer_stem_name (o->stem),
      o->channels, o->head == FER_HEAD_MLP ? "mlp" : "fc");
  if (o->head == FER_HEAD_MLP)
    g_string_append_printf (s, " dropout=%g", o->dropout);
  append_floats (s, "mean", o->mean, o->n_mean);
  append_floats (s, "std", o->std, o->n_std);
  if (o->init != NULL)
    g_string_append_printf (s, " init=%s", o->init);
  if (o->val_split > 0)
    g_string_append_printf (s, " val-split=%g", o->val_split);
  g_string_append_printf (s, " optimizer=%s lr=%g weight-decay=%g",
      optimizer_name (o->optimizer), o->lr, o->weight_decay);
  if (o->optimizer == FER_OPTIMIZER_SGD)
    g_string_append_printf (s, " momentum=%g nesterov=%s", o->momentum,
        o->nesterov ? "yes" : "no");
  g_string_append_printf (s, " schedule=%s", schedule_name (o->schedule));
  if (o->schedule == SCHEDULE_STEP)
    g_string_append_printf (s, " step-size=%d gamma=%g", o->step_size, o->gamma);
  if (o->schedule == SCHEDULE_PLATEAU)
    g_string_append_printf (s, " plateau-patience=%d gamma=%g",
        o->plateau_patience, o->gamma);
  if (o->warmup > 0)
    g_string_append_printf (s, " warmup=%d", o->warmup);
  g_string_append_printf (s, " class-weights=%s label-smoothing=%g "
      "focal-gamma=%g mixup=%g cutmix=%g balanced-sampling=%s",
      o->class_weights ? "yes" : "no", o->label_smoothing, o->focal_gamma,
      o->mixup, o->cutmix, o->balanced ? "yes" : "no");
  g_string_append_printf (s, " flip=%s rotate=%g scale=%g translate=%g "
      "crop=%d jitter=%g erase=%g batch=%d seed=%" G_GUINT64_FORMAT,
      o->flip ? "yes" : "no", o->rotate, o->scale, o->translate, o->crop,
      o->jitter, o->erase, o->batch, o->seed);
  if (with_control)
    g_string_append_printf (s, " epochs=%d patience=%d", o->epochs,
        o->patience);
  return g_string_free (s, FALSE);
}

/* ---- messages -------------------------------------------------------------- */

typedef struct
{
  FILE *log;           /* RUNDIR/train.log, NULL until the directory exists */
  GString *pending;    /* what was said before it existed */
  gboolean tty;
  gboolean bar_open;   /* a progress bar is on the current terminal line */
} messages;

static messages msg;

static void say (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

/* A line on stderr and in train.log (with the time). */
static void
say (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (msg.bar_open)
    {
      fputc ('\n', stderr);
      msg.bar_open = FALSE;
    }
  fprintf (stderr, "%s: %s\n", g_get_prgname (), text);
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%F %T");
  if (msg.log != NULL)
    {
      fprintf (msg.log, "%s %s\n", stamp, text);
      fflush (msg.log);
    }
  else
    {
      if (msg.pending == NULL)
        msg.pending = g_string_new (NULL);
      g_string_append_printf (msg.pending, "%s %s\n", stamp, text);
    }
}

static void
dataset_skipped (const char *message, gpointer user_data)
{
  say ("skipped: %s", message);
}

static void
dataset_progress (const char *what, gint64 done, gint64 total,
    gpointer user_data)
{
  gint64 *last_tenth = user_data;
  gint64 tenth = total > 0 ? done * 10 / total : 10;
  if (msg.tty)
    {
      fprintf (stderr, "\r%s: loading %s: %3d%%", g_get_prgname (), what,
          (int) (total > 0 ? done * 100 / total : 100));
      msg.bar_open = TRUE;
      if (done == total)
        {
          fputc ('\n', stderr);
          msg.bar_open = FALSE;
        }
    }
  else if (tenth > *last_tenth || done == total)
    {
      *last_tenth = done == total ? 0 : tenth;
      fprintf (stderr, "%s: loading %s: %d%%\n", g_get_prgname (), what,
          (int) (total > 0 ? done * 100 / total : 100));
    }
}

/* Progress of one epoch (progress.h), with speed, loss and time left. */
typedef struct
{
  int epoch, epochs;
  gint64 start;
  fer_progress count;
} progress;

static char *
format_eta (double seconds)
{
  int s = (int) (seconds + 0.5);
  return s >= 3600 ? g_strdup_printf ("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
      : g_strdup_printf ("%d:%02d", s / 60, s % 60);
}

static void
progress_update (progress *p, int done, double loss)
{
  int total = (int) p->count.total;
  double elapsed = (g_get_monotonic_time () - p->start) / 1e6;
  double rate = elapsed > 0 ? done / elapsed : 0.0;
  g_autofree char *eta = format_eta (rate > 0 ? (total - done) / rate : 0);
  if (p->count.tty)
    {
      g_autofree char *bar = fer_progress_bar (&p->count, done, 30);
      fprintf (stderr, "\repoch %d/%d %s %d/%d %.1f img/s loss %.4f "
          "ETA %s\033[K", p->epoch, p->epochs, bar, done, total, rate, loss,
          eta);
      msg.bar_open = TRUE;
      return;
    }
  int tenth = fer_progress_next_tenth (&p->count, done);
  if (tenth > 0)
    fprintf (stderr, "%s: epoch %d/%d: %d/%d images (%d%%), %.1f img/s, "
        "loss %.4f, ETA %s\n", g_get_prgname (), p->epoch, p->epochs, done,
        total, tenth * 10, rate, loss, eta);
}

/* ---- run state (run.json) ------------------------------------------------- */

typedef struct
{
  GArray *options;       /* of option_value: the run's saved options */
  char *command;         /* the command that started the run */
  char **labels;
  char *train_fingerprint, *val_fingerprint;
  int epochs_done;
  int best_epoch;        /* 0: none yet */
  double best_val_acc;
  double plateau_best;   /* plateau schedule: best accuracy so far */
  int plateau_bad;       /* epochs since it improved */
  double plateau_scale;  /* product of the reductions so far */
  GArray *history;       /* of fer_epoch_row */
} run_state;

static void
run_state_init (run_state *s)
{
  memset (s, 0, sizeof *s);
  s->options = g_array_new (FALSE, FALSE, sizeof (option_value));
  g_array_set_clear_func (s->options, option_value_clear);
  s->history = g_array_new (FALSE, FALSE, sizeof (fer_epoch_row));
  s->plateau_best = -1.0;
  s->plateau_scale = 1.0;
}

static void
run_state_clear (run_state *s)
{
  g_array_unref (s->options);
  g_array_unref (s->history);
  g_free (s->command);
  g_strfreev (s->labels);
  g_free (s->train_fingerprint);
  g_free (s->val_fingerprint);
}

static gboolean
run_state_save (const run_state *s, const char *path, GError **error)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "format");
  json_builder_add_string_value (b, RUN_FORMAT);
  json_builder_set_member_name (b, "program");
  json_builder_add_string_value (b, "fer-train " FER_TRAIN_VERSION);
  json_builder_set_member_name (b, "command");
  json_builder_add_string_value (b, s->command);
  json_builder_set_member_name (b, "options");
  json_builder_begin_array (b);
  for (guint i = 0; i < s->options->len; i++)
    {
      const option_value *o = &g_array_index (s->options, option_value, i);
      json_builder_begin_array (b);
      json_builder_add_string_value (b, o->name);
      if (o->value != NULL)
        json_builder_add_string_value (b, o->value);
      else
        json_builder_add_null_value (b);
      json_builder_end_array (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "labels");
  json_builder_begin_array (b);
  for (int i = 0; s->labels[i] != NULL; i++)
    json_builder_add_string_value (b, s->labels[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "train_fingerprint");
  json_builder_add_string_value (b, s->train_fingerprint);
  json_builder_set_member_name (b, "val_fingerprint");
  json_builder_add_string_value (b, s->val_fingerprint);
  json_builder_set_member_name (b, "epochs_done");
  json_builder_add_int_value (b, s->epochs_done);
  json_builder_set_member_name (b, "best_epoch");
  json_builder_add_int_value (b, s->best_epoch);
  json_builder_set_member_name (b, "best_val_acc");
  json_builder_add_double_value (b, s->best_val_acc);
  json_builder_set_member_name (b, "plateau_best");
  json_builder_add_double_value (b, s->plateau_best);
  json_builder_set_member_name (b, "plateau_bad_epochs");
  json_builder_add_int_value (b, s->plateau_bad);
  json_builder_set_member_name (b, "plateau_scale");
  json_builder_add_double_value (b, s->plateau_scale);
  json_builder_set_member_name (b, "history");
  json_builder_begin_array (b);
  for (guint i = 0; i < s->history->len; i++)
    {
      const fer_epoch_row *r = &g_array_index (s->history, fer_epoch_row, i);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "epoch");
      json_builder_add_int_value (b, r->epoch);
      const char *names[] = { "lr", "train_loss", "train_acc", "val_loss",
        "val_acc", "seconds" };
      const double values[] = { r->lr, r->train_loss, r->train_acc,
        r->val_loss, r->val_acc, r->seconds };
      for (guint k = 0; k < G_N_ELEMENTS (names); k++)
        {
          json_builder_set_member_name (b, names[k]);
          json_builder_add_double_value (b, values[k]);
        }
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);

  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  gsize len;
  g_autofree char *text = json_generator_to_data (gen, &len);
  g_autoptr (GError) e = NULL;
  if (!g_file_set_contents (path, text, (gssize) len, &e))
    {
      g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot write %s: %s", path,
          e->message);
      return FALSE;
    }
  return TRUE;
}

static gboolean
run_state_load (run_state *s, const char *path, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) e = NULL;
  if (!json_parser_load_from_file (parser, path, &e))
    {
      g_set_error (error, FER_ERROR, FER_ERROR_FORMAT, "cannot read %s: %s",
          path, e->message);
      return FALSE;
    }
  JsonNode *root = json_parser_get_root (parser);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root)
      ? json_node_get_object (root) : NULL;
  const char *required[] = { "format", "command", "options", "labels",
    "train_fingerprint", "val_fingerprint", "epochs_done", "best_epoch",
    "best_val_acc", "plateau_best", "plateau_bad_epochs", "plateau_scale",
    "history" };
  for (guint i = 0; o != NULL && i < G_N_ELEMENTS (required); i++)
    if (!json_object_has_member (o, required[i]))
      o = NULL;
  if (o == NULL || g_strcmp0 (json_object_get_string_member (o, "format"),
          RUN_FORMAT) != 0)
    {
      g_set_error (error, FER_ERROR, FER_ERROR_FORMAT, "%s is not a fer-train "
          "run file (\"format\": \"%s\" with the run's options, labels and "
          "progress expected)", path, RUN_FORMAT);
      return FALSE;
    }

  s->command = g_strdup (json_object_get_string_member (o, "command"));
  JsonArray *options = json_object_get_array_member (o, "options");
  for (guint i = 0; options != NULL && i < json_array_get_length (options); i++)
    {
      JsonArray *pair = json_array_get_array_element (options, i);
      if (pair == NULL || json_array_get_length (pair) != 2)
        continue;
      JsonNode *v = json_array_get_element (pair, 1);
      option_value ov = { g_strdup (json_array_get_string_element (pair, 0)),
        JSON_NODE_HOLDS_NULL (v) ? NULL : g_strdup (json_node_get_string (v)) };
      g_array_append_val (s->options, ov);
    }
  JsonArray *labels = json_object_get_array_member (o, "labels");
  guint n_labels = labels ? json_array_get_length (labels) : 0;
  s->labels = g_new0 (char *, n_labels + 1);
  for (guint i = 0; i < n_labels; i++)
    s->labels[i] = g_strdup (json_array_get_string_element (labels, i));
  s->train_fingerprint = g_strdup (json_object_get_string_member (o,
          "train_fingerprint"));
  s->val_fingerprint = g_strdup (json_object_get_string_member (o,
          "val_fingerprint"));
  s->epochs_done = (int) json_object_get_int_member (o, "epochs_done");
  s->best_epoch = (int) json_object_get_int_member (o, "best_epoch");
  s->best_val_acc = json_object_get_double_member (o, "best_val_acc");
  s->plateau_best = json_object_get_double_member (o, "plateau_best");
  s->plateau_bad = (int) json_object_get_int_member (o, "plateau_bad_epochs");
  s->plateau_scale = json_object_get_double_member (o, "plateau_scale");
  JsonArray *history = json_object_get_array_member (o, "history");
  for (guint i = 0; history != NULL && i < json_array_get_length (history); i++)
    {
      JsonObject *r = json_array_get_object_element (history, i);
      if (r == NULL)
        continue;
      fer_epoch_row row = {
        (int) json_object_get_int_member_with_default (r, "epoch", 0),
        json_object_get_double_member_with_default (r, "lr", NAN),
        json_object_get_double_member_with_default (r, "train_loss", NAN),
        json_object_get_double_member_with_default (r, "train_acc", NAN),
        json_object_get_double_member_with_default (r, "val_loss", NAN),
        json_object_get_double_member_with_default (r, "val_acc", NAN),
        json_object_get_double_member_with_default (r, "seconds", NAN),
      };
      g_array_append_val (s->history, row);
    }
  if (n_labels < 2 || s->epochs_done < 0
      || (int) s->history->len != s->epochs_done)
    {
      g_set_error (error, FER_ERROR, FER_ERROR_FORMAT, "%s is inconsistent: "
          "%u labels, %d epochs done, %u history rows", path, n_labels,
          s->epochs_done, s->history->len);
      return FALSE;
    }
  return TRUE;
}

/* ---- the run ---------------------------------------------------------------- */

typedef struct
{
  train_options o;
  char *dir;
  char *command;
  run_state state;
  fer_dataset *train, *val;
  float *class_weights;      /* n_classes, or NULL */
  fer_trainer *trainer;
  fer_aug_config aug;
  int side;                  /* of the network input (the crop when cropping) */
} run;

static char *
run_path (const run *r, const char *name)
{
  return g_build_filename (r->dir, name, NULL);
}

static const char *const checkpoint_names[] = {
  "last.safetensors", "last.state", "best.safetensors"
};

static char *
staged_path (const run *r, const char *name, int epoch)
{
  g_autofree char *staged = g_strdup_printf ("%s.epoch-%d", name, epoch);
  return run_path (r, staged);
}

/* Resume: completes the renames of the committed epoch and removes staging
 * files of an epoch that never committed. */
static gboolean
recover_staged_files (const run *r, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (checkpoint_names); i++)
    {
      g_autofree char *staged = staged_path (r, checkpoint_names[i],
          r->state.epochs_done);
      g_autofree char *final = run_path (r, checkpoint_names[i]);
      if (g_file_test (staged, G_FILE_TEST_EXISTS) && g_rename (staged, final) != 0)
        {
          int e = errno;
          g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot rename %s to %s: "
              "%s", staged, final, g_strerror (e));
          return FALSE;
        }
    }
  GDir *dir = g_dir_open (r->dir, 0, error);
  if (dir == NULL)
    return FALSE;
  const char *name;
  while ((name = g_dir_read_name (dir)) != NULL)
    for (guint i = 0; i < G_N_ELEMENTS (checkpoint_names); i++)
      if (g_str_has_prefix (name, checkpoint_names[i])
          && g_str_has_prefix (name + strlen (checkpoint_names[i]), ".epoch-"))
        {
          g_autofree char *path = run_path (r, name);
          say ("removing %s, written by an epoch that did not finish", path);
          g_unlink (path);
        }
  g_dir_close (dir);
  return TRUE;
}

static char *
fingerprint_hex (const fer_dataset *d)
{
  return g_strdup_printf ("%016" G_GINT64_MODIFIER "x", fer_dataset_fingerprint (d));
}

static char *
join_labels (char *const *labels, const char *sep)
{
  return g_strjoinv (sep, (char **) labels);
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
  if (a.stem != o->stem || a.head != o->head || a.channels != o->channels)
    {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "%s is a ResNet-18 with the %s stem, the %s head and %d input "
          "channel(s); the options ask for %s, %s and %d (set --stem, --head "
          "and --channels to match)", path,
          fer_stem_name (a.stem),
          a.head == FER_HEAD_MLP ? "mlp" : "fc", a.channels,
          fer_stem_name (o->stem),
          o->head == FER_HEAD_MLP ? "mlp" : "fc", o->channels);
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
    g_string_append_printf (s, "%s%s %" G_GINT64_FORMAT, c ? ", " : "",
        d->labels[c], d->counts[c]);
  say ("%s: %s: %d images (%s), %d skipped", role, d->source,
      d->n, s->str, d->n_skipped);
}

/* Loads the training and validation sets. labels: fixed labels (resume,
 * --init) or NULL; origin says where they come from. */
static gboolean
load_data (run *r, char **labels, const char *origin, GError **error)
{
  train_options *o = &r->o;
  gint64 last_tenth = 0;
  fer_dataset_callbacks cb = { dataset_skipped, dataset_progress, &last_tenth };
  const char *const *fixed = (const char *const *) labels;

  if (o->csv != NULL)
    {
      if (!fer_dataset_load_csv (o->csv, fixed, origin, o->input_size,
              o->channels, &cb, &r->train, &r->val, error))
        return FALSE;
    }
  else if ((r->train = fer_dataset_load_folder (o->data, fixed, origin,
              o->input_size, o->channels, &cb, error)) == NULL)
    return FALSE;

  if (o->val != NULL || o->val_split > 0)
    g_clear_pointer (&r->val, fer_dataset_free);
  if (o->val != NULL)
    {
      g_autofree char *train_origin = labels != NULL ? g_strdup (origin)
          : g_strdup_printf ("the training data %s", r->train->source);
      r->val = fer_dataset_load_folder (o->val,
          (const char *const *) r->train->labels, train_origin, o->input_size,
          o->channels, &cb, error);
      if (r->val == NULL)
        return FALSE;
    }
  else if (o->val_split > 0)
    {
      r->val = fer_dataset_split (r->train, o->val_split, o->seed, error);
      if (r->val == NULL)
        return FALSE;
    }
  else if (r->val == NULL)
    {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "%s has no PublicTest rows to validate on; give --val DIR or "
          "--val-split F", o->csv);
      return FALSE;
    }
  describe_dataset ("training data", r->train);
  describe_dataset ("validation data", r->val);
  return TRUE;
}

/* N / (K * n_c) from the training counts, as the seed report; a class
 * without training images gets 0 (it has no samples to weigh). */
static void
compute_class_weights (run *r)
{
  const fer_dataset *d = r->train;
  if (!r->o.class_weights)
    return;
  r->class_weights = g_new (float, d->n_classes);
  g_autoptr (GString) s = g_string_new (NULL);
  for (int c = 0; c < d->n_classes; c++)
    {
      r->class_weights[c] = d->counts[c] > 0
          ? (float) ((double) d->n / ((double) d->n_classes * d->counts[c]))
          : 0.0f;
      if (d->counts[c] == 0)
        say ("class '%s' has no training images: its weight is 0",
            d->labels[c]);
      g_string_append_printf (s, "%s%s %.4f", c ? ", " : "", d->labels[c],
          r->class_weights[c]);
    }
  say ("class weights N/(K*n_c): %s", s->str);
}

static double
schedule_lr (const run *r, int epoch)
{
  const train_options *o = &r->o;
  if (epoch < o->warmup)
    return o->lr * (epoch + 1) / (o->warmup + 1);
  int e = epoch - o->warmup, span = o->epochs - o->warmup;
  switch (o->schedule)
    {
    case SCHEDULE_STEP:
      return o->lr * pow (o->gamma, e / o->step_size);
    case SCHEDULE_PLATEAU:
      return o->lr * r->state.plateau_scale;
    case SCHEDULE_COSINE:
    default:
      /* torch's CosineAnnealingLR(T_max = span, eta_min = 0), per epoch. */
      return o->lr * 0.5 * (1.0 + cos (G_PI * e / span));
    }
}

static const char *const *
checkpoint_metadata (const run *r, int epoch, double val_acc, GPtrArray *kv)
{
  const train_options *o = &r->o;
  g_autofree char *labels = join_labels (r->train->labels, ",");
  g_autoptr (GString) mean = g_string_new (NULL), std = g_string_new (NULL);
  for (int i = 0; i < o->n_mean; i++)
    g_string_append_printf (mean, "%s%g", i ? "," : "", o->mean[i]);
  for (int i = 0; i < o->n_std; i++)
    g_string_append_printf (std, "%s%g", i ? "," : "", o->std[i]);

  const char *pairs[][2] = {
    { "fer.labels", labels },
    { "fer.mean", mean->str },
    { "fer.std", std->str },
    { "fer.trained_by", "fer-train " FER_TRAIN_VERSION },
  };
  for (guint i = 0; i < G_N_ELEMENTS (pairs); i++)
    {
      g_ptr_array_add (kv, g_strdup (pairs[i][0]));
      g_ptr_array_add (kv, g_strdup (pairs[i][1]));
    }
  g_ptr_array_add (kv, g_strdup ("fer.input_size"));
  g_ptr_array_add (kv, g_strdup_printf ("%d", o->input_size));
  if (o->crop > 0)
    {
      g_ptr_array_add (kv, g_strdup ("fer.crop_size"));
      g_ptr_array_add (kv, g_strdup_printf ("%d", o->crop));
    }
  g_ptr_array_add (kv, g_strdup ("fer.dataset"));
  g_ptr_array_add (kv, g_strdup_printf ("train: %s; validation: %s",
          r->train->source, r->val->source));
  g_ptr_array_add (kv, g_strdup ("fer.val_accuracy"));
  g_ptr_array_add (kv, g_strdup_printf ("%.4f", val_acc));
  g_ptr_array_add (kv, g_strdup ("fer.epoch"));
  g_ptr_array_add (kv, g_strdup_printf ("%d", epoch));
  g_ptr_array_add (kv, g_strdup ("fer.recipe"));
  g_ptr_array_add (kv, recipe_string (o, TRUE));
  g_ptr_array_add (kv, NULL);
  return (const char *const *) kv->pdata;
}

static gboolean
create_trainer (run *r, GError **error)
{
  const train_options *o = &r->o;
  fer_arch arch = { .stem = o->stem, .head = o->head, .channels = o->channels,
    .n_classes = r->train->n_classes };
  fer_train_config cfg;
  fer_train_config_init (&cfg, &arch);
  cfg.input_size = r->side;
  cfg.dropout = o->head == FER_HEAD_MLP ? (float) o->dropout : 0.0f;
  cfg.optimizer = o->optimizer;
  cfg.lr = (float) o->lr;
  cfg.weight_decay = (float) o->weight_decay;
  cfg.momentum = o->optimizer == FER_OPTIMIZER_SGD ? (float) o->momentum : 0.0f;
  cfg.nesterov = o->nesterov;
  cfg.label_smoothing = (float) o->label_smoothing;
  cfg.focal_gamma = (float) o->focal_gamma;
  cfg.class_weights = r->class_weights;
  cfg.backend = o->backend;
  cfg.threads = o->threads;
  cfg.seed = o->seed;

  if (r->state.epochs_done == 0)
    {
      r->trainer = fer_trainer_new (&cfg, o->init, error);
      return r->trainer != NULL;
    }
  g_autofree char *last = run_path (r, "last.safetensors");
  g_autofree char *state = run_path (r, "last.state");
  r->trainer = fer_trainer_new (&cfg, last, error);
  return r->trainer != NULL && fer_trainer_load_state (r->trainer, state, error);
}

/* The training criterion on evaluation logits, as torch's
 * cross_entropy(weight, label_smoothing) (+ focal factor): adds the
 * samples' losses to *sum and their target weights to *weight_sum. */
static void
criterion_add (const run *r, const float *logits, const int *y, int n,
    double *sum, double *weight_sum)
{
  int k = r->train->n_classes;
  double eps = r->o.label_smoothing;
  for (int i = 0; i < n; i++)
    {
      const float *z = logits + (size_t) i * k;
      double zmax = z[fer_argmax (z, k)], lse = 0.0;
      for (int c = 0; c < k; c++)
        lse += exp (z[c] - zmax);
      lse = log (lse) + zmax;
      double wy = r->class_weights ? r->class_weights[y[i]] : 1.0;
      double smooth = 0.0;
      for (int c = 0; c < k; c++)
        smooth -= (r->class_weights ? r->class_weights[c] : 1.0) * (z[c] - lse);
      double loss = (1.0 - eps) * wy * (lse - z[y[i]]) + eps * smooth / k;
      if (r->o.focal_gamma > 0)
        loss *= pow (1.0 - exp (z[y[i]] - lse), r->o.focal_gamma);
      *sum += loss;
      *weight_sum += wy;
    }
}

typedef struct
{
  float *x, *mix_tmp, *logits;
  int *y, *y_b, *order;
  int **class_members;      /* balanced sampling: images of each class */
} buffers;

/* The image order of an epoch: a permutation, or with balanced sampling
 * n draws of a uniformly chosen class and one of its images. */
static void
epoch_order (const run *r, const buffers *b, fer_rng *rng)
{
  const fer_dataset *d = r->train;
  if (!r->o.balanced)
    {
      for (int i = 0; i < d->n; i++)
        b->order[i] = i;
      fer_aug_shuffle (rng, b->order, d->n);
      return;
    }
  int present = 0;
  for (int c = 0; c < d->n_classes; c++)
    present += d->counts[c] > 0;
  for (int i = 0; i < d->n; i++)
    {
      int pick = (int) fer_rng_below (rng, (uint32_t) present), c = 0;
      for (;; c++)
        if (d->counts[c] > 0 && pick-- == 0)
          break;
      b->order[i] = b->class_members[c][fer_rng_below (rng,
              (uint32_t) d->counts[c])];
    }
}

static gboolean
train_epoch (run *r, buffers *b, int epoch, fer_epoch_row *row, GError **error)
{
  const fer_dataset *d = r->train;
  int k = d->n_classes, batch = r->o.batch;
  size_t image_floats = (size_t) r->aug.channels * r->side * r->side;
  fer_rng rng;
  fer_rng_seed_stream (&rng, r->o.seed, (uint64_t) epoch + 1);
  epoch_order (r, b, &rng);

  progress bar = { .epoch = epoch + 1, .epochs = r->o.epochs,
    .start = g_get_monotonic_time () };
  fer_progress_init (&bar.count, d->n);
  double loss_sum = 0.0, correct = 0.0;
  int seen = 0;
  for (int start = 0; start < d->n; start += batch)
    {
      int n = MIN (batch, d->n - start);
      if (n < 2)
        break;   /* batch norm needs two samples; torch would fail here */
      for (int i = 0; i < n; i++)
        {
          int idx = b->order[start + i];
          fer_aug_train_image (&r->aug, fer_dataset_image (d, idx),
              b->x + image_floats * i, &rng);
          b->y[i] = d->y[idx];
        }
      float lam = fer_aug_mix_batch (b->x, n, r->aug.channels, r->side, b->y,
          b->y_b, (float) r->o.mixup, (float) r->o.cutmix, b->mix_tmp, &rng);
      gboolean mixed = r->o.mixup > 0 || r->o.cutmix > 0;
      float loss;
      if (!fer_trainer_step (r->trainer, b->x, b->y, mixed ? b->y_b : NULL,
              lam, n, &loss, b->logits, error))
        return FALSE;
      if (!isfinite (loss))
        {
          g_set_error (error, FER_ERROR, FER_ERROR_BACKEND, "the training loss "
              "is %f at epoch %d, images %d-%d; the run diverged (a lower "
              "--lr may help); the last finished epoch is kept in %s",
              loss, epoch + 1, start + 1, start + n, r->dir);
          return FALSE;
        }
      for (int i = 0; i < n; i++)
        {
          int p = fer_argmax (b->logits + (size_t) i * k, k);
          correct += mixed ? lam * (p == b->y[i]) + (1.0 - lam) * (p == b->y_b[i])
              : (p == b->y[i]);
        }
      loss_sum += (double) loss * n;
      seen += n;
      progress_update (&bar, start + n, loss_sum / seen);
    }
  row->train_loss = loss_sum / MAX (seen, 1);
  row->train_acc = correct / MAX (seen, 1);
  if (msg.tty)
    fprintf (stderr, "\repoch %d/%d: validating on %d images\033[K",
        epoch + 1, r->o.epochs, r->val->n);
  return TRUE;
}

static gboolean
validate (run *r, buffers *b, fer_epoch_row *row, GError **error)
{
  const fer_dataset *d = r->val;
  int k = d->n_classes, batch = r->o.batch;
  size_t image_floats = (size_t) r->aug.channels * r->side * r->side;
  double loss_sum = 0.0, weight_sum = 0.0;
  int64_t correct = 0;
  for (int start = 0; start < d->n; start += batch)
    {
      int n = MIN (batch, d->n - start);
      for (int i = 0; i < n; i++)
        {
          fer_aug_eval_image (&r->aug, fer_dataset_image (d, start + i),
              b->x + image_floats * i);
          b->y[i] = d->y[start + i];
        }
      if (!fer_trainer_eval (r->trainer, b->x, n, b->logits, error))
        return FALSE;
      for (int i = 0; i < n; i++)
        correct += fer_argmax (b->logits + (size_t) i * k, k) == b->y[i];
      criterion_add (r, b->logits, b->y, n, &loss_sum, &weight_sum);
    }
  row->val_loss = weight_sum > 0 ? loss_sum / weight_sum : NAN;
  row->val_acc = (double) correct / MAX (d->n, 1);
  return TRUE;
}

/* Stages the epoch's checkpoints, commits run.json, then renames. */
static gboolean
commit_epoch (run *r, int epoch, double val_acc, gboolean improved,
    GError **error)
{
  g_autoptr (GPtrArray) kv = g_ptr_array_new_with_free_func (g_free);
  const char *const *meta = checkpoint_metadata (r, epoch, val_acc, kv);
  g_autofree char *last = staged_path (r, "last.safetensors", epoch);
  g_autofree char *state = staged_path (r, "last.state", epoch);
  g_autofree char *best = staged_path (r, "best.safetensors", epoch);
  if (!fer_trainer_save_model (r->trainer, last, FER_DTYPE_F32, meta, error)
      || !fer_trainer_save_state (r->trainer, state, error)
      || (improved && !fer_trainer_save_model (r->trainer, best, FER_DTYPE_F32,
              meta, error)))
    return FALSE;

  g_autofree char *run_json = run_path (r, "run.json");
  if (!run_state_save (&r->state, run_json, error))
    return FALSE;
  return recover_staged_files (r, error);
}

static gboolean
write_curves (run *r, GError **error)
{
  g_autofree char *csv = run_path (r, "metrics.csv");
  g_autofree char *png = run_path (r, "curves.png");
  g_autofree char *title = g_strdup_printf ("fer-train: %s", r->dir);
  const fer_epoch_row *rows = (const fer_epoch_row *) r->state.history->data;
  int n = (int) r->state.history->len;
  if (!fer_metrics_csv_write (csv, rows, n, error))
    return FALSE;
  return n == 0 || fer_plot_curves (png, rows, n, r->state.best_epoch, title,
      error);
}

static char *
format_duration (double seconds)
{
  int s = (int) (seconds + 0.5);
  if (s >= 3600)
    return g_strdup_printf ("%d h %02d min", s / 3600, s / 60 % 60);
  if (s >= 60)
    return g_strdup_printf ("%d min %02d s", s / 60, s % 60);
  return g_strdup_printf ("%.1f s", seconds);
}

static char *
describe_arch (const train_options *o, int n_classes)
{
  g_autofree char *crop = o->crop ? g_strdup_printf (", random %dx%d crops",
      o->crop, o->crop) : g_strdup ("");
  return g_strdup_printf ("ResNet-18, %s stem, %s head, %d input channel%s, "
      "%d classes, %dx%d input%s",
      fer_stem_name (o->stem),
      o->head == FER_HEAD_MLP ? "mlp" : "fc", o->channels,
      o->channels == 1 ? "" : "s", n_classes, o->input_size, o->input_size,
      crop);
}

/* Evaluates best.safetensors on the validation set with `views` TTA views. */
static gboolean
evaluate_checkpoint (run *r, fer_model *m, int views, fer_metrics *metrics,
    GError **error)
{
  const fer_dataset *d = r->val;
  int k = d->n_classes, batch = r->o.batch;
  fer_image *images = g_new (fer_image, batch);
  float *probs = g_new (float, (size_t) batch * k);
  gboolean ok = TRUE;
  for (int start = 0; start < d->n && ok; start += batch)
    {
      int n = MIN (batch, d->n - start);
      for (int i = 0; i < n; i++)
        images[i] = fer_dataset_fer_image (d, start + i);
      ok = fer_model_classify_images (m, images, n, views, probs, error);
      for (int i = 0; ok && i < n; i++)
        fer_metrics_add (metrics, d->y[start + i],
            fer_argmax (probs + (size_t) i * k, k));
    }
  g_free (images);
  g_free (probs);
  fer_metrics_compute (metrics);
  return ok;
}

static gboolean
final_report (run *r, const char *stop_reason, GError **error)
{
  g_autofree char *best_path = run_path (r, "best.safetensors");
  fer_model_options mo;
  fer_model_options_init (&mo);
  mo.backend = r->o.backend;
  mo.threads = r->o.threads;
  fer_model *m = fer_model_load (best_path, &mo, error);
  if (m == NULL)
    return FALSE;

  const char *const *labels = (const char *const *) r->val->labels;
  int k = r->val->n_classes;
  fer_metrics *plain = fer_metrics_new (k, labels);
  fer_metrics *with_tta = r->o.tta > 1 ? fer_metrics_new (k, labels) : NULL;
  say ("evaluating %s on %s: one view%s", best_path, r->val->source,
      with_tta ? " and with TTA" : "");
  gboolean ok = evaluate_checkpoint (r, m, 1, plain, error)
      && (with_tta == NULL || evaluate_checkpoint (r, m, r->o.tta, with_tta,
              error));
  const char *backend = fer_backend_type_to_string (fer_model_backend (m));
  fer_model_free (m);

  if (ok)
    {
      const fer_metrics *headline = with_tta ? with_tta : plain;
      g_autofree char *confusion = run_path (r, "confusion.png");
      g_autofree char *views = with_tta ? g_strdup_printf ("%d-view TTA",
          r->o.tta) : g_strdup ("one view");
      g_autofree char *title = g_strdup_printf ("Confusion matrix: %s, epoch "
          "%d, %s (accuracy %.2f%%)", r->dir, r->state.best_epoch, views,
          100.0 * headline->accuracy);
      g_autofree char *arch = describe_arch (&r->o, k);
      g_autofree char *recipe = recipe_string (&r->o, TRUE);
      double seconds = 0.0;
      for (guint i = 0; i < r->state.history->len; i++)
        seconds += g_array_index (r->state.history, fer_epoch_row, i).seconds;
      const fer_epoch_row *rows = (const fer_epoch_row *) r->state.history->data;
      int n_rows = (int) r->state.history->len;
      g_autofree char *report_title = g_strdup_printf ("Training report: %s",
          r->dir);
      g_autofree char *train_data = g_strdup_printf ("`%s`: %"
          G_GINT64_FORMAT " images, %d skipped", r->train->source,
          (gint64) r->train->n, r->train->n_skipped);
      g_autofree char *val_data = g_strdup_printf ("`%s`: %" G_GINT64_FORMAT
          " images, %d skipped", r->val->source, (gint64) r->val->n,
          r->val->n_skipped);
      g_autofree char *epochs = g_strdup_printf ("%d run, best %d "
          "(`best.safetensors`)", n_rows > 0 ? rows[n_rows - 1].epoch : 0,
          r->state.best_epoch);
      g_autofree char *duration = format_duration (seconds);
      g_autofree char *train_time = g_strdup_printf ("%s (%.0f s)", duration,
          seconds);
      g_autofree char *evaluation = g_strdup_printf ("backend %s, best "
          "checkpoint reloaded with fer_model_load", backend);
      const char *facts[] = {
        "model", arch, "training data", train_data, "validation data",
        val_data, "epochs", epochs, "stopped", stop_reason,
        "training time", train_time, "evaluation", evaluation, NULL
      };
      fer_report_training training = {
        .plain = plain, .with_tta = with_tta, .tta = r->o.tta,
        .rows = rows, .n_rows = n_rows, .best_epoch = r->state.best_epoch,
        .recipe = recipe, .curves_png = "curves.png",
        .confusion_png = "confusion.png",
      };
      fer_report report = {
        .title = report_title, .facts = facts, .command = r->state.command,
        .metrics = headline, .training = &training,
      };
      g_autofree char *report_path = run_path (r, "report.md");
      ok = fer_plot_confusion (confusion, headline, title, error)
          && fer_report_write (report_path, &report, error);
      if (ok)
        {
          printf ("run: %s\nbest epoch: %d of %u (%s)\n", r->dir,
              r->state.best_epoch, r->state.history->len, stop_reason);
          printf ("validation accuracy: %.4f plain", plain->accuracy);
          if (with_tta)
            printf (", %.4f with %d TTA views", with_tta->accuracy, r->o.tta);
          printf ("\n\n");
          fer_metrics_print_text (headline, stdout);
          printf ("\nreport: %s\n", report_path);
          g_autofree char *tta_text = with_tta ? g_strdup_printf (", %.4f "
              "with %s", with_tta->accuracy, views) : g_strdup ("");
          say ("validation accuracy of best.safetensors (epoch %d): %.4f "
              "plain%s; report %s", r->state.best_epoch, plain->accuracy,
              tta_text, report_path);
        }
    }
  fer_metrics_free (plain);
  fer_metrics_free (with_tta);
  return ok;
}

/* Why the run is over after its committed epochs, or NULL to go on. */
static char *
stop_reason (const run *r)
{
  const run_state *s = &r->state;
  if (s->epochs_done >= r->o.epochs)
    return g_strdup_printf ("completed %d epoch%s", r->o.epochs,
        r->o.epochs == 1 ? "" : "s");
  if (r->o.patience > 0 && s->best_epoch > 0
      && s->epochs_done - s->best_epoch >= r->o.patience)
    return g_strdup_printf ("early stopping at epoch %d: no better validation "
        "accuracy for %d epochs (patience %d)", s->epochs_done,
        s->epochs_done - s->best_epoch, r->o.patience);
  return NULL;
}

static gboolean
train (run *r, GError **error)
{
  const fer_dataset *d = r->train;
  int batch = r->o.batch, k = d->n_classes;
  size_t image_floats = (size_t) r->aug.channels * r->side * r->side;
  buffers b = {
    .x = g_new (float, image_floats * batch),
    .mix_tmp = g_new (float, image_floats * batch),
    .logits = g_new (float, (size_t) batch * k),
    .y = g_new (int, batch), .y_b = g_new (int, batch),
    .order = g_new (int, MAX (d->n, 1)),
    .class_members = g_new0 (int *, k),
  };
  for (int c = 0; c < k; c++)
    {
      b.class_members[c] = g_new (int, MAX (d->counts[c], 1));
      for (int i = 0, m = 0; i < d->n; i++)
        if (d->y[i] == c)
          b.class_members[c][m++] = i;
    }

  gboolean ok = TRUE;
  int ran = 0;
  g_autofree char *reason = NULL;
  while (ok && (reason = stop_reason (r)) == NULL)
    {
      if (r->o.stop_after > 0 && ran == r->o.stop_after)
        {
          say ("stopped after %d epoch%s as asked (--stop-after-epochs); "
              "continue with: %s --resume %s", ran, ran == 1 ? "" : "s",
              g_get_prgname (), r->dir);
          break;
        }
      int epoch = r->state.epochs_done;
      fer_epoch_row row = { .epoch = epoch + 1, .lr = schedule_lr (r, epoch) };
      gint64 start = g_get_monotonic_time ();
      fer_trainer_set_lr (r->trainer, (float) row.lr);
      ok = train_epoch (r, &b, epoch, &row, error)
          && validate (r, &b, &row, error);
      if (!ok)
        break;
      row.seconds = (g_get_monotonic_time () - start) / 1e6;

      run_state *s = &r->state;
      gboolean improved = s->best_epoch == 0 || row.val_acc > s->best_val_acc;
      if (improved)
        {
          s->best_epoch = row.epoch;
          s->best_val_acc = row.val_acc;
        }
      if (r->o.schedule == SCHEDULE_PLATEAU && epoch >= r->o.warmup)
        {
          /* torch's ReduceLROnPlateau(mode="max"), threshold 0. */
          if (row.val_acc > s->plateau_best)
            {
              s->plateau_best = row.val_acc;
              s->plateau_bad = 0;
            }
          else if (++s->plateau_bad > r->o.plateau_patience)
            {
              s->plateau_scale *= r->o.gamma;
              s->plateau_bad = 0;
            }
        }
      s->epochs_done = row.epoch;
      g_array_append_val (s->history, row);
      ok = commit_epoch (r, row.epoch, row.val_acc, improved, error);
      if (!ok)
        break;
      ran++;
      say ("epoch %d/%d: lr %.3g, train loss %.4f acc %.4f, val loss %.4f "
          "acc %.4f, %.1f s%s", row.epoch, r->o.epochs, row.lr, row.train_loss,
          row.train_acc, row.val_loss, row.val_acc, row.seconds,
          improved ? ", new best" : "");
      g_autoptr (GError) plot_error = NULL;
      if (!write_curves (r, &plot_error))
        say ("warning: %s", plot_error->message);
    }

  if (ok && reason != NULL)
    {
      say ("training finished (%s); best epoch %d, validation accuracy %.4f",
          reason, r->state.best_epoch, r->state.best_val_acc);
      ok = write_curves (r, error) && final_report (r, reason, error);
    }

  g_free (b.x);
  g_free (b.mix_tmp);
  g_free (b.logits);
  g_free (b.y);
  g_free (b.y_b);
  g_free (b.order);
  for (int c = 0; c < k; c++)
    g_free (b.class_members[c]);
  g_free (b.class_members);
  return ok;
}

/* ---- main ------------------------------------------------------------------ */

/* Options saved in run.json: everything but this invocation's. */
static void
save_options (GArray *to, const GArray *given)
{
  for (guint i = 0; i < given->len; i++)
    {
      const option_value *v = &g_array_index (given, option_value, i);
      if (find_option (v->name)->cls == OPT_INVOCATION)
        continue;
      option_value copy = { g_strdup (v->name), g_strdup (v->value) };
      g_array_append_val (to, copy);
    }
}

/* On --resume, the options of the command line replace the saved ones;
 * recipe options may only repeat their saved values. */
static gboolean
merge_resume_options (run *r, const GArray *given, GError **error)
{
  train_options saved;
  options_init (&saved);
  gboolean ok = apply_options (&saved, r->state.options, error);
  if (ok)
    {
      options_clear (&r->o);
      options_init (&r->o);
      ok = apply_options (&r->o, r->state.options, error)
          && apply_options (&r->o, given, error);
    }
  if (ok)
    {
      g_autofree char *before = recipe_string (&saved, FALSE);
      g_autofree char *after = recipe_string (&r->o, FALSE);
      if (strcmp (before, after) != 0)
        {
          g_auto (GStrv) a = g_strsplit (before, " ", -1);
          g_auto (GStrv) b = g_strsplit (after, " ", -1);
          g_autoptr (GString) diff = g_string_new (NULL);
          for (int i = 0; b[i] != NULL; i++)
            if (!g_strv_contains ((const char *const *) a, b[i]))
              g_string_append_printf (diff, "%s%s", diff->len ? ", " : "", b[i]);
          for (int i = 0; a[i] != NULL; i++)
            if (!g_strv_contains ((const char *const *) b, a[i]))
              g_string_append_printf (diff, "%s(was %s)", diff->len ? ", " : "",
                  a[i]);
          g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
              "--resume %s: the command line changes the run's recipe (%s); "
              "a resumed run keeps the recipe in %s/run.json and may change "
              "only --epochs, --patience, --threads, --backend, --tta, the "
              "data paths and --stop-after-epochs", r->dir, diff->str, r->dir);
          ok = FALSE;
        }
    }
  if (ok && (saved.threads != r->o.threads || saved.backend != r->o.backend))
    say ("note: the run continues with other --threads or --backend than it "
        "started with; it stays valid but will not repeat an uninterrupted "
        "run bit for bit");
  options_clear (&saved);
  if (ok)
    save_options (r->state.options, given);
  return ok;
}

static int
fail (const GError *error)
{
  say ("%s", error->message);
  return 1;
}

/* Creates the run directory if needed and opens train.log, writing what
 * was said before it existed. */
static gboolean
open_log (run *r, GError **error)
{
  if (g_mkdir_with_parents (r->dir, 0755) != 0)
    {
      int e = errno;
      g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot create run "
          "directory %s: %s", r->dir, g_strerror (e));
      return FALSE;
    }
  g_autofree char *log_path = run_path (r, "train.log");
  msg.log = fopen (log_path, "a");
  if (msg.log == NULL)
    {
      int e = errno;
      g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot open %s: %s",
          log_path, g_strerror (e));
      return FALSE;
    }
  if (msg.pending != NULL)
    {
      fputs (msg.pending->str, msg.log);
      fflush (msg.log);
      g_string_free (msg.pending, TRUE);
      msg.pending = NULL;
    }
  return TRUE;
}

/* Reads a resumed run's state, or checks that a new run may start; fixed
 * labels (resume, --init) go to *labels. Returns an exit status, or -1 to
 * go on. A new run's directory is created only once its data loaded and
 * its trainer started, so a mistyped option leaves nothing behind. */
static int
open_run (run *r, const GArray *given, const char *command, char ***labels,
    char **labels_origin, GError **error)
{
  if (r->o.resume != NULL)
    {
      if (r->o.out != NULL && strcmp (r->o.out, r->o.resume) != 0)
        return fer_cli_usage_error ("--out %s and --resume %s name different run "
            "directories", r->o.out, r->o.resume);
      r->dir = g_strdup (r->o.resume);
      g_autofree char *run_json = run_path (r, "run.json");
      if (!run_state_load (&r->state, run_json, error))
        return fer_cli_usage_error ("--resume %s: %s", r->dir, (*error)->message);
      if (!merge_resume_options (r, given, error) || !check_options (&r->o, error))
        return fer_cli_usage_error ("%s", (*error)->message);
      if (!open_log (r, error))
        return fail (*error);
      say ("%s (fer-train %s)", command, FER_TRAIN_VERSION);
      say ("resuming %s after %d epoch%s", r->dir, r->state.epochs_done,
          r->state.epochs_done == 1 ? "" : "s");
      if (!recover_staged_files (r, error))
        return fail (*error);
      *labels = g_strdupv (r->state.labels);
      *labels_origin = g_strdup_printf ("the resumed run %s", r->dir);
      return -1;
    }

  if (!check_options (&r->o, error))
    return fer_cli_usage_error ("%s", (*error)->message);
  if (r->o.out == NULL)
    return fer_cli_usage_error ("--out RUNDIR is required (or --resume RUNDIR)");
  r->dir = g_strdup (r->o.out);
  g_autofree char *run_json = run_path (r, "run.json");
  if (g_file_test (run_json, G_FILE_TEST_EXISTS))
    return fer_cli_usage_error ("%s already holds a run (%s); continue it with "
        "--resume %s or choose another --out", r->dir, run_json, r->dir);
  r->state.command = g_strdup (command);
  save_options (r->state.options, given);
  say ("%s (fer-train %s)", command, FER_TRAIN_VERSION);
  if (r->o.init != NULL)
    {
      *labels = model_labels (r->o.init, &r->o, error);
      if (*labels == NULL)
        return fail (*error);
      *labels_origin = g_strdup_printf ("model %s (--init)", r->o.init);
    }
  return -1;
}

/* Loads the data and checks it against a resumed run. */
static gboolean
prepare_data (run *r, char **labels, const char *labels_origin, GError **error)
{
  if (!load_data (r, labels, labels_origin, error))
    return FALSE;

  g_autofree char *train_fp = fingerprint_hex (r->train);
  g_autofree char *val_fp = fingerprint_hex (r->val);
  if (r->o.resume != NULL)
    {
      gboolean train_same = strcmp (train_fp, r->state.train_fingerprint) == 0;
      if (!train_same || strcmp (val_fp, r->state.val_fingerprint) != 0)
        say ("warning: the %s data differs from the data this run started "
            "with; the resumed run will not repeat an uninterrupted one",
            train_same ? "validation" : "training");
      return TRUE;
    }
  r->state.labels = g_strdupv (r->train->labels);
  r->state.train_fingerprint = g_strdup (train_fp);
  r->state.val_fingerprint = g_strdup (val_fp);
  return TRUE;
}

static int
run_command (run *r, const GArray *given, const char *command)
{
  g_autoptr (GError) error = NULL;
  options_init (&r->o);
  if (!apply_options (&r->o, given, &error))
    return fer_cli_usage_error ("%s", error->message);

  char **labels = NULL;
  g_autofree char *labels_origin = NULL;
  int status = open_run (r, given, command, &labels, &labels_origin, &error);
  if (status >= 0)
    {
      g_strfreev (labels);
      return status;
    }
  g_autofree char *recipe = recipe_string (&r->o, TRUE);
  say ("recipe: %s", recipe);
  if (r->o.balanced && r->o.class_weights)
    say ("note: --balanced-sampling and class weights both correct the class "
        "imbalance; --no-class-weights leaves it to the sampling");
  gboolean ok = prepare_data (r, labels, labels_origin, &error);
  g_strfreev (labels);
  if (!ok)
    return fail (error);

  compute_class_weights (r);
  r->side = r->o.crop ? r->o.crop : r->o.input_size;
  r->aug = (fer_aug_config) {
    .size = r->o.input_size, .crop = r->side, .channels = r->o.channels,
    .flip = r->o.flip, .rotate_deg = (float) r->o.rotate,
    .scale = (float) r->o.scale, .translate = (float) r->o.translate,
    .jitter = (float) r->o.jitter, .erase = (float) r->o.erase,
  };
  memcpy (r->aug.mean, r->o.mean, sizeof r->aug.mean);
  memcpy (r->aug.std, r->o.std, sizeof r->aug.std);
  if (!create_trainer (r, &error))
    return fail (error);

  /* A new run exists from here: its data loaded and its trainer works. */
  g_autofree char *run_json = run_path (r, "run.json");
  if ((r->o.resume == NULL && !open_log (r, &error))
      || !run_state_save (&r->state, run_json, &error))
    return fail (error);
  g_autofree char *arch = describe_arch (&r->o, r->train->n_classes);
  say ("model: %s; run directory %s", arch, r->dir);
  return train (r, &error) ? 0 : fail (error);
}

int
main (int argc, char **argv)
{
  g_autofree char *command = fer_cli_shell_command (argc, argv);
  g_autoptr (GArray) given = g_array_new (FALSE, FALSE, sizeof (option_value));
  g_array_set_clear_func (given, option_value_clear);

  GOptionEntry entries[G_N_ELEMENTS (option_specs) + 1];
  for (guint i = 0; i < G_N_ELEMENTS (option_specs); i++)
    entries[i] = (GOptionEntry) { option_specs[i].name, 0,
      option_specs[i].takes_value ? 0 : G_OPTION_FLAG_NO_ARG,
      G_OPTION_ARG_CALLBACK, (gpointer) collect_option, option_specs[i].help,
      option_specs[i].arg };
  entries[G_N_ELEMENTS (option_specs)] = (GOptionEntry) { NULL };

  g_autoptr (GOptionContext) ctx = g_option_context_new ("- train the "
      "ResNet-18 expression classifier");
  GOptionGroup *group = g_option_group_new ("fer-train", "fer-train options",
      "fer-train options", given, NULL);
  g_option_group_add_entries (group, entries);
  g_option_context_set_main_group (ctx, group);
  g_option_context_set_description (ctx,
      "The defaults are the PyTorch peer recipe "
      "(../shared/reference/torch_fer_cpu.py): 1 channel, 48x48, torchvision "
      "stem, Adam 1e-3 with a cosine schedule, batch 64, class-weighted "
      "cross-entropy with label smoothing 0.1, flip + affine (rotation 10, "
      "scale 0.1, translate 0.1), mean 0.5, std 0.25.\n\n"
      "Examples:\n"
      "  fer-train --data fer2013/train --val fer2013/publictest --epochs 10 "
      "--patience 0 --out runs/peer\n"
      "  fer-train --csv fer2013.csv --head mlp --crop 44 --erase 0.5 --out runs/b\n"
      "  fer-train --resume runs/peer\n\n"
      "Exit status: 0 when training finished or stopped as asked, 1 when it "
      "could not go on, 2 on a command-line error.\n");
  if (!fer_cli_parse (ctx, &argc, &argv, FALSE))
    return FER_CLI_USAGE;
  msg.tty = isatty (STDERR_FILENO);

  run r = { 0 };
  run_state_init (&r.state);
  int status = run_command (&r, given, command);

  fer_trainer_free (r.trainer);
  fer_dataset_free (r.train);
  fer_dataset_free (r.val);
  g_free (r.class_weights);
  g_free (r.dir);
  run_state_clear (&r.state);
  options_clear (&r.o);
  if (msg.log != NULL)
    fclose (msg.log);
  if (msg.pending != NULL)
    g_string_free (msg.pending, TRUE);
  fer_plots_release ();
  return status;
}
