/*
 * dequantize.c - a qfmt file back to a standard safetensors file (qfmt dequantize): the inverse
 * of convert. Every tensor keeps its name; those listed in convert.transposed are transposed
 * back to the source's layout. Float tensors keep their type unless opts->dtype asks otherwise
 * (so a conversion to the source dtype comes back bit for bit); block-quantized ones are
 * decoded to opts->dtype (F32 by default); integer and bool tensors are copied.
 *
 * Memory: two buffers of the largest tensor (raw or decoded, whichever is larger), plus one
 * plan entry per tensor; the count is bounded by the file's index, which the reader checked.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dequantize.h"
#include "model_internal.h"

static bool is_plain_float(uint32_t t)
{
    return t == QFMT_TYPE_F32 || t == QFMT_TYPE_F16 || t == QFMT_TYPE_BF16;
}

typedef struct {
    uint32_t out_type;
    bool transposed;
    uint64_t size; /* of the output tensor */
} plan;

/* Makes *buf hold at least `need` bytes (need 0 included: a valid, empty tensor). */
static bool reserve(void **buf, size_t *cap, uint64_t need)
{
    if (*buf && need <= *cap) return true;
    if (need > SIZE_MAX) return false;
    size_t n = need ? (size_t)need : 1;
    void *p = realloc(*buf, n);
    if (!p) return false;
    *buf = p;
    *cap = n;
    return true;
}

static qfmt_status from_reader(qfmt_error *err, const qfmt_reader *r, const qfmt_error *e)
{
    if (err) {
        *err = *e;
        if (!err->path[0]) snprintf(err->path, sizeof err->path, "%s", qfmt_reader_path(r));
    }
    return e->code ? e->code : QFMT_E_CORRUPT;
}

static void type_name(uint32_t type, char *buf, size_t cap)
{
    const qfmt_type_traits *t = qfmt_type_get_traits(type);
    if (t) snprintf(buf, cap, "%s", t->name);
    else snprintf(buf, cap, "unknown(%" PRIu32 ")", type);
}

/* Plans every tensor: its output type, layout and size; fills the writer's descriptors. */
static qfmt_status make_plan(const qfmt_reader *r, const qfmt_dequantize_opts *o, const qfmt__transposed *tr,
                             plan *p, qfmt_st_tensor_desc *outs, uint64_t n, uint64_t *total, qfmt_error *err)
{
    const char *path = qfmt_reader_path(r);
    bool recast = o->dtype != QFMT_DEQUANTIZE_KEEP;
    *total = 0;
    for (uint64_t i = 0; i < n; i++) {
        qfmt_tensor_info ti;
        qfmt_error e;
        if (qfmt_tensor_get_info(r, i, &ti, &e) != QFMT_OK) return from_reader(err, r, &e);
        const qfmt_type_traits *tt = qfmt_type_get_traits(ti.type);
        plan *pl = &p[i];
        pl->out_type = ti.type;
        if (tt && (tt->block_elems > 1 || (recast && is_plain_float(ti.type))))
            pl->out_type = recast ? o->dtype : QFMT_TYPE_F32;
        if (!tt || !qfmt_st_dtype_name(pl->out_type) || qfmt_type_size(pl->out_type, ti.nelements, &pl->size) != QFMT_OK) {
            char tn[24];
            type_name(ti.type, tn, sizeof tn);
            qfmt__merr(err, QFMT_E_UNSUPPORTED, path, ti.name, "type %s cannot be written to safetensors", tn);
            if (err) err->offset = ti.offset;
            return QFMT_E_UNSUPPORTED;
        }
        pl->transposed = ti.ndim == 2 && qfmt__transposed_has(tr, ti.name);
        outs[i] = (qfmt_st_tensor_desc){.name = ti.name, .type = pl->out_type, .ndim = ti.ndim};
        memcpy(outs[i].dims, ti.dims, sizeof outs[i].dims);
        if (pl->transposed) {
            outs[i].dims[0] = ti.dims[1];
            outs[i].dims[1] = ti.dims[0];
        }
        *total += pl->size; /* each size <= 2^53 (the reader's bound), n <= the index's count */
    }
    return QFMT_OK;
}

qfmt_status qfmt__dequantize_file_io(const qfmt_reader *r, const char *out, const qfmt_dequantize_opts *opts,
                                     const qfmt_io *io, qfmt_dequantize_result *res, qfmt_error *err)
{
    if (res) memset(res, 0, sizeof *res);
    if (!r || !out) return QFMT__FAIL(err, QFMT_E_ARG, NULL, NULL, "qfmt_dequantize_file: NULL argument");
    qfmt_dequantize_opts o = QFMT_DEQUANTIZE_OPTS_INIT;
    if (opts) o = *opts;
    for (size_t i = 0; i < sizeof o.reserved / sizeof o.reserved[0]; i++)
        if (o.reserved[i]) return QFMT__FAIL(err, QFMT_E_ARG, NULL, NULL, "qfmt_dequantize_opts: reserved[%zu] is not zero", i);
    if (o.dtype != QFMT_DEQUANTIZE_KEEP && !is_plain_float(o.dtype))
        return QFMT__FAIL(err, QFMT_E_ARG, NULL, NULL, "qfmt_dequantize_opts: dtype %" PRIu32 " is not F32, F16 or BF16", o.dtype);
    const char *path = qfmt_reader_path(r);
    uint64_t n = qfmt_tensor_count(r), total = 0;
    qfmt__transposed tr;
    if (qfmt__transposed_load(r, &tr, err) != 0) return err && err->code ? err->code : QFMT_E_CORRUPT;
    qfmt_status s = QFMT_OK;
    plan *p = NULL;
    qfmt_st_tensor_desc *outs = NULL;
    qfmt_st_writer *w = NULL;
    void *buf = NULL, *tbuf = NULL;
    size_t cap = 0, tcap = 0;
    if (n > SIZE_MAX / sizeof *outs || !(p = calloc(n ? (size_t)n : 1, sizeof *p)) ||
        !(outs = calloc(n ? (size_t)n : 1, sizeof *outs))) {
        s = QFMT__FAIL(err, QFMT_E_NOMEM, path, NULL, "out of memory for the plan of %" PRIu64 " tensors", n);
        goto done;
    }
    if ((s = make_plan(r, &o, &tr, p, outs, n, &total, err)) != QFMT_OK) goto done;
    if ((s = qfmt_st_writer_begin_io(&w, out, outs, (size_t)n, NULL, io, err)) != QFMT_OK) goto done;
    if (o.temp_file) o.temp_file(o.ctx, qfmt_st_writer_temp_path(w));
    qfmt_quant_opts qo = {.threads = o.threads ? o.threads : 1, .quality = QFMT_QUALITY_REFERENCE,
                          .kernel = QFMT_KERNEL_AUTO};
    uint64_t done_bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        qfmt_tensor_info ti;
        qfmt_error e;
        if (qfmt_tensor_get_info(r, i, &ti, &e) != QFMT_OK) {
            s = from_reader(err, r, &e);
            goto done;
        }
        uint64_t need = ti.raw_size > p[i].size ? ti.raw_size : p[i].size;
        if (!reserve(&buf, &cap, need) || !reserve(&tbuf, &tcap, need)) {
            s = QFMT__FAIL(err, QFMT_E_NOMEM, path, ti.name, "out of memory (%" PRIu64 " bytes to decode it)", need);
            goto done;
        }
        if (qfmt_tensor_read(r, i, buf, ti.raw_size, true, &e) != QFMT_OK) {
            s = from_reader(err, r, &e);
            goto done;
        }
        const void *src = buf;
        if (p[i].out_type != ti.type && ti.nelements > 0) {
            uint64_t row = ti.ndim ? ti.dims[ti.ndim - 1] : 1, rows = row ? ti.nelements / row : 0;
            if (qfmt_dequantize(p[i].out_type, tbuf, p[i].size, ti.type, buf, rows, row, &qo, &e) != QFMT_OK) {
                s = QFMT__FAIL(err, e.code ? e.code : QFMT_E_CORRUPT, path, ti.name, "%s", e.message);
                if (err) err->offset = ti.offset;
                goto done;
            }
            void *t = buf; /* the decoded values become the source */
            size_t tc = cap;
            buf = tbuf, cap = tcap;
            tbuf = t, tcap = tc;
            src = buf;
        }
        if (p[i].transposed && ti.nelements > 0) { /* back to the source's [in, out]; an empty
                                                     * tensor, [2^56, 0] say, has nothing to move */
            size_t es = qfmt_type_get_traits(p[i].out_type)->block_bytes;
            const uint8_t *s8 = src;
            uint8_t *d8 = tbuf;
            uint64_t rows = ti.dims[0], cols = ti.dims[1];
            for (uint64_t a = 0; a < rows; a++)
                for (uint64_t b = 0; b < cols; b++) memcpy(d8 + (b * rows + a) * es, s8 + (a * cols + b) * es, es);
            src = tbuf;
        }
        if ((s = qfmt_st_writer_write(w, src, (size_t)p[i].size, err)) != QFMT_OK) goto done;
        done_bytes += p[i].size;
        if (res) res->tensors = i + 1, res->bytes = done_bytes;
        if (o.progress) o.progress(o.ctx, i + 1, n, done_bytes, total);
    }
    s = qfmt_st_writer_commit(w, err);
done:
    if (w && o.temp_file) o.temp_file(o.ctx, NULL);
    qfmt_st_writer_free(w); /* removes the temporary file unless committed */
    free(buf);
    free(tbuf);
    free(p);
    free(outs);
    qfmt__transposed_free(&tr);
    if (s == QFMT_OK && err) {
        memset(err, 0, sizeof *err);
        err->offset = QFMT_NO_OFFSET;
    }
    return s;
}

qfmt_status qfmt_dequantize_file(const qfmt_reader *r, const char *out, const qfmt_dequantize_opts *opts,
                                 qfmt_dequantize_result *res, qfmt_error *err)
{
    return qfmt__dequantize_file_io(r, out, opts, NULL, res, err);
}
