/* The conversion policy: the default one (issue: quantize 2-D weights, never embeddings, the
 * output projection, norms or biases) and its --keep / --quantize overrides; recipes;
 * llama.cpp's type mixes (quant_mix.c); size targets, measured before the conversion. */
#define _POSIX_C_SOURCE 200809L
#include "convert_policy.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "model_internal.h"
#include "ops.h"

static bool is_plain_float(uint32_t t)
{
    return t == QFMT_TYPE_F32 || t == QFMT_TYPE_F16 || t == QFMT_TYPE_BF16;
}

/* A type a tensor can be converted to: a float type or a block type. */
static bool is_target(uint32_t t)
{
    const qfmt_type_traits *tr = qfmt_type_get_traits(t);
    return is_plain_float(t) || (tr && tr->block_elems > 1);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool any_glob(const char *const *globs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (fnmatch(globs[i], name, 0) == 0) return true;
    return false;
}

static const qfmt_convert_rule *first_rule(const qfmt__convert_policy *p, const char *name)
{
    for (size_t i = 0; i < p->nrules; i++)
        if (fnmatch(p->rules[i].glob, name, 0) == 0) return &p->rules[i];
    return NULL;
}

/* A tensor the families know and do not call a linear weight (embeddings, heads, norms), or
 * one no family knows whose name says it is an embedding or an output head. */
static bool is_embedding_or_head(const char *name)
{
    unsigned role = qfmt_family_tensor_role(NULL, name);
    if (role & QFMT_FAMILY_KNOWN) return !(role & QFMT_FAMILY_QUANTIZE);
    return strstr(name, "embed") != NULL || strncmp(name, "lm_head.", 8) == 0 || strcmp(name, "output.weight") == 0;
}

bool qfmt__policy_valid_types(const qfmt_convert_opts *o)
{
    const qfmt_convert_types *t = o->types;
    if (!t) return true;
    for (size_t k = 0; k < sizeof t->reserved / sizeof t->reserved[0]; k++)
        if (t->reserved[k]) return false;
    if (t->mix && qfmt__mix_find(t->mix) < 0) return false;
    if (t->nrules && !t->rules) return false;
    for (size_t i = 0; i < t->nrules; i++)
        if (!t->rules[i].glob || (t->rules[i].type != QFMT_CONVERT_KEEP && !is_target(t->rules[i].type))) return false;
    if (!(t->target_bpw >= 0) || !isfinite(t->target_bpw) || (t->target_bpw > 0 && t->mix)) return false;
    if (t->ntarget_types > QFMT__BPW_MAX_OPTIONS || (!t->target_types) != (!t->ntarget_types)) return false;
    for (size_t i = 0; i < t->ntarget_types; i++)
        if (!is_target(t->target_types[i])) return false;
    return true;
}

void qfmt__policy_free(qfmt__convert_policy *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->nchosen; i++) free(p->chosen[i].name);
    free(p->chosen);
    free(p->sized_names); /* its strings are the chosen ones' */
    p->chosen = NULL;
    p->sized_names = NULL;
    p->nchosen = p->nsized = 0;
}

qfmt_status qfmt__policy_init(qfmt__convert_policy *p, const qfmt_convert_opts *o, const qfmt_family *f,
                              const qfmt__policy_hparams *h, const qfmt__policy_tensor *t, size_t n,
                              qfmt_error *err)
{
    memset(p, 0, sizeof *p);
    p->target = o->type;
    p->keep = o->keep;
    p->nkeep = o->nkeep;
    p->quant = o->quantize;
    p->nquant = o->nquantize;
    p->family = f;
    p->mix.mix = -1;
    const qfmt_convert_types *ty = o->types;
    if (!ty) return QFMT_OK;
    p->rules = ty->rules;
    p->nrules = ty->nrules;
    if (ty->target_bpw > 0) {
        p->target_bpw = ty->target_bpw;
        p->target_types = ty->target_types ? ty->target_types : qfmt__bpw_default_types;
        p->ntarget_types = ty->target_types ? ty->ntarget_types
                                            : sizeof qfmt__bpw_default_types / sizeof qfmt__bpw_default_types[0];
    }
    if (!ty->mix) return QFMT_OK;
    qfmt__mix_model *mm = &p->mix;
    mm->mix = qfmt__mix_find(ty->mix);
    mm->tied = true; /* llama.cpp: tied until an output tensor is seen */
    mm->has_imatrix = o->importance != NULL;
    long max_layer = -1;
    uint64_t q_rows = 0, k_rows = 0;
    for (size_t i = 0; i < n; i++) {
        long layer;
        qfmt__tensor_cat c = qfmt__mix_category(f, t[i].name, t[i].ndim, &layer);
        if (c == QFMT__CAT_ATTN_V || c == QFMT__CAT_ATTN_QKV) mm->n_attention_wv++;
        if (c == QFMT__CAT_OUTPUT) mm->tied = false;
        if (layer > max_layer) max_layer = layer;
        if (c == QFMT__CAT_ATTN_Q && !q_rows) q_rows = t[i].dims[0];
        if (c == QFMT__CAT_ATTN_K && !k_rows) k_rows = t[i].dims[0];
    }
    mm->n_layer = h && h->n_layer && h->n_layer <= UINT32_MAX ? (uint32_t)h->n_layer : (uint32_t)(max_layer + 1);
    uint64_t heads = h ? h->heads : 0, kv = h && h->kv_heads ? h->kv_heads : heads;
    if (heads && kv) mm->n_gqa = (uint32_t)(heads / kv);
    else if (q_rows && k_rows) mm->n_gqa = (uint32_t)(q_rows / k_rows); /* no config: the shapes say it */
    else mm->n_gqa = 1;
    if (mm->mix == QFMT__MIX_Q2_K_S && !mm->has_imatrix)
        return QFMT__FAIL(err, QFMT_E_ARG, NULL, NULL, "%s",
                          "mix q2_k_s needs an importance matrix (llama.cpp refuses it without one)");
    return QFMT_OK;
}

/* `type` for a tensor with ndim dims: a float type as it is; a block type when the rows hold
 * whole blocks, else llama.cpp's fallback, else the source type (with *note). */
static uint32_t block_target(uint32_t type, uint32_t src_type, uint32_t ndim, const uint64_t *dims, const char **note)
{
    if (is_plain_float(type)) return type;
    if (ndim == 0) {
        *note = "a scalar cannot be block-quantized";
        return src_type;
    }
    uint32_t t = qfmt__type_fallback(type, dims[ndim - 1], note);
    return t == UINT32_MAX ? src_type : t;
}

static int choice_cmp(const void *a, const void *b)
{
    return strcmp(((const qfmt__policy_choice *)a)->name, ((const qfmt__policy_choice *)b)->name);
}

static uint32_t chosen_type(const qfmt__convert_policy *p, const char *name, uint32_t src_type)
{
    qfmt__policy_choice key = {(char *)name, 0};
    const qfmt__policy_choice *c = p->nchosen ? bsearch(&key, p->chosen, p->nchosen, sizeof key, choice_cmp) : NULL;
    return c && c->type != UINT32_MAX ? c->type : src_type;
}

uint32_t qfmt__policy_type(const qfmt__convert_policy *p, const char *name, uint32_t src_type, uint32_t ndim,
                           const uint64_t *dims, const char **note)
{
    *note = NULL;
    if (!is_plain_float(src_type) || any_glob(p->keep, p->nkeep, name)) return src_type;
    bool forced = any_glob(p->quant, p->nquant, name);
    if (forced) { /* the target type where it fits: the mix's default type; a size target's choice */
        if (p->sized) return chosen_type(p, name, src_type);
        uint32_t t = p->mix.mix >= 0 ? qfmt__mix_type_default(p->mix.mix) : p->target;
        return block_target(t, src_type, ndim, dims, note);
    }
    const qfmt_convert_rule *r = first_rule(p, name);
    if (r) return r->type == QFMT_CONVERT_KEEP ? src_type : block_target(r->type, src_type, ndim, dims, note);
    if (p->sized) return chosen_type(p, name, src_type);
    if (p->mix.mix >= 0) {
        long layer;
        qfmt__tensor_cat c = qfmt__mix_category(p->family, name, ndim, &layer);
        if (c == QFMT__CAT_NONE) return src_type;
        uint32_t t = qfmt__mix_type(&p->mix, c, layer, dims[ndim - 1], note);
        return t == UINT32_MAX ? src_type : t;
    }
    const qfmt_type_traits *tt = qfmt_type_get_traits(p->target);
    if (tt->block_elems == 1) return p->target; /* a float target: every float tensor */
    if (!(ndim == 2 && ends_with(name, ".weight") && !is_embedding_or_head(name))) return src_type;
    return block_target(p->target, src_type, ndim, dims, note);
}

qfmt_status qfmt__policy_importance(const qfmt_convert_opts *o, const qfmt_family *f, const char *name,
                                    uint64_t row_len, float **buf, size_t *cap, const float **out, qfmt_error *err)
{
    *out = NULL;
    if (!o->importance || !row_len) return QFMT_OK;
    if (row_len > SIZE_MAX / sizeof(float)) return QFMT__FAIL(err, QFMT_E_NOMEM, NULL, name, "%s", "out of memory");
    if (row_len * sizeof(float) > *cap) {
        free(*buf);
        *buf = malloc((size_t)row_len * sizeof(float));
        *cap = *buf ? (size_t)row_len * sizeof(float) : 0;
        if (!*buf) return QFMT__FAIL(err, QFMT_E_NOMEM, NULL, name, "%s", "out of memory");
    }
    qfmt_error e;
    memset(&e, 0, sizeof e);
    e.offset = QFMT_NO_OFFSET;
    qfmt_status s = o->importance(o->ctx, f, name, row_len, *buf, &e);
    if (s == QFMT_OK) {
        *out = *buf;
        return QFMT_OK;
    }
    if (s == QFMT_E_NOT_FOUND) return QFMT_OK;
    if (!e.tensor[0]) snprintf(e.tensor, sizeof e.tensor, "%.127s", name);
    if (!e.message[0]) snprintf(e.message, sizeof e.message, "no importance for this tensor (status %d)", (int)s);
    e.code = s;
    if (err) *err = e;
    return s;
}

/* ---- Size targets ---------------------------------------------------------------------------- */

static void grow_f32(float **buf, size_t *cap, uint64_t n, bool *ok)
{
    if (n <= *cap) return;
    free(*buf);
    *buf = n <= SIZE_MAX / sizeof(float) ? malloc((size_t)n * sizeof(float)) : NULL;
    *cap = *buf ? (size_t)n : 0;
    *ok = *buf != NULL;
}

/* A size-target candidate: a float tensor no --keep glob or rule fixes, that a mix would
 * quantize or a --quantize glob names, with one dimension at least. */
static bool is_candidate(const qfmt__convert_policy *p, const qfmt__policy_tensor *t)
{
    if (!is_plain_float(t->type) || t->ndim == 0 || any_glob(p->keep, p->nkeep, t->name)) return false;
    if (any_glob(p->quant, p->nquant, t->name)) return true;
    if (first_rule(p, t->name)) return false;
    long layer;
    return qfmt__mix_category(p->family, t->name, t->ndim, &layer) != QFMT__CAT_NONE;
}

static uint64_t elements_of(const qfmt__policy_tensor *t)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->ndim; d++) n *= t->dims[d];
    return n;
}

qfmt_status qfmt__policy_size(qfmt__convert_policy *p, const qfmt_convert_opts *o, const qfmt__policy_tensor *t,
                              size_t n, qfmt__policy_fetch fetch, qfmt__policy_release release, void *ctx,
                              qfmt_error *err)
{
    if (!(p->target_bpw > 0)) return QFMT_OK;
    p->sized = true;
    qfmt__bpw_tensor *bt = n ? calloc(n, sizeof *bt) : NULL;
    size_t *idx = n ? calloc(n, sizeof *idx) : NULL, nc = 0;
    float *ref = NULL, *imp = NULL;
    size_t ref_cap = 0, imp_cap = 0, qcap = 0, dcap = 0;
    void *qbuf = NULL, *dbuf = NULL;
    qfmt_pool *pool = NULL;
    qfmt_status s = QFMT_OK;
    if (n && (!bt || !idx)) s = QFMT__FAIL(err, QFMT_E_NOMEM, NULL, NULL, "%s", "out of memory");
    /* the candidates and their types: each target type, or its fallback, once */
    for (size_t i = 0; s == QFMT_OK && i < n; i++) {
        if (!is_candidate(p, &t[i])) continue;
        uint64_t row = t[i].dims[t[i].ndim - 1];
        qfmt__bpw_tensor *b = &bt[nc];
        const char *note = NULL;
        for (size_t k = 0; k < p->ntarget_types; k++) {
            const char *nk;
            uint32_t ft = qfmt__type_fallback(p->target_types[k], row, &nk);
            if (ft == UINT32_MAX) {
                note = nk;
                continue;
            }
            bool dup = false;
            for (size_t j = 0; j < b->nopt; j++) dup |= b->opt[j].type == ft;
            if (!dup) b->opt[b->nopt++].type = ft;
        }
        if (!b->nopt) {
            if (o->note) o->note(o->ctx, t[i].name, t[i].type, note);
            continue;
        }
        b->elements = elements_of(&t[i]);
        idx[nc++] = i;
    }
    unsigned threads = o->threads ? o->threads : 1;
    if (s == QFMT_OK && threads > 1 && nc) pool = qfmt_pool_new(threads);
    bool weighted = false;
    /* measuring: one tensor in memory at a time */
    for (size_t k = 0; s == QFMT_OK && k < nc; k++) {
        const qfmt__policy_tensor *ti = &t[idx[k]];
        qfmt__bpw_tensor *b = &bt[k];
        const void *data = NULL;
        s = fetch(ctx, idx[k], &data, err);
        if (s != QFMT_OK) break;
        uint64_t row = ti->dims[ti->ndim - 1], rows = row ? b->elements / row : 0;
        /* in chunks of rows (about 4 Mi values): the types quantize row by row, so the bytes and
         * the per-row errors are those of the whole tensor, in bounded memory */
        uint64_t chunk = row ? ((uint64_t)1 << 22) / row : 0;
        if (chunk < 1) chunk = 1;
        if (chunk > rows) chunk = rows;
        bool ok = true;
        grow_f32(&ref, &ref_cap, chunk * row, &ok);
        if (!ok) s = QFMT__FAIL(err, QFMT_E_NOMEM, NULL, ti->name, "%s", "out of memory");
        const float *w = NULL;
        if (s == QFMT_OK) s = qfmt__policy_importance(o, p->family, ti->name, row, &imp, &imp_cap, &w, err);
        weighted |= w != NULL;
        qfmt_quant_opts qo = QFMT_QUANT_OPTS_INIT;
        qo.threads = threads;
        qo.quality = o->quality;
        qo.importance = w;
        bool failed[QFMT__BPW_MAX_OPTIONS] = {false};
        for (size_t j = 0; j < b->nopt; j++) b->opt[j].err = 0;
        char why[256] = "";
        size_t es = qfmt_type_get_traits(ti->type)->block_bytes;
        for (uint64_t r0 = 0; s == QFMT_OK && r0 < rows; r0 += chunk) {
            uint64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
            const uint8_t *cs = (const uint8_t *)data + r0 * row * es;
            s = qfmt_convert_floats(ti->type, cs, QFMT_TYPE_F32, ref, (size_t)(nr * row));
            for (size_t j = 0; s == QFMT_OK && j < b->nopt; j++) {
                if (failed[j]) continue;
                qfmt_error e;
                uint64_t cb;
                double ce;
                qfmt_status ms = qfmt__bpw_measure(b->opt[j].type, ti->type, cs, ref, nr, row, &qo, pool, &qbuf, &qcap,
                                                   &dbuf, &dcap, &cb, &ce, &e);
                if (ms == QFMT_E_NOMEM) {
                    s = QFMT__FAIL(err, QFMT_E_NOMEM, NULL, ti->name, "%s", "out of memory");
                } else if (ms != QFMT_OK) { /* e.g. a NaN: the type is not a choice */
                    failed[j] = true;
                    if (!why[0]) snprintf(why, sizeof why, "%s", e.message);
                } else {
                    b->opt[j].err += ce;
                }
            }
        }
        size_t kept = 0;
        for (size_t j = 0; s == QFMT_OK && j < b->nopt; j++) {
            if (failed[j] || qfmt_type_size(b->opt[j].type, b->elements, &b->opt[j].bytes) != QFMT_OK) continue;
            b->opt[kept++] = b->opt[j];
        }
        release(ctx, idx[k]);
        b->nopt = kept;
        if (s == QFMT_OK && !kept && o->note) {
            char msg[300];
            snprintf(msg, sizeof msg, "no target type can hold it: %s", why[0] ? why : "quantization failed");
            o->note(o->ctx, ti->name, ti->type, msg);
        }
    }
    qfmt_pool_free(pool);
    free(ref), free(imp), free(qbuf), free(dbuf);
    /* the tensors that could be measured */
    size_t m = 0;
    double elements = 0;
    for (size_t k = 0; k < nc; k++)
        if (bt[k].nopt) {
            bt[m] = bt[k];
            idx[m++] = idx[k];
            elements += (double)bt[k].elements;
        }
    if (s == QFMT_OK && m && !qfmt__bpw_choose(bt, m, p->target_bpw * elements)) {
        double bits = 0;
        for (size_t k = 0; k < m; k++) bits += 8.0 * (double)bt[k].opt[bt[k].choice].bytes;
        s = QFMT__FAIL(err, QFMT_E_RANGE, NULL, NULL,
                       "--target-bpw %.4g is below the smallest choice: %.4g bits per weight over the %zu tensors it "
                       "chooses for",
                       p->target_bpw, bits / elements, m);
    }
    if (s == QFMT_OK && m) {
        p->chosen = calloc(m, sizeof *p->chosen);
        p->sized_names = calloc(m, sizeof *p->sized_names);
        if (!p->chosen || !p->sized_names) s = QFMT__FAIL(err, QFMT_E_NOMEM, NULL, NULL, "%s", "out of memory");
    }
    double bits = 0, error = 0;
    for (size_t k = 0; s == QFMT_OK && k < m; k++) {
        const qfmt__bpw_option *op = &bt[k].opt[bt[k].choice];
        if (!(p->chosen[k].name = strdup(t[idx[k]].name))) {
            s = QFMT__FAIL(err, QFMT_E_NOMEM, NULL, NULL, "%s", "out of memory");
            break;
        }
        p->nchosen++;
        p->chosen[k].type = op->type;
        p->sized_names[k] = p->chosen[k].name;
        bits += 8.0 * (double)op->bytes;
        error += op->err;
    }
    if (s == QFMT_OK) {
        p->nsized = m;
        p->achieved_bpw = elements > 0 ? bits / elements : 0;
        p->error = error;
        p->weighted = weighted;
        qsort(p->chosen, p->nchosen, sizeof *p->chosen, choice_cmp);
    }
    free(bt);
    free(idx);
    return s;
}

/* ---- Checkpoints -------------------------------------------------------------------------------- */

static uint64_t config_u64(const qfmt_family *f, const cJSON *cfg, const char *meta)
{
    for (const qfmt__config_key *k = f && cfg ? f->config : NULL; k && k->meta; k++) {
        if (strcmp(k->meta, meta) != 0) continue;
        for (size_t i = 0; i < 4 && k->keys[i]; i++) {
            const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, k->keys[i]);
            if (cJSON_IsNumber(j) && j->valuedouble >= 1 && j->valuedouble < 1e9) return (uint64_t)j->valuedouble;
        }
    }
    return 0;
}

typedef struct {
    const qfmt__hf_model *m;
    const char *model_type;
    void *buf;
    size_t cap;
} hf_fetch;

static qfmt_status fetch_hf(void *ctx, size_t i, const void **data, qfmt_error *err)
{
    hf_fetch *h = ctx;
    qfmt_st_tensor t;
    qfmt_status s = qfmt__hf_tensor(h->m, i, &t, err);
    if (s != QFMT_OK) return s;
    *data = t.data;
    if (qfmt__policy_transposed(h->model_type, t.name, t.ndim)) {
        if (t.size > h->cap) {
            free(h->buf);
            h->buf = t.size <= SIZE_MAX ? malloc((size_t)t.size) : NULL;
            h->cap = h->buf ? (size_t)t.size : 0;
            if (!h->buf) return QFMT__FAIL(err, QFMT_E_NOMEM, NULL, t.name, "%s", "out of memory");
        }
        qfmt__transpose(t.data, h->buf, t.dims[0], t.dims[1], qfmt_type_get_traits(t.type)->block_bytes);
        *data = h->buf;
    }
    return QFMT_OK;
}

static void release_hf(void *ctx, size_t i) { qfmt__hf_release(((hf_fetch *)ctx)->m, i); }

/* q2_k_s: llama.cpp refuses a Q2_K tensor (but token_embd and output) without importance data. */
static qfmt_status check_q2_k_s(const qfmt__convert_policy *p, const qfmt_convert_opts *o,
                                const qfmt__policy_tensor *t, size_t n, qfmt_error *err)
{
    float *buf = NULL;
    size_t cap = 0;
    qfmt_status s = QFMT_OK;
    for (size_t i = 0; s == QFMT_OK && i < n; i++) {
        const char *note;
        long layer;
        if (qfmt__policy_type(p, t[i].name, t[i].type, t[i].ndim, t[i].dims, &note) != QFMT_TYPE_Q2_K) continue;
        qfmt__tensor_cat c = qfmt__mix_category(p->family, t[i].name, t[i].ndim, &layer);
        if (c == QFMT__CAT_TOKEN_EMBD || c == QFMT__CAT_OUTPUT) continue;
        const float *w = NULL;
        s = qfmt__policy_importance(o, p->family, t[i].name, t[i].dims[t[i].ndim - 1], &buf, &cap, &w, err);
        if (s == QFMT_OK && !w)
            s = QFMT__FAIL(err, QFMT_E_NOT_FOUND, NULL, t[i].name, "%s",
                           "mix q2_k_s needs importance data for every q2_k tensor, and there is none for this one");
    }
    free(buf);
    return s;
}

qfmt_status qfmt__policy_init_hf(qfmt__convert_policy *p, const qfmt__hf_model *m, const qfmt_convert_opts *o,
                                 const char *src, qfmt_error *err)
{
    const char *mt = qfmt__hf_config_string(m, "model_type");
    const qfmt_family *f = mt ? qfmt_family_find(mt, strlen(mt)) : NULL;
    qfmt__policy_hparams h = {config_u64(f, m->config, "model.num_layers"), config_u64(f, m->config, "model.num_heads"),
                              config_u64(f, m->config, "model.num_kv_heads")};
    size_t n = (size_t)m->ntensors;
    qfmt__policy_tensor *t = n ? calloc(n, sizeof *t) : NULL;
    if (n && !t) {
        memset(p, 0, sizeof *p);
        return QFMT__FAIL(err, QFMT_E_NOMEM, src, NULL, "%s", "out of memory");
    }
    qfmt_status s = QFMT_OK;
    for (size_t i = 0; s == QFMT_OK && i < n; i++) {
        qfmt_st_tensor st;
        s = qfmt__hf_tensor(m, i, &st, err);
        if (s != QFMT_OK) break;
        t[i].name = st.name;
        t[i].type = st.type;
        t[i].ndim = st.ndim;
        memcpy(t[i].dims, st.dims, sizeof t[i].dims);
        if (qfmt__policy_transposed(mt, st.name, st.ndim)) {
            t[i].dims[0] = st.dims[1];
            t[i].dims[1] = st.dims[0];
        }
    }
    if (s == QFMT_OK) s = qfmt__policy_init(p, o, f, &h, t, n, err);
    else memset(p, 0, sizeof *p);
    if (s == QFMT_OK && p->mix.mix == QFMT__MIX_Q2_K_S) s = check_q2_k_s(p, o, t, n, err);
    if (s == QFMT_OK && p->target_bpw > 0) {
        hf_fetch hf = {m, mt, NULL, 0};
        s = qfmt__policy_size(p, o, t, n, fetch_hf, release_hf, &hf, err);
        free(hf.buf);
    }
    if (s != QFMT_OK && err && !err->path[0]) snprintf(err->path, sizeof err->path, "%.255s", src);
    free(t);
    return s;
}

/* ---- Metadata ------------------------------------------------------------------------------------ */

qfmt_status qfmt__policy_put_metadata(const qfmt__convert_policy *p, qfmt_writer *w, qfmt_error *err)
{
    qfmt_status s = QFMT_OK;
    if (p->mix.mix >= 0) {
        const char *name = qfmt_convert_mix((size_t)p->mix.mix, NULL);
        s = qfmt_writer_set_string(w, "convert.mix", name, strlen(name), err);
    }
    if (s == QFMT_OK && p->nrules) {
        char **lines = calloc(p->nrules, sizeof *lines);
        if (!lines) return QFMT__FAIL(err, QFMT_E_NOMEM, NULL, NULL, "%s", "out of memory");
        for (size_t i = 0; s == QFMT_OK && i < p->nrules; i++) {
            uint32_t ty = p->rules[i].type;
            const char *tn = ty == QFMT_CONVERT_KEEP ? "keep" : qfmt_type_get_traits(ty)->name;
            size_t len = strlen(p->rules[i].glob) + strlen(tn) + 2;
            if (!(lines[i] = malloc(len))) s = QFMT__FAIL(err, QFMT_E_NOMEM, NULL, NULL, "%s", "out of memory");
            else snprintf(lines[i], len, "%s %s", p->rules[i].glob, tn);
        }
        if (s == QFMT_OK)
            s = qfmt_writer_set_string_array(w, "convert.recipe", (const char *const *)lines, NULL, p->nrules, err);
        for (size_t i = 0; i < p->nrules; i++) free(lines[i]);
        free(lines);
    }
    if (s != QFMT_OK || !p->sized) return s;
    s = qfmt_writer_set_f64(w, "convert.target_bpw", p->target_bpw, err);
    if (s == QFMT_OK) s = qfmt_writer_set_f64(w, "convert.target_bpw.achieved", p->achieved_bpw, err);
    if (s == QFMT_OK) s = qfmt_writer_set_f64(w, "convert.target_bpw.error", p->error, err);
    if (s == QFMT_OK) s = qfmt_writer_set_bool(w, "convert.target_bpw.weighted", p->weighted, err);
    const char *names[QFMT__BPW_MAX_OPTIONS];
    for (size_t i = 0; i < p->ntarget_types; i++) names[i] = qfmt_type_get_traits(p->target_types[i])->name;
    if (s == QFMT_OK) s = qfmt_writer_set_string_array(w, "convert.target_bpw.types", names, NULL, p->ntarget_types, err);
    if (s == QFMT_OK)
        s = qfmt_writer_set_string_array(w, "convert.target_bpw.tensors", (const char *const *)p->sized_names, NULL,
                                         p->nsized, err);
    return s;
}

/* ---- Layout -------------------------------------------------------------------------------------- */

bool qfmt__policy_transposed(const char *model_type, const char *name, uint32_t ndim)
{
    const qfmt_family *f = model_type ? qfmt_family_find(model_type, strlen(model_type)) : NULL;
    return f && ndim == 2 && (qfmt_family_tensor_role(f, name) & QFMT_FAMILY_CONV1D);
}

void qfmt__transpose(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t cols, size_t es)
{
    const uint64_t T = 32;
    for (uint64_t i0 = 0; i0 < rows; i0 += T)
        for (uint64_t j0 = 0; j0 < cols; j0 += T)
            for (uint64_t i = i0; i < i0 + T && i < rows; i++)
                for (uint64_t j = j0; j < j0 + T && j < cols; j++)
                    memcpy(dst + (j * rows + i) * es, src + (i * cols + j) * es, es);
}
