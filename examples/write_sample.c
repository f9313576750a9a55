/*
 * write_sample.c - writes a small but representative qfmt model file with the public API.
 *
 *     write_sample OUT.qfmt
 *
 * Metadata: the architecture string, a few hyperparameters (u32, f32, bool) and a string
 * array (a toy vocabulary). Tensors: F32, F16 and BF16 weights (the 16-bit ones converted
 * from deterministic f32 values with qfmt_convert_floats), a 0-dim scalar, an empty tensor and
 * a zstd-compressed tensor. The file is written atomically: OUT.qfmt appears only when complete.
 * Then the file is reopened and its tensor table printed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt.h"

enum { VOCAB = 8, EMBED = 16, FFN = 32 };

/* Deterministic values in about [-scale, scale): a 32-bit LCG, so every run writes the same
 * bytes (no libm, no rand()). */
static void fill_values(float *v, size_t n, uint32_t seed, float scale)
{
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        v[i] = ((float)(x >> 8) / 16777216.0f * 2.0f - 1.0f) * scale;
    }
}

static int fail(const char *what, const qfmt_error *e)
{
    char buf[1024];
    fprintf(stderr, "write_sample: %s: %s\n", what, qfmt_error_format(e, buf, sizeof buf));
    return 1;
}

static qfmt_tensor_desc desc2(const char *name, uint32_t type, uint64_t d0, uint64_t d1)
{
    qfmt_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.type = type;
    d.ndim = 2;
    d.dims[0] = d0;
    d.dims[1] = d1;
    d.codec = QFMT_CODEC_NONE;
    return d;
}

/* Writes the file; returns 0 or 1 (message printed). */
static int write_model(const char *path)
{
    qfmt_writer *w = NULL;
    qfmt_error e;
    qfmt_write_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.alignment = QFMT_DEFAULT_ALIGNMENT;
    if (qfmt_writer_create(&w, path, &opts, &e) != QFMT_OK)
        return fail("create", &e);

    /* Metadata: set in any order; the file stores the keys sorted. */
    static const char *const tokens[VOCAB] = {"<unk>", "<s>", "</s>", "hello", "world",
                                              "qfmt", "\xc3\xa9t\xc3\xa9", " "};
    static const char arch[] = "sample";
    if (qfmt_writer_set_string(w, "general.architecture", arch, strlen(arch), &e) != QFMT_OK ||
        qfmt_writer_set_string(w, "general.name", "qfmt sample model", 17, &e) != QFMT_OK ||
        qfmt_writer_set_u32(w, "sample.embedding_length", EMBED, &e) != QFMT_OK ||
        qfmt_writer_set_u32(w, "sample.feed_forward_length", FFN, &e) != QFMT_OK ||
        qfmt_writer_set_u32(w, "sample.vocab_size", VOCAB, &e) != QFMT_OK ||
        qfmt_writer_set_f32(w, "sample.norm_epsilon", 1e-5f, &e) != QFMT_OK ||
        qfmt_writer_set_bool(w, "sample.tie_embeddings", false, &e) != QFMT_OK ||
        qfmt_writer_set_string_array(w, "tokenizer.tokens", tokens, NULL, VOCAB, &e) != QFMT_OK) {
        qfmt_writer_free(w);
        return fail("metadata", &e);
    }

    float emb[VOCAB * EMBED], up[FFN * EMBED], down[EMBED * FFN];
    uint16_t up_f16[FFN * EMBED], down_bf16[EMBED * FFN];
    fill_values(emb, VOCAB * EMBED, 1, 1.0f);
    fill_values(up, FFN * EMBED, 2, 0.25f);
    fill_values(down, EMBED * FFN, 3, 0.25f);
    if (qfmt_convert_floats(QFMT_TYPE_F32, up, QFMT_TYPE_F16, up_f16, FFN * EMBED) != QFMT_OK ||
        qfmt_convert_floats(QFMT_TYPE_F32, down, QFMT_TYPE_BF16, down_bf16, EMBED * FFN) != QFMT_OK) {
        fprintf(stderr, "write_sample: float conversion failed\n");
        qfmt_writer_free(w);
        return 1;
    }
    /* An output projection with few distinct values: compressible, so zstd keeps it compressed
     * (the writer stores a tensor uncompressed when zstd does not make it smaller). */
    float out[VOCAB * EMBED];
    for (size_t i = 0; i < VOCAB * EMBED; i++)
        out[i] = (float)((int)(i % 5) - 2) * 0.125f;
    float scale = 0.5f;

    qfmt_tensor_desc d_emb = desc2("token_embd.weight", QFMT_TYPE_F32, VOCAB, EMBED);
    qfmt_tensor_desc d_up = desc2("blk.0.ffn_up.weight", QFMT_TYPE_F16, FFN, EMBED);
    qfmt_tensor_desc d_down = desc2("blk.0.ffn_down.weight", QFMT_TYPE_BF16, EMBED, FFN);
    qfmt_tensor_desc d_scale = desc2("blk.0.attn_scale", QFMT_TYPE_F32, 0, 0);
    d_scale.ndim = 0; /* a scalar: one element, no dimensions */
    qfmt_tensor_desc d_empty = desc2("blk.0.unused_bias", QFMT_TYPE_F32, 0, EMBED); /* 0 elements */
    qfmt_tensor_desc d_out = desc2("output.weight", QFMT_TYPE_F32, VOCAB, EMBED);
    d_out.codec = QFMT_CODEC_ZSTD;
    d_out.zstd_level = 3;

    if (qfmt_writer_add_tensor(w, &d_emb, emb, sizeof emb, &e) != QFMT_OK ||
        qfmt_writer_add_tensor(w, &d_up, up_f16, sizeof up_f16, &e) != QFMT_OK ||
        qfmt_writer_add_tensor(w, &d_down, down_bf16, sizeof down_bf16, &e) != QFMT_OK ||
        qfmt_writer_add_tensor(w, &d_scale, &scale, sizeof scale, &e) != QFMT_OK ||
        qfmt_writer_add_tensor(w, &d_empty, NULL, 0, &e) != QFMT_OK ||
        qfmt_writer_add_tensor(w, &d_out, out, sizeof out, &e) != QFMT_OK) {
        qfmt_writer_free(w);
        return fail("tensor", &e);
    }
    qfmt_status s = qfmt_writer_finish(w, &e); /* fsync, rename over `path`, fsync the dir */
    qfmt_writer_free(w);
    if (s != QFMT_OK)
        return fail("finish", &e);
    return 0;
}

/* Reopens the file and prints what it holds. */
static int print_summary(const char *path)
{
    qfmt_reader *r = NULL;
    qfmt_error e;
    if (qfmt_reader_open(&r, path, NULL, &e) != QFMT_OK)
        return fail("reopen", &e);
    qfmt_file_info fi;
    qfmt_reader_file_info(r, &fi);
    printf("wrote %s: %" PRIu64 " bytes, format %u.%u, alignment %" PRIu32 ", %" PRIu64
           " metadata entries, %" PRIu64 " tensors\n",
           path, fi.file_size, (unsigned)fi.version_major, (unsigned)fi.version_minor,
           fi.alignment, fi.metadata_count, fi.tensor_count);
    for (uint64_t i = 0; i < qfmt_tensor_count(r); i++) {
        qfmt_tensor_info ti;
        if (qfmt_tensor_get_info(r, i, &ti, &e) != QFMT_OK) {
            qfmt_reader_close(r);
            return fail("tensor info", &e);
        }
        const qfmt_type_traits *t = qfmt_type_get_traits(ti.type);
        printf("  %-22s %-5s ndim %" PRIu32 " %6" PRIu64 " elements  %5" PRIu64
               " bytes%s (%" PRIu64 " stored) at %" PRIu64 "\n",
               ti.name, t ? t->name : "?", ti.ndim, ti.nelements, ti.raw_size,
               ti.codec == QFMT_CODEC_ZSTD ? ", zstd" : "", ti.stored_size, ti.offset);
    }
    qfmt_status s = qfmt_reader_verify(r, 1, &e);
    qfmt_reader_close(r);
    if (s != QFMT_OK)
        return fail("verify", &e);
    printf("all checksums verified\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: write_sample OUT.qfmt\n");
        return 2;
    }
    int rc = write_model(argv[1]);
    return rc != 0 ? rc : print_summary(argv[1]);
}
