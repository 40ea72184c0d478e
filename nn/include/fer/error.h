/* libfernn: error domain shared by every module.
 *
 * Library functions never exit or abort on bad input: they return FALSE / NULL
 * (or a negative status) and fill a GError in the FER_ERROR domain whose
 * message names the file, tensor or value and what was expected. */
#ifndef FER_ERROR_H
#define FER_ERROR_H

#include <glib.h>

G_BEGIN_DECLS

#if defined(FER_BUILDING_LIBRARY)
#define FER_API __attribute__ ((visibility ("default")))
#else
#define FER_API
#endif

#define FER_ERROR (fer_error_quark ())

typedef enum
{
  FER_ERROR_IO,               /* cannot open, read or write a file */
  FER_ERROR_FORMAT,           /* a file is malformed (truncated, bad header, bad JSON...) */
  FER_ERROR_MODEL,            /* a model file is well-formed but not a model we can run */
  FER_ERROR_INVALID_ARGUMENT, /* a caller passed a value outside the documented range */
  FER_ERROR_UNSUPPORTED,      /* a valid request this build cannot serve */
  FER_ERROR_NO_DEVICE,        /* backend=cuda without a usable GPU or CUDA build */
  FER_ERROR_BACKEND,          /* a backend call failed at run time */
  FER_ERROR_NOMEM,            /* an allocation failed */
} fer_error_code;

FER_API GQuark fer_error_quark (void);

/* `s` made safe to show in a one-line message, a GError, a GstStructure
 * string or JSON: always valid UTF-8. Valid characters are kept, control
 * characters become '?', and every byte that is not part of a valid UTF-8
 * character (stray continuation bytes, a sequence cut short at the end,
 * encoded surrogates) is written as \xNN. Reads `s` only up to its NUL.
 * With max_chars > 0, at most that many characters are kept and "..."
 * marks a cut. NULL gives "(null)". g_free the result. */
FER_API char *fer_text_quote (const char *s, int max_chars);

G_END_DECLS

#endif
