/* pre_tokenizer.c - the pre-tokenizers of tokenizer.json (tk_internal.h), reproducing Hugging
 * Face `tokenizers`:
 *
 *   - every split-based pre-tokenizer is HF's NormalizedString::split: a pattern cuts the
 *     piece into a run of ranges covering it, each flagged match / not a match (Pattern::
 *     find_matches), then the behaviour (Removed, Isolated, MergedWith*, Contiguous) turns
 *     the run into the pieces kept; empty pieces are dropped (PreTokenizedString::split);
 *   - patterns are a regex (Split, Whitespace, ByteLevel's GPT-2 regex; a Split String is an
 *     escaped regex, as HF compiles it) or a character predicate (whitespace, punctuation,
 *     digits, a delimiter), each matching character being its own match;
 *   - Sequence applies each member to every piece the previous one produced.
 *
 * A call keeps its scratch (match data, ranges, rewritten text) in a `ctx` on its stack, so the
 * loaded tree is never written after loading. Invalid UTF-8: a regex never matches inside an
 * invalid sequence (PCRE2_MATCH_INVALID_UTF), so its bytes fall in non-match ranges; character
 * predicates see each invalid byte as U+FFFD (not whitespace, punctuation or a digit);
 * ByteLevel maps every byte, valid or not. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tk_internal.h"

/* HF hard-codes this in ByteLevel (pre_tokenizers/byte_level.rs). */
static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/* HF's Whitespace (pre_tokenizers/whitespace.rs), used inverted with Removed. */
static const char WHITESPACE_REGEX[] = "\\w+|[^\\w\\s]+";

typedef enum {
    PT_SPLIT, /* a regex or a character class, a behaviour, invert */
    PT_BYTE_LEVEL,
    PT_METASPACE,
    PT_BERT,
    PT_SEQUENCE,
} pt_type;

typedef enum { BEH_REMOVED, BEH_ISOLATED, BEH_MERGED_PREV, BEH_MERGED_NEXT, BEH_CONTIGUOUS } behavior;
typedef enum { CLS_WHITESPACE, CLS_PUNCT, CLS_NUMERIC, CLS_CHAR } char_class;
typedef enum { PREPEND_ALWAYS, PREPEND_NEVER, PREPEND_FIRST } prepend_scheme;

struct tk_pre_tokenizer {
    pt_type type;
    /* PT_SPLIT (and ByteLevel's regex): re when a regex, else the class cls (with ch) */
    pcre2_code *re;
    char_class cls;
    uint32_t ch; /* CLS_CHAR's character; Metaspace's replacement */
    behavior beh;
    bool invert;
    /* ByteLevel */
    bool add_prefix_space;
    char byte_utf8[256][2]; /* bytes_to_unicode of each byte, UTF-8 (all below U+0800) */
    uint8_t byte_len[256];
    /* Metaspace */
    char rep[4];
    size_t rep_len;
    prepend_scheme prepend;
    bool split;
    /* Sequence */
    tk_pre_tokenizer **sub;
    size_t nsub;
    /* the ovector pairs the largest regex of this tree needs (0: no regex) */
    uint32_t pairs;
};

/* ---- Per-call scratch ------------------------------------------------------------------------ */
typedef struct {
    size_t s, e;
    bool m; /* a match (after invert); after a behaviour: to be removed */
} rng;

typedef struct {
    pcre2_match_data *md; /* one for the call, sized for the tree's largest regex */
    rng *r;
    size_t nr, cr;
    tk_str text; /* a piece rewritten before splitting (a prefix, Metaspace's replacement) */
    tk_str word; /* one ByteLevel word being mapped */
    qfmt_error *err;
} ctx;

/* Words with, while inside a Sequence, whether each begins at offset 0 of the original text. */
typedef struct {
    tk_list *l;
    unsigned char *first; /* per word, when track */
    size_t fcap;
    bool track;
} plist;

static int rng_push(ctx *cx, size_t s, size_t e, bool m)
{
    if (cx->nr == cx->cr) {
        size_t cap = cx->cr ? 2 * cx->cr : 64;
        if (cap > SIZE_MAX / sizeof *cx->r) return TK_OOM(cx->err);
        rng *r = realloc(cx->r, cap * sizeof *r);
        if (!r) return TK_OOM(cx->err);
        cx->r = r;
        cx->cr = cap;
    }
    cx->r[cx->nr++] = (rng){s, e, m};
    return 0;
}

/* Appends a word; empty ones are dropped as HF drops empty splits. */
static int pl_push(ctx *cx, plist *p, const char *b, size_t n, bool first)
{
    if (n == 0) return 0;
    if (p->track && p->l->n >= p->fcap) {
        size_t cap = p->fcap ? 2 * p->fcap : 64;
        while (cap <= p->l->n) cap *= 2;
        unsigned char *f = realloc(p->first, cap);
        if (!f) return TK_OOM(cx->err);
        p->first = f;
        p->fcap = cap;
    }
    size_t i = p->l->n;
    if (tk_list_push(p->l, b, n) < 0) return TK_OOM(cx->err);
    if (p->track) p->first[i] = first;
    return 0;
}

/* ---- Patterns: find_matches ------------------------------------------------------------------ */
static size_t char_len_at(const char *s, size_t n, size_t i)
{
    uint32_t cp;
    return i < n ? tk_utf8_next(s + i, n - i, &cp) : 1;
}

/* HF's Pattern for a regex, with the match iteration of the onig crate (FindMatches): an empty
 * match right where the previous match ended is skipped by moving on one character. */
static int regex_ranges(ctx *cx, const pcre2_code *re, const char *s, size_t n, bool invert)
{
    cx->nr = 0;
    if (n == 0) return rng_push(cx, 0, 0, invert);
    size_t prev = 0, pos = 0, last_end = 0;
    bool have_last = false;
    while (pos <= n) { /* each turn moves pos on, or records an empty match skipped next turn */
        size_t ms, me;
        int rc = tk_regex_find(re, cx->md, s, n, pos, &ms, &me, cx->err);
        if (rc < 0) return -1;
        if (rc == 0) break;
        if (ms == me && have_last && last_end == me) {
            pos += char_len_at(s, n, pos);
            continue;
        }
        pos = last_end = me;
        have_last = true;
        if (prev != ms && rng_push(cx, prev, ms, invert) < 0) return -1;
        if (rng_push(cx, ms, me, !invert) < 0) return -1;
        prev = me;
    }
    if (prev != n) return rng_push(cx, prev, n, invert);
    return 0;
}

/* Rust's char::is_ascii_punctuation || unicode_categories' is_punctuation (P*). */
static bool is_punct(uint32_t c)
{
    if (c < 0x80)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: return true;
    default: return false;
    }
}

/* Rust's char::is_numeric: Nd, Nl, No. */
static bool is_numeric(uint32_t c)
{
    if (c < 0x80) return c >= '0' && c <= '9';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

static bool class_has(char_class cls, uint32_t ch, uint32_t c)
{
    switch (cls) {
    case CLS_WHITESPACE: return tk_is_whitespace(c);
    case CLS_PUNCT: return is_punct(c);
    case CLS_NUMERIC: return is_numeric(c);
    case CLS_CHAR: return c == ch;
    }
    return false;
}

/* HF's Pattern for a character predicate: each matching character is a match of its own. */
static int class_ranges(ctx *cx, char_class cls, uint32_t ch, const char *s, size_t n, bool invert)
{
    cx->nr = 0;
    if (n == 0) return rng_push(cx, 0, 0, invert);
    size_t last = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t l = tk_utf8_next(s + i, n - i, &c);
        if (class_has(cls, ch, c)) {
            if (last < i && rng_push(cx, last, i, invert) < 0) return -1;
            if (rng_push(cx, i, i + l, !invert) < 0) return -1;
            last = i + l;
        }
        i += l;
    }
    if (last < n) return rng_push(cx, last, n, invert);
    return 0;
}

/* ---- Behaviours: NormalizedString::split --------------------------------------------------- */
/* Rewrites cx->r in place into the pieces, m = to be removed; returns the index of the first
 * (MergedWithNext builds from the end). */
static size_t apply_behavior(ctx *cx, behavior beh)
{
    rng *r = cx->r;
    size_t n = cx->nr, k = 0;
    bool prev = false;
    switch (beh) {
    case BEH_REMOVED: return 0; /* the matches are what is removed */
    case BEH_ISOLATED:
        for (size_t i = 0; i < n; i++) r[i].m = false;
        return 0;
    case BEH_CONTIGUOUS: /* runs of equal flags merge */
        for (size_t i = 0; i < n; i++) {
            bool m = r[i].m;
            if (m == prev && k > 0) r[k - 1].e = r[i].e;
            else r[k++] = (rng){r[i].s, r[i].e, false};
            prev = m;
        }
        break;
    case BEH_MERGED_PREV: /* a match after a non-match joins it */
        for (size_t i = 0; i < n; i++) {
            bool m = r[i].m;
            if (m && !prev && k > 0) r[k - 1].e = r[i].e;
            else r[k++] = (rng){r[i].s, r[i].e, false};
            prev = m;
        }
        break;
    case BEH_MERGED_NEXT: { /* the same from the end: a match before a non-match joins it */
        k = n;
        for (size_t i = n; i-- > 0;) {
            bool m = r[i].m;
            if (m && !prev && k < n) r[k].s = r[i].s;
            else r[--k] = (rng){r[i].s, r[i].e, false};
            prev = m;
        }
        return k;
    }
    }
    cx->nr = k;
    return 0;
}

static int emit_ranges(ctx *cx, size_t from, const char *s, bool first, plist *out)
{
    for (size_t i = from; i < cx->nr; i++) {
        const rng *r = &cx->r[i];
        if (!r->m && pl_push(cx, out, s + r->s, r->e - r->s, first && r->s == 0) < 0) return -1;
    }
    return 0;
}

/* ---- The pre-tokenizers on one piece --------------------------------------------------------- */
static int run_split(const tk_pre_tokenizer *pt, ctx *cx, const char *s, size_t n, bool first, plist *out)
{
    int rc = pt->re ? regex_ranges(cx, pt->re, s, n, pt->invert) : class_ranges(cx, pt->cls, pt->ch, s, n, pt->invert);
    if (rc < 0) return -1;
    return emit_ranges(cx, apply_behavior(cx, pt->beh), s, first, out);
}

/* Whitespace removed, then each punctuation character isolated: one pass does both. */
static int run_bert(ctx *cx, const char *s, size_t n, bool first, plist *out)
{
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t l = tk_utf8_next(s + i, n - i, &c);
        bool ws = tk_is_whitespace(c);
        if (ws || is_punct(c)) {
            if (pl_push(cx, out, s + start, i - start, first && start == 0) < 0) return -1;
            if (!ws && pl_push(cx, out, s + i, l, first && i == 0) < 0) return -1;
            start = i + l;
        }
        i += l;
    }
    return pl_push(cx, out, s + start, n - start, first && start == 0);
}

/* Spaces become the replacement; the replacement is prepended (HF's prepend is a no-op on an
 * empty string) unless already there; then split before each replacement (MergedWithNext). */
static int run_metaspace(const tk_pre_tokenizer *pt, ctx *cx, const char *s, size_t n, bool first, plist *out)
{
    tk_str *t = &cx->text;
    t->len = 0;
    if (n > SIZE_MAX / 4 - 1 || tk_str_reserve(t, (n + 1) * pt->rep_len) < 0) return TK_OOM(cx->err);
    bool starts = n > 0 && (s[0] == ' ' || (n >= pt->rep_len && memcmp(s, pt->rep, pt->rep_len) == 0));
    bool prepend = n > 0 && !starts && (pt->prepend == PREPEND_ALWAYS || (pt->prepend == PREPEND_FIRST && first));
    if (prepend) tk_str_put(t, pt->rep, pt->rep_len);
    for (size_t i = 0; i < n; i++) { /* ' ' is never inside a multi-byte sequence */
        if (s[i] == ' ') {
            memcpy(t->p + t->len, pt->rep, pt->rep_len);
            t->len += pt->rep_len;
        } else {
            t->p[t->len++] = s[i];
        }
    }
    if (!pt->split) return pl_push(cx, out, t->p, t->len, first);
    if (class_ranges(cx, CLS_CHAR, pt->ch, t->p, t->len, false) < 0) return -1;
    return emit_ranges(cx, apply_behavior(cx, BEH_MERGED_NEXT), t->p, first, out);
}

static int push_bytes_mapped(const tk_pre_tokenizer *pt, ctx *cx, const char *s, size_t n, bool first, plist *out)
{
    if (n == 0) return 0;
    tk_str *w = &cx->word;
    w->len = 0;
    if (n > SIZE_MAX / 2 - 1 || tk_str_reserve(w, 2 * n) < 0) return TK_OOM(cx->err);
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        memcpy(w->p + w->len, pt->byte_utf8[b], pt->byte_len[b]);
        w->len += pt->byte_len[b];
    }
    return pl_push(cx, out, w->p, w->len, first);
}

/* HF: a space prepended when the piece does not start with one, the GPT-2 regex split
 * (Isolated), then every byte mapped through bytes_to_unicode. */
static int run_byte_level(const tk_pre_tokenizer *pt, ctx *cx, const char *s, size_t n, bool first, plist *out)
{
    if (n == 0) return 0;
    if (pt->add_prefix_space && s[0] != ' ') {
        tk_str *t = &cx->text;
        t->len = 0;
        if (tk_str_putc(t, ' ') < 0 || tk_str_put(t, s, n) < 0) return TK_OOM(cx->err);
        s = t->p;
        n = t->len;
    }
    if (!pt->re) return push_bytes_mapped(pt, cx, s, n, first, out);
    if (regex_ranges(cx, pt->re, s, n, false) < 0) return -1;
    for (size_t i = 0; i < cx->nr; i++) {
        const rng *r = &cx->r[i];
        if (push_bytes_mapped(pt, cx, s + r->s, r->e - r->s, first && r->s == 0, out) < 0) return -1;
    }
    return 0;
}

static int run_list(const tk_pre_tokenizer *pt, ctx *cx, const plist *in, plist *out);

static int run_one(const tk_pre_tokenizer *pt, ctx *cx, const char *s, size_t n, bool first, plist *out)
{
    switch (pt->type) {
    case PT_SPLIT: return run_split(pt, cx, s, n, first, out);
    case PT_BYTE_LEVEL: return run_byte_level(pt, cx, s, n, first, out);
    case PT_METASPACE: return run_metaspace(pt, cx, s, n, first, out);
    case PT_BERT: return run_bert(cx, s, n, first, out);
    case PT_SEQUENCE: break;
    }
    /* a Sequence on one piece: through a list of that piece */
    tk_list l = {0};
    plist one = {.l = &l, .track = true};
    int rc = pl_push(cx, &one, s, n, first);
    if (rc == 0) rc = run_list(pt, cx, &one, out);
    tk_list_free(&l);
    free(one.first);
    return rc;
}

/* A Sequence: each member on every word the previous one produced, through two alternating
 * lists; the last member writes to out. */
static int run_sequence(const tk_pre_tokenizer *pt, ctx *cx, const plist *in, plist *out)
{
    if (pt->nsub == 0) { /* HF leaves the splits as they are */
        for (size_t i = 0; i < in->l->n; i++) {
            size_t len;
            const char *w = tk_list_at(in->l, i, &len);
            if (pl_push(cx, out, w, len, in->first[i]) < 0) return -1;
        }
        return 0;
    }
    tk_list la = {0}, lb = {0};
    plist a = {.l = &la, .track = true}, b = {.l = &lb, .track = true};
    const plist *cur = in;
    int rc = 0;
    for (size_t k = 0; k < pt->nsub && rc == 0; k++) {
        plist *dst = k + 1 == pt->nsub ? out : (k % 2 ? &b : &a);
        if (dst != out) tk_list_clear(dst->l);
        rc = run_list(pt->sub[k], cx, cur, dst);
        cur = dst;
    }
    tk_list_free(&la);
    tk_list_free(&lb);
    free(a.first);
    free(b.first);
    return rc;
}

static int run_list(const tk_pre_tokenizer *pt, ctx *cx, const plist *in, plist *out)
{
    if (pt->type == PT_SEQUENCE) return run_sequence(pt, cx, in, out);
    for (size_t i = 0; i < in->l->n; i++) {
        size_t len;
        const char *w = tk_list_at(in->l, i, &len);
        if (run_one(pt, cx, w, len, in->first[i], out) < 0) return -1;
    }
    return 0;
}

int tk_pre_tokenize(const tk_pre_tokenizer *pt, const char *in, size_t n, bool first, tk_list *out, qfmt_error *err)
{
    if (n == 0) return 0; /* HF keeps no empty split */
    ctx cx = {.err = err};
    if (pt->pairs && !(cx.md = pcre2_match_data_create(pt->pairs, NULL))) return TK_OOM(err);
    plist o = {.l = out, .track = false};
    int rc = run_one(pt, &cx, in, n, first, &o);
    pcre2_match_data_free(cx.md);
    free(cx.r);
    tk_str_free(&cx.text);
    tk_str_free(&cx.word);
    return rc;
}

/* ---- Loading ------------------------------------------------------------------------------------ */
void tk_pre_tokenizer_free(tk_pre_tokenizer *pt)
{
    if (!pt) return;
    for (size_t i = 0; i < pt->nsub; i++) tk_pre_tokenizer_free(pt->sub[i]);
    free(pt->sub);
    tk_regex_free(pt->re);
    free(pt);
}

static int set_regex(tk_pre_tokenizer *pt, const char *pattern, size_t len, const char *where, qfmt_error *err)
{
    if (!(pt->re = tk_regex_compile(pattern, len, where, err))) return -1;
    uint32_t groups = 0;
    if (pcre2_pattern_info(pt->re, PCRE2_INFO_CAPTURECOUNT, &groups) != 0) groups = 0;
    pt->pairs = groups + 1;
    return 0;
}

/* A string of exactly one valid UTF-8 character (Rust's char). */
static int one_char(const cJSON *j, const char *key, const char *dflt, uint32_t *cp, const char *where,
                    qfmt_error *err)
{
    const char *s;
    size_t n;
    if (tk_json_string(j, key, dflt, &s, &n, where, err) < 0) return -1;
    if (!s) return tk_fail(err, QFMT_E_CORRUPT, "%s.%s is missing", where, key);
    if (n == 0 || tk_utf8_next(s, n, cp) != n || (*cp == 0xFFFD && memcmp(s, "\xEF\xBF\xBD", 3) != 0))
        return tk_fail(err, QFMT_E_CORRUPT, "%s.%s is not a single character", where, key);
    return 0;
}

static int behavior_of(const cJSON *j, const char *dflt, behavior *beh, const char *where, qfmt_error *err)
{
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    const char *s;
    if (tk_json_string(j, "behavior", dflt, &s, NULL, where, err) < 0) return -1;
    if (!s) return tk_fail(err, QFMT_E_CORRUPT, "%s.behavior is missing", where);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(s, names[i]) == 0) {
            *beh = (behavior)i;
            return 0;
        }
    return tk_fail(err, QFMT_E_CORRUPT, "%s.behavior '%.40s' is not a split behavior", where, s);
}

/* HF compiles a String pattern as regex::escape(s): every regex metacharacter escaped. In PCRE2 a
 * backslash before any ASCII punctuation is that character. */
static int load_split_pattern(tk_pre_tokenizer *pt, const cJSON *j, const char *where, qfmt_error *err)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const cJSON *str = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "String") : NULL;
    const cJSON *rx = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "Regex") : NULL;
    if (!(cJSON_IsString(str) && !rx) && !(cJSON_IsString(rx) && !str))
        return tk_fail(err, QFMT_E_CORRUPT, "%s.pattern is not {\"String\": s} or {\"Regex\": r}", where);
    if (rx) return set_regex(pt, rx->valuestring, strlen(rx->valuestring), where, err);
    tk_str e = {0};
    for (const char *c = str->valuestring; *c; c++) {
        bool meta = (*c >= 0x21 && *c <= 0x7E) && !((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                                                    (*c >= 'A' && *c <= 'Z'));
        if ((meta && tk_str_putc(&e, '\\') < 0) || tk_str_putc(&e, *c) < 0) {
            tk_str_free(&e);
            return TK_OOM(err);
        }
    }
    int rc = set_regex(pt, e.p ? e.p : "", e.len, where, err);
    tk_str_free(&e);
    return rc;
}

static int load_split(tk_pre_tokenizer *pt, const cJSON *j, const char *where, qfmt_error *err)
{
    if (load_split_pattern(pt, j, where, err) < 0) return -1;
    if (behavior_of(j, NULL, &pt->beh, where, err) < 0) return -1;
    return tk_json_bool(j, "invert", false, &pt->invert, where, err);
}

static int load_byte_level(tk_pre_tokenizer *pt, const cJSON *j, const char *where, qfmt_error *err)
{
    bool use_regex, trim;
    if (tk_json_bool(j, "add_prefix_space", true, &pt->add_prefix_space, where, err) < 0 ||
        tk_json_bool(j, "use_regex", true, &use_regex, where, err) < 0 ||
        tk_json_bool(j, "trim_offsets", true, &trim, where, err) < 0) /* offsets only: checked, unused */
        return -1;
    for (unsigned b = 0; b < 256; b++)
        pt->byte_len[b] = (uint8_t)tk_utf8_put(tk_byte_to_cp((uint8_t)b), pt->byte_utf8[b]);
    return use_regex ? set_regex(pt, GPT2_REGEX, sizeof GPT2_REGEX - 1, where, err) : 0;
}

static int load_metaspace(tk_pre_tokenizer *pt, const cJSON *j, const char *where, qfmt_error *err)
{
    if (one_char(j, "replacement", "\xE2\x96\x81", &pt->ch, where, err) < 0) return -1;
    pt->rep_len = tk_utf8_put(pt->ch, pt->rep);
    const char *scheme;
    bool aps;
    if (tk_json_string(j, "prepend_scheme", NULL, &scheme, NULL, where, err) < 0 ||
        tk_json_bool(j, "add_prefix_space", true, &aps, where, err) < 0 ||
        tk_json_bool(j, "split", true, &pt->split, where, err) < 0)
        return -1;
    if (!scheme) pt->prepend = aps ? PREPEND_ALWAYS : PREPEND_NEVER; /* files from before prepend_scheme */
    else if (strcmp(scheme, "always") == 0) pt->prepend = PREPEND_ALWAYS;
    else if (strcmp(scheme, "never") == 0) pt->prepend = PREPEND_NEVER;
    else if (strcmp(scheme, "first") == 0) pt->prepend = PREPEND_FIRST;
    else return tk_fail(err, QFMT_E_CORRUPT, "%s.prepend_scheme '%.40s' is not always, never or first", where, scheme);
    if (!aps && pt->prepend != PREPEND_NEVER) /* HF refuses the contradiction */
        return tk_fail(err, QFMT_E_CORRUPT, "%s: add_prefix_space false does not match prepend_scheme '%s'", where,
                       scheme);
    return 0;
}

static int load_any(const cJSON *j, const char *where, int depth, tk_pre_tokenizer **out, qfmt_error *err);

static int load_sequence(tk_pre_tokenizer *pt, const cJSON *j, const char *where, int depth, qfmt_error *err)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
    if (!cJSON_IsArray(arr)) return tk_fail(err, QFMT_E_CORRUPT, "%s.pretokenizers is not an array", where);
    if (depth + 1 >= TK_MAX_DEPTH)
        return tk_fail(err, QFMT_E_UNSUPPORTED, "Sequences nested deeper than %d (%s)", TK_MAX_DEPTH, where);
    size_t n = (size_t)cJSON_GetArraySize(arr); /* bounded by the JSON's size */
    if (n && !(pt->sub = calloc(n, sizeof *pt->sub))) return TK_OOM(err);
    const cJSON *it = arr->child;
    for (size_t i = 0; i < n && it; i++, it = it->next) {
        char sub_where[512];
        snprintf(sub_where, sizeof sub_where, "%s.pretokenizers[%zu]", where, i);
        if (load_any(it, sub_where, depth + 1, &pt->sub[pt->nsub], err) < 0) return -1;
        if (pt->sub[pt->nsub]->pairs > pt->pairs) pt->pairs = pt->sub[pt->nsub]->pairs;
        pt->nsub++;
    }
    return 0;
}

/* The types that are a character-class split with a fixed behaviour (and Whitespace, a fixed
 * regex): 1 when `type` is one of them, 0 when not, -1 on error. */
static int load_class_split(tk_pre_tokenizer *pt, const char *type, const cJSON *j, const char *where,
                            qfmt_error *err)
{
    if (strcmp(type, "Whitespace") == 0) {
        pt->beh = BEH_REMOVED;
        pt->invert = true;
        return set_regex(pt, WHITESPACE_REGEX, sizeof WHITESPACE_REGEX - 1, where, err) < 0 ? -1 : 1;
    }
    if (strcmp(type, "WhitespaceSplit") == 0) {
        pt->cls = CLS_WHITESPACE;
        pt->beh = BEH_REMOVED;
        return 1;
    }
    if (strcmp(type, "Punctuation") == 0) {
        pt->cls = CLS_PUNCT;
        return behavior_of(j, "Isolated", &pt->beh, where, err) < 0 ? -1 : 1;
    }
    if (strcmp(type, "Digits") == 0) {
        bool individual;
        if (tk_json_bool(j, "individual_digits", false, &individual, where, err) < 0) return -1;
        pt->cls = CLS_NUMERIC;
        pt->beh = individual ? BEH_ISOLATED : BEH_CONTIGUOUS;
        return 1;
    }
    if (strcmp(type, "CharDelimiterSplit") == 0) {
        pt->cls = CLS_CHAR;
        pt->beh = BEH_REMOVED;
        return one_char(j, "delimiter", NULL, &pt->ch, where, err) < 0 ? -1 : 1;
    }
    return 0;
}

static int load_typed(tk_pre_tokenizer *pt, const char *type, const cJSON *j, const char *where, int depth,
                      qfmt_error *err)
{
    pt->type = PT_SPLIT;
    int rc = load_class_split(pt, type, j, where, err);
    if (rc != 0) return rc < 0 ? -1 : 0;
    if (strcmp(type, "Split") == 0) return load_split(pt, j, where, err);
    if (strcmp(type, "ByteLevel") == 0) {
        pt->type = PT_BYTE_LEVEL;
        return load_byte_level(pt, j, where, err);
    }
    if (strcmp(type, "Metaspace") == 0) {
        pt->type = PT_METASPACE;
        return load_metaspace(pt, j, where, err);
    }
    if (strcmp(type, "BertPreTokenizer") == 0) {
        pt->type = PT_BERT;
        return 0;
    }
    if (strcmp(type, "Sequence") == 0) {
        pt->type = PT_SEQUENCE;
        return load_sequence(pt, j, where, depth, err);
    }
    char shown[80];
    qfmt_escape(type, strlen(type) < 60 ? strlen(type) : 60, shown, sizeof shown);
    return tk_fail(err, QFMT_E_UNSUPPORTED, "%s: type '%s' is not supported", where, shown);
}

static int load_any(const cJSON *j, const char *where, int depth, tk_pre_tokenizer **out, qfmt_error *err)
{
    *out = NULL;
    const char *type = tk_json_type(j, where, err);
    if (!type) return -1;
    tk_pre_tokenizer *pt = calloc(1, sizeof *pt);
    if (!pt) return TK_OOM(err);
    if (load_typed(pt, type, j, where, depth, err) < 0) {
        tk_pre_tokenizer_free(pt);
        return -1;
    }
    *out = pt;
    return 0;
}

int tk_pre_tokenizer_load(const cJSON *j, tk_pre_tokenizer **out, qfmt_error *err)
{
    return load_any(j, "pre_tokenizer", 0, out, err);
}
