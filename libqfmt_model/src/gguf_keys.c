/*
 * gguf_keys.c - qfmt's model.* keys <-> llama.cpp's {arch}.* keys, both ways, as
 * convert_hf_to_gguf.py writes them per model class (TextModel.set_gguf_parameters and the
 * LlamaModel, GPT2Model, Gemma2Model, Gemma3Model, Phi3MiniModel, BertModel overrides) and as
 * llama.cpp's loader reads them (its defaults where a key is absent); the RoPE factor tensors
 * llama.cpp derives from the config (rope_freqs: llama3; rope_factors_long/short: Phi-3's
 * longrope); llama.cpp's file types; the q/k row permutation of the llama architecture.
 *
 * What llama.cpp's keys cannot hold (the checkpoint's dtype, which transformers rounds the RoPE
 * frequencies to; a llama3 or yarn RoPE's own parameters; Gemma's layer types and attention
 * scale when they differ from llama.cpp's fixed ones; an activation llama.cpp does not use) is
 * written as qfmt.model.<key>, which llama.cpp ignores and the import reads back over what it
 * derived from llama.cpp's keys.
 */
#define _POSIX_C_SOURCE 200809L
#define QFMT_STATIC_LINKING_ONLY /* qfmt_utf8_valid */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_model.h"
#include "model_internal.h"

/* ---- Shared ------------------------------------------------------------------------------- */

static const struct {
    const char *arch;
    const qfmt_family *fam;
} archs[] = {
    {"gpt2", &qfmt__family_gpt2},   {"llama", &qfmt__family_llama},   {"bert", &qfmt__family_bert},
    {"qwen2", &qfmt__family_qwen2}, {"qwen3", &qfmt__family_qwen3},   {"gemma2", &qfmt__family_gemma2},
    {"gemma3", &qfmt__family_gemma3}, {"phi3", &qfmt__family_phi3},
};
#define NARCHS (sizeof archs / sizeof archs[0])

static bool is_gemma(const qfmt_family *f) { return f == &qfmt__family_gemma2 || f == &qfmt__family_gemma3; }
static bool is_rope_family(const qfmt_family *f) { return f && f->rope_theta_default > 0; }
static bool layer_norm(const qfmt_family *f) { return f->graph.norm == QFMT__NORM_LAYER; }

double qfmt__gguf_f32_decimal(float v)
{
    if (!isfinite(v)) return (double)v;
    char buf[40];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v) return strtod(buf, NULL);
    }
    return (double)v;
}

void qfmt__gguf_permute_rows(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t row_bytes, uint64_t n_head,
                             bool to_gguf)
{
    uint64_t hd = rows / n_head, half = hd / 2;
    for (uint64_t h = 0; h < n_head; h++)
        for (uint64_t s = 0; s < 2; s++)
            for (uint64_t j = 0; j < half; j++) {
                uint64_t hf = h * hd + s * half + j, gg = h * hd + 2 * j + s;
                uint64_t from = to_gguf ? hf : gg, to = to_gguf ? gg : hf;
                memcpy(dst + to * row_bytes, src + from * row_bytes, (size_t)row_bytes);
            }
}

uint64_t qfmt__gguf_permute_heads(const qfmt__gguf_model *m, const char *hf_name)
{
    if (!m->permute) return 0;
    bool w = false;
    const qfmt__tensor_spec *t = qfmt__family_match(m->fam, hf_name, &w);
    if (!t) return 0;
    return t->slot == QFMT__L_Q ? m->heads : t->slot == QFMT__L_K ? m->kv_heads : 0;
}

bool qfmt__gguf_shifted_norm(const qfmt__gguf_model *m, const char *hf_name)
{
    if (!m->norm_shift) return false;
    bool w = false;
    const qfmt__tensor_spec *t = qfmt__family_match(m->fam, hf_name, &w);
    return t && w && t->kind == QFMT__FT_NORM;
}

bool qfmt__gguf_is_rope_tensor(const char *n)
{
    return strcmp(n, "rope_freqs.weight") == 0 || strcmp(n, "rope_factors_long.weight") == 0 ||
           strcmp(n, "rope_factors_short.weight") == 0;
}

/* llama.h's LLAMA_FTYPE_* of llama-quantize's mixes, and each one's default type. */
static const struct {
    const char *mix;
    uint32_t ftype, type;
} ftypes[] = {
    {"f32", 0, QFMT_TYPE_F32},        {"f16", 1, QFMT_TYPE_F16},        {"bf16", 32, QFMT_TYPE_BF16},
    {"q4_0", 2, QFMT_TYPE_Q4_0},      {"q4_1", 3, QFMT_TYPE_Q4_1},      {"q8_0", 7, QFMT_TYPE_Q8_0},
    {"q5_0", 8, QFMT_TYPE_Q5_0},      {"q5_1", 9, QFMT_TYPE_Q5_1},      {"q2_k", 10, QFMT_TYPE_Q2_K},
    {"q3_k_s", 11, QFMT_TYPE_Q3_K},   {"q3_k_m", 12, QFMT_TYPE_Q3_K},   {"q3_k_l", 13, QFMT_TYPE_Q3_K},
    {"q4_k_s", 14, QFMT_TYPE_Q4_K},   {"q4_k_m", 15, QFMT_TYPE_Q4_K},   {"q5_k_s", 16, QFMT_TYPE_Q5_K},
    {"q5_k_m", 17, QFMT_TYPE_Q5_K},   {"q6_k", 18, QFMT_TYPE_Q6_K},     {"q2_k_s", 21, QFMT_TYPE_Q2_K},
    {"iq4_nl", 25, QFMT_TYPE_IQ4_NL}, {"iq4_xs", 30, QFMT_TYPE_IQ4_XS},
};
#define NFTYPES (sizeof ftypes / sizeof ftypes[0])

uint32_t qfmt__gguf_ftype_of_mix(const char *mix)
{
    for (size_t i = 0; mix && i < NFTYPES; i++)
        if (strcmp(ftypes[i].mix, mix) == 0) return ftypes[i].ftype;
    return UINT32_MAX;
}

uint32_t qfmt__gguf_ftype_of_type(uint32_t type)
{
    static const uint32_t pick[] = {0, 1, 32, 2, 3, 7, 8, 9, 10, 12, 15, 17, 18, 25, 30}; /* K types: the _M mix */
    for (size_t k = 0; k < sizeof pick / sizeof pick[0]; k++)
        for (size_t i = 0; i < NFTYPES; i++)
            if (ftypes[i].ftype == pick[k] && ftypes[i].type == type) return pick[k];
    return UINT32_MAX;
}

uint32_t qfmt__gguf_ftype_type(uint32_t ftype)
{
    for (size_t i = 0; i < NFTYPES; i++)
        if (ftypes[i].ftype == ftype) return ftypes[i].type;
    return UINT32_MAX;
}

/* llama.cpp's fixed attention layout of the Gemma architectures: layer il slides when
 * il % period < period - 1 (set_swa_pattern: gemma2 2, gemma3 6). */
static uint32_t gemma_period(const qfmt_family *f) { return f == &qfmt__family_gemma2 ? 2 : 6; }

/* llama.cpp's attention scale for Gemma: 1 / sqrt(head_dim), but 1 / sqrt(d / heads) for the
 * 27B models (gemma2 46 layers, gemma3 62). As a query_pre_attn_scalar. */
static double gemma_scalar(const qfmt__gguf_model *m)
{
    bool big = (m->fam == &qfmt__family_gemma2 && m->layers == 46) || (m->fam == &qfmt__family_gemma3 && m->layers == 62);
    return big ? (double)(m->d / m->heads) : (double)m->head_dim;
}

/* convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors (llama3 RoPE), in its fp32
 * arithmetic: one factor per rotated pair, dividing that pair's frequency. */
static void llama3_factors(double base, uint64_t dim, double factor, double lo, double hi, double L, float *out)
{
    for (uint64_t i = 0; i < dim / 2; i++) {
        float x = (float)(2 * i) / (float)dim;
        float freq = 1.0f / powf((float)base, x);
        float wl = (float)(2.0 * 3.14159265358979323846) / freq;
        if (wl < (float)(L / hi)) out[i] = 1.0f;
        else if (wl > (float)(L / lo)) out[i] = (float)factor;
        else {
            float sm = ((float)L / wl - (float)lo) / (float)(hi - lo);
            out[i] = 1.0f / ((1.0f - sm) / (float)factor + sm);
        }
    }
}

static bool factors_match(const float *a, const float *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (!(fabsf(a[i] - b[i]) <= 1e-6f * fabsf(b[i]))) return false;
    return true;
}

/* ==== Import ============================================================================= */

/* The model.* keys being built (in order; a later set of the same key replaces it), written at
 * the end so that the qfmt.model.* keys of a file qfmt exported can replace what llama.cpp's
 * keys gave. */
typedef struct {
    char key[128];
    uint32_t type;      /* QFMT_META_U64, F64, BOOL, STRING, or ARRAY (elem_type F64 or STRING) */
    uint32_t elem_type;
    uint64_t u;
    double f;
    char *s;            /* STRING: len bytes; ARRAY of STRING: n strings of lens */
    size_t len;
    double *fa;
    char **sa;
    size_t *lens;
    uint64_t n;
} kv_item;

typedef struct {
    kv_item *v;
    size_t n, cap;
    bool oom;
} kv_list;

static void kv_item_free(kv_item *it)
{
    free(it->s);
    free(it->fa);
    for (uint64_t i = 0; it->sa && i < it->n; i++) free(it->sa[i]);
    free(it->sa);
    free(it->lens);
    memset(it, 0, sizeof *it);
}

static void kv_free(kv_list *l)
{
    for (size_t i = 0; i < l->n; i++) kv_item_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static void kv_del_prefix(kv_list *l, const char *prefix)
{
    size_t k = 0, pl = strlen(prefix);
    for (size_t i = 0; i < l->n; i++) {
        if (strncmp(l->v[i].key, prefix, pl) == 0) kv_item_free(&l->v[i]);
        else l->v[k++] = l->v[i];
    }
    l->n = k;
}

/* A new item for `key` (an old one of that key is dropped), NULL when out of memory. */
static kv_item *kv_new(kv_list *l, const char *key)
{
    if (l->oom) return NULL;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].key, key) == 0) {
            kv_item_free(&l->v[i]);
            memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
            l->n--;
            break;
        }
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 32;
        kv_item *v = realloc(l->v, nc * sizeof *v);
        if (!v) return l->oom = true, NULL;
        l->v = v;
        l->cap = nc;
    }
    kv_item *it = &l->v[l->n++];
    memset(it, 0, sizeof *it);
    snprintf(it->key, sizeof it->key, "%s", key);
    return it;
}

static void kv_u64(kv_list *l, const char *key, uint64_t v)
{
    kv_item *it = kv_new(l, key);
    if (it) it->type = QFMT_META_U64, it->u = v;
}
static void kv_f64(kv_list *l, const char *key, double v)
{
    kv_item *it = kv_new(l, key);
    if (it) it->type = QFMT_META_F64, it->f = v;
}
static void kv_bool(kv_list *l, const char *key, bool v)
{
    kv_item *it = kv_new(l, key);
    if (it) it->type = QFMT_META_BOOL, it->u = v;
}
static void kv_str(kv_list *l, const char *key, const char *s, size_t len)
{
    kv_item *it = kv_new(l, key);
    if (!it) return;
    it->type = QFMT_META_STRING;
    it->s = malloc(len + 1);
    if (!it->s) {
        l->oom = true;
        return;
    }
    memcpy(it->s, s, len);
    it->s[len] = '\0';
    it->len = len;
}
/* Takes ownership of v (n doubles). */
static void kv_f64s(kv_list *l, const char *key, double *v, uint64_t n)
{
    kv_item *it = kv_new(l, key);
    if (!it) {
        free(v);
        return;
    }
    it->type = QFMT_META_ARRAY;
    it->elem_type = QFMT_META_F64;
    it->fa = v;
    it->n = n;
}
/* An array of n strings (copied). */
static void kv_strs(kv_list *l, const char *key, const char *const *s, const size_t *lens, uint64_t n)
{
    kv_item *it = kv_new(l, key);
    if (!it) return;
    it->type = QFMT_META_ARRAY;
    it->elem_type = QFMT_META_STRING;
    it->sa = calloc(n ? (size_t)n : 1, sizeof *it->sa);
    it->lens = calloc(n ? (size_t)n : 1, sizeof *it->lens);
    if (!it->sa || !it->lens) {
        l->oom = true;
        return;
    }
    it->n = n;
    for (uint64_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(s[i]);
        if (!(it->sa[i] = malloc(len + 1))) {
            l->oom = true;
            return;
        }
        memcpy(it->sa[i], s[i], len);
        it->sa[i][len] = '\0';
        it->lens[i] = len;
    }
}

static qfmt_status kv_write(const kv_list *l, qfmt_writer *w, qfmt_error *err)
{
    qfmt_status s = QFMT_OK;
    for (size_t i = 0; s == QFMT_OK && i < l->n; i++) {
        const kv_item *it = &l->v[i];
        switch (it->type) {
        case QFMT_META_U64: s = qfmt_writer_set_u64(w, it->key, it->u, err); break;
        case QFMT_META_F64: s = qfmt_writer_set_f64(w, it->key, it->f, err); break;
        case QFMT_META_BOOL: s = qfmt_writer_set_bool(w, it->key, it->u != 0, err); break;
        case QFMT_META_STRING: s = qfmt_writer_set_string(w, it->key, it->s, it->len, err); break;
        default:
            s = it->elem_type == QFMT_META_F64
                    ? qfmt_writer_set_array(w, it->key, QFMT_META_F64, it->fa, it->n, err)
                    : qfmt_writer_set_string_array(w, it->key, (const char *const *)it->sa, it->lens, it->n, err);
        }
    }
    return s;
}

typedef struct {
    const qfmt_gguf *g;
    const char *path;
    const char *arch;
    uint8_t *consumed; /* may be NULL */
    qfmt_error *err;
} gctx;

static void consume(gctx *c, const char *key)
{
    uint64_t idx;
    if (c->consumed && qfmt_gguf_find_key(c->g, key, &idx, NULL) == QFMT_OK) c->consumed[idx] = 1;
}

static const char *akey(const gctx *c, const char *suffix, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.%s", c->arch, suffix);
    return buf;
}

/* {arch}.suffix (or `suffix` itself when whole) as an integer: 1 found, 0 absent, -1 error. */
static int get_u(gctx *c, const char *suffix, bool whole, uint64_t *out)
{
    char kb[160];
    const char *key = whole ? suffix : akey(c, suffix, kb, sizeof kb);
    qfmt_error e;
    qfmt_status s = qfmt_gguf_get_u64(c->g, key, out, &e);
    if (s == QFMT_E_NOT_FOUND) return 0;
    consume(c, key);
    if (s == QFMT_OK) return 1;
    uint32_t et;
    uint64_t n;
    if (qfmt_gguf_get_array(c->g, key, &et, &n, NULL) == QFMT_OK)
        return qfmt__merr(c->err, QFMT_E_UNSUPPORTED, c->path, NULL,
                          "key '%s': an array (per-layer values) is not supported", key);
    return qfmt__merr(c->err, QFMT_E_CORRUPT, c->path, NULL, "key '%s': %s", key,
                      s == QFMT_E_TYPE ? "not an integer" : "out of range");
}

static int need_u(gctx *c, const char *suffix, uint64_t *out)
{
    int r = get_u(c, suffix, false, out);
    if (r == 0) {
        char kb[160];
        return qfmt__merr(c->err, QFMT_E_NOT_FOUND, c->path, NULL, "key '%s' is missing", akey(c, suffix, kb, sizeof kb));
    }
    return r;
}

/* A float key; an f32 value as the decimal Hugging Face's config held. */
static int get_f(gctx *c, const char *suffix, bool whole, double *out)
{
    char kb[160];
    const char *key = whole ? suffix : akey(c, suffix, kb, sizeof kb);
    uint64_t idx;
    if (qfmt_gguf_find_key(c->g, key, &idx, NULL) != QFMT_OK) return 0;
    consume(c, key);
    qfmt_gguf_kv kv;
    double v;
    if (qfmt_gguf_kv_get(c->g, idx, &kv, NULL) != QFMT_OK || qfmt_gguf_get_f64(c->g, key, &v, NULL) != QFMT_OK)
        return qfmt__merr(c->err, QFMT_E_CORRUPT, c->path, NULL, "key '%s': not a float", key);
    *out = kv.type == QFMT_GGUF_FLOAT32 ? qfmt__gguf_f32_decimal((float)v) : v;
    return 1;
}

static int need_f(gctx *c, const char *suffix, double *out)
{
    int r = get_f(c, suffix, false, out);
    if (r == 0) {
        char kb[160];
        return qfmt__merr(c->err, QFMT_E_NOT_FOUND, c->path, NULL, "key '%s' is missing", akey(c, suffix, kb, sizeof kb));
    }
    return r;
}

static int get_s(gctx *c, const char *suffix, bool whole, const char **p, size_t *len)
{
    char kb[160];
    const char *key = whole ? suffix : akey(c, suffix, kb, sizeof kb);
    qfmt_status s = qfmt_gguf_get_str(c->g, key, p, len, NULL);
    if (s == QFMT_E_NOT_FOUND) return 0;
    consume(c, key);
    if (s != QFMT_OK) return qfmt__merr(c->err, QFMT_E_CORRUPT, c->path, NULL, "key '%s': not a string", key);
    return 1;
}

static bool str_is(const char *p, size_t len, const char *s) { return strlen(s) == len && memcmp(p, s, len) == 0; }

/* An f32 tensor of g (a RoPE factor tensor) of `n` values, or NULL (absent). -1 when it is
 * there but not what llama.cpp loads. */
static int rope_tensor(gctx *c, const char *name, uint64_t n, const float **out)
{
    uint64_t idx;
    *out = NULL;
    if (qfmt_gguf_find_tensor(c->g, name, &idx, NULL) != QFMT_OK) return 0;
    qfmt_gguf_tensor t;
    if (qfmt_gguf_tensor_get(c->g, idx, &t, c->err) != QFMT_OK) return -1;
    if (t.type != QFMT_TYPE_F32 || t.nelements != n || !t.data)
        return qfmt__merr(c->err, QFMT_E_CORRUPT, c->path, name,
                          "not an f32 tensor of %llu values (half the rotated dimensions)", (unsigned long long)n);
    *out = t.data;
    return 1;
}

qfmt_status qfmt__gguf_import_model(const qfmt_gguf *g, const char *path, qfmt__gguf_model *m, qfmt_error *err)
{
    memset(m, 0, sizeof *m);
    const char *a;
    size_t alen;
    qfmt_status s = qfmt_gguf_get_str(g, "general.architecture", &a, &alen, NULL);
    if (s == QFMT_E_NOT_FOUND) return QFMT__FAIL(err, s, path, NULL, "%s", "key 'general.architecture' is missing");
    if (s != QFMT_OK) return QFMT__FAIL(err, QFMT_E_CORRUPT, path, NULL, "%s", "key 'general.architecture': not a string");
    for (size_t i = 0; i < NARCHS; i++)
        if (str_is(a, alen, archs[i].arch)) {
            m->fam = archs[i].fam;
            snprintf(m->arch, sizeof m->arch, "%s", archs[i].arch);
        }
    if (!m->fam) {
        char esc[96];
        qfmt_escape(a, alen < 64 ? alen : 64, esc, sizeof esc);
        return QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, NULL,
                          "general.architecture '%s' is not supported (qfmt imports gpt2, llama, bert, qwen2, qwen3, "
                          "gemma2, gemma3, phi3)",
                          esc);
    }
    gctx c = {g, path, m->arch, NULL, err};
    uint64_t v = 0;
    int r = get_u(&c, "expert_count", false, &v);
    if (r < 0) return err ? err->code : QFMT_E_CORRUPT;
    if (r > 0 && v > 0)
        return QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, NULL, "key '%s.expert_count': mixture-of-experts models are not supported",
                          m->arch);
    if (need_u(&c, "block_count", &m->layers) < 0 || need_u(&c, "embedding_length", &m->d) < 0 ||
        need_u(&c, "attention.head_count", &m->heads) < 0)
        return err ? err->code : QFMT_E_CORRUPT;
    if ((r = get_u(&c, "attention.head_count_kv", false, &m->kv_heads)) < 0) return err ? err->code : QFMT_E_CORRUPT;
    if (r == 0) m->kv_heads = m->heads;
    if (m->layers == 0 || m->layers > 4096 || m->heads == 0 || m->heads > 4096 || m->kv_heads == 0 ||
        m->heads % m->kv_heads != 0 || m->d == 0 || m->d > (1u << 24))
        return QFMT__FAIL(err, QFMT_E_CORRUPT, path, NULL,
                          "keys '%s.block_count', 'embedding_length', 'attention.head_count(_kv)' do not describe a model "
                          "(layers %llu, width %llu, heads %llu / %llu)",
                          m->arch, (unsigned long long)m->layers, (unsigned long long)m->d, (unsigned long long)m->heads,
                          (unsigned long long)m->kv_heads);
    if ((r = get_u(&c, "attention.key_length", false, &m->head_dim)) < 0) return err ? err->code : QFMT_E_CORRUPT;
    if (r == 0) {
        if (m->d % m->heads)
            return QFMT__FAIL(err, QFMT_E_CORRUPT, path, NULL,
                              "key '%s.embedding_length' is not a multiple of the head count, and there is no key_length",
                              m->arch);
        m->head_dim = m->d / m->heads;
    }
    uint64_t vl;
    if ((r = get_u(&c, "attention.value_length", false, &vl)) < 0) return err ? err->code : QFMT_E_CORRUPT;
    if (r > 0 && vl != m->head_dim)
        return QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, NULL, "key '%s.attention.value_length' (%llu) differs from key_length (%llu)",
                          m->arch, (unsigned long long)vl, (unsigned long long)m->head_dim);
    if (m->head_dim == 0 || m->head_dim > 65536 || m->head_dim % 2)
        return QFMT__FAIL(err, QFMT_E_CORRUPT, path, NULL, "head width %llu (key '%s.attention.key_length') is not even and at most 65536",
                          (unsigned long long)m->head_dim, m->arch);
    uint64_t idx;
    qfmt_gguf_tensor t;
    if (qfmt_gguf_find_tensor(g, "token_embd.weight", &idx, NULL) != QFMT_OK)
        return QFMT__FAIL(err, QFMT_E_NOT_FOUND, path, "token_embd.weight", "%s", "the token embedding is missing");
    if ((s = qfmt_gguf_tensor_get(g, idx, &t, err)) != QFMT_OK) return s;
    if (t.ndim != 2 || t.ne[0] != m->d || t.ne[1] == 0)
        return QFMT__FAIL(err, QFMT_E_CORRUPT, path, "token_embd.weight", "not [%llu, vocab] (ne)", (unsigned long long)m->d);
    m->vocab = t.ne[1];
    if ((r = get_u(&c, "vocab_size", false, &v)) < 0) return err ? err->code : QFMT_E_CORRUPT;
    if (r > 0 && v != m->vocab)
        return QFMT__FAIL(err, QFMT_E_CORRUPT, path, NULL, "key '%s.vocab_size' (%llu) is not the token embedding's rows (%llu)", m->arch,
                          (unsigned long long)v, (unsigned long long)m->vocab);
    if (m->fam == &qfmt__family_llama) { /* convert writes Mistral as llama; a window says which */
        if ((r = get_u(&c, "attention.sliding_window", false, &v)) < 0) return err ? err->code : QFMT_E_CORRUPT;
        if (r > 0 && v > 0) m->fam = &qfmt__family_mistral;
    }
    m->permute = strcmp(m->arch, "llama") == 0;
    m->norm_shift = is_gemma(m->fam);
    return QFMT_OK;
}

/* RoPE factors from rope_freqs (llama3): the parameters convert_hf_to_gguf.py made them from
 * when they are found (low and high frequency factors 1 and 4, as Llama 3.x has them), else the
 * same frequencies as longrope with one set of factors (what llama.cpp computes). */
static void import_llama3(kv_list *l, const float *ff, uint64_t n, double theta, uint64_t dim, uint64_t ctx)
{
    float factor = 1.0f;
    for (uint64_t i = 0; i < n; i++)
        if (ff[i] > factor) factor = ff[i];
    bool all_one = true;
    for (uint64_t i = 0; i < n; i++)
        if (ff[i] != 1.0f) all_one = false;
    if (all_one) return; /* the default frequencies */
    const double lo = 1.0, hi = 4.0;
    double sum = 0, cnt = 0, wmax1 = 0, wminf = INFINITY;
    for (uint64_t i = 0; i < n; i++) {
        double freq = 1.0 / pow(theta, (double)(2 * i) / (double)dim), wl = 2 * 3.14159265358979323846 / freq;
        if (ff[i] == 1.0f) wmax1 = wl > wmax1 ? wl : wmax1;
        else if (ff[i] == factor) wminf = wl < wminf ? wl : wminf;
        else if (factor > 1.0f) {
            double sm = (1.0 / ff[i] - 1.0 / factor) / (1.0 - 1.0 / factor);
            sum += wl * (lo + sm * (hi - lo));
            cnt++;
        }
    }
    double L = 0;
    if (cnt > 0) L = floor(sum / cnt + 0.5);
    else if (isfinite(wminf)) {
        double a = hi * wmax1, b = lo * wminf; /* L / hi above every unscaled wavelength, L / lo below every scaled one */
        for (double p = 1; p < 1e12; p *= 2)
            if (p > a && p < b) {
                L = p;
                break;
            }
        if (L == 0) L = floor((a + b) / 2);
    }
    float *re = L > 0 ? malloc((size_t)n * sizeof *re) : NULL;
    bool ok = false;
    if (re) {
        llama3_factors(theta, dim, (double)factor, lo, hi, L, re);
        ok = factors_match(re, ff, n);
    }
    free(re);
    if (ok) {
        kv_str(l, "model.rope_type", "llama3", 6);
        kv_f64(l, "model.rope_scaling.factor", qfmt__gguf_f32_decimal(factor));
        kv_f64(l, "model.rope_scaling.low_freq_factor", lo);
        kv_f64(l, "model.rope_scaling.high_freq_factor", hi);
        kv_u64(l, "model.rope_scaling.original_context_length", (uint64_t)L);
        return;
    }
    /* longrope within its original context: inv_i = 1 / (ff_i theta^(2i/r)), attention factor 1 */
    double *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    if (!a || !b) {
        free(a), free(b);
        l->oom = true;
        return;
    }
    for (uint64_t i = 0; i < n; i++) a[i] = b[i] = qfmt__gguf_f32_decimal(ff[i]);
    kv_str(l, "model.rope_type", "longrope", 8);
    kv_f64s(l, "model.rope_scaling.short_factor", a, n);
    kv_f64s(l, "model.rope_scaling.long_factor", b, n);
    kv_u64(l, "model.original_context_length", ctx);
}

/* The qfmt.model.* keys of a file qfmt exported: model.<key> as they were. */
static int import_overrides(gctx *c, kv_list *l)
{
    uint64_t n = qfmt_gguf_kv_count(c->g);
    bool rope = qfmt_gguf_find_key(c->g, "qfmt.model.rope_type", NULL, NULL) == QFMT_OK;
    if (rope) { /* the RoPE as qfmt had it replaces what llama.cpp's keys gave */
        kv_del_prefix(l, "model.rope_type");
        kv_del_prefix(l, "model.rope_scaling.");
        if (c->arch && strcmp(c->arch, "phi3") != 0) kv_del_prefix(l, "model.original_context_length");
    }
    for (uint64_t i = 0; i < n && !l->oom; i++) {
        qfmt_gguf_kv kv;
        if (qfmt_gguf_kv_get(c->g, i, &kv, c->err) != QFMT_OK) return -1;
        if (strncmp(kv.key, "qfmt.model.", 11) != 0) continue;
        if (c->consumed) c->consumed[i] = 1;
        char key[128];
        if (snprintf(key, sizeof key, "model.%s", kv.key + 11) >= (int)sizeof key) continue;
        uint64_t u;
        double f;
        bool b;
        const char *p;
        size_t len;
        if (kv.type == QFMT_GGUF_STRING && qfmt_gguf_get_str(c->g, kv.key, &p, &len, NULL) == QFMT_OK) {
            if (qfmt_utf8_valid((const uint8_t *)p, len, false)) kv_str(l, key, p, len);
        } else if (kv.type == QFMT_GGUF_BOOL && qfmt_gguf_get_bool(c->g, kv.key, &b, NULL) == QFMT_OK) {
            kv_bool(l, key, b);
        } else if ((kv.type == QFMT_GGUF_FLOAT32 || kv.type == QFMT_GGUF_FLOAT64) &&
                   qfmt_gguf_get_f64(c->g, kv.key, &f, NULL) == QFMT_OK) {
            kv_f64(l, key, kv.type == QFMT_GGUF_FLOAT32 ? qfmt__gguf_f32_decimal((float)f) : f);
        } else if (kv.type != QFMT_GGUF_ARRAY && qfmt_gguf_get_u64(c->g, kv.key, &u, NULL) == QFMT_OK) {
            kv_u64(l, key, u);
        } else if (kv.type == QFMT_GGUF_ARRAY && (kv.elem_type == QFMT_GGUF_FLOAT64 || kv.elem_type == QFMT_GGUF_FLOAT32) &&
                   kv.count <= 65536) {
            double *v = malloc((size_t)(kv.count ? kv.count : 1) * sizeof *v);
            if (!v) return l->oom = true, 0;
            for (uint64_t k = 0; k < kv.count; k++)
                if (qfmt_gguf_array_f64(c->g, kv.key, k, &v[k], NULL) != QFMT_OK) v[k] = NAN;
            if (kv.elem_type == QFMT_GGUF_FLOAT32)
                for (uint64_t k = 0; k < kv.count; k++) v[k] = qfmt__gguf_f32_decimal((float)v[k]);
            kv_f64s(l, key, v, kv.count);
        } else if (kv.type == QFMT_GGUF_ARRAY && kv.elem_type == QFMT_GGUF_STRING && kv.count <= 65536) {
            const char **sv = calloc((size_t)(kv.count ? kv.count : 1), sizeof *sv);
            size_t *lv = calloc((size_t)(kv.count ? kv.count : 1), sizeof *lv);
            bool ok = sv && lv;
            for (uint64_t k = 0; ok && k < kv.count; k++)
                ok = qfmt_gguf_array_str(c->g, kv.key, k, &sv[k], &lv[k], NULL) == QFMT_OK &&
                     qfmt_utf8_valid((const uint8_t *)sv[k], lv[k], false);
            if (ok) kv_strs(l, key, sv, lv, kv.count);
            else if (!sv || !lv) l->oom = true;
            free(sv);
            free(lv);
        }
    }
    return 0;
}

qfmt_status qfmt__gguf_import_meta(const qfmt_gguf *g, const char *path, const qfmt__gguf_model *m,
                                   qfmt_writer *w, uint8_t *consumed, qfmt__gguf_warn_fn warn, void *ctx,
                                   qfmt_error *err)
{
    (void)warn, (void)ctx;
    gctx c = {g, path, m->arch, consumed, err};
    const qfmt_family *f = m->fam;
    kv_list l = {0};
    qfmt_status st = QFMT_OK;
    uint64_t v = 0, ffn = 0, n_ctx = 0;
    double d = 0;
    int r;
#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((x) < 0) {                                                                             \
            st = err ? err->code : QFMT_E_CORRUPT;                                                 \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)
    consume(&c, "general.architecture");
    consume(&c, "general.alignment");
    kv_str(&l, "general.architecture", f->name, strlen(f->name));
    /* the shape (qfmt__gguf_import_model read and checked it) */
    uint64_t tmp;
    TRY(get_u(&c, "block_count", false, &tmp));
    TRY(get_u(&c, "embedding_length", false, &tmp));
    TRY(get_u(&c, "attention.head_count", false, &tmp));
    TRY(get_u(&c, "attention.head_count_kv", false, &tmp));
    TRY(get_u(&c, "attention.key_length", false, &tmp));
    TRY(get_u(&c, "attention.value_length", false, &tmp));
    TRY(get_u(&c, "vocab_size", false, &tmp));
    TRY(get_u(&c, "expert_count", false, &tmp));
    TRY(need_u(&c, "feed_forward_length", &ffn));
    TRY(need_u(&c, "context_length", &n_ctx));
    kv_u64(&l, "model.vocab_size", m->vocab);
    kv_u64(&l, "model.hidden_size", m->d);
    kv_u64(&l, "model.num_layers", m->layers);
    kv_u64(&l, "model.num_heads", m->heads);
    kv_u64(&l, "model.num_kv_heads", m->kv_heads);
    kv_u64(&l, "model.head_dim", m->head_dim);
    kv_u64(&l, "model.ffn_size", ffn);
    kv_u64(&l, "model.context_length", n_ctx);
    if (f == &qfmt__family_bert) { /* the token-type embedding's rows */
        uint64_t idx;
        qfmt_gguf_tensor t;
        if (qfmt_gguf_find_tensor(g, "token_types.weight", &idx, NULL) != QFMT_OK ||
            qfmt_gguf_tensor_get(g, idx, &t, NULL) != QFMT_OK || t.ndim != 2) {
            st = QFMT__FAIL(err, QFMT_E_NOT_FOUND, path, "token_types.weight", "%s", "BERT's token-type embedding is missing");
            goto out;
        }
        kv_u64(&l, "model.type_vocab_size", t.ne[1]);
        consume(&c, "bert.attention.causal");
    }
    if (layer_norm(f)) TRY(need_f(&c, "attention.layer_norm_epsilon", &d));
    else TRY(need_f(&c, "attention.layer_norm_rms_epsilon", &d));
    kv_f64(&l, "model.norm_eps", d);

    uint64_t window = 0;
    TRY(r = get_u(&c, "attention.sliding_window", false, &window));
    if (r == 0 && f == &qfmt__family_gemma2) window = 4096; /* llama.cpp's default for Gemma 2 */
    if (is_rope_family(f)) {
        double theta = 10000.0; /* llama.cpp's default base */
        TRY(get_f(&c, "rope.freq_base", false, &theta));
        kv_f64(&l, "model.rope_theta", theta);
        uint64_t n_rot = m->head_dim;
        TRY(get_u(&c, "rope.dimension_count", false, &n_rot));
        if (n_rot == 0 || n_rot > m->head_dim || n_rot % 2) {
            st = QFMT__FAIL(err, QFMT_E_CORRUPT, path, NULL, "key '%s.rope.dimension_count' (%llu) is not even and at most the head width %llu",
                            m->arch, (unsigned long long)n_rot, (unsigned long long)m->head_dim);
            goto out;
        }
        if (n_rot != m->head_dim) kv_f64(&l, "model.rope_partial_rotary_factor", (double)n_rot / (double)m->head_dim);
        kv_str(&l, "model.rope_type", "default", 7);
        const char *ty = NULL;
        size_t tyl = 0;
        TRY(get_s(&c, "rope.scaling.type", false, &ty, &tyl));
        double factor = 0, scale_linear = 0;
        TRY(get_f(&c, "rope.scaling.factor", false, &factor));
        TRY(r = get_f(&c, "rope.scale_linear", false, &scale_linear)); /* older files */
        if (!ty && r > 0 && scale_linear != 1.0) ty = "linear", tyl = 6, factor = scale_linear;
        uint64_t orig = 0;
        int have_orig;
        TRY(have_orig = get_u(&c, "rope.scaling.original_context_length", false, &orig));
        const float *ff = NULL, *fl = NULL, *fs = NULL;
        TRY(rope_tensor(&c, "rope_freqs.weight", n_rot / 2, &ff));
        TRY(rope_tensor(&c, "rope_factors_long.weight", n_rot / 2, &fl));
        TRY(rope_tensor(&c, "rope_factors_short.weight", n_rot / 2, &fs));
        if (f == &qfmt__family_phi3 && have_orig) kv_u64(&l, "model.original_context_length", orig);
        if (ff) {
            if (!m->permute) {
                st = QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, "rope_freqs.weight", "RoPE frequency factors are read for the llama architecture only");
                goto out;
            }
            import_llama3(&l, ff, n_rot / 2, theta, n_rot, n_ctx);
        } else if (fl || fs || (ty && str_is(ty, tyl, "longrope"))) {
            if (!fl || !fs || f != &qfmt__family_phi3) {
                st = QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, fl ? "rope_factors_short.weight" : "rope_factors_long.weight",
                                "%s", "longrope needs both factor tensors, and is read for phi3 only");
                goto out;
            }
            double *a = malloc((size_t)(n_rot / 2) * sizeof *a), *b = malloc((size_t)(n_rot / 2) * sizeof *b);
            if (!a || !b) {
                free(a), free(b);
                l.oom = true;
                goto out;
            }
            for (uint64_t i = 0; i < n_rot / 2; i++) {
                a[i] = qfmt__gguf_f32_decimal(fs[i]);
                b[i] = qfmt__gguf_f32_decimal(fl[i]);
            }
            kv_str(&l, "model.rope_type", "longrope", 8);
            kv_f64s(&l, "model.rope_scaling.short_factor", a, n_rot / 2);
            kv_f64s(&l, "model.rope_scaling.long_factor", b, n_rot / 2);
            double attn;
            TRY(r = get_f(&c, "rope.scaling.attn_factor", false, &attn));
            uint64_t L = have_orig ? orig : n_ctx;
            double scale = L ? (double)n_ctx / (double)L : 1;
            double formula = scale <= 1 ? 1.0 : sqrt(1 + log(scale) / log((double)L));
            if (r > 0 && !(fabs(attn - formula) <= 1e-6 * formula)) kv_f64(&l, "model.rope_scaling.attention_factor", attn);
        } else if (ty && str_is(ty, tyl, "linear")) {
            if (!(factor > 0)) {
                st = QFMT__FAIL(err, QFMT_E_NOT_FOUND, path, NULL, "key '%s.rope.scaling.factor' is missing (linear RoPE scaling)", m->arch);
                goto out;
            }
            kv_str(&l, "model.rope_type", "linear", 6);
            kv_f64(&l, "model.rope_scaling.factor", factor);
        } else if (ty && str_is(ty, tyl, "yarn")) {
            kv_str(&l, "model.rope_type", "yarn", 4);
            if (factor > 0) kv_f64(&l, "model.rope_scaling.factor", factor);
            if (have_orig) kv_u64(&l, "model.rope_scaling.original_context_length", orig);
            static const char *const yk[][2] = {{"rope.scaling.yarn_beta_fast", "model.rope_scaling.beta_fast"},
                                                {"rope.scaling.yarn_beta_slow", "model.rope_scaling.beta_slow"},
                                                {"rope.scaling.yarn_attn_factor", "model.rope_scaling.attention_factor"}};
            for (size_t k = 0; k < 3; k++) {
                double x;
                TRY(r = get_f(&c, yk[k][0], false, &x));
                if (r > 0) kv_f64(&l, yk[k][1], x);
            }
        } else if (ty && !str_is(ty, tyl, "none")) {
            char esc[64];
            qfmt_escape(ty, tyl < 32 ? tyl : 32, esc, sizeof esc);
            st = QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, NULL, "key '%s.rope.scaling.type': '%s' is not supported", m->arch, esc);
            goto out;
        }
        if (f == &qfmt__family_gemma3 && window > 0) { /* the sliding layers' own, unscaled RoPE */
            double swa = 10000.0;
            TRY(get_f(&c, "rope.freq_base_swa", false, &swa));
            kv_f64(&l, "model.sliding_attention.rope_theta", swa);
            kv_str(&l, "model.sliding_attention.rope_type", "default", 7);
        } else {
            double swa;
            TRY(get_f(&c, "rope.freq_base_swa", false, &swa));
        }
    }
    /* sliding-window attention: every layer (mistral, phi3), llama.cpp's pattern (Gemma) */
    if (window > 0 && f != &qfmt__family_llama && f != &qfmt__family_qwen2 && f != &qfmt__family_qwen3)
        kv_u64(&l, "model.sliding_window", window);
    if (is_gemma(f)) {
        const char *names[4096];
        uint32_t period = gemma_period(f);
        char kb[160];
        const char *pk = akey(&c, "attention.sliding_window_pattern", kb, sizeof kb);
        uint32_t et = 0;
        uint64_t pn = 0, pv = 0;
        bool arr = qfmt_gguf_get_array(g, pk, &et, &pn, NULL) == QFMT_OK;
        if (!arr) {
            TRY(r = get_u(&c, "attention.sliding_window_pattern", false, &pv));
            if (r > 0 && pv >= 1 && pv <= 4096) period = (uint32_t)pv;
        } else {
            consume(&c, pk);
        }
        for (uint64_t i = 0; i < m->layers; i++) {
            bool slide = window > 0 && i % period < period - 1;
            if (arr && pn == m->layers) {
                bool b;
                uint64_t u;
                if (qfmt_gguf_array_bool(g, pk, i, &b, NULL) == QFMT_OK) slide = window > 0 && b;
                else if (qfmt_gguf_array_u64(g, pk, i, &u, NULL) == QFMT_OK) slide = window > 0 && u != 0;
            }
            names[i] = slide ? "sliding_attention" : "full_attention";
        }
        kv_strs(&l, "model.layer_types", names, NULL, m->layers);
        kv_f64(&l, "model.query_pre_attn_scalar", gemma_scalar(m));
        double cap;
        TRY(r = get_f(&c, "attn_logit_softcapping", false, &cap));
        if (r == 0 && f == &qfmt__family_gemma2) r = 1, cap = 50.0; /* llama.cpp's defaults */
        if (r > 0 && cap > 0) kv_f64(&l, "model.attn_logit_softcapping", cap);
        TRY(r = get_f(&c, "final_logit_softcapping", false, &cap));
        if (r == 0 && f == &qfmt__family_gemma2) r = 1, cap = 30.0;
        if (r > 0 && cap > 0) kv_f64(&l, "model.final_logit_softcapping", cap);
    }
    uint64_t idx;
    bool head = qfmt_gguf_find_tensor(g, "output.weight", &idx, NULL) == QFMT_OK;
    kv_bool(&l, "model.tie_word_embeddings", !head);
    static const char *const ids[][2] = {{"tokenizer.ggml.bos_token_id", "model.bos_token_id"},
                                         {"tokenizer.ggml.eos_token_id", "model.eos_token_id"},
                                         {"tokenizer.ggml.padding_token_id", "model.pad_token_id"}};
    for (size_t k = 0; k < 3; k++)
        if (qfmt_gguf_get_u64(g, ids[k][0], &v, NULL) == QFMT_OK && v < m->vocab) kv_u64(&l, ids[k][1], v);
    TRY(import_overrides(&c, &l));
    if (l.oom) {
        st = QFMT__FAIL(err, QFMT_E_NOMEM, path, NULL, "%s", "out of memory");
        goto out;
    }
    st = kv_write(&l, w, err);
out:
#undef TRY
    if (st == QFMT_OK && l.oom) st = QFMT__FAIL(err, QFMT_E_NOMEM, path, NULL, "%s", "out of memory");
    kv_free(&l);
    return st;
}

/* ==== Export ============================================================================= */

typedef struct {
    const qfmt_reader *r;
    const qfmt__gguf_model *m;
    qfmt_gguf_writer *w;
    qfmt__gguf_warn_fn warn;
    void *ctx;
    qfmt_error *err;
    qfmt_status s;
} ectx;

static void ewarn(ectx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ewarn(ectx *c, const char *fmt, ...)
{
    if (!c->warn) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->warn(c->ctx, msg);
}

/* model.* getters: 1 found, 0 absent; another type: an error (c->s). */
static int m_u64(ectx *c, const char *key, uint64_t *v)
{
    if (c->s != QFMT_OK) return 0;
    qfmt_error e;
    qfmt_status s = qfmt_meta_get_u64(c->r, key, v, &e);
    if (s == QFMT_E_NOT_FOUND) return 0;
    if (s != QFMT_OK) {
        c->s = QFMT__FAIL(c->err, QFMT_E_TYPE, qfmt_reader_path(c->r), NULL, "metadata '%s': not a u64", key);
        return 0;
    }
    return 1;
}
static int m_f64(ectx *c, const char *key, double *v)
{
    if (c->s != QFMT_OK) return 0;
    qfmt_status s = qfmt_meta_get_f64(c->r, key, v, NULL);
    if (s == QFMT_E_NOT_FOUND) return 0;
    if (s != QFMT_OK) {
        c->s = QFMT__FAIL(c->err, QFMT_E_TYPE, qfmt_reader_path(c->r), NULL, "metadata '%s': not an f64", key);
        return 0;
    }
    return 1;
}
static int m_str(ectx *c, const char *key, const char **p, uint64_t *len)
{
    if (c->s != QFMT_OK) return 0;
    qfmt_status s = qfmt_meta_get_string(c->r, key, p, len, NULL);
    if (s == QFMT_E_NOT_FOUND) return 0;
    if (s != QFMT_OK) {
        c->s = QFMT__FAIL(c->err, QFMT_E_TYPE, qfmt_reader_path(c->r), NULL, "metadata '%s': not a string", key);
        return 0;
    }
    return 1;
}
static bool m_is(ectx *c, const char *key, const char *value)
{
    const char *p;
    uint64_t len;
    return m_str(c, key, &p, &len) && str_is(p, (size_t)len, value);
}

static const char *ekey(const ectx *c, const char *suffix, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.%s", c->m->arch, suffix);
    return buf;
}

static void w_u32(ectx *c, const char *suffix, uint64_t v)
{
    char kb[160];
    if (c->s != QFMT_OK) return;
    if (v > UINT32_MAX) {
        c->s = QFMT__FAIL(c->err, QFMT_E_RANGE, qfmt_reader_path(c->r), NULL, "'%s' = %llu does not fit GGUF's u32",
                          ekey(c, suffix, kb, sizeof kb), (unsigned long long)v);
        return;
    }
    c->s = qfmt_gguf_writer_set_u32(c->w, ekey(c, suffix, kb, sizeof kb), (uint32_t)v, c->err);
}
static void w_f32(ectx *c, const char *suffix, double v)
{
    char kb[160];
    if (c->s == QFMT_OK) c->s = qfmt_gguf_writer_set_f32(c->w, ekey(c, suffix, kb, sizeof kb), (float)v, c->err);
}
static void w_bool(ectx *c, const char *suffix, bool v)
{
    char kb[160];
    if (c->s == QFMT_OK) c->s = qfmt_gguf_writer_set_bool(c->w, ekey(c, suffix, kb, sizeof kb), v, c->err);
}
static void w_str(ectx *c, const char *suffix, const char *v)
{
    char kb[160];
    if (c->s == QFMT_OK) c->s = qfmt_gguf_writer_set_str(c->w, ekey(c, suffix, kb, sizeof kb), v, strlen(v), c->err);
}

/* model.<name> carried as qfmt.model.<name>, whatever its type. */
static void carry(ectx *c, const char *name)
{
    if (c->s != QFMT_OK) return;
    char key[128], gkey[160];
    snprintf(key, sizeof key, "model.%s", name);
    snprintf(gkey, sizeof gkey, "qfmt.model.%s", name);
    uint64_t idx;
    if (qfmt_meta_find(c->r, key, &idx, NULL) != QFMT_OK) return;
    const char *k;
    qfmt_value v;
    if ((c->s = qfmt_meta_get_entry(c->r, idx, &k, &v, c->err)) != QFMT_OK) return;
    switch (v.type) {
    case QFMT_META_U8: case QFMT_META_U16: case QFMT_META_U32: case QFMT_META_U64:
        c->s = qfmt_gguf_writer_set_u64(c->w, gkey, v.v.u, c->err);
        break;
    case QFMT_META_I8: case QFMT_META_I16: case QFMT_META_I32: case QFMT_META_I64:
        c->s = qfmt_gguf_writer_set_i64(c->w, gkey, v.v.i, c->err);
        break;
    case QFMT_META_F32: case QFMT_META_F64: c->s = qfmt_gguf_writer_set_f64(c->w, gkey, v.v.f, c->err); break;
    case QFMT_META_BOOL: c->s = qfmt_gguf_writer_set_bool(c->w, gkey, v.v.u != 0, c->err); break;
    case QFMT_META_STRING: c->s = qfmt_gguf_writer_set_str(c->w, gkey, v.v.str.ptr, (size_t)v.v.str.len, c->err); break;
    case QFMT_META_ARRAY: {
        uint64_t n = v.v.arr.count;
        if (v.v.arr.elem_type == QFMT_META_F64 && n <= 65536) {
            double *a = malloc((size_t)(n ? n : 1) * sizeof *a);
            if (!a) {
                c->s = QFMT__FAIL(c->err, QFMT_E_NOMEM, qfmt_reader_path(c->r), NULL, "%s", "out of memory");
                return;
            }
            c->s = qfmt_meta_array_copy(c->r, key, QFMT_META_F64, a, n, c->err);
            if (c->s == QFMT_OK) c->s = qfmt_gguf_writer_set_array(c->w, gkey, QFMT_GGUF_FLOAT64, a, n, c->err);
            free(a);
        } else if (v.v.arr.elem_type == QFMT_META_STRING &&
                   qfmt_meta_get_string_array(c->r, key, &n, NULL) == QFMT_OK && n <= 65536) {
            const char **sv = calloc((size_t)(n ? n : 1), sizeof *sv);
            size_t *lv = calloc((size_t)(n ? n : 1), sizeof *lv);
            if (!sv || !lv) c->s = QFMT__FAIL(c->err, QFMT_E_NOMEM, qfmt_reader_path(c->r), NULL, "%s", "out of memory");
            for (uint64_t i = 0; c->s == QFMT_OK && i < n; i++) {
                uint64_t len;
                c->s = qfmt_meta_string_array_get(c->r, key, i, &sv[i], &len, c->err);
                lv[i] = (size_t)len;
            }
            if (c->s == QFMT_OK) c->s = qfmt_gguf_writer_set_str_array(c->w, gkey, sv, lv, n, c->err);
            free(sv);
            free(lv);
        }
        break;
    }
    default: break;
    }
}

static const char *rope_type_of(ectx *c, char *buf, size_t cap)
{
    const char *p;
    uint64_t len;
    if (!m_str(c, "model.rope_type", &p, &len)) return "default";
    snprintf(buf, cap, "%.*s", (int)(len < 31 ? len : 31), p);
    return buf;
}

qfmt_status qfmt__gguf_export_model(const qfmt_reader *r, qfmt__gguf_model *m, qfmt_error *err)
{
    memset(m, 0, sizeof *m);
    const char *path = qfmt_reader_path(r);
    const char *a;
    uint64_t alen;
    if (qfmt_meta_get_string(r, "general.architecture", &a, &alen, NULL) != QFMT_OK)
        return QFMT__FAIL(err, QFMT_E_NOT_FOUND, path, NULL, "%s", "metadata 'general.architecture' is missing");
    m->fam = qfmt_family_find(a, (size_t)alen);
    if (!m->fam) {
        char esc[96];
        qfmt_escape(a, alen < 64 ? (size_t)alen : 64, esc, sizeof esc);
        return QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, NULL, "general.architecture '%s': no llama.cpp architecture", esc);
    }
    snprintf(m->arch, sizeof m->arch, "%s", qfmt_family_gguf_arch(m->fam));
    ectx c = {r, m, NULL, NULL, NULL, err, QFMT_OK};
    static const char *const need[] = {"model.vocab_size", "model.hidden_size", "model.num_layers", "model.num_heads"};
    uint64_t *dst[] = {&m->vocab, &m->d, &m->layers, &m->heads};
    for (size_t i = 0; i < 4; i++)
        if (!m_u64(&c, need[i], dst[i])) {
            if (c.s == QFMT_OK) c.s = QFMT__FAIL(err, QFMT_E_NOT_FOUND, path, NULL, "metadata '%s' is missing", need[i]);
            return c.s;
        }
    if (!m_u64(&c, "model.num_kv_heads", &m->kv_heads)) m->kv_heads = m->heads;
    if (!m_u64(&c, "model.head_dim", &m->head_dim)) m->head_dim = m->heads ? m->d / m->heads : 0;
    if (c.s != QFMT_OK) return c.s;
    if (m->layers == 0 || m->layers > 4096 || m->heads == 0 || m->heads > 4096 || m->kv_heads == 0 ||
        m->heads % m->kv_heads || m->head_dim == 0 || m->head_dim % 2 || m->head_dim > 65536 || m->d == 0)
        return QFMT__FAIL(err, QFMT_E_CORRUPT, path, NULL, "%s",
                          "model.num_layers, num_heads, num_kv_heads, head_dim do not describe a model");
    m->permute = strcmp(m->arch, "llama") == 0;
    m->norm_shift = is_gemma(m->fam);
    return QFMT_OK;
}

void qfmt__gguf_extras_free(qfmt__gguf_extras *x)
{
    for (size_t i = 0; i < x->nextra; i++) free(x->extra[i].data);
    memset(x, 0, sizeof *x);
}

static float *extra_new(ectx *c, qfmt__gguf_extras *x, const char *name, uint64_t n)
{
    if (c->s != QFMT_OK) return NULL;
    qfmt__gguf_extra *e = &x->extra[x->nextra];
    e->data = calloc((size_t)(n ? n : 1), sizeof *e->data);
    if (!e->data) {
        c->s = QFMT__FAIL(c->err, QFMT_E_NOMEM, qfmt_reader_path(c->r), NULL, "%s", "out of memory");
        return NULL;
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    e->n = n;
    x->nextra++;
    return e->data;
}

/* A model.rope_scaling.<k> list of n numbers into out as f32. */
static void factor_list(ectx *c, const char *key, uint64_t n, float *out)
{
    uint32_t et;
    uint64_t cnt;
    if (c->s != QFMT_OK) return;
    if (qfmt_meta_get_array(c->r, key, &et, &cnt, NULL) != QFMT_OK || et != QFMT_META_F64 || cnt != n) {
        c->s = QFMT__FAIL(c->err, QFMT_E_CORRUPT, qfmt_reader_path(c->r), NULL,
                          "metadata '%s' is not %llu f64 values (half the rotated dimensions)", key, (unsigned long long)n);
        return;
    }
    for (uint64_t i = 0; i < n && c->s == QFMT_OK; i++) {
        qfmt_value v;
        if ((c->s = qfmt_meta_array_get(c->r, key, i, &v, c->err)) == QFMT_OK) out[i] = (float)v.v.f;
    }
}

qfmt_status qfmt__gguf_export_meta(const qfmt_reader *r, const qfmt__gguf_model *m, qfmt_gguf_writer *w,
                                   qfmt__gguf_extras *x, qfmt__gguf_warn_fn warn, void *ctx, qfmt_error *err)
{
    memset(x, 0, sizeof *x);
    ectx c = {r, m, w, warn, ctx, err, QFMT_OK};
    const qfmt_family *f = m->fam;
    const char *path = qfmt_reader_path(r);
    uint64_t ffn = 0, n_ctx = 0, window = 0, orig = 0;
    double eps = 0, theta = 10000.0, v = 0;
    bool rms = !layer_norm(f), rope = is_rope_family(f);
    if (!m_u64(&c, "model.ffn_size", &ffn) || !m_u64(&c, "model.context_length", &n_ctx) || !m_f64(&c, "model.norm_eps", &eps)) {
        if (c.s == QFMT_OK)
            c.s = QFMT__FAIL(err, QFMT_E_NOT_FOUND, path, NULL, "%s", "metadata model.ffn_size, context_length and norm_eps are needed");
        return c.s;
    }
    if (rope && !m_f64(&c, "model.rope_theta", &theta)) theta = f->rope_theta_default;
    bool has_window = m_u64(&c, "model.sliding_window", &window) && window > 0;
    double partial = 1.0;
    bool has_partial = m_f64(&c, "model.rope_partial_rotary_factor", &partial);
    uint64_t n_rot = has_partial ? (uint64_t)floor((double)m->head_dim * partial) : m->head_dim;
    if (has_partial && (n_rot == 0 || n_rot > m->head_dim || n_rot % 2))
        c.s = QFMT__FAIL(err, QFMT_E_CORRUPT, path, NULL, "%s", "metadata 'model.rope_partial_rotary_factor' gives no even rotated width");
    char tbuf[32];
    const char *rt = rope ? rope_type_of(&c, tbuf, sizeof tbuf) : "default";
    bool heads_fit = m->head_dim * m->heads == m->d;
    if (c.s != QFMT_OK) return c.s;

    /* The keys, in convert_hf_to_gguf.py's order for each model class. */
    if (f == &qfmt__family_gpt2) { /* GPT2Model */
        w_u32(&c, "block_count", m->layers);
        w_u32(&c, "context_length", n_ctx);
        w_u32(&c, "embedding_length", m->d);
        w_u32(&c, "feed_forward_length", ffn);
        w_u32(&c, "attention.head_count", m->heads);
        w_f32(&c, "attention.layer_norm_epsilon", eps);
    } else if (f == &qfmt__family_phi3) { /* Phi3MiniModel */
        if (!m_u64(&c, "model.original_context_length", &orig)) orig = n_ctx;
        w_u32(&c, "context_length", n_ctx);
        w_u32(&c, "rope.scaling.original_context_length", orig);
        w_u32(&c, "embedding_length", m->d);
        w_u32(&c, "feed_forward_length", ffn);
        w_u32(&c, "block_count", m->layers);
        w_u32(&c, "attention.head_count", m->heads);
        w_u32(&c, "attention.head_count_kv", m->kv_heads);
        w_f32(&c, "attention.layer_norm_rms_epsilon", eps);
        w_u32(&c, "rope.dimension_count", n_rot);
        w_f32(&c, "rope.freq_base", theta);
        if (!heads_fit) w_u32(&c, "attention.key_length", m->head_dim), w_u32(&c, "attention.value_length", m->head_dim);
        w_u32(&c, "attention.sliding_window", has_window ? window : 0);
    } else if (f == &qfmt__family_gemma2) { /* Gemma2Model */
        w_u32(&c, "context_length", n_ctx);
        w_u32(&c, "embedding_length", m->d);
        w_u32(&c, "block_count", m->layers);
        w_u32(&c, "feed_forward_length", ffn);
        w_u32(&c, "attention.head_count", m->heads);
        w_u32(&c, "attention.head_count_kv", m->kv_heads);
        w_f32(&c, "attention.layer_norm_rms_epsilon", eps);
        w_u32(&c, "attention.key_length", m->head_dim);
        w_u32(&c, "attention.value_length", m->head_dim);
        if (m_f64(&c, "model.attn_logit_softcapping", &v)) w_f32(&c, "attn_logit_softcapping", v);
        else ewarn(&c, "%s: no attention soft-capping: llama.cpp's gemma2 caps at 50", path);
        if (m_f64(&c, "model.final_logit_softcapping", &v)) w_f32(&c, "final_logit_softcapping", v);
        else ewarn(&c, "%s: no final soft-capping: llama.cpp's gemma2 caps at 30", path);
        if (has_window) w_u32(&c, "attention.sliding_window", window);
        if (n_rot != m->head_dim) w_u32(&c, "rope.dimension_count", n_rot);
        if (theta != 10000.0) w_f32(&c, "rope.freq_base", theta); /* llama.cpp's default otherwise */
    } else { /* TextModel: llama (LlamaModel, Mistral too), qwen2, qwen3, gemma3 (Gemma3Model), bert (BertModel) */
        bool bert = f == &qfmt__family_bert;
        w_u32(&c, "block_count", m->layers);
        w_u32(&c, "context_length", n_ctx);
        w_u32(&c, "embedding_length", m->d);
        w_u32(&c, "feed_forward_length", ffn);
        w_u32(&c, "attention.head_count", m->heads);
        if (!bert) w_u32(&c, "attention.head_count_kv", m->kv_heads);
        if (bert) w_bool(&c, "attention.causal", false);
        if (strcmp(rt, "linear") == 0) {
            if (!m_f64(&c, "model.rope_scaling.factor", &v) && c.s == QFMT_OK)
                c.s = QFMT__FAIL(err, QFMT_E_NOT_FOUND, path, NULL, "%s", "metadata 'model.rope_scaling.factor' is missing (linear RoPE)");
            w_str(&c, "rope.scaling.type", "linear");
            w_f32(&c, "rope.scaling.factor", v);
        } else if (strcmp(rt, "yarn") == 0) {
            w_str(&c, "rope.scaling.type", "yarn");
            if (!m_f64(&c, "model.rope_scaling.factor", &v)) {
                uint64_t o2 = n_ctx;
                m_u64(&c, "model.rope_scaling.original_context_length", &o2);
                v = o2 ? (double)n_ctx / (double)o2 : 1;
            }
            w_f32(&c, "rope.scaling.factor", v);
            if (!m_u64(&c, "model.rope_scaling.original_context_length", &orig)) orig = n_ctx;
            w_u32(&c, "rope.scaling.original_context_length", orig);
            if (m_f64(&c, "model.rope_scaling.attention_factor", &v)) w_f32(&c, "rope.scaling.yarn_attn_factor", v);
            if (m_f64(&c, "model.rope_scaling.beta_fast", &v)) w_f32(&c, "rope.scaling.yarn_beta_fast", v);
            if (m_f64(&c, "model.rope_scaling.beta_slow", &v)) w_f32(&c, "rope.scaling.yarn_beta_slow", v);
        }
        if (rope) w_f32(&c, "rope.freq_base", theta);
        if (f == &qfmt__family_gemma3 && m_f64(&c, "model.sliding_attention.rope_theta", &v)) {
            w_f32(&c, "rope.freq_base_swa", v);
            if (!m_is(&c, "model.sliding_attention.rope_type", "default") &&
                qfmt_meta_find(r, "model.sliding_attention.rope_type", NULL, NULL) == QFMT_OK && c.s == QFMT_OK)
                c.s = QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, NULL, "%s",
                                 "metadata 'model.sliding_attention.rope_type': llama.cpp's gemma3 has no scaling for the sliding layers");
        }
        w_f32(&c, rms ? "attention.layer_norm_rms_epsilon" : "attention.layer_norm_epsilon", eps);
        if (!bert || !heads_fit) {
            w_u32(&c, "attention.key_length", m->head_dim);
            w_u32(&c, "attention.value_length", m->head_dim);
        }
        if (f == &qfmt__family_llama || f == &qfmt__family_mistral) { /* LlamaModel */
            w_u32(&c, "vocab_size", m->vocab);
            w_u32(&c, "rope.dimension_count", n_rot);
            if (f == &qfmt__family_mistral && has_window) {
                w_u32(&c, "attention.sliding_window", window);
                ewarn(&c, "%s: llama.cpp's llama architecture has no sliding window (model.sliding_window = %llu): it attends to "
                          "every position",
                      path, (unsigned long long)window);
            }
        } else if (rope && n_rot != m->head_dim) {
            w_u32(&c, "rope.dimension_count", n_rot);
        }
        if (f == &qfmt__family_gemma3) {
            if (has_window) w_u32(&c, "attention.sliding_window", window);
            if (m_f64(&c, "model.final_logit_softcapping", &v)) w_f32(&c, "final_logit_softcapping", v);
            if (m_f64(&c, "model.attn_logit_softcapping", &v))
                ewarn(&c, "%s: llama.cpp's gemma3 has no attention soft-capping (model.attn_logit_softcapping)", path);
        }
        if ((f == &qfmt__family_qwen2 || f == &qfmt__family_qwen3) && has_window)
            ewarn(&c, "%s: model.sliding_window is not written: llama.cpp's %s has no sliding window", path, m->arch);
    }
    if (c.s != QFMT_OK) return c.s;

    /* RoPE factors and the parameters llama.cpp's keys do not hold */
    if (strcmp(rt, "llama3") == 0) {
        double factor = 0, lo = 0, hi = 0;
        uint64_t L = 0;
        if (!m->permute || !m_f64(&c, "model.rope_scaling.factor", &factor) ||
            !m_f64(&c, "model.rope_scaling.low_freq_factor", &lo) || !m_f64(&c, "model.rope_scaling.high_freq_factor", &hi) ||
            !m_u64(&c, "model.rope_scaling.original_context_length", &L) || !(hi > lo) || L == 0) {
            if (c.s == QFMT_OK)
                c.s = QFMT__FAIL(err, m->permute ? QFMT_E_NOT_FOUND : QFMT_E_UNSUPPORTED, path, NULL, "%s",
                                 m->permute ? "metadata model.rope_scaling.factor, low_freq_factor, high_freq_factor and "
                                              "original_context_length are needed (llama3 RoPE)"
                                            : "llama3 RoPE: llama.cpp reads its factors for the llama architecture only");
            return c.s;
        }
        float *ff = extra_new(&c, x, "rope_freqs.weight", n_rot / 2);
        if (ff) llama3_factors(theta, n_rot, factor, lo, hi, (double)L, ff);
    } else if (strcmp(rt, "longrope") == 0 || strcmp(rt, "su") == 0) {
        if (f != &qfmt__family_phi3) {
            return QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, NULL, "%s",
                              "longrope: llama.cpp reads its factors for the phi3 architecture only");
        }
        float *fl = extra_new(&c, x, "rope_factors_long.weight", n_rot / 2);
        factor_list(&c, "model.rope_scaling.long_factor", n_rot / 2, fl);
        float *fs = extra_new(&c, x, "rope_factors_short.weight", n_rot / 2);
        factor_list(&c, "model.rope_scaling.short_factor", n_rot / 2, fs);
        double attn, scale = orig ? (double)n_ctx / (double)orig : 1;
        if (!m_f64(&c, "model.rope_scaling.attention_factor", &attn))
            attn = scale > 1 ? sqrt(1 + log(scale) / log((double)orig)) : 1.0;
        w_f32(&c, "rope.scaling.attn_factor", attn);
    } else if (strcmp(rt, "default") != 0 && strcmp(rt, "linear") != 0 && strcmp(rt, "yarn") != 0 &&
               strcmp(rt, "dynamic") != 0) {
        return QFMT__FAIL(err, QFMT_E_UNSUPPORTED, path, NULL, "metadata 'model.rope_type': '%s' has no GGUF form", rt);
    }
    if (strcmp(rt, "llama3") == 0 || strcmp(rt, "yarn") == 0) { /* the whole RoPE, as qfmt has it */
        carry(&c, "rope_type");
        static const char *const rk[] = {"rope_scaling.factor", "rope_scaling.low_freq_factor", "rope_scaling.high_freq_factor",
                                         "rope_scaling.original_context_length", "rope_scaling.attention_factor",
                                         "rope_scaling.beta_fast", "rope_scaling.beta_slow", "rope_scaling.mscale",
                                         "rope_scaling.mscale_all_dim", "rope_scaling.truncate"};
        for (size_t k = 0; k < sizeof rk / sizeof rk[0]; k++) carry(&c, rk[k]);
    }
    carry(&c, "dtype"); /* transformers rounds the RoPE frequencies (Gemma 3: the embedding scale) to it */
    const char *act;
    uint64_t alen;
    if (m_str(&c, "model.activation", &act, &alen) && !str_is(act, (size_t)alen, f->graph.activation)) {
        static const char *const same[][2] = {{"gelu_new", "gelu_pytorch_tanh"}, {"gelu_new", "gelu_fast"},
                                              {"gelu_pytorch_tanh", "gelu_new"}, {"silu", "swish"}, {"gelu", "gelu_python"}};
        bool alias = false;
        for (size_t k = 0; k < sizeof same / sizeof same[0]; k++)
            alias = alias || (str_is(act, (size_t)alen, same[k][1]) && strcmp(f->graph.activation, same[k][0]) == 0);
        if (!alias)
            ewarn(&c, "%s: model.activation '%.*s': llama.cpp's %s uses its own activation", path, (int)(alen < 40 ? alen : 40), act,
                  m->arch);
        carry(&c, "activation");
    }
    if (is_gemma(f)) {
        double q = 0;
        if (m_f64(&c, "model.query_pre_attn_scalar", &q) && q != gemma_scalar(m)) {
            ewarn(&c, "%s: model.query_pre_attn_scalar %g: llama.cpp's %s scales attention by 1/sqrt(%g)", path, q, m->arch,
                  gemma_scalar(m));
            carry(&c, "query_pre_attn_scalar");
        }
        /* layer types other than llama.cpp's default pattern: for gemma3, written as the period
         * llama.cpp reads (attention.sliding_window_pattern, a scalar: layer il slides when
         * il % period < period - 1; node-llama-cpp 3.21.1's llama.cpp honours it, and ignores an
         * array) when they have that form; a warning otherwise (gemma2's pattern is fixed) */
        uint64_t n = 0;
        bool slide[4096];
        if (has_window && qfmt_meta_get_string_array(r, "model.layer_types", &n, NULL) == QFMT_OK && n == m->layers &&
            n <= sizeof slide / sizeof slide[0]) {
            bool read = true, differ = false;
            uint32_t period = gemma_period(f);
            for (uint64_t i = 0; i < n && read; i++) {
                const char *p;
                uint64_t len;
                read = qfmt_meta_string_array_get(r, "model.layer_types", i, &p, &len, NULL) == QFMT_OK;
                slide[i] = read && str_is(p, (size_t)len, "sliding_attention");
                differ = differ || slide[i] != (i % period < period - 1);
            }
            uint64_t fit = 0;
            for (uint64_t per = 1; f == &qfmt__family_gemma3 && read && differ && per <= n + 1 && !fit; per++) {
                bool all = true;
                for (uint64_t i = 0; i < n && all; i++) all = slide[i] == (i % per < per - 1);
                if (all) fit = per;
            }
            if (fit) {
                w_u32(&c, "attention.sliding_window_pattern", fit);
            } else if (differ) {
                ewarn(&c, "%s: model.layer_types differ from llama.cpp's %s pattern (every %u-th layer global) and "
                          "have no period it reads: llama.cpp runs its own",
                      path, m->arch, gemma_period(f));
                carry(&c, "layer_types");
            }
        }
    }
    return c.s;
}
