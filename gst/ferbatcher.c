/* Cross-stream batching: one batcher per shared model, no thread of its own.
 *
 * A request is the client itself (one buffer in flight per element: its
 * streaming thread waits in fer_batch_client_classify), queued in a list
 * threaded through the clients, so that handing in a buffer allocates
 * nothing. Whoever finds no batch running becomes the leader: it waits
 * for the other live clients (bounded, see ferbatcher.h), takes the queue's
 * requests with its head's view count up to max_batch faces, runs them as
 * one fer_model_classify_frames with the lock released, and hands every
 * request its probabilities. The arrays of the batch grow to the largest
 * batch seen and are then reused. */
#include "ferbatcher.h"

#include <string.h>

typedef struct _FerBatcher FerBatcher;

struct _FerBatchClient
{
  FerBatcher *b;
  gboolean live;        /* waited for by a collecting leader */
  FerBatchClient *next; /* in b->head..tail while queued */
  gboolean queued, done;
  /* the request (T and thread stay after it: the client's last) */
  const fer_image *img;
  const fer_rect *faces;
  int n, T, max_batch;
  GThread *thread;
  gint64 deadline; /* monotonic, microseconds */
  float *probs;
  gboolean ok;
  GError *error;
};

struct _FerBatcher
{
  fer_model *model;
  int k;          /* classes */
  GList *clients; /* FerBatchClient *, under the registry lock */
  GMutex lock;
  GCond cond;
  FerBatchClient *head, *tail; /* the queue */
  gboolean busy;               /* a leader collects or runs a batch */
  guint64 batches, faces_done;
  /* the leader's batch, grown on demand */
  FerBatchClient **taken;
  fer_image *imgs;
  int *face_image;
  fer_rect *rects;
  float *probs;
  int cap_clients, cap_faces;
};

static GMutex registry_lock;
static GHashTable *registry; /* fer_model * -> FerBatcher * */

FerBatchClient *
fer_batch_client_new (fer_model *model)
{
  FerBatchClient *c = g_new0 (FerBatchClient, 1);
  FerBatcher *b;

  g_mutex_lock (&registry_lock);
  if (!registry)
    registry = g_hash_table_new (NULL, NULL);
  b = g_hash_table_lookup (registry, model);
  if (!b) {
    b = g_new0 (FerBatcher, 1);
    b->model = fer_model_ref (model);
    b->k = fer_model_n_classes (model);
    g_mutex_init (&b->lock);
    g_cond_init (&b->cond);
    g_hash_table_insert (registry, model, b);
  }
  c->b = b;
  g_mutex_lock (&b->lock);
  b->clients = g_list_prepend (b->clients, c);
  g_mutex_unlock (&b->lock);
  g_mutex_unlock (&registry_lock);
  return c;
}

static void
batcher_free (FerBatcher *b)
{
  fer_model_free (b->model);
  g_mutex_clear (&b->lock);
  g_cond_clear (&b->cond);
  g_free (b->taken);
  g_free (b->imgs);
  g_free (b->face_image);
  g_free (b->rects);
  g_free (b->probs);
  g_free (b);
}

void
fer_batch_client_free (FerBatchClient *c)
{
  FerBatcher *b;
  gboolean last;

  if (!c)
    return;
  b = c->b;
  g_mutex_lock (&registry_lock);
  g_mutex_lock (&b->lock);
  b->clients = g_list_remove (b->clients, c);
  last = b->clients == NULL;
  /* a leader waiting for this client stops waiting */
  g_cond_broadcast (&b->cond);
  g_mutex_unlock (&b->lock);
  if (last)
    g_hash_table_remove (registry, b->model);
  g_mutex_unlock (&registry_lock);
  if (last)
    batcher_free (b);
  g_free (c);
}

void
fer_batch_client_set_idle (FerBatchClient *c)
{
  FerBatcher *b = c->b;

  g_mutex_lock (&b->lock);
  if (c->live) {
    c->live = FALSE;
    g_cond_broadcast (&b->cond);
  }
  g_mutex_unlock (&b->lock);
}

void
fer_batch_client_stats (FerBatchClient *c, guint64 *batches, guint64 *faces)
{
  g_mutex_lock (&c->b->lock);
  *batches = c->b->batches;
  *faces = c->b->faces_done;
  g_mutex_unlock (&c->b->lock);
}

/* Grows the batch arrays for n_clients requests and n_faces faces. */
static void
reserve (FerBatcher *b, int n_clients, int n_faces)
{
  if (n_clients > b->cap_clients) {
    b->cap_clients = MAX (n_clients, 2 * b->cap_clients);
    b->taken = g_renew (FerBatchClient *, b->taken, b->cap_clients);
    b->imgs = g_renew (fer_image, b->imgs, b->cap_clients);
  }
  if (n_faces > b->cap_faces) {
    b->cap_faces = MAX (n_faces, 2 * b->cap_faces);
    b->face_image = g_renew (int, b->face_image, b->cap_faces);
    b->rects = g_renew (fer_rect, b->rects, b->cap_faces);
    b->probs = g_renew (float, b->probs, (gsize) b->cap_faces * b->k);
  }
}

/* Whether the leader should wait for client c, for a batch of T views: c
 * is live, has no request queued, used T views last time (a client with
 * other views cannot join this batch), and its last request came from a
 * thread that is not blocked in a queued request now (two feremotion
 * elements in series run in one streaming thread: the downstream one
 * cannot hand in its buffer before the upstream one's returns). */
static gboolean
may_come (const FerBatcher *b, const FerBatchClient *c, int T)
{
  if (!c->live || c->queued || c->T != T)
    return FALSE;
  for (const FerBatchClient *q = b->head; q; q = q->next)
    if (q->thread == c->thread)
      return FALSE;
  return TRUE;
}

/* Waits (lock held) until no client may still come (may_come), the queue
 * holds max_batch faces with the head's view count, or the oldest
 * request's deadline passed; the clients waited for in vain are waited
 * for no more (not live) until they hand in a request. */
static void
collect (FerBatcher *b)
{
  const int T = b->head->T;
  for (;;) {
    int faces = 0;
    gint64 deadline = G_MAXINT64;
    gboolean wait = FALSE;
    for (FerBatchClient *c = b->head; c; c = c->next) {
      faces += c->T == T ? c->n : 0;
      deadline = MIN (deadline, c->deadline);
    }
    for (GList *l = b->clients; l && !wait; l = l->next)
      wait = may_come (b, l->data, T);
    if (!wait || faces >= b->head->max_batch)
      return;
    if (!g_cond_wait_until (&b->cond, &b->lock, deadline)) {
      for (GList *l = b->clients; l; l = l->next) {
        FerBatchClient *c = l->data;
        if (may_come (b, c, T))
          c->live = FALSE;
      }
      return;
    }
  }
}

/* Takes the head's request and the queued ones with its view count, in
 * order, up to max_batch faces, into the batch arrays; returns how many. */
static int
take (FerBatcher *b, int *n_faces)
{
  const int T = b->head->T, max_batch = b->head->max_batch;
  FerBatchClient **link = &b->head, *prev = NULL;
  int n = 0, nf = 0;

  while (*link) {
    FerBatchClient *c = *link;
    if (c->T != T || (n > 0 && nf + c->n > max_batch)) {
      prev = c;
      link = &c->next;
      continue;
    }
    reserve (b, n + 1, nf + c->n);
    b->taken[n] = c;
    b->imgs[n] = *c->img;
    for (int f = 0; f < c->n; f++) {
      b->face_image[nf + f] = n;
      b->rects[nf + f] = c->faces[f];
    }
    nf += c->n;
    n++;
    c->queued = FALSE;
    *link = c->next;
    c->next = NULL;
  }
  b->tail = prev;
  *n_faces = nf;
  return n;
}

/* One batch; called with the lock held and b->busy set, returns with the
 * lock held. */
static void
lead (FerBatcher *b)
{
  GError *error = NULL;
  int n_faces, n, T = b->head->T;
  gboolean ok;

  collect (b);
  n = take (b, &n_faces);
  g_mutex_unlock (&b->lock);
  ok = fer_model_classify_frames (b->model, b->imgs, n, b->face_image, b->rects,
      n_faces, T, b->probs, &error);
  /* a failed batch of several: each request again on its own, so that
   * one stream's bad request fails that stream only */
  for (int i = 0; !ok && n > 1 && i < n; i++) {
    FerBatchClient *c = b->taken[i];
    c->ok = fer_model_classify (
        b->model, c->img, c->faces, c->n, T, c->probs, &c->error);
  }
  g_mutex_lock (&b->lock);
  b->batches++;
  b->faces_done += (guint64) n_faces;
  for (int i = 0, f0 = 0; i < n; f0 += b->taken[i]->n, i++) {
    FerBatchClient *c = b->taken[i];
    if (ok) {
      c->ok = TRUE;
      memcpy (c->probs, b->probs + (gsize) f0 * b->k,
          (gsize) c->n * b->k * sizeof (float));
    } else if (n == 1) {
      c->ok = FALSE;
      c->error = g_error_copy (error);
    }
    c->done = TRUE;
  }
  g_clear_error (&error);
}

gboolean
fer_batch_client_classify (FerBatchClient *c, const fer_image *img,
    const fer_rect *faces, int n, int T, guint max_wait_us, int max_batch,
    float *probs, GError **error)
{
  FerBatcher *b = c->b;
  gboolean ok;

  if (n <= 0)
    return TRUE;
  g_mutex_lock (&b->lock);
  c->img = img;
  c->faces = faces;
  c->n = n;
  c->T = T;
  c->thread = g_thread_self ();
  c->max_batch = MAX (max_batch, 1);
  c->probs = probs;
  c->deadline = g_get_monotonic_time () + max_wait_us;
  c->done = FALSE;
  c->queued = TRUE;
  c->live = TRUE;
  if (b->tail)
    b->tail->next = c;
  else
    b->head = c;
  b->tail = c;
  /* a collecting leader counts again */
  g_cond_broadcast (&b->cond);
  while (!c->done) {
    if (!b->busy) {
      b->busy = TRUE;
      lead (b);
      b->busy = FALSE;
      g_cond_broadcast (&b->cond);
    } else {
      g_cond_wait (&b->cond, &b->lock);
    }
  }
  ok = c->ok;
  if (!ok)
    g_propagate_error (error, c->error);
  c->error = NULL;
  g_mutex_unlock (&b->lock);
  return ok;
}
