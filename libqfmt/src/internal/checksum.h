/* XXH3-64 (seed 0), the only checksum of the format. checksum.c is the one file that includes
 * xxhash.h. */
#ifndef QFMT_INTERNAL_CHECKSUM_H
#define QFMT_INTERNAL_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#include "alloc.h"

uint64_t qfmt__xxh3(const void *p, size_t n);

/* Streaming state, for data that arrives in pieces. */
typedef struct qfmt__hasher qfmt__hasher;
qfmt__hasher *qfmt__hasher_new(const qfmt__alloc *al);
void qfmt__hasher_free(const qfmt__alloc *al, qfmt__hasher *h);
void qfmt__hasher_reset(qfmt__hasher *h);
void qfmt__hasher_update(qfmt__hasher *h, const void *p, size_t n);
uint64_t qfmt__hasher_digest(const qfmt__hasher *h);

#endif
