/*
 * fuzz_token_ids.c - libFuzzer target for the token files of qfmt eval --tokens / --mask and
 * qfmt run --input: arbitrary bytes opened as safetensors (qfmt_st_open_memory), then
 * (libqfmt_model/src/token_ids.c) qfmt_token_ids_read of 'tokens' (else the first tensor) and
 * of 'input_ids', and qfmt_position_mask_read of 'mask' (else the first tensor) for the shape
 * the first tensor has, for one row fewer and one column more, and for 1 x (size % 9).
 *
 * Checks besides ASan + UBSan: a read that succeeds gives count = the product of the dims and
 * every id within 0..2^31-1, equal to the stored value; a mask read that succeeds came from a
 * U8/BOOL 2-D tensor of a fitting shape and gives stored != 0 for each of its first rows x
 * cols bytes; a read that fails says why (code and message) and leaves the output empty (ids)
 * or untouched (mask); the status is err.code.
 *
 * As in fuzz_safetensors, each input also runs with the 8-byte header length rewritten to the
 * size of the JSON object after it, so mutations of the JSON reach the data.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt.h"
#include "qfmt_model.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_one(const qfmt_st_file *f, const char *name, bool first)
{
    qfmt_token_ids t;
    qfmt_error e;
    qfmt_status s = qfmt_token_ids_read(f, name, first, &t, &e);
    CHECK(s == e.code);
    if (s != QFMT_OK) {
        CHECK(t.ids == NULL && t.count == 0 && e.message[0] != '\0');
        return;
    }
    uint64_t prod = 1;
    for (uint32_t i = 0; i < t.ndim; i++) prod *= t.dims[i];
    CHECK(prod == t.count);
    uint64_t idx;
    qfmt_st_tensor st;
    if (qfmt_st_find(f, t.name, &idx, NULL) == QFMT_OK && qfmt_st_get(f, idx, &st, NULL) == QFMT_OK) {
        CHECK(st.nelements == t.count);
        size_t es = st.type == QFMT_TYPE_I32 ? 4 : 8;
        for (uint64_t i = 0; i < t.count; i++) {
            int64_t v = 0;
            if (es == 4) {
                int32_t x;
                memcpy(&x, (const char *)st.data + 4 * i, 4);
                v = x;
            } else {
                memcpy(&v, (const char *)st.data + 8 * i, 8);
            }
            CHECK(t.ids[i] >= 0 && (int64_t)t.ids[i] == v);
        }
    }
    qfmt_token_ids_free(&t);
    CHECK(t.ids == NULL);
}

static void read_mask(const qfmt_st_file *f, uint64_t rows, uint64_t cols)
{
    if (cols && rows > (1u << 22) / cols) return; /* the caller's buffer: keep it small */
    size_t n = (size_t)(rows * cols);
    uint8_t *out = malloc(n + 1);
    CHECK(out != NULL);
    memset(out, 0xA5, n + 1);
    qfmt_error e;
    qfmt_status s = qfmt_position_mask_read(f, "mask", true, rows, cols, out, &e);
    CHECK(s == e.code);
    if (s != QFMT_OK) {
        CHECK(e.message[0] != '\0');
        for (size_t i = 0; i <= n; i++) CHECK(out[i] == 0xA5);
    } else {
        uint64_t idx = 0;
        qfmt_st_tensor st;
        if (qfmt_st_find(f, "mask", &idx, NULL) != QFMT_OK) idx = 0;
        CHECK(qfmt_st_get(f, idx, &st, NULL) == QFMT_OK);
        CHECK((st.type == QFMT_TYPE_U8 || st.type == QFMT_TYPE_BOOL) && st.ndim == 2);
        CHECK(st.dims[1] == cols && st.dims[0] >= rows);
        for (size_t i = 0; i < n; i++) CHECK(out[i] == (((const uint8_t *)st.data)[i] != 0));
        CHECK(out[n] == 0xA5);
    }
    free(out);
}

static void run(const uint8_t *data, size_t size)
{
    qfmt_st_file *f = NULL;
    if (qfmt_st_open_memory(&f, data, size, NULL, NULL) != QFMT_OK) return;
    read_one(f, "tokens", true);
    read_one(f, "input_ids", false);
    qfmt_st_tensor t;
    if (qfmt_st_count(f) && qfmt_st_get(f, 0, &t, NULL) == QFMT_OK && t.ndim == 2) {
        read_mask(f, t.dims[0], t.dims[1]);
        if (t.dims[0]) read_mask(f, t.dims[0] - 1, t.dims[1]);
        read_mask(f, t.dims[0], t.dims[1] + 1);
    }
    read_mask(f, 1, size % 9);
    qfmt_st_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    /* the header length rewritten to the JSON object's size (depth count, strings skipped) */
    if (size > 9 && data[8] == '{') {
        size_t i = 8, depth = 0;
        bool str = false, esc = false;
        for (; i < size; i++) {
            unsigned char c = data[i];
            if (str) {
                if (esc) esc = false;
                else if (c == '\\') esc = true;
                else if (c == '"') str = false;
            } else if (c == '"') {
                str = true;
            } else if (c == '{') {
                depth++;
            } else if (c == '}' && --depth == 0) {
                break;
            }
        }
        if (i < size) {
            uint8_t *copy = malloc(size);
            if (!copy) return 0;
            memcpy(copy, data, size);
            uint64_t len = i + 1 - 8;
            for (int k = 0; k < 8; k++) copy[k] = (uint8_t)(len >> (8 * k));
            run(copy, size);
            free(copy);
        }
    }
    return 0;
}
