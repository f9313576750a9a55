/* F32 <-> F16 <-> BF16, round to nearest even, with NaN, Inf and subnormals kept (spec:
 * "Float conversions"). The scalar code defines the bits; to and from F32, qfmt_convert_floats
 * runs AVX2/F16C loops with the same bits where the CPU has them (types/floats_avx2.c). */
#include <string.h>

#include "internal/cpu.h"
#include "internal/floats.h"
#include "internal/quant.h"
#include "qfmt.h"

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

static inline float load(uint32_t t, const unsigned char *p, size_t i)
{
    if (t == QFMT_TYPE_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return t == QFMT_TYPE_F16 ? qfmt_f16_to_f32(h) : qfmt_bf16_to_f32(h);
}

static inline void store(uint32_t t, unsigned char *p, size_t i, float f)
{
    if (t == QFMT_TYPE_F32) {
        memcpy(p + 4 * i, &f, 4);
        return;
    }
    uint16_t h = t == QFMT_TYPE_F16 ? qfmt_f32_to_f16(f) : qfmt_f32_to_bf16(f);
    memcpy(p + 2 * i, &h, 2);
}

static int is_float16_or_32(uint32_t t)
{
    return t == QFMT_TYPE_F32 || t == QFMT_TYPE_F16 || t == QFMT_TYPE_BF16;
}

qfmt_status qfmt_convert_floats(uint32_t src_type, const void *src, uint32_t dst_type, void *dst,
                                size_t n)
{
    if (!is_float16_or_32(src_type) || !is_float16_or_32(dst_type)) return QFMT_E_UNSUPPORTED;
    if (n && (!src || !dst)) return QFMT_E_ARG;
    if (src_type == dst_type) {
        if (src != dst) memmove(dst, src, n * (src_type == QFMT_TYPE_F32 ? 4 : 2));
        return QFMT_OK;
    }
    /* Native 16/32-bit loads match the file: the host is little-endian (asserted below). */
    const unsigned char *s = src;
    unsigned char *d = dst;
    if (n >= 8 && qfmt__cpu_has_avx2()) {
        if (dst_type == QFMT_TYPE_F32) {
            if (src_type == QFMT_TYPE_BF16) qfmt__bf16_to_f32_avx2(s, dst, n);
            else qfmt__f16_to_f32_avx2(s, dst, n);
            return QFMT_OK;
        }
        if (src_type == QFMT_TYPE_F32) {
            if (dst_type == QFMT_TYPE_BF16) qfmt__f32_to_bf16_avx2(src, d, n);
            else qfmt__f32_to_f16_avx2(src, d, n);
            return QFMT_OK;
        }
        /* F16 <-> BF16: through F32 a chunk at a time, the scalar path's own two steps */
        float buf[1024];
        for (size_t at = 0; at < n; at += 1024) {
            size_t k = n - at < 1024 ? n - at : 1024;
            if (src_type == QFMT_TYPE_BF16) qfmt__bf16_to_f32_avx2(s + 2 * at, buf, k);
            else qfmt__f16_to_f32_avx2(s + 2 * at, buf, k);
            if (dst_type == QFMT_TYPE_BF16) qfmt__f32_to_bf16_avx2(buf, d + 2 * at, k);
            else qfmt__f32_to_f16_avx2(buf, d + 2 * at, k);
        }
        return QFMT_OK;
    }
    for (size_t i = 0; i < n; i++) store(dst_type, d, i, load(src_type, s, i));
    return QFMT_OK;
}

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "libqfmt hands out tensor bytes in place: it needs a little-endian host");
