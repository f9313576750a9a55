/* The reader's state, shared by reader.c (open, tensors), meta.c (metadata) and verify.c. */
#ifndef QFMT_INTERNAL_READER_H
#define QFMT_INTERNAL_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "alloc.h"
#include "qfmt.h"

typedef struct {
    const char *name; /* NUL-terminated copy in the names arena */
    uint32_t name_len;
    uint32_t type, codec, ndim;
    uint64_t dims[QFMT_MAX_DIMS];
    uint64_t nelements, offset, stored, raw, checksum;
    uint64_t entry_offset; /* where its directory entry starts, for messages */
} qfmt__tensor;

typedef struct {
    const char *key; /* NUL-terminated copy in the names arena */
    uint32_t key_len;
    uint32_t type;
    uint64_t entry_offset; /* for messages */
    uint64_t value_offset, value_size;
    uint32_t elem_type;    /* arrays */
    uint64_t count;        /* arrays */
    uint64_t *str_offsets; /* string arrays: file offset of each element's length field */
} qfmt__meta;

struct qfmt_reader {
    qfmt__alloc al;
    const uint8_t *base;
    uint64_t size;
    bool mapped;
    char *path;
    qfmt_file_info info;
    qfmt__tensor *tensors;
    uint32_t *by_name; /* tensor indexes sorted by name, for lookup */
    qfmt__meta *meta;  /* sorted by key, as the file stores them */
    char *arena;       /* names and keys */
    uint64_t budget;   /* bytes open may still allocate (spec: Limits and resources) */
};

/* What open allocates is bounded by the index it reads (spec, "Limits and resources"): at most
 * QFMT__OPEN_ALLOC_FACTOR bytes per byte of metadata and directory, plus QFMT__OPEN_ALLOC_BASE
 * bytes (the reader itself included), plus a copy of the path. The entry counts are bounded by
 * the smallest entries (format.h), and each entry's state is at most this many of those bytes. */
#define QFMT__OPEN_ALLOC_FACTOR 6u
#define QFMT__OPEN_ALLOC_BASE 4096u

/* n elements of `size` bytes, zeroed, charged to r->budget: QFMT_E_NOMEM if the allocator
 * fails, QFMT_E_RANGE if the budget would be exceeded (nothing is allocated then). */
qfmt_status qfmt__ralloc(qfmt_reader *r, uint64_t n, size_t size, void **out);

/* Records a failure with the reader's path. */
qfmt_status qfmt__rfail(const qfmt_reader *r, qfmt_error *err, qfmt_status code,
                        const char *tensor, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Parses and validates the metadata section; fills r->meta and copies keys to *arena_pos. */
qfmt_status qfmt__meta_parse(qfmt_reader *r, char **arena_pos, qfmt_error *err);
void qfmt__meta_free(qfmt_reader *r);

#endif
