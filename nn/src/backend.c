/* Backend selection: the one place that knows which backends exist. */
#include "backend.h"

#include "fer-config.h"

gboolean
fer_have_cuda_build (void)
{
  return FER_HAVE_CUDA;
}

gboolean
fer_backend_type_from_string (const char *s, fer_backend_type *out)
{
  static const char *const names[] = { "auto", "cpu", "cuda" };
  for (guint i = 0; s && i < G_N_ELEMENTS (names); i++) {
    if (g_ascii_strcasecmp (s, names[i]) == 0) {
      *out = (fer_backend_type) i;
      return TRUE;
    }
  }
  return FALSE;
}

const char *
fer_backend_type_to_string (fer_backend_type t)
{
  switch (t) {
    case FER_BACKEND_AUTO:
      return "auto";
    case FER_BACKEND_CPU:
      return "cpu";
    case FER_BACKEND_CUDA:
      return "cuda";
  }
  return "unknown";
}

fer_backend *
fer_backend_new (fer_backend_type type, int device_id, int threads,
    fer_backend_type *resolved, GError **error)
{
  switch (type) {
    case FER_BACKEND_CUDA:
      g_set_error (error, FER_ERROR, FER_ERROR_NO_DEVICE,
          "backend=cuda requested, but this build of libfernn has no CUDA "
          "backend (use backend=cpu or auto)");
      return NULL;
    case FER_BACKEND_AUTO:
    case FER_BACKEND_CPU:
      break;
    default:
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "unknown backend %d, expected auto, cpu or cuda", (int) type);
      return NULL;
  }
  if (resolved)
    *resolved = FER_BACKEND_CPU;
  return fer_backend_cpu_new (threads, error);
}

void
fer_backend_free (fer_backend *be)
{
  if (be)
    be->ops->destroy (be);
}
