/* Qwen 3 (transformers' Qwen3Config / Qwen3ForCausalLM): the LLaMA layout with a per-head
 * RMSNorm on queries and keys (q_norm, k_norm: [head_dim], after the projections and before
 * RoPE), head_dim of its own, optional attention biases (attention_bias), RoPE base 1e6 by
 * default. Its embedding has more rows than the tokenizer has ids (Qwen pads the vocabulary):
 * the model's vocabulary is the embedding's rows (vocab_size). Sliding-window attention
 * (use_sliding_window) is refused at convert. */
#include "llama_layout.h"

static const qfmt__config_key config[] = {
    QFMT__LLAMA_CONFIG_KEYS,
    {"model.attention_bias", {"attention_bias"}, 0},
    {NULL, {NULL}, 0},
};

static const qfmt__tensor_spec layer[] = {
    QFMT__LLAMA_ATTN_ROWS(QFMT__FT_BIAS_OPT, QFMT__FT_BIAS_OPT),
    QFMT__T("model.layers.%u.self_attn.q_norm", NORM, L_QNORM, HD, NONE, 0),
    QFMT__T("model.layers.%u.self_attn.k_norm", NORM, L_KNORM, HD, NONE, 0),
    QFMT__LLAMA_MLP_ROWS(0),
    QFMT__T_END,
};

static const qfmt__tensor_spec model[] = {
    QFMT__LLAMA_MODEL_ROWS,
    QFMT__T_END,
};

static const char *const refuse[] = {"use_sliding_window", NULL};

const qfmt_family qfmt__family_qwen3 = {
    .name = "qwen3",
    .hf_class = "Qwen3ForCausalLM",
    .arch = QFMT_ARCH_LLAMA,
    .config = config,
    .layer = layer,
    .model = model,
    .causal = true,
    .tie_default = false,
    .gqa = true,
    .rope_theta_default = 1000000.0,
    .refuse_if_true = refuse,
    .graph = QFMT__LLAMA_GRAPH,
};
