/* fer-pack: image-folder trees into one packed dataset file (packfile.h)
 * that fer-train reads with --pack, and back to a check of what it wrote.
 *
 *   fer-pack --out FILE [--max-per-class N] [--size S] [--channels C]
 *            NAME=DIR[:DELTA]...
 *
 * Each NAME=DIR becomes set NAME, loaded as fer-train loads --data (the
 * same decoder, the same S x S x C storage); DELTA (default 0, lossless)
 * is the largest error allowed per pixel. The first set's labels fix the
 * label order of the others. After writing, every set is read back and
 * compared with what was loaded: the largest pixel error must be within its
 * DELTA. --max-per-class keeps the first N images of each class (a small
 * file for dry runs). Prints one line per set (images, largest error) and
 * the file's size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "cli.h"
#include "dataset.h"
#include "packfile.h"

/* Keeps the first `max` images of each class of d, in order. */
static void
keep_per_class (fer_dataset *d, int max)
{
  const size_t image = (size_t) d->size * d->size * d->channels;
  int kept = 0;
  memset (d->counts, 0, sizeof (int64_t) * d->n_classes);
  for (int i = 0; i < d->n; i++) {
    if (d->counts[d->y[i]] >= max)
      continue;
    d->counts[d->y[i]]++;
    memmove (d->pixels + image * kept, d->pixels + image * i, image);
    d->y[kept++] = d->y[i];
  }
  d->n = kept;
}

static int
max_error (const fer_dataset *a, const fer_dataset *b)
{
  const size_t total = (size_t) a->size * a->size * a->channels * a->n;
  int worst = 0;
  for (size_t i = 0; i < total; i++)
    worst = MAX (worst, abs ((int) a->pixels[i] - (int) b->pixels[i]));
  return worst;
}

int
main (int argc, char **argv)
{
  g_autofree char *out = NULL;
  int max_per_class = 0, size = 48, channels = 1;
  GOptionEntry entries[] = {
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "Packed file to write",
        "FILE" },
    { "max-per-class", 0, 0, G_OPTION_ARG_INT, &max_per_class,
        "Keep the first N images of each class (default: all)", "N" },
    { "size", 0, 0, G_OPTION_ARG_INT, &size,
        "Side of the stored images (default 48)", "S" },
    { "channels", 0, 0, G_OPTION_ARG_INT, &channels,
        "1 (gray, default) or 3 (RGB)", "C" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (
      "NAME=DIR[:DELTA]... - pack image-folder trees into one file");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx,
      "Exit status: 0 when FILE was written and reads back within every "
      "DELTA, 1 when not, 2 on a command-line error.\n");
  if (!fer_cli_parse (ctx, &argc, &argv, TRUE))
    return FER_CLI_USAGE;
  if (out == NULL || argc < 2)
    return fer_cli_usage_error ("expected --out FILE and NAME=DIR sets");
  if (max_per_class < 0 || size < 1 || size > 1024
      || (channels != 1 && channels != 3))
    return fer_cli_usage_error ("--max-per-class must be >= 0, --size 1..1024, "
                                "--channels 1 or 3");

  const int n_sets = argc - 1;
  fer_pack_set *sets = g_new0 (fer_pack_set, n_sets);
  fer_dataset **data = g_new0 (fer_dataset *, n_sets);
  char **names = g_new0 (char *, n_sets + 1);
  int status = 0;
  g_autoptr (GError) error = NULL;
  for (int i = 0; i < n_sets && status == 0; i++) {
    const char *arg = argv[i + 1], *eq = strchr (arg, '=');
    if (eq == NULL || eq == arg) {
      status = fer_cli_usage_error ("'%s': expected NAME=DIR[:DELTA]", arg);
      break;
    }
    names[i] = g_strndup (arg, eq - arg);
    g_autofree char *dir = g_strdup (eq + 1);
    char *colon = strrchr (dir, ':');
    int delta = 0;
    if (colon != NULL) {
      char *end = NULL;
      delta = (int) strtol (colon + 1, &end, 10);
      if (end == colon + 1 || *end != '\0' || delta < 0
          || delta > FER_PACK_MAX_DELTA) {
        status = fer_cli_usage_error (
            "'%s': DELTA must be 0..%d", arg, FER_PACK_MAX_DELTA);
        break;
      }
      *colon = '\0';
    }
    const char *const *fixed =
        i > 0 ? (const char *const *) data[0]->labels : NULL;
    data[i] = fer_dataset_load_folder (
        dir, fixed, "the first set", size, channels, NULL, &error);
    if (data[i] == NULL) {
      fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
      status = 1;
      break;
    }
    if (max_per_class > 0)
      keep_per_class (data[i], max_per_class);
    sets[i] = (fer_pack_set){ names[i], data[i], delta };
  }
  if (status == 0 && !fer_pack_write (out, sets, n_sets, &error)) {
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
    status = 1;
  }
  for (int i = 0; i < n_sets && status == 0; i++) {
    fer_dataset *back = fer_pack_load (out, names[i], NULL, NULL, &error);
    if (back == NULL) {
      fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
      status = 1;
      break;
    }
    const int err = max_error (data[i], back);
    printf ("%s: set %s: %d images, largest pixel error %d (delta %d)\n", out,
        names[i], back->n, err, sets[i].delta);
    if (err > sets[i].delta || back->n != data[i]->n) {
      fprintf (
          stderr, "%s: set %s reads back wrong\n", g_get_prgname (), names[i]);
      status = 1;
    }
    fer_dataset_free (back);
  }
  if (status == 0) {
    GStatBuf st;
    if (g_stat (out, &st) == 0)
      printf ("%s: %lld bytes\n", out, (long long) st.st_size);
  }
  for (int i = 0; i < n_sets; i++)
    fer_dataset_free (data[i]);
  g_free (data);
  g_free (sets);
  g_strfreev (names);
  return status;
}
