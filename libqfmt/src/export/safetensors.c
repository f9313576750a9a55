/* The streaming, atomic safetensors writer (qfmt.h, "Export: safetensors"): header at begin,
 * data as it comes, then fsync + rename + fsync of the directory, as writer.c does for qfmt
 * files (cf. libgit2 git_filebuf_commit). Every system call goes through the qfmt_io table
 * and every allocation through the caller's allocator, so tests can fail each one. The JSON
 * header is written here, with the escapes cJSON's printer uses, to keep that allocator. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/alloc.h"
#include "internal/checked.h"
#include "internal/error.h"
#include "internal/io.h"
#include "internal/types.h"
#include "internal/utf8.h"

#define ST_MAX_EXACT (1ull << 53) /* what a JSON number (a double) holds exactly */

enum { S_OPEN, S_DONE, S_FAILED };

struct qfmt_st_writer {
    qfmt__alloc al;
    qfmt_io io;
    int fd;
    int state;
    char *path, *tmp;
    uint64_t expected, written; /* data bytes */
    uint64_t disk;              /* bytes in the file */
};

/* Every failure of a live writer names its final path (qfmt__fail formats the message). */
#define ST_FAIL(w, err, code, sys_errno, offset, ...) \
    qfmt__fail(err, code, sys_errno, (w)->path, NULL, offset, __VA_ARGS__)

/* An I/O failure: the temporary file goes at once; the writer only awaits free. */
static void abandon(qfmt_st_writer *w)
{
    if (w->fd >= 0) {
        w->io.close(w->io.ctx, w->fd);
        w->fd = -1;
        w->io.unlink(w->io.ctx, w->tmp);
    }
    w->state = S_FAILED;
}

static qfmt_status write_out(qfmt_st_writer *w, const void *p, size_t n, qfmt_error *err)
{
    size_t done = 0;
    int e = qfmt__write_all(&w->io, w->fd, p, n, &done);
    uint64_t at = w->disk + done;
    w->disk = at;
    if (!e) return QFMT_OK;
    qfmt_status s = ST_FAIL(w, err, QFMT_E_IO, e, at, "write failed: %s", strerror(e));
    abandon(w);
    return s;
}

/* ---- The JSON header ------------------------------------------------------------------------ */
typedef struct {
    const qfmt__alloc *al;
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (n > cap - b->len) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        void *p = b->p;
        if (qfmt__grow(b->al, &p, b->len, cap) != 0) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_u64(sbuf *b, uint64_t v)
{
    char t[24];
    int k = snprintf(t, sizeof t, "%" PRIu64, v);
    sb_put(b, t, (size_t)k);
}
/* A JSON string: the escapes of cJSON's printer; UTF-8 passes as it is. */
static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char t[8];
        switch (*c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (*c < 0x20) {
                snprintf(t, sizeof t, "\\u%04x", (unsigned)*c);
                sb_put(b, t, 6);
            } else {
                sb_put(b, (const char *)c, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks the list and sizes every tensor; *total gets the data bytes. */
static qfmt_status check_tensors(const qfmt__alloc *al, const char *path, const qfmt_st_tensor_desc *t,
                                 size_t n, uint64_t *total, qfmt_error *err)
{
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *nm = t[i].name;
        size_t len = nm ? strlen(nm) : 0;
        if (len == 0 || len > QFMT_MAX_NAME_LEN || !qfmt_utf8_valid((const uint8_t *)nm, len, false))
            return qfmt__fail(err, QFMT_E_ARG, 0, path, nm, QFMT_NO_OFFSET,
                              "tensor %zu: name must be 1..%u bytes of UTF-8", i, QFMT_MAX_NAME_LEN);
        if (strcmp(nm, "__metadata__") == 0)
            return qfmt__fail(err, QFMT_E_ARG, 0, path, nm, QFMT_NO_OFFSET,
                              "'__metadata__' is safetensors' own key, not a tensor name");
        if (!QFMT__RESERVED_ZERO(&t[i]))
            return qfmt__fail(err, QFMT_E_ARG, 0, path, nm, QFMT_NO_OFFSET,
                              "qfmt_st_tensor_desc: reserved fields must be zero "
                              "(start from QFMT_ST_TENSOR_DESC_INIT)");
        if (t[i].ndim > QFMT_MAX_DIMS)
            return qfmt__fail(err, QFMT_E_ARG, 0, path, nm, QFMT_NO_OFFSET, "%u dimensions, at most %u",
                              t[i].ndim, QFMT_MAX_DIMS);
        if (!qfmt_st_dtype_name(t[i].type))
            return qfmt__fail(err, QFMT_E_UNSUPPORTED, 0, path, nm, QFMT_NO_OFFSET,
                              "type %u has no safetensors dtype", t[i].type);
        uint64_t nel, bytes;
        for (uint32_t d = 0; d < t[i].ndim; d++)
            if (t[i].dims[d] > ST_MAX_EXACT)
                return qfmt__fail(err, QFMT_E_RANGE, 0, path, nm, QFMT_NO_OFFSET,
                                  "dimension %u is %" PRIu64 ", beyond 2^53", d, t[i].dims[d]);
        if (qfmt__tensor_bytes(t[i].type, t[i].ndim, t[i].dims, &nel, &bytes) != QFMT_OK ||
            !qfmt__add_u64(at, bytes, &at) || at > ST_MAX_EXACT)
            return qfmt__fail(err, QFMT_E_RANGE, 0, path, nm, QFMT_NO_OFFSET,
                              "tensor sizes overflow or pass 2^53 bytes");
    }
    /* Unique names, as qfmt_st_open demands: sort a copy of the pointers. */
    if (n > 1) {
        const char **names = qfmt__malloc_array(al, n, sizeof *names);
        if (!names)
            return qfmt__fail(err, QFMT_E_NOMEM, 0, path, NULL, QFMT_NO_OFFSET, "out of memory");
        for (size_t i = 0; i < n; i++) names[i] = t[i].name;
        qsort(names, n, sizeof *names, cmp_names);
        for (size_t i = 1; i < n; i++)
            if (strcmp(names[i - 1], names[i]) == 0) {
                qfmt_status s = qfmt__fail(err, QFMT_E_EXISTS, 0, path, names[i], QFMT_NO_OFFSET,
                                           "two tensors of this name");
                qfmt__free(al, names);
                return s;
            }
        qfmt__free(al, names);
    }
    *total = at;
    return QFMT_OK;
}

/* The 8-byte length, the JSON and the spaces that make data start 8-aligned, in one buffer. */
static qfmt_status build_header(sbuf *b, const char *path, const qfmt_st_tensor_desc *t, size_t n,
                                qfmt_error *err)
{
    sb_put(b, "\0\0\0\0\0\0\0\0", 8); /* the length, filled in below */
    sb_str(b, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t nel, bytes;
        qfmt__tensor_bytes(t[i].type, t[i].ndim, t[i].dims, &nel, &bytes); /* checked */
        sb_put(b, ",", 1);
        sb_json_string(b, t[i].name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, qfmt_st_dtype_name(t[i].type));
        sb_str(b, "\",\"shape\":[");
        for (uint32_t d = 0; d < t[i].ndim; d++) {
            if (d) sb_put(b, ",", 1);
            sb_u64(b, t[i].dims[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, at);
        sb_put(b, ",", 1);
        sb_u64(b, at + bytes);
        sb_str(b, "]}");
        at += bytes;
    }
    sb_put(b, "}", 1);
    while (!b->oom && (b->len - 8) % 8 != 0) sb_put(b, " ", 1);
    if (b->oom)
        return qfmt__fail(err, QFMT_E_NOMEM, 0, path, NULL, QFMT_NO_OFFSET,
                          "out of memory building the safetensors header");
    uint64_t hl = b->len - 8;
    for (int k = 0; k < 8; k++) b->p[k] = (char)(uint8_t)(hl >> (8 * k));
    return QFMT_OK;
}

/* ---- The writer ------------------------------------------------------------------------------ */

qfmt_status qfmt_st_writer_begin(qfmt_st_writer **out, const char *path, const qfmt_st_tensor_desc *tensors,
                                 size_t count, const qfmt_allocator *alloc, qfmt_error *err)
{
    return qfmt_st_writer_begin_io(out, path, tensors, count, alloc, NULL, err);
}

qfmt_status qfmt_st_writer_begin_io(qfmt_st_writer **out, const char *path,
                                    const qfmt_st_tensor_desc *tensors, size_t count,
                                    const qfmt_allocator *alloc, const qfmt_io *io, qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!out || !path || !*path)
        return qfmt__fail(err, QFMT_E_ARG, 0, path, NULL, QFMT_NO_OFFSET, "no output path");
    *out = NULL;
    if (count && !tensors)
        return qfmt__fail(err, QFMT_E_ARG, 0, path, NULL, QFMT_NO_OFFSET, "NULL tensor list");
    qfmt__alloc al;
    qfmt__alloc_init(&al, alloc);
    uint64_t total = 0;
    qfmt_status s = check_tensors(&al, path, tensors, count, &total, err);
    if (s != QFMT_OK) return s;

    qfmt_st_writer *w = qfmt__malloc(&al, sizeof *w);
    if (!w) return qfmt__fail(err, QFMT_E_NOMEM, 0, path, NULL, QFMT_NO_OFFSET, "cannot allocate the writer");
    memset(w, 0, sizeof *w);
    w->al = al;
    w->io = io ? *io : qfmt_io_posix;
    w->fd = -1;
    w->state = S_FAILED; /* until the header is out */
    w->expected = total;
    size_t plen = strlen(path), tcap = plen + 16;
    w->path = qfmt__strndup(&w->al, path, plen);
    w->tmp = qfmt__malloc(&w->al, tcap);
    sbuf hdr = {&w->al, NULL, 0, 0, false};
    if (!w->path || !w->tmp) {
        s = qfmt__fail(err, QFMT_E_NOMEM, 0, path, NULL, QFMT_NO_OFFSET, "cannot allocate the writer");
        goto fail;
    }
    if ((s = build_header(&hdr, path, tensors, count, err)) != QFMT_OK) goto fail;
    /* a fresh name, created exclusively: never follows a link planted under a guessable name */
    w->fd = qfmt__create_temp(&w->io, path, w->tmp, tcap, (uint64_t)(uintptr_t)w);
    if (w->fd < 0) {
        int e = errno;
        s = qfmt__fail(err, QFMT_E_IO, e, path, NULL, QFMT_NO_OFFSET,
                       "cannot create a temporary file beside it: %s", strerror(e));
        goto fail;
    }
    if ((s = write_out(w, hdr.p, hdr.len, err)) != QFMT_OK) goto fail;
    qfmt__free(&w->al, hdr.p);
    w->state = S_OPEN;
    *out = w;
    return QFMT_OK;
fail:
    qfmt__free(&w->al, hdr.p);
    qfmt_st_writer_free(w);
    return s;
}

static qfmt_status check_open(const qfmt_st_writer *w, qfmt_error *err)
{
    if (!w) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL writer");
    if (w->state == S_OPEN) return QFMT_OK;
    return ST_FAIL(w, err, QFMT_E_STATE, 0, QFMT_NO_OFFSET, "writer is %s",
                   w->state == S_DONE ? "committed" : "failed");
}

qfmt_status qfmt_st_writer_write(qfmt_st_writer *w, const void *data, size_t size, qfmt_error *err)
{
    qfmt__clear_error(err);
    qfmt_status s = check_open(w, err);
    if (s != QFMT_OK) return s;
    if (size > w->expected - w->written)
        return ST_FAIL(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET,
                       "%zu bytes given, %" PRIu64 " remain of the %" PRIu64 " the header describes",
                       size, w->expected - w->written, w->expected);
    if (size && !data) return ST_FAIL(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET, "NULL data");
    w->written += size;
    return write_out(w, data, size, err);
}

qfmt_status qfmt_st_writer_commit(qfmt_st_writer *w, qfmt_error *err)
{
    qfmt__clear_error(err);
    qfmt_status s = check_open(w, err);
    if (s != QFMT_OK) return s;
    if (w->written != w->expected) {
        s = ST_FAIL(w, err, QFMT_E_STATE, 0, QFMT_NO_OFFSET,
                    "%" PRIu64 " of %" PRIu64 " data bytes given", w->written, w->expected);
        abandon(w);
        return s;
    }
    int e = qfmt__fsync(&w->io, w->fd);
    if (e) {
        s = ST_FAIL(w, err, QFMT_E_IO, e, QFMT_NO_OFFSET, "fsync failed: %s", strerror(e));
        abandon(w);
        return s;
    }
    int fd = w->fd;
    w->fd = -1;
    if (w->io.close(w->io.ctx, fd) != 0) {
        e = errno ? errno : EIO;
        s = ST_FAIL(w, err, QFMT_E_IO, e, QFMT_NO_OFFSET, "close failed: %s", strerror(e));
        w->io.unlink(w->io.ctx, w->tmp);
        w->state = S_FAILED;
        return s;
    }
    if (w->io.rename(w->io.ctx, w->tmp, w->path) != 0) {
        e = errno ? errno : EIO;
        s = ST_FAIL(w, err, QFMT_E_IO, e, QFMT_NO_OFFSET, "cannot rename into place: %s",
                    strerror(e));
        w->io.unlink(w->io.ctx, w->tmp);
        w->state = S_FAILED;
        return s;
    }
    w->state = S_DONE;
    if ((e = qfmt__fsync_parent(&w->io, w->path)) != 0) /* makes the rename durable */
        return ST_FAIL(w, err, QFMT_E_IO, e, QFMT_NO_OFFSET,
                       "written, but syncing its directory failed: %s", strerror(e));
    return QFMT_OK;
}

const char *qfmt_st_writer_temp_path(const qfmt_st_writer *w)
{
    return w && w->state == S_OPEN ? w->tmp : NULL;
}

void qfmt_st_writer_free(qfmt_st_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) {
        w->io.close(w->io.ctx, w->fd);
        w->io.unlink(w->io.ctx, w->tmp);
    }
    qfmt__alloc al = w->al;
    qfmt__free(&al, w->tmp);
    qfmt__free(&al, w->path);
    qfmt__free(&al, w);
}
