/*
 * test_hostile.c - the hostile-file corpus (tests/hostile/hostile.c), one file per bug class:
 * each is opened from memory and from disk under a counting allocator, and must be rejected by
 * open or verify with the expected code, the exact byte offset and a message naming the problem,
 * or, for the few that are valid, accepted and read in full. Nothing may crash, hang, leak or
 * allocate more than the bound stated in spec/qfmt_format.md ("Limits and resources").
 *
 * Every prefix of the base file (6 tensors, metadata of every value type) fails to open cleanly,
 * within the same allocation bound.
 */
#include "test_helpers.h"

#include "hostile/hostile.c"

#define QFMT_STATIC_LINKING_ONLY /* qfmt_utf8_valid */
#include "qfmt.h"

/* ---- Allocation accounting ------------------------------------------------------------------ */
typedef struct {
    size_t cur, peak;   /* bytes live now, most bytes live at once */
    long live, calls;
    long bad_frees;
} ht_count;

static void *ht_alloc(void *ctx, size_t n)
{
    ht_count *c = ctx;
    c->calls++;
    if (n > SIZE_MAX - 16) return NULL;
    uint64_t *p = malloc(n + 16);
    if (!p) return NULL;
    p[0] = 0x484F5354494C45ull;
    p[1] = n;
    c->cur += n;
    if (c->cur > c->peak) c->peak = c->cur;
    c->live++;
    return p + 2;
}

static void ht_free(void *ctx, void *q)
{
    ht_count *c = ctx;
    if (!q) return;
    uint64_t *p = (uint64_t *)q - 2;
    if (p[0] != 0x484F5354494C45ull) {
        c->bad_frees++;
        return;
    }
    p[0] = 0;
    c->cur -= p[1];
    c->live--;
    free(p);
}

/* The spec's bound on what open allocates (Limits and resources): 6 bytes per byte of metadata
 * and directory, 4 KiB, and a copy of the path. Index bytes count only once the footer's sizes
 * have been checked against the file, so a file whose footer lies gets the constant. */
static uint64_t index_bytes(const uint8_t *b, size_t size)
{
    if (size < 128) return 0;
    const uint8_t *f = b + size - 64;
    uint64_t mo = th_get64(f), ms = th_get64(f + 8), ds = th_get64(f + 16), end;
    if (ms > QFMT_MAX_META_SIZE || ds > QFMT_MAX_DIRECTORY_SIZE) return 0;
    if (__builtin_add_overflow(mo, ms, &end) || __builtin_add_overflow(end, ds, &end) ||
        end != size - 64)
        return 0;
    return ms + ds;
}
static uint64_t open_bound(uint64_t index, size_t path_len) { return 6 * index + 4096 + path_len + 1; }
/* Reading or verifying a zstd tensor also holds a decoder: its fixed state, plus for verify the
 * window, at most min(Raw_Size, 2^27) bytes and two blocks (spec, Codec 1). */
#define HT_ZSTD_STATE (256u << 10)
static uint64_t zstd_bound(uint64_t raw)
{
    uint64_t w = raw < (1ull << 27) ? raw : (1ull << 27);
    return HT_ZSTD_STATE + w + 2 * (128u << 10) + (64u << 10);
}

/* ---- Expectations ---------------------------------------------------------------------------- */
enum { OPENS, AT_OPEN, AT_VERIFY };

typedef struct {
    const char *name;
    int stage;             /* OPENS: valid; AT_OPEN / AT_VERIFY: where it is rejected */
    qfmt_status status;    /* of open, or of verify */
    const char *substr;    /* in the message */
    qfmt_status read;      /* AT_VERIFY: qfmt_tensor_read (no verify) of the bad tensor */
} ht_case;

#define O(n, st, sub) {n, AT_OPEN, QFMT_E_##st, sub, QFMT_OK}
#define V(n, st, sub, rd) {n, AT_VERIFY, QFMT_E_##st, sub, rd}
#define OK(n) {n, OPENS, QFMT_OK, "", QFMT_OK}

static const ht_case expect[] = {
    O("bad_magic", BAD_MAGIC, "bad magic"),
    O("gguf_magic", BAD_MAGIC, "bad magic"),
    O("bad_magic_short", BAD_MAGIC, "bad magic"),
    O("empty_file", CORRUPT, "shorter than header and footer"),
    O("version_major_2", VERSION, "format version 2."),
    O("version_major_65535", VERSION, "format version 65535."),
    O("header_checksum_stale", CHECKSUM, "header checksum"),
    O("required_feature", VERSION, "requires features"),
    O("alignment_zero", CORRUPT, "alignment 0 "),
    O("alignment_2p31", CORRUPT, "alignment 2147483648"),
    O("alignment_48", CORRUPT, "alignment 48"),
    O("alignment_u32max", CORRUPT, "alignment 4294967295"),
    O("alignment_16", CORRUPT, "alignment 16"),
    O("alignment_max_past_eof", CORRUPT, "metadata offset"),
    O("header_reserved", CORRUPT, "reserved header byte"),
    O("trunc_in_header", CORRUPT, "shorter than header and footer"),
    O("trunc_in_data", CORRUPT, "no footer"),
    O("trunc_in_metadata", CORRUPT, "no footer"),
    O("trunc_in_directory", CORRUPT, "no footer"),
    O("trunc_in_footer", CORRUPT, "no footer"),
    O("footer_reserved", CORRUPT, "reserved footer field"),
    O("index_checksum_stale", CHECKSUM, "index checksum"),
    O("meta_offset_misaligned", CORRUPT, "metadata offset"),
    O("meta_offset_in_header", CORRUPT, "metadata offset"),
    O("meta_offset_near_2p64", CORRUPT, "do not end at the footer"),
    O("meta_size_2p63", CORRUPT, "metadata (9223372036854775808 bytes)"),
    O("dir_size_u64max", CORRUPT, "directory (18446744073709551615 bytes)"),
    O("section_sizes_shifted", CORRUPT, "32 bytes left in the metadata section"),
    O("tensor_count_u64max", CORRUPT, "tensors cannot fit"),
    O("tensor_count_2p32", CORRUPT, "tensors cannot fit"),
    O("tensor_count_2p24p1", CORRUPT, "tensors cannot fit"),
    O("tensor_count_plus_one", CORRUPT, "truncated (name length)"),
    O("tensor_count_minus_one", CORRUPT, "left in the directory"),
    O("meta_count_u64max", CORRUPT, "metadata entries cannot fit"),
    O("meta_count_2p32", CORRUPT, "metadata entries cannot fit"),
    O("meta_count_plus_one", CORRUPT, "truncated (key length)"),
    O("meta_count_minus_one", CORRUPT, "left in the metadata section"),
    O("meta_count_zero", CORRUPT, "but no entries"),
    O("key_len_zero", CORRUPT, "key length 0 "),
    O("key_len_u64max", CORRUPT, "key length 18446744073709551615"),
    O("key_len_2p32", CORRUPT, "key length 4294967301"),
    O("key_len_257", CORRUPT, "key length 257"),
    O("key_not_utf8", CORRUPT, "not valid UTF-8"),
    O("key_overlong_nul", CORRUPT, "not valid UTF-8"),
    O("key_nul", CORRUPT, "not valid UTF-8 or has a NUL"),
    O("key_duplicate", CORRUPT, "unique and in increasing order"),
    O("key_out_of_order", CORRUPT, "unique and in increasing order"),
    O("key_control_chars", CORRUPT, "metadata 'm.s\\x1b\\x0a': string is not valid UTF-8"),
    O("value_size_u64max", CORRUPT, "runs past the section"),
    O("value_size_2p32", CORRUPT, "runs past the section"),
    O("string_not_utf8", CORRUPT, "string is not valid UTF-8"),
    O("string_surrogate", CORRUPT, "string is not valid UTF-8"),
    O("scalar_width", CORRUPT, "expected 2"),
    O("bool_2", CORRUPT, "not 0 or 1"),
    O("array_nested", CORRUPT, "arrays of arrays"),
    O("array_count_2p32", CORRUPT, "do not fill"),
    O("array_count_u64max", CORRUPT, "do not fill"),
    O("array_count_wraps", CORRUPT, "do not fill"),
    O("array_too_small", CORRUPT, "needs at least 12"),
    O("array_bool_2", CORRUPT, "bool element 1 is 2"),
    O("str_array_count_u64max", CORRUPT, "strings cannot fit"),
    O("str_array_count_2p32", CORRUPT, "strings cannot fit"),
    O("str_array_len_u64max", CORRUPT, "string element 1 runs past"),
    O("str_array_len_2p32", CORRUPT, "string element 1 runs past"),
    O("str_array_not_utf8", CORRUPT, "string element 1 is not valid UTF-8"),
    O("str_array_leftover", CORRUPT, "left after the last string"),
    OK("unknown_value_type"),
    OK("unknown_elem_type"),
    OK("type_confusion"),
    OK("elem_type_confusion"),
    O("meta_trunc_key_length", CORRUPT, "truncated (key length)"),
    O("meta_trunc_key", CORRUPT, "truncated (key)"),
    O("meta_trunc_type", CORRUPT, "truncated (value type or size)"),
    O("meta_trunc_size", CORRUPT, "truncated (value type or size)"),
    O("meta_trunc_value", CORRUPT, "runs past the section"),
    O("name_len_zero", CORRUPT, "name length 0 "),
    O("name_len_u64max", CORRUPT, "name length 18446744073709551615"),
    O("name_len_2p32", CORRUPT, "name length 4294967312"),
    O("name_len_1025", CORRUPT, "name length 1025"),
    O("name_not_utf8", CORRUPT, "not valid UTF-8"),
    O("name_overlong", CORRUPT, "not valid UTF-8"),
    O("name_surrogate", CORRUPT, "not valid UTF-8"),
    O("name_above_10ffff", CORRUPT, "not valid UTF-8"),
    O("name_nul", CORRUPT, "has a NUL"),
    O("name_duplicate", CORRUPT, "more than once"),
    O("name_duplicate_adjacent", CORRUPT, "more than once"),
    O("name_control_chars", CORRUPT, "raw size 10 bytes"),
    O("ndim_9", CORRUPT, "9 dimensions"),
    O("ndim_u32max", CORRUPT, "4294967295 dimensions"),
    O("dir_reserved", CORRUPT, "reserved directory field"),
    O("dims_overflow", CORRUPT, "2^56"),
    O("dims_u64max", CORRUPT, "2^56"),
    O("dims_over_2p56", CORRUPT, "2^56"),
    O("bytes_wrap_32bit", CORRUPT, "raw size 24 bytes"),
    O("bytes_huge_consistent", CORRUPT, "run past the data region"),
    O("zero_dim_raw", CORRUPT, "raw size 24 bytes, but 0 elements"),
    O("zero_dim_block", CORRUPT, "raw size 68 bytes, but 0 elements"),
    OK("zero_inner_dim_ok"),
    O("partial_block", CORRUPT, "partial block"),
    O("raw_size_mismatch", CORRUPT, "raw size 10 bytes"),
    O("stored_ne_raw", CORRUPT, "uncompressed tensor stores 10 bytes"),
    O("offset_past_eof", CORRUPT, "run past the data region"),
    O("stored_wraps_to_zero", CORRUPT, "run past the data region"),
    O("stored_align_wraps", CORRUPT, "run past the data region"),
    O("offset_near_2p64", CORRUPT, "data offset 18446744073709551584"),
    O("offset_misaligned", CORRUPT, "data offset"),
    O("offset_overlap", CORRUPT, "data offset 64,"),
    O("offset_out_of_order", CORRUPT, "data offset"),
    O("offset_gap", CORRUPT, "data offset"),
    O("zstd_raw_zero", CORRUPT, "cannot be zstd-compressed"),
    OK("unknown_codec"),
    OK("unknown_type"),
    O("unknown_type_huge_dims", CORRUPT, "2^56"),
    O("data_region_gap", CORRUPT, "but the tensor data ends at"),
    O("dir_trunc_name_length", CORRUPT, "truncated (name length)"),
    O("dir_trunc_name", CORRUPT, "truncated (name)"),
    O("dir_trunc_fields", CORRUPT, "directory entry is truncated"),
    O("dir_trunc_dims", CORRUPT, "truncated (dims)"),
    O("dir_trunc_tail", CORRUPT, "directory entry is truncated"),
    V("data_corrupt_header_ok", CHECKSUM, "checksum of 8 stored bytes", QFMT_OK),
    V("checksum_field_forged", CHECKSUM, "checksum of 68 stored bytes", QFMT_OK),
    V("padding_nonzero", CORRUPT, "padding byte is 0x5a", QFMT_OK),
    V("zstd_fcs_small", CORRUPT, "content size differs", QFMT_E_CORRUPT),
    V("zstd_content_short", CORRUPT, "zstd frame", QFMT_E_CORRUPT),
    V("zstd_content_long", CORRUPT, "zstd frame", QFMT_E_CORRUPT),
    V("zstd_no_fcs", CORRUPT, "does not declare its content size", QFMT_E_CORRUPT),
    V("zstd_window_2p28", CORRUPT, "window exceeds 2^27", QFMT_E_CORRUPT),
    V("zstd_dict", CORRUPT, "needs a dictionary", QFMT_E_CORRUPT),
    V("zstd_trailing", CORRUPT, "exactly one complete zstd frame", QFMT_E_CORRUPT),
    V("zstd_truncated", CORRUPT, "zstd frame", QFMT_E_CORRUPT),
    V("zstd_skippable", CORRUPT, "not a zstd frame", QFMT_E_CORRUPT),
    V("zstd_two_bytes", CORRUPT, "zstd frame too short", QFMT_E_CORRUPT),
    V("zstd_bad_block", CORRUPT, "zstd frame", QFMT_E_CORRUPT),
    V("zstd_bomb", CORRUPT, "zstd frame", QFMT_E_CORRUPT),
    V("zstd_bomb_single_segment", CORRUPT, "zstd frame", QFMT_E_CORRUPT),
    V("zstd_window_max_short", CORRUPT, "zstd frame", QFMT_E_CORRUPT),
    OK("zstd_large_window_ok"),
};
#define NEXPECT (sizeof expect / sizeof expect[0])

static const ht_case *find_expect(const char *name)
{
    for (size_t i = 0; i < NEXPECT; i++)
        if (!strcmp(expect[i].name, name)) return &expect[i];
    return NULL;
}

/* ---- Running one file ------------------------------------------------------------------------ */
static void check_error(const char *what, const qfmt_error *e, qfmt_status got, qfmt_status want,
                        uint64_t off, const char *substr)
{
    cr_expect_eq(got, want, "%s: got %d (%s), want %d (%s): %s", what, (int)got,
                 qfmt_strerror(got), (int)want, qfmt_strerror(want), e->message);
    cr_expect_eq(e->code, got, "%s: err.code %d, returned %d", what, (int)e->code, (int)got);
    cr_expect_eq(e->offset, off, "%s: error at byte %" PRIu64 ", want %" PRIu64 ": %s", what,
                 e->offset, off, e->message);
    cr_expect_not_null(strstr(e->message, substr), "%s: message '%s' lacks '%s'", what, e->message,
                       substr);
    char line[1024], at[48];
    qfmt_error_format(e, line, sizeof line);
    snprintf(at, sizeof at, "byte %" PRIu64, off);
    cr_expect_not_null(strstr(line, at), "%s: formatted error names no offset: %s", what, line);
    cr_expect(qfmt_utf8_valid((const uint8_t *)e->message, strlen(e->message), false),
              "%s: message is not valid UTF-8", what);
    cr_expect(qfmt_utf8_valid((const uint8_t *)e->tensor, strlen(e->tensor), false),
              "%s: err.tensor is not valid UTF-8", what);
    /* names and keys are quoted, but no control character reaches a terminal or a log */
    for (const unsigned char *p = (const unsigned char *)line; *p; p++) {
        cr_expect(*p >= 0x20 && *p != 0x7F, "%s: control byte 0x%02x in '%s'", what, *p, line);
        cr_expect(!(p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F), "%s: C1 control in '%s'", what,
                  line);
    }
}

/* Metadata getters: each scalar getter succeeds exactly on its own stored type, and never
 * reinterprets; arrays are read only as what they are. */
static void touch_meta(qfmt_reader *r, const char *what)
{
    qfmt_error e;
    cr_expect_eq(qfmt_meta_find(r, "no.such.key", NULL, &e), QFMT_E_NOT_FOUND, "%s", what);
    cr_expect_eq(qfmt_meta_get_u32(r, "no.such.key", NULL, &e), QFMT_E_NOT_FOUND, "%s", what);
    cr_expect_eq(qfmt_meta_get_entry(r, qfmt_meta_count(r), NULL, NULL, &e), QFMT_E_RANGE);
    for (uint64_t i = 0; i < qfmt_meta_count(r); i++) {
        const char *k = NULL;
        qfmt_value v;
        cr_assert_eq(qfmt_meta_get_entry(r, i, &k, &v, &e), QFMT_OK, "%s: entry %" PRIu64, what, i);
        uint64_t found = UINT64_MAX;
        cr_expect_eq(qfmt_meta_find(r, k, &found, &e), QFMT_OK, "%s: find '%s'", what, k);
        cr_expect_eq(found, i, "%s: find '%s'", what, k);
        union {
            uint64_t u;
            double d;
            char pad[32];
        } out;
        qfmt_status s[11] = {
            qfmt_meta_get_u8(r, k, (uint8_t *)&out, &e),  qfmt_meta_get_i8(r, k, (int8_t *)&out, &e),
            qfmt_meta_get_u16(r, k, (uint16_t *)&out, &e), qfmt_meta_get_i16(r, k, (int16_t *)&out, &e),
            qfmt_meta_get_u32(r, k, (uint32_t *)&out, &e), qfmt_meta_get_i32(r, k, (int32_t *)&out, &e),
            qfmt_meta_get_u64(r, k, (uint64_t *)&out, &e), qfmt_meta_get_i64(r, k, (int64_t *)&out, &e),
            qfmt_meta_get_f32(r, k, (float *)&out, &e),   qfmt_meta_get_f64(r, k, (double *)&out, &e),
            qfmt_meta_get_bool(r, k, (bool *)&out, &e),
        };
        for (uint32_t t = 0; t < 11; t++)
            cr_expect_eq(s[t], v.type == t ? QFMT_OK : QFMT_E_TYPE, "%s: '%s' (type %u) as %s: %d",
                         what, k, v.type, qfmt_meta_type_name(t), (int)s[t]);
        const char *sp;
        uint64_t sl;
        cr_expect_eq(qfmt_meta_get_string(r, k, &sp, &sl, &e),
                     v.type == QFMT_META_STRING ? QFMT_OK : QFMT_E_TYPE, "%s: '%s' as string", what, k);
        uint32_t et;
        uint64_t cnt;
        qfmt_status sa = qfmt_meta_get_array(r, k, &et, &cnt, &e);
        cr_expect_eq(sa, v.type == QFMT_META_ARRAY ? QFMT_OK : QFMT_E_TYPE, "%s: '%s' as array", what, k);
        if (sa != QFMT_OK) continue;
        for (uint64_t j = 0; j < cnt && j < 64; j++) {
            qfmt_value ev;
            qfmt_status s2 = qfmt_meta_array_get(r, k, j, &ev, &e);
            cr_expect_eq(s2, et <= QFMT_META_STRING ? QFMT_OK : QFMT_E_UNSUPPORTED,
                         "%s: '%s'[%" PRIu64 "]", what, k, j);
            if (s2 == QFMT_OK && et == QFMT_META_STRING) {
                volatile char sink = 0;
                for (uint64_t c = 0; c < ev.v.str.len; c++) sink ^= ev.v.str.ptr[c];
                (void)sink;
            }
        }
        (void)qfmt_meta_array_get(r, k, cnt, NULL, &e); /* one past the end */
        if (cnt > (1u << 20)) {
            for (uint32_t t = 0; t <= QFMT_META_BOOL; t++)
                cr_expect_neq(qfmt_meta_array_copy(r, k, t, NULL, 0, &e), QFMT_OK);
            continue;
        }
        uint64_t *buf = calloc(cnt ? cnt : 1, 8);
        cr_assert_not_null(buf);
        if (cnt && et <= QFMT_META_BOOL)
            cr_expect_eq(qfmt_meta_array_copy(r, k, et, buf, cnt - 1, &e), QFMT_E_RANGE,
                         "%s: '%s' copied into too few elements", what, k);
        for (uint32_t t = 0; t <= QFMT_META_ARRAY + 1; t++) {
            qfmt_status s3 = qfmt_meta_array_copy(r, k, t, buf, cnt, &e);
            cr_expect_eq(s3, (t == et && t <= QFMT_META_BOOL) ? QFMT_OK : QFMT_E_TYPE,
                         "%s: '%s' copied as %u: %d", what, k, t, (int)s3);
        }
        free(buf);
    }
}

/* Every tensor: info, find, view (aligned, inside the file), read (checked against the view),
 * verify. Returns the status of reading tensor `bad` without verification. */
static void touch_tensors(qfmt_reader *r, const uint8_t *base, size_t size, const char *what)
{
    qfmt_error e;
    qfmt_file_info fi;
    qfmt_reader_file_info(r, &fi);
    for (uint64_t i = 0; i < qfmt_tensor_count(r); i++) {
        qfmt_tensor_info ti;
        cr_assert_eq(qfmt_tensor_get_info(r, i, &ti, &e), QFMT_OK);
        uint64_t idx = UINT64_MAX;
        cr_expect_eq(qfmt_tensor_find(r, ti.name, &idx, &e), QFMT_OK, "%s: find '%s'", what, ti.name);
        cr_expect_eq(idx, i);
        const void *v = NULL;
        uint64_t vs = 0;
        qfmt_status sv = qfmt_tensor_view(r, i, &v, &vs, &e);
        bool known = qfmt_type_get_traits(ti.type) != NULL;
        cr_expect_eq(sv, known && ti.codec == QFMT_CODEC_NONE ? QFMT_OK : QFMT_E_UNSUPPORTED,
                     "%s: view '%s': %s", what, ti.name, e.message);
        if (sv == QFMT_OK && base) {
            cr_expect_eq(((const uint8_t *)v - base) % fi.alignment, 0);
            cr_expect((const uint8_t *)v >= base && (const uint8_t *)v + vs <= base + size);
        }
        if (ti.raw_size > (64u << 20)) continue;
        uint8_t *dst = malloc(ti.raw_size ? ti.raw_size : 1);
        cr_assert_not_null(dst);
        qfmt_status sr = qfmt_tensor_read(r, i, dst, ti.raw_size, false, &e);
        if (sv == QFMT_OK) {
            cr_expect_eq(sr, QFMT_OK, "%s: read '%s'", what, ti.name);
            if (sr == QFMT_OK && vs) cr_expect_eq(memcmp(dst, v, vs), 0);
        } else if (!known || (ti.codec != QFMT_CODEC_NONE && ti.codec != QFMT_CODEC_ZSTD)) {
            cr_expect_eq(sr, QFMT_E_UNSUPPORTED, "%s: read '%s'", what, ti.name);
        }
        free(dst);
        (void)qfmt_tensor_verify(r, i, &e);
    }
    (void)qfmt_tensor_get_info(r, qfmt_tensor_count(r), NULL, &e);
}

/* The tensor whose stored bytes start at `off` (the one a verify error names), or UINT64_MAX. */
static uint64_t tensor_at(qfmt_reader *r, uint64_t off)
{
    qfmt_error e;
    for (uint64_t i = 0; i < qfmt_tensor_count(r); i++) {
        qfmt_tensor_info ti;
        if (qfmt_tensor_get_info(r, i, &ti, &e) == QFMT_OK && ti.offset == off && ti.stored_size)
            return i;
    }
    return UINT64_MAX;
}

static void run_case(const hostile_file *f, const ht_case *x, const char *dir)
{
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/%s.qfmt", dir, f->name);
    th_write_file(path, f->buf, f->size);
    const uint64_t index = index_bytes(f->buf, f->size);

    for (int from_file = 0; from_file < 2; from_file++) {
        char what[160];
        snprintf(what, sizeof what, "%s (%s)", f->name, from_file ? "file" : "memory");
        ht_count c = {0};
        qfmt_allocator al = {ht_alloc, ht_free, &c};
        qfmt_open_opts oo = {0};
        oo.alloc = &al;
        uint8_t *copy = th_dup(f->buf, f->size); /* exact size: ASan sees a read past the end */
        qfmt_reader *r = (qfmt_reader *)(uintptr_t)1;
        qfmt_error e;
        memset(&e, 0, sizeof e);
        qfmt_status s = from_file ? qfmt_reader_open(&r, path, &oo, &e)
                                  : qfmt_reader_open_memory(&r, copy, f->size, &oo, &e);
        const uint64_t ob = open_bound(index, from_file ? strlen(path) : 0);
        cr_expect_leq(c.peak, ob, "%s: open allocated %zu bytes at peak, bound %" PRIu64, what,
                      c.peak, ob);
        if (x->stage == AT_OPEN) {
            check_error(what, &e, s, x->status, f->offset, x->substr);
            if (s == QFMT_OK) qfmt_reader_close(r);
            else cr_expect_null(r, "%s: *out not NULL after a failed open", what);
            if (from_file) cr_expect_str_eq(e.path, path, "%s: err.path", what);
        } else {
            cr_assert_eq(s, QFMT_OK, "%s: open: %d %s (byte %" PRIu64 ")", what, (int)s, e.message,
                         e.offset);
            size_t after_open = c.cur;
            c.peak = c.cur;
            qfmt_error ve;
            memset(&ve, 0, sizeof ve);
            qfmt_status vs = qfmt_reader_verify(r, 1, &ve);
            if (x->stage == OPENS) {
                cr_expect_eq(vs, QFMT_OK, "%s: verify: %s", what, ve.message);
            } else {
                check_error(what, &ve, vs, x->status, f->offset, x->substr);
                qfmt_error ve2;
                memset(&ve2, 0, sizeof ve2);
                cr_expect_eq(qfmt_reader_verify(r, 3, &ve2), vs, "%s: verify, 3 threads", what);
                cr_expect_eq(ve2.offset, ve.offset, "%s: verify, 3 threads: offset", what);
                uint64_t bad = tensor_at(r, f->offset);
                if (bad != UINT64_MAX) {
                    qfmt_tensor_info ti;
                    cr_assert_eq(qfmt_tensor_get_info(r, bad, &ti, &e), QFMT_OK);
                    uint8_t *dst = malloc(ti.raw_size ? ti.raw_size : 1);
                    cr_assert_not_null(dst);
                    memset(&e, 0, sizeof e);
                    qfmt_status sr = qfmt_tensor_read(r, bad, dst, ti.raw_size, false, &e);
                    cr_expect_eq(sr, x->read, "%s: read without verify: %d %s", what, (int)sr,
                                 e.message);
                    if (sr != QFMT_OK) cr_expect_eq(e.offset, f->offset);
                    memset(&e, 0, sizeof e);
                    sr = qfmt_tensor_read(r, bad, dst, ti.raw_size, true, &e);
                    cr_expect_neq(sr, QFMT_OK, "%s: read with verify succeeded", what);
                    cr_expect_eq(e.offset, f->offset, "%s: read with verify: offset", what);
                    free(dst);
                }
            }
            touch_tensors(r, from_file ? NULL : copy, f->size, what);
            touch_meta(r, what);
            /* reading and verifying hold at most one zstd decoder at a time */
            qfmt_file_info fi;
            qfmt_reader_file_info(r, &fi);
            uint64_t zb = 0;
            for (uint64_t i = 0; i < fi.tensor_count; i++) {
                qfmt_tensor_info ti;
                cr_assert_eq(qfmt_tensor_get_info(r, i, &ti, &e), QFMT_OK);
                if (ti.codec == QFMT_CODEC_ZSTD && zstd_bound(ti.raw_size) > zb)
                    zb = zstd_bound(ti.raw_size);
            }
            cr_expect_leq(c.peak - after_open, zb,
                          "%s: verify/read allocated %zu bytes beyond open, bound %" PRIu64, what,
                          c.peak - after_open, zb);
            cr_log_info("%s: open %zu bytes (index %" PRIu64 "), verify/read +%zu", what,
                        after_open, index, c.peak - after_open);
            qfmt_reader_close(r);

            if (x->stage == AT_VERIFY) { /* and the same error when verifying at open */
                qfmt_open_opts vo = oo;
                vo.verify_checksums = true;
                r = (qfmt_reader *)(uintptr_t)1;
                memset(&e, 0, sizeof e);
                s = from_file ? qfmt_reader_open(&r, path, &vo, &e)
                              : qfmt_reader_open_memory(&r, copy, f->size, &vo, &e);
                check_error(what, &e, s, x->status, f->offset, x->substr);
                if (s == QFMT_OK) qfmt_reader_close(r);
                else cr_expect_null(r);
            }
        }
        cr_expect_eq(c.live, 0, "%s: %ld allocations leaked", what, c.live);
        cr_expect_eq(c.bad_frees, 0, "%s: foreign frees", what);
        free(copy);
    }
}

/* ---- Tests ----------------------------------------------------------------------------------- */
static hostile_base *make_base(char *dir)
{
    char path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/base.qfmt", dir);
    hostile_base *b = NULL;
    cr_assert_eq(hostile_base_make(path, &b), 0, "the base file cannot be written or parsed");
    return b;
}

Test(hostile, table_covers_every_case) {
    cr_assert_eq(NEXPECT, hostile_case_count(), "expectations %zu, cases %zu", NEXPECT,
                 hostile_case_count());
    for (size_t i = 0; i < hostile_case_count(); i++)
        cr_expect_not_null(find_expect(hostile_case_name(i)), "no expectation for '%s'",
                           hostile_case_name(i));
}

Test(hostile, base_is_valid) {
    char dir[PATH_MAX];
    hostile_base *b = make_base(dir);
    size_t size;
    const uint8_t *bytes = hostile_base_bytes(b, &size);
    hostile_file f = {"base", "valid", (uint8_t *)bytes, size, HOSTILE_NO_OFFSET};
    ht_case x = OK("base");
    run_case(&f, &x, dir);
    qfmt_reader *r = th_open_mem(bytes, size);
    cr_expect_eq(qfmt_meta_count(r), 24);
    cr_expect_eq(qfmt_tensor_count(r), 6);
    qfmt_reader_close(r);
    hostile_base_free(b);
    th_rmtree(dir);
}

Test(hostile, corpus, .timeout = 300) {
    char dir[PATH_MAX];
    hostile_base *b = make_base(dir);
    for (size_t i = 0; i < hostile_case_count(); i++) {
        hostile_file f;
        cr_assert_eq(hostile_case_make(b, i, &f), 0, "case '%s' cannot be built",
                     hostile_case_name(i));
        const ht_case *x = find_expect(f.name);
        cr_assert_not_null(x, "no expectation for '%s'", f.name);
        if (x->stage == OPENS) cr_expect_eq(f.offset, HOSTILE_NO_OFFSET, "%s", f.name);
        else cr_expect_neq(f.offset, HOSTILE_NO_OFFSET, "%s", f.name);
        run_case(&f, x, dir);
        hostile_file_free(&f);
    }
    hostile_base_free(b);
    th_rmtree(dir);
}

/* The truncation test of test_corruption.c, on a file with metadata of every value type and
 * with the allocation bound checked at each prefix. */
Test(hostile, every_prefix_of_base_fails_within_bound, .timeout = 300) {
    char dir[PATH_MAX];
    hostile_base *b = make_base(dir);
    size_t size;
    const uint8_t *orig = hostile_base_bytes(b, &size);
    for (size_t len = 0; len < size; len++) {
        uint8_t *buf = th_dup(orig, len);
        ht_count c = {0};
        qfmt_allocator al = {ht_alloc, ht_free, &c};
        qfmt_open_opts oo = {0};
        oo.alloc = &al;
        qfmt_reader *r = (qfmt_reader *)(uintptr_t)1;
        qfmt_error e;
        memset(&e, 0, sizeof e);
        qfmt_status s = qfmt_reader_open_memory(&r, buf, len, &oo, &e);
        cr_assert_neq(s, QFMT_OK, "prefix of %zu bytes opened", len);
        cr_assert_null(r, "prefix %zu", len);
        cr_assert_eq(e.code, s);
        cr_assert_neq(e.message[0], 0, "prefix %zu: empty message", len);
        cr_assert(e.offset <= len, "prefix %zu: error at byte %" PRIu64 " past the end", len,
                  e.offset);
        cr_assert_leq(c.peak, open_bound(index_bytes(buf, len), 0), "prefix %zu: %zu bytes", len,
                      c.peak);
        cr_assert_eq(c.live, 0, "prefix %zu: leak", len);
        free(buf);
    }
    hostile_base_free(b);
    th_rmtree(dir);
}

/* Every allocation during open fails in turn: clean QFMT_E_NOMEM, nothing leaked, on the base
 * and on the valid hostile files. */
Test(hostile, allocation_failures_at_open) {
    char dir[PATH_MAX];
    hostile_base *b = make_base(dir);
    size_t size;
    const uint8_t *orig = hostile_base_bytes(b, &size);
    for (long n = 1;; n++) {
        th_counting c = {0};
        c.fail_at = n;
        qfmt_allocator al = th_allocator(&c);
        qfmt_open_opts oo = {0};
        oo.alloc = &al;
        qfmt_reader *r = NULL;
        qfmt_error e;
        qfmt_status s = qfmt_reader_open_memory(&r, orig, size, &oo, &e);
        if (s == QFMT_OK) {
            qfmt_reader_close(r);
            cr_assert_eq(c.live, 0);
            break;
        }
        cr_assert_eq(s, QFMT_E_NOMEM, "allocation %ld failed: %d %s", n, (int)s, e.message);
        cr_assert_eq(c.live, 0, "allocation %ld failed: leak", n);
        cr_assert_lt(n, 1000);
    }
    hostile_base_free(b);
    th_rmtree(dir);
}

/* The generator as a program writes the same corpus (used for fuzz seeds). */
Test(hostile, write_corpus_to_directory) {
    char dir[PATH_MAX], sub[PATH_MAX + 16];
    th_mkdtemp(dir);
    snprintf(sub, sizeof sub, "%s/c", dir);
    cr_assert_eq(hostile_write_corpus(sub), 0);
    cr_expect_eq(th_count_entries(sub, NULL, 0), (int)hostile_case_count() + 2);
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", sub);
    cr_assert_eq(system(cmd), 0);
    th_rmtree(dir);
}

/* The densest index the format allows: directory entries of the minimum 57 bytes, metadata
 * entries of the minimum 21 bytes, and a string array of empty strings (8 bytes each, one index
 * slot each). What open allocates must stay within the spec's bound, and this measures how
 * close the worst case comes to it. */
Test(hostile, densest_index_within_bound) {
    enum { NT = 127, NM = 127, NSTR = 4000 };
    static char names[NT][2], keys[NM][2];
    static uint8_t one[NT];
    th_btensor t[NT];
    th_bmeta m[NM + 1];
    memset(t, 0, sizeof t);
    memset(m, 0, sizeof m);
    for (int i = 0; i < NT; i++) { /* 1-byte names 0x01..0x7F, scalars of one byte */
        names[i][0] = (char)(i + 1);
        t[i].name = names[i];
        t[i].name_len = 1;
        t[i].type = QFMT_TYPE_U8;
        t[i].stored = &one[i];
        t[i].stored_size = t[i].raw_size = 1;
    }
    for (int i = 0; i < NM; i++) { /* 1-byte keys, an unknown value type of 0 bytes */
        keys[i][0] = (char)(i + 1);
        m[i].key = keys[i];
        m[i].key_len = 1;
        m[i].vtype = 99;
    }
    uint8_t *arr = calloc(12 + 8 * NSTR, 1);
    cr_assert_not_null(arr);
    th_put32(arr, QFMT_META_STRING);
    th_put64(arr + 4, NSTR);
    m[NM].key = "\x7f\x7f";
    m[NM].key_len = 2;
    m[NM].vtype = QFMT_META_ARRAY;
    m[NM].value = arr;
    m[NM].value_size = 12 + 8 * NSTR;
    size_t size;
    uint8_t *b = th_build(32, m, NM + 1, t, NT, &size);
    ht_count c = {0};
    qfmt_allocator al = {ht_alloc, ht_free, &c};
    qfmt_open_opts oo = {0};
    oo.alloc = &al;
    qfmt_reader *r = NULL;
    qfmt_error e;
    qfmt_status s = qfmt_reader_open_memory(&r, b, size, &oo, &e);
    cr_assert_eq(s, QFMT_OK, "%s", e.message);
    uint64_t index = index_bytes(b, size);
    cr_log_info("densest index: %" PRIu64 " bytes, open allocated %zu (%.2f per byte)", index,
                c.peak, (double)c.peak / (double)index);
    cr_expect_leq(c.peak, open_bound(index, 0));
    qfmt_reader_close(r);
    cr_expect_eq(c.live, 0);
    /* and with the tensors alone (the directory's own ratio) */
    free(b);
    b = th_build(32, NULL, 0, t, NT, &size);
    memset(&c, 0, sizeof c);
    cr_assert_eq(qfmt_reader_open_memory(&r, b, size, &oo, &e), QFMT_OK, "%s", e.message);
    index = index_bytes(b, size);
    cr_log_info("densest directory: %" PRIu64 " bytes, open allocated %zu (%.2f per byte)", index,
                c.peak, (double)c.peak / (double)index);
    cr_expect_leq(c.peak, open_bound(index, 0));
    qfmt_reader_close(r);
    /* and the metadata alone */
    free(b);
    b = th_build(32, m, NM, NULL, 0, &size);
    memset(&c, 0, sizeof c);
    cr_assert_eq(qfmt_reader_open_memory(&r, b, size, &oo, &e), QFMT_OK, "%s", e.message);
    index = index_bytes(b, size);
    cr_log_info("densest metadata: %" PRIu64 " bytes, open allocated %zu (%.2f per byte)", index,
                c.peak, (double)c.peak / (double)index);
    cr_expect_leq(c.peak, open_bound(index, 0));
    qfmt_reader_close(r);
    free(b);
    free(arr);
}

/* A systematic sweep over the base file: every byte of the header and of the index set to a few
 * telling values, and every position overwritten with u32 and u64 boundary values, each time
 * with the header and index checksums recomputed so that the structural checks are reached.
 * Whatever opens is verified and read in full. Every outcome must be clean: a consistent error
 * inside the file, or a usable reader; within the allocation bound; nothing leaked. */
static void sweep_one(const uint8_t *buf, size_t size, const char *what, long *opened)
{
    ht_count c = {0};
    qfmt_allocator al = {ht_alloc, ht_free, &c};
    qfmt_open_opts oo = {0};
    oo.alloc = &al;
    qfmt_reader *r = (qfmt_reader *)(uintptr_t)1;
    qfmt_error e;
    memset(&e, 0, sizeof e);
    qfmt_status s = qfmt_reader_open_memory(&r, buf, size, &oo, &e);
    cr_assert_leq(c.peak, open_bound(index_bytes(buf, size), 0), "%s: open allocated %zu", what,
                  c.peak);
    if (s != QFMT_OK) {
        cr_assert_null(r, "%s", what);
        cr_assert_eq(e.code, s, "%s", what);
        cr_assert_neq(e.message[0], 0, "%s", what);
        cr_assert(e.offset < size || e.offset == QFMT_NO_OFFSET || (size < 128 && e.offset == size),
                  "%s: error at byte %" PRIu64 " of %zu: %s", what, e.offset, size, e.message);
        cr_assert_eq(c.live, 0, "%s: leak", what);
        return;
    }
    (*opened)++;
    qfmt_error ve;
    memset(&ve, 0, sizeof ve);
    qfmt_status vs = qfmt_reader_verify(r, 1, &ve);
    if (vs != QFMT_OK) {
        cr_assert_eq(ve.code, vs, "%s", what);
        cr_assert(ve.offset < size, "%s: verify error at byte %" PRIu64, what, ve.offset);
    }
    touch_tensors(r, buf, size, what);
    touch_meta(r, what);
    qfmt_reader_close(r);
    cr_assert_eq(c.live, 0, "%s: leak", what);
}

/* th_fix_index, unless the footer's Metadata_Offset itself was overwritten past the end. */
static void safe_fix_index(uint8_t *buf, size_t size)
{
    if (th_get64(buf + size - 64) <= size - 16) th_fix_index(buf, size);
}

Test(hostile, sweep_index_and_header_values, .timeout = 600) {
    char dir[PATH_MAX];
    hostile_base *b = make_base(dir);
    size_t size;
    const uint8_t *orig = hostile_base_bytes(b, &size);
    uint8_t *buf = th_dup(orig, size);
    const uint64_t mo = th_get64(orig + size - 64);
    static const uint8_t bytes[] = {0x00, 0x01, 0x7F, 0x80, 0xC0, 0xFF};
    static const uint64_t words[] = {0, 1, 31, 32, 57, 1ull << 31, 1ull << 32, (1ull << 32) - 1,
                                     1ull << 56, (1ull << 56) + 1, 1ull << 63, UINT64_MAX,
                                     UINT64_MAX - 31};
    long tried = 0, opened = 0;
    char what[96];
    for (size_t pos = 0; pos < size - 16; pos++) {
        if (pos >= 56 && pos < mo) continue; /* the header checksum, the data region */
        /* single bytes */
        for (size_t k = 0; k < sizeof bytes; k++) {
            if (orig[pos] == bytes[k]) continue;
            buf[pos] = bytes[k];
            if (pos < 56) th_fix_header(buf);
            else safe_fix_index(buf, size);
            snprintf(what, sizeof what, "byte %zu = 0x%02x", pos, bytes[k]);
            sweep_one(buf, size, what, &opened);
            tried++;
            memcpy(buf, orig, size);
        }
        /* u32 and u64 values written at this position (fields are not aligned) */
        for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
            for (int w = 4; w <= 8; w += 4) {
                if (pos + (size_t)w > (pos < 56 ? 56u : size - 16)) continue;
                if (w == 4) th_put32(buf + pos, (uint32_t)words[k]);
                else th_put64(buf + pos, words[k]);
                if (pos < 56) th_fix_header(buf);
                else safe_fix_index(buf, size);
                snprintf(what, sizeof what, "u%d at %zu = %" PRIu64, 8 * w, pos, words[k]);
                sweep_one(buf, size, what, &opened);
                tried++;
                memcpy(buf, orig, size);
            }
        }
    }
    /* the zstd frame's bytes, with the tensor's checksum recomputed: decoding is reached */
    th_layout L;
    th_parse(orig, size, &L);
    const th_dirent *z = th_find_tensor(&L, "blk.0.zstd_u8.z8");
    for (uint64_t pos = z->offset; pos < z->offset + z->stored; pos++) {
        for (size_t k = 0; k < sizeof bytes; k++) {
            if (orig[pos] == bytes[k]) continue;
            buf[pos] = bytes[k];
            th_fix_tensor(buf, size, z);
            snprintf(what, sizeof what, "frame byte %" PRIu64 " = 0x%02x", pos - z->offset, bytes[k]);
            sweep_one(buf, size, what, &opened);
            tried++;
            memcpy(buf, orig, size);
        }
    }
    th_layout_free(&L);
    cr_log_info("sweep: %ld variants, %ld opened", tried, opened);
    free(buf);
    hostile_base_free(b);
    th_rmtree(dir);
}

/* Long names and keys of multi-byte characters, quoted by errors: the message (256 bytes) and
 * err.tensor (128) are cut, but never inside a character. */
Test(hostile, long_utf8_names_cut_cleanly) {
    char key[251], name[301];
    for (int i = 0; i < 125; i++) memcpy(key + 2 * i, "\xC3\xA9", 2); /* 125 x U+00E9 */
    key[250] = 0;
    for (int i = 0; i < 100; i++) memcpy(name + 3 * i, "\xE2\x82\xAC", 3); /* 100 x U+20AC */
    name[300] = 0;
    uint8_t two = 2, data[4] = {0};
    th_bmeta m = {key, 0, QFMT_META_BOOL, &two, 1}; /* bool 2: an error quoting the key */
    th_btensor t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.type = QFMT_TYPE_F32;
    t.ndim = 1;
    t.dims[0] = 1;
    t.stored = data;
    t.stored_size = 4;
    t.raw_size = 8; /* wrong: an error naming the tensor */
    const char *cases[2] = {"key", "name"};
    for (int c = 0; c < 2; c++) {
        size_t size;
        uint8_t *b = c == 0 ? th_build(32, &m, 1, NULL, 0, &size) : th_build(32, NULL, 0, &t, 1, &size);
        qfmt_error e;
        th_open_expect(b, size, QFMT_E_CORRUPT, &e, cases[c]);
        cr_expect(qfmt_utf8_valid((const uint8_t *)e.message, strlen(e.message), false),
                  "%s: message cut inside a character: %s", cases[c], e.message);
        cr_expect(qfmt_utf8_valid((const uint8_t *)e.tensor, strlen(e.tensor), false),
                  "%s: err.tensor cut inside a character", cases[c]);
        if (c == 0) cr_expect_gt(strlen(e.message), 200u, "%s", e.message);
        else cr_expect_gt(strlen(e.tensor), 100u, "%s", e.tensor);
        free(b);
    }
}
