/* RoPE: inverse frequencies per rope_type, as transformers' modeling_rope_utils computes them
 * (in fp32 after the default frequencies, then rounded to the checkpoint's dtype as its buffer
 * is), and Hugging Face's rotate-half rotation. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "model_internal.h"
#include "rope.h"

/* "<prefix><name>" in a buffer of the caller's. */
static const char *key_of(char *buf, size_t cap, const char *prefix, const char *name)
{
    snprintf(buf, cap, "%s%s", prefix, name);
    return buf;
}

static int need_f64(const qfmt_reader *r, const char *type, const char *key, double *out, qfmt_error *err)
{
    if (qfmt_meta_get_f64(r, key, out, NULL) == QFMT_OK) return 0;
    return qfmt__merr(err, QFMT_E_NOT_FOUND, qfmt_reader_path(r), NULL,
                      "metadata '%s' (f64) is missing: RoPE type '%s' needs it", key, type);
}

static bool is(const char *s, uint64_t n, const char *lit) { return n == strlen(lit) && memcmp(s, lit, n) == 0; }

/* A longrope factor list of `half` values (f64 array) at key k. */
static int factor_list(const qfmt_reader *r, const char *k, size_t half, float **out, qfmt_error *err)
{
    uint32_t et;
    uint64_t n;
    const char *path = qfmt_reader_path(r);
    if (qfmt_meta_get_array(r, k, &et, &n, NULL) != QFMT_OK)
        return qfmt__merr(err, QFMT_E_NOT_FOUND, path, NULL, "metadata '%s' (f64 array) is missing: RoPE type 'longrope' needs it", k);
    if (et != QFMT_META_F64 || n != half)
        return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL,
                          "metadata '%s' must be %zu f64 values (rotary dimensions / 2), not %llu of type %u", k, half,
                          (unsigned long long)n, et);
    double *v = malloc(half * sizeof *v);
    float *f = malloc(half * sizeof *f);
    qfmt_error e;
    if (!v || !f || qfmt_meta_array_copy(r, k, QFMT_META_F64, v, half, &e) != QFMT_OK) {
        free(v), free(f);
        return !v || !f ? qfmt__merr(err, QFMT_E_NOMEM, path, NULL, "out of memory")
                        : qfmt__merr(err, e.code, path, NULL, "metadata '%s': %s", k, e.message);
    }
    for (size_t i = 0; i < half; i++) {
        if (!(v[i] > 0) || !isfinite(v[i])) {
            free(v), free(f);
            return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL, "metadata '%s': value %zu is not positive", k, i);
        }
        f[i] = (float)v[i];
    }
    free(v);
    *out = f;
    return 0;
}

int qfmt__rope_load(const qfmt_reader *r, const qfmt_model_hparams *h, const char *prefix, qfmt__rope *out,
                    qfmt_error *err)
{
    memset(out, 0, sizeof *out);
    if (!h->family || h->family->rope_theta_default <= 0) return 0;
    const char *path = qfmt_reader_path(r), *rt = "default";
    char kb[128], kb2[128];
#define K(name) key_of(kb, sizeof kb, prefix, (name))
    uint64_t rtl = 7;
    double theta = h->rope_theta;
    if (strcmp(prefix, "model.") != 0 && need_f64(r, "of sliding-window layers", K("rope_theta"), &theta, err)) return -1;
    if (!(theta > 1) || !isfinite(theta))
        return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL, "metadata '%s' is %g, not a RoPE base above 1", K("rope_theta"), theta);
    if (qfmt_meta_get_string(r, K("rope_type"), &rt, &rtl, NULL) != QFMT_OK) rt = "default", rtl = 7;
    /* partial rotary embeddings: the first int(head_dim x factor) values of each head rotate */
    size_t rot = (size_t)h->head_dim;
    double partial = 1;
    if (qfmt_meta_get_f64(r, K("rope_partial_rotary_factor"), &partial, NULL) == QFMT_OK) {
        double dims = floor((double)h->head_dim * partial);
        if (!(partial > 0 && partial <= 1) || dims < 2 || fmod(dims, 2) != 0)
            return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL,
                              "metadata '%s' is %g: head_dim %llu x it must be an even number of at least 2 dimensions",
                              K("rope_partial_rotary_factor"), partial, (unsigned long long)h->head_dim);
        rot = (size_t)dims;
    }
    enum { DEFAULT, LINEAR, LLAMA3, YARN, LONGROPE } type;
    if (is(rt, rtl, "default")) type = DEFAULT;
    else if (is(rt, rtl, "linear")) type = LINEAR;
    else if (is(rt, rtl, "llama3")) type = LLAMA3;
    else if (is(rt, rtl, "yarn")) type = YARN;
    else if (is(rt, rtl, "longrope") || is(rt, rtl, "su")) type = LONGROPE;
    else if (is(rt, rtl, "dynamic")) {
        /* Dynamic NTK (dynamic_rope_update) changes the frequencies only once a position reaches
         * max_position_embeddings, which is the context qfmt runs: within it they are the default
         * ones. An original context of its own would change the base from the start: refused. */
        uint64_t o = 0;
        if (qfmt_meta_get_u64(r, K("rope_scaling.original_context_length"), &o, NULL) == QFMT_OK && o != h->ctx)
            return qfmt__merr(err, QFMT_E_UNSUPPORTED, path, NULL,
                              "metadata '%s' (%llu): RoPE type 'dynamic' with an original context other than "
                              "model.context_length (%llu) is not supported",
                              kb, (unsigned long long)o, (unsigned long long)h->ctx);
        type = DEFAULT;
    }    else {
        char name[4 * 32 + 4];
        return qfmt__merr(err, QFMT_E_UNSUPPORTED, path, NULL,
                          "metadata '%s' (config.json rope_parameters / rope_scaling 'rope_type'): "
                          "RoPE type '%s' is not supported (default, linear, llama3, yarn, dynamic and longrope are)",
                          K("rope_type"), qfmt_escape(rt, (size_t)(rtl > 32 ? 32 : rtl), name, sizeof name));
    }
    double factor = 1, low = 0, high = 0;
    uint64_t orig = 0;
    if (type == YARN) { /* _compute_yarn_parameters: the original context, else the model's */
        if (qfmt_meta_get_u64(r, K("rope_scaling.original_context_length"), &orig, NULL) != QFMT_OK) orig = h->ctx;
        if (orig == 0) return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL, "metadata '%s' is 0", kb);
        if (qfmt_meta_get_f64(r, K("rope_scaling.factor"), &factor, NULL) != QFMT_OK)
            factor = (double)h->ctx / (double)orig;
    } else if (type == LONGROPE) {
        /* _compute_longrope_parameters: Phi-3 states its pretrained context at the top of
         * config.json; the factor is then the context's growth over it. Without one, the model's
         * context is the original and the factor rope_scaling's own (1 if none). */
        if (qfmt_meta_get_u64(r, "model.original_context_length", &orig, NULL) == QFMT_OK) {
            if (orig == 0) return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL, "metadata 'model.original_context_length' is 0");
            factor = (double)h->ctx / (double)orig;
        } else {
            orig = h->ctx;
            if (qfmt_meta_get_f64(r, K("rope_scaling.factor"), &factor, NULL) != QFMT_OK) factor = 1;
        }
    } else if (type != DEFAULT) {
        if (need_f64(r, rt, K("rope_scaling.factor"), &factor, err)) return -1;
    }
    if (type != DEFAULT) {
        if (!(factor > 0) || !isfinite(factor))
            return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL, "metadata '%s' is %g, not positive", K("rope_scaling.factor"),
                              factor);
    }
    if (type == LLAMA3) {
        if (need_f64(r, rt, K("rope_scaling.low_freq_factor"), &low, err) ||
            need_f64(r, rt, K("rope_scaling.high_freq_factor"), &high, err))
            return -1;
        if (qfmt_meta_get_u64(r, K("rope_scaling.original_context_length"), &orig, NULL) != QFMT_OK)
            return qfmt__merr(err, QFMT_E_NOT_FOUND, path, NULL, "metadata '%s' (u64) is missing: RoPE type 'llama3' needs it",
                              kb);
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
        qfmt_meta_get_f64(r, K("rope_scaling.mscale"), &mscale, NULL);
        qfmt_meta_get_f64(r, K("rope_scaling.mscale_all_dim"), &mscale_all, NULL);
        qfmt_meta_get_f64(r, K("rope_scaling.beta_fast"), &beta_fast, NULL);
        qfmt_meta_get_f64(r, K("rope_scaling.beta_slow"), &beta_slow, NULL);
        qfmt_meta_get_bool(r, K("rope_scaling.truncate"), &truncate, NULL);
        if (beta_fast == 0) beta_fast = 32; /* transformers: `or 32`, `or 1` */
        if (beta_slow == 0) beta_slow = 1;
        if (qfmt_meta_get_f64(r, K("rope_scaling.attention_factor"), &attn, NULL) != QFMT_OK) {
            double f = factor;
            attn = f <= 1 ? 1.0 : 0.1 * log(f) + 1.0;
            if (mscale != 0 && mscale_all != 0)
                attn = (f <= 1 ? 1.0 : 0.1 * mscale * log(f) + 1.0) / (f <= 1 ? 1.0 : 0.1 * mscale_all * log(f) + 1.0);
        }
        double dim = (double)rot, base = theta;
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
    float *ext_short = NULL, *ext_long = NULL;
    size_t half = rot / 2;
    if (type == LONGROPE) {
        if (qfmt_meta_get_f64(r, K("rope_scaling.attention_factor"), &attn, NULL) != QFMT_OK)
            attn = factor <= 1 ? 1.0 : sqrt(1 + log(factor) / log((double)orig));
        if (!isfinite(attn) || !(attn > 0))
            return qfmt__merr(err, QFMT_E_CORRUPT, path, NULL, "RoPE type 'longrope': attention factor %g", attn);
        if (factor_list(r, key_of(kb2, sizeof kb2, prefix, "rope_scaling.short_factor"), half, &ext_short, err)) return -1;
        if (factor_list(r, key_of(kb2, sizeof kb2, prefix, "rope_scaling.long_factor"), half, &ext_long, err)) {
            free(ext_short);
            return -1;
        }
    }
#undef K
    float *inv = malloc((half ? half : 1) * sizeof *inv);
    float *inv_long = type == LONGROPE ? malloc(half * sizeof *inv_long) : NULL;
    if (!inv || (type == LONGROPE && !inv_long)) {
        free(inv), free(inv_long), free(ext_short), free(ext_long);
        return qfmt__merr(err, QFMT_E_NOMEM, path, NULL, "out of memory");
    }
    const float twopi = (float)6.283185307179586; /* 2 * math.pi */
    for (size_t i = 0; i < half; i++) {
        /* _compute_default_rope_parameters: 1 / theta^(2i / head_dim) */
        float f = (float)(1.0 / pow(theta, (double)(2 * i) / (double)rot));
        if (type == LINEAR) f = f / (float)factor;
        else if (type == LONGROPE) { /* 1 / (ext x base^(2i / dim)), in fp32 */
            float p = (float)pow(theta, (double)((float)(2 * i) / (float)rot));
            f = 1.0f / (ext_short[i] * p);
            /* the long frequencies are made when first needed, after the model's cast: fp32 */
            inv_long[i] = 1.0f / (ext_long[i] * p);
        }
        else if (type == LLAMA3) { /* _compute_llama3_parameters, in fp32 as its tensors are */
            float wavelen = twopi / f, low_wl = (float)((double)orig / low), high_wl = (float)((double)orig / high);
            float g = wavelen > low_wl ? f / (float)factor : f;
            float smooth = ((float)orig / wavelen - (float)low) / (float)(high - low);
            float smoothed = (1.0f - smooth) * g / (float)factor + smooth * g;
            f = !(wavelen < high_wl) && !(wavelen > low_wl) ? smoothed : g;
        } else if (type == YARN) { /* _compute_yarn_parameters, in fp32 */
            float pos = (float)pow(theta, (double)((float)(2 * i) / (float)rot));
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
    free(ext_short);
    free(ext_long);
    out->inv = inv;
    out->inv_long = inv_long;
    out->orig = type == LONGROPE ? (size_t)orig : 0;
    out->half = half;
    out->scale = (float)attn;
    return 0;
}

void qfmt__rope_free(qfmt__rope *rp)
{
    free(rp->inv);
    free(rp->inv_long);
    memset(rp, 0, sizeof *rp);
}

void qfmt__rope_apply(const qfmt__rope *rp, float *x, size_t n, size_t heads, size_t hd, size_t pos0)
{
    size_t half = rp->half;
    /* longrope (longrope_frequency_update): a call whose last position is past the original
     * context uses the long frequencies for all its positions */
    const float *inv = rp->inv_long && pos0 + n > rp->orig ? rp->inv_long : rp->inv;
    for (size_t t = 0; t < n; t++)
        for (size_t i = 0; i < half; i++) {
            float ang = (float)(pos0 + t) * inv[i], c = cosf(ang) * rp->scale, s = sinf(ang) * rp->scale;
            for (size_t h = 0; h < heads; h++) {
                float *v = x + (t * heads + h) * hd;
                float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
}
