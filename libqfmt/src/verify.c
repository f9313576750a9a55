/* Whole-file verify: every tensor's checksum (and zstd frame), and every padding byte zero.
 * Tensors are handed to threads one at a time from a shared counter; the error reported is
 * the first bad tensor in file order, whichever thread found it. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "internal/error.h"
#include "internal/reader.h"

typedef struct {
    const qfmt_reader *r;
    atomic_uint_fast64_t next;
    atomic_uint_fast64_t first_bad; /* lowest failing index, UINT64_MAX if none */
    pthread_mutex_t lock;
    qfmt_error err; /* of first_bad */
} job;

/* Padding before tensor i (or before the metadata when i == count) must be zero. */
static qfmt_status check_gap(const qfmt_reader *r, uint64_t i, qfmt_error *err)
{
    uint64_t from = i == 0 ? QFMT_HEADER_SIZE
                           : r->tensors[i - 1].offset + r->tensors[i - 1].stored;
    uint64_t to = i == r->info.tensor_count ? r->info.metadata_offset : r->tensors[i].offset;
    for (uint64_t o = from; o < to; o++)
        if (r->base[o] != 0)
            return qfmt__rfail(r, err, QFMT_E_CORRUPT,
                               i < r->info.tensor_count ? r->tensors[i].name : NULL, o,
                               "padding byte is 0x%02x, must be zero", r->base[o]);
    return QFMT_OK;
}

static qfmt_status check_one(const qfmt_reader *r, uint64_t i, qfmt_error *err)
{
    qfmt_status s = check_gap(r, i, err);
    if (s == QFMT_OK && i < r->info.tensor_count) s = qfmt_tensor_verify(r, i, err);
    return s;
}

static void *worker(void *arg)
{
    job *j = arg;
    uint64_t n = j->r->info.tensor_count;
    for (;;) {
        uint64_t i = atomic_fetch_add(&j->next, 1);
        /* index n is the trailing gap; stop early past a known failure */
        if (i > n || i > atomic_load(&j->first_bad)) break;
        qfmt_error e;
        if (check_one(j->r, i, &e) != QFMT_OK) {
            pthread_mutex_lock(&j->lock);
            if (i < atomic_load(&j->first_bad)) {
                atomic_store(&j->first_bad, i);
                j->err = e;
            }
            pthread_mutex_unlock(&j->lock);
        }
    }
    return NULL;
}

qfmt_status qfmt_reader_verify(const qfmt_reader *r, unsigned threads, qfmt_error *err)
{
    if (!r) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL reader");
    uint64_t n = r->info.tensor_count;
    if (threads == 0) threads = 1;
    if (threads > 256) threads = 256;
    if ((uint64_t)threads > n + 1) threads = (unsigned)(n + 1);
    job j;
    j.r = r;
    atomic_init(&j.next, 0);
    atomic_init(&j.first_bad, UINT64_MAX);
    pthread_mutex_init(&j.lock, NULL);
    pthread_t tid[256];
    unsigned started = 0;
    for (unsigned t = 1; t < threads; t++) {
        if (pthread_create(&tid[started], NULL, worker, &j) != 0) break; /* fewer threads */
        started++;
    }
    worker(&j);
    for (unsigned t = 0; t < started; t++) pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&j.lock);
    if (atomic_load(&j.first_bad) != UINT64_MAX) {
        if (err) *err = j.err;
        return j.err.code;
    }
    return QFMT_OK;
}
