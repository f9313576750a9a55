/*
 * st_out.h - writing a safetensors file atomically and in a stream: the header (every
 * tensor's name, dtype and shape) first, then the tensors' bytes in that order, then commit
 * (fsync and rename over the final name). Used by dequantize and run.
 */
#ifndef QFMT_ST_OUT_H
#define QFMT_ST_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "qfmt.h"

typedef struct {
    const char *name;
    uint32_t type; /* a qfmt plain type with a safetensors dtype */
    uint32_t ndim;
    uint64_t dims[QFMT_MAX_DIMS];
} st_out_tensor;

typedef struct st_out st_out;

/* safetensors dtype name of a qfmt type ("F32", ...), or NULL. */
const char *st_out_dtype(uint32_t type);
/* Creates "<path>.tmp.N" and writes the header. Messages go to stderr. 0 or -1. */
int st_out_begin(st_out **out, const char *path, const st_out_tensor *t, size_t n);
/* Appends tensor bytes, in header order. 0 or -1. */
int st_out_write(st_out *o, const void *p, size_t n);
/* Checks every byte was given, fsyncs, renames into place. Frees o. 0 or -1. */
int st_out_commit(st_out *o);
/* Removes the temporary file and frees o (NULL is a no-op). */
void st_out_abort(st_out *o);

#endif
