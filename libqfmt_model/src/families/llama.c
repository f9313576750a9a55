/* LLaMA (transformers' LlamaConfig / LlamaForCausalLM), LLaMA 2 and 3.x: RoPE (scaled as
 * rope_parameters / rope_scaling say: family.c), pre-RMSNorm, grouped KV heads, SwiGLU MLP,
 * optional attention/MLP biases, untied head unless tie_word_embeddings. */
#include "llama_layout.h"

static const qfmt__config_key config[] = {
    QFMT__LLAMA_CONFIG_KEYS,
    {"model.attention_bias", {"attention_bias"}, 0},
    {"model.mlp_bias", {"mlp_bias"}, 0},
    {NULL, {NULL}, 0},
};

static const qfmt__tensor_spec layer[] = {
    QFMT__LLAMA_ATTN_ROWS(QFMT__FT_BIAS_OPT, QFMT__FT_BIAS_OPT),
    QFMT__LLAMA_MLP_ROWS(QFMT__FT_BIAS_OPT),
    QFMT__T_END,
};

static const qfmt__tensor_spec model[] = {
    QFMT__LLAMA_MODEL_ROWS,
    QFMT__T_END,
};

const qfmt_family qfmt__family_llama = {
    .name = "llama",
    .hf_class = "LlamaForCausalLM",
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
