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
    uint64_t reserved[4]; /* zero */
} qfmt_convert_opts;
/* A tokenizer.json that qfmt cannot reproduce exactly fails the conversion (QFMT_E_UNSUPPORTED,
 * or the tokenizer's own error) instead of a warning; the file is embedded either way when
 * the conversion goes on. */
#define QFMT_CONVERT_STRICT_TOKENIZER 1u
#define QFMT_CONVERT_OPTS_INIT \
    {QFMT_TYPE_F32, QFMT_QUALITY_REFERENCE, 0, 1u, NULL, 0u, NULL, 0u, NULL, NULL, NULL, NULL, NULL, 0u, {0u, 0u, 0u, 0u}}

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
