/*
 * fuzz_quant.c - libFuzzer target for the block-quantization kernels (libqfmt/src/types/,
 * libqfmt/src/quant.c): every block type's decoder on arbitrary blocks, and quantize ->
 * dequantize round trips of arbitrary floats.
 *
 * Input: byte 0 picks the block type (bits 0-2: q8_0, q4_0, q4_1, q8_z, q4_z) and the mode
 * (bits 3-4); byte 1 the row length (32..128) and options; the rest is the payload.
 *
 *   mode 0  payload = blocks. Decoded by the reference kernel and by the AVX2 kernel (when the
 *           CPU has it): the two must agree bit for bit, NaN and Inf scales included, except
 *           that two NaNs agree whatever their payloads (see agree()). Then qfmt_dequantize
 *           to f32 / f16 / bf16 with each kernel: the same again.
 *   mode 1-3 payload = f32 / f16 / bf16 values (NaN, Inf, subnormals, anything). qfmt_quantize
 *           with the scalar and AVX2 kernels, one and two threads, reference and best quality:
 *           the same status and the same bytes whatever the kernel or thread count. A non-finite
 *           value must be refused with QFMT_E_RANGE; finite values within fp16's range must be
 *           accepted. What was accepted is decoded again and checked: finite, within a loose
 *           error bound of the reference, and "best" never worse than the reference on any
 *           block (squared error), as qfmt.h promises.
 *
 * Build: with clang and -DQFMT_FUZZ=ON (libFuzzer), or with any compiler linked with
 * regression_driver.c to replay a corpus. See fuzz/README.md.
 */
#define _POSIX_C_SOURCE 200809L

#define QFMT_STATIC_LINKING_ONLY /* the I/O table, kernels, UTF-8 check (qfmt.h) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QFMT_STATIC_LINKING_ONLY /* qfmt_quant_kernels_get */
#include "qfmt.h"
#include "fuzz_check.h"

enum {
    QK = 32,
    MAX_BLOCKS = 64, /* blocks per input */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const uint32_t block_types[] = {QFMT_TYPE_Q8_0, QFMT_TYPE_Q4_0, QFMT_TYPE_Q4_1,
                                       QFMT_TYPE_Q8_Z, QFMT_TYPE_Q4_Z};

static bool four_bit(uint32_t t)
{
    return t == QFMT_TYPE_Q4_0 || t == QFMT_TYPE_Q4_1 || t == QFMT_TYPE_Q4_Z;
}

/* Element i of two outputs of `type` (F32, F16, BF16) agree: the same bits, or both NaN. C
 * does not specify which operand's payload a NaN result carries (a compiler may commute
 * d*q + m), so a NaN scale and a NaN offset may give NaNs of different payloads on the two
 * paths; every other value must be bit-identical. */
static bool agree(const uint8_t *a, const uint8_t *b, size_t i, uint32_t type)
{
    if (type == QFMT_TYPE_F32) {
        uint32_t x, y;
        memcpy(&x, a + 4 * i, 4);
        memcpy(&y, b + 4 * i, 4);
        return x == y || ((x & 0x7FFFFFFFu) > 0x7F800000u && (y & 0x7FFFFFFFu) > 0x7F800000u);
    }
    uint16_t x = (uint16_t)(a[2 * i] | a[2 * i + 1] << 8), y = (uint16_t)(b[2 * i] | b[2 * i + 1] << 8);
    uint16_t inf = type == QFMT_TYPE_F16 ? 0x7C00u : 0x7F80u;
    return x == y || ((x & 0x7FFFu) > inf && (y & 0x7FFFu) > inf);
}

/* mode 0: decode arbitrary blocks with every kernel and output type */
static void fuzz_dequantize(uint32_t type, uint8_t opt, const uint8_t *p, size_t n)
{
    const qfmt_quant_kernels *k = qfmt_quant_kernels_get(type);
    CHECK(k != NULL);
    size_t nb = n / k->block_bytes;
    if (nb > MAX_BLOCKS)
        nb = MAX_BLOCKS;
    if (nb == 0)
        return;
    uint8_t *blocks = malloc(nb * k->block_bytes); /* exactly sized */
    float *ref = malloc(nb * QK * sizeof *ref);
    float *simd = malloc(nb * QK * sizeof *simd);
    uint8_t *out_a = malloc(nb * QK * sizeof(float));
    uint8_t *out_b = malloc(nb * QK * sizeof(float));
    if (!blocks || !ref || !simd || !out_a || !out_b)
        goto out;
    memcpy(blocks, p, nb * k->block_bytes);

    k->dequantize_ref(blocks, ref, nb);
    if (k->dequantize_avx2 != NULL && (qfmt_cpu_features() & QFMT_CPU_AVX2)) {
        k->dequantize_avx2(blocks, simd, nb);
        for (size_t i = 0; i < nb * QK; i++) {
            bool ok = agree((const uint8_t *)ref, (const uint8_t *)simd, i, QFMT_TYPE_F32);
            if (!ok) {
                uint32_t a, b;
                memcpy(&a, &ref[i], 4);
                memcpy(&b, &simd[i], 4);
                fprintf(stderr, "fuzz_quant: type %u block %zu elem %zu: ref %08x avx2 %08x\n",
                        type, i / QK, i % QK, a, b);
            }
            CHECK(ok);
        }
    }

    /* the public row decoder: the reference's floats (NaN payloads aside) */
    qfmt_row_decode_fn dec = qfmt_row_decoder(type);
    CHECK(dec != NULL);
    dec(blocks, simd, nb * QK);
    for (size_t i = 0; i < nb * QK; i++)
        CHECK(agree((const uint8_t *)ref, (const uint8_t *)simd, i, QFMT_TYPE_F32));

    /* the public entry point, as rows of row_len */
    size_t row_len = QK * (1 + (size_t)(opt & 3));
    if ((nb * QK) % row_len != 0)
        row_len = QK;
    uint64_t nrows = nb * QK / row_len;
    static const uint32_t outs[] = {QFMT_TYPE_F32, QFMT_TYPE_F16, QFMT_TYPE_BF16};
    for (size_t o = 0; o < 3; o++) {
        size_t osize = nb * QK * (outs[o] == QFMT_TYPE_F32 ? 4 : 2);
        qfmt_quant_opts sc = {.threads = 1, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_SCALAR};
        qfmt_error e;
        CHECK(qfmt_dequantize(outs[o], out_a, osize, type, blocks, nrows, row_len, &sc, &e) ==
              QFMT_OK);
        if (outs[o] == QFMT_TYPE_F32)
            CHECK(memcmp(out_a, ref, osize) == 0); /* the same code: the same bits */
        if (qfmt_kernel_available(QFMT_KERNEL_AVX2)) {
            qfmt_quant_opts av = {.threads = (opt & 4) ? 2u : 1u, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AVX2};
            CHECK(qfmt_dequantize(outs[o], out_b, osize, type, blocks, nrows, row_len, &av,
                                  &e) == QFMT_OK);
            for (size_t i = 0; i < nb * QK; i++)
                CHECK(agree(out_a, out_b, i, outs[o]));
        }
        /* a destination one byte short is refused */
        qfmt_status s = qfmt_dequantize(outs[o], out_b, osize - 1, type, blocks, nrows, row_len,
                                        &sc, &e);
        CHECK(s != QFMT_OK && e.code == s);
    }
out:
    free(blocks);
    free(ref);
    free(simd);
    free(out_a);
    free(out_b);
}

static double block_sse(const float *x, const float *y)
{
    double s = 0;
    for (int i = 0; i < QK; i++) {
        double d = (double)x[i] - (double)y[i];
        s += d * d;
    }
    return s;
}

/* modes 1-3: quantize arbitrary floats, compare kernels, decode and check */
static void fuzz_quantize(uint32_t type, uint32_t src_type, uint8_t opt, const uint8_t *p, size_t n)
{
    const qfmt_quant_kernels *k = qfmt_quant_kernels_get(type);
    CHECK(k != NULL);
    size_t es = src_type == QFMT_TYPE_F32 ? 4 : 2;
    size_t row_len = QK * (1 + (size_t)(opt & 3));
    size_t nrows = n / es / row_len;
    if (nrows * row_len > MAX_BLOCKS * QK)
        nrows = MAX_BLOCKS * QK / row_len;
    if (nrows == 0)
        return;
    size_t ne = nrows * row_len, nb = ne / QK, qsize = nb * k->block_bytes;
    uint8_t *src = malloc(ne * es);
    float *x = malloc(ne * sizeof *x);
    float *y = malloc(ne * sizeof *y);
    float *z = malloc(ne * sizeof *z);
    uint8_t *q_ref = malloc(qsize), *q_tmp = malloc(qsize), *q_best = malloc(qsize);
    if (!src || !x || !y || !z || !q_ref || !q_tmp || !q_best)
        goto out;
    memcpy(src, p, ne * es);
    CHECK(qfmt_convert_floats(src_type, src, QFMT_TYPE_F32, x, ne) == QFMT_OK);
    bool finite = true, in_range = true;
    for (size_t i = 0; i < ne; i++) {
        if (!isfinite(x[i]))
            finite = false;
        else if (fabsf(x[i]) > 65504.0f)
            in_range = false;
    }

    qfmt_error e;
    qfmt_quant_opts ref1 = {.threads = 1, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_SCALAR};
    qfmt_status s = qfmt_quantize(type, q_ref, qsize, src_type, src, nrows, row_len, &ref1, &e);
    if (!finite)
        CHECK(s == QFMT_E_RANGE);
    if (finite && in_range)
        CHECK(s == QFMT_OK);
    if (s != QFMT_OK)
        CHECK(s == QFMT_E_RANGE && e.code == s && memchr(e.message, 0, sizeof e.message));

    /* the same status and bytes with the other kernel, two threads, the other entry points */
    qfmt_quant_opts others[] = {
        {.threads = 2, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_SCALAR},
        {.threads = 1, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AVX2},
        {.threads = (opt & 4) ? 2u : 1u, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AUTO},
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        if (!qfmt_kernel_available(others[i].kernel))
            continue;
        if (others[i].threads > 1 && !(opt & 8))
            continue; /* thread start-up is slow: only some inputs */
        qfmt_error e2;
        qfmt_status s2 = qfmt_quantize(type, q_tmp, qsize, src_type, src, nrows, row_len,
                                       &others[i], &e2);
        CHECK(s2 == s);
        if (s == QFMT_OK)
            CHECK(memcmp(q_tmp, q_ref, qsize) == 0);
        else
            CHECK(e2.offset == e.offset && strcmp(e2.message, e.message) == 0);
    }
    /* the kernels themselves, on the finite blocks (what they are specified for) */
    if (finite && k->quantize_avx2 != NULL && (qfmt_cpu_features() & QFMT_CPU_AVX2)) {
        size_t da = k->quantize_ref(x, q_tmp, nb);
        size_t db = k->quantize_avx2(x, q_best, nb);
        CHECK(da == db);
        CHECK(memcmp(q_tmp, q_best, da * k->block_bytes) == 0);
    }
    if (s != QFMT_OK)
        goto out;

    CHECK(qfmt_dequantize(QFMT_TYPE_F32, y, ne * sizeof *y, type, q_ref, nrows, row_len, &ref1,
                          &e) == QFMT_OK);
    const float kb = four_bit(type) ? 0.3f : 0.03f;
    for (size_t b = 0; b < nb; b++) {
        float amax = 0;
        for (int i = 0; i < QK; i++)
            amax = fmaxf(amax, fabsf(x[b * QK + i]));
        for (int i = 0; i < QK; i++) {
            float xi = x[b * QK + i], yi = y[b * QK + i];
            CHECK(isfinite(yi));
            if (!(fabsf(xi - yi) <= kb * amax + 1e-5f))
                fprintf(stderr, "fuzz_quant: type %u block %zu elem %d: %a decoded as %a\n",
                        type, b, i, (double)xi, (double)yi);
            CHECK(fabsf(xi - yi) <= kb * amax + 1e-5f);
        }
    }

    qfmt_quant_opts best = {.threads = 1, .quality = QFMT_QUALITY_BEST, .kernel = QFMT_KERNEL_SCALAR};
    s = qfmt_quantize(type, q_best, qsize, src_type, src, nrows, row_len, &best, &e);
    CHECK(s == QFMT_OK);
    if (qfmt_kernel_available(QFMT_KERNEL_AVX2)) {
        qfmt_quant_opts best_avx = {.threads = 1, .quality = QFMT_QUALITY_BEST, .kernel = QFMT_KERNEL_AVX2};
        CHECK(qfmt_quantize(type, q_tmp, qsize, src_type, src, nrows, row_len, &best_avx, &e) ==
              QFMT_OK);
        CHECK(memcmp(q_tmp, q_best, qsize) == 0);
    }
    CHECK(qfmt_dequantize(QFMT_TYPE_F32, z, ne * sizeof *z, type, q_best, nrows, row_len, &ref1,
                          &e) == QFMT_OK);
    for (size_t b = 0; b < nb; b++) {
        for (int i = 0; i < QK; i++)
            CHECK(isfinite(z[b * QK + i]));
        double sr = block_sse(x + b * QK, y + b * QK), sb = block_sse(x + b * QK, z + b * QK);
        if (!(sb <= sr))
            fprintf(stderr, "fuzz_quant: type %u block %zu: best sse %.17g > reference %.17g\n",
                    type, b, sb, sr);
        CHECK(sb <= sr);
    }
out:
    free(src);
    free(x);
    free(y);
    free(z);
    free(q_ref);
    free(q_tmp);
    free(q_best);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t type = block_types[(data[0] & 7) % 5];
    unsigned mode = (data[0] >> 3) & 3;
    uint8_t opt = data[1];
    static const uint32_t srcs[] = {QFMT_TYPE_F32, QFMT_TYPE_F32, QFMT_TYPE_F16, QFMT_TYPE_BF16};
    if (mode == 0)
        fuzz_dequantize(type, opt, data + 2, size - 2);
    else
        fuzz_quantize(type, srcs[mode], opt, data + 2, size - 2);
    return 0;
}
