/*
 * cmd_dequantize.c - qfmt dequantize: parses the arguments, calls qfmt_dequantize_file
 * (libqfmt_model/src/dequantize.c) and prints a summary.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "qfmt_model.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: qfmt dequantize FILE -o OUT.safetensors [--dtype f32|f16|bf16] [--threads N]\n"
    "\n"
    "Writes every tensor of FILE to a safetensors file any safetensors reader can load, under\n"
    "the source's names and layouts. Float tensors keep their type unless --dtype is given;\n"
    "block-quantized ones are decoded to --dtype (default f32). Integer tensors are copied.\n"
    "The output is replaced atomically; nothing is left behind on failure.\n"
    "Exit status: 0 written, 1 failure, 2 usage error.\n";

int cmd_dequantize(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    uint32_t dtype = QFMT_DEQUANTIZE_KEEP;
    unsigned threads = cli_online_cpus();
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return cli_finish_stdout(CLI_EXIT_OK);
        } else if ((r = cli_opt_value(argc, argv, &i, "--output", &v)) != 0 ||
                   (r = cli_opt_value(argc, argv, &i, "-o", &v)) != 0) {
            if (r < 0) return cli_usage_error("dequantize", usage, "-o needs a value");
            out = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--dtype", &v)) != 0) {
            if (r < 0 || qfmt_type_from_name(v, &dtype) != QFMT_OK ||
                (dtype != QFMT_TYPE_F32 && dtype != QFMT_TYPE_F16 && dtype != QFMT_TYPE_BF16))
                return cli_usage_error("dequantize", usage, "--dtype takes f32, f16 or bf16");
        } else if ((r = cli_opt_value(argc, argv, &i, "--threads", &v)) != 0) {
            uint64_t n;
            if (r < 0 || !cli_parse_u64(v, 1, 256, &n))
                return cli_usage_error("dequantize", usage, "--threads takes a number from 1 to 256");
            threads = (unsigned)n;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_usage_error("dequantize", usage, "unknown option '%s'", argv[i]);
        } else if (!in) {
            in = argv[i];
        } else {
            return cli_usage_error("dequantize", usage, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!in) return cli_usage_error("dequantize", usage, "no input file given");
    if (!out) return cli_usage_error("dequantize", usage, "no output file given (-o OUT.safetensors)");

    qfmt_error e;
    qfmt_reader *r = NULL;
    if (qfmt_reader_open(&r, in, NULL, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        return CLI_EXIT_FAILURE;
    }
    cli_job job = {"dequantize", cli_now(), -1};
    bool show = isatty(STDERR_FILENO);
    qfmt_dequantize_opts o = QFMT_DEQUANTIZE_OPTS_INIT;
    o.dtype = dtype;
    o.threads = threads;
    o.progress = show ? cli_job_progress : NULL;
    o.temp_file = cli_job_temp_file; /* SIGINT/SIGTERM/SIGHUP remove the temporary file */
    o.ctx = &job;
    qfmt_dequantize_result res;
    qfmt_status s = qfmt_dequantize_file(r, out, &o, &res, &e);
    if (show && res.tensors) fputc('\n', stderr);
    int rc = CLI_EXIT_OK;
    if (s != QFMT_OK) {
        cli_error_qfmt(&e);
        rc = CLI_EXIT_FAILURE;
    } else {
        printf("wrote %" PRIu64 " tensors, %" PRIu64 " data bytes to %s\n", res.tensors, res.bytes, out);
    }
    qfmt_reader_close(r);
    return cli_finish_stdout(rc);
}
