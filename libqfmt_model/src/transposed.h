/* convert.transposed: the names of the 2-D tensors the converter stored transposed (GPT-2's
 * Conv1D weights, [in, out] in the checkpoint, [out, in] in the file). Read once into a sorted
 * set, so that a lookup per tensor is O(log n) whatever the list's length. Used by the model
 * (which layout a weight is in) and by qfmt_dequantize_file (which layout to write back). */
#ifndef QFMT_MODEL_TRANSPOSED_H
#define QFMT_MODEL_TRANSPOSED_H

#include <stdbool.h>
#include <stddef.h>

#include "qfmt.h"

typedef struct {
    const char *ptr; /* in the reader's mapping; not NUL-terminated */
    size_t len;
} qfmt__name;

typedef struct {
    qfmt__name *names; /* sorted; owned (qfmt__transposed_free) */
    size_t count;
} qfmt__transposed;

/* Loads the set from r. An absent key is an empty set; a key of another type than an array of
 * strings (an unknown element type, whose Count is not bounded by anything, included) is
 * refused with the reader's error: without the list the layouts would be wrong. The count is
 * bounded by the array's bytes (at least 8 per string). Returns 0 or -1 with *err filled. */
int qfmt__transposed_load(const qfmt_reader *r, qfmt__transposed *set, qfmt_error *err);
bool qfmt__transposed_has(const qfmt__transposed *set, const char *name);
void qfmt__transposed_free(qfmt__transposed *set);

#endif
