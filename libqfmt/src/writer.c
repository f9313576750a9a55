/* The streaming, atomic writer. Tensor data goes out as it comes; metadata, directory and
 * footer follow the last tensor, so one pass suffices even when compressed sizes are known
 * only after compressing. Everything lands in "<path>.tmp.XXXXXX", renamed over <path> only
 * once complete and fsynced (cf. libgit2 git_filebuf_commit). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <float.h>
#include <math.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal/bytes.h"
#include "internal/checked.h"
#include "internal/checksum.h"
#include "internal/compress.h"
#include "internal/error.h"
#include "internal/format.h"
#include "internal/io.h"
#include "internal/types.h"
#include "internal/utf8.h"

typedef struct {
    char *name;
    uint32_t name_len, type, codec, ndim;
    uint64_t dims[QFMT_MAX_DIMS];
    uint64_t offset, stored, raw, checksum;
} wtensor;

typedef struct {
    char *key;
    uint32_t key_len, type;
    uint8_t *value; /* Value_Size bytes as stored */
    uint64_t value_size;
} wmeta;

/* Open-addressing set of names (index + 1 per slot), to refuse duplicates in O(1). */
typedef struct {
    uint64_t *slots;
    uint64_t cap, used;
} nameset;

enum { W_OPEN, W_TENSOR, W_DONE, W_FAILED };
enum { BUF_CAP = 1 << 20 };

struct qfmt_writer {
    qfmt__alloc al;
    qfmt_io io; /* the system calls, qfmt_io_posix unless a test gives others */
    int fd;
    int state;
    char *path, *tmp;
    uint32_t alignment;
    bool no_fsync;
    uint64_t pos; /* bytes emitted so far, buffered ones included */
    uint64_t disk; /* bytes written to the file (where a failed write failed) */
    uint8_t *buf;
    size_t buf_len;
    qfmt__hasher *hasher;
    qfmt__zstream *zs;
    wtensor *tensors;
    uint64_t ntensors, tensors_cap, dir_bytes;
    nameset tensor_names;
    wmeta *meta;
    uint64_t nmeta, meta_cap, meta_bytes;
    nameset meta_keys;
    /* the tensor being streamed */
    wtensor cur;
    uint64_t cur_in;   /* raw bytes appended */
    int io_errno; /* errno of a failed write inside the zstd sink */
    const char *naming; /* tensor a failing call is about, for err->tensor */
};

static qfmt_status wfail(qfmt_writer *w, qfmt_error *err, qfmt_status code, int sys_errno,
                         uint64_t offset, const char *fmt, ...) QFMT__PRINTF(6, 7);
static qfmt_status wfail(qfmt_writer *w, qfmt_error *err, qfmt_status code, int sys_errno,
                         uint64_t offset, const char *fmt, ...)
{
    if (!err) return code;
    char msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *tensor = !w ? NULL : w->naming ? w->naming : w->state == W_TENSOR ? w->cur.name : NULL;
    return qfmt__fail(err, code, sys_errno, w ? w->path : NULL, tensor, offset, "%s", msg);
}

/* An I/O or allocation failure mid-file: the temporary file is removed at once. */
static void abandon(qfmt_writer *w)
{
    if (w->fd >= 0) {
        w->io.close(w->io.ctx, w->fd);
        w->fd = -1;
        w->io.unlink(w->io.ctx, w->tmp);
    }
    w->state = W_FAILED;
}

/* A failed write (offset: where the file stopped growing) or fsync (no offset). */
static qfmt_status io_fail(qfmt_writer *w, qfmt_error *err, int e, const char *what)
{
    uint64_t at = strcmp(what, "write") == 0 ? w->disk : QFMT_NO_OFFSET;
    qfmt_status s = wfail(w, err, QFMT_E_IO, e, at, "%s failed: %s", what, strerror(e));
    abandon(w);
    return s;
}

static qfmt_status check_usable(qfmt_writer *w, qfmt_error *err, int want_state)
{
    if (!w) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL writer");
    if (w->state == want_state) return QFMT_OK;
    static const char *const names[] = {"open", "inside a tensor", "finished", "failed"};
    return wfail(w, err, QFMT_E_STATE, 0, QFMT_NO_OFFSET, "writer is %s", names[w->state]);
}

/* ---- Output --------------------------------------------------------------------------- */

static int write_out(qfmt_writer *w, const void *p, size_t n)
{
    size_t done = 0;
    int e = qfmt__write_all(&w->io, w->fd, p, n, &done);
    w->disk += done;
    return e;
}

static int flush_buf(qfmt_writer *w)
{
    if (!w->buf_len) return 0;
    int e = write_out(w, w->buf, w->buf_len);
    w->buf_len = 0;
    return e;
}

/* Appends bytes to the file; returns 0 or an errno. */
static int emit(qfmt_writer *w, const void *p, size_t n)
{
    w->pos += n;
    if (n >= BUF_CAP) {
        int e = flush_buf(w);
        return e ? e : write_out(w, p, n);
    }
    if (w->buf_len + n > BUF_CAP) {
        int e = flush_buf(w);
        if (e) return e;
    }
    memcpy(w->buf + w->buf_len, p, n);
    w->buf_len += n;
    return 0;
}

static int emit_hashed(qfmt_writer *w, const void *p, size_t n)
{
    qfmt__hasher_update(w->hasher, p, n);
    return emit(w, p, n);
}

static int emit_zeros(qfmt_writer *w, uint64_t n)
{
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n > sizeof zeros ? sizeof zeros : (size_t)n;
        int e = emit(w, zeros, k);
        if (e) return e;
        n -= k;
    }
    return 0;
}

static int pad_to_alignment(qfmt_writer *w)
{
    uint64_t target = 0;
    qfmt__align_up(w->pos, w->alignment, &target);
    return emit_zeros(w, target - w->pos);
}

/* ---- Name sets ------------------------------------------------------------------------ */

typedef const char *(*name_at_fn)(const qfmt_writer *w, uint64_t i, uint32_t *len);
static const char *tensor_name_at(const qfmt_writer *w, uint64_t i, uint32_t *len)
{
    *len = w->tensors[i].name_len;
    return w->tensors[i].name;
}
static const char *meta_key_at(const qfmt_writer *w, uint64_t i, uint32_t *len)
{
    *len = w->meta[i].key_len;
    return w->meta[i].key;
}

static bool set_contains(const qfmt_writer *w, const nameset *s, name_at_fn at, const char *n,
                         uint32_t len, uint64_t *slot)
{
    uint64_t mask = s->cap - 1, i = qfmt__xxh3(n, len) & mask;
    for (;; i = (i + 1) & mask) {
        if (!s->slots[i]) {
            *slot = i;
            return false;
        }
        uint32_t l;
        const char *m = at(w, s->slots[i] - 1, &l);
        if (l == len && memcmp(m, n, len) == 0) return true;
    }
}

/* Makes room for one more name (load factor below 1/2). */
static bool set_reserve(qfmt_writer *w, nameset *s, name_at_fn at)
{
    if ((s->used + 1) * 2 <= s->cap) return true;
    uint64_t ncap = s->cap ? s->cap * 2 : 64;
    uint64_t *old = s->slots, ocap = s->cap;
    s->slots = qfmt__calloc_array(&w->al, ncap, sizeof *s->slots);
    if (!s->slots) {
        s->slots = old;
        return false;
    }
    s->cap = ncap;
    for (uint64_t i = 0; i < ocap; i++)
        if (old[i]) {
            uint32_t l;
            const char *n = at(w, old[i] - 1, &l);
            uint64_t slot = 0;
            set_contains(w, s, at, n, l, &slot);
            s->slots[slot] = old[i];
        }
    qfmt__free(&w->al, old);
    return true;
}

/* ---- Create / free -------------------------------------------------------------------- */

qfmt_status qfmt_writer_create(qfmt_writer **out, const char *path, const qfmt_write_opts *opts,
                               qfmt_error *err)
{
    return qfmt_writer_create_io(out, path, opts, NULL, err);
}

qfmt_status qfmt_writer_create_io(qfmt_writer **out, const char *path, const qfmt_write_opts *opts,
                                   const qfmt_io *io, qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!out || !path || !*path)
        return qfmt__fail(err, QFMT_E_ARG, 0, path, NULL, QFMT_NO_OFFSET, "no output path");
    *out = NULL;
    if (opts && !QFMT__RESERVED_ZERO(opts))
        return qfmt__fail(err, QFMT_E_ARG, 0, path, NULL, QFMT_NO_OFFSET,
                          "qfmt_write_opts: reserved fields must be zero (start from QFMT_WRITE_OPTS_INIT)");
    uint32_t align = opts && opts->alignment ? opts->alignment : QFMT_DEFAULT_ALIGNMENT;
    if (!qfmt__is_pow2(align) || align < QFMT_MIN_ALIGNMENT || align > QFMT_MAX_ALIGNMENT)
        return qfmt__fail(err, QFMT_E_ARG, 0, path, NULL, QFMT_NO_OFFSET,
                          "alignment %" PRIu32 " is not a power of two in %u..%u", align,
                          QFMT_MIN_ALIGNMENT, QFMT_MAX_ALIGNMENT);
    qfmt__alloc al;
    qfmt__alloc_init(&al, opts ? opts->alloc : NULL);
    qfmt_writer *w = qfmt__malloc(&al, sizeof *w);
    if (!w) return qfmt__fail(err, QFMT_E_NOMEM, 0, path, NULL, QFMT_NO_OFFSET, "cannot allocate the writer");
    memset(w, 0, sizeof *w);
    w->al = al;
    w->io = io ? *io : qfmt_io_posix;
    w->fd = -1;
    w->alignment = align;
    w->no_fsync = opts && opts->no_fsync;
    size_t plen = strlen(path), tcap = plen + 16;
    w->path = qfmt__strndup(&al, path, plen);
    w->tmp = qfmt__malloc(&al, tcap);
    w->buf = qfmt__malloc(&al, BUF_CAP);
    w->hasher = qfmt__hasher_new(&al);
    if (!w->path || !w->tmp || !w->buf || !w->hasher) {
        qfmt_status s = qfmt__fail(err, QFMT_E_NOMEM, 0, path, NULL, QFMT_NO_OFFSET,
                                   "cannot allocate the writer's buffers");
        qfmt_writer_free(w);
        return s;
    }
    w->fd = qfmt__create_temp(&w->io, path, w->tmp, tcap, (uint64_t)(uintptr_t)w);
    if (w->fd < 0) {
        int e = errno;
        qfmt_status s = qfmt__fail(err, QFMT_E_IO, e, path, NULL, QFMT_NO_OFFSET,
                                   "cannot create a temporary file beside it: %s", strerror(e));
        qfmt_writer_free(w);
        return s;
    }
    uint8_t h[QFMT_HEADER_SIZE] = {0};
    memcpy(h + QFMT__H_MAGIC, qfmt__magic, 8);
    qfmt__wr16(h + QFMT__H_MAJOR, QFMT_FORMAT_VERSION_MAJOR);
    qfmt__wr16(h + QFMT__H_MINOR, QFMT_FORMAT_VERSION_MINOR);
    qfmt__wr32(h + QFMT__H_ALIGNMENT, align);
    qfmt__wr64(h + QFMT__H_CHECKSUM, qfmt__xxh3(h, QFMT__H_CHECKSUM));
    int e = emit(w, h, sizeof h);
    if (!e) e = pad_to_alignment(w);
    if (e) {
        qfmt_status s = io_fail(w, err, e, "write");
        qfmt_writer_free(w);
        return s;
    }
    w->state = W_OPEN;
    *out = w;
    return QFMT_OK;
}

const char *qfmt_writer_temp_path(const qfmt_writer *w)
{
    return w && w->fd >= 0 ? w->tmp : NULL;
}

void qfmt_writer_free(qfmt_writer *w)
{
    if (!w) return;
    if (w->state != W_DONE) abandon(w);
    for (uint64_t i = 0; i < w->ntensors; i++) qfmt__free(&w->al, w->tensors[i].name);
    for (uint64_t i = 0; i < w->nmeta; i++) {
        qfmt__free(&w->al, w->meta[i].key);
        qfmt__free(&w->al, w->meta[i].value);
    }
    qfmt__free(&w->al, w->cur.name);
    qfmt__free(&w->al, w->tensors);
    qfmt__free(&w->al, w->meta);
    qfmt__free(&w->al, w->tensor_names.slots);
    qfmt__free(&w->al, w->meta_keys.slots);
    qfmt__hasher_free(&w->al, w->hasher);
    qfmt__zstream_free(w->zs);
    qfmt__free(&w->al, w->buf);
    qfmt__free(&w->al, w->tmp);
    qfmt__free(&w->al, w->path);
    qfmt__alloc al = w->al;
    qfmt__free(&al, w);
}

/* ---- Metadata ------------------------------------------------------------------------- */

/* Takes ownership of `value` (freed on failure too). */
static qfmt_status add_meta(qfmt_writer *w, const char *key, uint32_t type, uint8_t *value,
                            uint64_t value_size, qfmt_error *err)
{
    qfmt_status s = check_usable(w, err, w && w->state == W_TENSOR ? W_TENSOR : W_OPEN);
    size_t klen = key ? strlen(key) : 0;
    uint64_t entry = 8 + (uint64_t)klen + 4 + 8 + value_size;
    if (s == QFMT_OK && (!key || klen == 0 || klen > QFMT_MAX_KEY_LEN ||
                         !qfmt_utf8_valid((const uint8_t *)key, klen, false)))
        s = wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET,
                  "metadata key must be 1..%u bytes of UTF-8", QFMT_MAX_KEY_LEN);
    if (s == QFMT_OK && (w->nmeta >= QFMT_MAX_META_ENTRIES || w->meta_bytes + entry > QFMT_MAX_META_SIZE))
        s = wfail(w, err, QFMT_E_RANGE, 0, QFMT_NO_OFFSET,
                  "metadata '%s' exceeds the limits of %u entries or %llu bytes", key,
                  QFMT_MAX_META_ENTRIES, QFMT_MAX_META_SIZE);
    uint64_t slot = 0;
    if (s == QFMT_OK && !set_reserve(w, &w->meta_keys, meta_key_at))
        s = wfail(w, err, QFMT_E_NOMEM, 0, QFMT_NO_OFFSET, "out of memory");
    if (s == QFMT_OK && set_contains(w, &w->meta_keys, meta_key_at, key, (uint32_t)klen, &slot))
        s = wfail(w, err, QFMT_E_EXISTS, 0, QFMT_NO_OFFSET, "metadata key '%s' is already set", key);
    if (s == QFMT_OK && w->nmeta == w->meta_cap) {
        uint64_t ncap = w->meta_cap ? w->meta_cap * 2 : 16;
        void *p = w->meta;
        if (qfmt__grow(&w->al, &p, (size_t)w->nmeta * sizeof *w->meta, (size_t)ncap * sizeof *w->meta))
            s = wfail(w, err, QFMT_E_NOMEM, 0, QFMT_NO_OFFSET, "out of memory");
        else {
            w->meta = p;
            w->meta_cap = ncap;
        }
    }
    char *kcopy = NULL;
    if (s == QFMT_OK && !(kcopy = qfmt__strndup(&w->al, key, klen)))
        s = wfail(w, err, QFMT_E_NOMEM, 0, QFMT_NO_OFFSET, "out of memory");
    if (s != QFMT_OK) {
        if (w) qfmt__free(&w->al, value);
        return s;
    }
    wmeta *m = &w->meta[w->nmeta];
    m->key = kcopy;
    m->key_len = (uint32_t)klen;
    m->type = type;
    m->value = value;
    m->value_size = value_size;
    w->meta_keys.slots[slot] = ++w->nmeta;
    w->meta_keys.used++;
    w->meta_bytes += entry;
    return QFMT_OK;
}

static uint8_t *alloc_value(qfmt_writer *w, uint64_t n) { return qfmt__malloc_array(&w->al, n, 1); }

static void encode_scalar(uint32_t t, const qfmt_value *v, uint8_t *p)
{
    switch (t) {
    case QFMT_META_U8: case QFMT_META_BOOL: p[0] = (uint8_t)v->v.u; break;
    case QFMT_META_I8: p[0] = (uint8_t)(int8_t)v->v.i; break;
    case QFMT_META_U16: qfmt__wr16(p, (uint16_t)v->v.u); break;
    case QFMT_META_I16: qfmt__wr16(p, (uint16_t)(int16_t)v->v.i); break;
    case QFMT_META_U32: qfmt__wr32(p, (uint32_t)v->v.u); break;
    case QFMT_META_I32: qfmt__wr32(p, (uint32_t)(int32_t)v->v.i); break;
    case QFMT_META_U64: qfmt__wr64(p, v->v.u); break;
    case QFMT_META_I64: qfmt__wr64(p, (uint64_t)v->v.i); break;
    case QFMT_META_F32: {
        float f = (float)v->v.f;
        uint32_t b;
        memcpy(&b, &f, 4);
        qfmt__wr32(p, b);
        break;
    }
    case QFMT_META_F64: {
        uint64_t b;
        memcpy(&b, &v->v.f, 8);
        qfmt__wr64(p, b);
        break;
    }
    default: break;
    }
}

/* Whether the union's value is representable in the declared type (no silent narrowing). */
static bool scalar_fits(const qfmt_value *v)
{
    switch (v->type) {
    case QFMT_META_U8: return v->v.u <= UINT8_MAX;
    case QFMT_META_BOOL: return v->v.u <= 1;
    case QFMT_META_U16: return v->v.u <= UINT16_MAX;
    case QFMT_META_U32: return v->v.u <= UINT32_MAX;
    case QFMT_META_I8: return v->v.i >= INT8_MIN && v->v.i <= INT8_MAX;
    case QFMT_META_I16: return v->v.i >= INT16_MIN && v->v.i <= INT16_MAX;
    case QFMT_META_I32: return v->v.i >= INT32_MIN && v->v.i <= INT32_MAX;
    case QFMT_META_F32: return !isfinite(v->v.f) || fabs(v->v.f) <= FLT_MAX; /* no overflow to Inf */
    default: return true;
    }
}

qfmt_status qfmt_writer_set_value(qfmt_writer *w, const char *key, const qfmt_value *v,
                                  qfmt_error *err)
{
    if (!w || !v) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    unsigned width = qfmt__meta_width(v->type);
    if (width) {
        if (!scalar_fits(v))
            return wfail(w, err, QFMT_E_RANGE, 0, QFMT_NO_OFFSET, "metadata '%s': value does not fit a %s",
                         key ? key : "", qfmt_meta_type_name(v->type));
        uint8_t *p = alloc_value(w, width);
        if (!p) return wfail(w, err, QFMT_E_NOMEM, 0, QFMT_NO_OFFSET, "out of memory");
        encode_scalar(v->type, v, p);
        return add_meta(w, key, v->type, p, width, err);
    }
    if (v->type == QFMT_META_STRING)
        return qfmt_writer_set_string(w, key, v->v.str.ptr, (size_t)v->v.str.len, err);
    return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET,
                 "set_value takes scalars and strings; use set_array for arrays");
}

#define SETTER(NAME, T, META, FIELD)                                                        \
    qfmt_status qfmt_writer_set_##NAME(qfmt_writer *w, const char *key, T x, qfmt_error *err) \
    {                                                                                       \
        qfmt_value v;                                                                       \
        memset(&v, 0, sizeof v);                                                            \
        v.type = META;                                                                      \
        v.v.FIELD = x;                                                                      \
        return qfmt_writer_set_value(w, key, &v, err);                                      \
    }
SETTER(u32, uint32_t, QFMT_META_U32, u)
SETTER(u64, uint64_t, QFMT_META_U64, u)
SETTER(i64, int64_t, QFMT_META_I64, i)
SETTER(f32, float, QFMT_META_F32, f)
SETTER(f64, double, QFMT_META_F64, f)
SETTER(bool, bool, QFMT_META_BOOL, u)
#undef SETTER

qfmt_status qfmt_writer_set_string(qfmt_writer *w, const char *key, const char *s, size_t len,
                                   qfmt_error *err)
{
    if (!w || (!s && len)) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    if (!qfmt_utf8_valid((const uint8_t *)s, len, true))
        return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET, "metadata '%s': string is not valid UTF-8",
                     key ? key : "");
    uint8_t *p = alloc_value(w, len);
    if (!p) return wfail(w, err, QFMT_E_NOMEM, 0, QFMT_NO_OFFSET, "out of memory");
    if (len) memcpy(p, s, len);
    return add_meta(w, key, QFMT_META_STRING, p, len, err);
}

qfmt_status qfmt_writer_set_array(qfmt_writer *w, const char *key, uint32_t elem_type,
                                  const void *elems, uint64_t count, qfmt_error *err)
{
    if (!w || (!elems && count)) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    unsigned width = qfmt__meta_width(elem_type);
    uint64_t bytes;
    if (!width)
        return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET,
                     "array element type %u is not a scalar type", elem_type);
    if (!qfmt__mul_u64(count, width, &bytes) || bytes > QFMT_MAX_META_SIZE)
        return wfail(w, err, QFMT_E_RANGE, 0, QFMT_NO_OFFSET, "array of %" PRIu64 " elements is too large", count);
    if (elem_type == QFMT_META_BOOL)
        for (uint64_t i = 0; i < count; i++)
            if (((const uint8_t *)elems)[i] > 1)
                return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET, "bool element %" PRIu64 " is not 0 or 1", i);
    uint8_t *p = alloc_value(w, 12 + bytes);
    if (!p) return wfail(w, err, QFMT_E_NOMEM, 0, QFMT_NO_OFFSET, "out of memory");
    qfmt__wr32(p, elem_type);
    qfmt__wr64(p + 4, count);
    if (bytes) memcpy(p + 12, elems, (size_t)bytes); /* native == little-endian layout */
    return add_meta(w, key, QFMT_META_ARRAY, p, 12 + bytes, err);
}

qfmt_status qfmt_writer_set_string_array(qfmt_writer *w, const char *key,
                                         const char *const *strs, const size_t *lens,
                                         uint64_t count, qfmt_error *err)
{
    if (!w || (!strs && count)) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    uint64_t bytes = 12;
    for (uint64_t i = 0; i < count; i++) {
        size_t l = lens ? lens[i] : (strs[i] ? strlen(strs[i]) : 0);
        if ((!strs[i] && l) || !qfmt_utf8_valid((const uint8_t *)strs[i], l, true))
            return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET,
                         "string element %" PRIu64 " is NULL or not valid UTF-8", i);
        if (!qfmt__add_u64(bytes, 8 + (uint64_t)l, &bytes) || bytes > QFMT_MAX_META_SIZE)
            return wfail(w, err, QFMT_E_RANGE, 0, QFMT_NO_OFFSET, "string array is too large");
    }
    uint8_t *p = alloc_value(w, bytes);
    if (!p) return wfail(w, err, QFMT_E_NOMEM, 0, QFMT_NO_OFFSET, "out of memory");
    qfmt__wr32(p, QFMT_META_STRING);
    qfmt__wr64(p + 4, count);
    uint8_t *q = p + 12;
    for (uint64_t i = 0; i < count; i++) {
        size_t l = lens ? lens[i] : (strs[i] ? strlen(strs[i]) : 0);
        qfmt__wr64(q, l);
        if (l) memcpy(q + 8, strs[i], l);
        q += 8 + l;
    }
    return add_meta(w, key, QFMT_META_ARRAY, p, bytes, err);
}

/* ---- Tensors -------------------------------------------------------------------------- */

static qfmt_status zsink(void *ctx, const void *p, size_t n)
{
    qfmt_writer *w = ctx;
    w->cur.stored += n;
    int e = emit_hashed(w, p, n);
    w->io_errno = e;
    return e ? QFMT_E_IO : QFMT_OK;
}

/* A streaming compression failure mid-tensor ends the writer (the error names the tensor). */
static qfmt_status zstream_fail(qfmt_writer *w, qfmt_error *err, qfmt_status s)
{
    if (s == QFMT_E_IO) return io_fail(w, err, w->io_errno ? w->io_errno : EIO, "write");
    s = wfail(w, err, s, 0, QFMT_NO_OFFSET, "%s",
              s == QFMT_E_NOMEM ? "out of memory in zstd" : "zstd compression failed");
    abandon(w);
    return s;
}

static qfmt_status begin_tensor(qfmt_writer *w, const qfmt_tensor_desc *d, qfmt_error *err);

qfmt_status qfmt_writer_begin_tensor(qfmt_writer *w, const qfmt_tensor_desc *d, qfmt_error *err)
{
    if (w && d) w->naming = d->name;
    qfmt_status s = begin_tensor(w, d, err);
    if (w) w->naming = NULL;
    return s;
}

static qfmt_status begin_tensor(qfmt_writer *w, const qfmt_tensor_desc *d, qfmt_error *err)
{
    qfmt_status s = check_usable(w, err, W_OPEN);
    if (s != QFMT_OK) return s;
    if (!d || !d->name) return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET, "tensor without a name");
    if (!QFMT__RESERVED_ZERO(d))
        return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET,
                     "qfmt_tensor_desc: reserved fields must be zero (start from QFMT_TENSOR_DESC_INIT)");
    size_t nlen = strlen(d->name);
    if (nlen == 0 || nlen > QFMT_MAX_NAME_LEN || !qfmt_utf8_valid((const uint8_t *)d->name, nlen, false))
        return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET,
                     "tensor name must be 1..%u bytes of UTF-8", QFMT_MAX_NAME_LEN);
    if (d->ndim > QFMT_MAX_DIMS)
        return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET, "%u dimensions, at most %u",
                     d->ndim, QFMT_MAX_DIMS);
    if (d->codec != QFMT_CODEC_NONE && d->codec != QFMT_CODEC_ZSTD)
        return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET, "unknown codec %u", d->codec);
    uint64_t nel, raw;
    s = qfmt__tensor_bytes(d->type, d->ndim, d->dims, &nel, &raw);
    if (s == QFMT_E_UNSUPPORTED)
        return wfail(w, err, s, 0, QFMT_NO_OFFSET, "unknown type %u", d->type);
    if (s != QFMT_OK)
        return wfail(w, err, QFMT_E_RANGE, 0, QFMT_NO_OFFSET,
                     "dimensions overflow or do not hold whole blocks of %s",
                     qfmt_type_get_traits(d->type)->name);
    uint64_t entry = 8 + nlen + 16 + 8ull * d->ndim + 32;
    if (w->ntensors >= QFMT_MAX_TENSORS || w->dir_bytes + entry > QFMT_MAX_DIRECTORY_SIZE)
        return wfail(w, err, QFMT_E_RANGE, 0, QFMT_NO_OFFSET, "too many tensors for one file");
    uint64_t slot = 0;
    if (!set_reserve(w, &w->tensor_names, tensor_name_at))
        return wfail(w, err, QFMT_E_NOMEM, 0, QFMT_NO_OFFSET, "out of memory");
    if (set_contains(w, &w->tensor_names, tensor_name_at, d->name, (uint32_t)nlen, &slot))
        return wfail(w, err, QFMT_E_EXISTS, 0, QFMT_NO_OFFSET, "a tensor of this name was already added");
    if (w->ntensors == w->tensors_cap) {
        uint64_t ncap = w->tensors_cap ? w->tensors_cap * 2 : 64;
        void *p = w->tensors;
        if (qfmt__grow(&w->al, &p, (size_t)w->ntensors * sizeof *w->tensors, (size_t)ncap * sizeof *w->tensors))
            return wfail(w, err, QFMT_E_NOMEM, 0, QFMT_NO_OFFSET, "out of memory");
        w->tensors = p;
        w->tensors_cap = ncap;
    }
    bool zstd = d->codec == QFMT_CODEC_ZSTD && raw > 0; /* an empty frame would only add bytes */
    if (zstd && !w->zs && qfmt__zstream_new(&w->al, &w->zs) != QFMT_OK)
        return wfail(w, err, QFMT_E_NOMEM, 0, QFMT_NO_OFFSET, "cannot allocate a zstd stream");
    if (zstd && qfmt__zstream_begin(w->zs, d->zstd_level, raw) != QFMT_OK)
        return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET, "zstd level %d rejected", d->zstd_level);
    char *name = qfmt__strndup(&w->al, d->name, nlen);
    if (!name) return wfail(w, err, QFMT_E_NOMEM, 0, QFMT_NO_OFFSET, "out of memory");
    memset(&w->cur, 0, sizeof w->cur);
    w->cur.name = name;
    w->cur.name_len = (uint32_t)nlen;
    w->cur.type = d->type;
    w->cur.codec = zstd ? QFMT_CODEC_ZSTD : QFMT_CODEC_NONE;
    w->cur.ndim = d->ndim;
    memcpy(w->cur.dims, d->dims, sizeof w->cur.dims);
    for (uint32_t i = d->ndim; i < QFMT_MAX_DIMS; i++) w->cur.dims[i] = 0;
    w->cur.raw = raw;
    w->cur.offset = w->pos; /* aligned: every tensor and the header end padded */
    w->cur_in = 0;
    qfmt__hasher_reset(w->hasher);
    w->state = W_TENSOR;
    return QFMT_OK;
}

qfmt_status qfmt_writer_append(qfmt_writer *w, const void *data, size_t size, qfmt_error *err)
{
    qfmt_status s = check_usable(w, err, W_TENSOR);
    if (s != QFMT_OK) return s;
    if (!data && size) return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET, "NULL data");
    if (size > w->cur.raw - w->cur_in)
        return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET,
                     "%zu more bytes would pass the tensor's %" PRIu64 " bytes (%" PRIu64 " given)",
                     size, w->cur.raw, w->cur_in);
    w->cur_in += size;
    if (w->cur.codec == QFMT_CODEC_NONE) {
        w->cur.stored += size;
        int e = emit_hashed(w, data, size);
        return e ? io_fail(w, err, e, "write") : QFMT_OK;
    }
    s = qfmt__zstream_feed(w->zs, data, size, 0, zsink, w);
    return s == QFMT_OK ? s : zstream_fail(w, err, s);
}

static void push_current(qfmt_writer *w)
{
    uint64_t slot = 0;
    set_contains(w, &w->tensor_names, tensor_name_at, w->cur.name, w->cur.name_len, &slot);
    w->tensors[w->ntensors] = w->cur;
    w->tensor_names.slots[slot] = ++w->ntensors;
    w->tensor_names.used++;
    w->dir_bytes += 8 + w->cur.name_len + 16 + 8ull * w->cur.ndim + 32;
    memset(&w->cur, 0, sizeof w->cur);
}

qfmt_status qfmt_writer_end_tensor(qfmt_writer *w, qfmt_error *err)
{
    qfmt_status s = check_usable(w, err, W_TENSOR);
    if (s != QFMT_OK) return s;
    if (w->cur_in != w->cur.raw)
        return wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET,
                     "tensor ended after %" PRIu64 " of its %" PRIu64 " bytes", w->cur_in, w->cur.raw);
    if (w->cur.codec == QFMT_CODEC_ZSTD) {
        s = qfmt__zstream_feed(w->zs, NULL, 0, 1, zsink, w);
        if (s != QFMT_OK) return zstream_fail(w, err, s);
    }
    w->cur.checksum = qfmt__hasher_digest(w->hasher);
    int e = pad_to_alignment(w);
    if (e) return io_fail(w, err, e, "write");
    push_current(w);
    w->state = W_OPEN;
    return QFMT_OK;
}

/* Forgets the tensor begun but not yet written (add_tensor refusing it): back to W_OPEN. */
static void drop_current(qfmt_writer *w)
{
    qfmt__free(&w->al, w->cur.name);
    memset(&w->cur, 0, sizeof w->cur);
    w->state = W_OPEN;
}

qfmt_status qfmt_writer_add_tensor(qfmt_writer *w, const qfmt_tensor_desc *desc, const void *data,
                                   uint64_t size, qfmt_error *err)
{
    qfmt_status s = qfmt_writer_begin_tensor(w, desc, err);
    if (s != QFMT_OK) return s;
    if (size != w->cur.raw) {
        s = wfail(w, err, QFMT_E_ARG, 0, QFMT_NO_OFFSET,
                  "%" PRIu64 " bytes given, the type and dimensions need %" PRIu64, size, w->cur.raw);
        drop_current(w);
        return s;
    }
    if (w->cur.codec == QFMT_CODEC_ZSTD && size <= SIZE_MAX) {
        /* Whole buffer at hand: keep the compressed form only if it is smaller. */
        size_t cap = qfmt__zstd_bound((size_t)size), got = 0;
        uint8_t *tmp = qfmt__malloc(&w->al, cap);
        s = tmp ? qfmt__zstd_compress(&w->al, data, (size_t)size, tmp, cap, desc->zstd_level, &got)
                : QFMT_E_NOMEM;
        if (s == QFMT_OK && got < size) {
            w->cur_in = size;
            w->cur.stored = got;
            int e = emit_hashed(w, tmp, got);
            qfmt__free(&w->al, tmp);
            if (e) return io_fail(w, err, e, "write");
            w->cur.checksum = qfmt__hasher_digest(w->hasher);
            e = pad_to_alignment(w);
            if (e) return io_fail(w, err, e, "write");
            push_current(w);
            w->state = W_OPEN;
            return QFMT_OK;
        }
        qfmt__free(&w->al, tmp);
        if (s == QFMT_E_NOMEM) {
            /* Nothing of this tensor is in the file yet: the writer stays usable, as after
             * any other allocation failure that wrote nothing. */
            s = wfail(w, err, s, 0, QFMT_NO_OFFSET, "out of memory compressing");
            drop_current(w);
            return s;
        }
        w->cur.codec = QFMT_CODEC_NONE;
    }
    const uint8_t *p = data;
    for (uint64_t done = 0; done < size;) {
        size_t k = size - done > (1u << 30) ? (1u << 30) : (size_t)(size - done);
        s = qfmt_writer_append(w, p + done, k, err);
        if (s != QFMT_OK) return s;
        done += k;
    }
    return qfmt_writer_end_tensor(w, err);
}

/* ---- Finish --------------------------------------------------------------------------- */

static int meta_order(const void *a, const void *b)
{
    const wmeta *x = a, *y = b;
    uint32_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static int write_index(qfmt_writer *w)
{
    uint8_t tmp[64];
    int e = 0;
    if (w->nmeta) qsort(w->meta, (size_t)w->nmeta, sizeof *w->meta, meta_order);
    for (uint64_t i = 0; i < w->nmeta && !e; i++) {
        const wmeta *m = &w->meta[i];
        qfmt__wr64(tmp, m->key_len);
        e = emit_hashed(w, tmp, 8);
        if (!e) e = emit_hashed(w, m->key, m->key_len);
        qfmt__wr32(tmp, m->type);
        qfmt__wr64(tmp + 4, m->value_size);
        if (!e) e = emit_hashed(w, tmp, 12);
        if (!e) e = emit_hashed(w, m->value, (size_t)m->value_size);
    }
    for (uint64_t i = 0; i < w->ntensors && !e; i++) {
        const wtensor *t = &w->tensors[i];
        qfmt__wr64(tmp, t->name_len);
        e = emit_hashed(w, tmp, 8);
        if (!e) e = emit_hashed(w, t->name, t->name_len);
        qfmt__wr32(tmp, t->type);
        qfmt__wr32(tmp + 4, t->codec);
        qfmt__wr32(tmp + 8, t->ndim);
        qfmt__wr32(tmp + 12, 0);
        if (!e) e = emit_hashed(w, tmp, 16);
        for (uint32_t d = 0; d < t->ndim; d++) qfmt__wr64(tmp + 8 * d, t->dims[d]);
        if (!e) e = emit_hashed(w, tmp, 8u * t->ndim);
        qfmt__wr64(tmp, t->offset);
        qfmt__wr64(tmp + 8, t->stored);
        qfmt__wr64(tmp + 16, t->raw);
        qfmt__wr64(tmp + 24, t->checksum);
        if (!e) e = emit_hashed(w, tmp, 32);
    }
    return e;
}

qfmt_status qfmt_writer_finish(qfmt_writer *w, qfmt_error *err)
{
    qfmt_status s = check_usable(w, err, W_OPEN);
    if (s != QFMT_OK) return s;
    /* Every tensor ends padded, so pos is the aligned metadata offset already. */
    uint64_t meta_off = w->pos;
    qfmt__hasher_reset(w->hasher);
    int e = write_index(w);
    if (e) return io_fail(w, err, e, "write");
    uint8_t f[QFMT_FOOTER_SIZE] = {0};
    qfmt__wr64(f + QFMT__F_META_OFFSET, meta_off);
    qfmt__wr64(f + QFMT__F_META_SIZE, w->meta_bytes);
    qfmt__wr64(f + QFMT__F_DIR_SIZE, w->dir_bytes);
    qfmt__wr64(f + QFMT__F_META_COUNT, w->nmeta);
    qfmt__wr64(f + QFMT__F_TENSOR_COUNT, w->ntensors);
    qfmt__hasher_update(w->hasher, f, QFMT__F_CHECKSUM);
    qfmt__wr64(f + QFMT__F_CHECKSUM, qfmt__hasher_digest(w->hasher));
    memcpy(f + QFMT__F_END_MAGIC, qfmt__end_magic, 8);
    e = emit(w, f, sizeof f);
    if (!e) e = flush_buf(w);
    if (e) return io_fail(w, err, e, "write");
    if (!w->no_fsync && (e = qfmt__fsync(&w->io, w->fd)) != 0) return io_fail(w, err, e, "fsync");
    int fd = w->fd;
    w->fd = -1;
    if (w->io.close(w->io.ctx, fd) != 0) {
        int ce = errno;
        w->io.unlink(w->io.ctx, w->tmp);
        w->state = W_FAILED;
        return wfail(w, err, QFMT_E_IO, ce, QFMT_NO_OFFSET, "close failed: %s", strerror(ce));
    }
    if (w->io.rename(w->io.ctx, w->tmp, w->path) != 0) {
        int re = errno;
        w->io.unlink(w->io.ctx, w->tmp);
        w->state = W_FAILED;
        return wfail(w, err, QFMT_E_IO, re, QFMT_NO_OFFSET, "cannot rename %s into place: %s",
                     w->tmp, strerror(re));
    }
    w->state = W_DONE;
    if (!w->no_fsync) {
        e = qfmt__fsync_parent(&w->io, w->path);
        if (e) return wfail(w, err, QFMT_E_IO, e, QFMT_NO_OFFSET,
                            "file is complete, but fsync of its directory failed: %s", strerror(e));
    }
    return QFMT_OK;
}
