/* Phi-3 (transformers' Phi3Config / Phi3ForCausalLM): the LLaMA computation with fused
 * projections, kept fused in the file as Hugging Face stores them and split by the runtime:
 * qkv_proj [q; k; v] (heads x head_dim rows, then kv_heads x head_dim twice) and gate_up_proj
 * [gate; up] (ffn_size rows each). Partial rotary embeddings (partial_rotary_factor), longrope
 * scaling (short and long factors, original_max_position_embeddings) and a sliding window
 * (sliding_window) come from config.json. Untied head by default. */
#include "llama_layout.h"

static const qfmt__config_key config[] = {
    QFMT__LLAMA_CONFIG_KEYS,
    {"model.sliding_window", {"sliding_window"}, 0},
    /* Phi3Config's default: longrope's factor is the context's growth over this */
    {"model.original_context_length", {"original_max_position_embeddings"}, 4096},
    {NULL, {NULL}, 0},
};

static const qfmt__tensor_spec layer[] = {
    QFMT__T("model.layers.%u.input_layernorm", NORM, L_LN1, D, NONE, 0),
    QFMT__T("model.layers.%u.post_attention_layernorm", NORM, L_LN2, D, NONE, 0),
    QFMT__T("model.layers.%u.self_attn.qkv_proj", LINEAR, L_QKV, QKV, D, QFMT__FT_BIAS_OPT),
    QFMT__T("model.layers.%u.self_attn.o_proj", LINEAR, L_O, D, Q, QFMT__FT_BIAS_OPT),
    QFMT__T("model.layers.%u.mlp.gate_up_proj", LINEAR, L_GATE_UP, 2FFN, D, 0),
    QFMT__T("model.layers.%u.mlp.down_proj", LINEAR, L_DOWN, D, FFN, 0),
    QFMT__T_END,
};

static const qfmt__tensor_spec model[] = {
    QFMT__LLAMA_MODEL_ROWS,
    QFMT__T_END,
};

const qfmt_family qfmt__family_phi3 = {
    .name = "phi3",
    .hf_class = "Phi3ForCausalLM",
    .arch = QFMT_ARCH_LLAMA,
    .config = config,
    .layer = layer,
    .model = model,
    .causal = true,
    .tie_default = false,
    .gqa = true,
    .rope_theta_default = 10000.0,
    .graph = QFMT__LLAMA_GRAPH,
    .yarn_is_longrope = true,
};
