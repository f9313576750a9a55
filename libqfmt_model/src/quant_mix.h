/*
 * quant_mix.h - per-tensor type choices beyond one target type (spec: "Type mixes, recipes and
 * size targets"): llama.cpp's type mixes (llama-quant.cpp's llama_tensor_get_type_impl,
 * tensor_type_fallback, tensor_allows_quantization and llama_ftype_get_default_type, for the
 * mixes whose types qfmt has), recipe files (GLOB TYPE lines), and the choice of types under a
 * bits-per-weight budget from measured errors.
 */
#ifndef QFMT_QUANT_MIX_H
#define QFMT_QUANT_MIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qfmt.h"
#include "qfmt_model.h"

/* llama.cpp's tensor categories (tensor_category), from the family tables' slots. */
typedef enum {
    QFMT__CAT_NONE,       /* never quantized by a mix: 1-D, norms, biases, position and token-type embeddings */
    QFMT__CAT_TOKEN_EMBD, /* M_TOK */
    QFMT__CAT_ATTN_Q,     /* L_Q */
    QFMT__CAT_ATTN_K,     /* L_K */
    QFMT__CAT_ATTN_V,     /* L_V */
    QFMT__CAT_ATTN_QKV,   /* L_QKV (attn_v-like, as ATTN_V) */
    QFMT__CAT_ATTN_OUTPUT, /* L_O */
    QFMT__CAT_FFN_UP,     /* L_UP, L_GATE_UP (llama.cpp keeps Phi-3's gate|up fused as ffn_up) */
    QFMT__CAT_FFN_GATE,   /* L_GATE */
    QFMT__CAT_FFN_DOWN,   /* L_DOWN */
    QFMT__CAT_OUTPUT,     /* M_HEAD */
    QFMT__CAT_OTHER,      /* any other 2-D weight (BERT's MLM dense, names no family knows) */
} qfmt__tensor_cat;

/* The mixes, in the order qfmt_convert_mix lists them. */
typedef enum {
    QFMT__MIX_Q2_K, QFMT__MIX_Q2_K_S, QFMT__MIX_Q3_K_S, QFMT__MIX_Q3_K_M, QFMT__MIX_Q3_K_L,
    QFMT__MIX_Q4_K_S, QFMT__MIX_Q4_K_M, QFMT__MIX_Q5_K_S, QFMT__MIX_Q5_K_M, QFMT__MIX_Q6_K,
    QFMT__MIX_Q4_0, QFMT__MIX_Q4_1, QFMT__MIX_Q5_0, QFMT__MIX_Q5_1, QFMT__MIX_Q8_0,
    QFMT__MIX_IQ4_NL, QFMT__MIX_IQ4_XS,
    QFMT__MIX_COUNT
} qfmt__mix;

/* The mix called `name` (exactly, lower case), or -1. */
int qfmt__mix_find(const char *name);
/* Its default type (llama_ftype_get_default_type). */
uint32_t qfmt__mix_type_default(int mix);

/* What llama.cpp's rules need to know of the model. */
typedef struct {
    int mix;                 /* qfmt__mix */
    uint32_t n_layer;        /* hparams.n_layer: ffn_down's layer rules */
    uint32_t n_attention_wv; /* attn_v-like tensors (ATTN_V, ATTN_QKV) in the checkpoint */
    uint32_t n_gqa;          /* heads / kv_heads (integer division, as hparams.n_gqa()); 0 unknown */
    bool tied;               /* has_tied_embeddings: the checkpoint holds no output head tensor */
    bool has_imatrix;        /* an importance source was given */
} qfmt__mix_model;

/* The category of tensor `name` (of family f, or of the first family that knows it when f is
 * NULL) with ndim stored dimensions, and its layer index in *layer (-1 for model-level
 * tensors). tensor_allows_quantization: a 1-D tensor, a bias, a norm, a position or token-type
 * embedding, or a name no family knows that does not end in ".weight", contains "norm" or
 * names an embedding, is QFMT__CAT_NONE. */
qfmt__tensor_cat qfmt__mix_category(const qfmt_family *f, const char *name, uint32_t ndim, long *layer);

/* llama_tensor_get_type_impl then tensor_type_fallback: the type mix mm gives a tensor of
 * category cat (not NONE) in `layer` whose rows hold row_len values. UINT32_MAX when no type
 * fits the rows (llama.cpp: F16; qfmt keeps the source type); *note says why whenever the
 * result is a fallback or UINT32_MAX, else NULL. */
uint32_t qfmt__mix_type(const qfmt__mix_model *mm, qfmt__tensor_cat cat, long layer, uint64_t row_len,
                        const char **note);

/* tensor_type_fallback: `type` when row_len is a multiple of its block, else llama.cpp's
 * fallback type for it when that fits (Q2_K, Q3_K -> Q4_0; IQ4_XS -> IQ4_NL; Q4_K -> Q5_0;
 * Q5_K -> Q5_1; Q6_K -> Q8_0), else UINT32_MAX. *note as for qfmt__mix_type. A float type
 * fits every row. */
uint32_t qfmt__type_fallback(uint32_t type, uint64_t row_len, const char **note);

/* ---- Size targets -------------------------------------------------------------------------- */
#define QFMT__BPW_MAX_OPTIONS 16

typedef struct {
    uint32_t type;
    uint64_t bytes; /* stored size (qfmt_type_size) */
    double err;     /* measured error */
} qfmt__bpw_option;

typedef struct {
    qfmt__bpw_option opt[QFMT__BPW_MAX_OPTIONS];
    size_t nopt;
    uint64_t elements;
    size_t choice; /* out: index into opt */
} qfmt__bpw_tensor;

/* Chooses one option per tensor so that the sum of bytes * 8 is at most budget_bits and the
 * sum of errors is least: the best of (1) the Lagrangian choice along each tensor's lower convex
 * hull of (bytes, err) - every tensor starts at its smallest option, then the step removing the
 * most error per added byte that still fits is taken, until none does -, (2) the exact
 * multiple-choice knapsack by dynamic programming over the budget in U units (single bytes when
 * the budget holds at most U = min(64 Mi / n, 1 Mi) of them, else budget / U; each option's
 * bytes rounded up to units, so the solution fits; at most 80 MiB of work space), (3) every tensor at its
 * k-th cheapest option, for each k; then (4) a local search (one tensor to any option, or one a
 * step up and another a step down) while the error falls. Deterministic (ties: lower index).
 * False (choices at the smallest options) when even those exceed the budget. */
bool qfmt__bpw_choose(qfmt__bpw_tensor *t, size_t n, double budget_bits);

/* The measured error of `type` on rows x row_len values of src (src_type: F32, F16 or BF16;
 * ref: the same values as f32): quantized with qo (its importance is the weights), decoded,
 * then sum over the elements of w[col] * (ref - decoded)^2 in double, w = qo->importance or 1.
 * The per-row sums are added in row order, so the result does not depend on the threads.
 * qbuf and dbuf (capacities qcap, dcap bytes) are scratch space, grown as needed; pool NULL: on
 * this thread. *bytes: the stored size. */
typedef struct qfmt_pool qfmt_pool;
qfmt_status qfmt__bpw_measure(uint32_t type, uint32_t src_type, const void *src, const float *ref, uint64_t rows,
                              uint64_t row_len, const qfmt_quant_opts *qo, qfmt_pool *pool, void **qbuf,
                              size_t *qcap, void **dbuf, size_t *dcap, uint64_t *bytes, double *err,
                              qfmt_error *e);

/* The default candidates of a size target: q2_k, q3_k, q4_k, q5_k, q6_k, q8_0. */
extern const uint32_t qfmt__bpw_default_types[6];

#endif
