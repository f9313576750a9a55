/*
 * gguf_model.h - what GGUF import (gguf_import.c) and export (gguf_export.c) share: the mapping
 * between qfmt's model.* keys and llama.cpp's {arch}.* keys (gguf_keys.c, as
 * convert_hf_to_gguf.py writes them per model class and llama.cpp's loader reads them), and the
 * tensor layouts llama.cpp uses (the llama architecture's q/k row permutation, Gemma's 1 + w
 * norms). Internal: not in the public header.
 */
#ifndef QFMT_MODEL_GGUF_MODEL_H
#define QFMT_MODEL_GGUF_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "family.h"
#include "qfmt.h"
#include "qfmt_model.h"

/* A model as both directions see it. */
typedef struct {
    const qfmt_family *fam;
    char arch[32];    /* llama.cpp's general.architecture */
    uint64_t vocab;   /* rows of the token embedding */
    uint64_t d, layers, heads, kv_heads, head_dim;
    bool permute;     /* the llama architecture: q/k rows permuted (LlamaModel.permute) */
    bool norm_shift;  /* Gemma: norms stored as 1 + w */
} qfmt__gguf_model;

typedef void (*qfmt__gguf_warn_fn)(void *ctx, const char *message);

/* ---- Import ------------------------------------------------------------------------------- */

/* The family of a GGUF file (general.architecture; llama with a sliding window: mistral) and its
 * shape from the keys and the token embedding. QFMT_E_UNSUPPORTED (architecture, mixture of
 * experts, per-layer head counts), QFMT_E_NOT_FOUND / QFMT_E_CORRUPT naming the key. */
qfmt_status qfmt__gguf_import_model(const qfmt_gguf *g, const char *path, qfmt__gguf_model *m, qfmt_error *err);

/* Writes general.architecture and the model.* keys for g to w; consumed[i] is set for every kv
 * pair i the mapping used (the caller keeps the others as source.gguf.*). Reads the RoPE factor
 * tensors (rope_freqs, rope_factors_long/short) too. */
qfmt_status qfmt__gguf_import_meta(const qfmt_gguf *g, const char *path, const qfmt__gguf_model *m,
                                   qfmt_writer *w, uint8_t *consumed, qfmt__gguf_warn_fn warn, void *ctx,
                                   qfmt_error *err);

/* Tensors llama.cpp derives from the config, which the import turns back into keys. */
bool qfmt__gguf_is_rope_tensor(const char *gguf_name);

/* ---- Export ------------------------------------------------------------------------------- */

/* The family and shape of the model in r (general.architecture, model.*), for the families
 * llama.cpp runs. vocab: rows of the token embedding tensor. */
qfmt_status qfmt__gguf_export_model(const qfmt_reader *r, qfmt__gguf_model *m, qfmt_error *err);

/* Tensors the export adds (llama.cpp's RoPE factors), f32, owned. */
typedef struct {
    char name[32];
    float *data;
    uint64_t n;
} qfmt__gguf_extra;

typedef struct {
    qfmt__gguf_extra extra[2];
    size_t nextra;
} qfmt__gguf_extras;
void qfmt__gguf_extras_free(qfmt__gguf_extras *x);

/* Writes llama.cpp's {arch}.* keys (and qfmt.* where they cannot say what model.* does) for the
 * model in r, in convert_hf_to_gguf.py's order; fills *x with the RoPE factor tensors to add.
 * QFMT_E_UNSUPPORTED for a RoPE llama.cpp's architecture cannot express. */
qfmt_status qfmt__gguf_export_meta(const qfmt_reader *r, const qfmt__gguf_model *m, qfmt_gguf_writer *w,
                                   qfmt__gguf_extras *x, qfmt__gguf_warn_fn warn, void *ctx, qfmt_error *err);

/* llama.cpp's LLAMA_FTYPE_* for a mix name (qfmt_convert_mix's), or for a tensor type (the
 * dominant type of the linear weights; the K types give their _M mix); UINT32_MAX: none. */
uint32_t qfmt__gguf_ftype_of_mix(const char *mix);
uint32_t qfmt__gguf_ftype_of_type(uint32_t type);
/* The default type of a LLAMA_FTYPE_* (the type its linear weights mostly take); UINT32_MAX. */
uint32_t qfmt__gguf_ftype_type(uint32_t ftype);

/* ---- Layouts ------------------------------------------------------------------------------ */

/* convert_hf_to_gguf.py's LlamaModel.permute on whole rows (row_bytes each): with n_head heads
 * of rows / n_head rows, Hugging Face row h*hd + s*hd/2 + j is GGUF row h*hd + 2j + s. to_gguf:
 * HF -> GGUF; else the inverse. rows must be a multiple of 2 * n_head. */
void qfmt__gguf_permute_rows(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t row_bytes, uint64_t n_head,
                             bool to_gguf);

/* The number of heads whose rows the permutation groups for HF tensor `hf_name` (q: heads; k:
 * kv_heads), or 0 when the tensor is not permuted. */
uint64_t qfmt__gguf_permute_heads(const qfmt__gguf_model *m, const char *hf_name);

/* Whether HF tensor `hf_name` is a norm weight llama.cpp stores as 1 + w (Gemma). */
bool qfmt__gguf_shifted_norm(const qfmt__gguf_model *m, const char *hf_name);

/* A float as the shortest decimal that reads back as the same f32, as a double ("1e-05" for
 * f32(1e-5)): what Hugging Face's config held, for values llama.cpp stores as f32. */
double qfmt__gguf_f32_decimal(float v);

#endif
