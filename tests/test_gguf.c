/*
 * test_gguf.c - the GGUF reader and writer (qfmt_gguf_*, qfmt.h "GGUF files"):
 *  - round trips writer -> reader of every value type, arrays (of strings, of bools, empty ones),
 *    empty strings and strings holding NUL, tensors of f32 / f16 / q8_0 / q4_k given by pointer
 *    and streamed, an empty tensor, the default and a set alignment;
 *  - the typed getters' rules (no getter trusts the stored type);
 *  - the two GGUF files written by llama.cpp (tests/data/gguf/, zstd-packed): keys, arrays of
 *    strings, tensors, types, dims, data inside the file and sized by qfmt_type_size, every
 *    tensor dequantized; and rewritten by the writer byte for byte;
 *  - hostile files built in memory, one per class of the GGUF CVEs (counts, lengths and sizes that
 *    overflow or pass the end of the file, dims, alignment, offsets, overlap, duplicates, bad
 *    UTF-8, bools, value types), and every prefix of a valid file;
 *  - allocation failures at every allocation of open and of a writer session, and I/O failures
 *    at every system call of the writer (the target untouched, no temporary file left).
 *
 * Each hostile file is opened from an exact-size heap copy so that ASan sees any read past its
 * end. With QFMT_GGUF_SEED_DIR set in the environment, the tests also write every hostile file
 * (hostile_<name>, those up to 16 KB), the valid files they build (valid_<name>) and shrunk
 * copies of the llama.cpp files (llamacpp_<name>) there. fuzz/corpus/gguf/ is made that way:
 *
 *     QFMT_GGUF_SEED_DIR=$PWD/fuzz/corpus/gguf build/release/tests/test_gguf
 */
#include "test_helpers.h"

#define QFMT_STATIC_LINKING_ONLY /* qfmt_io, qfmt_gguf_open_memory_alloc, qfmt_gguf_writer_create_io */
#include "qfmt.h"

#include <math.h>
#include <zstd.h>

#define GGUF_DIR QFMT_TEST_DATA_DIR "/gguf"

/* ---- Building files by hand ------------------------------------------------------------------ */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} bb;

static void bb_put(bb *b, const void *d, size_t n) {
    if (b->len + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->len + n) c *= 2;
        b->p = realloc(b->p, c);
        cr_assert_not_null(b->p);
        b->cap = c;
    }
    if (n) memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void bb_u8(bb *b, uint8_t v) { bb_put(b, &v, 1); }
static void bb_u32(bb *b, uint32_t v) {
    uint8_t t[4];
    th_put32(t, v);
    bb_put(b, t, 4);
}
static void bb_u64(bb *b, uint64_t v) {
    uint8_t t[8];
    th_put64(t, v);
    bb_put(b, t, 8);
}
static void bb_strn(bb *b, const char *s, size_t n) {
    bb_u64(b, n);
    bb_put(b, s, n);
}
static void bb_str(bb *b, const char *s) { bb_strn(b, s, strlen(s)); }
static void bb_pad(bb *b, size_t align) {
    while (b->len % align) bb_u8(b, 0);
}
static void bb_fill(bb *b, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++) bb_u8(b, (uint8_t)(seed + i * 7));
}
static void bb_free(bb *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void hdr(bb *b, uint32_t version, uint64_t nt, uint64_t nkv) {
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, nt);
    bb_u64(b, nkv);
}
static void kv_str(bb *b, const char *k, const char *v) {
    bb_str(b, k);
    bb_u32(b, QFMT_GGUF_STRING);
    bb_str(b, v);
}
static void kv_u32(bb *b, const char *k, uint32_t v) {
    bb_str(b, k);
    bb_u32(b, QFMT_GGUF_UINT32);
    bb_u32(b, v);
}
static void tinfo(bb *b, const char *name, uint32_t ndim, const uint64_t *ne, uint32_t type,
                  uint64_t off) {
    bb_str(b, name);
    bb_u32(b, ndim);
    for (uint32_t d = 0; d < ndim; d++) bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, off);
}

/* ---- Opening ---------------------------------------------------------------------------------- */
static void save_seed(const char *prefix, const char *name, const void *p, size_t n) {
    const char *dir = getenv("QFMT_GGUF_SEED_DIR");
    if (!dir || !*dir || n > 16384) return; /* seeds stay small */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s_%s", dir, prefix, name);
    th_write_file(path, p, n);
}

/* Opens an exact-size copy of buf; expects `want` (the handle is returned open on success). */
static qfmt_gguf *open_expect(const uint8_t *buf, size_t size, qfmt_status want, qfmt_error *e,
                              const char *what, uint8_t **copy_out) {
    uint8_t *copy = th_dup(buf, size);
    qfmt_gguf *g = (qfmt_gguf *)(uintptr_t)1;
    memset(e, 0x5a, sizeof *e);
    qfmt_status s = qfmt_gguf_open_memory(&g, copy, size, e);
    cr_assert_eq(s, want, "%s: got %d (%s), want %d (%s): %s", what, (int)s, qfmt_strerror(s),
                 (int)want, qfmt_strerror(want), tmsg(e));
    if (s != QFMT_OK) {
        cr_assert_null(g, "%s: *out must be NULL on failure", what);
        cr_assert_eq(e->code, s, "%s: err.code %d != %d", what, (int)e->code, (int)s);
        cr_assert_neq(e->message[0], 0, "%s: empty message", what);
        cr_assert_eq(e->path[0], 0);
        free(copy);
        return NULL;
    }
    cr_assert_eq(e->code, QFMT_OK);
    if (copy_out) *copy_out = copy;
    else cr_assert_fail("%s: opened; caller must take the copy", what);
    return g;
}

/* A hostile file: refused with `want`, the message holding `needle` (if not NULL); saved as a
 * seed. Returns the error's offset. */
static uint64_t hostile(const char *name, const bb *b, qfmt_status want, const char *needle) {
    save_seed("hostile", name, b->p, b->len);
    qfmt_error e;
    open_expect(b->p, b->len, want, &e, name, NULL);
    if (needle)
        cr_assert(strstr(e.message, needle), "%s: message '%s' lacks '%s'", name, e.message, needle);
    return e.offset;
}

/* A file expected to open: the handle and its copy (freed by done()). */
typedef struct {
    qfmt_gguf *g;
    uint8_t *copy;
} opened;

static opened open_ok(const char *name, const bb *b) {
    save_seed("valid", name, b->p, b->len);
    qfmt_error e;
    opened o = {NULL, NULL};
    o.g = open_expect(b->p, b->len, QFMT_OK, &e, name, &o.copy);
    return o;
}
static void done(opened *o) {
    qfmt_gguf_close(o->g);
    free(o->copy);
}

/* ---- Writing ------------------------------------------------------------------------------- */
typedef struct {
    char dir[PATH_MAX];
    char path[PATH_MAX + 64];
} scratch;

static void scratch_init(scratch *s, const char *file) {
    th_mkdtemp(s->dir);
    snprintf(s->path, sizeof s->path, "%s/%s", s->dir, file);
}

#define OKE(call)                                                                                 \
    do {                                                                                          \
        qfmt_error e_;                                                                            \
        qfmt_status s_ = (call);                                                                  \
        (void)e_;                                                                                 \
        cr_assert_eq(s_, QFMT_OK, "%s -> %d (%s)", #call, (int)s_, qfmt_strerror(s_));            \
    } while (0)

static void expect_status(qfmt_status got, qfmt_status want, const qfmt_error *e, const char *what) {
    cr_assert_eq(got, want, "%s: got %d (%s), want %d (%s): %s", what, (int)got, qfmt_strerror(got),
                 (int)want, qfmt_strerror(want), tmsg(e));
    if (got != QFMT_OK) {
        cr_assert_eq(e->code, got, "%s: err.code", what);
        cr_assert_neq(e->message[0], 0, "%s: empty message", what);
    }
}

/* The data of the round-trip file. */
enum { F32_N = 12, F16_N = 64, Q8_ROWS = 3, Q4K_ROWS = 2 };
typedef struct {
    float f32[F32_N];
    uint16_t f16[F16_N];
    uint8_t q8[Q8_ROWS * 2 * 34];   /* 3 rows of 64: 2 blocks each */
    uint8_t q4k[Q4K_ROWS * 144];    /* 2 rows of 256 */
    uint8_t streamed[5 * 34];       /* q8_0, 5 blocks, streamed */
} rt_data;

static void rt_fill(rt_data *d) {
    for (int i = 0; i < F32_N; i++) d->f32[i] = (float)i * 0.5f - 2.0f;
    for (int i = 0; i < F16_N; i++) d->f16[i] = qfmt_f32_to_f16((float)i / 8.0f);
    th_fill_random(d->q8, sizeof d->q8, 1);
    th_fill_random(d->q4k, sizeof d->q4k, 2);
    th_fill_random(d->streamed, sizeof d->streamed, 3);
    /* block scales finite (fp16): keep the high byte of each scale small */
    for (int b = 0; b < Q8_ROWS * 2; b++) d->q8[b * 34 + 1] = 0x3c;
    for (int b = 0; b < 5; b++) d->streamed[b * 34 + 1] = 0x3c;
    for (int b = 0; b < Q4K_ROWS; b++) d->q4k[b * 144 + 1] = d->q4k[b * 144 + 3] = 0x3c;
}

static const char *const STRS[] = {"alpha", "", "ga\0mma", "\xce\xb4\xce\xad\xce\xbb\xcf\x84\xce\xb1", ""};
static const size_t STR_LENS[] = {5, 0, 6, 10, 0};

/* Writes every value type and five tensors; the writer's whole public surface. */
static void write_roundtrip(const char *path, const rt_data *d, uint32_t alignment) {
    qfmt_gguf_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_gguf_writer_create(&w, path, &e), e);
    cr_assert_not_null(qfmt_gguf_writer_temp_path(w));
    TH_OKE(qfmt_gguf_writer_set_str(w, "general.architecture", "llama", 5, &e), e);
    if (alignment) TH_OKE(qfmt_gguf_writer_set_u32(w, "general.alignment", alignment, &e), e);
    uint8_t u8 = 250;
    int8_t i8 = -100;
    uint16_t u16 = 65000;
    int16_t i16 = -30000;
    TH_OKE(qfmt_gguf_writer_set_value(w, "t.u8", QFMT_GGUF_UINT8, &u8, &e), e);
    TH_OKE(qfmt_gguf_writer_set_value(w, "t.i8", QFMT_GGUF_INT8, &i8, &e), e);
    TH_OKE(qfmt_gguf_writer_set_value(w, "t.u16", QFMT_GGUF_UINT16, &u16, &e), e);
    TH_OKE(qfmt_gguf_writer_set_value(w, "t.i16", QFMT_GGUF_INT16, &i16, &e), e);
    TH_OKE(qfmt_gguf_writer_set_u32(w, "t.u32", 4000000000u, &e), e);
    TH_OKE(qfmt_gguf_writer_set_i32(w, "t.i32", -2000000000, &e), e);
    TH_OKE(qfmt_gguf_writer_set_f32(w, "t.f32", 0.1f, &e), e);
    TH_OKE(qfmt_gguf_writer_set_bool(w, "t.bool", true, &e), e);
    TH_OKE(qfmt_gguf_writer_set_bool(w, "t.false", false, &e), e);
    TH_OKE(qfmt_gguf_writer_set_u64(w, "t.u64", UINT64_MAX, &e), e);
    TH_OKE(qfmt_gguf_writer_set_i64(w, "t.i64", INT64_MIN, &e), e);
    TH_OKE(qfmt_gguf_writer_set_f64(w, "t.f64", -1e300, &e), e);
    TH_OKE(qfmt_gguf_writer_set_str(w, "t.empty", NULL, 0, &e), e);
    TH_OKE(qfmt_gguf_writer_set_str(w, "t.nul", "a\0b", 3, &e), e);
    uint8_t au8[3] = {0, 1, 255};
    int8_t ai8[2] = {-128, 127};
    uint16_t au16[2] = {1, 65535};
    int16_t ai16[3] = {-1, 0, 1};
    uint32_t au32[4] = {1, 2, 3, 0xffffffffu};
    int32_t ai32[3] = {-5, 0, 5};
    float af32[2] = {1.5f, -0.25f};
    bool abool[4] = {true, false, false, true};
    uint64_t au64[2] = {0, UINT64_MAX};
    int64_t ai64[2] = {INT64_MIN, INT64_MAX};
    double af64[3] = {3.25, -0.0, 1e-300};
    TH_OKE(qfmt_gguf_writer_set_array(w, "a.u8", QFMT_GGUF_UINT8, au8, 3, &e), e);
    TH_OKE(qfmt_gguf_writer_set_array(w, "a.i8", QFMT_GGUF_INT8, ai8, 2, &e), e);
    TH_OKE(qfmt_gguf_writer_set_array(w, "a.u16", QFMT_GGUF_UINT16, au16, 2, &e), e);
    TH_OKE(qfmt_gguf_writer_set_array(w, "a.i16", QFMT_GGUF_INT16, ai16, 3, &e), e);
    TH_OKE(qfmt_gguf_writer_set_array(w, "a.u32", QFMT_GGUF_UINT32, au32, 4, &e), e);
    TH_OKE(qfmt_gguf_writer_set_array(w, "a.i32", QFMT_GGUF_INT32, ai32, 3, &e), e);
    TH_OKE(qfmt_gguf_writer_set_array(w, "a.f32", QFMT_GGUF_FLOAT32, af32, 2, &e), e);
    TH_OKE(qfmt_gguf_writer_set_array(w, "a.bool", QFMT_GGUF_BOOL, abool, 4, &e), e);
    TH_OKE(qfmt_gguf_writer_set_array(w, "a.u64", QFMT_GGUF_UINT64, au64, 2, &e), e);
    TH_OKE(qfmt_gguf_writer_set_array(w, "a.i64", QFMT_GGUF_INT64, ai64, 2, &e), e);
    TH_OKE(qfmt_gguf_writer_set_array(w, "a.f64", QFMT_GGUF_FLOAT64, af64, 3, &e), e);
    TH_OKE(qfmt_gguf_writer_set_array(w, "a.empty", QFMT_GGUF_INT32, NULL, 0, &e), e);
    TH_OKE(qfmt_gguf_writer_set_str_array(w, "a.str", STRS, STR_LENS, 5, &e), e);
    const char *cstrs[2] = {"x", "yz"};
    TH_OKE(qfmt_gguf_writer_set_str_array(w, "a.cstr", cstrs, NULL, 2, &e), e);
    TH_OKE(qfmt_gguf_writer_set_str_array(w, "a.nostr", NULL, NULL, 0, &e), e);

    uint64_t ne_f32[2] = {4, 3}, ne_f16[1] = {F16_N}, ne_q8[2] = {64, Q8_ROWS},
             ne_q4k[3] = {256, 1, Q4K_ROWS}, ne_empty[2] = {32, 0}, ne_st[1] = {160};
    TH_OKE(qfmt_gguf_writer_add_tensor(w, "t.f32", QFMT_TYPE_F32, 2, ne_f32, d->f32, sizeof d->f32, &e), e);
    TH_OKE(qfmt_gguf_writer_add_tensor(w, "blk.0.streamed", QFMT_TYPE_Q8_0, 1, ne_st, NULL,
                                       sizeof d->streamed, &e), e);
    TH_OKE(qfmt_gguf_writer_add_tensor(w, "t.f16", QFMT_TYPE_F16, 1, ne_f16, d->f16, sizeof d->f16, &e), e);
    TH_OKE(qfmt_gguf_writer_add_tensor(w, "t.empty", QFMT_TYPE_Q8_0, 2, ne_empty, NULL, 0, &e), e);
    TH_OKE(qfmt_gguf_writer_add_tensor(w, "t.q8_0", QFMT_TYPE_Q8_0, 2, ne_q8, d->q8, sizeof d->q8, &e), e);
    TH_OKE(qfmt_gguf_writer_add_tensor(w, "t.q4_k", QFMT_TYPE_Q4_K, 3, ne_q4k, d->q4k, sizeof d->q4k, &e), e);
    /* the streamed one in three pieces; the header and t.f32 go out with the first */
    TH_OKE(qfmt_gguf_writer_write(w, d->streamed, 10, &e), e);
    cr_assert_not_null(qfmt_gguf_writer_temp_path(w));
    TH_OKE(qfmt_gguf_writer_write(w, d->streamed + 10, 0, &e), e);
    TH_OKE(qfmt_gguf_writer_write(w, d->streamed + 10, sizeof d->streamed - 10, &e), e);
    TH_OKE(qfmt_gguf_writer_commit(w, &e), e);
    cr_assert_null(qfmt_gguf_writer_temp_path(w));
    qfmt_gguf_writer_free(w);
}

static void check_str(const qfmt_gguf *g, const char *key, const char *want, size_t n) {
    const char *p = NULL;
    size_t len = 99;
    qfmt_error e;
    TH_OKE(qfmt_gguf_get_str(g, key, &p, &len, &e), e);
    cr_assert_eq(len, n, "%s: length %zu", key, len);
    cr_assert(n == 0 || memcmp(p, want, n) == 0, "%s", key);
}

static void check_roundtrip(const qfmt_gguf *g, const rt_data *d, uint32_t alignment) {
    qfmt_error e;
    cr_assert_eq(qfmt_gguf_version(g), 3u);
    cr_assert_eq(qfmt_gguf_alignment(g), alignment ? alignment : 32u);
    cr_assert_eq(qfmt_gguf_kv_count(g), 30u + (alignment ? 1u : 0u));
    cr_assert_eq(qfmt_gguf_tensor_count(g), 6u);
    cr_assert_eq(qfmt_gguf_data_offset(g) % qfmt_gguf_alignment(g), 0u);

    /* file order, and every kv's raw description */
    qfmt_gguf_kv kv;
    TH_OKE(qfmt_gguf_kv_get(g, 0, &kv, &e), e);
    cr_assert_str_eq(kv.key, "general.architecture");
    cr_assert_eq(kv.key_len, 20u);
    cr_assert_eq(kv.type, QFMT_GGUF_STRING);
    cr_assert_eq(kv.elem_type, QFMT_GGUF_STRING);
    cr_assert_eq(kv.count, 5u);
    cr_assert_eq(kv.size, 5u);
    cr_assert_eq(memcmp(kv.data, "llama", 5), 0);
    for (int i = 0; i < 4; i++) cr_assert_eq(kv.reserved[i], 0u);
    uint64_t idx;
    TH_OKE(qfmt_gguf_find_key(g, "t.u16", &idx, &e), e);
    TH_OKE(qfmt_gguf_kv_get(g, idx, &kv, &e), e);
    cr_assert_str_eq(kv.key, "t.u16");
    cr_assert_eq(kv.type, QFMT_GGUF_UINT16);
    cr_assert_eq(kv.count, 1u);
    cr_assert_eq(kv.size, 2u);
    cr_assert_eq(th_get16(kv.data), 65000);
    TH_OKE(qfmt_gguf_find_key(g, "a.str", &idx, &e), e);
    TH_OKE(qfmt_gguf_kv_get(g, idx, &kv, &e), e);
    cr_assert_eq(kv.type, QFMT_GGUF_ARRAY);
    cr_assert_eq(kv.elem_type, QFMT_GGUF_STRING);
    cr_assert_eq(kv.count, 5u);
    cr_assert_eq(kv.size, 5 * 8u + 5 + 0 + 6 + 10 + 0);
    cr_assert_eq(th_get64(kv.data), 5u); /* the first string's length */
    expect_status(qfmt_gguf_kv_get(g, qfmt_gguf_kv_count(g), &kv, &e), QFMT_E_RANGE, &e, "kv past end");

    /* scalars through the getters */
    uint64_t u;
    int64_t i;
    double f;
    bool b;
    TH_OKE(qfmt_gguf_get_u64(g, "t.u8", &u, &e), e);
    cr_assert_eq(u, 250u);
    TH_OKE(qfmt_gguf_get_i64(g, "t.i8", &i, &e), e);
    cr_assert_eq(i, -100);
    TH_OKE(qfmt_gguf_get_u64(g, "t.u16", &u, &e), e);
    cr_assert_eq(u, 65000u);
    TH_OKE(qfmt_gguf_get_i64(g, "t.i16", &i, &e), e);
    cr_assert_eq(i, -30000);
    TH_OKE(qfmt_gguf_get_u64(g, "t.u32", &u, &e), e);
    cr_assert_eq(u, 4000000000u);
    TH_OKE(qfmt_gguf_get_i64(g, "t.u32", &i, &e), e); /* unsigned read as signed: it fits */
    cr_assert_eq(i, 4000000000);
    TH_OKE(qfmt_gguf_get_i64(g, "t.i32", &i, &e), e);
    cr_assert_eq(i, -2000000000);
    TH_OKE(qfmt_gguf_get_f64(g, "t.f32", &f, &e), e);
    cr_assert_eq(f, (double)0.1f);
    TH_OKE(qfmt_gguf_get_bool(g, "t.bool", &b, &e), e);
    cr_assert(b);
    TH_OKE(qfmt_gguf_get_bool(g, "t.false", &b, &e), e);
    cr_assert(!b);
    TH_OKE(qfmt_gguf_get_u64(g, "t.u64", &u, &e), e);
    cr_assert_eq(u, UINT64_MAX);
    TH_OKE(qfmt_gguf_get_i64(g, "t.i64", &i, &e), e);
    cr_assert_eq(i, INT64_MIN);
    TH_OKE(qfmt_gguf_get_f64(g, "t.f64", &f, &e), e);
    cr_assert_eq(f, -1e300);
    check_str(g, "general.architecture", "llama", 5);
    check_str(g, "t.empty", "", 0);
    check_str(g, "t.nul", "a\0b", 3);
    if (alignment) {
        TH_OKE(qfmt_gguf_get_u64(g, "general.alignment", &u, &e), e);
        cr_assert_eq(u, alignment);
    }

    /* arrays */
    uint32_t et;
    uint64_t n;
    static const struct {
        const char *key;
        uint32_t type;
        uint64_t count;
    } arrays[] = {{"a.u8", QFMT_GGUF_UINT8, 3},     {"a.i8", QFMT_GGUF_INT8, 2},
                  {"a.u16", QFMT_GGUF_UINT16, 2},   {"a.i16", QFMT_GGUF_INT16, 3},
                  {"a.u32", QFMT_GGUF_UINT32, 4},   {"a.i32", QFMT_GGUF_INT32, 3},
                  {"a.f32", QFMT_GGUF_FLOAT32, 2},  {"a.bool", QFMT_GGUF_BOOL, 4},
                  {"a.u64", QFMT_GGUF_UINT64, 2},   {"a.i64", QFMT_GGUF_INT64, 2},
                  {"a.f64", QFMT_GGUF_FLOAT64, 3},  {"a.empty", QFMT_GGUF_INT32, 0},
                  {"a.str", QFMT_GGUF_STRING, 5},   {"a.cstr", QFMT_GGUF_STRING, 2},
                  {"a.nostr", QFMT_GGUF_STRING, 0}};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++) {
        TH_OKE(qfmt_gguf_get_array(g, arrays[k].key, &et, &n, &e), e);
        cr_assert_eq(et, arrays[k].type, "%s", arrays[k].key);
        cr_assert_eq(n, arrays[k].count, "%s", arrays[k].key);
    }
    TH_OKE(qfmt_gguf_array_u64(g, "a.u8", 2, &u, &e), e);
    cr_assert_eq(u, 255u);
    TH_OKE(qfmt_gguf_array_i64(g, "a.i8", 0, &i, &e), e);
    cr_assert_eq(i, -128);
    TH_OKE(qfmt_gguf_array_u64(g, "a.u16", 1, &u, &e), e);
    cr_assert_eq(u, 65535u);
    TH_OKE(qfmt_gguf_array_i64(g, "a.i16", 0, &i, &e), e);
    cr_assert_eq(i, -1);
    TH_OKE(qfmt_gguf_array_u64(g, "a.u32", 3, &u, &e), e);
    cr_assert_eq(u, 0xffffffffu);
    TH_OKE(qfmt_gguf_array_u64(g, "a.i32", 2, &u, &e), e); /* 5 >= 0 */
    cr_assert_eq(u, 5u);
    expect_status(qfmt_gguf_array_u64(g, "a.i32", 0, &u, &e), QFMT_E_RANGE, &e, "-5 as u64");
    TH_OKE(qfmt_gguf_array_f64(g, "a.f32", 1, &f, &e), e);
    cr_assert_eq(f, -0.25);
    for (uint64_t k = 0; k < 4; k++) {
        TH_OKE(qfmt_gguf_array_bool(g, "a.bool", k, &b, &e), e);
        cr_assert_eq(b, k == 0 || k == 3);
    }
    TH_OKE(qfmt_gguf_array_u64(g, "a.u64", 1, &u, &e), e);
    cr_assert_eq(u, UINT64_MAX);
    expect_status(qfmt_gguf_array_i64(g, "a.u64", 1, &i, &e), QFMT_E_RANGE, &e, "u64 max as i64");
    TH_OKE(qfmt_gguf_array_i64(g, "a.i64", 0, &i, &e), e);
    cr_assert_eq(i, INT64_MIN);
    TH_OKE(qfmt_gguf_array_i64(g, "a.i64", 1, &i, &e), e);
    cr_assert_eq(i, INT64_MAX);
    TH_OKE(qfmt_gguf_array_f64(g, "a.f64", 0, &f, &e), e);
    cr_assert_eq(f, 3.25);
    TH_OKE(qfmt_gguf_array_f64(g, "a.f64", 1, &f, &e), e);
    cr_assert(f == 0.0 && signbit(f));
    TH_OKE(qfmt_gguf_array_f64(g, "a.f64", 2, &f, &e), e);
    cr_assert_eq(f, 1e-300);
    expect_status(qfmt_gguf_array_i64(g, "a.empty", 0, &i, &e), QFMT_E_RANGE, &e, "empty array");
    for (uint64_t k = 0; k < 5; k++) {
        const char *p;
        size_t len;
        TH_OKE(qfmt_gguf_array_str(g, "a.str", k, &p, &len, &e), e);
        cr_assert_eq(len, STR_LENS[k]);
        cr_assert(len == 0 || memcmp(p, STRS[k], len) == 0);
    }
    const char *p;
    size_t len;
    TH_OKE(qfmt_gguf_array_str(g, "a.cstr", 1, &p, &len, &e), e);
    cr_assert(len == 2 && memcmp(p, "yz", 2) == 0);
    expect_status(qfmt_gguf_array_str(g, "a.str", 5, &p, &len, &e), QFMT_E_RANGE, &e, "str past end");
    expect_status(qfmt_gguf_array_str(g, "a.nostr", 0, &p, &len, &e), QFMT_E_RANGE, &e, "empty str array");

    /* tensors */
    static const struct {
        const char *name;
        uint32_t type, ndim;
        uint64_t ne[4];
    } ts[] = {{"t.f32", QFMT_TYPE_F32, 2, {4, 3, 1, 1}},
              {"blk.0.streamed", QFMT_TYPE_Q8_0, 1, {160, 1, 1, 1}},
              {"t.f16", QFMT_TYPE_F16, 1, {F16_N, 1, 1, 1}},
              {"t.empty", QFMT_TYPE_Q8_0, 2, {32, 0, 1, 1}},
              {"t.q8_0", QFMT_TYPE_Q8_0, 2, {64, Q8_ROWS, 1, 1}},
              {"t.q4_k", QFMT_TYPE_Q4_K, 3, {256, 1, Q4K_ROWS, 1}}};
    const void *want[] = {d->f32, d->streamed, d->f16, NULL, d->q8, d->q4k};
    uint64_t end = 0;
    const uint8_t *base = NULL;
    for (uint64_t k = 0; k < 6; k++) {
        qfmt_gguf_tensor t;
        TH_OKE(qfmt_gguf_tensor_get(g, k, &t, &e), e);
        cr_assert_str_eq(t.name, ts[k].name);
        cr_assert_eq(t.name_len, strlen(ts[k].name));
        cr_assert_eq(t.type, ts[k].type);
        cr_assert_eq(t.ndim, ts[k].ndim);
        uint64_t nel = 1;
        for (int dd = 0; dd < 4; dd++) {
            cr_assert_eq(t.ne[dd], ts[k].ne[dd], "%s ne[%d]", t.name, dd);
            nel *= t.ne[dd];
        }
        cr_assert_eq(t.nelements, nel);
        uint64_t size;
        TH_OKE(qfmt_type_size(t.type, t.nelements, &size), e);
        cr_assert_eq(t.size, size, "%s size", t.name);
        cr_assert_eq(t.flags, 0u);
        cr_assert_eq(t.offset % qfmt_gguf_alignment(g), 0u, "%s offset %" PRIu64, t.name, t.offset);
        cr_assert_geq(t.offset, qfmt_gguf_data_offset(g));
        cr_assert_geq(t.offset, end, "in order, not overlapping");
        cr_assert_leq(t.offset + t.size, qfmt_gguf_file_size(g));
        if (k == 0) base = (const uint8_t *)t.data - t.offset;
        cr_assert_eq((const uint8_t *)t.data, base + t.offset, "zero-copy view at its offset");
        if (want[k]) cr_assert_eq(memcmp(t.data, want[k], t.size), 0, "%s bytes", t.name);
        end = t.offset + t.size;
        uint64_t found;
        TH_OKE(qfmt_gguf_find_tensor(g, t.name, &found, &e), e);
        cr_assert_eq(found, k);
    }
    expect_status(qfmt_gguf_find_tensor(g, "t.f3", &idx, &e), QFMT_E_NOT_FOUND, &e, "find");
    cr_assert_str_eq(e.tensor, "t.f3");
    qfmt_gguf_tensor t;
    expect_status(qfmt_gguf_tensor_get(g, 6, &t, &e), QFMT_E_RANGE, &e, "tensor past end");
    /* the padding after the last tensor is written, as ggml writes it */
    cr_assert_eq(qfmt_gguf_file_size(g), th_align_up(end, qfmt_gguf_alignment(g)));
}

Test(gguf_writer, roundtrip_every_type) {
    rt_data d;
    rt_fill(&d);
    static const uint32_t aligns[] = {0, 1, 64, 4096};
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        scratch s;
        scratch_init(&s, "rt.gguf");
        write_roundtrip(s.path, &d, aligns[a]);
        cr_assert_eq(th_count_entries(s.dir, NULL, 0), 1, "only the file: no temporary left");
        qfmt_gguf *g = NULL;
        qfmt_error e;
        TH_OKE(qfmt_gguf_open(&g, s.path, &e), e);
        check_roundtrip(g, &d, aligns[a]);
        /* the data pointers of the map honour the alignment (the map is page-aligned) */
        for (uint64_t k = 0; k < qfmt_gguf_tensor_count(g); k++) {
            qfmt_gguf_tensor t;
            TH_OKE(qfmt_gguf_tensor_get(g, k, &t, &e), e);
            cr_assert_eq((uintptr_t)t.data % qfmt_gguf_alignment(g), 0u);
        }
        qfmt_gguf_close(g);
        /* and from memory */
        size_t n;
        uint8_t *buf = th_read_file(s.path, &n);
        if (aligns[a] == 0) save_seed("valid", "roundtrip", buf, n);
        TH_OKE(qfmt_gguf_open_memory(&g, buf, n, &e), e);
        cr_assert_eq(qfmt_gguf_file_size(g), n);
        check_roundtrip(g, &d, aligns[a]);
        qfmt_gguf_close(g);
        free(buf);
        th_rmtree(s.dir);
    }
}

Test(gguf_writer, empty_file_and_overwrite) {
    scratch s;
    scratch_init(&s, "empty.gguf");
    th_write_file(s.path, "old", 3);
    qfmt_gguf_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_gguf_writer_create(&w, s.path, &e), e);
    TH_OKE(qfmt_gguf_writer_commit(w, &e), e);
    qfmt_gguf_writer_free(w);
    size_t n;
    uint8_t *buf = th_read_file(s.path, &n);
    cr_assert_eq(n, 32u, "24-byte header padded to 32");
    qfmt_gguf *g;
    TH_OKE(qfmt_gguf_open_memory(&g, buf, n, &e), e);
    cr_assert_eq(qfmt_gguf_kv_count(g), 0u);
    cr_assert_eq(qfmt_gguf_tensor_count(g), 0u);
    cr_assert_eq(qfmt_gguf_data_offset(g), 24u, "without tensors ggml does not pad");
    qfmt_gguf_close(g);
    /* ggml's reader takes the unpadded 24 bytes too */
    TH_OKE(qfmt_gguf_open_memory(&g, buf, 24, &e), e);
    qfmt_gguf_close(g);
    free(buf);
    th_rmtree(s.dir);
}

/* ---- Writer: refusals ------------------------------------------------------------------------ */
Test(gguf_writer, refusals) {
    scratch s;
    scratch_init(&s, "bad.gguf");
    th_write_file(s.path, "old", 3);
    qfmt_gguf_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_gguf_writer_create(&w, s.path, &e), e);
    float f[32] = {0};
    uint64_t ne[4] = {32, 1, 1, 1};
    TH_OKE(qfmt_gguf_writer_set_u32(w, "k", 1, &e), e);
    expect_status(qfmt_gguf_writer_set_str(w, "k", "x", 1, &e), QFMT_E_EXISTS, &e, "dup key");
    expect_status(qfmt_gguf_writer_set_u32(w, "", 1, &e), QFMT_E_ARG, &e, "empty key");
    expect_status(qfmt_gguf_writer_set_u32(w, NULL, 1, &e), QFMT_E_ARG, &e, "NULL key");
    expect_status(qfmt_gguf_writer_set_u32(w, "bad\xff", 1, &e), QFMT_E_ARG, &e, "non-UTF-8 key");
    char *longkey = malloc(QFMT_GGUF_MAX_KEY_LEN + 2);
    memset(longkey, 'k', QFMT_GGUF_MAX_KEY_LEN + 1);
    longkey[QFMT_GGUF_MAX_KEY_LEN + 1] = 0;
    expect_status(qfmt_gguf_writer_set_u32(w, longkey, 1, &e), QFMT_E_ARG, &e, "long key");
    longkey[QFMT_GGUF_MAX_KEY_LEN] = 0;
    TH_OKE(qfmt_gguf_writer_set_u32(w, longkey, 1, &e), e);
    free(longkey);
    expect_status(qfmt_gguf_writer_set_u64(w, "general.alignment", 32, &e), QFMT_E_ARG, &e, "alignment u64");
    expect_status(qfmt_gguf_writer_set_u32(w, "general.alignment", 0, &e), QFMT_E_ARG, &e, "alignment 0");
    expect_status(qfmt_gguf_writer_set_u32(w, "general.alignment", 48, &e), QFMT_E_ARG, &e, "alignment 48");
    expect_status(qfmt_gguf_writer_set_u32(w, "general.alignment", 1u << 21, &e), QFMT_E_ARG, &e,
                  "alignment 2 MiB");
    expect_status(qfmt_gguf_writer_set_value(w, "v", QFMT_GGUF_STRING, "x", &e), QFMT_E_ARG, &e, "set_value str");
    expect_status(qfmt_gguf_writer_set_value(w, "v", 13, f, &e), QFMT_E_ARG, &e, "set_value 13");
    expect_status(qfmt_gguf_writer_set_value(w, "v", QFMT_GGUF_UINT8, NULL, &e), QFMT_E_ARG, &e, "NULL value");
    expect_status(qfmt_gguf_writer_set_array(w, "v", QFMT_GGUF_ARRAY, f, 1, &e), QFMT_E_ARG, &e, "nested");
    expect_status(qfmt_gguf_writer_set_array(w, "v", QFMT_GGUF_STRING, f, 1, &e), QFMT_E_ARG, &e, "str elems");
    expect_status(qfmt_gguf_writer_set_array(w, "v", QFMT_GGUF_FLOAT32, NULL, 1, &e), QFMT_E_ARG, &e, "NULL data");
    expect_status(qfmt_gguf_writer_set_array(w, "v", QFMT_GGUF_UINT64, f, UINT64_MAX / 4, &e),
                  QFMT_E_RANGE, &e, "huge array");
    const char *nul1[1] = {NULL};
    expect_status(qfmt_gguf_writer_set_str_array(w, "v", nul1, NULL, 1, &e), QFMT_E_ARG, &e, "NULL string");
    expect_status(qfmt_gguf_writer_set_str(w, "v", NULL, 3, &e), QFMT_E_ARG, &e, "NULL str");

    TH_OKE(qfmt_gguf_writer_add_tensor(w, "t", QFMT_TYPE_F32, 1, ne, f, sizeof f, &e), e);
    expect_status(qfmt_gguf_writer_add_tensor(w, "t", QFMT_TYPE_F32, 1, ne, f, sizeof f, &e),
                  QFMT_E_EXISTS, &e, "dup name");
    cr_assert_str_eq(e.tensor, "t");
    char name64[65];
    memset(name64, 'n', 64);
    name64[64] = 0;
    expect_status(qfmt_gguf_writer_add_tensor(w, name64, QFMT_TYPE_F32, 1, ne, f, sizeof f, &e),
                  QFMT_E_ARG, &e, "64-byte name (ggml's GGML_MAX_NAME)");
    name64[63] = 0;
    TH_OKE(qfmt_gguf_writer_add_tensor(w, name64, QFMT_TYPE_F32, 1, ne, f, sizeof f, &e), e);
    expect_status(qfmt_gguf_writer_add_tensor(w, "", QFMT_TYPE_F32, 1, ne, f, sizeof f, &e), QFMT_E_ARG, &e, "empty");
    expect_status(qfmt_gguf_writer_add_tensor(w, "u", QFMT_TYPE_Q8_Z, 1, ne, f, 35, &e),
                  QFMT_E_UNSUPPORTED, &e, "qfmt's own type");
    expect_status(qfmt_gguf_writer_add_tensor(w, "u", 16, 1, ne, f, 66, &e), QFMT_E_UNSUPPORTED, &e,
                  "a ggml type qfmt does not know");
    expect_status(qfmt_gguf_writer_add_tensor(w, "u", QFMT_TYPE_F32, 0, ne, f, 4, &e), QFMT_E_ARG, &e, "ndim 0");
    expect_status(qfmt_gguf_writer_add_tensor(w, "u", QFMT_TYPE_F32, 5, ne, f, 128, &e), QFMT_E_ARG, &e, "ndim 5");
    expect_status(qfmt_gguf_writer_add_tensor(w, "u", QFMT_TYPE_F32, 1, ne, f, 127, &e), QFMT_E_ARG, &e, "size");
    uint64_t ne33[1] = {33};
    expect_status(qfmt_gguf_writer_add_tensor(w, "u", QFMT_TYPE_Q8_0, 1, ne33, f, 34, &e), QFMT_E_ARG, &e,
                  "partial block");
    uint64_t nebig[2] = {1ull << 32, 1ull << 32};
    expect_status(qfmt_gguf_writer_add_tensor(w, "u", QFMT_TYPE_F32, 2, nebig, NULL, 0, &e), QFMT_E_ARG, &e,
                  "element count overflow");
    uint64_t nehuge[1] = {1ull << 62};
    expect_status(qfmt_gguf_writer_add_tensor(w, "u", QFMT_TYPE_F32, 1, nehuge, NULL, 0, &e), QFMT_E_ARG, &e,
                  "byte size overflow");
    expect_status(qfmt_gguf_writer_write(w, f, 1, &e), QFMT_E_ARG, &e, "nothing to stream");
    cr_assert_not_null(qfmt_gguf_writer_temp_path(w), "refusals leave the writer usable");
    TH_OKE(qfmt_gguf_writer_add_tensor(w, "streamed", QFMT_TYPE_F32, 1, ne, NULL, sizeof f, &e), e);
    expect_status(qfmt_gguf_writer_write(w, f, sizeof f + 1, &e), QFMT_E_ARG, &e, "too many bytes");
    TH_OKE(qfmt_gguf_writer_write(w, f, 8, &e), e);
    /* the header is out: no more declarations */
    expect_status(qfmt_gguf_writer_set_u32(w, "late", 1, &e), QFMT_E_STATE, &e, "set after header");
    expect_status(qfmt_gguf_writer_add_tensor(w, "late", QFMT_TYPE_F32, 1, ne, f, sizeof f, &e),
                  QFMT_E_STATE, &e, "add after header");
    /* a byte missing: commit refuses, removes the temporary file, keeps the target */
    TH_OKE(qfmt_gguf_writer_write(w, f, sizeof f - 9, &e), e);
    expect_status(qfmt_gguf_writer_commit(w, &e), QFMT_E_STATE, &e, "commit short");
    cr_assert_str_eq(e.tensor, "streamed");
    expect_status(qfmt_gguf_writer_commit(w, &e), QFMT_E_STATE, &e, "commit twice");
    cr_assert_null(qfmt_gguf_writer_temp_path(w));
    qfmt_gguf_writer_free(w);
    cr_assert_eq(th_count_entries(s.dir, NULL, 0), 1);
    size_t n;
    uint8_t *old = th_read_file(s.path, &n);
    cr_assert(n == 3 && memcmp(old, "old", 3) == 0, "the target is untouched");
    free(old);

    /* free without commit removes the temporary file */
    TH_OKE(qfmt_gguf_writer_create(&w, s.path, &e), e);
    TH_OKE(qfmt_gguf_writer_set_u32(w, "k", 1, &e), e);
    cr_assert_eq(th_count_entries(s.dir, NULL, 0), 2);
    qfmt_gguf_writer_free(w);
    cr_assert_eq(th_count_entries(s.dir, NULL, 0), 1);
    qfmt_gguf_writer_free(NULL);

    /* a missing directory: nothing created */
    char bad[PATH_MAX + 64];
    snprintf(bad, sizeof bad, "%s/no/such/dir.gguf", s.dir);
    w = (qfmt_gguf_writer *)(uintptr_t)1;
    expect_status(qfmt_gguf_writer_create(&w, bad, &e), QFMT_E_IO, &e, "missing dir");
    cr_assert_null(w);
    cr_assert_eq(e.sys_errno, ENOENT);
    expect_status(qfmt_gguf_writer_create(&w, "", &e), QFMT_E_ARG, &e, "empty path");
    th_rmtree(s.dir);
}

/* ---- Getters never trust the stored type --------------------------------------------------- */
Test(gguf_reader, typed_getters_check_types) {
    bb b = {0};
    hdr(&b, 3, 0, 9);
    kv_str(&b, "s", "text");
    kv_u32(&b, "u", 7);
    bb_str(&b, "neg");
    bb_u32(&b, QFMT_GGUF_INT16);
    bb_put(&b, "\xfe\xff", 2); /* -2 */
    bb_str(&b, "big");
    bb_u32(&b, QFMT_GGUF_UINT64);
    bb_u64(&b, 1ull << 63);
    bb_str(&b, "f");
    bb_u32(&b, QFMT_GGUF_FLOAT64);
    bb_u64(&b, 0x7ff8000000000000ull); /* NaN */
    bb_str(&b, "b");
    bb_u32(&b, QFMT_GGUF_BOOL);
    bb_u8(&b, 1);
    bb_str(&b, "arr");
    bb_u32(&b, QFMT_GGUF_ARRAY);
    bb_u32(&b, QFMT_GGUF_UINT32);
    bb_u64(&b, 2);
    bb_u32(&b, 5);
    bb_u32(&b, 6);
    bb_str(&b, "sarr");
    bb_u32(&b, QFMT_GGUF_ARRAY);
    bb_u32(&b, QFMT_GGUF_STRING);
    bb_u64(&b, 1);
    bb_str(&b, "one");
    bb_str(&b, "f32");
    bb_u32(&b, QFMT_GGUF_FLOAT32);
    bb_u32(&b, 0x3f800000u);
    opened o = open_ok("getters", &b);
    const qfmt_gguf *g = o.g;
    qfmt_error e;
    uint64_t u = 12345;
    int64_t i;
    double f;
    bool bo;
    const char *p;
    size_t len;
    uint32_t et;
    uint64_t n;
    expect_status(qfmt_gguf_get_u64(g, "s", &u, &e), QFMT_E_TYPE, &e, "u64 of a string");
    cr_assert_eq(u, 12345u, "untouched on failure");
    expect_status(qfmt_gguf_get_i64(g, "s", &i, &e), QFMT_E_TYPE, &e, "i64 of a string");
    expect_status(qfmt_gguf_get_f64(g, "u", &f, &e), QFMT_E_TYPE, &e, "f64 of a u32");
    expect_status(qfmt_gguf_get_bool(g, "u", &bo, &e), QFMT_E_TYPE, &e, "bool of a u32");
    expect_status(qfmt_gguf_get_u64(g, "b", &u, &e), QFMT_E_TYPE, &e, "u64 of a bool");
    expect_status(qfmt_gguf_get_u64(g, "f", &u, &e), QFMT_E_TYPE, &e, "u64 of a float");
    expect_status(qfmt_gguf_get_str(g, "u", &p, &len, &e), QFMT_E_TYPE, &e, "str of a u32");
    expect_status(qfmt_gguf_get_str(g, "sarr", &p, &len, &e), QFMT_E_TYPE, &e, "str of an array");
    expect_status(qfmt_gguf_get_u64(g, "arr", &u, &e), QFMT_E_TYPE, &e, "u64 of an array");
    expect_status(qfmt_gguf_get_array(g, "s", &et, &n, &e), QFMT_E_TYPE, &e, "array of a string");
    expect_status(qfmt_gguf_get_array(g, "u", &et, &n, &e), QFMT_E_TYPE, &e, "array of a u32");
    expect_status(qfmt_gguf_array_str(g, "arr", 0, &p, &len, &e), QFMT_E_TYPE, &e, "str of a u32 array");
    expect_status(qfmt_gguf_array_u64(g, "sarr", 0, &u, &e), QFMT_E_TYPE, &e, "u64 of a str array");
    expect_status(qfmt_gguf_array_u64(g, "u", 0, &u, &e), QFMT_E_TYPE, &e, "array_u64 of a scalar");
    expect_status(qfmt_gguf_array_f64(g, "arr", 0, &f, &e), QFMT_E_TYPE, &e, "f64 of a u32 array");
    expect_status(qfmt_gguf_array_bool(g, "arr", 0, &bo, &e), QFMT_E_TYPE, &e, "bool of a u32 array");
    expect_status(qfmt_gguf_array_u64(g, "arr", 2, &u, &e), QFMT_E_RANGE, &e, "past the end");
    expect_status(qfmt_gguf_get_u64(g, "neg", &u, &e), QFMT_E_RANGE, &e, "u64 of -2");
    expect_status(qfmt_gguf_get_i64(g, "big", &i, &e), QFMT_E_RANGE, &e, "i64 of 2^63");
    expect_status(qfmt_gguf_get_u64(g, "nope", &u, &e), QFMT_E_NOT_FOUND, &e, "absent");
    expect_status(qfmt_gguf_get_u64(g, NULL, &u, &e), QFMT_E_ARG, &e, "NULL key");
    expect_status(qfmt_gguf_get_u64(NULL, "u", &u, &e), QFMT_E_ARG, &e, "NULL handle");
    expect_status(qfmt_gguf_find_key(g, "ne", &n, &e), QFMT_E_NOT_FOUND, &e, "prefix of a key");
    TH_OKE(qfmt_gguf_get_i64(g, "neg", &i, &e), e);
    cr_assert_eq(i, -2);
    TH_OKE(qfmt_gguf_get_u64(g, "big", &u, &e), e);
    cr_assert_eq(u, 1ull << 63);
    TH_OKE(qfmt_gguf_get_f64(g, "f", &f, &e), e);
    cr_assert(isnan(f));
    TH_OKE(qfmt_gguf_get_f64(g, "f32", &f, &e), e);
    cr_assert_eq(f, 1.0);
    TH_OKE(qfmt_gguf_array_str(g, "sarr", 0, &p, &len, &e), e);
    cr_assert(len == 3 && memcmp(p, "one", 3) == 0);
    cr_assert_str_eq(qfmt_gguf_type_name(QFMT_GGUF_STRING), "str");
    cr_assert_str_eq(qfmt_gguf_type_name(13), "unknown");
    done(&o);
    bb_free(&b);
}

/* ---- The files llama.cpp wrote ------------------------------------------------------------- */
static void unzst(const char *path, const char *out) {
    size_t n;
    uint8_t *z = th_read_file(path, &n);
    unsigned long long size = ZSTD_getFrameContentSize(z, n);
    cr_assert(size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN && size < (1ull << 31),
              "%s: not a zstd frame of known size", path);
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    cr_assert_not_null(buf);
    size_t got = ZSTD_decompress(buf, (size_t)size, z, n);
    cr_assert(!ZSTD_isError(got) && got == size, "%s", path);
    th_write_file(out, buf, got);
    free(buf);
    free(z);
}

/* Unpacks tests/data/gguf/<name>.gguf.zst into s. */
static void unpack(scratch *s, const char *name) {
    char file[128], src[PATH_MAX];
    snprintf(file, sizeof file, "%s.gguf", name);
    scratch_init(s, file);
    snprintf(src, sizeof src, "%s/%s.gguf.zst", GGUF_DIR, name);
    unzst(src, s->path);
}

static void expect_u64(const qfmt_gguf *g, const char *key, uint64_t want) {
    uint64_t v;
    qfmt_error e;
    TH_OKE(qfmt_gguf_get_u64(g, key, &v, &e), e);
    cr_assert_eq(v, want, "%s = %" PRIu64 ", want %" PRIu64, key, v, want);
}

static void expect_tensor(const qfmt_gguf *g, const char *name, uint32_t type, uint32_t ndim,
                          uint64_t ne0, uint64_t ne1) {
    uint64_t i;
    qfmt_gguf_tensor t;
    qfmt_error e;
    TH_OKE(qfmt_gguf_find_tensor(g, name, &i, &e), e);
    TH_OKE(qfmt_gguf_tensor_get(g, i, &t, &e), e);
    cr_assert_eq(t.type, type, "%s type %u", name, t.type);
    cr_assert_eq(t.ndim, ndim, "%s ndim", name);
    cr_assert_eq(t.ne[0], ne0, "%s ne[0]", name);
    cr_assert_eq(t.ne[1], ne1, "%s ne[1]", name);
}

/* What every GGUF file llama.cpp writes satisfies: tensors tiling the data section in order,
 * each sized by qfmt_type_size, inside the file; every tensor dequantizes to finite values. */
static void check_layout(const qfmt_gguf *g, const uint8_t *file, size_t size) {
    qfmt_error e;
    uint64_t at = qfmt_gguf_data_offset(g);
    const uint8_t *base = NULL;
    cr_assert_eq(at % 32, 0u);
    for (uint64_t i = 0; i < qfmt_gguf_tensor_count(g); i++) {
        qfmt_gguf_tensor t;
        TH_OKE(qfmt_gguf_tensor_get(g, i, &t, &e), e);
        cr_assert_eq(t.flags, 0u);
        cr_assert_eq(t.offset, at, "%s: at the end of the previous one, padded", t.name);
        uint64_t bytes;
        TH_OKE(qfmt_type_size(t.type, t.nelements, &bytes), e);
        cr_assert_eq(t.size, bytes);
        cr_assert_leq(t.offset + t.size, size);
        if (i == 0) base = (const uint8_t *)t.data - t.offset;
        cr_assert_eq((const uint8_t *)t.data, base + t.offset, "%s: a view into the map", t.name);
        cr_assert_eq(memcmp(t.data, file + t.offset, (size_t)t.size), 0, "%s: the file's bytes", t.name);
        at = th_align_up(t.offset + t.size, 32);
        /* rows of ne[0] values: decode them all */
        uint64_t rows = t.nelements / t.ne[0];
        float *out = malloc((size_t)t.nelements * sizeof *out);
        cr_assert_not_null(out);
        TH_OKE(qfmt_dequantize(QFMT_TYPE_F32, out, t.nelements * sizeof *out, t.type, t.data, rows,
                               t.ne[0], NULL, &e), e);
        for (uint64_t k = 0; k < t.nelements; k++) cr_assert(isfinite(out[k]), "%s[%" PRIu64 "]", t.name, k);
        free(out);
    }
    cr_assert_eq(at, size, "the file ends with the last tensor's padding");
}

/* The llama.cpp file written again by the writer, from what the reader gives: byte for byte. */
static void rewrite_identical(const qfmt_gguf *g, const uint8_t *file, size_t size, const char *dir) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/rewritten.gguf", dir);
    qfmt_gguf_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_gguf_writer_create(&w, path, &e), e);
    for (uint64_t i = 0; i < qfmt_gguf_kv_count(g); i++) {
        qfmt_gguf_kv kv;
        TH_OKE(qfmt_gguf_kv_get(g, i, &kv, &e), e);
        if (kv.type == QFMT_GGUF_STRING) {
            TH_OKE(qfmt_gguf_writer_set_str(w, kv.key, (const char *)kv.data, (size_t)kv.count, &e), e);
        } else if (kv.type == QFMT_GGUF_ARRAY && kv.elem_type == QFMT_GGUF_STRING) {
            const char **strs = calloc((size_t)kv.count + 1, sizeof *strs);
            size_t *lens = calloc((size_t)kv.count + 1, sizeof *lens);
            for (uint64_t k = 0; k < kv.count; k++)
                TH_OKE(qfmt_gguf_array_str(g, kv.key, k, &strs[k], &lens[k], &e), e);
            TH_OKE(qfmt_gguf_writer_set_str_array(w, kv.key, strs, lens, kv.count, &e), e);
            free(strs);
            free(lens);
        } else if (kv.type == QFMT_GGUF_ARRAY) {
            /* little-endian bytes are native bytes on this host (bools are 0/1 bytes) */
            TH_OKE(qfmt_gguf_writer_set_array(w, kv.key, kv.elem_type, kv.data, kv.count, &e), e);
        } else {
            TH_OKE(qfmt_gguf_writer_set_value(w, kv.key, kv.type, kv.data, &e), e);
        }
    }
    for (uint64_t i = 0; i < qfmt_gguf_tensor_count(g); i++) {
        qfmt_gguf_tensor t;
        TH_OKE(qfmt_gguf_tensor_get(g, i, &t, &e), e);
        TH_OKE(qfmt_gguf_writer_add_tensor(w, t.name, t.type, t.ndim, t.ne, t.data, t.size, &e), e);
    }
    TH_OKE(qfmt_gguf_writer_commit(w, &e), e);
    qfmt_gguf_writer_free(w);
    size_t n;
    uint8_t *again = th_read_file(path, &n);
    cr_assert_eq(n, size, "rewritten size %zu, llama.cpp's %zu", n, size);
    for (size_t k = 0; k < n; k++)
        if (again[k] != file[k]) cr_assert_fail("rewritten file differs at byte %zu", k);
    free(again);
}

/* A small copy of a llama.cpp file for the fuzz corpus: its keys (arrays cut to 8 elements), its
 * tensor names and types, each tensor one row of one block and the first bytes of its data. */
static void save_shrunk(const qfmt_gguf *g, const char *name) {
    const char *dir = getenv("QFMT_GGUF_SEED_DIR");
    if (!dir || !*dir) return;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/llamacpp_%s", dir, name);
    qfmt_gguf_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_gguf_writer_create(&w, path, &e), e);
    for (uint64_t i = 0; i < qfmt_gguf_kv_count(g); i++) {
        qfmt_gguf_kv kv;
        TH_OKE(qfmt_gguf_kv_get(g, i, &kv, &e), e);
        uint64_t n = kv.count < 8 ? kv.count : 8;
        if (kv.type == QFMT_GGUF_STRING) {
            TH_OKE(qfmt_gguf_writer_set_str(w, kv.key, (const char *)kv.data, (size_t)kv.count, &e), e);
        } else if (kv.type == QFMT_GGUF_ARRAY && kv.elem_type == QFMT_GGUF_STRING) {
            const char *strs[8];
            size_t lens[8];
            for (uint64_t k = 0; k < n; k++) TH_OKE(qfmt_gguf_array_str(g, kv.key, k, &strs[k], &lens[k], &e), e);
            TH_OKE(qfmt_gguf_writer_set_str_array(w, kv.key, strs, lens, n, &e), e);
        } else if (kv.type == QFMT_GGUF_ARRAY) {
            TH_OKE(qfmt_gguf_writer_set_array(w, kv.key, kv.elem_type, kv.data, n, &e), e);
        } else {
            TH_OKE(qfmt_gguf_writer_set_value(w, kv.key, kv.type, kv.data, &e), e);
        }
    }
    for (uint64_t i = 0; i < qfmt_gguf_tensor_count(g) && i < 12; i++) {
        qfmt_gguf_tensor t;
        TH_OKE(qfmt_gguf_tensor_get(g, i, &t, &e), e);
        const qfmt_type_traits *tr = qfmt_type_get_traits(t.type);
        uint64_t ne[2] = {tr->block_elems, 1};
        TH_OKE(qfmt_gguf_writer_add_tensor(w, t.name, t.type, t.ndim, ne, t.data, tr->block_bytes, &e), e);
    }
    TH_OKE(qfmt_gguf_writer_commit(w, &e), e);
    qfmt_gguf_writer_free(w);
}

Test(gguf_llamacpp, gpt2_q8_0) {
    scratch s;
    unpack(&s, "gpt2-kjv.Q8_0");
    qfmt_gguf *g = NULL;
    qfmt_error e;
    TH_OKE(qfmt_gguf_open(&g, s.path, &e), e);
    size_t size;
    uint8_t *file = th_read_file(s.path, &size);
    cr_assert_eq(qfmt_gguf_file_size(g), 3088256u);
    cr_assert_eq(qfmt_gguf_version(g), 3u);
    cr_assert_eq(qfmt_gguf_alignment(g), 32u);
    cr_assert_eq(qfmt_gguf_kv_count(g), 19u);
    cr_assert_eq(qfmt_gguf_tensor_count(g), 52u);
    cr_assert_eq(qfmt_gguf_data_offset(g), 134528u);
    check_str(g, "general.architecture", "gpt2", 4);
    check_str(g, "general.name", "Gpt2 Kjv", 8);
    check_str(g, "tokenizer.ggml.model", "gpt2", 4);
    check_str(g, "tokenizer.ggml.pre", "gpt-2", 5);
    expect_u64(g, "gpt2.block_count", 4);
    expect_u64(g, "gpt2.context_length", 256);
    expect_u64(g, "gpt2.embedding_length", 192);
    expect_u64(g, "gpt2.feed_forward_length", 768);
    expect_u64(g, "gpt2.attention.head_count", 6);
    expect_u64(g, "general.file_type", 7);
    expect_u64(g, "general.quantization_version", 2);
    double eps;
    TH_OKE(qfmt_gguf_get_f64(g, "gpt2.attention.layer_norm_epsilon", &eps, &e), e);
    cr_assert_eq(eps, (double)1e-5f);
    uint32_t et;
    uint64_t n;
    TH_OKE(qfmt_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &n, &e), e);
    cr_assert(et == QFMT_GGUF_STRING && n == 4096);
    const char *p;
    size_t len;
    TH_OKE(qfmt_gguf_array_str(g, "tokenizer.ggml.tokens", 0, &p, &len, &e), e);
    cr_assert(len == 13 && memcmp(p, "<|endoftext|>", 13) == 0);
    TH_OKE(qfmt_gguf_array_str(g, "tokenizer.ggml.tokens", 4095, &p, &len, &e), e);
    cr_assert_gt(len, 0u);
    TH_OKE(qfmt_gguf_get_array(g, "tokenizer.ggml.merges", &et, &n, &e), e);
    cr_assert(et == QFMT_GGUF_STRING && n == 3835);
    TH_OKE(qfmt_gguf_array_str(g, "tokenizer.ggml.merges", 0, &p, &len, &e), e);
    cr_assert(len == 3 && memcmp(p, "t h", 3) == 0);
    TH_OKE(qfmt_gguf_get_array(g, "tokenizer.ggml.token_type", &et, &n, &e), e);
    cr_assert(et == QFMT_GGUF_INT32 && n == 4096);
    int64_t tt;
    TH_OKE(qfmt_gguf_array_i64(g, "tokenizer.ggml.token_type", 0, &tt, &e), e);
    cr_assert_eq(tt, 3); /* CONTROL */
    expect_tensor(g, "token_embd.weight", QFMT_TYPE_Q8_0, 2, 192, 4096);
    expect_tensor(g, "position_embd.weight", QFMT_TYPE_F32, 2, 192, 256);
    expect_tensor(g, "output_norm.bias", QFMT_TYPE_F32, 1, 192, 1);
    expect_tensor(g, "blk.0.attn_qkv.weight", QFMT_TYPE_Q8_0, 2, 192, 576);
    expect_tensor(g, "blk.0.attn_qkv.bias", QFMT_TYPE_F32, 1, 576, 1);
    expect_tensor(g, "blk.3.ffn_down.weight", QFMT_TYPE_Q8_0, 2, 768, 192);
    uint64_t i;
    expect_status(qfmt_gguf_find_tensor(g, "blk.4.ffn_down.weight", &i, &e), QFMT_E_NOT_FOUND, &e, "blk.4");
    check_layout(g, file, size);
    rewrite_identical(g, file, size, s.dir);
    save_shrunk(g, "gpt2");
    qfmt_gguf_close(g);
    free(file);
    th_rmtree(s.dir);
}

Test(gguf_llamacpp, llama_q4_k_m) {
    scratch s;
    unpack(&s, "llama-kjv.Q4_K_M");
    qfmt_gguf *g = NULL;
    qfmt_error e;
    TH_OKE(qfmt_gguf_open(&g, s.path, &e), e);
    size_t size;
    uint8_t *file = th_read_file(s.path, &size);
    cr_assert_eq(qfmt_gguf_file_size(g), 3481152u);
    cr_assert_eq(qfmt_gguf_kv_count(g), 25u);
    cr_assert_eq(qfmt_gguf_tensor_count(g), 39u);
    check_str(g, "general.architecture", "llama", 5);
    expect_u64(g, "llama.block_count", 4);
    expect_u64(g, "llama.context_length", 512);
    expect_u64(g, "llama.embedding_length", 256);
    expect_u64(g, "llama.attention.head_count", 8);
    expect_u64(g, "llama.attention.head_count_kv", 4);
    expect_u64(g, "llama.vocab_size", 4096);
    expect_u64(g, "llama.rope.dimension_count", 32);
    expect_u64(g, "general.file_type", 15); /* MOSTLY_Q4_K_M */
    double theta;
    TH_OKE(qfmt_gguf_get_f64(g, "llama.rope.freq_base", &theta, &e), e);
    cr_assert_eq(theta, 10000.0);
    uint32_t et;
    uint64_t n;
    TH_OKE(qfmt_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &n, &e), e);
    cr_assert(et == QFMT_GGUF_STRING && n == 4096);
    expect_tensor(g, "token_embd.weight", QFMT_TYPE_Q4_K, 2, 256, 4096);
    expect_tensor(g, "output.weight", QFMT_TYPE_Q6_K, 2, 256, 4096);
    expect_tensor(g, "output_norm.weight", QFMT_TYPE_F32, 1, 256, 1);
    expect_tensor(g, "blk.0.attn_q.weight", QFMT_TYPE_Q4_K, 2, 256, 256);
    expect_tensor(g, "blk.0.attn_k.weight", QFMT_TYPE_Q4_K, 2, 256, 128);
    expect_tensor(g, "blk.0.ffn_gate.weight", QFMT_TYPE_Q4_K, 2, 256, 768);
    expect_tensor(g, "blk.3.attn_norm.weight", QFMT_TYPE_F32, 1, 256, 1);
    /* the Q4_K_M mix: some tensors Q6_K */
    unsigned q6 = 0, q4 = 0, f32 = 0;
    for (uint64_t i = 0; i < qfmt_gguf_tensor_count(g); i++) {
        qfmt_gguf_tensor t;
        TH_OKE(qfmt_gguf_tensor_get(g, i, &t, &e), e);
        q6 += t.type == QFMT_TYPE_Q6_K;
        q4 += t.type == QFMT_TYPE_Q4_K;
        f32 += t.type == QFMT_TYPE_F32;
    }
    cr_assert(q6 == 5 && q4 == 25 && f32 == 9, "q6_k %u, q4_k %u, f32 %u", q6, q4, f32);
    check_layout(g, file, size);
    rewrite_identical(g, file, size, s.dir);
    save_shrunk(g, "llama");
    qfmt_gguf_close(g);
    free(file);
    th_rmtree(s.dir);
}

/* Every prefix of the header of a real file, and a stride through its data, is refused. */
Test(gguf_llamacpp, prefixes_refused) {
    scratch s;
    unpack(&s, "gpt2-kjv.Q8_0");
    size_t size;
    uint8_t *file = th_read_file(s.path, &size);
    qfmt_error e;
    qfmt_gguf *g;
    TH_OKE(qfmt_gguf_open_memory(&g, file, size, &e), e);
    qfmt_gguf_tensor last;
    TH_OKE(qfmt_gguf_tensor_get(g, qfmt_gguf_tensor_count(g) - 1, &last, &e), e);
    size_t need = (size_t)(last.offset + last.size);
    qfmt_gguf_close(g);
    for (size_t n = 0; n < size; n += n < 4096 ? 1 : n < 140000 ? 61 : 4099) {
        char what[64];
        snprintf(what, sizeof what, "prefix %zu", n);
        if (n >= need) { /* only the last padding cut */
            uint8_t *copy;
            g = open_expect(file, n, QFMT_OK, &e, what, &copy);
            qfmt_gguf_close(g);
            free(copy);
            continue;
        }
        open_expect(file, n, n == 0 ? QFMT_E_BAD_MAGIC : QFMT_E_CORRUPT, &e, what, NULL);
    }
    free(file);
    th_rmtree(s.dir);
}

/* ---- Hostile files -------------------------------------------------------------------------- */

/* A valid base: one kv, one f32 tensor of 4 values at 0. */
static void base_file(bb *b, uint32_t version) {
    uint64_t ne[1] = {4};
    hdr(b, version, 1, 1);
    kv_str(b, "general.architecture", "llama");
    tinfo(b, "t", 1, ne, QFMT_TYPE_F32, 0);
    bb_pad(b, 32);
    bb_fill(b, 16, 1);
}

Test(gguf_hostile, magic_and_versions) {
    bb b = {0};
    base_file(&b, 3);
    opened o = open_ok("base_v3", &b);
    done(&o);
    bb_free(&b);
    base_file(&b, 2);
    o = open_ok("base_v2", &b);
    cr_assert_eq(qfmt_gguf_version(o.g), 2u);
    done(&o);
    bb_free(&b);
    base_file(&b, 3);
    b.p[0] = 'g';
    hostile("bad_magic", &b, QFMT_E_BAD_MAGIC, "magic");
    bb_free(&b);
    static const struct {
        const char *name;
        uint32_t version;
        qfmt_status want;
    } v[] = {{"version_0", 0, QFMT_E_CORRUPT},
             {"version_1", 1, QFMT_E_UNSUPPORTED},
             {"version_4", 4, QFMT_E_UNSUPPORTED},
             {"version_big_endian", 0x03000000u, QFMT_E_UNSUPPORTED},
             {"version_max", UINT32_MAX, QFMT_E_UNSUPPORTED}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        base_file(&b, v[i].version);
        hostile(v[i].name, &b, v[i].want, NULL);
        bb_free(&b);
    }
    /* a qfmt file is not a GGUF file */
    bb_put(&b, "QFMT\r\n\x1a\n", 8);
    hostile("qfmt_magic", &b, QFMT_E_BAD_MAGIC, NULL);
    bb_free(&b);
    uint8_t one = 'G';
    qfmt_error e;
    open_expect(&one, 1, QFMT_E_CORRUPT, &e, "one byte of the magic", NULL);
    open_expect(&one, 0, QFMT_E_BAD_MAGIC, &e, "empty", NULL);
    qfmt_gguf *g = (qfmt_gguf *)(uintptr_t)1;
    cr_assert_eq(qfmt_gguf_open_memory(&g, NULL, 0, &e), QFMT_E_BAD_MAGIC);
    cr_assert_null(g);
    cr_assert_eq(qfmt_gguf_open_memory(&g, NULL, 1, &e), QFMT_E_ARG);
    cr_assert_eq(qfmt_gguf_open_memory(NULL, "GGUF", 4, &e), QFMT_E_ARG);
}

/* Counts the file cannot hold are refused before anything is allocated for them. */
Test(gguf_hostile, counts_bounded_by_file) {
    static const struct {
        const char *name;
        uint64_t nt, nkv;
    } c[] = {{"kv_count_huge", 0, UINT64_MAX},
             {"kv_count_2_63", 0, 1ull << 63},
             {"kv_count_one_more", 1, 2},
             {"tensor_count_huge", UINT64_MAX, 1},
             {"tensor_count_sizemax_div", (uint64_t)SIZE_MAX / 8 + 1, 1},
             {"tensor_count_one_more", 2, 1}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        bb b = {0};
        base_file(&b, 3);
        th_put64(b.p + 8, c[i].nt);
        th_put64(b.p + 16, c[i].nkv);
        save_seed("hostile", c[i].name, b.p, b.len);
        th_counting cnt = {0};
        qfmt_allocator al = th_allocator(&cnt);
        qfmt_gguf *g = NULL;
        qfmt_error e;
        uint8_t *copy = th_dup(b.p, b.len);
        qfmt_status s = qfmt_gguf_open_memory_alloc(&g, copy, b.len, &al, &e);
        cr_assert_eq(s, QFMT_E_CORRUPT, "%s: %d %s", c[i].name, (int)s, e.message);
        cr_assert_null(g);
        cr_assert_eq(cnt.live, 0, "%s: leak", c[i].name);
        cr_assert_leq(cnt.max_request, 4096u, "%s: allocated %zu bytes", c[i].name, cnt.max_request);
        free(copy);
        bb_free(&b);
    }
}

/* Lengths up to UINT64_MAX, and one byte past the end, for keys, string values, names. */
Test(gguf_hostile, string_lengths) {
    static const uint64_t lens[] = {UINT64_MAX, UINT64_MAX - 7, (uint64_t)SIZE_MAX, 1ull << 63, 1000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char name[64];
        bb b = {0};
        /* the key's length */
        base_file(&b, 3);
        th_put64(b.p + 24, lens[i]);
        snprintf(name, sizeof name, "key_len_%zu", i);
        cr_assert_eq(hostile(name, &b, QFMT_E_CORRUPT, "key length"), 24u);
        bb_free(&b);
        /* a string value's length */
        base_file(&b, 3);
        th_put64(b.p + 24 + 8 + 20 + 4, lens[i]);
        snprintf(name, sizeof name, "str_len_%zu", i);
        cr_assert_eq(hostile(name, &b, QFMT_E_CORRUPT, "past the end"), 56u);
        bb_free(&b);
        /* a tensor name's length */
        base_file(&b, 3);
        th_put64(b.p + 24 + 8 + 20 + 4 + 8 + 5, lens[i]);
        snprintf(name, sizeof name, "name_len_%zu", i);
        hostile(name, &b, QFMT_E_CORRUPT, "name length");
        bb_free(&b);
    }
    /* a string that ends exactly at the end of the file is fine for the kv, but the tensor info
     * is then missing */
    bb b = {0};
    hdr(&b, 3, 0, 1);
    kv_str(&b, "k", "tail");
    opened o = open_ok("string_at_eof", &b);
    done(&o);
    b.len--;
    hostile("string_one_short", &b, QFMT_E_CORRUPT, "past the end");
    bb_free(&b);
    /* key longer than the spec's 65535 bytes */
    char *k = malloc(QFMT_GGUF_MAX_KEY_LEN + 2);
    memset(k, 'k', QFMT_GGUF_MAX_KEY_LEN + 1);
    k[QFMT_GGUF_MAX_KEY_LEN + 1] = 0;
    hdr(&b, 3, 0, 1);
    kv_u32(&b, k, 1);
    hostile("key_too_long", &b, QFMT_E_CORRUPT, "at most");
    bb_free(&b);
    k[QFMT_GGUF_MAX_KEY_LEN] = 0;
    hdr(&b, 3, 0, 1);
    kv_u32(&b, k, 1);
    qfmt_error e;
    uint8_t *copy;
    qfmt_gguf *g = open_expect(b.p, b.len, QFMT_OK, &e, "key of 65535 bytes", &copy);
    qfmt_gguf_close(g);
    free(copy);
    bb_free(&b);
    free(k);
    /* a name longer than QFMT_MAX_NAME_LEN */
    char nm[QFMT_MAX_NAME_LEN + 2];
    memset(nm, 'n', sizeof nm - 1);
    nm[sizeof nm - 1] = 0;
    uint64_t ne[1] = {4};
    hdr(&b, 3, 1, 0);
    tinfo(&b, nm, 1, ne, QFMT_TYPE_F32, 0);
    bb_pad(&b, 32);
    bb_fill(&b, 16, 0);
    save_seed("hostile", "name_too_long", b.p, b.len);
    open_expect(b.p, b.len, QFMT_E_CORRUPT, &e, "name too long", NULL);
    bb_free(&b);
}

/* Array counts whose byte size overflows, or passes the end. */
Test(gguf_hostile, array_counts) {
    static const struct {
        const char *name;
        uint32_t elem;
        uint64_t count;
    } c[] = {{"array_u64_overflow", QFMT_GGUF_UINT64, 1ull << 61},
             {"array_u64_count_max", QFMT_GGUF_UINT64, UINT64_MAX},
             {"array_u32_wraps_32bit", QFMT_GGUF_UINT32, 0x40000001ull},
             {"array_u8_count_max", QFMT_GGUF_UINT8, UINT64_MAX},
             {"array_str_count_max", QFMT_GGUF_STRING, UINT64_MAX},
             {"array_str_count_2_61", QFMT_GGUF_STRING, 1ull << 61},
             {"array_u8_one_more", QFMT_GGUF_UINT8, 5},
             {"array_str_one_more", QFMT_GGUF_STRING, 2}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        bb b = {0};
        hdr(&b, 3, 0, 1);
        bb_str(&b, "arr");
        bb_u32(&b, QFMT_GGUF_ARRAY);
        bb_u32(&b, c[i].elem);
        bb_u64(&b, c[i].count);
        if (c[i].elem == QFMT_GGUF_STRING) bb_str(&b, "only");
        else bb_fill(&b, 4, 0);
        save_seed("hostile", c[i].name, b.p, b.len);
        th_counting cnt = {0};
        qfmt_allocator al = th_allocator(&cnt);
        qfmt_gguf *g = NULL;
        qfmt_error e;
        uint8_t *copy = th_dup(b.p, b.len);
        qfmt_status s = qfmt_gguf_open_memory_alloc(&g, copy, b.len, &al, &e);
        cr_assert_eq(s, QFMT_E_CORRUPT, "%s: %d %s", c[i].name, (int)s, e.message);
        cr_assert_eq(cnt.live, 0);
        cr_assert_leq(cnt.max_request, 4096u, "%s: allocated %zu bytes", c[i].name, cnt.max_request);
        free(copy);
        bb_free(&b);
    }
    /* a string inside an array whose length passes the end */
    bb b = {0};
    hdr(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, QFMT_GGUF_ARRAY);
    bb_u32(&b, QFMT_GGUF_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "one");
    bb_u64(&b, UINT64_MAX);
    bb_fill(&b, 8, 0);
    hostile("array_str_elem_len_max", &b, QFMT_E_CORRUPT, "string 1");
    bb_free(&b);
}

Test(gguf_hostile, value_types) {
    bb b = {0};
    /* nested array: refused (ggml reads none) */
    hdr(&b, 3, 0, 1);
    bb_str(&b, "nested");
    bb_u32(&b, QFMT_GGUF_ARRAY);
    bb_u32(&b, QFMT_GGUF_ARRAY);
    bb_u64(&b, 1);
    bb_u32(&b, QFMT_GGUF_UINT8);
    bb_u64(&b, 1);
    bb_u8(&b, 0);
    hostile("nested_array", &b, QFMT_E_UNSUPPORTED, "arrays of arrays");
    bb_free(&b);
    static const uint32_t bad[] = {13, 255, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < 4; i++) {
        char name[64];
        hdr(&b, 3, 0, 1);
        bb_str(&b, "k");
        bb_u32(&b, bad[i]);
        bb_fill(&b, 16, 0);
        snprintf(name, sizeof name, "value_type_%u", bad[i]);
        hostile(name, &b, QFMT_E_CORRUPT, "not a GGUF type");
        bb_free(&b);
        hdr(&b, 3, 0, 1);
        bb_str(&b, "k");
        bb_u32(&b, QFMT_GGUF_ARRAY);
        bb_u32(&b, bad[i]);
        bb_u64(&b, 1);
        bb_fill(&b, 16, 0);
        snprintf(name, sizeof name, "elem_type_%u", bad[i]);
        hostile(name, &b, QFMT_E_CORRUPT, "element type");
        bb_free(&b);
    }
    /* bools other than 0 and 1 */
    hdr(&b, 3, 0, 1);
    bb_str(&b, "b");
    bb_u32(&b, QFMT_GGUF_BOOL);
    bb_u8(&b, 2);
    cr_assert_eq(hostile("bool_2", &b, QFMT_E_CORRUPT, "not 0 or 1"), 37u);
    bb_free(&b);
    hdr(&b, 3, 0, 1);
    bb_str(&b, "b");
    bb_u32(&b, QFMT_GGUF_ARRAY);
    bb_u32(&b, QFMT_GGUF_BOOL);
    bb_u64(&b, 3);
    bb_put(&b, "\x01\x00\xff", 3);
    hostile("bool_array_ff", &b, QFMT_E_CORRUPT, "bool 2");
    bb_free(&b);
    /* truncated scalars */
    hdr(&b, 3, 0, 1);
    bb_str(&b, "u");
    bb_u32(&b, QFMT_GGUF_UINT64);
    bb_fill(&b, 7, 0);
    hostile("u64_truncated", &b, QFMT_E_CORRUPT, "cannot fit");
    bb_free(&b);
}

Test(gguf_hostile, keys_and_names) {
    bb b = {0};
    uint64_t ne[1] = {4};
    /* duplicate keys (ggml refuses them): the second one named */
    hdr(&b, 3, 0, 3);
    kv_u32(&b, "a", 1);
    kv_u32(&b, "dup", 1);
    kv_str(&b, "dup", "x");
    cr_assert_eq(hostile("dup_key", &b, QFMT_E_CORRUPT, "'dup' appears twice"), 24u + 17 + 19);
    bb_free(&b);
    /* empty key, key with NUL, key not UTF-8 (overlong, surrogate, lone continuation) */
    static const struct {
        const char *name;
        const char *key;
        size_t len;
        const char *needle;
    } k[] = {{"key_empty", "", 0, "empty key"},
             {"key_nul", "gen\0eral", 8, "not UTF-8 without NUL"},
             {"key_overlong", "\xc0\xaf", 2, "not UTF-8"},
             {"key_surrogate", "\xed\xa0\x80", 3, "not UTF-8"},
             {"key_continuation", "a\x80", 2, "not UTF-8"},
             {"key_escape", "\x1b[31m\xff", 6, "\\x1b"}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        hdr(&b, 3, 0, 1);
        bb_strn(&b, k[i].key, k[i].len);
        bb_u32(&b, QFMT_GGUF_UINT32);
        bb_u32(&b, 0);
        hostile(k[i].name, &b, QFMT_E_CORRUPT, k[i].needle);
        bb_free(&b);
    }
    /* the same for tensor names */
    static const struct {
        const char *name;
        const char *tname;
        size_t len;
    } n[] = {{"name_empty", "", 0}, {"name_nul", "a\0b", 3}, {"name_bad_utf8", "\xff\xfe", 2}};
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++) {
        hdr(&b, 3, 1, 0);
        bb_strn(&b, n[i].tname, n[i].len);
        bb_u32(&b, 1);
        bb_u64(&b, 4);
        bb_u32(&b, QFMT_TYPE_F32);
        bb_u64(&b, 0);
        bb_pad(&b, 32);
        bb_fill(&b, 16, 0);
        hostile(n[i].name, &b, QFMT_E_CORRUPT, NULL);
        bb_free(&b);
    }
    /* duplicate tensor names */
    hdr(&b, 3, 2, 0);
    tinfo(&b, "w", 1, ne, QFMT_TYPE_F32, 0);
    tinfo(&b, "w", 1, ne, QFMT_TYPE_F32, 32);
    bb_pad(&b, 32);
    bb_fill(&b, 48, 0);
    qfmt_error e;
    save_seed("hostile", "dup_name", b.p, b.len);
    open_expect(b.p, b.len, QFMT_E_CORRUPT, &e, "dup name", NULL);
    cr_assert_str_eq(e.tensor, "w");
    cr_assert(strstr(e.message, "two tensors"));
    bb_free(&b);
    /* a name with control characters is quoted escaped in err.tensor */
    uint64_t ne5[5] = {4, 1, 1, 1, 1};
    hdr(&b, 3, 1, 0);
    tinfo(&b, "x\x1b[2J", 5, ne5, QFMT_TYPE_F32, 0);
    bb_fill(&b, 64, 0);
    save_seed("hostile", "name_escape_ndim", b.p, b.len);
    open_expect(b.p, b.len, QFMT_E_CORRUPT, &e, "escape", NULL);
    cr_assert_str_eq(e.tensor, "x\\x1b[2J");
    bb_free(&b);
}

Test(gguf_hostile, dims) {
    bb b = {0};
    qfmt_error e;
    /* n_dims above GGML_MAX_DIMS */
    static const uint32_t nd[] = {5, 8, UINT32_MAX};
    for (size_t i = 0; i < 3; i++) {
        char name[64];
        uint64_t ne[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        hdr(&b, 3, 1, 0);
        tinfo(&b, "t", nd[i] > 8 ? 8 : nd[i], ne, QFMT_TYPE_F32, 0);
        th_put32(b.p + 24 + 9, nd[i]);
        bb_fill(&b, 64, 0);
        snprintf(name, sizeof name, "ndim_%u", nd[i]);
        hostile(name, &b, QFMT_E_CORRUPT, "dimensions");
        bb_free(&b);
    }
    /* n_dims 0: one element, as ggml reads it */
    hdr(&b, 3, 1, 0);
    tinfo(&b, "scalar", 0, NULL, QFMT_TYPE_F32, 0);
    bb_pad(&b, 32);
    bb_fill(&b, 4, 9);
    opened o = open_ok("ndim_0", &b);
    qfmt_gguf_tensor t;
    TH_OKE(qfmt_gguf_tensor_get(o.g, 0, &t, &e), e);
    cr_assert(t.ndim == 0 && t.nelements == 1 && t.size == 4);
    cr_assert(t.ne[0] == 1 && t.ne[3] == 1);
    done(&o);
    bb_free(&b);
    /* a zero dimension: an empty tensor (ggml allows it), even beside a huge one */
    uint64_t ez[3] = {32, 0, 1ull << 62};
    uint64_t n4[1] = {4};
    hdr(&b, 3, 2, 0);
    tinfo(&b, "empty", 3, ez, QFMT_TYPE_Q8_0, 0);
    tinfo(&b, "next", 1, n4, QFMT_TYPE_F32, 0);
    bb_pad(&b, 32);
    bb_fill(&b, 16, 9);
    o = open_ok("zero_dim", &b);
    TH_OKE(qfmt_gguf_tensor_get(o.g, 0, &t, &e), e);
    cr_assert(t.nelements == 0 && t.size == 0 && t.data != NULL);
    TH_OKE(qfmt_gguf_tensor_get(o.g, 1, &t, &e), e);
    cr_assert(t.offset == qfmt_gguf_data_offset(o.g) && t.size == 16);
    done(&o);
    bb_free(&b);
    /* products of dims beyond INT64_MAX, dims beyond it, byte sizes beyond 64 bits */
    static const struct {
        const char *name;
        uint32_t type, ndim;
        uint64_t ne[4];
        const char *needle;
    } c[] = {{"dims_product_overflow", QFMT_TYPE_F32, 2, {1ull << 32, 1ull << 32}, "overflow"},
             {"dims_product_int64", QFMT_TYPE_F32, 4, {1ull << 16, 1ull << 16, 1ull << 16, 1ull << 15}, "overflow"},
             {"dims_product_wraps_to_small", QFMT_TYPE_F32, 3, {1ull << 33, 1ull << 33, 1ull << 30}, "overflow"},
             {"dim_beyond_int64", QFMT_TYPE_F32, 1, {1ull << 63}, "beyond INT64_MAX"},
             {"dim_max", QFMT_TYPE_F32, 2, {4, UINT64_MAX}, "beyond INT64_MAX"},
             {"bytes_overflow_f32", QFMT_TYPE_F32, 1, {1ull << 62}, "overflow a 64-bit size"},
             {"bytes_overflow_f64", QFMT_TYPE_F64, 2, {1ull << 31, 1ull << 31}, "overflow a 64-bit size"},
             {"bytes_past_eof", QFMT_TYPE_F32, 2, {4, 1ull << 40}, "past the end"},
             {"q8_0_partial_block", QFMT_TYPE_Q8_0, 1, {33}, "whole blocks"},
             {"q4_k_partial_block", QFMT_TYPE_Q4_K, 2, {32, 8}, "whole blocks"}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        hdr(&b, 3, 1, 0);
        tinfo(&b, "t", c[i].ndim, c[i].ne, c[i].type, 0);
        bb_pad(&b, 32);
        bb_fill(&b, 64, 0);
        hostile(c[i].name, &b, QFMT_E_CORRUPT, c[i].needle);
        bb_free(&b);
    }
}

Test(gguf_hostile, alignment) {
    static const struct {
        const char *name;
        uint32_t value;
        qfmt_status want;
    } a[] = {{"alignment_0", 0, QFMT_E_CORRUPT},
             {"alignment_3", 3, QFMT_E_CORRUPT},
             {"alignment_48", 48, QFMT_E_CORRUPT},
             {"alignment_max", UINT32_MAX, QFMT_E_CORRUPT},
             {"alignment_2_31", 1u << 31, QFMT_E_UNSUPPORTED},
             {"alignment_2_21", 1u << 21, QFMT_E_UNSUPPORTED}};
    uint64_t ne[1] = {4};
    bb b = {0};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
        hdr(&b, 3, 1, 1);
        kv_u32(&b, "general.alignment", a[i].value);
        tinfo(&b, "t", 1, ne, QFMT_TYPE_F32, 0);
        bb_pad(&b, 32);
        bb_fill(&b, 16, 0);
        hostile(a[i].name, &b, a[i].want, "general.alignment");
        bb_free(&b);
    }
    /* of another type than u32 */
    hdr(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, QFMT_GGUF_UINT64);
    bb_u64(&b, 32);
    hostile("alignment_u64", &b, QFMT_E_CORRUPT, "not u32");
    bb_free(&b);
    /* 1 and 1 MiB are fine */
    hdr(&b, 3, 1, 1);
    kv_u32(&b, "general.alignment", 1);
    tinfo(&b, "t", 1, ne, QFMT_TYPE_F32, 0);
    bb_fill(&b, 16, 0);
    opened o = open_ok("alignment_1", &b);
    cr_assert_eq(qfmt_gguf_alignment(o.g), 1u);
    done(&o);
    bb_free(&b);
    hdr(&b, 3, 1, 1);
    kv_u32(&b, "general.alignment", 1u << 20);
    tinfo(&b, "t", 1, ne, QFMT_TYPE_F32, 0);
    bb_pad(&b, 1u << 20);
    bb_fill(&b, 16, 0);
    qfmt_error e;
    uint8_t *copy;
    qfmt_gguf *g = open_expect(b.p, b.len, QFMT_OK, &e, "alignment 1 MiB", &copy);
    cr_assert_eq(qfmt_gguf_data_offset(g), 1u << 20);
    qfmt_gguf_close(g);
    free(copy);
    /* the padding itself cut: the data section would start past the end */
    b.len = (1u << 20) - 1;
    open_expect(b.p, b.len, QFMT_E_CORRUPT, &e, "padding cut", NULL);
    bb_free(&b);
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne, QFMT_TYPE_F32, 0);
    bb_u8(&b, 0);
    hostile("padding_cut", &b, QFMT_E_CORRUPT, "data section");
    bb_free(&b);
}

Test(gguf_hostile, offsets) {
    bb b = {0};
    uint64_t ne4[1] = {4}, ne16[1] = {16};
    qfmt_error e;
    /* not a multiple of the alignment */
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne4, QFMT_TYPE_F32, 4);
    bb_pad(&b, 32);
    bb_fill(&b, 64, 0);
    hostile("offset_unaligned", &b, QFMT_E_CORRUPT, "multiple of the alignment");
    bb_free(&b);
    /* the first tensor not at 0 (a gap: ggml refuses it) */
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne4, QFMT_TYPE_F32, 32);
    bb_pad(&b, 32);
    bb_fill(&b, 64, 0);
    hostile("offset_gap", &b, QFMT_E_CORRUPT, "ends (padded) at 0");
    bb_free(&b);
    /* two tensors overlapping: the second at 0 */
    hdr(&b, 3, 2, 0);
    tinfo(&b, "a", 1, ne16, QFMT_TYPE_F32, 0);
    tinfo(&b, "b", 1, ne4, QFMT_TYPE_F32, 0);
    bb_pad(&b, 32);
    bb_fill(&b, 96, 0);
    save_seed("hostile", "overlap", b.p, b.len);
    open_expect(b.p, b.len, QFMT_E_CORRUPT, &e, "overlap", NULL);
    cr_assert_str_eq(e.tensor, "b");
    cr_assert(strstr(e.message, "overlap"));
    bb_free(&b);
    /* out of order: b before a in the data */
    hdr(&b, 3, 2, 0);
    tinfo(&b, "a", 1, ne4, QFMT_TYPE_F32, 64);
    tinfo(&b, "b", 1, ne4, QFMT_TYPE_F32, 0);
    bb_pad(&b, 32);
    bb_fill(&b, 96, 0);
    hostile("out_of_order", &b, QFMT_E_CORRUPT, NULL);
    bb_free(&b);
    /* data past the end of the file */
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne16, QFMT_TYPE_F32, 0);
    bb_pad(&b, 32);
    bb_fill(&b, 63, 0);
    hostile("data_past_eof", &b, QFMT_E_CORRUPT, "past the end");
    bb_free(&b);
    /* offsets near 2^64 after a tensor of unknown type: data_offset + offset wraps */
    static const uint64_t huge[] = {UINT64_MAX - 31, 1ull << 63, UINT64_MAX & ~31ull};
    for (size_t i = 0; i < 3; i++) {
        char name[64];
        hdr(&b, 3, 2, 0);
        tinfo(&b, "unknown", 1, ne4, 16, 0); /* iq2_xxs: a ggml type qfmt does not know */
        tinfo(&b, "wrap", 1, ne4, QFMT_TYPE_F32, huge[i]);
        bb_pad(&b, 32);
        bb_fill(&b, 64, 0);
        snprintf(name, sizeof name, "offset_wrap_%zu", i);
        hostile(name, &b, QFMT_E_CORRUPT, "past the end");
        bb_free(&b);
    }
    /* the known tensor right after an unknown-type one: its offset must not go backwards */
    hdr(&b, 3, 3, 0);
    tinfo(&b, "k", 1, ne4, QFMT_TYPE_F32, 0);
    tinfo(&b, "unknown", 1, ne4, 16, 32);
    tinfo(&b, "back", 1, ne4, QFMT_TYPE_F32, 0);
    bb_pad(&b, 32);
    bb_fill(&b, 96, 0);
    hostile("offset_backwards_after_unknown", &b, QFMT_E_CORRUPT, "before the previous");
    bb_free(&b);
}

Test(gguf_hostile, unknown_types_listed) {
    bb b = {0};
    uint64_t ne[2] = {256, 2}, ne4[1] = {4};
    qfmt_error e;
    hdr(&b, 3, 3, 0);
    tinfo(&b, "iq2", 2, ne, 16, 0);        /* IQ2_XXS: qfmt cannot size it */
    tinfo(&b, "after", 1, ne4, QFMT_TYPE_F32, 160);
    tinfo(&b, "q8_1", 2, ne, 9, 192);      /* Q8_1, last */
    bb_pad(&b, 32);
    bb_fill(&b, 200, 0);
    opened o = open_ok("unknown_types", &b);
    qfmt_gguf_tensor t;
    TH_OKE(qfmt_gguf_tensor_get(o.g, 0, &t, &e), e);
    cr_assert(t.type == 16 && t.flags == QFMT_GGUF_TENSOR_UNKNOWN_TYPE);
    cr_assert(t.size == 0 && t.data == NULL && t.nelements == 512 && t.ndim == 2);
    cr_assert_eq(t.offset, qfmt_gguf_data_offset(o.g));
    TH_OKE(qfmt_gguf_tensor_get(o.g, 1, &t, &e), e);
    cr_assert(t.flags == 0 && t.size == 16 && t.data != NULL);
    TH_OKE(qfmt_gguf_tensor_get(o.g, 2, &t, &e), e);
    cr_assert(t.type == 9 && t.flags == QFMT_GGUF_TENSOR_UNKNOWN_TYPE);
    done(&o);
    bb_free(&b);
    /* a type id above 255 is no ggml type */
    static const uint32_t bad[] = {256, 259, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < 4; i++) {
        char name[64];
        hdr(&b, 3, 1, 0);
        tinfo(&b, "t", 1, ne4, bad[i], 0);
        bb_pad(&b, 32);
        bb_fill(&b, 32, 0);
        snprintf(name, sizeof name, "tensor_type_%u", bad[i]);
        hostile(name, &b, QFMT_E_CORRUPT, "not a ggml type");
        bb_free(&b);
    }
}

/* The round-trip file cut at every byte: refused (CORRUPT; BAD_MAGIC when empty) unless it holds
 * every tensor's data (only the last padding may go). */
Test(gguf_hostile, every_prefix) {
    scratch s;
    scratch_init(&s, "p.gguf");
    rt_data d;
    rt_fill(&d);
    write_roundtrip(s.path, &d, 0);
    size_t size;
    uint8_t *file = th_read_file(s.path, &size);
    qfmt_gguf *g;
    qfmt_error e;
    TH_OKE(qfmt_gguf_open_memory(&g, file, size, &e), e);
    qfmt_gguf_tensor last;
    TH_OKE(qfmt_gguf_tensor_get(g, qfmt_gguf_tensor_count(g) - 1, &last, &e), e);
    size_t need = (size_t)(last.offset + last.size);
    qfmt_gguf_close(g);
    for (size_t n = 0; n < size; n++) {
        char what[64];
        snprintf(what, sizeof what, "prefix %zu of %zu", n, size);
        if (n >= need) {
            uint8_t *copy;
            g = open_expect(file, n, QFMT_OK, &e, what, &copy);
            qfmt_gguf_close(g);
            free(copy);
        } else {
            open_expect(file, n, n == 0 ? QFMT_E_BAD_MAGIC : QFMT_E_CORRUPT, &e, what, NULL);
            cr_assert(e.offset == QFMT_NO_OFFSET || e.offset <= n, "%s: offset %" PRIu64, what, e.offset);
        }
    }
    if (getenv("QFMT_GGUF_SEED_DIR")) save_seed("hostile", "truncated_mid_kv", file, 200);
    free(file);
    th_rmtree(s.dir);
}

/* Random byte changes to the round-trip file: never a crash; what opens is consistent. */
Test(gguf_hostile, mutations) {
    scratch s;
    scratch_init(&s, "m.gguf");
    rt_data d;
    rt_fill(&d);
    write_roundtrip(s.path, &d, 0);
    size_t size;
    uint8_t *file = th_read_file(s.path, &size);
    th_rmtree(s.dir);
    uint64_t st = 42;
    unsigned opened_n = 0;
    for (int iter = 0; iter < 3000; iter++) {
        uint8_t *m = th_dup(file, size);
        int k = 1 + (int)(th_rand(&st) % 4);
        for (int j = 0; j < k; j++) {
            size_t at = (size_t)(th_rand(&st) % 700); /* the header: where the parser is */
            if (at >= size) at = size - 1;
            uint64_t r = th_rand(&st);
            m[at] = (r & 1) ? (uint8_t)(r >> 8) : (uint8_t)(m[at] ^ (1u << ((r >> 8) & 7)));
        }
        qfmt_gguf *g = NULL;
        qfmt_error e;
        qfmt_status st2 = qfmt_gguf_open_memory(&g, m, size, &e);
        if (st2 == QFMT_OK) {
            opened_n++;
            for (uint64_t i = 0; i < qfmt_gguf_tensor_count(g); i++) {
                qfmt_gguf_tensor t;
                cr_assert_eq(qfmt_gguf_tensor_get(g, i, &t, &e), QFMT_OK);
                cr_assert_leq(t.offset, size);
                cr_assert_leq(t.size, size - t.offset);
            }
            qfmt_gguf_close(g);
        } else {
            cr_assert_null(g);
            cr_assert_eq(e.code, st2);
        }
        free(m);
    }
    cr_assert_gt(opened_n, 0u);
    free(file);
}

/* ---- Allocation and I/O failures ----------------------------------------------------------- */
Test(gguf_faults, every_allocation_of_open) {
    scratch s;
    scratch_init(&s, "a.gguf");
    rt_data d;
    rt_fill(&d);
    write_roundtrip(s.path, &d, 0);
    size_t size;
    uint8_t *file = th_read_file(s.path, &size);
    th_rmtree(s.dir);
    long calls = 0;
    for (long n = 1;; n++) {
        th_counting c = {0};
        c.fail_at = n;
        qfmt_allocator al = th_allocator(&c);
        qfmt_gguf *g = NULL;
        qfmt_error e;
        qfmt_status st = qfmt_gguf_open_memory_alloc(&g, file, size, &al, &e);
        if (c.failed == 0) {
            cr_assert_eq(st, QFMT_OK);
            check_roundtrip(g, &d, 0);
            qfmt_gguf_close(g);
            cr_assert_eq(c.live, 0);
            calls = n - 1;
            break;
        }
        cr_assert_eq(st, QFMT_E_NOMEM, "allocation %ld: %d %s", n, (int)st, e.message);
        cr_assert_null(g);
        cr_assert_eq(c.live, 0, "allocation %ld: leak", n);
        cr_assert_eq(c.bad_frees, 0);
    }
    cr_assert_geq(calls, 5);
    free(file);
}

typedef struct {
    int op;        /* 0 open, 1 write, 2 fsync, 3 close, 4 rename */
    long fail_at;  /* 1-based call of that op */
    long calls[5];
    int err;
    bool hit;
} fio;

static bool fio_hit(fio *f, int op) {
    f->calls[op]++;
    if (f->op == op && f->calls[op] == f->fail_at) {
        f->hit = true;
        errno = f->err;
        return true;
    }
    return false;
}
static int fio_open(void *ctx, const char *path, int flags, mode_t mode) {
    if (fio_hit(ctx, 0)) return -1;
    return open(path, flags, mode);
}
static ssize_t fio_write(void *ctx, int fd, const void *p, size_t n) {
    if (fio_hit(ctx, 1)) return -1;
    return write(fd, p, n > 100 ? 100 : n); /* short writes: the writer must loop */
}
static int fio_fsync(void *ctx, int fd) {
    (void)fd;
    return fio_hit(ctx, 2) ? -1 : 0;
}
static int fio_close(void *ctx, int fd) {
    bool h = fio_hit(ctx, 3);
    close(fd);
    return h ? -1 : 0;
}
static int fio_rename(void *ctx, const char *a, const char *b) {
    if (fio_hit(ctx, 4)) return -1;
    return rename(a, b);
}
static int fio_unlink(void *ctx, const char *path) {
    (void)ctx;
    return unlink(path);
}

/* One writer session through `io` and `al`: what write_roundtrip writes, returning the first
 * failure. */
static qfmt_status write_session(const char *path, const rt_data *d, const qfmt_io *io,
                                 const qfmt_allocator *al, qfmt_error *e) {
    qfmt_gguf_writer *w = NULL;
    qfmt_status s = qfmt_gguf_writer_create_io(&w, path, al, io, e);
    if (s != QFMT_OK) return s;
    const char *strs[3] = {"a", "", "ccc"};
    uint32_t arr[3] = {1, 2, 3};
    uint64_t ne_f32[2] = {4, 3}, ne_q8[2] = {64, Q8_ROWS}, ne_st[1] = {160};
    if ((s = qfmt_gguf_writer_set_str(w, "general.architecture", "llama", 5, e))) goto out;
    for (int i = 0; i < 40; i++) { /* enough keys to grow the hash set and the buffer */
        char key[32];
        snprintf(key, sizeof key, "k.%d", i);
        if ((s = qfmt_gguf_writer_set_u32(w, key, (uint32_t)i, e))) goto out;
    }
    if ((s = qfmt_gguf_writer_set_str_array(w, "s", strs, NULL, 3, e))) goto out;
    if ((s = qfmt_gguf_writer_set_array(w, "a", QFMT_GGUF_UINT32, arr, 3, e))) goto out;
    if ((s = qfmt_gguf_writer_add_tensor(w, "f", QFMT_TYPE_F32, 2, ne_f32, d->f32, sizeof d->f32, e))) goto out;
    if ((s = qfmt_gguf_writer_add_tensor(w, "st", QFMT_TYPE_Q8_0, 1, ne_st, NULL, sizeof d->streamed, e))) goto out;
    if ((s = qfmt_gguf_writer_add_tensor(w, "q", QFMT_TYPE_Q8_0, 2, ne_q8, d->q8, sizeof d->q8, e))) goto out;
    if ((s = qfmt_gguf_writer_write(w, d->streamed, 7, e))) goto out;
    if ((s = qfmt_gguf_writer_write(w, d->streamed + 7, sizeof d->streamed - 7, e))) goto out;
    s = qfmt_gguf_writer_commit(w, e);
out:
    qfmt_gguf_writer_free(w);
    return s;
}

static void check_session_file(const char *path, const rt_data *d) {
    qfmt_gguf *g = NULL;
    qfmt_error e;
    TH_OKE(qfmt_gguf_open(&g, path, &e), e);
    cr_assert_eq(qfmt_gguf_kv_count(g), 43u);
    cr_assert_eq(qfmt_gguf_tensor_count(g), 3u);
    qfmt_gguf_tensor t;
    TH_OKE(qfmt_gguf_tensor_get(g, 1, &t, &e), e);
    cr_assert_eq(memcmp(t.data, d->streamed, sizeof d->streamed), 0);
    TH_OKE(qfmt_gguf_tensor_get(g, 2, &t, &e), e);
    cr_assert_eq(memcmp(t.data, d->q8, sizeof d->q8), 0);
    uint64_t v;
    TH_OKE(qfmt_gguf_get_u64(g, "k.39", &v, &e), e);
    cr_assert_eq(v, 39u);
    qfmt_gguf_close(g);
}

Test(gguf_faults, every_allocation_of_a_writer) {
    scratch s;
    scratch_init(&s, "w.gguf");
    rt_data d;
    rt_fill(&d);
    for (long n = 1;; n++) {
        th_counting c = {0};
        c.fail_at = n;
        qfmt_allocator al = th_allocator(&c);
        qfmt_error e;
        qfmt_status st = write_session(s.path, &d, NULL, &al, &e);
        cr_assert_eq(c.live, 0, "allocation %ld: leak", n);
        if (c.failed == 0) {
            cr_assert_eq(st, QFMT_OK, "%s", e.message);
            check_session_file(s.path, &d);
            break;
        }
        cr_assert_eq(st, QFMT_E_NOMEM, "allocation %ld: %d %s", n, (int)st, e.message);
        cr_assert_eq(th_count_entries(s.dir, NULL, 0), 0, "allocation %ld: a file left", n);
    }
    th_rmtree(s.dir);
}

Test(gguf_faults, every_system_call_of_a_writer) {
    scratch s;
    scratch_init(&s, "io.gguf");
    rt_data d;
    rt_fill(&d);
    static const char *const ops[] = {"open", "write", "fsync", "close", "rename"};
    static const int errs[] = {EIO, ENOSPC};
    for (int op = 0; op < 5; op++) {
        for (long n = 1;; n++) {
            th_write_file(s.path, "old", 3);
            fio f = {op, n, {0}, errs[n % 2], false};
            qfmt_io io = {fio_open, fio_write, fio_fsync, fio_close, fio_rename, fio_unlink, &f};
            qfmt_error e;
            qfmt_status st = write_session(s.path, &d, &io, NULL, &e);
            if (st == QFMT_OK) {
                /* a failed close of the directory (read-only, after the rename) is no failure */
                cr_assert(!f.hit || (op == 3 && f.calls[3] == n && n >= 2), "%s %ld: not reported",
                          ops[op], n);
                check_session_file(s.path, &d);
                if (!f.hit) break;
                continue;
            }
            cr_assert(f.hit, "%s %ld: %d %s", ops[op], n, (int)st, e.message);
            cr_assert_eq(st, QFMT_E_IO, "%s %ld: %d %s", ops[op], n, (int)st, e.message);
            cr_assert_eq(e.sys_errno, f.err, "%s %ld", ops[op], n);
            cr_assert_eq(th_count_entries(s.dir, NULL, 0), 1, "%s %ld: a temporary file left", ops[op], n);
            size_t len;
            uint8_t *now = th_read_file(s.path, &len);
            bool old = len == 3 && memcmp(now, "old", 3) == 0;
            free(now);
            if (!old) { /* only the directory's fsync comes after the rename */
                cr_assert(op == 0 || op == 2 || op == 3, "%s %ld: target changed", ops[op], n);
                cr_assert(strstr(e.message, "directory"), "%s %ld: %s", ops[op], n, e.message);
                check_session_file(s.path, &d);
            }
        }
    }
    th_rmtree(s.dir);
}

/* ---- Opening paths ------------------------------------------------------------------------ */
Test(gguf_reader, open_errors) {
    scratch s;
    scratch_init(&s, "missing.gguf");
    qfmt_gguf *g = (qfmt_gguf *)(uintptr_t)1;
    qfmt_error e;
    expect_status(qfmt_gguf_open(&g, s.path, &e), QFMT_E_IO, &e, "missing file");
    cr_assert_null(g);
    cr_assert_eq(e.sys_errno, ENOENT);
    cr_assert_str_eq(e.path, s.path);
    expect_status(qfmt_gguf_open(&g, s.dir, &e), QFMT_E_IO, &e, "a directory");
    cr_assert_eq(e.sys_errno, EISDIR);
    expect_status(qfmt_gguf_open(&g, "/dev/null", &e), QFMT_E_IO, &e, "a device");
    expect_status(qfmt_gguf_open(NULL, s.path, &e), QFMT_E_ARG, &e, "NULL out");
    expect_status(qfmt_gguf_open(&g, NULL, &e), QFMT_E_ARG, &e, "NULL path");
    /* a hostile file on disk: the error names it and the byte */
    bb b = {0};
    base_file(&b, 3);
    th_put64(b.p + 16, 1000);
    th_write_file(s.path, b.p, b.len);
    expect_status(qfmt_gguf_open(&g, s.path, &e), QFMT_E_CORRUPT, &e, "hostile on disk");
    cr_assert_str_eq(e.path, s.path);
    cr_assert_eq(e.offset, 16u);
    char line[1024];
    qfmt_error_format(&e, line, sizeof line);
    cr_assert(strstr(line, "missing.gguf") && strstr(line, "byte 16"), "%s", line);
    /* an empty file */
    th_write_file(s.path, "", 0);
    expect_status(qfmt_gguf_open(&g, s.path, &e), QFMT_E_BAD_MAGIC, &e, "empty file");
    /* the accessors take NULL */
    cr_assert_eq(qfmt_gguf_kv_count(NULL), 0u);
    cr_assert_eq(qfmt_gguf_tensor_count(NULL), 0u);
    cr_assert_eq(qfmt_gguf_version(NULL), 0u);
    qfmt_gguf_close(NULL);
    bb_free(&b);
    th_rmtree(s.dir);
}
