/*
 * fuzz_st_writer.c - libFuzzer target for the safetensors writer (libqfmt/src/export/
 * safetensors.c: qfmt_st_writer_begin / write / commit / free), read back with qfmt_st_open.
 *
 * Input: a byte stream decoded into one writer session:
 *   byte 0: the ending (bits 0-1: 0/1 commit after writing every byte, 2 abandon (free without
 *           commit) after writing a part, 3 commit after writing one byte too few; bit 2: try
 *           to write one byte past the end first; bits 3-5: the piece size of the writes,
 *           1 to 16384 bytes, at most 64 writes; data over 256 KiB: abandoned unwritten);
 *   byte 1: the number of tensors (0..7);
 *   per tensor: a name length byte (0..39; 0x7f: 1024 bytes, 0xff: 1025 bytes in the first
 *           tensor; bit 7 set later: the name of an earlier tensor, a duplicate), the name bytes (any bytes: NUL, invalid UTF-8, control characters,
 *           "__metadata__"), a type byte (index into every type id 0..31 and 256..263, those
 *           without a dtype included), an ndim byte (0..9: 9 is too many), one byte per
 *           dimension (0..6, or 255: 2^40, 254: 2^53 + 1, 253: 2^27, so sizes overflow), and a
 *           byte that, when 0xA5, puts a non-zero reserved field;
 *   the rest: the tensors' data, cycled.
 * The writer writes into a scratch directory of its own (in /dev/shm when there is one),
 * through qfmt_st_writer_begin_io with the POSIX table but a no-op fsync (speed only).
 *
 * Checks: begin accepts exactly the lists the API documents as valid (names 1..1024 bytes of
 * UTF-8 without NUL, not "__metadata__", unique; reserved zero; ndim <= 8; a type with a
 * dtype; no dimension above 2^53, at most QFMT_MAX_ELEMENTS elements (a 0 dimension aside)
 * and total bytes <= 2^53), with the documented status
 * otherwise, *out NULL and nothing on disk; a write past the end is refused with QFMT_E_ARG
 * and the writer stays usable; a commit with bytes missing fails with QFMT_E_STATE and
 * leaves neither the file nor the temporary; an abandoned writer leaves nothing; a committed
 * file opens with qfmt_st_open holding exactly the given names (qfmt_st_find), dtypes (type
 * and qfmt_st_dtype_name), shapes and bytes, in the order given (offsets back to back from
 * 0), "__metadata__" {"format": "pt"}, and the temporary path is gone.
 *
 * Build: with clang and -DQFMT_FUZZ=ON (libFuzzer), or with any compiler linked with
 * regression_driver.c to replay a corpus. See fuzz/README.md.
 */
#define _POSIX_C_SOURCE 200809L
#define QFMT_STATIC_LINKING_ONLY

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qfmt.h"
#include "fuzz_check.h"
#include "fuzz_scratch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_TENSORS = 8, MAX_NAME = 40, LONG_NAME = QFMT_MAX_NAME_LEN + 1, MAX_DATA = 1 << 18, MAX_WRITES = 64 };

typedef struct {
    const uint8_t *p;
    size_t n;
} stream;

static uint8_t next(stream *s)
{
    if (s->n == 0)
        return 0;
    s->n--;
    return *s->p++;
}

static uint32_t pick_type(uint8_t b)
{
    b %= 40;
    return b < 32 ? b : 256u + (b - 32u);
}

static uint64_t pick_dim(uint8_t b)
{
    switch (b) {
    case 255: return 1ull << 40;
    case 254: return (1ull << 53) + 1;
    case 253: return 1ull << 27;
    default: return b % 7;
    }
}

typedef struct {
    char name[LONG_NAME + 1];
    size_t name_len; /* bytes given, up to any NUL */
    qfmt_st_tensor_desc desc;
    uint64_t bytes;
    uint32_t elem; /* element size, 0: no dtype */
} tspec;

static uint32_t elem_size(uint32_t type)
{
    switch (type) {
    case QFMT_TYPE_F64: case QFMT_TYPE_I64: return 8;
    case QFMT_TYPE_F32: case QFMT_TYPE_I32: return 4;
    case QFMT_TYPE_F16: case QFMT_TYPE_BF16: case QFMT_TYPE_I16: return 2;
    case QFMT_TYPE_I8: case QFMT_TYPE_U8: case QFMT_TYPE_BOOL: return 1;
    default: return 0;
    }
}

/* What begin must say of the list, from the API's documentation (qfmt.h). */
static qfmt_status expected_status(tspec *t, size_t n, uint64_t *total)
{
    const uint64_t exact = 1ull << 53;
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(t[i].name);
        if (len == 0 || len > QFMT_MAX_NAME_LEN || !qfmt_utf8_valid((const uint8_t *)t[i].name, len, false))
            return QFMT_E_ARG;
        if (strcmp(t[i].name, "__metadata__") == 0)
            return QFMT_E_ARG;
        if (t[i].desc.reserved[0] != 0)
            return QFMT_E_ARG;
        if (t[i].desc.ndim > QFMT_MAX_DIMS)
            return QFMT_E_ARG;
        if (qfmt_st_dtype_name(t[i].desc.type) == NULL)
            return QFMT_E_UNSUPPORTED;
        CHECK(t[i].elem != 0); /* every type with a dtype is one of those above */
        for (uint32_t d = 0; d < t[i].desc.ndim; d++)
            if (t[i].desc.dims[d] > exact)
                return QFMT_E_RANGE;
        /* dims <= 2^53 each: multiply the non-zero ones in 128 bits, saturating. Beyond
         * QFMT_MAX_ELEMENTS (elements of one tensor) they are refused even when another
         * dimension is 0, as qfmt_st_open and the qfmt reader refuse such a shape. */
        unsigned __int128 el = 1;
        bool zero = false;
        for (uint32_t d = 0; d < t[i].desc.ndim; d++) {
            if (t[i].desc.dims[d] == 0) {
                zero = true;
                continue;
            }
            el *= t[i].desc.dims[d];
            if (el > QFMT_MAX_ELEMENTS)
                return QFMT_E_RANGE;
        }
        unsigned __int128 b = zero ? 0 : el * t[i].elem;
        if (b > exact)
            return QFMT_E_RANGE;
        t[i].bytes = (uint64_t)b;
        at += t[i].bytes;
        if (at > exact)
            return QFMT_E_RANGE;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(t[i].name, t[j].name) == 0)
                return QFMT_E_EXISTS;
    *total = at;
    return QFMT_OK;
}

static void check_readback(const char *path, const tspec *t, size_t n, const uint8_t *bytes)
{
    qfmt_st_file *f = NULL;
    qfmt_error e;
    qfmt_status s = qfmt_st_open(&f, path, NULL, &e);
    if (s != QFMT_OK) {
        char buf[600];
        fprintf(stderr, "read back: %s\n", qfmt_error_format(&e, buf, sizeof buf));
    }
    CHECK(s == QFMT_OK);
    CHECK(qfmt_st_count(f) == n);
    const char *fmt = qfmt_st_metadata(f, "format");
    CHECK(fmt != NULL && strcmp(fmt, "pt") == 0);
    uint64_t at = 0, data_start = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t idx;
        CHECK(qfmt_st_find(f, t[i].name, &idx, &e) == QFMT_OK);
        qfmt_st_tensor st;
        CHECK(qfmt_st_get(f, idx, &st, &e) == QFMT_OK);
        CHECK(strcmp(st.name, t[i].name) == 0);
        CHECK(st.type == t[i].desc.type);
        CHECK(strcmp(st.dtype, qfmt_st_dtype_name(t[i].desc.type)) == 0);
        CHECK(st.ndim == t[i].desc.ndim);
        uint64_t nel = 1;
        for (uint32_t d = 0; d < st.ndim; d++) {
            CHECK(st.dims[d] == t[i].desc.dims[d]);
            nel *= st.dims[d];
        }
        CHECK(st.nelements == nel);
        CHECK(st.size == t[i].bytes);
        if (i == 0)
            data_start = st.offset;
        CHECK(st.offset == data_start + at); /* back to back, in the order given */
        CHECK(data_start % 8 == 0);          /* data starts 8-aligned */
        CHECK(st.size == 0 || memcmp(st.data, bytes + at, (size_t)st.size) == 0);
        at += st.size;
    }
    CHECK(qfmt_st_file_size(f) == data_start + at || n == 0);
    qfmt_st_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    stream in = {data, size};
    uint8_t mode = next(&in);
    size_t n = next(&in) % MAX_TENSORS;
    tspec t[MAX_TENSORS];
    memset(t, 0, sizeof t);
    for (size_t i = 0; i < n; i++) {
        qfmt_st_tensor_desc init = QFMT_ST_TENSOR_DESC_INIT;
        t[i].desc = init;
        uint8_t lb = next(&in);
        if ((lb & 0x80) && i > 0) {
            memcpy(t[i].name, t[lb % i].name, sizeof t[i].name);
        } else {
            size_t len = (lb & 0x7f) % MAX_NAME;
            for (size_t k = 0; k < len; k++)
                t[i].name[k] = (char)next(&in);
            if ((lb & 0x7f) == 0x7f) /* 1024 bytes (the most) or 1025 (one too many) */
                memset(t[i].name, 'n', QFMT_MAX_NAME_LEN + (lb == 0x7f ? 0u : 1u));
        }
        t[i].desc.name = t[i].name;
        t[i].desc.type = pick_type(next(&in));
        t[i].elem = elem_size(t[i].desc.type);
        t[i].desc.ndim = next(&in) % 10;
        for (uint32_t d = 0; d < t[i].desc.ndim && d < QFMT_MAX_DIMS; d++)
            t[i].desc.dims[d] = pick_dim(next(&in));
        if (next(&in) == 0xA5)
            t[i].desc.reserved[0] = 1;
    }
    qfmt_st_tensor_desc descs[MAX_TENSORS];
    for (size_t i = 0; i < n; i++)
        descs[i] = t[i].desc;

    const char *dir = scratch_dir("stw");
    char path[300];
    snprintf(path, sizeof path, "%s/out.safetensors", dir);
    CHECK(count_files(dir) == 0);

    uint64_t total = 0;
    qfmt_status want = expected_status(t, n, &total);
    static char not_null;
    qfmt_st_writer *w = (qfmt_st_writer *)(void *)&not_null;
    qfmt_error e;
    qfmt_status s = qfmt_st_writer_begin_io(&w, path, descs, n, NULL, &io, &e);
    if (s != want) {
        char buf[600];
        fprintf(stderr, "begin: %d, expected %d: %s\n", (int)s, (int)want,
                s ? qfmt_error_format(&e, buf, sizeof buf) : "");
    }
    CHECK(s == want);
    if (s != QFMT_OK) {
        CHECK(w == NULL);
        check_error(s, &e);
        CHECK(e.message[0] != '\0');
        CHECK(count_files(dir) == 0);
        return 0;
    }
    CHECK(w != NULL);
    const char *tmp = qfmt_st_writer_temp_path(w);
    CHECK(tmp != NULL && strncmp(tmp, path, strlen(path)) == 0);
    CHECK(strncmp(tmp + strlen(path), ".tmp.", 5) == 0);
    char tmp_copy[400];
    snprintf(tmp_copy, sizeof tmp_copy, "%s", tmp);
    CHECK(access(tmp_copy, F_OK) == 0 && access(path, F_OK) != 0);

    if (total > MAX_DATA) { /* too much to write here: abandon */
        qfmt_st_writer_free(w);
        CHECK(count_files(dir) == 0);
        return 0;
    }
    /* the data: the rest of the input, cycled (zeros when there is none) */
    uint8_t *bytes = malloc(total ? (size_t)total : 1);
    CHECK(bytes != NULL);
    for (uint64_t i = 0; i < total; i++)
        bytes[i] = in.n ? in.p[i % in.n] : 0;

    int ending = mode & 3;
    if (mode & 4) { /* one byte past the end, refused with the writer still usable */
        uint8_t extra[1] = {0};
        uint8_t *big = malloc((size_t)total + 1);
        CHECK(big != NULL);
        memcpy(big, bytes, (size_t)total);
        big[total] = 0;
        s = qfmt_st_writer_write(w, big, (size_t)total + 1, &e);
        CHECK(s == QFMT_E_ARG);
        check_error(s, &e);
        free(big);
        (void)extra;
    }
    uint64_t to_write = total;
    if (ending == 2)
        to_write = total / 2;
    else if (ending == 3)
        to_write = total ? total - 1 : 0;
    size_t piece = (size_t)1 << (((mode >> 3) & 7) * 2); /* 1, 4, 16, ... 16384 */
    if (piece < to_write / MAX_WRITES) /* bounded system calls per input (speed) */
        piece = (size_t)(to_write / MAX_WRITES) + 1;
    for (uint64_t at = 0; at < to_write;) {
        size_t k = to_write - at < piece ? (size_t)(to_write - at) : piece;
        s = qfmt_st_writer_write(w, bytes + at, k, &e);
        CHECK(s == QFMT_OK);
        at += k;
    }
    if (to_write == total && (mode & 4)) { /* full: any further byte is refused */
        uint8_t one = 0;
        s = qfmt_st_writer_write(w, &one, 1, &e);
        CHECK(s == QFMT_E_ARG);
    }
    CHECK(qfmt_st_writer_write(w, bytes, 0, &e) == QFMT_OK); /* nothing: fine */

    if (ending == 2) {
        qfmt_st_writer_free(w);
        CHECK(count_files(dir) == 0);
    } else {
        s = qfmt_st_writer_commit(w, &e);
        if (to_write == total) {
            CHECK(s == QFMT_OK);
            CHECK(qfmt_st_writer_temp_path(w) == NULL);
            qfmt_st_writer_free(w);
            CHECK(access(tmp_copy, F_OK) != 0);
            CHECK(count_files(dir) == 1);
            check_readback(path, t, n, bytes);
            CHECK(unlink(path) == 0);
        } else {
            CHECK(s == QFMT_E_STATE);
            check_error(s, &e);
            qfmt_st_writer_free(w);
            CHECK(count_files(dir) == 0);
        }
    }
    CHECK(count_files(dir) == 0);
    free(bytes);
    return 0;
}
