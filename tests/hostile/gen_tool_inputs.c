/*
 * gen_tool_inputs.c - writes the inputs of tests/cli_hardening.sh: valid files that once made a
 * tool hang, run for minutes, use gigabytes or refuse them, and hostile ones patched from valid
 * ones (checksums recomputed, so the check aimed at is the one that fires). Nothing generated is
 * committed: the test writes them to its scratch directory.
 *
 *   gen_tool_inputs CASE OUT [N]
 *
 * CASE:
 *   unknown-transposed  convert.transposed an array of unknown element type 13 with Count 2^64-1
 *   patch-transposed OUT IN  a copy of IN (a converted GPT-2) with its convert.transposed so
 *                       patched: what run and eval read
 *   empty-transposed    a small listed f32 tensor, then a listed one of shape [2^53, 0]
 *   many-transposed N   N tensors [2, 1], every one listed in convert.transposed
 *   zero-first          the first tensor has 0 bytes ([0] f32), then a [2, 2] f32 one
 *   big-array N         a u8 metadata array of N elements and an array of N/8 strings
 *   big-tensor N        one q8_0 tensor of N elements (N a multiple of 32), random codes
 *   ctrl-name           a tensor named "bad\x1b[31mname\n" of an unknown type id (999)
 * Uses only the public API (qfmt.h) and libc. Exit status 0, or 1 with a message.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt.h"

static int die(const char *what, const qfmt_error *e)
{
    char buf[1024];
    fprintf(stderr, "gen_tool_inputs: %s: %s\n", what, e ? qfmt_error_format(e, buf, sizeof buf) : "failed");
    return 1;
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static qfmt_status add(qfmt_writer *w, const char *name, uint32_t type, uint32_t ndim, const uint64_t *dims,
                       const void *data, uint64_t size, qfmt_error *e)
{
    qfmt_tensor_desc d = QFMT_TENSOR_DESC_INIT;
    d.name = name;
    d.type = type;
    d.ndim = ndim;
    memcpy(d.dims, dims, ndim * sizeof *dims);
    return qfmt_writer_add_tensor(w, &d, data, size, e);
}

/* Reads the whole file, lets patch() change it, recomputes the index checksum, writes it back. */
static int patch_file(const char *path, const char *needle, size_t needle_len, size_t skip,
                      const uint8_t *bytes, size_t nbytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) return die(path, NULL);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)size);
    if (!b || fread(b, 1, (size_t)size, f) != (size_t)size) return die("read", NULL);
    fclose(f);
    const uint8_t *foot = b + size - QFMT_FOOTER_SIZE;
    uint64_t meta = rd64(foot); /* Metadata_Offset: the index starts there */
    uint8_t *hit = NULL;
    for (size_t i = (size_t)meta; i + needle_len <= (size_t)size; i++)
        if (memcmp(b + i, needle, needle_len) == 0) {
            hit = b + i;
            break;
        }
    if (!hit || hit + needle_len + skip + nbytes > b + size) return die("pattern not found", NULL);
    memcpy(hit + needle_len + skip, bytes, nbytes);
    wr64(b + size - 16, qfmt_checksum(b + meta, (size_t)(size - 16 - (long)meta)));
    f = fopen(path, "wb");
    if (!f || fwrite(b, 1, (size_t)size, f) != (size_t)size || fclose(f) != 0) return die("write", NULL);
    free(b);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "patch-transposed") == 0) { /* IN is copied to OUT first */
        FILE *in = fopen(argv[3], "rb"), *o = fopen(argv[2], "wb");
        char buf[1 << 16];
        size_t k;
        if (!in || !o) return die("open", NULL);
        while ((k = fread(buf, 1, sizeof buf, in)) > 0)
            if (fwrite(buf, 1, k, o) != k) return die("write", NULL);
        fclose(in);
        if (fclose(o) != 0) return die("write", NULL);
        uint8_t p[12];
        wr32(p, 13);
        wr64(p + 4, UINT64_MAX);
        return patch_file(argv[2], "convert.transposed", 18, 4 + 8, p, sizeof p);
    }
    if (argc < 3) {
        fprintf(stderr, "usage: gen_tool_inputs CASE OUT [N]\n");
        return 2;
    }
    const char *c = argv[1], *out = argv[2];
    uint64_t n = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
    qfmt_error e;
    qfmt_writer *w = NULL;
    qfmt_write_opts wo = QFMT_WRITE_OPTS_INIT;
    wo.no_fsync = true;
    if (qfmt_writer_create(&w, out, &wo, &e) != QFMT_OK) return die("create", &e);
    qfmt_status s = QFMT_OK;
    float small[6] = {1, 2, 3, 4, 5, 6};
    int post = 0; /* which patch to apply after writing */
    if (strcmp(c, "unknown-transposed") == 0) {
        uint8_t three[3] = {1, 2, 3};
        uint64_t dims[2] = {2, 3};
        s = add(w, "w", QFMT_TYPE_F32, 2, dims, small, sizeof small, &e);
        if (!s) s = qfmt_writer_set_array(w, "convert.transposed", QFMT_META_U8, three, 3, &e);
        post = 1;
    } else if (strcmp(c, "empty-transposed") == 0) {
        uint64_t dims[2] = {UINT64_C(1) << 53, 0}, d2[2] = {3, 2}; /* 2^56 is past safetensors' 2^53 */
        const char *names[] = {"empty", "small"};
        s = add(w, "small", QFMT_TYPE_F32, 2, d2, small, sizeof small, &e); /* not first: */
        if (!s) s = add(w, "empty", QFMT_TYPE_F32, 2, dims, small, 0, &e); /* see zero-first */
        if (!s) s = qfmt_writer_set_string_array(w, "convert.transposed", names, NULL, 2, &e);
    } else if (strcmp(c, "many-transposed") == 0) {
        char **names = calloc(n ? n : 1, sizeof *names);
        uint64_t dims[2] = {2, 1};
        for (uint64_t i = 0; names && !s && i < n; i++) {
            char nm[64];
            snprintf(nm, sizeof nm, "model.layers.%" PRIu64 ".weight", i);
            names[i] = strdup(nm);
            s = add(w, nm, QFMT_TYPE_F32, 2, dims, small, 8, &e);
        }
        if (!names) return die("out of memory", NULL);
        if (!s) s = qfmt_writer_set_string_array(w, "convert.transposed", (const char *const *)names, NULL, n, &e);
        for (uint64_t i = 0; i < n; i++) free(names[i]);
        free(names);
    } else if (strcmp(c, "zero-first") == 0) {
        uint64_t d0[1] = {0}, d2[2] = {2, 2};
        s = add(w, "empty", QFMT_TYPE_F32, 1, d0, small, 0, &e);
        if (!s) s = add(w, "w", QFMT_TYPE_F32, 2, d2, small, 16, &e);
    } else if (strcmp(c, "big-array") == 0) {
        uint8_t *a = malloc(n ? n : 1);
        uint64_t ns = n / 8;
        const char **strs = calloc(ns ? ns : 1, sizeof *strs);
        if (!a || !strs) return die("out of memory", NULL);
        for (uint64_t i = 0; i < n; i++) a[i] = (uint8_t)(i * 7);
        static const char *const words[] = {"", "a", "tok\x01\"\\", "\xc3\xa9t\xc3\xa9", "\xe2\x96\x81the"};
        for (uint64_t i = 0; i < ns; i++) strs[i] = words[i % 5];
        uint64_t d1[1] = {2};
        s = add(w, "t", QFMT_TYPE_F32, 1, d1, small, 8, &e);
        if (!s) s = qfmt_writer_set_array(w, "big.u8", QFMT_META_U8, a, n, &e);
        if (!s) s = qfmt_writer_set_string_array(w, "big.strings", strs, NULL, ns, &e);
        free(a);
        free(strs);
    } else if (strcmp(c, "big-tensor") == 0) {
        uint64_t bytes = n / 32 * 34, d1[1] = {n};
        uint8_t *q = malloc(bytes ? bytes : 1);
        if (!q) return die("out of memory", NULL);
        uint64_t x = 88172645463325252ull;
        for (uint64_t i = 0; i < bytes; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            q[i] = (uint8_t)x;
        }
        for (uint64_t b = 0; b < n / 32; b++) q[b * 34] = 0, q[b * 34 + 1] = 0x3c; /* scale 1.0 */
        s = add(w, "big", QFMT_TYPE_Q8_0, 1, d1, q, bytes, &e);
        free(q);
    } else if (strcmp(c, "ctrl-name") == 0) {
        uint64_t d1[1] = {2};
        s = add(w, "bad\x1b[31mname\n", QFMT_TYPE_F32, 1, d1, small, 8, &e);
        post = 2;
    } else {
        fprintf(stderr, "gen_tool_inputs: unknown case '%s'\n", c);
        qfmt_writer_free(w);
        return 2;
    }
    if (!s) s = qfmt_writer_finish(w, &e);
    qfmt_writer_free(w);
    if (s) return die(c, &e);
    if (post == 1) { /* Value_Type 12, Value_Size, then Elem_Type 13 and Count 2^64 - 1 */
        uint8_t p[12];
        wr32(p, 13);
        wr64(p + 4, UINT64_MAX);
        return patch_file(out, "convert.transposed", 18, 4 + 8, p, sizeof p);
    }
    if (post == 2) { /* the entry's type, right after its name */
        uint8_t p[4];
        wr32(p, 999);
        return patch_file(out, "bad\x1b[31mname\n", 13, 0, p, sizeof p);
    }
    return 0;
}
