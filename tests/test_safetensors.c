/*
 * test_safetensors.c - the hardened safetensors reader (qfmt_st_*): valid files of every dtype,
 * metadata, lookups and zero-copy data pointers; every malformed header, shape and offset
 * rejected with the right code, tensor name and byte offset (issue 5); the reference fixtures
 * opened from disk; allocation failures.
 *
 * Files are built in memory: 8-byte little-endian header length, the JSON header, the data,
 * in an exact-size heap block so that ASan sees any read past the end.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt.h"

/* ---- Building files ------------------------------------------------------------------------- */
static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    return p;
}

static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* header_len bytes of header (may contain NULs), then data_len bytes of data (a pattern when
 * data is NULL). */
static uint8_t *st_make_n(const char *header, size_t header_len, const void *data, size_t data_len,
                          size_t *size) {
    *size = 8 + header_len + data_len;
    uint8_t *b = xmalloc(*size);
    put64(b, header_len);
    memcpy(b + 8, header, header_len);
    for (size_t i = 0; i < data_len; i++)
        b[8 + header_len + i] = data ? ((const uint8_t *)data)[i] : (uint8_t)(i * 7 + 1);
    return b;
}

static uint8_t *st_make(const char *header, const void *data, size_t data_len, size_t *size) {
    return st_make_n(header, strlen(header), data, data_len, size);
}

/* Opens a copy of buf (exact size) and expects `want`; on failure checks that *out is NULL
 * and err is filled. Returns the status; *e keeps the error. */
static qfmt_status st_expect(const uint8_t *buf, size_t size, qfmt_status want, qfmt_error *e,
                             const char *what) {
    uint8_t *copy = xmalloc(size);
    if (size) memcpy(copy, buf, size);
    qfmt_st_file *f = (qfmt_st_file *)(uintptr_t)1;
    memset(e, 0, sizeof *e);
    qfmt_status s = qfmt_st_open_memory(&f, copy, size, NULL, e);
    if (s == QFMT_OK) {
        cr_expect_not_null(f, "%s", what);
        qfmt_st_close(f);
    } else {
        cr_expect_null(f, "%s: *out must be NULL on failure", what);
        cr_expect_eq(e->code, s, "%s: err.code %d != returned %d", what, (int)e->code, (int)s);
        cr_expect_neq(e->message[0], 0, "%s: empty message", what);
        cr_expect_str_eq(e->path, "", "%s: path of a memory file", what);
    }
    free(copy);
    cr_expect_eq(s, want, "%s: got %d (%s), want %d (%s): %s", what, (int)s, qfmt_strerror(s),
                 (int)want, qfmt_strerror(want), e->message);
    return s;
}

static qfmt_st_file *st_open_ok(const uint8_t *buf, size_t size) {
    qfmt_st_file *f = NULL;
    qfmt_error e;
    qfmt_status s = qfmt_st_open_memory(&f, buf, size, NULL, &e);
    cr_assert_eq(s, QFMT_OK, "open: %d %s", (int)s, e.message);
    cr_assert_not_null(f);
    return f;
}

/* ---- Valid files ---------------------------------------------------------------------------- */
typedef struct {
    const char *name, *dtype;
    uint32_t type, ndim;
    uint64_t dims[9];
    uint64_t begin, end, nelements;
} st_want;

/* In data order; names deliberately not in that order, and written to the JSON in another. */
static const st_want ALL[] = {
    {"w.f32", "F32", QFMT_TYPE_F32, 2, {2, 3}, 0, 24, 6},
    {"a.f16", "F16", QFMT_TYPE_F16, 1, {4}, 24, 32, 4},
    {"m.bf16", "BF16", QFMT_TYPE_BF16, 2, {2, 2}, 32, 40, 4},
    {"b.i32", "I32", QFMT_TYPE_I32, 1, {3}, 40, 52, 3},
    {"z.i64", "I64", QFMT_TYPE_I64, 1, {2}, 52, 68, 2},
    {"c.u8", "U8", QFMT_TYPE_U8, 1, {5}, 68, 73, 5},
    {"y.bool", "BOOL", QFMT_TYPE_BOOL, 1, {3}, 73, 76, 3},
    {"d.f64", "F64", QFMT_TYPE_F64, 1, {1}, 76, 84, 1},
    {"x.i8", "I8", QFMT_TYPE_I8, 1, {2}, 84, 86, 2},
    {"e.i16", "I16", QFMT_TYPE_I16, 3, {1, 3, 1}, 86, 92, 3},
    {"scalar", "F32", QFMT_TYPE_F32, 0, {0}, 92, 96, 1},
    {"empty", "F32", QFMT_TYPE_F32, 2, {0, 3}, 96, 96, 0},
};
#define NALL (sizeof ALL / sizeof ALL[0])

static char *header_of(const st_want *w, size_t n, const char *meta_json) {
    cJSON *root = cJSON_CreateObject();
    cr_assert_not_null(root);
    if (meta_json) {
        cJSON *m = cJSON_Parse(meta_json);
        cr_assert_not_null(m);
        cJSON_AddItemToObject(root, "__metadata__", m);
    }
    /* Odd indices first, then even ones: the JSON order is neither data nor name order. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = (size_t)(1 - pass); i < n; i += 2) {
            cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(),
                  *offs = cJSON_CreateArray();
            cJSON_AddStringToObject(e, "dtype", w[i].dtype);
            for (uint32_t d = 0; d < w[i].ndim; d++)
                cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)w[i].dims[d]));
            cJSON_AddItemToObject(e, "shape", shape);
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)w[i].begin));
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)w[i].end));
            cJSON_AddItemToObject(e, "data_offsets", offs);
            cJSON_AddItemToObject(root, w[i].name, e);
        }
    char *s = cJSON_PrintUnformatted(root);
    cr_assert_not_null(s);
    cJSON_Delete(root);
    return s;
}

Test(safetensors, valid_file_every_dtype_scalar_and_empty) {
    char *h = header_of(ALL, NALL, "{\"format\":\"pt\",\"note\":\"h\\u00e9llo\",\"empty\":\"\"}");
    size_t size, hlen = strlen(h);
    uint8_t *b = st_make(h, NULL, 96, &size);
    qfmt_st_file *f = st_open_ok(b, size);
    cr_assert_eq(qfmt_st_count(f), NALL);
    cr_assert_eq(qfmt_st_file_size(f), size);
    const uint64_t data_start = 8 + hlen;
    for (size_t i = 0; i < NALL; i++) {
        const st_want *w = &ALL[i];
        uint64_t idx = UINT64_MAX;
        qfmt_error e;
        cr_assert_eq(qfmt_st_find(f, w->name, &idx, &e), QFMT_OK, "find %s: %s", w->name,
                     e.message);
        cr_assert_eq(idx, i, "%s: index %llu, want %zu (tensors are in data order)", w->name,
                     (unsigned long long)idx, i);
        qfmt_st_tensor t;
        cr_assert_eq(qfmt_st_get(f, idx, &t, &e), QFMT_OK);
        cr_assert_str_eq(t.name, w->name);
        cr_assert_str_eq(t.dtype, w->dtype);
        cr_assert_eq(t.type, w->type, "%s", w->name);
        cr_assert_eq(t.ndim, w->ndim, "%s", w->name);
        for (uint32_t d = 0; d < w->ndim; d++)
            cr_assert_eq(t.dims[d], w->dims[d], "%s dim %u", w->name, d);
        for (uint32_t d = w->ndim; d < QFMT_MAX_DIMS; d++)
            cr_assert_eq(t.dims[d], 0, "%s unused dim %u", w->name, d);
        cr_assert_eq(t.nelements, w->nelements, "%s", w->name);
        cr_assert_eq(t.size, w->end - w->begin, "%s", w->name);
        cr_assert_eq(t.offset, data_start + w->begin, "%s", w->name);
        cr_assert_eq((const uint8_t *)t.data, b + data_start + w->begin,
                     "%s: not a view into the buffer", w->name);
        /* qfmt_type_size agrees with the dtype x shape size. */
        uint64_t bytes;
        cr_assert_eq(qfmt_type_size(t.type, t.nelements, &bytes), QFMT_OK);
        cr_assert_eq(bytes, t.size, "%s", w->name);
    }
    /* The pattern is where the views say. */
    qfmt_st_tensor t;
    qfmt_error e;
    cr_assert_eq(qfmt_st_get(f, 1, &t, &e), QFMT_OK);
    for (uint64_t i = 0; i < t.size; i++)
        cr_assert_eq(((const uint8_t *)t.data)[i], (uint8_t)((24 + i) * 7 + 1));
    /* Metadata: strings only, JSON escapes decoded. */
    cr_assert_str_eq(qfmt_st_metadata(f, "format"), "pt");
    cr_assert_str_eq(qfmt_st_metadata(f, "note"), "h\xc3\xa9llo");
    cr_assert_str_eq(qfmt_st_metadata(f, "empty"), "");
    cr_assert_null(qfmt_st_metadata(f, "missing"));
    cr_assert_null(qfmt_st_metadata(f, "__metadata__"));
    cr_assert_null(qfmt_st_metadata(f, NULL));
    /* Lookups that fail. */
    uint64_t idx;
    cr_assert_eq(qfmt_st_find(f, "nope", &idx, &e), QFMT_E_NOT_FOUND);
    cr_assert_str_eq(e.tensor, "nope");
    cr_assert_eq(qfmt_st_find(f, "__metadata__", &idx, &e), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_st_find(f, "", &idx, &e), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_st_find(f, "w.f3", &idx, &e), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_st_get(f, NALL, &t, &e), QFMT_E_RANGE);
    cr_assert_eq(qfmt_st_get(f, UINT64_MAX, &t, &e), QFMT_E_RANGE);
    cr_assert_eq(qfmt_st_get(f, 0, NULL, &e), QFMT_E_ARG);
    cr_assert_eq(qfmt_st_find(f, NULL, &idx, &e), QFMT_E_ARG);
    qfmt_st_close(f);
    free(b);
    free(h);
}

#define UNICODE_NAME_HEADER                                                                        \
    "{\"\\u00e9t\\u00e9\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}"

Test(safetensors, small_valid_files) {
    static const struct {
        const char *what, *header;
        size_t data_len;
        uint64_t count;
    } C[] = {
        {"no tensors", "{}", 0, 0},
        {"metadata only", "{\"__metadata__\":{\"a\":\"b\"}}", 0, 0},
        {"empty metadata", "{\"__metadata__\":{}}", 0, 0},
        {"only an empty tensor", "{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
         0, 1},
        {"empty tensors among others",
         "{\"e\":{\"dtype\":\"I8\",\"shape\":[4,0],\"data_offsets\":[4,4]},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
         "\"z\":{\"dtype\":\"BF16\",\"shape\":[0,0,0],\"data_offsets\":[6,6]}}",
         6, 4},
        {"scalar", "{\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}", 8, 1},
        {"8 dimensions",
         "{\"t\":{\"dtype\":\"F16\",\"shape\":[1,2,1,2,1,1,1,1],\"data_offsets\":[0,8]}}", 8, 1},
        {"whitespace padding, as safetensors writers pad to 8",
         "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}       ", 1, 1},
        {"whitespace inside",
         "{ \"t\" : { \"dtype\" : \"U8\" ,\n\"shape\" : [ 1 ] , \"data_offsets\" : [ 0 , 1 ] } }",
         1, 1},
        {"unknown extra keys",
         "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":[1,{}]}}", 1, 1},
        {"unicode name", UNICODE_NAME_HEADER, 1, 1},
    };
    for (size_t c = 0; c < sizeof C / sizeof C[0]; c++) {
        size_t size;
        uint8_t *b = st_make(C[c].header, NULL, C[c].data_len, &size);
        qfmt_error e;
        if (st_expect(b, size, QFMT_OK, &e, C[c].what) == QFMT_OK) {
            qfmt_st_file *f = st_open_ok(b, size);
            cr_expect_eq(qfmt_st_count(f), C[c].count, "%s", C[c].what);
            qfmt_st_close(f);
        }
        free(b);
    }
    /* The unicode name is found by its UTF-8 bytes. */
    size_t size;
    uint8_t *b = st_make(UNICODE_NAME_HEADER, NULL, 1, &size);
    qfmt_st_file *f = st_open_ok(b, size);
    uint64_t idx;
    qfmt_error e;
    cr_assert_eq(qfmt_st_find(f, "\xc3\xa9t\xc3\xa9", &idx, &e), QFMT_OK);
    qfmt_st_close(f);
    free(b);
}

/* Many tensors: the name index and the data order hold at scale. */
Test(safetensors, many_tensors) {
    const size_t n = 3000;
    st_want *w = xmalloc(n * sizeof *w);
    char(*names)[32] = xmalloc(n * sizeof *names);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "t%05zu",
                 (i * 7919) % n); /* names in scrambled order */
        memset(&w[i], 0, sizeof w[i]);
        w[i].name = names[i];
        w[i].dtype = "F32";
        w[i].type = QFMT_TYPE_F32;
        w[i].ndim = 1;
        w[i].dims[0] = i % 5;
        w[i].begin = at;
        at += 4 * (i % 5);
        w[i].end = at;
        w[i].nelements = i % 5;
    }
    char *h = header_of(w, n, NULL);
    size_t size;
    uint8_t *b = st_make(h, NULL, at, &size);
    qfmt_st_file *f = st_open_ok(b, size);
    cr_assert_eq(qfmt_st_count(f), n);
    uint64_t prev_end = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t idx;
        qfmt_error e;
        cr_assert_eq(qfmt_st_find(f, names[i], &idx, &e), QFMT_OK, "%s", names[i]);
        qfmt_st_tensor t;
        cr_assert_eq(qfmt_st_get(f, idx, &t, &e), QFMT_OK);
        cr_assert_str_eq(t.name, names[i]);
        cr_assert_eq(t.offset, 8 + strlen(h) + w[i].begin);
        qfmt_st_get(f, i, &t, &e);
        cr_assert_geq(t.offset, prev_end, "index %zu out of data order", i);
        prev_end = t.offset + t.size;
    }
    qfmt_st_close(f);
    free(b);
    free(h);
    free(w);
    free(names);
}

/* ---- Rejected files -------------------------------------------------------------------------- */
enum { OFF_ANY, OFF_ABS, OFF_DATA }; /* offset not checked; absolute; relative to the data start */

typedef struct {
    const char *what, *header;
    size_t data_len;
    qfmt_status want;
    const char *tensor; /* expected err.tensor, or NULL: not checked */
    int off_kind;
    uint64_t off;
} bad_case;

#define E(dt, shape, offs) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const bad_case BAD[] = {
    /* The header as JSON. */
    {"not JSON", "{abc}", 0, QFMT_E_CORRUPT, NULL, OFF_ABS, 9}, /* the JSON policy: the byte */
    {"not JSON: bare word", "{\"a\":nope}", 0, QFMT_E_CORRUPT, NULL, OFF_ABS, 13},
    {"not an object: array", "[1,2]", 0, QFMT_E_CORRUPT, NULL, OFF_ABS, 8},
    {"not an object: string", "\"{}\"", 0, QFMT_E_CORRUPT, NULL, OFF_ABS, 8},
    {"not an object: number", "12", 0, QFMT_E_CORRUPT, NULL, OFF_ABS, 8},
    {"not an object: leading space", " {}", 0, QFMT_E_CORRUPT, NULL, OFF_ABS, 8},
    {"truncated JSON: missing brace", "{\"a\":" E("F32", "[1]", "[0,4]"), 4, QFMT_E_CORRUPT, NULL,
     OFF_ABS, 61},
    {"truncated JSON: in a string", "{\"a\":{\"dtype\":\"F3", 0, QFMT_E_CORRUPT, NULL, OFF_ABS, 22},
    {"truncated JSON: in a number", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1", 0, QFMT_E_CORRUPT,
     NULL, OFF_ABS, 38},
    {"truncated JSON: only a brace", "{", 0, QFMT_E_CORRUPT, NULL, OFF_ANY, 0},
    {"header of length 0", "", 0, QFMT_E_CORRUPT, NULL, OFF_ABS, 0},
    /* Entries. */
    {"entry not an object", "{\"a\":5}", 0, QFMT_E_CORRUPT, "a", OFF_ABS, 8},
    {"entry is an array", "{\"a\":[\"F32\",[1],[0,4]]}", 4, QFMT_E_CORRUPT, "a", OFF_ABS, 8},
    {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, QFMT_E_CORRUPT, "a",
     OFF_ABS, 8},
    {"missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, QFMT_E_CORRUPT, "a",
     OFF_ABS, 8},
    {"missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, QFMT_E_CORRUPT, "a",
     OFF_ABS, 8},
    {"dtype not a string",
     "{\"a\":" E("F32", "[1]",
                 "[0,4]") ",\"b\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[4,8]}}",
     8, QFMT_E_CORRUPT, "b", OFF_ABS, 8},
    {"shape not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4,
     QFMT_E_CORRUPT, "a", OFF_ABS, 8},
    {"data_offsets not an array",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 4, QFMT_E_CORRUPT, "a",
     OFF_ABS, 8},
    {"empty tensor name", "{\"\":" E("U8", "[1]", "[0,1]") "}", 1, QFMT_E_CORRUPT, NULL, OFF_ABS,
     8},
    /* dtypes. */
    {"unknown dtype F8_E4M3", "{\"a\":" E("F8_E4M3", "[4]", "[0,4]") "}", 4, QFMT_E_UNSUPPORTED,
     "a", OFF_ABS, 8},
    {"unknown dtype U16", "{\"a\":" E("U16", "[2]", "[0,4]") "}", 4, QFMT_E_UNSUPPORTED, "a",
     OFF_ABS, 8},
    {"unknown dtype U32", "{\"a\":" E("U32", "[1]", "[0,4]") "}", 4, QFMT_E_UNSUPPORTED, "a",
     OFF_ABS, 8},
    {"unknown dtype U64", "{\"a\":" E("U64", "[1]", "[0,8]") "}", 8, QFMT_E_UNSUPPORTED, "a",
     OFF_ABS, 8},
    {"dtype in lower case", "{\"a\":" E("f32", "[1]", "[0,4]") "}", 4, QFMT_E_UNSUPPORTED, "a",
     OFF_ABS, 8},
    {"dtype empty", "{\"a\":" E("", "[1]", "[0,4]") "}", 4, QFMT_E_UNSUPPORTED, "a", OFF_ABS, 8},
    /* Shapes. */
    {"negative dim", "{\"a\":" E("F32", "[-1]", "[0,4]") "}", 4, QFMT_E_CORRUPT, "a", OFF_ABS, 8},
    {"negative dim after a good one", "{\"a\":" E("F32", "[1,-1]", "[0,4]") "}", 4, QFMT_E_CORRUPT,
     "a", OFF_ABS, 8},
    {"fractional dim", "{\"a\":" E("F32", "[1.5]", "[0,6]") "}", 6, QFMT_E_CORRUPT, "a", OFF_ABS,
     8},
    {"huge dim 1e300", "{\"a\":" E("F32", "[1e300]", "[0,4]") "}", 4, QFMT_E_CORRUPT, "a", OFF_ABS,
     8},
    {"dim past 2^53 (not exact as JSON number)",
     "{\"a\":" E("U8", "[9007199254740994]", "[0,4]") "}", 4, QFMT_E_CORRUPT, "a", OFF_ABS, 8},
    {"dim as a string", "{\"a\":" E("F32", "[\"1\"]", "[0,4]") "}", 4, QFMT_E_CORRUPT, "a", OFF_ABS,
     8},
    {"dim null", "{\"a\":" E("F32", "[null]", "[0,4]") "}", 4, QFMT_E_CORRUPT, "a", OFF_ABS, 8},
    {"9 dimensions", "{\"a\":" E("F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, QFMT_E_UNSUPPORTED,
     "a", OFF_ABS, 8},
    {"shape product overflows 64 bits", "{\"a\":" E("U8", "[4294967296,4294967296,2]", "[0,4]") "}",
     4, QFMT_E_CORRUPT, "a", OFF_ABS, 8},
    {"shape product overflows 64 bits (2^53 squared)",
     "{\"a\":" E("U8", "[9007199254740992,9007199254740992]", "[0,4]") "}", 4, QFMT_E_CORRUPT, "a",
     OFF_ABS, 8},
    {"element count past 2^56", "{\"a\":" E("U8", "[9007199254740992,16]", "[0,8]") "}", 8,
     QFMT_E_CORRUPT, "a", OFF_ABS, 8},
    /* Offsets. */
    {"data_offsets begin > end", "{\"a\":" E("U8", "[0]", "[4,0]") "}", 4, QFMT_E_CORRUPT, "a",
     OFF_ANY, 0},
    {"data_offsets end past the data", "{\"a\":" E("F32", "[2]", "[0,8]") "}", 4, QFMT_E_CORRUPT,
     "a", OFF_DATA, 0},
    {"data_offsets far past the data", "{\"a\":" E("U8", "[1]", "[18446744073709551615,0]") "}", 4,
     QFMT_E_CORRUPT, "a", OFF_ANY, 0},
    {"data_offsets negative", "{\"a\":" E("U8", "[4]", "[-4,0]") "}", 4, QFMT_E_CORRUPT, "a",
     OFF_ABS, 8},
    {"data_offsets fractional", "{\"a\":" E("U8", "[4]", "[0,4.5]") "}", 4, QFMT_E_CORRUPT, "a",
     OFF_ABS, 8},
    {"data_offsets of one number", "{\"a\":" E("U8", "[4]", "[4]") "}", 4, QFMT_E_CORRUPT, "a",
     OFF_ABS, 8},
    {"data_offsets of three numbers", "{\"a\":" E("U8", "[4]", "[0,4,4]") "}", 4, QFMT_E_CORRUPT,
     "a", OFF_ABS, 8},
    {"data_offsets of strings", "{\"a\":" E("U8", "[4]", "[\"0\",\"4\"]") "}", 4, QFMT_E_CORRUPT,
     "a", OFF_ABS, 8},
    {"size does not match dtype x shape", "{\"a\":" E("F32", "[2]", "[0,4]") "}", 4, QFMT_E_CORRUPT,
     "a", OFF_DATA, 0},
    {"size does not match: F16 counted as 4 bytes", "{\"a\":" E("F16", "[2]", "[0,8]") "}", 8,
     QFMT_E_CORRUPT, "a", OFF_DATA, 0},
    {"size does not match: empty tensor with bytes", "{\"a\":" E("F32", "[0]", "[0,4]") "}", 4,
     QFMT_E_CORRUPT, "a", OFF_DATA, 0},
    {"two tensors overlapping",
     "{\"a\":" E("F32", "[2]", "[0,8]") ",\"b\":" E("F32", "[2]", "[4,12]") "}", 12, QFMT_E_CORRUPT,
     "b", OFF_DATA, 4},
    {"two tensors on the same bytes",
     "{\"a\":" E("F32", "[1]", "[0,4]") ",\"b\":" E("I32", "[1]", "[0,4]") "}", 4, QFMT_E_CORRUPT,
     NULL, OFF_DATA, 0},
    {"an empty tensor inside another",
     "{\"a\":" E("F32", "[2]", "[0,8]") ",\"e\":" E("F32", "[0]", "[4,4]") "}", 8, QFMT_E_CORRUPT,
     "e", OFF_DATA, 4},
    {"a hole between tensors",
     "{\"a\":" E("F32", "[1]", "[0,4]") ",\"b\":" E("F32", "[1]", "[8,12]") "}", 12, QFMT_E_CORRUPT,
     "b", OFF_DATA, 4},
    {"a hole before the first tensor", "{\"a\":" E("F32", "[1]", "[4,8]") "}", 8, QFMT_E_CORRUPT,
     "a", OFF_DATA, 0},
    {"trailing unused data bytes", "{\"a\":" E("F32", "[1]", "[0,4]") "}", 8, QFMT_E_CORRUPT, NULL,
     OFF_DATA, 4},
    {"data but no tensors", "{}", 1, QFMT_E_CORRUPT, NULL, OFF_DATA, 0},
    /* duplicate keys: the JSON policy, at the second one */
    {"duplicate tensor names",
     "{\"a\":" E("F32", "[1]", "[0,4]") ",\"a\":" E("F32", "[1]", "[4,8]") "}", 8, QFMT_E_CORRUPT,
     NULL, OFF_ABS, 62},
    {"duplicate tensor names among others",
     "{\"x\":" E("U8", "[1]", "[0,1]") ",\"a\":" E("U8", "[1]", "[1,2]") ",\"m\":" E(
         "U8", "[1]", "[2,3]") ",\"a\":" E("U8", "[1]", "[3,4]") "}",
     4, QFMT_E_CORRUPT, NULL, OFF_ABS, 165},
    /* __metadata__. */
    {"non-string metadata value: number", "{\"__metadata__\":{\"k\":5}}", 0, QFMT_E_CORRUPT, NULL,
     OFF_ABS, 8},
    {"non-string metadata value: null", "{\"__metadata__\":{\"k\":null}}", 0, QFMT_E_CORRUPT, NULL,
     OFF_ABS, 8},
    {"non-string metadata value: object", "{\"__metadata__\":{\"k\":{}}}", 0, QFMT_E_CORRUPT, NULL,
     OFF_ABS, 8},
    {"metadata not an object", "{\"__metadata__\":\"pt\"}", 0, QFMT_E_CORRUPT, NULL, OFF_ABS, 8},
    {"two __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, QFMT_E_CORRUPT, NULL,
     OFF_ABS, 27},
};
#define NBAD (sizeof BAD / sizeof BAD[0])

Test(safetensors, rejects_malformed_headers_shapes_and_offsets) {
    for (size_t c = 0; c < NBAD; c++) {
        const bad_case *k = &BAD[c];
        size_t size;
        uint8_t *b = st_make(k->header, NULL, k->data_len, &size);
        qfmt_error e;
        st_expect(b, size, k->want, &e, k->what);
        if (k->tensor)
            cr_expect_str_eq(e.tensor, k->tensor, "%s: err.tensor '%s'", k->what, e.tensor);
        uint64_t data_start = 8 + strlen(k->header);
        if (k->off_kind == OFF_ABS)
            cr_expect_eq(e.offset, k->off, "%s: offset %llu, want %llu", k->what,
                         (unsigned long long)e.offset, (unsigned long long)k->off);
        if (k->off_kind == OFF_DATA)
            cr_expect_eq(e.offset, data_start + k->off, "%s: offset %llu, want %llu", k->what,
                         (unsigned long long)e.offset, (unsigned long long)(data_start + k->off));
        free(b);
    }
}

/* Tensor names must be UTF-8 (they become qfmt tensor names). */
Test(safetensors, rejects_tensor_name_not_utf8) {
    static const char h[] = "{\"a\xff\":" E("U8", "[1]", "[0,1]") "}";
    size_t size;
    uint8_t *b = st_make(h, NULL, 1, &size);
    qfmt_error e;
    st_expect(b, size, QFMT_E_CORRUPT, &e, "name with byte 0xff");
    free(b);
    static const char h2[] = "{\"a\xc3\":" E("U8", "[1]", "[0,1]") "}"; /* truncated sequence */
    b = st_make(h2, NULL, 1, &size);
    st_expect(b, size, QFMT_E_CORRUPT, &e, "name with a truncated sequence");
    free(b);
}

/* The 8-byte length prefix. */
Test(safetensors, rejects_short_files_and_bad_header_lengths) {
    uint8_t small[8] = {2, 0, 0, 0, 0, 0, 0, 0};
    qfmt_error e;
    for (size_t n = 0; n < 8; n++) {
        char what[32];
        snprintf(what, sizeof what, "file of %zu bytes", n);
        st_expect(small, n, QFMT_E_CORRUPT, &e, what);
        cr_expect_eq(e.offset, 0, "%s", what);
    }
    /* NULL data with size 0 is an empty file; NULL with a size is an argument error. */
    qfmt_st_file *f = NULL;
    cr_assert_eq(qfmt_st_open_memory(&f, NULL, 0, NULL, &e), QFMT_E_CORRUPT);
    cr_assert_null(f);
    cr_assert_eq(qfmt_st_open_memory(&f, NULL, 16, NULL, &e), QFMT_E_ARG);
    cr_assert_eq(qfmt_st_open_memory(NULL, small, 8, NULL, &e), QFMT_E_ARG);

    size_t size;
    uint8_t *b = st_make("{\"a\":" E("U8", "[2]", "[0,2]") "}", NULL, 2, &size);
    uint64_t hl = get64(b);
    st_expect(b, size, QFMT_OK, &e, "control");
    static const struct {
        const char *what;
        int64_t delta; /* added to the true header length */
        uint64_t abs;  /* or this, when delta is 0 */
    } L[] = {
        {"header length one past the file", 3, 0}, /* 2 data bytes + 1 */
        {"header length far past the file", 1000, 0},
        {"header length 2^63", 0, 1ull << 63},
        {"header length 2^64 - 1", 0, UINT64_MAX},
        {"header length 2^64 - 8 (8 + length wraps)", 0, UINT64_MAX - 7},
        {"header length just over QFMT_ST_MAX_HEADER", 0, QFMT_ST_MAX_HEADER + 1},
        {"header length 1", 0, 1},
        {"header length 0", 0, 0},
    };
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
        put64(b, L[i].delta ? hl + (uint64_t)L[i].delta : L[i].abs);
        st_expect(b, size, QFMT_E_CORRUPT, &e, L[i].what);
        cr_expect_eq(e.offset, 0, "%s: offset %llu", L[i].what, (unsigned long long)e.offset);
    }
    /* Header length short of the JSON's end: the JSON is cut. */
    put64(b, hl - 1);
    st_expect(b, size, QFMT_E_CORRUPT, &e, "header length one short");
    put64(b, hl + 1); /* takes one data byte into the header: 1 data byte left for 2 needed */
    st_expect(b, size, QFMT_E_CORRUPT, &e, "header length one long");
    free(b);
}

/* QFMT_ST_MAX_HEADER is the limit: a header of exactly 100 MiB (whitespace-padded) opens, one
 * byte more is refused before it is parsed. */
Test(safetensors, header_length_limit_is_100_MiB) {
    const size_t hl = (size_t)QFMT_ST_MAX_HEADER;
    size_t size = 8 + hl + 1;
    uint8_t *b = malloc(size);
    cr_assert_not_null(b);
    put64(b, hl);
    memset(b + 8, ' ', hl);
    memcpy(b + 8, "{}", 2);
    qfmt_st_file *f = NULL;
    qfmt_error e;
    /* Opened without the last byte: with length hl + 1 that byte would be a data byte. */
    cr_assert_eq(qfmt_st_open_memory(&f, b, size - 1, NULL, &e), QFMT_OK, "%s", e.message);
    cr_assert_eq(qfmt_st_count(f), 0);
    qfmt_st_close(f);
    put64(b, hl + 1);
    b[8 + hl] = ' ';
    cr_assert_eq(qfmt_st_open_memory(&f, b, size, NULL, &e), QFMT_E_CORRUPT);
    cr_assert_null(f);
    cr_assert_eq(e.offset, 0);
    free(b);
}

/* Deep nesting is refused by the JSON parser's limit, not by a stack overflow. */
Test(safetensors, rejects_deeply_nested_json) {
    const size_t depth = 100000;
    char *h = xmalloc(2 * depth + 16);
    size_t n = 0;
    n += (size_t)sprintf(h, "{\"a\":");
    for (size_t i = 0; i < depth; i++) h[n++] = '[';
    for (size_t i = 0; i < depth; i++) h[n++] = ']';
    h[n++] = '}';
    h[n] = 0;
    size_t size;
    uint8_t *b = st_make(h, NULL, 0, &size);
    qfmt_error e;
    st_expect(b, size, QFMT_E_CORRUPT, &e, "100000 nested arrays");
    free(b);
    free(h);
}

/* Every prefix of a valid file fails cleanly (and ASan sees no read past it). */
Test(safetensors, every_prefix_fails_cleanly) {
    char *h = header_of(ALL, NALL, "{\"format\":\"pt\"}");
    size_t size;
    uint8_t *b = st_make(h, NULL, 96, &size);
    for (size_t n = 0; n < size; n++) {
        char what[48];
        snprintf(what, sizeof what, "prefix of %zu bytes", n);
        qfmt_error e;
        qfmt_status s = st_expect(b, n, QFMT_E_CORRUPT, &e, what);
        if (s != QFMT_E_CORRUPT) break;
    }
    free(b);
    free(h);
}

/* The JSON ends where the header length says: anything after it other than whitespace is not
 * JSON (safetensors' own reader, serde_json::from_str, refuses trailing characters). */
Test(safetensors, rejects_trailing_garbage_after_the_json) {
    static const char *H[] = {
        "{}x",
        "{}{}",
        "{\"a\":" E("U8", "[1]", "[0,1]") "}garbage",
        "{\"a\":" E("U8", "[1]", "[0,1]") "}\n\"b\"",
    };
    for (size_t i = 0; i < sizeof H / sizeof H[0]; i++) {
        size_t size;
        uint8_t *b = st_make(H[i], NULL, i < 2 ? 0 : 1, &size);
        qfmt_error e;
        st_expect(b, size, QFMT_E_CORRUPT, &e, H[i]);
        free(b);
    }
}

/* A "\u0000" escape would cut a tensor name short in C: the tensor would be imported under
 * another name than the file gives ("a" for "a\u0000b"). It must be refused. */
Test(safetensors, rejects_nul_in_tensor_name) {
    static const char h[] = "{\"a\\u0000b\":" E("U8", "[1]", "[0,1]") "}";
    size_t size;
    uint8_t *b = st_make(h, NULL, 1, &size);
    qfmt_error e;
    st_expect(b, size, QFMT_E_CORRUPT, &e, "tensor name with \\u0000");
    free(b);
}

/* JSON text is UTF-8 (RFC 8259) and qfmt metadata strings must be: a __metadata__ key or value
 * that is not valid UTF-8, or holds a NUL (which C strings would cut), must be refused. */
Test(safetensors, rejects_metadata_not_utf8_or_with_nul) {
    static const char *H[] = {
        "{\"__metadata__\":{\"k\":\"\xff\"}}",
        "{\"__metadata__\":{\"\xff\":\"v\"}}",
        "{\"__metadata__\":{\"k\":\"a\\u0000b\"}}",
    };
    for (size_t i = 0; i < sizeof H / sizeof H[0]; i++) {
        size_t size;
        uint8_t *b = st_make(H[i], NULL, 0, &size);
        qfmt_error e;
        st_expect(b, size, QFMT_E_CORRUPT, &e, H[i]);
        free(b);
    }
}

/* ---- Allocation ------------------------------------------------------------------------------ */
typedef struct {
    long live, calls, fail_at;
} counting;

static void *c_alloc(void *ctx, size_t size) {
    counting *c = ctx;
    c->calls++;
    if (c->fail_at && c->calls >= c->fail_at) return NULL;
    void *p = malloc(size ? size : 1);
    if (p) c->live++;
    return p;
}
static void c_free(void *ctx, void *p) {
    counting *c = ctx;
    if (p) {
        c->live--;
        free(p);
    }
}

Test(safetensors, custom_allocator_no_leak_and_allocation_failures) {
    char *h = header_of(ALL, NALL, "{\"format\":\"pt\",\"x\":\"y\"}");
    size_t size;
    uint8_t *b = st_make(h, NULL, 96, &size);
    counting c = {0, 0, 0};
    qfmt_allocator a = {c_alloc, c_free, &c};
    qfmt_st_file *f = NULL;
    qfmt_error e;
    cr_assert_eq(qfmt_st_open_memory(&f, b, size, &a, &e), QFMT_OK);
    cr_assert_gt(c.live, 0);
    qfmt_st_close(f);
    cr_assert_eq(c.live, 0, "%ld blocks leaked", c.live);
    long needed = c.calls;
    /* Fail from the n-th allocation on: NOMEM, nothing leaked, until it succeeds. */
    for (long n = 1; n <= needed + 1; n++) {
        c.live = 0;
        c.calls = 0;
        c.fail_at = n;
        f = (qfmt_st_file *)(uintptr_t)1;
        qfmt_status s = qfmt_st_open_memory(&f, b, size, &a, &e);
        if (n > needed) {
            cr_assert_eq(s, QFMT_OK, "allocation %ld of %ld", n, needed);
            qfmt_st_close(f);
        } else {
            cr_assert_eq(s, QFMT_E_NOMEM, "allocation %ld failed: got %d", n, (int)s);
            cr_assert_null(f);
        }
        cr_assert_eq(c.live, 0, "failing allocation %ld: %ld blocks leaked", n, c.live);
    }
    free(b);
    free(h);
}

/* ---- The fixtures, from disk ----------------------------------------------------------------- */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = xmalloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    return b;
}

static cJSON *config_of(const char *model) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/fixtures/%s/config.json", QFMT_TEST_DATA_DIR, model);
    char *t = slurp(path);
    cJSON *j = cJSON_Parse(t);
    free(t);
    cr_assert_not_null(j, "%s", path);
    return j;
}

static uint64_t cfg_u64(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    cr_assert(cJSON_IsNumber(v), "config.json: '%s'", key);
    return (uint64_t)v->valuedouble;
}

typedef struct {
    const char *name;
    uint64_t d0, d1;
} shape2;

/* Opens <model>/model.safetensors from disk; checks the count, the given shapes, the dtype
 * (config.json's "dtype"), that the tensors tile the data exactly and the metadata. */
static void check_fixture(const char *model, uint64_t want_count, const char *dtype,
                          const shape2 *s, size_t ns) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/fixtures/%s/model.safetensors", QFMT_TEST_DATA_DIR, model);
    qfmt_st_file *f = NULL;
    qfmt_error e;
    cr_assert_eq(qfmt_st_open(&f, path, NULL, &e), QFMT_OK, "%s: %s", path, e.message);
    cr_assert_eq(qfmt_st_count(f), want_count, "%s: %llu tensors, want %llu", model,
                 (unsigned long long)qfmt_st_count(f), (unsigned long long)want_count);
    for (size_t i = 0; i < ns; i++) {
        uint64_t idx;
        cr_assert_eq(qfmt_st_find(f, s[i].name, &idx, &e), QFMT_OK, "%s: %s", model, s[i].name);
        qfmt_st_tensor t;
        cr_assert_eq(qfmt_st_get(f, idx, &t, &e), QFMT_OK);
        cr_assert_eq(t.ndim, 2, "%s", s[i].name);
        cr_assert(t.dims[0] == s[i].d0 && t.dims[1] == s[i].d1,
                  "%s: [%llu, %llu], want [%llu, %llu]", s[i].name, (unsigned long long)t.dims[0],
                  (unsigned long long)t.dims[1], (unsigned long long)s[i].d0,
                  (unsigned long long)s[i].d1);
    }
    /* Every tensor of the stored dtype; together they tile the data to the file's end. */
    uint64_t size = qfmt_st_file_size(f), at = 0;
    for (uint64_t i = 0; i < qfmt_st_count(f); i++) {
        qfmt_st_tensor t;
        cr_assert_eq(qfmt_st_get(f, i, &t, &e), QFMT_OK);
        cr_assert_str_eq(t.dtype, dtype, "%s", t.name);
        if (i == 0) at = t.offset;
        cr_assert_eq(t.offset, at, "%s: at %llu, want %llu", t.name, (unsigned long long)t.offset,
                     (unsigned long long)at);
        uint64_t bytes;
        cr_assert_eq(qfmt_type_size(t.type, t.nelements, &bytes), QFMT_OK);
        cr_assert_eq(bytes, t.size, "%s", t.name);
        at += t.size;
    }
    cr_assert_eq(at, size);
    cr_assert_str_eq(qfmt_st_metadata(f, "format"), "pt");
    qfmt_st_close(f);
}

Test(safetensors_fixtures, gpt2) {
    cJSON *c = config_of("gpt2-kjv");
    uint64_t L = cfg_u64(c, "n_layer"), d = cfg_u64(c, "n_embd"), V = cfg_u64(c, "vocab_size");
    uint64_t P = cfg_u64(c, "n_positions");
    cr_assert_eq(V, 4096);
    cr_assert_eq(d, 192);
    /* Per layer ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, each weight + bias;
     * then wte, wpe, ln_f weight + bias. lm_head is tied to wte, not stored. */
    const shape2 s[] = {{"transformer.wte.weight", V, d},
                        {"transformer.wpe.weight", P, d},
                        {"transformer.h.0.attn.c_attn.weight", d, 3 * d}, /* Conv1D: [in, out] */
                        {"transformer.h.3.mlp.c_proj.weight", 4 * d, d}};
    check_fixture("gpt2-kjv", 12 * L + 4, "F32", s, sizeof s / sizeof s[0]);
    cJSON_Delete(c);
}

Test(safetensors_fixtures, llama) {
    cJSON *c = config_of("llama-kjv");
    uint64_t L = cfg_u64(c, "num_hidden_layers"), d = cfg_u64(c, "hidden_size"),
             V = cfg_u64(c, "vocab_size");
    uint64_t F = cfg_u64(c, "intermediate_size"), hd = cfg_u64(c, "head_dim"),
             kv = cfg_u64(c, "num_key_value_heads");
    /* Per layer two norms, q/k/v/o and gate/up/down (no biases); then embed_tokens, norm and
     * the untied lm_head. */
    const shape2 s[] = {{"model.embed_tokens.weight", V, d},
                        {"lm_head.weight", V, d},
                        {"model.layers.0.self_attn.k_proj.weight", kv * hd, d},
                        {"model.layers.1.mlp.down_proj.weight", d, F}};
    check_fixture("llama-kjv", 9 * L + 3, "BF16", s, sizeof s / sizeof s[0]);
    cJSON_Delete(c);
}

Test(safetensors_fixtures, bert) {
    cJSON *c = config_of("bert-kjv");
    uint64_t L = cfg_u64(c, "num_hidden_layers"), d = cfg_u64(c, "hidden_size"),
             V = cfg_u64(c, "vocab_size");
    uint64_t F = cfg_u64(c, "intermediate_size"), P = cfg_u64(c, "max_position_embeddings");
    uint64_t T = cfg_u64(c, "type_vocab_size");
    /* Per layer query/key/value, attention.output.dense, attention.output.LayerNorm,
     * intermediate.dense, output.dense, output.LayerNorm: 8 pairs; then 3 embeddings + their
     * LayerNorm pair, and cls.predictions: bias, transform.dense pair, transform.LayerNorm pair
     * (the decoder is tied to the word embeddings). */
    const shape2 s[] = {{"bert.embeddings.word_embeddings.weight", V, d},
                        {"bert.embeddings.position_embeddings.weight", P, d},
                        {"bert.embeddings.token_type_embeddings.weight", T, d},
                        {"bert.encoder.layer.2.intermediate.dense.weight", F, d}};
    check_fixture("bert-kjv", 16 * L + 10, "F16", s, sizeof s / sizeof s[0]);
    cJSON_Delete(c);
}

Test(safetensors_fixtures, missing_path_is_an_io_error) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/fixtures/no-such-model/model.safetensors", QFMT_TEST_DATA_DIR);
    qfmt_st_file *f = (qfmt_st_file *)(uintptr_t)1;
    qfmt_error e;
    cr_assert_eq(qfmt_st_open(&f, path, NULL, &e), QFMT_E_IO);
    cr_assert_null(f);
    cr_assert_eq(e.code, QFMT_E_IO);
    cr_assert_eq(e.sys_errno, ENOENT);
    cr_assert_str_eq(e.path, path);
    cr_assert_neq(e.message[0], 0);
    /* A directory is not a file either. */
    snprintf(path, sizeof path, "%s/fixtures", QFMT_TEST_DATA_DIR);
    cr_assert_neq(qfmt_st_open(&f, path, NULL, &e), QFMT_OK);
    cr_assert_null(f);
    cr_assert_eq(qfmt_st_open(&f, NULL, NULL, &e), QFMT_E_ARG);
}
