/*
 * test_family.c - the model-family tables of libqfmt_model (libqfmt_model/src/families/):
 * for every family, a config.json made from hyperparameters maps back to the same model.*
 * metadata, a file holding exactly the family's required tensors loads and runs, a file
 * missing any one of them is refused naming it, and convert's tensor roles come from the table.
 */
#include "test_helpers.h"

#include <stdlib.h>
#include <string.h>

#include "qfmt_model.h"

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

/* Writes the family's config (through config.json) and required tensors to path. */
static size_t write_model(const char *path, const qfmt_family *f, const char *skip)
{
    qfmt_model_hparams h = small(f);
    char *cfg = qfmt_family_config_json(f, &h, true);
    cr_assert_not_null(cfg);
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
    free(cfg);
    return c.nrequired;
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
