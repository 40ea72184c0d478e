/* Shared models: one loaded fer_model per (file, backend, device, threads).
 *
 * The key names the file by its canonical path and its identity (device,
 * inode, size, modification time in nanoseconds), so that two spellings of
 * one file share and a file rewritten in place (a new training checkpoint)
 * is loaded afresh, not served from the old copy. The table holds no
 * reference: an entry lives as long as its model's users, and the last
 * fer_model_free removes it (fer_model_cache_release). A model that no
 * longer is what its key says (its device failed, or fer_model_set_threads
 * changed it) leaves the table early (fer_model_cache_forget): its users
 * keep it, and the next load gets a fresh model.
 *
 * Loads run under the cache's lock: a second thread asking for the same
 * model waits for the first one's load and then shares it, instead of
 * loading a second copy. Loads of different models through the cache take
 * turns too (models load once per element start; the lock is not taken
 * while models compute). */
#include "model-cache.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

static GMutex cache_lock;
static GHashTable *cache;  /* key (owned) -> fer_model * (no reference) */
static GHashTable *key_of; /* fer_model * -> key (owned by cache) */

static char *
cache_key (const char *path, const fer_model_options *opts, GError **error)
{
  char *canonical = g_canonicalize_filename (path, NULL);
  char *resolved = realpath (canonical, NULL);
  GStatBuf st;
  char *key;

  if (!resolved || g_stat (resolved, &st) != 0) {
    int e = errno;
    g_autofree char *shown = fer_text_quote (path, 0);
    g_set_error (
        error, FER_ERROR, FER_ERROR_IO, "%s: %s", shown, g_strerror (e));
    free (resolved);
    g_free (canonical);
    return NULL;
  }
  key = g_strdup_printf ("%s|%ju:%ju|%jd|%jd.%09ld|%d|%d|%d|%d", resolved,
      (uintmax_t) st.st_dev, (uintmax_t) st.st_ino, (intmax_t) st.st_size,
      (intmax_t) st.st_mtim.tv_sec, (long) st.st_mtim.tv_nsec,
      (int) opts->backend, opts->device_id, opts->threads, (int) opts->weights);
  free (resolved);
  g_free (canonical);
  return key;
}

fer_model *
fer_model_load_shared (
    const char *path, const fer_model_options *opts, GError **error)
{
  fer_model_options defaults;
  fer_model *m;
  char *key;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (!fer_model_load_args (path, &opts, &defaults, error))
    return NULL;
  if (!(key = cache_key (path, opts, error)))
    return NULL;

  g_mutex_lock (&cache_lock);
  if (!cache) {
    cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    key_of = g_hash_table_new (NULL, NULL);
  }
  m = g_hash_table_lookup (cache, key);
  if (m) {
    fer_model_ref (m);
    g_free (key);
  } else if ((m = fer_model_load (path, opts, error))) {
    fer_model_mark_cached (m);
    g_hash_table_insert (cache, key, m);
    g_hash_table_insert (key_of, m, key);
  } else {
    g_free (key);
  }
  g_mutex_unlock (&cache_lock);
  return m;
}

/* m out of the table, if it is there (cache_lock held). */
static void
forget_locked (fer_model *m)
{
  char *key = key_of ? g_hash_table_lookup (key_of, m) : NULL;
  if (key) {
    g_hash_table_remove (key_of, m);
    g_hash_table_remove (cache, key); /* frees key */
  }
}

gboolean
fer_model_cache_release (fer_model *m)
{
  gboolean last;

  g_mutex_lock (&cache_lock);
  last = fer_model_drop_ref (m);
  if (last)
    forget_locked (m);
  g_mutex_unlock (&cache_lock);
  return last;
}

void
fer_model_cache_forget (fer_model *m)
{
  g_mutex_lock (&cache_lock);
  forget_locked (m);
  g_mutex_unlock (&cache_lock);
}

int
fer_model_cache_size (void)
{
  int n;

  g_mutex_lock (&cache_lock);
  n = cache ? (int) g_hash_table_size (cache) : 0;
  g_mutex_unlock (&cache_lock);
  return n;
}
