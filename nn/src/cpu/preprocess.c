/* The CPU backend's preprocess op: a batch of views of one frame into the
 * network's NHWC input, each view through fer_preprocess (nn/src/
 * preprocess.c; the CUDA backend's op reproduces it on the device) and,
 * with colour input, from its planar (NCHW) output into the batch. Then
 * the backend table's entry, which keeps fer_preprocess's scratch and the
 * planar view in the backend so that a steady stream of frames allocates
 * nothing. */
#include "cpu/backend_cpu.h"
#include "preprocess-private.h"

gboolean
fer_cpu_preprocess (float *out, float *planar, const fer_image *img,
    const fer_view *views, int n, const fer_input_spec *spec,
    fer_scratch *scratch, GError **error)
{
  const int C = spec->channels;
  const size_t plane = (size_t) spec->size * spec->size;

  for (int v = 0; v < n; v++) {
    float *nhwc = out + (size_t) v * plane * C;
    if (!fer_preprocess (
            img, &views[v], spec, C > 1 ? planar : nhwc, scratch, error))
      return FALSE;
    if (C > 1)
      for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < C; c++)
          nhwc[p * C + c] = planar[c * plane + p];
  }
  return TRUE;
}

/* cpu->planar, grown for a colour batch of spec; the arguments are
 * checked first, since the spec sizes it (fer_preprocess checks them again
 * per view). */
static gboolean
prepare_planar (cpu_backend *cpu, const fer_image *img, const fer_view *view,
    const fer_input_spec *spec, GError **error)
{
  size_t floats;

  if (!fer_preprocess_validate (img, view, spec, error))
    return FALSE;
  floats = (size_t) spec->channels * spec->size * spec->size;
  if (spec->channels == 1 || floats <= cpu->planar_floats)
    return TRUE;
  /* nothing in it to keep */
  g_free (cpu->planar);
  cpu->planar_floats = 0;
  if (!(cpu->planar = g_try_new (float, floats))) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "cpu backend: cannot allocate a %dx%dx%d view", spec->channels,
        spec->size, spec->size);
    return FALSE;
  }
  cpu->planar_floats = floats;
  return TRUE;
}

gboolean
fer_cpu_op_preprocess (fer_backend *be, float *out, const fer_image *img,
    const fer_view *views, int n, const fer_input_spec *spec, GError **error)
{
  cpu_backend *cpu = (cpu_backend *) be;

  return n <= 0
      || (prepare_planar (cpu, img, views, spec, error)
          && fer_cpu_preprocess (
              out, cpu->planar, img, views, n, spec, cpu->preprocess, error));
}
