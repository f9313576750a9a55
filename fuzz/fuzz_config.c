/*
 * fuzz_config.c - libFuzzer target for a model's configuration on its way from config.json to
 * the runtime: the hyperparameters `qfmt convert` reads from a Hugging Face config.json and
 * writes as model.* metadata, and the runtime's reading and validation of them
 * (runtime/model.c: read_hparams, reached through qfmt_model_load).
 *
 * Input: a config.json text. It is parsed as the converter parses it (cJSON, a JSON object,
 * bytes after it ignored), and mapped to metadata under the same key aliases as
 * put_model_keys in tools/cmd_convert.c (vocab_size, hidden_size / n_embd / d_model, ...).
 * Members whose name starts with "model." or "general." are also written as they are (an
 * integral number as u64, or i64 when negative; another number as f64; string, bool, array of
 * strings), so that the fuzzer reaches values of the wrong metadata type too. The metadata is
 * written with the library's writer to a scratch file (in /dev/shm when there is one), read
 * back into memory, opened with qfmt_reader_open_memory, and qfmt_model_load run on it. When
 * the hyperparameters describe a small model (every size at most 64, at most 2 layers), the
 * file is written again with every weight the runtime loads for the architecture (f32, f16
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
#include "model.h"
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

/* ---- config.json -> metadata, as qfmt convert maps it ---------------------------------- */

/* hf_config_u64: an integral JSON number in [0, 2^53]. */
static bool cfg_u64(const cJSON *cfg, const char *const *keys, uint64_t *out)
{
    for (; *keys; keys++) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, *keys);
        if (cJSON_IsNumber(j) && j->valuedouble >= 0 && j->valuedouble <= 9007199254740992.0 &&
            floor(j->valuedouble) == j->valuedouble) {
            *out = (uint64_t)j->valuedouble;
            return true;
        }
    }
    return false;
}

static bool cfg_f64(const cJSON *cfg, const char *const *keys, double *out)
{
    for (; *keys; keys++) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, *keys);
        if (cJSON_IsNumber(j)) {
            *out = j->valuedouble;
            return true;
        }
    }
    return false;
}

static const char *cfg_str(const cJSON *cfg, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

#define KEYS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Failures to set a value (a duplicate key, invalid UTF-8) are ignored: the entry is left out. */
static void put_model_keys(qfmt_writer *w, const cJSON *cfg)
{
    const char *mt = cfg_str(cfg, "model_type");
    const char *arch = mt ? mt : "unknown";
    qfmt_writer_set_string(w, "general.architecture", arch, strlen(arch), NULL);
    uint64_t u, hidden = 0, heads = 0;
    double f;
    if (cfg_u64(cfg, KEYS("vocab_size"), &u))
        qfmt_writer_set_u64(w, "model.vocab_size", u, NULL);
    if (cfg_u64(cfg, KEYS("hidden_size", "n_embd", "d_model"), &hidden))
        qfmt_writer_set_u64(w, "model.hidden_size", hidden, NULL);
    if (cfg_u64(cfg, KEYS("num_hidden_layers", "n_layer"), &u))
        qfmt_writer_set_u64(w, "model.num_layers", u, NULL);
    if (cfg_u64(cfg, KEYS("num_attention_heads", "n_head"), &heads))
        qfmt_writer_set_u64(w, "model.num_heads", heads, NULL);
    if (cfg_u64(cfg, KEYS("num_key_value_heads"), &u))
        qfmt_writer_set_u64(w, "model.num_kv_heads", u, NULL);
    else if (heads)
        qfmt_writer_set_u64(w, "model.num_kv_heads", heads, NULL);
    if (cfg_u64(cfg, KEYS("head_dim"), &u))
        qfmt_writer_set_u64(w, "model.head_dim", u, NULL);
    else if (heads && hidden && hidden % heads == 0)
        qfmt_writer_set_u64(w, "model.head_dim", hidden / heads, NULL);
    if (cfg_u64(cfg, KEYS("intermediate_size", "n_inner"), &u))
        qfmt_writer_set_u64(w, "model.ffn_size", u, NULL);
    else if (mt && strcmp(mt, "gpt2") == 0 && hidden && hidden <= UINT64_MAX / 4)
        qfmt_writer_set_u64(w, "model.ffn_size", 4 * hidden, NULL);
    if (cfg_u64(cfg, KEYS("max_position_embeddings", "n_positions", "n_ctx"), &u))
        qfmt_writer_set_u64(w, "model.context_length", u, NULL);
    if (cfg_u64(cfg, KEYS("type_vocab_size"), &u))
        qfmt_writer_set_u64(w, "model.type_vocab_size", u, NULL);
    if (cfg_f64(cfg, KEYS("rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps"), &f))
        qfmt_writer_set_f64(w, "model.norm_eps", f, NULL);
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(cfg, "rope_parameters");
    if (!cJSON_IsObject(rp))
        rp = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    const cJSON *rt = cJSON_IsObject(rp) ? cJSON_GetObjectItemCaseSensitive(rp, "rope_theta") : NULL;
    const cJSON *ty = cJSON_IsObject(rp) ? cJSON_GetObjectItemCaseSensitive(rp, "rope_type") : NULL;
    if (!cJSON_IsString(ty) && cJSON_IsObject(rp))
        ty = cJSON_GetObjectItemCaseSensitive(rp, "type");
    if (cfg_f64(cfg, KEYS("rope_theta"), &f))
        qfmt_writer_set_f64(w, "model.rope_theta", f, NULL);
    else if (cJSON_IsNumber(rt))
        qfmt_writer_set_f64(w, "model.rope_theta", rt->valuedouble, NULL);
    if (cJSON_IsString(ty))
        qfmt_writer_set_string(w, "model.rope_type", ty->valuestring, strlen(ty->valuestring), NULL);
    else if (mt && strcmp(mt, "llama") == 0)
        qfmt_writer_set_string(w, "model.rope_type", "default", 7, NULL);
    const char *dt = cfg_str(cfg, "dtype");
    if (!dt)
        dt = cfg_str(cfg, "torch_dtype");
    if (dt)
        qfmt_writer_set_string(w, "model.dtype", dt, strlen(dt), NULL);
}

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
    int arch; /* 0 gpt2, 1 llama, 2 bert, -1 other */
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
    p->arch = -1;
    if (qfmt_meta_get_string(r, "general.architecture", &a, &al, NULL) == QFMT_OK) {
        if (al == 4 && memcmp(a, "gpt2", 4) == 0)
            p->arch = 0;
        else if (al == 5 && memcmp(a, "llama", 5) == 0)
            p->arch = 1;
        else if (al == 4 && memcmp(a, "bert", 4) == 0)
            p->arch = 2;
    }
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
    return p->arch >= 0 && p->vocab && p->vocab <= lim && p->d && p->d <= lim && p->layers &&
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

#define T2(c, rows, cols, ...)                                                                 \
    do {                                                                                       \
        snprintf(nm, sizeof nm, __VA_ARGS__);                                                  \
        tensor(c, nm, rows, cols, 2);                                                          \
    } while (0)
#define T1(c, len, ...)                                                                        \
    do {                                                                                       \
        snprintf(nm, sizeof nm, __VA_ARGS__);                                                  \
        tensor(c, nm, len, 0, 1);                                                              \
    } while (0)

static void conv1d(wctx *c, const char *name)
{
    if (c->ntransposed < sizeof c->transposed / sizeof c->transposed[0])
        snprintf(c->transposed[c->ntransposed++], sizeof c->transposed[0], "%.*s",
                 (int)sizeof c->transposed[0] - 1, name);
}

/* Every weight the runtime loads for the architecture, in the shapes it expects. */
static void add_weights(wctx *c, const shape_params *p)
{
    char nm[128];
    uint64_t d = p->d, f = p->ffn, qd = p->heads * p->head_dim, kvd = p->kv_heads * p->head_dim;
    for (uint64_t i = 0; i < p->layers; i++) {
        unsigned long long l = (unsigned long long)i;
        switch (p->arch) {
        case 0: /* Conv1D weights written [out, in] and listed in convert.transposed, as
                 * convert writes them (a Conv1D weight stored [in, out] crashes the loader:
                 * see fuzz/README.md, "Findings") */
            T1(c, d, "transformer.h.%llu.ln_1.weight", l);
            T1(c, d, "transformer.h.%llu.ln_1.bias", l);
            T1(c, d, "transformer.h.%llu.ln_2.weight", l);
            T1(c, d, "transformer.h.%llu.ln_2.bias", l);
            T2(c, 3 * d, d, "transformer.h.%llu.attn.c_attn.weight", l);
            conv1d(c, nm);
            T1(c, 3 * d, "transformer.h.%llu.attn.c_attn.bias", l);
            T2(c, d, d, "transformer.h.%llu.attn.c_proj.weight", l);
            conv1d(c, nm);
            T1(c, d, "transformer.h.%llu.attn.c_proj.bias", l);
            T2(c, f, d, "transformer.h.%llu.mlp.c_fc.weight", l);
            conv1d(c, nm);
            T1(c, f, "transformer.h.%llu.mlp.c_fc.bias", l);
            T2(c, d, f, "transformer.h.%llu.mlp.c_proj.weight", l);
            conv1d(c, nm);
            T1(c, d, "transformer.h.%llu.mlp.c_proj.bias", l);
            break;
        case 1:
            T1(c, d, "model.layers.%llu.input_layernorm.weight", l);
            T1(c, d, "model.layers.%llu.post_attention_layernorm.weight", l);
            T2(c, qd, d, "model.layers.%llu.self_attn.q_proj.weight", l);
            T2(c, kvd, d, "model.layers.%llu.self_attn.k_proj.weight", l);
            T2(c, kvd, d, "model.layers.%llu.self_attn.v_proj.weight", l);
            T2(c, d, qd, "model.layers.%llu.self_attn.o_proj.weight", l);
            T2(c, f, d, "model.layers.%llu.mlp.gate_proj.weight", l);
            T2(c, f, d, "model.layers.%llu.mlp.up_proj.weight", l);
            T2(c, d, f, "model.layers.%llu.mlp.down_proj.weight", l);
            break;
        default:
            T2(c, d, d, "bert.encoder.layer.%llu.attention.self.query.weight", l);
            T1(c, d, "bert.encoder.layer.%llu.attention.self.query.bias", l);
            T2(c, d, d, "bert.encoder.layer.%llu.attention.self.key.weight", l);
            T1(c, d, "bert.encoder.layer.%llu.attention.self.key.bias", l);
            T2(c, d, d, "bert.encoder.layer.%llu.attention.self.value.weight", l);
            T1(c, d, "bert.encoder.layer.%llu.attention.self.value.bias", l);
            T2(c, d, d, "bert.encoder.layer.%llu.attention.output.dense.weight", l);
            T1(c, d, "bert.encoder.layer.%llu.attention.output.dense.bias", l);
            T2(c, f, d, "bert.encoder.layer.%llu.intermediate.dense.weight", l);
            T1(c, f, "bert.encoder.layer.%llu.intermediate.dense.bias", l);
            T2(c, d, f, "bert.encoder.layer.%llu.output.dense.weight", l);
            T1(c, d, "bert.encoder.layer.%llu.output.dense.bias", l);
            T1(c, d, "bert.encoder.layer.%llu.attention.output.LayerNorm.weight", l);
            T1(c, d, "bert.encoder.layer.%llu.attention.output.LayerNorm.bias", l);
            T1(c, d, "bert.encoder.layer.%llu.output.LayerNorm.weight", l);
            T1(c, d, "bert.encoder.layer.%llu.output.LayerNorm.bias", l);
            break;
        }
    }
    switch (p->arch) {
    case 0:
        T2(c, p->vocab, d, "transformer.wte.weight");
        T2(c, p->ctx, d, "transformer.wpe.weight");
        T1(c, d, "transformer.ln_f.weight");
        T1(c, d, "transformer.ln_f.bias");
        break;
    case 1:
        T2(c, p->vocab, d, "model.embed_tokens.weight");
        T1(c, d, "model.norm.weight");
        break;
    default:
        T2(c, p->vocab, d, "bert.embeddings.word_embeddings.weight");
        T2(c, p->ctx, d, "bert.embeddings.position_embeddings.weight");
        T2(c, p->type_vocab, d, "bert.embeddings.token_type_embeddings.weight");
        T1(c, d, "bert.embeddings.LayerNorm.weight");
        T1(c, d, "bert.embeddings.LayerNorm.bias");
        T2(c, d, d, "cls.predictions.transform.dense.weight");
        T1(c, d, "cls.predictions.transform.dense.bias");
        T1(c, d, "cls.predictions.transform.LayerNorm.weight");
        T1(c, d, "cls.predictions.transform.LayerNorm.bias");
        T1(c, p->vocab, "cls.predictions.bias");
        break;
    }
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
    char msg[256];
    for (int exact = 0; exact <= 1; exact++) {
        qfmt_run_opts o = {1, exact != 0};
        if (qfmt_model_forward(m, ids, T, logits, NULL, &o, msg, sizeof msg) == 0) {
            volatile float acc = 0;
            for (size_t i = 0; i < T * h->vocab; i++)
                acc += logits[i];
            (void)acc;
        }
    }
    int32_t bad = (int32_t)h->vocab; /* out of range: refused */
    qfmt_run_opts o = {1, true};
    CHECK(qfmt_model_forward(m, &bad, 1, logits, NULL, &o, msg, sizeof msg) != 0);
    if (h->causal) {
        qfmt_session *s = NULL;
        if (qfmt_session_new(&s, m, msg, sizeof msg) == 0) {
            for (size_t i = 0; i < T; i++)
                if (qfmt_session_eval(s, &ids[i], 1, logits, &o, msg, sizeof msg) != 0)
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
    put_model_keys(w, cfg);
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
    const char *end = NULL;
    cJSON *cfg = cJSON_ParseWithLengthOpts(text, size, &end, 0);
    if (cfg == NULL || !cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        free(text);
        return 0;
    }
    size_t text_len = end ? (size_t)(end - text) : 0;

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
    char msg[512];
    msg[0] = '\0';
    int rc = qfmt_model_load(&m, r, msg, sizeof msg);
    if (rc != 0) {
        CHECK(m == NULL);
        CHECK(memchr(msg, '\0', sizeof msg) != NULL && msg[0] != '\0');
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
