/*
 * test_pool.c - the runtime's thread pool (libqfmt_model/src/pool.c): every index of every parallel-for
 * is run exactly once and before qfmt_pool_for returns, with more threads than cores, with
 * ranges shorter than the chunk count, and across the workers' spin-then-sleep boundary.
 */
#include "test_helpers.h"

#include <stdatomic.h>
#include <time.h>

#include "ops.h"

enum { MAXN = 4096 };
static atomic_int hits[MAXN];

static void mark(void *ctx, size_t b, size_t e) {
    (void)ctx;
    for (size_t i = b; i < e; i++) atomic_fetch_add(&hits[i], 1);
}

Test(pool, every_index_once) {
    for (unsigned threads = 1; threads <= 5; threads++) {
        qfmt_pool *p = qfmt_pool_new(threads);
        cr_assert_not_null(p);
        cr_assert_geq(qfmt_pool_size(p), 1);
        for (int job = 0; job < 3000; job++) {
            size_t n = (size_t)(job * 7919) % MAXN; /* 0, tiny and large ranges */
            qfmt_pool_for(p, n, mark, NULL);
            for (size_t i = 0; i < n; i++) {
                int h = atomic_exchange(&hits[i], 0);
                cr_assert_eq(h, 1, "%u threads, job %d: index %zu of %zu ran %d times", threads, job, i, n, h);
            }
            if (job % 1000 == 999) { /* long enough for the workers to go to sleep */
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        qfmt_pool_free(p);
    }
    qfmt_pool_free(NULL);
}
