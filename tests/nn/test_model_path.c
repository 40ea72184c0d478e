/* Model names (fer_model_find, fer_model_names, fer_model_search_path)
 * through the public API: a name is found in $FER_MODEL_PATH's folders in
 * their order, then in the installed folder; "fast" and "accurate" stand
 * for the shipped files; a path is used as is; a name that matches nothing
 * is an error that names the folders and lists the names that exist. */
#include <string.h>
#include <glib/gstdio.h>

#include <fer/fer.h>
#include "fer-config.h"

typedef struct
{
  char *root, *a, *b;
} Folders;

static void
touch (const char *dir, const char *file)
{
  g_autofree char *path = g_build_filename (dir, file, NULL);
  g_assert_true (g_file_set_contents (path, "", 0, NULL));
}

/* a/ holds x; b/ holds x, y and the fast model's file; a file without the
 * suffix is no model. */
static void
folders_init (Folders *f)
{
  f->root = g_dir_make_tmp ("model-path-XXXXXX", NULL);
  g_assert_nonnull (f->root);
  f->a = g_build_filename (f->root, "a", NULL);
  f->b = g_build_filename (f->root, "b", NULL);
  g_assert_cmpint (g_mkdir (f->a, 0700), ==, 0);
  g_assert_cmpint (g_mkdir (f->b, 0700), ==, 0);
  touch (f->a, "x.safetensors");
  touch (f->b, "x.safetensors");
  touch (f->b, "y.safetensors");
  touch (f->b, "feremotion-resnet18-fer2013.safetensors");
  touch (f->b, "notes.txt");
}

static void
folders_clear (Folders *f)
{
  const char *files[] = { "a/x.safetensors", "b/x.safetensors",
    "b/y.safetensors", "b/feremotion-resnet18-fer2013.safetensors",
    "b/notes.txt", "a", "b" };
  for (size_t i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *p = g_build_filename (f->root, files[i], NULL);
    g_remove (p);
  }
  g_rmdir (f->root);
  g_free (f->a);
  g_free (f->b);
  g_free (f->root);
}

static void
set_path (const char *first, const char *second)
{
  g_autofree char *v = g_strjoin (":", first, "", second, NULL);
  g_setenv ("FER_MODEL_PATH", v, TRUE); /* the empty entry is skipped */
}

static void
assert_found (const char *name, const char *dir, const char *file)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *want = g_build_filename (dir, file, NULL);
  g_autofree char *got = fer_model_find (name, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got, ==, want);
}

static void
test_name_found_in_order (void)
{
  Folders f;
  folders_init (&f);

  set_path (f.a, f.b);
  assert_found ("x", f.a, "x.safetensors");
  assert_found ("y", f.b, "y.safetensors");
  assert_found ("fast", f.b, "feremotion-resnet18-fer2013.safetensors");
  assert_found ("feremotion-resnet18-fer2013", f.b,
      "feremotion-resnet18-fer2013.safetensors");
  /* the first folder that has it wins */
  set_path (f.b, f.a);
  assert_found ("x", f.b, "x.safetensors");

  /* the search path: FER_MODEL_PATH's folders, then the installed one */
  g_auto (GStrv) dirs = fer_model_search_path ();
  g_assert_cmpuint (g_strv_length (dirs), ==, 3);
  g_assert_cmpstr (dirs[0], ==, f.b);
  g_assert_cmpstr (dirs[1], ==, f.a);
  g_assert_cmpstr (dirs[2], ==, FER_DATADIR);
  g_unsetenv ("FER_MODEL_PATH");
  folders_clear (&f);
}

static void
test_names (void)
{
  Folders f;
  folders_init (&f);
  set_path (f.a, f.b);

  /* aliases whose file exists first, then file names sorted, once each;
   * "accurate" is missing: its file is not there */
  g_auto (GStrv) names = fer_model_names ();
  g_autofree char *joined = g_strjoinv (",", names);
  g_assert_true (
      g_str_has_prefix (joined, "fast,feremotion-resnet18-fer2013,x,y"));
  g_assert_false (g_strv_contains ((const char *const *) names, "accurate"));
  g_assert_false (g_strv_contains ((const char *const *) names, "notes.txt"));

  g_unsetenv ("FER_MODEL_PATH");
  folders_clear (&f);
}

static void
test_name_missing (void)
{
  Folders f;
  folders_init (&f);
  set_path (f.a, f.b);

  const char *missing[] = { "nosuch", "accurate" };
  for (size_t i = 0; i < G_N_ELEMENTS (missing); i++) {
    g_autoptr (GError) error = NULL;
    g_assert_null (fer_model_find (missing[i], &error));
    g_assert_error (error, FER_ERROR, FER_ERROR_IO);
    g_test_message ("%s: %s", missing[i], error->message);
    g_assert_nonnull (strstr (error->message, missing[i]));
    g_assert_nonnull (strstr (error->message, f.a));
    g_assert_nonnull (strstr (error->message, f.b));
    g_assert_nonnull (strstr (error->message, FER_DATADIR));
    g_assert_nonnull (strstr (error->message,
        "models there: fast, feremotion-resnet18-fer2013, x, y"));
  }

  /* nothing installed anywhere: said so */
  g_setenv ("FER_MODEL_PATH", f.root, TRUE);
  g_autoptr (GError) error = NULL;
  g_autofree char *none = fer_model_find ("fast", &error);
  if (!g_file_test (FER_DATADIR, G_FILE_TEST_IS_DIR)) {
    g_assert_null (none);
    g_assert_nonnull (strstr (error->message, "no models there"));
  }

  g_unsetenv ("FER_MODEL_PATH");
  folders_clear (&f);
}

static void
test_path_as_is (void)
{
  const char *paths[] = { "x.safetensors", "dir/x", "./fast",
    "/nonexistent/m.safetensors" };
  g_setenv ("FER_MODEL_PATH", "/nonexistent", TRUE);
  for (size_t i = 0; i < G_N_ELEMENTS (paths); i++) {
    g_autoptr (GError) error = NULL;
    g_autofree char *got = fer_model_find (paths[i], &error);
    g_assert_no_error (error);
    g_assert_cmpstr (got, ==, paths[i]);
  }
  /* a name that is no model but an existing file: the file (the loader
   * then says what it is not) */
  g_autofree char *dir = g_dir_make_tmp ("model-path-XXXXXX", NULL);
  g_autofree char *cwd = g_get_current_dir ();
  g_assert_cmpint (g_chdir (dir), ==, 0);
  touch (".", "face.png");
  g_autofree char *file = fer_model_find ("face.png", NULL);
  g_assert_cmpstr (file, ==, "face.png");
  g_remove ("face.png");
  g_assert_cmpint (g_chdir (cwd), ==, 0);
  g_rmdir (dir);

  g_autoptr (GError) error = NULL;
  g_assert_null (fer_model_find ("", &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_null (fer_model_find (NULL, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_unsetenv ("FER_MODEL_PATH");
}

/* Folder, file and model names are bytes: the error that lists them shows
 * each as valid UTF-8, its other bytes as \xNN. */
static void
test_names_not_utf8 (void)
{
  g_autofree char *root = g_dir_make_tmp ("model-path-XXXXXX", NULL);
  g_autofree char *dir = g_build_filename (root, "caf\xE9", NULL);
  g_assert_cmpint (g_mkdir (dir, 0700), ==, 0);
  touch (dir,
      "b\xFF"
      "ad.safetensors");
  g_setenv ("FER_MODEL_PATH", dir, TRUE);

  g_autoptr (GError) error = NULL;
  g_assert_null (fer_model_find ("n\xFE"
                                 "o",
      &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_IO);
  g_test_message ("%s", error->message);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
  g_assert_nonnull (strstr (error->message, "model \"n\\xFEo\""));
  g_assert_nonnull (strstr (error->message, "caf\\xE9"));
  g_assert_nonnull (strstr (error->message, "models there: b\\xFFad"));

  g_autofree char *file = g_build_filename (dir,
      "b\xFF"
      "ad.safetensors",
      NULL);
  g_remove (file);
  g_rmdir (dir);
  g_rmdir (root);
  g_unsetenv ("FER_MODEL_PATH");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/model-path/found-in-order", test_name_found_in_order);
  g_test_add_func ("/model-path/names", test_names);
  g_test_add_func ("/model-path/missing", test_name_missing);
  g_test_add_func ("/model-path/path-as-is", test_path_as_is);
  g_test_add_func ("/model-path/names-not-utf8", test_names_not_utf8);
  return g_test_run ();
}
