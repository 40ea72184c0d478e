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

/* backend=auto: CUDA when this build has it and fer_backend_cuda_new finds
 * the device; only "no device" falls back to the CPU (silently: that is
 * what auto means), any other failure of a present GPU is an error. */
fer_backend *
fer_backend_new (fer_backend_type type, int device_id, int threads,
    fer_backend_type *resolved, GError **error)
{
  switch (type) {
    case FER_BACKEND_CUDA:
    case FER_BACKEND_AUTO:
    case FER_BACKEND_CPU:
      break;
    default:
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "unknown backend %d, expected auto, cpu or cuda", (int) type);
      return NULL;
  }
#if FER_HAVE_CUDA
  if (type != FER_BACKEND_CPU) {
    GError *cuda_error = NULL;
    fer_backend *be = fer_backend_cuda_new (device_id, &cuda_error);
    if (be) {
      if (be->ops->set_threads (be, threads, error)) {
        if (resolved)
          *resolved = FER_BACKEND_CUDA;
        return be;
      }
      fer_backend_free (be);
      return NULL;
    }
    if (type == FER_BACKEND_CUDA
        || !g_error_matches (cuda_error, FER_ERROR, FER_ERROR_NO_DEVICE)) {
      g_propagate_prefixed_error (
          error, cuda_error, "backend=%s: ", fer_backend_type_to_string (type));
      return NULL;
    }
    g_clear_error (&cuda_error);
  }
#else
  if (type == FER_BACKEND_CUDA) {
    g_set_error (error, FER_ERROR, FER_ERROR_NO_DEVICE,
        "backend=cuda requested, but this build of libfernn has no CUDA "
        "backend (use backend=cpu or auto)");
    return NULL;
  }
#endif
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
