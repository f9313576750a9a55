/* LLaMA (transformers' LlamaConfig / LlamaForCausalLM): RoPE, pre-RMSNorm, grouped KV heads,
 * SwiGLU MLP, optional attention/MLP biases, untied head unless tie_word_embeddings. */
#include "family.h"

static const qfmt__config_key config[] = {
    {"model.vocab_size", {"vocab_size"}},
    {"model.hidden_size", {"hidden_size"}},
    {"model.num_layers", {"num_hidden_layers"}},
    {"model.num_heads", {"num_attention_heads"}},
    {"model.num_kv_heads", {"num_key_value_heads"}},
    {"model.head_dim", {"head_dim"}},
    {"model.ffn_size", {"intermediate_size"}},
    {"model.context_length", {"max_position_embeddings"}},
    {"model.norm_eps", {"rms_norm_eps"}},
    {"model.activation", {"hidden_act"}},
    {"model.attention_bias", {"attention_bias"}},
    {"model.mlp_bias", {"mlp_bias"}},
    {NULL, {NULL}},
};

static const qfmt__tensor_spec layer[] = {
    QFMT__T("model.layers.%u.input_layernorm", NORM, L_LN1, D, NONE, 0),
    QFMT__T("model.layers.%u.post_attention_layernorm", NORM, L_LN2, D, NONE, 0),
    QFMT__T("model.layers.%u.self_attn.q_proj", LINEAR, L_Q, Q, D, QFMT__FT_BIAS_OPT),
    QFMT__T("model.layers.%u.self_attn.k_proj", LINEAR, L_K, KV, D, QFMT__FT_BIAS_OPT),
    QFMT__T("model.layers.%u.self_attn.v_proj", LINEAR, L_V, KV, D, QFMT__FT_BIAS_OPT),
    QFMT__T("model.layers.%u.self_attn.o_proj", LINEAR, L_O, D, Q, QFMT__FT_BIAS_OPT),
    QFMT__T("model.layers.%u.mlp.gate_proj", LINEAR, L_GATE, FFN, D, QFMT__FT_BIAS_OPT),
    QFMT__T("model.layers.%u.mlp.up_proj", LINEAR, L_UP, FFN, D, QFMT__FT_BIAS_OPT),
    QFMT__T("model.layers.%u.mlp.down_proj", LINEAR, L_DOWN, D, FFN, QFMT__FT_BIAS_OPT),
    QFMT__T_END,
};

static const qfmt__tensor_spec model[] = {
    QFMT__T("model.embed_tokens", EMBED, M_TOK, VOCAB, D, 0),
    QFMT__T("model.norm", NORM, M_FINAL_NORM, D, NONE, 0),
    QFMT__T("lm_head", EMBED, M_HEAD, VOCAB, D, QFMT__FT_OPTIONAL),
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
};
