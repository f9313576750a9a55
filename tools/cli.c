/*
 * cli.c - helpers shared by the qfmt subcommands: messages, argument parsing, formatting and
 * JSON building. See cli.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- Messages ----------------------------------------------------------------------------- */

void cli_error_qfmt(const qfmt_error *e)
{
    char buf[1024];
    fprintf(stderr, "qfmt: error: %s\n", qfmt_error_format(e, buf, sizeof buf));
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("qfmt: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_error_at(const char *path, const char *tensor, uint64_t offset, const char *fmt, ...)
{
    qfmt_error e;
    memset(&e, 0, sizeof e);
    e.code = QFMT_E_IO; /* unused by the formatting when there is a message */
    e.offset = offset;
    snprintf(e.path, sizeof e.path, "%s", path ? path : "");
    snprintf(e.tensor, sizeof e.tensor, "%s", tensor ? tensor : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    cli_error_qfmt(&e);
}

int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qfmt: error: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    /* the synopsis (first line of the usage text) and where to find the rest */
    const char *nl = strchr(usage, '\n');
    fprintf(stderr, "%.*s\nRun 'qfmt %s --help' for details.\n",
            nl ? (int)(nl - usage) : (int)strlen(usage), usage, cmd);
    return CLI_EXIT_USAGE;
}

int cli_finish_stdout(int code)
{
    /* fflush reports errors stdio kept from earlier writes too (e.g. ENOSPC on a redirect). */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("writing to standard output: %s", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    return code;
}

/* ---- Temporary files and signals --------------------------------------------------------- */

/* The handler reads only these: a slot's path is written before its flag is set (release),
 * and the handler reads the flag (acquire) before the path, whichever thread it runs on. */
static char temp_paths[CLI_TEMP_SLOTS][PATH_MAX];
static atomic_int temp_used[CLI_TEMP_SLOTS];
static atomic_flag handlers_installed = ATOMIC_FLAG_INIT;
static const int guarded_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void on_fatal_signal(int sig)
{
    int saved = errno;
    for (int k = 0; k < CLI_TEMP_SLOTS; k++)
        if (atomic_exchange_explicit(&temp_used[k], 0, memory_order_acq_rel))
            unlink(temp_paths[k]); /* async-signal-safe */
    errno = saved;
    signal(sig, SIG_DFL);
    raise(sig); /* dies of it once the handler returns (the signal is blocked until then) */
}

static void install_handlers(void)
{
    if (atomic_flag_test_and_set(&handlers_installed)) return;
    for (size_t k = 0; k < sizeof guarded_signals / sizeof guarded_signals[0]; k++) {
        struct sigaction old, sa;
        if (sigaction(guarded_signals[k], NULL, &old) != 0 || old.sa_handler == SIG_IGN)
            continue; /* nohup, or a shell's background job: the user asked to ignore it */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        sigfillset(&sa.sa_mask); /* one handler at a time: a path is unlinked once */
        sigaction(guarded_signals[k], &sa, NULL);
    }
}

int cli_temp_guard(const char *path)
{
    if (!path || strlen(path) >= PATH_MAX) return -1;
    install_handlers();
    for (int k = 0; k < CLI_TEMP_SLOTS; k++) {
        if (atomic_load_explicit(&temp_used[k], memory_order_acquire)) continue;
        memcpy(temp_paths[k], path, strlen(path) + 1);
        atomic_store_explicit(&temp_used[k], 1, memory_order_release);
        return k;
    }
    return -1;
}

void cli_temp_unguard(int slot)
{
    if (slot >= 0 && slot < CLI_TEMP_SLOTS)
        atomic_store_explicit(&temp_used[slot], 0, memory_order_release);
}

void cli_job_temp_file(void *job, const char *path)
{
    cli_job *j = job;
    if (!j) return;
    cli_temp_unguard(j->slot);
    j->slot = path ? cli_temp_guard(path) : -1;
}

void cli_job_progress(void *job, uint64_t done, uint64_t total, uint64_t bytes, uint64_t all_bytes)
{
    const cli_job *j = job;
    double dt = cli_now() - j->t0, rate = dt > 0 ? (double)bytes / dt : 0;
    double eta = rate > 0 && all_bytes > bytes ? (double)(all_bytes - bytes) / rate : 0;
    fprintf(stderr, "\r%s: tensor %" PRIu64 "/%" PRIu64 "  %.0f MB/s  ETA %.0f s   ", j->verb, done, total,
            rate / 1e6, eta);
    fflush(stderr);
}

FILE *cli_fopen_read(const char *path)
{
    int fd;
    qfmt_error e;
    if (qfmt_file_open_read(path, &fd, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        cli_error_at(path, NULL, QFMT_NO_OFFSET, "cannot open: %s", strerror(errno));
        close(fd);
    }
    return f;
}

/* ---- Arguments ---------------------------------------------------------------------------- */

bool cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0; /* "--threadsX": some other option */
    if (*i + 1 >= argc)
        return -1;
    *i += 1;
    *value = argv[*i];
    return 1;
}

bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9') /* strtoull would accept " 1", "-1" and "+1" */
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* ---- Formatting --------------------------------------------------------------------------- */

unsigned cli_online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    if (n > 1024)
        return 1024;
    return (unsigned)n;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *cli_type_name(uint32_t type, char *buf, size_t buf_size)
{
    const qfmt_type_traits *t = qfmt_type_get_traits(type);
    if (t != NULL)
        snprintf(buf, buf_size, "%s", t->name);
    else
        snprintf(buf, buf_size, "unknown(%" PRIu32 ")", type);
    return buf;
}

const char *cli_codec_name(uint32_t codec, char *buf, size_t buf_size)
{
    switch (codec) {
    case QFMT_CODEC_NONE: snprintf(buf, buf_size, "none"); break;
    case QFMT_CODEC_ZSTD: snprintf(buf, buf_size, "zstd"); break;
    default: snprintf(buf, buf_size, "unknown(%" PRIu32 ")", codec); break;
    }
    return buf;
}

const char *cli_shape(const uint64_t *dims, uint32_t ndim, char *buf, size_t buf_size)
{
    if (buf_size == 0)
        return buf;
    buf[0] = '\0';
    if (ndim > QFMT_MAX_DIMS)
        ndim = QFMT_MAX_DIMS;
    size_t pos = 0;
    for (uint32_t d = 0; d <= ndim; d++) {
        char part[32];
        if (d == ndim)
            snprintf(part, sizeof part, "%s]", ndim == 0 ? "[" : "");
        else
            snprintf(part, sizeof part, "%s%" PRIu64, d == 0 ? "[" : ", ", dims[d]);
        size_t n = strlen(part);
        if (pos + n + 1 > buf_size)
            break; /* truncated: keeps what fits */
        memcpy(buf + pos, part, n + 1);
        pos += n;
    }
    return buf;
}

const char *cli_human_bytes(uint64_t bytes, char *buf, size_t buf_size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buf, buf_size, "%" PRIu64 " B", bytes);
        return buf;
    }
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, buf_size, "%.1f %s", v, units[u]);
    return buf;
}

const char *cli_status_name(qfmt_status s)
{
    static const char *const names[] = {
        "QFMT_OK",          "QFMT_E_IO",       "QFMT_E_NOMEM",    "QFMT_E_BAD_MAGIC",
        "QFMT_E_VERSION",   "QFMT_E_CORRUPT",  "QFMT_E_CHECKSUM", "QFMT_E_RANGE",
        "QFMT_E_NOT_FOUND", "QFMT_E_UNSUPPORTED", "QFMT_E_ARG",   "QFMT_E_TYPE",
        "QFMT_E_STATE",     "QFMT_E_EXISTS",
    };
    if ((unsigned)s < sizeof names / sizeof names[0])
        return names[s];
    return "QFMT_E_UNKNOWN";
}

/* Length (1..4) of the well-formed UTF-8 sequence at p (n bytes available) and its code
 * point, or 0 if the bytes are not well-formed (overlong, surrogate, beyond U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[k] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* Terminal columns of a printable code point: 2 for the common East Asian wide and emoji
 * ranges, else 1. An approximation of wcwidth() that needs no locale. */
static size_t columns_of(uint32_t cp)
{
    if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF && cp != 0x303F) ||
        (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
        (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
        (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1F64F) ||
        (cp >= 0x1F900 && cp <= 0x1F9FF) || (cp >= 0x20000 && cp <= 0x3FFFD))
        return 2;
    return 1;
}

/* Prints (f != NULL) or measures (f == NULL) the escaped form of s; returns its columns and
 * sets *cut if max_bytes stopped it early. */
static size_t escape_text(FILE *f, const char *s, size_t len, size_t max_bytes, bool *cut)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, cols = 0;
    *cut = false;
    while (i < len) {
        uint32_t cp = 0;
        size_t n = utf8_seq(p + i, len - i, &cp);
        size_t take = n ? n : 1;
        if (max_bytes != 0 && i + take > max_bytes) {
            *cut = true;
            break;
        }
        if (n == 0 || (cp >= 0x80 && cp < 0xA0)) {
            /* bad byte or a C1 control (ESC-like on some terminals): show its bytes */
            for (size_t k = 0; k < take; k++)
                if (f)
                    fprintf(f, "\\x%02x", p[i + k]);
            cols += 4 * take;
        } else if (cp == '\n' || cp == '\t' || cp == '\r' || cp == '"' || cp == '\\') {
            if (f) {
                fputc('\\', f);
                fputc(cp == '\n' ? 'n' : cp == '\t' ? 't' : cp == '\r' ? 'r' : (int)cp, f);
            }
            cols += 2;
        } else if (cp < 0x20 || cp == 0x7F) {
            if (f)
                fprintf(f, "\\x%02x", (unsigned)cp);
            cols += 4;
        } else {
            if (f)
                fwrite(p + i, 1, n, f);
            cols += columns_of(cp);
        }
        i += take;
    }
    return cols;
}

bool cli_print_escaped(FILE *f, const char *s, size_t len, size_t max_bytes)
{
    bool cut;
    escape_text(f, s, len, max_bytes, &cut);
    return cut;
}

size_t cli_escaped_width(const char *s, size_t len)
{
    bool cut;
    return escape_text(NULL, s, len, 0, &cut);
}

const char *cli_format_real(double v, bool is_f32, char *buf, size_t buf_size)
{
    if (isnan(v)) {
        snprintf(buf, buf_size, "nan");
        return buf;
    }
    if (isinf(v)) {
        snprintf(buf, buf_size, v < 0 ? "-inf" : "inf");
        return buf;
    }
    if (v == 0) { /* "-0.0" keeps the sign through a JSON reader, where "-0" reads as 0 */
        snprintf(buf, buf_size, signbit(v) ? "-0.0" : "0");
        return buf;
    }
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v) { /* 10000, not 1e+04 */
        snprintf(buf, buf_size, "%.0f", v);
        return buf;
    }
    int max_digits = is_f32 ? 9 : 17; /* enough to round-trip any float / double */
    for (int digits = 1; digits <= max_digits; digits++) {
        snprintf(buf, buf_size, "%.*g", digits, v);
        if (is_f32 ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

/* ---- JSON --------------------------------------------------------------------------------- */

#define JSON_MAX_SAFE_INTEGER (UINT64_C(1) << 53)

cJSON *cli_json_u64(uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return v <= JSON_MAX_SAFE_INTEGER ? cJSON_CreateRaw(buf) : cJSON_CreateString(buf);
}

cJSON *cli_json_i64(int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    /* -2^53 <= v <= 2^53, written so that INT64_MIN cannot overflow */
    bool safe = v >= -(int64_t)JSON_MAX_SAFE_INTEGER && v <= (int64_t)JSON_MAX_SAFE_INTEGER;
    return safe ? cJSON_CreateRaw(buf) : cJSON_CreateString(buf);
}

cJSON *cli_json_real(double v, bool is_f32)
{
    char buf[64];
    cli_format_real(v, is_f32, buf, sizeof buf);
    return isfinite(v) ? cJSON_CreateRaw(buf) : cJSON_CreateString(buf);
}

cJSON *cli_json_text(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    /* pass 1: the exact size, so one allocation suffices even for a large tokenizer */
    size_t out_len = 2;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = utf8_seq(p + i, len - i, &cp);
        if (n == 0) {
            out_len += 6, i += 1;                   /* \ufffd */
        } else if (cp == '"' || cp == '\\' || cp == '\n' || cp == '\t' || cp == '\r' ||
                   cp == '\b' || cp == '\f') {
            out_len += 2, i += 1;
        } else if (cp < 0x20) {
            out_len += 6, i += 1;                   /* \u00XX */
        } else {
            out_len += n, i += n;
        }
    }
    char *out = malloc(out_len + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = utf8_seq(p + i, len - i, &cp);
        if (n == 0) {
            memcpy(out + o, "\\ufffd", 6), o += 6, i += 1;
            continue;
        }
        const char *esc = NULL;
        switch (cp) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\t': esc = "\\t"; break;
        case '\r': esc = "\\r"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default: break;
        }
        if (esc != NULL) {
            memcpy(out + o, esc, 2), o += 2;
        } else if (cp < 0x20) {
            snprintf(out + o, 7, "\\u%04x", (unsigned)cp), o += 6;
        } else {
            memcpy(out + o, p + i, n), o += n;
        }
        i += n;
    }
    out[o++] = '"';
    out[o] = '\0';
    cJSON *item = cJSON_CreateRaw(out);
    free(out);
    return item;
}

cJSON *cli_json_hex64(uint64_t v)
{
    char buf[17];
    snprintf(buf, sizeof buf, "%016" PRIx64, v);
    return cJSON_CreateString(buf);
}

bool cli_json_add(cJSON *obj, const char *key, cJSON *item)
{
    if (item == NULL)
        return false;
    bool ok = key != NULL ? cJSON_AddItemToObject(obj, key, item) : cJSON_AddItemToArray(obj, item);
    if (!ok)
        cJSON_Delete(item);
    return ok;
}

bool cli_json_error_fields(cJSON *o, const qfmt_error *e)
{
    char text[1024];
    qfmt_error_format(e, text, sizeof text);
    bool ok = cli_json_add(o, "code", cli_json_u64((uint64_t)e->code));
    ok = cli_json_add(o, "code_name", cJSON_CreateString(cli_status_name(e->code))) && ok;
    ok = cli_json_add(o, "message", cli_json_text(e->message, strlen(e->message))) && ok;
    ok = cli_json_add(o, "text", cli_json_text(text, strlen(text))) && ok;
    ok = cli_json_add(o, "offset", e->offset == QFMT_NO_OFFSET ? cJSON_CreateNull()
                                                                : cli_json_u64(e->offset)) && ok;
    ok = cli_json_add(o, "tensor", e->tensor[0] ? cli_json_text(e->tensor, strlen(e->tensor))
                                                : cJSON_CreateNull()) && ok;
    return ok;
}

int cli_json_print(const cJSON *doc)
{
    char *text = cJSON_Print(doc);
    if (text == NULL) {
        cli_error("out of memory while printing JSON");
        return CLI_EXIT_FAILURE;
    }
    fputs(text, stdout);
    fputc('\n', stdout);
    cJSON_free(text);
    return CLI_EXIT_OK;
}

/* ---- JSON, streamed ------------------------------------------------------------------------ */

void cli_jw_init(cli_jw *w, FILE *f)
{
    memset(w, 0, sizeof *w);
    w->f = f;
}

static void jw_tabs(cli_jw *w, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        putc('\t', w->f);
}

/* Writes s as a JSON string: cli_json_text's escaping, byte for byte (and cJSON's own for
 * valid UTF-8, as keys and names are). */
static void jw_quoted(FILE *f, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    putc('"', f);
    size_t run = 0; /* bytes copied as they are, written in one go */
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            run++, i++;
            continue;
        }
        uint32_t cp = 0;
        size_t n = c < 0x80 ? 1 : utf8_seq(p + i, len - i, &cp);
        if (n > 1) { /* a well-formed sequence: as it is */
            run += n, i += n;
            continue;
        }
        if (run) fwrite(p + i - run, 1, run, f), run = 0;
        if (n == 0) fputs("\\ufffd", f); /* an invalid byte */
        else if (c == '"') fputs("\\\"", f);
        else if (c == '\\') fputs("\\\\", f);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\b') fputs("\\b", f);
        else if (c == '\f') fputs("\\f", f);
        else fprintf(f, "\\u%04x", (unsigned)c);
        i++;
    }
    if (run) fwrite(p + len - run, 1, run, f);
    putc('"', f);
}

/* Separator, indentation and key before a value. */
static void jw_member(cli_jw *w, const char *key)
{
    if (w->depth == 0) return;
    unsigned d = w->depth - 1;
    if (w->is_array[d]) {
        if (w->has_items[d]) fputs(", ", w->f);
    } else {
        fputs(w->has_items[d] ? ",\n" : "\n", w->f);
        jw_tabs(w, w->depth);
        jw_quoted(w->f, key ? key : "", key ? strlen(key) : 0);
        fputs(":\t", w->f);
    }
    w->has_items[d] = true;
}

static void jw_open(cli_jw *w, const char *key, bool array)
{
    jw_member(w, key);
    putc(array ? '[' : '{', w->f);
    if (w->depth < CLI_JW_MAX_DEPTH) {
        w->is_array[w->depth] = array;
        w->has_items[w->depth] = false;
    }
    w->depth++;
}

void cli_jw_object(cli_jw *w, const char *key) { jw_open(w, key, false); }
void cli_jw_array(cli_jw *w, const char *key) { jw_open(w, key, true); }

void cli_jw_end(cli_jw *w)
{
    if (w->depth == 0) return;
    unsigned d = --w->depth;
    if (d < CLI_JW_MAX_DEPTH && w->is_array[d]) {
        putc(']', w->f);
        return;
    }
    putc('\n', w->f); /* cJSON: "{\n" even when empty, then the closing indent */
    jw_tabs(w, d);
    putc('}', w->f);
}

static void jw_raw(cli_jw *w, const char *key, const char *text)
{
    jw_member(w, key);
    fputs(text, w->f);
}

void cli_jw_u64(cli_jw *w, const char *key, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    jw_member(w, key);
    if (v <= JSON_MAX_SAFE_INTEGER) fputs(buf, w->f);
    else jw_quoted(w->f, buf, strlen(buf));
}

void cli_jw_i64(cli_jw *w, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    bool safe = v >= -(int64_t)JSON_MAX_SAFE_INTEGER && v <= (int64_t)JSON_MAX_SAFE_INTEGER;
    jw_member(w, key);
    if (safe) fputs(buf, w->f);
    else jw_quoted(w->f, buf, strlen(buf));
}

void cli_jw_real(cli_jw *w, const char *key, double v, bool is_f32)
{
    char buf[64];
    cli_format_real(v, is_f32, buf, sizeof buf);
    jw_member(w, key);
    if (isfinite(v)) fputs(buf, w->f);
    else jw_quoted(w->f, buf, strlen(buf));
}

void cli_jw_number(cli_jw *w, const char *key, double v)
{
    cJSON *n = cJSON_CreateNumber(v); /* cJSON's own formatting, for a handful of values */
    char *text = n ? cJSON_PrintUnformatted(n) : NULL;
    jw_raw(w, key, text ? text : "null");
    cJSON_free(text);
    cJSON_Delete(n);
}

void cli_jw_bool(cli_jw *w, const char *key, bool v) { jw_raw(w, key, v ? "true" : "false"); }
void cli_jw_null(cli_jw *w, const char *key) { jw_raw(w, key, "null"); }

void cli_jw_text(cli_jw *w, const char *key, const char *s, size_t len)
{
    jw_member(w, key);
    jw_quoted(w->f, s, len);
}

void cli_jw_string(cli_jw *w, const char *key, const char *s) { cli_jw_text(w, key, s, strlen(s)); }

void cli_jw_hex64(cli_jw *w, const char *key, uint64_t v)
{
    char buf[17];
    snprintf(buf, sizeof buf, "%016" PRIx64, v);
    cli_jw_text(w, key, buf, 16);
}

void cli_jw_hex_bytes(cli_jw *w, const char *key, const void *p, uint64_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = p;
    jw_member(w, key);
    putc('"', w->f);
    for (uint64_t i = 0; i < len; i++) {
        putc(digits[b[i] >> 4], w->f);
        putc(digits[b[i] & 15], w->f);
    }
    putc('"', w->f);
}

bool cli_jw_finish(cli_jw *w)
{
    putc('\n', w->f);
    return fflush(w->f) == 0 && !ferror(w->f);
}
