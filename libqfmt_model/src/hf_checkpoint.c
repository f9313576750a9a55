/* Opening a Hugging Face checkpoint for conversion: the directory's JSON files and safetensors shards. */
#define _POSIX_C_SOURCE 200809L
#include "hf_checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_JSON_FILE QFMT_JSON_MAX_SIZE /* 256 MiB: larger config/tokenizer/index files are refused */

static qfmt_status fail(qfmt_error *err, qfmt_status code, int e, const char *path, const char *fmt,
                        const char *arg)
{
    if (err) {
        memset(err, 0, sizeof *err);
        err->code = code;
        err->sys_errno = e;
        err->offset = QFMT_NO_OFFSET;
        snprintf(err->path, sizeof err->path, "%s", path ? path : "");
        snprintf(err->message, sizeof err->message, fmt, arg ? arg : "");
    }
    return code;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Reads a whole text file; *out NULL with QFMT_OK when it does not exist and optional. */
qfmt_status qfmt__read_text(const char *path, int optional, char **out, size_t *len, qfmt_error *err)
{
    *out = NULL;
    *len = 0;
    int fd; /* regular files only, and a FIFO does not block the open (qfmt_file_open_read) */
    qfmt_status os = qfmt_file_open_read(path, &fd, err);
    FILE *f = os == QFMT_OK ? fdopen(fd, "rb") : NULL;
    if (!f) {
        if (os != QFMT_OK) return optional && errno == ENOENT ? QFMT_OK : os;
        close(fd);
        return fail(err, QFMT_E_IO, errno, path, "cannot open: %s", strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_JSON_FILE) {
        fclose(f);
        return fail(err, QFMT_E_IO, 0, path, "not a regular file of at most 256 MiB%s", "");
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return fail(err, QFMT_E_NOMEM, 0, path, "out of memory%s", "");
    }
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n != (size_t)st.st_size) {
        free(buf);
        return fail(err, QFMT_E_IO, errno, path, "read failed%s", "");
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return QFMT_OK;
}

static qfmt_status parse_json(const char *path, const char *text, size_t len, cJSON **out, qfmt_error *err)
{
    const char *end = NULL;
    *out = NULL;
    qfmt_status js = qfmt_json_check(text, len, 0, path, err); /* the one JSON policy */
    if (js != QFMT_OK) return js;
    *out = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!*out || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        qfmt_status s = fail(err, QFMT_E_CORRUPT, 0, path, "not a valid JSON object%s", "");
        if (err && end && end >= text && end <= text + len) err->offset = (uint64_t)(end - text);
        return s;
    }
    return QFMT_OK;
}

static qfmt_status add_shard(qfmt__hf_model *m, const char *path, qfmt_error *err)
{
    qfmt__hf_shard *s = realloc(m->shards, (m->nshards + 1) * sizeof *s);
    if (!s) return fail(err, QFMT_E_NOMEM, 0, path, "out of memory%s", "");
    m->shards = s;
    qfmt__hf_shard *sh = &s[m->nshards];
    memset(sh, 0, sizeof *sh);
    sh->path = strdup(path);
    const char *slash = strrchr(path, '/');
    sh->name = strdup(slash ? slash + 1 : path);
    if (!sh->path || !sh->name) {
        free(sh->path);
        free(sh->name);
        return fail(err, QFMT_E_NOMEM, 0, path, "out of memory%s", "");
    }
    m->nshards++;
    qfmt_status st = qfmt_st_open(&sh->st, path, NULL, err);
    if (st == QFMT_OK) {
        sh->size = qfmt_st_file_size(sh->st);
        m->total_bytes += sh->size;
    }
    return st;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Shards from model.safetensors.index.json: every weight_map entry must be in its shard. */
static qfmt_status open_sharded(qfmt__hf_model *m, const char *dir, const char *index_path, qfmt_error *err)
{
    char *text;
    size_t len;
    cJSON *idx = NULL;
    qfmt_status s = qfmt__read_text(index_path, 0, &text, &len, err);
    if (s == QFMT_OK) s = parse_json(index_path, text, len, &idx, err);
    free(text);
    if (s != QFMT_OK) return s;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    int n = cJSON_GetArraySize(wm);
    if (!cJSON_IsObject(wm) || n <= 0) {
        cJSON_Delete(idx);
        return fail(err, QFMT_E_CORRUPT, 0, index_path, "has no weight_map object%s", "");
    }
    char **files = calloc((size_t)n, sizeof *files);
    if (!files) {
        cJSON_Delete(idx);
        return fail(err, QFMT_E_NOMEM, 0, index_path, "out of memory%s", "");
    }
    int nf = 0;
    for (const cJSON *it = wm->child; it; it = it->next) {
        if (!cJSON_IsString(it) || strchr(it->valuestring, '/') || !it->valuestring[0]) {
            /* the message is made before the JSON tree (which holds the name) is freed */
            s = fail(err, QFMT_E_CORRUPT, 0, index_path,
                     "weight_map entry '%.200s' does not name a file in the directory", it->string);
            free(files);
            cJSON_Delete(idx);
            return s;
        }
        files[nf++] = it->valuestring;
    }
    qsort(files, (size_t)nf, sizeof *files, name_cmp);
    for (int i = 0; i < nf && s == QFMT_OK; i++) {
        if (i && strcmp(files[i], files[i - 1]) == 0) continue;
        char *p = join(dir, files[i]);
        s = p ? add_shard(m, p, err) : fail(err, QFMT_E_NOMEM, 0, dir, "out of memory%s", "");
        free(p);
    }
    free(files);
    /* each listed tensor must be where the index says */
    for (const cJSON *it = wm->child; it && s == QFMT_OK; it = it->next) {
        uint32_t k = 0;
        while (k < m->nshards && strcmp(m->shards[k].name, it->valuestring) != 0) k++;
        if (k == m->nshards || qfmt_st_find(m->shards[k].st, it->string, NULL, NULL) != QFMT_OK) {
            s = fail(err, QFMT_E_CORRUPT, 0, index_path, "names tensor '%.200s', which its shard lacks",
                     it->string);
            if (k < m->nshards && err) snprintf(err->path, sizeof err->path, "%s", m->shards[k].path);
        }
    }
    cJSON_Delete(idx);
    return s;
}

qfmt_status qfmt__hf_open(qfmt__hf_model *m, const char *src, qfmt_error *err)
{
    memset(m, 0, sizeof *m);
    struct stat st;
    if (stat(src, &st) != 0) return fail(err, QFMT_E_IO, errno, src, "cannot open: %s", strerror(errno));
    qfmt_status s = QFMT_OK;
    if (S_ISDIR(st.st_mode)) {
        char *cfg = join(src, "config.json"), *tok = join(src, "tokenizer.json"),
             *gen = join(src, "generation_config.json"), *single = join(src, "model.safetensors"),
             *index = join(src, "model.safetensors.index.json");
        if (!cfg || !tok || !gen || !single || !index) s = fail(err, QFMT_E_NOMEM, 0, src, "out of memory%s", "");
        if (s == QFMT_OK) s = qfmt__read_text(cfg, 0, &m->config_text, &m->config_len, err);
        if (s == QFMT_OK) s = parse_json(cfg, m->config_text, m->config_len, &m->config, err);
        if (s == QFMT_OK) s = qfmt__read_text(tok, 1, &m->tokenizer_text, &m->tokenizer_len, err);
        if (s == QFMT_OK && m->tokenizer_text) s = qfmt_json_check(m->tokenizer_text, m->tokenizer_len, 0, tok, err);
        if (s == QFMT_OK) s = qfmt__read_text(gen, 1, &m->generation_text, &m->generation_len, err);
        if (s == QFMT_OK && m->generation_text)
            s = qfmt_json_check(m->generation_text, m->generation_len, 0, gen, err);
        if (s == QFMT_OK) {
            if (access(index, F_OK) == 0) s = open_sharded(m, src, index, err);
            else if (access(single, F_OK) == 0) s = add_shard(m, single, err);
            else s = fail(err, QFMT_E_IO, ENOENT, src,
                          "has neither model.safetensors nor model.safetensors.index.json%s", "");
        }
        free(cfg), free(tok), free(gen), free(single), free(index);
    } else {
        s = add_shard(m, src, err);
    }
    uint64_t total = 0;
    for (uint32_t k = 0; k < m->nshards && s == QFMT_OK; k++) total += qfmt_st_count(m->shards[k].st);
    if (s == QFMT_OK && !(m->tensors = calloc(total ? total : 1, sizeof *m->tensors)))
        s = fail(err, QFMT_E_NOMEM, 0, src, "out of memory%s", "");
    for (uint32_t k = 0; k < m->nshards && s == QFMT_OK; k++)
        for (uint64_t i = 0; i < qfmt_st_count(m->shards[k].st); i++) {
            qfmt_st_tensor t;
            qfmt_st_get(m->shards[k].st, i, &t, NULL);
            for (uint32_t o = 0; o < k && s == QFMT_OK; o++) /* a name in two shards */
                if (qfmt_st_find(m->shards[o].st, t.name, NULL, NULL) == QFMT_OK) {
                    s = fail(err, QFMT_E_CORRUPT, 0, m->shards[k].path,
                             "tensor '%.200s' also appears in an earlier shard", t.name);
                    if (err) snprintf(err->tensor, sizeof err->tensor, "%s", t.name);
                }
            m->tensors[m->ntensors].shard = k;
            m->tensors[m->ntensors].index = i;
            m->ntensors++;
        }
    if (s != QFMT_OK) qfmt__hf_close(m);
    return s;
}

void qfmt__hf_close(qfmt__hf_model *m)
{
    for (uint32_t k = 0; k < m->nshards; k++) {
        qfmt_st_close(m->shards[k].st);
        free(m->shards[k].path);
        free(m->shards[k].name);
    }
    free(m->shards);
    free(m->tensors);
    cJSON_Delete(m->config);
    free(m->config_text);
    free(m->tokenizer_text);
    free(m->generation_text);
    memset(m, 0, sizeof *m);
}

qfmt_status qfmt__hf_tensor(const qfmt__hf_model *m, uint64_t i, qfmt_st_tensor *out, qfmt_error *err)
{
    return qfmt_st_get(m->shards[m->tensors[i].shard].st, m->tensors[i].index, out, err);
}

qfmt_status qfmt__hf_checksum(qfmt__hf_model *m, qfmt_error *err)
{
    for (uint32_t k = 0; k < m->nshards; k++) {
        uint64_t size = 0;
        qfmt_status st = qfmt_checksum_file(m->shards[k].path, &size, &m->shards[k].xxh3, err);
        if (st != QFMT_OK) return st;
        if (size != m->shards[k].size)
            return fail(err, QFMT_E_IO, 0, m->shards[k].path, "changed size while being converted%s", "");
    }
    return QFMT_OK;
}

void qfmt__hf_release(const qfmt__hf_model *m, uint64_t i)
{
    qfmt_st_release(m->shards[m->tensors[i].shard].st, m->tensors[i].index);
}

static const cJSON *cfg_item(const qfmt__hf_model *m, const char *key)
{
    return m->config ? cJSON_GetObjectItemCaseSensitive(m->config, key) : NULL;
}

const char *qfmt__hf_config_string(const qfmt__hf_model *m, const char *key)
{
    const cJSON *j = cfg_item(m, key);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}
