/* Qwen 2 / 2.5 (transformers' Qwen2Config / Qwen2ForCausalLM): the LLaMA layout with biases on
 * q, k and v (always; o_proj has none), no MLP biases, RoPE base 1e6 by default. Sliding-window
 * attention (use_sliding_window, from layer max_window_layers on) is refused at convert. */
#include "llama_layout.h"

static const qfmt__config_key config[] = {
    QFMT__LLAMA_CONFIG_KEYS,
    {NULL, {NULL}, 0},
};

static const qfmt__tensor_spec layer[] = {
    QFMT__LLAMA_ATTN_ROWS(QFMT__FT_BIAS, 0),
    QFMT__LLAMA_MLP_ROWS(0),
    QFMT__T_END,
};

static const qfmt__tensor_spec model[] = {
    QFMT__LLAMA_MODEL_ROWS,
    QFMT__T_END,
};

static const char *const refuse[] = {"use_sliding_window", NULL};

const qfmt_family qfmt__family_qwen2 = {
    .name = "qwen2",
    .hf_class = "Qwen2ForCausalLM",
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
