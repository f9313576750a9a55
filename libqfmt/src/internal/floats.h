/* AVX2/F16C loops for the float conversions of convert.c: the same bits as the scalar
 * conversions for every input (NaN quieting, subnormals, rounding to nearest even), usable
 * only when qfmt__cpu_has_avx2(). Each converts n values, whole vectors and the tail alike. */
#ifndef QFMT_INTERNAL_FLOATS_H
#define QFMT_INTERNAL_FLOATS_H

#include <stddef.h>
#include <stdint.h>

/* Pointers need no alignment: qfmt_convert_floats takes any. */
void qfmt__bf16_to_f32_avx2(const void *src, void *dst, size_t n);
void qfmt__f16_to_f32_avx2(const void *src, void *dst, size_t n);
void qfmt__f32_to_bf16_avx2(const void *src, void *dst, size_t n);
void qfmt__f32_to_f16_avx2(const void *src, void *dst, size_t n);
/* Index of the first NaN or infinity in x[0..n), or n. */
size_t qfmt__first_nonfinite_avx2(const float *x, size_t n);

#endif
