/* Progress on stderr (contract in progress.h). */
#include "progress.h"

#include <unistd.h>

void
fer_progress_init (fer_progress *p, gint64 total)
{
  p->tty = isatty (STDERR_FILENO);
  p->total = total;
  p->last_tenth = 0;
}

int
fer_progress_next_tenth (fer_progress *p, gint64 done)
{
  int tenth = (int) (done * 10 / MAX (p->total, 1));
  if (tenth <= p->last_tenth)
    return 0;
  p->last_tenth = tenth;
  return tenth;
}

char *
fer_progress_bar (const fer_progress *p, gint64 done, int width)
{
  int filled = (int) (done * width / MAX (p->total, 1));
  GString *s = g_string_sized_new (width + 2);
  g_string_append_c (s, '[');
  for (int i = 0; i < width; i++)
    g_string_append_c (s, i < filled ? '#' : ' ');
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}
