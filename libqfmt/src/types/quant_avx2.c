/* AVX2 kernels: the same bytes as the scalar references in q*.c, on every input (tested).
 * Each step is the reference's own fp32 operation (no FMA contraction: the library is built
 * with -ffp-contract=off), and roundf is emulated exactly (round half away from zero). */
#define _POSIX_C_SOURCE 200809L
#include "internal/block.h"
#include "internal/kernels.h"

#if QFMT__HAVE_AVX2_KERNELS
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float hmax(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}
AVX2 static inline float hmin(__m256 v)
{
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* roundf: truncate, then step away from zero when the dropped fraction is >= 0.5 (exact:
 * v - trunc(v) is representable). */
AVX2 static inline __m256 round_away(__m256 v)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    __m256 step = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    __m256 ge = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_add_ps(t, _mm256_and_ps(ge, step));
}

/* 32 int32 (four vectors, elements in order) to 32 int8 in order (values must fit). */
AVX2 static inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i r = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* 32 codes 0..15 in order to q4_0's 16 bytes: element j low nibble, j+16 high nibble. */
AVX2 static inline void store_nibbles(uint8_t *dst, __m256i codes)
{
    __m128i lo = _mm256_castsi256_si128(codes), hi = _mm256_extracti128_si256(codes, 1);
    _mm_storeu_si128((__m128i *)dst, _mm_or_si128(lo, _mm_slli_epi16(hi, 4)));
}

/* 16 bytes of nibbles to 32 codes in element order (as int32 vectors q[0..3]). */
AVX2 static inline void load_nibbles(const uint8_t *src, __m256i q[4])
{
    __m128i b = _mm_loadu_si128((const __m128i *)src), m = _mm_set1_epi8(0x0F);
    __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
    q[0] = _mm256_cvtepu8_epi32(lo);
    q[1] = _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8));
    q[2] = _mm256_cvtepu8_epi32(hi);
    q[3] = _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8));
}

AVX2 size_t qfmt__q8_0_quantize_avx2(const float *x, uint8_t *y, size_t nb)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += 34) {
        __m256 v[4], am = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            am = _mm256_max_ps(am, _mm256_andnot_ps(sign, v[k]));
        }
        const float d = hmax(am) / 127.0f, id = qfmt__inv(d);
        const uint16_t dh = qfmt_f32_to_f16(d);
        if (!qfmt__f16_finite(dh)) return b;
        qfmt__st16(y, dh);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) q[k] = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[k], vid)));
        _mm256_storeu_si256((__m256i *)(y + 2), pack32(q[0], q[1], q[2], q[3]));
    }
    return nb;
}

AVX2 void qfmt__q8_0_dequantize_avx2(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += 34) {
        const __m256 d = _mm256_set1_ps(qfmt_f16_to_f32(qfmt__ld16(y)));
        for (int k = 0; k < 4; k++) {
            __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(y + 2 + 8 * k)));
            _mm256_storeu_ps(x + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

AVX2 size_t qfmt__q4_0_quantize_avx2(const float *x, uint8_t *y, size_t nb)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += 18) {
        __m256 v[4], am = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            am = _mm256_max_ps(am, _mm256_andnot_ps(sign, v[k]));
        }
        const float amax = hmax(am);
        float max = 0.0f; /* the first value of that magnitude, as the reference picks it */
        if (amax != 0.0f)
            for (int j = 0; j < QFMT__QK; j++)
                if (fabsf(x[j]) == amax) {
                    max = x[j];
                    break;
                }
        const float d = max / -8.0f, id = qfmt__inv(d);
        const uint16_t dh = qfmt_f32_to_f16(d);
        if (!qfmt__f16_finite(dh)) return b;
        qfmt__st16(y, dh);
        const __m256 vid = _mm256_set1_ps(id), off = _mm256_set1_ps(8.5f);
        const __m256i fifteen = _mm256_set1_epi32(15);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m256 t = _mm256_add_ps(_mm256_mul_ps(v[k], vid), off);
            q[k] = _mm256_min_epi32(_mm256_cvttps_epi32(t), fifteen);
        }
        store_nibbles(y + 2, pack32(q[0], q[1], q[2], q[3]));
    }
    return nb;
}

AVX2 void qfmt__q4_0_dequantize_avx2(const uint8_t *y, float *x, size_t nb)
{
    const __m256i eight = _mm256_set1_epi32(8);
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += 18) {
        const __m256 d = _mm256_set1_ps(qfmt_f16_to_f32(qfmt__ld16(y)));
        __m256i q[4];
        load_nibbles(y + 2, q);
        for (int k = 0; k < 4; k++)
            _mm256_storeu_ps(x + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q[k], eight)), d));
    }
}

AVX2 size_t qfmt__q4_1_quantize_avx2(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += 20) {
        __m256 v[4];
        for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
        __m256 vmin = _mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3]));
        __m256 vmax = _mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]));
        float min = hmin(vmin), max = hmax(vmax);
        if (min == 0.0f || max == 0.0f) { /* which zero the reference keeps depends on order */
            min = x[0];
            max = x[0];
            for (int j = 1; j < QFMT__QK; j++) {
                if (x[j] < min) min = x[j];
                if (x[j] > max) max = x[j];
            }
        }
        const float d = (max - min) / 15.0f, id = qfmt__inv(d);
        const uint16_t dh = qfmt_f32_to_f16(d), mh = qfmt_f32_to_f16(min);
        if (!qfmt__f16_finite(dh) || !qfmt__f16_finite(mh)) return b;
        qfmt__st16(y, dh);
        qfmt__st16(y + 2, mh);
        const __m256 vid = _mm256_set1_ps(id), vm = _mm256_set1_ps(min), half = _mm256_set1_ps(0.5f);
        const __m256i fifteen = _mm256_set1_epi32(15);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m256 t = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v[k], vm), vid), half);
            q[k] = _mm256_min_epi32(_mm256_cvttps_epi32(t), fifteen);
        }
        store_nibbles(y + 4, pack32(q[0], q[1], q[2], q[3]));
    }
    return nb;
}

AVX2 void qfmt__q4_1_dequantize_avx2(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += 20) {
        const __m256 d = _mm256_set1_ps(qfmt_f16_to_f32(qfmt__ld16(y)));
        const __m256 m = _mm256_set1_ps(qfmt_f16_to_f32(qfmt__ld16(y + 2)));
        __m256i q[4];
        load_nibbles(y + 4, q);
        for (int k = 0; k < 4; k++)
            _mm256_storeu_ps(x + 8 * k, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q[k]), d), m));
    }
}

/* Zero-point types: codes = clamp(roundf(x*id) + z, 0, qmax) into q[0..3]. Returns 0 when
 * the scale does not fit fp16. */
AVX2 static inline int z_codes(const float *x, int qmax, uint16_t *sh, int *z, __m256i q[4])
{
    __m256 v[4];
    for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
    __m256 vmin = _mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3]));
    __m256 vmax = _mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]));
    const float mn = fminf(0.0f, hmin(vmin)), mx = fmaxf(0.0f, hmax(vmax));
    float s = (mx - mn) / (float)qmax;
    s = s > 0.0f ? s : 0.0f;
    *sh = qfmt_f32_to_f16(s);
    if (!qfmt__f16_finite(*sh)) return 0;
    const float id = qfmt__inv(qfmt_f16_to_f32(*sh));
    float zf = roundf(-mn * id);
    *z = zf < 0.0f ? 0 : zf > (float)qmax ? qmax : (int)zf;
    const __m256 vid = _mm256_set1_ps(id);
    const __m256i vz = _mm256_set1_epi32(*z), lo = _mm256_setzero_si256(), hi = _mm256_set1_epi32(qmax);
    for (int k = 0; k < 4; k++) {
        __m256i t = _mm256_add_epi32(_mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[k], vid))), vz);
        q[k] = _mm256_min_epi32(_mm256_max_epi32(t, lo), hi);
    }
    return 1;
}

AVX2 size_t qfmt__q8_z_quantize_avx2(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += 35) {
        uint16_t sh;
        int z;
        __m256i q[4];
        if (!z_codes(x, 255, &sh, &z, q)) return b;
        qfmt__st16(y, sh);
        y[2] = (uint8_t)z;
        /* codes 0..255: pack through unsigned saturation keeps them */
        __m256i ab = _mm256_packus_epi32(q[0], q[1]), cd = _mm256_packus_epi32(q[2], q[3]);
        __m256i r = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd),
                                                _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(y + 3), r);
    }
    return nb;
}

AVX2 void qfmt__q8_z_dequantize_avx2(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += 35) {
        const __m256 s = _mm256_set1_ps(qfmt_f16_to_f32(qfmt__ld16(y)));
        const __m256i z = _mm256_set1_epi32(y[2]);
        for (int k = 0; k < 4; k++) {
            __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(y + 3 + 8 * k)));
            _mm256_storeu_ps(x + 8 * k, _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_sub_epi32(q, z))));
        }
    }
}

AVX2 size_t qfmt__q4_z_quantize_avx2(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += 19) {
        uint16_t sh;
        int z;
        __m256i q[4];
        if (!z_codes(x, 15, &sh, &z, q)) return b;
        qfmt__st16(y, sh);
        y[2] = (uint8_t)z;
        store_nibbles(y + 3, pack32(q[0], q[1], q[2], q[3]));
    }
    return nb;
}

AVX2 void qfmt__q4_z_dequantize_avx2(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += 19) {
        const __m256 s = _mm256_set1_ps(qfmt_f16_to_f32(qfmt__ld16(y)));
        const __m256i z = _mm256_set1_epi32(y[2] & 0x0F);
        __m256i q[4];
        load_nibbles(y + 3, q);
        for (int k = 0; k < 4; k++)
            _mm256_storeu_ps(x + 8 * k, _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_sub_epi32(q[k], z))));
    }
}

#else
typedef int qfmt__no_avx2_quant; /* not x86: dispatch.c never names these kernels */
#endif
