/* The CPU thread team; contract in workers.h.
 *
 * A job is published by bumping `generation`. Workers that find no new
 * generation after SPIN_US microseconds sleep on `wake`; publish() takes
 * the mutex and broadcasts only when a worker says it sleeps, so
 * back-to-back jobs cost a few atomics each. The sleeper count and the
 * generation are both sequentially consistent, so either publish() sees
 * the sleeper or the sleeper sees the new generation.
 *
 * Each worker has a slot per job: OPEN when published, then RUN (the worker
 * took it) and DONE, or CANCELLED (the caller finished first and took it
 * back). The caller waits only for workers that took the job, so a worker
 * the OS has not scheduled (another process has the core) costs nothing;
 * jobs hand out their work dynamically for this reason. */
#include "cpu/workers.h"

#include <stdatomic.h>
#include <stdbool.h>

#include <fer/error.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define cpu_relax() _mm_pause ()
#else
#define cpu_relax() ((void) 0)
#endif

/* How long an idle worker spins before sleeping: longer than the gaps
 * between the convolutions of one forward pass, short enough not to burn
 * a core between video frames. */
#define SPIN_US 300

enum
{
  SLOT_OPEN,
  SLOT_RUN,
  SLOT_DONE,
  SLOT_CANCELLED
};
#define SLOT(gen, state) ((unsigned long long) (gen) *4 + (state))

struct fer_cpu_workers
{
  int n;
  GThread **threads; /* n - 1 */
  GMutex lock;
  GCond wake;
  atomic_uint generation;
  atomic_int sleepers;
  atomic_ullong *slots; /* n - 1: SLOT (generation, state) */
  atomic_bool quit;
  fer_cpu_job job;
  void *ctx;
};

typedef struct
{
  fer_cpu_workers *w;
  int index;
} worker_start;

/* Waits until generation != seen; returns the new one. */
static unsigned
wait_for_job (fer_cpu_workers *w, unsigned seen)
{
  unsigned g;
  gint64 deadline = 0;

  for (unsigned spins = 0;; spins++) {
    g = atomic_load_explicit (&w->generation, memory_order_acquire);
    if (g != seen)
      return g;
    cpu_relax ();
    if ((spins & 255) == 0) {
      gint64 now = g_get_monotonic_time ();
      if (!deadline)
        deadline = now + SPIN_US;
      else if (now > deadline)
        break;
    }
  }
  g_mutex_lock (&w->lock);
  atomic_fetch_add (&w->sleepers, 1);
  while ((g = atomic_load (&w->generation)) == seen)
    g_cond_wait (&w->wake, &w->lock);
  atomic_fetch_sub (&w->sleepers, 1);
  g_mutex_unlock (&w->lock);
  return g;
}

static gpointer
worker_main (gpointer data)
{
  worker_start *start = data;
  fer_cpu_workers *w = start->w;
  const int index = start->index;
  unsigned seen = 0;

  g_free (start);
  for (;;) {
    unsigned long long open;
    seen = wait_for_job (w, seen);
    if (atomic_load_explicit (&w->quit, memory_order_acquire))
      return NULL;
    open = SLOT (seen, SLOT_OPEN);
    if (atomic_compare_exchange_strong (
            &w->slots[index - 1], &open, SLOT (seen, SLOT_RUN))) {
      w->job (w->ctx, index, w->n);
      atomic_store_explicit (
          &w->slots[index - 1], SLOT (seen, SLOT_DONE), memory_order_release);
    }
  }
}

static void
publish (fer_cpu_workers *w)
{
  atomic_fetch_add (&w->generation, 1);
  if (atomic_load (&w->sleepers) > 0) {
    g_mutex_lock (&w->lock);
    g_cond_broadcast (&w->wake);
    g_mutex_unlock (&w->lock);
  }
}

fer_cpu_workers *
fer_cpu_workers_new (int n_threads, GError **error)
{
  fer_cpu_workers *w;

  g_return_val_if_fail (n_threads >= 1, NULL);
  w = g_new0 (fer_cpu_workers, 1);
  w->n = 1;
  w->threads = g_new0 (GThread *, n_threads);
  w->slots = g_new (atomic_ullong, n_threads);
  for (int i = 0; i < n_threads; i++)
    atomic_init (&w->slots[i], SLOT (0, SLOT_DONE));
  g_mutex_init (&w->lock);
  g_cond_init (&w->wake);
  atomic_init (&w->generation, 0);
  atomic_init (&w->sleepers, 0);
  atomic_init (&w->quit, false);
  for (int i = 1; i < n_threads; i++) {
    GError *err = NULL;
    worker_start *start = g_new (worker_start, 1);
    start->w = w;
    start->index = i;
    w->threads[i - 1] = g_thread_try_new ("fer-cpu", worker_main, start, &err);
    if (!w->threads[i - 1]) {
      g_set_error (error, FER_ERROR, FER_ERROR_BACKEND,
          "cpu backend: cannot start thread %d of %d: %s", i + 1, n_threads,
          err->message);
      g_error_free (err);
      g_free (start);
      fer_cpu_workers_free (w);
      return NULL;
    }
    w->n = i + 1;
  }
  return w;
}

void
fer_cpu_workers_free (fer_cpu_workers *w)
{
  if (!w)
    return;
  atomic_store (&w->quit, true);
  publish (w);
  for (int i = 0; i < w->n - 1; i++)
    g_thread_join (w->threads[i]);
  g_mutex_clear (&w->lock);
  g_cond_clear (&w->wake);
  g_free (w->threads);
  g_free (w->slots);
  g_free (w);
}

int
fer_cpu_workers_n (const fer_cpu_workers *w)
{
  return w->n;
}

void
fer_cpu_workers_run (fer_cpu_workers *w, fer_cpu_job fn, void *ctx)
{
  unsigned gen;

  if (w->n == 1) {
    fn (ctx, 0, 1);
    return;
  }
  /* only this thread writes generation (and job, ctx, the OPEN slots) */
  gen = atomic_load_explicit (&w->generation, memory_order_relaxed) + 1;
  w->job = fn;
  w->ctx = ctx;
  for (int i = 0; i < w->n - 1; i++)
    atomic_store_explicit (
        &w->slots[i], SLOT (gen, SLOT_OPEN), memory_order_relaxed);
  publish (w);
  fn (ctx, 0, w->n);
  for (int i = 0; i < w->n - 1; i++) {
    unsigned long long open = SLOT (gen, SLOT_OPEN);
    if (atomic_compare_exchange_strong (
            &w->slots[i], &open, SLOT (gen, SLOT_CANCELLED)))
      continue;
    for (unsigned spins = 1;
         atomic_load_explicit (&w->slots[i], memory_order_acquire)
         != SLOT (gen, SLOT_DONE);
         spins++) {
      cpu_relax ();
      if ((spins & 1023) == 0)
        g_thread_yield ();
    }
  }
}
