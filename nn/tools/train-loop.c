/* fer-train's epochs (contract in train-loop.h). */
#include "train-loop.h"

#include <math.h>
#include <stdio.h>

#include "cli.h"
#include "progress.h"
#include "train-log.h"
#include "train-report.h"

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
  return s >= 3600
      ? g_strdup_printf ("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
      : g_strdup_printf ("%d:%02d", s / 60, s % 60);
}

static void
progress_update (progress *p, int done, double loss)
{
  int total = (int) p->count.total;
  double elapsed = (g_get_monotonic_time () - p->start) / 1e6;
  double rate = elapsed > 0 ? done / elapsed : 0.0;
  g_autofree char *eta = format_eta (rate > 0 ? (total - done) / rate : 0);
  if (p->count.tty) {
    g_autofree char *bar = fer_progress_bar (&p->count, done, 30);
    train_log_bar ("epoch %d/%d %s %d/%d %.1f img/s loss %.4f ETA %s\033[K",
        p->epoch, p->epochs, bar, done, total, rate, loss, eta);
    return;
  }
  int tenth = fer_progress_next_tenth (&p->count, done);
  if (tenth > 0)
    fprintf (stderr,
        "%s: epoch %d/%d: %d/%d images (%d%%), %.1f img/s, "
        "loss %.4f, ETA %s\n",
        g_get_prgname (), p->epoch, p->epochs, done, total, tenth * 10, rate,
        loss, eta);
}

static double
schedule_lr (const train_run *r, int epoch)
{
  const train_options *o = &r->o;
  if (epoch < o->warmup)
    return o->lr * (epoch + 1) / (o->warmup + 1);
  int e = epoch - o->warmup, span = o->epochs - o->warmup;
  switch (o->schedule) {
    case TRAIN_SCHEDULE_STEP:
      return o->lr * pow (o->gamma, e / o->step_size);
    case TRAIN_SCHEDULE_PLATEAU:
      return o->lr * r->state.plateau_scale;
    case TRAIN_SCHEDULE_COSINE:
    default:
      /* torch's CosineAnnealingLR(T_max = span, eta_min = 0), per epoch. */
      return o->lr * 0.5 * (1.0 + cos (G_PI * e / span));
  }
}

typedef struct
{
  float *x, *mix_tmp, *logits;
  float *val_logits; /* the validation set's, for its loss */
  float *soft;       /* --teacher: the batch's mixed targets */
  int *y, *y_b, *order, *perm, *idx;
  int **class_members; /* balanced sampling: images of each class */
} buffers;

/* The image order of an epoch: a permutation, or with balanced sampling
 * n draws of a uniformly chosen class and one of its images. */
static void
epoch_order (const train_run *r, const buffers *b, fer_rng *rng)
{
  const fer_dataset *d = r->train;
  if (!r->o.balanced) {
    for (int i = 0; i < d->n; i++)
      b->order[i] = i;
    fer_aug_shuffle (rng, b->order, d->n);
    return;
  }
  int present = 0;
  for (int c = 0; c < d->n_classes; c++)
    present += d->counts[c] > 0;
  for (int i = 0; i < d->n; i++) {
    int pick = (int) fer_rng_below (rng, (uint32_t) present), c = 0;
    for (;; c++)
      if (d->counts[c] > 0 && pick-- == 0)
        break;
    b->order[i] =
        b->class_members[c][fer_rng_below (rng, (uint32_t) d->counts[c])];
  }
}

static gboolean
train_epoch (
    train_run *r, buffers *b, int epoch, fer_epoch_row *row, GError **error)
{
  const fer_dataset *d = r->train;
  int k = d->n_classes, batch = r->o.batch;
  size_t image_floats = (size_t) r->aug.channels * r->side * r->side;
  fer_rng rng;
  fer_rng_seed_stream (&rng, r->o.seed, (uint64_t) epoch + 1);
  epoch_order (r, b, &rng);

  progress bar = {
    .epoch = epoch + 1, .epochs = r->o.epochs, .start = g_get_monotonic_time ()
  };
  fer_progress_init (&bar.count, d->n);
  double loss_sum = 0.0, correct = 0.0;
  int seen = 0;
  for (int start = 0; start < d->n; start += batch) {
    int n = MIN (batch, d->n - start);
    if (n < 2)
      break; /* batch norm needs two samples; torch would fail here */
    for (int i = 0; i < n; i++) {
      int idx = b->order[start + i];
      fer_aug_train_image (
          &r->aug, fer_dataset_image (d, idx), b->x + image_floats * i, &rng);
      b->y[i] = d->y[idx];
      b->idx[i] = idx;
    }
    float lam =
        fer_aug_mix_batch (b->x, n, r->aug.channels, r->side, b->y, b->y_b,
            (float) r->o.mixup, (float) r->o.cutmix, b->mix_tmp, b->perm, &rng);
    gboolean mixed = r->o.mixup > 0 || r->o.cutmix > 0;
    if (r->soft)
      for (int i = 0; i < n; i++) {
        const float *qa = r->soft + (size_t) b->idx[i] * k;
        const float *qb = r->soft + (size_t) b->idx[b->perm[i]] * k;
        for (int j = 0; j < k; j++)
          b->soft[(size_t) i * k + j] = lam * qa[j] + (1.0f - lam) * qb[j];
      }
    float loss;
    if (!fer_trainer_step_distill (r->trainer, b->x, b->y,
            mixed ? b->y_b : NULL, lam, r->soft ? b->soft : NULL,
            r->soft ? (float) r->o.teacher_weight : 0.0f, n, &loss, b->logits,
            error))
      return FALSE;
    if (!isfinite (loss)) {
      g_set_error (error, FER_ERROR, FER_ERROR_BACKEND,
          "the training loss "
          "is %f at epoch %d, images %d-%d; the run diverged (a lower "
          "--lr may help); the last finished epoch is kept in %s",
          loss, epoch + 1, start + 1, start + n, r->dir);
      return FALSE;
    }
    for (int i = 0; i < n; i++) {
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
  train_log_bar ("epoch %d/%d: validating on %d images\033[K", epoch + 1,
      r->o.epochs, r->val->n);
  return TRUE;
}

/* Accuracy and the training criterion on the validation set. */
static gboolean
validate_weights (train_run *r, buffers *b, fer_epoch_row *row, GError **error)
{
  const fer_dataset *d = r->val;
  int k = d->n_classes, batch = r->o.batch;
  size_t image_floats = (size_t) r->aug.channels * r->side * r->side;
  int64_t correct = 0;
  for (int start = 0; start < d->n; start += batch) {
    int n = MIN (batch, d->n - start);
    float *logits = b->val_logits + (size_t) start * k;
    for (int i = 0; i < n; i++)
      fer_aug_eval_image (
          &r->aug, fer_dataset_image (d, start + i), b->x + image_floats * i);
    if (!fer_trainer_eval (r->trainer, b->x, n, logits, error))
      return FALSE;
    for (int i = 0; i < n; i++)
      correct += fer_argmax (logits + (size_t) i * k, k) == d->y[start + i];
  }
  row->val_acc = (double) correct / MAX (d->n, 1);
  return fer_train_loss (
      &r->cfg, b->val_logits, d->y, d->n, &row->val_loss, error);
}

/* The same, of the weights' average under --ema. */
static gboolean
validate (train_run *r, buffers *b, fer_epoch_row *row, GError **error)
{
  if (!fer_trainer_has_ema (r->trainer))
    return validate_weights (r, b, row, error);
  if (!fer_trainer_swap_ema (r->trainer, error))
    return FALSE;
  gboolean ok = validate_weights (r, b, row, error);
  return fer_trainer_swap_ema (r->trainer, ok ? error : NULL) && ok;
}


/* Why the run is over after its committed epochs, or NULL to go on. */
static char *
stop_reason (const train_run *r)
{
  const train_run_state *s = &r->state;
  if (s->epochs_done >= r->o.epochs)
    return g_strdup_printf (
        "completed %d epoch%s", r->o.epochs, r->o.epochs == 1 ? "" : "s");
  if (r->o.patience > 0 && s->best_epoch > 0
      && s->epochs_done - s->best_epoch >= r->o.patience)
    return g_strdup_printf ("early stopping at epoch %d: no better validation "
                            "accuracy for %d epochs (patience %d)",
        s->epochs_done, s->epochs_done - s->best_epoch, r->o.patience);
  return NULL;
}

/* --time-budget: after `ran` epochs of this invocation took `elapsed`
 * seconds, --epochs shrinks to the epochs that fit in the budget at that
 * pace (the run ends when none does). Fixed after the first epoch,
 * whose learning rate (warm-up, or the cosine's start) does not depend on
 * the epoch count, so the schedule is the one a run planned with that many
 * epochs has; later epochs only shrink it further if the pace slows. */
static void
fit_time_budget (train_run *r, int ran, double elapsed)
{
  train_options *o = &r->o;
  if (o->time_budget <= 0 || ran < 1)
    return;
  const int done = r->state.epochs_done;
  const double per_epoch = elapsed / ran;
  const double left = o->time_budget - elapsed;
  const double more = left > 0 ? floor (left / per_epoch) : 0.0;
  if (done + more >= o->epochs)
    return;
  o->epochs = done + (int) more;
  train_say ("--time-budget %.0f s: %.1f s per epoch, %.0f s left: %d "
             "epoch%s in all",
      o->time_budget, per_epoch, MAX (left, 0.0), o->epochs,
      o->epochs == 1 ? "" : "s");
}

gboolean
train_loop_run (train_run *r, char **finished, GError **error)
{
  const fer_dataset *d = r->train;
  int batch = r->o.batch, k = d->n_classes;
  size_t image_floats = (size_t) r->aug.channels * r->side * r->side;
  buffers b = {
    .x = g_new (float, image_floats *batch),
    .mix_tmp = g_new (float, image_floats *batch),
    .logits = g_new (float, (size_t) batch *k),
    .val_logits = g_new (float, (size_t) MAX (r->val->n, 1) * k),
    .y = g_new (int, batch),
    .y_b = g_new (int, batch),
    .perm = g_new (int, batch),
    .idx = g_new (int, batch),
    .soft = g_new (float, (size_t) batch *k),
    .order = g_new (int, MAX (d->n, 1)),
    .class_members = g_new0 (int *, k),
  };
  for (int c = 0; c < k; c++) {
    b.class_members[c] = g_new (int, MAX (d->counts[c], 1));
    for (int i = 0, m = 0; i < d->n; i++)
      if (d->y[i] == c)
        b.class_members[c][m++] = i;
  }

  gboolean ok = TRUE;
  int ran = 0;
  g_autofree char *reason = NULL;
  const gint64 loop_start = g_get_monotonic_time ();
  while (ok && (reason = stop_reason (r)) == NULL) {
    if (r->o.stop_after > 0 && ran == r->o.stop_after) {
      train_say ("stopped after %d epoch%s as asked "
                 "(--stop-after-epochs); continue with: %s --resume %s",
          ran, ran == 1 ? "" : "s", g_get_prgname (), r->dir);
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

    train_run_state *s = &r->state;
    gboolean improved = s->best_epoch == 0 || row.val_acc > s->best_val_acc;
    if (improved) {
      s->best_epoch = row.epoch;
      s->best_val_acc = row.val_acc;
    }
    if (r->o.schedule == TRAIN_SCHEDULE_PLATEAU && epoch >= r->o.warmup) {
      /* torch's ReduceLROnPlateau(mode="max"), threshold 0. */
      if (row.val_acc > s->plateau_best) {
        s->plateau_best = row.val_acc;
        s->plateau_bad = 0;
      } else if (++s->plateau_bad > r->o.plateau_patience) {
        s->plateau_scale *= r->o.gamma;
        s->plateau_bad = 0;
      }
    }
    s->epochs_done = row.epoch;
    g_array_append_val (s->history, row);
    ok = train_run_commit_epoch (r, row.epoch, row.val_acc, improved, error);
    if (!ok)
      break;
    ran++;
    fit_time_budget (r, ran, (g_get_monotonic_time () - loop_start) / 1e6);
    train_say ("epoch %d/%d: lr %.3g, train loss %.4f acc %.4f, val loss "
               "%.4f acc %.4f, %.1f s%s",
        row.epoch, r->o.epochs, row.lr, row.train_loss, row.train_acc,
        row.val_loss, row.val_acc, row.seconds, improved ? ", new best" : "");
    /* The epoch is committed: a failure here stops the run, and --resume
     * goes on from this epoch. */
    ok = train_report_curves (r, error) && train_log_check (error);
  }

  *finished = ok ? g_steal_pointer (&reason) : NULL;
  g_free (b.x);
  g_free (b.mix_tmp);
  g_free (b.logits);
  g_free (b.val_logits);
  g_free (b.y);
  g_free (b.y_b);
  g_free (b.perm);
  g_free (b.idx);
  g_free (b.soft);
  g_free (b.order);
  for (int c = 0; c < k; c++)
    g_free (b.class_members[c]);
  g_free (b.class_members);
  return ok;
}
