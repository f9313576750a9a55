/* A fixed thread pool for the forward pass: one parallel-for at a time, the caller taking the
 * first range itself. Threads are made once per model, not per matrix product. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>

#include "ops.h"

struct qfmt_pool {
    unsigned n; /* threads including the caller */
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;  /* bumped for each job */
    unsigned pending;   /* workers still running the current job */
    bool quit;
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

static void *worker_main(void *arg)
{
    wctx *c = arg;
    qfmt_pool *p = c->p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_range(p, c->w);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
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
    pthread_cond_init(&p->done, NULL);
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
    p->quit = true;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (unsigned w = 1; w < p->n; w++) pthread_join(p->tid[w], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
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
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->total = n;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    run_range(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
