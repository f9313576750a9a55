/* safetensors import, hardened like the qfmt reader: every number from the header is checked
 * (type, range, overflow) before use, and the data must be exactly covered by non-overlapping
 * tensors, as the reference implementation requires. The header passes qfmt_json_check (the
 * one JSON policy) before cJSON parses it (cJSON allocates with malloc; the policy's depth
 * limit bounds its recursion). */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/alloc.h"
#include "internal/bytes.h"
#include "internal/checked.h"
#include "internal/error.h"
#include "internal/io.h"
#include "internal/types.h"
#include "internal/utf8.h"

typedef struct {
    char *name;
    const char *dtype; /* static */
    uint32_t type, ndim;
    uint64_t dims[QFMT_MAX_DIMS], nelements, begin, end;
} st_entry;

typedef struct {
    char *key, *value;
} st_meta;

struct qfmt_st_file {
    qfmt__alloc al;
    char *path;
    const uint8_t *base;
    uint64_t size, header_len, data_start;
    int mapped;
    st_entry *t;
    uint64_t n;
    uint32_t *by_name;
    st_meta *meta;
    uint64_t nmeta;
};

static qfmt_status sfail(const qfmt_st_file *f, qfmt_error *err, qfmt_status code,
                         const char *tensor, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static qfmt_status sfail(const qfmt_st_file *f, qfmt_error *err, qfmt_status code,
                         const char *tensor, uint64_t offset, const char *fmt, ...)
{
    if (!err) return code;
    char msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qfmt__fail(err, code, 0, f->path, tensor, offset, "%s", msg);
}

static const struct {
    const char *name;
    uint32_t type;
} dtypes[] = {
    {"F32", QFMT_TYPE_F32}, {"F16", QFMT_TYPE_F16}, {"BF16", QFMT_TYPE_BF16},
    {"F64", QFMT_TYPE_F64}, {"I8", QFMT_TYPE_I8},   {"U8", QFMT_TYPE_U8},
    {"I16", QFMT_TYPE_I16}, {"I32", QFMT_TYPE_I32}, {"I64", QFMT_TYPE_I64},
    {"BOOL", QFMT_TYPE_BOOL},
};

/* The one dtype table: the reader maps names to types, the writer (export/safetensors.c) types
 * to names. */
const char *qfmt_st_dtype_name(uint32_t type)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].type == type) return dtypes[i].name;
    return NULL;
}

/* A JSON number that is a whole number in [0, 2^53]: exact as a double. */
static bool json_u64(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || floor(d) != d) return false;
    *out = (uint64_t)d;
    return true;
}

static qfmt_status parse_entry(qfmt_st_file *f, const cJSON *item, st_entry *e, qfmt_error *err)
{
    const char *nm = item->string;
    const uint64_t hoff = 8; /* errors point at the header */
    if (!cJSON_IsObject(item))
        return sfail(f, err, QFMT_E_CORRUPT, nm, hoff, "header entry is not a JSON object");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs))
        return sfail(f, err, QFMT_E_CORRUPT, nm, hoff,
                     "entry needs a string 'dtype' and arrays 'shape' and 'data_offsets'");
    e->dtype = NULL;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dt->valuestring, dtypes[i].name) == 0) {
            e->dtype = dtypes[i].name;
            e->type = dtypes[i].type;
        }
    if (!e->dtype)
        return sfail(f, err, QFMT_E_UNSUPPORTED, nm, hoff, "dtype '%.32s' is not supported",
                     dt->valuestring);
    int nd = cJSON_GetArraySize(shape);
    if (nd < 0 || (unsigned)nd > QFMT_MAX_DIMS)
        return sfail(f, err, QFMT_E_UNSUPPORTED, nm, hoff, "%d dimensions, at most %u supported",
                     nd, QFMT_MAX_DIMS);
    e->ndim = (uint32_t)nd;
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++)
        if (!json_u64(d, &e->dims[i]))
            return sfail(f, err, QFMT_E_CORRUPT, nm, hoff,
                         "dimension %d is not a non-negative integer", i);
    uint64_t bytes;
    if (qfmt__tensor_bytes(e->type, e->ndim, e->dims, &e->nelements, &bytes) != QFMT_OK)
        return sfail(f, err, QFMT_E_CORRUPT, nm, hoff, "shape is too large (size overflows)");
    if (cJSON_GetArraySize(offs) != 2 || !json_u64(offs->child, &e->begin) ||
        !json_u64(offs->child->next, &e->end))
        return sfail(f, err, QFMT_E_CORRUPT, nm, hoff,
                     "data_offsets must be two non-negative integers");
    uint64_t data_size = f->size - f->data_start;
    if (e->begin > e->end || e->end > data_size)
        return sfail(f, err, QFMT_E_CORRUPT, nm, f->data_start + e->begin,
                     "data_offsets [%" PRIu64 ", %" PRIu64 "] fall outside the %" PRIu64
                     " data bytes",
                     e->begin, e->end, data_size);
    if (e->end - e->begin != bytes)
        return sfail(f, err, QFMT_E_CORRUPT, nm, f->data_start + e->begin,
                     "%" PRIu64 " bytes of data, but %s x %" PRIu64 " elements need %" PRIu64,
                     e->end - e->begin, e->dtype, e->nelements, bytes);
    return QFMT_OK;
}

static qfmt_status parse_metadata(qfmt_st_file *f, const cJSON *m, qfmt_error *err)
{
    if (!cJSON_IsObject(m))
        return sfail(f, err, QFMT_E_CORRUPT, NULL, 8, "__metadata__ is not a JSON object");
    int n = cJSON_GetArraySize(m);
    f->meta = qfmt__calloc_array(&f->al, (uint64_t)(n > 0 ? n : 1), sizeof *f->meta);
    if (!f->meta) return sfail(f, err, QFMT_E_NOMEM, NULL, QFMT_NO_OFFSET, "out of memory");
    for (const cJSON *it = m->child; it; it = it->next) {
        if (!cJSON_IsString(it) ||
            !qfmt_utf8_valid((const uint8_t *)it->string, strlen(it->string), false) ||
            !qfmt_utf8_valid((const uint8_t *)it->valuestring, strlen(it->valuestring), false))
            return sfail(f, err, QFMT_E_CORRUPT, NULL, 8,
                         "__metadata__ entry is not a string of valid UTF-8");
        st_meta *e = &f->meta[f->nmeta++];
        e->key = qfmt__strndup(&f->al, it->string, strlen(it->string));
        e->value = qfmt__strndup(&f->al, it->valuestring, strlen(it->valuestring));
        if (!e->key || !e->value) return sfail(f, err, QFMT_E_NOMEM, NULL, QFMT_NO_OFFSET, "out of memory");
    }
    return QFMT_OK;
}

static int by_offset(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static qfmt_status parse(qfmt_st_file *f, qfmt_error *err)
{
    if (f->size < 8)
        return sfail(f, err, QFMT_E_CORRUPT, NULL, 0, "file of %" PRIu64 " bytes has no header length", f->size);
    f->header_len = qfmt__rd64(f->base);
    if (f->header_len < 2 || f->header_len > QFMT_ST_MAX_HEADER || f->header_len > f->size - 8)
        return sfail(f, err, QFMT_E_CORRUPT, NULL, 0,
                     "header length %" PRIu64 " is not within 2..%llu and the file's %" PRIu64 " bytes",
                     f->header_len, QFMT_ST_MAX_HEADER, f->size);
    f->data_start = 8 + f->header_len;
    const char *h = (const char *)f->base + 8;
    if (h[0] != '{')
        return sfail(f, err, QFMT_E_CORRUPT, NULL, 8, "header does not start with '{'");
    /* The project's one JSON policy (qfmt.h: qfmt_json_check): strict RFC 8259, no NUL, no
     * duplicate key (two tensors of one name included), offsets in the file. */
    qfmt_status js = qfmt_json_check(h, (size_t)f->header_len, 8, f->path, err);
    if (js != QFMT_OK) return js;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)f->header_len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sfail(f, err, QFMT_E_CORRUPT, NULL, 8, "header is not a valid JSON object");
    }
    /* Only the space padding writers add may follow the object (as safetensors requires). */
    for (const char *c = end; c && c < h + f->header_len; c++)
        if (*c != ' ') {
            cJSON_Delete(root);
            return sfail(f, err, QFMT_E_CORRUPT, NULL, 8 + (uint64_t)(c - h),
                         "header has bytes after its JSON object");
        }
    qfmt_status s = QFMT_OK;
    int count = cJSON_GetArraySize(root);
    f->t = qfmt__calloc_array(&f->al, (uint64_t)(count > 0 ? count : 1), sizeof *f->t);
    if (!f->t) s = sfail(f, err, QFMT_E_NOMEM, NULL, QFMT_NO_OFFSET, "out of memory");
    for (const cJSON *it = root->child; it && s == QFMT_OK; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (f->meta) s = sfail(f, err, QFMT_E_CORRUPT, NULL, 8, "two __metadata__ entries");
            else s = parse_metadata(f, it, err);
            continue;
        }
        size_t nl = strlen(it->string);
        if (nl == 0 || nl > QFMT_MAX_NAME_LEN || !qfmt_utf8_valid((const uint8_t *)it->string, nl, false)) {
            s = sfail(f, err, QFMT_E_CORRUPT, NULL, 8,
                      "tensor name of %zu bytes is not 1..%u bytes of UTF-8", nl, QFMT_MAX_NAME_LEN);
            break;
        }
        st_entry *e = &f->t[f->n];
        s = parse_entry(f, it, e, err);
        if (s == QFMT_OK && !(e->name = qfmt__strndup(&f->al, it->string, nl)))
            s = sfail(f, err, QFMT_E_NOMEM, NULL, QFMT_NO_OFFSET, "out of memory");
        if (s == QFMT_OK) f->n++;
    }
    cJSON_Delete(root);
    if (s != QFMT_OK) return s;
    /* Tensors must tile the data exactly: sorted by offset, each starts where the last ended. */
    qsort(f->t, (size_t)f->n, sizeof *f->t, by_offset);
    uint64_t at = 0;
    for (uint64_t i = 0; i < f->n; i++) {
        const st_entry *e = &f->t[i];
        if (e->begin < at)
            return sfail(f, err, QFMT_E_CORRUPT, e->name, f->data_start + e->begin,
                         "data overlaps the previous tensor's (which ends at data byte %" PRIu64 ")", at);
        if (e->begin > at)
            return sfail(f, err, QFMT_E_CORRUPT, e->name, f->data_start + at,
                         "%" PRIu64 " data bytes before it belong to no tensor", e->begin - at);
        at = e->end;
    }
    if (at != f->size - f->data_start)
        return sfail(f, err, QFMT_E_CORRUPT, NULL, f->data_start + at,
                     "%" PRIu64 " bytes after the last tensor belong to no tensor",
                     f->size - f->data_start - at);
    f->by_name = qfmt__malloc_array(&f->al, f->n ? f->n : 1, sizeof *f->by_name);
    if (!f->by_name) return sfail(f, err, QFMT_E_NOMEM, NULL, QFMT_NO_OFFSET, "out of memory");
    /* Bottom-up merge sort of the names: n log n whatever the input. */
    for (uint64_t i = 0; i < f->n; i++) f->by_name[i] = (uint32_t)i;
    for (uint64_t width = 1; width < f->n; width *= 2) {
        uint32_t *tmp = qfmt__malloc_array(&f->al, f->n, sizeof *tmp);
        if (!tmp) return sfail(f, err, QFMT_E_NOMEM, NULL, QFMT_NO_OFFSET, "out of memory");
        for (uint64_t lo = 0; lo < f->n; lo += 2 * width) {
            uint64_t mid = lo + width < f->n ? lo + width : f->n;
            uint64_t hi = lo + 2 * width < f->n ? lo + 2 * width : f->n;
            uint64_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi)
                tmp[k++] = strcmp(f->t[f->by_name[a]].name, f->t[f->by_name[b]].name) <= 0
                               ? f->by_name[a++] : f->by_name[b++];
            while (a < mid) tmp[k++] = f->by_name[a++];
            while (b < hi) tmp[k++] = f->by_name[b++];
        }
        memcpy(f->by_name, tmp, (size_t)f->n * sizeof *tmp);
        qfmt__free(&f->al, tmp);
    }
    for (uint64_t i = 1; i < f->n; i++)
        if (strcmp(f->t[f->by_name[i - 1]].name, f->t[f->by_name[i]].name) == 0)
            return sfail(f, err, QFMT_E_CORRUPT, f->t[f->by_name[i]].name, 8,
                         "tensor name appears more than once in the header");
    return QFMT_OK;
}

static qfmt_st_file *new_file(const qfmt_allocator *alloc, const char *path)
{
    qfmt__alloc al;
    qfmt__alloc_init(&al, alloc);
    qfmt_st_file *f = qfmt__malloc(&al, sizeof *f);
    if (!f) return NULL;
    memset(f, 0, sizeof *f);
    f->al = al;
    f->path = qfmt__strndup(&al, path, strlen(path));
    if (!f->path) {
        qfmt__free(&al, f);
        return NULL;
    }
    return f;
}

qfmt_status qfmt_st_open_memory(qfmt_st_file **out, const void *data, size_t size,
                                const qfmt_allocator *alloc, qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!out || (!data && size)) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    *out = NULL;
    qfmt_st_file *f = new_file(alloc, "");
    if (!f) return qfmt__fail(err, QFMT_E_NOMEM, 0, NULL, NULL, QFMT_NO_OFFSET, "out of memory");
    f->base = data;
    f->size = size;
    qfmt_status s = parse(f, err);
    if (s != QFMT_OK) {
        qfmt_st_close(f);
        return s;
    }
    *out = f;
    return QFMT_OK;
}

qfmt_status qfmt_st_open(qfmt_st_file **out, const char *path, const qfmt_allocator *alloc,
                         qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!out || !path) return qfmt__fail(err, QFMT_E_ARG, 0, path, NULL, QFMT_NO_OFFSET, "NULL argument");
    *out = NULL;
    qfmt_st_file *f = new_file(alloc, path);
    if (!f) return qfmt__fail(err, QFMT_E_NOMEM, 0, path, NULL, QFMT_NO_OFFSET, "out of memory");
    const char *what = "";
    int e = qfmt__map_file(path, &f->base, &f->size, &f->mapped, &what);
    if (e) {
        qfmt_status s = qfmt__open_fail(err, path, e, what);
        qfmt_st_close(f);
        return s;
    }
    qfmt_status s = parse(f, err);
    if (s != QFMT_OK) {
        qfmt_st_close(f);
        return s;
    }
    *out = f;
    return QFMT_OK;
}

void qfmt_st_close(qfmt_st_file *f)
{
    if (!f) return;
    qfmt__alloc al = f->al;
    qfmt__unmap_file(f->base, f->size, f->mapped);
    for (uint64_t i = 0; i < f->n; i++) qfmt__free(&al, f->t[i].name);
    for (uint64_t i = 0; i < f->nmeta; i++) {
        qfmt__free(&al, f->meta[i].key);
        qfmt__free(&al, f->meta[i].value);
    }
    qfmt__free(&al, f->t);
    qfmt__free(&al, f->meta);
    qfmt__free(&al, f->by_name);
    qfmt__free(&al, f->path);
    qfmt__free(&al, f);
}

uint64_t qfmt_st_count(const qfmt_st_file *f) { return f ? f->n : 0; }
uint64_t qfmt_st_file_size(const qfmt_st_file *f) { return f ? f->size : 0; }

qfmt_status qfmt_st_get(const qfmt_st_file *f, uint64_t index, qfmt_st_tensor *out, qfmt_error *err)
{
    if (!f || !out) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    if (index >= f->n)
        return sfail(f, err, QFMT_E_RANGE, NULL, QFMT_NO_OFFSET, "tensor index %" PRIu64 " out of range", index);
    const st_entry *e = &f->t[index];
    memset(out, 0, sizeof *out);
    out->name = e->name;
    out->dtype = e->dtype;
    out->type = e->type;
    out->ndim = e->ndim;
    memcpy(out->dims, e->dims, sizeof out->dims);
    out->nelements = e->nelements;
    out->offset = f->data_start + e->begin;
    out->data = f->base + out->offset;
    out->size = e->end - e->begin;
    return QFMT_OK;
}

qfmt_status qfmt_st_find(const qfmt_st_file *f, const char *name, uint64_t *index, qfmt_error *err)
{
    if (!f || !name) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    uint64_t lo = 0, hi = f->n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->t[f->by_name[mid]].name, name);
        if (c == 0) {
            if (index) *index = f->by_name[mid];
            return QFMT_OK;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return sfail(f, err, QFMT_E_NOT_FOUND, name, QFMT_NO_OFFSET, "no such tensor");
}

void qfmt_st_release(const qfmt_st_file *f, uint64_t index)
{
    if (!f || !f->mapped || index >= f->n) return;
    const st_entry *e = &f->t[index];
    qfmt__release_pages(f->base + f->data_start + e->begin, e->end - e->begin);
}

const char *qfmt_st_metadata(const qfmt_st_file *f, const char *key)
{
    if (!f || !key) return NULL;
    for (uint64_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}
