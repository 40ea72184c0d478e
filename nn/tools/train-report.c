/* fer-train's curves and final report (contract in train-report.h). */
#include "train-report.h"

#include <stdio.h>

#include "cli.h"
#include "metrics.h"
#include "plots.h"
#include "train-log.h"

gboolean
train_report_curves (const train_run *r, GError **error)
{
  g_autofree char *csv = train_run_path (r, "metrics.csv");
  g_autofree char *png = train_run_path (r, "curves.png");
  g_autofree char *title = g_strdup_printf ("fer-train: %s", r->dir);
  const fer_epoch_row *rows = (const fer_epoch_row *) r->state.history->data;
  int n = (int) r->state.history->len;
  if (!fer_metrics_csv_write (csv, rows, n, error))
    return FALSE;
  return n == 0
      || fer_plot_curves (png, rows, n, r->state.best_epoch, title, error);
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

/* Evaluates best.safetensors on the validation set with `views` TTA views. */
static gboolean
evaluate_checkpoint (const train_run *r, fer_model *m, int views,
    fer_metrics *metrics, GError **error)
{
  const fer_dataset *d = r->val;
  int k = d->n_classes, batch = r->o.batch;
  fer_image *images = g_new (fer_image, batch);
  float *probs = g_new (float, (size_t) batch *k);
  gboolean ok = TRUE;
  for (int start = 0; start < d->n && ok; start += batch) {
    int n = MIN (batch, d->n - start);
    for (int i = 0; i < n; i++)
      images[i] = fer_dataset_fer_image (d, start + i);
    ok = fer_model_classify_images (m, images, n, views, probs, error);
    for (int i = 0; ok && i < n; i++)
      fer_metrics_add (
          metrics, d->y[start + i], fer_argmax (probs + (size_t) i * k, k));
  }
  g_free (images);
  g_free (probs);
  fer_metrics_compute (metrics);
  return ok;
}

gboolean
train_report_final (const train_run *r, const char *stop_reason, GError **error)
{
  g_autofree char *best_path = train_run_path (r, "best.safetensors");
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
  train_say ("evaluating %s on %s: one view%s", best_path, r->val->source,
      with_tta ? " and with TTA" : "");
  gboolean ok = evaluate_checkpoint (r, m, 1, plain, error)
      && (with_tta == NULL
          || evaluate_checkpoint (r, m, r->o.tta, with_tta, error));
  const char *backend = fer_backend_type_to_string (fer_model_backend (m));
  fer_model_free (m);

  if (ok) {
    const fer_metrics *headline = with_tta ? with_tta : plain;
    g_autofree char *confusion = train_run_path (r, "confusion.png");
    g_autofree char *views = with_tta
        ? g_strdup_printf ("%d-view TTA", r->o.tta)
        : g_strdup ("one view");
    g_autofree char *title = g_strdup_printf ("Confusion matrix: %s, epoch "
                                              "%d, %s (accuracy %.2f%%)",
        r->dir, r->state.best_epoch, views, 100.0 * headline->accuracy);
    g_autofree char *arch = train_options_describe_arch (&r->o, k);
    g_autofree char *recipe = train_options_recipe (&r->o, TRUE);
    double seconds = 0.0;
    for (guint i = 0; i < r->state.history->len; i++)
      seconds += g_array_index (r->state.history, fer_epoch_row, i).seconds;
    const fer_epoch_row *rows = (const fer_epoch_row *) r->state.history->data;
    int n_rows = (int) r->state.history->len;
    g_autofree char *report_title =
        g_strdup_printf ("Training report: %s", r->dir);
    g_autofree char *train_data =
        g_strdup_printf ("`%s`: %" G_GINT64_FORMAT " images, %d skipped",
            r->train->source, (gint64) r->train->n, r->train->n_skipped);
    g_autofree char *val_data =
        g_strdup_printf ("`%s`: %" G_GINT64_FORMAT " images, %d skipped",
            r->val->source, (gint64) r->val->n, r->val->n_skipped);
    g_autofree char *epochs = g_strdup_printf ("%d run, best %d "
                                               "(`best.safetensors`)",
        n_rows > 0 ? rows[n_rows - 1].epoch : 0, r->state.best_epoch);
    g_autofree char *duration = format_duration (seconds);
    g_autofree char *train_time =
        g_strdup_printf ("%s (%.0f s)", duration, seconds);
    g_autofree char *evaluation =
        g_strdup_printf ("backend %s, best "
                         "checkpoint reloaded with fer_model_load",
            backend);
    const char *facts[] = { "model", arch, "training data", train_data,
      "validation data", val_data, "epochs", epochs, "stopped", stop_reason,
      "training time", train_time, "evaluation", evaluation, NULL };
    fer_report_training training = {
      .plain = plain,
      .with_tta = with_tta,
      .tta = r->o.tta,
      .rows = rows,
      .n_rows = n_rows,
      .best_epoch = r->state.best_epoch,
      .recipe = recipe,
      .curves_png = "curves.png",
      .confusion_png = "confusion.png",
    };
    fer_report report = {
      .title = report_title,
      .facts = facts,
      .command = r->state.command,
      .metrics = headline,
      .training = &training,
    };
    g_autofree char *report_path = train_run_path (r, "report.md");
    ok = fer_plot_confusion (confusion, headline, title, error)
        && fer_report_write (report_path, &report, error);
    if (ok) {
      printf ("run: %s\nbest epoch: %d of %u (%s)\n", r->dir,
          r->state.best_epoch, r->state.history->len, stop_reason);
      printf ("validation accuracy: %.4f plain", plain->accuracy);
      if (with_tta)
        printf (", %.4f with %d TTA views", with_tta->accuracy, r->o.tta);
      printf ("\n\n");
      fer_metrics_print_text (headline, stdout);
      printf ("\nreport: %s\n", report_path);
      g_autofree char *tta_text = with_tta ? g_strdup_printf (", %.4f "
                                                              "with %s",
                                      with_tta->accuracy, views)
                                           : g_strdup ("");
      train_say ("validation accuracy of best.safetensors (epoch %d): %.4f "
                 "plain%s; report %s",
          r->state.best_epoch, plain->accuracy, tta_text, report_path);
    }
  }
  fer_metrics_free (plain);
  fer_metrics_free (with_tta);
  return ok;
}
