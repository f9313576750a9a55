/* Transitional: the names runtime/ used before issue #12 (it is moving to qfmt.h's
 * qfmt_row_decoder and qfmt_cpu_features). Nothing in libqfmt includes this header; delete it
 * once runtime/ no longer does. */
#ifndef QFMT_INTERNAL_QUANT_H
#define QFMT_INTERNAL_QUANT_H

#include "block.h"
#include "kernels.h"

typedef qfmt_quantize_blocks_fn qfmt__quantize_fn;
typedef qfmt_dequantize_blocks_fn qfmt__dequantize_fn;
typedef qfmt_quant_kernels qfmt__quant_kernels;

static inline const qfmt__quant_kernels *qfmt__quant_get(uint32_t type) { return qfmt_quant_kernels_get(type); }
static inline int qfmt__cpu_has_avx2(void) { return (qfmt_cpu_features() & QFMT_CPU_AVX2) != 0; }

#endif
