/*
 * tk_internal.h - the tokenizer pipeline's parts and what they share (libqfmt_model/src/
 * tokenizer/). The pipeline reproduces Hugging Face `tokenizers` (the Rust library) on
 * tokenizer.json, for one sequence:
 *
 *   text -> split on added tokens with normalized=false (tokenizer.c)
 *        -> per piece: normalizer (normalizer.c)
 *        -> split on added tokens with normalized=true (tokenizer.c)
 *        -> per piece: pre-tokenizer (pre_tokenizer.c) -> words
 *        -> per word: model (bpe.c, wordpiece.c, unigram.c) -> ids
 *        -> post-processor when special tokens are asked for (post_processor.c)
 *   ids -> token strings -> decoder (decoder.c) -> text
 *
 * Conventions for every part:
 *   - load functions take the component's cJSON node (never NULL: absent / null components
 *     are handled by the caller) and return 0, or -1 with *err filled through qfmt__tk_fail: code
 *     QFMT_E_UNSUPPORTED for a component or option this code does not implement (the message
 *     names it and its JSON path, e.g. "tokenizer.json: normalizer.normalizers[1]: type
 *     'Precompiled' is not supported"), QFMT_E_CORRUPT for a value of the wrong JSON type or
 *     out of range, QFMT_E_NOMEM;
 *   - run functions are const on the loaded part (thread-safe: no mutable state in it),
 *     append to caller-owned output, and return 0 or -1 (*err filled; NOMEM, or a regex
 *     engine error such as a match limit reached: QFMT_E_RANGE);
 *   - text is UTF-8 bytes with a length (no NUL termination assumed; NUL bytes are
 *     ordinary). Invalid UTF-8 in the input text never crashes; each part says what it does
 *     with it (HF's input is always a valid Rust String; we take each invalid byte as U+FFFD
 *     where a code point is needed, see qfmt__tk_utf8_next).
 *   - every loop over a count read from the JSON is bounded by that JSON's size; every
 *     recursion (Sequence) is bounded by TK_MAX_DEPTH.
 */
#ifndef QFMT_TK_INTERNAL_H
#define QFMT_TK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qfmt.h"

#define TK_MAX_DEPTH 16         /* nested Sequence components */
#define TK_MAX_IDS (1u << 24)   /* ids are below 2^24 (16.7 M); real vocabularies < 300 K */

/* ---- Errors ------------------------------------------------------------------------------ */
/* Fills *err (may be NULL) with `code` and "tokenizer.json: <message>"; returns -1. */
int qfmt__tk_fail(qfmt_error *err, qfmt_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define TK_OOM(err) qfmt__tk_fail((err), QFMT_E_NOMEM, "out of memory")

/* ---- Growable byte string ---------------------------------------------------------------- */
typedef struct {
    char *p; /* NULL when cap == 0; p[len] is kept 0 when p != NULL */
    size_t len, cap;
} tk_str;
int qfmt__tk_str_reserve(tk_str *s, size_t extra); /* room for len + extra + 1 bytes; 0 / -1 */
int qfmt__tk_str_put(tk_str *s, const void *b, size_t n);
int qfmt__tk_str_putc(tk_str *s, char c);
int qfmt__tk_str_put_cp(tk_str *s, uint32_t cp); /* UTF-8 of one code point */
void qfmt__tk_str_free(tk_str *s);

/* ---- A list of byte strings (words after pre-tokenization, tokens in decoding) ------------ */
typedef struct {
    size_t off, len; /* in the list's buffer */
} tk_span;
typedef struct {
    tk_str buf;
    tk_span *v;
    size_t n, cap;
} tk_list;
/* Appends a copy of b[0..n) as a new element (n 0 included: an empty element). */
int qfmt__tk_list_push(tk_list *l, const void *b, size_t n);
void qfmt__tk_list_clear(tk_list *l); /* n = 0, buffer kept */
void qfmt__tk_list_free(tk_list *l);
static inline const char *tk_list_at(const tk_list *l, size_t i, size_t *len)
{
    *len = l->v[i].len;
    return l->buf.p ? l->buf.p + l->v[i].off : "";
}

/* ---- Ids -------------------------------------------------------------------------------- */
typedef struct {
    int32_t *v;
    size_t n, cap;
} tk_ids;
int qfmt__tk_ids_push(tk_ids *ids, int32_t id);
void qfmt__tk_ids_free(tk_ids *ids);

/* ---- UTF-8 ------------------------------------------------------------------------------- */
/* Decodes the code point at s[0..n) (n >= 1), sets *cp and returns its length (1..4). An
 * invalid or truncated sequence gives *cp = 0xFFFD and length 1 (one byte consumed). */
size_t qfmt__tk_utf8_next(const char *s, size_t n, uint32_t *cp);
size_t qfmt__tk_utf8_put(uint32_t cp, char *out); /* 1..4 bytes; cp > 0x10FFFF or a surrogate: U+FFFD */
/* Rust's char::is_whitespace (Unicode White_Space). */
bool qfmt__tk_is_whitespace(uint32_t cp);

/* ---- Regexes (Oniguruma, as HF uses it, through PCRE2) ----------------------------------- */
/* Compiles a tokenizer.json regex for PCRE2 (UTF, UCP, invalid UTF-8 tolerated), translating
 * what the two engines read differently: \s, \S (Unicode White_Space, as Oniguruma has it),
 * \d / \w as Unicode. Refuses (QFMT_E_UNSUPPORTED, the message quoting the pattern escaped)
 * what cannot be translated. `where` names the component for messages. */
pcre2_code *qfmt__tk_regex_compile(const char *pattern, size_t len, const char *where, qfmt_error *err);
void qfmt__tk_regex_free(pcre2_code *re);
/* A regex match with bounded work: finds the first match at or after `start` in s[0..n).
 * Returns 1 with [*ms, *me) set, 0 when none, -1 with *err on an engine error (a match limit
 * reached: QFMT_E_RANGE "regex match limit exceeded"). md: from qfmt__tk_regex_match_data. An empty
 * match is returned as such (the caller advances). */
int qfmt__tk_regex_find(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n, size_t start, size_t *ms,
                  size_t *me, qfmt_error *err);
pcre2_match_data *qfmt__tk_regex_match_data(const pcre2_code *re); /* NULL: out of memory */

/* ---- Normalizers (normalizer.c) ------------------------------------------------------------
 * NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, BertNormalizer,
 * Sequence; anything else (Precompiled, NMT, ...) refused as unsupported. */
typedef struct tk_normalizer tk_normalizer;
int qfmt__tk_normalizer_load(const cJSON *j, tk_normalizer **out, qfmt_error *err);
/* Normalizes in[0..n) into *out (cleared first). */
int qfmt__tk_normalize(const tk_normalizer *nz, const char *in, size_t n, tk_str *out, qfmt_error *err);
void qfmt__tk_normalizer_free(tk_normalizer *nz);

/* ---- Pre-tokenizers (pre_tokenizer.c) -------------------------------------------------------
 * ByteLevel, Split, Metaspace, Whitespace, WhitespaceSplit, BertPreTokenizer, Punctuation,
 * Digits, CharDelimiterSplit, UnicodeScripts (if done), Sequence. */
typedef struct tk_pre_tokenizer tk_pre_tokenizer;
int qfmt__tk_pre_tokenizer_load(const cJSON *j, tk_pre_tokenizer **out, qfmt_error *err);
/* Splits one normalized piece in[0..n) into words appended to *out (not cleared). `first`: the
 * piece begins at offset 0 of the original text (Metaspace prepend_scheme "first"). Words
 * are in the form the model looks up: after ByteLevel, each byte mapped to its GPT-2
 * bytes_to_unicode character (UTF-8 encoded); after Metaspace, spaces replaced. */
int qfmt__tk_pre_tokenize(const tk_pre_tokenizer *pt, const char *in, size_t n, bool first, tk_list *out, qfmt_error *err);
void qfmt__tk_pre_tokenizer_free(tk_pre_tokenizer *pt);
/* GPT-2 bytes_to_unicode: byte -> code point, and its inverse (-1 for code points that are
 * not the image of a byte). */
uint32_t qfmt__tk_byte_to_cp(uint8_t b);
int qfmt__tk_cp_to_byte(uint32_t cp);

/* ---- The model's vocabulary (vocab.c) --------------------------------------------------------
 * token string <-> id for the model's own vocab (added tokens are the tokenizer's, not in it).
 * The tokenizer builds it from model.vocab; tests build their own. */
typedef struct tk_vocab tk_vocab;
tk_vocab *qfmt__tk_vocab_new(void); /* NULL: out of memory */
/* Adds s[0..n) as `id` (0 <= id < TK_MAX_IDS). Returns 0, -1 out of memory, 1 if the string or
 * the id is already there (nothing changed). */
int qfmt__tk_vocab_add(tk_vocab *v, const char *s, size_t n, int32_t id);
/* The id of s[0..n), or -1. */
int32_t qfmt__tk_vocab_id(const tk_vocab *v, const char *s, size_t n);
/* The string of `id` (not NUL-terminated; valid while v lives), or NULL. */
const char *qfmt__tk_vocab_string(const tk_vocab *v, int32_t id, size_t *len);
uint32_t qfmt__tk_vocab_max_id(const tk_vocab *v); /* 1 + the largest id; 0 when empty */
size_t qfmt__tk_vocab_count(const tk_vocab *v);
void qfmt__tk_vocab_free(tk_vocab *v);

/* ---- Models ----------------------------------------------------------------------------------
 * Each encodes one word (a pre-tokenizer's output) into ids appended to *out. */
/* BPE (bpe.c): merges in both forms, byte_fallback, unk_token / fuse_unk, ignore_merges,
 * continuing_subword_prefix / end_of_word_suffix; dropout null or 0 (HF ignores it at
 * inference only when null: a non-zero dropout is refused, its results are random). */
typedef struct tk_bpe tk_bpe;
typedef struct tk_bpe_work tk_bpe_work; /* per-call scratch */
int qfmt__tk_bpe_load(const cJSON *model, const tk_vocab *v, tk_bpe **out, qfmt_error *err);
int qfmt__tk_bpe_encode(const tk_bpe *m, const tk_vocab *v, const char *w, size_t n, tk_bpe_work **work, tk_ids *out,
                  qfmt_error *err);
void qfmt__tk_bpe_work_free(tk_bpe_work *work);
void qfmt__tk_bpe_free(tk_bpe *m);

typedef struct tk_wordpiece tk_wordpiece;
int qfmt__tk_wordpiece_load(const cJSON *model, const tk_vocab *v, tk_wordpiece **out, qfmt_error *err);
int qfmt__tk_wordpiece_encode(const tk_wordpiece *m, const tk_vocab *v, const char *w, size_t n, tk_ids *out,
                        qfmt_error *err);
void qfmt__tk_wordpiece_free(tk_wordpiece *m);

/* Unigram: vocab is a JSON array of [piece, score] pairs, id = index. */
typedef struct tk_unigram tk_unigram;
int qfmt__tk_unigram_load(const cJSON *model, const tk_vocab *v, tk_unigram **out, qfmt_error *err);
int qfmt__tk_unigram_encode(const tk_unigram *m, const tk_vocab *v, const char *w, size_t n, tk_ids *out, qfmt_error *err);
void qfmt__tk_unigram_free(tk_unigram *m);

/* ---- Post-processors (post_processor.c) -------------------------------------------------------
 * TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel (no-op on ids), Sequence.
 * max_id: ids must lie in 0..max_id-1 (checked at load: an id out of range is QFMT_E_CORRUPT). */
typedef struct tk_post_processor tk_post_processor;
int qfmt__tk_post_processor_load(const cJSON *j, uint32_t max_id, tk_post_processor **out, qfmt_error *err);
/* The single-sequence encoding with special tokens: ids[0..n) -> *out (cleared first). */
int qfmt__tk_post_process(const tk_post_processor *pp, const int32_t *ids, size_t n, tk_ids *out, qfmt_error *err);
void qfmt__tk_post_processor_free(tk_post_processor *pp);

/* ---- Decoders (decoder.c) -----------------------------------------------------------------------
 * ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, WordPiece, BPEDecoder, CTC (if
 * done), Sequence. HF's decode_chain: each decoder maps the list of token strings to a new
 * list; the result is the concatenation. */
typedef struct tk_decoder tk_decoder;
int qfmt__tk_decoder_load(const cJSON *j, tk_decoder **out, qfmt_error *err);
/* Decodes the token strings in *tokens (consumed: it may be rewritten in place) and appends
 * the text to *out. The text is valid UTF-8 as HF's String is (ByteLevel and ByteFallback
 * replace invalid sequences by U+FFFD as HF does). */
int qfmt__tk_decode(const tk_decoder *d, tk_list *tokens, tk_str *out, qfmt_error *err);
void qfmt__tk_decoder_free(tk_decoder *d);

/* ---- JSON helpers for the loaders ------------------------------------------------------------ */
/* member `key` of obj: absent or null -> *out = dflt, 0; a value of another type -> -1
 * (QFMT_E_CORRUPT naming `where`.`key`). */
int qfmt__tk_json_bool(const cJSON *obj, const char *key, bool dflt, bool *out, const char *where, qfmt_error *err);
int qfmt__tk_json_string(const cJSON *obj, const char *key, const char *dflt, const char **out, size_t *len,
                   const char *where, qfmt_error *err);
/* A non-negative integer <= max (a JSON number with no fraction). */
int qfmt__tk_json_uint(const cJSON *obj, const char *key, uint64_t dflt, uint64_t max, uint64_t *out, const char *where,
                 qfmt_error *err);
/* The "type" member, or NULL with *err (QFMT_E_CORRUPT) when absent or not a string. */
const char *qfmt__tk_json_type(const cJSON *obj, const char *where, qfmt_error *err);

#endif
