/*
 * convert_policy.h - which type each tensor is stored as, and which tensors are stored
 * transposed (spec: "Conversion conventions").
 */
#ifndef QFMT_CONVERT_POLICY_H
#define QFMT_CONVERT_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t target;          /* the --type */
    const char *const *keep;  /* --keep globs: stay at the source type */
    size_t nkeep;
    const char *const *quant; /* --quantize globs: take the target type if they can */
    size_t nquant;
} qfmt__convert_policy;

/* The stored type of tensor `name` of src_type with (already transposed) dims. When a tensor
 * the policy selects cannot take the block type, returns llama.cpp's fallback type for a K or
 * iq4_xs target whose rows are a multiple of 32 but not of 256, else its source type, and sets
 * *note (a static reason) - the caller says so. */
uint32_t qfmt__policy_type(const qfmt__convert_policy *p, const char *name, uint32_t src_type, uint32_t ndim,
                     const uint64_t *dims, const char **note);

/* True for GPT-2 Conv1D weights, stored [in, out] by Hugging Face: qfmt stores them
 * [out, in] so quantization blocks run along the input dimension. */
bool qfmt__policy_transposed(const char *model_type, const char *name, uint32_t ndim);

#endif
