/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors import: qfmt_st_open_memory on
 * arbitrary bytes, then every accessor on whatever opens, and every float tensor converted to
 * f32 (and quantized to q8_0 when its rows hold whole blocks), as `qfmt convert` does.
 *
 * The importer promises to check every number of the JSON header before use; the data views
 * it hands out must lie inside the input. libFuzzer (and the regression driver) pass an
 * exactly-sized heap copy, so ASan catches any read past its end; every view is read in full.
 * The checks below abort() when the API contradicts itself (a tensor whose size is not
 * dtype x shape, a view outside the data, a find that returns another index, tensors out of
 * offset order or overlapping, a status that differs from err.code).
 *
 * The 8-byte header length in front of the JSON would stop most mutations of the JSON at
 * open, so each input runs twice: as given, and (when the bytes after the length start with
 * a JSON object) with the length rewritten to that object's size, so that whatever follows it
 * is the data section.
 *
 * Build: with clang and -DQFMT_FUZZ=ON (libFuzzer), or with any compiler linked with
 * regression_driver.c to replay a corpus. See fuzz/README.md.
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt.h"
#include "fuzz_check.h"

enum {
    MAX_CONVERT_ELEMS = 1 << 20, /* convert tensors up to this many elements */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* As qfmt convert does: floats to f32, and to q8_0 when the rows hold whole blocks. Non-finite
 * values must be refused by the quantizer (QFMT_E_RANGE), never crash it. */
static void convert(const qfmt_st_tensor *t)
{
    if (t->nelements == 0 || t->nelements > MAX_CONVERT_ELEMS)
        return;
    if (t->type != QFMT_TYPE_F32 && t->type != QFMT_TYPE_F16 && t->type != QFMT_TYPE_BF16)
        return;
    size_t n = (size_t)t->nelements;
    float *f = malloc(n * sizeof *f);
    if (f == NULL)
        return;
    CHECK(qfmt_convert_floats(t->type, t->data, QFMT_TYPE_F32, f, n) == QFMT_OK);
    touch(f, n * sizeof *f);
    uint64_t row_len = t->ndim > 0 ? t->dims[t->ndim - 1] : 1;
    if (row_len > 0 && row_len % QFMT_BLOCK_ELEMS == 0) {
        uint64_t qsize;
        CHECK(qfmt_type_size(QFMT_TYPE_Q8_0, t->nelements, &qsize) == QFMT_OK);
        void *q = malloc((size_t)qsize);
        if (q != NULL) {
            qfmt_error e;
            qfmt_status s = qfmt_quantize(QFMT_TYPE_Q8_0, q, qsize, t->type, t->data,
                                          t->nelements / row_len, row_len, NULL, &e);
            if (s == QFMT_OK) {
                touch(q, qsize);
                s = qfmt_dequantize(QFMT_TYPE_F32, f, n * sizeof *f, QFMT_TYPE_Q8_0, q,
                                    t->nelements / row_len, row_len, NULL, &e);
                CHECK(s == QFMT_OK);
            } else {
                CHECK(s == QFMT_E_RANGE);
                check_error(s, &e);
            }
            free(q);
        }
    }
    free(f);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    static char not_null;
    qfmt_st_file *f = (qfmt_st_file *)(void *)&not_null; /* open must set NULL on failure */
    qfmt_error e;
    qfmt_status s = qfmt_st_open_memory(&f, data, size, NULL, &e);
    if (s != QFMT_OK) {
        CHECK(f == NULL);
        check_error(s, &e);
        return;
    }
    CHECK(f != NULL);
    CHECK(qfmt_st_file_size(f) == size);
    CHECK(size >= 8);
    uint64_t header_len = 0;
    for (int k = 7; k >= 0; k--)
        header_len = (header_len << 8) | data[k];
    CHECK(header_len <= size - 8);
    /* what opens passed the one JSON policy */
    CHECK(qfmt_json_check((const char *)data + 8, (size_t)header_len, 8, "", NULL) == QFMT_OK);
    uint64_t data_start = 8 + header_len;

    uint64_t n = qfmt_st_count(f), at = data_start;
    for (uint64_t i = 0; i < n; i++) {
        qfmt_st_tensor t;
        CHECK(qfmt_st_get(f, i, &t, &e) == QFMT_OK);
        size_t nl = strlen(t.name);
        CHECK(nl >= 1 && nl <= QFMT_MAX_NAME_LEN);
        CHECK(t.dtype != NULL && t.ndim <= QFMT_MAX_DIMS);
        uint64_t prod = 1;
        for (uint32_t d = 0; d < t.ndim; d++)
            prod *= t.dims[d];
        CHECK(prod == t.nelements);
        uint64_t bytes;
        CHECK(qfmt_type_size(t.type, t.nelements, &bytes) == QFMT_OK && bytes == t.size);
        /* in offset order, tiling the data exactly */
        CHECK(t.offset == at);
        CHECK(t.offset <= size && t.size <= size - t.offset);
        CHECK((const uint8_t *)t.data == data + t.offset);
        at += t.size;
        touch(t.data, t.size);
        uint64_t found;
        CHECK(qfmt_st_find(f, t.name, &found, &e) == QFMT_OK && found == i);
        convert(&t);
        qfmt_st_release(f, i); /* no-op in memory, must not fault */
    }
    CHECK(at == size);
    qfmt_st_tensor t;
    s = qfmt_st_get(f, n, &t, &e);
    CHECK(s == QFMT_E_RANGE);
    check_error(s, &e);
    uint64_t idx;
    s = qfmt_st_find(f, "no such tensor \x01", &idx, &e);
    if (s == QFMT_OK) { /* a fuzzed file may hold it */
        CHECK(idx < n && qfmt_st_get(f, idx, &t, NULL) == QFMT_OK);
        CHECK(strcmp(t.name, "no such tensor \x01") == 0);
    } else {
        CHECK(s == QFMT_E_NOT_FOUND);
        check_error(s, &e);
    }
    static const char *const keys[] = {"format", "pt", "", "__metadata__", "a"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *v = qfmt_st_metadata(f, keys[k]);
        if (v != NULL)
            touch(v, strlen(v) + 1);
    }
    qfmt_st_close(f);
}

/* Rewrites the 8-byte header length to the size of the JSON object that follows it. Returns
 * false when there is none or the length is already that. */
static bool fix_header_len(uint8_t *d, size_t n)
{
    if (n < 10 || d[8] != '{')
        return false;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)d + 8, n - 8, &end, 0);
    cJSON_Delete(root);
    if (root == NULL || end == NULL)
        return false;
    uint64_t len = (uint64_t)(end - (const char *)(d + 8)), old = 0;
    for (int k = 7; k >= 0; k--)
        old = (old << 8) | d[k];
    if (len == old)
        return false;
    for (int k = 0; k < 8; k++)
        d[k] = (uint8_t)(len >> (8 * k));
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = calloc(size ? size : 1, 1); /* exactly sized: ASan sees any overread */
    if (copy == NULL)
        return 0;
    if (size > 0)
        memcpy(copy, data, size);
    fuzz_one(copy, size);
    if (fix_header_len(copy, size))
        fuzz_one(copy, size);
    free(copy);
    return 0;
}
