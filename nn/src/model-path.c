/* Model names: "fast", "accurate" or an installed model's file name without
 * .safetensors, found in $FER_MODEL_PATH's folders, then in the installed
 * models folder (contract in fer/model.h). */
#include <stdlib.h>
#include <string.h>

#include "fer-config.h"
#include <fer/model.h>

#define MODEL_SUFFIX ".safetensors"

/* The names that stand for a shipped model's file. */
static const struct
{
  const char *name;
  const char *file_stem;
} model_aliases[] = {
  { "fast", "feremotion-resnet18-fer2013" },
  { "accurate", "feremotion-resnet18-fer2013-accurate" },
};

char **
fer_model_search_path (void)
{
  GPtrArray *dirs = g_ptr_array_new ();
  const char *env = g_getenv ("FER_MODEL_PATH");

  if (env != NULL) {
    g_auto (GStrv) parts = g_strsplit (env, G_SEARCHPATH_SEPARATOR_S, -1);
    for (char **p = parts; *p != NULL; p++)
      if (**p != '\0')
        g_ptr_array_add (dirs, g_strdup (*p));
  }
  g_ptr_array_add (dirs, g_strdup (FER_DATADIR));
  g_ptr_array_add (dirs, NULL);
  return (char **) g_ptr_array_free (dirs, FALSE);
}

/* DIR/STEM.safetensors in the first folder of dirs that has it, or NULL. */
static char *
find_model_file (char *const *dirs, const char *stem)
{
  g_autofree char *file = g_strconcat (stem, MODEL_SUFFIX, NULL);
  for (char *const *d = dirs; *d != NULL; d++) {
    char *path = g_build_filename (*d, file, NULL);
    if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
      return path;
    g_free (path);
  }
  return NULL;
}

static gboolean
is_model_path (const char *model)
{
  return strchr (model, '/') != NULL || g_str_has_suffix (model, MODEL_SUFFIX);
}

static const char *
alias_file_stem (const char *name)
{
  for (size_t i = 0; i < G_N_ELEMENTS (model_aliases); i++)
    if (strcmp (model_aliases[i].name, name) == 0)
      return model_aliases[i].file_stem;
  return name;
}

static int
compare_strings (const void *a, const void *b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

char **
fer_model_names (void)
{
  g_auto (GStrv) dirs = fer_model_search_path ();
  GPtrArray *names = g_ptr_array_new ();
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);

  for (size_t i = 0; i < G_N_ELEMENTS (model_aliases); i++) {
    g_autofree char *path = find_model_file (dirs, model_aliases[i].file_stem);
    if (path != NULL)
      g_ptr_array_add (names, g_strdup (model_aliases[i].name));
  }
  guint n_aliases = names->len;
  for (char **d = dirs; *d != NULL; d++) {
    g_autoptr (GDir) dir = g_dir_open (*d, 0, NULL);
    const char *entry;
    while (dir != NULL && (entry = g_dir_read_name (dir)) != NULL) {
      if (!g_str_has_suffix (entry, MODEL_SUFFIX)
          || strlen (entry) == strlen (MODEL_SUFFIX))
        continue;
      char *name = g_strndup (entry, strlen (entry) - strlen (MODEL_SUFFIX));
      if (g_hash_table_contains (seen, name)) {
        g_free (name);
        continue;
      }
      g_hash_table_add (seen, name);
      g_ptr_array_add (names, name);
    }
  }
  /* aliases first, in their order; then file names, sorted (pdata is
   * NULL while the array is empty) */
  if (names->len > n_aliases)
    qsort (names->pdata + n_aliases, names->len - n_aliases, sizeof (gpointer),
        compare_strings);
  g_ptr_array_add (names, NULL);
  return (char **) g_ptr_array_free (names, FALSE);
}

char *
fer_model_find (const char *model, GError **error)
{
  if (model == NULL || *model == '\0') {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "no model given: expected a model name (e.g. \"%s\") or a "
        ".safetensors file",
        FER_MODEL_DEFAULT);
    return NULL;
  }
  if (is_model_path (model))
    return g_strdup (model);

  g_auto (GStrv) dirs = fer_model_search_path ();
  char *path = find_model_file (dirs, alias_file_stem (model));
  if (path != NULL)
    return path;
  /* `--model face.png` in the folder of face.png: the file, so that the
   * error says what is wrong with it */
  if (g_file_test (model, G_FILE_TEST_IS_REGULAR))
    return g_strdup (model);

  g_auto (GStrv) names = fer_model_names ();
  /* folder and file names are bytes: shown as valid UTF-8 */
  g_autofree char *dirs_joined = g_strjoinv (G_SEARCHPATH_SEPARATOR_S, dirs);
  g_autofree char *names_joined = g_strjoinv (", ", names);
  g_autofree char *where = fer_text_quote (dirs_joined, 0);
  g_autofree char *known = fer_text_quote (names_joined, 0);
  g_autofree char *safe_model = fer_text_quote (model, 0);
  g_set_error (error, FER_ERROR, FER_ERROR_IO,
      "model \"%s\": no %s%s in %s (FER_MODEL_PATH, then the installed "
      "models); %s%s",
      safe_model, alias_file_stem (safe_model), MODEL_SUFFIX, where,
      names[0] != NULL ? "models there: " : "no models there",
      names[0] != NULL ? known : "");
  return NULL;
}
