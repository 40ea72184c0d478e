/* fer-train's messages: each goes to stderr ("fer-train: ...") and, with
 * the time, to RUNDIR/train.log; what is said before the run directory
 * exists is kept and written when the log opens. On a terminal, progress
 * redraws one line (a bar); the next message first ends that line. */
#ifndef FER_TOOLS_TRAIN_LOG_H
#define FER_TOOLS_TRAIN_LOG_H

#include <glib.h>

G_BEGIN_DECLS

/* Notes whether stderr is a terminal (call once, at the start). */
void train_log_init (void);
gboolean train_log_is_tty (void);

/* A message line on stderr and in train.log. */
void train_say (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

/* On a terminal: redraws the current line with the text (no newline). */
void train_log_bar (const char *fmt, ...) G_GNUC_PRINTF (1, 2);
/* Ends the line of a bar, if one is open. */
void train_log_end_bar (void);

/* Creates the run directory dir if needed and opens dir/train.log (to
 * append), writing what was said before. */
gboolean train_log_open (const char *dir, GError **error);
/* Closes train.log and drops what was never written. */
void train_log_close (void);
/* FALSE, with an error naming train.log and the system's reason, when a
 * write to it failed since it was opened (a full disk, say). */
gboolean train_log_check (GError **error);

G_END_DECLS

#endif
