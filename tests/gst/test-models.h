/* The models the element tests share: written once per test program into
 * a temporary folder (setup_models / teardown_models as an unchecked
 * fixture). */
#ifndef FER_GST_TEST_MODELS_H
#define FER_GST_TEST_MODELS_H

#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>

#include <fer/fer.h>

static char *tmpdir;
static char *model7; /* 7 classes, torchvision stem */
static char *model5; /* 5 classes, small stem */

static char *
write_model (const char *name, fer_stem stem, int classes, guint64 seed)
{
  fer_arch a = { stem, FER_HEAD_FC, 1, classes };
  GError *error = NULL;
  char *path = g_build_filename (tmpdir, name, NULL);
  fail_unless (fer_model_write_random (
                   &a, seed, TRUE, FER_DTYPE_F32, NULL, path, &error),
      "%s", error ? error->message : "");
  return path;
}

/* The feremotion element inside a harness made with gst_harness_new_parse
 * (which wraps it in a bin); borrowed: the bin keeps its reference. */
static GstElement *
fer (GstHarness *h)
{
  GstElement *e = gst_harness_find_element (h, "feremotion");
  fail_unless (e != NULL);
  gst_object_unref (e);
  return e;
}

static void
setup_models (void)
{
  GError *error = NULL;
  tmpdir = g_dir_make_tmp ("feremotion-test-XXXXXX", &error);
  g_assert_no_error (error);
  model7 = write_model ("m7.safetensors", FER_STEM_TORCHVISION, 7, 1);
  model5 = write_model ("m5.safetensors", FER_STEM_SMALL, 5, 2);
}

static void
teardown_models (void)
{
  g_unlink (model7);
  g_unlink (model5);
  g_rmdir (tmpdir);
  g_free (model7);
  g_free (model5);
  g_free (tmpdir);
}

#endif
