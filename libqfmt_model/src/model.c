/* Loading a model from a qfmt file: hyperparameters from model.* metadata, weights by their
 * Hugging Face names, every shape checked against the hyperparameters before use. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "family.h"
#include "gemm.h"
#include "model_internal.h"

int qfmt__merr(qfmt_error *err, qfmt_status code, const char *path, const char *tensor, const char *fmt, ...)
{
    if (err) {
        memset(err, 0, sizeof *err);
        err->code = code;
        err->offset = QFMT_NO_OFFSET;
        snprintf(err->path, sizeof err->path, "%s", path ? path : "");
        snprintf(err->tensor, sizeof err->tensor, "%s", tensor ? tensor : "");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* The caller's error, with the context of this file: e's message under r's path. */
static int from_reader(qfmt_error *err, const qfmt_reader *r, const char *tensor, const qfmt_error *e)
{
    if (err) {
        *err = *e;
        if (!err->path[0]) snprintf(err->path, sizeof err->path, "%s", qfmt_reader_path(r));
        if (!err->tensor[0] && tensor) snprintf(err->tensor, sizeof err->tensor, "%s", tensor);
    }
    return -1;
}

static void *own(qfmt_model *m, void *p)
{
    if (!p) return NULL;
    void **o = realloc(m->owned, (m->nowned + 1) * sizeof *o);
    if (!o) {
        free(p);
        return NULL;
    }
    m->owned = o;
    o[m->nowned++] = p;
    return p;
}

static int meta_u64(const qfmt_reader *r, const char *key, uint64_t *out, bool required, qfmt_error *err)
{
    qfmt_error e;
    qfmt_status s = qfmt_meta_get_u64(r, key, out, &e);
    if (s == QFMT_OK) return 0;
    if (s == QFMT_E_NOT_FOUND && !required) return 1;
    qfmt__merr(err, e.code, qfmt_reader_path(r), NULL, "metadata '%s': %s", key, e.message);
    return -1;
}

/* Finds a tensor under `name`, or, for checkpoints of the base model saved without the
 * family's prefix ("bert."), under the name without it. */
static int find(const qfmt_model *m, const char *name, uint64_t *idx)
{
    if (qfmt_tensor_find(m->r, name, idx, NULL) == QFMT_OK) return 0;
    const char *pre = m->hp.family ? m->hp.family->strip_prefix : NULL;
    size_t n = pre ? strlen(pre) : 0;
    if (n && strncmp(name, pre, n) == 0 && qfmt_tensor_find(m->r, name + n, idx, NULL) == QFMT_OK) return 0;
    return -1;
}

/* The stored bytes of a tensor: the mapped view, or a decoded copy owned by the model. */
static const uint8_t *tensor_bytes(qfmt_model *m, uint64_t idx, const qfmt_tensor_info *ti, qfmt_error *err)
{
    qfmt_error e;
    const void *p = NULL;
    if (ti->codec == QFMT_CODEC_NONE) {
        if (qfmt_tensor_view(m->r, idx, &p, NULL, &e) != QFMT_OK) {
            from_reader(err, m->r, ti->name, &e);
            return NULL;
        }
        return p;
    }
    uint8_t *buf = own(m, malloc(ti->raw_size ? ti->raw_size : 1));
    if (!buf) {
        qfmt__merr(err, QFMT_E_NOMEM, qfmt_reader_path(m->r), ti->name, "out of memory");
        return NULL;
    }
    if (qfmt_tensor_read(m->r, idx, buf, ti->raw_size, false, &e) != QFMT_OK) {
        from_reader(err, m->r, ti->name, &e);
        return NULL;
    }
    return buf;
}

static bool usable_type(uint32_t t)
{
    return qfmt_row_decoder(t) != NULL;
}

/* Memory for a repacked weight: 64-byte aligned; from 2 MiB on, 2 MiB-aligned and marked for
 * transparent huge pages where the system has them (generation streams it once per token:
 * 4 KiB pages would cost a TLB miss every 4 KiB). */
static void *pack_alloc(size_t n)
{
    const size_t huge = (size_t)1 << 21;
    if (n < huge) return aligned_alloc(64, (n + 63) / 64 * 64);
    if (n > SIZE_MAX - huge) return NULL;
    void *p = aligned_alloc(huge, (n + huge - 1) / huge * huge);
#ifdef MADV_HUGEPAGE
    if (p) madvise(p, (n + huge - 1) / huge * huge, MADV_HUGEPAGE); /* advice only: failure changes nothing */
#endif
    return p;
}

/* A [rows, cols] weight. conv1d: GPT-2 Conv1D, stored [cols, rows] by Hugging Face unless the
 * converter transposed it (convert.transposed); then transposed here into an f32 copy. */
int qfmt__load_matrix(qfmt_model *m, const char *name, uint64_t rows, uint64_t cols, bool conv1d, qmat *out,
                      qfmt_error *err)
{
    uint64_t idx;
    if (find(m, name, &idx) != 0)
        return qfmt__merr(err, QFMT_E_NOT_FOUND, qfmt_reader_path(m->r), name, "is missing");
    qfmt_tensor_info ti;
    qfmt_tensor_get_info(m->r, idx, &ti, NULL);
    bool flip = conv1d && !qfmt__transposed_has(&m->transposed, ti.name);
    uint64_t want0 = flip ? cols : rows, want1 = flip ? rows : cols;
    if (ti.ndim != 2 || ti.dims[0] != want0 || ti.dims[1] != want1)
    {
        char shape[160];
        return qfmt__merr(err, QFMT_E_CORRUPT, qfmt_reader_path(m->r), ti.name, "has shape %s, the model needs [%llu, %llu]",
                          qfmt__shape(&ti, shape, sizeof shape), (unsigned long long)want0, (unsigned long long)want1);
    }
    if (!usable_type(ti.type))
        return qfmt__merr(err, QFMT_E_UNSUPPORTED, qfmt_reader_path(m->r), ti.name,
                          "has type %u, which the model runtime cannot use", ti.type);
    const uint8_t *p = tensor_bytes(m, idx, &ti, err);
    if (!p) return -1;
    uint64_t rb;
    qfmt_type_size(ti.type, ti.dims[1], &rb);
    qmat w = {p, ti.type, ti.dims[0], ti.dims[1], (size_t)rb, NULL};
    if (flip) { /* decode [cols, rows] and transpose into an f32 [rows, cols] */
        if (qfmt_type_get_traits(ti.type)->block_elems != 1)
            return qfmt__merr(err, QFMT_E_UNSUPPORTED, qfmt_reader_path(m->r), ti.name,
                              "a block-quantized Conv1D weight must be stored [out, in]");
        /* w is [cols, rows] as stored: each decoded row holds `rows` floats */
        float *tmp = malloc(rows * sizeof *tmp), *t = own(m, malloc(rows * cols * sizeof *t));
        if (!tmp || !t) {
            free(tmp);
            return qfmt__merr(err, QFMT_E_NOMEM, qfmt_reader_path(m->r), ti.name, "out of memory");
        }
        for (uint64_t i = 0; i < cols; i++) {
            qfmt__qmat_row(&w, i, tmp);
            for (uint64_t j = 0; j < rows; j++) t[j * cols + i] = tmp[j];
        }
        free(tmp);
        w = (qmat){(const uint8_t *)t, QFMT_TYPE_F32, rows, cols, cols * sizeof(float), NULL};
    }
    size_t pack = flip ? 0 : qfmt__gemm_pack_size(&w);
    if (pack) { /* decoding reads the repacked copy; without memory for it, the rows */
        uint8_t *pk = own(m, pack_alloc(pack));
        if (pk) {
            qfmt__gemm_pack(&w, pk);
            w.pack = pk;
        }
    }
    *out = w;
    void *grown = realloc(m->weights, (m->nweights + 1) * sizeof *m->weights);
    if (!grown) return qfmt__merr(err, QFMT_E_NOMEM, qfmt_reader_path(m->r), ti.name, "out of memory");
    m->weights = grown;
    m->weights[m->nweights].w = out;
    m->weights[m->nweights].name = ti.name;
    m->weights[m->nweights].cols = cols;
    m->nweights++;
    return 0;
}

const char *qfmt__model_weight_name(const qfmt_model *m, const qmat *w)
{
    for (size_t i = 0; i < m->nweights; i++)
        if (m->weights[i].w == w) return m->weights[i].name;
    return NULL;
}

/* A 1-D tensor of n values decoded to an owned f32 copy; NULL *out when absent and optional. */
int qfmt__load_vector(qfmt_model *m, const char *name, uint64_t n, bool required, float **out, qfmt_error *err)
{
    *out = NULL;
    uint64_t idx;
    if (find(m, name, &idx) != 0)
        return required ? qfmt__merr(err, QFMT_E_NOT_FOUND, qfmt_reader_path(m->r), name, "is missing") : 0;
    qfmt_tensor_info ti;
    qfmt_tensor_get_info(m->r, idx, &ti, NULL);
    if (ti.ndim != 1 || ti.dims[0] != n)
    {
        char shape[160];
        return qfmt__merr(err, QFMT_E_CORRUPT, qfmt_reader_path(m->r), ti.name,
                          "has shape %s, the model needs a vector of %llu values", qfmt__shape(&ti, shape, sizeof shape),
                          (unsigned long long)n);
    }
    if (!usable_type(ti.type))
        return qfmt__merr(err, QFMT_E_UNSUPPORTED, qfmt_reader_path(m->r), ti.name,
                          "has type %u, which the model runtime cannot use", ti.type);
    const uint8_t *p = tensor_bytes(m, idx, &ti, err);
    float *v = own(m, malloc(n * sizeof *v + 1));
    if (!p || !v) return p ? qfmt__merr(err, QFMT_E_NOMEM, qfmt_reader_path(m->r), ti.name, "out of memory") : -1;
    qmat w = {p, ti.type, 1, n, 0, NULL};
    qfmt__qmat_row(&w, 0, v);
    *out = v;
    return 0;
}

static bool uses_dim(const qfmt_family *f, uint8_t dim)
{
    for (const qfmt__tensor_spec *t = f->model; t->name; t++)
        if (t->rows == dim || t->cols == dim) return true;
    for (const qfmt__tensor_spec *t = f->layer; t->name; t++)
        if (t->rows == dim || t->cols == dim) return true;
    return false;
}

/* Where a spec's tensor goes. */
static linear *slot_linear(qfmt_model *m, layer *L, uint8_t slot)
{
    switch (slot) {
    case QFMT__L_Q: return &L->q;
    case QFMT__L_K: return &L->k;
    case QFMT__L_V: return &L->v;
    case QFMT__L_O: return &L->o;
    case QFMT__L_GATE: return &L->gate;
    case QFMT__L_QKV: return &L->qkv;
    case QFMT__L_GATE_UP: return &L->gate_up;
    case QFMT__L_UP: return &L->up;
    case QFMT__L_DOWN: return &L->down;
    case QFMT__M_MLM_DENSE: return &m->mlm_dense;
    default: return NULL;
    }
}
static norm *slot_norm(qfmt_model *m, layer *L, uint8_t slot)
{
    switch (slot) {
    case QFMT__L_LN1: return &L->ln1;
    case QFMT__L_LN2: return &L->ln2;
    case QFMT__L_QNORM: return &L->qn;
    case QFMT__L_KNORM: return &L->kn;
    case QFMT__L_POST_ATTN: return &L->post_attn;
    case QFMT__L_POST_MLP: return &L->post_mlp;
    case QFMT__M_FINAL_NORM: return &m->final_norm;
    case QFMT__M_EMB_NORM: return &m->emb_norm;
    case QFMT__M_MLM_NORM: return &m->mlm_norm;
    default: return NULL;
    }
}
static qmat *slot_matrix(qfmt_model *m, uint8_t slot)
{
    switch (slot) {
    case QFMT__M_TOK: return &m->tok;
    case QFMT__M_POS: return &m->pos;
    case QFMT__M_TYPE: return &m->type;
    case QFMT__M_HEAD: return &m->head;
    default: return NULL;
    }
}

/* Loads the tensor(s) of one table row (layer index li for per-layer rows). */
static int load_spec(qfmt_model *m, const qfmt__tensor_spec *t, unsigned li, layer *L, qfmt_error *err)
{
    char base[256], name[272];
    snprintf(base, sizeof base, t->name, li);
    uint64_t rows = qfmt__dim_value(&m->hp, t->rows), cols = qfmt__dim_value(&m->hp, t->cols), idx;
    bool optional = (t->flags & QFMT__FT_OPTIONAL) != 0;
    snprintf(name, sizeof name, t->kind == QFMT__FT_VECTOR ? "%s" : "%s.weight", base);
    if (t->slot == QFMT__SLOT_NONE || (optional && find(m, name, &idx) != 0)) return 0;
    switch (t->kind) {
    case QFMT__FT_LINEAR: {
        linear *l = slot_linear(m, L, t->slot);
        if (qfmt__load_matrix(m, name, rows, cols, (t->flags & QFMT__FT_CONV1D) != 0, &l->w, err)) return -1;
        if (!(t->flags & (QFMT__FT_BIAS | QFMT__FT_BIAS_OPT))) return 0;
        snprintf(name, sizeof name, "%s.bias", base);
        return qfmt__load_vector(m, name, rows, (t->flags & QFMT__FT_BIAS) != 0, &l->b, err);
    }
    case QFMT__FT_NORM: {
        norm *n = slot_norm(m, L, t->slot);
        if (qfmt__load_vector(m, name, rows, true, &n->w, err)) return -1;
        if (m->hp.family->graph.norm == QFMT__NORM_RMS_1P) /* Gemma scales by (1 + w), in fp32 */
            for (uint64_t i = 0; i < rows; i++) n->w[i] = 1.0f + n->w[i];
        if (!(t->flags & QFMT__FT_BIAS)) return 0;
        snprintf(name, sizeof name, "%s.bias", base);
        return qfmt__load_vector(m, name, rows, true, &n->b, err);
    }
    case QFMT__FT_EMBED:
        if (qfmt__load_matrix(m, name, rows, cols, false, slot_matrix(m, t->slot), err)) return -1;
        if (t->slot == QFMT__M_TOK) m->head = m->tok; /* tied unless the family's head is stored */
        return 0;
    case QFMT__FT_VECTOR:
        return t->slot == QFMT__M_MLM_BIAS ? qfmt__load_vector(m, name, rows, true, &m->mlm_bias, err) : 0;
    default: return 0;
    }
}

static int load_tensors(qfmt_model *m, qfmt_error *err)
{
    const qfmt_model_hparams *h = &m->hp;
    m->layers = own(m, calloc(h->layers, sizeof *m->layers));
    if (!m->layers) return qfmt__merr(err, QFMT_E_NOMEM, qfmt_reader_path(m->r), NULL, "out of memory");
    for (uint64_t i = 0; i < h->layers; i++)
        for (const qfmt__tensor_spec *t = h->family->layer; t->name; t++)
            if (load_spec(m, t, (unsigned)i, &m->layers[i], err)) return -1;
    for (const qfmt__tensor_spec *t = h->family->model; t->name; t++)
        if (load_spec(m, t, 0, NULL, err)) return -1;
    return 0;
}

static int read_hparams(qfmt_model *m, qfmt_error *err)
{
    const qfmt_reader *r = m->r;
    qfmt_model_hparams *h = &m->hp;
    const char *arch;
    uint64_t alen;
    if (qfmt_meta_get_string(r, "general.architecture", &arch, &alen, NULL) != QFMT_OK)
        return qfmt__merr(err, QFMT_E_NOT_FOUND, qfmt_reader_path(r), NULL,
                          "no general.architecture in the metadata: not a model qfmt run knows");
    const qfmt_family *f = qfmt_family_find(arch, (size_t)alen);
    if (!f) {
        char known[128] = "";
        for (size_t i = 0; qfmt_family_at(i); i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     qfmt_family_name(qfmt_family_at(i)));
        char name[4 * 64 + 4];
        return qfmt__merr(err, QFMT_E_UNSUPPORTED, qfmt_reader_path(r), NULL,
                          "metadata 'general.architecture' (config.json model_type): architecture '%s' is not "
                          "supported (%s are)",
                          qfmt_escape(arch, (size_t)(alen > 64 ? 64 : alen), name, sizeof name), known);
    }
    h->family = f;
    h->arch = f->arch;
    h->causal = f->causal;
    if (meta_u64(r, "model.vocab_size", &h->vocab, true, err) ||
        meta_u64(r, "model.hidden_size", &h->d, true, err) ||
        meta_u64(r, "model.num_layers", &h->layers, true, err) ||
        meta_u64(r, "model.num_heads", &h->heads, true, err) ||
        meta_u64(r, "model.ffn_size", &h->ffn, true, err) ||
        meta_u64(r, "model.context_length", &h->ctx, true, err))
        return -1;
    int rc = meta_u64(r, "model.num_kv_heads", &h->kv_heads, false, err);
    if (rc < 0) return -1;
    if (rc > 0) h->kv_heads = h->heads;
    rc = meta_u64(r, "model.head_dim", &h->head_dim, false, err);
    if (rc < 0) return -1;
    if (rc > 0) h->head_dim = h->heads ? h->d / h->heads : 0;
    h->type_vocab = 0;
    bool types = uses_dim(f, QFMT__DIM_TYPES);
    if (types && meta_u64(r, "model.type_vocab_size", &h->type_vocab, true, err)) return -1;
    if (qfmt_meta_get_f64(r, "model.norm_eps", &h->eps, NULL) != QFMT_OK)
        return qfmt__merr(err, QFMT_E_NOT_FOUND, qfmt_reader_path(r), NULL, "metadata 'model.norm_eps' (f64) is missing");
    h->rope_theta = f->rope_theta_default > 0 ? f->rope_theta_default : 10000.0;
    qfmt_meta_get_f64(r, "model.rope_theta", &h->rope_theta, NULL);
    const char *rt;
    uint64_t rtl;
    h->rope_freq_type = QFMT_TYPE_F32;
    if (qfmt_meta_get_string(r, "model.dtype", &rt, &rtl, NULL) == QFMT_OK) {
        if (rtl == 8 && memcmp(rt, "bfloat16", 8) == 0) h->rope_freq_type = QFMT_TYPE_BF16;
        else if (rtl == 7 && memcmp(rt, "float16", 7) == 0) h->rope_freq_type = QFMT_TYPE_F16;
    }
    const uint64_t lim = 1ull << 24;
    if (!h->vocab || !h->d || !h->layers || !h->heads || !h->kv_heads || !h->head_dim || !h->ffn || !h->ctx ||
        h->vocab > lim || h->d > lim || h->layers > 4096 || h->heads > 4096 || h->ffn > lim || h->ctx > lim ||
        h->head_dim > 65536 || h->heads % h->kv_heads != 0 ||
        /* GPT-2 and BERT have neither grouped KV heads nor a head_dim of their own */
        (!f->gqa && (h->heads * h->head_dim != h->d || h->kv_heads != h->heads)) ||
        (h->head_dim % 2) != 0)
        return qfmt__merr(err, QFMT_E_CORRUPT, qfmt_reader_path(r), NULL,
                          "hyperparameters do not describe a usable model (d %llu, heads %llu, kv heads %llu, "
                          "head_dim %llu, layers %llu)",
                          (unsigned long long)h->d, (unsigned long long)h->heads,
                         (unsigned long long)h->kv_heads, (unsigned long long)h->head_dim,
                         (unsigned long long)h->layers);
    /* BERT adds token type 0's embedding to every position: a table of no rows would be read
     * past its end. */
    if (types && (h->type_vocab == 0 || h->type_vocab > lim))
        return qfmt__merr(err, QFMT_E_CORRUPT, qfmt_reader_path(r), NULL,
                          "metadata 'model.type_vocab_size' is %llu, not within 1..%llu", (unsigned long long)h->type_vocab, (unsigned long long)lim);
    /* A session's KV cache holds layers x ctx x kv_heads x head_dim floats: bound it (2^36
     * floats, 256 GiB) so that its size, computed in size_t, cannot overflow. The limits above
     * alone allow 2^64. No weight has that shape, so the file size does not bound it. */
    if (h->layers * h->ctx > (1ull << 36) / (h->kv_heads * h->head_dim))
        return qfmt__merr(err, QFMT_E_RANGE, qfmt_reader_path(r), NULL,
                          "a KV cache of %llu layers x %llu positions x %llu values is too large",
                          (unsigned long long)h->layers, (unsigned long long)h->ctx,
                         (unsigned long long)(h->kv_heads * h->head_dim));
    return 0;
}

static bool meta_has(const qfmt_reader *r, const char *key)
{
    uint64_t i;
    return qfmt_meta_find(r, key, &i, NULL) == QFMT_OK;
}

static bool is_str(const char *s, uint64_t n, const char *lit) { return n == strlen(lit) && memcmp(s, lit, n) == 0; }

/* An optional f64 key: 1 present (and finite, > 0 when positive), 0 absent, -1 error. */
static int meta_f64(const qfmt_reader *r, const char *key, double *out, bool positive, qfmt_error *err)
{
    qfmt_error e;
    qfmt_status s = qfmt_meta_get_f64(r, key, out, &e);
    if (s == QFMT_E_NOT_FOUND) return 0;
    if (s != QFMT_OK) return qfmt__merr(err, e.code, qfmt_reader_path(r), NULL, "metadata '%s': %s", key, e.message);
    if (!isfinite(*out) || (positive && !(*out > 0)))
        return qfmt__merr(err, QFMT_E_CORRUPT, qfmt_reader_path(r), NULL, "metadata '%s' is %g, not a positive number", key, *out);
    return 1;
}

/* How the layers compute, from model.* metadata and the family's graph: the activation,
 * attention scale and soft-caps, the embedding scale, and per layer its attention window
 * (model.layer_types, model.sliding_window) and RoPE. */
static int read_graph(qfmt_model *m, qfmt_error *err)
{
    const qfmt_reader *r = m->r;
    const qfmt_model_hparams *h = &m->hp;
    const qfmt__graph *g = &h->family->graph;
    const char *path = qfmt_reader_path(r), *s = g->activation;
    uint64_t n = s ? strlen(s) : 0;
    qfmt_error e;
    qfmt_status st = qfmt_meta_get_string(r, "model.activation", &s, &n, &e);
    if (st != QFMT_OK && st != QFMT_E_NOT_FOUND)
        return qfmt__merr(err, e.code, path, NULL, "metadata 'model.activation': %s", e.message);
    if (!s) s = "", n = 0;
    if (is_str(s, n, "silu") || is_str(s, n, "swish")) m->act = QFMT__ACT_SILU;
    else if (is_str(s, n, "gelu_new") || is_str(s, n, "gelu_pytorch_tanh") || is_str(s, n, "gelu_fast"))
        m->act = QFMT__ACT_GELU_TANH;
    else if (is_str(s, n, "gelu") || is_str(s, n, "gelu_python")) m->act = QFMT__ACT_GELU_ERF;
    else if (is_str(s, n, "relu")) m->act = QFMT__ACT_RELU;
    else {
        char name[4 * 32 + 4];
        return qfmt__merr(err, QFMT_E_UNSUPPORTED, path, NULL,
                          "metadata 'model.activation' (config.json hidden_act): activation '%s' is not supported "
                          "(silu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast and relu are)",
                          qfmt_escape(s, (size_t)(n > 32 ? 32 : n), name, sizeof name));
    }
    double v = (double)h->head_dim;
    if (meta_f64(r, "model.query_pre_attn_scalar", &v, true, err) < 0) return -1;
    m->attn_scale = (float)(1.0 / sqrt(v)); /* transformers: scaling = query_pre_attn_scalar ** -0.5 */
    v = 0;
    if (meta_f64(r, "model.attn_logit_softcapping", &v, true, err) < 0) return -1;
    m->attn_softcap = (float)v;
    v = 0;
    if (meta_f64(r, "model.final_logit_softcapping", &v, true, err) < 0) return -1;
    m->final_softcap = (float)v;
    m->emb_scale = 1.0f;
    if (g->emb_scale != QFMT__EMB_PLAIN) {
        float sc = (float)sqrt((double)h->d);
        if (g->emb_scale == QFMT__EMB_SQRT_D_DTYPE) { /* a buffer of the checkpoint's dtype */
            if (h->rope_freq_type == QFMT_TYPE_BF16) sc = qfmt_bf16_to_f32(qfmt_f32_to_bf16(sc));
            else if (h->rope_freq_type == QFMT_TYPE_F16) sc = qfmt_f16_to_f32(qfmt_f32_to_f16(sc));
        }
        m->emb_scale = sc;
    }
    /* Sliding-window attention: a window of 0 would leave a position nothing to see. */
    uint64_t window = 0;
    st = qfmt_meta_get_u64(r, "model.sliding_window", &window, &e);
    if (st != QFMT_OK && st != QFMT_E_NOT_FOUND)
        return qfmt__merr(err, e.code, path, NULL, "metadata 'model.sliding_window': %s", e.message);
    if (st == QFMT_OK && window == 0) return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL, "metadata 'model.sliding_window' is 0");
    if (window >= h->ctx) window = 0; /* a window past the context hides nothing */
    /* Layer types: without model.layer_types every layer is alike (sliding when there is a window). */
    uint64_t types = 0;
    st = qfmt_meta_get_string_array(r, "model.layer_types", &types, &e);
    if (st != QFMT_OK && st != QFMT_E_NOT_FOUND)
        return qfmt__merr(err, e.code, path, NULL, "metadata 'model.layer_types': %s", e.message);
    bool have_types = st == QFMT_OK;
    if (have_types && types != h->layers)
        return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL, "metadata 'model.layer_types' has %llu entries for %llu layers",
                          (unsigned long long)types, (unsigned long long)h->layers);
    bool rope = h->family->rope_theta_default > 0;
    for (uint64_t l = 0; l < h->layers; l++) {
        layer *L = &m->layers[l];
        bool sliding = st == QFMT_E_NOT_FOUND;
        if (have_types) {
            const char *t;
            uint64_t tl;
            if (qfmt_meta_string_array_get(r, "model.layer_types", l, &t, &tl, &e) != QFMT_OK)
                return qfmt__merr(err, e.code, path, NULL, "metadata 'model.layer_types' entry %llu: %s", (unsigned long long)l,
                                  e.message);
            sliding = is_str(t, tl, "sliding_attention");
            if (!sliding && !is_str(t, tl, "full_attention")) {
                char name[4 * 32 + 4];
                return qfmt__merr(err, QFMT_E_UNSUPPORTED, path, NULL,
                                  "metadata 'model.layer_types' entry %llu: attention type '%s' is not supported "
                                  "(full_attention and sliding_attention are)",
                                  (unsigned long long)l, qfmt_escape(t, (size_t)(tl > 32 ? 32 : tl), name, sizeof name));
            }
            if (sliding && st == QFMT_OK && !meta_has(r, "model.sliding_window"))
                return qfmt__merr(err, QFMT_E_NOT_FOUND, path, NULL,
                                  "metadata 'model.layer_types' entry %llu is sliding_attention, but "
                                  "'model.sliding_window' is missing", (unsigned long long)l);
        }
        L->window = sliding ? window : 0;
        L->rope = !rope ? NULL : sliding && m->rope_local.inv ? &m->rope_local : &m->rope;
    }
    return 0;
}

/* A tensor's shape as "[a, b, c]". */
const char *qfmt__shape(const qfmt_tensor_info *ti, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < ti->ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%llu", i ? ", " : "[", (unsigned long long)ti->dims[i]);
    if (n < cap) snprintf(buf + n, cap - n, "%s", ti->ndim ? "]" : "[] (a scalar)");
    return buf;
}

qfmt_status qfmt_model_load(qfmt_model **out, const qfmt_reader *r, qfmt_error *err)
{
    qfmt_error local;
    if (!err) err = &local;
    if (!out || !r) {
        qfmt__merr(err, QFMT_E_ARG, NULL, NULL, "qfmt_model_load: NULL argument");
        return QFMT_E_ARG;
    }
    *out = NULL;
    qfmt_model *m = calloc(1, sizeof *m);
    if (!m) {
        qfmt__merr(err, QFMT_E_NOMEM, qfmt_reader_path(r), NULL, "out of memory");
        return QFMT_E_NOMEM;
    }
    m->r = r;
    int rc = read_hparams(m, err);
    if (rc == 0) rc = qfmt__rope_load(m->r, &m->hp, "model.", &m->rope, err);
    if (rc == 0 && meta_has(m->r, "model.sliding_attention.rope_theta"))
        rc = qfmt__rope_load(m->r, &m->hp, "model.sliding_attention.", &m->rope_local, err);
    if (rc == 0) rc = qfmt__transposed_load(m->r, &m->transposed, err);
    if (rc == 0) rc = load_tensors(m, err);
    if (rc == 0) rc = read_graph(m, err);
    if (rc) {
        qfmt_model_free(m);
        return err->code ? err->code : QFMT_E_CORRUPT;
    }
    *out = m;
    memset(err, 0, sizeof *err);
    err->offset = QFMT_NO_OFFSET;
    return QFMT_OK;
}

void qfmt_model_free(qfmt_model *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->nowned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->weights);
    qfmt__transposed_free(&m->transposed);
    qfmt__rope_free(&m->rope);
    qfmt__rope_free(&m->rope_local);
    qfmt_pool_free(m->pool);
    free(m);
}

const qfmt_model_hparams *qfmt_model_hparams_get(const qfmt_model *m) { return &m->hp; }

static uint64_t mat_bytes(const qmat *w) { return w->data ? w->rows * (uint64_t)w->row_bytes : 0; }

uint64_t qfmt_model_matmul_bytes(const qfmt_model *m)
{
    uint64_t sum = mat_bytes(&m->head) + mat_bytes(&m->mlm_dense.w);
    for (uint64_t i = 0; i < m->hp.layers; i++) {
        const layer *L = &m->layers[i];
        sum += mat_bytes(&L->q.w) + mat_bytes(&L->k.w) + mat_bytes(&L->v.w) + mat_bytes(&L->qkv.w) +
               mat_bytes(&L->o.w) + mat_bytes(&L->gate.w) + mat_bytes(&L->up.w) + mat_bytes(&L->gate_up.w) +
               mat_bytes(&L->down.w);
    }
    return sum;
}
