/*
 * test_meta.c - typed metadata: getters check the stored type (never reinterpret), arrays,
 * sorted listing, unknown value types kept opaque, malformed metadata rejected at open.
 */
#include "test_helpers.h"

#include <math.h>

enum { G_U8, G_I8, G_U16, G_I16, G_U32, G_I32, G_U64, G_I64, G_F32, G_F64, G_BOOL, G_STR, G_ARR,
       NGETTERS };
static const char *const GNAME[NGETTERS] = {"u8",  "i8",  "u16", "i16",  "u32",    "i32",  "u64",
                                            "i64", "f32", "f64", "bool", "string", "array"};

/* Calls getter g; the output goes to `out` (at least 16 bytes). */
static qfmt_status call_getter(qfmt_reader *r, int g, const char *key, void *out, qfmt_error *e) {
    switch (g) {
    case G_U8: return qfmt_meta_get_u8(r, key, out, e);
    case G_I8: return qfmt_meta_get_i8(r, key, out, e);
    case G_U16: return qfmt_meta_get_u16(r, key, out, e);
    case G_I16: return qfmt_meta_get_i16(r, key, out, e);
    case G_U32: return qfmt_meta_get_u32(r, key, out, e);
    case G_I32: return qfmt_meta_get_i32(r, key, out, e);
    case G_U64: return qfmt_meta_get_u64(r, key, out, e);
    case G_I64: return qfmt_meta_get_i64(r, key, out, e);
    case G_F32: return qfmt_meta_get_f32(r, key, out, e);
    case G_F64: return qfmt_meta_get_f64(r, key, out, e);
    case G_BOOL: return qfmt_meta_get_bool(r, key, out, e);
    case G_STR: {
        const char **pp = out;
        uint64_t *len = (uint64_t *)((char *)out + sizeof(char *));
        return qfmt_meta_get_string(r, key, pp, len, e);
    }
    case G_ARR: {
        uint32_t *et = out;
        uint64_t *cnt = (uint64_t *)((char *)out + 8);
        return qfmt_meta_get_array(r, key, et, cnt, e);
    }
    }
    return QFMT_E_ARG;
}

static const char *const KEYS[NGETTERS] = {"k.u8",  "k.i8",  "k.u16", "k.i16",  "k.u32",
                                           "k.i32", "k.u64", "k.i64", "k.f32",  "k.f64",
                                           "k.bool", "k.str", "k.arr"};

static uint8_t *typed_file(size_t *size) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/t.qfmt", dir);
    qfmt_writer *w = NULL;
    qfmt_error e;
    qfmt_write_opts wo = {0};
    wo.no_fsync = true;
    TH_OKE(qfmt_writer_create(&w, path, &wo, &e), e);
    qfmt_value v;
    memset(&v, 0, sizeof v);
    /* every value is 7 (or 7-ish), so a reinterpreting getter would "succeed" plausibly */
    v.type = QFMT_META_U8; v.v.u = 7;
    TH_OKE(qfmt_writer_set_value(w, "k.u8", &v, &e), e);
    v.type = QFMT_META_I8; v.v.i = -7;
    TH_OKE(qfmt_writer_set_value(w, "k.i8", &v, &e), e);
    v.type = QFMT_META_U16; v.v.u = 7;
    TH_OKE(qfmt_writer_set_value(w, "k.u16", &v, &e), e);
    v.type = QFMT_META_I16; v.v.i = -7;
    TH_OKE(qfmt_writer_set_value(w, "k.i16", &v, &e), e);
    TH_OKE(qfmt_writer_set_u32(w, "k.u32", 7, &e), e);
    v.type = QFMT_META_I32; v.v.i = 7;
    TH_OKE(qfmt_writer_set_value(w, "k.i32", &v, &e), e);
    TH_OKE(qfmt_writer_set_u64(w, "k.u64", 7, &e), e);
    TH_OKE(qfmt_writer_set_i64(w, "k.i64", -7, &e), e);
    TH_OKE(qfmt_writer_set_f32(w, "k.f32", 7.5f, &e), e);
    TH_OKE(qfmt_writer_set_f64(w, "k.f64", -7.25, &e), e);
    TH_OKE(qfmt_writer_set_bool(w, "k.bool", true, &e), e);
    TH_OKE(qfmt_writer_set_string(w, "k.str", "7", 1, &e), e);
    uint32_t arr[4] = {7, 8, 9, 10};
    TH_OKE(qfmt_writer_set_array(w, "k.arr", QFMT_META_U32, arr, 4, &e), e);
    const char *strs[3] = {"zero", "", "two\xE2\x82\xAC"};
    TH_OKE(qfmt_writer_set_string_array(w, "k.strs", strs, NULL, 3, &e), e);
    int16_t a16[3] = {-1, 0, 300};
    TH_OKE(qfmt_writer_set_array(w, "k.a16", QFMT_META_I16, a16, 3, &e), e);
    TH_OKE(qfmt_writer_set_array(w, "k.aempty", QFMT_META_F64, a16, 0, &e), e);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
    uint8_t *b = th_read_file(path, size);
    th_rmtree(dir);
    return b;
}

static void check_value(int g, const void *out) {
    switch (g) {
    case G_U8: cr_assert_eq(*(const uint8_t *)out, 7); break;
    case G_I8: cr_assert_eq(*(const int8_t *)out, -7); break;
    case G_U16: cr_assert_eq(*(const uint16_t *)out, 7); break;
    case G_I16: cr_assert_eq(*(const int16_t *)out, -7); break;
    case G_U32: cr_assert_eq(*(const uint32_t *)out, 7u); break;
    case G_I32: cr_assert_eq(*(const int32_t *)out, 7); break;
    case G_U64: cr_assert_eq(*(const uint64_t *)out, 7u); break;
    case G_I64: cr_assert_eq(*(const int64_t *)out, -7); break;
    case G_F32: cr_assert_eq(*(const float *)out, 7.5f); break;
    case G_F64: cr_assert_eq(*(const double *)out, -7.25); break;
    case G_BOOL: cr_assert_eq(*(const bool *)out, true); break;
    case G_STR: {
        const char *p;
        uint64_t len;
        memcpy(&p, out, sizeof p);
        memcpy(&len, (const char *)out + sizeof(char *), sizeof len);
        cr_assert_eq(len, 1u);
        cr_assert_eq(p[0], '7');
        break;
    }
    case G_ARR: {
        uint32_t et;
        uint64_t cnt;
        memcpy(&et, out, 4);
        memcpy(&cnt, (const char *)out + 8, 8);
        cr_assert_eq(et, QFMT_META_U32);
        cr_assert_eq(cnt, 4u);
        break;
    }
    }
}

Test(meta, getters_check_the_stored_type) {
    size_t size;
    uint8_t *b = typed_file(&size);
    qfmt_reader *r = th_open_mem(b, size);
    for (int k = 0; k < NGETTERS; k++) {
        for (int g = 0; g < NGETTERS; g++) {
            _Alignas(16) uint8_t out[32];
            memset(out, 0xA5, sizeof out);
            qfmt_error e;
            memset(&e, 0, sizeof e);
            qfmt_status s = call_getter(r, g, KEYS[k], out, &e);
            if (g == k) {
                cr_assert_eq(s, QFMT_OK, "get_%s on %s: %d %s", GNAME[g], KEYS[k], (int)s, e.message);
                check_value(g, out);
            } else {
                cr_assert_eq(s, QFMT_E_TYPE, "get_%s on %s stored as %s: got %d, want QFMT_E_TYPE",
                             GNAME[g], KEYS[k], GNAME[k], (int)s);
                cr_expect_eq(e.code, QFMT_E_TYPE);
                cr_expect_neq(e.message[0], 0);
                for (size_t i = 0; i < sizeof out; i++)
                    cr_expect_eq(out[i], 0xA5, "get_%s on %s wrote its output on failure",
                                 GNAME[g], KEYS[k]);
            }
        }
    }
    /* missing key: NOT_FOUND from every getter */
    for (int g = 0; g < NGETTERS; g++) {
        _Alignas(16) uint8_t out[32];
        qfmt_error e;
        cr_assert_eq(call_getter(r, g, "k.missing", out, &e), QFMT_E_NOT_FOUND, "get_%s",
                     GNAME[g]);
        cr_assert_eq(call_getter(r, g, "k", out, &e), QFMT_E_NOT_FOUND, "get_%s prefix", GNAME[g]);
    }
    qfmt_reader_close(r);
    free(b);
}

Test(meta, meta_type_names) {
    for (int g = 0; g < NGETTERS; g++) cr_assert_str_eq(qfmt_meta_type_name((uint32_t)g), GNAME[g]);
    cr_assert_str_eq(qfmt_meta_type_name(13), "unknown");
    cr_assert_str_eq(qfmt_meta_type_name(99), "unknown");
    cr_assert_str_eq(qfmt_meta_type_name(UINT32_MAX), "unknown");
}

/* The checked walk of a string array: only arrays of strings, bounded count, O(1) elements. */
Test(meta, string_array_accessor) {
    size_t size;
    uint8_t *b = typed_file(&size);
    qfmt_reader *r = th_open_mem(b, size);
    qfmt_error e;
    uint64_t n = 99;
    TH_OKE(qfmt_meta_get_string_array(r, "k.strs", &n, &e), e);
    cr_assert_eq(n, 3u);
    static const char *const strs[3] = {"zero", "", "two\xE2\x82\xAC"};
    for (uint64_t i = 0; i < n; i++) {
        const char *p = NULL;
        uint64_t len = 99;
        TH_OKE(qfmt_meta_string_array_get(r, "k.strs", i, &p, &len, &e), e);
        cr_assert_eq(len, strlen(strs[i]));
        cr_assert_eq(memcmp(p, strs[i], len), 0);
    }
    const char *p;
    uint64_t len;
    cr_assert_eq(qfmt_meta_string_array_get(r, "k.strs", 3, &p, &len, &e), QFMT_E_RANGE);
    cr_assert_eq(qfmt_meta_string_array_get(r, "k.strs", UINT64_MAX, &p, &len, &e), QFMT_E_RANGE);
    cr_assert_eq(qfmt_meta_get_string_array(r, "k.arr", &n, &e), QFMT_E_TYPE, "u32 array");
    cr_assert(strstr(e.message, "array of u32, not of strings"), "%s", e.message);
    cr_assert_eq(qfmt_meta_string_array_get(r, "k.arr", 0, &p, &len, &e), QFMT_E_TYPE);
    cr_assert_eq(qfmt_meta_get_string_array(r, "k.str", &n, &e), QFMT_E_TYPE, "a string");
    cr_assert_eq(qfmt_meta_get_string_array(r, "k.none", &n, &e), QFMT_E_NOT_FOUND);
    qfmt_reader_close(r);
    free(b);
}

Test(meta, array_get_and_copy) {
    size_t size;
    uint8_t *b = typed_file(&size);
    qfmt_reader *r = th_open_mem(b, size);
    qfmt_error e;
    qfmt_value v;

    /* element access */
    for (uint64_t i = 0; i < 4; i++) {
        TH_OKE(qfmt_meta_array_get(r, "k.arr", i, &v, &e), e);
        cr_assert_eq(v.type, QFMT_META_U32);
        cr_assert_eq(v.v.u, 7 + i);
    }
    memset(&e, 0, sizeof e);
    cr_assert_eq(qfmt_meta_array_get(r, "k.arr", 4, &v, &e), QFMT_E_RANGE);
    cr_assert_eq(e.code, QFMT_E_RANGE);
    cr_assert_eq(qfmt_meta_array_get(r, "k.arr", UINT64_MAX, &v, &e), QFMT_E_RANGE);
    cr_assert_eq(qfmt_meta_array_get(r, "k.aempty", 0, &v, &e), QFMT_E_RANGE);
    cr_assert_eq(qfmt_meta_array_get(r, "k.u32", 0, &v, &e), QFMT_E_TYPE, "not an array");
    cr_assert_eq(qfmt_meta_array_get(r, "k.str", 0, &v, &e), QFMT_E_TYPE, "a string is no array");
    cr_assert_eq(qfmt_meta_array_get(r, "k.none", 0, &v, &e), QFMT_E_NOT_FOUND);
    for (uint64_t i = 0; i < 3; i++) {
        TH_OKE(qfmt_meta_array_get(r, "k.a16", i, &v, &e), e);
        cr_assert_eq(v.type, QFMT_META_I16);
        cr_assert_eq(v.v.i, i == 0 ? -1 : i == 1 ? 0 : 300);
    }
    static const char *const strs[3] = {"zero", "", "two\xE2\x82\xAC"};
    for (uint64_t i = 3; i-- > 0;) {
        TH_OKE(qfmt_meta_array_get(r, "k.strs", i, &v, &e), e);
        cr_assert_eq(v.type, QFMT_META_STRING);
        cr_assert_eq(v.v.str.len, strlen(strs[i]));
        cr_assert_eq(memcmp(v.v.str.ptr, strs[i], strlen(strs[i])), 0);
    }
    cr_assert_eq(qfmt_meta_array_get(r, "k.strs", 3, &v, &e), QFMT_E_RANGE);

    /* whole copies */
    uint32_t dst[6];
    memset(dst, 0xEE, sizeof dst);
    TH_OKE(qfmt_meta_array_copy(r, "k.arr", QFMT_META_U32, dst, 4, &e), e);
    cr_assert(dst[0] == 7 && dst[1] == 8 && dst[2] == 9 && dst[3] == 10);
    cr_assert_eq(dst[4], 0xEEEEEEEEu, "copy wrote past the array");
    memset(dst, 0xEE, sizeof dst);
    memset(&e, 0, sizeof e);
    cr_assert_eq(qfmt_meta_array_copy(r, "k.arr", QFMT_META_U32, dst, 3, &e), QFMT_E_RANGE,
                 "dst of 3 for 4 elements");
    cr_assert_eq(e.code, QFMT_E_RANGE);
    cr_assert_eq(dst[3], 0xEEEEEEEEu, "short copy wrote past dst");
    cr_assert_eq(qfmt_meta_array_copy(r, "k.arr", QFMT_META_U32, dst, 0, &e), QFMT_E_RANGE);
    cr_assert_eq(qfmt_meta_array_copy(r, "k.arr", QFMT_META_I32, dst, 4, &e), QFMT_E_TYPE);
    cr_assert_eq(qfmt_meta_array_copy(r, "k.arr", QFMT_META_U64, dst, 4, &e), QFMT_E_TYPE);
    cr_assert_eq(qfmt_meta_array_copy(r, "k.arr", QFMT_META_F32, dst, 4, &e), QFMT_E_TYPE);
    cr_assert_eq(qfmt_meta_array_copy(r, "k.a16", QFMT_META_U16, dst, 6, &e), QFMT_E_TYPE);
    cr_assert_eq(qfmt_meta_array_copy(r, "k.u32", QFMT_META_U32, dst, 6, &e), QFMT_E_TYPE,
                 "copy of a scalar");
    cr_assert_eq(qfmt_meta_array_copy(r, "k.none", QFMT_META_U32, dst, 6, &e), QFMT_E_NOT_FOUND);
    qfmt_status s = qfmt_meta_array_copy(r, "k.strs", QFMT_META_STRING, dst, 6, &e);
    cr_assert(s == QFMT_E_TYPE || s == QFMT_E_ARG, "copy of a string array: %d", (int)s);
    int16_t d16[3];
    TH_OKE(qfmt_meta_array_copy(r, "k.a16", QFMT_META_I16, d16, 3, &e), e);
    cr_assert(d16[0] == -1 && d16[1] == 0 && d16[2] == 300);
    double dd[1];
    TH_OKE(qfmt_meta_array_copy(r, "k.aempty", QFMT_META_F64, dd, 0, &e), e);
    uint32_t et;
    uint64_t cnt;
    TH_OKE(qfmt_meta_get_array(r, "k.aempty", &et, &cnt, &e), e);
    cr_assert_eq(et, QFMT_META_F64);
    cr_assert_eq(cnt, 0u);
    TH_OKE(qfmt_meta_get_array(r, "k.strs", &et, &cnt, &e), e);
    cr_assert_eq(et, QFMT_META_STRING);
    cr_assert_eq(cnt, 3u);
    qfmt_reader_close(r);
    free(b);
}

Test(meta, writer_rejects_bad_values) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/t.qfmt", dir);
    qfmt_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, path, NULL, &e), e);
    uint32_t a[2] = {1, 2};
    cr_assert_eq(qfmt_writer_set_array(w, "x", QFMT_META_STRING, a, 2, &e), QFMT_E_ARG,
                 "set_array of strings");
    cr_assert_eq(qfmt_writer_set_array(w, "x", QFMT_META_ARRAY, a, 2, &e), QFMT_E_ARG,
                 "array of arrays");
    cr_assert_eq(qfmt_writer_set_array(w, "x", 77, a, 2, &e), QFMT_E_ARG, "unknown elem type");
    qfmt_value v;
    memset(&v, 0, sizeof v);
    v.type = QFMT_META_ARRAY;
    cr_assert_eq(qfmt_writer_set_value(w, "x", &v, &e), QFMT_E_ARG, "set_value with ARRAY");
    v.type = 42;
    cr_assert_eq(qfmt_writer_set_value(w, "x", &v, &e), QFMT_E_ARG, "set_value unknown type");
    v.type = QFMT_META_BOOL;
    v.v.u = 2;
    qfmt_status s = qfmt_writer_set_value(w, "x.bool2", &v, &e);
    cr_assert(s == QFMT_E_ARG || s == QFMT_E_RANGE || s == QFMT_OK, "bool 2: %d", (int)s);
    v.type = QFMT_META_U8;
    v.v.u = 256;
    s = qfmt_writer_set_value(w, "x.u8big", &v, &e);
    cr_expect(s == QFMT_E_RANGE || s == QFMT_E_ARG, "u8 of 256 does not fit: %d", (int)s);
    v.type = QFMT_META_I8;
    v.v.i = -129;
    s = qfmt_writer_set_value(w, "x.i8small", &v, &e);
    cr_expect(s == QFMT_E_RANGE || s == QFMT_E_ARG, "i8 of -129 does not fit: %d", (int)s);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
    qfmt_reader *r = th_open_path(path);
    bool bv;
    if (qfmt_meta_get_bool(r, "x.bool2", &bv, &e) == QFMT_OK) cr_assert_eq(bv, true);
    qfmt_error e2;
    cr_assert_eq(qfmt_meta_find(r, "x", &(uint64_t){0}, &e2), QFMT_E_NOT_FOUND);
    qfmt_reader_close(r);
    th_rmtree(dir);
}

static int key_cmp(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t lx = strlen(x), ly = strlen(y), n = lx < ly ? lx : ly;
    int c = memcmp(x, y, n);
    return c ? c : (lx < ly ? -1 : lx > ly);
}

Test(meta, listed_sorted_by_key) {
    const char *keys[] = {"b",    "a",   "ab", "a.b", "a0",  "A",     "z",  "\xC3\xA9",
                          "\x7F", "aa",  "a.", "_",   "Z9",  "a.b.c", "\xE2\x82\xAC", "0",
                          "a b",  "~",   "B"};
    size_t n = sizeof keys / sizeof keys[0];
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/s.qfmt", dir);
    qfmt_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, path, NULL, &e), e);
    for (size_t i = 0; i < n; i++) TH_OKE(qfmt_writer_set_u32(w, keys[i], (uint32_t)i, &e), e);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
    const char **sorted = malloc(n * sizeof *sorted);
    cr_assert_not_null(sorted);
    memcpy(sorted, keys, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, key_cmp);
    qfmt_reader *r = th_open_path(path);
    cr_assert_eq(qfmt_meta_count(r), n);
    for (uint64_t i = 0; i < n; i++) {
        const char *k;
        qfmt_value v;
        TH_OKE(qfmt_meta_get_entry(r, i, &k, &v, &e), e);
        cr_assert_str_eq(k, sorted[i], "entry %" PRIu64, i);
        size_t orig = 0;
        while (strcmp(keys[orig], k)) orig++;
        cr_assert_eq(v.type, QFMT_META_U32);
        cr_assert_eq(v.v.u, orig, "value of '%s'", k);
        uint64_t idx;
        TH_OKE(qfmt_meta_find(r, k, &idx, &e), e);
        cr_assert_eq(idx, i);
    }
    qfmt_reader_close(r);
    free(sorted);
    th_rmtree(dir);
}

/* Patch one entry's Value_Type to 99: the entry is kept, opaque, and every getter says TYPE. */
Test(meta, unknown_value_type_kept_opaque) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/u.qfmt", dir);
    qfmt_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, path, NULL, &e), e);
    TH_OKE(qfmt_writer_set_u32(w, "a.first", 1, &e), e);
    TH_OKE(qfmt_writer_set_u32(w, "m.victim", 0x11223344u, &e), e);
    TH_OKE(qfmt_writer_set_string(w, "z.last", "end", 3, &e), e);
    uint8_t x[4] = {1, 2, 3, 4};
    uint64_t dims[1] = {4};
    qfmt_tensor_desc d = th_desc("t", QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, dims);
    TH_OKE(qfmt_writer_add_tensor(w, &d, x, 4, &e), e);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
    size_t size;
    uint8_t *b = th_read_file(path, &size);
    th_layout L;
    th_parse(b, size, &L);
    const th_metaent *m = th_find_meta(&L, "m.victim");
    cr_assert_eq(m->vtype, QFMT_META_U32);
    th_put32(b + m->vtype_off, 99);
    th_fix_index(b, size);
    th_layout_free(&L);
    th_write_file(path, b, size);

    qfmt_reader *r = th_open_path(path);
    cr_assert_eq(qfmt_meta_count(r), 3u);
    uint64_t idx;
    TH_OKE(qfmt_meta_find(r, "m.victim", &idx, &e), e);
    cr_assert_eq(idx, 1u);
    const char *k;
    qfmt_value v;
    TH_OKE(qfmt_meta_get_entry(r, idx, &k, &v, &e), e);
    cr_assert_str_eq(k, "m.victim");
    cr_assert_eq(v.type, 99u);
    cr_assert_eq(v.v.raw.len, 4u);
    cr_assert_eq(memcmp(v.v.raw.ptr, "\x44\x33\x22\x11", 4), 0, "opaque bytes as stored");
    for (int g = 0; g < NGETTERS; g++) {
        _Alignas(16) uint8_t out[32];
        cr_assert_eq(call_getter(r, g, "m.victim", out, &e), QFMT_E_TYPE, "get_%s on type 99",
                     GNAME[g]);
    }
    cr_assert_eq(qfmt_meta_array_get(r, "m.victim", 0, &v, &e), QFMT_E_TYPE);
    uint32_t dst[4];
    cr_assert_eq(qfmt_meta_array_copy(r, "m.victim", QFMT_META_U32, dst, 4, &e), QFMT_E_TYPE);
    uint32_t u;
    TH_OKE(qfmt_meta_get_u32(r, "a.first", &u, &e), e);
    cr_assert_eq(u, 1u);
    const char *s;
    uint64_t len;
    TH_OKE(qfmt_meta_get_string(r, "z.last", &s, &len, &e), e);
    cr_assert(len == 3 && !memcmp(s, "end", 3));
    TH_OKE(qfmt_reader_verify(r, 1, &e), e);
    qfmt_reader_close(r);
    free(b);
    th_rmtree(dir);
}

/* A hand-built unknown type with a value size no known type has, and an empty one. */
Test(meta, unknown_value_type_any_size) {
    uint8_t val[10] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    uint32_t one = 1;
    th_bmeta m[3] = {
        {"a", 0, 200, val, 10},
        {"b", 0, QFMT_META_U32, &one, 4},
        {"c", 0, 0xFFFFFFFFu, NULL, 0},
    };
    size_t size;
    uint8_t *b = th_build(32, m, 3, NULL, 0, &size);
    qfmt_reader *r = th_open_mem(b, size);
    qfmt_error e;
    const char *k;
    qfmt_value v;
    TH_OKE(qfmt_meta_get_entry(r, 0, &k, &v, &e), e);
    cr_assert_eq(v.type, 200u);
    cr_assert_eq(v.v.raw.len, 10u);
    cr_assert_eq(memcmp(v.v.raw.ptr, val, 10), 0);
    TH_OKE(qfmt_meta_get_entry(r, 2, &k, &v, &e), e);
    cr_assert_eq(v.type, 0xFFFFFFFFu);
    cr_assert_eq(v.v.raw.len, 0u);
    uint32_t u;
    TH_OKE(qfmt_meta_get_u32(r, "b", &u, &e), e);
    cr_assert_eq(u, 1u);
    cr_assert_eq(qfmt_meta_get_u64(r, "a", &(uint64_t){0}, &e), QFMT_E_TYPE);
    qfmt_reader_close(r);
    free(b);
}

/* ---- Malformed metadata is rejected at open (CORRUPT, offset inside the section) ---------- */
static void expect_corrupt_meta(const th_bmeta *m, size_t nm, const char *what) {
    size_t size;
    uint8_t *b = th_build(32, m, nm, NULL, 0, &size);
    qfmt_error e;
    th_open_expect(b, size, QFMT_E_CORRUPT, &e, what);
    if (e.code == QFMT_E_CORRUPT) {
        uint64_t mo = th_get64(b + size - 64);
        cr_expect(e.offset != QFMT_NO_OFFSET && e.offset >= mo && e.offset < size,
                  "%s: err.offset %" PRIu64 " should point into the index (from %" PRIu64 ")",
                  what, e.offset, mo);
    }
    free(b);
}

Test(meta, malformed_entries_rejected) {
    uint8_t two = 2, u8 = 1;
    uint32_t u32 = 5;
    uint8_t u24[3] = {1, 2, 3};
    {
        th_bmeta m[1] = {{"b", 0, QFMT_META_BOOL, &two, 1}};
        expect_corrupt_meta(m, 1, "bool of 2");
    }
    {
        th_bmeta m[1] = {{"u", 0, QFMT_META_U32, u24, 3}};
        expect_corrupt_meta(m, 1, "u32 of 3 bytes");
    }
    {
        th_bmeta m[1] = {{"u", 0, QFMT_META_U8, &u32, 4}};
        expect_corrupt_meta(m, 1, "u8 of 4 bytes");
    }
    {
        th_bmeta m[1] = {{"s", 0, QFMT_META_STRING, "\xC3\x28", 2}};
        expect_corrupt_meta(m, 1, "string of invalid UTF-8");
    }
    {
        th_bmeta m[2] = {{"b", 0, QFMT_META_U8, &u8, 1}, {"a", 0, QFMT_META_U8, &u8, 1}};
        expect_corrupt_meta(m, 2, "keys out of order");
    }
    {
        th_bmeta m[2] = {{"ab", 0, QFMT_META_U8, &u8, 1}, {"a", 0, QFMT_META_U8, &u8, 1}};
        expect_corrupt_meta(m, 2, "longer key before its prefix");
    }
    {
        th_bmeta m[2] = {{"a", 0, QFMT_META_U8, &u8, 1}, {"a", 0, QFMT_META_U8, &u8, 1}};
        expect_corrupt_meta(m, 2, "duplicate keys");
    }
    {
        th_bmeta m[1] = {{"x", 0, QFMT_META_U8, &u8, 1}};
        m[0].key = "";
        m[0].key_len = 0;
        /* th_build takes key_len 0 as strlen: the empty key is written with length 0 */
        expect_corrupt_meta(m, 1, "empty key");
    }
    {
        char k[QFMT_MAX_KEY_LEN + 2];
        memset(k, 'k', sizeof k);
        k[QFMT_MAX_KEY_LEN + 1] = 0;
        th_bmeta m[1] = {{k, 0, QFMT_META_U8, &u8, 1}};
        expect_corrupt_meta(m, 1, "257-byte key");
    }
    {
        th_bmeta m[1] = {{"a\0b", 3, QFMT_META_U8, &u8, 1}};
        expect_corrupt_meta(m, 1, "key with NUL");
    }
    {
        th_bmeta m[1] = {{"\xFF\xFE", 0, QFMT_META_U8, &u8, 1}};
        expect_corrupt_meta(m, 1, "key of invalid UTF-8");
    }
    /* arrays: | Elem_Type u32 | Count u64 | elements | */
    uint8_t arr[64];
    memset(arr, 0, sizeof arr);
    {
        th_put32(arr, QFMT_META_U32);
        th_put64(arr + 4, 3);
        th_bmeta m[1] = {{"a", 0, QFMT_META_ARRAY, arr, 12 + 8}};
        expect_corrupt_meta(m, 1, "u32 array of 3 in 8 bytes");
        m[0].value_size = 12 + 16;
        expect_corrupt_meta(m, 1, "u32 array of 3 in 16 bytes");
    }
    {
        th_put32(arr, QFMT_META_U64);
        th_put64(arr + 4, 1ull << 61); /* 2^61 * 8 overflows 64 bits */
        th_bmeta m[1] = {{"a", 0, QFMT_META_ARRAY, arr, 12}};
        expect_corrupt_meta(m, 1, "u64 array whose byte size overflows");
        th_put64(arr + 4, UINT64_MAX);
        expect_corrupt_meta(m, 1, "u64 array of 2^64-1 elements");
    }
    {
        th_put32(arr, QFMT_META_ARRAY);
        th_put64(arr + 4, 0);
        th_bmeta m[1] = {{"a", 0, QFMT_META_ARRAY, arr, 12}};
        expect_corrupt_meta(m, 1, "array of arrays");
    }
    {
        th_put32(arr, QFMT_META_ARRAY); /* too short to hold the array header */
        th_bmeta m[1] = {{"a", 0, QFMT_META_ARRAY, arr, 11}};
        expect_corrupt_meta(m, 1, "array value shorter than its header");
    }
    {
        /* string array: 2 strings "ab", "c" = 12 + (8+2) + (8+1) = 31 bytes */
        th_put32(arr, QFMT_META_STRING);
        th_put64(arr + 4, 2);
        th_put64(arr + 12, 2);
        memcpy(arr + 20, "ab", 2);
        th_put64(arr + 22, 1);
        arr[30] = 'c';
        th_bmeta m[1] = {{"a", 0, QFMT_META_ARRAY, arr, 31}};
        size_t size;
        uint8_t *b = th_build(32, m, 1, NULL, 0, &size);
        qfmt_reader *r = th_open_mem(b, size); /* the well-formed one opens */
        qfmt_value v;
        qfmt_error e;
        TH_OKE(qfmt_meta_array_get(r, "a", 1, &v, &e), e);
        cr_assert(v.v.str.len == 1 && v.v.str.ptr[0] == 'c');
        qfmt_reader_close(r);
        free(b);
        m[0].value_size = 32;
        expect_corrupt_meta(m, 1, "string array with a trailing byte");
        m[0].value_size = 30;
        expect_corrupt_meta(m, 1, "string array one byte short");
        th_put64(arr + 22, UINT64_MAX);
        m[0].value_size = 31;
        expect_corrupt_meta(m, 1, "string array element of length 2^64-1");
        th_put64(arr + 22, 1);
        th_put64(arr + 4, 3);
        expect_corrupt_meta(m, 1, "string array with a count larger than its strings");
        th_put64(arr + 4, 2);
        arr[30] = (char)0xFF;
        expect_corrupt_meta(m, 1, "string array element of invalid UTF-8");
    }
    {
        th_put32(arr, QFMT_META_BOOL);
        th_put64(arr + 4, 2);
        arr[12] = 1;
        arr[13] = 5;
        th_bmeta m[1] = {{"a", 0, QFMT_META_ARRAY, arr, 14}};
        expect_corrupt_meta(m, 1, "bool array holding 5");
    }
}

/* The metadata section and its entry count must agree. */
Test(meta, count_mismatch_rejected) {
    uint8_t u8 = 1;
    th_bmeta m[2] = {{"a", 0, QFMT_META_U8, &u8, 1}, {"b", 0, QFMT_META_U8, &u8, 1}};
    size_t size;
    uint8_t *b = th_build(32, m, 2, NULL, 0, &size);
    qfmt_error e;
    th_put64(b + size - 64 + 24, 1);
    th_fix_index(b, size);
    th_open_expect(b, size, QFMT_E_CORRUPT, &e, "2 entries, count 1");
    th_put64(b + size - 64 + 24, 3);
    th_fix_index(b, size);
    th_open_expect(b, size, QFMT_E_CORRUPT, &e, "2 entries, count 3");
    th_put64(b + size - 64 + 24, 1ull << 32);
    th_fix_index(b, size);
    th_open_expect(b, size, QFMT_E_CORRUPT, &e, "2 entries, count 2^32");
    th_put64(b + size - 64 + 24, UINT64_MAX);
    th_fix_index(b, size);
    th_open_expect(b, size, QFMT_E_CORRUPT, &e, "2 entries, count 2^64-1");
    free(b);
}
