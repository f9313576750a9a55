/*
 * test_tokenizer_pipeline.c - the tokenizer's own parts of the pipeline (added tokens, their
 * ids, decode, decode streams) and the BPE model, on small tokenizer.json files built here.
 *
 * Every expectation is derived by hand from Hugging Face tokenizers' source (the Rust crate):
 * tokenizer/added_vocabulary.rs (find_matches, add_tokens, refresh_added_tokens),
 * tokenizer/serialization.rs (added tokens in one add_tokens call), tokenizer/mod.rs (decode,
 * step_decode_stream), models/bpe/model.rs (merge_word, convert_merges_to_hashmap, the merge
 * map build) and models/bpe/word.rs (merge_all).
 */
#include "test_helpers.h"

#include "qfmt_model.h"

/* ---- helpers ------------------------------------------------------------------------- */

/* A BPE tokenizer: model options and vocab / merges as JSON fragments, then the rest. */
static char *bpe_json(const char *model_opts, const char *vocab, const char *merges, const char *rest)
{
    size_t cap = strlen(model_opts) + strlen(vocab) + strlen(merges) + strlen(rest) + 256;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    snprintf(s, cap, "{\"model\":{\"type\":\"BPE\"%s%s,\"vocab\":%s,\"merges\":%s}%s%s}", model_opts[0] ? "," : "",
             model_opts, vocab, merges, rest[0] ? "," : "", rest);
    return s;
}

static qfmt_tokenizer *load_ok(const char *json)
{
    qfmt_tokenizer *t = NULL;
    qfmt_error err;
    qfmt_status st = qfmt_tokenizer_load(&t, json, strlen(json), &err);
    cr_assert_eq(st, QFMT_OK, "load failed (%d): %s\n%s", (int)st, err.message, json);
    return t;
}

static qfmt_status load_status(const char *json)
{
    qfmt_tokenizer *t = NULL;
    qfmt_error err;
    qfmt_status st = qfmt_tokenizer_load(&t, json, strlen(json), &err);
    qfmt_tokenizer_free(t);
    return st;
}

static void expect_ids(const qfmt_tokenizer *t, const char *text, const int32_t *want, size_t nwant)
{
    int32_t *ids = NULL;
    size_t n = 0;
    qfmt_error err;
    qfmt_status st = qfmt_tokenizer_encode(t, text, strlen(text), &ids, &n, &err);
    cr_assert_eq(st, QFMT_OK, "encode '%s' failed: %s", text, err.message);
    cr_assert_eq(n, nwant, "encode '%s': %zu ids, want %zu", text, n, nwant);
    for (size_t i = 0; i < n; i++) cr_assert_eq(ids[i], want[i], "encode '%s': ids[%zu] = %d, want %d", text, i, ids[i], want[i]);
    free(ids);
}

#define IDS(...) ((const int32_t[]){__VA_ARGS__}), (sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t))

static void expect_decode(const qfmt_tokenizer *t, const int32_t *ids, size_t n, bool skip, const char *want)
{
    char *s = NULL;
    size_t len = 0;
    qfmt_error err;
    cr_assert_eq(qfmt_tokenizer_decode(t, ids, n, skip, &s, &len, &err), QFMT_OK, "%s", err.message);
    cr_assert_eq(len, strlen(want), "decode: '%s', want '%s'", s, want);
    cr_assert_eq(memcmp(s, want, len), 0, "decode: '%s', want '%s'", s, want);
    free(s);
}

static void encode_and_free(char *json, const char *text, const int32_t *want, size_t n)
{
    qfmt_tokenizer *t = load_ok(json);
    expect_ids(t, text, want, n);
    qfmt_tokenizer_free(t);
    free(json);
}

#define ABC "{\"a\":0,\"b\":1,\"c\":2}"
#define ABCS "{\"a\":0,\"b\":1,\"c\":2,\" \":3}"

/* ---- added tokens: matching ------------------------------------------------------------ */

/* leftmost-longest (daachorse MatchKind::LeftmostLongest): at the leftmost position with a
 * match, the longest token; matching resumes after it */
Test(pipeline_added, leftmost_longest)
{
    char *j = bpe_json("", ABC, "[]",
                       "\"added_tokens\":[{\"id\":3,\"content\":\"ab\",\"normalized\":false},"
                       "{\"id\":4,\"content\":\"abc\",\"normalized\":false},"
                       "{\"id\":5,\"content\":\"bc\",\"normalized\":false}]");
    qfmt_tokenizer *t = load_ok(j);
    expect_ids(t, "abcab", IDS(4, 3));
    expect_ids(t, "cbc", IDS(2, 5));
    expect_ids(t, "babc", IDS(1, 4));
    qfmt_tokenizer_free(t);
    free(j);
}

/* a normalized token is matched by its content passed through the normalizer
 * (add_tokens' normalized_cache, refresh_added_tokens): "AB" under Lowercase matches "ab" in
 * the normalized text, and decodes to its content "AB" */
Test(pipeline_added, normalized_token_matches_its_normalized_form)
{
    char *j = bpe_json("", ABC, "[]",
                       "\"normalizer\":{\"type\":\"Lowercase\"},"
                       "\"added_tokens\":[{\"id\":3,\"content\":\"AB\",\"normalized\":true}]");
    qfmt_tokenizer *t = load_ok(j);
    expect_ids(t, "cAb", IDS(2, 3));
    expect_ids(t, "cab", IDS(2, 3));
    expect_decode(t, IDS(2, 3), false, "c AB");
    qfmt_tokenizer_free(t);
    free(j);
}

/* a normalized=false token is matched on the raw text, before the normalizer: "AB" does not
 * match "ab", and after the match the rest is normalized */
Test(pipeline_added, raw_token_matches_before_normalization)
{
    char *j = bpe_json("", ABC, "[]",
                       "\"normalizer\":{\"type\":\"Lowercase\"},"
                       "\"added_tokens\":[{\"id\":3,\"content\":\"AB\",\"normalized\":false}]");
    qfmt_tokenizer *t = load_ok(j);
    expect_ids(t, "CABab", IDS(2, 3, 0, 1));
    qfmt_tokenizer_free(t);
    free(j);
}

/* two tokens whose matched forms coincide: daachorse refuses duplicate patterns, so HF cannot
 * load the file */
Test(pipeline_added, duplicate_normalized_forms_refused)
{
    char *j = bpe_json("", ABC, "[]",
                       "\"normalizer\":{\"type\":\"Lowercase\"},"
                       "\"added_tokens\":[{\"id\":3,\"content\":\"X\",\"normalized\":true},"
                       "{\"id\":4,\"content\":\"x\",\"normalized\":true}]");
    cr_assert_eq(load_status(j), QFMT_E_CORRUPT);
    free(j);
}

/* lstrip: the whitespace before the match joins it (\s*$ on the text before) */
Test(pipeline_added, lstrip)
{
    char *j = bpe_json("", ABCS, "[]", "\"added_tokens\":[{\"id\":4,\"content\":\"<m>\",\"lstrip\":true,\"normalized\":false}]");
    encode_and_free(j, "a  <m>b", IDS(0, 4, 1));
}

/* rstrip: the whitespace after the match joins it; when a later match lies inside what the
 * rstrip took, HF's start_offset moves back to that match's end and the text after it is
 * encoded (again): "<x>" takes "<x>   ", then "  " matches at 3..5 and " a" is encoded */
Test(pipeline_added, rstrip_overlap_moves_start_back)
{
    char *j = bpe_json("", ABCS, "[]",
                       "\"added_tokens\":[{\"id\":4,\"content\":\"<x>\",\"rstrip\":true,\"normalized\":false},"
                       "{\"id\":5,\"content\":\"  \",\"normalized\":false}]");
    qfmt_tokenizer *t = load_ok(j);
    expect_ids(t, "<x>   a", IDS(4, 5, 3, 0));
    expect_ids(t, "<x>  a", IDS(4, 5, 0));
    expect_ids(t, "<x> a", IDS(4, 0));
    qfmt_tokenizer_free(t);
    free(j);
}

/* single_word: discarded when a \w character touches either side (ends_with_word /
 * starts_with_word); the discarded match still consumes its text for matching */
Test(pipeline_added, single_word)
{
    char *j = bpe_json("", ABCS, "[]",
                       "\"added_tokens\":[{\"id\":4,\"content\":\"ab\",\"single_word\":true,\"normalized\":false}]");
    qfmt_tokenizer *t = load_ok(j);
    expect_ids(t, "ab a ab", IDS(4, 3, 0, 3, 4));
    expect_ids(t, "aab", IDS(0, 0, 1));
    expect_ids(t, "abc", IDS(0, 1, 2));
    expect_ids(t, " ab ", IDS(3, 4, 3));
    qfmt_tokenizer_free(t);
    free(j);
}

/* special tokens are split out too (encode_special_tokens defaults to false) and skipped by
 * decode(skip_special_tokens) */
Test(pipeline_added, special_tokens_split_and_skipped)
{
    char *j = bpe_json("", ABC, "[]",
                       "\"added_tokens\":[{\"id\":3,\"content\":\"<s>\",\"special\":true,\"normalized\":false}]");
    qfmt_tokenizer *t = load_ok(j);
    expect_ids(t, "a<s>b", IDS(0, 3, 1));
    expect_decode(t, IDS(0, 3, 1), false, "a <s> b");
    expect_decode(t, IDS(0, 3, 1), true, "a b");
    qfmt_tokenizer_free(t);
    free(j);
}

/* ---- added tokens: ids ------------------------------------------------------------------ */

/* next_id starts at the model's vocab size (its count, 3 here, not its largest id + 1) and
 * grows per new token; a token whose content is in the vocab takes the model's id */
Test(pipeline_added, next_id_counts_from_the_vocab_size)
{
    char *j = bpe_json("", "{\"a\":0,\"b\":1,\"c\":5}", "[]",
                       "\"added_tokens\":[{\"id\":5,\"content\":\"c\",\"normalized\":false},"
                       "{\"id\":3,\"content\":\"<n>\",\"normalized\":false},"
                       "{\"id\":4,\"content\":\"<o>\",\"normalized\":false}]");
    qfmt_tokenizer *t = load_ok(j);
    expect_ids(t, "<n>c<o>", IDS(3, 5, 4));
    cr_assert_eq(qfmt_tokenizer_token_id(t, "<o>"), 4);
    qfmt_tokenizer_free(t);
    free(j);
    /* an id HF would not give: refused */
    j = bpe_json("", "{\"a\":0,\"b\":1,\"c\":5}", "[]",
                 "\"added_tokens\":[{\"id\":5,\"content\":\"c\"},{\"id\":6,\"content\":\"<n>\"}]");
    cr_assert_eq(load_status(j), QFMT_E_CORRUPT);
    free(j);
}

/* an empty content: HF's add_tokens ignores the token (its id included); qfmt refuses the
 * file (a stricter choice) */
Test(pipeline_added, empty_content_refused)
{
    char *j = bpe_json("", ABC, "[]",
                       "\"added_tokens\":[{\"id\":9,\"content\":\"\"},{\"id\":3,\"content\":\"<n>\"}]");
    cr_assert_eq(load_status(j), QFMT_E_CORRUPT);
    free(j);
}

/* ---- BPE ------------------------------------------------------------------------------------ */

/* convert_merges_to_hashmap: "#version" lines are skipped; a line must split on ' ' into
 * exactly two parts */
Test(pipeline_bpe, legacy_merges_parsing)
{
    char *j = bpe_json("", "{\"a\":0,\"b\":1,\"ab\":2}", "[\"#version: 0.2\",\"a b\"]", "");
    encode_and_free(j, "ab", IDS(2));
    j = bpe_json("", "{\"a\":0,\"b\":1,\"ab\":2,\"b c\":3}", "[\"a b c\"]", "");
    cr_assert_eq(load_status(j), QFMT_E_CORRUPT);
    free(j);
    j = bpe_json("", "{\"a\":0,\"b\":1,\"ab\":2}", "[\"ab\"]", "");
    cr_assert_eq(load_status(j), QFMT_E_CORRUPT);
    free(j);
}

/* the merge map is collected from (pair, (index, new_id)): a later duplicate pair replaces the
 * earlier, so "a b" has rank 2 and "b c" (rank 1) merges first */
Test(pipeline_bpe, duplicate_merge_later_rank_wins)
{
    char *j = bpe_json("", "{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"bc\":4}", "[\"a b\",\"b c\",\"a b\"]", "");
    encode_and_free(j, "abc", IDS(0, 4));
    j = bpe_json("", "{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"bc\":4}", "[[\"a\",\"b\"],[\"b\",\"c\"]]", "");
    encode_and_free(j, "abc", IDS(3, 2));
}

/* equal ranks: the leftmost position first (Merge's Ord) */
Test(pipeline_bpe, same_pair_leftmost_first)
{
    char *j = bpe_json("", "{\"a\":0,\"aa\":1}", "[\"a a\"]", "");
    encode_and_free(j, "aaa", IDS(1, 0));
}

/* an unk_token not in the vocab: HF loads the file and fails only when a character needs it
 * (merge_word's UnkTokenOutOfVocabulary); qfmt refuses it at load (a stricter choice) */
Test(pipeline_bpe, unk_token_missing_refused)
{
    char *j = bpe_json("\"unk_token\":\"<unk>\"", ABC, "[]", "");
    cr_assert_eq(load_status(j), QFMT_E_CORRUPT);
    free(j);
}

/* byte_fallback: a pending unk stays pending over byte tokens (merge_word `continue`s) */
Test(pipeline_bpe, byte_fallback_pending_unk_order)
{
    char *j = bpe_json("\"unk_token\":\"<unk>\",\"byte_fallback\":true", "{\"a\":0,\"<unk>\":1,\"<0x7A>\":2}", "[]", "");
    encode_and_free(j, "yza", IDS(2, 1, 0));
}

/* byte_fallback falls back on the bytes of the looked-up string, prefix included */
Test(pipeline_bpe, byte_fallback_uses_prefixed_string)
{
    char *j = bpe_json("\"continuing_subword_prefix\":\"##\",\"byte_fallback\":true",
                       "{\"a\":0,\"<0x23>\":1,\"<0x7A>\":2}", "[]", "");
    encode_and_free(j, "az", IDS(0, 1, 1, 2));
}

/* the merged token is a + b[prefix_len..], and the suffix is on the last character */
Test(pipeline_bpe, prefix_and_suffix)
{
    char *j = bpe_json("\"continuing_subword_prefix\":\"##\",\"end_of_word_suffix\":\"</w>\"",
                       "{\"a\":0,\"##b\":1,\"ab\":2,\"##b</w>\":3,\"ab</w>\":4,\"b\":5}", "[\"a ##b</w>\",\"a ##b\"]", "");
    qfmt_tokenizer *t = load_ok(j);
    expect_ids(t, "ab", IDS(4));
    expect_ids(t, "abb", IDS(2, 3));
    qfmt_tokenizer_free(t);
    free(j);
}

/* unk: fused runs with fuse_unk, one per character without; no unk_token: dropped */
Test(pipeline_bpe, unk_fuse_and_drop)
{
    char *j = bpe_json("\"unk_token\":\"<unk>\",\"fuse_unk\":true", "{\"a\":0,\"<unk>\":1}", "[]", "");
    encode_and_free(j, "xya", IDS(1, 0));
    j = bpe_json("\"unk_token\":\"<unk>\",\"fuse_unk\":false", "{\"a\":0,\"<unk>\":1}", "[]", "");
    encode_and_free(j, "xya", IDS(1, 1, 0));
    j = bpe_json("", "{\"a\":0,\"<unk>\":1}", "[]", "");
    encode_and_free(j, "xay", IDS(0));
}

/* ignore_merges: a word in the vocab is one token, merges or not */
Test(pipeline_bpe, ignore_merges)
{
    char *j = bpe_json("\"ignore_merges\":true", "{\"a\":0,\"b\":1,\"c\":2,\"abc\":3}", "[]", "");
    encode_and_free(j, "abc", IDS(3));
    j = bpe_json("", "{\"a\":0,\"b\":1,\"c\":2,\"abc\":3}", "[]", "");
    encode_and_free(j, "abc", IDS(0, 1, 2));
}

/* invalid UTF-8, NUL bytes, empty text and a long word: no crash, each invalid byte its own
 * (unknown) character */
Test(pipeline_bpe, hostile_text)
{
    char *j = bpe_json("\"unk_token\":\"<unk>\"", "{\"a\":0,\"<unk>\":1,\"aa\":2}", "[\"a a\"]", "");
    qfmt_tokenizer *t = load_ok(j);
    int32_t *ids = NULL;
    size_t n = 0;
    qfmt_error err;
    cr_assert_eq(qfmt_tokenizer_encode(t, "a\xC3\xFF" "a\0a", 6, &ids, &n, &err), QFMT_OK);
    int32_t want[] = {0, 1, 1, 0, 1, 0};
    cr_assert_eq(n, 6);
    for (size_t i = 0; i < n; i++) cr_assert_eq(ids[i], want[i]);
    free(ids);
    cr_assert_eq(qfmt_tokenizer_encode(t, "", 0, &ids, &n, &err), QFMT_OK);
    cr_assert_eq(n, 0);
    size_t big = 1 << 20;
    char *w = malloc(big);
    cr_assert_not_null(w);
    memset(w, 'a', big);
    cr_assert_eq(qfmt_tokenizer_encode(t, w, big, &ids, &n, &err), QFMT_OK);
    cr_assert_eq(n, big / 2);
    for (size_t i = 0; i < n; i++) cr_assert_eq(ids[i], 2);
    free(ids);
    free(w);
    qfmt_tokenizer_free(t);
    free(j);
}

/* ---- decode -------------------------------------------------------------------------------- */

/* no decoder: the token strings joined by " " */
Test(pipeline_decode, no_decoder_joins_with_spaces)
{
    char *j = bpe_json("", ABC, "[]", "");
    qfmt_tokenizer *t = load_ok(j);
    expect_decode(t, IDS(0, 1, 2), false, "a b c");
    expect_decode(t, NULL, 0, false, "");
    qfmt_tokenizer_free(t);
    free(j);
}

/* step_decode_stream: the new text once the decode grows past the prefix and does not end in
 * U+FFFD; a decode that no longer starts with the printed prefix is HF's InvalidPrefix. With
 * ByteFallback, "<0x41>" prints "A"; "<0x41><0x80>" is two U+FFFD (held back); adding "b"
 * gives "\uFFFD\uFFFDb", which does not start with "A" */
Test(pipeline_decode, stream_invalid_prefix)
{
    char *j = bpe_json("", "{\"<0x41>\":0,\"<0x80>\":1,\"b\":2}", "[]", "\"decoder\":{\"type\":\"ByteFallback\"}");
    qfmt_tokenizer *t = load_ok(j);
    expect_decode(t, IDS(0, 1, 2), false, "\xEF\xBF\xBD\xEF\xBF\xBD" "b");
    qfmt_decode_stream *ds = NULL;
    qfmt_error err;
    cr_assert_eq(qfmt_decode_stream_new(&ds, t, false, &err), QFMT_OK);
    const char *s;
    size_t n;
    cr_assert_eq(qfmt_decode_stream_step(ds, 0, &s, &n, &err), QFMT_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(s[0], 'A');
    cr_assert_eq(qfmt_decode_stream_step(ds, 1, &s, &n, &err), QFMT_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(qfmt_decode_stream_step(ds, 2, &s, &n, &err), QFMT_E_STATE);
    cr_assert_eq(n, 0);
    qfmt_decode_stream_free(ds);
    qfmt_tokenizer_free(t);
    free(j);
}

/* the window: after each printed piece the context is the ids since the previous prefix */
Test(pipeline_decode, stream_pieces)
{
    char *j = bpe_json("", ABC, "[]", "");
    qfmt_tokenizer *t = load_ok(j);
    qfmt_decode_stream *ds = NULL;
    qfmt_error err;
    cr_assert_eq(qfmt_decode_stream_new(&ds, t, false, &err), QFMT_OK);
    const char *want[] = {"a", " b", " c", " a"};
    int32_t ids[] = {0, 1, 2, 0};
    for (int i = 0; i < 4; i++) {
        const char *s;
        size_t n;
        cr_assert_eq(qfmt_decode_stream_step(ds, ids[i], &s, &n, &err), QFMT_OK);
        cr_assert_eq(n, strlen(want[i]), "step %d: '%.*s'", i, (int)n, s);
        cr_assert_eq(memcmp(s, want[i], n), 0);
    }
    qfmt_decode_stream_free(ds);
    qfmt_tokenizer_free(t);
    free(j);
}
