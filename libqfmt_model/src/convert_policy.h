/*
 * convert_policy.h - which type each tensor is stored as, and which tensors are stored
 * transposed (spec: "Conversion conventions"; "Type mixes, recipes and size targets"): the
 * default policy for one target type, --keep / --quantize globs, recipes, llama.cpp's type mixes
 * (quant_mix.c) and size targets (a measuring pass over the tensors before the conversion).
 */
#ifndef QFMT_CONVERT_POLICY_H
#define QFMT_CONVERT_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qfmt.h"
#include "qfmt_model.h"
#include "hf_checkpoint.h"
#include "quant_mix.h"

typedef struct {
    char *name; /* owned */
    uint32_t type; /* UINT32_MAX: keeps its source type */
} qfmt__policy_choice;

typedef struct {
    uint32_t target;          /* the --type (neither a mix nor a size target) */
    const char *const *keep;  /* --keep globs: stay at the source type */
    size_t nkeep;
    const char *const *quant; /* --quantize globs: take the target type if they can */
    size_t nquant;
    const qfmt_convert_rule *rules; /* a recipe: first match wins */
    size_t nrules;
    const qfmt_family *family; /* the checkpoint's family (config.json model_type), or NULL */
    qfmt__mix_model mix;       /* mix.mix < 0: no mix */
    /* A size target: the chosen type of every candidate, sorted by name (lookup), and the
     * candidates in data order (metadata); what was chosen. */
    bool sized;
    qfmt__policy_choice *chosen;
    size_t nchosen;
    char **sized_names;
    size_t nsized;
    double target_bpw, achieved_bpw, error;
    bool weighted;
    const uint32_t *target_types;
    size_t ntarget_types;
} qfmt__convert_policy;

/* A tensor as the policy sees it: its stored dims (after any transposition). */
typedef struct {
    const char *name;
    uint32_t type; /* source type */
    uint32_t ndim;
    uint64_t dims[QFMT_MAX_DIMS];
} qfmt__policy_tensor;

/* What the mixes need of the hyperparameters (config.json); 0: unknown. */
typedef struct {
    uint64_t n_layer, heads, kv_heads;
} qfmt__policy_hparams;

/* Whether o->types is valid (reserved fields zero, a known mix, rules with globs and target
 * types, a finite target_bpw >= 0 without a mix, candidate types block or float, 1..16). */
bool qfmt__policy_valid_types(const qfmt_convert_opts *o);

/* Sets p up from the options for a checkpoint holding tensors t[0..n) (the mix counts its
 * attn_v-like tensors and looks for an output head). No size target yet (see
 * qfmt__policy_size). QFMT_E_ARG: q2_k_s without an importance source (llama.cpp refuses it). */
qfmt_status qfmt__policy_init(qfmt__convert_policy *p, const qfmt_convert_opts *o, const qfmt_family *f,
                              const qfmt__policy_hparams *h, const qfmt__policy_tensor *t, size_t n,
                              qfmt_error *err);
void qfmt__policy_free(qfmt__convert_policy *p);

/* Tensor i's values (source type, stored layout: transposed where the conversion transposes),
 * valid until release(ctx, i). */
typedef qfmt_status (*qfmt__policy_fetch)(void *ctx, size_t i, const void **data, qfmt_error *err);
typedef void (*qfmt__policy_release)(void *ctx, size_t i);

/* The size target's measuring pass (o->types->target_bpw > 0; else nothing): every candidate
 * quantized with every candidate type (after fallbacks), decoded and compared, one tensor
 * fetched at a time and measured in chunks of rows; then qfmt__bpw_choose. Notes (o->note) for candidates no type fits.
 * QFMT_E_RANGE when even the smallest types exceed the budget. */
qfmt_status qfmt__policy_size(qfmt__convert_policy *p, const qfmt_convert_opts *o, const qfmt__policy_tensor *t,
                              size_t n, qfmt__policy_fetch fetch, qfmt__policy_release release, void *ctx,
                              qfmt_error *err);

/* The stored type of tensor `name` of src_type with (already transposed) dims. When a tensor
 * the policy selects cannot take the block type, returns llama.cpp's fallback type for a K or
 * iq4_xs target whose rows are a multiple of 32 but not of 256, else its source type, and sets
 * *note (a static reason) - the caller says so. */
uint32_t qfmt__policy_type(const qfmt__convert_policy *p, const char *name, uint32_t src_type, uint32_t ndim,
                           const uint64_t *dims, const char **note);

/* The importance of tensor `name` (rows of row_len) from o->importance into *buf (grown to
 * row_len floats): *out = *buf, or NULL when there is none (no callback, or QFMT_E_NOT_FOUND).
 * Other failures of the callback come back, with the tensor named when err does not. */
qfmt_status qfmt__policy_importance(const qfmt_convert_opts *o, const qfmt_family *f, const char *name,
                                    uint64_t row_len, float **buf, size_t *cap, const float **out, qfmt_error *err);

/* qfmt__policy_init then qfmt__policy_size for checkpoint m (src: its path, for messages): the
 * family and hyperparameters from config.json, the tensors' stored dims, GPT-2's Conv1D weights
 * transposed for measuring as the conversion stores them. */
qfmt_status qfmt__policy_init_hf(qfmt__convert_policy *p, const qfmt__hf_model *m, const qfmt_convert_opts *o,
                                 const char *src, qfmt_error *err);

/* The metadata of the choices: convert.mix, convert.recipe, convert.target_bpw*. */
qfmt_status qfmt__policy_put_metadata(const qfmt__convert_policy *p, qfmt_writer *w, qfmt_error *err);

/* True for GPT-2 Conv1D weights, stored [in, out] by Hugging Face: qfmt stores them
 * [out, in] so quantization blocks run along the input dimension. */
bool qfmt__policy_transposed(const char *model_type, const char *name, uint32_t ndim);

/* Transposes a rows x cols matrix of `es`-byte elements into dst, in cache-friendly tiles. */
void qfmt__transpose(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t cols, size_t es);

#endif
