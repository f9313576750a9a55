/* The forward passes. Every causal family runs one decoder, as its family table describes it
 * (family.h's qfmt__graph: norm kind, embedding scale, learned positions, gated MLP) and as its
 * tensors say (fused or split projections, biases, q/k norms, post-norms), with per-layer
 * attention windows and RoPE; through a KV cache, so a whole sequence and token-by-token
 * generation share one code path. BERT runs bidirectionally. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "model_internal.h"

qfmt_pool *qfmt__model_pool(qfmt_model *m, unsigned threads)
{
    if (threads == 0) threads = 1;
    if (!m->pool || qfmt_pool_size(m->pool) != threads) {
        qfmt_pool_free(m->pool);
        m->pool = qfmt_pool_new(threads);
    }
    return m->pool;
}

/* A causal model's KV cache. Layer l holds slots[l] positions, position p at slot p % slots[l]:
 * a full-attention layer every position so far, a sliding-window layer its window plus the
 * chunk being evaluated (a window of W needs W - 1 + n slots for n new tokens, so no key a
 * query of the chunk sees is overwritten by the chunk). The slots grow on demand. */
struct qfmt_session {
    qfmt_model *m;
    size_t pos, cap; /* positions used; the context */
    float **k, **v;  /* per layer: [slots][kv_heads * head_dim] */
    size_t *slots;
    const qfmt__observer *obs; /* calibration: sees every product's input, NULL: none */
};

/* y = x w^T (+ b) for n rows, the observer (if any) shown x first. */
static void mm(const qfmt__observer *obs, qfmt_pool *pool, const linear *l, const float *x, size_t n, float *y,
               bool exact)
{
    if (obs) obs->fn(obs->ctx, &l->w, x, n);
    qfmt__qmat_mul(pool, &l->w, l->b, x, n, y, exact);
}

/* ---- Attention ------------------------------------------------------------------------ */

typedef struct {
    const float *q;      /* n x (heads*hd) */
    const float *k, *v;  /* keys/values: position p at slot p % slots, [slot][kv_dim] */
    float *out;          /* n x (heads*hd) */
    size_t n, pos0, heads, kv_group, hd, kv_dim, slots;
    bool causal;
    size_t window;       /* causal: keys of the last `window` positions only; 0: all */
    size_t nkeys;        /* non-causal: keys visible to every query */
    float scale, softcap; /* scores: q.k x scale, then softcap x tanh(score / softcap) unless 0 */
} attn_job;

static void attn_range(void *ctx, size_t begin, size_t end)
{
    attn_job *j = ctx;
    size_t maxkeys = j->causal ? j->pos0 + j->n : j->nkeys;
    if (j->causal && j->window && maxkeys > j->window) maxkeys = j->window;
    float *sc = malloc((maxkeys ? maxkeys : 1) * sizeof *sc);
    if (!sc) return;
    for (size_t task = begin; task < end; task++) {
        size_t t = task / j->heads, h = task % j->heads, kvh = h / j->kv_group;
        const float *q = j->q + t * j->heads * j->hd + h * j->hd;
        size_t last = j->causal ? j->pos0 + t + 1 : j->nkeys; /* key positions [first, last) */
        size_t first = j->causal && j->window && last > j->window ? last - j->window : 0, nk = last - first;
        for (size_t s = 0; s < nk; s++) {
            const float *k = j->k + ((first + s) % j->slots) * j->kv_dim + kvh * j->hd;
            float x = qfmt_dot(q, k, j->hd) * j->scale;
            sc[s] = j->softcap > 0 ? j->softcap * tanhf(x / j->softcap) : x;
        }
        qfmt__softmax(sc, nk);
        float *o = j->out + t * j->heads * j->hd + h * j->hd;
        memset(o, 0, j->hd * sizeof *o);
        for (size_t s = 0; s < nk; s++) {
            const float *vv = j->v + ((first + s) % j->slots) * j->kv_dim + kvh * j->hd;
            for (size_t i = 0; i < j->hd; i++) o[i] += sc[s] * vv[i];
        }
    }
    free(sc);
}

/* ---- Causal models ----------------------------------------------------------------------- */

typedef struct {
    float *x, *a, *q, *k, *v, *att, *f, *g, *fused;
} bufs;

static void free_bufs(bufs *b)
{
    free(b->x), free(b->a), free(b->q), free(b->k), free(b->v), free(b->att), free(b->f), free(b->g), free(b->fused);
}

static int alloc_bufs(bufs *b, const qfmt_model *m, size_t n)
{
    const qfmt_model_hparams *h = &m->hp;
    size_t qd = h->heads * h->head_dim, kvd = h->kv_heads * h->head_dim;
    size_t fused = 0; /* the widest fused product, split into q/k/v or gate/up */
    for (uint64_t l = 0; l < h->layers; l++) {
        if (m->layers[l].qkv.w.data && qd + 2 * kvd > fused) fused = qd + 2 * kvd;
        if (m->layers[l].gate_up.w.data && 2 * h->ffn > fused) fused = 2 * h->ffn;
    }
    memset(b, 0, sizeof *b);
    b->x = malloc(n * h->d * sizeof(float));
    b->a = malloc(n * h->d * sizeof(float));
    b->q = malloc(n * qd * sizeof(float));
    b->k = malloc(n * kvd * sizeof(float));
    b->v = malloc(n * kvd * sizeof(float));
    b->att = malloc(n * (qd > h->d ? qd : h->d) * sizeof(float));
    b->f = malloc(n * h->ffn * sizeof(float));
    b->g = malloc(n * h->ffn * sizeof(float));
    b->fused = fused ? malloc(n * fused * sizeof(float)) : NULL;
    if (!b->x || !b->a || !b->q || !b->k || !b->v || !b->att || !b->f || !b->g || (fused && !b->fused)) {
        free_bufs(b);
        return -1;
    }
    return 0;
}

static void add(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static void activate(qfmt__act act, float *x, size_t n)
{
    switch (act) {
    case QFMT__ACT_SILU: for (size_t i = 0; i < n; i++) x[i] = qfmt__silu(x[i]); break;
    case QFMT__ACT_GELU_TANH: for (size_t i = 0; i < n; i++) x[i] = qfmt__gelu_tanh(x[i]); break;
    case QFMT__ACT_GELU_ERF: for (size_t i = 0; i < n; i++) x[i] = qfmt__gelu_erf(x[i]); break;
    case QFMT__ACT_RELU: for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0; break;
    }
}

/* The family's norm over each of n rows of `width` values. */
static void norm_rows(const qfmt_model *m, const norm *nm, float *x, size_t n, size_t width)
{
    float eps = (float)m->hp.eps;
    for (size_t t = 0; t < n; t++) {
        if (m->hp.family->graph.norm == QFMT__NORM_LAYER) qfmt__layer_norm(x + t * width, width, nm->w, nm->b, eps);
        else qfmt__rms_norm(x + t * width, width, nm->w, eps);
    }
}

static void embed_rows(const qmat *e, const int32_t *ids, size_t n, float *x)
{
    for (size_t t = 0; t < n; t++) qfmt__qmat_row(e, (uint64_t)ids[t], x + t * e->cols);
}

static int check_ids(const qfmt_model *m, const int32_t *ids, size_t n, qfmt_error *err)
{
    for (size_t t = 0; t < n; t++)
        if (ids[t] < 0 || (uint64_t)ids[t] >= m->hp.vocab)
            return qfmt__merr(err, QFMT_E_RANGE, NULL, NULL, "token id %d at position %zu is outside the vocabulary (0..%llu)", ids[t],
                             t, (unsigned long long)m->hp.vocab - 1);
    return 0;
}

/* Makes room in every layer's cache for n more positions (nothing changes on failure). */
static int cache_reserve(qfmt_session *s, size_t n)
{
    const qfmt_model_hparams *h = &s->m->hp;
    size_t kvd = h->kv_heads * h->head_dim;
    for (uint64_t l = 0; l < h->layers; l++) {
        size_t w = (size_t)s->m->layers[l].window, old = s->slots[l];
        size_t need = s->pos + n, limit = s->cap; /* slots this chunk needs; the most worth having */
        if (w) {
            if (w - 1 + n < limit) limit = w - 1 + n;
            if (need > limit) need = limit;
        }
        if (need <= old) continue;
        size_t ns = 2 * old > need ? 2 * old : need;
        if (ns > limit) ns = limit;
        float *k = malloc(ns * kvd * sizeof(float)), *v = malloc(ns * kvd * sizeof(float));
        if (!k || !v) {
            free(k), free(v);
            return -1;
        }
        /* the positions still visible move to their slots in the new ring */
        size_t keep = w && w - 1 < s->pos ? w - 1 : s->pos;
        for (size_t p = s->pos - keep; p < s->pos; p++) {
            memcpy(k + (p % ns) * kvd, s->k[l] + (p % old) * kvd, kvd * sizeof(float));
            memcpy(v + (p % ns) * kvd, s->v[l] + (p % old) * kvd, kvd * sizeof(float));
        }
        free(s->k[l]), free(s->v[l]);
        s->k[l] = k, s->v[l] = v, s->slots[l] = ns;
    }
    return 0;
}

/* Rows [t0, t0 + n) of src (width `width`) at column `col`, `cols` wide, to dst (n x cols). */
static void take_cols(const float *src, size_t width, size_t col, size_t cols, size_t n, float *dst)
{
    for (size_t t = 0; t < n; t++) memcpy(dst + t * cols, src + t * width + col, cols * sizeof(float));
}

static int causal_forward(qfmt_session *s, const int32_t *ids, size_t n, float *logits, bool all_logits,
                          float **hidden, const qfmt_run_opts *o, qfmt_error *err)
{
    qfmt_model *m = s->m;
    const qfmt_model_hparams *h = &m->hp;
    if (check_ids(m, ids, n, err)) return -1;
    if (s->pos + n > s->cap)
        return qfmt__merr(err, QFMT_E_RANGE, NULL, NULL, "%zu tokens do not fit the context of %zu (%zu already used)", n, s->cap, s->pos);
    qfmt_pool *pool = qfmt__model_pool(m, o ? o->threads : 1);
    bool exact = !o || o->exact;
    bufs b;
    if (!pool || cache_reserve(s, n) || alloc_bufs(&b, m, n))
        return qfmt__merr(err, QFMT_E_NOMEM, NULL, NULL, "out of memory for %zu tokens", n);
    size_t d = h->d, hd = h->head_dim, qd = h->heads * hd, kvd = h->kv_heads * hd, ffn = h->ffn;
    float eps = (float)h->eps;
    embed_rows(&m->tok, ids, n, b.x);
    if (m->emb_scale != 1.0f)
        for (size_t i = 0; i < n * d; i++) b.x[i] *= m->emb_scale;
    if (m->pos.data) /* learned positions (GPT-2) */
        for (size_t t = 0; t < n; t++) {
            qfmt__qmat_row(&m->pos, s->pos + t, b.a);
            add(b.x + t * d, b.a, d);
        }
    if (hidden) memcpy(hidden[0], b.x, n * d * sizeof(float));
    for (uint64_t l = 0; l < h->layers; l++) {
        const layer *L = &m->layers[l];
        size_t slots = s->slots[l];
        float *kc = s->k[l], *vc = s->v[l];
        memcpy(b.a, b.x, n * d * sizeof(float));
        norm_rows(m, &L->ln1, b.a, n, d);
        if (L->qkv.w.data) { /* fused q|k|v, split by rows */
            size_t w = qd + 2 * kvd;
            mm(s->obs, pool, &L->qkv, b.a, n, b.fused, exact);
            take_cols(b.fused, w, 0, qd, n, b.q);
            take_cols(b.fused, w, qd, kvd, n, b.k);
            take_cols(b.fused, w, qd + kvd, kvd, n, b.v);
        } else {
            mm(s->obs, pool, &L->q, b.a, n, b.q, exact);
            mm(s->obs, pool, &L->k, b.a, n, b.k, exact);
            mm(s->obs, pool, &L->v, b.a, n, b.v, exact);
        }
        if (L->qn.w) /* RMSNorm of each head, before RoPE (Qwen 3, Gemma 3) */
            for (size_t r = 0; r < n * h->heads; r++) qfmt__rms_norm(b.q + r * hd, hd, L->qn.w, eps);
        if (L->kn.w)
            for (size_t r = 0; r < n * h->kv_heads; r++) qfmt__rms_norm(b.k + r * hd, hd, L->kn.w, eps);
        if (L->rope) {
            qfmt__rope_apply(L->rope, b.q, n, h->heads, hd, s->pos);
            qfmt__rope_apply(L->rope, b.k, n, h->kv_heads, hd, s->pos);
        }
        for (size_t t = 0; t < n; t++) {
            memcpy(kc + ((s->pos + t) % slots) * kvd, b.k + t * kvd, kvd * sizeof(float));
            memcpy(vc + ((s->pos + t) % slots) * kvd, b.v + t * kvd, kvd * sizeof(float));
        }
        attn_job aj = {b.q, kc, vc, b.att, n, s->pos, h->heads, h->heads / h->kv_heads, hd, kvd, slots, true,
                       (size_t)L->window, 0, m->attn_scale, m->attn_softcap};
        qfmt_pool_for(pool, n * h->heads, attn_range, &aj);
        mm(s->obs, pool, &L->o, b.att, n, b.a, exact);
        if (L->post_attn.w) norm_rows(m, &L->post_attn, b.a, n, d);
        add(b.x, b.a, n * d);
        memcpy(b.a, b.x, n * d * sizeof(float));
        norm_rows(m, &L->ln2, b.a, n, d);
        if (L->gate_up.w.data) { /* fused gate|up: act(gate) x up */
            mm(s->obs, pool, &L->gate_up, b.a, n, b.fused, exact);
            take_cols(b.fused, 2 * ffn, 0, ffn, n, b.g);
            take_cols(b.fused, 2 * ffn, ffn, ffn, n, b.f);
        } else {
            mm(s->obs, pool, &L->up, b.a, n, b.f, exact);
            if (L->gate.w.data) mm(s->obs, pool, &L->gate, b.a, n, b.g, exact);
        }
        if (L->gate.w.data || L->gate_up.w.data) {
            activate(m->act, b.g, n * ffn);
            for (size_t i = 0; i < n * ffn; i++) b.f[i] *= b.g[i];
        } else {
            activate(m->act, b.f, n * ffn);
        }
        mm(s->obs, pool, &L->down, b.f, n, b.a, exact);
        if (L->post_mlp.w) norm_rows(m, &L->post_mlp, b.a, n, d);
        add(b.x, b.a, n * d);
        if (hidden && l + 1 < h->layers) memcpy(hidden[l + 1], b.x, n * d * sizeof(float));
    }
    norm_rows(m, &m->final_norm, b.x, n, d);
    if (hidden) memcpy(hidden[h->layers], b.x, n * d * sizeof(float));
    if (logits) {
        size_t rows = all_logits ? n : 1;
        qfmt__qmat_mul(pool, &m->head, NULL, b.x + (all_logits ? 0 : (n - 1) * d), rows, logits, exact);
        if (m->final_softcap > 0) /* cap x tanh(logit / cap) (Gemma 2) */
            for (size_t i = 0; i < rows * h->vocab; i++) logits[i] = m->final_softcap * tanhf(logits[i] / m->final_softcap);
    }
    s->pos += n;
    free_bufs(&b);
    return 0;
}

static void session_release(qfmt_session *s)
{
    for (uint64_t l = 0; s->k && l < s->m->hp.layers; l++) free(s->k[l]), free(s->v[l]);
    free(s->k), free(s->v), free(s->slots);
}

/* A session of `cap` positions; the caches are allocated as positions arrive. */
static int session_init(qfmt_session *s, qfmt_model *m, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->m = m;
    s->cap = cap;
    s->k = calloc(m->hp.layers, sizeof *s->k);
    s->v = calloc(m->hp.layers, sizeof *s->v);
    s->slots = calloc(m->hp.layers, sizeof *s->slots);
    if (s->k && s->v && s->slots) return 0;
    session_release(s);
    return -1;
}

static int session_new(qfmt_session **out, qfmt_model *m, qfmt_error *err)
{
    *out = NULL;
    if (!m->hp.causal) return qfmt__merr(err, QFMT_E_UNSUPPORTED, NULL, NULL, "a %s model has no incremental decoding", "BERT");
    qfmt_session *s = malloc(sizeof *s);
    if (!s || session_init(s, m, (size_t)m->hp.ctx)) {
        free(s);
        return qfmt__merr(err, QFMT_E_NOMEM, NULL, NULL, "out of memory for a session");
    }
    *out = s;
    return 0;
}

void qfmt_session_free(qfmt_session *s)
{
    if (!s) return;
    session_release(s);
    free(s);
}

size_t qfmt_session_pos(const qfmt_session *s) { return s->pos; }

static int session_eval(qfmt_session *s, const int32_t *ids, size_t n, float *last_logits, const qfmt_run_opts *o,
                        qfmt_error *err)
{
    if (n == 0) return qfmt__merr(err, QFMT_E_ARG, NULL, NULL, "no tokens to evaluate");
    return causal_forward(s, ids, n, last_logits, false, NULL, o, err);
}

/* ---- BERT -------------------------------------------------------------------------------- */

static int bert_forward(qfmt_model *m, const int32_t *ids, size_t n, float *logits, float **hidden,
                        const qfmt_run_opts *o, const qfmt__observer *obs, qfmt_error *err)
{
    const qfmt_model_hparams *h = &m->hp;
    qfmt_pool *pool = qfmt__model_pool(m, o ? o->threads : 1);
    bool exact = !o || o->exact;
    bufs b;
    if (!pool || alloc_bufs(&b, m, n)) return qfmt__merr(err, QFMT_E_NOMEM, NULL, NULL, "out of memory for %zu tokens", n);
    size_t d = h->d;
    float eps = (float)h->eps;
    embed_rows(&m->tok, ids, n, b.x);
    for (size_t t = 0; t < n; t++) {
        qfmt__qmat_row(&m->pos, t, b.a);
        add(b.x + t * d, b.a, d);
        qfmt__qmat_row(&m->type, 0, b.a); /* token type 0 */
        add(b.x + t * d, b.a, d);
        qfmt__layer_norm(b.x + t * d, d, m->emb_norm.w, m->emb_norm.b, eps);
    }
    if (hidden) memcpy(hidden[0], b.x, n * d * sizeof(float));
    for (uint64_t l = 0; l < h->layers; l++) {
        const layer *L = &m->layers[l];
        mm(obs, pool, &L->q, b.x, n, b.q, exact);
        mm(obs, pool, &L->k, b.x, n, b.k, exact);
        mm(obs, pool, &L->v, b.x, n, b.v, exact);
        attn_job aj = {b.q, b.k, b.v, b.att, n, 0, h->heads, 1, h->head_dim, d, n, false, 0, n, m->attn_scale, 0};
        qfmt_pool_for(pool, n * h->heads, attn_range, &aj);
        mm(obs, pool, &L->o, b.att, n, b.a, exact);
        add(b.x, b.a, n * d);
        for (size_t t = 0; t < n; t++) qfmt__layer_norm(b.x + t * d, d, L->ln1.w, L->ln1.b, eps);
        mm(obs, pool, &L->up, b.x, n, b.f, exact);
        activate(m->act, b.f, n * h->ffn);
        mm(obs, pool, &L->down, b.f, n, b.a, exact);
        add(b.x, b.a, n * d);
        for (size_t t = 0; t < n; t++) qfmt__layer_norm(b.x + t * d, d, L->ln2.w, L->ln2.b, eps);
        if (hidden) memcpy(hidden[l + 1], b.x, n * d * sizeof(float));
    }
    if (logits) { /* MLM head: dense, GELU, LayerNorm, decoder (tied), bias */
        mm(obs, pool, &m->mlm_dense, b.x, n, b.a, exact);
        activate(m->act, b.a, n * d); /* transform_act_fn: hidden_act too */
        for (size_t t = 0; t < n; t++) qfmt__layer_norm(b.a + t * d, d, m->mlm_norm.w, m->mlm_norm.b, eps);
        qfmt__qmat_mul(pool, &m->head, m->mlm_bias, b.a, n, logits, exact);
    }
    free_bufs(&b);
    return 0;
}

static int model_forward(qfmt_model *m, const int32_t *ids, size_t T, float *logits, float **hidden,
                         const qfmt_run_opts *o, const qfmt__observer *obs, qfmt_error *err)
{
    if (T == 0) return qfmt__merr(err, QFMT_E_ARG, NULL, NULL, "no tokens to run");
    if (T > m->hp.ctx)
        return qfmt__merr(err, QFMT_E_RANGE, NULL, NULL, "%zu tokens exceed the model's context of %llu", T, (unsigned long long)m->hp.ctx);
    if (!m->hp.causal) {
        if (check_ids(m, ids, T, err)) return -1;
        return bert_forward(m, ids, T, logits, hidden, o, obs, err);
    }
    qfmt_session s;
    if (session_init(&s, m, T)) return qfmt__merr(err, QFMT_E_NOMEM, NULL, NULL, "out of memory for %zu tokens", T);
    s.obs = obs;
    int rc = causal_forward(&s, ids, T, logits, true, hidden, o, err);
    session_release(&s);
    return rc;
}

/* ---- The public entry points: qfmt_status and a filled qfmt_error ---------------------------- */

static bool opts_ok(const qfmt_run_opts *o)
{
    for (size_t k = 0; o && k < sizeof o->reserved / sizeof o->reserved[0]; k++)
        if (o->reserved[k]) return false;
    return true;
}

static qfmt_status finish(int rc, qfmt_error *err)
{
    if (rc == 0) {
        memset(err, 0, sizeof *err);
        err->offset = QFMT_NO_OFFSET;
        return QFMT_OK;
    }
    return err->code != QFMT_OK ? err->code : QFMT_E_ARG;
}

qfmt_status qfmt_session_new(qfmt_session **out, qfmt_model *m, qfmt_error *err)
{
    qfmt_error local;
    if (!err) err = &local;
    if (!out || !m) return finish(qfmt__merr(err, QFMT_E_ARG, NULL, NULL, "qfmt_session_new: NULL argument"), err);
    return finish(session_new(out, m, err), err);
}

qfmt_status qfmt_session_eval(qfmt_session *s, const int32_t *ids, size_t n, float *last_logits,
                              const qfmt_run_opts *o, qfmt_error *err)
{
    qfmt_error local;
    if (!err) err = &local;
    if (!s || (!ids && n) || !opts_ok(o))
        return finish(qfmt__merr(err, QFMT_E_ARG, NULL, NULL, "qfmt_session_eval: NULL argument or non-zero reserved field"), err);
    return finish(session_eval(s, ids, n, last_logits, o, err), err);
}

qfmt_status qfmt_model_forward(qfmt_model *m, const int32_t *ids, size_t T, float *logits, float **hidden,
                               const qfmt_run_opts *o, qfmt_error *err)
{
    qfmt_error local;
    if (!err) err = &local;
    if (!m || (!ids && T) || !opts_ok(o))
        return finish(qfmt__merr(err, QFMT_E_ARG, NULL, NULL, "qfmt_model_forward: NULL argument or non-zero reserved field"), err);
    return finish(model_forward(m, ids, T, logits, hidden, o, NULL, err), err);
}

void qfmt__session_observe(qfmt_session *s, const qfmt__observer *obs) { s->obs = obs; }

int qfmt__model_forward_observed(qfmt_model *m, const int32_t *ids, size_t T, const qfmt__observer *obs,
                                 const qfmt_run_opts *o, qfmt_error *err)
{
    return model_forward(m, ids, T, NULL, NULL, o, obs, err);
}
