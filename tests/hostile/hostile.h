/*
 * hostile.h - a generator of hostile qfmt files (tests/hostile/hostile.c).
 *
 * Every file starts as a valid file written by the public writer (hostile_base_make); each case
 * then patches bytes at offsets found by parsing that file's layout, and recomputes the header,
 * index and tensor checksums where needed, so that the check the case aims at is the one that
 * fires (otherwise a checksum would catch everything first). Nothing here is a committed binary:
 * tests/test_hostile.c builds the corpus in a scratch directory, and `gen_hostile DIR` writes it
 * to DIR (fuzz seeds, manual inspection).
 *
 * Uses only the public API (qfmt.h) and libc, and never aborts: failures are return values.
 */
#ifndef QFMT_TESTS_HOSTILE_H
#define QFMT_TESTS_HOSTILE_H

#include <stddef.h>
#include <stdint.h>

#include "qfmt.h"

#define HOSTILE_NO_OFFSET UINT64_MAX

/* One generated file. `offset` is the byte offset the reader must name in its error (computed
 * from the base file's layout), or HOSTILE_NO_OFFSET for a file that must be accepted. */
typedef struct {
    const char *name; /* static: the case's name, also its file stem */
    const char *what; /* static: one line, the bug class it targets */
    uint8_t *buf;     /* malloc'd, `size` bytes */
    size_t size;
    uint64_t offset;
} hostile_file;

typedef struct hostile_base hostile_base;

/* Writes the base file to `path` with the public writer, reads it back and parses its layout.
 * The base holds 6 tensors (f32, f16, q8_0, a scalar, an empty one, and a zstd tensor, last in
 * the file) and metadata of every value type: each scalar type, a string, an array of every
 * scalar type and an array of strings (the last entry). Returns 0, or -1 (with *out NULL). */
int hostile_base_make(const char *path, hostile_base **out);
void hostile_base_free(hostile_base *b);
const uint8_t *hostile_base_bytes(const hostile_base *b, size_t *size);

size_t hostile_case_count(void);
const char *hostile_case_name(size_t i);
/* Builds case i from the base. Returns 0, or -1 (out->buf NULL) if it cannot be built. */
int hostile_case_make(const hostile_base *b, size_t i, hostile_file *out);
void hostile_file_free(hostile_file *f);

/* Writes base.qfmt, every case as <name>.qfmt and MANIFEST.txt (name, offset, what) to dir.
 * Returns the number of files that could not be built or written (0: all done). */
int hostile_write_corpus(const char *dir);

#endif
