/*
 * values.c - decodes a tensor's elements to numbers for display (`qfmt dump --values`).
 *
 * Floats and block-quantized types go through the library's converters (qfmt_convert_floats,
 * qfmt_dequantize) a chunk at a time, so memory stays bounded for an uncompressed tensor of any
 * size (it is read through a zero-copy view); a compressed tensor is decoded whole first.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

enum { CHUNK = 4096 }; /* elements decoded per step: a multiple of every block size */

static qfmt_status fail(const qfmt_reader *r, const qfmt_tensor_info *ti, qfmt_status code,
                        const char *message, qfmt_error *err)
{
    if (err != NULL) {
        memset(err, 0, sizeof *err);
        err->code = code;
        err->offset = ti->offset;
        snprintf(err->path, sizeof err->path, "%s", qfmt_reader_path(r));
        snprintf(err->tensor, sizeof err->tensor, "%s", ti->name);
        snprintf(err->message, sizeof err->message, "%s", message);
    }
    return code;
}

static uint64_t read_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned k = n; k-- > 0;)
        v = (v << 8) | p[k];
    return v;
}

/* The `bytes`-byte two's complement value in the low bytes of v, without an
 * implementation-defined conversion of an out-of-range unsigned value. */
static int64_t sign_extend(uint64_t v, unsigned bytes)
{
    uint64_t mask = bytes >= 8 ? UINT64_MAX : (UINT64_C(1) << (8 * bytes)) - 1;
    uint64_t sign = UINT64_C(1) << (8 * bytes - 1);
    v &= mask;
    if (v & sign)
        return -(int64_t)(mask - v) - 1; /* mask - v < sign: fits */
    return (int64_t)v;
}

/* Values of a plain (non-float) type, one at a time. */
static bool emit_plain(uint32_t type, const uint8_t *p, size_t k, cli_value_fn fn, void *ctx)
{
    for (size_t j = 0; j < k; j++) {
        cli_value v;
        memset(&v, 0, sizeof v);
        switch (type) {
        case QFMT_TYPE_I8: v.kind = CLI_VALUE_INT, v.i = sign_extend(p[j], 1); break;
        case QFMT_TYPE_I16: v.kind = CLI_VALUE_INT, v.i = sign_extend(read_le(p + 2 * j, 2), 2); break;
        case QFMT_TYPE_I32: v.kind = CLI_VALUE_INT, v.i = sign_extend(read_le(p + 4 * j, 4), 4); break;
        case QFMT_TYPE_I64: v.kind = CLI_VALUE_INT, v.i = sign_extend(read_le(p + 8 * j, 8), 8); break;
        case QFMT_TYPE_F64: {
            uint64_t bits = read_le(p + 8 * j, 8);
            double d;
            memcpy(&d, &bits, sizeof d);
            v.kind = CLI_VALUE_F64, v.f = d;
            break;
        }
        case QFMT_TYPE_BOOL:
            v.kind = p[j] <= 1 ? CLI_VALUE_BOOL : CLI_VALUE_UINT, v.u = p[j];
            break;
        default: v.kind = CLI_VALUE_UINT, v.u = p[j]; break; /* U8 */
        }
        if (!fn(ctx, &v))
            return false;
    }
    return true;
}

static bool emit_f32(const float *f, size_t k, cli_value_fn fn, void *ctx)
{
    for (size_t j = 0; j < k; j++) {
        cli_value v;
        memset(&v, 0, sizeof v);
        v.kind = CLI_VALUE_F32;
        v.f = (double)f[j];
        if (!fn(ctx, &v))
            return false;
    }
    return true;
}

qfmt_status cli_tensor_values(const qfmt_reader *r, uint64_t index, uint64_t max, cli_value_fn fn,
                              void *ctx, qfmt_error *err)
{
    qfmt_tensor_info ti;
    qfmt_status s = qfmt_tensor_get_info(r, index, &ti, err);
    if (s != QFMT_OK)
        return s;
    const qfmt_type_traits *tt = qfmt_type_get_traits(ti.type);
    if (tt == NULL)
        return fail(r, &ti, QFMT_E_UNSUPPORTED, "unknown tensor type", err);
    bool float_type = ti.type == QFMT_TYPE_F32 || ti.type == QFMT_TYPE_F16 ||
                      ti.type == QFMT_TYPE_BF16;
    bool block_type = tt->block_elems > 1;
    if (block_type && CHUNK % tt->block_elems != 0)
        return fail(r, &ti, QFMT_E_UNSUPPORTED, "block size not supported for display", err);
    uint64_t n = max < ti.nelements ? max : ti.nelements;
    if (n == 0)
        return QFMT_OK;

    s = qfmt_tensor_verify(r, index, err); /* show only values that are known good */
    if (s != QFMT_OK)
        return s;
    const void *view = NULL;
    uint64_t size = 0;
    void *buf = NULL;
    s = qfmt_tensor_view(r, index, &view, &size, err);
    if (s == QFMT_E_UNSUPPORTED) { /* compressed (or an unknown codec: read says so) */
        if (ti.raw_size > SIZE_MAX)
            return fail(r, &ti, QFMT_E_NOMEM, "tensor too large to decode here", err);
        buf = malloc(ti.raw_size ? (size_t)ti.raw_size : 1);
        if (buf == NULL)
            return fail(r, &ti, QFMT_E_NOMEM, "out of memory decoding the tensor", err);
        s = qfmt_tensor_read(r, index, buf, ti.raw_size, false, err);
        view = buf;
    }
    if (s != QFMT_OK) {
        free(buf);
        return s;
    }

    const uint8_t *data = view;
    float f32[CHUNK];
    bool more = true;
    for (uint64_t start = 0; start < n && more && s == QFMT_OK; start += CHUNK) {
        size_t k = n - start < CHUNK ? (size_t)(n - start) : CHUNK;
        if (block_type) {
            /* whole blocks covering [start, start + k); rows are whole blocks, so they exist */
            uint64_t m = (k + tt->block_elems - 1) / tt->block_elems * tt->block_elems;
            const uint8_t *src = data + start / tt->block_elems * tt->block_bytes;
            s = qfmt_dequantize(QFMT_TYPE_F32, f32, m * sizeof(float), ti.type, src, 1, m, NULL, err);
            more = s == QFMT_OK && emit_f32(f32, k, fn, ctx);
        } else if (float_type) {
            s = qfmt_convert_floats(ti.type, data + start * tt->block_bytes, QFMT_TYPE_F32, f32, k);
            if (s != QFMT_OK)
                fail(r, &ti, s, "cannot convert the values to f32", err);
            more = s == QFMT_OK && emit_f32(f32, k, fn, ctx);
        } else {
            more = emit_plain(ti.type, data + start * tt->block_bytes, k, fn, ctx);
        }
    }
    free(buf);
    if (s == QFMT_OK && !more)
        return fail(r, &ti, QFMT_E_NOMEM, "out of memory", err);
    return s;
}
