/* libFuzzer target: the image-folder walker (nn/tools/imagefolder.c) and
 * the folder loader that makes labels of its names (nn/tools/dataset.c).
 * The input describes a small tree, made afresh in a private temporary
 * folder, walked, and removed:
 *   flags byte (bit 0: given labels instead of the folder names, bit 1:
 *   three channels), then entries "path\0kind": path is '/'-separated
 *   names (any bytes but '/' and NUL: invalid UTF-8, dot files, commas,
 *   names up to NAME_MAX; "." and ".." are left out), every name but the
 *   last a folder; the last is a folder when kind is 0, else a file whose
 *   contents kind picks (empty, a gray PNG, an RGB PNG, a few bytes).
 * Checks: every message (error or skipped image) is one line of UTF-8
 * naming the tree; a dataset that loads has UTF-8 labels without commas,
 * as many as its classes, and counts that add up. */
#include "fuzz-common.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "dataset.h"
#include "imagefolder.h"
#include "imageio.h"

#define MAX_ENTRIES 24

static char *root;
static char *png_gray, *png_rgb;
static gsize png_gray_len, png_rgb_len;

static void
make_png (
    const char *dir, fer_pixel_format format, int bpp, char **out, gsize *len)
{
  guint8 pixels[5 * 4 * 3];
  for (guint i = 0; i < sizeof pixels; i++)
    pixels[i] = (guint8) (i * 53);
  fer_image img = { format, 5, 4, { pixels }, { 5 * bpp }, TRUE };
  char *path = g_build_filename (dir, "seed.png", NULL);
  if (!fer_png_write (path, &img, NULL)
      || !g_file_get_contents (path, out, len, NULL))
    abort ();
  g_unlink (path);
  g_free (path);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  char *dir = g_dir_make_tmp ("fer-fuzz-XXXXXX", NULL);
  if (dir == NULL)
    abort ();
  root = g_build_filename (dir, "tree", NULL);
  make_png (dir, FER_PIXEL_GRAY8, 1, &png_gray, &png_gray_len);
  make_png (dir, FER_PIXEL_RGB, 3, &png_rgb, &png_rgb_len);
  g_free (dir);
  return 0;
}

/* Removes everything under the folder fd dir refers to (and closes it). */
static void
remove_below (int dir)
{
  DIR *d = fdopendir (dir);
  if (d == NULL)
    abort ();
  const struct dirent *e;
  while ((e = readdir (d)) != NULL) {
    if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
      continue;
    if (unlinkat (dirfd (d), e->d_name, 0) == 0)
      continue;
    int sub = openat (dirfd (d), e->d_name, O_RDONLY | O_DIRECTORY);
    if (sub < 0)
      abort ();
    remove_below (sub);
    if (unlinkat (dirfd (d), e->d_name, AT_REMOVEDIR) != 0)
      abort ();
    /* the listing changed under readdir: start again */
    rewinddir (d);
  }
  closedir (d);
}

static void
write_contents (const char *path, guint8 kind)
{
  const char *bytes = "";
  gsize len = 0;
  switch (kind % 4) {
    case 1:
      bytes = png_gray;
      len = png_gray_len;
      break;
    case 2:
      bytes = png_rgb;
      len = png_rgb_len;
      break;
    case 3:
      bytes = "\x89PNG\r\n\x1a\n\xff\xd8\xff";
      len = kind % 12;
      break;
  }
  /* a name that exists as a folder already: left as it is */
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return;
  if (write (fd, bytes, len) != (ssize_t) len)
    abort ();
  close (fd);
}

/* Creates one entry; path is NUL-terminated, kind as above. */
static void
make_entry (const char *path, guint8 kind)
{
  char **names = g_strsplit (path, "/", -1);
  GString *p = g_string_new (root);
  guint n = g_strv_length (names);
  for (guint i = 0; i < n; i++) {
    const char *name = names[i];
    if (name[0] == '\0' || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
      continue;
    g_string_append_c (p, '/');
    g_string_append_len (p, name, MIN (strlen (name), 255));
    if (i + 1 < n || kind == 0)
      mkdir (p->str, 0700); /* may exist, or be a file: fine */
    else
      write_contents (p->str, kind);
  }
  g_string_free (p, TRUE);
  g_strfreev (names);
}

static void
check_message (const char *message)
{
  if (!g_utf8_validate (message, -1, NULL) || strchr (message, '\n') != NULL
      || strstr (message, root) == NULL) {
    fprintf (stderr, "bad message: %s\n", message);
    abort ();
  }
}

static void
skipped (const char *message, gpointer user_data)
{
  /* the counted-not-listed notice names nothing */
  if (strstr (message, "more skipped") == message)
    return;
  check_message (message);
}

static void
walk (gboolean given_labels, int channels)
{
  GError *error = NULL;
  /* the walker itself: sorted, no hidden entries */
  GPtrArray *labels = fer_image_folder_labels (root, &error);
  if (labels == NULL)
    abort ();
  for (guint i = 0; i < labels->len; i++) {
    const char *name = labels->pdata[i];
    if (name[0] == '.' || (i > 0 && strcmp (labels->pdata[i - 1], name) >= 0))
      abort ();
    char *dir = g_build_filename (root, name, NULL);
    GPtrArray *paths = g_ptr_array_new_with_free_func (g_free);
    if (!fer_image_folder_files (dir, paths, &error))
      abort ();
    g_ptr_array_unref (paths);
    g_free (dir);
  }
  g_ptr_array_unref (labels);

  /* the loader, with labels from the folder names or given */
  static const char *const given[] = { "angry", "happy", "caf\xc3\xa9", NULL };
  const fer_dataset_callbacks cb = { skipped, NULL, NULL };
  fer_dataset *d = fer_dataset_load_folder (root, given_labels ? given : NULL,
      "model given.safetensors", 8, channels, &cb, &error);
  if (d == NULL) {
    fuzz_check_error (error, root);
    return;
  }
  if (d->n_classes < 1 || g_strv_length (d->labels) != (guint) d->n_classes)
    abort ();
  for (int c = 0; c < d->n_classes; c++)
    if (!g_utf8_validate (d->labels[c], -1, NULL)
        || strchr (d->labels[c], ',') != NULL)
      abort ();
  int64_t total = 0;
  for (int c = 0; c < d->n_classes; c++)
    total += d->counts[c];
  if (total != d->n || d->n < 1)
    abort ();
  for (int i = 0; i < d->n; i++)
    if (d->y[i] < 0 || d->y[i] >= d->n_classes)
      abort ();
  fer_dataset_free (d);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  guint8 flags = data[0];
  if (mkdir (root, 0700) != 0)
    abort ();
  size_t i = 1;
  for (int entries = 0; i < size && entries < MAX_ENTRIES; entries++) {
    const uint8_t *nul = memchr (data + i, 0, size - i);
    size_t len = nul ? (size_t) (nul - (data + i)) : size - i;
    char *path = g_strndup ((const char *) data + i, len);
    i += len + 1;
    guint8 kind = i < size ? data[i] : 1;
    i++;
    make_entry (path, kind);
    g_free (path);
  }
  walk (flags & 1, flags & 2 ? 3 : 1);
  int fd = open (root, O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    abort ();
  remove_below (fd);
  if (rmdir (root) != 0)
    abort ();
  return 0;
}
