/*
 * family.h - what a model family is to qfmt: one const table per family (families/<name>.c)
 * holding its config.json keys (the names transformers' config class uses for each qfmt
 * metadata key, as its attribute_map does), its defaults, its tensor names and shapes, and its
 * layout quirks. Convert (config -> metadata, default quantization, GPT-2 Conv1D), the loader,
 * the fuzz targets and the benchmarks all read these tables; adding a family is one file here
 * and one row in family.c's registry.
 */
#ifndef QFMT_MODEL_FAMILY_H
#define QFMT_MODEL_FAMILY_H

#include <stdbool.h>
#include <stdint.h>

#include "qfmt_model.h"

/* Where a tensor goes in the loaded model (model_internal.h). */
typedef enum {
    QFMT__SLOT_NONE, /* known to the family (convert treats it), not used by the forward pass */
    /* per layer */
    QFMT__L_LN1, QFMT__L_LN2, QFMT__L_Q, QFMT__L_K, QFMT__L_V, QFMT__L_O, QFMT__L_GATE, QFMT__L_UP,
    QFMT__L_DOWN, QFMT__L_QNORM, QFMT__L_KNORM /* per-head RMSNorm of queries and keys (Qwen 3, Gemma 3) */,
    QFMT__L_QKV,     /* fused q|k|v, split by rows: heads x head_dim, then kv_heads x head_dim twice */
    QFMT__L_GATE_UP, /* fused gate|up, split by rows: ffn_size each */
    QFMT__L_POST_ATTN, QFMT__L_POST_MLP, /* norms of the attention and MLP outputs (Gemma 2/3) */
    /* per model */
    QFMT__M_TOK, QFMT__M_POS, QFMT__M_TYPE, QFMT__M_HEAD, QFMT__M_FINAL_NORM, QFMT__M_EMB_NORM,
    QFMT__M_MLM_DENSE, QFMT__M_MLM_NORM, QFMT__M_MLM_BIAS,
} qfmt__slot;

typedef enum {
    QFMT__FT_LINEAR, /* <name>.weight [rows, cols] (+ <name>.bias [rows]): quantized by default */
    QFMT__FT_NORM,   /* <name>.weight [rows] (+ <name>.bias [rows]) */
    QFMT__FT_EMBED,  /* <name>.weight [rows, cols]: embeddings and output heads, never quantized by default */
    QFMT__FT_VECTOR, /* <name> itself, [rows] */
} qfmt__ft_kind;

/* A dimension in terms of the hyperparameters. */
typedef enum {
    QFMT__DIM_NONE, QFMT__DIM_D, QFMT__DIM_Q /* heads x head_dim */, QFMT__DIM_KV /* kv_heads x head_dim */,
    QFMT__DIM_FFN, QFMT__DIM_VOCAB, QFMT__DIM_CTX, QFMT__DIM_TYPES, QFMT__DIM_QKV /* fused q|k|v: Q + 2 KV */,
    QFMT__DIM_HD /* head_dim */, QFMT__DIM_2FFN /* fused gate|up */,
} qfmt__dim;

enum {
    QFMT__FT_BIAS = 1,     /* has a bias, required */
    QFMT__FT_BIAS_OPT = 2, /* may have a bias */
    QFMT__FT_OPTIONAL = 4, /* may be absent (an untied head; a module the forward pass lacks) */
    QFMT__FT_CONV1D = 8,   /* stored [in, out] by Hugging Face (GPT-2 Conv1D): convert transposes */
};

typedef struct {
    const char *name; /* per-layer names hold one "%u", the layer index */
    uint8_t kind, slot, rows, cols, flags;
} qfmt__tensor_spec;

/* One table row: L("model.layers.%u.mlp.up_proj", LINEAR, L_UP, FFN, D, QFMT__FT_BIAS_OPT). */
#define QFMT__T(name, kind, slot, rows, cols, flags) \
    {name, QFMT__FT_##kind, QFMT__##slot, QFMT__DIM_##rows, QFMT__DIM_##cols, flags}
#define QFMT__T_END {NULL, 0, 0, 0, 0, 0}

/* A qfmt metadata key and the config.json names it is read from, first present wins (a null
 * value counts as absent). `fallback` (non-zero) is written when none of the names is in
 * config.json at all, the default of transformers' config class; a key present as null means
 * "none" and writes nothing. Numbers are written as f64, strings as strings. */
typedef struct {
    const char *meta;
    const char *keys[4];
    double fallback;
} qfmt__config_key;

/* How a family's decoder computes: forward.c runs every causal family from this description
 * (and the tensors present: biases, q/k norms, post-norms, fused projections). */
typedef enum {
    QFMT__NORM_RMS,     /* x / rms(x) * w */
    QFMT__NORM_RMS_1P,  /* x / rms(x) * (1 + w) (Gemma): 1 is added to every norm weight at load */
    QFMT__NORM_LAYER,   /* LayerNorm with bias */
} qfmt__norm_kind;

typedef enum {
    QFMT__EMB_PLAIN,
    QFMT__EMB_SQRT_D,       /* x sqrt(hidden_size), in fp32 (Gemma 2 computes it in the activations' dtype) */
    QFMT__EMB_SQRT_D_DTYPE, /* x sqrt(hidden_size) rounded to the checkpoint's dtype (Gemma 3's buffer) */
} qfmt__emb_scale;

typedef struct {
    uint8_t norm;            /* qfmt__norm_kind */
    uint8_t emb_scale;       /* qfmt__emb_scale */
    bool learned_pos;        /* position embeddings added to the token embeddings (GPT-2) */
    bool gated_mlp;          /* down(act(gate) * up); else down(act(up)) */
    const char *activation;  /* when model.activation is absent */
} qfmt__graph;

struct qfmt_family {
    const char *name;             /* config.json model_type = general.architecture */
    const char *hf_class;         /* architectures[0] of a checkpoint (for synthetic configs) */
    qfmt_arch arch;
    const qfmt__config_key *config; /* ends with meta == NULL */
    const qfmt__tensor_spec *layer; /* per layer, ends with name == NULL */
    const qfmt__tensor_spec *model; /* once, ends with name == NULL */
    const char *strip_prefix;     /* tensors may be saved without this base-model prefix, or NULL */
    bool tie_default;             /* tie_word_embeddings when config.json is silent */
    bool causal;                  /* a decoder (KV cache, generation); else bidirectional */
    bool gqa;                     /* may have kv_heads != heads and a head_dim of its own */
    uint64_t ffn_mult_default;    /* ffn_size = this x hidden when config.json is silent (0: none) */
    double rope_theta_default;    /* 0: no RoPE */
    /* config.json keys that switch on a mode the runtime lacks when true (NULL-terminated):
     * convert refuses such a config naming the key, rather than describe another model. */
    const char *const *refuse_if_true;
    qfmt__graph graph;
    /* layer_types when config.json has none: every sliding_pattern-th layer (1-based) is global,
     * the others sliding (Gemma 2: 2, Gemma 3: config's sliding_window_pattern, else this);
     * 0: all layers alike. */
    uint32_t sliding_pattern;
    /* RoPE types "su" and "yarn" mean longrope (Phi3Config's backward compatibility) */
    bool yarn_is_longrope;
};

extern const qfmt_family qfmt__family_gpt2, qfmt__family_llama, qfmt__family_bert, qfmt__family_mistral,
    qfmt__family_qwen2, qfmt__family_qwen3, qfmt__family_gemma2, qfmt__family_gemma3, qfmt__family_phi3;

/* The row or column count a dimension stands for. */
uint64_t qfmt__dim_value(const qfmt_model_hparams *h, uint8_t dim);
/* The spec `name` belongs to (as <spec>.weight/.bias, or a VECTOR's own name), with the layer
 * index in *layer; NULL when the family has no such tensor. *is_weight: it is the .weight. */
const qfmt__tensor_spec *qfmt__family_match(const qfmt_family *f, const char *name, bool *is_weight);

#endif
