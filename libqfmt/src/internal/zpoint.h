/* Shared logic of the integer zero-point types q8_z and q4_z (spec: "q8_z and q4_z"):
 * r = s*(q - z), s = (max' - min')/qmax over the block's range widened to include 0
 * (min' = min(min, 0), max' = max(max, 0)), so z = clamp(roundf(-min'*id), 0, qmax) always
 * lands in the code range; id = 1/s in fp32 from the fp16-rounded s (0 if s is 0);
 * q = clamp(roundf(x*id) + z, 0, qmax). A block of zeros stores s = 0, z = 0, codes 0. */
#ifndef QFMT_INTERNAL_ZPOINT_H
#define QFMT_INTERNAL_ZPOINT_H

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

#endif
