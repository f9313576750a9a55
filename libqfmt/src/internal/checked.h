/* Overflow-checked arithmetic for sizes read from files (cf. libgit2 src/util/integer.h).
 * Each returns false when the exact result does not fit. */
#ifndef QFMT_INTERNAL_CHECKED_H
#define QFMT_INTERNAL_CHECKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool qfmt__add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}
static inline bool qfmt__mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
/* Rounds x up to a multiple of `align` (a power of two). */
static inline bool qfmt__align_up(uint64_t x, uint64_t align, uint64_t *out)
{
    uint64_t t;
    if (!qfmt__add_u64(x, align - 1, &t)) return false;
    *out = t & ~(align - 1);
    return true;
}
static inline bool qfmt__is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* The reserved fields of a caller's struct (qfmt.h: "Structs that can grow") are all zero. */
static inline bool qfmt__zero_u64s(const uint64_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (r[i]) return false;
    return true;
}
#define QFMT__RESERVED_ZERO(s) qfmt__zero_u64s((s)->reserved, sizeof (s)->reserved / sizeof (s)->reserved[0])

#endif
