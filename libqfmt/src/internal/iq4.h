/* Shared by types/iq4_nl.c and types/iq4_xs.c: ggml's non-linear 4-bit grid and the search
 * both types use (ggml's quantize_row_iq4_nl_impl with ntry = 7), defined in types/iq4_nl.c. */
#ifndef QFMT_INTERNAL_IQ4_H
#define QFMT_INTERNAL_IQ4_H

#include <stdint.h>

/* The 16 code values, ascending (ggml's kvalues_iq4nl); an element decodes to scale * value. */
extern const int8_t qfmt__iq4_values[16];

/* Quantizes one super-block of nsub * 32 values (nsub 1: an iq4_nl block; 8: an iq4_xs block).
 * qw: the importance of each value, or NULL (ggml's default weights x^2). Writes the codes,
 * packed in 16 * nsub bytes qs (each 32-value sub-block in q4_0's nibble order) and, when
 * nsub > 1, each sub-block's 6-bit scale ls[ib] in 0 .. 63 (decoded as d * (ls - 32)).
 * Returns the fp16 bits of d; they are not finite (the caller then refuses the block) when d
 * does not fit fp16 or a sub-block's scale came out NaN or infinite. */
uint16_t qfmt__iq4_quantize_super(const float *x, const float *qw, int nsub, uint8_t *ls,
                                  uint8_t *qs);

#endif
