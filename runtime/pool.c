/* A fixed thread pool for the forward pass: one parallel-for at a time, the caller taking the
 * first range itself. Threads are made once per model, not per matrix product.
 *
 * Generating one token runs ~8 parallel-fors per layer, each a few tens of microseconds: waking
 * a sleeping thread through a condition variable costs about as much. So a worker that has just
 * finished a job spins on the job counter for a while (SPIN_ROUNDS) before it goes to sleep, and
 * the caller spins on the count of workers still running; a pool left idle sleeps. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#include "ops.h"

enum { SPIN_ROUNDS = 1 << 17 }; /* a few hundred microseconds of pause instructions */

struct qfmt_pool {
    unsigned n; /* threads including the caller */
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t go;
    atomic_ulong gen;      /* bumped for each job; workers wait for it to move */
    atomic_uint pending;   /* workers still running the current job */
    atomic_uint sleepers;  /* workers blocked (or about to block) on `go` */
    atomic_bool quit;
    void (*fn)(void *, size_t, size_t);
    void *ctx;
    size_t total;
};

static void run_range(qfmt_pool *p, unsigned w)
{
    size_t b = p->total * w / p->n, e = p->total * (w + 1) / p->n;
    if (b < e) p->fn(p->ctx, b, e);
}

typedef struct {
    qfmt_pool *p;
    unsigned w;
} wctx;

/* Waits until the job counter moves past `seen`; false when the pool is closing. */
static bool wait_job(qfmt_pool *p, unsigned long seen)
{
    for (unsigned i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load_explicit(&p->gen, memory_order_acquire) != seen) return true;
        if (atomic_load_explicit(&p->quit, memory_order_relaxed)) return false;
        CPU_RELAX();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->go, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return !atomic_load(&p->quit);
}

static void *worker_main(void *arg)
{
    wctx *c = arg;
    qfmt_pool *p = c->p;
    unsigned long seen = 0;
    while (wait_job(p, seen)) {
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        run_range(p, c->w);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
    free(c);
    return NULL;
}

qfmt_pool *qfmt_pool_new(unsigned threads)
{
    qfmt_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = threads ? threads : 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->quit, false);
    p->tid = calloc(p->n, sizeof *p->tid);
    if (!p->tid) {
        free(p);
        return NULL;
    }
    unsigned made = 1;
    for (unsigned w = 1; w < p->n; w++) {
        wctx *c = malloc(sizeof *c);
        if (!c) break;
        c->p = p;
        c->w = w;
        if (pthread_create(&p->tid[w], NULL, worker_main, c) != 0) {
            free(c);
            break;
        }
        made++;
    }
    p->n = made; /* fewer threads if the system would not give more */
    return p;
}

void qfmt_pool_free(qfmt_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (unsigned w = 1; w < p->n; w++) pthread_join(p->tid[w], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    free(p->tid);
    free(p);
}

unsigned qfmt_pool_size(const qfmt_pool *p) { return p ? p->n : 1; }

void qfmt_pool_for(qfmt_pool *p, size_t n, void (*fn)(void *, size_t, size_t), void *ctx)
{
    if (!p || p->n == 1 || n < 2) {
        if (n) fn(ctx, 0, n);
        return;
    }
    /* The previous job is over (pending reached 0), so no worker reads these fields now. */
    p->fn = fn;
    p->ctx = ctx;
    p->total = n;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: ordered before the sleepers check */
    if (atomic_load(&p->sleepers)) {
        pthread_mutex_lock(&p->mu); /* a sleeper checks gen under the lock: no lost wake-up */
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
    }
    run_range(p, 0);
    for (unsigned i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) != 0; i++) {
        if (i < SPIN_ROUNDS) CPU_RELAX();
        else sched_yield();
    }
}
