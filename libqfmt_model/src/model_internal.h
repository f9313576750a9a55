/* The model's layout, shared by model.c (loading) and forward.c (running). */
#ifndef QFMT_RUNTIME_MODEL_INTERNAL_H
#define QFMT_RUNTIME_MODEL_INTERNAL_H

#include "qfmt_model.h"
#include "ops.h"

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
    void **owned; /* decoded copies, freed with the model */
    size_t nowned;
    qfmt_pool *pool;
};

int qfmt__msg(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The pool for `threads` threads (made or remade on demand). */
qfmt_pool *qfmt__model_pool(qfmt_model *m, unsigned threads);

#endif
