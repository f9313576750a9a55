/* test_tk_pre_tokenizer.c - the pre-tokenizers (libqfmt_model/src/tokenizer/pre_tokenizer.c)
 * against word lists derived from Hugging Face `tokenizers`' behaviour (its own tests and the
 * semantics of NormalizedString::split). */
#include "test_helpers.h"

#include "tokenizer/tk_internal.h"

#include <pthread.h>
#include <time.h>

/* GPT-2 bytes_to_unicode images used below */
#define G "\xC4\xA0" /* U+0120, byte 0x20 (space) */
#define C "\xC4\x8A" /* U+010A, byte 0x0A (newline) */
#define MS "\xE2\x96\x81" /* U+2581, Metaspace's default replacement */

static const char LLAMA3_REGEX[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN3_REGEX[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static tk_pre_tokenizer *load_node(const cJSON *j)
{
    qfmt_error err = {0};
    tk_pre_tokenizer *pt = NULL;
    int rc = qfmt__tk_pre_tokenizer_load(j, &pt, &err);
    cr_assert_eq(rc, 0, "load failed: %s", err.message);
    cr_assert_not_null(pt);
    return pt;
}

static tk_pre_tokenizer *load_json(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j, "bad test JSON: %s", json);
    tk_pre_tokenizer *pt = load_node(j);
    cJSON_Delete(j);
    return pt;
}

/* {"type": "Split", "pattern": {kind: pattern}, "behavior": behavior, "invert": invert} */
static cJSON *split_node(const char *kind, const char *pattern, const char *behavior, bool invert)
{
    cJSON *j = cJSON_CreateObject(), *p = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "Split");
    cJSON_AddStringToObject(p, kind, pattern);
    cJSON_AddItemToObject(j, "pattern", p);
    cJSON_AddStringToObject(j, "behavior", behavior);
    cJSON_AddBoolToObject(j, "invert", invert);
    return j;
}

static tk_pre_tokenizer *load_split(const char *kind, const char *pattern, const char *behavior, bool invert)
{
    cJSON *j = split_node(kind, pattern, behavior, invert);
    tk_pre_tokenizer *pt = load_node(j);
    cJSON_Delete(j);
    return pt;
}

/* Llama 3 / Qwen 3: Sequence[Split(regex, Isolated), ByteLevel(false, use_regex false)] */
static tk_pre_tokenizer *load_llama_like(const char *regex)
{
    cJSON *seq = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON_AddItemToArray(arr, split_node("Regex", regex, "Isolated", false));
    cJSON *bl = cJSON_Parse("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,"
                            "\"use_regex\":false}");
    cJSON_AddItemToArray(arr, bl);
    cJSON_AddItemToObject(seq, "pretokenizers", arr);
    tk_pre_tokenizer *pt = load_node(seq);
    cJSON_Delete(seq);
    return pt;
}

static void show(const tk_list *l, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < l->n && o + 8 < cap; i++) {
        size_t len;
        const char *w = tk_list_at(l, i, &len);
        char esc[200];
        qfmt_escape(w, len < 60 ? len : 60, esc, sizeof esc);
        int k = snprintf(buf + o, cap - o, "%s\"%s\"", i ? ", " : "", esc);
        if (k < 0) break;
        o += (size_t)k;
    }
}

/* Runs pt on text[0..n) and checks the words against want (NULL-terminated). */
static void check_words(const tk_pre_tokenizer *pt, const char *text, size_t n, bool first, const char *const *want)
{
    tk_list out = {0};
    qfmt_error err = {0};
    int rc = qfmt__tk_pre_tokenize(pt, text, n, first, &out, &err);
    cr_assert_eq(rc, 0, "pre-tokenize failed: %s", err.message);
    size_t nw = 0;
    while (want[nw]) nw++;
    char got[2048];
    show(&out, got, sizeof got);
    cr_assert_eq(out.n, nw, "got %zu words, want %zu: [%s]", out.n, nw, got);
    for (size_t i = 0; i < nw; i++) {
        size_t len;
        const char *w = tk_list_at(&out, i, &len);
        cr_assert(len == strlen(want[i]) && memcmp(w, want[i], len) == 0, "word %zu differs: got [%s], want \"%s\"", i,
                  got, want[i]);
    }
    qfmt__tk_list_free(&out);
}

#define WORDS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NO_WORDS ((const char *const[]){NULL})
#define CHECK(pt, text, first, want) check_words((pt), (text), strlen(text), (first), (want))

static void check_json(const char *json, const char *text, bool first, const char *const *want)
{
    tk_pre_tokenizer *pt = load_json(json);
    check_words(pt, text, strlen(text), first, want);
    qfmt__tk_pre_tokenizer_free(pt);
}

static void expect_refused(const char *json, qfmt_status code, const char *needle)
{
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j, "bad test JSON: %s", json);
    qfmt_error err = {0};
    tk_pre_tokenizer *pt = (tk_pre_tokenizer *)&err; /* must be reset to NULL */
    int rc = qfmt__tk_pre_tokenizer_load(j, &pt, &err);
    cJSON_Delete(j);
    cr_assert_eq(rc, -1, "loaded: %s", json);
    cr_assert_null(pt);
    cr_assert_eq(err.code, code, "code %d, want %d: %s", err.code, code, err.message);
    if (needle) cr_assert(strstr(err.message, needle), "message '%s' lacks '%s'", err.message, needle);
}

/* ---- ByteLevel ---------------------------------------------------------------------------- */
Test(tk_pre_tokenizer, byte_level_gpt2)
{
    check_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":false}", "Hello world", false, WORDS("Hello", G "world"));
    check_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":true}", "Hello world", true,
               WORDS(G "Hello", G "world"));
    /* the defaults: add_prefix_space and use_regex true */
    check_json("{\"type\":\"ByteLevel\"}", "Hello world", false, WORDS(G "Hello", G "world"));
    /* no second space when the piece already starts with one */
    check_json("{\"type\":\"ByteLevel\"}", " Hello", false, WORDS(G "Hello"));
}

Test(tk_pre_tokenizer, byte_level_regex_cases)
{
    tk_pre_tokenizer *pt = load_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}");
    CHECK(pt, "I'm here", false, WORDS("I", "'m", G "here"));
    CHECK(pt, "Hello  world", false, WORDS("Hello", G, G "world"));      /* \s+(?!\S) keeps one space */
    CHECK(pt, "a\n\nb", false, WORDS("a", C, C, "b"));
    CHECK(pt, "x 123 ?!", false, WORDS("x", G "123", G "?!"));
    CHECK(pt, "end  ", false, WORDS("end", G G));                       /* trailing run whole */
    CHECK(pt, "caf\xC3\xA9", false, WORDS("caf\xC3\x83\xC2\xA9"));          /* é = C3 A9 -> Ã© */
    CHECK(pt, "\x01", false, WORDS("\xC4\x81"));                          /* 0x01 -> U+0101 */
    /* NBSP is \s (Unicode White_Space) but not ' ': a piece of its own, C2 A0 -> "Âł" */
    CHECK(pt, "a\xC2\xA0" "b", false, WORDS("a", "\xC3\x82\xC5\x82", "b"));
    qfmt__tk_pre_tokenizer_free(pt);
}

Test(tk_pre_tokenizer, byte_level_without_regex)
{
    tk_pre_tokenizer *pt = load_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}");
    CHECK(pt, "Hello world\n", false, WORDS("Hello" G "world" C));
    qfmt__tk_pre_tokenizer_free(pt);
    pt = load_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":false}");
    CHECK(pt, "Hi", false, WORDS(G "Hi"));
    qfmt__tk_pre_tokenizer_free(pt);
}

Test(tk_pre_tokenizer, byte_level_invalid_utf8_and_empty)
{
    tk_pre_tokenizer *pt = load_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":false}");
    /* an invalid byte matches nothing: a piece of its own, mapped like any byte (0xFF -> ÿ) */
    CHECK(pt, "a\xFF" "b", false, WORDS("a", "\xC3\xBF", "b"));
    CHECK(pt, "", true, NO_WORDS);
    /* a NUL byte is ordinary */
    check_words(pt, "a\0b", 3, false, WORDS("a", "\xC4\x80", "b"));
    qfmt__tk_pre_tokenizer_free(pt);
    /* HF's prepend does nothing on an empty string */
    pt = load_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":true}");
    CHECK(pt, "", true, NO_WORDS);
    qfmt__tk_pre_tokenizer_free(pt);
}

/* ---- Llama 3 / Qwen 3 ------------------------------------------------------------------------ */
Test(tk_pre_tokenizer, llama3_split)
{
    tk_pre_tokenizer *pt = load_split("Regex", LLAMA3_REGEX, "Isolated", false);
    CHECK(pt, "Numbers: 12345", false, WORDS("Numbers", ":", " ", "123", "45"));
    CHECK(pt, "HE'S here", false, WORDS("HE", "'S", " here")); /* (?i:...) */
    CHECK(pt, "a,\n\nb", false, WORDS("a", ",\n\n", "b"));      /* punctuation takes the newlines */
    CHECK(pt, "x  \n y", false, WORDS("x", "  \n", " y"));     /* \s*[\r\n]+ */
    CHECK(pt, "(hi)", false, WORDS("(hi", ")"));                 /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    qfmt__tk_pre_tokenizer_free(pt);
}

Test(tk_pre_tokenizer, llama3_and_qwen3_sequence)
{
    tk_pre_tokenizer *pt = load_llama_like(LLAMA3_REGEX);
    CHECK(pt, "Numbers: 12345", false, WORDS("Numbers", ":", G, "123", "45"));
    CHECK(pt, "Hello world", true, WORDS("Hello", G "world"));
    CHECK(pt, "", true, NO_WORDS);
    qfmt__tk_pre_tokenizer_free(pt);
    pt = load_llama_like(QWEN3_REGEX);
    CHECK(pt, "Numbers: 12345", false, WORDS("Numbers", ":", G, "1", "2", "3", "4", "5"));
    qfmt__tk_pre_tokenizer_free(pt);
}

/* ---- Split --------------------------------------------------------------------------------- */
Test(tk_pre_tokenizer, split_behaviors)
{
    static const char text[] = "the-final--countdown";
    struct {
        const char *beh;
        const char *const *want;
    } cases[] = {
        {"Removed", WORDS("the", "final", "countdown")},
        {"Isolated", WORDS("the", "-", "final", "-", "-", "countdown")},
        {"MergedWithPrevious", WORDS("the-", "final-", "-", "countdown")},
        {"MergedWithNext", WORDS("the", "-final", "-", "-countdown")},
        {"Contiguous", WORDS("the", "-", "final", "--", "countdown")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tk_pre_tokenizer *pt = load_split("String", "-", cases[i].beh, false);
        CHECK(pt, text, false, cases[i].want);
        qfmt__tk_pre_tokenizer_free(pt);
        pt = load_split("Regex", "-", cases[i].beh, false);
        CHECK(pt, text, false, cases[i].want);
        qfmt__tk_pre_tokenizer_free(pt);
    }
}

Test(tk_pre_tokenizer, split_edges)
{
    tk_pre_tokenizer *pt = load_split("String", "-", "Contiguous", false);
    CHECK(pt, "--a", false, WORDS("--", "a"));
    CHECK(pt, "---", false, WORDS("---"));
    qfmt__tk_pre_tokenizer_free(pt);
    pt = load_split("String", "-", "MergedWithNext", false);
    CHECK(pt, "-a-", false, WORDS("-a", "-"));
    qfmt__tk_pre_tokenizer_free(pt);
    pt = load_split("String", "-", "MergedWithPrevious", false);
    CHECK(pt, "-a-", false, WORDS("-", "a-"));
    qfmt__tk_pre_tokenizer_free(pt);
    pt = load_split("String", "-", "Removed", false);
    CHECK(pt, "---", false, NO_WORDS);
    CHECK(pt, "", false, NO_WORDS);
    qfmt__tk_pre_tokenizer_free(pt);
}

Test(tk_pre_tokenizer, split_invert)
{
    static const char text[] = "the-final--countdown";
    tk_pre_tokenizer *pt = load_split("String", "-", "Removed", true);
    CHECK(pt, text, false, WORDS("-", "-", "-"));
    qfmt__tk_pre_tokenizer_free(pt);
    pt = load_split("String", "-", "MergedWithPrevious", true);
    CHECK(pt, text, false, WORDS("the", "-final", "-", "-countdown"));
    qfmt__tk_pre_tokenizer_free(pt);
    pt = load_split("String", "-", "Contiguous", true);
    CHECK(pt, text, false, WORDS("the", "-", "final", "--", "countdown"));
    qfmt__tk_pre_tokenizer_free(pt);
    /* inverted: the digit runs are what is kept */
    pt = load_split("Regex", "\\d+", "Removed", true);
    CHECK(pt, "ab12cd345", false, WORDS("12", "345"));
    qfmt__tk_pre_tokenizer_free(pt);
}

Test(tk_pre_tokenizer, split_string_is_literal)
{
    /* escaped as HF escapes it: ".b" is not "any character then b" */
    tk_pre_tokenizer *pt = load_split("String", ".b", "Removed", false);
    CHECK(pt, "a.bxb", false, WORDS("a", "xb"));
    qfmt__tk_pre_tokenizer_free(pt);
    pt = load_split("String", "\\s", "Removed", false);
    CHECK(pt, "a\\sb c", false, WORDS("a", "b c"));
    qfmt__tk_pre_tokenizer_free(pt);
    pt = load_split("String", "(|)", "Isolated", false);
    CHECK(pt, "x(|)y()", false, WORDS("x", "(|)", "y()"));
    qfmt__tk_pre_tokenizer_free(pt);
    pt = load_split("String", MS, "MergedWithNext", false);
    CHECK(pt, "a" MS "b", false, WORDS("a", MS "b"));
    qfmt__tk_pre_tokenizer_free(pt);
}

Test(tk_pre_tokenizer, split_regex_sees_preceding_text)
{
    /* each search starts inside the whole piece, so a lookbehind sees what came before */
    tk_pre_tokenizer *pt = load_split("Regex", "(?<=a)b", "Isolated", false);
    CHECK(pt, "abab", false, WORDS("a", "b", "a", "b"));
    qfmt__tk_pre_tokenizer_free(pt);
}

Test(tk_pre_tokenizer, split_empty_matches)
{
    /* an empty pattern matches between every two characters (onig's iteration) */
    tk_pre_tokenizer *pt = load_split("String", "", "Isolated", false);
    CHECK(pt, "ab\xC3\xA9", false, WORDS("a", "b", "\xC3\xA9"));
    qfmt__tk_pre_tokenizer_free(pt);
    pt = load_split("Regex", "x*", "Isolated", false);
    CHECK(pt, "axxb", false, WORDS("a", "xx", "b"));
    qfmt__tk_pre_tokenizer_free(pt);
}

Test(tk_pre_tokenizer, split_pathological_regex_is_bounded)
{
    tk_pre_tokenizer *pt = load_split("Regex", "(a+)+$", "Isolated", false);
    char text[64];
    memset(text, 'a', 30);
    text[30] = 'b';
    tk_list out = {0};
    qfmt_error err = {0};
    time_t t0 = time(NULL);
    int rc = qfmt__tk_pre_tokenize(pt, text, 31, true, &out, &err);
    cr_assert(time(NULL) - t0 < 60, "took too long");
    if (rc < 0) cr_assert_eq(err.code, QFMT_E_RANGE, "%s", err.message);
    else cr_assert_eq(out.n, 1); /* no match: the whole text */
    qfmt__tk_list_free(&out);
    qfmt__tk_pre_tokenizer_free(pt);
}

/* ---- Metaspace ---------------------------------------------------------------------------- */
Test(tk_pre_tokenizer, metaspace_schemes)
{
    static const char *const base = "{\"type\":\"Metaspace\",\"replacement\":\"" MS "\",\"prepend_scheme\":\"%s\","
                                    "\"split\":%s}";
    char json[256];
    snprintf(json, sizeof json, base, "always", "true");
    check_json(json, "Hello world", false, WORDS(MS "Hello", MS "world"));
    check_json(json, "  a", false, WORDS(MS, MS "a"));
    check_json(json, "a ", false, WORDS(MS "a", MS));
    check_json(json, MS "x", false, WORDS(MS "x")); /* already there: not doubled */
    check_json(json, "", true, NO_WORDS);
    snprintf(json, sizeof json, base, "never", "true");
    check_json(json, "Hello world", true, WORDS("Hello", MS "world"));
    snprintf(json, sizeof json, base, "first", "true");
    check_json(json, "Hello world", true, WORDS(MS "Hello", MS "world"));
    check_json(json, "Hello world", false, WORDS("Hello", MS "world"));
    snprintf(json, sizeof json, base, "always", "false");
    check_json(json, "Hello world", false, WORDS(MS "Hello" MS "world"));
}

Test(tk_pre_tokenizer, metaspace_options)
{
    /* defaults: replacement U+2581, always, split */
    check_json("{\"type\":\"Metaspace\"}", "a b", false, WORDS(MS "a", MS "b"));
    /* legacy add_prefix_space */
    check_json("{\"type\":\"Metaspace\",\"replacement\":\"" MS "\",\"add_prefix_space\":true}", "a b", false,
               WORDS(MS "a", MS "b"));
    check_json("{\"type\":\"Metaspace\",\"replacement\":\"" MS "\",\"add_prefix_space\":false}", "a b", true,
               WORDS("a", MS "b"));
    /* another replacement, str_rep ignored */
    check_json("{\"type\":\"Metaspace\",\"replacement\":\"_\",\"str_rep\":\"_\",\"prepend_scheme\":\"always\"}",
               "a b_c", false, WORDS("_a", "_b", "_c"));
}

/* ---- Whitespace, BERT, punctuation, digits, delimiter --------------------------------------- */
Test(tk_pre_tokenizer, whitespace)
{
    tk_pre_tokenizer *pt = load_json("{\"type\":\"Whitespace\"}");
    CHECK(pt, "Hey man!", false, WORDS("Hey", "man", "!"));
    CHECK(pt, "How are you doing?", false, WORDS("How", "are", "you", "doing", "?"));
    CHECK(pt, "a+-b  c_d\t\xC3\xA9t\xC3\xA9.", false, WORDS("a", "+-", "b", "c_d", "\xC3\xA9t\xC3\xA9", "."));
    CHECK(pt, "   ", false, NO_WORDS);
    /* Rust's \w: '²' (No) is not a word character, a spacing mark (U+093E, Mc) is */
    CHECK(pt, "x\xC2\xB2 \xE0\xA4\x95\xE0\xA4\xBE", false, WORDS("x", "\xC2\xB2", "\xE0\xA4\x95\xE0\xA4\xBE"));
    qfmt__tk_pre_tokenizer_free(pt);
    pt = load_json("{\"type\":\"WhitespaceSplit\"}");
    CHECK(pt, "Hey  man!\tx\xE3\x80\x80y", false, WORDS("Hey", "man!", "x", "y")); /* U+3000 */
    CHECK(pt, "a\xFF b", false, WORDS("a\xFF", "b"));
    qfmt__tk_pre_tokenizer_free(pt);
}

Test(tk_pre_tokenizer, bert)
{
    tk_pre_tokenizer *pt = load_json("{\"type\":\"BertPreTokenizer\"}");
    CHECK(pt, "Hello, world!", false, WORDS("Hello", ",", "world", "!"));
    CHECK(pt, "Hey friend!     How are you?!?", false, WORDS("Hey", "friend", "!", "How", "are", "you", "?", "!", "?"));
    CHECK(pt, "$5 a\xC2\xAB" "b\xC2\xBB", false, WORDS("$", "5", "a", "\xC2\xAB", "b", "\xC2\xBB")); /* « » */
    CHECK(pt, "x\xE2\x82\xACy", false, WORDS("x\xE2\x82\xACy")); /* € is Sc, not punctuation */
    CHECK(pt, " \t ", false, NO_WORDS);
    qfmt__tk_pre_tokenizer_free(pt);
}

Test(tk_pre_tokenizer, punctuation)
{
    check_json("{\"type\":\"Punctuation\"}", "Hey friend!?", false, WORDS("Hey friend", "!", "?"));
    check_json("{\"type\":\"Punctuation\",\"behavior\":\"Contiguous\"}", "Hey friend!?", false,
               WORDS("Hey friend", "!?"));
    check_json("{\"type\":\"Punctuation\",\"behavior\":\"Removed\"}", "Hey, friend!?", false,
               WORDS("Hey", " friend"));
    check_json("{\"type\":\"Punctuation\",\"behavior\":\"MergedWithPrevious\"}", "a.b.", false, WORDS("a.", "b."));
}

Test(tk_pre_tokenizer, digits)
{
    check_json("{\"type\":\"Digits\",\"individual_digits\":false}", "Hey 123 friend!", false,
               WORDS("Hey ", "123", " friend!"));
    check_json("{\"type\":\"Digits\",\"individual_digits\":true}", "Hey 123 friend!", false,
               WORDS("Hey ", "1", "2", "3", " friend!"));
    check_json("{\"type\":\"Digits\"}", "x\xC2\xB2y\xD9\xA3\xD9\xA4", false,
               WORDS("x", "\xC2\xB2", "y", "\xD9\xA3\xD9\xA4")); /* ² (No), Arabic-Indic digits (Nd) */
}

Test(tk_pre_tokenizer, char_delimiter)
{
    check_json("{\"type\":\"CharDelimiterSplit\",\"delimiter\":\"x\"}", "axbxxc", false, WORDS("a", "b", "c"));
    check_json("{\"type\":\"CharDelimiterSplit\",\"delimiter\":\"" MS "\"}", MS "a" MS "b", false, WORDS("a", "b"));
}

Test(tk_pre_tokenizer, unicode_scripts)
{
    tk_pre_tokenizer *pt = load_json("{\"type\":\"UnicodeScripts\"}");
    /* HF's own tests: kana count as Han, spaces belong to every script */
    CHECK(pt, "\xE3\x81\xA9\xE3\x81\x93\xE3\x81\xA7\xE7\x94\x9F\xE3\x82\x8C\xE3\x80\x82Yes", false,
          WORDS("\xE3\x81\xA9\xE3\x81\x93\xE3\x81\xA7\xE7\x94\x9F\xE3\x82\x8C", "\xE3\x80\x82", "Yes"));
    CHECK(pt, "Apples are \xE3\x82\x8A\xE3\x82\x93\xE3\x81\x94 \xE6\x9E\x97\xE6\xAA\x8E", false,
          WORDS("Apples are ", "\xE3\x82\x8A\xE3\x82\x93\xE3\x81\x94 \xE6\x9E\x97\xE6\xAA\x8E"));
    CHECK(pt, "a1-b", false, WORDS("a", "1-", "b"));                 /* digits and '-' are Common */
    CHECK(pt, "e\xCC\x81", false, WORDS("e", "\xCC\x81"));            /* a combining mark is Inherited */
    CHECK(pt, "a\xF0\x91\xA0\x80" "b", false, WORDS("a\xF0\x91\xA0\x80" "b")); /* Dogra (Unicode 11): Any */
    CHECK(pt, "  ab", false, WORDS("ab"));                            /* leading spaces dropped, as in HF */
    CHECK(pt, "   ", false, NO_WORDS);
    qfmt__tk_pre_tokenizer_free(pt);
}

/* ---- Sequence --------------------------------------------------------------------------------- */
Test(tk_pre_tokenizer, sequence)
{
    check_json("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"WhitespaceSplit\"},"
               "{\"type\":\"Digits\",\"individual_digits\":true}]}",
               "ab12 c3", false, WORDS("ab", "1", "2", "c", "3"));
    /* nested */
    check_json("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Sequence\",\"pretokenizers\":["
               "{\"type\":\"WhitespaceSplit\"}]},{\"type\":\"Punctuation\"}]}",
               "a.b c!", false, WORDS("a", ".", "b", "c", "!"));
    /* empty: the piece as it is */
    check_json("{\"type\":\"Sequence\",\"pretokenizers\":[]}", "a b", false, WORDS("a b"));
}

Test(tk_pre_tokenizer, sequence_keeps_first_only_at_offset_zero)
{
    static const char json[] = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"WhitespaceSplit\"},"
                               "{\"type\":\"Metaspace\",\"prepend_scheme\":\"first\"}]}";
    check_json(json, "a b", true, WORDS(MS "a", "b"));
    check_json(json, "a b", false, WORDS("a", "b"));
    /* the first word does not begin at offset 0: no prefix anywhere */
    check_json(json, " a b", true, WORDS("a", "b"));
}

Test(tk_pre_tokenizer, output_is_appended_and_reusable)
{
    tk_pre_tokenizer *pt = load_json("{\"type\":\"WhitespaceSplit\"}");
    tk_list out = {0};
    qfmt_error err = {0};
    cr_assert_eq(qfmt__tk_pre_tokenize(pt, "a b", 3, true, &out, &err), 0);
    cr_assert_eq(qfmt__tk_pre_tokenize(pt, "c", 1, false, &out, &err), 0);
    cr_assert_eq(out.n, 3);
    size_t len;
    cr_assert_eq(memcmp(tk_list_at(&out, 2, &len), "c", 1), 0);
    qfmt__tk_list_free(&out);
    qfmt__tk_pre_tokenizer_free(pt);
}

/* One loaded pre-tokenizer used by several threads at once gives each the same words. */
typedef struct {
    const tk_pre_tokenizer *pt;
    const char *text;
    size_t words;
    int rc;
} thread_job;

static void *thread_run(void *arg)
{
    thread_job *job = arg;
    tk_list out = {0};
    qfmt_error err = {0};
    job->rc = 0;
    for (int round = 0; round < 200 && job->rc == 0; round++) {
        qfmt__tk_list_clear(&out);
        job->rc = qfmt__tk_pre_tokenize(job->pt, job->text, strlen(job->text), true, &out, &err);
    }
    job->words = out.n;
    qfmt__tk_list_free(&out);
    return NULL;
}

Test(tk_pre_tokenizer, shared_between_threads)
{
    tk_pre_tokenizer *pt = load_llama_like(LLAMA3_REGEX);
    static const char text[] = "It's 2024: the quick brown fox jumps over 1234567 lazy dogs!\n\n  Done.";
    thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){.pt = pt, .text = text};
        cr_assert_eq(pthread_create(&th[i], NULL, thread_run, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    thread_job one = {.pt = pt, .text = text};
    thread_run(&one);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(jobs[i].rc, 0);
        cr_assert_eq(jobs[i].words, one.words);
    }
    qfmt__tk_pre_tokenizer_free(pt);
}

/* ---- Refusals --------------------------------------------------------------------------------- */
Test(tk_pre_tokenizer, refusals_unsupported)
{
    expect_refused("{\"type\":\"Foo\"}", QFMT_E_UNSUPPORTED, "pre_tokenizer: type 'Foo' is not supported");
    expect_refused("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"FixedLength\"}]}", QFMT_E_UNSUPPORTED,
                   "pre_tokenizer.pretokenizers[0]: type 'FixedLength' is not supported");
    expect_refused("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Whitespace\"},{\"type\":\"Sequence\","
                   "\"pretokenizers\":[{\"type\":\"X\"}]}]}",
                   QFMT_E_UNSUPPORTED, "pre_tokenizer.pretokenizers[1].pretokenizers[0]: type 'X'");
    expect_refused("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\",\"invert\":false}",
                   QFMT_E_UNSUPPORTED, "pre_tokenizer");
    /* nesting past TK_MAX_DEPTH */
    char json[2048] = "";
    for (int i = 0; i < TK_MAX_DEPTH + 2; i++) strcat(json, "{\"type\":\"Sequence\",\"pretokenizers\":[");
    for (int i = 0; i < TK_MAX_DEPTH + 2; i++) strcat(json, "]}");
    expect_refused(json, QFMT_E_UNSUPPORTED, "deeper");
}

Test(tk_pre_tokenizer, refusals_corrupt)
{
    expect_refused("{\"kind\":\"ByteLevel\"}", QFMT_E_CORRUPT, NULL);
    expect_refused("[1]", QFMT_E_CORRUPT, NULL);
    expect_refused("{\"type\":\"ByteLevel\",\"add_prefix_space\":\"yes\"}", QFMT_E_CORRUPT, "add_prefix_space");
    expect_refused("{\"type\":\"Split\",\"behavior\":\"Isolated\"}", QFMT_E_CORRUPT, "pattern");
    expect_refused("{\"type\":\"Split\",\"pattern\":{\"Regex\":1},\"behavior\":\"Isolated\"}", QFMT_E_CORRUPT,
                   "pattern");
    expect_refused("{\"type\":\"Split\",\"pattern\":{\"String\":\"a\",\"Regex\":\"b\"},\"behavior\":\"Isolated\"}",
                   QFMT_E_CORRUPT, "pattern");
    expect_refused("{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},\"behavior\":\"Sideways\"}", QFMT_E_CORRUPT,
                   "behavior");
    expect_refused("{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"}}", QFMT_E_CORRUPT, "behavior");
    expect_refused("{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},\"behavior\":\"Removed\",\"invert\":1}",
                   QFMT_E_CORRUPT, "invert");
    expect_refused("{\"type\":\"Metaspace\",\"replacement\":\"ab\"}", QFMT_E_CORRUPT, "replacement");
    expect_refused("{\"type\":\"Metaspace\",\"replacement\":\"\"}", QFMT_E_CORRUPT, "replacement");
    expect_refused("{\"type\":\"Metaspace\",\"prepend_scheme\":\"sometimes\"}", QFMT_E_CORRUPT, "prepend_scheme");
    expect_refused("{\"type\":\"Metaspace\",\"add_prefix_space\":false,\"prepend_scheme\":\"always\"}",
                   QFMT_E_CORRUPT, "add_prefix_space");
    expect_refused("{\"type\":\"CharDelimiterSplit\"}", QFMT_E_CORRUPT, "delimiter");
    expect_refused("{\"type\":\"Digits\",\"individual_digits\":\"no\"}", QFMT_E_CORRUPT, "individual_digits");
    expect_refused("{\"type\":\"Sequence\",\"pretokenizers\":{}}", QFMT_E_CORRUPT, "pretokenizers");
    expect_refused("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Whitespace\"},3]}", QFMT_E_CORRUPT,
                   "pre_tokenizer.pretokenizers[1]");
}
