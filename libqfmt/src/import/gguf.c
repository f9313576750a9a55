/* GGUF import (qfmt.h, "GGUF files"): a hardened reader of the llama.cpp / ggml file format,
 * versions 2 and 3, little-endian.
 *
 *     "GGUF" | u32 version | u64 tensor_count | u64 kv_count | kv pairs | tensor infos |
 *     padding to general.alignment | tensor data (each tensor at an aligned offset)
 *
 * Every count and length read from the file is checked against the bytes that remain before it
 * is used or anything is allocated for it, and every loop over such a count consumes at least
 * one byte of the file per step, so a hostile file costs at most time and memory linear in its
 * size. What ggml's gguf.cpp refuses is refused here too (duplicate keys and names, a nested
 * array, an alignment that is not a power of two, rows that do not hold whole blocks, tensor
 * offsets that are not exactly where ggml's layout puts them); in addition keys and names must
 * be UTF-8 without NUL, and a bool must be 0 or 1.
 *
 * Memory: one array entry per kv pair and per tensor, one 8-byte offset per element of a string
 * array (each such element takes at least 8 bytes of the file), one copy of every key and name
 * with a terminator, and two index arrays for the sorted lookups. Tensor data are never copied:
 * they are views into the mapped file (or the caller's memory). */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/alloc.h"
#include "internal/bytes.h"
#include "internal/checked.h"
#include "internal/cursor.h"
#include "internal/error.h"
#include "internal/io.h"
#include "internal/utf8.h"

/* The least bytes one kv pair takes: key length (8), a 1-byte key, value type (4), a 1-byte
 * value. The least one tensor info takes: name length (8), a 1-byte name, n_dims (4) with no
 * dimension, type (4), offset (8). */
#define GG_MIN_KV 14u
#define GG_MIN_TENSOR 25u
#define GG_HEADER 24u

typedef struct {
    uint64_t key_off;   /* file offset of the key's bytes */
    size_t key_len;
    const char *key;    /* NUL-terminated copy in the arena */
    uint32_t type, elem_type;
    uint64_t count;     /* array elements; string bytes; 1 */
    uint64_t data_off;  /* file offset of the value's bytes */
    uint64_t data_size;
    uint64_t str_first; /* string arrays: index in str_offs of element 0 */
} gg_kv;

typedef struct {
    uint64_t name_off;
    size_t name_len;
    const char *name;
    uint32_t type, ndim;
    uint64_t ne[QFMT_GGUF_MAX_DIMS], nelements;
    uint64_t rel;       /* offset relative to the data section, as stored */
    uint64_t size;      /* 0 when the type is unknown */
    uint64_t info_off;  /* file offset of the info (for messages) */
    bool known;
} gg_tensor;

struct qfmt_gguf {
    qfmt__alloc al;
    char *path;
    const uint8_t *base;
    uint64_t size;
    int mapped;
    uint32_t version, alignment;
    uint64_t data_offset;
    gg_kv *kv;
    uint64_t nkv;
    gg_tensor *t;
    uint64_t nt;
    uint32_t *kv_sorted, *t_sorted; /* indexes in bytewise order of key / name */
    uint64_t *str_offs;             /* file offset of each string-array element's length */
    uint64_t nstr, str_cap;
    char *arena;
};

/* ---- Errors ------------------------------------------------------------------------------- */

/* Every failure: the path, the tensor (escaped), the offset and a message (control characters
 * escaped: messages quote keys and names from the file). */
static qfmt_status gfail(const qfmt_gguf *g, qfmt_error *err, qfmt_status code, const char *tensor,
                         uint64_t offset, const char *fmt, ...) QFMT__PRINTF(6, 7);
static qfmt_status gfail(const qfmt_gguf *g, qfmt_error *err, qfmt_status code, const char *tensor,
                         uint64_t offset, const char *fmt, ...)
{
    if (!err) return code;
    char msg[sizeof err->message], safe[sizeof err->message], name[sizeof err->tensor];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    qfmt__escape_controls(msg, safe, sizeof safe);
    if (tensor) qfmt__escape_controls(tensor, name, sizeof name);
    return qfmt__fail(err, code, 0, g ? g->path : NULL, tensor ? name : NULL, offset, "%s", safe);
}

/* Up to 80 bytes of a key or name from the file for a message: control characters (NUL
 * included) escaped as qfmt_escape does; bytes that are not UTF-8 all written as \xNN. */
static const char *quote(const uint8_t *p, uint64_t n, char *buf, size_t cap)
{
    size_t k = (size_t)(n < 80 ? n : 80);
    while (k < n && k > 0 && (p[k] & 0xC0) == 0x80) k--; /* cut on a UTF-8 boundary */
    if (qfmt_utf8_valid(p, k, true)) return qfmt_escape(p, k, buf, cap);
    size_t o = 0;
    for (size_t i = 0; i < k && o + 5 <= cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f) buf[o++] = (char)p[i];
        else o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", p[i]);
    }
    buf[o < cap ? o : cap - 1] = '\0';
    return buf;
}

static qfmt_status nomem(const qfmt_gguf *g, qfmt_error *err, const char *what)
{
    return gfail(g, err, QFMT_E_NOMEM, NULL, QFMT_NO_OFFSET, "out of memory (%s)", what);
}

/* A field that runs past the end of the file. */
static qfmt_status truncated(const qfmt_gguf *g, qfmt_error *err, const char *tensor, uint64_t at,
                             const char *what, uint64_t need)
{
    return gfail(g, err, QFMT_E_CORRUPT, tensor, at,
                 "truncated: %s needs %" PRIu64 " bytes, %" PRIu64 " remain in the file", what,
                 need, g->size - at);
}

/* ---- Value types ---------------------------------------------------------------------------- */

const char *qfmt_gguf_type_name(uint32_t type)
{
    static const char *const names[] = {"u8",   "i8",  "u16", "i16", "u32", "i32", "f32",
                                        "bool", "str", "arr", "u64", "i64", "f64"};
    return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

/* Bytes of one value of a fixed-size type; 0 for STRING, ARRAY and unknown ids. */
static uint32_t fixed_width(uint32_t type)
{
    switch (type) {
    case QFMT_GGUF_UINT8: case QFMT_GGUF_INT8: case QFMT_GGUF_BOOL: return 1;
    case QFMT_GGUF_UINT16: case QFMT_GGUF_INT16: return 2;
    case QFMT_GGUF_UINT32: case QFMT_GGUF_INT32: case QFMT_GGUF_FLOAT32: return 4;
    case QFMT_GGUF_UINT64: case QFMT_GGUF_INT64: case QFMT_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* ---- Parsing -------------------------------------------------------------------------------- */

/* A GGUF string at the cursor: its length (checked against the bytes left), then its bytes. */
static bool take_string(qfmt__cur *c, uint64_t *len, uint64_t *off)
{
    if (!qfmt__cur_has(c, 8)) return false;
    uint64_t n = qfmt__rd64(c->base + c->pos);
    if (n > c->end - c->pos - 8) return false; /* cannot wrap: 8 bytes are there */
    c->pos += 8;
    *len = n;
    *off = c->pos;
    c->pos += n;
    return true;
}

static qfmt_status push_str_off(qfmt_gguf *g, uint64_t off, qfmt_error *err)
{
    if (g->nstr == g->str_cap) {
        /* each element takes at least 8 bytes of the file, so this stays below size / 8 */
        uint64_t cap = g->str_cap ? g->str_cap * 2 : 256;
        if (cap > g->size / 8 + 1) cap = g->size / 8 + 1;
        if (cap <= g->nstr || cap > SIZE_MAX / sizeof *g->str_offs) return nomem(g, err, "string offsets");
        void *p = g->str_offs;
        if (qfmt__grow(&g->al, &p, (size_t)g->nstr * sizeof *g->str_offs,
                       (size_t)cap * sizeof *g->str_offs) != 0)
            return nomem(g, err, "string offsets");
        g->str_offs = p;
        g->str_cap = cap;
    }
    g->str_offs[g->nstr++] = off;
    return QFMT_OK;
}

static qfmt_status parse_kv(qfmt_gguf *g, qfmt__cur *c, uint64_t index, gg_kv *kv, qfmt_error *err)
{
    char q[400];
    uint64_t at = c->pos, klen, koff;
    if (!qfmt__cur_has(c, 8)) return truncated(g, err, NULL, at, "a key's length", 8);
    if (!take_string(c, &klen, &koff))
        return gfail(g, err, QFMT_E_CORRUPT, NULL, at,
                     "kv %" PRIu64 ": key length %" PRIu64 " runs past the end of the file",
                     index, qfmt__rd64(g->base + at));
    if (klen == 0) return gfail(g, err, QFMT_E_CORRUPT, NULL, at, "kv %" PRIu64 ": empty key", index);
    if (klen > QFMT_GGUF_MAX_KEY_LEN)
        return gfail(g, err, QFMT_E_CORRUPT, NULL, at,
                     "kv %" PRIu64 ": key of %" PRIu64 " bytes, at most %u allowed", index, klen,
                     QFMT_GGUF_MAX_KEY_LEN);
    if (!qfmt_utf8_valid(g->base + koff, klen, false))
        return gfail(g, err, QFMT_E_CORRUPT, NULL, koff,
                     "kv %" PRIu64 ": key '%s' is not UTF-8 without NUL", index,
                     quote(g->base + koff, klen, q, sizeof q));
    kv->key_off = koff;
    kv->key_len = (size_t)klen;
    const char *kq = quote(g->base + koff, klen, q, sizeof q);

    uint32_t type;
    at = c->pos;
    if (!qfmt__cur_u32(c, &type)) return truncated(g, err, NULL, at, "a value type", 4);
    if (type > QFMT_GGUF_FLOAT64)
        return gfail(g, err, QFMT_E_CORRUPT, NULL, at, "key '%s': value type %" PRIu32 " is not a GGUF type",
                     kq, type);
    kv->type = kv->elem_type = type;
    uint32_t et = type;
    uint64_t count = 1;
    if (type == QFMT_GGUF_ARRAY) {
        at = c->pos;
        if (!qfmt__cur_u32(c, &et)) return truncated(g, err, NULL, at, "an array's element type", 4);
        if (et == QFMT_GGUF_ARRAY)
            return gfail(g, err, QFMT_E_UNSUPPORTED, NULL, at,
                         "key '%s': arrays of arrays are not supported (nor read by ggml)", kq);
        if (et > QFMT_GGUF_FLOAT64)
            return gfail(g, err, QFMT_E_CORRUPT, NULL, at,
                         "key '%s': array element type %" PRIu32 " is not a GGUF type", kq, et);
        at = c->pos;
        if (!qfmt__cur_u64(c, &count)) return truncated(g, err, NULL, at, "an array's count", 8);
        kv->elem_type = et;
    }
    kv->count = count;
    at = c->pos;
    kv->data_off = at;
    uint64_t left = c->end - c->pos;
    if (type == QFMT_GGUF_STRING) {
        uint64_t len, off;
        if (!take_string(c, &len, &off)) {
            if (left < 8) return truncated(g, err, NULL, at, "a string's length", 8);
            return gfail(g, err, QFMT_E_CORRUPT, NULL, at,
                         "key '%s': string of %" PRIu64 " bytes runs past the end of the file "
                         "(%" PRIu64 " bytes remain)",
                         kq, qfmt__rd64(g->base + at), left - 8);
        }
        kv->count = len;
        kv->data_off = off;
        kv->data_size = len;
        return QFMT_OK;
    }
    if (et == QFMT_GGUF_STRING) { /* an array of strings: each at least its 8-byte length */
        if (count > left / 8)
            return gfail(g, err, QFMT_E_CORRUPT, NULL, at,
                         "key '%s': %" PRIu64 " strings cannot fit in the %" PRIu64
                         " bytes left in the file",
                         kq, count, left);
        kv->str_first = g->nstr;
        for (uint64_t i = 0; i < count; i++) {
            uint64_t sat = c->pos, len, off;
            if (!take_string(c, &len, &off)) {
                if (c->end - c->pos < 8) return truncated(g, err, NULL, sat, "a string's length", 8);
                return gfail(g, err, QFMT_E_CORRUPT, NULL, sat,
                             "key '%s': string %" PRIu64 " of %" PRIu64
                             " bytes runs past the end of the file",
                             kq, i, qfmt__rd64(g->base + sat));
            }
            qfmt_status s = push_str_off(g, sat, err);
            if (s != QFMT_OK) return s;
        }
        kv->data_size = c->pos - at;
        return QFMT_OK;
    }
    uint32_t w = fixed_width(et);
    if (count > left / w)
        return gfail(g, err, QFMT_E_CORRUPT, NULL, at,
                     "key '%s': %" PRIu64 " values of %u bytes cannot fit in the %" PRIu64
                     " bytes left in the file",
                     kq, count, w, left);
    kv->data_size = count * w;
    if (et == QFMT_GGUF_BOOL)
        for (uint64_t i = 0; i < count; i++)
            if (g->base[at + i] > 1)
                return gfail(g, err, QFMT_E_CORRUPT, NULL, at + i,
                             "key '%s': bool %" PRIu64 " is %u, not 0 or 1", kq, i, g->base[at + i]);
    c->pos += kv->data_size;
    return QFMT_OK;
}

static qfmt_status parse_tensor(qfmt_gguf *g, qfmt__cur *c, uint64_t index, gg_tensor *t,
                                qfmt_error *err)
{
    char nm[128];
    uint64_t at = c->pos, nlen, noff;
    t->info_off = at;
    if (!qfmt__cur_has(c, 8)) return truncated(g, err, NULL, at, "a tensor name's length", 8);
    if (!take_string(c, &nlen, &noff))
        return gfail(g, err, QFMT_E_CORRUPT, NULL, at,
                     "tensor %" PRIu64 ": name length %" PRIu64 " runs past the end of the file",
                     index, qfmt__rd64(g->base + at));
    if (nlen == 0) return gfail(g, err, QFMT_E_CORRUPT, NULL, at, "tensor %" PRIu64 ": empty name", index);
    if (nlen > QFMT_MAX_NAME_LEN)
        return gfail(g, err, QFMT_E_CORRUPT, NULL, at,
                     "tensor %" PRIu64 ": name of %" PRIu64 " bytes, at most %u allowed", index,
                     nlen, QFMT_MAX_NAME_LEN);
    if (!qfmt_utf8_valid(g->base + noff, nlen, false)) {
        char q[400];
        return gfail(g, err, QFMT_E_CORRUPT, NULL, noff,
                     "tensor %" PRIu64 ": name '%s' is not UTF-8 without NUL", index,
                     quote(g->base + noff, nlen, q, sizeof q));
    }
    t->name_off = noff;
    t->name_len = (size_t)nlen;
    /* the name for messages: valid UTF-8 without NUL, cut to the error's field */
    size_t k = nlen < sizeof nm - 1 ? (size_t)nlen : sizeof nm - 1;
    memcpy(nm, g->base + noff, k);
    nm[k] = '\0';

    at = c->pos;
    if (!qfmt__cur_u32(c, &t->ndim)) return truncated(g, err, nm, at, "n_dims", 4);
    if (t->ndim > QFMT_GGUF_MAX_DIMS)
        return gfail(g, err, QFMT_E_CORRUPT, nm, at, "%" PRIu32 " dimensions, at most %u (GGML_MAX_DIMS)",
                     t->ndim, QFMT_GGUF_MAX_DIMS);
    bool zero = false, over = false;
    uint64_t n = 1;
    for (uint32_t d = 0; d < QFMT_GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->ndim) continue;
        at = c->pos;
        if (!qfmt__cur_u64(c, &t->ne[d])) return truncated(g, err, nm, at, "a dimension", 8);
        if (t->ne[d] > (uint64_t)INT64_MAX)
            return gfail(g, err, QFMT_E_CORRUPT, nm, at, "dimension %u is %" PRIu64 ", beyond INT64_MAX",
                         d, t->ne[d]);
        if (t->ne[d] == 0) zero = true;
        else if (!over && (!qfmt__mul_u64(n, t->ne[d], &n) || n > (uint64_t)INT64_MAX)) over = true;
    }
    /* A zero dimension makes an empty tensor whatever the others are (ggml's rule); otherwise
     * the element count must stay within INT64_MAX (ggml's int64_t). */
    if (over && !zero)
        return gfail(g, err, QFMT_E_CORRUPT, nm, t->info_off,
                     "%" PRIu64 " x %" PRIu64 " x %" PRIu64 " x %" PRIu64
                     " elements overflow INT64_MAX",
                     t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    t->nelements = zero ? 0 : n;

    at = c->pos;
    if (!qfmt__cur_u32(c, &t->type)) return truncated(g, err, nm, at, "the tensor type", 4);
    if (t->type > 255)
        return gfail(g, err, QFMT_E_CORRUPT, nm, at, "type %" PRIu32 " is not a ggml type id", t->type);
    const qfmt_type_traits *tr = qfmt_type_get_traits(t->type);
    t->known = tr != NULL;
    if (tr) {
        if (t->ne[0] % tr->block_elems != 0)
            return gfail(g, err, QFMT_E_CORRUPT, nm, at,
                         "%s rows of %" PRIu64 " values do not hold whole blocks of %u", tr->name,
                         t->ne[0], tr->block_elems);
        if (qfmt_type_size(t->type, t->nelements, &t->size) != QFMT_OK)
            return gfail(g, err, QFMT_E_CORRUPT, nm, at,
                         "%" PRIu64 " values of %s overflow a 64-bit size", t->nelements, tr->name);
    }
    at = c->pos;
    if (!qfmt__cur_u64(c, &t->rel)) return truncated(g, err, nm, at, "the data offset", 8);
    return QFMT_OK;
}

/* ---- Sorting (bottom-up merge sort: n log n whatever the input) ---------------------------- */

typedef struct {
    const uint8_t *base;
    const void *items;
    size_t stride, off_field, len_field; /* byte offsets of the uint64 offset / size_t length */
} sort_ctx;

static int cmp_at(const sort_ctx *s, uint32_t a, uint32_t b)
{
    const uint8_t *x = (const uint8_t *)s->items + (size_t)a * s->stride;
    const uint8_t *y = (const uint8_t *)s->items + (size_t)b * s->stride;
    uint64_t xo, yo;
    size_t xl, yl;
    memcpy(&xo, x + s->off_field, sizeof xo);
    memcpy(&yo, y + s->off_field, sizeof yo);
    memcpy(&xl, x + s->len_field, sizeof xl);
    memcpy(&yl, y + s->len_field, sizeof yl);
    int c = memcmp(s->base + xo, s->base + yo, xl < yl ? xl : yl);
    if (c) return c;
    return xl < yl ? -1 : xl > yl;
}

static bool sort_index(const qfmt__alloc *al, const sort_ctx *s, uint32_t *idx, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) idx[i] = (uint32_t)i;
    if (n < 2) return true;
    uint32_t *tmp = qfmt__malloc_array(al, n, sizeof *tmp);
    if (!tmp) return false;
    for (uint64_t width = 1; width < n; width *= 2) {
        for (uint64_t lo = 0; lo < n; lo += 2 * width) {
            uint64_t mid = lo + width < n ? lo + width : n;
            uint64_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            uint64_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = cmp_at(s, idx[a], idx[b]) <= 0 ? idx[a++] : idx[b++];
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof *tmp);
    }
    qfmt__free(al, tmp);
    return true;
}

/* Index of `key` (len bytes) in the sorted order, or -1. */
static int64_t search(const uint8_t *base, const void *items, size_t stride, size_t off_field,
                      size_t len_field, const uint32_t *idx, uint64_t n, const char *key, size_t len)
{
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const uint8_t *x = (const uint8_t *)items + (size_t)idx[mid] * stride;
        uint64_t xo;
        size_t xl;
        memcpy(&xo, x + off_field, sizeof xo);
        memcpy(&xl, x + len_field, sizeof xl);
        int c = memcmp(base + xo, key, xl < len ? xl : len);
        if (c == 0) c = xl < len ? -1 : xl > len;
        if (c == 0) return (int64_t)idx[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

static int64_t find_kv(const qfmt_gguf *g, const char *key)
{
    return search(g->base, g->kv, sizeof *g->kv, offsetof(gg_kv, key_off), offsetof(gg_kv, key_len),
                  g->kv_sorted, g->nkv, key, strlen(key));
}

static int64_t find_t(const qfmt_gguf *g, const char *name)
{
    return search(g->base, g->t, sizeof *g->t, offsetof(gg_tensor, name_off),
                  offsetof(gg_tensor, name_len), g->t_sorted, g->nt, name, strlen(name));
}

/* ---- Open ------------------------------------------------------------------------------------ */

static qfmt_status parse(qfmt_gguf *g, qfmt_error *err)
{
    static const uint8_t magic[4] = {'G', 'G', 'U', 'F'};
    if (g->size < 4) {
        if (g->size == 0 || memcmp(g->base, magic, (size_t)g->size) != 0)
            return gfail(g, err, QFMT_E_BAD_MAGIC, NULL, 0, "not a GGUF file (no 'GGUF' magic)");
        return truncated(g, err, NULL, 0, "the magic", 4);
    }
    if (memcmp(g->base, magic, 4) != 0)
        return gfail(g, err, QFMT_E_BAD_MAGIC, NULL, 0, "not a GGUF file (no 'GGUF' magic)");
    qfmt__cur c = {g->base, 4, g->size};
    uint64_t nt, nkv;
    if (!qfmt__cur_u32(&c, &g->version)) return truncated(g, err, NULL, 4, "the version", 4);
    if (g->version == 0) return gfail(g, err, QFMT_E_CORRUPT, NULL, 4, "GGUF version 0");
    if ((g->version & 0xFFFFu) == 0)
        return gfail(g, err, QFMT_E_UNSUPPORTED, NULL, 4,
                     "GGUF version %#" PRIx32 ": a big-endian file? Only little-endian GGUF is read",
                     g->version);
    if (g->version == 1)
        return gfail(g, err, QFMT_E_UNSUPPORTED, NULL, 4, "GGUF version 1 is not supported (2 and 3 are)");
    if (g->version > 3)
        return gfail(g, err, QFMT_E_UNSUPPORTED, NULL, 4,
                     "GGUF version %" PRIu32 " is newer than this library reads (2 and 3)", g->version);
    if (!qfmt__cur_u64(&c, &nt)) return truncated(g, err, NULL, 8, "the tensor count", 8);
    if (!qfmt__cur_u64(&c, &nkv)) return truncated(g, err, NULL, 16, "the kv count", 8);

    /* Counts against the bytes that could hold them, before anything is allocated. */
    uint64_t left = g->size - GG_HEADER;
    if (nkv > left / GG_MIN_KV)
        return gfail(g, err, QFMT_E_CORRUPT, NULL, 16,
                     "%" PRIu64 " kv pairs cannot fit in the %" PRIu64
                     " bytes after the header (each takes at least %u)",
                     nkv, left, GG_MIN_KV);
    if (nt > (left - nkv * GG_MIN_KV) / GG_MIN_TENSOR)
        return gfail(g, err, QFMT_E_CORRUPT, NULL, 8,
                     "%" PRIu64 " tensor infos cannot fit in the file after %" PRIu64
                     " kv pairs (each info takes at least %u bytes)",
                     nt, nkv, GG_MIN_TENSOR);
    if (nkv > QFMT_GGUF_MAX_KV)
        return gfail(g, err, QFMT_E_UNSUPPORTED, NULL, 16, "%" PRIu64 " kv pairs, at most %u read",
                     nkv, QFMT_GGUF_MAX_KV);
    if (nt > QFMT_GGUF_MAX_TENSORS)
        return gfail(g, err, QFMT_E_UNSUPPORTED, NULL, 8, "%" PRIu64 " tensors, at most %u read", nt,
                     QFMT_GGUF_MAX_TENSORS);

    g->kv = qfmt__calloc_array(&g->al, nkv ? nkv : 1, sizeof *g->kv);
    if (!g->kv) return nomem(g, err, "kv pairs");
    for (uint64_t i = 0; i < nkv; i++) {
        qfmt_status s = parse_kv(g, &c, i, &g->kv[i], err);
        if (s != QFMT_OK) return s;
        g->nkv = i + 1;
    }

    /* Unique keys (ggml refuses duplicates too). */
    g->kv_sorted = qfmt__malloc_array(&g->al, nkv ? nkv : 1, sizeof *g->kv_sorted);
    sort_ctx ks = {g->base, g->kv, sizeof *g->kv, offsetof(gg_kv, key_off), offsetof(gg_kv, key_len)};
    if (!g->kv_sorted || !sort_index(&g->al, &ks, g->kv_sorted, nkv)) return nomem(g, err, "key index");
    for (uint64_t i = 1; i < nkv; i++)
        if (cmp_at(&ks, g->kv_sorted[i - 1], g->kv_sorted[i]) == 0) {
            const gg_kv *a = &g->kv[g->kv_sorted[i - 1]], *b = &g->kv[g->kv_sorted[i]];
            const gg_kv *second = a->key_off > b->key_off ? a : b;
            char q[400];
            return gfail(g, err, QFMT_E_CORRUPT, NULL, second->key_off - 8, "key '%s' appears twice",
                         quote(g->base + second->key_off, second->key_len, q, sizeof q));
        }

    /* general.alignment: a u32 power of two (ggml), at most QFMT_GGUF_MAX_ALIGNMENT (here). */
    g->alignment = QFMT_GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = search(g->base, g->kv, sizeof *g->kv, offsetof(gg_kv, key_off),
                        offsetof(gg_kv, key_len), g->kv_sorted, nkv, "general.alignment", 17);
    if (ai >= 0) {
        const gg_kv *a = &g->kv[ai];
        if (a->type != QFMT_GGUF_UINT32)
            return gfail(g, err, QFMT_E_CORRUPT, NULL, a->data_off,
                         "general.alignment is of type %s, not u32", qfmt_gguf_type_name(a->type));
        uint32_t al = qfmt__rd32(g->base + a->data_off);
        if (!qfmt__is_pow2(al))
            return gfail(g, err, QFMT_E_CORRUPT, NULL, a->data_off,
                         "general.alignment %" PRIu32 " is not a power of two", al);
        if (al > QFMT_GGUF_MAX_ALIGNMENT)
            return gfail(g, err, QFMT_E_UNSUPPORTED, NULL, a->data_off,
                         "general.alignment %" PRIu32 " is beyond the %u this library reads", al,
                         QFMT_GGUF_MAX_ALIGNMENT);
        g->alignment = al;
    }

    /* Tensor infos: the count again against what is left, now that the kv pairs are read. */
    if (nt > (c.end - c.pos) / GG_MIN_TENSOR)
        return gfail(g, err, QFMT_E_CORRUPT, NULL, 8,
                     "%" PRIu64 " tensor infos cannot fit in the %" PRIu64 " bytes after the kv pairs",
                     nt, c.end - c.pos);
    g->t = qfmt__calloc_array(&g->al, nt ? nt : 1, sizeof *g->t);
    if (!g->t) return nomem(g, err, "tensor infos");
    for (uint64_t i = 0; i < nt; i++) {
        qfmt_status s = parse_tensor(g, &c, i, &g->t[i], err);
        if (s != QFMT_OK) return s;
        g->nt = i + 1;
    }

    /* The data section: aligned when there are tensors (ggml pads only then). */
    g->data_offset = c.pos;
    if (nt > 0) {
        uint64_t d;
        if (!qfmt__align_up(c.pos, g->alignment, &d) || d > g->size)
            return gfail(g, err, QFMT_E_CORRUPT, NULL, c.pos,
                         "truncated: the data section would start at byte %" PRIu64
                         " (the tensor infos end at %" PRIu64 ", alignment %" PRIu32 ")",
                         c.pos + (g->alignment - c.pos % g->alignment) % g->alignment, c.pos,
                         g->alignment);
        g->data_offset = d;
    }

    /* The layout ggml requires: tensor i at the end of tensor i-1 rounded up to the alignment,
     * the first at 0. After a tensor of a type this library cannot size, the next must only be
     * aligned and not before it. */
    uint64_t expect = 0, prev = 0;
    bool prev_known = true;
    for (uint64_t i = 0; i < nt; i++) {
        gg_tensor *t = &g->t[i];
        char nm[128];
        size_t k = t->name_len < sizeof nm - 1 ? t->name_len : sizeof nm - 1;
        memcpy(nm, g->base + t->name_off, k);
        nm[k] = '\0';
        uint64_t field = t->name_off + t->name_len + 4 + 8ull * t->ndim + 4; /* its offset field */
        if (t->rel % g->alignment != 0)
            return gfail(g, err, QFMT_E_CORRUPT, nm, field,
                         "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu32, t->rel,
                         g->alignment);
        if (prev_known && t->rel != expect)
            return gfail(g, err, QFMT_E_CORRUPT, nm, field,
                         "data offset %" PRIu64 ", but the previous tensor ends (padded) at %" PRIu64
                         "%s",
                         t->rel, expect, t->rel < expect ? ": the data overlap" : "");
        if (!prev_known && t->rel < prev)
            return gfail(g, err, QFMT_E_CORRUPT, nm, field,
                         "data offset %" PRIu64 " is before the previous tensor's (%" PRIu64 ")", t->rel,
                         prev);
        uint64_t abs;
        if (!qfmt__add_u64(g->data_offset, t->rel, &abs) || abs > g->size)
            return gfail(g, err, QFMT_E_CORRUPT, nm, field,
                         "data offset %" PRIu64 " is past the end of the file (data start at %" PRIu64
                         ", file of %" PRIu64 " bytes)",
                         t->rel, g->data_offset, g->size);
        if (t->known) {
            if (t->size > g->size - abs)
                return gfail(g, err, QFMT_E_CORRUPT, nm, abs,
                             "%" PRIu64 " bytes of data run past the end of the file (%" PRIu64
                             " remain)",
                             t->size, g->size - abs);
            if (!qfmt__align_up(t->rel + t->size, g->alignment, &expect))
                return gfail(g, err, QFMT_E_CORRUPT, nm, abs, "padded data end overflows");
        }
        prev = t->rel;
        prev_known = t->known;
    }

    /* Unique names (ggml refuses duplicates). */
    g->t_sorted = qfmt__malloc_array(&g->al, nt ? nt : 1, sizeof *g->t_sorted);
    sort_ctx ts = {g->base, g->t, sizeof *g->t, offsetof(gg_tensor, name_off), offsetof(gg_tensor, name_len)};
    if (!g->t_sorted || !sort_index(&g->al, &ts, g->t_sorted, nt)) return nomem(g, err, "name index");
    for (uint64_t i = 1; i < nt; i++)
        if (cmp_at(&ts, g->t_sorted[i - 1], g->t_sorted[i]) == 0) {
            const gg_tensor *a = &g->t[g->t_sorted[i - 1]], *b = &g->t[g->t_sorted[i]];
            const gg_tensor *second = a->name_off > b->name_off ? a : b;
            char nm[128];
            size_t k = second->name_len < sizeof nm - 1 ? second->name_len : sizeof nm - 1;
            memcpy(nm, g->base + second->name_off, k);
            nm[k] = '\0';
            return gfail(g, err, QFMT_E_CORRUPT, nm, second->info_off,
                         "two tensors of this name");
        }

    /* Keys and names, NUL-terminated, in one block: at most the bytes they take in the file
     * plus one per entry. */
    uint64_t total = 1;
    for (uint64_t i = 0; i < nkv; i++) total += g->kv[i].key_len + 1;
    for (uint64_t i = 0; i < nt; i++) total += g->t[i].name_len + 1;
    g->arena = qfmt__malloc_array(&g->al, total, 1);
    if (!g->arena) return nomem(g, err, "keys and names");
    char *p = g->arena;
    for (uint64_t i = 0; i < nkv; i++) {
        memcpy(p, g->base + g->kv[i].key_off, g->kv[i].key_len);
        p[g->kv[i].key_len] = '\0';
        g->kv[i].key = p;
        p += g->kv[i].key_len + 1;
    }
    for (uint64_t i = 0; i < nt; i++) {
        memcpy(p, g->base + g->t[i].name_off, g->t[i].name_len);
        p[g->t[i].name_len] = '\0';
        g->t[i].name = p;
        p += g->t[i].name_len + 1;
    }
    return QFMT_OK;
}

static qfmt_gguf *new_handle(const qfmt_allocator *alloc, const char *path)
{
    qfmt__alloc al;
    qfmt__alloc_init(&al, alloc);
    qfmt_gguf *g = qfmt__malloc(&al, sizeof *g);
    if (!g) return NULL;
    memset(g, 0, sizeof *g);
    g->al = al;
    g->path = qfmt__strndup(&al, path, strlen(path));
    if (!g->path) {
        qfmt__free(&al, g);
        return NULL;
    }
    return g;
}

qfmt_status qfmt_gguf_open_memory_alloc(qfmt_gguf **out, const void *data, size_t size,
                                        const qfmt_allocator *alloc, qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!out || (!data && size))
        return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    *out = NULL;
    qfmt_gguf *g = new_handle(alloc, "");
    if (!g) return qfmt__fail(err, QFMT_E_NOMEM, 0, NULL, NULL, QFMT_NO_OFFSET, "out of memory");
    g->base = data ? data : (const uint8_t *)"";
    g->size = size;
    qfmt_status s = parse(g, err);
    if (s != QFMT_OK) {
        qfmt_gguf_close(g);
        return s;
    }
    *out = g;
    return QFMT_OK;
}

qfmt_status qfmt_gguf_open_memory(qfmt_gguf **out, const void *data, size_t size, qfmt_error *err)
{
    return qfmt_gguf_open_memory_alloc(out, data, size, NULL, err);
}

qfmt_status qfmt_gguf_open(qfmt_gguf **out, const char *path, qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!out || !path)
        return qfmt__fail(err, QFMT_E_ARG, 0, path, NULL, QFMT_NO_OFFSET, "NULL argument");
    *out = NULL;
    qfmt_gguf *g = new_handle(NULL, path);
    if (!g) return qfmt__fail(err, QFMT_E_NOMEM, 0, path, NULL, QFMT_NO_OFFSET, "out of memory");
    const char *what = "";
    /* qfmt_file_open_read's checks (a regular file, never blocking), then a read-only map */
    int e = qfmt__map_file(path, &g->base, &g->size, &g->mapped, &what);
    if (e) {
        qfmt_status s = qfmt__open_fail(err, path, e, what);
        qfmt_gguf_close(g);
        return s;
    }
    qfmt_status s = parse(g, err);
    if (s != QFMT_OK) {
        qfmt_gguf_close(g);
        return s;
    }
    *out = g;
    return QFMT_OK;
}

void qfmt_gguf_close(qfmt_gguf *g)
{
    if (!g) return;
    qfmt__alloc al = g->al;
    qfmt__unmap_file(g->base, g->size, g->mapped);
    qfmt__free(&al, g->kv);
    qfmt__free(&al, g->t);
    qfmt__free(&al, g->kv_sorted);
    qfmt__free(&al, g->t_sorted);
    qfmt__free(&al, g->str_offs);
    qfmt__free(&al, g->arena);
    qfmt__free(&al, g->path);
    qfmt__free(&al, g);
}

/* ---- Accessors ------------------------------------------------------------------------------ */

uint32_t qfmt_gguf_version(const qfmt_gguf *g) { return g ? g->version : 0; }
uint32_t qfmt_gguf_alignment(const qfmt_gguf *g) { return g ? g->alignment : 0; }
uint64_t qfmt_gguf_data_offset(const qfmt_gguf *g) { return g ? g->data_offset : 0; }
uint64_t qfmt_gguf_file_size(const qfmt_gguf *g) { return g ? g->size : 0; }
uint64_t qfmt_gguf_kv_count(const qfmt_gguf *g) { return g ? g->nkv : 0; }
uint64_t qfmt_gguf_tensor_count(const qfmt_gguf *g) { return g ? g->nt : 0; }

qfmt_status qfmt_gguf_kv_get(const qfmt_gguf *g, uint64_t index, qfmt_gguf_kv *out, qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!g || !out) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    if (index >= g->nkv)
        return gfail(g, err, QFMT_E_RANGE, NULL, QFMT_NO_OFFSET,
                     "kv index %" PRIu64 " out of range (%" PRIu64 " pairs)", index, g->nkv);
    const gg_kv *kv = &g->kv[index];
    memset(out, 0, sizeof *out);
    out->key = kv->key;
    out->key_len = kv->key_len;
    out->type = kv->type;
    out->elem_type = kv->elem_type;
    out->count = kv->count;
    out->data = g->base + kv->data_off;
    out->size = kv->data_size;
    out->offset = kv->data_off;
    return QFMT_OK;
}

qfmt_status qfmt_gguf_find_key(const qfmt_gguf *g, const char *key, uint64_t *index, qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!g || !key) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    int64_t i = find_kv(g, key);
    if (i < 0) {
        char q[400];
        return gfail(g, err, QFMT_E_NOT_FOUND, NULL, QFMT_NO_OFFSET, "no key '%s'",
                     quote((const uint8_t *)key, strlen(key), q, sizeof q));
    }
    if (index) *index = (uint64_t)i;
    return QFMT_OK;
}

/* The entry of `key`, or the error. */
static qfmt_status lookup(const qfmt_gguf *g, const char *key, const gg_kv **out, qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!g || !key) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    int64_t i = find_kv(g, key);
    if (i < 0) {
        char q[400];
        return gfail(g, err, QFMT_E_NOT_FOUND, NULL, QFMT_NO_OFFSET, "no key '%s'",
                     quote((const uint8_t *)key, strlen(key), q, sizeof q));
    }
    *out = &g->kv[i];
    return QFMT_OK;
}

/* A key of the file for a message (in buf). */
static const char *kname(const gg_kv *kv, char *buf, size_t cap)
{
    return quote((const uint8_t *)kv->key, kv->key_len, buf, cap);
}

static qfmt_status wrong_type(const qfmt_gguf *g, const gg_kv *kv, qfmt_error *err, const char *want)
{
    char q[400];
    if (kv->type == QFMT_GGUF_ARRAY)
        return gfail(g, err, QFMT_E_TYPE, NULL, kv->data_off, "key '%s' holds an array of %s, not %s",
                     kname(kv, q, sizeof q), qfmt_gguf_type_name(kv->elem_type), want);
    return gfail(g, err, QFMT_E_TYPE, NULL, kv->data_off, "key '%s' holds a %s, not %s",
                 kname(kv, q, sizeof q), qfmt_gguf_type_name(kv->type), want);
}

/* One value of type `type` at p, as the getters read it. */
typedef enum { V_UNSIGNED, V_SIGNED, V_FLOAT, V_BOOL, V_OTHER } vclass;

static vclass read_value(uint32_t type, const uint8_t *p, uint64_t *u, int64_t *i, double *f)
{
    switch (type) {
    case QFMT_GGUF_UINT8: *u = p[0]; return V_UNSIGNED;
    case QFMT_GGUF_UINT16: *u = qfmt__rd16(p); return V_UNSIGNED;
    case QFMT_GGUF_UINT32: *u = qfmt__rd32(p); return V_UNSIGNED;
    case QFMT_GGUF_UINT64: *u = qfmt__rd64(p); return V_UNSIGNED;
    case QFMT_GGUF_INT8: *i = (int8_t)p[0]; return V_SIGNED;
    case QFMT_GGUF_INT16: *i = (int16_t)qfmt__rd16(p); return V_SIGNED;
    case QFMT_GGUF_INT32: *i = (int32_t)qfmt__rd32(p); return V_SIGNED;
    case QFMT_GGUF_INT64: *i = (int64_t)qfmt__rd64(p); return V_SIGNED;
    case QFMT_GGUF_FLOAT32: {
        uint32_t b = qfmt__rd32(p);
        float x;
        memcpy(&x, &b, sizeof x);
        *f = x;
        return V_FLOAT;
    }
    case QFMT_GGUF_FLOAT64: {
        uint64_t b = qfmt__rd64(p);
        memcpy(f, &b, sizeof *f);
        return V_FLOAT;
    }
    case QFMT_GGUF_BOOL: *u = p[0]; return V_BOOL;
    default: return V_OTHER;
    }
}

enum { WANT_U64, WANT_I64, WANT_F64, WANT_BOOL };

/* Converts one value to what the getter asks, by the documented rules. */
static qfmt_status convert(const qfmt_gguf *g, const gg_kv *kv, uint32_t type, const uint8_t *p,
                           int want, void *out, qfmt_error *err)
{
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
    char q[400];
    vclass vc = read_value(type, p, &u, &i, &f);
    static const char *const names[] = {"an integer >= 0", "an integer", "a float", "a bool"};
    switch (want) {
    case WANT_U64:
        if (vc == V_UNSIGNED) {
            *(uint64_t *)out = u;
            return QFMT_OK;
        }
        if (vc == V_SIGNED) {
            if (i < 0)
                return gfail(g, err, QFMT_E_RANGE, NULL, kv->data_off,
                             "key '%s': %" PRId64 " is negative, not an unsigned value",
                             kname(kv, q, sizeof q), i);
            *(uint64_t *)out = (uint64_t)i;
            return QFMT_OK;
        }
        break;
    case WANT_I64:
        if (vc == V_SIGNED) {
            *(int64_t *)out = i;
            return QFMT_OK;
        }
        if (vc == V_UNSIGNED) {
            if (u > (uint64_t)INT64_MAX)
                return gfail(g, err, QFMT_E_RANGE, NULL, kv->data_off,
                             "key '%s': %" PRIu64 " is beyond INT64_MAX", kname(kv, q, sizeof q), u);
            *(int64_t *)out = (int64_t)u;
            return QFMT_OK;
        }
        break;
    case WANT_F64:
        if (vc == V_FLOAT) {
            *(double *)out = f;
            return QFMT_OK;
        }
        break;
    case WANT_BOOL:
        if (vc == V_BOOL) {
            *(bool *)out = u != 0;
            return QFMT_OK;
        }
        break;
    default: break;
    }
    return wrong_type(g, kv, err, names[want]);
}

static qfmt_status get_scalar(const qfmt_gguf *g, const char *key, int want, void *out, qfmt_error *err)
{
    const gg_kv *kv = NULL;
    qfmt_status s = lookup(g, key, &kv, err);
    if (s != QFMT_OK) return s;
    if (!out) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    if (kv->type == QFMT_GGUF_ARRAY || kv->type == QFMT_GGUF_STRING)
        return wrong_type(g, kv, err, want == WANT_U64 ? "an integer >= 0" : want == WANT_I64 ? "an integer"
                                      : want == WANT_F64 ? "a float" : "a bool");
    return convert(g, kv, kv->type, g->base + kv->data_off, want, out, err);
}

qfmt_status qfmt_gguf_get_u64(const qfmt_gguf *g, const char *key, uint64_t *out, qfmt_error *err)
{
    return get_scalar(g, key, WANT_U64, out, err);
}
qfmt_status qfmt_gguf_get_i64(const qfmt_gguf *g, const char *key, int64_t *out, qfmt_error *err)
{
    return get_scalar(g, key, WANT_I64, out, err);
}
qfmt_status qfmt_gguf_get_f64(const qfmt_gguf *g, const char *key, double *out, qfmt_error *err)
{
    return get_scalar(g, key, WANT_F64, out, err);
}
qfmt_status qfmt_gguf_get_bool(const qfmt_gguf *g, const char *key, bool *out, qfmt_error *err)
{
    return get_scalar(g, key, WANT_BOOL, out, err);
}

qfmt_status qfmt_gguf_get_str(const qfmt_gguf *g, const char *key, const char **ptr, size_t *len,
                              qfmt_error *err)
{
    const gg_kv *kv = NULL;
    qfmt_status s = lookup(g, key, &kv, err);
    if (s != QFMT_OK) return s;
    if (kv->type != QFMT_GGUF_STRING) return wrong_type(g, kv, err, "a string");
    if (ptr) *ptr = (const char *)(g->base + kv->data_off);
    if (len) *len = (size_t)kv->count;
    return QFMT_OK;
}

qfmt_status qfmt_gguf_get_array(const qfmt_gguf *g, const char *key, uint32_t *elem_type,
                                uint64_t *count, qfmt_error *err)
{
    const gg_kv *kv = NULL;
    qfmt_status s = lookup(g, key, &kv, err);
    if (s != QFMT_OK) return s;
    if (kv->type != QFMT_GGUF_ARRAY) return wrong_type(g, kv, err, "an array");
    if (elem_type) *elem_type = kv->elem_type;
    if (count) *count = kv->count;
    return QFMT_OK;
}

/* Element i of an array, checked: its entry and where its bytes are. */
static qfmt_status array_elem(const qfmt_gguf *g, const char *key, uint64_t i, bool strings,
                              const gg_kv **out, uint64_t *at, qfmt_error *err)
{
    const gg_kv *kv = NULL;
    qfmt_status s = lookup(g, key, &kv, err);
    if (s != QFMT_OK) return s;
    if (kv->type != QFMT_GGUF_ARRAY) return wrong_type(g, kv, err, strings ? "an array of strings" : "an array");
    if (strings != (kv->elem_type == QFMT_GGUF_STRING))
        return wrong_type(g, kv, err, strings ? "an array of strings" : "an array of numbers or bools");
    char q[400];
    if (i >= kv->count)
        return gfail(g, err, QFMT_E_RANGE, NULL, kv->data_off,
                     "key '%s': index %" PRIu64 " past the array's %" PRIu64 " elements",
                     kname(kv, q, sizeof q), i, kv->count);
    *out = kv;
    *at = strings ? g->str_offs[kv->str_first + i] : kv->data_off + i * fixed_width(kv->elem_type);
    return QFMT_OK;
}

qfmt_status qfmt_gguf_array_str(const qfmt_gguf *g, const char *key, uint64_t i, const char **ptr,
                                size_t *len, qfmt_error *err)
{
    const gg_kv *kv = NULL;
    uint64_t at = 0;
    qfmt_status s = array_elem(g, key, i, true, &kv, &at, err);
    if (s != QFMT_OK) return s;
    if (len) *len = (size_t)qfmt__rd64(g->base + at); /* checked at open */
    if (ptr) *ptr = (const char *)(g->base + at + 8);
    return QFMT_OK;
}

static qfmt_status array_num(const qfmt_gguf *g, const char *key, uint64_t i, int want, void *out,
                             qfmt_error *err)
{
    const gg_kv *kv = NULL;
    uint64_t at = 0;
    if (!out) {
        qfmt__clear_error(err);
        return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    }
    qfmt_status s = array_elem(g, key, i, false, &kv, &at, err);
    if (s != QFMT_OK) return s;
    return convert(g, kv, kv->elem_type, g->base + at, want, out, err);
}

qfmt_status qfmt_gguf_array_u64(const qfmt_gguf *g, const char *key, uint64_t i, uint64_t *out,
                                qfmt_error *err)
{
    return array_num(g, key, i, WANT_U64, out, err);
}
qfmt_status qfmt_gguf_array_i64(const qfmt_gguf *g, const char *key, uint64_t i, int64_t *out,
                                qfmt_error *err)
{
    return array_num(g, key, i, WANT_I64, out, err);
}
qfmt_status qfmt_gguf_array_f64(const qfmt_gguf *g, const char *key, uint64_t i, double *out,
                                qfmt_error *err)
{
    return array_num(g, key, i, WANT_F64, out, err);
}
qfmt_status qfmt_gguf_array_bool(const qfmt_gguf *g, const char *key, uint64_t i, bool *out,
                                 qfmt_error *err)
{
    return array_num(g, key, i, WANT_BOOL, out, err);
}

qfmt_status qfmt_gguf_tensor_get(const qfmt_gguf *g, uint64_t index, qfmt_gguf_tensor *out,
                                 qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!g || !out) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    if (index >= g->nt)
        return gfail(g, err, QFMT_E_RANGE, NULL, QFMT_NO_OFFSET,
                     "tensor index %" PRIu64 " out of range (%" PRIu64 " tensors)", index, g->nt);
    const gg_tensor *t = &g->t[index];
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->name_len = t->name_len;
    out->type = t->type;
    out->ndim = t->ndim;
    memcpy(out->ne, t->ne, sizeof out->ne);
    out->nelements = t->nelements;
    out->offset = g->data_offset + t->rel;
    if (t->known) {
        out->size = t->size;
        out->data = g->base + out->offset;
    } else {
        out->flags = QFMT_GGUF_TENSOR_UNKNOWN_TYPE;
    }
    return QFMT_OK;
}

qfmt_status qfmt_gguf_find_tensor(const qfmt_gguf *g, const char *name, uint64_t *index,
                                  qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!g || !name) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    int64_t i = find_t(g, name);
    if (i < 0) return gfail(g, err, QFMT_E_NOT_FOUND, name, QFMT_NO_OFFSET, "no such tensor");
    if (index) *index = (uint64_t)i;
    return QFMT_OK;
}
