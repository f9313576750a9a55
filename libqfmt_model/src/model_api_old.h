/*
 * model.h - the reference forward pass of qfmt run / qfmt eval: GPT-2, LLaMA and BERT, straight
 * from a .qfmt file. Every hyperparameter comes from the file's model.* metadata and every
 * weight from its tensors, used in place (zero-copy) when uncompressed.
 *
 * Two matrix-product paths: exact (each weight row decoded to fp32 on the fly, fp32 products)
 * reproduces transformers on the dequantized weights; fast (activations quantized to 8-bit
 * blocks, exact integer dot products against every block type, F16/BF16 rows read directly)
 * is what a runtime would ship. For block types the fast path's kernels (runtime/gemm.h:
 * scalar, AVX2, AVX-512 VNNI) give the same bits whatever the CPU, the thread count or how a
 * sequence is split into calls, so incremental decoding reproduces a whole-sequence pass
 * exactly; F16/BF16 weights take a one-row dot for one token and 4-row tiles for more, which
 * round differently (within fp32 noise).
 */
#ifndef QFMT_RUNTIME_MODEL_H
#define QFMT_RUNTIME_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qfmt.h"

typedef enum { QFMT_ARCH_GPT2, QFMT_ARCH_LLAMA, QFMT_ARCH_BERT } qfmt_arch;

typedef struct qfmt_model qfmt_model;

typedef struct {
    qfmt_arch arch;
    uint64_t vocab, d, layers, heads, kv_heads, head_dim, ffn, ctx, type_vocab;
    double eps, rope_theta;
    uint32_t rope_freq_type; /* F32, or the checkpoint's BF16/F16 (model.dtype): see forward.c */
    bool causal;
} qfmt_model_hparams;

/* Loads the model held by an open reader (which must outlive the model). On failure returns
 * non-zero with a one-line reason in msg naming the tensor or key at fault. */
int qfmt_model_load(qfmt_model **out, const qfmt_reader *r, char *msg, size_t cap);
void qfmt_model_free(qfmt_model *m);
const qfmt_model_hparams *qfmt_model_hparams_get(const qfmt_model *m);

typedef struct {
    unsigned threads; /* 0 or 1: one */
    bool exact;       /* the exact path; else the fast one */
} qfmt_run_opts;

/* Runs ids[0..T) from an empty context (BERT: bidirectional, token type 0). logits: T x vocab
 * or NULL; hidden: NULL or (layers + 1) buffers of T x d, filled with the embedding output,
 * each layer's output, the last with the final norm applied (GPT-2/LLaMA), as transformers
 * reports hidden states. Returns non-zero with msg on bad input (token id out of range, T past
 * the context). */
int qfmt_model_forward(qfmt_model *m, const int32_t *ids, size_t T, float *logits, float **hidden,
                       const qfmt_run_opts *o, char *msg, size_t cap);

/* Incremental decoding for causal models, with a KV cache of `ctx` positions. */
typedef struct qfmt_session qfmt_session;
int qfmt_session_new(qfmt_session **out, qfmt_model *m, char *msg, size_t cap);
void qfmt_session_free(qfmt_session *s);
/* Appends ids[0..n) after the cached positions; writes the logits of the last one (vocab
 * floats) to last_logits if not NULL. */
int qfmt_session_eval(qfmt_session *s, const int32_t *ids, size_t n, float *last_logits,
                      const qfmt_run_opts *o, char *msg, size_t cap);
size_t qfmt_session_pos(const qfmt_session *s);

#endif
