/* The whole network against PyTorch: tests/fixtures/torch_logits.json holds
 * torchvision resnet18's logits for models that fer-init writes from a seed
 * (every stem x head x channel variant, and an F16 file); this test writes
 * the same models with the same seeds, runs the same input, and compares.
 * Regenerate the fixture with tests/torch_reference.py (its docstring). */
#include <json-glib/json-glib.h>
#include <math.h>
#include <glib/gstdio.h>

#include <fer/model.h>

#include "test-util.h"
#include "torch_fixture.h"

static JsonNode *fixture;
static char *tmpdir;

/* The fixture's input formula, in double, rounded to float. */
static float *
formula_input (int n, int c, int s)
{
  size_t total = (size_t) n * c * s * s;
  float *x = g_new (float, total);
  for (size_t i = 0; i < total; i++) {
    size_t b = i / ((size_t) c * s * s);
    x[i] = (float) (sin (0.37 * (double) i + 0.11 * (double) b) * 1.5);
  }
  return x;
}

static void
check_variant (gconstpointer data)
{
  JsonObject *v = (JsonObject *) data;
  JsonObject *input =
      json_object_get_object_member (json_node_get_object (fixture), "input");
  const char *name = json_object_get_string_member (v, "name");
  fer_arch a = torch_fixture_arch (v);
  fer_dtype dtype =
      g_strcmp0 (json_object_get_string_member (v, "dtype"), "F16") == 0
      ? FER_DTYPE_F16
      : FER_DTYPE_F32;
  int n = (int) json_object_get_int_member (input, "n");
  int size = (int) json_object_get_int_member (input, "size");
  char *path = torch_fixture_write_model (v, &a, dtype, tmpdir);
  GError *error = NULL;

  fer_model *m = test_load_model (path, FER_BACKEND_CPU, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (fer_model_input_spec (m)->size, ==, size);

  float *x = formula_input (n, a.channels, size);
  float *logits = g_new (float, (size_t) n *a.n_classes);
  g_assert_true (fer_model_forward (m, x, n, logits, &error));
  g_assert_no_error (error);

  JsonArray *rows = json_object_get_array_member (v, "logits");
  g_assert_cmpint (json_array_get_length (rows), ==, n);
  double err = 0, lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < n; i++) {
    JsonArray *row = json_array_get_array_element (rows, i);
    g_assert_cmpint (json_array_get_length (row), ==, a.n_classes);
    for (int j = 0; j < a.n_classes; j++) {
      double ref = json_array_get_double_element (row, j);
      err = fmax (err, fabs (ref - logits[i * a.n_classes + j]));
      lo = fmin (lo, ref);
      hi = fmax (hi, ref);
    }
  }
  double rel = err / (hi - lo);
  g_test_message ("%s: max abs error %.3g, logit range %.3g, relative %.3g",
      name, err, hi - lo, rel);
  g_printerr ("# %s: max abs error %.3g (relative to logit range %.3g)\n", name,
      err, rel);
  g_assert_cmpfloat (rel, <, 1e-4);

  g_free (x);
  g_free (logits);
  fer_model_free (m);
  g_unlink (path);
  g_free (path);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  g_test_init (&argc, &argv, NULL);

  fixture = torch_fixture_load ("torch_logits.json");
  tmpdir = g_dir_make_tmp ("fer-torch-ref-XXXXXX", &error);
  g_assert_no_error (error);

  torch_fixture_add_variants (fixture, "/torch-reference", check_variant);
  int rc = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  json_node_unref (fixture);
  return rc;
}
