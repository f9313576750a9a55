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

/* Per layer. GPT-2 keeps its fused c_attn in q; MLP: up (c_fc / up_proj / intermediate),
 * down (c_proj / down_proj / output.dense), gate (LLaMA only). ln1/ln2: pre-attention and
 * pre-MLP norms (GPT-2, LLaMA) or post-attention and post-MLP LayerNorms (BERT). */
typedef struct {
    norm ln1, ln2;
    norm qn, kn; /* per-head RMSNorm of queries and keys over head_dim (Qwen 3), w NULL: none */
    linear q, k, v, o, gate, up, down;
} layer;

struct qfmt_model {
    const qfmt_reader *r;
    qfmt_model_hparams hp;
    qmat tok, pos, type, head;
    norm final_norm, emb_norm, mlm_norm;
    linear mlm_dense;
    float *mlm_bias;
    layer *layers;
    qfmt__rope rope;      /* RoPE families: the inverse frequencies */
    uint64_t window;      /* sliding-window attention: keys of the last `window` positions; 0: all */
    qfmt__transposed transposed; /* convert.transposed */
    void **owned; /* decoded copies, freed with the model */
    size_t nowned;
    qfmt_pool *pool;
};

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
