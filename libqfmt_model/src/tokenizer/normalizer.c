/* normalizer.c - tokenizer.json normalizers (tk_internal.h), reproducing Hugging Face
 * `tokenizers` (tokenizers/src/normalizers/ and NormalizedString in tokenizer/normalizer.rs):
 * NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, BertNormalizer,
 * ByteLevel, Nmt and Sequence. Precompiled and anything else are refused as unsupported.
 *
 * Only the normalized text is produced (no alignments: the pipeline does not report offsets).
 * Unicode data comes from utf8proc. Invalid UTF-8 in the input: the normalizers that work on
 * code points take each invalid byte as U+FFFD (qfmt__tk_utf8_next); Prepend, Strip, ByteLevel and
 * Replace with a String pattern work on bytes and pass them through. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tk_internal.h"

typedef enum {
    NZ_NFC,
    NZ_NFD,
    NZ_NFKC,
    NZ_NFKD,
    NZ_LOWERCASE,
    NZ_STRIP,
    NZ_STRIP_ACCENTS,
    NZ_REPLACE,
    NZ_PREPEND,
    NZ_BERT,
    NZ_BYTE_LEVEL,
    NZ_NMT,
    NZ_SEQUENCE,
} nz_kind;

struct tk_normalizer {
    nz_kind kind;
    bool strip_left, strip_right;                             /* Strip */
    bool clean_text, chinese_chars, strip_accents, lowercase; /* BertNormalizer */
    char *text;                                               /* Prepend: prepend; Replace: content */
    size_t text_len;
    char *pattern;                                            /* Replace {"String": ...}; else NULL */
    size_t pattern_len;
    pcre2_code *re;                                           /* Replace {"Regex": ...} */
    uint32_t *byte_cp;                                        /* ByteLevel: byte -> code point (256) */
    tk_normalizer **kids;                                     /* Sequence */
    size_t nkids;
};

#define PATH_MAX_LEN 320

/* ---- Helpers on text ------------------------------------------------------------------- */
static bool is_ascii(const char *s, size_t n)
{
    unsigned char acc = 0;
    for (size_t i = 0; i < n; i++) acc |= (unsigned char)s[i];
    return acc < 0x80;
}

/* An invalid byte is the only thing qfmt__tk_utf8_next reads as U+FFFD in one byte (a real U+FFFD
 * is three bytes). */
static bool is_valid_utf8(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = qfmt__tk_utf8_next(s + i, n - i, &cp);
        if (cp == 0xFFFD && k == 1) return false;
        i += k;
    }
    return true;
}

/* The text as valid UTF-8: in itself when it already is, else a copy in *tmp with each
 * invalid byte replaced by U+FFFD. */
static int as_valid_utf8(const char *in, size_t n, tk_str *tmp, const char **s, size_t *len, qfmt_error *err)
{
    if (is_valid_utf8(in, n)) {
        *s = in;
        *len = n;
        return 0;
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = qfmt__tk_utf8_next(in + i, n - i, &cp);
        if (qfmt__tk_str_put_cp(tmp, cp) < 0) return TK_OOM(err);
        i += k;
    }
    *s = tmp->p ? tmp->p : "";
    *len = tmp->len;
    return 0;
}

static int put(tk_str *out, const void *b, size_t n, qfmt_error *err)
{
    return qfmt__tk_str_put(out, b, n) < 0 ? TK_OOM(err) : 0;
}

static int put_cp(tk_str *out, uint32_t cp, qfmt_error *err)
{
    return qfmt__tk_str_put_cp(out, cp) < 0 ? TK_OOM(err) : 0;
}

/* Two scratch buffers that stages of a chain write to in turn: each stage reads the previous
 * stage's output (or the input for the first). */
typedef struct {
    const char *s;
    size_t n;
    tk_str buf[2];
    int next;
} chain;

static tk_str *chain_dst(chain *c)
{
    tk_str *d = &c->buf[c->next];
    d->len = 0;
    return d;
}

static void chain_advance(chain *c)
{
    tk_str *d = &c->buf[c->next];
    c->s = d->p ? d->p : "";
    c->n = d->len;
    c->next ^= 1;
}

static void chain_free(chain *c)
{
    qfmt__tk_str_free(&c->buf[0]);
    qfmt__tk_str_free(&c->buf[1]);
}

/* ---- Unicode normalization forms ------------------------------------------------------- */
/* One region of valid UTF-8 through utf8proc_map. */
static int map_region(utf8proc_option_t opts, const char *s, size_t len, tk_str *out, qfmt_error *err)
{
    if (len > (size_t)(PTRDIFF_MAX / 8)) /* utf8proc sizes its buffer in code points */
        return qfmt__tk_fail(err, QFMT_E_RANGE, "text too long to normalize (%zu bytes)", len);
    utf8proc_uint8_t *r = NULL;
    utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &r, opts);
    if (k < 0) {
        free(r);
        if (k == UTF8PROC_ERROR_NOMEM) return TK_OOM(err);
        return qfmt__tk_fail(err, QFMT_E_RANGE, "unicode normalization failed: %s", utf8proc_errmsg(k));
    }
    int rc = put(out, r, (size_t)k, err);
    free(r);
    return rc;
}

/* ASCII is the identity under every form, and a boundary nothing crosses: ASCII characters
 * are starters (canonical reordering stops at them) and none is the second character of a
 * composition. So only the non-ASCII runs, each with the ASCII character before it (a starter
 * the run's marks may compose with), go through utf8proc; mostly-ASCII text stays cheap. */
static int run_unicode(utf8proc_option_t opts, const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    if (is_ascii(in, n)) return put(out, in, n, err);
    tk_str tmp = {0};
    const char *s;
    size_t len;
    if (as_valid_utf8(in, n, &tmp, &s, &len, err) < 0) return -1;
    int rc = 0;
    size_t i = 0;
    while (i < len && rc == 0) {
        size_t j = i;
        while (j < len && (unsigned char)s[j] < 0x80) j++;
        if (j == len) {
            rc = put(out, s + i, len - i, err);
            break;
        }
        size_t b = j > i ? j - 1 : j; /* the region starts at the starter before the run */
        size_t e = j;
        while (e < len && (unsigned char)s[e] >= 0x80) e++;
        rc = put(out, s + i, b - i, err);
        if (rc == 0 && e > b) rc = map_region(opts, s + b, e - b, out, err);
        i = e;
    }
    qfmt__tk_str_free(&tmp);
    return rc;
}

#define OPTS_NFC (UTF8PROC_STABLE | UTF8PROC_COMPOSE)
#define OPTS_NFD (UTF8PROC_STABLE | UTF8PROC_DECOMPOSE)
#define OPTS_NFKC (UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT)
#define OPTS_NFKD (UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT)

/* ---- Per-code-point maps and filters --------------------------------------------------- */
/* Rust's char::to_lowercase: the simple mapping (utf8proc) plus the one unconditional
 * multi-character lowercase mapping of SpecialCasing.txt. */
static int put_lower(tk_str *out, uint32_t cp, qfmt_error *err)
{
    if (cp < 0x80) return qfmt__tk_str_putc(out, (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp)) < 0 ? TK_OOM(err) : 0;
    if (cp == 0x130) { /* LATIN CAPITAL LETTER I WITH DOT ABOVE -> i + COMBINING DOT ABOVE */
        if (put_cp(out, 0x69, err) < 0) return -1;
        return put_cp(out, 0x307, err);
    }
    return put_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), err);
}

static int run_lowercase(const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    if (qfmt__tk_str_reserve(out, n) < 0) return TK_OOM(err);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += qfmt__tk_utf8_next(in + i, n - i, &cp);
        if (put_lower(out, cp, err) < 0) return -1;
    }
    return 0;
}

static bool is_mark(uint32_t cp)
{
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME;
}

/* Removes the code points for which drop() is true (U+FFFD for invalid bytes). */
static int run_filter(bool (*drop)(uint32_t), const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    if (qfmt__tk_str_reserve(out, n) < 0) return TK_OOM(err);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = qfmt__tk_utf8_next(in + i, n - i, &cp);
        i += k;
        if (!drop(cp) && put_cp(out, cp, err) < 0) return -1;
    }
    return 0;
}

/* HF's StripAccents: removes every combining mark (General_Category M: Mn, Mc, Me). */
static int run_strip_accents(const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    return run_filter(is_mark, in, n, out, err);
}

/* Nmt: drops some ASCII / C1 control characters and maps other spacing code points to ' '. */
static bool nmt_drop(uint32_t c)
{
    return (c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || c == 0x8F || c == 0x9F;
}

static uint32_t nmt_map(uint32_t c)
{
    if (c == 0x09 || c == 0x0A || c == 0x0C || c == 0x0D || c == 0x1680 || (c >= 0x200B && c <= 0x200F) ||
        c == 0x2028 || c == 0x2029 || c == 0x2581 || c == 0xFEFF || c == 0xFFFD)
        return ' ';
    return c;
}

static int run_nmt(const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    if (qfmt__tk_str_reserve(out, n) < 0) return TK_OOM(err);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += qfmt__tk_utf8_next(in + i, n - i, &cp);
        if (!nmt_drop(cp) && put_cp(out, nmt_map(cp), err) < 0) return -1;
    }
    return 0;
}

/* ---- BertNormalizer -------------------------------------------------------------------- */
/* bert.rs: \t \n \r count as whitespace, not as control characters; "control" is any Other
 * category (Cc, Cf, Cn, Co; Cs cannot occur). */
static bool bert_is_whitespace(uint32_t c) { return c == '\t' || c == '\n' || c == '\r' || qfmt__tk_is_whitespace(c); }

static bool bert_is_control(uint32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r') return false;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CN ||
           k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CS;
}

/* The CJK Unified Ideographs blocks bert.rs lists (not Hangul, Hiragana or Katakana). */
static bool bert_is_chinese(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* clean_text (drop NUL, U+FFFD and controls; whitespace -> ' ') then handle_chinese_chars
 * (' ' on each side of a CJK ideograph): both per code point, so one pass. */
static int bert_clean(const tk_normalizer *nz, const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    if (qfmt__tk_str_reserve(out, n) < 0) return TK_OOM(err);
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += qfmt__tk_utf8_next(in + i, n - i, &c);
        if (nz->clean_text) {
            if (c == 0 || c == 0xFFFD || bert_is_control(c)) continue;
            if (bert_is_whitespace(c)) c = ' ';
        }
        bool pad = nz->chinese_chars && bert_is_chinese(c);
        if ((pad && put_cp(out, ' ', err) < 0) || put_cp(out, c, err) < 0 || (pad && put_cp(out, ' ', err) < 0))
            return -1;
    }
    return 0;
}

static bool is_nonspacing_mark(uint32_t cp) { return utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_MN; }

/* bert.rs strip accents: NFD, then drop the nonspacing marks (Mn only, unlike StripAccents). */
static int bert_strip_accents(const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    tk_str nfd = {0};
    int rc = run_unicode(OPTS_NFD, in, n, &nfd, err);
    if (rc == 0) rc = run_filter(is_nonspacing_mark, nfd.p ? nfd.p : "", nfd.len, out, err);
    qfmt__tk_str_free(&nfd);
    return rc;
}

/* The steps in bert.rs's order: clean text, Chinese characters, strip accents, lowercase. */
static int run_bert(const tk_normalizer *nz, const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    chain c = {.s = in, .n = n};
    int rc = 0;
    if (rc == 0 && (nz->clean_text || nz->chinese_chars)) {
        rc = bert_clean(nz, c.s, c.n, chain_dst(&c), err);
        chain_advance(&c);
    }
    if (rc == 0 && nz->strip_accents) {
        rc = bert_strip_accents(c.s, c.n, chain_dst(&c), err);
        chain_advance(&c);
    }
    if (rc == 0 && nz->lowercase) {
        rc = run_lowercase(c.s, c.n, chain_dst(&c), err);
        chain_advance(&c);
    }
    if (rc == 0) rc = put(out, c.s, c.n, err);
    chain_free(&c);
    return rc;
}

/* ---- Strip, Prepend, ByteLevel: byte-level edits --------------------------------------- */
/* Strip removes leading / trailing Unicode White_Space (Rust's char::is_whitespace). The text
 * is read forward so that an invalid byte (never whitespace) splits it as qfmt__tk_utf8_next does. */
static int run_strip(const tk_normalizer *nz, const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    size_t first = n, last_end = 0; /* first non-whitespace byte, end of the last one */
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = qfmt__tk_utf8_next(in + i, n - i, &cp);
        if (!qfmt__tk_is_whitespace(cp)) {
            if (first == n) first = i;
            last_end = i + k;
        }
        i += k;
    }
    if (!nz->strip_left && !nz->strip_right) return put(out, in, n, err);
    if (first == n) return 0; /* all whitespace (or empty): stripping either side empties it */
    size_t b = nz->strip_left ? first : 0, e = nz->strip_right ? last_end : n;
    return put(out, in + b, e - b, err);
}

/* prepend.rs: nothing is prepended to an empty string. */
static int run_prepend(const tk_normalizer *nz, const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    if (n == 0) return 0;
    if (put(out, nz->text, nz->text_len, err) < 0) return -1;
    return put(out, in, n, err);
}

/* byte_level.rs: each byte of the UTF-8 -> its GPT-2 bytes_to_unicode character (invalid bytes
 * included: the mapping is on bytes). */
static int run_byte_level(const tk_normalizer *nz, const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    if (n > SIZE_MAX / 2 || qfmt__tk_str_reserve(out, 2 * n) < 0) return TK_OOM(err);
    for (size_t i = 0; i < n; i++)
        if (put_cp(out, nz->byte_cp[(unsigned char)in[i]], err) < 0) return -1;
    return 0;
}

/* ---- Replace --------------------------------------------------------------------------- */
/* HF compiles the String pattern as an escaped regex and replaces every match of onig's
 * find_iter: leftmost, non-overlapping. For a non-empty string that is memmem from the end of
 * the last match; the empty string matches at every character boundary (0 and n included). */
static int replace_string(const tk_normalizer *nz, const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    if (n == 0) return 0; /* pattern.rs: no match in an empty string */
    if (nz->pattern_len == 0) {
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            size_t k = qfmt__tk_utf8_next(in + i, n - i, &cp);
            if (put(out, nz->text, nz->text_len, err) < 0 || put(out, in + i, k, err) < 0) return -1;
            i += k;
        }
        return put(out, nz->text, nz->text_len, err);
    }
    size_t pos = 0;
    while (pos < n) {
        const char *m = memmem(in + pos, n - pos, nz->pattern, nz->pattern_len);
        if (!m) break;
        size_t at = (size_t)(m - in);
        if (put(out, in + pos, at - pos, err) < 0 || put(out, nz->text, nz->text_len, err) < 0) return -1;
        pos = at + nz->pattern_len;
    }
    return put(out, in + pos, n - pos, err);
}

/* onig's FindMatches (the rust-onig crate HF uses): search from the end of the last match; an
 * empty match that ends where the last accepted match ended is skipped by one character. */
static int replace_regex_valid(const tk_normalizer *nz, const char *s, size_t n, tk_str *out, qfmt_error *err)
{
    if (n == 0) return 0; /* pattern.rs: no match in an empty string */
    pcre2_match_data *md = qfmt__tk_regex_match_data(nz->re);
    if (!md) return TK_OOM(err);
    size_t search = 0, copied = 0, last_match_end = 0;
    bool have_last = false;
    int rc = 0;
    while (search <= n) {
        size_t ms, me;
        int f = qfmt__tk_regex_find(nz->re, md, s, n, search, &ms, &me, err);
        if (f <= 0) {
            rc = f;
            break;
        }
        if (ms == me && have_last && last_match_end == me) {
            uint32_t cp;
            search += search < n ? qfmt__tk_utf8_next(s + search, n - search, &cp) : 1;
            continue;
        }
        if (put(out, s + copied, ms - copied, err) < 0 || put(out, nz->text, nz->text_len, err) < 0) {
            rc = -1;
            break;
        }
        copied = search = last_match_end = me;
        have_last = true;
    }
    pcre2_match_data_free(md);
    if (rc < 0) return -1;
    return put(out, s + copied, n - copied, err);
}

static int replace_regex(const tk_normalizer *nz, const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    tk_str tmp = {0};
    const char *s;
    size_t len;
    int rc = as_valid_utf8(in, n, &tmp, &s, &len, err);
    if (rc == 0) rc = replace_regex_valid(nz, s, len, out, err);
    qfmt__tk_str_free(&tmp);
    return rc;
}

/* ---- Running --------------------------------------------------------------------------- */
static int run(const tk_normalizer *nz, const char *in, size_t n, tk_str *out, qfmt_error *err);

/* utils.rs: each normalizer in turn on the previous one's output. */
static int run_sequence(const tk_normalizer *nz, const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    chain c = {.s = in, .n = n};
    int rc = 0;
    for (size_t i = 0; i < nz->nkids && rc == 0; i++) {
        rc = run(nz->kids[i], c.s, c.n, chain_dst(&c), err);
        chain_advance(&c);
    }
    if (rc == 0) rc = put(out, c.s, c.n, err);
    chain_free(&c);
    return rc;
}

/* Appends the normalization of in[0..n) to *out. */
static int run(const tk_normalizer *nz, const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    switch (nz->kind) {
    case NZ_NFC: return run_unicode(OPTS_NFC, in, n, out, err);
    case NZ_NFD: return run_unicode(OPTS_NFD, in, n, out, err);
    case NZ_NFKC: return run_unicode(OPTS_NFKC, in, n, out, err);
    case NZ_NFKD: return run_unicode(OPTS_NFKD, in, n, out, err);
    case NZ_LOWERCASE: return run_lowercase(in, n, out, err);
    case NZ_STRIP: return run_strip(nz, in, n, out, err);
    case NZ_STRIP_ACCENTS: return run_strip_accents(in, n, out, err);
    case NZ_REPLACE: return nz->re ? replace_regex(nz, in, n, out, err) : replace_string(nz, in, n, out, err);
    case NZ_PREPEND: return run_prepend(nz, in, n, out, err);
    case NZ_BERT: return run_bert(nz, in, n, out, err);
    case NZ_BYTE_LEVEL: return run_byte_level(nz, in, n, out, err);
    case NZ_NMT: return run_nmt(in, n, out, err);
    case NZ_SEQUENCE: return run_sequence(nz, in, n, out, err);
    }
    return qfmt__tk_fail(err, QFMT_E_STATE, "normalizer of unknown kind %d", (int)nz->kind);
}

int qfmt__tk_normalize(const tk_normalizer *nz, const char *in, size_t n, tk_str *out, qfmt_error *err)
{
    out->len = 0;
    if (out->p) out->p[0] = '\0';
    if (!in) in = "";
    return run(nz, in, n, out, err);
}

/* ---- Loading --------------------------------------------------------------------------- */
void qfmt__tk_normalizer_free(tk_normalizer *nz)
{
    if (!nz) return;
    for (size_t i = 0; i < nz->nkids; i++) qfmt__tk_normalizer_free(nz->kids[i]);
    free(nz->kids);
    free(nz->text);
    free(nz->pattern);
    free(nz->byte_cp);
    qfmt__tk_regex_free(nz->re);
    free(nz);
}

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* A string member that HF requires (serde has no default for it). */
static int required_string(const cJSON *j, const char *key, const char *path, char **out, size_t *len,
                           qfmt_error *err)
{
    const char *s;
    if (qfmt__tk_json_string(j, key, NULL, &s, len, path, err) < 0) return -1;
    if (!s) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.%s is missing", path, key);
    if (!(*out = dup_bytes(s, *len))) return TK_OOM(err);
    return 0;
}

static int load_strip(const cJSON *j, tk_normalizer *nz, const char *path, qfmt_error *err)
{
    if (qfmt__tk_json_bool(j, "strip_left", true, &nz->strip_left, path, err) < 0) return -1;
    return qfmt__tk_json_bool(j, "strip_right", true, &nz->strip_right, path, err);
}

/* Defaults as BertNormalizer::default(); strip_accents absent or null follows lowercase. */
static int load_bert(const cJSON *j, tk_normalizer *nz, const char *path, qfmt_error *err)
{
    if (qfmt__tk_json_bool(j, "clean_text", true, &nz->clean_text, path, err) < 0 ||
        qfmt__tk_json_bool(j, "handle_chinese_chars", true, &nz->chinese_chars, path, err) < 0 ||
        qfmt__tk_json_bool(j, "lowercase", true, &nz->lowercase, path, err) < 0)
        return -1;
    return qfmt__tk_json_bool(j, "strip_accents", nz->lowercase, &nz->strip_accents, path, err);
}

/* pattern: {"String": s} or {"Regex": r} (serde's externally tagged enum: exactly one key). */
static int load_replace(const cJSON *j, tk_normalizer *nz, const char *path, qfmt_error *err)
{
    if (required_string(j, "content", path, &nz->text, &nz->text_len, err) < 0) return -1;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const cJSON *v = cJSON_IsObject(p) ? p->child : NULL;
    if (!v || v->next || !cJSON_IsString(v) || !v->valuestring || !v->string)
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.pattern is not {\"String\": ...} or {\"Regex\": ...}", path);
    size_t len = strlen(v->valuestring);
    if (strcmp(v->string, "String") == 0) {
        if (!(nz->pattern = dup_bytes(v->valuestring, len))) return TK_OOM(err);
        nz->pattern_len = len;
        return 0;
    }
    if (strcmp(v->string, "Regex") == 0) {
        char where[PATH_MAX_LEN + 16];
        int k = snprintf(where, sizeof where, "%s.pattern", path);
        if (k < 0 || (size_t)k >= sizeof where) where[0] = '\0';
        nz->re = qfmt__tk_regex_compile(v->valuestring, len, where, err);
        return nz->re ? 0 : -1;
    }
    return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.pattern is not {\"String\": ...} or {\"Regex\": ...}", path);
}

static int load_byte_level(tk_normalizer *nz, qfmt_error *err)
{
    if (!(nz->byte_cp = malloc(256 * sizeof *nz->byte_cp))) return TK_OOM(err);
    for (unsigned b = 0; b < 256; b++) nz->byte_cp[b] = qfmt__tk_byte_to_cp((uint8_t)b);
    return 0;
}

static int load_node(const cJSON *j, int depth, const char *path, tk_normalizer **out, qfmt_error *err);

static int load_sequence(const cJSON *j, tk_normalizer *nz, int depth, const char *path, qfmt_error *err)
{
    if (depth >= TK_MAX_DEPTH)
        return qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "%s: Sequence nested deeper than %d levels", path, TK_MAX_DEPTH);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
    if (!cJSON_IsArray(arr)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.normalizers is not an array", path);
    size_t count = (size_t)cJSON_GetArraySize(arr); /* bounded by the JSON's size */
    if (count && !(nz->kids = calloc(count, sizeof *nz->kids))) return TK_OOM(err);
    const cJSON *e = arr->child;
    for (size_t i = 0; i < count && e; i++, e = e->next) {
        /* deep paths are shortened so that the message (256 bytes) keeps what is wrong */
        char sub[PATH_MAX_LEN];
        int k = snprintf(sub, sizeof sub, "%s.normalizers[%zu]", strlen(path) > 100 ? "normalizer..." : path, i);
        if (k < 0 || (size_t)k >= sizeof sub) sub[0] = '\0';
        if (load_node(e, depth + 1, sub, &nz->kids[i], err) < 0) return -1;
        nz->nkids = i + 1;
    }
    return 0;
}

static const struct {
    const char *name;
    nz_kind kind;
} kinds[] = {
    {"NFC", NZ_NFC},
    {"NFD", NZ_NFD},
    {"NFKC", NZ_NFKC},
    {"NFKD", NZ_NFKD},
    {"Lowercase", NZ_LOWERCASE},
    {"Strip", NZ_STRIP},
    {"StripAccents", NZ_STRIP_ACCENTS},
    {"Replace", NZ_REPLACE},
    {"Prepend", NZ_PREPEND},
    {"BertNormalizer", NZ_BERT},
    {"ByteLevel", NZ_BYTE_LEVEL},
    {"Nmt", NZ_NMT},
    {"Sequence", NZ_SEQUENCE},
};

static int load_fields(const cJSON *j, tk_normalizer *nz, int depth, const char *path, qfmt_error *err)
{
    switch (nz->kind) {
    case NZ_STRIP: return load_strip(j, nz, path, err);
    case NZ_REPLACE: return load_replace(j, nz, path, err);
    case NZ_PREPEND: return required_string(j, "prepend", path, &nz->text, &nz->text_len, err);
    case NZ_BERT: return load_bert(j, nz, path, err);
    case NZ_BYTE_LEVEL: return load_byte_level(nz, err);
    case NZ_SEQUENCE: return load_sequence(j, nz, depth, path, err);
    default: return 0; /* the others have no options */
    }
}

static int load_node(const cJSON *j, int depth, const char *path, tk_normalizer **out, qfmt_error *err)
{
    *out = NULL;
    const char *type = qfmt__tk_json_type(j, path, err);
    if (!type) return -1;
    size_t i = 0;
    while (i < sizeof kinds / sizeof kinds[0] && strcmp(kinds[i].name, type) != 0) i++;
    if (i == sizeof kinds / sizeof kinds[0]) {
        char shown[80];
        size_t len = strlen(type);
        qfmt_escape(type, len < 60 ? len : 60, shown, sizeof shown);
        return qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "%s: type '%s' is not supported", path, shown);
    }
    tk_normalizer *nz = calloc(1, sizeof *nz);
    if (!nz) return TK_OOM(err);
    nz->kind = kinds[i].kind;
    if (load_fields(j, nz, depth, path, err) < 0) {
        qfmt__tk_normalizer_free(nz);
        return -1;
    }
    *out = nz;
    return 0;
}

int qfmt__tk_normalizer_load(const cJSON *j, tk_normalizer **out, qfmt_error *err)
{
    return load_node(j, 0, "normalizer", out, err);
}
