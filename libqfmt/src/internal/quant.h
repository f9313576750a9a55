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
#include "qfmt.h"

#define QFMT__QK 32

/* A kernel quantizes nb blocks and returns how many it did: fewer means block [return]
 * cannot be stored (a scale or offset beyond fp16's range). */
typedef size_t (*qfmt__quantize_fn)(const float *x, uint8_t *y, size_t nb);
typedef void (*qfmt__dequantize_fn)(const uint8_t *y, float *x, size_t nb);

typedef struct {
    uint32_t type;
    uint32_t block_bytes;
    qfmt__quantize_fn quantize_ref;     /* the reference: defines the bytes */
    qfmt__dequantize_fn dequantize_ref;
    qfmt__quantize_fn quantize_best;    /* error-minimising search, never worse per block */
    qfmt__quantize_fn quantize_avx2;    /* same bytes as quantize_ref; NULL if none */
    qfmt__dequantize_fn dequantize_avx2;
} qfmt__quant_kernels;

/* The kernels of a block type, or NULL. */
const qfmt__quant_kernels *qfmt__quant_get(uint32_t type);

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

/* Scalar kernels, one file per type under types/. */
size_t qfmt__q8_0_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__q8_0_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q8_0_quantize_best(const float *x, uint8_t *y, size_t nb);
size_t qfmt__q4_0_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__q4_0_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q4_0_quantize_best(const float *x, uint8_t *y, size_t nb);
size_t qfmt__q4_1_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__q4_1_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q4_1_quantize_best(const float *x, uint8_t *y, size_t nb);
size_t qfmt__q8_z_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__q8_z_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q8_z_quantize_best(const float *x, uint8_t *y, size_t nb);
size_t qfmt__q4_z_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__q4_z_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q4_z_quantize_best(const float *x, uint8_t *y, size_t nb);

/* AVX2+FMA+F16C kernels (quant_avx2.c), usable only when qfmt__cpu_has_avx2(). */
size_t qfmt__q8_0_quantize_avx2(const float *x, uint8_t *y, size_t nb);
void qfmt__q8_0_dequantize_avx2(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q4_0_quantize_avx2(const float *x, uint8_t *y, size_t nb);
void qfmt__q4_0_dequantize_avx2(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q4_1_quantize_avx2(const float *x, uint8_t *y, size_t nb);
void qfmt__q4_1_dequantize_avx2(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q8_z_quantize_avx2(const float *x, uint8_t *y, size_t nb);
void qfmt__q8_z_dequantize_avx2(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q4_z_quantize_avx2(const float *x, uint8_t *y, size_t nb);
void qfmt__q4_z_dequantize_avx2(const uint8_t *y, float *x, size_t nb);

#endif
