/*
 * fuzz_quant.c - libFuzzer target for the block-quantization kernels (libqfmt/src/types/,
 * libqfmt/src/quant.c, libqfmt/src/dispatch.c): every block type's decoders on arbitrary blocks,
 * and quantize -> dequantize round trips of arbitrary floats, without and with importance.
 *
 * Input:
 *   byte 0  bits 0-3  block type: (value % 14) indexes q8_0 q4_0 q4_1 q8_z q4_z q5_0 q5_1 q2_k
 *                     q3_k q4_k q5_k q6_k iq4_nl iq4_xs (E = the type's block_elems, 32 or 256)
 *           bits 4-5  payload: 0 blocks, 1 f32, 2 f16, 3 bf16 values (little-endian)
 *           bit 6     importance (quantize: the weighted mode below; decode: the options carry a
 *                     NaN importance, which qfmt_dequantize must ignore)
 *           bit 7     wide: the payload's rows are repeated until the tensor spans more than two
 *                     of quant.c's 4096-value chunks, so that two threads really split it (with
 *                     importance, whose threads share out rows: twice, for two rows at least);
 *                     a wide quantize skips BEST, the one-thread AVX2 run and the direct kernel
 *                     calls (slow, and the narrow inputs' business)
 *   byte 1  bits 0-1  row length (1 + v) * E
 *           bit 2     the AUTO-kernel run (and the AVX2 decode) uses two threads
 *           bit 4     wide only: the copies before the last have their NaN/Inf values zeroed
 *                     (a failure then lies in the second thread's part only)
 *   byte 2  (quantize with importance only) the importance recipe, see make_importance()
 *   rest    the payload. Quantize: whole rows of row length from its start (at most MAX_ELEMS
 *           values; less than one row is repeated to fill one); with importance, the bytes after
 *           those rows are the importance codes. Decode: up to MAX_BLOCKS blocks.
 *
 * Checks:
 *   decode     the reference decoder and the AVX2 one (when the type and the CPU have one) agree
 *              bit for bit, NaN and Inf scales included, except that two NaNs agree whatever their
 *              payloads (see agree()); the public row decoder gives the reference's floats;
 *              qfmt_dequantize to f32 / f16 / bf16 with either kernel and 1 or 2 threads the
 *              same again (f32 with the scalar kernel: the reference's bits); an importance in
 *              the options changes nothing; a destination one byte short is refused.
 *   quantize   the scalar and AVX2 kernels, one and two threads, reference and best quality: the
 *              same status and the same bytes (or the same error message). A non-finite value is
 *              refused with QFMT_E_RANGE; finite values within fp16's range are accepted (values
 *              beyond it may be either: a K type's or iq4's scale is a fraction of the block's
 *              largest value, so q6_k, say, stores blocks up to ~2.7e8). Whatever is accepted
 *              must decode finite and within a loose error bound of the input (a fraction of the
 *              block's largest magnitude, per type, always below 0.9 of it so that a block stored
 *              as zeros fails, plus the fp16 rounding of tiny scales); the
 *              kernel table's quantize_ref (and quantize_avx2) on the whole buffer give the same
 *              blocks. "best" is never worse than the reference on any block (squared error) for
 *              the types whose quantize_best differs from quantize_ref, and is the reference's
 *              bytes for the others (the K types and iq4, whose reference already searches).
 *   importance the recipe gives each column a weight (zeros, subnormals, 1e-30, FLT_MAX, from
 *              the input's own values, ...) and may poison one column (NaN, -1, a negative
 *              subnormal, +Inf: refused with QFMT_E_ARG whatever the values; -0.0: accepted).
 *              SCALAR and AVX2/AUTO, one and two threads, and quality BEST (not used with
 *              importance) give the same status and bytes; the kernel table's quantize_weighted
 *              row by row gives them too; non-finite values are refused with QFMT_E_RANGE; finite
 *              values within fp16's range are accepted when no importance exceeds IMP_SAFE (a
 *              larger one can overflow the fp32 weighted sums, and a block whose scale comes out
 *              NaN is refused); what is accepted decodes finite, and within twice the unweighted
 *              bound on blocks whose importance is near-uniform (max <= 4 min, min >= 1e-20, of
 *              any magnitude up to FLT_MAX: a common factor changes nothing of what is best); q8_0
 *              gives its reference bytes (ggml's q8_0 has no weighted quantizer); for q8_z and
 *              q4_z no block's weighted squared error exceeds the reference's (zpoint.h).
 *
 * Build: with clang and -DQFMT_FUZZ=ON (libFuzzer), or with any compiler linked with
 * regression_driver.c to replay a corpus. See fuzz/README.md.
 *
 * Corpus (fuzz/corpus/quant/): the hand-made seeds seed_* (dq_: decode, q_: quantize, qw_: with
 * importance; per type), the inputs a campaign added on edge coverage (named by their SHA-1) and
 * regress_*. This file writes the seed_* files when compiled with -DFUZZ_QUANT_WRITE_SEEDS (a
 * main() of its own; no libFuzzer, no driver):
 *     cc -std=c11 -O1 -DFUZZ_QUANT_WRITE_SEEDS -Ilibqfmt/include fuzz/fuzz_quant.c \
 *        build/release/lib/libqfmt.a -lzstd -lm -lpthread -o /tmp/quant_seeds
 *     /tmp/quant_seeds fuzz/corpus/quant
 */
#define _POSIX_C_SOURCE 200809L

#define QFMT_STATIC_LINKING_ONLY /* qfmt_quant_kernels_get */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt.h"
#include "fuzz_check.h"

enum {
    MAX_BLOCKS = 64,   /* blocks decoded per input */
    MAX_ELEMS = 2048,  /* values quantized per input (before widening) */
    QCHUNK = 4096,     /* quant.c's CHUNK: the values one thread takes at least */
    NTYPES = 14,
};

/* Importance above this may overflow the fp32 sums of ggml's weighted searches for values
 * within fp16's range (w * sqrt(sigma2 + x^2) * x * code, squared) */
#define IMP_SAFE 1024.0f

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    uint32_t type;
    float bound;      /* error bound: a fraction of the block's largest magnitude */
    float code_range; /* largest |decoded value| / scale field, for the fp16 rounding of tiny
                         scales: scale codes x value codes (+ min codes) */
} type_info;

static const type_info types[NTYPES] = {
    {QFMT_TYPE_Q8_0, 0.03f, 128},     {QFMT_TYPE_Q4_0, 0.3f, 8},
    {QFMT_TYPE_Q4_1, 0.3f, 16},       {QFMT_TYPE_Q8_Z, 0.03f, 256},
    {QFMT_TYPE_Q4_Z, 0.3f, 16},       {QFMT_TYPE_Q5_0, 0.15f, 16},
    {QFMT_TYPE_Q5_1, 0.15f, 32},      {QFMT_TYPE_Q2_K, 0.75f, 15 * 3 + 15},
    {QFMT_TYPE_Q3_K, 0.6f, 32 * 4},   {QFMT_TYPE_Q4_K, 0.3f, 63 * 15 + 63},
    {QFMT_TYPE_Q5_K, 0.15f, 63 * 31 + 63}, {QFMT_TYPE_Q6_K, 0.1f, 128 * 32},
    {QFMT_TYPE_IQ4_NL, 0.3f, 127},    {QFMT_TYPE_IQ4_XS, 0.4f, 32 * 127},
};

static bool z_type(uint32_t t) { return t == QFMT_TYPE_Q8_Z || t == QFMT_TYPE_Q4_Z; }

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

static bool same_error(qfmt_status s1, const qfmt_error *e1, qfmt_status s2, const qfmt_error *e2)
{
    if (s1 != s2) return false;
    if (s1 == QFMT_OK) return true;
    return e1->code == s1 && e2->code == s2 && e1->offset == e2->offset &&
           strcmp(e1->message, e2->message) == 0;
}

static void check_failure(qfmt_status s, const qfmt_error *e, qfmt_status want)
{
    if (s != want)
        fprintf(stderr, "fuzz_quant: status %d (%s), %d expected\n", (int)s,
                s == QFMT_OK ? "ok" : e->message, (int)want);
    CHECK(s == want);
    if (s != QFMT_OK) check_error(s, e);
}

/* ---- Decode ------------------------------------------------------------------------------ */

static void fuzz_dequantize(const type_info *ti, bool poison_imp, bool wide, uint8_t opt,
                            const uint8_t *p, size_t n)
{
    const uint32_t type = ti->type;
    const qfmt_quant_kernels *k = qfmt_quant_kernels_get(type);
    CHECK(k != NULL && k->type == type);
    CHECK(k->block_elems == qfmt_type_get_traits(type)->block_elems);
    CHECK(k->block_bytes == qfmt_type_get_traits(type)->block_bytes);
    const size_t E = k->block_elems, bb = k->block_bytes;
    size_t nb0 = n / bb;
    if (nb0 > MAX_BLOCKS) nb0 = MAX_BLOCKS;
    if (nb0 == 0) return;
    size_t copies = wide ? (2 * QCHUNK) / (nb0 * E) + 1 : 1, nb = nb0 * copies, ne = nb * E;
    uint8_t *blocks = malloc(nb * bb); /* exactly sized */
    float *ref = malloc(ne * sizeof *ref);
    float *simd = malloc(ne * sizeof *simd);
    uint8_t *out_a = malloc(ne * sizeof(float));
    uint8_t *out_b = malloc(ne * sizeof(float));
    if (!blocks || !ref || !simd || !out_a || !out_b) goto out;
    for (size_t c = 0; c < copies; c++) memcpy(blocks + c * nb0 * bb, p, nb0 * bb);

    k->dequantize_ref(blocks, ref, nb);
    if (k->dequantize_avx2 != NULL && (qfmt_cpu_features() & QFMT_CPU_AVX2)) {
        k->dequantize_avx2(blocks, simd, nb);
        for (size_t i = 0; i < ne; i++) {
            bool ok = agree((const uint8_t *)ref, (const uint8_t *)simd, i, QFMT_TYPE_F32);
            if (!ok) {
                uint32_t a, b;
                memcpy(&a, &ref[i], 4);
                memcpy(&b, &simd[i], 4);
                fprintf(stderr, "fuzz_quant: type %u block %zu elem %zu: ref %08x avx2 %08x\n",
                        type, i / E, i % E, a, b);
            }
            CHECK(ok);
        }
    }

    /* the public row decoder: the reference's floats (NaN payloads aside) */
    qfmt_row_decode_fn dec = qfmt_row_decoder(type);
    CHECK(dec != NULL);
    dec(blocks, simd, ne);
    for (size_t i = 0; i < ne; i++)
        CHECK(agree((const uint8_t *)ref, (const uint8_t *)simd, i, QFMT_TYPE_F32));

    /* the public entry point, as rows of row_len */
    size_t row_len = E * (1 + (size_t)(opt & 3));
    if (ne % row_len != 0) row_len = E;
    uint64_t nrows = ne / row_len;
    static const float nan_imp[4 * 256] = {NAN}; /* only its first value is NaN; never read */
    static const uint32_t outs[] = {QFMT_TYPE_F32, QFMT_TYPE_F16, QFMT_TYPE_BF16};
    for (size_t o = 0; o < 3; o++) {
        size_t osize = ne * (outs[o] == QFMT_TYPE_F32 ? 4 : 2);
        qfmt_quant_opts sc = {.threads = 1, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_SCALAR};
        qfmt_error e;
        CHECK(qfmt_dequantize(outs[o], out_a, osize, type, blocks, nrows, row_len, &sc, &e) ==
              QFMT_OK);
        if (outs[o] == QFMT_TYPE_F32)
            CHECK(memcmp(out_a, ref, osize) == 0); /* the same code: the same bits */
        qfmt_quant_opts others[] = {
            {.threads = 2, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_SCALAR},
            {.threads = (opt & 4) ? 2u : 1u, .quality = QFMT_QUALITY_BEST, .kernel = QFMT_KERNEL_AVX2},
            {.threads = 2, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AUTO},
        };
        for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
            if (!qfmt_kernel_available(others[i].kernel)) continue;
            if (i == 0 && !wide) continue; /* one chunk: one thread, the run above */
            if (poison_imp) others[i].importance = nan_imp; /* quantize only: ignored here */
            CHECK(qfmt_dequantize(outs[o], out_b, osize, type, blocks, nrows, row_len,
                                  &others[i], &e) == QFMT_OK);
            if (others[i].kernel == QFMT_KERNEL_SCALAR)
                CHECK(memcmp(out_a, out_b, osize) == 0);
            else
                for (size_t j = 0; j < ne; j++) CHECK(agree(out_a, out_b, j, outs[o]));
        }
        /* a destination one byte short is refused */
        qfmt_status s = qfmt_dequantize(outs[o], out_b, osize - 1, type, blocks, nrows, row_len,
                                        &sc, &e);
        CHECK(s == QFMT_E_ARG);
        check_error(s, &e);
    }
out:
    free(blocks);
    free(ref);
    free(simd);
    free(out_a);
    free(out_b);
}

/* ---- Quantize: the source tensor ------------------------------------------------------------ */

typedef struct {
    uint32_t src_type;
    size_t es;           /* bytes per source value */
    size_t row_len, nrows, ne;
    uint8_t *src;        /* ne values of src_type, exactly sized */
    float *x;            /* the same as f32 */
    bool finite, in_range;
    size_t used;         /* payload bytes taken by the values */
} source;

/* Whether the src_type value at p is NaN or infinite (exponent all ones). */
static bool raw_nonfinite(uint32_t src_type, const uint8_t *p)
{
    if (src_type == QFMT_TYPE_F32) return (p[3] & 0x7F) == 0x7F && (p[2] & 0x80);
    if (src_type == QFMT_TYPE_F16) return (p[1] & 0x7C) == 0x7C;
    return (p[1] & 0x7F) == 0x7F && (p[0] & 0x80); /* bf16 */
}

/* Whole rows from the payload (see the header); false when there is not a single value. */
static bool make_source(source *s, uint32_t src_type, size_t E, bool wide, bool by_rows,
                        uint8_t opt, const uint8_t *p, size_t n)
{
    memset(s, 0, sizeof *s);
    s->src_type = src_type;
    s->es = src_type == QFMT_TYPE_F32 ? 4 : 2;
    s->row_len = E * (1 + (size_t)(opt & 3));
    size_t avail = n / s->es;
    if (avail == 0) return false;
    size_t base; /* values in one copy: whole rows */
    if (avail < s->row_len) {
        base = s->row_len;
        s->used = avail * s->es;
    } else {
        size_t rows = (avail < MAX_ELEMS ? avail : MAX_ELEMS) / s->row_len;
        if (rows == 0) rows = 1;
        base = rows * s->row_len;
        s->used = base * s->es;
    }
    /* a weighted tensor is shared out by rows: two rows make two threads */
    size_t copies = !wide ? 1 : by_rows ? 2 : (2 * QCHUNK) / base + 1;
    s->ne = base * copies;
    s->nrows = s->ne / s->row_len;
    s->src = malloc(s->ne * s->es);
    s->x = malloc(s->ne * sizeof *s->x);
    if (!s->src || !s->x) return false;
    /* one copy: the payload's values, repeated if it holds less than a row */
    for (size_t i = 0; i < base; i++) memcpy(s->src + i * s->es, p + (i % (s->used / s->es)) * s->es, s->es);
    for (size_t c = 1; c < copies; c++) memcpy(s->src + c * base * s->es, s->src, base * s->es);
    if (wide && (opt & 16)) /* NaN/Inf only in the last copy */
        for (size_t i = 0; i < (copies - 1) * base; i++)
            if (raw_nonfinite(src_type, s->src + i * s->es)) memset(s->src + i * s->es, 0, s->es);
    CHECK(qfmt_convert_floats(src_type, s->src, QFMT_TYPE_F32, s->x, s->ne) == QFMT_OK);
    s->finite = s->in_range = true;
    for (size_t i = 0; i < s->ne; i++) {
        if (!isfinite(s->x[i]))
            s->finite = false;
        else if (fabsf(s->x[i]) > 65504.0f)
            s->in_range = false;
    }
    return true;
}

static void free_source(source *s)
{
    free(s->src);
    free(s->x);
}

static double sse(const float *x, const float *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - (double)y[i];
        s += d * d;
    }
    return s;
}

/* y decodes x within `scale` times the type's bound: per block, a fraction of the block's
 * largest magnitude (never 0.9 or more of it: a block stored as zeros must fail), plus what
 * fp16's rounding of a tiny scale can add (half a subnormal step times the largest code) */
static void check_bound(const type_info *ti, size_t E, const float *x, const float *y, size_t ne,
                        float scale, const bool *skip)
{
    const float slack = fmaxf(1e-5f, ldexpf(ti->code_range, -23));
    for (size_t b = 0; b < ne / E; b++) {
        if (skip && skip[b]) continue;
        float amax = 0;
        for (size_t i = 0; i < E; i++) amax = fmaxf(amax, fabsf(x[b * E + i]));
        const float lim = fminf(scale * ti->bound, 0.9f) * amax + slack; /* < amax: zeros fail */
        for (size_t i = 0; i < E; i++) {
            float xi = x[b * E + i], yi = y[b * E + i];
            if (!(fabsf(xi - yi) <= lim))
                fprintf(stderr, "fuzz_quant: %s block %zu elem %zu: %a decoded as %a (bound %g)\n",
                        qfmt_type_get_traits(ti->type)->name, b, i, (double)xi, (double)yi,
                        (double)lim);
            CHECK(fabsf(xi - yi) <= lim);
        }
    }
}

/* ---- Quantize without importance ----------------------------------------------------------- */

static void fuzz_quantize(const type_info *ti, uint32_t src_type, bool wide, uint8_t opt,
                          const uint8_t *p, size_t n)
{
    const uint32_t type = ti->type;
    const qfmt_quant_kernels *k = qfmt_quant_kernels_get(type);
    CHECK(k != NULL);
    const size_t E = k->block_elems;
    source sr;
    uint8_t *q_ref = NULL, *q_tmp = NULL, *q_best = NULL;
    float *y = NULL, *z = NULL;
    if (!make_source(&sr, src_type, E, wide, false, opt, p, n)) goto out;
    const size_t ne = sr.ne, nb = ne / E, qsize = nb * k->block_bytes;
    q_ref = malloc(qsize);
    q_tmp = malloc(qsize);
    q_best = malloc(qsize);
    y = malloc(ne * sizeof *y);
    z = malloc(ne * sizeof *z);
    if (!q_ref || !q_tmp || !q_best || !y || !z) goto out;

    qfmt_error e;
    qfmt_quant_opts ref1 = {.threads = 1, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_SCALAR};
    qfmt_status s = qfmt_quantize(type, q_ref, qsize, src_type, sr.src, sr.nrows, sr.row_len, &ref1, &e);
    if (!sr.finite)
        check_failure(s, &e, QFMT_E_RANGE);
    else if (sr.in_range)
        check_failure(s, &e, QFMT_OK);
    else if (s != QFMT_OK)
        check_failure(s, &e, QFMT_E_RANGE);

    /* the same status and bytes with the other kernel, two threads, the other quality */
    qfmt_quant_opts others[] = {
        {.threads = 2, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_SCALAR},
        {.threads = 1, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AVX2},
        {.threads = (opt & 4) ? 2u : 1u, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AUTO},
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        if (!qfmt_kernel_available(others[i].kernel)) continue;
        if (i == 0 && !wide) continue; /* one chunk: one thread, the run above */
        if (i == 1 && wide) continue;  /* kernel levels: the narrow inputs' business */
        qfmt_error e2;
        qfmt_status s2 = qfmt_quantize(type, q_tmp, qsize, src_type, sr.src, sr.nrows, sr.row_len,
                                       &others[i], &e2);
        CHECK(same_error(s, &e, s2, &e2));
        if (s == QFMT_OK) CHECK(memcmp(q_tmp, q_ref, qsize) == 0);
    }
    /* the kernels themselves, on the finite tensor (what they are specified for): the blocks
     * done are those qfmt_quantize accepted */
    if (sr.finite && !wide) {
        size_t da = k->quantize_ref(sr.x, q_tmp, nb);
        CHECK(da <= nb && (da == nb) == (s == QFMT_OK));
        if (s == QFMT_OK) CHECK(memcmp(q_tmp, q_ref, qsize) == 0);
        if (k->quantize_avx2 != NULL && (qfmt_cpu_features() & QFMT_CPU_AVX2)) {
            size_t db = k->quantize_avx2(sr.x, q_best, nb);
            CHECK(da == db);
            CHECK(memcmp(q_tmp, q_best, da * k->block_bytes) == 0);
        }
    }

    /* BEST: the same status (the same blocks are refused). Its threads share out the blocks
     * as the reference's do (above), so a wide input, slow to search, skips it. */
    qfmt_quant_opts best = {.threads = 1, .quality = QFMT_QUALITY_BEST, .kernel = QFMT_KERNEL_SCALAR};
    if (!wide) {
        qfmt_error eb;
        qfmt_status sb = qfmt_quantize(type, q_best, qsize, src_type, sr.src, sr.nrows, sr.row_len,
                                       &best, &eb);
        CHECK(same_error(s, &e, sb, &eb));
        if (s == QFMT_OK && src_type != QFMT_TYPE_F32 && qfmt_kernel_available(QFMT_KERNEL_AVX2)) {
            /* the other level's f16/bf16 conversion; the search itself is scalar only */
            best.kernel = QFMT_KERNEL_AVX2;
            CHECK(qfmt_quantize(type, q_tmp, qsize, src_type, sr.src, sr.nrows, sr.row_len, &best,
                                &e) == QFMT_OK);
            CHECK(memcmp(q_tmp, q_best, qsize) == 0);
        }
    }
    if (s != QFMT_OK) goto out;
    CHECK(qfmt_dequantize(QFMT_TYPE_F32, y, ne * sizeof *y, type, q_ref, sr.nrows, sr.row_len,
                          &ref1, &e) == QFMT_OK);
    for (size_t i = 0; i < ne; i++) CHECK(isfinite(y[i]));
    check_bound(ti, E, sr.x, y, ne, 1.0f, NULL);
    if (wide) goto out;

    if (k->quantize_best == k->quantize_ref) { /* the K types, q5_0, q5_1, iq4: no search of their own */
        CHECK(memcmp(q_best, q_ref, qsize) == 0);
        goto out;
    }
    CHECK(qfmt_dequantize(QFMT_TYPE_F32, z, ne * sizeof *z, type, q_best, sr.nrows, sr.row_len,
                          &ref1, &e) == QFMT_OK);
    for (size_t b = 0; b < nb; b++) {
        for (size_t i = 0; i < E; i++) CHECK(isfinite(z[b * E + i]));
        double er = sse(sr.x + b * E, y + b * E, E), ebst = sse(sr.x + b * E, z + b * E, E);
        if (!(ebst <= er))
            fprintf(stderr, "fuzz_quant: type %u block %zu: best sse %.17g > reference %.17g\n",
                    type, b, ebst, er);
        CHECK(ebst <= er);
    }
out:
    free_source(&sr);
    free(q_ref);
    free(q_tmp);
    free(q_best);
    free(y);
    free(z);
}

/* ---- Quantize with importance -------------------------------------------------------------- */

/* An importance code: the first 16 special, the rest 2^-16 .. 2^13 with 3 mantissa bits. */
static float imp_code(uint8_t b)
{
    static const float special[16] = {0.0f,   0x1p-149f, 1e-30f, FLT_MIN, 1e30f,   FLT_MAX,
                                      65504.0f, 1.0f,    0x1p-10f, 0x1p-5f, 0.5f,   2.0f,
                                      32.0f,  1024.0f,   0x1p15f,  0x1p20f};
    if (b < 16) return special[b];
    return ldexpf(1.0f + (float)(b & 7) / 8.0f, (int)(b >> 3) - 18);
}

/* The importance of the row_len columns, by the recipe r (byte 2):
 *   bits 0-1  source: 0 imp_code of the payload bytes after the values, cyclically (none: 1.0);
 *             1 the column's mean square over the rows (llama.cpp's imatrix: in_sum2 / counts,
 *             in fp32: it may overflow to Inf); 2 |x| of the first row; 3 one value for every
 *             column, imp_code of the first byte after the values (none: 1.0)
 *   bits 2-4  poison of one column: 1 NaN, 2 -1, 3 -2^-149, 4 +Inf, 5 -0.0; else none
 *   bits 5-7  the poisoned column: (v * row_len) / 8 */
static void make_importance(float *w, const source *sr, uint8_t r, const uint8_t *codes, size_t ncodes)
{
    const size_t L = sr->row_len;
    switch (r & 3) {
    case 0:
        for (size_t c = 0; c < L; c++) w[c] = ncodes ? imp_code(codes[c % ncodes]) : 1.0f;
        break;
    case 1:
        for (size_t c = 0; c < L; c++) {
            float s = 0;
            for (size_t row = 0; row < sr->nrows; row++) s += sr->x[row * L + c] * sr->x[row * L + c];
            w[c] = s / (float)sr->nrows;
        }
        break;
    case 2:
        for (size_t c = 0; c < L; c++) w[c] = fabsf(sr->x[c]);
        break;
    default:
        for (size_t c = 0; c < L; c++) w[c] = ncodes ? imp_code(codes[0]) : 1.0f;
        break;
    }
    static const float poison[8] = {0, NAN, -1.0f, -0x1p-149f, INFINITY, -0.0f, 0, 0};
    const unsigned kind = (r >> 2) & 7;
    if (kind >= 1 && kind <= 5) w[((size_t)(r >> 5) * L) / 8] = poison[kind];
}

static void fuzz_quantize_weighted(const type_info *ti, uint32_t src_type, bool wide, uint8_t opt,
                                   uint8_t recipe, const uint8_t *p, size_t n)
{
    const uint32_t type = ti->type;
    const qfmt_quant_kernels *k = qfmt_quant_kernels_get(type);
    CHECK(k != NULL && k->quantize_weighted != NULL);
    const size_t E = k->block_elems;
    source sr;
    uint8_t *q_ref = NULL, *q_tmp = NULL;
    float *y = NULL, *w = NULL, *y0 = NULL;
    bool *skip = NULL;
    if (!make_source(&sr, src_type, E, wide, true, opt, p, n)) goto out;
    const size_t ne = sr.ne, nb = ne / E, qsize = nb * k->block_bytes, L = sr.row_len;
    const size_t row_blocks = L / E, row_bytes = row_blocks * k->block_bytes;
    q_ref = malloc(qsize);
    q_tmp = malloc(qsize);
    y = malloc(ne * sizeof *y);
    y0 = malloc(ne * sizeof *y0);
    w = malloc(L * sizeof *w);
    skip = malloc(nb * sizeof *skip);
    if (!q_ref || !q_tmp || !y || !y0 || !w || !skip) goto out;
    make_importance(w, &sr, recipe, p + sr.used, n - sr.used);
    bool valid = true;
    float wmax = 0;
    for (size_t c = 0; c < L; c++) {
        if (!(w[c] >= 0.0f) || !isfinite(w[c])) valid = false;
        else wmax = fmaxf(wmax, w[c]);
    }

    qfmt_error e;
    qfmt_quant_opts ref1 = {.threads = 1, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_SCALAR, .importance = w};
    qfmt_status s = qfmt_quantize(type, q_ref, qsize, src_type, sr.src, sr.nrows, L, &ref1, &e);
    if (!valid)
        check_failure(s, &e, QFMT_E_ARG); /* whatever the values */
    else if (!sr.finite)
        check_failure(s, &e, QFMT_E_RANGE);
    else if (sr.in_range && wmax <= IMP_SAFE)
        check_failure(s, &e, QFMT_OK);
    else if (s != QFMT_OK)
        check_failure(s, &e, QFMT_E_RANGE);

    qfmt_quant_opts others[] = {
        {.threads = 2, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_SCALAR, .importance = w},
        {.threads = 1, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AVX2, .importance = w},
        {.threads = (opt & 4) ? 2u : 1u, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AUTO, .importance = w},
        {.threads = 1, .quality = QFMT_QUALITY_BEST, .kernel = QFMT_KERNEL_SCALAR, .importance = w},
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        if (!qfmt_kernel_available(others[i].kernel)) continue;
        if (others[i].threads > 1 && sr.nrows == 1 && i == 0) continue; /* one row: one thread */
        qfmt_error e2;
        qfmt_status s2 = qfmt_quantize(type, q_tmp, qsize, src_type, sr.src, sr.nrows, L, &others[i], &e2);
        CHECK(same_error(s, &e, s2, &e2));
        if (s == QFMT_OK) CHECK(memcmp(q_tmp, q_ref, qsize) == 0);
    }
    if (!valid) goto out;

    /* the kernel row by row, on the finite rows: the rows done are those accepted */
    if (sr.finite) {
        bool all = true;
        for (size_t r = 0; r < sr.nrows && all; r++) {
            size_t d = k->quantize_weighted(sr.x + r * L, q_tmp + r * row_bytes, L, w);
            CHECK(d <= row_blocks);
            all = d == row_blocks;
        }
        CHECK(all == (s == QFMT_OK));
        if (s == QFMT_OK) CHECK(memcmp(q_tmp, q_ref, qsize) == 0);
    }
    if (s != QFMT_OK) goto out;

    qfmt_quant_opts plain = {.threads = 1, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_SCALAR};
    if (type == QFMT_TYPE_Q8_0) { /* ggml's q8_0 has no weighted quantizer: the reference bytes */
        CHECK(qfmt_quantize(type, q_tmp, qsize, src_type, sr.src, sr.nrows, L, &plain, &e) == QFMT_OK);
        CHECK(memcmp(q_tmp, q_ref, qsize) == 0);
    }
    CHECK(qfmt_dequantize(QFMT_TYPE_F32, y, ne * sizeof *y, type, q_ref, sr.nrows, L, &plain,
                          &e) == QFMT_OK);
    for (size_t i = 0; i < ne; i++) {
        if (!isfinite(y[i]))
            fprintf(stderr, "fuzz_quant: %s with importance: value %zu %a decoded as %a\n",
                    qfmt_type_get_traits(type)->name, i, (double)sr.x[i], (double)y[i]);
        CHECK(isfinite(y[i]));
    }
    /* near-uniform importance, of any magnitude from 1e-20 up to FLT_MAX (scaling every weight
     * changes nothing of what is best; far smaller ones underflow ggml's fp32 sums to 0, which
     * is not worth a finding): the unweighted bound, loosened */
    for (size_t b = 0; b < nb; b++) {
        const float *wb = w + (b * E) % L;
        float lo = wb[0], hi = wb[0];
        for (size_t i = 1; i < E; i++) {
            lo = fminf(lo, wb[i]);
            hi = fmaxf(hi, wb[i]);
        }
        skip[b] = !(lo >= 1e-20f && hi <= 4.0f * lo);
    }
    check_bound(ti, E, sr.x, y, ne, 2.0f, skip);

    /* q8_z, q4_z: the reference's block is the weighted search's first candidate, replaced only
     * by one of strictly smaller weighted error (internal/zpoint.h, computed the same way) */
    if (z_type(type)) {
        CHECK(qfmt_quantize(type, q_tmp, qsize, src_type, sr.src, sr.nrows, L, &plain, &e) == QFMT_OK);
        CHECK(qfmt_dequantize(QFMT_TYPE_F32, y0, ne * sizeof *y0, type, q_tmp, sr.nrows, L, &plain,
                              &e) == QFMT_OK);
        for (size_t r = 0; r < sr.nrows; r++) {
            const float *xr = sr.x + r * L;
            double sigma2 = 0;
            for (size_t j = 0; j < L; j++) sigma2 += (double)xr[j] * xr[j];
            sigma2 /= (double)L;
            for (size_t b = 0; b < row_blocks; b++) {
                double ew = 0, e0 = 0;
                for (size_t j = b * E; j < (b + 1) * E; j++) {
                    const double wt = (double)w[j] * sqrt(sigma2 + (double)xr[j] * xr[j]);
                    const double dw = (double)xr[j] - (double)y[r * L + j];
                    const double d0 = (double)xr[j] - (double)y0[r * L + j];
                    ew += wt * dw * dw;
                    e0 += wt * d0 * d0;
                }
                if (!(ew <= e0))
                    fprintf(stderr, "fuzz_quant: %s row %zu block %zu: weighted error %.17g > reference %.17g\n",
                            qfmt_type_get_traits(type)->name, r, b, ew, e0);
                CHECK(ew <= e0);
            }
        }
    }
out:
    free_source(&sr);
    free(q_ref);
    free(q_tmp);
    free(y);
    free(y0);
    free(w);
    free(skip);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    const type_info *ti = &types[(data[0] & 15) % NTYPES];
    const unsigned payload = (data[0] >> 4) & 3;
    const bool imp = data[0] & 64, wide = data[0] & 128;
    const uint8_t opt = data[1];
    static const uint32_t srcs[] = {0, QFMT_TYPE_F32, QFMT_TYPE_F16, QFMT_TYPE_BF16};
    if (payload == 0)
        fuzz_dequantize(ti, imp, wide, opt, data + 2, size - 2);
    else if (!imp)
        fuzz_quantize(ti, srcs[payload], wide, opt, data + 2, size - 2);
    else if (size >= 3)
        fuzz_quantize_weighted(ti, srcs[payload], wide, opt, data[2], data + 3, size - 3);
    return 0;
}

/* ---- Seeds (-DFUZZ_QUANT_WRITE_SEEDS) ------------------------------------------------------ */
#ifdef FUZZ_QUANT_WRITE_SEEDS

static uint64_t rng = 0x853C49E6748FEA9Bull;

static uint32_t next32(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 32);
}

static float uniform(void) { return (float)next32() / 4294967296.0f; }

/* Weight-like: roughly normal, sd about 0.02, every 37th value an outlier of up to 0.5. */
static float weight(size_t i)
{
    float u = uniform() + uniform() + uniform() + uniform() - 2.0f;
    return i % 37 == 5 ? u * 0.5f : u * 0.035f;
}

static const char *out_dir;

static void put(const char *name, const uint8_t *head, size_t nhead, const void *body, size_t nbody)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/seed_%s", out_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(head, 1, nhead, f) != nhead || fwrite(body, 1, nbody, f) != nbody ||
        fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* n f32 values as src_type (little-endian, as this machine: x86 / arm64) */
static size_t encode_values(uint32_t src_type, const float *v, size_t n, uint8_t *out)
{
    if (src_type == QFMT_TYPE_F32) {
        memcpy(out, v, n * 4);
        return n * 4;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t h = src_type == QFMT_TYPE_F16 ? qfmt_f32_to_f16(v[i]) : qfmt_f32_to_bf16(v[i]);
        out[2 * i] = (uint8_t)h;
        out[2 * i + 1] = (uint8_t)(h >> 8);
    }
    return n * 2;
}

/* the fp16 fields of each type's block (scale, and min/offset where there is one) */
static void fp16_fields(uint32_t t, int *a, int *b)
{
    *b = -1;
    switch (t) {
    case QFMT_TYPE_Q2_K: *a = 80; *b = 82; break;
    case QFMT_TYPE_Q3_K: *a = 108; break;
    case QFMT_TYPE_Q6_K: *a = 208; break;
    case QFMT_TYPE_Q4_1: case QFMT_TYPE_Q5_1: case QFMT_TYPE_Q4_K: case QFMT_TYPE_Q5_K:
        *a = 0; *b = 2; break;
    default: *a = 0; break;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    static const char *srcname[] = {"", "f32", "f16", "bf16"};
    static const uint32_t srct[] = {0, QFMT_TYPE_F32, QFMT_TYPE_F16, QFMT_TYPE_BF16};
    static float v[4 * MAX_ELEMS];
    static uint8_t body[16 * MAX_ELEMS];
    char name[128];
    for (int ti = 0; ti < NTYPES; ti++) {
        const uint32_t t = types[ti].type;
        const qfmt_quant_kernels *k = qfmt_quant_kernels_get(t);
        const char *tn = qfmt_type_get_traits(t)->name;
        const size_t E = k->block_elems, bb = k->block_bytes;
        const size_t nblk = E == 32 ? 4 : 2; /* blocks of the small seeds */
        uint8_t h[3];

        /* decode: random blocks; blocks with special fp16 scales */
        for (size_t i = 0; i < nblk * bb; i++) body[i] = (uint8_t)next32();
        h[0] = (uint8_t)ti;
        h[1] = 1;
        snprintf(name, sizeof name, "dq_%s_random", tn);
        put(name, h, 2, body, nblk * bb);
        static const uint16_t specials[] = {0x7E00, 0x7C00, 0xFC00, 0x8000, 0x0001, 0x7BFF, 0xFE01, 0x3C00};
        int fa, fb;
        fp16_fields(t, &fa, &fb);
        for (size_t i = 0; i < 8 * bb; i++) body[i] = (uint8_t)next32();
        for (size_t b = 0; b < 8; b++) {
            uint16_t s = specials[b], m = specials[(b + 3) % 8];
            body[b * bb + (size_t)fa] = (uint8_t)s;
            body[b * bb + (size_t)fa + 1] = (uint8_t)(s >> 8);
            if (fb >= 0) {
                body[b * bb + (size_t)fb] = (uint8_t)m;
                body[b * bb + (size_t)fb + 1] = (uint8_t)(m >> 8);
            }
        }
        h[1] = 0;
        snprintf(name, sizeof name, "dq_%s_special_scales", tn);
        put(name, h, 2, body, 8 * bb);
        if (t == QFMT_TYPE_Q4_1 || t == QFMT_TYPE_Q5_0 || t == QFMT_TYPE_Q4_K) {
            h[0] = (uint8_t)(ti | 64 | 128); /* two threads, importance ignored */
            h[1] = 1 | 4;
            snprintf(name, sizeof name, "dq_%s_wide", tn);
            put(name, h, 2, body, (E == 32 ? 4 : 1) * bb);
        }

        /* quantize: weight-like values in each source type, two rows (of two blocks of 32, or
         * of one super-block) */
        const uint8_t two_rows = E == 32 ? 1 : 0;      /* byte 1: the row length */
        const size_t nv = E == 32 ? 4 * E : 2 * E, L = nv / 2;
        for (size_t i = 0; i < nv; i++) v[i] = weight(i);
        for (int st = 1; st <= 3; st++) {
            h[0] = (uint8_t)(ti | st << 4);
            h[1] = two_rows;
            snprintf(name, sizeof name, "q_%s_%s", tn, srcname[st]);
            put(name, h, 2, body, encode_values(srct[st], v, nv, body));
        }
        /* edges: one pattern per 32 values (zeros, -0, one outlier, subnormals, fp16's limits,
         * just beyond, huge, a constant, alternating signs); a K type's or iq4_xs's four
         * super-blocks: every pattern in turn, rotated, then two whole blocks of one */
        const size_t ne_edges = E == 32 ? 8 * E : 4 * E;
        for (size_t i = 0; i < ne_edges; i++) {
            size_t g = i / 32, j = i % 32, b = i / E;
            size_t pat = E == 32 ? g % 8 : b == 0 ? g % 8 : b == 1 ? (g + 3) % 8 : b == 2 ? 2 : 5;
            float x;
            switch (pat) {
            case 0: x = j % 3 == 0 ? -0.0f : 0.0f; break;
            case 1: x = j == 7 ? 1000.0f : weight(j) * 1e-3f; break;
            case 2: x = ldexpf((float)(j % 5) - 2.0f, -140); break;
            case 3: x = j % 2 ? 65504.0f : -65504.0f * (float)j / 32.0f; break;
            case 4: x = j == 0 ? 65520.0f : 1.0f; break;
            case 5: x = j == 1 ? 3e6f : -(float)j; break;
            case 6: x = 0.25f; break;
            default: x = (j % 2 ? 1.0f : -1.0f) * ldexpf(1.0f, -(int)(j % 30)); break;
            }
            v[i] = x;
        }
        h[0] = (uint8_t)(ti | 1 << 4);
        h[1] = 0;
        snprintf(name, sizeof name, "q_%s_edges", tn);
        put(name, h, 2, body, encode_values(QFMT_TYPE_F32, v, ne_edges, body));
        /* non-finite: a NaN in the second row, an Inf in the third */
        for (size_t i = 0; i < 3 * E; i++) v[i] = weight(i);
        v[E + 3] = NAN;
        v[2 * E + 9] = -INFINITY;
        h[0] = (uint8_t)(ti | 1 << 4);
        h[1] = 0;
        snprintf(name, sizeof name, "q_%s_nonfinite", tn);
        put(name, h, 2, body, encode_values(QFMT_TYPE_F32, v, 3 * E, body));
        /* wide: two threads; then a NaN only in the last copy (the second thread's part). The
         * split depends on the block size and the kernel level only: a few types suffice. */
        const bool wide_seeds = t == QFMT_TYPE_Q8_0 || t == QFMT_TYPE_Q4_Z || t == QFMT_TYPE_Q5_1 ||
                                t == QFMT_TYPE_Q3_K;
        for (size_t i = 0; i < 2 * E; i++) v[i] = weight(i);
        if (wide_seeds) {
            h[0] = (uint8_t)(ti | 2 << 4 | 128);
            h[1] = 1 | 4;
            snprintf(name, sizeof name, "q_%s_wide_f16", tn);
            put(name, h, 2, body, encode_values(QFMT_TYPE_F16, v, 2 * E, body));
            v[E + 1] = NAN;
            h[0] = (uint8_t)(ti | 1 << 4 | 128);
            h[1] = 16;
            snprintf(name, sizeof name, "q_%s_wide_nan_last", tn);
            put(name, h, 2, body, encode_values(QFMT_TYPE_F32, v, 2 * E, body));
        }
        /* a short input: less than a row, repeated */
        h[0] = (uint8_t)(ti | 3 << 4);
        h[1] = 0;
        for (size_t i = 0; i < 24; i++) v[i] = weight(i) * (float)(i + 1);
        snprintf(name, sizeof name, "q_%s_short", tn);
        put(name, h, 2, body, encode_values(QFMT_TYPE_BF16, v, 24, body));

        /* importance: the same two rows, then the recipes */
        for (size_t i = 0; i < nv; i++) v[i] = weight(i);
        v[3] = 0.0f;
        v[L + 1] = 3e-39f; /* fp32 subnormal */
        static const struct {
            const char *name;
            uint8_t src, recipe;
            int codes; /* importance code bytes after the values: -1 every code in turn (the
                          specials included), -2 random ordinary codes, else that one code */
        } rec[] = {
            {"codes", 1, 0, -1},
            {"imatrix_f16", 2, 1, -3},
            {"abs_row0_bf16", 3, 2, -3},
            {"const_one", 1, 3, 7},
            {"const_zero", 1, 3, 0},
            {"const_max", 1, 3, 5},                     /* FLT_MAX everywhere */
            {"neg_zero", 1, 0 | 5 << 2 | 4 << 5, -2},   /* -0.0 is >= 0: accepted */
            {"nan", 1, 0 | 1 << 2 | 3 << 5, -2},
            {"neg", 2, 1 | 2 << 2 | 7 << 5, -3},
            {"inf", 3, 2 | 4 << 2 | 1 << 5, -3},
            {"neg_subnormal", 1, 3 | 3 << 2, 7},
        };
        for (size_t r = 0; r < sizeof rec / sizeof rec[0]; r++) {
            h[0] = (uint8_t)(ti | rec[r].src << 4 | 64);
            h[1] = (uint8_t)(two_rows | 4);
            h[2] = rec[r].recipe;
            size_t len = encode_values(srct[rec[r].src], v, nv, body);
            if (rec[r].codes == -1)
                for (size_t c = 0; c < L; c++) body[len++] = (uint8_t)(c < 16 ? c : c * 37 % 256);
            else if (rec[r].codes == -2)
                for (size_t c = 0; c < L; c++) body[len++] = (uint8_t)(16 + next32() % 240);
            else if (rec[r].codes >= 0)
                body[len++] = (uint8_t)rec[r].codes;
            snprintf(name, sizeof name, "qw_%s_%s", tn, rec[r].name);
            put(name, h, 3, body, len);
        }
        if (wide_seeds) { /* two rows, two threads; a NaN in the second row only */
            h[0] = (uint8_t)(ti | 1 << 4 | 64 | 128);
            h[1] = 0 | 4 | 16;
            h[2] = 0;
            for (size_t i = 0; i < E; i++) v[i] = weight(i);
            v[E / 2] = NAN;
            size_t len = encode_values(QFMT_TYPE_F32, v, E, body);
            for (size_t c = 0; c < E; c++) body[len++] = (uint8_t)(16 + next32() % 240);
            snprintf(name, sizeof name, "qw_%s_wide_nan_last", tn);
            put(name, h, 3, body, len);
        }
    }
    return 0;
}
#endif
