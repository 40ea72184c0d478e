/* fer-convert: rewrites a model file with its float tensors stored as F16 or
 * F32, keeping tensor names, order, shapes and every metadata entry, and
 * checks that the result loads as a model. The shipped default model is the
 * F16 copy of a training checkpoint made this way.
 *
 * Integer tensors (PyTorch's num_batches_tracked) carry nothing the model
 * uses; they are dropped and counted. --meta KEY=VALUE sets or replaces a
 * metadata entry (e.g. a training run's absolute data paths in fer.dataset,
 * before the file ships); the result must still load as a model, so a bad
 * fer.* value is refused as the loader would refuse it. */
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>

#include <fer/fer.h>

#include "cli.h"

int
main (int argc, char **argv)
{
  g_autofree char *dtype_text = NULL;
  g_auto (GStrv) meta = NULL;
  GOptionEntry entries[] = { { "dtype", 0, 0, G_OPTION_ARG_STRING, &dtype_text,
                                 "f16 or f32 (default f16)", "T" },
    { "meta", 'm', 0, G_OPTION_ARG_STRING_ARRAY, &meta,
        "Set (or replace) a metadata entry; may be repeated", "KEY=VALUE" },
    { NULL } };
  g_autoptr (GOptionContext) ctx = g_option_context_new (
      "IN.safetensors "
      "OUT.safetensors - store a model's float tensors as F16 or F32");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx,
      "Exit status: 0 when OUT was "
      "written and loads as a model, 1 when not, 2 on a command-line error.\n");
  if (!fer_cli_parse (ctx, &argc, &argv, TRUE))
    return FER_CLI_USAGE;
  if (argc != 3)
    return fer_cli_usage_error ("expected IN.safetensors and OUT.safetensors");
  fer_dtype dtype;
  if (dtype_text == NULL || g_ascii_strcasecmp (dtype_text, "f16") == 0)
    dtype = FER_DTYPE_F16;
  else if (g_ascii_strcasecmp (dtype_text, "f32") == 0)
    dtype = FER_DTYPE_F32;
  else
    return fer_cli_usage_error ("--dtype %s: expected f16 or f32", dtype_text);
  for (char **m = meta; m != NULL && *m != NULL; m++) {
    const char *eq = strchr (*m, '=');
    if (eq == NULL || eq == *m)
      return fer_cli_usage_error ("--meta '%s': expected KEY=VALUE with a "
                                  "non-empty KEY",
          *m);
  }

  g_autoptr (GError) error = NULL;
  fer_safetensors *st = fer_safetensors_open (argv[1], &error);
  if (st == NULL) {
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
    return 1;
  }
  fer_st_writer *w = fer_st_writer_new ();
  int written = 0, dropped = 0;
  gboolean ok = TRUE;
  for (int i = 0; ok && i < fer_safetensors_n_tensors (st); i++) {
    const fer_st_tensor *t = fer_safetensors_tensor (st, i);
    if (t->dtype != FER_DTYPE_F32 && t->dtype != FER_DTYPE_F16
        && t->dtype != FER_DTYPE_BF16 && t->dtype != FER_DTYPE_F64) {
      dropped++;
      continue;
    }
    float *x = g_new (float, MAX (t->numel, 1));
    fer_safetensors_read_f32 (st, t, x);
    ok = fer_st_writer_add (w, t->name, dtype, t->ndim, t->shape, x, &error);
    g_free (x);
    written++;
  }
  for (const char *const *k = fer_safetensors_metadata_keys (st);
       ok && *k != NULL; k++)
    fer_st_writer_set_metadata (w, *k, fer_safetensors_metadata (st, *k));
  for (char **m = meta; ok && m != NULL && *m != NULL; m++) {
    g_autofree char *key = g_strndup (*m, strchr (*m, '=') - *m);
    fer_st_writer_set_metadata (w, key, strchr (*m, '=') + 1);
  }
  ok = ok && fer_st_writer_save (w, argv[2], &error);
  fer_st_writer_free (w);
  fer_safetensors_free (st);

  fer_model_options cpu;
  fer_model_options_init (&cpu);
  cpu.backend = FER_BACKEND_CPU;
  fer_model *m = ok ? fer_model_load (argv[2], &cpu, &error) : NULL;
  if (m == NULL) {
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
    if (ok) /* written but not a model (a bad --meta): leave nothing */
      g_unlink (argv[2]);
    return 1;
  }
  fer_model_free (m);
  printf ("%s: %d tensors as %s, %d integer tensors dropped\n", argv[2],
      written, dtype == FER_DTYPE_F16 ? "F16" : "F32", dropped);
  return 0;
}
