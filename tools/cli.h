/*
 * cli.h - declarations shared by the qfmt command-line tool (the .c files in tools/).
 *
 * tools/qfmt.c is a thin main holding the command table; each tools/cmd_<name>.c holds one
 * subcommand and its usage text; tools/cli.c holds the helpers below. Conventions (STYLE.md 9):
 *  - exit codes: 0 success, 1 failure (bad or corrupt file, verify failing, I/O), 2 usage;
 *  - `qfmt <cmd> --help` prints the command's usage to stdout and exits 0; a usage error prints
 *    `qfmt: error: <cmd>: <what>` and the synopsis to stderr and exits 2;
 *  - stdout carries only results; errors go to stderr as `qfmt: error: <context>`.
 */
#ifndef QFMT_CLI_H
#define QFMT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qfmt.h"

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,
    CLI_EXIT_USAGE = 2,
};

/* One subcommand: argv[0] is the command's name, argv[argc] is NULL. Returns an exit code. */
typedef int (*cli_cmd_fn)(int argc, char **argv);

struct qfmt_cmd {
    const char *name;
    cli_cmd_fn run;
    const char *summary; /* one line for `qfmt --help` */
};

/* Subcommands (tools/cmd_<name>.c). Later: convert, dequantize, run, eval. */
int cmd_calibrate(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_dequantize(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_verify(int argc, char **argv);

/* ---- Messages ----------------------------------------------------------------------------- */

#if defined(__GNUC__) || defined(__clang__)
#  define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define CLI_PRINTF(f, a)
#endif

/* Prints `qfmt: error: <qfmt_error_format(e)>` to stderr. */
void cli_error_qfmt(const qfmt_error *e);
/* Prints `qfmt: error: path: tensor 'name' at byte N: <formatted text>` to stderr, as
 * cli_error_qfmt does (tensor NULL or "", offset QFMT_NO_OFFSET: left out). Names from a file
 * go in `tensor`, where libqfmt's escaping of control characters applies (qfmt_error_format). */
void cli_error_at(const char *path, const char *tensor, uint64_t offset, const char *fmt, ...)
    CLI_PRINTF(4, 5);
/* Prints `qfmt: error: <formatted text>` to stderr. */
void cli_error(const char *fmt, ...) CLI_PRINTF(1, 2);
/* Prints `qfmt: error: <cmd>: <formatted text>`, the first line of `usage` and a pointer to
 * `qfmt <cmd> --help` to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...) CLI_PRINTF(3, 4);
/* Flushes stdout; on a write error (disk full, closed pipe...) reports it and returns
 * CLI_EXIT_FAILURE, else returns `code` unchanged. Call before returning from a command. */
int cli_finish_stdout(int code);

/* ---- Temporary files and signals ---------------------------------------------------------
 * A writing command's temporary file (qfmt_writer_temp_path, qfmt_st_writer_temp_path) is
 * removed by the library on every error and on free; on SIGINT, SIGTERM or SIGHUP the process
 * dies before that, so the tool layer keeps a small async-signal-safe registry of such paths:
 * the handler unlinks each, then re-raises the signal with its default action (the exit status
 * still says which signal). Signals ignored when the process started stay ignored. */
enum { CLI_TEMP_SLOTS = 8 };
/* Guards `path` (copied; NULL or too long: nothing guarded). Returns a slot for
 * cli_temp_unguard, or -1 if nothing is guarded. */
int cli_temp_guard(const char *path);
/* Stops guarding `slot` (-1: no-op). Call before the writer is freed. */
void cli_temp_unguard(int slot);

/* What a writing command's library callbacks share (qfmt_convert_opts, qfmt_dequantize_opts:
 * ctx points to one): the verb shown in progress lines, the start time and the guarded slot. */
typedef struct {
    const char *verb; /* "convert", "dequantize" */
    double t0;        /* cli_now() at the start */
    int slot;         /* -1 at the start */
} cli_job;
/* temp_file callback: guards the library's temporary file while it exists (NULL: done). */
void cli_job_temp_file(void *job, const char *path);
/* progress callback: "\r<verb>: tensor i/n  MB/s  ETA" on stderr (call it only on a terminal). */
void cli_job_progress(void *job, uint64_t done, uint64_t total, uint64_t bytes, uint64_t all_bytes);

/* Opens `path` for reading if it is a regular file, never blocking on a FIFO or device
 * (qfmt_file_open_read). NULL with a `qfmt: error:` message naming the file printed. */
FILE *cli_fopen_read(const char *path);

/* ---- Arguments ---------------------------------------------------------------------------- */

/* True for "-h" and "--help". */
bool cli_is_help(const char *arg);
/* Matches argv[*i] against the long option `name` ("--threads") taking a value, written either
 * "--threads N" or "--threads=N". Returns 1 and sets *value (advancing *i past a separate
 * value) on a match, 0 if argv[*i] is another argument, -1 if the value is missing. */
int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **value);
/* Parses a decimal unsigned integer in [min, max], whole string. */
bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* ---- Formatting --------------------------------------------------------------------------- */

/* Number of online CPUs, at least 1. */
unsigned cli_online_cpus(void);
/* Seconds from a monotonic clock. */
double cli_now(void);

/* "f32", or "unknown(ID)" for a type this library does not know. Returns buf. */
const char *cli_type_name(uint32_t type, char *buf, size_t buf_size);
/* "none", "zstd", or "unknown(ID)". Returns buf. */
const char *cli_codec_name(uint32_t codec, char *buf, size_t buf_size);
/* "[4096, 32000]" ("[]" for a scalar). Returns buf (truncated to fit). */
const char *cli_shape(const uint64_t *dims, uint32_t ndim, char *buf, size_t buf_size);
/* "1.5 MiB" style, for human output only. Returns buf. */
const char *cli_human_bytes(uint64_t bytes, char *buf, size_t buf_size);
/* Stable name of a status code ("QFMT_E_CHECKSUM"), for --json output. */
const char *cli_status_name(qfmt_status s);

/* Writes `len` bytes of UTF-8 text to `f` safe for a terminal: control characters, quotes and
 * backslashes are escaped (\n, \t, \", \\, \xNN); at most `max_bytes` source bytes are shown
 * (cut on a character boundary) unless max_bytes is 0. Returns true if the text was cut. */
bool cli_print_escaped(FILE *f, const char *s, size_t len, size_t max_bytes);
/* Terminal columns cli_print_escaped(f, s, len, 0) takes (for aligning table columns). */
size_t cli_escaped_width(const char *s, size_t len);
/* Shortest decimal text that reads back as the same float (is_f32) or double; "nan", "inf",
 * "-inf" for the non-finite values. Returns buf. */
const char *cli_format_real(double v, bool is_f32, char *buf, size_t buf_size);

/* ---- Tensor values (tools/values.c) ------------------------------------------------------ */

typedef enum {
    CLI_VALUE_F32,  /* .f: F32, F16, BF16 and block-quantized types (decoded to f32) */
    CLI_VALUE_F64,  /* .f */
    CLI_VALUE_INT,  /* .i: I8, I16, I32, I64 */
    CLI_VALUE_UINT, /* .u: U8, and BOOL bytes other than 0 and 1 */
    CLI_VALUE_BOOL, /* .u: 0 or 1 */
} cli_value_kind;

typedef struct cli_value {
    cli_value_kind kind;
    double f;
    int64_t i;
    uint64_t u;
} cli_value;

/* Calls fn for each of the first `max` values of tensor `index` (all when max is UINT64_MAX),
 * in storage order. The stored bytes are checksummed first; a view is used when the tensor
 * is uncompressed, else it is decoded into a buffer. fn returns false to stop (then
 * QFMT_E_NOMEM is returned: callers stop only when out of memory). QFMT_E_UNSUPPORTED if the
 * type or codec is not one this library can decode. */
typedef bool (*cli_value_fn)(void *ctx, const cli_value *v);
qfmt_status cli_tensor_values(const qfmt_reader *r, uint64_t index, uint64_t max, cli_value_fn fn,
                              void *ctx, qfmt_error *err);

/* ---- GGUF files (gguf_view.c) ---------------------------------------------------------------
 * dump and verify take a GGUF file too, recognized by its magic. */
typedef struct cli_dump_opts {
    const char *path;
    bool json;
    bool show_meta;
    bool show_tensors;
    bool full_meta;
    bool show_values;
    uint64_t max_values; /* per tensor; UINT64_MAX: all */
} cli_dump_opts;

typedef enum {
    CLI_HASH_NONE,
    CLI_HASH_XXH3,  /* XXH3-64, qfmt's checksum */
    CLI_HASH_XXH64, /* XXH64, llama-gguf-hash's default */
} cli_hash_kind;

/* Whether `path` is a readable file starting with "GGUF". */
bool cli_is_gguf(const char *path);
/* `qfmt dump` of a GGUF file; returns an exit code. */
int cli_dump_gguf(const char *path, const cli_dump_opts *o);
/* `qfmt verify` of a GGUF file: structure and bounds (open), every tensor's bytes read and,
 * for float and block types, decoded to finite values; per-tensor hashes when asked. */
int cli_verify_gguf(const char *path, unsigned threads, bool json, cli_hash_kind hash);

/* ---- JSON (cJSON) --------------------------------------------------------------------------
 * cJSON keeps numbers as doubles and prints big integers with 15-17 significant digits, so
 * integers are emitted as raw JSON text: exact decimal up to 2^53, a decimal string beyond (a
 * JSON reader's doubles would round them). All return NULL when out of memory. */
typedef struct cJSON cJSON;

cJSON *cli_json_u64(uint64_t v);
cJSON *cli_json_i64(int64_t v);
/* Shortest round-trip decimal; "nan", "inf", "-inf" as strings (JSON has no such numbers). */
cJSON *cli_json_real(double v, bool is_f32);
/* A JSON string from `len` bytes that may hold NUL or invalid UTF-8 (each bad byte becomes
 * U+FFFD), so the document always parses. */
cJSON *cli_json_text(const char *s, size_t len);
/* 16 lowercase hex digits. */
cJSON *cli_json_hex64(uint64_t v);
/* Adds `item` to `obj` under `key` (or to an array when key is NULL). Returns false, freeing
 * `item`, if item is NULL or the add fails: callers AND the results and fail on OOM once. */
bool cli_json_add(cJSON *obj, const char *key, cJSON *item);
/* Adds code, code_name, message, text (qfmt_error_format), offset (null if none) and tensor
 * (null if none) of `e` to object `o`; false when out of memory. */
bool cli_json_error_fields(cJSON *o, const qfmt_error *e);
/* Prints `doc` to stdout followed by a newline. Returns an exit code. */
int cli_json_print(const cJSON *doc);

/* ---- JSON, streamed ------------------------------------------------------------------------
 * Writes a JSON document as it is walked, in exactly cJSON_Print's layout (tab indents,
 * "key":<TAB>value, arrays on one line as [a, b]), so memory stays bounded whatever the
 * lengths of the arrays written. `key` names the member inside an object and is NULL inside an
 * array (or for the top-level value). Values are written as the cli_json_* builders above would
 * make them (integers beyond 2^53 and non-finite reals as strings, text as cli_json_text). The
 * nesting is the caller's own structure, at most CLI_JW_MAX_DEPTH deep. */
enum { CLI_JW_MAX_DEPTH = 16 };
typedef struct cli_jw {
    FILE *f;
    unsigned depth;                         /* containers open */
    bool is_array[CLI_JW_MAX_DEPTH];
    bool has_items[CLI_JW_MAX_DEPTH];
} cli_jw;

void cli_jw_init(cli_jw *w, FILE *f);
void cli_jw_object(cli_jw *w, const char *key); /* opens {, closed by cli_jw_end */
void cli_jw_array(cli_jw *w, const char *key);  /* opens [, closed by cli_jw_end */
void cli_jw_end(cli_jw *w);
void cli_jw_u64(cli_jw *w, const char *key, uint64_t v);
void cli_jw_i64(cli_jw *w, const char *key, int64_t v);
void cli_jw_real(cli_jw *w, const char *key, double v, bool is_f32);
/* cJSON_CreateNumber's text (%1.15g, else %1.17g; null for NaN/Inf). */
void cli_jw_number(cli_jw *w, const char *key, double v);
void cli_jw_bool(cli_jw *w, const char *key, bool v);
void cli_jw_null(cli_jw *w, const char *key);
void cli_jw_text(cli_jw *w, const char *key, const char *s, size_t len); /* any bytes */
void cli_jw_string(cli_jw *w, const char *key, const char *s);           /* NUL-terminated */
void cli_jw_hex64(cli_jw *w, const char *key, uint64_t v);
void cli_jw_hex_bytes(cli_jw *w, const char *key, const void *p, uint64_t len);
/* Ends the document with a newline and flushes. Returns false if writing failed. */
bool cli_jw_finish(cli_jw *w);

#endif /* QFMT_CLI_H */
