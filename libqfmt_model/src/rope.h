/* Rotary position embeddings (RoPE) as transformers computes them: the inverse frequencies of
 * each rope_type (transformers' ROPE_INIT_FUNCTIONS), from model.rope_* metadata, and the
 * rotate-half rotation. */
#ifndef QFMT_MODEL_ROPE_H
#define QFMT_MODEL_ROPE_H

#include <stddef.h>

#include "qfmt_model.h"

typedef struct {
    float *inv; /* head_dim / 2 inverse frequencies, NULL for a model without RoPE */
    size_t half;
    float scale; /* cos and sin are scaled by it (yarn's attention factor; else 1) */
} qfmt__rope;

/* Reads model.rope_theta, model.rope_type and its model.rope_scaling.* parameters and fills
 * *out (inv malloc'd: qfmt__rope_free). Refuses a type it lacks or missing parameters naming
 * the key (QFMT_E_UNSUPPORTED, QFMT_E_NOT_FOUND, QFMT_E_CORRUPT). Returns 0 or -1. */
int qfmt__rope_load(const qfmt_reader *r, const qfmt_model_hparams *h, qfmt__rope *out, qfmt_error *err);
void qfmt__rope_free(qfmt__rope *rp);

/* Rotates n rows of `heads` heads of rp->half * 2 values, row t at position pos0 + t. */
void qfmt__rope_apply(const qfmt__rope *rp, float *x, size_t n, size_t heads, size_t pos0);

#endif
