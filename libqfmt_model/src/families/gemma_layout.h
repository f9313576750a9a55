/* The layout Gemma 2 and Gemma 3 (text) share: the LLaMA names plus a norm after attention
 * (post_attention_layernorm, applied to the attention output, unlike LLaMA's) and a pair
 * around the MLP (pre_ and post_feedforward_layernorm); every norm scales by (1 + w);
 * embeddings scaled by sqrt(hidden_size); GeGLU (tanh GELU) MLP; attention scaled by
 * query_pre_attn_scalar^-0.5; optional soft-capping of attention scores and final logits;
 * layers alternating between sliding-window and global attention (layer_types). */
#ifndef QFMT_MODEL_FAMILIES_GEMMA_LAYOUT_H
#define QFMT_MODEL_FAMILIES_GEMMA_LAYOUT_H

#include "family.h"

/* transformers' Gemma2Config / Gemma3TextConfig keys; soft-capping defaults differ (`attn`, `final`:
 * the class defaults, 0 for none). */
#define QFMT__GEMMA_CONFIG_KEYS(attn, final)                                                      \
    {"model.vocab_size", {"vocab_size"}, 0}, {"model.hidden_size", {"hidden_size"}, 0},                 \
        {"model.num_layers", {"num_hidden_layers"}, 0}, {"model.num_heads", {"num_attention_heads"}, 0}, \
        {"model.num_kv_heads", {"num_key_value_heads"}, 0}, {"model.head_dim", {"head_dim"}, 0},        \
        {"model.ffn_size", {"intermediate_size"}, 0},                                                \
        {"model.context_length", {"max_position_embeddings"}, 0}, {"model.norm_eps", {"rms_norm_eps"}, 0}, \
        {"model.activation", {"hidden_activation"}, 0}, /* the classes ignore hidden_act */                                \
        {"model.attention_bias", {"attention_bias"}, 0},                                             \
        {"model.sliding_window", {"sliding_window"}, 4096},                                        \
        {"model.query_pre_attn_scalar", {"query_pre_attn_scalar"}, 256},                           \
        {"model.attn_logit_softcapping", {"attn_logit_softcapping"}, attn},                        \
        {"model.final_logit_softcapping", {"final_logit_softcapping"}, final}

#define QFMT__GEMMA_LAYER_ROWS                                                                      \
    QFMT__T("model.layers.%u.input_layernorm", NORM, L_LN1, D, NONE, 0),                            \
        QFMT__T("model.layers.%u.post_attention_layernorm", NORM, L_POST_ATTN, D, NONE, 0),         \
        QFMT__T("model.layers.%u.pre_feedforward_layernorm", NORM, L_LN2, D, NONE, 0),              \
        QFMT__T("model.layers.%u.post_feedforward_layernorm", NORM, L_POST_MLP, D, NONE, 0),        \
        QFMT__T("model.layers.%u.self_attn.q_proj", LINEAR, L_Q, Q, D, QFMT__FT_BIAS_OPT),          \
        QFMT__T("model.layers.%u.self_attn.k_proj", LINEAR, L_K, KV, D, QFMT__FT_BIAS_OPT),         \
        QFMT__T("model.layers.%u.self_attn.v_proj", LINEAR, L_V, KV, D, QFMT__FT_BIAS_OPT),         \
        QFMT__T("model.layers.%u.self_attn.o_proj", LINEAR, L_O, D, Q, QFMT__FT_BIAS_OPT),          \
        QFMT__T("model.layers.%u.mlp.gate_proj", LINEAR, L_GATE, FFN, D, 0),                        \
        QFMT__T("model.layers.%u.mlp.up_proj", LINEAR, L_UP, FFN, D, 0),                            \
        QFMT__T("model.layers.%u.mlp.down_proj", LINEAR, L_DOWN, D, FFN, 0)

#define QFMT__GEMMA_MODEL_ROWS                                                                    \
    QFMT__T("model.embed_tokens", EMBED, M_TOK, VOCAB, D, 0),                                     \
        QFMT__T("model.norm", NORM, M_FINAL_NORM, D, NONE, 0),                                    \
        QFMT__T("lm_head", EMBED, M_HEAD, VOCAB, D, QFMT__FT_OPTIONAL)

#endif
