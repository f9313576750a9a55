/* The atomic GGUF writer (qfmt.h, "GGUF files"): kv pairs and tensor infos are kept in memory
 * (the kv pairs already serialized, in one buffer), the header goes out at the first
 * qfmt_gguf_writer_write or at commit, then each tensor's data (from the caller's pointer, or
 * streamed by write calls) with zero padding to the alignment, as ggml's gguf_write_to_file
 * lays a file out. Then fsync + close + rename + fsync of the directory, as writer.c and
 * export/safetensors.c do. Every system call goes through the qfmt_io table and every
 * allocation through the caller's allocator, so tests can fail each one. Duplicate keys and
 * names are found with two small hash sets (FNV-1a, linear probing). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/alloc.h"
#include "internal/bytes.h"
#include "internal/checked.h"
#include "internal/error.h"
#include "internal/io.h"
#include "internal/utf8.h"

enum { S_OPEN, S_DATA, S_DONE, S_FAILED };

typedef struct {
    size_t off, len;
} span;

typedef struct {
    span name;          /* in w->names */
    uint32_t type, ndim;
    uint64_t ne[QFMT_GGUF_MAX_DIMS];
    const void *data;   /* NULL: streamed by qfmt_gguf_writer_write */
    uint64_t size, rel;
} wtensor;

typedef struct {
    uint8_t *p;
    size_t len, cap;
} gbuf;

typedef struct {
    uint32_t *slot; /* index + 1, 0 = empty */
    size_t cap;     /* a power of two, or 0 */
} hset;

struct qfmt_gguf_writer {
    qfmt__alloc al;
    qfmt_io io;
    int fd, state;
    char *path, *tmp;
    uint32_t alignment;
    gbuf kv;            /* the serialized kv pairs */
    span *keys;         /* each key's bytes in kv */
    size_t nkv, keys_cap;
    hset kset;
    gbuf names;         /* tensor names, back to back */
    wtensor *t;
    size_t nt, t_cap;
    hset tset;
    uint64_t stream_total, streamed; /* bytes of the tensors with data NULL */
    size_t cur;         /* after the header: the first tensor not completely written */
    uint64_t cur_done;  /* its bytes written */
    uint64_t disk;      /* bytes in the file */
};

#define W_FAIL(w, err, code, sys_errno, tensor, offset, ...) \
    qfmt__fail(err, code, sys_errno, (w)->path, tensor, offset, __VA_ARGS__)

/* ---- Memory -------------------------------------------------------------------------------- */

/* Room for `n` more bytes in b; false (b unchanged) when that cannot be had. */
static bool gb_reserve(const qfmt__alloc *al, gbuf *b, size_t n)
{
    if (n <= b->cap - b->len) return true;
    if (n > SIZE_MAX - b->len) return false;
    size_t need = b->len + n, cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    void *p = b->p;
    if (qfmt__grow(al, &p, b->len, cap) != 0) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

/* Room for one more element in an array of `size`-byte items. */
static bool arr_reserve(const qfmt__alloc *al, void **p, size_t n, size_t *cap, size_t size)
{
    if (n < *cap) return true;
    size_t c = *cap ? *cap * 2 : 16;
    if (c > SIZE_MAX / size) return false;
    void *q = *p;
    if (qfmt__grow(al, &q, n * size, c * size) != 0) return false;
    *p = q;
    *cap = c;
    return true;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* The slot of (p, n) in set s over the spans in buf: its index + 1 if present, else 0 with
 * *where the empty slot it would take. s->cap must be > 0. */
static uint32_t hs_find(const hset *s, const uint8_t *buf, const void *items, size_t stride,
                        const uint8_t *p, size_t n, size_t *where)
{
    size_t mask = s->cap - 1, i = (size_t)fnv1a(p, n) & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t v = s->slot[i];
        if (v == 0) {
            *where = i;
            return 0;
        }
        const span *sp = (const span *)(const void *)((const uint8_t *)items + (size_t)(v - 1) * stride);
        if (sp->len == n && memcmp(buf + sp->off, p, n) == 0) return v;
    }
}

/* Makes room for one more member (load at most 1/2); false on allocation failure. */
static bool hs_reserve(const qfmt__alloc *al, hset *s, size_t members, const uint8_t *buf,
                       const void *items, size_t stride)
{
    if (s->cap && (members + 1) <= s->cap / 2) return true;
    size_t cap = s->cap ? s->cap * 2 : 64;
    if (cap > SIZE_MAX / sizeof *s->slot / 2) return false;
    hset n = {qfmt__calloc_array(al, cap, sizeof *s->slot), cap};
    if (!n.slot) return false;
    for (size_t i = 0; i < s->cap; i++) {
        uint32_t v = s->slot[i];
        if (!v) continue;
        const span *sp = (const span *)(const void *)((const uint8_t *)items + (size_t)(v - 1) * stride);
        size_t where = 0;
        hs_find(&n, buf, items, stride, buf + sp->off, sp->len, &where);
        n.slot[where] = v;
    }
    qfmt__free(al, s->slot);
    *s = n;
    return true;
}

/* ---- I/O ------------------------------------------------------------------------------------ */

/* An I/O failure: the temporary file goes at once; the writer only awaits free. */
static void abandon(qfmt_gguf_writer *w)
{
    if (w->fd >= 0) {
        w->io.close(w->io.ctx, w->fd);
        w->fd = -1;
        w->io.unlink(w->io.ctx, w->tmp);
    }
    w->state = S_FAILED;
}

static qfmt_status out(qfmt_gguf_writer *w, const void *p, uint64_t n, qfmt_error *err)
{
    const uint8_t *b = p;
    while (n > 0) {
        size_t piece = n > (1u << 30) ? (size_t)1 << 30 : (size_t)n, done = 0;
        int e = qfmt__write_all(&w->io, w->fd, b, piece, &done);
        w->disk += done;
        if (e) {
            qfmt_status s = W_FAIL(w, err, QFMT_E_IO, e, NULL, w->disk, "write failed: %s", strerror(e));
            abandon(w);
            return s;
        }
        b += piece;
        n -= piece;
    }
    return QFMT_OK;
}

static qfmt_status pad(qfmt_gguf_writer *w, uint64_t n, qfmt_error *err)
{
    static const uint8_t zeros[4096];
    while (n > 0) {
        uint64_t k = n < sizeof zeros ? n : sizeof zeros;
        qfmt_status s = out(w, zeros, k, err);
        if (s != QFMT_OK) return s;
        n -= k;
    }
    return QFMT_OK;
}

static uint64_t pad_of(uint64_t x, uint32_t align) { return (align - x % align) % align; }

/* ---- Create --------------------------------------------------------------------------------- */

qfmt_status qfmt_gguf_writer_create(qfmt_gguf_writer **out_w, const char *path, qfmt_error *err)
{
    return qfmt_gguf_writer_create_io(out_w, path, NULL, NULL, err);
}

qfmt_status qfmt_gguf_writer_create_io(qfmt_gguf_writer **out_w, const char *path,
                                       const qfmt_allocator *alloc, const struct qfmt_io *io,
                                       qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!out_w || !path || !*path)
        return qfmt__fail(err, QFMT_E_ARG, 0, path, NULL, QFMT_NO_OFFSET, "no output path");
    *out_w = NULL;
    qfmt__alloc al;
    qfmt__alloc_init(&al, alloc);
    qfmt_gguf_writer *w = qfmt__malloc(&al, sizeof *w);
    if (!w) return qfmt__fail(err, QFMT_E_NOMEM, 0, path, NULL, QFMT_NO_OFFSET, "cannot allocate the writer");
    memset(w, 0, sizeof *w);
    w->al = al;
    w->io = io ? *io : qfmt_io_posix;
    w->fd = -1;
    w->state = S_FAILED;
    w->alignment = QFMT_GGUF_DEFAULT_ALIGNMENT;
    size_t plen = strlen(path), tcap = plen + 16;
    w->path = qfmt__strndup(&w->al, path, plen);
    w->tmp = qfmt__malloc(&w->al, tcap);
    qfmt_status s;
    if (!w->path || !w->tmp) {
        s = qfmt__fail(err, QFMT_E_NOMEM, 0, path, NULL, QFMT_NO_OFFSET, "cannot allocate the writer");
        goto fail;
    }
    /* a fresh name, created exclusively: never follows a link planted under a guessable name */
    w->fd = qfmt__create_temp(&w->io, path, w->tmp, tcap, (uint64_t)(uintptr_t)w);
    if (w->fd < 0) {
        int e = errno;
        s = qfmt__fail(err, QFMT_E_IO, e, path, NULL, QFMT_NO_OFFSET,
                       "cannot create a temporary file beside it: %s", strerror(e));
        goto fail;
    }
    w->state = S_OPEN;
    *out_w = w;
    return QFMT_OK;
fail:
    qfmt_gguf_writer_free(w);
    return s;
}

static qfmt_status check_state(const qfmt_gguf_writer *w, bool declaring, qfmt_error *err)
{
    if (!w) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL writer");
    if (w->state == S_OPEN || (!declaring && w->state == S_DATA)) return QFMT_OK;
    return W_FAIL(w, err, QFMT_E_STATE, 0, NULL, QFMT_NO_OFFSET, "writer is %s",
                  w->state == S_DATA ? "writing tensor data: the header is out"
                  : w->state == S_DONE ? "committed" : "failed");
}

/* ---- kv pairs ------------------------------------------------------------------------------- */

static uint32_t width_of(uint32_t type)
{
    switch (type) {
    case QFMT_GGUF_UINT8: case QFMT_GGUF_INT8: case QFMT_GGUF_BOOL: return 1;
    case QFMT_GGUF_UINT16: case QFMT_GGUF_INT16: return 2;
    case QFMT_GGUF_UINT32: case QFMT_GGUF_INT32: case QFMT_GGUF_FLOAT32: return 4;
    case QFMT_GGUF_UINT64: case QFMT_GGUF_INT64: case QFMT_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* Native size of one value of a fixed-size type, as the caller passes it. */
static size_t native_size(uint32_t type)
{
    return type == QFMT_GGUF_BOOL ? sizeof(bool) : width_of(type);
}

/* One native value at src as little-endian bytes at dst. */
static void put_native(uint32_t type, const void *src, uint8_t *dst)
{
    switch (width_of(type)) {
    case 1:
        if (type == QFMT_GGUF_BOOL) {
            bool b;
            memcpy(&b, src, sizeof b);
            dst[0] = b ? 1 : 0;
        } else {
            memcpy(dst, src, 1);
        }
        break;
    case 2: {
        uint16_t v;
        memcpy(&v, src, 2);
        qfmt__wr16(dst, v);
        break;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, src, 4);
        qfmt__wr32(dst, v);
        break;
    }
    default: {
        uint64_t v;
        memcpy(&v, src, 8);
        qfmt__wr64(dst, v);
        break;
    }
    }
}

typedef struct {
    uint32_t type;       /* value type (ARRAY for arrays) */
    uint32_t elem_type;
    const void *value;   /* scalar: one native value; string: bytes; array: elements */
    uint64_t count;      /* string: length; array: elements */
    const char *const *strs;
    const size_t *lens;
} kv_value;

/* Bytes the value takes after the key and its type, or false when that overflows. */
static bool value_size(const kv_value *v, size_t *n)
{
    size_t total;
    if (v->type == QFMT_GGUF_STRING) {
        if (v->count > SIZE_MAX - 8) return false;
        *n = 8 + (size_t)v->count;
        return true;
    }
    if (v->type != QFMT_GGUF_ARRAY) {
        *n = width_of(v->type);
        return true;
    }
    total = 12;
    if (v->elem_type != QFMT_GGUF_STRING) {
        uint32_t wd = width_of(v->elem_type);
        if (v->count > (SIZE_MAX - total) / wd) return false;
        *n = total + (size_t)v->count * wd;
        return true;
    }
    if (v->count > SIZE_MAX / 8) return false;
    for (uint64_t i = 0; i < v->count; i++) {
        size_t l = v->lens ? v->lens[i] : strlen(v->strs[i]);
        if (l > SIZE_MAX - 8 || 8 + l > SIZE_MAX - total) return false;
        total += 8 + l;
    }
    *n = total;
    return true;
}

static void put_value(const kv_value *v, uint8_t *p)
{
    if (v->type == QFMT_GGUF_STRING) {
        qfmt__wr64(p, v->count);
        if (v->count) memcpy(p + 8, v->value, (size_t)v->count);
        return;
    }
    if (v->type != QFMT_GGUF_ARRAY) {
        put_native(v->type, v->value, p);
        return;
    }
    qfmt__wr32(p, v->elem_type);
    qfmt__wr64(p + 4, v->count);
    p += 12;
    if (v->elem_type == QFMT_GGUF_STRING) {
        for (uint64_t i = 0; i < v->count; i++) {
            size_t l = v->lens ? v->lens[i] : strlen(v->strs[i]);
            qfmt__wr64(p, l);
            if (l) memcpy(p + 8, v->strs[i], l);
            p += 8 + l;
        }
        return;
    }
    const uint8_t *src = v->value;
    size_t ns = native_size(v->elem_type);
    uint32_t wd = width_of(v->elem_type);
    for (uint64_t i = 0; i < v->count; i++, src += ns, p += wd) put_native(v->elem_type, src, p);
}

static qfmt_status add_kv(qfmt_gguf_writer *w, const char *key, const kv_value *v, qfmt_error *err)
{
    qfmt__clear_error(err);
    qfmt_status s = check_state(w, true, err);
    if (s != QFMT_OK) return s;
    size_t klen = key ? strlen(key) : 0;
    if (klen == 0 || klen > QFMT_GGUF_MAX_KEY_LEN || !qfmt_utf8_valid((const uint8_t *)key, klen, false))
        return W_FAIL(w, err, QFMT_E_ARG, 0, NULL, QFMT_NO_OFFSET,
                      "a key must be 1..%u bytes of UTF-8 without NUL", QFMT_GGUF_MAX_KEY_LEN);
    /* the values' own checks */
    if (v->type == QFMT_GGUF_ARRAY) {
        if (v->elem_type == QFMT_GGUF_ARRAY || v->elem_type > QFMT_GGUF_FLOAT64)
            return W_FAIL(w, err, QFMT_E_ARG, 0, NULL, QFMT_NO_OFFSET,
                          "key '%.200s': element type %" PRIu32 " is not a GGUF scalar type", key,
                          v->elem_type);
        if (v->elem_type == QFMT_GGUF_STRING) {
            if (v->count && !v->strs)
                return W_FAIL(w, err, QFMT_E_ARG, 0, NULL, QFMT_NO_OFFSET, "key '%.200s': NULL strings", key);
            for (uint64_t i = 0; i < v->count; i++)
                if (!v->strs[i] && (!v->lens || v->lens[i]))
                    return W_FAIL(w, err, QFMT_E_ARG, 0, NULL, QFMT_NO_OFFSET,
                                  "key '%.200s': string %" PRIu64 " is NULL", key, i);
        } else if (v->count && !v->value) {
            return W_FAIL(w, err, QFMT_E_ARG, 0, NULL, QFMT_NO_OFFSET, "key '%.200s': NULL data", key);
        }
    } else if (v->type == QFMT_GGUF_STRING) {
        if (v->count && !v->value)
            return W_FAIL(w, err, QFMT_E_ARG, 0, NULL, QFMT_NO_OFFSET, "key '%.200s': NULL string", key);
    } else if (v->type > QFMT_GGUF_FLOAT64 || !v->value) {
        return W_FAIL(w, err, QFMT_E_ARG, 0, NULL, QFMT_NO_OFFSET,
                      "key '%.200s': not a scalar GGUF type (%" PRIu32 ") or NULL value", key, v->type);
    }
    /* general.alignment sets the layout: a u32 power of two (as ggml asserts), bounded */
    uint32_t new_align = 0;
    if (strcmp(key, "general.alignment") == 0) {
        uint32_t a = 0;
        if (v->type == QFMT_GGUF_UINT32) memcpy(&a, v->value, sizeof a);
        if (v->type != QFMT_GGUF_UINT32 || !qfmt__is_pow2(a) || a > QFMT_GGUF_MAX_ALIGNMENT)
            return W_FAIL(w, err, QFMT_E_ARG, 0, NULL, QFMT_NO_OFFSET,
                          "general.alignment must be a u32 power of two up to %u",
                          QFMT_GGUF_MAX_ALIGNMENT);
        new_align = a;
    }
    size_t vsize;
    if (!value_size(v, &vsize) || vsize > SIZE_MAX - 12 - klen)
        return W_FAIL(w, err, QFMT_E_RANGE, 0, NULL, QFMT_NO_OFFSET, "key '%.200s': value too large", key);
    size_t total = 8 + klen + 4 + vsize;

    if (!hs_reserve(&w->al, &w->kset, w->nkv, w->kv.p, w->keys, sizeof *w->keys))
        return W_FAIL(w, err, QFMT_E_NOMEM, 0, NULL, QFMT_NO_OFFSET, "out of memory");
    size_t where = 0;
    if (hs_find(&w->kset, w->kv.p, w->keys, sizeof *w->keys, (const uint8_t *)key, klen, &where))
        return W_FAIL(w, err, QFMT_E_EXISTS, 0, NULL, QFMT_NO_OFFSET, "key '%.200s' is already set", key);
    if (w->nkv >= QFMT_GGUF_MAX_KV)
        return W_FAIL(w, err, QFMT_E_RANGE, 0, NULL, QFMT_NO_OFFSET,
                      "%zu kv pairs already: at most %u (what the reader reads)", w->nkv,
                      QFMT_GGUF_MAX_KV);
    void *kp = w->keys;
    if (!arr_reserve(&w->al, &kp, w->nkv, &w->keys_cap, sizeof *w->keys))
        return W_FAIL(w, err, QFMT_E_NOMEM, 0, NULL, QFMT_NO_OFFSET, "out of memory");
    w->keys = kp;
    if (!gb_reserve(&w->al, &w->kv, total))
        return W_FAIL(w, err, QFMT_E_NOMEM, 0, NULL, QFMT_NO_OFFSET,
                      "out of memory for the value of '%.200s'", key);
    uint8_t *p = w->kv.p + w->kv.len;
    qfmt__wr64(p, klen);
    memcpy(p + 8, key, klen);
    qfmt__wr32(p + 8 + klen, v->type);
    put_value(v, p + 12 + klen);
    w->keys[w->nkv] = (span){w->kv.len + 8, klen};
    w->kv.len += total;
    w->kset.slot[where] = (uint32_t)(w->nkv + 1);
    w->nkv++;
    if (new_align) w->alignment = new_align;
    return QFMT_OK;
}

qfmt_status qfmt_gguf_writer_set_value(qfmt_gguf_writer *w, const char *key, uint32_t type,
                                       const void *value, qfmt_error *err)
{
    if (type == QFMT_GGUF_STRING || type == QFMT_GGUF_ARRAY) {
        qfmt__clear_error(err);
        return qfmt__fail(err, QFMT_E_ARG, 0, w ? w->path : NULL, NULL, QFMT_NO_OFFSET,
                          "set_value takes fixed-size types (set_str, set_array for the others)");
    }
    kv_value v = {type, type, value, 1, NULL, NULL};
    return add_kv(w, key, &v, err);
}

qfmt_status qfmt_gguf_writer_set_u32(qfmt_gguf_writer *w, const char *key, uint32_t x, qfmt_error *err)
{
    return qfmt_gguf_writer_set_value(w, key, QFMT_GGUF_UINT32, &x, err);
}
qfmt_status qfmt_gguf_writer_set_i32(qfmt_gguf_writer *w, const char *key, int32_t x, qfmt_error *err)
{
    return qfmt_gguf_writer_set_value(w, key, QFMT_GGUF_INT32, &x, err);
}
qfmt_status qfmt_gguf_writer_set_u64(qfmt_gguf_writer *w, const char *key, uint64_t x, qfmt_error *err)
{
    return qfmt_gguf_writer_set_value(w, key, QFMT_GGUF_UINT64, &x, err);
}
qfmt_status qfmt_gguf_writer_set_i64(qfmt_gguf_writer *w, const char *key, int64_t x, qfmt_error *err)
{
    return qfmt_gguf_writer_set_value(w, key, QFMT_GGUF_INT64, &x, err);
}
qfmt_status qfmt_gguf_writer_set_f32(qfmt_gguf_writer *w, const char *key, float x, qfmt_error *err)
{
    return qfmt_gguf_writer_set_value(w, key, QFMT_GGUF_FLOAT32, &x, err);
}
qfmt_status qfmt_gguf_writer_set_f64(qfmt_gguf_writer *w, const char *key, double x, qfmt_error *err)
{
    return qfmt_gguf_writer_set_value(w, key, QFMT_GGUF_FLOAT64, &x, err);
}
qfmt_status qfmt_gguf_writer_set_bool(qfmt_gguf_writer *w, const char *key, bool x, qfmt_error *err)
{
    return qfmt_gguf_writer_set_value(w, key, QFMT_GGUF_BOOL, &x, err);
}

qfmt_status qfmt_gguf_writer_set_str(qfmt_gguf_writer *w, const char *key, const char *s, size_t len,
                                     qfmt_error *err)
{
    kv_value v = {QFMT_GGUF_STRING, QFMT_GGUF_STRING, s, len, NULL, NULL};
    return add_kv(w, key, &v, err);
}

qfmt_status qfmt_gguf_writer_set_array(qfmt_gguf_writer *w, const char *key, uint32_t elem_type,
                                       const void *data, uint64_t count, qfmt_error *err)
{
    if (elem_type == QFMT_GGUF_STRING) {
        qfmt__clear_error(err);
        return qfmt__fail(err, QFMT_E_ARG, 0, w ? w->path : NULL, NULL, QFMT_NO_OFFSET,
                          "arrays of strings go through qfmt_gguf_writer_set_str_array");
    }
    kv_value v = {QFMT_GGUF_ARRAY, elem_type, data, count, NULL, NULL};
    return add_kv(w, key, &v, err);
}

qfmt_status qfmt_gguf_writer_set_str_array(qfmt_gguf_writer *w, const char *key,
                                           const char *const *strs, const size_t *lens,
                                           uint64_t count, qfmt_error *err)
{
    kv_value v = {QFMT_GGUF_ARRAY, QFMT_GGUF_STRING, NULL, count, strs, lens};
    return add_kv(w, key, &v, err);
}

/* ---- Tensors -------------------------------------------------------------------------------- */

qfmt_status qfmt_gguf_writer_add_tensor(qfmt_gguf_writer *w, const char *name, uint32_t type,
                                        uint32_t ndim, const uint64_t *ne, const void *data,
                                        uint64_t size, qfmt_error *err)
{
    qfmt__clear_error(err);
    qfmt_status s = check_state(w, true, err);
    if (s != QFMT_OK) return s;
    size_t nlen = name ? strlen(name) : 0;
    if (nlen == 0 || nlen > QFMT_GGUF_MAX_NAME_LEN ||
        !qfmt_utf8_valid((const uint8_t *)name, nlen, false))
        return W_FAIL(w, err, QFMT_E_ARG, 0, name, QFMT_NO_OFFSET,
                      "a tensor name must be 1..%u bytes of UTF-8 without NUL", QFMT_GGUF_MAX_NAME_LEN);
    const qfmt_type_traits *tr = type < 256 ? qfmt_type_get_traits(type) : NULL;
    if (!tr)
        return W_FAIL(w, err, QFMT_E_UNSUPPORTED, 0, name, QFMT_NO_OFFSET,
                      "type %" PRIu32 " is not a ggml type this library knows", type);
    if (ndim < 1 || ndim > QFMT_GGUF_MAX_DIMS || !ne)
        return W_FAIL(w, err, QFMT_E_ARG, 0, name, QFMT_NO_OFFSET, "%" PRIu32 " dimensions: 1..%u needed",
                      ndim, QFMT_GGUF_MAX_DIMS);
    uint64_t n = 1;
    bool zero = false, over = false;
    for (uint32_t d = 0; d < ndim; d++) {
        if (ne[d] > (uint64_t)INT64_MAX)
            return W_FAIL(w, err, QFMT_E_ARG, 0, name, QFMT_NO_OFFSET, "dimension %u beyond INT64_MAX", d);
        if (ne[d] == 0) zero = true;
        else if (!over && (!qfmt__mul_u64(n, ne[d], &n) || n > (uint64_t)INT64_MAX)) over = true;
    }
    if (over && !zero)
        return W_FAIL(w, err, QFMT_E_ARG, 0, name, QFMT_NO_OFFSET, "element count beyond INT64_MAX");
    if (zero) n = 0;
    uint64_t bytes;
    if (ne[0] % tr->block_elems != 0 || qfmt_type_size(type, n, &bytes) != QFMT_OK)
        return W_FAIL(w, err, QFMT_E_ARG, 0, name, QFMT_NO_OFFSET,
                      "%s: ne[0] = %" PRIu64 " must hold whole blocks of %u (and the size fit 64 bits)",
                      tr->name, ne[0], tr->block_elems);
    if (size != bytes)
        return W_FAIL(w, err, QFMT_E_ARG, 0, name, QFMT_NO_OFFSET,
                      "%" PRIu64 " bytes given, %" PRIu64 " %s values take %" PRIu64, size, n,
                      tr->name, bytes);
    if (data == NULL && w->stream_total > UINT64_MAX - size)
        return W_FAIL(w, err, QFMT_E_RANGE, 0, name, QFMT_NO_OFFSET, "streamed sizes overflow");

    if (!hs_reserve(&w->al, &w->tset, w->nt, w->names.p, w->t, sizeof *w->t))
        return W_FAIL(w, err, QFMT_E_NOMEM, 0, name, QFMT_NO_OFFSET, "out of memory");
    size_t where = 0;
    if (hs_find(&w->tset, w->names.p, w->t, sizeof *w->t, (const uint8_t *)name, nlen, &where))
        return W_FAIL(w, err, QFMT_E_EXISTS, 0, name, QFMT_NO_OFFSET, "two tensors of this name");
    if (w->nt >= QFMT_GGUF_MAX_TENSORS)
        return W_FAIL(w, err, QFMT_E_RANGE, 0, name, QFMT_NO_OFFSET,
                      "%zu tensors already: at most %u (what the reader reads)", w->nt,
                      QFMT_GGUF_MAX_TENSORS);
    void *tp = w->t;
    if (!arr_reserve(&w->al, &tp, w->nt, &w->t_cap, sizeof *w->t))
        return W_FAIL(w, err, QFMT_E_NOMEM, 0, name, QFMT_NO_OFFSET, "out of memory");
    w->t = tp;
    if (!gb_reserve(&w->al, &w->names, nlen))
        return W_FAIL(w, err, QFMT_E_NOMEM, 0, name, QFMT_NO_OFFSET, "out of memory");
    wtensor *t = &w->t[w->nt];
    memset(t, 0, sizeof *t);
    t->name = (span){w->names.len, nlen};
    memcpy(w->names.p + w->names.len, name, nlen);
    w->names.len += nlen;
    t->type = type;
    t->ndim = ndim;
    for (uint32_t d = 0; d < QFMT_GGUF_MAX_DIMS; d++) t->ne[d] = d < ndim ? ne[d] : 1;
    t->data = data;
    t->size = bytes;
    if (!data) w->stream_total += bytes;
    w->tset.slot[where] = (uint32_t)(w->nt + 1);
    w->nt++;
    return QFMT_OK;
}

/* ---- Data ----------------------------------------------------------------------------------- */

/* Builds and writes the header: kv pairs, tensor infos, padding. Fixes every tensor's offset. */
static qfmt_status emit_header(qfmt_gguf_writer *w, qfmt_error *err)
{
    uint64_t off = 0;
    size_t hsize = 24;
    bool ok = w->kv.len <= SIZE_MAX - hsize;
    if (ok) hsize += w->kv.len;
    for (size_t i = 0; ok && i < w->nt; i++) {
        wtensor *t = &w->t[i];
        t->rel = off;
        ok = qfmt__add_u64(off, t->size, &off) && qfmt__align_up(off, w->alignment, &off);
        size_t info = 8 + t->name.len + 4 + 8 * (size_t)t->ndim + 4 + 8;
        ok = ok && info <= SIZE_MAX - hsize;
        if (ok) hsize += info;
    }
    size_t padding = (size_t)pad_of(hsize, w->alignment);
    if (!ok || padding > SIZE_MAX - hsize) {
        qfmt_status s = W_FAIL(w, err, QFMT_E_RANGE, 0, NULL, QFMT_NO_OFFSET, "file size overflows");
        abandon(w);
        return s;
    }
    uint8_t *h = qfmt__malloc(&w->al, hsize);
    if (!h) {
        qfmt_status s = W_FAIL(w, err, QFMT_E_NOMEM, 0, NULL, QFMT_NO_OFFSET,
                               "out of memory for the header (%zu bytes)", hsize);
        abandon(w);
        return s;
    }
    memcpy(h, "GGUF", 4);
    qfmt__wr32(h + 4, QFMT_GGUF_VERSION);
    qfmt__wr64(h + 8, w->nt);
    qfmt__wr64(h + 16, w->nkv);
    size_t p = 24;
    if (w->kv.len) memcpy(h + p, w->kv.p, w->kv.len);
    p += w->kv.len;
    for (size_t i = 0; i < w->nt; i++) {
        const wtensor *t = &w->t[i];
        qfmt__wr64(h + p, t->name.len);
        memcpy(h + p + 8, w->names.p + t->name.off, t->name.len);
        p += 8 + t->name.len;
        qfmt__wr32(h + p, t->ndim);
        p += 4;
        for (uint32_t d = 0; d < t->ndim; d++, p += 8) qfmt__wr64(h + p, t->ne[d]);
        qfmt__wr32(h + p, t->type);
        qfmt__wr64(h + p + 4, t->rel);
        p += 12;
    }
    w->state = S_DATA;
    w->cur = 0;
    w->cur_done = 0;
    qfmt_status s = out(w, h, p, err);
    qfmt__free(&w->al, h);
    if (s == QFMT_OK) s = pad(w, padding, err);
    return s;
}

/* Writes the tensors given by pointer (and the empty ones) from w->cur on, up to the next one
 * the caller streams. */
static qfmt_status pump(qfmt_gguf_writer *w, qfmt_error *err)
{
    while (w->cur < w->nt) {
        const wtensor *t = &w->t[w->cur];
        if (!t->data && t->size > 0) return QFMT_OK;
        qfmt_status s = QFMT_OK;
        if (t->size) s = out(w, t->data, t->size, err);
        if (s == QFMT_OK) s = pad(w, pad_of(t->size, w->alignment), err);
        if (s != QFMT_OK) return s;
        w->cur++;
    }
    return QFMT_OK;
}

qfmt_status qfmt_gguf_writer_write(qfmt_gguf_writer *w, const void *data, size_t size, qfmt_error *err)
{
    qfmt__clear_error(err);
    qfmt_status s = check_state(w, false, err);
    if (s != QFMT_OK) return s;
    if (size > w->stream_total - w->streamed)
        return W_FAIL(w, err, QFMT_E_ARG, 0, NULL, QFMT_NO_OFFSET,
                      "%zu bytes given, %" PRIu64 " remain of the tensors declared with data NULL",
                      size, w->stream_total - w->streamed);
    if (size && !data) return W_FAIL(w, err, QFMT_E_ARG, 0, NULL, QFMT_NO_OFFSET, "NULL data");
    if (size == 0) return QFMT_OK;
    if (w->state == S_OPEN && (s = emit_header(w, err)) != QFMT_OK) return s;
    const uint8_t *b = data;
    while (size > 0) {
        if ((s = pump(w, err)) != QFMT_OK) return s;
        const wtensor *t = &w->t[w->cur]; /* exists: the bytes were counted above */
        uint64_t k = t->size - w->cur_done;
        if (k > size) k = size;
        if ((s = out(w, b, k, err)) != QFMT_OK) return s;
        b += k;
        size -= (size_t)k;
        w->streamed += k;
        w->cur_done += k;
        if (w->cur_done == t->size) {
            if ((s = pad(w, pad_of(t->size, w->alignment), err)) != QFMT_OK) return s;
            w->cur++;
            w->cur_done = 0;
        }
    }
    return pump(w, err);
}

qfmt_status qfmt_gguf_writer_commit(qfmt_gguf_writer *w, qfmt_error *err)
{
    qfmt__clear_error(err);
    qfmt_status s = check_state(w, false, err);
    if (s != QFMT_OK) return s;
    if (w->state == S_OPEN && (s = emit_header(w, err)) != QFMT_OK) return s;
    if ((s = pump(w, err)) != QFMT_OK) return s;
    if (w->cur < w->nt) {
        const wtensor *t = &w->t[w->cur];
        char nm[QFMT_GGUF_MAX_NAME_LEN + 1];
        memcpy(nm, w->names.p + t->name.off, t->name.len);
        nm[t->name.len] = '\0';
        s = W_FAIL(w, err, QFMT_E_STATE, 0, nm, QFMT_NO_OFFSET,
                   "%" PRIu64 " of its %" PRIu64 " bytes given (%" PRIu64 " of %" PRIu64
                   " streamed bytes in all)",
                   w->cur_done, t->size, w->streamed, w->stream_total);
        abandon(w);
        return s;
    }
    int e = qfmt__fsync(&w->io, w->fd);
    if (e) {
        s = W_FAIL(w, err, QFMT_E_IO, e, NULL, QFMT_NO_OFFSET, "fsync failed: %s", strerror(e));
        abandon(w);
        return s;
    }
    int fd = w->fd;
    w->fd = -1;
    if (w->io.close(w->io.ctx, fd) != 0) {
        e = errno ? errno : EIO;
        s = W_FAIL(w, err, QFMT_E_IO, e, NULL, QFMT_NO_OFFSET, "close failed: %s", strerror(e));
        w->io.unlink(w->io.ctx, w->tmp);
        w->state = S_FAILED;
        return s;
    }
    if (w->io.rename(w->io.ctx, w->tmp, w->path) != 0) {
        e = errno ? errno : EIO;
        s = W_FAIL(w, err, QFMT_E_IO, e, NULL, QFMT_NO_OFFSET, "cannot rename into place: %s",
                   strerror(e));
        w->io.unlink(w->io.ctx, w->tmp);
        w->state = S_FAILED;
        return s;
    }
    w->state = S_DONE;
    if ((e = qfmt__fsync_parent(&w->io, w->path)) != 0) /* makes the rename durable */
        return W_FAIL(w, err, QFMT_E_IO, e, NULL, QFMT_NO_OFFSET,
                      "written, but syncing its directory failed: %s", strerror(e));
    return QFMT_OK;
}

const char *qfmt_gguf_writer_temp_path(const qfmt_gguf_writer *w)
{
    return w && (w->state == S_OPEN || w->state == S_DATA) ? w->tmp : NULL;
}

void qfmt_gguf_writer_free(qfmt_gguf_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) {
        w->io.close(w->io.ctx, w->fd);
        w->io.unlink(w->io.ctx, w->tmp);
    }
    qfmt__alloc al = w->al;
    qfmt__free(&al, w->kv.p);
    qfmt__free(&al, w->keys);
    qfmt__free(&al, w->kset.slot);
    qfmt__free(&al, w->names.p);
    qfmt__free(&al, w->t);
    qfmt__free(&al, w->tset.slot);
    qfmt__free(&al, w->tmp);
    qfmt__free(&al, w->path);
    qfmt__free(&al, w);
}
