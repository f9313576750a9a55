/*
 * cmd_convert.c - qfmt convert: parses the command line, calls qfmt_convert_hf (libqfmt_model:
 * the checkpoint import and the streaming convert pipeline) and prints its notes, progress and
 * a summary.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "qfmt_model.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: qfmt convert SRC -o OUT.qfmt [--type T] [--quality fast|best] [--compress zstd[:LEVEL]]\n"
    "                    [--threads N] [--keep GLOB]... [--quantize GLOB]... [--strict]\n"
    "\n"
    "Converts a Hugging Face model directory (config.json and model.safetensors, or shards listed\n"
    "by model.safetensors.index.json) or a single .safetensors file to qfmt.\n"
    "\n"
    "  -o, --output OUT    the file to write (replaced atomically; nothing is left on failure)\n"
    "  --type T            f32, f16, bf16, q8_0, q5_0, q5_1, q4_0, q4_1, q2_k, q3_k, q4_k,\n"
    "                      q5_k, q6_k, iq4_nl, iq4_xs, q8_z, q4_z (default: f32)\n"
    "                      With a block type, 2-D weights whose rows hold whole blocks of 32\n"
    "                      are quantized; embeddings, the output head, norms, biases and 1-D\n"
    "                      tensors keep their source type. With a float type every float\n"
    "                      tensor takes it.\n"
    "  --quality Q         fast: the reference quantizer, ggml's bytes (default);\n"
    "                      best: a per-block search for the least squared error\n"
    "  --compress zstd[:L] zstd-compress each tensor (level L, default 3) when that saves space\n"
    "  --threads N         worker threads (default: the number of CPUs)\n"
    "  --keep GLOB         keep tensors whose name matches at their source type (repeatable)\n"
    "  --quantize GLOB     give matching tensors the target type where possible (repeatable)\n"
    "  --strict            fail when qfmt cannot reproduce the model's tokenizer.json exactly\n"
    "                      (without it: a warning naming the component, and the file is written)\n"
    "\n"
    "Prints one summary line on stdout; progress on stderr when it is a terminal.\n"
    "Exit status: 0 converted, 1 failure (bad input, I/O error), 2 usage error.\n";

typedef struct {
    const char *src, *out;
    uint32_t type;
    bool best, strict;
    int zstd_level; /* -1: no compression */
    unsigned threads;
    const char **keep, **quant;
    size_t nkeep, nquant;
} options;

static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->type = QFMT_TYPE_F32;
    o->zstd_level = -1;
    o->threads = cli_online_cpus();
    o->keep = calloc((size_t)argc, sizeof *o->keep);
    o->quant = calloc((size_t)argc, sizeof *o->quant);
    if (!o->keep || !o->quant) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return -1;
        } else if ((r = cli_opt_value(argc, argv, &i, "--output", &v)) != 0 ||
                   (r = cli_opt_value(argc, argv, &i, "-o", &v)) != 0) {
            if (r < 0) return cli_usage_error("convert", usage, "%s needs a value", argv[i]);
            o->out = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--type", &v)) != 0) {
            if (r < 0 || qfmt_type_from_name(v, &o->type) != QFMT_OK ||
                !(o->type == QFMT_TYPE_F32 || o->type == QFMT_TYPE_F16 || o->type == QFMT_TYPE_BF16 ||
                  qfmt_type_get_traits(o->type)->block_elems > 1))
                return cli_usage_error("convert", usage, "--type takes f32, f16, bf16 or a block type (q8_0, q4_k, iq4_xs, ...: see --help)");
        } else if ((r = cli_opt_value(argc, argv, &i, "--quality", &v)) != 0) {
            if (r < 0 || (strcmp(v, "fast") != 0 && strcmp(v, "best") != 0))
                return cli_usage_error("convert", usage, "--quality takes fast or best");
            o->best = strcmp(v, "best") == 0;
        } else if ((r = cli_opt_value(argc, argv, &i, "--compress", &v)) != 0) {
            uint64_t level = 3;
            if (r < 0 || strncmp(v, "zstd", 4) != 0 || (v[4] != '\0' && v[4] != ':') ||
                (v[4] == ':' && !cli_parse_u64(v + 5, 1, 19, &level)))
                return cli_usage_error("convert", usage, "--compress takes zstd or zstd:LEVEL (1..19)");
            o->zstd_level = (int)level;
        } else if ((r = cli_opt_value(argc, argv, &i, "--threads", &v)) != 0) {
            uint64_t n;
            if (r < 0 || !cli_parse_u64(v, 1, 256, &n))
                return cli_usage_error("convert", usage, "--threads takes a number from 1 to 256");
            o->threads = (unsigned)n;
        } else if ((r = cli_opt_value(argc, argv, &i, "--keep", &v)) != 0) {
            if (r < 0) return cli_usage_error("convert", usage, "--keep needs a glob");
            o->keep[o->nkeep++] = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--quantize", &v)) != 0) {
            if (r < 0) return cli_usage_error("convert", usage, "--quantize needs a glob");
            o->quant[o->nquant++] = v;
        } else if (strcmp(argv[i], "--strict") == 0) {
            o->strict = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_usage_error("convert", usage, "unknown option '%s'", argv[i]);
        } else if (!o->src) {
            o->src = argv[i];
        } else {
            return cli_usage_error("convert", usage, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!o->src) return cli_usage_error("convert", usage, "no source model given");
    if (!o->out) return cli_usage_error("convert", usage, "no output file given (-o OUT.qfmt)");
    return 0;
}

static void on_warning(void *ctx, const char *message)
{
    (void)ctx;
    fprintf(stderr, "qfmt: warning: %s\n", message);
}

static void on_note(void *ctx, const char *tensor, uint32_t stored, const char *why)
{
    (void)ctx;
    char tn[24];
    fprintf(stderr, "qfmt: note: tensor '%s' is stored as %s: %s\n", tensor, cli_type_name(stored, tn, sizeof tn),
            why);
}

int cmd_convert(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        free(o.keep);
        free(o.quant);
        return rc < 0 ? cli_finish_stdout(CLI_EXIT_OK) : rc;
    }
    double t0 = cli_now();
    cli_job job = {"convert", t0, -1};
    bool show = isatty(STDERR_FILENO);
    qfmt_convert_opts co = QFMT_CONVERT_OPTS_INIT;
    co.type = o.type;
    co.quality = o.best ? QFMT_QUALITY_BEST : QFMT_QUALITY_REFERENCE;
    co.zstd_level = o.zstd_level < 0 ? 0 : o.zstd_level;
    co.threads = o.threads;
    co.keep = o.keep;
    co.nkeep = o.nkeep;
    co.quantize = o.quant;
    co.nquantize = o.nquant;
    co.note = on_note;
    co.warning = on_warning;
    co.flags = o.strict ? QFMT_CONVERT_STRICT_TOKENIZER : 0;
    co.progress = show ? cli_job_progress : NULL;
    co.temp_file = cli_job_temp_file;
    co.ctx = &job;
    qfmt_convert_result res;
    qfmt_error e;
    qfmt_status s = qfmt_convert_hf(o.src, o.out, &co, &res, &e);
    if (show && res.tensors_total) fputc('\n', stderr);
    if (s != QFMT_OK) {
        cli_error_qfmt(&e);
        rc = CLI_EXIT_FAILURE;
    } else {
        qfmt_reader *r = NULL;
        qfmt_file_info fi;
        memset(&fi, 0, sizeof fi);
        if (qfmt_reader_open(&r, o.out, NULL, NULL) == QFMT_OK) qfmt_reader_file_info(r, &fi);
        qfmt_reader_close(r);
        double dt = cli_now() - t0;
        printf("converted %" PRIu64 " tensors: %" PRIu64 " bytes in, %" PRIu64
               " bytes out (data %" PRIu64 "), %.3f bits/weight, %.2f s, %.0f MB/s\n",
               res.tensors, res.bytes_total, fi.file_size, fi.data_size,
               res.elements ? 8.0 * (double)fi.data_size / (double)res.elements : 0.0, dt,
               dt > 0 ? (double)res.bytes_total / dt / 1e6 : 0.0);
    }
    free(o.keep);
    free(o.quant);
    return cli_finish_stdout(rc);
}
