/* SIMD kernels of the fast path (gemm.h), for x86-64:
 *   - every block type with AVX2 and with AVX-512 VNNI (256-bit vectors), 8 weight rows at a
 *     time, read from the rows as stored (ggml's super-block types 256 values at a time);
 *   - q4_0, q8_0, q4_k and q6_k repacked once at load (qfmt__gemm_pack: 8 rows interleaved per
 *     block, the same bytes), VNNI kernels of up to 4 activation rows per weight load, for
 *     decoding (memory-bound, prefetched) and for prompts;
 *   - AMX-INT8 tile products for q4_0, q8_0 and q4_k against 16 activation rows or more;
 *   - F16/BF16 rows read straight from the map (AVX2 dots; AVX-512 tiles for prompts).
 *
 * For block types every kernel returns the scalar reference's float bit for bit (ops.c;
 * tests/test_model.c checks it on the CPU it runs on): exact integer sums within a block, then
 * the reference's fp32 steps in the reference's order, vectorised across weight rows (and, for
 * AMX, activation rows) instead of within one. */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "qfmt.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <pthread.h>


#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))
#define AMX __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni,amx-tile,amx-int8")))
#define INLINE inline __attribute__((always_inline))
/* From this many activation rows on, repacking a strip of weight rows pays for itself. */
enum { STRIP_MIN_T = 8 };
#define RND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
/* Generation streams each weight once: software prefetch this many bytes ahead (past a row's
 * end into the next, which the hardware prefetchers do not cross a page boundary for). */
#define PREFETCH_AHEAD 2048

/* ---- CPU features -------------------------------------------------------------------------- */

bool qfmt__gemm_level_available(gemm_level l)
{
    if (l == GEMM_SCALAR) return true;
    unsigned f = qfmt_cpu_features(); /* cpu.c in libqfmt: the one place that runs CPUID */
    if (l == GEMM_AVX2) return (f & QFMT_CPU_AVX2) != 0;
    if (l == GEMM_AMX) return (f & QFMT_CPU_AMX_INT8) != 0;
    return l == GEMM_VNNI && (f & QFMT_CPU_AVX512_VNNI) != 0;
}

gemm_level qfmt__gemm_best_level(void)
{
    return qfmt__gemm_level_available(GEMM_AMX)    ? GEMM_AMX
           : qfmt__gemm_level_available(GEMM_VNNI) ? GEMM_VNNI
           : qfmt__gemm_level_available(GEMM_AVX2) ? GEMM_AVX2
                                                   : GEMM_SCALAR;
}

/* ---- Shared pieces ------------------------------------------------------------------------- */

AVX2 static INLINE float f16c(const uint8_t *p) { return _cvtsh_ss((unsigned short)(p[0] | (p[1] << 8))); }

AVX2 static INLINE float hsum_ps(__m256 v)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

AVX2 static INLINE int32_t hsum_epi32(__m256i v)
{
    __m128i a = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0x4E));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0xB1));
    return _mm_cvtsi128_si32(a);
}

/* 16 bytes of nibbles -> 32 codes in element order: low nibbles are elements 0..15. */
AVX2 static INLINE __m256i codes_q4(const uint8_t *p)
{
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)p), m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}

/* Unsigned bytes u <= 127 times signed bytes s, summed in groups of 4 into 8 int32 lanes
 * (maddubs pairs into int16: 2 * 127 * 128 cannot saturate). */
AVX2 static INLINE __m256i madd_us(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

#define LOAD256(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define LOAD128(p) _mm_loadu_si128((const __m128i *)(const void *)(p))

/* 16 bytes at p in both 128-bit lanes; 16 bytes at a in the low lane and at b in the high one. */
AVX2 static INLINE __m256i bcast128(const void *p) { return _mm256_broadcastsi128_si256(LOAD128(p)); }
AVX2 static INLINE __m256i pair128(const void *a, const void *b) { return _mm256_setr_m128i(LOAD128(a), LOAD128(b)); }

/* q5_0 / q5_1's fifth bits: each 128-bit lane of h holds a 32-bit qh in its low dword; the
 * shuffle `spread` copies byte j/8 (of 2) of it to byte j, and byte j becomes 0x10 where bit j%8
 * of that byte is set, else 0. */
AVX2 static INLINE __m256i bit4_bytes(__m256i h, __m256i spread)
{
    const __m256i others = _mm256_set1_epi64x(0x7FBFDFEFF7FBFDFE); /* byte j: all bits but bit j%8 */
    __m256i b = _mm256_or_si256(_mm256_shuffle_epi8(h, spread), others);
    return _mm256_and_si256(_mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1)), _mm256_set1_epi8(0x10));
}

/* An unaligned 32-bit load. */
static INLINE int ld_i32u(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* iq4_nl's and iq4_xs's codebook (libqfmt/src/types/iq4_nl.c), for pshufb in each 128-bit lane. */
#define IQ4_VALUES -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113

/* Shifts of 16-bit lanes by a count known only at run time. */
AVX2 static INLINE __m256i srl16(__m256i v, int n) { return _mm256_srl_epi16(v, _mm_cvtsi32_si128(n)); }
AVX2 static INLINE __m256i sll16(__m256i v, int n) { return _mm256_sll_epi16(v, _mm_cvtsi32_si128(n)); }

/* 8 x 8 transpose of 32-bit elements: out[k] lane i = in[i] lane k. */
AVX2 static INLINE void transpose8(__m256i r[8])
{
    __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    __m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    __m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    r[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    r[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    r[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    r[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    r[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    r[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    r[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    r[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}


/* ---- Activation quantization --------------------------------------------------------------- */

AVX2 void qfmt__act_quantize_avx2(const float *x, size_t n, xblock *out)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (size_t b = 0; b < n / 32; b++, x += 32) {
        __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16),
               v3 = _mm256_loadu_ps(x + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        /* as the reference: NaN or Inf anywhere poisons the block, a tiny block counts as zero */
        const __m256i expo = _mm256_set1_epi32(0x7F800000);
#define NONFINITE(v) _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), expo), expo)
        int bad = _mm256_movemask_epi8(_mm256_or_si256(_mm256_or_si256(NONFINITE(v0), NONFINITE(v1)),
                                                       _mm256_or_si256(NONFINITE(v2), NONFINITE(v3))));
#undef NONFINITE
        float amax = _mm_cvtss_f32(h), d = bad ? NAN : amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        if (bad || !(id <= FLT_MAX)) {
            memset(out[b].q, 0, sizeof out[b].q);
            out[b].d = out[b].s = bad ? NAN : 0.0f;
            out[b].sum = 0;
            out[b].hs[0] = out[b].hs[1] = 0;
            continue;
        }
        const __m256 mul = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), RND));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), RND));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), RND));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), RND));
        int32_t hs0 = hsum_epi32(_mm256_add_epi32(i0, i1)), hs1 = hsum_epi32(_mm256_add_epi32(i2, i3));
        /* packs work within 128-bit lanes; the permute puts the 32 bytes back in order */
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(void *)out[b].q, p);
        out[b].d = d;
        out[b].sum = hs0 + hs1;
        out[b].hs[0] = (int16_t)hs0;
        out[b].hs[1] = (int16_t)hs1;
        out[b].s = d * (float)out[b].sum;
    }
}

/* ---- 8 rows at a time, every block type (AVX2, and VNNI where the CPU has it) -----------------
 *
 * Every level gives the scalar reference's float, bit for bit: for each weight row the exact
 * integer sum of each block (zero point removed), then acc = fma(sum, dw * dx, acc) block after
 * block (q4_1 and q5_1 add fma(m, s, acc); the super-block types below, their min terms). Here
 * the 8 lane-wise partial sums of 8 rows fold into one vector whose lane i is row i's block
 * sum, so the fp32 steps run on 8 rows at once in the reference's order. That makes results independent of the level, of the thread count and of
 * how a sequence is split into calls (incremental decoding equals the full pass). */

/* Lane i of the result = sum of the 8 lanes of p[i]. */
AVX2 static INLINE __m256i fold8(const __m256i p[8])
{
    __m256i a = _mm256_hadd_epi32(p[0], p[1]), b = _mm256_hadd_epi32(p[2], p[3]);
    __m256i c = _mm256_hadd_epi32(p[4], p[5]), d = _mm256_hadd_epi32(p[6], p[7]);
    __m256i lo = _mm256_hadd_epi32(a, b), hi = _mm256_hadd_epi32(c, d); /* per 128-bit half: rows 0-3, 4-7 */
    return _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20), _mm256_permute2x128_si256(lo, hi, 0x31));
}

/* Lane i of *lo = sum of the low 4 lanes of p[i], of *hi = sum of its high 4 lanes. */
AVX2 static INLINE void fold8_halves(const __m256i p[8], __m256i *lo, __m256i *hi)
{
    __m256i a = _mm256_hadd_epi32(p[0], p[1]), b = _mm256_hadd_epi32(p[2], p[3]);
    __m256i c = _mm256_hadd_epi32(p[4], p[5]), d = _mm256_hadd_epi32(p[6], p[7]);
    __m256i l = _mm256_hadd_epi32(a, b), h = _mm256_hadd_epi32(c, d); /* per 128-bit half: rows 0-3, 4-7 */
    *lo = _mm256_permute2x128_si256(l, h, 0x20);
    *hi = _mm256_permute2x128_si256(l, h, 0x31);
}

/* Lane i of the result = sum of row i's 4 lanes, where v[k] holds rows 2k (low half) and 2k+1. */
AVX2 static INLINE __m256i fold_pairs(const __m256i v[4])
{
    __m256i c = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    return _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)); /* was 0 2 4 6 1 3 5 7 */
}

/* The f16 at byte `off` of each of the 8 rows, as 8 floats (built in registers: a store of 8
 * halves read back as one vector would stall store-to-load forwarding). */
static INLINE short ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return (short)v;
}
AVX2 static INLINE __m256 gather_f16(const uint8_t *const wr[8], size_t off)
{
    __m128i h = _mm_setr_epi16(ld16(wr[0] + off), ld16(wr[1] + off), ld16(wr[2] + off), ld16(wr[3] + off),
                               ld16(wr[4] + off), ld16(wr[5] + off), ld16(wr[6] + off), ld16(wr[7] + off));
    return _mm256_cvtph_ps(h);
}

/* Bytes per block (per super-block of 256 for the K types and iq4_xs). */
static INLINE size_t block_bytes(uint32_t type)
{
    switch (type) {
    case QFMT_TYPE_Q8_0: return 34;
    case QFMT_TYPE_Q4_0: return 18;
    case QFMT_TYPE_Q4_1: return 20;
    case QFMT_TYPE_Q8_Z: return 35;
    case QFMT_TYPE_Q4_Z: return 19;
    case QFMT_TYPE_Q5_0: return 22;
    case QFMT_TYPE_Q5_1: return 24;
    case QFMT_TYPE_IQ4_NL: return 18;
    case QFMT_TYPE_Q2_K: return 84;
    case QFMT_TYPE_Q3_K: return 110;
    case QFMT_TYPE_Q4_K: return 144;
    case QFMT_TYPE_Q5_K: return 176;
    case QFMT_TYPE_Q6_K: return 210;
    default: return 136; /* iq4_xs */
    }
}

/* The 8 rows' integer sums of one block against activation block x, zero points removed, with
 * the level's integer dot product (DOT(u, s): unsigned codes <= 127 or any, times signed q). */
#define BLOCK_SUMS(NAME, ATTR, DOT_SMALL, DOT_U8, DOT2)                                                           \
    ATTR static INLINE __m256i NAME(uint32_t type, const uint8_t *const wr[8], size_t off, const xblock *x)       \
    {                                                                                                             \
        __m256i p[8], q = LOAD256(x->q);                                                                          \
        switch (type) {                                                                                           \
        case QFMT_TYPE_Q8_0:                                                                                      \
            for (int i = 0; i < 8; i++) {                                                                         \
                __m256i w = LOAD256(wr[i] + off + 2); /* |w| * sign(q, w): exact, q is never -128 */              \
                p[i] = DOT_SMALL(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w));                                 \
            }                                                                                                     \
            return fold8(p);                                                                                      \
        case QFMT_TYPE_Q4_0:                                                                                      \
        case QFMT_TYPE_Q4_1:                                                                                      \
        case QFMT_TYPE_Q4_Z: {                                                                                    \
            /* two rows per vector: row 2k's 16 nibble bytes in the low half, row 2k+1's in the high; low     \
             * nibbles meet q[0..15], high nibbles q[16..31], each broadcast to both halves */                   \
            size_t co = off + (type == QFMT_TYPE_Q4_0 ? 2 : type == QFMT_TYPE_Q4_1 ? 4 : 3);                     \
            const __m256i m = _mm256_set1_epi8(0x0F);                                                            \
            __m256i qlo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)x->q));     \
            __m256i qhi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(x->q + 16))); \
            __m256i v[4];                                                                                         \
            for (int k = 0; k < 4; k++) {                                                                         \
                __m256i b = _mm256_inserti128_si256(                                                              \
                    _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(wr[2 * k] + co))),      \
                    _mm_loadu_si128((const __m128i *)(const void *)(wr[2 * k + 1] + co)), 1);                     \
                v[k] = DOT2(_mm256_and_si256(b, m), qlo, _mm256_and_si256(_mm256_srli_epi16(b, 4), m), qhi);      \
            }                                                                                                     \
            __m256i s = fold_pairs(v);                                                                            \
            if (type == QFMT_TYPE_Q4_0) return _mm256_sub_epi32(s, _mm256_set1_epi32(8 * x->sum));               \
            if (type == QFMT_TYPE_Q4_1) return s;                                                                 \
            __m256i zv = _mm256_and_si256(_mm256_setr_epi32(wr[0][off + 2], wr[1][off + 2], wr[2][off + 2],        \
                                                            wr[3][off + 2], wr[4][off + 2], wr[5][off + 2],        \
                                                            wr[6][off + 2], wr[7][off + 2]),                       \
                                          _mm256_set1_epi32(0x0F));                                               \
            return _mm256_sub_epi32(s, _mm256_mullo_epi32(zv, _mm256_set1_epi32(x->sum)));                        \
        }                                                                                                         \
        case QFMT_TYPE_Q5_0:                                                                                      \
        case QFMT_TYPE_Q5_1: {                                                                                    \
            /* codes 0..31: q4_0's nibbles, two rows per vector as above, and bit 4 from the 32-bit qh (bits  \
             * 0..15 for the low nibbles, 16..31 for the high ones) */                                         \
            size_t ho = off + (type == QFMT_TYPE_Q5_0 ? 2 : 4);                                                   \
            const __m256i m = _mm256_set1_epi8(0x0F), qlo = bcast128(x->q), qhi = bcast128(x->q + 16);           \
            const __m256i slo = _mm256_setr_epi64x(0, 0x0101010101010101, 0, 0x0101010101010101);                \
            const __m256i shi = _mm256_setr_epi64x(0x0202020202020202, 0x0303030303030303, 0x0202020202020202,    \
                                                   0x0303030303030303);                                           \
            __m256i v[4];                                                                                         \
            for (int k = 0; k < 4; k++) {                                                                         \
                __m256i b = pair128(wr[2 * k] + ho + 4, wr[2 * k + 1] + ho + 4);                                  \
                __m256i h = _mm256_setr_m128i(_mm_cvtsi32_si128(ld_i32u(wr[2 * k] + ho)),                         \
                                              _mm_cvtsi32_si128(ld_i32u(wr[2 * k + 1] + ho)));                    \
                __m256i lo = _mm256_or_si256(_mm256_and_si256(b, m), bit4_bytes(h, slo));                         \
                __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m), bit4_bytes(h, shi));   \
                v[k] = DOT2(lo, qlo, hi, qhi);                                                                    \
            }                                                                                                     \
            __m256i s = fold_pairs(v);                                                                            \
            return type == QFMT_TYPE_Q5_0 ? _mm256_sub_epi32(s, _mm256_set1_epi32(16 * x->sum)) : s;             \
        }                                                                                                         \
        case QFMT_TYPE_IQ4_NL: { /* codebook values v, |v| <= 127: |v| * sign(q, v); two rows per vector */       \
            const __m256i kv = _mm256_setr_epi8(IQ4_VALUES, IQ4_VALUES), m = _mm256_set1_epi8(0x0F);             \
            const __m256i qlo = bcast128(x->q), qhi = bcast128(x->q + 16);                                        \
            __m256i v[4];                                                                                         \
            for (int k = 0; k < 4; k++) {                                                                         \
                __m256i b = pair128(wr[2 * k] + off + 2, wr[2 * k + 1] + off + 2);                                \
                __m256i lo = _mm256_shuffle_epi8(kv, _mm256_and_si256(b, m));                                     \
                __m256i hi = _mm256_shuffle_epi8(kv, _mm256_and_si256(_mm256_srli_epi16(b, 4), m));               \
                v[k] = DOT2(_mm256_abs_epi8(lo), _mm256_sign_epi8(qlo, lo), _mm256_abs_epi8(hi),                  \
                            _mm256_sign_epi8(qhi, hi));                                                           \
            }                                                                                                     \
            return fold_pairs(v);                                                                                 \
        }                                                                                                         \
        case QFMT_TYPE_Q8_Z: {                                                                                    \
            for (int i = 0; i < 8; i++) p[i] = DOT_U8(LOAD256(wr[i] + off + 3), q);                               \
            __m256i zv = _mm256_setr_epi32(wr[0][off + 2], wr[1][off + 2], wr[2][off + 2], wr[3][off + 2],         \
                                           wr[4][off + 2], wr[5][off + 2], wr[6][off + 2], wr[7][off + 2]);        \
            return _mm256_sub_epi32(fold8(p), _mm256_mullo_epi32(zv, _mm256_set1_epi32(x->sum)));                 \
        }                                                                                                         \
        }                                                                                                         \
        return _mm256_setzero_si256();                                                                            \
    }

/* AVX2: maddubs pairs into int16 (no saturation for codes <= 127); codes up to 255 go in as
 * two nibble halves. */
AVX2 static INLINE __m256i dot_u8_avx2(__m256i u, __m256i q)
{
    const __m256i m = _mm256_set1_epi8(0x0F);
    __m256i lo = madd_us(_mm256_and_si256(u, m), q), hi = madd_us(_mm256_and_si256(_mm256_srli_epi16(u, 4), m), q);
    return _mm256_add_epi32(lo, _mm256_slli_epi32(hi, 4));
}
AVX2 static INLINE __m256i dot2_avx2(__m256i a, __m256i qa, __m256i b, __m256i qb)
{
    return _mm256_add_epi32(madd_us(a, qa), madd_us(b, qb));
}
BLOCK_SUMS(block_sums_avx2, AVX2, madd_us, dot_u8_avx2, dot2_avx2)

/* VNNI: vpdpbusd sums groups of 4 straight into int32, for any unsigned byte. */
VNNI static INLINE __m256i dot_vnni(__m256i u, __m256i q) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, q); }
VNNI static INLINE __m256i dot2_vnni(__m256i a, __m256i qa, __m256i b, __m256i qb)
{
    return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), a, qa), b, qb);
}
BLOCK_SUMS(block_sums_vnni, VNNI, dot_vnni, dot_vnni, dot2_vnni)

/* One loop per block type (TYPE a constant, so each loop keeps its vectors in registers). */
#define ROWS8_LOOP(NAME, ATTR, SUMS, TYPE)                                                                         \
    ATTR static void NAME(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,  \
                          const float *bias)                                                                       \
    {                                                                                                              \
        size_t nb = w->cols / 32, bb = block_bytes(TYPE);                                                          \
        for (size_t r = r0; r < r1; r += 8) {                                                                      \
            size_t nr = r1 - r < 8 ? r1 - r : 8;                                                                   \
            const uint8_t *wr[8];                                                                                  \
            for (size_t i = 0; i < 8; i++) wr[i] = w->data + (r + (i < nr ? i : 0)) * w->row_bytes;              \
            for (size_t t = 0; t < T; t++) {                                                                       \
                const xblock *x = xq + t * nb;                                                                     \
                __m256 acc = _mm256_setzero_ps();                                                                  \
                for (size_t b = 0; b < nb; b++) {                                                                  \
                    __m256i s = SUMS(TYPE, wr, b * bb, &x[b]);                                                     \
                    __m256 sc = _mm256_mul_ps(gather_f16(wr, b * bb), _mm256_set1_ps(x[b].d));                     \
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc);                                         \
                    if (TYPE == QFMT_TYPE_Q4_1 || TYPE == QFMT_TYPE_Q5_1)                                          \
                        acc = _mm256_fmadd_ps(gather_f16(wr, b * bb + 2), _mm256_set1_ps(x[b].s), acc);           \
                }                                                                                                  \
                float lanes[8];                                                                                    \
                _mm256_storeu_ps(lanes, acc);                                                                      \
                for (size_t i = 0; i < nr; i++) y[t * ldy + r + i] = lanes[i] + (bias ? bias[r + i] : 0.0f);      \
            }                                                                                                      \
        }                                                                                                          \
    }

/* ---- Super-blocks of 256 (q2_k .. q6_k, iq4_xs), 8 rows at a time --------------------------
 *
 * Each activation block b meets 32 weights of a super-block: one sub-block of 32 (q4_k, q5_k,
 * iq4_xs) or two of 16 (q2_k, q3_k, q6_k: the low 128-bit lane of the vectors holds the first,
 * the high lane the second). Per row, maddubs pairs codes with activations into int16 (pairs
 * at most 2*63*127, or 2*127*127 for the codebook's |v| * sign(q, v): no saturation) and madd
 * sums them into 8 int32 lanes; fold8 (fold8_halves for two sub-blocks of 16, or for two blocks
 * of iq4_xs side by side) gives vectors whose lane i is row i's code sum, and the sub-block
 * scales multiply those as int32 (mullo; the scales transposed once per super-block so that
 * lane i holds row i's): the reference's isum_b (ops.c), exact, the same integer. The fp32
 * steps are the reference's, vectorised across the 8 rows.
 *
 * The min terms of q2_k, q4_k and q5_k (msum_b = -(mn0 hs0 + mn1 hs1), one mn for both halves
 * of a sub-block of 32) come from one madd per row and super-block: the row's mins as int16
 * pairs, dword b = (mn of b's first 16 values, of its last 16), times the pairs (-hs0, -hs1) of
 * the 8 activation blocks; an 8 x 8 transpose then gives vectors whose lane i is row i's. */

/* The 8 activation blocks' pairs (-hs0, -hs1), dword b for block b. */
static INLINE int32_t ld_hs(const xblock *x)
{
    int32_t v;
    memcpy(&v, x->hs, 4);
    return v;
}
AVX2 static INLINE __m256i neg_hs(const xblock *x)
{
    __m256i v = _mm256_setr_epi32(ld_hs(&x[0]), ld_hs(&x[1]), ld_hs(&x[2]), ld_hs(&x[3]), ld_hs(&x[4]), ld_hs(&x[5]),
                                  ld_hs(&x[6]), ld_hs(&x[7]));
    return _mm256_sub_epi16(_mm256_setzero_si256(), v);
}

/* The reference's steps for block b: isum against d * x.d, then msum (if any) against dmin * x.d. */
AVX2 static INLINE __m256 fma_sums(__m256 acc, __m256i isum, __m256 d, float xd)
{
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, _mm256_set1_ps(xd)), acc);
}

/* q4_k / q5_k: the 12 scale bytes at p + 4 -> bytes 0..7 the 6-bit scales, 8..15 the mins
 * (ops.c's scale_min_k4); reads p[0..16). */
AVX2 static INLINE __m128i k4_scales(const uint8_t *p)
{
    __m128i q = _mm_srli_si128(LOAD128(p), 4);
    __m128i a = _mm_shuffle_epi8(q, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    __m128i b = _mm_shuffle_epi8(q, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    __m128i lo = _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
    __m128i top = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30)); /* bits 6-7 of b -> 4-5 */
    return _mm_or_si128(_mm_or_si128(lo, hi), top);
}

AVX2 static INLINE __m256 sb8_q45_k(const uint8_t *const wr[8], size_t off, const xblock *x, __m256 acc, bool five)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10), one = _mm256_set1_epi16(1), hsn = neg_hs(x);
    __m256i st[8], mt[8];
    for (int i = 0; i < 8; i++) {
        __m128i sm = k4_scales(wr[i] + off);
        st[i] = _mm256_cvtepu8_epi32(sm);                         /* dword b = sc_b */
        __m256i mn = _mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8)); /* dword b = (mn_b, 0) */
        mt[i] = _mm256_madd_epi16(_mm256_or_si256(mn, _mm256_slli_epi32(mn, 16)), hsn);
    }
    transpose8(st); /* st[b] lane i: row i's scale of sub-block b */
    transpose8(mt);
    const __m256 d = gather_f16(wr, off), dmin = gather_f16(wr, off + 2);
    const size_t ql = off + (five ? 48 : 16);
    for (int j = 0; j < 8; j += 2) { /* one 32-byte chunk: block j in the low nibbles, j + 1 in the high */
        const __m256i q0 = LOAD256(x[j].q), q1 = LOAD256(x[j + 1].q);
        const __m256i h0 = _mm256_set1_epi8((char)(1u << j)), h1 = _mm256_set1_epi8((char)(2u << j));
        __m256i p0[8], p1[8];
        for (int i = 0; i < 8; i++) {
            __m256i c = LOAD256(wr[i] + ql + 16 * j);
            __m256i u0 = _mm256_and_si256(c, m4), u1 = _mm256_and_si256(_mm256_srli_epi16(c, 4), m4);
            if (five) { /* bit j of qh byte l is bit 4 of value l of block j */
                __m256i h = LOAD256(wr[i] + off + 16);
                u0 = _mm256_or_si256(u0, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, h0), h0), b4));
                u1 = _mm256_or_si256(u1, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, h1), h1), b4));
            }
            p0[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(u0, q0), one);
            p1[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(u1, q1), one);
        }
        acc = fma_sums(acc, _mm256_mullo_epi32(fold8(p0), st[j]), d, x[j].d);
        acc = fma_sums(acc, mt[j], dmin, x[j].d);
        acc = fma_sums(acc, _mm256_mullo_epi32(fold8(p1), st[j + 1]), d, x[j + 1].d);
        acc = fma_sums(acc, mt[j + 1], dmin, x[j + 1].d);
    }
    return acc;
}
AVX2 static INLINE __m256 sb8_q4_k(const uint8_t *const wr[8], size_t off, const xblock *x, __m256 acc)
{
    return sb8_q45_k(wr, off, x, acc, false);
}
AVX2 static INLINE __m256 sb8_q5_k(const uint8_t *const wr[8], size_t off, const xblock *x, __m256 acc)
{
    return sb8_q45_k(wr, off, x, acc, true);
}

/* The 16 sub-block scales of each of the 8 rows (bytes 0..15 of tab[i], signed or not) as
 * st[k], lane i = row i's scale of sub-block k. */
AVX2 static INLINE void scales16_t(const __m128i tab[8], bool sign, __m256i st[16])
{
    for (int i = 0; i < 8; i++) {
        __m128i hi = _mm_srli_si128(tab[i], 8);
        st[i] = sign ? _mm256_cvtepi8_epi32(tab[i]) : _mm256_cvtepu8_epi32(tab[i]);
        st[8 + i] = sign ? _mm256_cvtepi8_epi32(hi) : _mm256_cvtepu8_epi32(hi);
    }
    transpose8(st);
    transpose8(st + 8);
}

/* Block j's isum from the row sums of its two halves (fold8_halves): s0 * sc_2j + s1 * sc_2j+1. */
AVX2 static INLINE __m256i scale_halves(__m256i s0, __m256i s1, const __m256i st[16], int j)
{
    return _mm256_add_epi32(_mm256_mullo_epi32(s0, st[2 * j]), _mm256_mullo_epi32(s1, st[2 * j + 1]));
}

AVX2 static INLINE __m256 sb8_q2_k(const uint8_t *const wr[8], size_t off, const xblock *x, __m256 acc)
{
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m256i m2 = _mm256_set1_epi8(3), one = _mm256_set1_epi16(1), hsn = neg_hs(x);
    __m128i tab[8];
    __m256i st[16], mt[8];
    for (int i = 0; i < 8; i++) {
        __m128i s = LOAD128(wr[i] + off); /* sub-block k: scale s[k] & 15, min s[k] >> 4 */
        tab[i] = _mm_and_si128(s, m4);
        mt[i] = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), m4)), hsn);
    }
    scales16_t(tab, false, st);
    transpose8(mt);
    const __m256 d = gather_f16(wr, off + 80), dmin = gather_f16(wr, off + 82);
    for (int j = 0; j < 8; j++) {
        const __m256i q = LOAD256(x[j].q);
        __m256i p[8];
        for (int i = 0; i < 8; i++) {
            __m256i u = _mm256_and_si256(srl16(LOAD256(wr[i] + off + 16 + 32 * (j / 4)), 2 * (j % 4)), m2);
            p[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), one);
        }
        __m256i s0, s1;
        fold8_halves(p, &s0, &s1);
        acc = fma_sums(acc, scale_halves(s0, s1, st, j), d, x[j].d);
        acc = fma_sums(acc, mt[j], dmin, x[j].d);
    }
    return acc;
}

/* q3_k: the 12 scale bytes at p + 96 -> 16 signed scales (6-bit - 32, ops.c's q3_k_scale);
 * reads p[94..110). */
AVX2 static INLINE __m128i q3_k_scales(const uint8_t *p)
{
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m128i v = _mm_srli_si128(LOAD128(p + 94), 2);
    __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
    __m128i h = _mm_shuffle_epi8(v, _mm_setr_epi8(8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11));
    h = _mm_and_si128(_mm_srlv_epi32(h, _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3)); /* scale j: bits 2(j/4) */
    return _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(h, 4)), _mm_set1_epi8(32));
}

/* q3_k, q6_k: codes u = v + Z (Z = 4, 32) against q, then Z * hs removed from each half's row
 * sum: exact, sum_half u q <= 16*63*127. */
AVX2 static INLINE __m256 sb8_q3_k(const uint8_t *const wr[8], size_t off, const xblock *x, __m256 acc)
{
    const __m256i m2 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4), one = _mm256_set1_epi16(1);
    __m128i tab[8];
    __m256i st[16];
    for (int i = 0; i < 8; i++) tab[i] = q3_k_scales(wr[i] + off);
    scales16_t(tab, true, st);
    const __m256 d = gather_f16(wr, off + 108);
    for (int j = 0; j < 8; j++) {
        const __m256i q = LOAD256(x[j].q), hb = _mm256_set1_epi8((char)(1u << j));
        __m256i p[8];
        for (int i = 0; i < 8; i++) {
            __m256i lo = _mm256_and_si256(srl16(LOAD256(wr[i] + off + 32 + 32 * (j / 4)), 2 * (j % 4)), m2);
            __m256i h = _mm256_and_si256(LOAD256(wr[i] + off), hb); /* hmask: bit j of byte l, value l */
            __m256i u = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(h, hb), four)); /* v + 4 */
            p[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), one);
        }
        __m256i s0, s1;
        fold8_halves(p, &s0, &s1);
        s0 = _mm256_sub_epi32(s0, _mm256_set1_epi32(4 * x[j].hs[0]));
        s1 = _mm256_sub_epi32(s1, _mm256_set1_epi32(4 * x[j].hs[1]));
        acc = fma_sums(acc, scale_halves(s0, s1, st, j), d, x[j].d);
    }
    return acc;
}

AVX2 static INLINE __m256 sb8_q6_k(const uint8_t *const wr[8], size_t off, const xblock *x, __m256 acc)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30), one = _mm256_set1_epi16(1);
    __m128i tab[8];
    __m256i st[16];
    for (int i = 0; i < 8; i++) tab[i] = LOAD128(wr[i] + off + 192); /* int8 scales */
    scales16_t(tab, true, st);
    const __m256 d = gather_f16(wr, off + 208);
    for (int j = 0; j < 8; j++) {
        const int h = j / 4, k = j % 4;
        const __m256i q = LOAD256(x[j].q);
        __m256i p[8];
        for (int i = 0; i < 8; i++) {
            __m256i c = LOAD256(wr[i] + off + 64 * h + 32 * (k & 1)), hq = LOAD256(wr[i] + off + 128 + 32 * h);
            __m256i lo = _mm256_and_si256(k >> 1 ? _mm256_srli_epi16(c, 4) : c, m4);
            /* the top two bits: bits 2k, 2k+1 of qh -> bits 4, 5 */
            __m256i hi = _mm256_and_si256(k < 3 ? sll16(hq, 4 - 2 * k) : _mm256_srli_epi16(hq, 2), m2);
            p[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_or_si256(lo, hi), q), one);
        }
        __m256i s0, s1;
        fold8_halves(p, &s0, &s1);
        s0 = _mm256_sub_epi32(s0, _mm256_set1_epi32(32 * x[j].hs[0]));
        s1 = _mm256_sub_epi32(s1, _mm256_set1_epi32(32 * x[j].hs[1]));
        acc = fma_sums(acc, scale_halves(s0, s1, st, j), d, x[j].d);
    }
    return acc;
}

/* iq4_xs: the 8 sub-block scales ls - 32 as signed bytes 0..7; reads p[2..8). */
AVX2 static INLINE __m128i iq4_xs_scales(const uint8_t *p)
{
    uint32_t sl;
    memcpy(&sl, p + 4, 4);
    uint64_t h = (uint64_t)(p[2] | p[3] << 8); /* 2 bits per sub-block -> byte j = bits 2j, 2j+1 */
    h = (h | h << 24) & 0x000000FF000000FFull;
    h = (h | h << 12) & 0x000F000F000F000Full;
    h = (h | h << 6) & 0x0303030303030303ull;
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m128i l = _mm_cvtsi32_si128((int)sl);
    __m128i n = _mm_unpacklo_epi8(_mm_and_si128(l, m4), _mm_and_si128(_mm_srli_epi16(l, 4), m4));
    return _mm_sub_epi8(_mm_or_si128(n, _mm_slli_epi16(_mm_cvtsi64_si128((long long)h), 4)), _mm_set1_epi8(32));
}

/* iq4_xs: two sub-blocks (32 bytes of codes) per row and step, sub-block j's values 0..15 and
 * j+1's in the low nibbles (low and high lane), their values 16..31 in the high nibbles, so the
 * low lanes of the row sums are block j's, the high lanes block j+1's (fold8_halves). */
AVX2 static INLINE __m256 sb8_iq4_xs(const uint8_t *const wr[8], size_t off, const xblock *x, __m256 acc)
{
    const __m256i kv = _mm256_setr_epi8(IQ4_VALUES, IQ4_VALUES), m4 = _mm256_set1_epi8(0x0F);
    const __m256i one = _mm256_set1_epi16(1);
    __m256i st[8];
    for (int i = 0; i < 8; i++) st[i] = _mm256_cvtepi8_epi32(iq4_xs_scales(wr[i] + off));
    transpose8(st);
    const __m256 d = gather_f16(wr, off);
    for (int j = 0; j < 8; j += 2) {
        const __m256i qa = pair128(x[j].q, x[j + 1].q), qb = pair128(x[j].q + 16, x[j + 1].q + 16);
        __m256i p[8];
        for (int i = 0; i < 8; i++) {
            __m256i c = LOAD256(wr[i] + off + 8 + 16 * j);
            __m256i lo = _mm256_shuffle_epi8(kv, _mm256_and_si256(c, m4));
            __m256i hi = _mm256_shuffle_epi8(kv, _mm256_and_si256(_mm256_srli_epi16(c, 4), m4));
            __m256i tl = _mm256_maddubs_epi16(_mm256_abs_epi8(lo), _mm256_sign_epi8(qa, lo));
            __m256i th = _mm256_maddubs_epi16(_mm256_abs_epi8(hi), _mm256_sign_epi8(qb, hi));
            p[i] = _mm256_add_epi32(_mm256_madd_epi16(tl, one), _mm256_madd_epi16(th, one));
        }
        __m256i s0, s1;
        fold8_halves(p, &s0, &s1);
        acc = fma_sums(acc, _mm256_mullo_epi32(s0, st[j]), d, x[j].d);
        acc = fma_sums(acc, _mm256_mullo_epi32(s1, st[j + 1]), d, x[j + 1].d);
    }
    return acc;
}

/* One loop per super-block type, as ROWS8_LOOP. */
#define SUPER_LOOP(NAME, ATTR, SB, TYPE)                                                                           \
    ATTR static void NAME(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,  \
                          const float *bias)                                                                       \
    {                                                                                                              \
        size_t nb = w->cols / 32, bb = block_bytes(TYPE);                                                          \
        for (size_t r = r0; r < r1; r += 8) {                                                                      \
            size_t nr = r1 - r < 8 ? r1 - r : 8;                                                                   \
            const uint8_t *wr[8];                                                                                  \
            for (size_t i = 0; i < 8; i++) wr[i] = w->data + (r + (i < nr ? i : 0)) * w->row_bytes;              \
            for (size_t t = 0; t < T; t++) {                                                                       \
                const xblock *x = xq + t * nb;                                                                     \
                __m256 acc = _mm256_setzero_ps();                                                                  \
                for (size_t b = 0; b < nb; b += 8) acc = SB(wr, b / 8 * bb, x + b, acc);                          \
                float lanes[8];                                                                                    \
                _mm256_storeu_ps(lanes, acc);                                                                      \
                for (size_t i = 0; i < nr; i++) y[t * ldy + r + i] = lanes[i] + (bias ? bias[r + i] : 0.0f);      \
            }                                                                                                      \
        }                                                                                                          \
    }

#define GEMM_ROWS8(NAME, ATTR, SUMS)                                                                               \
    ROWS8_LOOP(NAME##_q8_0, ATTR, SUMS, QFMT_TYPE_Q8_0)                                                            \
    ROWS8_LOOP(NAME##_q4_0, ATTR, SUMS, QFMT_TYPE_Q4_0)                                                            \
    ROWS8_LOOP(NAME##_q4_1, ATTR, SUMS, QFMT_TYPE_Q4_1)                                                            \
    ROWS8_LOOP(NAME##_q8_z, ATTR, SUMS, QFMT_TYPE_Q8_Z)                                                            \
    ROWS8_LOOP(NAME##_q4_z, ATTR, SUMS, QFMT_TYPE_Q4_Z)                                                            \
    ROWS8_LOOP(NAME##_q5_0, ATTR, SUMS, QFMT_TYPE_Q5_0)                                                            \
    ROWS8_LOOP(NAME##_q5_1, ATTR, SUMS, QFMT_TYPE_Q5_1)                                                            \
    ROWS8_LOOP(NAME##_iq4_nl, ATTR, SUMS, QFMT_TYPE_IQ4_NL)                                                        \
    SUPER_LOOP(NAME##_q2_k, ATTR, sb8_q2_k, QFMT_TYPE_Q2_K)                                                        \
    SUPER_LOOP(NAME##_q3_k, ATTR, sb8_q3_k, QFMT_TYPE_Q3_K)                                                        \
    SUPER_LOOP(NAME##_q4_k, ATTR, sb8_q4_k, QFMT_TYPE_Q4_K)                                                        \
    SUPER_LOOP(NAME##_q5_k, ATTR, sb8_q5_k, QFMT_TYPE_Q5_K)                                                        \
    SUPER_LOOP(NAME##_q6_k, ATTR, sb8_q6_k, QFMT_TYPE_Q6_K)                                                        \
    SUPER_LOOP(NAME##_iq4_xs, ATTR, sb8_iq4_xs, QFMT_TYPE_IQ4_XS)                                                  \
    static void NAME(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,       \
                     const float *bias)                                                                            \
    {                                                                                                              \
        switch (w->type) {                                                                                         \
        case QFMT_TYPE_Q8_0: NAME##_q8_0(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q4_0: NAME##_q4_0(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q4_1: NAME##_q4_1(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q8_Z: NAME##_q8_z(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q4_Z: NAME##_q4_z(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q5_0: NAME##_q5_0(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q5_1: NAME##_q5_1(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_IQ4_NL: NAME##_iq4_nl(w, xq, T, r0, r1, y, ldy, bias); break;                               \
        case QFMT_TYPE_Q2_K: NAME##_q2_k(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q3_K: NAME##_q3_k(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q4_K: NAME##_q4_k(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q5_K: NAME##_q5_k(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q6_K: NAME##_q6_k(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_IQ4_XS: NAME##_iq4_xs(w, xq, T, r0, r1, y, ldy, bias); break;                               \
        }                                                                                                          \
    }
GEMM_ROWS8(rows8_avx2, AVX2, block_sums_avx2)
GEMM_ROWS8(rows8_vnni, VNNI, block_sums_vnni)

void qfmt__gemm_q_avx2(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                 const float *bias)
{
    rows8_avx2(w, xq, T, r0, r1, y, ldy, bias);
}

/* ---- VNNI, many activation rows: weights repacked so that a vector lane is a weight row ----

 * For a prompt, each weight row meets dozens of activation rows, so it pays to repack a strip of
 * 8 rows once: per block, 8 vectors whose lane i holds 4 consecutive codes of row i (unsigned:
 * q4_0 codes 0..15, q8_0 values + 128). One vpdpbusd with 4 activation bytes broadcast to every
 * lane then serves 8 rows, and after 8 of them lane i holds row i's integer block sum, exact;
 * starting the lanes at -Z * (sum of the block's activations) removes the zero point Z (8 for
 * q4_0, 128 for q8_0). The block scales multiply all 8 rows at once, with no horizontal sums. */

typedef struct {
    __m256i codes[8]; /* [group of 4 elements]: lane i = row i */
    __m256 dw;        /* lane i: row i's block scale */
} strip_block;

/* Repacks rows wr[0..8) (spare entries repeat a real row) into nb strip blocks. */
VNNI static void pack_strip(uint32_t type, const uint8_t *const wr[8], size_t nb, strip_block *out)
{
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (size_t b = 0; b < nb; b++) {
        __m256i r[8];
        float dw[8];
        for (int i = 0; i < 8; i++) {
            if (type == QFMT_TYPE_Q4_0) {
                const uint8_t *p = wr[i] + b * 18;
                r[i] = codes_q4(p + 2);
                dw[i] = f16c(p);
            } else {
                const uint8_t *p = wr[i] + b * 34;
                r[i] = _mm256_xor_si256(LOAD256(p + 2), flip);
                dw[i] = f16c(p);
            }
        }
        transpose8(r);
        for (int k = 0; k < 8; k++) _mm256_store_si256(&out[b].codes[k], r[k]);
        out[b].dw = _mm256_loadu_ps(dw);
    }
}

static INLINE int32_t load_i32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* 8 rows (a strip) x nt activation rows; out[j] lane i = row i against activation row j. */
VNNI static INLINE void strip_tile(const strip_block *sb, const xblock *const xr[4], size_t nb, int nt, int32_t zero,
                                   __m256 out[4])
{
    __m256 acc[4];
    for (int j = 0; j < 4; j++) acc[j] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        const strip_block *s = &sb[b];
        __m256i lo[4], hi[4];
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++) {
            const xblock *xb = xr[j] + b;
            lo[j] = _mm256_set1_epi32(-zero * xb->sum);
            hi[j] = _mm256_setzero_si256();
        }
        /* two chains per activation row hide vpdpbusd's latency */
#pragma GCC unroll 8
        for (int k = 0; k < 8; k += 2) {
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++) {
                const int8_t *q = xr[j][b].q;
                lo[j] = _mm256_dpbusd_epi32(lo[j], s->codes[k], _mm256_set1_epi32(load_i32(q + 4 * k)));
                hi[j] = _mm256_dpbusd_epi32(hi[j], s->codes[k + 1], _mm256_set1_epi32(load_i32(q + 4 * k + 4)));
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++) {
            __m256 sc = _mm256_mul_ps(s->dw, _mm256_set1_ps(xr[j][b].d));
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(lo[j], hi[j])), sc, acc[j]);
        }
    }
    for (int j = 0; j < nt; j++) out[j] = acc[j];
}

#define STRIP_FN(nt)                                                                                           \
    VNNI static void strip_tile_##nt(const strip_block *sb, const xblock *const xr[4], size_t nb, int32_t zero, \
                                     __m256 out[4])                                                            \
    {                                                                                                          \
        strip_tile(sb, xr, nb, nt, zero, out);                                                                 \
    }
STRIP_FN(1)
STRIP_FN(2)
STRIP_FN(3)
STRIP_FN(4)

typedef void (*strip_fn)(const strip_block *sb, const xblock *const xr[4], size_t nb, int32_t zero, __m256 out[4]);

/* Rows [r0, r1) against all T activation rows, strip by strip; false if no scratch memory. */
VNNI static bool gemm_strips(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                             const float *bias)
{
    static const strip_fn fns[4] = {strip_tile_1, strip_tile_2, strip_tile_3, strip_tile_4};
    size_t nb = w->cols / 32;
    strip_block *sb = aligned_alloc(32, nb * sizeof *sb);
    if (!sb) return false;
    int32_t zero = w->type == QFMT_TYPE_Q4_0 ? 8 : 128;
    for (size_t r = r0; r < r1; r += 8) {
        size_t nr = r1 - r < 8 ? r1 - r : 8;
        const uint8_t *wr[8];
        for (size_t i = 0; i < 8; i++) wr[i] = w->data + (r + (i < nr ? i : 0)) * w->row_bytes;
        pack_strip(w->type, wr, nb, sb);
        for (size_t t = 0; t < T; t += 4) {
            size_t nt = T - t < 4 ? T - t : 4;
            const xblock *xr[4];
            for (size_t j = 0; j < 4; j++) xr[j] = xq + (t + (j < nt ? j : 0)) * nb;
            __m256 out[4];
            fns[nt - 1](sb, xr, nb, zero, out);
            for (size_t j = 0; j < nt; j++) {
                float lanes[8];
                _mm256_storeu_ps(lanes, out[j]);
                for (size_t i = 0; i < nr; i++) y[(t + j) * ldy + r + i] = lanes[i] + (bias ? bias[r + i] : 0.0f);
            }
        }
    }
    free(sb);
    return true;
}

/* ---- VNNI, decoding: q4_0 and q8_0 weights repacked at load ------------------------------
 *
 * Generation reads every weight once per token, so the kernel must keep up with memory: no
 * horizontal sums, no per-row scale gathers. At load, rows are regrouped 8 at a time, block by
 * block: the 8 rows' f16 scales (16 bytes), then for each 4-byte column group k the 8 rows' 4
 * bytes (q4_0: bytes 4k..4k+3 of the 16 nibble bytes, k < 4; q8_0: values 4k..4k+3 plus 128,
 * k < 8). That is as many bytes as the rows themselves (144 or 272 per group and block), read
 * as one stream; lane i of every 32-byte load is row i, so one vpdpbusd with 4 activation bytes
 * broadcast serves 8 rows. The integer block sums are exact and the fp32 steps are the
 * reference's (acc = fma(isum, dw * dx, acc)), so the result is the reference's bit for bit. */

enum { PACK_ROWS = 8 };

/* Bytes per group of 8 rows and block (q4_k: super-block of 256; its packed form holds the
 * 6-bit scales and mins unpacked, one byte each: 1184 bytes for the rows' 1152). */
static size_t pack_block_bytes(uint32_t type)
{
    switch (type) {
    case QFMT_TYPE_Q4_0: return 144;
    case QFMT_TYPE_Q8_0: return 272;
    case QFMT_TYPE_Q4_K: return 1184;
    case QFMT_TYPE_Q6_K: return 1680;
    default: return 0;
    }
}
static size_t pack_block_elems(uint32_t type) { return type == QFMT_TYPE_Q4_K || type == QFMT_TYPE_Q6_K ? 256 : 32; }

size_t qfmt__gemm_pack_size(const qmat *w)
{
    size_t per = pack_block_bytes(w->type), n;
    size_t qk = pack_block_elems(w->type);
    if (!per || !w->data || w->rows == 0 || w->cols % qk || !qfmt__gemm_level_available(GEMM_VNNI)) return 0;
    uint64_t groups = (w->rows + PACK_ROWS - 1) / PACK_ROWS, nb = w->cols / qk;
    if (groups > SIZE_MAX || nb > SIZE_MAX || __builtin_mul_overflow((size_t)groups, (size_t)nb, &n) ||
        __builtin_mul_overflow(n, per, &n) || n > SIZE_MAX - 63)
        return 0;
    return n;
}

/* q4_k's 6-bit scales and mins of the 8 sub-blocks (types/q4_k.c's get_scale_min_k4). */
static void q4_k_scales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0x0F) | (s[j] >> 6) << 4);
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | (s[j + 4] >> 6) << 4);
    }
}

/* q4_k, per group and super-block: d[8], dmin[8] (f16), sc[j][row], mn[j][row] (bytes), then
 * for each chunk c < 4 of 64 values and 4-byte group k < 8 of its 32 code bytes, the 8 rows'
 * 4 bytes (low nibbles: sub-block 2c, values 4k..4k+3; high nibbles: sub-block 2c+1). */
static void pack_q4_k(const uint8_t *const wr[PACK_ROWS], size_t b, uint8_t *out)
{
    for (int i = 0; i < PACK_ROWS; i++) {
        const uint8_t *p = wr[i] + b * 144;
        uint8_t sc[8], mn[8];
        memcpy(out + 2 * i, p, 2);
        memcpy(out + 16 + 2 * i, p + 2, 2);
        q4_k_scales(p + 4, sc, mn);
        for (int j = 0; j < 8; j++) {
            out[32 + 8 * j + i] = sc[j];
            out[96 + 8 * j + i] = mn[j];
        }
        for (int c = 0; c < 4; c++)
            for (int k = 0; k < 8; k++) memcpy(out + 160 + 256 * c + 32 * k + 4 * i, p + 16 + 32 * c + 4 * k, 4);
    }
}

/* q6_k, per group and super-block (the rows' own 1680 bytes): the 8 rows' 4-byte groups of
 * ql (32 groups of 32 bytes), of qh (16 groups), the 16 int8 scales as sc[s][row] (128 bytes)
 * and d[8] (f16). */
static void pack_q6_k(const uint8_t *const wr[PACK_ROWS], size_t b, uint8_t *out)
{
    for (int i = 0; i < PACK_ROWS; i++) {
        const uint8_t *p = wr[i] + b * 210;
        for (int g = 0; g < 32; g++) memcpy(out + 32 * g + 4 * i, p + 4 * g, 4);
        for (int g = 0; g < 16; g++) memcpy(out + 1024 + 32 * g + 4 * i, p + 128 + 4 * g, 4);
        for (int sc = 0; sc < 16; sc++) out[1536 + 8 * sc + i] = p[192 + sc];
        memcpy(out + 1664 + 2 * i, p + 208, 2);
    }
}

void qfmt__gemm_pack(const qmat *w, uint8_t *out)
{
    size_t nb = w->cols / pack_block_elems(w->type), per = pack_block_bytes(w->type);
    size_t bb = w->type == QFMT_TYPE_Q4_0 ? 18 : 34, kn = w->type == QFMT_TYPE_Q4_0 ? 4 : 8;
    for (uint64_t g = 0; g * PACK_ROWS < w->rows; g++) {
        const uint8_t *wr[PACK_ROWS];
        for (uint64_t i = 0; i < PACK_ROWS; i++) { /* spare rows repeat the last one */
            uint64_t r = g * PACK_ROWS + i < w->rows ? g * PACK_ROWS + i : w->rows - 1;
            wr[i] = w->data + r * w->row_bytes;
        }
        for (size_t b = 0; b < nb; b++, out += per) {
            if (w->type == QFMT_TYPE_Q4_K || w->type == QFMT_TYPE_Q6_K) {
                (w->type == QFMT_TYPE_Q4_K ? pack_q4_k : pack_q6_k)(wr, b, out);
                continue;
            }
            for (int i = 0; i < PACK_ROWS; i++) memcpy(out + 2 * i, wr[i] + b * bb, 2);
            for (size_t k = 0; k < kn; k++)
                for (int i = 0; i < PACK_ROWS; i++) {
                    uint8_t *d = out + 16 + 32 * k + 4 * i;
                    memcpy(d, wr[i] + b * bb + 2 + 4 * k, 4);
                    if (w->type == QFMT_TYPE_Q8_0)
                        for (int c = 0; c < 4; c++) d[c] ^= 0x80;
                }
        }
    }
}

static INLINE int32_t load_i32(const int8_t *p);

/* Each kernel below computes one group of 8 rows against nt <= 4 activation rows xr[0..nt)
 * (xr[j]: the row's activation blocks), out[j] lane i = row i; the weights of a block are
 * loaded (and unpacked) once for the nt rows. BCAST(p): 4 activation bytes to every lane. */
#define BCAST(p) _mm256_set1_epi32(load_i32(p))

VNNI static INLINE void tile_q4_0(const uint8_t *p, const xblock *const xr[4], size_t nb, int nt, __m256 out[4])
{
    const __m256i m = _mm256_set1_epi8(0x0F);
    __m256 acc[4];
    for (int j = 0; j < 4; j++) acc[j] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++, p += 144) {
        if (nt <= 2) /* decoding: memory-bound, prefetch the stream */
            for (int o = 0; o < 144; o += 64) _mm_prefetch((const char *)p + PREFETCH_AHEAD + o, _MM_HINT_T0);
        __m256i lo[4], hi[4];
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++) lo[j] = _mm256_set1_epi32(-8 * xr[j][b].sum), hi[j] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m256i v = LOAD256(p + 16 + 32 * k), cl = _mm256_and_si256(v, m), ch = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++) {
                lo[j] = _mm256_dpbusd_epi32(lo[j], cl, BCAST(xr[j][b].q + 4 * k));
                hi[j] = _mm256_dpbusd_epi32(hi[j], ch, BCAST(xr[j][b].q + 16 + 4 * k));
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++)
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(lo[j], hi[j])),
                                     _mm256_mul_ps(dw, _mm256_set1_ps(xr[j][b].d)), acc[j]);
    }
    for (int j = 0; j < nt; j++) out[j] = acc[j];
}

VNNI static INLINE void tile_q8_0(const uint8_t *p, const xblock *const xr[4], size_t nb, int nt, __m256 out[4])
{
    __m256 acc[4];
    for (int j = 0; j < 4; j++) acc[j] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++, p += 272) {
        if (nt <= 2) /* decoding: memory-bound, prefetch the stream */
            for (int o = 0; o < 272; o += 64) _mm_prefetch((const char *)p + PREFETCH_AHEAD + o, _MM_HINT_T0);
        __m256i lo[4], hi[4];
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++) lo[j] = _mm256_set1_epi32(-128 * xr[j][b].sum), hi[j] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int k = 0; k < 8; k += 2) {
            __m256i c0 = LOAD256(p + 16 + 32 * k), c1 = LOAD256(p + 48 + 32 * k);
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++) {
                lo[j] = _mm256_dpbusd_epi32(lo[j], c0, BCAST(xr[j][b].q + 4 * k));
                hi[j] = _mm256_dpbusd_epi32(hi[j], c1, BCAST(xr[j][b].q + 4 * k + 4));
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++)
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(lo[j], hi[j])),
                                     _mm256_mul_ps(dw, _mm256_set1_ps(xr[j][b].d)), acc[j]);
    }
    for (int j = 0; j < nt; j++) out[j] = acc[j];
}

/* q4_k: per sub-block j, isum = sc * sum(u q) and msum = -mn * sum(q), then the reference's two
 * fused multiply-adds; nb counts super-blocks. */
VNNI static INLINE void tile_q4_k(const uint8_t *p, const xblock *const xr[4], size_t nb, int nt, __m256 out[4])
{
    const __m256i m = _mm256_set1_epi8(0x0F);
    __m256 acc[4];
    for (int j = 0; j < 4; j++) acc[j] = _mm256_setzero_ps();
    for (size_t sb = 0; sb < nb; sb++, p += 1184) {
        if (nt <= 2) /* decoding: memory-bound, prefetch the stream */
            for (int o = 0; o < 1184; o += 64) _mm_prefetch((const char *)p + PREFETCH_AHEAD + o, _MM_HINT_T0);
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
        const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)));
        for (int c = 0; c < 4; c++) {
            const uint8_t *cp = p + 160 + 256 * c;
            __m256i sa[4], sz[4];
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++) sa[j] = sz[j] = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                __m256i v = LOAD256(cp + 32 * k), cl = _mm256_and_si256(v, m), ch = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
#pragma GCC unroll 4
                for (int j = 0; j < nt; j++) {
                    const xblock *x = xr[j] + 8 * sb;
                    sa[j] = _mm256_dpbusd_epi32(sa[j], cl, BCAST(x[2 * c].q + 4 * k));
                    sz[j] = _mm256_dpbusd_epi32(sz[j], ch, BCAST(x[2 * c + 1].q + 4 * k));
                }
            }
            /* isum = sc * S and msum = -mn * sum(q) are integers below 2^24 in magnitude, so their
             * products in fp32 are exact: the reference's (float)isum and (float)msum */
            for (int h = 0; h < 2; h++) {
                const int sub = 2 * c + h;
                const __m256 sc = _mm256_cvtepi32_ps(
                    _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p + 32 + 8 * sub))));
                const __m256 mn = _mm256_cvtepi32_ps(
                    _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p + 96 + 8 * sub))));
#pragma GCC unroll 4
                for (int j = 0; j < nt; j++) {
                    const xblock *x = xr[j] + 8 * sb + sub;
                    const __m256 dx = _mm256_set1_ps(x->d);
                    __m256 isum = _mm256_mul_ps(_mm256_cvtepi32_ps(h ? sz[j] : sa[j]), sc);
                    __m256 msum = _mm256_mul_ps(mn, _mm256_set1_ps((float)-x->sum));
                    acc[j] = _mm256_fmadd_ps(isum, _mm256_mul_ps(d, dx), acc[j]);
                    acc[j] = _mm256_fmadd_ps(msum, _mm256_mul_ps(dmin, dx), acc[j]);
                }
            }
        }
    }
    for (int j = 0; j < nt; j++) out[j] = acc[j];
}

/* q6_k: per sub-block j (h = j / 4, k = j % 4), codes u = ql nibble (4 (k >> 1)) | qh bits 2k,
 * 2k+1 << 4; each half of 16 values summed apart with 32 * (its activation sum) removed, isum =
 * s0 sum_lo + s1 sum_hi; one fused multiply-add per block. nb counts super-blocks. */
VNNI static INLINE void tile_q6_k(const uint8_t *p, const xblock *const xr[4], size_t nb, int nt, __m256 out[4])
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    __m256 acc[4];
    for (int j = 0; j < 4; j++) acc[j] = _mm256_setzero_ps();
    for (size_t sb = 0; sb < nb; sb++, p += 1680) {
        if (nt <= 2) /* decoding: memory-bound, prefetch the stream */
            for (int o = 0; o < 1680; o += 64) _mm_prefetch((const char *)p + PREFETCH_AHEAD + o, _MM_HINT_T0);
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 1664)));
        for (int sub = 0; sub < 8; sub++) {
            const int h = sub / 4, k = sub % 4;
            const uint8_t *ql = p + 32 * (16 * h + 8 * (k & 1)), *qh = p + 1024 + 32 * (8 * h);
            __m256i s[2][4];
            for (int half = 0; half < 2; half++) {
#pragma GCC unroll 4
                for (int j = 0; j < nt; j++) s[half][j] = _mm256_set1_epi32(-32 * xr[j][8 * sb + sub].hs[half]);
#pragma GCC unroll 4
                for (int g = 4 * half; g < 4 * half + 4; g++) {
                    __m256i lv = LOAD256(ql + 32 * g), hv = LOAD256(qh + 32 * g);
                    __m256i lo = _mm256_and_si256(k >> 1 ? _mm256_srli_epi16(lv, 4) : lv, m4);
                    __m256i hi = _mm256_and_si256(k < 2 ? sll16(hv, 4 - 2 * k) : _mm256_srli_epi16(hv, 2 * k - 4), m2);
                    __m256i u = _mm256_or_si256(lo, hi);
#pragma GCC unroll 4
                    for (int j = 0; j < nt; j++)
                        s[half][j] = _mm256_dpbusd_epi32(s[half][j], u, BCAST(xr[j][8 * sb + sub].q + 4 * g));
                }
            }
            /* s0 sum_lo and s1 sum_hi, and their sum, are integers below 2^24: exact in fp32 */
            const __m256 s0 = _mm256_cvtepi32_ps(
                _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p + 1536 + 16 * sub))));
            const __m256 s1 = _mm256_cvtepi32_ps(
                _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p + 1544 + 16 * sub))));
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++) {
                __m256 isum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[0][j]), s0, _mm256_mul_ps(_mm256_cvtepi32_ps(s[1][j]), s1));
                acc[j] = _mm256_fmadd_ps(isum, _mm256_mul_ps(d, _mm256_set1_ps(xr[j][8 * sb + sub].d)), acc[j]);
            }
        }
    }
    for (int j = 0; j < nt; j++) out[j] = acc[j];
}
#undef BCAST

typedef void (*ptile_fn)(const uint8_t *p, const xblock *const xr[4], size_t nb, __m256 out[4]);
#define PTILE_FNS(T)                                                                                             \
    VNNI static void T##_1(const uint8_t *p, const xblock *const xr[4], size_t nb, __m256 o[4]) { T(p, xr, nb, 1, o); } \
    VNNI static void T##_2(const uint8_t *p, const xblock *const xr[4], size_t nb, __m256 o[4]) { T(p, xr, nb, 2, o); } \
    VNNI static void T##_3(const uint8_t *p, const xblock *const xr[4], size_t nb, __m256 o[4]) { T(p, xr, nb, 3, o); } \
    VNNI static void T##_4(const uint8_t *p, const xblock *const xr[4], size_t nb, __m256 o[4]) { T(p, xr, nb, 4, o); } \
    static const ptile_fn T##_fns[4] = {T##_1, T##_2, T##_3, T##_4};
PTILE_FNS(tile_q4_0)
PTILE_FNS(tile_q8_0)
PTILE_FNS(tile_q4_k)
PTILE_FNS(tile_q6_k)

/* Rows [r0, r1) (r0 a multiple of 8) against T activation rows, group by group, 4 activation
 * rows at a time (the group's weights, a few KiB, stay in L1 between tiles). */
VNNI static void gemm_packed(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                             const float *bias)
{
    const ptile_fn *fns = w->type == QFMT_TYPE_Q4_0 ? tile_q4_0_fns : w->type == QFMT_TYPE_Q8_0 ? tile_q8_0_fns
                        : w->type == QFMT_TYPE_Q4_K ? tile_q4_k_fns : tile_q6_k_fns;
    const size_t nbx = w->cols / 32, nb = w->cols / pack_block_elems(w->type), per = pack_block_bytes(w->type);
    for (size_t r = r0; r < r1; r += PACK_ROWS) {
        size_t nr = r1 - r < PACK_ROWS ? r1 - r : PACK_ROWS;
        const uint8_t *grp = w->pack + r / PACK_ROWS * nb * per;
        for (size_t t = 0; t < T; t += 4) {
            size_t nt = T - t < 4 ? T - t : 4;
            const xblock *xr[4];
            for (size_t j = 0; j < 4; j++) xr[j] = xq + (t + (j < nt ? j : 0)) * nbx;
            __m256 out[4];
            fns[nt - 1](grp, xr, nb, out);
            for (size_t j = 0; j < nt; j++) {
                float lanes[8];
                _mm256_storeu_ps(lanes, out[j]);
                for (size_t i = 0; i < nr; i++) y[(t + j) * ldy + r + i] = lanes[i] + (bias ? bias[r + i] : 0.0f);
            }
        }
    }
}

void qfmt__gemm_q_vnni(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                 const float *bias)
{
    if (w->pack && pack_block_bytes(w->type)) { /* repacked at load: decoding and prompts */
        gemm_packed(w, xq, T, r0, r1, y, ldy, bias);
        return;
    }
    bool strips = T >= STRIP_MIN_T && (w->type == QFMT_TYPE_Q4_0 || w->type == QFMT_TYPE_Q8_0);
    if (strips && gemm_strips(w, xq, T, r0, r1, y, ldy, bias)) return;
    rows8_vnni(w, xq, T, r0, r1, y, ldy, bias);
}

/* ---- AMX: q4_0 and q8_0 against 16 activation rows or more --------------------------------
 *
 * One TDPBUSD multiplies a tile of 16 weight rows x 32 codes (unsigned bytes: q4_0's codes
 * 0..15, q8_0's values + 128) by 16 activation rows' 32 values (signed, laid out as AMX wants:
 * 8 rows of 4 values x 16 activation rows) into 16 x 16 exact int32 block sums; the zero point
 * comes off as Z * (the block's activation sum) and then each (weight row, activation row)
 * takes the reference's step acc = fma(isum, dw * dx, acc), block after block, 16 activation
 * rows per 512-bit vector: the reference's float, bit for bit. The weight tile of each block is
 * unpacked once per 16 weight rows and serves every group of 16 activation rows. */

enum { AMX_M = 16, AMX_N = 16 };

typedef struct { /* _tile_loadconfig's 64 bytes, palette 1 */
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

/* Per block: the 16 weight rows' 32 code bytes (512), then per row dw (16 floats; q4_k: the
 * super-block's d), and for q4_k the sub-block's scale and min (exact small integers) and dmin. */
enum { AMX_A_BYTES = 512 + 4 * 64 };
/* Per group of 16 activation rows and block: the B tile (8 rows x 64 bytes), then 16 dx floats
 * and 16 int32 Z * sums (zero-point terms). */
enum { AMX_B_BYTES = 512 + 64 + 64 };

AMX static void amx_pack_b(const xblock *xq, size_t T, size_t nb, int32_t zero, size_t g0, size_t g1, uint8_t *out)
{
    for (size_t g = g0; g < g1; g++)
        for (size_t b = 0; b < nb; b++) {
            uint8_t *o = out + (g * nb + b) * AMX_B_BYTES;
            float *dx = (float *)(void *)(o + 512);
            int32_t *zs = (int32_t *)(void *)(o + 576);
            for (size_t n = 0; n < AMX_N; n++) {
                size_t t = g * AMX_N + n;
                if (t >= T) {
                    for (int k = 0; k < 8; k++) memset(o + 64 * k + 4 * n, 0, 4);
                    dx[n] = 0.0f;
                    zs[n] = 0;
                    continue;
                }
                const xblock *x = xq + t * nb + b;
                for (int k = 0; k < 8; k++) memcpy(o + 64 * k + 4 * n, x->q + 4 * k, 4);
                dx[n] = x->d;
                zs[n] = zero * x->sum;
            }
        }
}

/* The 16 rows wr[0..16) of block b as unsigned codes in value order, and their scales. */
AMX static void amx_pack_a(uint32_t type, const uint8_t *const wr[AMX_M], size_t b, uint8_t *out)
{
    float *dw = (float *)(void *)(out + 512);
    const __m128i m = _mm_set1_epi8(0x0F), flip = _mm_set1_epi8((char)0x80);
    for (int i = 0; i < AMX_M; i++) {
        if (type == QFMT_TYPE_Q4_K) { /* b: a super-block; its 8 sub-blocks fill out[0..8) */
            const uint8_t *p = wr[i] + b * 144;
            uint8_t s8[8], m8[8];
            q4_k_scales(p + 4, s8, m8);
            const float d = f16c(p), dm = f16c(p + 2);
            for (int j = 0; j < 8; j++) {
                uint8_t *o = out + (size_t)j * AMX_A_BYTES;
                float *f = (float *)(void *)(o + 512);
                const uint8_t *qs = p + 16 + 32 * (j / 2);
                for (int h = 0; h < 2; h++) {
                    __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(qs + 16 * h));
                    if (j & 1) q = _mm_srli_epi16(q, 4);
                    _mm_storeu_si128((__m128i *)(void *)(o + 32 * i + 16 * h), _mm_and_si128(q, m));
                }
                f[i] = d;
                f[48 + i] = dm;
                f[16 + i] = (float)s8[j];
                f[32 + i] = (float)m8[j];
            }
        } else if (type == QFMT_TYPE_Q4_0) {
            const uint8_t *p = wr[i] + b * 18;
            __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(p + 2));
            _mm_storeu_si128((__m128i *)(void *)(out + 32 * i), _mm_and_si128(q, m));
            _mm_storeu_si128((__m128i *)(void *)(out + 32 * i + 16), _mm_and_si128(_mm_srli_epi16(q, 4), m));
            dw[i] = f16c(p);
        } else {
            const uint8_t *p = wr[i] + b * 34;
            _mm_storeu_si128((__m128i *)(void *)(out + 32 * i), _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + 2)), flip));
            _mm_storeu_si128((__m128i *)(void *)(out + 32 * i + 16), _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + 18)), flip));
            dw[i] = f16c(p);
        }
    }
}

static bool amx_type(uint32_t t) { return t == QFMT_TYPE_Q4_0 || t == QFMT_TYPE_Q8_0 || t == QFMT_TYPE_Q4_K; }
static int32_t amx_zero(uint32_t t) { return t == QFMT_TYPE_Q4_0 ? 8 : t == QFMT_TYPE_Q8_0 ? 128 : -1; /* q4_k: -sum */ }

size_t qfmt__amx_b_size(const qmat *w, size_t T)
{
    size_t ng = (T + AMX_N - 1) / AMX_N, n;
    if (T < AMX_N || !amx_type(w->type) ||
        !qfmt__gemm_level_available(GEMM_AMX) || __builtin_mul_overflow(ng, (size_t)(w->cols / 32), &n) ||
        __builtin_mul_overflow(n, (size_t)AMX_B_BYTES, &n))
        return 0;
    return n;
}

AMX void qfmt__amx_pack_b(const qmat *w, const xblock *xq, size_t T, size_t g0, size_t g1, uint8_t *out)
{
    amx_pack_b(xq, T, w->cols / 32, amx_zero(w->type), g0, g1, out);
}

size_t qfmt__amx_scratch_size(const qmat *w) { return (size_t)(w->cols / 32) * AMX_A_BYTES + 2 * AMX_M * AMX_N * 4; }

/* bpack: the activation tiles (qfmt__amx_pack_b), or NULL to lay them out here from xq;
 * scratch: qfmt__amx_scratch_size(w) bytes, or NULL to allocate them here. */
AMX static bool gemm_amx(const qmat *w, const xblock *xq, const uint8_t *bpack, uint8_t *scratch, size_t T, size_t r0,
                         size_t r1, float *y, size_t ldy, const float *bias)
{
    const size_t nb = w->cols / 32, ng = (T + AMX_N - 1) / AMX_N;
    const bool k4 = w->type == QFMT_TYPE_Q4_K;
    uint8_t *own_s = scratch ? NULL : aligned_alloc(64, qfmt__amx_scratch_size(w));
    uint8_t *own_b = bpack ? NULL : aligned_alloc(64, ng * nb * AMX_B_BYTES);
    if ((!scratch && !own_s) || (!bpack && !own_b)) {
        free(own_s), free(own_b);
        return false;
    }
    uint8_t *abuf = scratch ? scratch : own_s;
    int32_t *cbuf = (int32_t *)(void *)(abuf + nb * AMX_A_BYTES);
    if (!bpack) amx_pack_b(xq, T, nb, amx_zero(w->type), 0, ng, own_b);
    const uint8_t *bbuf = bpack ? bpack : own_b;
    amx_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int k = 0; k < 2; k++) {
        cfg.rows[k] = AMX_M, cfg.colsb[k] = AMX_N * 4; /* C: 16 x 16 int32 */
        cfg.rows[2 + k] = AMX_M, cfg.colsb[2 + k] = 32; /* A: 16 weight rows x 32 codes */
        cfg.rows[4 + k] = 8, cfg.colsb[4 + k] = AMX_N * 4; /* B: 8 x (16 activation rows x 4 values) */
    }
    _tile_loadconfig(&cfg);
    for (size_t r = r0; r < r1; r += AMX_M) {
        size_t nr = r1 - r < AMX_M ? r1 - r : AMX_M;
        const uint8_t *wr[AMX_M];
        for (size_t i = 0; i < AMX_M; i++) wr[i] = w->data + (r + (i < nr ? i : nr - 1)) * w->row_bytes;
        for (size_t b = 0; b < nb; b += k4 ? 8 : 1) amx_pack_a(w->type, wr, k4 ? b / 8 : b, abuf + b * AMX_A_BYTES);
        for (size_t g = 0; g < ng; g++) {
            __m512 acc[AMX_M];
            for (int i = 0; i < AMX_M; i++) acc[i] = _mm512_setzero_ps();
            /* software-pipelined: block b + 1's tile product runs while block b's sums are scaled
             * (tile registers 0/1: C, 2/3: A, 4/5: B, alternating by block parity) */
#define AMX_ISSUE(b, C, A, B)                                                                    \
    do {                                                                                         \
        _tile_zero(C);                                                                           \
        _tile_loadd(A, abuf + (b) * AMX_A_BYTES, 32);                                            \
        _tile_loadd(B, bbuf + (g * nb + (b)) * AMX_B_BYTES, 64);                                 \
        _tile_dpbusd(C, A, B);                                                                   \
        _tile_stored(C, cbuf + ((b) & 1) * AMX_M * AMX_N, AMX_N * 4);                            \
    } while (0)
            AMX_ISSUE(0, 0, 2, 4);
            for (size_t b = 0; b < nb; b++) {
                if (b + 1 < nb) {
                    if ((b + 1) & 1) AMX_ISSUE(b + 1, 1, 3, 5);
                    else AMX_ISSUE(b + 1, 0, 2, 4);
                }
                const uint8_t *a = abuf + b * AMX_A_BYTES, *bt = bbuf + (g * nb + b) * AMX_B_BYTES;
                const int32_t *cb = cbuf + (b & 1) * AMX_M * AMX_N;
                const __m512 dx = _mm512_load_ps((const float *)(const void *)(bt + 512));
                const __m512i zs = _mm512_load_si512((const void *)(bt + 576));
                const float *dw = (const float *)(const void *)(a + 512);
                if (k4) { /* isum = sc S, msum = -mn sum(q): exact in fp32; the reference's two steps */
                    const __m512 nsum = _mm512_cvtepi32_ps(zs);
#pragma GCC unroll 16
                    for (int i = 0; i < AMX_M; i++) {
                        __m512 isum = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const void *)(cb + AMX_N * i))),
                                                    _mm512_set1_ps(dw[16 + i]));
                        acc[i] = _mm512_fmadd_ps(isum, _mm512_mul_ps(_mm512_set1_ps(dw[i]), dx), acc[i]);
                        acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(dw[32 + i]), nsum),
                                                 _mm512_mul_ps(_mm512_set1_ps(dw[48 + i]), dx), acc[i]);
                    }
                    continue;
                }
#pragma GCC unroll 16
                for (int i = 0; i < AMX_M; i++) {
                    __m512i c = _mm512_sub_epi32(_mm512_load_si512((const void *)(cb + AMX_N * i)), zs);
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), _mm512_mul_ps(_mm512_set1_ps(dw[i]), dx), acc[i]);
                }
            }
#undef AMX_ISSUE
            size_t nt = T - g * AMX_N < AMX_N ? T - g * AMX_N : AMX_N;
            for (size_t i = 0; i < nr; i++) {
                float lanes[AMX_N];
                _mm512_storeu_ps(lanes, acc[i]);
                float bi = bias ? bias[r + i] : 0.0f;
                for (size_t n = 0; n < nt; n++) y[(g * AMX_N + n) * ldy + r + i] = lanes[n] + bi;
            }
        }
    }
    _tile_release();
    free(own_s), free(own_b);
    return true;
}

void qfmt__gemm_q_amx(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                const float *bias)
{
    if (T >= AMX_N && amx_type(w->type) && gemm_amx(w, xq, NULL, NULL, T, r0, r1, y, ldy, bias)) return;
    qfmt__gemm_q_vnni(w, xq, T, r0, r1, y, ldy, bias);
}

void qfmt__gemm_q_amx_b(const qmat *w, const uint8_t *bpack, uint8_t *scratch, size_t T, size_t r0, size_t r1,
                  float *y, size_t ldy, const float *bias)
{
    if (!gemm_amx(w, NULL, bpack, scratch, T, r0, r1, y, ldy, bias)) /* no scratch memory: NaN, never wrong values */
        for (size_t t = 0; t < T; t++)
            for (size_t r = r0; r < r1; r++) y[t * ldy + r] = NAN;
}

/* ---- Float weights ------------------------------------------------------------------------- */

AVX2 static INLINE __m256 load_f16(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)); }
AVX2 static INLINE __m256 load_bf16(const uint8_t *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

#define DOT_HALF(name, load, scalar)                                                                         \
    AVX2 float name(const uint8_t *w, const float *x, size_t n)                                              \
    {                                                                                                        \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                         \
        size_t i = 0;                                                                                        \
        for (; i + 32 <= n; i += 32) {                                                                       \
            _mm_prefetch((const char *)(w + 2 * i) + PREFETCH_AHEAD, _MM_HINT_T0);                           \
            a0 = _mm256_fmadd_ps(load(w + 2 * i), _mm256_loadu_ps(x + i), a0);                               \
            a1 = _mm256_fmadd_ps(load(w + 2 * i + 16), _mm256_loadu_ps(x + i + 8), a1);                      \
            a2 = _mm256_fmadd_ps(load(w + 2 * i + 32), _mm256_loadu_ps(x + i + 16), a2);                     \
            a3 = _mm256_fmadd_ps(load(w + 2 * i + 48), _mm256_loadu_ps(x + i + 24), a3);                     \
        }                                                                                                    \
        for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load(w + 2 * i), _mm256_loadu_ps(x + i), a0);      \
        float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                      \
        for (; i < n; i++) s += scalar((uint16_t)(w[2 * i] | (w[2 * i + 1] << 8))) * x[i];                  \
        return s;                                                                                            \
    }
DOT_HALF(qfmt__dot_f16_avx2, load_f16, qfmt_f16_to_f32)
DOT_HALF(qfmt__dot_bf16_avx2, load_bf16, qfmt_bf16_to_f32)

/* Float weights, several activation rows: tiles of 4 rows x up to 2 activation rows, each pair
 * with an accumulator of its own over the columns in order, weights converted once per tile. */
#define GEMM_HALF(NAME, LOAD, SCALAR)                                                                        \
    AVX2 static INLINE void NAME##_tile(const uint8_t *const wr[4], const float *const xr[2], size_t n,      \
                                        int nt, float out[4][2])                                             \
    {                                                                                                        \
        __m256 acc[4][2];                                                                                    \
        for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();                            \
        size_t k = 0;                                                                                        \
        for (; k + 8 <= n; k += 8) {                                                                         \
            __m256 w0 = LOAD(wr[0] + 2 * k), w1 = LOAD(wr[1] + 2 * k), w2 = LOAD(wr[2] + 2 * k),              \
                   w3 = LOAD(wr[3] + 2 * k);                                                                 \
            for (int j = 0; j < nt; j++) {                                                                   \
                __m256 x = _mm256_loadu_ps(xr[j] + k);                                                       \
                acc[0][j] = _mm256_fmadd_ps(w0, x, acc[0][j]);                                               \
                acc[1][j] = _mm256_fmadd_ps(w1, x, acc[1][j]);                                               \
                acc[2][j] = _mm256_fmadd_ps(w2, x, acc[2][j]);                                               \
                acc[3][j] = _mm256_fmadd_ps(w3, x, acc[3][j]);                                               \
            }                                                                                                \
        }                                                                                                    \
        for (int i = 0; i < 4; i++)                                                                          \
            for (int j = 0; j < nt; j++) {                                                                   \
                float s = hsum_ps(acc[i][j]);                                                                \
                for (size_t c = k; c < n; c++)                                                               \
                    s += SCALAR((uint16_t)(wr[i][2 * c] | (wr[i][2 * c + 1] << 8))) * xr[j][c];              \
                out[i][j] = s;                                                                               \
            }                                                                                                \
    }                                                                                                        \
    AVX2 static void NAME##_1(const uint8_t *const wr[4], const float *const xr[2], size_t n, float out[4][2]) \
    {                                                                                                        \
        NAME##_tile(wr, xr, n, 1, out);                                                                      \
    }                                                                                                        \
    AVX2 static void NAME##_2(const uint8_t *const wr[4], const float *const xr[2], size_t n, float out[4][2]) \
    {                                                                                                        \
        NAME##_tile(wr, xr, n, 2, out);                                                                      \
    }
GEMM_HALF(f16, load_f16, qfmt_f16_to_f32)
GEMM_HALF(bf16, load_bf16, qfmt_bf16_to_f32)

typedef void (*half_tile_fn)(const uint8_t *const wr[4], const float *const xr[2], size_t n, float out[4][2]);

/* AVX-512 (the VNNI level's CPUs): tiles of 4 weight rows x 6 activation rows (a short last
 * tile repeats a row), 16 values per step (a masked step for the tail), each weight converted
 * once per tile; the 24 accumulators stay in registers. */
enum { HALF_RN = 6 };
VNNI static INLINE __m512 half_ld(const uint8_t *p, __mmask16 m, bool bf)
{
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    return bf ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)) : _mm512_cvtph_ps(h);
}
VNNI static INLINE void half_tile512(const uint8_t *const wr[4], const float *const xr[HALF_RN], size_t n, bool bf,
                                     float out[4][HALF_RN])
{
    __m512 acc[4][HALF_RN];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 6
        for (int j = 0; j < HALF_RN; j++) acc[i][j] = _mm512_setzero_ps();
    for (size_t k = 0; k < n; k += 16) {
        const __mmask16 m = n - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - k)) - 1);
        const __m512 w0 = half_ld(wr[0] + 2 * k, m, bf), w1 = half_ld(wr[1] + 2 * k, m, bf);
        const __m512 w2 = half_ld(wr[2] + 2 * k, m, bf), w3 = half_ld(wr[3] + 2 * k, m, bf);
#pragma GCC unroll 6
        for (int j = 0; j < HALF_RN; j++) {
            const __m512 x = _mm512_maskz_loadu_ps(m, xr[j] + k);
            acc[0][j] = _mm512_fmadd_ps(w0, x, acc[0][j]);
            acc[1][j] = _mm512_fmadd_ps(w1, x, acc[1][j]);
            acc[2][j] = _mm512_fmadd_ps(w2, x, acc[2][j]);
            acc[3][j] = _mm512_fmadd_ps(w3, x, acc[3][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 6
        for (int j = 0; j < HALF_RN; j++) out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
}
VNNI static void f16_tile512(const uint8_t *const wr[4], const float *const xr[HALF_RN], size_t n, float out[4][HALF_RN])
{
    half_tile512(wr, xr, n, false, out);
}
VNNI static void bf16_tile512(const uint8_t *const wr[4], const float *const xr[HALF_RN], size_t n, float out[4][HALF_RN])
{
    half_tile512(wr, xr, n, true, out);
}

void qfmt__gemm_f_avx512(const qmat *w, const float *x, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                   const float *bias)
{
    void (*fn)(const uint8_t *const *, const float *const *, size_t, float (*)[HALF_RN]) =
        w->type == QFMT_TYPE_F16 ? f16_tile512 : bf16_tile512;
    size_t n = w->cols;
    for (size_t r = r0; r < r1; r += 4) {
        size_t nr = r1 - r < 4 ? r1 - r : 4;
        const uint8_t *wr[4];
        for (size_t i = 0; i < 4; i++) wr[i] = w->data + (r + (i < nr ? i : 0)) * w->row_bytes;
        for (size_t t = 0; t < T; t += HALF_RN) {
            size_t nt = T - t < HALF_RN ? T - t : HALF_RN;
            const float *xr[HALF_RN];
            for (size_t j = 0; j < HALF_RN; j++) xr[j] = x + (t + (j < nt ? j : 0)) * n;
            float out[4][HALF_RN];
            fn(wr, xr, n, out);
            for (size_t i = 0; i < nr; i++)
                for (size_t j = 0; j < nt; j++) y[(t + j) * ldy + r + i] = out[i][j] + (bias ? bias[r + i] : 0.0f);
        }
    }
}

void qfmt__gemm_f_avx2(const qmat *w, const float *x, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                 const float *bias)
{
    bool f16 = w->type == QFMT_TYPE_F16;
    half_tile_fn fn[2] = {f16 ? f16_1 : bf16_1, f16 ? f16_2 : bf16_2};
    size_t n = w->cols;
    for (size_t r = r0; r < r1; r += 4) {
        size_t nr = r1 - r < 4 ? r1 - r : 4;
        const uint8_t *wr[4];
        for (size_t i = 0; i < 4; i++) wr[i] = w->data + (r + (i < nr ? i : 0)) * w->row_bytes;
        for (size_t t = 0; t < T; t += 2) {
            size_t nt = T - t < 2 ? T - t : 2;
            const float *xr[2] = {x + t * n, x + (t + nt - 1) * n};
            float out[4][2];
            fn[nt - 1](wr, xr, n, out);
            for (size_t i = 0; i < nr; i++)
                for (size_t j = 0; j < nt; j++) y[(t + j) * ldy + r + i] = out[i][j] + (bias ? bias[r + i] : 0.0f);
        }
    }
}

#else /* not x86-64: only the scalar level exists; these are never called */

bool qfmt__gemm_level_available(gemm_level l) { return l == GEMM_SCALAR; }
gemm_level qfmt__gemm_best_level(void) { return GEMM_SCALAR; }
size_t qfmt__gemm_pack_size(const qmat *w) { (void)w; return 0; }
void qfmt__gemm_pack(const qmat *w, uint8_t *out) { (void)w; (void)out; }
void qfmt__act_quantize_avx2(const float *x, size_t n, xblock *out) { qfmt__act_quantize_scalar(x, n, out); }
void qfmt__gemm_q_avx2(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                 const float *bias)
{
    qfmt__gemm_q_scalar(w, xq, T, r0, r1, y, ldy, bias);
}
void qfmt__gemm_q_vnni(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                 const float *bias)
{
    qfmt__gemm_q_scalar(w, xq, T, r0, r1, y, ldy, bias);
}
void qfmt__gemm_q_amx(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                const float *bias)
{
    qfmt__gemm_q_scalar(w, xq, T, r0, r1, y, ldy, bias);
}
size_t qfmt__amx_b_size(const qmat *w, size_t T) { (void)w, (void)T; return 0; }
void qfmt__amx_pack_b(const qmat *w, const xblock *xq, size_t T, size_t g0, size_t g1, uint8_t *out)
{
    (void)w, (void)xq, (void)T, (void)g0, (void)g1, (void)out;
}
void qfmt__gemm_q_amx_b(const qmat *w, const uint8_t *bpack, uint8_t *scratch, size_t T, size_t r0, size_t r1,
                  float *y, size_t ldy, const float *bias)
{
    (void)w, (void)bpack, (void)scratch, (void)T, (void)r0, (void)r1, (void)y, (void)ldy, (void)bias;
}
size_t qfmt__amx_scratch_size(const qmat *w) { (void)w; return 0; }
float qfmt__dot_f16_avx2(const uint8_t *w, const float *x, size_t n)
{
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += qfmt_f16_to_f32((uint16_t)(w[2 * i] | (w[2 * i + 1] << 8))) * x[i];
    return s;
}
float qfmt__dot_bf16_avx2(const uint8_t *w, const float *x, size_t n)
{
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += qfmt_bf16_to_f32((uint16_t)(w[2 * i] | (w[2 * i + 1] << 8))) * x[i];
    return s;
}
void qfmt__gemm_f_avx512(const qmat *w, const float *x, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                   const float *bias)
{
    qfmt__gemm_f_avx2(w, x, T, r0, r1, y, ldy, bias);
}
void qfmt__gemm_f_avx2(const qmat *w, const float *x, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                 const float *bias)
{
    float (*dot)(const uint8_t *, const float *, size_t) = w->type == QFMT_TYPE_F16 ? qfmt__dot_f16_avx2 : qfmt__dot_bf16_avx2;
    for (size_t r = r0; r < r1; r++)
        for (size_t t = 0; t < T; t++)
            y[t * ldy + r] = dot(w->data + r * w->row_bytes, x + t * w->cols, w->cols) + (bias ? bias[r] : 0.0f);
}
#endif
