/* Cross-stream batching for feremotion elements that share one model.
 *
 * Each element holds a FerBatchClient on its (shared) fer_model; every
 * client of one model meets in that model's batcher. A buffer's faces are
 * handed in with fer_batch_client_classify, which returns when they are
 * classified: by this thread, which may take the faces of other streams'
 * buffers along into one forward, or by another stream's thread that took
 * these faces into its forward. Latency stays bounded: the thread that
 * runs a batch waits for the other streams at most max_wait_us after the
 * oldest request came, and not at all once every live stream that could
 * join the batch has handed in a buffer or the batch holds max_batch
 * faces. Not waited for: a stream whose last buffer used another view
 * count (it cannot share the forward), one whose last buffer came from a
 * thread that is itself waiting in the batcher (elements in series in one
 * streaming thread), and a stream that did not come in time (stalled,
 * paused, at EOS, flushing, in error) until it hands in a buffer again.
 * Steady state allocates nothing. */
#ifndef __GST_FER_BATCHER_H__
#define __GST_FER_BATCHER_H__

#include <fer/fer.h>

G_BEGIN_DECLS

typedef struct _FerBatchClient FerBatchClient;

/* A new client of model's batcher (created with the model's first client;
 * it holds a reference to the model). */
FerBatchClient *fer_batch_client_new (fer_model *model);
/* Leaves the batcher (freed with its last client); NULL is ignored. Not
 * while a call of this client's is in fer_batch_client_classify. */
void fer_batch_client_free (FerBatchClient *c);

/* Classifies n faces of img with T views as fer_model_classify does, in a
 * batch with other clients' faces that come within max_wait_us; probs
 * receives n x n_classes. max_batch: faces per forward at most (>= 1; a
 * request with more faces runs alone). */
gboolean fer_batch_client_classify (FerBatchClient *c, const fer_image *img,
    const fer_rect *faces, int n, int T, guint max_wait_us, int max_batch,
    float *probs, GError **error);

/* This client will not hand in a buffer soon (EOS): nobody waits for it
 * until its next fer_batch_client_classify. */
void fer_batch_client_set_idle (FerBatchClient *c);

/* Forwards run and faces classified by this client's batcher so far. */
void fer_batch_client_stats (
    FerBatchClient *c, guint64 *batches, guint64 *faces);

G_END_DECLS

#endif
