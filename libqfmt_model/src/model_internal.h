/* The model's layout, shared by model.c (loading) and forward.c (running). */
#ifndef QFMT_RUNTIME_MODEL_INTERNAL_H
#define QFMT_RUNTIME_MODEL_INTERNAL_H

#include "qfmt_model.h"
#include "ops.h"
#include "rope.h"
#include "transposed.h"

typedef struct {
    qmat w;
    float *b; /* NULL: no bias */
} linear;

typedef struct {
    float *w, *b; /* b NULL for RMSNorm */
} norm;

/* Per layer. Attention: q, k, v, or qkv fused (GPT-2's c_attn, Phi-3's qkv_proj); MLP: up
 * (c_fc / up_proj / intermediate), down (c_proj / down_proj / output.dense), gate (gated MLPs),
 * or gate_up fused (Phi-3). ln1/ln2: pre-attention and pre-MLP norms (decoders) or
 * post-attention and post-MLP LayerNorms (BERT). */
typedef struct {
    norm ln1, ln2;
    norm qn, kn;               /* per-head RMSNorm of queries and keys over head_dim, w NULL: none */
    norm post_attn, post_mlp;  /* norms of the attention and MLP outputs (Gemma), w NULL: none */
    linear q, k, v, qkv, o, gate, up, gate_up, down;
    const qfmt__rope *rope;    /* this layer's RoPE (its layer type's), NULL: none */
    uint64_t window;           /* sliding-window attention: keys of the last `window` positions; 0: all */
} layer;

typedef enum { QFMT__ACT_SILU, QFMT__ACT_GELU_TANH, QFMT__ACT_GELU_ERF, QFMT__ACT_RELU } qfmt__act;

struct qfmt_model {
    const qfmt_reader *r;
    qfmt_model_hparams hp;
    qmat tok, pos, type, head;
    norm final_norm, emb_norm, mlm_norm;
    linear mlm_dense;
    float *mlm_bias;
    layer *layers;
    qfmt__rope rope;       /* RoPE families: the inverse frequencies (of full-attention layers) */
    qfmt__rope rope_local; /* sliding-window layers' own RoPE (model.sliding_attention.*), inv NULL: none */
    qfmt__act act;         /* the MLP's activation (model.activation) */
    float emb_scale;       /* token embeddings are multiplied by it (Gemma), else 1 */
    float attn_scale;      /* attention scores: q.k x this (1 / sqrt(head_dim), or query_pre_attn_scalar's) */
    float attn_softcap, final_softcap; /* cap x tanh(x / cap) of scores, of logits; 0: none */
    qfmt__transposed transposed; /* convert.transposed */
    void **owned; /* decoded copies, freed with the model */
    size_t nowned;
    qfmt_pool *pool;
    /* The stored tensor each loaded matrix came from (calibration statistics per tensor). */
    struct {
        const qmat *w;
        const char *name; /* the reader's, valid while it is open */
        uint64_t cols;
    } *weights;
    size_t nweights;
};

/* The stored name of a matrix the model loaded (its address in the model), or NULL. */
const char *qfmt__model_weight_name(const qfmt_model *m, const qmat *w);

/* Statistics of the inputs of every matrix product with a stored weight (calibration): the
 * forward pass calls fn with the activations (n rows of w->cols floats) before multiplying. */
typedef struct {
    void (*fn)(void *ctx, const qmat *w, const float *x, size_t n);
    void *ctx;
} qfmt__observer;
/* Sets (or clears, NULL) the observer of a session's forward passes. */
void qfmt__session_observe(qfmt_session *s, const qfmt__observer *obs);
/* A whole-sequence forward pass of T tokens from an empty context (no logits) with obs seeing
 * every product's input. 0 or -1 with err filled. */
int qfmt__model_forward_observed(qfmt_model *m, const int32_t *ids, size_t T, const qfmt__observer *obs,
                                 const qfmt_run_opts *o, qfmt_error *err);

/* Fills *err (if not NULL) with code, file, tensor (either may be NULL) and a printf-style
 * message; returns -1, the internal functions' failure value (0: success). */
int qfmt__merr(qfmt_error *err, qfmt_status code, const char *path, const char *tensor, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* qfmt__merr, then the status: for functions that return a qfmt_status. */
#define QFMT__FAIL(err, code, path, tensor, ...) (qfmt__merr((err), (code), (path), (tensor), __VA_ARGS__), (code))
/* A tensor's shape as "[a, b, c]" in buf. */
const char *qfmt__shape(const qfmt_tensor_info *ti, char *buf, size_t cap);
/* The pool for `threads` threads (made or remade on demand). */
qfmt_pool *qfmt__model_pool(qfmt_model *m, unsigned threads);

#endif
