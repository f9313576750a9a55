/* q2_K: ggml's block_q2_K, 256 values (16 sub-blocks of 16) in 84 bytes;
 * x ~ d*sc*q - dmin*mn, q in 0..3, sc and mn 4-bit per sub-block.
 *   [0,16)   scales: byte j = sc[j] | mn[j] << 4
 *   [16,80)  qs: 2-bit codes, two 128-value halves of 32 bytes; byte l of half h holds values
 *            128h + l, +32, +64, +96 in bits 0-1, 2-3, 4-5, 6-7
 *   [80,82)  fp16 d      [82,84) fp16 dmin
 * Reference (quantize_row_q2_K_ref): each sub-block gets (scale, min) from make_qkx2_quants
 * (|x| weights, absolute error), both lists are rounded to 4 bits against their maxima, then
 * every value is requantized against its stored scale and min.
 * Weighted (quantize_row_q2_K_impl): weights imp*sqrt(sigma2 + x^2) (sigma2: the super-block's
 * mean square) into make_qkx3_quants; the 4-bit scales and mins come from make_qp_quants.
 * A block is refused (not written; the count of blocks done returned) when its d or dmin does
 * not fit fp16, or when a sub-block scale or min, sigma2 or a weight sum is not finite (fp32
 * overflow, where ggml would store garbage). */
#include "internal/block.h"
#include "internal/kernels.h"
#include "internal/kquant_util.h"

enum { BYTES = 84, NSUB = QFMT__QK_K / 16 };

/* Requantizes x against the stored d, dmin and sub-block codes (sub-blocks whose scale is 0
 * keep the codes of the search) and writes the block; 0 if d or dmin is not finite. */
static int finish(const float *x, uint8_t *y, const uint8_t *sc, uint16_t dh, uint16_t mh,
                  uint8_t *L)
{
    if (!qfmt__f16_finite(dh) || !qfmt__f16_finite(mh)) return 0;
    const float dm = qfmt_f16_to_f32(dh), mm = qfmt_f16_to_f32(mh);
    for (int j = 0; j < NSUB; j++) {
        const float d = dm * (float)(sc[j] & 0xF);
        if (d == 0.0f) continue;
        const float m = mm * (float)(sc[j] >> 4);
        for (int i = 0; i < 16; i++) {
            const int l = qfmt__nearest_int((x[16 * j + i] + m) / d);
            L[16 * j + i] = (uint8_t)qfmt__clampi(l, 0, 3);
        }
    }
    memcpy(y, sc, NSUB);
    qfmt__k_pack_2bit(L, y + 16);
    qfmt__st16(y + 80, dh);
    qfmt__st16(y + 82, mh);
    return 1;
}

size_t qfmt__q2_k_quantize_ref(const float *x, uint8_t *y, size_t nb)
{
    const float q4scale = 15.0f;
    for (size_t b = 0; b < nb; b++, x += QFMT__QK_K, y += BYTES) {
        uint8_t L[QFMT__QK_K], Laux[16], sc[NSUB];
        float weights[16], mins[NSUB], scales[NSUB];
        float max_scale = 0.0f, max_min = 0.0f; /* scales are positive once the min is taken */
        for (int j = 0; j < NSUB; j++) {
            for (int i = 0; i < 16; i++) weights[i] = fabsf(x[16 * j + i]);
            scales[j] = qfmt__make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j],
                                               Laux, -0.5f, 0.1f, 15, 1);
            if (!isfinite(scales[j]) || !isfinite(mins[j])) return b;
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        uint16_t dh, mh;
        if (max_scale > 0.0f) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < NSUB; j++)
                sc[j] = (uint8_t)qfmt__nearest_int(iscale * scales[j]);
            dh = qfmt_f32_to_f16(max_scale / q4scale);
        } else {
            memset(sc, 0, NSUB);
            dh = qfmt_f32_to_f16(0.0f);
        }
        if (max_min > 0.0f) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < NSUB; j++) {
                const int l = qfmt__nearest_int(iscale * mins[j]);
                sc[j] = (uint8_t)(sc[j] | (unsigned)l << 4);
            }
            mh = qfmt_f32_to_f16(max_min / q4scale);
        } else {
            mh = qfmt_f32_to_f16(0.0f);
        }
        if (!finish(x, y, sc, dh, mh, L)) return b;
    }
    return nb;
}

void qfmt__q2_k_dequantize_ref(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, y += BYTES) {
        const float d = qfmt_f16_to_f32(qfmt__ld16(y + 80));
        const float min = qfmt_f16_to_f32(qfmt__ld16(y + 82));
        const uint8_t *q = y + 16;
        int is = 0;
        for (int h = 0; h < QFMT__QK_K; h += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int half = 0; half < 2; half++) {
                    const uint8_t s = y[is++];
                    const float dl = d * (float)(s & 0xF), ml = min * (float)(s >> 4);
                    for (int l = 0; l < 16; l++)
                        *x++ = dl * (float)((q[16 * half + l] >> shift) & 3) - ml;
                }
    }
}

size_t qfmt__q2_k_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w)
{
    const size_t nb = n / QFMT__QK_K;
    const int k = qfmt__imp_exponent(w, n);
    for (size_t b = 0; b < nb; b++, x += QFMT__QK_K, w += QFMT__QK_K, y += BYTES) {
        uint8_t L[QFMT__QK_K], Laux[16], Ls[NSUB], Lm[NSUB], sc[NSUB];
        float mins[NSUB], scales[NSUB], sw[NSUB], weight[16], wbuf[QFMT__QK_K];
        const float *wb = qfmt__imp_scaled(w, QFMT__QK_K, k, wbuf);
        float sumx2 = 0.0f;
        for (int j = 0; j < QFMT__QK_K; j++) sumx2 += x[j] * x[j];
        const float sigma2 = sumx2 / (float)QFMT__QK_K;
        if (!isfinite(sigma2)) return b;
        for (int j = 0; j < NSUB; j++) {
            const float *qw = wb + 16 * j;
            for (int i = 0; i < 16; i++)
                weight[i] = qw[i] * sqrtf(sigma2 + x[16 * j + i] * x[16 * j + i]);
            sw[j] = 0.0f;
            for (int i = 0; i < 16; i++) sw[j] += weight[i];
            if (!isfinite(sw[j])) return b;
            scales[j] = qfmt__make_qkx3_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j],
                                               Laux, -0.9f, 0.05f, 36, 0);
            if (!isfinite(scales[j]) || !isfinite(mins[j])) return b;
        }
        const float dm = qfmt__make_qp_quants(NSUB, 15, scales, Ls, sw);
        const float mm = qfmt__make_qp_quants(NSUB, 15, mins, Lm, sw);
        for (int j = 0; j < NSUB; j++) sc[j] = (uint8_t)(Ls[j] | Lm[j] << 4);
        if (!finish(x, y, sc, qfmt_f32_to_f16(dm), qfmt_f32_to_f16(mm), L)) return b;
    }
    return nb;
}
