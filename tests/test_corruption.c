/*
 * test_corruption.c - damaged files: every single-bit flip of a sample is caught by open or
 * verify, every truncation fails to open cleanly, and each crafted violation of the spec (with
 * checksums recomputed so that the intended check is the one that fires) gets its error code,
 * byte offset and tensor name.
 */
#include "test_helpers.h"

/* Exercise everything a caller could touch, so ASan sees any out-of-bounds access. */
static void touch_all(qfmt_reader *r) {
    qfmt_error e;
    qfmt_file_info fi;
    qfmt_reader_file_info(r, &fi);
    uint8_t *dst = malloc(4096);
    cr_assert_not_null(dst);
    for (uint64_t i = 0; i < qfmt_tensor_count(r); i++) {
        qfmt_tensor_info ti;
        if (qfmt_tensor_get_info(r, i, &ti, &e) != QFMT_OK) continue;
        uint64_t idx;
        (void)qfmt_tensor_find(r, ti.name, &idx, &e);
        const void *v;
        uint64_t vs;
        if (qfmt_tensor_view(r, i, &v, &vs, &e) == QFMT_OK && vs) {
            volatile uint8_t sink = 0;
            for (uint64_t k = 0; k < vs; k++) sink ^= ((const uint8_t *)v)[k];
            (void)sink;
        }
        if (ti.raw_size <= 4096) (void)qfmt_tensor_read(r, i, dst, ti.raw_size, false, &e);
        (void)qfmt_tensor_verify(r, i, &e);
    }
    for (uint64_t i = 0; i < qfmt_meta_count(r); i++) {
        const char *k;
        qfmt_value v;
        if (qfmt_meta_get_entry(r, i, &k, &v, &e) != QFMT_OK) continue;
        if (v.type == QFMT_META_ARRAY)
            for (uint64_t j = 0; j < v.v.arr.count && j < 64; j++) {
                qfmt_value ev;
                (void)qfmt_meta_array_get(r, k, j, &ev, &e);
            }
    }
    free(dst);
}

Test(corruption, sample_is_small_and_valid) {
    size_t size;
    uint8_t *b = th_sample_bytes(&size);
    cr_assert_lt(size, 2048u, "sample is %zu bytes", size);
    qfmt_reader *r = th_open_mem(b, size);
    qfmt_error e;
    TH_OKE(qfmt_reader_verify(r, 1, &e), e);
    uint64_t z;
    TH_OKE(qfmt_tensor_find(r, "z", &z, &e), e);
    qfmt_tensor_info ti;
    TH_OKE(qfmt_tensor_get_info(r, z, &ti, &e), e);
    cr_assert_eq(ti.codec, QFMT_CODEC_ZSTD, "the sample holds a compressed tensor");
    qfmt_reader_close(r);
    free(b);
}

Test(corruption, every_bit_flip_detected, .timeout = 300) {
    size_t size;
    uint8_t *orig = th_sample_bytes(&size);
    uint8_t *buf = th_dup(orig, size); /* exact size: ASan catches reads past the end */
    long undetected = 0, opened = 0;
    char report[1024] = "";
    size_t rl = 0;
    for (size_t i = 0; i < size; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            qfmt_reader *r = (qfmt_reader *)(uintptr_t)1;
            qfmt_error e;
            memset(&e, 0, sizeof e);
            qfmt_status s = qfmt_reader_open_memory(&r, buf, size, NULL, &e);
            if (s == QFMT_OK) {
                opened++;
                qfmt_error ve;
                memset(&ve, 0, sizeof ve);
                qfmt_status vs = qfmt_reader_verify(r, 1, &ve);
                touch_all(r);
                if (vs == QFMT_OK) {
                    if (undetected++ < 16 && rl < sizeof report - 64)
                        rl += (size_t)snprintf(report + rl, sizeof report - rl, " byte %zu bit %d;",
                                               i, bit);
                } else {
                    cr_expect_eq(ve.code, vs);
                    cr_expect_neq(ve.message[0], 0, "verify message for byte %zu bit %d", i, bit);
                }
                qfmt_reader_close(r);
            } else {
                cr_expect_null(r, "byte %zu bit %d: *out not NULL after failure", i, bit);
                cr_expect_eq(e.code, s, "byte %zu bit %d: err.code", i, bit);
                cr_expect_neq(e.message[0], 0, "byte %zu bit %d: empty message", i, bit);
            }
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    cr_assert_eq(memcmp(buf, orig, size), 0);
    cr_log_info("bit flips: %zu bytes, %zu flips, %ld opened (caught by verify)", size, size * 8,
                opened);
    cr_assert_eq(undetected, 0, "%ld of %zu flips open and verify OK:%s", undetected, size * 8,
                 report);
    /* at least the tensor bytes and padding are only caught by verify, not by open */
    cr_assert_gt(opened, 0);
    free(buf);
    free(orig);
}

Test(corruption, every_truncation_fails_cleanly, .timeout = 120) {
    size_t size;
    uint8_t *orig = th_sample_bytes(&size);
    for (size_t len = 0; len < size; len++) {
        uint8_t *b = th_dup(orig, len);
        qfmt_reader *r = (qfmt_reader *)(uintptr_t)1;
        qfmt_error e;
        memset(&e, 0, sizeof e);
        qfmt_status s = qfmt_reader_open_memory(&r, len ? b : NULL, len, NULL, &e);
        cr_assert_neq(s, QFMT_OK, "prefix of %zu bytes opened", len);
        if (s == QFMT_OK) qfmt_reader_close(r);
        cr_assert_null(r, "prefix %zu", len);
        cr_assert_eq(e.code, s);
        cr_assert_neq(e.message[0], 0, "prefix %zu: empty message", len);
        free(b);
    }
    /* and one byte too many, or a block of zeros appended */
    uint8_t *longer = calloc(size + 64, 1);
    cr_assert_not_null(longer);
    memcpy(longer, orig, size);
    qfmt_reader *r = NULL;
    qfmt_error e;
    cr_assert_neq(qfmt_reader_open_memory(&r, longer, size + 1, NULL, &e), QFMT_OK);
    cr_assert_neq(qfmt_reader_open_memory(&r, longer, size + 64, NULL, &e), QFMT_OK);
    free(longer);
    free(orig);
}

Test(corruption, every_truncation_on_disk, .timeout = 120) {
    size_t size;
    uint8_t *orig = th_sample_bytes(&size);
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/trunc.qfmt", dir);
    for (size_t len = 0; len < size; len++) {
        th_write_file(path, orig, len);
        qfmt_reader *r = (qfmt_reader *)(uintptr_t)1;
        qfmt_error e;
        memset(&e, 0, sizeof e);
        qfmt_status s = qfmt_reader_open(&r, path, NULL, &e);
        cr_assert_neq(s, QFMT_OK, "file of %zu bytes opened", len);
        cr_assert_null(r);
        cr_assert_eq(e.code, s);
        cr_assert_neq(e.message[0], 0);
        cr_assert_str_eq(e.path, path, "err.path of a file error");
        char line[1024];
        qfmt_error_format(&e, line, sizeof line);
        cr_assert_not_null(strstr(line, path), "message names the file: %s", line);
        cr_assert_null(strchr(line, '\n'), "one line: %s", line);
    }
    free(orig);
    th_rmtree(dir);
}

/* ---- Crafted files --------------------------------------------------------------------------- */
typedef struct {
    uint8_t *b;
    size_t size;
    th_layout L;
} sample;

static void sample_load(sample *s) {
    s->b = th_sample_bytes(&s->size);
    th_parse(s->b, s->size, &s->L);
}

static void sample_free(sample *s) {
    free(s->b);
    th_layout_free(&s->L);
}

Test(corruption, bad_magic) {
    sample s;
    sample_load(&s);
    qfmt_error e;
    for (int i = 0; i < 8; i++) {
        uint8_t *b = th_dup(s.b, s.size);
        b[i] ^= 0x20;
        th_fix_header(b);
        th_open_expect(b, s.size, QFMT_E_BAD_MAGIC, &e, "magic byte changed");
        free(b);
    }
    /* a CRLF-mangled file: "\n" -> "\r\n" shifts everything after byte 5 */
    uint8_t *b = malloc(s.size + 1);
    cr_assert_not_null(b);
    memcpy(b, s.b, 5);
    b[5] = '\r';
    memcpy(b + 6, s.b + 5, s.size - 5);
    th_open_expect(b, s.size + 1, QFMT_E_BAD_MAGIC, &e, "CRLF-mangled");
    free(b);
    uint8_t zeros[256] = {0};
    th_open_expect(zeros, sizeof zeros, QFMT_E_BAD_MAGIC, &e, "zeros");
    uint8_t gguf[256] = "GGUF\x03\x00\x00\x00";
    th_open_expect(gguf, sizeof gguf, QFMT_E_BAD_MAGIC, &e, "a GGUF file");
    char text[200];
    memset(text, 'x', sizeof text);
    th_open_expect((const uint8_t *)text, sizeof text, QFMT_E_BAD_MAGIC, &e, "text");
    sample_free(&s);
}

Test(corruption, versions) {
    sample s;
    sample_load(&s);
    qfmt_error e;
    const uint16_t bad_major[] = {0, 2, 3, 0xFFFF};
    for (size_t i = 0; i < sizeof bad_major / sizeof bad_major[0]; i++) {
        uint8_t *b = th_dup(s.b, s.size);
        th_put16(b + 8, bad_major[i]);
        th_fix_header(b);
        th_open_expect(b, s.size, QFMT_E_VERSION, &e, "major version");
        free(b);
    }
    /* the major version is checked before the header checksum (a v2 header may differ) */
    uint8_t *b = th_dup(s.b, s.size);
    th_put16(b + 8, 2);
    qfmt_reader *r = NULL;
    cr_expect_eq(qfmt_reader_open_memory(&r, b, s.size, NULL, &e), QFMT_E_VERSION,
                 "major 2 with the old checksum: %s", e.message);
    qfmt_reader_close(r);
    free(b);
    /* any minor opens */
    b = th_dup(s.b, s.size);
    th_put16(b + 10, 9);
    th_fix_header(b);
    r = th_open_mem(b, s.size);
    qfmt_file_info fi;
    qfmt_reader_file_info(r, &fi);
    cr_assert_eq(fi.version_major, 1);
    cr_assert_eq(fi.version_minor, 9);
    TH_OKE(qfmt_reader_verify(r, 1, &e), e);
    qfmt_reader_close(r);
    free(b);
    sample_free(&s);
}

Test(corruption, feature_bits) {
    sample s;
    sample_load(&s);
    qfmt_error e;
    for (int bit = 0; bit < 32; bit++) {
        uint8_t *b = th_dup(s.b, s.size);
        th_put32(b + 12, 1u << bit);
        th_fix_header(b);
        char what[64];
        snprintf(what, sizeof what, "required feature bit %d", bit);
        th_open_expect(b, s.size, QFMT_E_VERSION, &e, what);
        th_put32(b + 12, 0);
        th_put32(b + 16, 1u << bit);
        th_fix_header(b);
        qfmt_reader *r = th_open_mem(b, s.size);
        qfmt_file_info fi;
        qfmt_reader_file_info(r, &fi);
        cr_assert_eq(fi.optional_features, 1u << bit);
        cr_assert_eq(fi.required_features, 0u);
        TH_OKE(qfmt_reader_verify(r, 1, &e), e);
        qfmt_reader_close(r);
        free(b);
    }
    sample_free(&s);
}

Test(corruption, bad_alignment) {
    sample s;
    sample_load(&s);
    qfmt_error e;
    const uint32_t bad[] = {0, 1, 3, 16, 31, 48, 96, 1u << 21, 1u << 31, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *b = th_dup(s.b, s.size);
        th_put32(b + 20, bad[i]);
        th_fix_header(b);
        char what[64];
        snprintf(what, sizeof what, "alignment %u", bad[i]);
        th_open_expect(b, s.size, QFMT_E_CORRUPT, &e, what);
        free(b);
    }
    /* valid, but not the one the offsets were laid out with */
    uint8_t *b = th_dup(s.b, s.size);
    th_put32(b + 20, 64);
    th_fix_header(b);
    th_open_expect(b, s.size, QFMT_E_CORRUPT, &e, "alignment 64 for a file laid out with 32");
    free(b);
    sample_free(&s);
}

Test(corruption, reserved_header_bytes) {
    sample s;
    sample_load(&s);
    qfmt_error e;
    for (int i = 24; i < 56; i++) {
        uint8_t *b = th_dup(s.b, s.size);
        b[i] = 1;
        th_fix_header(b);
        char what[64];
        snprintf(what, sizeof what, "reserved header byte %d", i);
        th_open_expect(b, s.size, QFMT_E_CORRUPT, &e, what);
        cr_expect(e.offset >= 24 && e.offset < 56, "%s: err.offset %" PRIu64, what, e.offset);
        free(b);
    }
    sample_free(&s);
}

Test(corruption, checksums) {
    sample s;
    sample_load(&s);
    qfmt_error e;
    uint8_t *b = th_dup(s.b, s.size);
    b[60] ^= 4;
    th_open_expect(b, s.size, QFMT_E_CHECKSUM, &e, "header checksum");
    cr_expect_neq(e.offset, QFMT_NO_OFFSET);
    free(b);
    b = th_dup(s.b, s.size);
    b[s.size - 12] ^= 4;
    th_open_expect(b, s.size, QFMT_E_CHECKSUM, &e, "index checksum");
    free(b);
    b = th_dup(s.b, s.size);
    b[s.L.meta_off + 9] ^= 1; /* a key byte */
    th_open_expect(b, s.size, QFMT_E_CHECKSUM, &e, "metadata byte");
    free(b);
    b = th_dup(s.b, s.size);
    b[s.size - 30] ^= 1; /* tensor count in the footer, covered by the index checksum */
    th_open_expect(b, s.size, QFMT_E_CHECKSUM, &e, "footer byte");
    free(b);

    /* a tensor's data: open is fine (data untouched), verify and checked reads fail */
    const th_dirent *t = th_find_tensor(&s.L, "b");
    b = th_dup(s.b, s.size);
    b[t->offset + 3] ^= 0x10;
    qfmt_reader *r = th_open_mem(b, s.size);
    uint64_t idx;
    TH_OKE(qfmt_tensor_find(r, "b", &idx, &e), e);
    memset(&e, 0, sizeof e);
    cr_assert_eq(qfmt_tensor_verify(r, idx, &e), QFMT_E_CHECKSUM);
    cr_assert_str_eq(e.tensor, "b");
    uint8_t dst[8];
    cr_assert_eq(qfmt_tensor_read(r, idx, dst, 8, true, &e), QFMT_E_CHECKSUM);
    TH_OKE(qfmt_tensor_read(r, idx, dst, 8, false, &e), e); /* unchecked read: caller's choice */
    cr_assert_eq(memcmp(dst, b + t->offset, 8), 0);
    memset(&e, 0, sizeof e);
    cr_assert_eq(qfmt_reader_verify(r, 1, &e), QFMT_E_CHECKSUM);
    cr_assert_str_eq(e.tensor, "b");
    qfmt_reader_close(r);
    qfmt_open_opts oo = {0};
    oo.verify_checksums = true;
    r = NULL;
    cr_assert_eq(qfmt_reader_open_memory(&r, b, s.size, &oo, &e), QFMT_E_CHECKSUM);
    cr_assert_null(r);
    cr_assert_str_eq(e.tensor, "b");

    /* with two bad tensors, verify names the first in file order, whatever the threads */
    const th_dirent *tz = th_find_tensor(&s.L, "z");
    b[tz->offset] ^= 1;
    r = th_open_mem(b, s.size);
    for (unsigned th = 0; th <= 4; th++) {
        memset(&e, 0, sizeof e);
        cr_assert_neq(qfmt_reader_verify(r, th, &e), QFMT_OK);
        cr_assert_str_eq(e.tensor, "b", "threads=%u", th);
    }
    qfmt_reader_close(r);
    free(b);
    sample_free(&s);
}

/* Patch one directory field of tensor `name` and expect CORRUPT naming the tensor, with
 * err.offset inside its directory entry. */
static void dir_patch_expect(sample *s, const char *name, size_t field_delta, int width,
                             uint64_t value, const char *what) {
    const th_dirent *t = th_find_tensor(&s->L, name);
    uint8_t *b = th_dup(s->b, s->size);
    if (width == 4) th_put32(b + field_delta, (uint32_t)value);
    else th_put64(b + field_delta, value);
    th_fix_index(b, s->size);
    qfmt_error e;
    th_open_expect(b, s->size, QFMT_E_CORRUPT, &e, what);
    cr_expect_str_eq(e.tensor, name, "%s: err.tensor", what);
    cr_expect(e.offset >= t->entry_off && e.offset < t->entry_end,
              "%s: err.offset %" PRIu64 " not inside the directory entry [%" PRIu64 ", %" PRIu64 ")",
              what, e.offset, t->entry_off, t->entry_end);
    free(b);
}

Test(corruption, tensor_offsets) {
    sample s;
    sample_load(&s);
    const th_dirent *t = th_find_tensor(&s.L, "b");
    dir_patch_expect(&s, "b", t->offset_off, 8, t->offset + 32, "offset one alignment too far");
    dir_patch_expect(&s, "b", t->offset_off, 8, t->offset - 32, "offset one alignment too near");
    dir_patch_expect(&s, "b", t->offset_off, 8, t->offset + 1, "offset off by one byte");
    dir_patch_expect(&s, "b", t->offset_off, 8, UINT64_MAX, "offset 2^64-1");
    dir_patch_expect(&s, "b", t->offset_off, 8, 0, "offset 0 (inside the header)");
    t = th_find_tensor(&s.L, "a");
    dir_patch_expect(&s, "a", t->offset_off, 8, t->offset + 32, "first tensor moved");
    dir_patch_expect(&s, "a", t->reserved_off, 4, 1, "non-zero reserved directory field");
    t = th_find_tensor(&s.L, "e");
    dir_patch_expect(&s, "e", t->stored_off, 8, UINT64_MAX, "stored size 2^64-1");
    dir_patch_expect(&s, "e", t->stored_off, 8, 1ull << 40, "stored size past the file");
    dir_patch_expect(&s, "e", t->offset_off, 8, t->offset + 32, "empty tensor moved");
    sample_free(&s);
}

/* The error message for a file on disk: one line naming file, tensor and byte. */
Test(corruption, error_format_on_disk) {
    sample s;
    sample_load(&s);
    const th_dirent *t = th_find_tensor(&s.L, "b");
    uint8_t *b = th_dup(s.b, s.size);
    th_put64(b + t->offset_off, t->offset + 32);
    th_fix_index(b, s.size);
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/bad offset.qfmt", dir);
    th_write_file(path, b, s.size);
    qfmt_reader *r = NULL;
    qfmt_error e;
    memset(&e, 0, sizeof e);
    cr_assert_eq(qfmt_reader_open(&r, path, NULL, &e), QFMT_E_CORRUPT, "%s", e.message);
    cr_assert_str_eq(e.path, path);
    cr_assert_str_eq(e.tensor, "b");
    cr_assert_eq(e.sys_errno, 0);
    char line[1024], num[32];
    cr_assert_eq(qfmt_error_format(&e, line, sizeof line), line);
    cr_assert_null(strchr(line, '\n'), "one line: %s", line);
    cr_assert_not_null(strstr(line, path), "names the file: %s", line);
    cr_assert_not_null(strstr(line, "'b'"), "names the tensor: %s", line);
    snprintf(num, sizeof num, "%" PRIu64, e.offset);
    cr_assert_not_null(strstr(line, num), "names the byte: %s", line);
    cr_assert_not_null(strstr(line, e.message), "carries the message: %s", line);
    /* small buffers: truncated, terminated, never overrun */
    char small[12];
    memset(small, 'Q', sizeof small);
    qfmt_error_format(&e, small, 8);
    cr_assert_lt(strlen(small), 8u);
    cr_assert_eq(small[8], 'Q');
    free(b);
    sample_free(&s);

    /* missing file: IO with errno and path */
    snprintf(path, sizeof path, "%s/missing.qfmt", dir);
    memset(&e, 0, sizeof e);
    cr_assert_eq(qfmt_reader_open(&r, path, NULL, &e), QFMT_E_IO);
    cr_assert_eq(e.sys_errno, ENOENT);
    cr_assert_str_eq(e.path, path);
    qfmt_error_format(&e, line, sizeof line);
    cr_assert_not_null(strstr(line, path), "%s", line);
    /* a directory is not a qfmt file */
    memset(&e, 0, sizeof e);
    cr_assert_neq(qfmt_reader_open(&r, dir, NULL, &e), QFMT_OK);
    cr_assert_null(r);
    cr_assert_neq(e.message[0], 0);
    th_rmtree(dir);
}

Test(corruption, sizes_and_dims) {
    sample s;
    sample_load(&s);
    const th_dirent *a = th_find_tensor(&s.L, "a"), *z = th_find_tensor(&s.L, "z"),
                    *e = th_find_tensor(&s.L, "e");
    dir_patch_expect(&s, "a", a->raw_off, 8, 28, "raw size 28 for f32[2,3]");
    dir_patch_expect(&s, "a", a->raw_off, 8, 20, "raw size 20 for f32[2,3]");
    dir_patch_expect(&s, "a", a->dims_off, 8, 3, "dims [3,3] for 24 bytes");
    dir_patch_expect(&s, "z", z->raw_off, 8, 255, "zstd raw size 255 for u8[256]");
    dir_patch_expect(&s, "z", z->dims_off, 8, 257, "zstd u8[257] with raw size 256");
    /* a zero dim next to a dim beyond the limit: the product is 0, the dim is still illegal */
    dir_patch_expect(&s, "e", e->dims_off + 8, 8, 1ull << 60, "dims [0, 2^60]");
    dir_patch_expect(&s, "e", e->dims_off + 8, 8, UINT64_MAX, "dims [0, 2^64-1]");

    /* products that wrap to 0 in 64 bits (raw size 0 "matches" a wrapped product) */
    uint8_t *b = th_dup(s.b, s.size);
    th_put64(b + e->dims_off, 1ull << 32);
    th_put64(b + e->dims_off + 8, 1ull << 32);
    th_fix_index(b, s.size);
    qfmt_error err;
    th_open_expect(b, s.size, QFMT_E_CORRUPT, &err, "dims [2^32, 2^32]: product overflows");
    cr_expect_str_eq(err.tensor, "e");
    th_put64(b + e->dims_off, 1ull << 56);
    th_put64(b + e->dims_off + 8, 1ull << 56);
    th_fix_index(b, s.size);
    th_open_expect(b, s.size, QFMT_E_CORRUPT, &err, "dims [2^56, 2^56]: product overflows");
    th_put64(b + e->dims_off, 1ull << 28);
    th_put64(b + e->dims_off + 8, 1ull << 29);
    th_fix_index(b, s.size);
    th_open_expect(b, s.size, QFMT_E_CORRUPT, &err, "2^57 elements > QFMT_MAX_ELEMENTS");
    free(b);

    /* ndim beyond 8 */
    dir_patch_expect(&s, "e", e->ndim_off, 4, 9, "ndim 9");
    dir_patch_expect(&s, "e", e->ndim_off, 4, UINT32_MAX, "ndim 2^32-1");
    sample_free(&s);
}

/* Huge counts must be rejected from the sizes, without allocating for them. */
Test(corruption, huge_counts_no_huge_allocation) {
    sample s;
    sample_load(&s);
    const uint64_t counts[] = {1ull << 32, UINT64_MAX, QFMT_MAX_TENSORS, 6, 4, 0};
    for (int field = 24; field <= 32; field += 8) { /* Metadata_Count, Tensor_Count */
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
            uint8_t *b = th_dup(s.b, s.size);
            uint64_t c = counts[i];
            if (c == 6 || c == 4) c = th_get64(b + s.size - 64 + field) + (c == 6 ? 1 : -1ull);
            th_put64(b + s.size - 64 + field, c);
            th_fix_index(b, s.size);
            th_counting ca = {0};
            qfmt_allocator al = th_allocator(&ca);
            qfmt_open_opts oo = {0};
            oo.alloc = &al;
            qfmt_reader *r = NULL;
            qfmt_error e;
            memset(&e, 0, sizeof e);
            qfmt_status st = qfmt_reader_open_memory(&r, b, s.size, &oo, &e);
            cr_expect_eq(st, QFMT_E_CORRUPT, "%s count %" PRIu64 ": %d %s",
                         field == 24 ? "metadata" : "tensor", c, (int)st, e.message);
            cr_assert_lt(ca.max_request, 1u << 20, "count %" PRIu64 ": allocated %zu bytes", c,
                         ca.max_request);
            if (st == QFMT_OK) qfmt_reader_close(r);
            cr_assert_eq(ca.live, 0, "leak after a failed open");
            free(b);
        }
    }
    sample_free(&s);
}

Test(corruption, footer_sizes) {
    sample s;
    sample_load(&s);
    qfmt_error e;
    const size_t F = s.size - 64;
    struct {
        int off;
        uint64_t v;
        const char *what;
    } cases[] = {
        {0, s.L.meta_off + 32, "metadata offset moved by one alignment"},
        {0, s.L.meta_off + 1, "metadata offset not aligned"},
        {0, 0, "metadata offset 0"},
        {0, UINT64_MAX, "metadata offset 2^64-1"},
        {8, s.L.meta_size + 1, "metadata size + 1"},
        {8, UINT64_MAX, "metadata size 2^64-1"},
        {8, UINT64_MAX - s.L.meta_off + 1, "metadata offset + size wraps to 0"},
        {16, s.L.dir_size - 1, "directory size - 1"},
        {16, UINT64_MAX - 63, "directory size wraps"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *b = th_dup(s.b, s.size);
        th_put64(b + F + cases[i].off, cases[i].v);
        /* the checksum covers [Metadata_Offset, size-16): recompute over the real one */
        th_put64(b + s.size - 16, th_xxh3(b + s.L.meta_off, s.size - 16 - s.L.meta_off));
        th_open_expect(b, s.size, QFMT_E_CORRUPT, &e, cases[i].what);
        free(b);
    }
    uint8_t *b = th_dup(s.b, s.size);
    b[s.size - 1] ^= 1;
    th_open_expect(b, s.size, QFMT_E_CORRUPT, &e, "end magic");
    free(b);
    sample_free(&s);
}

/* Unknown tensor type or codec: the file opens, the tensor is listed and verifiable, not readable. */
static void unknown_field_case(sample *s, const char *name, bool codec, uint32_t value) {
    const th_dirent *t = th_find_tensor(&s->L, name);
    uint8_t *b = th_dup(s->b, s->size);
    th_put32(b + (codec ? t->codec_off : t->type_off), value);
    th_fix_index(b, s->size);
    qfmt_reader *r = th_open_mem(b, s->size);
    qfmt_error e;
    uint64_t idx;
    TH_OKE(qfmt_tensor_find(r, name, &idx, &e), e);
    qfmt_tensor_info ti;
    TH_OKE(qfmt_tensor_get_info(r, idx, &ti, &e), e);
    cr_assert_eq(codec ? ti.codec : ti.type, value);
    cr_assert_eq(ti.stored_size, t->stored);
    cr_assert_eq(ti.raw_size, t->raw);
    const void *v;
    uint64_t vs;
    memset(&e, 0, sizeof e);
    cr_assert_eq(qfmt_tensor_view(r, idx, &v, &vs, &e), QFMT_E_UNSUPPORTED, "%s view", name);
    cr_assert_str_eq(e.tensor, name);
    uint8_t *dst = malloc(t->raw + 1);
    cr_assert_not_null(dst);
    cr_assert_eq(qfmt_tensor_read(r, idx, dst, t->raw, true, &e), QFMT_E_UNSUPPORTED, "%s read",
                 name);
    cr_assert_eq(qfmt_tensor_read(r, idx, dst, t->raw, false, &e), QFMT_E_UNSUPPORTED);
    TH_OKE(qfmt_tensor_verify(r, idx, &e), e);
    TH_OKE(qfmt_reader_verify(r, 2, &e), e);
    /* the others still read */
    uint64_t other;
    TH_OKE(qfmt_tensor_find(r, strcmp(name, "a") ? "a" : "b", &other, &e), e);
    uint8_t tmp[64];
    TH_OKE(qfmt_tensor_read(r, other, tmp, strcmp(name, "a") ? 24 : 8, true, &e), e);
    qfmt_reader_close(r);
    free(dst);
    free(b);
}

Test(corruption, unknown_type_and_codec) {
    sample s;
    sample_load(&s);
    unknown_field_case(&s, "a", false, 999);
    unknown_field_case(&s, "a", false, 4096);
    unknown_field_case(&s, "z", false, 999); /* compressed, unknown type */
    unknown_field_case(&s, "a", true, 7);
    unknown_field_case(&s, "z", true, 2);
    unknown_field_case(&s, "a", true, UINT32_MAX);
    sample_free(&s);
}

Test(corruption, nonzero_padding) {
    sample s;
    sample_load(&s);
    /* every padding byte of the data region, in turn */
    uint64_t end = 64;
    int tested = 0;
    for (uint64_t i = 0; i <= s.L.tensor_count; i++) {
        uint64_t next = i < s.L.tensor_count ? s.L.t[i].offset : s.L.meta_off;
        for (uint64_t p = end; p < next; p++) {
            uint8_t *b = th_dup(s.b, s.size);
            b[p] = 0x80;
            qfmt_reader *r = th_open_mem(b, s.size);
            qfmt_error e;
            for (uint64_t k = 0; k < s.L.tensor_count; k++) TH_OKE(qfmt_tensor_verify(r, k, &e), e);
            memset(&e, 0, sizeof e);
            qfmt_status st = qfmt_reader_verify(r, 1, &e);
            cr_assert_neq(st, QFMT_OK, "padding byte %" PRIu64 " = 0x80 passes verify", p);
            cr_expect_eq(st, QFMT_E_CORRUPT, "padding byte %" PRIu64, p);
            cr_expect_eq(e.offset, p, "err.offset names the padding byte");
            qfmt_reader_close(r);
            free(b);
            tested++;
        }
        if (i < s.L.tensor_count) end = s.L.t[i].offset + s.L.t[i].stored;
    }
    cr_assert_gt(tested, 8, "the sample has padding");
    sample_free(&s);
}

/* ---- zstd frames that do not match the directory (built by hand) --------------------------- */
static void zstd_case(const uint8_t *stored, size_t stored_size, uint64_t raw, const char *what) {
    th_btensor t[2] = {
        {"bad", 0, QFMT_TYPE_U8, QFMT_CODEC_ZSTD, 1, {raw}, stored, stored_size, raw},
        {"next", 0, QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, {3}, "abc", 3, 3},
    };
    size_t size;
    uint8_t *b = th_build(32, NULL, 0, t, 2, &size);
    qfmt_reader *r = NULL;
    qfmt_error e;
    memset(&e, 0, sizeof e);
    qfmt_status st = qfmt_reader_open_memory(&r, b, size, NULL, &e);
    cr_assert_eq(st, QFMT_OK, "%s: open must not look at tensor data: %d %s", what, (int)st,
                 e.message);
    uint8_t *dst = malloc(raw + 16);
    cr_assert_not_null(dst);
    memset(dst, 0x5A, raw + 16);
    memset(&e, 0, sizeof e);
    st = qfmt_tensor_read(r, 0, dst, raw, false, &e);
    cr_assert_neq(st, QFMT_OK, "%s: read succeeded", what);
    cr_expect_eq(st, QFMT_E_CORRUPT, "%s: read gives %d", what, (int)st);
    cr_expect_str_eq(e.tensor, "bad", "%s", what);
    for (int i = 0; i < 16; i++) cr_assert_eq(dst[raw + i], 0x5A, "%s: wrote past dst", what);
    memset(&e, 0, sizeof e);
    st = qfmt_tensor_verify(r, 0, &e);
    cr_assert_neq(st, QFMT_OK, "%s: tensor_verify passed", what);
    cr_expect_str_eq(e.tensor, "bad", "%s", what);
    cr_assert_neq(qfmt_reader_verify(r, 1, &e), QFMT_OK, "%s: reader_verify passed", what);
    uint8_t abc[3];
    TH_OKE(qfmt_tensor_read(r, 1, abc, 3, true, &e), e);
    qfmt_reader_close(r);
    free(dst);
    free(b);
}

Test(corruption, zstd_frames) {
    uint8_t data[300], frame[800];
    for (int i = 0; i < 300; i++) data[i] = (uint8_t)(i * 7);
    size_t n;

    /* the well-formed frame reads back (the reader decodes frames it did not write) */
    n = th_zstd_raw_frame(frame, 100, data, 100);
    {
        th_btensor t[1] = {{"ok", 0, QFMT_TYPE_U8, QFMT_CODEC_ZSTD, 1, {100}, frame, n, 100}};
        size_t size;
        uint8_t *b = th_build(32, NULL, 0, t, 1, &size);
        qfmt_reader *r = th_open_mem(b, size);
        uint8_t out[100];
        qfmt_error e;
        TH_OKE(qfmt_tensor_read(r, 0, out, 100, true, &e), e);
        cr_assert_eq(memcmp(out, data, 100), 0);
        TH_OKE(qfmt_reader_verify(r, 1, &e), e);
        qfmt_reader_close(r);
        free(b);
    }
    n = th_zstd_raw_frame(frame, 100, data, 100);
    zstd_case(frame, n, 101, "content size 100, raw size 101");
    zstd_case(frame, n, 99, "content size 100, raw size 99");
    n = th_zstd_raw_frame(frame, 300, data, 300);
    zstd_case(frame, n, 299, "content size 300 (2-byte field), raw size 299");
    n = th_zstd_raw_frame(frame, 100, data, 99);
    zstd_case(frame, n, 100, "declares 100, holds 99");
    n = th_zstd_raw_frame(frame, 100, data, 101);
    zstd_case(frame, n, 100, "declares 100, holds 101");
    n = th_zstd_raw_frame(frame, UINT64_MAX, data, 100);
    zstd_case(frame, n, 100, "no content size field");
    /* two frames of 50 making 100 bytes: the spec wants exactly one frame */
    n = th_zstd_raw_frame(frame, 50, data, 50);
    n += th_zstd_raw_frame(frame + n, 50, data + 50, 50);
    zstd_case(frame, n, 100, "two frames");
    /* a skippable frame first */
    th_put32(frame, 0x184D2A50u);
    th_put32(frame + 4, 4);
    memset(frame + 8, 0, 4);
    n = 12 + th_zstd_raw_frame(frame + 12, 100, data, 100);
    zstd_case(frame, n, 100, "skippable frame first");
    /* trailing garbage after the frame */
    n = th_zstd_raw_frame(frame, 100, data, 100);
    frame[n++] = 0xAB;
    zstd_case(frame, n, 100, "a byte after the frame");
    /* not a frame at all */
    zstd_case(data, 40, 100, "not a zstd frame");
    /* frame cut short */
    n = th_zstd_raw_frame(frame, 100, data, 100);
    zstd_case(frame, n - 10, 100, "truncated frame");
    /* huge declared content size against a small raw size */
    n = th_zstd_raw_frame(frame, 0xFFFFFFF0u, data, 100);
    zstd_case(frame, n, 100, "content size 2^32-16");
}

/* zstd with Raw_Size 0 is outside the spec: refused at open or at read, never a crash. */
Test(corruption, zstd_raw_size_zero) {
    uint8_t frame[32];
    size_t n = th_zstd_raw_frame(frame, 0, "", 0);
    th_btensor t[1] = {{"z0", 0, QFMT_TYPE_U8, QFMT_CODEC_ZSTD, 1, {0}, frame, n, 0}};
    size_t size;
    uint8_t *b = th_build(32, NULL, 0, t, 1, &size);
    qfmt_reader *r = NULL;
    qfmt_error e;
    qfmt_status st = qfmt_reader_open_memory(&r, b, size, NULL, &e);
    if (st == QFMT_OK) {
        uint8_t d[1];
        cr_assert_neq(qfmt_reader_verify(r, 1, &e), QFMT_OK, "zstd with Raw_Size 0 verified");
        (void)qfmt_tensor_read(r, 0, d, 0, false, &e);
        qfmt_reader_close(r);
    } else {
        cr_assert_eq(st, QFMT_E_CORRUPT);
    }
    free(b);
}

/* Directory rules checked at open, on hand-built files. */
Test(corruption, directory_rules) {
    uint8_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    qfmt_error e;
    size_t size;
    uint8_t *b;
    {
        th_btensor t[2] = {{"same", 0, QFMT_TYPE_U8, 0, 1, {4}, x, 4, 4},
                           {"same", 0, QFMT_TYPE_U8, 0, 1, {4}, x + 4, 4, 4}};
        b = th_build(32, NULL, 0, t, 2, &size);
        th_open_expect(b, size, QFMT_E_CORRUPT, &e, "duplicate tensor names");
        free(b);
    }
    {
        th_btensor t[1] = {{"", 0, QFMT_TYPE_U8, 0, 1, {4}, x, 4, 4}};
        b = th_build(32, NULL, 0, t, 1, &size);
        th_open_expect(b, size, QFMT_E_CORRUPT, &e, "empty tensor name");
        free(b);
    }
    {
        th_btensor t[1] = {{"a\0b", 3, QFMT_TYPE_U8, 0, 1, {4}, x, 4, 4}};
        b = th_build(32, NULL, 0, t, 1, &size);
        th_open_expect(b, size, QFMT_E_CORRUPT, &e, "NUL in a tensor name");
        free(b);
    }
    {
        th_btensor t[1] = {{"\xC3\x28", 0, QFMT_TYPE_U8, 0, 1, {4}, x, 4, 4}};
        b = th_build(32, NULL, 0, t, 1, &size);
        th_open_expect(b, size, QFMT_E_CORRUPT, &e, "invalid UTF-8 tensor name");
        free(b);
    }
    {
        char *nm = malloc(QFMT_MAX_NAME_LEN + 2);
        cr_assert_not_null(nm);
        memset(nm, 'n', QFMT_MAX_NAME_LEN + 1);
        nm[QFMT_MAX_NAME_LEN + 1] = 0;
        th_btensor t[1] = {{nm, 0, QFMT_TYPE_U8, 0, 1, {4}, x, 4, 4}};
        b = th_build(32, NULL, 0, t, 1, &size);
        th_open_expect(b, size, QFMT_E_CORRUPT, &e, "1025-byte tensor name");
        free(b);
        nm[QFMT_MAX_NAME_LEN] = 0;
        b = th_build(32, NULL, 0, t, 1, &size);
        th_open_expect(b, size, QFMT_OK, &e, "1024-byte tensor name");
        free(b);
        free(nm);
    }
    {
        th_btensor t[1] = {{"s", 0, QFMT_TYPE_F32, 0, 0, {0}, x, 4, 4}};
        b = th_build(32, NULL, 0, t, 1, &size);
        th_open_expect(b, size, QFMT_OK, &e, "f32 scalar");
        free(b);
        t[0].stored_size = t[0].raw_size = 8;
        b = th_build(32, NULL, 0, t, 1, &size);
        th_open_expect(b, size, QFMT_E_CORRUPT, &e, "f32 scalar of 8 bytes");
        free(b);
    }
    {
        /* a name may hold any UTF-8, a newline too: the formatted error stays one line */
        th_btensor t[1] = {{"evil\nname", 0, QFMT_TYPE_U8, 0, 1, {4}, x, 5, 5}};
        b = th_build(32, NULL, 0, t, 1, &size);
        th_open_expect(b, size, QFMT_E_CORRUPT, &e, "raw size 5 for u8[4]");
        char line[1024];
        qfmt_error_format(&e, line, sizeof line);
        cr_expect_null(strchr(line, '\n'), "one line: %s", line);
        free(b);
    }
    {
        /* codec none: stored size must equal raw size */
        th_btensor t[1] = {{"n", 0, QFMT_TYPE_U8, 0, 1, {4}, x, 5, 4}};
        b = th_build(32, NULL, 0, t, 1, &size);
        th_open_expect(b, size, QFMT_E_CORRUPT, &e, "codec none, stored 5, raw 4");
        free(b);
    }
}
