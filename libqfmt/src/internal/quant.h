/* Block quantization kernels (spec: "Block-quantized types"). Every block holds 32
 * consecutive values of a row. Kernels work on whole blocks of finite fp32 input; the
 * dispatcher (quant.c) checks finiteness, threads and source types. */
#ifndef QFMT_INTERNAL_QUANT_H
#define QFMT_INTERNAL_QUANT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal/cpu.h"
#ifndef QFMT_STATIC_LINKING_ONLY
#define QFMT_STATIC_LINKING_ONLY
#endif
#include "qfmt.h"

#define QFMT__QK 32

/* qfmt__quant_kernels, qfmt__quant_get and every kernel: declared in qfmt.h
 * (QFMT_STATIC_LINKING_ONLY), for the tests. */

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
