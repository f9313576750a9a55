/* Declarations of every conversion kernel, scalar and SIMD (ggml's split: references in one
 * place, SIMD kernels apart, the choice between them in a third). The layers:
 *
 *   types/floats.c, types/q*.c   scalar references: they define the bits
 *   types/..._avx2.c              AVX2+FMA+F16C kernels, bit for bit the references; they call
 *                                only references (for tails) and never each other
 *   dispatch.c                   the one place that picks a kernel for the CPU (cpu.c)
 *   convert.c, quant.c           public entry points, through dispatch.h only
 *
 * This header holds declarations only; no kernel file includes dispatch.h. */
#ifndef QFMT_INTERNAL_KERNELS_H
#define QFMT_INTERNAL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifndef QFMT_STATIC_LINKING_ONLY
#define QFMT_STATIC_LINKING_ONLY /* qfmt_quantize_blocks_fn, qfmt_dequantize_blocks_fn */
#endif
#include "qfmt.h"

/* -DQFMT_NO_AVX2 builds the scalar references alone (and checks that build on x86). */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(QFMT_NO_AVX2)
#define QFMT__HAVE_AVX2_KERNELS 1 /* types/..._avx2.c compile to kernels (else to nothing) */
#else
#define QFMT__HAVE_AVX2_KERNELS 0
#endif

/* ---- Float rows: F16/BF16 <-> F32 (references in types/floats.c) ------------------------- */
/* Pointers need no alignment: qfmt_convert_floats takes any. n values each. */
typedef void (*qfmt__to_f32_fn)(const void *src, float *dst, size_t n);
typedef void (*qfmt__from_f32_fn)(const float *src, void *dst, size_t n);
typedef size_t (*qfmt__first_nonfinite_fn)(const float *x, size_t n);

void qfmt__f16_to_f32_ref(const void *src, float *dst, size_t n);
void qfmt__bf16_to_f32_ref(const void *src, float *dst, size_t n);
void qfmt__f32_to_f16_ref(const float *src, void *dst, size_t n);
void qfmt__f32_to_bf16_ref(const float *src, void *dst, size_t n);
/* Index of the first NaN or infinity in x[0..n), or n. */
size_t qfmt__first_nonfinite_ref(const float *x, size_t n);

/* types/floats_avx2.c: the same bits; usable only with QFMT_CPU_AVX2. */
void qfmt__f16_to_f32_avx2(const void *src, float *dst, size_t n);
void qfmt__bf16_to_f32_avx2(const void *src, float *dst, size_t n);
void qfmt__f32_to_f16_avx2(const float *src, void *dst, size_t n);
void qfmt__f32_to_bf16_avx2(const float *src, void *dst, size_t n);
size_t qfmt__first_nonfinite_avx2(const float *x, size_t n);

/* ---- Blocks (qfmt_quantize_blocks_fn / qfmt_dequantize_blocks_fn, see qfmt.h) ------------- */
/* Scalar references, one file per type under types/. */
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

/* ggml's other block types (issue 16), byte-identical to ggml-quants.c: `nb` blocks of the
 * type's own size (32 values for q5_0, q5_1 and iq4_nl; 256 for the K types and iq4_xs).
 * _quantize_ref returns the blocks done (fewer: block [return] has a scale that fp16 cannot
 * hold) and gives ggml's quantize_row_<t>_ref bytes (for iq4_nl and iq4_xs: quantize_<t> with
 * no importance). */
size_t qfmt__q5_0_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__q5_0_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q5_1_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__q5_1_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q2_k_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__q2_k_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q3_k_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__q3_k_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q4_k_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__q4_k_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q5_k_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__q5_k_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__q6_k_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__q6_k_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__iq4_nl_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__iq4_nl_dequantize_ref(const uint8_t *y, float *x, size_t nb);
size_t qfmt__iq4_xs_quantize_ref(const float *x, uint8_t *y, size_t nb);
void qfmt__iq4_xs_dequantize_ref(const uint8_t *y, float *x, size_t nb);

/* Importance-weighted quantization of ONE row of n values (a multiple of the block size):
 * w[0..n) is the per-column importance (llama.cpp's imatrix in_sum2 / counts), never NULL.
 * Returns the row's blocks done, as _quantize_ref. For ggml's types the bytes are those of
 * ggml's quantize_<t>(x, y, 1, n, w) (q8_0: the reference, ggml has no weighted q8_0); the z
 * types' weighted search is qfmt's own (spec: "Importance"). */
typedef size_t (*qfmt__quantize_row_imat_fn)(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__q8_0_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__q4_0_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__q4_1_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__q5_0_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__q5_1_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__q2_k_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__q3_k_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__q4_k_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__q5_k_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__q6_k_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__iq4_nl_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__iq4_xs_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__q8_z_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);
size_t qfmt__q4_z_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w);

/* types/quant_avx2.c: the same bytes as the references; usable only with QFMT_CPU_AVX2. */
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
