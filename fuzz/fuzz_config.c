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
 * back into memory and opened with qfmt_reader_open_memory, and qfmt_model_load run on it. The file
 * holds no tensors: a load must fail with a message, after validating the hyperparameters
 * (and allocating per-layer state for at most the limits it accepts); it must never crash,
 * overflow or allocate without bound.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz_config: %s:%d: check failed: %s\n", __FILE__, __LINE__,     \
                    #cond);                                                                    \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

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

static void check_hparams(const qfmt_model_hparams *h)
{
    CHECK(h->vocab >= 1 && h->vocab <= (1u << 24));
    CHECK(h->d >= 1 && h->d <= (1u << 24));
    CHECK(h->layers >= 1 && h->layers <= 4096);
    CHECK(h->heads >= 1 && h->kv_heads >= 1 && h->heads % h->kv_heads == 0);
    CHECK(h->head_dim >= 2 && h->head_dim % 2 == 0);
    CHECK(h->ffn >= 1 && h->ctx >= 1);
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

    const char *path = scratch_path();
    const qfmt_write_opts wo = {NULL, 0, true};
    qfmt_writer *w = NULL;
    qfmt_error e;
    CHECK(qfmt_writer_create(&w, path, &wo, &e) == QFMT_OK);
    put_model_keys(w, cfg);
    put_raw_keys(w, cfg);
    const char *tok = "{}";
    qfmt_writer_set_string(w, "hf.config.json", text, (size_t)(end ? end - text : 0), NULL);
    qfmt_writer_set_string(w, "tokenizer.huggingface.json", tok, 2, NULL);
    CHECK(qfmt_writer_finish(w, &e) == QFMT_OK);
    qfmt_writer_free(w);
    cJSON_Delete(cfg);

    size_t flen;
    uint8_t *file = slurp(path, &flen);
    unlink(path);
    qfmt_reader *r = NULL;
    CHECK(qfmt_reader_open_memory(&r, file, flen, NULL, &e) == QFMT_OK);
    qfmt_model *m = (qfmt_model *)(void *)&flen;
    char msg[512];
    msg[0] = '\0';
    int rc = qfmt_model_load(&m, r, msg, sizeof msg);
    if (rc != 0) {
        CHECK(m == NULL);
        CHECK(memchr(msg, '\0', sizeof msg) != NULL && msg[0] != '\0');
    } else {
        check_hparams(qfmt_model_hparams_get(m)); /* (cannot load without tensors) */
        qfmt_model_free(m);
    }
    qfmt_reader_close(r);
    free(file);
    free(text);
    return 0;
}
