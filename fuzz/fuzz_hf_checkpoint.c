/*
 * fuzz_hf_checkpoint.c - libFuzzer target for a sharded Hugging Face checkpoint as the converter
 * opens it (libqfmt_model/src/hf_checkpoint.c: qfmt__hf_open with model.safetensors.index.json)
 * and, on some inputs, the whole conversion (qfmt_convert_hf).
 *
 * Input: a model.safetensors.index.json text, optionally followed by a NUL byte and a
 * config.json text (without one, a fixed valid config.json is used). At the first call the
 * target makes a scratch directory of its own (in /dev/shm when there is one) holding two tiny
 * valid shards written with qfmt_st_writer: model-00001-of-00002.safetensors with "a" (F32
 * [2, 32]) and "b" (F16 [3]), model-00002-of-00002.safetensors with "c" (BF16 [32]). Per
 * input the two JSON files are written there, then:
 *   - qfmt__hf_open on the directory, every tensor through qfmt__hf_tensor (read in full) and
 *     qfmt__hf_release, qfmt__hf_checksum, qfmt__hf_close;
 *   - on one input in 8 (the index text's length a multiple of 8), qfmt_convert_hf of the
 *     directory to q8_0 (byte 0 of the index, odd: every tensor quantized where it can be)
 *     into out.qfmt in the same directory.
 * Checks: a failure has err.code equal to the status, a non-empty message, and
 * qfmt_error_format output without raw control characters; an open that succeeds has only
 * shards named by weight_map values (each a file of the directory), every weight_map entry
 * naming a tensor found in the shard it names, ntensors = the sum of the shards' tensor
 * counts, no tensor name twice, tensor refs in range, and tensors that read back as written;
 * the checksum matches the XXH3 of the shard file. A failed conversion leaves no out.qfmt and
 * no out.qfmt.tmp.*; a successful one leaves out.qfmt, which opens with qfmt_reader_open and
 * passes qfmt_reader_verify. The scratch directory holds only the shards and the JSON files
 * between inputs.
 *
 * Build: with clang and -DQFMT_FUZZ=ON (libFuzzer), or with any compiler linked with
 * regression_driver.c to replay a corpus. See fuzz/README.md.
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qfmt.h"
#include "qfmt_model.h"
#include "hf_checkpoint.h"
#include "fuzz_check.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const SHARD1 = "model-00001-of-00002.safetensors";
static const char *const SHARD2 = "model-00002-of-00002.safetensors";
static const char DEFAULT_CONFIG[] =
    "{\"architectures\": [\"FuzzModel\"], \"model_type\": \"fuzz\", \"torch_dtype\": \"float32\"}";

static char dir[256];
static char shard_path[2][320];

static void write_shard(const char *path, const char *const *names, const uint32_t *types,
                        const uint64_t *lens, size_t n)
{
    qfmt_st_tensor_desc d[2];
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        qfmt_st_tensor_desc init = QFMT_ST_TENSOR_DESC_INIT;
        d[i] = init;
        d[i].name = names[i];
        d[i].type = types[i];
        if (lens[i] == 64) {
            d[i].ndim = 2, d[i].dims[0] = 2, d[i].dims[1] = 32;
        } else {
            d[i].ndim = 1, d[i].dims[0] = lens[i];
        }
        total += (size_t)lens[i] * (types[i] == QFMT_TYPE_F32 ? 4 : 2);
    }
    uint8_t *bytes = malloc(total);
    CHECK(bytes != NULL);
    /* small finite values in every dtype: f32 k/8, f16/bf16 ones with a varying mantissa */
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        for (uint64_t k = 0; k < lens[i]; k++) {
            if (types[i] == QFMT_TYPE_F32) {
                float f = (float)((int)(k % 17) - 8) / 8.0f;
                memcpy(bytes + at, &f, 4);
                at += 4;
            } else {
                uint16_t h = types[i] == QFMT_TYPE_F16 ? (uint16_t)(0x3c00 + k) : (uint16_t)(0x3f80 + k);
                memcpy(bytes + at, &h, 2);
                at += 2;
            }
        }
    qfmt_st_writer *w = NULL;
    qfmt_error e;
    CHECK(qfmt_st_writer_begin(&w, path, d, n, NULL, &e) == QFMT_OK);
    CHECK(qfmt_st_writer_write(w, bytes, total, &e) == QFMT_OK);
    CHECK(qfmt_st_writer_commit(w, &e) == QFMT_OK);
    qfmt_st_writer_free(w);
    free(bytes);
}

/* At exit (libFuzzer's -max_total_time and -runs end with exit()): the directory goes. */
static void remove_scratch(void)
{
    static const char *const names[] = {"model-00001-of-00002.safetensors",
                                        "model-00002-of-00002.safetensors", "config.json",
                                        "model.safetensors.index.json", "out.qfmt"};
    char path[400];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* The scratch directory and its two shards, once per process. */
static void setup(void)
{
    if (dir[0])
        return;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/qfmt-fuzz-hf-%ld", base ? base : "/tmp", (long)getpid());
    mkdir(dir, 0700);
    atexit(remove_scratch);
    snprintf(shard_path[0], sizeof shard_path[0], "%s/%s", dir, SHARD1);
    snprintf(shard_path[1], sizeof shard_path[1], "%s/%s", dir, SHARD2);
    const char *n1[] = {"a", "b"}, *n2[] = {"c"};
    const uint32_t t1[] = {QFMT_TYPE_F32, QFMT_TYPE_F16}, t2[] = {QFMT_TYPE_BF16};
    const uint64_t l1[] = {64, 3}, l2[] = {32};
    write_shard(shard_path[0], n1, t1, l1, 2);
    write_shard(shard_path[1], n2, t2, l2, 1);
}

static void put_file(const char *name, const void *p, size_t n)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(n == 0 || fwrite(p, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

/* A failure is consistent and its formatted text carries no raw control character. */
static void check_failure(qfmt_status s, const qfmt_error *e)
{
    check_error(s, e);
    CHECK(e->message[0] != '\0');
    char buf[1200];
    const char *text = qfmt_error_format(e, buf, sizeof buf);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        CHECK(*c >= 0x20 && *c != 0x7f);
}

/* Files of the directory other than the shards and the JSON inputs. */
static int stray_files(void)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *s = e->d_name;
        if (strcmp(s, ".") && strcmp(s, "..") && strcmp(s, SHARD1) && strcmp(s, SHARD2) &&
            strcmp(s, "config.json") && strcmp(s, "model.safetensors.index.json")) {
            fprintf(stderr, "stray file %s\n", s);
            n++;
        }
    }
    closedir(d);
    return n;
}

static void check_open_model(qfmt__hf_model *m, const char *index, size_t index_len)
{
    CHECK(m->config != NULL && m->config_text != NULL);
    CHECK(m->nshards >= 1 && m->nshards <= 2);
    uint64_t sum = 0;
    for (uint32_t k = 0; k < m->nshards; k++) {
        CHECK(m->shards[k].st != NULL);
        CHECK(strcmp(m->shards[k].name, SHARD1) == 0 || strcmp(m->shards[k].name, SHARD2) == 0);
        for (uint32_t o = 0; o < k; o++)
            CHECK(strcmp(m->shards[k].name, m->shards[o].name) != 0);
        sum += qfmt_st_count(m->shards[k].st);
        CHECK(m->shards[k].size == qfmt_st_file_size(m->shards[k].st));
    }
    CHECK(m->ntensors == sum);

    /* every weight_map entry names a tensor of the shard it names */
    cJSON *idx = cJSON_ParseWithLength(index, index_len);
    CHECK(idx != NULL);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    CHECK(cJSON_IsObject(wm) && wm->child != NULL);
    for (const cJSON *it = wm->child; it; it = it->next) {
        CHECK(cJSON_IsString(it));
        uint32_t k = 0;
        while (k < m->nshards && strcmp(m->shards[k].name, it->valuestring) != 0)
            k++;
        CHECK(k < m->nshards);
        CHECK(qfmt_st_find(m->shards[k].st, it->string, NULL, NULL) == QFMT_OK);
    }
    cJSON_Delete(idx);

    /* every tensor, once; names unique across the model */
    const char **names = malloc((size_t)(m->ntensors ? m->ntensors : 1) * sizeof *names);
    CHECK(names != NULL);
    for (uint64_t i = 0; i < m->ntensors; i++) {
        CHECK(m->tensors[i].shard < m->nshards);
        CHECK(m->tensors[i].index < qfmt_st_count(m->shards[m->tensors[i].shard].st));
        if (i > 0 && m->tensors[i].shard == m->tensors[i - 1].shard)
            CHECK(m->tensors[i].index > m->tensors[i - 1].index);
        else if (i > 0)
            CHECK(m->tensors[i].shard > m->tensors[i - 1].shard);
        qfmt_st_tensor t;
        qfmt_error e;
        qfmt_status s = qfmt__hf_tensor(m, i, &t, &e);
        CHECK(s == QFMT_OK);
        touch(t.data, t.size);
        names[i] = t.name;
        for (uint64_t j = 0; j < i; j++)
            CHECK(strcmp(names[j], t.name) != 0);
        CHECK(strcmp(t.name, "a") == 0 || strcmp(t.name, "b") == 0 || strcmp(t.name, "c") == 0);
        qfmt__hf_release(m, i);
    }
    free(names);

    qfmt_error e;
    qfmt_status s = qfmt__hf_checksum(m, &e);
    CHECK(s == QFMT_OK);
    for (uint32_t k = 0; k < m->nshards; k++) {
        FILE *f = fopen(m->shards[k].path, "rb");
        CHECK(f != NULL);
        uint8_t buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        CHECK(n == m->shards[k].size && XXH3_64bits(buf, n) == m->shards[k].xxh3);
    }
}

static void run_convert(bool quantize_all)
{
    char out[400], prefix[64];
    snprintf(out, sizeof out, "%s/out.qfmt", dir);
    snprintf(prefix, sizeof prefix, "out.qfmt.tmp.");
    qfmt_convert_opts o = QFMT_CONVERT_OPTS_INIT;
    o.type = QFMT_TYPE_Q8_0;
    static const char *const all[] = {"*"};
    if (quantize_all) {
        o.quantize = all;
        o.nquantize = 1;
    }
    qfmt_convert_result res;
    qfmt_error e;
    qfmt_status s = qfmt_convert_hf(dir, out, &o, &res, &e);
    if (getenv("QFMT_FUZZ_VERBOSE")) {
        char buf[1200];
        fprintf(stderr, "convert: %s\n", s ? qfmt_error_format(&e, buf, sizeof buf) : "ok");
    }
    /* no temporary left, whatever happened */
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        CHECK(strncmp(de->d_name, prefix, strlen(prefix)) != 0);
    closedir(d);
    if (s != QFMT_OK) {
        check_failure(s, &e);
        CHECK(access(out, F_OK) != 0);
        return;
    }
    CHECK(res.tensors <= res.tensors_total);
    qfmt_reader *r = NULL;
    s = qfmt_reader_open(&r, out, NULL, &e);
    CHECK(s == QFMT_OK);
    s = qfmt_reader_verify(r, 1, &e);
    CHECK(s == QFMT_OK);
    CHECK(qfmt_tensor_count(r) == res.tensors);
    qfmt_reader_close(r);
    CHECK(unlink(out) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    const uint8_t *nul = memchr(data, 0, size);
    size_t index_len = nul ? (size_t)(nul - data) : size;
    put_file("model.safetensors.index.json", data, index_len);
    if (nul)
        put_file("config.json", nul + 1, size - index_len - 1);
    else
        put_file("config.json", DEFAULT_CONFIG, sizeof DEFAULT_CONFIG - 1);

    qfmt__hf_model m;
    qfmt_error e;
    qfmt_status s = qfmt__hf_open(&m, dir, &e);
    if (getenv("QFMT_FUZZ_VERBOSE")) {
        char buf[1200];
        fprintf(stderr, "open: %s\n", s ? qfmt_error_format(&e, buf, sizeof buf) : "ok");
    }
    if (s != QFMT_OK) {
        check_failure(s, &e);
        CHECK(m.nshards == 0 && m.shards == NULL && m.tensors == NULL && m.config == NULL);
    } else {
        char *copy = malloc(index_len ? index_len : 1); /* exactly sized for cJSON */
        CHECK(copy != NULL);
        memcpy(copy, data, index_len);
        check_open_model(&m, copy, index_len);
        free(copy);
        qfmt__hf_close(&m);
    }
    if (index_len % 8 == 0)
        run_convert(index_len > 0 && (data[0] & 1));
    CHECK(stray_files() == 0);
    return 0;
}
