/* The LLaMA layout that the llama-like families (LLaMA, Mistral, Qwen 2, Qwen 3) share, as
 * table rows: each family's file names its own rows with these and adds its differences (biases,
 * q/k norms, sliding window) as data, so that one forward path (forward.c) runs them all. */
#ifndef QFMT_MODEL_FAMILIES_LLAMA_LAYOUT_H
#define QFMT_MODEL_FAMILIES_LLAMA_LAYOUT_H

#include "family.h"

/* The config.json keys of transformers' LlamaConfig that every llama-like config shares. */
#define QFMT__LLAMA_CONFIG_KEYS                                                                 \
    {"model.vocab_size", {"vocab_size"}, 0}, {"model.hidden_size", {"hidden_size"}, 0},               \
        {"model.num_layers", {"num_hidden_layers"}, 0}, {"model.num_heads", {"num_attention_heads"}, 0}, \
        {"model.num_kv_heads", {"num_key_value_heads"}, 0}, {"model.head_dim", {"head_dim"}, 0},      \
        {"model.ffn_size", {"intermediate_size"}, 0}, {"model.context_length", {"max_position_embeddings"}, 0}, \
        {"model.norm_eps", {"rms_norm_eps"}, 0}, {"model.activation", {"hidden_act"}, 0}

/* Norms and attention projections: q/k/v with qkv_flags, o with o_flags. */
#define QFMT__LLAMA_ATTN_ROWS(qkv_flags, o_flags)                                                 \
    QFMT__T("model.layers.%u.input_layernorm", NORM, L_LN1, D, NONE, 0),                          \
        QFMT__T("model.layers.%u.post_attention_layernorm", NORM, L_LN2, D, NONE, 0),             \
        QFMT__T("model.layers.%u.self_attn.q_proj", LINEAR, L_Q, Q, D, qkv_flags),                \
        QFMT__T("model.layers.%u.self_attn.k_proj", LINEAR, L_K, KV, D, qkv_flags),               \
        QFMT__T("model.layers.%u.self_attn.v_proj", LINEAR, L_V, KV, D, qkv_flags),               \
        QFMT__T("model.layers.%u.self_attn.o_proj", LINEAR, L_O, D, Q, o_flags)

/* The SwiGLU MLP, its projections with `flags`. */
#define QFMT__LLAMA_MLP_ROWS(flags)                                                               \
    QFMT__T("model.layers.%u.mlp.gate_proj", LINEAR, L_GATE, FFN, D, flags),                      \
        QFMT__T("model.layers.%u.mlp.up_proj", LINEAR, L_UP, FFN, D, flags),                      \
        QFMT__T("model.layers.%u.mlp.down_proj", LINEAR, L_DOWN, D, FFN, flags)

/* Embedding, final norm and the head (absent when tied). */
#define QFMT__LLAMA_MODEL_ROWS                                                                    \
    QFMT__T("model.embed_tokens", EMBED, M_TOK, VOCAB, D, 0),                                     \
        QFMT__T("model.norm", NORM, M_FINAL_NORM, D, NONE, 0),                                    \
        QFMT__T("lm_head", EMBED, M_HEAD, VOCAB, D, QFMT__FT_OPTIONAL)

/* Pre-RMSNorm, SiLU-gated MLP (the activation from config.json's hidden_act). */
#define QFMT__LLAMA_GRAPH {.norm = QFMT__NORM_RMS, .gated_mlp = true, .activation = "silu"}

#endif
