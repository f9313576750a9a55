/* RoPE: inverse frequencies per rope_type, as transformers' modeling_rope_utils computes them
 * (in fp32 after the default frequencies, then rounded to the checkpoint's dtype as its buffer
 * is), and Hugging Face's rotate-half rotation. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "model_internal.h"
#include "rope.h"

static int need_f64(const qfmt_reader *r, const char *type, const char *key, double *out, qfmt_error *err)
{
    if (qfmt_meta_get_f64(r, key, out, NULL) == QFMT_OK) return 0;
    return qfmt__merr(err, QFMT_E_NOT_FOUND, qfmt_reader_path(r), NULL,
                      "metadata '%s' (f64) is missing: RoPE type '%s' needs it", key, type);
}

static bool is(const char *s, uint64_t n, const char *lit) { return n == strlen(lit) && memcmp(s, lit, n) == 0; }

int qfmt__rope_load(const qfmt_reader *r, const qfmt_model_hparams *h, qfmt__rope *out, qfmt_error *err)
{
    memset(out, 0, sizeof *out);
    if (!h->family || h->family->rope_theta_default <= 0) return 0;
    const char *path = qfmt_reader_path(r), *rt = "default";
    uint64_t rtl = 7;
    if (qfmt_meta_get_string(r, "model.rope_type", &rt, &rtl, NULL) != QFMT_OK) rt = "default", rtl = 7;
    enum { DEFAULT, LINEAR, LLAMA3, YARN } type;
    if (is(rt, rtl, "default")) type = DEFAULT;
    else if (is(rt, rtl, "linear")) type = LINEAR;
    else if (is(rt, rtl, "llama3")) type = LLAMA3;
    else if (is(rt, rtl, "yarn")) type = YARN;
    else if (is(rt, rtl, "dynamic")) {
        /* Dynamic NTK (dynamic_rope_update) changes the frequencies only once a position reaches
         * max_position_embeddings, which is the context qfmt runs: within it they are the default
         * ones. An original context of its own would change the base from the start: refused. */
        uint64_t o = 0;
        if (qfmt_meta_get_u64(r, "model.rope_scaling.original_context_length", &o, NULL) == QFMT_OK && o != h->ctx)
            return qfmt__merr(err, QFMT_E_UNSUPPORTED, path, NULL,
                              "metadata 'model.rope_scaling.original_context_length' (%llu): RoPE type 'dynamic' with an "
                              "original context other than model.context_length (%llu) is not supported",
                              (unsigned long long)o, (unsigned long long)h->ctx);
        type = DEFAULT;
    }    else {
        char name[4 * 32 + 4];
        return qfmt__merr(err, QFMT_E_UNSUPPORTED, path, NULL,
                          "metadata 'model.rope_type' (config.json rope_parameters / rope_scaling 'rope_type'): "
                          "RoPE type '%s' is not supported (default, linear, llama3, yarn and dynamic are)",
                          qfmt_escape(rt, (size_t)(rtl > 32 ? 32 : rtl), name, sizeof name));
    }
    double factor = 1, low = 0, high = 0;
    uint64_t orig = 0;
    if (type == YARN) { /* _compute_yarn_parameters: the original context, else the model's */
        if (qfmt_meta_get_u64(r, "model.rope_scaling.original_context_length", &orig, NULL) != QFMT_OK) orig = h->ctx;
        if (orig == 0)
            return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL, "metadata 'model.rope_scaling.original_context_length' is 0");
        if (qfmt_meta_get_f64(r, "model.rope_scaling.factor", &factor, NULL) != QFMT_OK)
            factor = (double)h->ctx / (double)orig;
    } else if (type != DEFAULT) {
        if (need_f64(r, rt, "model.rope_scaling.factor", &factor, err)) return -1;
    }
    if (type != DEFAULT) {
        if (!(factor > 0) || !isfinite(factor))
            return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL, "metadata 'model.rope_scaling.factor' is %g, not positive", factor);
    }
    if (type == LLAMA3) {
        if (need_f64(r, rt, "model.rope_scaling.low_freq_factor", &low, err) ||
            need_f64(r, rt, "model.rope_scaling.high_freq_factor", &high, err))
            return -1;
        if (qfmt_meta_get_u64(r, "model.rope_scaling.original_context_length", &orig, NULL) != QFMT_OK)
            return qfmt__merr(err, QFMT_E_NOT_FOUND, path, NULL,
                              "metadata 'model.rope_scaling.original_context_length' (u64) is missing: "
                              "RoPE type 'llama3' needs it");
        if (!(low > 0) || !(high > low) || !isfinite(high) || orig == 0)
            return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL,
                              "RoPE type 'llama3' needs 0 < low_freq_factor < high_freq_factor and an original "
                              "context length, not %g, %g and %llu", low, high, (unsigned long long)orig);
    }
    /* yarn: the attention factor (cos and sin scaled by it) and the ramp between the
     * extrapolated and interpolated frequencies over the correction range [lo_d, hi_d] */
    double attn = 1.0, lo_d = 0, hi_d = 0;
    if (type == YARN) {
        double mscale = 0, mscale_all = 0, beta_fast = 0, beta_slow = 0;
        bool truncate = true;
        qfmt_meta_get_f64(r, "model.rope_scaling.mscale", &mscale, NULL);
        qfmt_meta_get_f64(r, "model.rope_scaling.mscale_all_dim", &mscale_all, NULL);
        qfmt_meta_get_f64(r, "model.rope_scaling.beta_fast", &beta_fast, NULL);
        qfmt_meta_get_f64(r, "model.rope_scaling.beta_slow", &beta_slow, NULL);
        qfmt_meta_get_bool(r, "model.rope_scaling.truncate", &truncate, NULL);
        if (beta_fast == 0) beta_fast = 32; /* transformers: `or 32`, `or 1` */
        if (beta_slow == 0) beta_slow = 1;
        if (qfmt_meta_get_f64(r, "model.rope_scaling.attention_factor", &attn, NULL) != QFMT_OK) {
            double f = factor;
            attn = f <= 1 ? 1.0 : 0.1 * log(f) + 1.0;
            if (mscale != 0 && mscale_all != 0)
                attn = (f <= 1 ? 1.0 : 0.1 * mscale * log(f) + 1.0) / (f <= 1 ? 1.0 : 0.1 * mscale_all * log(f) + 1.0);
        }
        double dim = (double)h->head_dim, base = h->rope_theta;
        if (!(beta_fast > 0) || !(beta_slow > 0) || !(base > 1) || !isfinite(attn))
            return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL,
                              "RoPE type 'yarn': beta_fast %g, beta_slow %g, theta %g, attention factor %g do not describe a "
                              "rotation", beta_fast, beta_slow, base, attn);
        lo_d = dim * log((double)orig / (beta_fast * 2 * 3.141592653589793)) / (2 * log(base));
        hi_d = dim * log((double)orig / (beta_slow * 2 * 3.141592653589793)) / (2 * log(base));
        if (truncate) lo_d = floor(lo_d), hi_d = ceil(hi_d);
        if (lo_d < 0) lo_d = 0;
        if (hi_d > dim - 1) hi_d = dim - 1;
        if (lo_d == hi_d) hi_d += 0.001; /* transformers: "prevent singularity" */
    }
    size_t half = (size_t)(h->head_dim / 2);
    float *inv = malloc((half ? half : 1) * sizeof *inv);
    if (!inv) return qfmt__merr(err, QFMT_E_NOMEM, path, NULL, "out of memory");
    const float twopi = (float)6.283185307179586; /* 2 * math.pi */
    for (size_t i = 0; i < half; i++) {
        /* _compute_default_rope_parameters: 1 / theta^(2i / head_dim) */
        float f = (float)(1.0 / pow(h->rope_theta, (double)(2 * i) / (double)h->head_dim));
        if (type == LINEAR) f = f / (float)factor;
        else if (type == LLAMA3) { /* _compute_llama3_parameters, in fp32 as its tensors are */
            float wavelen = twopi / f, low_wl = (float)((double)orig / low), high_wl = (float)((double)orig / high);
            float g = wavelen > low_wl ? f / (float)factor : f;
            float smooth = ((float)orig / wavelen - (float)low) / (float)(high - low);
            float smoothed = (1.0f - smooth) * g / (float)factor + smooth * g;
            f = !(wavelen < high_wl) && !(wavelen > low_wl) ? smoothed : g;
        } else if (type == YARN) { /* _compute_yarn_parameters, in fp32 */
            float pos = (float)pow(h->rope_theta, (double)((float)(2 * i) / (float)h->head_dim));
            float extra = 1.0f / pos, inter = 1.0f / ((float)factor * pos);
            float ramp = ((float)i - (float)lo_d) / (float)(hi_d - lo_d);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            float ef = 1.0f - ramp;
            f = inter * (1.0f - ef) + extra * ef;
        }
        /* transformers keeps the frequencies in a buffer of the model's dtype */
        if (h->rope_freq_type == QFMT_TYPE_BF16) f = qfmt_bf16_to_f32(qfmt_f32_to_bf16(f));
        else if (h->rope_freq_type == QFMT_TYPE_F16) f = qfmt_f16_to_f32(qfmt_f32_to_f16(f));
        inv[i] = f;
    }
    out->inv = inv;
    out->half = half;
    out->scale = (float)attn;
    return 0;
}

void qfmt__rope_free(qfmt__rope *rp)
{
    free(rp->inv);
    memset(rp, 0, sizeof *rp);
}

void qfmt__rope_apply(const qfmt__rope *rp, float *x, size_t n, size_t heads, size_t pos0)
{
    size_t half = rp->half, hd = 2 * half;
    for (size_t t = 0; t < n; t++)
        for (size_t i = 0; i < half; i++) {
            float ang = (float)(pos0 + t) * rp->inv[i], c = cosf(ang) * rp->scale, s = sinf(ang) * rp->scale;
            for (size_t h = 0; h < heads; h++) {
                float *v = x + (t * heads + h) * hd;
                float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
}
