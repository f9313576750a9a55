/* q8_z: fp16 s, u8 z, then 32 u8 codes; x ~ s*(q - z). 35 bytes. See internal/zpoint.h. */
#include "internal/zpoint.h"

enum { BYTES = 35, QMAX = 255 };

static void store(uint8_t *y, uint16_t sh, int z, const int *q)
{
    qfmt__st16(y, sh);
    y[2] = (uint8_t)z;
    for (int j = 0; j < QFMT__QK; j++) y[3 + j] = (uint8_t)q[j];
}

size_t qfmt__q8_z_quantize_ref(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        uint16_t sh;
        int z, q[QFMT__QK];
        if (!qfmt__z_ref(x, QMAX, &sh, &z, q)) return b;
        store(y, sh, z, q);
    }
    return nb;
}

void qfmt__q8_z_dequantize_ref(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        const float s = qfmt_f16_to_f32(qfmt__ld16(y));
        const int z = y[2];
        for (int j = 0; j < QFMT__QK; j++) x[j] = s * (float)(y[3 + j] - z);
    }
}

size_t qfmt__q8_z_quantize_best(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, y += BYTES) {
        uint16_t sh;
        int z, q[QFMT__QK];
        if (!qfmt__z_ref(x, QMAX, &sh, &z, q)) return b;
        qfmt__z_best(x, QMAX, &sh, &z, q);
        store(y, sh, z, q);
    }
    return nb;
}

/* With importance: qfmt's own weighted search (internal/zpoint.h), the range shrunk in
 * steps of this fraction. */
#define STEP 0.008f

/* One row with importance. */
static size_t quantize_row_weighted(const float *x, uint8_t *y, size_t n, const float *w)
{
    double sigma2 = 0, wt[QFMT__QK];
    for (size_t j = 0; j < n; j++) sigma2 += (double)x[j] * x[j];
    sigma2 /= (double)(n ? n : 1);
    const size_t nb = n / QFMT__QK;
    for (size_t b = 0; b < nb; b++, x += QFMT__QK, w += QFMT__QK, y += BYTES) {
        uint16_t sh;
        int z, q[QFMT__QK];
        if (!qfmt__z_ref(x, QMAX, &sh, &z, q)) return b;
        for (int j = 0; j < QFMT__QK; j++) wt[j] = (double)w[j] * sqrt(sigma2 + (double)x[j] * x[j]);
        qfmt__z_best_weighted(x, wt, QMAX, STEP, &sh, &z, q);
        store(y, sh, z, q);
    }
    return nb;
}

/* Importance-weighted quantization of one row (kernels.h); the search is described above. */
size_t qfmt__q8_z_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w)
{
    return quantize_row_weighted(x, y, n, w);
}
