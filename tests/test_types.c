/*
 * test_types.c - type traits, names and sizes; error strings and formatting; versions.
 */
#include "test_helpers.h"

Test(types, version) {
    cr_assert_eq(qfmt_version_number(), QFMT_VERSION_NUMBER);
    cr_assert_str_eq(qfmt_version_string(), QFMT_VERSION_STRING);
    char s[32];
    snprintf(s, sizeof s, "%d.%d.%d", QFMT_VERSION_MAJOR, QFMT_VERSION_MINOR, QFMT_VERSION_PATCH);
    cr_assert_str_eq(QFMT_VERSION_STRING, s);
}

static const struct {
    uint32_t type;
    uint32_t bytes;
    bool is_float;
} PLAIN[] = {
    {QFMT_TYPE_F32, 4, true},  {QFMT_TYPE_F16, 2, true},  {QFMT_TYPE_BF16, 2, true},
    {QFMT_TYPE_F64, 8, true},  {QFMT_TYPE_I8, 1, false},  {QFMT_TYPE_I16, 2, false},
    {QFMT_TYPE_I32, 4, false}, {QFMT_TYPE_I64, 8, false}, {QFMT_TYPE_U8, 1, false},
    {QFMT_TYPE_BOOL, 1, false},
};
#define NPLAIN (sizeof PLAIN / sizeof PLAIN[0])

Test(types, plain_traits) {
    for (size_t i = 0; i < NPLAIN; i++) {
        const qfmt_type_traits *t = qfmt_type_get_traits(PLAIN[i].type);
        cr_assert_not_null(t, "type %u", PLAIN[i].type);
        cr_assert_not_null(t->name);
        cr_assert_neq(t->name[0], 0);
        cr_assert_eq(t->block_elems, 1u, "%s", t->name);
        cr_assert_eq(t->block_bytes, PLAIN[i].bytes, "%s", t->name);
        cr_assert_eq(t->is_float, PLAIN[i].is_float, "%s", t->name);
        uint32_t back = UINT32_MAX;
        cr_assert_eq(qfmt_type_from_name(t->name, &back), QFMT_OK, "%s", t->name);
        cr_assert_eq(back, PLAIN[i].type, "%s", t->name);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(t->name, qfmt_type_get_traits(PLAIN[j].type)->name);
    }
    cr_assert_str_eq(qfmt_type_get_traits(QFMT_TYPE_F32)->name, "f32");
    cr_assert_str_eq(qfmt_type_get_traits(QFMT_TYPE_F16)->name, "f16");
    cr_assert_str_eq(qfmt_type_get_traits(QFMT_TYPE_BF16)->name, "bf16");
    uint32_t t;
    cr_assert_eq(qfmt_type_from_name("f16", &t), QFMT_OK);
    cr_assert_eq(t, QFMT_TYPE_F16);
}

/* The block types: ggml's ids, names (lower case), block sizes and bytes (ggml-common.h). */
Test(types, block_traits) {
    static const struct {
        uint32_t type, elems, bytes;
        const char *name;
    } B[] = {
        {QFMT_TYPE_Q4_0, 32, 18, "q4_0"},     {QFMT_TYPE_Q4_1, 32, 20, "q4_1"},
        {QFMT_TYPE_Q5_0, 32, 22, "q5_0"},     {QFMT_TYPE_Q5_1, 32, 24, "q5_1"},
        {QFMT_TYPE_Q8_0, 32, 34, "q8_0"},     {QFMT_TYPE_Q2_K, 256, 84, "q2_k"},
        {QFMT_TYPE_Q3_K, 256, 110, "q3_k"},   {QFMT_TYPE_Q4_K, 256, 144, "q4_k"},
        {QFMT_TYPE_Q5_K, 256, 176, "q5_k"},   {QFMT_TYPE_Q6_K, 256, 210, "q6_k"},
        {QFMT_TYPE_IQ4_NL, 32, 18, "iq4_nl"}, {QFMT_TYPE_IQ4_XS, 256, 136, "iq4_xs"},
        {QFMT_TYPE_Q8_Z, 32, 35, "q8_z"},     {QFMT_TYPE_Q4_Z, 32, 19, "q4_z"},
    };
    cr_assert_eq(QFMT_TYPE_Q5_0, 6);
    cr_assert_eq(QFMT_TYPE_Q2_K, 10);
    cr_assert_eq(QFMT_TYPE_Q6_K, 14);
    cr_assert_eq(QFMT_TYPE_IQ4_NL, 20);
    cr_assert_eq(QFMT_TYPE_IQ4_XS, 23);
    for (size_t i = 0; i < sizeof B / sizeof B[0]; i++) {
        const qfmt_type_traits *t = qfmt_type_get_traits(B[i].type);
        uint64_t n;
        cr_assert_not_null(t, "%s", B[i].name);
        cr_assert_str_eq(t->name, B[i].name);
        uint32_t back = UINT32_MAX;
        TH_OK(qfmt_type_from_name(B[i].name, &back));
        cr_assert_eq(back, B[i].type, "%s", B[i].name);
        cr_assert_eq(t->block_elems, B[i].elems, "%s", t->name);
        cr_assert_eq(t->block_bytes, B[i].bytes, "%s", t->name);
        cr_assert(!t->is_float);
        TH_OK(qfmt_type_size(B[i].type, 2 * B[i].elems, &n));
        cr_assert_eq(n, 2ull * B[i].bytes);
        cr_assert_eq(qfmt_type_size(B[i].type, B[i].elems + 1, &n), QFMT_E_RANGE, "%s: not whole blocks", t->name);
        cr_assert_eq(qfmt_type_size(B[i].type, B[i].elems / 2, &n), QFMT_E_RANGE, "%s: half a block", t->name);
        if (B[i].elems == 256)
            cr_assert_eq(qfmt_type_size(B[i].type, 32, &n), QFMT_E_RANGE, "%s: 32 values", t->name);
        TH_OK(qfmt_type_size(B[i].type, 0, &n));
        cr_assert_eq(n, 0u);
        cr_assert_not_null(qfmt_row_decoder(B[i].type), "%s: no row decoder", t->name);
    }
    uint32_t t;
    cr_assert_eq(qfmt_type_from_name("Q4_K", &t), QFMT_E_NOT_FOUND, "names are lower case");
}

Test(types, unknown_types) {
    /* ggml's ids qfmt does not take (q4_2, q4_3, q8_1, q8_k, the 1- to 3-bit i-quants, ...) */
    const uint32_t unknown[] = {4, 5, 9, 15, 16, 17, 18, 19, 21, 22, 29, 31, 255, 260, 999, 65536, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        cr_assert_null(qfmt_type_get_traits(unknown[i]), "type %u", unknown[i]);
        uint64_t n = 5;
        cr_assert_eq(qfmt_type_size(unknown[i], 10, &n), QFMT_E_UNSUPPORTED, "type %u",
                     unknown[i]);
    }
    uint32_t t = 12345;
    cr_assert_eq(qfmt_type_from_name("nope", &t), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_type_from_name("", &t), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_type_from_name("f3", &t), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_type_from_name("f32 ", &t), QFMT_E_NOT_FOUND);
    cr_assert_eq(qfmt_type_from_name("f32x", &t), QFMT_E_NOT_FOUND);
}

Test(types, type_size) {
    uint64_t n = 0;
    TH_OK(qfmt_type_size(QFMT_TYPE_F32, 0, &n));
    cr_assert_eq(n, 0u);
    TH_OK(qfmt_type_size(QFMT_TYPE_F32, 10, &n));
    cr_assert_eq(n, 40u);
    TH_OK(qfmt_type_size(QFMT_TYPE_BF16, 3, &n));
    cr_assert_eq(n, 6u);
    TH_OK(qfmt_type_size(QFMT_TYPE_I64, 1ull << 55, &n));
    cr_assert_eq(n, 1ull << 58);
    TH_OK(qfmt_type_size(QFMT_TYPE_BOOL, 7, &n));
    cr_assert_eq(n, 7u);
    cr_assert_eq(qfmt_type_size(QFMT_TYPE_F32, 1ull << 62, &n), QFMT_E_RANGE, "2^64 bytes");
    cr_assert_eq(qfmt_type_size(QFMT_TYPE_I64, 1ull << 61, &n), QFMT_E_RANGE, "2^64 bytes");
    cr_assert_eq(qfmt_type_size(QFMT_TYPE_F64, UINT64_MAX, &n), QFMT_E_RANGE);
    cr_assert_eq(qfmt_type_size(QFMT_TYPE_F16, (1ull << 63) + 1, &n), QFMT_E_RANGE);
}

Test(types, strerror_every_code) {
    const char *s[QFMT_E_EXISTS + 1];
    for (int c = QFMT_OK; c <= QFMT_E_EXISTS; c++) {
        s[c] = qfmt_strerror((qfmt_status)c);
        cr_assert_not_null(s[c], "code %d", c);
        cr_assert_neq(s[c][0], 0, "code %d", c);
        cr_assert_null(strchr(s[c], '\n'));
        for (int d = 0; d < c; d++) cr_assert_str_neq(s[c], s[d], "codes %d and %d", c, d);
    }
    const char *u = qfmt_strerror((qfmt_status)999);
    cr_assert_not_null(u);
    cr_assert_neq(u[0], 0);
    u = qfmt_strerror((qfmt_status)-1);
    cr_assert_not_null(u);
    cr_assert_neq(u[0], 0);
}

static qfmt_error mk_error(const char *path, const char *tensor, uint64_t off, const char *msg) {
    qfmt_error e;
    memset(&e, 0, sizeof e);
    e.code = QFMT_E_CORRUPT;
    e.offset = off;
    snprintf(e.path, sizeof e.path, "%s", path);
    snprintf(e.tensor, sizeof e.tensor, "%s", tensor);
    snprintf(e.message, sizeof e.message, "%s", msg);
    return e;
}

Test(types, error_format) {
    char buf[1024];
    qfmt_error e = mk_error("model.qf", "blk.3.attn_q.weight", 4096, "data ends past end of file");
    cr_assert_eq(qfmt_error_format(&e, buf, sizeof buf), buf);
    cr_assert_str_eq(buf, "model.qf: tensor 'blk.3.attn_q.weight' at byte 4096: data ends past "
                          "end of file");

    e = mk_error("", "", QFMT_NO_OFFSET, "not a qfmt file");
    qfmt_error_format(&e, buf, sizeof buf);
    cr_assert_not_null(strstr(buf, "not a qfmt file"), "%s", buf);
    cr_assert_null(strstr(buf, "tensor"), "no tensor part: %s", buf);
    cr_assert_null(strstr(buf, "byte"), "no offset part: %s", buf);
    cr_assert_null(strstr(buf, "18446744073709551615"), "no UINT64_MAX: %s", buf);

    e = mk_error("a/b.qfmt", "", 0, "bad magic");
    qfmt_error_format(&e, buf, sizeof buf);
    cr_assert_not_null(strstr(buf, "a/b.qfmt"), "%s", buf);
    cr_assert_not_null(strstr(buf, "byte 0"), "offset 0 is an offset: %s", buf);
    cr_assert_null(strstr(buf, "tensor"), "%s", buf);

    /* the longest fields fit, on one line */
    e.code = QFMT_E_CORRUPT;
    memset(e.path, 'p', sizeof e.path - 1);
    e.path[sizeof e.path - 1] = 0;
    memset(e.tensor, 't', sizeof e.tensor - 1);
    e.tensor[sizeof e.tensor - 1] = 0;
    memset(e.message, 'm', sizeof e.message - 1);
    e.message[sizeof e.message - 1] = 0;
    e.offset = UINT64_MAX - 1;
    qfmt_error_format(&e, buf, sizeof buf);
    cr_assert_null(strchr(buf, '\n'));
    cr_assert_not_null(strstr(buf, e.message));

    /* truncation: always terminated, never past buf_size */
    for (size_t n = 1; n < 40; n++) {
        char small[64];
        memset(small, 'Z', sizeof small);
        qfmt_error_format(&e, small, n);
        cr_assert_lt(strlen(small), n, "buf_size %zu", n);
        for (size_t k = n; k < sizeof small; k++) cr_assert_eq(small[k], 'Z', "buf_size %zu", n);
    }
}

/* ---- Bulk float conversions ----------------------------------------------------------------
 * qfmt_convert_floats runs SIMD loops where the CPU has them: every element must carry the bits
 * of the scalar per-value conversions, for every 16-bit input and a sweep of 32-bit inputs that
 * covers every sign and exponent with the low bits at each rounding boundary, plus NaNs. Odd
 * lengths exercise the vector loops' tails. */

static void check_from16(uint32_t type, float (*one)(uint16_t)) {
    enum { N = 65536 + 5 };
    uint16_t *h = malloc(N * sizeof *h);
    float *f = malloc(N * sizeof *f);
    cr_assert(h && f);
    for (uint32_t i = 0; i < N; i++) h[i] = (uint16_t)(i * 40503u); /* every value, in a scrambled order */
    cr_assert_eq(qfmt_convert_floats(type, h, QFMT_TYPE_F32, f, N), QFMT_OK);
    for (uint32_t i = 0; i < N; i++) {
        float want = one(h[i]);
        cr_assert_eq(memcmp(&f[i], &want, 4), 0, "%s 0x%04x: bulk and scalar conversions differ",
                     qfmt_type_get_traits(type)->name, h[i]);
    }
    free(h);
    free(f);
}

Test(floats, bulk_to_f32_matches_scalar) {
    check_from16(QFMT_TYPE_F16, qfmt_f16_to_f32);
    check_from16(QFMT_TYPE_BF16, qfmt_bf16_to_f32);
}

/* F16 <-> BF16 in bulk: every input, the bits of the two scalar steps through F32. */
Test(floats, bulk_16_to_16_matches_scalar) {
    enum { N = 65536 + 3 };
    uint16_t *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    cr_assert(in && out);
    for (uint32_t i = 0; i < N; i++) in[i] = (uint16_t)(i * 40503u);
    for (int dir = 0; dir < 2; dir++) {
        uint32_t from = dir ? QFMT_TYPE_F16 : QFMT_TYPE_BF16, to = dir ? QFMT_TYPE_BF16 : QFMT_TYPE_F16;
        cr_assert_eq(qfmt_convert_floats(from, in, to, out, N), QFMT_OK);
        for (uint32_t i = 0; i < N; i++) {
            float f = dir ? qfmt_f16_to_f32(in[i]) : qfmt_bf16_to_f32(in[i]);
            uint16_t want = dir ? qfmt_f32_to_bf16(f) : qfmt_f32_to_f16(f);
            cr_assert_eq(out[i], want, "%s 0x%04x to %s: bulk 0x%04x, scalar 0x%04x",
                         qfmt_type_get_traits(from)->name, in[i], qfmt_type_get_traits(to)->name, out[i], want);
        }
    }
    free(in);
    free(out);
}

static void check_to16(uint32_t type, uint16_t (*one)(float), unsigned low_bits) {
    /* top (32 - low_bits) bits: every value; low bits: 0, 1, half - 1, half, half + 1, max */
    const uint32_t half = 1u << (low_bits - 1), lows[] = {0, 1, half - 1, half, half + 1, (half << 1) - 1};
    const size_t nlow = sizeof lows / sizeof lows[0], ntop = (size_t)1 << (32 - low_bits);
    size_t n = ntop * nlow + 3;
    float *f = malloc(n * sizeof *f);
    uint16_t *h = malloc(n * sizeof *h);
    cr_assert(f && h);
    uint64_t s = 99;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = i < ntop * nlow ? (uint32_t)((i / nlow) << low_bits) | lows[i % nlow] : (uint32_t)th_rand(&s);
        memcpy(&f[i], &u, 4);
    }
    cr_assert_eq(qfmt_convert_floats(QFMT_TYPE_F32, f, type, h, n), QFMT_OK);
    for (size_t i = 0; i < n; i++) {
        uint16_t want = one(f[i]);
        uint32_t u;
        memcpy(&u, &f[i], 4);
        cr_assert_eq(h[i], want, "f32 0x%08x to %s: bulk 0x%04x, scalar 0x%04x", u, qfmt_type_get_traits(type)->name,
                     h[i], want);
    }
    free(f);
    free(h);
}

Test(floats, bulk_from_f32_matches_scalar, .timeout = 120) {
    check_to16(QFMT_TYPE_F16, qfmt_f32_to_f16, 13);
    check_to16(QFMT_TYPE_BF16, qfmt_f32_to_bf16, 16);
}
