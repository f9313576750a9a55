/*
 * convert.c - a Hugging Face checkpoint (or one .safetensors file) to a qfmt file, one tensor
 * at a time: read (mapped), transpose GPT-2's Conv1D weights, convert or quantize on N
 * threads, write (optionally zstd) on a thread of its own while the next tensor is
 * converted, release the source pages. Memory stays about the largest tensor times a small
 * constant whatever the model's size. The source files' checksums are computed on a third
 * thread meanwhile.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_policy.h"
#include "hf_checkpoint.h"
#include "model_internal.h"
#include "qfmt_model.h"

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

static qfmt_status put_metadata(qfmt_writer *w, const qfmt__hf_model *m, const qfmt_convert_opts *o,
                                const qfmt__convert_policy *pol, const char *const *transposed,
                                uint64_t ntransposed, qfmt_error *err)
{
    meta_ctx c = {w, err, QFMT_OK};
    if (m->config_text) c.s = qfmt_family_config_to_meta(w, m->config_text, m->config_len, err);
    put_str(&c, "hf.config.json", m->config_text, m->config_len);
    put_str(&c, "hf.generation_config.json", m->generation_text, m->generation_len);
    put_str(&c, "tokenizer.huggingface.json", m->tokenizer_text, m->tokenizer_len);
    size_t n = m->nshards ? m->nshards : 1;
    const char **names = calloc(n, sizeof *names);
    uint64_t *sizes = calloc(n, sizeof *sizes);
    uint64_t *sums = calloc(n, sizeof *sums);
    if (c.s == QFMT_OK && (!names || !sizes || !sums))
        c.s = QFMT__FAIL(err, QFMT_E_NOMEM, NULL, NULL, "%s", "out of memory");
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
    if (o->zstd_level <= 0) snprintf(compress, sizeof compress, "none");
    else snprintf(compress, sizeof compress, "zstd:%d", o->zstd_level);
    /* the type asked for: a mix's default type (convert.mix names the mix); none with a size target */
    const char *tname = pol->sized ? NULL
                        : qfmt_type_get_traits(pol->mix.mix >= 0 ? qfmt__mix_type_default(pol->mix.mix) : o->type)->name;
    const char *quality = o->quality == QFMT_QUALITY_BEST ? "best" : "fast";
    put_str(&c, "convert.tool", tool, strlen(tool));
    if (tname) put_str(&c, "convert.type", tname, strlen(tname));
    put_str(&c, "convert.quality", quality, strlen(quality));
    put_str(&c, "convert.compress", compress, strlen(compress));
    if (c.s == QFMT_OK) c.s = qfmt_writer_set_string_array(w, "convert.keep", o->keep, NULL, o->nkeep, err);
    if (c.s == QFMT_OK)
        c.s = qfmt_writer_set_string_array(w, "convert.quantize", o->quantize, NULL, o->nquantize, err);
    if (c.s == QFMT_OK)
        c.s = qfmt_writer_set_string_array(w, "convert.transposed", transposed, NULL, ntransposed, err);
    if (c.s == QFMT_OK) c.s = qfmt__policy_put_metadata(pol, w, err);
    return c.s;
}

/* ---- Tensors ---------------------------------------------------------------------------- */

/* Grows *buf to n bytes. */
static bool reserve(void **buf, size_t *cap, uint64_t n)
{
    if (n <= *cap) return true;
    if (n > SIZE_MAX) return false;
    free(*buf);
    *buf = malloc(n ? (size_t)n : 1);
    *cap = *buf ? (size_t)n : 0;
    return *buf != NULL;
}

typedef struct {
    void *a, *b; /* transposed source, converted output */
    size_t acap, bcap;
    float *imp;  /* the tensor's importance (opts->importance) */
    size_t icap;
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
    const qfmt__hf_model *m;
    qfmt_status s; /* the first failure; after it nothing more is written */
    qfmt_error e;
} write_thread;

static void *write_main(void *arg)
{
    write_thread *wt = arg;
    pthread_mutex_lock(&wt->mu);
    for (;;) {
        while (!wt->busy && !wt->quit) pthread_cond_wait(&wt->cv, &wt->mu);
        if (!wt->busy) break;
        qfmt_status s = wt->s;
        pthread_mutex_unlock(&wt->mu);
        qfmt_error e;
        if (s == QFMT_OK) s = qfmt_writer_add_tensor(wt->w, &wt->d, wt->data, wt->size, &e);
        qfmt__hf_release(wt->m, wt->index);
        pthread_mutex_lock(&wt->mu);
        if (wt->s == QFMT_OK && s != QFMT_OK) {
            wt->s = s;
            wt->e = e;
        }
        wt->busy = false;
        pthread_cond_broadcast(&wt->cv);
    }
    pthread_mutex_unlock(&wt->mu);
    return NULL;
}

/* Waits until the previous job is written; returns the first failure so far (in *err). */
static qfmt_status write_wait(write_thread *wt, qfmt_error *err)
{
    pthread_mutex_lock(&wt->mu);
    while (wt->busy) pthread_cond_wait(&wt->cv, &wt->mu);
    qfmt_status s = wt->s;
    if (s != QFMT_OK && err) *err = wt->e;
    pthread_mutex_unlock(&wt->mu);
    return s;
}

static qfmt_status write_post(write_thread *wt, const qfmt_tensor_desc *d, const void *data, uint64_t size,
                              uint64_t index, qfmt_error *err)
{
    qfmt_status s = write_wait(wt, err);
    if (s != QFMT_OK) return s;
    pthread_mutex_lock(&wt->mu);
    wt->d = *d;
    wt->data = data;
    wt->size = size;
    wt->index = index;
    wt->busy = true;
    pthread_cond_broadcast(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
    return QFMT_OK;
}

static bool write_start(write_thread *wt, qfmt_writer *w, const qfmt__hf_model *m)
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

/* Lets the last job finish and ends the thread; returns the first failure. */
static qfmt_status write_stop(write_thread *wt, qfmt_error *err)
{
    qfmt_status s = write_wait(wt, err);
    pthread_mutex_lock(&wt->mu);
    wt->quit = true;
    pthread_cond_broadcast(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
    pthread_join(wt->tid, NULL);
    pthread_mutex_destroy(&wt->mu);
    pthread_cond_destroy(&wt->cv);
    return s;
}

/* The source checksums (metadata source.xxh3), read on a thread of their own meanwhile. */
typedef struct {
    qfmt__hf_model *m;
    qfmt_error e;
    qfmt_status s;
} checksum_job;

static void *checksum_main(void *arg)
{
    checksum_job *j = arg;
    j->s = qfmt__hf_checksum(j->m, &j->e);
    return NULL;
}

typedef struct {
    const qfmt__hf_model *m;
    const qfmt_convert_opts *o;
    const char *src;
    const qfmt__convert_policy *pol;
    const char *model_type;
    write_thread *wt;
    char **transposed;
    uint64_t ntransposed;
    qfmt_convert_result *res;
} job;

/* Converts tensor i into wk's buffers and hands it to the write thread (wk must not be
 * reused until that write is done: the caller alternates two sets). */
static qfmt_status convert_one(job *j, uint64_t i, work *wk, qfmt_error *err)
{
    const qfmt_convert_opts *o = j->o;
    qfmt_st_tensor t;
    qfmt_status s = qfmt__hf_tensor(j->m, i, &t, err);
    if (s != QFMT_OK) return s;
    qfmt_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.name = t.name;
    d.ndim = t.ndim;
    memcpy(d.dims, t.dims, sizeof d.dims);
    d.codec = o->zstd_level > 0 ? QFMT_CODEC_ZSTD : QFMT_CODEC_NONE;
    d.zstd_level = o->zstd_level > 0 ? o->zstd_level : 0;
    const void *src = t.data;
    const qfmt_type_traits *st = qfmt_type_get_traits(t.type);
    if (qfmt__policy_transposed(j->model_type, t.name, t.ndim)) {
        if (!reserve(&wk->a, &wk->acap, t.size)) goto oom;
        qfmt__transpose(t.data, wk->a, t.dims[0], t.dims[1], st->block_bytes);
        src = wk->a;
        d.dims[0] = t.dims[1];
        d.dims[1] = t.dims[0];
        if (j->ntransposed >= SIZE_MAX / sizeof(char *)) goto oom;
        char **tp = realloc(j->transposed, (size_t)(j->ntransposed + 1) * sizeof *tp);
        if (!tp) goto oom;
        j->transposed = tp;
        if (!(tp[j->ntransposed] = strdup(t.name))) goto oom;
        j->ntransposed++;
    }
    const char *note = NULL;
    d.type = qfmt__policy_type(j->pol, t.name, t.type, d.ndim, d.dims, &note);
    if (note && o->note) o->note(o->ctx, t.name, d.type, note);
    uint64_t out_size = t.size;
    if (d.type != t.type) {
        uint64_t row = d.ndim ? d.dims[d.ndim - 1] : 1, rows = row ? t.nelements / row : 0;
        if (qfmt_type_size(d.type, t.nelements, &out_size) != QFMT_OK || !reserve(&wk->b, &wk->bcap, out_size))
            goto oom;
        qfmt_quant_opts qo = QFMT_QUANT_OPTS_INIT;
        qo.threads = o->threads ? o->threads : 1;
        qo.quality = o->quality;
        qfmt_error e;
        if (qfmt_type_get_traits(d.type)->block_elems > 1) { /* a block type: importance, if any */
            const float *imp = NULL;
            qfmt_status is = qfmt__policy_importance(o, j->pol->family, t.name, row, &wk->imp, &wk->icap, &imp, err);
            if (is != QFMT_OK) return is;
            qo.importance = imp;
        }
        if (qfmt_quantize(d.type, wk->b, out_size, t.type, src, rows, row, &qo, &e) != QFMT_OK) {
            if (o->note) o->note(o->ctx, t.name, t.type, e.message);
            d.type = t.type;
            out_size = t.size;
        } else {
            src = wk->b;
        }
    }
    j->res->bytes_in += t.size;
    j->res->elements += t.nelements;
    j->res->tensors++;
    return write_post(j->wt, &d, src, out_size, i, err); /* releases the source tensor once written */
oom:
    return QFMT__FAIL(err, QFMT_E_NOMEM, j->src, t.name, "%s", "out of memory");
}

static bool valid_opts(const qfmt_convert_opts *o)
{
    for (size_t k = 0; k < sizeof o->reserved / sizeof o->reserved[0]; k++)
        if (o->reserved[k]) return false;
    const qfmt_type_traits *t = qfmt_type_get_traits(o->type);
    bool type_ok = o->type == QFMT_TYPE_F32 || o->type == QFMT_TYPE_F16 || o->type == QFMT_TYPE_BF16 ||
                   (t && t->block_elems > 1);
    return type_ok && o->zstd_level >= 0 && o->zstd_level <= 22 &&
           (o->quality == QFMT_QUALITY_REFERENCE || o->quality == QFMT_QUALITY_BEST) &&
           (o->keep || !o->nkeep) && (o->quantize || !o->nquantize) && qfmt__policy_valid_types(o);
}

/* The tokenizer.json to embed, loaded as run/eval will load it: one that qfmt cannot
 * reproduce exactly is a warning (the failure would otherwise show only at run time), or an
 * error with QFMT_CONVERT_STRICT_TOKENIZER. */
static qfmt_status check_tokenizer(const qfmt__hf_model *m, const char *src, const qfmt_convert_opts *o,
                                   qfmt_error *err)
{
    if (!m->tokenizer_text) return QFMT_OK;
    qfmt_tokenizer *t = NULL;
    qfmt_error e;
    qfmt_status s = qfmt_tokenizer_load(&t, m->tokenizer_text, m->tokenizer_len, &e);
    qfmt_tokenizer_free(t);
    if (s == QFMT_OK) return QFMT_OK;
    if (!e.path[0]) snprintf(e.path, sizeof e.path, "%s/tokenizer.json", src);
    if (o->flags & QFMT_CONVERT_STRICT_TOKENIZER) {
        if (err) *err = e;
        return s;
    }
    if (o->warning) {
        char line[1200], msg[1400];
        snprintf(msg, sizeof msg, "%s (embedded as it is; run, eval and tokenize will refuse it)",
                 qfmt_error_format(&e, line, sizeof line));
        o->warning(o->ctx, msg);
    }
    return QFMT_OK;
}

qfmt_status qfmt_convert_hf(const char *src, const char *out, const qfmt_convert_opts *opts,
                            qfmt_convert_result *res, qfmt_error *err)
{
    qfmt_convert_opts defaults = QFMT_CONVERT_OPTS_INIT;
    const qfmt_convert_opts *o = opts ? opts : &defaults;
    qfmt_convert_result local;
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    if (!src || !out || !valid_opts(o) || (o->flags & ~QFMT_CONVERT_STRICT_TOKENIZER))
        return QFMT__FAIL(err, QFMT_E_ARG, out, NULL, "%s", "invalid arguments to qfmt_convert_hf");
    qfmt__hf_model m;
    qfmt_status s = qfmt__hf_open(&m, src, err);
    if (s != QFMT_OK) return s;
    if ((s = check_tokenizer(&m, src, o, err)) != QFMT_OK) {
        qfmt__hf_close(&m);
        return s;
    }
    res->bytes_total = m.total_bytes;
    res->tensors_total = m.ntensors;
    qfmt__convert_policy pol; /* the types, set once the output is open (a size target measures first) */
    memset(&pol, 0, sizeof pol);
    write_thread wt;
    job j = {&m, o, src, &pol, qfmt__hf_config_string(&m, "model_type"), &wt, NULL, 0, res};
    work wk[2]; /* one set being written, the other being filled */
    memset(wk, 0, sizeof wk);
    qfmt_writer *w = NULL;
    qfmt_write_opts wo = QFMT_WRITE_OPTS_INIT;
    s = qfmt_writer_create(&w, out, &wo, err);
    if (s == QFMT_OK && o->temp_file) o->temp_file(o->ctx, qfmt_writer_temp_path(w));
    if (s == QFMT_OK) s = qfmt__policy_init_hf(&pol, &m, o, src, err);
    checksum_job cj = {&m, {0}, QFMT_OK};
    pthread_t ctid;
    bool checksumming = s == QFMT_OK && pthread_create(&ctid, NULL, checksum_main, &cj) == 0;
    if (s == QFMT_OK && !checksumming) checksum_main(&cj); /* no thread to be had: here */
    if (s == QFMT_OK && !write_start(&wt, w, &m)) {
        s = QFMT__FAIL(err, QFMT_E_NOMEM, out, NULL, "%s", "cannot start a thread");
    } else if (s == QFMT_OK) {
        for (uint64_t i = 0; s == QFMT_OK && i < m.ntensors; i++) {
            s = convert_one(&j, i, &wk[i % 2], err);
            if (o->progress) o->progress(o->ctx, i + 1, m.ntensors, res->bytes_in, m.total_bytes);
        }
        qfmt_error we;
        qfmt_status ws = write_stop(&wt, &we);
        if (s == QFMT_OK && ws != QFMT_OK) {
            s = ws;
            if (err) *err = we;
        }
    }
    if (checksumming) pthread_join(ctid, NULL);
    if (s == QFMT_OK && cj.s != QFMT_OK) {
        s = cj.s;
        if (err) *err = cj.e;
    }
    if (s == QFMT_OK) s = put_metadata(w, &m, o, &pol, (const char *const *)j.transposed, j.ntransposed, err);
    if (s == QFMT_OK) s = qfmt_writer_finish(w, err);
    qfmt_writer_free(w); /* removes the temporary file unless finished */
    if (w && o->temp_file) o->temp_file(o->ctx, NULL);
    for (uint64_t i = 0; i < j.ntransposed; i++) free(j.transposed[i]);
    free(j.transposed);
    for (int k = 0; k < 2; k++) {
        free(wk[k].a);
        free(wk[k].b);
        free(wk[k].imp);
    }
    qfmt__policy_free(&pol);
    qfmt__hf_close(&m);
    return s;
}
