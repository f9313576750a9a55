/*
 * test_tk_models.c - the WordPiece and Unigram models of the tokenizer pipeline
 * (libqfmt_model/src/tokenizer/wordpiece.c, unigram.c; interfaces in tk_internal.h).
 *
 * Expectations follow Hugging Face tokenizers' models/wordpiece (WordPiece::tokenize) and
 * models/unigram (Unigram::encode_optimized + tokenize): hand-worked small cases, and random
 * words checked against direct transcriptions of those algorithms (all substrings looked up,
 * no trie, no length bound), which the optimized C code must match exactly.
 */
#include "test_helpers.h"

#include <math.h>
#include <pthread.h>

#include "tokenizer/tk_internal.h"

/* ---- helpers ------------------------------------------------------------------------- */

typedef struct {
    cJSON *json;
    tk_vocab *vocab;
    tk_wordpiece *wp;
    tk_unigram *ug;
    qfmt_error err;
    int rc;
} model_ctx;

/* The vocab as the tokenizer builds it for WordPiece: model.vocab {"token": id}. */
static tk_vocab *vocab_from_object(const cJSON *model) {
    tk_vocab *v = qfmt__tk_vocab_new();
    cr_assert_not_null(v);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(model, "vocab")) {
        if (cJSON_IsNumber(e)) cr_assert_eq(qfmt__tk_vocab_add(v, e->string, strlen(e->string), (int32_t)e->valuedouble), 0);
    }
    return v;
}

/* For Unigram: model.vocab [[piece, score], ...], id = index (malformed entries skipped: the
 * model's loader must refuse them). */
static tk_vocab *vocab_from_list(const cJSON *model) {
    tk_vocab *v = qfmt__tk_vocab_new();
    cr_assert_not_null(v);
    const cJSON *e;
    int32_t id = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(model, "vocab")) {
        const cJSON *s = cJSON_GetArrayItem(e, 0);
        if (cJSON_IsString(s)) cr_assert_geq(qfmt__tk_vocab_add(v, s->valuestring, strlen(s->valuestring), id), 0);
        id++;
    }
    return v;
}

static model_ctx wp_load(const char *json) {
    model_ctx c = {0};
    c.json = cJSON_Parse(json);
    cr_assert_not_null(c.json, "bad test JSON: %s", json);
    c.vocab = vocab_from_object(c.json);
    c.rc = qfmt__tk_wordpiece_load(c.json, c.vocab, &c.wp, &c.err);
    return c;
}

static model_ctx ug_load(const char *json) {
    model_ctx c = {0};
    c.json = cJSON_Parse(json);
    cr_assert_not_null(c.json, "bad test JSON: %s", json);
    c.vocab = vocab_from_list(c.json);
    c.rc = qfmt__tk_unigram_load(c.json, c.vocab, &c.ug, &c.err);
    return c;
}

static void ctx_free(model_ctx *c) {
    qfmt__tk_wordpiece_free(c->wp);
    qfmt__tk_unigram_free(c->ug);
    qfmt__tk_vocab_free(c->vocab);
    cJSON_Delete(c->json);
}

static void expect_ids(const tk_ids *got, const int32_t *want, size_t n, const char *what) {
    cr_assert_eq(got->n, n, "%s: %zu ids, want %zu", what, got->n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got->v[i], want[i], "%s: id[%zu] = %d, want %d", what, i, got->v[i], want[i]);
}

/* Encodes w[0..n) and compares with the expected ids (an empty list included). */
static void wp_expect_n(const model_ctx *c, const char *w, size_t n, const int32_t *want, size_t nwant) {
    tk_ids ids = {0};
    qfmt_error err = {0};
    cr_assert_eq(qfmt__tk_wordpiece_encode(c->wp, c->vocab, w, n, &ids, &err), 0, "%s", err.message);
    expect_ids(&ids, want, nwant, w);
    qfmt__tk_ids_free(&ids);
}

static void ug_expect_n(const model_ctx *c, const char *w, size_t n, const int32_t *want, size_t nwant) {
    tk_ids ids = {0};
    qfmt_error err = {0};
    cr_assert_eq(qfmt__tk_unigram_encode(c->ug, c->vocab, w, n, &ids, &err), 0, "%s", err.message);
    expect_ids(&ids, want, nwant, w);
    qfmt__tk_ids_free(&ids);
}

#define IDS(...) ((const int32_t[]){__VA_ARGS__}), (sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t))
#define WP_EXPECT(c, w, ...) wp_expect_n((c), (w), strlen(w), IDS(__VA_ARGS__))
#define UG_EXPECT(c, w, ...) ug_expect_n((c), (w), strlen(w), IDS(__VA_ARGS__))

/* ---- WordPiece ----------------------------------------------------------------------- */

#define WP_VOCAB                                                                                         \
    "\"vocab\":{\"[UNK]\":0,\"un\":1,\"##aff\":2,\"##able\":3,\"want\":4,\"##ed\":5,\"a\":6,\"##b\":7," \
    "\"\xc3\xa9\":8,\"##\xc3\xa9\":9,\"##\xc3\xbc\":10,\"\xc3\xbc\":11,\"wa\":12,\"##nt\":13,"          \
    "\"\xe2\x82\xac\":14,\"##\xf0\x9f\x98\x80\":15}"

static model_ctx wp_default(void) {
    model_ctx c = wp_load("{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\","
                          "\"max_input_chars_per_word\":100," WP_VOCAB "}");
    cr_assert_eq(c.rc, 0, "%s", c.err.message);
    return c;
}

Test(wordpiece, greedy_longest_match_first) {
    model_ctx c = wp_default();
    WP_EXPECT(&c, "unaffable", 1, 2, 3);
    WP_EXPECT(&c, "wanted", 4, 5); /* "want" before "wa" + "##nt" */
    WP_EXPECT(&c, "a", 6);
    WP_EXPECT(&c, "abbb", 6, 7, 7, 7);
    ctx_free(&c);
}

Test(wordpiece, unmatched_position_makes_the_whole_word_unk) {
    model_ctx c = wp_default();
    WP_EXPECT(&c, "unaffablex", 0); /* the tail */
    WP_EXPECT(&c, "xun", 0);        /* the head */
    WP_EXPECT(&c, "ed", 0);         /* only "##ed" exists: a first piece has no prefix */
    WP_EXPECT(&c, "a##b", 0);       /* "##" is not matched literally as a continuation */
    ctx_free(&c);
}

Test(wordpiece, output_is_appended_and_a_failed_word_drops_only_its_pieces) {
    model_ctx c = wp_default();
    tk_ids ids = {0};
    qfmt_error err = {0};
    cr_assert_eq(qfmt__tk_ids_push(&ids, 99), 0);
    cr_assert_eq(qfmt__tk_wordpiece_encode(c.wp, c.vocab, "unaffablex", 10, &ids, &err), 0);
    cr_assert_eq(qfmt__tk_wordpiece_encode(c.wp, c.vocab, "wanted", 6, &ids, &err), 0);
    expect_ids(&ids, (const int32_t[]){99, 0, 4, 5}, 4, "appended");
    qfmt__tk_ids_free(&ids);
    ctx_free(&c);
}

Test(wordpiece, multibyte_chars) {
    model_ctx c = wp_default();
    WP_EXPECT(&c, "\xc3\xbc\xc3\xa9", 11, 9);                     /* üé */
    WP_EXPECT(&c, "\xc3\xa9\xc3\xbc\xc3\xa9", 8, 10, 9);          /* éüé */
    WP_EXPECT(&c, "\xe2\x82\xac\xf0\x9f\x98\x80", 14, 15);       /* €😀 */
    WP_EXPECT(&c, "\xe2\x82\xac\xf0\x9f\x98", 0);                 /* truncated emoji */
    ctx_free(&c);
}

Test(wordpiece, invalid_utf8_and_empty_words) {
    model_ctx c = wp_default();
    WP_EXPECT(&c, "a\xff", 0);
    WP_EXPECT(&c, "\xff", 0);
    WP_EXPECT(&c, "\xc3", 0); /* a lead byte at the very end: never read past n */
    wp_expect_n(&c, "", 0, NULL, 0);
    /* the word is a prefix of a longer buffer: only n bytes count */
    wp_expect_n(&c, "unaffablex", 9, IDS(1, 2, 3));
    ctx_free(&c);
}

Test(wordpiece, max_input_chars_per_word_counts_chars) {
    model_ctx c = wp_load("{\"max_input_chars_per_word\":4," WP_VOCAB "}");
    cr_assert_eq(c.rc, 0, "%s", c.err.message);
    WP_EXPECT(&c, "want", 4);
    WP_EXPECT(&c, "wanted", 0);
    WP_EXPECT(&c, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, 9, 9, 9); /* 4 chars, 8 bytes */
    WP_EXPECT(&c, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 0);  /* 5 chars */
    WP_EXPECT(&c, "\xff\xff\xff\xff\xff", 0);                      /* 5 invalid bytes: 5 chars */
    ctx_free(&c);
}

Test(wordpiece, default_limit_is_100_chars) {
    model_ctx c = wp_load("{" WP_VOCAB "}"); /* defaults: [UNK], ##, 100 */
    cr_assert_eq(c.rc, 0, "%s", c.err.message);
    char w[102];
    w[0] = 'a';
    memset(w + 1, 'b', 100);
    int32_t want[100];
    want[0] = 6;
    for (int i = 1; i < 100; i++) want[i] = 7;
    wp_expect_n(&c, w, 100, want, 100);
    wp_expect_n(&c, w, 101, IDS(0));
    ctx_free(&c);
}

Test(wordpiece, custom_unk_and_prefix) {
    model_ctx c = wp_load("{\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":\"@@\","
                          "\"vocab\":{\"<unk>\":3,\"run\":0,\"@@ning\":1,\"@@n\":2,\"##ning\":4}}");
    cr_assert_eq(c.rc, 0, "%s", c.err.message);
    WP_EXPECT(&c, "running", 0, 1);
    WP_EXPECT(&c, "runn", 0, 2);
    WP_EXPECT(&c, "runx", 3);
    ctx_free(&c);
    /* an empty prefix: later pieces are plain tokens */
    c = wp_load("{\"continuing_subword_prefix\":\"\",\"vocab\":{\"[UNK]\":0,\"ab\":1,\"c\":2}}");
    cr_assert_eq(c.rc, 0, "%s", c.err.message);
    WP_EXPECT(&c, "abcab", 1, 2, 1);
    ctx_free(&c);
}

Test(wordpiece, refusals) {
    static const char *bad[] = {
        "{\"unk_token\":\"<unk>\"," WP_VOCAB "}",   /* unk not in the vocab */
        "{\"vocab\":{\"a\":0}}",                  /* default [UNK] not in the vocab */
        "{\"unk_token\":5," WP_VOCAB "}",
        "{\"continuing_subword_prefix\":[]," WP_VOCAB "}",
        "{\"max_input_chars_per_word\":-1," WP_VOCAB "}",
        "{\"max_input_chars_per_word\":1.5," WP_VOCAB "}",
        "{\"max_input_chars_per_word\":\"100\"," WP_VOCAB "}",
        "{\"vocab\":[[\"[UNK]\",0]]}",            /* vocab not an object */
        "{\"unk_token\":\"[UNK]\"}",              /* no vocab */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        model_ctx c = wp_load(bad[i]);
        cr_assert_eq(c.rc, -1, "accepted: %s", bad[i]);
        cr_assert_eq(c.err.code, QFMT_E_CORRUPT, "%s: code %d", bad[i], c.err.code);
        cr_assert_null(c.wp);
        cr_assert(strstr(c.err.message, "model"), "%s", c.err.message);
        ctx_free(&c);
    }
}

Test(wordpiece, null_options_take_the_defaults) {
    model_ctx c = wp_load("{\"unk_token\":null,\"continuing_subword_prefix\":null,"
                          "\"max_input_chars_per_word\":null,\"something_else\":1," WP_VOCAB "}");
    cr_assert_eq(c.rc, 0, "%s", c.err.message);
    WP_EXPECT(&c, "unaffable", 1, 2, 3);
    ctx_free(&c);
}

/* HF's WordPiece::tokenize as written: every end from the word's end down, all lookups. */
static void wp_reference(const tk_vocab *v, const char *prefix, int32_t unk, size_t max_chars, const char *w,
                         size_t n, tk_ids *out) {
    size_t plen = strlen(prefix), chars = 0, bound[256];
    uint32_t cp;
    for (size_t i = 0; i < n; i += qfmt__tk_utf8_next(w + i, n - i, &cp)) bound[chars++] = i;
    bound[chars] = n;
    if (chars > max_chars) {
        qfmt__tk_ids_push(out, unk);
        return;
    }
    char buf[512];
    size_t mark = out->n;
    for (size_t s = 0; s < chars;) {
        size_t e = chars;
        int32_t id = -1;
        for (; e > s; e--) {
            size_t lead = s ? plen : 0;
            memcpy(buf, prefix, lead);
            memcpy(buf + lead, w + bound[s], bound[e] - bound[s]);
            if ((id = qfmt__tk_vocab_id(v, buf, lead + bound[e] - bound[s])) >= 0) break;
        }
        if (id < 0) {
            out->n = mark;
            qfmt__tk_ids_push(out, unk);
            return;
        }
        qfmt__tk_ids_push(out, id);
        s = e;
    }
}

static const char *const ALPHABET[] = {"a", "b", "c", "\xc3\xa9", "\xe2\x82\xac", "\xff", "#"};
#define NALPHA (sizeof ALPHABET / sizeof *ALPHABET)

static size_t random_word(uint64_t *st, char *w, size_t max_chars) {
    size_t chars = 1 + th_rand(st) % max_chars, n = 0;
    for (size_t i = 0; i < chars; i++) {
        const char *a = ALPHABET[th_rand(st) % NALPHA];
        memcpy(w + n, a, strlen(a));
        n += strlen(a);
    }
    return n;
}

Test(wordpiece, random_words_match_the_reference) {
    uint64_t st = 42;
    for (int round = 0; round < 20; round++) {
        /* a random vocab of short strings over the alphabet, some with the prefix */
        cJSON *model = cJSON_CreateObject(), *vocab = cJSON_AddObjectToObject(model, "vocab");
        cJSON_AddNumberToObject(vocab, "[UNK]", 0);
        cJSON_AddNumberToObject(model, "max_input_chars_per_word", 3 + round);
        for (int i = 1; i < 60; i++) {
            char s[64];
            size_t n = (th_rand(&st) & 1) ? (memcpy(s, "##", 2), 2) : 0;
            n += random_word(&st, s + n, 4);
            s[n] = 0;
            if (!cJSON_GetObjectItemCaseSensitive(vocab, s)) cJSON_AddNumberToObject(vocab, s, i);
        }
        model_ctx c = {0};
        c.json = model;
        c.vocab = vocab_from_object(model);
        cr_assert_eq(qfmt__tk_wordpiece_load(model, c.vocab, &c.wp, &c.err), 0, "%s", c.err.message);
        for (int k = 0; k < 300; k++) {
            char w[256];
            size_t n = random_word(&st, w, 30);
            tk_ids got = {0}, want = {0};
            qfmt_error err = {0};
            cr_assert_eq(qfmt__tk_wordpiece_encode(c.wp, c.vocab, w, n, &got, &err), 0);
            wp_reference(c.vocab, "##", 0, 3 + (size_t)round, w, n, &want);
            expect_ids(&got, want.v, want.n, "random word");
            qfmt__tk_ids_free(&got);
            qfmt__tk_ids_free(&want);
        }
        ctx_free(&c);
    }
}

/* ---- Unigram ------------------------------------------------------------------------- */

static model_ctx ug_ok(const char *json) {
    model_ctx c = ug_load(json);
    cr_assert_eq(c.rc, 0, "%s: %s", json, c.err.message);
    return c;
}

Test(unigram, viterbi_beats_greedy_longest_match) {
    /* "abc": greedy longest takes "abc" (-10); the best path is a + bc (-2.5) */
    model_ctx c = ug_ok("{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"a\",-1.0],[\"b\",-1.0],"
                        "[\"ab\",-3.0],[\"abc\",-10.0],[\"c\",-1.0],[\"bc\",-1.5]],\"byte_fallback\":false}");
    UG_EXPECT(&c, "abc", 1, 6);
    UG_EXPECT(&c, "ab", 1, 2); /* -2 beats "ab" at -3 */
    UG_EXPECT(&c, "cab", 5, 1, 2);
    ug_expect_n(&c, "", 0, NULL, 0);
    ctx_free(&c);
}

Test(unigram, hf_doc_example) {
    /* Unigram::encode's doc test: "abcdacdxx" -> abcd, a, cd, xx (xx fused into one unk) */
    model_ctx c = ug_ok("{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"a\",0.0],[\"b\",0.0],[\"c\",0.0],[\"d\",0.0],"
                        "[\"cd\",1.0],[\"ab\",2.0],[\"abc\",5.0],[\"abcd\",10.0]]}");
    UG_EXPECT(&c, "abcdacdxx", 8, 1, 5, 0);
    ctx_free(&c);
}

Test(unigram, ties_keep_the_first_candidate) {
    /* a + b = ab = -2: the node at 2 gets "ab" first (from start 0), b from start 1 is not
     * strictly better */
    model_ctx c = ug_ok("{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"a\",-1.0],[\"b\",-1.0],[\"ab\",-2.0]]}");
    UG_EXPECT(&c, "ab", 3);
    UG_EXPECT(&c, "abab", 3, 3);
    ctx_free(&c);
    /* a + bc = ab + c: from start 0, "ab" reaches 2, then c reaches 3 from start 2; a + bc
     * reaches 3 from start 1 first, so it stays */
    c = ug_ok("{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"a\",-1.0],[\"bc\",-2.0],[\"ab\",-2.0],[\"c\",-1.0],"
              "[\"b\",-5.0]]}");
    UG_EXPECT(&c, "abc", 1, 2);
    ctx_free(&c);
}

Test(unigram, scores_are_read_as_serde_json_reads_them) {
    /* serde_json (HF) reads -9.336775779724121 as 16 digits / 1e15 rounded twice: one ulp above
     * the correctly rounded value, exactly -9.33677577972412. So for HF "a" + "b" ties with
     * "ab" (the first candidate, "ab", stays); read with strtod, "ab" would be one ulp lower and
     * lose to a + b. */
    model_ctx c = ug_ok("{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"ab\",-9.336775779724121],"
                        "[\"a\",-9.33677577972412],[\"b\",0.0]]}");
    UG_EXPECT(&c, "ab", 1);
    ctx_free(&c);
    /* and the control: one ulp lower for real, "ab" loses */
    c = ug_ok("{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"ab\",-9.336775779724123],"
              "[\"a\",-9.33677577972412],[\"b\",0.0]]}");
    UG_EXPECT(&c, "ab", 2, 3);
    ctx_free(&c);
}

Test(unigram, unknown_chars_are_fused_into_one_unk) {
    model_ctx c = ug_ok("{\"unk_id\":1,\"vocab\":[[\"a\",-1.0],[\"<unk>\",0.0],[\"b\",-1.0]]}");
    UG_EXPECT(&c, "axxb", 0, 1, 2);
    UG_EXPECT(&c, "xyz", 1);
    UG_EXPECT(&c, "\xc3\xa9\xe2\x82\xac" "a\xff\xfe", 1, 0, 1);
    UG_EXPECT(&c, "\xe2\x82", 1); /* a truncated sequence: two invalid bytes, never read past n */
    ctx_free(&c);
}

Test(unigram, unk_score_is_min_score_minus_10) {
    /* "xab": unk(x) + ab = (-11 - 10) + 0 = -21 beats xa + b = -10.5 - 11 = -21.5; with a
     * penalty of 11 instead of 10 it would not */
    model_ctx c = ug_ok("{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"ab\",0.0],[\"xa\",-10.5],[\"b\",-11.0]]}");
    UG_EXPECT(&c, "xab", 0, 1);
    ctx_free(&c);
    c = ug_ok("{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"ab\",0.0],[\"xa\",-9.5],[\"b\",-11.0]]}");
    UG_EXPECT(&c, "xab", 2, 3);
    ctx_free(&c);
}

Test(unigram, a_fused_run_that_is_a_piece_gets_its_id) {
    /* positive scores: unk = 25 - 10 = 15, two unks (30) beat the piece "xx" (25); the fused
     * string "xx" is then looked up, as HF's tokenize does */
    model_ctx c = ug_ok("{\"unk_id\":0,\"vocab\":[[\"<unk>\",30.0],[\"xx\",25.0]]}");
    UG_EXPECT(&c, "xx", 1);
    ctx_free(&c);
}

Test(unigram, literal_unk_piece_fuses_with_unknown_chars) {
    /* a node whose id is unk_id fuses whatever its string: "<unk>" read literally joins the
     * unknown "z" next to it; "z<unk>" is no piece, so the run is one unk */
    model_ctx c = ug_ok("{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"a\",-1.0]]}");
    UG_EXPECT(&c, "<unk>", 0);
    UG_EXPECT(&c, "z<unk>a", 0, 1);
    ctx_free(&c);
}

#define BYTE_VOCAB                                                                                  \
    "[[\"<unk>\",0.0],[\"a\",-1.0],[\"<0xC3>\",-5.0],[\"<0xA9>\",-5.0],[\"<0xFF>\",-5.0],[\"<0x41>\",-5.0]," \
    "[\"<0xc3>\",-5.0]]"

Test(unigram, byte_fallback) {
    model_ctx c = ug_ok("{\"unk_id\":0,\"byte_fallback\":true,\"vocab\":" BYTE_VOCAB "}");
    UG_EXPECT(&c, "a\xc3\xa9", 1, 2, 3);                 /* é -> <0xC3> <0xA9> */
    UG_EXPECT(&c, "\xc3\xa9\xc3\xa9" "a", 2, 3, 2, 3, 1); /* a fused run: all its bytes */
    UG_EXPECT(&c, "\xff", 4);                             /* an invalid byte is a byte */
    UG_EXPECT(&c, "A", 5);
    UG_EXPECT(&c, "a\xe2\x82\xac", 1, 0);                /* <0xE2> missing: the unk */
    UG_EXPECT(&c, "\xc3\xa9\xe2\x82\xac", 0);            /* one missing byte spoils the run */
    ctx_free(&c);
    /* without byte_fallback the byte pieces are not used */
    c = ug_ok("{\"unk_id\":0,\"byte_fallback\":false,\"vocab\":" BYTE_VOCAB "}");
    UG_EXPECT(&c, "a\xc3\xa9", 1, 0);
    ctx_free(&c);
}

Test(unigram, no_unk_id) {
    model_ctx c = ug_ok("{\"unk_id\":null,\"vocab\":[[\"a\",-1.0],[\"ab\",-1.0]]}");
    /* the "b" of "aab" has no piece, but "ab" already reaches the end with a better score
     * than the unk would: HF only fails when the missing unk would be taken */
    UG_EXPECT(&c, "aab", 0, 1);
    tk_ids ids = {0};
    qfmt_error err = {0};
    cr_assert_eq(qfmt__tk_unigram_encode(c.ug, c.vocab, "ax", 2, &ids, &err), -1);
    cr_assert_eq(err.code, QFMT_E_NOT_FOUND);
    /* "ba": nothing else reaches the end of the "b" */
    cr_assert_eq(qfmt__tk_unigram_encode(c.ug, c.vocab, "ba", 2, &ids, &err), -1);
    qfmt__tk_ids_free(&ids);
    ctx_free(&c);
    /* no unk_id key at all means none too */
    c = ug_ok("{\"vocab\":[[\"a\",-1.0]]}");
    cr_assert_eq(qfmt__tk_unigram_encode(c.ug, c.vocab, "b", 1, &ids, &err), -1);
    qfmt__tk_ids_free(&ids);
    ctx_free(&c);
}

Test(unigram, empty_pieces_never_match) {
    model_ctx c = ug_ok("{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"\",5.0],[\"a\",-1.0]]}");
    UG_EXPECT(&c, "aa", 2, 2);
    ctx_free(&c);
}

Test(unigram, refusals) {
    static const char *bad[] = {
        "{\"unk_id\":0}",
        "{\"unk_id\":0,\"vocab\":{}}",
        "{\"unk_id\":null,\"vocab\":[]}",
        "{\"unk_id\":0,\"vocab\":[[\"<unk>\"]]}",
        "{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0,1.0]]}",
        "{\"unk_id\":0,\"vocab\":[[\"<unk>\",\"0\"]]}",
        "{\"unk_id\":0,\"vocab\":[[1,0.0]]}",
        "{\"unk_id\":0,\"vocab\":[\"<unk>\"]}",
        "{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],null]}",
        "{\"unk_id\":0,\"vocab\":[[\"<unk>\",1e999]]}",
        "{\"unk_id\":1,\"vocab\":[[\"<unk>\",0.0]]}",
        "{\"unk_id\":-1,\"vocab\":[[\"<unk>\",0.0]]}",
        "{\"unk_id\":0.5,\"vocab\":[[\"<unk>\",0.0],[\"a\",0.0]]}",
        "{\"unk_id\":\"0\",\"vocab\":[[\"<unk>\",0.0]]}",
        "{\"unk_id\":0,\"byte_fallback\":1,\"vocab\":[[\"<unk>\",0.0]]}",
        "{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"a\",0.0],[\"a\",-1.0]]}", /* a duplicate */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        model_ctx c = ug_load(bad[i]);
        cr_assert_eq(c.rc, -1, "accepted: %s", bad[i]);
        cr_assert(c.err.code == QFMT_E_CORRUPT, "%s: code %d", bad[i], c.err.code);
        cr_assert_null(c.ug);
        cr_assert(strstr(c.err.message, "model."), "%s", c.err.message);
        ctx_free(&c);
    }
}

Test(unigram, vocab_must_match_the_built_vocabulary) {
    model_ctx c = ug_load("{\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"a\",0.0]]}");
    cr_assert_eq(c.rc, 0);
    qfmt__tk_unigram_free(c.ug);
    c.ug = NULL;
    tk_vocab *other = qfmt__tk_vocab_new();
    cr_assert_eq(qfmt__tk_vocab_add(other, "<unk>", 5, 0), 0);
    cr_assert_eq(qfmt__tk_vocab_add(other, "b", 1, 1), 0);
    cr_assert_eq(qfmt__tk_unigram_load(c.json, other, &c.ug, &c.err), -1);
    cr_assert_eq(c.err.code, QFMT_E_CORRUPT);
    qfmt__tk_vocab_free(other);
    ctx_free(&c);
}

Test(unigram, long_words_and_long_pieces) {
    /* pieces a, aa, ..., a^64 and one 2000-byte piece; a 100k-byte word must stay fast */
    cJSON *model = cJSON_CreateObject(), *vocab = cJSON_AddArrayToObject(model, "vocab");
    cJSON_AddNumberToObject(model, "unk_id", 0);
    char s[2001];
    cJSON *e = cJSON_CreateArray();
    cJSON_AddItemToArray(e, cJSON_CreateString("<unk>"));
    cJSON_AddItemToArray(e, cJSON_CreateNumber(0.0));
    cJSON_AddItemToArray(vocab, e);
    for (int k = 1; k <= 64; k++) {
        memset(s, 'a', (size_t)k);
        s[k] = 0;
        e = cJSON_CreateArray();
        cJSON_AddItemToArray(e, cJSON_CreateString(s));
        cJSON_AddItemToArray(e, cJSON_CreateNumber(-1.0 - k / 64.0));
        cJSON_AddItemToArray(vocab, e);
    }
    memset(s, 'b', 2000);
    s[2000] = 0;
    e = cJSON_CreateArray();
    cJSON_AddItemToArray(e, cJSON_CreateString(s));
    cJSON_AddItemToArray(e, cJSON_CreateNumber(-1.0));
    cJSON_AddItemToArray(vocab, e);
    model_ctx c = {0};
    c.json = model;
    c.vocab = vocab_from_list(model);
    cr_assert_eq(qfmt__tk_unigram_load(model, c.vocab, &c.ug, &c.err), 0, "%s", c.err.message);

    size_t n = 100000;
    char *w = malloc(n);
    memset(w, 'a', n);
    tk_ids ids = {0};
    qfmt_error err = {0};
    cr_assert_eq(qfmt__tk_unigram_encode(c.ug, c.vocab, w, n, &ids, &err), 0);
    /* a path of p pieces scores -p - n/64: the fewest pieces win, ceil(100000 / 64) = 1563
     * (which of the equal-scoring arrangements is the ties' business: random_words tests it) */
    cr_assert_eq(ids.n, 1563);
    size_t total = 0;
    for (size_t i = 0; i < ids.n; i++) total += (size_t)ids.v[i]; /* id k is a^k */
    cr_assert_eq(total, n);
    ids.n = 0;
    memset(w, 'b', 4000);
    cr_assert_eq(qfmt__tk_unigram_encode(c.ug, c.vocab, w, 4001, &ids, &err), 0);
    expect_ids(&ids, (const int32_t[]){65, 65, 1}, 3, "long pieces");
    qfmt__tk_ids_free(&ids);
    free(w);
    ctx_free(&c);
}

/* HF's encode_optimized + tokenize as written, with every substring looked up. */
static int ug_reference(const tk_vocab *v, const double *score, size_t count, int32_t unk, bool byte_fallback,
                        const char *w, size_t n, tk_ids *out) {
    double min = INFINITY, best[257];
    size_t start[257];
    int32_t id[257];
    for (size_t i = 0; i < count; i++)
        if (score[i] < min) min = score[i];
    for (size_t i = 0; i <= n; i++) start[i] = SIZE_MAX, best[i] = 0, id[i] = 0;
    uint32_t cp;
    for (size_t s = 0, mb; s < n; s += mb) {
        mb = qfmt__tk_utf8_next(w + s, n - s, &cp);
        bool single = false;
        for (size_t e = s + 1; e <= n; e++) {
            int32_t p = qfmt__tk_vocab_id(v, w + s, e - s);
            if (p < 0) continue;
            double cand = score[p] + best[s];
            if (start[e] == SIZE_MAX || cand > best[e]) best[e] = cand, start[e] = s, id[e] = p;
            if (e - s == mb) single = true;
        }
        if (!single) {
            double cand = min - 10.0 + best[s];
            if (start[s + mb] == SIZE_MAX || cand > best[s + mb]) {
                if (unk < 0) return -1;
                best[s + mb] = cand, start[s + mb] = s, id[s + mb] = unk;
            }
        }
    }
    /* backwards as HF does: unk nodes gather into a run, flushed at the next other node;
     * the strings are [sa, sb) spans, last first */
    size_t sa[257], sb[257], k = 0, run_a = SIZE_MAX, run_b = 0;
    for (size_t e = n; e > 0; e = start[e]) {
        if (unk >= 0 && id[e] == unk) {
            if (run_a == SIZE_MAX) run_b = e;
            run_a = start[e];
            continue;
        }
        if (run_a != SIZE_MAX) sa[k] = run_a, sb[k++] = run_b, run_a = SIZE_MAX;
        sa[k] = start[e], sb[k++] = e;
    }
    if (run_a != SIZE_MAX) sa[k] = run_a, sb[k++] = run_b;
    while (k > 0) {
        k--;
        int32_t p = qfmt__tk_vocab_id(v, w + sa[k], sb[k] - sa[k]);
        if (p >= 0) {
            qfmt__tk_ids_push(out, p);
            continue;
        }
        bool all = byte_fallback;
        for (size_t i = sa[k]; all && i < sb[k]; i++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", (unsigned char)w[i]);
            all = qfmt__tk_vocab_id(v, name, 6) >= 0;
        }
        if (all) {
            for (size_t i = sa[k]; i < sb[k]; i++) {
                char name[8];
                snprintf(name, sizeof name, "<0x%02X>", (unsigned char)w[i]);
                qfmt__tk_ids_push(out, qfmt__tk_vocab_id(v, name, 6));
            }
        } else {
            qfmt__tk_ids_push(out, unk);
        }
    }
    return 0;
}

Test(unigram, random_words_match_the_reference) {
    static const unsigned BYTES[] = {0xC3, 0xA9, 0xFF, 0xE2, 0x82}; /* not 0xAC: "€" stays unk */
    uint64_t st = 7;
    for (int round = 0; round < 30; round++) {
        cJSON *model = cJSON_CreateObject(), *vocab = cJSON_AddArrayToObject(model, "vocab");
        int32_t unk = round % 5 == 4 ? -1 : 0;
        bool byte_fallback = round % 3 == 1;
        if (unk >= 0) cJSON_AddNumberToObject(model, "unk_id", unk);
        cJSON_AddBoolToObject(model, "byte_fallback", byte_fallback);
        double score[200];
        size_t count = 0;
        tk_vocab *seen = qfmt__tk_vocab_new();
        for (int i = 0; i < 80; i++) {
            char s[64];
            size_t n;
            if (i == 0) n = (size_t)snprintf(s, sizeof s, "<unk>");
            else if (i < 6) n = (size_t)snprintf(s, sizeof s, "<0x%02X>", BYTES[i - 1]);
            else n = random_word(&st, s, 5);
            s[n] = 0;
            if (qfmt__tk_vocab_add(seen, s, n, (int32_t)count) != 0) continue;
            /* scores from a small set of binary fractions: ties are frequent */
            score[count] = -(double)(th_rand(&st) % 16) / 4.0;
            cJSON *e = cJSON_CreateArray();
            cJSON_AddItemToArray(e, cJSON_CreateString(s));
            cJSON_AddItemToArray(e, cJSON_CreateNumber(score[count]));
            cJSON_AddItemToArray(vocab, e);
            count++;
        }
        qfmt__tk_vocab_free(seen);
        model_ctx c = {0};
        c.json = model;
        c.vocab = vocab_from_list(model);
        cr_assert_eq(qfmt__tk_unigram_load(model, c.vocab, &c.ug, &c.err), 0, "%s", c.err.message);
        for (int k = 0; k < 300; k++) {
            char w[256];
            size_t n = random_word(&st, w, 40);
            tk_ids got = {0}, want = {0};
            qfmt_error err = {0};
            int rc = qfmt__tk_unigram_encode(c.ug, c.vocab, w, n, &got, &err);
            int rrc = ug_reference(c.vocab, score, count, unk, byte_fallback, w, n, &want);
            cr_assert_eq(rc, rrc, "round %d: rc %d, reference %d", round, rc, rrc);
            if (rc == 0) expect_ids(&got, want.v, want.n, "random word");
            qfmt__tk_ids_free(&got);
            qfmt__tk_ids_free(&want);
        }
        ctx_free(&c);
    }
}

/* ---- Both: const models shared by threads ------------------------------------------------ */

#define SHARED_WORDS 200

typedef struct {
    const model_ctx *c;
    char words[SHARED_WORDS][64];
    size_t len[SHARED_WORDS];
    tk_ids want[SHARED_WORDS];
} shared_job;

static int encode_any(const model_ctx *c, const char *w, size_t n, tk_ids *out) {
    qfmt_error err = {0};
    return c->wp ? qfmt__tk_wordpiece_encode(c->wp, c->vocab, w, n, out, &err)
                 : qfmt__tk_unigram_encode(c->ug, c->vocab, w, n, out, &err);
}

/* Returns the number of words whose ids differ from the single-threaded ones. */
static void *encode_all(void *arg) {
    const shared_job *job = arg;
    uintptr_t bad = 0;
    for (int rep = 0; rep < 20; rep++)
        for (size_t i = 0; i < SHARED_WORDS; i++) {
            tk_ids got = {0};
            const tk_ids *want = &job->want[i];
            if (encode_any(job->c, job->words[i], job->len[i], &got) != 0 || got.n != want->n ||
                (got.n && memcmp(got.v, want->v, got.n * sizeof *got.v) != 0))
                bad++;
            qfmt__tk_ids_free(&got);
        }
    return (void *)bad;
}

static void run_shared(const model_ctx *c) {
    static shared_job job;
    memset(&job, 0, sizeof job);
    job.c = c;
    uint64_t st = 99;
    for (size_t i = 0; i < SHARED_WORDS; i++) {
        job.len[i] = random_word(&st, job.words[i], 12);
        cr_assert_eq(encode_any(c, job.words[i], job.len[i], &job.want[i]), 0);
    }
    pthread_t t[4];
    for (int i = 0; i < 4; i++) cr_assert_eq(pthread_create(&t[i], NULL, encode_all, &job), 0);
    for (int i = 0; i < 4; i++) {
        void *bad;
        cr_assert_eq(pthread_join(t[i], &bad), 0);
        cr_assert_eq((uintptr_t)bad, 0, "thread %d: %zu words differ", i, (size_t)(uintptr_t)bad);
    }
    for (size_t i = 0; i < SHARED_WORDS; i++) qfmt__tk_ids_free(&job.want[i]);
}

Test(models, shared_between_threads) {
    model_ctx c = wp_default();
    run_shared(&c);
    ctx_free(&c);
    c = ug_ok("{\"unk_id\":0,\"byte_fallback\":true,\"vocab\":[[\"<unk>\",0.0],[\"a\",-1.0],[\"ab\",-1.5],"
              "[\"bc\",-2.0],[\"c\",-1.0],[\"<0xC3>\",-3.0],[\"<0xA9>\",-3.0],[\"#\",-2.0]]}");
    run_shared(&c);
    ctx_free(&c);
}
