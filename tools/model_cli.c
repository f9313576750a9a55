#define _POSIX_C_SOURCE 200809L
#include "model_cli.h"

#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

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

/* The whole file, or its zstd-decompressed content when it is a zstd frame (calibration text is
 * often shipped as .zst). */
static char *read_text(const char *path, size_t *len)
{
    FILE *f = cli_fopen_read(path); /* a FIFO or device is refused, without waiting on it */
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap *= 2);
        if (!nb) {
            free(buf);
            buf = NULL;
        } else {
            buf = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        cli_error("%s: cannot read%s", path, bad ? "" : " (out of memory)");
        return NULL;
    }
    static const unsigned char magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
    if (n >= 4 && memcmp(buf, magic, 4) == 0) {
        ZSTD_DStream *ds = ZSTD_createDStream();
        size_t ocap = 4 * n + (1 << 20), olen = 0;
        char *out = malloc(ocap);
        ZSTD_inBuffer in = {buf, n, 0};
        size_t r = ds ? ZSTD_initDStream(ds) : 1;
        int ok = ds && out && !ZSTD_isError(r);
        while (ok) {
            if (olen == ocap) {
                char *no = ocap > SIZE_MAX / 2 ? NULL : realloc(out, ocap *= 2);
                if (!no) {
                    ok = 0;
                    break;
                }
                out = no;
            }
            ZSTD_outBuffer ob = {out, ocap, olen};
            r = ZSTD_decompressStream(ds, &ob, &in);
            olen = ob.pos;
            if (ZSTD_isError(r)) {
                cli_error("%s: zstd: %s", path, ZSTD_getErrorName(r));
                ok = -1;
                break;
            }
            if (r == 0 && in.pos == in.size) break; /* frame done, input used up */
            if (in.pos == in.size && ob.pos < ob.size) { /* input ended inside a frame */
                cli_error("%s: zstd: truncated frame", path);
                ok = -1;
                break;
            }
        }
        ZSTD_freeDStream(ds);
        free(buf);
        if (ok != 1) {
            if (ok == 0) cli_error("%s: out of memory", path);
            free(out);
            return NULL;
        }
        buf = out;
        n = olen;
    }
    *len = n;
    return buf;
}

int cli_text_tokens(const char *path, const qfmt_reader *r, int32_t **out, size_t *n)
{
    size_t len = 0;
    char *buf = read_text(path, &len);
    if (!buf) return -1;
    qfmt_error e;
    char eb[1024];
    qfmt_tokenizer *tok = NULL;
    int rc = 0;
    if (cli_load_tokenizer(r, &tok) != 0) {
        rc = -1;
    } else if (qfmt_tokenizer_encode(tok, buf, len, out, n, &e) != QFMT_OK) {
        cli_error("%s: tokenizer: %s", path, qfmt_error_format(&e, eb, sizeof eb));
        rc = -1;
    }
    qfmt_tokenizer_free(tok);
    free(buf);
    return rc;
}
