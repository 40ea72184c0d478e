/* libFuzzer target: the packed dataset reader (nn/tools/packfile.c) on
 * fuzzed bytes, each set name the seeds use: either a dataset whose counts
 * and labels add up, or a clean message naming the file. */
#include "fuzz-common.h"

#include "packfile.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const names[] = { "train", "publictest" };
  for (size_t s = 0; s < G_N_ELEMENTS (names); s++) {
    GError *error = NULL;
    fer_dataset *d = fer_pack_parse (
        data, size, "fuzz.ferpack", names[s], NULL, NULL, &error);
    if (d == NULL) {
      fuzz_check_error (error, "fuzz.ferpack");
      continue;
    }
    int64_t total = 0;
    for (int c = 0; c < d->n_classes; c++)
      total += d->counts[c];
    if (total != d->n)
      abort ();
    for (int i = 0; i < d->n; i++)
      if (d->y[i] < 0 || d->y[i] >= d->n_classes)
        abort ();
    fer_dataset_free (d);
  }
  return 0;
}
