/* q5_0: ggml's block_q5_0, 32 values in 22 bytes; x ~ d*(q - 16), q in 0..31.
 *   [0,2)   fp16 d
 *   [2,6)   qh: bit j (little-endian 32-bit word) = bit 4 of q[j]
 *   [6,22)  qs: byte j = low nibble of q[j] | low nibble of q[j+16] << 4
 * Reference (ggml's quantize_row_q5_0_ref): d = (signed value of largest magnitude)/-16,
 * id = 1/d in fp32, q = min(31, (int8_t)(x*id + 16.5f)).
 * Weighted (quantize_row_q5_0_impl): per element w = imp * sqrt(sigma2 + x^2) with sigma2 the
 * row's mean square, then make_qx_quants(nmax 16) chooses d and the codes. */
#include "internal/block.h"
#include "internal/kernels.h"
#include "internal/kquant_util.h"

enum { BYTES = 22 };

size_t qfmt__q5_0_quantize_ref(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QFMT__QK; j++)
            if (amax < fabsf(x[j])) { /* the first of equal magnitudes wins */
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float d = max / -16.0f;
        const float id = qfmt__inv(d);
        const uint16_t dh = qfmt_f32_to_f16(d);
        if (!qfmt__f16_finite(dh)) return b;
        uint8_t L[QFMT__QK];
        for (int j = 0; j < QFMT__QK; j++) {
            const int q = (int8_t)(x[j] * id + 16.5f);
            L[j] = (uint8_t)(q < 31 ? q : 31);
        }
        qfmt__st16(y, dh);
        qfmt__pack_5bit32(L, y + 2, y + 6);
    }
    return nb;
}

void qfmt__q5_0_dequantize_ref(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        const float d = qfmt_f16_to_f32(qfmt__ld16(y));
        const uint32_t qh = (uint32_t)y[2] | (uint32_t)y[3] << 8 | (uint32_t)y[4] << 16 |
                            (uint32_t)y[5] << 24;
        for (int j = 0; j < QFMT__QK / 2; j++) {
            const int h0 = (int)((qh >> j) << 4 & 0x10), h1 = (int)((qh >> (j + 12)) & 0x10);
            const int q0 = ((y[6 + j] & 0x0F) | h0) - 16, q1 = ((y[6 + j] >> 4) | h1) - 16;
            x[j] = (float)q0 * d;
            x[j + 16] = (float)q1 * d;
        }
    }
}

size_t qfmt__q5_0_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w)
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
        const float d = qfmt__make_qx_quants(QFMT__QK, 16, x, L, 1, weight);
        const uint16_t dh = qfmt_f32_to_f16(d);
        if (!qfmt__f16_finite(dh)) return b;
        qfmt__st16(y, dh);
        qfmt__pack_5bit32((const uint8_t *)L, y + 2, y + 6);
    }
    return nb;
}
