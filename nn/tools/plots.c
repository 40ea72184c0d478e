/* fer-train's plots (contract in plots.h). Cairo's toy text API with a
 * fontconfig family name: DejaVu Sans where installed, fontconfig's nearest
 * sans-serif otherwise. */
#include "plots.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <glib/gstdio.h>
#include <fer/fer.h>

#define FONT "DejaVu Sans"

typedef struct
{
  double r, g, b;
} rgb;

static const rgb ink = { 0.15, 0.15, 0.15 };
static const rgb grid_ink = { 0.88, 0.88, 0.88 };
static const rgb muted_ink = { 0.45, 0.45, 0.45 };
static const rgb train_ink = { 0.12, 0.47, 0.71 }; /* blue */
static const rgb val_ink = { 0.90, 0.42, 0.05 };   /* orange */
static const rgb lr_ink = { 0.17, 0.58, 0.17 };    /* green */

static void
set_ink (cairo_t *cr, rgb c)
{
  cairo_set_source_rgb (cr, c.r, c.g, c.b);
}

/* Draws s with its anchor (ax, ay) at (x, y): ax 0 / 0.5 / 1 = left /
 * centre / right, ay 0 / 0.5 / 1 = top / middle / bottom of the line. */
static void
draw_text (cairo_t *cr, double x, double y, const char *s, double size,
    gboolean bold, double ax, double ay)
{
  cairo_select_font_face (cr, FONT, CAIRO_FONT_SLANT_NORMAL,
      bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size (cr, size);
  cairo_text_extents_t te;
  cairo_font_extents_t fe;
  cairo_text_extents (cr, s, &te);
  cairo_font_extents (cr, &fe);
  cairo_move_to (
      cr, x - ax * te.x_advance, y + fe.ascent - ay * (fe.ascent + fe.descent));
  cairo_show_text (cr, s);
}

static double
text_width (cairo_t *cr, const char *s, double size, gboolean bold)
{
  cairo_select_font_face (cr, FONT, CAIRO_FONT_SLANT_NORMAL,
      bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size (cr, size);
  cairo_text_extents_t te;
  cairo_text_extents (cr, s, &te);
  return te.x_advance;
}

/* Text turned a quarter left (reading upwards), centred on (x, y). */
static void
draw_text_vertical (cairo_t *cr, double x, double y, const char *s, double size)
{
  cairo_save (cr);
  cairo_translate (cr, x, y);
  cairo_rotate (cr, -G_PI / 2);
  draw_text (cr, 0, 0, s, size, FALSE, 0.5, 0.5);
  cairo_restore (cr);
}

typedef struct
{
  FILE *f;
  int errsv; /* errno of the first failed write, 0 while all went in */
} png_sink;

static cairo_status_t
png_write (void *closure, const unsigned char *data, unsigned int length)
{
  png_sink *sink = closure;
  if (fwrite (data, 1, length, sink->f) == length)
    return CAIRO_STATUS_SUCCESS;
  sink->errsv = errno ? errno : EIO;
  return CAIRO_STATUS_WRITE_ERROR;
}

/* The plot under a temporary name, renamed into place when whole: the
 * error says what the system said (a full disk, say). */
static gboolean
write_png (cairo_surface_t *surface, const char *path, GError **error)
{
  g_autofree char *tmp = g_strdup_printf ("%s.tmp-%d", path, (int) getpid ());
  g_autofree char *quoted = fer_text_quote (path, 0);
  png_sink sink = { fopen (tmp, "wb"), 0 };
  cairo_status_t status = CAIRO_STATUS_WRITE_ERROR;

  if (sink.f == NULL)
    sink.errsv = errno;
  else {
    status = cairo_surface_write_to_png_stream (surface, png_write, &sink);
    if ((fflush (sink.f) != 0 || ferror (sink.f)) && sink.errsv == 0)
      sink.errsv = errno ? errno : EIO;
    if (fclose (sink.f) != 0 && sink.errsv == 0)
      sink.errsv = errno;
  }
  if (status != CAIRO_STATUS_SUCCESS || sink.errsv != 0) {
    g_unlink (tmp);
    g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot write plot %s: %s",
        quoted,
        sink.errsv ? g_strerror (sink.errsv) : cairo_status_to_string (status));
    return FALSE;
  }
  if (g_rename (tmp, path) != 0) {
    int e = errno;
    g_unlink (tmp);
    g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot write plot %s: %s",
        quoted, g_strerror (e));
    return FALSE;
  }
  return TRUE;
}

static cairo_t *
new_canvas (int width, int height, cairo_surface_t **surface)
{
  *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, width, height);
  cairo_t *cr = cairo_create (*surface);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);
  return cr;
}

/* ---- curves -------------------------------------------------------------- */

/* A linear axis with "nice" ticks (1, 2 or 5 times a power of ten). */
typedef struct
{
  double lo, hi, step;
} axis;

static double
nice_step (double range, int target)
{
  double raw = range / target, mag = pow (10.0, floor (log10 (raw)));
  double f = raw / mag;
  return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

static axis
make_axis (double lo, double hi, int target, double floor_at, double ceil_at)
{
  if (!(hi > lo)) {
    double pad = fabs (lo) > 0 ? fabs (lo) * 0.1 : 1.0;
    lo -= pad;
    hi += pad;
  }
  axis a;
  a.step = nice_step (hi - lo, target);
  a.lo = MAX (floor (lo / a.step + 1e-9) * a.step, floor_at);
  a.hi = MIN (ceil (hi / a.step - 1e-9) * a.step, ceil_at);
  if (!(a.hi > a.lo))
    a.hi = a.lo + a.step;
  return a;
}

static void
format_tick (char *buf, size_t size, double v, double step)
{
  if (fabs (v) < step * 1e-6)
    v = 0.0;
  int decimals = MAX (0, (int) -floor (log10 (step) + 1e-9));
  if (decimals <= 4)
    g_snprintf (buf, size, "%.*f", decimals, v);
  else if (v == 0.0)
    g_snprintf (buf, size, "0");
  else
    g_snprintf (buf, size, "%.1e", v);
}

typedef struct
{
  const char *name;
  rgb ink;
  double *y; /* n values, NaN where missing */
} series;

typedef struct
{
  double left, right, top, bottom; /* the plot area */
  axis x, y;
} frame;

static double
frame_x (const frame *f, double v)
{
  return f->left + (v - f->x.lo) / (f->x.hi - f->x.lo) * (f->right - f->left);
}

static double
frame_y (const frame *f, double v)
{
  return f->bottom - (v - f->y.lo) / (f->y.hi - f->y.lo) * (f->bottom - f->top);
}

static void
draw_axes (cairo_t *cr, const frame *f, const char *xlabel, const char *ylabel)
{
  char label[32];
  cairo_set_line_width (cr, 1.0);
  for (double v = f->y.lo; v <= f->y.hi + f->y.step * 1e-6; v += f->y.step) {
    double y = round (frame_y (f, v)) + 0.5;
    set_ink (cr, grid_ink);
    cairo_move_to (cr, f->left, y);
    cairo_line_to (cr, f->right, y);
    cairo_stroke (cr);
    set_ink (cr, ink);
    format_tick (label, sizeof label, v, f->y.step);
    draw_text (cr, f->left - 7, y, label, 12, FALSE, 1.0, 0.5);
  }
  /* Epoch ticks at multiples of the step. */
  for (double v = ceil (f->x.lo / f->x.step) * f->x.step; v <= f->x.hi + 1e-6;
       v += f->x.step) {
    double x = round (frame_x (f, v)) + 0.5;
    set_ink (cr, grid_ink);
    cairo_move_to (cr, x, f->top);
    cairo_line_to (cr, x, f->bottom);
    cairo_stroke (cr);
    set_ink (cr, ink);
    g_snprintf (label, sizeof label, "%.0f", v);
    draw_text (cr, x, f->bottom + 6, label, 12, FALSE, 0.5, 0.0);
  }
  set_ink (cr, ink);
  cairo_rectangle (cr, round (f->left) + 0.5, round (f->top) + 0.5,
      round (f->right - f->left), round (f->bottom - f->top));
  cairo_stroke (cr);
  draw_text (cr, (f->left + f->right) / 2, f->bottom + 26, xlabel, 13, FALSE,
      0.5, 0.0);
  draw_text_vertical (cr, f->left - 58, (f->top + f->bottom) / 2, ylabel, 13);
}

static void
draw_series (cairo_t *cr, const frame *f, const fer_epoch_row *rows, int n,
    const series *s)
{
  cairo_save (cr);
  /* Clip a little outside the frame, so markers on its edge stay round. */
  cairo_rectangle (cr, f->left - 6, f->top - 6, f->right - f->left + 12,
      f->bottom - f->top + 12);
  cairo_clip (cr);
  set_ink (cr, s->ink);
  cairo_set_line_width (cr, 2.0);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  gboolean pen_down = FALSE;
  for (int i = 0; i < n; i++) {
    if (!isfinite (s->y[i])) {
      pen_down = FALSE;
      continue;
    }
    double x = frame_x (f, rows[i].epoch), y = frame_y (f, s->y[i]);
    if (pen_down)
      cairo_line_to (cr, x, y);
    else
      cairo_move_to (cr, x, y);
    pen_down = TRUE;
  }
  cairo_stroke (cr);
  if (n <= 60)
    for (int i = 0; i < n; i++)
      if (isfinite (s->y[i])) {
        cairo_arc (cr, frame_x (f, rows[i].epoch), frame_y (f, s->y[i]),
            n <= 25 ? 3.5 : 2.5, 0, 2 * G_PI);
        cairo_fill (cr);
      }
  cairo_restore (cr);
}

/* Legend entries right-aligned on the panel's title line. */
static void
draw_legend (cairo_t *cr, double right, double y, const series *s, int ns,
    const char *extra, rgb extra_ink)
{
  double x = right;
  if (extra != NULL) {
    x -= text_width (cr, extra, 12, FALSE);
    set_ink (cr, ink);
    draw_text (cr, x, y, extra, 12, FALSE, 0.0, 0.5);
    x -= 24;
    set_ink (cr, extra_ink);
    cairo_set_line_width (cr, 1.5);
    double dashes[] = { 4.0, 3.0 };
    cairo_set_dash (cr, dashes, 2, 0);
    cairo_move_to (cr, x, y);
    cairo_line_to (cr, x + 18, y);
    cairo_stroke (cr);
    cairo_set_dash (cr, NULL, 0, 0);
    x -= 14;
  }
  for (int i = ns - 1; i >= 0; i--) {
    x -= text_width (cr, s[i].name, 12, FALSE);
    set_ink (cr, ink);
    draw_text (cr, x, y, s[i].name, 12, FALSE, 0.0, 0.5);
    x -= 24;
    set_ink (cr, s[i].ink);
    cairo_set_line_width (cr, 2.5);
    cairo_move_to (cr, x, y);
    cairo_line_to (cr, x + 18, y);
    cairo_stroke (cr);
    x -= 14;
  }
}

typedef enum
{
  PANEL_LOSS,
  PANEL_ACCURACY,
  PANEL_LR
} panel_kind;

static void
draw_panel (cairo_t *cr, double px, double py, double pw, double ph,
    panel_kind kind, const fer_epoch_row *rows, int n, int best_epoch)
{
  static const char *titles[] = { "Loss", "Accuracy", "Learning rate" };
  static const char *ylabels[] = { "loss", "accuracy", "learning rate" };
  double *a = g_new (double, n), *b = g_new (double, n);
  series s[2];
  int ns;
  if (kind == PANEL_LR) {
    for (int i = 0; i < n; i++)
      a[i] = rows[i].lr;
    s[0] = (series){ "lr", lr_ink, a };
    ns = 1;
  } else {
    for (int i = 0; i < n; i++) {
      a[i] = kind == PANEL_LOSS ? rows[i].train_loss : rows[i].train_acc;
      b[i] = kind == PANEL_LOSS ? rows[i].val_loss : rows[i].val_acc;
    }
    s[0] = (series){ "train", train_ink, a };
    s[1] = (series){ "validation", val_ink, b };
    ns = 2;
  }

  double lo = INFINITY, hi = -INFINITY;
  for (int k = 0; k < ns; k++)
    for (int i = 0; i < n; i++)
      if (isfinite (s[k].y[i])) {
        lo = MIN (lo, s[k].y[i]);
        hi = MAX (hi, s[k].y[i]);
      }
  if (!isfinite (lo))
    lo = 0.0, hi = 1.0;

  frame f = { .left = px + 78,
    .right = px + pw - 18,
    .top = py + 40,
    .bottom = py + ph - 52 };
  int first = rows[0].epoch, last = rows[n - 1].epoch;
  /* Half an epoch (less for long runs) beyond the first and last points,
   * so that they do not sit on the frame. */
  double pad = first == last ? 1.0 : MIN (0.5, 0.03 * (last - first) + 0.2);
  double xlo = first - pad, xhi = last + pad;
  f.x = (axis){ xlo, xhi, MAX (1.0, nice_step (last - first + 1e-9, 8)) };
  if (kind == PANEL_ACCURACY)
    f.y = make_axis (lo, hi, 6, 0.0, 1.0);
  else if (kind == PANEL_LR)
    f.y = make_axis (0.0, hi * 1.05, 5, 0.0, INFINITY);
  else
    f.y = make_axis (lo, hi, 6, 0.0, INFINITY);

  set_ink (cr, ink);
  draw_text (cr, f.left, py + 18, titles[kind], 15, TRUE, 0.0, 0.5);
  draw_axes (cr, &f, "epoch", ylabels[kind]);

  g_autofree char *best_text = NULL;
  if (kind == PANEL_ACCURACY && best_epoch > 0)
    for (int i = 0; i < n; i++)
      if (rows[i].epoch == best_epoch) {
        best_text = g_strdup_printf (
            "best: epoch %d, %.2f%%", best_epoch, 100.0 * rows[i].val_acc);
        double x = frame_x (&f, best_epoch);
        set_ink (cr, muted_ink);
        cairo_set_line_width (cr, 1.5);
        double dashes[] = { 4.0, 3.0 };
        cairo_set_dash (cr, dashes, 2, 0);
        cairo_move_to (cr, x, f.top);
        cairo_line_to (cr, x, f.bottom);
        cairo_stroke (cr);
        cairo_set_dash (cr, NULL, 0, 0);
      }
  for (int k = 0; k < ns; k++)
    draw_series (cr, &f, rows, n, &s[k]);
  if (best_text != NULL)
    for (int i = 0; i < n; i++)
      if (rows[i].epoch == best_epoch) {
        /* A ring around the validation point the checkpoint comes from. */
        set_ink (cr, val_ink);
        cairo_set_line_width (cr, 2.0);
        cairo_arc (
            cr, frame_x (&f, best_epoch), frame_y (&f, b[i]), 7.0, 0, 2 * G_PI);
        cairo_stroke (cr);
      }
  draw_legend (cr, f.right, py + 18, s, ns, best_text, muted_ink);
  g_free (a);
  g_free (b);
}

gboolean
fer_plot_curves (const char *path, const fer_epoch_row *rows, int n,
    int best_epoch, const char *title, GError **error)
{
  g_return_val_if_fail (n >= 1, FALSE);
  const int panel_w = 560, panel_h = 430, top = 44;
  cairo_surface_t *surface;
  cairo_t *cr = new_canvas (3 * panel_w, top + panel_h, &surface);
  set_ink (cr, ink);
  draw_text (cr, 20, 22, title, 16, TRUE, 0.0, 0.5);
  for (int k = 0; k < 3; k++)
    draw_panel (cr, k * panel_w, top, panel_w, panel_h, (panel_kind) k, rows, n,
        best_epoch);
  cairo_destroy (cr);
  gboolean ok = write_png (surface, path, error);
  cairo_surface_destroy (surface);
  return ok;
}

/* ---- confusion matrix ---------------------------------------------------- */

#define CONFUSION_SUBTITLE                                                     \
  "Cells: images and share of the true class (the "                            \
  "colour); rows: true class, columns: predicted class"

/* matplotlib's "Blues", sampled at five points. */
static rgb
blues (double v)
{
  static const rgb stops[] = {
    { 0.969, 0.984, 1.000 },
    { 0.776, 0.859, 0.937 },
    { 0.420, 0.682, 0.839 },
    { 0.129, 0.443, 0.710 },
    { 0.031, 0.188, 0.420 },
  };
  v = CLAMP (v, 0.0, 1.0) * 4.0;
  int i = MIN ((int) v, 3);
  double t = v - i;
  return (rgb){ stops[i].r + t * (stops[i + 1].r - stops[i].r),
    stops[i].g + t * (stops[i + 1].g - stops[i].g),
    stops[i].b + t * (stops[i + 1].b - stops[i].b) };
}

gboolean
fer_plot_confusion (
    const char *path, const fer_metrics *m, const char *title, GError **error)
{
  int k = m->n_classes;
  double cell = k <= 10 ? 80 : k <= 20 ? 52 : 36;
  double label_size = k <= 10 ? 14 : 11;

  /* Measure the labels on a scratch surface to size the margins. */
  cairo_surface_t *probe =
      cairo_image_surface_create (CAIRO_FORMAT_RGB24, 1, 1);
  cairo_t *pcr = cairo_create (probe);
  double label_w = 0;
  for (int i = 0; i < k; i++)
    label_w = MAX (label_w, text_width (pcr, m->labels[i], label_size, FALSE));
  double title_w = MAX (text_width (pcr, title, 16, TRUE),
      text_width (pcr, CONFUSION_SUBTITLE, 12, FALSE));
  cairo_destroy (pcr);
  cairo_surface_destroy (probe);

  /* Column labels are turned 45 degrees when they do not fit a cell. */
  gboolean slanted = label_w > cell - 8;
  double col_label_h = slanted ? label_w * 0.71 + 16 : 24;
  double left = 40 + label_w + 12, top = 70;
  double grid = cell * k;
  double bar_x = left + grid + 90;
  int width = (int) MAX (bar_x + 110, title_w + 40);
  int height = (int) (top + grid + col_label_h + 44);

  cairo_surface_t *surface;
  cairo_t *cr = new_canvas (width, height, &surface);
  set_ink (cr, ink);
  draw_text (cr, 20, 24, title, 16, TRUE, 0.0, 0.5);
  draw_text (cr, 20, 48, CONFUSION_SUBTITLE, 12, FALSE, 0.0, 0.5);

  for (int i = 0; i < k; i++) {
    int64_t total = 0;
    for (int j = 0; j < k; j++)
      total += m->confusion[(size_t) i * k + j];
    for (int j = 0; j < k; j++) {
      int64_t v = m->confusion[(size_t) i * k + j];
      double share = total > 0 ? (double) v / total : 0.0;
      double x = left + j * cell, y = top + i * cell;
      set_ink (cr, blues (share));
      cairo_rectangle (cr, x, y, cell, cell);
      cairo_fill (cr);
      rgb text_ink = share > 0.5 ? (rgb){ 1, 1, 1 } : ink;
      set_ink (cr, text_ink);
      char count[32], pct[32];
      g_snprintf (count, sizeof count, "%" G_GINT64_FORMAT, v);
      g_snprintf (pct, sizeof pct, "%.0f%%", 100.0 * share);
      if (k <= 20) {
        draw_text (cr, x + cell / 2, y + cell / 2 - 8, count, label_size, TRUE,
            0.5, 0.5);
        draw_text (cr, x + cell / 2, y + cell / 2 + 11, pct, label_size - 3,
            FALSE, 0.5, 0.5);
      } else
        draw_text (cr, x + cell / 2, y + cell / 2, count, 9, FALSE, 0.5, 0.5);
    }
    set_ink (cr, ink);
    draw_text (cr, left - 8, top + (i + 0.5) * cell, m->labels[i], label_size,
        FALSE, 1.0, 0.5);
    char support[32];
    g_snprintf (support, sizeof support, "n = %" G_GINT64_FORMAT, total);
    set_ink (cr, muted_ink);
    draw_text (cr, left + grid + 8, top + (i + 0.5) * cell, support, 12, FALSE,
        0.0, 0.5);
  }

  /* Grid lines between the cells. */
  set_ink (cr, (rgb){ 1, 1, 1 });
  cairo_set_line_width (cr, 1.0);
  for (int i = 1; i < k; i++) {
    cairo_move_to (cr, left + i * cell, top);
    cairo_line_to (cr, left + i * cell, top + grid);
    cairo_move_to (cr, left, top + i * cell);
    cairo_line_to (cr, left + grid, top + i * cell);
  }
  cairo_stroke (cr);
  set_ink (cr, ink);
  cairo_rectangle (cr, left + 0.5, top + 0.5, grid - 1, grid - 1);
  cairo_stroke (cr);

  for (int j = 0; j < k; j++) {
    double x = left + (j + 0.5) * cell, y = top + grid + 8;
    if (!slanted)
      draw_text (cr, x, y, m->labels[j], label_size, FALSE, 0.5, 0.0);
    else {
      cairo_save (cr);
      cairo_translate (cr, x + 4, y);
      cairo_rotate (cr, -G_PI / 4);
      draw_text (cr, 0, 0, m->labels[j], label_size, FALSE, 1.0, 0.5);
      cairo_restore (cr);
    }
  }
  draw_text (cr, left + grid / 2, top + grid + col_label_h + 12,
      "predicted class", 14, TRUE, 0.5, 0.0);
  cairo_save (cr);
  cairo_translate (cr, 20, top + grid / 2);
  cairo_rotate (cr, -G_PI / 2);
  draw_text (cr, 0, 0, "true class", 14, TRUE, 0.5, 0.5);
  cairo_restore (cr);

  /* Colour scale. */
  double bar_w = 18, bar_top = top, bar_h = grid;
  for (int p = 0; p < (int) bar_h; p++) {
    set_ink (cr, blues (1.0 - p / bar_h));
    cairo_rectangle (cr, bar_x, bar_top + p, bar_w, 1);
    cairo_fill (cr);
  }
  set_ink (cr, ink);
  cairo_rectangle (cr, bar_x + 0.5, bar_top + 0.5, bar_w - 1, bar_h - 1);
  cairo_stroke (cr);
  for (int t = 0; t <= 4; t++) {
    double y = bar_top + bar_h * (1.0 - t / 4.0);
    char label[16];
    g_snprintf (label, sizeof label, "%d%%", t * 25);
    cairo_move_to (cr, bar_x + bar_w, y);
    cairo_line_to (cr, bar_x + bar_w + 4, y);
    cairo_stroke (cr);
    draw_text (cr, bar_x + bar_w + 7, y, label, 11, FALSE, 0.0, 0.5);
  }
  draw_text_vertical (cr, bar_x + bar_w + 60, bar_top + bar_h / 2,
      "share of the true class", 12);

  cairo_destroy (cr);
  gboolean ok = write_png (surface, path, error);
  cairo_surface_destroy (surface);
  return ok;
}

void
fer_plots_release (void)
{
  /* cairo's reset leaves fontconfig's own configuration behind. */
  cairo_debug_reset_static_data ();
  FcFini ();
}
