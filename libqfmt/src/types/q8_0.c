/* q8_0: fp16 d, then 32 int8 q; x ~ d*q. 34 bytes. Byte-identical to ggml's
 * quantize_row_q8_0_ref: d = amax/127, id = 1/d in fp32 from the unrounded d, q = roundf(x*id). */
#include "internal/block.h"
#include "internal/kernels.h"

enum { BYTES = 34 };

size_t qfmt__q8_0_quantize_ref(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < QFMT__QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = qfmt__inv(d);
        const uint16_t dh = qfmt_f32_to_f16(d);
        if (!qfmt__f16_finite(dh)) return b;
        qfmt__st16(y, dh);
        for (int j = 0; j < QFMT__QK; j++) y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
    return nb;
}

void qfmt__q8_0_dequantize_ref(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        const float d = qfmt_f16_to_f32(qfmt__ld16(y));
        for (int j = 0; j < QFMT__QK; j++) x[j] = (float)(int8_t)y[2 + j] * d;
    }
}

/* Codes nearest to x for the stored scale d, and their squared error. */
static double encode(const float *x, float d, uint8_t *blk)
{
    const uint16_t dh = qfmt_f32_to_f16(d);
    const float df = qfmt_f16_to_f32(dh), id = qfmt__inv(df);
    float r[QFMT__QK];
    qfmt__st16(blk, dh);
    for (int j = 0; j < QFMT__QK; j++) {
        float q = fminf(127.0f, fmaxf(-127.0f, roundf(x[j] * id)));
        blk[2 + j] = (uint8_t)(int8_t)q;
        r[j] = q * df;
    }
    return qfmt__sse(x, r, QFMT__QK);
}

size_t qfmt__q8_0_quantize_best(const float *x, uint8_t *y, size_t nb)
{
    size_t done = qfmt__q8_0_quantize_ref(x, y, nb);
    for (size_t b = 0; b < done; b++, x += QFMT__QK, y += BYTES) {
        float r[QFMT__QK], amax = 0.0f;
        qfmt__q8_0_dequantize_ref(y, r, 1);
        double best = qfmt__sse(x, r, QFMT__QK);
        for (int j = 0; j < QFMT__QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        if (amax == 0.0f) continue;
        uint8_t cand[BYTES];
        for (int k = -6; k <= 12; k++) {
            /* Scales around amax/127, then the least-squares scale for the codes found. */
            float d = amax / (127.0f - 0.25f * (float)k);
            double e = encode(x, d, cand);
            double sxq = 0, sqq = 0;
            for (int j = 0; j < QFMT__QK; j++) {
                double q = (int8_t)cand[2 + j];
                sxq += x[j] * q;
                sqq += q * q;
            }
            if (e < best) {
                best = e;
                memcpy(y, cand, BYTES);
            }
            if (sqq > 0 && isfinite(sxq / sqq) && fabs(sxq / sqq) < 65504.0) {
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

/* ggml's quantize_q8_0 ignores the importance: the reference bytes. */
size_t qfmt__q8_0_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w)
{
    (void)w;
    return qfmt__q8_0_quantize_ref(x, y, n / QFMT__QK);
}
