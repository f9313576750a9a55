/* A fixed thread pool for the forward pass: one parallel-for at a time. Threads are made once
 * per model, not per matrix product.
 *
 * Generating one token runs ~8 parallel-fors per layer, each a few tens of microseconds: waking
 * a sleeping thread through a condition variable costs about as much. So a worker that has just
 * finished a job spins on the job counter for a while before it goes to sleep. The range is cut
 * into a few chunks per thread that threads claim as they go, the caller included, so a worker
 * that is slow to wake or has lost its core to another process delays the job by at most the
 * chunk it holds, not by its whole share. (The kernels give the same bits however the range
 * is cut.) */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#include "ops.h"

enum {
    SPIN_ROUNDS = 1 << 14,  /* pause instructions before sleeping or yielding: ~0.1-1 ms */
    CHUNKS_PER_THREAD = 4,
};

struct qfmt_pool {
    unsigned n; /* threads including the caller */
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t go;
    atomic_ulong gen;      /* bumped for each job; its low 32 bits are the job's id */
    atomic_uint sleepers;  /* workers blocked (or about to block) on `go` */
    atomic_bool quit;
    /* The job: set by the caller before it publishes `claim`, read by threads holding a chunk. */
    void (*fn)(void *, size_t, size_t);
    void *ctx;
    size_t total;
    atomic_uint_fast64_t claim; /* see claim_word */
    atomic_size_t done;         /* chunks finished */
};

/* The claim word: job id (32 bits) | chunk count (16) | next chunk (16). The count travels
 * with the job id, so a thread still looking at a finished job can never take a chunk of the
 * next one (nor reopen its own with the next job's count). */
static inline uint64_t claim_word(uint32_t job, size_t nch) { return (uint64_t)job << 32 | (uint64_t)nch << 16; }

/* Takes the next chunk of job `job`; false when that job has none left (or is over). */
static bool claim_chunk(qfmt_pool *p, uint32_t job, size_t *chunk, size_t *nch)
{
    uint64_t v = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        size_t count = (size_t)(v >> 16 & 0xFFFFu), next = (size_t)(v & 0xFFFFu);
        if ((uint32_t)(v >> 32) != job || next >= count) return false;
        if (atomic_compare_exchange_weak_explicit(&p->claim, &v, v + 1, memory_order_acq_rel, memory_order_acquire)) {
            *chunk = next;
            *nch = count;
            return true;
        }
    }
}

/* Runs chunks of job `job` until none is left. */
static void work(qfmt_pool *p, uint32_t job)
{
    size_t c, nch;
    while (claim_chunk(p, job, &c, &nch)) {
        size_t b = p->total * c / nch, e = p->total * (c + 1) / nch;
        if (b < e) p->fn(p->ctx, b, e);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

/* Waits until the job counter moves past `seen`; returns the new value, or `seen` when the
 * pool is closing. */
static unsigned long wait_job(qfmt_pool *p, unsigned long seen)
{
    for (unsigned i = 0; i < SPIN_ROUNDS; i++) {
        unsigned long g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen) return g;
        if (atomic_load_explicit(&p->quit, memory_order_relaxed)) return seen;
        CPU_RELAX();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->go, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return atomic_load(&p->quit) ? seen : atomic_load(&p->gen);
}

static void *worker_main(void *arg)
{
    qfmt_pool *p = arg;
    unsigned long seen = 0, g;
    while ((g = wait_job(p, seen)) != seen) {
        work(p, (uint32_t)g);
        seen = g;
    }
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
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->quit, false);
    atomic_init(&p->claim, 0);
    atomic_init(&p->done, 0);
    p->tid = calloc(p->n, sizeof *p->tid);
    if (!p->tid) {
        free(p);
        return NULL;
    }
    unsigned made = 1;
    for (unsigned w = 1; w < p->n; w++) {
        if (pthread_create(&p->tid[w], NULL, worker_main, p) != 0) break;
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
    size_t nch = (size_t)p->n * CHUNKS_PER_THREAD;
    if (nch > n) nch = n;
    if (nch > 0xFFFF) nch = 0xFFFF;
    /* The previous job is over (all its chunks done), so no thread reads these fields now. */
    p->fn = fn;
    p->ctx = ctx;
    p->total = n;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    uint32_t job = (uint32_t)(atomic_load_explicit(&p->gen, memory_order_relaxed) + 1);
    atomic_store_explicit(&p->claim, claim_word(job, nch), memory_order_release);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: ordered before the sleepers check */
    if (atomic_load(&p->sleepers)) {
        pthread_mutex_lock(&p->mu); /* a sleeper checks gen under the lock: no lost wake-up */
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
    }
    work(p, job);
    for (unsigned i = 0; atomic_load_explicit(&p->done, memory_order_acquire) != nch; i++) {
        if (i < SPIN_ROUNDS) CPU_RELAX();
        else sched_yield(); /* a worker holding a chunk lost its core: let it run */
    }
}
