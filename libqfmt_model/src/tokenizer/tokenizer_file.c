/* tokenizer_file.c - qfmt_tokenizer_open: a tokenizer from a path, whichever of the three
 * places a user has it in: a .qfmt file (its embedded tokenizer.json), a tokenizer.json, or a
 * model directory holding one. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf_checkpoint.h"
#include "model_internal.h"
#include "qfmt_model.h"

static qfmt_status from_json_file(qfmt_tokenizer **out, const char *path, qfmt_error *err)
{
    char *text;
    size_t len;
    qfmt_status s = qfmt__read_text(path, 0, &text, &len, err);
    if (s != QFMT_OK) return s;
    s = qfmt_tokenizer_load(out, text, len, err);
    free(text);
    if (s != QFMT_OK && err && !err->path[0]) snprintf(err->path, sizeof err->path, "%s", path);
    return s;
}

qfmt_status qfmt_tokenizer_open(qfmt_tokenizer **out, const char *path, qfmt_error *err)
{
    if (!out || !path) return QFMT__FAIL(err, QFMT_E_ARG, NULL, NULL, "qfmt_tokenizer_open: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t n = strlen(path);
        char *p = malloc(n + sizeof "/tokenizer.json");
        if (!p) return QFMT__FAIL(err, QFMT_E_NOMEM, path, NULL, "out of memory");
        snprintf(p, n + sizeof "/tokenizer.json", "%s/tokenizer.json", path);
        qfmt_status s = from_json_file(out, p, err);
        free(p);
        return s;
    }
    qfmt_reader *r = NULL;
    qfmt_error e;
    qfmt_status s = qfmt_reader_open(&r, path, NULL, &e);
    if (s == QFMT_E_BAD_MAGIC) return from_json_file(out, path, err); /* not qfmt: tokenizer.json */
    if (s != QFMT_OK) {
        if (err) *err = e;
        return s;
    }
    const char *json;
    uint64_t len;
    s = qfmt_meta_get_string(r, "tokenizer.huggingface.json", &json, &len, &e);
    if (s != QFMT_OK) {
        s = QFMT__FAIL(err, s == QFMT_E_NOT_FOUND ? QFMT_E_NOT_FOUND : s, path, NULL,
                       "no embedded tokenizer (metadata 'tokenizer.huggingface.json')");
    } else if ((s = qfmt_tokenizer_load(out, json, (size_t)len, err)) != QFMT_OK && err) {
        static const char lead[] = "metadata 'tokenizer.huggingface.json': ";
        char m[sizeof err->message];
        snprintf(m, sizeof m, "%s", err->message);
        snprintf(err->message, sizeof err->message, "%s%.*s", lead, (int)(sizeof m - sizeof lead), m);
        if (!err->path[0]) snprintf(err->path, sizeof err->path, "%s", path);
    }
    qfmt_reader_close(r);
    return s;
}
