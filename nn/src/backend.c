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

/* The device backend: FER_CUDA_FAULT's imitation when that is set (in any
 * build), else the CUDA backend where this build has one. */
static fer_backend *
device_backend_new (int device_id, int threads, GError **error)
{
  fer_fault_point fault;

  if (!fer_fault_point_from_env (&fault, error))
    return NULL;
  if (fault != FER_FAULT_NONE)
    return fer_backend_fault_new (fault, threads, error);
#if FER_HAVE_CUDA
  fer_backend *be = fer_backend_cuda_new (device_id, error);
  if (be && !be->ops->set_threads (be, threads, error)) {
    fer_backend_free (be);
    /* a bad thread count is the caller's, not the device's */
    return NULL;
  }
  return be;
#else
  g_set_error (error, FER_ERROR, FER_ERROR_NO_DEVICE,
      "this build of libfernn has no CUDA backend (use backend=cpu or auto)");
  return NULL;
#endif
}

/* backend=auto: the device backend when it starts; "no device" falls back
 * to the CPU silently (that is what auto means); any other failure of a
 * present device falls back with a reason when the caller takes one
 * (fallback), else it is an error. A bad setting of the device (FER_CUDA_FAULT,
 * FER_CUDA_MATH) is an error under auto and cuda (backend=cpu never reads
 * them); bad threads are an error under every backend. */
fer_backend *
fer_backend_new_with_fallback (fer_backend_type type, int device_id,
    int threads, fer_backend_type *resolved, char **fallback, GError **error)
{
  if (fallback)
    *fallback = NULL;
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
  if (type != FER_BACKEND_CPU) {
    GError *dev_error = NULL;
    fer_backend *be = device_backend_new (device_id, threads, &dev_error);
    if (be) {
      if (resolved)
        *resolved = FER_BACKEND_CUDA;
      return be;
    }
    if (g_error_matches (dev_error, FER_ERROR, FER_ERROR_NO_DEVICE)
            ? type == FER_BACKEND_CUDA
            : (!fallback
                || g_error_matches (
                    dev_error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT))) {
      g_propagate_prefixed_error (
          error, dev_error, "backend=%s: ", fer_backend_type_to_string (type));
      return NULL;
    }
    if (g_error_matches (dev_error, FER_ERROR, FER_ERROR_NO_DEVICE))
      g_clear_error (&dev_error);
    else if (!(*fallback = fer_backend_device_failed (
                   type, "to start", dev_error, error)))
      return NULL;
  }
  if (resolved)
    *resolved = FER_BACKEND_CPU;
  return fer_backend_cpu_new (threads, error);
}

fer_backend *
fer_backend_new (fer_backend_type type, int device_id, int threads,
    fer_backend_type *resolved, GError **error)
{
  return fer_backend_new_with_fallback (
      type, device_id, threads, resolved, NULL, error);
}

char *
fer_backend_device_failed (fer_backend_type requested, const char *stage,
    GError *dev_error, GError **error)
{
  char *reason = NULL;
  if (requested != FER_BACKEND_AUTO)
    g_propagate_prefixed_error (error, dev_error,
        "backend=%s: the CUDA backend failed %s: ",
        fer_backend_type_to_string (requested), stage);
  else {
    reason = g_strdup_printf ("the CUDA backend failed %s (%s); running on "
                              "the CPU",
        stage, dev_error->message);
    g_error_free (dev_error);
  }
  return reason;
}

void
fer_backend_selftest_passed (fer_backend *be)
{
  if (be->ops->selftest_passed)
    be->ops->selftest_passed (be);
}

void
fer_backend_free (fer_backend *be)
{
  if (be)
    be->ops->destroy (be);
}
