/* iq4_xs: 136 bytes for 256 values, byte-identical to ggml's block_iq4_xs.
 *   offset 0  fp16 d (little-endian)
 *   offset 2  u16 scales_h (little-endian): bits 2ib, 2ib+1 = high 2 bits of sub-block ib's scale
 *   offset 4  4 bytes scales_l: low 4 bits of the scale of sub-block 2k (low nibble of byte k)
 *             and 2k + 1 (high nibble)
 *   offset 8  128 bytes of 4-bit codes: 16 per 32-value sub-block, q4_0's nibble order
 * Sub-block ib (values 32ib .. 32ib + 31) has a 6-bit scale ls in 0 .. 63; a code c decodes to
 * d * (ls - 32) * V[c], V the iq4_nl grid. Encoding is ggml's quantize_iq4_xs: the iq4_nl
 * search per sub-block (weights from the whole super-block's mean square), then d is the
 * largest sub-block scale / -32, each sub-block scale is rounded to a multiple of d and the
 * codes are chosen again for it (types/iq4_nl.c, qfmt__iq4_quantize_super). */
#include "internal/block.h"
#include "internal/iq4.h"
#include "internal/kernels.h"
#include "internal/kquant_util.h"

enum { BYTES = 136, QK = 256, NSUB = 8 };

/* One block; returns 0 (nothing written) if its d does not fit fp16. */
static int quantize_block(const float *x, const float *qw, uint8_t *y)
{
    uint8_t ls[NSUB], qs[QK / 2];
    const uint16_t dh = qfmt__iq4_quantize_super(x, qw, NSUB, ls, qs);
    if (!qfmt__f16_finite(dh)) return 0;
    uint16_t sh = 0;
    qfmt__st16(y, dh);
    for (int ib = 0; ib < NSUB; ib++) {
        sh = (uint16_t)(sh | (ls[ib] >> 4) << 2 * ib);
        if (ib % 2 == 0) y[4 + ib / 2] = (uint8_t)(ls[ib] & 0x0F);
        else y[4 + ib / 2] = (uint8_t)(y[4 + ib / 2] | (ls[ib] & 0x0F) << 4);
    }
    qfmt__st16(y + 2, sh);
    memcpy(y + 8, qs, sizeof qs);
    return 1;
}

size_t qfmt__iq4_xs_quantize_ref(const float *x, uint8_t *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += QK, y += BYTES)
        if (!quantize_block(x, NULL, y)) return b;
    return nb;
}

size_t qfmt__iq4_xs_quantize_imat(const float *x, uint8_t *y, size_t n, const float *w)
{
    const size_t nb = n / QK;
    const int k = qfmt__imp_exponent(w, n); /* scaled importance (internal/kquant_util.h) */
    float wbuf[QK];
    for (size_t b = 0; b < nb; b++, x += QK, w += QK, y += BYTES)
        if (!quantize_block(x, qfmt__imp_scaled(w, QK, k, wbuf), y)) return b;
    return nb;
}

void qfmt__iq4_xs_dequantize_ref(const uint8_t *y, float *x, size_t nb)
{
    for (size_t b = 0; b < nb; b++, y += BYTES) {
        const float d = qfmt_f16_to_f32(qfmt__ld16(y));
        const unsigned sh = qfmt__ld16(y + 2);
        for (int ib = 0; ib < NSUB; ib++, x += 32) {
            const int ls = ((y[4 + ib / 2] >> 4 * (ib % 2)) & 0x0F) | (int)(((sh >> 2 * ib) & 3u) << 4);
            const float dl = d * (float)(ls - 32);
            const uint8_t *qs = y + 8 + 16 * ib;
            for (int j = 0; j < 16; j++) {
                x[j] = dl * (float)qfmt__iq4_values[qs[j] & 0x0F];
                x[j + 16] = dl * (float)qfmt__iq4_values[qs[j] >> 4];
            }
        }
    }
}
