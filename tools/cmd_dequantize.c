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

static bool listed_transposed(const qfmt_reader *r, const char *name)
{
    qfmt_value v;
    uint64_t n = 0;
    if (qfmt_meta_get_array(r, "convert.transposed", NULL, &n, NULL) != QFMT_OK) return false;
    size_t nl = strlen(name);
    for (uint64_t i = 0; i < n; i++)
        if (qfmt_meta_array_get(r, "convert.transposed", i, &v, NULL) == QFMT_OK &&
            v.type == QFMT_META_STRING && v.v.str.len == nl && memcmp(v.v.str.ptr, name, nl) == 0)
            return true;
    return false;
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
    uint64_t n = qfmt_tensor_count(r), at = 0;
    plan *p = calloc(n ? n : 1, sizeof *p);
    qfmt_st_tensor_desc *outs = calloc(n ? n : 1, sizeof *outs);
    if (!p || !outs) {
        cli_error("out of memory");
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
        pl->transposed = ti.ndim == 2 && listed_transposed(r, ti.name);
        if (pl->transposed) {
            pl->dims[0] = ti.dims[1];
            pl->dims[1] = ti.dims[0];
        }
        if (!tt || !qfmt_st_dtype_name(pl->out_type) || qfmt_type_size(pl->out_type, ti.nelements, &pl->size) != QFMT_OK) {
            char tn[24];
            cli_error("%s: tensor '%s': type %s cannot be written to safetensors", in, ti.name,
                      cli_type_name(ti.type, tn, sizeof tn));
            rc = CLI_EXIT_FAILURE;
            break;
        }
        outs[i] = (qfmt_st_tensor_desc){.name = ti.name, .type = pl->out_type, .ndim = ti.ndim};
        memcpy(outs[i].dims, pl->dims, sizeof outs[i].dims);
        at += pl->size;
    }
    qfmt_st_writer *so = NULL;
    if (rc == CLI_EXIT_OK && qfmt_st_writer_begin(&so, out, outs, (size_t)n, NULL, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        rc = CLI_EXIT_FAILURE;
    }
    void *buf = NULL, *tbuf = NULL;
    size_t cap = 0, tcap = 0;
    qfmt_quant_opts qo = {.threads = threads, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AUTO};
    for (uint64_t i = 0; rc == CLI_EXIT_OK && i < n; i++) {
        qfmt_tensor_info ti;
        qfmt_tensor_get_info(r, i, &ti, NULL);
        size_t need = (size_t)(ti.raw_size > p[i].size ? ti.raw_size : p[i].size);
        if (need > cap) {
            free(buf);
            cap = need;
            buf = malloc(cap ? cap : 1);
        }
        if (need > tcap) {
            free(tbuf);
            tcap = need;
            tbuf = malloc(tcap ? tcap : 1);
        }
        if (!buf || !tbuf) {
            cli_error("out of memory");
            rc = CLI_EXIT_FAILURE;
            break;
        }
        if (qfmt_tensor_read(r, i, buf, ti.raw_size, true, &e) != QFMT_OK) {
            cli_error_qfmt(&e);
            rc = CLI_EXIT_FAILURE;
            break;
        }
        const void *src = buf;
        if (p[i].out_type != ti.type) {
            uint64_t row = ti.ndim ? ti.dims[ti.ndim - 1] : 1, rows = row ? ti.nelements / row : 0;
            if (qfmt_dequantize(p[i].out_type, tbuf, p[i].size, ti.type, buf, rows, row, &qo, &e) != QFMT_OK) {
                cli_error("%s: tensor '%s': %s", in, ti.name, e.message);
                rc = CLI_EXIT_FAILURE;
                break;
            }
            void *t = buf; /* the decoded values become the source */
            buf = tbuf;
            tbuf = t;
            src = buf;
        }
        if (p[i].transposed) { /* back to the source's [in, out] */
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
    qfmt_st_writer_free(so);
    if (rc == CLI_EXIT_OK) printf("wrote %" PRIu64 " tensors, %" PRIu64 " data bytes to %s\n", n, at, out);
    free(buf);
    free(tbuf);
    free(p);
    free(outs);
    qfmt_reader_close(r);
    return cli_finish_stdout(rc);
}
