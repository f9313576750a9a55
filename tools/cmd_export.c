/*
 * cmd_export.c - qfmt export: parses the arguments, calls qfmt_export_gguf (libqfmt_model:
 * gguf_export.c) and prints its notes, warnings and a summary.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "qfmt_model.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: qfmt export FILE -o OUT.gguf [--requantize] [--quality fast|best] [--threads N]\n"
    "\n"
    "Writes the model in FILE (gpt2, llama, mistral, qwen2, qwen3, gemma2, gemma3_text, phi3,\n"
    "bert) as a llama.cpp GGUF file: version 3, alignment 32, llama.cpp's architecture keys and\n"
    "tensor names and layouts (the llama architecture's q/k row permutation, Gemma's 1 + w norms),\n"
    "tokenizer.ggml.* from the embedded tokenizer.json, general.* keys. Tensors keep their types\n"
    "and bytes; f16/bf16 1-D tensors, biases, position and token-type embeddings are widened\n"
    "to f32, as convert_hf_to_gguf.py stores them.\n"
    "Tensors llama.cpp has no name for (BERT's MLM head) are left out, with a note.\n"
    "\n"
    "  -o, --output OUT  the GGUF file to write (replaced atomically; nothing is left on failure)\n"
    "  --requantize      re-encode qfmt's own types, which ggml does not have, as the nearest ggml\n"
    "                    type: q8_z as q8_0, q4_z as q4_1 (both affine with an offset, as q4_z).\n"
    "                    Without it a file holding q8_z or q4_z tensors is refused, naming the\n"
    "                    first one (their bytes could not be kept)\n"
    "  --quality Q       the re-encoding quantizer: fast (ggml's reference, default) or best\n"
    "  --threads N       re-encoding threads (default: the number of CPUs)\n"
    "\n"
    "What llama.cpp's keys cannot hold (the checkpoint's dtype, a llama3 RoPE's parameters, ...)\n"
    "is written as qfmt.model.* keys, which llama.cpp ignores and `qfmt convert FILE.gguf` reads\n"
    "back. Warnings say where llama.cpp will compute differently from qfmt run.\n"
    "Prints one summary line on stdout; progress on stderr when it is a terminal.\n"
    "Exit status: 0 written, 1 failure (bad input, unsupported model, I/O error), 2 usage error.\n";

static void on_note(void *ctx, const char *tensor, const char *what)
{
    (void)ctx;
    fputs("qfmt: note: tensor '", stderr);
    cli_print_escaped(stderr, tensor, strlen(tensor), 120);
    fprintf(stderr, "': %s\n", what);
}

static void on_warning(void *ctx, const char *message)
{
    (void)ctx;
    fprintf(stderr, "qfmt: warning: %s\n", message);
}

typedef struct {
    cli_job job; /* first: cli_job's callbacks take the context as a cli_job */
} export_ctx;

int cmd_export(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    bool requantize = false, best = false;
    unsigned threads = cli_online_cpus();
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return cli_finish_stdout(CLI_EXIT_OK);
        } else if ((r = cli_opt_value(argc, argv, &i, "--output", &v)) != 0 ||
                   (r = cli_opt_value(argc, argv, &i, "-o", &v)) != 0) {
            if (r < 0) return cli_usage_error("export", usage, "-o needs a value");
            out = v;
        } else if (strcmp(argv[i], "--requantize") == 0) {
            requantize = true;
        } else if ((r = cli_opt_value(argc, argv, &i, "--quality", &v)) != 0) {
            if (r < 0 || (strcmp(v, "fast") != 0 && strcmp(v, "best") != 0))
                return cli_usage_error("export", usage, "--quality takes fast or best");
            best = strcmp(v, "best") == 0;
        } else if ((r = cli_opt_value(argc, argv, &i, "--threads", &v)) != 0) {
            uint64_t n;
            if (r < 0 || !cli_parse_u64(v, 1, 256, &n))
                return cli_usage_error("export", usage, "--threads takes a number from 1 to 256");
            threads = (unsigned)n;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_usage_error("export", usage, "unknown option '%s'", argv[i]);
        } else if (!in) {
            in = argv[i];
        } else {
            return cli_usage_error("export", usage, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!in) return cli_usage_error("export", usage, "no input file given");
    if (!out) return cli_usage_error("export", usage, "no output file given (-o OUT.gguf)");

    qfmt_error e;
    qfmt_reader *r = NULL;
    if (qfmt_reader_open(&r, in, NULL, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        return CLI_EXIT_FAILURE;
    }
    export_ctx ec = {{"export", cli_now(), -1}};
    bool show = isatty(STDERR_FILENO);
    qfmt_export_opts o = QFMT_EXPORT_OPTS_INIT;
    o.z_types = requantize ? QFMT_EXPORT_Z_REQUANTIZE : QFMT_EXPORT_Z_REFUSE;
    o.quality = best ? QFMT_QUALITY_BEST : QFMT_QUALITY_REFERENCE;
    o.threads = threads;
    o.progress = show ? cli_job_progress : NULL;
    o.note = on_note;
    o.warning = on_warning;
    o.temp_file = cli_job_temp_file; /* SIGINT/SIGTERM/SIGHUP remove the temporary file */
    o.ctx = &ec;
    qfmt_status s = qfmt_export_gguf(r, out, &o, &e);
    if (show) fputc('\n', stderr);
    int rc = CLI_EXIT_OK;
    if (s != QFMT_OK) {
        cli_error_qfmt(&e);
        rc = CLI_EXIT_FAILURE;
    } else {
        qfmt_gguf *g = NULL;
        uint64_t ntensors = 0, nkv = 0, size = 0, ft = 0;
        const char *arch = "";
        size_t alen = 0;
        if (qfmt_gguf_open(&g, out, NULL) == QFMT_OK) {
            ntensors = qfmt_gguf_tensor_count(g);
            nkv = qfmt_gguf_kv_count(g);
            size = qfmt_gguf_file_size(g);
            qfmt_gguf_get_u64(g, "general.file_type", &ft, NULL);
            qfmt_gguf_get_str(g, "general.architecture", &arch, &alen, NULL);
        }
        printf("exported %" PRIu64 " tensors and %" PRIu64 " keys to %s (GGUF v3, %.*s, file type %" PRIu64 "), %" PRIu64
               " bytes, %.2f s\n",
               ntensors, nkv, out, (int)alen, arch, ft, size, cli_now() - ec.job.t0);
        qfmt_gguf_close(g);
    }
    qfmt_reader_close(r);
    return cli_finish_stdout(rc);
}
