/* libFuzzer target: fer_model_load from a file (graph recognition, tensor
 * inventory and shapes, metadata: labels, input size, channels, mean/std,
 * stem, crop). A real ResNet-18 is tens of megabytes of weights, far too
 * much to mutate, and its values do not steer the loader: the input is
 *   u32 little-endian data-area size (capped at MAX_DATA) + JSON header
 * and the file written is the safetensors layout (u64 header length, the
 * header, the data area), its data area added by ftruncate as a sparse run
 * of zeros, so each input costs a few kilobytes of writing. A model that
 * loads must have sane labels and classify one small image; a refusal must
 * be a clean one-line message naming the file. */
#include "fuzz-common.h"

#include <fcntl.h>
#include <math.h>
#include <unistd.h>

#include <fer/fer.h>

/* Above the largest ResNet-18 that fits (F32, 7 classes: about 45 MB). */
#define MAX_DATA (48u << 20)
/* Classifying at fer.input_size up to 1024 would take seconds per input:
 * only models whose input is at most this are run (the load and its
 * checks cover the rest). */
#define MAX_CLASSIFY_SIZE 64

static const char *
write_model (const uint8_t *data, size_t size)
{
  static char *path;
  if (path == NULL) {
    char *dir = g_dir_make_tmp ("fer-fuzz-XXXXXX", NULL);
    if (dir == NULL)
      abort ();
    path = g_build_filename (dir, "model.safetensors", NULL);
    g_free (dir);
  }
  uint32_t data_size = 0;
  memcpy (&data_size, data, 4);
  data_size = GUINT32_FROM_LE (data_size) % (MAX_DATA + 1);
  guint64 header_len = GUINT64_TO_LE ((guint64) (size - 4));
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || write (fd, &header_len, 8) != 8
      || write (fd, data + 4, size - 4) != (ssize_t) (size - 4)
      || ftruncate (fd, (off_t) (8 + (size - 4) + data_size)) != 0
      || close (fd) != 0)
    abort ();
  return path;
}

static void
check_model (fer_model *m)
{
  int n = fer_model_n_classes (m);
  if (n < 2 || fer_model_label (m, n) != NULL)
    abort ();
  for (int i = 0; i < n; i++) {
    const char *label = fer_model_label (m, i);
    if (label == NULL || label[0] == '\0' || !g_utf8_validate (label, -1, NULL)
        || fer_model_label_index (m, label) < 0)
      abort ();
  }
  const fer_input_spec *spec = fer_model_input_spec (m);
  if (spec->channels != fer_model_arch (m).channels
      || (spec->channels != 1 && spec->channels != 3) || spec->size < 8
      || spec->size > fer_model_input_size (m))
    abort ();
  for (int c = 0; c < spec->channels; c++)
    if (!isfinite (spec->mean[c]) || !(spec->std[c] > 0.0f))
      abort ();
  if (spec->size > MAX_CLASSIFY_SIZE)
    return;

  guint8 pixels[6 * 5];
  for (guint i = 0; i < sizeof pixels; i++)
    pixels[i] = (guint8) (i * 41);
  fer_image img = { FER_PIXEL_GRAY8, 6, 5, { pixels }, { 6 }, TRUE };
  float *probs = g_new (float, n);
  GError *error = NULL;
  if (!fer_model_classify_images (m, &img, 1, 1, probs, &error)) {
    fprintf (stderr, "classify failed: %s\n", error->message);
    abort ();
  }
  /* Zero weights give uniform logits: any probability will do, as long as
   * it is one (NaN fails the comparison). */
  double sum = 0.0;
  for (int i = 0; i < n; i++)
    sum += probs[i];
  if (!(fabs (sum - 1.0) < 1e-3))
    abort ();
  g_free (probs);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 4)
    return 0;
  GError *error = NULL;
  const char *path = write_model (data, size);
  fer_model_options opts;
  fer_model_options_init (&opts);
  opts.backend = FER_BACKEND_CPU;
  opts.threads = 1;
  fer_model *m = fer_model_load (path, &opts, &error);
  if (m == NULL) {
    fuzz_check_error (error, path);
    return 0;
  }
  check_model (m);
  fer_model_free (m);
  return 0;
}
