/* SIMD kernels of the fast path (gemm.h), for x86-64: every block type with AVX2 and with
 * AVX-512 VNNI (256-bit vectors), 8 weight rows at a time; for prompts, q8_0 and q4_0 weights
 * repacked into 8-row strips; and F16/BF16 rows read straight from the map.
 *
 * For block types every kernel returns the scalar reference's float bit for bit (ops.c;
 * tests/test_model.c checks it on the CPU it runs on): exact integer sums within a block, then
 * the reference's fp32 steps in the reference's order, vectorised across weight rows instead of
 * within one. */
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
#define INLINE inline __attribute__((always_inline))
/* From this many activation rows on, repacking a strip of weight rows pays for itself. */
enum { STRIP_MIN_T = 8 };
#define RND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* ---- CPU features -------------------------------------------------------------------------- */

bool qfmt__gemm_level_available(gemm_level l)
{
    if (l == GEMM_SCALAR) return true;
    unsigned f = qfmt_cpu_features(); /* cpu.c in libqfmt: the one place that runs CPUID */
    if (l == GEMM_AVX2) return (f & QFMT_CPU_AVX2) != 0;
    return l == GEMM_VNNI && (f & QFMT_CPU_AVX512_VNNI) != 0;
}

gemm_level qfmt__gemm_best_level(void)
{
    return qfmt__gemm_level_available(GEMM_VNNI) ? GEMM_VNNI : qfmt__gemm_level_available(GEMM_AVX2) ? GEMM_AVX2 : GEMM_SCALAR;
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
            continue;
        }
        const __m256 mul = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), RND));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), RND));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), RND));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), RND));
        int32_t sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
        /* packs work within 128-bit lanes; the permute puts the 32 bytes back in order */
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(void *)out[b].q, p);
        out[b].d = d;
        out[b].sum = sum;
        out[b].s = d * (float)sum;
    }
}

/* ---- 8 rows at a time, every block type (AVX2, and VNNI where the CPU has it) -----------------
 *
 * Every level gives the scalar reference's float, bit for bit: for each weight row the exact
 * integer sum of each block (zero point removed), then acc = fma(sum, dw * dx, acc) block after
 * block (q4_1 adds fma(m, s, acc)). Here the 8 lane-wise partial sums of 8 rows fold into one
 * vector whose lane i is row i's block sum, so the fp32 steps run on 8 rows at once in the
 * reference's order. That makes results independent of the level, of the thread count and of
 * how a sequence is split into calls (incremental decoding equals the full pass). */

/* Lane i of the result = sum of the 8 lanes of p[i]. */
AVX2 static INLINE __m256i fold8(const __m256i p[8])
{
    __m256i a = _mm256_hadd_epi32(p[0], p[1]), b = _mm256_hadd_epi32(p[2], p[3]);
    __m256i c = _mm256_hadd_epi32(p[4], p[5]), d = _mm256_hadd_epi32(p[6], p[7]);
    __m256i lo = _mm256_hadd_epi32(a, b), hi = _mm256_hadd_epi32(c, d); /* per 128-bit half: rows 0-3, 4-7 */
    return _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20), _mm256_permute2x128_si256(lo, hi, 0x31));
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

/* Per-type block layout: bytes per block, where the codes start. */
static INLINE size_t block_bytes(uint32_t type)
{
    return type == QFMT_TYPE_Q8_0 ? 34 : type == QFMT_TYPE_Q4_0 ? 18 : type == QFMT_TYPE_Q4_1 ? 20
         : type == QFMT_TYPE_Q8_Z ? 35 : 19;
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
                    if (TYPE == QFMT_TYPE_Q4_1)                                                                    \
                        acc = _mm256_fmadd_ps(gather_f16(wr, b * bb + 2), _mm256_set1_ps(x[b].s), acc);           \
                }                                                                                                  \
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
    static void NAME(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,       \
                     const float *bias)                                                                            \
    {                                                                                                              \
        switch (w->type) {                                                                                         \
        case QFMT_TYPE_Q8_0: NAME##_q8_0(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q4_0: NAME##_q4_0(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q4_1: NAME##_q4_1(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q8_Z: NAME##_q8_z(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
        case QFMT_TYPE_Q4_Z: NAME##_q4_z(w, xq, T, r0, r1, y, ldy, bias); break;                                   \
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

/* 8 x 8 transpose of 32-bit elements: out[k] lane i = in[i] lane k. */
VNNI static INLINE void transpose8(__m256i r[8])
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

void qfmt__gemm_q_vnni(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                 const float *bias)
{
    bool strips = T >= STRIP_MIN_T && (w->type == QFMT_TYPE_Q4_0 || w->type == QFMT_TYPE_Q8_0);
    if (strips && gemm_strips(w, xq, T, r0, r1, y, ldy, bias)) return;
    rows8_vnni(w, xq, T, r0, r1, y, ldy, bias);
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
void qfmt__gemm_f_avx2(const qmat *w, const float *x, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                 const float *bias)
{
    float (*dot)(const uint8_t *, const float *, size_t) = w->type == QFMT_TYPE_F16 ? qfmt__dot_f16_avx2 : qfmt__dot_bf16_avx2;
    for (size_t r = r0; r < r1; r++)
        for (size_t t = 0; t < T; t++)
            y[t * ldy + r] = dot(w->data + r * w->row_bytes, x + t * w->cols, w->cols) + (bias ? bias[r] : 0.0f);
}
#endif
