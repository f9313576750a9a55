/*
 * bench_tokenize.c - tokenizer throughput (libqfmt_model: qfmt_tokenizer_encode), one thread,
 * in MB of text per second, on heldout.txt with each reference tokenizer (not part of the test
 * suite: tests never time anything).
 *
 *     bench_tokenize [--fixtures DIR] [--repeat R] [--text FILE] [TOKENIZER]...
 *
 * TOKENIZER: a tokenizer.json, a .qfmt file, a model directory, or a tokenizer.json.zst; by
 * default the four of DIR/tokenizers (Llama 3, Qwen 3, Llama 2, the WordPiece one) and DIR/
 * tokenizer.json (the KJV byte-level BPE), DIR defaulting to tests/data/fixtures of this
 * source tree. The text is DIR/heldout.txt (--text to change), encoded in one call as a user
 * would. Each figure is the best of R runs (default 5) after one warm-up run.
 *
 * Beside each figure: the same machine's memchr rate over the text (the bytes/s of the most
 * trivial pass over it) and the ratio, so figures compare across machines.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "qfmt_model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *p = realloc(buf, cap *= 2);
        if (!p) free(buf);
        buf = p;
    }
    fclose(f);
    *len = n;
    return buf;
}

static qfmt_tokenizer *load(const char *path)
{
    qfmt_tokenizer *t = NULL;
    qfmt_error e;
    size_t n = strlen(path);
    if (n > 4 && strcmp(path + n - 4, ".zst") == 0) {
        size_t zl;
        char *z = read_file(path, &zl);
        unsigned long long size = z ? ZSTD_getFrameContentSize(z, zl) : ZSTD_CONTENTSIZE_ERROR;
        if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
            fprintf(stderr, "bench_tokenize: %s: not a zstd frame with its size\n", path);
            free(z);
            return NULL;
        }
        char *json = malloc((size_t)size);
        size_t got = json ? ZSTD_decompress(json, (size_t)size, z, zl) : 0;
        free(z);
        if (!json || ZSTD_isError(got) || qfmt_tokenizer_load(&t, json, got, &e) != QFMT_OK) t = NULL;
        free(json);
    } else if (qfmt_tokenizer_open(&t, path, &e) != QFMT_OK) {
        t = NULL;
    }
    if (!t) {
        char b[1200];
        fprintf(stderr, "bench_tokenize: %s: %s\n", path, qfmt_error_format(&e, b, sizeof b));
    }
    return t;
}

static double memchr_rate(const char *text, size_t n, int repeat)
{
    double best = 1e30;
    volatile size_t sink = 0;
    for (int r = 0; r <= repeat; r++) {
        double t0 = now();
        for (int k = 0; k < 16; k++) sink += memchr(text, 0x01 + k, n) != NULL; /* absent bytes: a full scan */
        double dt = (now() - t0) / 16;
        if (r && dt < best) best = dt;
    }
    (void)sink;
    return (double)n / best;
}

int main(int argc, char **argv)
{
    const char *fixtures = NULL, *text_path = NULL;
    int repeat = 5;
    const char *paths[64];
    int np = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--fixtures") == 0 && i + 1 < argc) fixtures = argv[++i];
        else if (strcmp(argv[i], "--text") == 0 && i + 1 < argc) text_path = argv[++i];
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (argv[i][0] == '-') {
            fputs("usage: bench_tokenize [--fixtures DIR] [--repeat R] [--text FILE] [TOKENIZER]...\n", stderr);
            return argv[i][1] == 'h' || strcmp(argv[i], "--help") == 0 ? 0 : 2;
        } else if (np < 64) paths[np++] = argv[i];
    }
    if (repeat < 1) repeat = 1;
    char def_fix[4096], buf[6][4200], tp[4200];
    if (!fixtures) { /* tests/data/fixtures beside this source file's directory */
        snprintf(def_fix, sizeof def_fix, "%s", __FILE__);
        char *slash = strrchr(def_fix, '/');
        if (slash) snprintf(slash, sizeof def_fix - (size_t)(slash - def_fix), "/../tests/data/fixtures");
        else snprintf(def_fix, sizeof def_fix, "../tests/data/fixtures");
        fixtures = def_fix;
    }
    if (np == 0) {
        static const char *names[] = {"tokenizers/llama3.tokenizer.json.zst", "tokenizers/qwen3.tokenizer.json.zst",
                                      "tokenizers/llama2.tokenizer.json.zst",
                                      "tokenizers/wordpiece-kjv.tokenizer.json.zst", "tokenizer.json"};
        for (int k = 0; k < 5; k++) {
            snprintf(buf[k], sizeof buf[k], "%s/%s", fixtures, names[k]);
            paths[np++] = buf[k];
        }
    }
    if (!text_path) {
        snprintf(tp, sizeof tp, "%s/heldout.txt", fixtures);
        text_path = tp;
    }
    size_t n;
    char *text = read_file(text_path, &n);
    if (!text || n == 0) {
        fprintf(stderr, "bench_tokenize: cannot read %s\n", text_path);
        return 1;
    }
    double scan = memchr_rate(text, n, repeat);
    printf("text: %s, %zu bytes; memchr over it: %.0f MB/s (this machine's trivial pass)\n", text_path, n, scan / 1e6);
    printf("%-48s %10s %10s %12s %10s\n", "tokenizer", "ids", "MB/s", "Mtokens/s", "vs memchr");
    int rc = 0;
    for (int k = 0; k < np; k++) {
        qfmt_tokenizer *t = load(paths[k]);
        if (!t) {
            rc = 1;
            continue;
        }
        double best = 1e30;
        size_t nids = 0;
        for (int r = 0; r <= repeat; r++) {
            int32_t *ids = NULL;
            qfmt_error e;
            double t0 = now();
            qfmt_status s = qfmt_tokenizer_encode(t, text, n, &ids, &nids, &e);
            double dt = now() - t0;
            free(ids);
            if (s != QFMT_OK) {
                fprintf(stderr, "bench_tokenize: %s: encode failed: %s\n", paths[k], e.message);
                rc = 1;
                break;
            }
            if (r && dt < best) best = dt;
        }
        const char *name = strrchr(paths[k], '/');
        printf("%-48s %10zu %10.1f %12.2f %9.4f%%\n", name ? name + 1 : paths[k], nids, (double)n / best / 1e6,
               (double)nids / best / 1e6, 100.0 * ((double)n / best) / scan);
        qfmt_tokenizer_free(t);
    }
    free(text);
    return rc;
}
