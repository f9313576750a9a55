/* decoder.c - the decoders (tk_internal.h): token strings -> text, as HF's decode_chain does it.
 * Each decoder maps the whole list of token strings to a new list; a Sequence feeds each
 * decoder's list to the next; the text is the concatenation of the final list. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_internal.h"

typedef enum {
    D_BYTE_LEVEL,
    D_METASPACE,
    D_BYTE_FALLBACK,
    D_FUSE,
    D_STRIP,
    D_REPLACE,
    D_WORDPIECE,
    D_BPE,
    D_CTC,
    D_SEQUENCE,
} dkind;

struct tk_decoder {
    dkind kind;
    /* Metaspace: the replacement code point; prepend: prepend_scheme is not "never".
     * Strip: cp is the content, start / stop the most occurrences cut at either end. */
    uint32_t cp;
    bool prepend;
    size_t start, stop;
    /* a: Replace pattern (literal, when re is NULL), WordPiece prefix, BPE suffix, CTC pad
     * token. b: Replace content, CTC word delimiter. Owned copies. */
    char *a, *b;
    size_t alen, blen;
    pcre2_code *re;
    bool cleanup; /* WordPiece, CTC */
    tk_decoder **subs; /* Sequence */
    size_t nsubs;
};

/* ---- UTF-8 as Rust reads it -------------------------------------------------------------- */
/* The sequence at s[0..n) (n >= 1): its length when valid (*ok), else the length of its
 * maximal subpart (the longest prefix of a valid sequence, at least 1), which Rust's
 * from_utf8_lossy replaces by one U+FFFD. */
static size_t utf8_seq(const unsigned char *s, size_t n, bool *ok)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    *ok = false;
    if (c < 0x80) {
        *ok = true;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;      /* no overlong forms */
        else if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else
        return 1;
    size_t i;
    for (i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) return i;
        lo = 0x80, hi = 0xBF;
    }
    *ok = true;
    return i;
}

static bool utf8_valid(const char *s, size_t n)
{
    bool ok = true;
    for (size_t i = 0; i < n && ok;) i += utf8_seq((const unsigned char *)s + i, n - i, &ok);
    return ok;
}

/* String::from_utf8_lossy: appends s[0..n) to *out with each maximal invalid subpart
 * replaced by U+FFFD. */
static int put_lossy(tk_str *out, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        bool ok = true;
        size_t len = 0;
        while (j < n && (len = utf8_seq((const unsigned char *)s + j, n - j, &ok), ok)) j += len;
        if (qfmt__tk_str_put(out, s + i, j - i) < 0) return -1;
        if (j < n) {
            if (qfmt__tk_str_put(out, "\xEF\xBF\xBD", 3) < 0) return -1;
            j += len;
        }
        i = j;
    }
    return 0;
}

/* The length of the character at s[0..n), n >= 1 (an invalid byte counts as one). */
static size_t char_len(const char *s, size_t n)
{
    uint32_t cp;
    return qfmt__tk_utf8_next(s, n, &cp);
}

/* The first occurrence of pat[0..m) (m >= 1) in s[0..n), or NULL (memmem is not C11). */
static const char *find_bytes(const char *s, size_t n, const char *pat, size_t m)
{
    for (size_t i = 0; n >= m && i <= n - m; i++) {
        const char *p = memchr(s + i, pat[0], n - m + 1 - i);
        if (!p) return NULL;
        i = (size_t)(p - s);
        if (memcmp(p, pat, m) == 0) return p;
    }
    return NULL;
}

/* ---- String helpers with Rust's semantics --------------------------------------------------- */
/* str::replace: every non-overlapping occurrence of pat, left to right. An empty pat matches
 * at every character boundary, both ends included (Rust: "ab".replace("", "-") == "-a-b-"). */
static int put_replace_all(tk_str *out, const char *s, size_t n, const char *pat, size_t plen, const char *rep,
                           size_t rlen)
{
    if (plen == 0) {
        for (size_t i = 0; i < n;) {
            size_t l = char_len(s + i, n - i);
            if (qfmt__tk_str_put(out, rep, rlen) < 0 || qfmt__tk_str_put(out, s + i, l) < 0) return -1;
            i += l;
        }
        return qfmt__tk_str_put(out, rep, rlen);
    }
    size_t i = 0;
    while (i < n) {
        const char *hit = find_bytes(s + i, n - i, pat, plen);
        size_t end = hit ? (size_t)(hit - s) : n;
        if (qfmt__tk_str_put(out, s + i, end - i) < 0) return -1;
        if (!hit) break;
        if (qfmt__tk_str_put(out, rep, rlen) < 0) return -1;
        i = end + plen;
    }
    return 0;
}

/* HF's wordpiece::cleanup: these replacements, in this order, each over the whole string. */
static const char *const CLEANUP[][2] = {
    {" .", "."},   {" ?", "?"},   {" !", "!"},   {" ,", ","},         {" ' ", "'"},   {" n't", "n't"},
    {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
};

/* Applies the cleanup to s[0..n) into *out (cleared first). */
static int cleanup(const char *s, size_t n, tk_str *out)
{
    tk_str a = {0}, b = {0};
    int rc = qfmt__tk_str_put(&a, s, n);
    for (size_t k = 0; rc == 0 && k < sizeof CLEANUP / sizeof CLEANUP[0]; k++) {
        b.len = 0;
        rc = put_replace_all(&b, a.p, a.len, CLEANUP[k][0], strlen(CLEANUP[k][0]), CLEANUP[k][1],
                             strlen(CLEANUP[k][1]));
        if (rc == 0 && !b.p) rc = qfmt__tk_str_reserve(&b, 0); /* keep b.p valid for the swap */
        tk_str t = a;
        a = b;
        b = t;
    }
    out->len = 0;
    if (rc == 0) rc = qfmt__tk_str_put(out, a.p, a.len);
    qfmt__tk_str_free(&a);
    qfmt__tk_str_free(&b);
    return rc;
}

/* ---- The decoders, one step each: in -> out (out cleared by the caller) -------------------- */
/* ByteLevel: each token's characters back to bytes; a token with a character outside the
 * byte map keeps its own bytes (HF's unwrap_or_else); the whole is read lossily. */
static int step_byte_level(const tk_list *in, tk_list *out)
{
    tk_str bytes = {0}, text = {0};
    int rc = 0;
    for (size_t t = 0; t < in->n && rc == 0; t++) {
        size_t n;
        const char *s = tk_list_at(in, t, &n);
        size_t mark = bytes.len;
        for (size_t i = 0; i < n && rc == 0;) {
            uint32_t cp;
            size_t l = qfmt__tk_utf8_next(s + i, n - i, &cp);
            int b = (cp == 0xFFFD) ? -1 : qfmt__tk_cp_to_byte(cp);
            if (b < 0) {
                bytes.len = mark;
                rc = qfmt__tk_str_put(&bytes, s, n);
                break;
            }
            rc = qfmt__tk_str_putc(&bytes, (char)b);
            i += l;
        }
    }
    if (rc == 0) rc = put_lossy(&text, bytes.p ? bytes.p : "", bytes.len);
    if (rc == 0) rc = qfmt__tk_list_push(out, text.p ? text.p : "", text.len);
    qfmt__tk_str_free(&bytes);
    qfmt__tk_str_free(&text);
    return rc;
}

static int step_metaspace(const tk_decoder *d, const tk_list *in, tk_list *out)
{
    tk_str tok = {0};
    int rc = 0;
    for (size_t t = 0; t < in->n && rc == 0; t++) {
        size_t n;
        const char *s = tk_list_at(in, t, &n);
        tok.len = 0;
        /* HF drops every replacement character of the first token (not just a leading one)
         * unless the scheme is "never"; elsewhere each one becomes a space. */
        for (size_t i = 0; i < n && rc == 0;) {
            uint32_t cp;
            size_t l = qfmt__tk_utf8_next(s + i, n - i, &cp);
            if (cp == d->cp && !(cp == 0xFFFD && l == 1)) { /* not an invalid byte read as U+FFFD */
                if (!(t == 0 && d->prepend)) rc = qfmt__tk_str_putc(&tok, ' ');
                i += l;
                continue;
            }
            rc = qfmt__tk_str_put(&tok, s + i, l);
            i += l;
        }
        if (rc == 0) rc = qfmt__tk_list_push(out, tok.p ? tok.p : "", tok.len);
    }
    qfmt__tk_str_free(&tok);
    return rc;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A token "<0xXX>" (6 bytes) and its byte. XX is read as Rust's u8::from_str_radix(_, 16)
 * reads it, which also takes a leading '+' ("<0x+A>" is byte 0x0A). */
static bool byte_token(const char *s, size_t n, unsigned char *b)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return false;
    int hi = s[3] == '+' ? 0 : hex_digit(s[3]), lo = hex_digit(s[4]);
    if (hi < 0 || lo < 0) return false;
    *b = (unsigned char)(hi * 16 + lo);
    return true;
}

/* The pending byte tokens: one token if they form valid UTF-8, else one U+FFFD token per
 * byte token (HF's String::from_utf8 failing on the whole run). */
static int flush_bytes(tk_str *pending, size_t count, tk_list *out)
{
    int rc = 0;
    if (count == 0) return 0;
    if (utf8_valid(pending->p, pending->len)) rc = qfmt__tk_list_push(out, pending->p, pending->len);
    else
        for (size_t i = 0; i < count && rc == 0; i++) rc = qfmt__tk_list_push(out, "\xEF\xBF\xBD", 3);
    pending->len = 0;
    return rc;
}

static int step_byte_fallback(const tk_list *in, tk_list *out)
{
    tk_str pending = {0};
    size_t count = 0;
    int rc = 0;
    for (size_t t = 0; t < in->n && rc == 0; t++) {
        size_t n;
        const char *s = tk_list_at(in, t, &n);
        unsigned char b;
        if (byte_token(s, n, &b)) {
            rc = qfmt__tk_str_putc(&pending, (char)b);
            count++;
            continue;
        }
        rc = flush_bytes(&pending, count, out);
        count = 0;
        if (rc == 0) rc = qfmt__tk_list_push(out, s, n);
    }
    if (rc == 0) rc = flush_bytes(&pending, count, out);
    qfmt__tk_str_free(&pending);
    return rc;
}

/* The tokens back to back, appended to *out. */
static int join(const tk_list *in, tk_str *out)
{
    for (size_t t = 0; t < in->n; t++) {
        size_t n;
        const char *s = tk_list_at(in, t, &n);
        if (qfmt__tk_str_put(out, s, n) < 0) return -1;
    }
    return 0;
}

static int step_fuse(const tk_list *in, tk_list *out)
{
    tk_str all = {0};
    int rc = join(in, &all);
    if (rc == 0) rc = qfmt__tk_list_push(out, all.p ? all.p : "", all.len);
    qfmt__tk_str_free(&all);
    return rc;
}

static int step_strip(const tk_decoder *d, const tk_list *in, tk_list *out)
{
    char c[4];
    size_t cl = qfmt__tk_utf8_put(d->cp, c);
    for (size_t t = 0; t < in->n; t++) {
        size_t n;
        const char *s = tk_list_at(in, t, &n);
        size_t b = 0, e = n;
        for (size_t k = 0; k < d->start && e - b >= cl && memcmp(s + b, c, cl) == 0; k++) b += cl;
        /* HF panics where the trailing cut would cross the leading one; it stops there. A
         * match at the end is a whole character: valid UTF-8 synchronises on lead bytes. */
        for (size_t k = 0; k < d->stop && e - b >= cl && memcmp(s + e - cl, c, cl) == 0; k++) e -= cl;
        if (qfmt__tk_list_push(out, s + b, e - b) < 0) return -1;
    }
    return 0;
}

/* The next match of the Replace pattern at or after `pos`: 1, 0 none, -1 error. */
static int replace_find(const tk_decoder *d, pcre2_match_data *md, const char *s, size_t n, size_t pos, size_t *ms,
                        size_t *me, qfmt_error *err)
{
    if (d->re) return qfmt__tk_regex_find(d->re, md, s, n, pos, ms, me, err);
    if (d->alen == 0) {
        *ms = *me = pos;
        return 1;
    }
    const char *hit = find_bytes(s + pos, n - pos, d->a, d->alen);
    if (!hit) return 0;
    *ms = (size_t)(hit - s);
    *me = *ms + d->alen;
    return 1;
}

/* One token through Replace: HF's find_matches over Oniguruma's find_iter, where an empty
 * match right where the previous match ended is skipped (one character on); an empty token
 * stays empty. */
static int replace_token(const tk_decoder *d, pcre2_match_data *md, const char *s, size_t n, tk_str *tok,
                         qfmt_error *err)
{
    size_t pos = 0, prev = 0, last_end = SIZE_MAX;
    tok->len = 0;
    if (n == 0) return 0;
    while (pos <= n) {
        size_t ms, me;
        int r = replace_find(d, md, s, n, pos, &ms, &me, err);
        if (r < 0) return -1;
        if (r == 0) break;
        if (ms == me && me == last_end) {
            if (pos >= n) break;
            pos += char_len(s + pos, n - pos);
            continue;
        }
        if (qfmt__tk_str_put(tok, s + prev, ms - prev) < 0 || qfmt__tk_str_put(tok, d->b, d->blen) < 0) return TK_OOM(err);
        prev = last_end = pos = me;
    }
    if (qfmt__tk_str_put(tok, s + prev, n - prev) < 0) return TK_OOM(err);
    return 0;
}

static int step_replace(const tk_decoder *d, const tk_list *in, tk_list *out, qfmt_error *err)
{
    pcre2_match_data *md = NULL;
    if (d->re && !(md = qfmt__tk_regex_match_data(d->re))) return TK_OOM(err);
    tk_str tok = {0};
    int rc = 0;
    for (size_t t = 0; t < in->n && rc == 0; t++) {
        size_t n;
        const char *s = tk_list_at(in, t, &n);
        rc = replace_token(d, md, s, n, &tok, err);
        if (rc == 0 && qfmt__tk_list_push(out, tok.p ? tok.p : "", tok.len) < 0) rc = TK_OOM(err);
    }
    qfmt__tk_str_free(&tok);
    pcre2_match_data_free(md);
    return rc;
}

static int step_wordpiece(const tk_decoder *d, const tk_list *in, tk_list *out)
{
    tk_str tok = {0}, clean = {0};
    int rc = 0;
    for (size_t t = 0; t < in->n && rc == 0; t++) {
        size_t n;
        const char *s = tk_list_at(in, t, &n);
        tok.len = 0;
        if (t == 0) rc = qfmt__tk_str_put(&tok, s, n);
        else if (n >= d->alen && memcmp(s, d->a, d->alen) == 0) rc = qfmt__tk_str_put(&tok, s + d->alen, n - d->alen);
        else if ((rc = qfmt__tk_str_putc(&tok, ' ')) == 0) rc = qfmt__tk_str_put(&tok, s, n);
        if (rc == 0 && d->cleanup) {
            rc = cleanup(tok.p ? tok.p : "", tok.len, &clean);
            if (rc == 0) rc = qfmt__tk_list_push(out, clean.p ? clean.p : "", clean.len);
        } else if (rc == 0)
            rc = qfmt__tk_list_push(out, tok.p ? tok.p : "", tok.len);
    }
    qfmt__tk_str_free(&tok);
    qfmt__tk_str_free(&clean);
    return rc;
}

static int step_bpe(const tk_decoder *d, const tk_list *in, tk_list *out)
{
    tk_str tok = {0};
    int rc = 0;
    for (size_t t = 0; t < in->n && rc == 0; t++) {
        size_t n;
        const char *s = tk_list_at(in, t, &n);
        bool last = t + 1 == in->n;
        tok.len = 0;
        rc = put_replace_all(&tok, s, n, d->a, d->alen, " ", last ? 0 : 1);
        if (rc == 0) rc = qfmt__tk_list_push(out, tok.p ? tok.p : "", tok.len);
    }
    qfmt__tk_str_free(&tok);
    return rc;
}

/* CTC: consecutive duplicates merged, pad tokens removed, then (cleanup) wordpiece cleanup and
 * the word delimiter as a space; tokens left empty are dropped. */
static int step_ctc(const tk_decoder *d, const tk_list *in, tk_list *out)
{
    tk_str a = {0}, b = {0};
    int rc = 0;
    for (size_t t = 0; t < in->n && rc == 0; t++) {
        size_t n, pn;
        const char *s = tk_list_at(in, t, &n);
        if (t > 0) {
            const char *p = tk_list_at(in, t - 1, &pn);
            if (pn == n && memcmp(p, s, n) == 0) continue;
        }
        a.len = 0;
        rc = put_replace_all(&a, s, n, d->a, d->alen, "", 0);
        if (rc == 0 && d->cleanup) {
            rc = cleanup(a.p ? a.p : "", a.len, &b);
            a.len = 0;
            if (rc == 0) rc = put_replace_all(&a, b.p ? b.p : "", b.len, d->b, d->blen, " ", 1);
        }
        if (rc == 0 && a.len > 0) rc = qfmt__tk_list_push(out, a.p, a.len);
    }
    qfmt__tk_str_free(&a);
    qfmt__tk_str_free(&b);
    return rc;
}

static int step(const tk_decoder *d, const tk_list *in, tk_list *out, qfmt_error *err)
{
    int rc;
    switch (d->kind) {
    case D_BYTE_LEVEL: rc = step_byte_level(in, out); break;
    case D_METASPACE: rc = step_metaspace(d, in, out); break;
    case D_BYTE_FALLBACK: rc = step_byte_fallback(in, out); break;
    case D_FUSE: rc = step_fuse(in, out); break;
    case D_STRIP: rc = step_strip(d, in, out); break;
    case D_REPLACE: return step_replace(d, in, out, err); /* fills *err itself */
    case D_WORDPIECE: rc = step_wordpiece(d, in, out); break;
    case D_BPE: rc = step_bpe(d, in, out); break;
    case D_CTC: rc = step_ctc(d, in, out); break;
    default: rc = 0; break;
    }
    return rc < 0 ? TK_OOM(err) : 0;
}

/* Runs d over *cur, leaving the result in *cur; *tmp is scratch. Depth bounded at load. */
static int apply(const tk_decoder *d, tk_list *cur, tk_list *tmp, qfmt_error *err)
{
    if (d->kind == D_SEQUENCE) {
        for (size_t i = 0; i < d->nsubs; i++)
            if (apply(d->subs[i], cur, tmp, err) < 0) return -1;
        return 0;
    }
    qfmt__tk_list_clear(tmp);
    if (step(d, cur, tmp, err) < 0) return -1;
    tk_list t = *cur;
    *cur = *tmp;
    *tmp = t;
    return 0;
}

int qfmt__tk_decode(const tk_decoder *d, tk_list *tokens, tk_str *out, qfmt_error *err)
{
    tk_list tmp = {0};
    int rc = apply(d, tokens, &tmp, err);
    qfmt__tk_list_free(&tmp);
    if (rc < 0) return -1;
    /* the final list back to back; lossily, so that the text is valid UTF-8 whatever bytes
     * the token strings held (HF's tokens are Strings: no change for valid ones) */
    tk_str all = {0};
    rc = join(tokens, &all);
    if (rc == 0) rc = put_lossy(out, all.p ? all.p : "", all.len);
    qfmt__tk_str_free(&all);
    return rc < 0 ? TK_OOM(err) : 0;
}

/* ---- Loading ------------------------------------------------------------------------------ */
void qfmt__tk_decoder_free(tk_decoder *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->nsubs; i++) qfmt__tk_decoder_free(d->subs[i]);
    free(d->subs);
    free(d->a);
    free(d->b);
    qfmt__tk_regex_free(d->re);
    free(d);
}

static int dup_field(char **dst, size_t *dlen, const char *s, size_t n, qfmt_error *err)
{
    if (!(*dst = malloc(n + 1))) return TK_OOM(err);
    memcpy(*dst, s, n);
    (*dst)[n] = '\0';
    *dlen = n;
    return 0;
}

/* A string member that must hold exactly one character (Rust's char). */
static int json_char(const cJSON *j, const char *key, const char *dflt, uint32_t *cp, const char *where,
                     qfmt_error *err)
{
    const char *s;
    size_t n;
    if (qfmt__tk_json_string(j, key, dflt, &s, &n, where, err) < 0) return -1;
    if (!s) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.%s is missing", where, key);
    size_t l = n ? qfmt__tk_utf8_next(s, n, cp) : 0;
    if (n == 0 || l != n || (l == 1 && *cp == 0xFFFD)) /* one byte read as U+FFFD: invalid */
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.%s is not a single character", where, key);
    return 0;
}

static int string_field(const cJSON *j, const char *key, const char *dflt, char **dst, size_t *dlen,
                        const char *where, qfmt_error *err)
{
    const char *s;
    size_t n;
    if (qfmt__tk_json_string(j, key, dflt, &s, &n, where, err) < 0) return -1;
    if (!s) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.%s is missing", where, key);
    return dup_field(dst, dlen, s, n, err);
}

static int load_metaspace(const cJSON *j, tk_decoder *d, const char *where, qfmt_error *err)
{
    if (json_char(j, "replacement", NULL, &d->cp, where, err) < 0) return -1;
    const char *scheme;
    if (qfmt__tk_json_string(j, "prepend_scheme", NULL, &scheme, NULL, where, err) < 0) return -1;
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space");
    bool legacy = true;
    if (qfmt__tk_json_bool(j, "add_prefix_space", true, &legacy, where, err) < 0) return -1;
    if (!scheme) {
        /* legacy files: add_prefix_space alone (false: never) */
        d->prepend = legacy;
        return 0;
    }
    bool never = strcmp(scheme, "never") == 0;
    if (!never && strcmp(scheme, "always") != 0 && strcmp(scheme, "first") != 0)
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.prepend_scheme '%.40s' is not always, first or never", where, scheme);
    if (cJSON_IsFalse(aps) && !never) /* HF refuses this combination */
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s: add_prefix_space false does not match prepend_scheme '%s'", where,
                       scheme);
    d->prepend = !never;
    return 0;
}

static int load_strip(const cJSON *j, tk_decoder *d, const char *where, qfmt_error *err)
{
    uint64_t start, stop;
    if (json_char(j, "content", NULL, &d->cp, where, err) < 0 ||
        qfmt__tk_json_uint(j, "start", 0, SIZE_MAX / 8, &start, where, err) < 0 ||
        qfmt__tk_json_uint(j, "stop", 0, SIZE_MAX / 8, &stop, where, err) < 0)
        return -1;
    d->start = (size_t)start;
    d->stop = (size_t)stop;
    return 0;
}

/* Replace: "pattern": {"String": s} or {"Regex": r}, "content": string. */
static int load_replace(const cJSON *j, tk_decoder *d, const char *where, qfmt_error *err)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const cJSON *str = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "String") : NULL;
    const cJSON *rx = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "Regex") : NULL;
    const cJSON *pat = str ? str : rx;
    if (!cJSON_IsString(pat) || !pat->valuestring || (str && rx))
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.pattern is not {\"String\": s} or {\"Regex\": s}", where);
    if (string_field(j, "content", NULL, &d->b, &d->blen, where, err) < 0) return -1;
    if (dup_field(&d->a, &d->alen, pat->valuestring, strlen(pat->valuestring), err) < 0) return -1;
    if (rx) {
        char w[160];
        snprintf(w, sizeof w, "%s.pattern", where);
        if (!(d->re = qfmt__tk_regex_compile(d->a, d->alen, w, err))) return -1;
    }
    return 0;
}

static int load_any(const cJSON *j, const char *where, int depth, tk_decoder **out, qfmt_error *err);

static int load_sequence(const cJSON *j, tk_decoder *d, const char *where, int depth, qfmt_error *err)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "decoders");
    if (!cJSON_IsArray(arr)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.decoders is not an array", where);
    if (depth >= TK_MAX_DEPTH)
        return qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "%s: Sequence nested deeper than %d", where, TK_MAX_DEPTH);
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n && !(d->subs = calloc(n, sizeof *d->subs))) return TK_OOM(err);
    const cJSON *x;
    cJSON_ArrayForEach(x, arr)
    {
        if (d->nsubs >= n) break; /* the array's own count bounds the walk */
        char w[200];
        snprintf(w, sizeof w, "%s.decoders[%zu]", where, d->nsubs);
        if (load_any(x, w, depth + 1, &d->subs[d->nsubs], err) < 0) return -1;
        d->nsubs++;
    }
    return 0;
}

static int load_fields(const cJSON *j, const char *type, tk_decoder *d, const char *where, int depth,
                       qfmt_error *err)
{
    if (strcmp(type, "ByteLevel") == 0) d->kind = D_BYTE_LEVEL;
    else if (strcmp(type, "ByteFallback") == 0) d->kind = D_BYTE_FALLBACK;
    else if (strcmp(type, "Fuse") == 0) d->kind = D_FUSE;
    else if (strcmp(type, "Metaspace") == 0) return d->kind = D_METASPACE, load_metaspace(j, d, where, err);
    else if (strcmp(type, "Strip") == 0) return d->kind = D_STRIP, load_strip(j, d, where, err);
    else if (strcmp(type, "Replace") == 0) return d->kind = D_REPLACE, load_replace(j, d, where, err);
    else if (strcmp(type, "Sequence") == 0) return d->kind = D_SEQUENCE, load_sequence(j, d, where, depth, err);
    else if (strcmp(type, "WordPiece") == 0) {
        d->kind = D_WORDPIECE;
        if (string_field(j, "prefix", "##", &d->a, &d->alen, where, err) < 0) return -1;
        return qfmt__tk_json_bool(j, "cleanup", true, &d->cleanup, where, err);
    } else if (strcmp(type, "BPEDecoder") == 0) {
        d->kind = D_BPE;
        return string_field(j, "suffix", "</w>", &d->a, &d->alen, where, err);
    } else if (strcmp(type, "CTC") == 0) {
        d->kind = D_CTC;
        if (string_field(j, "pad_token", "<pad>", &d->a, &d->alen, where, err) < 0 ||
            string_field(j, "word_delimiter_token", "|", &d->b, &d->blen, where, err) < 0)
            return -1;
        return qfmt__tk_json_bool(j, "cleanup", true, &d->cleanup, where, err);
    } else {
        char shown[80];
        qfmt_escape(type, strlen(type) < 60 ? strlen(type) : 60, shown, sizeof shown);
        return qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "%s: type '%s' is not supported", where, shown);
    }
    return 0;
}

static int load_any(const cJSON *j, const char *where, int depth, tk_decoder **out, qfmt_error *err)
{
    *out = NULL;
    const char *type = qfmt__tk_json_type(j, where, err);
    if (!type) return -1;
    tk_decoder *d = calloc(1, sizeof *d);
    if (!d) return TK_OOM(err);
    if (load_fields(j, type, d, where, depth, err) < 0) {
        qfmt__tk_decoder_free(d);
        return -1;
    }
    *out = d;
    return 0;
}

int qfmt__tk_decoder_load(const cJSON *j, tk_decoder **out, qfmt_error *err) { return load_any(j, "decoder", 0, out, err); }
