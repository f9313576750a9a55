/* Gemma 2 (transformers' Gemma2Config / Gemma2ForCausalLM): the Gemma layout (gemma_layout.h)
 * with soft-capping of attention scores (attn_logit_softcapping, 50 by default) and of the
 * final logits (final_logit_softcapping, 30), sliding-window attention on every other layer
 * (layer 0 first) and one RoPE for all layers. The embedding scale sqrt(hidden_size) is
 * computed in the activations' dtype (fp32 here). */
#include "gemma_layout.h"

static const qfmt__config_key config[] = {
    QFMT__GEMMA_CONFIG_KEYS(50.0, 30.0),
    {NULL, {NULL}, 0},
};

static const qfmt__tensor_spec layer[] = {
    QFMT__GEMMA_LAYER_ROWS,
    QFMT__T_END,
};

static const qfmt__tensor_spec model[] = {
    QFMT__GEMMA_MODEL_ROWS,
    QFMT__T_END,
};

const qfmt_family qfmt__family_gemma2 = {
    .name = "gemma2",
    .hf_class = "Gemma2ForCausalLM",
    .arch = QFMT_ARCH_LLAMA,
    .config = config,
    .layer = layer,
    .model = model,
    .causal = true,
    .tie_default = true,
    .gqa = true,
    .rope_theta_default = 10000.0,
    .graph = {.norm = QFMT__NORM_RMS_1P, .emb_scale = QFMT__EMB_SQRT_D, .gated_mlp = true,
              .activation = "gelu_pytorch_tanh"},
    .sliding_pattern = 2,
};
