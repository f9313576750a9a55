/* Shared logic of the integer zero-point types q8_z and q4_z (spec: "q8_z and q4_z"):
 * r = s*(q - z), s = (max' - min')/qmax over the block's range widened to include 0
 * (min' = min(min, 0), max' = max(max, 0)), so z = clamp(roundf(-min'*id), 0, qmax) always
 * lands in the code range; id = 1/s in fp32 from the fp16-rounded s (0 if s is 0);
 * q = clamp(roundf(x*id) + z, 0, qmax). A block of zeros stores s = 0, z = 0, codes 0. */
#ifndef QFMT_INTERNAL_ZPOINT_H
#define QFMT_INTERNAL_ZPOINT_H

#include <string.h>

#include "block.h"
#include "kernels.h"

/* Codes for scale s (fp16-rounded here) and zero point z; returns the squared error, or NaN
 * when s does not fit fp16. Fills sh and q[]. */
static inline double qfmt__z_encode(const float *x, float s, int z, int qmax, uint16_t *sh, int *q)
{
    *sh = qfmt_f32_to_f16(s);
    if (!qfmt__f16_finite(*sh)) return NAN;
    const float sf = qfmt_f16_to_f32(*sh), id = qfmt__inv(sf);
    float r[QFMT__QK];
    for (int j = 0; j < QFMT__QK; j++) {
        int v = (int)roundf(x[j] * id) + z;
        q[j] = v < 0 ? 0 : v > qmax ? qmax : v;
        r[j] = sf * (float)(q[j] - z);
    }
    return qfmt__sse(x, r, QFMT__QK);
}

/* The reference parameters. Returns 0 when s does not fit fp16. */
static inline int qfmt__z_ref(const float *x, int qmax, uint16_t *sh, int *z, int *q)
{
    float mn = 0.0f, mx = 0.0f;
    for (int j = 0; j < QFMT__QK; j++) {
        mn = fminf(mn, x[j]);
        mx = fmaxf(mx, x[j]);
    }
    float s = (mx - mn) / (float)qmax;
    s = s > 0.0f ? s : 0.0f; /* an all-zero block stores +0 whatever the zeros' signs */
    *sh = qfmt_f32_to_f16(s);
    if (!qfmt__f16_finite(*sh)) return 0;
    const float id = qfmt__inv(qfmt_f16_to_f32(*sh));
    float zf = roundf(-mn * id);
    *z = zf < 0.0f ? 0 : zf > (float)qmax ? qmax : (int)zf;
    qfmt__z_encode(x, s, *z, qmax, sh, q);
    return 1;
}

/* Error-minimising search around the reference; q/sh/z hold the reference on entry and the
 * best found on return (never worse). */
static inline void qfmt__z_best(const float *x, int qmax, uint16_t *sh, int *z, int *q)
{
    float r[QFMT__QK], mn = 0.0f, mx = 0.0f, sf = qfmt_f16_to_f32(*sh);
    for (int j = 0; j < QFMT__QK; j++) r[j] = sf * (float)(q[j] - *z);
    double best = qfmt__sse(x, r, QFMT__QK);
    for (int j = 0; j < QFMT__QK; j++) {
        mn = fminf(mn, x[j]);
        mx = fmaxf(mx, x[j]);
    }
    const float range = mx - mn;
    if (range == 0.0f) return;
    int cq[QFMT__QK];
    uint16_t csh;
    for (int lo = 0; lo <= 6; lo++)
        for (int hi = 0; hi <= 6; hi++) {
            float a = mn + range * 0.025f * (float)lo, b = mx - range * 0.025f * (float)hi;
            if (b <= a) continue;
            float s = (b - a) / (float)qmax;
            float zc = roundf(-a / s);
            for (int dz = -1; dz <= 1; dz++) {
                int cz = (int)fminf((float)qmax, fmaxf(0.0f, zc + (float)dz));
                float cs = s;
                for (int it = 0; it < 2; it++) {
                    double e = qfmt__z_encode(x, cs, cz, qmax, &csh, cq);
                    if (e < best) {
                        best = e;
                        *sh = csh;
                        *z = cz;
                        memcpy(q, cq, sizeof cq);
                    }
                    double num = 0, den = 0; /* least-squares s for these codes */
                    for (int j = 0; j < QFMT__QK; j++) {
                        num += (double)x[j] * (cq[j] - cz);
                        den += (double)(cq[j] - cz) * (cq[j] - cz);
                    }
                    if (!(e == e) || den <= 0 || !(num / den > 0)) break;
                    cs = (float)(num / den);
                }
            }
        }
}

/* ---- With importance: qfmt's own weighted search -------------------------------------------
 * Value j of a row gets the weight wt_j = w_j * sqrt(sigma2 + x_j^2): w_j the column's
 * importance, sigma2 the row's mean square (ggml's weighting in its q4_1 and K-type
 * quantizers). Each block then takes the s and z that make E = sum_j wt_j (x_j - xhat_j)^2
 * smallest among a few candidates, xhat_j computed as the decoder does (fp16 s, fp32 product).
 * The reference encoder's block is the first candidate and is replaced only by one with a
 * strictly smaller E, so no block is ever worse than the reference in E. The other candidates
 * start from the block's widened range [mn, mx], as is or shrunk by step * (mx - mn) (the type's own fraction) at either
 * end or both (outliers then clip), with s = range / qmax and z = roundf(-lo / s) - 1, + 0 or
 * + 1: 12 starts. From each, up to QFMT__Z_NIT rounds of: nearest codes for the stored s (scored), then
 * a weighted least-squares refit over those codes (x ~ a*q + m, z = round(-m / a) clamped,
 * then the best s for that z), stopping early at a fixed point. All sums are in double in a
 * fixed order, so the bytes depend on x and w alone. A block whose weights are all zero keeps
 * the reference bytes. */

enum { QFMT__Z_NIT = 12 }; /* refit rounds per start */

/* E for scale s (fp16-rounded here) and zero point z; NaN when s does not fit fp16. Fills sh and
 * q with the nearest codes, as qfmt__z_encode does. */
static inline double qfmt__z_encode_weighted(const float *x, const double *wt, float s, int z, int qmax,
                                             uint16_t *sh, int *q)
{
    *sh = qfmt_f32_to_f16(s);
    if (!qfmt__f16_finite(*sh)) return NAN;
    const float sf = qfmt_f16_to_f32(*sh), id = qfmt__inv(sf);
    double e = 0;
    for (int j = 0; j < QFMT__QK; j++) {
        const float v = roundf(x[j] * id) + (float)z; /* clamped as a float: no int overflow */
        q[j] = v > 0.0f ? (v < (float)qmax ? (int)v : qmax) : 0;
        const double d = (double)x[j] - (double)(sf * (float)(q[j] - z));
        e += wt[j] * d * d;
    }
    return e;
}

/* Weighted least squares over the codes q: x ~ a*q + m gives z = clamp(round(-m/a)) (z is kept
 * if that fit is degenerate), then s is the best scale for q and that z. Returns 0 when there
 * is no usable positive s. */
static inline int qfmt__z_refit_weighted(const float *x, const double *wt, const int *q, int qmax, float *s, int *z)
{
    double sw = 0, sq = 0, sqq = 0, sx = 0, sxq = 0;
    for (int j = 0; j < QFMT__QK; j++) {
        const double w = wt[j], qj = q[j], xj = x[j];
        sw += w;
        sq += w * qj;
        sqq += w * qj * qj;
        sx += w * xj;
        sxq += w * xj * qj;
    }
    const double det = sw * sqq - sq * sq;
    if (det > 0) {
        const double a = (sw * sxq - sq * sx) / det, m = (sqq * sx - sq * sxq) / det;
        if (a > 0) {
            const double zc = round(-m / a);
            *z = zc > 0 ? (zc < qmax ? (int)zc : qmax) : 0; /* NaN: 0 */
        }
    }
    double num = 0, den = 0;
    for (int j = 0; j < QFMT__QK; j++) {
        const double c = q[j] - *z;
        num += wt[j] * x[j] * c;
        den += wt[j] * c * c;
    }
    if (!(den > 0) || !(num / den > 0) || !(num / den < 65504.0)) return 0; /* fits fp32 too */
    *s = (float)(num / den);
    return 1;
}

/* The block's best parameters for E; sh, z and q hold the reference's on entry. */
static inline void qfmt__z_best_weighted(const float *x, const double *wt, int qmax, float step, uint16_t *sh,
                                         int *z, int *q)
{
    float mn = 0.0f, mx = 0.0f;
    const float sf = qfmt_f16_to_f32(*sh);
    double best = 0;
    for (int j = 0; j < QFMT__QK; j++) {
        const double d = (double)x[j] - (double)(sf * (float)(q[j] - *z));
        best += wt[j] * d * d;
        mn = fminf(mn, x[j]);
        mx = fmaxf(mx, x[j]);
    }
    const float range = mx - mn;
    if (!(best > 0) || !(range > 0.0f)) return; /* exact already, or no weight on the block */
    int cq[QFMT__QK];
    uint16_t csh;
    for (int lo = 0; lo <= 1; lo++)
        for (int hi = 0; hi <= 1; hi++) {
            const float a = mn + range * step * (float)lo, b = mx - range * step * (float)hi;
            const float s0 = (b - a) / (float)qmax, zc = roundf(-a / s0);
            for (int dz = -1; dz <= 1; dz++) {
                const float zf = zc + (float)dz;
                int cz = zf > 0.0f ? (zf < (float)qmax ? (int)zf : qmax) : 0; /* NaN: 0 */
                float cs = s0;
                for (int it = 0; it < QFMT__Z_NIT; it++) {
                    const double e = qfmt__z_encode_weighted(x, wt, cs, cz, qmax, &csh, cq);
                    if (e < best) {
                        best = e;
                        *sh = csh;
                        *z = cz;
                        memcpy(q, cq, sizeof cq);
                    }
                    const int pz = cz;
                    if (!(e == e) || !qfmt__z_refit_weighted(x, wt, cq, qmax, &cs, &cz)) break;
                    if (cz == pz && qfmt_f32_to_f16(cs) == csh) break; /* a fixed point */
                }
            }
        }
}


#endif
