/*
 * gen_fuzz_seeds.c - writes the seed corpus of the reader fuzz target (fuzz/corpus/reader/).
 *
 *     gen_fuzz_seeds DIR
 *
 * Each seed is a small valid file (under 4 KB) covering one area of the format: every tensor
 * type (the block-quantized ones made with qfmt_quantize), 0-dim scalars and empty tensors, zstd (compressed, stored raw, streamed), metadata of
 * every type and arrays of every element type, alignments 32 and 64, long and non-ASCII names.
 * The last seed is patched after writing to hold what this writer never produces but a reader
 * must accept: an unknown tensor type, an unknown codec, an unknown metadata value type and an
 * array of an unknown element type (the index checksum is recomputed with xxHash, as the spec
 * describes). Two damaged copies of model.qf follow, so that a plain replay of the corpus also
 * runs the error paths: one with a tensor byte flipped (opens, fails verify) and one truncated
 * (fails to open). The output is deterministic: rerunning leaves the corpus unchanged.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qfmt.h"

/* Header-only use, for the patched seed's index checksum; nothing to link. */
#define XXH_INLINE_ALL
#include <xxhash.h>

static const char *out_dir;
static int nwritten;

static int report(const char *file, const char *what, const qfmt_error *e)
{
    char buf[1024];
    fprintf(stderr, "gen_fuzz_seeds: %s: %s: %s\n", file, what,
            e ? qfmt_error_format(e, buf, sizeof buf) : strerror(errno));
    return 1;
}

static qfmt_writer *create(const char *file, uint32_t alignment, char *path, size_t path_size)
{
    qfmt_writer *w = NULL;
    qfmt_error e;
    qfmt_write_opts o;
    memset(&o, 0, sizeof o);
    o.alignment = alignment;
    o.no_fsync = true; /* scratch output, regenerated at will */
    snprintf(path, path_size, "%s/%s", out_dir, file);
    if (qfmt_writer_create(&w, path, &o, &e) != QFMT_OK) {
        report(file, "create", &e);
        return NULL;
    }
    return w;
}

static int finish(qfmt_writer *w, const char *file, const qfmt_error *e, qfmt_status s)
{
    qfmt_error fe;
    if (s != QFMT_OK) {
        qfmt_writer_free(w);
        return report(file, "write", e);
    }
    s = qfmt_writer_finish(w, &fe);
    qfmt_writer_free(w);
    if (s != QFMT_OK)
        return report(file, "finish", &fe);
    nwritten++;
    return 0;
}

static qfmt_tensor_desc desc(const char *name, uint32_t type, uint32_t ndim, const uint64_t *dims)
{
    qfmt_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.type = type;
    d.ndim = ndim;
    for (uint32_t k = 0; k < ndim; k++)
        d.dims[k] = dims[k];
    return d;
}

/* Adds a tensor of `type` and dims, its bytes taken from `data` (size computed). */
static qfmt_status add(qfmt_writer *w, const char *name, uint32_t type, uint32_t ndim,
                       const uint64_t *dims, uint32_t codec, const void *data, qfmt_error *e)
{
    qfmt_tensor_desc d = desc(name, type, ndim, dims);
    uint64_t n = 1, size = 0;
    for (uint32_t k = 0; k < ndim; k++)
        n *= dims[k];
    d.codec = codec;
    d.zstd_level = 1;
    qfmt_status s = qfmt_type_size(type, n, &size);
    if (s != QFMT_OK)
        return s;
    return qfmt_writer_add_tensor(w, &d, data, size, e);
}

/* ---- Seeds -------------------------------------------------------------------------------- */

static int seed_empty(void)
{
    char path[4096];
    qfmt_writer *w = create("empty.qf", 32, path, sizeof path);
    qfmt_error e;
    return w ? finish(w, "empty.qf", &e, QFMT_OK) : 1;
}

static int seed_meta_scalars(void)
{
    const char *f = "meta_scalars.qf";
    char path[4096];
    qfmt_writer *w = create(f, 64, path, sizeof path);
    if (w == NULL)
        return 1;
    qfmt_error e;
    qfmt_value v;
    qfmt_status s = QFMT_OK;
    memset(&v, 0, sizeof v);
    v.type = QFMT_META_U8, v.v.u = 200;
    s = s ? s : qfmt_writer_set_value(w, "t.u8", &v, &e);
    v.type = QFMT_META_I8, v.v.i = -100;
    s = s ? s : qfmt_writer_set_value(w, "t.i8", &v, &e);
    v.type = QFMT_META_U16, v.v.u = 60000;
    s = s ? s : qfmt_writer_set_value(w, "t.u16", &v, &e);
    v.type = QFMT_META_I16, v.v.i = -30000;
    s = s ? s : qfmt_writer_set_value(w, "t.i16", &v, &e);
    v.type = QFMT_META_I32, v.v.i = -2000000000;
    s = s ? s : qfmt_writer_set_value(w, "t.i32", &v, &e);
    s = s ? s : qfmt_writer_set_u32(w, "t.u32", 4000000000u, &e);
    s = s ? s : qfmt_writer_set_u64(w, "t.u64", UINT64_MAX, &e);
    s = s ? s : qfmt_writer_set_i64(w, "t.i64", INT64_MIN, &e);
    s = s ? s : qfmt_writer_set_f32(w, "t.f32", -1.5f, &e);
    s = s ? s : qfmt_writer_set_f32(w, "t.f32_nan", NAN, &e);
    s = s ? s : qfmt_writer_set_f64(w, "t.f64", 3.141592653589793, &e);
    s = s ? s : qfmt_writer_set_f64(w, "t.f64_inf", -INFINITY, &e);
    s = s ? s : qfmt_writer_set_bool(w, "t.bool_false", false, &e);
    s = s ? s : qfmt_writer_set_bool(w, "t.bool_true", true, &e);
    s = s ? s : qfmt_writer_set_string(w, "t.string", "hello, qfmt", 11, &e);
    s = s ? s : qfmt_writer_set_string(w, "t.string_empty", "", 0, &e);
    s = s ? s : qfmt_writer_set_string(w, "t.string_nul", "a\0b", 3, &e);
    s = s ? s : qfmt_writer_set_string(w, "general.architecture", "seed", 4, &e);
    return finish(w, f, &e, s);
}

static int seed_meta_arrays(void)
{
    const char *f = "meta_arrays.qf";
    char path[4096];
    qfmt_writer *w = create(f, 32, path, sizeof path);
    if (w == NULL)
        return 1;
    static const uint8_t u8[] = {0, 1, 255};
    static const int8_t i8[] = {-128, 0, 127};
    static const uint16_t u16[] = {0, 65535};
    static const int16_t i16[] = {-32768, 32767};
    static const uint32_t u32[] = {1, 2, 3, 4294967295u};
    static const int32_t i32[] = {-1, 0, 1};
    static const uint64_t u64[] = {0, UINT64_MAX};
    static const int64_t i64[] = {INT64_MIN, -1, INT64_MAX};
    static const float f32[] = {0.5f, -0.0f, 1e-40f};
    static const double f64[] = {1e300, -2.5};
    static const bool b[] = {true, false, true};
    static const char *const strs[] = {"<unk>", "", "\xe2\x96\x81the", "a\nb"};
    static const size_t lens[] = {5, 0, 6, 3};
    qfmt_error e;
    qfmt_status s = QFMT_OK;
    s = s ? s : qfmt_writer_set_array(w, "a.u8", QFMT_META_U8, u8, 3, &e);
    s = s ? s : qfmt_writer_set_array(w, "a.i8", QFMT_META_I8, i8, 3, &e);
    s = s ? s : qfmt_writer_set_array(w, "a.u16", QFMT_META_U16, u16, 2, &e);
    s = s ? s : qfmt_writer_set_array(w, "a.i16", QFMT_META_I16, i16, 2, &e);
    s = s ? s : qfmt_writer_set_array(w, "a.u32", QFMT_META_U32, u32, 4, &e);
    s = s ? s : qfmt_writer_set_array(w, "a.i32", QFMT_META_I32, i32, 3, &e);
    s = s ? s : qfmt_writer_set_array(w, "a.u64", QFMT_META_U64, u64, 2, &e);
    s = s ? s : qfmt_writer_set_array(w, "a.i64", QFMT_META_I64, i64, 3, &e);
    s = s ? s : qfmt_writer_set_array(w, "a.f32", QFMT_META_F32, f32, 3, &e);
    s = s ? s : qfmt_writer_set_array(w, "a.f64", QFMT_META_F64, f64, 2, &e);
    s = s ? s : qfmt_writer_set_array(w, "a.bool", QFMT_META_BOOL, b, 3, &e);
    s = s ? s : qfmt_writer_set_array(w, "a.empty", QFMT_META_U32, u32, 0, &e);
    s = s ? s : qfmt_writer_set_string_array(w, "a.string", strs, lens, 4, &e);
    s = s ? s : qfmt_writer_set_string_array(w, "a.string_nul_terminated", strs, NULL, 3, &e);
    s = s ? s : qfmt_writer_set_string_array(w, "a.string_empty", strs, NULL, 0, &e);
    return finish(w, f, &e, s);
}

static int seed_float_tensors(void)
{
    const char *f = "float_tensors.qf";
    char path[4096];
    qfmt_writer *w = create(f, 32, path, sizeof path);
    if (w == NULL)
        return 1;
    const float f32[6] = {0.0f, -0.0f, 1.0f, -1.5f, INFINITY, NAN};
    const float src[8] = {1.0f, -2.0f, 65504.0f, 1e-7f, 3.3e38f, -INFINITY, 0.1f, 6e-8f};
    const double f64[3] = {1.0, -1e-310, 2.5e300};
    uint16_t f16[8], bf16[8];
    qfmt_error e;
    qfmt_status s = QFMT_OK;
    s = s ? s : qfmt_convert_floats(QFMT_TYPE_F32, src, QFMT_TYPE_F16, f16, 8);
    s = s ? s : qfmt_convert_floats(QFMT_TYPE_F32, src, QFMT_TYPE_BF16, bf16, 8);
    s = s ? s : add(w, "f32", QFMT_TYPE_F32, 2, (const uint64_t[]){2, 3}, 0, f32, &e);
    s = s ? s : add(w, "f16", QFMT_TYPE_F16, 1, (const uint64_t[]){8}, 0, f16, &e);
    s = s ? s : add(w, "bf16", QFMT_TYPE_BF16, 2, (const uint64_t[]){2, 4}, 0, bf16, &e);
    s = s ? s : add(w, "f64", QFMT_TYPE_F64, 1, (const uint64_t[]){3}, 0, f64, &e);
    return finish(w, f, &e, s);
}

static int seed_int_tensors(void)
{
    const char *f = "int_tensors.qf";
    char path[4096];
    qfmt_writer *w = create(f, 64, path, sizeof path);
    if (w == NULL)
        return 1;
    const int8_t i8[4] = {-128, -1, 0, 127};
    const int16_t i16[3] = {-32768, 7, 32767};
    const int32_t i32[2] = {INT32_MIN, INT32_MAX};
    const int64_t i64[2] = {INT64_MIN, 42};
    const uint8_t u8[5] = {0, 1, 2, 254, 255};
    const uint8_t b[3] = {1, 0, 1};
    qfmt_error e;
    qfmt_status s = QFMT_OK;
    s = s ? s : add(w, "i8", QFMT_TYPE_I8, 2, (const uint64_t[]){2, 2}, 0, i8, &e);
    s = s ? s : add(w, "i16", QFMT_TYPE_I16, 1, (const uint64_t[]){3}, 0, i16, &e);
    s = s ? s : add(w, "i32", QFMT_TYPE_I32, 1, (const uint64_t[]){2}, 0, i32, &e);
    s = s ? s : add(w, "i64", QFMT_TYPE_I64, 1, (const uint64_t[]){2}, 0, i64, &e);
    s = s ? s : add(w, "u8", QFMT_TYPE_U8, 1, (const uint64_t[]){5}, 0, u8, &e);
    s = s ? s : add(w, "bool", QFMT_TYPE_BOOL, 1, (const uint64_t[]){3}, 0, b, &e);
    return finish(w, f, &e, s);
}

/* Every block-quantized type, two rows of two blocks, quantized from deterministic values. */
static int seed_quant_types(void)
{
    const char *f = "quant_types.qf";
    char path[4096];
    qfmt_writer *w = create(f, 32, path, sizeof path);
    if (w == NULL)
        return 1;
    enum { ROWS = 2, COLS = 2 * QFMT_BLOCK_ELEMS };
    static const struct { const char *name; uint32_t type; } types[] = {
        {"q8_0", QFMT_TYPE_Q8_0}, {"q4_0", QFMT_TYPE_Q4_0}, {"q4_1", QFMT_TYPE_Q4_1},
        {"q8_z", QFMT_TYPE_Q8_Z}, {"q4_z", QFMT_TYPE_Q4_Z},
    };
    float src[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++)
        src[i] = (float)((i * 29) % 23 - 11) / 8.0f + (i == 5 ? 40.0f : 0.0f); /* one outlier */
    uint8_t q[ROWS * COLS * 2];
    qfmt_error e;
    qfmt_status s = QFMT_OK;
    for (size_t k = 0; k < sizeof types / sizeof types[0] && s == QFMT_OK; k++) {
        uint64_t size = 0;
        s = qfmt_type_size(types[k].type, ROWS * COLS, &size);
        if (s == QFMT_OK && size > sizeof q)
            s = QFMT_E_RANGE;
        s = s ? s : qfmt_quantize(types[k].type, q, size, QFMT_TYPE_F32, src, ROWS, COLS, NULL, &e);
        s = s ? s : add(w, types[k].name, types[k].type, 2, (const uint64_t[]){ROWS, COLS},
                        k == 0 ? 1 : 0, q, &e);
    }
    return finish(w, f, &e, s);
}

static int seed_shapes(void)
{
    const char *f = "shapes.qf";
    char path[4096];
    qfmt_writer *w = create(f, 32, path, sizeof path);
    if (w == NULL)
        return 1;
    const float one = 1.0f, four[4] = {1, 2, 3, 4};
    qfmt_error e;
    qfmt_status s = QFMT_OK;
    s = s ? s : add(w, "scalar", QFMT_TYPE_F32, 0, NULL, 0, &one, &e);
    s = s ? s : add(w, "empty_1d", QFMT_TYPE_F32, 1, (const uint64_t[]){0}, 0, NULL, &e);
    s = s ? s : add(w, "empty_3d", QFMT_TYPE_F16, 3, (const uint64_t[]){3, 0, 2}, 0, NULL, &e);
    s = s ? s : add(w, "dims_8", QFMT_TYPE_F32, 8, (const uint64_t[]){1, 1, 1, 1, 1, 1, 2, 2}, 0,
                    four, &e);
    s = s ? s : add(w, "one", QFMT_TYPE_F32, 1, (const uint64_t[]){1}, 0, &one, &e);
    s = s ? s : add(w, "scalar_u8", QFMT_TYPE_U8, 0, NULL, 0, "\x07", &e);
    return finish(w, f, &e, s);
}

static int seed_zstd(void)
{
    const char *f = "zstd.qf";
    char path[4096];
    qfmt_writer *w = create(f, 64, path, sizeof path);
    if (w == NULL)
        return 1;
    float ramp[256];
    for (int i = 0; i < 256; i++)
        ramp[i] = (float)(i % 4);
    const uint8_t noise[16] = {0x9e, 0x37, 0x79, 0xb9, 0x7f, 0x4a, 0x7c, 0x15,
                               0xf3, 0x9c, 0xc0, 0x60, 0x5c, 0xed, 0xc8, 0x35};
    qfmt_error e;
    qfmt_status s = QFMT_OK;
    /* compressible: stays zstd */
    s = s ? s : add(w, "zstd.f32", QFMT_TYPE_F32, 2, (const uint64_t[]){16, 16}, 1, ramp, &e);
    /* incompressible: the writer stores it raw despite the zstd request */
    s = s ? s : add(w, "zstd.raw", QFMT_TYPE_U8, 1, (const uint64_t[]){16}, 1, noise, &e);
    /* streamed in pieces: kept compressed whatever the ratio */
    qfmt_tensor_desc d = desc("zstd.streamed", QFMT_TYPE_F16, 1, (const uint64_t[]){64});
    d.codec = QFMT_CODEC_ZSTD;
    d.zstd_level = 3;
    uint16_t half[64];
    s = s ? s : qfmt_convert_floats(QFMT_TYPE_F32, ramp, QFMT_TYPE_F16, half, 64);
    s = s ? s : qfmt_writer_begin_tensor(w, &d, &e);
    s = s ? s : qfmt_writer_append(w, half, 50, &e);
    s = s ? s : qfmt_writer_append(w, (const char *)half + 50, 78, &e);
    s = s ? s : qfmt_writer_end_tensor(w, &e);
    /* streamed uncompressed */
    d = desc("streamed.raw", QFMT_TYPE_I32, 1, (const uint64_t[]){4});
    s = s ? s : qfmt_writer_begin_tensor(w, &d, &e);
    s = s ? s : qfmt_writer_append(w, noise, 16, &e);
    s = s ? s : qfmt_writer_end_tensor(w, &e);
    return finish(w, f, &e, s);
}

static int seed_model(void)
{
    const char *f = "model.qf";
    char path[4096];
    qfmt_writer *w = create(f, 64, path, sizeof path);
    if (w == NULL)
        return 1;
    static const char *const vocab[] = {"<s>", "</s>", "a", "b", "ab", "ba"};
    float emb[6 * 8], norm[8], w1[8 * 8];
    for (int i = 0; i < 48; i++)
        emb[i] = (float)(i - 24) / 16.0f;
    for (int i = 0; i < 8; i++)
        norm[i] = 1.0f;
    for (int i = 0; i < 64; i++)
        w1[i] = (float)((i * 37) % 17 - 8) / 32.0f;
    uint16_t w1_f16[64], emb_bf16[48];
    qfmt_error e;
    qfmt_status s = QFMT_OK;
    s = s ? s : qfmt_writer_set_string(w, "general.architecture", "llama", 5, &e);
    s = s ? s : qfmt_writer_set_u32(w, "llama.block_count", 1, &e);
    s = s ? s : qfmt_writer_set_u32(w, "llama.embedding_length", 8, &e);
    s = s ? s : qfmt_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &e);
    s = s ? s : qfmt_writer_set_string_array(w, "tokenizer.ggml.tokens", vocab, NULL, 6, &e);
    s = s ? s : qfmt_convert_floats(QFMT_TYPE_F32, w1, QFMT_TYPE_F16, w1_f16, 64);
    s = s ? s : qfmt_convert_floats(QFMT_TYPE_F32, emb, QFMT_TYPE_BF16, emb_bf16, 48);
    s = s ? s : add(w, "token_embd.weight", QFMT_TYPE_BF16, 2, (const uint64_t[]){6, 8}, 0,
                    emb_bf16, &e);
    s = s ? s : add(w, "blk.0.attn_norm.weight", QFMT_TYPE_F32, 1, (const uint64_t[]){8}, 0,
                    norm, &e);
    s = s ? s : add(w, "blk.0.ffn_up.weight", QFMT_TYPE_F16, 2, (const uint64_t[]){8, 8}, 0,
                    w1_f16, &e);
    s = s ? s : add(w, "output.weight", QFMT_TYPE_F32, 2, (const uint64_t[]){6, 8}, 1, emb, &e);
    return finish(w, f, &e, s);
}

static int seed_many_tensors(void)
{
    const char *f = "many_tensors.qf";
    char path[4096];
    qfmt_writer *w = create(f, 32, path, sizeof path);
    if (w == NULL)
        return 1;
    qfmt_error e;
    qfmt_status s = QFMT_OK;
    for (int i = 0; i < 24 && s == QFMT_OK; i++) {
        char name[32];
        float v = (float)i;
        snprintf(name, sizeof name, "t%02d", i);
        s = add(w, name, QFMT_TYPE_F32, 1, (const uint64_t[]){1}, 0, &v, &e);
    }
    return finish(w, f, &e, s);
}

static int seed_names(void)
{
    const char *f = "names.qf";
    char path[4096];
    qfmt_writer *w = create(f, 32, path, sizeof path);
    if (w == NULL)
        return 1;
    char long_name[201], long_key[QFMT_MAX_KEY_LEN + 1];
    memset(long_name, 'n', 200);
    long_name[200] = '\0';
    memset(long_key, 'k', QFMT_MAX_KEY_LEN);
    long_key[QFMT_MAX_KEY_LEN] = '\0';
    const uint8_t b = 1;
    qfmt_error e;
    qfmt_status s = QFMT_OK;
    s = s ? s : qfmt_writer_set_string(w, long_key, "max key", 7, &e);
    s = s ? s : qfmt_writer_set_string(w, "\xe6\xa8\xa1\xe5\x9e\x8b.name", "\xf0\x9f\xa6\x99 \xc3\xa9", 7, &e);
    s = s ? s : qfmt_writer_set_string(w, "a", "first", 5, &e);
    s = s ? s : add(w, long_name, QFMT_TYPE_U8, 1, (const uint64_t[]){1}, 0, &b, &e);
    s = s ? s : add(w, "\xce\xb1.\xce\xb2", QFMT_TYPE_U8, 0, NULL, 0, &b, &e);
    s = s ? s : add(w, "x", QFMT_TYPE_BOOL, 0, NULL, 0, &b, &e);
    return finish(w, f, &e, s);
}

/* ---- The patched seed --------------------------------------------------------------------- */

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = (v << 8) | p[k];
    return v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

static void wr64(uint8_t *p, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

static int read_file(const char *path, uint8_t **data, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return -1;
    uint8_t *buf = malloc(1 << 16);
    size_t n = buf ? fread(buf, 1, 1 << 16, fp) : 0;
    int bad = ferror(fp) || !feof(fp) || buf == NULL;
    fclose(fp);
    if (bad) {
        free(buf);
        return -1;
    }
    *data = buf;
    *size = n;
    return 0;
}

static int write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *fp = fopen(path, "wb");
    if (fp == NULL)
        return -1;
    size_t n = fwrite(data, 1, size, fp);
    return (fclose(fp) != 0 || n != size) ? -1 : 0;
}

/* Writes a file, then gives its first tensor an unknown type (300), its second an unknown
 * codec (7), the entry "x.opaque" an unknown value type (13) and the array "x.opaque_array"
 * an unknown element type (14); fixes the index checksum. */
static int seed_unknown(void)
{
    const char *f = "unknown_types.qf";
    char path[4096];
    qfmt_writer *w = create(f, 32, path, sizeof path);
    if (w == NULL)
        return 1;
    const uint32_t u[2] = {7, 8};
    const uint8_t bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    qfmt_error e;
    qfmt_status s = QFMT_OK;
    s = s ? s : qfmt_writer_set_u32(w, "x.opaque", 0xdeadbeef, &e);
    s = s ? s : qfmt_writer_set_array(w, "x.opaque_array", QFMT_META_U32, u, 2, &e);
    s = s ? s : qfmt_writer_set_u32(w, "x.plain", 1, &e);
    s = s ? s : add(w, "unknown_type", QFMT_TYPE_U8, 1, (const uint64_t[]){8}, 0, bytes, &e);
    s = s ? s : add(w, "unknown_codec", QFMT_TYPE_U8, 1, (const uint64_t[]){8}, 0, bytes, &e);
    s = s ? s : add(w, "normal", QFMT_TYPE_U8, 1, (const uint64_t[]){8}, 0, bytes, &e);
    if (finish(w, f, &e, s) != 0)
        return 1;

    uint8_t *d = NULL;
    size_t n = 0;
    qfmt_reader *r = NULL;
    if (read_file(path, &d, &n) != 0)
        return report(f, "read back", NULL);
    if (qfmt_reader_open_memory(&r, d, n, NULL, &e) != QFMT_OK) {
        free(d);
        return report(f, "open", &e);
    }
    qfmt_file_info fi;
    qfmt_reader_file_info(r, &fi);
    qfmt_reader_close(r);

    /* metadata entries: Key_Length u64 | Key | Value_Type u32 | Value_Size u64 | Value */
    uint64_t p = fi.metadata_offset;
    for (uint64_t i = 0; i < fi.metadata_count; i++) {
        uint64_t klen = rd64(d + p);
        const char *key = (const char *)d + p + 8;
        uint8_t *type = d + p + 8 + klen;
        uint64_t vsize = rd64(type + 4);
        if (klen == 8 && memcmp(key, "x.opaque", 8) == 0)
            wr32(type, 13);
        if (klen == 14 && memcmp(key, "x.opaque_array", 14) == 0)
            wr32(type + 12, 14); /* Elem_Type, first field of the value */
        p += 8 + klen + 4 + 8 + vsize;
    }
    /* directory entries: Name_Length u64 | Name | Type u32 | Codec u32 | NDim u32 | ... */
    p = fi.directory_offset;
    for (uint64_t i = 0; i < fi.tensor_count && i < 2; i++) {
        uint64_t nlen = rd64(d + p);
        uint8_t *type = d + p + 8 + nlen;
        uint32_t ndim = (uint32_t)type[8] | (uint32_t)type[9] << 8;
        if (i == 0)
            wr32(type, 300);
        else
            wr32(type + 4, 7);
        p += 8 + nlen + 16 + 8ull * ndim + 32;
    }
    /* Index_Checksum: XXH3-64 of [Metadata_Offset, File_Size - 16), stored at File_Size - 16 */
    wr64(d + n - 16, XXH3_64bits(d + fi.metadata_offset, n - 16 - (size_t)fi.metadata_offset));

    int rc = 0;
    if (qfmt_reader_open_memory(&r, d, n, NULL, &e) != QFMT_OK)
        rc = report(f, "patched file does not open", &e);
    qfmt_reader_close(r);
    if (rc == 0 && write_file(path, d, n) != 0)
        rc = report(f, "write", NULL);
    free(d);
    return rc;
}

/* Damaged copies of model.qf (written before). */
static int seed_damaged(void)
{
    char src[4096], dst[4096];
    uint8_t *d = NULL;
    size_t n = 0;
    snprintf(src, sizeof src, "%s/model.qf", out_dir);
    if (read_file(src, &d, &n) != 0 || n < 200)
        return report("model.qf", "read back", NULL);
    int rc = 0;
    d[QFMT_DEFAULT_ALIGNMENT + 3] ^= 0x10; /* inside the first tensor's bytes */
    snprintf(dst, sizeof dst, "%s/bad_tensor_checksum.qf", out_dir);
    if (write_file(dst, d, n) != 0)
        rc = report("bad_tensor_checksum.qf", "write", NULL);
    d[QFMT_DEFAULT_ALIGNMENT + 3] ^= 0x10;
    snprintf(dst, sizeof dst, "%s/truncated.qf", out_dir);
    if (rc == 0 && write_file(dst, d, n * 2 / 3) != 0)
        rc = report("truncated.qf", "write", NULL);
    nwritten += rc == 0 ? 2 : 0;
    free(d);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_fuzz_seeds DIR\n");
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_fuzz_seeds: %s: %s\n", out_dir, strerror(errno));
        return 1;
    }
    int (*const seeds[])(void) = {
        seed_empty,    seed_meta_scalars, seed_meta_arrays,  seed_float_tensors,
        seed_int_tensors, seed_quant_types, seed_shapes,     seed_zstd,         seed_model,
        seed_many_tensors, seed_names,    seed_unknown,      seed_damaged,
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        failures += seeds[i]() != 0;
    printf("gen_fuzz_seeds: wrote %d seed files to %s\n", nwritten, out_dir);
    return failures ? 1 : 0;
}
