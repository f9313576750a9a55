/*
 * gen_model_seeds.c - writes the seeds of fuzz_model (fuzz/corpus/model/): tiny models of each
 * family, made the way real ones are: a synthetic Hugging Face checkpoint (config.json from
 * qfmt_family_config_json, model.safetensors with every tensor qfmt_family_tensors lists, under
 * Hugging Face's names and shapes, written with qfmt_st_writer) converted by qfmt_convert_hf,
 * so GPT-2's files carry convert.transposed (a string array) as convert writes it. Not built by
 * CMake; from the repository root, with any build directory's static libraries:
 *
 *   cc -std=c11 -Ilibqfmt/include -Ilibqfmt_model/include fuzz/gen_model_seeds.c \
 *      build/release/lib/libqfmt_model.a build/release/lib/libqfmt.a \
 *      -lcjson -lpcre2-8 -lzstd -lm -lpthread -o /tmp/gen_model_seeds
 *   /tmp/gen_model_seeds fuzz/corpus/model
 *
 * The output is deterministic (the same bytes every run).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qfmt.h"
#include "qfmt_model.h"

#define DIE(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), exit(1))

typedef struct {
    qfmt_st_tensor_desc d[512];
    char names[512][128];
    size_t n;
    uint64_t bytes;
} tlist;

static bool collect(void *ctx, const qfmt_family_tensor *t)
{
    tlist *l = ctx;
    if (l->n == 512) DIE("too many tensors");
    qfmt_st_tensor_desc init = QFMT_ST_TENSOR_DESC_INIT;
    qfmt_st_tensor_desc *d = &l->d[l->n];
    *d = init;
    snprintf(l->names[l->n], sizeof l->names[0], "%s", t->name);
    d->name = l->names[l->n];
    d->type = QFMT_TYPE_F32;
    d->ndim = t->ndim;
    d->dims[0] = t->dims[0];
    d->dims[1] = t->ndim > 1 ? t->dims[1] : 0;
    l->bytes += 4 * t->dims[0] * (t->ndim > 1 ? t->dims[1] : 1);
    l->n++;
    return true;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) DIE("cannot write %s", path);
}

static void one(const char *outdir, const char *name, const char *family, qfmt_model_hparams h,
                uint32_t target)
{
    const qfmt_family *f = qfmt_family_find(family, strlen(family));
    if (!f) DIE("no family %s", family);
    h.family = f;
    h.rope_freq_type = QFMT_TYPE_F32;
    char dir[] = "/tmp/qfmt-model-seed-XXXXXX";
    if (!mkdtemp(dir)) DIE("mkdtemp");
    char path[512], st[512], out[512];
    char *cfg = qfmt_family_config_json(f, &h, false);
    if (!cfg) DIE("config");
    snprintf(path, sizeof path, "%s/config.json", dir);
    put(path, cfg);
    free(cfg);

    static tlist l;
    memset(&l, 0, sizeof l);
    qfmt_error e;
    if (qfmt_family_tensors(f, &h, collect, &l, &e) != QFMT_OK) DIE("tensors: %s", e.message);
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    qfmt_st_writer *w = NULL;
    if (qfmt_st_writer_begin(&w, st, l.d, l.n, NULL, &e) != QFMT_OK) DIE("begin: %s", e.message);
    uint64_t nf = l.bytes / 4;
    float *v = malloc(l.bytes);
    uint64_t s = 7;
    for (uint64_t i = 0; i < nf; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (float)((int)(s >> 59) - 16) / 64.0f;
    }
    if (qfmt_st_writer_write(w, v, l.bytes, &e) != QFMT_OK || qfmt_st_writer_commit(w, &e) != QFMT_OK)
        DIE("write: %s", e.message);
    qfmt_st_writer_free(w);
    free(v);

    snprintf(out, sizeof out, "%s/%s", outdir, name);
    qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
    o.type = target;
    if (qfmt_convert_hf(dir, out, &o, NULL, &e) != QFMT_OK) {
        char buf[800];
        DIE("convert %s: %s", name, qfmt_error_format(&e, buf, sizeof buf));
    }
    unlink(st);
    unlink(path);
    rmdir(dir);
    struct stat sb;
    stat(out, &sb);
    printf("%s: %lld bytes, %zu tensors\n", out, (long long)sb.st_size, l.n);
}

int main(int argc, char **argv)
{
    if (argc != 2) DIE("usage: gen_model_seeds <dir>");
    qfmt_model_hparams h;
    /* vocab, d, layers, heads, kv_heads, head_dim, ffn, ctx, type_vocab */
    memset(&h, 0, sizeof h);
    h.vocab = 8, h.d = 8, h.layers = 1, h.heads = 2, h.kv_heads = 2, h.head_dim = 4, h.ffn = 16,
    h.ctx = 4, h.eps = 1e-5, h.rope_theta = 10000;
    one(argv[1], "gpt2_tiny.qfmt", "gpt2", h, QFMT_TYPE_F32);
    h.layers = 2, h.ctx = 2;
    one(argv[1], "gpt2_2layers_f16.qfmt", "gpt2", h, QFMT_TYPE_F16);
    h.layers = 1, h.ctx = 4, h.kv_heads = 1;
    one(argv[1], "llama_tiny_gqa.qfmt", "llama", h, QFMT_TYPE_F32);
    h.kv_heads = 2, h.d = 32, h.heads = 2, h.head_dim = 16, h.ffn = 32, h.ctx = 2;
    one(argv[1], "llama_q8_0.qfmt", "llama", h, QFMT_TYPE_Q8_0);
    h.d = 8, h.head_dim = 4, h.ffn = 16, h.ctx = 4, h.type_vocab = 2;
    one(argv[1], "bert_tiny.qfmt", "bert", h, QFMT_TYPE_F32);
    /* the llama-like families: q/k norms and a head_dim of its own (qwen3), q/k/v biases (qwen2) */
    h.type_vocab = 0, h.head_dim = 8, h.kv_heads = 1;
    one(argv[1], "qwen3_tiny.qfmt", "qwen3", h, QFMT_TYPE_F32);
    h.head_dim = 4, h.kv_heads = 2;
    one(argv[1], "qwen2_tiny.qfmt", "qwen2", h, QFMT_TYPE_F32);
    one(argv[1], "mistral_tiny.qfmt", "mistral", h, QFMT_TYPE_F32);
    /* many Conv1D weights: convert.transposed holds 4 entries per layer (64) */
    memset(&h, 0, sizeof h);
    h.vocab = 4, h.d = 2, h.layers = 16, h.heads = 1, h.kv_heads = 1, h.head_dim = 2, h.ffn = 2,
    h.ctx = 2, h.eps = 1e-5;
    one(argv[1], "gpt2_16layers_transposed.qfmt", "gpt2", h, QFMT_TYPE_F32);
    return 0;
}
