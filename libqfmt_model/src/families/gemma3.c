/* Gemma 3, text only (transformers' Gemma3TextConfig / Gemma3ForCausalLM, model_type
 * gemma3_text): the Gemma layout (gemma_layout.h) with per-head (1 + w) RMSNorm of queries and
 * keys (q_norm, k_norm) and no soft-capping by default; five sliding-window layers to one
 * global (sliding_window_pattern, 6) unless config.json lists layer_types; RoPE of its own for
 * the sliding layers (base rope_local_base_freq, 1e4, unscaled; transformers 5 nests both under
 * rope_parameters by layer type). The embedding scale is a buffer of the checkpoint's dtype. */
#include "gemma_layout.h"

static const qfmt__config_key config[] = {
    QFMT__GEMMA_CONFIG_KEYS(0, 0),
    {"model.sliding_attention.rope_theta", {"rope_local_base_freq"}, 10000.0},
    {"model.sliding_pattern", {"sliding_window_pattern", "_sliding_window_pattern"}, 6},
    {NULL, {NULL}, 0},
};

/* EmbeddingGemma: gemma3_text with bidirectional attention, which this decoder does not run */
static const char *const refuse[] = {"use_bidirectional_attention", NULL};

static const qfmt__tensor_spec layer[] = {
    QFMT__GEMMA_LAYER_ROWS,
    QFMT__T("model.layers.%u.self_attn.q_norm", NORM, L_QNORM, HD, NONE, 0),
    QFMT__T("model.layers.%u.self_attn.k_norm", NORM, L_KNORM, HD, NONE, 0),
    QFMT__T_END,
};

static const qfmt__tensor_spec model[] = {
    QFMT__GEMMA_MODEL_ROWS,
    QFMT__T_END,
};

const qfmt_family qfmt__family_gemma3 = {
    .name = "gemma3_text",
    .hf_class = "Gemma3ForCausalLM",
    .arch = QFMT_ARCH_LLAMA,
    .config = config,
    .layer = layer,
    .model = model,
    .causal = true,
    .tie_default = true,
    .gqa = true,
    .rope_theta_default = 1000000.0,
    .graph = {.norm = QFMT__NORM_RMS_1P, .emb_scale = QFMT__EMB_SQRT_D_DTYPE, .gated_mlp = true,
              .activation = "gelu_pytorch_tanh"},
    .sliding_pattern = 6,
    .refuse_if_true = refuse,
};
