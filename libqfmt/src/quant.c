/* Quantize / dequantize whole tensors: source conversion to fp32, finiteness checks, kernel
 * level (scalar or AVX2, same bytes; chosen by dispatch.c) and threads over contiguous runs of
 * blocks. Blocks (32 or 256 values) never straddle rows (rows hold whole blocks), so a tensor is
 * a flat run of blocks - except with importance, whose quantizers take a whole row at a time
 * (ggml's weighted quantizers use statistics of the row): then threads share out rows.
 * The importance is first scaled by a power of two so that its largest value lies in
 * [0.5, 1) (internal/kquant_util.h, qfmt__imp_exponent): exact, and it changes no bytes where
 * no fp32 sum under- or overflows, while importance near FLT_MAX no longer overflows them. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal/block.h"
#include "internal/checked.h"
#include "internal/dispatch.h"
#include "internal/error.h"
#include "internal/kquant_util.h"

static int is_float(uint32_t t) { return t == QFMT_TYPE_F32 || t == QFMT_TYPE_F16 || t == QFMT_TYPE_BF16; }
static size_t float_size(uint32_t t) { return t == QFMT_TYPE_F32 ? 4 : 2; }

enum { CHUNK_BLOCKS = 128, CHUNK = CHUNK_BLOCKS * QFMT__QK }; /* a multiple of every block size */

typedef struct {
    bool quantize;
    const qfmt__float_kernels *fk; /* float rows of the level run */
    uint32_t plain_type;   /* the float side */
    uint32_t src_type, dst_type; /* float to float conversion, when k is NULL */
    const uint8_t *src;
    uint8_t *dst;
    const qfmt_quant_kernels *k; /* NULL: float to float */
    qfmt_quantize_blocks_fn q;
    qfmt_dequantize_blocks_fn dq;
    uint64_t begin, end;   /* element range of this worker, block-aligned (with importance:
                              row-aligned) */
    const float *importance; /* row_len values, or NULL */
    uint64_t row_len;
    /* result */
    qfmt_status status;
    uint64_t bad;          /* element index of the failure */
    bool bad_is_block;     /* scale overflow (else a non-finite value) */
} part;

/* With importance: whole rows, each converted to fp32 in a buffer of its own. */
static void run_part_weighted(part *p)
{
    const size_t fs = float_size(p->plain_type), n = (size_t)p->row_len, bs = p->k->block_elems;
    const uint32_t bb = p->k->block_bytes;
    float *row = malloc(n * sizeof *row);
    if (!row) {
        p->status = QFMT_E_NOMEM;
        p->bad = p->begin;
        return;
    }
    for (uint64_t at = p->begin; at < p->end; at += n) {
        const uint8_t *s = p->src + at * fs;
        if (p->plain_type == QFMT_TYPE_F32) memcpy(row, s, n * sizeof(float));
        else (p->plain_type == QFMT_TYPE_F16 ? p->fk->f16_to_f32 : p->fk->bf16_to_f32)(s, row, n);
        size_t bad = p->fk->first_nonfinite(row, n);
        if (bad < n) { /* a row is quantized as a whole: nothing of it is written */
            p->status = QFMT_E_RANGE;
            p->bad = at + bad;
            break;
        }
        size_t done = p->k->quantize_weighted(row, p->dst + (at / bs) * bb, n, p->importance);
        if (done < n / bs) {
            p->status = QFMT_E_RANGE;
            p->bad = at + done * bs;
            p->bad_is_block = true;
            break;
        }
    }
    free(row);
}

static void run_part(part *p)
{
    if (p->importance && p->k && p->quantize) {
        run_part_weighted(p);
        return;
    }
    float buf[CHUNK];
    const size_t fs = float_size(p->plain_type);
    const uint32_t bb = p->k ? p->k->block_bytes : 0;
    const size_t bs = p->k ? p->k->block_elems : QFMT__QK;
    for (uint64_t at = p->begin; at < p->end; at += CHUNK) {
        size_t n = (size_t)(p->end - at < CHUNK ? p->end - at : CHUNK);
        if (!p->k) {
            qfmt_convert_floats(p->src_type, p->src + at * float_size(p->src_type), p->dst_type,
                                p->dst + at * float_size(p->dst_type), n);
        } else if (p->quantize) {
            const uint8_t *s = p->src + at * fs;
            if (p->plain_type == QFMT_TYPE_F32) memcpy(buf, s, n * sizeof(float));
            else (p->plain_type == QFMT_TYPE_F16 ? p->fk->f16_to_f32 : p->fk->bf16_to_f32)(s, buf, n);
            size_t bad = p->fk->first_nonfinite(buf, n); /* first NaN or Inf */
            /* blocks before the bad value first: whichever failure comes first in element order
             * is the one reported, however the work was split */
            size_t nb = (bad == n ? n : bad - bad % bs) / bs;
            size_t done = p->q(buf, p->dst + (at / bs) * bb, nb);
            if (done < nb) {
                p->status = QFMT_E_RANGE;
                p->bad = at + done * bs;
                p->bad_is_block = true;
                return;
            }
            if (bad < n) {
                p->status = QFMT_E_RANGE;
                p->bad = at + bad;
                return;
            }
        } else {
            p->dq(p->src + (at / bs) * bb, buf, n / bs);
            uint8_t *d = p->dst + at * fs;
            if (p->plain_type == QFMT_TYPE_F32) memcpy(d, buf, n * sizeof(float));
            else (p->plain_type == QFMT_TYPE_F16 ? p->fk->f32_to_f16 : p->fk->f32_to_bf16)(buf, d, n);
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
    if (opts && !QFMT__RESERVED_ZERO(opts))
        return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET,
                          "%s: qfmt_quant_opts: reserved fields must be zero (start from QFMT_QUANT_OPTS_INIT)", verb);
    if (!is_float(plain_type))
        return qfmt__fail(err, QFMT_E_UNSUPPORTED, 0, NULL, NULL, QFMT_NO_OFFSET,
                          "%s: type %" PRIu32 " is not f32, f16 or bf16", verb, plain_type);
    uint64_t n, need_dst, need_src;
    if (!qfmt__mul_u64(nrows, row_len, &n))
        return qfmt__fail(err, QFMT_E_RANGE, 0, NULL, NULL, QFMT_NO_OFFSET,
                          "%s: %" PRIu64 " rows of %" PRIu64 " values overflow", verb, nrows, row_len);
    const qfmt_quant_kernels *k = NULL;
    if (is_float(block_type)) { /* plain conversion: need_* are the two float sizes */
        if (!qfmt__mul_u64(n, float_size(dst_type), &need_dst) ||
            !qfmt__mul_u64(n, float_size(src_type), &need_src) || need_src > SIZE_MAX ||
            need_dst > SIZE_MAX)
            return qfmt__fail(err, QFMT_E_RANGE, 0, NULL, NULL, QFMT_NO_OFFSET, "%s: tensor too large", verb);
    } else {
        k = qfmt_quant_kernels_get(block_type);
        if (!k)
            return qfmt__fail(err, QFMT_E_UNSUPPORTED, 0, NULL, NULL, QFMT_NO_OFFSET,
                              "%s: type %" PRIu32 " is not a type this library can convert", verb,
                              block_type);
        if (row_len % k->block_elems != 0)
            return qfmt__fail(err, QFMT_E_RANGE, 0, NULL, NULL, QFMT_NO_OFFSET,
                              "rows of %" PRIu64 " values cannot be split into %s blocks of %u",
                              row_len, qfmt_type_get_traits(block_type)->name, k->block_elems);
        uint64_t blocks_bytes, floats_bytes;
        if (!qfmt__mul_u64(n / k->block_elems, k->block_bytes, &blocks_bytes) ||
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
    const qfmt_kernel level = qfmt__kernel_resolve(kern);
    bool best = quantize && opts && opts->quality == QFMT_QUALITY_BEST;
    const float *importance = quantize && k && opts ? opts->importance : NULL;
    if (importance) {
        if (row_len > SIZE_MAX / sizeof(float))
            return qfmt__fail(err, QFMT_E_RANGE, 0, NULL, NULL, QFMT_NO_OFFSET, "%s: rows too long", verb);
        for (uint64_t c = 0; c < row_len; c++)
            if (!(importance[c] >= 0.0f) || !isfinite(importance[c]))
                return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET,
                                  "%s: importance of column %" PRIu64 " is %g (finite and >= 0 needed)", verb,
                                  c, (double)importance[c]);
    }

    /* The scaled importance, one copy for every row (the caller's is const). The weighted
     * kernels of ggml's types apply the same scaling themselves (so that the kernel table's
     * quantize_weighted gives these bytes on the caller's importance too; on a scaled vector
     * theirs is the identity); q8_z and q4_z search in double and are left as they are. */
    float *scaled = NULL;
    if (importance && block_type != QFMT_TYPE_Q8_Z && block_type != QFMT_TYPE_Q4_Z) {
        const int e = qfmt__imp_exponent(importance, (size_t)row_len);
        if (e != 0) {
            scaled = malloc((size_t)row_len * sizeof *scaled);
            if (!scaled)
                return qfmt__fail(err, QFMT_E_NOMEM, 0, NULL, NULL, QFMT_NO_OFFSET,
                                  "%s: no memory for the importance of %" PRIu64 " columns", verb,
                                  row_len);
            importance = qfmt__imp_scaled(importance, (size_t)row_len, e, scaled);
        }
    }

    part proto;
    memset(&proto, 0, sizeof proto);
    proto.quantize = quantize;
    proto.plain_type = plain_type;
    proto.src = src;
    proto.dst = dst;
    proto.src_type = src_type;
    proto.dst_type = dst_type;
    proto.k = k;
    proto.importance = importance;
    proto.row_len = row_len;
    proto.fk = qfmt__float_kernels_get(level);
    if (k) {
        proto.q = qfmt__quantizer(k, level, best);
        proto.dq = qfmt__dequantizer(k, level);
    }

    /* Float conversions have no blocks; any split on 32 elements serves them too. The unit
     * of work is a block, or with importance a row. */
    const uint64_t unit = importance ? row_len : k ? k->block_elems : QFMT__QK;
    uint64_t nunits = unit ? n / unit : 0, tail = unit ? n % unit : n;
    unsigned threads = opts && opts->threads > 1 ? opts->threads : 1;
    if (threads > 64) threads = 64;
    uint64_t per_chunk = importance ? 1 : CHUNK / unit; /* units worth a thread */
    if ((uint64_t)threads > nunits / per_chunk) threads = (unsigned)(nunits / per_chunk);
    if (threads < 1) threads = 1;
    part parts[64];
    pthread_t tid[64];
    bool started[64] = {false};
    for (unsigned t = 0; t < threads; t++) {
        parts[t] = proto;
        parts[t].begin = nunits * t / threads * unit;
        parts[t].end = nunits * (t + 1) / threads * unit;
    }
    parts[threads - 1].end += tail; /* only float conversions have a tail */
    for (unsigned t = 1; t < threads; t++)
        started[t] = pthread_create(&tid[t], NULL, run_thread, &parts[t]) == 0;
    run_part(&parts[0]);
    for (unsigned t = 1; t < threads; t++) {
        if (started[t]) pthread_join(tid[t], NULL);
        else run_part(&parts[t]); /* no thread to be had: do it here */
    }
    free(scaled);
    for (unsigned t = 0; t < threads; t++) /* the first failure in element order */
        if (parts[t].status != QFMT_OK) {
            const char *tname = qfmt_type_get_traits(block_type)->name;
            uint64_t row = parts[t].bad / row_len, col = parts[t].bad % row_len;
            if (parts[t].status == QFMT_E_NOMEM)
                return qfmt__fail(err, QFMT_E_NOMEM, 0, NULL, NULL, QFMT_NO_OFFSET,
                                  "%s: no memory for a row of %" PRIu64 " values", verb, row_len);
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
