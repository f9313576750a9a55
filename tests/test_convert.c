/*
 * test_convert.c - F32 <-> F16 <-> BF16: round to nearest even, overflow to Inf, gradual
 * underflow, signed zeros, Inf, NaN kept as a quiet NaN with its sign. Known answers, exhaustive
 * round trips, and a comparison with independent integer references (and the compiler's
 * _Float16 where it has one) on a million values.
 */
#include "test_helpers.h"

#include <math.h>

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static bool f16_is_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF); }
static bool bf16_is_nan(uint16_t h) { return (h & 0x7F80) == 0x7F80 && (h & 0x7F); }
static bool f32_is_nan(uint32_t u) { return (u & 0x7F800000) == 0x7F800000 && (u & 0x7FFFFF); }

/* ---- Independent references (integer only) ------------------------------------------------ */
static uint16_t ref_f32_to_f16(uint32_t x) {
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7FFFFFFF;
    if (ax > 0x7F800000) return (uint16_t)(sign | 0x7E00 | ((ax >> 13) & 0x3FF));
    if (ax == 0x7F800000) return (uint16_t)(sign | 0x7C00);
    int e = (int)(ax >> 23) - 127;
    if (e < -25) return sign; /* below 2^-25: rounds to zero */
    uint32_t sig = (ax & 0x7FFFFF) | 0x800000;
    int shift = e >= -14 ? 13 : 13 + (-14 - e);
    uint32_t q = sig >> shift, rem = sig & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    if (e >= -14) {
        uint32_t h = ((uint32_t)(e + 15) << 10) + (q - 0x400); /* a carry bumps the exponent */
        return (uint16_t)(sign | (h >= 0x7C00 ? 0x7C00 : h));
    }
    return (uint16_t)(sign | q);
}

static uint32_t ref_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    int e = (h >> 10) & 0x1F;
    uint32_t m = h & 0x3FF;
    if (e == 31) return sign | 0x7F800000 | (m << 13) | (m ? 0x400000u : 0);
    if (e == 0) {
        if (!m) return sign;
        e = 1;
        while (!(m & 0x400)) {
            m <<= 1;
            e--;
        }
        m &= 0x3FF;
    }
    return sign | ((uint32_t)(e - 15 + 127) << 23) | (m << 13);
}

static uint16_t ref_f32_to_bf16(uint32_t x) {
    if (f32_is_nan(x)) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7FFF + ((x >> 16) & 1)) >> 16);
}

/* ---- Known answers ---------------------------------------------------------------------------- */
static void expect_f16_nan(uint16_t h, int sign, const char *what) {
    cr_assert(f16_is_nan(h), "%s: 0x%04x is not a NaN", what, h);
    cr_assert(h & 0x200, "%s: NaN 0x%04x is not quiet", what, h);
    cr_assert_eq((h >> 15) & 1, sign, "%s: NaN 0x%04x lost its sign", what, h);
}
static void expect_bf16_nan(uint16_t h, int sign, const char *what) {
    cr_assert(bf16_is_nan(h), "%s: 0x%04x is not a NaN", what, h);
    cr_assert(h & 0x40, "%s: NaN 0x%04x is not quiet", what, h);
    cr_assert_eq((h >> 15) & 1, sign, "%s: NaN 0x%04x lost its sign", what, h);
}
static void expect_f32_nan(float f, int sign, const char *what) {
    uint32_t u = fbits(f);
    cr_assert(f32_is_nan(u), "%s: 0x%08x is not a NaN", what, u);
    cr_assert(u & 0x400000, "%s: NaN 0x%08x is not quiet", what, u);
    cr_assert_eq(u >> 31, (uint32_t)sign, "%s: NaN 0x%08x lost its sign", what, u);
}

Test(convert, f32_to_f16_known) {
    static const struct {
        uint32_t in;
        uint16_t out;
        const char *what;
    } k[] = {
        {0x3F800000, 0x3C00, "1.0"},
        {0xC0000000, 0xC000, "-2.0"},
        {0x3DCCCCCD, 0x2E66, "0.1"},
        {0x40490FDB, 0x4248, "pi"},
        {0x477FE000, 0x7BFF, "65504, max finite"},
        {0x477FEFFF, 0x7BFF, "just below the halfway point to 65536"},
        {0x477FF000, 0x7C00, "65520: halfway, rounds to even = overflow to Inf"},
        {0x47800000, 0x7C00, "65536"},
        {0x7F7FFFFF, 0x7C00, "FLT_MAX"},
        {0xFF7FFFFF, 0xFC00, "-FLT_MAX"},
        {0x3F801000, 0x3C00, "1+2^-11: halfway, down to even"},
        {0x3F803000, 0x3C02, "1+3*2^-11: halfway, up to even"},
        {0x3F801001, 0x3C01, "just above halfway"},
        {0x3F800FFF, 0x3C00, "just below halfway"},
        {0xBF803000, 0xBC02, "negative halfway"},
        {0x33800000, 0x0001, "2^-24, smallest subnormal"},
        {0x33000000, 0x0000, "2^-25: halfway to the smallest subnormal, to even 0"},
        {0x33000001, 0x0001, "just above 2^-25"},
        {0xB3000000, 0x8000, "-2^-25 -> -0"},
        {0x33C00000, 0x0002, "1.5*2^-24: halfway, up to even"},
        {0x34200000, 0x0002, "2.5*2^-24: halfway, down to even"},
        {0x387FC000, 0x03FF, "largest subnormal"},
        {0x387FE000, 0x0400, "halfway between largest subnormal and min normal"},
        {0x38800000, 0x0400, "2^-14, min normal"},
        {0x00000001, 0x0000, "f32 subnormal -> 0"},
        {0x80000001, 0x8000, "negative f32 subnormal -> -0"},
        {0x00000000, 0x0000, "+0"},
        {0x80000000, 0x8000, "-0"},
        {0x7F800000, 0x7C00, "+Inf"},
        {0xFF800000, 0xFC00, "-Inf"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        uint16_t h = qfmt_f32_to_f16(bitsf(k[i].in));
        cr_assert_eq(h, k[i].out, "%s (0x%08x): got 0x%04x, want 0x%04x", k[i].what, k[i].in, h,
                     k[i].out);
        cr_assert_eq(ref_f32_to_f16(k[i].in), k[i].out, "reference disagrees on %s", k[i].what);
    }
    expect_f16_nan(qfmt_f32_to_f16(bitsf(0x7FC00000)), 0, "qNaN");
    expect_f16_nan(qfmt_f32_to_f16(bitsf(0xFFC00000)), 1, "-qNaN");
    expect_f16_nan(qfmt_f32_to_f16(bitsf(0x7F800001)), 0, "sNaN with only the low payload bit");
    expect_f16_nan(qfmt_f32_to_f16(bitsf(0xFF800001)), 1, "-sNaN with only the low payload bit");
    expect_f16_nan(qfmt_f32_to_f16(bitsf(0x7FBFFFFF)), 0, "sNaN with a high payload");
    expect_f16_nan(qfmt_f32_to_f16(bitsf(0x7F802000)), 0, "sNaN whose payload fits f16 exactly");
}

Test(convert, f32_to_bf16_known) {
    static const struct {
        uint32_t in;
        uint16_t out;
        const char *what;
    } k[] = {
        {0x3F800000, 0x3F80, "1.0"},
        {0x3F808000, 0x3F80, "halfway, down to even"},
        {0x3F818000, 0x3F82, "halfway, up to even"},
        {0x3F808001, 0x3F81, "just above halfway"},
        {0x3F807FFF, 0x3F80, "just below halfway"},
        {0xBF818000, 0xBF82, "negative halfway"},
        {0x7F7F0000, 0x7F7F, "max finite bf16"},
        {0x7F7F7FFF, 0x7F7F, "just below the overflow halfway point"},
        {0x7F7F8000, 0x7F80, "halfway above max finite: to even = Inf"},
        {0x7F7FFFFF, 0x7F80, "FLT_MAX -> Inf"},
        {0xFF7FFFFF, 0xFF80, "-FLT_MAX -> -Inf"},
        {0x00010000, 0x0001, "smallest bf16 subnormal"},
        {0x00008000, 0x0000, "halfway to the smallest subnormal: to even 0"},
        {0x00008001, 0x0001, "just above that halfway point"},
        {0x00018000, 0x0002, "1.5 ulp subnormal: up to even"},
        {0x80008000, 0x8000, "negative halfway -> -0"},
        {0x007F8000, 0x0080, "largest subnormal rounds up to min normal"},
        {0x00000000, 0x0000, "+0"},
        {0x80000000, 0x8000, "-0"},
        {0x7F800000, 0x7F80, "+Inf"},
        {0xFF800000, 0xFF80, "-Inf"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        uint16_t h = qfmt_f32_to_bf16(bitsf(k[i].in));
        cr_assert_eq(h, k[i].out, "%s (0x%08x): got 0x%04x, want 0x%04x", k[i].what, k[i].in, h,
                     k[i].out);
        cr_assert_eq(ref_f32_to_bf16(k[i].in), k[i].out, "reference disagrees on %s", k[i].what);
    }
    expect_bf16_nan(qfmt_f32_to_bf16(bitsf(0x7FC00000)), 0, "qNaN");
    expect_bf16_nan(qfmt_f32_to_bf16(bitsf(0xFFC00000)), 1, "-qNaN");
    expect_bf16_nan(qfmt_f32_to_bf16(bitsf(0x7F800001)), 0, "sNaN whose payload is below bf16");
    expect_bf16_nan(qfmt_f32_to_bf16(bitsf(0xFF800001)), 1, "-sNaN whose payload is below bf16");
    expect_bf16_nan(qfmt_f32_to_bf16(bitsf(0x7FFFFFFF)), 0, "NaN with all payload bits");
}

Test(convert, to_f32_known) {
    cr_assert_eq(fbits(qfmt_f16_to_f32(0x0001)), 0x33800000u);
    cr_assert_eq(fbits(qfmt_f16_to_f32(0x8001)), 0xB3800000u);
    cr_assert_eq(fbits(qfmt_f16_to_f32(0x03FF)), 0x387FC000u);
    cr_assert_eq(fbits(qfmt_f16_to_f32(0x0400)), 0x38800000u);
    cr_assert_eq(fbits(qfmt_f16_to_f32(0x7BFF)), 0x477FE000u);
    cr_assert_eq(fbits(qfmt_f16_to_f32(0x3C00)), 0x3F800000u);
    cr_assert_eq(fbits(qfmt_f16_to_f32(0x8000)), 0x80000000u);
    cr_assert_eq(fbits(qfmt_f16_to_f32(0x7C00)), 0x7F800000u);
    cr_assert_eq(fbits(qfmt_f16_to_f32(0xFC00)), 0xFF800000u);
    expect_f32_nan(qfmt_f16_to_f32(0x7C01), 0, "f16 sNaN");
    expect_f32_nan(qfmt_f16_to_f32(0xFE00), 1, "f16 -qNaN");
    cr_assert_eq(fbits(qfmt_bf16_to_f32(0x0001)), 0x00010000u, "bf16 subnormal kept");
    cr_assert_eq(fbits(qfmt_bf16_to_f32(0x8001)), 0x80010000u);
    cr_assert_eq(fbits(qfmt_bf16_to_f32(0x7F7F)), 0x7F7F0000u);
    cr_assert_eq(fbits(qfmt_bf16_to_f32(0xFF80)), 0xFF800000u);
    cr_assert_eq(fbits(qfmt_bf16_to_f32(0x8000)), 0x80000000u);
    expect_f32_nan(qfmt_bf16_to_f32(0x7F81), 0, "bf16 sNaN");
    expect_f32_nan(qfmt_bf16_to_f32(0xFFC0), 1, "bf16 -qNaN");
}

/* f16 <-> bf16 through qfmt_convert_floats: one rounding, from the exact value. */
Test(convert, f16_bf16_known) {
    static const struct {
        uint16_t f16, bf16;
        int dir; /* 0: f16 -> bf16, 1: bf16 -> f16 */
        const char *what;
    } k[] = {
        {0x3C01, 0x3F80, 0, "1+2^-10 -> 1.0"},
        {0x3C04, 0x3F80, 0, "1+2^-8: halfway, down to even"},
        {0x3C0C, 0x3F82, 0, "1+3*2^-8: halfway, up to even"},
        {0x7BFF, 0x4780, 0, "65504 -> 65536"},
        {0x0001, 0x3380, 0, "2^-24 exact"},
        {0xFC00, 0xFF80, 0, "-Inf"},
        {0x8000, 0x8000, 0, "-0"},
        {0x7C00, 0x4780, 1, "65536 -> Inf"},
        {0x7BF8, 0x477F, 1, "65280 exact"},
        {0x0001, 0x3380, 1, "2^-24 exact"},
        {0x0000, 0x3300, 1, "2^-25: halfway, to even 0"},
        {0x0001, 0x3340, 1, "1.5*2^-25 -> 2^-24"},
        {0x0000, 0x0001, 1, "bf16 subnormal -> 0"},
        {0x8000, 0x8001, 1, "negative bf16 subnormal -> -0"},
        {0x3C08, 0x3F81, 1, "1+2^-7 exact"},
        {0xFC00, 0xFF80, 1, "-Inf"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        uint16_t in = k[i].dir ? k[i].bf16 : k[i].f16, out = 0x1234;
        uint16_t want = k[i].dir ? k[i].f16 : k[i].bf16;
        qfmt_status s = k[i].dir ? qfmt_convert_floats(QFMT_TYPE_BF16, &in, QFMT_TYPE_F16, &out, 1)
                                 : qfmt_convert_floats(QFMT_TYPE_F16, &in, QFMT_TYPE_BF16, &out, 1);
        cr_assert_eq(s, QFMT_OK);
        cr_assert_eq(out, want, "%s: 0x%04x -> 0x%04x, want 0x%04x", k[i].what, in, out, want);
    }
    uint16_t in = 0x7FC1, out;
    TH_OK(qfmt_convert_floats(QFMT_TYPE_BF16, &in, QFMT_TYPE_F16, &out, 1));
    expect_f16_nan(out, 0, "bf16 NaN -> f16");
    in = 0xFF81;
    TH_OK(qfmt_convert_floats(QFMT_TYPE_BF16, &in, QFMT_TYPE_F16, &out, 1));
    expect_f16_nan(out, 1, "bf16 -sNaN -> f16");
    in = 0xFC01;
    TH_OK(qfmt_convert_floats(QFMT_TYPE_F16, &in, QFMT_TYPE_BF16, &out, 1));
    expect_bf16_nan(out, 1, "f16 -sNaN -> bf16");
}

/* ---- Exhaustive -------------------------------------------------------------------------------- */
Test(convert, f16_all_values_round_trip) {
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = qfmt_f16_to_f32(h);
        uint32_t u = fbits(f);
        if (f16_is_nan(h)) {
            expect_f32_nan(f, h >> 15, "f16 NaN widened");
            expect_f16_nan(qfmt_f32_to_f16(f), h >> 15, "f16 NaN round trip");
            continue;
        }
        cr_assert_eq(u, ref_f16_to_f32(h), "f16 0x%04x -> 0x%08x, reference 0x%08x", h, u,
                     ref_f16_to_f32(h));
#ifdef __FLT16_MAX__
        _Float16 cf;
        memcpy(&cf, &h, 2);
        cr_assert_eq(u, fbits((float)cf), "f16 0x%04x: compiler says 0x%08x", h, fbits((float)cf));
#endif
        uint16_t back = qfmt_f32_to_f16(f);
        cr_assert_eq(back, h, "f16 0x%04x -> f32 -> 0x%04x", h, back);
    }
}

Test(convert, bf16_all_values_round_trip) {
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = qfmt_bf16_to_f32(h);
        if (bf16_is_nan(h)) {
            expect_f32_nan(f, h >> 15, "bf16 NaN widened");
            expect_bf16_nan(qfmt_f32_to_bf16(f), h >> 15, "bf16 NaN round trip");
            continue;
        }
        cr_assert_eq(fbits(f), (uint32_t)h << 16, "bf16 0x%04x -> 0x%08x", h, fbits(f));
        cr_assert_eq(qfmt_f32_to_bf16(f), h, "bf16 0x%04x round trip", h);
    }
}

/* ---- A million random floats against the references ------------------------------------- */
static uint32_t random_f32_bits(uint64_t *st, int k) {
    uint64_t r = th_rand(st);
    uint32_t x = (uint32_t)r;
    switch (k % 4) {
    case 0: return x; /* any bits at all */
    case 1: {          /* exponents around the f16 range, including subnormal f16 results */
        uint32_t e = (uint32_t)(127 - 27 + (r >> 32) % 45);
        return (x & 0x807FFFFFu) | (e << 23);
    }
    case 2: { /* exact f16 halfway points and their neighbours */
        uint32_t e = (uint32_t)(127 - 26 + (r >> 32) % 43);
        uint32_t m = (x & 0x7FE000u) | 0x1000u;
        int nudge = (int)((r >> 40) % 3) - 1;
        return ((x & 0x80000000u) | (e << 23) | m) + (uint32_t)nudge;
    }
    default: { /* exact bf16 halfway points and their neighbours */
        uint32_t m = (x & 0xFFFF0000u) | 0x8000u;
        int nudge = (int)((r >> 40) % 3) - 1;
        return m + (uint32_t)nudge;
    }
    }
}

Test(convert, random_against_references, .timeout = 60) {
    uint64_t st = 0xC0FFEE;
    for (int k = 0; k < 1000000; k++) {
        uint32_t x = random_f32_bits(&st, k);
        float f = bitsf(x);
        uint16_t h = qfmt_f32_to_f16(f), b = qfmt_f32_to_bf16(f);
        if (f32_is_nan(x)) {
            expect_f16_nan(h, (int)(x >> 31), "random NaN -> f16");
            expect_bf16_nan(b, (int)(x >> 31), "random NaN -> bf16");
            continue;
        }
        uint16_t rh = ref_f32_to_f16(x);
        cr_assert_eq(h, rh, "f32 0x%08x -> f16 0x%04x, reference 0x%04x", x, h, rh);
#ifdef __FLT16_MAX__
        _Float16 cf = (_Float16)f;
        uint16_t ch;
        memcpy(&ch, &cf, 2);
        cr_assert_eq(h, ch, "f32 0x%08x -> f16 0x%04x, compiler 0x%04x", x, h, ch);
#endif
        uint16_t rb = ref_f32_to_bf16(x);
        cr_assert_eq(b, rb, "f32 0x%08x -> bf16 0x%04x, reference 0x%04x", x, b, rb);
    }
}

/* ---- Arrays: every pair, unaligned, in place ----------------------------------------------- */
#define NARR 1037

static const uint32_t TYPES3[3] = {QFMT_TYPE_F32, QFMT_TYPE_F16, QFMT_TYPE_BF16};

static size_t esz(uint32_t t) { return t == QFMT_TYPE_F32 ? 4 : 2; }

/* Value i of the source array of type t, as raw bits. */
static uint32_t src_val(uint32_t t, size_t i, uint64_t *st) {
    static const uint32_t f32s[] = {0x3F800000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000,
                                    0xFF800001, 0x477FF000, 0x33000000, 0x00000001, 0x3F808000};
    static const uint16_t h16s[] = {0x0001, 0x8000, 0x7C00, 0xFC01, 0x7BFF, 0x03FF, 0x3C01, 0x3555};
    uint64_t r = th_rand(st);
    if (t == QFMT_TYPE_F32) return i < 10 ? f32s[i] : random_f32_bits(st, (int)i);
    return i < 8 ? h16s[i] : (uint16_t)r;
}

static uint32_t get_elem(uint32_t t, const uint8_t *p, size_t i) {
    if (t == QFMT_TYPE_F32) {
        uint32_t u;
        memcpy(&u, p + 4 * i, 4);
        return u;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return h;
}

/* Expected result of one element, from the references. */
static uint32_t expect_conv(uint32_t st, uint32_t dt, uint32_t v, bool *is_nan) {
    uint32_t f32 = st == QFMT_TYPE_F32 ? v
                   : st == QFMT_TYPE_F16 ? ref_f16_to_f32((uint16_t)v)
                                         : (uint32_t)v << 16;
    *is_nan = f32_is_nan(f32);
    if (dt == st) return v;
    if (dt == QFMT_TYPE_F32) return f32;
    if (dt == QFMT_TYPE_F16) return ref_f32_to_f16(f32);
    return ref_f32_to_bf16(f32);
}

static void check_array(uint32_t st, uint32_t dt, const uint8_t *src, const uint8_t *dst,
                        const uint32_t *vals) {
    for (size_t i = 0; i < NARR; i++) {
        bool nan;
        uint32_t want = expect_conv(st, dt, vals[i], &nan);
        uint32_t got = get_elem(dt, dst, i);
        (void)src;
        if (nan) {
            int sign = (int)(vals[i] >> (st == QFMT_TYPE_F32 ? 31 : 15));
            if (dt == QFMT_TYPE_F32) cr_assert(f32_is_nan(got) && (int)(got >> 31) == sign);
            else if (dt == QFMT_TYPE_F16) cr_assert(f16_is_nan((uint16_t)got) && (int)(got >> 15) == sign);
            else cr_assert(bf16_is_nan((uint16_t)got) && (int)(got >> 15) == sign);
            continue;
        }
        cr_assert_eq(got, want, "%u -> %u element %zu: in 0x%x, got 0x%x, want 0x%x", st, dt, i,
                     vals[i], got, want);
    }
}

Test(convert, arrays_every_pair) {
    uint8_t *src = malloc(NARR * 4 + 8), *dst = malloc(NARR * 4 + 8);
    uint32_t *vals = malloc(NARR * sizeof *vals);
    cr_assert(src && dst && vals);
    for (int a = 0; a < 3; a++) {
        for (int b = 0; b < 3; b++) {
            uint32_t st = TYPES3[a], dt = TYPES3[b];
            uint64_t seed = 77 + (uint64_t)(a * 3 + b);
            for (size_t i = 0; i < NARR; i++) vals[i] = src_val(st, i, &seed);
            for (size_t mis = 0; mis < 2; mis++) { /* aligned, then odd addresses */
                uint8_t *s = src + mis, *d = dst + 3 * mis;
                for (size_t i = 0; i < NARR; i++) {
                    if (st == QFMT_TYPE_F32) memcpy(s + 4 * i, &vals[i], 4);
                    else {
                        uint16_t h = (uint16_t)vals[i];
                        memcpy(s + 2 * i, &h, 2);
                    }
                }
                memset(dst, 0xCC, NARR * 4 + 8);
                cr_assert_eq(qfmt_convert_floats(st, s, dt, d, NARR), QFMT_OK, "%u -> %u", st, dt);
                check_array(st, dt, s, d, vals);
                for (size_t k = 3 * mis + NARR * esz(dt); k < NARR * 4 + 8; k++)
                    cr_assert_eq(dst[k], 0xCC, "%u -> %u wrote past n elements", st, dt);
            }
            /* in place, when the element sizes are equal */
            if (esz(st) == esz(dt)) {
                for (size_t i = 0; i < NARR; i++) {
                    if (st == QFMT_TYPE_F32) memcpy(src + 4 * i, &vals[i], 4);
                    else {
                        uint16_t h = (uint16_t)vals[i];
                        memcpy(src + 2 * i, &h, 2);
                    }
                }
                cr_assert_eq(qfmt_convert_floats(st, src, dt, src, NARR), QFMT_OK);
                check_array(st, dt, src, src, vals);
            }
            cr_assert_eq(qfmt_convert_floats(st, src, dt, dst, 0), QFMT_OK, "n = 0");
        }
    }
    free(src);
    free(dst);
    free(vals);
}

Test(convert, arrays_reject_other_types) {
    uint8_t a[16] = {0}, b[16] = {0};
    const uint32_t bad[] = {QFMT_TYPE_I8, QFMT_TYPE_F64, QFMT_TYPE_U8, QFMT_TYPE_Q8_0, 999};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qfmt_status s = qfmt_convert_floats(bad[i], a, QFMT_TYPE_F32, b, 2);
        cr_assert(s == QFMT_E_ARG || s == QFMT_E_UNSUPPORTED, "src type %u: %d", bad[i], (int)s);
        s = qfmt_convert_floats(QFMT_TYPE_F32, a, bad[i], b, 2);
        cr_assert(s == QFMT_E_ARG || s == QFMT_E_UNSUPPORTED, "dst type %u: %d", bad[i], (int)s);
    }
}
