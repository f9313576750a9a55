/*
 * tokenizer.c - the tokenizer of tokenizer.json, as Hugging Face `tokenizers` runs it (see
 * tk_internal.h for the pipeline and its parts). This file holds the vocabulary and the added
 * tokens, loads the parts, runs the pipeline and answers the public calls (qfmt_model.h).
 *
 * Layout of a loaded tokenizer (immutable after load, so concurrent calls are safe):
 *   - tok[id]: every id's string (model vocab or added token content) and the bytes it
 *     decodes to on its own (for streaming), flags (model, added, special);
 *   - vocab: the model's string -> id table (tk_vocab), all: every string -> id as HF's
 *     token_to_id answers (added tokens first);
 *   - two byte tries of added tokens (normalized=false first, normalized=true second);
 *   - the parts: normalizer, pre-tokenizer, model (BPE / WordPiece / WordLevel / Unigram),
 *     post-processor, decoder; any may be absent but the model.
 * Encoding state (ids, scratch) lives in a per-call context.
 */
#define _POSIX_C_SOURCE 200809L

#include "qfmt_model.h"
#include "tk_internal.h"
#include "model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rust regex's Unicode \w (HF's single_word test for added tokens). */
static const char WORD_PCRE2[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]";

typedef struct {
    uint32_t off, len;         /* token string in the arena */
    uint32_t dec_off, dec_len; /* what it decodes to on its own */
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

typedef enum { MODEL_BPE, MODEL_WORDPIECE, MODEL_WORDLEVEL, MODEL_UNIGRAM } model_kind;

struct qfmt_tokenizer {
    tk_str arena;
    tok_entry *tok;
    uint32_t vocab_size; /* max id + 1 */
    tk_vocab *vocab;     /* the model's */
    tk_vocab *all;       /* token_to_id: added tokens, then the model's */
    model_kind kind;
    tk_bpe *bpe;
    tk_wordpiece *wp;
    tk_unigram *ug;
    int32_t wl_unk; /* WordLevel's unk id, -1 none */
    tk_normalizer *norm;
    tk_pre_tokenizer *pre;
    tk_post_processor *post;
    tk_decoder *dec;
    pcre2_code *word_re; /* only when some added token is single_word */
    added_tok *added;
    size_t nadded;
    trie trie_raw, trie_norm;
};

/* ---- Added-token tries ----------------------------------------------------------------- */

static int trie_init(trie *tr)
{
    tr->cap = 16;
    if (!(tr->nodes = malloc(tr->cap * sizeof *tr->nodes))) return -1;
    tr->n = 1;
    tr->nodes[0] = (trie_node){.child = -1, .sibling = -1, .added = -1, .byte = 0};
    memset(tr->first, 0, sizeof tr->first);
    tr->ntokens = 0;
    return 0;
}

/* Returns 0, -1 out of memory, 1 when s[0..n) is empty or already in the trie (HF's
 * daachorse builder refuses both, so HF cannot load such a file either). */
static int trie_add(trie *tr, const unsigned char *s, size_t n, int32_t added_index)
{
    if (n == 0) return 1;
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
            tr->nodes[c] = (trie_node){.child = -1, .sibling = tr->nodes[node].child, .added = -1, .byte = s[i]};
            tr->nodes[node].child = c;
        }
        node = c;
    }
    if (tr->nodes[node].added >= 0) return 1;
    tr->nodes[node].added = added_index;
    tr->first[s[0] >> 3] |= (uint8_t)(1u << (s[0] & 7));
    tr->ntokens++;
    return 0;
}

/* Longest added token starting at s[0]: its index in t->added and length, or -1. */
static int32_t trie_longest(const trie *tr, const unsigned char *s, size_t n, size_t *mlen)
{
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

/* ---- Free ------------------------------------------------------------------------------- */

void qfmt_tokenizer_free(qfmt_tokenizer *t)
{
    if (!t) return;
    qfmt__tk_str_free(&t->arena);
    free(t->tok);
    qfmt__tk_vocab_free(t->vocab);
    qfmt__tk_vocab_free(t->all);
    qfmt__tk_bpe_free(t->bpe);
    qfmt__tk_wordpiece_free(t->wp);
    qfmt__tk_unigram_free(t->ug);
    qfmt__tk_normalizer_free(t->norm);
    qfmt__tk_pre_tokenizer_free(t->pre);
    qfmt__tk_post_processor_free(t->post);
    qfmt__tk_decoder_free(t->dec);
    free(t->added);
    free(t->trie_raw.nodes);
    free(t->trie_norm.nodes);
    if (t->word_re) pcre2_code_free(t->word_re);
    free(t);
}

/* ---- Loading: vocabulary and added tokens ------------------------------------------------ */

static bool absent(const cJSON *x) { return x == NULL || cJSON_IsNull(x); }

static int json_id(const cJSON *x, int32_t *out)
{
    if (!cJSON_IsNumber(x)) return -1;
    double d = x->valuedouble;
    if (!(d >= 0 && d < (double)TK_MAX_IDS) || d != (double)(int32_t)d) return -1;
    *out = (int32_t)d;
    return 0;
}

static int shown(const char *s, char *buf, size_t cap)
{
    size_t n = strlen(s);
    qfmt_escape(s, n < 64 ? n : 64, buf, cap);
    return 0;
}

static int arena_add(qfmt_tokenizer *t, const char *s, size_t n, uint32_t *off)
{
    if (t->arena.len > UINT32_MAX - n - 1) return -1;
    *off = (uint32_t)t->arena.len;
    return qfmt__tk_str_put(&t->arena, s, n);
}

/* The model vocab: {"token": id} (BPE, WordPiece, WordLevel) or [[piece, score], ...]
 * (Unigram, id = index). Fills t->vocab; *count, *max_id. */
static int load_model_vocab(qfmt_tokenizer *t, const cJSON *vocab, size_t *count, int32_t *max_id, qfmt_error *err)
{
    *count = 0;
    *max_id = -1;
    if (!(t->vocab = qfmt__tk_vocab_new())) return TK_OOM(err);
    char b[100];
    if (t->kind == MODEL_UNIGRAM) {
        if (!cJSON_IsArray(vocab)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab is not an array of [piece, score]");
        int32_t id = 0;
        for (const cJSON *e = vocab->child; e; e = e->next, id++) {
            if (id >= (int32_t)TK_MAX_IDS) return qfmt__tk_fail(err, QFMT_E_RANGE, "model.vocab has more than 2^24 pieces");
            if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(e->child) ||
                !cJSON_IsNumber(e->child->next))
                return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab[%d] is not [piece, score]", (int)id);
            const char *s = e->child->valuestring;
            int r = qfmt__tk_vocab_add(t->vocab, s, strlen(s), id);
            if (r < 0) return TK_OOM(err);
            if (r > 0) return shown(s, b, sizeof b), qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab: piece '%s' appears twice", b);
        }
        *count = (size_t)id;
        *max_id = id - 1;
    } else {
        if (!cJSON_IsObject(vocab)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab is not an object {token: id}");
        for (const cJSON *e = vocab->child; e; e = e->next) {
            int32_t id;
            if (!e->string || json_id(e, &id) < 0)
                return shown(e->string ? e->string : "", b, sizeof b),
                       qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab['%s'] is not an integer id in 0..2^24-1", b);
            int r = qfmt__tk_vocab_add(t->vocab, e->string, strlen(e->string), id);
            if (r < 0) return TK_OOM(err);
            if (r > 0) return shown(e->string, b, sizeof b), qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab: id %d is used twice ('%s')", (int)id, b);
            if (id > *max_id) *max_id = id;
            (*count)++;
        }
    }
    if (*count == 0) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab is empty");
    return 0;
}

static int count_added(const cJSON *added, int32_t *max_id, size_t *na, qfmt_error *err)
{
    *na = 0;
    if (absent(added)) return 0;
    if (!cJSON_IsArray(added)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "added_tokens is not an array");
    for (const cJSON *c = added->child; c; c = c->next, (*na)++) {
        int32_t id;
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(c, "content");
        if (!cJSON_IsObject(c) || json_id(cJSON_GetObjectItemCaseSensitive(c, "id"), &id) < 0 ||
            !cJSON_IsString(content) || !content->valuestring[0])
            return qfmt__tk_fail(err, QFMT_E_CORRUPT,
                           "added_tokens[%zu] needs an integer id in 0..2^24-1 and a non-empty string content", *na);
        if (id > *max_id) *max_id = id;
    }
    return 0;
}

/* tok[id] for the model vocab. */
static int fill_model_entries(qfmt_tokenizer *t, qfmt_error *err)
{
    for (uint32_t id = 0; id < t->vocab_size; id++) {
        size_t n;
        const char *s = qfmt__tk_vocab_string(t->vocab, (int32_t)id, &n);
        if (!s) continue;
        tok_entry *e = &t->tok[id];
        if (arena_add(t, s, n, &e->off) < 0) return TK_OOM(err);
        e->len = (uint32_t)n;
        e->used = e->in_model = 1;
    }
    return 0;
}

/* Added tokens. HF re-derives their ids (AddedVocabulary::add_tokens, all of the file's
 * tokens in one call): the model's id when the content is in the vocab, else next_id, which
 * starts at the model's vocab size (its count of strings) and grows by one per such token.
 * Files whose ids disagree with that are refused rather than guessed at (HF warns and uses
 * its own id); so are duplicate contents (HF keeps the later token's flags) and a new id
 * that is also a model id (HF would shadow the model's string), and empty contents (HF
 * ignores such a token, its id included; count_added refuses it). */
static int load_added(qfmt_tokenizer *t, const cJSON *added, size_t nv, size_t na, qfmt_error *err)
{
    if (!(t->added = calloc(na ? na : 1, sizeof *t->added))) return TK_OOM(err);
    int64_t next_id = (int64_t)nv;
    char b[100];
    size_t index = 0;
    for (const cJSON *c = absent(added) ? NULL : added->child; c; c = c->next, index++) {
        int32_t id = 0;
        (void)json_id(cJSON_GetObjectItemCaseSensitive(c, "id"), &id);
        const char *content = cJSON_GetObjectItemCaseSensitive(c, "content")->valuestring;
        size_t clen = strlen(content);
        added_tok *a = &t->added[t->nadded];
        a->id = id;
        shown(content, b, sizeof b);
        char where[160];
        snprintf(where, sizeof where, "added_tokens[%zu]", index);
        if (qfmt__tk_json_bool(c, "single_word", false, &a->single_word, where, err) < 0 ||
            qfmt__tk_json_bool(c, "lstrip", false, &a->lstrip, where, err) < 0 ||
            qfmt__tk_json_bool(c, "rstrip", false, &a->rstrip, where, err) < 0 ||
            qfmt__tk_json_bool(c, "normalized", true, &a->normalized, where, err) < 0 ||
            qfmt__tk_json_bool(c, "special", false, &a->special, where, err) < 0)
            return -1;
        int32_t existing = qfmt__tk_vocab_id(t->vocab, content, clen);
        if (qfmt__tk_vocab_id(t->all, content, clen) >= 0)
            return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s: added token '%s' appears twice", where, b);
        int64_t expect = existing >= 0 ? existing : next_id++;
        if (expect != id)
            return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s: added token '%s' has id %d but Hugging Face would give it id %lld",
                           where, b, (int)id, (long long)expect);
        tok_entry *e = &t->tok[id];
        if (existing < 0) {
            if (e->used) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s: id %d is used twice", where, (int)id);
            if (arena_add(t, content, clen, &e->off) < 0) return TK_OOM(err);
            e->len = (uint32_t)clen;
            e->used = 1;
        }
        if (qfmt__tk_vocab_add(t->all, content, clen, id) < 0) return TK_OOM(err);
        e->added = 1;
        e->special = a->special;
        a->off = e->off;
        a->len = e->len;
        t->nadded++;
    }
    /* the model's strings after the added ones: token_to_id answers the added token first */
    for (uint32_t id = 0; id < t->vocab_size; id++) {
        size_t n;
        const char *s = qfmt__tk_vocab_string(t->vocab, (int32_t)id, &n);
        if (s && qfmt__tk_vocab_add(t->all, s, n, (int32_t)id) < 0) return TK_OOM(err);
    }
    return 0;
}

static int build_tries(qfmt_tokenizer *t, qfmt_error *err)
{
    if (trie_init(&t->trie_raw) < 0 || trie_init(&t->trie_norm) < 0) return TK_OOM(err);
    bool need_word = false;
    tk_str nz = {0};
    for (size_t i = 0; i < t->nadded; i++) {
        const added_tok *a = &t->added[i];
        trie *tr = a->normalized ? &t->trie_norm : &t->trie_raw;
        const char *pat = t->arena.p + a->off;
        size_t plen = a->len;
        /* HF matches a normalized token by its content passed through the normalizer
         * (add_tokens' normalized_cache): "Hello" under Lowercase matches "hello" */
        if (a->normalized && t->norm) {
            if (qfmt__tk_normalize(t->norm, pat, plen, &nz, err) < 0) {
                qfmt__tk_str_free(&nz);
                return -1;
            }
            pat = nz.p ? nz.p : "", plen = nz.len;
        }
        int r = trie_add(tr, (const unsigned char *)pat, plen, (int32_t)i);
        if (r != 0) {
            char b[100];
            qfmt_escape(t->arena.p + a->off, a->len < 64 ? a->len : 64, b, sizeof b);
            qfmt__tk_str_free(&nz);
            if (r < 0) return TK_OOM(err);
            return qfmt__tk_fail(err, QFMT_E_CORRUPT,
                           "added token '%s': what it matches is empty or also another added token's (Hugging "
                           "Face cannot build its matcher either)", b);
        }
        need_word |= a->single_word;
    }
    qfmt__tk_str_free(&nz);
    if (need_word && !(t->word_re = qfmt__tk_regex_compile(WORD_PCRE2, strlen(WORD_PCRE2), "added_tokens", err))) return -1;
    return 0;
}

/* ---- Loading: the parts ------------------------------------------------------------------- */

static int load_model(qfmt_tokenizer *t, const cJSON *model, qfmt_error *err)
{
    switch (t->kind) {
    case MODEL_BPE: return qfmt__tk_bpe_load(model, t->vocab, &t->bpe, err);
    case MODEL_WORDPIECE: return qfmt__tk_wordpiece_load(model, t->vocab, &t->wp, err);
    case MODEL_UNIGRAM: return qfmt__tk_unigram_load(model, t->vocab, &t->ug, err);
    case MODEL_WORDLEVEL: {
        const char *unk;
        t->wl_unk = -1;
        if (qfmt__tk_json_string(model, "unk_token", NULL, &unk, NULL, "model", err) < 0) return -1;
        if (unk) t->wl_unk = qfmt__tk_vocab_id(t->vocab, unk, strlen(unk));
        return 0;
    }
    }
    return -1;
}

static int model_kind_of(const cJSON *model, model_kind *k, qfmt_error *err)
{
    const char *ty = qfmt__tk_json_type(model, "model", err);
    if (!ty) return -1;
    if (strcmp(ty, "BPE") == 0) *k = MODEL_BPE;
    else if (strcmp(ty, "WordPiece") == 0) *k = MODEL_WORDPIECE;
    else if (strcmp(ty, "WordLevel") == 0) *k = MODEL_WORDLEVEL;
    else if (strcmp(ty, "Unigram") == 0) *k = MODEL_UNIGRAM;
    else {
        char b[100];
        shown(ty, b, sizeof b);
        return qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "model: type '%s' is not supported", b);
    }
    return 0;
}

static int load_parts(qfmt_tokenizer *t, const cJSON *root, qfmt_error *err)
{
    const cJSON *x;
    if (!absent(x = cJSON_GetObjectItemCaseSensitive(root, "normalizer")) && qfmt__tk_normalizer_load(x, &t->norm, err) < 0)
        return -1;
    if (!absent(x = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")) &&
        qfmt__tk_pre_tokenizer_load(x, &t->pre, err) < 0)
        return -1;
    if (!absent(x = cJSON_GetObjectItemCaseSensitive(root, "post_processor")) &&
        qfmt__tk_post_processor_load(x, t->vocab_size, &t->post, err) < 0)
        return -1;
    if (!absent(x = cJSON_GetObjectItemCaseSensitive(root, "decoder")) && qfmt__tk_decoder_load(x, &t->dec, err) < 0)
        return -1;
    return 0;
}

/* What each token decodes to on its own (qfmt_tokenizer_token_bytes): the decoder run on the
 * one-token list. */
static int build_decoded(qfmt_tokenizer *t, qfmt_error *err)
{
    tk_list one = {0};
    tk_str out = {0};
    int rc = 0;
    for (uint32_t id = 0; id < t->vocab_size && rc == 0; id++) {
        tok_entry *e = &t->tok[id];
        if (!e->used) continue;
        qfmt__tk_list_clear(&one);
        out.len = 0;
        if (qfmt__tk_list_push(&one, t->arena.p + e->off, e->len) < 0) {
            rc = TK_OOM(err);
            break;
        }
        if (t->dec) {
            rc = qfmt__tk_decode(t->dec, &one, &out, err);
        } else if (qfmt__tk_str_put(&out, t->arena.p + e->off, e->len) < 0) {
            rc = TK_OOM(err);
        }
        if (rc == 0 && arena_add(t, out.p ? out.p : "", out.len, &e->dec_off) < 0) rc = TK_OOM(err);
        e->dec_len = (uint32_t)out.len;
    }
    qfmt__tk_list_free(&one);
    qfmt__tk_str_free(&out);
    return rc;
}

static int tokenizer_load(qfmt_tokenizer **out, const char *json, size_t len, qfmt_error *err)
{
    if (!out) return qfmt__merr(err, QFMT_E_ARG, NULL, NULL, "qfmt_tokenizer_load: no output pointer");
    *out = NULL;
    if (!json || len == 0) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "the text is empty");
    qfmt_error je; /* the one JSON policy (qfmt.h), the offset in the message */
    if (qfmt_json_check(json, len, 0, "tokenizer.json", &je) != QFMT_OK) {
        if (err) *err = je;
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "not valid JSON");
    qfmt_tokenizer *t = calloc(1, sizeof *t);
    int rc = -1;
    if (!t || !(t->all = qfmt__tk_vocab_new())) {
        TK_OOM(err);
        goto out;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(root)) {
        qfmt__tk_fail(err, QFMT_E_CORRUPT, "not a JSON object");
        goto out;
    }
    if (!cJSON_IsObject(model)) {
        qfmt__tk_fail(err, QFMT_E_CORRUPT, "no model object");
        goto out;
    }
    size_t nv, na;
    int32_t max_id;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (model_kind_of(model, &t->kind, err) < 0 ||
        load_model_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), &nv, &max_id, err) < 0 ||
        count_added(added, &max_id, &na, err) < 0)
        goto out;
    size_t vs = (size_t)max_id + 1;
    if (vs > 2 * (nv + na) + 1024) {
        qfmt__tk_fail(err, QFMT_E_CORRUPT, "token ids are too sparse (largest id %d for %zu tokens)", (int)max_id, nv + na);
        goto out;
    }
    t->vocab_size = (uint32_t)vs;
    if (!(t->tok = calloc(vs, sizeof *t->tok))) {
        TK_OOM(err);
        goto out;
    }
    if (fill_model_entries(t, err) < 0 || load_added(t, added, nv, na, err) < 0 || load_model(t, model, err) < 0 ||
        load_parts(t, root, err) < 0 || build_tries(t, err) < 0 || build_decoded(t, err) < 0)
        goto out;
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc == 0) *out = t;
    else qfmt_tokenizer_free(t);
    return rc;
}

/* ---- Encoding ------------------------------------------------------------------------------- */

typedef struct {
    const qfmt_tokenizer *t;
    tk_ids ids;
    tk_str norm;        /* a piece, normalized */
    tk_list words;      /* its words */
    tk_bpe_work *bpe;   /* BPE scratch */
    pcre2_match_data *md;
    qfmt_error *err;
} enc_ctx;

static int encode_word(enc_ctx *cx, const char *w, size_t n)
{
    const qfmt_tokenizer *t = cx->t;
    switch (t->kind) {
    case MODEL_BPE: return qfmt__tk_bpe_encode(t->bpe, t->vocab, w, n, &cx->bpe, &cx->ids, cx->err);
    case MODEL_WORDPIECE: return qfmt__tk_wordpiece_encode(t->wp, t->vocab, w, n, &cx->ids, cx->err);
    case MODEL_UNIGRAM: return qfmt__tk_unigram_encode(t->ug, t->vocab, w, n, &cx->ids, cx->err);
    case MODEL_WORDLEVEL: {
        int32_t id = qfmt__tk_vocab_id(t->vocab, w, n);
        if (id < 0) id = t->wl_unk;
        if (id < 0) return qfmt__tk_fail(cx->err, QFMT_E_RANGE, "WordLevel: a word is not in the vocab and there is no unk_token");
        return qfmt__tk_ids_push(&cx->ids, id) < 0 ? TK_OOM(cx->err) : 0;
    }
    }
    return -1;
}

/* A normalized piece without added tokens: pre-tokenizer, then the model per word. */
static int encode_piece(enc_ctx *cx, const char *s, size_t n, bool first)
{
    const qfmt_tokenizer *t = cx->t;
    if (n == 0) return 0;
    if (!t->pre) return encode_word(cx, s, n);
    qfmt__tk_list_clear(&cx->words);
    if (qfmt__tk_pre_tokenize(t->pre, s, n, first, &cx->words, cx->err) < 0) return -1;
    /* the words live in cx->words until the next piece: encode them all now */
    for (size_t i = 0; i < cx->words.n; i++) {
        size_t wl;
        const char *w = tk_list_at(&cx->words, i, &wl);
        if (wl && encode_word(cx, w, wl) < 0) return -1;
    }
    return 0;
}

static bool is_word_char(const enc_ctx *cx, const unsigned char *c, size_t l)
{
    return pcre2_match(cx->t->word_re, (PCRE2_SPTR)c, l, 0, PCRE2_ANCHORED, cx->md, NULL) >= 0;
}

static size_t utf8_before(const unsigned char *s, size_t end, uint32_t *cp)
{
    for (size_t back = 1; back <= 4 && back <= end; back++)
        if ((s[end - back] & 0xC0) != 0x80) {
            size_t l = qfmt__tk_utf8_next((const char *)s + end - back, back, cp);
            return l == back ? l : 0;
        }
    return 0;
}

static int next_stage(enc_ctx *cx, int level, const char *text, size_t len, bool first);

/* HF AddedVocabulary::find_matches over one segment with one trie (leftmost-longest); the
 * pieces between matches go to the next stage. `first`: the segment starts at offset 0 of the
 * original text. */
static int split_added(enc_ctx *cx, int level, const char *text, size_t len, bool first)
{
    const qfmt_tokenizer *t = cx->t;
    const trie *tr = level == 0 ? &t->trie_raw : &t->trie_norm;
    if (tr->ntokens == 0 || len == 0) return next_stage(cx, level, text, len, first);
    const unsigned char *s = (const unsigned char *)text;
    size_t start_offset = 0, pos = 0;
    while (pos < len) {
        size_t i, mlen = 0;
        int32_t ai = -1;
        for (i = pos; i < len; i++) {
            if (!(tr->first[s[i] >> 3] & (1u << (s[i] & 7)))) continue;
            if ((ai = trie_longest(tr, s + i, len - i, &mlen)) >= 0) break;
        }
        if (ai < 0) break;
        const added_tok *a = &t->added[ai];
        size_t start = i, stop = i + mlen;
        pos = stop; /* matching resumes after the match, whatever the flags do */
        uint32_t cp;
        size_t l;
        if (a->single_word) {
            bool start_space = true, stop_space = true;
            if (start > 0 && (l = utf8_before(s, start, &cp)) > 0) start_space = !is_word_char(cx, s + start - l, l);
            if (stop < len) {
                l = qfmt__tk_utf8_next(text + stop, len - stop, &cp);
                stop_space = !is_word_char(cx, s + stop, l);
            }
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0 && (l = utf8_before(s, ns, &cp)) > 0 && qfmt__tk_is_whitespace(cp)) ns -= l;
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip)
            while (stop < len && (l = qfmt__tk_utf8_next(text + stop, len - stop, &cp)) > 0 && qfmt__tk_is_whitespace(cp) &&
                   cp != 0xFFFD)
                stop += l;
        if (start_offset < start &&
            next_stage(cx, level, text + start_offset, start - start_offset, first && start_offset == 0) < 0)
            return -1;
        if (qfmt__tk_ids_push(&cx->ids, a->id) < 0) return TK_OOM(cx->err);
        /* as HF: even when an earlier rstrip ran past this match (start_offset moves back,
         * and the text from here on is encoded again) */
        start_offset = stop;
    }
    if (start_offset < len) return next_stage(cx, level, text + start_offset, len - start_offset, first && start_offset == 0);
    return 0;
}

/* After the raw tokens: normalize the piece, then split on the normalized tokens; after
 * those: pre-tokenize and encode. */
static int next_stage(enc_ctx *cx, int level, const char *text, size_t len, bool first)
{
    const qfmt_tokenizer *t = cx->t;
    if (level > 0) return encode_piece(cx, text, len, first);
    if (len == 0) return 0;
    if (!t->norm) return split_added(cx, 1, text, len, first);
    tk_str norm = {0}; /* its own buffer: encode_piece reuses the context's */
    int rc = qfmt__tk_normalize(t->norm, text, len, &norm, cx->err);
    if (rc == 0) rc = split_added(cx, 1, norm.p ? norm.p : "", norm.len, first);
    qfmt__tk_str_free(&norm);
    return rc;
}

static int tokenizer_encode(const qfmt_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                            size_t *n, qfmt_error *err)
{
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!t || !ids || !n || (!text && len))
        return qfmt__merr(err, QFMT_E_ARG, NULL, NULL, "qfmt_tokenizer_encode: invalid argument");
    enc_ctx cx = {.t = t, .err = err};
    int rc = 0;
    if (t->word_re && !(cx.md = pcre2_match_data_create(1, NULL))) rc = TK_OOM(err);
    if (rc == 0 && len) rc = split_added(&cx, 0, text, len, true);
    if (rc == 0 && add_special && t->post) {
        tk_ids with = {0};
        rc = qfmt__tk_post_process(t->post, cx.ids.v, cx.ids.n, &with, err);
        qfmt__tk_ids_free(&cx.ids);
        cx.ids = with;
    }
    if (cx.md) pcre2_match_data_free(cx.md);
    qfmt__tk_bpe_work_free(cx.bpe);
    qfmt__tk_str_free(&cx.norm);
    qfmt__tk_list_free(&cx.words);
    if (rc < 0) {
        qfmt__tk_ids_free(&cx.ids);
        return -1;
    }
    if (cx.ids.n == 0) qfmt__tk_ids_free(&cx.ids);
    *ids = cx.ids.v;
    *n = cx.ids.n;
    return 0;
}

/* ---- Public calls ------------------------------------------------------------------------------ */

static const tok_entry *entry(const qfmt_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || (uint32_t)id >= t->vocab_size || !t->tok[id].used) return NULL;
    return &t->tok[id];
}

static qfmt_status done(qfmt_error *err, int rc)
{
    if (rc < 0) return err && err->code ? err->code : QFMT_E_CORRUPT;
    if (err) {
        memset(err, 0, sizeof *err);
        err->offset = QFMT_NO_OFFSET;
    }
    return QFMT_OK;
}

qfmt_status qfmt_tokenizer_load(qfmt_tokenizer **out, const char *json, size_t len, qfmt_error *err)
{
    qfmt_error local;
    qfmt_error *e = err ? err : &local;
    memset(e, 0, sizeof *e);
    return done(e, tokenizer_load(out, json, len, e));
}

qfmt_status qfmt_tokenizer_encode_with(const qfmt_tokenizer *t, const char *text, size_t len, unsigned flags,
                                       int32_t **ids, size_t *n, qfmt_error *err)
{
    qfmt_error local;
    qfmt_error *e = err ? err : &local;
    memset(e, 0, sizeof *e);
    if (flags & ~(unsigned)QFMT_TOKENIZE_ADD_SPECIAL) {
        if (ids) *ids = NULL;
        if (n) *n = 0;
        return QFMT__FAIL(e, QFMT_E_ARG, NULL, NULL, "qfmt_tokenizer_encode_with: unknown flags 0x%x", flags);
    }
    return done(e, tokenizer_encode(t, text, len, (flags & QFMT_TOKENIZE_ADD_SPECIAL) != 0, ids, n, e));
}

qfmt_status qfmt_tokenizer_encode(const qfmt_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n,
                                  qfmt_error *err)
{
    return qfmt_tokenizer_encode_with(t, text, len, 0, ids, n, err);
}

qfmt_status qfmt_tokenizer_decode(const qfmt_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **text,
                                  size_t *len, qfmt_error *err)
{
    qfmt_error local;
    qfmt_error *e = err ? err : &local;
    memset(e, 0, sizeof *e);
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!t || !text || !len || (!ids && n))
        return QFMT__FAIL(e, QFMT_E_ARG, NULL, NULL, "qfmt_tokenizer_decode: invalid argument");
    tk_list toks = {0};
    tk_str out = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const tok_entry *en = entry(t, ids[i]);
        if (!en) {
            rc = qfmt__merr(e, QFMT_E_RANGE, NULL, NULL, "token id %ld at position %zu is not in the vocabulary (0..%lu)",
                            (long)ids[i], i, (unsigned long)t->vocab_size - 1);
            break;
        }
        if (skip_special && en->special) continue;
        if (qfmt__tk_list_push(&toks, t->arena.p + en->off, en->len) < 0) rc = TK_OOM(e);
    }
    if (rc == 0) {
        if (t->dec) {
            rc = qfmt__tk_decode(t->dec, &toks, &out, e);
        } else { /* HF without a decoder: the tokens joined by spaces */
            for (size_t i = 0; i < toks.n && rc == 0; i++) {
                size_t l;
                const char *s = tk_list_at(&toks, i, &l);
                if ((i && qfmt__tk_str_putc(&out, ' ') < 0) || qfmt__tk_str_put(&out, s, l) < 0) rc = TK_OOM(e);
            }
        }
    }
    if (rc == 0 && qfmt__tk_str_reserve(&out, 0) < 0) rc = TK_OOM(e);
    if (rc == 0) out.p[out.len] = '\0'; /* also when nothing was written */
    qfmt__tk_list_free(&toks);
    if (rc < 0) {
        qfmt__tk_str_free(&out);
        return done(e, rc);
    }
    *text = out.p;
    *len = out.len;
    return done(e, 0);
}

qfmt_status qfmt_tokenizer_token_bytes(const qfmt_tokenizer *t, int32_t id, const char **bytes, size_t *len)
{
    const tok_entry *e = entry(t, id);
    if (!bytes || !len) return QFMT_E_ARG;
    if (!e) return QFMT_E_RANGE;
    *bytes = t->arena.p + e->dec_off;
    *len = e->dec_len;
    return QFMT_OK;
}

qfmt_status qfmt_tokenizer_token_string(const qfmt_tokenizer *t, int32_t id, const char **str, size_t *len)
{
    const tok_entry *e = entry(t, id);
    if (!str || !len) return QFMT_E_ARG;
    if (!e) return QFMT_E_RANGE;
    *str = t->arena.p + e->off;
    *len = e->len;
    return QFMT_OK;
}

int32_t qfmt_tokenizer_token_id(const qfmt_tokenizer *t, const char *token)
{
    if (!t || !token) return -1;
    return qfmt__tk_vocab_id(t->all, token, strlen(token));
}

bool qfmt_tokenizer_is_special(const qfmt_tokenizer *t, int32_t id)
{
    const tok_entry *e = entry(t, id);
    return e && e->special;
}

size_t qfmt_tokenizer_vocab_size(const qfmt_tokenizer *t) { return t ? t->vocab_size : 0; }

size_t qfmt_utf8_complete_len(const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    /* at most 3 bytes back for the lead byte of a possibly incomplete sequence */
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned c = s[len - back];
        if ((c & 0xC0) == 0x80) continue; /* a continuation byte: keep looking */
        size_t need;
        if (c >= 0xC2 && c <= 0xDF) need = 2;
        else if (c >= 0xE0 && c <= 0xEF) need = 3;
        else if (c >= 0xF0 && c <= 0xF4) need = 4;
        else return len; /* ASCII or an invalid byte: nothing to wait for */
        if (back >= need) return len; /* complete (or too long: invalid, release it) */
        /* incomplete: held back only if what is there could still become valid */
        char tmp[4] = {0};
        uint32_t cp;
        memcpy(tmp, s + len - back, back);
        for (size_t i = back; i < need; i++) tmp[i] = (char)0x80;
        if (qfmt__tk_utf8_next(tmp, need, &cp) == need) return len - back;
        for (size_t i = back; i < need; i++) tmp[i] = (char)0xBF;
        if (qfmt__tk_utf8_next(tmp, need, &cp) == need) return len - back;
        return len;
    }
    return len;
}

/* ---- Streaming decode (Hugging Face's DecodeStream) ------------------------------------------ */

struct qfmt_decode_stream {
    const qfmt_tokenizer *t;
    bool skip_special;
    tk_ids ids;         /* the window: ids[0..prefix_index) are context already printed */
    size_t prefix_index;
    char *prefix;       /* decode of the whole window before the newest id */
    size_t prefix_len;
    char *piece;        /* what the last step returned */
};

qfmt_status qfmt_decode_stream_new(qfmt_decode_stream **out, const qfmt_tokenizer *t, bool skip_special,
                                   qfmt_error *err)
{
    if (!out || !t) return QFMT__FAIL(err, QFMT_E_ARG, NULL, NULL, "qfmt_decode_stream_new: NULL argument");
    if (!(*out = calloc(1, sizeof **out))) return QFMT__FAIL(err, QFMT_E_NOMEM, NULL, NULL, "out of memory");
    (*out)->t = t;
    (*out)->skip_special = skip_special;
    return done(err, 0);
}

qfmt_status qfmt_decode_stream_step(qfmt_decode_stream *ds, int32_t id, const char **text, size_t *len,
                                    qfmt_error *err)
{
    if (!ds || !text || !len) return QFMT__FAIL(err, QFMT_E_ARG, NULL, NULL, "qfmt_decode_stream_step: NULL argument");
    *text = "";
    *len = 0;
    if (!entry(ds->t, id))
        return QFMT__FAIL(err, QFMT_E_RANGE, NULL, NULL, "token id %ld is not in the vocabulary", (long)id);
    if (qfmt__tk_ids_push(&ds->ids, id) < 0) return QFMT__FAIL(err, QFMT_E_NOMEM, NULL, NULL, "out of memory");
    char *s;
    size_t n;
    qfmt_status st = qfmt_tokenizer_decode(ds->t, ds->ids.v, ds->ids.n, ds->skip_special, &s, &n, err);
    if (st != QFMT_OK) {
        ds->ids.n--;
        return st;
    }
    /* new text only once it extends what was printed and does not end in U+FFFD (a
     * character whose bytes are still coming) */
    if (n > ds->prefix_len && !(n >= 3 && memcmp(s + n - 3, "\xEF\xBF\xBD", 3) == 0)) {
        /* HF's step_decode_stream fails (InvalidPrefix) when the new decode does not extend
         * the printed prefix; the window is left as it was before this id */
        if (ds->prefix_len && memcmp(s, ds->prefix, ds->prefix_len) != 0) {
            free(s);
            ds->ids.n--;
            return QFMT__FAIL(err, QFMT_E_STATE, NULL, NULL,
                              "decode stream: token id %ld changes text already returned", (long)id);
        }
        size_t common = ds->prefix_len;
        free(ds->piece);
        ds->piece = NULL;
        size_t pl = n - common;
        if (!(ds->piece = malloc(pl + 1))) {
            free(s);
            return QFMT__FAIL(err, QFMT_E_NOMEM, NULL, NULL, "out of memory");
        }
        memcpy(ds->piece, s + common, pl);
        ds->piece[pl] = '\0';
        /* the window moves on: the ids after the old prefix become the new context */
        size_t new_prefix_index = ds->ids.n - ds->prefix_index;
        memmove(ds->ids.v, ds->ids.v + ds->prefix_index, new_prefix_index * sizeof *ds->ids.v);
        ds->ids.n = new_prefix_index;
        free(s);
        free(ds->prefix);
        ds->prefix = NULL;
        ds->prefix_len = 0;
        st = qfmt_tokenizer_decode(ds->t, ds->ids.v, ds->ids.n, ds->skip_special, &ds->prefix, &ds->prefix_len, err);
        if (st != QFMT_OK) return st;
        ds->prefix_index = new_prefix_index;
        *text = ds->piece;
        *len = pl;
        return done(err, 0);
    }
    free(s);
    return done(err, 0);
}

void qfmt_decode_stream_free(qfmt_decode_stream *ds)
{
    if (!ds) return;
    qfmt__tk_ids_free(&ds->ids);
    free(ds->prefix);
    free(ds->piece);
    free(ds);
}
