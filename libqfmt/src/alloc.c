#include <stdlib.h>
#include <string.h>

#include "internal/alloc.h"

static void *libc_alloc(void *ctx, size_t n)
{
    (void)ctx;
    return malloc(n ? n : 1);
}
static void libc_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

void qfmt__alloc_init(qfmt__alloc *al, const qfmt_allocator *user)
{
    if (user && user->alloc && user->free) {
        al->a = *user;
    } else {
        al->a.alloc = libc_alloc;
        al->a.free = libc_free;
        al->a.ctx = NULL;
    }
}

void *qfmt__malloc(const qfmt__alloc *al, size_t n) { return al->a.alloc(al->a.ctx, n ? n : 1); }

void *qfmt__malloc_array(const qfmt__alloc *al, uint64_t n, size_t size)
{
    size_t bytes;
    if (n > SIZE_MAX || __builtin_mul_overflow((size_t)n, size, &bytes)) return NULL;
    return qfmt__malloc(al, bytes);
}

void *qfmt__calloc_array(const qfmt__alloc *al, uint64_t n, size_t size)
{
    void *p = qfmt__malloc_array(al, n, size);
    if (p) memset(p, 0, (size_t)n * size);
    return p;
}

void qfmt__free(const qfmt__alloc *al, void *p)
{
    if (p) al->a.free(al->a.ctx, p);
}

int qfmt__grow(const qfmt__alloc *al, void **p, size_t used, size_t n)
{
    void *q = qfmt__malloc(al, n);
    if (!q) return -1;
    if (*p) {
        memcpy(q, *p, used < n ? used : n);
        qfmt__free(al, *p);
    }
    *p = q;
    return 0;
}

char *qfmt__strndup(const qfmt__alloc *al, const char *s, size_t n)
{
    if (n == SIZE_MAX) return NULL;
    char *d = qfmt__malloc(al, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}
