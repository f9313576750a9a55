/* llama.cpp's type mixes (a port of src/llama-quant.cpp's tensor_allows_quantization,
 * tensor_type_fallback, llama_tensor_get_type_impl and llama_ftype_get_default_type for the
 * ftypes whose types qfmt has), recipe files, and the choice of types under a size target. */
#define _POSIX_C_SOURCE 200809L
#include "quant_mix.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "hf_checkpoint.h"
#include "ops.h"

/* ---- The mixes ----------------------------------------------------------------------------- */

static const struct {
    const char *name;
    uint32_t type; /* llama_ftype_get_default_type */
} mixes[QFMT__MIX_COUNT] = {
    [QFMT__MIX_Q2_K] = {"q2_k", QFMT_TYPE_Q2_K},       [QFMT__MIX_Q2_K_S] = {"q2_k_s", QFMT_TYPE_Q2_K},
    [QFMT__MIX_Q3_K_S] = {"q3_k_s", QFMT_TYPE_Q3_K},   [QFMT__MIX_Q3_K_M] = {"q3_k_m", QFMT_TYPE_Q3_K},
    [QFMT__MIX_Q3_K_L] = {"q3_k_l", QFMT_TYPE_Q3_K},   [QFMT__MIX_Q4_K_S] = {"q4_k_s", QFMT_TYPE_Q4_K},
    [QFMT__MIX_Q4_K_M] = {"q4_k_m", QFMT_TYPE_Q4_K},   [QFMT__MIX_Q5_K_S] = {"q5_k_s", QFMT_TYPE_Q5_K},
    [QFMT__MIX_Q5_K_M] = {"q5_k_m", QFMT_TYPE_Q5_K},   [QFMT__MIX_Q6_K] = {"q6_k", QFMT_TYPE_Q6_K},
    [QFMT__MIX_Q4_0] = {"q4_0", QFMT_TYPE_Q4_0},       [QFMT__MIX_Q4_1] = {"q4_1", QFMT_TYPE_Q4_1},
    [QFMT__MIX_Q5_0] = {"q5_0", QFMT_TYPE_Q5_0},       [QFMT__MIX_Q5_1] = {"q5_1", QFMT_TYPE_Q5_1},
    [QFMT__MIX_Q8_0] = {"q8_0", QFMT_TYPE_Q8_0},       [QFMT__MIX_IQ4_NL] = {"iq4_nl", QFMT_TYPE_IQ4_NL},
    [QFMT__MIX_IQ4_XS] = {"iq4_xs", QFMT_TYPE_IQ4_XS},
};

const char *qfmt_convert_mix(size_t i, uint32_t *type)
{
    if (i >= QFMT__MIX_COUNT) return NULL;
    if (type) *type = mixes[i].type;
    return mixes[i].name;
}

int qfmt__mix_find(const char *name)
{
    for (int i = 0; name && i < QFMT__MIX_COUNT; i++)
        if (strcmp(mixes[i].name, name) == 0) return i;
    return -1;
}

uint32_t qfmt__mix_type_default(int mix) { return mix >= 0 && mix < QFMT__MIX_COUNT ? mixes[mix].type : UINT32_MAX; }

/* ---- Categories (tensor_get_category, tensor_allows_quantization) -------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The layer index of per-layer spec t in `name` (the digits where t's "%u" stands, the name
 * maybe saved without the family's strip_prefix), or -1. */
static long layer_of(const qfmt_family *f, const qfmt__tensor_spec *t, const char *name)
{
    const char *u = strstr(t->name, "%u");
    if (!u) return -1;
    size_t pre = (size_t)(u - t->name);
    const char *p = NULL;
    if (strncmp(name, t->name, pre) == 0) {
        p = name + pre;
    } else if (f->strip_prefix) {
        size_t sp = strlen(f->strip_prefix);
        if (pre >= sp && strncmp(t->name, f->strip_prefix, sp) == 0 && strncmp(name, t->name + sp, pre - sp) == 0)
            p = name + pre - sp;
    }
    if (!p || *p < '0' || *p > '9') return -1;
    long v = 0;
    while (*p >= '0' && *p <= '9' && v < 100000000) v = v * 10 + (*p++ - '0');
    return v;
}

static qfmt__tensor_cat slot_category(uint8_t slot)
{
    switch (slot) {
    case QFMT__M_TOK: return QFMT__CAT_TOKEN_EMBD;
    case QFMT__M_HEAD: return QFMT__CAT_OUTPUT;
    case QFMT__L_Q: return QFMT__CAT_ATTN_Q;
    case QFMT__L_K: return QFMT__CAT_ATTN_K;
    case QFMT__L_V: return QFMT__CAT_ATTN_V;
    case QFMT__L_QKV: return QFMT__CAT_ATTN_QKV;
    case QFMT__L_O: return QFMT__CAT_ATTN_OUTPUT;
    case QFMT__L_UP: case QFMT__L_GATE_UP: return QFMT__CAT_FFN_UP;
    case QFMT__L_GATE: return QFMT__CAT_FFN_GATE;
    case QFMT__L_DOWN: return QFMT__CAT_FFN_DOWN;
    case QFMT__M_POS: case QFMT__M_TYPE: return QFMT__CAT_NONE; /* BERT's position / token-type embeddings */
    default: return QFMT__CAT_OTHER;
    }
}

qfmt__tensor_cat qfmt__mix_category(const qfmt_family *f, const char *name, uint32_t ndim, long *layer)
{
    *layer = -1;
    if (ndim < 2) return QFMT__CAT_NONE; /* llama.cpp quantizes only 2-D and 3-D tensors */
    for (size_t i = 0; f || qfmt_family_at(i); i++) {
        const qfmt_family *g = f ? f : qfmt_family_at(i);
        bool w = false;
        const qfmt__tensor_spec *t = qfmt__family_match(g, name, &w);
        if (t) {
            if (!w || (t->kind != QFMT__FT_LINEAR && t->kind != QFMT__FT_EMBED)) return QFMT__CAT_NONE;
            bool per_layer = false;
            for (const qfmt__tensor_spec *l = g->layer; l->name; l++) per_layer |= l == t;
            if (per_layer) *layer = layer_of(g, t, name);
            return slot_category(t->slot);
        }
        if (f) break;
    }
    /* a name no family knows: llama.cpp's own test (a weight, not a norm), and not an embedding */
    if (!ends_with(name, ".weight") || strstr(name, "norm") || strstr(name, "embed")) return QFMT__CAT_NONE;
    return QFMT__CAT_OTHER;
}

/* ---- Types ----------------------------------------------------------------------------------- */

static uint64_t block_of(uint32_t type) { return qfmt_type_get_traits(type)->block_elems; }

uint32_t qfmt__type_fallback(uint32_t type, uint64_t row_len, const char **note)
{
    *note = NULL;
    uint64_t b = block_of(type);
    if (row_len % b == 0) return type;
    uint32_t fb = UINT32_MAX;
    switch (type) { /* tensor_type_fallback's table, for qfmt's types */
    case QFMT_TYPE_IQ4_XS: fb = QFMT_TYPE_IQ4_NL; break;
    case QFMT_TYPE_Q2_K:
    case QFMT_TYPE_Q3_K: fb = QFMT_TYPE_Q4_0; break;
    case QFMT_TYPE_Q4_K: fb = QFMT_TYPE_Q5_0; break;
    case QFMT_TYPE_Q5_K: fb = QFMT_TYPE_Q5_1; break;
    case QFMT_TYPE_Q6_K: fb = QFMT_TYPE_Q8_0; break;
    default: break;
    }
    if (fb != UINT32_MAX && row_len % block_of(fb) == 0) {
        *note = "its rows are not a multiple of the super-block size 256 (llama.cpp's fallback type)";
        return fb;
    }
    *note = fb != UINT32_MAX ? "its rows are not a multiple of the block size 256 (nor 32)"
            : b == 32        ? "its rows are not a multiple of the block size 32"
                             : "its rows are not a multiple of the block size 256";
    return UINT32_MAX;
}

/* llama.cpp's use_more_bits */
static bool use_more_bits(long i, long n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* llama_tensor_get_type_impl for qfmt's mixes. Omitted (qfmt has no such model or type):
 * Falcon's rules, the experts' (n_expert), LLM_TYPE_70B's attn_v bump, the IQ1/IQ2/IQ3/TQ/MXFP4
 * ftypes, the --output-tensor-type / --token-embedding-type overrides. The ATTENTION_QKV
 * branch of llama.cpp is unreachable there (category_is_attn_v catches it first), so fused
 * q|k|v follow attn_v's rules here too. */
static uint32_t impl(const qfmt__mix_model *mm, qfmt__tensor_cat cat, long layer, uint64_t nx)
{
    const int ft = mm->mix;
    uint32_t t = mixes[ft].type;
    const long n_wv = mm->n_attention_wv, n_layer = mm->n_layer;
    const uint32_t gqa = mm->n_gqa;
    if (cat == QFMT__CAT_OUTPUT || (mm->tied && cat == QFMT__CAT_TOKEN_EMBD)) {
        if (nx % block_of(t) != 0) t = QFMT_TYPE_Q8_0;
        else if (t != QFMT_TYPE_Q8_0) t = QFMT_TYPE_Q6_K;
    } else if (cat == QFMT__CAT_TOKEN_EMBD) {
        /* the default type, for every mix qfmt has */
    } else if (cat == QFMT__CAT_ATTN_V || cat == QFMT__CAT_ATTN_QKV) {
        long i = layer; /* llama.cpp's i_attention_wv: tensors sorted by layer, one a layer */
        if (ft == QFMT__MIX_Q2_K) t = gqa >= 4 ? QFMT_TYPE_Q4_K : QFMT_TYPE_Q3_K;
        else if (ft == QFMT__MIX_Q2_K_S && gqa >= 4) t = QFMT_TYPE_Q4_K;
        else if (ft == QFMT__MIX_Q3_K_M) t = i < 2 ? QFMT_TYPE_Q5_K : QFMT_TYPE_Q4_K;
        else if (ft == QFMT__MIX_Q3_K_L) t = QFMT_TYPE_Q5_K;
        else if ((ft == QFMT__MIX_IQ4_NL || ft == QFMT__MIX_IQ4_XS) && gqa >= 4) t = QFMT_TYPE_Q5_K;
        else if ((ft == QFMT__MIX_Q4_K_M || ft == QFMT__MIX_Q5_K_M) && use_more_bits(i, n_wv)) t = QFMT_TYPE_Q6_K;
        else if (ft == QFMT__MIX_Q4_K_S && i < 4) t = QFMT_TYPE_Q5_K;
    } else if (cat == QFMT__CAT_FFN_DOWN) {
        long i = layer;
        if (ft == QFMT__MIX_Q2_K) t = QFMT_TYPE_Q3_K;
        else if (ft == QFMT__MIX_Q2_K_S) {
            if (i < n_layer / 8) t = QFMT_TYPE_Q4_K;
        } else if (ft == QFMT__MIX_Q3_K_M) t = i < n_layer / 16 ? QFMT_TYPE_Q5_K : QFMT_TYPE_Q4_K;
        else if (ft == QFMT__MIX_Q3_K_L) t = QFMT_TYPE_Q5_K;
        else if (ft == QFMT__MIX_Q4_K_M) {
            if (use_more_bits(i, n_layer)) t = QFMT_TYPE_Q6_K;
        } else if (i < n_layer / 8 && (ft == QFMT__MIX_IQ4_NL || ft == QFMT__MIX_IQ4_XS) && !mm->has_imatrix)
            t = QFMT_TYPE_Q5_K;
        else if (ft == QFMT__MIX_Q5_K_M && use_more_bits(i, n_layer)) t = QFMT_TYPE_Q6_K;
        else if (ft == QFMT__MIX_Q4_K_S && i < n_layer / 8) t = QFMT_TYPE_Q5_K;
        else if ((ft == QFMT__MIX_Q4_0 || ft == QFMT__MIX_Q5_0) && mm->has_imatrix && i < n_layer / 8)
            t = ft == QFMT__MIX_Q4_0 ? QFMT_TYPE_Q4_1 : QFMT_TYPE_Q5_1;
    } else if (cat == QFMT__CAT_ATTN_OUTPUT) {
        if (ft == QFMT__MIX_Q2_K) t = QFMT_TYPE_Q3_K;
        else if (ft == QFMT__MIX_Q3_K_M) t = QFMT_TYPE_Q4_K;
        else if (ft == QFMT__MIX_Q3_K_L) t = QFMT_TYPE_Q5_K;
    }
    /* ATTN_Q, ATTN_K, FFN_UP, FFN_GATE, OTHER: the default type for these mixes */
    return t;
}

uint32_t qfmt__mix_type(const qfmt__mix_model *mm, qfmt__tensor_cat cat, long layer, uint64_t row_len,
                        const char **note)
{
    *note = NULL;
    if (cat == QFMT__CAT_NONE || mm->mix < 0 || mm->mix >= QFMT__MIX_COUNT) return UINT32_MAX;
    return qfmt__type_fallback(impl(mm, cat, layer, row_len), row_len, note);
}

/* ---- Recipes ------------------------------------------------------------------------------- */

static qfmt_status recipe_fail(qfmt_error *err, qfmt_status code, const char *name, size_t line, const char *fmt,
                               const char *word, size_t wlen)
{
    if (err) {
        memset(err, 0, sizeof *err);
        err->code = code;
        err->offset = QFMT_NO_OFFSET;
        if (line) snprintf(err->path, sizeof err->path, "%.200s:%zu", name ? name : "recipe", line);
        else snprintf(err->path, sizeof err->path, "%.255s", name ? name : "");
        char w[96];
        qfmt_escape(word ? word : "", word ? (wlen > 64 ? 64 : wlen) : 0, w, sizeof w);
        snprintf(err->message, sizeof err->message, fmt, w);
    }
    return code;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

qfmt_status qfmt_convert_recipe_parse(const char *text, size_t len, const char *name, qfmt_convert_rule **rules,
                                      size_t *nrules, qfmt_error *err)
{
    if (!rules || !nrules || (!text && len))
        return recipe_fail(err, QFMT_E_ARG, name, 0, "invalid arguments to qfmt_convert_recipe_parse%s", NULL, 0);
    *rules = NULL;
    *nrules = 0;
    /* one block: the rules, then every glob NUL-terminated (at most len + lines bytes) */
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    size_t bytes = lines * sizeof(qfmt_convert_rule) + len + lines + 1;
    qfmt_convert_rule *r = malloc(bytes);
    if (!r) return recipe_fail(err, QFMT_E_NOMEM, name, 0, "out of memory%s", NULL, 0);
    char *store = (char *)(r + lines);
    size_t n = 0, line = 0;
    for (size_t at = 0; at <= len && len;) {
        size_t end = at;
        while (end < len && text[end] != '\n') end++;
        line++;
        const char *s = text + at;
        size_t l = end - at;
        for (size_t k = 0; k < l; k++)
            if (s[k] == '#') l = k;
        const char *word[3];
        size_t wl[3], nw = 0;
        for (size_t k = 0; k < l;) {
            while (k < l && is_space(s[k])) k++;
            if (k >= l) break;
            size_t b = k;
            while (k < l && !is_space(s[k])) k++;
            if (nw < 3) word[nw] = s + b, wl[nw] = k - b;
            nw++;
        }
        for (size_t k = 0; k < l; k++)
            if (s[k] == '\0' || ((unsigned char)s[k] < 0x20 && !is_space(s[k]))) {
                free(r);
                return recipe_fail(err, QFMT_E_CORRUPT, name, line, "a control character in the line%s", NULL, 0);
            }
        at = end + 1;
        if (nw == 0) continue;
        if (nw == 1) {
            free(r);
            return recipe_fail(err, QFMT_E_CORRUPT, name, line, "'%s' has no type: a line is GLOB TYPE", word[0], wl[0]);
        }
        if (nw > 2) {
            free(r);
            return recipe_fail(err, QFMT_E_CORRUPT, name, line,
                               "more than two words (GLOB TYPE; a glob holds no space): '%s'", word[2], wl[2]);
        }
        char tn[32];
        uint32_t type = QFMT_CONVERT_KEEP;
        bool known = false;
        if (wl[1] < sizeof tn) {
            memcpy(tn, word[1], wl[1]);
            tn[wl[1]] = '\0';
            if (strcmp(tn, "keep") == 0) {
                known = true;
            } else if (qfmt_type_from_name(tn, &type) == QFMT_OK) {
                known = true;
                const qfmt_type_traits *t = qfmt_type_get_traits(type);
                bool ok = type == QFMT_TYPE_F32 || type == QFMT_TYPE_F16 || type == QFMT_TYPE_BF16 ||
                          (t && t->block_elems > 1);
                if (!ok) {
                    free(r);
                    return recipe_fail(err, QFMT_E_CORRUPT, name, line,
                                       "type '%s' cannot be a target (f32, f16, bf16, a block type or keep)",
                                       word[1], wl[1]);
                }
            }
        }
        if (!known) {
            bool is_mix = wl[1] < sizeof tn && qfmt__mix_find(tn) >= 0;
            free(r);
            return recipe_fail(err, QFMT_E_CORRUPT, name, line,
                               is_mix ? "'%s' is a mix, not a type (f32, f16, bf16, a block type or keep)"
                                      : "unknown type '%s' (f32, f16, bf16, a block type or keep)",
                               word[1], wl[1]);
        }
        memcpy(store, word[0], wl[0]);
        store[wl[0]] = '\0';
        r[n].glob = store;
        r[n].type = type;
        store += wl[0] + 1;
        n++;
        if (end >= len) break;
    }
    if (n == 0) {
        free(r);
        r = NULL;
    }
    *rules = r;
    *nrules = n;
    return QFMT_OK;
}

qfmt_status qfmt_convert_recipe_load(const char *path, qfmt_convert_rule **rules, size_t *nrules, qfmt_error *err)
{
    if (!path || !rules || !nrules)
        return recipe_fail(err, QFMT_E_ARG, path, 0, "invalid arguments to qfmt_convert_recipe_load%s", NULL, 0);
    *rules = NULL;
    *nrules = 0;
    char *text = NULL;
    size_t len = 0;
    qfmt_status s = qfmt__read_text(path, 0, &text, &len, err);
    if (s == QFMT_OK) s = qfmt_convert_recipe_parse(text, len, path, rules, nrules, err);
    free(text);
    return s;
}

/* ---- Size targets ------------------------------------------------------------------------------ */

const uint32_t qfmt__bpw_default_types[6] = {QFMT_TYPE_Q2_K, QFMT_TYPE_Q3_K, QFMT_TYPE_Q4_K,
                                             QFMT_TYPE_Q5_K, QFMT_TYPE_Q6_K, QFMT_TYPE_Q8_0};

/* The lower convex hull of t's options as (bytes, err) points, smallest bytes first, into
 * hull (indexes into t->opt); returns its length. Ties in bytes keep the lower error (then the
 * lower index); a point not below the one before it is dropped. */
static size_t lower_hull(const qfmt__bpw_tensor *t, size_t *hull)
{
    size_t order[QFMT__BPW_MAX_OPTIONS], n = 0;
    for (size_t k = 0; k < t->nopt; k++) order[n++] = k;
    for (size_t a = 1; a < n; a++) /* insertion sort by (bytes, err, index) */
        for (size_t b = a; b > 0; b--) {
            const qfmt__bpw_option *x = &t->opt[order[b - 1]], *y = &t->opt[order[b]];
            bool swap = x->bytes > y->bytes || (x->bytes == y->bytes && x->err > y->err);
            if (!swap) break;
            size_t tmp = order[b - 1];
            order[b - 1] = order[b];
            order[b] = tmp;
        }
    size_t h = 0;
    for (size_t a = 0; a < n; a++) {
        const qfmt__bpw_option *p = &t->opt[order[a]];
        if (h && (p->bytes == t->opt[hull[h - 1]].bytes || p->err >= t->opt[hull[h - 1]].err)) continue;
        while (h >= 2) { /* drop the last point when it lies on or above the segment to p */
            const qfmt__bpw_option *o = &t->opt[hull[h - 2]], *q = &t->opt[hull[h - 1]];
            double cross = ((double)q->bytes - (double)o->bytes) * (p->err - o->err) -
                           (q->err - o->err) * ((double)p->bytes - (double)o->bytes);
            if (cross > 0) break;
            h--;
        }
        hull[h++] = order[a];
    }
    return h;
}

/* t's options sorted by bytes with each one's error strictly below every cheaper one's (the
 * others are never worth their bytes), into list; returns its length. */
static size_t pareto(const qfmt__bpw_tensor *t, size_t *list)
{
    size_t order[QFMT__BPW_MAX_OPTIONS], n = 0, m = 0;
    for (size_t k = 0; k < t->nopt; k++) order[n++] = k;
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0; b--) {
            const qfmt__bpw_option *x = &t->opt[order[b - 1]], *y = &t->opt[order[b]];
            if (!(x->bytes > y->bytes || (x->bytes == y->bytes && x->err > y->err))) break;
            size_t tmp = order[b - 1];
            order[b - 1] = order[b];
            order[b] = tmp;
        }
    for (size_t a = 0; a < n; a++)
        if (!m || (t->opt[order[a]].bytes > t->opt[list[m - 1]].bytes && t->opt[order[a]].err < t->opt[list[m - 1]].err))
            list[m++] = order[a];
    return m;
}

typedef struct {
    size_t p[QFMT__BPW_MAX_OPTIONS], np; /* the pareto options */
    size_t h[QFMT__BPW_MAX_OPTIONS], nh; /* the hull's, as positions in p */
} bpw_lists;

#define OPT(i, pos) (&t[i].opt[L[i].p[pos]])

static void totals(const qfmt__bpw_tensor *t, const bpw_lists *L, const size_t *pos, size_t n, double *bits,
                   double *err)
{
    *bits = 0, *err = 0;
    for (size_t i = 0; i < n; i++) {
        *bits += 8.0 * (double)OPT(i, pos[i])->bytes;
        *err += OPT(i, pos[i])->err;
    }
}

bool qfmt__bpw_choose(qfmt__bpw_tensor *t, size_t n, double budget_bits)
{
    bpw_lists *L = n ? malloc(n * sizeof *L) : NULL;
    size_t *pos = n ? calloc(n, sizeof *pos) : NULL, *hp = n ? calloc(n, sizeof *hp) : NULL;
    size_t *alt = n ? calloc(n, sizeof *alt) : NULL;
    bool fits = true;
    if (n && (!L || !pos || !hp || !alt)) { /* no memory: the smallest options (may not fit) */
        double bits = 0;
        for (size_t i = 0; i < n; i++) {
            size_t s = 0;
            for (size_t k = 1; k < t[i].nopt; k++)
                if (t[i].opt[k].bytes < t[i].opt[s].bytes) s = k;
            t[i].choice = s;
            bits += 8.0 * (double)t[i].opt[s].bytes;
        }
        free(L), free(pos), free(hp), free(alt);
        return bits <= budget_bits;
    }
    double bits = 0, err;
    size_t maxnp = 0;
    for (size_t i = 0; i < n; i++) {
        size_t hull[QFMT__BPW_MAX_OPTIONS];
        L[i].np = pareto(&t[i], L[i].p);
        L[i].nh = lower_hull(&t[i], hull);
        for (size_t k = 0; k < L[i].nh; k++) /* hull points are pareto points */
            for (size_t q = 0; q < L[i].np; q++)
                if (L[i].p[q] == hull[k]) L[i].h[k] = q;
        if (L[i].np > maxnp) maxnp = L[i].np;
        bits += 8.0 * (double)OPT(i, 0)->bytes;
    }
    fits = bits <= budget_bits;
    /* 1. along the hulls: the step removing the most error per byte that fits, until none does */
    while (fits) {
        size_t best = SIZE_MAX;
        double best_gain = 0;
        for (size_t i = 0; i < n; i++) {
            if (hp[i] + 1 >= L[i].nh) continue;
            const qfmt__bpw_option *c = OPT(i, L[i].h[hp[i]]), *x = OPT(i, L[i].h[hp[i] + 1]);
            double add = 8.0 * (double)(x->bytes - c->bytes);
            if (bits + add > budget_bits) continue;
            double gain = (c->err - x->err) / add;
            if (best == SIZE_MAX || gain > best_gain) best = i, best_gain = gain;
        }
        if (best == SIZE_MAX) break;
        bits += 8.0 * (double)(OPT(best, L[best].h[hp[best] + 1])->bytes - OPT(best, L[best].h[hp[best]])->bytes);
        hp[best]++;
    }
    for (size_t i = 0; i < n; i++) pos[i] = L[i].h[hp[i]];
    totals(t, L, pos, n, &bits, &err);
    /* 2. or the exact choice on a grid: a multiple-choice knapsack solved by dynamic programming
     * over the budget in U units (bytes, or budget / U for U = min(64 Mi / n, 1 Mi); each
     * tensor's bytes rounded up, so its solution fits) */
    if (fits && n) {
        double budget_bytes = floor(budget_bits / 8.0);
        double cells = 64.0 * 1024 * 1024 / (double)n;
        if (cells > 1024.0 * 1024) cells = 1024.0 * 1024; /* the two rows of the table: 16 MiB at most */
        size_t U = (size_t)(budget_bytes < cells ? budget_bytes : cells);
        double unit = U ? budget_bytes / (double)U : 1;
        if (unit < 1) unit = 1;
        if (U && budget_bytes / unit > (double)U) unit = ceil(budget_bytes / (double)U);
        double *dp = malloc((U + 1) * sizeof *dp), *nx = malloc((U + 1) * sizeof *nx);
        uint8_t *pick = malloc(n * (U + 1));
        if (dp && nx && pick) {
            for (size_t u = 0; u <= U; u++) dp[u] = 0;
            for (size_t i = 0; i < n; i++) {
                uint8_t *pk = pick + i * (U + 1);
                size_t w[QFMT__BPW_MAX_OPTIONS];
                for (size_t q = 0; q < L[i].np; q++) {
                    double x = ceil((double)OPT(i, q)->bytes / unit);
                    w[q] = x > (double)U ? SIZE_MAX : (size_t)x;
                }
                for (size_t u = 0; u <= U; u++) {
                    double b = INFINITY;
                    uint8_t bk = 0;
                    for (size_t q = 0; q < L[i].np; q++)
                        if (w[q] <= u && dp[u - w[q]] + OPT(i, q)->err < b) b = dp[u - w[q]] + OPT(i, q)->err, bk = (uint8_t)q;
                    nx[u] = b;
                    pk[u] = bk;
                }
                double *tmp = dp;
                dp = nx;
                nx = tmp;
            }
            if (isfinite(dp[U])) {
                size_t u = U;
                for (size_t i = n; i-- > 0;) {
                    alt[i] = pick[i * (U + 1) + u];
                    u -= (size_t)ceil((double)OPT(i, alt[i])->bytes / unit);
                }
                double ab, ae;
                totals(t, L, alt, n, &ab, &ae);
                if (ab <= budget_bits && ae < err) {
                    memcpy(pos, alt, n * sizeof *pos);
                    bits = ab, err = ae;
                }
            }
        }
        free(dp), free(nx), free(pick);
    }
    /* 3. or a uniform start that does better: every tensor at its k-th cheapest option (or the
     * best pareto one no dearer) */
    for (size_t k = 0; fits && k < QFMT__BPW_MAX_OPTIONS; k++) {
        for (size_t i = 0; i < n; i++) {
            size_t order[QFMT__BPW_MAX_OPTIONS], m = t[i].nopt;
            for (size_t a = 0; a < m; a++) order[a] = a;
            for (size_t a = 1; a < m; a++)
                for (size_t b = a; b > 0 && t[i].opt[order[b - 1]].bytes > t[i].opt[order[b]].bytes; b--) {
                    size_t tmp = order[b - 1];
                    order[b - 1] = order[b];
                    order[b] = tmp;
                }
            uint64_t cap = t[i].opt[order[k < m ? k : m - 1]].bytes;
            alt[i] = 0;
            for (size_t q = 0; q < L[i].np; q++)
                if (OPT(i, q)->bytes <= cap) alt[i] = q;
        }
        double ab, ae;
        totals(t, L, alt, n, &ab, &ae);
        if (ab <= budget_bits && ae < err) {
            memcpy(pos, alt, n * sizeof *pos);
            bits = ab, err = ae;
        }
    }
    /* 4. local search: the best single change, or one tensor a step up and another a step down,
     * that fits and lowers the error; until none does (bounded) */
    for (size_t round = 0; fits && round < 4 * n + 16; round++) {
        double best = 0;
        size_t bi = SIZE_MAX, bq = 0, bj = SIZE_MAX;
        for (size_t i = 0; i < n; i++)
            for (size_t q = 0; q < L[i].np; q++) {
                if (q == pos[i]) continue;
                double db = 8.0 * ((double)OPT(i, q)->bytes - (double)OPT(i, pos[i])->bytes);
                double de = OPT(i, q)->err - OPT(i, pos[i])->err;
                if (bits + db <= budget_bits && de < best) best = de, bi = i, bq = q, bj = SIZE_MAX;
            }
        for (size_t i = 0; i < n; i++) {
            if (pos[i] + 1 >= L[i].np) continue;
            double ub = 8.0 * ((double)OPT(i, pos[i] + 1)->bytes - (double)OPT(i, pos[i])->bytes);
            double ue = OPT(i, pos[i] + 1)->err - OPT(i, pos[i])->err;
            for (size_t j = 0; j < n; j++) {
                if (j == i || pos[j] == 0) continue;
                double db = ub + 8.0 * ((double)OPT(j, pos[j] - 1)->bytes - (double)OPT(j, pos[j])->bytes);
                double de = ue + OPT(j, pos[j] - 1)->err - OPT(j, pos[j])->err;
                if (bits + db <= budget_bits && de < best) best = de, bi = i, bq = pos[i] + 1, bj = j;
            }
        }
        if (bi == SIZE_MAX) break;
        pos[bi] = bq;
        if (bj != SIZE_MAX) pos[bj]--;
        totals(t, L, pos, n, &bits, &err);
    }
    if (!fits)
        for (size_t i = 0; i < n; i++) pos[i] = 0;
    for (size_t i = 0; i < n; i++) t[i].choice = L[i].p[pos[i]];
    free(L), free(pos), free(hp), free(alt);
    return fits;
}

#undef OPT

static bool grow(void **buf, size_t *cap, uint64_t n)
{
    if (n <= *cap) return true;
    if (n > SIZE_MAX) return false;
    free(*buf);
    *buf = malloc((size_t)n);
    *cap = *buf ? (size_t)n : 0;
    return *buf != NULL;
}

typedef struct {
    const float *ref, *dec, *w;
    uint64_t row_len;
    double *row_err;
} err_job;

static void err_rows(void *ctx, size_t begin, size_t end)
{
    const err_job *j = ctx;
    for (size_t r = begin; r < end; r++) {
        const float *a = j->ref + r * j->row_len, *b = j->dec + r * j->row_len;
        double s = 0;
        for (uint64_t c = 0; c < j->row_len; c++) {
            double d = (double)a[c] - (double)b[c];
            s += (j->w ? (double)j->w[c] : 1.0) * d * d;
        }
        j->row_err[r] = s;
    }
}

qfmt_status qfmt__bpw_measure(uint32_t type, uint32_t src_type, const void *src, const float *ref, uint64_t rows,
                              uint64_t row_len, const qfmt_quant_opts *qo, qfmt_pool *pool, void **qbuf,
                              size_t *qcap, void **dbuf, size_t *dcap, uint64_t *bytes, double *err,
                              qfmt_error *e)
{
    uint64_t n = rows * row_len, qsize;
    qfmt_status s = qfmt_type_size(type, n, &qsize);
    if (s != QFMT_OK) return s;
    /* the decoded values, then (8-aligned) the per-row errors */
    uint64_t at = (n * sizeof(float) + 7) & ~(uint64_t)7;
    if (n > SIZE_MAX / 8 || rows > (SIZE_MAX - at) / sizeof(double) || !grow(qbuf, qcap, qsize) ||
        !grow(dbuf, dcap, at + rows * sizeof(double))) {
        if (e) {
            memset(e, 0, sizeof *e);
            e->code = QFMT_E_NOMEM;
            e->offset = QFMT_NO_OFFSET;
            snprintf(e->message, sizeof e->message, "out of memory");
        }
        return QFMT_E_NOMEM;
    }
    s = qfmt_quantize(type, *qbuf, qsize, src_type, src, rows, row_len, qo, e);
    qfmt_quant_opts dq = QFMT_QUANT_OPTS_INIT;
    dq.threads = qo ? qo->threads : 1;
    float *dec = *dbuf;
    if (s == QFMT_OK) s = qfmt_dequantize(QFMT_TYPE_F32, dec, n * sizeof(float), type, *qbuf, rows, row_len, &dq, e);
    if (s != QFMT_OK) return s;
    err_job j = {ref, dec, qo ? qo->importance : NULL, row_len, (double *)(void *)((char *)*dbuf + at)};
    if (pool && rows > 1) qfmt_pool_for(pool, (size_t)rows, err_rows, &j);
    else err_rows(&j, 0, (size_t)rows);
    double total = 0;
    for (uint64_t r = 0; r < rows; r++) total += j.row_err[r];
    *bytes = qsize;
    *err = total;
    return QFMT_OK;
}
