/* What the block kernels share, scalar references (types/q*.c) and SIMD kernels
 * (types/..._avx2.c) alike: the block size and the little helpers on a block's fields. Only
 * inline functions and declarations from qfmt.h: including it ties a file to nothing else. */
#ifndef QFMT_INTERNAL_BLOCK_H
#define QFMT_INTERNAL_BLOCK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "qfmt.h"

#define QFMT__QK 32 /* values per block (spec: "Block-quantized types") */

/* fp16 fields of blocks, little-endian. */
static inline uint16_t qfmt__ld16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void qfmt__st16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
/* fp32 -> fp16 -> fp32: the value a stored scale really has. */
static inline float qfmt__f16_round(float f) { return qfmt_f16_to_f32(qfmt_f32_to_f16(f)); }
static inline int qfmt__f16_finite(uint16_t h) { return (h & 0x7C00u) != 0x7C00u; }

/* 1/d in fp32, 0 when d is 0 or so small that 1/d overflows (its block then stores 0). */
static inline float qfmt__inv(float d)
{
    if (d == 0.0f) return 0.0f;
    float id = 1.0f / d;
    return isinf(id) ? 0.0f : id;
}

/* Squared error of a reconstruction. */
static inline double qfmt__sse(const float *x, const float *r, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        double e = (double)x[i] - (double)r[i];
        s += e * e;
    }
    return s;
}

#endif
