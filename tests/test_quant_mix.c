/*
 * test_quant_mix.c - per-tensor type choices (quant_mix.c, convert_policy.c; spec: "Type mixes,
 * recipes and size targets"):
 *  - llama.cpp's mixes on synthetic tensor lists (qfmt_family_tensors): a 32-layer LLaMA-like
 *    model (q4_k_m, q4_k_s, q3_k_m, q3_k_l, q2_k, q5_k_s, q5_k_m, q6_k, q8_0, q4_0, iq4_xs),
 *    n_gqa >= 4, with and without an importance source, tied and untied heads, GPT-2's fused
 *    c_attn, BERT's position and token-type embeddings, Phi-3's fused projections. The
 *    expectations are written out from llama-quant.cpp's rules (the layer lists literally), not
 *    computed by the code under test;
 *  - llama.cpp's fallbacks for rows that hold no super-block;
 *  - --keep / --quantize / recipe precedence over a mix;
 *  - recipe parsing and its errors (FILE:LINE);
 *  - the size target's choice (hull, knapsack, local search: optimal on random small cases
 *    checked by brute force), its measurement (equal to a direct one, whatever the threads,
 *    in chunks of rows for large tensors), importance weighting, budgets below the smallest;
 *  - end to end against llama.cpp: tests/data/gguf/llama-kjv.Q4_K_M.gguf.zst (llama-quantize
 *    b10472, Q4_K_M, of the llama-kjv fixture) and qfmt_convert_hf of the fixture with mix
 *    q4_k_m agree on every tensor's type, and on the bytes of every tensor but attn_q / attn_k
 *    (convert_hf_to_gguf permutes those rows for its RoPE layout);
 *  - a size target on llama-kjv: within budget, no worse than q4_k everywhere at 4.5 bits per
 *    weight, and better at 5.
 */
#include "test_helpers.h"

#include "qfmt.h"
#include "qfmt_model.h"

#include "convert_policy.h"
#include "family.h"
#include "ops.h"
#include "quant_mix.h"

#include <math.h>
#include <zstd.h>

#define FIXTURES QFMT_TEST_DATA_DIR "/fixtures"

/* ---- Synthetic tensor lists ------------------------------------------------------------------ */
typedef struct {
    qfmt__policy_tensor t[512];
    char names[512][96];
    size_t n;
    bool with_head; /* keep the optional lm_head / cls decoder */
} tlist;

static bool add_tensor(void *ctx, const qfmt_family_tensor *ft)
{
    tlist *l = ctx;
    bool head = strstr(ft->name, "lm_head") || strstr(ft->name, "cls.predictions.decoder");
    if (ft->optional && !(head && l->with_head)) return true;
    cr_assert_lt(l->n, 512u);
    snprintf(l->names[l->n], sizeof l->names[0], "%s", ft->name);
    qfmt__policy_tensor *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    t->name = l->names[l->n];
    t->type = QFMT_TYPE_F32;
    t->ndim = ft->ndim;
    t->dims[0] = ft->conv1d ? ft->dims[1] : ft->dims[0]; /* stored [out, in] */
    t->dims[1] = ft->conv1d ? ft->dims[0] : ft->dims[1];
    l->n++;
    return true;
}

static void make_list(tlist *l, const char *family, uint64_t layers, uint64_t d, uint64_t heads, uint64_t kv,
                      uint64_t ffn, uint64_t vocab, bool head)
{
    memset(l, 0, sizeof *l);
    l->with_head = head;
    qfmt_model_hparams h;
    memset(&h, 0, sizeof h);
    h.family = qfmt_family_find(family, strlen(family));
    cr_assert_not_null(h.family, "%s", family);
    h.vocab = vocab, h.d = d, h.layers = layers, h.heads = heads, h.kv_heads = kv, h.head_dim = d / heads;
    h.ffn = ffn, h.ctx = 512, h.type_vocab = 2;
    qfmt_error e;
    cr_assert_eq(qfmt_family_tensors(h.family, &h, add_tensor, l, &e), QFMT_OK, "%s", tmsg(&e));
}

typedef struct {
    qfmt__convert_policy p;
    tlist *l;
} policy_ctx;

static qfmt_status policy_for(policy_ctx *c, tlist *l, const char *family, const qfmt_convert_opts *o,
                              uint64_t layers, uint64_t heads, uint64_t kv, qfmt_error *e)
{
    qfmt__policy_hparams h = {layers, heads, kv};
    c->l = l;
    return qfmt__policy_init(&c->p, o, qfmt_family_find(family, strlen(family)), &h, l->t, l->n, e);
}

static uint32_t type_of(policy_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->l->n; i++) {
        const qfmt__policy_tensor *t = &c->l->t[i];
        if (strcmp(t->name, name) == 0) {
            const char *note;
            return qfmt__policy_type(&c->p, t->name, t->type, t->ndim, t->dims, &note);
        }
    }
    cr_assert_fail("no tensor %s in the list", name);
    return 0;
}

static const char *tn(uint32_t t)
{
    const qfmt_type_traits *tr = qfmt_type_get_traits(t);
    return tr ? tr->name : "?";
}

#define EXPECT_TYPE(c, name, want)                                                                     \
    do {                                                                                               \
        uint32_t got_ = type_of((c), (name));                                                          \
        cr_expect_eq(got_, (uint32_t)(want), "%s: %s, expected %s", (name), tn(got_), tn(want));        \
    } while (0)

static void mix_policy(policy_ctx *c, tlist *l, const char *family, const char *mix, uint64_t layers, uint64_t heads,
                       uint64_t kv, bool imatrix)
{
    qfmt_convert_types ty = QFMT_CONVERT_TYPES_INIT;
    ty.mix = mix;
    qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
    o.types = &ty;
    if (imatrix) /* any callback: llama.cpp's has_imatrix */
        o.importance = (qfmt_status(*)(void *, const qfmt_family *, const char *, uint64_t, float *,
                                       qfmt_error *))(void *)1;
    qfmt_error e;
    cr_assert_eq(policy_for(c, l, family, &o, layers, heads, kv, &e), QFMT_OK, "%s: %s", mix, tmsg(&e));
}

static char nm[160];
static const char *L(unsigned layer, const char *what)
{
    snprintf(nm, sizeof nm, "model.layers.%u.%s.weight", layer, what);
    return nm;
}

/* llama.cpp's use_more_bits(i, 32) layers, written out: i < 4, i >= 28, (i - 4) % 3 == 2. */
static const unsigned more_bits_32[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
static bool in_more_bits(unsigned i)
{
    for (size_t k = 0; k < sizeof more_bits_32 / sizeof more_bits_32[0]; k++)
        if (more_bits_32[k] == i) return true;
    return false;
}

/* A LLaMA 2 7B shape: 32 layers, d 4096, 32 heads (kv 32: n_gqa 1, or 8: n_gqa 4), ffn 11008. */
static void llama32(tlist *l, uint64_t kv, bool head) { make_list(l, "llama", 32, 4096, 32, kv, 11008, 32000, head); }

Test(mix, q4_k_m_llama_32_layers)
{
    static tlist l;
    policy_ctx c;
    llama32(&l, 32, true);
    mix_policy(&c, &l, "llama", "q4_k_m", 32, 32, 32, false);
    for (unsigned i = 0; i < 32; i++) {
        uint32_t bumped = in_more_bits(i) ? QFMT_TYPE_Q6_K : QFMT_TYPE_Q4_K;
        EXPECT_TYPE(&c, L(i, "self_attn.v_proj"), bumped);
        EXPECT_TYPE(&c, L(i, "mlp.down_proj"), bumped);
        EXPECT_TYPE(&c, L(i, "self_attn.q_proj"), QFMT_TYPE_Q4_K);
        EXPECT_TYPE(&c, L(i, "self_attn.k_proj"), QFMT_TYPE_Q4_K);
        EXPECT_TYPE(&c, L(i, "self_attn.o_proj"), QFMT_TYPE_Q4_K);
        EXPECT_TYPE(&c, L(i, "mlp.gate_proj"), QFMT_TYPE_Q4_K);
        EXPECT_TYPE(&c, L(i, "mlp.up_proj"), QFMT_TYPE_Q4_K);
        EXPECT_TYPE(&c, L(i, "input_layernorm"), QFMT_TYPE_F32); /* norms keep their type */
    }
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_Q6_K);
    EXPECT_TYPE(&c, "model.embed_tokens.weight", QFMT_TYPE_Q4_K); /* untied: the default type */
    EXPECT_TYPE(&c, "model.norm.weight", QFMT_TYPE_F32);
    cr_expect_eq(c.p.mix.n_attention_wv, 32u);
    cr_expect_eq(c.p.mix.n_layer, 32u);
    cr_expect_eq(c.p.mix.n_gqa, 1u);
    cr_expect_not(c.p.mix.tied);
    qfmt__policy_free(&c.p);
}

Test(mix, tied_embeddings_take_the_output_rule)
{
    static tlist l;
    policy_ctx c;
    llama32(&l, 32, false); /* no lm_head: llama.cpp's has_tied_embeddings */
    mix_policy(&c, &l, "llama", "q4_k_m", 32, 32, 32, false);
    cr_expect(c.p.mix.tied);
    EXPECT_TYPE(&c, "model.embed_tokens.weight", QFMT_TYPE_Q6_K);
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "q8_0", 32, 32, 32, false);
    EXPECT_TYPE(&c, "model.embed_tokens.weight", QFMT_TYPE_Q8_0); /* Q8_0 stays Q8_0 */
    qfmt__policy_free(&c.p);
}

Test(mix, q4_k_s_q5_k_s_q5_k_m_q6_k)
{
    static tlist l;
    policy_ctx c;
    llama32(&l, 32, true);
    mix_policy(&c, &l, "llama", "q4_k_s", 32, 32, 32, false);
    for (unsigned i = 0; i < 32; i++) { /* attn_v: i_attention_wv < 4; ffn_down: i < n_layer / 8 */
        EXPECT_TYPE(&c, L(i, "self_attn.v_proj"), i < 4 ? QFMT_TYPE_Q5_K : QFMT_TYPE_Q4_K);
        EXPECT_TYPE(&c, L(i, "mlp.down_proj"), i < 4 ? QFMT_TYPE_Q5_K : QFMT_TYPE_Q4_K);
        EXPECT_TYPE(&c, L(i, "self_attn.o_proj"), QFMT_TYPE_Q4_K);
    }
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_Q6_K);
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "q5_k_s", 32, 32, 32, false); /* no bumps but the output */
    for (unsigned i = 0; i < 32; i++) {
        EXPECT_TYPE(&c, L(i, "self_attn.v_proj"), QFMT_TYPE_Q5_K);
        EXPECT_TYPE(&c, L(i, "mlp.down_proj"), QFMT_TYPE_Q5_K);
        EXPECT_TYPE(&c, L(i, "mlp.up_proj"), QFMT_TYPE_Q5_K);
    }
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_Q6_K);
    EXPECT_TYPE(&c, "model.embed_tokens.weight", QFMT_TYPE_Q5_K);
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "q5_k_m", 32, 32, 32, false);
    for (unsigned i = 0; i < 32; i++) {
        uint32_t bumped = in_more_bits(i) ? QFMT_TYPE_Q6_K : QFMT_TYPE_Q5_K;
        EXPECT_TYPE(&c, L(i, "self_attn.v_proj"), bumped);
        EXPECT_TYPE(&c, L(i, "mlp.down_proj"), bumped);
        EXPECT_TYPE(&c, L(i, "self_attn.q_proj"), QFMT_TYPE_Q5_K);
    }
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "q6_k", 32, 32, 32, false); /* pure Q6_K but for embeddings and head */
    EXPECT_TYPE(&c, L(5, "mlp.down_proj"), QFMT_TYPE_Q6_K);
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_Q6_K);
    EXPECT_TYPE(&c, "model.embed_tokens.weight", QFMT_TYPE_Q6_K);
    qfmt__policy_free(&c.p);
}

Test(mix, q3_k_m_q3_k_l_q3_k_s)
{
    static tlist l;
    policy_ctx c;
    llama32(&l, 32, true);
    mix_policy(&c, &l, "llama", "q3_k_m", 32, 32, 32, false);
    for (unsigned i = 0; i < 32; i++) {
        /* attn_v: i_attention_wv < 2 -> Q5_K else Q4_K; ffn_down: i < n_layer/16 -> Q5_K else Q4_K */
        EXPECT_TYPE(&c, L(i, "self_attn.v_proj"), i < 2 ? QFMT_TYPE_Q5_K : QFMT_TYPE_Q4_K);
        EXPECT_TYPE(&c, L(i, "mlp.down_proj"), i < 2 ? QFMT_TYPE_Q5_K : QFMT_TYPE_Q4_K);
        EXPECT_TYPE(&c, L(i, "self_attn.o_proj"), QFMT_TYPE_Q4_K);
        EXPECT_TYPE(&c, L(i, "self_attn.q_proj"), QFMT_TYPE_Q3_K);
        EXPECT_TYPE(&c, L(i, "mlp.gate_proj"), QFMT_TYPE_Q3_K);
    }
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_Q6_K);
    EXPECT_TYPE(&c, "model.embed_tokens.weight", QFMT_TYPE_Q3_K);
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "q3_k_l", 32, 32, 32, false);
    for (unsigned i = 0; i < 32; i += 7) {
        EXPECT_TYPE(&c, L(i, "self_attn.v_proj"), QFMT_TYPE_Q5_K);
        EXPECT_TYPE(&c, L(i, "mlp.down_proj"), QFMT_TYPE_Q5_K);
        EXPECT_TYPE(&c, L(i, "self_attn.o_proj"), QFMT_TYPE_Q5_K);
        EXPECT_TYPE(&c, L(i, "mlp.up_proj"), QFMT_TYPE_Q3_K);
    }
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "q3_k_s", 32, 32, 32, false);
    for (unsigned i = 0; i < 32; i += 7) {
        EXPECT_TYPE(&c, L(i, "self_attn.v_proj"), QFMT_TYPE_Q3_K);
        EXPECT_TYPE(&c, L(i, "mlp.down_proj"), QFMT_TYPE_Q3_K);
    }
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_Q6_K);
    qfmt__policy_free(&c.p);
}

Test(mix, q2_k_and_n_gqa)
{
    static tlist l;
    policy_ctx c;
    llama32(&l, 32, true);
    mix_policy(&c, &l, "llama", "q2_k", 32, 32, 32, false);
    for (unsigned i = 0; i < 32; i += 5) {
        EXPECT_TYPE(&c, L(i, "self_attn.v_proj"), QFMT_TYPE_Q3_K); /* n_gqa 1 */
        EXPECT_TYPE(&c, L(i, "mlp.down_proj"), QFMT_TYPE_Q3_K);
        EXPECT_TYPE(&c, L(i, "self_attn.o_proj"), QFMT_TYPE_Q3_K);
        EXPECT_TYPE(&c, L(i, "self_attn.k_proj"), QFMT_TYPE_Q2_K);
        EXPECT_TYPE(&c, L(i, "mlp.up_proj"), QFMT_TYPE_Q2_K);
    }
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_Q6_K);
    EXPECT_TYPE(&c, "model.embed_tokens.weight", QFMT_TYPE_Q2_K);
    qfmt__policy_free(&c.p);
    /* 32 heads over 8 kv heads: n_gqa 4 */
    llama32(&l, 8, true);
    mix_policy(&c, &l, "llama", "q2_k", 32, 32, 8, false);
    cr_expect_eq(c.p.mix.n_gqa, 4u);
    EXPECT_TYPE(&c, L(7, "self_attn.v_proj"), QFMT_TYPE_Q4_K);
    EXPECT_TYPE(&c, L(7, "mlp.down_proj"), QFMT_TYPE_Q3_K);
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "iq4_xs", 32, 32, 8, false); /* IQ4: attn_v Q5_K when n_gqa >= 4 */
    EXPECT_TYPE(&c, L(7, "self_attn.v_proj"), QFMT_TYPE_Q5_K);
    EXPECT_TYPE(&c, L(2, "mlp.down_proj"), QFMT_TYPE_Q5_K); /* i < n/8 without an imatrix */
    EXPECT_TYPE(&c, L(4, "mlp.down_proj"), QFMT_TYPE_IQ4_XS);
    EXPECT_TYPE(&c, L(4, "mlp.up_proj"), QFMT_TYPE_IQ4_XS);
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "iq4_xs", 32, 32, 8, true);
    EXPECT_TYPE(&c, L(2, "mlp.down_proj"), QFMT_TYPE_IQ4_XS); /* with one: no bump */
    qfmt__policy_free(&c.p);
    /* q2_k_s: needs an importance source; Q4_K attn_v at n_gqa >= 4, Q4_K ffn_down for i < n/8 */
    qfmt_convert_types ty = QFMT_CONVERT_TYPES_INIT;
    ty.mix = "q2_k_s";
    qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
    o.types = &ty;
    qfmt_error e;
    cr_expect_eq(policy_for(&c, &l, "llama", &o, 32, 32, 8, &e), QFMT_E_ARG);
    cr_expect(strstr(e.message, "importance"), "%s", e.message);
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "q2_k_s", 32, 32, 8, true);
    EXPECT_TYPE(&c, L(9, "self_attn.v_proj"), QFMT_TYPE_Q4_K);
    EXPECT_TYPE(&c, L(3, "mlp.down_proj"), QFMT_TYPE_Q4_K);
    EXPECT_TYPE(&c, L(4, "mlp.down_proj"), QFMT_TYPE_Q2_K);
    EXPECT_TYPE(&c, L(4, "self_attn.o_proj"), QFMT_TYPE_Q2_K);
    qfmt__policy_free(&c.p);
    /* without config numbers the shapes give n_gqa (q rows / k rows) and the layers */
    mix_policy(&c, &l, "llama", "q2_k", 0, 0, 0, false);
    cr_expect_eq(c.p.mix.n_gqa, 4u);
    cr_expect_eq(c.p.mix.n_layer, 32u);
    qfmt__policy_free(&c.p);
}

Test(mix, legacy_types_and_imatrix_rules)
{
    static tlist l;
    policy_ctx c;
    llama32(&l, 32, true);
    mix_policy(&c, &l, "llama", "q4_0", 32, 32, 32, false);
    EXPECT_TYPE(&c, L(0, "mlp.down_proj"), QFMT_TYPE_Q4_0);
    EXPECT_TYPE(&c, L(0, "self_attn.v_proj"), QFMT_TYPE_Q4_0);
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_Q6_K);
    EXPECT_TYPE(&c, "model.embed_tokens.weight", QFMT_TYPE_Q4_0);
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "q4_0", 32, 32, 32, true); /* with an imatrix: ffn_down i < n/8 -> Q4_1 */
    EXPECT_TYPE(&c, L(3, "mlp.down_proj"), QFMT_TYPE_Q4_1);
    EXPECT_TYPE(&c, L(4, "mlp.down_proj"), QFMT_TYPE_Q4_0);
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "q5_0", 32, 32, 32, true);
    EXPECT_TYPE(&c, L(0, "mlp.down_proj"), QFMT_TYPE_Q5_1);
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "q8_0", 32, 32, 32, false);
    EXPECT_TYPE(&c, L(0, "mlp.down_proj"), QFMT_TYPE_Q8_0);
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_Q8_0);
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "llama", "q5_1", 32, 32, 32, false);
    EXPECT_TYPE(&c, L(0, "mlp.down_proj"), QFMT_TYPE_Q5_1);
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_Q6_K);
    qfmt__policy_free(&c.p);
}

Test(mix, rows_that_hold_no_super_block)
{
    const char *note;
    /* tensor_type_fallback's table */
    cr_expect_eq(qfmt__type_fallback(QFMT_TYPE_Q4_K, 128, &note), (uint32_t)QFMT_TYPE_Q5_0);
    cr_expect_not_null(note);
    cr_expect_eq(qfmt__type_fallback(QFMT_TYPE_Q2_K, 96, &note), (uint32_t)QFMT_TYPE_Q4_0);
    cr_expect_eq(qfmt__type_fallback(QFMT_TYPE_Q3_K, 96, &note), (uint32_t)QFMT_TYPE_Q4_0);
    cr_expect_eq(qfmt__type_fallback(QFMT_TYPE_Q5_K, 288, &note), (uint32_t)QFMT_TYPE_Q5_1);
    cr_expect_eq(qfmt__type_fallback(QFMT_TYPE_Q6_K, 160, &note), (uint32_t)QFMT_TYPE_Q8_0);
    cr_expect_eq(qfmt__type_fallback(QFMT_TYPE_IQ4_XS, 64, &note), (uint32_t)QFMT_TYPE_IQ4_NL);
    cr_expect_eq(qfmt__type_fallback(QFMT_TYPE_Q4_K, 512, &note), (uint32_t)QFMT_TYPE_Q4_K);
    cr_expect_null(note);
    /* still incompatible (llama.cpp: F16): none, the caller keeps the source type */
    cr_expect_eq(qfmt__type_fallback(QFMT_TYPE_Q4_K, 48, &note), UINT32_MAX);
    cr_expect(note && strstr(note, "256 (nor 32)"), "%s", note);
    cr_expect_eq(qfmt__type_fallback(QFMT_TYPE_Q8_0, 48, &note), UINT32_MAX);
    cr_expect_eq(qfmt__type_fallback(QFMT_TYPE_F16, 7, &note), (uint32_t)QFMT_TYPE_F16);

    /* a plain --type q4_k on a 128-wide weight: Q5_0 */
    static tlist l;
    make_list(&l, "llama", 2, 128, 4, 4, 384, 1000, true);
    policy_ctx c;
    qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
    o.type = QFMT_TYPE_Q4_K;
    qfmt_error e;
    cr_assert_eq(policy_for(&c, &l, "llama", &o, 2, 4, 4, &e), QFMT_OK);
    EXPECT_TYPE(&c, L(0, "self_attn.q_proj"), QFMT_TYPE_Q5_0);
    EXPECT_TYPE(&c, L(0, "mlp.down_proj"), QFMT_TYPE_Q5_0); /* rows of 384 */
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_F32);      /* the plain policy keeps the head */
    qfmt__policy_free(&c.p);
    /* mix q4_k_m there: the head's rows (128) are no multiple of Q4_K's 256: Q8_0 (the output
     * rule), the token embedding Q4_K -> Q5_0 (fallback), attn_v Q6_K -> Q8_0 on bumped layers */
    mix_policy(&c, &l, "llama", "q4_k_m", 2, 4, 4, false);
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_Q8_0);
    EXPECT_TYPE(&c, "model.embed_tokens.weight", QFMT_TYPE_Q5_0);
    EXPECT_TYPE(&c, L(1, "self_attn.v_proj"), QFMT_TYPE_Q8_0); /* use_more_bits(1, 2): 1 >= 7*2/8 */
    EXPECT_TYPE(&c, L(0, "self_attn.v_proj"), QFMT_TYPE_Q5_0); /* (0 - 0) % 3 != 2, 0 < 0 false */
    qfmt__policy_free(&c.p);
    /* rows of 48 hold no block at all: the source type */
    make_list(&l, "llama", 1, 48, 1, 1, 96, 64, true);
    mix_policy(&c, &l, "llama", "q4_k_m", 1, 1, 1, false);
    EXPECT_TYPE(&c, L(0, "self_attn.q_proj"), QFMT_TYPE_F32);
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_F32);
    qfmt__policy_free(&c.p);
}

Test(mix, gpt2_bert_phi3)
{
    static tlist l;
    policy_ctx c;
    /* GPT-2: c_attn is attn_v-like (llama.cpp's ATTENTION_QKV goes through attn_v's branch),
     * c_fc ffn_up, attn c_proj attn_output, mlp c_proj ffn_down; wte tied (no lm_head): Q6_K;
     * wpe never quantized */
    make_list(&l, "gpt2", 12, 768, 12, 12, 3072, 50257, false);
    mix_policy(&c, &l, "gpt2", "q4_k_m", 12, 12, 12, false);
    cr_expect_eq(c.p.mix.n_attention_wv, 12u);
    /* use_more_bits(i, 12): i < 1, i >= 10, (i - 1) % 3 == 2: 0, 3, 6, 9, 10, 11 */
    static const bool more[12] = {1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1};
    for (unsigned i = 0; i < 12; i++) {
        char n[96];
        snprintf(n, sizeof n, "transformer.h.%u.attn.c_attn.weight", i);
        EXPECT_TYPE(&c, n, more[i] ? QFMT_TYPE_Q6_K : QFMT_TYPE_Q4_K);
        snprintf(n, sizeof n, "transformer.h.%u.mlp.c_proj.weight", i);
        EXPECT_TYPE(&c, n, more[i] ? QFMT_TYPE_Q6_K : QFMT_TYPE_Q4_K);
        snprintf(n, sizeof n, "transformer.h.%u.mlp.c_fc.weight", i);
        EXPECT_TYPE(&c, n, QFMT_TYPE_Q4_K);
        snprintf(n, sizeof n, "transformer.h.%u.attn.c_attn.bias", i);
        EXPECT_TYPE(&c, n, QFMT_TYPE_F32);
    }
    EXPECT_TYPE(&c, "transformer.wte.weight", QFMT_TYPE_Q6_K);
    EXPECT_TYPE(&c, "transformer.wpe.weight", QFMT_TYPE_F32);
    qfmt__policy_free(&c.p);
    mix_policy(&c, &l, "gpt2", "q3_k_m", 12, 12, 12, false);
    EXPECT_TYPE(&c, "transformer.h.0.attn.c_proj.weight", QFMT_TYPE_Q4_K);
    EXPECT_TYPE(&c, "transformer.h.0.attn.c_attn.weight", QFMT_TYPE_Q5_K);
    EXPECT_TYPE(&c, "transformer.h.5.attn.c_attn.weight", QFMT_TYPE_Q4_K);
    qfmt__policy_free(&c.p);
    /* BERT: no position / token-type embedding quantized; word embeddings tied */
    make_list(&l, "bert", 4, 256, 4, 4, 1024, 4096, false);
    mix_policy(&c, &l, "bert", "q4_k_m", 4, 4, 4, false);
    EXPECT_TYPE(&c, "bert.embeddings.position_embeddings.weight", QFMT_TYPE_F32);
    EXPECT_TYPE(&c, "bert.embeddings.token_type_embeddings.weight", QFMT_TYPE_F32);
    EXPECT_TYPE(&c, "bert.embeddings.word_embeddings.weight", QFMT_TYPE_Q6_K);
    EXPECT_TYPE(&c, "bert.encoder.layer.3.attention.self.value.weight", QFMT_TYPE_Q6_K);
    EXPECT_TYPE(&c, "bert.encoder.layer.1.attention.self.value.weight", QFMT_TYPE_Q4_K);
    EXPECT_TYPE(&c, "bert.encoder.layer.1.output.dense.weight", QFMT_TYPE_Q4_K); /* ffn_down */
    EXPECT_TYPE(&c, "bert.encoder.layer.2.output.dense.weight", QFMT_TYPE_Q6_K);
    EXPECT_TYPE(&c, "bert.encoder.layer.2.output.LayerNorm.weight", QFMT_TYPE_F32);
    qfmt__policy_free(&c.p);
    /* Phi-3: qkv_proj attn_v-like, gate_up_proj ffn_up */
    make_list(&l, "phi3", 8, 512, 8, 8, 1536, 4096, true);
    mix_policy(&c, &l, "phi3", "q3_k_l", 8, 8, 8, false);
    EXPECT_TYPE(&c, "model.layers.4.self_attn.qkv_proj.weight", QFMT_TYPE_Q5_K);
    EXPECT_TYPE(&c, "model.layers.4.mlp.gate_up_proj.weight", QFMT_TYPE_Q3_K);
    EXPECT_TYPE(&c, "model.layers.4.mlp.down_proj.weight", QFMT_TYPE_Q5_K);
    qfmt__policy_free(&c.p);
}

Test(mix, keep_quantize_and_recipes_win)
{
    static tlist l;
    llama32(&l, 32, true);
    const char *keep[] = {"*.layers.0.*"};
    const char *quant[] = {"lm_head.weight", "model.layers.1.*", "model.norm.weight"};
    qfmt_convert_rule rules[] = {{"*.v_proj.weight", QFMT_TYPE_Q8_0},
                                 {"*.layers.2.*", QFMT_CONVERT_KEEP},
                                 {"*.layers.1.self_attn.v_proj.weight", QFMT_TYPE_F16},
                                 {"*.mlp.up_proj.weight", QFMT_TYPE_Q5_K}};
    qfmt_convert_types ty = QFMT_CONVERT_TYPES_INIT;
    ty.mix = "q4_k_m";
    ty.rules = rules;
    ty.nrules = 4;
    qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
    o.types = &ty;
    o.keep = keep;
    o.nkeep = 1;
    o.quantize = quant;
    o.nquantize = 3;
    policy_ctx c;
    qfmt_error e;
    cr_assert_eq(policy_for(&c, &l, "llama", &o, 32, 32, 32, &e), QFMT_OK, "%s", tmsg(&e));
    EXPECT_TYPE(&c, L(0, "self_attn.v_proj"), QFMT_TYPE_F32); /* --keep first */
    EXPECT_TYPE(&c, L(0, "mlp.down_proj"), QFMT_TYPE_F32);
    EXPECT_TYPE(&c, L(1, "self_attn.v_proj"), QFMT_TYPE_Q4_K); /* --quantize: the mix's type, no bump */
    EXPECT_TYPE(&c, L(1, "mlp.down_proj"), QFMT_TYPE_Q4_K);
    EXPECT_TYPE(&c, L(1, "input_layernorm"), QFMT_TYPE_Q4_K); /* forced, 1-D: its 4096 values hold super-blocks */
    EXPECT_TYPE(&c, "lm_head.weight", QFMT_TYPE_Q4_K);
    EXPECT_TYPE(&c, "model.norm.weight", QFMT_TYPE_Q4_K); /* forced: 4096 values, whole super-blocks */
    EXPECT_TYPE(&c, L(2, "self_attn.v_proj"), QFMT_TYPE_Q8_0); /* the first matching rule */
    EXPECT_TYPE(&c, L(2, "mlp.down_proj"), QFMT_TYPE_F32);      /* keep */
    EXPECT_TYPE(&c, L(5, "mlp.up_proj"), QFMT_TYPE_Q5_K);
    EXPECT_TYPE(&c, L(6, "mlp.down_proj"), QFMT_TYPE_Q6_K); /* no rule: the mix */
    EXPECT_TYPE(&c, L(7, "mlp.down_proj"), QFMT_TYPE_Q4_K);
    qfmt__policy_free(&c.p);
}

/* ---- Recipes --------------------------------------------------------------------------------- */
Test(recipe, parse)
{
    const char *text = "# a recipe\n"
                       "\n"
                       "  *.v_proj.weight\tq8_0   # comment\r\n"
                       "lm_head.weight keep\n"
                       "*.mlp.* q4_k\n"
                       "*norm* f16";
    qfmt_convert_rule *r = NULL;
    size_t n = 0;
    qfmt_error e;
    cr_assert_eq(qfmt_convert_recipe_parse(text, strlen(text), "r.txt", &r, &n, &e), QFMT_OK, "%s", tmsg(&e));
    cr_assert_eq(n, 4u);
    cr_expect_str_eq(r[0].glob, "*.v_proj.weight");
    cr_expect_eq(r[0].type, (uint32_t)QFMT_TYPE_Q8_0);
    cr_expect_str_eq(r[1].glob, "lm_head.weight");
    cr_expect_eq(r[1].type, QFMT_CONVERT_KEEP);
    cr_expect_str_eq(r[2].glob, "*.mlp.*");
    cr_expect_eq(r[2].type, (uint32_t)QFMT_TYPE_Q4_K);
    cr_expect_str_eq(r[3].glob, "*norm*");
    cr_expect_eq(r[3].type, (uint32_t)QFMT_TYPE_F16);
    free(r);
    cr_assert_eq(qfmt_convert_recipe_parse("# nothing\n\n", 11, "e.txt", &r, &n, &e), QFMT_OK);
    cr_expect_eq(n, 0u);
    free(r);
}

static void bad_recipe(const char *text, const char *where, const char *what)
{
    qfmt_convert_rule *r = (qfmt_convert_rule *)(void *)1;
    size_t n = 7;
    qfmt_error e;
    cr_expect_eq(qfmt_convert_recipe_parse(text, strlen(text), "bad.txt", &r, &n, &e), QFMT_E_CORRUPT, "%s", text);
    cr_expect_str_eq(e.path, where, "%s: path %s", text, e.path);
    cr_expect(strstr(e.message, what), "%s: message %s", text, e.message);
    cr_expect_null(r);
    cr_expect_eq(n, 0u);
}

Test(recipe, errors_name_file_and_line)
{
    bad_recipe("a q4_0\nb q9_9\n", "bad.txt:2", "unknown type 'q9_9'");
    bad_recipe("# c\n\nlonely\n", "bad.txt:3", "no type");
    bad_recipe("a q4_0 extra\n", "bad.txt:1", "more than two words");
    bad_recipe("a q4_k_m\n", "bad.txt:1", "is a mix");
    bad_recipe("a i8\n", "bad.txt:1", "cannot be a target");
    bad_recipe("a\x01 q4_0\n", "bad.txt:1", "control character");
    qfmt_convert_rule *r;
    size_t n;
    qfmt_error e;
    cr_expect_eq(qfmt_convert_recipe_load("/nonexistent/recipe.txt", &r, &n, &e), QFMT_E_IO);
    cr_expect_str_eq(e.path, "/nonexistent/recipe.txt");
}

/* ---- Size targets ---------------------------------------------------------------------------- */
static double total(const qfmt__bpw_tensor *t, size_t n, double *bits)
{
    double err = 0;
    *bits = 0;
    for (size_t i = 0; i < n; i++) {
        err += t[i].opt[t[i].choice].err;
        *bits += 8.0 * (double)t[i].opt[t[i].choice].bytes;
    }
    return err;
}

Test(bpw, choose_known_cases)
{
    /* two tensors, same size; tensor 0's error falls steeply: the budget goes there first */
    qfmt__bpw_tensor t[2];
    memset(t, 0, sizeof t);
    for (int i = 0; i < 2; i++) {
        t[i].nopt = 3;
        t[i].elements = 100;
        t[i].opt[0] = (qfmt__bpw_option){QFMT_TYPE_Q2_K, 100, i == 0 ? 100.0 : 10.0};
        t[i].opt[1] = (qfmt__bpw_option){QFMT_TYPE_Q4_K, 200, i == 0 ? 10.0 : 5.0};
        t[i].opt[2] = (qfmt__bpw_option){QFMT_TYPE_Q8_0, 400, i == 0 ? 1.0 : 1.0};
    }
    cr_expect(qfmt__bpw_choose(t, 2, 8.0 * 300));
    cr_expect_eq(t[0].choice, 1u);
    cr_expect_eq(t[1].choice, 0u);
    cr_expect(qfmt__bpw_choose(t, 2, 8.0 * 400));
    cr_expect_eq(t[0].choice, 1u);
    cr_expect_eq(t[1].choice, 1u);
    cr_expect(qfmt__bpw_choose(t, 2, 8.0 * 10000));
    cr_expect_eq(t[0].choice, 2u);
    cr_expect_eq(t[1].choice, 2u);
    cr_expect_not(qfmt__bpw_choose(t, 2, 8.0 * 199));
    cr_expect_eq(t[0].choice, 0u);
    /* an option above the hull (no less error for more bytes) is never taken */
    t[0].opt[1].err = 200.0;
    cr_expect(qfmt__bpw_choose(t, 2, 8.0 * 300));
    cr_expect_eq(t[0].choice, 0u);
    cr_expect_eq(t[1].choice, 1u);
}

Test(bpw, choose_random_within_budget_and_optimal)
{
    uint64_t seed = 12345;
    for (int round = 0; round < 300; round++) {
        qfmt__bpw_tensor t[6];
        memset(t, 0, sizeof t);
        size_t n = 1 + th_rand(&seed) % 6;
        /* per tensor: 5 types of bits 2.6, 3.4, 4.5, 5.5, 6.6 per weight; errors ~ scale * 4^-bits */
        static const double bpw[5] = {2.625, 3.4375, 4.5, 5.5, 6.5625};
        for (size_t i = 0; i < n; i++) {
            t[i].nopt = 5;
            t[i].elements = 256 * (1 + th_rand(&seed) % 64);
            double scale = 1.0 + (double)(th_rand(&seed) % 1000);
            for (size_t k = 0; k < 5; k++) {
                double jitter = 1.0 + 0.2 * (double)(th_rand(&seed) % 100) / 100.0;
                t[i].opt[k] = (qfmt__bpw_option){(uint32_t)k, (uint64_t)(bpw[k] * (double)t[i].elements / 8.0),
                                                 scale * jitter * pow(4.0, -bpw[k]) * (double)t[i].elements};
            }
        }
        double elements = 0;
        for (size_t i = 0; i < n; i++) elements += (double)t[i].elements;
        double target = 2.625 + (double)(th_rand(&seed) % 4000) / 1000.0;
        bool ok = qfmt__bpw_choose(t, n, target * elements);
        cr_assert(ok, "round %d", round);
        double bits, err = total(t, n, &bits);
        cr_expect_leq(bits, target * elements, "round %d: %g bits over %g", round, bits, target * elements);
        /* every uniform choice that fits is no better */
        for (size_t k = 0; k < 5; k++) {
            double ub = 0, ue = 0;
            for (size_t i = 0; i < n; i++) ub += 8.0 * (double)t[i].opt[k].bytes, ue += t[i].opt[k].err;
            if (ub <= target * elements) cr_expect_leq(err, ue * (1 + 1e-12), "round %d: type %zu uniform %g < %g", round, k, ue, err);
        }
        /* and the optimum itself (the budget's bytes are few: the knapsack runs on bytes) */
        double opt = INFINITY;
        size_t combos = 1;
        for (size_t i = 0; i < n; i++) combos *= 5;
        for (size_t c = 0; c < combos; c++) {
            size_t x = c;
            double b2 = 0, e2 = 0;
            for (size_t i = 0; i < n; i++, x /= 5) b2 += 8.0 * (double)t[i].opt[x % 5].bytes, e2 += t[i].opt[x % 5].err;
            if (b2 <= target * elements && e2 < opt) opt = e2;
        }
        cr_expect_leq(err, opt * (1 + 1e-12), "round %d: optimum %g, chosen %g", round, opt, err);
        /* deterministic */
        size_t c0[6];
        for (size_t i = 0; i < n; i++) c0[i] = t[i].choice;
        qfmt__bpw_choose(t, n, target * elements);
        for (size_t i = 0; i < n; i++) cr_expect_eq(t[i].choice, c0[i]);
    }
}

static float *ramp(size_t n, uint64_t seed)
{
    float *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    for (size_t i = 0; i < n; i++) {
        double u = (double)(th_rand(&seed) % 2000001) / 1000000.0 - 1.0;
        x[i] = (float)(u * u * u + 0.1 * u);
    }
    return x;
}

Test(bpw, measure_matches_a_direct_computation)
{
    const uint64_t rows = 16, cols = 512;
    float *x = ramp(rows * cols, 7);
    float w[512];
    for (size_t c = 0; c < cols; c++) w[c] = (float)(1 + c % 5);
    uint32_t types[] = {QFMT_TYPE_Q2_K, QFMT_TYPE_Q4_K, QFMT_TYPE_Q6_K, QFMT_TYPE_Q8_0, QFMT_TYPE_F16};
    qfmt_pool *pool = qfmt_pool_new(4);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
        for (int weighted = 0; weighted < 2; weighted++) {
            qfmt_quant_opts qo = QFMT_QUANT_OPTS_INIT;
            qo.importance = weighted ? w : NULL;
            void *qb = NULL, *db = NULL;
            size_t qc = 0, dc = 0;
            uint64_t bytes, bytes2;
            double err, err2;
            qfmt_error e;
            cr_assert_eq(qfmt__bpw_measure(types[k], QFMT_TYPE_F32, x, x, rows, cols, &qo, NULL, &qb, &qc, &db, &dc,
                                           &bytes, &err, &e),
                         QFMT_OK, "%s", tmsg(&e));
            cr_assert_eq(qfmt__bpw_measure(types[k], QFMT_TYPE_F32, x, x, rows, cols, &qo, pool, &qb, &qc, &db, &dc,
                                           &bytes2, &err2, &e),
                         QFMT_OK);
            cr_expect_eq(bytes, bytes2);
            cr_expect_eq(err, err2, "the threads change nothing");
            uint64_t want;
            qfmt_type_size(types[k], rows * cols, &want);
            cr_expect_eq(bytes, want);
            /* directly */
            uint8_t *q = malloc(want);
            float *d = malloc(rows * cols * sizeof *d);
            cr_assert_eq(qfmt_quantize(types[k], q, want, QFMT_TYPE_F32, x, rows, cols, &qo, &e), QFMT_OK);
            cr_assert_eq(qfmt_dequantize(QFMT_TYPE_F32, d, rows * cols * 4, types[k], q, rows, cols, NULL, &e), QFMT_OK);
            double s = 0;
            for (uint64_t r = 0; r < rows; r++) {
                double rs = 0;
                for (uint64_t c = 0; c < cols; c++) {
                    double dd = (double)x[r * cols + c] - (double)d[r * cols + c];
                    rs += (weighted ? (double)w[c] : 1.0) * dd * dd;
                }
                s += rs;
            }
            cr_expect_eq(err, s, "%s weighted %d: %.17g vs %.17g", tn(types[k]), weighted, err, s);
            if (k > 0) cr_expect_gt(err, 0.0);
            free(q), free(d), free(qb), free(db);
        }
    qfmt_pool_free(pool);
    free(x);
}

/* In-memory tensors for qfmt__policy_size. */
typedef struct {
    float *data[4];
    int fetched, released;
} mem_src;

static qfmt_status mem_fetch(void *ctx, size_t i, const void **data, qfmt_error *err)
{
    (void)err;
    mem_src *m = ctx;
    m->fetched++;
    *data = m->data[i];
    return QFMT_OK;
}
static void mem_release(void *ctx, size_t i)
{
    (void)i;
    ((mem_src *)ctx)->released++;
}

/* Importance that makes tensor "a.weight" 1000 times more important than "b.weight". */
static qfmt_status imp_ab(void *ctx, const qfmt_family *f, const char *tensor, uint64_t row_len, float *out,
                          qfmt_error *err)
{
    (void)ctx, (void)f, (void)err;
    if (strcmp(tensor, "b.weight") == 0) return QFMT_E_NOT_FOUND;
    for (uint64_t c = 0; c < row_len; c++) out[c] = strcmp(tensor, "a.weight") == 0 ? 1000.0f : 1.0f;
    return QFMT_OK;
}

Test(bpw, policy_size_with_importance)
{
    /* a and b hold the same values; c is 1-D (never a candidate); 4.5 bits per weight over a
     * and b: with a weighted 1000x, a gets more bits than b */
    const size_t rows = 8, cols = 512;
    mem_src m = {{ramp(rows * cols, 3), ramp(rows * cols, 3), ramp(cols, 5), NULL}, 0, 0};
    qfmt__policy_tensor t[3];
    memset(t, 0, sizeof t);
    const char *names[3] = {"a.weight", "b.weight", "c.weight"};
    for (int i = 0; i < 3; i++) {
        t[i].name = names[i];
        t[i].type = QFMT_TYPE_F32;
        t[i].ndim = i < 2 ? 2 : 1;
        t[i].dims[0] = i < 2 ? rows : cols;
        t[i].dims[1] = cols;
    }
    qfmt_convert_types ty = QFMT_CONVERT_TYPES_INIT;
    ty.target_bpw = 4.5;
    qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
    o.types = &ty;
    o.threads = 3;
    o.importance = imp_ab;
    qfmt__convert_policy p;
    qfmt_error e;
    cr_assert_eq(qfmt__policy_init(&p, &o, NULL, NULL, t, 3, &e), QFMT_OK);
    cr_assert_eq(qfmt__policy_size(&p, &o, t, 3, mem_fetch, mem_release, &m, &e), QFMT_OK, "%s", tmsg(&e));
    cr_expect_eq(m.fetched, 2);
    cr_expect_eq(m.released, 2);
    cr_expect_eq(p.nsized, 2u);
    cr_expect(p.weighted);
    cr_expect_leq(p.achieved_bpw, 4.5);
    const char *note;
    uint32_t ta = qfmt__policy_type(&p, "a.weight", QFMT_TYPE_F32, 2, t[0].dims, &note);
    uint32_t tb = qfmt__policy_type(&p, "b.weight", QFMT_TYPE_F32, 2, t[1].dims, &note);
    uint32_t tc = qfmt__policy_type(&p, "c.weight", QFMT_TYPE_F32, 1, t[2].dims, &note);
    uint64_t ba, bb;
    qfmt_type_size(ta, rows * cols, &ba);
    qfmt_type_size(tb, rows * cols, &bb);
    cr_expect_gt(ba, bb, "a %s, b %s", tn(ta), tn(tb));
    cr_expect_eq(tc, (uint32_t)QFMT_TYPE_F32);
    qfmt__policy_free(&p);
    /* below the smallest choice (q2_k: 2.625): QFMT_E_RANGE naming it */
    ty.target_bpw = 2.5;
    cr_assert_eq(qfmt__policy_init(&p, &o, NULL, NULL, t, 3, &e), QFMT_OK);
    cr_expect_eq(qfmt__policy_size(&p, &o, t, 3, mem_fetch, mem_release, &m, &e), QFMT_E_RANGE);
    cr_expect(strstr(e.message, "2.625"), "%s", e.message);
    qfmt__policy_free(&p);
    for (int i = 0; i < 3; i++) free(m.data[i]);
}

Test(bpw, policy_size_measures_large_tensors_in_chunks)
{
    /* 2100 x 2048 values (above the 4 Mi-value chunk): the error the policy records is that of
     * the whole tensor measured at once */
    const size_t rows = 2100, cols = 2048;
    mem_src m = {{ramp(rows * cols, 11), NULL, NULL, NULL}, 0, 0};
    qfmt__policy_tensor t;
    memset(&t, 0, sizeof t);
    t.name = "big.weight";
    t.type = QFMT_TYPE_F32;
    t.ndim = 2;
    t.dims[0] = rows;
    t.dims[1] = cols;
    const uint32_t types[] = {QFMT_TYPE_Q8_0};
    qfmt_convert_types ty = QFMT_CONVERT_TYPES_INIT;
    ty.target_bpw = 8.5;
    ty.target_types = types;
    ty.ntarget_types = 1;
    qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
    o.types = &ty;
    o.threads = 2;
    qfmt__convert_policy p;
    qfmt_error e;
    cr_assert_eq(qfmt__policy_init(&p, &o, NULL, NULL, &t, 1, &e), QFMT_OK);
    cr_assert_eq(qfmt__policy_size(&p, &o, &t, 1, mem_fetch, mem_release, &m, &e), QFMT_OK, "%s", tmsg(&e));
    void *qb = NULL, *db = NULL;
    size_t qc = 0, dc = 0;
    uint64_t bytes;
    double err;
    qfmt_quant_opts qo = QFMT_QUANT_OPTS_INIT;
    cr_assert_eq(qfmt__bpw_measure(QFMT_TYPE_Q8_0, QFMT_TYPE_F32, m.data[0], m.data[0], rows, cols, &qo, NULL, &qb, &qc,
                                   &db, &dc, &bytes, &err, &e),
                 QFMT_OK);
    cr_expect(fabs(p.error - err) <= 1e-12 * err, "%.17g vs %.17g", p.error, err);
    cr_expect_eq(p.achieved_bpw, 8.5);
    free(qb), free(db), free(m.data[0]);
    qfmt__policy_free(&p);
}

/* ---- End to end: llama-kjv against llama.cpp's Q4_K_M ---------------------------------------- */

static void scratch_dir(char *dir) { th_mkdtemp(dir); }

/* llama.cpp's name of a llama-kjv tensor (convert_hf_to_gguf's mapping). */
static void gguf_name(const char *hf, char *out, size_t cap)
{
    static const char *const map[][2] = {
        {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"}, {"input_layernorm", "attn_norm"}, {"post_attention_layernorm", "ffn_norm"},
    };
    unsigned layer;
    char rest[96];
    if (strcmp(hf, "lm_head.weight") == 0) snprintf(out, cap, "output.weight");
    else if (strcmp(hf, "model.embed_tokens.weight") == 0) snprintf(out, cap, "token_embd.weight");
    else if (strcmp(hf, "model.norm.weight") == 0) snprintf(out, cap, "output_norm.weight");
    else if (sscanf(hf, "model.layers.%u.%95s", &layer, rest) == 2) {
        char *dot = strrchr(rest, '.');
        cr_assert_not_null(dot);
        *dot = '\0';
        for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
            if (strcmp(rest, map[k][0]) == 0) {
                snprintf(out, cap, "blk.%u.%s.weight", layer, map[k][1]);
                return;
            }
        cr_assert_fail("no GGUF name for %s", hf);
    } else
        cr_assert_fail("no GGUF name for %s", hf);
}

static qfmt_gguf *open_gguf_zst(const char *zst, const char *dir)
{
    size_t n;
    uint8_t *z = th_read_file(zst, &n);
    if (!z) return NULL;
    unsigned long long size = ZSTD_getFrameContentSize(z, n);
    cr_assert(size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN && size < (1ull << 31));
    uint8_t *buf = malloc((size_t)size);
    cr_assert_not_null(buf);
    cr_assert_eq(ZSTD_decompress(buf, (size_t)size, z, n), (size_t)size);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/ref.gguf", dir);
    th_write_file(path, buf, (size_t)size);
    free(buf), free(z);
    qfmt_gguf *g = NULL;
    qfmt_error e;
    cr_assert_eq(qfmt_gguf_open(&g, path, &e), QFMT_OK, "%s", tmsg(&e));
    return g;
}

Test(mix, llama_kjv_q4_k_m_matches_llama_cpp, .timeout = 120)
{
    char dir[64];
    scratch_dir(dir);
    char out[PATH_MAX];
    snprintf(out, sizeof out, "%s/q4_k_m.qfmt", dir);
    qfmt_convert_types ty = QFMT_CONVERT_TYPES_INIT;
    ty.mix = "q4_k_m";
    qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
    o.types = &ty;
    o.threads = 2;
    qfmt_error e;
    cr_assert_eq(qfmt_convert_hf(FIXTURES "/llama-kjv", out, &o, NULL, &e), QFMT_OK, "%s", tmsg(&e));
    qfmt_gguf *g = open_gguf_zst(QFMT_TEST_DATA_DIR "/gguf/llama-kjv.Q4_K_M.gguf.zst", dir);
    if (!g) cr_skip_test("tests/data/gguf/llama-kjv.Q4_K_M.gguf.zst is absent");
    qfmt_reader *r = th_open_path(out);
    uint64_t nt = qfmt_tensor_count(r);
    cr_assert_eq(nt, qfmt_gguf_tensor_count(g));
    size_t same_bytes = 0, types_checked = 0;
    for (uint64_t i = 0; i < nt; i++) {
        qfmt_tensor_info ti;
        TH_OK(qfmt_tensor_get_info(r, i, &ti, NULL));
        char gn[96];
        gguf_name(ti.name, gn, sizeof gn);
        uint64_t gi;
        qfmt_gguf_tensor gt;
        cr_assert_eq(qfmt_gguf_find_tensor(g, gn, &gi, &e), QFMT_OK, "%s", gn);
        cr_assert_eq(qfmt_gguf_tensor_get(g, gi, &gt, &e), QFMT_OK);
        /* llama.cpp's GGUF came from an F32 conversion: its unquantized tensors are F32, ours
         * keep the checkpoint's bf16 */
        bool quantized = gt.type != QFMT_TYPE_F32;
        if (quantized) {
            cr_expect_eq(ti.type, gt.type, "%s (%s): qfmt %s, llama.cpp %s", ti.name, gn, tn(ti.type), tn(gt.type));
            types_checked++;
        } else {
            cr_expect_eq(ti.type, (uint32_t)QFMT_TYPE_BF16, "%s: %s", ti.name, tn(ti.type));
        }
        if (!quantized || strstr(gn, "attn_q.") || strstr(gn, "attn_k.")) continue; /* permuted by convert_hf_to_gguf */
        uint8_t *buf = malloc(ti.raw_size);
        cr_assert_not_null(buf);
        TH_OK(qfmt_tensor_read(r, i, buf, ti.raw_size, true, NULL));
        cr_expect_eq(ti.raw_size, gt.size, "%s", ti.name);
        if (ti.raw_size == gt.size && memcmp(buf, gt.data, gt.size) == 0) same_bytes++;
        else cr_expect_fail("%s: bytes differ from llama.cpp's", ti.name);
        free(buf);
    }
    cr_expect_eq(types_checked, 30u);
    cr_expect_eq(same_bytes, 22u); /* 30 quantized, less 4 attn_q and 4 attn_k */
    qfmt_reader_close(r);
    qfmt_gguf_close(g);
    th_cleanup_dirs();
}
