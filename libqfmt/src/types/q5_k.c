/* q5_K: ggml's block_q5_K, 256 values (8 sub-blocks of 32) in 176 bytes;
 * x ~ d*sc*q - dmin*mn, q in 0..31, sc and mn 6-bit per sub-block.
 *   [0,2)    fp16 d      [2,4) fp16 dmin
 *   [4,16)   scales: sc/mn packed 6-bit as q4_K (see qfmt__get_scale_min_k4)
 *   [16,48)  qh: bit 4 of q; value 64c + l (l < 32) in bit 2c of byte l, 64c + 32 + l in
 *            bit 2c + 1
 *   [48,176) qs: low 4 bits, laid out as q4_K's qs
 * Reference (quantize_row_q5_K_ref): q4_K's with nmax 31 and make_qkx2_quants over
 * rmin -0.5, 16 steps of 0.1.
 * Weighted (quantize_row_q5_K_impl): as q4_K's weighted path with nmax 31.
 * A block is refused (not written; the count of blocks done returned) when its d or dmin does
 * not fit fp16, or when a sub-block scale or min, sigma2 or a weight sum is not finite (fp32
 * overflow, where ggml would store garbage). */
#include "internal/block.h"
#include "internal/kernels.h"
#include "internal/kquant_util.h"

enum { BYTES = 176, NSUB = QFMT__QK_K / 32 };

static int finish(const float *x, uint8_t *y, const uint8_t *ls, const uint8_t *lm,
                  uint16_t dh, uint16_t mh, uint8_t *L)
{
    if (!qfmt__f16_finite(dh) || !qfmt__f16_finite(mh)) return 0;
    uint8_t *s = y + 4;
    qfmt__k4_pack_scales(s, ls, lm);
    const float dd = qfmt_f16_to_f32(dh), dmin = qfmt_f16_to_f32(mh);
    for (int j = 0; j < NSUB; j++) {
        uint8_t sc, m;
        qfmt__get_scale_min_k4(j, s, &sc, &m);
        const float d = dd * (float)sc;
        if (d == 0.0f) continue;
        const float dm = dmin * (float)m;
        for (int i = 0; i < 32; i++) {
            const int l = qfmt__nearest_int((x[32 * j + i] + dm) / d);
            L[32 * j + i] = (uint8_t)qfmt__clampi(l, 0, 31);
        }
    }
    qfmt__st16(y, dh);
    qfmt__st16(y + 2, mh);
    uint8_t *qh = y + 16, *ql = y + 48;
    memset(qh, 0, QFMT__QK_K / 8);
    unsigned m1 = 1, m2 = 2;
    for (int c = 0; c < QFMT__QK_K; c += 64, ql += 32, m1 <<= 2, m2 <<= 2)
        for (int j = 0; j < 32; j++) {
            int l1 = L[c + j], l2 = L[c + j + 32];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] = (uint8_t)(qh[j] | m1);
            }
            if (l2 > 15) {
                l2 -= 16;
                qh[j] = (uint8_t)(qh[j] | m2);
            }
            ql[j] = (uint8_t)(l1 | l2 << 4);
        }
    return 1;
}

size_t qfmt__q5_k_quantize_ref(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK_K, y += BYTES) {
        uint8_t L[QFMT__QK_K], Laux[32], ls[NSUB], lm[NSUB];
        float weights[32], mins[NSUB], scales[NSUB];
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < NSUB; j++) {
            float sum_x2 = 0.0f;
            for (int i = 0; i < 32; i++) sum_x2 += x[32 * j + i] * x[32 * j + i];
            const float av_x = sqrtf(sum_x2 / 32.0f);
            for (int i = 0; i < 32; i++) weights[i] = av_x + fabsf(x[32 * j + i]);
            scales[j] = qfmt__make_qkx2_quants(32, 31, x + 32 * j, weights, L + 32 * j, &mins[j],
                                               Laux, -0.5f, 0.1f, 15, 0);
            if (!isfinite(scales[j]) || !isfinite(mins[j])) return b;
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
        for (int j = 0; j < NSUB; j++) {
            const uint8_t a = (uint8_t)qfmt__nearest_int(inv_scale * scales[j]);
            const uint8_t c = (uint8_t)qfmt__nearest_int(inv_min * mins[j]);
            ls[j] = a < 63 ? a : 63;
            lm[j] = c < 63 ? c : 63;
        }
        if (!finish(x, y, ls, lm, qfmt_f32_to_f16(max_scale / 63.0f),
                    qfmt_f32_to_f16(max_min / 63.0f), L))
            return b;
    }
    return nb;
}

void qfmt__q5_k_dequantize_ref(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, y += BYTES) {
        const float d = qfmt_f16_to_f32(qfmt__ld16(y)), min = qfmt_f16_to_f32(qfmt__ld16(y + 2));
        const uint8_t *qh = y + 16, *ql = y + 48;
        unsigned u1 = 1, u2 = 2;
        for (int is = 0; is < NSUB; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            qfmt__get_scale_min_k4(is, y + 4, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            qfmt__get_scale_min_k4(is + 1, y + 4, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            for (int l = 0; l < 32; l++)
                *x++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *x++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

size_t qfmt__q5_k_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w)
{
    const size_t nb = n / QFMT__QK_K;
    const int k = qfmt__imp_exponent(w, n);
    for (size_t b = 0; b < nb; b++, x += QFMT__QK_K, w += QFMT__QK_K, y += BYTES) {
        uint8_t L[QFMT__QK_K], Laux[32], Ls[NSUB], Lm[NSUB];
        float weights[32], sw[NSUB], mins[NSUB], scales[NSUB], wbuf[QFMT__QK_K];
        const float *wb = qfmt__imp_scaled(w, QFMT__QK_K, k, wbuf);
        float sum_x2 = 0.0f;
        for (int i = 0; i < QFMT__QK_K; i++) sum_x2 += x[i] * x[i];
        const float sigma2 = 2.0f * sum_x2 / (float)QFMT__QK_K;
        if (!isfinite(sigma2)) return b;
        for (int j = 0; j < NSUB; j++) {
            const float *qw = wb + 32 * j;
            for (int i = 0; i < 32; i++)
                weights[i] = qw[i] * sqrtf(sigma2 + x[32 * j + i] * x[32 * j + i]);
            float sumw = 0.0f;
            for (int i = 0; i < 32; i++) sumw += weights[i];
            sw[j] = sumw;
            if (!isfinite(sumw)) return b;
            scales[j] = qfmt__make_qkx3_quants(32, 31, x + 32 * j, weights, L + 32 * j, &mins[j],
                                               Laux, -0.9f, 0.05f, 36, 0);
            if (!isfinite(scales[j]) || !isfinite(mins[j])) return b;
        }
        const float d_block = qfmt__make_qp_quants(NSUB, 63, scales, Ls, sw);
        const float m_block = qfmt__make_qp_quants(NSUB, 63, mins, Lm, sw);
        for (int j = 0; j < NSUB; j++) { /* no-ops (make_qp_quants caps at 63), as in ggml */
            if (Ls[j] > 63) Ls[j] = 63;
            if (Lm[j] > 63) Lm[j] = 63;
        }
        if (!finish(x, y, Ls, Lm, qfmt_f32_to_f16(d_block), qfmt_f32_to_f16(m_block), L))
            return b;
    }
    return nb;
}
