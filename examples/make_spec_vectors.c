/*
 * make_spec_vectors.c - writes the test vectors of spec/vectors/ with the public API.
 *
 *     make_spec_vectors OUT_DIR
 *
 * Writes into OUT_DIR (which must exist):
 *   minimal.qfmt   no tensors, no metadata: the smallest file (128 bytes)
 *   example.qfmt   the spec's worked example (alignment 32, f32/f16/bf16, three metadata entries)
 *   floats.qfmt    f32, f16, bf16, f64 tensors (special values, a scalar, an empty tensor, an
 *                  8-dimensional tensor) and metadata of every value type, arrays included
 *   ints.qfmt      i8, i16, i32, i64, u8 and bool tensors with their extreme values; no metadata
 *   zstd.qfmt      one zstd-compressed f32 tensor
 *   quant.qfmt     an f32 source [2, 64] and its reference quantization to q8_0, q4_0, q4_1,
 *                  q8_z and q4_z (block 0 is the spec's worked block example)
 *   align256.qfmt  alignment 256: zero padding between the header and the first tensor
 *
 * Every input is a constant of this file (no clock, no randomness, no libm), files are written
 * with no_fsync, and each is reopened and verified. Two runs write identical bytes; zstd.qfmt's
 * compressed bytes depend on the libzstd version (its decoded content does not).
 * spec/vectors/annotate.py then writes NAME.hex.md and NAME.json for each file.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "qfmt.h"

static const char *out_dir;

static int fail(const char *file, const char *what, const qfmt_error *e)
{
    char buf[1024];
    fprintf(stderr, "make_spec_vectors: %s: %s: %s\n", file, what,
            e ? qfmt_error_format(e, buf, sizeof buf) : "failed");
    return 1;
}

static qfmt_tensor_desc desc(const char *name, uint32_t type, uint32_t ndim, const uint64_t *dims)
{
    qfmt_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.type = type;
    d.ndim = ndim;
    for (uint32_t i = 0; i < ndim; i++) d.dims[i] = dims[i];
    d.codec = QFMT_CODEC_NONE;
    return d;
}

/* ---- A small builder: collects the calls, stops at the first error ------------------------ */

typedef struct {
    const char *file;
    char path[4096];
    qfmt_writer *w;
    qfmt_error e;
    const char *what; /* the failed step, or NULL */
} vec;

static int vec_begin(vec *v, const char *file, uint32_t alignment)
{
    memset(v, 0, sizeof *v);
    v->file = file;
    if (snprintf(v->path, sizeof v->path, "%s/%s", out_dir, file) >= (int)sizeof v->path)
        return fail(file, "path too long", NULL);
    qfmt_write_opts o;
    memset(&o, 0, sizeof o);
    o.alignment = alignment;
    o.no_fsync = true;
    if (qfmt_writer_create(&v->w, v->path, &o, &v->e) != QFMT_OK) return fail(file, "create", &v->e);
    return 0;
}

static void check(vec *v, qfmt_status s, const char *what)
{
    if (s != QFMT_OK && !v->what) v->what = what;
}

static void tensor(vec *v, const char *name, uint32_t type, uint32_t ndim, const uint64_t *dims,
                   const void *data, uint64_t size)
{
    if (v->what) return;
    qfmt_tensor_desc d = desc(name, type, ndim, dims);
    check(v, qfmt_writer_add_tensor(v->w, &d, data, size, &v->e), name);
}

/* Finishes the file, then reopens it and verifies every checksum and padding byte. */
static int vec_end(vec *v)
{
    if (!v->what) check(v, qfmt_writer_finish(v->w, &v->e), "finish");
    qfmt_writer_free(v->w);
    if (v->what) return fail(v->file, v->what, &v->e);
    qfmt_reader *r = NULL;
    qfmt_open_opts o;
    memset(&o, 0, sizeof o);
    o.verify_checksums = true;
    qfmt_status s = qfmt_reader_open(&r, v->path, &o, &v->e);
    if (s == QFMT_OK) s = qfmt_reader_verify(r, 1, &v->e);
    qfmt_file_info fi;
    if (s == QFMT_OK) qfmt_reader_file_info(r, &fi);
    qfmt_reader_close(r);
    if (s != QFMT_OK) return fail(v->file, "reopen and verify", &v->e);
    printf("%-14s %6llu bytes, %llu tensors, %llu metadata entries\n", v->file,
           (unsigned long long)fi.file_size, (unsigned long long)fi.tensor_count,
           (unsigned long long)fi.metadata_count);
    return 0;
}

static void f32_to(uint32_t type, const float *src, uint16_t *dst, size_t n)
{
    qfmt_convert_floats(QFMT_TYPE_F32, src, type, dst, n);
}

static float f32_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static double f64_bits(uint64_t b)
{
    double f;
    memcpy(&f, &b, 8);
    return f;
}

/* ---- The vectors -------------------------------------------------------------------------- */

static int make_minimal(void)
{
    vec v;
    if (vec_begin(&v, "minimal.qfmt", 0)) return 1;
    return vec_end(&v);
}

/* Exactly the inputs of the spec's "Worked example". */
static int make_example(void)
{
    vec v;
    if (vec_begin(&v, "example.qfmt", 32)) return 1;
    static const char *const tags[] = {"a", "bc"};
    check(&v, qfmt_writer_set_string(v.w, "general.name", "tiny", 4, &v.e), "general.name");
    check(&v, qfmt_writer_set_string_array(v.w, "general.tags", tags, NULL, 2, &v.e), "general.tags");
    check(&v, qfmt_writer_set_u32(v.w, "general.version", 1, &v.e), "general.version");
    const float bias[2] = {0.5f, -1.0f}, wf[4] = {1.0f, -2.0f, 0.5f, 3.0f}, sf = 1.5f;
    uint16_t w16[4], s16;
    f32_to(QFMT_TYPE_F16, wf, w16, 4);
    f32_to(QFMT_TYPE_BF16, &sf, &s16, 1);
    const uint64_t d_bias[] = {2}, d_w[] = {2, 2};
    tensor(&v, "bias", QFMT_TYPE_F32, 1, d_bias, bias, sizeof bias);
    tensor(&v, "w", QFMT_TYPE_F16, 2, d_w, w16, sizeof w16);
    tensor(&v, "scale", QFMT_TYPE_BF16, 0, NULL, &s16, sizeof s16);
    return vec_end(&v);
}

static void meta_scalar(vec *v, const char *key, uint32_t type, uint64_t u, int64_t i, double f)
{
    if (v->what) return;
    qfmt_value val;
    memset(&val, 0, sizeof val);
    val.type = type;
    if (type == QFMT_META_F32 || type == QFMT_META_F64) val.v.f = f;
    else if (type == QFMT_META_I8 || type == QFMT_META_I16 || type == QFMT_META_I32 ||
             type == QFMT_META_I64) val.v.i = i;
    else val.v.u = u;
    check(v, qfmt_writer_set_value(v->w, key, &val, &v->e), key);
}

static int make_floats(void)
{
    vec v;
    if (vec_begin(&v, "floats.qfmt", 0)) return 1;

    /* Metadata: one entry of each scalar type, strings, and an array of each element type.
     * Set in no particular order: the file holds them sorted by key ("string" before
     * "string.empty": a key that is a prefix of another comes first). */
    meta_scalar(&v, "scalar.u8", QFMT_META_U8, 255, 0, 0);
    meta_scalar(&v, "scalar.i8", QFMT_META_I8, 0, -128, 0);
    meta_scalar(&v, "scalar.u16", QFMT_META_U16, 65535, 0, 0);
    meta_scalar(&v, "scalar.i16", QFMT_META_I16, 0, -32768, 0);
    meta_scalar(&v, "scalar.u32", QFMT_META_U32, 4294967295u, 0, 0);
    meta_scalar(&v, "scalar.i32", QFMT_META_I32, 0, -2147483647 - 1, 0);
    meta_scalar(&v, "scalar.u64", QFMT_META_U64, UINT64_MAX, 0, 0);
    meta_scalar(&v, "scalar.i64", QFMT_META_I64, 0, INT64_MIN, 0);
    meta_scalar(&v, "scalar.f32", QFMT_META_F32, 0, 0, (double)0.1f);
    meta_scalar(&v, "scalar.f64", QFMT_META_F64, 0, 0, -2.5e-300);
    meta_scalar(&v, "scalar.bool", QFMT_META_BOOL, 1, 0, 0);
    static const char utf8[] = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93"; /* héllo wörld ✓ */
    check(&v, qfmt_writer_set_string(v.w, "string", utf8, sizeof utf8 - 1, &v.e), "string");
    check(&v, qfmt_writer_set_string(v.w, "string.empty", "", 0, &v.e), "string.empty");
    check(&v, qfmt_writer_set_string(v.w, "string.nul", "a\0b", 3, &v.e), "string.nul");

    static const uint8_t a_u8[] = {0, 1, 255};
    static const int8_t a_i8[] = {-128, -1, 127};
    static const uint16_t a_u16[] = {0, 258, 65535};
    static const int16_t a_i16[] = {-32768, -1, 32767};
    static const uint32_t a_u32[] = {0, 16909060, 4294967295u};
    static const int32_t a_i32[] = {-2147483647 - 1, -1, 2147483647};
    static const uint64_t a_u64[] = {0, 72623859790382856ull, UINT64_MAX};
    static const int64_t a_i64[] = {INT64_MIN, -1, INT64_MAX};
    const float a_f32[] = {0.5f, -0.0f, f32_bits(0x00000001u) /* smallest subnormal */};
    const double a_f64[] = {1.0 / 3.0, -1e300, f64_bits(0x0000000000000001ull)};
    static const uint8_t a_bool[] = {1, 0, 1};
    static const char *const a_str[] = {"", "x", "\xe6\x97\xa5\xe6\x9c\xac" /* 日本 */};
    check(&v, qfmt_writer_set_array(v.w, "array.u8", QFMT_META_U8, a_u8, 3, &v.e), "array.u8");
    check(&v, qfmt_writer_set_array(v.w, "array.i8", QFMT_META_I8, a_i8, 3, &v.e), "array.i8");
    check(&v, qfmt_writer_set_array(v.w, "array.u16", QFMT_META_U16, a_u16, 3, &v.e), "array.u16");
    check(&v, qfmt_writer_set_array(v.w, "array.i16", QFMT_META_I16, a_i16, 3, &v.e), "array.i16");
    check(&v, qfmt_writer_set_array(v.w, "array.u32", QFMT_META_U32, a_u32, 3, &v.e), "array.u32");
    check(&v, qfmt_writer_set_array(v.w, "array.i32", QFMT_META_I32, a_i32, 3, &v.e), "array.i32");
    check(&v, qfmt_writer_set_array(v.w, "array.u64", QFMT_META_U64, a_u64, 3, &v.e), "array.u64");
    check(&v, qfmt_writer_set_array(v.w, "array.i64", QFMT_META_I64, a_i64, 3, &v.e), "array.i64");
    check(&v, qfmt_writer_set_array(v.w, "array.f32", QFMT_META_F32, a_f32, 3, &v.e), "array.f32");
    check(&v, qfmt_writer_set_array(v.w, "array.f64", QFMT_META_F64, a_f64, 3, &v.e), "array.f64");
    check(&v, qfmt_writer_set_array(v.w, "array.bool", QFMT_META_BOOL, a_bool, 3, &v.e), "array.bool");
    check(&v, qfmt_writer_set_string_array(v.w, "array.string", a_str, NULL, 3, &v.e), "array.string");
    check(&v, qfmt_writer_set_array(v.w, "array.empty", QFMT_META_U32, NULL, 0, &v.e), "array.empty");

    /* f32: ordinary values, the extremes, a subnormal, -0; then infinities and a NaN. */
    const float m32[6] = {1.0f, -2.5f, 0.1f, f32_bits(0x7F7FFFFFu) /* largest finite */,
                          f32_bits(0x00000001u) /* 2^-149 */, -0.0f};
    const float s32[3] = {f32_bits(0x7F800000u), f32_bits(0xFF800000u), f32_bits(0x7FC00000u)};
    /* f16 and bf16 from f32 (round to nearest even): 65504 is f16's largest finite value,
     * 2^-24 its smallest subnormal; 65520 overflows f16 to +Inf. */
    const float h_src[6] = {1.0f, -2.0f, 65504.0f, f32_bits(0x33800000u), 0.1f, 65520.0f};
    const float b_src[4] = {1.5f, -0.0f, 3.0e38f, 0.1f};
    uint16_t h16[6], b16[4];
    f32_to(QFMT_TYPE_F16, h_src, h16, 6);
    f32_to(QFMT_TYPE_BF16, b_src, b16, 4);
    const double d64[3] = {3.141592653589793, -1e-300, f64_bits(0x0000000000000001ull)};
    const float scalar = 42.0f, eight[2] = {7.0f, -7.0f};

    const uint64_t d_m32[] = {2, 3}, d_s32[] = {3}, d_h[] = {6}, d_b[] = {2, 2}, d_d[] = {3},
                   d_empty[] = {0, 4}, d_eight[] = {1, 1, 1, 1, 1, 1, 2, 1};
    tensor(&v, "f32.matrix", QFMT_TYPE_F32, 2, d_m32, m32, sizeof m32);
    tensor(&v, "f32.special", QFMT_TYPE_F32, 1, d_s32, s32, sizeof s32);
    tensor(&v, "f16.vector", QFMT_TYPE_F16, 1, d_h, h16, sizeof h16);
    tensor(&v, "empty", QFMT_TYPE_F32, 2, d_empty, NULL, 0); /* no bytes: shares the next offset */
    tensor(&v, "bf16.matrix", QFMT_TYPE_BF16, 2, d_b, b16, sizeof b16);
    tensor(&v, "f64.vector", QFMT_TYPE_F64, 1, d_d, d64, sizeof d64);
    tensor(&v, "scalar", QFMT_TYPE_F32, 0, NULL, &scalar, sizeof scalar);
    tensor(&v, "f32.eight_dims", QFMT_TYPE_F32, 8, d_eight, eight, sizeof eight);
    return vec_end(&v);
}

static int make_ints(void)
{
    vec v;
    if (vec_begin(&v, "ints.qfmt", 0)) return 1;
    static const int8_t i8[4] = {-128, -1, 0, 127};
    static const int16_t i16[3] = {-32768, 258, 32767};
    static const int32_t i32[3] = {-2147483647 - 1, 16909060, 2147483647};
    static const int64_t i64[3] = {INT64_MIN, 72623859790382856ll, INT64_MAX};
    static const uint8_t u8[4] = {0, 1, 128, 255};
    static const uint8_t b[5] = {1, 0, 0, 1, 1};
    const uint64_t d4[] = {4}, d3[] = {3}, d5[] = {5};
    tensor(&v, "i8", QFMT_TYPE_I8, 1, d4, i8, sizeof i8);
    tensor(&v, "i16", QFMT_TYPE_I16, 1, d3, i16, sizeof i16);
    tensor(&v, "i32", QFMT_TYPE_I32, 1, d3, i32, sizeof i32);
    tensor(&v, "i64", QFMT_TYPE_I64, 1, d3, i64, sizeof i64);
    tensor(&v, "u8", QFMT_TYPE_U8, 1, d4, u8, sizeof u8);
    tensor(&v, "bool", QFMT_TYPE_BOOL, 1, d5, b, sizeof b);
    return vec_end(&v);
}

static int make_zstd(void)
{
    vec v;
    if (vec_begin(&v, "zstd.qfmt", 0)) return 1;
    enum { ROWS = 16, COLS = 32 };
    static float x[ROWS * COLS];
    for (int r = 0; r < ROWS; r++) /* few distinct values: compressible */
        for (int c = 0; c < COLS; c++) x[r * COLS + c] = (float)((c + r) % 8 - 4) * 0.25f;
    const uint64_t dims[] = {ROWS, COLS};
    qfmt_tensor_desc d = desc("zstd.f32", QFMT_TYPE_F32, 2, dims);
    d.codec = QFMT_CODEC_ZSTD;
    d.zstd_level = 3;
    if (!v.what) check(&v, qfmt_writer_add_tensor(v.w, &d, x, sizeof x, &v.e), "zstd.f32");
    return vec_end(&v);
}

/* The f32 source of quant.qfmt: 2 rows of 64 values, four blocks of 32. */
static void quant_source(float x[128])
{
    /* Block 0 (row 0, columns 0-31): the spec's worked block example, k/32. */
    static const int k[32] = {4,  -17, 31, -34, 11, 0,  -8,  23, 47,  -28, 2,  -13, 19,  -1, 9,   -21,
                              29, -5,  14, -38, 3,  16, -10, 6,  -25, 33,  -3, 12,  -19, 27, -14, 7};
    for (int j = 0; j < 32; j++) x[j] = (float)k[j] / 32.0f;
    /* Block 1 (row 0, columns 32-63): all positive, so min > 0 (q4_1's m > 0, z = 0). */
    for (int j = 0; j < 32; j++) x[32 + j] = 0.25f + (float)j / 64.0f;
    /* Block 2 (row 1, columns 0-31): all zero. */
    for (int j = 0; j < 32; j++) x[64 + j] = 0.0f;
    /* Block 3 (row 1, columns 32-63): small values and one outlier. */
    for (int j = 0; j < 32; j++) x[96 + j] = (float)(j % 5 - 2) / 128.0f;
    x[96 + 7] = -100.0f;
}

static int make_quant(void)
{
    vec v;
    if (vec_begin(&v, "quant.qfmt", 0)) return 1;
    float x[128];
    quant_source(x);
    const uint64_t dims[] = {2, 64};
    tensor(&v, "source", QFMT_TYPE_F32, 2, dims, x, sizeof x);
    static const uint32_t types[] = {QFMT_TYPE_Q8_0, QFMT_TYPE_Q4_0, QFMT_TYPE_Q4_1,
                                     QFMT_TYPE_Q8_Z, QFMT_TYPE_Q4_Z};
    qfmt_quant_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 1;
    o.quality = QFMT_QUALITY_REFERENCE;
    o.kernel = QFMT_KERNEL_SCALAR;
    for (size_t t = 0; t < sizeof types / sizeof types[0] && !v.what; t++) {
        const qfmt_type_traits *tt = qfmt_type_get_traits(types[t]);
        uint8_t q[4 * 35];
        uint64_t size = 4u * tt->block_bytes;
        check(&v, qfmt_quantize(types[t], q, size, QFMT_TYPE_F32, x, 2, 64, &o, &v.e), tt->name);
        tensor(&v, tt->name, types[t], 2, dims, q, size);
    }
    return vec_end(&v);
}

static int make_align256(void)
{
    vec v;
    if (vec_begin(&v, "align256.qfmt", 256)) return 1;
    const float a[3] = {1.0f, 2.0f, 3.0f}, bf[2] = {-1.0f, 0.25f};
    uint16_t b[2];
    f32_to(QFMT_TYPE_F16, bf, b, 2);
    const uint64_t d3[] = {3}, d2[] = {2};
    check(&v, qfmt_writer_set_string(v.w, "general.name", "aligned", 7, &v.e), "general.name");
    tensor(&v, "a", QFMT_TYPE_F32, 1, d3, a, sizeof a);
    tensor(&v, "b", QFMT_TYPE_F16, 1, d2, b, sizeof b);
    return vec_end(&v);
}

int main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: make_spec_vectors OUT_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    int rc = make_minimal();
    rc |= make_example();
    rc |= make_floats();
    rc |= make_ints();
    rc |= make_zstd();
    rc |= make_quant();
    rc |= make_align256();
    return rc;
}
