/*
 * test_imatrix.c - llama.cpp's tensor names and importance matrices (libqfmt_model:
 * qfmt_family_gguf_name / qfmt_family_hf_name, qfmt_imatrix_*), issue 16:
 *  - every tensor of every family maps to llama.cpp's name and back (BERT's MLM head and GPT-2's
 *    cross-attention have none),
 *    with llama.cpp's names for the ones it documents (blk.N.attn_q.weight, token_embd, output,
 *    post_attention_norm / post_ffw_norm for Gemma, attn_qkv for Phi-3 and GPT-2, ...);
 *  - an imatrix file in llama-imatrix's exact layout (general.type, imatrix.* keys, sorted
 *    tensors, an extra .in_sum tensor, counts [1, 1]) built from llama-imatrix's own statistics
 *    (tests/data/ggml-quants) loads; the importance of a weight looked up by its Hugging Face
 *    name is in_sum2 / counts in fp32, and quantizing with it gives the bytes llama.cpp wrote with
 *    that imatrix;
 *  - collect -> save -> load keeps every statistic; hostile files (NaN, negative count, a
 *    missing .counts, two experts, the wrong type, no entries) are refused naming the tensor.
 */
#include "test_helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "qfmt_model.h"

typedef struct {
    const qfmt_family *f;
    size_t mapped, unmapped;
} names_ctx;

static bool check_name(void *ctx, const qfmt_family_tensor *t)
{
    names_ctx *c = ctx;
    char g[128], back[256];
    qfmt_status s = qfmt_family_gguf_name(c->f, t->name, g, sizeof g);
    if (s == QFMT_E_NOT_FOUND) {
        /* BERT's MLM head and GPT-2's cross-attention (unused by the forward pass) have none */
        cr_expect(strncmp(t->name, "cls.", 4) == 0 || strstr(t->name, ".crossattention.") != NULL,
                  "%s: %s has no GGUF name", qfmt_family_name(c->f), t->name);
        c->unmapped++;
        return true;
    }
    cr_assert_eq(s, QFMT_OK, "%s: %s", qfmt_family_name(c->f), t->name);
    TH_OK(qfmt_family_hf_name(c->f, g, back, sizeof back));
    cr_expect_str_eq(back, t->name, "%s: %s -> %s -> %s", qfmt_family_name(c->f), t->name, g, back);
    c->mapped++;
    return true;
}

Test(gguf_names, every_family_round_trips) {
    for (size_t i = 0; qfmt_family_at(i); i++) {
        const qfmt_family *f = qfmt_family_at(i);
        qfmt_model_hparams h;
        memset(&h, 0, sizeof h);
        h.family = f;
        h.vocab = 48, h.d = 32, h.layers = 3, h.heads = 4, h.head_dim = 8, h.ffn = 64, h.ctx = 16;
        h.kv_heads = strcmp(qfmt_family_name(f), "bert") == 0 || strcmp(qfmt_family_name(f), "gpt2") == 0 ? 4 : 2;
        h.type_vocab = strcmp(qfmt_family_name(f), "bert") == 0 ? 2 : 0;
        h.eps = 1e-5, h.rope_theta = 10000.0, h.rope_freq_type = QFMT_TYPE_F32;
        names_ctx c = {f, 0, 0};
        qfmt_error e;
        TH_OKE(qfmt_family_tensors(f, &h, check_name, &c, &e), e);
        cr_log_info("%s (%s): %zu tensors mapped, %zu without a GGUF name", qfmt_family_name(f),
                    qfmt_family_gguf_arch(f), c.mapped, c.unmapped);
        cr_expect_gt(c.mapped, 0u);
    }
}

Test(gguf_names, llama_cpp_names) {
    static const struct {
        const char *family, *hf, *gguf;
    } N[] = {
        {"llama", "model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight"},
        {"llama", "model.layers.11.self_attn.o_proj.weight", "blk.11.attn_output.weight"},
        {"llama", "model.layers.2.mlp.down_proj.weight", "blk.2.ffn_down.weight"},
        {"llama", "model.layers.2.input_layernorm.weight", "blk.2.attn_norm.weight"},
        {"llama", "model.layers.2.post_attention_layernorm.weight", "blk.2.ffn_norm.weight"},
        {"llama", "model.embed_tokens.weight", "token_embd.weight"},
        {"llama", "model.norm.weight", "output_norm.weight"},
        {"llama", "lm_head.weight", "output.weight"},
        {"qwen2", "model.layers.1.self_attn.k_proj.bias", "blk.1.attn_k.bias"},
        {"qwen3", "model.layers.1.self_attn.q_norm.weight", "blk.1.attn_q_norm.weight"},
        {"gemma2", "model.layers.0.post_attention_layernorm.weight", "blk.0.post_attention_norm.weight"},
        {"gemma2", "model.layers.0.pre_feedforward_layernorm.weight", "blk.0.ffn_norm.weight"},
        {"gemma2", "model.layers.0.post_feedforward_layernorm.weight", "blk.0.post_ffw_norm.weight"},
        {"gemma3_text", "model.layers.5.self_attn.k_norm.weight", "blk.5.attn_k_norm.weight"},
        {"phi3", "model.layers.0.self_attn.qkv_proj.weight", "blk.0.attn_qkv.weight"},
        {"phi3", "model.layers.0.mlp.gate_up_proj.weight", "blk.0.ffn_up.weight"},
        {"gpt2", "transformer.h.3.attn.c_attn.weight", "blk.3.attn_qkv.weight"},
        {"gpt2", "transformer.h.3.mlp.c_fc.bias", "blk.3.ffn_up.bias"},
        {"gpt2", "transformer.wpe.weight", "position_embd.weight"},
        {"bert", "bert.encoder.layer.0.attention.output.LayerNorm.weight", "blk.0.attn_output_norm.weight"},
        {"bert", "bert.embeddings.token_type_embeddings.weight", "token_types.weight"},
        {"bert", "encoder.layer.1.attention.self.query.weight", "blk.1.attn_q.weight"}, /* without "bert." */
    };
    for (size_t i = 0; i < sizeof N / sizeof N[0]; i++) {
        const qfmt_family *f = qfmt_family_find(N[i].family, strlen(N[i].family));
        cr_assert_not_null(f, "%s", N[i].family);
        char g[128];
        TH_OK(qfmt_family_gguf_name(f, N[i].hf, g, sizeof g));
        cr_expect_str_eq(g, N[i].gguf, "%s: %s", N[i].family, N[i].hf);
    }
    const qfmt_family *l = qfmt_family_find("llama", 5);
    char g[128], small_buf[8];
    cr_expect_eq(qfmt_family_gguf_name(l, "model.layers.x.self_attn.q_proj.weight", g, sizeof g), QFMT_E_NOT_FOUND);
    cr_expect_eq(qfmt_family_gguf_name(l, "model.layers.01.self_attn.q_proj.weight", g, sizeof g), QFMT_E_NOT_FOUND);
    cr_expect_eq(qfmt_family_gguf_name(l, "model.layers.0.self_attn.q_proj.weightx", g, sizeof g), QFMT_E_NOT_FOUND);
    cr_expect_eq(qfmt_family_gguf_name(l, "model.layers.0.self_attn.q_proj.weight", small_buf, sizeof small_buf),
                 QFMT_E_RANGE);
    cr_expect_eq(qfmt_family_hf_name(l, "blk.0.attn_qkv.weight", g, sizeof g), QFMT_E_NOT_FOUND, "llama has no qkv");
    cr_expect_eq(qfmt_family_hf_name(l, "blk..attn_q.weight", g, sizeof g), QFMT_E_NOT_FOUND);
    cr_expect_eq(qfmt_family_hf_name(l, "blk.99999999999.attn_q.weight", g, sizeof g), QFMT_E_NOT_FOUND);
    cr_expect_str_eq(qfmt_family_gguf_arch(qfmt_family_find("mistral", 7)), "llama");
    cr_expect_str_eq(qfmt_family_gguf_arch(qfmt_family_find("gemma3_text", 11)), "gemma3");
    cr_expect_str_eq(qfmt_family_gguf_arch(qfmt_family_find("qwen3", 5)), "qwen3");
}

/* ---- llama-imatrix's statistics, in its own file layout -------------------------------- */

static uint8_t *g_buf;
static qfmt_st_file *g_st;

static void fixture_open(void) {
    size_t n;
    uint8_t *z = th_read_file(QFMT_TEST_DATA_DIR "/ggml-quants/llama-kjv.blk0.safetensors.zst", &n);
    unsigned long long size = ZSTD_getFrameContentSize(z, n);
    cr_assert(size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN);
    g_buf = malloc((size_t)size);
    cr_assert_not_null(g_buf);
    cr_assert_eq(ZSTD_decompress(g_buf, (size_t)size, z, n), size);
    free(z);
    qfmt_error e;
    TH_OKE(qfmt_st_open_memory(&g_st, g_buf, (size_t)size, NULL, &e), e);
}

static void fixture_close(void) {
    qfmt_st_close(g_st);
    free(g_buf);
}

static qfmt_st_tensor fx(const char *name) {
    uint64_t i;
    qfmt_st_tensor t;
    qfmt_error e;
    TH_OKE(qfmt_st_find(g_st, name, &i, &e), e);
    TH_OKE(qfmt_st_get(g_st, i, &t, &e), e);
    return t;
}

static const char *const W[] = {"attn_k", "attn_output", "attn_q", "attn_v", "ffn_down", "ffn_gate", "ffn_up"};
#define NW 7

/* What llama-imatrix writes (save_imatrix): keys, then for each weight in name order in_sum2
 * [cols, 1], counts [1, 1] and in_sum [cols, 1]. `corrupt`: 0 none, else a defect. */
enum { OK_FILE, NAN_SUM, NEG_COUNT, NO_COUNTS, EXPERTS, I32_SUM };
static void write_llama_imatrix(const char *path, int corrupt) {
    qfmt_gguf_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_gguf_writer_create(&w, path, &e), e);
    TH_OKE(qfmt_gguf_writer_set_str(w, "general.type", "imatrix", 7, &e), e);
    const char *ds[] = {"train.txt"};
    TH_OKE(qfmt_gguf_writer_set_str_array(w, "imatrix.datasets", ds, NULL, 1, &e), e);
    TH_OKE(qfmt_gguf_writer_set_u32(w, "imatrix.chunk_count", 200, &e), e);
    TH_OKE(qfmt_gguf_writer_set_u32(w, "imatrix.chunk_size", 128, &e), e);
    static float bufs[NW][3][768 * 2];
    for (size_t i = 0; i < NW; i++) {
        char name[96], tn[128];
        snprintf(name, sizeof name, "blk.0.%s.weight", W[i]);
        snprintf(tn, sizeof tn, "%s.in_sum2", name);
        qfmt_st_tensor s2 = fx(tn);
        snprintf(tn, sizeof tn, "%s.counts", name);
        qfmt_st_tensor c = fx(tn);
        uint64_t cols = s2.dims[0];
        memcpy(bufs[i][0], s2.data, cols * 4);
        memcpy(bufs[i][1], c.data, 4);
        for (uint64_t j = 0; j < cols; j++) bufs[i][2][j] = 0.5f; /* in_sum: ignored */
        bool victim = i == 2; /* attn_q */
        if (victim && corrupt == NAN_SUM) bufs[i][0][5] = NAN;
        if (victim && corrupt == NEG_COUNT) bufs[i][1][0] = -1.0f;
        uint64_t ne[2] = {cols, 1}, nc[2] = {1, 1};
        uint32_t type = victim && corrupt == I32_SUM ? QFMT_TYPE_I32 : QFMT_TYPE_F32;
        if (victim && corrupt == EXPERTS) { /* two matrices' statistics in one tensor */
            ne[0] = cols / 2;
            ne[1] = 2;
        }
        snprintf(tn, sizeof tn, "%s.in_sum2", name);
        TH_OKE(qfmt_gguf_writer_add_tensor(w, tn, type, 2, ne, bufs[i][0], cols * 4, &e), e);
        if (!(victim && corrupt == NO_COUNTS)) {
            snprintf(tn, sizeof tn, "%s.counts", name);
            TH_OKE(qfmt_gguf_writer_add_tensor(w, tn, QFMT_TYPE_F32, 2, nc, bufs[i][1], 4, &e), e);
        }
        snprintf(tn, sizeof tn, "%s.in_sum", name);
        ne[0] = cols, ne[1] = 1;
        TH_OKE(qfmt_gguf_writer_add_tensor(w, tn, QFMT_TYPE_F32, 2, ne, bufs[i][2], cols * 4, &e), e);
    }
    TH_OKE(qfmt_gguf_writer_commit(w, &e), e);
    qfmt_gguf_writer_free(w);
}

Test(imatrix, llama_imatrix_file_gives_llama_cpp_bytes, .init = fixture_open, .fini = fixture_close) {
    char dir[256], path[300];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/llama.imatrix.gguf", dir);
    write_llama_imatrix(path, OK_FILE);
    qfmt_imatrix *im = NULL;
    qfmt_error e;
    TH_OKE(qfmt_imatrix_load(&im, path, &e), e);
    cr_assert_eq(qfmt_imatrix_count(im), NW);
    cr_assert_eq(qfmt_imatrix_chunks(im), 200);
    const qfmt_family *llama = qfmt_family_find("llama", 5);
    /* attn_q by its Hugging Face name: in_sum2 / counts in fp32 */
    static float imp[768];
    TH_OKE(qfmt_imatrix_importance(im, llama, "model.layers.0.self_attn.q_proj.weight", 256, imp, &e), e);
    qfmt_st_tensor s2 = fx("blk.0.attn_q.weight.in_sum2"), c = fx("blk.0.attn_q.weight.counts");
    float count;
    memcpy(&count, c.data, 4);
    for (int j = 0; j < 256; j++) {
        float v;
        memcpy(&v, (const uint8_t *)s2.data + 4 * j, 4);
        cr_assert_eq(imp[j], v / count, "column %d", j);
    }
    cr_expect_eq(qfmt_imatrix_importance(im, llama, "model.layers.1.self_attn.q_proj.weight", 256, imp, &e),
                 QFMT_E_NOT_FOUND);
    cr_expect_eq(qfmt_imatrix_importance(im, llama, "model.layers.0.self_attn.q_proj.weight", 128, imp, &e),
                 QFMT_E_CORRUPT);
    cr_expect(strstr(e.message, "256") != NULL, "%s", e.message);
    /* quantizing each weight with it gives llama.cpp's --imatrix bytes */
    static const struct {
        const char *suffix;
        uint32_t type;
    } T[] = {{"imat-Q4_K", QFMT_TYPE_Q4_K}, {"imat-Q2_K", QFMT_TYPE_Q2_K}, {"imat-IQ4_XS", QFMT_TYPE_IQ4_XS}};
    for (size_t i = 0; i < NW; i++)
        for (size_t t = 0; t < 3; t++) {
            char n[128];
            snprintf(n, sizeof n, "blk.0.%s.weight.source", W[i]);
            qfmt_st_tensor src = fx(n);
            snprintf(n, sizeof n, "blk.0.%s.weight.%s", W[i], T[t].suffix);
            qfmt_st_tensor want = fx(n);
            snprintf(n, sizeof n, "blk.0.%s.weight", W[i]);
            TH_OKE(qfmt_imatrix_importance(im, NULL, n, src.dims[1], imp, &e), e); /* by llama.cpp's name */
            uint8_t *q = malloc(want.size);
            cr_assert_not_null(q);
            qfmt_quant_opts o = QFMT_QUANT_OPTS_INIT;
            o.importance = imp;
            TH_OKE(qfmt_quantize(T[t].type, q, want.size, QFMT_TYPE_F32, src.data, src.dims[0], src.dims[1], &o, &e), e);
            cr_expect_eq(memcmp(q, want.data, want.size), 0, "%s: not llama.cpp's bytes", n);
            free(q);
        }
    qfmt_imatrix_free(im);
    th_rmtree(dir);
}

Test(imatrix, hostile_files_are_refused, .init = fixture_open, .fini = fixture_close) {
    static const struct {
        int corrupt;
        qfmt_status want;
        const char *says;
    } H[] = {
        {NAN_SUM, QFMT_E_CORRUPT, "column 5"},
        {NEG_COUNT, QFMT_E_CORRUPT, "count"},
        {NO_COUNTS, QFMT_E_CORRUPT, "counts"},
        {EXPERTS, QFMT_E_UNSUPPORTED, "experts"},
        {I32_SUM, QFMT_E_CORRUPT, "F32"},
    };
    char dir[256], path[300];
    th_mkdtemp(dir);
    for (size_t i = 0; i < sizeof H / sizeof H[0]; i++) {
        snprintf(path, sizeof path, "%s/h%zu.gguf", dir, i);
        write_llama_imatrix(path, H[i].corrupt);
        qfmt_imatrix *im = (qfmt_imatrix *)(uintptr_t)1;
        qfmt_error e;
        cr_expect_eq(qfmt_imatrix_load(&im, path, &e), H[i].want, "defect %d: %s", H[i].corrupt, e.message);
        cr_expect_null(im);
        cr_expect(strstr(e.message, H[i].says) != NULL, "defect %d: message '%s'", H[i].corrupt, e.message);
        cr_expect(strstr(e.tensor, "attn_q") != NULL, "defect %d: tensor '%s'", H[i].corrupt, e.tensor);
        cr_expect(strstr(e.path, "gguf") != NULL, "defect %d: path '%s'", H[i].corrupt, e.path);
    }
    /* a GGUF without statistics */
    snprintf(path, sizeof path, "%s/empty.gguf", dir);
    qfmt_gguf_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_gguf_writer_create(&w, path, &e), e);
    TH_OKE(qfmt_gguf_writer_set_str(w, "general.type", "model", 5, &e), e);
    TH_OKE(qfmt_gguf_writer_commit(w, &e), e);
    qfmt_gguf_writer_free(w);
    qfmt_imatrix *im = NULL;
    cr_expect_eq(qfmt_imatrix_load(&im, path, &e), QFMT_E_CORRUPT);
    cr_expect(strstr(e.message, "importance") != NULL, "%s", e.message);
    th_rmtree(dir);
}

/* collect on llama-kjv (converted by the library), save, load: the same entries, counts and
 * importance. */
Test(imatrix, collect_save_load) {
    const qfmt_family *f = qfmt_family_find("llama", 5);
    char dir[256], path[300], ipath[300];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/m.qfmt", dir);
    snprintf(ipath, sizeof ipath, "%s/m.imatrix.gguf", dir);
    qfmt_error e;
    TH_OKE(qfmt_convert_hf(QFMT_TEST_DATA_DIR "/fixtures/llama-kjv", path, NULL, NULL, &e), e);
    qfmt_reader *r = th_open_path(path);
    qfmt_model *m = NULL;
    TH_OKE(qfmt_model_load(&m, r, &e), e);
    qfmt_imatrix *im = NULL;
    TH_OKE(qfmt_imatrix_new(&im, &e), e);
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (i * 37) % 1000;
    qfmt_run_opts o = {2, true, {0}};
    TH_OKE(qfmt_imatrix_collect(im, m, ids, 24, &o, &e), e);
    TH_OKE(qfmt_imatrix_collect(im, m, ids + 4, 20, &o, &e), e);
    cr_assert_eq(qfmt_imatrix_chunks(im), 2);
    /* 4 layers x (q, k, v, o, gate, up, down); a tied head is not a stored weight */
    size_t n = qfmt_imatrix_count(im);
    cr_assert_eq(n, 28, "%zu entries", n);
    for (size_t i = 0; i < n; i++) {
        const char *name;
        uint64_t cols;
        double count;
        TH_OK(qfmt_imatrix_entry(im, i, &name, &cols, &count));
        cr_expect_eq(count, 44.0, "%s: %g rows", name, count);
        cr_expect(strncmp(name, "blk.", 4) == 0, "%s", name);
        cr_expect_eq(cols, strstr(name, "ffn_down") ? 768u : 256u, "%s: %llu columns", name, (unsigned long long)cols);
    }
    cr_expect_eq(qfmt_imatrix_entry(im, n, NULL, NULL, NULL), QFMT_E_RANGE);
    TH_OKE(qfmt_imatrix_add_dataset(im, "calib.txt", &e), e);
    TH_OKE(qfmt_imatrix_save(im, ipath, &e), e);
    qfmt_imatrix *back = NULL;
    TH_OKE(qfmt_imatrix_load(&back, ipath, &e), e);
    cr_assert_eq(qfmt_imatrix_count(back), 28);
    cr_assert_eq(qfmt_imatrix_chunks(back), 2);
    static float a[768], b[768];
    TH_OKE(qfmt_imatrix_importance(im, f, "model.layers.2.mlp.down_proj.weight", 768, a, &e), e);
    TH_OKE(qfmt_imatrix_importance(back, f, "model.layers.2.mlp.down_proj.weight", 768, b, &e), e);
    for (int j = 0; j < 768; j++) {
        cr_expect_gt(a[j], 0.0f);
        cr_expect(fabsf(a[j] - b[j]) <= 1e-6f * a[j], "column %d: %g vs %g", j, (double)a[j], (double)b[j]);
    }
    /* wrong arguments */
    cr_expect_eq(qfmt_imatrix_collect(im, m, ids, 0, &o, &e), QFMT_E_ARG);
    qfmt_imatrix *empty = NULL;
    TH_OKE(qfmt_imatrix_new(&empty, &e), e);
    cr_expect_eq(qfmt_imatrix_save(empty, ipath, &e), QFMT_E_ARG, "an empty imatrix is saved");
    qfmt_imatrix_free(empty);
    qfmt_imatrix_free(back);
    qfmt_imatrix_free(im);
    qfmt_model_free(m);
    qfmt_reader_close(r);
    th_rmtree(dir);
}
