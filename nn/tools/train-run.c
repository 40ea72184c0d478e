/* A fer-train run's state and files (contract in train-run.h). */
#include "train-run.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "train-log.h"

#ifndef FER_TRAIN_VERSION
#define FER_TRAIN_VERSION "unknown"
#endif

#define RUN_FORMAT "fer-train run 1"

static void
run_state_init (train_run_state *s)
{
  memset (s, 0, sizeof *s);
  s->options = train_option_values_new ();
  s->history = g_array_new (FALSE, FALSE, sizeof (fer_epoch_row));
  s->plateau_best = -1.0;
  s->plateau_scale = 1.0;
}

static void
run_state_clear (train_run_state *s)
{
  g_array_unref (s->options);
  g_array_unref (s->history);
  g_free (s->command);
  g_strfreev (s->labels);
  g_free (s->train_fingerprint);
  g_free (s->val_fingerprint);
}

static gboolean
run_state_save (const train_run_state *s, const char *path, GError **error)
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
  for (guint i = 0; i < s->options->len; i++) {
    const train_option_value *o =
        &g_array_index (s->options, train_option_value, i);
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
  for (guint i = 0; i < s->history->len; i++) {
    const fer_epoch_row *r = &g_array_index (s->history, fer_epoch_row, i);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "epoch");
    json_builder_add_int_value (b, r->epoch);
    const char *names[] = { "lr", "train_loss", "train_acc", "val_loss",
      "val_acc", "seconds" };
    const double values[] = { r->lr, r->train_loss, r->train_acc, r->val_loss,
      r->val_acc, r->seconds };
    for (guint k = 0; k < G_N_ELEMENTS (names); k++) {
      json_builder_set_member_name (b, names[k]);
      /* JSON has no NaN (json-glib would write "nan.0", which no parser
       * reads back): null, read back as NaN */
      if (isfinite (values[k]))
        json_builder_add_double_value (b, values[k]);
      else
        json_builder_add_null_value (b);
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
  if (!g_file_set_contents (path, text, (gssize) len, &e)) {
    g_autofree char *shown = fer_text_quote (path, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot write %s: %s", shown,
        e->message);
    return FALSE;
  }
  return TRUE;
}

static gboolean
run_state_load (train_run_state *s, const char *path, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) e = NULL;
  if (!json_parser_load_from_file (parser, path, &e)) {
    g_autofree char *shown = fer_text_quote (path, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT, "cannot read %s: %s",
        shown, e->message);
    return FALSE;
  }
  JsonNode *root = json_parser_get_root (parser);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root)
      ? json_node_get_object (root)
      : NULL;
  const char *required[] = { "format", "command", "options", "labels",
    "train_fingerprint", "val_fingerprint", "epochs_done", "best_epoch",
    "best_val_acc", "plateau_best", "plateau_bad_epochs", "plateau_scale",
    "history" };
  for (guint i = 0; o != NULL && i < G_N_ELEMENTS (required); i++)
    if (!json_object_has_member (o, required[i]))
      o = NULL;
  if (o == NULL
      || g_strcmp0 (json_object_get_string_member (o, "format"), RUN_FORMAT)
          != 0) {
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s is not a fer-train "
        "run file (\"format\": \"%s\" with the run's options, labels and "
        "progress expected)",
        path, RUN_FORMAT);
    return FALSE;
  }

  s->command = g_strdup (json_object_get_string_member (o, "command"));
  JsonArray *options = json_object_get_array_member (o, "options");
  for (guint i = 0; options != NULL && i < json_array_get_length (options);
       i++) {
    JsonArray *pair = json_array_get_array_element (options, i);
    if (pair == NULL || json_array_get_length (pair) != 2)
      continue;
    JsonNode *name = json_array_get_element (pair, 0);
    JsonNode *v = json_array_get_element (pair, 1);
    if (!JSON_NODE_HOLDS_VALUE (name)
        || json_node_get_value_type (name) != G_TYPE_STRING
        || !(JSON_NODE_HOLDS_NULL (v)
            || (JSON_NODE_HOLDS_VALUE (v)
                && json_node_get_value_type (v) == G_TYPE_STRING))) {
      g_autofree char *shown = fer_text_quote (path, 0);
      g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
          "%s: option %u is not a [\"name\", \"value\" or null] pair", shown,
          i);
      return FALSE;
    }
    train_option_value ov = { g_strdup (
                                  json_array_get_string_element (pair, 0)),
      JSON_NODE_HOLDS_NULL (v) ? NULL : g_strdup (json_node_get_string (v)) };
    g_array_append_val (s->options, ov);
  }
  JsonArray *labels = json_object_get_array_member (o, "labels");
  guint n_labels = labels ? json_array_get_length (labels) : 0;
  s->labels = g_new0 (char *, n_labels + 1);
  for (guint i = 0; i < n_labels; i++) {
    JsonNode *l = json_array_get_element (labels, i);
    if (!JSON_NODE_HOLDS_VALUE (l)
        || json_node_get_value_type (l) != G_TYPE_STRING) {
      g_autofree char *shown = fer_text_quote (path, 0);
      g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
          "%s: label %u is not a string", shown, i);
      return FALSE;
    }
    s->labels[i] = g_strdup (json_node_get_string (l));
  }
  s->train_fingerprint =
      g_strdup (json_object_get_string_member (o, "train_fingerprint"));
  s->val_fingerprint =
      g_strdup (json_object_get_string_member (o, "val_fingerprint"));
  s->epochs_done = (int) json_object_get_int_member (o, "epochs_done");
  s->best_epoch = (int) json_object_get_int_member (o, "best_epoch");
  s->best_val_acc = json_object_get_double_member (o, "best_val_acc");
  s->plateau_best = json_object_get_double_member (o, "plateau_best");
  s->plateau_bad = (int) json_object_get_int_member (o, "plateau_bad_epochs");
  s->plateau_scale = json_object_get_double_member (o, "plateau_scale");
  JsonArray *history = json_object_get_array_member (o, "history");
  for (guint i = 0; history != NULL && i < json_array_get_length (history);
       i++) {
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
      || (int) s->history->len != s->epochs_done) {
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT,
        "%s is inconsistent: "
        "%u labels, %d epochs done, %u history rows",
        path, n_labels, s->epochs_done, s->history->len);
    return FALSE;
  }
  return TRUE;
}

void
train_run_init (train_run *r)
{
  memset (r, 0, sizeof *r);
  run_state_init (&r->state);
}

void
train_run_clear (train_run *r)
{
  fer_trainer_free (r->trainer);
  fer_dataset_free (r->train);
  fer_dataset_free (r->val);
  g_free (r->class_weights);
  g_free (r->soft);
  g_free (r->dir);
  run_state_clear (&r->state);
  train_options_clear (&r->o);
}

char *
train_run_path (const train_run *r, const char *name)
{
  return g_build_filename (r->dir, name, NULL);
}

gboolean
train_run_save (const train_run *r, GError **error)
{
  g_autofree char *path = train_run_path (r, "run.json");
  return run_state_save (&r->state, path, error);
}

gboolean
train_run_load (train_run *r, GError **error)
{
  g_autofree char *path = train_run_path (r, "run.json");
  return run_state_load (&r->state, path, error);
}

static const char *const checkpoint_names[] = { "last.safetensors",
  "last.state", "best.safetensors" };

static char *
staged_path (const train_run *r, const char *name, int epoch)
{
  g_autofree char *staged = g_strdup_printf ("%s.epoch-%d", name, epoch);
  return train_run_path (r, staged);
}

/* The files of a run directory, each written whole under a temporary name
 * and renamed into place (run.json, metrics.csv, report.md through
 * g_file_set_contents: NAME.XXXXXX; checkpoints: NAME.epoch-N, themselves
 * written as NAME.epoch-N.tmp-XXXXXX; plots: NAME.tmp-PID). */
static const char *const run_files[] = { "last.safetensors", "last.state",
  "best.safetensors", "run.json", "metrics.csv", "curves.png", "confusion.png",
  "report.md" };

/* Why `name` is a leftover of a run that was killed or failed while
 * writing, or NULL when it is not one. */
static const char *
leftover_kind (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (run_files); i++) {
    if (!g_str_has_prefix (name, run_files[i]))
      continue;
    const char *rest = name + strlen (run_files[i]);
    if (g_str_has_prefix (rest, ".epoch-"))
      return "written by an epoch that did not finish";
    if (g_str_has_prefix (rest, ".tmp-"))
      return "a temporary file of an interrupted write";
    /* GLib's NAME.XXXXXX: only for the files written through
     * g_file_set_contents, so that a user's best.safetensors.backup (six
     * letters too) is never taken for one */
    const gboolean glib_written = strcmp (run_files[i], "run.json") == 0
        || strcmp (run_files[i], "metrics.csv") == 0
        || strcmp (run_files[i], "report.md") == 0;
    if (glib_written && rest[0] == '.' && strlen (rest) == 7) {
      gboolean random = TRUE;
      for (int j = 1; j < 7; j++)
        random = random && g_ascii_isalnum (rest[j]);
      if (random)
        return "a temporary file of an interrupted write";
    }
  }
  return NULL;
}

gboolean
train_run_recover (const train_run *r, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (checkpoint_names); i++) {
    g_autofree char *staged =
        staged_path (r, checkpoint_names[i], r->state.epochs_done);
    g_autofree char *final = train_run_path (r, checkpoint_names[i]);
    if (g_file_test (staged, G_FILE_TEST_EXISTS)
        && g_rename (staged, final) != 0) {
      int e = errno;
      g_set_error (error, FER_ERROR, FER_ERROR_IO,
          "cannot rename %s to %s: "
          "%s",
          staged, final, g_strerror (e));
      return FALSE;
    }
  }
  GDir *dir = g_dir_open (r->dir, 0, error);
  if (dir == NULL)
    return FALSE;
  const char *name;
  while ((name = g_dir_read_name (dir)) != NULL) {
    const char *why = leftover_kind (name);
    if (why != NULL) {
      g_autofree char *path = train_run_path (r, name);
      g_autofree char *quoted = fer_text_quote (path, 0);
      train_say ("removing %s, %s", quoted, why);
      g_unlink (path);
    }
  }
  g_dir_close (dir);
  return TRUE;
}

static const char *const *
checkpoint_metadata (
    const train_run *r, int epoch, double val_acc, GPtrArray *kv)
{
  const train_options *o = &r->o;
  g_autofree char *labels = g_strjoinv (",", r->train->labels);
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
  for (guint i = 0; i < G_N_ELEMENTS (pairs); i++) {
    g_ptr_array_add (kv, g_strdup (pairs[i][0]));
    g_ptr_array_add (kv, g_strdup (pairs[i][1]));
  }
  g_ptr_array_add (kv, g_strdup ("fer.input_size"));
  g_ptr_array_add (kv, g_strdup_printf ("%d", o->input_size));
  if (o->crop > 0) {
    g_ptr_array_add (kv, g_strdup ("fer.crop_size"));
    g_ptr_array_add (kv, g_strdup_printf ("%d", o->crop));
  }
  g_ptr_array_add (kv, g_strdup ("fer.dataset"));
  g_ptr_array_add (kv,
      g_strdup_printf (
          "train: %s; validation: %s", r->train->source, r->val->source));
  g_ptr_array_add (kv, g_strdup ("fer.val_accuracy"));
  g_ptr_array_add (kv, g_strdup_printf ("%.4f", val_acc));
  g_ptr_array_add (kv, g_strdup ("fer.epoch"));
  g_ptr_array_add (kv, g_strdup_printf ("%d", epoch));
  g_ptr_array_add (kv, g_strdup ("fer.recipe"));
  g_ptr_array_add (kv, train_options_recipe (o, TRUE));
  g_ptr_array_add (kv, NULL);
  return (const char *const *) kv->pdata;
}

/* Under --backend auto, a GPU that failed to start or the trainer's
 * self-test leaves the run on the CPU: one warning says why. On the GPU,
 * FER_CUDA_MATH=fp16 (half-precision inference convolutions) does not
 * apply to training: one warning says so. */
static gboolean
warn_fallback (const fer_trainer *t)
{
  if (t && fer_trainer_fallback_reason (t))
    fprintf (stderr, "%s: warning: %s\n", g_get_prgname (),
        fer_trainer_fallback_reason (t));
  if (t && fer_trainer_backend (t) == FER_BACKEND_CUDA
      && g_strcmp0 (g_getenv ("FER_CUDA_MATH"), "fp16") == 0)
    fprintf (stderr,
        "%s: warning: FER_CUDA_MATH=fp16 applies to inference only; "
        "training and validation run in the default math (TF32 "
        "convolutions)\n",
        g_get_prgname ());
  return t != NULL;
}

gboolean
train_run_start_trainer (train_run *r, GError **error)
{
  const train_options *o = &r->o;
  fer_arch arch = { .stem = o->stem,
    .head = o->head,
    .channels = o->channels,
    .n_classes = r->train->n_classes };
  fer_train_config *cfg = &r->cfg;
  fer_train_config_init (cfg, &arch);
  cfg->input_size = r->side;
  cfg->dropout = o->head == FER_HEAD_MLP ? (float) o->dropout : 0.0f;
  cfg->optimizer = o->optimizer;
  cfg->lr = (float) o->lr;
  cfg->weight_decay = (float) o->weight_decay;
  cfg->momentum =
      o->optimizer == FER_OPTIMIZER_SGD ? (float) o->momentum : 0.0f;
  cfg->nesterov = o->nesterov;
  cfg->label_smoothing = (float) o->label_smoothing;
  cfg->focal_gamma = (float) o->focal_gamma;
  cfg->class_weights = r->class_weights;
  cfg->backend = o->backend;
  cfg->threads = o->threads;
  cfg->seed = o->seed;
  cfg->ema_decay = (float) o->ema;

  if (r->state.epochs_done == 0) {
    r->trainer = fer_trainer_new (cfg, o->init, error);
    return warn_fallback (r->trainer);
  }
  g_autofree char *last = train_run_path (r, "last.safetensors");
  g_autofree char *state = train_run_path (r, "last.state");
  r->trainer = fer_trainer_new (cfg, last, error);
  return warn_fallback (r->trainer)
      && fer_trainer_load_state (r->trainer, state, error);
}

/* best.safetensors: the weights validated, the average under --ema. */
static gboolean
save_best (
    fer_trainer *t, const char *path, const char *const *meta, GError **error)
{
  gboolean ema = fer_trainer_has_ema (t);
  if (ema && !fer_trainer_swap_ema (t, error))
    return FALSE;
  gboolean ok = fer_trainer_save_model (t, path, FER_DTYPE_F32, meta, error);
  if (ema && !fer_trainer_swap_ema (t, ok ? error : NULL))
    return FALSE;
  return ok;
}

gboolean
train_run_commit_epoch (
    train_run *r, int epoch, double val_acc, gboolean improved, GError **error)
{
  g_autoptr (GPtrArray) kv = g_ptr_array_new_with_free_func (g_free);
  const char *const *meta = checkpoint_metadata (r, epoch, val_acc, kv);
  g_autofree char *last = staged_path (r, "last.safetensors", epoch);
  g_autofree char *state = staged_path (r, "last.state", epoch);
  g_autofree char *best = staged_path (r, "best.safetensors", epoch);
  if (!fer_trainer_save_model (r->trainer, last, FER_DTYPE_F32, meta, error)
      || !fer_trainer_save_state (r->trainer, state, error)
      || (improved && !save_best (r->trainer, best, meta, error)))
    return FALSE;

  return train_run_save (r, error) && train_run_recover (r, error);
}
