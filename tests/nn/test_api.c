/* The public API's extension points, built as an application builds them
 * (the public headers and the shared library, whose only exports are the
 * FER_API functions): fer_model_options_init, a g_autoptr cleanup for every
 * handle (tests/run.sh's LeakSanitizer pass fails this test if one does not
 * free), the version macros, and the gboolean + GError convention of
 * fer_tta_views. */
#include <string.h>
#include <glib/gstdio.h>

#include <fer/fer.h>
#include "fer-config.h"

#if !FER_CHECK_VERSION(0, 1, 0)
#error "FER_CHECK_VERSION (0, 1, 0) is false for the first release's headers"
#endif

static void
test_options_init (void)
{
  fer_model_options opts;

  memset (&opts, 0xa5, sizeof opts);
  fer_model_options_init (&opts);
  g_assert_cmpint (opts.backend, ==, FER_BACKEND_AUTO);
  g_assert_cmpint (opts.device_id, ==, 0);
  g_assert_cmpint (opts.threads, ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (opts.reserved); i++)
    g_assert_null (opts.reserved[i]);
}

static void
test_version (void)
{
  g_autofree char *parts = g_strdup_printf (
      "%d.%d.%d", FER_VERSION_MAJOR, FER_VERSION_MINOR, FER_VERSION_MICRO);

  /* the generated header and the build's configuration agree */
  g_assert_cmpstr (FER_VERSION_STRING, ==, FER_VERSION);
  g_assert_cmpstr (parts, ==, FER_VERSION_STRING);

  g_assert_true (FER_CHECK_VERSION (0, 0, 0));
  g_assert_true (FER_CHECK_VERSION (
      FER_VERSION_MAJOR, FER_VERSION_MINOR, FER_VERSION_MICRO));
  g_assert_false (FER_CHECK_VERSION (
      FER_VERSION_MAJOR, FER_VERSION_MINOR, FER_VERSION_MICRO + 1));
  g_assert_false (
      FER_CHECK_VERSION (FER_VERSION_MAJOR, FER_VERSION_MINOR + 1, 0));
  g_assert_false (FER_CHECK_VERSION (FER_VERSION_MAJOR + 1, 0, 0));
  if (FER_VERSION_MINOR > 0)
    g_assert_true (
        FER_CHECK_VERSION (FER_VERSION_MAJOR, FER_VERSION_MINOR - 1, 99));
}

/* Every handle type in a g_autoptr, each one holding memory of its own. */
static void
test_autoptr (void)
{
  const fer_arch arch = {
    .stem = FER_STEM_SMALL, .head = FER_HEAD_FC, .channels = 1, .n_classes = 7
  };
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("fer-api-XXXXXX", &error);
  g_autofree char *path = NULL;

  g_assert_no_error (error);
  path = g_build_filename (dir, "m.safetensors", NULL);
  g_assert_true (fer_model_write_random (
      &arch, 1, FALSE, FER_DTYPE_F32, NULL, path, &error));
  {
    uint8_t px[32 * 32] = { 0 };
    fer_image img = { .format = FER_PIXEL_GRAY8,
      .width = 32,
      .height = 32,
      .planes = { px },
      .strides = { 32 } };
    g_autoptr (fer_model) model = fer_model_load (path, NULL, &error);
    g_autoptr (fer_safetensors) st = fer_safetensors_open (path, &error);
    g_autoptr (fer_st_writer) writer = fer_st_writer_new ();
    g_autoptr (fer_scratch) scratch = fer_scratch_new ();
    const int64_t shape[1] = { 2 };
    const float values[2] = { 1.0f, 2.0f };
    g_autofree float *input = NULL;
    fer_view view = { .src = { 0, 0, 32, 32 } };

    g_assert_no_error (error);
    g_assert_nonnull (model);
    g_assert_nonnull (st);
    g_assert_true (fer_st_writer_add (
        writer, "t", FER_DTYPE_F32, 1, shape, values, &error));
    input = g_new (float, 48 * 48);
    g_assert_true (fer_preprocess (
        &img, &view, fer_model_input_spec (model), input, scratch, &error));
  }
  {
    fer_train_config cfg;
    g_autoptr (fer_trainer) trainer = NULL;

    fer_train_config_init (&cfg, &arch);
    for (guint i = 0; i < G_N_ELEMENTS (cfg.reserved); i++)
      g_assert_null (cfg.reserved[i]);
    g_assert_cmpfloat (cfg.ema_decay, ==, 0.0f);
    /* ema_decay took reserved[0]'s place: 0.1's size and layout */
    g_assert_cmpuint (sizeof cfg, ==,
        offsetof (fer_train_config, ema_decay) + 8 * sizeof (void *));
    cfg.input_size = 16;
    cfg.backend = FER_BACKEND_CPU;
    cfg.threads = 1;
    trainer = fer_trainer_new (&cfg, NULL, &error);
    g_assert_no_error (error);
    g_assert_nonnull (trainer);
  }
  g_unlink (path);
  g_rmdir (dir);
}

static void
test_return_convention (void)
{
  const fer_rect face = { 0, 0, 48, 48 };
  fer_view views[FER_TTA_MAX];
  GError *error = NULL;

  g_assert_true (fer_tta_views (&face, 48, 0, 2, views, &error));
  g_assert_no_error (error);
  g_assert_false (fer_tta_views (&face, 48, 0, FER_TTA_MAX + 1, views, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/api/options-init", test_options_init);
  g_test_add_func ("/api/version", test_version);
  g_test_add_func ("/api/autoptr", test_autoptr);
  g_test_add_func ("/api/return-convention", test_return_convention);
  return g_test_run ();
}
