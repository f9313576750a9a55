/* Mistral (transformers' MistralConfig / MistralForCausalLM): the LLaMA layout without biases,
 * with sliding-window attention: each position attends to the last `sliding_window` positions,
 * itself included (none when null). head_dim may differ from hidden_size / heads. */
#include "llama_layout.h"

static const qfmt__config_key config[] = {
    QFMT__LLAMA_CONFIG_KEYS,
    {"model.sliding_window", {"sliding_window"}, 0},
    {NULL, {NULL}, 0},
};

static const qfmt__tensor_spec layer[] = {
    QFMT__LLAMA_ATTN_ROWS(0, 0),
    QFMT__LLAMA_MLP_ROWS(0),
    QFMT__T_END,
};

static const qfmt__tensor_spec model[] = {
    QFMT__LLAMA_MODEL_ROWS,
    QFMT__T_END,
};

const qfmt_family qfmt__family_mistral = {
    .name = "mistral",
    .hf_class = "MistralForCausalLM",
    .arch = QFMT_ARCH_LLAMA,
    .config = config,
    .layer = layer,
    .model = model,
    .causal = true,
    .tie_default = false,
    .gqa = true,
    .rope_theta_default = 10000.0,
    .graph = QFMT__LLAMA_GRAPH,
};
