/* fer-init: writes a randomly initialised ResNet-18 model file.
 *
 * The file is a complete, loadable model (torchvision tensor names and the
 * fer.* metadata), so tools, tests and the element can run before anything
 * has been trained, and a fixed seed reproduces the same file. */
#include <stdio.h>
#include <string.h>

#include <fer/fer.h>

#include "cli.h"

int
main (int argc, char **argv)
{
  g_autofree char *out = NULL, *seed_text = NULL, *stem_text = NULL,
                  *head_text = NULL;
  g_auto (GStrv) meta = NULL;
  int channels = 1, n_classes = 7;
  gboolean randomize_bn = FALSE, f16 = FALSE;
  GOptionEntry entries[] = { { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out,
                                 "Model file to write (required)",
                                 "M.safetensors" },
    { "seed", 's', 0, G_OPTION_ARG_STRING, &seed_text,
        "Random seed, 0 to 2^64-1 (default 0)", "S" },
    { "stem", 0, 0, G_OPTION_ARG_STRING, &stem_text,
        "torchvision (7x7/2 conv + max-pool, default), small (3x3/1 conv) or "
        "nopool (7x7/2 conv, no max-pool)",
        "STEM" },
    { "head", 0, 0, G_OPTION_ARG_STRING, &head_text,
        "fc (Linear 512->C, default) or mlp (512->256, BN, ReLU, Dropout, ->C)",
        "HEAD" },
    { "channels", 0, 0, G_OPTION_ARG_INT, &channels,
        "Input channels, 1 or 3 (default 1)", "N" },
    { "classes", 0, 0, G_OPTION_ARG_INT, &n_classes,
        "Number of classes, at least 2 (default 7, the FER2013 labels)", "N" },
    { "randomize-bn", 0, 0, G_OPTION_ARG_NONE, &randomize_bn,
        "Random batch-norm parameters and statistics (for reference tests)",
        NULL },
    { "f16", 0, 0, G_OPTION_ARG_NONE, &f16,
        "Store tensors as F16 instead of F32", NULL },
    { "meta", 'm', 0, G_OPTION_ARG_STRING_ARRAY, &meta,
        "Metadata entry, e.g. fer.labels=a,b,c (repeatable)", "KEY=VALUE" },
    { NULL } };

  g_autoptr (GOptionContext) ctx =
      g_option_context_new ("- write a random ResNet-18 model");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx,
      "Exit status: 0 on success, 1 when the model cannot be written, 2 on "
      "a command-line error.\n");
  if (!fer_cli_parse (ctx, &argc, &argv, FALSE))
    return FER_CLI_USAGE;
  if (out == NULL)
    return fer_cli_usage_error ("--out is required");

  fer_arch arch = { .stem = FER_STEM_TORCHVISION,
    .head = FER_HEAD_FC,
    .channels = channels,
    .n_classes = n_classes };
  guint64 seed = 0;
  if (seed_text != NULL
      && !g_ascii_string_to_unsigned (
          seed_text, 10, 0, G_MAXUINT64, &seed, NULL))
    return fer_cli_usage_error ("--seed '%s': expected an integer from 0 to "
                                "%" G_GUINT64_FORMAT,
        seed_text, G_MAXUINT64);
  if (stem_text != NULL && !fer_stem_from_name (stem_text, &arch.stem))
    return fer_cli_usage_error ("--stem '%s': expected torchvision, small "
                                "or nopool",
        stem_text);
  if (head_text != NULL && strcmp (head_text, "mlp") == 0)
    arch.head = FER_HEAD_MLP;
  else if (head_text != NULL && strcmp (head_text, "fc") != 0)
    return fer_cli_usage_error ("--head '%s': expected fc or mlp", head_text);
  if (channels != 1 && channels != 3)
    return fer_cli_usage_error ("--channels %d: expected 1 or 3", channels);
  if (n_classes < 2)
    return fer_cli_usage_error ("--classes %d: expected at least 2", n_classes);

  /* KEY=VALUE pairs become the key, value, ..., NULL list of the API. */
  g_autoptr (GPtrArray) kv = g_ptr_array_new_with_free_func (g_free);
  for (char **m = meta; m != NULL && *m != NULL; m++) {
    const char *eq = strchr (*m, '=');
    if (eq == NULL || eq == *m)
      return fer_cli_usage_error ("--meta '%s': expected KEY=VALUE with a "
                                  "non-empty KEY",
          *m);
    g_ptr_array_add (kv, g_strndup (*m, eq - *m));
    g_ptr_array_add (kv, g_strdup (eq + 1));
  }
  g_ptr_array_add (kv, NULL);

  fer_dtype dtype = f16 ? FER_DTYPE_F16 : FER_DTYPE_F32;
  g_autoptr (GError) error = NULL;
  if (!fer_model_write_random (&arch, seed, randomize_bn, dtype,
          (const char *const *) kv->pdata, out, &error)) {
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
    return 1;
  }
  printf ("%s: ResNet-18, %s stem, %s head, %d input channel%s, %d classes, "
          "seed %" G_GUINT64_FORMAT ", %s%s\n",
      out, fer_stem_name (arch.stem), arch.head == FER_HEAD_MLP ? "mlp" : "fc",
      channels, channels == 1 ? "" : "s", n_classes, seed, f16 ? "F16" : "F32",
      randomize_bn ? ", random batch norm" : "");
  return 0;
}
