/* The PyTorch reference fixtures (contract in torch_fixture.h). */
#include "torch_fixture.h"

JsonNode *
torch_fixture_load (const char *file)
{
  GError *error = NULL;
  const char *dir = g_getenv ("FER_FIXTURES_DIR");
  char *path = g_build_filename (dir ? dir : "tests/fixtures", file, NULL);
  JsonParser *parser = json_parser_new ();
  if (!json_parser_load_from_file (parser, path, &error))
    g_error ("cannot read fixture %s: %s", path, error->message);
  JsonNode *fixture = json_node_copy (json_parser_get_root (parser));
  g_object_unref (parser);
  g_free (path);
  return fixture;
}

void
torch_fixture_add_variants (
    JsonNode *fixture, const char *prefix, GTestDataFunc func)
{
  JsonArray *variants =
      json_object_get_array_member (json_node_get_object (fixture), "variants");
  for (guint i = 0; i < json_array_get_length (variants); i++) {
    JsonObject *v = json_array_get_object_element (variants, i);
    char *name = g_strdup_printf (
        "%s/%s", prefix, json_object_get_string_member (v, "name"));
    g_test_add_data_func (name, v, func);
    g_free (name);
  }
}

fer_arch
torch_fixture_arch (JsonObject *v)
{
  fer_arch a;
  g_assert_true (
      fer_stem_from_name (json_object_get_string_member (v, "stem"), &a.stem));
  a.head = g_strcmp0 (json_object_get_string_member (v, "head"), "mlp") == 0
      ? FER_HEAD_MLP
      : FER_HEAD_FC;
  a.channels = (int) json_object_get_int_member (v, "channels");
  a.n_classes = (int) json_object_get_int_member (v, "classes");
  return a;
}

char *
torch_fixture_write_model (
    JsonObject *v, const fer_arch *a, fer_dtype dtype, const char *dir)
{
  GError *error = NULL;
  char *path = g_strdup_printf (
      "%s/%s.safetensors", dir, json_object_get_string_member (v, "name"));
  g_assert_true (fer_model_write_random (a,
      (guint64) json_object_get_int_member (v, "seed"), TRUE, dtype, NULL, path,
      &error));
  g_assert_no_error (error);
  return path;
}
