/* libFuzzer target: the safetensors parser on bytes from memory. A file
 * that opens must hold only valid UTF-8 names and metadata, and every
 * tensor must read; one that does not must say why in a clean message. */
#include "fuzz-common.h"

#include <fer/safetensors.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  fer_safetensors *st =
      fer_safetensors_open_bytes (data, size, "fuzz.safetensors", &error);
  if (st == NULL) {
    fuzz_check_error (error, "fuzz.safetensors");
    return 0;
  }
  for (int i = 0; i < fer_safetensors_n_tensors (st); i++) {
    const fer_st_tensor *t = fer_safetensors_tensor (st, i);
    if (!g_utf8_validate (t->name, -1, NULL)
        || fer_safetensors_find (st, t->name) != t)
      abort ();
    if (t->dtype != FER_DTYPE_F32 && t->dtype != FER_DTYPE_F16
        && t->dtype != FER_DTYPE_BF16)
      continue;
    /* Bounded by the input: the data area holds every tensor. */
    float *out = g_malloc (MAX (t->numel, 1) * sizeof (float));
    fer_safetensors_read_f32 (st, t, out);
    g_free (out);
  }
  for (const char *const *k = fer_safetensors_metadata_keys (st); k && *k;
       k++) {
    const char *v = fer_safetensors_metadata (st, *k);
    if (v == NULL || !g_utf8_validate (*k, -1, NULL)
        || !g_utf8_validate (v, -1, NULL))
      abort ();
  }
  fer_safetensors_free (st);
  return 0;
}
