/*
 * cmd_tokenize.c - qfmt tokenize: text to ids (and back) with a model's tokenizer, as Hugging
 * Face tokenizers gives them. Parses, calls qfmt_tokenizer_open / _encode_with / _decode
 * (libqfmt_model/src/tokenizer/) and prints.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "qfmt_model.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: qfmt tokenize SRC (--text TEXT | --file FILE) [--specials] [--json]\n"
    "       qfmt tokenize SRC --decode IDS [--skip-specials] [--json]\n"
    "\n"
    "SRC is a .qfmt file (its embedded tokenizer), a tokenizer.json, or a model directory.\n"
    "Encodes the text as Hugging Face tokenizers does and prints the ids on one line, separated\n"
    "by spaces.\n"
    "\n"
    "  --text TEXT       the text to encode\n"
    "  --file FILE       encode the file's bytes exactly (nothing stripped)\n"
    "  --specials        add the special tokens (BOS/EOS, [CLS]/[SEP]: add_special_tokens=True)\n"
    "  --decode IDS      decode ids (separated by spaces or commas) back to text, printed as it is\n"
    "  --skip-specials   with --decode: leave special tokens out (skip_special_tokens=True)\n"
    "  --json            {\"ids\": [...], \"tokens\": [...]}; with --decode {\"text\": \"...\"}\n"
    "\n"
    "A tokenizer that qfmt cannot reproduce exactly is refused, naming the component.\n"
    "Exit status: 0 ok, 1 failure (unreadable or unsupported tokenizer, bad ids), 2 usage error.\n";

typedef struct {
    const char *src, *text, *file, *decode;
    bool specials, skip, json;
} options;

static int parse(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return -1;
        } else if ((r = cli_opt_value(argc, argv, &i, "--text", &v)) != 0) {
            if (r < 0) return cli_usage_error("tokenize", usage, "--text needs a value");
            o->text = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--file", &v)) != 0) {
            if (r < 0) return cli_usage_error("tokenize", usage, "--file needs a path");
            o->file = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--decode", &v)) != 0) {
            if (r < 0) return cli_usage_error("tokenize", usage, "--decode needs ids");
            o->decode = v;
        } else if (strcmp(argv[i], "--specials") == 0) {
            o->specials = true;
        } else if (strcmp(argv[i], "--skip-specials") == 0) {
            o->skip = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            o->json = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_usage_error("tokenize", usage, "unknown option '%s'", argv[i]);
        } else if (!o->src) {
            o->src = argv[i];
        } else {
            return cli_usage_error("tokenize", usage, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!o->src) return cli_usage_error("tokenize", usage, "no tokenizer given (a .qfmt, tokenizer.json or model directory)");
    if ((o->text != NULL) + (o->file != NULL) + (o->decode != NULL) != 1)
        return cli_usage_error("tokenize", usage, "give exactly one of --text, --file and --decode");
    if (o->decode && o->specials) return cli_usage_error("tokenize", usage, "--specials applies to encoding");
    if (!o->decode && o->skip) return cli_usage_error("tokenize", usage, "--skip-specials applies to --decode");
    return 0;
}

/* The whole file, exactly (regular files only, never blocking on a FIFO). */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = cli_fopen_read(path);
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 65536;
            char *p = nc > cap ? realloc(buf, nc) : NULL;
            if (!p) {
                cli_error("%s: out of memory", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p, cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        cli_error("%s: read failed", path);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* "1 2 3" or "1,2,3": every id a decimal in 0..2^31-1. */
static int32_t *parse_ids(const char *s, size_t *n)
{
    size_t cap = 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    *n = 0;
    if (!ids) return NULL;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char tok[24];
        size_t l = strcspn(p, " ,\t\n");
        uint64_t v;
        if (l >= sizeof tok) l = sizeof tok - 1;
        memcpy(tok, p, l);
        tok[l] = '\0';
        if (!cli_parse_u64(tok, 0, INT32_MAX, &v)) {
            cli_error("--decode: '%s' is not a token id (0..2147483647)", tok);
            free(ids);
            return NULL;
        }
        if (*n == cap) {
            int32_t *q = realloc(ids, 2 * cap * sizeof *ids);
            if (!q) {
                free(ids);
                return NULL;
            }
            ids = q, cap *= 2;
        }
        ids[(*n)++] = (int32_t)v;
        p += strcspn(p, " ,\t\n");
    }
    return ids;
}

static int print_ids(const qfmt_tokenizer *t, const int32_t *ids, size_t n, bool json)
{
    if (!json) {
        for (size_t i = 0; i < n; i++) printf(i ? " %" PRId32 : "%" PRId32, ids[i]);
        putchar('\n');
        return CLI_EXIT_OK;
    }
    cli_jw w;
    cli_jw_init(&w, stdout);
    cli_jw_object(&w, NULL);
    cli_jw_array(&w, "ids");
    for (size_t i = 0; i < n; i++) cli_jw_i64(&w, NULL, ids[i]);
    cli_jw_end(&w);
    cli_jw_array(&w, "tokens");
    for (size_t i = 0; i < n; i++) {
        const char *s;
        size_t l;
        if (qfmt_tokenizer_token_string(t, ids[i], &s, &l) != QFMT_OK) s = "", l = 0;
        cli_jw_text(&w, NULL, s, l);
    }
    cli_jw_end(&w);
    cli_jw_end(&w);
    return cli_jw_finish(&w) ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

int cmd_tokenize(int argc, char **argv)
{
    options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? cli_finish_stdout(CLI_EXIT_OK) : rc;
    qfmt_tokenizer *t = NULL;
    qfmt_error e;
    if (qfmt_tokenizer_open(&t, o.src, &e) != QFMT_OK) {
        if (!e.path[0]) snprintf(e.path, sizeof e.path, "%s", o.src);
        cli_error_qfmt(&e);
        return CLI_EXIT_FAILURE;
    }
    rc = CLI_EXIT_FAILURE;
    char *buf = NULL, *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0, len = 0;
    if (o.decode) {
        if (!(ids = parse_ids(o.decode, &n))) goto done;
        if (qfmt_tokenizer_decode(t, ids, n, o.skip, &text, &len, &e) != QFMT_OK) {
            cli_error("%s: --decode: %s", o.src, e.message);
            goto done;
        }
        if (o.json) {
            cli_jw w;
            cli_jw_init(&w, stdout);
            cli_jw_object(&w, NULL);
            cli_jw_text(&w, "text", text, len);
            cli_jw_end(&w);
            rc = cli_jw_finish(&w) ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
        } else {
            fwrite(text, 1, len, stdout);
            putchar('\n');
            rc = CLI_EXIT_OK;
        }
        goto done;
    }
    const char *in = o.text;
    len = o.text ? strlen(o.text) : 0;
    if (o.file && !(in = buf = read_all(o.file, &len))) goto done;
    if (qfmt_tokenizer_encode_with(t, in ? in : "", len, o.specials ? QFMT_TOKENIZE_ADD_SPECIAL : 0, &ids, &n, &e) !=
        QFMT_OK) {
        cli_error("%s: %s", o.src, e.message);
        goto done;
    }
    rc = print_ids(t, ids, n, o.json);
done:
    free(buf);
    free(text);
    free(ids);
    qfmt_tokenizer_free(t);
    return cli_finish_stdout(rc);
}
