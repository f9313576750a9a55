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
    "                    [--mix M] [--recipe FILE] [--target-bpw X [--target-types T,...]]\n"
    "\n"
    "Converts a Hugging Face model directory (config.json and model.safetensors, or shards listed\n"
    "by model.safetensors.index.json) or a single .safetensors file to qfmt.\n"
    "A GGUF file (llama.cpp's) is imported: names, layouts and keys mapped back to Hugging Face's,\n"
    "the tokenizer rebuilt; without --type every tensor keeps its type and bytes.\n"
    "\n"
    "  -o, --output OUT    the file to write (replaced atomically; nothing is left on failure)\n"
    "  --type T            f32, f16, bf16, q8_0, q5_0, q5_1, q4_0, q4_1, q2_k, q3_k, q4_k,\n"
    "                      q5_k, q6_k, iq4_nl, iq4_xs, q8_z, q4_z (default: f32)\n"
    "                      With a block type, 2-D weights whose rows hold whole blocks of 32\n"
    "                      are quantized; embeddings, the output head, norms, biases and 1-D\n"
    "                      tensors keep their source type. With a float type every float\n"
    "                      tensor takes it. T may also be a mix of --mix named with _s, _m or\n"
    "                      _l: q2_k_s, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m\n"
    "  --mix M             llama.cpp's type mix M: each tensor (token embedding and output head\n"
    "                      included) takes the type llama-quantize's ftype M gives it: q2_k,\n"
    "                      q2_k_s, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k,\n"
    "                      q4_0, q4_1, q5_0, q5_1, q8_0, iq4_nl, iq4_xs (q2_k_s needs --imatrix)\n"
    "  --recipe FILE       lines 'GLOB TYPE' (TYPE a type name or keep; '#' comments): the first\n"
    "                      line whose glob matches a tensor's name gives its type; others follow\n"
    "                      --type / --mix / --target-bpw\n"
    "  --target-bpw X      choose each tensor's type (among --target-types) to minimise the\n"
    "                      measured error (importance-weighted with --imatrix) while the tensors\n"
    "                      a mix would quantize take at most X bits per weight in all (each\n"
    "                      is quantized with every candidate first: that many conversions more)\n"
    "  --target-types T,.. the candidates of --target-bpw (default q2_k,q3_k,q4_k,q5_k,q6_k,q8_0)\n"
    "  --quality Q         fast: the reference quantizer, ggml's bytes (default);\n"
    "                      best: a per-block search for the least squared error\n"
    "  --compress zstd[:L] zstd-compress each tensor (level L, default 3) when that saves space\n"
    "  --threads N         worker threads (default: the number of CPUs)\n"
    "  --keep GLOB         keep tensors whose name matches at their source type (repeatable)\n"
    "  --quantize GLOB     give matching tensors the target type where possible (repeatable;\n"
    "                      with --mix its default type; with --target-bpw: they are candidates)\n"
    "  --imatrix FILE      an importance matrix (llama.cpp's imatrix GGUF, from llama-imatrix or\n"
    "                      qfmt calibrate): block-quantized tensors with an entry are quantized\n"
    "                      with in_sum2 / counts as their columns' importance, others without\n"
    "                      (a warning names each)\n"
    "  --strict            fail when qfmt cannot reproduce the model's tokenizer.json exactly\n"
    "                      (without it: a warning naming the component, and the file is written)\n"
    "\n"
    "--keep wins over --quantize, both over --recipe, which wins over --mix and --target-bpw.\n"
    "Prints one summary line on stdout; progress on stderr when it is a terminal; with --mix,\n"
    "--recipe or --target-bpw the types chosen, on stderr.\n"
    "Exit status: 0 converted, 1 failure (bad input, I/O error), 2 usage error.\n";

typedef struct {
    const char *src, *out, *imatrix;
    uint32_t type;
    bool best, strict;
    int zstd_level; /* -1: no compression */
    unsigned threads;
    const char **keep, **quant;
    size_t nkeep, nquant;
    bool type_given;
    const char *mix, *recipe; /* --mix (or a mix given to --type), --recipe */
    double target_bpw;        /* 0: none */
    uint32_t target_types[16];
    size_t ntarget_types;
} options;

/* The mix called v (--mix: any; --type: the names no block type has), or NULL. */
static const char *mix_named(const char *v, bool any)
{
    for (size_t i = 0; qfmt_convert_mix(i, NULL); i++) {
        const char *m = qfmt_convert_mix(i, NULL);
        uint32_t t;
        if (strcmp(m, v) == 0 && (any || qfmt_type_from_name(v, &t) != QFMT_OK)) return m;
    }
    return NULL;
}

/* --target-types: comma-separated float or block type names, at most 16. */
static bool parse_types(const char *v, options *o)
{
    o->ntarget_types = 0;
    while (*v) {
        const char *e = strchr(v, ',');
        size_t len = e ? (size_t)(e - v) : strlen(v);
        char name[24];
        uint32_t t;
        if (!len || len >= sizeof name || o->ntarget_types >= 16) return false;
        memcpy(name, v, len);
        name[len] = '\0';
        if (qfmt_type_from_name(name, &t) != QFMT_OK ||
            !(t == QFMT_TYPE_F32 || t == QFMT_TYPE_F16 || t == QFMT_TYPE_BF16 || qfmt_type_get_traits(t)->block_elems > 1))
            return false;
        o->target_types[o->ntarget_types++] = t;
        v += len;
        if (*v == ',' && !*++v) return false;
    }
    return o->ntarget_types > 0;
}

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
        } else if ((r = cli_opt_value(argc, argv, &i, "--imatrix", &v)) != 0) {
            if (r < 0) return cli_usage_error("convert", usage, "--imatrix needs a file");
            o->imatrix = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--type", &v)) != 0) {
            if (o->type_given || o->mix) return cli_usage_error("convert", usage, "give one of --type and --mix, once");
            o->type_given = true;
            if (r > 0 && mix_named(v, false)) o->mix = mix_named(v, false); /* q4_k_m, ... */
            else if (r < 0 || qfmt_type_from_name(v, &o->type) != QFMT_OK ||
                !(o->type == QFMT_TYPE_F32 || o->type == QFMT_TYPE_F16 || o->type == QFMT_TYPE_BF16 ||
                  qfmt_type_get_traits(o->type)->block_elems > 1))
                return cli_usage_error("convert", usage, "--type takes f32, f16, bf16, a block type or a mix (q8_0, q4_k, q4_k_m, ...: see --help)");
        } else if ((r = cli_opt_value(argc, argv, &i, "--mix", &v)) != 0) {
            if (r < 0 || !mix_named(v, true))
                return cli_usage_error("convert", usage, "--mix takes a llama.cpp mix (q4_k_m, q6_k, q8_0, ...: see --help)");
            if (o->type_given || o->mix) return cli_usage_error("convert", usage, "give one of --type and --mix, once");
            o->mix = mix_named(v, true);
            o->type_given = true;
        } else if ((r = cli_opt_value(argc, argv, &i, "--recipe", &v)) != 0) {
            if (r < 0 || o->recipe) return cli_usage_error("convert", usage, "--recipe takes one file");
            o->recipe = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--target-bpw", &v)) != 0) {
            char *end = NULL;
            double x = r > 0 ? strtod(v, &end) : 0;
            if (r < 0 || end == v || *end || !(x > 0 && x <= 32))
                return cli_usage_error("convert", usage, "--target-bpw takes a number of bits per weight above 0, at most 32");
            o->target_bpw = x;
        } else if ((r = cli_opt_value(argc, argv, &i, "--target-types", &v)) != 0) {
            if (r < 0 || !parse_types(v, o))
                return cli_usage_error("convert", usage, "--target-types takes up to 16 comma-separated float or block types");
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
    if (o->target_bpw > 0 && (o->type_given || o->mix))
        return cli_usage_error("convert", usage, "--target-bpw chooses the types: it takes no --type or --mix");
    if (o->mix && strcmp(o->mix, "q2_k_s") == 0 && !o->imatrix)
        return cli_usage_error("convert", usage, "mix q2_k_s needs --imatrix (llama.cpp refuses it without one)");
    if (o->ntarget_types && !(o->target_bpw > 0))
        return cli_usage_error("convert", usage, "--target-types needs --target-bpw");
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

/* What the callbacks share: the job (first, for cli_job's callbacks) and the imatrix. */
typedef struct {
    cli_job job;
    qfmt_imatrix *im;
    const char *im_path;
    char **warned; /* tensors already said to have no entry (the callback may come twice) */
    size_t nwarned;
} convert_ctx;

static qfmt_status on_importance(void *ctx, const qfmt_family *f, const char *tensor, uint64_t row_len, float *out,
                                 qfmt_error *err)
{
    convert_ctx *c = ctx;
    qfmt_status s = qfmt_imatrix_importance(c->im, f, tensor, row_len, out, err);
    bool again = false;
    for (size_t i = 0; s == QFMT_E_NOT_FOUND && i < c->nwarned && !again; i++) again = strcmp(c->warned[i], tensor) == 0;
    if (s == QFMT_E_NOT_FOUND && !again) {
        char **w = realloc(c->warned, (c->nwarned + 1) * sizeof *w);
        if (w) {
            c->warned = w;
            if ((w[c->nwarned] = malloc(strlen(tensor) + 1))) strcpy(w[c->nwarned++], tensor);
        }
        fprintf(stderr, "qfmt: warning: tensor '");
        cli_print_escaped(stderr, tensor, strlen(tensor), 120);
        fprintf(stderr, "': no entry in %s: quantized without importance\n", c->im_path);
    } else if (s != QFMT_OK && err && !err->path[0]) {
        snprintf(err->path, sizeof err->path, "%.255s", c->im_path);
    }
    return s;
}

/* The types a --mix, --recipe or --target-bpw conversion chose, from the file written: per type
 * the tensors and their bytes; for --target-bpw the candidates' bits per weight and error. */
static void print_types(const char *path)
{
    qfmt_reader *r = NULL;
    if (qfmt_reader_open(&r, path, NULL, NULL) != QFMT_OK) return;
    enum { NT = 512 };
    uint64_t count[NT] = {0}, bytes[NT] = {0}, in_budget[NT] = {0};
    uint64_t nt = qfmt_tensor_count(r), ns = 0;
    qfmt_meta_get_string_array(r, "convert.target_bpw.tensors", &ns, NULL);
    for (uint64_t i = 0; i < nt; i++) {
        qfmt_tensor_info ti;
        if (qfmt_tensor_get_info(r, i, &ti, NULL) != QFMT_OK || ti.type >= NT) continue;
        count[ti.type]++;
        bytes[ti.type] += ti.raw_size;
    }
    for (uint64_t k = 0; k < ns; k++) {
        const char *name;
        uint64_t len, idx;
        char buf[QFMT_MAX_NAME_LEN + 1];
        qfmt_tensor_info ti;
        if (qfmt_meta_string_array_get(r, "convert.target_bpw.tensors", k, &name, &len, NULL) != QFMT_OK ||
            len >= sizeof buf)
            continue;
        memcpy(buf, name, (size_t)len);
        buf[len] = '\0';
        if (qfmt_tensor_find(r, buf, &idx, NULL) == QFMT_OK && qfmt_tensor_get_info(r, idx, &ti, NULL) == QFMT_OK &&
            ti.type < NT)
            in_budget[ti.type]++;
    }
    char tn[24], hb[32];
    fputs("qfmt: types:", stderr);
    for (uint32_t t = 0, first = 1; t < NT; t++)
        if (count[t]) {
            fprintf(stderr, "%s %s %" PRIu64 " tensor%s (%s)", first ? "" : ",", cli_type_name(t, tn, sizeof tn),
                    count[t], count[t] == 1 ? "" : "s", cli_human_bytes(bytes[t], hb, sizeof hb));
            first = 0;
        }
    fputc('\n', stderr);
    double target, achieved, error;
    bool weighted = false;
    if (qfmt_meta_get_f64(r, "convert.target_bpw", &target, NULL) == QFMT_OK &&
        qfmt_meta_get_f64(r, "convert.target_bpw.achieved", &achieved, NULL) == QFMT_OK &&
        qfmt_meta_get_f64(r, "convert.target_bpw.error", &error, NULL) == QFMT_OK) {
        qfmt_meta_get_bool(r, "convert.target_bpw.weighted", &weighted, NULL);
        fprintf(stderr, "qfmt: --target-bpw %g: %.4f bits/weight over %" PRIu64 " tensors (", target, achieved, ns);
        for (uint32_t t = 0, first = 1; t < NT; t++)
            if (in_budget[t]) {
                fprintf(stderr, "%s%s %" PRIu64, first ? "" : ", ", cli_type_name(t, tn, sizeof tn), in_budget[t]);
                first = 0;
            }
        fprintf(stderr, "), measured error %.6g (%s)\n", error,
                weighted ? "importance-weighted squared error" : "squared error");
    }
    qfmt_reader_close(r);
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
    convert_ctx cc = {{"convert", t0, -1}, NULL, o.imatrix, NULL, 0};
    cli_job *jobp = &cc.job;
    bool show = isatty(STDERR_FILENO);
    if (o.imatrix) {
        qfmt_error ie;
        if (qfmt_imatrix_load(&cc.im, o.imatrix, &ie) != QFMT_OK) {
            cli_error_qfmt(&ie);
            free(o.keep);
            free(o.quant);
            return cli_finish_stdout(CLI_EXIT_FAILURE);
        }
    }
    qfmt_convert_types types = QFMT_CONVERT_TYPES_INIT;
    qfmt_convert_rule *rules = NULL;
    if (o.recipe) { /* a bad recipe is bad input: exit 1, naming FILE:LINE */
        qfmt_error re;
        if (qfmt_convert_recipe_load(o.recipe, &rules, &types.nrules, &re) != QFMT_OK) {
            cli_error_qfmt(&re);
            qfmt_imatrix_free(cc.im);
            free(o.keep);
            free(o.quant);
            return cli_finish_stdout(CLI_EXIT_FAILURE);
        }
        types.rules = rules;
    }
    types.mix = o.mix;
    types.target_bpw = o.target_bpw;
    if (o.ntarget_types) {
        types.target_types = o.target_types;
        types.ntarget_types = o.ntarget_types;
    }
    bool typed = o.mix || o.recipe || o.target_bpw > 0;
    qfmt_convert_opts co = QFMT_CONVERT_OPTS_INIT;
    co.type = o.type;
    if (typed) co.types = &types;
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
    co.ctx = jobp; /* = &cc: on_importance sees the imatrix */
    if (cc.im) co.importance = on_importance;
    qfmt_convert_result res;
    qfmt_error e;
    qfmt_status s;
    if (cli_is_gguf(o.src)) { /* llama.cpp's GGUF: without --type every tensor keeps its type */
        if (!o.type_given) co.type = QFMT_CONVERT_KEEP;
        s = qfmt_convert_gguf(o.src, o.out, &co, &res, &e);
    } else {
        s = qfmt_convert_hf(o.src, o.out, &co, &res, &e);
    }
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
        if (typed) print_types(o.out);
    }
    free(rules);
    qfmt_imatrix_free(cc.im);
    for (size_t i = 0; i < cc.nwarned; i++) free(cc.warned[i]);
    free(cc.warned);
    free(o.keep);
    free(o.quant);
    return cli_finish_stdout(rc);
}
