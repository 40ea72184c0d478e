/* fer-train's data: labelled images decoded once into memory.
 *
 * Sources: an image-folder tree ROOT/<label>/<image> (JPEG or PNG), or the
 * original fer2013.csv (columns emotion, pixels, Usage in any order; 48x48
 * gray pixels as 2304 space-separated numbers). Every image is stored as
 * size x size x channels uint8, interleaved (a fer_image GRAY8 or RGB with
 * stride size * channels): images of another size are resized whole with
 * fer_preprocess (bilinear, antialiased when shrinking), colour becomes
 * luma for one channel and gray is replicated for three.
 *
 * Labels: a folder tree without given labels takes its sorted folder names;
 * given labels (a resumed run's checkpoint, the training set's labels for a
 * validation tree, a --init model's) fix the order, and a folder that is not
 * one of them is an error. FER2013's emotion numbers (0 Angry, 1 Disgust,
 * 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral) map to the alphabetical
 * folder labels angry, disgust, fear, happy, neutral, sad, surprise.
 *
 * Bad input: a missing or unreadable root, a tree without label folders, a
 * label folder without images, a CSV without its header, are errors naming
 * the path (and line). An unreadable image or a bad CSV row is reported
 * through the callbacks, counted and skipped; a CSV with more than 10 bad
 * rows that are also more than 1% of its rows is refused (it is probably not
 * fer2013.csv), and a class left without images is an error. */
#ifndef FER_TOOLS_DATASET_H
#define FER_TOOLS_DATASET_H

#include <stdint.h>
#include <fer/fer.h>

G_BEGIN_DECLS

typedef struct
{
  char *source;       /* where the images came from, for reports */
  int size, channels; /* of every stored image */
  int n_classes;
  char **labels;   /* n_classes names, NULL-terminated */
  int n;           /* images */
  uint8_t *pixels; /* n x size x size x channels */
  int *y;          /* n labels */
  int64_t *counts; /* n_classes: images per class */
  int n_skipped;   /* unreadable images or bad rows */
} fer_dataset;

/* What the loaders report while they work; every member may be NULL. */
typedef struct
{
  /* An image or row that was skipped, with why (names the file or line). */
  void (*skipped) (const char *message, gpointer user_data);
  /* Decoding progress: `done` of `total` files or rows so far. */
  void (*progress) (
      const char *what, gint64 done, gint64 total, gpointer user_data);
  gpointer user_data;
} fer_dataset_callbacks;

/* The FER2013 labels in alphabetical (= folder) order. */
extern const char *const fer_dataset_fer2013_labels[8];

/* labels: NULL for the sorted folder names, or the labels to use;
 * labels_origin says where given labels come from ("model m.safetensors")
 * for the message about an unknown folder. */
fer_dataset *fer_dataset_load_folder (const char *root,
    const char *const *labels, const char *labels_origin, int size,
    int channels, const fer_dataset_callbacks *cb, GError **error);

/* Reads fer2013.csv: Training rows into *train and PublicTest rows into
 * *val (PrivateTest rows are left out for a final test). Without a Usage
 * column every row is a training row and *val is NULL. labels as for
 * fer_dataset_load_folder: NULL means the FER2013 labels, given labels must
 * contain all seven names. */
gboolean fer_dataset_load_csv (const char *path, const char *const *labels,
    const char *labels_origin, int size, int channels,
    const fer_dataset_callbacks *cb, fer_dataset **train, fer_dataset **val,
    GError **error);

/* Moves round(fraction * count) images of every class (at least one where a
 * class has two or more) out of d into a new validation set, chosen by a
 * seeded shuffle; d keeps the rest in its original order. Fails when the
 * split would leave the training set without an image of some class. */
fer_dataset *fer_dataset_split (
    fer_dataset *d, double fraction, uint64_t seed, GError **error);

void fer_dataset_free (fer_dataset *d);

static inline const uint8_t *
fer_dataset_image (const fer_dataset *d, int i)
{
  return d->pixels + (size_t) i * d->size * d->size * d->channels;
}

/* Image i as a fer_image (no copy). */
fer_image fer_dataset_fer_image (const fer_dataset *d, int i);

/* FNV-1a over labels, images and classes: two loads of the same data give
 * the same value, so a resumed run can tell that its data changed. */
uint64_t fer_dataset_fingerprint (const fer_dataset *d);

G_END_DECLS

#endif
