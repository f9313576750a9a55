/*
 * fuzz_config.c - libFuzzer target for a model's configuration on its way from config.json to
 * the runtime: the hyperparameters `qfmt convert` reads from a Hugging Face config.json and
 * writes as model.* metadata, and the runtime's reading and validation of them
 * (libqfmt_model/src/model.c: read_hparams, reached through qfmt_model_load).
 *
 * Input: a config.json text. It goes through the project's JSON policy (qfmt_json_check) as
 * convert's does: a refused text must be refused by the family mapping too, an accepted one
 * must parse with cJSON; a JSON object is then mapped to metadata by the library function convert uses,
 * qfmt_family_config_to_meta (each family's keys: libqfmt_model/src/families/).
 * Members whose name starts with "model." or "general." are also written as they are (an
 * integral number as u64, or i64 when negative; another number as f64; string, bool, array of
 * strings), so that the fuzzer reaches values of the wrong metadata type too. The metadata is
 * written with the library's writer to a scratch file (in /dev/shm when there is one), read
 * back into memory, opened with qfmt_reader_open_memory, and qfmt_model_load run on it. When
 * the hyperparameters describe a small model (every size at most 64, at most 2 layers), the
 * file is written again with every weight the runtime loads for the family, from the
 * family's own table (qfmt_family_tensors) (f32, f16
 * or bf16, small deterministic values), and a model that loads is run: two tokens through the
 * exact and the fast forward pass and, for causal models, two incremental steps. Otherwise a
 * load must fail with a message. Whatever the values (0, 2^64 - 1, huge or tiny doubles,
 * wrong metadata types), loading and running must never crash, overflow, convert a double
 * out of float range or allocate without bound: read_hparams is the gate.
 *
 * Build: with clang and -DQFMT_FUZZ=ON (libFuzzer), or with any compiler linked with
 * regression_driver.c to replay a corpus. See fuzz/README.md.
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qfmt.h"
#include "qfmt_model.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* The scratch file the writer writes: in /dev/shm when there is one (no disk I/O), one per
 * process (libFuzzer's -jobs run several). Removed after each input. */
static const char *scratch_path(void)
{
    static char path[256];
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/qfmt-fuzz-config-%ld.qfmt", dir ? dir : "/tmp",
                 (long)getpid());
    }
    return path;
}

/* The whole file, in an exactly-sized heap block (so ASan sees any overread by the reader). */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    CHECK(n > 0 && fseek(f, 0, SEEK_SET) == 0);
    uint8_t *buf = malloc((size_t)n);
    CHECK(buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* ---- config.json -> metadata: qfmt_family_config_to_meta, as qfmt convert maps it ------- */

/* Members named model.* / general.* written as they are, typed by their JSON value. */
static void put_raw_keys(qfmt_writer *w, const cJSON *cfg)
{
    for (const cJSON *it = cfg->child; it; it = it->next) {
        const char *k = it->string;
        if (k == NULL || (strncmp(k, "model.", 6) != 0 && strncmp(k, "general.", 8) != 0))
            continue;
        if (cJSON_IsNumber(it)) {
            double d = it->valuedouble;
            if (floor(d) == d && d >= 0 && d < 18446744073709551616.0)
                qfmt_writer_set_u64(w, k, (uint64_t)d, NULL);
            else if (floor(d) == d && d < 0 && d >= -9223372036854775808.0)
                qfmt_writer_set_i64(w, k, (int64_t)d, NULL);
            else
                qfmt_writer_set_f64(w, k, d, NULL);
        } else if (cJSON_IsString(it)) {
            qfmt_writer_set_string(w, k, it->valuestring, strlen(it->valuestring), NULL);
        } else if (cJSON_IsBool(it)) {
            qfmt_writer_set_bool(w, k, cJSON_IsTrue(it), NULL);
        } else if (cJSON_IsArray(it)) {
            const char *strs[16];
            uint64_t n = 0;
            for (const cJSON *a = it->child; a && n < 16; a = a->next)
                if (cJSON_IsString(a))
                    strs[n++] = a->valuestring;
            qfmt_writer_set_string_array(w, k, strs, NULL, n, NULL);
        }
    }
}

/* ---- Weights for small models --------------------------------------------------------- */

/* The sizes the metadata gives (as read_hparams reads them when they are u64; 0 when absent
 * or of another type), with read_hparams' defaults for head_dim and num_kv_heads. */
typedef struct {
    uint64_t vocab, d, layers, heads, kv_heads, head_dim, ffn, ctx, type_vocab;
    const qfmt_family *family; /* NULL: not one the runtime knows */
} shape_params;

static uint64_t meta_u64_or0(const qfmt_reader *r, const char *key)
{
    uint64_t v = 0;
    if (qfmt_meta_get_u64(r, key, &v, NULL) != QFMT_OK)
        return 0;
    return v;
}

static bool read_shape(const qfmt_reader *r, shape_params *p)
{
    const char *a;
    uint64_t al;
    p->family = NULL;
    if (qfmt_meta_get_string(r, "general.architecture", &a, &al, NULL) == QFMT_OK)
        p->family = qfmt_family_find(a, (size_t)al);
    p->vocab = meta_u64_or0(r, "model.vocab_size");
    p->d = meta_u64_or0(r, "model.hidden_size");
    p->layers = meta_u64_or0(r, "model.num_layers");
    p->heads = meta_u64_or0(r, "model.num_heads");
    p->kv_heads = meta_u64_or0(r, "model.num_kv_heads");
    p->head_dim = meta_u64_or0(r, "model.head_dim");
    p->ffn = meta_u64_or0(r, "model.ffn_size");
    p->ctx = meta_u64_or0(r, "model.context_length");
    p->type_vocab = meta_u64_or0(r, "model.type_vocab_size");
    if (p->head_dim == 0 && p->heads && p->d)
        p->head_dim = p->d / p->heads;
    if (p->kv_heads == 0)
        p->kv_heads = p->heads;
    /* small enough to build and run in a fuzz iteration */
    const uint64_t lim = 64;
    return p->family != NULL && p->vocab && p->vocab <= lim && p->d && p->d <= lim && p->layers &&
           p->layers <= 2 && p->heads && p->heads <= lim && p->kv_heads <= lim &&
           p->head_dim <= lim && p->ffn && p->ffn <= lim && p->ctx && p->ctx <= lim &&
           p->type_vocab <= lim;
}

typedef struct {
    qfmt_writer *w;
    uint32_t type; /* F32, F16 or BF16, from the input */
    uint64_t seed;
    bool ok;
    char transposed[8][96]; /* GPT-2 Conv1D weights written [out, in] */
    size_t ntransposed;
} wctx;

/* A tensor of small deterministic values (or 0 elements when a dimension is 0). */
static void tensor(wctx *c, const char *name, uint64_t d0, uint64_t d1, uint32_t ndim)
{
    if (!c->ok)
        return;
    uint64_t n = ndim == 1 ? d0 : d0 * d1;
    size_t es = c->type == QFMT_TYPE_F32 ? 4 : 2;
    float *f = malloc((n ? n : 1) * sizeof *f);
    uint8_t *b = malloc((n ? n : 1) * es);
    CHECK(f != NULL && b != NULL);
    for (uint64_t i = 0; i < n; i++) {
        c->seed = c->seed * 6364136223846793005ull + 1442695040888963407ull;
        f[i] = (float)((int)(c->seed >> 59) - 16) / 64.0f;
    }
    CHECK(qfmt_convert_floats(QFMT_TYPE_F32, f, c->type, b, (size_t)n) == QFMT_OK);
    qfmt_tensor_desc desc = {.name = name, .type = c->type, .ndim = ndim, .dims = {d0, d1}, .codec = QFMT_CODEC_NONE};
    qfmt_error e;
    if (qfmt_writer_add_tensor(c->w, &desc, b, n * es, &e) != QFMT_OK)
        c->ok = false;
    free(f);
    free(b);
}

static void conv1d(wctx *c, const char *name)
{
    if (c->ntransposed < sizeof c->transposed / sizeof c->transposed[0])
        snprintf(c->transposed[c->ntransposed++], sizeof c->transposed[0], "%.*s",
                 (int)sizeof c->transposed[0] - 1, name);
}

/* One tensor of the family's table: required ones only. Conv1D weights are written [out, in]
 * and listed in convert.transposed, as convert writes them (a Conv1D weight stored [in, out]
 * crashed the loader: see fuzz/README.md, "Findings"). */
static bool add_one(void *ctx, const qfmt_family_tensor *t)
{
    wctx *c = ctx;
    if (t->optional)
        return true;
    if (t->conv1d) {
        tensor(c, t->name, t->dims[1], t->dims[0], 2);
        conv1d(c, t->name);
    } else {
        tensor(c, t->name, t->dims[0], t->dims[1], t->ndim);
    }
    return true;
}

/* Every weight the runtime loads for the family, in the shapes it expects (the family's
 * table: libqfmt_model/src/families/). */
static void add_weights(wctx *c, const shape_params *p)
{
    qfmt_model_hparams h;
    memset(&h, 0, sizeof h);
    h.family = p->family;
    h.vocab = p->vocab, h.d = p->d, h.layers = p->layers, h.heads = p->heads, h.kv_heads = p->kv_heads;
    h.head_dim = p->head_dim, h.ffn = p->ffn, h.ctx = p->ctx, h.type_vocab = p->type_vocab;
    CHECK(qfmt_family_tensors(p->family, &h, add_one, c, NULL) == QFMT_OK);
}

/* A loaded model runs: two tokens through the exact and the fast path, and (causal models)
 * two incremental steps. Outputs are read in full (ASan sees any short buffer). */
static void run_model(qfmt_model *m)
{
    const qfmt_model_hparams *h = qfmt_model_hparams_get(m);
    int32_t ids[2] = {0, (int32_t)(h->vocab - 1)};
    size_t T = h->ctx < 2 ? (size_t)h->ctx : 2;
    float *logits = malloc(T * h->vocab * sizeof *logits);
    CHECK(logits != NULL);
    qfmt_error err = {0};
    for (int exact = 0; exact <= 1; exact++) {
        qfmt_run_opts o = {1, exact != 0, {0}};
        if (qfmt_model_forward(m, ids, T, logits, NULL, &o, &err) == 0) {
            volatile float acc = 0;
            for (size_t i = 0; i < T * h->vocab; i++)
                acc += logits[i];
            (void)acc;
        }
    }
    int32_t bad = (int32_t)h->vocab; /* out of range: refused */
    qfmt_run_opts o = {1, true, {0}};
    CHECK(qfmt_model_forward(m, &bad, 1, logits, NULL, &o, &err) != 0);
    if (h->causal) {
        qfmt_session *s = NULL;
        if (qfmt_session_new(&s, m, &err) == 0) {
            for (size_t i = 0; i < T; i++)
                if (qfmt_session_eval(s, &ids[i], 1, logits, &o, &err) != 0)
                    break;
            qfmt_session_free(s);
        }
    }
    free(logits);
}

static void check_hparams(const qfmt_model_hparams *h)
{
    CHECK(h->vocab >= 1 && h->vocab <= (1u << 24));
    CHECK(h->d >= 1 && h->d <= (1u << 24));
    CHECK(h->layers >= 1 && h->layers <= 4096);
    CHECK(h->heads >= 1 && h->kv_heads >= 1 && h->heads % h->kv_heads == 0);
    CHECK(h->head_dim >= 2 && h->head_dim % 2 == 0);
    CHECK(h->ffn >= 1 && h->ctx >= 1);
    CHECK(h->arch != QFMT_ARCH_BERT || (h->type_vocab >= 1 && h->type_vocab <= (1u << 24)));
    /* the KV cache of a session (layers x ctx x kv_heads x head_dim floats) has a size that
     * fits a size_t with room to spare */
    CHECK(h->layers * h->ctx <= (1ull << 36) / (h->kv_heads * h->head_dim));
}

/* The qfmt file convert would write for this config (no tensors), or, given `p`, the same with
 * every weight the runtime needs. Returned in an exactly-sized heap block. */
static uint8_t *build(const cJSON *cfg, const char *text, size_t text_len, const shape_params *p,
                      uint32_t wtype, size_t *len)
{
    const char *path = scratch_path();
    const qfmt_write_opts wo = {.no_fsync = true};
    qfmt_writer *w = NULL;
    qfmt_error e;
    CHECK(qfmt_writer_create(&w, path, &wo, &e) == QFMT_OK);
    qfmt_family_config_to_meta(w, text, text_len, NULL); /* as convert maps it */
    put_raw_keys(w, cfg);
    qfmt_writer_set_string(w, "hf.config.json", text, text_len, NULL);
    qfmt_writer_set_string(w, "tokenizer.huggingface.json", "{}", 2, NULL);
    if (p != NULL) {
        wctx c = {w, wtype, 42, true, {{0}}, 0};
        add_weights(&c, p);
        const char *names[8];
        for (size_t i = 0; i < c.ntransposed; i++)
            names[i] = c.transposed[i];
        if (c.ntransposed > 0)
            qfmt_writer_set_string_array(w, "convert.transposed", names, NULL, c.ntransposed,
                                         NULL);
    }
    CHECK(qfmt_writer_finish(w, &e) == QFMT_OK);
    qfmt_writer_free(w);
    uint8_t *file = slurp(path, len);
    unlink(path);
    return file;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1); /* exactly sized: ASan sees any overread */
    if (text == NULL)
        return 0;
    if (size > 0)
        memcpy(text, data, size);
    /* The one JSON policy, as convert applies it: what it refuses never reaches cJSON, and
     * the family mapping refuses it too; what it accepts, cJSON must parse whole. */
    qfmt_error je;
    if (qfmt_json_check(text, size, 0, "config.json", &je) != QFMT_OK) {
        CHECK(je.code == QFMT_E_CORRUPT || je.code == QFMT_E_NOMEM);
        CHECK(je.code != QFMT_E_CORRUPT || je.offset == QFMT_NO_OFFSET || je.offset <= size);
        CHECK(strcmp(je.path, "config.json") == 0 && je.message[0] != '\0');
        CHECK(qfmt_family_config_to_meta(NULL, text, size, NULL) == je.code);
        free(text);
        return 0;
    }
    const char *end = NULL;
    cJSON *cfg = cJSON_ParseWithLengthOpts(text, size, &end, 0);
    CHECK(cfg != NULL);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        free(text);
        return 0;
    }
    size_t text_len = size;

    size_t flen;
    uint8_t *file = build(cfg, text, text_len, NULL, 0, &flen);
    qfmt_reader *r = NULL;
    qfmt_error e;
    CHECK(qfmt_reader_open_memory(&r, file, flen, NULL, &e) == QFMT_OK);
    shape_params sp;
    if (read_shape(r, &sp)) { /* small: again, with weights */
        static const uint32_t wtypes[] = {QFMT_TYPE_F32, QFMT_TYPE_F16, QFMT_TYPE_BF16};
        qfmt_reader_close(r);
        free(file);
        file = build(cfg, text, text_len, &sp, wtypes[size % 3], &flen);
        CHECK(qfmt_reader_open_memory(&r, file, flen, NULL, &e) == QFMT_OK);
    }
    cJSON_Delete(cfg);

    qfmt_model *m = (qfmt_model *)(void *)&flen;
    qfmt_error err = {0};
    char msg[1024];
    int rc = qfmt_model_load(&m, r, &err);
    if (rc != 0) {
        CHECK(m == NULL);
        CHECK(err.code != QFMT_OK && qfmt_error_format(&err, msg, sizeof msg)[0] != '\0' && memchr(msg, 0x1b, strlen(msg)) == NULL);
    } else {
        check_hparams(qfmt_model_hparams_get(m));
        run_model(m);
        qfmt_model_free(m);
    }
    qfmt_reader_close(r);
    free(file);
    free(text);
    return 0;
}
