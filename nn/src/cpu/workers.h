/* A small persistent team of threads for the CPU ops (private). The caller
 * is thread 0 and works too; the others wait for the next job spinning for
 * a short while (convolutions come back to back within a forward pass) and
 * then sleep. One job at a time: run() is not reentrant. */
#ifndef FER_CPU_WORKERS_H
#define FER_CPU_WORKERS_H

#include <glib.h>

typedef struct fer_cpu_workers fer_cpu_workers;

/* fn (ctx, thread, n_threads) runs on the calling thread (thread 0) and on
 * each worker that picks the job up before the caller is done with it: a
 * job must hand out its work through a shared counter, not by thread. */
typedef void (*fer_cpu_job) (void *ctx, int thread, int n_threads);

/* n_threads >= 1 (1: no extra thread, run() calls fn inline). Returns NULL
 * with an error when a thread cannot be started. */
fer_cpu_workers *fer_cpu_workers_new (int n_threads, GError **error);
/* Accepts NULL. */
void fer_cpu_workers_free (fer_cpu_workers *w);
int fer_cpu_workers_n (const fer_cpu_workers *w);
/* Returns when every thread that ran fn has returned from it. */
void fer_cpu_workers_run (fer_cpu_workers *w, fer_cpu_job fn, void *ctx);

#endif
