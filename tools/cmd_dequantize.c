/*
 * cmd_dequantize.c - qfmt dequantize: a qfmt file back to a standard safetensors file with the
 * source's tensor names and layouts (tensors listed in convert.transposed are transposed back).
 * Float tensors keep their type unless --dtype asks otherwise, so a conversion to the source
 * dtype comes back bit for bit; block-quantized tensors become f32 (or --dtype).
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: qfmt dequantize FILE -o OUT.safetensors [--dtype f32|f16|bf16] [--threads N]\n"
    "\n"
    "Writes every tensor of FILE to a safetensors file any safetensors reader can load, under\n"
    "the source's names and layouts. Float tensors keep their type unless --dtype is given;\n"
    "block-quantized ones are decoded to --dtype (default f32). Integer tensors are copied.\n"
    "The output is replaced atomically; nothing is left behind on failure.\n"
    "Exit status: 0 written, 1 failure, 2 usage error.\n";

static bool is_plain_float(uint32_t t)
{
    return t == QFMT_TYPE_F32 || t == QFMT_TYPE_F16 || t == QFMT_TYPE_BF16;
}

typedef struct {
    uint32_t out_type;
    bool transposed;
    uint64_t dims[QFMT_MAX_DIMS];
    uint64_t size;
} plan;

/* The names in convert.transposed, sorted: built once, looked up per tensor in O(log n) (a
 * scan per tensor made a file of 60k tensors take minutes). Names point into the mapping. */
typedef struct {
    const char *s;
    uint64_t len;
} name_ref;

static int name_ref_cmp(const void *pa, const void *pb)
{
    const name_ref *a = pa, *b = pb;
    int c = memcmp(a->s, b->s, (size_t)(a->len < b->len ? a->len : b->len));
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* Loads the set. An absent key is an empty set; any other failure (not an array of strings:
 * an unknown element type, whose Count is not bounded, included) is reported: without the
 * list the layouts written would be wrong. */
static bool load_transposed(const qfmt_reader *r, const char *path, name_ref **out, uint64_t *n)
{
    qfmt_error e;
    *out = NULL;
    *n = 0;
    qfmt_status s = qfmt_meta_get_string_array(r, "convert.transposed", n, &e);
    if (s == QFMT_E_NOT_FOUND) return true;
    if (s != QFMT_OK) {
        cli_error_qfmt(&e);
        return false;
    }
    if (*n > SIZE_MAX / sizeof **out || !(*out = malloc(*n ? (size_t)*n * sizeof **out : 1))) {
        cli_error_at(path, NULL, QFMT_NO_OFFSET,
                     "out of memory for the %" PRIu64 " names of convert.transposed", *n);
        return false;
    }
    for (uint64_t i = 0; i < *n; i++) /* count is bounded by the array's bytes */
        if (qfmt_meta_string_array_get(r, "convert.transposed", i, &(*out)[i].s, &(*out)[i].len, &e) != QFMT_OK) {
            cli_error_qfmt(&e);
            return false;
        }
    qsort(*out, (size_t)*n, sizeof **out, name_ref_cmp);
    return true;
}

static bool listed(const name_ref *set, uint64_t n, const char *name)
{
    name_ref key = {name, strlen(name)};
    return n && bsearch(&key, set, (size_t)n, sizeof *set, name_ref_cmp) != NULL;
}

/* Makes *buf hold at least `need` bytes (need 0 included: a valid, empty tensor). */
static bool reserve(void **buf, size_t *cap, uint64_t need)
{
    if (*buf && need <= *cap) return true;
    if (need > SIZE_MAX) return false;
    size_t n = need ? (size_t)need : 1;
    void *p = realloc(*buf, n);
    if (!p) return false;
    *buf = p;
    *cap = n;
    return true;
}

int cmd_dequantize(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    uint32_t dtype = 0;
    bool have_dtype = false;
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
            if (r < 0 || qfmt_type_from_name(v, &dtype) != QFMT_OK || !is_plain_float(dtype))
                return cli_usage_error("dequantize", usage, "--dtype takes f32, f16 or bf16");
            have_dtype = true;
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
    int rc = CLI_EXIT_OK;
    uint64_t n = qfmt_tensor_count(r), at = 0, ntr = 0;
    plan *p = calloc(n ? n : 1, sizeof *p);
    qfmt_st_tensor_desc *outs = calloc(n ? n : 1, sizeof *outs);
    name_ref *tr = NULL;
    if (!p || !outs) {
        cli_error_at(in, NULL, QFMT_NO_OFFSET, "out of memory for the plan of %" PRIu64 " tensors", n);
        rc = CLI_EXIT_FAILURE;
    } else if (!load_transposed(r, in, &tr, &ntr)) {
        rc = CLI_EXIT_FAILURE;
    }
    for (uint64_t i = 0; rc == CLI_EXIT_OK && i < n; i++) {
        qfmt_tensor_info ti;
        qfmt_tensor_get_info(r, i, &ti, NULL);
        const qfmt_type_traits *tt = qfmt_type_get_traits(ti.type);
        plan *pl = &p[i];
        pl->out_type = ti.type;
        if (tt && (tt->block_elems > 1 || (have_dtype && is_plain_float(ti.type))))
            pl->out_type = have_dtype ? dtype : QFMT_TYPE_F32;
        memcpy(pl->dims, ti.dims, sizeof pl->dims);
        pl->transposed = ti.ndim == 2 && listed(tr, ntr, ti.name);
        if (pl->transposed) {
            pl->dims[0] = ti.dims[1];
            pl->dims[1] = ti.dims[0];
        }
        if (!tt || !qfmt_st_dtype_name(pl->out_type) || qfmt_type_size(pl->out_type, ti.nelements, &pl->size) != QFMT_OK) {
            char tn[24];
            cli_error_at(in, ti.name, ti.offset, "type %s cannot be written to safetensors",
                         cli_type_name(ti.type, tn, sizeof tn));
            rc = CLI_EXIT_FAILURE;
            break;
        }
        outs[i] = (qfmt_st_tensor_desc){.name = ti.name, .type = pl->out_type, .ndim = ti.ndim};
        memcpy(outs[i].dims, pl->dims, sizeof outs[i].dims);
        at += pl->size;
    }
    qfmt_st_writer *so = NULL;
    int guard = -1; /* SIGINT/SIGTERM/SIGHUP remove the temporary file (tools/cli.c) */
    if (rc == CLI_EXIT_OK && qfmt_st_writer_begin(&so, out, outs, (size_t)n, NULL, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        rc = CLI_EXIT_FAILURE;
    }
    if (rc == CLI_EXIT_OK) guard = cli_temp_guard(qfmt_st_writer_temp_path(so));
    void *buf = NULL, *tbuf = NULL;
    size_t cap = 0, tcap = 0;
    qfmt_quant_opts qo = {.threads = threads, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AUTO};
    for (uint64_t i = 0; rc == CLI_EXIT_OK && i < n; i++) {
        qfmt_tensor_info ti;
        qfmt_tensor_get_info(r, i, &ti, NULL);
        uint64_t need = ti.raw_size > p[i].size ? ti.raw_size : p[i].size;
        if (!reserve(&buf, &cap, need) || !reserve(&tbuf, &tcap, need)) {
            cli_error_at(in, ti.name, ti.offset, "out of memory (%" PRIu64 " bytes to decode it)", need);
            rc = CLI_EXIT_FAILURE;
            break;
        }
        if (qfmt_tensor_read(r, i, buf, ti.raw_size, true, &e) != QFMT_OK) {
            cli_error_qfmt(&e);
            rc = CLI_EXIT_FAILURE;
            break;
        }
        const void *src = buf;
        if (p[i].out_type != ti.type && ti.nelements > 0) {
            uint64_t row = ti.ndim ? ti.dims[ti.ndim - 1] : 1, rows = row ? ti.nelements / row : 0;
            if (qfmt_dequantize(p[i].out_type, tbuf, p[i].size, ti.type, buf, rows, row, &qo, &e) != QFMT_OK) {
                cli_error_at(in, ti.name, ti.offset, "%s", e.message);
                rc = CLI_EXIT_FAILURE;
                break;
            }
            void *t = buf; /* the decoded values become the source */
            size_t tc = cap;
            buf = tbuf, cap = tcap;
            tbuf = t, tcap = tc;
            src = buf;
        }
        if (p[i].transposed && ti.nelements > 0) { /* back to the source's [in, out]; an empty
                                                     * tensor, [2^56, 0] say, has nothing to move */
            size_t es = qfmt_type_get_traits(p[i].out_type)->block_bytes;
            const uint8_t *s8 = src;
            uint8_t *d8 = tbuf;
            uint64_t rows = ti.dims[0], cols = ti.dims[1];
            for (uint64_t a = 0; a < rows; a++)
                for (uint64_t b = 0; b < cols; b++) memcpy(d8 + (b * rows + a) * es, s8 + (a * cols + b) * es, es);
            src = tbuf;
        }
        if (qfmt_st_writer_write(so, src, (size_t)p[i].size, &e) != QFMT_OK) {
            cli_error_qfmt(&e);
            rc = CLI_EXIT_FAILURE;
        }
    }
    if (rc == CLI_EXIT_OK && so && qfmt_st_writer_commit(so, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        rc = CLI_EXIT_FAILURE;
    }
    cli_temp_unguard(guard);
    qfmt_st_writer_free(so); /* removes the temporary file unless committed */
    if (rc == CLI_EXIT_OK) printf("wrote %" PRIu64 " tensors, %" PRIu64 " data bytes to %s\n", n, at, out);
    free(buf);
    free(tbuf);
    free(p);
    free(outs);
    free(tr);
    qfmt_reader_close(r);
    return cli_finish_stdout(rc);
}
