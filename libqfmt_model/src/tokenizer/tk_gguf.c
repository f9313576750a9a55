/*
 * tk_gguf.c - tokenizers in GGUF files: Hugging Face tokenizer.json <-> llama.cpp's
 * tokenizer.ggml.* keys (qfmt_model.h, "Tokenizers in GGUF files").
 *
 * Ground truth: llama.cpp's convert_hf_to_gguf.py (what it writes for a tokenizer.json) and
 * src/llama-vocab.cpp / src/unicode.cpp (how llama.cpp then tokenizes). The mapping:
 *
 *   tokenizer.json                                         GGUF model / pre
 *   ---------------------------------------------------------------------------------------
 *   BPE, byte_fallback false, ByteLevel pre-tokenizer       "gpt2" / "gpt-2"
 *     (GPT-2 regex: ByteLevel use_regex, or Split+ByteLevel)
 *   BPE + Split(Llama 3 regex, Isolated) + ByteLevel        "gpt2" / "llama-bpe"
 *   BPE + Split(Qwen 2 regex, Isolated) + ByteLevel         "gpt2" / "qwen2"
 *   BPE, byte_fallback true, "▁" spaces (Prepend/Replace    "llama" / "default": tokens,
 *     normalizers or Metaspace), no pre-tokenizer split        scores, types (6 = <0xXX>)
 *   WordPiece, BertNormalizer, BertPreTokenizer             "bert" / "default" (phantom "▁")
 *
 * The pre-tokenizer name is chosen from the pre-tokenizer's structure, not from
 * convert_hf_to_gguf's hash of a test string's ids (get_vocab_base_pre): the hash identifies
 * the published tokenizers it lists and raises NotImplementedError for every other one (the
 * KJV fixture's among them), while what llama.cpp does with a name depends only on the regex
 * behind it. A tokenizer whose pre-tokenizer regex is GPT-2's, Llama 3's or Qwen 2's gets the
 * name llama.cpp runs that regex under (the names the hash gives for those published
 * tokenizers); anything else is refused.
 *
 * SentencePiece-style BPE ("llama"): llama.cpp does not run merges for it but
 * llm_tokenizer_spm, which repeatedly merges the adjacent pair whose concatenation is a token
 * with the highest score (ties: the leftmost). That equals Hugging Face's BPE when
 *   (a) every split of a token into two parts llama.cpp can hold as symbols (tokens or single
 *       characters) is one of the merges (otherwise llama.cpp merges what BPE does not), and
 *   (b) the merges that produce one token are contiguous in the merge list,
 * with score(t) = -(rank of the first merge producing t). Tokenizers converted from a
 * SentencePiece model (Llama 2's) satisfy both: SentencePiece's vocabulary is what
 * convert_slow_tokenizer derived the merges from. to_gguf checks (a) and (b) and writes those
 * scores (convert_hf_to_gguf's LlamaHfVocab writes -1000 for every token, which llama.cpp
 * then merges leftmost-first: not the tokenizer's behaviour). from_gguf derives the merges
 * back from the scores: every split (a, b) of a token t into two tokens is a merge, ordered by
 * score(t) descending, then t's id, then the split position. Tokens sharing a score are
 * ordered by id where llama.cpp orders them by position, which can differ (on synthetic
 * vocabularies with many ties it did, for 0-11% of texts). Llama 2's merges list its runs of
 * U+2581 last, in id order, the mark of one score shared in its tokenizer.model; given one
 * score, those runs still tokenize in llama.cpp as in Hugging Face (380 texts of space runs,
 * the 40 reference texts, heldout.txt). A GGUF whose merged tokens all share one score, as
 * LlamaHfVocab writes, is refused.
 *
 * What llama.cpp itself does differently from Hugging Face (documented, reproduced by
 * from_gguf where tokenizer.json can say it):
 *   - no normalizer for BPE: Qwen's NFC is not applied (from_gguf emits none);
 *   - special / added tokens are split out longest-first over the whole text, not
 *     leftmost-longest; lstrip / rstrip / single_word / normalized flags are not kept (to_gguf
 *     accepts them, from_gguf emits plain non-normalized added tokens); tokens the vocabulary
 *     loader treats as control by their text (<|endoftext|>, <|im_end|>, FIM tokens, ...)
 *     become added tokens;
 *   - WordPiece: no max_input_chars_per_word limit (from_gguf emits 2^53); [CLS] ... [SEP] are
 *     added with special tokens whatever tokenizer.json's post-processor says;
 *   - add_bos / add_eos: llama.cpp's defaults per model and pre-tokenizer (llama-bpe: BOS);
 *     to_gguf writes add_bos_token / add_eos_token where they differ from what the
 *     tokenizer.json's post-processor does.
 */
#define _POSIX_C_SOURCE 200809L
#define QFMT_STATIC_LINKING_ONLY /* qfmt_utf8_valid */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt_model.h"
#include "tk_internal.h"
#include "model_internal.h"

/* llama.cpp's token types (llama_token_type). */
enum { TT_UNDEFINED = 0, TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* The pre-tokenizer regexes. HF's as tokenizer.json spells them (to_gguf recognises them and
 * llama.cpp's adapted spellings); from_gguf emits llama.cpp's adapted ones (ASCII-only case
 * folding of the contractions, as llama.cpp's custom splitter and std::regex do). */
static const char GPT2_RE[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_RE_HF[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_RE_CPP[] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_RE_HF[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_RE_CPP[] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                   "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef enum { RE_GPT2, RE_LLAMA3, RE_QWEN2 } pre_regex;

/* llama.cpp's pre-tokenizer names (llama_vocab::impl::load) whose splitting is one of the
 * three regexes, with the flags that name sets. clean_spaces (a detokenizer option) is not
 * kept. */
static const struct {
    const char *name;
    pre_regex re;
    bool ignore_merges, add_bos;
} PRE_NAMES[] = {
    {"gpt-2", RE_GPT2, false, false},         {"phi-2", RE_GPT2, false, false},
    {"jina-es", RE_GPT2, false, false},       {"jina-de", RE_GPT2, false, false},
    {"gigachat", RE_GPT2, false, false},      {"jina-v2-es", RE_GPT2, false, false},
    {"jina-v2-de", RE_GPT2, false, false},    {"a.x-4.0", RE_GPT2, false, false},
    {"mellum", RE_GPT2, false, false},        {"exaone4", RE_GPT2, false, false},
    {"mpt", RE_GPT2, false, false},           {"olmo", RE_GPT2, false, false},
    {"jais", RE_GPT2, false, false},          {"trillion", RE_GPT2, false, false},
    {"granite-docling", RE_GPT2, false, false},
    {"llama3", RE_LLAMA3, true, true},        {"llama-v3", RE_LLAMA3, true, true},
    {"llama-bpe", RE_LLAMA3, true, true},     {"falcon3", RE_LLAMA3, true, true},
    {"falcon-h1", RE_LLAMA3, true, true},     {"pixtral", RE_LLAMA3, true, true},
    {"midm-2.0", RE_LLAMA3, true, true},      {"lfm2", RE_LLAMA3, true, true},
    {"jina-v5-nano", RE_LLAMA3, true, true},  {"dbrx", RE_LLAMA3, false, false},
    {"smaug-bpe", RE_LLAMA3, false, false},
    {"qwen2", RE_QWEN2, false, false},        {"deepseek-r1-qwen", RE_QWEN2, false, false},
    {"kormo", RE_QWEN2, false, false},        {"f2llmv2", RE_QWEN2, false, false},
    {"megrez", RE_QWEN2, false, false},       {"stablelm2", RE_QWEN2, false, false},
    {"hunyuan", RE_QWEN2, false, false},      {"solar-open", RE_QWEN2, false, false},
};
/* What to_gguf writes for each regex (convert_hf_to_gguf's names for the published
 * tokenizers with that regex: GPT-2, Llama 3, Qwen 2/3). */
static const char *const PRE_WRITTEN[] = {"gpt-2", "llama-bpe", "qwen2"};

#define SPM_SPACE "\xE2\x96\x81" /* U+2581, SentencePiece's space */

/* ==== Small shared pieces =================================================================== */

static const char *escaped(const char *s, size_t n, char *buf, size_t cap)
{
    return qfmt_escape(s, n < 60 ? n : 60, buf, cap);
}

/* Hash map of (a, b) id pairs -> a value (a rank); open addressing, sized at init for every
 * key it will hold (at most half full). */
typedef struct {
    uint64_t *keys; /* UINT64_MAX: empty */
    uint32_t *vals;
    size_t mask, n;
} pairmap;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void pm_free(pairmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static int pm_init(pairmap *m, size_t expect)
{
    size_t cap = 64;
    while (cap < 2 * expect + 2) {
        if (cap > SIZE_MAX / 4 / sizeof(uint64_t)) return -1;
        cap *= 2;
    }
    m->keys = malloc(cap * sizeof *m->keys);
    m->vals = malloc(cap * sizeof *m->vals);
    if (!m->keys || !m->vals) {
        pm_free(m);
        return -1;
    }
    for (size_t i = 0; i < cap; i++) m->keys[i] = UINT64_MAX;
    m->mask = cap - 1;
    m->n = 0;
    return 0;
}

static size_t pm_slot(const pairmap *m, uint64_t key)
{
    size_t i = (size_t)mix64(key) & m->mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key) i = (i + 1) & m->mask;
    return i;
}

static uint64_t pm_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

/* Sets (overwrites) the value of (a, b). */
static void pm_put(pairmap *m, int32_t a, int32_t b, uint32_t v)
{
    size_t i = pm_slot(m, pm_key(a, b));
    if (m->keys[i] == UINT64_MAX) m->n++;
    m->keys[i] = pm_key(a, b);
    m->vals[i] = v;
}

static bool pm_get(const pairmap *m, int32_t a, int32_t b, uint32_t *v)
{
    if (!m->keys) return false;
    size_t i = pm_slot(m, pm_key(a, b));
    if (m->keys[i] == UINT64_MAX) return false;
    if (v) *v = m->vals[i];
    return true;
}

/* One UTF-8 character's length at s[0..n) (an invalid byte: 1, as llama.cpp's
 * unicode_len_utf8 counts by the lead byte, clipped to what is left). */
static size_t lead_len(const char *s, size_t n)
{
    static const unsigned char L[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t l = L[(unsigned char)s[0] >> 4];
    return l < n ? l : n;
}

static bool is_one_char(const char *s, size_t n) { return n > 0 && lead_len(s, n) == n; }

/* <0xXX> with two hex digits (any case, as LlamaHfVocab's regex): the byte, or -1. */
static int byte_token(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* ==== tokenizer.json -> GGUF (qfmt_tokenizer_to_gguf) ========================================= */

typedef enum { KIND_GPT2, KIND_SPM, KIND_BERT } tok_kind;

typedef struct {
    const char *s;
    size_t n;
} sv;

typedef struct {
    /* input */
    const cJSON *root, *model;
    const qfmt_tokenizer *t;
    tk_vocab *vocab; /* every id's string -> id */
    size_t n;        /* ids 0..n-1 */
    tok_kind kind;
    /* per id */
    sv *str;          /* the string (tokenizer.json's; NULL s: a hole) */
    uint8_t *added;   /* 0 no, 1 added, 2 added special */
    uint8_t *type;    /* llama.cpp token type */
    char **owned;     /* strings rewritten (phantom ▁, ▁ -> ' '), freed at the end */
    float *scores;    /* SPM */
    /* merges in the order written (indices into merges_a/b) */
    int32_t *ma, *mb;
    size_t nm;
    /* what goes out */
    const char *pre;
    int64_t bos, eos, unk, sep, pad;
    int add_bos, add_eos;       /* -1: not written */
    int add_space_prefix;       /* -1: not written */
    int lowercase, strip_accents; /* -1: not written */
    qfmt_error *err;
} tg;

static void tg_free(tg *g)
{
    if (g->owned)
        for (size_t i = 0; i < g->n; i++) free(g->owned[i]);
    free(g->owned);
    free(g->str);
    free(g->added);
    free(g->type);
    free(g->scores);
    free(g->ma);
    free(g->mb);
    qfmt__tk_vocab_free(g->vocab);
}

static bool absent(const cJSON *x) { return !x || cJSON_IsNull(x); }

static const char *type_of(const cJSON *x)
{
    const cJSON *ty = cJSON_IsObject(x) ? cJSON_GetObjectItemCaseSensitive(x, "type") : NULL;
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

static bool json_is_true(const cJSON *obj, const char *key, bool dflt)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (absent(x)) return dflt;
    return cJSON_IsTrue(x);
}

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* convert_hf_to_gguf's does_token_look_special. */
static bool looks_special(const char *s, size_t n)
{
    static const char *const names[] = {"<pad>", "<mask>", "<2mass>", "[@BOS@]"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) return true;
#define STARTS(p) (n >= sizeof(p) - 1 && memcmp(s, p, sizeof(p) - 1) == 0)
#define ENDS(p) (n >= sizeof(p) - 1 && memcmp(s + n - (sizeof(p) - 1), p, sizeof(p) - 1) == 0)
    if (STARTS("<|") && ENDS("|>")) return true;
    if (STARTS("<\xEF\xBD\x9C") && ENDS("\xEF\xBD\x9C>")) return true; /* <｜ ... ｜> */
    if (STARTS("<unused") && ENDS(">")) return true;
#undef STARTS
#undef ENDS
    return false;
}

static bool has_sub(const char *s, size_t n, const char *sub)
{
    size_t l = strlen(sub);
    for (size_t i = 0; i + l <= n; i++)
        if (memcmp(s + i, sub, l) == 0) return true;
    return false;
}

/* A copy of s[0..n) with every `from` replaced by `to`, stored as id's owned string. */
static int replace_into(tg *g, size_t id, const char *s, size_t n, const char *from, const char *to, const char *prefix)
{
    tk_str o = {0};
    size_t fl = strlen(from), tl = strlen(to);
    int rc = prefix ? qfmt__tk_str_put(&o, prefix, strlen(prefix)) : 0;
    for (size_t i = 0; i < n && rc == 0;) {
        if (fl && i + fl <= n && memcmp(s + i, from, fl) == 0) {
            rc = qfmt__tk_str_put(&o, to, tl);
            i += fl;
        } else {
            rc = qfmt__tk_str_putc(&o, s[i++]);
        }
    }
    if (rc == 0 && qfmt__tk_str_reserve(&o, 0) < 0) rc = -1;
    if (rc < 0) {
        qfmt__tk_str_free(&o);
        return TK_OOM(g->err);
    }
    free(g->owned[id]);
    g->owned[id] = o.p;
    g->str[id] = (sv){o.p, o.len};
    return 0;
}

/* ---- The post-processor: which special tokens go around a sequence ------------------------ */
typedef struct {
    int64_t first, last; /* ids added before / after the sequence, -1 none */
    bool template_seen;  /* a TemplateProcessing / Bert / Roberta processor was there */
} specials_around;

static int template_id(tg *g, const cJSON *pp, const cJSON *piece, int64_t *id, const char *where)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken");
    const char *name = json_str(st, "id");
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    const cJSON *ent = name && cJSON_IsObject(map) ? cJSON_GetObjectItemCaseSensitive(map, name) : NULL;
    const cJSON *ids = cJSON_IsObject(ent) ? cJSON_GetObjectItemCaseSensitive(ent, "ids") : NULL;
    if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) != 1 || !cJSON_IsNumber(ids->child))
        return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                             "%s: a special token of the template that is not exactly one id: llama.cpp adds one BOS "
                             "and one EOS token",
                             where);
    *id = (int64_t)ids->child->valuedouble;
    return 0;
}

/* TemplateProcessing's single template must be [special]? $A [special]?. */
static int read_template(tg *g, const cJSON *pp, specials_around *sa, const char *where)
{
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    if (!cJSON_IsArray(single)) return qfmt__tk_fail(g->err, QFMT_E_CORRUPT, "%s.single is not an array", where);
    int n = cJSON_GetArraySize(single), seq_at = -1, i = 0;
    for (const cJSON *p = single->child; p; p = p->next, i++)
        if (cJSON_GetObjectItemCaseSensitive(p, "Sequence")) {
            if (seq_at >= 0)
                return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED, "%s.single holds the sequence twice", where);
            seq_at = i;
        }
    if (seq_at < 0 || seq_at > 1 || n - seq_at - 1 > 1)
        return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                             "%s.single is not [special] $A [special]: llama.cpp adds at most one BOS before and one "
                             "EOS after the text",
                             where);
    sa->template_seen = true;
    if (seq_at == 1 && template_id(g, pp, single->child, &sa->first, where) < 0) return -1;
    if (n - seq_at - 1 == 1 && template_id(g, pp, cJSON_GetArrayItem(single, n - 1), &sa->last, where) < 0) return -1;
    return 0;
}

static int pair_id_of(tg *g, const cJSON *pp, const char *key, int64_t *id, const char *where)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(pp, key);
    const cJSON *i = cJSON_IsArray(x) && cJSON_GetArraySize(x) == 2 ? cJSON_GetArrayItem(x, 1) : NULL;
    if (!cJSON_IsNumber(i)) return qfmt__tk_fail(g->err, QFMT_E_CORRUPT, "%s.%s is not a [token, id] pair", where, key);
    *id = (int64_t)i->valuedouble;
    return 0;
}

static int read_post_processor(tg *g, const cJSON *pp, specials_around *sa, int depth, const char *where)
{
    if (absent(pp)) return 0;
    const char *ty = type_of(pp);
    if (!ty) return qfmt__tk_fail(g->err, QFMT_E_CORRUPT, "%s has no type", where);
    if (strcmp(ty, "ByteLevel") == 0) return 0; /* offsets only */
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *subs = cJSON_GetObjectItemCaseSensitive(pp, "processors");
        if (!cJSON_IsArray(subs) || depth >= TK_MAX_DEPTH)
            return qfmt__tk_fail(g->err, QFMT_E_CORRUPT, "%s.processors is not an array", where);
        int i = 0;
        for (const cJSON *s = subs->child; s; s = s->next, i++) {
            char w[160];
            snprintf(w, sizeof w, "%.100s.processors[%d]", where, i);
            if (sa->template_seen && type_of(s) && strcmp(type_of(s), "ByteLevel") != 0)
                return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED, "%s: a second template: llama.cpp adds one BOS and one EOS", w);
            if (read_post_processor(g, s, sa, depth + 1, w) < 0) return -1;
        }
        return 0;
    }
    if (strcmp(ty, "TemplateProcessing") == 0) return read_template(g, pp, sa, where);
    if (strcmp(ty, "BertProcessing") == 0 || strcmp(ty, "RobertaProcessing") == 0) {
        if (g->kind != KIND_BERT)
            return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                                 "%s: type '%s' with a BPE model: llama.cpp's gpt2 and llama tokenizers add only BOS / EOS",
                                 where, ty);
        sa->template_seen = true;
        return pair_id_of(g, pp, "cls", &sa->first, where) < 0 ? -1 : pair_id_of(g, pp, "sep", &sa->last, where);
    }
    return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED, "%s: type '%s' has no llama.cpp equivalent", where, ty);
}

/* ---- Token table -------------------------------------------------------------------------- */
static int build_table(tg *g)
{
    size_t n = g->n;
    if (!(g->str = calloc(n, sizeof *g->str)) || !(g->added = calloc(n, 1)) || !(g->type = calloc(n, 1)) ||
        !(g->owned = calloc(n, sizeof *g->owned)) || !(g->vocab = qfmt__tk_vocab_new()))
        return TK_OOM(g->err);
    for (size_t id = 0; id < n; id++) {
        const char *s;
        size_t l;
        if (qfmt_tokenizer_token_string(g->t, (int32_t)id, &s, &l) != QFMT_OK) continue; /* a hole */
        g->str[id] = (sv){s, l};
        if (qfmt__tk_vocab_add(g->vocab, s, l, (int32_t)id) < 0) return TK_OOM(g->err);
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(g->root, "added_tokens");
    for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
        const cJSON *idj = cJSON_GetObjectItemCaseSensitive(a, "id");
        size_t id = (size_t)idj->valuedouble; /* the loader checked it */
        if (id < n) g->added[id] = json_is_true(a, "special", false) ? 2 : 1;
    }
    /* holes: convert_hf_to_gguf's [PAD<i>], unused */
    for (size_t id = 0; id < n; id++) {
        if (g->str[id].s) continue;
        char b[32];
        snprintf(b, sizeof b, "[PAD%zu]", id);
        if (qfmt__tk_vocab_id(g->vocab, b, strlen(b)) >= 0)
            return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED, "id %zu is unused but its filler '%s' is a token", id, b);
        if (replace_into(g, id, b, strlen(b), "", "", NULL) < 0) return -1;
        g->type[id] = TT_UNUSED;
    }
    for (size_t id = 0; id < n; id++)
        if (g->str[id].n == 0)
            return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED, "token %zu is empty (llama.cpp renames it)", id);
    return 0;
}

/* The merges of model.merges as id pairs, HF's duplicate rule applied (a later duplicate
 * replaces the earlier: its rank is the later one), "#version" lines skipped. */
static int read_merges(tg *g)
{
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(g->model, "merges");
    size_t cnt = 0;
    for (const cJSON *e = cJSON_IsArray(merges) ? merges->child : NULL; e; e = e->next) cnt++;
    int32_t *a = malloc((cnt ? cnt : 1) * sizeof *a), *b = malloc((cnt ? cnt : 1) * sizeof *b);
    pairmap last = {0};
    int rc = -1;
    if (!a || !b || pm_init(&last, cnt) < 0) {
        TK_OOM(g->err);
        goto out;
    }
    size_t k = 0, index = 0;
    for (const cJSON *e = cJSON_IsArray(merges) ? merges->child : NULL; e; e = e->next, index++) {
        const char *pa, *pb;
        size_t la, lb;
        if (cJSON_IsString(e)) {
            const char *s = e->valuestring, *sp = strchr(s, ' ');
            if (strncmp(s, "#version", 8) == 0) continue;
            pa = s, la = (size_t)(sp - s), pb = sp + 1, lb = strlen(sp + 1);
        } else {
            pa = e->child->valuestring, la = strlen(pa);
            pb = e->child->next->valuestring, lb = strlen(pb);
            if (memchr(pa, ' ', la) || memchr(pb, ' ', lb)) {
                char sh[80];
                qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                              "model.merges[%zu]: token '%s' holds a space: llama.cpp's merges are \"a b\" strings "
                              "split at the first space",
                              index, escaped(memchr(pa, ' ', la) ? pa : pb, memchr(pa, ' ', la) ? la : lb, sh, sizeof sh));
                goto out;
            }
        }
        if (la == 0) {
            qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED, "model.merges[%zu] begins with a space: llama.cpp splits it elsewhere",
                          index);
            goto out;
        }
        a[k] = qfmt__tk_vocab_id(g->vocab, pa, la);
        b[k] = qfmt__tk_vocab_id(g->vocab, pb, lb);
        if (a[k] < 0 || b[k] < 0) { /* the loader refuses it; defensive */
            qfmt__tk_fail(g->err, QFMT_E_CORRUPT, "model.merges[%zu] names a token not in the vocab", index);
            goto out;
        }
        pm_put(&last, a[k], b[k], (uint32_t)k);
        k++;
    }
    /* keep each pair at its last position */
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        uint32_t at = 0;
        pm_get(&last, a[i], b[i], &at);
        if (at != i) continue;
        a[m] = a[i], b[m] = b[i], m++;
    }
    g->ma = a, g->mb = b, g->nm = m;
    a = b = NULL;
    rc = 0;
out:
    free(a);
    free(b);
    pm_free(&last);
    return rc;
}

/* ---- gpt2 --------------------------------------------------------------------------------- */
static bool regex_is(const cJSON *split, const char *re1, const char *re2)
{
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(split, "pattern");
    const char *r = json_str(pat, "Regex");
    return r && (strcmp(r, re1) == 0 || (re2 && strcmp(r, re2) == 0));
}

static bool byte_level_plain(const cJSON *bl, bool use_regex)
{
    const char *ty = type_of(bl);
    return ty && strcmp(ty, "ByteLevel") == 0 && !json_is_true(bl, "add_prefix_space", true) &&
           json_is_true(bl, "use_regex", true) == use_regex;
}

static int detect_pre(tg *g, pre_regex *re)
{
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(g->root, "pre_tokenizer");
    const char *ty = type_of(pt);
    if (ty && strcmp(ty, "ByteLevel") == 0) {
        if (json_is_true(pt, "add_prefix_space", true))
            return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                                 "pre_tokenizer: ByteLevel with add_prefix_space: llama.cpp adds no space before the text");
        if (!json_is_true(pt, "use_regex", true))
            return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                                 "pre_tokenizer: ByteLevel without its regex: llama.cpp has no such pre-tokenizer");
        *re = RE_GPT2;
        return 0;
    }
    if (ty && strcmp(ty, "Sequence") == 0) {
        const cJSON *subs = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
        const cJSON *s0 = cJSON_IsArray(subs) ? subs->child : NULL, *s1 = s0 ? s0->next : NULL;
        const char *t0 = type_of(s0);
        if (s0 && s1 && !s1->next && t0 && strcmp(t0, "Split") == 0 && byte_level_plain(s1, false)) {
            const char *beh = json_str(s0, "behavior");
            if (!beh || strcmp(beh, "Isolated") != 0 || json_is_true(s0, "invert", false))
                return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                                     "pre_tokenizer.pretokenizers[0]: a Split that is not Isolated and not inverted has no "
                                     "llama.cpp equivalent");
            if (regex_is(s0, GPT2_RE, NULL)) *re = RE_GPT2;
            else if (regex_is(s0, LLAMA3_RE_HF, LLAMA3_RE_CPP)) *re = RE_LLAMA3;
            else if (regex_is(s0, QWEN2_RE_HF, QWEN2_RE_CPP)) *re = RE_QWEN2;
            else
                return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                                     "pre_tokenizer.pretokenizers[0]: the Split regex is none of those llama.cpp runs "
                                     "(GPT-2's, Llama 3's, Qwen 2's)");
            return 0;
        }
    }
    return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                         "pre_tokenizer: %s has no llama.cpp equivalent (llama.cpp runs ByteLevel, or Split with the "
                         "GPT-2, Llama 3 or Qwen 2 regex followed by ByteLevel)",
                         ty ? ty : "none");
}

static int bpe_options(tg *g, bool byte_fallback, bool ignore_merges)
{
    const char *p = json_str(g->model, "continuing_subword_prefix"), *s = json_str(g->model, "end_of_word_suffix");
    if ((p && *p) || (s && *s))
        return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                             "model: continuing_subword_prefix / end_of_word_suffix: llama.cpp's BPE has neither");
    if (json_is_true(g->model, "byte_fallback", false) != byte_fallback) /* the caller chose the kind by it */
        return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED, "model.byte_fallback");
    if (json_is_true(g->model, "ignore_merges", false) != ignore_merges)
        return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                             "model.ignore_merges is %s but llama.cpp runs this pre-tokenizer %s it",
                             ignore_merges ? "false" : "true", ignore_merges ? "with" : "without");
    return 0;
}

static int to_gguf_gpt2(tg *g)
{
    const cJSON *nz = cJSON_GetObjectItemCaseSensitive(g->root, "normalizer");
    const char *nty = type_of(nz);
    /* NFC: accepted as convert_hf_to_gguf accepts it (Qwen); llama.cpp does not apply it */
    if (!absent(nz) && !(nty && strcmp(nty, "NFC") == 0))
        return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                             "normalizer: %s: llama.cpp's BPE tokenizers normalize nothing", nty ? nty : "?");
    pre_regex re = RE_GPT2;
    if (detect_pre(g, &re) < 0 || bpe_options(g, false, re == RE_LLAMA3) < 0 || read_merges(g) < 0) return -1;
    g->pre = PRE_WRITTEN[re];
    for (size_t id = 0; id < g->n; id++) {
        if (g->type[id]) continue;
        if (!g->added[id]) {
            g->type[id] = TT_NORMAL;
        } else if (g->added[id] == 2 || looks_special(g->str[id].s, g->str[id].n)) {
            g->type[id] = TT_CONTROL;
        } else {
            g->type[id] = TT_USER_DEFINED; /* convert_hf_to_gguf: ▁ pre-normalized to ' ' */
            if (has_sub(g->str[id].s, g->str[id].n, SPM_SPACE) &&
                replace_into(g, id, g->str[id].s, g->str[id].n, SPM_SPACE, " ", NULL) < 0)
                return -1;
        }
    }
    return 0;
}

/* ---- llama (SentencePiece-style BPE) ---------------------------------------------------- */
/* llama.cpp can hold s[0..n) as a symbol: a token it does not split out first, or one char. */
static bool spm_symbol(const tg *g, const char *s, size_t n, int32_t *id)
{
    *id = qfmt__tk_vocab_id(g->vocab, s, n);
    if (*id >= 0 && g->added[*id]) return false; /* split out before the model runs */
    return *id >= 0 || is_one_char(s, n);
}

static int spm_scores(tg *g)
{
    size_t n = g->n;
    uint32_t *first = malloc(n * sizeof *first);
    uint8_t *closed = calloc(n, 1);
    pairmap mset = {0};
    int rc = -1;
    char sh1[80], sh2[80];
    if (g->nm >= (1u << 24)) { /* the scores are floats: exact below 2^24 */
        qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED, "model.merges: %zu merges (SentencePiece scores hold at most 2^24)",
                      g->nm);
        goto out;
    }
    if (!first || !closed || !(g->scores = calloc(n, sizeof *g->scores)) || pm_init(&mset, g->nm) < 0) {
        TK_OOM(g->err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) first[i] = UINT32_MAX;
    /* (b): the merges producing one token are contiguous */
    int32_t prev = -1;
    tk_str buf = {0};
    for (size_t r = 0; r < g->nm; r++) {
        pm_put(&mset, g->ma[r], g->mb[r], (uint32_t)r);
        buf.len = 0;
        if (qfmt__tk_str_put(&buf, g->str[g->ma[r]].s, g->str[g->ma[r]].n) < 0 ||
            qfmt__tk_str_put(&buf, g->str[g->mb[r]].s, g->str[g->mb[r]].n) < 0) {
            qfmt__tk_str_free(&buf);
            TK_OOM(g->err);
            goto out;
        }
        int32_t t = qfmt__tk_vocab_id(g->vocab, buf.p, buf.len);
        if (t != prev) {
            if (prev >= 0) closed[prev] = 1;
            if (t >= 0 && closed[t]) {
                qfmt__tk_str_free(&buf);
                qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                              "model.merges[%zu]: the merges making '%s' are not contiguous: llama.cpp orders merges by "
                              "one score per token",
                              r, escaped(buf.p, buf.len, sh1, sizeof sh1));
                goto out;
            }
            prev = t;
        }
        if (t >= 0 && first[t] == UINT32_MAX) first[t] = (uint32_t)r;
    }
    qfmt__tk_str_free(&buf);
    /* (a): every split llama.cpp can make is a merge */
    for (size_t id = 0; id < n; id++) {
        if (g->added[id] || g->type[id] == TT_UNUSED) continue;
        const char *s = g->str[id].s;
        size_t len = g->str[id].n;
        for (size_t k = lead_len(s, len); k < len; k += lead_len(s + k, len - k)) {
            int32_t a, b;
            if (!spm_symbol(g, s, k, &a) || !spm_symbol(g, s + k, len - k, &b)) continue;
            if (a < 0 || b < 0 || !pm_get(&mset, a, b, NULL)) {
                qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                              "model.merges: no merge '%s' + '%s' although llama.cpp's SentencePiece tokenizer would "
                              "merge them (into token %zu)",
                              escaped(s, k, sh1, sizeof sh1), escaped(s + k, len - k, sh2, sizeof sh2), id);
                goto out;
            }
        }
        g->scores[id] = first[id] == UINT32_MAX ? 0.0f : -(float)first[id];
    }
    rc = 0;
out:
    free(first);
    free(closed);
    pm_free(&mset);
    return rc;
}

static int to_gguf_spm(tg *g)
{
    const cJSON *nz = cJSON_GetObjectItemCaseSensitive(g->root, "normalizer");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(g->root, "pre_tokenizer");
    const char *nty = type_of(nz), *pty = type_of(pt);
    bool prepend = false;
    if (nty && strcmp(nty, "Sequence") == 0 && absent(pt)) {
        /* the legacy Llama form: [Prepend ▁]? Replace ' ' -> ▁ */
        const cJSON *subs = cJSON_GetObjectItemCaseSensitive(nz, "normalizers");
        const cJSON *s = cJSON_IsArray(subs) ? subs->child : NULL;
        if (s && type_of(s) && strcmp(type_of(s), "Prepend") == 0 && json_str(s, "prepend") &&
            strcmp(json_str(s, "prepend"), SPM_SPACE) == 0) {
            prepend = true;
            s = s->next;
        }
        const cJSON *pat = s ? cJSON_GetObjectItemCaseSensitive(s, "pattern") : NULL;
        if (!s || s->next || !type_of(s) || strcmp(type_of(s), "Replace") != 0 || !json_str(pat, "String") ||
            strcmp(json_str(pat, "String"), " ") != 0 || !json_str(s, "content") ||
            strcmp(json_str(s, "content"), SPM_SPACE) != 0)
            return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                                 "normalizer: not [Prepend '\xE2\x96\x81'] Replace(' ', '\xE2\x96\x81'): llama.cpp's "
                                 "SentencePiece tokenizer only turns spaces into \xE2\x96\x81");
    } else if (absent(nz) && pty && strcmp(pty, "Metaspace") == 0) {
        const char *rep = json_str(pt, "replacement"), *scheme = json_str(pt, "prepend_scheme");
        if (!rep || strcmp(rep, SPM_SPACE) != 0 || json_is_true(pt, "split", true))
            return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                                 "pre_tokenizer: Metaspace that splits or replaces with another character: llama.cpp's "
                                 "SentencePiece tokenizer runs on the whole text");
        /* "first": llama.cpp also prefixes the text after each special token (documented) */
        prepend = scheme ? strcmp(scheme, "never") != 0 : json_is_true(pt, "add_prefix_space", true);
    } else {
        return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                             "normalizer %s / pre_tokenizer %s: a byte-fallback BPE llama.cpp runs as SentencePiece needs "
                             "spaces turned into \xE2\x96\x81 and no pre-tokenizer split",
                             nty ? nty : "null", pty ? pty : "null");
    }
    g->add_space_prefix = prepend ? -1 : 0; /* llama.cpp's default for SentencePiece: prefix */
    if (bpe_options(g, true, false) < 0 || read_merges(g) < 0) return -1;
    for (unsigned b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        if (qfmt__tk_vocab_id(g->vocab, s, 6) < 0)
            return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                                 "model.vocab has no byte token %s: llama.cpp's SentencePiece tokenizer needs all 256", s);
    }
    g->pre = "default";
    const char *unk = json_str(g->model, "unk_token");
    if (unk) g->unk = qfmt__tk_vocab_id(g->vocab, unk, strlen(unk));
    for (size_t id = 0; id < g->n; id++) {
        if (g->type[id]) continue;
        if (g->added[id] == 2) g->type[id] = TT_CONTROL;
        else if (g->added[id]) g->type[id] = TT_USER_DEFINED;
        else if (byte_token(g->str[id].s, g->str[id].n) >= 0) g->type[id] = TT_BYTE;
        else g->type[id] = TT_NORMAL;
    }
    if (spm_scores(g) < 0) return -1;
    for (size_t id = 0; id < g->n; id++)
        if (g->type[id] == TT_USER_DEFINED && has_sub(g->str[id].s, g->str[id].n, SPM_SPACE) &&
            replace_into(g, id, g->str[id].s, g->str[id].n, SPM_SPACE, " ", NULL) < 0)
            return -1;
    return 0;
}

/* ---- bert (WordPiece) --------------------------------------------------------------------- */
static int to_gguf_bert(tg *g)
{
    const cJSON *nz = cJSON_GetObjectItemCaseSensitive(g->root, "normalizer");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(g->root, "pre_tokenizer");
    const char *nty = type_of(nz), *pty = type_of(pt);
    if (!nty || strcmp(nty, "BertNormalizer") != 0 || !json_is_true(nz, "clean_text", true) ||
        !json_is_true(nz, "handle_chinese_chars", true))
        return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                             "normalizer: %s: llama.cpp's WordPiece tokenizer normalizes as BertNormalizer with clean_text "
                             "and handle_chinese_chars",
                             nty ? nty : "null");
    if (!pty || strcmp(pty, "BertPreTokenizer") != 0)
        return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                             "pre_tokenizer: %s: llama.cpp's WordPiece tokenizer splits as BertPreTokenizer",
                             pty ? pty : "null");
    const char *prefix = json_str(g->model, "continuing_subword_prefix");
    if (prefix && strcmp(prefix, "##") != 0)
        return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                             "model.continuing_subword_prefix is not '##' (convert_hf_to_gguf's phantom-space vocabulary "
                             "assumes it)");
    bool lower = json_is_true(nz, "lowercase", true);
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(nz, "strip_accents");
    bool strip = absent(sa) ? lower : cJSON_IsTrue(sa);
    /* llama.cpp: lowercase defaults to true, strip_accents to lowercase */
    g->lowercase = lower; /* written either way: convert_hf_to_gguf writes only true */
    g->strip_accents = strip == lower ? -1 : strip;
    g->pre = "default";
    const char *unk = json_str(g->model, "unk_token");
    if (!unk) unk = "[UNK]";
    g->unk = qfmt__tk_vocab_id(g->vocab, unk, strlen(unk));
    for (size_t id = 0; id < g->n; id++) {
        if (g->type[id]) continue;
        const char *s = g->str[id].s;
        size_t l = g->str[id].n;
        g->type[id] = g->added[id] == 2 ? TT_CONTROL : g->added[id] ? TT_USER_DEFINED : TT_NORMAL;
        if (g->type[id] == TT_CONTROL) continue;
        /* convert_hf_to_gguf's phantom space: "##x" -> "x", "x" -> "▁x" */
        if (l > 2 && memcmp(s, "##", 2) == 0) {
            if (replace_into(g, id, s + 2, l - 2, "", "", NULL) < 0) return -1;
        } else if (replace_into(g, id, s, l, "", "", SPM_SPACE) < 0) {
            return -1;
        }
    }
    return 0;
}

/* The tokens written must still be one string per id (llama.cpp refuses a duplicate): the
 * phantom-space vocabulary, user-defined tokens with U+2581 turned into spaces. */
static int check_unique(tg *g)
{
    tk_vocab *seen = qfmt__tk_vocab_new();
    if (!seen) return TK_OOM(g->err);
    for (size_t id = 0; id < g->n; id++) {
        int r = qfmt__tk_vocab_add(seen, g->str[id].s, g->str[id].n, (int32_t)id);
        if (r != 0) {
            char sh[80];
            int32_t other = qfmt__tk_vocab_id(seen, g->str[id].s, g->str[id].n);
            qfmt__tk_vocab_free(seen);
            if (r < 0) return TK_OOM(g->err);
            return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                                 "tokens %d and %zu are both '%s' as llama.cpp's vocabulary holds them (it refuses that)",
                                 (int)other, id, escaped(g->str[id].s, g->str[id].n, sh, sizeof sh));
        }
    }
    qfmt__tk_vocab_free(seen);
    return 0;
}

/* ---- Special tokens ------------------------------------------------------------------------ */
static int check_given(tg *g, int64_t id, const char *what)
{
    if (id >= (int64_t)g->n)
        return qfmt__tk_fail(g->err, QFMT_E_RANGE, "the %s id %lld given is not a token id (0..%zu)", what, (long long)id,
                             g->n - 1);
    return 0;
}

static int resolve_specials(tg *g, const qfmt_gguf_special_ids *ids)
{
    specials_around sa = {-1, -1, false};
    if (read_post_processor(g, cJSON_GetObjectItemCaseSensitive(g->root, "post_processor"), &sa, 0, "post_processor") < 0)
        return -1;
    int64_t bos = ids ? ids->bos : -1, eos = ids ? ids->eos : -1, unk = ids ? ids->unk : -1, pad = ids ? ids->pad : -1;
    if (check_given(g, bos, "BOS") < 0 || check_given(g, eos, "EOS") < 0 || check_given(g, unk, "unknown") < 0 ||
        check_given(g, pad, "padding") < 0)
        return -1;
    if (sa.first >= (int64_t)g->n || sa.last >= (int64_t)g->n)
        return qfmt__tk_fail(g->err, QFMT_E_CORRUPT, "post_processor: a special token id is not a token id");
    g->pad = pad;
    if (unk >= 0) g->unk = unk;
    if (g->kind == KIND_BERT) {
        /* llama.cpp's WordPiece adds BOS (as [CLS]) and SEP whenever special tokens are asked
         * for; without a post-processor the tokens named [CLS] / [SEP] are its best guess */
        if (sa.template_seen && (sa.first < 0 || sa.last < 0))
            return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                                 "post_processor: not [CLS] $A [SEP]: llama.cpp's WordPiece adds both");
        g->bos = sa.first >= 0 ? sa.first : bos >= 0 ? bos : qfmt__tk_vocab_id(g->vocab, "[CLS]", 5);
        g->sep = sa.last >= 0 ? sa.last : qfmt__tk_vocab_id(g->vocab, "[SEP]", 5);
        g->eos = eos;
        return 0;
    }
    char sh[80];
    if (sa.first >= 0) {
        if (bos >= 0 && bos != sa.first)
            return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                                 "post_processor adds '%s' (id %lld) before the text but the BOS id is %lld: llama.cpp "
                                 "adds its BOS",
                                 escaped(g->str[sa.first].s, g->str[sa.first].n, sh, sizeof sh), (long long)sa.first,
                                 (long long)bos);
        bos = sa.first;
    }
    if (sa.last >= 0) {
        if (eos >= 0 && eos != sa.last)
            return qfmt__tk_fail(g->err, QFMT_E_UNSUPPORTED,
                                 "post_processor adds '%s' (id %lld) after the text but the EOS id is %lld: llama.cpp "
                                 "adds its EOS",
                                 escaped(g->str[sa.last].s, g->str[sa.last].n, sh, sizeof sh), (long long)sa.last,
                                 (long long)eos);
        eos = sa.last;
    }
    bool hf_bos = sa.first >= 0, hf_eos = sa.last >= 0;
    bool def_bos = g->kind == KIND_SPM || strcmp(g->pre, "llama-bpe") == 0;
    g->add_bos = sa.template_seen || hf_bos != def_bos ? hf_bos : -1;
    g->add_eos = sa.template_seen || hf_eos ? hf_eos : -1;
    g->bos = bos;
    g->eos = eos;
    return 0;
}

/* ---- Writing ------------------------------------------------------------------------------ */
static qfmt_status write_all(tg *g, qfmt_gguf_writer *w)
{
    qfmt_error *e = g->err;
    size_t n = g->n;
    const char **strs = malloc(n * sizeof *strs);
    size_t *lens = malloc(n * sizeof *lens);
    int32_t *types = malloc(n * sizeof *types);
    tk_str mbuf = {0};
    size_t *moff = NULL;
    const char **mstr = NULL;
    size_t *mlen = NULL;
    qfmt_status st = QFMT_E_NOMEM;
    if (!strs || !lens || !types) goto nomem;
    for (size_t i = 0; i < n; i++) strs[i] = g->str[i].s, lens[i] = g->str[i].n, types[i] = g->type[i];
    if ((st = qfmt_gguf_writer_set_str(w, "tokenizer.ggml.model", g->kind == KIND_GPT2 ? "gpt2" : g->kind == KIND_SPM ? "llama" : "bert",
                                       g->kind == KIND_SPM ? 5 : 4, e)) != QFMT_OK ||
        (st = qfmt_gguf_writer_set_str(w, "tokenizer.ggml.pre", g->pre, strlen(g->pre), e)) != QFMT_OK ||
        (st = qfmt_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", strs, lens, n, e)) != QFMT_OK)
        goto out;
    if (g->scores && (st = qfmt_gguf_writer_set_array(w, "tokenizer.ggml.scores", QFMT_GGUF_FLOAT32, g->scores, n, e)) != QFMT_OK)
        goto out;
    if ((st = qfmt_gguf_writer_set_array(w, "tokenizer.ggml.token_type", QFMT_GGUF_INT32, types, n, e)) != QFMT_OK) goto out;
    if (g->kind == KIND_GPT2) {
        st = QFMT_E_NOMEM;
        if (!(moff = malloc((g->nm ? g->nm : 1) * sizeof *moff)) || !(mstr = malloc((g->nm ? g->nm : 1) * sizeof *mstr)) ||
            !(mlen = malloc((g->nm ? g->nm : 1) * sizeof *mlen)))
            goto nomem;
        for (size_t i = 0; i < g->nm; i++) {
            moff[i] = mbuf.len;
            if (qfmt__tk_str_put(&mbuf, g->str[g->ma[i]].s, g->str[g->ma[i]].n) < 0 || qfmt__tk_str_putc(&mbuf, ' ') < 0 ||
                qfmt__tk_str_put(&mbuf, g->str[g->mb[i]].s, g->str[g->mb[i]].n) < 0)
                goto nomem;
            mlen[i] = mbuf.len - moff[i];
        }
        for (size_t i = 0; i < g->nm; i++) mstr[i] = mbuf.p + moff[i];
        if ((st = qfmt_gguf_writer_set_str_array(w, "tokenizer.ggml.merges", mstr, mlen, g->nm, e)) != QFMT_OK) goto out;
    }
    static const char *const id_keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                          "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.seperator_token_id",
                                          "tokenizer.ggml.padding_token_id"};
    const int64_t id_vals[] = {g->bos, g->eos, g->unk, g->sep, g->pad};
    for (size_t i = 0; i < 5; i++)
        if (id_vals[i] >= 0 && (st = qfmt_gguf_writer_set_u32(w, id_keys[i], (uint32_t)id_vals[i], e)) != QFMT_OK) goto out;
    if (g->add_bos >= 0 && (st = qfmt_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", g->add_bos, e)) != QFMT_OK)
        goto out;
    if (g->add_eos >= 0 && (st = qfmt_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", g->add_eos, e)) != QFMT_OK)
        goto out;
    if (g->add_space_prefix >= 0 &&
        (st = qfmt_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", g->add_space_prefix, e)) != QFMT_OK)
        goto out;
    if (g->lowercase >= 0 &&
        (st = qfmt_gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.lowercase", g->lowercase, e)) != QFMT_OK)
        goto out;
    if (g->strip_accents >= 0 &&
        (st = qfmt_gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.strip_accents", g->strip_accents, e)) != QFMT_OK)
        goto out;
    st = QFMT_OK;
    goto out;
nomem:
    st = QFMT__FAIL(e, QFMT_E_NOMEM, NULL, NULL, "out of memory");
out:
    free(strs);
    free(lens);
    free(types);
    free(moff);
    free(mstr);
    free(mlen);
    qfmt__tk_str_free(&mbuf);
    return st;
}

static qfmt_status finish(qfmt_error *e, int rc)
{
    if (rc < 0) return e->code ? e->code : QFMT_E_CORRUPT;
    memset(e, 0, sizeof *e);
    e->offset = QFMT_NO_OFFSET;
    return QFMT_OK;
}

qfmt_status qfmt_tokenizer_to_gguf(const char *json, size_t len, const qfmt_gguf_special_ids *ids,
                                   qfmt_gguf_writer *w, qfmt_error *err)
{
    qfmt_error local;
    qfmt_error *e = err ? err : &local;
    memset(e, 0, sizeof *e);
    if (!json || !len || !w) return QFMT__FAIL(e, QFMT_E_ARG, NULL, NULL, "qfmt_tokenizer_to_gguf: invalid argument");
    if (ids) {
        for (size_t i = 0; i < 4; i++)
            if (ids->reserved[i])
                return QFMT__FAIL(e, QFMT_E_ARG, NULL, NULL, "qfmt_tokenizer_to_gguf: ids->reserved is not zero");
        if (ids->bos < -1 || ids->eos < -1 || ids->unk < -1 || ids->pad < -1)
            return QFMT__FAIL(e, QFMT_E_ARG, NULL, NULL, "qfmt_tokenizer_to_gguf: a special id below -1");
    }
    qfmt_tokenizer *t = NULL;
    qfmt_status st = qfmt_tokenizer_load(&t, json, len, e); /* every check of the loader first */
    if (st != QFMT_OK) return st;
    cJSON *root = cJSON_ParseWithLength(json, len);
    tg g;
    memset(&g, 0, sizeof g);
    g.t = t;
    g.err = e;
    g.root = root;
    g.n = qfmt_tokenizer_vocab_size(t);
    g.bos = g.eos = g.unk = g.sep = g.pad = -1;
    g.add_bos = g.add_eos = g.add_space_prefix = g.lowercase = g.strip_accents = -1;
    int rc = -1;
    if (!root) {
        TK_OOM(e);
        goto out;
    }
    g.model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mt = type_of(g.model);
    if (mt && strcmp(mt, "BPE") == 0) g.kind = json_is_true(g.model, "byte_fallback", false) ? KIND_SPM : KIND_GPT2;
    else if (mt && strcmp(mt, "WordPiece") == 0) g.kind = KIND_BERT;
    else {
        char sh[80];
        qfmt__tk_fail(e, QFMT_E_UNSUPPORTED,
                      "model: type '%s': llama.cpp's GGUF tokenizers from tokenizer.json are BPE (gpt2, llama) and "
                      "WordPiece (bert)",
                      mt ? escaped(mt, strlen(mt), sh, sizeof sh) : "?");
        goto out;
    }
    if (build_table(&g) < 0) goto out;
    int r = g.kind == KIND_GPT2 ? to_gguf_gpt2(&g) : g.kind == KIND_SPM ? to_gguf_spm(&g) : to_gguf_bert(&g);
    if (r < 0 || check_unique(&g) < 0 || resolve_specials(&g, ids) < 0) goto out;
    if (write_all(&g, w) != QFMT_OK) goto out;
    rc = 0;
out:
    tg_free(&g);
    cJSON_Delete(root);
    qfmt_tokenizer_free(t);
    return finish(e, rc);
}

/* ==== GGUF -> tokenizer.json (qfmt_tokenizer_from_gguf) ======================================= */

typedef struct {
    const qfmt_gguf *g;
    qfmt_error *err;
    size_t n;
    sv *tok;       /* token texts: views into the file, or owned ([EMPTY_i], WordPiece's) */
    char **owned;
    uint8_t *type; /* llama.cpp's type, after the text-based overrides */
    float *score;
    tk_vocab *vocab; /* GGUF text -> id */
    tk_str out;      /* the JSON */
} fg;

static int gfail(qfmt_error *err, qfmt_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int gfail(qfmt_error *err, qfmt_status code, const char *fmt, ...)
{
    char msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qfmt__merr(err, code, NULL, NULL, "%s", msg);
}
#define G_OOM(err) gfail((err), QFMT_E_NOMEM, "out of memory")

static void fg_free(fg *f)
{
    if (f->owned)
        for (size_t i = 0; i < f->n; i++) free(f->owned[i]);
    free(f->owned);
    free(f->tok);
    free(f->type);
    free(f->score);
    qfmt__tk_vocab_free(f->vocab);
    qfmt__tk_str_free(&f->out);
}

static bool partitioned(uint8_t type) { return type == TT_CONTROL || type == TT_USER_DEFINED || type == TT_UNKNOWN; }

static int own(fg *f, size_t id, const char *s, size_t n, const char *prefix)
{
    size_t pl = prefix ? strlen(prefix) : 0;
    char *p = malloc(pl + n + 1);
    if (!p) return G_OOM(f->err);
    if (pl) memcpy(p, prefix, pl);
    memcpy(p + pl, s, n);
    p[pl + n] = '\0';
    free(f->owned[id]);
    f->owned[id] = p;
    f->tok[id] = (sv){p, pl + n};
    return 0;
}

static int read_tokens(fg *f)
{
    uint32_t et;
    uint64_t cnt;
    qfmt_status st = qfmt_gguf_get_array(f->g, "tokenizer.ggml.tokens", &et, &cnt, NULL);
    if (st == QFMT_E_NOT_FOUND) return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.tokens: missing");
    if (st != QFMT_OK || et != QFMT_GGUF_STRING)
        return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.tokens is not an array of strings");
    if (cnt == 0) return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.tokens is empty");
    if (cnt > TK_MAX_IDS)
        return gfail(f->err, QFMT_E_UNSUPPORTED, "tokenizer.ggml.tokens: %llu tokens (at most 2^24)", (unsigned long long)cnt);
    f->n = (size_t)cnt;
    if (!(f->tok = calloc(f->n, sizeof *f->tok)) || !(f->owned = calloc(f->n, sizeof *f->owned)) ||
        !(f->type = calloc(f->n, 1)) || !(f->vocab = qfmt__tk_vocab_new()))
        return G_OOM(f->err);
    for (size_t i = 0; i < f->n; i++) {
        const char *s;
        size_t l;
        if (qfmt_gguf_array_str(f->g, "tokenizer.ggml.tokens", i, &s, &l, NULL) != QFMT_OK)
            return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.tokens[%zu] cannot be read", i);
        if (!qfmt_utf8_valid((const uint8_t *)s, l, false))
            return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.tokens[%zu] is not UTF-8 text without NUL", i);
        f->tok[i] = (sv){s, l};
        if (l == 0) { /* llama.cpp's name for an empty token */
            char b[40];
            snprintf(b, sizeof b, "[EMPTY_%zu]", i);
            if (own(f, i, b, strlen(b), NULL) < 0) return -1;
        }
        int r = qfmt__tk_vocab_add(f->vocab, f->tok[i].s, f->tok[i].n, (int32_t)i);
        if (r < 0) return G_OOM(f->err);
        if (r > 0) {
            char sh[80];
            return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.tokens: '%s' is token %d and token %zu",
                         escaped(f->tok[i].s, f->tok[i].n, sh, sizeof sh),
                         (int)qfmt__tk_vocab_id(f->vocab, f->tok[i].s, f->tok[i].n), i);
        }
    }
    return 0;
}

static int read_types(fg *f)
{
    uint32_t et;
    uint64_t cnt;
    qfmt_status st = qfmt_gguf_get_array(f->g, "tokenizer.ggml.token_type", &et, &cnt, NULL);
    if (st == QFMT_E_NOT_FOUND) { /* llama.cpp: every token normal */
        memset(f->type, TT_NORMAL, f->n);
        return 0;
    }
    if (st != QFMT_OK || et != QFMT_GGUF_INT32)
        return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.token_type is not an array of int32");
    if (cnt != f->n)
        return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.token_type has %llu entries for %zu tokens",
                     (unsigned long long)cnt, f->n);
    for (size_t i = 0; i < f->n; i++) {
        int64_t v;
        if (qfmt_gguf_array_i64(f->g, "tokenizer.ggml.token_type", i, &v, NULL) != QFMT_OK || v < 0 || v > TT_BYTE)
            return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.token_type[%zu] is not a token type (0..6)", i);
        f->type[i] = (uint8_t)v;
    }
    return 0;
}

static int read_scores(fg *f)
{
    if (!(f->score = calloc(f->n, sizeof *f->score))) return G_OOM(f->err);
    uint32_t et;
    uint64_t cnt;
    qfmt_status st = qfmt_gguf_get_array(f->g, "tokenizer.ggml.scores", &et, &cnt, NULL);
    if (st == QFMT_E_NOT_FOUND) return 0; /* llama.cpp: all 0 */
    if (st != QFMT_OK || (et != QFMT_GGUF_FLOAT32 && et != QFMT_GGUF_INT32))
        return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.scores is not an array of float32 or int32");
    if (cnt != f->n)
        return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.scores has %llu entries for %zu tokens", (unsigned long long)cnt,
                     f->n);
    for (size_t i = 0; i < f->n; i++) {
        double d;
        int64_t v;
        if (et == QFMT_GGUF_FLOAT32) st = qfmt_gguf_array_f64(f->g, "tokenizer.ggml.scores", i, &d, NULL);
        else st = qfmt_gguf_array_i64(f->g, "tokenizer.ggml.scores", i, &v, NULL), d = (double)(float)v;
        if (st != QFMT_OK || isnan(d)) return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.scores[%zu] is not a number", i);
        f->score[i] = (float)d;
    }
    return 0;
}

/* A special id as llama.cpp reads it: its default unless out of range, replaced by the key's
 * value when that is a token id (an out-of-range value keeps the default). -1: none. */
static int read_special(fg *f, const char *key, int64_t dflt, int64_t *out)
{
    int64_t id = dflt >= 0 && dflt < (int64_t)f->n ? dflt : -1;
    uint64_t v;
    qfmt_status st = qfmt_gguf_get_u64(f->g, key, &v, NULL);
    if (st == QFMT_OK && v < f->n) id = (int64_t)v;
    else if (st != QFMT_OK && st != QFMT_E_NOT_FOUND) return gfail(f->err, QFMT_E_CORRUPT, "%s is not an unsigned integer", key);
    *out = id;
    return 0;
}

static int read_bool(fg *f, const char *key, bool dflt, bool *out)
{
    qfmt_status st = qfmt_gguf_get_bool(f->g, key, out, NULL);
    if (st == QFMT_E_NOT_FOUND) *out = dflt;
    else if (st != QFMT_OK) return gfail(f->err, QFMT_E_CORRUPT, "%s is not a bool", key);
    return 0;
}

/* llama.cpp's vocabulary loader turns tokens into control tokens by their text (end of
 * generation, FIM) and, for gpt-oss / Gemma 4, into user-defined / normal ones; what it splits
 * out of the text before the model runs follows. The FIM lists apply only while the GGUF names
 * no such id (llama.cpp takes the first match of an unordered map: here every match). */
static void text_overrides(fg *f)
{
    static const char *const eog[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
        "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
        "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
        "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "[e~[", NULL};
    static const struct {
        const char *key;
        const char *texts[9];
    } fim[] = {
        {"tokenizer.ggml.fim_pre_token_id",
         {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>",
          SPM_SPACE "<PRE>", "<|code_prefix|>", "<|prefix|>", NULL}},
        {"tokenizer.ggml.fim_suf_token_id",
         {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "<SUF>",
          SPM_SPACE "<SUF>", "<|code_suffix|>", "<|suffix|>", NULL}},
        {"tokenizer.ggml.fim_mid_token_id",
         {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>",
          SPM_SPACE "<MID>", "<|code_middle|>", "<|middle|>", NULL}},
        {"tokenizer.ggml.fim_pad_token_id", {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL}},
        {"tokenizer.ggml.fim_rep_token_id", {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL}},
        {"tokenizer.ggml.fim_sep_token_id", {"<|file_sep|>", NULL}},
    };
    int32_t id;
    for (size_t i = 0; eog[i]; i++)
        if ((id = qfmt__tk_vocab_id(f->vocab, eog[i], strlen(eog[i]))) >= 0 && !partitioned(f->type[id]))
            f->type[id] = TT_CONTROL;
    for (size_t k = 0; k < sizeof fim / sizeof *fim; k++) {
        uint64_t idx;
        if (qfmt_gguf_find_key(f->g, fim[k].key, &idx, NULL) == QFMT_OK) continue;
        for (size_t i = 0; fim[k].texts[i]; i++)
            if ((id = qfmt__tk_vocab_id(f->vocab, fim[k].texts[i], strlen(fim[k].texts[i]))) >= 0 &&
                !partitioned(f->type[id]))
                f->type[id] = TT_CONTROL;
    }
    static const char *const user[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
    for (size_t i = 0; i < 4; i++)
        if ((id = qfmt__tk_vocab_id(f->vocab, user[i], strlen(user[i]))) >= 0) f->type[id] = TT_USER_DEFINED;
    int32_t s = qfmt__tk_vocab_id(f->vocab, "</s>", 4);
    if (s >= 0 && qfmt__tk_vocab_id(f->vocab, "<|tool_response>", 16) >= 0) f->type[s] = TT_NORMAL;
}

/* ---- JSON output ---------------------------------------------------------------------------- */
static int jput(fg *f, const char *s) { return qfmt__tk_str_put(&f->out, s, strlen(s)) < 0 ? G_OOM(f->err) : 0; }

static int jstr(fg *f, const char *s, size_t n)
{
    tk_str *o = &f->out;
    if (qfmt__tk_str_reserve(o, n + 2) < 0 || qfmt__tk_str_putc(o, '"') < 0) return G_OOM(f->err);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rc = qfmt__tk_str_put(o, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            rc = qfmt__tk_str_put(o, e, 6);
        } else {
            rc = qfmt__tk_str_putc(o, (char)c);
        }
        if (rc < 0) return G_OOM(f->err);
    }
    return qfmt__tk_str_putc(o, '"') < 0 ? G_OOM(f->err) : 0;
}

static int jnum(fg *f, long long v)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    return jput(f, b);
}

/* "vocab": {token: id, ...} (strings: vs[i], or f->tok when vs is NULL) */
static int emit_vocab(fg *f, const sv *vs)
{
    if (jput(f, "\"vocab\":{") < 0) return -1;
    for (size_t i = 0; i < f->n; i++) {
        sv t = vs ? vs[i] : f->tok[i];
        if ((i && jput(f, ",") < 0) || jstr(f, t.s, t.n) < 0 || jput(f, ":") < 0 || jnum(f, (long long)i) < 0) return -1;
    }
    return jput(f, "}");
}

/* The tokens llama.cpp splits out first, as added tokens matched on the raw text. */
static int emit_added(fg *f, const sv *vs)
{
    if (jput(f, "\"added_tokens\":[") < 0) return -1;
    bool any = false;
    for (size_t i = 0; i < f->n; i++) {
        if (!partitioned(f->type[i])) continue;
        sv t = vs ? vs[i] : f->tok[i];
        if ((any && jput(f, ",") < 0) || jput(f, "{\"id\":") < 0 || jnum(f, (long long)i) < 0 ||
            jput(f, ",\"content\":") < 0 || jstr(f, t.s, t.n) < 0 ||
            jput(f, ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":") < 0 ||
            jput(f, f->type[i] == TT_USER_DEFINED ? "false}" : "true}") < 0)
            return -1;
        any = true;
    }
    return jput(f, "],");
}

static int emit_special(fg *f, const sv *vs, int64_t id, bool *first_entry)
{
    if (id < 0) return 0;
    sv t = vs ? vs[id] : f->tok[id];
    if ((!*first_entry && jput(f, ",") < 0) || jstr(f, t.s, t.n) < 0 || jput(f, ":{\"id\":") < 0 || jstr(f, t.s, t.n) < 0 ||
        jput(f, ",\"ids\":[") < 0 || jnum(f, (long long)id) < 0 || jput(f, "],\"tokens\":[") < 0 || jstr(f, t.s, t.n) < 0 ||
        jput(f, "]}") < 0)
        return -1;
    *first_entry = false;
    return 0;
}

/* "post_processor": a template adding `first` before and `last` after the text (-1: none). */
static int emit_template(fg *f, const sv *vs, int64_t first, int64_t last)
{
    if (jput(f, "\"post_processor\":") < 0) return -1;
    if (first < 0 && last < 0) return jput(f, "null,");
    if (jput(f, "{\"type\":\"TemplateProcessing\",") < 0) return -1;
    for (int pair = 0; pair < 2; pair++) {
        if (jput(f, pair ? ",\"pair\":[" : "\"single\":[") < 0) return -1;
        for (int seq = 0; seq <= pair; seq++) {
            const char *tid = seq ? "1" : "0";
            if (seq && jput(f, ",") < 0) return -1;
            if (first >= 0) {
                sv t = vs ? vs[first] : f->tok[first];
                if (jput(f, "{\"SpecialToken\":{\"id\":") < 0 || jstr(f, t.s, t.n) < 0 || jput(f, ",\"type_id\":") < 0 ||
                    jput(f, tid) < 0 || jput(f, "}},") < 0)
                    return -1;
            }
            if (jput(f, seq ? "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}" : "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}") < 0)
                return -1;
            if (last >= 0) {
                sv t = vs ? vs[last] : f->tok[last];
                if (jput(f, ",{\"SpecialToken\":{\"id\":") < 0 || jstr(f, t.s, t.n) < 0 || jput(f, ",\"type_id\":") < 0 ||
                    jput(f, tid) < 0 || jput(f, "}}") < 0)
                    return -1;
            }
        }
        if (jput(f, "]") < 0) return -1;
    }
    bool fe = true;
    if (jput(f, ",\"special_tokens\":{") < 0 || emit_special(f, vs, first, &fe) < 0 ||
        (last != first && emit_special(f, vs, last, &fe) < 0) || jput(f, "}},") < 0)
        return -1;
    return 0;
}

/* ---- gpt2 --------------------------------------------------------------------------------- */
static int from_gguf_gpt2(fg *f)
{
    const char *pre = NULL;
    size_t pl = 0;
    qfmt_status st = qfmt_gguf_get_str(f->g, "tokenizer.ggml.pre", &pre, &pl, NULL);
    if (st != QFMT_OK && st != QFMT_E_NOT_FOUND) return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.pre is not a string");
    size_t k = 0, npre = sizeof PRE_NAMES / sizeof *PRE_NAMES;
    for (; pre && k < npre; k++)
        if (strlen(PRE_NAMES[k].name) == pl && memcmp(PRE_NAMES[k].name, pre, pl) == 0) break;
    if (!pre || k == npre) {
        char sh[80];
        return gfail(f->err, QFMT_E_UNSUPPORTED,
                     "tokenizer.ggml.pre '%s': llama.cpp's pre-tokenizer of that name is not reproduced (qfmt runs those "
                     "with the GPT-2, Llama 3 and Qwen 2 regexes)",
                     pre ? escaped(pre, pl, sh, sizeof sh) : "default");
    }
    pre_regex re = PRE_NAMES[k].re;
    bool ignore_merges = PRE_NAMES[k].ignore_merges, add_bos = false, add_eos = false;
    int64_t bos = -1, eos = -1;
    if (read_special(f, "tokenizer.ggml.bos_token_id", 11, &bos) < 0 ||
        read_special(f, "tokenizer.ggml.eos_token_id", 11, &eos) < 0 ||
        read_bool(f, "tokenizer.ggml.add_bos_token", PRE_NAMES[k].add_bos, &add_bos) < 0 ||
        read_bool(f, "tokenizer.ggml.add_eos_token", false, &add_eos) < 0)
        return -1;
    if ((add_bos && bos < 0) || (add_eos && eos < 0))
        return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.add_%s_token is true, but tokenizer.ggml.%s_token_id is not set",
                     add_bos && bos < 0 ? "bos" : "eos", add_bos && bos < 0 ? "bos" : "eos");
    uint32_t et;
    uint64_t cnt;
    st = qfmt_gguf_get_array(f->g, "tokenizer.ggml.merges", &et, &cnt, NULL);
    if (st == QFMT_E_NOT_FOUND) return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.merges: missing (a gpt2 tokenizer needs them)");
    if (st != QFMT_OK || et != QFMT_GGUF_STRING)
        return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.merges is not an array of strings");
    /* header */
    if (jput(f, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,") < 0 || emit_added(f, NULL) < 0 ||
        jput(f, "\"normalizer\":null,\"pre_tokenizer\":") < 0)
        return -1;
    if (re == RE_GPT2) {
        if (jput(f, "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},") < 0)
            return -1;
    } else {
        const char *r = re == RE_LLAMA3 ? LLAMA3_RE_CPP : QWEN2_RE_CPP;
        if (jput(f, "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":") < 0 ||
            jstr(f, r, strlen(r)) < 0 ||
            jput(f, "},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                    "\"trim_offsets\":false,\"use_regex\":false}]},") < 0)
            return -1;
    }
    if (emit_template(f, NULL, add_bos ? bos : -1, add_eos ? eos : -1) < 0 ||
        jput(f, "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
                "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
                "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":") < 0 ||
        jput(f, ignore_merges ? "true," : "false,") < 0 || emit_vocab(f, NULL) < 0 || jput(f, ",\"merges\":[") < 0)
        return -1;
    /* merges: "a b" split at the first space after the first byte; llama.cpp keeps the first
     * of two equal pairs (Hugging Face the last: later duplicates are dropped) */
    pairmap seen = {0};
    tk_str ab = {0};
    int rc = -1;
    if (pm_init(&seen, (size_t)cnt) < 0) {
        G_OOM(f->err);
        goto out;
    }
    bool any = false;
    for (uint64_t i = 0; i < cnt; i++) {
        const char *s;
        size_t l;
        char sh[80];
        if (qfmt_gguf_array_str(f->g, "tokenizer.ggml.merges", i, &s, &l, NULL) != QFMT_OK) {
            gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.merges[%llu] cannot be read", (unsigned long long)i);
            goto out;
        }
        const char *sp = l > 1 ? memchr(s + 1, ' ', l - 1) : NULL;
        if (!sp || !qfmt_utf8_valid((const uint8_t *)s, l, false)) {
            gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.merges[%llu] '%s' is not UTF-8 \"a b\"", (unsigned long long)i,
                  escaped(s, l, sh, sizeof sh));
            goto out;
        }
        size_t la = (size_t)(sp - s), lb = l - la - 1;
        int32_t a = qfmt__tk_vocab_id(f->vocab, s, la), b = qfmt__tk_vocab_id(f->vocab, sp + 1, lb), c = -1;
        ab.len = 0;
        if (qfmt__tk_str_put(&ab, s, la) < 0 || qfmt__tk_str_put(&ab, sp + 1, lb) < 0) {
            G_OOM(f->err);
            goto out;
        }
        if (a >= 0 && b >= 0) c = qfmt__tk_vocab_id(f->vocab, ab.p, ab.len);
        if (c < 0) {
            const char *w = a < 0 ? s : b < 0 ? sp + 1 : ab.p;
            size_t wl = a < 0 ? la : b < 0 ? lb : ab.len;
            gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.merges[%llu]: '%s' is not a token", (unsigned long long)i,
                  escaped(w, wl, sh, sizeof sh));
            goto out;
        }
        if (pm_get(&seen, a, b, NULL)) continue;
        pm_put(&seen, a, b, (uint32_t)i);
        if ((any && jput(f, ",") < 0) || jput(f, "[") < 0 || jstr(f, s, la) < 0 || jput(f, ",") < 0 ||
            jstr(f, sp + 1, lb) < 0 || jput(f, "]") < 0)
            goto out;
        any = true;
    }
    rc = jput(f, "]}}");
out:
    pm_free(&seen);
    qfmt__tk_str_free(&ab);
    return rc;
}

/* ---- llama (SentencePiece) ---------------------------------------------------------------- */
typedef struct {
    float score;
    int32_t t, a, b;
    uint32_t k;
} spm_merge;

static int spm_cmp(const void *x, const void *y)
{
    const spm_merge *p = x, *q = y;
    if (p->score != q->score) return p->score > q->score ? -1 : 1;
    if (p->t != q->t) return p->t < q->t ? -1 : 1;
    return p->k < q->k ? -1 : p->k > q->k;
}

static bool fg_symbol(const fg *f, const char *s, size_t n, int32_t *id)
{
    *id = qfmt__tk_vocab_id(f->vocab, s, n);
    if (*id >= 0 && partitioned(f->type[*id])) return false;
    return *id >= 0 || is_one_char(s, n);
}

static int from_gguf_spm(fg *f)
{
    bool add_space = true, extra_ws = false, add_bos = false, add_eos = false;
    int64_t bos = -1, eos = -1, unk = -1;
    if (read_scores(f) < 0 || read_bool(f, "tokenizer.ggml.add_space_prefix", true, &add_space) < 0 ||
        read_bool(f, "tokenizer.ggml.remove_extra_whitespaces", false, &extra_ws) < 0 ||
        read_special(f, "tokenizer.ggml.bos_token_id", 1, &bos) < 0 ||
        read_special(f, "tokenizer.ggml.eos_token_id", 2, &eos) < 0 ||
        read_special(f, "tokenizer.ggml.unknown_token_id", 0, &unk) < 0 ||
        read_bool(f, "tokenizer.ggml.add_bos_token", true, &add_bos) < 0 ||
        read_bool(f, "tokenizer.ggml.add_eos_token", false, &add_eos) < 0)
        return -1;
    if (extra_ws)
        return gfail(f->err, QFMT_E_UNSUPPORTED,
                     "tokenizer.ggml.remove_extra_whitespaces: llama.cpp's whitespace squashing is not reproduced");
    if ((add_bos && bos < 0) || (add_eos && eos < 0))
        return gfail(f->err, QFMT_E_CORRUPT, "tokenizer.ggml.add_%s_token is true, but tokenizer.ggml.%s_token_id is not set",
                     add_bos && bos < 0 ? "bos" : "eos", add_bos && bos < 0 ? "bos" : "eos");
    for (unsigned b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        if (qfmt__tk_vocab_id(f->vocab, s, 6) < 0)
            return gfail(f->err, QFMT_E_UNSUPPORTED,
                         "tokenizer.ggml.tokens has no %s: byte fallback needs all 256 byte tokens", s);
    }
    /* the merges: every split of a token into two symbols; counted first, then filled (at
     * most one per byte of the tokens: bounded by the file) */
    spm_merge *m = NULL;
    size_t nm = 0, targets = 0;
    float first_score = 0;
    bool all_same = true;
    int rc = -1;
    for (int fill = 0; fill < 2; fill++) {
        if (fill && !(m = malloc((nm ? nm : 1) * sizeof *m))) return G_OOM(f->err);
        nm = targets = 0;
        for (size_t id = 0; id < f->n; id++) {
            if (partitioned(f->type[id])) continue;
            const char *s = f->tok[id].s;
            size_t len = f->tok[id].n, before = nm;
            for (size_t k = lead_len(s, len); k < len; k += lead_len(s + k, len - k)) {
                int32_t a, b;
                if (!fg_symbol(f, s, k, &a) || !fg_symbol(f, s + k, len - k, &b)) continue;
                if (a < 0 || b < 0) {
                    char sh[80], sh2[80];
                    gfail(f->err, QFMT_E_UNSUPPORTED,
                          "tokenizer.ggml.tokens[%zu]: llama.cpp merges '%s' + '%s', a character that is no token: BPE "
                          "cannot",
                          id, escaped(s, k, sh, sizeof sh), escaped(s + k, len - k, sh2, sizeof sh2));
                    goto out;
                }
                if (fill) m[nm] = (spm_merge){f->score[id], (int32_t)id, a, b, (uint32_t)k};
                nm++;
            }
            if (nm > before) {
                if (targets++ == 0) first_score = f->score[id];
                else if (f->score[id] != first_score) all_same = false;
            }
        }
    }
    if (targets > 1 && all_same) {
        gfail(f->err, QFMT_E_UNSUPPORTED,
              "tokenizer.ggml.scores: every merged token scores %g: llama.cpp then merges leftmost first, which BPE "
              "merges cannot express",
              (double)first_score);
        goto out;
    }
    qsort(m, nm, sizeof *m, spm_cmp);
    const char *unk_s = unk >= 0 ? f->tok[unk].s : NULL;
    if (jput(f, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,") < 0 || emit_added(f, NULL) < 0 ||
        jput(f, "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[") < 0 ||
        (add_space && jput(f, "{\"type\":\"Prepend\",\"prepend\":\"" SPM_SPACE "\"},") < 0) ||
        jput(f, "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"" SPM_SPACE "\"}]},"
                "\"pre_tokenizer\":null,") < 0 ||
        emit_template(f, NULL, add_bos ? bos : -1, add_eos ? eos : -1) < 0 ||
        jput(f, "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"" SPM_SPACE
                "\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}") < 0 ||
        (add_space && jput(f, ",{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}") < 0) ||
        jput(f, "]},\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":") < 0 ||
        (unk_s ? jstr(f, unk_s, f->tok[unk].n) : jput(f, "null")) < 0 ||
        jput(f, ",\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":true,"
                "\"byte_fallback\":true,\"ignore_merges\":false,") < 0 ||
        emit_vocab(f, NULL) < 0 || jput(f, ",\"merges\":[") < 0)
        goto out;
    for (size_t i = 0; i < nm; i++) {
        sv a = f->tok[m[i].a], b = f->tok[m[i].b];
        if ((i && jput(f, ",") < 0) || jput(f, "[") < 0 || jstr(f, a.s, a.n) < 0 || jput(f, ",") < 0 ||
            jstr(f, b.s, b.n) < 0 || jput(f, "]") < 0)
            goto out;
    }
    rc = jput(f, "]}}");
out:
    free(m);
    return rc;
}

/* ---- bert (WordPiece) --------------------------------------------------------------------- */
static int from_gguf_bert(fg *f)
{
    bool lower = true, strip = true;
    int64_t bos = -1, sep = -1, unk = -1;
    if (read_bool(f, "tokenizer.ggml.normalizer.lowercase", true, &lower) < 0 ||
        read_bool(f, "tokenizer.ggml.normalizer.strip_accents", lower, &strip) < 0 ||
        read_special(f, "tokenizer.ggml.bos_token_id", 101, &bos) < 0 ||
        read_special(f, "tokenizer.ggml.seperator_token_id", 102, &sep) < 0 ||
        read_special(f, "tokenizer.ggml.unknown_token_id", 100, &unk) < 0)
        return -1;
    if (unk < 0)
        return gfail(f->err, QFMT_E_UNSUPPORTED,
                     "tokenizer.ggml.unknown_token_id: none: llama.cpp's WordPiece emits it for words it cannot split");
    /* the phantom-space vocabulary back to WordPiece's: "▁x" -> "x", "x" -> "##x" */
    sv *vs = calloc(f->n, sizeof *vs);
    char **own2 = calloc(f->n, sizeof *own2);
    tk_vocab *seen = qfmt__tk_vocab_new();
    int rc = -1;
    if (!vs || !own2 || !seen) {
        G_OOM(f->err);
        goto out;
    }
    for (size_t i = 0; i < f->n; i++) {
        sv t = f->tok[i];
        if (partitioned(f->type[i])) {
            vs[i] = t;
        } else if (t.n > 3 && memcmp(t.s, SPM_SPACE, 3) == 0) {
            vs[i] = (sv){t.s + 3, t.n - 3};
        } else {
            if (!(own2[i] = malloc(t.n + 3))) {
                G_OOM(f->err);
                goto out;
            }
            memcpy(own2[i], "##", 2);
            memcpy(own2[i] + 2, t.s, t.n);
            own2[i][t.n + 2] = '\0';
            vs[i] = (sv){own2[i], t.n + 2};
        }
        int r = qfmt__tk_vocab_add(seen, vs[i].s, vs[i].n, (int32_t)i);
        if (r < 0) {
            G_OOM(f->err);
            goto out;
        }
        if (r > 0) {
            char sh[80];
            gfail(f->err, QFMT_E_UNSUPPORTED,
                  "tokenizer.ggml.tokens[%zu]: WordPiece's '%s' is also another token's: the vocabulary cannot be written",
                  i, escaped(vs[i].s, vs[i].n, sh, sizeof sh));
            goto out;
        }
    }
    if (jput(f, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,") < 0 || emit_added(f, vs) < 0 ||
        jput(f, "\"normalizer\":{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,"
                "\"strip_accents\":") < 0 ||
        jput(f, strip ? "true" : "false") < 0 || jput(f, ",\"lowercase\":") < 0 || jput(f, lower ? "true" : "false") < 0 ||
        jput(f, "},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},") < 0 || emit_template(f, vs, bos, sep) < 0 ||
        jput(f, "\"decoder\":{\"type\":\"WordPiece\",\"prefix\":\"##\",\"cleanup\":true},\"model\":{\"type\":\"WordPiece\","
                "\"unk_token\":") < 0 ||
        jstr(f, vs[unk].s, vs[unk].n) < 0 ||
        jput(f, ",\"continuing_subword_prefix\":\"##\",\"max_input_chars_per_word\":9007199254740992,") < 0 ||
        emit_vocab(f, vs) < 0 || jput(f, "}}") < 0)
        goto out;
    rc = 0;
out:
    if (own2)
        for (size_t i = 0; i < f->n; i++) free(own2[i]);
    free(own2);
    free(vs);
    qfmt__tk_vocab_free(seen);
    return rc;
}

qfmt_status qfmt_tokenizer_from_gguf(const qfmt_gguf *g, char **json, size_t *len, qfmt_error *err)
{
    qfmt_error local;
    qfmt_error *e = err ? err : &local;
    memset(e, 0, sizeof *e);
    if (json) *json = NULL;
    if (len) *len = 0;
    if (!g || !json || !len) return QFMT__FAIL(e, QFMT_E_ARG, NULL, NULL, "qfmt_tokenizer_from_gguf: invalid argument");
    const char *model;
    size_t ml;
    qfmt_status st = qfmt_gguf_get_str(g, "tokenizer.ggml.model", &model, &ml, NULL);
    if (st == QFMT_E_NOT_FOUND) return QFMT__FAIL(e, QFMT_E_NOT_FOUND, NULL, NULL, "tokenizer.ggml.model: no tokenizer");
    if (st != QFMT_OK) return QFMT__FAIL(e, QFMT_E_CORRUPT, NULL, NULL, "tokenizer.ggml.model is not a string");
    int kind = ml == 4 && memcmp(model, "gpt2", 4) == 0 ? KIND_GPT2 : ml == 5 && memcmp(model, "llama", 5) == 0 ? KIND_SPM
               : ml == 4 && memcmp(model, "bert", 4) == 0                                           ? KIND_BERT
                                                                                                    : -1;
    if (kind < 0) {
        char sh[80];
        return QFMT__FAIL(e, QFMT_E_UNSUPPORTED, NULL, NULL,
                          "tokenizer.ggml.model '%s' is not reproduced (qfmt reads gpt2, llama and bert)",
                          escaped(model, ml, sh, sizeof sh));
    }
    fg f;
    memset(&f, 0, sizeof f);
    f.g = g;
    f.err = e;
    int rc = -1;
    if (read_tokens(&f) < 0 || read_types(&f) < 0) goto out;
    text_overrides(&f);
    rc = kind == KIND_GPT2 ? from_gguf_gpt2(&f) : kind == KIND_SPM ? from_gguf_spm(&f) : from_gguf_bert(&f);
    if (rc == 0 && qfmt__tk_str_reserve(&f.out, 0) < 0) rc = G_OOM(e);
    if (rc == 0) {
        *json = f.out.p;
        *len = f.out.len;
        memset(&f.out, 0, sizeof f.out);
    }
out:
    fg_free(&f);
    return finish(e, rc < 0 ? -1 : 0);
}
