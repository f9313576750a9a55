#ifndef QFMT_INTERNAL_TYPES_H
#define QFMT_INTERNAL_TYPES_H

#include <stdint.h>

#include "qfmt.h"

/* Bytes of a tensor of a known type with these dims, after checking that the innermost
 * dimension holds whole blocks and that nothing overflows. *nelements gets the element count.
 * QFMT_E_UNSUPPORTED for an unknown type, QFMT_E_RANGE otherwise. */
qfmt_status qfmt__tensor_bytes(uint32_t type, uint32_t ndim, const uint64_t *dims,
                               uint64_t *nelements, uint64_t *bytes);
/* Element count with overflow and QFMT_MAX_ELEMENTS checks. */
int qfmt__count_elements(uint32_t ndim, const uint64_t *dims, uint64_t *nelements);

#endif
