/*
 * fuzz_reader.c - libFuzzer target for the reader: qfmt_reader_open_memory on arbitrary bytes,
 * then every accessor on whatever opens (and qfmt_dequantize on every tensor it can decode).
 *
 * The reader promises never to read outside the file's bytes and never to crash, whatever the
 * input. libFuzzer (and the regression driver) hand us an exactly-sized heap copy, so ASan
 * catches any read past its end; every view is read in full for the same reason. The checks
 * below call abort() when the API contradicts itself (a found index that is not the entry's,
 * a view that disagrees with a read of the same tensor, a status that differs from err.code):
 * those are bugs too, even without a memory error.
 *
 * Checksums would stop almost every mutation at open (a random change fails the header or
 * index XXH3 long before it reaches the parsers), so each input runs three times: as given;
 * with the header and index checksums recomputed; and, if that opens, with every tensor's
 * checksum recomputed too (so that verify and checked reads pass and go on to decode).
 *
 * Build: with clang and -DQFMT_FUZZ=ON (libFuzzer), or with any compiler linked with
 * regression_driver.c to replay a corpus. See fuzz/README.md.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt.h"
#include "fuzz_check.h"
#include "fuzz_checksums.h"

enum {
    MAX_ARRAY_ELEMS = 1000,             /* array elements walked per entry */
    MAX_READ_BYTES = 64 * 1024 * 1024,  /* decode tensors up to this raw size */
    BASE_ALIGNMENT = 4096,              /* the input is copied to such an address */
    MAX_DECODE_ELEMS = 1 << 20,         /* dequantize tensors up to this many elements */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void check_value(const qfmt_value *v)
{
    CHECK(qfmt_meta_type_name(v->type) != NULL);
    if (v->type == QFMT_META_STRING)
        touch(v->v.str.ptr, v->v.str.len);
    else if (v->type == QFMT_META_BOOL)
        CHECK(v->v.u <= 1);
    else if (v->type > QFMT_META_ARRAY)
        touch(v->v.raw.ptr, v->v.raw.len);
}

/* The typed getter of the entry's type agrees with get_entry; another type gives TYPE. */
static void check_typed_getters(const qfmt_reader *r, const char *key, const qfmt_value *v)
{
    qfmt_error e;
    qfmt_status s;
    union {
        uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
        uint64_t u64; int64_t i64; float f32; double f64; bool b;
    } out;
    const char *str;
    uint64_t len, count;
    uint32_t elem;

    switch (v->type) {
    case QFMT_META_U8: CHECK(qfmt_meta_get_u8(r, key, &out.u8, &e) == QFMT_OK && out.u8 == v->v.u); break;
    case QFMT_META_I8: CHECK(qfmt_meta_get_i8(r, key, &out.i8, &e) == QFMT_OK && out.i8 == v->v.i); break;
    case QFMT_META_U16: CHECK(qfmt_meta_get_u16(r, key, &out.u16, &e) == QFMT_OK && out.u16 == v->v.u); break;
    case QFMT_META_I16: CHECK(qfmt_meta_get_i16(r, key, &out.i16, &e) == QFMT_OK && out.i16 == v->v.i); break;
    case QFMT_META_U32: CHECK(qfmt_meta_get_u32(r, key, &out.u32, &e) == QFMT_OK && out.u32 == v->v.u); break;
    case QFMT_META_I32: CHECK(qfmt_meta_get_i32(r, key, &out.i32, &e) == QFMT_OK && out.i32 == v->v.i); break;
    case QFMT_META_U64: CHECK(qfmt_meta_get_u64(r, key, &out.u64, &e) == QFMT_OK && out.u64 == v->v.u); break;
    case QFMT_META_I64: CHECK(qfmt_meta_get_i64(r, key, &out.i64, &e) == QFMT_OK && out.i64 == v->v.i); break;
    case QFMT_META_F32: CHECK(qfmt_meta_get_f32(r, key, &out.f32, &e) == QFMT_OK); break;
    case QFMT_META_F64: CHECK(qfmt_meta_get_f64(r, key, &out.f64, &e) == QFMT_OK); break;
    case QFMT_META_BOOL: CHECK(qfmt_meta_get_bool(r, key, &out.b, &e) == QFMT_OK && out.b == (v->v.u != 0)); break;
    case QFMT_META_STRING:
        CHECK(qfmt_meta_get_string(r, key, &str, &len, &e) == QFMT_OK);
        CHECK(str == v->v.str.ptr && len == v->v.str.len);
        break;
    case QFMT_META_ARRAY:
        CHECK(qfmt_meta_get_array(r, key, &elem, &count, &e) == QFMT_OK);
        CHECK(elem == v->v.arr.elem_type && count == v->v.arr.count);
        break;
    default: break;
    }
    /* a getter of another type never reinterprets */
    if (v->type != QFMT_META_U32) {
        s = qfmt_meta_get_u32(r, key, &out.u32, &e);
        CHECK(s == QFMT_E_TYPE);
        check_error(s, &e);
    }
    if (v->type != QFMT_META_STRING) {
        s = qfmt_meta_get_string(r, key, &str, &len, &e);
        CHECK(s == QFMT_E_TYPE);
    }
    if (v->type != QFMT_META_ARRAY) {
        s = qfmt_meta_get_array(r, key, &elem, &count, &e);
        CHECK(s == QFMT_E_TYPE);
        qfmt_value first;
        s = qfmt_meta_array_get(r, key, 0, &first, &e);
        CHECK(s != QFMT_OK);
    }
}

static size_t meta_width(uint32_t t)
{
    static const size_t w[] = {1, 1, 2, 2, 4, 4, 8, 8, 4, 8, 1};
    return t < sizeof w / sizeof w[0] ? w[t] : 0;
}

static void walk_array(const qfmt_reader *r, const char *key, const qfmt_value *v)
{
    qfmt_error e;
    qfmt_value elem;
    qfmt_status s;
    uint64_t count = v->v.arr.count;
    uint64_t n = count < MAX_ARRAY_ELEMS ? count : MAX_ARRAY_ELEMS;
    if (v->v.arr.elem_type > QFMT_META_STRING) { /* an element type this reader cannot know */
        for (uint64_t i = 0; i < n; i++)
            if ((s = qfmt_meta_array_get(r, key, i, &elem, &e)) != QFMT_OK)
                check_error(s, &e);
            else
                check_value(&elem);
        return;
    }
    for (uint64_t i = 0; i < n; i++) {
        s = qfmt_meta_array_get(r, key, i, &elem, &e);
        CHECK(s == QFMT_OK);
        CHECK(elem.type == v->v.arr.elem_type);
        check_value(&elem);
    }
    /* the last element (strings: O(1) access is promised) and one past the end */
    if (count > 0)
        CHECK(qfmt_meta_array_get(r, key, count - 1, &elem, &e) == QFMT_OK);
    s = qfmt_meta_array_get(r, key, count, &elem, &e);
    CHECK(s == QFMT_E_RANGE);
    check_error(s, &e);

    /* copy a small scalar array whole, and check a wrong count is refused */
    size_t width = meta_width(v->v.arr.elem_type);
    if (width > 0 && v->v.arr.elem_type != QFMT_META_STRING && count <= MAX_ARRAY_ELEMS) {
        void *buf = malloc(count ? (size_t)count * width : 1);
        if (buf != NULL) {
            CHECK(qfmt_meta_array_copy(r, key, v->v.arr.elem_type, buf, count, &e) == QFMT_OK);
            touch(buf, count * width);
            if (count > 0) {
                s = qfmt_meta_array_copy(r, key, v->v.arr.elem_type, buf, count - 1, &e);
                CHECK(s == QFMT_E_RANGE);
            }
            uint32_t other = v->v.arr.elem_type == QFMT_META_U8 ? QFMT_META_I8 : QFMT_META_U8;
            s = qfmt_meta_array_copy(r, key, other, buf, count, &e);
            CHECK(s == QFMT_E_TYPE);
            free(buf);
        }
    }
}

static void walk_metadata(const qfmt_reader *r)
{
    qfmt_error e;
    uint64_t n = qfmt_meta_count(r);
    const char *prev = NULL;
    for (uint64_t i = 0; i < n; i++) {
        const char *key;
        qfmt_value v;
        uint64_t found;
        CHECK(qfmt_meta_get_entry(r, i, &key, &v, &e) == QFMT_OK);
        size_t klen = strlen(key);
        CHECK(klen >= 1 && klen <= QFMT_MAX_KEY_LEN);
        if (prev != NULL)
            CHECK(strcmp(prev, key) < 0); /* sorted, unique */
        prev = key;
        CHECK(qfmt_meta_find(r, key, &found, &e) == QFMT_OK && found == i);
        check_value(&v);
        check_typed_getters(r, key, &v);
        if (v.type == QFMT_META_ARRAY)
            walk_array(r, key, &v);
    }
    const char *key;
    qfmt_value v;
    qfmt_status s = qfmt_meta_get_entry(r, n, &key, &v, &e);
    CHECK(s == QFMT_E_RANGE);
    check_error(s, &e);
    uint64_t idx;
    s = qfmt_meta_find(r, "no such key \x01", &idx, &e);
    CHECK(s == QFMT_E_NOT_FOUND || (s == QFMT_OK && idx < n)); /* a fuzzed file may hold it */
}

/* Decodes a read tensor to f32 with qfmt_dequantize: arbitrary scale bytes (NaN, Inf,
 * subnormal fp16) must decode without a fault. */
static void decode(const qfmt_tensor_info *ti, const qfmt_type_traits *tt, const void *data)
{
    if (tt == NULL || ti->nelements == 0 || ti->nelements > MAX_DECODE_ELEMS)
        return;
    bool decodable = tt->block_elems > 1 || ti->type == QFMT_TYPE_F32 ||
                     ti->type == QFMT_TYPE_F16 || ti->type == QFMT_TYPE_BF16;
    if (!decodable)
        return;
    uint64_t row_len = ti->ndim > 0 ? ti->dims[ti->ndim - 1] : 1;
    uint64_t nrows = ti->nelements / row_len;
    float *out = malloc((size_t)ti->nelements * sizeof(float));
    if (out == NULL)
        return;
    qfmt_error e;
    qfmt_status s = qfmt_dequantize(QFMT_TYPE_F32, out, ti->nelements * sizeof(float), ti->type,
                                    data, nrows, row_len, NULL, &e);
    if (s == QFMT_OK)
        touch(out, ti->nelements * sizeof(float));
    else
        check_error(s, &e);
    free(out);
}

static void walk_tensor(const qfmt_reader *r, const qfmt_file_info *fi, uint64_t i)
{
    qfmt_error e;
    qfmt_tensor_info ti;
    uint64_t found;
    CHECK(qfmt_tensor_get_info(r, i, &ti, &e) == QFMT_OK);
    size_t nlen = strlen(ti.name);
    CHECK(nlen >= 1 && nlen <= QFMT_MAX_NAME_LEN);
    CHECK(qfmt_tensor_find(r, ti.name, &found, &e) == QFMT_OK && found == i);
    CHECK(ti.ndim <= QFMT_MAX_DIMS);
    CHECK(ti.offset <= fi->file_size && ti.stored_size <= fi->file_size - ti.offset);
    CHECK(ti.offset >= fi->data_offset);
    if (ti.stored_size > 0)
        CHECK(ti.offset % fi->alignment == 0);
    uint64_t prod = 1;
    for (uint32_t d = 0; d < ti.ndim; d++)
        prod *= ti.dims[d]; /* bounded by QFMT_MAX_ELEMENTS if the reader checked it */
    CHECK(prod == ti.nelements && ti.nelements <= QFMT_MAX_ELEMENTS);

    const qfmt_type_traits *tt = qfmt_type_get_traits(ti.type);
    uint64_t size;
    if (tt != NULL && qfmt_type_size(ti.type, ti.nelements, &size) == QFMT_OK)
        CHECK(size == ti.raw_size);

    const void *view = NULL;
    uint64_t view_size = 0;
    qfmt_status vs = qfmt_tensor_view(r, i, &view, &view_size, &e);
    if (vs == QFMT_OK) {
        CHECK(ti.codec == QFMT_CODEC_NONE && tt != NULL);
        CHECK(view_size == ti.raw_size && view_size == ti.stored_size);
        if (fi->alignment <= BASE_ALIGNMENT)
            CHECK(view_size == 0 || (uintptr_t)view % fi->alignment == 0);
        touch(view, view_size);
    } else {
        check_error(vs, &e);
    }

    qfmt_status ts = qfmt_tensor_verify(r, i, &e);
    if (ts != QFMT_OK)
        check_error(ts, &e);

    if (ti.raw_size <= MAX_READ_BYTES) {
        void *buf = malloc(ti.raw_size ? (size_t)ti.raw_size : 1);
        if (buf != NULL) {
            qfmt_status s = qfmt_tensor_read(r, i, buf, ti.raw_size, false, &e);
            if (s == QFMT_OK) {
                touch(buf, ti.raw_size);
                if (vs == QFMT_OK)
                    CHECK(memcmp(buf, view, (size_t)ti.raw_size) == 0);
                decode(&ti, tt, buf);
            } else {
                check_error(s, &e);
                CHECK(vs != QFMT_OK); /* viewable tensors are readable */
            }
            /* with verify: fails exactly when the checksum does (or the plain read did) */
            qfmt_status sv = qfmt_tensor_read(r, i, buf, ti.raw_size, true, &e);
            if (s == QFMT_OK && ts == QFMT_OK)
                CHECK(sv == QFMT_OK);
            if (ts == QFMT_E_CHECKSUM)
                CHECK(sv != QFMT_OK);
            if (ti.raw_size > 0) /* too small a buffer is refused, never overrun */
                CHECK(qfmt_tensor_read(r, i, buf, ti.raw_size - 1, false, &e) != QFMT_OK);
            free(buf);
        }
    }
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    static char not_null;
    qfmt_reader *r = (qfmt_reader *)(void *)&not_null; /* open must set NULL on failure */
    qfmt_error e;
    qfmt_status s = qfmt_reader_open_memory(&r, data, size, NULL, &e);
    if (s != QFMT_OK) {
        CHECK(r == NULL);
        check_error(s, &e);
        return;
    }
    CHECK(r != NULL);

    qfmt_file_info fi;
    qfmt_reader_file_info(r, &fi);
    CHECK(fi.file_size == size);
    CHECK(fi.tensor_count == qfmt_tensor_count(r));
    CHECK(fi.metadata_count == qfmt_meta_count(r));
    CHECK(fi.alignment >= QFMT_MIN_ALIGNMENT && fi.alignment <= QFMT_MAX_ALIGNMENT);
    CHECK((fi.alignment & (fi.alignment - 1)) == 0);
    CHECK(fi.version_major == QFMT_FORMAT_VERSION_MAJOR);
    CHECK(qfmt_reader_path(r) != NULL);

    walk_metadata(r);
    for (uint64_t i = 0; i < fi.tensor_count; i++)
        walk_tensor(r, &fi, i);
    qfmt_tensor_info ti;
    s = qfmt_tensor_get_info(r, fi.tensor_count, &ti, &e);
    CHECK(s == QFMT_E_RANGE);

    s = qfmt_reader_verify(r, 1, &e);
    if (s != QFMT_OK)
        check_error(s, &e);
    qfmt_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_with_checksums_fixed(data, size, BASE_ALIGNMENT, fuzz_one);
    return 0;
}
