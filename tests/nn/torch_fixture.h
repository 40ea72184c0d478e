/* The PyTorch reference fixtures (tests/fixtures/torch_*.json, written by
 * tests/torch_reference.py) as the C tests read them: each holds a list
 * "variants" of models that fer-init writes from a seed, with what
 * torchvision computed for them. */
#ifndef FER_TESTS_TORCH_FIXTURE_H
#define FER_TESTS_TORCH_FIXTURE_H

#include <json-glib/json-glib.h>
#include <fer/model.h>

G_BEGIN_DECLS

/* Reads $FER_FIXTURES_DIR/file (default tests/fixtures/file); ends the
 * test program with a message naming the file when it cannot. */
JsonNode *torch_fixture_load (const char *file);

/* Registers func once per element of the fixture's "variants", as
 * prefix/<name>, with the variant's object as its data. */
void torch_fixture_add_variants (
    JsonNode *fixture, const char *prefix, GTestDataFunc func);

/* The variant's architecture: "stem", "head", "channels", "classes". */
fer_arch torch_fixture_arch (JsonObject *v);

/* Writes the variant's model (fer_model_write_random with its "seed" and
 * random batch norm, as tests/torch_reference.py builds it) to
 * dir/<name>.safetensors and returns that path. */
char *torch_fixture_write_model (
    JsonObject *v, const fer_arch *a, fer_dtype dtype, const char *dir);

G_END_DECLS

#endif
