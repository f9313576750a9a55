/* Quantize / dequantize whole tensors: source conversion to fp32, finiteness checks, kernel
 * choice (scalar or AVX2, same bytes) and threads over contiguous runs of blocks. Blocks
 * never straddle rows (rows hold whole blocks), so a tensor is a flat run of blocks. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <string.h>

#include "internal/checked.h"
#include "internal/error.h"
#include "internal/floats.h"
#include "internal/quant.h"

static const qfmt__quant_kernels kernels[] = {
    {QFMT_TYPE_Q8_0, 34, qfmt__q8_0_quantize_ref, qfmt__q8_0_dequantize_ref,
     qfmt__q8_0_quantize_best, qfmt__q8_0_quantize_avx2, qfmt__q8_0_dequantize_avx2},
    {QFMT_TYPE_Q4_0, 18, qfmt__q4_0_quantize_ref, qfmt__q4_0_dequantize_ref,
     qfmt__q4_0_quantize_best, qfmt__q4_0_quantize_avx2, qfmt__q4_0_dequantize_avx2},
    {QFMT_TYPE_Q4_1, 20, qfmt__q4_1_quantize_ref, qfmt__q4_1_dequantize_ref,
     qfmt__q4_1_quantize_best, qfmt__q4_1_quantize_avx2, qfmt__q4_1_dequantize_avx2},
    {QFMT_TYPE_Q8_Z, 35, qfmt__q8_z_quantize_ref, qfmt__q8_z_dequantize_ref,
     qfmt__q8_z_quantize_best, qfmt__q8_z_quantize_avx2, qfmt__q8_z_dequantize_avx2},
    {QFMT_TYPE_Q4_Z, 19, qfmt__q4_z_quantize_ref, qfmt__q4_z_dequantize_ref,
     qfmt__q4_z_quantize_best, qfmt__q4_z_quantize_avx2, qfmt__q4_z_dequantize_avx2},
};

const qfmt__quant_kernels *qfmt__quant_get(uint32_t type)
{
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        if (kernels[i].type == type) return &kernels[i];
    return NULL;
}

bool qfmt_kernel_available(qfmt_kernel k)
{
    return k == QFMT_KERNEL_AUTO || k == QFMT_KERNEL_SCALAR ||
           (k == QFMT_KERNEL_AVX2 && qfmt__cpu_has_avx2());
}

static int is_float(uint32_t t) { return t == QFMT_TYPE_F32 || t == QFMT_TYPE_F16 || t == QFMT_TYPE_BF16; }
static size_t float_size(uint32_t t) { return t == QFMT_TYPE_F32 ? 4 : 2; }

enum { CHUNK_BLOCKS = 128, CHUNK = CHUNK_BLOCKS * QFMT__QK };

typedef struct {
    bool quantize;
    bool simd;             /* AVX2 loops (the same results as the scalar ones) */
    uint32_t plain_type;   /* the float side */
    uint32_t src_type, dst_type; /* float to float conversion, when k is NULL */
    const uint8_t *src;
    uint8_t *dst;
    const qfmt__quant_kernels *k; /* NULL: float to float */
    qfmt__quantize_fn q;
    qfmt__dequantize_fn dq;
    uint64_t begin, end;   /* element range of this worker, block-aligned */
    /* result */
    qfmt_status status;
    uint64_t bad;          /* element index of the failure */
    bool bad_is_block;     /* scale overflow (else a non-finite value) */
} part;

static void run_part(part *p)
{
    float buf[CHUNK];
    const size_t fs = float_size(p->plain_type);
    const uint32_t bb = p->k ? p->k->block_bytes : 0;
    for (uint64_t at = p->begin; at < p->end; at += CHUNK) {
        size_t n = (size_t)(p->end - at < CHUNK ? p->end - at : CHUNK);
        if (!p->k) {
            qfmt_convert_floats(p->src_type, p->src + at * float_size(p->src_type), p->dst_type,
                                p->dst + at * float_size(p->dst_type), n);
        } else if (p->quantize) {
            qfmt_convert_floats(p->plain_type, p->src + at * fs, QFMT_TYPE_F32, buf, n);
            size_t bad = n; /* first NaN or Inf */
            if (p->simd) {
                bad = qfmt__first_nonfinite_avx2(buf, n);
            } else {
                for (size_t i = 0; i < n && bad == n; i++)
                    if (buf[i] - buf[i] != 0.0f) bad = i;
            }
            /* blocks before the bad value first: whichever failure comes first in element order
             * is the one reported, however the work was split */
            size_t nb = (bad == n ? n : bad - bad % QFMT__QK) / QFMT__QK;
            size_t done = p->q(buf, p->dst + (at / QFMT__QK) * bb, nb);
            if (done < nb) {
                p->status = QFMT_E_RANGE;
                p->bad = at + done * QFMT__QK;
                p->bad_is_block = true;
                return;
            }
            if (bad < n) {
                p->status = QFMT_E_RANGE;
                p->bad = at + bad;
                return;
            }
        } else {
            p->dq(p->src + (at / QFMT__QK) * bb, buf, n / QFMT__QK);
            qfmt_convert_floats(QFMT_TYPE_F32, buf, p->plain_type, p->dst + at * fs, n);
        }
    }
}

static void *run_thread(void *arg)
{
    run_part(arg);
    return NULL;
}

static qfmt_status run(bool quantize, uint32_t dst_type, void *dst, uint64_t dst_size,
                       uint32_t src_type, const void *src, uint64_t nrows, uint64_t row_len,
                       const qfmt_quant_opts *opts, qfmt_error *err)
{
    qfmt__clear_error(err);
    const uint32_t block_type = quantize ? dst_type : src_type;
    const uint32_t plain_type = quantize ? src_type : dst_type;
    const char *verb = quantize ? "quantize" : "dequantize";
    if (!is_float(plain_type))
        return qfmt__fail(err, QFMT_E_UNSUPPORTED, 0, NULL, NULL, QFMT_NO_OFFSET,
                          "%s: type %" PRIu32 " is not f32, f16 or bf16", verb, plain_type);
    uint64_t n, need_dst, need_src;
    if (!qfmt__mul_u64(nrows, row_len, &n))
        return qfmt__fail(err, QFMT_E_RANGE, 0, NULL, NULL, QFMT_NO_OFFSET,
                          "%s: %" PRIu64 " rows of %" PRIu64 " values overflow", verb, nrows, row_len);
    const qfmt__quant_kernels *k = NULL;
    if (is_float(block_type)) { /* plain conversion: need_* are the two float sizes */
        if (!qfmt__mul_u64(n, float_size(dst_type), &need_dst) ||
            !qfmt__mul_u64(n, float_size(src_type), &need_src) || need_src > SIZE_MAX ||
            need_dst > SIZE_MAX)
            return qfmt__fail(err, QFMT_E_RANGE, 0, NULL, NULL, QFMT_NO_OFFSET, "%s: tensor too large", verb);
    } else {
        k = qfmt__quant_get(block_type);
        if (!k)
            return qfmt__fail(err, QFMT_E_UNSUPPORTED, 0, NULL, NULL, QFMT_NO_OFFSET,
                              "%s: type %" PRIu32 " is not a type this library can convert", verb,
                              block_type);
        if (row_len % QFMT__QK != 0)
            return qfmt__fail(err, QFMT_E_RANGE, 0, NULL, NULL, QFMT_NO_OFFSET,
                              "rows of %" PRIu64 " values cannot be split into %s blocks of %u",
                              row_len, qfmt_type_get_traits(block_type)->name, QFMT__QK);
        uint64_t blocks_bytes, floats_bytes;
        if (!qfmt__mul_u64(n / QFMT__QK, k->block_bytes, &blocks_bytes) ||
            !qfmt__mul_u64(n, float_size(plain_type), &floats_bytes) || floats_bytes > SIZE_MAX)
            return qfmt__fail(err, QFMT_E_RANGE, 0, NULL, NULL, QFMT_NO_OFFSET, "%s: tensor too large", verb);
        need_dst = quantize ? blocks_bytes : floats_bytes;
    }
    if (dst_size != need_dst || (n && (!src || !dst)))
        return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET,
                          "%s: destination holds %" PRIu64 " bytes, %" PRIu64 " needed", verb,
                          dst_size, need_dst);
    qfmt_kernel kern = opts ? opts->kernel : QFMT_KERNEL_AUTO;
    if (!qfmt_kernel_available(kern))
        return qfmt__fail(err, QFMT_E_UNSUPPORTED, 0, NULL, NULL, QFMT_NO_OFFSET,
                          "the AVX2 kernels need a CPU with AVX2, FMA and F16C");
    bool simd = kern == QFMT_KERNEL_AVX2 || (kern == QFMT_KERNEL_AUTO && qfmt__cpu_has_avx2());
    bool best = quantize && opts && opts->quality == QFMT_QUALITY_BEST;

    part proto;
    memset(&proto, 0, sizeof proto);
    proto.quantize = quantize;
    proto.plain_type = plain_type;
    proto.src = src;
    proto.dst = dst;
    proto.src_type = src_type;
    proto.dst_type = dst_type;
    proto.k = k;
    if (k) {
        proto.q = best ? k->quantize_best : simd ? k->quantize_avx2 : k->quantize_ref;
        proto.simd = simd;
        proto.dq = simd ? k->dequantize_avx2 : k->dequantize_ref;
    }

    /* Float conversions have no blocks; any split on 32 elements serves them too. */
    uint64_t nblocks = n / QFMT__QK, tail = n % QFMT__QK;
    unsigned threads = opts && opts->threads > 1 ? opts->threads : 1;
    if (threads > 64) threads = 64;
    if ((uint64_t)threads > nblocks / CHUNK_BLOCKS) threads = (unsigned)(nblocks / CHUNK_BLOCKS);
    if (threads < 1) threads = 1;
    part parts[64];
    pthread_t tid[64];
    bool started[64] = {false};
    for (unsigned t = 0; t < threads; t++) {
        parts[t] = proto;
        parts[t].begin = nblocks * t / threads * QFMT__QK;
        parts[t].end = nblocks * (t + 1) / threads * QFMT__QK;
    }
    parts[threads - 1].end += tail; /* only float conversions have a tail */
    for (unsigned t = 1; t < threads; t++)
        started[t] = pthread_create(&tid[t], NULL, run_thread, &parts[t]) == 0;
    run_part(&parts[0]);
    for (unsigned t = 1; t < threads; t++) {
        if (started[t]) pthread_join(tid[t], NULL);
        else run_part(&parts[t]); /* no thread to be had: do it here */
    }
    for (unsigned t = 0; t < threads; t++) /* the first failure in element order */
        if (parts[t].status != QFMT_OK) {
            const char *tname = qfmt_type_get_traits(block_type)->name;
            uint64_t row = parts[t].bad / row_len, col = parts[t].bad % row_len;
            if (parts[t].bad_is_block)
                return qfmt__fail(err, QFMT_E_RANGE, 0, NULL, NULL, QFMT_NO_OFFSET,
                                  "row %" PRIu64 ", block at column %" PRIu64
                                  ": values too large for a %s block's fp16 scale",
                                  row, col, tname);
            return qfmt__fail(err, QFMT_E_RANGE, 0, NULL, NULL, QFMT_NO_OFFSET,
                              "row %" PRIu64 ", column %" PRIu64
                              ": NaN or infinite value cannot be quantized to %s",
                              row, col, tname);
        }
    return QFMT_OK;
}

qfmt_status qfmt_quantize(uint32_t dst_type, void *dst, uint64_t dst_size, uint32_t src_type,
                          const void *src, uint64_t nrows, uint64_t row_len,
                          const qfmt_quant_opts *opts, qfmt_error *err)
{
    return run(true, dst_type, dst, dst_size, src_type, src, nrows, row_len, opts, err);
}

qfmt_status qfmt_dequantize(uint32_t dst_type, void *dst, uint64_t dst_size, uint32_t src_type,
                            const void *src, uint64_t nrows, uint64_t row_len,
                            const qfmt_quant_opts *opts, qfmt_error *err)
{
    return run(false, dst_type, dst, dst_size, src_type, src, nrows, row_len, opts, err);
}

/* ---- Row decoders (qfmt_row_decoder) ------------------------------------------------------ */

#define FLOAT_ROW(name, T)                                                   \
    static void name(const void *src, float *dst, size_t n)                  \
    {                                                                        \
        qfmt_convert_floats(T, src, QFMT_TYPE_F32, dst, n);                  \
    }
FLOAT_ROW(row_f32, QFMT_TYPE_F32)
FLOAT_ROW(row_f16, QFMT_TYPE_F16)
FLOAT_ROW(row_bf16, QFMT_TYPE_BF16)

#define BLOCK_ROW(name, fn)                                                  \
    static void name(const void *src, float *dst, size_t n)                  \
    {                                                                        \
        fn((const uint8_t *)src, dst, n / QFMT__QK);                         \
    }
BLOCK_ROW(row_q8_0_ref, qfmt__q8_0_dequantize_ref)
BLOCK_ROW(row_q4_0_ref, qfmt__q4_0_dequantize_ref)
BLOCK_ROW(row_q4_1_ref, qfmt__q4_1_dequantize_ref)
BLOCK_ROW(row_q8_z_ref, qfmt__q8_z_dequantize_ref)
BLOCK_ROW(row_q4_z_ref, qfmt__q4_z_dequantize_ref)
BLOCK_ROW(row_q8_0_avx2, qfmt__q8_0_dequantize_avx2)
BLOCK_ROW(row_q4_0_avx2, qfmt__q4_0_dequantize_avx2)
BLOCK_ROW(row_q4_1_avx2, qfmt__q4_1_dequantize_avx2)
BLOCK_ROW(row_q8_z_avx2, qfmt__q8_z_dequantize_avx2)
BLOCK_ROW(row_q4_z_avx2, qfmt__q4_z_dequantize_avx2)

qfmt_row_decode_fn qfmt_row_decoder(uint32_t type)
{
    bool simd = qfmt__cpu_has_avx2() != 0;
    switch (type) {
    case QFMT_TYPE_F32: return row_f32;
    case QFMT_TYPE_F16: return row_f16;
    case QFMT_TYPE_BF16: return row_bf16;
    case QFMT_TYPE_Q8_0: return simd ? row_q8_0_avx2 : row_q8_0_ref;
    case QFMT_TYPE_Q4_0: return simd ? row_q4_0_avx2 : row_q4_0_ref;
    case QFMT_TYPE_Q4_1: return simd ? row_q4_1_avx2 : row_q4_1_ref;
    case QFMT_TYPE_Q8_Z: return simd ? row_q8_z_avx2 : row_q8_z_ref;
    case QFMT_TYPE_Q4_Z: return simd ? row_q4_z_avx2 : row_q4_z_ref;
    default: return NULL;
    }
}
