/*
 * test_family.c - the model-family tables of libqfmt_model (libqfmt_model/src/families/):
 * for every family, a config.json made from hyperparameters maps back to the same model.*
 * metadata, a file holding exactly the family's required tensors loads and runs, a file
 * missing any one of them is refused naming it, and convert's tensor roles come from the table.
 */
#include "test_helpers.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt_model.h"
#include "rope.h"

static qfmt_model_hparams small(const qfmt_family *f)
{
    qfmt_model_hparams h;
    memset(&h, 0, sizeof h);
    h.family = f;
    h.vocab = 48, h.d = 32, h.layers = 2, h.heads = 4, h.kv_heads = 4, h.head_dim = 8, h.ffn = 64, h.ctx = 16;
    h.type_vocab = strcmp(qfmt_family_name(f), "bert") == 0 ? 2 : 0;
    h.eps = 1e-5, h.rope_theta = 10000.0, h.rope_freq_type = QFMT_TYPE_F32;
    return h;
}

typedef struct {
    qfmt_writer *w;
    const char *skip; /* a required tensor to leave out, or NULL */
    char transposed[16][128];
    size_t ntransposed, nrequired;
    uint64_t seed;
} writer_ctx;

static bool write_one(void *ctx, const qfmt_family_tensor *t)
{
    writer_ctx *c = ctx;
    if (t->optional) return true;
    c->nrequired++;
    if (c->skip && strcmp(t->name, c->skip) == 0) return true;
    uint64_t n = t->ndim == 2 ? t->dims[0] * t->dims[1] : t->dims[0];
    float *v = malloc(n * sizeof *v);
    cr_assert_not_null(v);
    for (uint64_t i = 0; i < n; i++) v[i] = (float)((int)(th_rand(&c->seed) >> 59) - 16) / 64.0f;
    uint64_t dims[2] = {t->dims[0], t->dims[1]};
    if (t->conv1d) dims[0] = t->dims[1], dims[1] = t->dims[0];
    qfmt_tensor_desc d = th_desc(t->name, QFMT_TYPE_F32, QFMT_CODEC_NONE, t->ndim, dims);
    if (t->conv1d) { /* written [out, in] as convert does, and listed */
        cr_assert_lt(c->ntransposed, 16);
        snprintf(c->transposed[c->ntransposed++], 128, "%s", t->name);
    }
    qfmt_error e;
    TH_OKE(qfmt_writer_add_tensor(c->w, &d, v, n * sizeof *v, &e), e);
    free(v);
    return true;
}

/* Writes config.json text `cfg` (through config_to_meta) and the required tensors of family f
 * with hyperparameters h (seeded weights: the same h and seed, the same weights) to path. */
static size_t write_model_cfg(const char *path, const qfmt_family *f, const qfmt_model_hparams *hp, const char *cfg,
                              const char *skip)
{
    qfmt_model_hparams h = *hp;
    qfmt_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, path, NULL, &e), e);
    TH_OKE(qfmt_family_config_to_meta(w, cfg, strlen(cfg), &e), e);
    writer_ctx c = {.w = w, .skip = skip, .seed = 7};
    TH_OKE(qfmt_family_tensors(f, &h, write_one, &c, &e), e);
    const char *names[16];
    for (size_t i = 0; i < c.ntransposed; i++) names[i] = c.transposed[i];
    TH_OKE(qfmt_writer_set_string_array(w, "convert.transposed", names, NULL, c.ntransposed, &e), e);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
    return c.nrequired;
}

/* Writes the family's config (through config.json) and required tensors to path. */
static size_t write_model(const char *path, const qfmt_family *f, const char *skip)
{
    qfmt_model_hparams h = small(f);
    char *cfg = qfmt_family_config_json(f, &h, true);
    cr_assert_not_null(cfg);
    size_t n = write_model_cfg(path, f, &h, cfg, skip);
    free(cfg);
    return n;
}

Test(family, registry_lists_each_family_once) {
    size_t n = 0;
    for (; qfmt_family_at(n); n++) {
        const char *name = qfmt_family_name(qfmt_family_at(n));
        cr_assert_eq(qfmt_family_find(name, strlen(name)), qfmt_family_at(n));
    }
    cr_assert_geq(n, 3);
    cr_assert_null(qfmt_family_find("gemma3", 6));
    cr_assert_null(qfmt_family_find("llam", 4));
}

Test(family, config_round_trip_and_load_every_family) {
    char dir[256], path[300];
    th_mkdtemp(dir);
    for (size_t i = 0; qfmt_family_at(i); i++) {
        const qfmt_family *f = qfmt_family_at(i);
        snprintf(path, sizeof path, "%s/%s.qfmt", dir, qfmt_family_name(f));
        write_model(path, f, NULL);
        qfmt_reader *r = NULL;
        qfmt_error e;
        TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
        qfmt_model *m = NULL;
        qfmt_error err = {0};
        cr_assert_eq(qfmt_model_load(&m, r, &err), 0, "%s: %s", qfmt_family_name(f), tmsg(&err));
        const qfmt_model_hparams *h = qfmt_model_hparams_get(m), want = small(f);
        cr_assert_eq(h->family, f);
        cr_assert_eq(h->vocab, want.vocab);
        cr_assert_eq(h->d, want.d);
        cr_assert_eq(h->layers, want.layers);
        cr_assert_eq(h->heads, want.heads);
        cr_assert_eq(h->kv_heads, want.kv_heads);
        cr_assert_eq(h->head_dim, want.head_dim);
        cr_assert_eq(h->ffn, want.ffn);
        cr_assert_eq(h->ctx, want.ctx);
        cr_assert_eq(h->type_vocab, want.type_vocab);
        cr_assert_float_eq(h->eps, want.eps, 1e-12);
        int32_t ids[3] = {1, 2, 3};
        float *logits = malloc(3 * h->vocab * sizeof *logits);
        qfmt_run_opts o = {1, true, {0}};
        cr_assert_eq(qfmt_model_forward(m, ids, 3, logits, NULL, &o, &err), 0, "%s", tmsg(&err));
        for (size_t k = 0; k < 3 * h->vocab; k++) cr_assert(logits[k] == logits[k], "NaN logit");
        free(logits);
        qfmt_model_free(m);
        qfmt_reader_close(r);
    }
    th_rmtree(dir);
}

typedef struct {
    char names[64][128];
    size_t n;
} name_list;

static bool collect(void *ctx, const qfmt_family_tensor *t)
{
    name_list *l = ctx;
    if (!t->optional && l->n < 64) snprintf(l->names[l->n++], 128, "%s", t->name);
    return true;
}

Test(family, each_missing_tensor_is_named) {
    char dir[256], path[300];
    th_mkdtemp(dir);
    for (size_t i = 0; qfmt_family_at(i); i++) {
        const qfmt_family *f = qfmt_family_at(i);
        qfmt_model_hparams h = small(f);
        h.layers = 1;
        name_list l = {.n = 0};
        qfmt_error e;
        TH_OKE(qfmt_family_tensors(f, &h, collect, &l, &e), e);
        for (size_t k = 0; k < l.n; k++) {
            if (!strstr(l.names[k], ".0.") && !strstr(l.names[k], "embed") && k % 3) continue; /* a sample */
            snprintf(path, sizeof path, "%s/missing.qfmt", dir);
            write_model(path, f, l.names[k]);
            qfmt_reader *r = NULL;
            TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
            qfmt_model *m = NULL;
            qfmt_error err = {0};
            cr_assert_neq(qfmt_model_load(&m, r, &err), 0, "%s loaded without %s", qfmt_family_name(f),
                          l.names[k]);
            cr_assert_null(m);
            cr_assert(strstr(tmsg(&err), l.names[k]) != NULL, "message '%s' does not name %s", tmsg(&err), l.names[k]);
            qfmt_reader_close(r);
        }
    }
    th_rmtree(dir);
}

Test(family, convert_roles_come_from_the_tables) {
    const qfmt_family *gpt2 = qfmt_family_find("gpt2", 4), *llama = qfmt_family_find("llama", 5),
                      *bert = qfmt_family_find("bert", 4);
    cr_assert_eq(qfmt_family_tensor_role(llama, "model.layers.17.mlp.up_proj.weight"),
                 QFMT_FAMILY_KNOWN | QFMT_FAMILY_QUANTIZE);
    cr_assert_eq(qfmt_family_tensor_role(llama, "model.layers.17.mlp.up_proj.bias"), QFMT_FAMILY_KNOWN);
    cr_assert_eq(qfmt_family_tensor_role(llama, "model.embed_tokens.weight"), QFMT_FAMILY_KNOWN);
    cr_assert_eq(qfmt_family_tensor_role(llama, "lm_head.weight"), QFMT_FAMILY_KNOWN);
    cr_assert_eq(qfmt_family_tensor_role(llama, "model.layers.x.mlp.up_proj.weight"), 0);
    cr_assert_eq(qfmt_family_tensor_role(llama, "transformer.h.0.attn.c_attn.weight"), 0);
    cr_assert_eq(qfmt_family_tensor_role(gpt2, "transformer.h.0.attn.c_attn.weight"),
                 QFMT_FAMILY_KNOWN | QFMT_FAMILY_QUANTIZE | QFMT_FAMILY_CONV1D);
    cr_assert_eq(qfmt_family_tensor_role(gpt2, "transformer.h.0.attn.c_attn.bias"), QFMT_FAMILY_KNOWN);
    cr_assert_eq(qfmt_family_tensor_role(gpt2, "transformer.wte.weight"), QFMT_FAMILY_KNOWN);
    /* BertModel checkpoints: names without "bert." */
    cr_assert_eq(qfmt_family_tensor_role(bert, "encoder.layer.3.output.dense.weight"),
                 QFMT_FAMILY_KNOWN | QFMT_FAMILY_QUANTIZE);
    cr_assert_eq(qfmt_family_tensor_role(bert, "cls.predictions.decoder.weight"), QFMT_FAMILY_KNOWN);
    /* any family */
    cr_assert_eq(qfmt_family_tensor_role(NULL, "transformer.h.2.mlp.c_fc.weight"),
                 QFMT_FAMILY_KNOWN | QFMT_FAMILY_QUANTIZE | QFMT_FAMILY_CONV1D);
    cr_assert_eq(qfmt_family_tensor_role(NULL, "something.else.weight"), 0);
}

Test(family, config_to_meta_refuses_what_is_not_an_object) {
    char dir[256], path[300];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/x.qfmt", dir);
    qfmt_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, path, NULL, &e), e);
    cr_assert_eq(qfmt_family_config_to_meta(w, "[1, 2]", 6, &e), QFMT_E_CORRUPT);
    cr_assert_eq(qfmt_family_config_to_meta(w, "{\"model_type\": ", 15, &e), QFMT_E_CORRUPT);
    qfmt_writer_free(w);
    th_rmtree(dir);
}

/* ---- Llama 3.x, Qwen and Mistral options (issue 15) -------------------------------------- */

/* config_to_meta of `json` into path; returns its status, message in *e. */
static qfmt_status meta_of(const char *path, const char *json, qfmt_error *e)
{
    qfmt_writer *w = NULL;
    TH_OKE(qfmt_writer_create(&w, path, NULL, e), *e);
    qfmt_status s = qfmt_family_config_to_meta(w, json, strlen(json), e);
    if (s == QFMT_OK) TH_OKE(qfmt_writer_finish(w, e), *e);
    qfmt_writer_free(w);
    return s;
}

static double meta_f64(const qfmt_reader *r, const char *key)
{
    double v = NAN;
    qfmt_error e;
    TH_OKE(qfmt_meta_get_f64(r, key, &v, &e), e);
    return v;
}

/* The same RoPE scaling in transformers 4.x (rope_theta + rope_scaling, legacy "type",
 * torch_dtype) and 5.x (rope_parameters, dtype) layouts gives the same model.* keys. */
Test(family, rope_scaling_in_both_config_layouts) {
    static const char *const cfgs[] = {
        "{\"model_type\": \"llama\", \"rope_theta\": 500000.0, \"torch_dtype\": \"bfloat16\", \"rope_scaling\": "
        "{\"type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
        "\"original_max_position_embeddings\": 64}}",
        "{\"model_type\": \"llama\", \"dtype\": \"bfloat16\", \"rope_parameters\": {\"rope_type\": \"llama3\", "
        "\"rope_theta\": 500000.0, \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
        "\"original_max_position_embeddings\": 64}}",
    };
    char dir[256], path[300];
    th_mkdtemp(dir);
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/c%zu.qfmt", dir, i);
        qfmt_error e;
        TH_OKE(meta_of(path, cfgs[i], &e), e);
        qfmt_reader *r = NULL;
        TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
        const char *s;
        uint64_t n, orig = 0;
        TH_OKE(qfmt_meta_get_string(r, "model.rope_type", &s, &n, &e), e);
        cr_assert(n == 6 && memcmp(s, "llama3", 6) == 0, "layout %zu: rope_type %.*s", i, (int)n, s);
        TH_OKE(qfmt_meta_get_string(r, "model.dtype", &s, &n, &e), e);
        cr_assert(n == 8 && memcmp(s, "bfloat16", 8) == 0);
        cr_assert_eq(meta_f64(r, "model.rope_theta"), 500000.0);
        cr_assert_eq(meta_f64(r, "model.rope_scaling.factor"), 8.0);
        cr_assert_eq(meta_f64(r, "model.rope_scaling.low_freq_factor"), 1.0);
        cr_assert_eq(meta_f64(r, "model.rope_scaling.high_freq_factor"), 4.0);
        TH_OKE(qfmt_meta_get_u64(r, "model.rope_scaling.original_context_length", &orig, &e), e);
        cr_assert_eq(orig, 64);
        qfmt_reader_close(r);
    }
    th_rmtree(dir);
}

/* A llama config.json with `rope` as its RoPE object (4.x layout), sizes from small(). */
static char *llama_cfg(const char *rope)
{
    qfmt_model_hparams h = small(qfmt_family_find("llama", 5));
    char *base = qfmt_family_config_json(h.family, &h, true);
    cr_assert_not_null(base);
    cJSON *doc = cJSON_Parse(base);
    cr_assert_not_null(doc);
    cJSON *r = cJSON_Parse(rope);
    cr_assert_not_null(r);
    cJSON_AddItemToObject(doc, "rope_scaling", r);
    char *text = cJSON_Print(doc);
    cJSON_Delete(doc);
    free(base);
    return text;
}

/* RoPE types and parameters run lacks or that are missing: the load fails naming the key. */
Test(family, rope_refusals_name_the_key) {
    static const struct {
        const char *rope, *needle;
    } cases[] = {
        {"{\"rope_type\": \"longrope\", \"factor\": 4.0}", "'model.rope_scaling.short_factor'"},
        {"{\"rope_type\": \"longrope\", \"short_factor\": [1, 1], \"long_factor\": [2, 2]}",
         "'model.rope_scaling.short_factor' must be"},
        {"{\"rope_type\": \"mrope\", \"factor\": 4.0}", "'model.rope_type'"},
        {"{\"rope_type\": \"dynamic\", \"factor\": 2.0, \"original_max_position_embeddings\": 8}", "'dynamic'"},
        {"{\"rope_type\": \"llama3\", \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
         "\"original_max_position_embeddings\": 8}", "model.rope_scaling.factor"},
        {"{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}",
         "model.rope_scaling.original_context_length"},
        {"{\"type\": \"linear\"}", "model.rope_scaling.factor"},
        {"{\"type\": \"linear\", \"factor\": -1}", "model.rope_scaling.factor"},
    };
    char dir[256], path[300];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/r.qfmt", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *cfg = llama_cfg(cases[i].rope);
        qfmt_model_hparams h = small(qfmt_family_find("llama", 5));
        write_model_cfg(path, h.family, &h, cfg, NULL);
        free(cfg);
        qfmt_reader *r = NULL;
        qfmt_error e;
        TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
        qfmt_model *m = NULL;
        qfmt_error err = {0};
        cr_assert_neq(qfmt_model_load(&m, r, &err), QFMT_OK, "%s loaded", cases[i].rope);
        cr_assert_null(m);
        cr_assert(strstr(tmsg(&err), cases[i].needle), "%s: message '%s' lacks %s", cases[i].rope, tmsg(&err),
                  cases[i].needle);
        qfmt_reader_close(r);
    }
    th_rmtree(dir);
}

/* Linear scaling (factor 2: the default frequencies halved) is applied, from position 1 on;
 * dynamic NTK gives the default rotation within the context. */
Test(family, linear_rope_halves_the_frequencies) {
    char dir[256], pa[300], pb[300];
    th_mkdtemp(dir);
    snprintf(pa, sizeof pa, "%s/a.qfmt", dir);
    snprintf(pb, sizeof pb, "%s/b.qfmt", dir);
    const qfmt_family *f = qfmt_family_find("llama", 5);
    qfmt_model_hparams h = small(f);
    char *def = qfmt_family_config_json(f, &h, true), *lin = llama_cfg("{\"type\": \"linear\", \"factor\": 2.0}");
    write_model_cfg(pa, f, &h, def, NULL);
    write_model_cfg(pb, f, &h, lin, NULL);
    free(def);
    free(lin);
    qfmt_reader *ra = NULL, *rb = NULL;
    qfmt_model *ma = NULL, *mb = NULL;
    qfmt_error e;
    TH_OKE(qfmt_reader_open(&ra, pa, NULL, &e), e);
    TH_OKE(qfmt_reader_open(&rb, pb, NULL, &e), e);
    TH_OKE(qfmt_model_load(&ma, ra, &e), e);
    TH_OKE(qfmt_model_load(&mb, rb, &e), e);
    /* position 0 is not rotated, so the two agree there and differ after it */
    int32_t ids[4] = {5, 9, 5, 9};
    float *la = malloc(4 * h.vocab * sizeof *la), *lb = malloc(4 * h.vocab * sizeof *lb);
    cr_assert(la && lb);
    qfmt_run_opts o = {1, true, {0}};
    TH_OKE(qfmt_model_forward(ma, ids, 4, la, NULL, &o, &e), e);
    TH_OKE(qfmt_model_forward(mb, ids, 4, lb, NULL, &o, &e), e);
    cr_assert_eq(memcmp(la, lb, h.vocab * sizeof *la), 0, "position 0 is not rotated by either");
    cr_assert_neq(memcmp(la + h.vocab, lb + h.vocab, 3 * h.vocab * sizeof *la), 0, "linear scaling changed nothing");
    /* dynamic NTK within max_position_embeddings: the default frequencies */
    char *dyn = llama_cfg("{\"type\": \"dynamic\", \"factor\": 2.0}");
    qfmt_reader *rc = NULL;
    qfmt_model *mc = NULL;
    write_model_cfg(pb, f, &h, dyn, NULL);
    free(dyn);
    TH_OKE(qfmt_reader_open(&rc, pb, NULL, &e), e);
    TH_OKE(qfmt_model_load(&mc, rc, &e), e);
    TH_OKE(qfmt_model_forward(mc, ids, 4, lb, NULL, &o, &e), e);
    cr_assert_eq(memcmp(la, lb, 4 * h.vocab * sizeof *la), 0, "dynamic differs from default within the context");
    qfmt_model_free(mc);
    qfmt_reader_close(rc);
    free(la);
    free(lb);
    qfmt_model_free(ma);
    qfmt_model_free(mb);
    qfmt_reader_close(ra);
    qfmt_reader_close(rb);
    th_rmtree(dir);
}

/* Qwen's sliding window (use_sliding_window) and per-layer attention types are refused at
 * convert, naming the config key; an unknown model_type fails at load naming it. */
Test(family, unsupported_attention_options_name_the_key) {
    char dir[256], path[300];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/x.qfmt", dir);
    qfmt_error e;
    cr_assert_eq(meta_of(path, "{\"model_type\": \"qwen3\", \"use_sliding_window\": true, \"sliding_window\": 8}", &e),
                 QFMT_E_UNSUPPORTED);
    cr_assert(strstr(tmsg(&e), "use_sliding_window"), "%s", tmsg(&e));
    cr_assert_eq(meta_of(path, "{\"model_type\": \"qwen2\", \"use_sliding_window\": false}", &e), QFMT_OK);
    /* per-layer attention types are kept; other types, and counts other than the layers', are not */
    cr_assert_eq(meta_of(path,
                         "{\"model_type\": \"mistral\", \"sliding_window\": 4, \"num_hidden_layers\": 2, "
                         "\"layer_types\": [\"sliding_attention\", \"full_attention\"]}",
                         &e),
                 QFMT_OK);
    cr_assert_eq(meta_of(path,
                         "{\"model_type\": \"mistral\", \"sliding_window\": 4, \"num_hidden_layers\": 2, "
                         "\"layer_types\": [\"sliding_attention\", \"chunked_attention\"]}",
                         &e),
                 QFMT_E_UNSUPPORTED);
    cr_assert(strstr(tmsg(&e), "'layer_types' entry 1"), "%s", tmsg(&e));
    cr_assert_eq(meta_of(path,
                         "{\"model_type\": \"mistral\", \"sliding_window\": 4, \"num_hidden_layers\": 3, "
                         "\"layer_types\": [\"sliding_attention\", \"full_attention\"]}",
                         &e),
                 QFMT_E_CORRUPT);
    cr_assert(strstr(tmsg(&e), "layer_types"), "%s", tmsg(&e));
    cr_assert_eq(meta_of(path, "{\"model_type\": \"llama\", \"layer_types\": [\"sliding_attention\"]}", &e),
                 QFMT_E_UNSUPPORTED);
    cr_assert_eq(meta_of(path,
                         "{\"model_type\": \"qwen3\", \"num_hidden_layers\": 2, \"layer_types\": "
                         "[\"full_attention\", \"full_attention\"]}",
                         &e),
                 QFMT_OK);
    th_rmtree(dir);
}

/* Qwen 2's q/k/v biases are required and loaded; o_proj has none. */
Test(family, qwen2_attention_biases) {
    const qfmt_family *f = qfmt_family_find("qwen2", 5);
    cr_assert_not_null(f);
    cr_assert_eq(qfmt_family_tensor_role(f, "model.layers.0.self_attn.q_proj.bias"), QFMT_FAMILY_KNOWN);
    cr_assert_eq(qfmt_family_tensor_role(f, "model.layers.0.self_attn.o_proj.bias"), 0);
    cr_assert_eq(qfmt_family_tensor_role(qfmt_family_find("qwen3", 5), "model.layers.3.self_attn.k_norm.weight"),
                 QFMT_FAMILY_KNOWN);
    char dir[256], path[300];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/q.qfmt", dir);
    qfmt_model_hparams h = small(f);
    char *cfg = qfmt_family_config_json(f, &h, true);
    write_model_cfg(path, f, &h, cfg, "model.layers.1.self_attn.v_proj.bias");
    free(cfg);
    qfmt_reader *r = NULL;
    qfmt_error e;
    TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
    qfmt_model *m = NULL;
    cr_assert_eq(qfmt_model_load(&m, r, &e), QFMT_E_NOT_FOUND);
    cr_assert(strstr(tmsg(&e), "model.layers.1.self_attn.v_proj.bias"), "%s", tmsg(&e));
    qfmt_reader_close(r);
    th_rmtree(dir);
}

/* Mistral's sliding window of W: each position attends to itself and the W - 1 before it, so
 * after L layers position t depends on tokens t - L(W - 1) .. t only; a session (token by
 * token, and in chunks across the window boundary) gives the full pass's logits. Shapes
 * transformers allows: head_dim 16 != d / heads, one KV head. */
Test(family, mistral_sliding_window) {
    const qfmt_family *f = qfmt_family_find("mistral", 7);
    cr_assert_not_null(f);
    qfmt_model_hparams h = small(f);
    h.kv_heads = 1, h.head_dim = 16, h.ctx = 16;
    const size_t W = 5, T = 16, V = h.vocab;
    char *base = qfmt_family_config_json(f, &h, true);
    cJSON *doc = cJSON_Parse(base);
    cr_assert_not_null(doc);
    cJSON_AddNumberToObject(doc, "sliding_window", (double)W);
    char *cfg = cJSON_Print(doc);
    cJSON_Delete(doc);
    char dir[256], path[300], full_path[300];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/m.qfmt", dir);
    snprintf(full_path, sizeof full_path, "%s/nowindow.qfmt", dir);
    write_model_cfg(path, f, &h, cfg, NULL);
    write_model_cfg(full_path, f, &h, base, NULL); /* the same weights, no window */
    free(cfg);
    free(base);
    qfmt_reader *r = NULL, *r0 = NULL;
    qfmt_model *m = NULL, *m0 = NULL;
    qfmt_error e;
    TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
    TH_OKE(qfmt_reader_open(&r0, full_path, NULL, &e), e);
    TH_OKE(qfmt_model_load(&m, r, &e), e);
    TH_OKE(qfmt_model_load(&m0, r0, &e), e);
    int32_t ids[16], ids2[16];
    for (size_t t = 0; t < T; t++) ids[t] = ids2[t] = (int32_t)((t * 7 + 3) % V);
    ids2[0] = (ids[0] + 1) % (int32_t)V;
    float *a = malloc(T * V * sizeof *a), *b = malloc(T * V * sizeof *b), *c = malloc(T * V * sizeof *c),
          *last = malloc(V * sizeof *last);
    cr_assert(a && b && c && last);
    qfmt_run_opts o = {1, true, {0}};
    TH_OKE(qfmt_model_forward(m, ids, T, a, NULL, &o, &e), e);
    TH_OKE(qfmt_model_forward(m, ids2, T, b, NULL, &o, &e), e);
    TH_OKE(qfmt_model_forward(m0, ids, T, c, NULL, &o, &e), e);
    /* the window hides nothing before position W, and something after */
    cr_assert_eq(memcmp(a, c, W * V * sizeof *a), 0, "positions < W differ from the unwindowed model");
    cr_assert_neq(memcmp(a + W * V, c + W * V, (T - W) * V * sizeof *a), 0, "the window changed nothing");
    /* token 0 reaches position L(W - 1) = 8 and no further */
    size_t reach = (size_t)h.layers * (W - 1);
    cr_assert_neq(memcmp(a + reach * V, b + reach * V, V * sizeof *a), 0, "token 0 does not reach position %zu", reach);
    cr_assert_eq(memcmp(a + (reach + 1) * V, b + (reach + 1) * V, (T - reach - 1) * V * sizeof *a), 0,
                 "token 0 is seen past position %zu", reach);
    /* incremental decoding: token by token, and chunks 3 + 4 + 9 crossing the boundary */
    static const size_t chunk_sets[2][17] = {{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}, {3, 4, 9, 0}};
    for (size_t k = 0; k < 2; k++) {
        qfmt_session *s = NULL;
        TH_OKE(qfmt_session_new(&s, m, &e), e);
        size_t pos = 0;
        for (size_t i = 0; chunk_sets[k][i]; i++) {
            TH_OKE(qfmt_session_eval(s, ids + pos, chunk_sets[k][i], last, &o, &e), e);
            pos += chunk_sets[k][i];
            for (size_t v = 0; v < V; v++)
                cr_assert_float_eq(last[v], a[(pos - 1) * V + v], 1e-5, "chunks %zu: position %zu, logit %zu", k,
                                   pos - 1, v);
        }
        qfmt_session_free(s);
    }
    free(a);
    free(b);
    free(c);
    free(last);
    qfmt_model_free(m);
    qfmt_model_free(m0);
    qfmt_reader_close(r);
    qfmt_reader_close(r0);
    th_rmtree(dir);
}

/* yarn (transformers' _compute_yarn_parameters) on head_dim 8, theta 1e4, factor 4, original
 * context 16, beta 32/1: the correction range is [0, 1] after truncation, so frequency 0 is
 * extrapolated (kept) and 1..3 interpolated (divided by 4); cos and sin scaled by
 * 0.1 ln 4 + 1. In both config layouts. */
Test(family, yarn_frequencies) {
    static const char *const cfgs[] = {
        "{\"model_type\": \"llama\", \"rope_theta\": 10000.0, \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0, "
        "\"original_max_position_embeddings\": 16}}",
        "{\"model_type\": \"llama\", \"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 10000.0, \"factor\": 4.0, "
        "\"original_max_position_embeddings\": 16, \"beta_fast\": 32.0, \"beta_slow\": 1.0}}",
    };
    char dir[256], path[300];
    th_mkdtemp(dir);
    for (size_t k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/y%zu.qfmt", dir, k);
        qfmt_error e;
        TH_OKE(meta_of(path, cfgs[k], &e), e);
        qfmt_reader *r = NULL;
        TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
        qfmt_model_hparams h = small(qfmt_family_find("llama", 5));
        h.head_dim = 8, h.ctx = 64;
        qfmt__rope rp;
        cr_assert_eq(qfmt__rope_load(r, &h, "model.", &rp, &e), 0, "%s", tmsg(&e));
        const double want[4] = {1.0, 0.1 / 4, 0.01 / 4, 0.001 / 4};
        cr_assert_eq(rp.half, 4u);
        for (size_t i = 0; i < 4; i++)
            cr_assert(fabs(rp.inv[i] - want[i]) <= 1e-6 * want[i], "layout %zu: inv[%zu] = %.9g, want %.9g", k, i,
                      rp.inv[i], want[i]);
        cr_assert(fabs(rp.scale - (0.1 * log(4.0) + 1.0)) < 1e-6, "attention factor %.9g", rp.scale);
        qfmt__rope_free(&rp);
        qfmt_reader_close(r);
    }
    th_rmtree(dir);
}

/* The string entries of an array key, joined by ",". */
static void meta_strings(const qfmt_reader *r, const char *key, char *out, size_t cap)
{
    uint64_t n = 0;
    qfmt_error e;
    TH_OKE(qfmt_meta_get_string_array(r, key, &n, &e), e);
    size_t used = 0;
    out[0] = '\0';
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        uint64_t len;
        TH_OKE(qfmt_meta_string_array_get(r, key, i, &s, &len, &e), e);
        used += (size_t)snprintf(out + used, cap - used, "%s%.*s", i ? "," : "", (int)len, s);
        cr_assert_lt(used, cap);
    }
}

static bool meta_present(const qfmt_reader *r, const char *key)
{
    uint64_t i;
    return qfmt_meta_find(r, key, &i, NULL) == QFMT_OK;
}

/* Gemma 3 in both layouts: 4.x (sliding_window_pattern, rope_local_base_freq, rope_scaling for
 * the global layers only) and 5.x (layer_types, rope_parameters nested by layer type) give the
 * same keys: per-layer types, the global RoPE under model.rope_*, the local one under
 * model.sliding_attention.rope_*. */
Test(family, gemma3_configs_in_both_layouts) {
    static const char *const cfgs[] = {
        "{\"model_type\": \"gemma3_text\", \"num_hidden_layers\": 4, \"sliding_window\": 5, "
        "\"sliding_window_pattern\": 3, \"rope_theta\": 1000000.0, \"rope_local_base_freq\": 10000.0, "
        "\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 4.0}, \"torch_dtype\": \"float32\"}",
        "{\"model_type\": \"gemma3_text\", \"num_hidden_layers\": 4, \"sliding_window\": 5, \"layer_types\": "
        "[\"sliding_attention\", \"sliding_attention\", \"full_attention\", \"sliding_attention\"], "
        "\"rope_parameters\": {\"full_attention\": {\"rope_type\": \"linear\", \"factor\": 4.0, \"rope_theta\": 1000000.0}, "
        "\"sliding_attention\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0}}, \"dtype\": \"float32\"}",
    };
    char dir[256], path[300], types[256];
    th_mkdtemp(dir);
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/g%zu.qfmt", dir, i);
        qfmt_error e;
        TH_OKE(meta_of(path, cfgs[i], &e), e);
        qfmt_reader *r = NULL;
        TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
        meta_strings(r, "model.layer_types", types, sizeof types);
        cr_assert_str_eq(types, "sliding_attention,sliding_attention,full_attention,sliding_attention", "layout %zu", i);
        cr_assert_eq(meta_f64(r, "model.rope_theta"), 1e6);
        cr_assert_eq(meta_f64(r, "model.rope_scaling.factor"), 4.0);
        cr_assert_eq(meta_f64(r, "model.sliding_attention.rope_theta"), 1e4);
        cr_assert(!meta_present(r, "model.sliding_attention.rope_scaling.factor"), "layout %zu: local RoPE scaled", i);
        /* the Gemma 3 class defaults: no soft-capping, query_pre_attn_scalar 256 */
        cr_assert(!meta_present(r, "model.attn_logit_softcapping") && !meta_present(r, "model.final_logit_softcapping"));
        cr_assert_eq(meta_f64(r, "model.query_pre_attn_scalar"), 256.0);
        uint64_t w = 0;
        TH_OKE(qfmt_meta_get_u64(r, "model.sliding_window", &w, &e), e);
        cr_assert_eq(w, 5);
        qfmt_reader_close(r);
    }
    /* without a pattern: Gemma 3's default, one global layer in six */
    snprintf(path, sizeof path, "%s/g2.qfmt", dir);
    qfmt_error e;
    TH_OKE(meta_of(path, "{\"model_type\": \"gemma3_text\", \"num_hidden_layers\": 7}", &e), e);
    qfmt_reader *r = NULL;
    TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
    meta_strings(r, "model.layer_types", types, sizeof types);
    cr_assert_str_eq(types, "sliding_attention,sliding_attention,sliding_attention,sliding_attention,"
                            "sliding_attention,full_attention,sliding_attention");
    cr_assert_eq(meta_f64(r, "model.sliding_attention.rope_theta"), 1e4); /* rope_local_base_freq's default */
    qfmt_reader_close(r);
    th_rmtree(dir);
}

/* Gemma 2's class defaults apply where config.json is silent; a null soft-cap means none. */
Test(family, gemma2_defaults_and_null_soft_caps) {
    char dir[256], path[300], types[128];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/a.qfmt", dir);
    qfmt_error e;
    TH_OKE(meta_of(path, "{\"model_type\": \"gemma2\", \"num_hidden_layers\": 3}", &e), e);
    qfmt_reader *r = NULL;
    TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
    cr_assert_eq(meta_f64(r, "model.attn_logit_softcapping"), 50.0);
    cr_assert_eq(meta_f64(r, "model.final_logit_softcapping"), 30.0);
    cr_assert_eq(meta_f64(r, "model.rope_theta"), 10000.0);
    meta_strings(r, "model.layer_types", types, sizeof types);
    cr_assert_str_eq(types, "sliding_attention,full_attention,sliding_attention");
    cr_assert(!meta_present(r, "model.sliding_attention.rope_theta"), "Gemma 2 has one RoPE");
    qfmt_reader_close(r);
    snprintf(path, sizeof path, "%s/b.qfmt", dir);
    TH_OKE(meta_of(path,
                   "{\"model_type\": \"gemma2\", \"num_hidden_layers\": 2, \"attn_logit_softcapping\": null, "
                   "\"final_logit_softcapping\": 7.5, \"query_pre_attn_scalar\": 20}",
                   &e),
           e);
    TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
    cr_assert(!meta_present(r, "model.attn_logit_softcapping"));
    cr_assert_eq(meta_f64(r, "model.final_logit_softcapping"), 7.5);
    cr_assert_eq(meta_f64(r, "model.query_pre_attn_scalar"), 20.0);
    qfmt_reader_close(r);
    th_rmtree(dir);
}

/* Phi-3's 4.x layout: partial_rotary_factor and original_max_position_embeddings at the top,
 * longrope's factor lists in rope_scaling (legacy "type"). */
Test(family, phi3_longrope_keys) {
    char dir[256], path[300];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/p.qfmt", dir);
    qfmt_error e;
    TH_OKE(meta_of(path,
                   "{\"model_type\": \"phi3\", \"rope_theta\": 10000.0, \"partial_rotary_factor\": 0.5, "
                   "\"original_max_position_embeddings\": 16, \"max_position_embeddings\": 64, \"rope_scaling\": "
                   "{\"type\": \"longrope\", \"short_factor\": [1.0, 1.5], \"long_factor\": [2.0, 4.0]}}",
                   &e),
           e);
    qfmt_reader *r = NULL;
    TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
    const char *s;
    uint64_t n = 0, u = 0;
    TH_OKE(qfmt_meta_get_string(r, "model.rope_type", &s, &n, &e), e);
    cr_assert(n == 8 && memcmp(s, "longrope", 8) == 0);
    cr_assert_eq(meta_f64(r, "model.rope_partial_rotary_factor"), 0.5);
    TH_OKE(qfmt_meta_get_u64(r, "model.original_context_length", &u, &e), e);
    cr_assert_eq(u, 16);
    double v[2] = {0};
    TH_OKE(qfmt_meta_array_copy(r, "model.rope_scaling.long_factor", QFMT_META_F64, v, 2, &e), e);
    cr_assert(v[0] == 2.0 && v[1] == 4.0);
    TH_OKE(qfmt_meta_array_copy(r, "model.rope_scaling.short_factor", QFMT_META_F64, v, 2, &e), e);
    cr_assert(v[0] == 1.0 && v[1] == 1.5);
    qfmt_reader_close(r);
    th_rmtree(dir);
}

/* What the config classes do that a plain key copy would miss: Phi3Config's default original
 * context (4096) and its "yarn"/"su" meaning longrope; Gemma's classes ignore hidden_act;
 * Gemma 3's sliding RoPE object without a base takes rope_local_base_freq's default; an
 * EmbeddingGemma config (bidirectional attention) is refused naming the key. */
Test(family, config_class_quirks) {
    char dir[256], path[300];
    th_mkdtemp(dir);
    qfmt_error e;
    qfmt_reader *r = NULL;
    const char *s;
    uint64_t n = 0, u = 0;
    static const char *const types[] = {"yarn", "su"};
    for (size_t i = 0; i < 2; i++) {
        char cfg[256];
        snprintf(cfg, sizeof cfg,
                 "{\"model_type\": \"phi3\", \"max_position_embeddings\": 8192, \"rope_scaling\": {\"type\": \"%s\", "
                 "\"short_factor\": [1.0], \"long_factor\": [2.0]}}",
                 types[i]);
        snprintf(path, sizeof path, "%s/p%zu.qfmt", dir, i);
        TH_OKE(meta_of(path, cfg, &e), e);
        TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
        TH_OKE(qfmt_meta_get_string(r, "model.rope_type", &s, &n, &e), e);
        cr_assert(n == 8 && memcmp(s, "longrope", 8) == 0, "phi3 '%s' is written as '%.*s'", types[i], (int)n, s);
        TH_OKE(qfmt_meta_get_u64(r, "model.original_context_length", &u, &e), e);
        cr_assert_eq(u, 4096, "Phi3Config's default original context");
        qfmt_reader_close(r);
    }
    /* elsewhere "yarn" is yarn */
    snprintf(path, sizeof path, "%s/l.qfmt", dir);
    TH_OKE(meta_of(path, "{\"model_type\": \"llama\", \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 2.0}}", &e), e);
    TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
    TH_OKE(qfmt_meta_get_string(r, "model.rope_type", &s, &n, &e), e);
    cr_assert(n == 4 && memcmp(s, "yarn", 4) == 0);
    cr_assert(!meta_present(r, "model.original_context_length"));
    qfmt_reader_close(r);
    /* Gemma: hidden_act is not the activation */
    snprintf(path, sizeof path, "%s/g.qfmt", dir);
    TH_OKE(meta_of(path, "{\"model_type\": \"gemma2\", \"num_hidden_layers\": 2, \"hidden_act\": \"gelu\"}", &e), e);
    TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
    cr_assert(!meta_present(r, "model.activation"), "Gemma2Config ignores hidden_act");
    qfmt_reader_close(r);
    /* Gemma 3, 5.x layout, a sliding RoPE object without rope_theta */
    snprintf(path, sizeof path, "%s/g3.qfmt", dir);
    TH_OKE(meta_of(path,
                   "{\"model_type\": \"gemma3_text\", \"num_hidden_layers\": 2, \"rope_parameters\": {\"full_attention\": "
                   "{\"rope_type\": \"default\", \"rope_theta\": 1000000.0}, \"sliding_attention\": {\"rope_type\": "
                   "\"default\"}}}",
                   &e),
           e);
    TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
    cr_assert_eq(meta_f64(r, "model.sliding_attention.rope_theta"), 1e4);
    qfmt_reader_close(r);
    /* EmbeddingGemma */
    snprintf(path, sizeof path, "%s/eg.qfmt", dir);
    cr_assert_eq(meta_of(path, "{\"model_type\": \"gemma3_text\", \"use_bidirectional_attention\": true}", &e),
                 QFMT_E_UNSUPPORTED);
    cr_assert(strstr(e.message, "use_bidirectional_attention") != NULL, "message: %s", e.message);
    th_rmtree(dir);
}
