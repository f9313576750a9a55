/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader and writer (libqfmt/src/import/gguf.c,
 * libqfmt/src/export/gguf.c): qfmt_gguf_open_memory on arbitrary bytes, then every accessor on
 * whatever opens, and what opened written again by the writer and read back.
 *
 * The reader promises never to read outside the file's bytes: libFuzzer (and the regression
 * driver) pass an exactly-sized heap copy, so ASan catches any read past its end, and every
 * view is read in full. The checks below abort() when the API contradicts itself or the
 * documentation (qfmt.h, "GGUF files"):
 *  - a failure: *out NULL, status = err.code, a message;
 *  - kv pairs: key NUL-terminated, of key_len bytes of UTF-8 without NUL, found at its index;
 *    value bytes inside the input; each typed getter by the documented rules (get_u64 of a
 *    negative value is QFMT_E_RANGE, of a string QFMT_E_TYPE, ...) agreeing with the raw bytes;
 *    arrays walked (the first 1000 elements; strings back to back inside the value), one past
 *    the end refused with QFMT_E_RANGE; bools 0 or 1; no nested array;
 *  - tensors: name found at its index, ndim <= 4, ne past ndim 1, nelements their product; a
 *    known type: size = qfmt_type_size, data = input + offset, offset aligned, after the data
 *    offset, inside the input, at the end of the previous tensor padded (ggml's layout); an
 *    unknown one: flagged, size 0, data NULL; tensors of up to 2^16 elements decoded to f32 by
 *    qfmt_dequantize when a row decoder exists for their type;
 *  - the writer (inputs up to 1 MiB): every kv pair the reader gives is accepted as it is, and
 *    every tensor the writer can write (a known type, 1..63-byte name, ndim >= 1); the file it
 *    commits reads back with the same kv pairs (keys, types, counts, bytes) and those tensors
 *    (names, types, dims, bytes). It writes in a scratch directory of its own
 *    (/dev/shm/qfmt-fuzz-gguf-<pid>/, fuzz_scratch.h) with a no-op fsync; the file is removed
 *    after each input.
 *
 * Seeds (fuzz/corpus/gguf/): the valid and hostile files tests/test_gguf.c builds (one per class
 * of the GGUF CVEs) and shrunk copies of the two llama.cpp files of tests/data/gguf/, written by
 * that test with QFMT_GGUF_SEED_DIR set (its header gives the command); plus the inputs of fixed
 * bugs (regress_*). Dictionary: fuzz/dict/gguf.dict.
 *
 * Build: with clang and -DQFMT_FUZZ=ON (libFuzzer), or with any compiler linked with
 * regression_driver.c to replay a corpus. See fuzz/README.md.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_scratch.h" /* QFMT_STATIC_LINKING_ONLY, qfmt.h, fuzz_check.h, scratch_dir, io */

enum {
    MAX_ARRAY_ELEMS = 1000,      /* array elements walked per kv */
    MAX_DECODE_ELEMS = 1 << 16,  /* dequantize tensors up to this many elements */
    MAX_ROUNDTRIP = 1 << 20,     /* inputs written again up to this size */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rd(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
}

static unsigned width(uint32_t type)
{
    static const unsigned w[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < 13 ? w[type] : 0;
}
static bool is_unsigned(uint32_t t)
{
    return t == QFMT_GGUF_UINT8 || t == QFMT_GGUF_UINT16 || t == QFMT_GGUF_UINT32 || t == QFMT_GGUF_UINT64;
}
static bool is_signed(uint32_t t)
{
    return t == QFMT_GGUF_INT8 || t == QFMT_GGUF_INT16 || t == QFMT_GGUF_INT32 || t == QFMT_GGUF_INT64;
}
static bool is_float(uint32_t t) { return t == QFMT_GGUF_FLOAT32 || t == QFMT_GGUF_FLOAT64; }

static int64_t sext(uint64_t v, unsigned bytes)
{
    unsigned bits = 8 * bytes;
    if (bits == 64) return (int64_t)v;
    uint64_t m = 1ull << (bits - 1);
    return (int64_t)((v ^ m) - m);
}

/* One value at p of type t against the getters' rules: u, i, f, b are what array_* or get_*
 * returned (with their statuses). */
static void check_value(uint32_t t, const uint8_t *p, qfmt_status su, uint64_t u, qfmt_status si,
                        int64_t i, qfmt_status sf, double f, qfmt_status sb, bool b)
{
    unsigned w = width(t);
    uint64_t raw = rd(p, w);
    if (is_unsigned(t)) {
        CHECK(su == QFMT_OK && u == raw);
        CHECK(raw > (uint64_t)INT64_MAX ? si == QFMT_E_RANGE : (si == QFMT_OK && i == (int64_t)raw));
        CHECK(sf == QFMT_E_TYPE && sb == QFMT_E_TYPE);
    } else if (is_signed(t)) {
        int64_t v = sext(raw, w);
        CHECK(si == QFMT_OK && i == v);
        CHECK(v < 0 ? su == QFMT_E_RANGE : (su == QFMT_OK && u == (uint64_t)v));
        CHECK(sf == QFMT_E_TYPE && sb == QFMT_E_TYPE);
    } else if (is_float(t)) {
        CHECK(sf == QFMT_OK && su == QFMT_E_TYPE && si == QFMT_E_TYPE && sb == QFMT_E_TYPE);
        double want;
        if (t == QFMT_GGUF_FLOAT32) {
            uint32_t bits = (uint32_t)raw;
            float x;
            memcpy(&x, &bits, sizeof x);
            want = x;
        } else {
            memcpy(&want, &raw, sizeof want);
        }
        CHECK((isnan(want) && isnan(f)) || memcmp(&want, &f, sizeof f) == 0);
    } else {
        CHECK(t == QFMT_GGUF_BOOL && raw <= 1);
        CHECK(sb == QFMT_OK && b == (raw == 1));
        CHECK(su == QFMT_E_TYPE && si == QFMT_E_TYPE && sf == QFMT_E_TYPE);
    }
}

/* A getter's status, its error checked when it failed (and err.code OK when it did not). */
static qfmt_status checked(qfmt_status s, const qfmt_error *e)
{
    if (s != QFMT_OK) check_error(s, e);
    else CHECK(e->code == QFMT_OK);
    return s;
}

static void check_kv(const qfmt_gguf *g, uint64_t index, const uint8_t *in, size_t size)
{
    qfmt_gguf_kv kv;
    qfmt_error e;
    CHECK(qfmt_gguf_kv_get(g, index, &kv, &e) == QFMT_OK);
    CHECK(strlen(kv.key) == kv.key_len && kv.key_len >= 1 && kv.key_len <= QFMT_GGUF_MAX_KEY_LEN);
    CHECK(qfmt_utf8_valid((const uint8_t *)kv.key, kv.key_len, false));
    for (int r = 0; r < 4; r++) CHECK(kv.reserved[r] == 0);
    uint64_t found = UINT64_MAX;
    CHECK(qfmt_gguf_find_key(g, kv.key, &found, &e) == QFMT_OK && found == index);
    CHECK(kv.data >= in && kv.offset == (uint64_t)(kv.data - in));
    CHECK(kv.offset <= size && kv.size <= size - kv.offset);
    touch(kv.data, kv.size);
    CHECK(kv.type <= QFMT_GGUF_FLOAT64);

    uint64_t u = 0, count = 0;
    int64_t i = 0;
    double f = 0;
    bool b = false;
    const char *p = NULL;
    size_t len = 0;
    uint32_t et = 0;
    qfmt_status su = checked(qfmt_gguf_get_u64(g, kv.key, &u, &e), &e);
    qfmt_status si = checked(qfmt_gguf_get_i64(g, kv.key, &i, &e), &e);
    qfmt_status sf = checked(qfmt_gguf_get_f64(g, kv.key, &f, &e), &e);
    qfmt_status sb = checked(qfmt_gguf_get_bool(g, kv.key, &b, &e), &e);
    qfmt_status ss = checked(qfmt_gguf_get_str(g, kv.key, &p, &len, &e), &e);
    qfmt_status sa = checked(qfmt_gguf_get_array(g, kv.key, &et, &count, &e), &e);

    if (kv.type == QFMT_GGUF_STRING) {
        CHECK(su == QFMT_E_TYPE && si == QFMT_E_TYPE && sf == QFMT_E_TYPE && sb == QFMT_E_TYPE);
        CHECK(sa == QFMT_E_TYPE);
        CHECK(ss == QFMT_OK && (const uint8_t *)p == kv.data && len == kv.count && kv.size == kv.count);
        return;
    }
    CHECK(ss == QFMT_E_TYPE);
    if (kv.type != QFMT_GGUF_ARRAY) {
        CHECK(sa == QFMT_E_TYPE && kv.elem_type == kv.type && kv.count == 1 && kv.size == width(kv.type));
        check_value(kv.type, kv.data, su, u, si, i, sf, f, sb, b);
        return;
    }
    CHECK(su == QFMT_E_TYPE && si == QFMT_E_TYPE && sf == QFMT_E_TYPE && sb == QFMT_E_TYPE);
    CHECK(sa == QFMT_OK && et == kv.elem_type && count == kv.count);
    CHECK(et != QFMT_GGUF_ARRAY && et <= QFMT_GGUF_FLOAT64);
    uint64_t n = count < MAX_ARRAY_ELEMS ? count : MAX_ARRAY_ELEMS;
    qfmt_status s;
    if (et == QFMT_GGUF_STRING) {
        CHECK(count <= kv.size / 8);
        const uint8_t *at = kv.data;
        for (uint64_t k = 0; k < n; k++) {
            CHECK(qfmt_gguf_array_str(g, kv.key, k, &p, &len, &e) == QFMT_OK);
            CHECK((const uint8_t *)p == at + 8 && rd(at, 8) == len); /* back to back */
            CHECK(len <= (uint64_t)(kv.data + kv.size - (const uint8_t *)p));
            touch(p, len);
            at = (const uint8_t *)p + len;
            CHECK(qfmt_gguf_array_u64(g, kv.key, k, &u, &e) == QFMT_E_TYPE);
        }
        if (n == count) CHECK(at == kv.data + kv.size);
        s = qfmt_gguf_array_str(g, kv.key, count, &p, &len, &e);
    } else {
        CHECK(kv.size == count * width(et));
        for (uint64_t k = 0; k < n; k++) {
            su = checked(qfmt_gguf_array_u64(g, kv.key, k, &u, &e), &e);
            si = checked(qfmt_gguf_array_i64(g, kv.key, k, &i, &e), &e);
            sf = checked(qfmt_gguf_array_f64(g, kv.key, k, &f, &e), &e);
            sb = checked(qfmt_gguf_array_bool(g, kv.key, k, &b, &e), &e);
            check_value(et, kv.data + k * width(et), su, u, si, i, sf, f, sb, b);
        }
        CHECK(qfmt_gguf_array_str(g, kv.key, 0, &p, &len, &e) == QFMT_E_TYPE);
        s = qfmt_gguf_array_u64(g, kv.key, count, &u, &e);
    }
    CHECK(s == QFMT_E_RANGE);
    check_error(s, &e);
}

static void check_tensors(const qfmt_gguf *g, const uint8_t *in, size_t size)
{
    qfmt_error e;
    uint32_t align = qfmt_gguf_alignment(g);
    uint64_t expect = qfmt_gguf_data_offset(g), prev = expect;
    bool prev_known = true;
    for (uint64_t i = 0; i < qfmt_gguf_tensor_count(g); i++) {
        qfmt_gguf_tensor t;
        CHECK(qfmt_gguf_tensor_get(g, i, &t, &e) == QFMT_OK);
        CHECK(strlen(t.name) == t.name_len && t.name_len >= 1 && t.name_len <= QFMT_MAX_NAME_LEN);
        CHECK(qfmt_utf8_valid((const uint8_t *)t.name, t.name_len, false));
        uint64_t found = UINT64_MAX;
        CHECK(qfmt_gguf_find_tensor(g, t.name, &found, &e) == QFMT_OK && found == i);
        CHECK(t.ndim <= QFMT_GGUF_MAX_DIMS && t.type < 256);
        uint64_t prod = 1;
        bool zero = false;
        for (uint32_t d = 0; d < QFMT_GGUF_MAX_DIMS; d++) {
            CHECK(d < t.ndim || t.ne[d] == 1);
            CHECK(t.ne[d] <= (uint64_t)INT64_MAX);
            if (t.ne[d] == 0) zero = true;
            else prod *= t.ne[d]; /* may wrap only beside a zero dimension */
        }
        CHECK(t.nelements == (zero ? 0 : prod));
        CHECK(t.offset >= qfmt_gguf_data_offset(g) && t.offset <= size);
        CHECK((t.offset - qfmt_gguf_data_offset(g)) % align == 0);
        if (prev_known) CHECK(t.offset == expect);
        else CHECK(t.offset >= prev);
        const qfmt_type_traits *tr = qfmt_type_get_traits(t.type);
        if (!tr) {
            CHECK(t.flags == QFMT_GGUF_TENSOR_UNKNOWN_TYPE && t.size == 0 && t.data == NULL);
        } else {
            uint64_t bytes;
            CHECK(t.flags == 0 && t.ne[0] % tr->block_elems == 0);
            CHECK(qfmt_type_size(t.type, t.nelements, &bytes) == QFMT_OK && bytes == t.size);
            CHECK(t.size <= size - t.offset && (const uint8_t *)t.data == in + t.offset);
            touch(t.data, t.size);
            expect = t.offset + t.size;
            expect += (align - (expect - qfmt_gguf_data_offset(g)) % align) % align;
            if (t.nelements > 0 && t.nelements <= MAX_DECODE_ELEMS && qfmt_row_decoder(t.type)) {
                float *out = malloc((size_t)t.nelements * sizeof *out);
                if (out) {
                    qfmt_status s = qfmt_dequantize(QFMT_TYPE_F32, out, t.nelements * sizeof *out,
                                                    t.type, t.data, t.nelements / t.ne[0], t.ne[0],
                                                    NULL, &e);
                    CHECK(s == QFMT_OK);
                    touch(out, t.nelements * sizeof *out);
                    free(out);
                }
            }
        }
        prev = t.offset;
        prev_known = tr != NULL;
    }
    qfmt_gguf_tensor t;
    qfmt_status s = qfmt_gguf_tensor_get(g, qfmt_gguf_tensor_count(g), &t, &e);
    CHECK(s == QFMT_E_RANGE);
    check_error(s, &e);
    uint64_t idx;
    s = qfmt_gguf_find_tensor(g, "no such tensor \x01", &idx, &e);
    if (s != QFMT_OK) {
        CHECK(s == QFMT_E_NOT_FOUND);
        check_error(s, &e);
    }
}

/* Whether the writer takes this tensor (qfmt.h: add_tensor). */
static bool writable(const qfmt_gguf_tensor *t)
{
    return !t->flags && t->ndim >= 1 && t->name_len <= QFMT_GGUF_MAX_NAME_LEN;
}

/* Everything that opened, written again and read back. */
static void roundtrip(const qfmt_gguf *g)
{
    char path[400];
    snprintf(path, sizeof path, "%s/out.gguf", scratch_dir("gguf"));
    qfmt_gguf_writer *w = NULL;
    qfmt_error e;
    CHECK(qfmt_gguf_writer_create_io(&w, path, NULL, &io, &e) == QFMT_OK);
    uint64_t nkv = qfmt_gguf_kv_count(g);
    for (uint64_t i = 0; i < nkv; i++) {
        qfmt_gguf_kv kv;
        CHECK(qfmt_gguf_kv_get(g, i, &kv, &e) == QFMT_OK);
        qfmt_status s;
        if (kv.type == QFMT_GGUF_STRING) {
            s = qfmt_gguf_writer_set_str(w, kv.key, (const char *)kv.data, (size_t)kv.count, &e);
        } else if (kv.type == QFMT_GGUF_ARRAY && kv.elem_type == QFMT_GGUF_STRING) {
            const char **strs = malloc((size_t)kv.count * sizeof *strs + 1);
            size_t *lens = malloc((size_t)kv.count * sizeof *lens + 1);
            CHECK(strs && lens);
            for (uint64_t k = 0; k < kv.count; k++)
                CHECK(qfmt_gguf_array_str(g, kv.key, k, &strs[k], &lens[k], &e) == QFMT_OK);
            s = qfmt_gguf_writer_set_str_array(w, kv.key, strs, lens, kv.count, &e);
            free(strs);
            free(lens);
        } else if (kv.type == QFMT_GGUF_ARRAY) {
            /* native order is little-endian here, and bools are 0 or 1 */
            s = qfmt_gguf_writer_set_array(w, kv.key, kv.elem_type, kv.data, kv.count, &e);
        } else {
            s = qfmt_gguf_writer_set_value(w, kv.key, kv.type, kv.data, &e);
        }
        CHECK(s == QFMT_OK);
    }
    uint64_t nt = qfmt_gguf_tensor_count(g), kept = 0;
    for (uint64_t i = 0; i < nt; i++) {
        qfmt_gguf_tensor t;
        CHECK(qfmt_gguf_tensor_get(g, i, &t, &e) == QFMT_OK);
        qfmt_status s = qfmt_gguf_writer_add_tensor(w, t.name, t.type, t.ndim, t.ne, t.data, t.size, &e);
        CHECK(writable(&t) ? s == QFMT_OK : s != QFMT_OK);
        kept += s == QFMT_OK;
    }
    CHECK(qfmt_gguf_writer_commit(w, &e) == QFMT_OK);
    qfmt_gguf_writer_free(w);

    qfmt_gguf *h = NULL;
    CHECK(qfmt_gguf_open(&h, path, &e) == QFMT_OK);
    CHECK(qfmt_gguf_version(h) == 3 && qfmt_gguf_alignment(h) == qfmt_gguf_alignment(g));
    CHECK(qfmt_gguf_kv_count(h) == nkv && qfmt_gguf_tensor_count(h) == kept);
    for (uint64_t i = 0; i < nkv; i++) {
        qfmt_gguf_kv a, b;
        CHECK(qfmt_gguf_kv_get(g, i, &a, &e) == QFMT_OK && qfmt_gguf_kv_get(h, i, &b, &e) == QFMT_OK);
        CHECK(strcmp(a.key, b.key) == 0 && a.type == b.type && a.elem_type == b.elem_type);
        CHECK(a.count == b.count && a.size == b.size && memcmp(a.data, b.data, (size_t)a.size) == 0);
    }
    uint64_t j = 0;
    for (uint64_t i = 0; i < nt; i++) {
        qfmt_gguf_tensor a, b;
        CHECK(qfmt_gguf_tensor_get(g, i, &a, &e) == QFMT_OK);
        if (!writable(&a)) continue;
        CHECK(qfmt_gguf_tensor_get(h, j++, &b, &e) == QFMT_OK);
        CHECK(strcmp(a.name, b.name) == 0 && a.type == b.type && a.ndim == b.ndim);
        CHECK(memcmp(a.ne, b.ne, sizeof a.ne) == 0 && a.size == b.size);
        CHECK(memcmp(a.data, b.data, (size_t)a.size) == 0);
    }
    qfmt_gguf_close(h);
    unlink(path);
    CHECK(count_files(scratch_dir("gguf")) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char not_null;
    qfmt_gguf *g = (qfmt_gguf *)(void *)&not_null; /* open must set NULL on failure */
    qfmt_error e;
    qfmt_status s = qfmt_gguf_open_memory(&g, data, size, &e);
    if (s != QFMT_OK) {
        CHECK(g == NULL);
        check_error(s, &e);
        return 0;
    }
    CHECK(g != NULL && size >= 24);
    CHECK(qfmt_gguf_file_size(g) == size);
    CHECK(qfmt_gguf_version(g) == 2 || qfmt_gguf_version(g) == 3);
    uint32_t align = qfmt_gguf_alignment(g);
    CHECK(align >= 1 && align <= QFMT_GGUF_MAX_ALIGNMENT && (align & (align - 1)) == 0);
    CHECK(qfmt_gguf_data_offset(g) >= 24 && qfmt_gguf_data_offset(g) <= size);
    CHECK(qfmt_gguf_kv_count(g) == rd(data + 16, 8) && qfmt_gguf_tensor_count(g) == rd(data + 8, 8));
    for (uint64_t i = 0; i < qfmt_gguf_kv_count(g); i++) check_kv(g, i, data, size);
    qfmt_gguf_kv kv;
    s = qfmt_gguf_kv_get(g, qfmt_gguf_kv_count(g), &kv, &e);
    CHECK(s == QFMT_E_RANGE);
    check_error(s, &e);
    uint64_t idx;
    s = qfmt_gguf_find_key(g, "no such key \x01", &idx, &e);
    if (s != QFMT_OK) {
        CHECK(s == QFMT_E_NOT_FOUND);
        check_error(s, &e);
    }
    check_tensors(g, data, size);
    if (size <= MAX_ROUNDTRIP) roundtrip(g);
    qfmt_gguf_close(g);
    return 0;
}
