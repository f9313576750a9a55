/*
 * test_roundtrip.c - a written file, reopened (from disk and from memory), gives back exactly
 * what was written: metadata of every value type, tensors of every plain type, shape, codec,
 * alignment and writing API, and a byte layout that matches spec/qfmt_format.md.
 */
#include "test_helpers.h"

#include <math.h>
#include <pthread.h>

/* ---- Tensor types under test -------------------------------------------------------------- */
typedef struct {
    uint32_t type;
    uint32_t esize;
} ttype;

static const ttype TYPES[] = {
    {QFMT_TYPE_F32, 4}, {QFMT_TYPE_F16, 2}, {QFMT_TYPE_BF16, 2}, {QFMT_TYPE_I8, 1},
    {QFMT_TYPE_I16, 2}, {QFMT_TYPE_I32, 4}, {QFMT_TYPE_I64, 8},  {QFMT_TYPE_F64, 8},
    {QFMT_TYPE_U8, 1},  {QFMT_TYPE_BOOL, 1},
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

typedef struct {
    const char *label;
    uint32_t ndim;
    uint64_t dims[QFMT_MAX_DIMS];
} tshape;

static const tshape SHAPES[] = {
    {"scalar", 0, {0}},
    {"empty", 2, {0, 5}},
    {"empty3", 3, {3, 0, 2}},
    {"vec", 1, {1001}},
    {"mat", 2, {17, 33}},
    {"dim8", 8, {2, 1, 3, 1, 2, 1, 2, 2}},
};
#define NSHAPES (sizeof SHAPES / sizeof SHAPES[0])

static uint64_t shape_elems(const tshape *s) {
    uint64_t n = 1;
    for (uint32_t i = 0; i < s->ndim; i++) n *= s->dims[i];
    return n;
}

/* One planned tensor of the big matrix: everything needed to regenerate and check it. */
typedef struct {
    char name[96];
    ttype t;
    const tshape *shape;
    uint32_t codec;
    bool compressible;
    uint64_t size;
    uint64_t seed;
} planned;

static void gen_data(const planned *p, uint8_t *buf) {
    if (p->compressible) th_fill_compressible(buf, (size_t)p->size, p->seed);
    else th_fill_random(buf, (size_t)p->size, p->seed);
    if (p->t.type == QFMT_TYPE_BOOL)
        for (uint64_t i = 0; i < p->size; i++) buf[i] &= 1;
}

static size_t plan_all(planned *out) {
    size_t n = 0;
    for (size_t ti = 0; ti < NTYPES; ti++)
        for (size_t si = 0; si < NSHAPES; si++)
            for (uint32_t codec = 0; codec < 2; codec++)
                for (int comp = 0; comp < 2; comp++) {
                    planned *p = &out[n];
                    p->t = TYPES[ti];
                    p->shape = &SHAPES[si];
                    p->codec = codec;
                    p->compressible = comp;
                    p->size = shape_elems(p->shape) * p->t.esize;
                    p->seed = 1000 + n;
                    const qfmt_type_traits *tr = qfmt_type_get_traits(p->t.type);
                    cr_assert_not_null(tr, "type %u must be known", p->t.type);
                    snprintf(p->name, sizeof p->name, "blk.%zu.%s.%s.%s", n, tr->name,
                             p->shape->label, comp ? "pattern" : "random");
                    n++;
                }
    return n;
}

#define MAXPLAN (NTYPES * NSHAPES * 4)

static const size_t CHUNKS[] = {1, 7, 13, 64, 4093, 3, 1000, 2};

static void write_matrix(const char *path, uint32_t align, bool streaming, const planned *P,
                         size_t n) {
    qfmt_write_opts wo = {0};
    wo.alignment = align;
    wo.no_fsync = true;
    qfmt_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, path, &wo, &e), e);
    uint8_t *buf = malloc(64 * 1024);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < n; i++) {
        const planned *p = &P[i];
        qfmt_tensor_desc d = th_desc(p->name, p->t.type, p->codec, p->shape->ndim, p->shape->dims);
        cr_assert_leq(p->size, 64 * 1024);
        gen_data(p, buf);
        if (!streaming) {
            TH_OKE(qfmt_writer_add_tensor(w, &d, buf, p->size, &e), e);
        } else {
            TH_OKE(qfmt_writer_begin_tensor(w, &d, &e), e);
            uint64_t done = 0;
            size_t k = i;
            while (done < p->size) {
                size_t c = CHUNKS[k++ % (sizeof CHUNKS / sizeof CHUNKS[0])];
                if (c > p->size - done) c = (size_t)(p->size - done);
                TH_OKE(qfmt_writer_append(w, buf + done, c, &e), e);
                done += c;
            }
            TH_OKE(qfmt_writer_end_tensor(w, &e), e);
        }
    }
    TH_OKE(qfmt_writer_set_string(w, "matrix.note", "every type", 10, &e), e);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
    free(buf);
}

/* Checks the byte layout of a file against the spec, independently of the reader. */
static void check_layout_bytes(const uint8_t *b, size_t size, uint32_t align) {
    cr_assert_eq(memcmp(b, "QFMT\r\n\x1a\n", 8), 0, "magic");
    cr_assert_eq(th_get16(b + 8), QFMT_FORMAT_VERSION_MAJOR);
    cr_assert_eq(th_get16(b + 10), QFMT_FORMAT_VERSION_MINOR);
    cr_assert_eq(th_get32(b + 12), 0u, "required features");
    cr_assert_eq(th_get32(b + 16), 0u, "optional features");
    cr_assert_eq(th_get32(b + 20), align, "alignment field");
    for (int i = 24; i < 56; i++) cr_assert_eq(b[i], 0, "reserved header byte %d", i);
    cr_assert_eq(th_get64(b + 56), th_xxh3(b, 56), "header checksum");
    cr_assert_eq(memcmp(b + size - 8, "QFMT_END", 8), 0, "end magic");
    for (int i = 40; i < 48; i++) cr_assert_eq(b[size - 64 + i], 0, "reserved footer byte");

    th_layout L;
    th_parse(b, size, &L);
    cr_assert_eq(th_get64(b + size - 16), th_xxh3(b + L.meta_off, size - 16 - L.meta_off),
                 "index checksum");
    /* The layout equation: each tensor at align_up(end of previous, A), metadata right after. */
    uint64_t end = 64;
    for (uint64_t i = 0; i < L.tensor_count; i++) {
        const th_dirent *t = &L.t[i];
        uint64_t want = th_align_up(end, align);
        cr_assert_eq(t->offset, want, "tensor %s offset %" PRIu64 ", layout says %" PRIu64, t->name,
                     t->offset, want);
        for (uint64_t p = end; p < want; p++) cr_assert_eq(b[p], 0, "padding byte %" PRIu64, p);
        cr_assert_eq(th_get32(b + t->reserved_off), 0u);
        cr_assert_eq(t->checksum, th_xxh3(b + t->offset, t->stored), "tensor %s checksum", t->name);
        if (t->codec == QFMT_CODEC_NONE) cr_assert_eq(t->stored, t->raw);
        end = t->offset + t->stored;
    }
    cr_assert_eq(L.meta_off, th_align_up(end, align), "metadata offset");
    for (uint64_t p = end; p < L.meta_off; p++) cr_assert_eq(b[p], 0, "padding byte %" PRIu64, p);
    /* keys strictly increasing (bytewise) */
    for (uint64_t i = 1; i < L.meta_count; i++) {
        const th_metaent *a = &L.m[i - 1], *c = &L.m[i];
        size_t n = a->key_len < c->key_len ? a->key_len : c->key_len;
        int cmp = memcmp(b + a->key_off, b + c->key_off, n);
        cr_assert(cmp < 0 || (cmp == 0 && a->key_len < c->key_len), "keys sorted on disk");
    }
    th_layout_free(&L);
}

static void check_info_consistent(qfmt_reader *r, const uint8_t *b, size_t size, uint32_t align) {
    qfmt_file_info fi;
    memset(&fi, 0xAB, sizeof fi);
    qfmt_reader_file_info(r, &fi);
    th_layout L;
    th_parse(b, size, &L);
    cr_assert_eq(fi.version_major, 1);
    cr_assert_eq(fi.version_minor, 0);
    cr_assert_eq(fi.required_features, 0u);
    cr_assert_eq(fi.optional_features, 0u);
    cr_assert_eq(fi.alignment, align);
    cr_assert_eq(fi.file_size, size);
    cr_assert_eq(fi.tensor_count, L.tensor_count);
    cr_assert_eq(fi.tensor_count, qfmt_tensor_count(r));
    cr_assert_eq(fi.metadata_count, L.meta_count);
    cr_assert_eq(fi.metadata_count, qfmt_meta_count(r));
    cr_assert_eq(fi.data_offset, th_align_up(64, align));
    cr_assert_eq(fi.metadata_offset, L.meta_off);
    cr_assert_eq(fi.data_offset + fi.data_size, fi.metadata_offset, "data region ends at metadata");
    cr_assert_eq(fi.metadata_size, L.meta_size);
    cr_assert_eq(fi.directory_offset, fi.metadata_offset + fi.metadata_size);
    cr_assert_eq(fi.directory_size, L.dir_size);
    cr_assert_eq(fi.directory_offset + fi.directory_size + QFMT_FOOTER_SIZE, fi.file_size);
    cr_assert_eq(fi.header_checksum, th_get64(b + 56));
    cr_assert_eq(fi.index_checksum, th_get64(b + size - 16));
    for (uint64_t i = 0; i < L.tensor_count; i++) {
        qfmt_tensor_info ti;
        qfmt_error e;
        TH_OKE(qfmt_tensor_get_info(r, i, &ti, &e), e);
        cr_assert_str_eq(ti.name, L.t[i].name);
        cr_assert_eq(ti.offset, L.t[i].offset);
        cr_assert_eq(ti.stored_size, L.t[i].stored);
        cr_assert_eq(ti.raw_size, L.t[i].raw);
        cr_assert_eq(ti.checksum, L.t[i].checksum);
        cr_assert_eq(ti.codec, L.t[i].codec);
        cr_assert_eq(ti.type, L.t[i].type);
    }
    th_layout_free(&L);
}

static void check_matrix(qfmt_reader *r, const uint8_t *base, uint32_t align, bool streaming,
                         const planned *P, size_t n) {
    qfmt_error e;
    cr_assert_eq(qfmt_tensor_count(r), n);
    uint8_t *want = malloc(64 * 1024), *got = malloc(64 * 1024 + 1);
    cr_assert(want && got);
    for (size_t i = 0; i < n; i++) {
        const planned *p = &P[i];
        qfmt_tensor_info ti;
        memset(&ti, 0xCD, sizeof ti);
        TH_OKE(qfmt_tensor_get_info(r, i, &ti, &e), e);
        cr_assert_str_eq(ti.name, p->name);
        cr_assert_eq(ti.type, p->t.type, "%s type", p->name);
        cr_assert_eq(ti.ndim, p->shape->ndim, "%s ndim", p->name);
        for (uint32_t d = 0; d < QFMT_MAX_DIMS; d++)
            cr_assert_eq(ti.dims[d], d < p->shape->ndim ? p->shape->dims[d] : 0, "%s dim %u",
                         p->name, d);
        cr_assert_eq(ti.nelements, shape_elems(p->shape), "%s nelements", p->name);
        cr_assert_eq(ti.raw_size, p->size, "%s raw_size", p->name);
        cr_assert_eq(ti.offset % align, 0, "%s offset %" PRIu64 " not aligned", p->name, ti.offset);
        uint64_t idx = UINT64_MAX;
        TH_OKE(qfmt_tensor_find(r, p->name, &idx, &e), e);
        cr_assert_eq(idx, i);

        if (p->codec == QFMT_CODEC_NONE) {
            cr_assert_eq(ti.codec, QFMT_CODEC_NONE, "%s codec", p->name);
        } else if (p->size == 0) {
            /* zstd needs Raw_Size > 0: how an empty tensor is stored is the writer's choice */
        } else if (streaming) {
            cr_assert_eq(ti.codec, QFMT_CODEC_ZSTD, "%s: streamed zstd data is kept compressed",
                         p->name);
        } else if (p->compressible && p->size >= 256) {
            cr_assert_eq(ti.codec, QFMT_CODEC_ZSTD, "%s: compressible data is compressed",
                         p->name);
            cr_assert_lt(ti.stored_size, ti.raw_size, "%s compresses", p->name);
        } else if (!p->compressible && p->size >= 256 && p->t.type != QFMT_TYPE_BOOL) {
            cr_assert_eq(ti.codec, QFMT_CODEC_NONE,
                         "%s: add_tensor stores incompressible data uncompressed", p->name);
        }
        if (ti.codec == QFMT_CODEC_NONE) cr_assert_eq(ti.stored_size, ti.raw_size);

        gen_data(p, want);
        got[p->size] = 0x5A;
        TH_OKE(qfmt_tensor_read(r, i, got, p->size, true, &e), e);
        cr_assert_eq(memcmp(got, want, (size_t)p->size), 0, "%s bytes differ", p->name);
        cr_assert_eq(got[p->size], 0x5A, "%s: read wrote past raw_size", p->name);
        TH_OKE(qfmt_tensor_verify(r, i, &e), e);

        const void *v = NULL;
        uint64_t vs = 12345;
        qfmt_status s = qfmt_tensor_view(r, i, &v, &vs, &e);
        if (ti.codec == QFMT_CODEC_NONE) {
            cr_assert_eq(s, QFMT_OK, "%s view: %s", p->name, e.message);
            cr_assert_eq(vs, p->size);
            if (p->size) {
                cr_assert_not_null(v);
                cr_assert_eq(memcmp(v, want, (size_t)p->size), 0, "%s view bytes", p->name);
                cr_assert_eq((uintptr_t)v % align, 0, "%s view %p not aligned to %u", p->name, v,
                             align);
                if (base) cr_assert_eq((const uint8_t *)v - base, (ptrdiff_t)ti.offset);
            }
        } else {
            cr_assert_eq(s, QFMT_E_UNSUPPORTED, "%s: view of a compressed tensor", p->name);
        }
    }
    free(want);
    free(got);
    TH_OKE(qfmt_reader_verify(r, 3, &e), e);
    TH_OKE(qfmt_reader_verify(r, 0, &e), e);
}

static void matrix_case(uint32_t align, bool streaming) {
    static planned P[MAXPLAN];
    size_t n = plan_all(P);
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/m.qfmt", dir);
    write_matrix(path, align, streaming, P, n);

    size_t size;
    uint8_t *bytes = th_read_file(path, &size);
    check_layout_bytes(bytes, size, align);

    qfmt_reader *r = th_open_path(path);
    cr_assert_str_eq(qfmt_reader_path(r), path);
    check_info_consistent(r, bytes, size, align);
    check_matrix(r, NULL, align, streaming, P, n);
    qfmt_reader_close(r);

    /* the same bytes from (aligned) memory */
    uint8_t *mem = aligned_alloc(4096, th_align_up(size, 4096));
    cr_assert_not_null(mem);
    memcpy(mem, bytes, size);
    r = th_open_mem(mem, size);
    cr_assert_str_eq(qfmt_reader_path(r), "");
    check_info_consistent(r, bytes, size, align);
    check_matrix(r, mem, align, streaming, P, n);
    qfmt_reader_close(r);

    /* and with verify_checksums at open */
    qfmt_open_opts oo = {0};
    oo.verify_checksums = true;
    qfmt_error e;
    TH_OKE(qfmt_reader_open(&r, path, &oo, &e), e);
    qfmt_reader_close(r);

    free(mem);
    free(bytes);
    th_rmtree(dir);
}

Test(roundtrip, all_types_add_align32, .timeout = 60) { matrix_case(32, false); }
Test(roundtrip, all_types_add_align64, .timeout = 60) { matrix_case(64, false); }
Test(roundtrip, all_types_add_align4096, .timeout = 60) { matrix_case(4096, false); }
Test(roundtrip, all_types_stream_align32, .timeout = 60) { matrix_case(32, true); }
Test(roundtrip, all_types_stream_align64, .timeout = 60) { matrix_case(64, true); }
Test(roundtrip, all_types_stream_align4096, .timeout = 60) { matrix_case(4096, true); }

Test(roundtrip, default_alignment_is_64) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/d.qfmt", dir);
    qfmt_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, path, NULL, &e), e);
    uint8_t x[3] = {1, 2, 3};
    uint64_t dims[1] = {3};
    qfmt_tensor_desc d = th_desc("x", QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, dims);
    TH_OKE(qfmt_writer_add_tensor(w, &d, x, 3, &e), e);
    d.name = "y";
    TH_OKE(qfmt_writer_add_tensor(w, &d, x, 3, &e), e);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
    size_t size;
    uint8_t *b = th_read_file(path, &size);
    check_layout_bytes(b, size, QFMT_DEFAULT_ALIGNMENT);
    qfmt_reader *r = th_open_path(path);
    qfmt_file_info fi;
    qfmt_reader_file_info(r, &fi);
    cr_assert_eq(fi.alignment, 64u);
    qfmt_tensor_info ti;
    TH_OKE(qfmt_tensor_get_info(r, 1, &ti, &e), e);
    cr_assert_eq(ti.offset, 128u);
    qfmt_reader_close(r);
    free(b);
    th_rmtree(dir);
}

/* ---- Metadata of every value type ---------------------------------------------------------- */
static const char *UKEY1 = "ключ.модели";
static const char *UKEY2 = "日本語.キー";
static const char *UKEY3 = "emoji.\xF0\x9F\xA6\x99";

static void write_all_meta(const char *path) {
    qfmt_writer *w = NULL;
    qfmt_error e;
    qfmt_write_opts wo = {0};
    wo.no_fsync = true;
    TH_OKE(qfmt_writer_create(&w, path, &wo, &e), e);
    qfmt_value v;
    memset(&v, 0, sizeof v);
    v.type = QFMT_META_U8; v.v.u = 255;
    TH_OKE(qfmt_writer_set_value(w, "s.u8", &v, &e), e);
    v.type = QFMT_META_I8; v.v.i = -128;
    TH_OKE(qfmt_writer_set_value(w, "s.i8", &v, &e), e);
    v.type = QFMT_META_U16; v.v.u = 65535;
    TH_OKE(qfmt_writer_set_value(w, "s.u16", &v, &e), e);
    v.type = QFMT_META_I16; v.v.i = -32768;
    TH_OKE(qfmt_writer_set_value(w, "s.i16", &v, &e), e);
    v.type = QFMT_META_U32; v.v.u = 4000000000u;
    TH_OKE(qfmt_writer_set_value(w, "s.u32v", &v, &e), e);
    v.type = QFMT_META_I32; v.v.i = INT32_MIN;
    TH_OKE(qfmt_writer_set_value(w, "s.i32", &v, &e), e);
    v.type = QFMT_META_U64; v.v.u = UINT64_MAX;
    TH_OKE(qfmt_writer_set_value(w, "s.u64v", &v, &e), e);
    v.type = QFMT_META_I64; v.v.i = INT64_MIN;
    TH_OKE(qfmt_writer_set_value(w, "s.i64v", &v, &e), e);
    v.type = QFMT_META_F32; v.v.f = 1.5;
    TH_OKE(qfmt_writer_set_value(w, "s.f32v", &v, &e), e);
    v.type = QFMT_META_F64; v.v.f = -0.0;
    TH_OKE(qfmt_writer_set_value(w, "s.f64v", &v, &e), e);
    v.type = QFMT_META_BOOL; v.v.u = 1;
    TH_OKE(qfmt_writer_set_value(w, "s.boolv", &v, &e), e);
    v.type = QFMT_META_STRING; v.v.str.ptr = "via value"; v.v.str.len = 9;
    TH_OKE(qfmt_writer_set_value(w, "s.strv", &v, &e), e);

    TH_OKE(qfmt_writer_set_u32(w, "s.u32", 123456789u, &e), e);
    TH_OKE(qfmt_writer_set_u64(w, "s.u64", 0x0123456789ABCDEFull, &e), e);
    TH_OKE(qfmt_writer_set_i64(w, "s.i64", -1234567890123ll, &e), e);
    TH_OKE(qfmt_writer_set_f32(w, "s.f32", -3.0e38f, &e), e);
    TH_OKE(qfmt_writer_set_f64(w, "s.f64", 4.9406564584124654e-324, &e), e);
    TH_OKE(qfmt_writer_set_bool(w, "s.bool", false, &e), e);
    TH_OKE(qfmt_writer_set_string(w, "s.str", "h\xC3\xA9llo \xE2\x82\xAC", 10, &e), e);
    TH_OKE(qfmt_writer_set_string(w, "s.empty", "", 0, &e), e);
    TH_OKE(qfmt_writer_set_string(w, "s.nul", "a\0b", 3, &e), e);
    TH_OKE(qfmt_writer_set_u32(w, UKEY1, 1, &e), e);
    TH_OKE(qfmt_writer_set_string(w, UKEY2, "値", strlen("値"), &e), e);
    TH_OKE(qfmt_writer_set_bool(w, UKEY3, true, &e), e);

    uint8_t au8[] = {0, 1, 255};
    int8_t ai8[] = {-128, 0, 127};
    uint16_t au16[] = {0, 65535, 4660};
    int16_t ai16[] = {-32768, 32767, -1};
    uint32_t au32[] = {0, UINT32_MAX, 7, 8};
    int32_t ai32[] = {INT32_MIN, INT32_MAX};
    uint64_t au64[] = {UINT64_MAX, 0, 1ull << 63};
    int64_t ai64[] = {INT64_MIN, INT64_MAX, -1};
    float af32[] = {1.0f, -0.0f, 3.4028235e38f, 1.4e-45f};
    double af64[] = {1.0, -2.5, 1e300, 5e-324};
    bool abool[] = {true, false, true, true};
    TH_OKE(qfmt_writer_set_array(w, "a.u8", QFMT_META_U8, au8, 3, &e), e);
    TH_OKE(qfmt_writer_set_array(w, "a.i8", QFMT_META_I8, ai8, 3, &e), e);
    TH_OKE(qfmt_writer_set_array(w, "a.u16", QFMT_META_U16, au16, 3, &e), e);
    TH_OKE(qfmt_writer_set_array(w, "a.i16", QFMT_META_I16, ai16, 3, &e), e);
    TH_OKE(qfmt_writer_set_array(w, "a.u32", QFMT_META_U32, au32, 4, &e), e);
    TH_OKE(qfmt_writer_set_array(w, "a.i32", QFMT_META_I32, ai32, 2, &e), e);
    TH_OKE(qfmt_writer_set_array(w, "a.u64", QFMT_META_U64, au64, 3, &e), e);
    TH_OKE(qfmt_writer_set_array(w, "a.i64", QFMT_META_I64, ai64, 3, &e), e);
    TH_OKE(qfmt_writer_set_array(w, "a.f32", QFMT_META_F32, af32, 4, &e), e);
    TH_OKE(qfmt_writer_set_array(w, "a.f64", QFMT_META_F64, af64, 4, &e), e);
    TH_OKE(qfmt_writer_set_array(w, "a.bool", QFMT_META_BOOL, abool, 4, &e), e);
    TH_OKE(qfmt_writer_set_array(w, "a.empty", QFMT_META_U32, au32, 0, &e), e);
    const char *strs[] = {"", "hello", "\xC3\xBCn\xC3\xAF", "a\0b", "last"};
    size_t lens[] = {0, 5, 5, 3, 4};
    TH_OKE(qfmt_writer_set_string_array(w, "a.str", strs, lens, 5, &e), e);
    const char *strs2[] = {"x", "yy", ""};
    TH_OKE(qfmt_writer_set_string_array(w, "a.str0", strs2, NULL, 3, &e), e);
    TH_OKE(qfmt_writer_set_string_array(w, "a.strempty", strs2, NULL, 0, &e), e);
    char *big = malloc(100000);
    cr_assert_not_null(big);
    for (int i = 0; i < 100000; i++) big[i] = (char)('a' + i % 26);
    TH_OKE(qfmt_writer_set_string(w, "s.big", big, 100000, &e), e);
    free(big);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
}

static void get_entry(qfmt_reader *r, const char *key, qfmt_value *v) {
    uint64_t idx;
    qfmt_error e;
    const char *k = NULL;
    TH_OKE(qfmt_meta_find(r, key, &idx, &e), e);
    TH_OKE(qfmt_meta_get_entry(r, idx, &k, v, &e), e);
    cr_assert_str_eq(k, key);
}

#define EXPECT_U(key, T, val)                                                                    \
    do {                                                                                         \
        qfmt_value v_;                                                                           \
        get_entry(r, key, &v_);                                                                  \
        cr_assert_eq(v_.type, T, "%s type %u", key, v_.type);                                    \
        cr_assert_eq(v_.v.u, (uint64_t)(val), "%s value", key);                                  \
    } while (0)
#define EXPECT_I(key, T, val)                                                                    \
    do {                                                                                         \
        qfmt_value v_;                                                                           \
        get_entry(r, key, &v_);                                                                  \
        cr_assert_eq(v_.type, T, "%s type %u", key, v_.type);                                    \
        cr_assert_eq(v_.v.i, (int64_t)(val), "%s value", key);                                   \
    } while (0)

static void expect_str(qfmt_reader *r, const char *key, const char *s, size_t len) {
    qfmt_value v;
    get_entry(r, key, &v);
    cr_assert_eq(v.type, QFMT_META_STRING, "%s type", key);
    cr_assert_eq(v.v.str.len, len, "%s len", key);
    if (len) cr_assert_eq(memcmp(v.v.str.ptr, s, len), 0, "%s bytes", key);
    const char *p = NULL;
    uint64_t l = 0;
    qfmt_error e;
    TH_OKE(qfmt_meta_get_string(r, key, &p, &l, &e), e);
    cr_assert_eq(l, len);
    if (len) cr_assert_eq(memcmp(p, s, len), 0);
}

static void expect_array(qfmt_reader *r, const char *key, uint32_t et, const void *vals,
                         uint64_t count, size_t esize) {
    qfmt_value v;
    qfmt_error e;
    get_entry(r, key, &v);
    cr_assert_eq(v.type, QFMT_META_ARRAY, "%s type", key);
    cr_assert_eq(v.v.arr.elem_type, et, "%s elem type", key);
    cr_assert_eq(v.v.arr.count, count, "%s count", key);
    uint32_t t2;
    uint64_t c2;
    TH_OKE(qfmt_meta_get_array(r, key, &t2, &c2, &e), e);
    cr_assert_eq(t2, et);
    cr_assert_eq(c2, count);
    uint8_t buf[256];
    memset(buf, 0xEE, sizeof buf);
    TH_OKE(qfmt_meta_array_copy(r, key, et, buf, count, &e), e);
    cr_assert_eq(memcmp(buf, vals, (size_t)(count * esize)), 0, "%s copied values", key);
    cr_assert_eq(buf[count * esize], 0xEE, "%s: copy wrote past count", key);
    for (uint64_t i = 0; i < count; i++) {
        qfmt_value ev;
        TH_OKE(qfmt_meta_array_get(r, key, i, &ev, &e), e);
        cr_assert_eq(ev.type, et, "%s[%" PRIu64 "] type", key, i);
        const uint8_t *p = (const uint8_t *)vals + i * esize;
        switch (et) {
        case QFMT_META_U8: cr_assert_eq(ev.v.u, *p); break;
        case QFMT_META_I8: cr_assert_eq(ev.v.i, *(const int8_t *)p); break;
        case QFMT_META_U16: cr_assert_eq(ev.v.u, *(const uint16_t *)p); break;
        case QFMT_META_I16: cr_assert_eq(ev.v.i, *(const int16_t *)p); break;
        case QFMT_META_U32: cr_assert_eq(ev.v.u, *(const uint32_t *)p); break;
        case QFMT_META_I32: cr_assert_eq(ev.v.i, *(const int32_t *)p); break;
        case QFMT_META_U64: cr_assert_eq(ev.v.u, *(const uint64_t *)p); break;
        case QFMT_META_I64: cr_assert_eq(ev.v.i, *(const int64_t *)p); break;
        case QFMT_META_F32: {
            double want = *(const float *)p;
            cr_assert(ev.v.f == want && signbit(ev.v.f) == signbit(want), "%s[%" PRIu64 "]", key, i);
            break;
        }
        case QFMT_META_F64: cr_assert_eq(ev.v.f, *(const double *)p); break;
        case QFMT_META_BOOL: cr_assert_eq(ev.v.u, (uint64_t)*(const bool *)p); break;
        default: cr_assert_fail("bad elem type");
        }
    }
}

static void expect_str_array(qfmt_reader *r, const char *key, const char *const *strs,
                             const size_t *lens, uint64_t count) {
    qfmt_value v;
    qfmt_error e;
    get_entry(r, key, &v);
    cr_assert_eq(v.type, QFMT_META_ARRAY);
    cr_assert_eq(v.v.arr.elem_type, QFMT_META_STRING);
    cr_assert_eq(v.v.arr.count, count);
    for (uint64_t i = count; i-- > 0;) { /* backwards: each access is random, O(1) */
        qfmt_value ev;
        TH_OKE(qfmt_meta_array_get(r, key, i, &ev, &e), e);
        size_t l = lens ? lens[i] : strlen(strs[i]);
        cr_assert_eq(ev.type, QFMT_META_STRING);
        cr_assert_eq(ev.v.str.len, l, "%s[%" PRIu64 "] len", key, i);
        if (l) cr_assert_eq(memcmp(ev.v.str.ptr, strs[i], l), 0);
    }
}

static void check_all_meta(qfmt_reader *r) {
    qfmt_error e;
    cr_assert_eq(qfmt_meta_count(r), 40u);
    EXPECT_U("s.u8", QFMT_META_U8, 255);
    EXPECT_I("s.i8", QFMT_META_I8, -128);
    EXPECT_U("s.u16", QFMT_META_U16, 65535);
    EXPECT_I("s.i16", QFMT_META_I16, -32768);
    EXPECT_U("s.u32v", QFMT_META_U32, 4000000000u);
    EXPECT_I("s.i32", QFMT_META_I32, INT32_MIN);
    EXPECT_U("s.u64v", QFMT_META_U64, UINT64_MAX);
    EXPECT_I("s.i64v", QFMT_META_I64, INT64_MIN);
    EXPECT_U("s.boolv", QFMT_META_BOOL, 1);
    EXPECT_U("s.u32", QFMT_META_U32, 123456789u);
    EXPECT_U("s.u64", QFMT_META_U64, 0x0123456789ABCDEFull);
    EXPECT_I("s.i64", QFMT_META_I64, -1234567890123ll);
    EXPECT_U("s.bool", QFMT_META_BOOL, 0);
    EXPECT_U(UKEY1, QFMT_META_U32, 1);
    EXPECT_U(UKEY3, QFMT_META_BOOL, 1);
    qfmt_value v;
    get_entry(r, "s.f32v", &v);
    cr_assert_eq(v.type, QFMT_META_F32);
    cr_assert_eq(v.v.f, 1.5);
    get_entry(r, "s.f64v", &v);
    cr_assert_eq(v.type, QFMT_META_F64);
    cr_assert(v.v.f == 0.0 && signbit(v.v.f), "negative zero kept");
    get_entry(r, "s.f32", &v);
    cr_assert_eq(v.type, QFMT_META_F32);
    cr_assert_eq(v.v.f, (double)-3.0e38f);
    get_entry(r, "s.f64", &v);
    cr_assert_eq(v.type, QFMT_META_F64);
    cr_assert_eq(v.v.f, 4.9406564584124654e-324);
    float f;
    double d;
    TH_OKE(qfmt_meta_get_f32(r, "s.f32", &f, &e), e);
    cr_assert_eq(f, -3.0e38f);
    TH_OKE(qfmt_meta_get_f64(r, "s.f64", &d, &e), e);
    cr_assert_eq(d, 4.9406564584124654e-324);

    expect_str(r, "s.strv", "via value", 9);
    expect_str(r, "s.str", "h\xC3\xA9llo \xE2\x82\xAC", 10);
    expect_str(r, "s.empty", "", 0);
    expect_str(r, "s.nul", "a\0b", 3);
    expect_str(r, UKEY2, "値", strlen("値"));
    {
        const char *p;
        uint64_t l;
        TH_OKE(qfmt_meta_get_string(r, "s.big", &p, &l, &e), e);
        cr_assert_eq(l, 100000u);
        for (int i = 0; i < 100000; i++) cr_assert_eq(p[i], (char)('a' + i % 26));
    }

    uint8_t au8[] = {0, 1, 255};
    int8_t ai8[] = {-128, 0, 127};
    uint16_t au16[] = {0, 65535, 4660};
    int16_t ai16[] = {-32768, 32767, -1};
    uint32_t au32[] = {0, UINT32_MAX, 7, 8};
    int32_t ai32[] = {INT32_MIN, INT32_MAX};
    uint64_t au64[] = {UINT64_MAX, 0, 1ull << 63};
    int64_t ai64[] = {INT64_MIN, INT64_MAX, -1};
    float af32[] = {1.0f, -0.0f, 3.4028235e38f, 1.4e-45f};
    double af64[] = {1.0, -2.5, 1e300, 5e-324};
    bool abool[] = {true, false, true, true};
    expect_array(r, "a.u8", QFMT_META_U8, au8, 3, 1);
    expect_array(r, "a.i8", QFMT_META_I8, ai8, 3, 1);
    expect_array(r, "a.u16", QFMT_META_U16, au16, 3, 2);
    expect_array(r, "a.i16", QFMT_META_I16, ai16, 3, 2);
    expect_array(r, "a.u32", QFMT_META_U32, au32, 4, 4);
    expect_array(r, "a.i32", QFMT_META_I32, ai32, 2, 4);
    expect_array(r, "a.u64", QFMT_META_U64, au64, 3, 8);
    expect_array(r, "a.i64", QFMT_META_I64, ai64, 3, 8);
    expect_array(r, "a.f32", QFMT_META_F32, af32, 4, 4);
    expect_array(r, "a.f64", QFMT_META_F64, af64, 4, 8);
    expect_array(r, "a.bool", QFMT_META_BOOL, abool, 4, sizeof(bool));
    expect_array(r, "a.empty", QFMT_META_U32, au32, 0, 4);
    const char *strs[] = {"", "hello", "\xC3\xBCn\xC3\xAF", "a\0b", "last"};
    size_t lens[] = {0, 5, 5, 3, 4};
    expect_str_array(r, "a.str", strs, lens, 5);
    const char *strs2[] = {"x", "yy", ""};
    expect_str_array(r, "a.str0", strs2, NULL, 3);
    expect_str_array(r, "a.strempty", strs2, NULL, 0);

    /* listing is sorted bytewise and every key is found at its own index */
    const char *prev = NULL;
    for (uint64_t i = 0; i < qfmt_meta_count(r); i++) {
        const char *k;
        TH_OKE(qfmt_meta_get_entry(r, i, &k, &v, &e), e);
        if (prev) cr_assert_lt(strcmp(prev, k), 0, "'%s' listed before '%s'", prev, k);
        uint64_t idx;
        TH_OKE(qfmt_meta_find(r, k, &idx, &e), e);
        cr_assert_eq(idx, i);
        prev = k;
    }
}

Test(roundtrip, metadata_every_type) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/meta.qfmt", dir);
    write_all_meta(path);
    qfmt_reader *r = th_open_path(path);
    check_all_meta(r);
    qfmt_error e;
    TH_OKE(qfmt_reader_verify(r, 1, &e), e);
    qfmt_reader_close(r);
    size_t size;
    uint8_t *b = th_read_file(path, &size);
    check_layout_bytes(b, size, 64);
    r = th_open_mem(b, size);
    check_all_meta(r);
    qfmt_reader_close(r);
    free(b);
    th_rmtree(dir);
}

/* ---- 10,000 tensors ------------------------------------------------------------------------- */
#define NMANY 10000

static void many_fill(uint8_t *buf, size_t i, size_t n) {
    for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)(i * 31 + k * 7 + (i >> 8));
}

static void check_many(qfmt_reader *r) {
    qfmt_error e;
    cr_assert_eq(qfmt_tensor_count(r), NMANY);
    char name[64];
    uint8_t want[16];
    for (size_t i = 0; i < NMANY; i++) {
        /* look up in a scrambled order so a linear scan from the last hit does not help */
        size_t j = (i * 7919) % NMANY;
        snprintf(name, sizeof name, "layers.%zu.weight", j);
        uint64_t idx = UINT64_MAX;
        TH_OKE(qfmt_tensor_find(r, name, &idx, &e), e);
        cr_assert_eq(idx, j, "find(%s)", name);
        qfmt_tensor_info ti;
        TH_OKE(qfmt_tensor_get_info(r, j, &ti, &e), e);
        cr_assert_str_eq(ti.name, name);
        size_t n = 1 + j % 13;
        cr_assert_eq(ti.raw_size, n);
        const void *v;
        uint64_t vs;
        TH_OKE(qfmt_tensor_view(r, j, &v, &vs, &e), e);
        many_fill(want, j, n);
        cr_assert_eq(vs, n);
        cr_assert_eq(memcmp(v, want, n), 0, "%s bytes", name);
    }
    uint64_t idx;
    cr_assert_eq(qfmt_tensor_find(r, "layers.10000.weight", &idx, &e), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_tensor_find(r, "layers.1.weigh", &idx, &e), QFMT_E_NOT_FOUND);
    TH_OKE(qfmt_reader_verify(r, 2, &e), e);
}

Test(roundtrip, ten_thousand_tensors, .timeout = 60) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/many.qfmt", dir);
    qfmt_writer *w = NULL;
    qfmt_error e;
    qfmt_write_opts wo = {0};
    wo.alignment = 32;
    wo.no_fsync = true;
    TH_OKE(qfmt_writer_create(&w, path, &wo, &e), e);
    char name[64];
    uint8_t buf[16];
    for (size_t i = 0; i < NMANY; i++) {
        snprintf(name, sizeof name, "layers.%zu.weight", i);
        size_t n = 1 + i % 13;
        many_fill(buf, i, n);
        uint64_t dims[1] = {n};
        qfmt_tensor_desc d = th_desc(name, QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, dims);
        cr_assert_eq(qfmt_writer_add_tensor(w, &d, buf, n, &e), QFMT_OK, "%zu: %s", i, e.message);
    }
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
    qfmt_reader *r = th_open_path(path);
    check_many(r);
    qfmt_reader_close(r);
    size_t size;
    uint8_t *b = th_read_file(path, &size);
    check_layout_bytes(b, size, 32);
    r = th_open_mem(b, size);
    check_many(r);
    qfmt_reader_close(r);
    free(b);
    th_rmtree(dir);
}

/* ---- Lookups of what is not there ----------------------------------------------------------- */
Test(roundtrip, missing_names_and_bad_indices) {
    size_t size;
    uint8_t *b = th_sample_bytes(&size);
    qfmt_reader *r = th_open_mem(b, size);
    qfmt_error e;
    uint64_t idx = 77;
    memset(&e, 0, sizeof e);
    cr_assert_eq(qfmt_tensor_find(r, "nope", &idx, &e), QFMT_E_NOT_FOUND);
    cr_assert_eq(e.code, QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_tensor_find(r, "", &idx, &e), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_tensor_find(r, "a.", &idx, &e), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_meta_find(r, "nope", &idx, &e), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_meta_find(r, "general.nam", &idx, &e), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_meta_find(r, "general.name2", &idx, &e), QFMT_E_NOT_FOUND);
    uint32_t u;
    cr_assert_eq(qfmt_meta_get_u32(r, "nope", &u, &e), QFMT_E_NOT_FOUND);

    uint64_t n = qfmt_tensor_count(r);
    cr_assert_eq(n, 5u);
    qfmt_tensor_info ti;
    cr_assert_eq(qfmt_tensor_get_info(r, n, &ti, &e), QFMT_E_RANGE);
    cr_assert_eq(qfmt_tensor_get_info(r, UINT64_MAX, &ti, &e), QFMT_E_RANGE);
    const void *v;
    uint64_t vs;
    cr_assert_eq(qfmt_tensor_view(r, n, &v, &vs, &e), QFMT_E_RANGE);
    uint8_t dst[64];
    cr_assert_eq(qfmt_tensor_read(r, n, dst, sizeof dst, false, &e), QFMT_E_RANGE);
    cr_assert_eq(qfmt_tensor_verify(r, n, &e), QFMT_E_RANGE);
    const char *k;
    qfmt_value val;
    cr_assert_eq(qfmt_meta_get_entry(r, qfmt_meta_count(r), &k, &val, &e), QFMT_E_RANGE);

    /* a destination smaller than raw_size is refused, and nothing is written past it */
    TH_OKE(qfmt_tensor_find(r, "a", &idx, &e), e);
    memset(dst, 0x77, sizeof dst);
    qfmt_status s = qfmt_tensor_read(r, idx, dst, 23, false, &e);
    cr_assert(s == QFMT_E_RANGE || s == QFMT_E_ARG, "short dst: %d", (int)s);
    cr_assert_eq(dst[23], 0x77);
    TH_OKE(qfmt_tensor_find(r, "z", &idx, &e), e);
    uint8_t zb[300];
    memset(zb, 0x77, sizeof zb);
    s = qfmt_tensor_read(r, idx, zb, 255, true, &e);
    cr_assert(s == QFMT_E_RANGE || s == QFMT_E_ARG, "short dst for zstd: %d", (int)s);
    cr_assert_eq(zb[255], 0x77);
    qfmt_reader_close(r);
    free(b);
}

/* ---- Writer rejections ------------------------------------------------------------------- */
typedef struct {
    char dir[PATH_MAX];
    char path[PATH_MAX + 32];
    qfmt_writer *w;
} wfix;

static void wfix_open(wfix *f) {
    th_mkdtemp(f->dir);
    snprintf(f->path, sizeof f->path, "%s/w.qfmt", f->dir);
    qfmt_write_opts wo = {0};
    wo.no_fsync = true;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&f->w, f->path, &wo, &e), e);
}

static void wfix_close(wfix *f) {
    qfmt_writer_free(f->w);
    th_rmtree(f->dir);
}

Test(roundtrip, duplicate_tensor_names_rejected) {
    wfix f;
    wfix_open(&f);
    qfmt_error e;
    float x[2] = {1, 2};
    uint64_t dims[1] = {2};
    qfmt_tensor_desc d = th_desc("w", QFMT_TYPE_F32, QFMT_CODEC_NONE, 1, dims);
    TH_OKE(qfmt_writer_add_tensor(f.w, &d, x, sizeof x, &e), e);
    memset(&e, 0, sizeof e);
    cr_assert_eq(qfmt_writer_add_tensor(f.w, &d, x, sizeof x, &e), QFMT_E_EXISTS);
    cr_assert_eq(e.code, QFMT_E_EXISTS);
    cr_expect_str_eq(e.tensor, "w", "err.tensor names the duplicate");
    d.codec = QFMT_CODEC_ZSTD;
    cr_assert_eq(qfmt_writer_begin_tensor(f.w, &d, &e), QFMT_E_EXISTS);
    wfix_close(&f);
}

Test(roundtrip, duplicate_metadata_keys_rejected) {
    wfix f;
    wfix_open(&f);
    qfmt_error e;
    TH_OKE(qfmt_writer_set_u32(f.w, "k", 1, &e), e);
    cr_assert_eq(qfmt_writer_set_u32(f.w, "k", 2, &e), QFMT_E_EXISTS);
    cr_assert_eq(e.code, QFMT_E_EXISTS);
    cr_assert_eq(qfmt_writer_set_string(f.w, "k", "x", 1, &e), QFMT_E_EXISTS);
    uint8_t a[1] = {0};
    cr_assert_eq(qfmt_writer_set_array(f.w, "k", QFMT_META_U8, a, 1, &e), QFMT_E_EXISTS);
    const char *s[1] = {"x"};
    cr_assert_eq(qfmt_writer_set_string_array(f.w, "k", s, NULL, 1, &e), QFMT_E_EXISTS);
    wfix_close(&f);
}

static bool arg_or_range(qfmt_status s) { return s == QFMT_E_ARG || s == QFMT_E_RANGE; }

Test(roundtrip, wrong_data_size_rejected) {
    wfix f;
    wfix_open(&f);
    qfmt_error e;
    float x[5] = {0};
    uint64_t dims[1] = {4};
    qfmt_tensor_desc d = th_desc("w", QFMT_TYPE_F32, QFMT_CODEC_NONE, 1, dims);
    qfmt_status s = qfmt_writer_add_tensor(f.w, &d, x, 15, &e);
    cr_assert(arg_or_range(s), "15 bytes for f32[4]: %d", (int)s);
    s = qfmt_writer_add_tensor(f.w, &d, x, 17, &e);
    cr_assert(arg_or_range(s), "17 bytes for f32[4]: %d", (int)s);
    d.name = "w2";
    d.codec = QFMT_CODEC_ZSTD;
    s = qfmt_writer_add_tensor(f.w, &d, x, 20, &e);
    cr_assert(arg_or_range(s), "20 bytes for zstd f32[4]: %d", (int)s);
    wfix_close(&f);
}

Test(roundtrip, streaming_size_mismatch_rejected) {
    qfmt_error e;
    float x[8] = {0};
    uint64_t dims[1] = {4};
    for (uint32_t codec = 0; codec < 2; codec++) {
        wfix f;
        wfix_open(&f);
        qfmt_tensor_desc d = th_desc("w", QFMT_TYPE_F32, codec, 1, dims);
        TH_OKE(qfmt_writer_begin_tensor(f.w, &d, &e), e);
        TH_OKE(qfmt_writer_append(f.w, x, 12, &e), e);
        qfmt_status s = qfmt_writer_append(f.w, x, 8, &e); /* 20 > 16 bytes */
        cr_assert(arg_or_range(s), "codec %u: append past the size: %d", codec, (int)s);
        wfix_close(&f);

        wfix_open(&f);
        TH_OKE(qfmt_writer_begin_tensor(f.w, &d, &e), e);
        TH_OKE(qfmt_writer_append(f.w, x, 12, &e), e);
        s = qfmt_writer_end_tensor(f.w, &e); /* 12 < 16 bytes */
        cr_assert(arg_or_range(s) || s == QFMT_E_STATE, "codec %u: end short: %d", codec, (int)s);
        wfix_close(&f);
    }
}

Test(roundtrip, bad_names_rejected) {
    wfix f;
    wfix_open(&f);
    qfmt_error e;
    uint8_t x = 1;
    qfmt_tensor_desc d = th_desc("", QFMT_TYPE_U8, QFMT_CODEC_NONE, 0, NULL);
    cr_assert_eq(qfmt_writer_add_tensor(f.w, &d, &x, 1, &e), QFMT_E_ARG, "empty name");
    d.name = NULL;
    cr_assert_eq(qfmt_writer_add_tensor(f.w, &d, &x, 1, &e), QFMT_E_ARG, "NULL name");
    char *longname = malloc(QFMT_MAX_NAME_LEN + 2);
    cr_assert_not_null(longname);
    memset(longname, 'n', QFMT_MAX_NAME_LEN + 1);
    longname[QFMT_MAX_NAME_LEN + 1] = 0;
    d.name = longname;
    cr_assert_eq(qfmt_writer_add_tensor(f.w, &d, &x, 1, &e), QFMT_E_ARG, "1025-byte name");
    cr_assert_eq(qfmt_writer_begin_tensor(f.w, &d, &e), QFMT_E_ARG, "1025-byte name (stream)");
    static const char *const bad_utf8[] = {
        "\xFF", "ab\xC3", "\xC0\x80", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
        "\x80", "a\xE2\x82", "\xF8\x88\x80\x80\x80",
    };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        d.name = bad_utf8[i];
        cr_assert_eq(qfmt_writer_add_tensor(f.w, &d, &x, 1, &e), QFMT_E_ARG, "bad UTF-8 #%zu", i);
    }
    d.name = "ok";
    d.ndim = QFMT_MAX_DIMS + 1;
    cr_assert_eq(qfmt_writer_add_tensor(f.w, &d, &x, 1, &e), QFMT_E_ARG, "ndim 9");
    d.ndim = 0;
    d.type = 999;
    qfmt_status s = qfmt_writer_add_tensor(f.w, &d, &x, 1, &e);
    cr_assert(s == QFMT_E_ARG || s == QFMT_E_UNSUPPORTED, "unknown type: %d", (int)s);
    d.type = QFMT_TYPE_U8;
    d.codec = 7;
    s = qfmt_writer_add_tensor(f.w, &d, &x, 1, &e);
    cr_assert(s == QFMT_E_ARG || s == QFMT_E_UNSUPPORTED, "unknown codec: %d", (int)s);

    /* the longest name and multi-byte UTF-8 are fine and round-trip */
    d.codec = QFMT_CODEC_NONE;
    longname[QFMT_MAX_NAME_LEN] = 0;
    d.name = longname;
    TH_OKE(qfmt_writer_add_tensor(f.w, &d, &x, 1, &e), e);
    d.name = "ĉapelo.\xF0\x9F\xA6\x99.中";
    TH_OKE(qfmt_writer_add_tensor(f.w, &d, &x, 1, &e), e);

    /* bad metadata keys */
    cr_assert_eq(qfmt_writer_set_u32(f.w, "", 1, &e), QFMT_E_ARG, "empty key");
    char longkey[QFMT_MAX_KEY_LEN + 2];
    memset(longkey, 'k', sizeof longkey);
    longkey[QFMT_MAX_KEY_LEN + 1] = 0;
    cr_assert_eq(qfmt_writer_set_u32(f.w, longkey, 1, &e), QFMT_E_ARG, "257-byte key");
    cr_assert_eq(qfmt_writer_set_u32(f.w, "\xC3\x28", 1, &e), QFMT_E_ARG, "bad UTF-8 key");
    cr_assert_eq(qfmt_writer_set_string(f.w, "badval", "\xFF\xFE", 2, &e), QFMT_E_ARG,
                 "bad UTF-8 string value");
    const char *bs[2] = {"ok", "\xC0\xAF"};
    cr_assert_eq(qfmt_writer_set_string_array(f.w, "badarr", bs, NULL, 2, &e), QFMT_E_ARG,
                 "bad UTF-8 in a string array");
    longkey[QFMT_MAX_KEY_LEN] = 0;
    TH_OKE(qfmt_writer_set_u32(f.w, longkey, 1, &e), e);
    TH_OKE(qfmt_writer_finish(f.w, &e), e);

    qfmt_reader *r = th_open_path(f.path);
    uint64_t idx;
    TH_OKE(qfmt_tensor_find(r, longname, &idx, &e), e);
    TH_OKE(qfmt_tensor_find(r, "ĉapelo.\xF0\x9F\xA6\x99.中", &idx, &e), e);
    cr_assert_eq(qfmt_tensor_count(r), 2u);
    uint32_t u;
    TH_OKE(qfmt_meta_get_u32(r, longkey, &u, &e), e);
    cr_assert_eq(qfmt_meta_count(r), 1u, "rejected keys are not in the file");
    qfmt_reader_close(r);
    free(longname);
    wfix_close(&f);
}

Test(roundtrip, bad_alignment_option_rejected) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/x.qfmt", dir);
    const uint32_t bad[] = {1, 16, 48, 100, QFMT_MAX_ALIGNMENT * 2, 3};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qfmt_write_opts wo = {0};
        wo.alignment = bad[i];
        qfmt_writer *w = (qfmt_writer *)(uintptr_t)1;
        qfmt_error e;
        cr_assert_eq(qfmt_writer_create(&w, path, &wo, &e), QFMT_E_ARG, "alignment %u", bad[i]);
        cr_assert_null(w);
    }
    cr_assert_eq(th_count_entries(dir, NULL, 0), 0);
    th_rmtree(dir);
}

/* A file with no tensors and no metadata is valid and minimal. */
Test(roundtrip, empty_file) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/empty.qfmt", dir);
    qfmt_writer *w = NULL;
    qfmt_error e;
    qfmt_write_opts wo = {0};
    wo.alignment = 32;
    TH_OKE(qfmt_writer_create(&w, path, &wo, &e), e);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
    size_t size;
    uint8_t *b = th_read_file(path, &size);
    cr_assert_eq(size, 128u, "header + footer only");
    check_layout_bytes(b, size, 32);
    qfmt_reader *r = th_open_mem(b, size);
    cr_assert_eq(qfmt_tensor_count(r), 0u);
    cr_assert_eq(qfmt_meta_count(r), 0u);
    TH_OKE(qfmt_reader_verify(r, 4, &e), e);
    qfmt_reader_close(r);
    free(b);
    th_rmtree(dir);
}

/* The reader accepts a file built by hand from the spec (not by this library's writer). */
Test(roundtrip, reads_hand_built_file) {
    float a[3] = {1.0f, 2.0f, -3.0f};
    uint8_t frame[64], raw[40];
    for (int i = 0; i < 40; i++) raw[i] = (uint8_t)(i * 3);
    size_t fl = th_zstd_raw_frame(frame, 40, raw, 40);
    uint32_t u = 0xDEADBEEF;
    th_bmeta m[2] = {
        {"alpha", 0, QFMT_META_U32, &u, 4},
        {"beta", 0, QFMT_META_STRING, "xyz", 3},
    };
    th_btensor t[3] = {
        {"a", 0, QFMT_TYPE_F32, QFMT_CODEC_NONE, 1, {3}, a, 12, 12},
        {"z", 0, QFMT_TYPE_U8, QFMT_CODEC_ZSTD, 2, {4, 10}, frame, fl, 40},
        {"e", 0, QFMT_TYPE_F16, QFMT_CODEC_NONE, 1, {0}, NULL, 0, 0},
    };
    size_t size;
    uint8_t *b = th_build(64, m, 2, t, 3, &size);
    qfmt_reader *r = th_open_mem(b, size);
    qfmt_error e;
    TH_OKE(qfmt_reader_verify(r, 1, &e), e);
    uint32_t got;
    TH_OKE(qfmt_meta_get_u32(r, "alpha", &got, &e), e);
    cr_assert_eq(got, 0xDEADBEEFu);
    float fa[3];
    TH_OKE(qfmt_tensor_read(r, 0, fa, sizeof fa, true, &e), e);
    cr_assert_eq(memcmp(fa, a, sizeof a), 0);
    uint8_t zr[40];
    TH_OKE(qfmt_tensor_read(r, 1, zr, sizeof zr, true, &e), e);
    cr_assert_eq(memcmp(zr, raw, 40), 0);
    qfmt_reader_close(r);
    free(b);
}

/* ---- Many threads on one reader ---------------------------------------------------------- */
typedef struct {
    qfmt_reader *r;
    const planned *P;
    size_t n;
    int id;
    int bad; /* tensors whose bytes or status were wrong */
} reader_job;

static void *reader_thread(void *arg) {
    reader_job *j = arg;
    uint8_t *want = malloc(64 * 1024), *got = malloc(64 * 1024);
    if (!want || !got) {
        j->bad = -1;
        free(want);
        free(got);
        return NULL;
    }
    for (int round = 0; round < 3; round++) {
        for (size_t k = 0; k < j->n; k++) {
            size_t i = (k + (size_t)j->id * 37) % j->n;
            const planned *p = &j->P[i];
            qfmt_error e;
            gen_data(p, want);
            if (qfmt_tensor_read(j->r, i, got, p->size, true, &e) != QFMT_OK ||
                memcmp(got, want, (size_t)p->size) != 0)
                j->bad++;
            uint64_t idx;
            if (qfmt_tensor_find(j->r, p->name, &idx, &e) != QFMT_OK || idx != i) j->bad++;
        }
        qfmt_error e;
        if (qfmt_reader_verify(j->r, 2, &e) != QFMT_OK) j->bad++;
    }
    free(want);
    free(got);
    return NULL;
}

Test(roundtrip, one_reader_many_threads, .timeout = 120) {
    static planned P[MAXPLAN];
    size_t n = plan_all(P);
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/mt.qfmt", dir);
    write_matrix(path, 64, false, P, n);
    qfmt_reader *r = th_open_path(path);
    enum { NTHREADS = 6 };
    pthread_t th[NTHREADS];
    reader_job jobs[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        jobs[t] = (reader_job){r, P, n, t, 0};
        cr_assert_eq(pthread_create(&th[t], NULL, reader_thread, &jobs[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(th[t], NULL);
        cr_assert_eq(jobs[t].bad, 0, "thread %d saw %d wrong results", t, jobs[t].bad);
    }
    qfmt_reader_close(r);
    th_rmtree(dir);
}

/* ---- More writer/reader edges ------------------------------------------------------------- */
Test(roundtrip, max_alignment_and_zstd_levels, .timeout = 60) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/big_align.qfmt", dir);
    qfmt_write_opts wo = {0};
    wo.alignment = QFMT_MAX_ALIGNMENT;
    wo.no_fsync = true;
    qfmt_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, path, &wo, &e), e);
    uint8_t data[5000];
    th_fill_compressible(data, sizeof data, 1);
    const int levels[] = {1, 19, -5, 3};
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "z%d", i);
        uint64_t dims[1] = {sizeof data};
        qfmt_tensor_desc d = th_desc(name, QFMT_TYPE_U8, QFMT_CODEC_ZSTD, 1, dims);
        d.zstd_level = levels[i];
        TH_OKE(qfmt_writer_add_tensor(w, &d, data, sizeof data, &e), e);
    }
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
    size_t size;
    uint8_t *b = th_read_file(path, &size);
    check_layout_bytes(b, size, QFMT_MAX_ALIGNMENT);
    qfmt_reader *r = th_open_path(path);
    for (uint64_t i = 0; i < 4; i++) {
        qfmt_tensor_info ti;
        TH_OKE(qfmt_tensor_get_info(r, i, &ti, &e), e);
        cr_assert_eq(ti.offset % QFMT_MAX_ALIGNMENT, 0);
        cr_assert_eq(ti.codec, QFMT_CODEC_ZSTD);
        uint8_t got[5000 + 16];
        memset(got, 0x3C, sizeof got);
        /* a larger destination: refused (the library wants the exact size) or filled exactly */
        qfmt_status s = qfmt_tensor_read(r, i, got, sizeof got, true, &e);
        cr_assert(s == QFMT_OK || s == QFMT_E_ARG, "dst larger than raw_size: %d", (int)s);
        for (size_t k = sizeof data; k < sizeof got; k++) cr_assert_eq(got[k], 0x3C);
        TH_OKE(qfmt_tensor_read(r, i, got, sizeof data, true, &e), e);
        cr_assert_eq(memcmp(got, data, sizeof data), 0);
    }
    TH_OKE(qfmt_reader_verify(r, 64, &e), e); /* more threads than tensors */
    qfmt_reader_close(r);
    free(b);
    th_rmtree(dir);
}

Test(roundtrip, writer_rejects_impossible_shapes) {
    wfix f;
    wfix_open(&f);
    qfmt_error e;
    uint8_t x[16] = {0};
    uint64_t d1[2] = {1ull << 32, 1ull << 32};
    qfmt_tensor_desc d = th_desc("o", QFMT_TYPE_U8, QFMT_CODEC_NONE, 2, d1);
    qfmt_status s = qfmt_writer_add_tensor(f.w, &d, x, 0, &e);
    cr_assert(arg_or_range(s), "dims [2^32, 2^32] with 0 bytes: %d", (int)s);
    s = qfmt_writer_begin_tensor(f.w, &d, &e);
    cr_assert(arg_or_range(s), "streamed dims [2^32, 2^32]: %d", (int)s);
    uint64_t d2[2] = {0, 1ull << 57};
    d = th_desc("o2", QFMT_TYPE_U8, QFMT_CODEC_NONE, 2, d2);
    s = qfmt_writer_add_tensor(f.w, &d, x, 0, &e);
    cr_assert(arg_or_range(s), "dim 2^57 next to a 0: %d", (int)s);
    uint64_t d3[1] = {1ull << 57};
    d = th_desc("o3", QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, d3);
    s = qfmt_writer_begin_tensor(f.w, &d, &e);
    cr_assert(arg_or_range(s), "2^57 elements: %d", (int)s);
    wfix_close(&f);
}

/* Block types (when this library knows them): whole blocks along the last dimension. */
Test(roundtrip, block_types_when_known) {
    const uint32_t bt[] = {QFMT_TYPE_Q4_0, QFMT_TYPE_Q4_1, QFMT_TYPE_Q8_0};
    for (size_t i = 0; i < 3; i++) {
        const qfmt_type_traits *tr = qfmt_type_get_traits(bt[i]);
        if (!tr) continue;
        wfix f;
        wfix_open(&f);
        qfmt_error e;
        uint32_t bb = tr->block_bytes, be = tr->block_elems;
        uint8_t *buf = calloc(4, bb * 2);
        cr_assert_not_null(buf);
        th_fill_random(buf, bb * 4, i);
        for (uint32_t k = 0; k < 4; k++) th_put16(buf + k * bb, 0x3C00); /* scale 1.0 */
        uint64_t good[2] = {2, 2ull * be};
        qfmt_tensor_desc d = th_desc("q", bt[i], QFMT_CODEC_NONE, 2, good);
        TH_OKE(qfmt_writer_add_tensor(f.w, &d, buf, 4ull * bb, &e), e);
        uint64_t bad[2] = {2ull * be, 2}; /* 4 blocks of elements, but rows of 2 */
        d = th_desc("q_bad", bt[i], QFMT_CODEC_NONE, 2, bad);
        qfmt_status s = qfmt_writer_add_tensor(f.w, &d, buf, 4ull * bb, &e);
        cr_assert(arg_or_range(s), "%s: last dim 2 is not whole blocks: %d", tr->name, (int)s);
        TH_OKE(qfmt_writer_finish(f.w, &e), e);
        qfmt_reader *r = th_open_path(f.path);
        uint8_t *got = malloc(4ull * bb);
        TH_OKE(qfmt_tensor_read(r, 0, got, 4ull * bb, true, &e), e);
        cr_assert_eq(memcmp(got, buf, 4ull * bb), 0, "%s bytes", tr->name);
        qfmt_tensor_info ti;
        TH_OKE(qfmt_tensor_get_info(r, 0, &ti, &e), e);
        cr_assert_eq(ti.nelements, 4ull * be);
        cr_assert_eq(ti.raw_size, 4ull * bb);
        qfmt_reader_close(r);
        free(got);
        free(buf);
        wfix_close(&f);

        /* the reader applies the same rule to a hand-built file */
        uint8_t blocks[128] = {0};
        th_btensor t[1] = {{"qb", 0, bt[i], QFMT_CODEC_NONE, 2, {be, 1}, blocks, bb, bb}};
        size_t size;
        uint8_t *file = th_build(32, NULL, 0, t, 1, &size);
        th_open_expect(file, size, QFMT_E_CORRUPT, &e, "block type with last dim 1");
        free(file);
        t[0].dims[0] = 1;
        t[0].dims[1] = be;
        file = th_build(32, NULL, 0, t, 1, &size);
        th_open_expect(file, size, QFMT_OK, &e, "block type with a whole block per row");
        free(file);
    }
}
