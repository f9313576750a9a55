/*
 * tokenizer.h - byte-level BPE tokenizer (Hugging Face tokenizers compatible) for the qfmt
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
#ifndef QFMT_RUNTIME_TOKENIZER_H
#define QFMT_RUNTIME_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qfmt_tokenizer qfmt_tokenizer;

/* Parses a tokenizer.json text of `len` bytes (need not be NUL-terminated). On success
 * stores a new tokenizer in *out and returns 0. On failure returns -1, sets *out to NULL and
 * writes a one-line reason into msg (if msg_cap > 0), e.g.
 * "tokenizer model type 'Unigram' is not supported (only byte-level BPE)". */
int qfmt_tokenizer_load(qfmt_tokenizer **out, const char *json, size_t len, char *msg,
                        size_t msg_cap);

void qfmt_tokenizer_free(qfmt_tokenizer *t);

/* Encodes `len` bytes of text. On success returns 0 with *ids a malloc'd array of *n ids
 * (caller frees; may be NULL when *n == 0). On failure (out of memory, regex engine error)
 * returns -1 with a message, *ids = NULL, *n = 0. */
int qfmt_tokenizer_encode(const qfmt_tokenizer *t, const char *text, size_t len, int32_t **ids,
                          size_t *n, char *msg, size_t msg_cap);

/* Decodes ids into bytes: every token's bytes concatenated (added/special tokens as their
 * content; skipped when skip_special and the token is special). *text is malloc'd, *len
 * bytes plus a terminating NUL not counted (caller frees). Returns -1 (and *text = NULL)
 * if an id is negative, >= vocab_size or unused (HF would silently drop it), or on out of
 * memory. */
int qfmt_tokenizer_decode(const qfmt_tokenizer *t, const int32_t *ids, size_t n,
                          bool skip_special, char **text, size_t *len);

/* The raw bytes one token decodes to (for streaming output: print bytes as they complete
 * UTF-8 characters, see qfmt_utf8_complete_len). The pointer stays valid until the tokenizer
 * is freed; not NUL-terminated. Returns -1 for an invalid id. */
int qfmt_tokenizer_token_bytes(const qfmt_tokenizer *t, int32_t id, const char **bytes,
                               size_t *len);

/* The token's string as written in tokenizer.json (e.g. "Ġthe", "[MASK]"). Not
 * NUL-terminated; valid until free. Returns -1 for an invalid id. */
int qfmt_tokenizer_token_string(const qfmt_tokenizer *t, int32_t id, const char **str,
                                size_t *len);

/* Id of a token given its tokenizer.json string ("[MASK]", "<|endoftext|>", "Ġthe"), or -1. */
int32_t qfmt_tokenizer_token_id(const qfmt_tokenizer *t, const char *token);

/* True if id is an added token marked "special" (what decode's skip_special drops). */
bool qfmt_tokenizer_is_special(const qfmt_tokenizer *t, int32_t id);

/* One more than the largest id (vocab and added tokens); what an embedding table needs. */
size_t qfmt_tokenizer_vocab_size(const qfmt_tokenizer *t);

/* Streaming helper: the length of the longest prefix of buf[0..len) that does not end inside
 * an incomplete UTF-8 sequence (a truncated but so far valid lead + continuation bytes at the
 * end is held back; invalid bytes are never held back). Print that prefix, keep the rest. */
size_t qfmt_utf8_complete_len(const char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* QFMT_RUNTIME_TOKENIZER_H */
