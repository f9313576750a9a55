/* F32 <-> F16 <-> BF16 references, round to nearest even, with NaN, Inf and subnormals kept
 * (spec: "Float conversions"). These define the bits; types/floats_avx2.c matches them and
 * convert.c (qfmt_convert_floats) picks between the two through dispatch.c. */
#include <string.h>

#include "internal/kernels.h"

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t qfmt_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7FFFFFFFu;
    if (x >= 0x7F800000u) /* Inf, or NaN made quiet with the top payload bits kept */
        return (uint16_t)(sign | (x == 0x7F800000u ? 0x7C00u : 0x7E00u | ((x >> 13) & 0x3FFu)));
    if (x >= 0x47800000u) return (uint16_t)(sign | 0x7C00u); /* >= 2^16: Inf */
    if (x < 0x38800000u) {                                    /* below 2^-14: f16 subnormal */
        uint32_t e = x >> 23;
        if (e < 102) return sign; /* below half the smallest subnormal, 2^-25 */
        uint32_t m = (x & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (x >> 13) - ((127u - 15u) << 10), rem = x & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* may carry into Inf: correct */
    return (uint16_t)(sign | h);
}

float qfmt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0x1F) return bits_f32(sign | 0x7F800000u | (m ? 0x400000u | (m << 13) : 0));
    if (e == 0) {
        if (m == 0) return bits_f32(sign);
        e = 1; /* normalise the subnormal */
        while (!(m & 0x400u)) {
            m <<= 1;
            e--;
        }
        m &= 0x3FFu;
    }
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t qfmt_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7FFFu + ((x >> 16) & 1u); /* may carry into Inf: correct */
    return (uint16_t)(x >> 16);
}

float qfmt_bf16_to_f32(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) x |= 0x400000u; /* NaN comes out quiet */
    return bits_f32(x);
}

/* Rows, through memcpy: no alignment is assumed. Native 16-bit loads match the file: the host
 * is little-endian (asserted in convert.c). */
static inline uint16_t get16(const unsigned char *p, size_t i)
{
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return h;
}
static inline void put16(unsigned char *p, size_t i, uint16_t h) { memcpy(p + 2 * i, &h, 2); }

void qfmt__f16_to_f32_ref(const void *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float f = qfmt_f16_to_f32(get16(src, i));
        memcpy(dst + i, &f, 4);
    }
}

void qfmt__bf16_to_f32_ref(const void *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float f = qfmt_bf16_to_f32(get16(src, i));
        memcpy(dst + i, &f, 4);
    }
}

void qfmt__f32_to_f16_ref(const float *src, void *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float f;
        memcpy(&f, src + i, 4);
        put16(dst, i, qfmt_f32_to_f16(f));
    }
}

void qfmt__f32_to_bf16_ref(const float *src, void *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float f;
        memcpy(&f, src + i, 4);
        put16(dst, i, qfmt_f32_to_bf16(f));
    }
}

size_t qfmt__first_nonfinite_ref(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] - x[i] != 0.0f) return i;
    return n;
}
