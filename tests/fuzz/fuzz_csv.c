/* libFuzzer target: the fer2013.csv reader (nn/tools/dataset.c) on a file
 * of fuzzed bytes: either a dataset whose counts add up, or a clean message
 * naming the file. */
#include "fuzz-common.h"

#include "dataset.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  fer_dataset *train = NULL, *val = NULL;
  const char *path = fuzz_write_file ("fer2013.csv", data, size);
  if (!fer_dataset_load_csv (
          path, NULL, NULL, 8, 1, NULL, &train, &val, &error)) {
    if (train != NULL || val != NULL)
      abort ();
    fuzz_check_error (error, path);
    return 0;
  }
  if (train == NULL)
    abort ();
  int64_t total = 0;
  for (int c = 0; c < train->n_classes; c++)
    total += train->counts[c];
  if (total != train->n)
    abort ();
  for (int i = 0; i < train->n; i++)
    if (train->y[i] < 0 || train->y[i] >= train->n_classes)
      abort ();
  fer_dataset_free (train);
  fer_dataset_free (val);
  return 0;
}
