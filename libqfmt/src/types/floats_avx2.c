/* AVX2/F16C float conversions (internal/kernels.h): bit for bit the references of floats.c,
 * checked over every 16-bit input and a sweep of 32-bit ones (tests/test_types.c). F16 goes
 * through F16C, whose rounding (to nearest even), subnormals and NaN quieting are IEEE's, as
 * the scalar code's are; BF16 is integer arithmetic, the scalar steps on 8 lanes. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "internal/kernels.h"

#if QFMT__HAVE_AVX2_KERNELS
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* The scalar steps for the tails, through memcpy: no alignment is assumed. */
static inline uint16_t get16(const uint8_t *p, size_t i) { return (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)); }
static inline float getf(const uint8_t *p, size_t i)
{
    float f;
    memcpy(&f, p + 4 * i, 4);
    return f;
}
static inline void put16(uint8_t *p, size_t i, uint16_t h) { memcpy(p + 2 * i, &h, 2); }
static inline void putf(uint8_t *p, size_t i, float f) { memcpy(p + 4 * i, &f, 4); }
#define LOAD128(p) _mm_loadu_si128((const __m128i *)(const void *)(p))

AVX2 void qfmt__bf16_to_f32_avx2(const void *src_, float *dst_, size_t n)
{
    const uint8_t *src = (const uint8_t *)src_;
    uint8_t *dst = (uint8_t *)dst_;
    const __m256i abs = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
    const __m256i quiet = _mm256_set1_epi32(0x400000);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i x = _mm256_slli_epi32(_mm256_cvtepu16_epi32(LOAD128(src + 2 * i)), 16);
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs), inf);
        x = _mm256_or_si256(x, _mm256_and_si256(nan, quiet));
        _mm256_storeu_si256((__m256i *)(void *)(dst + 4 * i), x);
    }
    for (; i < n; i++) putf(dst, i, qfmt_bf16_to_f32(get16(src, i)));
}

AVX2 void qfmt__f16_to_f32_avx2(const void *src_, float *dst_, size_t n)
{
    const uint8_t *src = (const uint8_t *)src_;
    uint8_t *dst = (uint8_t *)dst_;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps((float *)(void *)(dst + 4 * i), _mm256_cvtph_ps(LOAD128(src + 2 * i)));
    for (; i < n; i++) putf(dst, i, qfmt_f16_to_f32(get16(src, i)));
}

/* 8 int32 lanes holding 16-bit values -> 8 packed uint16. */
AVX2 static inline __m128i narrow16(__m256i v)
{
    __m256i p = _mm256_packus_epi32(v, v); /* per 128-bit half: 4 values, twice */
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0x08));
}

AVX2 void qfmt__f32_to_bf16_avx2(const float *src_, void *dst_, size_t n)
{
    const uint8_t *src = (const uint8_t *)src_;
    uint8_t *dst = (uint8_t *)dst_;
    const __m256i abs = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7FFF), qbit = _mm256_set1_epi32(0x40);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(src + 4 * i));
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs), inf);
        __m256i odd = _mm256_and_si256(_mm256_srli_epi32(x, 16), one);
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, bias), odd), 16);
        __m256i q = _mm256_or_si256(_mm256_srli_epi32(x, 16), qbit);
        _mm_storeu_si128((__m128i *)(void *)(dst + 2 * i), narrow16(_mm256_blendv_epi8(r, q, nan)));
    }
    for (; i < n; i++) put16(dst, i, qfmt_f32_to_bf16(getf(src, i)));
}

AVX2 void qfmt__f32_to_f16_avx2(const float *src_, void *dst_, size_t n)
{
    const uint8_t *src = (const uint8_t *)src_;
    uint8_t *dst = (uint8_t *)dst_;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(dst + 2 * i),
                         _mm256_cvtps_ph(_mm256_loadu_ps((const float *)(const void *)(src + 4 * i)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) put16(dst, i, qfmt_f32_to_f16(getf(src, i)));
}

AVX2 size_t qfmt__first_nonfinite_avx2(const float *x, size_t n)
{
    const __m256i expo = _mm256_set1_epi32(0x7F800000);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i e = _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(x + i)), expo);
        if (_mm256_movemask_epi8(_mm256_cmpeq_epi32(e, expo))) break; /* the scalar loop finds which */
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7F800000u) == 0x7F800000u) return i;
    }
    return n;
}

#else
typedef int qfmt__no_avx2_floats; /* not x86: dispatch.c never names these kernels */
#endif
