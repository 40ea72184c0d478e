/* Image-folder trees (contract in imagefolder.h). */
#include "imagefolder.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>

#include <fer/fer.h>

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Entry names of a directory, sorted, without hidden ones. */
static GPtrArray *
sorted_entries (const char *path, GError **error)
{
  DIR *dir = opendir (path);
  if (dir == NULL) {
    int e = errno;
    g_autofree char *q = fer_text_quote (path, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_IO, "cannot read directory %s: %s",
        q, g_strerror (e));
    return NULL;
  }
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  const struct dirent *entry;
  while ((entry = readdir (dir)) != NULL)
    if (entry->d_name[0] != '.')
      g_ptr_array_add (names, g_strdup (entry->d_name));
  closedir (dir);
  g_ptr_array_sort (names, compare_names);
  return names;
}

static gboolean
is_image_name (const char *name)
{
  const char *dot = strrchr (name, '.');
  return dot != NULL
      && (g_ascii_strcasecmp (dot, ".jpg") == 0
          || g_ascii_strcasecmp (dot, ".jpeg") == 0
          || g_ascii_strcasecmp (dot, ".png") == 0);
}

GPtrArray *
fer_image_folder_labels (const char *root, GError **error)
{
  GPtrArray *entries = sorted_entries (root, error);
  if (entries == NULL)
    return NULL;
  GPtrArray *folders = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < entries->len; i++) {
    g_autofree char *dir = g_build_filename (root, entries->pdata[i], NULL);
    if (g_file_test (dir, G_FILE_TEST_IS_DIR))
      g_ptr_array_add (folders, g_strdup (entries->pdata[i]));
  }
  g_ptr_array_unref (entries);
  return folders;
}

gboolean
fer_image_folder_files (const char *dir, GPtrArray *paths, GError **error)
{
  g_autoptr (GPtrArray) names = sorted_entries (dir, error);
  if (names == NULL)
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    if (is_image_name (names->pdata[i]))
      g_ptr_array_add (paths, g_build_filename (dir, names->pdata[i], NULL));
  return TRUE;
}
