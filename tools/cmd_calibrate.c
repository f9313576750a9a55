/*
 * cmd_calibrate.c - `qfmt calibrate MODEL --text FILE -o imatrix.gguf`: runs the model over
 * calibration text in windows of --ctx tokens and writes, for every matrix product with a
 * stored weight, the sum of squared input activations per column and the number of rows, as
 * llama.cpp's imatrix GGUF (qfmt_imatrix_*), for `qfmt convert --imatrix` and llama-quantize.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "model_cli.h"

static const char usage[] =
    "usage: qfmt calibrate MODEL --text FILE -o IMATRIX.gguf [--ctx N] [--chunks N] [--threads N]\n"
    "\n"
    "Runs MODEL over the calibration text FILE (UTF-8, or zstd-compressed) in consecutive windows\n"
    "of --ctx tokens, each from an empty context, and writes the importance matrix: for each\n"
    "linear weight, the sum over every input row of each input column's squared activation and\n"
    "the number of rows, in llama.cpp's imatrix GGUF layout (tensors <name>.in_sum2 and\n"
    "<name>.counts under llama.cpp's tensor names), read by `qfmt convert --imatrix` and by\n"
    "llama-quantize --imatrix alike. Use text the model will not be evaluated on.\n"
    "\n"
    "  --text FILE     calibration text, tokenized with MODEL's embedded tokenizer\n"
    "  -o, --output F  the imatrix file to write (replaced atomically)\n"
    "  --ctx N         window length (default 512, at most the model's context)\n"
    "  --chunks N      windows to run (default: every whole window of the text)\n"
    "  --threads N     worker threads (default: the number of CPUs)\n"
    "\n"
    "Progress goes to stderr on a terminal; the last line says what was written.\n"
    "Exit status: 0 written, 1 failure, 2 usage error.\n";

typedef struct {
    const char *model, *text, *out;
    uint64_t ctx, chunks;
    unsigned threads;
    bool ctx_given;
} options;

static int parse(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->ctx = 512;
    o->threads = cli_online_cpus();
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        uint64_t u;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return -1;
        } else if ((r = cli_opt_value(argc, argv, &i, "--text", &v)) != 0) {
            if (r < 0) return cli_usage_error("calibrate", usage, "--text needs a file");
            o->text = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--output", &v)) != 0 ||
                   (r = cli_opt_value(argc, argv, &i, "-o", &v)) != 0) {
            if (r < 0) return cli_usage_error("calibrate", usage, "%s needs a file", argv[i]);
            o->out = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--ctx", &v)) != 0) {
            if (r < 0 || !cli_parse_u64(v, 2, 1u << 20, &o->ctx))
                return cli_usage_error("calibrate", usage, "--ctx takes 2 or more");
            o->ctx_given = true;
        } else if ((r = cli_opt_value(argc, argv, &i, "--chunks", &v)) != 0) {
            if (r < 0 || !cli_parse_u64(v, 1, UINT32_MAX, &o->chunks))
                return cli_usage_error("calibrate", usage, "--chunks takes a count");
        } else if ((r = cli_opt_value(argc, argv, &i, "--threads", &v)) != 0) {
            if (r < 0 || !cli_parse_u64(v, 1, 256, &u)) return cli_usage_error("calibrate", usage, "--threads takes 1 to 256");
            o->threads = (unsigned)u;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("calibrate", usage, "unknown option '%s'", argv[i]);
        } else if (!o->model) {
            o->model = argv[i];
        } else {
            return cli_usage_error("calibrate", usage, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!o->model) return cli_usage_error("calibrate", usage, "no model file given");
    if (!o->text) return cli_usage_error("calibrate", usage, "no calibration text given (--text FILE)");
    if (!o->out) return cli_usage_error("calibrate", usage, "no output file given (-o IMATRIX.gguf)");
    return 0;
}

int cmd_calibrate(int argc, char **argv)
{
    options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? cli_finish_stdout(CLI_EXIT_OK) : rc;
    qfmt_reader *r = NULL;
    qfmt_model *m = NULL;
    qfmt_imatrix *im = NULL;
    int32_t *tokens = NULL;
    size_t ntok = 0;
    qfmt_error e;
    char eb[1024];
    rc = CLI_EXIT_FAILURE;
    if (cli_open_model(o.model, &r, &m) != 0) goto done;
    const qfmt_model_hparams *h = qfmt_model_hparams_get(m);
    if (o.ctx > h->ctx) {
        if (o.ctx_given) {
            cli_error("--ctx %" PRIu64 " exceeds the model's context of %" PRIu64, o.ctx, h->ctx);
            goto done;
        }
        o.ctx = h->ctx; /* the default, 512, shortened to the model's */
    }
    if (cli_text_tokens(o.text, r, &tokens, &ntok) != 0) goto done;
    size_t ctx = (size_t)o.ctx, chunks = ntok / ctx;
    if (o.chunks) {
        if (o.chunks > chunks) {
            cli_error("%s: %zu tokens hold %zu windows of %zu, not %" PRIu64, o.text, ntok, chunks, ctx, o.chunks);
            goto done;
        }
        chunks = (size_t)o.chunks;
    }
    if (chunks == 0) {
        cli_error("%s: %zu tokens do not fill one window of %zu", o.text, ntok, ctx);
        goto done;
    }
    if (qfmt_imatrix_new(&im, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        goto done;
    }
    const char *base = strrchr(o.text, '/');
    if (qfmt_imatrix_add_dataset(im, base ? base + 1 : o.text, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        goto done;
    }
    qfmt_run_opts ro = {o.threads, true, {0}}; /* the exact path: fp32 activations */
    bool show = isatty(STDERR_FILENO);
    double t0 = cli_now();
    for (size_t c = 0; c < chunks; c++) {
        if (qfmt_imatrix_collect(im, m, tokens + c * ctx, ctx, &ro, &e) != QFMT_OK) {
            cli_error("%s: window %zu: %s", o.model, c, qfmt_error_format(&e, eb, sizeof eb));
            goto done;
        }
        if (show) {
            double dt = cli_now() - t0, tps = (double)((c + 1) * ctx) / (dt > 0 ? dt : 1e-9);
            fprintf(stderr, "\rcalibrate: window %zu/%zu  %.0f tok/s  %.0f s left   ", c + 1, chunks, tps,
                    (double)((chunks - c - 1) * ctx) / (tps > 0 ? tps : 1));
            fflush(stderr);
        }
    }
    if (show) fputc('\n', stderr);
    if (qfmt_imatrix_save(im, o.out, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        goto done;
    }
    fprintf(stderr, "qfmt: calibrate: %zu windows of %zu tokens (%zu of the text's %zu), %zu weights -> %s (%.1f s)\n",
            chunks, ctx, chunks * ctx, ntok, qfmt_imatrix_count(im), o.out, cli_now() - t0);
    rc = CLI_EXIT_OK;
done:
    qfmt_imatrix_free(im);
    free(tokens);
    qfmt_model_free(m);
    qfmt_reader_close(r);
    return cli_finish_stdout(rc);
}
