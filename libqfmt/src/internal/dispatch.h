/* Kernel choice (dispatch.c): what convert.c and quant.c call instead of naming kernels. */
#ifndef QFMT_INTERNAL_DISPATCH_H
#define QFMT_INTERNAL_DISPATCH_H

#include <stdbool.h>

#include "kernels.h"

/* The float-row kernels of one level. */
typedef struct {
    qfmt__to_f32_fn f16_to_f32, bf16_to_f32;
    qfmt__from_f32_fn f32_to_f16, f32_to_bf16;
    qfmt__first_nonfinite_fn first_nonfinite;
} qfmt__float_kernels;

/* The level a request runs at: AUTO becomes the fastest this CPU has. Call only with a kernel
 * qfmt_kernel_available() accepts. */
qfmt_kernel qfmt__kernel_resolve(qfmt_kernel k);
/* The float kernels of a resolved level (SCALAR or AVX2). Static storage. */
const qfmt__float_kernels *qfmt__float_kernels_get(qfmt_kernel level);
/* The block kernels of `k` (from qfmt_quant_kernels_get) at a resolved level; `best`: the
 * error-minimising quantizer (scalar only). */
qfmt_quantize_blocks_fn qfmt__quantizer(const qfmt_quant_kernels *k, qfmt_kernel level, bool best);
qfmt_dequantize_blocks_fn qfmt__dequantizer(const qfmt_quant_kernels *k, qfmt_kernel level);

#endif
