/* Helpers shared by the ports of ggml's q5_0/q5_1 and K-quant ("super-block") types
 * (types/q5_0.c, q5_1.c, q2_k.c ... q6_k.c, and the weighted q4_0/q4_1 in q4_0.c, q4_1.c).
 * Each search below reproduces the arithmetic of the ggml-quants.c routine of the same name
 * (ggml: nearest_int, make_qx_quants, make_q3_quants, make_qkx2_quants, make_qkx3_quants,
 * make_qp_quants, get_scale_min_k4), operation for operation in fp32, so that the bytes come
 * out identical; the library is built with -ffp-contract=off, as the ggml reference (x86
 * without FMA) effectively is. Definitions in types/kquant_util.c. */
#ifndef QFMT_INTERNAL_KQUANT_UTIL_H
#define QFMT_INTERNAL_KQUANT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define QFMT__QK_K 256                 /* values per K-quant super-block */
#define QFMT__GROUP_MAX_EPS 1e-15f     /* below this magnitude a group counts as all zero */

/* Round to nearest, ties to even, for |f| <= 2^22 - 1: adding 1.5 * 2^23 leaves the integer in
 * the low mantissa bits (ggml's nearest_int, bit for bit; outside that range the result is
 * meaningless but defined). */
static inline int qfmt__nearest_int(float f)
{
    const float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (int)((i & 0x007fffff) - 0x00400000);
}

static inline int qfmt__clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Sub-block j (0..7) of a q4_K/q5_K 12-byte scale field: 6-bit scale *d and 6-bit min *m.
 * Sub-blocks 0..3 use the low 6 bits of bytes j and j+4; 4..7 take their low nibbles from
 * byte j+4 and their top two bits from the spare top bits of bytes j-4 and j. */
static inline void qfmt__get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = (uint8_t)(q[j] & 63);
        *m = (uint8_t)(q[j + 4] & 63);
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Inverse of qfmt__get_scale_min_k4: packs eight 6-bit scales and mins into q[0..12). */
void qfmt__k4_pack_scales(uint8_t *q, const uint8_t *ls, const uint8_t *lm);

/* The searches below return NaN (and make_qkx2/3_quants set *the_min to NaN) when a weighted
 * sum a scale would be computed from is not finite (fp32 overflow: huge values or weights),
 * where ggml's would go on to a NaN, infinite or zero scale; the callers then refuse the block
 * (a block is refused whenever a sub-block scale or min, sigma2 or a weight sum is not finite).
 * With finite sums they are ggml's, bit for bit. */

/* Importance normalization. The weighted quantizers take any finite importance >= 0: they
 * first scale the row's importance by 2^k, k = qfmt__imp_exponent(w, n), so that its largest
 * value lies in [0.5, 1) (all zero: k = 0; a subnormal maximum is scaled up). ggml's weighted
 * searches are invariant to a common power-of-two factor wherever no intermediate under- or
 * overflows, so ordinary importance gives ggml's bytes, while one near FLT_MAX no longer
 * overflows the fp32 sums. quant.c applies the same scaling to its copy of the importance, so
 * that qfmt_quantize and the kernel table's quantize_weighted give the same bytes either way
 * (on a scaled vector k is 0). */
int qfmt__imp_exponent(const float *w, size_t n);

/* w[0..n) scaled by 2^k (ldexpf, each value rounded once) into buf; w itself when k is 0. */
const float *qfmt__imp_scaled(const float *w, size_t n, int k, float *buf);

/* Symmetric search, codes L[i] in [0, 2*nmax) standing for L[i] - nmax, x ~ scale*(L - nmax).
 * rmse_type 0: the plain scale -max/nmax; otherwise a weighted least-squares scale refined over
 * 18 trial scales (weights qw when not NULL, else by rmse_type: 1 x^2, 2 one, 3 |x|, 4 sqrt|x|);
 * a negative rmse_type stops after the first least-squares step. Returns the scale. */
float qfmt__make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type,
                           const float *qw);

/* Symmetric search with x^2 weights and up to five rounds of per-element code changes (when
 * do_rmse), codes in [0, 2*nmax). Returns the scale. */
float qfmt__make_q3_quants(int n, int nmax, const float *x, int8_t *L, int do_rmse);

/* Asymmetric search, x ~ scale*L - *the_min with L in [0, nmax] and *the_min >= 0: starts from
 * the range [min(0, min x), max x], then tries nstep+1 widened/narrowed ranges (rmin + rdelta*is
 * added to nmax), refitting scale and min by weighted least squares, keeping the lowest
 * weighted error (absolute when use_mad, else squared). Laux: n bytes of scratch. */
float qfmt__make_qkx2_quants(int n, int nmax, const float *x, const float *weights,
                             uint8_t *L, float *the_min, uint8_t *Laux, float rmin,
                             float rdelta, int nstep, int use_mad);

/* As qfmt__make_qkx2_quants, but weights may be NULL (then x^2) and a flat group (max <= min)
 * is caught as such. */
float qfmt__make_qkx3_quants(int n, int nmax, const float *x, const float *weights,
                             uint8_t *L, float *the_min, uint8_t *Laux, float rmin,
                             float rdelta, int nstep, int use_mad);

/* Non-negative values x (sub-block scales or mins) onto codes L in [0, nmax], weighted by
 * quant_weights: best of nine trial scales, then code-by-code refinement. Returns the scale. */
float qfmt__make_qp_quants(int n, int nmax, const float *x, uint8_t *L,
                           const float *quant_weights);

/* Packs four 64-value planes of 2-bit codes (values 0..3) of a 128-value half into 32 bytes:
 * byte l holds L[l], L[l+32], L[l+64], L[l+96] in bits 0-1, 2-3, 4-5, 6-7. For QFMT__QK_K
 * values: qs[0..64). */
void qfmt__k_pack_2bit(const uint8_t *L, uint8_t *qs);

/* Packs 32 five-bit codes for q5_0/q5_1: qs[j] = low nibbles of L[j] | L[j+16] << 4, bit 4 of
 * L[j] into bit j of the little-endian 32-bit qh. */
void qfmt__pack_5bit32(const uint8_t *L, uint8_t *qh, uint8_t *qs);

#endif
