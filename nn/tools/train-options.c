/* fer-train's options (contract in train-options.h). */
#include "train-options.h"

#include <math.h>
#include <string.h>

#define MAX_BATCH 4096

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
      "Training images, DIR/<label>/*.jpg|*.jpeg|*.png (labels = sorted folder "
      "names)" },
  { "csv", TRUE, OPT_DATA, "FILE",
      "fer2013.csv instead: Training rows train, PublicTest rows validate" },
  { "pack", TRUE, OPT_DATA, "FILE",
      "A packed dataset (fer-pack) instead: set train trains, set "
      "publictest validates" },
  { "val", TRUE, OPT_DATA, "DIR", "Validation images, laid out as --data" },
  { "val-split", TRUE, OPT_RECIPE, "F",
      "Validate on this fraction of each class of the training data (seeded)" },
  { "input-size", TRUE, OPT_RECIPE, "N",
      "Side of the stored images (default 48)" },
  { "stem", TRUE, OPT_RECIPE, "STEM",
      "torchvision (7x7/2 + max-pool, default), small (3x3/1) or nopool "
      "(7x7/2, no max-pool)" },
  { "channels", TRUE, OPT_RECIPE, "N", "1 (gray, default) or 3 (RGB)" },
  { "head", TRUE, OPT_RECIPE, "HEAD",
      "fc (default) or mlp (512-256-BN-ReLU-Dropout-K)" },
  { "dropout", TRUE, OPT_RECIPE, "P", "Dropout of the mlp head (default 0.5)" },
  { "mean", TRUE, OPT_RECIPE, "M[,M,M]",
      "Normalisation mean on the 0..1 scale (default 0.5)" },
  { "std", TRUE, OPT_RECIPE, "S[,S,S]",
      "Normalisation std on the 0..1 scale (default 0.25)" },
  { "init", TRUE, OPT_RECIPE, "MODEL",
      "Start from this model's weights and labels" },
  { "optimizer", TRUE, OPT_RECIPE, "NAME",
      "adam (default), adamw or sgd (defaults: Nesterov momentum 0.9, lr 0.1 "
      "x batch / 256, weight decay 5e-4)" },
  { "lr", TRUE, OPT_RECIPE, "LR",
      "Initial learning rate (default 0.001; sgd: 0.1 x batch / 256)" },
  { "weight-decay", TRUE, OPT_RECIPE, "WD",
      "L2 (adam, sgd) or decoupled (adamw) decay (default 0; sgd: 5e-4)" },
  { "momentum", TRUE, OPT_RECIPE, "M", "SGD momentum (default 0.9)" },
  { "nesterov", FALSE, OPT_RECIPE, NULL, "Nesterov momentum (sgd, default)" },
  { "no-nesterov", FALSE, OPT_RECIPE, NULL, "Plain momentum (sgd)" },
  { "ema", TRUE, OPT_RECIPE, "DECAY",
      "Keep an exponential moving average of the weights (e.g. 0.999; "
      "default 0: off): validation, best.safetensors and the report use the "
      "average, last.state keeps it" },
  { "teacher", TRUE, OPT_RECIPE, "MODEL",
      "Distil from this model (a name or a file): its averaged TTA "
      "probabilities for each training image become soft targets, computed "
      "once and kept in RUNDIR/teacher-targets.bin (default: none)" },
  { "teacher-weight", TRUE, OPT_RECIPE, "W",
      "Share of the loss that the teacher's targets give, above 0 and at "
      "most 1; the labels give the rest (default 0.5)" },
  { "teacher-tta", TRUE, OPT_RECIPE, "N",
      "Views the teacher averages per image, 1 to 10 (default 10)" },
  { "schedule", TRUE, OPT_RECIPE, "NAME",
      "cosine (over --epochs, default), step (x gamma every step-size epochs) "
      "or "
      "plateau (x gamma when validation accuracy stalls)" },
  { "step-size", TRUE, OPT_RECIPE, "N",
      "Epochs between steps of the step schedule (default 10)" },
  { "gamma", TRUE, OPT_RECIPE, "G",
      "Factor of the step and plateau schedules (default 0.5)" },
  { "plateau-patience", TRUE, OPT_RECIPE, "N",
      "Epochs without better validation accuracy before plateau lowers the "
      "rate (default 3)" },
  { "warmup", TRUE, OPT_RECIPE, "N",
      "Epochs of linear warm-up before the schedule (default 0)" },
  { "class-weights", FALSE, OPT_RECIPE, NULL,
      "Weight the loss by N/(K*n_c) from the training set's counts (default)" },
  { "no-class-weights", FALSE, OPT_RECIPE, NULL, "Unweighted loss" },
  { "label-smoothing", TRUE, OPT_RECIPE, "E",
      "Label smoothing, 0 to below 1 (default 0.1)" },
  { "focal-gamma", TRUE, OPT_RECIPE, "G",
      "Focal loss exponent (default 0: cross-entropy)" },
  { "mixup", TRUE, OPT_RECIPE, "A",
      "Mixup with lambda ~ Beta(A, A) (default 0: off)" },
  { "cutmix", TRUE, OPT_RECIPE, "A",
      "CutMix with lambda ~ Beta(A, A) (default 0: off)" },
  { "balanced-sampling", FALSE, OPT_RECIPE, NULL,
      "Draw every class equally often (with replacement)" },
  { "flip", FALSE, OPT_RECIPE, NULL, "Random horizontal flips (default)" },
  { "no-flip", FALSE, OPT_RECIPE, NULL, "No flips" },
  { "rotate", TRUE, OPT_RECIPE, "DEG",
      "Random rotation up to DEG degrees (default 10)" },
  { "scale", TRUE, OPT_RECIPE, "F",
      "Random scale in [1-F, 1+F] (default 0.1)" },
  { "translate", TRUE, OPT_RECIPE, "F",
      "Random shift up to F in grid_sample units: F/2 of the side (default "
      "0.1, as the PyTorch peer)" },
  { "crop", TRUE, OPT_RECIPE, "N",
      "Random N x N crops of the input-size image; recorded as fer.crop_size "
      "(TTA: ten-crop)" },
  { "jitter", TRUE, OPT_RECIPE, "F",
      "Brightness and contrast jitter in [1-F, 1+F] (default 0)" },
  { "erase", TRUE, OPT_RECIPE, "P",
      "Random erasing with probability P (default 0)" },
  { "batch", TRUE, OPT_RECIPE, "B", "Images per step (default 64)" },
  { "seed", TRUE, OPT_RECIPE, "S", "Random seed (default 0)" },
  { "epochs", TRUE, OPT_CONTROL, "N", "Epochs in all (default 30)" },
  { "patience", TRUE, OPT_CONTROL, "N",
      "Stop after N epochs without better validation accuracy (default 10, 0: "
      "never)" },
  { "threads", TRUE, OPT_CONTROL, "N",
      "CPU threads (default 0: the library's choice)" },
  { "backend", TRUE, OPT_CONTROL, "NAME", "cpu, cuda or auto (default)" },
  { "time-budget", TRUE, OPT_CONTROL, "SECONDS",
      "Train for about this long: after the first epoch, --epochs becomes "
      "the epochs that fit (default 0: no limit)" },
  { "tta", TRUE, OPT_CONTROL, "N",
      "Views of the final TTA evaluation, 1 to 10 (default 5)" },
  { "out", TRUE, OPT_INVOCATION, "RUNDIR",
      "Run directory to create (required)" },
  { "resume", TRUE, OPT_INVOCATION, "RUNDIR", "Continue the run in RUNDIR" },
  { "stop-after-epochs", TRUE, OPT_INVOCATION, "N",
      "Stop after N epochs of this invocation (resume later)" },
};


static void
option_value_clear (gpointer p)
{
  train_option_value *o = p;
  g_free (o->name);
  g_free (o->value);
}

GArray *
train_option_values_new (void)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (train_option_value));
  g_array_set_clear_func (a, option_value_clear);
  return a;
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
collect_option (
    const char *option_name, const char *value, gpointer data, GError **error)
{
  GArray *given = data;
  /* values come as the bytes given (G_OPTION_FLAG_FILENAME: GLib would
   * otherwise convert them from the locale's charset, which without
   * setlocale is ASCII, refusing "--data donnée"); a run records them as
   * text (run.json, the model's fer.dataset), so they must be UTF-8 */
  if (value != NULL && !g_utf8_validate (value, -1, NULL)) {
    g_autofree char *shown = fer_text_quote (value, 0);
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
        "%s '%s' is not valid UTF-8 (a run records its options as text: "
        "rename it)",
        option_name, shown);
    return FALSE;
  }
  train_option_value o = { g_strdup (option_name + 2), g_strdup (value) };
  g_array_append_val (given, o);
  return TRUE;
}

GOptionGroup *
train_options_group_new (GArray *given)
{
  GOptionEntry entries[G_N_ELEMENTS (option_specs) + 1];
  for (guint i = 0; i < G_N_ELEMENTS (option_specs); i++)
    entries[i] = (GOptionEntry){ option_specs[i].name, 0,
      option_specs[i].takes_value ? G_OPTION_FLAG_FILENAME
                                  : G_OPTION_FLAG_NO_ARG,
      G_OPTION_ARG_CALLBACK, (gpointer) collect_option, option_specs[i].help,
      option_specs[i].arg };
  entries[G_N_ELEMENTS (option_specs)] = (GOptionEntry){ NULL };

  GOptionGroup *group = g_option_group_new (
      "fer-train", "fer-train options", "fer-train options", given, NULL);
  g_option_group_add_entries (group, entries); /* copies them */
  return group;
}

void
train_options_init (train_options *o)
{
  *o = (train_options){
    .input_size = 48,
    .channels = 1,
    .stem = FER_STEM_TORCHVISION,
    .head = FER_HEAD_FC,
    .dropout = 0.5,
    .mean = { 0.5f, 0.5f, 0.5f },
    .std = { 0.25f, 0.25f, 0.25f },
    .n_mean = 1,
    .n_std = 1,
    .optimizer = FER_OPTIMIZER_ADAM,
    .lr = 1e-3,
    .momentum = 0.9,
    .schedule = TRAIN_SCHEDULE_COSINE,
    .step_size = 10,
    .gamma = 0.5,
    .plateau_patience = 3,
    .class_weights = TRUE,
    .label_smoothing = 0.1,
    .flip = TRUE,
    .rotate = 10,
    .scale = 0.1,
    .translate = 0.1,
    .batch = 64,
    .epochs = 30,
    .patience = 10,
    .tta = 5,
    .teacher_weight = 0.5,
    .teacher_tta = 10,
    .backend = FER_BACKEND_AUTO,
  };
}

void
train_options_clear (train_options *o)
{
  g_free (o->data);
  g_free (o->csv);
  g_free (o->pack);
  g_free (o->val);
  g_free (o->init);
  g_free (o->teacher);
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
      || (lo_open && v == lo)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        lo_open ? "--%s '%s': expected a number above %g and at most %g"
                : "--%s '%s': expected a number from %g to %g",
        name, value, lo, hi);
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
  if (!g_ascii_string_to_signed (value, 10, lo, hi, &v, NULL)) {
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
  if (count != 1 && count != 3) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "--%s '%s': expected one value or three separated by commas", name,
        value);
    return FALSE;
  }
  for (int i = 0; i < count; i++) {
    double v;
    if (!parse_double (
            name, g_strstrip (parts[i]), lo, 1e6, lo_open, &v, error))
      return FALSE;
    out[i] = (float) v;
  }
  if (count == 1)
    out[1] = out[2] = out[0];
  *n = count;
  return TRUE;
}

#define CHOICE_ERROR(expected)                                                 \
  (g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,                  \
       "--%s '%s': expected %s", name, value, expected),                       \
      FALSE)

/* Applies one option; `value` is NULL for flags. */
static gboolean
apply_option (
    train_options *o, const char *name, const char *value, GError **error)
{
  const option_spec *spec = find_option (name);
  if (spec == NULL) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "unknown option --%s", name);
    return FALSE;
  }
  if (spec->takes_value != (value != NULL)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT, "--%s %s", name,
        spec->takes_value ? "needs a value" : "takes no value");
    return FALSE;
  }
#define IS(n) (strcmp (name, n) == 0)
  if (IS ("data"))
    g_free (o->data), o->data = g_strdup (value);
  else if (IS ("csv"))
    g_free (o->csv), o->csv = g_strdup (value);
  else if (IS ("pack"))
    g_free (o->pack), o->pack = g_strdup (value);
  else if (IS ("val"))
    g_free (o->val), o->val = g_strdup (value);
  else if (IS ("init"))
    g_free (o->init), o->init = g_strdup (value);
  else if (IS ("teacher"))
    g_free (o->teacher), o->teacher = g_strdup (value);
  else if (IS ("teacher-weight")) {
    o->teacher_weight_set = TRUE;
    return parse_double (
        name, value, 0.0, 1.0, TRUE, &o->teacher_weight, error);
  } else if (IS ("teacher-tta")) {
    o->teacher_tta_set = TRUE;
    return parse_int (name, value, 1, FER_TTA_MAX, &o->teacher_tta, error);
  } else if (IS ("out"))
    g_free (o->out), o->out = g_strdup (value);
  else if (IS ("resume"))
    g_free (o->resume), o->resume = g_strdup (value);
  else if (IS ("val-split")) {
    if (!parse_double (name, value, 0.0, 1.0, TRUE, &o->val_split, error))
      return FALSE;
    if (o->val_split >= 1.0)
      return CHOICE_ERROR ("a fraction above 0 and below 1");
  } else if (IS ("input-size"))
    return parse_int (name, value, 8, 1024, &o->input_size, error);
  else if (IS ("stem")) {
    if (!fer_stem_from_name (value, &o->stem))
      return CHOICE_ERROR ("torchvision, small or nopool");
  } else if (IS ("channels")) {
    if (strcmp (value, "1") != 0 && strcmp (value, "3") != 0)
      return CHOICE_ERROR ("1 or 3");
    o->channels = value[0] - '0';
  } else if (IS ("head")) {
    if (strcmp (value, "fc") == 0)
      o->head = FER_HEAD_FC;
    else if (strcmp (value, "mlp") == 0)
      o->head = FER_HEAD_MLP;
    else
      return CHOICE_ERROR ("fc or mlp");
  } else if (IS ("dropout")) {
    o->dropout_set = TRUE;
    if (!parse_double (name, value, 0.0, 1.0, FALSE, &o->dropout, error))
      return FALSE;
    if (o->dropout >= 1.0)
      return CHOICE_ERROR ("a probability from 0 to below 1");
  } else if (IS ("mean"))
    return parse_floats (name, value, 0.0, FALSE, o->mean, &o->n_mean, error);
  else if (IS ("std"))
    return parse_floats (name, value, 0.0, TRUE, o->std, &o->n_std, error);
  else if (IS ("optimizer")) {
    if (strcmp (value, "adam") == 0)
      o->optimizer = FER_OPTIMIZER_ADAM;
    else if (strcmp (value, "adamw") == 0)
      o->optimizer = FER_OPTIMIZER_ADAMW;
    else if (strcmp (value, "sgd") == 0)
      o->optimizer = FER_OPTIMIZER_SGD;
    else
      return CHOICE_ERROR ("adam, adamw or sgd");
  } else if (IS ("lr")) {
    o->lr_set = TRUE;
    return parse_double (name, value, 0.0, 10.0, TRUE, &o->lr, error);
  } else if (IS ("weight-decay")) {
    o->weight_decay_set = TRUE;
    return parse_double (name, value, 0.0, 1.0, FALSE, &o->weight_decay, error);
  } else if (IS ("ema")) {
    if (!parse_double (name, value, 0.0, 1.0, FALSE, &o->ema, error))
      return FALSE;
    if (o->ema >= 1.0)
      return CHOICE_ERROR ("0 (off) or a decay from 0 to below 1");
  } else if (IS ("momentum")) {
    o->momentum_set = TRUE;
    if (!parse_double (name, value, 0.0, 1.0, FALSE, &o->momentum, error))
      return FALSE;
    if (o->momentum >= 1.0)
      return CHOICE_ERROR ("a number from 0 to below 1");
  } else if (IS ("nesterov") || IS ("no-nesterov")) {
    o->nesterov_set = TRUE;
    o->nesterov = IS ("nesterov");
  } else if (IS ("schedule")) {
    if (strcmp (value, "cosine") == 0)
      o->schedule = TRAIN_SCHEDULE_COSINE;
    else if (strcmp (value, "step") == 0)
      o->schedule = TRAIN_SCHEDULE_STEP;
    else if (strcmp (value, "plateau") == 0)
      o->schedule = TRAIN_SCHEDULE_PLATEAU;
    else
      return CHOICE_ERROR ("cosine, step or plateau");
  } else if (IS ("step-size")) {
    o->step_size_set = TRUE;
    return parse_int (name, value, 1, 100000, &o->step_size, error);
  } else if (IS ("gamma"))
    return parse_double (name, value, 0.0, 1.0, TRUE, &o->gamma, error);
  else if (IS ("plateau-patience")) {
    o->plateau_patience_set = TRUE;
    return parse_int (name, value, 0, 100000, &o->plateau_patience, error);
  } else if (IS ("warmup"))
    return parse_int (name, value, 0, 100000, &o->warmup, error);
  else if (IS ("class-weights"))
    o->class_weights = TRUE;
  else if (IS ("no-class-weights"))
    o->class_weights = FALSE;
  else if (IS ("label-smoothing")) {
    if (!parse_double (
            name, value, 0.0, 1.0, FALSE, &o->label_smoothing, error))
      return FALSE;
    if (o->label_smoothing >= 1.0)
      return CHOICE_ERROR ("a number from 0 to below 1");
  } else if (IS ("focal-gamma"))
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
  else if (IS ("scale")) {
    if (!parse_double (name, value, 0.0, 1.0, FALSE, &o->scale, error))
      return FALSE;
    if (o->scale >= 1.0)
      return CHOICE_ERROR ("a number from 0 to below 1");
  } else if (IS ("translate"))
    return parse_double (name, value, 0.0, 1.0, FALSE, &o->translate, error);
  else if (IS ("crop"))
    return parse_int (name, value, 0, 1024, &o->crop, error);
  else if (IS ("jitter")) {
    if (!parse_double (name, value, 0.0, 1.0, FALSE, &o->jitter, error))
      return FALSE;
  } else if (IS ("erase"))
    return parse_double (name, value, 0.0, 1.0, FALSE, &o->erase, error);
  else if (IS ("batch"))
    return parse_int (name, value, 2, MAX_BATCH, &o->batch, error);
  else if (IS ("seed")) {
    if (!g_ascii_string_to_unsigned (value, 10, 0, G_MAXUINT64, &o->seed, NULL))
      return CHOICE_ERROR ("an integer from 0 to 2^64-1");
  } else if (IS ("epochs"))
    return parse_int (name, value, 1, 100000, &o->epochs, error);
  else if (IS ("patience"))
    return parse_int (name, value, 0, 100000, &o->patience, error);
  else if (IS ("threads"))
    return parse_int (name, value, 0, 1024, &o->threads, error);
  else if (IS ("backend")) {
    if (!fer_backend_type_from_string (value, &o->backend))
      return CHOICE_ERROR ("cpu, cuda or auto");
  } else if (IS ("tta"))
    return parse_int (name, value, 1, FER_TTA_MAX, &o->tta, error);
  else if (IS ("stop-after-epochs"))
    return parse_int (name, value, 1, 100000, &o->stop_after, error);
  else if (IS ("time-budget"))
    return parse_double (name, value, 0, 1e7, FALSE, &o->time_budget, error);
#undef IS
  return TRUE;
}

gboolean
train_options_apply (train_options *o, const GArray *given, GError **error)
{
  for (guint i = 0; i < given->len; i++) {
    const train_option_value *v = &g_array_index (given, train_option_value, i);
    if (!apply_option (o, v->name, v->value, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
train_options_check (train_options *o, GError **error)
{
#define FAIL(...)                                                              \
  do {                                                                         \
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT, __VA_ARGS__);   \
    return FALSE;                                                              \
  } while (0)
  if ((o->data != NULL) + (o->csv != NULL) + (o->pack != NULL) != 1)
    FAIL ("give the training data with one of --data DIR, --csv FILE or "
          "--pack FILE");
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
  if (o->teacher == NULL && (o->teacher_weight_set || o->teacher_tta_set))
    FAIL ("--teacher-weight and --teacher-tta apply with --teacher only");
  if (o->optimizer != FER_OPTIMIZER_SGD && (o->nesterov_set || o->momentum_set))
    FAIL ("--momentum and --nesterov apply to --optimizer sgd only");
  /* SGD's defaults, where not given: Nesterov momentum 0.9, the linear
   * scaling rule's lr 0.1 x batch / 256 (Goyal et al. 2017, arXiv
   * 1706.02677) and weight decay 5e-4, the published FER2013 ResNet
   * recipes' (docs/training.md) */
  if (o->optimizer == FER_OPTIMIZER_SGD) {
    if (!o->nesterov_set)
      o->nesterov = o->momentum > 0.0;
    if (!o->lr_set)
      o->lr = 0.1 * o->batch / 256.0;
    if (!o->weight_decay_set)
      o->weight_decay = 5e-4;
  }
  if (o->step_size_set && o->schedule != TRAIN_SCHEDULE_STEP)
    FAIL ("--step-size applies to --schedule step only");
  if (o->plateau_patience_set && o->schedule != TRAIN_SCHEDULE_PLATEAU)
    FAIL ("--plateau-patience applies to --schedule plateau only");
  if (o->warmup >= o->epochs)
    FAIL ("--warmup %d: expected fewer warm-up epochs than --epochs (%d)",
        o->warmup, o->epochs);
  return TRUE;
#undef FAIL
}

const char *
train_head_name (fer_head head)
{
  return head == FER_HEAD_MLP ? "mlp" : "fc";
}

static const char *
optimizer_name (fer_optimizer o)
{
  return o == FER_OPTIMIZER_SGD  ? "sgd"
      : o == FER_OPTIMIZER_ADAMW ? "adamw"
                                 : "adam";
}

static const char *
schedule_name (train_schedule s)
{
  return s == TRAIN_SCHEDULE_STEP   ? "step"
      : s == TRAIN_SCHEDULE_PLATEAU ? "plateau"
                                    : "cosine";
}

static void
append_floats (GString *s, const char *key, const float *v, int n)
{
  g_string_append_printf (s, " %s=%g", key, v[0]);
  for (int i = 1; i < n; i++)
    g_string_append_printf (s, ",%g", v[i]);
}

char *
train_options_recipe (const train_options *o, gboolean with_control)
{
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "input-size=%d stem=%s channels=%d head=%s",
      o->input_size, fer_stem_name (o->stem), o->channels,
      train_head_name (o->head));
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
    g_string_append_printf (
        s, " momentum=%g nesterov=%s", o->momentum, o->nesterov ? "yes" : "no");
  g_string_append_printf (s, " schedule=%s", schedule_name (o->schedule));
  if (o->schedule == TRAIN_SCHEDULE_STEP)
    g_string_append_printf (
        s, " step-size=%d gamma=%g", o->step_size, o->gamma);
  if (o->schedule == TRAIN_SCHEDULE_PLATEAU)
    g_string_append_printf (
        s, " plateau-patience=%d gamma=%g", o->plateau_patience, o->gamma);
  if (o->warmup > 0)
    g_string_append_printf (s, " warmup=%d", o->warmup);
  g_string_append_printf (s,
      " class-weights=%s label-smoothing=%g "
      "focal-gamma=%g mixup=%g cutmix=%g balanced-sampling=%s",
      o->class_weights ? "yes" : "no", o->label_smoothing, o->focal_gamma,
      o->mixup, o->cutmix, o->balanced ? "yes" : "no");
  if (o->ema > 0)
    g_string_append_printf (s, " ema=%g", o->ema);
  if (o->teacher != NULL)
    g_string_append_printf (s, " teacher=%s teacher-weight=%g teacher-tta=%d",
        o->teacher, o->teacher_weight, o->teacher_tta);
  g_string_append_printf (s,
      " flip=%s rotate=%g scale=%g translate=%g "
      "crop=%d jitter=%g erase=%g batch=%d seed=%" G_GUINT64_FORMAT,
      o->flip ? "yes" : "no", o->rotate, o->scale, o->translate, o->crop,
      o->jitter, o->erase, o->batch, o->seed);
  if (with_control)
    g_string_append_printf (
        s, " epochs=%d patience=%d", o->epochs, o->patience);
  return g_string_free (s, FALSE);
}

char *
train_options_describe_arch (const train_options *o, int n_classes)
{
  g_autofree char *crop = o->crop
      ? g_strdup_printf (", random %dx%d crops", o->crop, o->crop)
      : g_strdup ("");
  return g_strdup_printf ("ResNet-18, %s stem, %s head, %d input channel%s, "
                          "%d classes, %dx%d input%s",
      fer_stem_name (o->stem), train_head_name (o->head), o->channels,
      o->channels == 1 ? "" : "s", n_classes, o->input_size, o->input_size,
      crop);
}

void
train_options_save (GArray *to, const GArray *given)
{
  for (guint i = 0; i < given->len; i++) {
    const train_option_value *v = &g_array_index (given, train_option_value, i);
    if (find_option (v->name)->cls == OPT_INVOCATION)
      continue;
    train_option_value copy = { g_strdup (v->name), g_strdup (v->value) };
    g_array_append_val (to, copy);
  }
}

/* The command line's options replace the saved ones; recipe options may
 * only repeat their saved values. */
gboolean
train_options_merge_resume (train_options *o, GArray *saved,
    const GArray *given, const char *dir, gboolean *same_machine,
    GError **error)
{
  train_options before_merge;
  train_options_init (&before_merge);
  gboolean ok = train_options_apply (&before_merge, saved, error);
  if (ok) {
    train_options_clear (o);
    train_options_init (o);
    ok = train_options_apply (o, saved, error)
        && train_options_apply (o, given, error);
  }
  if (ok) {
    g_autofree char *before = train_options_recipe (&before_merge, FALSE);
    g_autofree char *after = train_options_recipe (o, FALSE);
    if (strcmp (before, after) != 0) {
      g_auto (GStrv) a = g_strsplit (before, " ", -1);
      g_auto (GStrv) b = g_strsplit (after, " ", -1);
      g_autoptr (GString) diff = g_string_new (NULL);
      for (int i = 0; b[i] != NULL; i++)
        if (!g_strv_contains ((const char *const *) a, b[i]))
          g_string_append_printf (diff, "%s%s", diff->len ? ", " : "", b[i]);
      for (int i = 0; a[i] != NULL; i++)
        if (!g_strv_contains ((const char *const *) b, a[i]))
          g_string_append_printf (
              diff, "%s(was %s)", diff->len ? ", " : "", a[i]);
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "--resume %s: the command line changes the run's recipe (%s); "
          "a resumed run keeps the recipe in %s/run.json and may change "
          "only --epochs, --patience, --threads, --backend, --tta, the "
          "data paths, --time-budget and --stop-after-epochs",
          dir, diff->str, dir);
      ok = FALSE;
    }
  }
  *same_machine =
      before_merge.threads == o->threads && before_merge.backend == o->backend;
  train_options_clear (&before_merge);
  if (ok)
    train_options_save (saved, given);
  return ok;
}
