/* libfernn: error domain shared by every module, and the library's calling
 * conventions.
 *
 * Library functions never exit or abort on bad input. One return
 * convention: a call that can fail returns gboolean (TRUE on success) and
 * fills a GError in the FER_ERROR domain whose message names the file,
 * tensor or value and what was expected; a constructor (`_new`, `_open`,
 * `_load`) returns the object, or NULL with the GError set. Every `_free`
 * accepts NULL, and every handle has a g_autoptr cleanup. Documented
 * exceptions, all lookups that cannot fail: fer_backend_type_from_string
 * (FALSE for an unknown name), fer_model_label_index (-1),
 * fer_model_label, fer_model_metadata, fer_safetensors_find and
 * fer_safetensors_metadata (NULL when absent) set no GError.
 *
 * Integers: `int` for counts, indices, sizes in pixels and thread counts;
 * `int64_t` for element counts and shapes of tensors and parameters;
 * `size_t` for byte sizes and offsets; `uint64_t` for seeds and random
 * state.
 *
 * Thread safety: fer_error_quark may be called from any thread. */
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
  FER_ERROR_IO,     /* cannot open, read or write a file */
  FER_ERROR_FORMAT, /* a file is malformed (truncated, bad header, bad JSON...) */
  FER_ERROR_MODEL, /* a model file is well-formed but not a model we can run */
  FER_ERROR_INVALID_ARGUMENT, /* a caller passed a value outside the documented range */
  FER_ERROR_UNSUPPORTED, /* a valid request this build cannot serve */
  FER_ERROR_NO_DEVICE,   /* backend=cuda without a usable GPU or CUDA build */
  FER_ERROR_BACKEND,     /* a backend call failed at run time */
  FER_ERROR_NOMEM,       /* an allocation failed */
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
