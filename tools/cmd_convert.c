/*
 * cmd_convert.c - qfmt convert: a Hugging Face checkpoint (or one .safetensors file) to a qfmt
 * file, one tensor at a time: read (mapped), transpose GPT-2's Conv1D weights, convert or
 * quantize on N threads, write (optionally zstd) on a thread of its own while the next tensor
 * is converted, release the source pages. Memory stays about the largest tensor times a small
 * constant whatever the model's size.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "convert_policy.h"
#include "hf_model.h"
#include "qfmt_model.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

static const char usage[] =
    "usage: qfmt convert SRC -o OUT.qfmt [--type T] [--quality fast|best] [--compress zstd[:LEVEL]]\n"
    "                    [--threads N] [--keep GLOB]... [--quantize GLOB]...\n"
    "\n"
    "Converts a Hugging Face model directory (config.json and model.safetensors, or shards listed\n"
    "by model.safetensors.index.json) or a single .safetensors file to qfmt.\n"
    "\n"
    "  -o, --output OUT    the file to write (replaced atomically; nothing is left on failure)\n"
    "  --type T            f32, f16, bf16, q8_0, q4_0, q4_1, q8_z, q4_z (default: f32)\n"
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
    "\n"
    "Prints one summary line on stdout; progress on stderr when it is a terminal.\n"
    "Exit status: 0 converted, 1 failure (bad input, I/O error), 2 usage error.\n";

typedef struct {
    const char *src, *out;
    uint32_t type;
    bool best;
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
                return cli_usage_error("convert", usage, "--type takes f32, f16, bf16, q8_0, q4_0, q4_1, q8_z or q4_z");
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

/* Interrupted (Ctrl-C, kill): the signal handler of tools/cli.c removes the half-written
 * temporary file, then the process dies of the signal as before. NULL: no longer guarded. */
static void guard_temp_file(const char *path)
{
    static int slot = -1;
    cli_temp_unguard(slot);
    slot = cli_temp_guard(path);
}

/* ---- Metadata -------------------------------------------------------------------------- */

typedef struct {
    qfmt_writer *w;
    qfmt_error *err;
    qfmt_status s;
} meta_ctx;

static void put_str(meta_ctx *c, const char *key, const char *v, size_t len)
{
    if (c->s == QFMT_OK && v) c->s = qfmt_writer_set_string(c->w, key, v, len, c->err);
}

static qfmt_status put_metadata(qfmt_writer *w, const hf_model *m, const options *o,
                                const char *const *transposed, uint64_t ntransposed, qfmt_error *err)
{
    meta_ctx c = {w, err, QFMT_OK};
    if (m->config_text) c.s = qfmt_family_config_to_meta(w, m->config_text, m->config_len, err);
    put_str(&c, "hf.config.json", m->config_text, m->config_len);
    put_str(&c, "hf.generation_config.json", m->generation_text, m->generation_len);
    put_str(&c, "tokenizer.huggingface.json", m->tokenizer_text, m->tokenizer_len);
    const char **names = calloc(m->nshards ? m->nshards : 1, sizeof *names);
    uint64_t *sizes = calloc(m->nshards ? m->nshards : 1, sizeof *sizes);
    uint64_t *sums = calloc(m->nshards ? m->nshards : 1, sizeof *sums);
    if (!names || !sizes || !sums) c.s = QFMT_E_NOMEM;
    for (uint32_t k = 0; c.s == QFMT_OK && k < m->nshards; k++) {
        names[k] = m->shards[k].name;
        sizes[k] = m->shards[k].size;
        sums[k] = m->shards[k].xxh3;
    }
    if (c.s == QFMT_OK) c.s = qfmt_writer_set_string_array(w, "source.files", names, NULL, m->nshards, err);
    if (c.s == QFMT_OK) c.s = qfmt_writer_set_array(w, "source.sizes", QFMT_META_U64, sizes, m->nshards, err);
    if (c.s == QFMT_OK) c.s = qfmt_writer_set_array(w, "source.xxh3", QFMT_META_U64, sums, m->nshards, err);
    free(names), free(sizes), free(sums);
    char tool[64], compress[32];
    snprintf(tool, sizeof tool, "qfmt %s", QFMT_VERSION_STRING);
    if (o->zstd_level < 0) snprintf(compress, sizeof compress, "none");
    else snprintf(compress, sizeof compress, "zstd:%d", o->zstd_level);
    const char *tname = qfmt_type_get_traits(o->type)->name, *quality = o->best ? "best" : "fast";
    put_str(&c, "convert.tool", tool, strlen(tool));
    put_str(&c, "convert.type", tname, strlen(tname));
    put_str(&c, "convert.quality", quality, strlen(quality));
    put_str(&c, "convert.compress", compress, strlen(compress));
    if (c.s == QFMT_OK) c.s = qfmt_writer_set_string_array(w, "convert.keep", o->keep, NULL, o->nkeep, err);
    if (c.s == QFMT_OK) c.s = qfmt_writer_set_string_array(w, "convert.quantize", o->quant, NULL, o->nquant, err);
    if (c.s == QFMT_OK)
        c.s = qfmt_writer_set_string_array(w, "convert.transposed", transposed, NULL, ntransposed, err);
    return c.s;
}

/* ---- Tensors ---------------------------------------------------------------------------- */

/* Grows *buf to n bytes. */
static bool reserve(void **buf, size_t *cap, uint64_t n)
{
    if (n <= *cap) return true;
    if (n > SIZE_MAX) return false;
    free(*buf);
    *buf = malloc((size_t)n);
    *cap = *buf ? (size_t)n : 0;
    return *buf != NULL;
}

/* Transposes a rows x cols matrix of `es`-byte elements, in cache-friendly tiles. */
static void transpose(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t cols, size_t es)
{
    const uint64_t T = 32;
    for (uint64_t i0 = 0; i0 < rows; i0 += T)
        for (uint64_t j0 = 0; j0 < cols; j0 += T)
            for (uint64_t i = i0; i < i0 + T && i < rows; i++)
                for (uint64_t j = j0; j < j0 + T && j < cols; j++)
                    memcpy(dst + (j * rows + i) * es, src + (i * cols + j) * es, es);
}

typedef struct {
    void *a, *b; /* transposed source, converted output */
    size_t acap, bcap;
    uint64_t in_bytes, out_bytes, elements;
} work;

/* ---- Writing behind converting -----------------------------------------------------------
 * One thread hashes, compresses and writes tensor i while the others convert tensor i+1 into the
 * other buffer set, so the write (a copy into the page cache, as costly as the quantization)
 * is hidden behind it. Only that thread uses the writer until every tensor is written. */

typedef struct {
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool busy, quit;
    qfmt_tensor_desc d; /* the job: a tensor and its bytes, then the source tensor to release */
    const void *data;
    uint64_t size, index;
    qfmt_writer *w;
    const hf_model *m;
    int rc; /* the first failure; after it nothing more is written */
} write_thread;

static void *write_main(void *arg)
{
    write_thread *wt = arg;
    pthread_mutex_lock(&wt->mu);
    for (;;) {
        while (!wt->busy && !wt->quit) pthread_cond_wait(&wt->cv, &wt->mu);
        if (!wt->busy) break;
        int rc = wt->rc;
        pthread_mutex_unlock(&wt->mu);
        if (rc == CLI_EXIT_OK) {
            qfmt_error e;
            if (qfmt_writer_add_tensor(wt->w, &wt->d, wt->data, wt->size, &e) != QFMT_OK) {
                cli_error_qfmt(&e);
                rc = CLI_EXIT_FAILURE;
            }
        }
        hf_model_release(wt->m, wt->index);
        pthread_mutex_lock(&wt->mu);
        wt->rc = rc;
        wt->busy = false;
        pthread_cond_broadcast(&wt->cv);
    }
    pthread_mutex_unlock(&wt->mu);
    return NULL;
}

/* Waits until the previous job is written; returns the first failure so far. */
static int write_wait(write_thread *wt)
{
    pthread_mutex_lock(&wt->mu);
    while (wt->busy) pthread_cond_wait(&wt->cv, &wt->mu);
    int rc = wt->rc;
    pthread_mutex_unlock(&wt->mu);
    return rc;
}

static int write_post(write_thread *wt, const qfmt_tensor_desc *d, const void *data, uint64_t size, uint64_t index)
{
    int rc = write_wait(wt);
    if (rc != CLI_EXIT_OK) return rc;
    pthread_mutex_lock(&wt->mu);
    wt->d = *d;
    wt->data = data;
    wt->size = size;
    wt->index = index;
    wt->busy = true;
    pthread_cond_broadcast(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
    return CLI_EXIT_OK;
}

static bool write_start(write_thread *wt, qfmt_writer *w, const hf_model *m)
{
    memset(wt, 0, sizeof *wt);
    wt->w = w;
    wt->m = m;
    pthread_mutex_init(&wt->mu, NULL);
    pthread_cond_init(&wt->cv, NULL);
    if (pthread_create(&wt->tid, NULL, write_main, wt) != 0) {
        pthread_mutex_destroy(&wt->mu);
        pthread_cond_destroy(&wt->cv);
        return false;
    }
    return true;
}

/* The source checksums (metadata source.xxh3), read on a thread of their own meanwhile. */
typedef struct {
    hf_model *m;
    qfmt_error e;
    qfmt_status s;
} checksum_job;

static void *checksum_main(void *arg)
{
    checksum_job *j = arg;
    j->s = hf_model_checksum(j->m, &j->e);
    return NULL;
}

/* Lets the last job finish and ends the thread; returns the first failure. */
static int write_stop(write_thread *wt)
{
    int rc = write_wait(wt);
    pthread_mutex_lock(&wt->mu);
    wt->quit = true;
    pthread_cond_broadcast(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
    pthread_join(wt->tid, NULL);
    pthread_mutex_destroy(&wt->mu);
    pthread_cond_destroy(&wt->cv);
    return rc;
}

/* Converts tensor i into wk's buffers and hands it to the write thread (wk must not be
 * reused until that write is done: the caller alternates two sets). */
static int convert_one(const hf_model *m, uint64_t i, const options *o, const convert_policy *pol,
                       const char *model_type, write_thread *wt, work *wk, char ***transposed,
                       uint64_t *ntransposed)
{
    qfmt_error e;
    qfmt_st_tensor t;
    if (hf_model_tensor(m, i, &t, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        return CLI_EXIT_FAILURE;
    }
    qfmt_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.name = t.name;
    d.ndim = t.ndim;
    memcpy(d.dims, t.dims, sizeof d.dims);
    d.codec = o->zstd_level >= 0 ? QFMT_CODEC_ZSTD : QFMT_CODEC_NONE;
    d.zstd_level = o->zstd_level;
    const void *src = t.data;
    const qfmt_type_traits *st = qfmt_type_get_traits(t.type);
    if (policy_transposed(model_type, t.name, t.ndim)) {
        if (!reserve(&wk->a, &wk->acap, t.size)) goto oom;
        transpose(t.data, wk->a, t.dims[0], t.dims[1], st->block_bytes);
        src = wk->a;
        d.dims[0] = t.dims[1];
        d.dims[1] = t.dims[0];
        char **tp = realloc(*transposed, (*ntransposed + 1) * sizeof *tp);
        if (!tp) goto oom;
        *transposed = tp;
        if (!(tp[*ntransposed] = strdup(t.name))) goto oom;
        (*ntransposed)++;
    }
    const char *note = NULL;
    d.type = policy_type(pol, t.name, t.type, d.ndim, d.dims, &note);
    if (note) {
        char tn[24];
        fprintf(stderr, "qfmt: note: tensor '%s' stays %s: %s\n", t.name,
                cli_type_name(t.type, tn, sizeof tn), note);
    }
    uint64_t out_size = t.size;
    if (d.type != t.type) {
        uint64_t row = d.ndim ? d.dims[d.ndim - 1] : 1, rows = row ? t.nelements / row : 0;
        if (qfmt_type_size(d.type, t.nelements, &out_size) != QFMT_OK || !reserve(&wk->b, &wk->bcap, out_size))
            goto oom;
        qfmt_quant_opts qo = {.threads = o->threads, .quality = o->best ? QFMT_QUALITY_BEST : QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AUTO};
        if (qfmt_quantize(d.type, wk->b, out_size, t.type, src, rows, row, &qo, &e) != QFMT_OK) {
            char tn[24];
            fprintf(stderr, "qfmt: note: tensor '%s' stays %s: %s\n", t.name,
                    cli_type_name(t.type, tn, sizeof tn), e.message);
            d.type = t.type;
            out_size = t.size;
        } else {
            src = wk->b;
        }
    }
    wk->in_bytes += t.size;
    wk->elements += t.nelements;
    return write_post(wt, &d, src, out_size, i); /* releases the source tensor once written */
oom:
    cli_error("%s: tensor '%s': out of memory", o->src, t.name);
    return CLI_EXIT_FAILURE;
}

static void progress(uint64_t done, uint64_t total, uint64_t bytes, uint64_t all_bytes, double t0)
{
    double dt = cli_now() - t0, rate = dt > 0 ? (double)bytes / dt : 0;
    double eta = rate > 0 ? (double)(all_bytes - bytes) / rate : 0;
    fprintf(stderr, "\rconvert: tensor %" PRIu64 "/%" PRIu64 "  %.0f MB/s  ETA %.0f s   ", done, total,
            rate / 1e6, eta);
    fflush(stderr);
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
    hf_model m;
    qfmt_error e;
    if (hf_model_open(&m, o.src, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        free(o.keep);
        free(o.quant);
        return CLI_EXIT_FAILURE;
    }
    const char *model_type = hf_config_string(&m, "model_type");
    convert_policy pol = {o.type, o.keep, o.nkeep, o.quant, o.nquant};
    qfmt_write_opts wo = QFMT_WRITE_OPTS_INIT;
    qfmt_writer *w = NULL;
    work wk[2]; /* one set being written, the other being filled */
    memset(wk, 0, sizeof wk);
    write_thread wt;
    char **transposed = NULL;
    uint64_t ntransposed = 0;
    bool show = isatty(STDERR_FILENO);
    rc = CLI_EXIT_OK;
    if (qfmt_writer_create(&w, o.out, &wo, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        rc = CLI_EXIT_FAILURE;
    }
    if (rc == CLI_EXIT_OK) guard_temp_file(qfmt_writer_temp_path(w));
    checksum_job cj = {&m, {0}, QFMT_OK};
    pthread_t ctid;
    bool checksumming = rc == CLI_EXIT_OK && pthread_create(&ctid, NULL, checksum_main, &cj) == 0;
    if (rc == CLI_EXIT_OK && !checksumming) checksum_main(&cj); /* no thread to be had: here */
    if (rc == CLI_EXIT_OK && !write_start(&wt, w, &m)) {
        cli_error("%s: cannot start a thread", o.out);
        rc = CLI_EXIT_FAILURE;
    } else if (rc == CLI_EXIT_OK) {
        for (uint64_t i = 0; rc == CLI_EXIT_OK && i < m.ntensors; i++) {
            rc = convert_one(&m, i, &o, &pol, model_type, &wt, &wk[i % 2], &transposed, &ntransposed);
            if (show) progress(i + 1, m.ntensors, wk[0].in_bytes + wk[1].in_bytes, m.total_bytes, t0);
        }
        int wrc = write_stop(&wt);
        if (rc == CLI_EXIT_OK) rc = wrc;
    }
    if (show) fputc('\n', stderr);
    if (checksumming) pthread_join(ctid, NULL);
    if (rc == CLI_EXIT_OK && cj.s != QFMT_OK) {
        cli_error_qfmt(&cj.e);
        rc = CLI_EXIT_FAILURE;
    }
    if (rc == CLI_EXIT_OK &&
        put_metadata(w, &m, &o, (const char *const *)transposed, ntransposed, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        rc = CLI_EXIT_FAILURE;
    }
    if (rc == CLI_EXIT_OK && qfmt_writer_finish(w, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        rc = CLI_EXIT_FAILURE;
    }
    if (rc == CLI_EXIT_OK) {
        qfmt_reader *r = NULL;
        qfmt_file_info fi;
        memset(&fi, 0, sizeof fi);
        if (qfmt_reader_open(&r, o.out, NULL, NULL) == QFMT_OK) qfmt_reader_file_info(r, &fi);
        qfmt_reader_close(r);
        double dt = cli_now() - t0;
        printf("converted %" PRIu64 " tensors: %" PRIu64 " bytes in, %" PRIu64
               " bytes out (data %" PRIu64 "), %.3f bits/weight, %.2f s, %.0f MB/s\n",
               m.ntensors, m.total_bytes, fi.file_size, fi.data_size,
               wk[0].elements + wk[1].elements
                   ? 8.0 * (double)fi.data_size / (double)(wk[0].elements + wk[1].elements)
                   : 0.0,
               dt,
               dt > 0 ? (double)m.total_bytes / dt / 1e6 : 0.0);
    }
    guard_temp_file(NULL);
    qfmt_writer_free(w); /* removes the temporary file unless finished */
    for (uint64_t i = 0; i < ntransposed; i++) free(transposed[i]);
    free(transposed);
    for (int k = 0; k < 2; k++) {
        free(wk[k].a);
        free(wk[k].b);
    }
    hf_model_close(&m);
    free(o.keep);
    free(o.quant);
    return cli_finish_stdout(rc);
}
