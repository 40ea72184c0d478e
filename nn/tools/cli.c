/* Shared command-line plumbing of the tools (contract in cli.h). */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
fer_cli_usage_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  fprintf (stderr, "%s: %s\nRun '%s --help' for the options.\n",
      g_get_prgname (), msg, g_get_prgname ());
  return FER_CLI_USAGE;
}

gboolean
fer_cli_parse (
    GOptionContext *ctx, int *argc, char ***argv, gboolean arguments_allowed)
{
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, argc, argv, &error)) {
    fer_cli_usage_error ("%s", error->message);
    return FALSE;
  }
  if (!arguments_allowed && *argc > 1) {
    fer_cli_usage_error ("unexpected argument '%s'", (*argv)[1]);
    return FALSE;
  }
  return TRUE;
}

fer_model *
fer_cli_load_model (
    const char *model, const char *backend_text, int threads, int *status)
{
  fer_model_options opts;
  fer_model_options_init (&opts);
  opts.threads = threads;
  if (!fer_backend_type_from_string (
          backend_text ? backend_text : "auto", &opts.backend)) {
    *status = fer_cli_usage_error ("--backend '%s': expected cpu, cuda or "
                                   "auto",
        backend_text);
    return NULL;
  }
  g_autoptr (GError) error = NULL;
  g_autofree char *path =
      fer_model_find (model ? model : FER_MODEL_DEFAULT, &error);
  fer_model *m = path ? fer_model_load (path, &opts, &error) : NULL;
  if (m == NULL) {
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
    *status = 1;
  }
  if (m)
    fer_cli_warn_fallback (m);
  return m;
}

char *
fer_cli_fallback_warning (const fer_model *m)
{
  /* a reason is set once per model and lives as long as it: its address
   * says whether this one was told */
  static const char *told;
  const char *reason = fer_model_fallback_reason (m);
  if (!reason || reason == told)
    return NULL;
  told = reason;
  return g_strdup_printf ("warning: %s", reason);
}

void
fer_cli_warn_fallback (const fer_model *m)
{
  g_autofree char *text = fer_cli_fallback_warning (m);
  if (text)
    fprintf (stderr, "%s: %s\n", g_get_prgname (), text);
}

char *
fer_cli_shell_command (int argc, char **argv)
{
  GString *s = g_string_new (NULL);
  g_autofree char *program = g_path_get_basename (argv[0]);
  g_string_append (s, program);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    gboolean plain = a[0] != '\0'
        && strspn (a,
               "abcdefghijklmnopqrstuvwxyz"
               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,/:@%")
            == strlen (a);
    g_autofree char *quoted = plain ? g_strdup (a) : g_shell_quote (a);
    g_string_append_printf (s, " %s", quoted);
  }
  return g_string_free (s, FALSE);
}

int
fer_argmax (const float *v, int n)
{
  int best = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[best])
      best = i;
  return best;
}
