/* Numeric kernels of the forward pass. The fast path's integer dot products have a scalar and
 * an AVX2 version that return the same float bit for bit: the integer sums are exact, and the
 * float steps (scale products, accumulation) are done alike, in the same order. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal/quant.h"
#include "ops.h"
#include "qfmt.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

/* ---- Row decoding --------------------------------------------------------------------- */

void qmat_row(const qmat *w, uint64_t r, float *out)
{
    const uint8_t *p = w->data + r * w->row_bytes;
    if (w->type == QFMT_TYPE_F32) {
        memcpy(out, p, w->cols * sizeof(float));
    } else if (w->type == QFMT_TYPE_F16 || w->type == QFMT_TYPE_BF16) {
        qfmt_convert_floats(w->type, p, QFMT_TYPE_F32, out, w->cols);
    } else {
        const qfmt__quant_kernels *k = qfmt__quant_get(w->type);
        (qfmt__cpu_has_avx2() && k->dequantize_avx2 ? k->dequantize_avx2 : k->dequantize_ref)(
            p, out, w->cols / QFMT__QK);
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
    if (qfmt__cpu_has_avx2()) return dot_avx2(a, b, n);
#endif
    return dot_scalar(a, b, n);
}

/* ---- Fast path: 8-bit activations ----------------------------------------------------- */

/* One block of 32 activations: x ~ d*q; s = d * sum(q) for the offset terms. */
typedef struct {
    float d, s;
    int32_t sum;
    int8_t q[QFMT__QK];
} xblock;

static void quantize_act(const float *x, size_t n, xblock *out)
{
    for (size_t b = 0; b < n / QFMT__QK; b++, x += QFMT__QK) {
        float amax = 0.0f;
        for (int j = 0; j < QFMT__QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < QFMT__QK; j++) {
            out[b].q[j] = (int8_t)roundf(x[j] * id);
            sum += out[b].q[j];
        }
        out[b].d = d;
        out[b].sum = sum;
        out[b].s = d * (float)sum;
    }
}

static inline float f16(const uint8_t *p) { return qfmt_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

/* Integer sums of one weight block against one activation block, per type. Scalar. */
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

#if defined(__x86_64__)
AVX2 static inline int32_t hsum_i32(__m256i v)
{
    __m128i a = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0x4E));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0xB1));
    return _mm_cvtsi128_si32(a);
}
/* Unsigned bytes u (0..255) times signed bytes s, summed. maddubs adds pairs into int16,
 * which 2*255*127 would overflow: the codes go in as two nibble halves. */
AVX2 static inline int32_t dot_u8s8(__m256i u, __m256i s)
{
    __m256i lo = _mm256_and_si256(u, _mm256_set1_epi8(0x0F)), hi = _mm256_and_si256(_mm256_srli_epi16(u, 4), _mm256_set1_epi8(0x0F));
    __m256i one = _mm256_set1_epi16(1);
    __m256i a = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, s), one);
    __m256i b = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, s), one);
    return hsum_i32(_mm256_add_epi32(a, _mm256_slli_epi32(b, 4)));
}
AVX2 static int32_t isum_q8_avx2(const uint8_t *w, const int8_t *q)
{
    __m256i a = _mm256_loadu_si256((const __m256i *)w), b = _mm256_loadu_si256((const __m256i *)q);
    /* |w| * sign(q, w): w = -128 never occurs in q8_0 (codes are -127..127) */
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
    return hsum_i32(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
AVX2 static int32_t isum_u4_avx2(const uint8_t *w, const int8_t *q)
{
    __m128i b = _mm_loadu_si128((const __m128i *)w);
    __m256i codes = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0F)),
                                     _mm_and_si128(b, _mm_set1_epi8(0x0F)));
    __m256i p = _mm256_maddubs_epi16(codes, _mm256_loadu_si256((const __m256i *)q));
    return hsum_i32(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
AVX2 static int32_t isum_u8_avx2(const uint8_t *w, const int8_t *q)
{
    return dot_u8s8(_mm256_loadu_si256((const __m256i *)w), _mm256_loadu_si256((const __m256i *)q));
}
#endif

typedef int32_t (*isum_fn)(const uint8_t *, const int8_t *);

/* Row of weight blocks dotted with activation blocks; one float sequence for both kernels. */
static float row_dot_fast(uint32_t type, const uint8_t *w, const xblock *x, size_t nb, bool simd)
{
    float acc = 0.0f;
    isum_fn q8 = isum_q8, u4 = isum_u4, u8 = isum_u8;
#if defined(__x86_64__)
    if (simd) {
        q8 = isum_q8_avx2;
        u4 = isum_u4_avx2;
        u8 = isum_u8_avx2;
    }
#else
    (void)simd;
#endif
    switch (type) {
    case QFMT_TYPE_Q8_0:
        for (size_t b = 0; b < nb; b++, w += 34) acc += f16(w) * x[b].d * (float)q8(w + 2, x[b].q);
        break;
    case QFMT_TYPE_Q4_0:
        for (size_t b = 0; b < nb; b++, w += 18)
            acc += f16(w) * x[b].d * (float)(u4(w + 2, x[b].q) - 8 * x[b].sum);
        break;
    case QFMT_TYPE_Q4_1:
        for (size_t b = 0; b < nb; b++, w += 20) {
            acc += f16(w) * x[b].d * (float)u4(w + 4, x[b].q);
            acc += f16(w + 2) * x[b].s;
        }
        break;
    case QFMT_TYPE_Q8_Z:
        for (size_t b = 0; b < nb; b++, w += 35)
            acc += f16(w) * x[b].d * (float)(u8(w + 3, x[b].q) - w[2] * x[b].sum);
        break;
    case QFMT_TYPE_Q4_Z:
        for (size_t b = 0; b < nb; b++, w += 19)
            acc += f16(w) * x[b].d * (float)(u4(w + 3, x[b].q) - (w[2] & 0x0F) * x[b].sum);
        break;
    }
    return acc;
}

/* Exposed for the kernel test: the fast dot of one row with either kernel. */
float qfmt__row_dot_fast(uint32_t type, const uint8_t *w, const float *x, size_t n, bool simd);
float qfmt__row_dot_fast(uint32_t type, const uint8_t *w, const float *x, size_t n, bool simd)
{
    xblock *xb = malloc((n / QFMT__QK) * sizeof *xb + 1);
    if (!xb) return NAN;
    quantize_act(x, n, xb);
    float r = row_dot_fast(type, w, xb, n / QFMT__QK, simd && qfmt__cpu_has_avx2());
    free(xb);
    return r;
}

/* ---- Matrix products ------------------------------------------------------------------ */

typedef struct {
    const qmat *w;
    const float *bias, *x;
    size_t T;
    float *y;
    const xblock *xq;
    bool simd;
} mm_job;

static void mm_exact(void *ctx, size_t begin, size_t end)
{
    mm_job *j = ctx;
    const qmat *w = j->w;
    float *row = w->type == QFMT_TYPE_F32 ? NULL : malloc(w->cols * sizeof *row);
    for (size_t r = begin; r < end; r++) {
        const float *wr = (const float *)(const void *)(w->data + r * w->row_bytes);
        if (row) {
            qmat_row(w, r, row);
            wr = row;
        }
        float b = j->bias ? j->bias[r] : 0.0f;
        for (size_t t = 0; t < j->T; t++) j->y[t * w->rows + r] = qfmt_dot(wr, j->x + t * w->cols, w->cols) + b;
    }
    free(row);
}

static void mm_fast(void *ctx, size_t begin, size_t end)
{
    mm_job *j = ctx;
    const qmat *w = j->w;
    size_t nb = w->cols / QFMT__QK;
    for (size_t r = begin; r < end; r++) {
        const uint8_t *wr = w->data + r * w->row_bytes;
        float b = j->bias ? j->bias[r] : 0.0f;
        for (size_t t = 0; t < j->T; t++)
            j->y[t * w->rows + r] = row_dot_fast(w->type, wr, j->xq + t * nb, nb, j->simd) + b;
    }
}

static void quantize_rows(void *ctx, size_t begin, size_t end)
{
    mm_job *j = ctx;
    size_t nb = j->w->cols / QFMT__QK;
    for (size_t t = begin; t < end; t++)
        quantize_act(j->x + t * j->w->cols, j->w->cols, (xblock *)j->xq + t * nb);
}

void qmat_mul(qfmt_pool *p, const qmat *w, const float *bias, const float *x, size_t T, float *y,
              bool exact)
{
    mm_job j = {w, bias, x, T, y, NULL, qfmt__cpu_has_avx2() != 0};
    bool fast = !exact && qfmt__quant_get(w->type) != NULL;
    if (fast) {
        xblock *xq = malloc(T * (w->cols / QFMT__QK) * sizeof *xq + 1);
        if (xq) {
            j.xq = xq;
            qfmt_pool_for(p, T, quantize_rows, &j);
            qfmt_pool_for(p, w->rows, mm_fast, &j);
            free(xq);
            return;
        }
    }
    qfmt_pool_for(p, w->rows, mm_exact, &j);
}

/* ---- Elementwise ---------------------------------------------------------------------- */

void layer_norm(float *x, size_t n, const float *w, const float *b, float eps)
{
    double mean = 0, var = 0;
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= (double)n;
    float inv = (float)(1.0 / sqrt(var + eps));
    for (size_t i = 0; i < n; i++) x[i] = (float)(x[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
}

void rms_norm(float *x, size_t n, const float *w, float eps)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (size_t i = 0; i < n; i++) x[i] = x[i] * inv * w[i];
}

float gelu_tanh(float x)
{
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}
float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
float silu(float x) { return x / (1.0f + expf(-x)); }

void softmax(float *x, size_t n)
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
