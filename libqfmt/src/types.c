/* The tensor type table: one const entry per type this library can size. The block types'
 * kernels live in types/. */
#include <string.h>

#include "internal/checked.h"
#include "internal/types.h"

typedef struct {
    uint32_t id;
    qfmt_type_traits t;
} type_entry;

static const type_entry types[] = {
    {QFMT_TYPE_F32, {"f32", 1, 4, true}},   {QFMT_TYPE_F16, {"f16", 1, 2, true}},
    {QFMT_TYPE_BF16, {"bf16", 1, 2, true}}, {QFMT_TYPE_F64, {"f64", 1, 8, true}},
    {QFMT_TYPE_I8, {"i8", 1, 1, false}},    {QFMT_TYPE_I16, {"i16", 1, 2, false}},
    {QFMT_TYPE_I32, {"i32", 1, 4, false}},  {QFMT_TYPE_I64, {"i64", 1, 8, false}},
    {QFMT_TYPE_U8, {"u8", 1, 1, false}},    {QFMT_TYPE_BOOL, {"bool", 1, 1, false}},
    {QFMT_TYPE_Q8_0, {"q8_0", 32, 34, false}}, {QFMT_TYPE_Q4_0, {"q4_0", 32, 18, false}},
    {QFMT_TYPE_Q4_1, {"q4_1", 32, 20, false}}, {QFMT_TYPE_Q8_Z, {"q8_z", 32, 35, false}},
    {QFMT_TYPE_Q4_Z, {"q4_z", 32, 19, false}},
    {QFMT_TYPE_Q5_0, {"q5_0", 32, 22, false}}, {QFMT_TYPE_Q5_1, {"q5_1", 32, 24, false}},
    {QFMT_TYPE_Q2_K, {"q2_k", 256, 84, false}}, {QFMT_TYPE_Q3_K, {"q3_k", 256, 110, false}},
    {QFMT_TYPE_Q4_K, {"q4_k", 256, 144, false}}, {QFMT_TYPE_Q5_K, {"q5_k", 256, 176, false}},
    {QFMT_TYPE_Q6_K, {"q6_k", 256, 210, false}}, {QFMT_TYPE_IQ4_NL, {"iq4_nl", 32, 18, false}},
    {QFMT_TYPE_IQ4_XS, {"iq4_xs", 256, 136, false}},
};

const qfmt_type_traits *qfmt_type_get_traits(uint32_t type)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].id == type) return &types[i].t;
    return NULL;
}

qfmt_status qfmt_type_from_name(const char *name, uint32_t *type)
{
    if (!name || !type) return QFMT_E_ARG;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i].t.name, name) == 0) {
            *type = types[i].id;
            return QFMT_OK;
        }
    return QFMT_E_NOT_FOUND;
}

qfmt_status qfmt_type_size(uint32_t type, uint64_t nelements, uint64_t *bytes)
{
    const qfmt_type_traits *t = qfmt_type_get_traits(type);
    if (!t) return QFMT_E_UNSUPPORTED;
    if (nelements % t->block_elems != 0) return QFMT_E_RANGE;
    uint64_t b;
    if (!qfmt__mul_u64(nelements / t->block_elems, t->block_bytes, &b)) return QFMT_E_RANGE;
    if (bytes) *bytes = b;
    return QFMT_OK;
}

int qfmt__count_elements(uint32_t ndim, const uint64_t *dims, uint64_t *nelements)
{
    if (ndim > QFMT_MAX_DIMS) return 0;
    uint64_t n = 1;
    bool zero = false;
    for (uint32_t i = 0; i < ndim; i++) {
        if (dims[i] == 0) zero = true;
        else if (!qfmt__mul_u64(n, dims[i], &n) || n > QFMT_MAX_ELEMENTS) return 0;
    }
    *nelements = zero ? 0 : n;
    return 1;
}

qfmt_status qfmt__tensor_bytes(uint32_t type, uint32_t ndim, const uint64_t *dims,
                               uint64_t *nelements, uint64_t *bytes)
{
    const qfmt_type_traits *t = qfmt_type_get_traits(type);
    if (!t) return QFMT_E_UNSUPPORTED;
    uint64_t n;
    if (!qfmt__count_elements(ndim, dims, &n)) return QFMT_E_RANGE;
    /* Blocks run along the innermost dimension: each row holds whole blocks. */
    if (t->block_elems > 1 && (ndim == 0 || dims[ndim - 1] % t->block_elems != 0))
        return QFMT_E_RANGE;
    *nelements = n;
    return qfmt_type_size(type, n, bytes);
}
