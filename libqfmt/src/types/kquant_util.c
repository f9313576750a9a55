/* The scale searches shared by the K-quant ports (see internal/kquant_util.h). Every
 * expression keeps ggml's order of fp32 operations: (a*b)*c stays (a*b)*c, integer codes are
 * converted to float where ggml's usual arithmetic conversions put them, so that the chosen
 * codes and scales, hence the bytes, are those of ggml-quants.c.
 * One departure: where a weighted sum that a scale is computed from overflows fp32 (huge
 * values or weights), ggml goes on with inf/inf or inf*0 and may end with a NaN or zero scale,
 * which its callers store as 0; these searches return NaN then, so that the caller refuses the
 * block. For finite sums nothing changes. */
#include <math.h>

#include "internal/kquant_util.h"

void qfmt__k4_pack_scales(uint8_t *q, const uint8_t *ls, const uint8_t *lm)
{
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            q[j - 4] = (uint8_t)(q[j - 4] | ((ls[j] >> 4) << 6));
            q[j] = (uint8_t)(q[j] | ((lm[j] >> 4) << 6));
        }
    }
}

void qfmt__k_pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int h = 0; h < QFMT__QK_K; h += 128, L += 128, qs += 32)
        for (int l = 0; l < 32; l++)
            qs[l] = (uint8_t)(L[l] | (L[l + 32] << 2) | (L[l + 64] << 4) | (L[l + 96] << 6));
}

int qfmt__imp_exponent(const float *w, size_t n)
{
    float max = 0.0f;
    for (size_t i = 0; i < n; i++)
        if (w[i] > max) max = w[i];
    if (!(max > 0.0f) || !isfinite(max)) return 0;
    int e;
    (void)frexpf(max, &e); /* max = f * 2^e, f in [0.5, 1) */
    return -e;
}

const float *qfmt__imp_scaled(const float *w, size_t n, int k, float *buf)
{
    if (k == 0) return w;
    for (size_t i = 0; i < n; i++) buf[i] = ldexpf(w[i], k);
    return buf;
}

void qfmt__pack_5bit32(const uint8_t *L, uint8_t *qh, uint8_t *qs)
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
        h |= (uint32_t)((L[j] & 0x10u) >> 4) << j;
        h |= (uint32_t)((L[j + 16] & 0x10u) >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}

/* The per-element weight of make_qx_quants. */
static inline float qx_weight(const float *qw, int rmse_type, float x)
{
    if (qw) return *qw;
    switch (rmse_type) {
    case 1: return x * x;
    case 2: return 1.0f;
    case 3: return fabsf(x);
    default: return sqrtf(fabsf(x));
    }
}

float qfmt__make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type,
                           const float *qw)
{
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < QFMT__GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; i++) {
            const int l = qfmt__nearest_int(iscale * x[i]);
            L[i] = (int8_t)(nmax + qfmt__clampi(l, -nmax, nmax - 1));
        }
        return 1.0f / iscale;
    }
    int return_early = 0;
    if (rmse_type < 0) {
        rmse_type = -rmse_type;
        return_early = 1;
    }
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = qfmt__nearest_int(iscale * x[i]);
        l = qfmt__clampi(l, -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = qx_weight(qw ? qw + i : NULL, rmse_type, x[i]);
        const float fl = (float)l;
        sumlx += w * x[i] * fl;
        suml2 += w * fl * fl;
    }
    if (!isfinite(sumlx) || !isfinite(suml2)) return NAN;
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    if (return_early) return suml2 > 0.0f ? 0.5f * (scale + 1.0f / iscale) : 1.0f / iscale;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = qfmt__clampi(qfmt__nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = qx_weight(qw ? qw + i : NULL, rmse_type, x[i]);
            const float fl = (float)l;
            sumlx += w * x[i] * fl;
            suml2 += w * fl * fl;
        }
        if (!isfinite(sumlx) || !isfinite(suml2)) return NAN;
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                const int l = qfmt__nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + qfmt__clampi(l, -nmax, nmax - 1));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

float qfmt__make_q3_quants(int n, int nmax, const float *x, int8_t *L, int do_rmse)
{
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < QFMT__GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = (float)-nmax / max;
    if (do_rmse) {
        float sumlx = 0.0f, suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = qfmt__clampi(qfmt__nearest_int(iscale * x[i]), -nmax, nmax - 1);
            L[i] = (int8_t)l;
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (!isfinite(sumlx) || !isfinite(suml2)) return NAN;
        /* Move one code at a time to the value the others' least-squares scale asks for,
         * when that raises sumlx^2/suml2 (lowers the weighted error). */
        for (int itry = 0; itry < 5; itry++) {
            int n_changed = 0;
            for (int i = 0; i < n; i++) {
                const float w = x[i] * x[i];
                const float li = (float)L[i];
                float slx = sumlx - w * x[i] * li;
                if (slx > 0.0f) {
                    float sl2 = suml2 - w * li * li;
                    int new_l = qfmt__nearest_int(x[i] * sl2 / slx);
                    new_l = qfmt__clampi(new_l, -nmax, nmax - 1);
                    if (new_l != L[i]) {
                        const float fl = (float)new_l;
                        slx += w * x[i] * fl;
                        sl2 += w * fl * fl;
                        if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
                            L[i] = (int8_t)new_l;
                            sumlx = slx;
                            suml2 = sl2;
                            n_changed++;
                        }
                    }
                }
            }
            if (!n_changed) break;
        }
        for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
        if (!isfinite(sumlx) || !isfinite(suml2)) return NAN; /* a change overflowed */
        return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
    }
    for (int i = 0; i < n; i++) {
        const int l = qfmt__clampi(qfmt__nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
    }
    return 1.0f / iscale;
}

/* make_qkx2_quants and make_qkx3_quants differ only in the NULL-weights default (x^2) and in
 * the flat-group test; one body serves both. */
static float qkx_search(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                        float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                        int use_mad, int flat_le)
{
#define QKX_W(i) (weights ? weights[(i)] : x[(i)] * x[(i)])
    float min = x[0], max = x[0];
    float sum_w = QKX_W(0);
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = QKX_W(i);
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0.0f) min = 0.0f;
    if (flat_le ? max <= min : max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    if (!isfinite(sum_w) || !isfinite(sum_x)) {
        *the_min = NAN;
        return NAN;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1.0f / iscale;
    float best_error = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = qfmt__nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)qfmt__clampi(l, 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += QKX_W(i) * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = qfmt__clampi(qfmt__nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = QKX_W(i), fl = (float)l;
            sum_l += w * fl;
            sum_l2 += w * fl * fl;
            sum_xl += w * fl * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!isfinite(sum_l2) || !isfinite(sum_xl) || !isfinite(D)) {
            *the_min = NAN;
            return NAN;
        }
        if (D > 0.0f) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0.0f) {
                this_min = 0.0f;
                this_scale = sum_xl / sum_l2;
            }
            /* (a non-finite this_scale or this_min gives a NaN error: never taken) */
            float cur_error = 0.0f;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += QKX_W(i) * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
#undef QKX_W
}

float qfmt__make_qkx2_quants(int n, int nmax, const float *x, const float *weights,
                             uint8_t *L, float *the_min, uint8_t *Laux, float rmin,
                             float rdelta, int nstep, int use_mad)
{
    return qkx_search(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad, 0);
}

float qfmt__make_qkx3_quants(int n, int nmax, const float *x, const float *weights,
                             uint8_t *L, float *the_min, uint8_t *Laux, float rmin,
                             float rdelta, int nstep, int use_mad)
{
    return qkx_search(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad, 1);
}

float qfmt__make_qp_quants(int n, int nmax, const float *x, uint8_t *L,
                           const float *quant_weights)
{
    float max = 0.0f;
    for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
    if (max < QFMT__GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)qfmt__nearest_int(iscale * x[i]);
    const float scale = 1.0f / iscale;
    float best_mse = 0.0f;
    for (int i = 0; i < n; i++) {
        const float diff = x[i] - scale * (float)L[i];
        best_mse += quant_weights[i] * diff * diff;
    }
    /* Eight trial scales around nmax/max; the codes are recomputed for the best below. */
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * (float)is + (float)nmax) / max;
        const float scale_is = 1.0f / iscale_is;
        float mse = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = qfmt__nearest_int(iscale_is * x[i]);
            l = l < nmax ? l : nmax;
            const float diff = x[i] - scale_is * (float)l;
            mse += quant_weights[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = qfmt__nearest_int(iscale * x[i]);
        l = l < nmax ? l : nmax;
        L[i] = (uint8_t)l;
        const float w = quant_weights[i], fl = (float)l;
        sumlx += w * x[i] * fl;
        suml2 += w * fl * fl;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = quant_weights[i], li = (float)L[i];
            float slx = sumlx - w * x[i] * li;
            float sl2 = suml2 - w * li * li;
            if (slx > 0.0f && sl2 > 0.0f) {
                int new_l = qfmt__nearest_int(x[i] * sl2 / slx);
                new_l = new_l < nmax ? new_l : nmax;
                if (new_l != L[i]) {
                    const float fl = (float)new_l;
                    slx += w * x[i] * fl;
                    sl2 += w * fl * fl;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    if (!isfinite(sumlx) || !isfinite(suml2)) return NAN;
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}
