/* Progress of the tools on stderr: a bar redrawn in place on a terminal;
 * in a log (stderr not a terminal), one line per tenth of the work, so CI
 * output stays short and readable. The tools word their own lines; this
 * decides when a line is due and draws the bar. */
#ifndef FER_TOOLS_PROGRESS_H
#define FER_TOOLS_PROGRESS_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  gboolean tty; /* stderr is a terminal: draw the bar */
  gint64 total;
  int last_tenth;
} fer_progress;

/* A fresh count of `total` items. */
void fer_progress_init (fer_progress *p, gint64 total);

/* For a log: the tenth (1 to 10) that `done` items complete when it is
 * one not reported yet, else 0. */
int fer_progress_next_tenth (fer_progress *p, gint64 done);

/* The bar for `done` items, `width` characters between brackets:
 * "[#####     ]". */
char *fer_progress_bar (const fer_progress *p, gint64 done, int width);

G_END_DECLS

#endif
