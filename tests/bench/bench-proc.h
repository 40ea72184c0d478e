/* What the benchmarks read about their own process. */
#ifndef FER_BENCH_PROC_H
#define FER_BENCH_PROC_H

#include <stdlib.h>
#include <string.h>

#include <glib.h>

/* kB of a /proc/self/status field ("VmRSS:", "VmHWM:"), or -1. */
static inline glong
status_kb (const gchar *field)
{
  gchar *text = NULL, *p;
  glong kb = -1;

  if (g_file_get_contents ("/proc/self/status", &text, NULL, NULL)
      && (p = strstr (text, field)))
    kb = atol (p + strlen (field) + 1);
  g_free (text);
  return kb;
}

#endif
