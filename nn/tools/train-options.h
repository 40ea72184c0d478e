/* fer-train's options: the table behind --help, their parsed values, the
 * recipe they define, and how a resumed run merges a new command line.
 *
 * Options are collected as (name, value) pairs in command-line order and
 * applied in that order, so that a resumed run can replay the pairs saved
 * in run.json and then the new command line over them, and tell which
 * recipe options would change. */
#ifndef FER_TOOLS_TRAIN_OPTIONS_H
#define FER_TOOLS_TRAIN_OPTIONS_H

#include <fer/fer.h>

G_BEGIN_DECLS

typedef enum
{
  TRAIN_SCHEDULE_COSINE,
  TRAIN_SCHEDULE_STEP,
  TRAIN_SCHEDULE_PLATEAU,
} train_schedule;

typedef struct
{
  char *data, *csv, *pack, *val, *init;
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
  gboolean lr_set, weight_decay_set, momentum_set, nesterov, nesterov_set;
  double ema;    /* the weights' average's decay; 0: none */
  char *teacher; /* --teacher: a model to distil from, or NULL */
  double teacher_weight;
  int teacher_tta;
  gboolean teacher_weight_set, teacher_tta_set;
  train_schedule schedule;
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
  double time_budget; /* seconds; 0: none */
  fer_backend_type backend;
  char *out, *resume;
} train_options;

/* One option as given: "--lr 0.01" is { "lr", "0.01" }. */
typedef struct
{
  char *name;
  char *value; /* NULL for flags */
} train_option_value;

/* An empty GArray of train_option_value that frees its elements. */
GArray *train_option_values_new (void);

/* The option group of every option (with the help text), appending each
 * option met on the command line to `given`. */
GOptionGroup *train_options_group_new (GArray *given);

/* The defaults (the PyTorch peer recipe). */
void train_options_init (train_options *o);
void train_options_clear (train_options *o);

/* Applies the pairs of `given` in order. */
gboolean train_options_apply (
    train_options *o, const GArray *given, GError **error);

/* Checks between options, once all are applied (a --crop equal to
 * --input-size becomes 0: no cropping). */
gboolean train_options_check (train_options *o, GError **error);

/* Appends to `to` the pairs of `given` that run.json keeps: all but this
 * invocation's (--out, --resume, --stop-after-epochs). */
void train_options_save (GArray *to, const GArray *given);

/* --resume: o becomes the run's saved options with the command line's
 * over them, and `saved` gains the command line's pairs as
 * train_options_save keeps them. Fails, naming them, when they change the
 * recipe; *same_machine is FALSE when they change --threads or --backend
 * (the run stays valid but no longer repeats an uninterrupted one bit for
 * bit). */
gboolean train_options_merge_resume (train_options *o, GArray *saved,
    const GArray *given, const char *dir, gboolean *same_machine,
    GError **error);

/* The options that define the training, canonically ("lr=0.001" however
 * it was typed); with_control adds epochs and patience. */
char *train_options_recipe (const train_options *o, gboolean with_control);

/* "ResNet-18, torchvision stem, fc head, 1 input channel, 7 classes, ..." */
char *train_options_describe_arch (const train_options *o, int n_classes);

/* The option value naming a head ("fc", "mlp"); fer_stem_name names stems. */
const char *train_head_name (fer_head head);

G_END_DECLS

#endif
