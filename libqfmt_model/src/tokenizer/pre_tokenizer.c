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
 *   - UnicodeScripts cuts where the Unicode script changes (a table of HF's scripts);
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
/* HF's Whitespace (pre_tokenizers/whitespace.rs): \w+|[^\w\s]+ in the Rust regex crate, used
 * inverted with Removed. That crate's Unicode \w is spelled out (PCRE2's \w is \p{L}\p{N}_ or
 * close, which takes No such as '²' and misses most marks). */
#define RUST_WORD "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}"
static const char WHITESPACE_REGEX[] = "[" RUST_WORD "]+|[^" RUST_WORD "\\s]+";

typedef enum {
    PT_SPLIT, /* a regex or a character class, a behaviour, invert */
    PT_BYTE_LEVEL,
    PT_METASPACE,
    PT_BERT,
    PT_SCRIPTS,
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
    if (qfmt__tk_list_push(p->l, b, n) < 0) return TK_OOM(cx->err);
    if (p->track) p->first[i] = first;
    return 0;
}

/* ---- Patterns: find_matches ------------------------------------------------------------------ */
static size_t char_len_at(const char *s, size_t n, size_t i)
{
    uint32_t cp;
    return i < n ? qfmt__tk_utf8_next(s + i, n - i, &cp) : 1;
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
        int rc = qfmt__tk_regex_find(re, cx->md, s, n, pos, &ms, &me, cx->err);
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
    case CLS_WHITESPACE: return qfmt__tk_is_whitespace(c);
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
        size_t l = qfmt__tk_utf8_next(s + i, n - i, &c);
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
        size_t l = qfmt__tk_utf8_next(s + i, n - i, &c);
        bool ws = qfmt__tk_is_whitespace(c);
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
    if (n > SIZE_MAX / 4 - 1 || qfmt__tk_str_reserve(t, (n + 1) * pt->rep_len) < 0) return TK_OOM(cx->err);
    bool starts = n > 0 && (s[0] == ' ' || (n >= pt->rep_len && memcmp(s, pt->rep, pt->rep_len) == 0));
    bool prepend = n > 0 && !starts && (pt->prepend == PREPEND_ALWAYS || (pt->prepend == PREPEND_FIRST && first));
    if (prepend) {
        memcpy(t->p, pt->rep, pt->rep_len);
        t->len = pt->rep_len;
    }
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
    if (n > SIZE_MAX / 2 - 1 || qfmt__tk_str_reserve(w, 2 * n) < 0) return TK_OOM(cx->err);
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
        if (qfmt__tk_str_putc(t, ' ') < 0 || qfmt__tk_str_put(t, s, n) < 0) return TK_OOM(cx->err);
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

/* ---- UnicodeScripts ---------------------------------------------------------------------------
 * HF's fixed_script (pre_tokenizers/unicode_scripts): the Unicode script of a character from
 * the table HF carries (Unicode 9.0: characters assigned later are "Any"), with Hiragana,
 * Katakana and U+30FC folded into Han and the space made "Any". Each entry is (first code
 * point << 8 | script id), a range running to the next entry; id 0 is Any. Generated from
 * perl's Unicode::UCD (Script, Age <= 9.0; U+0589, U+061C back to Common and U+0953..0954 to
 * Devanagari, their 9.0 values) and checked against HF's scripts.rs for every code point. */
#define SCRIPT_ANY 0u
static const uint32_t SCRIPT_RANGES[] = {
    0x1, 0x2000, 0x2101, 0x4102, 0x5b01, 0x6102, 0x7b01, 0xaa02, 0xab01,
    0xba02, 0xbb01, 0xc002, 0xd701, 0xd802, 0xf701, 0xf802, 0x2b901, 0x2e002,
    0x2e501, 0x2ea03, 0x2ec01, 0x30004, 0x37005, 0x37401, 0x37505, 0x37800, 0x37a05,
    0x37e01, 0x37f05, 0x38000, 0x38405, 0x38501, 0x38605, 0x38701, 0x38805, 0x38b00,
    0x38c05, 0x38d00, 0x38e05, 0x3a200, 0x3a305, 0x3e206, 0x3f005, 0x40007, 0x48504,
    0x48707, 0x53000, 0x53108, 0x55700, 0x55908, 0x56000, 0x56108, 0x58800, 0x58901,
    0x58a08, 0x58b00, 0x58d08, 0x59000, 0x59109, 0x5c800, 0x5d009, 0x5eb00, 0x5f009,
    0x5f500, 0x6000a, 0x60501, 0x6060a, 0x60c01, 0x60d0a, 0x61b01, 0x61d00, 0x61e0a,
    0x61f01, 0x6200a, 0x64001, 0x6410a, 0x64b04, 0x6560a, 0x67004, 0x6710a, 0x6dd01,
    0x6de0a, 0x7000b, 0x70e00, 0x70f0b, 0x74b00, 0x74d0b, 0x7500a, 0x7800c, 0x7b200,
    0x7c00d, 0x7fb00, 0x8000e, 0x82e00, 0x8300e, 0x83f00, 0x8400f, 0x85c00, 0x85e0f,
    0x85f00, 0x8a00a, 0x8b500, 0x8b60a, 0x8be00, 0x8d40a, 0x8e201, 0x8e30a, 0x90010,
    0x95104, 0x95310, 0x96401, 0x96610, 0x98011, 0x98400, 0x98511, 0x98d00, 0x98f11,
    0x99100, 0x99311, 0x9a900, 0x9aa11, 0x9b100, 0x9b211, 0x9b300, 0x9b611, 0x9ba00,
    0x9bc11, 0x9c500, 0x9c711, 0x9c900, 0x9cb11, 0x9cf00, 0x9d711, 0x9d800, 0x9dc11,
    0x9de00, 0x9df11, 0x9e400, 0x9e611, 0x9fc00, 0xa0112, 0xa0400, 0xa0512, 0xa0b00,
    0xa0f12, 0xa1100, 0xa1312, 0xa2900, 0xa2a12, 0xa3100, 0xa3212, 0xa3400, 0xa3512,
    0xa3700, 0xa3812, 0xa3a00, 0xa3c12, 0xa3d00, 0xa3e12, 0xa4300, 0xa4712, 0xa4900,
    0xa4b12, 0xa4e00, 0xa5112, 0xa5200, 0xa5912, 0xa5d00, 0xa5e12, 0xa5f00, 0xa6612,
    0xa7600, 0xa8113, 0xa8400, 0xa8513, 0xa8e00, 0xa8f13, 0xa9200, 0xa9313, 0xaa900,
    0xaaa13, 0xab100, 0xab213, 0xab400, 0xab513, 0xaba00, 0xabc13, 0xac600, 0xac713,
    0xaca00, 0xacb13, 0xace00, 0xad013, 0xad100, 0xae013, 0xae400, 0xae613, 0xaf200,
    0xaf913, 0xafa00, 0xb0114, 0xb0400, 0xb0514, 0xb0d00, 0xb0f14, 0xb1100, 0xb1314,
    0xb2900, 0xb2a14, 0xb3100, 0xb3214, 0xb3400, 0xb3514, 0xb3a00, 0xb3c14, 0xb4500,
    0xb4714, 0xb4900, 0xb4b14, 0xb4e00, 0xb5614, 0xb5800, 0xb5c14, 0xb5e00, 0xb5f14,
    0xb6400, 0xb6614, 0xb7800, 0xb8215, 0xb8400, 0xb8515, 0xb8b00, 0xb8e15, 0xb9100,
    0xb9215, 0xb9600, 0xb9915, 0xb9b00, 0xb9c15, 0xb9d00, 0xb9e15, 0xba000, 0xba315,
    0xba500, 0xba815, 0xbab00, 0xbae15, 0xbba00, 0xbbe15, 0xbc300, 0xbc615, 0xbc900,
    0xbca15, 0xbce00, 0xbd015, 0xbd100, 0xbd715, 0xbd800, 0xbe615, 0xbfb00, 0xc0016,
    0xc0400, 0xc0516, 0xc0d00, 0xc0e16, 0xc1100, 0xc1216, 0xc2900, 0xc2a16, 0xc3a00,
    0xc3d16, 0xc4500, 0xc4616, 0xc4900, 0xc4a16, 0xc4e00, 0xc5516, 0xc5700, 0xc5816,
    0xc5b00, 0xc6016, 0xc6400, 0xc6616, 0xc7000, 0xc7816, 0xc8017, 0xc8400, 0xc8517,
    0xc8d00, 0xc8e17, 0xc9100, 0xc9217, 0xca900, 0xcaa17, 0xcb400, 0xcb517, 0xcba00,
    0xcbc17, 0xcc500, 0xcc617, 0xcc900, 0xcca17, 0xcce00, 0xcd517, 0xcd700, 0xcde17,
    0xcdf00, 0xce017, 0xce400, 0xce617, 0xcf000, 0xcf117, 0xcf300, 0xd0118, 0xd0400,
    0xd0518, 0xd0d00, 0xd0e18, 0xd1100, 0xd1218, 0xd3b00, 0xd3d18, 0xd4500, 0xd4618,
    0xd4900, 0xd4a18, 0xd5000, 0xd5418, 0xd6400, 0xd6618, 0xd8000, 0xd8219, 0xd8400,
    0xd8519, 0xd9700, 0xd9a19, 0xdb200, 0xdb319, 0xdbc00, 0xdbd19, 0xdbe00, 0xdc019,
    0xdc700, 0xdca19, 0xdcb00, 0xdcf19, 0xdd500, 0xdd619, 0xdd700, 0xdd819, 0xde000,
    0xde619, 0xdf000, 0xdf219, 0xdf500, 0xe011a, 0xe3b00, 0xe3f01, 0xe401a, 0xe5c00,
    0xe811b, 0xe8300, 0xe841b, 0xe8500, 0xe871b, 0xe8900, 0xe8a1b, 0xe8b00, 0xe8d1b,
    0xe8e00, 0xe941b, 0xe9800, 0xe991b, 0xea000, 0xea11b, 0xea400, 0xea51b, 0xea600,
    0xea71b, 0xea800, 0xeaa1b, 0xeac00, 0xead1b, 0xeba00, 0xebb1b, 0xebe00, 0xec01b,
    0xec500, 0xec61b, 0xec700, 0xec81b, 0xece00, 0xed01b, 0xeda00, 0xedc1b, 0xee000,
    0xf001c, 0xf4800, 0xf491c, 0xf6d00, 0xf711c, 0xf9800, 0xf991c, 0xfbd00, 0xfbe1c,
    0xfcd00, 0xfce1c, 0xfd501, 0xfd91c, 0xfdb00, 0x10001d, 0x10a01e, 0x10c600, 0x10c71e,
    0x10c800, 0x10cd1e, 0x10ce00, 0x10d01e, 0x10fb01, 0x10fc1e, 0x11001f, 0x120020, 0x124900,
    0x124a20, 0x124e00, 0x125020, 0x125700, 0x125820, 0x125900, 0x125a20, 0x125e00, 0x126020,
    0x128900, 0x128a20, 0x128e00, 0x129020, 0x12b100, 0x12b220, 0x12b600, 0x12b820, 0x12bf00,
    0x12c020, 0x12c100, 0x12c220, 0x12c600, 0x12c820, 0x12d700, 0x12d820, 0x131100, 0x131220,
    0x131600, 0x131820, 0x135b00, 0x135d20, 0x137d00, 0x138020, 0x139a00, 0x13a021, 0x13f600,
    0x13f821, 0x13fe00, 0x140022, 0x168023, 0x169d00, 0x16a024, 0x16eb01, 0x16ee24, 0x16f900,
    0x170025, 0x170d00, 0x170e25, 0x171500, 0x172026, 0x173501, 0x173700, 0x174027, 0x175400,
    0x176028, 0x176d00, 0x176e28, 0x177100, 0x177228, 0x177400, 0x178029, 0x17de00, 0x17e029,
    0x17ea00, 0x17f029, 0x17fa00, 0x18002a, 0x180201, 0x18042a, 0x180501, 0x18062a, 0x180f00,
    0x18102a, 0x181a00, 0x18202a, 0x187800, 0x18802a, 0x18ab00, 0x18b022, 0x18f600, 0x19002b,
    0x191f00, 0x19202b, 0x192c00, 0x19302b, 0x193c00, 0x19402b, 0x194100, 0x19442b, 0x19502c,
    0x196e00, 0x19702c, 0x197500, 0x19802d, 0x19ac00, 0x19b02d, 0x19ca00, 0x19d02d, 0x19db00,
    0x19de2d, 0x19e029, 0x1a002e, 0x1a1c00, 0x1a1e2e, 0x1a202f, 0x1a5f00, 0x1a602f, 0x1a7d00,
    0x1a7f2f, 0x1a8a00, 0x1a902f, 0x1a9a00, 0x1aa02f, 0x1aae00, 0x1ab004, 0x1abf00, 0x1b0030,
    0x1b4c00, 0x1b5030, 0x1b7d00, 0x1b8031, 0x1bc032, 0x1bf400, 0x1bfc32, 0x1c0033, 0x1c3800,
    0x1c3b33, 0x1c4a00, 0x1c4d33, 0x1c5034, 0x1c8007, 0x1c8900, 0x1cc031, 0x1cc800, 0x1cd004,
    0x1cd301, 0x1cd404, 0x1ce101, 0x1ce204, 0x1ce901, 0x1ced04, 0x1cee01, 0x1cf404, 0x1cf501,
    0x1cf700, 0x1cf804, 0x1cfa00, 0x1d0002, 0x1d2605, 0x1d2b07, 0x1d2c02, 0x1d5d05, 0x1d6202,
    0x1d6605, 0x1d6b02, 0x1d7807, 0x1d7902, 0x1dbf05, 0x1dc004, 0x1df600, 0x1dfb04, 0x1e0002,
    0x1f0005, 0x1f1600, 0x1f1805, 0x1f1e00, 0x1f2005, 0x1f4600, 0x1f4805, 0x1f4e00, 0x1f5005,
    0x1f5800, 0x1f5905, 0x1f5a00, 0x1f5b05, 0x1f5c00, 0x1f5d05, 0x1f5e00, 0x1f5f05, 0x1f7e00,
    0x1f8005, 0x1fb500, 0x1fb605, 0x1fc500, 0x1fc605, 0x1fd400, 0x1fd605, 0x1fdc00, 0x1fdd05,
    0x1ff000, 0x1ff205, 0x1ff500, 0x1ff605, 0x1fff00, 0x200001, 0x200c04, 0x200e01, 0x206500,
    0x206601, 0x207102, 0x207200, 0x207401, 0x207f02, 0x208001, 0x208f00, 0x209002, 0x209d00,
    0x20a001, 0x20bf00, 0x20d004, 0x20f100, 0x210001, 0x212605, 0x212701, 0x212a02, 0x212c01,
    0x213202, 0x213301, 0x214e02, 0x214f01, 0x216002, 0x218901, 0x218c00, 0x219001, 0x23ff00,
    0x240001, 0x242700, 0x244001, 0x244b00, 0x246001, 0x280035, 0x290001, 0x2b7400, 0x2b7601,
    0x2b9600, 0x2b9801, 0x2bba00, 0x2bbd01, 0x2bc900, 0x2bca01, 0x2bd200, 0x2bec01, 0x2bf000,
    0x2c0036, 0x2c2f00, 0x2c3036, 0x2c5f00, 0x2c6002, 0x2c8006, 0x2cf400, 0x2cf906, 0x2d001e,
    0x2d2600, 0x2d271e, 0x2d2800, 0x2d2d1e, 0x2d2e00, 0x2d3037, 0x2d6800, 0x2d6f37, 0x2d7100,
    0x2d7f37, 0x2d8020, 0x2d9700, 0x2da020, 0x2da700, 0x2da820, 0x2daf00, 0x2db020, 0x2db700,
    0x2db820, 0x2dbf00, 0x2dc020, 0x2dc700, 0x2dc820, 0x2dcf00, 0x2dd020, 0x2dd700, 0x2dd820,
    0x2ddf00, 0x2de007, 0x2e0001, 0x2e4500, 0x2e8038, 0x2e9a00, 0x2e9b38, 0x2ef400, 0x2f0038,
    0x2fd600, 0x2ff001, 0x2ffc00, 0x300001, 0x300538, 0x300601, 0x300738, 0x300801, 0x302138,
    0x302a04, 0x302e1f, 0x303001, 0x303838, 0x303c01, 0x304000, 0x304138, 0x309700, 0x309904,
    0x309b01, 0x309d38, 0x30a001, 0x30a138, 0x30fb01, 0x30fc38, 0x310000, 0x310503, 0x312e00,
    0x31311f, 0x318f00, 0x319001, 0x31a003, 0x31bb00, 0x31c001, 0x31e400, 0x31f038, 0x32001f,
    0x321f00, 0x322001, 0x32601f, 0x327f01, 0x32d038, 0x32ff00, 0x330038, 0x335801, 0x340038,
    0x4db600, 0x4dc001, 0x4e0038, 0x9fd600, 0xa00039, 0xa48d00, 0xa49039, 0xa4c700, 0xa4d03a,
    0xa5003b, 0xa62c00, 0xa64007, 0xa6a03c, 0xa6f800, 0xa70001, 0xa72202, 0xa78801, 0xa78b02,
    0xa7af00, 0xa7b002, 0xa7b800, 0xa7f702, 0xa8003d, 0xa82c00, 0xa83001, 0xa83a00, 0xa8403e,
    0xa87800, 0xa8803f, 0xa8c600, 0xa8ce3f, 0xa8da00, 0xa8e010, 0xa8fe00, 0xa90040, 0xa92e01,
    0xa92f40, 0xa93041, 0xa95400, 0xa95f41, 0xa9601f, 0xa97d00, 0xa98042, 0xa9ce00, 0xa9cf01,
    0xa9d042, 0xa9da00, 0xa9de42, 0xa9e01d, 0xa9ff00, 0xaa0043, 0xaa3700, 0xaa4043, 0xaa4e00,
    0xaa5043, 0xaa5a00, 0xaa5c43, 0xaa601d, 0xaa8044, 0xaac300, 0xaadb44, 0xaae045, 0xaaf700,
    0xab0120, 0xab0700, 0xab0920, 0xab0f00, 0xab1120, 0xab1700, 0xab2020, 0xab2700, 0xab2820,
    0xab2f00, 0xab3002, 0xab5b01, 0xab5c02, 0xab6505, 0xab6600, 0xab7021, 0xabc045, 0xabee00,
    0xabf045, 0xabfa00, 0xac001f, 0xd7a400, 0xd7b01f, 0xd7c700, 0xd7cb1f, 0xd7fc00, 0xf90038,
    0xfa6e00, 0xfa7038, 0xfada00, 0xfb0002, 0xfb0700, 0xfb1308, 0xfb1800, 0xfb1d09, 0xfb3700,
    0xfb3809, 0xfb3d00, 0xfb3e09, 0xfb3f00, 0xfb4009, 0xfb4200, 0xfb4309, 0xfb4500, 0xfb4609,
    0xfb500a, 0xfbc200, 0xfbd30a, 0xfd3e01, 0xfd4000, 0xfd500a, 0xfd9000, 0xfd920a, 0xfdc800,
    0xfdf00a, 0xfdfe00, 0xfe0004, 0xfe1001, 0xfe1a00, 0xfe2004, 0xfe2e07, 0xfe3001, 0xfe5300,
    0xfe5401, 0xfe6700, 0xfe6801, 0xfe6c00, 0xfe700a, 0xfe7500, 0xfe760a, 0xfefd00, 0xfeff01,
    0xff0000, 0xff0101, 0xff2102, 0xff3b01, 0xff4102, 0xff5b01, 0xff6638, 0xff7001, 0xff7138,
    0xff9e01, 0xffa01f, 0xffbf00, 0xffc21f, 0xffc800, 0xffca1f, 0xffd000, 0xffd21f, 0xffd800,
    0xffda1f, 0xffdd00, 0xffe001, 0xffe700, 0xffe801, 0xffef00, 0xfff901, 0xfffe00, 0x1000046,
    0x1000c00, 0x1000d46, 0x1002700, 0x1002846, 0x1003b00, 0x1003c46, 0x1003e00, 0x1003f46, 0x1004e00,
    0x1005046, 0x1005e00, 0x1008046, 0x100fb00, 0x1010001, 0x1010300, 0x1010701, 0x1013400, 0x1013701,
    0x1014005, 0x1018f00, 0x1019001, 0x1019c00, 0x101a005, 0x101a100, 0x101d001, 0x101fd04, 0x101fe00,
    0x1028047, 0x1029d00, 0x102a048, 0x102d100, 0x102e004, 0x102e101, 0x102fc00, 0x1030049, 0x1032400,
    0x103304a, 0x1034b00, 0x103504b, 0x1037b00, 0x103804c, 0x1039e00, 0x1039f4c, 0x103a04d, 0x103c400,
    0x103c84d, 0x103d600, 0x104004e, 0x104504f, 0x1048050, 0x1049e00, 0x104a050, 0x104aa00, 0x104b051,
    0x104d400, 0x104d851, 0x104fc00, 0x1050052, 0x1052800, 0x1053053, 0x1056400, 0x1056f53, 0x1057000,
    0x1060054, 0x1073700, 0x1074054, 0x1075600, 0x1076054, 0x1076800, 0x1080055, 0x1080600, 0x1080855,
    0x1080900, 0x1080a55, 0x1083600, 0x1083755, 0x1083900, 0x1083c55, 0x1083d00, 0x1083f55, 0x1084056,
    0x1085600, 0x1085756, 0x1086057, 0x1088058, 0x1089f00, 0x108a758, 0x108b000, 0x108e059, 0x108f300,
    0x108f459, 0x108f600, 0x108fb59, 0x109005a, 0x1091c00, 0x1091f5a, 0x109205b, 0x1093a00, 0x1093f5b,
    0x1094000, 0x109805c, 0x109a05d, 0x109b800, 0x109bc5d, 0x109d000, 0x109d25d, 0x10a005e, 0x10a0400,
    0x10a055e, 0x10a0700, 0x10a0c5e, 0x10a1400, 0x10a155e, 0x10a1800, 0x10a195e, 0x10a3400, 0x10a385e,
    0x10a3b00, 0x10a3f5e, 0x10a4800, 0x10a505e, 0x10a5900, 0x10a605f, 0x10a8060, 0x10aa000, 0x10ac061,
    0x10ae700, 0x10aeb61, 0x10af700, 0x10b0062, 0x10b3600, 0x10b3962, 0x10b4063, 0x10b5600, 0x10b5863,
    0x10b6064, 0x10b7300, 0x10b7864, 0x10b8065, 0x10b9200, 0x10b9965, 0x10b9d00, 0x10ba965, 0x10bb000,
    0x10c0066, 0x10c4900, 0x10c8067, 0x10cb300, 0x10cc067, 0x10cf300, 0x10cfa67, 0x10d0000, 0x10e600a,
    0x10e7f00, 0x1100068, 0x1104e00, 0x1105268, 0x1107000, 0x1107f68, 0x1108069, 0x110c200, 0x110d06a,
    0x110e900, 0x110f06a, 0x110fa00, 0x111006b, 0x1113500, 0x111366b, 0x1114400, 0x111506c, 0x1117700,
    0x111806d, 0x111ce00, 0x111d06d, 0x111e000, 0x111e119, 0x111f500, 0x112006e, 0x1121200, 0x112136e,
    0x1123f00, 0x112806f, 0x1128700, 0x112886f, 0x1128900, 0x1128a6f, 0x1128e00, 0x1128f6f, 0x1129e00,
    0x1129f6f, 0x112aa00, 0x112b070, 0x112eb00, 0x112f070, 0x112fa00, 0x1130071, 0x1130400, 0x1130571,
    0x1130d00, 0x1130f71, 0x1131100, 0x1131371, 0x1132900, 0x1132a71, 0x1133100, 0x1133271, 0x1133400,
    0x1133571, 0x1133a00, 0x1133c71, 0x1134500, 0x1134771, 0x1134900, 0x1134b71, 0x1134e00, 0x1135071,
    0x1135100, 0x1135771, 0x1135800, 0x1135d71, 0x1136400, 0x1136671, 0x1136d00, 0x1137071, 0x1137500,
    0x1140072, 0x1145a00, 0x1145b72, 0x1145c00, 0x1145d72, 0x1145e00, 0x1148073, 0x114c800, 0x114d073,
    0x114da00, 0x1158074, 0x115b600, 0x115b874, 0x115de00, 0x1160075, 0x1164500, 0x1165075, 0x1165a00,
    0x116602a, 0x1166d00, 0x1168076, 0x116b800, 0x116c076, 0x116ca00, 0x1170077, 0x1171a00, 0x1171d77,
    0x1172c00, 0x1173077, 0x1174000, 0x118a078, 0x118f300, 0x118ff78, 0x1190000, 0x11ac079, 0x11af900,
    0x11c007a, 0x11c0900, 0x11c0a7a, 0x11c3700, 0x11c387a, 0x11c4600, 0x11c507a, 0x11c6d00, 0x11c707b,
    0x11c9000, 0x11c927b, 0x11ca800, 0x11ca97b, 0x11cb700, 0x120007c, 0x1239a00, 0x124007c, 0x1246f00,
    0x124707c, 0x1247500, 0x124807c, 0x1254400, 0x130007d, 0x1342f00, 0x144007e, 0x1464700, 0x168003c,
    0x16a3900, 0x16a407f, 0x16a5f00, 0x16a607f, 0x16a6a00, 0x16a6e7f, 0x16a7000, 0x16ad080, 0x16aee00,
    0x16af080, 0x16af600, 0x16b0081, 0x16b4600, 0x16b5081, 0x16b5a00, 0x16b5b81, 0x16b6200, 0x16b6381,
    0x16b7800, 0x16b7d81, 0x16b9000, 0x16f0082, 0x16f4500, 0x16f5082, 0x16f7f00, 0x16f8f82, 0x16fa000,
    0x16fe083, 0x16fe100, 0x1700083, 0x187ed00, 0x1880083, 0x18af300, 0x1b00038, 0x1b00200, 0x1bc0084,
    0x1bc6b00, 0x1bc7084, 0x1bc7d00, 0x1bc8084, 0x1bc8900, 0x1bc9084, 0x1bc9a00, 0x1bc9c84, 0x1bca001,
    0x1bca400, 0x1d00001, 0x1d0f600, 0x1d10001, 0x1d12700, 0x1d12901, 0x1d16704, 0x1d16a01, 0x1d17b04,
    0x1d18301, 0x1d18504, 0x1d18c01, 0x1d1aa04, 0x1d1ae01, 0x1d1e900, 0x1d20005, 0x1d24600, 0x1d30001,
    0x1d35700, 0x1d36001, 0x1d37200, 0x1d40001, 0x1d45500, 0x1d45601, 0x1d49d00, 0x1d49e01, 0x1d4a000,
    0x1d4a201, 0x1d4a300, 0x1d4a501, 0x1d4a700, 0x1d4a901, 0x1d4ad00, 0x1d4ae01, 0x1d4ba00, 0x1d4bb01,
    0x1d4bc00, 0x1d4bd01, 0x1d4c400, 0x1d4c501, 0x1d50600, 0x1d50701, 0x1d50b00, 0x1d50d01, 0x1d51500,
    0x1d51601, 0x1d51d00, 0x1d51e01, 0x1d53a00, 0x1d53b01, 0x1d53f00, 0x1d54001, 0x1d54500, 0x1d54601,
    0x1d54700, 0x1d54a01, 0x1d55100, 0x1d55201, 0x1d6a600, 0x1d6a801, 0x1d7cc00, 0x1d7ce01, 0x1d80085,
    0x1da8c00, 0x1da9b85, 0x1daa000, 0x1daa185, 0x1dab000, 0x1e00036, 0x1e00700, 0x1e00836, 0x1e01900,
    0x1e01b36, 0x1e02200, 0x1e02336, 0x1e02500, 0x1e02636, 0x1e02b00, 0x1e80086, 0x1e8c500, 0x1e8c786,
    0x1e8d700, 0x1e90087, 0x1e94b00, 0x1e95087, 0x1e95a00, 0x1e95e87, 0x1e96000, 0x1ee000a, 0x1ee0400,
    0x1ee050a, 0x1ee2000, 0x1ee210a, 0x1ee2300, 0x1ee240a, 0x1ee2500, 0x1ee270a, 0x1ee2800, 0x1ee290a,
    0x1ee3300, 0x1ee340a, 0x1ee3800, 0x1ee390a, 0x1ee3a00, 0x1ee3b0a, 0x1ee3c00, 0x1ee420a, 0x1ee4300,
    0x1ee470a, 0x1ee4800, 0x1ee490a, 0x1ee4a00, 0x1ee4b0a, 0x1ee4c00, 0x1ee4d0a, 0x1ee5000, 0x1ee510a,
    0x1ee5300, 0x1ee540a, 0x1ee5500, 0x1ee570a, 0x1ee5800, 0x1ee590a, 0x1ee5a00, 0x1ee5b0a, 0x1ee5c00,
    0x1ee5d0a, 0x1ee5e00, 0x1ee5f0a, 0x1ee6000, 0x1ee610a, 0x1ee6300, 0x1ee640a, 0x1ee6500, 0x1ee670a,
    0x1ee6b00, 0x1ee6c0a, 0x1ee7300, 0x1ee740a, 0x1ee7800, 0x1ee790a, 0x1ee7d00, 0x1ee7e0a, 0x1ee7f00,
    0x1ee800a, 0x1ee8a00, 0x1ee8b0a, 0x1ee9c00, 0x1eea10a, 0x1eea400, 0x1eea50a, 0x1eeaa00, 0x1eeab0a,
    0x1eebc00, 0x1eef00a, 0x1eef200, 0x1f00001, 0x1f02c00, 0x1f03001, 0x1f09400, 0x1f0a001, 0x1f0af00,
    0x1f0b101, 0x1f0c000, 0x1f0c101, 0x1f0d000, 0x1f0d101, 0x1f0f600, 0x1f10001, 0x1f10d00, 0x1f11001,
    0x1f12f00, 0x1f13001, 0x1f16c00, 0x1f17001, 0x1f1ad00, 0x1f1e601, 0x1f20038, 0x1f20101, 0x1f20300,
    0x1f21001, 0x1f23c00, 0x1f24001, 0x1f24900, 0x1f25001, 0x1f25200, 0x1f30001, 0x1f6d300, 0x1f6e001,
    0x1f6ed00, 0x1f6f001, 0x1f6f700, 0x1f70001, 0x1f77400, 0x1f78001, 0x1f7d500, 0x1f80001, 0x1f80c00,
    0x1f81001, 0x1f84800, 0x1f85001, 0x1f85a00, 0x1f86001, 0x1f88800, 0x1f89001, 0x1f8ae00, 0x1f91001,
    0x1f91f00, 0x1f92001, 0x1f92800, 0x1f93001, 0x1f93100, 0x1f93301, 0x1f93f00, 0x1f94001, 0x1f94c00,
    0x1f95001, 0x1f95f00, 0x1f98001, 0x1f99200, 0x1f9c001, 0x1f9c100, 0x2000038, 0x2a6d700, 0x2a70038,
    0x2b73500, 0x2b74038, 0x2b81e00, 0x2b82038, 0x2cea200, 0x2f80038, 0x2fa1e00, 0xe000101, 0xe000200,
    0xe002001, 0xe008000, 0xe010004, 0xe01f000,
};

static unsigned script_of(uint32_t c)
{
    size_t lo = 0, hi = sizeof SCRIPT_RANGES / sizeof *SCRIPT_RANGES; /* entry 0 starts at U+0000 */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (SCRIPT_RANGES[mid] >> 8 <= c) lo = mid;
        else hi = mid;
    }
    return SCRIPT_RANGES[lo] & 0xFF;
}

/* A piece starts at each character whose script is not Any and differs from the last script
 * seen; as in HF, whatever precedes the first such character (spaces only) is dropped. */
static int run_scripts(ctx *cx, const char *s, size_t n, bool first, plist *out)
{
    size_t start = SIZE_MAX;
    unsigned last = SCRIPT_ANY;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t l = qfmt__tk_utf8_next(s + i, n - i, &c);
        unsigned sc = script_of(c);
        if (sc != SCRIPT_ANY && sc != last) {
            if (start != SIZE_MAX && pl_push(cx, out, s + start, i - start, first && start == 0) < 0) return -1;
            start = i;
        }
        if (sc != SCRIPT_ANY) last = sc;
        i += l;
    }
    if (start == SIZE_MAX) return 0;
    return pl_push(cx, out, s + start, n - start, first && start == 0);
}

static int run_list(const tk_pre_tokenizer *pt, ctx *cx, const plist *in, plist *out);

static int run_one(const tk_pre_tokenizer *pt, ctx *cx, const char *s, size_t n, bool first, plist *out)
{
    switch (pt->type) {
    case PT_SPLIT: return run_split(pt, cx, s, n, first, out);
    case PT_BYTE_LEVEL: return run_byte_level(pt, cx, s, n, first, out);
    case PT_METASPACE: return run_metaspace(pt, cx, s, n, first, out);
    case PT_BERT: return run_bert(cx, s, n, first, out);
    case PT_SCRIPTS: return run_scripts(cx, s, n, first, out);
    case PT_SEQUENCE: break;
    }
    /* a Sequence on one piece: through a list of that piece */
    tk_list l = {0};
    plist one = {.l = &l, .track = true};
    int rc = pl_push(cx, &one, s, n, first);
    if (rc == 0) rc = run_list(pt, cx, &one, out);
    qfmt__tk_list_free(&l);
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
        if (dst != out) qfmt__tk_list_clear(dst->l);
        rc = run_list(pt->sub[k], cx, cur, dst);
        cur = dst;
    }
    qfmt__tk_list_free(&la);
    qfmt__tk_list_free(&lb);
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

int qfmt__tk_pre_tokenize(const tk_pre_tokenizer *pt, const char *in, size_t n, bool first, tk_list *out, qfmt_error *err)
{
    if (n == 0) return 0; /* HF keeps no empty split */
    ctx cx = {.err = err};
    if (pt->pairs && !(cx.md = pcre2_match_data_create(pt->pairs, NULL))) return TK_OOM(err);
    plist o = {.l = out, .track = false};
    int rc = run_one(pt, &cx, in, n, first, &o);
    pcre2_match_data_free(cx.md);
    free(cx.r);
    qfmt__tk_str_free(&cx.text);
    qfmt__tk_str_free(&cx.word);
    return rc;
}

/* ---- Loading ------------------------------------------------------------------------------------ */
void qfmt__tk_pre_tokenizer_free(tk_pre_tokenizer *pt)
{
    if (!pt) return;
    for (size_t i = 0; i < pt->nsub; i++) qfmt__tk_pre_tokenizer_free(pt->sub[i]);
    free(pt->sub);
    qfmt__tk_regex_free(pt->re);
    free(pt);
}

static int set_regex(tk_pre_tokenizer *pt, const char *pattern, size_t len, const char *where, qfmt_error *err)
{
    if (!(pt->re = qfmt__tk_regex_compile(pattern, len, where, err))) return -1;
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
    if (qfmt__tk_json_string(j, key, dflt, &s, &n, where, err) < 0) return -1;
    if (!s) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.%s is missing", where, key);
    /* an invalid byte decodes as U+FFFD of length 1; a real U+FFFD has length 3 */
    if (n == 0 || qfmt__tk_utf8_next(s, n, cp) != n || (*cp == 0xFFFD && n != 3))
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.%s is not a single character", where, key);
    return 0;
}

static int behavior_of(const cJSON *j, const char *dflt, behavior *beh, const char *where, qfmt_error *err)
{
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    const char *s;
    if (qfmt__tk_json_string(j, "behavior", dflt, &s, NULL, where, err) < 0) return -1;
    if (!s) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.behavior is missing", where);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(s, names[i]) == 0) {
            *beh = (behavior)i;
            return 0;
        }
    return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.behavior '%.40s' is not a split behavior", where, s);
}

/* HF compiles a String pattern as regex::escape(s): every regex metacharacter escaped. In PCRE2 a
 * backslash before any ASCII punctuation is that character. */
static int load_split_pattern(tk_pre_tokenizer *pt, const cJSON *j, const char *where, qfmt_error *err)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const cJSON *str = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "String") : NULL;
    const cJSON *rx = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "Regex") : NULL;
    if (!(cJSON_IsString(str) && !rx) && !(cJSON_IsString(rx) && !str))
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.pattern is not {\"String\": s} or {\"Regex\": r}", where);
    if (rx) return set_regex(pt, rx->valuestring, strlen(rx->valuestring), where, err);
    tk_str e = {0};
    for (const char *c = str->valuestring; *c; c++) {
        bool meta = (*c >= 0x21 && *c <= 0x7E) && !((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                                                    (*c >= 'A' && *c <= 'Z'));
        if ((meta && qfmt__tk_str_putc(&e, '\\') < 0) || qfmt__tk_str_putc(&e, *c) < 0) {
            qfmt__tk_str_free(&e);
            return TK_OOM(err);
        }
    }
    int rc = set_regex(pt, e.p ? e.p : "", e.len, where, err);
    qfmt__tk_str_free(&e);
    return rc;
}

static int load_split(tk_pre_tokenizer *pt, const cJSON *j, const char *where, qfmt_error *err)
{
    if (load_split_pattern(pt, j, where, err) < 0) return -1;
    if (behavior_of(j, NULL, &pt->beh, where, err) < 0) return -1;
    return qfmt__tk_json_bool(j, "invert", false, &pt->invert, where, err);
}

static int load_byte_level(tk_pre_tokenizer *pt, const cJSON *j, const char *where, qfmt_error *err)
{
    bool use_regex, trim;
    if (qfmt__tk_json_bool(j, "add_prefix_space", true, &pt->add_prefix_space, where, err) < 0 ||
        qfmt__tk_json_bool(j, "use_regex", true, &use_regex, where, err) < 0 ||
        qfmt__tk_json_bool(j, "trim_offsets", true, &trim, where, err) < 0) /* offsets only: checked, unused */
        return -1;
    for (unsigned b = 0; b < 256; b++)
        pt->byte_len[b] = (uint8_t)qfmt__tk_utf8_put(qfmt__tk_byte_to_cp((uint8_t)b), pt->byte_utf8[b]);
    return use_regex ? set_regex(pt, GPT2_REGEX, sizeof GPT2_REGEX - 1, where, err) : 0;
}

static int load_metaspace(tk_pre_tokenizer *pt, const cJSON *j, const char *where, qfmt_error *err)
{
    if (one_char(j, "replacement", "\xE2\x96\x81", &pt->ch, where, err) < 0) return -1;
    pt->rep_len = qfmt__tk_utf8_put(pt->ch, pt->rep);
    const char *scheme;
    bool aps;
    if (qfmt__tk_json_string(j, "prepend_scheme", NULL, &scheme, NULL, where, err) < 0 ||
        qfmt__tk_json_bool(j, "add_prefix_space", true, &aps, where, err) < 0 ||
        qfmt__tk_json_bool(j, "split", true, &pt->split, where, err) < 0)
        return -1;
    if (!scheme) pt->prepend = aps ? PREPEND_ALWAYS : PREPEND_NEVER; /* files from before prepend_scheme */
    else if (strcmp(scheme, "always") == 0) pt->prepend = PREPEND_ALWAYS;
    else if (strcmp(scheme, "never") == 0) pt->prepend = PREPEND_NEVER;
    else if (strcmp(scheme, "first") == 0) pt->prepend = PREPEND_FIRST;
    else return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.prepend_scheme '%.40s' is not always, never or first", where, scheme);
    if (!aps && pt->prepend != PREPEND_NEVER) /* HF refuses the contradiction */
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s: add_prefix_space false does not match prepend_scheme '%s'", where,
                       scheme);
    return 0;
}

static int load_any(const cJSON *j, const char *where, int depth, tk_pre_tokenizer **out, qfmt_error *err);

static int load_sequence(tk_pre_tokenizer *pt, const cJSON *j, const char *where, int depth, qfmt_error *err)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
    if (!cJSON_IsArray(arr)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.pretokenizers is not an array", where);
    if (depth + 1 >= TK_MAX_DEPTH)
        return qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "Sequences nested deeper than %d (%s)", TK_MAX_DEPTH, where);
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
        if (qfmt__tk_json_bool(j, "individual_digits", false, &individual, where, err) < 0) return -1;
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
    if (strcmp(type, "UnicodeScripts") == 0) {
        pt->type = PT_SCRIPTS;
        return 0;
    }
    if (strcmp(type, "Sequence") == 0) {
        pt->type = PT_SEQUENCE;
        return load_sequence(pt, j, where, depth, err);
    }
    char shown[80];
    qfmt_escape(type, strlen(type) < 60 ? strlen(type) : 60, shown, sizeof shown);
    return qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "%s: type '%s' is not supported", where, shown);
}

static int load_any(const cJSON *j, const char *where, int depth, tk_pre_tokenizer **out, qfmt_error *err)
{
    *out = NULL;
    const char *type = qfmt__tk_json_type(j, where, err);
    if (!type) return -1;
    tk_pre_tokenizer *pt = calloc(1, sizeof *pt);
    if (!pt) return TK_OOM(err);
    if (load_typed(pt, type, j, where, depth, err) < 0) {
        qfmt__tk_pre_tokenizer_free(pt);
        return -1;
    }
    *out = pt;
    return 0;
}

int qfmt__tk_pre_tokenizer_load(const cJSON *j, tk_pre_tokenizer **out, qfmt_error *err)
{
    return load_any(j, "pre_tokenizer", 0, out, err);
}
