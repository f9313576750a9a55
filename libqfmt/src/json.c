/* The one JSON policy (qfmt_json_check in qfmt.h): strict RFC 8259, plus no NUL in any string,
 * no duplicate key in any object, bounded depth and size. Every JSON text the project reads
 * goes through it before cJSON parses it, because cJSON is more lenient than the parsers the
 * files come from (Python's json, serde_json) in ways that change what a file means: it ends a
 * string at a raw or escaped NUL, skips a NUL between tokens, and finds the first of two equal
 * keys where Python keeps the last. Refusing the ambiguous text beats guessing which reading
 * its author meant.
 *
 * One pass, no recursion (depth is an array of QFMT_JSON_MAX_DEPTH entries on the stack).
 * Duplicate keys: each open object's keys are pushed on one stack as (offset, hash of the
 * decoded key); when the object closes its keys are heap-sorted (by hash, then decoded bytes,
 * then offset) and neighbours compared, so a 150k-key vocab costs n log n comparisons and the
 * stack holds at most 8 bytes per key, a key taking at least 4 bytes of text. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal/alloc.h"
#include "internal/checked.h"
#include "internal/error.h"

typedef struct {
    uint32_t off;  /* of the key's opening quote, in the text */
    uint32_t hash; /* FNV-1a of the decoded key */
} key_ref;

typedef struct {
    const uint8_t *s;
    size_t n;
    uint64_t base; /* file offset of s[0], added to every reported offset */
    const char *path;
    qfmt_error *err;
    qfmt__alloc al;
    key_ref *keys;
    size_t nkeys, cap;
} checker;

static qfmt_status jfail(const checker *c, size_t at, const char *fmt, ...) QFMT__PRINTF(3, 4);
static qfmt_status jfail(const checker *c, size_t at, const char *fmt, ...)
{
    if (!c->err) return QFMT_E_CORRUPT;
    char msg[sizeof c->err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qfmt__fail(c->err, QFMT_E_CORRUPT, 0, c->path, NULL, c->base + at, "JSON: %s", msg);
}

/* A byte for a message: 'x' when printable ASCII, else 0xNN. */
static const char *show_byte(uint8_t b, char buf[8])
{
    if (b >= 0x21 && b < 0x7F && b != '\'') snprintf(buf, 8, "'%c'", (char)b);
    else snprintf(buf, 8, "0x%02x", b);
    return buf;
}

/* What stands at i instead of `what`: the end of the text, a NUL, or another byte. */
static qfmt_status expected(const checker *c, size_t i, const char *what)
{
    char b[8];
    if (i >= c->n) return jfail(c, i, "the text ends where %s should be", what);
    if (c->s[i] == 0) return jfail(c, i, "NUL byte outside a string (where %s should be)", what);
    return jfail(c, i, "expected %s, found %s", what, show_byte(c->s[i], b));
}

static bool is_ws(uint8_t b) { return b == ' ' || b == '\t' || b == '\n' || b == '\r'; }
static bool is_digit(uint8_t b) { return b >= '0' && b <= '9'; }

static size_t skip_ws(const checker *c, size_t i)
{
    while (i < c->n && is_ws(c->s[i])) i++;
    return i;
}

static int hexval(uint8_t b)
{
    if (b >= '0' && b <= '9') return b - '0';
    if (b >= 'a' && b <= 'f') return b - 'a' + 10;
    if (b >= 'A' && b <= 'F') return b - 'A' + 10;
    return -1;
}

/* The 4 hex digits at s[i..i+4) as a code unit, or -1. */
static long hex4(const checker *c, size_t i)
{
    if (c->n - i < 4) return -1;
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = hexval(c->s[i + k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Checks the string whose opening quote is at *pos; leaves *pos after the closing quote. */
static qfmt_status scan_string(const checker *c, size_t *pos)
{
    const uint8_t *s = c->s;
    size_t i = *pos + 1;
    char b[8];
    for (;;) {
        if (i >= c->n) return jfail(c, *pos, "string is not closed before the end of the text");
        uint8_t ch = s[i];
        if (ch == '"') break;
        if (ch == 0) return jfail(c, i, "NUL byte in a string (refused: readers disagree on where the string ends)");
        if (ch < 0x20)
            return jfail(c, i, "control character 0x%02x in a string (must be escaped)", ch);
        if (ch == '\\') {
            if (i + 1 >= c->n) return jfail(c, i, "escape cut off by the end of the text");
            uint8_t e = s[i + 1];
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                e == 't') {
                i += 2;
                continue;
            }
            if (e != 'u') return jfail(c, i, "invalid escape '\\%s' in a string", show_byte(e, b));
            long u = hex4(c, i + 2);
            if (u < 0) return jfail(c, i, "\\u escape without 4 hex digits");
            if (u == 0)
                return jfail(c, i, "escaped NUL (\\u0000) in a string (refused: readers disagree on where the string ends)");
            if (u >= 0xDC00 && u <= 0xDFFF)
                return jfail(c, i, "\\u%04lX is a low surrogate without a high surrogate before it", u);
            if (u >= 0xD800 && u <= 0xDBFF) {
                long lo = (c->n - i >= 8 && s[i + 6] == '\\' && s[i + 7] == 'u') ? hex4(c, i + 8) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return jfail(c, i, "\\u%04lX is a high surrogate not followed by a \\u low surrogate", u);
                i += 12;
            } else {
                i += 6;
            }
            continue;
        }
        if (ch < 0x80) {
            i++;
            continue;
        }
        /* UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
        size_t len;
        uint32_t cp, min;
        if ((ch & 0xE0) == 0xC0) len = 2, cp = ch & 0x1Fu, min = 0x80;
        else if ((ch & 0xF0) == 0xE0) len = 3, cp = ch & 0x0Fu, min = 0x800;
        else if ((ch & 0xF8) == 0xF0) len = 4, cp = ch & 0x07u, min = 0x10000;
        else return jfail(c, i, "invalid UTF-8 in a string (byte 0x%02x)", ch);
        if (c->n - i < len) return jfail(c, i, "invalid UTF-8 in a string (sequence cut off)");
        for (size_t k = 1; k < len; k++) {
            uint8_t cc = s[i + k];
            if ((cc & 0xC0) != 0x80) return jfail(c, i, "invalid UTF-8 in a string (byte 0x%02x)", ch);
            cp = (cp << 6) | (cc & 0x3Fu);
        }
        if (cp < min) return jfail(c, i, "invalid UTF-8 in a string (overlong form)");
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return jfail(c, i, "invalid UTF-8 in a string (U+%04" PRIX32 " is not a character)", cp);
        i += len;
    }
    *pos = i + 1;
    return QFMT_OK;
}

/* Decodes an already checked string byte by byte (escapes to their UTF-8 bytes). */
typedef struct {
    const uint8_t *s;
    size_t i;
    uint8_t pend[4];
    unsigned np, ip;
} decoder;

static void dec_init(decoder *d, const uint8_t *s, size_t quote)
{
    d->s = s;
    d->i = quote + 1;
    d->np = d->ip = 0;
}

static unsigned hexv(uint8_t b) { return (unsigned)hexval(b); }
static uint32_t hex4v(const uint8_t *p)
{
    return (uint32_t)(hexv(p[0]) << 12 | hexv(p[1]) << 8 | hexv(p[2]) << 4 | hexv(p[3]));
}

/* The next decoded byte, or -1 at the closing quote. */
static int dec_next(decoder *d)
{
    if (d->ip < d->np) return d->pend[d->ip++];
    uint8_t ch = d->s[d->i];
    if (ch == '"') return -1;
    if (ch != '\\') {
        d->i++;
        return ch;
    }
    uint8_t e = d->s[d->i + 1];
    d->i += 2;
    switch (e) {
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'u': break;
    default: return e; /* " \ / */
    }
    uint32_t cp = hex4v(d->s + d->i);
    d->i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) { /* checked: a \uDC00..\uDFFF follows */
        cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4v(d->s + d->i + 2) - 0xDC00);
        d->i += 6;
    }
    d->ip = 1;
    if (cp < 0x80) return (int)cp;
    if (cp < 0x800) {
        d->np = 2;
        d->pend[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return (int)(0xC0 | (cp >> 6));
    }
    if (cp < 0x10000) {
        d->np = 3;
        d->pend[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        d->pend[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return (int)(0xE0 | (cp >> 12));
    }
    d->np = 4;
    d->pend[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    d->pend[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    d->pend[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return (int)(0xF0 | (cp >> 18));
}

static uint32_t key_hash(const uint8_t *s, size_t quote)
{
    decoder d;
    dec_init(&d, s, quote);
    uint32_t h = 2166136261u;
    for (int b; (b = dec_next(&d)) >= 0;) h = (h ^ (uint32_t)b) * 16777619u;
    return h;
}

/* Orders by hash, then decoded bytes; 0 when the keys are equal. */
static int key_cmp(const uint8_t *s, key_ref a, key_ref b)
{
    if (a.hash != b.hash) return a.hash < b.hash ? -1 : 1;
    decoder x, y;
    dec_init(&x, s, a.off);
    dec_init(&y, s, b.off);
    for (;;) {
        int p = dec_next(&x), q = dec_next(&y);
        if (p != q) return p < q ? -1 : 1;
        if (p < 0) return 0;
    }
}

/* Equal keys end up in order of offset. */
static bool key_less(const uint8_t *s, key_ref a, key_ref b)
{
    int r = key_cmp(s, a, b);
    return r < 0 || (r == 0 && a.off < b.off);
}

static void sift_down(const uint8_t *s, key_ref *k, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && key_less(s, k[child], k[child + 1])) child++;
        if (!key_less(s, k[root], k[child])) return;
        key_ref t = k[root];
        k[root] = k[child];
        k[child] = t;
        root = child;
    }
}

/* Heap sort: n log n comparisons whatever the keys, no extra memory. */
static void sort_keys(const uint8_t *s, key_ref *k, size_t n)
{
    for (size_t i = n / 2; i-- > 0;) sift_down(s, k, i, n);
    for (size_t end = n; end-- > 1;) {
        key_ref t = k[0];
        k[0] = k[end];
        k[end] = t;
        sift_down(s, k, 0, end);
    }
}

/* The decoded key for a message: control characters, quote and backslash escaped, cut at a
 * character boundary with "..." when long. */
static void show_key(const uint8_t *s, size_t quote, char *out, size_t cap)
{
    decoder d;
    dec_init(&d, s, quote);
    size_t n = 0;
    const size_t room = cap - 4; /* for "..." and the NUL */
    int b;
    while ((b = dec_next(&d)) >= 0) {
        char tmp[8];
        size_t l = 1;
        tmp[0] = (char)b;
        if (b < 0x20 || b == 0x7F) l = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)b);
        else if (b == '"' || b == '\\') tmp[0] = '\\', tmp[1] = (char)b, l = 2;
        else if (b >= 0xC0) { /* a lead byte: the whole character, or nothing */
            l = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
            for (size_t k = 1; k < l; k++) tmp[k] = (char)dec_next(&d);
        }
        if (n + l > room) {
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        memcpy(out + n, tmp, l);
        n += l;
    }
    out[n] = '\0';
}

/* Closes the object whose keys are keys[from..nkeys): refuses two equal keys. */
static qfmt_status close_object(checker *c, size_t from)
{
    key_ref *k = c->keys + from;
    size_t n = c->nkeys - from;
    c->nkeys = from;
    if (n < 2) return QFMT_OK;
    sort_keys(c->s, k, n);
    /* Of all repeated keys, the one repeated first in the text. */
    size_t best = SIZE_MAX;
    for (size_t i = 1; i < n; i++)
        if (key_cmp(c->s, k[i - 1], k[i]) == 0 && (best == SIZE_MAX || k[i].off < k[best].off)) best = i;
    if (best == SIZE_MAX) return QFMT_OK;
    char name[100];
    show_key(c->s, k[best].off, name, sizeof name);
    return jfail(c, k[best].off,
                 "duplicate key \"%s\" in one object, at bytes %" PRIu64 " and %" PRIu64
                 " (refused: parsers disagree on which one counts)",
                 name, c->base + k[best - 1].off, c->base + k[best].off);
}

static qfmt_status push_key(checker *c, size_t quote)
{
    if (c->nkeys == c->cap) {
        /* at most one key per 4 bytes of a text of at most QFMT_JSON_MAX_SIZE: no overflow */
        size_t cap = c->cap ? c->cap * 2 : 64;
        if (qfmt__grow(&c->al, (void **)&c->keys, c->nkeys * sizeof *c->keys, cap * sizeof *c->keys) != 0)
            return qfmt__fail(c->err, QFMT_E_NOMEM, 0, c->path, NULL, QFMT_NO_OFFSET, "out of memory");
        c->cap = cap;
    }
    c->keys[c->nkeys].off = (uint32_t)quote; /* the text is at most QFMT_JSON_MAX_SIZE bytes */
    c->keys[c->nkeys].hash = key_hash(c->s, quote);
    c->nkeys++;
    return QFMT_OK;
}

/* A key, its string and the colon, at *pos (after whitespace). */
static qfmt_status scan_key(checker *c, size_t *pos)
{
    size_t i = skip_ws(c, *pos);
    if (i >= c->n || c->s[i] != '"') return expected(c, i, "a string key");
    size_t quote = i;
    qfmt_status st = scan_string(c, &i);
    if (st == QFMT_OK) st = push_key(c, quote);
    if (st != QFMT_OK) return st;
    i = skip_ws(c, i);
    if (i >= c->n || c->s[i] != ':') return expected(c, i, "':' after the key");
    *pos = i + 1;
    return QFMT_OK;
}

/* RFC 8259's number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static qfmt_status scan_number(const checker *c, size_t *pos)
{
    const uint8_t *s = c->s;
    size_t i = *pos, n = c->n;
    if (s[i] == '-') i++;
    if (i >= n || !is_digit(s[i])) return jfail(c, *pos, "number without digits after '-'");
    if (s[i] == '0') {
        i++;
        if (i < n && is_digit(s[i])) return jfail(c, *pos, "number with a leading zero");
    } else {
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i])) return jfail(c, *pos, "number without digits after '.'");
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !is_digit(s[i])) return jfail(c, *pos, "number without digits in its exponent");
        while (i < n && is_digit(s[i])) i++;
    }
    *pos = i;
    return QFMT_OK;
}

static qfmt_status bad_value(const checker *c, size_t i)
{
    uint8_t ch = c->s[i];
    if (ch == '/') return jfail(c, i, "comments are not JSON");
    if (i == 0 && c->n >= 3 && ch == 0xEF && c->s[1] == 0xBB && c->s[2] == 0xBF)
        return jfail(c, i, "byte order mark before the JSON text");
    if (ch == '\'') return jfail(c, i, "single-quoted strings are not JSON");
    return expected(c, i, "a JSON value");
}

static qfmt_status check(checker *c)
{
    uint8_t kind[QFMT_JSON_MAX_DEPTH]; /* '{' or '[' per open container */
    size_t keybase[QFMT_JSON_MAX_DEPTH];
    unsigned depth = 0;
    size_t i = 0;
    const uint8_t *s = c->s;
    qfmt_status st;
    for (;;) {
        /* a value */
        i = skip_ws(c, i);
        if (i >= c->n)
            return jfail(c, i, depth ? "the text ends where a value should be" : "no JSON value in the text");
        uint8_t ch = s[i];
        if (ch == '{' || ch == '[') {
            if (depth == QFMT_JSON_MAX_DEPTH)
                return jfail(c, i, "nesting deeper than %u arrays and objects", QFMT_JSON_MAX_DEPTH);
            kind[depth] = ch;
            keybase[depth] = c->nkeys;
            depth++;
            i = skip_ws(c, i + 1);
            if (i < c->n && s[i] == (ch == '{' ? '}' : ']')) {
                depth--;
                i++;
            } else {
                if (ch == '{' && (st = scan_key(c, &i)) != QFMT_OK) return st;
                continue;
            }
        } else if (ch == '"') {
            if ((st = scan_string(c, &i)) != QFMT_OK) return st;
        } else if (ch == '-' || is_digit(ch)) {
            if ((st = scan_number(c, &i)) != QFMT_OK) return st;
        } else if (c->n - i >= 4 && (memcmp(s + i, "true", 4) == 0 || memcmp(s + i, "null", 4) == 0)) {
            i += 4;
        } else if (c->n - i >= 5 && memcmp(s + i, "false", 5) == 0) {
            i += 5;
        } else {
            return bad_value(c, i);
        }
        /* after a value: a separator, the end of containers, or the end of the text */
        for (;;) {
            i = skip_ws(c, i);
            if (depth == 0) {
                if (i < c->n)
                    return s[i] == 0     ? jfail(c, i, "NUL byte after the JSON value")
                           : s[i] == '/' ? jfail(c, i, "comments are not JSON (after the value)")
                                         : jfail(c, i, "%zu bytes after the JSON value", c->n - i);
                return QFMT_OK;
            }
            bool obj = kind[depth - 1] == '{';
            if (i >= c->n) return jfail(c, i, "the text ends inside an %s", obj ? "object" : "array");
            ch = s[i];
            if (ch == ',') {
                i++;
                if (obj && (st = scan_key(c, &i)) != QFMT_OK) return st;
                break;
            }
            if (ch == (obj ? '}' : ']')) {
                if (obj && (st = close_object(c, keybase[depth - 1])) != QFMT_OK) return st;
                depth--;
                i++;
                continue;
            }
            return expected(c, i, obj ? "',' or '}' in an object" : "',' or ']' in an array");
        }
    }
}

qfmt_status qfmt_json_check(const char *text, size_t len, uint64_t offset, const char *path,
                            qfmt_error *err)
{
    qfmt__clear_error(err);
    uint64_t end;
    if ((!text && len) || !qfmt__add_u64(offset, len, &end))
        return qfmt__fail(err, QFMT_E_ARG, 0, path, NULL, QFMT_NO_OFFSET, "NULL text or offset overflow");
    if (len > QFMT_JSON_MAX_SIZE)
        return qfmt__fail(err, QFMT_E_CORRUPT, 0, path, NULL, QFMT_NO_OFFSET,
                          "JSON text of %zu bytes, more than the %llu allowed", len,
                          (unsigned long long)QFMT_JSON_MAX_SIZE);
    checker c;
    memset(&c, 0, sizeof c);
    c.s = (const uint8_t *)text;
    c.n = len;
    c.base = offset;
    c.path = path;
    c.err = err;
    qfmt__alloc_init(&c.al, NULL);
    qfmt_status st = check(&c);
    qfmt__free(&c.al, c.keys);
    return st;
}
