/* The only file that includes xxhash.h; XXH_INLINE_ALL keeps its symbols private to this unit. */
#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "internal/checksum.h"

uint64_t qfmt__xxh3(const void *p, size_t n) { return (uint64_t)XXH3_64bits(p, n); }

/* XXH3_state_t wants 64-byte alignment; our allocator only promises malloc's. */
struct qfmt__hasher {
    void *block;         /* what the allocator returned */
    XXH3_state_t *state; /* aligned inside block */
};

qfmt__hasher *qfmt__hasher_new(const qfmt__alloc *al)
{
    qfmt__hasher *h = qfmt__malloc(al, sizeof *h);
    if (!h) return NULL;
    h->block = qfmt__malloc(al, sizeof(XXH3_state_t) + 64);
    if (!h->block) {
        qfmt__free(al, h);
        return NULL;
    }
    uintptr_t a = ((uintptr_t)h->block + 63) & ~(uintptr_t)63;
    h->state = (XXH3_state_t *)a;
    XXH3_INITSTATE(h->state);
    XXH3_64bits_reset(h->state);
    return h;
}

void qfmt__hasher_free(const qfmt__alloc *al, qfmt__hasher *h)
{
    if (!h) return;
    qfmt__free(al, h->block);
    qfmt__free(al, h);
}

void qfmt__hasher_reset(qfmt__hasher *h) { XXH3_64bits_reset(h->state); }
void qfmt__hasher_update(qfmt__hasher *h, const void *p, size_t n)
{
    if (n) XXH3_64bits_update(h->state, p, n);
}
uint64_t qfmt__hasher_digest(const qfmt__hasher *h) { return (uint64_t)XXH3_64bits_digest(h->state); }

uint64_t qfmt_checksum(const void *data, size_t n) { return data || !n ? qfmt__xxh3(data, n) : 0; }
