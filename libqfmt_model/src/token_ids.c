/* Token inputs stored as safetensors tensors: ids (qfmt eval --tokens, qfmt run --input), an
 * I32 or I64 tensor, every id checked to lie in 0..2^31-1 before it is used; and position
 * masks (qfmt eval --mask), a U8 or BOOL [rows, cols] tensor. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* The tensor `name`, or the first when absent and first_if_absent. */
static qfmt_status find_tensor(const qfmt_st_file *f, const char *name, bool first_if_absent, const char *what,
                               qfmt_st_tensor *t, qfmt_error *err)
{
    uint64_t idx = 0;
    if (qfmt_st_find(f, name, &idx, NULL) != QFMT_OK) {
        if (!first_if_absent || qfmt_st_count(f) == 0)
            return QFMT__FAIL(err, QFMT_E_NOT_FOUND, NULL, name, "no such tensor (%s)", what);
        idx = 0;
    }
    return qfmt_st_get(f, idx, t, err);
}

static void clear_error(qfmt_error *err)
{
    if (err) {
        memset(err, 0, sizeof *err);
        err->offset = QFMT_NO_OFFSET;
    }
}

qfmt_status qfmt_token_ids_read(const qfmt_st_file *f, const char *name, bool first_if_absent,
                                qfmt_token_ids *out, qfmt_error *err)
{
    if (!out) return QFMT__FAIL(err, QFMT_E_ARG, NULL, NULL, "qfmt_token_ids_read: NULL output");
    memset(out, 0, sizeof *out);
    if (!f || !name) return QFMT__FAIL(err, QFMT_E_ARG, NULL, NULL, "qfmt_token_ids_read: NULL argument");
    qfmt_st_tensor t;
    qfmt_status s = find_tensor(f, name, first_if_absent, "token ids, I32 or I64", &t, err);
    if (s != QFMT_OK) return s;
    if (t.type != QFMT_TYPE_I32 && t.type != QFMT_TYPE_I64)
        return QFMT__FAIL(err, QFMT_E_TYPE, NULL, t.name, "is %s, not I32 or I64 token ids", t.dtype);
    size_t es = t.type == QFMT_TYPE_I32 ? 4 : 8;
    /* the importer has checked that the bytes are there: nelements x es == size */
    if (t.nelements > SIZE_MAX / sizeof(int32_t) - 1 || t.size / es != t.nelements)
        return QFMT__FAIL(err, QFMT_E_RANGE, NULL, t.name, "%" PRIu64 " ids do not fit in memory", t.nelements);
    int32_t *ids = malloc((size_t)t.nelements * sizeof *ids + 1);
    if (!ids) return QFMT__FAIL(err, QFMT_E_NOMEM, NULL, t.name, "out of memory for %" PRIu64 " token ids", t.nelements);
    const unsigned char *p = t.data;
    for (uint64_t i = 0; i < t.nelements; i++) {
        int64_t v;
        if (es == 4) {
            int32_t x;
            memcpy(&x, p + 4 * i, 4);
            v = x;
        } else {
            memcpy(&v, p + 8 * i, 8);
        }
        if (v < 0 || v > INT32_MAX) {
            free(ids);
            return QFMT__FAIL(err, QFMT_E_RANGE, NULL, t.name, "token %" PRIu64 " has id %" PRId64 ", not a valid token id", i, v);
        }
        ids[i] = (int32_t)v;
    }
    out->ids = ids;
    out->count = t.nelements;
    out->ndim = t.ndim;
    memcpy(out->dims, t.dims, sizeof out->dims);
    snprintf(out->name, sizeof out->name, "%s", t.name);
    clear_error(err);
    return QFMT_OK;
}

qfmt_status qfmt_position_mask_read(const qfmt_st_file *f, const char *name, bool first_if_absent, uint64_t rows,
                                    uint64_t cols, uint8_t *out, qfmt_error *err)
{
    if (!f || !name || !out) return QFMT__FAIL(err, QFMT_E_ARG, NULL, NULL, "qfmt_position_mask_read: NULL argument");
    if (cols && rows > SIZE_MAX / cols)
        return QFMT__FAIL(err, QFMT_E_ARG, NULL, NULL, "a mask of %" PRIu64 " x %" PRIu64 " does not fit in memory", rows, cols);
    qfmt_st_tensor t;
    qfmt_status s = find_tensor(f, name, first_if_absent, "mask, U8 or BOOL", &t, err);
    if (s != QFMT_OK) return s;
    if (t.type != QFMT_TYPE_U8 && t.type != QFMT_TYPE_BOOL)
        return QFMT__FAIL(err, QFMT_E_TYPE, NULL, t.name, "is %s, not a U8 or BOOL mask", t.dtype);
    if (t.ndim != 2 || t.dims[1] != cols || t.dims[0] < rows) {
        char shape[160] = "[";
        for (uint32_t d = 0; d < t.ndim; d++) {
            size_t l = strlen(shape);
            snprintf(shape + l, sizeof shape - l, "%s%" PRIu64, d ? ", " : "", t.dims[d]);
        }
        size_t l = strlen(shape);
        snprintf(shape + l, sizeof shape - l, "]");
        return QFMT__FAIL(err, QFMT_E_RANGE, NULL, t.name, "is %s; the mask needs [>= %" PRIu64 ", %" PRIu64 "]", shape,
                          rows, cols);
    }
    /* the importer checked nelements x 1 == size, so rows x cols <= size */
    const uint8_t *p = t.data;
    for (size_t i = 0; i < (size_t)(rows * cols); i++) out[i] = p[i] != 0;
    clear_error(err);
    return QFMT_OK;
}

void qfmt_token_ids_free(qfmt_token_ids *t)
{
    if (!t) return;
    free(t->ids);
    memset(t, 0, sizeof *t);
}
