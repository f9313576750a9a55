/*
 * cmd_verify.c - `qfmt verify`: checks a whole qfmt file. Opening checks the header, metadata
 * and directory and their checksums; qfmt_reader_verify then checks every tensor's stored bytes
 * and the zero padding, on several threads. When that fails, each tensor is checked again on
 * its own so that every bad tensor is reported, not only the first.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: qfmt verify FILE [--json] [--threads N] [--hash[=xxh3|xxh64]]\n"
    "\n"
    "Checks a qfmt file completely: the header, metadata and directory with their checksums,\n"
    "every tensor's stored bytes against its XXH3-64 checksum (a zstd frame must also decode\n"
    "to the declared size) and that all padding is zero. Prints 'FILE: OK (...)' or\n"
    "'FILE: FAILED (...)'; each problem goes to stderr with the tensor and its byte range.\n"
    "Exit status: 0 if the file is intact, 1 if not (or it cannot be read), 2 usage error.\n"
    "\n"
    "A GGUF file (llama.cpp's) is checked too: its structure and bounds, that every tensor's\n"
    "bytes can be read and that every float and block tensor decodes to finite values. GGUF has\n"
    "no checksums, so its data cannot be checked against what was written: --hash prints a hash\n"
    "per tensor to compare two copies.\n"
    "\n"
    "options:\n"
    "  --threads N  use N threads (default, or 0: the number of online CPUs)\n"
    "  --json       print one JSON document instead: {file, ok, threads, tensors, bytes,\n"
    "               seconds, gb_per_s, error: {code, code_name, message, text, offset,\n"
    "               tensor} or null, failures: [{index, tensor, code, code_name, message,\n"
    "               text, start, end}]}\n"
    "  --hash[=ALG] after the checks, print one line per tensor, 'ALG  HASH  FILE:TENSOR', as\n"
    "               llama-gguf-hash does (for a GGUF file, then one line for all tensor data\n"
    "               in file order): xxh3 (default: XXH3-64, qfmt's checksum; for a qfmt file\n"
    "               the verified checksums of the stored bytes) or xxh64 (llama-gguf-hash's\n"
    "               default, GGUF files only). With --json: a \"hash\" object\n"
    "  -h, --help   show this help\n";

enum { MAX_THREADS = 1024 };

/* One bad tensor found by the per-tensor pass. */
struct failure {
    uint64_t index, start, end;
    qfmt_error err;
};

struct verify_result {
    bool opened;
    qfmt_status status;    /* first error (open or verify), or QFMT_OK */
    qfmt_error err;
    uint64_t tensors, bytes;
    double seconds;
    struct failure *failures; /* every bad tensor, file order */
    size_t nfailures;
    bool failures_incomplete; /* out of memory while listing them */
    bool hash;                /* print the verified checksums (--hash) */
};

static bool same_error(const qfmt_error *a, const qfmt_error *b)
{
    char ta[1024], tb[1024];
    return strcmp(qfmt_error_format(a, ta, sizeof ta), qfmt_error_format(b, tb, sizeof tb)) == 0;
}

/* The per-tensor pass, after a failed whole-file verify. Tensor checks are independent, so
 * this finds every bad tensor; padding errors are only seen by the whole-file verify. */
static void find_failures(const qfmt_reader *r, struct verify_result *res)
{
    size_t cap = 0;
    for (uint64_t i = 0; i < res->tensors; i++) {
        qfmt_error e;
        if (qfmt_tensor_verify(r, i, &e) == QFMT_OK)
            continue;
        if (res->nfailures == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct failure *p = realloc(res->failures, ncap * sizeof *p);
            if (p == NULL) {
                res->failures_incomplete = true;
                return;
            }
            res->failures = p;
            cap = ncap;
        }
        struct failure *f = &res->failures[res->nfailures++];
        qfmt_tensor_info ti;
        f->index = i;
        f->err = e;
        f->start = f->end = 0;
        if (qfmt_tensor_get_info(r, i, &ti, NULL) == QFMT_OK) {
            f->start = ti.offset;
            f->end = ti.offset + ti.stored_size; /* in the file: cannot wrap */
        }
    }
}

static void run_verify(const char *path, unsigned threads, struct verify_result *res)
{
    memset(res, 0, sizeof *res);
    qfmt_reader *r = NULL;
    double t0 = cli_now();
    res->status = qfmt_reader_open(&r, path, NULL, &res->err);
    if (res->status != QFMT_OK)
        return;
    res->opened = true;
    qfmt_file_info fi;
    qfmt_reader_file_info(r, &fi);
    res->tensors = fi.tensor_count;
    res->bytes = fi.file_size; /* header and index checked at open, the rest by verify */
    res->status = qfmt_reader_verify(r, threads, &res->err);
    res->seconds = cli_now() - t0;
    if (res->status == QFMT_E_CHECKSUM || res->status == QFMT_E_CORRUPT ||
        res->status == QFMT_E_UNSUPPORTED)
        find_failures(r, res);
    qfmt_reader_close(r);
}

static double gb_per_s(const struct verify_result *res)
{
    return res->seconds > 0 ? (double)res->bytes / res->seconds / 1e9 : 0.0;
}

/* --hash on a qfmt file: the directory's checksums (XXH3-64 of each tensor's stored bytes),
 * which the verify just checked, in llama-gguf-hash's line layout or as a JSON object. */
static void print_hash_lines(const char *path)
{
    qfmt_reader *r = NULL;
    qfmt_error e;
    if (qfmt_reader_open(&r, path, NULL, &e) != QFMT_OK)
        return;
    for (uint64_t i = 0; i < qfmt_tensor_count(r); i++) {
        qfmt_tensor_info ti;
        if (qfmt_tensor_get_info(r, i, &ti, &e) != QFMT_OK)
            break;
        printf("%-8s  %016" PRIx64 "  %s:", "xxh3", ti.checksum, path);
        cli_print_escaped(stdout, ti.name, strlen(ti.name), 0);
        putchar('\n');
    }
    qfmt_reader_close(r);
}

static cJSON *hash_object(const char *path)
{
    qfmt_reader *r = NULL;
    qfmt_error e;
    cJSON *h = cJSON_CreateObject(), *t = cJSON_CreateObject();
    bool ok = h != NULL && cli_json_add(h, "algorithm", cJSON_CreateString("xxh3")) &&
              cli_json_add(h, "tensors", t);
    if (ok && qfmt_reader_open(&r, path, NULL, &e) == QFMT_OK) {
        for (uint64_t i = 0; ok && i < qfmt_tensor_count(r); i++) {
            qfmt_tensor_info ti;
            if (qfmt_tensor_get_info(r, i, &ti, &e) != QFMT_OK)
                break;
            ok = cli_json_add(t, ti.name, cli_json_hex64(ti.checksum));
        }
        qfmt_reader_close(r);
    }
    if (!ok) {
        cJSON_Delete(h);
        return NULL;
    }
    return h;
}

/* ---- Text --------------------------------------------------------------------------------- */

static void print_failure_line(const struct failure *f)
{
    char text[1024];
    fprintf(stderr, "qfmt: error: %s (tensor #%" PRIu64 ", bytes [%" PRIu64 ", %" PRIu64 "))\n",
            qfmt_error_format(&f->err, text, sizeof text), f->index, f->start, f->end);
}

static int report_text(const char *path, const struct verify_result *res)
{
    if (res->status == QFMT_OK) {
        if (res->hash)
            print_hash_lines(path);
        printf("%s: OK (%" PRIu64 " tensor%s, %" PRIu64 " bytes verified, %.2f GB/s)\n", path,
               res->tensors, res->tensors == 1 ? "" : "s", res->bytes, gb_per_s(res));
        return cli_finish_stdout(CLI_EXIT_OK);
    }
    /* the whole-file error first (it may be a padding error the per-tensor pass cannot see),
     * then every other bad tensor */
    bool first_listed = false;
    for (size_t k = 0; k < res->nfailures; k++) {
        if (same_error(&res->failures[k].err, &res->err)) {
            print_failure_line(&res->failures[k]);
            first_listed = true;
            break;
        }
    }
    if (!first_listed)
        cli_error_qfmt(&res->err);
    for (size_t k = 0; k < res->nfailures; k++)
        if (!same_error(&res->failures[k].err, &res->err))
            print_failure_line(&res->failures[k]);
    if (res->failures_incomplete)
        cli_error("%s: out of memory: more tensors may be bad", path);

    if (!res->opened)
        printf("%s: FAILED (%s)\n", path, qfmt_strerror(res->status));
    else if (res->nfailures > 0)
        printf("%s: FAILED (%s; %zu of %" PRIu64 " tensor%s bad)\n", path,
               qfmt_strerror(res->status), res->nfailures, res->tensors,
               res->tensors == 1 ? "" : "s");
    else
        printf("%s: FAILED (%s)\n", path, qfmt_strerror(res->status));
    return cli_finish_stdout(CLI_EXIT_FAILURE);
}

/* ---- JSON --------------------------------------------------------------------------------- */

static int report_json(const char *path, unsigned threads, const struct verify_result *res)
{
    bool good = res->status == QFMT_OK;
    cJSON *doc = cJSON_CreateObject();
    bool ok = doc != NULL && cli_json_add(doc, "file", cli_json_text(path, strlen(path)));
    ok = ok && cli_json_add(doc, "ok", cJSON_CreateBool(good));
    ok = ok && cli_json_add(doc, "threads", cli_json_u64(threads));
    ok = ok && cli_json_add(doc, "tensors", cli_json_u64(res->tensors));
    ok = ok && cli_json_add(doc, "bytes", cli_json_u64(res->bytes));
    ok = ok && cli_json_add(doc, "seconds", cJSON_CreateNumber(res->seconds));
    ok = ok && cli_json_add(doc, "gb_per_s", cJSON_CreateNumber(gb_per_s(res)));
    if (good) {
        ok = ok && cli_json_add(doc, "error", cJSON_CreateNull());
    } else {
        cJSON *e = ok ? cJSON_CreateObject() : NULL;
        ok = ok && cli_json_add(doc, "error", e) && cli_json_error_fields(e, &res->err);
    }
    cJSON *list = ok ? cJSON_CreateArray() : NULL;
    ok = ok && cli_json_add(doc, "failures", list);
    for (size_t k = 0; k < res->nfailures && ok; k++) {
        const struct failure *f = &res->failures[k];
        cJSON *o = cJSON_CreateObject();
        ok = cli_json_add(list, NULL, o);
        ok = ok && cli_json_add(o, "index", cli_json_u64(f->index));
        ok = ok && cli_json_error_fields(o, &f->err);
        ok = ok && cli_json_add(o, "start", cli_json_u64(f->start));
        ok = ok && cli_json_add(o, "end", cli_json_u64(f->end));
    }
    ok = ok && cli_json_add(doc, "failures_complete", cJSON_CreateBool(!res->failures_incomplete));
    if (res->hash)
        ok = ok && cli_json_add(doc, "hash", hash_object(path));

    int code = good ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
    if (!good)
        cli_error_qfmt(&res->err); /* stderr carries the error in both modes */
    if (!ok) {
        cli_error("%s: out of memory while building JSON", path);
        code = CLI_EXIT_FAILURE;
    } else if (cli_json_print(doc) != CLI_EXIT_OK) {
        code = CLI_EXIT_FAILURE;
    }
    cJSON_Delete(doc);
    return cli_finish_stdout(code);
}

/* ---- Command ------------------------------------------------------------------------------ */

int cmd_verify(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false, no_more_options = false;
    unsigned threads = 0;
    cli_hash_kind hash = CLI_HASH_NONE;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *value = NULL;
        int m;
        if (no_more_options || a[0] != '-' || a[1] == '\0') {
            if (path != NULL)
                return cli_usage_error("verify", usage, "unexpected argument '%s'", a);
            path = a;
        } else if (strcmp(a, "--") == 0) {
            no_more_options = true;
        } else if (cli_is_help(a)) {
            fputs(usage, stdout);
            return cli_finish_stdout(CLI_EXIT_OK);
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--hash") == 0 || strcmp(a, "--hash=xxh3") == 0) {
            hash = CLI_HASH_XXH3;
        } else if (strcmp(a, "--hash=xxh64") == 0) {
            hash = CLI_HASH_XXH64;
        } else if (strncmp(a, "--hash=", 7) == 0) {
            return cli_usage_error("verify", usage, "--hash: '%s' is not xxh3 or xxh64", a + 7);
        } else if ((m = cli_opt_value(argc, argv, &i, "--threads", &value)) != 0) {
            uint64_t n;
            if (m < 0)
                return cli_usage_error("verify", usage, "--threads needs a value");
            if (!cli_parse_u64(value, 0, MAX_THREADS, &n))
                return cli_usage_error("verify", usage,
                                       "--threads: '%s' is not a number from 0 to %d", value,
                                       MAX_THREADS);
            threads = (unsigned)n;
        } else {
            return cli_usage_error("verify", usage, "unknown option '%s'", a);
        }
    }
    if (path == NULL)
        return cli_usage_error("verify", usage, "missing FILE");
    if (threads == 0)
        threads = cli_online_cpus();

    if (cli_is_gguf(path))
        return cli_verify_gguf(path, threads, json, hash);
    if (hash == CLI_HASH_XXH64) {
        cli_error("%s: --hash=xxh64 is for GGUF files; a qfmt file's checksums are XXH3-64 "
                  "(--hash)", path);
        return CLI_EXIT_FAILURE;
    }
    struct verify_result res;
    run_verify(path, threads, &res);
    if (hash != CLI_HASH_NONE && res.status == QFMT_OK)
        res.hash = true;
    int code = json ? report_json(path, threads, &res) : report_text(path, &res);
    free(res.failures);
    return code;
}
