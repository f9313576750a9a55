/* BERT (transformers' BertConfig / BertForMaskedLM): learned positions and token types,
 * post-LayerNorm, GELU (erf) MLP, bidirectional; the MLM head's decoder is tied to the word
 * embeddings unless stored. Checkpoints of BertModel save names without "bert.". */
#include "family.h"

static const qfmt__config_key config[] = {
    {"model.vocab_size", {"vocab_size"}, 0},
    {"model.hidden_size", {"hidden_size"}, 0},
    {"model.num_layers", {"num_hidden_layers"}, 0},
    {"model.num_heads", {"num_attention_heads"}, 0},
    {"model.ffn_size", {"intermediate_size"}, 0},
    {"model.context_length", {"max_position_embeddings"}, 0},
    {"model.type_vocab_size", {"type_vocab_size"}, 0},
    {"model.norm_eps", {"layer_norm_eps"}, 0},
    {"model.activation", {"hidden_act"}, 0},
    {NULL, {NULL}, 0},
};

static const qfmt__tensor_spec layer[] = {
    QFMT__T("bert.encoder.layer.%u.attention.self.query", LINEAR, L_Q, D, D, QFMT__FT_BIAS),
    QFMT__T("bert.encoder.layer.%u.attention.self.key", LINEAR, L_K, D, D, QFMT__FT_BIAS),
    QFMT__T("bert.encoder.layer.%u.attention.self.value", LINEAR, L_V, D, D, QFMT__FT_BIAS),
    QFMT__T("bert.encoder.layer.%u.attention.output.dense", LINEAR, L_O, D, D, QFMT__FT_BIAS),
    QFMT__T("bert.encoder.layer.%u.intermediate.dense", LINEAR, L_UP, FFN, D, QFMT__FT_BIAS),
    QFMT__T("bert.encoder.layer.%u.output.dense", LINEAR, L_DOWN, D, FFN, QFMT__FT_BIAS),
    QFMT__T("bert.encoder.layer.%u.attention.output.LayerNorm", NORM, L_LN1, D, NONE, QFMT__FT_BIAS),
    QFMT__T("bert.encoder.layer.%u.output.LayerNorm", NORM, L_LN2, D, NONE, QFMT__FT_BIAS),
    QFMT__T_END,
};

static const qfmt__tensor_spec model[] = {
    QFMT__T("bert.embeddings.word_embeddings", EMBED, M_TOK, VOCAB, D, 0),
    QFMT__T("bert.embeddings.position_embeddings", EMBED, M_POS, CTX, D, 0),
    QFMT__T("bert.embeddings.token_type_embeddings", EMBED, M_TYPE, TYPES, D, 0),
    QFMT__T("bert.embeddings.LayerNorm", NORM, M_EMB_NORM, D, NONE, QFMT__FT_BIAS),
    QFMT__T("cls.predictions.transform.dense", LINEAR, M_MLM_DENSE, D, D, QFMT__FT_BIAS),
    QFMT__T("cls.predictions.transform.LayerNorm", NORM, M_MLM_NORM, D, NONE, QFMT__FT_BIAS),
    QFMT__T("cls.predictions.bias", VECTOR, M_MLM_BIAS, VOCAB, NONE, 0),
    QFMT__T("cls.predictions.decoder", EMBED, M_HEAD, VOCAB, D, QFMT__FT_OPTIONAL),
    QFMT__T_END,
};

const qfmt_family qfmt__family_bert = {
    .name = "bert",
    .hf_class = "BertForMaskedLM",
    .arch = QFMT_ARCH_BERT,
    .config = config,
    .layer = layer,
    .model = model,
    .strip_prefix = "bert.",
    .tie_default = true,
    .graph = {.norm = QFMT__NORM_LAYER, .learned_pos = true, .activation = "gelu"},
};
