/*
 * gguf_import.c - qfmt_convert_gguf: a llama.cpp GGUF file to a qfmt file. Each tensor is read
 * in place from the GGUF's mapping, renamed to its Hugging Face name, put back in Hugging Face's
 * layout (the llama architecture's q/k rows un-permuted, Gemma's 1 + w norms back to w) and
 * written with its bytes unchanged, or converted to the type the options choose; the model.*
 * keys come from llama.cpp's keys (gguf_keys.c), the tokenizer from tokenizer.ggml.*.
 */
#define _POSIX_C_SOURCE 200809L
#define QFMT_STATIC_LINKING_ONLY /* qfmt_utf8_valid */
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_policy.h"
#include "gguf_model.h"
#include "model_internal.h"

typedef struct {
    char *hf;         /* Hugging Face name, owned */
    uint64_t index;   /* in the GGUF */
    uint32_t type;    /* GGUF type */
    uint32_t ndim;
    uint64_t dims[QFMT_MAX_DIMS]; /* outermost first */
    uint64_t permute; /* heads, or 0 */
    bool shift;       /* Gemma norm: stored as 1 + w */
} plan_tensor;

typedef struct {
    const char *src;
    const qfmt_convert_opts *o;
    qfmt_gguf *g;
    qfmt__gguf_model m;
    plan_tensor *t;
    size_t n;
    void *a, *b, *c; /* work buffers */
    size_t acap, bcap, ccap;
} importer;

static bool grow(void **buf, size_t *cap, uint64_t n)
{
    if (n <= *cap) return true;
    if (n > SIZE_MAX) return false;
    free(*buf);
    *buf = malloc(n ? (size_t)n : 1);
    *cap = *buf ? (size_t)n : 0;
    return *buf != NULL;
}

static bool is_float(uint32_t t) { return t == QFMT_TYPE_F32 || t == QFMT_TYPE_F16 || t == QFMT_TYPE_BF16; }
static bool is_block(uint32_t t)
{
    const qfmt_type_traits *tr = qfmt_type_get_traits(t);
    return tr && tr->block_elems > 1;
}

static uint64_t rows_of(const plan_tensor *p) { return p->ndim ? p->dims[0] : 1; }
static uint64_t row_len(const plan_tensor *p) { return p->ndim ? p->dims[p->ndim - 1] : 1; }

/* Tensor i's bytes in Hugging Face's layout, in its GGUF type (a shifted norm: F32). *data
 * points into the mapping or into im->a. */
static qfmt_status prepare(importer *im, size_t i, const void **data, uint64_t *size, uint32_t *type, qfmt_error *err)
{
    const plan_tensor *p = &im->t[i];
    qfmt_gguf_tensor t;
    qfmt_status s = qfmt_gguf_tensor_get(im->g, p->index, &t, err);
    if (s != QFMT_OK) return s;
    *data = t.data;
    *size = t.size;
    *type = t.type;
    if (p->permute) {
        uint64_t rows = p->ndim == 1 ? t.ne[0] : t.ne[1];
        if (!grow(&im->a, &im->acap, t.size)) return QFMT__FAIL(err, QFMT_E_NOMEM, im->src, t.name, "%s", "out of memory");
        qfmt__gguf_permute_rows(t.data, im->a, rows, t.size / rows, p->permute, false);
        *data = im->a;
    }
    if (p->shift) { /* w = stored - 1, in fp32 */
        uint64_t n = t.nelements;
        if (!grow(&im->a, &im->acap, n * sizeof(float)))
            return QFMT__FAIL(err, QFMT_E_NOMEM, im->src, t.name, "%s", "out of memory");
        float *f = im->a;
        if (t.type == QFMT_TYPE_F32) memmove(f, *data, (size_t)n * sizeof *f);
        else if ((s = qfmt_convert_floats(t.type, *data, QFMT_TYPE_F32, f, (size_t)n)) != QFMT_OK)
            return QFMT__FAIL(err, s, im->src, t.name, "%s", "cannot decode the norm");
        for (uint64_t k = 0; k < n; k++) f[k] -= 1.0f;
        *data = f;
        *size = n * sizeof *f;
        *type = QFMT_TYPE_F32;
    }
    return QFMT_OK;
}

/* The size target's view: float tensors as they are, block-quantized ones decoded to F32. */
static qfmt_status fetch(void *ctx, size_t i, const void **data, qfmt_error *err)
{
    importer *im = ctx;
    uint64_t size;
    uint32_t type;
    qfmt_status s = prepare(im, i, data, &size, &type, err);
    if (s != QFMT_OK || is_float(type)) return s;
    uint64_t n = 1;
    for (uint32_t k = 0; k < im->t[i].ndim; k++) n *= im->t[i].dims[k];
    if (!grow(&im->c, &im->ccap, n * sizeof(float))) return QFMT__FAIL(err, QFMT_E_NOMEM, im->src, im->t[i].hf, "%s", "out of memory");
    s = qfmt_dequantize(QFMT_TYPE_F32, im->c, n * sizeof(float), type, *data, rows_of(&im->t[i]) ? n / row_len(&im->t[i]) : 0,
                        row_len(&im->t[i]), NULL, err);
    *data = im->c;
    return s;
}
static void release(void *ctx, size_t i) { (void)ctx, (void)i; }

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* qfmt metadata type of a GGUF value type, or UINT32_MAX (STRING / ARRAY handled apart). */
static uint32_t meta_type(uint32_t gt)
{
    static const uint32_t map[] = {QFMT_META_U8,  QFMT_META_I8,   QFMT_META_U16, QFMT_META_I16, QFMT_META_U32,
                                   QFMT_META_I32, QFMT_META_F32,  QFMT_META_BOOL, UINT32_MAX,   UINT32_MAX,
                                   QFMT_META_U64, QFMT_META_I64,  QFMT_META_F64};
    return gt < sizeof map / sizeof map[0] ? map[gt] : UINT32_MAX;
}

/* kv pair i of g as metadata source.gguf.<key>: the value as stored (a string that is not
 * UTF-8, or a key too long, is left out with a warning). */
static qfmt_status keep_kv(importer *im, qfmt_writer *w, uint64_t i, qfmt_error *err)
{
    qfmt_gguf_kv kv;
    qfmt_status s = qfmt_gguf_kv_get(im->g, i, &kv, err);
    if (s != QFMT_OK) return s;
    char key[QFMT_MAX_KEY_LEN + 1];
    const qfmt_convert_opts *o = im->o;
    if (snprintf(key, sizeof key, "source.gguf.%s", kv.key) >= (int)sizeof key) {
        if (o->warning) o->warning(o->ctx, "a GGUF key too long for qfmt's metadata is left out");
        return QFMT_OK;
    }
    if (kv.type == QFMT_GGUF_STRING) {
        const char *p;
        size_t len;
        if ((s = qfmt_gguf_get_str(im->g, kv.key, &p, &len, err)) != QFMT_OK) return s;
        if (!qfmt_utf8_valid((const uint8_t *)p, len, true)) {
            if (o->warning) {
                char msg[400];
                snprintf(msg, sizeof msg, "%s: key '%.200s' is not UTF-8: left out", im->src, kv.key);
                o->warning(o->ctx, msg);
            }
            return QFMT_OK;
        }
        return qfmt_writer_set_string(w, key, p, len, err);
    }
    if (kv.type != QFMT_GGUF_ARRAY) {
        qfmt_value v;
        memset(&v, 0, sizeof v);
        v.type = meta_type(kv.type);
        const uint8_t *d = kv.data;
        uint64_t u = 0;
        for (uint64_t k = 0; k < kv.size && k < 8; k++) u |= (uint64_t)d[k] << (8 * k);
        switch (kv.type) {
        case QFMT_GGUF_UINT8: case QFMT_GGUF_UINT16: case QFMT_GGUF_UINT32: case QFMT_GGUF_UINT64: case QFMT_GGUF_BOOL:
            v.v.u = u;
            break;
        case QFMT_GGUF_INT8: v.v.i = (int8_t)u; break;
        case QFMT_GGUF_INT16: v.v.i = (int16_t)u; break;
        case QFMT_GGUF_INT32: v.v.i = (int32_t)u; break;
        case QFMT_GGUF_INT64: v.v.i = (int64_t)u; break;
        default: qfmt_gguf_get_f64(im->g, kv.key, &v.v.f, NULL); break;
        }
        return qfmt_writer_set_value(w, key, &v, err);
    }
    if (kv.elem_type == QFMT_GGUF_STRING) {
        uint64_t n = kv.count;
        const char **sv = calloc((size_t)(n ? n : 1), sizeof *sv);
        size_t *lv = calloc((size_t)(n ? n : 1), sizeof *lv);
        if (!sv || !lv) s = QFMT__FAIL(err, QFMT_E_NOMEM, im->src, NULL, "%s", "out of memory");
        bool utf8 = true;
        for (uint64_t k = 0; s == QFMT_OK && k < n; k++) {
            s = qfmt_gguf_array_str(im->g, kv.key, k, &sv[k], &lv[k], err);
            if (s == QFMT_OK && !qfmt_utf8_valid((const uint8_t *)sv[k], lv[k], true)) utf8 = false;
        }
        if (s == QFMT_OK && utf8) s = qfmt_writer_set_string_array(w, key, sv, lv, n, err);
        else if (s == QFMT_OK && o->warning) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s: key '%.200s' holds strings that are not UTF-8: left out", im->src, kv.key);
            o->warning(o->ctx, msg);
        }
        free(sv);
        free(lv);
        return s;
    }
    uint32_t mt = meta_type(kv.elem_type);
    if (mt == UINT32_MAX) return QFMT_OK;
    /* elements as stored, little-endian = native here; bools are one byte as in qfmt */
    return qfmt_writer_set_array(w, key, mt, kv.data, kv.count, err);
}

static qfmt_status put_metadata(importer *im, qfmt_writer *w, const qfmt__convert_policy *pol, bool keep_all,
                                char **transposed, size_t ntransposed, qfmt_error *err)
{
    const qfmt_convert_opts *o = im->o;
    uint64_t nkv = qfmt_gguf_kv_count(im->g);
    uint8_t *consumed = calloc((size_t)(nkv ? nkv : 1), 1);
    if (!consumed) return QFMT__FAIL(err, QFMT_E_NOMEM, im->src, NULL, "%s", "out of memory");
    qfmt_status s = qfmt__gguf_import_meta(im->g, im->src, &im->m, w, consumed, o->warning, o->ctx, err);
    /* The tokenizer, as llama.cpp runs it. */
    char *json = NULL;
    size_t jlen = 0;
    qfmt_error e;
    memset(&e, 0, sizeof e);
    qfmt_status ts = s == QFMT_OK ? qfmt_tokenizer_from_gguf(im->g, &json, &jlen, &e) : QFMT_OK;
    if (s == QFMT_OK && ts == QFMT_OK) {
        qfmt_tokenizer *t = NULL;
        ts = qfmt_tokenizer_load(&t, json, jlen, &e);
        qfmt_tokenizer_free(t);
    }
    if (s == QFMT_OK && ts == QFMT_OK) {
        s = qfmt_writer_set_string(w, "tokenizer.huggingface.json", json, jlen, err);
        for (uint64_t i = 0; i < nkv; i++) {
            qfmt_gguf_kv kv;
            if (qfmt_gguf_kv_get(im->g, i, &kv, NULL) == QFMT_OK && strncmp(kv.key, "tokenizer.ggml.", 15) == 0) consumed[i] = 1;
        }
    } else if (s == QFMT_OK) {
        if (!e.path[0]) snprintf(e.path, sizeof e.path, "%s", im->src);
        char line[1200], msg[1400];
        qfmt_error_format(&e, line, sizeof line);
        if (ts == QFMT_E_NOT_FOUND) {
            snprintf(msg, sizeof msg, "%s: no tokenizer.ggml.model: the file has no tokenizer (run and eval need token ids)",
                     im->src);
            if (o->warning) o->warning(o->ctx, msg);
        } else if (o->flags & QFMT_CONVERT_STRICT_TOKENIZER) {
            if (err) *err = e;
            s = ts;
        } else if (o->warning) {
            snprintf(msg, sizeof msg, "%s (the file is written without tokenizer.huggingface.json; tokenizer.ggml.* kept as "
                                      "source.gguf.*)",
                     line);
            o->warning(o->ctx, msg);
        }
    }
    free(json);
    for (uint64_t i = 0; s == QFMT_OK && i < nkv; i++)
        if (!consumed[i]) s = keep_kv(im, w, i, err);
    free(consumed);
    if (s != QFMT_OK) return s;
    /* source.*: the GGUF file */
    const char *name = base_name(im->src);
    uint64_t size = qfmt_gguf_file_size(im->g), sum = 0;
    if ((s = qfmt_checksum_file(im->src, NULL, &sum, err)) != QFMT_OK) return s;
    if ((s = qfmt_writer_set_string_array(w, "source.files", &name, NULL, 1, err)) != QFMT_OK) return s;
    if ((s = qfmt_writer_set_array(w, "source.sizes", QFMT_META_U64, &size, 1, err)) != QFMT_OK) return s;
    if ((s = qfmt_writer_set_array(w, "source.xxh3", QFMT_META_U64, &sum, 1, err)) != QFMT_OK) return s;
    char tool[64], compress[32];
    snprintf(tool, sizeof tool, "qfmt %s", QFMT_VERSION_STRING);
    if (o->zstd_level <= 0) snprintf(compress, sizeof compress, "none");
    else snprintf(compress, sizeof compress, "zstd:%d", o->zstd_level);
    const char *tname = NULL;
    if (!keep_all && !pol->sized && (pol->mix.mix >= 0 || o->type != QFMT_CONVERT_KEEP))
        tname = qfmt_type_get_traits(pol->mix.mix >= 0 ? qfmt__mix_type_default(pol->mix.mix) : o->type)->name;
    const char *quality = o->quality == QFMT_QUALITY_BEST ? "best" : "fast";
    if ((s = qfmt_writer_set_string(w, "convert.tool", tool, strlen(tool), err)) != QFMT_OK) return s;
    if ((s = qfmt_writer_set_string(w, "convert.source_format", "gguf", 4, err)) != QFMT_OK) return s;
    if (tname && (s = qfmt_writer_set_string(w, "convert.type", tname, strlen(tname), err)) != QFMT_OK) return s;
    if ((s = qfmt_writer_set_string(w, "convert.quality", quality, strlen(quality), err)) != QFMT_OK) return s;
    if ((s = qfmt_writer_set_string(w, "convert.compress", compress, strlen(compress), err)) != QFMT_OK) return s;
    if ((s = qfmt_writer_set_string_array(w, "convert.keep", o->keep, NULL, o->nkeep, err)) != QFMT_OK) return s;
    if ((s = qfmt_writer_set_string_array(w, "convert.quantize", o->quantize, NULL, o->nquantize, err)) != QFMT_OK) return s;
    if ((s = qfmt_writer_set_string_array(w, "convert.transposed", (const char *const *)transposed, NULL, ntransposed, err)) !=
        QFMT_OK)
        return s;
    if (!keep_all) s = qfmt__policy_put_metadata(pol, w, err);
    return s;
}

static bool valid_opts(const qfmt_convert_opts *o)
{
    for (size_t k = 0; k < sizeof o->reserved / sizeof o->reserved[0]; k++)
        if (o->reserved[k]) return false;
    bool type_ok = o->type == QFMT_CONVERT_KEEP || is_float(o->type) || is_block(o->type);
    return type_ok && o->zstd_level >= 0 && o->zstd_level <= 22 &&
           (o->quality == QFMT_QUALITY_REFERENCE || o->quality == QFMT_QUALITY_BEST) && (o->keep || !o->nkeep) &&
           (o->quantize || !o->nquantize) && !(o->flags & ~QFMT_CONVERT_STRICT_TOKENIZER) && qfmt__policy_valid_types(o);
}

/* The type the policy gives tensor p of GGUF type `type`: float tensors as qfmt_convert_hf
 * decides; a block-quantized one is looked at as a float tensor, and keeps its type where such
 * a tensor would (the policy answers with the source type: asked with f16 and with bf16, it
 * says f16 and bf16). */
static uint32_t choose(const qfmt__convert_policy *pol, const qfmt_convert_opts *o, const plan_tensor *p, uint32_t type,
                       const char **note)
{
    *note = NULL;
    if (o->type == QFMT_CONVERT_KEEP && !(o->types && (o->types->mix || o->types->target_bpw > 0))) {
        /* no --type: only what a recipe rule or a --quantize glob names changes */
        bool named = false;
        for (size_t k = 0; k < o->nquantize && !named; k++) named = fnmatch(o->quantize[k], p->hf, 0) == 0;
        for (size_t k = 0; o->types && k < o->types->nrules && !named; k++)
            named = fnmatch(o->types->rules[k].glob, p->hf, 0) == 0;
        if (!named) return type;
    }
    if (is_float(type)) return qfmt__policy_type(pol, p->hf, type, p->ndim, p->dims, note);
    const char *n1, *n2;
    uint32_t a = qfmt__policy_type(pol, p->hf, QFMT_TYPE_F16, p->ndim, p->dims, &n1);
    uint32_t b = qfmt__policy_type(pol, p->hf, QFMT_TYPE_BF16, p->ndim, p->dims, &n2);
    *note = NULL;
    if (a == QFMT_TYPE_F16 && b == QFMT_TYPE_BF16) return type;
    *note = n1;
    return a;
}

qfmt_status qfmt_convert_gguf(const char *src, const char *out, const qfmt_convert_opts *opts, qfmt_convert_result *res,
                              qfmt_error *err)
{
    qfmt_convert_opts defaults = QFMT_CONVERT_OPTS_INIT;
    defaults.type = QFMT_CONVERT_KEEP;
    const qfmt_convert_opts *o = opts ? opts : &defaults;
    qfmt_convert_result local;
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    if (!src || !out || !valid_opts(o))
        return QFMT__FAIL(err, QFMT_E_ARG, out, NULL, "%s", "invalid arguments to qfmt_convert_gguf");
    bool keep_all = o->type == QFMT_CONVERT_KEEP && !o->types;
    importer im;
    memset(&im, 0, sizeof im);
    im.src = src;
    im.o = o;
    qfmt__convert_policy pol;
    memset(&pol, 0, sizeof pol);
    pol.mix.mix = -1;
    bool pol_init = false;
    qfmt_writer *w = NULL;
    char **transposed = NULL;
    size_t ntransposed = 0;
    qfmt__policy_tensor *pt = NULL;
    qfmt_status s = qfmt_gguf_open(&im.g, src, err);
    if (s == QFMT_OK) s = qfmt__gguf_import_model(im.g, src, &im.m, err);
    if (s != QFMT_OK) goto out;
    uint64_t nt = qfmt_gguf_tensor_count(im.g);
    res->bytes_total = qfmt_gguf_file_size(im.g);
    im.t = calloc((size_t)(nt ? nt : 1), sizeof *im.t);
    transposed = calloc((size_t)(nt ? nt : 1), sizeof *transposed);
    if (!im.t || !transposed) {
        s = QFMT__FAIL(err, QFMT_E_NOMEM, src, NULL, "%s", "out of memory");
        goto out;
    }
    /* The plan: every tensor named, shaped and checked before anything is written. */
    for (uint64_t i = 0; i < nt; i++) {
        qfmt_gguf_tensor t;
        if ((s = qfmt_gguf_tensor_get(im.g, i, &t, err)) != QFMT_OK) goto out;
        if (qfmt__gguf_is_rope_tensor(t.name)) continue; /* read into the RoPE keys */
        if (t.flags & QFMT_GGUF_TENSOR_UNKNOWN_TYPE) {
            s = QFMT__FAIL(err, QFMT_E_UNSUPPORTED, src, t.name, "ggml type %u is not one qfmt knows", t.type);
            goto out;
        }
        char hf[512];
        qfmt_status ns = qfmt_family_hf_name(im.m.fam, t.name, hf, sizeof hf);
        if (ns != QFMT_OK) {
            s = QFMT__FAIL(err, QFMT_E_UNSUPPORTED, src, t.name, "not a tensor of llama.cpp's %s that qfmt's %s knows", im.m.arch,
                           qfmt_family_name(im.m.fam));
            goto out;
        }
        plan_tensor *p = &im.t[im.n];
        if (!(p->hf = strdup(hf))) {
            s = QFMT__FAIL(err, QFMT_E_NOMEM, src, t.name, "%s", "out of memory");
            goto out;
        }
        im.n++;
        p->index = i;
        p->type = t.type;
        p->ndim = t.ndim;
        for (uint32_t k = 0; k < t.ndim; k++) p->dims[k] = t.ne[t.ndim - 1 - k];
        uint64_t rows = t.ndim == 1 ? t.ne[0] : t.ne[1];
        p->permute = rows ? qfmt__gguf_permute_heads(&im.m, hf) : 0; /* an empty tensor has no rows to move */
        if (p->permute && (t.ndim > 2 || rows % (2 * p->permute) != 0 || (t.ndim == 1 && !is_float(t.type)))) {
            s = QFMT__FAIL(err, QFMT_E_CORRUPT, src, t.name, "%llu rows do not split into %llu heads of an even width",
                           (unsigned long long)rows, (unsigned long long)p->permute);
            goto out;
        }
        p->shift = qfmt__gguf_shifted_norm(&im.m, hf);
        if (p->shift && !is_float(t.type)) {
            s = QFMT__FAIL(err, QFMT_E_UNSUPPORTED, src, t.name, "a Gemma norm of type %s (f32, f16 or bf16 expected)",
                           qfmt_type_get_traits(t.type)->name);
            goto out;
        }
        if (p->shift) p->type = QFMT_TYPE_F32;
        if (im.m.fam == &qfmt__family_gpt2 && (qfmt_family_tensor_role(im.m.fam, hf) & QFMT_FAMILY_CONV1D) && t.ndim == 2)
            transposed[ntransposed++] = p->hf; /* llama.cpp's [out, in] is qfmt's stored layout */
    }
    res->tensors_total = im.n;
    if (!keep_all) {
        if (!(pt = calloc(im.n ? im.n : 1, sizeof *pt))) {
            s = QFMT__FAIL(err, QFMT_E_NOMEM, src, NULL, "%s", "out of memory");
            goto out;
        }
        for (size_t i = 0; i < im.n; i++) {
            pt[i].name = im.t[i].hf;
            pt[i].type = is_float(im.t[i].type) ? im.t[i].type : QFMT_TYPE_F32; /* as the size target sees it (fetch) */
            pt[i].ndim = im.t[i].ndim;
            memcpy(pt[i].dims, im.t[i].dims, sizeof pt[i].dims);
        }
        qfmt__policy_hparams hp = {im.m.layers, im.m.heads, im.m.kv_heads};
        qfmt_convert_opts po = *o; /* no --type (a recipe alone): the policy's own target is not used */
        if (po.type == QFMT_CONVERT_KEEP) po.type = QFMT_TYPE_F32;
        pol_init = true;
        if ((s = qfmt__policy_init(&pol, &po, im.m.fam, &hp, pt, im.n, err)) != QFMT_OK) goto out;
        if ((s = qfmt__policy_size(&pol, o, pt, im.n, fetch, release, &im, err)) != QFMT_OK) goto out;
    }
    qfmt_write_opts wo = QFMT_WRITE_OPTS_INIT;
    if ((s = qfmt_writer_create(&w, out, &wo, err)) != QFMT_OK) goto out;
    if (o->temp_file) o->temp_file(o->ctx, qfmt_writer_temp_path(w));
    float *imp_buf = NULL;
    size_t imp_cap = 0;
    for (size_t i = 0; s == QFMT_OK && i < im.n; i++) {
        plan_tensor *p = &im.t[i];
        const void *data;
        uint64_t size;
        uint32_t type;
        if ((s = prepare(&im, i, &data, &size, &type, err)) != QFMT_OK) break;
        uint64_t in_size = size;
        qfmt_tensor_desc d = QFMT_TENSOR_DESC_INIT;
        d.name = p->hf;
        d.ndim = p->ndim;
        memcpy(d.dims, p->dims, sizeof d.dims);
        d.codec = o->zstd_level > 0 ? QFMT_CODEC_ZSTD : QFMT_CODEC_NONE;
        d.zstd_level = o->zstd_level;
        d.type = type;
        const char *note = NULL;
        uint32_t want = keep_all ? type : choose(&pol, o, p, type, &note);
        if (note && o->note) o->note(o->ctx, p->hf, want, note);
        uint64_t row = row_len(p), n = 1;
        for (uint32_t k = 0; k < p->ndim; k++) n *= p->dims[k];
        uint64_t nrows = row ? n / row : 0;
        if (want != type) {
            const void *fsrc = data;
            uint32_t ftype = type;
            qfmt_error e;
            qfmt_status cs = QFMT_OK;
            if (!is_float(type)) { /* decode a block type first */
                if (!grow(&im.c, &im.ccap, n * sizeof(float))) cs = QFMT_E_NOMEM;
                else cs = qfmt_dequantize(QFMT_TYPE_F32, im.c, n * sizeof(float), type, data, nrows, row, NULL, &e);
                fsrc = im.c;
                ftype = QFMT_TYPE_F32;
            }
            uint64_t osize = 0;
            if (cs == QFMT_OK && want == ftype) {
                data = fsrc;
                size = n * sizeof(float);
                d.type = want;
            } else if (cs == QFMT_OK) {
                const float *imp = NULL;
                if (is_block(want) &&
                    (s = qfmt__policy_importance(o, im.m.fam, p->hf, row, &imp_buf, &imp_cap, &imp, err)) != QFMT_OK)
                    break;
                qfmt_quant_opts qo = QFMT_QUANT_OPTS_INIT;
                qo.threads = o->threads ? o->threads : 1;
                qo.quality = o->quality;
                qo.importance = imp;
                if (qfmt_type_size(want, n, &osize) != QFMT_OK || !grow(&im.b, &im.bcap, osize)) cs = QFMT_E_NOMEM;
                else cs = qfmt_quantize(want, im.b, osize, ftype, fsrc, nrows, row, &qo, &e);
                if (cs == QFMT_OK) {
                    data = im.b;
                    size = osize;
                    d.type = want;
                }
            }
            if (cs == QFMT_E_NOMEM) {
                s = QFMT__FAIL(err, QFMT_E_NOMEM, src, p->hf, "%s", "out of memory");
                break;
            }
            if (cs != QFMT_OK && o->note) o->note(o->ctx, p->hf, type, e.message); /* keeps its type */
        }
        s = qfmt_writer_add_tensor(w, &d, data, size, err);
        res->bytes_in += in_size;
        res->elements += n;
        res->tensors++;
        if (o->progress) o->progress(o->ctx, i + 1, im.n, res->bytes_in, res->bytes_total);
    }
    free(imp_buf);
    if (s == QFMT_OK) s = put_metadata(&im, w, &pol, keep_all, transposed, ntransposed, err);
    if (s == QFMT_OK) s = qfmt_writer_finish(w, err);
out:
    qfmt_writer_free(w); /* removes the temporary file unless finished */
    if (w && o->temp_file) o->temp_file(o->ctx, NULL);
    if (pol_init) qfmt__policy_free(&pol);
    free(pt);
    free(transposed);
    for (size_t i = 0; i < im.n; i++) free(im.t[i].hf);
    free(im.t);
    free(im.a);
    free(im.b);
    free(im.c);
    qfmt_gguf_close(im.g);
    return s;
}
