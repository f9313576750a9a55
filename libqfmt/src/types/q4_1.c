/* q4_1: fp16 d, fp16 m, then 16 bytes of 4-bit codes (q4_0's nibble order); x ~ d*q + m.
 * 20 bytes. Byte-identical to ggml's quantize_row_q4_1_ref: d = (max-min)/15, m = min,
 * id = 1/d in fp32, q = min(15, (int8_t)((x-min)*id + 0.5f)). */
#include "internal/block.h"
#include "internal/kernels.h"
#include "internal/kquant_util.h"

enum { BYTES = 20 };

size_t qfmt__q4_1_quantize_ref(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        float min = x[0], max = x[0];
        for (int j = 1; j < QFMT__QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15.0f;
        const float id = qfmt__inv(d);
        const uint16_t dh = qfmt_f32_to_f16(d), mh = qfmt_f32_to_f16(min);
        if (!qfmt__f16_finite(dh) || !qfmt__f16_finite(mh)) return b;
        qfmt__st16(y, dh);
        qfmt__st16(y + 2, mh);
        for (int j = 0; j < QFMT__QK / 2; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[j + 16] - min) * id;
            int q0 = (int8_t)(x0 + 0.5f), q1 = (int8_t)(x1 + 0.5f);
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            y[4 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
    return nb;
}

void qfmt__q4_1_dequantize_ref(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        const float d = qfmt_f16_to_f32(qfmt__ld16(y)), m = qfmt_f16_to_f32(qfmt__ld16(y + 2));
        for (int j = 0; j < QFMT__QK / 2; j++) {
            x[j] = (float)(y[4 + j] & 0x0F) * d + m;
            x[j + 16] = (float)(y[4 + j] >> 4) * d + m;
        }
    }
}

/* Nearest codes for the stored d and m; returns the squared error (NaN if unstorable). */
static double encode(const float *x, float d, float m, uint8_t *blk)
{
    const uint16_t dh = qfmt_f32_to_f16(d), mh = qfmt_f32_to_f16(m);
    if (!qfmt__f16_finite(dh) || !qfmt__f16_finite(mh)) return NAN;
    const float df = qfmt_f16_to_f32(dh), mf = qfmt_f16_to_f32(mh), id = qfmt__inv(df);
    float r[QFMT__QK];
    int q[QFMT__QK];
    qfmt__st16(blk, dh);
    qfmt__st16(blk + 2, mh);
    for (int j = 0; j < QFMT__QK; j++) {
        q[j] = (int)fminf(15.0f, fmaxf(0.0f, roundf((x[j] - mf) * id)));
        r[j] = (float)q[j] * df + mf;
    }
    for (int j = 0; j < QFMT__QK / 2; j++) blk[4 + j] = (uint8_t)(q[j] | (q[j + 16] << 4));
    return qfmt__sse(x, r, QFMT__QK);
}

/* Least-squares d and m for the codes in blk. Returns 0 if the system is singular. */
static int refit(const float *x, const uint8_t *blk, float *d, float *m)
{
    double sq = 0, sqq = 0, sx = 0, sxq = 0, n = QFMT__QK;
    for (int j = 0; j < QFMT__QK / 2; j++) {
        double q0 = blk[4 + j] & 0x0F, q1 = blk[4 + j] >> 4;
        sq += q0 + q1;
        sqq += q0 * q0 + q1 * q1;
        sx += (double)x[j] + (double)x[j + 16];
        sxq += x[j] * q0 + x[j + 16] * q1;
    }
    double det = n * sqq - sq * sq;
    if (det <= 0) return 0;
    *d = (float)((n * sxq - sq * sx) / det);
    *m = (float)((sqq * sx - sq * sxq) / det);
    return *d > 0 && isfinite(*d) && isfinite(*m);
}

size_t qfmt__q4_1_quantize_best(const float *x, uint8_t *y, size_t nb)
{
    size_t done = qfmt__q4_1_quantize_ref(x, y, nb);
    for (size_t b = 0; b < done; b++, x += QFMT__QK, y += BYTES) {
        float r[QFMT__QK], min = x[0], max = x[0];
        qfmt__q4_1_dequantize_ref(y, r, 1);
        double best = qfmt__sse(x, r, QFMT__QK);
        for (int j = 1; j < QFMT__QK; j++) {
            min = fminf(min, x[j]);
            max = fmaxf(max, x[j]);
        }
        const float range = max - min;
        if (range == 0.0f) continue;
        uint8_t cand[BYTES];
        /* Ranges shrunk from either end (outliers then clip), each refitted twice. */
        for (int lo = 0; lo <= 6; lo++)
            for (int hi = 0; hi <= 6; hi++) {
                float mn = min + range * 0.025f * (float)lo, mx = max - range * 0.025f * (float)hi;
                if (mx <= mn) continue;
                float d = (mx - mn) / 15.0f, m = mn;
                for (int it = 0; it < 3; it++) {
                    double e = encode(x, d, m, cand);
                    if (e < best) {
                        best = e;
                        memcpy(y, cand, BYTES);
                    }
                    if (!(e == e) || !refit(x, cand, &d, &m)) break;
                }
            }
    }
    return done;
}

/* ggml's quantize_row_q4_1_impl with importance: w = imp * sqrt(sigma2 + x^2), sigma2 the
 * mean square of the whole row (so this takes one full row); make_qkx3_quants (nmax 15, 37
 * trial ranges) picks d, the min and the codes. */
size_t qfmt__q4_1_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w)
{
    float sum_x2 = 0.0f;
    for (size_t j = 0; j < n; j++) sum_x2 += x[j] * x[j];
    const float sigma2 = sum_x2 / (float)n;
    if (!isfinite(sigma2)) return 0; /* fp32 overflow: every block's weights would be Inf */
    const size_t nb = n / QFMT__QK;
    const int k = qfmt__imp_exponent(w, n); /* scaled importance (internal/kquant_util.h) */
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, w += QFMT__QK, y += BYTES) {
        float wbuf[QFMT__QK];
        const float *wb = qfmt__imp_scaled(w, QFMT__QK, k, wbuf);
        float weight[QFMT__QK], min;
        uint8_t L[QFMT__QK], Laux[QFMT__QK];
        for (int j = 0; j < QFMT__QK; j++) weight[j] = wb[j] * sqrtf(sigma2 + x[j] * x[j]);
        const float d = qfmt__make_qkx3_quants(QFMT__QK, 15, x, weight, L, &min, Laux, -0.9f,
                                               0.05f, 36, 0);
        const uint16_t dh = qfmt_f32_to_f16(d), mh = qfmt_f32_to_f16(-min);
        if (!qfmt__f16_finite(dh) || !qfmt__f16_finite(mh)) return b;
        qfmt__st16(y, dh);
        qfmt__st16(y + 2, mh);
        for (int j = 0; j < QFMT__QK / 2; j++) y[4 + j] = (uint8_t)(L[j] | L[j + 16] << 4);
    }
    return nb;
}
