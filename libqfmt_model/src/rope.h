/* Rotary position embeddings (RoPE) as transformers computes them: the inverse frequencies of
 * each rope_type (transformers' ROPE_INIT_FUNCTIONS), from model.rope_* metadata, and the
 * rotate-half rotation. */
#ifndef QFMT_MODEL_ROPE_H
#define QFMT_MODEL_ROPE_H

#include <stddef.h>

#include "qfmt_model.h"

typedef struct {
    float *inv;      /* `half` inverse frequencies, NULL for a model without RoPE */
    float *inv_long; /* longrope: the frequencies past the original context, else NULL */
    size_t half;     /* rotated pairs per head: rotary dimensions / 2 (partial rotary: < head_dim / 2) */
    size_t orig;     /* longrope: the original context */
    float scale;     /* cos and sin are scaled by it (yarn's and longrope's attention factor; else 1) */
} qfmt__rope;

/* Reads the RoPE under `prefix`: "model." (model.rope_theta, model.rope_type and its
 * model.rope_scaling.* parameters, model.rope_partial_rotary_factor) or another layer type's
 * ("model.sliding_attention.", whose rope_theta is required), and fills *out (malloc'd:
 * qfmt__rope_free). Refuses a type it lacks or missing parameters naming the key
 * (QFMT_E_UNSUPPORTED, QFMT_E_NOT_FOUND, QFMT_E_CORRUPT). Returns 0 or -1. */
int qfmt__rope_load(const qfmt_reader *r, const qfmt_model_hparams *h, const char *prefix, qfmt__rope *out,
                    qfmt_error *err);
void qfmt__rope_free(qfmt__rope *rp);

/* Rotates the first 2 x rp->half values of each head (hd values apart) of n rows of `heads`
 * heads, row t at position pos0 + t. */
void qfmt__rope_apply(const qfmt__rope *rp, float *x, size_t n, size_t heads, size_t hd, size_t pos0);

#endif
