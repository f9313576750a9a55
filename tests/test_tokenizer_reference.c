/*
 * test_tokenizer_reference.c - the tokenizers real models ship, id for id against Hugging
 * Face tokenizers 0.23.2 (tests/data/fixtures/tokenizers/reference.json.zst; ORIGIN.md there):
 * Llama 3 and Qwen 3 (byte-level BPE with a Split regex, NFC), Llama 2 (SentencePiece-style
 * BPE with byte_fallback, Prepend/Replace normalizers, TemplateProcessing) and a BERT-style
 * WordPiece (BertNormalizer, BertPreTokenizer, WordPiece decoder). For each: 40 strings
 * encoded without and with special tokens, decoded back, and heldout.txt in one call.
 */
#include "test_helpers.h"

#include <cjson/cJSON.h>
#include <zstd.h>

#include "qfmt_model.h"

#define DIR QFMT_TEST_DATA_DIR "/fixtures/tokenizers/"

static char *read_zst(const char *path, size_t *len)
{
    size_t n;
    uint8_t *z = th_read_file(path, &n);
    cr_assert(z, "cannot read %s", path);
    unsigned long long size = ZSTD_getFrameContentSize(z, n);
    cr_assert(size != ZSTD_CONTENTSIZE_ERROR, "%s is not zstd", path);
    if (size == ZSTD_CONTENTSIZE_UNKNOWN) size = 64u << 20;
    char *out = malloc((size_t)size + 1);
    cr_assert(out);
    size_t got = ZSTD_decompress(out, (size_t)size, z, n);
    cr_assert(!ZSTD_isError(got), "%s: %s", path, ZSTD_getErrorName(got));
    out[got] = '\0';
    free(z);
    *len = got;
    return out;
}

static cJSON *reference(const char *name)
{
    static cJSON *root; /* parsed once per test process */
    if (!root) {
        size_t n;
        char *text = read_zst(DIR "reference.json.zst", &n);
        root = cJSON_ParseWithLength(text, n);
        free(text);
        cr_assert(root);
    }
    cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "tokenizers"), name);
    cr_assert(t, "no reference for %s", name);
    return t;
}

static qfmt_tokenizer *load(const char *file)
{
    char path[512];
    snprintf(path, sizeof path, DIR "%s", file);
    size_t n;
    char *json = read_zst(path, &n);
    qfmt_tokenizer *t = NULL;
    qfmt_error e;
    qfmt_status s = qfmt_tokenizer_load(&t, json, n, &e);
    free(json);
    cr_assert_eq(s, QFMT_OK, "%s: %s", file, tmsg(&e));
    return t;
}

/* ids against a JSON array; prints the first difference. */
static bool same_ids(const int32_t *ids, size_t n, const cJSON *want, const char *what, const char *text)
{
    size_t wn = (size_t)cJSON_GetArraySize(want), i = 0;
    const cJSON *w = want->child;
    for (; i < n && w; i++, w = w->next)
        if (ids[i] != (int32_t)w->valuedouble) break;
    if (i == n && i == wn) return true;
    cr_log_error("%s of '%.60s': differs at %zu: got %ld, want %ld (got %zu ids, want %zu)", what, text, i,
                 i < n ? (long)ids[i] : -1L, w ? (long)w->valuedouble : -1L, n, wn);
    return false;
}

/* decode(ids) of every case against its "decoded". reference.json does not say whether it
 * was made with skip_special_tokens (tokenizers' Python default, True) or without: the
 * WordPiece texts leave [UNK] out, the Qwen 3 one keeps <|endoftext|>. So each tokenizer's
 * cases must all agree with one of the two modes, the same mode for all its cases. */
static int check_decodes(const qfmt_tokenizer *t, const cJSON *cases, const char *name)
{
    int bad[2] = {0, 0};
    for (int skip = 1; skip >= 0; skip--) {
        for (const cJSON *c = cases->child; c; c = c->next) {
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(c, "ids");
            size_t n = (size_t)cJSON_GetArraySize(ids), k = 0;
            int32_t *v = malloc((n ? n : 1) * sizeof *v);
            cr_assert(v);
            for (const cJSON *x = ids->child; x; x = x->next) v[k++] = (int32_t)x->valuedouble;
            char *dec = NULL;
            size_t dl = 0;
            qfmt_error e;
            cr_assert_eq(qfmt_tokenizer_decode(t, v, n, skip, &dec, &dl, &e), QFMT_OK, "%s", tmsg(&e));
            const char *want = cJSON_GetObjectItemCaseSensitive(c, "decoded")->valuestring;
            if (dl != strlen(want) || memcmp(dec, want, dl) != 0) {
                if (bad[skip]++ < 3)
                    cr_log_info("%s decode (skip_special %d) of '%.40s': got '%.*s', want '%s'", name, skip,
                                cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring, (int)dl, dec, want);
            }
            free(dec);
            free(v);
        }
        if (bad[skip] == 0) return 0;
    }
    cr_log_error("%s: decode matches in neither mode (%d cases differ skipping specials, %d keeping them)", name,
                 bad[1], bad[0]);
    return 1;
}

static void check_tokenizer(const char *name, const char *file)
{
    qfmt_tokenizer *t = load(file);
    cJSON *ref = reference(name);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(ref, "cases");
    int bad = 0, ncases = 0;
    for (const cJSON *c = cases->child; c; c = c->next, ncases++) {
        const char *text = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
        size_t tl = strlen(text);
        int32_t *ids = NULL;
        size_t n = 0;
        qfmt_error e;
        cr_assert_eq(qfmt_tokenizer_encode(t, text, tl, &ids, &n, &e), QFMT_OK, "%s", tmsg(&e));
        bad += !same_ids(ids, n, cJSON_GetObjectItemCaseSensitive(c, "ids"), "ids", text);
        free(ids);
        cr_assert_eq(qfmt_tokenizer_encode_with(t, text, tl, QFMT_TOKENIZE_ADD_SPECIAL, &ids, &n, &e), QFMT_OK, "%s",
                     tmsg(&e));
        bad += !same_ids(ids, n, cJSON_GetObjectItemCaseSensitive(c, "ids_with_specials"), "ids_with_specials", text);
        free(ids);
    }
    cr_assert_eq(ncases, 40);
    bad += check_decodes(t, cases, name);
    size_t hn;
    uint8_t *held = th_read_file(QFMT_TEST_DATA_DIR "/fixtures/heldout.txt", &hn);
    cr_assert(held);
    int32_t *ids = NULL;
    size_t n = 0;
    qfmt_error e;
    cr_assert_eq(qfmt_tokenizer_encode(t, (const char *)held, hn, &ids, &n, &e), QFMT_OK, "%s", tmsg(&e));
    bad += !same_ids(ids, n, cJSON_GetObjectItemCaseSensitive(ref, "heldout_ids"), "heldout ids", "heldout.txt");
    /* heldout.txt decodes back to itself through the byte-level and SentencePiece-style
     * tokenizers (WordPiece lowercases and drops spaces) */
    if (strcmp(name, "wordpiece-kjv") != 0) {
        char *back = NULL;
        size_t bl = 0;
        cr_assert_eq(qfmt_tokenizer_decode(t, ids, n, false, &back, &bl, &e), QFMT_OK, "%s", tmsg(&e));
        cr_expect(bl == hn && memcmp(back, held, hn) == 0, "%s: heldout.txt does not decode back to itself", name);
        free(back);
    }
    free(ids);
    free(held);
    cr_expect_eq(qfmt_tokenizer_vocab_size(t), (size_t)cJSON_GetObjectItemCaseSensitive(ref, "vocab_size")->valuedouble);
    qfmt_tokenizer_free(t);
    cr_assert_eq(bad, 0, "%s: %d mismatches (see the log)", name, bad);
}

Test(tokenizer_reference, llama3) { check_tokenizer("llama3", "llama3.tokenizer.json.zst"); }
Test(tokenizer_reference, qwen3) { check_tokenizer("qwen3", "qwen3.tokenizer.json.zst"); }
Test(tokenizer_reference, llama2) { check_tokenizer("llama2", "llama2.tokenizer.json.zst"); }
Test(tokenizer_reference, wordpiece) { check_tokenizer("wordpiece-kjv", "wordpiece-kjv.tokenizer.json.zst"); }
