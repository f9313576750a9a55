/* The allocator every handle uses: the caller's qfmt_allocator, or malloc/free. */
#ifndef QFMT_INTERNAL_ALLOC_H
#define QFMT_INTERNAL_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "qfmt.h"

typedef struct {
    qfmt_allocator a; /* always filled: defaults to malloc/free */
} qfmt__alloc;

void qfmt__alloc_init(qfmt__alloc *al, const qfmt_allocator *user);
void *qfmt__malloc(const qfmt__alloc *al, size_t n);
/* n * size bytes, or NULL when that overflows size_t or the allocation fails. */
void *qfmt__malloc_array(const qfmt__alloc *al, uint64_t n, size_t size);
void *qfmt__calloc_array(const qfmt__alloc *al, uint64_t n, size_t size);
void qfmt__free(const qfmt__alloc *al, void *p);
/* Grows *p (holding `used` bytes) to `n` bytes; keeps *p on failure. */
int qfmt__grow(const qfmt__alloc *al, void **p, size_t used, size_t n);
char *qfmt__strndup(const qfmt__alloc *al, const char *s, size_t n);

#endif
