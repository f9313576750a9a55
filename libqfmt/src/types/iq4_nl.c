/* iq4_nl: 18 bytes for 32 values, byte-identical to ggml's block_iq4_nl.
 *   offset 0  fp16 d (little-endian)
 *   offset 2  16 bytes of 4-bit codes in q4_0's nibble order (byte j: value j low, j + 16 high)
 * A code c decodes to d * V[c], V the fixed non-uniform grid qfmt__iq4_values (-127 .. 113).
 * Encoding is ggml's quantize_iq4_nl (quantize_row_iq4_nl_impl, ntry = 7): per 32 values,
 * weights (x^2, or importance * sqrt(sigma2 + x^2)); starting from d = -max / V[0] (max the
 * signed value of largest magnitude: it lands on 127 grid units), try 15 scales around it, for each pick the nearest grid codes and the
 * weighted least-squares scale, keep the best; then the codes are chosen again for that scale.
 * This file also holds that search for iq4_xs (internal/iq4.h). */
#include "internal/block.h"
#include "internal/iq4.h"
#include "internal/kernels.h"
#include "internal/kquant_util.h"

enum { BYTES = 18, NTRY = 7 };

const int8_t qfmt__iq4_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

#define V qfmt__iq4_values

/* ggml's nearest_int: round to nearest even through the fp32 mantissa (|f| < 2^22 assumed;
 * outside that the result is meaningless but defined, as in ggml). */
static int nearest_int(float f)
{
    const float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007FFFFF) - 0x00400000;
}

/* Index of the grid value nearest x, ties to the larger one: a branch-free binary search on the
 * midpoints, compared doubled so that both sides are exact (ggml's best_index_int8). */
static int nearest_code(float x)
{
    const float x2 = x + x;
    int idx = 0;
    for (int step = 8; step > 0; step >>= 1) {
        const int j = idx + step;
        idx = x2 >= (float)(V[j - 1] + V[j]) ? j : idx;
    }
    return idx;
}

uint16_t qfmt__iq4_quantize_super(const float *x, const float *qw, int nsub, uint8_t *ls,
                                  uint8_t *qs)
{
    const int n = nsub * 32;
    uint8_t L[256];
    float scales[8], weight[32];

    float sigma2 = 0;
    for (int j = 0; j < n; j++) sigma2 += x[j] * x[j];
    sigma2 *= 2.0f / (float)n;
    if (qw && !isfinite(sigma2)) return 0x7E00; /* fp32 overflow: refused (an fp16 NaN) */

    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < nsub; ib++) {
        const float *xb = x + 32 * ib;
        uint8_t *Lb = L + 32 * ib;
        if (qw) {
            for (int j = 0; j < 32; j++) weight[j] = qw[32 * ib + j] * sqrtf(sigma2 + xb[j] * xb[j]);
        } else {
            for (int j = 0; j < 32; j++) weight[j] = xb[j] * xb[j];
        }
        float amax = 0, max = 0; /* the value of largest magnitude, first one on ties */
        for (int j = 0; j < 32; j++) {
            const float ax = fabsf(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        if (amax < 1e-15f) { /* ggml's GROUP_MAX_EPS */
            scales[ib] = 0;
            memset(Lb, 0, 32);
            continue;
        }
        /* First guess: d = -max / V[0] (max at 127 grid units), then the least-squares scale. */
        float d = -max / (float)V[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            const int l = nearest_code(id * xb[j]);
            Lb[j] = (uint8_t)l;
            const float q = V[l], w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if (!isfinite(sumqx) || !isfinite(sumq2)) return 0x7E00; /* as below */
        d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
        float best = d * sumqx;
        /* Then max onto -127 + t for t = -7 .. 7; the best (largest sumqx^2 / sumq2) wins. */
        for (int t = -NTRY; t <= NTRY; t++) {
            id = (float)(t + V[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; j++) {
                const float q = V[nearest_code(id * xb[j])], w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if (!isfinite(sumqx) || !isfinite(sumq2)) return 0x7E00;
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if (fabsf(d) > amax_scale) {
            amax_scale = fabsf(d);
            max_scale = d;
        }
    }

    /* A sum that overflowed fp32 (values near 1e12, or huge importance) leaves a NaN, infinite
     * or zero scale, where ggml would go on and write meaningless bytes: refuse the block
     * instead (above: a weighted sum not finite; here: the scale). */
    for (int ib = 0; ib < nsub; ib++)
        if (!isfinite(scales[ib])) return 0x7E00; /* an fp16 NaN */

    uint16_t dh;
    if (nsub > 1) {
        /* One fp16 d per super-block, 6-bit signed multiples of it per sub-block; the codes are
         * chosen again for each sub-block's d * l (with d in fp32, not its fp16 rounding). */
        const float d = -max_scale / 32;
        dh = qfmt_f32_to_f16(d);
        const float id = d != 0 ? 1 / d : 0.0f;
        for (int ib = 0; ib < nsub; ib++) {
            int l = nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            const float dl = d * (float)l;
            const float idl = dl != 0 ? 1 / dl : 0.0f;
            for (int j = 0; j < 32; j++) L[32 * ib + j] = (uint8_t)nearest_code(idl * x[32 * ib + j]);
            ls[ib] = (uint8_t)(l + 32);
        }
    } else {
        dh = qfmt_f32_to_f16(scales[0]);
        const float id = scales[0] != 0 ? 1 / scales[0] : 0.0f;
        for (int j = 0; j < 32; j++) L[j] = (uint8_t)nearest_code(id * x[j]);
    }

    for (int ib = 0; ib < nsub; ib++)
        for (int j = 0; j < 16; j++)
            qs[16 * ib + j] = (uint8_t)(L[32 * ib + j] | (L[32 * ib + 16 + j] << 4));
    return dh;
}

/* One block; returns 0 (nothing written) if its d does not fit fp16. */
static int quantize_block(const float *x, const float *qw, uint8_t *y)
{
    uint8_t qs[16];
    const uint16_t dh = qfmt__iq4_quantize_super(x, qw, 1, NULL, qs);
    if (!qfmt__f16_finite(dh)) return 0;
    qfmt__st16(y, dh);
    memcpy(y + 2, qs, sizeof qs);
    return 1;
}

size_t qfmt__iq4_nl_quantize_ref(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES)
        if (!quantize_block(x, NULL, y)) return b;
    return nb;
}

size_t qfmt__iq4_nl_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w)
{
    const size_t nb = n / QFMT__QK;
    const int k = qfmt__imp_exponent(w, n); /* scaled importance (internal/kquant_util.h) */
    float wbuf[QFMT__QK];
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, w += QFMT__QK, y += BYTES)
        if (!quantize_block(x, qfmt__imp_scaled(w, QFMT__QK, k, wbuf), y)) return b;
    return nb;
}

void qfmt__iq4_nl_dequantize_ref(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        const float d = qfmt_f16_to_f32(qfmt__ld16(y));
        for (int j = 0; j < 16; j++) {
            x[j] = d * (float)V[y[2 + j] & 0x0F];
            x[j + 16] = d * (float)V[y[2 + j] >> 4];
        }
    }
}
