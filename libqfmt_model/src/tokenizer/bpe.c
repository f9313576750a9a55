/*
 * bpe.c - the BPE model of Hugging Face tokenizers (models/bpe): a word is split into
 * characters, each looked up (with continuing_subword_prefix after the first and
 * end_of_word_suffix on the last), unknown characters becoming byte tokens (<0xXX>, with
 * byte_fallback) or unk_token (fused when fuse_unk); then HF's Word::merge_all: a priority
 * queue of candidate merges ordered by (rank, position), stale entries skipped.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_internal.h"

typedef struct {
    uint64_t key; /* (left << 32) | right; UINT64_MAX = empty */
    uint32_t rank;
    int32_t new_id;
} merge_slot;

struct tk_bpe {
    merge_slot *merges;
    size_t mask;
    int32_t unk_id; /* -1: none */
    bool fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix; /* NULL: none */
    size_t prefix_len, suffix_len;
    int32_t byte_tok[256];   /* <0xXX> ids (byte_fallback), -1 absent */
    int32_t char_id[0x800];  /* ids of one-character tokens below U+0800, no prefix/suffix; -2: unknown yet */
};

typedef struct {
    int32_t c; /* token id */
    int32_t prev, next;
    uint32_t len; /* bytes; 0 = merged away */
} sym;

typedef struct {
    uint32_t rank;
    int32_t pos, new_id;
} cand;

struct tk_bpe_work {
    sym *syms;
    size_t syms_cap;
    cand *heap;
    size_t heap_n, heap_cap;
    tk_str tmp;
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static bool merge_get(const tk_bpe *m, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = (size_t)mix(key) & m->mask;; i = (i + 1) & m->mask) {
        if (m->merges[i].key == UINT64_MAX) return false;
        if (m->merges[i].key == key) {
            *rank = m->merges[i].rank;
            *new_id = m->merges[i].new_id;
            return true;
        }
    }
}

/* A later duplicate pair replaces the earlier one, as HF's HashMap collect does. */
static void merge_put(tk_bpe *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = (size_t)mix(key) & m->mask;
    while (m->merges[i].key != UINT64_MAX && m->merges[i].key != key) i = (i + 1) & m->mask;
    m->merges[i] = (merge_slot){key, rank, new_id};
}

void qfmt__tk_bpe_free(tk_bpe *m)
{
    if (!m) return;
    free(m->merges);
    free(m->prefix);
    free(m->suffix);
    free(m);
}

static int opt_string(const cJSON *model, const char *key, char **out, size_t *len, qfmt_error *err)
{
    const char *s;
    if (qfmt__tk_json_string(model, key, NULL, &s, len, "model", err) < 0) return -1;
    *out = NULL;
    if (s && !(*out = strdup(s))) return TK_OOM(err);
    return 0;
}

static int load_options(const cJSON *model, const tk_vocab *v, tk_bpe *m, qfmt_error *err)
{
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0.0))
        return qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "model.dropout: BPE dropout is not supported (its output is random)");
    const char *unk;
    if (qfmt__tk_json_string(model, "unk_token", NULL, &unk, NULL, "model", err) < 0 ||
        qfmt__tk_json_bool(model, "fuse_unk", false, &m->fuse_unk, "model", err) < 0 ||
        qfmt__tk_json_bool(model, "byte_fallback", false, &m->byte_fallback, "model", err) < 0 ||
        qfmt__tk_json_bool(model, "ignore_merges", false, &m->ignore_merges, "model", err) < 0 ||
        opt_string(model, "continuing_subword_prefix", &m->prefix, &m->prefix_len, err) < 0 ||
        opt_string(model, "end_of_word_suffix", &m->suffix, &m->suffix_len, err) < 0)
        return -1;
    /* HF loads a BPE whose unk_token is not in the vocab and fails only when a word needs it
     * (merge_word: UnkTokenOutOfVocabulary); such a file is refused here at load, a stricter
     * choice the tokenizer tests hold us to */
    m->unk_id = -1;
    if (unk && (m->unk_id = qfmt__tk_vocab_id(v, unk, strlen(unk))) < 0) {
        char shown[100];
        qfmt_escape(unk, strlen(unk) < 64 ? strlen(unk) : 64, shown, sizeof shown);
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.unk_token '%s' is not in the vocab", shown);
    }
    for (unsigned b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        m->byte_tok[b] = qfmt__tk_vocab_id(v, s, 6);
    }
    return 0;
}

static int load_merges(const cJSON *merges, const tk_vocab *v, tk_bpe *m, qfmt_error *err)
{
    size_t n = (size_t)cJSON_GetArraySize(merges), cap = 16;
    while (cap < 2 * n + 1) cap *= 2; /* n is bounded by the JSON's size */
    if (!(m->merges = malloc(cap * sizeof *m->merges))) return TK_OOM(err);
    m->mask = cap - 1;
    for (size_t i = 0; i < cap; i++) m->merges[i].key = UINT64_MAX;
    tk_str buf = {0};
    uint32_t rank = 0;
    size_t index = 0;
    int rc = -1;
    for (const cJSON *e = merges->child; e; e = e->next, index++) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(e)) {
            /* HF's convert_merges_to_hashmap: lines starting with "#version" are skipped (they
             * take no rank); the others split on ' ' into exactly two parts */
            const char *s = e->valuestring, *sp = strchr(s, ' ');
            if (strncmp(s, "#version", 8) == 0) continue;
            if (!sp) {
                qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.merges[%zu] is not two tokens separated by a space", index);
                goto out;
            }
            if (strchr(sp + 1, ' ')) {
                size_t rl = strlen(sp + 1);
                qfmt__tk_fail(err, QFMT_E_CORRUPT,
                        "model.merges[%zu]: token '%.*s' after the first space holds another space (Hugging Face "
                        "splits on every space and wants exactly two parts)",
                        index, (int)(rl > 64 ? 64 : rl), sp + 1);
                goto out;
            }
            a = s, la = (size_t)(sp - s), b = sp + 1, lb = strlen(sp + 1);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            a = e->child->valuestring, la = strlen(a);
            b = e->child->next->valuestring, lb = strlen(b);
        } else {
            qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", index);
            goto out;
        }
        /* the merged token: a + b without the continuing prefix (HF slices b[prefix_len..]) */
        if (lb < m->prefix_len) {
            qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.merges[%zu]: '%.*s' is shorter than continuing_subword_prefix", index,
                    (int)(lb > 64 ? 64 : lb), b);
            goto out;
        }
        buf.len = 0;
        if (qfmt__tk_str_put(&buf, a, la) < 0 || qfmt__tk_str_put(&buf, b + m->prefix_len, lb - m->prefix_len) < 0) {
            TK_OOM(err);
            goto out;
        }
        int32_t ia = qfmt__tk_vocab_id(v, a, la), ib = qfmt__tk_vocab_id(v, b, lb), ic = qfmt__tk_vocab_id(v, buf.p, buf.len);
        if (ia < 0 || ib < 0 || ic < 0) {
            const char *w = ia < 0 ? a : ib < 0 ? b : buf.p;
            size_t wl = ia < 0 ? la : ib < 0 ? lb : buf.len;
            char shown[100];
            qfmt_escape(w, wl < 64 ? wl : 64, shown, sizeof shown);
            qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.merges[%zu]: token '%s' is not in the vocab", index, shown);
            goto out;
        }
        merge_put(m, ia, ib, rank++, ic);
    }
    rc = 0;
out:
    qfmt__tk_str_free(&buf);
    return rc;
}

int qfmt__tk_bpe_load(const cJSON *model, const tk_vocab *v, tk_bpe **out, qfmt_error *err)
{
    *out = NULL;
    tk_bpe *m = calloc(1, sizeof *m);
    if (!m) return TK_OOM(err);
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (merges && !cJSON_IsNull(merges) && !cJSON_IsArray(merges)) {
        qfmt__tk_bpe_free(m);
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.merges is not an array");
    }
    cJSON empty = {0};
    empty.type = cJSON_Array;
    if (load_options(model, v, m, err) < 0 || load_merges(cJSON_IsArray(merges) ? merges : &empty, v, m, err) < 0) {
        qfmt__tk_bpe_free(m);
        return -1;
    }
    /* one-character tokens below U+0800 (every byte-level character): a table lookup */
    for (uint32_t cp = 0; cp < 0x800; cp++) {
        char s[4];
        size_t l = qfmt__tk_utf8_put(cp, s);
        m->char_id[cp] = (cp >= 0xD800 && cp <= 0xDFFF) ? -1 : qfmt__tk_vocab_id(v, s, l);
    }
    *out = m;
    return 0;
}

void qfmt__tk_bpe_work_free(tk_bpe_work *w)
{
    if (!w) return;
    free(w->syms);
    free(w->heap);
    qfmt__tk_str_free(&w->tmp);
    free(w);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
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

static bool cand_less(const cand *a, const cand *b) { return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos; }

static int heap_push(tk_bpe_work *w, uint32_t rank, int32_t pos, int32_t new_id)
{
    if (grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof *w->heap) < 0) return -1;
    cand c = {rank, pos, new_id};
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
    return 0;
}

static cand heap_pop(tk_bpe_work *w)
{
    cand top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < n && cand_less(&w->heap[l], best)) m = l, best = &w->heap[l];
        if (r < n && cand_less(&w->heap[r], best)) m = r;
        if (m == i) break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* The id of one character c[0..cl) at word position (first, last), or -1. */
static int32_t char_token(const tk_bpe *m, const tk_vocab *v, const char *c, size_t cl, uint32_t cp, bool first,
                          bool last, tk_str *tmp)
{
    bool pre = !first && m->prefix, suf = last && m->suffix;
    if (!pre && !suf && cp < 0x800 && cl == qfmt__tk_utf8_put(cp, (char[4]){0}) && (cp != 0xFFFD || cl == 3))
        return m->char_id[cp];
    if (!pre && !suf) return qfmt__tk_vocab_id(v, c, cl);
    tmp->len = 0;
    if ((pre && qfmt__tk_str_put(tmp, m->prefix, m->prefix_len) < 0) || qfmt__tk_str_put(tmp, c, cl) < 0 ||
        (suf && qfmt__tk_str_put(tmp, m->suffix, m->suffix_len) < 0))
        return -2;
    return qfmt__tk_vocab_id(v, tmp->p, tmp->len);
}

static int push_sym(tk_bpe_work *w, size_t *ns, int32_t id, uint32_t len)
{
    if (grow((void **)&w->syms, &w->syms_cap, *ns + 1, sizeof *w->syms) < 0) return -1;
    w->syms[*ns] = (sym){id, (int32_t)*ns - 1, (int32_t)*ns + 1, len};
    (*ns)++;
    return 0;
}

/* HF's BPE::merge_word, the characters' part: symbols for each character. */
static int initial_symbols(const tk_bpe *m, const tk_vocab *v, const char *wd, size_t n, tk_bpe_work *w, size_t *ns)
{
    int32_t unk = -1;
    uint32_t unk_len = 0;
    *ns = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t cl = qfmt__tk_utf8_next(wd + i, n - i, &cp); /* an invalid byte: a one-byte character */
        bool first = i == 0, last = i + cl == n;
        int32_t id = char_token(m, v, wd + i, cl, cp, first, last, &w->tmp);
        if (id == -2) return -1;
        if (id >= 0) {
            if (unk >= 0 && push_sym(w, ns, unk, unk_len) < 0) return -1;
            unk = -1;
            if (push_sym(w, ns, id, (uint32_t)cl) < 0) return -1;
        } else {
            bool done = false;
            if (m->byte_fallback) { /* every byte of the looked-up string (prefix/suffix included) */
                const char *s = wd + i;
                size_t sl = cl;
                if ((!first && m->prefix) || (last && m->suffix)) s = w->tmp.p, sl = w->tmp.len;
                bool all = true;
                for (size_t k = 0; k < sl && all; k++) all = m->byte_tok[(unsigned char)s[k]] >= 0;
                if (all) {
                    for (size_t k = 0; k < sl; k++)
                        if (push_sym(w, ns, m->byte_tok[(unsigned char)s[k]], 1) < 0) return -1;
                    done = true; /* HF continues here: a pending unk stays pending */
                }
            }
            if (!done && m->unk_id >= 0) {
                if (unk >= 0 && m->fuse_unk) {
                    unk_len += (uint32_t)cl;
                } else {
                    if (unk >= 0 && push_sym(w, ns, unk, unk_len) < 0) return -1;
                    unk = m->unk_id, unk_len = (uint32_t)cl;
                }
            } /* no unk_token: the character is dropped, as HF drops it */
        }
        i += cl;
    }
    if (unk >= 0 && push_sym(w, ns, unk, unk_len) < 0) return -1;
    return 0;
}

int qfmt__tk_bpe_encode(const tk_bpe *m, const tk_vocab *v, const char *wd, size_t n, tk_bpe_work **work, tk_ids *out,
                  qfmt_error *err)
{
    if (n == 0) return 0;
    if (n > (size_t)INT32_MAX / 4) return qfmt__tk_fail(err, QFMT_E_RANGE, "a word of %zu bytes is too long", n);
    if (m->ignore_merges) {
        int32_t id = qfmt__tk_vocab_id(v, wd, n);
        if (id >= 0) return qfmt__tk_ids_push(out, id) < 0 ? TK_OOM(err) : 0;
    }
    if (!*work && !(*work = calloc(1, sizeof **work))) return TK_OOM(err);
    tk_bpe_work *w = *work;
    size_t ns;
    if (initial_symbols(m, v, wd, n, w, &ns) < 0) return TK_OOM(err);
    if (ns == 0) return 0;
    sym *s = w->syms;
    s[ns - 1].next = -1;
    w->heap_n = 0;
    uint32_t rank;
    int32_t nid;
    for (size_t i = 0; i + 1 < ns; i++)
        if (merge_get(m, s[i].c, s[i + 1].c, &rank, &nid) && heap_push(w, rank, (int32_t)i, nid) < 0)
            return TK_OOM(err);
    while (w->heap_n) {
        cand top = heap_pop(w);
        sym *cur = &s[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        int32_t nx = cur->next;
        if (!merge_get(m, cur->c, s[nx].c, &rank, &nid) || nid != top.new_id) continue; /* stale */
        cur->c = top.new_id;
        cur->len += s[nx].len;
        cur->next = s[nx].next;
        s[nx].len = 0;
        if (cur->next >= 0) s[cur->next].prev = top.pos;
        if (cur->prev >= 0 && merge_get(m, s[cur->prev].c, cur->c, &rank, &nid) &&
            heap_push(w, rank, cur->prev, nid) < 0)
            return TK_OOM(err);
        if (cur->next >= 0 && merge_get(m, cur->c, s[cur->next].c, &rank, &nid) &&
            heap_push(w, rank, top.pos, nid) < 0)
            return TK_OOM(err);
    }
    for (size_t i = 0; i < ns; i++)
        if (s[i].len && qfmt__tk_ids_push(out, s[i].c) < 0) return TK_OOM(err);
    return 0;
}
