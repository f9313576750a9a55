/*
 * test_ggml_quants.c - ggml's block types against the bytes llama.cpp itself wrote (issue 16):
 *  - tests/data/ggml-quants/llama-kjv.blk0.safetensors.zst (see ORIGIN.md there): for the 7 linear
 *    weights of llama-kjv's layer 0, the F32 rows llama.cpp quantized, the bytes
 *    `llama-quantize --pure` wrote for q8_0, q4_0, q4_1, q5_0, q5_1, q2_k ... q6_k, iq4_nl and
 *    iq4_xs, llama-imatrix's statistics, and the bytes written with that imatrix for q2_k, q3_k,
 *    q4_k, iq4_xs and q4_0;
 *  - qfmt_quantize (reference quality) gives the pure bytes, and with importance in_sum2 / counts
 *    (qfmt_quant_opts.importance) the imatrix bytes, byte for byte; on 1 and 3 threads, at every
 *    kernel level;
 *  - ggml's bytes decode to finite values with each type's error against the source within
 *    bounds that follow the bits, the same at every kernel level and thread count;
 *  - weighted quantization of every type lowers the importance-weighted error against the
 *    reference one on these tensors, and refuses negative or non-finite importance;
 *  - the super-block types refuse rows that are not a multiple of 256.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define QFMT_STATIC_LINKING_ONLY
#include "qfmt.h"
#include "test_helpers.h"

#define GQ_FILE QFMT_TEST_DATA_DIR "/ggml-quants/llama-kjv.blk0.safetensors.zst"

static const char *const WEIGHTS[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
#define NWEIGHTS (sizeof WEIGHTS / sizeof WEIGHTS[0])

typedef struct {
    const char *ggml; /* the fixture's suffix */
    uint32_t type;
    bool imat;        /* the fixture has .imat-<ggml> bytes */
} gq_type;

static const gq_type TYPES[] = {
    {"Q8_0", QFMT_TYPE_Q8_0, false},   {"Q4_0", QFMT_TYPE_Q4_0, true},    {"Q4_1", QFMT_TYPE_Q4_1, false},
    {"Q5_0", QFMT_TYPE_Q5_0, false},   {"Q5_1", QFMT_TYPE_Q5_1, false},   {"Q2_K", QFMT_TYPE_Q2_K, true},
    {"Q3_K", QFMT_TYPE_Q3_K, true},    {"Q4_K", QFMT_TYPE_Q4_K, true},    {"Q5_K", QFMT_TYPE_Q5_K, false},
    {"Q6_K", QFMT_TYPE_Q6_K, false},   {"IQ4_NL", QFMT_TYPE_IQ4_NL, false}, {"IQ4_XS", QFMT_TYPE_IQ4_XS, true},
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

/* The fixture, decompressed once per test process. */
static uint8_t *g_buf;
static size_t g_size;
static qfmt_st_file *g_file;

static void gq_open(void) {
    size_t n;
    uint8_t *z = th_read_file(GQ_FILE, &n);
    unsigned long long size = ZSTD_getFrameContentSize(z, n);
    cr_assert(size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN && size < (1ull << 31));
    g_buf = malloc((size_t)size);
    cr_assert_not_null(g_buf);
    g_size = ZSTD_decompress(g_buf, (size_t)size, z, n);
    cr_assert(!ZSTD_isError(g_size) && g_size == size, "%s: bad zstd frame", GQ_FILE);
    free(z);
    qfmt_error e;
    TH_OKE(qfmt_st_open_memory(&g_file, g_buf, g_size, NULL, &e), e);
}

static void gq_close(void) {
    qfmt_st_close(g_file);
    free(g_buf);
    g_file = NULL;
    g_buf = NULL;
}

/* Tensor `blk.0.<w>.weight.<suffix>`; NULL if absent and !required. */
static const qfmt_st_tensor *gq_get(const char *w, const char *suffix, qfmt_st_tensor *t, bool required) {
    char name[128];
    snprintf(name, sizeof name, "blk.0.%s.weight.%s", w, suffix);
    uint64_t idx;
    if (qfmt_st_find(g_file, name, &idx, NULL) != QFMT_OK) {
        cr_assert(!required, "fixture lacks %s", name);
        return NULL;
    }
    qfmt_error e;
    TH_OKE(qfmt_st_get(g_file, idx, t, &e), e);
    return t;
}

/* llama-quantize's importance: in_sum2[j] / counts, in fp32. Malloc'd, cols values. */
static float *gq_importance(const char *w, uint64_t cols) {
    qfmt_st_tensor s2, c;
    gq_get(w, "in_sum2", &s2, true);
    gq_get(w, "counts", &c, true);
    cr_assert(s2.type == QFMT_TYPE_F32 && s2.ndim == 1 && s2.dims[0] == cols, "%s.in_sum2: shape", w);
    cr_assert(c.type == QFMT_TYPE_F32 && c.nelements == 1, "%s.counts: shape", w);
    float count;
    memcpy(&count, c.data, sizeof count);
    cr_assert_gt(count, 0.0f);
    float *imp = malloc(cols * sizeof *imp);
    cr_assert_not_null(imp);
    memcpy(imp, s2.data, cols * sizeof *imp);
    for (uint64_t j = 0; j < cols; j++) imp[j] /= count;
    return imp;
}

/* Where two byte strings first differ, as row / block / byte of `type` with rows of `cols`. */
static void expect_same(const uint8_t *got, const uint8_t *want, size_t n, uint32_t type, uint64_t cols,
                        const char *what) {
    if (memcmp(got, want, n) == 0) return;
    size_t i = 0;
    while (got[i] == want[i]) i++;
    const qfmt_type_traits *tt = qfmt_type_get_traits(type);
    uint64_t row_bytes = cols / tt->block_elems * tt->block_bytes;
    size_t diff = 0;
    for (size_t k = 0; k < n; k++) diff += got[k] != want[k];
    cr_expect_fail("%s: %zu of %zu bytes differ from llama.cpp's; the first at row %llu, block %llu, byte %llu "
                   "(qfmt 0x%02x, ggml 0x%02x)",
                   what, diff, n, (unsigned long long)(i / row_bytes),
                   (unsigned long long)(i % row_bytes / tt->block_bytes), (unsigned long long)(i % tt->block_bytes),
                   got[i], want[i]);
}

static uint8_t *quantize(uint32_t type, const qfmt_st_tensor *src, const float *importance, unsigned threads,
                         qfmt_kernel k, size_t *size) {
    uint64_t rows = src->dims[0], cols = src->dims[1], n;
    TH_OK(qfmt_type_size(type, rows * cols, &n));
    uint8_t *q = malloc(n);
    cr_assert_not_null(q);
    qfmt_quant_opts o = QFMT_QUANT_OPTS_INIT;
    o.threads = threads;
    o.kernel = k;
    o.importance = importance;
    qfmt_error e;
    TH_OKE(qfmt_quantize(type, q, n, QFMT_TYPE_F32, src->data, rows, cols, &o, &e), e);
    *size = (size_t)n;
    return q;
}

static void check_bytes(bool imat) {
    gq_open();
    size_t checked = 0;
    for (size_t w = 0; w < NWEIGHTS; w++) {
        qfmt_st_tensor src;
        gq_get(WEIGHTS[w], "source", &src, true);
        cr_assert(src.type == QFMT_TYPE_F32 && src.ndim == 2);
        float *imp = imat ? gq_importance(WEIGHTS[w], src.dims[1]) : NULL;
        for (size_t t = 0; t < NTYPES; t++) {
            if (imat && !TYPES[t].imat) continue;
            char suffix[32], what[96];
            snprintf(suffix, sizeof suffix, "%s-%s", imat ? "imat" : "pure", TYPES[t].ggml);
            qfmt_st_tensor ref;
            gq_get(WEIGHTS[w], suffix, &ref, true);
            snprintf(what, sizeof what, "blk.0.%s.weight %s", WEIGHTS[w], suffix);
            size_t n;
            uint8_t *q = quantize(TYPES[t].type, &src, imp, 1, QFMT_KERNEL_SCALAR, &n);
            cr_assert_eq(n, ref.size, "%s: %zu bytes, llama.cpp wrote %llu", what, n, (unsigned long long)ref.size);
            expect_same(q, ref.data, n, TYPES[t].type, src.dims[1], what);
            /* any thread count, the fastest level: the same bytes */
            size_t n2;
            uint8_t *q2 = quantize(TYPES[t].type, &src, imp, 3, QFMT_KERNEL_AUTO, &n2);
            cr_expect_eq(memcmp(q, q2, n), 0, "%s: 3 threads / AUTO kernels give other bytes than 1 / scalar", what);
            free(q2);
            free(q);
            checked++;
        }
        free(imp);
    }
    cr_log_info("%zu tensors byte-identical to llama.cpp's %s quantization", checked,
                imat ? "imatrix" : "--pure");
    gq_close();
}

Test(ggml_quants, pure_bytes_equal_llama_cpp) { check_bytes(false); }
Test(ggml_quants, imatrix_bytes_equal_llama_cpp) { check_bytes(true); }

/* ggml's bytes decode to values close to the source: rel. RMSE per type within bounds that
 * follow the bits (the fixture's expected.json gives llama-kjv's whole-model figures: q2_k 0.30,
 * q3_k 0.15, 4-bit 0.07..0.09, 5-bit 0.036..0.043, q6_k 0.018, q8_0 0.0054). */
Test(ggml_quants, ggml_bytes_decode) {
    static const struct {
        uint32_t type;
        double max_rel_rmse;
    } B[] = {{QFMT_TYPE_Q8_0, 0.008}, {QFMT_TYPE_Q4_0, 0.12},  {QFMT_TYPE_Q4_1, 0.11},  {QFMT_TYPE_Q5_0, 0.06},
             {QFMT_TYPE_Q5_1, 0.055}, {QFMT_TYPE_Q2_K, 0.40},  {QFMT_TYPE_Q3_K, 0.20},  {QFMT_TYPE_Q4_K, 0.10},
             {QFMT_TYPE_Q5_K, 0.05},  {QFMT_TYPE_Q6_K, 0.025}, {QFMT_TYPE_IQ4_NL, 0.11}, {QFMT_TYPE_IQ4_XS, 0.11}};
    gq_open();
    for (size_t t = 0; t < NTYPES; t++) {
        double se = 0, ss = 0;
        for (size_t w = 0; w < NWEIGHTS; w++) {
            qfmt_st_tensor src, ref;
            gq_get(WEIGHTS[w], "source", &src, true);
            char suffix[32];
            snprintf(suffix, sizeof suffix, "pure-%s", TYPES[t].ggml);
            gq_get(WEIGHTS[w], suffix, &ref, true);
            uint64_t rows = src.dims[0], cols = src.dims[1];
            float *x = malloc(rows * cols * sizeof *x), *y = malloc(rows * cols * sizeof *y);
            cr_assert(x && y);
            qfmt_error e;
            qfmt_quant_opts o = QFMT_QUANT_OPTS_INIT;
            o.kernel = QFMT_KERNEL_SCALAR;
            TH_OKE(qfmt_dequantize(QFMT_TYPE_F32, x, rows * cols * 4, TYPES[t].type, ref.data, rows, cols, &o, &e), e);
            o.kernel = QFMT_KERNEL_AUTO;
            o.threads = 3;
            TH_OKE(qfmt_dequantize(QFMT_TYPE_F32, y, rows * cols * 4, TYPES[t].type, ref.data, rows, cols, &o, &e), e);
            cr_expect_eq(memcmp(x, y, rows * cols * 4), 0, "%s: decoding differs between levels or threads",
                         TYPES[t].ggml);
            const float *s = src.data;
            for (uint64_t i = 0; i < rows * cols; i++) {
                cr_assert(isfinite(x[i]), "%s %s: element %llu decodes to %g", WEIGHTS[w], TYPES[t].ggml,
                          (unsigned long long)i, (double)x[i]);
                se += ((double)x[i] - s[i]) * ((double)x[i] - s[i]);
                ss += (double)s[i] * s[i];
            }
            free(x);
            free(y);
        }
        double rel = sqrt(se / ss);
        cr_log_info("%s: ggml's bytes decode with rel. RMSE %.4f", TYPES[t].ggml, rel);
        for (size_t b = 0; b < sizeof B / sizeof B[0]; b++)
            if (B[b].type == TYPES[t].type)
                cr_expect_leq(rel, B[b].max_rel_rmse, "%s: rel. RMSE %.4f", TYPES[t].ggml, rel);
    }
    gq_close();
}

/* Sum over the tensor of importance[col] * (x - decode(q))^2. */
static double weighted_error(uint32_t type, const qfmt_st_tensor *src, const uint8_t *q, const float *imp) {
    uint64_t rows = src->dims[0], cols = src->dims[1];
    float *x = malloc(rows * cols * sizeof *x);
    cr_assert_not_null(x);
    qfmt_error e;
    TH_OKE(qfmt_dequantize(QFMT_TYPE_F32, x, rows * cols * 4, type, q, rows, cols, NULL, &e), e);
    const float *s = src->data;
    double err = 0;
    for (uint64_t r = 0; r < rows; r++)
        for (uint64_t c = 0; c < cols; c++) {
            double d = (double)x[r * cols + c] - s[r * cols + c];
            err += imp[c] * d * d;
        }
    free(x);
    return err;
}

/* Every block type, ggml's and qfmt's own: quantizing with importance lowers the weighted error
 * (q8_0 has no weighted quantizer in ggml: the same bytes). */
Test(ggml_quants, importance_lowers_weighted_error) {
    static const uint32_t ALL[] = {QFMT_TYPE_Q8_0, QFMT_TYPE_Q4_0, QFMT_TYPE_Q4_1, QFMT_TYPE_Q5_0,
                                   QFMT_TYPE_Q5_1, QFMT_TYPE_Q2_K, QFMT_TYPE_Q3_K, QFMT_TYPE_Q4_K,
                                   QFMT_TYPE_Q5_K, QFMT_TYPE_Q6_K, QFMT_TYPE_IQ4_NL, QFMT_TYPE_IQ4_XS,
                                   QFMT_TYPE_Q8_Z, QFMT_TYPE_Q4_Z};
    gq_open();
    for (size_t t = 0; t < sizeof ALL / sizeof ALL[0]; t++) {
        double plain = 0, weighted = 0;
        for (size_t w = 0; w < NWEIGHTS; w++) {
            qfmt_st_tensor src;
            gq_get(WEIGHTS[w], "source", &src, true);
            float *imp = gq_importance(WEIGHTS[w], src.dims[1]);
            size_t n;
            uint8_t *a = quantize(ALL[t], &src, NULL, 1, QFMT_KERNEL_AUTO, &n);
            uint8_t *b = quantize(ALL[t], &src, imp, 2, QFMT_KERNEL_AUTO, &n);
            plain += weighted_error(ALL[t], &src, a, imp);
            weighted += weighted_error(ALL[t], &src, b, imp);
            if (ALL[t] == QFMT_TYPE_Q8_0)
                cr_expect_eq(memcmp(a, b, n), 0, "q8_0 with importance: other bytes than without");
            free(a);
            free(b);
            free(imp);
        }
        const char *name = qfmt_type_get_traits(ALL[t])->name;
        cr_log_info("%s: importance-weighted error %.6g without importance, %.6g with (%.1f%% less)", name, plain,
                    weighted, plain > 0 ? 100.0 * (1 - weighted / plain) : 0.0);
        if (ALL[t] == QFMT_TYPE_Q8_0) continue;
        cr_expect_lt(weighted, plain, "%s: quantizing with importance does not lower the weighted error", name);
    }
    gq_close();
}

Test(ggml_quants, bad_importance_and_rows) {
    float x[512], imp[512];
    for (int i = 0; i < 512; i++) {
        x[i] = sinf((float)i);
        imp[i] = 1.0f;
    }
    uint8_t q[2 * 210];
    qfmt_quant_opts o = QFMT_QUANT_OPTS_INIT;
    o.importance = imp;
    qfmt_error e;
    imp[7] = -1.0f;
    cr_expect_eq(qfmt_quantize(QFMT_TYPE_Q4_K, q, 2 * 144, QFMT_TYPE_F32, x, 1, 512, &o, &e), QFMT_E_ARG);
    cr_expect(strstr(e.message, "column 7") != NULL, "message: %s", e.message);
    imp[7] = NAN;
    cr_expect_eq(qfmt_quantize(QFMT_TYPE_Q4_K, q, 2 * 144, QFMT_TYPE_F32, x, 1, 512, &o, &e), QFMT_E_ARG);
    imp[7] = 1.0f;
    TH_OKE(qfmt_quantize(QFMT_TYPE_Q4_K, q, 2 * 144, QFMT_TYPE_F32, x, 1, 512, &o, &e), e);
    /* a NaN in the row: refused naming row and column, with or without importance */
    x[300] = NAN;
    cr_expect_eq(qfmt_quantize(QFMT_TYPE_Q4_K, q, 2 * 144, QFMT_TYPE_F32, x, 1, 512, &o, &e), QFMT_E_RANGE);
    cr_expect(strstr(e.message, "column 300") != NULL, "message: %s", e.message);
    o.importance = NULL;
    cr_expect_eq(qfmt_quantize(QFMT_TYPE_Q6_K, q, 2 * 210, QFMT_TYPE_F32, x, 1, 512, &o, &e), QFMT_E_RANGE);
    cr_expect(strstr(e.message, "column 300") != NULL, "message: %s", e.message);
    x[300] = 0.5f;
    /* rows of 128 hold no super-block */
    cr_expect_eq(qfmt_quantize(QFMT_TYPE_Q4_K, q, 2 * 144, QFMT_TYPE_F32, x, 4, 128, &o, &e), QFMT_E_RANGE);
    cr_expect(strstr(e.message, "256") != NULL, "message: %s", e.message);
    /* all-zero rows and all-zero importance quantize to blocks that decode to zero */
    float z[256] = {0}, back[256];
    for (int t = 0; t < 2; t++) {
        o.importance = t ? imp : NULL;
        if (t) memset(imp, 0, sizeof imp);
        static const uint32_t TY[] = {QFMT_TYPE_Q2_K, QFMT_TYPE_Q3_K, QFMT_TYPE_Q4_K, QFMT_TYPE_Q5_K,
                                      QFMT_TYPE_Q6_K, QFMT_TYPE_IQ4_XS, QFMT_TYPE_IQ4_NL, QFMT_TYPE_Q5_0,
                                      QFMT_TYPE_Q5_1};
        for (size_t i = 0; i < sizeof TY / sizeof TY[0]; i++) {
            uint64_t n;
            TH_OK(qfmt_type_size(TY[i], 256, &n));
            TH_OKE(qfmt_quantize(TY[i], q, n, QFMT_TYPE_F32, z, 1, 256, &o, &e), e);
            TH_OKE(qfmt_dequantize(QFMT_TYPE_F32, back, sizeof back, TY[i], q, 1, 256, NULL, &e), e);
            for (int j = 0; j < 256; j++)
                cr_expect_eq(back[j], 0.0f, "%s: zero row decodes to %g", qfmt_type_get_traits(TY[i])->name,
                             (double)back[j]);
        }
    }
}
