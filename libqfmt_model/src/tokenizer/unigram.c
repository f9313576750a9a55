/* unigram.c - the Unigram model (tk_internal.h), as Hugging Face tokenizers' models/unigram
 * encodes a word (Unigram::encode_optimized, then Unigram::tokenize):
 *   - Viterbi over byte positions: from each char boundary, in increasing order, every vocab
 *     piece that is a prefix of the rest (shortest first) offers best[start] + score to
 *     best[start + len]; a char that no single-char piece covers also offers the unk with
 *     min_score - 10. A candidate replaces the best only when strictly greater, so ties keep
 *     the earliest start, then the shortest piece, then pieces before the unk;
 *   - on the best path, consecutive nodes whose id is unk_id are fused into one string; each
 *     string is looked up in the vocab again (a fused run may itself be a piece), else with
 *     byte_fallback its bytes become <0xXX> pieces when all of them exist, else the unk.
 * A word with a char no piece covers and no unk_id fails, as HF's MissingUnkId does. Scores
 * are the doubles HF's JSON parser gives, which are not always cJSON's (serde_json_f64).
 *
 * Pieces are found with a byte trie (children contiguous and sorted, binary-searched), so a
 * word costs O(length x longest piece) trie steps. Chars are code points as qfmt__tk_utf8_next
 * decodes them: each invalid byte is one char. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_internal.h"

#define UNK_PENALTY 10.0 /* HF's K_UNK_PENALTY */
#define NO_START SIZE_MAX

typedef struct {
    uint32_t child;  /* index of the first child; children are contiguous, sorted by byte */
    uint16_t nchild; /* 0..256 */
    uint8_t byte;    /* the edge from the parent */
    int32_t id;      /* the piece ending here, or -1 */
} trie_node;

struct tk_unigram {
    double *score; /* by id */
    size_t count;
    double unk_score;
    int32_t unk_id; /* -1: none */
    bool byte_fallback;
    int32_t byte_id[256]; /* id of "<0xXX>", or -1 */
    trie_node *trie;      /* node 0 is the root */
    size_t nodes;
};

typedef struct { /* a vocab entry while loading: its bytes (in the cJSON tree) and id */
    const char *s;
    size_t len;
    int32_t id;
} piece;

/* ---- Loading: scores as HF reads them ------------------------------------------------------
 * HF parses tokenizer.json with serde_json without its float_roundtrip feature: a decimal
 * becomes (double)significand, then one multiplication or division by 10^|exponent| (divisions
 * by 1e308 first past the table). With 17 digits the significand exceeds 2^53, so this rounds
 * twice and differs from the correctly rounded value (strtod, cJSON) by one ulp for about one
 * score in five (float32 values printed in full, as in every converted SentencePiece model),
 * which decides exact ties in the Viterbi sums. The text is gone once cJSON has parsed it, but
 * files written by tokenizers (serde_json: ryu) or Python (repr) hold the shortest round-trip
 * digits of the value, and those are recovered from the double. */
typedef struct {
    double pow10[309]; /* serde_json's POW10: 1e0 .. 1e308, each correctly rounded */
} serde_tables;

static void serde_tables_init(serde_tables *t)
{
    for (int k = 0; k <= 308; k++) {
        char b[8];
        snprintf(b, sizeof b, "1e%d", k);
        t->pow10[k] = strtod(b, NULL);
    }
}

/* The shortest decimal that reads back as a > 0: digits as an integer *sig (no trailing zeros)
 * and *exp10, a = sig * 10^exp10. 15 significant digits always read back exactly (DBL_DIG), so
 * a shortest form of up to 15 digits is the 15-digit rounding stripped of its zeros; beyond,
 * the correctly rounded 16- or 17-digit form is the closest, which is what ryu and repr write. */
static void shortest_decimal(double a, uint64_t *sig, int *exp10)
{
    char buf[40];
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, a);
        if (p == 17 || strtod(buf, NULL) == a) break;
    }
    uint64_t d = 0;
    int nd = 0;
    const char *c = buf;
    for (; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9') d = d * 10 + (uint64_t)(*c - '0'), nd++;
    int e = *c == 'e' ? atoi(c + 1) - (nd - 1) : 0;
    while (d != 0 && d % 10 == 0) d /= 10, e++;
    *sig = d;
    *exp10 = e;
}

/* The score HF has for the JSON number that cJSON read as d (finite); not finite: serde_json
 * would have refused the number as out of range. */
static double serde_json_f64(double d, const serde_tables *t)
{
    if (d == 0) return d;
    uint64_t sig;
    int e;
    shortest_decimal(fabs(d), &sig, &e);
    double f = (double)sig;
    if (e >= 0) {
        f = e <= 308 ? f * t->pow10[e] : INFINITY;
    } else {
        while (e < -308 && f != 0) f /= 1e308, e += 308;
        if (e >= -308) f /= t->pow10[-e];
    }
    return d < 0 ? -f : f;
}

/* ---- Loading: the vocab ------------------------------------------------------------------ */
/* Checks model.vocab[i] = [string, finite number] and that the built vocab gives the string
 * id i (the tokenizer built it from this list; a mismatch would make ids meaningless). */
static int read_entry(const cJSON *e, size_t i, const tk_vocab *v, const serde_tables *t, piece *p, double *score,
                      qfmt_error *err)
{
    const cJSON *s = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, 0) : NULL;
    const cJSON *x = s ? s->next : NULL;
    if (!cJSON_IsString(s) || !s->valuestring || !cJSON_IsNumber(x) || x->next)
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab[%zu] is not a [string, number] pair", i);
    double hf = isfinite(x->valuedouble) ? serde_json_f64(x->valuedouble, t) : INFINITY;
    if (!isfinite(hf)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab[%zu]: the score is out of range", i);
    p->s = s->valuestring;
    p->len = strlen(s->valuestring); /* the JSON policy refused NUL in strings */
    p->id = (int32_t)i;
    if (qfmt__tk_vocab_id(v, p->s, p->len) != p->id)
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab[%zu] does not match the vocabulary built from it", i);
    *score = hf;
    return 0;
}

/* Fills m->score / m->count and the pieces (all of them; empty ones are skipped by the trie). */
static int read_vocab(const cJSON *model, const tk_vocab *v, tk_unigram *m, piece **pieces, qfmt_error *err)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsArray(vocab)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab is not an array");
    size_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) n++;
    if (n == 0) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab is empty");
    if (n > TK_MAX_IDS) return qfmt__tk_fail(err, QFMT_E_RANGE, "model.vocab has more than %u entries", TK_MAX_IDS);
    m->score = malloc(n * sizeof *m->score);
    *pieces = malloc(n * sizeof **pieces);
    if (!m->score || !*pieces) return TK_OOM(err);
    m->count = n;
    serde_tables t;
    serde_tables_init(&t);
    size_t i = 0;
    cJSON_ArrayForEach(e, vocab)
    {
        if (read_entry(e, i, v, &t, &(*pieces)[i], &m->score[i], err) < 0) return -1;
        i++;
    }
    return 0;
}

static int read_options(const cJSON *model, tk_unigram *m, qfmt_error *err)
{
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_id");
    uint64_t unk_id = 0;
    if (qfmt__tk_json_uint(model, "unk_id", 0, m->count - 1, &unk_id, "model", err) < 0) return -1;
    m->unk_id = unk == NULL || cJSON_IsNull(unk) ? -1 : (int32_t)unk_id;
    if (qfmt__tk_json_bool(model, "byte_fallback", false, &m->byte_fallback, "model", err) < 0) return -1;

    double min = INFINITY;
    for (size_t i = 0; i < m->count; i++)
        if (m->score[i] < min) min = m->score[i];
    m->unk_score = min - UNK_PENALTY;
    return 0;
}

static void find_byte_pieces(const tk_vocab *v, tk_unigram *m)
{
    for (unsigned b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b); /* HF's spelling: upper-case hex */
        m->byte_id[b] = qfmt__tk_vocab_id(v, name, 6);
    }
}

/* ---- Loading: the trie ------------------------------------------------------------------- */
static int piece_cmp(const void *a, const void *b)
{
    const piece *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->s, y->s, n) : 0;
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* What building needs per node beyond trie_node: its range of sorted pieces and its depth. */
typedef struct {
    size_t lo, hi, depth;
} build_range;

typedef struct {
    trie_node *node;
    build_range *range;
    size_t n, cap;
} trie_build;

static int add_node(trie_build *b, uint8_t byte, size_t lo, size_t hi, size_t depth)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 1024;
        if (cap > UINT32_MAX) return -1; /* child indices are 32-bit */
        trie_node *nd = realloc(b->node, cap * sizeof *nd);
        if (!nd) return -1;
        b->node = nd;
        build_range *r = realloc(b->range, cap * sizeof *r);
        if (!r) return -1;
        b->range = r;
        b->cap = cap;
    }
    b->node[b->n] = (trie_node){0, 0, byte, -1};
    b->range[b->n] = (build_range){lo, hi, depth};
    b->n++;
    return 0;
}

/* Expands node k: the piece that ends at its depth (sorted first in its range, at most one:
 * pieces are unique), then one child per distinct next byte, appended contiguously. */
static int expand(trie_build *b, size_t k, const piece *p)
{
    build_range r = b->range[k];
    if (r.lo < r.hi && p[r.lo].len == r.depth) b->node[k].id = p[r.lo++].id;
    size_t first = b->n;
    for (size_t i = r.lo; i < r.hi;) {
        uint8_t c = (uint8_t)p[i].s[r.depth];
        size_t j = i + 1;
        while (j < r.hi && (uint8_t)p[j].s[r.depth] == c) j++;
        if (add_node(b, c, i, j, r.depth + 1) < 0) return -1;
        i = j;
    }
    b->node[k].child = (uint32_t)first;
    b->node[k].nchild = (uint16_t)(b->n - first);
    return 0;
}

/* Builds the trie breadth first over the pieces sorted by bytes (so each node's children are
 * one sorted run) without recursion: a piece may be as long as the JSON allows. */
static int build_trie(tk_unigram *m, piece *p, size_t n, qfmt_error *err)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i].len) p[k++] = p[i]; /* HF's trie never reports an empty piece */
    qsort(p, k, sizeof *p, piece_cmp);
    trie_build b = {0};
    int rc = add_node(&b, 0, 0, k, 0);
    for (size_t i = 0; rc == 0 && i < b.n; i++) rc = expand(&b, i, p);
    free(b.range);
    if (rc < 0) {
        free(b.node);
        return TK_OOM(err);
    }
    m->trie = b.node;
    m->nodes = b.n;
    return 0;
}

int qfmt__tk_unigram_load(const cJSON *model, const tk_vocab *v, tk_unigram **out, qfmt_error *err)
{
    *out = NULL;
    tk_unigram *m = calloc(1, sizeof *m);
    if (!m) return TK_OOM(err);
    piece *pieces = NULL;
    if (read_vocab(model, v, m, &pieces, err) < 0 || read_options(model, m, err) < 0 ||
        build_trie(m, pieces, m->count, err) < 0) {
        free(pieces);
        qfmt__tk_unigram_free(m);
        return -1;
    }
    free(pieces);
    find_byte_pieces(v, m);
    *out = m;
    return 0;
}

void qfmt__tk_unigram_free(tk_unigram *m)
{
    if (!m) return;
    free(m->score);
    free(m->trie);
    free(m);
}

/* ---- Encoding ---------------------------------------------------------------------------- */
typedef struct {
    double score; /* of the best path ending here */
    size_t start; /* where its last piece starts; NO_START: no path yet */
    int32_t id;   /* its last piece */
} best_node;

static const trie_node *trie_child(const tk_unigram *m, const trie_node *nd, uint8_t c)
{
    size_t lo = nd->child, hi = lo + nd->nchild;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->trie[mid].byte < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < (size_t)nd->child + nd->nchild && m->trie[lo].byte == c ? &m->trie[lo] : NULL;
}

/* HF keeps the first candidate and replaces it only with a strictly better one. */
static void offer(best_node *to, double score, size_t start, int32_t id)
{
    if (to->start == NO_START || score > to->score) *to = (best_node){score, start, id};
}

/* Offers every piece starting at `s` (and the unk when no single-char piece covers the char of
 * mblen bytes there). Returns 0, or 1 when the unk was needed and there is none. */
static int offer_from(const tk_unigram *m, const char *w, size_t n, size_t s, size_t mblen, best_node *best)
{
    double here = best[s].score;
    bool single = false;
    const trie_node *nd = m->trie;
    for (size_t i = s; i < n && (nd = trie_child(m, nd, (uint8_t)w[i])) != NULL; i++) {
        if (nd->id < 0) continue;
        offer(&best[i + 1], m->score[nd->id] + here, s, nd->id);
        if (i + 1 - s == mblen) single = true;
    }
    if (single) return 0;
    best_node *to = &best[s + mblen];
    if (to->start == NO_START || m->unk_score + here > to->score) {
        if (m->unk_id < 0) return 1;
        *to = (best_node){m->unk_score + here, s, m->unk_id};
    }
    return 0;
}

/* Emits a run of fused unk nodes, w[a..b): the run itself if it is a piece, else its bytes
 * with byte_fallback when every one has a piece, else the unk. */
static int emit_unk_run(const tk_unigram *m, const tk_vocab *v, const char *w, size_t a, size_t b, tk_ids *out)
{
    int32_t id = qfmt__tk_vocab_id(v, w + a, b - a);
    if (id >= 0) return qfmt__tk_ids_push(out, id);
    if (m->byte_fallback) {
        size_t i = a;
        while (i < b && m->byte_id[(uint8_t)w[i]] >= 0) i++;
        if (i == b) {
            for (i = a; i < b; i++)
                if (qfmt__tk_ids_push(out, m->byte_id[(uint8_t)w[i]]) < 0) return -1;
            return 0;
        }
    }
    return qfmt__tk_ids_push(out, m->unk_id);
}

/* Walks the best path back from n into path[] (its node ends, last first), then emits it
 * forward, fusing consecutive unk nodes. Returns 0 or -1 (out of memory). */
static int emit_path(const tk_unigram *m, const tk_vocab *v, const char *w, size_t n, const best_node *best,
                     size_t *path, tk_ids *out)
{
    size_t k = 0;
    /* every char boundary has a path (a piece or the unk reaches the next one), and starts
     * only decrease; the check keeps a broken invariant from looping */
    for (size_t e = n; e > 0 && best[e].start < e; e = best[e].start) path[k++] = e;
    size_t run = NO_START; /* start of the pending unk run */
    while (k > 0) {
        size_t e = path[--k], s = best[e].start;
        if (m->unk_id >= 0 && best[e].id == m->unk_id) {
            if (run == NO_START) run = s;
            continue;
        }
        if (run != NO_START && emit_unk_run(m, v, w, run, s, out) < 0) return -1;
        run = NO_START;
        if (qfmt__tk_ids_push(out, best[e].id) < 0) return -1;
    }
    return run != NO_START ? emit_unk_run(m, v, w, run, n, out) : 0;
}

int qfmt__tk_unigram_encode(const tk_unigram *m, const tk_vocab *v, const char *w, size_t n, tk_ids *out, qfmt_error *err)
{
    if (n == 0) return 0;
    if (n >= SIZE_MAX / (sizeof(best_node) + sizeof(size_t)) - 1) return TK_OOM(err);
    best_node *best = malloc((n + 1) * sizeof *best);
    size_t *path = malloc((n + 1) * sizeof *path);
    if (!best || !path) {
        free(best);
        free(path);
        return TK_OOM(err);
    }
    for (size_t i = 0; i <= n; i++) best[i] = (best_node){0.0, NO_START, 0};

    int rc = 0;
    uint32_t cp;
    for (size_t s = 0, mblen; s < n; s += mblen) {
        mblen = qfmt__tk_utf8_next(w + s, n - s, &cp);
        if (offer_from(m, w, n, s, mblen, best)) {
            rc = qfmt__tk_fail(err, QFMT_E_NOT_FOUND, "Unigram: a character has no piece and model.unk_id is null");
            break;
        }
    }
    if (rc == 0 && emit_path(m, v, w, n, best, path, out) < 0) rc = TK_OOM(err);
    free(best);
    free(path);
    return rc;
}
