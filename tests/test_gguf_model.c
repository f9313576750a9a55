/*
 * test_gguf_model.c - GGUF import and export of models (qfmt_convert_gguf, qfmt_export_gguf):
 *  - the two GGUF files llama.cpp wrote (tests/data/gguf: llama-kjv Q4_K_M, gpt2-kjv Q8_0)
 *    import: every tensor under its Hugging Face name with the GGUF's type and bytes (the
 *    llama architecture's q/k rows un-permuted, checked against an independent permutation),
 *    dequantizing to what qfmt_dequantize gives of the GGUF bytes; the model.* keys; the
 *    GPT-2 Conv1D weights listed in convert.transposed; source.* and source.gguf.* keys;
 *  - the imported llama-kjv runs: its block tensors equal qfmt's own q4_k_m conversion of the
 *    checkpoint byte for byte, its logits are close to that conversion's (which rounds RoPE to
 *    bf16, as transformers does), its held-out perplexity is near the fixture's;
 *  - export(import(x)) gives back x: every kv pair and every tensor's bytes (the whole file);
 *  - every trained fixture converted at f16 and q8_0, exported, read by qfmt's GGUF reader and
 *    imported again runs with the logits of the file it came from (within 1e-4, exact path);
 *    llama3's RoPE comes back as llama3 from rope_freqs alone (qfmt.model.* keys removed);
 *  - refusals: q8_z / q4_z without requantization (then q8_0 / q4_1), a tensor of a ggml type
 *    qfmt does not know, an architecture qfmt does not import, a missing key.
 */
#include "test_helpers.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <zstd.h>

#include "qfmt_model.h"

#define FIXDIR QFMT_TEST_DATA_DIR "/fixtures"
#define GGUF_DIR QFMT_TEST_DATA_DIR "/gguf"

/* ---- Scratch files ------------------------------------------------------------------------- */

static void unzst(const char *path, const char *out) {
    size_t n;
    uint8_t *z = th_read_file(path, &n);
    unsigned long long size = ZSTD_getFrameContentSize(z, n);
    cr_assert(size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN && size < (1ull << 31),
              "%s: not a zstd frame of known size", path);
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    cr_assert_not_null(buf);
    size_t got = ZSTD_decompress(buf, (size_t)size, z, n);
    cr_assert(!ZSTD_isError(got) && got == size, "%s", path);
    th_write_file(out, buf, got);
    free(buf);
    free(z);
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    uint8_t *d = th_read_file(from, &n);
    th_write_file(to, d, n);
    free(d);
}

/* dir/name */
static const char *at(char *buf, size_t cap, const char *dir, const char *name) {
    int k = snprintf(buf, cap, "%s/%s", dir, name);
    cr_assert(k > 0 && (size_t)k < cap, "path too long");
    return buf;
}

/* tests/data/gguf/NAME.gguf.zst unpacked into dir. */
static const char *unpack_gguf(const char *dir, const char *name, char *out, size_t cap) {
    char src[PATH_MAX], file[128];
    snprintf(src, sizeof src, "%s/%s.gguf.zst", GGUF_DIR, name);
    snprintf(file, sizeof file, "%s.gguf", name);
    unzst(src, at(out, cap, dir, file));
    return out;
}

typedef struct {
    const char *name;
    const char *family;
    const char *packed_tokenizer; /* NULL: a plain directory under fixtures/ */
} fixture;

static const fixture FIXTURES[] = {
    {"gpt2-kjv", "gpt2", NULL},
    {"llama-kjv", "llama", NULL},
    {"llama3-kjv", "llama", NULL},
    {"qwen3-kjv", "qwen3", "tokenizers/qwen3.tokenizer.json.zst"},
    {"gemma3-kjv", "gemma3_text", "tokenizer.json"},
    {"phi3-kjv", "phi3", "tokenizer.json"},
};

/* The checkpoint directory of fx (packed ones unpacked into dir/NAME). */
static const char *fx_src(const fixture *fx, const char *dir, char *out, size_t cap) {
    if (!fx->packed_tokenizer) {
        snprintf(out, cap, "%s/%s", FIXDIR, fx->name);
        return out;
    }
    snprintf(out, cap, "%s/%s", dir, fx->name);
    cr_assert_eq(mkdir(out, 0700), 0, "mkdir %s: %s", out, strerror(errno));
    char a[PATH_MAX], b[PATH_MAX + 64];
    snprintf(a, sizeof a, "%s/%s/config.json", FIXDIR, fx->name);
    copy_file(a, at(b, sizeof b, out, "config.json"));
    static const char *const packed[] = {"model.safetensors", "reference.safetensors"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/%s/%s.zst", FIXDIR, fx->name, packed[i]);
        unzst(a, at(b, sizeof b, out, packed[i]));
    }
    snprintf(a, sizeof a, "%s/%s", FIXDIR, fx->packed_tokenizer);
    size_t al = strlen(a);
    if (al > 4 && strcmp(a + al - 4, ".zst") == 0) unzst(a, at(b, sizeof b, out, "tokenizer.json"));
    else copy_file(a, at(b, sizeof b, out, "tokenizer.json"));
    return out;
}

/* ---- Models and logits --------------------------------------------------------------------- */

typedef struct {
    int32_t *ids;
    size_t B, T;
} inputs;

static inputs read_inputs(const char *path) {
    qfmt_st_file *f = NULL;
    qfmt_error e;
    TH_OKE(qfmt_st_open(&f, path, NULL, &e), e);
    qfmt_token_ids t;
    TH_OKE(qfmt_token_ids_read(f, "input_ids", false, &t, &e), e);
    cr_assert_eq(t.ndim, 2u);
    inputs in = {malloc(t.count * sizeof(int32_t)), (size_t)t.dims[0], (size_t)t.dims[1]};
    cr_assert_not_null(in.ids);
    memcpy(in.ids, t.ids, t.count * sizeof(int32_t));
    qfmt_token_ids_free(&t);
    qfmt_st_close(f);
    return in;
}

/* Logits of every sequence of `in` (B x T x V), exact path; *vocab the model's V. */
static float *logits_of(const char *path, const inputs *in, size_t *vocab) {
    qfmt_reader *r = NULL;
    qfmt_model *m = NULL;
    qfmt_error e;
    TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
    TH_OKE(qfmt_model_load(&m, r, &e), e);
    size_t V = (size_t)qfmt_model_hparams_get(m)->vocab;
    float *lg = malloc(in->B * in->T * V * sizeof *lg);
    cr_assert_not_null(lg);
    qfmt_run_opts o = {2, true, {0}};
    for (size_t b = 0; b < in->B; b++)
        TH_OKE(qfmt_model_forward(m, in->ids + b * in->T, in->T, lg + b * in->T * V, NULL, &o, &e), e);
    qfmt_model_free(m);
    qfmt_reader_close(r);
    *vocab = V;
    return lg;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

/* Perplexity over `windows` windows of `ctx` tokens of heldout.safetensors. */
static double perplexity(const char *path, size_t windows, size_t ctx) {
    qfmt_st_file *f = NULL;
    qfmt_error e;
    TH_OKE(qfmt_st_open(&f, FIXDIR "/heldout.safetensors", NULL, &e), e);
    qfmt_token_ids t;
    TH_OKE(qfmt_token_ids_read(f, "tokens", true, &t, &e), e);
    cr_assert_geq(t.count, windows * ctx);
    qfmt_reader *r = NULL;
    qfmt_model *m = NULL;
    TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
    TH_OKE(qfmt_model_load(&m, r, &e), e);
    size_t V = (size_t)qfmt_model_hparams_get(m)->vocab;
    float *lg = malloc(ctx * V * sizeof *lg);
    cr_assert_not_null(lg);
    qfmt_run_opts o = {2, true, {0}};
    double nll = 0;
    size_t n = 0;
    for (size_t w = 0; w < windows; w++) {
        const int32_t *ids = t.ids + w * ctx;
        TH_OKE(qfmt_model_forward(m, ids, ctx, lg, NULL, &o, &e), e);
        for (size_t p = 0; p + 1 < ctx; p++, n++) nll += qfmt_nll(lg + p * V, V, ids[p + 1]);
    }
    free(lg);
    qfmt_model_free(m);
    qfmt_reader_close(r);
    qfmt_token_ids_free(&t);
    qfmt_st_close(f);
    return exp(nll / (double)n);
}

/* ---- Metadata ------------------------------------------------------------------------------ */

static uint64_t meta_u64(const qfmt_reader *r, const char *key) {
    uint64_t v;
    qfmt_error e;
    TH_OKE(qfmt_meta_get_u64(r, key, &v, &e), e);
    return v;
}
static double meta_f64(const qfmt_reader *r, const char *key) {
    double v;
    qfmt_error e;
    TH_OKE(qfmt_meta_get_f64(r, key, &v, &e), e);
    return v;
}
static void expect_str(const qfmt_reader *r, const char *key, const char *want) {
    const char *p;
    uint64_t len;
    qfmt_error e;
    TH_OKE(qfmt_meta_get_string(r, key, &p, &len, &e), e);
    cr_assert(len == strlen(want) && memcmp(p, want, len) == 0, "%s = '%.*s', want '%s'", key, (int)len, p, want);
}

/* ---- Tensors against the GGUF -------------------------------------------------------------- */

/* LlamaModel.permute, written out on indices: GGUF row h*hd + 2j + s holds HF row
 * h*hd + s*hd/2 + j. */
static void unpermute(const uint8_t *gguf, uint8_t *hf, uint64_t rows, size_t row_bytes, uint64_t heads) {
    uint64_t hd = rows / heads;
    for (uint64_t r = 0; r < rows; r++) {
        uint64_t h = r / hd, within = r % hd, j = within / 2, s = within % 2;
        memcpy(hf + (h * hd + s * (hd / 2) + j) * row_bytes, gguf + r * row_bytes, row_bytes);
    }
}

/* Every tensor of the GGUF g in the imported file r: HF name, type, reversed ne, bytes (q/k
 * un-permuted for the llama architecture), decoded values. Returns the tensors compared. */
static size_t check_against_gguf(const qfmt_gguf *g, const qfmt_reader *r, const qfmt_family *f, bool permute,
                                 uint64_t heads, uint64_t kv_heads) {
    qfmt_error e;
    size_t checked = 0;
    for (uint64_t i = 0; i < qfmt_gguf_tensor_count(g); i++) {
        qfmt_gguf_tensor t;
        TH_OKE(qfmt_gguf_tensor_get(g, i, &t, &e), e);
        char hf[256];
        cr_assert_eq(qfmt_family_hf_name(f, t.name, hf, sizeof hf), QFMT_OK, "%s has no HF name", t.name);
        uint64_t idx;
        TH_OKE(qfmt_tensor_find(r, hf, &idx, &e), e);
        qfmt_tensor_info ti;
        TH_OKE(qfmt_tensor_get_info(r, idx, &ti, &e), e);
        cr_assert_eq(ti.type, t.type, "%s: type %u, GGUF %u", hf, ti.type, t.type);
        cr_assert_eq(ti.ndim, t.ndim, "%s: ndim", hf);
        for (uint32_t k = 0; k < t.ndim; k++) cr_assert_eq(ti.dims[k], t.ne[t.ndim - 1 - k], "%s: dims", hf);
        const void *data;
        uint64_t size;
        TH_OKE(qfmt_tensor_view(r, idx, &data, &size, &e), e);
        cr_assert_eq(size, t.size, "%s: size", hf);
        uint8_t *want = malloc((size_t)t.size);
        cr_assert_not_null(want);
        uint64_t rows = t.ndim == 1 ? t.ne[0] : t.ne[1];
        bool q = strstr(hf, "q_proj.") != NULL, k = strstr(hf, "k_proj.") != NULL;
        if (permute && (q || k)) unpermute(t.data, want, rows, (size_t)(t.size / rows), q ? heads : kv_heads);
        else memcpy(want, t.data, (size_t)t.size);
        cr_assert(memcmp(want, data, (size_t)t.size) == 0, "%s: bytes differ from %s's", hf, t.name);
        /* and decoded: the file's bytes give what the GGUF's bytes give */
        uint64_t row = t.ne[0], nrows = t.nelements / row;
        float *a = malloc((size_t)t.nelements * sizeof *a), *b = malloc((size_t)t.nelements * sizeof *b);
        cr_assert(a && b);
        TH_OKE(qfmt_dequantize(QFMT_TYPE_F32, a, t.nelements * 4, t.type, want, nrows, row, NULL, &e), e);
        TH_OKE(qfmt_dequantize(QFMT_TYPE_F32, b, t.nelements * 4, ti.type, data, nrows, row, NULL, &e), e);
        cr_assert(memcmp(a, b, (size_t)t.nelements * 4) == 0, "%s: decoded values differ", hf);
        free(a), free(b), free(want);
        checked++;
    }
    return checked;
}

Test(gguf_model, import_llama_q4_k_m) {
    char dir[PATH_MAX], src[PATH_MAX + 64], out[PATH_MAX + 64];
    th_mkdtemp(dir);
    unpack_gguf(dir, "llama-kjv.Q4_K_M", src, sizeof src);
    at(out, sizeof out, dir, "llama.qfmt");
    qfmt_convert_result res;
    qfmt_error e;
    TH_OKE(qfmt_convert_gguf(src, out, NULL, &res, &e), e);
    cr_assert_eq(res.tensors, 39u);
    qfmt_reader *r = NULL;
    qfmt_gguf *g = NULL;
    TH_OKE(qfmt_reader_open(&r, out, NULL, &e), e);
    TH_OKE(qfmt_gguf_open(&g, src, &e), e);
    TH_OKE(qfmt_reader_verify(r, 1, &e), e);
    expect_str(r, "general.architecture", "llama");
    cr_assert_eq(meta_u64(r, "model.vocab_size"), 4096u);
    cr_assert_eq(meta_u64(r, "model.hidden_size"), 256u);
    cr_assert_eq(meta_u64(r, "model.num_layers"), 4u);
    cr_assert_eq(meta_u64(r, "model.num_heads"), 8u);
    cr_assert_eq(meta_u64(r, "model.num_kv_heads"), 4u);
    cr_assert_eq(meta_u64(r, "model.head_dim"), 32u);
    cr_assert_eq(meta_u64(r, "model.ffn_size"), 768u);
    cr_assert_eq(meta_u64(r, "model.context_length"), 512u);
    cr_assert_eq(meta_f64(r, "model.norm_eps"), 1e-5); /* the f32 key as the config's decimal */
    cr_assert_eq(meta_f64(r, "model.rope_theta"), 10000.0);
    expect_str(r, "model.rope_type", "default");
    cr_assert_eq(meta_u64(r, "model.eos_token_id"), 0u);
    bool tied = true;
    TH_OKE(qfmt_meta_get_bool(r, "model.tie_word_embeddings", &tied, &e), e);
    cr_assert(!tied);
    expect_str(r, "convert.source_format", "gguf");
    expect_str(r, "source.gguf.general.name", "Llama Kjv");
    const char *p;
    uint64_t len;
    TH_OKE(qfmt_meta_string_array_get(r, "source.files", 0, &p, &len, &e), e);
    cr_assert(len == strlen("llama-kjv.Q4_K_M.gguf") && !memcmp(p, "llama-kjv.Q4_K_M.gguf", len));
    uint32_t ft = 0;
    TH_OKE(qfmt_meta_get_u32(r, "source.gguf.general.file_type", &ft, &e), e); /* kept as the GGUF's u32 */
    cr_assert_eq(ft, 15u);
    cr_assert_eq(check_against_gguf(g, r, qfmt_family_find("llama", 5), true, 8, 4), 39u);
    qfmt_gguf_close(g);
    qfmt_reader_close(r);
    th_rmtree(dir);
}

Test(gguf_model, import_gpt2_q8_0) {
    char dir[PATH_MAX], src[PATH_MAX + 64], out[PATH_MAX + 64];
    th_mkdtemp(dir);
    unpack_gguf(dir, "gpt2-kjv.Q8_0", src, sizeof src);
    at(out, sizeof out, dir, "gpt2.qfmt");
    qfmt_error e;
    TH_OKE(qfmt_convert_gguf(src, out, NULL, NULL, &e), e);
    qfmt_reader *r = NULL;
    qfmt_gguf *g = NULL;
    TH_OKE(qfmt_reader_open(&r, out, NULL, &e), e);
    TH_OKE(qfmt_gguf_open(&g, src, &e), e);
    expect_str(r, "general.architecture", "gpt2");
    cr_assert_eq(meta_u64(r, "model.hidden_size"), 192u);
    cr_assert_eq(meta_u64(r, "model.ffn_size"), 768u);
    cr_assert_eq(meta_u64(r, "model.context_length"), 256u);
    cr_assert_eq(meta_f64(r, "model.norm_eps"), 1e-5);
    bool tied = false;
    TH_OKE(qfmt_meta_get_bool(r, "model.tie_word_embeddings", &tied, &e), e);
    cr_assert(tied); /* llama.cpp omits output.weight: no lm_head, the runtime ties */
    uint64_t idx;
    cr_assert_eq(qfmt_tensor_find(r, "lm_head.weight", &idx, NULL), QFMT_E_NOT_FOUND);
    /* the Conv1D weights: llama.cpp's [out, in] is qfmt's stored layout, listed as transposed */
    uint64_t n;
    TH_OKE(qfmt_meta_get_string_array(r, "convert.transposed", &n, &e), e);
    cr_assert_eq(n, 16u);
    TH_OKE(qfmt_tensor_find(r, "transformer.h.0.attn.c_attn.weight", &idx, &e), e);
    qfmt_tensor_info ti;
    TH_OKE(qfmt_tensor_get_info(r, idx, &ti, &e), e);
    cr_assert(ti.dims[0] == 576 && ti.dims[1] == 192 && ti.type == QFMT_TYPE_Q8_0);
    cr_assert_eq(check_against_gguf(g, r, qfmt_family_find("gpt2", 4), false, 6, 6), 52u);
    qfmt_gguf_close(g);
    qfmt_reader_close(r);
    th_rmtree(dir);
}

/* The imported Q4_K_M file against qfmt's own --mix q4_k_m conversion of the checkpoint. */
Test(gguf_model, imported_llama_runs, .timeout = 300) {
    char dir[PATH_MAX], src[PATH_MAX + 64], imp[PATH_MAX + 64], own[PATH_MAX + 64];
    th_mkdtemp(dir);
    unpack_gguf(dir, "llama-kjv.Q4_K_M", src, sizeof src);
    at(imp, sizeof imp, dir, "imported.qfmt");
    at(own, sizeof own, dir, "own.qfmt");
    qfmt_error e;
    TH_OKE(qfmt_convert_gguf(src, imp, NULL, NULL, &e), e);
    qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
    qfmt_convert_types types = QFMT_CONVERT_TYPES_INIT;
    types.mix = "q4_k_m";
    o.types = &types;
    o.threads = 2;
    TH_OKE(qfmt_convert_hf(FIXDIR "/llama-kjv", own, &o, NULL, &e), e);
    qfmt_reader *a = NULL, *b = NULL;
    TH_OKE(qfmt_reader_open(&a, imp, NULL, &e), e);
    TH_OKE(qfmt_reader_open(&b, own, NULL, &e), e);
    size_t blocks = 0;
    for (uint64_t i = 0; i < qfmt_tensor_count(b); i++) { /* llama-quantize's Q4_K_M bytes are qfmt's */
        qfmt_tensor_info tb, ta;
        uint64_t idx;
        TH_OKE(qfmt_tensor_get_info(b, i, &tb, &e), e);
        TH_OKE(qfmt_tensor_find(a, tb.name, &idx, &e), e);
        TH_OKE(qfmt_tensor_get_info(a, idx, &ta, &e), e);
        if (qfmt_type_get_traits(tb.type)->block_elems == 1) continue; /* norms: f32 there, bf16 here */
        cr_assert_eq(ta.type, tb.type, "%s", tb.name);
        cr_assert_eq(ta.checksum, tb.checksum, "%s: bytes differ", tb.name);
        blocks++;
    }
    cr_assert_eq(blocks, 30u);
    qfmt_reader_close(a);
    qfmt_reader_close(b);
    inputs in = read_inputs(FIXDIR "/llama-kjv/reference.safetensors");
    size_t V, V2;
    float *la = logits_of(imp, &in, &V), *lb = logits_of(own, &in, &V2);
    cr_assert_eq(V, V2);
    double d = max_abs_diff(la, lb, in.B * in.T * V);
    /* the same weights; the checkpoint's conversion rounds its RoPE frequencies to bf16 */
    cr_log_info("imported Q4_K_M vs qfmt's q4_k_m conversion: max |dlogit| %g", d);
    cr_assert_lt(d, 0.05, "imported vs converted q4_k_m: max |dlogit| %g", d);
    free(la), free(lb), free(in.ids);
    double ppl = perplexity(imp, 64, 128);
    cr_log_info("imported Q4_K_M: perplexity %.4f (fixture's ppl_f32 19.3607)", ppl);
    cr_assert(ppl > 19.36 && ppl < 19.75, "perplexity %g (ppl_f32 19.3607; Q4_K_M +0.7%% expected)", ppl);
    th_rmtree(dir);
}

/* ---- export(import(x)) = x ------------------------------------------------------------------- */

static void expect_same_gguf(const char *pa, const char *pb) {
    qfmt_gguf *a = NULL, *b = NULL;
    qfmt_error e;
    TH_OKE(qfmt_gguf_open(&a, pa, &e), e);
    TH_OKE(qfmt_gguf_open(&b, pb, &e), e);
    cr_assert_eq(qfmt_gguf_version(b), 3u);
    cr_assert_eq(qfmt_gguf_alignment(b), 32u);
    cr_assert_eq(qfmt_gguf_kv_count(a), qfmt_gguf_kv_count(b));
    for (uint64_t i = 0; i < qfmt_gguf_kv_count(a); i++) {
        qfmt_gguf_kv ka, kb;
        uint64_t j;
        TH_OKE(qfmt_gguf_kv_get(a, i, &ka, &e), e);
        cr_assert_eq(qfmt_gguf_find_key(b, ka.key, &j, NULL), QFMT_OK, "key %s missing", ka.key);
        TH_OKE(qfmt_gguf_kv_get(b, j, &kb, &e), e);
        cr_assert(ka.type == kb.type && ka.elem_type == kb.elem_type && ka.count == kb.count && ka.size == kb.size &&
                      memcmp(ka.data, kb.data, (size_t)ka.size) == 0,
                  "key %s differs", ka.key);
    }
    cr_assert_eq(qfmt_gguf_tensor_count(a), qfmt_gguf_tensor_count(b));
    for (uint64_t i = 0; i < qfmt_gguf_tensor_count(a); i++) {
        qfmt_gguf_tensor ta, tb;
        uint64_t j;
        TH_OKE(qfmt_gguf_tensor_get(a, i, &ta, &e), e);
        TH_OKE(qfmt_gguf_find_tensor(b, ta.name, &j, &e), e);
        TH_OKE(qfmt_gguf_tensor_get(b, j, &tb, &e), e);
        cr_assert(ta.type == tb.type && ta.ndim == tb.ndim && !memcmp(ta.ne, tb.ne, sizeof ta.ne) && ta.size == tb.size,
                  "%s: type or shape differs", ta.name);
        cr_assert(memcmp(ta.data, tb.data, (size_t)ta.size) == 0, "%s: bytes differ", ta.name);
    }
    qfmt_gguf_close(a);
    qfmt_gguf_close(b);
}

static void roundtrip(const char *name) {
    char dir[PATH_MAX], src[PATH_MAX + 64], q[PATH_MAX + 64], back[PATH_MAX + 64];
    th_mkdtemp(dir);
    unpack_gguf(dir, name, src, sizeof src);
    at(q, sizeof q, dir, "imported.qfmt");
    at(back, sizeof back, dir, "exported.gguf");
    qfmt_error e;
    TH_OKE(qfmt_convert_gguf(src, q, NULL, NULL, &e), e);
    qfmt_reader *r = NULL;
    TH_OKE(qfmt_reader_open(&r, q, NULL, &e), e);
    TH_OKE(qfmt_export_gguf(r, back, NULL, &e), e);
    qfmt_reader_close(r);
    expect_same_gguf(src, back);
    th_rmtree(dir);
}

Test(gguf_model, export_of_import_gives_llama_back) { roundtrip("llama-kjv.Q4_K_M"); }
Test(gguf_model, export_of_import_gives_gpt2_back) { roundtrip("gpt2-kjv.Q8_0"); }

/* ---- Fixtures: convert, export, import, run ------------------------------------------------ */

/* A GGUF copy of src without the qfmt.* keys (what llama.cpp's converter would have written). */
static void strip_qfmt_keys(const char *src, const char *dst) {
    qfmt_gguf *g = NULL;
    qfmt_gguf_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_gguf_open(&g, src, &e), e);
    TH_OKE(qfmt_gguf_writer_create(&w, dst, &e), e);
    for (uint64_t i = 0; i < qfmt_gguf_kv_count(g); i++) {
        qfmt_gguf_kv kv;
        TH_OKE(qfmt_gguf_kv_get(g, i, &kv, &e), e);
        if (!strncmp(kv.key, "qfmt.", 5)) continue;
        if (kv.type == QFMT_GGUF_STRING) {
            TH_OKE(qfmt_gguf_writer_set_str(w, kv.key, (const char *)kv.data, (size_t)kv.count, &e), e);
        } else if (kv.type != QFMT_GGUF_ARRAY) {
            uint64_t v = 0;
            memcpy(&v, kv.data, (size_t)kv.size);
            TH_OKE(qfmt_gguf_writer_set_value(w, kv.key, kv.type, &v, &e), e);
        } else if (kv.elem_type == QFMT_GGUF_STRING) {
            const char **s = calloc((size_t)kv.count + 1, sizeof *s);
            size_t *l = calloc((size_t)kv.count + 1, sizeof *l);
            for (uint64_t k = 0; k < kv.count; k++) TH_OKE(qfmt_gguf_array_str(g, kv.key, k, &s[k], &l[k], &e), e);
            TH_OKE(qfmt_gguf_writer_set_str_array(w, kv.key, s, l, kv.count, &e), e);
            free(s), free(l);
        } else {
            TH_OKE(qfmt_gguf_writer_set_array(w, kv.key, kv.elem_type, kv.data, kv.count, &e), e);
        }
    }
    for (uint64_t i = 0; i < qfmt_gguf_tensor_count(g); i++) {
        qfmt_gguf_tensor t;
        TH_OKE(qfmt_gguf_tensor_get(g, i, &t, &e), e);
        TH_OKE(qfmt_gguf_writer_add_tensor(w, t.name, t.type, t.ndim, t.ne, t.data, t.size, &e), e);
    }
    TH_OKE(qfmt_gguf_writer_commit(w, &e), e);
    qfmt_gguf_writer_free(w);
    qfmt_gguf_close(g);
}

static void export_fixture(const fixture *fx, uint32_t type) {
    char dir[PATH_MAX], src[PATH_MAX + 64], q[PATH_MAX + 64], gg[PATH_MAX + 64], back[PATH_MAX + 64], ref[PATH_MAX + 128];
    th_mkdtemp(dir);
    fx_src(fx, dir, src, sizeof src);
    at(q, sizeof q, dir, "model.qfmt");
    at(gg, sizeof gg, dir, "model.gguf");
    at(back, sizeof back, dir, "back.qfmt");
    qfmt_error e;
    qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
    o.type = type;
    o.threads = 2;
    TH_OKE(qfmt_convert_hf(src, q, &o, NULL, &e), e);
    qfmt_reader *r = NULL;
    TH_OKE(qfmt_reader_open(&r, q, NULL, &e), e);
    TH_OKE(qfmt_export_gguf(r, gg, NULL, &e), e);
    qfmt_reader_close(r);
    qfmt_gguf *g = NULL; /* qfmt's GGUF reader takes it; llama.cpp's names and architecture */
    TH_OKE(qfmt_gguf_open(&g, gg, &e), e);
    const char *arch;
    size_t alen;
    TH_OKE(qfmt_gguf_get_str(g, "general.architecture", &arch, &alen, &e), e);
    const qfmt_family *f = qfmt_family_find(fx->family, strlen(fx->family));
    cr_assert_not_null(f, "%s", fx->name);
    cr_assert(alen == strlen(qfmt_family_gguf_arch(f)) && !memcmp(arch, qfmt_family_gguf_arch(f), alen));
    uint64_t idx, ft;
    TH_OKE(qfmt_gguf_find_tensor(g, "token_embd.weight", &idx, &e), e);
    TH_OKE(qfmt_gguf_get_u64(g, "general.file_type", &ft, &e), e);
    cr_assert_eq(ft, type == QFMT_TYPE_F16 ? 1u : 7u, "general.file_type %" PRIu64, ft);
    TH_OKE(qfmt_gguf_get_u64(g, "general.quantization_version", &ft, &e), e);
    cr_assert_eq(ft, 2u);
    cr_assert_eq(qfmt_gguf_find_key(g, "general.alignment", NULL, NULL), QFMT_E_NOT_FOUND);
    bool llama3 = strcmp(fx->name, "llama3-kjv") == 0;
    if (llama3) TH_OKE(qfmt_gguf_find_tensor(g, "rope_freqs.weight", &idx, &e), e);
    qfmt_gguf_close(g);
    TH_OKE(qfmt_convert_gguf(gg, back, NULL, NULL, &e), e);
    inputs in = read_inputs(at(ref, sizeof ref, src, "reference.safetensors"));
    size_t V, V2;
    float *la = logits_of(q, &in, &V), *lb = logits_of(back, &in, &V2);
    cr_assert_eq(V, V2);
    double d = max_abs_diff(la, lb, in.B * in.T * V);
    cr_log_info("%s %s: export -> import: max |dlogit| %g", fx->name, qfmt_type_get_traits(type)->name, d);
    cr_assert_leq(d, 1e-4, "%s: export -> import changes the logits by %g", fx->name, d);
    free(la), free(lb);
    if (llama3) { /* without qfmt's keys: llama3 again, from rope_freqs alone */
        char bare[PATH_MAX + 64], back2[PATH_MAX + 64];
        strip_qfmt_keys(gg, at(bare, sizeof bare, dir, "bare.gguf"));
        TH_OKE(qfmt_convert_gguf(bare, at(back2, sizeof back2, dir, "back2.qfmt"), NULL, NULL, &e), e);
        TH_OKE(qfmt_reader_open(&r, back2, NULL, &e), e);
        expect_str(r, "model.rope_type", "llama3");
        cr_assert_eq(meta_f64(r, "model.rope_scaling.factor"), 8.0);
        cr_assert_eq(meta_f64(r, "model.rope_scaling.low_freq_factor"), 1.0);
        cr_assert_eq(meta_f64(r, "model.rope_scaling.high_freq_factor"), 4.0);
        cr_assert_eq(meta_u64(r, "model.rope_scaling.original_context_length"), 64u);
        qfmt_reader_close(r);
        float *lc = logits_of(back2, &in, &V2);
        la = logits_of(q, &in, &V);
        d = max_abs_diff(la, lc, in.B * in.T * V);
        /* llama.cpp's semantics: RoPE frequencies in f32, not rounded to the checkpoint's bf16 */
        cr_log_info("llama3 from rope_freqs alone: max |dlogit| %g", d);
        cr_assert_lt(d, 0.2, "llama3 from rope_freqs: max |dlogit| %g", d);
        free(la), free(lc);
    }
    free(in.ids);
    th_rmtree(dir);
}

Test(gguf_model, export_fixtures_f16, .timeout = 600) {
    for (size_t i = 0; i < sizeof FIXTURES / sizeof FIXTURES[0]; i++) export_fixture(&FIXTURES[i], QFMT_TYPE_F16);
}
Test(gguf_model, export_fixtures_q8_0, .timeout = 600) {
    for (size_t i = 0; i < sizeof FIXTURES / sizeof FIXTURES[0]; i++) export_fixture(&FIXTURES[i], QFMT_TYPE_Q8_0);
}

/* The llama architecture's permutation undone: a GGUF's attn_q rows, un-permuted, are the
 * checkpoint's q_proj rows (f32 here, so the values themselves). */
Test(gguf_model, export_permutes_llama_q_k) {
    char dir[PATH_MAX], q[PATH_MAX + 64], gg[PATH_MAX + 64];
    th_mkdtemp(dir);
    at(q, sizeof q, dir, "m.qfmt");
    at(gg, sizeof gg, dir, "m.gguf");
    qfmt_error e;
    qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
    TH_OKE(qfmt_convert_hf(FIXDIR "/llama-kjv", q, &o, NULL, &e), e);
    qfmt_reader *r = NULL;
    TH_OKE(qfmt_reader_open(&r, q, NULL, &e), e);
    TH_OKE(qfmt_export_gguf(r, gg, NULL, &e), e);
    qfmt_gguf *g = NULL;
    TH_OKE(qfmt_gguf_open(&g, gg, &e), e);
    static const char *const pairs[][2] = {{"blk.1.attn_q.weight", "model.layers.1.self_attn.q_proj.weight"},
                                           {"blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj.weight"},
                                           {"blk.1.attn_v.weight", "model.layers.1.self_attn.v_proj.weight"}};
    for (size_t k = 0; k < 3; k++) {
        uint64_t gi, qi;
        qfmt_gguf_tensor t;
        TH_OKE(qfmt_gguf_find_tensor(g, pairs[k][0], &gi, &e), e);
        TH_OKE(qfmt_gguf_tensor_get(g, gi, &t, &e), e);
        TH_OKE(qfmt_tensor_find(r, pairs[k][1], &qi, &e), e);
        const void *data;
        uint64_t size;
        TH_OKE(qfmt_tensor_view(r, qi, &data, &size, &e), e);
        cr_assert_eq(size, t.size);
        uint8_t *hf = malloc((size_t)size);
        uint64_t rows = t.ne[1];
        if (k < 2) unpermute(t.data, hf, rows, (size_t)(size / rows), k == 0 ? 8 : 4);
        else memcpy(hf, t.data, (size_t)size);
        cr_assert(memcmp(hf, data, (size_t)size) == 0, "%s", pairs[k][0]);
        if (k < 2) cr_assert(memcmp(t.data, data, (size_t)size) != 0, "%s: not permuted", pairs[k][0]);
        free(hf);
    }
    qfmt_gguf_close(g);
    qfmt_reader_close(r);
    th_rmtree(dir);
}

/* ---- Refusals ------------------------------------------------------------------------------ */

static void collect_note(void *ctx, const char *tensor, const char *what) {
    (void)what;
    (*(int *)ctx) += tensor != NULL;
}

Test(gguf_model, z_types_refused_or_requantized) {
    char dir[PATH_MAX], q[PATH_MAX + 64], gg[PATH_MAX + 64];
    th_mkdtemp(dir);
    for (int z = 0; z < 2; z++) {
        uint32_t zt = z ? QFMT_TYPE_Q4_Z : QFMT_TYPE_Q8_Z, gt = z ? QFMT_TYPE_Q4_1 : QFMT_TYPE_Q8_0;
        at(q, sizeof q, dir, "z.qfmt");
        at(gg, sizeof gg, dir, "z.gguf");
        qfmt_error e;
        qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
        o.type = zt;
        TH_OKE(qfmt_convert_hf(FIXDIR "/gpt2-kjv", q, &o, NULL, &e), e);
        qfmt_reader *r = NULL;
        TH_OKE(qfmt_reader_open(&r, q, NULL, &e), e);
        memset(&e, 0, sizeof e);
        cr_assert_eq(qfmt_export_gguf(r, gg, NULL, &e), QFMT_E_UNSUPPORTED);
        cr_assert(e.tensor[0] && strstr(e.message, qfmt_type_get_traits(zt)->name), "%s", tmsg(&e));
        cr_assert(!th_exists(gg), "nothing left on failure");
        cr_assert_eq(th_count_entries(dir, NULL, 0), 1, "no temporary file left");
        qfmt_export_opts xo = QFMT_EXPORT_OPTS_INIT;
        int notes = 0;
        xo.z_types = QFMT_EXPORT_Z_REQUANTIZE;
        xo.note = collect_note;
        xo.ctx = &notes;
        TH_OKE(qfmt_export_gguf(r, gg, &xo, &e), e);
        cr_assert_eq(notes, 16, "a note per re-encoded tensor");
        qfmt_gguf *g = NULL;
        qfmt_gguf_tensor t;
        uint64_t idx;
        TH_OKE(qfmt_gguf_open(&g, gg, &e), e);
        TH_OKE(qfmt_gguf_find_tensor(g, "blk.0.attn_qkv.weight", &idx, &e), e);
        TH_OKE(qfmt_gguf_tensor_get(g, idx, &t, &e), e);
        cr_assert_eq(t.type, gt);
        qfmt_gguf_close(g);
        qfmt_reader_close(r);
        unlink(q);
        unlink(gg);
    }
    th_rmtree(dir);
}

/* Finds `needle` in a byte buffer (a tensor name or key in a GGUF file), or fails. */
static size_t find_bytes(const uint8_t *buf, size_t n, const char *needle) {
    size_t l = strlen(needle);
    for (size_t i = 0; i + l <= n; i++)
        if (!memcmp(buf + i, needle, l)) return i;
    cr_assert_fail("'%s' not found", needle);
    return 0;
}

static void expect_refused(const char *gguf, qfmt_status want, const char *tensor, const char *in_message) {
    char out[PATH_MAX + 16];
    snprintf(out, sizeof out, "%s.qfmt", gguf);
    qfmt_error e;
    memset(&e, 0, sizeof e);
    qfmt_status s = qfmt_convert_gguf(gguf, out, NULL, NULL, &e);
    cr_assert_eq(s, want, "status %d: %s", (int)s, tmsg(&e));
    if (tensor) cr_assert_str_eq(e.tensor, tensor);
    cr_assert(strstr(e.message, in_message), "%s", tmsg(&e));
    cr_assert(strstr(e.path, ".gguf"), "the error names the file: %s", tmsg(&e));
    cr_assert(!th_exists(out));
}

Test(gguf_model, refusals) {
    char dir[PATH_MAX], src[PATH_MAX + 64], bad[PATH_MAX + 64];
    th_mkdtemp(dir);
    unpack_gguf(dir, "gpt2-kjv.Q8_0", src, sizeof src);
    size_t n;
    uint8_t *orig = th_read_file(src, &n);
    uint8_t *b = malloc(n);
    cr_assert_not_null(b);
    /* a tensor of a type qfmt does not know (ggml's IQ2_XXS, 16) */
    memcpy(b, orig, n);
    size_t off = find_bytes(b, n, "output_norm.weight") + strlen("output_norm.weight");
    cr_assert_eq(th_get32(b + off), 1u); /* n_dims */
    th_put32(b + off + 4 + 8, 16);
    th_write_file(at(bad, sizeof bad, dir, "unknown_type.gguf"), b, n);
    expect_refused(bad, QFMT_E_UNSUPPORTED, "output_norm.weight", "ggml type 16");
    /* an architecture qfmt does not import */
    memcpy(b, orig, n);
    off = find_bytes(b, n, "gpt2");
    memcpy(b + off, "gptj", 4);
    th_write_file(at(bad, sizeof bad, dir, "arch.gguf"), b, n);
    expect_refused(bad, QFMT_E_UNSUPPORTED, NULL, "general.architecture 'gptj'");
    /* a missing key */
    memcpy(b, orig, n);
    off = find_bytes(b, n, "gpt2.context_length");
    memcpy(b + off, "gpt2.context_lengtX", 19);
    th_write_file(at(bad, sizeof bad, dir, "key.gguf"), b, n);
    expect_refused(bad, QFMT_E_NOT_FOUND, NULL, "gpt2.context_length");
    /* a tensor the family does not know */
    memcpy(b, orig, n);
    off = find_bytes(b, n, "blk.0.ffn_up.weight");
    memcpy(b + off, "blk.0.ffn_xx.weight", 19);
    th_write_file(at(bad, sizeof bad, dir, "tensor.gguf"), b, n);
    expect_refused(bad, QFMT_E_UNSUPPORTED, "blk.0.ffn_xx.weight", "not a tensor");
    free(b);
    free(orig);
    th_rmtree(dir);
}

/* --type on a GGUF source: block tensors of the target type are copied, the others re-encoded;
 * a float target decodes every tensor. */
Test(gguf_model, import_with_type) {
    char dir[PATH_MAX], src[PATH_MAX + 64], out[PATH_MAX + 64];
    th_mkdtemp(dir);
    unpack_gguf(dir, "gpt2-kjv.Q8_0", src, sizeof src);
    at(out, sizeof out, dir, "m.qfmt");
    qfmt_error e;
    for (int k = 0; k < 3; k++) {
        qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
        o.type = k == 0 ? QFMT_TYPE_Q8_0 : k == 1 ? QFMT_TYPE_Q4_0 : QFMT_TYPE_F32;
        TH_OKE(qfmt_convert_gguf(src, out, &o, NULL, &e), e);
        qfmt_reader *r = NULL;
        qfmt_gguf *g = NULL;
        TH_OKE(qfmt_reader_open(&r, out, NULL, &e), e);
        TH_OKE(qfmt_gguf_open(&g, src, &e), e);
        uint64_t qi, gi;
        qfmt_tensor_info ti;
        qfmt_gguf_tensor t;
        TH_OKE(qfmt_tensor_find(r, "transformer.h.2.mlp.c_fc.weight", &qi, &e), e);
        TH_OKE(qfmt_tensor_get_info(r, qi, &ti, &e), e);
        TH_OKE(qfmt_gguf_find_tensor(g, "blk.2.ffn_up.weight", &gi, &e), e);
        TH_OKE(qfmt_gguf_tensor_get(g, gi, &t, &e), e);
        cr_assert_eq(ti.type, o.type);
        const void *data;
        uint64_t size;
        TH_OKE(qfmt_tensor_view(r, qi, &data, &size, &e), e);
        if (k == 0) cr_assert(size == t.size && !memcmp(data, t.data, (size_t)size), "q8_0 copied byte for byte");
        if (k == 2) { /* decoded as ggml decodes it */
            float *f = malloc((size_t)t.nelements * 4);
            TH_OKE(qfmt_dequantize(QFMT_TYPE_F32, f, t.nelements * 4, t.type, t.data, t.ne[1], t.ne[0], NULL, &e), e);
            cr_assert(size == t.nelements * 4 && !memcmp(f, data, (size_t)size));
            free(f);
        }
        TH_OKE(qfmt_tensor_find(r, "transformer.wte.weight", &qi, &e), e); /* embeddings keep their type */
        TH_OKE(qfmt_tensor_get_info(r, qi, &ti, &e), e);
        cr_assert_eq(ti.type, k == 2 ? QFMT_TYPE_F32 : QFMT_TYPE_Q8_0);
        qfmt_gguf_close(g);
        qfmt_reader_close(r);
    }
    th_rmtree(dir);
}
