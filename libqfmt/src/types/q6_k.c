/* q6_K: ggml's block_q6_K, 256 values (16 sub-blocks of 16) in 210 bytes;
 * x ~ d*s*(q - 32), q in 0..63, s an int8 sub-block scale.
 *   [0,128)   ql: low 4 bits; for half h (128 values) 64 bytes: byte l (l < 32) holds values
 *             128h + l (low nibble) and 128h + 64 + l (high), byte 32 + l values 128h + 32 + l
 *             and 128h + 96 + l
 *   [128,192) qh: top 2 bits; for half h 32 bytes, byte l holds values 128h + l, +32, +64, +96
 *             in bits 0-1, 2-3, 4-5, 6-7
 *   [192,208) scales: int8 s per sub-block
 *   [208,210) fp16 d
 * Reference (quantize_row_q6_K_ref): per sub-block scale from make_qx_quants (nmax 32, x^2
 * weights); scales rounded to int8 against the largest-magnitude one (d = max/-128), values
 * requantized against the stored scale. Weighted (quantize_row_q6_K_impl): the same with the
 * importance itself as make_qx_quants' weights.
 * A block is refused (not written; the count of blocks done returned) when its d does not fit
 * fp16 or a sub-block scale is not finite (fp32 overflow of the weighted sums, where ggml would
 * store garbage). */
#include "internal/block.h"
#include "internal/kernels.h"
#include "internal/kquant_util.h"

enum { BYTES = 210, NSUB = QFMT__QK_K / 16 };

/* From the sub-block scales (and the codes L of the search), the block; 0 (nothing written) if
 * a scale or d is not finite. */
static int encode(const float *x, uint8_t *y, const float *scales, int8_t *L)
{
    float max_scale = 0.0f, max_abs_scale = 0.0f;
    for (int j = 0; j < NSUB; j++)
        if (!isfinite(scales[j])) return 0;
    for (int j = 0; j < NSUB; j++) {
        const float a = fabsf(scales[j]);
        if (a > max_abs_scale) {
            max_abs_scale = a;
            max_scale = scales[j];
        }
    }
    if (max_abs_scale < QFMT__GROUP_MAX_EPS) { /* all zero: d = 0 and zero codes */
        memset(y, 0, BYTES);
        return 1;
    }
    const float iscale = -128.0f / max_scale;
    const uint16_t dh = qfmt_f32_to_f16(1.0f / iscale);
    if (!qfmt__f16_finite(dh)) return 0;
    int8_t sc[NSUB];
    for (int j = 0; j < NSUB; j++) {
        const int l = qfmt__nearest_int(iscale * scales[j]);
        sc[j] = (int8_t)(l < 127 ? l : 127);
    }
    const float dd = qfmt_f16_to_f32(dh);
    for (int j = 0; j < NSUB; j++) {
        const float d = dd * (float)sc[j];
        if (d == 0.0f) continue;
        for (int i = 0; i < 16; i++) {
            const int l = qfmt__nearest_int(x[16 * j + i] / d);
            L[16 * j + i] = (int8_t)(qfmt__clampi(l, -32, 31) + 32);
        }
    }
    uint8_t *ql = y, *qh = y + 128;
    for (int h = 0; h < QFMT__QK_K; h += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; l++) {
            const int a = L[h + l], b = L[h + l + 32], c = L[h + l + 64], e = L[h + l + 96];
            ql[l] = (uint8_t)((a & 0xF) | (c & 0xF) << 4);
            ql[l + 32] = (uint8_t)((b & 0xF) | (e & 0xF) << 4);
            qh[l] = (uint8_t)((a >> 4) | (b >> 4) << 2 | (c >> 4) << 4 | (e >> 4) << 6);
        }
    memcpy(y + 192, sc, NSUB);
    qfmt__st16(y + 208, dh);
    return 1;
}

size_t qfmt__q6_k_quantize_ref(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK_K, y += BYTES) {
        int8_t L[QFMT__QK_K];
        float scales[NSUB];
        for (int j = 0; j < NSUB; j++)
            scales[j] = qfmt__make_qx_quants(16, 32, x + 16 * j, L + 16 * j, 1, NULL);
        if (!encode(x, y, scales, L)) return b;
    }
    return nb;
}

void qfmt__q6_k_dequantize_ref(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, y += BYTES) {
        const float d = qfmt_f16_to_f32(qfmt__ld16(y + 208));
        const uint8_t *ql = y, *qh = y + 128;
        const int8_t *sc = (const int8_t *)(y + 192);
        for (int h = 0; h < QFMT__QK_K; h += 128, x += 128, ql += 64, qh += 32, sc += 8)
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                x[l] = d * (float)sc[is] * (float)q1;
                x[l + 32] = d * (float)sc[is + 2] * (float)q2;
                x[l + 64] = d * (float)sc[is + 4] * (float)q3;
                x[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
    }
}

size_t qfmt__q6_k_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w)
{
    const size_t nb = n / QFMT__QK_K;
    const int k = qfmt__imp_exponent(w, n);
    for (size_t b = 0; b < nb; b++, x += QFMT__QK_K, w += QFMT__QK_K, y += BYTES) {
        int8_t L[QFMT__QK_K];
        float scales[NSUB], wbuf[QFMT__QK_K];
        const float *wb = qfmt__imp_scaled(w, QFMT__QK_K, k, wbuf);
        for (int j = 0; j < NSUB; j++)
            scales[j] = qfmt__make_qx_quants(16, 32, x + 16 * j, L + 16 * j, 1, wb + 16 * j);
        if (!encode(x, y, scales, L)) return b;
    }
    return nb;
}
