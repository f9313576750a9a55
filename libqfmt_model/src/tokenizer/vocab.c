/* vocab.c - the model vocabulary: an open-addressing string -> id table over one arena, and
 * id -> string (tk_internal.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "tk_internal.h"

typedef struct {
    uint32_t off, len; /* in the arena */
    int32_t id;        /* -1: empty slot */
} slot;

struct tk_vocab {
    tk_str arena;
    slot *slots;
    size_t mask, count;
    uint32_t *by_id; /* id -> slot index + 1 (0: no such id) */
    uint32_t by_id_cap, max_id;
};

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

tk_vocab *qfmt__tk_vocab_new(void)
{
    tk_vocab *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->mask = 1023;
    if (!(v->slots = malloc((v->mask + 1) * sizeof *v->slots))) {
        free(v);
        return NULL;
    }
    for (size_t i = 0; i <= v->mask; i++) v->slots[i].id = -1;
    return v;
}

static size_t find_slot(const tk_vocab *v, const char *s, size_t n)
{
    size_t i = (size_t)hash(s, n) & v->mask;
    while (v->slots[i].id >= 0 &&
           !(v->slots[i].len == n && memcmp(v->arena.p + v->slots[i].off, s, n) == 0))
        i = (i + 1) & v->mask;
    return i;
}

static int grow_table(tk_vocab *v)
{
    size_t cap = 2 * (v->mask + 1);
    slot *old = v->slots;
    size_t old_cap = v->mask + 1;
    if (cap > SIZE_MAX / sizeof *old || !(v->slots = malloc(cap * sizeof *old))) {
        v->slots = old;
        return -1;
    }
    v->mask = cap - 1;
    for (size_t i = 0; i < cap; i++) v->slots[i].id = -1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].id >= 0) {
            size_t j = find_slot(v, v->arena.p + old[i].off, old[i].len);
            v->slots[j] = old[i];
        }
    for (size_t i = 0; i < cap; i++)
        if (v->slots[i].id >= 0) v->by_id[v->slots[i].id] = (uint32_t)i + 1;
    free(old);
    return 0;
}

int qfmt__tk_vocab_add(tk_vocab *v, const char *s, size_t n, int32_t id)
{
    if (id < 0 || (uint32_t)id >= TK_MAX_IDS || n > UINT32_MAX / 2) return 1;
    if ((uint32_t)id < v->by_id_cap && v->by_id[id]) return 1;
    size_t i = find_slot(v, s, n);
    if (v->slots[i].id >= 0) return 1;
    if ((uint32_t)id >= v->by_id_cap) {
        uint32_t cap = v->by_id_cap ? v->by_id_cap : 1024;
        while (cap <= (uint32_t)id) cap *= 2;
        uint32_t *b = realloc(v->by_id, (size_t)cap * sizeof *b);
        if (!b) return -1;
        memset(b + v->by_id_cap, 0, (size_t)(cap - v->by_id_cap) * sizeof *b);
        v->by_id = b;
        v->by_id_cap = cap;
    }
    if (v->arena.len > UINT32_MAX - n - 1) return -1;
    uint32_t off = (uint32_t)v->arena.len;
    if (qfmt__tk_str_put(&v->arena, s, n) < 0 || qfmt__tk_str_putc(&v->arena, '\0') < 0) return -1;
    v->slots[i] = (slot){off, (uint32_t)n, id};
    v->by_id[id] = (uint32_t)i + 1;
    v->count++;
    if ((uint32_t)id + 1 > v->max_id) v->max_id = (uint32_t)id + 1;
    if (v->count * 2 > v->mask + 1 && grow_table(v) < 0) return -1;
    return 0;
}

int32_t qfmt__tk_vocab_id(const tk_vocab *v, const char *s, size_t n)
{
    if (!v->arena.p) return -1;
    size_t i = find_slot(v, s, n);
    return v->slots[i].id;
}

const char *qfmt__tk_vocab_string(const tk_vocab *v, int32_t id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= v->by_id_cap || !v->by_id[id]) return NULL;
    const slot *sl = &v->slots[v->by_id[id] - 1];
    *len = sl->len;
    return v->arena.p + sl->off;
}

uint32_t qfmt__tk_vocab_max_id(const tk_vocab *v) { return v->max_id; }
size_t qfmt__tk_vocab_count(const tk_vocab *v) { return v->count; }

void qfmt__tk_vocab_free(tk_vocab *v)
{
    if (!v) return;
    qfmt__tk_str_free(&v->arena);
    free(v->slots);
    free(v->by_id);
    free(v);
}
