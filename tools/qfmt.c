/*
 * qfmt.c - the qfmt command-line tool: a thin main that dispatches to one subcommand.
 *
 *     qfmt <command> [options] [args]      run a command (tools/cmd_<command>.c)
 *     qfmt help [command] | --help         usage, on stdout
 *     qfmt --version                       tool, library and format versions
 *
 * Exit codes: 0 success, 1 failure, 2 usage error (cli.h).
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

/* Adding a command: write tools/cmd_<name>.c with `int cmd_<name>(int argc, char **argv)`,
 * declare it in cli.h and add a row here. */
static const struct qfmt_cmd cmds[] = {
    {"calibrate", cmd_calibrate, "collect an importance matrix (llama.cpp imatrix GGUF) over calibration text"},
    {"convert", cmd_convert, "convert a Hugging Face model or safetensors file to qfmt"},
    {"dequantize", cmd_dequantize, "write a qfmt file's tensors to a safetensors file"},
    {"dump", cmd_dump, "print header, metadata and tensor table"},
    {"eval", cmd_eval, "perplexity of a model over a token stream or text"},
    {"export", cmd_export, "write a qfmt model as a llama.cpp GGUF file"},
    {"run", cmd_run, "run a model (GPT-2, LLaMA, Mistral, Qwen, Gemma, Phi-3, BERT): generate, fill masks, dump logits"},
    {"tokenize", cmd_tokenize, "text to token ids and back, as Hugging Face tokenizers gives them"},
    {"verify", cmd_verify, "check structure and every checksum"},
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

static void print_usage(FILE *f)
{
    fputs("usage: qfmt <command> [options] [args]\n"
          "       qfmt help [<command>]\n"
          "       qfmt --version\n"
          "\n"
          "commands:\n",
          f);
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "  %-12s %s\n", cmds[i].name, cmds[i].summary);
    fputs("\n"
          "Run 'qfmt <command> --help' for a command's options.\n"
          "Exit status: 0 success, 1 failure (invalid or corrupt file, I/O error), 2 usage error.\n",
          f);
}

static void print_version(void)
{
    printf("qfmt %s (libqfmt %s, format %d.%d)\n", QFMT_VERSION_STRING, qfmt_version_string(),
           QFMT_FORMAT_VERSION_MAJOR, QFMT_FORMAT_VERSION_MINOR);
}

static const struct qfmt_cmd *find_cmd(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];

    if (cli_is_help(name) || strcmp(name, "help") == 0) {
        if (strcmp(name, "help") == 0 && argc > 2) { /* `qfmt help dump` = `qfmt dump --help` */
            const struct qfmt_cmd *c = find_cmd(argv[2]);
            if (c == NULL) {
                cli_error("unknown command '%s'", argv[2]);
                print_usage(stderr);
                return CLI_EXIT_USAGE;
            }
            char help[] = "--help";
            char *sub_argv[] = {argv[2], help, NULL};
            return c->run(2, sub_argv);
        }
        print_usage(stdout);
        return cli_finish_stdout(CLI_EXIT_OK);
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        print_version();
        return cli_finish_stdout(CLI_EXIT_OK);
    }

    const struct qfmt_cmd *c = find_cmd(name);
    if (c == NULL) {
        if (name[0] == '-')
            cli_error("unknown option '%s'", name);
        else
            cli_error("unknown command '%s'", name);
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
