/*
 * gemm.h - the fast path's matrix-product kernels: activations quantized to 8-bit blocks of
 * 32 (one scale each, as q8_0) against weight blocks (or super-blocks of 256), integer dot
 * products within a block of 32 and fp32 across blocks (ops.c documents the order). ops.c
 * holds the scalar reference and picks a kernel; gemm_x86.c holds the SIMD kernels, each tested
 * against the reference on the CPU it runs on (tests/test_model.c).
 */
#ifndef QFMT_RUNTIME_GEMM_H
#define QFMT_RUNTIME_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops.h"

/* One block of 32 activations: x ~ d*q, sum = sum(q), s = d * sum (for the offset terms),
 * hs = the sums of q[0..16) and q[16..32) (the offset terms of 16-value sub-blocks, q2_k's
 * mins); |q| <= 127, so |sum| <= 4064 and |hs| <= 2032. */
typedef struct {
    float d, s;
    int32_t sum;
    int16_t hs[2];
    int8_t q[32];
} xblock;

/* Kernel levels, each usable only when the CPU has it (gemm_level_available). */
typedef enum {
    GEMM_SCALAR = 0, /* portable C, the reference */
    GEMM_AVX2 = 1,   /* AVX2 + FMA + F16C */
    GEMM_VNNI = 2,   /* AVX-512 VNNI on 256-bit vectors (AVX512VL); repacked strips for q8_0 / q4_0 */
    GEMM_AMX = 3,    /* VNNI, and AMX-INT8 tiles for q4_0 / q8_0 against 16 activation rows or more */
} gemm_level;

bool qfmt__gemm_level_available(gemm_level l);
gemm_level qfmt__gemm_best_level(void);

/* Quantizes n floats (a multiple of 32) to n/32 blocks; round half to even, like every level. */
void qfmt__act_quantize_scalar(const float *x, size_t n, xblock *out);
void qfmt__act_quantize_avx2(const float *x, size_t n, xblock *out);

/* y[t * ldy + r] = sum_k w[r][k] x[t][k] (+ bias[r]) for rows r in [r0, r1) and t < T, where
 * x[t] is given as xq[t * nb .. t * nb + nb) with nb = w->cols / 32. */
typedef void (*gemm_q_fn)(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                          const float *bias);
void qfmt__gemm_q_scalar(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                   const float *bias);
void qfmt__gemm_q_avx2(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                 const float *bias);
void qfmt__gemm_q_vnni(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                 const float *bias);
void qfmt__gemm_q_amx(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                const float *bias);
/* The AMX level's activation tiles, laid out once per product and shared by every thread:
 * qfmt__amx_b_size(w, T) bytes (0: w or T does not take the AMX kernel, or the size overflows),
 * filled for token groups [g0, g1) of 16 by qfmt__amx_pack_b; then qfmt__gemm_q_amx_b computes
 * rows [r0, r1) from them as qfmt__gemm_q_amx does. */
size_t qfmt__amx_b_size(const qmat *w, size_t T);
void qfmt__amx_pack_b(const qmat *w, const xblock *xq, size_t T, size_t g0, size_t g1, uint8_t *out);
void qfmt__gemm_q_amx_b(const qmat *w, const uint8_t *bpack, uint8_t *scratch, size_t T, size_t r0, size_t r1,
                  float *y, size_t ldy, const float *bias);
/* The working memory qfmt__gemm_q_amx_b uses for one call (64-byte aligned when given; NULL
 * scratch: it allocates its own). */
size_t qfmt__amx_scratch_size(const qmat *w);

/* Weights repacked once, at load, for decoding with the VNNI kernels (q4_0 and q8_0; the same
 * bytes as the rows, reordered so that a vector lane is a row). qfmt__gemm_pack_size: the
 * bytes qfmt__gemm_pack writes for w, 0 when w's type has no packed form, the CPU lacks VNNI
 * or the size overflows; qfmt__gemm_pack fills out (64-byte aligned). A qmat whose `pack` is
 * set gives bit for bit what it gives without. */
size_t qfmt__gemm_pack_size(const qmat *w);
void qfmt__gemm_pack(const qmat *w, uint8_t *out);

/* Float weights (F16, BF16) against fp32 activations, one row: sum_k w[k] x[k]. */
float qfmt__dot_f16_avx2(const uint8_t *w, const float *x, size_t n);
float qfmt__dot_bf16_avx2(const uint8_t *w, const float *x, size_t n);
/* Float weights (F16, BF16) against T fp32 activation rows, rows [r0, r1): y as above. */
void qfmt__gemm_f_avx2(const qmat *w, const float *x, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                 const float *bias);
/* The same with AVX-512 (CPUs of the VNNI level): tiles of 4 rows x 6 activation rows. */
void qfmt__gemm_f_avx512(const qmat *w, const float *x, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                   const float *bias);

#endif
