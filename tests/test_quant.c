/*
 * test_quant.c - the block types q8_0, q4_0, q4_1 (ggml's bytes) and the zero-point types q8_z,
 * q4_z (internal/zpoint.h):
 *  - weight RMSE on the reference fixtures equals expected.json's (the ggml reference), and the
 *    best-quality quantizer lowers it (issue 4, "Done means");
 *  - the AVX2 kernels and any thread count give the scalar reference's bytes and floats, on
 *    random and adversarial data;
 *  - hand-computed known answers for every type;
 *  - zero blocks, one huge value, scales beyond fp16, subnormals, NaN and Inf, row shapes, bad
 *    arguments, F16/BF16 sources and destinations;
 *  - the best-quality quantizer is never worse than the reference on any block;
 *  - type traits and ggml ids; a round trip through a qfmt file.
 *
 * Fixtures: tests/data/fixtures (see its README). Tests never time anything.
 */
#define _GNU_SOURCE
#define QFMT_STATIC_LINKING_ONLY /* the I/O table, kernels, UTF-8 check (qfmt.h) */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QFMT_STATIC_LINKING_ONLY /* qfmt_quant_kernels_get: each kernel on its own */
#include "qfmt.h"

/* The sanitizer build runs the same assertions on less data where a test is expensive. */
#if defined(__SANITIZE_ADDRESS__)
#define QT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QT_SANITIZED 1
#endif
#endif
#ifndef QT_SANITIZED
#define QT_SANITIZED 0
#endif

#define QK 32

/* ---- The block types ------------------------------------------------------------------------ */
typedef struct {
    uint32_t type;
    const char *name;
    uint32_t bytes;
} qt_type;

static const qt_type TYPES[] = {
    {QFMT_TYPE_Q8_0, "q8_0", 34},
    {QFMT_TYPE_Q4_0, "q4_0", 18},
    {QFMT_TYPE_Q4_1, "q4_1", 20},
    {QFMT_TYPE_Q8_Z, "q8_z", 35},
    {QFMT_TYPE_Q4_Z, "q4_z", 19},
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

/* The kernels of a block type, each level on its own. */
static const qfmt_quant_kernels *kern(const qt_type *t) {
    const qfmt_quant_kernels *k = qfmt_quant_kernels_get(t->type);
    cr_assert_not_null(k, "no kernels for %s", t->name);
    return k;
}
#define QREF(t) (kern(t)->quantize_ref)
#define DQREF(t) (kern(t)->dequantize_ref)

static const qt_type *type_of(uint32_t type) {
    for (size_t i = 0; i < NTYPES; i++)
        if (TYPES[i].type == type) return &TYPES[i];
    cr_assert_fail("type %u is not a block type", type);
    return NULL;
}

static bool have_avx2(void) { return qfmt_kernel_available(QFMT_KERNEL_AVX2); }

/* ---- PRNG (splitmix64) and value helpers ----------------------------------------------------- */
static uint64_t rnd(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float rnd_unit(uint64_t *s) { return (float)(rnd(s) >> 40) * 0x1p-24f; } /* [0, 1) */
static float rnd_sym(uint64_t *s) { return 2.0f * rnd_unit(s) - 1.0f; }         /* [-1, 1) */
static int rnd_int(uint64_t *s, int lo, int hi) {
    return lo + (int)(rnd(s) % (uint64_t)(hi - lo + 1));
}

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint64_t qbytes(uint32_t type, uint64_t n) {
    uint64_t b = 0;
    cr_assert_eq(qfmt_type_size(type, n, &b), QFMT_OK, "qfmt_type_size(%u, %llu)", type,
                 (unsigned long long)n);
    return b;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    return p;
}

/* qfmt_quantize with explicit options; err is filled. */
static qfmt_status quant(uint32_t type, void *dst, uint32_t src_type, const void *src,
                         uint64_t nrows, uint64_t row_len, qfmt_kernel k, qfmt_quality q,
                         unsigned threads, qfmt_error *e) {
    qfmt_quant_opts o = {.threads = threads, .quality = q, .kernel = k};
    memset(e, 0, sizeof *e);
    return qfmt_quantize(type, dst, qbytes(type, nrows * row_len), src_type, src, nrows, row_len,
                         &o, e);
}

/* Quantizes nrows x row_len F32 values and asserts success. */
static void quant_ok(uint32_t type, void *dst, const float *src, uint64_t nrows, uint64_t row_len,
                     qfmt_kernel k, qfmt_quality q, unsigned threads) {
    qfmt_error e;
    qfmt_status s = quant(type, dst, QFMT_TYPE_F32, src, nrows, row_len, k, q, threads, &e);
    cr_assert_eq(s, QFMT_OK, "quantize %s (%llux%llu, kernel %d, quality %d, %u threads): %d %s",
                 type_of(type)->name, (unsigned long long)nrows, (unsigned long long)row_len,
                 (int)k, (int)q, threads, (int)s, e.message);
}

static void dequant_ok(uint32_t type, const void *src, uint32_t dst_type, void *dst, uint64_t nrows,
                       uint64_t row_len, qfmt_kernel k, unsigned threads) {
    qfmt_quant_opts o = {.threads = threads, .quality = QFMT_QUALITY_REFERENCE, .kernel = k};
    qfmt_error e;
    memset(&e, 0, sizeof e);
    uint64_t n = nrows * row_len, dsz = n * (dst_type == QFMT_TYPE_F32 ? 4 : 2);
    qfmt_status s = qfmt_dequantize(dst_type, dst, dsz, type, src, nrows, row_len, &o, &e);
    cr_assert_eq(s, QFMT_OK, "dequantize %s: %d %s", type_of(type)->name, (int)s, e.message);
}

/* Index of the first differing byte, or SIZE_MAX. */
static size_t first_diff(const void *a, const void *b, size_t n) {
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return i;
    return SIZE_MAX;
}

/* True if `msg` contains `word` followed by a space and exactly the number `v`. */
static bool names_number(const char *msg, const char *word, uint64_t v) {
    char pat[64];
    snprintf(pat, sizeof pat, "%s %llu", word, (unsigned long long)v);
    for (const char *p = strstr(msg, pat); p; p = strstr(p + 1, pat)) {
        char after = p[strlen(pat)];
        if (!isdigit((unsigned char)after)) return true;
    }
    return false;
}

/* An independent decoder written from the layouts (not the library's kernels): fills x[32]. */
static void decode_block(uint32_t type, const uint8_t *y, float *x) {
    float d = qfmt_f16_to_f32(ld16(y));
    for (int j = 0; j < QK; j++) {
        int nib;
        switch (type) {
        case QFMT_TYPE_Q8_0: x[j] = (float)(int8_t)y[2 + j] * d; break;
        case QFMT_TYPE_Q4_0:
            nib = j < 16 ? (y[2 + j] & 15) : (y[2 + j - 16] >> 4);
            x[j] = (float)(nib - 8) * d;
            break;
        case QFMT_TYPE_Q4_1:
            nib = j < 16 ? (y[4 + j] & 15) : (y[4 + j - 16] >> 4);
            x[j] = (float)nib * d + qfmt_f16_to_f32(ld16(y + 2));
            break;
        case QFMT_TYPE_Q8_Z: x[j] = d * (float)(y[3 + j] - y[2]); break;
        case QFMT_TYPE_Q4_Z:
            nib = j < 16 ? (y[3 + j] & 15) : (y[3 + j - 16] >> 4);
            x[j] = d * (float)(nib - (y[2] & 15));
            break;
        default: cr_assert_fail("decode_block: type %u", type);
        }
    }
}

/* ---- Adversarial data ------------------------------------------------------------------------ */
enum {
    D_UNIFORM,    /* uniform in [-1, 1) */
    D_NORMAL,     /* sum of four uniforms, weight-like scale */
    D_HEAVY,      /* Cauchy-like heavy tails, clamped to +-30000 */
    D_HALVES,     /* multiples of 0.5 * 2^e inside ranges that make the scale exactly 2^e */
    D_EDGE_Q8_0,  /* x*id exactly at (or one ulp around) .5 for q8_0's id */
    D_EDGE_Q4_0,  /* x*id + 8.5 at an integer for q4_0's id (truncation boundary) */
    D_EDGE_Q4_1,  /* (x-min)*id + 0.5 at an integer for q4_1's id */
    D_EDGE_Q8_Z,  /* x*id at .5 for q8_z's (fp16-rounded) id */
    D_EDGE_Q4_Z,  /* x*id at .5 for q4_z's id */
    D_CONST,      /* every value equal */
    D_ZEROS,      /* +0 / -0 mixtures, sometimes with one nonzero value */
    D_ZEROS_SIGN, /* +0 / -0 with values of one sign (min or max is a zero) */
    D_HUGE_ONE,   /* one +-1000 among values ~0.01 */
    D_TINY,       /* normal values ~1e-30 (the scale underflows fp16) */
    D_SUBNORMAL,  /* fp32 subnormals and zeros */
    D_SIGN_TIE,   /* +a and -a both of the largest magnitude */
    D_F16_SUB,    /* scales in fp16's subnormal range */
    D_LOG_MAG,    /* magnitudes spread over 1e-8 .. 1e3 */
    D_SMALL_INT,  /* small integers times a power of two: many ties */
    NDIST
};

static const char *const DIST_NAMES[NDIST] = {
    "uniform",   "normal",    "heavy",   "halves",  "edge_q8_0",  "edge_q4_0", "edge_q4_1",
    "edge_q8_z", "edge_q4_z", "const",   "zeros",   "zeros_sign", "huge_one",  "tiny",
    "subnormal", "sign_tie",  "f16_sub", "log_mag", "small_int",
};

static float nudge(float x, int dir) {
    return dir == 0 ? x : nextafterf(x, dir > 0 ? INFINITY : -INFINITY);
}
static float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

static void gen_block(int dist, float *x, uint64_t *s) {
    int p = rnd_int(s, 0, QK - 1), q = (p + rnd_int(s, 1, QK - 1)) % QK;
    switch (dist) {
    case D_UNIFORM:
        for (int j = 0; j < QK; j++) x[j] = rnd_sym(s);
        break;
    case D_NORMAL:
        for (int j = 0; j < QK; j++)
            x[j] = 0.02f * (rnd_unit(s) + rnd_unit(s) + rnd_unit(s) + rnd_unit(s) - 2.0f);
        break;
    case D_HEAVY:
        for (int j = 0; j < QK; j++) {
            float u = rnd_unit(s);
            x[j] = clampf(0.01f * tanf(3.14159265f * (u - 0.5f)), -30000.0f, 30000.0f);
        }
        break;
    case D_HALVES: {
        /* (lo, hi) pairs that give scale 1 for some type: q8_0 127, q4_0 -8 / 8, q4_1 and q4_z
         * ranges of 15, q8_z ranges of 255. */
        static const float R[][2] = {{-127, 127}, {-63.5f, 63.5f}, {-8, 7},   {-7, 8},
                                     {-8, 8},     {-7.5f, 7.5f},   {0, 15},   {-15, 0},
                                     {-128, 127}, {0, 255},        {-255, 0}, {-4, 3.5f}};
        int r = rnd_int(s, 0, (int)(sizeof R / sizeof R[0]) - 1);
        float sc = ldexpf(1.0f, rnd_int(s, -3, 3)), lo = R[r][0], hi = R[r][1];
        int steps = (int)((hi - lo) * 2.0f);
        for (int j = 0; j < QK; j++) x[j] = (lo + 0.5f * (float)rnd_int(s, 0, steps)) * sc;
        x[p] = lo * sc;
        x[q] = hi * sc;
        break;
    }
    case D_EDGE_Q8_0: {
        float amax = 0.001f + 10.0f * rnd_unit(s), d = amax / 127.0f, id = 1.0f / d;
        for (int j = 0; j < QK; j++) {
            float v = nudge(((float)rnd_int(s, -127, 126) + 0.5f) / id, rnd_int(s, -1, 1));
            x[j] = clampf(v, -amax, amax);
        }
        x[p] = (rnd(s) & 1) ? amax : -amax;
        break;
    }
    case D_EDGE_Q4_0: {
        float amax = 0.001f + 10.0f * rnd_unit(s), m = (rnd(s) & 1) ? amax : -amax;
        float d = m / -8.0f, id = 1.0f / d, below = nextafterf(amax, 0.0f);
        for (int j = 0; j < QK; j++) {
            float v = nudge(((float)rnd_int(s, 0, 16) - 8.5f) / id, rnd_int(s, -1, 1));
            x[j] = clampf(v, -below, below);
        }
        x[p] = m;
        break;
    }
    case D_EDGE_Q4_1: {
        float mn = -10.0f * rnd_unit(s), mx = mn + 0.001f + 10.0f * rnd_unit(s);
        float d = (mx - mn) / 15.0f, id = 1.0f / d;
        for (int j = 0; j < QK; j++) {
            float v = nudge(mn + ((float)rnd_int(s, 1, 15) - 0.5f) / id, rnd_int(s, -1, 1));
            x[j] = clampf(v, mn, mx);
        }
        x[p] = mn;
        x[q] = mx;
        break;
    }
    case D_EDGE_Q8_Z:
    case D_EDGE_Q4_Z: {
        int qmax = dist == D_EDGE_Q8_Z ? 255 : 15;
        float mn = (rnd(s) % 4 == 0) ? 0.0f : -10.0f * rnd_unit(s);
        float mx = (rnd(s) % 4 == 0) ? 0.0f : 10.0f * rnd_unit(s);
        if (mx - mn < 0.001f) mx = mn + 0.001f + rnd_unit(s);
        float sf = qfmt_f16_to_f32(qfmt_f32_to_f16((mx - mn) / (float)qmax)), id = 1.0f / sf;
        for (int j = 0; j < QK; j++) {
            float v = nudge(((float)rnd_int(s, -qmax, qmax) + 0.5f) / id, rnd_int(s, -1, 1));
            x[j] = clampf(v, mn, mx);
        }
        x[p] = mn;
        x[q] = mx;
        break;
    }
    case D_CONST: {
        static const float C[] = {0.5f, -0.5f, 1e-3f, 100.0f, -7.0f, 0.0f, -0.0f, 3.0f};
        float c = (rnd(s) & 1) ? rnd_sym(s) : C[rnd_int(s, 0, 7)];
        for (int j = 0; j < QK; j++) x[j] = c;
        break;
    }
    case D_ZEROS:
        for (int j = 0; j < QK; j++) x[j] = (rnd(s) & 1) ? -0.0f : 0.0f;
        if (rnd(s) % 3 == 0) x[p] = rnd_sym(s);
        break;
    case D_ZEROS_SIGN: {
        float sign = (rnd(s) & 1) ? 1.0f : -1.0f;
        for (int j = 0; j < QK; j++) {
            int k = rnd_int(s, 0, 2);
            x[j] = k == 0 ? 0.0f : k == 1 ? -0.0f : sign * (0.001f + rnd_unit(s));
        }
        break;
    }
    case D_HUGE_ONE:
        for (int j = 0; j < QK; j++) x[j] = 0.01f * rnd_sym(s);
        x[p] = (rnd(s) & 1) ? 1000.0f : -1000.0f;
        break;
    case D_TINY:
        for (int j = 0; j < QK; j++) x[j] = 1e-30f * rnd_sym(s);
        break;
    case D_SUBNORMAL:
        for (int j = 0; j < QK; j++) {
            uint32_t u = (uint32_t)rnd(s) & 0x807FFFFFu; /* exponent 0: subnormal or zero */
            if (rnd(s) % 8 == 0) u &= 0x80000007u;       /* the very smallest ones */
            x[j] = u2f(u);
        }
        break;
    case D_SIGN_TIE: {
        float a = 0.1f + rnd_unit(s);
        for (int j = 0; j < QK; j++) x[j] = a * 0.999f * rnd_sym(s);
        x[p] = a;
        x[q] = -a;
        break;
    }
    case D_F16_SUB: {
        float sc = powf(10.0f, -7.0f + 3.0f * rnd_unit(s));
        for (int j = 0; j < QK; j++) x[j] = sc * rnd_sym(s);
        break;
    }
    case D_LOG_MAG:
        for (int j = 0; j < QK; j++) {
            float m = powf(10.0f, -8.0f + 11.0f * rnd_unit(s));
            x[j] = (rnd(s) & 1) ? m : -m;
        }
        break;
    case D_SMALL_INT: {
        float sc = ldexpf(1.0f, rnd_int(s, -4, 4));
        for (int j = 0; j < QK; j++) x[j] = (float)rnd_int(s, -3, 3) * sc;
        break;
    }
    default: cr_assert_fail("dist %d", dist);
    }
}

/* nblocks blocks; block b is of distribution b % NDIST (so every run has them all). */
static float *gen_data(size_t nblocks, uint64_t seed) {
    float *x = xmalloc(nblocks * QK * sizeof *x);
    uint64_t s = seed;
    for (size_t b = 0; b < nblocks; b++) gen_block((int)(b % NDIST), x + b * QK, &s);
    return x;
}

/* The edge generators really land on the rounding boundaries (else the identity tests below
 * would prove less than they claim): count values exactly at them, computed as the reference
 * kernels compute them. */
Test(quant_simd, generator_hits_exact_rounding_boundaries) {
    uint64_t s = 42;
    float x[QK];
    int q8_0_half = 0, q4_0_int = 0, q4_1_int = 0, z_half = 0;
    for (int rep = 0; rep < 200; rep++) {
        gen_block(D_EDGE_Q8_0, x, &s);
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float id = 1.0f / (amax / 127.0f);
        for (int j = 0; j < QK; j++) {
            float v = x[j] * id;
            q8_0_half += fabsf(v - truncf(v)) == 0.5f;
        }
        gen_block(D_EDGE_Q4_0, x, &s);
        float am = 0, mx = 0;
        for (int j = 0; j < QK; j++)
            if (am < fabsf(x[j])) {
                am = fabsf(x[j]);
                mx = x[j];
            }
        id = 1.0f / (mx / -8.0f);
        for (int j = 0; j < QK; j++) {
            float v = x[j] * id + 8.5f;
            q4_0_int += v == truncf(v);
        }
        gen_block(D_EDGE_Q4_1, x, &s);
        float mn = x[0], mxx = x[0];
        for (int j = 1; j < QK; j++) {
            mn = fminf(mn, x[j]);
            mxx = fmaxf(mxx, x[j]);
        }
        id = 1.0f / ((mxx - mn) / 15.0f);
        for (int j = 0; j < QK; j++) {
            float v = (x[j] - mn) * id + 0.5f;
            q4_1_int += v == truncf(v);
        }
        gen_block(D_EDGE_Q4_Z, x, &s);
        mn = 0;
        mxx = 0;
        for (int j = 0; j < QK; j++) {
            mn = fminf(mn, x[j]);
            mxx = fmaxf(mxx, x[j]);
        }
        id = 1.0f / qfmt_f16_to_f32(qfmt_f32_to_f16((mxx - mn) / 15.0f));
        for (int j = 0; j < QK; j++) {
            float v = x[j] * id;
            z_half += fabsf(v - truncf(v)) == 0.5f;
        }
    }
    cr_log_info("exact boundaries in 200 blocks: q8_0 %d, q4_0 %d, q4_1 %d, q4_z %d", q8_0_half,
                q4_0_int, q4_1_int, z_half);
    cr_assert_gt(q8_0_half, 100);
    cr_assert_gt(q4_0_int, 100);
    cr_assert_gt(q4_1_int, 100);
    cr_assert_gt(z_half, 100);
}

/* ---- 2. Scalar vs AVX2, and threads --------------------------------------------------------- */
#define ADV_BLOCKS (NDIST * 256)

static void check_same_quant(const qt_type *t, const float *x, size_t nblocks, const uint8_t *a,
                             const uint8_t *b, const char *what) {
    size_t n = nblocks * t->bytes, i = first_diff(a, b, n);
    if (i == SIZE_MAX) return;
    size_t blk = i / t->bytes;
    char vals[400] = "";
    for (int j = 0; j < 8; j++) {
        size_t l = strlen(vals);
        snprintf(vals + l, sizeof vals - l, "%a ", (double)x[blk * QK + (size_t)j]);
    }
    cr_assert_fail("%s %s: byte %zu of block %zu (%s) differs: %02x vs %02x; first values %s",
                   t->name, what, i % t->bytes, blk, DIST_NAMES[blk % NDIST], a[i], b[i], vals);
}

Test(quant_simd, avx2_bytes_equal_scalar_on_adversarial_data) {
    if (!have_avx2()) cr_skip_test("no AVX2+FMA+F16C on this CPU");
    const size_t nb = ADV_BLOCKS, n = nb * QK;
    float *x = gen_data(nb, 42);
    float *rs = xmalloc(n * 4), *ra = xmalloc(n * 4);
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const qt_type *t = &TYPES[ti];
        uint8_t *ys = xmalloc(nb * t->bytes), *ya = xmalloc(nb * t->bytes),
                *yd = xmalloc(nb * t->bytes);
        quant_ok(t->type, ys, x, nb / 4, 4 * QK, QFMT_KERNEL_SCALAR, QFMT_QUALITY_REFERENCE, 1);
        quant_ok(t->type, ya, x, nb / 4, 4 * QK, QFMT_KERNEL_AVX2, QFMT_QUALITY_REFERENCE, 1);
        check_same_quant(t, x, nb, ys, ya, "AVX2 vs scalar quantize");
        quant_ok(t->type, ya, x, nb / 4, 4 * QK, QFMT_KERNEL_AUTO, QFMT_QUALITY_REFERENCE, 1);
        check_same_quant(t, x, nb, ys, ya, "AUTO vs scalar quantize");
        /* The public scalar path is the reference kernel itself. */
        cr_assert_eq(QREF(t)(x, yd, nb), nb);
        check_same_quant(t, x, nb, ys, yd, "qfmt_quantize vs reference kernel");
        if (t->type == QFMT_TYPE_Q4_Z)
            for (size_t b = 0; b < nb; b++)
                cr_assert_leq(ys[b * t->bytes + 2], 15, "q4_z block %zu: z %u > 15", b,
                              ys[b * t->bytes + 2]);
        /* Dequantize the reference bytes, and the best-quality bytes (other codes and scales). */
        for (int pass = 0; pass < 2; pass++) {
            const uint8_t *y = ys;
            if (pass == 1) {
                quant_ok(t->type, yd, x, nb / 4, 4 * QK, QFMT_KERNEL_SCALAR, QFMT_QUALITY_BEST, 2);
                y = yd;
            }
            dequant_ok(t->type, y, QFMT_TYPE_F32, rs, nb / 4, 4 * QK, QFMT_KERNEL_SCALAR, 1);
            dequant_ok(t->type, y, QFMT_TYPE_F32, ra, nb / 4, 4 * QK, QFMT_KERNEL_AVX2, 1);
            size_t i = first_diff(rs, ra, n * 4);
            cr_assert_eq(i, SIZE_MAX, "%s dequantize (%s bytes): value %zu (%s) %a vs %a", t->name,
                         pass ? "best" : "reference", i / 4, DIST_NAMES[(i / 4 / QK) % NDIST],
                         i == SIZE_MAX ? 0.0 : (double)rs[i / 4],
                         i == SIZE_MAX ? 0.0 : (double)ra[i / 4]);
        }
        free(ys);
        free(ya);
        free(yd);
    }
    free(x);
    free(rs);
    free(ra);
}

/* Every distribution alone, in blocks of its own, also through single blocks: no neighbour
 * can hide a difference. */
Test(quant_simd, avx2_equal_scalar_per_distribution_single_blocks) {
    if (!have_avx2()) cr_skip_test("no AVX2+FMA+F16C on this CPU");
    uint64_t s = 7;
    float x[QK], rs[QK], ra[QK];
    uint8_t ys[64], ya[64];
    for (int d = 0; d < NDIST; d++)
        for (int rep = 0; rep < 200; rep++) {
            gen_block(d, x, &s);
            for (size_t ti = 0; ti < NTYPES; ti++) {
                const qt_type *t = &TYPES[ti];
                size_t ns = QREF(t)(x, ys, 1), na;
                na = kern(t)->quantize_avx2(x, ya, 1);
                cr_assert_eq(ns, 1);
                cr_assert_eq(na, 1);
                check_same_quant(t, x, 1, ys, ya, DIST_NAMES[d]);
                DQREF(t)(ys, rs, 1);
                kern(t)->dequantize_avx2(ys, ra, 1);
                cr_assert_eq(first_diff(rs, ra, sizeof rs), SIZE_MAX,
                             "%s %s: dequantized floats differ", t->name, DIST_NAMES[d]);
            }
        }
}

/* Arbitrary block bytes (any scale, NaN and Inf scales included) dequantize alike. */
Test(quant_simd, avx2_dequantize_equal_scalar_on_random_bytes) {
    if (!have_avx2()) cr_skip_test("no AVX2+FMA+F16C on this CPU");
    const size_t nb = 4096, n = nb * QK;
    float *rs = xmalloc(n * 4), *ra = xmalloc(n * 4);
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const qt_type *t = &TYPES[ti];
        uint8_t *y = xmalloc(nb * t->bytes);
        uint64_t s = 1000 + ti;
        for (size_t i = 0; i < nb * t->bytes; i++) y[i] = (uint8_t)rnd(&s);
        dequant_ok(t->type, y, QFMT_TYPE_F32, rs, 1, n, QFMT_KERNEL_SCALAR, 1);
        dequant_ok(t->type, y, QFMT_TYPE_F32, ra, 1, n, QFMT_KERNEL_AVX2, 1);
        for (size_t i = 0; i < n; i++) {
            bool same = f2u(rs[i]) == f2u(ra[i]) || (isnan(rs[i]) && isnan(ra[i]));
            cr_assert(same, "%s value %zu: %a vs %a", t->name, i, (double)rs[i], (double)ra[i]);
        }
        free(y);
    }
    free(rs);
    free(ra);
}

/* A scale beyond fp16 stops both kernels at the same block. */
Test(quant_simd, avx2_stops_at_the_same_block_as_scalar) {
    if (!have_avx2()) cr_skip_test("no AVX2+FMA+F16C on this CPU");
    float x[4 * QK];
    uint8_t ys[4 * 35], ya[4 * 35];
    uint64_t s = 3;
    for (int i = 0; i < 4 * QK; i++) x[i] = rnd_sym(&s);
    x[2 * QK + 5] = 1e9f; /* block 2 */
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const qt_type *t = &TYPES[ti];
        size_t ns = QREF(t)(x, ys, 4), na;
        na = kern(t)->quantize_avx2(x, ya, 4);
        cr_assert_eq(ns, 2, "%s scalar stopped at %zu", t->name, ns);
        cr_assert_eq(na, 2, "%s AVX2 stopped at %zu", t->name, na);
        cr_assert_eq(first_diff(ys, ya, 2 * t->bytes), SIZE_MAX, "%s: blocks before differ",
                     t->name);
    }
}

/* Threads split the blocks; the bytes and floats never depend on how many. */
Test(quant_threads, any_thread_count_gives_the_single_thread_output) {
    const uint64_t rows = 37, row_len = 1024; /* 1184 blocks: 9 chunks of 128, so 7 threads run */
    const size_t n = rows * row_len, nb = n / QK;
    float *x = gen_data(nb, 99);
    float *r1 = xmalloc(n * 4), *rt = xmalloc(n * 4);
    static const unsigned TH[] = {2, 3, 7};
    qfmt_kernel kernels[2] = {QFMT_KERNEL_SCALAR, QFMT_KERNEL_AVX2};
    int nk = have_avx2() ? 2 : 1;
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const qt_type *t = &TYPES[ti];
        uint8_t *y1 = xmalloc(nb * t->bytes), *yt = xmalloc(nb * t->bytes);
        for (int qi = 0; qi < 2; qi++)
            for (int ki = 0; ki < nk; ki++) {
                qfmt_quality q = qi ? QFMT_QUALITY_BEST : QFMT_QUALITY_REFERENCE;
                if (q == QFMT_QUALITY_BEST && ki == 1) continue; /* best has one (scalar) path */
                quant_ok(t->type, y1, x, rows, row_len, kernels[ki], q, 1);
                dequant_ok(t->type, y1, QFMT_TYPE_F32, r1, rows, row_len, kernels[ki], 1);
                for (size_t i = 0; i < sizeof TH / sizeof TH[0]; i++) {
                    char what[64];
                    snprintf(what, sizeof what, "%u threads, quality %d, kernel %d", TH[i], qi,
                             (int)kernels[ki]);
                    memset(yt, 0xA5, nb * t->bytes);
                    quant_ok(t->type, yt, x, rows, row_len, kernels[ki], q, TH[i]);
                    check_same_quant(t, x, nb, y1, yt, what);
                    memset(rt, 0xA5, n * 4);
                    dequant_ok(t->type, y1, QFMT_TYPE_F32, rt, rows, row_len, kernels[ki], TH[i]);
                    cr_assert_eq(first_diff(r1, rt, n * 4), SIZE_MAX, "%s dequantize, %s", t->name,
                                 what);
                }
            }
        free(y1);
        free(yt);
    }
    free(x);
    free(r1);
    free(rt);
}

/* ---- 3. Hand-computed known answers ---------------------------------------------------------- */
/* Quantizes x with every kernel (scalar, AVX2 when available, AUTO, the reference kernel
 * called directly) and expects `want`; then dequantizes (scalar and AVX2) and expects what the
 * independent decoder reads from `want`. */
static void check_known(uint32_t type, const float *x, const uint8_t *want, const char *label) {
    const qt_type *t = type_of(type);
    uint8_t y[64];
    qfmt_kernel ks[3] = {QFMT_KERNEL_SCALAR, QFMT_KERNEL_AUTO, QFMT_KERNEL_AVX2};
    for (int k = 0; k < 3; k++) {
        if (ks[k] == QFMT_KERNEL_AVX2 && !have_avx2()) continue;
        memset(y, 0xEE, sizeof y);
        quant_ok(type, y, x, 1, QK, ks[k], QFMT_QUALITY_REFERENCE, 1);
        size_t i = first_diff(y, want, t->bytes);
        cr_assert_eq(i, SIZE_MAX, "%s %s (kernel %d): byte %zu is %02x, want %02x", t->name, label,
                     (int)ks[k], i, i == SIZE_MAX ? 0 : y[i], i == SIZE_MAX ? 0 : want[i]);
    }
    memset(y, 0xEE, sizeof y);
    cr_assert_eq(QREF(t)(x, y, 1), 1);
    cr_assert_eq(first_diff(y, want, t->bytes), SIZE_MAX, "%s %s: reference kernel", t->name,
                 label);
    float expect[QK], got[QK];
    decode_block(type, want, expect);
    for (int k = 0; k < 3; k += 2) {
        if (ks[k] == QFMT_KERNEL_AVX2 && !have_avx2()) continue;
        dequant_ok(type, want, QFMT_TYPE_F32, got, 1, QK, ks[k], 1);
        for (int j = 0; j < QK; j++)
            cr_assert_eq(f2u(got[j]), f2u(expect[j]), "%s %s: dequantized [%d] = %a, want %a",
                         t->name, label, j, (double)got[j], (double)expect[j]);
    }
}

/* q8_0 (ggml): d = amax/127, id = 1/d, q = roundf(x*id), d stored as fp16.
 * x[0] = 127, x[1] = -127, x[j] = (j-16)/2 for j = 2..31 (-7, -6.5, ..., 7.5).
 * amax = 127, so d = 1 exactly (fp16 0x3C00, bytes 00 3C) and id = 1: q = roundf(x), halves
 * away from zero: -7 -> F9, -6.5 -> -7 F9, -6 FA, -5.5 -> FA, ..., -0.5 -> -1 FF, 0 -> 00,
 * 0.5 -> 01, 1 -> 01, 1.5 -> 02, ..., 7 -> 07, 7.5 -> 08; 127 -> 7F, -127 -> 81. */
Test(quant_known, q8_0_hand_computed) {
    float x[QK];
    x[0] = 127.0f;
    x[1] = -127.0f;
    for (int j = 2; j < QK; j++) x[j] = (float)(j - 16) * 0.5f;
    static const uint8_t want[34] = {
        0x00, 0x3C, /* d = 1 */
        0x7F, 0x81, /* x[0], x[1] = 127, -127 */
        /* x[2..15] = -7, -6.5, ..., -0.5 */
        0xF9, 0xF9, 0xFA, 0xFA, 0xFB, 0xFB, 0xFC, 0xFC, 0xFD, 0xFD, 0xFE, 0xFE, 0xFF, 0xFF,
        0x00, /* x[16] = 0 */
        /* x[17..31] = 0.5, 1, ..., 7.5 */
        0x01, 0x01, 0x02, 0x02, 0x03, 0x03, 0x04, 0x04, 0x05, 0x05, 0x06, 0x06, 0x07, 0x07, 0x08,
    };
    check_known(QFMT_TYPE_Q8_0, x, want, "d=1");
    /* Scaled by 1/2: amax 63.5, d = 0.5 (0x3800), id = 2: the same codes. */
    for (int j = 0; j < QK; j++) x[j] *= 0.5f;
    uint8_t half[34];
    memcpy(half, want, 34);
    half[1] = 0x38;
    check_known(QFMT_TYPE_Q8_0, x, half, "d=0.5");
}

/* q4_0 (ggml): d = max/-8 with max the signed value of largest magnitude (the first one on a
 * tie), id = 1/d, q = min(15, (int8_t)(x*id + 8.5f)); byte j = q[j] | q[j+16] << 4.
 * A: x[j] = j-16 (-16..15) but x[31] = +16, tying with x[0] = -16: the first wins, max = -16,
 * d = 2 (0x4000), id = 0.5: x*id + 8.5 = j/2 + 0.5, so q[j] = floor((j+1)/2):
 *   q[0..15]  = 0 1 1 2 2 3 3 4 4 5 5 6 6 7 7 8
 *   q[16..31] = 8 9 9 10 10 11 11 12 12 13 13 14 14 15 15 and q[31] = min(15, 16.5 -> 16) = 15.
 * (Had +16 won, d would be -2 and every code mirrored.) */
Test(quant_known, q4_0_hand_computed_first_of_tie_negative) {
    float x[QK];
    for (int j = 0; j < QK; j++) x[j] = (float)(j - 16);
    x[31] = 16.0f;
    static const uint8_t want[18] = {0x00, 0x40, 0x80, 0x91, 0x91, 0xA2, 0xA2, 0xB3, 0xB3,
                                     0xC4, 0xC4, 0xD5, 0xD5, 0xE6, 0xE6, 0xF7, 0xF7, 0xF8};
    check_known(QFMT_TYPE_Q4_0, x, want, "tie -16 first");
}

/* B: x[0] = +16, x[1] = -16, x[j] = j-16 for j = 2..31 (-14..15). The tie goes to +16: d = -2
 * (0xC000), id = -0.5, q = (int8_t)(8.5 - x/2):
 *   x[0] = 16 -> 0.5 -> 0;  x[1] = -16 -> 16.5 -> 16 -> 15;  x = -14 -> 15.5 -> 15;  -13 -> 15;
 *   -12 -> 14.5 -> 14; -11 -> 14; -10 -> 13; -9 -> 13; -8 -> 12; -7 -> 12; -6 -> 11; -5 -> 11;
 *   -4 -> 10; -3 -> 10; -2 -> 9; -1 -> 9; 0 -> 8.5 -> 8; 1 -> 8; 2 -> 7; 3 -> 7; ...; 14 -> 1;
 *   15 -> 1.
 *   q[0..15]  = 0 15 15 15 14 14 13 13 12 12 11 11 10 10 9 9
 *   q[16..31] = 8 8 7 7 6 6 5 5 4 4 3 3 2 2 1 1 */
Test(quant_known, q4_0_hand_computed_first_of_tie_positive) {
    float x[QK];
    for (int j = 0; j < QK; j++) x[j] = (float)(j - 16);
    x[0] = 16.0f;
    x[1] = -16.0f;
    static const uint8_t want[18] = {0x00, 0xC0, 0x80, 0x8F, 0x7F, 0x7F, 0x6E, 0x6E, 0x5D,
                                     0x5D, 0x4C, 0x4C, 0x3B, 0x3B, 0x2A, 0x2A, 0x19, 0x19};
    check_known(QFMT_TYPE_Q4_0, x, want, "tie +16 first");
}

/* q4_1 (ggml): d = (max-min)/15, m = min, id = 1/d, q = min(15, (int8_t)((x-min)*id + 0.5f)).
 * x[j] = j/2 - 8 for j = 0..30 (-8 .. 7), x[31] = -0.25. min = -8, max = 7: d = 1 (0x3C00),
 * m = -8 (0xC800), id = 1; (x+8) + 0.5 = j/2 + 0.5, so q[j] = floor((j+1)/2) for j <= 30 and
 * q[31] = (int8_t)8.25 = 8:
 *   q[0..15]  = 0 1 1 2 2 3 3 4 4 5 5 6 6 7 7 8
 *   q[16..31] = 8 9 9 10 10 11 11 12 12 13 13 14 14 15 15 8 */
Test(quant_known, q4_1_hand_computed) {
    float x[QK];
    for (int j = 0; j < 31; j++) x[j] = (float)j * 0.5f - 8.0f;
    x[31] = -0.25f;
    static const uint8_t want[20] = {0x00, 0x3C, 0x00, 0xC8, 0x80, 0x91, 0x91, 0xA2, 0xA2, 0xB3,
                                     0xB3, 0xC4, 0xC4, 0xD5, 0xD5, 0xE6, 0xE6, 0xF7, 0xF7, 0x88};
    check_known(QFMT_TYPE_Q4_1, x, want, "m=-8");
    /* The same block shifted by +9: min 1, max 16, d = 1, m = 1 (0x3C00); codes unchanged. */
    for (int j = 0; j < QK; j++) x[j] += 9.0f;
    uint8_t shifted[20];
    memcpy(shifted, want, 20);
    shifted[2] = 0x00;
    shifted[3] = 0x3C;
    check_known(QFMT_TYPE_Q4_1, x, shifted, "m=+1");
}

/* q8_z (internal/zpoint.h): min' = min(min, 0), max' = max(max, 0), s = (max'-min')/255 stored
 * fp16, id = 1/fp16(s), z = clamp(roundf(-min'*id), 0, 255), q = clamp(roundf(x*id) + z, 0, 255).
 * A: x[0] = -128, x[1] = 127, x[j] = (j-17)/2 for j = 2..31 (-7.5 .. 7). s = 255/255 = 1
 * (0x3C00), id = 1, z = 128 (0x80). q = roundf(x) + 128 with halves away from zero:
 *   -128 -> 0; 127 -> 255; -7.5 -> -8 -> 120 (78); -7 -> 121 (79); -6.5 -> 121; -6 -> 122 (7A);
 *   ...; -0.5 -> -1 -> 127 (7F); 0 -> 128 (80); 0.5 -> 129 (81); 1 -> 129; ...; 6.5 -> 135;
 *   7 -> 135 (87). */
Test(quant_known, q8_z_hand_computed) {
    float x[QK];
    x[0] = -128.0f;
    x[1] = 127.0f;
    for (int j = 2; j < QK; j++) x[j] = (float)(j - 17) * 0.5f;
    static const uint8_t want[35] = {
        0x00, 0x3C, 0x80, /* s = 1, z = 128 */
        0x00, 0xFF,       /* -128, 127 */
        0x78, 0x79, 0x79, 0x7A, 0x7A, 0x7B, 0x7B, 0x7C, 0x7C, 0x7D, 0x7D, 0x7E, 0x7E, 0x7F, 0x7F,
        0x80, 0x81, 0x81, 0x82, 0x82, 0x83, 0x83, 0x84, 0x84, 0x85, 0x85, 0x86, 0x86, 0x87, 0x87,
    };
    check_known(QFMT_TYPE_Q8_Z, x, want, "z=128");
}

/* B, all negative: x[0] = -255, x[j] = -(j-1)/2 for j = 1..31 (-0, -0.5, ..., -15). min' = -255,
 * max' = 0: s = 1, z = 255 (the widened range keeps z in range). q = roundf(x) + 255:
 *   -255 -> 0; -0 -> 255; -0.5 -> -1 -> 254; -1 -> 254; -1.5 -> 253; ...; -14.5 -> 240;
 *   -15 -> 240 */
Test(quant_known, q8_z_hand_computed_all_negative) {
    float x[QK];
    x[0] = -255.0f;
    for (int j = 1; j < QK; j++) x[j] = -(float)(j - 1) * 0.5f;
    static const uint8_t want[35] = {
        0x00, 0x3C, 0xFF, /* s = 1, z = 255 */
        0x00, 0xFF, 0xFE, 0xFE, 0xFD, 0xFD, 0xFC, 0xFC, 0xFB, 0xFB, 0xFA,
        0xFA, 0xF9, 0xF9, 0xF8, 0xF8, 0xF7, 0xF7, 0xF6, 0xF6, 0xF5, 0xF5,
        0xF4, 0xF4, 0xF3, 0xF3, 0xF2, 0xF2, 0xF1, 0xF1, 0xF0, 0xF0,
    };
    check_known(QFMT_TYPE_Q8_Z, x, want, "z=255");
}

/* q4_z: as q8_z with qmax 15; 4-bit codes in q4_0's nibble order after s (fp16) and z (u8).
 * A: x[0] = -6, x[1] = 9, x[j] = (j-14)/2 for j = 2..31 (-6 .. 8.5). s = 15/15 = 1, id = 1,
 * z = roundf(6) = 6; q = roundf(x) + 6:
 *   q[0..15]  = 0 15 0 0 1 1 2 2 3 3 4 4 5 5 6 7      (-6, 9, -6, -5.5->-6, -5, -4.5->-5, ...)
 *   q[16..31] = 7 8 8 9 9 10 10 11 11 12 12 13 13 14 14 15   (1, 1.5->2, 2, ..., 8, 8.5->9) */
Test(quant_known, q4_z_hand_computed) {
    float x[QK];
    x[0] = -6.0f;
    x[1] = 9.0f;
    for (int j = 2; j < QK; j++) x[j] = (float)(j - 14) * 0.5f;
    static const uint8_t want[19] = {0x00, 0x3C, 0x06, 0x70, 0x8F, 0x80, 0x90, 0x91, 0xA1, 0xA2,
                                     0xB2, 0xB3, 0xC3, 0xC4, 0xD4, 0xD5, 0xE5, 0xE6, 0xF7};
    check_known(QFMT_TYPE_Q4_Z, x, want, "z=6");
}

/* B, all non-negative: x[j] = j/2 for j = 0..30, x[31] = 7.25. min' = 0, max' = 15: s = 1,
 * z = 0; q = roundf(x): 0 1 1 2 2 3 3 4 4 5 5 6 6 7 7 8 | 8 9 9 10 10 11 11 12 12 13 13 14 14
 * 15 15 7. */
Test(quant_known, q4_z_hand_computed_z0) {
    float x[QK];
    for (int j = 0; j < 31; j++) x[j] = (float)j * 0.5f;
    x[31] = 7.25f;
    static const uint8_t want[19] = {0x00, 0x3C, 0x00, 0x80, 0x91, 0x91, 0xA2, 0xA2, 0xB3, 0xB3,
                                     0xC4, 0xC4, 0xD5, 0xD5, 0xE6, 0xE6, 0xF7, 0xF7, 0x78};
    check_known(QFMT_TYPE_Q4_Z, x, want, "z=0");
}

/* C, z clamped: with a scale in fp16's subnormal range the stored s is rounded far enough for
 * roundf(-min'*id) to pass qmax. a = 18.75 * 2^-24; x[0] = -a, x[j] = -(j-1)/2 * 2^-24 for
 * j = 1..31 (-0 .. -15 * 2^-24). s = a/15 = 1.25 * 2^-24, fp16 rounds it to 2^-24 (0x0001),
 * id = 2^24, roundf(a*id) = roundf(18.75) = 19 -> z = 15. q = clamp(roundf(x*2^24) + 15, 0, 15):
 *   x[0] -> -19 + 15 -> 0; -0 -> 15; -0.5 -> -1 -> 14; -1 -> 14; -1.5 -> 13; ...; -15 -> 0:
 *   q[0..15]  = 0 15 14 14 13 13 12 12 11 11 10 10 9 9 8 8
 *   q[16..31] = 7 7 6 6 5 5 4 4 3 3 2 2 1 1 0 0 */
Test(quant_known, q4_z_hand_computed_z_clamped) {
    float x[QK];
    x[0] = -18.75f * 0x1p-24f;
    for (int j = 1; j < QK; j++) x[j] = -(float)(j - 1) * 0.5f * 0x1p-24f;
    static const uint8_t want[19] = {0x01, 0x00, 0x0F, 0x70, 0x7F, 0x6E, 0x6E, 0x5D, 0x5D, 0x4C,
                                     0x4C, 0x3B, 0x3B, 0x2A, 0x2A, 0x19, 0x19, 0x08, 0x08};
    check_known(QFMT_TYPE_Q4_Z, x, want, "z clamped");
}

/* ---- 4. Edge cases and errors ---------------------------------------------------------------- */
/* Blocks of zeros: q8_0 stores d = +0 and codes 0; q4_0 stores d = max/-8 = +0/-8 = -0 (0x8000,
 * as ggml does) and codes 8 (bytes 0x88); q4_1 d = 0, m = the first zero (its sign kept), codes
 * 0; the z types s = 0, z = 0, codes 0. Everything dequantizes to zero. */
Test(quant_edge, zero_blocks) {
    float blocks[3][QK];
    uint64_t s = 5;
    for (int j = 0; j < QK; j++) {
        blocks[0][j] = 0.0f;
        blocks[1][j] = -0.0f;
        blocks[2][j] = (rnd(&s) & 1) ? -0.0f : 0.0f;
    }
    blocks[2][0] = -0.0f;
    blocks[2][1] = 0.0f;
    for (int bi = 0; bi < 3; bi++)
        for (size_t ti = 0; ti < NTYPES; ti++) {
            const qt_type *t = &TYPES[ti];
            uint8_t want[64], y[64];
            memset(want, 0, sizeof want);
            if (t->type == QFMT_TYPE_Q4_0) {
                want[1] = 0x80;
                memset(want + 2, 0x88, 16);
            }
            if (t->type == QFMT_TYPE_Q4_1 && signbit(blocks[bi][0])) want[3] = 0x80;
            for (int k = 0; k < 2; k++) {
                qfmt_kernel kern = k ? QFMT_KERNEL_AVX2 : QFMT_KERNEL_SCALAR;
                if (k && !have_avx2()) continue;
                for (int qi = 0; qi < 2; qi++) {
                    memset(y, 0xEE, sizeof y);
                    quant_ok(t->type, y, blocks[bi], 1, QK, kern,
                             qi ? QFMT_QUALITY_BEST : QFMT_QUALITY_REFERENCE, 1);
                    size_t i = first_diff(y, want, t->bytes);
                    cr_assert_eq(
                        i, SIZE_MAX,
                        "%s zero block %d (kernel %d, quality %d): byte %zu = %02x, want %02x",
                        t->name, bi, (int)kern, qi, i, i == SIZE_MAX ? 0 : y[i],
                        i == SIZE_MAX ? 0 : want[i]);
                    float r[QK];
                    dequant_ok(t->type, y, QFMT_TYPE_F32, r, 1, QK, kern, 1);
                    for (int j = 0; j < QK; j++)
                        cr_assert_eq(r[j], 0.0f, "%s: r[%d] = %a", t->name, j, (double)r[j]);
                }
            }
        }
}

/* One huge value: it keeps its size; the small ones become 0 (q4_1: its offset m = min). */
Test(quant_edge, one_huge_value) {
    for (int sign = -1; sign <= 1; sign += 2) {
        float x[2 * QK], r[2 * QK];
        uint64_t s = 11;
        for (int j = 0; j < 2 * QK; j++) x[j] = 0.01f * rnd_sym(&s);
        x[13] = 1000.0f * (float)sign;
        x[QK + 31] = 1000.0f * (float)sign; /* last element of the second block */
        for (size_t ti = 0; ti < NTYPES; ti++) {
            const qt_type *t = &TYPES[ti];
            uint8_t y[2 * 35];
            for (int qi = 0; qi < 2; qi++) {
                quant_ok(t->type, y, x, 1, 2 * QK, QFMT_KERNEL_AUTO,
                         qi ? QFMT_QUALITY_BEST : QFMT_QUALITY_REFERENCE, 1);
                dequant_ok(t->type, y, QFMT_TYPE_F32, r, 1, 2 * QK, QFMT_KERNEL_SCALAR, 1);
                for (int j = 0; j < 2 * QK; j++) {
                    if (j == 13 || j == QK + 31) {
                        cr_assert(fabsf(r[j] - x[j]) <= 1.0f, "%s huge: %g -> %g", t->name,
                                  (double)x[j], (double)r[j]);
                        continue;
                    }
                    /* q4_1's d = 1000.01/15 is stored as 66.6875: with min -1000 its top code
                     * lands 15*66.6875 - 1000 = 0.31 above zero. */
                    float tol = t->type == QFMT_TYPE_Q4_1 ? 0.5f : 0.02f;
                    cr_assert(fabsf(r[j] - x[j]) <= tol, "%s [%d]: %g -> %g", t->name, j,
                              (double)x[j], (double)r[j]);
                    if (t->type != QFMT_TYPE_Q4_1 && qi == 0)
                        cr_assert_eq(r[j], 0.0f, "%s [%d]: %g -> %g, want 0", t->name, j,
                                     (double)x[j], (double)r[j]);
                }
            }
        }
    }
}

/* Values whose block scale (or q4_1's offset) does not fit fp16: QFMT_E_RANGE naming the row
 * and the block's first column. Exactly at fp16's largest finite value still works. */
Test(quant_edge, scale_beyond_fp16_names_row_and_column) {
    float x[3 * 64];
    uint64_t s = 17;
    for (int i = 0; i < 3 * 64; i++) x[i] = rnd_sym(&s);
    x[2 * 64 + 40] = 1e9f; /* row 2, column 40: the block at column 32 */
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const qt_type *t = &TYPES[ti];
        uint8_t y[3 * 2 * 35];
        for (int k = 0; k < 2; k++)
            for (int qi = 0; qi < 2; qi++) {
                if (k && !have_avx2()) continue;
                qfmt_error e;
                qfmt_status st = quant(t->type, y, QFMT_TYPE_F32, x, 3, 64,
                                       k ? QFMT_KERNEL_AVX2 : QFMT_KERNEL_SCALAR,
                                       qi ? QFMT_QUALITY_BEST : QFMT_QUALITY_REFERENCE, 1, &e);
                cr_assert_eq(st, QFMT_E_RANGE, "%s: %d", t->name, (int)st);
                cr_assert_eq(e.code, QFMT_E_RANGE);
                cr_assert(names_number(e.message, "row", 2), "%s: message '%s'", t->name,
                          e.message);
                cr_assert(names_number(e.message, "column", 32), "%s: message '%s'", t->name,
                          e.message);
            }
    }
}

/* The boundary: fp16's largest finite value is 65504; 65520 and above round to Inf. */
Test(quant_edge, scale_at_fp16_limit) {
    struct {
        uint32_t type;
        float lo, hi;  /* the block's min and max (others in between) */
        bool ok;
        uint16_t d, m; /* the stored scale (and q4_1's m) when ok */
    } C[] = {
        {QFMT_TYPE_Q8_0, -65504.0f * 127, 1.0f, true, 0x7BFF, 0},  /* d = 65504 */
        {QFMT_TYPE_Q8_0, -65519.0f * 127, 1.0f, true, 0x7BFF, 0},  /* d = 65519 -> 65504 */
        {QFMT_TYPE_Q8_0, -65520.0f * 127, 1.0f, false, 0, 0},      /* d = 65520 -> Inf */
        {QFMT_TYPE_Q4_0, -1.0f, 65504.0f * 8, true, 0xFBFF, 0},    /* d = max/-8 = -65504 */
        {QFMT_TYPE_Q4_0, -1.0f, 65520.0f * 8, false, 0, 0},
        {QFMT_TYPE_Q4_1, -65504.0f, -65504.0f + 15, true, 0x3C00, 0xFBFF}, /* d = 1 */
        {QFMT_TYPE_Q4_1, -65520.0f, -65520.0f + 15, false, 0, 0},  /* d = 1 fits, m does not */
        {QFMT_TYPE_Q4_1, -65504.0f, 65504.0f * 14, true, 0x7BFF, 0xFBFF}, /* d = 65504 */
        {QFMT_TYPE_Q4_1, -65504.0f, 65520.0f * 15 - 65504.0f, false, 0, 0}, /* d = 65520 */
        {QFMT_TYPE_Q8_Z, -65504.0f * 255, 0.0f, true, 0x7BFF, 0},
        {QFMT_TYPE_Q8_Z, -65520.0f * 255, 0.0f, false, 0, 0},
        {QFMT_TYPE_Q4_Z, 0.0f, 65504.0f * 15, true, 0x7BFF, 0},
        {QFMT_TYPE_Q4_Z, 0.0f, 65520.0f * 15, false, 0, 0},
    };
    for (size_t c = 0; c < sizeof C / sizeof C[0]; c++) {
        float x[QK];
        for (int j = 0; j < QK; j++) x[j] = C[c].lo + (C[c].hi - C[c].lo) * (float)j / 64.0f;
        x[3] = C[c].lo;
        x[17] = C[c].hi;
        uint8_t y[35];
        for (int k = 0; k < 2; k++) {
            if (k && !have_avx2()) continue;
            qfmt_error e;
            qfmt_status st =
                quant(C[c].type, y, QFMT_TYPE_F32, x, 1, QK,
                      k ? QFMT_KERNEL_AVX2 : QFMT_KERNEL_SCALAR, QFMT_QUALITY_REFERENCE, 1, &e);
            cr_assert_eq(st, C[c].ok ? QFMT_OK : QFMT_E_RANGE, "case %zu (%s, kernel %d): %d %s", c,
                         type_of(C[c].type)->name, k, (int)st, e.message);
            if (st == QFMT_OK) {
                cr_assert_eq(ld16(y), C[c].d, "case %zu: stored scale %04x, want %04x", c, ld16(y),
                             C[c].d);
                if (C[c].type == QFMT_TYPE_Q4_1)
                    cr_assert_eq(ld16(y + 2), C[c].m, "case %zu: stored m %04x, want %04x", c,
                                 ld16(y + 2), C[c].m);
            } else {
                cr_assert(names_number(e.message, "row", 0) && names_number(e.message, "column", 0),
                          "case %zu: '%s'", c, e.message);
            }
        }
    }
}

/* Subnormal inputs (and normal ones as small as 1e-30): the scale underflows fp16, so every
 * value reconstructs to zero; the bytes are the same with either kernel and every run. */
Test(quant_edge, subnormal_and_tiny_inputs) {
    const size_t nb = 64;
    float x[64 * QK], r[64 * QK];
    uint64_t s = 23;
    for (size_t b = 0; b < nb; b++) gen_block(b % 2 ? D_SUBNORMAL : D_TINY, x + b * QK, &s);
    x[5] = FLT_MIN * 0.5f;            /* a subnormal */
    x[QK + 1] = u2f(0x00000001);      /* the smallest subnormal */
    x[2 * QK + 2] = -u2f(0x007FFFFF); /* the largest subnormal */
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const qt_type *t = &TYPES[ti];
        uint8_t y1[64 * 35], y2[64 * 35];
        for (int qi = 0; qi < 2; qi++) {
            qfmt_quality q = qi ? QFMT_QUALITY_BEST : QFMT_QUALITY_REFERENCE;
            quant_ok(t->type, y1, x, nb, QK, QFMT_KERNEL_SCALAR, q, 1);
            quant_ok(t->type, y2, x, nb, QK, QFMT_KERNEL_SCALAR, q, 1);
            cr_assert_eq(first_diff(y1, y2, nb * t->bytes), SIZE_MAX, "%s: not deterministic",
                         t->name);
            if (have_avx2() && !qi) {
                quant_ok(t->type, y2, x, nb, QK, QFMT_KERNEL_AVX2, q, 1);
                check_same_quant(t, x, nb, y1, y2, "subnormal AVX2 vs scalar");
            }
            for (int k = 0; k < 2; k++) {
                if (k && !have_avx2()) continue;
                dequant_ok(t->type, y1, QFMT_TYPE_F32, r, nb, QK,
                           k ? QFMT_KERNEL_AVX2 : QFMT_KERNEL_SCALAR, 1);
                for (size_t i = 0; i < nb * QK; i++)
                    cr_assert_eq(r[i], 0.0f, "%s (quality %d) [%zu]: %a -> %a", t->name, qi, i,
                                 (double)x[i], (double)r[i]);
            }
            for (size_t b = 0; b < nb; b++) /* the stored scale is +-0 */
                cr_assert_eq(ld16(y1 + b * t->bytes) & 0x7FFF, 0, "%s block %zu: scale %04x",
                             t->name, b, ld16(y1 + b * t->bytes));
        }
    }
}

/* NaN and +-Inf cannot be quantized: QFMT_E_RANGE naming the row and column of the first bad
 * value in element order, whatever the kernel and thread count. */
Test(quant_edge, nan_and_inf_name_row_and_column) {
    const uint64_t rows = 40, row_len = 1024; /* 1280 blocks: threads really run */
    const size_t n = rows * row_len;
    float *x = xmalloc(n * 4);
    uint8_t *y = xmalloc(qbytes(QFMT_TYPE_Q8_Z, n));
    uint64_t s = 31;
    for (size_t i = 0; i < n; i++) x[i] = rnd_sym(&s);
    struct {
        size_t row, col;
        float v;
    } bad[][2] = {
        {{5, 37, NAN}, {33, 1000, INFINITY}}, /* first in part 0, another in the last part */
        {{38, 999, INFINITY}, {39, 0, NAN}},  /* only in the last part */
        {{0, 0, -INFINITY}, {0, 1, NAN}},     /* the very first value */
        {{39, 1023, -NAN}, {39, 1023, -NAN}}, /* the very last value */
    };
    static const unsigned TH[] = {1, 2, 3, 7};
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        float save[2];
        for (int k = 0; k < 2; k++) {
            save[k] = x[bad[c][k].row * row_len + bad[c][k].col];
            x[bad[c][k].row * row_len + bad[c][k].col] = bad[c][k].v;
        }
        for (size_t ti = 0; ti < NTYPES; ti++)
            for (size_t th = 0; th < sizeof TH / sizeof TH[0]; th++)
                for (int k = 0; k < 2; k++) {
                    if (k && !have_avx2()) continue;
                    qfmt_error e;
                    qfmt_status st = quant(TYPES[ti].type, y, QFMT_TYPE_F32, x, rows, row_len,
                                           k ? QFMT_KERNEL_AVX2 : QFMT_KERNEL_SCALAR,
                                           QFMT_QUALITY_REFERENCE, TH[th], &e);
                    cr_assert_eq(st, QFMT_E_RANGE, "%s case %zu: %d", TYPES[ti].name, c, (int)st);
                    cr_assert(names_number(e.message, "row", bad[c][0].row) &&
                                  names_number(e.message, "column", bad[c][0].col),
                              "%s case %zu, %u threads: '%s', want row %zu column %zu",
                              TYPES[ti].name, c, TH[th], e.message, bad[c][0].row, bad[c][0].col);
                }
        for (int k = 1; k >= 0; k--) x[bad[c][k].row * row_len + bad[c][k].col] = save[k];
    }
    /* F16 and BF16 sources: their NaN and Inf too. */
    uint16_t h[4 * 64];
    cr_assert_eq(qfmt_convert_floats(QFMT_TYPE_F32, x, QFMT_TYPE_F16, h, 4 * 64), QFMT_OK);
    h[2 * 64 + 50] = 0x7E00; /* F16 NaN at row 2, column 50 */
    qfmt_error e;
    cr_assert_eq(quant(QFMT_TYPE_Q4_0, y, QFMT_TYPE_F16, h, 4, 64, QFMT_KERNEL_AUTO,
                       QFMT_QUALITY_REFERENCE, 1, &e),
                 QFMT_E_RANGE);
    cr_assert(names_number(e.message, "row", 2) && names_number(e.message, "column", 50), "'%s'",
              e.message);
    cr_assert_eq(qfmt_convert_floats(QFMT_TYPE_F32, x, QFMT_TYPE_BF16, h, 4 * 64), QFMT_OK);
    h[3 * 64 + 7] = 0xFF80; /* BF16 -Inf at row 3, column 7 */
    cr_assert_eq(quant(QFMT_TYPE_Q8_0, y, QFMT_TYPE_BF16, h, 4, 64, QFMT_KERNEL_AUTO,
                       QFMT_QUALITY_BEST, 2, &e),
                 QFMT_E_RANGE);
    cr_assert(names_number(e.message, "row", 3) && names_number(e.message, "column", 7), "'%s'",
              e.message);
    free(x);
    free(y);
}

/* Once a library bug: quant.c checks a whole chunk of 128 blocks for
 * NaN/Inf before quantizing it, so a scale overflow in block 130 followed by a NaN in block 160
 * (one chunk for one thread, split for two) is reported as the NaN with one thread and as the
 * overflow with two. The error should name the first failure in element order, whatever the
 * thread count. */
Test(quant_edge, first_failure_in_element_order_whatever_the_threads) {
    const uint64_t nb = 300, n = nb * QK;
    float *x = xmalloc(n * 4);
    uint8_t *y = xmalloc(qbytes(QFMT_TYPE_Q8_0, n));
    for (uint64_t i = 0; i < n; i++) x[i] = (float)(i % 7) * 0.1f;
    x[130 * QK + 3] = 1e9f; /* block 130 (column 4160): scale beyond fp16 */
    x[160 * QK + 5] = NAN;  /* column 5125 */
    for (unsigned th = 1; th <= 2; th++) {
        qfmt_error e;
        cr_assert_eq(quant(QFMT_TYPE_Q8_0, y, QFMT_TYPE_F32, x, 1, n, QFMT_KERNEL_AUTO,
                           QFMT_QUALITY_REFERENCE, th, &e),
                     QFMT_E_RANGE);
        cr_expect(names_number(e.message, "column", 4160), "%u threads: '%s'", th, e.message);
    }
    free(x);
    free(y);
}

/* Rows of exactly 32 values, of 32*k, odd row counts: since blocks never straddle rows, a
 * tensor is its flat run of blocks, quantized as the reference kernel does it block by block. */
Test(quant_edge, row_shapes_are_flat_runs_of_blocks) {
    static const struct {
        uint64_t rows, row_len;
    } S[] = {{1, 32}, {1, 64}, {1, 96}, {1, 256},  {1, 32 * 37},
             {7, 64}, {3, 96}, {5, 32}, {13, 160}, {1, 32 * 150}};
    for (size_t c = 0; c < sizeof S / sizeof S[0]; c++) {
        const uint64_t n = S[c].rows * S[c].row_len, nb = n / QK;
        float *x = gen_data(nb, 50 + c), *r = xmalloc(n * 4), *rr = xmalloc(n * 4);
        for (size_t ti = 0; ti < NTYPES; ti++) {
            const qt_type *t = &TYPES[ti];
            uint8_t *y = xmalloc(nb * t->bytes), *yr = xmalloc(nb * t->bytes);
            cr_assert_eq(QREF(t)(x, yr, nb), nb);
            DQREF(t)(yr, rr, nb);
            for (unsigned th = 1; th <= 2; th++) {
                quant_ok(t->type, y, x, S[c].rows, S[c].row_len, QFMT_KERNEL_AUTO,
                         QFMT_QUALITY_REFERENCE, th);
                char what[64];
                snprintf(what, sizeof what, "%llux%llu", (unsigned long long)S[c].rows,
                         (unsigned long long)S[c].row_len);
                check_same_quant(t, x, nb, yr, y, what);
                dequant_ok(t->type, y, QFMT_TYPE_F32, r, S[c].rows, S[c].row_len, QFMT_KERNEL_AUTO,
                           th);
                cr_assert_eq(first_diff(r, rr, n * 4), SIZE_MAX, "%s %s dequantize", t->name, what);
            }
            /* The same values as one row give the same bytes. */
            quant_ok(t->type, y, x, 1, n, QFMT_KERNEL_AUTO, QFMT_QUALITY_REFERENCE, 1);
            cr_assert_eq(first_diff(y, yr, nb * t->bytes), SIZE_MAX);
            free(y);
            free(yr);
        }
        free(x);
        free(r);
        free(rr);
    }
}

Test(quant_edge, row_len_not_a_multiple_of_32) {
    float x[256] = {0};
    uint8_t y[256];
    float r[256];
    static const uint64_t LENS[] = {48, 1, 31, 33, 100};
    for (size_t ti = 0; ti < NTYPES; ti++)
        for (size_t li = 0; li < sizeof LENS / sizeof LENS[0]; li++) {
            qfmt_error e;
            memset(&e, 0, sizeof e);
            /* Whatever dst_size is given: the row length is checked first. */
            qfmt_status st =
                qfmt_quantize(TYPES[ti].type, y, sizeof y, QFMT_TYPE_F32, x, 2, LENS[li], NULL, &e);
            cr_assert_eq(st, QFMT_E_RANGE, "%s row_len %llu: %d", TYPES[ti].name,
                         (unsigned long long)LENS[li], (int)st);
            cr_assert_eq(e.code, QFMT_E_RANGE);
            cr_assert_neq(e.message[0], 0);
            st = qfmt_dequantize(QFMT_TYPE_F32, r, sizeof r, TYPES[ti].type, y, 2, LENS[li], NULL,
                                 &e);
            cr_assert_eq(st, QFMT_E_RANGE, "%s dequantize row_len %llu: %d", TYPES[ti].name,
                         (unsigned long long)LENS[li], (int)st);
        }
    /* 64 rows of 48 hold 96 whole blocks, but no row does. */
    float big[64 * 48] = {0};
    uint8_t ybig[96 * 35];
    qfmt_error e;
    cr_assert_eq(qfmt_quantize(QFMT_TYPE_Q4_0, ybig, 96 * 18, QFMT_TYPE_F32, big, 64, 48, NULL, &e),
                 QFMT_E_RANGE);
    cr_assert_eq(qfmt_type_size(QFMT_TYPE_Q4_0, 48, NULL), QFMT_E_RANGE);
}

Test(quant_edge, wrong_destination_size_and_bad_types) {
    float x[2 * 64], r[2 * 64];
    memset(x, 0, sizeof x);
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const qt_type *t = &TYPES[ti];
        uint8_t y[4 * 35 + 8];
        uint64_t need = 4 * (uint64_t)t->bytes;
        qfmt_error e;
        cr_assert_eq(qfmt_quantize(t->type, y, need, QFMT_TYPE_F32, x, 2, 64, NULL, &e), QFMT_OK,
                     "%s", e.message);
        uint64_t bad[] = {0, need - 1, need + 1, 2 * need, 2 * 64 * 4};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            cr_assert_eq(qfmt_quantize(t->type, y, bad[i], QFMT_TYPE_F32, x, 2, 64, NULL, &e),
                         QFMT_E_ARG, "%s dst_size %llu", t->name, (unsigned long long)bad[i]);
            cr_assert_eq(e.code, QFMT_E_ARG);
        }
        cr_assert_eq(qfmt_dequantize(QFMT_TYPE_F32, r, sizeof r, t->type, y, 2, 64, NULL, &e),
                     QFMT_OK);
        cr_assert_eq(qfmt_dequantize(QFMT_TYPE_F32, r, sizeof r - 4, t->type, y, 2, 64, NULL, &e),
                     QFMT_E_ARG);
        cr_assert_eq(qfmt_dequantize(QFMT_TYPE_F32, r, sizeof r + 4, t->type, y, 2, 64, NULL, &e),
                     QFMT_E_ARG);
        cr_assert_eq(qfmt_dequantize(QFMT_TYPE_F16, r, sizeof r, t->type, y, 2, 64, NULL, &e),
                     QFMT_E_ARG);
        /* NULL buffers with a nonzero size; zero rows need none. */
        cr_assert_eq(qfmt_quantize(t->type, NULL, need, QFMT_TYPE_F32, x, 2, 64, NULL, &e),
                     QFMT_E_ARG);
        cr_assert_eq(qfmt_quantize(t->type, y, need, QFMT_TYPE_F32, NULL, 2, 64, NULL, &e),
                     QFMT_E_ARG);
        cr_assert_eq(qfmt_quantize(t->type, NULL, 0, QFMT_TYPE_F32, NULL, 0, 64, NULL, &e),
                     QFMT_OK);
        cr_assert_eq(qfmt_dequantize(QFMT_TYPE_F32, NULL, 0, t->type, NULL, 0, 64, NULL, &e),
                     QFMT_OK);
        /* The float side must be F32, F16 or BF16. */
        cr_assert_eq(qfmt_quantize(t->type, y, need, QFMT_TYPE_F64, x, 1, 32, NULL, &e),
                     QFMT_E_UNSUPPORTED);
        cr_assert_eq(qfmt_quantize(t->type, y, need, QFMT_TYPE_I32, x, 1, 32, NULL, &e),
                     QFMT_E_UNSUPPORTED);
        cr_assert_eq(qfmt_dequantize(QFMT_TYPE_I8, r, 32, t->type, y, 1, 32, NULL, &e),
                     QFMT_E_UNSUPPORTED);
    }
    qfmt_error e;
    uint8_t y[64];
    /* Not a block type this library knows. */
    cr_assert_eq(qfmt_quantize(QFMT_TYPE_I32, y, 128, QFMT_TYPE_F32, x, 1, 32, NULL, &e),
                 QFMT_E_UNSUPPORTED);
    cr_assert_eq(qfmt_quantize(9999, y, 64, QFMT_TYPE_F32, x, 1, 32, NULL, &e), QFMT_E_UNSUPPORTED);
}

/* F16 and BF16 sources give the bytes of converting them to F32 first; dequantizing to F16 or
 * BF16 gives the F32 result converted. */
Test(quant_edge, f16_and_bf16_sources_and_destinations) {
    const uint64_t rows = 9, row_len = 1024; /* 288 blocks: 2 threads split them */
    const size_t n = rows * row_len, nb = n / QK;
    float *x = gen_data(nb, 61), *x32 = xmalloc(n * 4), *r32 = xmalloc(n * 4);
    uint16_t *h = xmalloc(n * 2), *r16 = xmalloc(n * 2), *want16 = xmalloc(n * 2);
    /* Keep the values inside F16's range so the F16 source has no Inf. */
    for (size_t i = 0; i < n; i++) x[i] = clampf(x[i], -60000.0f, 60000.0f);
    uint32_t srcs[2] = {QFMT_TYPE_F16, QFMT_TYPE_BF16};
    for (int si = 0; si < 2; si++) {
        cr_assert_eq(qfmt_convert_floats(QFMT_TYPE_F32, x, srcs[si], h, n), QFMT_OK);
        cr_assert_eq(qfmt_convert_floats(srcs[si], h, QFMT_TYPE_F32, x32, n), QFMT_OK);
        for (size_t ti = 0; ti < NTYPES; ti++) {
            const qt_type *t = &TYPES[ti];
            uint8_t *ya = xmalloc(nb * t->bytes), *yb = xmalloc(nb * t->bytes);
            for (int qi = 0; qi < 2; qi++)
                for (unsigned th = 1; th <= 2; th++) {
                    qfmt_quality q = qi ? QFMT_QUALITY_BEST : QFMT_QUALITY_REFERENCE;
                    qfmt_error e;
                    qfmt_status st =
                        quant(t->type, ya, srcs[si], h, rows, row_len, QFMT_KERNEL_AUTO, q, th, &e);
                    cr_assert_eq(st, QFMT_OK, "%s from %s: %s", t->name, si ? "bf16" : "f16",
                                 e.message);
                    quant_ok(t->type, yb, x32, rows, row_len, QFMT_KERNEL_SCALAR, q, 1);
                    check_same_quant(t, x32, nb, yb, ya, si ? "bf16 source" : "f16 source");
                }
            /* Dequantize to F16 / BF16 = dequantize to F32, then convert. */
            dequant_ok(t->type, ya, QFMT_TYPE_F32, r32, rows, row_len, QFMT_KERNEL_SCALAR, 1);
            cr_assert_eq(qfmt_convert_floats(QFMT_TYPE_F32, r32, srcs[si], want16, n), QFMT_OK);
            for (int k = 0; k < 2; k++) {
                if (k && !have_avx2()) continue;
                for (unsigned th = 1; th <= 2; th++) {
                    dequant_ok(t->type, ya, srcs[si], r16, rows, row_len,
                               k ? QFMT_KERNEL_AVX2 : QFMT_KERNEL_SCALAR, th);
                    size_t i = first_diff(r16, want16, n * 2);
                    cr_assert_eq(i, SIZE_MAX, "%s dequantize to %s: value %zu", t->name,
                                 si ? "bf16" : "f16", i / 2);
                }
            }
            free(ya);
            free(yb);
        }
    }
    free(x);
    free(x32);
    free(r32);
    free(h);
    free(r16);
    free(want16);
}

/* ---- 5. Best quality: never worse on any block ----------------------------------------------- */
/* Squared error of each block of x against the scalar dequantization of y. */
static void block_sse(const qt_type *t, const float *x, const uint8_t *y, size_t nb, double *sse) {
    float r[QK];
    for (size_t b = 0; b < nb; b++) {
        DQREF(t)(y + b * t->bytes, r, 1);
        double e2 = 0;
        for (int j = 0; j < QK; j++) {
            double d = (double)x[b * QK + (size_t)j] - (double)r[j];
            e2 += d * d;
        }
        sse[b] = e2;
    }
}

/* Asserts SSE(best) <= SSE(reference) on every block; returns the two totals. */
static void best_never_worse(const qt_type *t, const float *x, size_t nb, unsigned threads,
                             const char *what, double *tot_ref, double *tot_best) {
    uint8_t *yr = xmalloc(nb * t->bytes), *yb = xmalloc(nb * t->bytes);
    double *sr = xmalloc(nb * sizeof *sr), *sb = xmalloc(nb * sizeof *sb);
    quant_ok(t->type, yr, x, 1, nb * QK, QFMT_KERNEL_AUTO, QFMT_QUALITY_REFERENCE, threads);
    quant_ok(t->type, yb, x, 1, nb * QK, QFMT_KERNEL_AUTO, QFMT_QUALITY_BEST, threads);
    block_sse(t, x, yr, nb, sr);
    block_sse(t, x, yb, nb, sb);
    double a = 0, b2 = 0;
    for (size_t b = 0; b < nb; b++) {
        cr_assert(sb[b] <= sr[b], "%s %s block %zu: best SSE %.17g > reference %.17g", t->name,
                  what, b, sb[b], sr[b]);
        a += sr[b];
        b2 += sb[b];
    }
    *tot_ref = a;
    *tot_best = b2;
    free(yr);
    free(yb);
    free(sr);
    free(sb);
}

Test(quant_best, never_worse_than_reference_on_any_block) {
    const size_t nb = QT_SANITIZED ? NDIST * 24 : NDIST * 128;
    float *x = gen_data(nb, 77);
    for (size_t ti = 0; ti < NTYPES; ti++) {
        double r, b;
        best_never_worse(&TYPES[ti], x, nb, 2, "adversarial", &r, &b);
        cr_assert(b <= r);
    }
    free(x);
    /* Weight-like data: clearly better in total. */
    const size_t nn = QT_SANITIZED ? 256 : 2048;
    float *w = xmalloc(nn * QK * 4);
    uint64_t s = 78;
    for (size_t i = 0; i < nn * QK; i++)
        w[i] = 0.02f * (rnd_unit(&s) + rnd_unit(&s) + rnd_unit(&s) + rnd_unit(&s) - 2.0f);
    for (size_t ti = 0; ti < NTYPES; ti++) {
        double r, b;
        best_never_worse(&TYPES[ti], w, nn, 2, "normal", &r, &b);
        cr_log_info("%s on normal-ish data: RMSE reference %.6g, best %.6g (%.1f%% lower)",
                    TYPES[ti].name, sqrt(r / (double)(nn * QK)), sqrt(b / (double)(nn * QK)),
                    100.0 * (1.0 - sqrt(b / r)));
        cr_assert(b < r, "%s: best %.17g not below reference %.17g", TYPES[ti].name, b, r);
    }
    free(w);
}

/* ---- 1. Fixture RMSE ------------------------------------------------------------------------- */
typedef struct {
    char name[160];
    float *w; /* rows x cols, blocks along cols = the input dimension */
    uint64_t rows, cols;
} fx_tensor;

typedef struct {
    fx_tensor *t;
    size_t n;
    uint64_t elements;
    double rmse[3];  /* expected.json: rmse_q8_0, rmse_q4_0, rmse_q4_1 */
    bool transposed; /* GPT-2 Conv1D */
} fixture;

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    rewind(f);
    char *b = xmalloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

static cJSON *load_json(const char *model, const char *file) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/fixtures/%s/%s", QFMT_TEST_DATA_DIR, model, file);
    char *text = slurp(path, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(j, "%s is not JSON", path);
    return j;
}

static double json_number(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "'%s' is not a number", key);
    return v->valuedouble;
}

/* GPT-2 stores its Conv1D weights [in, out]: known from config.json's model_type or its
 * architectures, never from the directory's name. */
static bool conv1d_layout(const cJSON *cfg) {
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    if (cJSON_IsString(mt) && strcmp(mt->valuestring, "gpt2") == 0) return true;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(cfg, "architectures"), *a;
    cJSON_ArrayForEach(a, arch) if (cJSON_IsString(a) &&
                                    strncmp(a->valuestring, "GPT2", 4) == 0) return true;
    return false;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Loads the quantized_tensors of a fixture as F32 [out, in]; at most max_tensors (0: all). */
static void fixture_load(const char *model, fixture *fx, size_t max_tensors) {
    memset(fx, 0, sizeof *fx);
    cJSON *cfg = load_json(model, "config.json"), *exp = load_json(model, "expected.json");
    fx->transposed = conv1d_layout(cfg);
    fx->rmse[0] = json_number(exp, "rmse_q8_0");
    fx->rmse[1] = json_number(exp, "rmse_q4_0");
    fx->rmse[2] = json_number(exp, "rmse_q4_1");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(exp, "quantized_tensors"), *it;
    cr_assert(cJSON_IsArray(list));
    size_t cap = (size_t)cJSON_GetArraySize(list);
    cr_assert_gt(cap, 0);
    fx->t = xmalloc(cap * sizeof *fx->t);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/fixtures/%s/model.safetensors", QFMT_TEST_DATA_DIR, model);
    qfmt_st_file *f = NULL;
    qfmt_error e;
    qfmt_status st = qfmt_st_open(&f, path, NULL, &e);
    cr_assert_eq(st, QFMT_OK, "%s: %s", path, e.message);
    double n_embd = fx->transposed ? json_number(cfg, "n_embd") : 0;
    cJSON_ArrayForEach(it, list) {
        if (max_tensors && fx->n == max_tensors) break;
        cr_assert(cJSON_IsString(it));
        uint64_t idx;
        st = qfmt_st_find(f, it->valuestring, &idx, &e);
        cr_assert_eq(st, QFMT_OK, "%s: %s not found", model, it->valuestring);
        qfmt_st_tensor ti;
        cr_assert_eq(qfmt_st_get(f, idx, &ti, &e), QFMT_OK);
        cr_assert_eq(ti.ndim, 2, "%s: %u dims", ti.name, ti.ndim);
        float *src = xmalloc(ti.nelements * 4);
        cr_assert_eq(qfmt_convert_floats(ti.type, ti.data, QFMT_TYPE_F32, src, ti.nelements),
                     QFMT_OK, "%s: dtype %s", ti.name, ti.dtype);
        fx_tensor *t = &fx->t[fx->n++];
        snprintf(t->name, sizeof t->name, "%s", ti.name);
        if (fx->transposed) {
            /* [in, out] -> [out, in]. c_attn stored as [n_embd, 3*n_embd] proves the layout. */
            if (ends_with(ti.name, "attn.c_attn.weight"))
                cr_assert(ti.dims[0] == (uint64_t)n_embd && ti.dims[1] == 3 * (uint64_t)n_embd,
                          "%s: [%llu, %llu] is not Conv1D's [in, out]", ti.name,
                          (unsigned long long)ti.dims[0], (unsigned long long)ti.dims[1]);
            uint64_t in = ti.dims[0], out = ti.dims[1];
            t->rows = out;
            t->cols = in;
            t->w = xmalloc(ti.nelements * 4);
            for (uint64_t i = 0; i < in; i++)
                for (uint64_t o = 0; o < out; o++) t->w[o * in + i] = src[i * out + o];
            free(src);
        } else {
            t->rows = ti.dims[0];
            t->cols = ti.dims[1];
            t->w = src;
        }
        cr_assert_eq(t->cols % QK, 0, "%s: %llu columns", t->name, (unsigned long long)t->cols);
        fx->elements += t->rows * t->cols;
    }
    qfmt_st_close(f);
    cJSON_Delete(cfg);
    cJSON_Delete(exp);
}

static void fixture_free(fixture *fx) {
    for (size_t i = 0; i < fx->n; i++) free(fx->t[i].w);
    free(fx->t);
}

/* Quantizes one tensor, dequantizes it (scalar kernel) and returns its squared error in double;
 * fills per-block SSEs when sse is not NULL. */
static double tensor_sse(const qt_type *t, const fx_tensor *ft, qfmt_quality q, unsigned threads,
                         double *sse) {
    uint64_t n = ft->rows * ft->cols, nb = n / QK;
    uint8_t *y = xmalloc(nb * t->bytes);
    float *r = xmalloc(n * 4);
    quant_ok(t->type, y, ft->w, ft->rows, ft->cols, QFMT_KERNEL_AUTO, q, threads);
    dequant_ok(t->type, y, QFMT_TYPE_F32, r, ft->rows, ft->cols, QFMT_KERNEL_SCALAR, threads);
    double total = 0;
    for (uint64_t b = 0; b < nb; b++) {
        double e2 = 0;
        for (uint64_t j = b * QK; j < (b + 1) * QK; j++) {
            double d = (double)ft->w[j] - (double)r[j];
            e2 += d * d;
        }
        if (sse) sse[b] = e2;
        total += e2;
    }
    free(y);
    free(r);
    return total;
}

/* The ggml reference quantization reproduces expected.json's rmse_q8_0/q4_0/q4_1. */
static void check_reference_rmse(const char *model) {
    fixture fx;
    fixture_load(model, &fx, 0);
    static const uint32_t T[3] = {QFMT_TYPE_Q8_0, QFMT_TYPE_Q4_0, QFMT_TYPE_Q4_1};
    for (int i = 0; i < 3; i++) {
        double sse = 0;
        for (size_t k = 0; k < fx.n; k++)
            sse += tensor_sse(type_of(T[i]), &fx.t[k], QFMT_QUALITY_REFERENCE, 2, NULL);
        double rmse = sqrt(sse / (double)fx.elements), rel = fabs(rmse - fx.rmse[i]) / fx.rmse[i];
        cr_log_info("%s %s: RMSE %.12g, expected %.12g (relative difference %.2e) over %zu tensors",
                    model, type_of(T[i])->name, rmse, fx.rmse[i], rel, fx.n);
        cr_expect(rel <= 1e-6, "%s %s: RMSE %.12g, expected %.12g (relative difference %.3g)",
                  model, type_of(T[i])->name, rmse, fx.rmse[i], rel);
    }
    fixture_free(&fx);
}

/* The best-quality quantizer: every block no worse, the total strictly lower for every type,
 * q4_1 at least 10% lower and q4_0 more than 3% lower. */
static void check_best_rmse(const char *model) {
    fixture fx;
    fixture_load(model, &fx, QT_SANITIZED ? 3 : 0);
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const qt_type *t = &TYPES[ti];
        double ref = 0, best = 0;
        size_t worse = 0, first_bad_tensor = 0, first_bad_block = 0;
        for (size_t k = 0; k < fx.n; k++) {
            uint64_t nb = fx.t[k].rows * fx.t[k].cols / QK;
            double *sr = xmalloc(nb * sizeof *sr), *sb = xmalloc(nb * sizeof *sb);
            ref += tensor_sse(t, &fx.t[k], QFMT_QUALITY_REFERENCE, 2, sr);
            best += tensor_sse(t, &fx.t[k], QFMT_QUALITY_BEST, 2, sb);
            for (uint64_t b = 0; b < nb; b++)
                if (sb[b] > sr[b] && worse++ == 0) {
                    first_bad_tensor = k;
                    first_bad_block = (size_t)b;
                }
            free(sr);
            free(sb);
        }
        cr_expect_eq(worse, 0,
                     "%s %s: best worse than reference on %zu blocks (first: %s block %zu)", model,
                     t->name, worse, fx.t[first_bad_tensor].name, first_bad_block);
        double r = sqrt(ref / (double)fx.elements), b = sqrt(best / (double)fx.elements),
               gain = 1.0 - b / r;
        cr_log_info("%s %s: RMSE reference %.9g, best %.9g: %.2f%% lower (%zu tensors)", model,
                    t->name, r, b, 100.0 * gain, fx.n);
        cr_expect(b < r, "%s %s: best RMSE %.9g not below reference %.9g", model, t->name, b, r);
        if (t->type == QFMT_TYPE_Q4_1)
            cr_expect(gain >= 0.10, "%s q4_1: best only %.2f%% lower", model, 100.0 * gain);
        if (t->type == QFMT_TYPE_Q4_0)
            cr_expect(gain > 0.03, "%s q4_0: best only %.2f%% lower", model, 100.0 * gain);
    }
    fixture_free(&fx);
}

Test(quant_fixture, gpt2_reference_rmse) { check_reference_rmse("gpt2-kjv"); }
Test(quant_fixture, llama_reference_rmse) { check_reference_rmse("llama-kjv"); }
Test(quant_fixture, bert_reference_rmse) { check_reference_rmse("bert-kjv"); }
Test(quant_fixture, gpt2_best_quality) { check_best_rmse("gpt2-kjv"); }
Test(quant_fixture, llama_best_quality) { check_best_rmse("llama-kjv"); }
Test(quant_fixture, bert_best_quality) { check_best_rmse("bert-kjv"); }

/* The GPT-2 transposition matters: quantizing the stored [in, out] layout as rows would give
 * other figures than expected.json's. */
Test(quant_fixture, gpt2_untransposed_does_not_match) {
    fixture fx;
    fixture_load("gpt2-kjv", &fx, 0);
    cr_assert(fx.transposed);
    double sse = 0;
    for (size_t k = 0; k < fx.n; k++) {
        fx_tensor t = fx.t[k], back = t; /* transpose back to [in, out] */
        back.w = xmalloc(t.rows * t.cols * 4);
        back.rows = t.cols;
        back.cols = t.rows;
        for (uint64_t o = 0; o < t.rows; o++)
            for (uint64_t i = 0; i < t.cols; i++) back.w[i * t.rows + o] = t.w[o * t.cols + i];
        sse += tensor_sse(type_of(QFMT_TYPE_Q4_0), &back, QFMT_QUALITY_REFERENCE, 2, NULL);
        free(back.w);
    }
    double rmse = sqrt(sse / (double)fx.elements);
    cr_assert(fabs(rmse - fx.rmse[1]) / fx.rmse[1] > 1e-3, "untransposed q4_0 RMSE %.9g", rmse);
    fixture_free(&fx);
}

/* ---- 6. Traits and ids ----------------------------------------------------------------------- */
Test(quant_types, block_traits_and_ggml_ids) {
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const qfmt_type_traits *tr = qfmt_type_get_traits(TYPES[ti].type);
        cr_assert_not_null(tr, "%s", TYPES[ti].name);
        cr_assert_str_eq(tr->name, TYPES[ti].name);
        cr_assert_eq(tr->block_elems, 32u, "%s", tr->name);
        cr_assert_eq(tr->block_bytes, TYPES[ti].bytes, "%s", tr->name);
        cr_assert(!tr->is_float, "%s", tr->name);
        uint32_t back = 0;
        cr_assert_eq(qfmt_type_from_name(TYPES[ti].name, &back), QFMT_OK);
        cr_assert_eq(back, TYPES[ti].type);
        uint64_t b = 0;
        cr_assert_eq(qfmt_type_size(TYPES[ti].type, 32, &b), QFMT_OK);
        cr_assert_eq(b, TYPES[ti].bytes);
        cr_assert_eq(qfmt_type_size(TYPES[ti].type, 32 * 1000, &b), QFMT_OK);
        cr_assert_eq(b, 1000ull * TYPES[ti].bytes);
        cr_assert_eq(qfmt_type_size(TYPES[ti].type, 0, &b), QFMT_OK);
        cr_assert_eq(b, 0);
        cr_assert_eq(qfmt_type_size(TYPES[ti].type, 33, &b), QFMT_E_RANGE);
        /* 2^59 - 1 blocks: past 2^64 bytes only for blocks of more than 32 bytes. */
        qfmt_status big = qfmt_type_size(TYPES[ti].type, UINT64_MAX - 31, &b);
        if (TYPES[ti].bytes > 32)
            cr_assert_eq(big, QFMT_E_RANGE, "%s", TYPES[ti].name);
        else {
            cr_assert_eq(big, QFMT_OK, "%s", TYPES[ti].name);
            cr_assert_eq(b, ((UINT64_MAX - 31) / 32) * TYPES[ti].bytes);
        }
        const qfmt_quant_kernels *k = qfmt_quant_kernels_get(TYPES[ti].type);
        cr_assert_not_null(k);
        cr_assert_eq(k->block_bytes, TYPES[ti].bytes);
    }
    uint64_t b = 0;
    cr_assert_eq(qfmt_type_size(QFMT_TYPE_Q4_0, 64, &b), QFMT_OK);
    cr_assert_eq(b, 36);
    cr_assert_eq(qfmt_type_size(QFMT_TYPE_Q4_0, 48, &b), QFMT_E_RANGE);
    /* ggml's enum ggml_type values. */
    cr_assert_eq(QFMT_TYPE_Q4_0, 2);
    cr_assert_eq(QFMT_TYPE_Q4_1, 3);
    cr_assert_eq(QFMT_TYPE_Q8_0, 8);
    cr_assert_str_eq(qfmt_type_get_traits(8)->name, "q8_0");
    cr_assert_str_eq(qfmt_type_get_traits(2)->name, "q4_0");
    cr_assert_str_eq(qfmt_type_get_traits(3)->name, "q4_1");
    cr_assert_eq(QFMT_TYPE_Q8_Z, 258);
    cr_assert_eq(QFMT_TYPE_Q4_Z, 259);
    cr_assert_null(qfmt_quant_kernels_get(QFMT_TYPE_F32));
}

/* ---- 7. Round trip through a qfmt file ------------------------------------------------------- */
static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char p[PATH_MAX + 512];
        while ((de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

Test(quant_file, block_tensors_round_trip_through_a_file) {
    char dir[] = "/tmp/qfmt_test_quant_XXXXXX", path[PATH_MAX];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/q.qfmt", dir);
    const uint64_t rows = 6, cols = 96, n = rows * cols, nb = n / QK;
    float *x = gen_data(nb, 91);
    uint8_t *y4 = xmalloc(qbytes(QFMT_TYPE_Q4_0, n)), *yz = xmalloc(qbytes(QFMT_TYPE_Q8_Z, n));
    quant_ok(QFMT_TYPE_Q4_0, y4, x, rows, cols, QFMT_KERNEL_AUTO, QFMT_QUALITY_REFERENCE, 1);
    quant_ok(QFMT_TYPE_Q8_Z, yz, x, rows, cols, QFMT_KERNEL_AUTO, QFMT_QUALITY_BEST, 1);
    qfmt_write_opts wo = {0};
    wo.no_fsync = true;
    qfmt_writer *w = NULL;
    qfmt_error e;
    cr_assert_eq(qfmt_writer_create(&w, path, &wo, &e), QFMT_OK, "%s", e.message);
    qfmt_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.name = "w.q4_0";
    d.type = QFMT_TYPE_Q4_0;
    d.ndim = 2;
    d.dims[0] = rows;
    d.dims[1] = cols;
    cr_assert_eq(qfmt_writer_add_tensor(w, &d, y4, qbytes(QFMT_TYPE_Q4_0, n), &e), QFMT_OK, "%s",
                 e.message);
    /* Innermost dimension not a whole number of blocks: refused, even when the total is. */
    qfmt_tensor_desc bad = d;
    bad.name = "bad";
    bad.dims[0] = 2;
    bad.dims[1] = 48; /* 96 values = 3 blocks in all, but rows of 48 */
    cr_assert_eq(qfmt_writer_add_tensor(w, &bad, y4, 3 * 18, &e), QFMT_E_RANGE);
    bad.ndim = 1;
    bad.dims[0] = 40;
    cr_assert_eq(qfmt_writer_add_tensor(w, &bad, y4, 18, &e), QFMT_E_RANGE);
    bad.ndim = 0; /* a scalar cannot be a block type */
    cr_assert_eq(qfmt_writer_add_tensor(w, &bad, y4, 18, &e), QFMT_E_RANGE);
    /* Wrong byte count for the dims. */
    bad = d;
    bad.name = "short";
    cr_assert_neq(qfmt_writer_add_tensor(w, &bad, y4, qbytes(QFMT_TYPE_Q4_0, n) - 1, &e), QFMT_OK);
    memset(&d, 0, sizeof d);
    d.name = "w.q8_z";
    d.type = QFMT_TYPE_Q8_Z;
    d.ndim = 3;
    d.dims[0] = 2;
    d.dims[1] = 3;
    d.dims[2] = cols;
    d.codec = QFMT_CODEC_ZSTD;
    cr_assert_eq(qfmt_writer_add_tensor(w, &d, yz, qbytes(QFMT_TYPE_Q8_Z, n), &e), QFMT_OK, "%s",
                 e.message);
    cr_assert_eq(qfmt_writer_finish(w, &e), QFMT_OK, "%s", e.message);
    qfmt_writer_free(w);

    qfmt_reader *r = NULL;
    cr_assert_eq(qfmt_reader_open(&r, path, NULL, &e), QFMT_OK, "%s", e.message);
    cr_assert_eq(qfmt_tensor_count(r), 2);
    cr_assert_eq(qfmt_reader_verify(r, 1, &e), QFMT_OK, "%s", e.message);
    struct {
        const char *name;
        uint32_t type;
        const uint8_t *bytes;
        uint32_t ndim;
    } want[2] = {{"w.q4_0", QFMT_TYPE_Q4_0, y4, 2}, {"w.q8_z", QFMT_TYPE_Q8_Z, yz, 3}};
    float *back = xmalloc(n * 4), *direct = xmalloc(n * 4);
    for (int i = 0; i < 2; i++) {
        uint64_t idx;
        cr_assert_eq(qfmt_tensor_find(r, want[i].name, &idx, &e), QFMT_OK);
        qfmt_tensor_info info;
        cr_assert_eq(qfmt_tensor_get_info(r, idx, &info, &e), QFMT_OK);
        cr_assert_eq(info.type, want[i].type);
        cr_assert_eq(info.ndim, want[i].ndim);
        cr_assert_eq(info.dims[info.ndim - 1], cols);
        cr_assert_eq(info.nelements, n);
        cr_assert_eq(info.raw_size, qbytes(want[i].type, n));
        uint8_t *got = xmalloc(info.raw_size);
        cr_assert_eq(qfmt_tensor_read(r, idx, got, info.raw_size, true, &e), QFMT_OK, "%s",
                     e.message);
        cr_assert_eq(first_diff(got, want[i].bytes, info.raw_size), SIZE_MAX, "%s: bytes differ",
                     want[i].name);
        if (info.codec == QFMT_CODEC_NONE) {
            const void *view;
            uint64_t vsize;
            cr_assert_eq(qfmt_tensor_view(r, idx, &view, &vsize, &e), QFMT_OK);
            cr_assert_eq(vsize, info.raw_size);
            cr_assert_eq(memcmp(view, want[i].bytes, vsize), 0);
        }
        /* And they dequantize as before. */
        dequant_ok(want[i].type, got, QFMT_TYPE_F32, back, rows, cols, QFMT_KERNEL_AUTO, 1);
        dequant_ok(want[i].type, want[i].bytes, QFMT_TYPE_F32, direct, rows, cols,
                   QFMT_KERNEL_SCALAR, 1);
        cr_assert_eq(first_diff(back, direct, n * 4), SIZE_MAX);
        free(got);
    }
    uint64_t none;
    cr_assert_eq(qfmt_tensor_find(r, "bad", &none, &e), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_tensor_find(r, "short", &none, &e), QFMT_E_NOT_FOUND);
    qfmt_reader_close(r);
    free(back);
    free(direct);
    free(x);
    free(y4);
    free(yz);
    rm_dir(dir);
}
