/* The forward passes. Causal models (GPT-2, LLaMA) run through a KV cache, so a whole
 * sequence and token-by-token generation share one code path; BERT runs bidirectionally. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

struct qfmt_session {
    qfmt_model *m;
    size_t pos, cap;
    float *k, *v; /* [layers][cap][kv_heads * head_dim] */
};

/* ---- Attention ------------------------------------------------------------------------ */

typedef struct {
    const float *q;      /* n x (heads*hd) */
    const float *k, *v;  /* keys/values of positions 0..: [pos][kv_dim] */
    float *out;          /* n x (heads*hd) */
    size_t n, pos0, heads, kv_group, hd, kv_dim;
    bool causal;
    size_t window;       /* causal: keys of the last `window` positions only; 0: all */
    size_t nkeys;        /* non-causal: keys visible to every query */
} attn_job;

static void attn_range(void *ctx, size_t begin, size_t end)
{
    attn_job *j = ctx;
    size_t maxkeys = j->causal ? j->pos0 + j->n : j->nkeys;
    float *sc = malloc((maxkeys ? maxkeys : 1) * sizeof *sc);
    if (!sc) return;
    const float scale = 1.0f / sqrtf((float)j->hd);
    for (size_t task = begin; task < end; task++) {
        size_t t = task / j->heads, h = task % j->heads, kvh = h / j->kv_group;
        const float *q = j->q + t * j->heads * j->hd + h * j->hd;
        size_t end = j->causal ? j->pos0 + t + 1 : j->nkeys; /* keys [first, end) */
        size_t first = j->causal && j->window && end > j->window ? end - j->window : 0, nk = end - first;
        const float *k = j->k + first * j->kv_dim, *v = j->v + first * j->kv_dim;
        for (size_t s = 0; s < nk; s++) sc[s] = qfmt_dot(q, k + s * j->kv_dim + kvh * j->hd, j->hd) * scale;
        qfmt__softmax(sc, nk);
        float *o = j->out + t * j->heads * j->hd + h * j->hd;
        memset(o, 0, j->hd * sizeof *o);
        for (size_t s = 0; s < nk; s++) {
            const float *vv = v + s * j->kv_dim + kvh * j->hd;
            for (size_t i = 0; i < j->hd; i++) o[i] += sc[s] * vv[i];
        }
    }
    free(sc);
}

/* ---- Causal models ----------------------------------------------------------------------- */

typedef struct {
    float *x, *a, *q, *k, *v, *att, *f, *g;
} bufs;

static void free_bufs(bufs *b)
{
    free(b->x), free(b->a), free(b->q), free(b->k), free(b->v), free(b->att), free(b->f), free(b->g);
}

static int alloc_bufs(bufs *b, const qfmt_model_hparams *h, size_t n)
{
    size_t qd = h->heads * h->head_dim, kvd = h->kv_heads * h->head_dim;
    size_t qkv = h->arch == QFMT_ARCH_GPT2 ? 3 * h->d : qd;
    memset(b, 0, sizeof *b);
    b->x = malloc(n * h->d * sizeof(float));
    b->a = malloc(n * h->d * sizeof(float));
    b->q = malloc(n * qkv * sizeof(float));
    b->k = malloc(n * kvd * sizeof(float));
    b->v = malloc(n * kvd * sizeof(float));
    b->att = malloc(n * (qd > h->d ? qd : h->d) * sizeof(float));
    b->f = malloc(n * h->ffn * sizeof(float));
    b->g = malloc(n * h->ffn * sizeof(float));
    if (!b->x || !b->a || !b->q || !b->k || !b->v || !b->att || !b->f || !b->g) {
        free_bufs(b);
        return -1;
    }
    return 0;
}

static void add(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] += y[i];
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
    if (!pool || alloc_bufs(&b, h, n)) return qfmt__merr(err, QFMT_E_NOMEM, NULL, NULL, "out of memory for %zu tokens", n);
    size_t d = h->d, hd = h->head_dim, kvd = h->kv_heads * hd;
    float eps = (float)h->eps;
    embed_rows(&m->tok, ids, n, b.x);
    if (h->arch == QFMT_ARCH_GPT2)
        for (size_t t = 0; t < n; t++) {
            qfmt__qmat_row(&m->pos, s->pos + t, b.a);
            add(b.x + t * d, b.a, d);
        }
    if (hidden) memcpy(hidden[0], b.x, n * d * sizeof(float));
    for (uint64_t l = 0; l < h->layers; l++) {
        const layer *L = &m->layers[l];
        float *kc = s->k + l * s->cap * kvd, *vc = s->v + l * s->cap * kvd;
        memcpy(b.a, b.x, n * d * sizeof(float));
        for (size_t t = 0; t < n; t++) {
            if (h->arch == QFMT_ARCH_GPT2) qfmt__layer_norm(b.a + t * d, d, L->ln1.w, L->ln1.b, eps);
            else qfmt__rms_norm(b.a + t * d, d, L->ln1.w, eps);
        }
        const float *q = b.q;
        if (h->arch == QFMT_ARCH_GPT2) { /* fused q|k|v */
            qfmt__qmat_mul(pool, &L->q.w, L->q.b, b.a, n, b.q, exact);
            for (size_t t = 0; t < n; t++) { /* queries to b.k (kvd == d here), keys and values to the cache */
                memcpy(b.k + t * d, b.q + t * 3 * d, d * sizeof(float));
                memcpy(kc + (s->pos + t) * kvd, b.q + t * 3 * d + d, d * sizeof(float));
                memcpy(vc + (s->pos + t) * kvd, b.q + t * 3 * d + 2 * d, d * sizeof(float));
            }
            q = b.k;
        } else {
            qfmt__qmat_mul(pool, &L->q.w, L->q.b, b.a, n, b.q, exact);
            qfmt__qmat_mul(pool, &L->k.w, L->k.b, b.a, n, b.k, exact);
            qfmt__qmat_mul(pool, &L->v.w, L->v.b, b.a, n, b.v, exact);
            if (L->qn.w) /* Qwen 3: RMSNorm of each head, before RoPE */
                for (size_t r = 0; r < n * h->heads; r++) qfmt__rms_norm(b.q + r * hd, hd, L->qn.w, eps);
            if (L->kn.w)
                for (size_t r = 0; r < n * h->kv_heads; r++) qfmt__rms_norm(b.k + r * hd, hd, L->kn.w, eps);
            qfmt__rope_apply(&m->rope, b.q, n, h->heads, s->pos);
            qfmt__rope_apply(&m->rope, b.k, n, h->kv_heads, s->pos);
            memcpy(kc + s->pos * kvd, b.k, n * kvd * sizeof(float));
            memcpy(vc + s->pos * kvd, b.v, n * kvd * sizeof(float));
        }
        attn_job aj = {q, kc, vc, b.att, n, s->pos, h->heads, h->heads / h->kv_heads, hd, kvd, true, (size_t)m->window, 0};
        qfmt_pool_for(pool, n * h->heads, attn_range, &aj);
        qfmt__qmat_mul(pool, &L->o.w, L->o.b, b.att, n, b.a, exact);
        add(b.x, b.a, n * d);
        memcpy(b.a, b.x, n * d * sizeof(float));
        for (size_t t = 0; t < n; t++) {
            if (h->arch == QFMT_ARCH_GPT2) qfmt__layer_norm(b.a + t * d, d, L->ln2.w, L->ln2.b, eps);
            else qfmt__rms_norm(b.a + t * d, d, L->ln2.w, eps);
        }
        qfmt__qmat_mul(pool, &L->up.w, L->up.b, b.a, n, b.f, exact);
        if (h->arch == QFMT_ARCH_GPT2) {
            for (size_t i = 0; i < n * h->ffn; i++) b.f[i] = qfmt__gelu_tanh(b.f[i]);
        } else {
            qfmt__qmat_mul(pool, &L->gate.w, L->gate.b, b.a, n, b.g, exact);
            for (size_t i = 0; i < n * h->ffn; i++) b.f[i] *= qfmt__silu(b.g[i]);
        }
        qfmt__qmat_mul(pool, &L->down.w, L->down.b, b.f, n, b.a, exact);
        add(b.x, b.a, n * d);
        if (hidden && l + 1 < h->layers) memcpy(hidden[l + 1], b.x, n * d * sizeof(float));
    }
    for (size_t t = 0; t < n; t++) {
        if (h->arch == QFMT_ARCH_GPT2) qfmt__layer_norm(b.x + t * d, d, m->final_norm.w, m->final_norm.b, eps);
        else qfmt__rms_norm(b.x + t * d, d, m->final_norm.w, eps);
    }
    if (hidden) memcpy(hidden[h->layers], b.x, n * d * sizeof(float));
    if (logits) {
        if (all_logits) qfmt__qmat_mul(pool, &m->head, NULL, b.x, n, logits, exact);
        else qfmt__qmat_mul(pool, &m->head, NULL, b.x + (n - 1) * d, 1, logits, exact);
    }
    s->pos += n;
    free_bufs(&b);
    return 0;
}

static int session_new(qfmt_session **out, qfmt_model *m, qfmt_error *err)
{
    *out = NULL;
    if (!m->hp.causal) return qfmt__merr(err, QFMT_E_UNSUPPORTED, NULL, NULL, "a %s model has no incremental decoding", "BERT");
    qfmt_session *s = calloc(1, sizeof *s);
    size_t kvd = m->hp.kv_heads * m->hp.head_dim, n = m->hp.layers * m->hp.ctx * kvd;
    if (s) {
        s->m = m;
        s->cap = m->hp.ctx;
        s->k = malloc(n * sizeof(float));
        s->v = malloc(n * sizeof(float));
    }
    if (!s || !s->k || !s->v) {
        qfmt_session_free(s);
        return qfmt__merr(err, QFMT_E_NOMEM, NULL, NULL, "out of memory for a KV cache of %llu positions", (unsigned long long)m->hp.ctx);
    }
    *out = s;
    return 0;
}

void qfmt_session_free(qfmt_session *s)
{
    if (!s) return;
    free(s->k);
    free(s->v);
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
                        const qfmt_run_opts *o, qfmt_error *err)
{
    const qfmt_model_hparams *h = &m->hp;
    qfmt_pool *pool = qfmt__model_pool(m, o ? o->threads : 1);
    bool exact = !o || o->exact;
    bufs b;
    if (!pool || alloc_bufs(&b, h, n)) return qfmt__merr(err, QFMT_E_NOMEM, NULL, NULL, "out of memory for %zu tokens", n);
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
        qfmt__qmat_mul(pool, &L->q.w, L->q.b, b.x, n, b.q, exact);
        qfmt__qmat_mul(pool, &L->k.w, L->k.b, b.x, n, b.k, exact);
        qfmt__qmat_mul(pool, &L->v.w, L->v.b, b.x, n, b.v, exact);
        attn_job aj = {b.q, b.k, b.v, b.att, n, 0, h->heads, 1, h->head_dim, d, false, 0, n};
        qfmt_pool_for(pool, n * h->heads, attn_range, &aj);
        qfmt__qmat_mul(pool, &L->o.w, L->o.b, b.att, n, b.a, exact);
        add(b.x, b.a, n * d);
        for (size_t t = 0; t < n; t++) qfmt__layer_norm(b.x + t * d, d, L->ln1.w, L->ln1.b, eps);
        qfmt__qmat_mul(pool, &L->up.w, L->up.b, b.x, n, b.f, exact);
        for (size_t i = 0; i < n * h->ffn; i++) b.f[i] = qfmt__gelu_erf(b.f[i]);
        qfmt__qmat_mul(pool, &L->down.w, L->down.b, b.f, n, b.a, exact);
        add(b.x, b.a, n * d);
        for (size_t t = 0; t < n; t++) qfmt__layer_norm(b.x + t * d, d, L->ln2.w, L->ln2.b, eps);
        if (hidden) memcpy(hidden[l + 1], b.x, n * d * sizeof(float));
    }
    if (logits) { /* MLM head: dense, GELU, LayerNorm, decoder (tied), bias */
        qfmt__qmat_mul(pool, &m->mlm_dense.w, m->mlm_dense.b, b.x, n, b.a, exact);
        for (size_t i = 0; i < n * d; i++) b.a[i] = qfmt__gelu_erf(b.a[i]);
        for (size_t t = 0; t < n; t++) qfmt__layer_norm(b.a + t * d, d, m->mlm_norm.w, m->mlm_norm.b, eps);
        qfmt__qmat_mul(pool, &m->head, m->mlm_bias, b.a, n, logits, exact);
    }
    free_bufs(&b);
    return 0;
}

static int model_forward(qfmt_model *m, const int32_t *ids, size_t T, float *logits, float **hidden,
                         const qfmt_run_opts *o, qfmt_error *err)
{
    if (T == 0) return qfmt__merr(err, QFMT_E_ARG, NULL, NULL, "no tokens to run");
    if (T > m->hp.ctx)
        return qfmt__merr(err, QFMT_E_RANGE, NULL, NULL, "%zu tokens exceed the model's context of %llu", T, (unsigned long long)m->hp.ctx);
    if (!m->hp.causal) {
        if (check_ids(m, ids, T, err)) return -1;
        return bert_forward(m, ids, T, logits, hidden, o, err);
    }
    qfmt_session s = {m, 0, T, NULL, NULL};
    size_t kvd = m->hp.kv_heads * m->hp.head_dim;
    s.k = malloc(m->hp.layers * T * kvd * sizeof(float));
    s.v = malloc(m->hp.layers * T * kvd * sizeof(float));
    int rc = s.k && s.v ? causal_forward(&s, ids, T, logits, true, hidden, o, err)
                        : qfmt__merr(err, QFMT_E_NOMEM, NULL, NULL, "out of memory for %zu tokens", T);
    free(s.k);
    free(s.v);
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
    return finish(model_forward(m, ids, T, logits, hidden, o, err), err);
}
