/* fer-eval: accuracy of a model on an image-folder tree.
 *
 * DIR/<label>/<image> with folder names matched to the model's labels. Files
 * are visited in byte order of their names, so two runs (and two machines)
 * see the same sequence; decoding goes into a pool of reused buffers and
 * classification into batches of --batch images (times the TTA views). An
 * unreadable image is reported and skipped, since one bad file should not
 * cost the measurement of thousands; the output counts them. */
#include <stdio.h>

#include <json-glib/json-glib.h>
#include <fer/fer.h>

#include "cli.h"
#include "imagefolder.h"
#include "imageio.h"
#include "metrics.h"
#include "progress.h"
#include "report.h"

/* Far beyond what a GPU batch gains from, and it bounds the decode pool. */
#define MAX_BATCH 4096

typedef struct
{
  char *path;
  int label;
} sample;

static void
sample_clear (gpointer p)
{
  g_free (((sample *) p)->path);
}

static char *
model_labels_list (fer_model *m)
{
  GString *s = g_string_new (NULL);
  for (int c = 0; c < fer_model_n_classes (m); c++)
    g_string_append_printf (s, "%s%s", c ? ", " : "", fer_model_label (m, c));
  return g_string_free (s, FALSE);
}

/* The images of every label folder of `root`, in a deterministic order.
 * Plain files beside the label folders are ignored; a folder whose name is
 * not a label is an error, since silently dropping a class would change the
 * result. */
static GArray *
collect_samples (fer_model *m, const char *root, GError **error)
{
  g_autoptr (GPtrArray) folders = fer_image_folder_labels (root, error);
  if (folders == NULL)
    return NULL;

  GArray *samples = g_array_new (FALSE, FALSE, sizeof (sample));
  g_array_set_clear_func (samples, sample_clear);
  g_autoptr (GString) unknown = g_string_new (NULL);
  int n_folders = 0, n_unknown = 0;
  for (guint i = 0; i < folders->len; i++) {
    const char *name = folders->pdata[i];
    int label = fer_model_label_index (m, name);
    if (label < 0) {
      g_autofree char *shown = fer_text_quote (name, 0);
      g_string_append_printf (unknown, "%s'%s'", n_unknown ? ", " : "", shown);
      n_unknown++;
      continue;
    }
    n_folders++;
    g_autofree char *dir = g_build_filename (root, name, NULL);
    g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
    if (!fer_image_folder_files (dir, paths, error)) {
      g_array_unref (samples);
      return NULL;
    }
    for (guint j = 0; j < paths->len; j++) {
      sample s = { g_strdup (paths->pdata[j]), label };
      g_array_append_val (samples, s);
    }
  }

  if (n_unknown > 0 || n_folders == 0) {
    g_autofree char *labels = model_labels_list (m);
    g_autofree char *shown_root = fer_text_quote (root, 0);
    g_autofree char *shown_model = fer_text_quote (fer_model_path (m), 0);
    if (n_unknown > 0)
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "%s: %s %s %s of model %s; expected folders named after its "
          "labels: %s",
          shown_root, n_unknown == 1 ? "folder" : "folders", unknown->str,
          n_unknown == 1 ? "is not a label" : "are not labels", shown_model,
          labels);
    else
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "%s has no label folders; expected DIR/<label>/*.jpg|*.png with "
          "the labels of model %s: %s",
          shown_root, shown_model, labels);
    g_array_unref (samples);
    return NULL;
  }
  return samples;
}

static void
progress_update (fer_progress *p, guint done)
{
  if (p->tty) {
    g_autofree char *bar = fer_progress_bar (p, done, 40);
    fprintf (stderr, "\r%s %u/%u", bar, done, (guint) p->total);
    if (done == p->total)
      fputc ('\n', stderr);
    return;
  }
  int tenth = fer_progress_next_tenth (p, done);
  if (tenth > 0)
    fprintf (stderr, "%s: %u/%u images (%d%%)\n", g_get_prgname (), done,
        (guint) p->total, tenth * 10);
}

/* A message in the middle of a bar starts on a fresh line. */
static void
progress_message (const fer_progress *p, const char *message)
{
  fprintf (stderr, "%s%s: skipped: %s\n", p->tty ? "\n" : "", g_get_prgname (),
      message);
}

static char *
describe_model (fer_model *m)
{
  fer_arch a = fer_model_arch (m);
  return g_strdup_printf ("ResNet-18, %s stem, %s head, %d input channel%s, "
                          "%d classes, %" G_GINT64_FORMAT " parameters",
      fer_stem_name (a.stem), a.head == FER_HEAD_MLP ? "mlp" : "fc", a.channels,
      a.channels == 1 ? "" : "s", a.n_classes, fer_model_n_params (m));
}

typedef struct
{
  const char *command;
  const char *data;
  fer_model *model;
  int tta;
  double seconds;
  const GArray *skipped; /* of fer_skipped_file */
  const fer_metrics *metrics;
  const fer_metrics *plain; /* --report with TTA: one view; else NULL */
} eval_result;

static void
print_text (const eval_result *r)
{
  g_autofree char *arch = describe_model (r->model);
  printf ("model: %s (%s)\n", fer_model_path (r->model), arch);
  printf ("data: %s: %" G_GINT64_FORMAT " images, %u skipped\n", r->data,
      r->metrics->n, r->skipped->len);
  printf ("TTA views: %d, backend: %s, %.1f s\n", r->tta,
      fer_backend_type_to_string (fer_model_backend (r->model)), r->seconds);
  printf ("accuracy: %.4f\n\n", r->metrics->accuracy);
  fer_metrics_print_text (r->metrics, stdout);
}

static void
print_json (const eval_result *r)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  /* paths are bytes, JSON is UTF-8: shown quoted (fer_text_quote) */
  g_autofree char *model = fer_text_quote (fer_model_path (r->model), 0);
  g_autofree char *data = fer_text_quote (r->data, 0);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, model);
  json_builder_set_member_name (b, "data");
  json_builder_add_string_value (b, data);
  json_builder_set_member_name (b, "tta");
  json_builder_add_int_value (b, r->tta);
  json_builder_set_member_name (b, "backend");
  json_builder_add_string_value (
      b, fer_backend_type_to_string (fer_model_backend (r->model)));
  json_builder_set_member_name (b, "seconds");
  json_builder_add_double_value (b, r->seconds);
  fer_metrics_to_json (r->metrics, b);
  json_builder_set_member_name (b, "skipped");
  json_builder_add_int_value (b, r->skipped->len);
  json_builder_set_member_name (b, "skipped_files");
  json_builder_begin_array (b);
  for (guint i = 0; i < r->skipped->len; i++) {
    const fer_skipped_file *s =
        &g_array_index (r->skipped, fer_skipped_file, i);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "path");
    json_builder_add_string_value (b, s->path);
    json_builder_set_member_name (b, "error");
    json_builder_add_string_value (b, s->message);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);

  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = json_to_string (root, FALSE);
  printf ("%s\n", text);
}

static gboolean
write_report (const eval_result *r, const char *path, GError **error)
{
  g_autofree char *arch = describe_model (r->model);
  g_autofree char *title =
      g_strdup_printf ("Evaluation of %s", fer_model_path (r->model));
  g_autofree char *model_path = fer_text_quote (fer_model_path (r->model), 0);
  g_autofree char *data_path = fer_text_quote (r->data, 0);
  g_autofree char *shown_command = fer_text_quote (r->command, 0);
  g_autofree char *model = g_strdup_printf ("`%s` (%s)", model_path, arch);
  g_autofree char *data = g_strdup_printf ("`%s`", data_path);
  g_autofree char *images =
      g_strdup_printf ("%" G_GINT64_FORMAT " classified, %u skipped",
          r->metrics->n, r->skipped->len);
  g_autofree char *views = g_strdup_printf ("%d", r->tta);
  g_autofree char *time = g_strdup_printf ("%.1f s", r->seconds);
  const char *facts[] = { "model", model, "data", data, "images", images,
    "TTA views", views, "backend",
    fer_backend_type_to_string (fer_model_backend (r->model)), "time", time,
    NULL };
  fer_report report = { .title = title,
    .facts = facts,
    .command = shown_command,
    .metrics = r->metrics,
    .plain = r->plain,
    .tta = r->tta,
    .skipped = r->skipped };
  return fer_report_write (path, &report, error);
}

/* Decodes and classifies every sample, filling metrics and skipped. */
static gboolean
evaluate (fer_model *m, const GArray *samples, int batch, int tta,
    fer_metrics *metrics, GArray *skipped, GError **error)
{
  int k = fer_model_n_classes (m);
  fer_decoded_image *pool = g_new0 (fer_decoded_image, batch);
  fer_image *images = g_new (fer_image, batch);
  int *labels = g_new (int, batch);
  float *probs = g_new (float, (size_t) batch *k);
  fer_progress bar;
  fer_progress_init (&bar, samples->len);
  gboolean ok = TRUE;

  for (guint next = 0; next < samples->len && ok;) {
    int n = 0;
    for (; n < batch && next < samples->len; next++) {
      const sample *s = &g_array_index (samples, sample, next);
      GError *decode_error = NULL;
      if (!fer_decoded_image_load (&pool[n], s->path, &decode_error)) {
        progress_message (&bar, decode_error->message);
        /* the path as JSON and the report show it: valid UTF-8 */
        fer_skipped_file f = { fer_text_quote (s->path, 0),
          g_strdup (decode_error->message) };
        g_array_append_val (skipped, f);
        g_error_free (decode_error);
        continue;
      }
      images[n] = pool[n].image;
      labels[n] = s->label;
      n++;
    }
    if (n > 0 && !fer_model_classify_images (m, images, n, tta, probs, error))
      ok = FALSE;
    g_autofree char *warning = fer_cli_fallback_warning (m);
    if (warning)
      fprintf (
          stderr, "%s%s: %s\n", bar.tty ? "\n" : "", g_get_prgname (), warning);
    for (int i = 0; ok && i < n; i++)
      fer_metrics_add (
          metrics, labels[i], fer_argmax (probs + (size_t) i * k, k));
    progress_update (&bar, next);
  }
  if (!ok && bar.tty)
    fputc ('\n', stderr);

  for (int i = 0; i < batch; i++)
    fer_decoded_image_clear (&pool[i]);
  g_free (pool);
  g_free (images);
  g_free (labels);
  g_free (probs);
  return ok;
}

int
main (int argc, char **argv)
{
  g_autofree char *command = fer_cli_shell_command (argc, argv);
  g_autofree char *model_path = NULL, *data = NULL, *backend_text = NULL,
                  *report = NULL;
  int tta = 1, threads = 0, batch = 64;
  gboolean json = FALSE;
  GOptionEntry entries[] = { FER_CLI_OPTION_MODEL (&model_path),
    { "data", 'd', 0, G_OPTION_ARG_FILENAME, &data,
        "Image-folder tree DIR/<label>/*.jpg|*.png (required)", "DIR" },
    FER_CLI_OPTION_TTA (&tta, 1), FER_CLI_OPTION_BACKEND (&backend_text),
    FER_CLI_OPTION_THREADS (&threads),
    { "batch", 0, 0, G_OPTION_ARG_INT, &batch,
        "Images per forward pass (default 64)", "B" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json,
        "Print the results as one JSON object on one line", NULL },
    { "report", 'r', 0, G_OPTION_ARG_FILENAME, &report,
        "Also write a Markdown report to FILE", "FILE.md" },
    { NULL } };

  g_autoptr (GOptionContext) ctx = g_option_context_new (
      "- accuracy, "
      "per-class scores and confusion matrix on an image-folder tree");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx,
      "Folder names must be labels of the model; files other than *.jpg, "
      "*.jpeg and *.png are ignored.\nUnreadable images are reported on "
      "stderr, counted and skipped.\nExit status: 0 when the evaluation "
      "completed, 1 when it could not, 2 on a command-line error.\n");
  if (!fer_cli_parse (ctx, &argc, &argv, FALSE))
    return FER_CLI_USAGE;
  if (data == NULL)
    return fer_cli_usage_error ("--data is required");
  if (tta < 1 || tta > FER_TTA_MAX)
    return fer_cli_usage_error ("--tta %d: expected 1 to %d", tta, FER_TTA_MAX);
  if (threads < 0)
    return fer_cli_usage_error ("--threads %d: expected 0 or more", threads);
  if (batch < 1 || batch > MAX_BATCH)
    return fer_cli_usage_error (
        "--batch %d: expected 1 to %d", batch, MAX_BATCH);
  int status = 1;
  fer_model *m =
      fer_cli_load_model (model_path, backend_text, threads, &status);
  if (m == NULL)
    return status;

  g_autoptr (GError) error = NULL;
  GArray *samples = collect_samples (m, data, &error);
  g_autoptr (GArray) skipped =
      g_array_new (FALSE, FALSE, sizeof (fer_skipped_file));
  g_array_set_clear_func (skipped, fer_skipped_file_clear);
  g_autofree const char **labels =
      g_new (const char *, fer_model_n_classes (m));
  for (int c = 0; c < fer_model_n_classes (m); c++)
    labels[c] = fer_model_label (m, c);
  fer_metrics *metrics = fer_metrics_new (fer_model_n_classes (m), labels);
  /* The report sets TTA beside one view, as the training report does. */
  fer_metrics *plain = report != NULL && tta > 1
      ? fer_metrics_new (fer_model_n_classes (m), labels)
      : NULL;
  g_autoptr (GArray) plain_skipped =
      g_array_new (FALSE, FALSE, sizeof (fer_skipped_file));
  g_array_set_clear_func (plain_skipped, fer_skipped_file_clear);
  gint64 start = g_get_monotonic_time ();

  if (samples == NULL)
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
  else if (samples->len == 0)
    fprintf (stderr,
        "%s: no *.jpg, *.jpeg or *.png files in the label folders "
        "of %s\n",
        g_get_prgname (), data);
  else if (!evaluate (m, samples, batch, tta, metrics, skipped, &error))
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
  else if (metrics->n == 0)
    fprintf (stderr, "%s: none of the %u images under %s could be read\n",
        g_get_prgname (), samples->len, data);
  else if (plain != NULL
      && !evaluate (m, samples, batch, 1, plain, plain_skipped, &error))
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
  else {
    double seconds = (g_get_monotonic_time () - start) / 1e6;
    fer_metrics_compute (metrics);
    if (plain != NULL)
      fer_metrics_compute (plain);
    eval_result r = { command, data, m, tta, seconds, skipped, metrics, plain };
    if (json)
      print_json (&r);
    else
      print_text (&r);
    status = 0;
    if (report != NULL && !write_report (&r, report, &error)) {
      fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
      status = 1;
    }
  }

  fer_metrics_free (metrics);
  if (plain != NULL)
    fer_metrics_free (plain);
  if (samples != NULL)
    g_array_unref (samples);
  fer_model_free (m);
  return status;
}
