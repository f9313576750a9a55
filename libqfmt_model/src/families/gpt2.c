/* GPT-2 (transformers' GPT2Config / GPT2LMHeadModel): learned positions, pre-LayerNorm, fused
 * q|k|v, GELU (tanh) MLP, Conv1D weights stored [in, out], head tied to the token embedding. */
#include "family.h"

static const qfmt__config_key config[] = {
    {"model.vocab_size", {"vocab_size"}, 0},
    {"model.hidden_size", {"n_embd", "hidden_size"}, 0},
    {"model.num_layers", {"n_layer", "num_hidden_layers"}, 0},
    {"model.num_heads", {"n_head", "num_attention_heads"}, 0},
    {"model.ffn_size", {"n_inner"}, 0}, /* null in most checkpoints: 4 x hidden */
    {"model.context_length", {"n_positions", "n_ctx", "max_position_embeddings"}, 0},
    {"model.norm_eps", {"layer_norm_epsilon"}, 0},
    {"model.activation", {"activation_function"}, 0},
    {NULL, {NULL}, 0},
};

static const qfmt__tensor_spec layer[] = {
    QFMT__T("transformer.h.%u.ln_1", NORM, L_LN1, D, NONE, QFMT__FT_BIAS),
    QFMT__T("transformer.h.%u.ln_2", NORM, L_LN2, D, NONE, QFMT__FT_BIAS),
    QFMT__T("transformer.h.%u.attn.c_attn", LINEAR, L_QKV, QKV, D, QFMT__FT_BIAS | QFMT__FT_CONV1D),
    QFMT__T("transformer.h.%u.attn.c_proj", LINEAR, L_O, D, D, QFMT__FT_BIAS | QFMT__FT_CONV1D),
    QFMT__T("transformer.h.%u.mlp.c_fc", LINEAR, L_UP, FFN, D, QFMT__FT_BIAS | QFMT__FT_CONV1D),
    QFMT__T("transformer.h.%u.mlp.c_proj", LINEAR, L_DOWN, D, FFN, QFMT__FT_BIAS | QFMT__FT_CONV1D),
    /* cross-attention (add_cross_attention): converted, not run */
    QFMT__T("transformer.h.%u.crossattention.q_attn", LINEAR, SLOT_NONE, D, D,
      QFMT__FT_BIAS | QFMT__FT_CONV1D | QFMT__FT_OPTIONAL),
    QFMT__T_END,
};

static const qfmt__tensor_spec model[] = {
    QFMT__T("transformer.wte", EMBED, M_TOK, VOCAB, D, 0),
    QFMT__T("transformer.wpe", EMBED, M_POS, CTX, D, 0),
    QFMT__T("transformer.ln_f", NORM, M_FINAL_NORM, D, NONE, QFMT__FT_BIAS),
    QFMT__T("lm_head", EMBED, M_HEAD, VOCAB, D, QFMT__FT_OPTIONAL),
    QFMT__T_END,
};

const qfmt_family qfmt__family_gpt2 = {
    .name = "gpt2",
    .hf_class = "GPT2LMHeadModel",
    .arch = QFMT_ARCH_GPT2,
    .config = config,
    .layer = layer,
    .model = model,
    .causal = true,
    .tie_default = true,
    .ffn_mult_default = 4,
    .graph = {.norm = QFMT__NORM_LAYER, .learned_pos = true, .activation = "gelu_new"},
};
