/* Metadata: parsing and validating the section at open, and the typed getters. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal/bytes.h"
#include "internal/checked.h"
#include "internal/cursor.h"
#include "internal/error.h"
#include "internal/format.h"
#include "internal/reader.h"
#include "internal/utf8.h"

const char *qfmt_meta_type_name(uint32_t type)
{
    static const char *const names[] = {"u8",  "i8",  "u16", "i16",  "u32",    "i32", "u64",
                                        "i64", "f32", "f64", "bool", "string", "array"};
    return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

/* Bytewise order, a shorter prefix first: the order keys are stored in. */
static int key_cmp(const uint8_t *a, uint64_t an, const uint8_t *b, uint64_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

#define TRUNC(k) "metadata entry %" PRIu64 " is truncated (" k ")"

static qfmt_status parse_array(qfmt_reader *r, qfmt__meta *m, qfmt_error *err)
{
    const char *key = m->key;
    if (m->value_size < 12)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, m->value_offset,
                           "metadata '%s': array value of %" PRIu64 " bytes, needs at least 12",
                           key, m->value_size);
    const uint8_t *v = r->base + m->value_offset;
    m->elem_type = qfmt__rd32(v);
    m->count = qfmt__rd64(v + 4);
    uint64_t body = m->value_size - 12, body_off = m->value_offset + 12;
    if (m->elem_type == QFMT_META_ARRAY)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, m->value_offset,
                           "metadata '%s': arrays of arrays are not allowed", key);
    if (m->elem_type > QFMT_META_ARRAY) return QFMT_OK; /* a later minor's element type: opaque */
    unsigned w = qfmt__meta_width(m->elem_type);
    if (w) {
        if (m->count != body / w || body % w)
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, m->value_offset + 4,
                               "metadata '%s': %" PRIu64 " elements of %u bytes do not fill the "
                               "%" PRIu64 "-byte array",
                               key, m->count, w, body);
        if (m->elem_type == QFMT_META_BOOL)
            for (uint64_t i = 0; i < m->count; i++)
                if (v[12 + i] > 1)
                    return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, body_off + i,
                                       "metadata '%s': bool element %" PRIu64 " is %u, not 0 or 1",
                                       key, i, v[12 + i]);
        return QFMT_OK;
    }
    /* Strings: each needs at least its 8-byte length, which bounds the index allocated here. */
    if (m->count > body / 8)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, m->value_offset + 4,
                           "metadata '%s': %" PRIu64 " strings cannot fit in %" PRIu64 " bytes",
                           key, m->count, body);
    void *idx = NULL;
    qfmt_status s = qfmt__ralloc(r, m->count, sizeof(uint64_t), &idx);
    m->str_offsets = idx;
    if (s != QFMT_OK)
        return qfmt__rfail(r, err, s, NULL, QFMT_NO_OFFSET,
                           "metadata '%s': cannot allocate the index of %" PRIu64 " strings%s",
                           key, m->count,
                           s == QFMT_E_RANGE ? " within the allocation bound of open" : "");
    qfmt__cur c = {r->base, body_off, body_off + body};
    for (uint64_t i = 0; i < m->count; i++) {
        uint64_t len, at = c.pos;
        if (!qfmt__cur_u64(&c, &len) || !qfmt__cur_has(&c, len))
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, at,
                               "metadata '%s': string element %" PRIu64 " runs past the array",
                               key, i);
        if (!qfmt_utf8_valid(r->base + c.pos, len, true))
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, c.pos,
                               "metadata '%s': string element %" PRIu64 " is not valid UTF-8", key,
                               i);
        m->str_offsets[i] = at;
        c.pos += len;
    }
    if (c.pos != c.end)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, c.pos,
                           "metadata '%s': %" PRIu64 " bytes left after the last string", key,
                           c.end - c.pos);
    return QFMT_OK;
}

static qfmt_status parse_value(qfmt_reader *r, qfmt__meta *m, qfmt_error *err)
{
    const uint8_t *v = r->base + m->value_offset;
    unsigned w = qfmt__meta_width(m->type);
    if (w) {
        if (m->value_size != w)
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, m->value_offset,
                               "metadata '%s': %s value of %" PRIu64 " bytes, expected %u",
                               m->key, qfmt_meta_type_name(m->type), m->value_size, w);
        if (m->type == QFMT_META_BOOL && v[0] > 1)
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, m->value_offset,
                               "metadata '%s': bool value is %u, not 0 or 1", m->key, v[0]);
        return QFMT_OK;
    }
    if (m->type == QFMT_META_STRING) {
        if (!qfmt_utf8_valid(v, m->value_size, true))
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, m->value_offset,
                               "metadata '%s': string is not valid UTF-8", m->key);
        return QFMT_OK;
    }
    if (m->type == QFMT_META_ARRAY) return parse_array(r, m, err);
    return QFMT_OK; /* unknown type of a later minor: kept as opaque bytes */
}

qfmt_status qfmt__meta_parse(qfmt_reader *r, char **arena_pos, qfmt_error *err)
{
    uint64_t n = r->info.metadata_count;
    if (n == 0) {
        if (r->info.metadata_size != 0)
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, r->info.metadata_offset,
                               "%" PRIu64 " metadata bytes but no entries", r->info.metadata_size);
        return QFMT_OK;
    }
    void *mem = NULL;
    qfmt_status st = qfmt__ralloc(r, n, sizeof *r->meta, &mem);
    r->meta = mem;
    if (st != QFMT_OK)
        return qfmt__rfail(r, err, st, NULL, QFMT_NO_OFFSET,
                           "cannot allocate %" PRIu64 " metadata entries%s", n,
                           st == QFMT_E_RANGE ? " within the allocation bound of open" : "");
    qfmt__cur c = {r->base, r->info.metadata_offset,
                   r->info.metadata_offset + r->info.metadata_size};
    const uint8_t *prev = NULL;
    uint64_t prev_len = 0;
    for (uint64_t i = 0; i < n; i++) {
        qfmt__meta *m = &r->meta[i];
        uint64_t at = c.pos, klen, vsize;
        m->entry_offset = at;
        if (!qfmt__cur_u64(&c, &klen))
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, at, TRUNC("key length"), i);
        if (klen == 0 || klen > QFMT_MAX_KEY_LEN)
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, at,
                               "metadata entry %" PRIu64 ": key length %" PRIu64
                               " is outside 1..%u",
                               i, klen, QFMT_MAX_KEY_LEN);
        const uint8_t *k = qfmt__cur_take(&c, klen);
        if (!k) return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, at + 8, TRUNC("key"), i);
        if (!qfmt_utf8_valid(k, klen, false))
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, at + 8,
                               "metadata entry %" PRIu64 ": key is not valid UTF-8 or has a NUL",
                               i);
        if (prev && key_cmp(prev, prev_len, k, klen) >= 0)
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, at + 8,
                               "metadata entry %" PRIu64 " ('%.*s'): keys must be unique and in "
                               "increasing order",
                               i, (int)klen, (const char *)k);
        prev = k;
        prev_len = klen;
        memcpy(*arena_pos, k, klen);
        (*arena_pos)[klen] = '\0';
        m->key = *arena_pos;
        m->key_len = (uint32_t)klen;
        *arena_pos += klen + 1;
        if (!qfmt__cur_u32(&c, &m->type) || !qfmt__cur_u64(&c, &vsize))
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, c.pos,
                               "metadata '%s': entry truncated (value type or size)", m->key);
        if (!qfmt__cur_has(&c, vsize))
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, c.pos - 8,
                               "metadata '%s': value of %" PRIu64 " bytes runs past the section "
                               "(%" PRIu64 " bytes left)",
                               m->key, vsize, c.end - c.pos);
        m->value_offset = c.pos;
        m->value_size = vsize;
        c.pos += vsize;
        qfmt_status s = parse_value(r, m, err);
        if (s != QFMT_OK) return s;
    }
    if (c.pos != c.end)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, c.pos,
                           "%" PRIu64 " bytes left in the metadata section after %" PRIu64
                           " entries",
                           c.end - c.pos, n);
    return QFMT_OK;
}

void qfmt__meta_free(qfmt_reader *r)
{
    if (!r->meta) return;
    for (uint64_t i = 0; i < r->info.metadata_count; i++)
        qfmt__free(&r->al, r->meta[i].str_offsets);
    qfmt__free(&r->al, r->meta);
    r->meta = NULL;
}

/* ---- Getters ------------------------------------------------------------------------- */

uint64_t qfmt_meta_count(const qfmt_reader *r) { return r ? r->info.metadata_count : 0; }

static const qfmt__meta *lookup(const qfmt_reader *r, const char *key)
{
    size_t kl = strlen(key);
    uint64_t lo = 0, hi = r->info.metadata_count;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const qfmt__meta *m = &r->meta[mid];
        int c = key_cmp((const uint8_t *)m->key, m->key_len, (const uint8_t *)key, kl);
        if (c == 0) return m;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

qfmt_status qfmt_meta_find(const qfmt_reader *r, const char *key, uint64_t *index, qfmt_error *err)
{
    if (!r || !key) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    const qfmt__meta *m = lookup(r, key);
    if (!m)
        return qfmt__rfail(r, err, QFMT_E_NOT_FOUND, NULL, QFMT_NO_OFFSET,
                           "no metadata key '%s'", key);
    if (index) *index = (uint64_t)(m - r->meta);
    return QFMT_OK;
}

/* Decodes a scalar of type t at p into the value union. */
static void decode_scalar(uint32_t t, const uint8_t *p, qfmt_value *out)
{
    out->type = t;
    switch (t) {
    case QFMT_META_U8: case QFMT_META_BOOL: out->v.u = p[0]; break;
    case QFMT_META_I8: out->v.i = (int8_t)p[0]; break;
    case QFMT_META_U16: out->v.u = qfmt__rd16(p); break;
    case QFMT_META_I16: out->v.i = (int16_t)qfmt__rd16(p); break;
    case QFMT_META_U32: out->v.u = qfmt__rd32(p); break;
    case QFMT_META_I32: out->v.i = (int32_t)qfmt__rd32(p); break;
    case QFMT_META_U64: out->v.u = qfmt__rd64(p); break;
    case QFMT_META_I64: out->v.i = (int64_t)qfmt__rd64(p); break;
    case QFMT_META_F32: {
        uint32_t b = qfmt__rd32(p);
        float f;
        memcpy(&f, &b, 4);
        out->v.f = f;
        break;
    }
    case QFMT_META_F64: {
        uint64_t b = qfmt__rd64(p);
        memcpy(&out->v.f, &b, 8);
        break;
    }
    default: break;
    }
}

static void entry_value(const qfmt_reader *r, const qfmt__meta *m, qfmt_value *out)
{
    memset(out, 0, sizeof *out);
    const uint8_t *v = r->base + m->value_offset;
    if (qfmt__meta_width(m->type)) {
        decode_scalar(m->type, v, out);
    } else if (m->type == QFMT_META_STRING) {
        out->type = m->type;
        out->v.str.ptr = (const char *)v;
        out->v.str.len = m->value_size;
    } else if (m->type == QFMT_META_ARRAY) {
        out->type = m->type;
        out->v.arr.elem_type = m->elem_type;
        out->v.arr.count = m->count;
    } else {
        out->type = m->type;
        out->v.raw.ptr = v;
        out->v.raw.len = m->value_size;
    }
}

qfmt_status qfmt_meta_get_entry(const qfmt_reader *r, uint64_t index, const char **key,
                                qfmt_value *value, qfmt_error *err)
{
    if (!r) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL reader");
    if (index >= r->info.metadata_count)
        return qfmt__rfail(r, err, QFMT_E_RANGE, NULL, QFMT_NO_OFFSET,
                           "metadata index %" PRIu64 " out of range (%" PRIu64 " entries)", index,
                           r->info.metadata_count);
    const qfmt__meta *m = &r->meta[index];
    if (key) *key = m->key;
    if (value) entry_value(r, m, value);
    return QFMT_OK;
}

/* Finds key and checks its stored type. */
static qfmt_status typed(const qfmt_reader *r, const char *key, uint32_t want,
                         const qfmt__meta **out, qfmt_error *err)
{
    if (!r || !key) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    const qfmt__meta *m = lookup(r, key);
    if (!m)
        return qfmt__rfail(r, err, QFMT_E_NOT_FOUND, NULL, QFMT_NO_OFFSET,
                           "no metadata key '%s'", key);
    if (m->type != want)
        return qfmt__rfail(r, err, QFMT_E_TYPE, NULL, m->value_offset,
                           "metadata '%s' is of type %s, not %s", key, qfmt_meta_type_name(m->type),
                           qfmt_meta_type_name(want));
    *out = m;
    return QFMT_OK;
}

#define GETTER(NAME, T, META, FIELD)                                                        \
    qfmt_status qfmt_meta_get_##NAME(const qfmt_reader *r, const char *key, T *out,         \
                                     qfmt_error *err)                                       \
    {                                                                                       \
        const qfmt__meta *m;                                                                \
        qfmt_status s = typed(r, key, META, &m, err);                                       \
        if (s != QFMT_OK) return s;                                                         \
        qfmt_value v;                                                                       \
        decode_scalar(META, r->base + m->value_offset, &v);                                 \
        if (out) *out = (T)v.v.FIELD;                                                       \
        return QFMT_OK;                                                                     \
    }
GETTER(u8, uint8_t, QFMT_META_U8, u)
GETTER(i8, int8_t, QFMT_META_I8, i)
GETTER(u16, uint16_t, QFMT_META_U16, u)
GETTER(i16, int16_t, QFMT_META_I16, i)
GETTER(u32, uint32_t, QFMT_META_U32, u)
GETTER(i32, int32_t, QFMT_META_I32, i)
GETTER(u64, uint64_t, QFMT_META_U64, u)
GETTER(i64, int64_t, QFMT_META_I64, i)
GETTER(f32, float, QFMT_META_F32, f)
GETTER(f64, double, QFMT_META_F64, f)
GETTER(bool, bool, QFMT_META_BOOL, u)
#undef GETTER

qfmt_status qfmt_meta_get_string(const qfmt_reader *r, const char *key, const char **ptr,
                                 uint64_t *len, qfmt_error *err)
{
    const qfmt__meta *m;
    qfmt_status s = typed(r, key, QFMT_META_STRING, &m, err);
    if (s != QFMT_OK) return s;
    if (ptr) *ptr = (const char *)(r->base + m->value_offset);
    if (len) *len = m->value_size;
    return QFMT_OK;
}

qfmt_status qfmt_meta_get_array(const qfmt_reader *r, const char *key, uint32_t *elem_type,
                                uint64_t *count, qfmt_error *err)
{
    const qfmt__meta *m;
    qfmt_status s = typed(r, key, QFMT_META_ARRAY, &m, err);
    if (s != QFMT_OK) return s;
    if (elem_type) *elem_type = m->elem_type;
    if (count) *count = m->count;
    return QFMT_OK;
}

qfmt_status qfmt_meta_array_get(const qfmt_reader *r, const char *key, uint64_t i,
                                qfmt_value *out, qfmt_error *err)
{
    const qfmt__meta *m;
    qfmt_status s = typed(r, key, QFMT_META_ARRAY, &m, err);
    if (s != QFMT_OK) return s;
    if (m->elem_type > QFMT_META_STRING)
        return qfmt__rfail(r, err, QFMT_E_UNSUPPORTED, NULL, m->value_offset,
                           "metadata '%s': array of unknown element type %u", key, m->elem_type);
    if (i >= m->count)
        return qfmt__rfail(r, err, QFMT_E_RANGE, NULL, QFMT_NO_OFFSET,
                           "metadata '%s': index %" PRIu64 " past the %" PRIu64 " elements", key,
                           i, m->count);
    if (!out) return QFMT_OK;
    memset(out, 0, sizeof *out);
    if (m->elem_type == QFMT_META_STRING) {
        uint64_t at = m->str_offsets[i];
        out->type = QFMT_META_STRING;
        out->v.str.len = qfmt__rd64(r->base + at);
        out->v.str.ptr = (const char *)(r->base + at + 8);
        return QFMT_OK;
    }
    unsigned w = qfmt__meta_width(m->elem_type);
    decode_scalar(m->elem_type, r->base + m->value_offset + 12 + i * w, out);
    return QFMT_OK;
}

/* An array of strings, else QFMT_E_TYPE naming what it is. */
static qfmt_status string_array(const qfmt_reader *r, const char *key, const qfmt__meta **out,
                                qfmt_error *err)
{
    qfmt_status s = typed(r, key, QFMT_META_ARRAY, out, err);
    if (s != QFMT_OK) return s;
    if ((*out)->elem_type != QFMT_META_STRING) {
        char t[24];
        snprintf(t, sizeof t, "%s", qfmt_meta_type_name((*out)->elem_type));
        if ((*out)->elem_type > QFMT_META_ARRAY) snprintf(t, sizeof t, "unknown(%u)", (*out)->elem_type);
        return qfmt__rfail(r, err, QFMT_E_TYPE, NULL, (*out)->value_offset,
                           "metadata '%s' is an array of %s, not of strings", key, t);
    }
    return QFMT_OK;
}

qfmt_status qfmt_meta_get_string_array(const qfmt_reader *r, const char *key, uint64_t *count,
                                       qfmt_error *err)
{
    const qfmt__meta *m;
    qfmt_status s = string_array(r, key, &m, err);
    if (s != QFMT_OK) return s;
    /* parse_array proved count <= (value_size - 12) / 8 and gave each string an offset */
    if (count) *count = m->count;
    return QFMT_OK;
}

qfmt_status qfmt_meta_string_array_get(const qfmt_reader *r, const char *key, uint64_t i,
                                       const char **ptr, uint64_t *len, qfmt_error *err)
{
    const qfmt__meta *m;
    qfmt_status s = string_array(r, key, &m, err);
    if (s != QFMT_OK) return s;
    if (i >= m->count)
        return qfmt__rfail(r, err, QFMT_E_RANGE, NULL, QFMT_NO_OFFSET,
                           "metadata '%s': index %" PRIu64 " past the %" PRIu64 " strings", key, i,
                           m->count);
    uint64_t at = m->str_offsets[i];
    if (len) *len = qfmt__rd64(r->base + at);
    if (ptr) *ptr = (const char *)(r->base + at + 8);
    return QFMT_OK;
}

qfmt_status qfmt_meta_array_copy(const qfmt_reader *r, const char *key, uint32_t elem_type,
                                 void *dst, uint64_t count, qfmt_error *err)
{
    const qfmt__meta *m;
    qfmt_status s = typed(r, key, QFMT_META_ARRAY, &m, err);
    if (s != QFMT_OK) return s;
    unsigned w = qfmt__meta_width(m->elem_type);
    if (m->elem_type != elem_type || !w)
        return qfmt__rfail(r, err, QFMT_E_TYPE, NULL, m->value_offset,
                           "metadata '%s' is an array of type %s, not %s", key,
                           qfmt_meta_type_name(m->elem_type), qfmt_meta_type_name(elem_type));
    if (count < m->count)
        return qfmt__rfail(r, err, QFMT_E_RANGE, NULL, QFMT_NO_OFFSET,
                           "metadata '%s': %" PRIu64 " elements do not fit in %" PRIu64, key,
                           m->count, count);
    if (m->count && !dst) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL dst");
    /* Native layout equals the little-endian file layout (asserted in convert.c); bool is
     * one byte 0/1 in both. */
    if (m->count) memcpy(dst, r->base + m->value_offset + 12, (size_t)(m->count * w));
    return QFMT_OK;
}
