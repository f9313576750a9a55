/* The family registry and what every family shares: mapping a Hugging Face config.json to
 * qfmt's model.* metadata (spec: "Metadata keys"), naming and sizing a family's tensors, and
 * telling convert which tensors are linear weights (quantized by default) or Conv1D. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"

static const qfmt_family *const registry[] = {&qfmt__family_gpt2, &qfmt__family_llama, &qfmt__family_bert,
                                             &qfmt__family_mistral, &qfmt__family_qwen2, &qfmt__family_qwen3,
                                             &qfmt__family_gemma2, &qfmt__family_gemma3, &qfmt__family_phi3};
#define NFAMILIES (sizeof registry / sizeof registry[0])

const qfmt_family *qfmt_family_at(size_t i) { return i < NFAMILIES ? registry[i] : NULL; }

const qfmt_family *qfmt_family_find(const char *name, size_t len)
{
    for (size_t i = 0; name && i < NFAMILIES; i++)
        if (strlen(registry[i]->name) == len && memcmp(registry[i]->name, name, len) == 0) return registry[i];
    return NULL;
}

const char *qfmt_family_name(const qfmt_family *f) { return f ? f->name : NULL; }

uint64_t qfmt__dim_value(const qfmt_model_hparams *h, uint8_t dim)
{
    switch (dim) {
    case QFMT__DIM_D: return h->d;
    case QFMT__DIM_Q: return h->heads * h->head_dim;
    case QFMT__DIM_KV: return h->kv_heads * h->head_dim;
    case QFMT__DIM_FFN: return h->ffn;
    case QFMT__DIM_VOCAB: return h->vocab;
    case QFMT__DIM_CTX: return h->ctx;
    case QFMT__DIM_TYPES: return h->type_vocab;
    case QFMT__DIM_QKV: return (h->heads + 2 * h->kv_heads) * h->head_dim;
    case QFMT__DIM_2FFN: return 2 * h->ffn;
    case QFMT__DIM_HD: return h->head_dim;
    default: return 0;
    }
}

/* ---- Names -------------------------------------------------------------------------------- */

/* name == pattern + suffix, where the pattern's "%u" stands for one or more digits. */
static bool match(const char *pat, const char *suffix, const char *name)
{
    while (*pat) {
        if (pat[0] == '%' && pat[1] == 'u') {
            if (*name < '0' || *name > '9') return false;
            while (*name >= '0' && *name <= '9') name++;
            pat += 2;
        } else if (*pat++ != *name++) {
            return false;
        }
    }
    return strcmp(name, suffix) == 0;
}

static const qfmt__tensor_spec *match_in(const qfmt__tensor_spec *t, const char *name, bool *is_weight)
{
    for (; t->name; t++) {
        if (t->kind == QFMT__FT_VECTOR) {
            if (match(t->name, "", name)) return *is_weight = false, t;
            continue;
        }
        if (match(t->name, ".weight", name)) return *is_weight = true, t;
        if ((t->flags & (QFMT__FT_BIAS | QFMT__FT_BIAS_OPT)) && match(t->name, ".bias", name))
            return *is_weight = false, t;
    }
    return NULL;
}

const qfmt__tensor_spec *qfmt__family_match(const qfmt_family *f, const char *name, bool *is_weight)
{
    const qfmt__tensor_spec *t = match_in(f->layer, name, is_weight);
    if (!t) t = match_in(f->model, name, is_weight);
    if (!t && f->strip_prefix) { /* saved without the base-model prefix: try the name with it */
        char full[512];
        if (snprintf(full, sizeof full, "%s%s", f->strip_prefix, name) < (int)sizeof full) {
            t = match_in(f->layer, full, is_weight);
            if (!t) t = match_in(f->model, full, is_weight);
        }
    }
    return t;
}

unsigned qfmt_family_tensor_role(const qfmt_family *f, const char *name)
{
    for (size_t i = 0; i < NFAMILIES; i++) {
        const qfmt_family *g = f ? f : registry[i];
        bool w = false;
        const qfmt__tensor_spec *t = qfmt__family_match(g, name, &w);
        if (t) {
            unsigned role = QFMT_FAMILY_KNOWN;
            if (w && t->kind == QFMT__FT_LINEAR) role |= QFMT_FAMILY_QUANTIZE;
            if (w && (t->flags & QFMT__FT_CONV1D)) role |= QFMT_FAMILY_CONV1D;
            return role;
        }
        if (f) break;
    }
    return 0;
}

/* ---- The tensors of a model ------------------------------------------------------------- */

static qfmt_status fail(qfmt_error *err, qfmt_status code, const char *tensor, const char *what)
{
    if (err) {
        memset(err, 0, sizeof *err);
        err->code = code;
        err->offset = QFMT_NO_OFFSET;
        snprintf(err->tensor, sizeof err->tensor, "%.127s", tensor ? tensor : "");
        snprintf(err->message, sizeof err->message, "%s", what);
    }
    return code;
}

static qfmt_status emit(const qfmt__tensor_spec *t, const qfmt_model_hparams *h, unsigned layer,
                        qfmt_family_tensor_fn fn, void *ctx, qfmt_error *err)
{
    char base[256], name[272];
    if (snprintf(base, sizeof base, t->name, layer) >= (int)sizeof base)
        return fail(err, QFMT_E_RANGE, t->name, "tensor name too long");
    uint64_t rows = qfmt__dim_value(h, t->rows), cols = qfmt__dim_value(h, t->cols);
    bool two = t->kind == QFMT__FT_LINEAR || t->kind == QFMT__FT_EMBED;
    bool conv = (t->flags & QFMT__FT_CONV1D) != 0;
    qfmt_family_tensor ft;
    memset(&ft, 0, sizeof ft);
    ft.name = name;
    ft.optional = (t->flags & QFMT__FT_OPTIONAL) != 0;
    ft.quantize = t->kind == QFMT__FT_LINEAR;
    ft.conv1d = conv;
    ft.ndim = two ? 2 : 1;
    ft.dims[0] = two && conv ? cols : rows; /* as Hugging Face stores it */
    ft.dims[1] = two ? (conv ? rows : cols) : 0;
    snprintf(name, sizeof name, t->kind == QFMT__FT_VECTOR ? "%s" : "%s.weight", base);
    if (!fn(ctx, &ft)) return fail(err, QFMT_E_NOMEM, name, "stopped by the caller");
    if (!(t->flags & (QFMT__FT_BIAS | QFMT__FT_BIAS_OPT))) return QFMT_OK;
    snprintf(name, sizeof name, "%s.bias", base);
    ft.ndim = 1;
    ft.dims[0] = rows;
    ft.dims[1] = 0;
    ft.quantize = ft.conv1d = false;
    ft.optional = ft.optional || (t->flags & QFMT__FT_BIAS_OPT);
    if (!fn(ctx, &ft)) return fail(err, QFMT_E_NOMEM, name, "stopped by the caller");
    return QFMT_OK;
}

qfmt_status qfmt_family_tensors(const qfmt_family *f, const qfmt_model_hparams *h, qfmt_family_tensor_fn fn,
                                void *ctx, qfmt_error *err)
{
    if (!f || !h || !fn) return fail(err, QFMT_E_ARG, NULL, "family, hyperparameters and callback are required");
    for (size_t k = 0; k < sizeof h->reserved / sizeof h->reserved[0]; k++)
        if (h->reserved[k]) return fail(err, QFMT_E_ARG, NULL, "hyperparameters: non-zero reserved field");
    if (h->layers > 4096) return fail(err, QFMT_E_RANGE, NULL, "more than 4096 layers");
    qfmt_status s = QFMT_OK;
    for (const qfmt__tensor_spec *t = f->model; s == QFMT_OK && t->name; t++) s = emit(t, h, 0, fn, ctx, err);
    for (unsigned l = 0; l < h->layers; l++)
        for (const qfmt__tensor_spec *t = f->layer; s == QFMT_OK && t->name; t++) s = emit(t, h, l, fn, ctx, err);
    return s;
}

/* ---- config.json -> model.* metadata --------------------------------------------------- */

typedef struct {
    qfmt_writer *w;
    qfmt_error *err;
    qfmt_status s;
} meta_ctx;

static void put_u64(meta_ctx *c, const char *key, uint64_t v)
{
    if (c->s == QFMT_OK) c->s = qfmt_writer_set_u64(c->w, key, v, c->err);
}
static void put_f64(meta_ctx *c, const char *key, double v)
{
    if (c->s == QFMT_OK) c->s = qfmt_writer_set_f64(c->w, key, v, c->err);
}
static void put_bool(meta_ctx *c, const char *key, bool v)
{
    if (c->s == QFMT_OK) c->s = qfmt_writer_set_bool(c->w, key, v, c->err);
}
static void put_str(meta_ctx *c, const char *key, const char *v)
{
    if (c->s == QFMT_OK && v) c->s = qfmt_writer_set_string(c->w, key, v, strlen(v), c->err);
}

/* An integral JSON number in [0, 2^53] (beyond, doubles no longer hold every integer). */
static bool json_u64(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= 0 && j->valuedouble <= 9007199254740992.0) ||
        floor(j->valuedouble) != j->valuedouble)
        return false;
    *out = (uint64_t)j->valuedouble;
    return true;
}

static const cJSON *item(const cJSON *cfg, const char *key) { return cJSON_GetObjectItemCaseSensitive(cfg, key); }

/* The family's config.json item for metadata key `meta`, or NULL. */
static const cJSON *family_item(const qfmt_family *f, const cJSON *cfg, const char *meta)
{
    for (const qfmt__config_key *k = f ? f->config : NULL; k && k->meta; k++) {
        if (strcmp(k->meta, meta) != 0) continue;
        for (size_t i = 0; i < 4 && k->keys[i]; i++) {
            const cJSON *j = item(cfg, k->keys[i]);
            if (j && !cJSON_IsNull(j)) return j;
        }
    }
    return NULL;
}

static bool fam_u64(const qfmt_family *f, const cJSON *cfg, const char *meta, uint64_t *out)
{
    return json_u64(family_item(f, cfg, meta), out);
}

/* A number of the family's config key `meta`: the config's (true), its fallback when config.json
 * has none of the key's names at all (true), or nothing (false: absent without a fallback, null,
 * or not a number). */
static bool fam_number(const qfmt_family *f, const cJSON *cfg, const char *meta, double *out)
{
    for (const qfmt__config_key *k = f ? f->config : NULL; k && k->meta; k++) {
        if (strcmp(k->meta, meta) != 0) continue;
        bool named = false;
        for (size_t i = 0; i < 4 && k->keys[i]; i++) {
            const cJSON *j = item(cfg, k->keys[i]);
            if (!j) continue;
            named = true;
            if (cJSON_IsNumber(j)) return *out = j->valuedouble, true;
        }
        if (!named && k->fallback != 0) return *out = k->fallback, true;
        return false;
    }
    return false;
}

/* One RoPE's parameters under `prefix` ("model." or "model.sliding_attention."): theta (the
 * object's, else top-level rope_theta in `top`, else theta_default when non-zero), type
 * ("default" when a theta is written without one), scaling parameters, the partial rotary
 * factor and longrope's factor lists. */
static void write_rope(meta_ctx *c, const char *prefix, const cJSON *rp, const cJSON *top, double theta_default,
                       bool yarn_is_longrope)
{
    char key[96];
#define KEY(s) (snprintf(key, sizeof key, "%s%s", prefix, (s)), key)
    const cJSON *j = top ? item(top, "rope_theta") : NULL, *rt = rp ? item(rp, "rope_theta") : NULL;
    const cJSON *ty = rp ? item(rp, "rope_type") : NULL;
    if (rp && !cJSON_IsString(ty)) ty = item(rp, "type");
    bool theta = true;
    if (cJSON_IsNumber(j)) put_f64(c, KEY("rope_theta"), j->valuedouble);
    else if (cJSON_IsNumber(rt)) put_f64(c, KEY("rope_theta"), rt->valuedouble);
    else if (theta_default > 0) put_f64(c, KEY("rope_theta"), theta_default);
    else theta = false;
    if (cJSON_IsString(ty) && yarn_is_longrope &&
        (strcmp(ty->valuestring, "yarn") == 0 || strcmp(ty->valuestring, "su") == 0))
        put_str(c, KEY("rope_type"), "longrope"); /* Phi3Config's backward compatibility */
    else if (cJSON_IsString(ty)) put_str(c, KEY("rope_type"), ty->valuestring);
    else if (theta) put_str(c, KEY("rope_type"), "default");
    static const struct {
        const char *json, *meta;
        bool integral;
    } rope_keys[] = {
        {"factor", "rope_scaling.factor", false},
        {"low_freq_factor", "rope_scaling.low_freq_factor", false},
        {"high_freq_factor", "rope_scaling.high_freq_factor", false},
        {"original_max_position_embeddings", "rope_scaling.original_context_length", true},
        {"attention_factor", "rope_scaling.attention_factor", false},
        {"beta_fast", "rope_scaling.beta_fast", false},
        {"beta_slow", "rope_scaling.beta_slow", false},
        {"mscale", "rope_scaling.mscale", false},
        {"mscale_all_dim", "rope_scaling.mscale_all_dim", false},
    };
    uint64_t u;
    for (size_t i = 0; rp && i < sizeof rope_keys / sizeof rope_keys[0]; i++) {
        j = item(rp, rope_keys[i].json);
        if (rope_keys[i].integral && json_u64(j, &u)) put_u64(c, KEY(rope_keys[i].meta), u);
        else if (!rope_keys[i].integral && cJSON_IsNumber(j)) put_f64(c, KEY(rope_keys[i].meta), j->valuedouble);
    }
    if (rp && cJSON_IsBool(j = item(rp, "truncate"))) put_bool(c, KEY("rope_scaling.truncate"), cJSON_IsTrue(j));
    /* partial rotary embeddings: transformers 5 keeps the factor in rope_parameters, 4.x at the top */
    j = rp ? item(rp, "partial_rotary_factor") : NULL;
    if (!cJSON_IsNumber(j) && top) j = item(top, "partial_rotary_factor");
    if (cJSON_IsNumber(j)) put_f64(c, KEY("rope_partial_rotary_factor"), j->valuedouble);
    /* longrope: per-frequency factors for sequences within and past the original context */
    static const char *const lists[] = {"short_factor", "long_factor"};
    for (size_t i = 0; rp && i < 2 && c->s == QFMT_OK; i++) {
        j = item(rp, lists[i]);
        if (!cJSON_IsArray(j)) continue;
        int n = cJSON_GetArraySize(j);
        if (n <= 0 || n > 65536) continue;
        double *v = malloc((size_t)n * sizeof *v);
        if (!v) {
            c->s = fail(c->err, QFMT_E_NOMEM, NULL, "out of memory");
            return;
        }
        int k = 0;
        for (const cJSON *a = j->child; a && k < n; a = a->next)
            if (cJSON_IsNumber(a)) v[k++] = a->valuedouble;
        char name[64];
        snprintf(name, sizeof name, "rope_scaling.%s", lists[i]);
        if (k == n) c->s = qfmt_writer_set_array(c->w, KEY(name), QFMT_META_F64, v, (uint64_t)n, c->err);
        free(v);
    }
#undef KEY
}

qfmt_status qfmt_family_config_to_meta(qfmt_writer *w, const char *json, size_t len, qfmt_error *err)
{
    qfmt_status js = qfmt_json_check(json, len, 0, "config.json", err); /* the one JSON policy */
    if (js != QFMT_OK) return js;
    cJSON *cfg = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return fail(err, QFMT_E_CORRUPT, NULL, "config.json is not a JSON object");
    }
    meta_ctx c = {w, err, QFMT_OK};
    const cJSON *mt = item(cfg, "model_type");
    const char *type = cJSON_IsString(mt) ? mt->valuestring : NULL;
    const qfmt_family *f = type ? qfmt_family_find(type, strlen(type)) : NULL;
    put_str(&c, "general.architecture", type ? type : "unknown");
    const cJSON *archs = item(cfg, "architectures");
    if (cJSON_IsArray(archs) && c.s == QFMT_OK) {
        const char *names[64];
        uint64_t n = 0;
        for (const cJSON *a = archs->child; a && n < 64; a = a->next)
            if (cJSON_IsString(a)) names[n++] = a->valuestring;
        c.s = qfmt_writer_set_string_array(w, "general.architectures", names, NULL, n, err);
    }
    /* Sizes, under the family's names; the derived defaults transformers applies. */
    uint64_t u, hidden = 0, heads = 0;
    if (fam_u64(f, cfg, "model.vocab_size", &u)) put_u64(&c, "model.vocab_size", u);
    if (fam_u64(f, cfg, "model.hidden_size", &hidden)) put_u64(&c, "model.hidden_size", hidden);
    if (fam_u64(f, cfg, "model.num_layers", &u)) put_u64(&c, "model.num_layers", u);
    if (fam_u64(f, cfg, "model.num_heads", &heads)) put_u64(&c, "model.num_heads", heads);
    if (fam_u64(f, cfg, "model.num_kv_heads", &u)) put_u64(&c, "model.num_kv_heads", u);
    else if (heads) put_u64(&c, "model.num_kv_heads", heads);
    if (fam_u64(f, cfg, "model.head_dim", &u)) put_u64(&c, "model.head_dim", u);
    else if (heads && hidden && hidden % heads == 0) put_u64(&c, "model.head_dim", hidden / heads);
    if (fam_u64(f, cfg, "model.ffn_size", &u)) put_u64(&c, "model.ffn_size", u);
    else if (f && f->ffn_mult_default && hidden) put_u64(&c, "model.ffn_size", f->ffn_mult_default * hidden);
    if (fam_u64(f, cfg, "model.context_length", &u)) put_u64(&c, "model.context_length", u);
    if (fam_u64(f, cfg, "model.type_vocab_size", &u)) put_u64(&c, "model.type_vocab_size", u);
    const cJSON *j = family_item(f, cfg, "model.norm_eps");
    if (cJSON_IsNumber(j)) put_f64(&c, "model.norm_eps", j->valuedouble);
    /* RoPE (transformers' rope utilities, shared by every RoPE family): transformers 5 nests
     * it in rope_parameters (Gemma 3: one object per layer type), older configs use
     * rope_theta and rope_scaling; the type says which frequencies (run refuses the ones it
     * lacks). Full-attention layers (and all layers of a model with one RoPE) take model.rope_*,
     * sliding-window layers with RoPE of their own model.sliding_attention.rope_*. */
    bool rope = f && f->rope_theta_default > 0;
    const cJSON *rp = item(cfg, "rope_parameters");
    const cJSON *full = cJSON_IsObject(rp) ? item(rp, "full_attention") : NULL;
    const cJSON *sliding = cJSON_IsObject(rp) ? item(rp, "sliding_attention") : NULL;
    if (cJSON_IsObject(full) || cJSON_IsObject(sliding)) { /* nested by layer type */
        write_rope(&c, "model.", cJSON_IsObject(full) ? full : sliding, NULL, rope ? f->rope_theta_default : 0,
                   f && f->yarn_is_longrope);
        double local = 0; /* the sliding layers' base when their object has none (Gemma 3: 1e4) */
        for (const qfmt__config_key *k = f ? f->config : NULL; k && k->meta; k++)
            if (strcmp(k->meta, "model.sliding_attention.rope_theta") == 0) local = k->fallback;
        if (cJSON_IsObject(full) && cJSON_IsObject(sliding))
            write_rope(&c, "model.sliding_attention.", sliding, NULL, local, false);
    } else {
        if (!cJSON_IsObject(rp)) rp = item(cfg, "rope_scaling");
        write_rope(&c, "model.", cJSON_IsObject(rp) ? rp : NULL, cfg, rope ? f->rope_theta_default : 0,
                   f && f->yarn_is_longrope);
        double local; /* Gemma 3's 4.x layout: the sliding layers' base (their RoPE is unscaled) */
        if (fam_number(f, cfg, "model.sliding_attention.rope_theta", &local)) {
            put_f64(&c, "model.sliding_attention.rope_theta", local);
            put_str(&c, "model.sliding_attention.rope_type", "default");
        }
    }
    /* Phi-3 keeps the pretrained context at the top level (longrope's attention factor uses it;
     * Phi3Config's default when absent). */
    double orig;
    if (json_u64(item(cfg, "original_max_position_embeddings"), &u)) put_u64(&c, "model.original_context_length", u);
    else if (fam_number(f, cfg, "model.original_context_length", &orig) && orig >= 1 && orig <= 9007199254740992.0)
        put_u64(&c, "model.original_context_length", (uint64_t)orig);

    /* Attention and logit scaling (Gemma), with the config class's defaults. */
    static const char *const numbers[] = {"model.query_pre_attn_scalar", "model.attn_logit_softcapping",
                                          "model.final_logit_softcapping"};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        double v;
        if (fam_number(f, cfg, numbers[i], &v)) put_f64(&c, numbers[i], v);
    }
    /* Sliding-window attention: the window (a null window: none) and which layers use it
     * (layer_types, or the family's pattern when config.json has none). */
    double win;
    bool have_win = fam_number(f, cfg, "model.sliding_window", &win);
    if (have_win) {
        if (!(win >= 1 && win <= 9007199254740992.0) || floor(win) != win) {
            cJSON_Delete(cfg);
            return fail(err, QFMT_E_CORRUPT, NULL, "config.json 'sliding_window' is not a positive integer");
        }
        put_u64(&c, "model.sliding_window", (uint64_t)win);
    }
    uint64_t nlayers = 0;
    fam_u64(f, cfg, "model.num_layers", &nlayers);
    j = item(cfg, "layer_types");
    if (cJSON_IsArray(j) && c.s == QFMT_OK) {
        const char *names[4096];
        uint64_t n = 0;
        for (const cJSON *a = j->child; a; a = a->next) {
            bool full_a = cJSON_IsString(a) && strcmp(a->valuestring, "full_attention") == 0;
            bool slide_a = cJSON_IsString(a) && strcmp(a->valuestring, "sliding_attention") == 0;
            const char *why = n >= 4096 ? "more than 4096 entries"
                              : !full_a && !slide_a ? "an attention type other than full_attention and sliding_attention"
                              : slide_a && !have_win
                                  ? "sliding_attention without a sliding_window"
                                  : NULL;
            if (why) {
                char msg[200];
                snprintf(msg, sizeof msg, "config.json 'layer_types' entry %llu: %s is not supported", (unsigned long long)n,
                         why);
                cJSON_Delete(cfg);
                return fail(err, QFMT_E_UNSUPPORTED, NULL, msg);
            }
            names[n++] = a->valuestring;
        }
        if (n != nlayers) {
            cJSON_Delete(cfg);
            return fail(err, QFMT_E_CORRUPT, NULL, "config.json 'layer_types' does not have num_hidden_layers entries");
        }
        c.s = qfmt_writer_set_string_array(w, "model.layer_types", names, NULL, n, err);
    } else if (f && f->sliding_pattern && nlayers && nlayers <= 4096 && c.s == QFMT_OK) {
        double pat = f->sliding_pattern;
        fam_number(f, cfg, "model.sliding_pattern", &pat);
        if (!(pat >= 1 && pat <= 4096) || floor(pat) != pat) {
            cJSON_Delete(cfg);
            return fail(err, QFMT_E_CORRUPT, NULL, "config.json 'sliding_window_pattern' is not an integer in 1..4096");
        }
        const char *names[4096];
        for (uint64_t i = 0; i < nlayers; i++)
            names[i] = (i + 1) % (uint64_t)pat ? "sliding_attention" : "full_attention";
        c.s = qfmt_writer_set_string_array(w, "model.layer_types", names, NULL, nlayers, err);
    }
    for (const char *const *k = f ? f->refuse_if_true : NULL; k && *k && c.s == QFMT_OK; k++)
        if (cJSON_IsTrue(item(cfg, *k))) {
            char msg[160];
            snprintf(msg, sizeof msg, "config.json '%s': true is not supported for model_type '%s'", *k, f->name);
            cJSON_Delete(cfg);
            return fail(err, QFMT_E_UNSUPPORTED, NULL, msg);
        }
    /* The dtype the checkpoint was saved in: transformers computes some buffers (RoPE
     * frequencies) in it, so run needs it to reproduce transformers. */
    j = item(cfg, "dtype");
    if (!cJSON_IsString(j)) j = item(cfg, "torch_dtype");
    if (cJSON_IsString(j)) put_str(&c, "model.dtype", j->valuestring);
    j = family_item(f, cfg, "model.activation");
    if (cJSON_IsString(j)) put_str(&c, "model.activation", j->valuestring);
    /* PretrainedConfig's own keys; the family's default when the config is silent. */
    j = item(cfg, "tie_word_embeddings");
    put_bool(&c, "model.tie_word_embeddings", cJSON_IsBool(j) ? cJSON_IsTrue(j) : (f ? f->tie_default : true));
    if (cJSON_IsBool(j = family_item(f, cfg, "model.attention_bias"))) put_bool(&c, "model.attention_bias", cJSON_IsTrue(j));
    if (cJSON_IsBool(j = family_item(f, cfg, "model.mlp_bias"))) put_bool(&c, "model.mlp_bias", cJSON_IsTrue(j));
    static const char *const ids[] = {"bos_token_id", "eos_token_id", "pad_token_id"};
    for (size_t i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "model.%s", ids[i]);
        if (json_u64(item(cfg, ids[i]), &u)) put_u64(&c, key, u);
    }
    cJSON_Delete(cfg);
    return c.s;
}

/* ---- A config.json for given hyperparameters (synthetic models) ---------------------------- */

static double hp_value(const qfmt_model_hparams *h, const char *meta, bool *ok)
{
    static const char *const keys[] = {"model.vocab_size", "model.hidden_size", "model.num_layers",
                                       "model.num_heads", "model.num_kv_heads", "model.head_dim",
                                       "model.ffn_size", "model.context_length", "model.type_vocab_size",
                                       "model.norm_eps"};
    const double v[] = {(double)h->vocab, (double)h->d, (double)h->layers, (double)h->heads, (double)h->kv_heads,
                        (double)h->head_dim, (double)h->ffn, (double)h->ctx, (double)h->type_vocab, h->eps};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i], meta) == 0) return *ok = true, v[i];
    return *ok = false, 0;
}

char *qfmt_family_config_json(const qfmt_family *f, const qfmt_model_hparams *h, bool tied)
{
    if (!f || !h) return NULL;
    cJSON *doc = cJSON_CreateObject(), *archs = cJSON_CreateStringArray(&f->hf_class, 1);
    bool ok = doc && archs && cJSON_AddItemToObject(doc, "architectures", archs);
    if (!ok) cJSON_Delete(archs);
    ok = ok && cJSON_AddStringToObject(doc, "model_type", f->name);
    for (const qfmt__config_key *k = f->config; ok && k->meta; k++) {
        bool have;
        double v = hp_value(h, k->meta, &have);
        if (have) ok = cJSON_AddNumberToObject(doc, k->keys[0], v) != NULL;
    }
    if (ok && f->rope_theta_default > 0) ok = cJSON_AddNumberToObject(doc, "rope_theta", h->rope_theta) != NULL;
    ok = ok && cJSON_AddBoolToObject(doc, "tie_word_embeddings", tied);
    const char *dt = h->rope_freq_type == QFMT_TYPE_BF16 ? "bfloat16"
                     : h->rope_freq_type == QFMT_TYPE_F16 ? "float16" : "float32";
    ok = ok && cJSON_AddStringToObject(doc, "torch_dtype", dt);
    char *text = ok ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    return text;
}
