/*
 * test_dispatch.c - the kernel choice of dispatch.c and cpu.c: qfmt_cpu_features() and
 * qfmt_row_decoder(). The row decoder of every type must give, on any bytes, what
 * qfmt_dequantize gives: the very bits at the level it runs (AUTO), and the reference's bits
 * (SCALAR) except for which payload a NaN carries (C leaves that to the compiler, see
 * fuzz/fuzz_quant.c).
 */
#include "test_helpers.h"

#include <math.h>

typedef struct {
    uint32_t type;
    const char *name;
} rd_type;

static const rd_type DECODABLE[] = {
    {QFMT_TYPE_F32, "f32"},   {QFMT_TYPE_F16, "f16"},   {QFMT_TYPE_BF16, "bf16"},
    {QFMT_TYPE_Q8_0, "q8_0"}, {QFMT_TYPE_Q4_0, "q4_0"}, {QFMT_TYPE_Q4_1, "q4_1"},
    {QFMT_TYPE_Q8_Z, "q8_z"}, {QFMT_TYPE_Q4_Z, "q4_z"},
};
#define NDEC (sizeof DECODABLE / sizeof DECODABLE[0])

static bool is_nan_bits(uint32_t u) { return (u & 0x7FFFFFFFu) > 0x7F800000u; }

/* Decodes n values of `t` from src (at byte offset `skew`, to try unaligned rows) with the row
 * decoder and with qfmt_dequantize at AUTO and SCALAR, and compares. */
static void check_rows(const rd_type *t, size_t n, uint64_t seed, size_t skew) {
    const qfmt_type_traits *tt = qfmt_type_get_traits(t->type);
    cr_assert_not_null(tt);
    uint64_t bytes;
    cr_assert_eq(qfmt_type_size(t->type, n, &bytes), QFMT_OK);
    uint8_t *raw = malloc((size_t)bytes + skew + 1);
    float *got = malloc(n * sizeof(float) + 1), *autolevel = malloc(n * sizeof(float) + 1),
          *ref = malloc(n * sizeof(float) + 1);
    cr_assert(raw && got && autolevel && ref);
    uint8_t *src = raw + skew;
    th_fill_random(src, (size_t)bytes, seed);
    qfmt_row_decode_fn dec = qfmt_row_decoder(t->type);
    cr_assert_not_null(dec, "%s has no row decoder", t->name);
    dec(src, got, n);
    qfmt_quant_opts o = QFMT_QUANT_OPTS_INIT;
    qfmt_error e;
    uint64_t rows = n ? 1 : 0, cols = n ? n : tt->block_elems;
    o.kernel = QFMT_KERNEL_AUTO;
    cr_assert_eq(qfmt_dequantize(QFMT_TYPE_F32, autolevel, n * 4, t->type, src, rows, cols, &o, &e),
                 QFMT_OK, "%s", e.message);
    o.kernel = QFMT_KERNEL_SCALAR;
    cr_assert_eq(qfmt_dequantize(QFMT_TYPE_F32, ref, n * 4, t->type, src, rows, cols, &o, &e),
                 QFMT_OK, "%s", e.message);
    for (size_t i = 0; i < n; i++) {
        uint32_t g, a, r;
        memcpy(&g, got + i, 4);
        memcpy(&a, autolevel + i, 4);
        memcpy(&r, ref + i, 4);
        cr_assert_eq(g, a, "%s n=%zu value %zu: row decoder %08x, qfmt_dequantize %08x", t->name, n,
                     i, g, a);
        cr_assert(g == r || (is_nan_bits(g) && is_nan_bits(r)),
                  "%s n=%zu value %zu: row decoder %08x, reference %08x", t->name, n, i, g, r);
    }
    free(raw);
    free(got);
    free(autolevel);
    free(ref);
}

Test(row_decoder, equals_qfmt_dequantize_for_every_type) {
    static const size_t blocks[] = {0, 1, 2, 7, 33, 1000};
    for (size_t ti = 0; ti < NDEC; ti++) {
        const rd_type *t = &DECODABLE[ti];
        uint32_t be = qfmt_type_get_traits(t->type)->block_elems;
        for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++)
            for (size_t skew = 0; skew < 2; skew++)
                check_rows(t, blocks[k] * 32, 100 * ti + k + 7 * skew, skew);
        if (be == 1) /* plain types: any length, vector tails included */
            for (size_t n = 1; n < 40; n++) check_rows(t, n, 5000 + n, n & 1);
    }
}

/* Every 16-bit pattern of F16 and BF16 decodes to the scalar conversion's bits. */
Test(row_decoder, f16_bf16_every_pattern) {
    uint16_t *h = malloc(65536 * 2);
    float *f = malloc(65536 * 4);
    cr_assert(h && f);
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    qfmt_row_decoder(QFMT_TYPE_F16)(h, f, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        float want = qfmt_f16_to_f32((uint16_t)i);
        cr_assert_eq(memcmp(&f[i], &want, 4), 0, "f16 %04x", i);
    }
    qfmt_row_decoder(QFMT_TYPE_BF16)(h, f, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        float want = qfmt_bf16_to_f32((uint16_t)i);
        cr_assert_eq(memcmp(&f[i], &want, 4), 0, "bf16 %04x", i);
    }
    free(h);
    free(f);
}

Test(row_decoder, null_for_types_it_cannot_decode) {
    static const uint32_t none[] = {QFMT_TYPE_F64, QFMT_TYPE_I8,  QFMT_TYPE_I16, QFMT_TYPE_I32,
                                    QFMT_TYPE_I64, QFMT_TYPE_U8,  QFMT_TYPE_BOOL, 4, 5, 9999,
                                    UINT32_MAX};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        cr_assert_null(qfmt_row_decoder(none[i]), "type %u", none[i]);
    for (size_t i = 0; i < NDEC; i++)
        cr_assert_eq(qfmt_row_decoder(DECODABLE[i].type), qfmt_row_decoder(DECODABLE[i].type));
}

Test(cpu, features_are_stable_and_consistent) {
    unsigned f = qfmt_cpu_features();
    cr_assert_eq(qfmt_cpu_features(), f, "asked once, the same answer after");
    cr_assert_eq(f & ~(QFMT_CPU_AVX2 | QFMT_CPU_AVX512_VNNI | QFMT_CPU_AMX_INT8), 0u, "only the defined bits");
    if (f & QFMT_CPU_AVX512_VNNI) cr_assert(f & QFMT_CPU_AVX2, "VNNI implies AVX2");
    if (f & QFMT_CPU_AMX_INT8) cr_assert(f & QFMT_CPU_AVX512_VNNI, "AMX implies VNNI");
    /* the AVX2 kernels run only where the CPU has AVX2 (a -DQFMT_NO_AVX2 build has none) */
    if (qfmt_kernel_available(QFMT_KERNEL_AVX2)) cr_assert(f & QFMT_CPU_AVX2);
#if !defined(__x86_64__) && !defined(__i386__)
    cr_assert_eq(f, 0u);
#endif
}
