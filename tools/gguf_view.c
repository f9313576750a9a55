/*
 * gguf_view.c - `qfmt dump` and `qfmt verify` of a GGUF file (llama.cpp's format), chosen by
 * its magic. The file goes through qfmt_gguf_open, which checks its structure and bounds;
 * this file only prints what the reader gives.
 *
 * GGUF has no checksums: verify can check the structure, that every tensor's bytes can be read
 * and that every float and block tensor decodes to finite values, never that the data are the
 * writer's. --hash prints per-tensor hashes in llama-gguf-hash's layout so that two copies can
 * be compared: XXH3-64 (qfmt's checksum), or XXH64 (llama-gguf-hash's default, which then
 * prints the same hashes as that tool).
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

enum {
    ABBREV_STRING_BYTES = 80, /* a metadata string longer than this is cut (text output) */
    ABBREV_ARRAY_ELEMS = 8,
    ABBREV_ELEM_STRING_BYTES = 40,
    NAME_COLUMN_MAX = 60,
    DECODE_CHUNK = 1u << 20, /* values decoded at a time (a multiple of every block size) */
};

bool cli_is_gguf(const char *path)
{
    int fd = -1;
    char magic[4];
    bool yes = qfmt_file_open_read(path, &fd, NULL) == QFMT_OK && read(fd, magic, 4) == 4 &&
               memcmp(magic, "GGUF", 4) == 0;
    if (fd >= 0)
        close(fd);
    return yes;
}

static void oom(qfmt_error *err)
{
    memset(err, 0, sizeof *err);
    err->code = QFMT_E_NOMEM;
    err->offset = QFMT_NO_OFFSET;
    snprintf(err->message, sizeof err->message, "out of memory");
}

/* numpy order (outermost first): ne reversed. */
static void numpy_shape(const qfmt_gguf_tensor *t, uint64_t *dims)
{
    for (uint32_t d = 0; d < t->ndim; d++)
        dims[d] = t->ne[t->ndim - 1 - d];
}

static const char *shape_text(const qfmt_gguf_tensor *t, char *buf, size_t n)
{
    uint64_t dims[QFMT_GGUF_MAX_DIMS] = {0};
    numpy_shape(t, dims);
    return cli_shape(dims, t->ndim, buf, n);
}

/* "u32", "str", "array<f32>". */
static const char *kv_type_label(const qfmt_gguf_kv *kv, char *buf, size_t n)
{
    if (kv->type == QFMT_GGUF_ARRAY)
        snprintf(buf, n, "array<%s>", qfmt_gguf_type_name(kv->elem_type));
    else
        snprintf(buf, n, "%s", qfmt_gguf_type_name(kv->type));
    return buf;
}

/* ---- Values -------------------------------------------------------------------------------- */

/* One scalar of a kv pair or array element, read through the reader's typed getters (array:
 * index i of key; scalar: i is UINT64_MAX). */
typedef struct gguf_scalar {
    uint32_t type;
    uint64_t u;
    int64_t i;
    double f;
    bool b;
    const char *s;
    size_t len;
} gguf_scalar;

static bool is_unsigned(uint32_t t)
{
    return t == QFMT_GGUF_UINT8 || t == QFMT_GGUF_UINT16 || t == QFMT_GGUF_UINT32 ||
           t == QFMT_GGUF_UINT64;
}

static bool is_signed(uint32_t t)
{
    return t == QFMT_GGUF_INT8 || t == QFMT_GGUF_INT16 || t == QFMT_GGUF_INT32 ||
           t == QFMT_GGUF_INT64;
}

static qfmt_status get_scalar(const qfmt_gguf *g, const char *key, uint32_t type, uint64_t i,
                              gguf_scalar *out, qfmt_error *err)
{
    bool arr = i != UINT64_MAX;
    memset(out, 0, sizeof *out);
    out->type = type;
    if (is_unsigned(type))
        return arr ? qfmt_gguf_array_u64(g, key, i, &out->u, err) : qfmt_gguf_get_u64(g, key, &out->u, err);
    if (is_signed(type))
        return arr ? qfmt_gguf_array_i64(g, key, i, &out->i, err) : qfmt_gguf_get_i64(g, key, &out->i, err);
    if (type == QFMT_GGUF_FLOAT32 || type == QFMT_GGUF_FLOAT64)
        return arr ? qfmt_gguf_array_f64(g, key, i, &out->f, err) : qfmt_gguf_get_f64(g, key, &out->f, err);
    if (type == QFMT_GGUF_BOOL)
        return arr ? qfmt_gguf_array_bool(g, key, i, &out->b, err) : qfmt_gguf_get_bool(g, key, &out->b, err);
    if (type == QFMT_GGUF_STRING)
        return arr ? qfmt_gguf_array_str(g, key, i, &out->s, &out->len, err)
                   : qfmt_gguf_get_str(g, key, &out->s, &out->len, err);
    memset(err, 0, sizeof *err);
    err->code = QFMT_E_UNSUPPORTED;
    err->offset = QFMT_NO_OFFSET;
    snprintf(err->message, sizeof err->message, "value type %" PRIu32 " cannot be shown", type);
    return QFMT_E_UNSUPPORTED;
}

static void print_scalar(const gguf_scalar *v, size_t max_string_bytes)
{
    char buf[64];
    if (is_unsigned(v->type)) {
        printf("%" PRIu64, v->u);
    } else if (is_signed(v->type)) {
        printf("%" PRId64, v->i);
    } else if (v->type == QFMT_GGUF_FLOAT32 || v->type == QFMT_GGUF_FLOAT64) {
        fputs(cli_format_real(v->f, v->type == QFMT_GGUF_FLOAT32, buf, sizeof buf), stdout);
    } else if (v->type == QFMT_GGUF_BOOL) {
        fputs(v->b ? "true" : "false", stdout);
    } else {
        putchar('"');
        bool cut = cli_print_escaped(stdout, v->s, v->len, max_string_bytes);
        putchar('"');
        if (cut)
            printf("... (%zu bytes)", v->len);
    }
}

static void json_scalar(cli_jw *w, const char *key, const gguf_scalar *v)
{
    if (is_unsigned(v->type))
        cli_jw_u64(w, key, v->u);
    else if (is_signed(v->type))
        cli_jw_i64(w, key, v->i);
    else if (v->type == QFMT_GGUF_FLOAT32 || v->type == QFMT_GGUF_FLOAT64)
        cli_jw_real(w, key, v->f, v->type == QFMT_GGUF_FLOAT32);
    else if (v->type == QFMT_GGUF_BOOL)
        cli_jw_bool(w, key, v->b);
    else
        cli_jw_text(w, key, v->s, v->len);
}

/* Calls fn for each of the first `max` values of tensor t (storage order), decoding float and
 * block types to f32 DECODE_CHUNK values at a time (blocks are contiguous across rows).
 * QFMT_E_UNSUPPORTED for a type that cannot be decoded. */
static qfmt_status tensor_values(const qfmt_gguf_tensor *t, uint64_t max, unsigned threads,
                                 cli_value_fn fn, void *ctx, qfmt_error *err)
{
    const qfmt_type_traits *tr = qfmt_type_get_traits(t->type);
    if (tr == NULL || t->data == NULL) {
        memset(err, 0, sizeof *err);
        err->code = QFMT_E_UNSUPPORTED;
        err->offset = t->offset;
        snprintf(err->tensor, sizeof err->tensor, "%s", t->name);
        snprintf(err->message, sizeof err->message, "ggml type %" PRIu32 " is not one qfmt knows", t->type);
        return QFMT_E_UNSUPPORTED;
    }
    uint64_t n = t->nelements < max ? t->nelements : max;
    const uint8_t *p = t->data;
    cli_value v;
    memset(&v, 0, sizeof v);
    if (!tr->is_float && tr->block_elems == 1) { /* integer types, little-endian */
        uint32_t width = tr->block_bytes;
        for (uint64_t k = 0; k < n; k++) {
            uint64_t u = 0;
            for (uint32_t b = 0; b < width; b++)
                u |= (uint64_t)p[k * width + b] << (8 * b);
            v.kind = CLI_VALUE_INT;
            v.i = width == 8 ? (int64_t)u : (int64_t)(u ^ (1ull << (8 * width - 1))) - (int64_t)(1ull << (8 * width - 1));
            if (!fn(ctx, &v))
                goto out_of_memory;
        }
        return QFMT_OK;
    }
    if (t->type == QFMT_TYPE_F64) {
        for (uint64_t k = 0; k < n; k++) {
            double d;
            memcpy(&d, p + 8 * k, 8);
            v.kind = CLI_VALUE_F64;
            v.f = d;
            if (!fn(ctx, &v))
                goto out_of_memory;
        }
        return QFMT_OK;
    }
    float *buf = malloc(DECODE_CHUNK * sizeof *buf);
    if (buf == NULL)
        goto out_of_memory;
    qfmt_quant_opts qo = QFMT_QUANT_OPTS_INIT;
    qo.threads = threads;
    for (uint64_t done = 0; done < n;) {
        uint64_t left = t->nelements - done, m = left < DECODE_CHUNK ? left : DECODE_CHUNK;
        qfmt_status s = qfmt_dequantize(QFMT_TYPE_F32, buf, m * sizeof *buf, t->type,
                                        p + done / tr->block_elems * tr->block_bytes, 1, m, &qo, err);
        if (s != QFMT_OK) {
            snprintf(err->tensor, sizeof err->tensor, "%s", t->name);
            free(buf);
            return s;
        }
        for (uint64_t k = 0; k < m && done + k < n; k++) {
            v.kind = CLI_VALUE_F32;
            v.f = buf[k];
            if (!fn(ctx, &v)) {
                free(buf);
                goto out_of_memory;
            }
        }
        done += m;
    }
    free(buf);
    return QFMT_OK;
out_of_memory:
    oom(err);
    return QFMT_E_NOMEM;
}

/* ---- Totals -------------------------------------------------------------------------------- */

struct type_total {
    uint32_t type;
    uint64_t tensors, elements, bytes;
};

struct totals {
    struct type_total by_type[256 + 1]; /* ggml type ids are < 256; [256]: all */
    uint8_t seen[256];
    uint32_t order[256];
    size_t ntypes;
};

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void totals_add(struct totals *tot, const qfmt_gguf_tensor *t)
{
    uint32_t ty = t->type & 255u; /* the reader refuses ids above 255 */
    if (!tot->seen[ty]) {
        tot->seen[ty] = 1;
        tot->order[tot->ntypes++] = ty;
        tot->by_type[ty].type = ty;
    }
    struct type_total *a[2] = {&tot->by_type[ty], &tot->by_type[256]};
    for (int k = 0; k < 2; k++) {
        a[k]->tensors++;
        a[k]->elements = sat_add(a[k]->elements, t->nelements);
        a[k]->bytes = sat_add(a[k]->bytes, t->size);
    }
}

static void print_totals(const struct totals *tot)
{
    const struct type_total *all = &tot->by_type[256];
    printf("\ntotals: %" PRIu64 " tensor%s, %" PRIu64 " parameter%s\n", all->tensors,
           all->tensors == 1 ? "" : "s", all->elements, all->elements == 1 ? "" : "s");
    if (all->tensors == 0)
        return;
    printf("  %-8s  %7s  %12s  %14s  %s\n", "type", "tensors", "parameters", "bytes", "bits/weight");
    for (size_t k = 0; k <= tot->ntypes; k++) {
        const struct type_total *t = k < tot->ntypes ? &tot->by_type[tot->order[k]] : all;
        char name[32], bpw[32] = "-";
        if (t->elements > 0)
            snprintf(bpw, sizeof bpw, "%.2f", 8.0 * (double)t->bytes / (double)t->elements);
        printf("  %-8s  %7" PRIu64 "  %12" PRIu64 "  %14" PRIu64 "  %s\n",
               k < tot->ntypes ? cli_type_name(t->type, name, sizeof name) : "all", t->tensors,
               t->elements, t->bytes, bpw);
    }
}

static void json_totals(cli_jw *w, const struct totals *tot)
{
    for (size_t k = 0; k <= tot->ntypes; k++) {
        const struct type_total *t = k < tot->ntypes ? &tot->by_type[tot->order[k]] : &tot->by_type[256];
        char name[32];
        if (k == 0)
            cli_jw_object(w, "by_type");
        if (k == tot->ntypes) {
            cli_jw_end(w);
            cli_jw_object(w, "totals");
        } else {
            cli_jw_object(w, cli_type_name(t->type, name, sizeof name));
        }
        cli_jw_u64(w, "tensors", t->tensors);
        cli_jw_u64(w, "parameters", t->elements);
        cli_jw_u64(w, "bytes", t->bytes);
        if (t->elements > 0)
            cli_jw_number(w, "bits_per_weight", 8.0 * (double)t->bytes / (double)t->elements);
        else
            cli_jw_null(w, "bits_per_weight");
        cli_jw_end(w);
    }
    if (tot->ntypes == 0) { /* no tensors: empty by_type, zero totals */
        cli_jw_object(w, "by_type");
        cli_jw_end(w);
        cli_jw_object(w, "totals");
        cli_jw_u64(w, "tensors", 0);
        cli_jw_u64(w, "parameters", 0);
        cli_jw_u64(w, "bytes", 0);
        cli_jw_null(w, "bits_per_weight");
        cli_jw_end(w);
    }
}

/* ---- dump ---------------------------------------------------------------------------------- */

static qfmt_status print_metadata(const qfmt_gguf *g, bool full, qfmt_error *err)
{
    uint64_t n = qfmt_gguf_kv_count(g);
    printf("\nmetadata: %" PRIu64 " key-value pair%s\n", n, n == 1 ? "" : "s");
    size_t key_w = 0, type_w = 0;
    for (uint64_t i = 0; i < n; i++) {
        qfmt_gguf_kv kv;
        char label[48];
        qfmt_status s = qfmt_gguf_kv_get(g, i, &kv, err);
        if (s != QFMT_OK)
            return s;
        size_t kl = cli_escaped_width(kv.key, kv.key_len), tl = strlen(kv_type_label(&kv, label, sizeof label));
        key_w = kl > key_w ? kl : key_w;
        type_w = tl > type_w ? tl : type_w;
    }
    if (key_w > NAME_COLUMN_MAX)
        key_w = NAME_COLUMN_MAX;
    for (uint64_t i = 0; i < n; i++) {
        qfmt_gguf_kv kv;
        char label[48];
        qfmt_status s = qfmt_gguf_kv_get(g, i, &kv, err);
        if (s != QFMT_OK)
            return s;
        size_t kl = cli_escaped_width(kv.key, kv.key_len);
        fputs("  ", stdout);
        cli_print_escaped(stdout, kv.key, kv.key_len, 0);
        printf("%*s  %-*s  ", kl < key_w ? (int)(key_w - kl) : 0, "", (int)type_w,
               kv_type_label(&kv, label, sizeof label));
        gguf_scalar v;
        if (kv.type != QFMT_GGUF_ARRAY) {
            if ((s = get_scalar(g, kv.key, kv.type, UINT64_MAX, &v, err)) != QFMT_OK)
                return s;
            print_scalar(&v, full ? 0 : ABBREV_STRING_BYTES);
        } else {
            uint64_t shown = full || kv.count <= ABBREV_ARRAY_ELEMS ? kv.count : ABBREV_ARRAY_ELEMS;
            putchar('[');
            for (uint64_t k = 0; k < shown; k++) {
                if ((s = get_scalar(g, kv.key, kv.elem_type, k, &v, err)) != QFMT_OK) {
                    putchar('\n');
                    return s;
                }
                fputs(k ? ", " : "", stdout);
                print_scalar(&v, full ? 0 : ABBREV_ELEM_STRING_BYTES);
            }
            if (shown < kv.count)
                fputs(shown > 0 ? ", ..." : "...", stdout);
            printf("] (%" PRIu64 " element%s)", kv.count, kv.count == 1 ? "" : "s");
        }
        putchar('\n');
    }
    return QFMT_OK;
}

static qfmt_status print_tensors(const qfmt_gguf *g, struct totals *tot, qfmt_error *err)
{
    uint64_t n = qfmt_gguf_tensor_count(g);
    printf("\ntensors: %" PRIu64 " (shape outermost first, as numpy: ggml's ne reversed)\n", n);
    int w_name = 4, w_type = 4, w_shape = 5;
    for (uint64_t i = 0; i < n; i++) {
        qfmt_gguf_tensor t;
        char buf[256];
        qfmt_status s = qfmt_gguf_tensor_get(g, i, &t, err);
        if (s != QFMT_OK)
            return s;
        size_t nl = cli_escaped_width(t.name, t.name_len);
        w_name = nl > (size_t)w_name ? (nl > NAME_COLUMN_MAX ? NAME_COLUMN_MAX : (int)nl) : w_name;
        int tl = (int)strlen(cli_type_name(t.type, buf, sizeof buf));
        w_type = tl > w_type ? tl : w_type;
        int sl = (int)strlen(shape_text(&t, buf, sizeof buf));
        w_shape = sl > w_shape ? sl : w_shape;
        totals_add(tot, &t);
    }
    if (n == 0)
        return QFMT_OK;
    printf("  %6s  %-*s  %-*s  %-*s  %12s  %12s\n", "#", w_name, "name", w_type, "type", w_shape,
           "shape", "offset", "bytes");
    for (uint64_t i = 0; i < n; i++) {
        qfmt_gguf_tensor t;
        char type[32], shape[256];
        qfmt_status s = qfmt_gguf_tensor_get(g, i, &t, err);
        if (s != QFMT_OK)
            return s;
        size_t nl = cli_escaped_width(t.name, t.name_len);
        printf("  %6" PRIu64 "  ", i);
        cli_print_escaped(stdout, t.name, t.name_len, 0);
        printf("%*s  %-*s  %-*s  %12" PRIu64 "  ", nl < (size_t)w_name ? w_name - (int)nl : 0, "",
               w_type, cli_type_name(t.type, type, sizeof type), w_shape, shape_text(&t, shape, sizeof shape),
               t.offset);
        if (t.flags & QFMT_GGUF_TENSOR_UNKNOWN_TYPE)
            printf("%12s\n", "?");
        else
            printf("%12" PRIu64 "\n", t.size);
    }
    return QFMT_OK;
}

static bool print_value_cb(void *ctx, const cli_value *v)
{
    bool *first = ctx;
    char buf[64];
    fputs(*first ? "" : ", ", stdout);
    *first = false;
    if (v->kind == CLI_VALUE_INT)
        printf("%" PRId64, v->i);
    else
        fputs(cli_format_real(v->f, v->kind == CLI_VALUE_F32, buf, sizeof buf), stdout);
    return true;
}

static qfmt_status print_values(const qfmt_gguf *g, uint64_t max, qfmt_error *err)
{
    uint64_t n = qfmt_gguf_tensor_count(g);
    printf("\nvalues:\n");
    for (uint64_t i = 0; i < n; i++) {
        qfmt_gguf_tensor t;
        qfmt_status s = qfmt_gguf_tensor_get(g, i, &t, err);
        if (s != QFMT_OK)
            return s;
        fputs("  ", stdout);
        cli_print_escaped(stdout, t.name, t.name_len, 0);
        fputs("  [", stdout);
        bool first = true;
        s = tensor_values(&t, max, 1, print_value_cb, &first, err);
        if (s == QFMT_E_UNSUPPORTED) {
            printf("] (not decodable: %s)\n", err->message);
            continue;
        }
        if (s != QFMT_OK) {
            putchar('\n');
            return s;
        }
        if (max < t.nelements)
            printf("%s...] (first %" PRIu64 " of %" PRIu64 " values)\n", max > 0 ? ", " : "", max, t.nelements);
        else
            printf("] (%" PRIu64 " value%s)\n", t.nelements, t.nelements == 1 ? "" : "s");
    }
    return QFMT_OK;
}

static int dump_text(const qfmt_gguf *g, const char *path, const cli_dump_opts *o)
{
    char human[32];
    uint64_t size = qfmt_gguf_file_size(g), data = qfmt_gguf_data_offset(g);
    fputs("file            ", stdout);
    cli_print_escaped(stdout, path, strlen(path), 0);
    printf("\nformat          GGUF version %" PRIu32 " (llama.cpp's; no checksums)\n", qfmt_gguf_version(g));
    printf("alignment       %" PRIu32 "\n", qfmt_gguf_alignment(g));
    printf("file size       %" PRIu64 " bytes (%s)\n", size, cli_human_bytes(size, human, sizeof human));
    printf("data            offset %" PRIu64 ", %" PRIu64 " bytes, %" PRIu64 " tensor%s\n", data,
           size >= data ? size - data : 0, qfmt_gguf_tensor_count(g),
           qfmt_gguf_tensor_count(g) == 1 ? "" : "s");
    printf("metadata        %" PRIu64 " key-value pair%s\n", qfmt_gguf_kv_count(g),
           qfmt_gguf_kv_count(g) == 1 ? "" : "s");

    qfmt_error err;
    memset(&err, 0, sizeof err);
    qfmt_status s = QFMT_OK;
    if (o->show_meta)
        s = print_metadata(g, o->full_meta, &err);
    if (s == QFMT_OK && o->show_tensors) {
        struct totals *tot = calloc(1, sizeof *tot);
        if (tot == NULL) {
            oom(&err);
            s = QFMT_E_NOMEM;
        } else {
            s = print_tensors(g, tot, &err);
            if (s == QFMT_OK)
                print_totals(tot);
            free(tot);
        }
        if (s == QFMT_OK && o->show_values)
            s = print_values(g, o->max_values, &err);
    }
    if (s != QFMT_OK) {
        fflush(stdout);
        cli_error_qfmt(&err);
        return cli_finish_stdout(CLI_EXIT_FAILURE);
    }
    return cli_finish_stdout(CLI_EXIT_OK);
}

struct json_values {
    cli_jw *w;
    bool opened;
};

static bool json_value_cb(void *ctx, const cli_value *v)
{
    struct json_values *jv = ctx;
    if (!jv->opened)
        cli_jw_array(jv->w, "values");
    jv->opened = true;
    if (v->kind == CLI_VALUE_INT)
        cli_jw_i64(jv->w, NULL, v->i);
    else
        cli_jw_real(jv->w, NULL, v->f, v->kind == CLI_VALUE_F32);
    return true;
}

static qfmt_status json_metadata(const qfmt_gguf *g, cli_jw *w, qfmt_error *err)
{
    uint64_t n = qfmt_gguf_kv_count(g);
    for (int pass = 0; pass < 2; pass++) {
        cli_jw_object(w, pass == 0 ? "metadata" : "metadata_types");
        for (uint64_t i = 0; i < n; i++) {
            qfmt_gguf_kv kv;
            char label[48];
            gguf_scalar v;
            qfmt_status s = qfmt_gguf_kv_get(g, i, &kv, err);
            if (s != QFMT_OK)
                return s;
            if (pass == 1) {
                cli_jw_string(w, kv.key, kv_type_label(&kv, label, sizeof label));
            } else if (kv.type != QFMT_GGUF_ARRAY) {
                if ((s = get_scalar(g, kv.key, kv.type, UINT64_MAX, &v, err)) != QFMT_OK)
                    return s;
                json_scalar(w, kv.key, &v);
            } else {
                cli_jw_array(w, kv.key);
                for (uint64_t k = 0; k < kv.count; k++) { /* bounded by the file's size */
                    if ((s = get_scalar(g, kv.key, kv.elem_type, k, &v, err)) != QFMT_OK)
                        return s;
                    json_scalar(w, NULL, &v);
                }
                cli_jw_end(w);
            }
        }
        cli_jw_end(w);
    }
    return QFMT_OK;
}

static qfmt_status json_tensors(const qfmt_gguf *g, cli_jw *w, const cli_dump_opts *o,
                                struct totals *tot, qfmt_error *err)
{
    uint64_t n = qfmt_gguf_tensor_count(g);
    cli_jw_array(w, "tensors");
    for (uint64_t i = 0; i < n; i++) {
        qfmt_gguf_tensor t;
        char type[32];
        uint64_t dims[QFMT_GGUF_MAX_DIMS] = {0};
        qfmt_status s = qfmt_gguf_tensor_get(g, i, &t, err);
        if (s != QFMT_OK)
            return s;
        totals_add(tot, &t);
        cli_jw_object(w, NULL);
        cli_jw_u64(w, "index", i);
        cli_jw_text(w, "name", t.name, t.name_len);
        cli_jw_string(w, "type", cli_type_name(t.type, type, sizeof type));
        cli_jw_u64(w, "type_id", t.type);
        numpy_shape(&t, dims);
        cli_jw_array(w, "shape");
        for (uint32_t d = 0; d < t.ndim; d++)
            cli_jw_u64(w, NULL, dims[d]);
        cli_jw_end(w);
        cli_jw_array(w, "ne");
        for (uint32_t d = 0; d < t.ndim; d++)
            cli_jw_u64(w, NULL, t.ne[d]);
        cli_jw_end(w);
        cli_jw_u64(w, "elements", t.nelements);
        cli_jw_u64(w, "offset", t.offset);
        if (t.flags & QFMT_GGUF_TENSOR_UNKNOWN_TYPE)
            cli_jw_null(w, "size");
        else
            cli_jw_u64(w, "size", t.size);
        if (o->show_values) {
            struct json_values jv = {w, false};
            s = tensor_values(&t, o->max_values, 1, json_value_cb, &jv, err);
            if (s == QFMT_E_UNSUPPORTED && !jv.opened)
                cli_jw_null(w, "values");
            else if (s != QFMT_OK)
                return s;
            else {
                if (!jv.opened)
                    cli_jw_array(w, "values");
                cli_jw_end(w);
            }
        }
        cli_jw_end(w);
    }
    cli_jw_end(w);
    json_totals(w, tot);
    return QFMT_OK;
}

static int dump_json(const qfmt_gguf *g, const char *path, const cli_dump_opts *o)
{
    cli_jw w;
    cli_jw_init(&w, stdout);
    cli_jw_object(&w, NULL);
    cli_jw_text(&w, "file", path, strlen(path));
    cli_jw_string(&w, "format", "gguf");
    cli_jw_u64(&w, "gguf_version", qfmt_gguf_version(g));
    cli_jw_u64(&w, "alignment", qfmt_gguf_alignment(g));
    cli_jw_u64(&w, "file_size", qfmt_gguf_file_size(g));
    cli_jw_u64(&w, "data_offset", qfmt_gguf_data_offset(g));
    cli_jw_u64(&w, "tensor_count", qfmt_gguf_tensor_count(g));
    cli_jw_u64(&w, "metadata_count", qfmt_gguf_kv_count(g));
    qfmt_error err;
    memset(&err, 0, sizeof err);
    qfmt_status s = QFMT_OK;
    if (o->show_meta)
        s = json_metadata(g, &w, &err);
    if (s == QFMT_OK && o->show_tensors) {
        struct totals *tot = calloc(1, sizeof *tot);
        if (tot == NULL) {
            oom(&err);
            s = QFMT_E_NOMEM;
        } else {
            s = json_tensors(g, &w, o, tot, &err);
            free(tot);
        }
    }
    if (s != QFMT_OK) {
        fputc('\n', stdout);
        fflush(stdout);
        cli_error_qfmt(&err);
        return cli_finish_stdout(CLI_EXIT_FAILURE);
    }
    cli_jw_end(&w);
    cli_jw_finish(&w);
    return cli_finish_stdout(CLI_EXIT_OK);
}

int cli_dump_gguf(const char *path, const cli_dump_opts *o)
{
    qfmt_gguf *g = NULL;
    qfmt_error err;
    if (qfmt_gguf_open(&g, path, &err) != QFMT_OK) {
        cli_error_qfmt(&err);
        return CLI_EXIT_FAILURE;
    }
    int code = o->json ? dump_json(g, path, o) : dump_text(g, path, o);
    qfmt_gguf_close(g);
    return code;
}

/* ---- verify -------------------------------------------------------------------------------- */

struct finite_scan {
    uint64_t index, bad, first;
    double first_value;
};

static bool finite_cb(void *ctx, const cli_value *v)
{
    struct finite_scan *f = ctx;
    if (!isfinite(v->f)) {
        if (f->bad++ == 0) {
            f->first = f->index;
            f->first_value = v->f;
        }
    }
    f->index++;
    return true;
}

struct gguf_problem {
    uint64_t index, start, end;
    qfmt_error err;
};

struct gguf_verify {
    qfmt_status status; /* open's error, or the first problem's */
    qfmt_error err;
    bool opened;
    uint64_t tensors, bytes, nonzero_padding;
    double seconds;
    struct gguf_problem *problems;
    size_t nproblems, cap;
    bool incomplete;
    uint64_t *hashes; /* per tensor, when hashing */
    uint8_t *unknown; /* per tensor, when hashing: of a type qfmt does not know (no hash) */
    uint64_t unchecked; /* tensors of types qfmt does not know */
    uint64_t model_hash;
};

static void add_problem(struct gguf_verify *res, const qfmt_gguf_tensor *t, uint64_t index,
                        const qfmt_error *e)
{
    if (res->status == QFMT_OK) {
        res->status = e->code;
        res->err = *e;
    }
    if (res->nproblems == res->cap) {
        size_t cap = res->cap ? res->cap * 2 : 16;
        struct gguf_problem *p = realloc(res->problems, cap * sizeof *p);
        if (p == NULL) {
            res->incomplete = true;
            return;
        }
        res->problems = p;
        res->cap = cap;
    }
    struct gguf_problem *p = &res->problems[res->nproblems++];
    p->index = index;
    p->start = t->offset;
    p->end = t->offset + t->size; /* inside the file: checked at open */
    p->err = *e;
}

/* Zero padding bytes in [from, to) of the file? (ggml writes zeros; GGUF does not require it,
 * so other bytes are reported, not failed.) */
static uint64_t nonzero_bytes(const uint8_t *base, uint64_t from, uint64_t to)
{
    uint64_t n = 0;
    for (uint64_t k = from; k < to; k++)
        n += base[k] != 0;
    return n;
}

static void run_gguf_verify(const char *path, unsigned threads, cli_hash_kind hash,
                            struct gguf_verify *res)
{
    memset(res, 0, sizeof *res);
    double t0 = cli_now();
    qfmt_gguf *g = NULL;
    res->status = qfmt_gguf_open(&g, path, &res->err);
    if (res->status != QFMT_OK)
        return;
    res->opened = true;
    res->tensors = qfmt_gguf_tensor_count(g);
    res->bytes = qfmt_gguf_file_size(g);
    if (hash != CLI_HASH_NONE && res->tensors > 0 &&
        ((res->hashes = calloc((size_t)res->tensors, sizeof *res->hashes)) == NULL ||
         (res->unknown = calloc((size_t)res->tensors, 1)) == NULL)) {
        oom(&res->err);
        res->status = QFMT_E_NOMEM;
        qfmt_gguf_close(g);
        return;
    }
    XXH64_state_t model64;
    XXH3_state_t model3;
    XXH64_reset(&model64, 0);
    XXH3_64bits_reset(&model3);
    const uint8_t *base = NULL;
    uint64_t prev_end = 0;
    for (uint64_t i = 0; i < res->tensors; i++) {
        qfmt_gguf_tensor t;
        qfmt_error e;
        if (qfmt_gguf_tensor_get(g, i, &t, &e) != QFMT_OK) {
            res->status = e.code;
            res->err = e;
            break;
        }
        if (t.flags & QFMT_GGUF_TENSOR_UNKNOWN_TYPE) { /* valid GGUF, but nothing to check */
            res->unchecked++;
            if (res->unknown != NULL)
                res->unknown[i] = 1;
            prev_end = 0; /* the padding after it is unknown */
            base = NULL;
            continue;
        }
        if (t.data != NULL && t.size > 0) {
            if (base == NULL)
                base = (const uint8_t *)t.data - t.offset;
            if (prev_end != 0 && t.offset > prev_end)
                res->nonzero_padding += nonzero_bytes(base, prev_end, t.offset);
            prev_end = t.offset + t.size;
        }
        if (hash == CLI_HASH_XXH64) {
            res->hashes[i] = XXH64(t.data, (size_t)t.size, 0);
            XXH64_update(&model64, t.data, (size_t)t.size);
        } else if (hash == CLI_HASH_XXH3) {
            res->hashes[i] = qfmt_checksum(t.data, (size_t)t.size);
            XXH3_64bits_update(&model3, t.data, (size_t)t.size);
        }
        const qfmt_type_traits *tr = qfmt_type_get_traits(t.type);
        if (tr != NULL && (tr->is_float || tr->block_elems > 1) && t.nelements > 0) {
            struct finite_scan f;
            memset(&f, 0, sizeof f);
            qfmt_status s = tensor_values(&t, UINT64_MAX, threads, finite_cb, &f, &e);
            if (s != QFMT_OK) {
                snprintf(e.path, sizeof e.path, "%s", path);
                add_problem(res, &t, i, &e);
            } else if (f.bad > 0) {
                memset(&e, 0, sizeof e);
                e.code = QFMT_E_RANGE;
                e.offset = t.offset;
                snprintf(e.path, sizeof e.path, "%s", path);
                snprintf(e.tensor, sizeof e.tensor, "%s", t.name);
                snprintf(e.message, sizeof e.message,
                         "%" PRIu64 " of %" PRIu64 " values decode to NaN or infinity (the first, "
                         "element %" PRIu64 ", is %s)", f.bad, t.nelements, f.first,
                         isnan(f.first_value) ? "NaN" : f.first_value > 0 ? "+inf" : "-inf");
                add_problem(res, &t, i, &e);
            }
        }
    }
    if (base != NULL && prev_end != 0 && prev_end < res->bytes) /* the last tensor's padding */
        res->nonzero_padding += nonzero_bytes(base, prev_end, res->bytes);
    res->model_hash = hash == CLI_HASH_XXH64 ? XXH64_digest(&model64) : XXH3_64bits_digest(&model3);
    res->seconds = cli_now() - t0;
    qfmt_gguf_close(g);
}

static const char *hash_label(cli_hash_kind h)
{
    return h == CLI_HASH_XXH64 ? "xxh64" : "xxh3";
}

/* Lines as llama-gguf-hash prints them: "xxh64     <hash>  FILE:TENSOR", then the model's. */
static qfmt_status print_hashes(const char *path, cli_hash_kind hash, const struct gguf_verify *res)
{
    qfmt_gguf *g = NULL;
    qfmt_error e;
    if (qfmt_gguf_open(&g, path, &e) != QFMT_OK)
        return e.code;
    for (uint64_t i = 0; i < res->tensors; i++) {
        qfmt_gguf_tensor t;
        if (qfmt_gguf_tensor_get(g, i, &t, &e) != QFMT_OK)
            break;
        if (res->unknown[i]) /* its size is unknown: no hash */
            continue;
        printf("%-8s  %016" PRIx64 "  %s:", hash_label(hash), res->hashes[i], path);
        cli_print_escaped(stdout, t.name, t.name_len, 0);
        putchar('\n');
    }
    printf("%-8s  %016" PRIx64 "  %s\n", hash_label(hash), res->model_hash, path);
    qfmt_gguf_close(g);
    return QFMT_OK;
}

static int report_json(const char *path, unsigned threads, cli_hash_kind hash,
                       const struct gguf_verify *res)
{
    bool good = res->status == QFMT_OK;
    double gbs = res->seconds > 0 ? (double)res->bytes / res->seconds / 1e9 : 0.0;
    cJSON *doc = cJSON_CreateObject();
    bool ok = doc != NULL && cli_json_add(doc, "file", cli_json_text(path, strlen(path)));
    ok = ok && cli_json_add(doc, "format", cJSON_CreateString("gguf"));
    ok = ok && cli_json_add(doc, "ok", cJSON_CreateBool(good));
    ok = ok && cli_json_add(doc, "checksums", cJSON_CreateBool(false));
    ok = ok && cli_json_add(doc, "threads", cli_json_u64(threads));
    ok = ok && cli_json_add(doc, "tensors", cli_json_u64(res->tensors));
    ok = ok && cli_json_add(doc, "bytes", cli_json_u64(res->bytes));
    ok = ok && cli_json_add(doc, "seconds", cJSON_CreateNumber(res->seconds));
    ok = ok && cli_json_add(doc, "gb_per_s", cJSON_CreateNumber(gbs));
    ok = ok && cli_json_add(doc, "nonzero_padding_bytes", cli_json_u64(res->nonzero_padding));
    ok = ok && cli_json_add(doc, "unchecked_tensors", cli_json_u64(res->unchecked));
    if (good) {
        ok = ok && cli_json_add(doc, "error", cJSON_CreateNull());
    } else {
        cJSON *e = ok ? cJSON_CreateObject() : NULL;
        ok = ok && cli_json_add(doc, "error", e) && cli_json_error_fields(e, &res->err);
    }
    cJSON *list = ok ? cJSON_CreateArray() : NULL;
    ok = ok && cli_json_add(doc, "failures", list);
    for (size_t k = 0; k < res->nproblems && ok; k++) {
        const struct gguf_problem *p = &res->problems[k];
        cJSON *o = cJSON_CreateObject();
        ok = cli_json_add(list, NULL, o);
        ok = ok && cli_json_add(o, "index", cli_json_u64(p->index));
        ok = ok && cli_json_error_fields(o, &p->err);
        ok = ok && cli_json_add(o, "start", cli_json_u64(p->start));
        ok = ok && cli_json_add(o, "end", cli_json_u64(p->end));
    }
    ok = ok && cli_json_add(doc, "failures_complete", cJSON_CreateBool(!res->incomplete));
    if (hash != CLI_HASH_NONE && res->opened) {
        qfmt_gguf *g = NULL;
        qfmt_error e;
        cJSON *h = ok ? cJSON_CreateObject() : NULL;
        ok = ok && cli_json_add(doc, "hash", h);
        ok = ok && cli_json_add(h, "algorithm", cJSON_CreateString(hash_label(hash)));
        ok = ok && cli_json_add(h, "model", cli_json_hex64(res->model_hash));
        cJSON *tl = ok ? cJSON_CreateObject() : NULL;
        ok = ok && cli_json_add(h, "tensors", tl);
        if (ok && qfmt_gguf_open(&g, path, &e) == QFMT_OK) {
            for (uint64_t i = 0; i < res->tensors && ok; i++) {
                qfmt_gguf_tensor t;
                if (qfmt_gguf_tensor_get(g, i, &t, &e) != QFMT_OK)
                    break;
                ok = cli_json_add(tl, t.name, res->unknown[i] ? cJSON_CreateNull() : cli_json_hex64(res->hashes[i]));
            }
            qfmt_gguf_close(g);
        }
    }
    int code = good ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
    if (!good)
        cli_error_qfmt(&res->err);
    if (!ok) {
        cli_error("%s: out of memory while building JSON", path);
        code = CLI_EXIT_FAILURE;
    } else if (cli_json_print(doc) != CLI_EXIT_OK) {
        code = CLI_EXIT_FAILURE;
    }
    cJSON_Delete(doc);
    return cli_finish_stdout(code);
}

static int report_text(const char *path, cli_hash_kind hash, const struct gguf_verify *res)
{
    if (!res->opened) {
        cli_error_qfmt(&res->err);
        printf("%s: FAILED (%s)\n", path, qfmt_strerror(res->status));
        return cli_finish_stdout(CLI_EXIT_FAILURE);
    }
    for (size_t k = 0; k < res->nproblems; k++) {
        char text[1024];
        const struct gguf_problem *p = &res->problems[k];
        fprintf(stderr, "qfmt: error: %s (tensor #%" PRIu64 ", bytes [%" PRIu64 ", %" PRIu64 "))\n",
                qfmt_error_format(&p->err, text, sizeof text), p->index, p->start, p->end);
    }
    if (res->nproblems == 0 && res->status != QFMT_OK)
        cli_error_qfmt(&res->err);
    if (res->incomplete)
        cli_error("%s: out of memory: more tensors may be bad", path);
    if (res->nonzero_padding > 0)
        fprintf(stderr, "qfmt: warning: %s: %" PRIu64 " padding byte%s after tensors %s not zero "
                "(ggml writes zeros; GGUF does not require them)\n", path, res->nonzero_padding,
                res->nonzero_padding == 1 ? "" : "s", res->nonzero_padding == 1 ? "is" : "are");
    if (res->unchecked > 0)
        fprintf(stderr, "qfmt: warning: %s: %" PRIu64 " tensor%s of ggml types qfmt does not know "
                "%s not checked (nor hashed): their sizes are unknown to it\n", path, res->unchecked,
                res->unchecked == 1 ? "" : "s", res->unchecked == 1 ? "was" : "were");
    if (hash != CLI_HASH_NONE && res->hashes != NULL)
        print_hashes(path, hash, res);
    if (res->status != QFMT_OK) {
        printf("%s: FAILED (GGUF; %s; %zu of %" PRIu64 " tensor%s bad)\n", path,
               qfmt_strerror(res->status), res->nproblems, res->tensors, res->tensors == 1 ? "" : "s");
        return cli_finish_stdout(CLI_EXIT_FAILURE);
    }
    double gbs = res->seconds > 0 ? (double)res->bytes / res->seconds / 1e9 : 0.0;
    printf("%s: OK (GGUF: %" PRIu64 " tensor%s, %" PRIu64 " bytes read, %.2f GB/s; structure and "
           "bounds checked, every decodable value finite. GGUF has no checksums, so the data cannot be "
           "checked against what was written%s)\n", path, res->tensors,
           res->tensors == 1 ? "" : "s", res->bytes, gbs,
           hash == CLI_HASH_NONE ? "; --hash prints per-tensor hashes to compare copies" : "");
    return cli_finish_stdout(CLI_EXIT_OK);
}

int cli_verify_gguf(const char *path, unsigned threads, bool json, cli_hash_kind hash)
{
    struct gguf_verify res;
    run_gguf_verify(path, threads, hash, &res);
    int code = json ? report_json(path, threads, hash, &res) : report_text(path, hash, &res);
    free(res.problems);
    free(res.hashes);
    free(res.unknown);
    return code;
}
