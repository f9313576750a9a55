/* q4_0: fp16 d, then 16 bytes of 4-bit codes; x ~ d*(q-8). 18 bytes. Byte j holds element j
 * in its low nibble and element j+16 in its high nibble. Byte-identical to ggml's
 * quantize_row_q4_0_ref: d = (signed value of largest magnitude)/-8, id = 1/d in fp32,
 * q = min(15, (int8_t)(x*id + 8.5f)). */
#include "internal/block.h"
#include "internal/kernels.h"
#include "internal/kquant_util.h"

enum { BYTES = 18 };

size_t qfmt__q4_0_quantize_ref(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QFMT__QK; j++)
            if (amax < fabsf(x[j])) { /* the first of equal magnitudes wins */
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float d = max / -8.0f;
        const float id = qfmt__inv(d);
        const uint16_t dh = qfmt_f32_to_f16(d);
        if (!qfmt__f16_finite(dh)) return b;
        qfmt__st16(y, dh);
        for (int j = 0; j < QFMT__QK / 2; j++) {
            int q0 = (int8_t)(x[j] * id + 8.5f), q1 = (int8_t)(x[j + 16] * id + 8.5f);
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            y[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
    return nb;
}

void qfmt__q4_0_dequantize_ref(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        const float d = qfmt_f16_to_f32(qfmt__ld16(y));
        for (int j = 0; j < QFMT__QK / 2; j++) {
            x[j] = (float)((y[2 + j] & 0x0F) - 8) * d;
            x[j + 16] = (float)((y[2 + j] >> 4) - 8) * d;
        }
    }
}

static double encode(const float *x, float d, uint8_t *blk)
{
    const uint16_t dh = qfmt_f32_to_f16(d);
    const float df = qfmt_f16_to_f32(dh), id = qfmt__inv(df);
    float r[QFMT__QK];
    int q[QFMT__QK];
    qfmt__st16(blk, dh);
    for (int j = 0; j < QFMT__QK; j++) {
        q[j] = (int)fminf(7.0f, fmaxf(-8.0f, roundf(x[j] * id)));
        r[j] = (float)q[j] * df;
    }
    for (int j = 0; j < QFMT__QK / 2; j++) blk[2 + j] = (uint8_t)((q[j] + 8) | ((q[j + 16] + 8) << 4));
    return qfmt__sse(x, r, QFMT__QK);
}

size_t qfmt__q4_0_quantize_best(const float *x, uint8_t *y, size_t nb)
{
    size_t done = qfmt__q4_0_quantize_ref(x, y, nb);
    for (size_t b = 0; b < done; b++, x += QFMT__QK, y += BYTES) {
        float r[QFMT__QK], amax = 0.0f, max = 0.0f;
        qfmt__q4_0_dequantize_ref(y, r, 1);
        double best = qfmt__sse(x, r, QFMT__QK);
        for (int j = 0; j < QFMT__QK; j++)
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        if (amax == 0.0f) continue;
        uint8_t cand[BYTES];
        /* The extreme value mapped to -8 or to +7 and to points around them, each followed
         * by the least-squares scale for the codes it gives. */
        for (int sgn = -1; sgn <= 1; sgn += 2)
            for (int k = -8; k <= 16; k++) {
                float t = (sgn < 0 ? 8.0f : 7.0f) - 0.125f * (float)k;
                if (t <= 0.5f) continue;
                float d = max / ((float)sgn * t);
                double e = encode(x, d, cand);
                if (e < best) {
                    best = e;
                    memcpy(y, cand, BYTES);
                }
                double sxq = 0, sqq = 0;
                for (int j = 0; j < QFMT__QK / 2; j++) {
                    double q0 = (cand[2 + j] & 0x0F) - 8, q1 = (cand[2 + j] >> 4) - 8;
                    sxq += x[j] * q0 + x[j + 16] * q1;
                    sqq += q0 * q0 + q1 * q1;
                }
                if (sqq > 0 && fabs(sxq / sqq) < 65504.0) {
                    e = encode(x, (float)(sxq / sqq), cand);
                    if (e < best) {
                        best = e;
                        memcpy(y, cand, BYTES);
                    }
                }
            }
    }
    return done;
}

/* ggml's quantize_row_q4_0_impl with importance: per element w = imp * sqrt(sigma2 + x^2),
 * sigma2 the mean square of the whole row (so this takes one full row), then make_qx_quants
 * (nmax 8) picks d and the codes. */
size_t qfmt__q4_0_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w)
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
        float weight[QFMT__QK];
        int8_t L[QFMT__QK];
        for (int j = 0; j < QFMT__QK; j++) weight[j] = wb[j] * sqrtf(sigma2 + x[j] * x[j]);
        const float d = qfmt__make_qx_quants(QFMT__QK, 8, x, L, 1, weight);
        const uint16_t dh = qfmt_f32_to_f16(d);
        if (!qfmt__f16_finite(dh)) return b;
        qfmt__st16(y, dh);
        for (int j = 0; j < QFMT__QK / 2; j++) y[2 + j] = (uint8_t)(L[j] | L[j + 16] << 4);
    }
    return nb;
}
