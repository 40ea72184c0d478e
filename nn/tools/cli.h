/* What every command-line tool does the same way: command-line errors, the
 * options of the tools that run a model, the command line as a report
 * quotes it, and the predicted class of a score vector. */
#ifndef FER_TOOLS_CLI_H
#define FER_TOOLS_CLI_H

#include <fer/fer.h>

G_BEGIN_DECLS

/* The exit status of a command-line error. */
#define FER_CLI_USAGE 2

/* "PROGRAM: message" and a pointer to --help on stderr; returns
 * FER_CLI_USAGE. */
int fer_cli_usage_error (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

/* Parses the command line; on a bad option, or a stray argument when
 * arguments_allowed is FALSE, reports it as above and returns FALSE. */
gboolean fer_cli_parse (
    GOptionContext *ctx, int *argc, char ***argv, gboolean arguments_allowed);

/* The options that fer-classify and fer-eval share, with the same help.
 * default_views: the tool's default, an integer literal. */
#define FER_CLI_OPTION_MODEL(var)                                              \
  {                                                                            \
    "model", 'm', 0, G_OPTION_ARG_FILENAME, (var),                             \
        "Model: a name (fast, accurate or an installed model's file name "     \
        "without .safetensors, looked up in $FER_MODEL_PATH, then the "        \
        "installed models) or a .safetensors file "                            \
        "(default: " FER_MODEL_DEFAULT ")",                                    \
        "NAME|FILE"                                                            \
  }
#define FER_CLI_OPTION_TTA(var, default_views)                                 \
  {                                                                            \
    "tta", 't', 0, G_OPTION_ARG_INT, (var),                                    \
        "Test-time-augmentation views per image, 1 (none) to 10 "              \
        "(default " G_STRINGIFY (default_views) ")",                           \
        "N"                                                                    \
  }
#define FER_CLI_OPTION_BACKEND(var)                                            \
  {                                                                            \
    "backend", 'b', 0, G_OPTION_ARG_STRING, (var),                             \
        "cpu, cuda or auto (default: CUDA when available)", "NAME"             \
  }
#define FER_CLI_OPTION_THREADS(var)                                            \
  {                                                                            \
    "threads", 0, 0, G_OPTION_ARG_INT, (var),                                  \
        "CPU backend threads (default 0: the library's choice)", "N"           \
  }

/* Loads `model` (a name or a file, as fer_model_find takes it; NULL: the
 * default model) on backend_text (NULL: auto) with `threads` CPU threads.
 * On failure reports why on stderr and returns NULL with *status
 * FER_CLI_USAGE (a bad --backend) or 1 (the model cannot be found or
 * used). */
fer_model *fer_cli_load_model (
    const char *model, const char *backend_text, int threads, int *status);

/* Under --backend auto, a model that gave up the GPU for the CPU (at load,
 * or in the call just made: fer_model_fallback_reason) is news once: this
 * returns "warning: REASON" the first time it sees the reason (g_free),
 * else NULL. Call it after loading and after each compute call. */
char *fer_cli_fallback_warning (const fer_model *m);
/* The same, printed as "PROGRAM: warning: REASON" on stderr. */
void fer_cli_warn_fallback (const fer_model *m);

/* The command line as a reader would retype it: program name without its
 * build directory, arguments quoted only where the shell needs it. */
char *fer_cli_shell_command (int argc, char **argv);

/* The index of the largest of v[0..n-1] (the first of equal ones). */
int fer_argmax (const float *v, int n);

G_END_DECLS

#endif
