/* Loading a model from a qfmt file: hyperparameters from model.* metadata, weights by their
 * Hugging Face names, every shape checked against the hyperparameters before use. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

int qfmt__msg(char *msg, size_t cap, const char *fmt, ...)
{
    if (msg && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
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

static int meta_u64(const qfmt_reader *r, const char *key, uint64_t *out, bool required, char *msg, size_t cap)
{
    qfmt_error e;
    qfmt_status s = qfmt_meta_get_u64(r, key, out, &e);
    if (s == QFMT_OK) return 0;
    if (s == QFMT_E_NOT_FOUND && !required) return 1;
    return qfmt__msg(msg, cap, "%s: metadata '%s': %s", qfmt_reader_path(r), key, e.message);
}

/* Finds a tensor under `name`, or, for BERT checkpoints saved without the "bert." prefix,
 * under the name without it. */
static int find(const qfmt_model *m, const char *name, uint64_t *idx)
{
    if (qfmt_tensor_find(m->r, name, idx, NULL) == QFMT_OK) return 0;
    if (strncmp(name, "bert.", 5) == 0 && qfmt_tensor_find(m->r, name + 5, idx, NULL) == QFMT_OK) return 0;
    return -1;
}

/* The stored bytes of a tensor: the mapped view, or a decoded copy owned by the model. */
static const uint8_t *tensor_bytes(qfmt_model *m, uint64_t idx, const qfmt_tensor_info *ti, char *msg, size_t cap)
{
    qfmt_error e;
    const void *p = NULL;
    if (ti->codec == QFMT_CODEC_NONE) {
        if (qfmt_tensor_view(m->r, idx, &p, NULL, &e) != QFMT_OK) {
            qfmt__msg(msg, cap, "%s: tensor '%s': %s", qfmt_reader_path(m->r), ti->name, e.message);
            return NULL;
        }
        return p;
    }
    uint8_t *buf = own(m, malloc(ti->raw_size ? ti->raw_size : 1));
    if (!buf) {
        qfmt__msg(msg, cap, "tensor '%s': out of memory", ti->name);
        return NULL;
    }
    if (qfmt_tensor_read(m->r, idx, buf, ti->raw_size, false, &e) != QFMT_OK) {
        qfmt__msg(msg, cap, "%s: tensor '%s': %s", qfmt_reader_path(m->r), ti->name, e.message);
        return NULL;
    }
    return buf;
}

static bool transposed_listed(const qfmt_reader *r, const char *name)
{
    uint64_t n = 0;
    if (qfmt_meta_get_array(r, "convert.transposed", NULL, &n, NULL) != QFMT_OK) return false;
    size_t nl = strlen(name);
    for (uint64_t i = 0; i < n; i++) {
        qfmt_value v;
        if (qfmt_meta_array_get(r, "convert.transposed", i, &v, NULL) == QFMT_OK && v.type == QFMT_META_STRING &&
            v.v.str.len == nl && memcmp(v.v.str.ptr, name, nl) == 0)
            return true;
    }
    return false;
}

static bool usable_type(uint32_t t)
{
    return qfmt_row_decoder(t) != NULL;
}

/* A [rows, cols] weight. conv1d: GPT-2 Conv1D, stored [cols, rows] by Hugging Face unless the
 * converter transposed it (convert.transposed); then transposed here into an f32 copy. */
int qfmt__load_matrix(qfmt_model *m, const char *name, uint64_t rows, uint64_t cols, bool conv1d, qmat *out,
                      char *msg, size_t cap)
{
    uint64_t idx;
    if (find(m, name, &idx) != 0)
        return qfmt__msg(msg, cap, "%s: tensor '%s' is missing", qfmt_reader_path(m->r), name);
    qfmt_tensor_info ti;
    qfmt_tensor_get_info(m->r, idx, &ti, NULL);
    bool flip = conv1d && !transposed_listed(m->r, ti.name);
    uint64_t want0 = flip ? cols : rows, want1 = flip ? rows : cols;
    if (ti.ndim != 2 || ti.dims[0] != want0 || ti.dims[1] != want1)
        return qfmt__msg(msg, cap, "%s: tensor '%s' has shape [%llu, %llu], the model needs [%llu, %llu]",
                         qfmt_reader_path(m->r), ti.name, (unsigned long long)ti.dims[0],
                         (unsigned long long)(ti.ndim > 1 ? ti.dims[1] : 0), (unsigned long long)want0,
                         (unsigned long long)want1);
    if (!usable_type(ti.type))
        return qfmt__msg(msg, cap, "%s: tensor '%s' has type %u, which run cannot use", qfmt_reader_path(m->r),
                         ti.name, ti.type);
    const uint8_t *p = tensor_bytes(m, idx, &ti, msg, cap);
    if (!p) return -1;
    uint64_t rb;
    qfmt_type_size(ti.type, ti.dims[1], &rb);
    qmat w = {p, ti.type, ti.dims[0], ti.dims[1], (size_t)rb};
    if (flip) { /* decode [cols, rows] and transpose into an f32 [rows, cols] */
        if (qfmt_type_get_traits(ti.type)->block_elems != 1)
            return qfmt__msg(msg, cap, "tensor '%s': a block-quantized Conv1D weight must be stored [out, in]", ti.name);
        /* w is [cols, rows] as stored: each decoded row holds `rows` floats */
        float *tmp = malloc(rows * sizeof *tmp), *t = own(m, malloc(rows * cols * sizeof *t));
        if (!tmp || !t) {
            free(tmp);
            return qfmt__msg(msg, cap, "tensor '%s': out of memory", ti.name);
        }
        for (uint64_t i = 0; i < cols; i++) {
            qfmt__qmat_row(&w, i, tmp);
            for (uint64_t j = 0; j < rows; j++) t[j * cols + i] = tmp[j];
        }
        free(tmp);
        w = (qmat){(const uint8_t *)t, QFMT_TYPE_F32, rows, cols, cols * sizeof(float)};
    }
    *out = w;
    return 0;
}

/* A 1-D tensor of n values decoded to an owned f32 copy; NULL *out when absent and optional. */
int qfmt__load_vector(qfmt_model *m, const char *name, uint64_t n, bool required, float **out, char *msg,
                      size_t cap)
{
    *out = NULL;
    uint64_t idx;
    if (find(m, name, &idx) != 0)
        return required ? qfmt__msg(msg, cap, "%s: tensor '%s' is missing", qfmt_reader_path(m->r), name) : 0;
    qfmt_tensor_info ti;
    qfmt_tensor_get_info(m->r, idx, &ti, NULL);
    if (ti.ndim != 1 || ti.dims[0] != n)
        return qfmt__msg(msg, cap, "%s: tensor '%s' should be a vector of %llu values", qfmt_reader_path(m->r),
                         ti.name, (unsigned long long)n);
    if (!usable_type(ti.type))
        return qfmt__msg(msg, cap, "%s: tensor '%s' has type %u, which run cannot use", qfmt_reader_path(m->r),
                         ti.name, ti.type);
    const uint8_t *p = tensor_bytes(m, idx, &ti, msg, cap);
    float *v = own(m, malloc(n * sizeof *v + 1));
    if (!p || !v) return p ? qfmt__msg(msg, cap, "out of memory") : -1;
    qmat w = {p, ti.type, 1, n, 0};
    qfmt__qmat_row(&w, 0, v);
    *out = v;
    return 0;
}

static int load_linear(qfmt_model *m, const char *prefix, uint64_t rows, uint64_t cols, bool bias_required,
                       bool conv1d, linear *l, char *msg, size_t cap)
{
    char name[512];
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (qfmt__load_matrix(m, name, rows, cols, conv1d, &l->w, msg, cap)) return -1;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return qfmt__load_vector(m, name, rows, bias_required, &l->b, msg, cap);
}

static int load_norm(qfmt_model *m, const char *prefix, const char *wname, const char *bname, uint64_t n,
                     norm *o, char *msg, size_t cap)
{
    char name[512];
    snprintf(name, sizeof name, "%s.%s", prefix, wname);
    if (qfmt__load_vector(m, name, n, true, &o->w, msg, cap)) return -1;
    if (!bname) return 0;
    snprintf(name, sizeof name, "%s.%s", prefix, bname);
    return qfmt__load_vector(m, name, n, true, &o->b, msg, cap);
}

static int load_embedding(qfmt_model *m, const char *name, uint64_t rows, uint64_t cols, qmat *out, char *msg,
                          size_t cap)
{
    return qfmt__load_matrix(m, name, rows, cols, false, out, msg, cap);
}

static int read_hparams(qfmt_model *m, char *msg, size_t cap)
{
    const qfmt_reader *r = m->r;
    qfmt_model_hparams *h = &m->hp;
    const char *arch;
    uint64_t alen;
    if (qfmt_meta_get_string(r, "general.architecture", &arch, &alen, NULL) != QFMT_OK)
        return qfmt__msg(msg, cap, "%s: no general.architecture in the metadata: not a model qfmt run knows",
                         qfmt_reader_path(r));
    if (alen == 4 && memcmp(arch, "gpt2", 4) == 0) h->arch = QFMT_ARCH_GPT2;
    else if (alen == 5 && memcmp(arch, "llama", 5) == 0) h->arch = QFMT_ARCH_LLAMA;
    else if (alen == 4 && memcmp(arch, "bert", 4) == 0) h->arch = QFMT_ARCH_BERT;
    else
        return qfmt__msg(msg, cap, "%s: architecture '%.*s' is not supported (gpt2, llama and bert are)",
                         qfmt_reader_path(r), (int)(alen > 64 ? 64 : alen), arch);
    h->causal = h->arch != QFMT_ARCH_BERT;
    if (meta_u64(r, "model.vocab_size", &h->vocab, true, msg, cap) ||
        meta_u64(r, "model.hidden_size", &h->d, true, msg, cap) ||
        meta_u64(r, "model.num_layers", &h->layers, true, msg, cap) ||
        meta_u64(r, "model.num_heads", &h->heads, true, msg, cap) ||
        meta_u64(r, "model.ffn_size", &h->ffn, true, msg, cap) ||
        meta_u64(r, "model.context_length", &h->ctx, true, msg, cap))
        return -1;
    int rc = meta_u64(r, "model.num_kv_heads", &h->kv_heads, false, msg, cap);
    if (rc < 0) return -1;
    if (rc > 0) h->kv_heads = h->heads;
    rc = meta_u64(r, "model.head_dim", &h->head_dim, false, msg, cap);
    if (rc < 0) return -1;
    if (rc > 0) h->head_dim = h->heads ? h->d / h->heads : 0;
    h->type_vocab = 0;
    if (h->arch == QFMT_ARCH_BERT && meta_u64(r, "model.type_vocab_size", &h->type_vocab, true, msg, cap)) return -1;
    if (qfmt_meta_get_f64(r, "model.norm_eps", &h->eps, NULL) != QFMT_OK)
        return qfmt__msg(msg, cap, "%s: metadata 'model.norm_eps' (f64) is missing", qfmt_reader_path(r));
    h->rope_theta = 10000.0;
    qfmt_meta_get_f64(r, "model.rope_theta", &h->rope_theta, NULL);
    const char *rt;
    uint64_t rtl;
    h->rope_freq_type = QFMT_TYPE_F32;
    if (qfmt_meta_get_string(r, "model.dtype", &rt, &rtl, NULL) == QFMT_OK) {
        if (rtl == 8 && memcmp(rt, "bfloat16", 8) == 0) h->rope_freq_type = QFMT_TYPE_BF16;
        else if (rtl == 7 && memcmp(rt, "float16", 7) == 0) h->rope_freq_type = QFMT_TYPE_F16;
    }
    if (h->arch == QFMT_ARCH_LLAMA && qfmt_meta_get_string(r, "model.rope_type", &rt, &rtl, NULL) == QFMT_OK &&
        !(rtl == 7 && memcmp(rt, "default", 7) == 0))
        return qfmt__msg(msg, cap, "%s: RoPE type '%.*s' is not supported (only 'default')", qfmt_reader_path(r),
                         (int)(rtl > 32 ? 32 : rtl), rt);
    const uint64_t lim = 1ull << 24;
    if (!h->vocab || !h->d || !h->layers || !h->heads || !h->kv_heads || !h->head_dim || !h->ffn || !h->ctx ||
        h->vocab > lim || h->d > lim || h->layers > 4096 || h->heads > 4096 || h->ffn > lim || h->ctx > lim ||
        h->head_dim > 65536 || h->heads % h->kv_heads != 0 ||
        /* GPT-2 and BERT have neither grouped KV heads nor a head_dim of their own */
        (h->arch != QFMT_ARCH_LLAMA && (h->heads * h->head_dim != h->d || h->kv_heads != h->heads)) ||
        (h->head_dim % 2) != 0)
        return qfmt__msg(msg, cap,
                         "%s: hyperparameters do not describe a usable model (d %llu, heads %llu, kv heads %llu, "
                         "head_dim %llu, layers %llu)",
                         qfmt_reader_path(r), (unsigned long long)h->d, (unsigned long long)h->heads,
                         (unsigned long long)h->kv_heads, (unsigned long long)h->head_dim,
                         (unsigned long long)h->layers);
    /* BERT adds token type 0's embedding to every position: a table of no rows would be read
     * past its end. */
    if (h->arch == QFMT_ARCH_BERT && (h->type_vocab == 0 || h->type_vocab > lim))
        return qfmt__msg(msg, cap, "%s: metadata 'model.type_vocab_size' is %llu, not within 1..%llu",
                         qfmt_reader_path(r), (unsigned long long)h->type_vocab, (unsigned long long)lim);
    /* A session's KV cache holds layers x ctx x kv_heads x head_dim floats: bound it (2^36
     * floats, 256 GiB) so that its size, computed in size_t, cannot overflow. The limits above
     * alone allow 2^64. No weight has that shape, so the file size does not bound it. */
    if (h->layers * h->ctx > (1ull << 36) / (h->kv_heads * h->head_dim))
        return qfmt__msg(msg, cap,
                         "%s: a KV cache of %llu layers x %llu positions x %llu values is too large",
                         qfmt_reader_path(r), (unsigned long long)h->layers, (unsigned long long)h->ctx,
                         (unsigned long long)(h->kv_heads * h->head_dim));
    return 0;
}

static int load_layers(qfmt_model *m, char *msg, size_t cap)
{
    const qfmt_model_hparams *h = &m->hp;
    m->layers = own(m, calloc(h->layers, sizeof *m->layers));
    if (!m->layers) return qfmt__msg(msg, cap, "out of memory");
    char p[256];
    uint64_t d = h->d, qd = h->heads * h->head_dim, kvd = h->kv_heads * h->head_dim;
    for (uint64_t i = 0; i < h->layers; i++) {
        layer *L = &m->layers[i];
        unsigned long long li = (unsigned long long)i;
        int rc = 0;
        switch (h->arch) {
        case QFMT_ARCH_GPT2:
            snprintf(p, sizeof p, "transformer.h.%llu", li);
            rc = load_norm(m, p, "ln_1.weight", "ln_1.bias", d, &L->ln1, msg, cap) ||
                 load_norm(m, p, "ln_2.weight", "ln_2.bias", d, &L->ln2, msg, cap);
            snprintf(p, sizeof p, "transformer.h.%llu.attn.c_attn", li);
            rc = rc || load_linear(m, p, 3 * d, d, true, true, &L->q, msg, cap);
            snprintf(p, sizeof p, "transformer.h.%llu.attn.c_proj", li);
            rc = rc || load_linear(m, p, d, d, true, true, &L->o, msg, cap);
            snprintf(p, sizeof p, "transformer.h.%llu.mlp.c_fc", li);
            rc = rc || load_linear(m, p, h->ffn, d, true, true, &L->up, msg, cap);
            snprintf(p, sizeof p, "transformer.h.%llu.mlp.c_proj", li);
            rc = rc || load_linear(m, p, d, h->ffn, true, true, &L->down, msg, cap);
            break;
        case QFMT_ARCH_LLAMA:
            snprintf(p, sizeof p, "model.layers.%llu", li);
            rc = load_norm(m, p, "input_layernorm.weight", NULL, d, &L->ln1, msg, cap) ||
                 load_norm(m, p, "post_attention_layernorm.weight", NULL, d, &L->ln2, msg, cap);
#define LIN(suffix, rows, cols, dst)                                                         \
    snprintf(p, sizeof p, "model.layers.%llu." suffix, li);                                  \
    rc = rc || load_linear(m, p, rows, cols, false, false, dst, msg, cap)
            LIN("self_attn.q_proj", qd, d, &L->q);
            LIN("self_attn.k_proj", kvd, d, &L->k);
            LIN("self_attn.v_proj", kvd, d, &L->v);
            LIN("self_attn.o_proj", d, qd, &L->o);
            LIN("mlp.gate_proj", h->ffn, d, &L->gate);
            LIN("mlp.up_proj", h->ffn, d, &L->up);
            LIN("mlp.down_proj", d, h->ffn, &L->down);
#undef LIN
            break;
        case QFMT_ARCH_BERT:
#define LIN(suffix, rows, cols, dst)                                                         \
    snprintf(p, sizeof p, "bert.encoder.layer.%llu." suffix, li);                            \
    rc = rc || load_linear(m, p, rows, cols, true, false, dst, msg, cap)
            LIN("attention.self.query", d, d, &L->q);
            LIN("attention.self.key", d, d, &L->k);
            LIN("attention.self.value", d, d, &L->v);
            LIN("attention.output.dense", d, d, &L->o);
            LIN("intermediate.dense", h->ffn, d, &L->up);
            LIN("output.dense", d, h->ffn, &L->down);
#undef LIN
            snprintf(p, sizeof p, "bert.encoder.layer.%llu.attention.output.LayerNorm", li);
            rc = rc || load_norm(m, p, "weight", "bias", d, &L->ln1, msg, cap);
            snprintf(p, sizeof p, "bert.encoder.layer.%llu.output.LayerNorm", li);
            rc = rc || load_norm(m, p, "weight", "bias", d, &L->ln2, msg, cap);
            break;
        }
        if (rc) return -1;
    }
    return 0;
}

int qfmt_model_load(qfmt_model **out, const qfmt_reader *r, char *msg, size_t cap)
{
    *out = NULL;
    qfmt_model *m = calloc(1, sizeof *m);
    if (!m) return qfmt__msg(msg, cap, "out of memory");
    m->r = r;
    int rc = read_hparams(m, msg, cap);
    const qfmt_model_hparams *h = &m->hp;
    if (rc == 0) rc = load_layers(m, msg, cap);
    if (rc == 0) switch (h->arch) {
        case QFMT_ARCH_GPT2:
            rc = load_embedding(m, "transformer.wte.weight", h->vocab, h->d, &m->tok, msg, cap) ||
                 load_embedding(m, "transformer.wpe.weight", h->ctx, h->d, &m->pos, msg, cap) ||
                 load_norm(m, "transformer.ln_f", "weight", "bias", h->d, &m->final_norm, msg, cap);
            m->head = m->tok;
            if (rc == 0 && qfmt_tensor_find(r, "lm_head.weight", NULL, NULL) == QFMT_OK)
                rc = load_embedding(m, "lm_head.weight", h->vocab, h->d, &m->head, msg, cap);
            break;
        case QFMT_ARCH_LLAMA:
            rc = load_embedding(m, "model.embed_tokens.weight", h->vocab, h->d, &m->tok, msg, cap) ||
                 load_norm(m, "model", "norm.weight", NULL, h->d, &m->final_norm, msg, cap);
            m->head = m->tok; /* tied unless lm_head.weight is stored */
            if (rc == 0 && qfmt_tensor_find(r, "lm_head.weight", NULL, NULL) == QFMT_OK)
                rc = load_embedding(m, "lm_head.weight", h->vocab, h->d, &m->head, msg, cap);
            break;
        case QFMT_ARCH_BERT:
            rc = load_embedding(m, "bert.embeddings.word_embeddings.weight", h->vocab, h->d, &m->tok, msg, cap) ||
                 load_embedding(m, "bert.embeddings.position_embeddings.weight", h->ctx, h->d, &m->pos, msg, cap) ||
                 load_embedding(m, "bert.embeddings.token_type_embeddings.weight", h->type_vocab, h->d, &m->type,
                                msg, cap) ||
                 load_norm(m, "bert.embeddings.LayerNorm", "weight", "bias", h->d, &m->emb_norm, msg, cap) ||
                 load_linear(m, "cls.predictions.transform.dense", h->d, h->d, true, false, &m->mlm_dense, msg, cap) ||
                 load_norm(m, "cls.predictions.transform.LayerNorm", "weight", "bias", h->d, &m->mlm_norm, msg,
                           cap) ||
                 qfmt__load_vector(m, "cls.predictions.bias", h->vocab, true, &m->mlm_bias, msg, cap);
            m->head = m->tok; /* the decoder is tied to the word embeddings unless stored */
            if (rc == 0 && qfmt_tensor_find(r, "cls.predictions.decoder.weight", NULL, NULL) == QFMT_OK)
                rc = load_embedding(m, "cls.predictions.decoder.weight", h->vocab, h->d, &m->head, msg, cap);
            break;
        }
    if (rc) {
        qfmt_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void qfmt_model_free(qfmt_model *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->nowned; i++) free(m->owned[i]);
    free(m->owned);
    qfmt_pool_free(m->pool);
    free(m);
}

const qfmt_model_hparams *qfmt_model_hparams_get(const qfmt_model *m) { return &m->hp; }
