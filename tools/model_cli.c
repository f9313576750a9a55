#define _POSIX_C_SOURCE 200809L
#include "model_cli.h"

#include "cli.h"

int cli_open_model(const char *path, qfmt_reader **r, qfmt_model **m)
{
    qfmt_error e;
    *r = NULL;
    *m = NULL;
    if (qfmt_reader_open(r, path, NULL, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        return -1;
    }
    if (qfmt_model_load(m, *r, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        qfmt_reader_close(*r);
        *r = NULL;
        return -1;
    }
    return 0;
}

int cli_load_tokenizer(const qfmt_reader *r, qfmt_tokenizer **tok)
{
    const char *json;
    uint64_t len;
    qfmt_error e;
    char eb[1024];
    *tok = NULL;
    if (qfmt_meta_get_string(r, "tokenizer.huggingface.json", &json, &len, NULL) != QFMT_OK) {
        cli_error("%s: no embedded tokenizer (metadata 'tokenizer.huggingface.json')", qfmt_reader_path(r));
        return -1;
    }
    if (qfmt_tokenizer_load(tok, json, (size_t)len, &e) != QFMT_OK) {
        cli_error("%s: metadata 'tokenizer.huggingface.json': %s", qfmt_reader_path(r),
                  qfmt_error_format(&e, eb, sizeof eb));
        return -1;
    }
    return 0;
}
