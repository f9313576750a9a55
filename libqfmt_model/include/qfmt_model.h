/*
 * qfmt_model.h - the one public header of libqfmt_model: models stored in qfmt files, run.
 *
 * libqfmt_model sits on libqfmt (qfmt.h) and uses only its public API. It holds the model
 * runtime: the forward pass of each supported model family, the tokenizer, and the thread
 * pool and kernels they run on. Link with `pkg-config --cflags --libs qfmt-model` or CMake's
 * find_package(qfmt) (targets qfmt::qfmt_model, qfmt::qfmt_model_static).
 *
 * Versions: libqfmt_model is released with libqfmt and carries its version (QFMT_VERSION_*,
 * qfmt_version_number()); a program must run against the libqfmt it was built with.
 *
 * Thread safety: no global mutable state. A tokenizer is immutable once loaded (any number of
 * threads may use it). A model is used by one thread at a time (a forward pass runs its own
 * worker threads); separate models, sessions and tokenizers never interfere. A model borrows
 * the reader it was loaded from, which must stay open until the model is freed.
 *
 * Errors: as in libqfmt, a function that can fail returns a qfmt_status (QFMT_OK = 0) and
 * fills an optional qfmt_error (NULL: none wanted) with the file, tensor and byte offset at
 * fault where they apply and a one-line message; print it with qfmt_error_format. Messages
 * never carry raw control characters from a file.
 *
 * ---- Models --------------------------------------------------------------------------------
 * The reference forward pass of qfmt run / qfmt eval: GPT-2, LLaMA and BERT, straight
 * from a .qfmt file. Every hyperparameter comes from the file's model.* metadata and every
 * weight from its tensors, used in place (zero-copy) when uncompressed.
 *
 * Two matrix-product paths: exact (each weight row decoded to fp32 on the fly, fp32 products)
 * reproduces transformers on the dequantized weights; fast (activations quantized to 8-bit
 * blocks, exact integer dot products against every block type, F16/BF16 rows read directly)
 * is what a runtime would ship. For block types the fast path's kernels (libqfmt_model/src/gemm.h:
 * scalar, AVX2, AVX-512 VNNI) give the same bits whatever the CPU, the thread count or how a
 * sequence is split into calls, so incremental decoding reproduces a whole-sequence pass
 * exactly; F16/BF16 weights take a one-row dot for one token and 4-row tiles for more, which
 * round differently (within fp32 noise).
 *
 * ---- Tokenizer -----------------------------------------------------------------------------
 * A byte-level BPE tokenizer (Hugging Face tokenizers compatible) for the qfmt
 * model runtime.
 *
 * Loads a tokenizer.json text (as embedded in a .qfmt file under the metadata key
 * "tokenizer.huggingface.json") and encodes / decodes exactly as Hugging Face `tokenizers`
 * does for the configurations it accepts:
 *
 *   model          "BPE" with vocab + merges (merges as "a b" strings or ["a", "b"] pairs),
 *                  merges applied by rank; dropout null or 0; byte_fallback false;
 *                  continuing_subword_prefix / end_of_word_suffix null or ""; unk_token,
 *                  fuse_unk and ignore_merges are implemented.
 *   normalizer     null only (or an empty "Sequence").
 *   pre_tokenizer  "ByteLevel" (add_prefix_space true/false, use_regex true/false), or a
 *                  "Sequence" of [Split(GPT-2 regex, "Isolated", invert false),
 *                  ByteLevel(add_prefix_space false, use_regex false)], or a Sequence of
 *                  just [ByteLevel].
 *   decoder        "ByteLevel".
 *   post_processor null or "ByteLevel" (which changes offsets only, never ids).
 *   added_tokens   matched in the text before pre-tokenization, leftmost-longest, first the
 *                  tokens with normalized=false then those with normalized=true on the rest
 *                  (as HF's AddedVocabulary does), honouring single_word, lstrip and rstrip.
 *   truncation / padding are ignored (transformers disables them unless a call asks).
 * Anything else is refused at load with a message naming it.
 *
 * The GPT-2 pre-tokenizer regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * runs with PCRE2 (UTF, Unicode properties, JIT when available). \s is spelled out as
 * Oniguruma's Unicode \s (what HF uses): U+0009-000D, U+0085 and the Z categories, i.e.
 * Unicode White_Space. Letter/number classes follow PCRE2's Unicode tables (Unicode 14 for
 * PCRE2 10.42), which may differ from HF's Oniguruma only for characters assigned since.
 *
 * Encoding is HF's `encode(text, add_special_tokens=False)`: no BOS/EOS, no post-processing.
 *
 * Invalid UTF-8 input (which HF cannot receive: Rust strings are valid UTF-8) is accepted and
 * encoded losslessly: PCRE2_MATCH_INVALID_UTF makes invalid sequences match nothing, and each
 * maximal run of bytes between regex matches becomes its own pre-token, mapped byte by byte
 * like any other text. decode(encode(x)) == x for every byte string x, provided every byte's
 * character is in the vocabulary (true of any byte-level BPE vocabulary) and no added token
 * has lstrip/rstrip (those swallow the whitespace next to them, as in HF).
 *
 * Decoding returns raw bytes (HF's ByteLevel decoder, without the final lossy UTF-8
 * conversion): a sequence of ids may end in the middle of a UTF-8 character.
 *
 * Thread safety: a loaded tokenizer is immutable; any number of threads may call encode /
 * decode on it concurrently. No global mutable state.
 */
#ifndef QFMT_MODEL_H
#define QFMT_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qfmt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Models ================================================================================ */

typedef enum { QFMT_ARCH_GPT2, QFMT_ARCH_LLAMA, QFMT_ARCH_BERT } qfmt_arch;

typedef struct qfmt_model qfmt_model;

typedef struct qfmt_family qfmt_family;

typedef struct {
    qfmt_arch arch;
    const qfmt_family *family;
    uint64_t vocab, d, layers, heads, kv_heads, head_dim, ffn, ctx, type_vocab;
    double eps, rope_theta;
    uint32_t rope_freq_type; /* F32, or the checkpoint's BF16/F16 (model.dtype): see forward.c */
    bool causal;
    uint64_t reserved[8]; /* zeroed by the library; zero where a caller passes hyperparameters in */
} qfmt_model_hparams;

/* Loads the model held by an open reader (which must outlive the model). Errors name the
 * tensor or metadata key at fault: QFMT_E_NOT_FOUND (a required tensor or key is missing),
 * QFMT_E_UNSUPPORTED (an architecture, option or tensor type the runtime lacks),
 * QFMT_E_CORRUPT (shapes or hyperparameters that do not describe a model), QFMT_E_NOMEM,
 * or the reader's error. */
QFMT_API qfmt_status qfmt_model_load(qfmt_model **out, const qfmt_reader *r, qfmt_error *err);
QFMT_API void qfmt_model_free(qfmt_model *m);
QFMT_API const qfmt_model_hparams *qfmt_model_hparams_get(const qfmt_model *m);
/* Bytes of weights the matrix products read per token (every layer's projections and the
 * output head; embeddings only gathered from are not counted): the memory traffic that bounds
 * generation speed. */
QFMT_API uint64_t qfmt_model_matmul_bytes(const qfmt_model *m);

typedef struct {
    unsigned threads;     /* 0 or 1: one */
    bool exact;           /* the exact path; else the fast one */
    uint64_t reserved[4]; /* zero (else QFMT_E_ARG) */
} qfmt_run_opts; /* NULL: one thread, the exact path */
#define QFMT_RUN_OPTS_INIT {1u, true, {0u, 0u, 0u, 0u}}

/* Runs ids[0..T) from an empty context (BERT: bidirectional, token type 0). logits: T x vocab
 * or NULL; hidden: NULL or (layers + 1) buffers of T x d, filled with the embedding output,
 * each layer's output, the last with the final norm applied (GPT-2/LLaMA), as transformers
 * reports hidden states. Returns non-zero with msg on bad input (token id out of range, T past
 * the context: QFMT_E_RANGE; no tokens: QFMT_E_ARG; QFMT_E_NOMEM). */
QFMT_API qfmt_status qfmt_model_forward(qfmt_model *m, const int32_t *ids, size_t T, float *logits,
                                        float **hidden, const qfmt_run_opts *o, qfmt_error *err);

/* Incremental decoding for causal models, with a KV cache of `ctx` positions
 * (QFMT_E_UNSUPPORTED for a bidirectional model, QFMT_E_NOMEM). */
typedef struct qfmt_session qfmt_session;
QFMT_API qfmt_status qfmt_session_new(qfmt_session **out, qfmt_model *m, qfmt_error *err);
QFMT_API void qfmt_session_free(qfmt_session *s);
/* Appends ids[0..n) after the cached positions; writes the logits of the last one (vocab
 * floats) to last_logits if not NULL. QFMT_E_RANGE: an id outside the vocabulary, or more
 * tokens than the context has room for (nothing is appended then). */
QFMT_API qfmt_status qfmt_session_eval(qfmt_session *s, const int32_t *ids, size_t n, float *last_logits,
                                       const qfmt_run_opts *o, qfmt_error *err);
QFMT_API size_t qfmt_session_pos(const qfmt_session *s);


/* ==== Sampling and perplexity ================================================================ */

/* Chooses next tokens from logits: greedy at temperature 0, else among the top_k most likely
 * at that temperature, with a seeded splitmix64 generator (the same seed, the same choices on
 * every machine). One sampler per sequence; not shared between threads. */
typedef struct qfmt_sampler qfmt_sampler;
typedef struct qfmt_candidate {
    float p; /* probability at the temperature given */
    int32_t id;
} qfmt_candidate;
/* QFMT_E_ARG: vocab 0 or above 2^30, temperature outside 0..100, top_k 0; QFMT_E_NOMEM. */
QFMT_API qfmt_status qfmt_sampler_new(qfmt_sampler **out, size_t vocab, double temperature, uint64_t top_k,
                                      uint64_t seed, qfmt_error *err);
QFMT_API void qfmt_sampler_free(qfmt_sampler *s); /* NULL is a no-op */
/* The next token for `logits` (vocab floats). */
QFMT_API int32_t qfmt_sampler_pick(qfmt_sampler *s, const float *logits);
/* The k most likely tokens at `temperature` (> 0), most likely first (ties: lower id first),
 * in *out (the sampler's storage, valid until its next call). Returns min(k, vocab). */
QFMT_API size_t qfmt_sampler_top(qfmt_sampler *s, const float *logits, size_t k, double temperature,
                                 const qfmt_candidate **out);

/* -log softmax(logits)[target] in double precision: one position's share of a perplexity,
 * exp(mean of these). target must be within 0..vocab-1. */
QFMT_API double qfmt_nll(const float *logits, size_t vocab, int32_t target);

/* KL divergence of a model's token distribution from a reference's (qfmt eval --kl-base; as
 * llama.cpp's llama-perplexity --kl-divergence): KL(P_ref || P) = sum_v p_ref(v) (log p_ref(v)
 * - log p(v)) over all vocab logits of each row, in nats, from log-softmax rows computed in
 * double after shifting by the row's maximum (any finite logits, however large). A -inf
 * reference logit contributes 0; a -inf logit where p_ref > 0 makes the result +inf; a row
 * holding NaN or +inf, or only -inf, gives NaN. Rounding below 0 is returned as 0, so
 * identical rows give exactly 0. same_top (NULL: not wanted): whether both argmaxes agree,
 * each the first index of its maximum. vocab must be at least 1. */
QFMT_API double qfmt_kl_divergence(const float *ref_logits, const float *logits, size_t vocab, bool *same_top);

/* Positions accumulated, one qfmt_kl_acc_add per scored position, into the figures of a
 * --kl-base eval. The accumulator keeps one double per position (for the quantiles), never the
 * logits. Not shared between threads. */
typedef struct qfmt_kl_acc qfmt_kl_acc;
typedef struct qfmt_kl_stats {
    uint64_t positions;    /* added */
    double mean;           /* mean KL(P_ref || P), nats */
    double p99, median;    /* nearest rank: the ceil(q n)-th smallest of the n KL values (q 0.99, 0.5) */
    double max;            /* largest KL */
    double same_top;       /* share of positions whose argmaxes agree, 0..1 */
    double perplexity;     /* exp(mean -log p(target)): the model's (qfmt_nll's, to the bit) */
    double ref_perplexity; /* the reference's */
    double ppl_ratio;      /* perplexity / ref_perplexity, as exp(mean difference of the nll) */
    uint64_t reserved[4];  /* zeroed */
} qfmt_kl_stats;
/* QFMT_E_ARG: vocab 0 or above 2^30; QFMT_E_NOMEM. */
QFMT_API qfmt_status qfmt_kl_acc_new(qfmt_kl_acc **out, size_t vocab, qfmt_error *err);
QFMT_API void qfmt_kl_acc_free(qfmt_kl_acc *a); /* NULL is a no-op */
/* One position: both models' logits rows (vocab floats each) and the token it scores.
 * QFMT_E_ARG (target outside 0..vocab-1), QFMT_E_NOMEM; nothing is added then. */
QFMT_API qfmt_status qfmt_kl_acc_add(qfmt_kl_acc *a, const float *ref_logits, const float *logits, int32_t target,
                                     qfmt_error *err);
/* The figures so far (NaN where no position was added; a NaN KL sorts last). Reorders the
 * stored values (which changes nothing else): more positions may be added afterwards. */
QFMT_API void qfmt_kl_acc_stats(qfmt_kl_acc *a, qfmt_kl_stats *out);

/* ==== Token ids in safetensors files ========================================================= */

/* Token ids read from an I32 or I64 safetensors tensor (qfmt eval --tokens, qfmt run --input:
 * what transformers' tokenizers save). */
typedef struct qfmt_token_ids {
    int32_t *ids;       /* count ids, each within 0..2^31-1; owned (qfmt_token_ids_free) */
    uint64_t count;     /* elements of the tensor */
    uint32_t ndim;      /* its shape, as stored */
    uint64_t dims[QFMT_MAX_DIMS];
    char name[128];     /* the tensor read, truncated */
    uint64_t reserved[4];
} qfmt_token_ids;
/* Reads tensor `name` of f - or, when absent and first_if_absent, f's first tensor - into
 * *out. QFMT_E_NOT_FOUND, QFMT_E_TYPE (not I32/I64), QFMT_E_RANGE (an id below 0 or above
 * 2^31-1: the message names its position and value), QFMT_E_NOMEM; *out is empty on failure. */
QFMT_API qfmt_status qfmt_token_ids_read(const qfmt_st_file *f, const char *name, bool first_if_absent,
                                         qfmt_token_ids *out, qfmt_error *err);
QFMT_API void qfmt_token_ids_free(qfmt_token_ids *t); /* empties *t; NULL is a no-op */

/* A position mask (qfmt eval --mask: which positions of each window a masked-LM eval masks
 * and scores): tensor `name` of f (or its first tensor, as above), U8 or BOOL, 2-D with
 * dims[1] == cols and dims[0] >= rows. Its first rows x cols bytes go to out (rows x cols
 * bytes, the caller's) as 0 or 1 (any non-zero byte: 1). QFMT_E_NOT_FOUND, QFMT_E_TYPE (not
 * U8/BOOL), QFMT_E_RANGE (another shape: the message gives the one found and the one needed), QFMT_E_ARG
 * (rows x cols overflows). */
QFMT_API qfmt_status qfmt_position_mask_read(const qfmt_st_file *f, const char *name, bool first_if_absent,
                                             uint64_t rows, uint64_t cols, uint8_t *out, qfmt_error *err);

/* ==== Importance matrices (calibration) ===================================================== */
/* For every matrix product with a stored weight: the sum over input rows of each input
 * column's squared activation (in_sum2) and the number of rows (counts), collected by running
 * the model over calibration text; saved and read as llama.cpp's imatrix GGUF (general.type
 * "imatrix", imatrix.datasets / chunk_count / chunk_size, tensors "<name>.in_sum2" F32
 * [cols, 1] and "<name>.counts" F32 [1, 1] under llama.cpp's tensor names), so files move both
 * ways between qfmt and llama.cpp's llama-imatrix / llama-quantize. Not thread-safe. */
typedef struct qfmt_imatrix qfmt_imatrix;
QFMT_API qfmt_status qfmt_imatrix_new(qfmt_imatrix **out, qfmt_error *err);
QFMT_API void qfmt_imatrix_free(qfmt_imatrix *im); /* NULL is a no-op */
/* One chunk: a forward pass of ids[0..n) from an empty context (n at most the model's
 * context), adding every product's input statistics; counts one chunk. */
QFMT_API qfmt_status qfmt_imatrix_collect(qfmt_imatrix *im, qfmt_model *m, const int32_t *ids, size_t n,
                                          const qfmt_run_opts *o, qfmt_error *err);
/* A name for imatrix.datasets (the calibration file). */
QFMT_API qfmt_status qfmt_imatrix_add_dataset(qfmt_imatrix *im, const char *name, qfmt_error *err);
QFMT_API size_t qfmt_imatrix_count(const qfmt_imatrix *im);
QFMT_API uint32_t qfmt_imatrix_chunks(const qfmt_imatrix *im);
/* Entry i: its name (llama.cpp's tensor name, or the stored name where llama.cpp has none),
 * columns and rows seen. Any out pointer may be NULL. QFMT_E_RANGE past the last. */
QFMT_API qfmt_status qfmt_imatrix_entry(const qfmt_imatrix *im, size_t i, const char **name, uint64_t *cols,
                                        double *count);
/* The importance of tensor `name` (a Hugging Face name of family f, mapped to llama.cpp's, or an
 * entry's own name) with `cols` columns: out[j] = in_sum2[j] / counts in fp32 as llama-quantize
 * computes it (1 for every column of an entry that saw no input). QFMT_E_NOT_FOUND: no entry;
 * QFMT_E_CORRUPT: another column count. */
QFMT_API qfmt_status qfmt_imatrix_importance(const qfmt_imatrix *im, const qfmt_family *f, const char *name,
                                             uint64_t cols, float *out, qfmt_error *err);
/* Writes the GGUF file atomically (entries sorted by name, as llama-imatrix does). */
QFMT_API qfmt_status qfmt_imatrix_save(const qfmt_imatrix *im, const char *path, qfmt_error *err);
/* Reads one (llama.cpp's or qfmt's): every "<name>.in_sum2" with its "<name>.counts", checked
 * (F32, shapes, finite and >= 0); statistics of several matrices per tensor (MoE experts) are
 * refused (QFMT_E_UNSUPPORTED). */
QFMT_API qfmt_status qfmt_imatrix_load(qfmt_imatrix **out, const char *path, qfmt_error *err);

/* ==== Model families ======================================================================== */

/* qfmt_family: a family (gpt2, llama, bert): its config.json keys, tensor names and shapes and
 * layout quirks, in one const table per family (libqfmt_model/src/families/). Immutable. */

/* The family of a general.architecture / config.json model_type of `len` bytes, or NULL. */
QFMT_API const qfmt_family *qfmt_family_find(const char *name, size_t len);
/* Family i of the registry (0, 1, ...), NULL past the last. */
QFMT_API const qfmt_family *qfmt_family_at(size_t i);
QFMT_API const char *qfmt_family_name(const qfmt_family *f);

/* Writes what a Hugging Face config.json says as qfmt metadata (general.architecture and
 * general.architectures, model.* hyperparameters under the family's key names and defaults,
 * RoPE, dtype, tie, special ids; spec: "Metadata keys"). An unknown model_type gets only the
 * keys every transformers config shares. QFMT_E_CORRUPT when the text is not a JSON object or
 * qfmt_json_check refuses it (err->path "config.json", err->offset the byte); the writer's
 * errors as they come. */
QFMT_API qfmt_status qfmt_family_config_to_meta(qfmt_writer *w, const char *config_json, size_t len,
                                                qfmt_error *err);

/* What convert needs to know of a tensor name (a bit set): */
#define QFMT_FAMILY_KNOWN 1u    /* a tensor of the family */
#define QFMT_FAMILY_QUANTIZE 2u /* a linear layer's weight: block-quantized by default */
#define QFMT_FAMILY_CONV1D 4u   /* stored [in, out] by Hugging Face (GPT-2 Conv1D): transposed */
/* The role of `name` in family f, or in any family when f is NULL (first that knows it). */
QFMT_API unsigned qfmt_family_tensor_role(const qfmt_family *f, const char *name);

/* One tensor of a model of the family, named and shaped as Hugging Face stores it. */
typedef struct qfmt_family_tensor {
    const char *name; /* valid during the callback only */
    uint32_t ndim;    /* 1 or 2 */
    uint64_t dims[2];
    bool optional; /* the model loads without it (optional biases, an untied head) */
    bool quantize; /* QFMT_FAMILY_QUANTIZE */
    bool conv1d;   /* QFMT_FAMILY_CONV1D: dims are [in, out] */
} qfmt_family_tensor;
typedef bool (*qfmt_family_tensor_fn)(void *ctx, const qfmt_family_tensor *t); /* false: stop */
/* Calls fn for every tensor a model of family f with hyperparameters h has: model-level ones
 * first, then layer by layer. For synthetic models (benchmarks, fuzzing) and checks. */
QFMT_API qfmt_status qfmt_family_tensors(const qfmt_family *f, const qfmt_model_hparams *h,
                                         qfmt_family_tensor_fn fn, void *ctx, qfmt_error *err);

/* llama.cpp's names (GGUF files, imatrix files). The architecture llama.cpp gives family f
 * (general.architecture: "llama" for mistral, "gemma3" for gemma3_text, else the family's name). */
QFMT_API const char *qfmt_family_gguf_arch(const qfmt_family *f);
/* The GGUF name of Hugging Face tensor `hf_name` of family f ("model.layers.3.self_attn.q_proj
 * .weight" -> "blk.3.attn_q.weight"), into out (cap bytes, NUL-terminated); QFMT_E_NOT_FOUND for
 * a tensor llama.cpp has no name for (BERT's MLM head) or the family does not know, QFMT_E_RANGE
 * when out is too small. qfmt_family_hf_name is the inverse. */
QFMT_API qfmt_status qfmt_family_gguf_name(const qfmt_family *f, const char *hf_name, char *out, size_t cap);
QFMT_API qfmt_status qfmt_family_hf_name(const qfmt_family *f, const char *gguf_name, char *out, size_t cap);

/* A config.json text (malloc'd, caller frees; NULL when out of memory) describing a model of
 * family f with hyperparameters h under the family's own key names: model_type, architectures,
 * sizes, norm eps, rope_theta (RoPE families), tie_word_embeddings = tied, torch_dtype from
 * h->rope_freq_type. For synthetic models; qfmt_family_config_to_meta reads it back to h. */
QFMT_API char *qfmt_family_config_json(const qfmt_family *f, const qfmt_model_hparams *h, bool tied);

/* ==== Converting Hugging Face checkpoints =================================================== */

/* What qfmt convert does, as a library call. Start from QFMT_CONVERT_OPTS_INIT. */
typedef struct qfmt_convert_opts {
    uint32_t type;        /* the target: QFMT_TYPE_F32 (default), F16, BF16 or a block type */
    qfmt_quality quality; /* block types: the reference quantizer (ggml's bytes) or BEST */
    int zstd_level;       /* 0: no compression; 1..22: zstd at that level where it saves space */
    unsigned threads;     /* quantization threads; 0 or 1: one */
    /* Globs (fnmatch) over tensor names: `keep` stay at their source type; `quantize` take the
     * target type where they can. Without either, a block target quantizes the 2-D weights of
     * linear layers whose rows hold whole blocks (the family tables say which tensors are
     * linear); embeddings, output heads, norms, biases and 1-D tensors keep their type. A
     * float target applies to every float tensor. */
    const char *const *keep;
    size_t nkeep;
    const char *const *quantize;
    size_t nquantize;
    /* Optional callbacks, NULL for none, called on the calling thread; ctx is theirs. */
    void (*progress)(void *ctx, uint64_t tensors_done, uint64_t tensors, uint64_t bytes_done,
                     uint64_t bytes);
    /* A tensor the options selected is stored as `stored` instead of the target type: its
     * source type, or for a K or iq4_xs target llama.cpp's fallback type; why (e.g. rows not
     * a multiple of the block size). */
    void (*note)(void *ctx, const char *tensor, uint32_t stored, const char *why);
    /* The temporary file being written (the path is valid during the call only: copy it),
     * then NULL once it is renamed or removed. For a signal handler that removes it. */
    void (*temp_file)(void *ctx, const char *path);
    /* A problem that does not stop the conversion, e.g. a tokenizer.json that qfmt's tokenizer
     * cannot reproduce exactly (the message names the component). */
    void (*warning)(void *ctx, const char *message);
    void *ctx;
    unsigned flags;       /* QFMT_CONVERT_STRICT_TOKENIZER */
    /* Per-tensor type choices beyond `type` (a llama.cpp mix, a recipe, a size target), or NULL. */
    const struct qfmt_convert_types *types;
    /* Optional: the importance (llama.cpp's imatrix: one value per column, in_sum2 / counts) of
     * tensor `tensor` (its source name; family f from config.json's model_type, or NULL) whose
     * stored rows hold row_len values: fill out[0..row_len) (finite, >= 0) and return QFMT_OK,
     * or QFMT_E_NOT_FOUND for none; any other status fails the conversion with *err. Called on
     * the calling thread, maybe more than once for a tensor (a size target measures its
     * candidates before the conversion; mix q2_k_s checks that every q2_k tensor has data).
     * Quantized tensors then use the weighted quantizers (qfmt_quant_opts.importance), a size
     * target weights its errors with it, and a mix takes llama.cpp's imatrix rules (its
     * has_imatrix: the callback is set). */
    qfmt_status (*importance)(void *ctx, const qfmt_family *f, const char *tensor, uint64_t row_len, float *out,
                              qfmt_error *err);
    uint64_t reserved[2]; /* zero */
} qfmt_convert_opts;
/* A tokenizer.json that qfmt cannot reproduce exactly fails the conversion (QFMT_E_UNSUPPORTED,
 * or the tokenizer's own error) instead of a warning; the file is embedded either way when
 * the conversion goes on. */
#define QFMT_CONVERT_STRICT_TOKENIZER 1u
#define QFMT_CONVERT_OPTS_INIT \
    {QFMT_TYPE_F32, QFMT_QUALITY_REFERENCE, 0, 1u, NULL, 0u, NULL, 0u, NULL, NULL, NULL, NULL, NULL, 0u, NULL, NULL, {0u, 0u}}

/* ---- Type mixes, recipes and size targets (spec: "Type mixes, recipes and size targets") ---- */

/* A recipe rule: tensors whose name matches `glob` (fnmatch(3), no flags) take `type`: F32, F16,
 * BF16, a block type (with llama.cpp's fallback for rows that hold no super-block; rows that
 * hold no block keep their type, with a note), or QFMT_CONVERT_KEEP (the source type). */
#define QFMT_CONVERT_KEEP UINT32_MAX
typedef struct qfmt_convert_rule {
    const char *glob;
    uint32_t type;
} qfmt_convert_rule;

/* Start from QFMT_CONVERT_TYPES_INIT. For each float tensor, in this order: a `keep` glob (of
 * qfmt_convert_opts) keeps its type; a `quantize` glob gives it the mix's default type (no
 * bumps), or makes it a size-target candidate, or (with neither) `type` as before; the first
 * matching rule gives its type; then the size target's choice, or the mix's, or the default
 * policy for `type`. */
typedef struct qfmt_convert_types {
    /* NULL, or a llama.cpp mix (qfmt_convert_mix): the type llama-quantize's ftype of that
     * name would give each tensor (token embeddings and the output head included); `type` is
     * not used. Tensors it does not quantize (1-D, norms, biases, position and token-type
     * embeddings) keep their type. */
    const char *mix;
    const qfmt_convert_rule *rules; /* a recipe: first match wins */
    size_t nrules;
    /* > 0: choose per tensor, among target_types (each replaced by llama.cpp's fallback where
     * a tensor's rows hold no super-block), the types that minimise the sum of the measured
     * errors (sum over elements of importance[col] * (w - decoded w)^2, or of (w - decoded w)^2
     * without importance) while the candidates' bits (8 x qfmt_type_size, before any zstd)
     * over their elements stay <= target_bpw. Candidates: the tensors a mix would quantize
     * (embeddings and head included) and `quantize`'s, less those a `keep` glob or a rule fixes;
     * other tensors keep their type. `type` and `mix` are not used (mix must be NULL). Every
     * candidate is quantized with every type before the conversion starts, one tensor in
     * memory at a time, and again at its chosen type. QFMT_E_RANGE when even the smallest
     * types exceed the budget. */
    double target_bpw;
    const uint32_t *target_types; /* block or float types; NULL: q2_k, q3_k, q4_k, q5_k, q6_k, q8_0 */
    size_t ntarget_types;         /* 1..16 */
    uint64_t reserved[4];         /* zero */
} qfmt_convert_types;
#define QFMT_CONVERT_TYPES_INIT {NULL, NULL, 0u, 0.0, NULL, 0u, {0u, 0u, 0u, 0u}}

/* Mix i (0, 1, ...; NULL past the last): its name, llama-quantize's ftype name in lower case
 * ("q2_k", "q2_k_s", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m",
 * "q6_k", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl", "iq4_xs"), and its default type
 * (llama_ftype_get_default_type) in *type when type is not NULL. */
QFMT_API const char *qfmt_convert_mix(size_t i, uint32_t *type);

/* Parses a recipe: lines "GLOB TYPE" (separated by spaces or tabs; TYPE a type name as
 * qfmt_type_from_name takes it - f32, f16, bf16 or a block type - or "keep"), '#' starting a
 * comment anywhere, blank lines ignored; no line may hold more than two words. *rules (one
 * malloc'd block holding the rules and their globs: free() it) and *nrules get the rules in file
 * order. A bad line: QFMT_E_CORRUPT with err->path "NAME:LINE" (name: the file's, for messages)
 * and the message saying what is wrong; QFMT_E_NOMEM. */
QFMT_API qfmt_status qfmt_convert_recipe_parse(const char *text, size_t len, const char *name,
                                               qfmt_convert_rule **rules, size_t *nrules, qfmt_error *err);
/* The same for a file (a regular file of at most 256 MiB, never a FIFO), with its errors (QFMT_E_IO, ...). */
QFMT_API qfmt_status qfmt_convert_recipe_load(const char *path, qfmt_convert_rule **rules, size_t *nrules,
                                              qfmt_error *err);

typedef struct qfmt_convert_result {
    uint64_t tensors, tensors_total; /* converted, in the source */
    uint64_t elements;               /* of the tensors converted */
    uint64_t bytes_in, bytes_total;  /* source tensor bytes converted; size of all source files */
    uint64_t reserved[4];
} qfmt_convert_result;

/* Converts `src` - a Hugging Face model directory (config.json and model.safetensors, or the
 * shards model.safetensors.index.json lists; tokenizer.json and generation_config.json when
 * present) or one .safetensors file - to the qfmt file `out`, replaced atomically (nothing is
 * left on failure). Metadata as the spec's "Metadata keys" and "Conversion conventions" say.
 * res (optional) is filled as far as the conversion got. Errors name the file, tensor and
 * byte offset at fault. */
QFMT_API qfmt_status qfmt_convert_hf(const char *src, const char *out, const qfmt_convert_opts *opts,
                                     qfmt_convert_result *res, qfmt_error *err);

/* ---- Dequantize: a qfmt file back to safetensors ------------------------------------------- */
#define QFMT_DEQUANTIZE_KEEP UINT32_MAX /* dtype: floats keep their type, blocks become F32 */

typedef struct qfmt_dequantize_opts {
    uint32_t dtype;   /* QFMT_DEQUANTIZE_KEEP, or F32, F16, BF16 for every float and block tensor */
    unsigned threads; /* decoding threads; 0 or 1: one */
    /* Optional callbacks, NULL for none, called on the calling thread; ctx is theirs. */
    void (*progress)(void *ctx, uint64_t tensors_done, uint64_t tensors, uint64_t bytes_done,
                     uint64_t bytes);
    /* As in qfmt_convert_opts: the temporary file's path, then NULL once renamed or removed. */
    void (*temp_file)(void *ctx, const char *path);
    void *ctx;
    uint64_t reserved[4]; /* zero */
} qfmt_dequantize_opts;
#define QFMT_DEQUANTIZE_OPTS_INIT {QFMT_DEQUANTIZE_KEEP, 1u, NULL, NULL, NULL, {0u, 0u, 0u, 0u}}

typedef struct qfmt_dequantize_result {
    uint64_t tensors; /* written */
    uint64_t bytes;   /* tensor data bytes written */
    uint64_t reserved[4];
} qfmt_dequantize_result;

/* Writes every tensor of `r` to the safetensors file `out` (replaced atomically; nothing is
 * left on failure), under the source's names and layouts: tensors listed in
 * convert.transposed are transposed back. Float tensors keep their type unless opts->dtype
 * says otherwise; block-quantized ones are decoded to opts->dtype (F32 when KEEP); integer
 * and bool tensors are copied. Every tensor's checksum is verified as it is read. Memory: two
 * buffers the size of the largest tensor. QFMT_E_UNSUPPORTED for a type safetensors cannot
 * hold; reader errors as the reader reports them; errors name the file, tensor and offset. */
QFMT_API qfmt_status qfmt_dequantize_file(const qfmt_reader *r, const char *out, const qfmt_dequantize_opts *opts,
                                          qfmt_dequantize_result *res, qfmt_error *err);

/* ==== GGUF import and export ================================================================ */
/* Models move both ways between qfmt and llama.cpp's GGUF.
 * Tensors keep their bytes (ggml's type ids are qfmt's below 256) under llama.cpp's names
 * (qfmt_family_gguf_name / qfmt_family_hf_name), with llama.cpp's layouts: the q/k row
 * permutation of the llama architecture (convert_hf_to_gguf.py's LlamaModel.permute, moving
 * whole rows, so block-quantized rows move unchanged), Gemma's norms stored as 1 + w, GPT-2's
 * Conv1D weights [out, in] (as qfmt stores them, listed in convert.transposed), Phi-3's fused
 * qkv and gate|up; the model.* keys and llama.cpp's {arch}.* keys map to each other as
 * convert_hf_to_gguf.py writes them per model class; the tokenizer goes through
 * qfmt_tokenizer_from_gguf / qfmt_tokenizer_to_gguf. */

/* Converts the GGUF file `src` (version 2 or 3; general.architecture gpt2, llama, bert, qwen2,
 * qwen3, gemma2, gemma3 or phi3) to the qfmt file `out`, replaced atomically (nothing is left
 * on failure). The qfmt family is general.architecture's (gemma3: gemma3_text; llama with a
 * {arch}.attention.sliding_window: mistral). Metadata: general.architecture, the model.* keys
 * run and eval need, tokenizer.huggingface.json rebuilt from tokenizer.ggml.* (a tokenizer
 * qfmt_tokenizer_from_gguf refuses is a warning - the file is written without one - or an
 * error with QFMT_CONVERT_STRICT_TOKENIZER), source.files / sizes / xxh3 (the GGUF file),
 * convert.* and source.gguf.<key> for every kv pair the mapping does not consume (general.name,
 * general.file_type, ...: qfmt_export_gguf writes them back). Tensors keep their GGUF type and
 * bytes when opts->type is QFMT_CONVERT_KEEP (the default with opts NULL) and opts->types is
 * NULL; otherwise the options choose each tensor's type as qfmt_convert_hf does (policy,
 * --keep / --quantize, mixes, recipes, size targets, importance), a block-quantized tensor
 * whose chosen type is its own being copied byte for byte and any other decoded and
 * re-encoded. Errors name the file, the tensor and the key: a tensor of a ggml type qfmt does
 * not know (QFMT_E_UNSUPPORTED), a tensor name the family does not know, a missing or
 * inconsistent key (QFMT_E_CORRUPT, QFMT_E_NOT_FOUND). */
QFMT_API qfmt_status qfmt_convert_gguf(const char *src, const char *out, const qfmt_convert_opts *opts,
                                       qfmt_convert_result *res, qfmt_error *err);

/* What qfmt_export_gguf does with qfmt's own block types, which have no ggml type. */
typedef enum {
    QFMT_EXPORT_Z_REFUSE = 0,     /* refuse the file (QFMT_E_UNSUPPORTED, naming the first such tensor) */
    QFMT_EXPORT_Z_REQUANTIZE = 1, /* decode and re-encode as the nearest ggml type: q8_z as q8_0,
                                     q4_z as q4_1 (both affine with an offset, as q4_z is) */
} qfmt_export_z_policy;

typedef struct qfmt_export_opts {
    qfmt_export_z_policy z_types; /* q8_z and q4_z tensors */
    qfmt_quality quality;         /* the re-encoding quantizer (reference: ggml's bytes) */
    unsigned threads;             /* re-encoding threads; 0 or 1: one */
    /* Optional callbacks, NULL for none, called on the calling thread; ctx is theirs. */
    void (*progress)(void *ctx, uint64_t tensors_done, uint64_t tensors, uint64_t bytes_done, uint64_t bytes);
    /* A tensor left out of the GGUF (llama.cpp's architecture has no such tensor: BERT's MLM
     * head, tensors the family does not know) or stored otherwise (re-encoded, widened). */
    void (*note)(void *ctx, const char *tensor, const char *what);
    /* As in qfmt_convert_opts. */
    void (*temp_file)(void *ctx, const char *path);
    /* Something llama.cpp will run differently from qfmt (e.g. a key it has no name for). */
    void (*warning)(void *ctx, const char *message);
    void *ctx;
    uint64_t reserved[4]; /* zero */
} qfmt_export_opts;
#define QFMT_EXPORT_OPTS_INIT {QFMT_EXPORT_Z_REFUSE, QFMT_QUALITY_REFERENCE, 1u, NULL, NULL, NULL, NULL, NULL, {0u, 0u, 0u, 0u}}

/* Writes the model in `r` (a qfmt file of a family llama.cpp runs, as qfmt_model_load reads it)
 * to the GGUF file `out`: version 3, alignment 32, replaced atomically as every qfmt writer
 * does. Keys: general.architecture (qfmt_family_gguf_arch), general.type, general.name,
 * llama.cpp's {arch}.* keys from the model.* keys, tokenizer.ggml.* from the embedded
 * tokenizer.json (qfmt_tokenizer_to_gguf; tokens padded with [PAD<i>] to the embedding's rows
 * as convert_hf_to_gguf.py pads them), general.quantization_version 2, general.file_type
 * (llama.cpp's LLAMA_FTYPE_* of convert.mix; else the kept source.gguf.general.file_type when
 * its type is the one most linear-weight elements have; else that type's), the other
 * source.gguf.* keys a GGUF import kept, and qfmt.model.<key> for the model.* keys llama.cpp's
 * keys cannot hold (the checkpoint's dtype; a llama3 or yarn RoPE's parameters; Gemma's layer
 * types and attention scalar, an activation, where llama.cpp's fixed ones differ), which
 * llama.cpp ignores and qfmt_convert_gguf reads back, so that importing the file gives the same
 * model. general.name is left out (with a warning) where llama.cpp's name-keyed tokenizer rules
 * would make it fail to load (a name like Phi-3's without Phi-3's special tokens). Tensors keep
 * their types and bytes, except that f16/bf16 1-D tensors, biases, position and token-type
 * embeddings are widened to f32 (as convert_hf_to_gguf.py stores them), Gemma's norms become
 * 1 + w in f32, an untransposed GPT-2 Conv1D weight is transposed, and q8_z / q4_z follow
 * opts->z_types; llama.cpp's RoPE factor tensors (rope_freqs, rope_factors_long/short) are
 * added; tensors llama.cpp's architecture has no name for (BERT's MLM head) are left out, with a
 * note. QFMT_E_UNSUPPORTED for a family llama.cpp has no architecture for, a RoPE it cannot
 * express, a type GGUF cannot hold. */
QFMT_API qfmt_status qfmt_export_gguf(const qfmt_reader *r, const char *out, const qfmt_export_opts *opts,
                                      qfmt_error *err);

/* ==== Tokenizers in GGUF files (tokenizer.ggml.*) ============================================ */
/* llama.cpp keeps a model's tokenizer as tokenizer.ggml.* keys (llama-vocab.cpp,
 * convert_hf_to_gguf.py): model ("gpt2" BPE, "llama" SentencePiece, "bert" WordPiece, ...),
 * pre (the pre-tokenizer's name: "llama-bpe", "qwen2", "gpt-2", "default", ...), tokens,
 * token_type (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte), scores,
 * merges ("a b" strings), the special ids and add_bos_token / add_eos_token.
 * Where llama.cpp itself tokenizes otherwise than Hugging Face, both calls follow llama.cpp:
 * its BPE tokenizers apply no normalizer (Qwen's NFC is not run); its WordPiece has no
 * max_input_chars_per_word and adds [CLS] ... [SEP] with special tokens whatever the
 * post-processor says; it splits added tokens out longest first, without their lstrip /
 * rstrip / single_word / normalized flags, and makes some tokens control by their text
 * (<|endoftext|>, <|im_end|>, FIM tokens). */

/* Special ids the model's config gives (config.json / generation_config.json: bos, eos,
 * unknown, padding; -1 for none): they win over what tokenizer.json says. */
typedef struct qfmt_gguf_special_ids {
    int64_t bos, eos, unk, pad;
    uint64_t reserved[4]; /* zero */
} qfmt_gguf_special_ids;

/* Writes tokenizer.ggml.* for the Hugging Face tokenizer.json text `json` (as embedded in a
 * qfmt file) to w, as convert_hf_to_gguf.py would for that tokenizer, so that llama.cpp runs
 * it as Hugging Face does but for llama.cpp's own differences above; `ids` may be NULL. The
 * text is first loaded as qfmt_tokenizer_load loads it (its errors). Tokens are the ids
 * 0..max in order, an unused id as convert_hf_to_gguf's "[PAD<i>]" of type unused (no padding
 * to an embedding's rows: no vocabulary size is given).
 *  - BPE without byte_fallback -> model "gpt2", tokens, token_type (added tokens: control if
 *    special or looking special as convert_hf_to_gguf's does_token_look_special says, else
 *    user-defined), merges; pre named by the pre-tokenizer's regex, the name llama.cpp runs
 *    that regex under: ByteLevel (GPT-2's) "gpt-2", Split(Llama 3's) + ByteLevel "llama-bpe",
 *    Split(Qwen 2's) + ByteLevel "qwen2" (convert_hf_to_gguf chooses by a hash of a test text's
 *    ids and refuses tokenizers it does not list; the fixtures' KJV tokenizer gets "gpt-2", as
 *    the GGUF files llama.cpp wrote for it hold). Normalizer none or NFC (accepted as the
 *    converter accepts it; llama.cpp ignores it); ignore_merges must be what llama.cpp uses
 *    for that pre-tokenizer (true for llama-bpe only).
 *  - BPE with byte_fallback, spaces as U+2581 (Prepend + Replace normalizers, or a Metaspace
 *    that does not split) and all 256 <0xXX> tokens -> model "llama", pre "default", tokens,
 *    scores, token_type (<0xXX> byte, added special control, other added user-defined).
 *    llama.cpp merges such a vocabulary by score (the adjacent pair making the best-scored
 *    token); score = -(rank of the first merge making the token) gives the BPE's own result
 *    when every split of a token into two symbols is a merge and each token's merges are
 *    contiguous (true of tokenizers converted from SentencePiece, Llama 2's); otherwise
 *    QFMT_E_UNSUPPORTED. (convert_hf_to_gguf's LlamaHfVocab writes -1000 for every token,
 *    which llama.cpp then merges leftmost-first.)
 *  - WordPiece with BertNormalizer and BertPreTokenizer -> model "bert", pre "default",
 *    convert_hf_to_gguf's phantom-space tokens ("##x" -> "x", "x" -> U+2581 "x", control
 *    tokens as they are), normalizer.lowercase (and strip_accents where it differs),
 *    bos / seperator ids: the post-processor's [CLS] / [SEP], else the tokens so named.
 * Special ids: `ids` first, then the post-processor's template ([bos]? $A [eos]?: a different
 * token than ids' bos / eos is refused); unknown: ids', else the model's unk_token (llama,
 * bert). add_bos_token / add_eos_token are written from the template, or where llama.cpp's
 * default for the model and pre-tokenizer differs from what tokenizer.json adds (Llama 3's
 * tokenizer.json here adds no BOS, llama-bpe's default adds one: false is written).
 * QFMT_E_UNSUPPORTED (naming the component) for a tokenizer llama.cpp cannot express: another
 * model (Unigram, WordLevel), pre-tokenizer, normalizer or post-processor, BPE options
 * llama.cpp lacks (continuing_subword_prefix, end_of_word_suffix), merges with spaces in a
 * token; QFMT_E_RANGE for an id of `ids` outside the vocabulary; QFMT_E_ARG (ids below -1,
 * reserved not zero). Nothing is written unless every check passed (a writer error after
 * that can leave some keys set). */
QFMT_API qfmt_status qfmt_tokenizer_to_gguf(const char *json, size_t len, const qfmt_gguf_special_ids *ids,
                                            qfmt_gguf_writer *w, qfmt_error *err);
/* A tokenizer.json text (malloc'd, NUL-terminated, *len without the NUL) that qfmt_tokenizer_load
 * runs as llama.cpp runs the GGUF file's tokenizer.ggml.* (the inverse of the above for the
 * tokenizers convert_hf_to_gguf writes): qfmt_tokenizer_encode as llama_tokenize with
 * parse_special, QFMT_TOKENIZE_ADD_SPECIAL as its add_special. Missing keys and ids take
 * llama.cpp's defaults (an id out of range: the default; no token_type: all normal).
 *  - "gpt2" with a pre llama.cpp runs with GPT-2's, Llama 3's or Qwen 2's regex ("gpt-2",
 *    "llama-bpe", "llama3", "qwen2" and the names llama.cpp treats alike): byte-level BPE with
 *    llama.cpp's spelling of that regex and its ignore_merges, no normalizer; a pre absent,
 *    "default" or another: QFMT_E_UNSUPPORTED.
 *  - "llama": byte-fallback BPE with U+2581 spaces (prefixed unless add_space_prefix is
 *    false), its merges derived from the scores: every split of a token into two tokens, by
 *    the token's score descending, then id, then split position. Tokens sharing a score are
 *    thus ordered by id where llama.cpp orders them by position in the text (Llama 2's runs of
 *    U+2581 share one; on them both give the same); a file whose merged tokens all share one
 *    score (LlamaHfVocab's -1000) is refused, as are remove_extra_whitespaces, a missing
 *    <0xXX> token and a token llama.cpp would make of a character that is no token.
 *  - "bert": WordPiece back from the phantom-space tokens, BertNormalizer (normalizer.lowercase,
 *    default true; strip_accents, default lowercase), BertPreTokenizer, no
 *    max_input_chars_per_word limit, [CLS] $A [SEP] from bos / seperator ids.
 * Control, user-defined and unknown tokens, and those llama.cpp makes control by their text,
 * are added tokens matched on the raw text; BOS / EOS are added as add_bos_token /
 * add_eos_token (or llama.cpp's default) say. QFMT_E_NOT_FOUND without tokenizer.ggml.model,
 * QFMT_E_UNSUPPORTED for a model (t5, rwkv, ...) or pre-tokenizer qfmt does not reproduce,
 * QFMT_E_CORRUPT for inconsistent arrays (naming the key and element): token_type or scores
 * not one per token or of another type, a token type above 6, tokens that are not UTF-8
 * without NUL or appear twice, merges that are not "a b" of tokens making a token, missing
 * tokens or (gpt2) merges, add_bos_token / add_eos_token without the id. Every count is
 * bounded by the file (at most 2^24 tokens). */
QFMT_API qfmt_status qfmt_tokenizer_from_gguf(const qfmt_gguf *g, char **json, size_t *len, qfmt_error *err);

/* ==== Tokenizer ============================================================================= */

typedef struct qfmt_tokenizer qfmt_tokenizer;

/* Parses a tokenizer.json text of `len` bytes (need not be NUL-terminated). On success
 * stores a new tokenizer in *out. The text is held to qfmt_json_check's policy first (a
 * refusal: QFMT_E_CORRUPT, "tokenizer.json: at byte N: JSON: ..."). On failure sets *out
 * to NULL: QFMT_E_UNSUPPORTED for a
 * configuration this tokenizer does not implement (the message names it, e.g.
 * "tokenizer model type 'Unigram' is not supported (only byte-level BPE)"), QFMT_E_CORRUPT
 * for a text that is not a valid tokenizer.json, QFMT_E_NOMEM. */
QFMT_API qfmt_status qfmt_tokenizer_load(qfmt_tokenizer **out, const char *json, size_t len, qfmt_error *err);

/* The tokenizer of `path`: a .qfmt file (its embedded tokenizer.json, metadata
 * tokenizer.huggingface.json; QFMT_E_NOT_FOUND without one), a tokenizer.json, or a model
 * directory holding a tokenizer.json. Errors as qfmt_tokenizer_load's, naming the file. */
QFMT_API qfmt_status qfmt_tokenizer_open(qfmt_tokenizer **out, const char *path, qfmt_error *err);

QFMT_API void qfmt_tokenizer_free(qfmt_tokenizer *t);

/* Encodes `len` bytes of text into *ids, a malloc'd array of *n ids (caller frees; may be
 * NULL when *n == 0). On failure (out of memory, regex engine error) *ids = NULL, *n = 0. */
QFMT_API qfmt_status qfmt_tokenizer_encode(const qfmt_tokenizer *t, const char *text, size_t len,
                                           int32_t **ids, size_t *n, qfmt_error *err);

/* qfmt_tokenizer_encode with flags: QFMT_TOKENIZE_ADD_SPECIAL applies the post-processor
 * (BOS/EOS, [CLS]/[SEP]: HF's add_special_tokens=True). Other bits: QFMT_E_ARG. */
#define QFMT_TOKENIZE_ADD_SPECIAL 1u
QFMT_API qfmt_status qfmt_tokenizer_encode_with(const qfmt_tokenizer *t, const char *text, size_t len, unsigned flags,
                                                int32_t **ids, size_t *n, qfmt_error *err);

/* Decodes ids into bytes: every token's bytes concatenated (added/special tokens as their
 * content; skipped when skip_special and the token is special). *text is malloc'd, *len
 * bytes plus a terminating NUL not counted (caller frees). QFMT_E_RANGE (and *text = NULL)
 * if an id is negative, >= vocab_size or unused (HF would silently drop it); QFMT_E_NOMEM. */
QFMT_API qfmt_status qfmt_tokenizer_decode(const qfmt_tokenizer *t, const int32_t *ids, size_t n,
                                           bool skip_special, char **text, size_t *len, qfmt_error *err);

/* Streaming decode, as Hugging Face's DecodeStream does it: feed generated ids one at a time
 * and print what each step returns (possibly nothing, e.g. while a character's bytes are still
 * coming); the concatenation is the text qfmt_tokenizer_decode gives for all the ids, spaces
 * that decoders strip from the first token only included. The returned text stays valid until
 * the next step or free. The stream keeps a pointer to t. */
typedef struct qfmt_decode_stream qfmt_decode_stream;
QFMT_API qfmt_status qfmt_decode_stream_new(qfmt_decode_stream **out, const qfmt_tokenizer *t, bool skip_special,
                                            qfmt_error *err);
QFMT_API qfmt_status qfmt_decode_stream_step(qfmt_decode_stream *ds, int32_t id, const char **text, size_t *len,
                                             qfmt_error *err);
QFMT_API void qfmt_decode_stream_free(qfmt_decode_stream *ds);

/* The text one token decodes to on its own (the decoder run on that one token: e.g. a
 * first-token space strip applies). For streaming use qfmt_decode_stream. The pointer stays valid until the tokenizer
 * is freed; not NUL-terminated. QFMT_E_RANGE for an invalid id. */
QFMT_API qfmt_status qfmt_tokenizer_token_bytes(const qfmt_tokenizer *t, int32_t id, const char **bytes,
                                                size_t *len);

/* The token's string as written in tokenizer.json (e.g. "Ġthe", "[MASK]"). Not
 * NUL-terminated; valid until free. QFMT_E_RANGE for an invalid id. */
QFMT_API qfmt_status qfmt_tokenizer_token_string(const qfmt_tokenizer *t, int32_t id, const char **str,
                                                 size_t *len);

/* Id of a token given its tokenizer.json string ("[MASK]", "<|endoftext|>", "Ġthe"), or -1. */
QFMT_API int32_t qfmt_tokenizer_token_id(const qfmt_tokenizer *t, const char *token);

/* True if id is an added token marked "special" (what decode's skip_special drops). */
QFMT_API bool qfmt_tokenizer_is_special(const qfmt_tokenizer *t, int32_t id);

/* One more than the largest id (vocab and added tokens); what an embedding table needs. */
QFMT_API size_t qfmt_tokenizer_vocab_size(const qfmt_tokenizer *t);

/* Streaming helper: the length of the longest prefix of buf[0..len) that does not end inside
 * an incomplete UTF-8 sequence (a truncated but so far valid lead + continuation bytes at the
 * end is held back; invalid bytes are never held back). Print that prefix, keep the rest. */
QFMT_API size_t qfmt_utf8_complete_len(const char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* QFMT_MODEL_H */
