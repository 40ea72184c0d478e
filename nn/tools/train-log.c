/* fer-train's messages (contract in train-log.h). */
#include "train-log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <fer/fer.h>

static struct
{
  FILE *log; /* RUNDIR/train.log, NULL until the directory exists */
  char *log_path;
  int log_errno;    /* errno of the first write to it that failed, or 0 */
  GString *pending; /* what was said before it existed */
  gboolean tty;
  gboolean bar_open; /* a progress bar is on the current terminal line */
} msg;

void
train_log_init (void)
{
  msg.tty = isatty (STDERR_FILENO);
}

gboolean
train_log_is_tty (void)
{
  return msg.tty;
}

/* Flushes the log, keeping the first failure for train_log_check. */
static void
log_flush (void)
{
  errno = 0;
  if ((fflush (msg.log) != 0 || ferror (msg.log)) && msg.log_errno == 0)
    msg.log_errno = errno ? errno : EIO;
  clearerr (msg.log);
}

gboolean
train_log_check (GError **error)
{
  if (msg.log_errno == 0)
    return TRUE;
  g_autofree char *quoted = fer_text_quote (msg.log_path, 0);
  g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot write %s: %s", quoted,
      g_strerror (msg.log_errno));
  return FALSE;
}

void
train_say (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  train_log_end_bar ();
  fprintf (stderr, "%s: %s\n", g_get_prgname (), text);
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%F %T");
  if (msg.log != NULL) {
    fprintf (msg.log, "%s %s\n", stamp, text);
    log_flush ();
  } else {
    if (msg.pending == NULL)
      msg.pending = g_string_new (NULL);
    g_string_append_printf (msg.pending, "%s %s\n", stamp, text);
  }
}

void
train_log_bar (const char *fmt, ...)
{
  if (!msg.tty)
    return;
  va_list ap;
  va_start (ap, fmt);
  fputc ('\r', stderr);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  msg.bar_open = TRUE;
}

void
train_log_end_bar (void)
{
  if (msg.bar_open) {
    fputc ('\n', stderr);
    msg.bar_open = FALSE;
  }
}

gboolean
train_log_open (const char *dir, GError **error)
{
  if (g_mkdir_with_parents (dir, 0755) != 0) {
    int e = errno;
    g_set_error (error, FER_ERROR, FER_ERROR_IO,
        "cannot create run "
        "directory %s: %s",
        dir, g_strerror (e));
    return FALSE;
  }
  g_autofree char *log_path = g_build_filename (dir, "train.log", NULL);
  msg.log = fopen (log_path, "a");
  if (msg.log == NULL) {
    int e = errno;
    g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot open %s: %s", log_path,
        g_strerror (e));
    return FALSE;
  }
  msg.log_path = g_strdup (log_path);
  if (msg.pending != NULL) {
    fputs (msg.pending->str, msg.log);
    log_flush ();
    g_string_free (msg.pending, TRUE);
    msg.pending = NULL;
  }
  return TRUE;
}

void
train_log_close (void)
{
  if (msg.log != NULL)
    fclose (msg.log);
  msg.log = NULL;
  g_clear_pointer (&msg.log_path, g_free);
  if (msg.pending != NULL)
    g_string_free (msg.pending, TRUE);
  msg.pending = NULL;
}
