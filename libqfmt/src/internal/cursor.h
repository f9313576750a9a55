/* A bounded cursor over the map: absolute file offsets, never past `end`. */
#ifndef QFMT_INTERNAL_CURSOR_H
#define QFMT_INTERNAL_CURSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "bytes.h"

typedef struct {
    const uint8_t *base;
    uint64_t pos, end; /* pos <= end always holds, so end - pos cannot wrap */
} qfmt__cur;

static inline bool qfmt__cur_has(const qfmt__cur *c, uint64_t n) { return n <= c->end - c->pos; }
static inline const uint8_t *qfmt__cur_take(qfmt__cur *c, uint64_t n)
{
    if (!qfmt__cur_has(c, n)) return 0;
    const uint8_t *p = c->base + c->pos;
    c->pos += n;
    return p;
}
static inline bool qfmt__cur_u32(qfmt__cur *c, uint32_t *v)
{
    const uint8_t *p = qfmt__cur_take(c, 4);
    if (p) *v = qfmt__rd32(p);
    return p != 0;
}
static inline bool qfmt__cur_u64(qfmt__cur *c, uint64_t *v)
{
    const uint8_t *p = qfmt__cur_take(c, 8);
    if (p) *v = qfmt__rd64(p);
    return p != 0;
}

#endif
