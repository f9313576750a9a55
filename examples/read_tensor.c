/*
 * read_tensor.c - prints the first values of a tensor, showing the two ways to get its data.
 *
 *     read_tensor FILE                 list the tensors
 *     read_tensor FILE NAME [COUNT]    print the first COUNT (default 8) values of NAME
 *
 * qfmt_tensor_view gives a zero-copy pointer into the mapped file (uncompressed tensors only);
 * qfmt_tensor_read copies or decompresses into a buffer of the caller, checking the checksum
 * first when asked. F32, F16 and BF16 values are printed as floats via qfmt_convert_floats;
 * block-quantized ones (q8_0, q4_0, ...) are decoded with qfmt_dequantize, whole blocks at a
 * time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt.h"

static int fail(const qfmt_error *e)
{
    char buf[1024];
    fprintf(stderr, "read_tensor: %s\n", qfmt_error_format(e, buf, sizeof buf));
    return 1;
}

static int list_tensors(const qfmt_reader *r)
{
    for (uint64_t i = 0; i < qfmt_tensor_count(r); i++) {
        qfmt_tensor_info ti;
        qfmt_error e;
        if (qfmt_tensor_get_info(r, i, &ti, &e) != QFMT_OK)
            return fail(&e);
        const qfmt_type_traits *t = qfmt_type_get_traits(ti.type);
        printf("%s (%s, %" PRIu64 " elements)\n", ti.name, t ? t->name : "unknown type",
               ti.nelements);
    }
    return 0;
}

enum { MAX_COUNT = 64 };

/* Prints the first n values of `data` (elements of `type`, `total` of them) as floats. */
static int print_values(const char *label, uint32_t type, const void *data, size_t n,
                        uint64_t total)
{
    float vals[MAX_COUNT + QFMT_BLOCK_ELEMS];
    const qfmt_type_traits *t = qfmt_type_get_traits(type);
    qfmt_status s;
    qfmt_error e;
    if (t->block_elems == 1) {
        s = qfmt_convert_floats(type, data, QFMT_TYPE_F32, vals, n);
    } else {
        /* rows are whole blocks, so the first n values are in the first blocks */
        uint64_t m = (n + t->block_elems - 1) / t->block_elems * t->block_elems;
        m = m < total ? m : total;
        s = qfmt_dequantize(QFMT_TYPE_F32, vals, m * sizeof(float), type, data, 1, m, NULL, &e);
    }
    if (s != QFMT_OK) {
        fprintf(stderr, "read_tensor: cannot decode %s values\n", t->name);
        return 1;
    }
    printf("%-6s", label);
    for (size_t i = 0; i < n; i++)
        printf(" %.6g", (double)vals[i]);
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: read_tensor FILE [NAME [COUNT]]\n");
        return 2;
    }
    size_t count = 8;
    if (argc == 4) {
        char *end = NULL;
        unsigned long c = strtoul(argv[3], &end, 10);
        if (*argv[3] == '\0' || *end != '\0' || c == 0 || c > MAX_COUNT) {
            fprintf(stderr, "read_tensor: COUNT must be 1..64\n");
            return 2;
        }
        count = (size_t)c;
    }

    qfmt_reader *r = NULL;
    qfmt_error e;
    if (qfmt_reader_open(&r, argv[1], NULL, &e) != QFMT_OK)
        return fail(&e);
    if (argc == 2) {
        int rc = list_tensors(r);
        qfmt_reader_close(r);
        return rc;
    }

    int rc = 1;
    void *buf = NULL;
    uint64_t index;
    qfmt_tensor_info ti;
    if (qfmt_tensor_find(r, argv[2], &index, &e) != QFMT_OK ||
        qfmt_tensor_get_info(r, index, &ti, &e) != QFMT_OK) {
        rc = fail(&e);
        goto done;
    }
    const qfmt_type_traits *t = qfmt_type_get_traits(ti.type);
    bool plain_float = ti.type == QFMT_TYPE_F32 || ti.type == QFMT_TYPE_F16 ||
                       ti.type == QFMT_TYPE_BF16;
    if (t == NULL || !(plain_float || t->block_elems > 1)) {
        fprintf(stderr, "read_tensor: '%s' is not an f32, f16, bf16 or block-quantized tensor\n",
                ti.name);
        goto done;
    }
    if (count > ti.nelements)
        count = (size_t)ti.nelements;
    printf("%s: %s, %" PRIu64 " elements, %" PRIu64 " bytes, codec %s\n", ti.name, t->name,
           ti.nelements, ti.raw_size, ti.codec == QFMT_CODEC_ZSTD ? "zstd" : "none");

    /* 1. Zero-copy: a pointer into the mapping, valid until qfmt_reader_close. Nothing is
     *    read until the values are touched. Not available for compressed tensors. */
    const void *view = NULL;
    uint64_t view_size = 0;
    qfmt_status s = qfmt_tensor_view(r, index, &view, &view_size, &e);
    if (s == QFMT_OK) {
        printf("view:  %" PRIu64 " bytes at %p, in the mapped file (aligned to %" PRIuPTR
               " bytes or more)\n",
               view_size, view, (uintptr_t)view & (~(uintptr_t)view + 1));
        if (print_values("view", ti.type, view, count, ti.nelements) != 0)
            goto done;
    } else if (s == QFMT_E_UNSUPPORTED) {
        printf("view:  not available: %s\n", e.message); /* compressed: decode with read */
    } else {
        rc = fail(&e);
        goto done;
    }

    /* 2. Read: copies (or decompresses) into our buffer, verifying the checksum first. */
    buf = malloc(ti.raw_size ? (size_t)ti.raw_size : 1);
    if (buf == NULL || ti.raw_size > SIZE_MAX) {
        fprintf(stderr, "read_tensor: out of memory\n");
        goto done;
    }
    if (qfmt_tensor_read(r, index, buf, ti.raw_size, true, &e) != QFMT_OK) {
        rc = fail(&e);
        goto done;
    }
    printf("read:  %" PRIu64 " bytes copied%s and checksum verified\n", ti.raw_size,
           ti.codec == QFMT_CODEC_ZSTD ? " (decompressed)" : "");
    if (print_values("read", ti.type, buf, count, ti.nelements) != 0)
        goto done;
    if (s == QFMT_OK)
        printf("view and read %s\n",
               memcmp(view, buf, (size_t)ti.raw_size) == 0 ? "agree" : "DIFFER");
    rc = 0;
done:
    free(buf);
    qfmt_reader_close(r);
    return rc;
}
