/*
 * gguf_export.c - qfmt_export_gguf: a qfmt model file to a llama.cpp GGUF file. The tensor
 * table (llama.cpp's names, ggml types, ne) and the kv pairs go out first; then each tensor's
 * bytes are streamed, one tensor in memory at a time: read (a view of the mapping, or decoded
 * when zstd-compressed), checksum-verified, put in llama.cpp's layout (the llama architecture's
 * q/k rows permuted, Gemma's norms as 1 + w, 1-D f16/bf16 tensors widened to f32, an untransposed
 * GPT-2 Conv1D weight transposed) and written. The tokenizer keys come from
 * qfmt_tokenizer_to_gguf, written to an in-memory GGUF first so that the token list can be padded
 * to the embedding's rows as convert_hf_to_gguf.py pads it.
 */
#define _POSIX_C_SOURCE 200809L
#define QFMT_STATIC_LINKING_ONLY /* qfmt_gguf_writer_create_io: the in-memory tokenizer GGUF */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "convert_policy.h"
#include "gguf_model.h"
#include "model_internal.h"
#include "transposed.h"

typedef struct {
    uint64_t index;       /* qfmt tensor */
    char gguf[64];        /* llama.cpp's name */
    uint32_t src_type;    /* as stored in the qfmt file */
    uint32_t type;        /* as written */
    uint32_t ndim;
    uint64_t ne[QFMT_GGUF_MAX_DIMS];
    uint64_t size;        /* bytes written */
    uint64_t permute;     /* heads, or 0 */
    bool transpose;       /* an untransposed GPT-2 Conv1D weight ([in, out]) */
    bool shift;           /* Gemma norm: written as 1 + w */
    bool linear;          /* a linear layer's weight (general.file_type) */
} out_tensor;

static bool is_float(uint32_t t) { return t == QFMT_TYPE_F32 || t == QFMT_TYPE_F16 || t == QFMT_TYPE_BF16; }

static bool grow(void **buf, size_t *cap, uint64_t n)
{
    if (n <= *cap) return true;
    if (n > SIZE_MAX) return false;
    free(*buf);
    *buf = malloc(n ? (size_t)n : 1);
    *cap = *buf ? (size_t)n : 0;
    return *buf != NULL;
}

/* ---- An in-memory GGUF (the tokenizer keys, before they are copied) ------------------------ */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} mem_file;

enum { MEM_FD = 1000, MEM_DIR_FD = 1001 };

static int mem_open(void *ctx, const char *path, int flags, mode_t mode)
{
    (void)ctx, (void)path, (void)mode;
    return (flags & O_DIRECTORY) ? MEM_DIR_FD : MEM_FD;
}
static ssize_t mem_write(void *ctx, int fd, const void *p, size_t n)
{
    mem_file *m = ctx;
    if (fd != MEM_FD) return errno = EBADF, -1;
    if (m->len + n > m->cap) {
        size_t nc = m->cap ? m->cap : 1 << 16;
        while (nc < m->len + n) {
            if (nc > SIZE_MAX / 2) return errno = ENOMEM, -1;
            nc *= 2;
        }
        uint8_t *b = realloc(m->buf, nc);
        if (!b) return errno = ENOMEM, -1;
        m->buf = b;
        m->cap = nc;
    }
    memcpy(m->buf + m->len, p, n);
    m->len += n;
    return (ssize_t)n;
}
static int mem_ok(void *ctx, int fd) { return (void)ctx, (void)fd, 0; }
static int mem_rename(void *ctx, const char *a, const char *b) { return (void)ctx, (void)a, (void)b, 0; }
static int mem_unlink(void *ctx, const char *p) { return (void)ctx, (void)p, 0; }

/* ---- Copying kv pairs ----------------------------------------------------------------------- */

static uint32_t gguf_type_of_meta(uint32_t mt)
{
    switch (mt) {
    case QFMT_META_U8: return QFMT_GGUF_UINT8;
    case QFMT_META_I8: return QFMT_GGUF_INT8;
    case QFMT_META_U16: return QFMT_GGUF_UINT16;
    case QFMT_META_I16: return QFMT_GGUF_INT16;
    case QFMT_META_U32: return QFMT_GGUF_UINT32;
    case QFMT_META_I32: return QFMT_GGUF_INT32;
    case QFMT_META_U64: return QFMT_GGUF_UINT64;
    case QFMT_META_I64: return QFMT_GGUF_INT64;
    case QFMT_META_F32: return QFMT_GGUF_FLOAT32;
    case QFMT_META_F64: return QFMT_GGUF_FLOAT64;
    case QFMT_META_BOOL: return QFMT_GGUF_BOOL;
    case QFMT_META_STRING: return QFMT_GGUF_STRING;
    default: return UINT32_MAX;
    }
}

/* Element size in bytes of a fixed-size GGUF type; 0 for others. */
static size_t gguf_width(uint32_t t)
{
    static const size_t w[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < sizeof w / sizeof w[0] ? w[t] : 0;
}

/* A native scalar of GGUF type t from little-endian bytes (this library's GGUF reader and writer
 * are little-endian; so are the hosts it builds for). */
static void native_scalar(uint32_t t, const uint8_t *d, void *out)
{
    memcpy(out, d, gguf_width(t));
    if (t == QFMT_GGUF_BOOL) *(bool *)out = d[0] != 0;
}

/* metadata `key` of r (a source.gguf.* key) as GGUF key `gkey`. QFMT_E_EXISTS: already set. */
static qfmt_status copy_meta(const qfmt_reader *r, uint64_t idx, qfmt_gguf_writer *w, const char *gkey, qfmt_error *err)
{
    const char *key;
    qfmt_value v;
    qfmt_status s = qfmt_meta_get_entry(r, idx, &key, &v, err);
    if (s != QFMT_OK) return s;
    if (v.type == QFMT_META_STRING) return qfmt_gguf_writer_set_str(w, gkey, v.v.str.ptr, (size_t)v.v.str.len, err);
    if (v.type != QFMT_META_ARRAY) {
        uint32_t gt = gguf_type_of_meta(v.type);
        if (gt == UINT32_MAX) return QFMT_OK;
        union {
            uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; uint64_t u64; int64_t i64;
            float f32; double f64; bool b;
        } n;
        switch (v.type) {
        case QFMT_META_U8: n.u8 = (uint8_t)v.v.u; break;
        case QFMT_META_U16: n.u16 = (uint16_t)v.v.u; break;
        case QFMT_META_U32: n.u32 = (uint32_t)v.v.u; break;
        case QFMT_META_U64: n.u64 = v.v.u; break;
        case QFMT_META_I8: n.i8 = (int8_t)v.v.i; break;
        case QFMT_META_I16: n.i16 = (int16_t)v.v.i; break;
        case QFMT_META_I32: n.i32 = (int32_t)v.v.i; break;
        case QFMT_META_I64: n.i64 = v.v.i; break;
        case QFMT_META_F32: n.f32 = (float)v.v.f; break;
        case QFMT_META_F64: n.f64 = v.v.f; break;
        default: n.b = v.v.u != 0; break;
        }
        return qfmt_gguf_writer_set_value(w, gkey, gt, &n, err);
    }
    uint64_t count = v.v.arr.count;
    if (v.v.arr.elem_type == QFMT_META_STRING) {
        if ((s = qfmt_meta_get_string_array(r, key, &count, err)) != QFMT_OK) return s;
        const char **sv = calloc((size_t)(count ? count : 1), sizeof *sv);
        size_t *lv = calloc((size_t)(count ? count : 1), sizeof *lv);
        if (!sv || !lv) s = QFMT__FAIL(err, QFMT_E_NOMEM, qfmt_reader_path(r), NULL, "%s", "out of memory");
        for (uint64_t i = 0; s == QFMT_OK && i < count; i++) {
            uint64_t len;
            s = qfmt_meta_string_array_get(r, key, i, &sv[i], &len, err);
            lv[i] = (size_t)len;
        }
        if (s == QFMT_OK) s = qfmt_gguf_writer_set_str_array(w, gkey, sv, lv, count, err);
        free(sv);
        free(lv);
        return s;
    }
    uint32_t gt = gguf_type_of_meta(v.v.arr.elem_type);
    size_t width = gt == UINT32_MAX ? 0 : gguf_width(gt);
    if (!width || count > (1ull << 30) / width) return QFMT_OK;
    void *buf = malloc((size_t)(count ? count * width : 1));
    if (!buf) return QFMT__FAIL(err, QFMT_E_NOMEM, qfmt_reader_path(r), NULL, "%s", "out of memory");
    s = qfmt_meta_array_copy(r, key, v.v.arr.elem_type, buf, count, err);
    if (s == QFMT_OK) s = qfmt_gguf_writer_set_array(w, gkey, gt, buf, count, err);
    free(buf);
    return s;
}

/* kv pair i of g to w; the token arrays padded to `rows` entries ([PAD<i>], unused, -10000). */
static qfmt_status copy_kv(const qfmt_gguf *g, uint64_t i, qfmt_gguf_writer *w, uint64_t rows, const char *path,
                           qfmt_error *err)
{
    qfmt_gguf_kv kv;
    qfmt_status s = qfmt_gguf_kv_get(g, i, &kv, err);
    if (s != QFMT_OK) return s;
    if (kv.type == QFMT_GGUF_STRING) return qfmt_gguf_writer_set_str(w, kv.key, (const char *)kv.data, (size_t)kv.count, err);
    if (kv.type != QFMT_GGUF_ARRAY) {
        union {
            uint64_t u;
            double f;
            bool b;
        } n;
        native_scalar(kv.type, kv.data, &n);
        return qfmt_gguf_writer_set_value(w, kv.key, kv.type, &n, err);
    }
    bool tokens = strcmp(kv.key, "tokenizer.ggml.tokens") == 0;
    bool types = strcmp(kv.key, "tokenizer.ggml.token_type") == 0, scores = strcmp(kv.key, "tokenizer.ggml.scores") == 0;
    uint64_t n = kv.count, total = (tokens || types || scores) && rows > n ? rows : n;
    if ((tokens || types || scores) && n > rows)
        return QFMT__FAIL(err, QFMT_E_CORRUPT, path, "token_embd.weight",
                          "the tokenizer has %llu tokens, more than the embedding's %llu rows", (unsigned long long)n,
                          (unsigned long long)rows);
    if (kv.elem_type == QFMT_GGUF_STRING) {
        const char **sv = calloc((size_t)(total ? total : 1), sizeof *sv);
        size_t *lv = calloc((size_t)(total ? total : 1), sizeof *lv);
        char *pads = total > n ? malloc((size_t)(total - n) * 24) : NULL;
        if (!sv || !lv || (total > n && !pads)) s = QFMT__FAIL(err, QFMT_E_NOMEM, path, NULL, "%s", "out of memory");
        for (uint64_t k = 0; s == QFMT_OK && k < n; k++) s = qfmt_gguf_array_str(g, kv.key, k, &sv[k], &lv[k], err);
        for (uint64_t k = n; s == QFMT_OK && k < total; k++) {
            char *p = pads + (k - n) * 24;
            lv[k] = (size_t)snprintf(p, 24, "[PAD%llu]", (unsigned long long)k);
            sv[k] = p;
        }
        if (s == QFMT_OK) s = qfmt_gguf_writer_set_str_array(w, kv.key, sv, lv, total, err);
        free(sv);
        free(lv);
        free(pads);
        return s;
    }
    size_t width = gguf_width(kv.elem_type);
    if (!width) return QFMT_OK;
    uint8_t *buf = malloc((size_t)(total ? total * width : 1));
    if (!buf) return QFMT__FAIL(err, QFMT_E_NOMEM, path, NULL, "%s", "out of memory");
    memcpy(buf, kv.data, (size_t)(n * width));
    for (uint64_t k = n; k < total; k++) {
        if (types && width == 4) {
            int32_t u = 5; /* UNUSED */
            memcpy(buf + k * 4, &u, 4);
        } else if (scores && kv.elem_type == QFMT_GGUF_FLOAT32) {
            float f = -10000.0f;
            memcpy(buf + k * 4, &f, 4);
        } else {
            memset(buf + k * width, 0, width);
        }
    }
    if (kv.elem_type == QFMT_GGUF_BOOL) /* native bools */
        for (uint64_t k = 0; k < total; k++) buf[k] = buf[k] != 0;
    s = qfmt_gguf_writer_set_array(w, kv.key, kv.elem_type, buf, total, err);
    free(buf);
    return s;
}

/* ---- The tokenizer ------------------------------------------------------------------------------ */

static int64_t id_of(const qfmt_reader *r, const char *key)
{
    uint64_t v;
    return qfmt_meta_get_u64(r, key, &v, NULL) == QFMT_OK && v <= INT64_MAX ? (int64_t)v : -1;
}

/* The tokenizer.ggml.* keys for the embedded tokenizer.json, in an in-memory GGUF (*tg, over
 * mf's bytes); *tg NULL when the file has no tokenizer. */
static qfmt_status stage_tokenizer(const qfmt_reader *r, mem_file *mf, qfmt_gguf **tg, qfmt_error *err)
{
    *tg = NULL;
    const char *json;
    uint64_t len;
    if (qfmt_meta_get_string(r, "tokenizer.huggingface.json", &json, &len, NULL) != QFMT_OK) return QFMT_OK;
    qfmt_io io = {mem_open, mem_write, mem_ok, mem_ok, mem_rename, mem_unlink, mf};
    qfmt_gguf_writer *tw = NULL;
    qfmt_status s = qfmt_gguf_writer_create_io(&tw, "tokenizer.gguf", NULL, &io, err);
    qfmt_gguf_special_ids ids;
    memset(&ids, 0, sizeof ids);
    ids.bos = id_of(r, "model.bos_token_id");
    ids.eos = id_of(r, "model.eos_token_id");
    ids.pad = id_of(r, "model.pad_token_id");
    ids.unk = -1;
    if (s == QFMT_OK) s = qfmt_tokenizer_to_gguf(json, (size_t)len, &ids, tw, err);
    if (s == QFMT_OK) s = qfmt_gguf_writer_commit(tw, err);
    qfmt_gguf_writer_free(tw);
    if (s == QFMT_OK) s = qfmt_gguf_open_memory(tg, mf->buf, mf->len, err);
    if (s != QFMT_OK && err && !err->path[0]) snprintf(err->path, sizeof err->path, "%s", qfmt_reader_path(r));
    return s;
}

/* Whether the staged token list holds `token`. */
static bool has_token(const qfmt_gguf *tg, const char *token)
{
    uint32_t et;
    uint64_t n;
    if (!tg || qfmt_gguf_get_array(tg, "tokenizer.ggml.tokens", &et, &n, NULL) != QFMT_OK) return false;
    size_t tl = strlen(token);
    for (uint64_t i = 0; i < n; i++) {
        const char *p;
        size_t len;
        if (qfmt_gguf_array_str(tg, "tokenizer.ggml.tokens", i, &p, &len, NULL) == QFMT_OK && len == tl && memcmp(p, token, tl) == 0)
            return true;
    }
    return false;
}

/* llama.cpp sets token attributes by general.name: a name holding "phi3" or "phi-3" makes its
 * vocabulary look up </s>, <unk>, <s> and <|endoftext|>, and fail to load without them. */
static bool name_trips_llama_cpp(const char *name, size_t len, const qfmt_gguf *tg)
{
    char low[256];
    size_t n = len < sizeof low - 1 ? len : sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    low[n] = '\0';
    if (!strstr(low, "phi3") && !strstr(low, "phi-3")) return false;
    static const char *const need[] = {"</s>", "<unk>", "<s>", "<|endoftext|>"};
    for (size_t k = 0; k < 4; k++)
        if (!has_token(tg, need[k])) return true;
    return false;
}

/* ---- The export ----------------------------------------------------------------------------- */

static void note(const qfmt_export_opts *o, const char *tensor, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(const qfmt_export_opts *o, const char *tensor, const char *fmt, ...)
{
    if (!o->note) return;
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    o->note(o->ctx, tensor, msg);
}

/* general.name when the file has none: its file name up to the first dot, words capitalised
 * ("llama-kjv.q8_0.qfmt" -> "Llama Kjv"), as convert_hf_to_gguf.py names a model after its
 * directory. */
static void default_name(const char *path, char *out, size_t cap)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    const char *dot = strchr(b, '.'); /* "llama-kjv.q8_0.qfmt" -> "llama-kjv" */
    if (dot && dot != b) n = (size_t)(dot - b);
    size_t k = 0;
    bool start = true;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        char ch = b[i];
        if (ch == '-' || ch == '_' || ch == ' ') {
            out[k++] = ' ';
            start = true;
            continue;
        }
        out[k++] = start && ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
        start = false;
    }
    out[k] = '\0';
    if (!k) snprintf(out, cap, "model");
}

static bool valid_opts(const qfmt_export_opts *o)
{
    for (size_t k = 0; k < sizeof o->reserved / sizeof o->reserved[0]; k++)
        if (o->reserved[k]) return false;
    return (o->z_types == QFMT_EXPORT_Z_REFUSE || o->z_types == QFMT_EXPORT_Z_REQUANTIZE) &&
           (o->quality == QFMT_QUALITY_REFERENCE || o->quality == QFMT_QUALITY_BEST);
}

/* Tensor p's bytes as written, into bufs; *out points to them. */
static qfmt_status produce(const qfmt_reader *r, const qfmt_export_opts *o, const out_tensor *p, void **bufs, size_t *caps,
                           const void **out, qfmt_error *err)
{
    const char *path = qfmt_reader_path(r);
    qfmt_tensor_info ti;
    qfmt_status s = qfmt_tensor_get_info(r, p->index, &ti, err);
    if (s != QFMT_OK) return s;
    const void *data;
    uint64_t size;
    if (ti.codec == QFMT_CODEC_NONE) {
        if ((s = qfmt_tensor_verify(r, p->index, err)) != QFMT_OK) return s;
        if ((s = qfmt_tensor_view(r, p->index, &data, &size, err)) != QFMT_OK) return s;
    } else {
        if (!grow(&bufs[0], &caps[0], ti.raw_size)) return QFMT__FAIL(err, QFMT_E_NOMEM, path, ti.name, "%s", "out of memory");
        if ((s = qfmt_tensor_read(r, p->index, bufs[0], ti.raw_size, true, err)) != QFMT_OK) return s;
        data = bufs[0];
        size = ti.raw_size;
    }
    int cur = 1; /* the next free buffer: 1, 2, 1, ... (bufs[0] may hold the source) */
#define NEXT(n)                                                                                    \
    do {                                                                                           \
        if (!grow(&bufs[cur], &caps[cur], (n))) return QFMT__FAIL(err, QFMT_E_NOMEM, path, ti.name, "%s", "out of memory"); \
    } while (0)
    uint64_t cols = ti.ndim ? ti.dims[ti.ndim - 1] : 1, rows = cols ? ti.nelements / cols : 0;
    if (p->transpose) { /* 2-D: rows x cols = [in, out] */
        const qfmt_type_traits *tr = qfmt_type_get_traits(ti.type);
        NEXT(size);
        qfmt__transpose(data, bufs[cur], rows, cols, tr->block_bytes);
        data = bufs[cur];
        cur = 3 - cur;
        uint64_t t = rows;
        rows = cols, cols = t;
    }
    if (p->type != ti.type && !p->shift && !(is_float(ti.type) && p->type == QFMT_TYPE_F32)) { /* q8_z / q4_z */
        NEXT(ti.nelements * sizeof(float));
        float *f = bufs[cur];
        cur = 3 - cur;
        if ((s = qfmt_dequantize(QFMT_TYPE_F32, f, ti.nelements * sizeof(float), ti.type, data, rows, cols, NULL, err)) != QFMT_OK)
            return s;
        NEXT(p->size);
        qfmt_quant_opts qo = QFMT_QUANT_OPTS_INIT;
        qo.threads = o->threads ? o->threads : 1;
        qo.quality = o->quality;
        if ((s = qfmt_quantize(p->type, bufs[cur], p->size, QFMT_TYPE_F32, f, rows, cols, &qo, err)) != QFMT_OK) {
            if (err && !err->tensor[0]) snprintf(err->tensor, sizeof err->tensor, "%.127s", ti.name);
            return s;
        }
        data = bufs[cur];
        cur = 3 - cur;
    }
    if (p->shift || (p->type == QFMT_TYPE_F32 && ti.type != QFMT_TYPE_F32)) { /* to f32: widened, Gemma's 1 + w */
        NEXT(ti.nelements * sizeof(float));
        float *f = bufs[cur];
        cur = 3 - cur;
        if (ti.type == QFMT_TYPE_F32) memcpy(f, data, (size_t)ti.nelements * sizeof *f);
        else if ((s = qfmt_convert_floats(ti.type, data, QFMT_TYPE_F32, f, (size_t)ti.nelements)) != QFMT_OK)
            return QFMT__FAIL(err, s, path, ti.name, "%s", "cannot decode");
        if (p->shift)
            for (uint64_t k = 0; k < ti.nelements; k++) f[k] += 1.0f;
        data = f;
    }
    if (p->permute) {
        uint64_t prow = p->ndim == 1 ? p->ne[0] : p->ne[1];
        NEXT(p->size);
        qfmt__gguf_permute_rows(data, bufs[cur], prow, p->size / prow, p->permute, true);
        data = bufs[cur];
    }
#undef NEXT
    *out = data;
    return QFMT_OK;
}

qfmt_status qfmt_export_gguf(const qfmt_reader *r, const char *out, const qfmt_export_opts *opts, qfmt_error *err)
{
    qfmt_export_opts defaults = QFMT_EXPORT_OPTS_INIT;
    const qfmt_export_opts *o = opts ? opts : &defaults;
    if (!r || !out || !valid_opts(o)) return QFMT__FAIL(err, QFMT_E_ARG, out, NULL, "%s", "invalid arguments to qfmt_export_gguf");
    const char *path = qfmt_reader_path(r);
    qfmt__gguf_model m;
    qfmt_status s = qfmt__gguf_export_model(r, &m, err);
    if (s != QFMT_OK) return s;
    qfmt__transposed tr = {NULL, 0};
    if (qfmt__transposed_load(r, &tr, err) != 0) return err ? err->code : QFMT_E_CORRUPT;
    uint64_t nt = qfmt_tensor_count(r);
    out_tensor *t = calloc((size_t)(nt ? nt : 1), sizeof *t);
    size_t n = 0;
    qfmt_gguf_writer *w = NULL;
    qfmt__gguf_extras x;
    memset(&x, 0, sizeof x);
    void *bufs[3] = {NULL, NULL, NULL};
    size_t caps[3] = {0, 0, 0};
    uint64_t linear_elems[256] = {0};
    if (!t) {
        s = QFMT__FAIL(err, QFMT_E_NOMEM, path, NULL, "%s", "out of memory");
        goto out;
    }
    /* The plan: every tensor's name, type and shape, before anything is written. */
    uint64_t emb_rows = 0;
    for (uint64_t i = 0; i < nt; i++) {
        qfmt_tensor_info ti;
        if ((s = qfmt_tensor_get_info(r, i, &ti, err)) != QFMT_OK) goto out;
        out_tensor *p = &t[n];
        memset(p, 0, sizeof *p);
        if (qfmt_family_gguf_name(m.fam, ti.name, p->gguf, sizeof p->gguf) != QFMT_OK) {
            note(o, ti.name, "left out: llama.cpp's %s has no such tensor", m.arch);
            continue;
        }
        const qfmt_type_traits *tt = qfmt_type_get_traits(ti.type);
        if (!tt) {
            s = QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, ti.name, "tensor type %u is not one qfmt knows", ti.type);
            goto out;
        }
        if (ti.ndim > QFMT_GGUF_MAX_DIMS) {
            s = QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, ti.name, "%u dimensions (GGUF holds at most 4)", ti.ndim);
            goto out;
        }
        p->index = i;
        p->src_type = p->type = ti.type;
        p->ndim = ti.ndim ? ti.ndim : 1;
        for (uint32_t k = 0; k < QFMT_GGUF_MAX_DIMS; k++) p->ne[k] = 1;
        for (uint32_t k = 0; k < ti.ndim; k++) p->ne[k] = ti.dims[ti.ndim - 1 - k];
        unsigned role = qfmt_family_tensor_role(m.fam, ti.name);
        p->linear = (role & QFMT_FAMILY_QUANTIZE) != 0;
        if ((role & QFMT_FAMILY_CONV1D) && ti.ndim == 2 && !qfmt__transposed_has(&tr, ti.name)) {
            if (!is_float(ti.type)) {
                s = QFMT__FAIL(err, QFMT_E_CORRUPT, path, ti.name, "%s",
                               "a block-quantized Conv1D weight not listed in convert.transposed");
                goto out;
            }
            p->transpose = true; /* [in, out] -> llama.cpp's [out, in] */
            uint64_t e = p->ne[0];
            p->ne[0] = p->ne[1], p->ne[1] = e;
        }
        if (ti.type == QFMT_TYPE_Q8_Z || ti.type == QFMT_TYPE_Q4_Z) {
            if (o->z_types != QFMT_EXPORT_Z_REQUANTIZE) {
                s = QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, ti.name,
                               "type %s has no ggml equivalent (export with requantization: q8_z as q8_0, q4_z as q4_1)", tt->name);
                goto out;
            }
            p->type = ti.type == QFMT_TYPE_Q8_Z ? QFMT_TYPE_Q8_0 : QFMT_TYPE_Q4_1;
            note(o, ti.name, "%s re-encoded as %s", tt->name, qfmt_type_get_traits(p->type)->name);
        } else if (ti.type >= 256) {
            s = QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, ti.name, "type %s has no GGUF form", tt->name);
            goto out;
        }
        p->shift = qfmt__gguf_shifted_norm(&m, ti.name);
        if (p->shift && !is_float(ti.type)) {
            s = QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, ti.name, "a Gemma norm of type %s (f32, f16 or bf16 expected)", tt->name);
            goto out;
        }
        /* convert_hf_to_gguf.py keeps these in f32: 1-D tensors, biases, position and token-type
         * embeddings (llama.cpp's BERT adds the token-type row as it is, in f32) */
        size_t gl = strlen(p->gguf);
        bool f32_only = ti.ndim <= 1 || strcmp(p->gguf, "position_embd.weight") == 0 || strcmp(p->gguf, "token_types.weight") == 0 ||
                        gl < 7 || strcmp(p->gguf + gl - 7, ".weight") != 0;
        if (p->shift || (f32_only && (ti.type == QFMT_TYPE_F16 || ti.type == QFMT_TYPE_BF16))) p->type = QFMT_TYPE_F32;
        uint64_t prow = p->ndim == 1 ? p->ne[0] : p->ne[1];
        p->permute = prow ? qfmt__gguf_permute_heads(&m, ti.name) : 0; /* an empty tensor has no rows to move */
        if (p->permute && (p->ndim > 2 || prow % (2 * p->permute) != 0)) {
            s = QFMT__FAIL(err, QFMT_E_CORRUPT, path, ti.name, "%llu rows do not split into %llu heads of an even width",
                           (unsigned long long)prow, (unsigned long long)p->permute);
            goto out;
        }
        uint64_t elems = ti.nelements;
        if ((s = qfmt_type_size(p->type, elems, &p->size)) != QFMT_OK) {
            s = QFMT__FAIL(err, s, path, ti.name, "%s", "its size cannot be computed");
            goto out;
        }
        if (strcmp(p->gguf, "token_embd.weight") == 0) emb_rows = p->ne[1];
        if (p->linear && p->type < 256) linear_elems[p->type] += elems;
        n++;
    }
    if (emb_rows != m.vocab) {
        s = QFMT__FAIL(err, QFMT_E_CORRUPT, path, NULL, "the token embedding has %llu rows, model.vocab_size is %llu",
                       (unsigned long long)emb_rows, (unsigned long long)m.vocab);
        goto out;
    }
    if ((s = qfmt_gguf_writer_create(&w, out, err)) != QFMT_OK) goto out;
    if (o->temp_file) o->temp_file(o->ctx, qfmt_gguf_writer_temp_path(w));

    /* kv pairs: general.*, llama.cpp's {arch}.*, the tokenizer, then what a GGUF import kept */
    static const char pre[] = "source.gguf.";
    const size_t plen = sizeof pre - 1;
    uint64_t nmeta = qfmt_meta_count(r);
    qfmt_error ignore;
    if ((s = qfmt_gguf_writer_set_str(w, "general.architecture", m.arch, strlen(m.arch), err)) != QFMT_OK) goto out;
    /* the general.* keys a GGUF import kept, in gguf-py's order (general.type and general.name
     * defaulted where absent), then any others */
    static const char *const order[] = {"general.type", "general.name", "general.author", "general.version",
                                        "general.organization", "general.finetune", "general.basename",
                                        "general.description", "general.quantized_by", "general.size_label",
                                        "general.license", "general.license.name", "general.license.link", "general.url",
                                        "general.doi", "general.uuid", "general.repo_url"};
    char name[128];
    default_name(path, name, sizeof name);
    mem_file mf = {NULL, 0, 0};
    qfmt_gguf *tg = NULL;
    if ((s = stage_tokenizer(r, &mf, &tg, err)) != QFMT_OK) goto out_tok;
    const char *kname;
    uint64_t kname_len;
    bool kept_name = qfmt_meta_get_string(r, "source.gguf.general.name", &kname, &kname_len, NULL) == QFMT_OK;
    bool skip_name = kept_name ? name_trips_llama_cpp(kname, (size_t)kname_len, tg) : name_trips_llama_cpp(name, strlen(name), tg);
    if (skip_name && o->warning) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s: general.name left out: llama.cpp gives a model named like Phi-3 the token attributes of "
                                  "Phi-3's tokenizer, which needs </s>, <unk>, <s> and <|endoftext|>",
                 path);
        o->warning(o->ctx, msg);
    }
    for (size_t k = 0; s == QFMT_OK && k < sizeof order / sizeof order[0]; k++) {
        char mk[96];
        uint64_t idx;
        if (k == 1 && skip_name) continue;
        snprintf(mk, sizeof mk, "%s%s", pre, order[k]);
        if (qfmt_meta_find(r, mk, &idx, NULL) == QFMT_OK) s = copy_meta(r, idx, w, order[k], err);
        else if (k == 0) s = qfmt_gguf_writer_set_str(w, "general.type", "model", 5, err);
        else if (k == 1) s = qfmt_gguf_writer_set_str(w, "general.name", name, strlen(name), err);
    }
    for (uint64_t i = 0; s == QFMT_OK && i < nmeta; i++) {
        const char *key;
        qfmt_value v;
        if ((s = qfmt_meta_get_entry(r, i, &key, &v, err)) != QFMT_OK) break;
        if (strncmp(key, pre, plen) != 0 || strncmp(key + plen, "general.", 8) != 0) continue;
        const char *gk = key + plen;
        if (strcmp(gk, "general.architecture") == 0 || strcmp(gk, "general.alignment") == 0 ||
            strcmp(gk, "general.file_type") == 0 || strcmp(gk, "general.quantization_version") == 0 ||
            (skip_name && strcmp(gk, "general.name") == 0))
            continue;
        s = copy_meta(r, i, w, gk, &ignore);
        if (s == QFMT_E_EXISTS) s = QFMT_OK; /* written above */
        else if (s != QFMT_OK && err) *err = ignore;
    }
    if (s == QFMT_OK) s = qfmt__gguf_export_meta(r, &m, w, &x, o->warning, o->ctx, err);
    bool tok = tg != NULL;
    uint64_t ntk = tg ? qfmt_gguf_kv_count(tg) : 0;
    for (uint64_t i = 0; s == QFMT_OK && i < ntk; i++) s = copy_kv(tg, i, w, m.vocab, path, err);
out_tok:
    qfmt_gguf_close(tg);
    free(mf.buf);
    if (s != QFMT_OK) goto out;
    bool kept_tok = false;
    for (uint64_t i = 0; !tok && s == QFMT_OK && i < nmeta; i++) { /* a tokenizer qfmt could not rebuild, as it was */
        const char *key;
        qfmt_value v;
        if ((s = qfmt_meta_get_entry(r, i, &key, &v, err)) != QFMT_OK) break;
        if (strncmp(key, pre, plen) != 0 || strncmp(key + plen, "tokenizer.ggml.", 15) != 0) continue;
        s = copy_meta(r, i, w, key + plen, err);
        kept_tok = true;
    }
    if (s != QFMT_OK) goto out;
    if (!tok && !kept_tok && o->warning) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s: no tokenizer.huggingface.json: the GGUF has no tokenizer.ggml.* keys", path);
        o->warning(o->ctx, msg);
    }
    uint64_t tv;
    if (m.fam == &qfmt__family_bert && qfmt_meta_get_u64(r, "model.type_vocab_size", &tv, NULL) == QFMT_OK && tv <= UINT32_MAX)
        qfmt_gguf_writer_set_u32(w, "tokenizer.ggml.token_type_count", (uint32_t)tv, &ignore);
    if ((s = qfmt_gguf_writer_set_u32(w, "general.quantization_version", 2, err)) != QFMT_OK) goto out;
    /* general.file_type: the mix's; else the type most linear-weight elements have (the kept
     * general.file_type when it says that type) */
    uint32_t dominant = UINT32_MAX, ft = UINT32_MAX;
    for (uint32_t k = 0; k < 256; k++)
        if (linear_elems[k] && (dominant == UINT32_MAX || linear_elems[k] > linear_elems[dominant])) dominant = k;
    const char *mix;
    uint64_t mlen;
    if (qfmt_meta_get_string(r, "convert.mix", &mix, &mlen, NULL) == QFMT_OK && mlen < 16) {
        char mb[16];
        memcpy(mb, mix, (size_t)mlen);
        mb[mlen] = '\0';
        ft = qfmt__gguf_ftype_of_mix(mb);
    }
    uint64_t kidx;
    qfmt_value kv;
    const char *kk;
    if (ft == UINT32_MAX && qfmt_meta_find(r, "source.gguf.general.file_type", &kidx, NULL) == QFMT_OK &&
        qfmt_meta_get_entry(r, kidx, &kk, &kv, NULL) == QFMT_OK && kv.type <= QFMT_META_I64 && kv.v.u < 1024 &&
        qfmt__gguf_ftype_type((uint32_t)kv.v.u) == dominant && dominant != UINT32_MAX)
        ft = (uint32_t)kv.v.u;
    if (ft == UINT32_MAX && dominant != UINT32_MAX) ft = qfmt__gguf_ftype_of_type(dominant);
    if (ft == UINT32_MAX) ft = 0; /* LLAMA_FTYPE_ALL_F32 */
    if ((s = qfmt_gguf_writer_set_u32(w, "general.file_type", ft, err)) != QFMT_OK) goto out;
    for (uint64_t i = 0; s == QFMT_OK && i < nmeta; i++) { /* the other kept keys, where nothing replaced them */
        const char *key;
        qfmt_value v;
        if ((s = qfmt_meta_get_entry(r, i, &key, &v, err)) != QFMT_OK) break;
        if (strncmp(key, pre, plen) != 0 || strncmp(key + plen, "general.", 8) == 0 ||
            strncmp(key + plen, "tokenizer.ggml.", 15) == 0)
            continue;
        s = copy_meta(r, i, w, key + plen, &ignore);
        if (s == QFMT_E_EXISTS) s = QFMT_OK;
        else if (s != QFMT_OK && err) *err = ignore;
    }
    if (s != QFMT_OK) goto out;

    /* the tensor table: llama.cpp's RoPE factors first (as convert_hf_to_gguf.py yields them) */
    for (size_t k = 0; s == QFMT_OK && k < x.nextra; k++) {
        uint64_t ne[1] = {x.extra[k].n};
        s = qfmt_gguf_writer_add_tensor(w, x.extra[k].name, QFMT_TYPE_F32, 1, ne, x.extra[k].data, x.extra[k].n * sizeof(float),
                                        err);
    }
    uint64_t total = 0, done = 0;
    for (size_t i = 0; s == QFMT_OK && i < n; i++) {
        s = qfmt_gguf_writer_add_tensor(w, t[i].gguf, t[i].type, t[i].ndim, t[i].ne, NULL, t[i].size, err);
        if (s != QFMT_OK && err && !err->tensor[0]) {
            qfmt_tensor_info ti;
            if (qfmt_tensor_get_info(r, t[i].index, &ti, NULL) == QFMT_OK) snprintf(err->tensor, sizeof err->tensor, "%.127s", ti.name);
        }
        total += t[i].size;
    }
    for (size_t i = 0; s == QFMT_OK && i < n; i++) {
        const void *data;
        if ((s = produce(r, o, &t[i], bufs, caps, &data, err)) != QFMT_OK) break;
        if ((s = qfmt_gguf_writer_write(w, data, (size_t)t[i].size, err)) != QFMT_OK) break;
        done += t[i].size;
        if (o->progress) o->progress(o->ctx, i + 1, n, done, total);
    }
    if (s == QFMT_OK) s = qfmt_gguf_writer_commit(w, err);
out:
    qfmt_gguf_writer_free(w);
    if (w && o->temp_file) o->temp_file(o->ctx, NULL);
    qfmt__gguf_extras_free(&x);
    for (int k = 0; k < 3; k++) free(bufs[k]);
    free(t);
    qfmt__transposed_free(&tr);
    return s;
}
