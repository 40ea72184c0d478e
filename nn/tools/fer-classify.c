/* fer-classify: the expression in each face-crop image file.
 *
 * Each image is taken whole as one face (resized to the model input, with
 * the model's TTA views). A file that cannot be read is reported and
 * skipped; the exit status then says that not every image was classified. */
#include <stdio.h>
#include <string.h>

#include <json-glib/json-glib.h>
#include <fer/fer.h>

#include "cli.h"
#include "imageio.h"

/* The logits of the view that T = 1 classifies: the whole image (for a
 * model trained on crops, its centre crop). */
static gboolean
identity_logits (fer_model *m, const fer_image *img, float *input,
    fer_scratch *scratch, float *logits, GError **error)
{
  fer_rect whole = { 0, 0, img->width, img->height };
  fer_view view;
  if (!fer_tta_views (&whole, fer_model_input_size (m), fer_model_crop_size (m),
          1, &view, error))
    return FALSE;
  return fer_preprocess (
             img, &view, fer_model_input_spec (m), input, scratch, error)
      && fer_model_forward (m, input, 1, logits, error);
}

static void
print_text (
    fer_model *m, const char *path, const float *probs, const float *logits)
{
  int k = fer_model_n_classes (m);
  int best = fer_argmax (probs, k);
  printf ("%s: %s %.4f (", path, fer_model_label (m, best), probs[best]);
  for (int c = 0; c < k; c++)
    printf ("%s%s %.4f", c ? ", " : "", fer_model_label (m, c), probs[c]);
  printf (")\n");
  if (logits != NULL) {
    printf ("  logits:");
    for (int c = 0; c < k; c++)
      printf (" %s=%.6g", fer_model_label (m, c), logits[c]);
    printf ("\n");
  }
}

static void
add_per_label (JsonBuilder *b, fer_model *m, const char *name, const float *v)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_object (b);
  for (int c = 0; c < fer_model_n_classes (m); c++) {
    json_builder_set_member_name (b, fer_model_label (m, c));
    json_builder_add_double_value (b, v[c]);
  }
  json_builder_end_object (b);
}

static void
print_json (
    fer_model *m, const char *path, const float *probs, const float *logits)
{
  int best = fer_argmax (probs, fer_model_n_classes (m));
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  /* a path is bytes, JSON is UTF-8: shown quoted (fer_text_quote) */
  g_autofree char *shown = fer_text_quote (path, 0);
  json_builder_set_member_name (b, "path");
  json_builder_add_string_value (b, shown);
  json_builder_set_member_name (b, "label");
  json_builder_add_string_value (b, fer_model_label (m, best));
  json_builder_set_member_name (b, "label_id");
  json_builder_add_int_value (b, best);
  json_builder_set_member_name (b, "confidence");
  json_builder_add_double_value (b, probs[best]);
  add_per_label (b, m, "probabilities", probs);
  if (logits != NULL)
    add_per_label (b, m, "logits", logits);
  json_builder_end_object (b);

  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = json_to_string (root, FALSE);
  printf ("%s\n", text);
}

int
main (int argc, char **argv)
{
  g_autofree char *model_path = NULL, *backend_text = NULL;
  g_auto (GStrv) images = NULL;
  /* the feremotion element's defaults: the same crop, the same answer */
  int tta = FER_TTA_DEFAULT, threads = 0;
  gboolean want_logits = FALSE, json = FALSE;
  GOptionEntry entries[] = { FER_CLI_OPTION_MODEL (&model_path),
    FER_CLI_OPTION_TTA (&tta, FER_TTA_DEFAULT),
    FER_CLI_OPTION_BACKEND (&backend_text), FER_CLI_OPTION_THREADS (&threads),
    { "logits", 0, 0, G_OPTION_ARG_NONE, &want_logits,
        "Also print the raw logits of the un-augmented view", NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json,
        "One JSON object per image and line", NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &images, NULL,
        NULL },
    { NULL } };

  g_autoptr (GOptionContext) ctx = g_option_context_new (
      "IMAGE... - "
      "classify the facial expression of face-crop images");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx,
      "Each IMAGE (JPEG or PNG) is one face crop, resized whole to the model "
      "input.\nExit status: 0 when every image was classified, 1 when the "
      "model or an image could not be used, 2 on a command-line error.\n");
  if (!fer_cli_parse (ctx, &argc, &argv, TRUE))
    return FER_CLI_USAGE;
  if (images == NULL || images[0] == NULL)
    return fer_cli_usage_error ("no IMAGE given");
  if (tta < 1 || tta > FER_TTA_MAX)
    return fer_cli_usage_error ("--tta %d: expected 1 to %d", tta, FER_TTA_MAX);
  if (threads < 0)
    return fer_cli_usage_error ("--threads %d: expected 0 or more", threads);
  int status = 0;
  fer_model *m =
      fer_cli_load_model (model_path, backend_text, threads, &status);
  if (m == NULL)
    return status;

  g_autoptr (GError) error = NULL;
  int k = fer_model_n_classes (m);
  const fer_input_spec *spec = fer_model_input_spec (m);
  g_autofree float *probs = g_new (float, k);
  g_autofree float *logits = want_logits ? g_new (float, k) : NULL;
  g_autofree float *input = want_logits
      ? g_new (float, (size_t) spec->channels * spec->size * spec->size)
      : NULL;
  fer_scratch *scratch = want_logits ? fer_scratch_new () : NULL;
  fer_decoded_image decoded = FER_DECODED_IMAGE_INIT;

  for (char **path = images; *path != NULL; path++) {
    if (!fer_decoded_image_load (&decoded, *path, &error)) {
      fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
      g_clear_error (&error);
      status = 1;
      continue;
    }
    gboolean classified =
        fer_model_classify_images (m, &decoded.image, 1, tta, probs, &error);
    fer_cli_warn_fallback (m);
    if (!classified
        || (want_logits
            && !identity_logits (
                m, &decoded.image, input, scratch, logits, &error))) {
      fprintf (stderr, "%s: cannot classify %s: %s\n", g_get_prgname (), *path,
          error->message);
      g_clear_error (&error);
      status = 1;
      continue;
    }
    if (json)
      print_json (m, *path, probs, logits);
    else
      print_text (m, *path, probs, logits);
  }

  fer_decoded_image_clear (&decoded);
  fer_scratch_free (scratch);
  fer_model_free (m);
  return status;
}
