/* The default conversion policy (issue: quantize 2-D weights, never embeddings, the output
 * projection, norms or biases) and its --keep / --quantize overrides. */
#define _POSIX_C_SOURCE 200809L
#include "convert_policy.h"

#include <fnmatch.h>
#include <string.h>

#include "qfmt.h"
#include "qfmt_model.h"

static bool is_plain_float(uint32_t t)
{
    return t == QFMT_TYPE_F32 || t == QFMT_TYPE_F16 || t == QFMT_TYPE_BF16;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool any_glob(const char *const *globs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (fnmatch(globs[i], name, 0) == 0) return true;
    return false;
}

/* A tensor the families know and do not call a linear weight (embeddings, heads, norms), or
 * one no family knows whose name says it is an embedding or an output head. */
static bool is_embedding_or_head(const char *name)
{
    unsigned role = qfmt_family_tensor_role(NULL, name);
    if (role & QFMT_FAMILY_KNOWN) return !(role & QFMT_FAMILY_QUANTIZE);
    return strstr(name, "embed") != NULL || strncmp(name, "lm_head.", 8) == 0 || strcmp(name, "output.weight") == 0;
}

uint32_t qfmt__policy_type(const qfmt__convert_policy *p, const char *name, uint32_t src_type, uint32_t ndim,
                     const uint64_t *dims, const char **note)
{
    *note = NULL;
    if (!is_plain_float(src_type) || any_glob(p->keep, p->nkeep, name)) return src_type;
    const qfmt_type_traits *t = qfmt_type_get_traits(p->target);
    if (t->block_elems == 1) return p->target; /* a float target: every float tensor */
    bool forced = any_glob(p->quant, p->nquant, name);
    bool selected = forced || (ndim == 2 && ends_with(name, ".weight") && !is_embedding_or_head(name));
    if (!selected) return src_type;
    if (ndim == 0) {
        *note = "a scalar cannot be block-quantized";
        return src_type;
    }
    if (dims[ndim - 1] % t->block_elems == 0) return p->target;
    /* llama.cpp's fallbacks (llama_tensor_get_type) for rows that hold no whole super-block */
    uint32_t fb = UINT32_MAX;
    switch (p->target) {
    case QFMT_TYPE_Q2_K:
    case QFMT_TYPE_Q3_K:
    case QFMT_TYPE_IQ4_XS: fb = QFMT_TYPE_IQ4_NL; break;
    case QFMT_TYPE_Q4_K: fb = QFMT_TYPE_Q5_0; break;
    case QFMT_TYPE_Q5_K: fb = QFMT_TYPE_Q5_1; break;
    case QFMT_TYPE_Q6_K: fb = QFMT_TYPE_Q8_0; break;
    default: break;
    }
    if (fb != UINT32_MAX && dims[ndim - 1] % qfmt_type_get_traits(fb)->block_elems == 0) {
        *note = "its rows are not a multiple of the super-block size 256 (llama.cpp's fallback type)";
        return fb;
    }
    *note = t->block_elems == 32 ? "its rows are not a multiple of the block size 32"
                                 : "its rows are not a multiple of the block size 256 (nor 32)";
    return src_type;
}

bool qfmt__policy_transposed(const char *model_type, const char *name, uint32_t ndim)
{
    const qfmt_family *f = model_type ? qfmt_family_find(model_type, strlen(model_type)) : NULL;
    return f && ndim == 2 && (qfmt_family_tensor_role(f, name) & QFMT_FAMILY_CONV1D);
}
