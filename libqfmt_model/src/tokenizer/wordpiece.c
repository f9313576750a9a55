/* wordpiece.c - the WordPiece model (tk_internal.h), as Hugging Face tokenizers'
 * models/wordpiece tokenizes a word: greedy longest match first over char boundaries, the
 * pieces after the first looked up with continuing_subword_prefix; a word with more chars than
 * max_input_chars_per_word, or with a position where nothing matches, becomes the single unk.
 *
 * Chars are code points as qfmt__tk_utf8_next decodes them: each invalid byte is one char. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "tk_internal.h"

struct tk_wordpiece {
    char *prefix; /* continuing_subword_prefix (owned copy) */
    size_t prefix_len;
    uint64_t max_chars; /* max_input_chars_per_word */
    size_t max_len;     /* bytes of the longest vocab entry: no longer candidate can match */
    int32_t unk_id;
};

/* HF's JSON default values. */
#define WP_DEFAULT_UNK "[UNK]"
#define WP_DEFAULT_PREFIX "##"
#define WP_DEFAULT_MAX_CHARS 100
/* Any limit above every possible word length acts the same; 2^53 keeps it exact in a double. */
#define WP_MAX_CHARS_LIMIT (UINT64_C(1) << 53)

/* The longest entry of model.vocab (an object of token -> id; the tokenizer built *v from it).
 * Read from the JSON rather than by walking ids 0..max_id so the loop is bounded by the JSON's
 * size, not by the largest id it names. */
static int longest_entry(const cJSON *model, size_t *out, qfmt_error *err)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.vocab is not an object");
    size_t max = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab)
    {
        size_t len = e->string ? strlen(e->string) : 0;
        if (len > max) max = len;
    }
    *out = max;
    return 0;
}

int qfmt__tk_wordpiece_load(const cJSON *model, const tk_vocab *v, tk_wordpiece **out, qfmt_error *err)
{
    *out = NULL;
    const char *unk, *prefix;
    size_t unk_len = 0, prefix_len = 0, max_len = 0;
    uint64_t max_chars = 0;
    if (qfmt__tk_json_string(model, "unk_token", WP_DEFAULT_UNK, &unk, &unk_len, "model", err) < 0 ||
        qfmt__tk_json_string(model, "continuing_subword_prefix", WP_DEFAULT_PREFIX, &prefix, &prefix_len, "model", err) <
            0 ||
        qfmt__tk_json_uint(model, "max_input_chars_per_word", WP_DEFAULT_MAX_CHARS, WP_MAX_CHARS_LIMIT, &max_chars, "model",
                     err) < 0 ||
        longest_entry(model, &max_len, err) < 0)
        return -1;
    /* HF fails only when a word needs the unk; refusing at load makes the failure certain and
     * early instead of text-dependent. */
    int32_t unk_id = qfmt__tk_vocab_id(v, unk, unk_len);
    if (unk_id < 0) {
        char shown[80];
        qfmt_escape(unk, unk_len < 40 ? unk_len : 40, shown, sizeof shown);
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "model.unk_token '%s' is not in model.vocab", shown);
    }
    tk_wordpiece *m = calloc(1, sizeof *m);
    if (!m || !(m->prefix = malloc(prefix_len + 1))) {
        free(m);
        return TK_OOM(err);
    }
    memcpy(m->prefix, prefix, prefix_len + 1);
    m->prefix_len = prefix_len;
    m->max_chars = max_chars;
    m->max_len = max_len;
    m->unk_id = unk_id;
    *out = m;
    return 0;
}

void qfmt__tk_wordpiece_free(tk_wordpiece *m)
{
    if (!m) return;
    free(m->prefix);
    free(m);
}

/* Number of chars in w[0..n). */
static size_t count_chars(const char *w, size_t n)
{
    size_t chars = 0;
    uint32_t cp;
    for (size_t i = 0; i < n; i += qfmt__tk_utf8_next(w + i, n - i, &cp)) chars++;
    return chars;
}

/* bound[k] = byte offset of char k, bound[chars] = n. */
static void char_bounds(const char *w, size_t n, size_t *bound)
{
    size_t k = 0;
    uint32_t cp;
    for (size_t i = 0; i < n; i += qfmt__tk_utf8_next(w + i, n - i, &cp)) bound[k++] = i;
    bound[k] = n;
}

/* The longest match starting at char `s`: *id and *e (its end char), or 0 when none. `buf`
 * holds the prefix in its first prefix_len bytes and room for n more. HF tries the ends from
 * the word's end down; ends that make the candidate longer than the longest vocab entry cannot
 * match, so the search starts below them (same result, O(longest entry) lookups). */
static int longest_match(const tk_wordpiece *m, const tk_vocab *v, const char *w, const size_t *bound,
                         size_t chars, size_t s, char *buf, int32_t *id, size_t *e)
{
    size_t lead = s > 0 ? m->prefix_len : 0; /* later pieces carry the prefix */
    if (lead >= m->max_len) return 0;
    size_t room = m->max_len - lead;
    size_t end = s + 1;
    while (end < chars && bound[end + 1] - bound[s] <= room) end++;
    const char *key = w + bound[s];
    if (s > 0) {
        memcpy(buf + lead, w + bound[s], bound[end] - bound[s]);
        key = buf;
    }
    for (; end > s; end--) {
        int32_t got = qfmt__tk_vocab_id(v, key, lead + bound[end] - bound[s]);
        if (got >= 0) {
            *id = got;
            *e = end;
            return 1;
        }
    }
    return 0;
}

int qfmt__tk_wordpiece_encode(const tk_wordpiece *m, const tk_vocab *v, const char *w, size_t n, tk_ids *out,
                        qfmt_error *err)
{
    size_t chars = count_chars(w, n);
    if (chars == 0) return 0; /* HF: an empty word gives no tokens */
    if ((uint64_t)chars > m->max_chars) return qfmt__tk_ids_push(out, m->unk_id) < 0 ? TK_OOM(err) : 0;

    size_t *bound = malloc((chars + 1) * sizeof *bound);
    char *buf = malloc(m->prefix_len + n + 1);
    if (!bound || !buf) {
        free(bound);
        free(buf);
        return TK_OOM(err);
    }
    char_bounds(w, n, bound);
    memcpy(buf, m->prefix, m->prefix_len);

    size_t mark = out->n, s = 0;
    int rc = 0;
    while (s < chars) {
        int32_t id;
        size_t e;
        if (!longest_match(m, v, w, bound, chars, s, buf, &id, &e)) {
            out->n = mark; /* one unmatched position: the whole word is unk */
            id = m->unk_id;
            e = chars;
        }
        if (qfmt__tk_ids_push(out, id) < 0) {
            rc = TK_OOM(err);
            break;
        }
        s = e;
    }
    free(bound);
    free(buf);
    return rc;
}
