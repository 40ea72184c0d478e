/* Between model.c and model-cache.c: a model loaded through the cache is
 * marked, and its last fer_model_free goes through the cache, which drops
 * its entry in the same critical section as the last reference, so that a
 * concurrent fer_model_load_shared never finds a model being freed. */
#ifndef FER_MODEL_CACHE_H
#define FER_MODEL_CACHE_H

#include <fer/model.h>

/* model.c */
void fer_model_mark_cached (fer_model *m);
/* fer_model_load's argument checks: FALSE with an error without a path;
 * a NULL *opts becomes `defaults`, initialised. */
gboolean fer_model_load_args (const char *path, const fer_model_options **opts,
    fer_model_options *defaults, GError **error);
/* Drops one reference; TRUE when it was the last one. */
gboolean fer_model_drop_ref (fer_model *m);

/* model-cache.c: drops one reference of a cached model under the cache's
 * lock, removing its entry with the last one; TRUE then (the caller frees
 * the model). */
gboolean fer_model_cache_release (fer_model *m);
/* model-cache.c: takes m out of the table (if it is there) without
 * touching its references: its users keep it, later loads get a fresh
 * model. For a model whose device failed, and one whose thread count
 * changed (either no longer matches its key). Takes the cache's lock:
 * may be called under the model's lock (that order only). */
void fer_model_cache_forget (fer_model *m);

#endif
