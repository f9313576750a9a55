/*
 * tokenizer.c - byte-level BPE tokenizer compatible with Hugging Face `tokenizers`.
 * See tokenizer.h for what is implemented and what is refused.
 *
 * Layout of a loaded tokenizer (immutable after load):
 *   - tok[id]: every id's string (as in tokenizer.json) and its decoded bytes, both in one
 *     arena; flags for model-vocab membership, added, special.
 *   - a string -> id open-addressing table over model vocab and added tokens;
 *   - a (left id, right id) -> (rank, merged id) open-addressing table for the merges;
 *   - byte_id[256]: the model id of each byte's bytes_to_unicode character;
 *   - two byte tries of added tokens (normalized=false first, normalized=true second);
 *   - the compiled pre-tokenizer regex (PCRE2, JIT when available).
 * Encoding state (ids, BPE symbols, heap, PCRE2 match data) lives in a per-call context, so
 * concurrent encode calls on one tokenizer are safe.
 */
#define _POSIX_C_SOURCE 200809L
#define PCRE2_CODE_UNIT_WIDTH 8

#include "qfmt_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ids are limited to 2^24 (16.7 M); real vocabularies are below 300 K. */
#define TOK_MAX_IDS (1u << 24)

/* The GPT-2 pattern as it appears in tokenizer.json (Split pre-tokenizer) and as HF
 * hard-codes it in the ByteLevel pre-tokenizer. */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* The same pattern for PCRE2, with Oniguruma's Unicode \s spelled out (U+0009-000D, U+0085,
 * categories Zs/Zl/Zp = Unicode White_Space), so it does not depend on PCRE2's idea of \s. */
#define WS_CLASS "\\t-\\r\\x{85}\\p{Z}"
static const char GPT2_PCRE2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS_CLASS
                                 "\\p{L}\\p{N}]+|[" WS_CLASS "]+(?![^" WS_CLASS "])|[" WS_CLASS
                                 "]+";

/* Rust regex's Unicode \w (used by HF for added tokens' single_word). */
static const char WORD_PCRE2[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]";

typedef struct {
    uint32_t off, len;         /* token string in the arena */
    uint32_t dec_off, dec_len; /* decoded bytes in the arena */
    uint8_t used, in_model, added, special;
} tok_entry;

typedef struct {
    int32_t id;
    uint32_t off, len;
    bool single_word, lstrip, rstrip, normalized, special;
} added_tok;

typedef struct {
    int32_t child, sibling; /* node indices, -1 = none */
    int32_t added;          /* index into t->added of the token ending here, or -1 */
    uint8_t byte;
} trie_node;

typedef struct {
    trie_node *nodes; /* nodes[0] is the root */
    size_t n, cap;
    uint8_t first[32]; /* bitmap of first bytes */
    size_t ntokens;
} trie;

typedef struct {
    uint64_t key; /* (left << 32) | right; UINT64_MAX = empty */
    uint32_t rank;
    int32_t new_id;
} merge_slot;

struct qfmt_tokenizer {
    char *arena;
    size_t arena_len, arena_cap;
    tok_entry *tok;
    uint32_t vocab_size; /* max id + 1 */
    int32_t *str_slots;  /* id or -1 */
    size_t str_mask;
    merge_slot *merges;
    size_t merge_mask;
    int32_t byte_id[256];
    uint16_t byte_cp[256]; /* bytes_to_unicode */
    int32_t unk_id;
    bool fuse_unk, ignore_merges;
    bool add_prefix_space, use_regex;
    pcre2_code *re;
    pcre2_code *word_re; /* only when some added token is single_word */
    added_tok *added;
    size_t nadded;
    trie trie_raw, trie_norm;
};

/* ---- Small helpers ---------------------------------------------------------------------- */

static void set_msg(char *msg, size_t cap, const char *fmt, ...) {
    if (!msg || cap == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
}

/* bytes_to_unicode (GPT-2): printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in increasing byte order. */
static uint32_t byte_to_cp(unsigned b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) n++;
    return 256 + n;
}

static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Strict UTF-8 decode of one character at s[0..n). Returns its length (1-4) and sets *cp, or
 * 0 if s does not start with a valid sequence (overlongs, surrogates, > U+10FFFF invalid). */
static size_t utf8_get(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* The character ending at s[end) (end > 0), strictly decoded; 0 if invalid there. */
static size_t utf8_get_before(const unsigned char *s, size_t end, uint32_t *cp) {
    for (size_t back = 1; back <= 4 && back <= end; back++) {
        unsigned c = s[end - back];
        if ((c & 0xC0) != 0x80) { /* a lead (or ASCII) byte */
            size_t l = utf8_get(s + end - back, back, cp);
            return l == back ? l : 0;
        }
    }
    return 0;
}

/* Unicode White_Space (= Oniguruma's and Rust regex's Unicode \s). */
static bool is_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

size_t qfmt_utf8_complete_len(const char *buf, size_t len) {
    const unsigned char *s = (const unsigned char *)buf;
    /* Look at most 3 bytes back for the lead byte of a possibly incomplete sequence. */
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned c = s[len - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: keep looking */
        size_t need;
        if (c >= 0xC2 && c <= 0xDF) need = 2;
        else if (c >= 0xE0 && c <= 0xEF) need = 3;
        else if (c >= 0xF0 && c <= 0xF4) need = 4;
        else return len; /* ASCII or an invalid byte: nothing to wait for */
        if (back >= need) return len; /* complete (or too long: invalid, release it) */
        /* Incomplete: hold it back only if what is there could still become valid. */
        uint32_t cp;
        unsigned char tmp[4] = {0};
        memcpy(tmp, s + len - back, back);
        for (size_t i = back; i < need; i++) tmp[i] = 0x80;
        /* Smallest completion valid? try 0x80.. and 0xBF.. continuations. */
        if (utf8_get(tmp, need, &cp) == need) return len - back;
        for (size_t i = back; i < need; i++) tmp[i] = 0xBF;
        if (utf8_get(tmp, need, &cp) == need) return len - back;
        return len;
    }
    return len;
}

/* ---- Hash tables ---------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static size_t pow2_at_least(size_t n) {
    size_t p = 16;
    while (p < n) p <<= 1;
    return p;
}

/* Looks s up among all strings (model vocab and added tokens); returns the id or -1. */
static int32_t str_lookup(const qfmt_tokenizer *t, const char *s, size_t n) {
    size_t i = (size_t)hash_bytes(s, n) & t->str_mask;
    for (;;) {
        int32_t id = t->str_slots[i];
        if (id < 0) return -1;
        const tok_entry *e = &t->tok[id];
        if (e->len == n && memcmp(t->arena + e->off, s, n) == 0) return id;
        i = (i + 1) & t->str_mask;
    }
}

static int32_t model_lookup(const qfmt_tokenizer *t, const char *s, size_t n) {
    int32_t id = str_lookup(t, s, n);
    return (id >= 0 && t->tok[id].in_model) ? id : -1;
}

/* Inserts id (its string already in tok[id]); the caller has checked it is absent. */
static void str_insert(qfmt_tokenizer *t, int32_t id) {
    const tok_entry *e = &t->tok[id];
    size_t i = (size_t)hash_bytes(t->arena + e->off, e->len) & t->str_mask;
    while (t->str_slots[i] >= 0) i = (i + 1) & t->str_mask;
    t->str_slots[i] = id;
}

static bool merge_get(const qfmt_tokenizer *t, int32_t a, int32_t b, uint32_t *rank,
                      int32_t *new_id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = (size_t)hash_u64(key) & t->merge_mask;
    for (;;) {
        const merge_slot *m = &t->merges[i];
        if (m->key == UINT64_MAX) return false;
        if (m->key == key) {
            *rank = m->rank;
            *new_id = m->new_id;
            return true;
        }
        i = (i + 1) & t->merge_mask;
    }
}

/* Insert or overwrite (a later duplicate merge replaces the earlier one, as HF's HashMap
 * collect does). */
static void merge_put(qfmt_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = (size_t)hash_u64(key) & t->merge_mask;
    while (t->merges[i].key != UINT64_MAX && t->merges[i].key != key) i = (i + 1) & t->merge_mask;
    t->merges[i].key = key;
    t->merges[i].rank = rank;
    t->merges[i].new_id = new_id;
}

/* ---- Arena ------------------------------------------------------------------------------ */

static int arena_add(qfmt_tokenizer *t, const char *s, size_t n, uint32_t *off) {
    if (n > UINT32_MAX - t->arena_len) return -1;
    /* Allocated even for an empty first string ("" is a valid vocab key): offsets are used as
     * t->arena + off, which must not be arithmetic on a null pointer. */
    if (!t->arena || t->arena_len + n > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap : 4096;
        while (cap < t->arena_len + n) cap *= 2;
        if (cap > (size_t)UINT32_MAX + 1) cap = (size_t)UINT32_MAX + 1;
        char *p = realloc(t->arena, cap);
        if (!p) return -1;
        t->arena = p;
        t->arena_cap = cap;
    }
    if (n) memcpy(t->arena + t->arena_len, s, n);
    *off = (uint32_t)t->arena_len;
    t->arena_len += n;
    return 0;
}

/* ---- Tries of added tokens -------------------------------------------------------------- */

static int trie_init(trie *tr) {
    tr->cap = 16;
    tr->nodes = malloc(tr->cap * sizeof *tr->nodes);
    if (!tr->nodes) return -1;
    tr->n = 1;
    tr->nodes[0] = (trie_node){.child = -1, .sibling = -1, .added = -1, .byte = 0};
    memset(tr->first, 0, sizeof tr->first);
    tr->ntokens = 0;
    return 0;
}

static int trie_add(trie *tr, const unsigned char *s, size_t n, int32_t added_index) {
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = tr->nodes[node].child;
        while (c >= 0 && tr->nodes[c].byte != s[i]) c = tr->nodes[c].sibling;
        if (c < 0) {
            if (tr->n == tr->cap) {
                trie_node *p = realloc(tr->nodes, tr->cap * 2 * sizeof *p);
                if (!p) return -1;
                tr->nodes = p;
                tr->cap *= 2;
            }
            if (tr->n >= (size_t)INT32_MAX) return -1;
            c = (int32_t)tr->n++;
            tr->nodes[c] = (trie_node){
                .child = -1, .sibling = tr->nodes[node].child, .added = -1, .byte = s[i]};
            tr->nodes[node].child = c;
        }
        node = c;
    }
    tr->nodes[node].added = added_index;
    tr->first[s[0] >> 3] |= (uint8_t)(1u << (s[0] & 7));
    tr->ntokens++;
    return 0;
}

/* Longest added token starting at s[0]: its index in t->added and length, or -1. */
static int32_t trie_longest(const trie *tr, const unsigned char *s, size_t n, size_t *mlen) {
    int32_t node = 0, best = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = tr->nodes[node].child;
        while (c >= 0 && tr->nodes[c].byte != s[i]) c = tr->nodes[c].sibling;
        if (c < 0) break;
        node = c;
        if (tr->nodes[c].added >= 0) {
            best = tr->nodes[c].added;
            *mlen = i + 1;
        }
    }
    return best;
}

/* ---- Free --------------------------------------------------------------------------- */

void qfmt_tokenizer_free(qfmt_tokenizer *t) {
    if (!t) return;
    free(t->arena);
    free(t->tok);
    free(t->str_slots);
    free(t->merges);
    free(t->added);
    free(t->trie_raw.nodes);
    free(t->trie_norm.nodes);
    if (t->re) pcre2_code_free(t->re);
    if (t->word_re) pcre2_code_free(t->word_re);
    free(t);
}

/* ---- Loading ------------------------------------------------------------------------- */

/* cJSON turns "\u0000" into a NUL that silently truncates the string: refuse such input. */
static bool json_absent(const cJSON *x) { return x == NULL || cJSON_IsNull(x); }

/* A string field, or NULL if absent/null; *bad set if present with another type. */
static const char *json_str(const cJSON *obj, const char *key, bool *bad) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (json_absent(x)) return NULL;
    if (!cJSON_IsString(x) || !x->valuestring) {
        *bad = true;
        return NULL;
    }
    return x->valuestring;
}

/* A boolean field with default; -1 if present with another type. */
static int json_bool(const cJSON *obj, const char *key, bool dflt, bool *out) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (json_absent(x)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(x)) return -1;
    *out = cJSON_IsTrue(x);
    return 0;
}

/* A token id: an integral JSON number in [0, TOK_MAX_IDS). */
static int json_id(const cJSON *x, int32_t *out) {
    if (!cJSON_IsNumber(x)) return -1;
    double v = x->valuedouble;
    if (!isfinite(v) || v < 0 || v >= (double)TOK_MAX_IDS || v != floor(v)) return -1;
    *out = (int32_t)v;
    return 0;
}

static const char *json_type_name(const cJSON *obj) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return (cJSON_IsString(ty) && ty->valuestring) ? ty->valuestring : NULL;
}

static int check_normalizer(const cJSON *root, char *msg, size_t cap) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (json_absent(n)) return 0;
    const char *ty = cJSON_IsObject(n) ? json_type_name(n) : NULL;
    if (ty && strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (cJSON_IsArray(list) && cJSON_GetArraySize(list) == 0) return 0;
    }
    set_msg(msg, cap, "normalizer '%.64s' is not supported (only no normalizer)",
            ty ? ty : "(malformed)");
    return -1;
}

/* Reads a ByteLevel pre-tokenizer object's flags. */
static int read_bytelevel(const cJSON *p, bool *aps, bool *use_regex, char *msg, size_t cap) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space");
    if (!cJSON_IsBool(a)) {
        set_msg(msg, cap, "pre_tokenizer ByteLevel: add_prefix_space missing or not a boolean");
        return -1;
    }
    *aps = cJSON_IsTrue(a);
    if (json_bool(p, "use_regex", true, use_regex) < 0) {
        set_msg(msg, cap, "pre_tokenizer ByteLevel: use_regex is not a boolean");
        return -1;
    }
    return 0;
}

static int check_pre_tokenizer(qfmt_tokenizer *t, const cJSON *root, char *msg, size_t cap) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (json_absent(p)) {
        set_msg(msg, cap, "pre_tokenizer null is not supported (byte-level BPE needs ByteLevel)");
        return -1;
    }
    const char *ty = cJSON_IsObject(p) ? json_type_name(p) : NULL;
    if (!ty) {
        set_msg(msg, cap, "pre_tokenizer is malformed (no type)");
        return -1;
    }
    if (strcmp(ty, "ByteLevel") == 0)
        return read_bytelevel(p, &t->add_prefix_space, &t->use_regex, msg, cap);
    if (strcmp(ty, "Sequence") != 0) {
        set_msg(msg, cap, "pre_tokenizer '%.64s' is not supported (only ByteLevel)", ty);
        return -1;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;
    const cJSON *e0 = n >= 1 ? cJSON_GetArrayItem(list, 0) : NULL;
    const cJSON *e1 = n >= 2 ? cJSON_GetArrayItem(list, 1) : NULL;
    const char *t0 = cJSON_IsObject(e0) ? json_type_name(e0) : NULL;
    const char *t1 = cJSON_IsObject(e1) ? json_type_name(e1) : NULL;
    if (n == 1 && t0 && strcmp(t0, "ByteLevel") == 0)
        return read_bytelevel(e0, &t->add_prefix_space, &t->use_regex, msg, cap);
    if (n == 2 && t0 && t1 && strcmp(t0, "Split") == 0 && strcmp(t1, "ByteLevel") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(e0, "pattern");
        const cJSON *rx = cJSON_IsObject(pat) ? cJSON_GetObjectItemCaseSensitive(pat, "Regex") : NULL;
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(e0, "behavior");
        const cJSON *inv = cJSON_GetObjectItemCaseSensitive(e0, "invert");
        if (!cJSON_IsString(rx) || strcmp(rx->valuestring, GPT2_PATTERN) != 0) {
            set_msg(msg, cap,
                    "pre_tokenizer Split with a pattern other than the GPT-2 regex is not "
                    "supported");
            return -1;
        }
        if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0 ||
            !(json_absent(inv) || cJSON_IsFalse(inv))) {
            set_msg(msg, cap,
                    "pre_tokenizer Split: only behavior 'Isolated' without invert is supported");
            return -1;
        }
        bool aps, ur;
        if (read_bytelevel(e1, &aps, &ur, msg, cap) < 0) return -1;
        if (aps || ur) {
            set_msg(msg, cap,
                    "pre_tokenizer Sequence[Split, ByteLevel]: only ByteLevel with "
                    "add_prefix_space=false and use_regex=false is supported");
            return -1;
        }
        t->add_prefix_space = false;
        t->use_regex = true;
        return 0;
    }
    set_msg(msg, cap,
            "pre_tokenizer Sequence is not supported unless it is [ByteLevel] or "
            "[Split(GPT-2 regex), ByteLevel]");
    return -1;
}

static int check_decoder_post(const cJSON *root, char *msg, size_t cap) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const char *ty = cJSON_IsObject(d) ? json_type_name(d) : NULL;
    if (!ty || strcmp(ty, "ByteLevel") != 0) {
        set_msg(msg, cap, "decoder '%.64s' is not supported (only ByteLevel)",
                ty ? ty : (json_absent(d) ? "null" : "(malformed)"));
        return -1;
    }
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (!json_absent(pp)) {
        ty = cJSON_IsObject(pp) ? json_type_name(pp) : NULL;
        if (!ty || strcmp(ty, "ByteLevel") != 0) {
            set_msg(msg, cap,
                    "post_processor '%.64s' is not supported (only null or ByteLevel)",
                    ty ? ty : "(malformed)");
            return -1;
        }
    }
    return 0;
}

/* Model options other than vocab and merges. */
static int check_model_options(qfmt_tokenizer *t, const cJSON *model, const char **unk,
                               char *msg, size_t cap) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsString(ty)) {
        set_msg(msg, cap, "tokenizer model has no type (only byte-level BPE is supported)");
        return -1;
    }
    if (strcmp(ty->valuestring, "BPE") != 0) {
        set_msg(msg, cap, "tokenizer model type '%.64s' is not supported (only byte-level BPE)",
                ty->valuestring);
        return -1;
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (!json_absent(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0.0)) {
        set_msg(msg, cap, "BPE dropout is not supported (must be null)");
        return -1;
    }
    bool bad = false, byte_fallback;
    const char *csp = json_str(model, "continuing_subword_prefix", &bad);
    const char *eow = json_str(model, "end_of_word_suffix", &bad);
    *unk = json_str(model, "unk_token", &bad);
    if (bad) {
        set_msg(msg, cap, "BPE model: unk_token / continuing_subword_prefix / "
                          "end_of_word_suffix must be strings or null");
        return -1;
    }
    if ((csp && *csp) || (eow && *eow)) {
        set_msg(msg, cap, "BPE %s is not supported (must be null)",
                (csp && *csp) ? "continuing_subword_prefix" : "end_of_word_suffix");
        return -1;
    }
    if (json_bool(model, "byte_fallback", false, &byte_fallback) < 0 ||
        json_bool(model, "fuse_unk", false, &t->fuse_unk) < 0 ||
        json_bool(model, "ignore_merges", false, &t->ignore_merges) < 0) {
        set_msg(msg, cap, "BPE model: byte_fallback / fuse_unk / ignore_merges must be booleans");
        return -1;
    }
    if (byte_fallback) {
        set_msg(msg, cap, "BPE byte_fallback=true is not supported");
        return -1;
    }
    return 0;
}

/* Registers id -> string; rejects duplicate strings or ids. */
static int add_string(qfmt_tokenizer *t, int32_t id, const char *s, size_t n, bool in_model,
                      char *msg, size_t cap) {
    tok_entry *e = &t->tok[id];
    if (e->used) {
        set_msg(msg, cap, "id %d is used by two tokens", (int)id);
        return -1;
    }
    if (str_lookup(t, s, n) >= 0) {
        set_msg(msg, cap, "token '%.64s' appears twice", s);
        return -1;
    }
    if (arena_add(t, s, n, &e->off) < 0) {
        set_msg(msg, cap, "out of memory");
        return -1;
    }
    e->len = (uint32_t)n;
    e->used = 1;
    e->in_model = in_model;
    str_insert(t, id);
    return 0;
}

static int load_vocab_and_added(qfmt_tokenizer *t, const cJSON *vocab, const cJSON *added,
                                char *msg, size_t cap) {
    size_t nv = 0, na = 0;
    int32_t max_id = -1;
    for (const cJSON *c = vocab->child; c; c = c->next) {
        int32_t id;
        if (!c->string || json_id(c, &id) < 0) {
            set_msg(msg, cap, "vocab entry '%.64s' has no valid id (integer in [0, 2^24))",
                    c->string ? c->string : "");
            return -1;
        }
        if (id > max_id) max_id = id;
        nv++;
    }
    if (nv == 0) {
        set_msg(msg, cap, "BPE vocab is empty");
        return -1;
    }
    if (!json_absent(added) && !cJSON_IsArray(added)) {
        set_msg(msg, cap, "added_tokens is not an array");
        return -1;
    }
    for (const cJSON *c = added ? added->child : NULL; c; c = c->next) {
        int32_t id;
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(c, "content");
        if (!cJSON_IsObject(c) || json_id(cJSON_GetObjectItemCaseSensitive(c, "id"), &id) < 0 ||
            !cJSON_IsString(content) || !content->valuestring[0]) {
            set_msg(msg, cap, "added_tokens entry %zu: needs an integer id in [0, 2^24) and a "
                              "non-empty string content", na);
            return -1;
        }
        if (id > max_id) max_id = id;
        na++;
    }
    size_t vs = (size_t)max_id + 1;
    if (vs > 2 * (nv + na) + 1024) {
        set_msg(msg, cap, "token ids are too sparse (largest id %d for %zu tokens)", (int)max_id,
                nv + na);
        return -1;
    }
    t->vocab_size = (uint32_t)vs;
    t->tok = calloc(vs, sizeof *t->tok);
    t->str_mask = pow2_at_least(2 * (nv + na) + 1) - 1;
    t->str_slots = malloc((t->str_mask + 1) * sizeof *t->str_slots);
    t->added = calloc(na ? na : 1, sizeof *t->added);
    if (!t->tok || !t->str_slots || !t->added) {
        set_msg(msg, cap, "out of memory");
        return -1;
    }
    memset(t->str_slots, 0xFF, (t->str_mask + 1) * sizeof *t->str_slots);

    for (const cJSON *c = vocab->child; c; c = c->next) {
        int32_t id = 0;
        (void)json_id(c, &id);
        if (add_string(t, id, c->string, strlen(c->string), true, msg, cap) < 0) return -1;
    }

    /* Added tokens. HF re-derives their ids: the model's id when the content is in the
     * vocab, else the next free id after the vocab (its rule below); refuse files whose ids
     * disagree with what HF would use, rather than guess. */
    int64_t max_added = -1;
    for (const cJSON *c = added ? added->child : NULL; c; c = c->next) {
        int32_t id = 0;
        (void)json_id(cJSON_GetObjectItemCaseSensitive(c, "id"), &id);
        const char *content = cJSON_GetObjectItemCaseSensitive(c, "content")->valuestring;
        size_t clen = strlen(content);
        added_tok *a = &t->added[t->nadded];
        a->id = id;
        if (json_bool(c, "single_word", false, &a->single_word) < 0 ||
            json_bool(c, "lstrip", false, &a->lstrip) < 0 ||
            json_bool(c, "rstrip", false, &a->rstrip) < 0 ||
            json_bool(c, "normalized", true, &a->normalized) < 0 ||
            json_bool(c, "special", false, &a->special) < 0) {
            set_msg(msg, cap, "added token '%.64s': flags must be booleans", content);
            return -1;
        }
        int32_t existing = str_lookup(t, content, clen);
        if (existing >= 0 && t->tok[existing].added) {
            set_msg(msg, cap, "added token '%.64s' appears twice", content);
            return -1;
        }
        int64_t expect;
        if (existing >= 0) {
            expect = existing;
        } else if (max_added < 0) {
            expect = (int64_t)nv;
        } else {
            expect = (max_added >= (int64_t)nv) ? max_added + 1 : (int64_t)nv;
        }
        if (expect != id) {
            set_msg(msg, cap,
                    "added token '%.64s' has id %d but Hugging Face would give it id %lld",
                    content, (int)id, (long long)expect);
            return -1;
        }
        if (existing < 0 && add_string(t, id, content, clen, false, msg, cap) < 0) return -1;
        if (id > max_added) max_added = id;
        t->tok[id].added = 1;
        t->tok[id].special = a->special;
        a->off = t->tok[id].off;
        a->len = t->tok[id].len;
        t->nadded++;
    }
    return 0;
}

static int load_merges(qfmt_tokenizer *t, const cJSON *merges, char *msg, size_t cap) {
    size_t n = (size_t)cJSON_GetArraySize(merges);
    t->merge_mask = pow2_at_least(2 * n + 1) - 1;
    t->merges = malloc((t->merge_mask + 1) * sizeof *t->merges);
    if (!t->merges) {
        set_msg(msg, cap, "out of memory");
        return -1;
    }
    for (size_t i = 0; i <= t->merge_mask; i++) t->merges[i].key = UINT64_MAX;

    char *buf = NULL;
    size_t buf_cap = 0;
    uint32_t rank = 0;
    size_t index = 0;
    int rc = -1;
    for (const cJSON *m = merges->child; m; m = m->next, index++) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(m)) {
            const char *s = m->valuestring;
            if (strncmp(s, "#version", 8) == 0) continue;
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                set_msg(msg, cap, "merges entry %zu ('%.64s') is not two tokens separated by one "
                                  "space", index, s);
                goto out;
            }
            a = s, la = (size_t)(sp - s), b = sp + 1, lb = strlen(sp + 1);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
            a = m->child->valuestring, la = strlen(a);
            b = m->child->next->valuestring, lb = strlen(b);
        } else {
            set_msg(msg, cap, "merges entry %zu is neither \"a b\" nor [\"a\", \"b\"]", index);
            goto out;
        }
        if (la + lb + 1 > buf_cap) {
            size_t nc = (la + lb + 1) * 2;
            char *p = realloc(buf, nc);
            if (!p) {
                set_msg(msg, cap, "out of memory");
                goto out;
            }
            buf = p, buf_cap = nc;
        }
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        int32_t ia = model_lookup(t, a, la), ib = model_lookup(t, b, lb);
        int32_t ic = model_lookup(t, buf, la + lb);
        if (ia < 0 || ib < 0 || ic < 0) {
            const char *which = ia < 0 ? a : ib < 0 ? b : buf;
            int wl = (int)(ia < 0 ? la : ib < 0 ? lb : la + lb);
            set_msg(msg, cap, "merges entry %zu: token '%.*s' is not in the vocab", index,
                    wl > 64 ? 64 : wl, which);
            goto out;
        }
        merge_put(t, ia, ib, rank, ic);
        rank++;
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

/* HF's ByteLevel decoder per token: the byte of each character if every character is one of
 * the 256 byte characters, else the token's own UTF-8 bytes. */
static int build_decoded(qfmt_tokenizer *t, char *msg, size_t cap) {
    int16_t cp2byte[324];
    for (int i = 0; i < 324; i++) cp2byte[i] = -1;
    for (unsigned b = 0; b < 256; b++) cp2byte[byte_to_cp(b)] = (int16_t)b;
    char *tmp = NULL;
    size_t tmp_cap = 0;
    for (uint32_t id = 0; id < t->vocab_size; id++) {
        tok_entry *e = &t->tok[id];
        if (!e->used) continue;
        if (e->len > tmp_cap) {
            free(tmp);
            tmp_cap = e->len * 2;
            tmp = malloc(tmp_cap);
            if (!tmp) {
                set_msg(msg, cap, "out of memory");
                return -1;
            }
        }
        const unsigned char *s = (const unsigned char *)t->arena + e->off;
        size_t i = 0, o = 0;
        bool ok = true;
        while (i < e->len) {
            uint32_t cp;
            size_t l = utf8_get(s + i, e->len - i, &cp);
            if (l == 0 || cp >= 324 || cp2byte[cp] < 0) {
                ok = false;
                break;
            }
            tmp[o++] = (char)cp2byte[cp];
            i += l;
        }
        /* s may move when the arena grows: copy through tmp in both cases. */
        if (!ok) {
            memcpy(tmp, s, e->len);
            o = e->len;
        }
        if (arena_add(t, tmp, o, &e->dec_off) < 0) {
            free(tmp);
            set_msg(msg, cap, "out of memory");
            return -1;
        }
        e->dec_len = (uint32_t)o;
    }
    free(tmp);
    return 0;
}

static pcre2_code *compile_re(const char *pattern, char *msg, size_t cap) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off,
                                   NULL);
    if (!re) {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(err, buf, sizeof buf);
        set_msg(msg, cap, "PCRE2 cannot compile the pre-tokenizer regex: %s", (char *)buf);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: interpreter otherwise */
    return re;
}

static int tokenizer_load(qfmt_tokenizer **out, const char *json, size_t len, char *msg, size_t msg_cap) {
    if (msg && msg_cap) msg[0] = '\0';
    if (!out) {
        set_msg(msg, msg_cap, "no output pointer");
        return -1;
    }
    *out = NULL;
    if (!json || len == 0) {
        set_msg(msg, msg_cap, "tokenizer.json is empty");
        return -1;
    }
    qfmt_error je; /* the one JSON policy (qfmt.h), offset in the message */
    if (qfmt_json_check(json, len, 0, "tokenizer.json", &je) != QFMT_OK) {
        char line[1024];
        set_msg(msg, msg_cap, "%s", qfmt_error_format(&je, line, sizeof line));
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        set_msg(msg, msg_cap, "tokenizer.json is not valid JSON");
        return -1;
    }
    qfmt_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        cJSON_Delete(root);
        set_msg(msg, msg_cap, "out of memory");
        return -1;
    }
    t->unk_id = -1;
    int rc = -1;
    const char *unk = NULL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(root)) {
        set_msg(msg, msg_cap, "tokenizer.json is not a JSON object");
        goto out;
    }
    if (!cJSON_IsObject(model)) {
        set_msg(msg, msg_cap, "tokenizer.json has no model object");
        goto out;
    }
    if (check_model_options(t, model, &unk, msg, msg_cap) < 0 ||
        check_normalizer(root, msg, msg_cap) < 0 || check_pre_tokenizer(t, root, msg, msg_cap) < 0 ||
        check_decoder_post(root, msg, msg_cap) < 0)
        goto out;

    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        set_msg(msg, msg_cap, "BPE model needs a vocab object and a merges array");
        goto out;
    }
    if (load_vocab_and_added(t, vocab, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"),
                             msg, msg_cap) < 0)
        goto out;
    if (unk) {
        t->unk_id = model_lookup(t, unk, strlen(unk));
        if (t->unk_id < 0) {
            set_msg(msg, msg_cap, "unk_token '%.64s' is not in the vocab", unk);
            goto out;
        }
    }
    for (unsigned b = 0; b < 256; b++) {
        char s[4];
        t->byte_cp[b] = (uint16_t)byte_to_cp(b);
        size_t l = utf8_put(t->byte_cp[b], s);
        t->byte_id[b] = model_lookup(t, s, l);
    }
    if (load_merges(t, merges, msg, msg_cap) < 0 || build_decoded(t, msg, msg_cap) < 0) goto out;

    /* Added-token tries (HF: normalized=false tokens matched first on the raw text, then
     * normalized=true ones on what is left; without a normalizer both see the same text). */
    if (trie_init(&t->trie_raw) < 0 || trie_init(&t->trie_norm) < 0) {
        set_msg(msg, msg_cap, "out of memory");
        goto out;
    }
    bool need_word = false;
    for (size_t i = 0; i < t->nadded; i++) {
        const added_tok *a = &t->added[i];
        trie *tr = a->normalized ? &t->trie_norm : &t->trie_raw;
        if (trie_add(tr, (const unsigned char *)t->arena + a->off, a->len, (int32_t)i) < 0) {
            set_msg(msg, msg_cap, "out of memory");
            goto out;
        }
        need_word |= a->single_word;
    }
    if (t->use_regex && !(t->re = compile_re(GPT2_PCRE2, msg, msg_cap))) goto out;
    if (need_word && !(t->word_re = compile_re(WORD_PCRE2, msg, msg_cap))) goto out;
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc == 0) {
        *out = t;
    } else {
        if (msg && msg_cap && !msg[0]) set_msg(msg, msg_cap, "invalid tokenizer.json");
        qfmt_tokenizer_free(t);
    }
    return rc;
}

/* ---- Encoding ------------------------------------------------------------------------- */

typedef struct {
    int32_t c;   /* token id */
    int32_t prev, next;
    uint32_t len; /* bytes; 0 = merged away */
} bpe_sym;

typedef struct {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
} bpe_merge;

typedef struct {
    const qfmt_tokenizer *t;
    int32_t *ids;
    size_t n, cap;
    bpe_sym *syms;
    size_t syms_cap;
    bpe_merge *heap;
    size_t heap_n, heap_cap;
    char *buf; /* prefix-space copy of a segment */
    size_t buf_cap;
    char *wbuf; /* a pre-token mapped to byte characters (ignore_merges) */
    size_t wbuf_cap;
    pcre2_match_data *md;
    char *msg;
    size_t msg_cap;
} enc_ctx;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / elem) return -1;
        nc *= 2;
    }
    void *q = realloc(*p, nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static int emit(enc_ctx *cx, int32_t id) {
    if (cx->n == cx->cap && grow((void **)&cx->ids, &cx->cap, cx->n + 1, sizeof *cx->ids) < 0) {
        set_msg(cx->msg, cx->msg_cap, "out of memory");
        return -1;
    }
    cx->ids[cx->n++] = id;
    return 0;
}

static bool merge_less(const bpe_merge *a, const bpe_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(enc_ctx *cx, uint32_t rank, int32_t pos, int32_t new_id) {
    if (grow((void **)&cx->heap, &cx->heap_cap, cx->heap_n + 1, sizeof *cx->heap) < 0) {
        set_msg(cx->msg, cx->msg_cap, "out of memory");
        return -1;
    }
    bpe_merge m = {rank, pos, new_id};
    size_t i = cx->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_less(&m, &cx->heap[p])) break;
        cx->heap[i] = cx->heap[p];
        i = p;
    }
    cx->heap[i] = m;
    return 0;
}

static bpe_merge heap_pop(enc_ctx *cx) {
    bpe_merge top = cx->heap[0];
    bpe_merge last = cx->heap[--cx->heap_n];
    size_t i = 0, n = cx->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const bpe_merge *best = &last;
        if (l < n && merge_less(&cx->heap[l], best)) m = l, best = &cx->heap[l];
        if (r < n && merge_less(&cx->heap[r], best)) m = r;
        if (m == i) break;
        cx->heap[i] = cx->heap[m];
        i = m;
    }
    if (n) cx->heap[i] = last;
    return top;
}

/* BPE on one pre-token (raw bytes), HF's Word::merge_all: a priority queue of candidate
 * merges ordered by (rank, position), stale entries skipped. O(n log n). */
static int bpe_word(enc_ctx *cx, const unsigned char *w, size_t n) {
    const qfmt_tokenizer *t = cx->t;
    if (n == 0) return 0;
    if (t->ignore_merges) {
        if (n > SIZE_MAX / 2 || grow((void **)&cx->wbuf, &cx->wbuf_cap, 2 * n, 1) < 0) goto oom;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) o += utf8_put(t->byte_cp[w[i]], cx->wbuf + o);
        int32_t id = model_lookup(t, cx->wbuf, o);
        if (id >= 0) return emit(cx, id);
    }
    if (n == 1 && t->byte_id[w[0]] >= 0) return emit(cx, t->byte_id[w[0]]);
    if (n > (size_t)INT32_MAX / 4) {
        set_msg(cx->msg, cx->msg_cap, "pre-token too long");
        return -1;
    }
    if (grow((void **)&cx->syms, &cx->syms_cap, n, sizeof *cx->syms) < 0) goto oom;
    bpe_sym *s = cx->syms;
    int32_t ns = 0;
    int32_t unk_len = 0; /* pending unknown run */
    for (size_t i = 0; i <= n; i++) {
        int32_t id = i < n ? t->byte_id[w[i]] : -1;
        bool flush = (i == n) || id >= 0 || (unk_len > 0 && !t->fuse_unk);
        if (flush && unk_len > 0) {
            s[ns] = (bpe_sym){t->unk_id, ns - 1, ns + 1, (uint32_t)unk_len};
            ns++;
            unk_len = 0;
        }
        if (i == n) break;
        if (id >= 0) {
            s[ns] = (bpe_sym){id, ns - 1, ns + 1, 1};
            ns++;
        } else if (t->unk_id >= 0) {
            unk_len++; /* unknown byte: HF uses unk_token, or drops it when there is none */
        }
    }
    if (ns == 0) return 0;
    s[ns - 1].next = -1;

    cx->heap_n = 0;
    for (int32_t i = 0; i + 1 < ns; i++) {
        uint32_t rank;
        int32_t nid;
        if (merge_get(t, s[i].c, s[i + 1].c, &rank, &nid) && heap_push(cx, rank, i, nid) < 0)
            return -1;
    }
    while (cx->heap_n) {
        bpe_merge top = heap_pop(cx);
        bpe_sym *cur = &s[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        int32_t nx = cur->next;
        uint32_t rank;
        int32_t nid;
        if (!merge_get(t, cur->c, s[nx].c, &rank, &nid) || nid != top.new_id) continue;
        cur->c = top.new_id;
        cur->len += s[nx].len;
        cur->next = s[nx].next;
        s[nx].len = 0;
        if (cur->next >= 0) s[cur->next].prev = top.pos;
        if (cur->prev >= 0 && merge_get(t, s[cur->prev].c, cur->c, &rank, &nid) &&
            heap_push(cx, rank, cur->prev, nid) < 0)
            return -1;
        cur = &s[top.pos]; /* (s does not move, but keep the reload explicit) */
        if (cur->next >= 0 && merge_get(t, cur->c, s[cur->next].c, &rank, &nid) &&
            heap_push(cx, rank, top.pos, nid) < 0)
            return -1;
    }
    for (int32_t i = 0; i < ns; i++)
        if (s[i].len && emit(cx, s[i].c) < 0) return -1;
    return 0;
oom:
    set_msg(cx->msg, cx->msg_cap, "out of memory");
    return -1;
}

static int regex_match(enc_ctx *cx, const char *s, size_t n, size_t off) {
    int rc = pcre2_match(cx->t->re, (PCRE2_SPTR)s, n, off, 0, cx->md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* very long run: retry with the interpreter */
        rc = pcre2_match(cx->t->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_JIT, cx->md, NULL);
    return rc;
}

/* One text segment between added tokens: ByteLevel pre-tokenization, then BPE per piece. */
static int encode_segment(enc_ctx *cx, const char *s, size_t n) {
    const qfmt_tokenizer *t = cx->t;
    if (n == 0) return 0;
    if (t->add_prefix_space && s[0] != ' ') {
        if (n == SIZE_MAX || grow((void **)&cx->buf, &cx->buf_cap, n + 1, 1) < 0) {
            set_msg(cx->msg, cx->msg_cap, "out of memory");
            return -1;
        }
        cx->buf[0] = ' ';
        memcpy(cx->buf + 1, s, n);
        n++;
        s = cx->buf;
    }
    if (!t->use_regex) return bpe_word(cx, (const unsigned char *)s, n);
    size_t off = 0;
    while (off < n) {
        int m = regex_match(cx, s, n, off);
        if (m == PCRE2_ERROR_NOMATCH) /* trailing invalid UTF-8 */
            return bpe_word(cx, (const unsigned char *)s + off, n - off);
        if (m < 0) {
            set_msg(cx->msg, cx->msg_cap, "pre-tokenizer regex failed (PCRE2 error %d)", m);
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(cx->md);
        size_t ms = ov[0], me = ov[1] > ov[0] ? ov[1] : ov[0] + 1; /* (never empty) */
        if (ms > off && bpe_word(cx, (const unsigned char *)s + off, ms - off) < 0) return -1;
        if (bpe_word(cx, (const unsigned char *)s + ms, me - ms) < 0) return -1;
        off = me;
    }
    return 0;
}

static bool is_word_char(const enc_ctx *cx, const unsigned char *c, size_t l) {
    int rc = pcre2_match(cx->t->word_re, (PCRE2_SPTR)c, l, 0, PCRE2_ANCHORED, cx->md, NULL);
    return rc >= 0;
}

/* HF AddedVocabulary::find_matches over one segment with one trie; text pieces go to the next
 * stage (the normalized-token trie, then the pre-tokenizer). */
static int split_added(enc_ctx *cx, int level, const char *text, size_t len) {
    const qfmt_tokenizer *t = cx->t;
    const trie *tr = level == 0 ? &t->trie_raw : &t->trie_norm;
    if (level > 1) return encode_segment(cx, text, len);
    if (tr->ntokens == 0 || len == 0) return split_added(cx, level + 1, text, len);
    const unsigned char *s = (const unsigned char *)text;
    size_t start_offset = 0, pos = 0;
    while (pos < len) {
        size_t i, mlen = 0;
        int32_t ai = -1;
        for (i = pos; i < len; i++) {
            if (!(tr->first[s[i] >> 3] & (1u << (s[i] & 7)))) continue;
            ai = trie_longest(tr, s + i, len - i, &mlen);
            if (ai >= 0) break;
        }
        if (ai < 0) break;
        const added_tok *a = &t->added[ai];
        size_t start = i, stop = i + mlen;
        pos = stop; /* matching resumes after the match, whatever the flags do */
        if (a->single_word) {
            uint32_t cp;
            size_t l;
            bool start_space = true, stop_space = true;
            if (start > 0 && (l = utf8_get_before(s, start, &cp)) > 0)
                start_space = !is_word_char(cx, s + start - l, l);
            if (stop < len && (l = utf8_get(s + stop, len - stop, &cp)) > 0)
                stop_space = !is_word_char(cx, s + stop, l);
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            uint32_t cp;
            size_t l;
            while (ns > 0 && (l = utf8_get_before(s, ns, &cp)) > 0 && is_white_space(cp)) ns -= l;
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            uint32_t cp;
            size_t l;
            while (stop < len && (l = utf8_get(s + stop, len - stop, &cp)) > 0 &&
                   is_white_space(cp))
                stop += l;
        }
        if (start < start_offset) start = start_offset; /* overlap after an rstrip */
        if (start_offset < start &&
            split_added(cx, level + 1, text + start_offset, start - start_offset) < 0)
            return -1;
        if (emit(cx, a->id) < 0) return -1;
        if (stop > start_offset) start_offset = stop;
    }
    if (start_offset < len) return split_added(cx, level + 1, text + start_offset, len - start_offset);
    return 0;
}

static int tokenizer_encode(const qfmt_tokenizer *t, const char *text, size_t len, int32_t **ids,
                          size_t *n, char *msg, size_t msg_cap) {
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (msg && msg_cap) msg[0] = '\0';
    if (!t || !ids || !n || (!text && len)) {
        set_msg(msg, msg_cap, "invalid argument");
        return -1;
    }
    enc_ctx cx = {.t = t, .msg = msg, .msg_cap = msg_cap};
    cx.md = pcre2_match_data_create(1, NULL);
    if (!cx.md) {
        set_msg(msg, msg_cap, "out of memory");
        return -1;
    }
    int rc = len ? split_added(&cx, 0, text, len) : 0;
    pcre2_match_data_free(cx.md);
    free(cx.syms);
    free(cx.heap);
    free(cx.buf);
    free(cx.wbuf);
    if (rc < 0) {
        free(cx.ids);
        return -1;
    }
    *ids = cx.ids;
    *n = cx.n;
    return 0;
}

/* ---- Decoding and lookups ----------------------------------------------------------- */

static const tok_entry *entry(const qfmt_tokenizer *t, int32_t id) {
    if (!t || id < 0 || (uint32_t)id >= t->vocab_size || !t->tok[id].used) return NULL;
    return &t->tok[id];
}

/* The message's class: what a caller may do about it. */
static qfmt_status msg_code(const char *msg) {
    if (strstr(msg, "out of memory")) return QFMT_E_NOMEM;
    if (strstr(msg, "not supported")) return QFMT_E_UNSUPPORTED;
    if (strstr(msg, "invalid argument") || strstr(msg, "no output pointer")) return QFMT_E_ARG;
    return QFMT_E_CORRUPT;
}

static qfmt_status set_err(qfmt_error *err, int rc, qfmt_status code, const char *msg) {
    if (!err) return rc == 0 ? QFMT_OK : code;
    memset(err, 0, sizeof *err);
    err->offset = QFMT_NO_OFFSET;
    if (rc == 0) return QFMT_OK;
    err->code = code;
    snprintf(err->message, sizeof err->message, "%s", msg);
    return code;
}

qfmt_status qfmt_tokenizer_load(qfmt_tokenizer **out, const char *json, size_t len, qfmt_error *err) {
    char msg[sizeof err->message] = "";
    int rc = tokenizer_load(out, json, len, msg, sizeof msg);
    return set_err(err, rc, msg_code(msg), msg);
}

qfmt_status qfmt_tokenizer_encode(const qfmt_tokenizer *t, const char *text, size_t len, int32_t **ids,
                                  size_t *n, qfmt_error *err) {
    char msg[sizeof err->message] = "";
    int rc = tokenizer_encode(t, text, len, ids, n, msg, sizeof msg);
    return set_err(err, rc, msg_code(msg), msg);
}

qfmt_status qfmt_tokenizer_decode(const qfmt_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                                  char **text, size_t *len, qfmt_error *err) {
    char msg[96];
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!t || !text || !len || (!ids && n)) return set_err(err, -1, QFMT_E_ARG, "invalid argument");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const tok_entry *e = entry(t, ids[i]);
        if (!e) {
            snprintf(msg, sizeof msg, "token id %ld at position %zu is not in the vocabulary (0..%lu)",
                     (long)ids[i], i, (unsigned long)t->vocab_size - 1);
            return set_err(err, -1, QFMT_E_RANGE, msg);
        }
        if (skip_special && e->special) continue;
        if (e->dec_len > SIZE_MAX - 1 - total) return set_err(err, -1, QFMT_E_RANGE, "decoded text too long");
        total += e->dec_len;
    }
    char *out = malloc(total + 1);
    if (!out) return set_err(err, -1, QFMT_E_NOMEM, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const tok_entry *e = &t->tok[ids[i]];
        if (skip_special && e->special) continue;
        memcpy(out + o, t->arena + e->dec_off, e->dec_len);
        o += e->dec_len;
    }
    out[o] = '\0';
    *text = out;
    *len = o;
    return set_err(err, 0, QFMT_OK, "");
}

qfmt_status qfmt_tokenizer_token_bytes(const qfmt_tokenizer *t, int32_t id, const char **bytes, size_t *len) {
    const tok_entry *e = entry(t, id);
    if (!bytes || !len) return QFMT_E_ARG;
    if (!e) return QFMT_E_RANGE;
    *bytes = t->arena + e->dec_off;
    *len = e->dec_len;
    return QFMT_OK;
}

qfmt_status qfmt_tokenizer_token_string(const qfmt_tokenizer *t, int32_t id, const char **str, size_t *len) {
    const tok_entry *e = entry(t, id);
    if (!str || !len) return QFMT_E_ARG;
    if (!e) return QFMT_E_RANGE;
    *str = t->arena + e->off;
    *len = e->len;
    return QFMT_OK;
}

int32_t qfmt_tokenizer_token_id(const qfmt_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    return str_lookup(t, token, strlen(token));
}

bool qfmt_tokenizer_is_special(const qfmt_tokenizer *t, int32_t id) {
    const tok_entry *e = entry(t, id);
    return e && e->special;
}

size_t qfmt_tokenizer_vocab_size(const qfmt_tokenizer *t) { return t ? t->vocab_size : 0; }
