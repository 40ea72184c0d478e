/* Shared by the libFuzzer targets: what every error must satisfy, and a
 * scratch file for the loaders that read from a path. */
#ifndef FER_FUZZ_COMMON_H
#define FER_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* A GError from hostile input must be one line of valid UTF-8 that names
 * `subject`; anything else is a finding (abort: libFuzzer saves the input). */
static inline void
fuzz_check_error (GError *error, const char *subject)
{
  if (error == NULL) {
    fprintf (stderr, "failure without a GError\n");
    abort ();
  }
  if (!g_utf8_validate (error->message, -1, NULL)
      || strchr (error->message, '\n') != NULL
      || strstr (error->message, subject) == NULL) {
    fprintf (stderr, "bad error message: %s\n", error->message);
    abort ();
  }
  g_error_free (error);
}

/* The same path on every call, in a private temporary folder made on the
 * first call: the loaders under test take paths. */
static inline const char *
fuzz_write_file (const char *basename, const uint8_t *data, size_t size)
{
  static char *dir;
  static char *path;
  if (dir == NULL) {
    dir = g_dir_make_tmp ("fer-fuzz-XXXXXX", NULL);
    if (dir == NULL)
      abort ();
    path = g_build_filename (dir, basename, NULL);
  }
  if (!g_file_set_contents (path, (const char *) data, (gssize) size, NULL))
    abort ();
  return path;
}

#endif
