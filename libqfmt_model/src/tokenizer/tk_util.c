/* tk_util.c - what the tokenizer's parts share (tk_internal.h): errors, growable strings,
 * lists and id arrays, UTF-8, the regex layer over PCRE2, JSON accessors. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_internal.h"
#include "model_internal.h"

int qfmt__tk_fail(qfmt_error *err, qfmt_status code, const char *fmt, ...)
{
    char msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qfmt__merr(err, code, NULL, NULL, "tokenizer.json: %s", msg);
}

/* ---- tk_str ---------------------------------------------------------------------------- */
int qfmt__tk_str_reserve(tk_str *s, size_t extra)
{
    if (extra > SIZE_MAX / 2 - s->len - 1) return -1;
    size_t need = s->len + extra + 1;
    if (need <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(s->p, cap);
    if (!p) return -1;
    s->p = p;
    s->cap = cap;
    return 0;
}

int qfmt__tk_str_put(tk_str *s, const void *b, size_t n)
{
    if (qfmt__tk_str_reserve(s, n) < 0) return -1;
    if (n) memcpy(s->p + s->len, b, n);
    s->len += n;
    s->p[s->len] = '\0';
    return 0;
}

int qfmt__tk_str_putc(tk_str *s, char c) { return qfmt__tk_str_put(s, &c, 1); }

int qfmt__tk_str_put_cp(tk_str *s, uint32_t cp)
{
    char b[4];
    return qfmt__tk_str_put(s, b, qfmt__tk_utf8_put(cp, b));
}

void qfmt__tk_str_free(tk_str *s)
{
    free(s->p);
    memset(s, 0, sizeof *s);
}

/* ---- tk_list --------------------------------------------------------------------------- */
int qfmt__tk_list_push(tk_list *l, const void *b, size_t n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        if (cap > SIZE_MAX / sizeof *l->v) return -1;
        tk_span *v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    size_t off = l->buf.len;
    if (qfmt__tk_str_put(&l->buf, b, n) < 0) return -1;
    l->v[l->n++] = (tk_span){off, n};
    return 0;
}

void qfmt__tk_list_clear(tk_list *l)
{
    l->n = 0;
    l->buf.len = 0;
    if (l->buf.p) l->buf.p[0] = '\0';
}

void qfmt__tk_list_free(tk_list *l)
{
    qfmt__tk_str_free(&l->buf);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* ---- tk_ids ---------------------------------------------------------------------------- */
int qfmt__tk_ids_push(tk_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 64;
        if (cap > SIZE_MAX / sizeof *ids->v) return -1;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return -1;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

void qfmt__tk_ids_free(tk_ids *ids)
{
    free(ids->v);
    memset(ids, 0, sizeof *ids);
}

/* ---- UTF-8 ----------------------------------------------------------------------------- */
size_t qfmt__tk_utf8_next(const char *str, size_t n, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07, min = 0x10000;
    else goto bad;
    if (n < len) goto bad;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) goto bad;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) goto bad;
    *cp = v;
    return len;
bad:
    *cp = 0xFFFD;
    return 1;
}

size_t qfmt__tk_utf8_put(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

bool qfmt__tk_is_whitespace(uint32_t c)
{
    /* Unicode White_Space (PropList.txt), what Rust's char::is_whitespace tests */
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in increasing byte order. */
static bool byte_printable(unsigned b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

uint32_t qfmt__tk_byte_to_cp(uint8_t b)
{
    if (byte_printable(b)) return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++) n += !byte_printable(x);
    return 256 + n;
}

int qfmt__tk_cp_to_byte(uint32_t cp)
{
    if (cp < 256) return byte_printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    unsigned n = 0;
    for (unsigned x = 0; x < 256; x++)
        if (!byte_printable(x) && n++ == cp - 256) return (int)x;
    return -1;
}

/* ---- Regexes ----------------------------------------------------------------------------- */
/* Oniguruma's (Ruby syntax, UTF-8) \s is Unicode White_Space and its \w letters, marks,
 * decimal digits and connector punctuation; PCRE2's with UCP are close but not the same sets,
 * so both are spelled out. \d with UCP is Unicode Nd, as in Oniguruma with UTF-8. */
#define WS_RANGES "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

#define WORD_RANGES "\\p{L}\\p{M}\\p{Nd}\\p{Pc}"

static int translate(const char *p, size_t n, tk_str *out)
{
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            i++;
            if (d == 's') {
                if (qfmt__tk_str_put(out, in_class ? WS_RANGES : "[" WS_RANGES "]", strlen(in_class ? WS_RANGES : "[" WS_RANGES "]")) < 0) return -1;
            } else if (d == 'w') { /* Oniguruma's Unicode \w: letters, marks, decimal digits, connectors */
                const char *w = in_class ? WORD_RANGES : "[" WORD_RANGES "]";
                if (qfmt__tk_str_put(out, w, strlen(w)) < 0) return -1;
            } else if (d == 'W') {
                if (in_class) return 1;
                if (qfmt__tk_str_put(out, "[^" WORD_RANGES "]", strlen("[^" WORD_RANGES "]")) < 0) return -1;
            } else if (d == 'S') {
                if (in_class) return 1; /* a negated set inside a class: not translatable here */
                if (qfmt__tk_str_put(out, "[^" WS_RANGES "]", strlen("[^" WS_RANGES "]")) < 0) return -1;
            } else {
                char b[2] = {'\\', d};
                if (qfmt__tk_str_put(out, b, 2) < 0) return -1;
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            if (qfmt__tk_str_putc(out, c) < 0) return -1;
            /* a ']' first (or after '^') is a literal */
            if (i + 1 < n && p[i + 1] == '^') {
                if (qfmt__tk_str_putc(out, '^') < 0) return -1;
                i++;
            }
            if (i + 1 < n && p[i + 1] == ']') {
                if (qfmt__tk_str_put(out, "\\]", 2) < 0) return -1;
                i++;
            }
            continue;
        }
        if (in_class && c == '[') return 1; /* nested classes (Oniguruma set operations) */
        if (in_class && c == ']') in_class = false;
        if (qfmt__tk_str_putc(out, c) < 0) return -1;
    }
    return 0;
}

pcre2_code *qfmt__tk_regex_compile(const char *pattern, size_t len, const char *where, qfmt_error *err)
{
    tk_str t = {0};
    int tr = translate(pattern, len, &t);
    if (tr < 0) {
        qfmt__tk_str_free(&t);
        TK_OOM(err);
        return NULL;
    }
    char shown[200];
    qfmt_escape(pattern, len < 120 ? len : 120, shown, sizeof shown);
    if (tr > 0) {
        qfmt__tk_str_free(&t);
        qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "%s: regex '%s%s' uses a construct qfmt cannot translate to PCRE2 (\\S, \\W or [ inside a class)",
                where, shown, len > 120 ? "..." : "");
        return NULL;
    }
    /* the bound on one match's work, in the pattern itself (so that matching needs no
     * per-call match context): a pattern that backtracks badly fails with an error rather than
     * running for minutes. 10 M steps is far above what the real tokenizers' patterns need on
     * any text (their matches are linear). */
    static const char limits[] = "(*LIMIT_MATCH=10000000)(*LIMIT_DEPTH=100000)";
    tk_str full = {0};
    if (qfmt__tk_str_put(&full, limits, sizeof limits - 1) < 0 || qfmt__tk_str_put(&full, t.p ? t.p : "", t.len) < 0) {
        qfmt__tk_str_free(&t);
        qfmt__tk_str_free(&full);
        TK_OOM(err);
        return NULL;
    }
    qfmt__tk_str_free(&t);
    t = full;
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(t.p ? t.p : ""), t.len,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_MULTILINE, &ec,
                                   &off, NULL); /* Ruby syntax: ^ and $ are line anchors */
    qfmt__tk_str_free(&t);
    if (!re) {
        PCRE2_UCHAR buf[160];
        pcre2_get_error_message(ec, buf, sizeof buf);
        qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "%s: regex '%s%s' does not compile: %s", where, shown, len > 120 ? "..." : "",
                (char *)buf);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: the interpreter otherwise */
    return re;
}

void qfmt__tk_regex_free(pcre2_code *re) { pcre2_code_free(re); }

pcre2_match_data *qfmt__tk_regex_match_data(const pcre2_code *re) { return pcre2_match_data_create_from_pattern(re, NULL); }

int qfmt__tk_regex_find(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n, size_t start, size_t *ms,
                  size_t *me, qfmt_error *err)
{
    int rc = pcre2_match(re, (PCRE2_SPTR)(s ? s : ""), n, start, 0, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* a very long run: the interpreter, still bounded */
        rc = pcre2_match(re, (PCRE2_SPTR)(s ? s : ""), n, start, PCRE2_NO_JIT, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR buf[160];
        pcre2_get_error_message(rc, buf, sizeof buf);
        return qfmt__tk_fail(err, rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ? QFMT_E_RANGE : QFMT_E_CORRUPT,
                       "regex match failed: %s", (char *)buf);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

/* ---- JSON ---------------------------------------------------------------------------------- */
static bool absent(const cJSON *x) { return x == NULL || cJSON_IsNull(x); }

int qfmt__tk_json_bool(const cJSON *obj, const char *key, bool dflt, bool *out, const char *where, qfmt_error *err)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (absent(x)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(x)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.%s is not a boolean", where, key);
    *out = cJSON_IsTrue(x);
    return 0;
}

int qfmt__tk_json_string(const cJSON *obj, const char *key, const char *dflt, const char **out, size_t *len,
                   const char *where, qfmt_error *err)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (absent(x)) {
        *out = dflt;
        if (len) *len = dflt ? strlen(dflt) : 0;
        return 0;
    }
    if (!cJSON_IsString(x) || !x->valuestring) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.%s is not a string", where, key);
    *out = x->valuestring;
    if (len) *len = strlen(x->valuestring); /* the JSON policy refused NUL in strings */
    return 0;
}

int qfmt__tk_json_uint(const cJSON *obj, const char *key, uint64_t dflt, uint64_t max, uint64_t *out, const char *where,
                 qfmt_error *err)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (absent(x)) {
        *out = dflt;
        return 0;
    }
    double d = cJSON_IsNumber(x) ? x->valuedouble : -1;
    if (!(d >= 0 && d <= (double)max && d == floor(d)))
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.%s is not an integer in 0..%llu", where, key, (unsigned long long)max);
    *out = (uint64_t)d;
    return 0;
}

const char *qfmt__tk_json_type(const cJSON *obj, const char *where, qfmt_error *err)
{
    const cJSON *x = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "type") : NULL;
    if (!cJSON_IsString(x) || !x->valuestring) {
        qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s is not an object with a string 'type'", where);
        return NULL;
    }
    return x->valuestring;
}
