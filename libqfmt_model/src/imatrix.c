/* Importance matrices (calibration): for every matrix product with a stored weight, the sum of
 * the squared input activations per input column and the number of input rows, collected by
 * running the model over calibration text (qfmt calibrate), saved and read in llama.cpp's
 * imatrix GGUF layout (tools/imatrix: general.type "imatrix", imatrix.datasets,
 * imatrix.chunk_count, imatrix.chunk_size; per weight "<name>.in_sum2" F32 [cols, 1] and
 * "<name>.counts" F32 [1, 1], names llama.cpp's, sorted), so that files move between the two
 * tools; and the importance convert quantizes with: in_sum2[j] / counts, as llama-quantize. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "qfmt.h"
#include "qfmt_model.h"

typedef struct {
    char *name;      /* llama.cpp's (GGUF) name, or the stored name where it has none */
    uint64_t cols;
    double *sum2;    /* cols values */
    double count;    /* input rows seen */
    const qmat *w;   /* while collecting: the matrix these statistics belong to */
} entry;

struct qfmt_imatrix {
    entry *e;
    size_t n, cap;
    uint32_t chunks, chunk_size;
    char **datasets;
    size_t ndatasets;
    const qfmt_model *m; /* while collecting */
    int failed;          /* an allocation failed while collecting */
};

static qfmt_status fail(qfmt_error *err, qfmt_status code, const char *path, const char *tensor, const char *msg)
{
    if (err) {
        memset(err, 0, sizeof *err);
        err->code = code;
        err->offset = QFMT_NO_OFFSET;
        snprintf(err->path, sizeof err->path, "%.255s", path ? path : "");
        snprintf(err->tensor, sizeof err->tensor, "%.127s", tensor ? tensor : "");
        snprintf(err->message, sizeof err->message, "%s", msg);
    }
    return code;
}

qfmt_status qfmt_imatrix_new(qfmt_imatrix **out, qfmt_error *err)
{
    if (!out) return fail(err, QFMT_E_ARG, NULL, NULL, "qfmt_imatrix_new: NULL argument");
    *out = calloc(1, sizeof **out);
    return *out ? QFMT_OK : fail(err, QFMT_E_NOMEM, NULL, NULL, "out of memory");
}

void qfmt_imatrix_free(qfmt_imatrix *im)
{
    if (!im) return;
    for (size_t i = 0; i < im->n; i++) {
        free(im->e[i].name);
        free(im->e[i].sum2);
    }
    free(im->e);
    for (size_t i = 0; i < im->ndatasets; i++) free(im->datasets[i]);
    free(im->datasets);
    free(im);
}

static entry *find(const qfmt_imatrix *im, const char *name)
{
    for (size_t i = 0; i < im->n; i++)
        if (strcmp(im->e[i].name, name) == 0) return &im->e[i];
    return NULL;
}

/* A new entry (zeroed sums) or NULL when out of memory. */
static entry *add(qfmt_imatrix *im, const char *name, uint64_t cols)
{
    if (cols == 0 || cols > ((uint64_t)1 << 30)) return NULL;
    if (im->n == im->cap) {
        size_t cap = im->cap ? 2 * im->cap : 16;
        entry *e = realloc(im->e, cap * sizeof *e);
        if (!e) return NULL;
        im->e = e;
        im->cap = cap;
    }
    entry *e = &im->e[im->n];
    memset(e, 0, sizeof *e);
    e->name = malloc(strlen(name) + 1);
    e->sum2 = calloc((size_t)cols, sizeof *e->sum2);
    if (!e->name || !e->sum2) {
        free(e->name);
        free(e->sum2);
        return NULL;
    }
    strcpy(e->name, name);
    e->cols = cols;
    im->n++;
    return e;
}

/* The observer: x is n rows of w->cols activations about to be multiplied by w. */
static void observe(void *ctx, const qmat *w, const float *x, size_t n)
{
    qfmt_imatrix *im = ctx;
    entry *e = NULL;
    for (size_t i = 0; i < im->n && !e; i++)
        if (im->e[i].w == w) e = &im->e[i];
    if (!e) {
        const char *stored = qfmt__model_weight_name(im->m, w);
        if (!stored) return; /* not a stored weight (a tied head) */
        char g[256];
        const char *name = stored;
        if (qfmt_family_gguf_name(im->m->hp.family, stored, g, sizeof g) == QFMT_OK) name = g;
        e = find(im, name);
        if (e && e->cols != w->cols) e = NULL;
        if (!e && !(e = add(im, name, w->cols))) {
            im->failed = 1;
            return;
        }
        e->w = w;
    }
    for (size_t t = 0; t < n; t++) {
        const float *r = x + t * w->cols;
        for (uint64_t j = 0; j < w->cols; j++) e->sum2[j] += (double)r[j] * r[j];
    }
    e->count += (double)n;
}

qfmt_status qfmt_imatrix_collect(qfmt_imatrix *im, qfmt_model *m, const int32_t *ids, size_t n,
                                 const qfmt_run_opts *o, qfmt_error *err)
{
    if (!im || !m || (!ids && n)) return fail(err, QFMT_E_ARG, NULL, NULL, "qfmt_imatrix_collect: NULL argument");
    if (n == 0) return fail(err, QFMT_E_ARG, NULL, NULL, "qfmt_imatrix_collect: no tokens");
    im->m = m;
    im->failed = 0;
    for (size_t i = 0; i < im->n; i++) im->e[i].w = NULL; /* matched again by name for this model */
    qfmt__observer obs = {observe, im};
    qfmt_error local;
    int rc = qfmt__model_forward_observed(m, ids, n, &obs, o, err ? err : &local);
    for (size_t i = 0; i < im->n; i++) im->e[i].w = NULL;
    im->m = NULL;
    if (rc != 0) return err ? (err->code ? err->code : QFMT_E_ARG) : local.code;
    if (im->failed) return fail(err, QFMT_E_NOMEM, NULL, NULL, "out of memory for the calibration statistics");
    im->chunks++;
    if (im->chunk_size == 0) im->chunk_size = (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n);
    return QFMT_OK;
}

qfmt_status qfmt_imatrix_add_dataset(qfmt_imatrix *im, const char *name, qfmt_error *err)
{
    if (!im || !name) return fail(err, QFMT_E_ARG, NULL, NULL, "qfmt_imatrix_add_dataset: NULL argument");
    char **d = realloc(im->datasets, (im->ndatasets + 1) * sizeof *d);
    if (!d) return fail(err, QFMT_E_NOMEM, NULL, NULL, "out of memory");
    im->datasets = d;
    if (!(d[im->ndatasets] = malloc(strlen(name) + 1))) return fail(err, QFMT_E_NOMEM, NULL, NULL, "out of memory");
    strcpy(d[im->ndatasets++], name);
    return QFMT_OK;
}

size_t qfmt_imatrix_count(const qfmt_imatrix *im) { return im ? im->n : 0; }
uint32_t qfmt_imatrix_chunks(const qfmt_imatrix *im) { return im ? im->chunks : 0; }

qfmt_status qfmt_imatrix_entry(const qfmt_imatrix *im, size_t i, const char **name, uint64_t *cols, double *count)
{
    if (!im || i >= im->n) return QFMT_E_RANGE;
    if (name) *name = im->e[i].name;
    if (cols) *cols = im->e[i].cols;
    if (count) *count = im->e[i].count;
    return QFMT_OK;
}

/* The entry of a tensor: its GGUF name when the family maps it, else the name as given. */
static const entry *lookup(const qfmt_imatrix *im, const qfmt_family *f, const char *name)
{
    char g[256];
    const entry *e = NULL;
    if (f && qfmt_family_gguf_name(f, name, g, sizeof g) == QFMT_OK) e = find(im, g);
    return e ? e : find(im, name);
}

qfmt_status qfmt_imatrix_importance(const qfmt_imatrix *im, const qfmt_family *f, const char *name, uint64_t cols,
                                    float *out, qfmt_error *err)
{
    if (!im || !name || !out) return fail(err, QFMT_E_ARG, NULL, name, "qfmt_imatrix_importance: NULL argument");
    const entry *e = lookup(im, f, name);
    if (!e) return fail(err, QFMT_E_NOT_FOUND, NULL, name, "the importance matrix has no entry for this tensor");
    if (e->cols != cols) {
        char msg[160];
        snprintf(msg, sizeof msg, "the importance matrix entry '%s' has %llu columns, the tensor %llu", e->name,
                 (unsigned long long)e->cols, (unsigned long long)cols);
        return fail(err, QFMT_E_CORRUPT, NULL, name, msg);
    }
    /* llama-quantize: in_sum2 / counts in fp32; an entry that saw no input weighs every column 1 */
    float c = (float)e->count;
    for (uint64_t j = 0; j < cols; j++) out[j] = c > 0.0f ? (float)e->sum2[j] / c : 1.0f;
    return QFMT_OK;
}

/* ---- The GGUF file ----------------------------------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
    return strcmp((*(const entry *const *)a)->name, (*(const entry *const *)b)->name);
}

qfmt_status qfmt_imatrix_save(const qfmt_imatrix *im, const char *path, qfmt_error *err)
{
    if (!im || !path) return fail(err, QFMT_E_ARG, path, NULL, "qfmt_imatrix_save: NULL argument");
    if (im->n == 0) return fail(err, QFMT_E_ARG, path, NULL, "no statistics to save (nothing was collected)");
    const entry **order = malloc(im->n * sizeof *order);
    float **data = calloc(im->n * 2, sizeof *data);
    qfmt_gguf_writer *w = NULL;
    qfmt_status s = QFMT_OK;
    if (!order || !data) {
        s = fail(err, QFMT_E_NOMEM, path, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < im->n; i++) order[i] = &im->e[i];
    qsort(order, im->n, sizeof *order, cmp_entry);
    if ((s = qfmt_gguf_writer_create(&w, path, err)) != QFMT_OK) goto out;
    if ((s = qfmt_gguf_writer_set_str(w, "general.type", "imatrix", 7, err)) != QFMT_OK) goto out;
    if ((s = qfmt_gguf_writer_set_str_array(w, "imatrix.datasets", (const char *const *)im->datasets, NULL,
                                            im->ndatasets, err)) != QFMT_OK)
        goto out;
    if ((s = qfmt_gguf_writer_set_u32(w, "imatrix.chunk_count", im->chunks, err)) != QFMT_OK) goto out;
    if ((s = qfmt_gguf_writer_set_u32(w, "imatrix.chunk_size", im->chunk_size, err)) != QFMT_OK) goto out;
    for (size_t i = 0; i < im->n; i++) {
        const entry *e = order[i];
        char name[256];
        float *sum2 = data[2 * i] = malloc((size_t)e->cols * sizeof *sum2);
        float *count = data[2 * i + 1] = malloc(sizeof *count);
        if (!sum2 || !count) {
            s = fail(err, QFMT_E_NOMEM, path, NULL, "out of memory");
            goto out;
        }
        for (uint64_t j = 0; j < e->cols; j++) sum2[j] = (float)e->sum2[j];
        *count = (float)e->count;
        uint64_t ne_sum[2] = {e->cols, 1}, ne_count[2] = {1, 1};
        snprintf(name, sizeof name, "%s.in_sum2", e->name);
        if ((s = qfmt_gguf_writer_add_tensor(w, name, QFMT_TYPE_F32, 2, ne_sum, sum2, e->cols * sizeof *sum2, err)) !=
            QFMT_OK)
            goto out;
        snprintf(name, sizeof name, "%s.counts", e->name);
        if ((s = qfmt_gguf_writer_add_tensor(w, name, QFMT_TYPE_F32, 2, ne_count, count, sizeof *count, err)) !=
            QFMT_OK)
            goto out;
    }
    s = qfmt_gguf_writer_commit(w, err);
out:
    qfmt_gguf_writer_free(w);
    for (size_t i = 0; data && i < im->n * 2; i++) free(data[i]);
    free(data);
    free(order);
    return s;
}

static bool ends_with(const char *s, size_t n, const char *suffix, size_t *base)
{
    size_t k = strlen(suffix);
    if (n <= k || memcmp(s + n - k, suffix, k) != 0) return false;
    *base = n - k;
    return true;
}

qfmt_status qfmt_imatrix_load(qfmt_imatrix **out, const char *path, qfmt_error *err)
{
    if (!out || !path) return fail(err, QFMT_E_ARG, path, NULL, "qfmt_imatrix_load: NULL argument");
    *out = NULL;
    qfmt_gguf *g = NULL;
    qfmt_status s = qfmt_gguf_open(&g, path, err);
    if (s != QFMT_OK) return s;
    qfmt_imatrix *im = calloc(1, sizeof *im);
    if (!im) {
        qfmt_gguf_close(g);
        return fail(err, QFMT_E_NOMEM, path, NULL, "out of memory");
    }
    uint64_t u;
    if (qfmt_gguf_get_u64(g, "imatrix.chunk_count", &u, NULL) == QFMT_OK) im->chunks = u > UINT32_MAX ? UINT32_MAX : (uint32_t)u;
    if (qfmt_gguf_get_u64(g, "imatrix.chunk_size", &u, NULL) == QFMT_OK) im->chunk_size = u > UINT32_MAX ? UINT32_MAX : (uint32_t)u;
    uint32_t et;
    uint64_t nd = 0;
    if (qfmt_gguf_get_array(g, "imatrix.datasets", &et, &nd, NULL) == QFMT_OK && et == QFMT_GGUF_STRING)
        for (uint64_t i = 0; i < nd && i < 1024 && s == QFMT_OK; i++) {
            const char *p;
            size_t len;
            if (qfmt_gguf_array_str(g, "imatrix.datasets", i, &p, &len, NULL) != QFMT_OK) break;
            char buf[1024];
            snprintf(buf, sizeof buf, "%.*s", (int)(len < 1023 ? len : 1023), p);
            s = qfmt_imatrix_add_dataset(im, buf, err);
        }
    uint64_t nt = qfmt_gguf_tensor_count(g);
    /* every "<name>.in_sum2" with its "<name>.counts"; other tensors (".in_sum") are ignored */
    for (uint64_t i = 0; i < nt && s == QFMT_OK; i++) {
        qfmt_gguf_tensor t;
        if ((s = qfmt_gguf_tensor_get(g, i, &t, err)) != QFMT_OK) break;
        size_t base;
        if (!ends_with(t.name, t.name_len, ".in_sum2", &base)) continue;
        char name[256], cname[272];
        if (base >= sizeof name) {
            s = fail(err, QFMT_E_CORRUPT, path, t.name, "tensor name too long");
            break;
        }
        memcpy(name, t.name, base);
        name[base] = '\0';
        if (t.type != QFMT_TYPE_F32 || t.ne[0] == 0 || t.nelements != t.ne[0] || t.ne[0] > ((uint64_t)1 << 30)) {
            s = fail(err, t.nelements > t.ne[0] ? QFMT_E_UNSUPPORTED : QFMT_E_CORRUPT, path, t.name,
                     t.nelements > t.ne[0] ? "statistics of several matrices (experts) are not supported"
                                           : "in_sum2 must be F32 [cols] or [cols, 1]");
            break;
        }
        snprintf(cname, sizeof cname, "%s.counts", name);
        uint64_t ci;
        qfmt_gguf_tensor c;
        if (qfmt_gguf_find_tensor(g, cname, &ci, NULL) != QFMT_OK) {
            s = fail(err, QFMT_E_CORRUPT, path, t.name, "has no matching .counts tensor");
            break;
        }
        if ((s = qfmt_gguf_tensor_get(g, ci, &c, err)) != QFMT_OK) break;
        if (c.type != QFMT_TYPE_F32 || c.nelements != 1) {
            s = fail(err, QFMT_E_CORRUPT, path, cname, "counts must be one F32 value");
            break;
        }
        float count;
        memcpy(&count, c.data, sizeof count);
        if (!(count >= 0.0f) || !isfinite(count)) {
            s = fail(err, QFMT_E_CORRUPT, path, cname, "the count is negative or not finite");
            break;
        }
        if (find(im, name)) {
            s = fail(err, QFMT_E_CORRUPT, path, t.name, "duplicate entry");
            break;
        }
        entry *e = add(im, name, t.ne[0]);
        if (!e) {
            s = fail(err, QFMT_E_NOMEM, path, t.name, "out of memory");
            break;
        }
        const uint8_t *p = t.data;
        for (uint64_t j = 0; j < t.ne[0]; j++) {
            float v;
            memcpy(&v, p + 4 * j, sizeof v);
            if (!(v >= 0.0f) || !isfinite(v)) {
                char msg[128];
                snprintf(msg, sizeof msg, "column %llu's sum of squares is %g (finite and >= 0 needed)",
                         (unsigned long long)j, (double)v);
                s = fail(err, QFMT_E_CORRUPT, path, t.name, msg);
                break;
            }
            e->sum2[j] = v;
        }
        e->count = count;
    }
    if (s == QFMT_OK && im->n == 0) s = fail(err, QFMT_E_CORRUPT, path, NULL, "no <name>.in_sum2 tensors: not an importance matrix");
    qfmt_gguf_close(g);
    if (s != QFMT_OK) {
        qfmt_imatrix_free(im);
        return s;
    }
    *out = im;
    return QFMT_OK;
}
