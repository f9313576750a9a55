/* The one place that chooses kernels for the CPU (cpu.c): the block kernels' table, the float
 * rows' levels and the public row decoders. The kernel files declare and define; only this
 * file names them all, and none of them calls back here. */
#include <string.h>

#include "internal/block.h"
#include "internal/dispatch.h"

#if QFMT__HAVE_AVX2_KERNELS
#define AVX2_OR_NULL(f) f
#else
#define AVX2_OR_NULL(f) NULL
#endif

/* ---- Block types -------------------------------------------------------------------------- */
/* Types with a best-quality search and AVX2 kernels of their own. */
#define KERNELS(T, id, bytes)                                                                     \
    {id, 32, bytes, qfmt__##T##_quantize_ref, qfmt__##T##_dequantize_ref, qfmt__##T##_quantize_best, \
     AVX2_OR_NULL(qfmt__##T##_quantize_avx2), AVX2_OR_NULL(qfmt__##T##_dequantize_avx2),         \
     qfmt__##T##_quantize_imat}
/* ggml's other types: the reference is the only encoder (the K types' and iq4's references
 * already search), and every level runs it. */
#define KERNELS_REF(T, id, elems, bytes)                                                          \
    {id, elems, bytes, qfmt__##T##_quantize_ref, qfmt__##T##_dequantize_ref, qfmt__##T##_quantize_ref, \
     NULL, NULL, qfmt__##T##_quantize_imat}

static const qfmt_quant_kernels kernels[] = {
    KERNELS(q8_0, QFMT_TYPE_Q8_0, 34),  KERNELS(q4_0, QFMT_TYPE_Q4_0, 18),
    KERNELS(q4_1, QFMT_TYPE_Q4_1, 20),  KERNELS(q8_z, QFMT_TYPE_Q8_Z, 35),
    KERNELS(q4_z, QFMT_TYPE_Q4_Z, 19),
    KERNELS_REF(q5_0, QFMT_TYPE_Q5_0, 32, 22),   KERNELS_REF(q5_1, QFMT_TYPE_Q5_1, 32, 24),
    KERNELS_REF(q2_k, QFMT_TYPE_Q2_K, 256, 84),  KERNELS_REF(q3_k, QFMT_TYPE_Q3_K, 256, 110),
    KERNELS_REF(q4_k, QFMT_TYPE_Q4_K, 256, 144), KERNELS_REF(q5_k, QFMT_TYPE_Q5_K, 256, 176),
    KERNELS_REF(q6_k, QFMT_TYPE_Q6_K, 256, 210), KERNELS_REF(iq4_nl, QFMT_TYPE_IQ4_NL, 32, 18),
    KERNELS_REF(iq4_xs, QFMT_TYPE_IQ4_XS, 256, 136),
};

const qfmt_quant_kernels *qfmt_quant_kernels_get(uint32_t type)
{
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        if (kernels[i].type == type) return &kernels[i];
    return NULL;
}

static bool have_avx2(void) { return QFMT__HAVE_AVX2_KERNELS && (qfmt_cpu_features() & QFMT_CPU_AVX2); }

bool qfmt_kernel_available(qfmt_kernel k)
{
    return k == QFMT_KERNEL_AUTO || k == QFMT_KERNEL_SCALAR || (k == QFMT_KERNEL_AVX2 && have_avx2());
}

qfmt_kernel qfmt__kernel_resolve(qfmt_kernel k)
{
    if (k == QFMT_KERNEL_AUTO) return have_avx2() ? QFMT_KERNEL_AVX2 : QFMT_KERNEL_SCALAR;
    return k == QFMT_KERNEL_AVX2 && have_avx2() ? QFMT_KERNEL_AVX2 : QFMT_KERNEL_SCALAR;
}

qfmt_quantize_blocks_fn qfmt__quantizer(const qfmt_quant_kernels *k, qfmt_kernel level, bool best)
{
    if (best) return k->quantize_best;
    return level == QFMT_KERNEL_AVX2 && k->quantize_avx2 ? k->quantize_avx2 : k->quantize_ref;
}

qfmt_dequantize_blocks_fn qfmt__dequantizer(const qfmt_quant_kernels *k, qfmt_kernel level)
{
    return level == QFMT_KERNEL_AVX2 && k->dequantize_avx2 ? k->dequantize_avx2 : k->dequantize_ref;
}

/* ---- Float rows --------------------------------------------------------------------------- */
static const qfmt__float_kernels floats_ref = {qfmt__f16_to_f32_ref, qfmt__bf16_to_f32_ref,
                                               qfmt__f32_to_f16_ref, qfmt__f32_to_bf16_ref,
                                               qfmt__first_nonfinite_ref};
#if QFMT__HAVE_AVX2_KERNELS
static const qfmt__float_kernels floats_avx2 = {qfmt__f16_to_f32_avx2, qfmt__bf16_to_f32_avx2,
                                                qfmt__f32_to_f16_avx2, qfmt__f32_to_bf16_avx2,
                                                qfmt__first_nonfinite_avx2};
#endif

const qfmt__float_kernels *qfmt__float_kernels_get(qfmt_kernel level)
{
#if QFMT__HAVE_AVX2_KERNELS
    if (level == QFMT_KERNEL_AVX2) return &floats_avx2;
#else
    (void)level;
#endif
    return &floats_ref;
}

/* ---- Row decoders (qfmt_row_decoder) ------------------------------------------------------ */
/* Blocks: n values are n / 32 blocks (n / 256 for the super-block types). */
#define ROW_N(fn, elems)                                                                         \
    static void row_##fn(const void *src, float *dst, size_t n)                                  \
    {                                                                                            \
        qfmt__##fn((const uint8_t *)src, dst, n / (elems));                                      \
    }
#define ROW(fn) ROW_N(fn, QFMT__QK)
ROW(q8_0_dequantize_ref) ROW(q4_0_dequantize_ref) ROW(q4_1_dequantize_ref)
ROW(q8_z_dequantize_ref) ROW(q4_z_dequantize_ref)
ROW(q5_0_dequantize_ref) ROW(q5_1_dequantize_ref) ROW(iq4_nl_dequantize_ref)
ROW_N(q2_k_dequantize_ref, 256) ROW_N(q3_k_dequantize_ref, 256) ROW_N(q4_k_dequantize_ref, 256)
ROW_N(q5_k_dequantize_ref, 256) ROW_N(q6_k_dequantize_ref, 256) ROW_N(iq4_xs_dequantize_ref, 256)
#if QFMT__HAVE_AVX2_KERNELS
ROW(q8_0_dequantize_avx2) ROW(q4_0_dequantize_avx2) ROW(q4_1_dequantize_avx2)
ROW(q8_z_dequantize_avx2) ROW(q4_z_dequantize_avx2)
#endif

static void row_f32(const void *src, float *dst, size_t n) { memcpy(dst, src, n * sizeof(float)); }

typedef struct {
    uint32_t type;
    qfmt_row_decode_fn ref, avx2; /* avx2 NULL: the reference serves every level */
} row_entry;

static const row_entry rows[] = {
    {QFMT_TYPE_F32, row_f32, NULL},
    {QFMT_TYPE_F16, qfmt__f16_to_f32_ref, AVX2_OR_NULL(qfmt__f16_to_f32_avx2)},
    {QFMT_TYPE_BF16, qfmt__bf16_to_f32_ref, AVX2_OR_NULL(qfmt__bf16_to_f32_avx2)},
#if QFMT__HAVE_AVX2_KERNELS
#define ROWS(T) row_##T##_dequantize_ref, row_##T##_dequantize_avx2
#else
#define ROWS(T) row_##T##_dequantize_ref, NULL
#endif
    {QFMT_TYPE_Q8_0, ROWS(q8_0)}, {QFMT_TYPE_Q4_0, ROWS(q4_0)}, {QFMT_TYPE_Q4_1, ROWS(q4_1)},
    {QFMT_TYPE_Q8_Z, ROWS(q8_z)}, {QFMT_TYPE_Q4_Z, ROWS(q4_z)},
    {QFMT_TYPE_Q5_0, row_q5_0_dequantize_ref, NULL}, {QFMT_TYPE_Q5_1, row_q5_1_dequantize_ref, NULL},
    {QFMT_TYPE_Q2_K, row_q2_k_dequantize_ref, NULL}, {QFMT_TYPE_Q3_K, row_q3_k_dequantize_ref, NULL},
    {QFMT_TYPE_Q4_K, row_q4_k_dequantize_ref, NULL}, {QFMT_TYPE_Q5_K, row_q5_k_dequantize_ref, NULL},
    {QFMT_TYPE_Q6_K, row_q6_k_dequantize_ref, NULL}, {QFMT_TYPE_IQ4_NL, row_iq4_nl_dequantize_ref, NULL},
    {QFMT_TYPE_IQ4_XS, row_iq4_xs_dequantize_ref, NULL},
};

qfmt_row_decode_fn qfmt_row_decoder(uint32_t type)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].type == type) return rows[i].avx2 && have_avx2() ? rows[i].avx2 : rows[i].ref;
    return NULL;
}
