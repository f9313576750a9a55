/* q5_1: ggml's block_q5_1, 32 values in 24 bytes; x ~ d*q + m, q in 0..31.
 *   [0,2)   fp16 d
 *   [2,4)   fp16 m
 *   [4,8)   qh: bit j (little-endian 32-bit word) = bit 4 of q[j]
 *   [8,24)  qs: byte j = low nibble of q[j] | low nibble of q[j+16] << 4
 * Reference (ggml's quantize_row_q5_1_ref): d = (max-min)/31, m = min, id = 1/d in fp32,
 * q = (uint8_t)((x-min)*id + 0.5f).
 * Weighted (quantize_row_q5_1_impl): w = imp * sqrt(sigma2 + x^2), sigma2 the row's mean square;
 * make_qkx3_quants (nmax 31, 37 trial ranges) chooses d, the min and the codes. */
#include "internal/block.h"
#include "internal/kernels.h"
#include "internal/kquant_util.h"

enum { BYTES = 24 };

size_t qfmt__q5_1_quantize_ref(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        float min = x[0], max = x[0];
        for (int j = 1; j < QFMT__QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31.0f;
        const float id = qfmt__inv(d);
        const uint16_t dh = qfmt_f32_to_f16(d), mh = qfmt_f32_to_f16(min);
        if (!qfmt__f16_finite(dh) || !qfmt__f16_finite(mh)) return b;
        uint8_t L[QFMT__QK];
        for (int j = 0; j < QFMT__QK; j++) L[j] = (uint8_t)((x[j] - min) * id + 0.5f);
        qfmt__st16(y, dh);
        qfmt__st16(y + 2, mh);
        qfmt__pack_5bit32(L, y + 4, y + 8);
    }
    return nb;
}

void qfmt__q5_1_dequantize_ref(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        const float d = qfmt_f16_to_f32(qfmt__ld16(y)), m = qfmt_f16_to_f32(qfmt__ld16(y + 2));
        const uint32_t qh = (uint32_t)y[4] | (uint32_t)y[5] << 8 | (uint32_t)y[6] << 16 |
                            (uint32_t)y[7] << 24;
        for (int j = 0; j < QFMT__QK / 2; j++) {
            const int h0 = (int)((qh >> j) << 4 & 0x10), h1 = (int)((qh >> (j + 12)) & 0x10);
            const int q0 = (y[8 + j] & 0x0F) | h0, q1 = (y[8 + j] >> 4) | h1;
            x[j] = (float)q0 * d + m;
            x[j + 16] = (float)q1 * d + m;
        }
    }
}

size_t qfmt__q5_1_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w)
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
        const float d = qfmt__make_qkx3_quants(QFMT__QK, 31, x, weight, L, &min, Laux, -0.9f,
                                               0.05f, 36, 0);
        const uint16_t dh = qfmt_f32_to_f16(d), mh = qfmt_f32_to_f16(-min);
        if (!qfmt__f16_finite(dh) || !qfmt__f16_finite(mh)) return b;
        qfmt__st16(y, dh);
        qfmt__st16(y + 2, mh);
        qfmt__pack_5bit32(L, y + 4, y + 8);
    }
    return nb;
}
