/*
 * cmd_dump.c - `qfmt dump`: header, metadata, tensor table and totals of a qfmt file, as text
 * for people or as one JSON document for scripts.
 *
 * Only the structure is read (open validates the header, metadata and directory and their
 * checksums); tensor bytes are not touched unless --values asks for them, so dump is fast on
 * any file size.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: qfmt dump FILE [--json] [--metadata] [--tensors] [--values[=N]]\n"
    "\n"
    "Prints a qfmt file's header (format version, alignment, size, sections), its metadata,\n"
    "its tensor table (index, name, type, shape, offset, stored and raw size, codec, checksum)\n"
    "and totals (tensors, parameters and bytes per type, bits per weight). The structure is\n"
    "checked; tensor data is not read unless --values is given (see also 'qfmt verify').\n"
    "A GGUF file (llama.cpp's) is shown the same way: its version, alignment, key-value pairs\n"
    "with their GGUF types, tensors (ggml type, shape outermost first, absolute offset, bytes;\n"
    "--json adds ggml's ne order) and totals.\n"
    "\n"
    "options:\n"
    "  --metadata      show the metadata, in full (long strings and arrays are abbreviated\n"
    "                  unless this option is given)\n"
    "  --tensors       show the tensor table and totals\n"
    "                  (with neither option both sections are shown)\n"
    "  --values[=N]    also show each tensor's values as numbers (floats and quantized types\n"
    "                  decoded to f32): all of them, or the first N of each tensor; the\n"
    "                  stored bytes are checksummed first\n"
    "  --json          print one JSON document instead; metadata values are always complete,\n"
    "                  integers beyond 2^53 are written as strings, checksums as hex strings\n"
    "  -h, --help      show this help\n";

enum {
    ABBREV_STRING_BYTES = 80,   /* a metadata string longer than this is cut (text output) */
    ABBREV_ARRAY_ELEMS = 8,     /* array elements shown (text output) */
    ABBREV_ELEM_STRING_BYTES = 40,
    NAME_COLUMN_MAX = 60,       /* wider names push the columns right instead */
};

typedef cli_dump_opts dump_opts;

/* Per-type totals. A file has a handful of distinct types: a linear list is enough. */
struct type_total {
    uint32_t type;
    uint64_t tensors, elements, raw_bytes, stored_bytes;
};

struct totals {
    struct type_total *by_type;
    size_t ntypes, cap;
    struct type_total all;
};

/* Sizes come from the directory; summing 2^24 crafted entries could wrap, so saturate. */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void total_add(struct type_total *t, const qfmt_tensor_info *ti)
{
    t->tensors++;
    t->elements = sat_add(t->elements, ti->nelements);
    t->raw_bytes = sat_add(t->raw_bytes, ti->raw_size);
    t->stored_bytes = sat_add(t->stored_bytes, ti->stored_size);
}

static bool totals_add(struct totals *tot, const qfmt_tensor_info *ti)
{
    size_t k = 0;
    while (k < tot->ntypes && tot->by_type[k].type != ti->type)
        k++;
    if (k == tot->ntypes) {
        if (tot->ntypes == tot->cap) {
            size_t cap = tot->cap ? tot->cap * 2 : 8;
            struct type_total *p = realloc(tot->by_type, cap * sizeof *p);
            if (p == NULL)
                return false;
            tot->by_type = p;
            tot->cap = cap;
        }
        memset(&tot->by_type[k], 0, sizeof tot->by_type[k]);
        tot->by_type[k].type = ti->type;
        tot->ntypes++;
    }
    total_add(&tot->by_type[k], ti);
    total_add(&tot->all, ti);
    return true;
}

static bool bits_per_weight(uint64_t bytes, uint64_t elements, double *out)
{
    if (elements == 0)
        return false;
    *out = 8.0 * (double)bytes / (double)elements;
    return true;
}

/* An array whose element type this library does not know: its entry opens, its elements
 * cannot be decoded (qfmt_meta_array_get says QFMT_E_UNSUPPORTED). */
static bool opaque_array(const qfmt_value *v)
{
    return v->type == QFMT_META_ARRAY && v->v.arr.elem_type > QFMT_META_STRING;
}

/* "u32", "string", "unknown(13)". */
static const char *meta_type_label(uint32_t type, char *buf, size_t buf_size)
{
    if (type <= QFMT_META_STRING)
        snprintf(buf, buf_size, "%s", qfmt_meta_type_name(type));
    else
        snprintf(buf, buf_size, "unknown(%" PRIu32 ")", type);
    return buf;
}

/* The above, or "array<f32>", "array<unknown(14)>". */
static const char *value_type_label(const qfmt_value *v, char *buf, size_t buf_size)
{
    char elem[32];
    if (v->type == QFMT_META_ARRAY)
        snprintf(buf, buf_size, "array<%s>", meta_type_label(v->v.arr.elem_type, elem, sizeof elem));
    else
        meta_type_label(v->type, buf, buf_size);
    return buf;
}

/* ---- Text output -------------------------------------------------------------------------- */

static void print_string_value(const char *s, uint64_t len, size_t max_bytes)
{
    putchar('"');
    size_t n = len > SIZE_MAX ? SIZE_MAX : (size_t)len;
    bool cut = cli_print_escaped(stdout, s, n, max_bytes);
    putchar('"');
    if (cut)
        printf("... (%" PRIu64 " bytes)", len);
}

static void print_scalar(const qfmt_value *v, size_t max_string_bytes)
{
    char buf[64];
    switch (v->type) {
    case QFMT_META_U8:
    case QFMT_META_U16:
    case QFMT_META_U32:
    case QFMT_META_U64: printf("%" PRIu64, v->v.u); break;
    case QFMT_META_I8:
    case QFMT_META_I16:
    case QFMT_META_I32:
    case QFMT_META_I64: printf("%" PRId64, v->v.i); break;
    case QFMT_META_F32: fputs(cli_format_real(v->v.f, true, buf, sizeof buf), stdout); break;
    case QFMT_META_F64: fputs(cli_format_real(v->v.f, false, buf, sizeof buf), stdout); break;
    case QFMT_META_BOOL: fputs(v->v.u ? "true" : "false", stdout); break;
    case QFMT_META_STRING: print_string_value(v->v.str.ptr, v->v.str.len, max_string_bytes); break;
    default: printf("(%" PRIu64 " bytes of an unknown type)", v->v.raw.len); break;
    }
}

static qfmt_status print_array(const qfmt_reader *r, const char *key, const qfmt_value *v,
                               bool full, qfmt_error *err)
{
    uint64_t count = v->v.arr.count;
    uint64_t shown = full || count <= ABBREV_ARRAY_ELEMS ? count : ABBREV_ARRAY_ELEMS;
    if (opaque_array(v)) {
        printf("(%" PRIu64 " element%s of an unknown type)", count, count == 1 ? "" : "s");
        return QFMT_OK;
    }
    putchar('[');
    for (uint64_t i = 0; i < shown; i++) {
        qfmt_value e;
        qfmt_status s = qfmt_meta_array_get(r, key, i, &e, err);
        if (s != QFMT_OK) {
            putchar('\n');
            return s;
        }
        if (i > 0)
            fputs(", ", stdout);
        print_scalar(&e, full ? 0 : ABBREV_ELEM_STRING_BYTES);
    }
    if (shown < count)
        fputs(shown > 0 ? ", ..." : "...", stdout);
    printf("] (%" PRIu64 " element%s)", count, count == 1 ? "" : "s");
    return QFMT_OK;
}

static qfmt_status print_metadata(const qfmt_reader *r, bool full, qfmt_error *err)
{
    uint64_t n = qfmt_meta_count(r);
    printf("\nmetadata: %" PRIu64 " entr%s\n", n, n == 1 ? "y" : "ies");

    size_t key_w = 0, type_w = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *key;
        qfmt_value v;
        char label[64];
        qfmt_status s = qfmt_meta_get_entry(r, i, &key, &v, err);
        if (s != QFMT_OK)
            return s;
        size_t kl = cli_escaped_width(key, strlen(key));
        size_t tl = strlen(value_type_label(&v, label, sizeof label));
        key_w = kl > key_w ? kl : key_w;
        type_w = tl > type_w ? tl : type_w;
    }
    if (key_w > NAME_COLUMN_MAX)
        key_w = NAME_COLUMN_MAX;

    for (uint64_t i = 0; i < n; i++) {
        const char *key;
        qfmt_value v;
        char label[64];
        qfmt_status s = qfmt_meta_get_entry(r, i, &key, &v, err);
        if (s != QFMT_OK)
            return s;
        size_t kl = cli_escaped_width(key, strlen(key));
        fputs("  ", stdout);
        cli_print_escaped(stdout, key, strlen(key), 0);
        printf("%*s  %-*s  ", kl < key_w ? (int)(key_w - kl) : 0, "", (int)type_w,
               value_type_label(&v, label, sizeof label));
        if (v.type == QFMT_META_ARRAY) {
            s = print_array(r, key, &v, full, err);
            if (s != QFMT_OK)
                return s;
        } else {
            print_scalar(&v, full ? 0 : ABBREV_STRING_BYTES);
        }
        putchar('\n');
    }
    return QFMT_OK;
}

struct tensor_cells {
    char type[32], shape[256], codec[32];
};

static void tensor_cells(const qfmt_tensor_info *ti, struct tensor_cells *c)
{
    cli_type_name(ti->type, c->type, sizeof c->type);
    cli_shape(ti->dims, ti->ndim, c->shape, sizeof c->shape);
    cli_codec_name(ti->codec, c->codec, sizeof c->codec);
}

static int digits_u64(uint64_t v)
{
    int d = 1;
    while (v >= 10)
        v /= 10, d++;
    return d;
}

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

static qfmt_status print_tensors(const qfmt_reader *r, struct totals *tot, qfmt_error *err)
{
    uint64_t n = qfmt_tensor_count(r);
    printf("\ntensors: %" PRIu64 "\n", n);

    /* pass 1: column widths (and totals) */
    int w_idx = max_int(1, digits_u64(n ? n - 1 : 0)), w_name = 4, w_type = 4, w_shape = 5;
    int w_off = 6, w_stored = 6, w_raw = 3, w_codec = 5;
    for (uint64_t i = 0; i < n; i++) {
        qfmt_tensor_info ti;
        struct tensor_cells c;
        qfmt_status s = qfmt_tensor_get_info(r, i, &ti, err);
        if (s != QFMT_OK)
            return s;
        tensor_cells(&ti, &c);
        size_t nl = cli_escaped_width(ti.name, strlen(ti.name));
        w_name = max_int(w_name, nl > NAME_COLUMN_MAX ? NAME_COLUMN_MAX : (int)nl);
        w_type = max_int(w_type, (int)strlen(c.type));
        w_shape = max_int(w_shape, (int)strlen(c.shape));
        w_off = max_int(w_off, digits_u64(ti.offset));
        w_stored = max_int(w_stored, digits_u64(ti.stored_size));
        w_raw = max_int(w_raw, digits_u64(ti.raw_size));
        w_codec = max_int(w_codec, (int)strlen(c.codec));
        if (!totals_add(tot, &ti)) {
            err->code = QFMT_E_NOMEM;
            snprintf(err->message, sizeof err->message, "out of memory");
            return QFMT_E_NOMEM;
        }
    }
    if (n == 0)
        return QFMT_OK;

    printf("  %*s  %-*s  %-*s  %-*s  %*s  %*s  %*s  %-*s  %s\n", w_idx, "#", w_name, "name",
           w_type, "type", w_shape, "shape", w_off, "offset", w_stored, "stored", w_raw, "raw",
           w_codec, "codec", "checksum");
    for (uint64_t i = 0; i < n; i++) {
        qfmt_tensor_info ti;
        struct tensor_cells c;
        qfmt_status s = qfmt_tensor_get_info(r, i, &ti, err);
        if (s != QFMT_OK)
            return s;
        tensor_cells(&ti, &c);
        size_t nl = cli_escaped_width(ti.name, strlen(ti.name));
        printf("  %*" PRIu64 "  ", w_idx, i);
        cli_print_escaped(stdout, ti.name, strlen(ti.name), 0);
        printf("%*s  %-*s  %-*s  %*" PRIu64 "  %*" PRIu64 "  %*" PRIu64 "  %-*s  %016" PRIx64 "\n",
               nl < (size_t)w_name ? w_name - (int)nl : 0, "", w_type, c.type, w_shape, c.shape,
               w_off, ti.offset, w_stored, ti.stored_size, w_raw, ti.raw_size, w_codec, c.codec,
               ti.checksum);
    }
    return QFMT_OK;
}

static bool print_value_cb(void *ctx, const cli_value *v)
{
    bool *first = ctx;
    char buf[64];
    if (!*first)
        fputs(", ", stdout);
    *first = false;
    switch (v->kind) {
    case CLI_VALUE_F32: fputs(cli_format_real(v->f, true, buf, sizeof buf), stdout); break;
    case CLI_VALUE_F64: fputs(cli_format_real(v->f, false, buf, sizeof buf), stdout); break;
    case CLI_VALUE_INT: printf("%" PRId64, v->i); break;
    case CLI_VALUE_UINT: printf("%" PRIu64, v->u); break;
    case CLI_VALUE_BOOL: fputs(v->u ? "true" : "false", stdout); break;
    }
    return true;
}

static qfmt_status print_values(const qfmt_reader *r, uint64_t max, qfmt_error *err)
{
    uint64_t n = qfmt_tensor_count(r);
    printf("\nvalues:\n");
    for (uint64_t i = 0; i < n; i++) {
        qfmt_tensor_info ti;
        qfmt_status s = qfmt_tensor_get_info(r, i, &ti, err);
        if (s != QFMT_OK)
            return s;
        fputs("  ", stdout);
        cli_print_escaped(stdout, ti.name, strlen(ti.name), 0);
        fputs("  ", stdout);
        bool first = true;
        putchar('[');
        s = cli_tensor_values(r, i, max, print_value_cb, &first, err);
        if (s == QFMT_E_UNSUPPORTED) { /* unknown type or codec: not an error for dump */
            printf("] (not decodable: %s)\n", err->message);
            continue;
        }
        if (s != QFMT_OK) {
            putchar('\n');
            return s;
        }
        if (max < ti.nelements)
            printf("%s...] (first %" PRIu64 " of %" PRIu64 " values)\n", max > 0 ? ", " : "", max,
                   ti.nelements);
        else
            printf("] (%" PRIu64 " value%s)\n", ti.nelements, ti.nelements == 1 ? "" : "s");
    }
    return QFMT_OK;
}

static void print_totals(const struct totals *tot)
{
    const struct type_total *a = &tot->all;
    printf("\ntotals: %" PRIu64 " tensor%s, %" PRIu64 " parameter%s\n", a->tensors,
           a->tensors == 1 ? "" : "s", a->elements, a->elements == 1 ? "" : "s");
    if (a->tensors == 0)
        return;
    int w_type = 4, w_t = 7, w_e = 10, w_r = 9, w_s = 12;
    for (size_t k = 0; k <= tot->ntypes; k++) {
        const struct type_total *t = k < tot->ntypes ? &tot->by_type[k] : a;
        char name[32];
        w_type = max_int(w_type, (int)strlen(cli_type_name(t->type, name, sizeof name)));
        w_t = max_int(w_t, digits_u64(t->tensors));
        w_e = max_int(w_e, digits_u64(t->elements));
        w_r = max_int(w_r, digits_u64(t->raw_bytes));
        w_s = max_int(w_s, digits_u64(t->stored_bytes));
    }
    printf("  %-*s  %*s  %*s  %*s  %*s  %s\n", w_type, "type", w_t, "tensors", w_e, "parameters",
           w_r, "raw bytes", w_s, "stored bytes", "bits/weight");
    for (size_t k = 0; k <= tot->ntypes; k++) {
        const struct type_total *t = k < tot->ntypes ? &tot->by_type[k] : a;
        char name[32], bpw_text[32] = "-";
        double bpw;
        if (bits_per_weight(t->raw_bytes, t->elements, &bpw))
            snprintf(bpw_text, sizeof bpw_text, "%.2f", bpw);
        printf("  %-*s  %*" PRIu64 "  %*" PRIu64 "  %*" PRIu64 "  %*" PRIu64 "  %s\n", w_type,
               k < tot->ntypes ? cli_type_name(t->type, name, sizeof name) : "all", w_t,
               t->tensors, w_e, t->elements, w_r, t->raw_bytes, w_s, t->stored_bytes, bpw_text);
    }
    double raw_bpw, stored_bpw;
    if (bits_per_weight(a->raw_bytes, a->elements, &raw_bpw) &&
        bits_per_weight(a->stored_bytes, a->elements, &stored_bpw))
        printf("  bits per weight: %.3f (as stored: %.3f)\n", raw_bpw, stored_bpw);
    else
        printf("  bits per weight: n/a (no elements)\n");
}

static void print_header(const char *path, const qfmt_file_info *fi)
{
    char human[32];
    fputs("file            ", stdout);
    cli_print_escaped(stdout, path, strlen(path), 0);
    putchar('\n');
    printf("format version  %u.%u\n", (unsigned)fi->version_major, (unsigned)fi->version_minor);
    printf("alignment       %" PRIu32 "\n", fi->alignment);
    printf("file size       %" PRIu64 " bytes (%s)\n", fi->file_size,
           cli_human_bytes(fi->file_size, human, sizeof human));
    printf("features        required 0x%08" PRIx32 ", optional 0x%08" PRIx32 "\n",
           fi->required_features, fi->optional_features);
    printf("data            offset %" PRIu64 ", %" PRIu64 " bytes, %" PRIu64 " tensor%s\n",
           fi->data_offset, fi->data_size, fi->tensor_count, fi->tensor_count == 1 ? "" : "s");
    printf("metadata        offset %" PRIu64 ", %" PRIu64 " bytes, %" PRIu64 " entr%s\n",
           fi->metadata_offset, fi->metadata_size, fi->metadata_count,
           fi->metadata_count == 1 ? "y" : "ies");
    printf("directory       offset %" PRIu64 ", %" PRIu64 " bytes\n", fi->directory_offset,
           fi->directory_size);
    printf("checksums       header %016" PRIx64 ", index %016" PRIx64 "\n", fi->header_checksum,
           fi->index_checksum);
}

static int dump_text(const qfmt_reader *r, const char *path, const dump_opts *o)
{
    qfmt_file_info fi;
    qfmt_error err;
    memset(&err, 0, sizeof err);
    qfmt_reader_file_info(r, &fi);
    print_header(path, &fi);

    qfmt_status s = QFMT_OK;
    if (o->show_meta)
        s = print_metadata(r, o->full_meta, &err);
    if (s == QFMT_OK && o->show_tensors) {
        struct totals tot;
        memset(&tot, 0, sizeof tot);
        s = print_tensors(r, &tot, &err);
        if (s == QFMT_OK)
            print_totals(&tot);
        if (s == QFMT_OK && o->show_values)
            s = print_values(r, o->max_values, &err);
        free(tot.by_type);
    }
    if (s != QFMT_OK) {
        fflush(stdout); /* what was printed so far comes before the message */
        cli_error_qfmt(&err);
        return cli_finish_stdout(CLI_EXIT_FAILURE);
    }
    return cli_finish_stdout(CLI_EXIT_OK);
}

/* ---- JSON output -------------------------------------------------------------------------- */
/* Streamed as the file is walked (cli_jw): memory stays bounded however long an array is
 * (building a cJSON tree took ~87 bytes per array element). The layout is cJSON_Print's, as
 * before. A reader error after output began leaves an incomplete document on stdout; the
 * message on stderr and the exit status say so. */

static void json_scalar(cli_jw *w, const char *key, const qfmt_value *v)
{
    switch (v->type) {
    case QFMT_META_U8:
    case QFMT_META_U16:
    case QFMT_META_U32:
    case QFMT_META_U64: cli_jw_u64(w, key, v->v.u); break;
    case QFMT_META_I8:
    case QFMT_META_I16:
    case QFMT_META_I32:
    case QFMT_META_I64: cli_jw_i64(w, key, v->v.i); break;
    case QFMT_META_F32: cli_jw_real(w, key, v->v.f, true); break;
    case QFMT_META_F64: cli_jw_real(w, key, v->v.f, false); break;
    case QFMT_META_BOOL: cli_jw_bool(w, key, v->v.u != 0); break;
    case QFMT_META_STRING: cli_jw_text(w, key, v->v.str.ptr, (size_t)v->v.str.len); break;
    default: cli_jw_hex_bytes(w, key, v->v.raw.ptr, v->v.raw.len); break; /* unknown type: its bytes */
    }
}

/* metadata {key: value} then metadata_types {key: "u32"}. */
static qfmt_status json_metadata(const qfmt_reader *r, cli_jw *w, qfmt_error *err)
{
    uint64_t n = qfmt_meta_count(r);
    cli_jw_object(w, "metadata");
    for (uint64_t i = 0; i < n; i++) {
        const char *key;
        qfmt_value v;
        qfmt_status s = qfmt_meta_get_entry(r, i, &key, &v, err);
        if (s != QFMT_OK)
            return s;
        if (opaque_array(&v)) { /* elements unknown: metadata_types says what it is */
            cli_jw_null(w, key);
        } else if (v.type != QFMT_META_ARRAY) {
            json_scalar(w, key, &v);
        } else {
            cli_jw_array(w, key);
            for (uint64_t k = 0; k < v.v.arr.count; k++) { /* a known type: count is bounded */
                qfmt_value e;
                if ((s = qfmt_meta_array_get(r, key, k, &e, err)) != QFMT_OK)
                    return s;
                json_scalar(w, NULL, &e);
            }
            cli_jw_end(w);
        }
    }
    cli_jw_end(w);
    cli_jw_object(w, "metadata_types");
    for (uint64_t i = 0; i < n; i++) {
        const char *key;
        qfmt_value v;
        char label[64];
        qfmt_status s = qfmt_meta_get_entry(r, i, &key, &v, err);
        if (s != QFMT_OK)
            return s;
        cli_jw_string(w, key, value_type_label(&v, label, sizeof label));
    }
    cli_jw_end(w);
    return QFMT_OK;
}

static void json_type_total(cli_jw *w, const char *key, const struct type_total *t, bool open_only)
{
    double bpw;
    cli_jw_object(w, key);
    cli_jw_u64(w, "tensors", t->tensors);
    cli_jw_u64(w, "parameters", t->elements);
    cli_jw_u64(w, "raw_bytes", t->raw_bytes);
    cli_jw_u64(w, "stored_bytes", t->stored_bytes);
    if (bits_per_weight(t->raw_bytes, t->elements, &bpw))
        cli_jw_number(w, "bits_per_weight", bpw);
    else
        cli_jw_null(w, "bits_per_weight");
    if (bits_per_weight(t->stored_bytes, t->elements, &bpw))
        cli_jw_number(w, "stored_bits_per_weight", bpw);
    else
        cli_jw_null(w, "stored_bits_per_weight");
    if (!open_only)
        cli_jw_end(w);
}

/* The tensor's object, left open (values may follow). */
static void json_tensor(cli_jw *w, uint64_t index, const qfmt_tensor_info *ti)
{
    char type[32], codec[32];
    cli_jw_object(w, NULL);
    cli_jw_u64(w, "index", index);
    cli_jw_string(w, "name", ti->name);
    cli_jw_string(w, "type", cli_type_name(ti->type, type, sizeof type));
    cli_jw_u64(w, "type_id", ti->type);
    cli_jw_array(w, "shape");
    for (uint32_t d = 0; d < ti->ndim && d < QFMT_MAX_DIMS; d++)
        cli_jw_u64(w, NULL, ti->dims[d]);
    cli_jw_end(w);
    cli_jw_u64(w, "elements", ti->nelements);
    cli_jw_u64(w, "offset", ti->offset);
    cli_jw_u64(w, "stored_size", ti->stored_size);
    cli_jw_u64(w, "raw_size", ti->raw_size);
    cli_jw_string(w, "codec", cli_codec_name(ti->codec, codec, sizeof codec));
    cli_jw_hex64(w, "checksum", ti->checksum);
}

struct json_values {
    cli_jw *w;
    bool opened; /* "values": [ is written with the first value */
};

static bool json_value_cb(void *ctx, const cli_value *v)
{
    struct json_values *jv = ctx;
    cli_jw *w = jv->w;
    if (!jv->opened)
        cli_jw_array(w, "values");
    jv->opened = true;
    switch (v->kind) {
    case CLI_VALUE_F32: cli_jw_real(w, NULL, v->f, true); break;
    case CLI_VALUE_F64: cli_jw_real(w, NULL, v->f, false); break;
    case CLI_VALUE_INT: cli_jw_i64(w, NULL, v->i); break;
    case CLI_VALUE_UINT: cli_jw_u64(w, NULL, v->u); break;
    case CLI_VALUE_BOOL: cli_jw_bool(w, NULL, v->u != 0); break;
    }
    return true;
}

/* "values": [...], or null when the type or codec is unknown (cli_tensor_values says so
 * before it gives any value). */
static qfmt_status json_tensor_values(const qfmt_reader *r, cli_jw *w, uint64_t index, uint64_t max,
                                      qfmt_error *err)
{
    struct json_values jv = {w, false};
    qfmt_status s = cli_tensor_values(r, index, max, json_value_cb, &jv, err);
    if (s == QFMT_E_UNSUPPORTED && !jv.opened) {
        cli_jw_null(w, "values");
        return QFMT_OK;
    }
    if (!jv.opened)
        cli_jw_array(w, "values");
    cli_jw_end(w);
    return s == QFMT_E_UNSUPPORTED ? QFMT_OK : s;
}

/* tensors [...] and totals {...}. */
static qfmt_status json_tensors(const qfmt_reader *r, cli_jw *w, const dump_opts *o,
                                struct totals *tot, qfmt_error *err)
{
    uint64_t n = qfmt_tensor_count(r);
    cli_jw_array(w, "tensors");
    for (uint64_t i = 0; i < n; i++) {
        qfmt_tensor_info ti;
        qfmt_status s = qfmt_tensor_get_info(r, i, &ti, err);
        if (s != QFMT_OK)
            return s;
        if (!totals_add(tot, &ti)) {
            err->code = QFMT_E_NOMEM;
            snprintf(err->message, sizeof err->message, "out of memory");
            return QFMT_E_NOMEM;
        }
        json_tensor(w, i, &ti);
        if (o->show_values && (s = json_tensor_values(r, w, i, o->max_values, err)) != QFMT_OK)
            return s;
        cli_jw_end(w);
    }
    cli_jw_end(w);
    json_type_total(w, "totals", &tot->all, true);
    cli_jw_object(w, "by_type");
    for (size_t k = 0; k < tot->ntypes; k++) {
        char name[32];
        json_type_total(w, cli_type_name(tot->by_type[k].type, name, sizeof name), &tot->by_type[k], false);
    }
    cli_jw_end(w);
    cli_jw_end(w);
    return QFMT_OK;
}

static int dump_json(const qfmt_reader *r, const char *path, const dump_opts *o)
{
    qfmt_file_info fi;
    qfmt_reader_file_info(r, &fi);
    qfmt_error err;
    memset(&err, 0, sizeof err);
    qfmt_status s = QFMT_OK;
    cli_jw w;
    cli_jw_init(&w, stdout);

    cli_jw_object(&w, NULL);
    cli_jw_text(&w, "file", path, strlen(path));
    cli_jw_object(&w, "format_version");
    cli_jw_u64(&w, "major", fi.version_major);
    cli_jw_u64(&w, "minor", fi.version_minor);
    cli_jw_end(&w);
    cli_jw_u64(&w, "required_features", fi.required_features);
    cli_jw_u64(&w, "optional_features", fi.optional_features);
    cli_jw_u64(&w, "alignment", fi.alignment);
    cli_jw_u64(&w, "file_size", fi.file_size);
    cli_jw_u64(&w, "tensor_count", fi.tensor_count);
    cli_jw_u64(&w, "metadata_count", fi.metadata_count);

    static const char *const section_names[] = {"data", "metadata", "directory"};
    const uint64_t section_offsets[] = {fi.data_offset, fi.metadata_offset, fi.directory_offset};
    const uint64_t section_sizes[] = {fi.data_size, fi.metadata_size, fi.directory_size};
    cli_jw_object(&w, "sections");
    for (size_t k = 0; k < 3; k++) {
        cli_jw_object(&w, section_names[k]);
        cli_jw_u64(&w, "offset", section_offsets[k]);
        cli_jw_u64(&w, "size", section_sizes[k]);
        cli_jw_end(&w);
    }
    cli_jw_end(&w);
    cli_jw_hex64(&w, "header_checksum", fi.header_checksum);
    cli_jw_hex64(&w, "index_checksum", fi.index_checksum);

    if (o->show_meta)
        s = json_metadata(r, &w, &err);
    struct totals tot;
    memset(&tot, 0, sizeof tot);
    if (s == QFMT_OK && o->show_tensors)
        s = json_tensors(r, &w, o, &tot, &err);
    free(tot.by_type);
    if (s != QFMT_OK) {
        fputc('\n', stdout);
        fflush(stdout); /* the partial document comes before the message */
        cli_error_qfmt(&err);
        return cli_finish_stdout(CLI_EXIT_FAILURE);
    }
    cli_jw_end(&w);
    cli_jw_finish(&w);
    return cli_finish_stdout(CLI_EXIT_OK);
}

/* ---- Command ------------------------------------------------------------------------------ */

int cmd_dump(int argc, char **argv)
{
    dump_opts o;
    memset(&o, 0, sizeof o);
    bool want_meta = false, want_tensors = false, no_more_options = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (no_more_options || a[0] != '-' || a[1] == '\0') { /* "-" is a (bad) file name */
            if (o.path != NULL)
                return cli_usage_error("dump", usage, "unexpected argument '%s'", a);
            o.path = a;
        } else if (strcmp(a, "--") == 0) {
            no_more_options = true;
        } else if (cli_is_help(a)) {
            fputs(usage, stdout);
            return cli_finish_stdout(CLI_EXIT_OK);
        } else if (strcmp(a, "--json") == 0) {
            o.json = true;
        } else if (strcmp(a, "--metadata") == 0) {
            want_meta = true;
        } else if (strcmp(a, "--tensors") == 0) {
            want_tensors = true;
        } else if (strcmp(a, "--values") == 0) { /* no separate value: "--values FILE" */
            o.show_values = true;
            o.max_values = UINT64_MAX;
        } else if (strncmp(a, "--values=", 9) == 0) {
            if (!cli_parse_u64(a + 9, 0, UINT64_MAX - 1, &o.max_values))
                return cli_usage_error("dump", usage, "--values=N: '%s' is not a number", a + 9);
            o.show_values = true;
        } else {
            return cli_usage_error("dump", usage, "unknown option '%s'", a);
        }
    }
    if (o.path == NULL)
        return cli_usage_error("dump", usage, "missing FILE");
    o.show_meta = want_meta || !want_tensors;
    o.show_tensors = want_tensors || o.show_values || !want_meta;
    o.full_meta = want_meta;

    if (cli_is_gguf(o.path))
        return cli_dump_gguf(o.path, &o);
    qfmt_reader *r = NULL;
    qfmt_error err;
    if (qfmt_reader_open(&r, o.path, NULL, &err) != QFMT_OK) {
        cli_error_qfmt(&err);
        return CLI_EXIT_FAILURE;
    }
    int code = o.json ? dump_json(r, o.path, &o) : dump_text(r, o.path, &o);
    qfmt_reader_close(r);
    return code;
}
