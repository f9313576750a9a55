/*
 * test_tk_normalizer.c - the tokenizer's normalizers (libqfmt_model/src/tokenizer/normalizer.c).
 *
 * Expected values come from Hugging Face tokenizers' own tests and source
 * (the .rs files of tokenizers/src/normalizers/, NormalizedString in tokenizer/normalizer.rs): NFKC of
 * U+FB01 is "fi"; StripAccents after NFKD on the Vietnamese / Thai strings of strip.rs;
 * Replace's examples of replace.rs; ByteLevel's example of byte_level.rs; BertNormalizer's
 * steps and ranges of bert.rs; the rest from the Unicode data those rely on.
 */
#include "test_helpers.h"

#include <pthread.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "tokenizer/tk_internal.h"

/* ---- helpers ------------------------------------------------------------------------- */

static int try_load(const char *json, tk_normalizer **nz, qfmt_error *err)
{
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j, "bad test JSON: %s", json);
    memset(err, 0, sizeof *err);
    *nz = NULL;
    int rc = qfmt__tk_normalizer_load(j, nz, err);
    cJSON_Delete(j);
    return rc;
}

static tk_normalizer *load(const char *json)
{
    tk_normalizer *nz;
    qfmt_error err;
    int rc = try_load(json, &nz, &err);
    cr_assert_eq(rc, 0, "load %s: %s", json, err.message);
    cr_assert_not_null(nz);
    return nz;
}

static void escape(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F) buf[o++] = (char)c;
        else o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", c);
    }
    buf[o] = '\0';
}

static void check_n(const char *json, const char *in, size_t n, const char *want, size_t wn)
{
    tk_normalizer *nz = load(json);
    tk_str out = {0};
    qfmt_error err = {0};
    int rc = qfmt__tk_normalize(nz, in, n, &out, &err);
    cr_assert_eq(rc, 0, "normalize failed: %s", err.message);
    char got_s[512], want_s[512], in_s[512];
    escape(out.p ? out.p : "", out.len, got_s, sizeof got_s);
    escape(want, wn, want_s, sizeof want_s);
    escape(in, n, in_s, sizeof in_s);
    cr_expect(out.len == wn && memcmp(out.p ? out.p : "", want, wn) == 0, "%s on \"%s\": got \"%s\", want \"%s\"",
              json, in_s, got_s, want_s);
    qfmt__tk_str_free(&out);
    qfmt__tk_normalizer_free(nz);
}

/* Literals only (sizeof): NUL bytes inside are part of the text. */
#define CHECK(json, in, want) check_n((json), (in), sizeof(in) - 1, (want), sizeof(want) - 1)

static void refused(const char *json, qfmt_status code, const char *in_message)
{
    tk_normalizer *nz;
    qfmt_error err;
    int rc = try_load(json, &nz, &err);
    cr_expect_eq(rc, -1, "%s: loaded", json);
    cr_expect_null(nz, "%s: *out not NULL on failure", json);
    cr_expect_eq(err.code, code, "%s: code %d, want %d (%s)", json, (int)err.code, (int)code, err.message);
    if (in_message)
        cr_expect_not_null(strstr(err.message, in_message), "%s: message '%s' lacks '%s'", json, err.message,
                           in_message);
    qfmt__tk_normalizer_free(nz);
}

/* ---- Unicode normalization forms ----------------------------------------------------- */

Test(tk_normalizer, nfkc_ligature)
{
    CHECK("{\"type\":\"NFKC\"}", "\xEF\xAC\x81", "fi"); /* unicode.rs: U+FB01 -> "fi" */
    CHECK("{\"type\":\"NFKD\"}", "\xEF\xAC\x81", "fi");
    CHECK("{\"type\":\"NFC\"}", "\xEF\xAC\x81", "\xEF\xAC\x81"); /* canonical forms keep it */
    CHECK("{\"type\":\"NFD\"}", "\xEF\xAC\x81", "\xEF\xAC\x81");
}

Test(tk_normalizer, nfc_nfd)
{
    CHECK("{\"type\":\"NFC\"}", "e\xCC\x81", "\xC3\xA9");           /* e + U+0301 -> é */
    CHECK("{\"type\":\"NFD\"}", "\xC3\xA9", "e\xCC\x81");           /* é -> e + U+0301 */
    CHECK("{\"type\":\"NFC\"}", "\xE2\x84\xAB", "\xC3\x85");        /* U+212B ANGSTROM SIGN -> U+00C5 */
    CHECK("{\"type\":\"NFC\"}", "\xE1\x84\x80\xE1\x85\xA1", "\xEA\xB0\x80"); /* Hangul jamo -> U+AC00 */
    CHECK("{\"type\":\"NFD\"}", "\xEA\xB0\x80", "\xE1\x84\x80\xE1\x85\xA1");
    CHECK("{\"type\":\"NFKC\"}", "\xC2\xB2", "2"); /* superscript two */
    CHECK("{\"type\":\"NFC\"}", "\xC2\xB2", "\xC2\xB2");
    /* canonical reordering: U+0301 (ccc 230) after U+0323 (ccc 220) stays, before is swapped */
    CHECK("{\"type\":\"NFD\"}", "a\xCC\x81\xCC\xA3", "a\xCC\xA3\xCC\x81");
}

Test(tk_normalizer, unicode_ascii_identity)
{
    static const char *forms[] = {"{\"type\":\"NFC\"}", "{\"type\":\"NFD\"}", "{\"type\":\"NFKC\"}",
                                  "{\"type\":\"NFKD\"}"};
    for (size_t i = 0; i < 4; i++) {
        CHECK(forms[i], "Hello, world! 123 ~\t\n", "Hello, world! 123 ~\t\n");
        CHECK(forms[i], "", "");
        CHECK(forms[i], "a\0b", "a\0b"); /* NUL is an ordinary character */
    }
}

Test(tk_normalizer, unicode_mixed_ascii)
{
    CHECK("{\"type\":\"NFC\"}", "cafe\xCC\x81 au lait", "caf\xC3\xA9 au lait"); /* the e before the mark */
    CHECK("{\"type\":\"NFC\"}", "e\xCC\x81" "e\xCC\x81", "\xC3\xA9\xC3\xA9");
    CHECK("{\"type\":\"NFKC\"}", "x\xEF\xAC\x81y", "xfiy");
    CHECK("{\"type\":\"NFC\"}", "\xE1\x84\x80" "a" "\xE1\x85\xA1", "\xE1\x84\x80" "a" "\xE1\x85\xA1");
    CHECK("{\"type\":\"NFC\"}", "\0\xCC\x81", "\0\xCC\x81"); /* NUL inside a utf8proc region */
    CHECK("{\"type\":\"NFD\"}", "\xC3\xA9\0x\xC3\xA9", "e\xCC\x81\0xe\xCC\x81");
}

/* Random mixes of ASCII, marks, Hangul and compatibility characters: the region-by-region
 * normalization equals utf8proc on the whole text. */
Test(tk_normalizer, unicode_regions_match_whole)
{
    static const char *pieces[] = {"a", "e", " ", "\xCC\x81", "\xCC\xA3", "\xC3\xA9", "\xE1\x84\x80",
                                   "\xE1\x85\xA1", "\xE1\x86\xAB", "\xEA\xB0\x80", "\xEF\xAC\x81",
                                   "\xE2\x84\xAB", "\xC2\xB2", "\xE0\xA4\x95", "\xE0\xA4\xBC", "A"};
    static const struct {
        const char *json;
        utf8proc_option_t opts;
    } forms[] = {{"{\"type\":\"NFC\"}", UTF8PROC_STABLE | UTF8PROC_COMPOSE},
                 {"{\"type\":\"NFD\"}", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE},
                 {"{\"type\":\"NFKC\"}", UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT},
                 {"{\"type\":\"NFKD\"}", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT}};
    uint64_t st = 7;
    for (size_t f = 0; f < 4; f++) {
        tk_normalizer *nz = load(forms[f].json);
        for (int round = 0; round < 300; round++) {
            char text[256];
            size_t n = 0;
            int count = (int)(th_rand(&st) % 12);
            for (int k = 0; k < count; k++) {
                const char *p = pieces[th_rand(&st) % (sizeof pieces / sizeof pieces[0])];
                memcpy(text + n, p, strlen(p));
                n += strlen(p);
            }
            tk_str out = {0};
            qfmt_error err = {0};
            cr_assert_eq(qfmt__tk_normalize(nz, text, n, &out, &err), 0);
            utf8proc_uint8_t *want = NULL;
            utf8proc_ssize_t wn = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)n, &want,
                                               forms[f].opts);
            cr_assert_geq(wn, 0);
            cr_expect(out.len == (size_t)wn && memcmp(out.p ? out.p : "", want, (size_t)wn) == 0,
                      "%s: round %d differs", forms[f].json, round);
            free(want);
            qfmt__tk_str_free(&out);
        }
        qfmt__tk_normalizer_free(nz);
    }
}

Test(tk_normalizer, unicode_invalid_utf8)
{
    CHECK("{\"type\":\"NFC\"}", "a\xC3", "a\xEF\xBF\xBD");                           /* truncated sequence */
    CHECK("{\"type\":\"NFD\"}", "\xF0\x9F", "\xEF\xBF\xBD\xEF\xBF\xBD");             /* one U+FFFD a byte */
    CHECK("{\"type\":\"NFKC\"}", "\xFF" "e\xCC\x81", "\xEF\xBF\xBD\xC3\xA9");
    CHECK("{\"type\":\"NFKD\"}", "\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); /* surrogate */
}

/* ---- Lowercase ------------------------------------------------------------------------ */

Test(tk_normalizer, lowercase)
{
    const char *j = "{\"type\":\"Lowercase\"}";
    CHECK(j, "HeLLo World", "hello world");
    CHECK(j, "\xC4\xB0", "i\xCC\x87");                 /* İ -> i + U+0307 (SpecialCasing) */
    CHECK(j, "\xCE\x91\xCE\xA3", "\xCE\xB1\xCF\x83");  /* ΑΣ -> ασ: per char, no final sigma */
    CHECK(j, "\xC7\x85", "\xC7\x86");                  /* titlecase Dž -> dž */
    CHECK(j, "\xC3\x89T\xC3\x89", "\xC3\xA9t\xC3\xA9"); /* ÉTÉ */
    CHECK(j, "\xE2\x84\xAA", "k");                     /* KELVIN SIGN -> k */
    CHECK(j, "A\0B", "a\0b");
    CHECK(j, "A\xFF" "B", "a\xEF\xBF\xBD" "b");
    CHECK(j, "", "");
}

/* ---- Strip ------------------------------------------------------------------------------ */

Test(tk_normalizer, strip)
{
    const char *both = "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}";
    const char *left = "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":false}";
    const char *right = "{\"type\":\"Strip\",\"strip_left\":false,\"strip_right\":true}";
    const char *none = "{\"type\":\"Strip\",\"strip_left\":false,\"strip_right\":false}";
    /* Rust's char::is_whitespace: ASCII whitespace, U+3000, U+00A0, ... */
    CHECK(both, "  \t hi there \xE3\x80\x80\n", "hi there");
    CHECK(left, "  \t hi there \xE3\x80\x80\n", "hi there \xE3\x80\x80\n");
    CHECK(right, "  \t hi there \xE3\x80\x80\n", "  \t hi there");
    CHECK(none, "  hi  ", "  hi  ");
    CHECK(both, " \xC2\xA0 ", "");
    CHECK(left, "   ", "");
    CHECK(right, "   ", "");
    CHECK(both, "", "");
    CHECK(both, "\xE2\x80\x8B" "a\xE2\x80\x8B", "\xE2\x80\x8B" "a\xE2\x80\x8B"); /* U+200B is not White_Space */
    CHECK(both, " \xFF ", "\xFF");                                        /* bytes pass through */
}

/* ---- StripAccents ----------------------------------------------------------------------- */

Test(tk_normalizer, strip_accents)
{
    const char *j = "{\"type\":\"StripAccents\"}";
    CHECK(j, "e\xCC\x84\xCC\x84\xCC\x84o", "eo"); /* strip.rs test_strip_accents_multiple */
    CHECK(j, "Me llamo", "Me llamo");
    CHECK(j, "\xC3\xA9", "\xC3\xA9");                 /* precomposed: no mark to remove */
    CHECK(j, "\xE0\xA4\x95\xE0\xA4\x83", "\xE0\xA4\x95"); /* U+0903 is Mc: removed too */
    CHECK(j, "a\xE2\x83\x9D", "a");                    /* U+20DD enclosing (Me) */
}

Test(tk_normalizer, strip_accents_after_nfkd)
{
    const char *seq = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKD\"},{\"type\":\"StripAccents\"},"
                      "{\"type\":\"Lowercase\"}]}";
    /* strip.rs test_vietnamese_bug and test_thai_bug */
    CHECK(seq, "\xE1\xBA\xAD\xE2\x80\xA6", "a...");
    CHECK(seq, "\xE0\xB8\xB3\xE0\xB8\x99\xE0\xB9\x89\xE0\xB8\xB3" "3" "\xE0\xB8\xA5\xE0\xB8\xB3",
          "\xE0\xB8\xB2\xE0\xB8\x99\xE0\xB8\xB2" "3" "\xE0\xB8\xA5\xE0\xB8\xB2");
    CHECK(seq, "C\xE1\xBB\xA5 th\xE1\xBB\x83, \xC4\x91i\xE1\xBB\x81u", "cu the, \xC4\x91ieu"); /* đ stays */
}

/* ---- Replace ---------------------------------------------------------------------------- */

Test(tk_normalizer, replace_string)
{
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"String\":\"''\"},\"content\":\"\\\"\"}", "This is a ''test''",
          "This is a \"test\""); /* replace.rs test_replace */
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"String\":\"aa\"},\"content\":\"b\"}", "aaaaa", "bba");
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\"}", " a b ", "ab");
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"String\":\".\"},\"content\":\"!\"}", "a.b", "a!b"); /* literal */
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"String\":\"x\"},\"content\":\"y\"}", "", "");
    /* the escaped empty regex matches at every character boundary */
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"String\":\"\"},\"content\":\"-\"}", "a\xC3\xA9", "-a-\xC3\xA9-");
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"String\":\"\"},\"content\":\"-\"}", "", "");
    /* bytes pass through */
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"_\"}", "\xFF \xFE", "\xFF_\xFE");
}

Test(tk_normalizer, replace_regex)
{
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"}", "This     is   a         test",
          "This is a test"); /* replace.rs test_replace_regex */
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"}", "a\xE3\x80\x80\tb", "a b");
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"[0-9]\"},\"content\":\"#\"}", "a1b22", "a#b##");
    /* content is literal: no group expansion */
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"(l)(e)\"},\"content\":\"$1 $2\"}", "le", "$1 $2");
    /* empty matches (onig find_iter): at each boundary, not right after a match */
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"x*\"},\"content\":\"-\"}", "abc", "-a-b-c-");
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"a*\"},\"content\":\"-\"}", "baaac", "-b-c-");
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"x*\"},\"content\":\"-\"}", "\xC3\xA9", "-\xC3\xA9-");
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"x*\"},\"content\":\"-\"}", "", "");
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"^\"},\"content\":\">\"}", "ab", ">ab");
    /* invalid bytes are U+FFFD for the regex */
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\".\"},\"content\":\"x\"}", "a\xFF", "xx");
    CHECK("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"b\"},\"content\":\"c\"}", "\xFF" "b", "\xEF\xBF\xBD" "c");
}

/* ---- Prepend, Sequence -------------------------------------------------------------------- */

Test(tk_normalizer, prepend)
{
    const char *j = "{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"}";
    CHECK(j, "Hello", "\xE2\x96\x81Hello"); /* prepend.rs */
    CHECK(j, "", "");                       /* nothing prepended to an empty string */
    CHECK(j, "\xFF", "\xE2\x96\x81\xFF");
    CHECK("{\"type\":\"Prepend\",\"prepend\":\"\"}", "ab", "ab");
}

Test(tk_normalizer, sequence_llama2)
{
    const char *j = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
                    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]}";
    CHECK(j, "Hello world", "\xE2\x96\x81Hello\xE2\x96\x81world");
    CHECK(j, " ", "\xE2\x96\x81\xE2\x96\x81");
    CHECK(j, "", "");
    CHECK("{\"type\":\"Sequence\",\"normalizers\":[]}", "As is", "As is");
    /* order matters: Strip then Prepend vs Prepend then Strip */
    CHECK("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true},"
          "{\"type\":\"Prepend\",\"prepend\":\" \"}]}",
          "  x  ", " x");
    CHECK("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\" \"},"
          "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}]}",
          "  x  ", "x");
}

Test(tk_normalizer, sequence_invalid_utf8)
{
    /* Prepend passes invalid bytes on, Lowercase then reads each as U+FFFD */
    CHECK("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"X\"},"
          "{\"type\":\"Lowercase\"}]}",
          "\xC3", "x\xEF\xBF\xBD");
}

Test(tk_normalizer, sequence_nested)
{
    const char *j = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Sequence\",\"normalizers\":["
                    "{\"type\":\"NFKC\"},{\"type\":\"Lowercase\"}]},{\"type\":\"Sequence\",\"normalizers\":["
                    "{\"type\":\"Replace\",\"pattern\":{\"String\":\"fi\"},\"content\":\"F\"}]}]}";
    CHECK(j, "\xEF\xAC\x81 FI", "F F");
}

/* ---- BertNormalizer --------------------------------------------------------------------------- */

#define BERT(clean, chinese, strip, lower)                                                                  \
    "{\"type\":\"BertNormalizer\",\"clean_text\":" clean ",\"handle_chinese_chars\":" chinese                 \
    ",\"strip_accents\":" strip ",\"lowercase\":" lower "}"

Test(tk_normalizer, bert_default)
{
    const char *j = BERT("true", "true", "null", "true");
    CHECK(j, "H\xC3\xA9llo", "hello");
    CHECK(j, "ab\xE4\xBD\xA0\xE5\xA5\xBD" "c", "ab \xE4\xBD\xA0  \xE5\xA5\xBD c"); /* 你好 padded */
    CHECK(j, "a\x01" "b\xE2\x80\x8B" "c\x7F" "d", "abcd");       /* Cc and Cf removed */
    CHECK(j, "a\tb\nc\rd\xC2\xA0" "e\xE3\x80\x80" "f", "a b c d e f"); /* whitespace -> ' ' */
    CHECK(j, "a\0b\xEF\xBF\xBD" "c", "abc");                     /* NUL and U+FFFD removed */
    CHECK(j, "a\xFF" "b", "ab");                                 /* an invalid byte is U+FFFD */
    CHECK(j, "\xC4\xB0", "i");                                   /* NFD I + U+0307, strip, lowercase */
    CHECK(j, "\xE3\x81\x82\xED\x95\x9C", "\xE3\x81\x82\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"); /* kana, hangul: no pad */
    CHECK(j, "\xF0\xA0\x80\x80", " \xF0\xA0\x80\x80 ");          /* U+20000 (Extension B) */
    CHECK(j, "\xEE\x80\x80" "x", "x");                           /* private use (Co) removed */
    CHECK(j, "a\xC2\x85" "b\xCD\xB8" "c", "abc");               /* NEL is Cc before White_Space; U+0378 Cn */
    CHECK(j, "a\xE2\x80\xA8" "b", "a b");                        /* U+2028 (Zl) is whitespace */
    CHECK(j, "", "");
}

Test(tk_normalizer, bert_options)
{
    /* strip_accents null follows lowercase */
    CHECK(BERT("true", "true", "null", "false"), "H\xC3\xA9llo", "H\xC3\xA9llo");
    CHECK(BERT("true", "true", "true", "false"), "H\xC3\xA9llo", "Hello");
    CHECK(BERT("true", "true", "false", "true"), "H\xC3\xA9llo", "h\xC3\xA9llo");
    CHECK(BERT("true", "true", "false", "true"), "\xC4\xB0", "i\xCC\x87"); /* lowercase after strip */
    /* Bert strips Mn only (StripAccents strips every mark) */
    CHECK(BERT("true", "true", "true", "false"), "\xE0\xA4\x95\xE0\xA4\x83", "\xE0\xA4\x95\xE0\xA4\x83");
    CHECK(BERT("false", "true", "false", "false"), "a\x01\t\xE4\xBD\xA0", "a\x01\t \xE4\xBD\xA0 ");
    CHECK(BERT("true", "false", "false", "false"), "a\x01\t\xE4\xBD\xA0", "a \xE4\xBD\xA0");
    CHECK(BERT("false", "false", "false", "false"), "A\x01\xFF", "A\x01\xFF"); /* nothing to do */
    /* absent members: BertNormalizer::default() */
    CHECK("{\"type\":\"BertNormalizer\"}", "H\xC3\xA9llo\xE4\xBD\xA0", "hello \xE4\xBD\xA0 ");
}

/* ---- ByteLevel, Nmt ---------------------------------------------------------------------------- */

Test(tk_normalizer, byte_level)
{
    const char *j = "{\"type\":\"ByteLevel\"}";
    /* byte_level.rs: "Hello 我..." -> "HelloĠæĪĳ..." */
    CHECK(j, "Hello \xE6\x88\x91", "Hello\xC4\xA0\xC3\xA6\xC4\xAA\xC4\xB3");
    CHECK(j, "", "");
    CHECK(j, "\n\xFF", "\xC4\x8A\xC3\xBF");
}

Test(tk_normalizer, nmt)
{
    const char *j = "{\"type\":\"Nmt\"}";
    CHECK(j, "a\x01" "b\tc\xE2\x80\x8B" "d\xEF\xBB\xBF" "e\x7F", "ab c d e");
    CHECK(j, "\xE2\x96\x81x", " x");
    CHECK(j, "a\0b", "a\0b"); /* NUL is kept by Nmt */
}

/* ---- Output, reuse, threads ------------------------------------------------------------------------ */

Test(tk_normalizer, output_cleared_and_reused)
{
    tk_normalizer *nz = load("{\"type\":\"Lowercase\"}");
    tk_str out = {0};
    qfmt_error err = {0};
    cr_assert_eq(qfmt__tk_normalize(nz, "ABCDEF", 6, &out, &err), 0);
    cr_assert_eq(qfmt__tk_normalize(nz, "XY", 2, &out, &err), 0);
    cr_expect_eq(out.len, 2);
    cr_expect_str_eq(out.p, "xy");
    cr_assert_eq(qfmt__tk_normalize(nz, NULL, 0, &out, &err), 0);
    cr_expect_eq(out.len, 0);
    qfmt__tk_str_free(&out);
    qfmt__tk_normalizer_free(nz);
}

typedef struct {
    const tk_normalizer *nz;
    int failures;
} thread_arg;

static void *worker(void *p)
{
    thread_arg *a = p;
    tk_str out = {0};
    qfmt_error err = {0};
    for (int i = 0; i < 200; i++) {
        const char *in = "H\xC3\xA9llo  \xE4\xBD\xA0 x*y";
        if (qfmt__tk_normalize(a->nz, in, strlen(in), &out, &err) != 0 ||
            out.len != 13 || memcmp(out.p, "hello_\xE4\xBD\xA0_x_y", 13) != 0)
            a->failures++;
    }
    qfmt__tk_str_free(&out);
    return NULL;
}

Test(tk_normalizer, threads)
{
    tk_normalizer *nz = load("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFD\"},{\"type\":\"StripAccents\"},"
                             "{\"type\":\"Lowercase\"},{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"[\\\\s*]+\"},"
                             "\"content\":\"_\"}]}");
    pthread_t t[4];
    thread_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (thread_arg){nz, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, worker, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(a[i].failures, 0, "thread %d: %d wrong results", i, a[i].failures);
    }
    qfmt__tk_normalizer_free(nz);
}

Test(tk_normalizer, long_input)
{
    size_t n = 1u << 20;
    char *in = malloc(n);
    cr_assert_not_null(in);
    for (size_t i = 0; i < n; i++) in[i] = (char)('a' + i % 26);
    tk_normalizer *nz = load("{\"type\":\"NFC\"}");
    tk_str out = {0};
    qfmt_error err = {0};
    cr_assert_eq(qfmt__tk_normalize(nz, in, n, &out, &err), 0);
    cr_expect(out.len == n && memcmp(out.p, in, n) == 0);
    /* random bytes: every form survives them */
    th_fill_random(in, 4096, 42);
    static const char *all[] = {"{\"type\":\"NFC\"}", "{\"type\":\"NFKD\"}", "{\"type\":\"Lowercase\"}",
                                "{\"type\":\"StripAccents\"}", "{\"type\":\"BertNormalizer\"}", "{\"type\":\"Nmt\"}",
                                "{\"type\":\"ByteLevel\"}",
                                "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}",
                                "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\w*\"},\"content\":\"-\"}"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tk_normalizer *z = load(all[i]);
        cr_expect_eq(qfmt__tk_normalize(z, in, 4096, &out, &err), 0, "%s: %s", all[i], err.message);
        qfmt__tk_normalizer_free(z);
    }
    qfmt__tk_str_free(&out);
    qfmt__tk_normalizer_free(nz);
    free(in);
}

/* ---- Refusals ------------------------------------------------------------------------------------- */

Test(tk_normalizer, unsupported_types)
{
    refused("{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"AAAA\"}", QFMT_E_UNSUPPORTED,
            "normalizer: type 'Precompiled' is not supported");
    refused("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Precompiled\"}]}",
            QFMT_E_UNSUPPORTED, "normalizer.normalizers[1]: type 'Precompiled' is not supported");
    refused("{\"type\":\"Frobnicate\"}", QFMT_E_UNSUPPORTED, "type 'Frobnicate'");
    refused("{\"type\":\"nfc\"}", QFMT_E_UNSUPPORTED, "type 'nfc'"); /* names are case-sensitive */
    refused("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"(\"},\"content\":\"\"}", QFMT_E_UNSUPPORTED,
            "normalizer.pattern");
}

Test(tk_normalizer, corrupt_json)
{
    refused("[]", QFMT_E_CORRUPT, "normalizer");
    refused("{\"prepend\":\"x\"}", QFMT_E_CORRUPT, NULL);
    refused("{\"type\":7}", QFMT_E_CORRUPT, NULL);
    refused("{\"type\":\"Strip\",\"strip_left\":\"yes\",\"strip_right\":true}", QFMT_E_CORRUPT, "strip_left");
    refused("{\"type\":\"BertNormalizer\",\"lowercase\":1}", QFMT_E_CORRUPT, "lowercase");
    refused("{\"type\":\"BertNormalizer\",\"strip_accents\":\"no\"}", QFMT_E_CORRUPT, "strip_accents");
    refused("{\"type\":\"Prepend\"}", QFMT_E_CORRUPT, "prepend");
    refused("{\"type\":\"Prepend\",\"prepend\":3}", QFMT_E_CORRUPT, "prepend");
    refused("{\"type\":\"Replace\",\"content\":\"x\"}", QFMT_E_CORRUPT, "pattern");
    refused("{\"type\":\"Replace\",\"pattern\":\"x\",\"content\":\"x\"}", QFMT_E_CORRUPT, "pattern");
    refused("{\"type\":\"Replace\",\"pattern\":{\"Glob\":\"x\"},\"content\":\"x\"}", QFMT_E_CORRUPT, "pattern");
    refused("{\"type\":\"Replace\",\"pattern\":{\"String\":1},\"content\":\"x\"}", QFMT_E_CORRUPT, "pattern");
    refused("{\"type\":\"Replace\",\"pattern\":{\"String\":\"a\",\"Regex\":\"b\"},\"content\":\"x\"}", QFMT_E_CORRUPT,
            "pattern");
    refused("{\"type\":\"Replace\",\"pattern\":{\"String\":\"a\"}}", QFMT_E_CORRUPT, "content");
    refused("{\"type\":\"Sequence\"}", QFMT_E_CORRUPT, "normalizers");
    refused("{\"type\":\"Sequence\",\"normalizers\":{}}", QFMT_E_CORRUPT, "normalizers");
    refused("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},3]}", QFMT_E_CORRUPT,
            "normalizer.normalizers[1]");
}

/* `levels` nested Sequences around a Lowercase. */
static char *nested(int levels)
{
    size_t cap = (size_t)levels * 64 + 64;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    size_t o = 0;
    for (int i = 0; i < levels; i++) o += (size_t)snprintf(s + o, cap - o, "{\"type\":\"Sequence\",\"normalizers\":[");
    o += (size_t)snprintf(s + o, cap - o, "{\"type\":\"Lowercase\"}");
    for (int i = 0; i < levels; i++) o += (size_t)snprintf(s + o, cap - o, "]}");
    return s;
}

Test(tk_normalizer, nesting_bounded)
{
    char *ok = nested(TK_MAX_DEPTH);
    CHECK(ok, "AB", "ab");
    free(ok);
    char *deep = nested(TK_MAX_DEPTH + 1);
    refused(deep, QFMT_E_UNSUPPORTED, "nested deeper");
    free(deep);
    char *very = nested(200);
    refused(very, QFMT_E_UNSUPPORTED, "nested deeper");
    free(very);
}
