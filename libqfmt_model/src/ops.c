/* Numeric kernels of the forward pass. The fast path's integer dot products have a scalar and
 * an AVX2 version that return the same float bit for bit: the integer sums are exact, and the
 * float steps (scale products, accumulation) are done alike, in the same order. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "ops.h"
#include "qfmt.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

/* ---- Row decoding --------------------------------------------------------------------- */

bool qfmt__is_block_type(uint32_t type)
{
    switch (type) {
    case QFMT_TYPE_Q8_0: case QFMT_TYPE_Q4_0: case QFMT_TYPE_Q4_1: case QFMT_TYPE_Q8_Z: case QFMT_TYPE_Q4_Z:
    case QFMT_TYPE_Q5_0: case QFMT_TYPE_Q5_1: case QFMT_TYPE_IQ4_NL:
    case QFMT_TYPE_Q2_K: case QFMT_TYPE_Q3_K: case QFMT_TYPE_Q4_K: case QFMT_TYPE_Q5_K: case QFMT_TYPE_Q6_K:
    case QFMT_TYPE_IQ4_XS:
        return true;
    default:
        return false;
    }
}

void qfmt__qmat_row(const qmat *w, uint64_t r, float *out)
{
    const uint8_t *p = w->data + r * w->row_bytes;
    if (w->type == QFMT_TYPE_F32) {
        memcpy(out, p, w->cols * sizeof(float));
    } else if (w->type == QFMT_TYPE_F16 || w->type == QFMT_TYPE_BF16) {
        qfmt_convert_floats(w->type, p, QFMT_TYPE_F32, out, w->cols);
    } else {
        qfmt_row_decoder(w->type)(p, out, w->cols);
    }
}

/* ---- Dot products ---------------------------------------------------------------------- */

static float dot_scalar(const float *a, const float *b, size_t n)
{
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

#if defined(__x86_64__)
AVX2 static float dot_avx2(const float *a, const float *b, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s0 = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float s = _mm_cvtss_f32(h);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
#endif

float qfmt_dot(const float *a, const float *b, size_t n)
{
#if defined(__x86_64__)
    if ((qfmt_cpu_features() & QFMT_CPU_AVX2)) return dot_avx2(a, b, n);
#endif
    return dot_scalar(a, b, n);
}

/* ---- Fast path: 8-bit activations, scalar reference (gemm.h) ---------------------------- */

/* A block holding a NaN or an infinity gives d = NaN and no codes, so the products it enters
 * are NaN at every level; a block so small that 1/d overflows counts as zero. */
void qfmt__act_quantize_scalar(const float *x, size_t n, xblock *out)
{
    for (size_t b = 0; b < n / QFMT_BLOCK_ELEMS; b++, x += QFMT_BLOCK_ELEMS) {
        float amax = 0.0f;
        bool finite = true;
        for (int j = 0; j < (int)QFMT_BLOCK_ELEMS; j++) {
            finite = finite && isfinite(x[j]);
            amax = fmaxf(amax, fabsf(x[j]));
        }
        float d = finite ? amax / 127.0f : NAN, id = d != 0.0f ? 1.0f / d : 0.0f;
        if (!finite || !isfinite(id)) {
            memset(out[b].q, 0, sizeof out[b].q);
            out[b].d = out[b].s = finite ? 0.0f : NAN;
            out[b].sum = 0;
            out[b].hs[0] = out[b].hs[1] = 0;
            continue;
        }
        int32_t hs[2] = {0, 0};
        for (int j = 0; j < (int)QFMT_BLOCK_ELEMS; j++) {
            out[b].q[j] = (int8_t)nearbyintf(x[j] * id); /* half to even, as the SIMD rounding */
            hs[j / 16] += out[b].q[j];
        }
        out[b].d = d;
        out[b].sum = hs[0] + hs[1];
        out[b].hs[0] = (int16_t)hs[0];
        out[b].hs[1] = (int16_t)hs[1];
        out[b].s = d * (float)out[b].sum;
    }
}

/* ---- The reference for block types --------------------------------------------------------
 *
 * The float order, the same at every level (gemm_x86.c follows it step for step): a row's
 * product is one fp32 accumulator, acc = 0, then activation block after activation block b (32
 * values; for the super-block types the 8 blocks of each super-block of 256, in order):
 *
 *     acc = fmaf((float)isum_b, d * x_b.d, acc)          every type
 *     acc = fmaf(m, x_b.s, acc)                          then q4_1, q5_1 (m: the block's fp16 min)
 *     acc = fmaf((float)msum_b, dmin * x_b.d, acc)       then q2_k, q4_k, q5_k
 *
 * d is the fp16 scale of the weight block (of the super-block for the K types and iq4_xs), dmin
 * the super-block's fp16 scale of the mins; isum_b and msum_b are integers that every level
 * computes exactly (sub-block scales and mins enter as integers), with |q| <= 127 (the
 * activation quantizer never gives -128), hs0 / hs1 the sums of q over the block's halves:
 *
 *   type    isum_b (u: the code)                              bound on |isum_b|
 *   q8_0    sum w q, w int8                                   32*128*127        =    520,192
 *   q4_0    sum (u - 8) q, u 0..15                            32*8*127          =     32,512
 *   q4_1    sum u q, u 0..15                                  32*15*127         =     60,960
 *   q8_z    sum (u - z) q, u, z 0..255                        32*255*127        =  1,036,320
 *   q4_z    sum (u - z) q, u, z 0..15                         32*15*127         =     60,960
 *   q5_0    sum (u - 16) q, u 0..31                           32*16*127         =     65,024
 *   q5_1    sum u q, u 0..31                                  32*31*127         =    125,984
 *   iq4_nl  sum V[u] q, V the codebook, |V| <= 127            32*127*127        =    516,128
 *   iq4_xs  (ls - 32) sum V[u] q, ls 6-bit                    32*127*127*32     = 16,516,096
 *   q4_k    sc sum u q, u 0..15, sc 6-bit                     32*15*127*63      =  3,840,480
 *   q5_k    sc sum u q, u 0..31                               32*31*127*63      =  7,936,992
 *   q6_k    s0 sum_lo (u - 32) q + s1 sum_hi (u - 32) q,      32*32*127*128     = 16,646,144
 *           u 0..63, s int8 (sum_lo / sum_hi: over values 0..15 / 16..31, two sub-blocks of 16)
 *   q3_k    s0 sum_lo v q + s1 sum_hi v q, v -4..3, s = 6-bit - 32    32*4*127*32 = 520,192
 *   q2_k    s0 sum_lo u q + s1 sum_hi u q, u 0..3, s 4-bit    32*3*127*15       =    182,880
 *   msum_b: q4_k, q5_k  -mn (hs0 + hs1), mn 6-bit             63*4064           =    256,032
 *           q2_k        -(mn0 hs0 + mn1 hs1), mn 4-bit        15*4064           =     60,960
 *
 * Every bound is below 2^24, so (float)isum_b is exact too; each activation block costs one to
 * two fused multiply-adds whatever the weight type. */

static inline float f16(const uint8_t *p) { return qfmt_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static inline uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* iq4_nl's and iq4_xs's codebook (libqfmt/src/types/iq4_nl.c). */
static const int8_t IQ4_VALUES[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* Integer sums of one weight block against one activation block. */
static int32_t isum_q8(const uint8_t *w, const int8_t *q)
{
    int32_t s = 0;
    for (int j = 0; j < 32; j++) s += (int8_t)w[j] * q[j];
    return s;
}
static int32_t isum_u4(const uint8_t *w, const int8_t *q) /* codes 0..15, q4_0 nibble order */
{
    int32_t s = 0;
    for (int j = 0; j < 16; j++) s += (w[j] & 0x0F) * q[j] + (w[j] >> 4) * q[j + 16];
    return s;
}
static int32_t isum_u8(const uint8_t *w, const int8_t *q)
{
    int32_t s = 0;
    for (int j = 0; j < 32; j++) s += w[j] * q[j];
    return s;
}
static int32_t isum_u5(const uint8_t *qh, const uint8_t *qs, const int8_t *q) /* q5_0/q5_1 codes 0..31 */
{
    uint32_t h = ld32(qh);
    int32_t s = 0;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0x0F) | (int)((h >> j) & 1) << 4, hi = (qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
        s += lo * q[j] + hi * q[j + 16];
    }
    return s;
}
static int32_t isum_iq4(const uint8_t *qs, const int8_t *q) /* codebook values, q4_0 nibble order */
{
    int32_t s = 0;
    for (int j = 0; j < 16; j++) s += IQ4_VALUES[qs[j] & 0x0F] * q[j] + IQ4_VALUES[qs[j] >> 4] * q[j + 16];
    return s;
}

/* Super-blocks of 256 (K types, iq4_xs): w one super-block, x its 8 activation blocks. */
static float sb_q2_k(const uint8_t *w, const xblock *x, float acc) /* 84 bytes */
{
    const float d = f16(w + 80), dmin = f16(w + 82);
    for (int j = 0; j < 8; j++) {
        const uint8_t *qs = w + 16 + 32 * (j / 4);
        int shift = 2 * (j % 4);
        int32_t s[2] = {0, 0};
        for (int l = 0; l < 32; l++) s[l / 16] += ((qs[l] >> shift) & 3) * x[j].q[l];
        int32_t isum = (w[2 * j] & 0x0F) * s[0] + (w[2 * j + 1] & 0x0F) * s[1];
        int32_t msum = -((w[2 * j] >> 4) * x[j].hs[0] + (w[2 * j + 1] >> 4) * x[j].hs[1]);
        acc = fmaf((float)isum, d * x[j].d, acc);
        acc = fmaf((float)msum, dmin * x[j].d, acc);
    }
    return acc;
}
static int q3_k_scale(const uint8_t *s, int j) /* sub-block j's scale, -32..31 (types/q3_k.c) */
{
    const int lo = j < 8 ? s[j] & 0x0F : s[j - 8] >> 4;
    return (lo | ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
}
static float sb_q3_k(const uint8_t *w, const xblock *x, float acc) /* 110 bytes */
{
    const float d = f16(w + 108);
    for (int j = 0; j < 8; j++) {
        const uint8_t *qs = w + 32 + 32 * (j / 4);
        int shift = 2 * (j % 4);
        int32_t s[2] = {0, 0};
        for (int l = 0; l < 32; l++) {
            int v = ((qs[l] >> shift) & 3) - ((w[l] >> j) & 1 ? 0 : 4);
            s[l / 16] += v * x[j].q[l];
        }
        int32_t isum = q3_k_scale(w + 96, 2 * j) * s[0] + q3_k_scale(w + 96, 2 * j + 1) * s[1];
        acc = fmaf((float)isum, d * x[j].d, acc);
    }
    return acc;
}
static void scale_min_k4(const uint8_t *s, int sc[8], int mn[8]) /* types/q4_k.c's get_scale_min_k4 */
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0x0F) | (s[j] >> 6) << 4;
        mn[j + 4] = (s[j + 8] >> 4) | (s[j + 4] >> 6) << 4;
    }
}
static float sb_q45_k(const uint8_t *w, const xblock *x, float acc, bool five) /* 144 / 176 bytes */
{
    const float d = f16(w), dmin = f16(w + 2);
    int sc[8], mn[8];
    scale_min_k4(w + 4, sc, mn);
    const uint8_t *qh = w + 16, *ql = w + (five ? 48 : 16);
    for (int j = 0; j < 8; j++) {
        const uint8_t *c = ql + 32 * (j / 2);
        int shift = 4 * (j % 2);
        int32_t s = 0;
        for (int l = 0; l < 32; l++) {
            int u = (c[l] >> shift) & 0x0F;
            if (five) u |= ((qh[l] >> j) & 1) << 4;
            s += u * x[j].q[l];
        }
        int32_t isum = sc[j] * s, msum = -mn[j] * (x[j].hs[0] + x[j].hs[1]);
        acc = fmaf((float)isum, d * x[j].d, acc);
        acc = fmaf((float)msum, dmin * x[j].d, acc);
    }
    return acc;
}
static float sb_q6_k(const uint8_t *w, const xblock *x, float acc) /* 210 bytes */
{
    const float d = f16(w + 208);
    const int8_t *sc = (const int8_t *)(const void *)(w + 192);
    for (int j = 0; j < 8; j++) {
        int h = j / 4, k = j % 4;
        const uint8_t *ql = w + 64 * h + 32 * (k & 1), *qh = w + 128 + 32 * h;
        int32_t s[2] = {0, 0};
        for (int l = 0; l < 32; l++) {
            int u = ((ql[l] >> (4 * (k >> 1))) & 0x0F) | ((qh[l] >> (2 * k)) & 3) << 4;
            s[l / 16] += (u - 32) * x[j].q[l];
        }
        int32_t isum = sc[2 * j] * s[0] + sc[2 * j + 1] * s[1];
        acc = fmaf((float)isum, d * x[j].d, acc);
    }
    return acc;
}
static float sb_iq4_xs(const uint8_t *w, const xblock *x, float acc) /* 136 bytes */
{
    const float d = f16(w);
    const unsigned sh = (unsigned)(w[2] | w[3] << 8);
    for (int j = 0; j < 8; j++) {
        int ls = ((w[4 + j / 2] >> (4 * (j % 2))) & 0x0F) | (int)((sh >> (2 * j)) & 3) << 4;
        int32_t isum = (ls - 32) * isum_iq4(w + 8 + 16 * j, x[j].q);
        acc = fmaf((float)isum, d * x[j].d, acc);
    }
    return acc;
}

/* The reference: see the float order above. The SIMD kernels (gemm_x86.c) take the same steps
 * in the same order, so every level gives the same float. */
static float row_dot_scalar(uint32_t type, const uint8_t *w, const xblock *x, size_t nb)
{
    float acc = 0.0f;
    switch (type) {
    case QFMT_TYPE_Q8_0:
        for (size_t b = 0; b < nb; b++, w += 34) acc = fmaf((float)isum_q8(w + 2, x[b].q), f16(w) * x[b].d, acc);
        break;
    case QFMT_TYPE_Q4_0:
        for (size_t b = 0; b < nb; b++, w += 18)
            acc = fmaf((float)(isum_u4(w + 2, x[b].q) - 8 * x[b].sum), f16(w) * x[b].d, acc);
        break;
    case QFMT_TYPE_Q4_1:
        for (size_t b = 0; b < nb; b++, w += 20) {
            acc = fmaf((float)isum_u4(w + 4, x[b].q), f16(w) * x[b].d, acc);
            acc = fmaf(f16(w + 2), x[b].s, acc);
        }
        break;
    case QFMT_TYPE_Q8_Z:
        for (size_t b = 0; b < nb; b++, w += 35)
            acc = fmaf((float)(isum_u8(w + 3, x[b].q) - w[2] * x[b].sum), f16(w) * x[b].d, acc);
        break;
    case QFMT_TYPE_Q4_Z:
        for (size_t b = 0; b < nb; b++, w += 19)
            acc = fmaf((float)(isum_u4(w + 3, x[b].q) - (w[2] & 0x0F) * x[b].sum), f16(w) * x[b].d, acc);
        break;
    case QFMT_TYPE_Q5_0:
        for (size_t b = 0; b < nb; b++, w += 22)
            acc = fmaf((float)(isum_u5(w + 2, w + 6, x[b].q) - 16 * x[b].sum), f16(w) * x[b].d, acc);
        break;
    case QFMT_TYPE_Q5_1:
        for (size_t b = 0; b < nb; b++, w += 24) {
            acc = fmaf((float)isum_u5(w + 4, w + 8, x[b].q), f16(w) * x[b].d, acc);
            acc = fmaf(f16(w + 2), x[b].s, acc);
        }
        break;
    case QFMT_TYPE_IQ4_NL:
        for (size_t b = 0; b < nb; b++, w += 18) acc = fmaf((float)isum_iq4(w + 2, x[b].q), f16(w) * x[b].d, acc);
        break;
    case QFMT_TYPE_Q2_K:
        for (size_t b = 0; b < nb; b += 8, w += 84) acc = sb_q2_k(w, x + b, acc);
        break;
    case QFMT_TYPE_Q3_K:
        for (size_t b = 0; b < nb; b += 8, w += 110) acc = sb_q3_k(w, x + b, acc);
        break;
    case QFMT_TYPE_Q4_K:
        for (size_t b = 0; b < nb; b += 8, w += 144) acc = sb_q45_k(w, x + b, acc, false);
        break;
    case QFMT_TYPE_Q5_K:
        for (size_t b = 0; b < nb; b += 8, w += 176) acc = sb_q45_k(w, x + b, acc, true);
        break;
    case QFMT_TYPE_Q6_K:
        for (size_t b = 0; b < nb; b += 8, w += 210) acc = sb_q6_k(w, x + b, acc);
        break;
    case QFMT_TYPE_IQ4_XS:
        for (size_t b = 0; b < nb; b += 8, w += 136) acc = sb_iq4_xs(w, x + b, acc);
        break;
    }
    return acc;
}

void qfmt__gemm_q_scalar(const qmat *w, const xblock *xq, size_t T, size_t r0, size_t r1, float *y, size_t ldy,
                   const float *bias)
{
    size_t nb = w->cols / QFMT_BLOCK_ELEMS;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *wr = w->data + r * w->row_bytes;
        float b = bias ? bias[r] : 0.0f;
        for (size_t t = 0; t < T; t++) y[t * ldy + r] = row_dot_scalar(w->type, wr, xq + t * nb, nb) + b;
    }
}

static gemm_q_fn gemm_q_of(gemm_level l)
{
    return l == GEMM_AMX ? qfmt__gemm_q_amx : l == GEMM_VNNI ? qfmt__gemm_q_vnni : l == GEMM_AVX2 ? qfmt__gemm_q_avx2
                                                                                              : qfmt__gemm_q_scalar;
}

/* ---- Matrix products ------------------------------------------------------------------ */

typedef struct {
    const qmat *w;
    const float *bias, *x;
    size_t T;
    float *y;
    xblock *xq;
    gemm_level level;
    void (*rows_fn)(void *ctx, size_t r0, size_t r1); /* the fast kernel, for mm_split */
    uint8_t *amx_b; /* the AMX level's activation tiles, laid out once for all threads, or NULL */
    /* with amx_b: one working area per thread of the pool (a chunk takes a free one), so that
     * no chunk allocates (fresh pages, zeroed by the kernel, at every call) */
    uint8_t *amx_scratch;
    size_t amx_slot_bytes, amx_slots;
    atomic_bool *amx_busy;
} mm_job;

/* The exact path: each row decoded to fp32, fp32 dot products. */
static void mm_exact(void *ctx, size_t begin, size_t end)
{
    mm_job *j = ctx;
    const qmat *w = j->w;
    bool decode = w->type != QFMT_TYPE_F32;
    float *row = decode ? malloc(w->cols * sizeof *row) : NULL;
    for (size_t r = begin; r < end; r++) {
        float b = j->bias ? j->bias[r] : 0.0f;
        if (decode && !row) { /* no memory for a row: NaN out rather than read the wrong bytes */
            for (size_t t = 0; t < j->T; t++) j->y[t * w->rows + r] = NAN;
            continue;
        }
        const float *wr = (const float *)(const void *)(w->data + r * w->row_bytes);
        if (row) {
            qfmt__qmat_row(w, r, row);
            wr = row;
        }
        for (size_t t = 0; t < j->T; t++) j->y[t * w->rows + r] = qfmt_dot(wr, j->x + t * w->cols, w->cols) + b;
    }
    free(row);
}

/* Fast path, float weights (F16, BF16), read straight from the map: a dot per row for one
 * token (a stream per thread: generation is memory-bound), tiles of 4 rows x 2 tokens for more
 * (each weight converted once per two tokens). */
static void mm_float_fast(void *ctx, size_t begin, size_t end)
{
    mm_job *j = ctx;
    const qmat *w = j->w;
    if (j->T > 1) {
        (j->level >= GEMM_VNNI ? qfmt__gemm_f_avx512 : qfmt__gemm_f_avx2)(w, j->x, j->T, begin, end, j->y, w->rows, j->bias);
        return;
    }
    float (*dot)(const uint8_t *, const float *, size_t) = w->type == QFMT_TYPE_F16 ? qfmt__dot_f16_avx2 : qfmt__dot_bf16_avx2;
    for (size_t r = begin; r < end; r++)
        j->y[r] = dot(w->data + r * w->row_bytes, j->x, w->cols) + (j->bias ? j->bias[r] : 0.0f);
}

static void mm_quant_fast(void *ctx, size_t begin, size_t end)
{
    mm_job *j = ctx;
    if (j->amx_b) {
        size_t k = 0; /* at most amx_slots chunks run at once: one of the slots is free */
        while (j->amx_scratch && atomic_exchange_explicit(&j->amx_busy[k], true, memory_order_acquire))
            k = (k + 1) % j->amx_slots;
        uint8_t *scratch = j->amx_scratch ? j->amx_scratch + k * j->amx_slot_bytes : NULL;
        qfmt__gemm_q_amx_b(j->w, j->amx_b, scratch, j->T, begin, end, j->y, j->w->rows, j->bias);
        if (j->amx_scratch) atomic_store_explicit(&j->amx_busy[k], false, memory_order_release);
    } else {
        gemm_q_of(j->level)(j->w, j->xq, j->T, begin, end, j->y, j->w->rows, j->bias);
    }
}

static void amx_pack_groups(void *ctx, size_t begin, size_t end)
{
    mm_job *j = ctx;
    qfmt__amx_pack_b(j->w, j->xq, j->T, begin, end, j->amx_b);
}

static void quantize_rows(void *ctx, size_t begin, size_t end)
{
    mm_job *j = ctx;
    size_t n = j->w->cols, nb = n / QFMT_BLOCK_ELEMS;
    for (size_t t = begin; t < end; t++) {
        if (j->level == GEMM_SCALAR) qfmt__act_quantize_scalar(j->x + t * n, n, j->xq + t * nb);
        else qfmt__act_quantize_avx2(j->x + t * n, n, j->xq + t * nb);
    }
}

/* Fast products are split among threads in units of 8 rows, the kernels' strips and folds. */
enum { ROW_UNIT = 8 };
static void mm_split(void *ctx, size_t begin, size_t end)
{
    mm_job *j = ctx;
    size_t rows = j->w->rows, r1 = end * ROW_UNIT < rows ? end * ROW_UNIT : rows;
    j->rows_fn(ctx, begin * ROW_UNIT, r1);
}

static void qmat_mul_level(qfmt_pool *p, const qmat *w, const float *bias, const float *x, size_t T, float *y,
                           bool exact, gemm_level level)
{
    mm_job j = {w, bias, x, T, y, NULL, level, NULL, NULL, NULL, 0, 0, NULL};
    size_t units = (w->rows + ROW_UNIT - 1) / ROW_UNIT;
    if (!exact && qfmt__is_block_type(w->type)) {
        xblock *xq = malloc(T * (w->cols / QFMT_BLOCK_ELEMS) * sizeof *xq + 1);
        if (xq) {
            j.xq = xq;
            qfmt_pool_for(p, T, quantize_rows, &j);
            size_t bsz = level == GEMM_AMX ? qfmt__amx_b_size(w, T) : 0;
            if (bsz && (j.amx_b = aligned_alloc(64, (bsz + 63) / 64 * 64)) != NULL) { /* else each thread lays them out */
                qfmt_pool_for(p, (T + 15) / 16, amx_pack_groups, &j);
                j.amx_slots = qfmt_pool_size(p);
                j.amx_slot_bytes = (qfmt__amx_scratch_size(w) + 63) / 64 * 64;
                j.amx_busy = malloc(j.amx_slots * sizeof *j.amx_busy);
                j.amx_scratch = j.amx_busy ? aligned_alloc(64, j.amx_slots * j.amx_slot_bytes) : NULL;
                for (size_t k = 0; j.amx_scratch && k < j.amx_slots; k++) atomic_init(&j.amx_busy[k], false);
            }
            j.rows_fn = mm_quant_fast;
            qfmt_pool_for(p, units, mm_split, &j);
            free(j.amx_scratch);
            free(j.amx_busy);
            free(j.amx_b);
            free(xq);
            return;
        }
    }
    if (!exact && level != GEMM_SCALAR &&
        (w->type == QFMT_TYPE_F16 || w->type == QFMT_TYPE_BF16)) { /* F32: the exact path is as fast */
        j.rows_fn = mm_float_fast;
        qfmt_pool_for(p, units, mm_split, &j);
        return;
    }
    qfmt_pool_for(p, w->rows, mm_exact, &j);
}

void qfmt__qmat_mul(qfmt_pool *p, const qmat *w, const float *bias, const float *x, size_t T, float *y, bool exact)
{
    qmat_mul_level(p, w, bias, x, T, y, exact, qfmt__gemm_best_level());
}

/* Exposed for the kernel tests: the fast product at a given level (gemm.h), one thread. */
int qfmt__qmat_mul_fast_at(const qmat *w, const float *bias, const float *x, size_t T, float *y, int level);
int qfmt__qmat_mul_fast_at(const qmat *w, const float *bias, const float *x, size_t T, float *y, int level)
{
    if (!qfmt__gemm_level_available((gemm_level)level)) return -1;
    qmat_mul_level(NULL, w, bias, x, T, y, false, (gemm_level)level);
    return 0;
}

/* ---- Elementwise ---------------------------------------------------------------------- */

void qfmt__layer_norm(float *x, size_t n, const float *w, const float *b, float eps)
{
    double mean = 0, var = 0;
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= (double)n;
    float inv = (float)(1.0 / sqrt(var + eps));
    for (size_t i = 0; i < n; i++) x[i] = (float)(x[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
}

void qfmt__rms_norm(float *x, size_t n, const float *w, float eps)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (size_t i = 0; i < n; i++) x[i] = x[i] * inv * w[i];
}

float qfmt__gelu_tanh(float x)
{
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}
float qfmt__gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
float qfmt__silu(float x) { return x / (1.0f + expf(-x)); }

void qfmt__softmax(float *x, size_t n)
{
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) mx = fmaxf(mx, x[i]);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}
