/* q3_K: ggml's block_q3_K, 256 values (16 sub-blocks of 16) in 110 bytes; x ~ d*(s-32)*(q-4),
 * q in 0..7, s a 6-bit sub-block scale.
 *   [0,32)    hmask: bit 2 of q; value v has it in bit v/32 of byte v%32
 *   [32,96)   qs: low 2 bits of q, packed as q2_K's qs
 *   [96,108)  scales: bytes 0..7 hold the low nibbles of s[j] (j < 8) and s[j+8] << 4; byte
 *             8 + j%4 holds the top two bits of s[j] at bit 2*(j/4)
 *   [108,110) fp16 d
 * Reference (quantize_row_q3_K_ref): per sub-block scale from make_q3_quants (x^2 weights,
 * code refinement), rounded to 6 bits against the largest-magnitude one (-32/max), then all
 * values requantized against their stored scale.
 * Weighted (quantize_row_q3_K_impl): weights imp*sqrt(sigma2 + x^2), sigma2 = 2 * the
 * super-block's mean square, into make_qx_quants for the values, and make_qx_quants (nmax 32,
 * weights = the sub-block weight sums) for the 6-bit scales.
 * A block is refused (not written; the count of blocks done returned) when its d does not fit
 * fp16, or when a sub-block scale, sigma2 or a weight sum is not finite (fp32 overflow, where
 * ggml would store garbage). */
#include "internal/block.h"
#include "internal/kernels.h"
#include "internal/kquant_util.h"

enum { BYTES = 110, NSUB = QFMT__QK_K / 16 };

/* ls[j] in 0..63 into the 12-byte scale field. */
static void pack_scales(uint8_t *s, const int *ls)
{
    memset(s, 0, 12);
    for (int j = 0; j < NSUB; j++) {
        const int l = ls[j];
        if (j < 8)
            s[j] = (uint8_t)(l & 0xF);
        else
            s[j - 8] = (uint8_t)(s[j - 8] | (l & 0xF) << 4);
        s[j % 4 + 8] = (uint8_t)(s[j % 4 + 8] | ((l >> 4) & 3) << (2 * (j / 4)));
    }
}

/* The signed scale of sub-block j, -32..31. */
static int get_scale(const uint8_t *s, int j)
{
    const int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
    return (lo | ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
}

/* Requantizes against the stored scales (sub-blocks of scale 0 keep the search's codes, L in
 * 0..7) and writes the block; 0 if d is not finite. */
static int finish(const float *x, uint8_t *y, const int *ls, uint16_t dh, int8_t *L)
{
    if (!qfmt__f16_finite(dh)) return 0;
    uint8_t *s = y + 96;
    pack_scales(s, ls);
    const float dall = qfmt_f16_to_f32(dh);
    for (int j = 0; j < NSUB; j++) {
        const float d = dall * (float)get_scale(s, j);
        if (d == 0.0f) continue;
        for (int i = 0; i < 16; i++) {
            const int l = qfmt__nearest_int(x[16 * j + i] / d);
            L[16 * j + i] = (int8_t)(qfmt__clampi(l, -4, 3) + 4);
        }
    }
    uint8_t *hmask = y;
    memset(hmask, 0, QFMT__QK_K / 8);
    uint8_t low[QFMT__QK_K];
    for (int j = 0; j < QFMT__QK_K; j++) {
        int l = L[j];
        if (l > 3) {
            hmask[j % 32] = (uint8_t)(hmask[j % 32] | 1u << (j / 32));
            l -= 4;
        }
        low[j] = (uint8_t)l;
    }
    qfmt__k_pack_2bit(low, y + 32);
    qfmt__st16(y + 108, dh);
    return 1;
}

size_t qfmt__q3_k_quantize_ref(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK_K, y += BYTES) {
        int8_t L[QFMT__QK_K];
        float scales[NSUB], max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < NSUB; j++) {
            scales[j] = qfmt__make_q3_quants(16, 4, x + 16 * j, L + 16 * j, 1);
            if (!isfinite(scales[j])) return b;
            const float a = fabsf(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        int ls[NSUB];
        uint16_t dh;
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < NSUB; j++) {
                /* ggml keeps the rounded value in an int8_t before clamping */
                const int l = (int8_t)qfmt__nearest_int(iscale * scales[j]);
                ls[j] = qfmt__clampi(l, -32, 31) + 32;
            }
            dh = qfmt_f32_to_f16(1.0f / iscale);
        } else {
            /* an all-zero scale field reads back as -32 everywhere, but d = 0 */
            for (int j = 0; j < NSUB; j++) ls[j] = 0;
            dh = qfmt_f32_to_f16(0.0f);
        }
        if (!finish(x, y, ls, dh, L)) return b;
    }
    return nb;
}

void qfmt__q3_k_dequantize_ref(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, y += BYTES) {
        const float dall = qfmt_f16_to_f32(qfmt__ld16(y + 108));
        const uint8_t *q = y + 32, *hm = y;
        unsigned m = 1;
        int is = 0;
        for (int h = 0; h < QFMT__QK_K; h += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                for (int half = 0; half < 2; half++) {
                    const float dl = dall * (float)get_scale(y + 96, is++);
                    for (int l = 0; l < 16; l++) {
                        const int k = 16 * half + l;
                        const int v = ((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4);
                        *x++ = dl * (float)v;
                    }
                }
    }
}

size_t qfmt__q3_k_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w)
{
    const size_t nb = n / QFMT__QK_K;
    const int k = qfmt__imp_exponent(w, n);
    for (size_t b = 0; b < nb; b++, x += QFMT__QK_K, w += QFMT__QK_K, y += BYTES) {
        int8_t L[QFMT__QK_K], Ls[NSUB];
        float scales[NSUB], weight[16], sw[NSUB], wbuf[QFMT__QK_K];
        const float *wb = qfmt__imp_scaled(w, QFMT__QK_K, k, wbuf);
        float sumx2 = 0.0f;
        for (int j = 0; j < QFMT__QK_K; j++) sumx2 += x[j] * x[j];
        const float sigma2 = 2.0f * sumx2 / (float)QFMT__QK_K;
        if (!isfinite(sigma2)) return b;
        for (int j = 0; j < NSUB; j++) {
            const float *qw = wb + 16 * j;
            for (int i = 0; i < 16; i++)
                weight[i] = qw[i] * sqrtf(sigma2 + x[16 * j + i] * x[16 * j + i]);
            float sumw = 0.0f;
            for (int i = 0; i < 16; i++) sumw += weight[i];
            sw[j] = sumw;
            if (!isfinite(sumw)) return b;
            scales[j] = qfmt__make_qx_quants(16, 4, x + 16 * j, L + 16 * j, 1, weight);
            if (!isfinite(scales[j])) return b;
        }
        const float d_block = qfmt__make_qx_quants(NSUB, 32, scales, Ls, 1, sw);
        int ls[NSUB];
        for (int j = 0; j < NSUB; j++) ls[j] = Ls[j];
        if (!finish(x, y, ls, qfmt_f32_to_f16(d_block), L)) return b;
    }
    return nb;
}
