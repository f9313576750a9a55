/*
 * test_tk_gguf.c - tokenizers through llama.cpp's GGUF keys (qfmt_tokenizer_to_gguf,
 * qfmt_tokenizer_from_gguf; libqfmt_model/src/tokenizer/tk_gguf.c):
 *   1. the real tokenizers (the KJV byte-level BPE, Llama 3, Qwen 3, Llama 2, a WordPiece):
 *      tokenizer.json -> GGUF file -> tokenizer.json encodes the 40 reference texts and
 *      heldout.txt as Hugging Face does (reference.json), except where llama.cpp itself
 *      differs (each case below), and always as llama.cpp did on that GGUF
 *      (tests/data/tokenizers/gguf/llama_cpp_ids.json, recorded from llama.cpp; ORIGIN.md);
 *   2. the two GGUF files llama.cpp b10472 wrote for the fixtures: from_gguf gives a tokenizer
 *      that encodes everything as the fixtures' tokenizer.json does;
 *   3. to_gguf of the fixtures' tokenizer.json writes the tokenizer.ggml.* keys those files
 *      hold, element for element;
 *   4. hostile tokenizer.ggml.* arrays and refused tokenizer.json files: clear errors, no crash.
 */
#include "test_helpers.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <zstd.h>

#include "qfmt_model.h"

#define DATA QFMT_TEST_DATA_DIR
#define TOKDIR DATA "/fixtures/tokenizers/"

/* ---- Files ------------------------------------------------------------------------------------ */
static char *read_zst(const char *path, size_t *len)
{
    size_t n;
    uint8_t *z = th_read_file(path, &n);
    cr_assert(z, "cannot read %s", path);
    unsigned long long size = ZSTD_getFrameContentSize(z, n);
    cr_assert(size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN, "%s: no content size", path);
    char *out = malloc((size_t)size + 1);
    cr_assert(out);
    size_t got = ZSTD_decompress(out, (size_t)size, z, n);
    cr_assert(!ZSTD_isError(got), "%s: %s", path, ZSTD_getErrorName(got));
    out[got] = '\0';
    free(z);
    *len = got;
    return out;
}

static char *read_text(const char *path, size_t *len)
{
    size_t n;
    uint8_t *b = th_read_file(path, &n);
    cr_assert(b, "cannot read %s", path);
    char *s = malloc(n + 1);
    cr_assert(s);
    memcpy(s, b, n);
    s[n] = '\0';
    free(b);
    *len = n;
    return s;
}

static cJSON *json_file(const char *path, bool zst)
{
    size_t n;
    char *t = zst ? read_zst(path, &n) : read_text(path, &n);
    cJSON *j = cJSON_ParseWithLength(t, n);
    free(t);
    cr_assert(j, "%s is not JSON", path);
    return j;
}

/* reference.json's entry for a tokenizer (Hugging Face's ids) and llama_cpp_ids.json's
 * (llama.cpp's); both files are parsed once per process. */
static cJSON *reference(const char *name)
{
    static cJSON *root;
    if (!root) root = json_file(TOKDIR "reference.json.zst", true);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "tokenizers"), name);
    cr_assert(t, "no reference for %s", name);
    return t;
}

static cJSON *llama_cpp(const char *name)
{
    static cJSON *root;
    if (!root) root = json_file(DATA "/tokenizers/gguf/llama_cpp_ids.json", false);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "tokenizers"), name);
    cr_assert(t, "no llama.cpp ids for %s", name);
    return t;
}

static char *heldout(size_t *n) { return read_text(DATA "/fixtures/heldout.txt", n); }

/* ---- Ids ----------------------------------------------------------------------------------------- */
typedef struct {
    int32_t *v;
    size_t n;
} idv;

static idv json_ids(const cJSON *arr)
{
    idv r = {malloc(((size_t)cJSON_GetArraySize(arr) + 1) * sizeof(int32_t)), 0};
    cr_assert(r.v);
    for (const cJSON *x = arr->child; x; x = x->next) r.v[r.n++] = (int32_t)x->valuedouble;
    return r;
}

static idv enc(const qfmt_tokenizer *t, const char *text, size_t len, bool special)
{
    idv r = {NULL, 0};
    qfmt_error e;
    cr_assert_eq(qfmt_tokenizer_encode_with(t, text, len, special ? QFMT_TOKENIZE_ADD_SPECIAL : 0, &r.v, &r.n, &e), QFMT_OK,
                 "%s", tmsg(&e));
    return r;
}

static bool same(idv a, idv b) { return a.n == b.n && (a.n == 0 || memcmp(a.v, b.v, a.n * sizeof *a.v) == 0); }

static void log_diff(const char *what, const char *text, idv got, idv want)
{
    size_t i = 0;
    while (i < got.n && i < want.n && got.v[i] == want.v[i]) i++;
    cr_log_error("%s of '%.50s': differs at %zu: got %ld, want %ld (got %zu ids, want %zu)", what, text, i,
                 i < got.n ? (long)got.v[i] : -1L, i < want.n ? (long)want.v[i] : -1L, got.n, want.n);
}

/* FNV-1a 64 of the ids as little-endian int32 (llama_cpp_ids.json's heldout hash). */
static uint64_t fnv_ids(idv ids)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < ids.n; i++)
        for (int k = 0; k < 4; k++) h = (h ^ (((uint32_t)ids.v[i] >> (8 * k)) & 0xFF)) * 0x100000001b3ull;
    return h;
}

static bool same_as_llama_cpp_heldout(const cJSON *cpp, idv got)
{
    char hex[32];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv_ids(got));
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(cpp, "heldout_count");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(cpp, "heldout_fnv1a64");
    return cJSON_IsNumber(c) && (size_t)c->valuedouble == got.n && cJSON_IsString(h) && strcmp(h->valuestring, hex) == 0;
}

/* ---- Through a GGUF file ----------------------------------------------------------------------------- */
/* tokenizer.json -> qfmt_tokenizer_to_gguf -> a GGUF file (tokenizer keys only) ->
 * qfmt_gguf_open -> qfmt_tokenizer_from_gguf -> qfmt_tokenizer_load. */
static qfmt_tokenizer *via_gguf(const char *json, size_t len, const qfmt_gguf_special_ids *ids)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/tokenizer.gguf", dir);
    qfmt_error e;
    qfmt_gguf_writer *w = NULL;
    cr_assert_eq(qfmt_gguf_writer_create(&w, path, &e), QFMT_OK, "%s", tmsg(&e));
    cr_assert_eq(qfmt_tokenizer_to_gguf(json, len, ids, w, &e), QFMT_OK, "to_gguf: %s", tmsg(&e));
    cr_assert_eq(qfmt_gguf_writer_commit(w, &e), QFMT_OK, "%s", tmsg(&e));
    qfmt_gguf_writer_free(w);
    qfmt_gguf *g = NULL;
    cr_assert_eq(qfmt_gguf_open(&g, path, &e), QFMT_OK, "%s", tmsg(&e));
    char *back = NULL;
    size_t bl = 0;
    cr_assert_eq(qfmt_tokenizer_from_gguf(g, &back, &bl, &e), QFMT_OK, "from_gguf: %s", tmsg(&e));
    cr_assert(back && back[bl] == '\0');
    qfmt_gguf_close(g);
    qfmt_tokenizer *t = NULL;
    cr_assert_eq(qfmt_tokenizer_load(&t, back, bl, &e), QFMT_OK, "load of from_gguf's tokenizer.json: %s", tmsg(&e));
    free(back);
    th_rmtree(dir);
    return t;
}

static qfmt_tokenizer *load_json(const char *json, size_t len)
{
    qfmt_tokenizer *t = NULL;
    qfmt_error e;
    cr_assert_eq(qfmt_tokenizer_load(&t, json, len, &e), QFMT_OK, "%s", tmsg(&e));
    return t;
}

/* ==== 1. The real tokenizers, there and back ========================================================== */

/* Where llama.cpp does not give Hugging Face's ids (recorded in llama_cpp_ids.json), the
 * cause, derived independently here: `orig` is the tokenizer.json as Hugging Face runs it.
 * Returns the ids llama.cpp gives, or {NULL, 0} when it agrees with Hugging Face. */
static idv llama_cpp_differs(const char *name, const char *text, const char *json, size_t jlen,
                             const qfmt_tokenizer *orig)
{
    idv r = {NULL, 0};
    if (strcmp(name, "qwen3") == 0 && strncmp(text, "combining: ", 11) == 0) {
        /* llama.cpp's BPE tokenizers apply no normalizer: Qwen's NFC is not run, the combining
         * marks stay separate. llama.cpp's ids are the tokenizer's without its NFC. */
        cJSON *root = cJSON_ParseWithLength(json, jlen);
        cr_assert(root);
        const char *nty = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "type"));
        cr_assert(nty && strcmp(nty, "NFC") == 0, "qwen3's tokenizer.json no longer has its NFC normalizer");
        cr_assert(cJSON_ReplaceItemInObjectCaseSensitive(root, "normalizer", cJSON_CreateNull()));
        char *copy = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        cr_assert(copy);
        qfmt_tokenizer *raw = load_json(copy, strlen(copy));
        r = enc(raw, text, strlen(text), false);
        qfmt_tokenizer_free(raw);
        free(copy);
        return r;
    }
    if (strcmp(name, "wordpiece-kjv") == 0 && strlen(text) > 100 && strspn(text, "x") == strlen(text)) {
        /* llama.cpp's WordPiece has no max_input_chars_per_word: Hugging Face gives [UNK] for a
         * word of more than 100 characters, llama.cpp splits it: x, then ##x for each other x */
        size_t n = strlen(text);
        r.v = malloc(n * sizeof *r.v);
        cr_assert(r.v);
        r.v[0] = qfmt_tokenizer_token_id(orig, "x");
        for (size_t i = 1; i < n; i++) r.v[i] = qfmt_tokenizer_token_id(orig, "##x");
        r.n = n;
        cr_assert(r.v[0] >= 0 && r.v[1] >= 0);
        return r;
    }
    return r;
}

/* The ids with special tokens llama.cpp gives (llama_tokenize with add_special) around its
 * plain ids `want`: WordPiece adds BOS ([CLS]) and SEP ([SEP]) always (llama-vocab.cpp,
 * LLAMA_VOCAB_TYPE_WPM), whatever the tokenizer.json's post-processor says (wordpiece-kjv has
 * none: Hugging Face adds nothing); the others add BOS / EOS as add_bos_token / add_eos_token
 * say, which to_gguf wrote from the post-processor: what Hugging Face adds around its own ids
 * (hf, hf_ws), as many as llama.cpp's recorded add_bos / add_eos say. */
static idv with_specials(const char *name, const qfmt_tokenizer *orig, idv want, idv hf, idv hf_ws, const cJSON *cpp)
{
    idv r = {malloc((want.n + hf_ws.n + 2) * sizeof(int32_t)), 0};
    cr_assert(r.v);
    if (strcmp(name, "wordpiece-kjv") == 0) {
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cpp, "add_bos")));
        r.v[r.n++] = qfmt_tokenizer_token_id(orig, "[CLS]");
        if (want.n) memcpy(r.v + r.n, want.v, want.n * sizeof *want.v);
        r.n += want.n;
        r.v[r.n++] = qfmt_tokenizer_token_id(orig, "[SEP]");
        return r;
    }
    size_t p = 0;
    if (hf.n == 0) p = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cpp, "add_bos")) && hf_ws.n ? 1 : 0;
    else
        while (p + hf.n <= hf_ws.n && memcmp(hf_ws.v + p, hf.v, hf.n * sizeof *hf.v) != 0) p++;
    cr_assert(p + hf.n <= hf_ws.n, "%s: Hugging Face's ids with special tokens do not hold its plain ids", name);
    size_t s = hf_ws.n - p - hf.n;
    cr_assert_eq(p, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cpp, "add_bos")) ? 1u : 0u, "%s: BOS", name);
    cr_assert_eq(s, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cpp, "add_eos")) ? 1u : 0u, "%s: EOS", name);
    if (p) memcpy(r.v, hf_ws.v, p * sizeof *r.v);
    if (want.n) memcpy(r.v + p, want.v, want.n * sizeof *want.v);
    if (s) memcpy(r.v + p + want.n, hf_ws.v + p + hf.n, s * sizeof *r.v);
    r.n = p + want.n + s;
    return r;
}

static idv copy_ids(idv a)
{
    idv r = {malloc(a.n * sizeof *a.v + 1), a.n};
    cr_assert(r.v);
    if (a.n) memcpy(r.v, a.v, a.n * sizeof *a.v);
    return r;
}

/* `differences`: how many of the 40 texts llama.cpp encodes otherwise than Hugging Face (each
 * a case of llama_cpp_differs). */
static void check_tokenizer(const char *name, const char *json, size_t jlen, const qfmt_gguf_special_ids *ids,
                            bool have_reference, int differences)
{
    qfmt_tokenizer *orig = load_json(json, jlen);
    qfmt_tokenizer *t = via_gguf(json, jlen, ids);
    cJSON *ref = have_reference ? reference(name) : NULL;
    cJSON *cpp = llama_cpp(name);
    const cJSON *texts = cJSON_GetObjectItemCaseSensitive(reference("llama3"), "cases"); /* the same 40 texts */
    const cJSON *cases = ref ? cJSON_GetObjectItemCaseSensitive(ref, "cases") : texts;
    const cJSON *cpp_ids = cJSON_GetObjectItemCaseSensitive(cpp, "cases");
    cr_assert_eq(cJSON_GetArraySize(cases), 40);
    cr_assert_eq(cJSON_GetArraySize(cpp_ids), 40);
    int bad = 0, differs = 0;
    const cJSON *c = cases->child, *cc = cpp_ids->child;
    for (; c && cc; c = c->next, cc = cc->next) {
        const char *text = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
        size_t tl = strlen(text);
        idv hf = ref ? json_ids(cJSON_GetObjectItemCaseSensitive(c, "ids")) : enc(orig, text, tl, false);
        idv hf_ws = ref ? json_ids(cJSON_GetObjectItemCaseSensitive(c, "ids_with_specials")) : enc(orig, text, tl, true);
        idv want = llama_cpp_differs(name, text, json, jlen, orig);
        if (want.v) {
            differs++;
            cr_expect(!same(want, hf), "%s: '%.40s' is listed as a difference but gives Hugging Face's ids", name, text);
        } else {
            want = copy_ids(hf);
        }
        idv lc = json_ids(cc), got = enc(t, text, tl, false);
        /* llama.cpp gave those ids (recorded), and from_gguf's tokenizer gives them */
        if (!same(lc, want)) bad++, log_diff("llama.cpp's recorded ids vs the expected", text, lc, want);
        if (!same(got, want)) bad++, log_diff("ids", text, got, want);
        idv ws = with_specials(name, orig, want, hf, hf_ws, cpp);
        idv gs = enc(t, text, tl, true);
        if (!same(gs, ws)) bad++, log_diff("ids with special tokens", text, gs, ws);
        free(hf.v), free(hf_ws.v), free(want.v), free(lc.v), free(got.v), free(ws.v), free(gs.v);
    }
    cr_expect_eq(differs, differences, "%s: %d texts llama.cpp encodes otherwise than Hugging Face, want %d", name, differs,
                 differences);
    /* heldout.txt in one call: llama.cpp's ids are Hugging Face's for all five */
    size_t hn;
    char *held = heldout(&hn);
    idv got = enc(t, held, hn, false);
    idv want = ref ? json_ids(cJSON_GetObjectItemCaseSensitive(ref, "heldout_ids")) : enc(orig, held, hn, false);
    if (!same(got, want)) bad++, log_diff("heldout ids", "heldout.txt", got, want);
    cr_expect(same_as_llama_cpp_heldout(cpp, got), "%s: heldout.txt: not llama.cpp's ids", name);
    if (strcmp(name, "wordpiece-kjv") != 0) { /* WordPiece lowercases and drops spaces */
        char *back = NULL;
        size_t bl = 0;
        qfmt_error e;
        cr_assert_eq(qfmt_tokenizer_decode(t, got.v, got.n, false, &back, &bl, &e), QFMT_OK, "%s", tmsg(&e));
        cr_expect(bl == hn && memcmp(back, held, hn) == 0, "%s: heldout.txt does not decode back to itself", name);
        free(back);
    }
    cr_expect_eq(qfmt_tokenizer_vocab_size(t), qfmt_tokenizer_vocab_size(orig));
    free(got.v), free(want.v), free(held);
    qfmt_tokenizer_free(t);
    qfmt_tokenizer_free(orig);
    cr_assert_eq(bad, 0, "%s: %d mismatches (see the log)", name, bad);
}

static void check_zst(const char *name, const char *file, int differences)
{
    char path[512];
    snprintf(path, sizeof path, TOKDIR "%s", file);
    size_t n;
    char *json = read_zst(path, &n);
    check_tokenizer(name, json, n, NULL, true, differences);
    free(json);
}

/* The KJV byte-level BPE (no reference.json entry: its reference is its own tokenizer.json as
 * Hugging Face runs it, and heldout.safetensors). bos / eos 0 as the fixtures' config.json. */
Test(tk_gguf, kjv_roundtrip)
{
    size_t n;
    char *json = read_text(DATA "/fixtures/tokenizer.json", &n);
    qfmt_gguf_special_ids ids = {0, 0, -1, -1, {0}};
    check_tokenizer("kjv", json, n, &ids, false, 0);
    free(json);
}
Test(tk_gguf, llama3_roundtrip) { check_zst("llama3", "llama3.tokenizer.json.zst", 0); }
Test(tk_gguf, qwen3_roundtrip) { check_zst("qwen3", "qwen3.tokenizer.json.zst", 1); }
Test(tk_gguf, llama2_roundtrip) { check_zst("llama2", "llama2.tokenizer.json.zst", 0); }
Test(tk_gguf, wordpiece_roundtrip) { check_zst("wordpiece-kjv", "wordpiece-kjv.tokenizer.json.zst", 1); }

/* ==== 2. GGUF files llama.cpp wrote ============================================================== */

static qfmt_gguf *open_zst_gguf(const char *file, char **buf)
{
    char path[512];
    snprintf(path, sizeof path, DATA "/gguf/%s", file);
    size_t n;
    *buf = read_zst(path, &n);
    qfmt_gguf *g = NULL;
    qfmt_error e;
    cr_assert_eq(qfmt_gguf_open_memory(&g, *buf, n, &e), QFMT_OK, "%s: %s", file, tmsg(&e));
    return g;
}

/* heldout.safetensors' "tokens": Hugging Face's ids of heldout.txt with the KJV tokenizer. */
static idv heldout_tokens(void)
{
    qfmt_st_file *f = NULL;
    qfmt_error e;
    cr_assert_eq(qfmt_st_open(&f, DATA "/fixtures/heldout.safetensors", NULL, &e), QFMT_OK, "%s", tmsg(&e));
    uint64_t i;
    qfmt_st_tensor st;
    cr_assert_eq(qfmt_st_find(f, "tokens", &i, &e), QFMT_OK, "%s", tmsg(&e));
    cr_assert_eq(qfmt_st_get(f, i, &st, &e), QFMT_OK, "%s", tmsg(&e));
    cr_assert_str_eq(st.dtype, "I32");
    idv r = {malloc(st.nelements * sizeof(int32_t) + 1), (size_t)st.nelements};
    cr_assert(r.v);
    for (size_t k = 0; k < r.n; k++) r.v[k] = (int32_t)th_get32((const uint8_t *)st.data + 4 * k);
    qfmt_st_close(f);
    return r;
}

static void check_llama_cpp_file(const char *name, const char *file)
{
    char *buf;
    qfmt_gguf *g = open_zst_gguf(file, &buf);
    char *json = NULL;
    size_t jl = 0;
    qfmt_error e;
    cr_assert_eq(qfmt_tokenizer_from_gguf(g, &json, &jl, &e), QFMT_OK, "%s", tmsg(&e));
    qfmt_tokenizer *t = load_json(json, jl);
    free(json);
    qfmt_gguf_close(g);
    free(buf);
    size_t fn;
    char *fj = read_text(DATA "/fixtures/tokenizer.json", &fn);
    qfmt_tokenizer *fix = load_json(fj, fn);
    free(fj);
    cJSON *cpp = llama_cpp(name);
    const cJSON *texts = cJSON_GetObjectItemCaseSensitive(reference("llama3"), "cases");
    const cJSON *cc = cJSON_GetObjectItemCaseSensitive(cpp, "cases")->child;
    int bad = 0;
    for (const cJSON *c = texts->child; c && cc; c = c->next, cc = cc->next) {
        const char *text = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
        size_t tl = strlen(text);
        for (int sp = 0; sp < 2; sp++) {
            idv got = enc(t, text, tl, sp), want = enc(fix, text, tl, sp);
            if (!same(got, want)) bad++, log_diff(sp ? "ids with special tokens" : "ids", text, got, want);
            free(got.v), free(want.v);
        }
        idv got = enc(t, text, tl, false), lc = json_ids(cc);
        if (!same(got, lc)) bad++, log_diff("ids vs llama.cpp's", text, got, lc);
        free(got.v), free(lc.v);
    }
    size_t hn;
    char *held = heldout(&hn);
    idv got = enc(t, held, hn, false), want = heldout_tokens();
    if (!same(got, want)) bad++, log_diff("heldout ids", "heldout.txt", got, want);
    cr_expect(same_as_llama_cpp_heldout(cpp, got), "%s: heldout.txt: not llama.cpp's ids", name);
    free(got.v), free(want.v), free(held);
    cr_expect_eq(qfmt_tokenizer_vocab_size(t), qfmt_tokenizer_vocab_size(fix));
    qfmt_tokenizer_free(t);
    qfmt_tokenizer_free(fix);
    cr_assert_eq(bad, 0, "%s: %d mismatches (see the log)", name, bad);
}

Test(tk_gguf, from_llama_cpp_gpt2_kjv) { check_llama_cpp_file("gpt2-kjv.Q8_0", "gpt2-kjv.Q8_0.gguf.zst"); }
Test(tk_gguf, from_llama_cpp_llama_kjv) { check_llama_cpp_file("llama-kjv.Q4_K_M", "llama-kjv.Q4_K_M.gguf.zst"); }

/* ==== 3. to_gguf writes what llama.cpp's converter wrote =========================================== */

/* Every tokenizer.ggml.* key of `a` is in `b` with the same type and value, element for
 * element, and the other way round. */
static void same_tokenizer_keys(const qfmt_gguf *a, const qfmt_gguf *b, const char *what)
{
    for (int pass = 0; pass < 2; pass++) {
        const qfmt_gguf *x = pass ? b : a, *y = pass ? a : b;
        uint64_t seen = 0;
        for (uint64_t i = 0; i < qfmt_gguf_kv_count(x); i++) {
            qfmt_gguf_kv kx, ky;
            uint64_t j;
            qfmt_error e;
            cr_assert_eq(qfmt_gguf_kv_get(x, i, &kx, &e), QFMT_OK);
            if (strncmp(kx.key, "tokenizer.", 10) != 0) continue;
            seen++;
            cr_assert_eq(qfmt_gguf_find_key(y, kx.key, &j, &e), QFMT_OK, "%s: %s only in one file", what, kx.key);
            cr_assert_eq(qfmt_gguf_kv_get(y, j, &ky, &e), QFMT_OK);
            cr_assert_eq(kx.type, ky.type, "%s: %s: types differ", what, kx.key);
            cr_assert_eq(kx.elem_type, ky.elem_type, "%s: %s: element types differ", what, kx.key);
            cr_assert_eq(kx.count, ky.count, "%s: %s: %llu vs %llu elements", what, kx.key, (unsigned long long)kx.count,
                         (unsigned long long)ky.count);
            if (pass) continue; /* values: compared once */
            if (kx.type == QFMT_GGUF_ARRAY && kx.elem_type == QFMT_GGUF_STRING) {
                for (uint64_t k = 0; k < kx.count; k++) {
                    const char *sa, *sb;
                    size_t la, lb;
                    cr_assert_eq(qfmt_gguf_array_str(x, kx.key, k, &sa, &la, &e), QFMT_OK);
                    cr_assert_eq(qfmt_gguf_array_str(y, kx.key, k, &sb, &lb, &e), QFMT_OK);
                    cr_assert(la == lb && memcmp(sa, sb, la) == 0, "%s: %s[%llu]: '%.*s' vs '%.*s'", what, kx.key,
                              (unsigned long long)k, (int)la, sa, (int)lb, sb);
                }
            } else {
                cr_assert(kx.size == ky.size && memcmp(kx.data, ky.data, kx.size) == 0, "%s: %s: values differ", what,
                          kx.key);
            }
        }
        cr_assert(seen > 0);
    }
}

Test(tk_gguf, kjv_keys_as_llama_cpp_wrote_them)
{
    size_t n;
    char *json = read_text(DATA "/fixtures/tokenizer.json", &n);
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/kjv.gguf", dir);
    qfmt_error e;
    qfmt_gguf_writer *w = NULL;
    cr_assert_eq(qfmt_gguf_writer_create(&w, path, &e), QFMT_OK, "%s", tmsg(&e));
    /* bos / eos: the fixtures' config.json (0, 0), as convert_hf_to_gguf read them */
    qfmt_gguf_special_ids ids = {0, 0, -1, -1, {0}};
    cr_assert_eq(qfmt_tokenizer_to_gguf(json, n, &ids, w, &e), QFMT_OK, "%s", tmsg(&e));
    cr_assert_eq(qfmt_gguf_writer_commit(w, &e), QFMT_OK, "%s", tmsg(&e));
    qfmt_gguf_writer_free(w);
    free(json);
    qfmt_gguf *ours = NULL;
    cr_assert_eq(qfmt_gguf_open(&ours, path, &e), QFMT_OK, "%s", tmsg(&e));
    /* model gpt2, pre "gpt-2" (the GPT-2 regex: what the converter wrote too), 4096 tokens with
     * the five added ones control (3), 3835 merges, bos / eos: the same keys, element for element */
    const char *s;
    size_t sl;
    cr_assert_eq(qfmt_gguf_get_str(ours, "tokenizer.ggml.pre", &s, &sl, &e), QFMT_OK);
    cr_assert(sl == 5 && memcmp(s, "gpt-2", 5) == 0);
    const char *files[] = {"gpt2-kjv.Q8_0.gguf.zst", "llama-kjv.Q4_K_M.gguf.zst"};
    for (int i = 0; i < 2; i++) {
        char *buf;
        qfmt_gguf *theirs = open_zst_gguf(files[i], &buf);
        same_tokenizer_keys(ours, theirs, files[i]);
        qfmt_gguf_close(theirs);
        free(buf);
    }
    qfmt_gguf_close(ours);
    th_rmtree(dir);
}

/* The other tokenizers' GGUF model / pre / flags: what llama.cpp runs them as. */
static qfmt_gguf *gguf_of(const char *json, size_t n, const qfmt_gguf_special_ids *ids, char *dir, qfmt_status *st,
                          qfmt_error *e)
{
    char path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/t.gguf", dir);
    qfmt_gguf_writer *w = NULL;
    cr_assert_eq(qfmt_gguf_writer_create(&w, path, e), QFMT_OK, "%s", tmsg(e));
    *st = qfmt_tokenizer_to_gguf(json, n, ids, w, e);
    qfmt_gguf *g = NULL;
    if (*st == QFMT_OK) {
        qfmt_error e2;
        cr_assert_eq(qfmt_gguf_writer_commit(w, &e2), QFMT_OK, "%s", tmsg(&e2));
        cr_assert_eq(qfmt_gguf_open(&g, path, &e2), QFMT_OK, "%s", tmsg(&e2));
    }
    qfmt_gguf_writer_free(w);
    return g;
}

static void expect_str(const qfmt_gguf *g, const char *key, const char *want)
{
    const char *s;
    size_t l;
    qfmt_error e;
    cr_assert_eq(qfmt_gguf_get_str(g, key, &s, &l, &e), QFMT_OK, "%s: %s", key, tmsg(&e));
    cr_expect(l == strlen(want) && memcmp(s, want, l) == 0, "%s is '%.*s', want '%s'", key, (int)l, s, want);
}

static int64_t get_int(const qfmt_gguf *g, const char *key) /* -1: absent */
{
    int64_t v;
    return qfmt_gguf_get_i64(g, key, &v, NULL) == QFMT_OK ? v : -1;
}

static int get_flag(const qfmt_gguf *g, const char *key) /* -1: absent */
{
    bool b;
    return qfmt_gguf_get_bool(g, key, &b, NULL) == QFMT_OK ? b : -1;
}

Test(tk_gguf, model_pre_and_flags)
{
    struct {
        const char *file, *model, *pre;
        int add_bos, add_eos;
        int64_t bos, sep, unk;
    } want[] = {
        /* Llama 3's tokenizer.json adds no <|begin_of_text|>: add_bos_token false (llama.cpp's
         * llama-bpe default is true) */
        {"llama3.tokenizer.json.zst", "gpt2", "llama-bpe", 0, -1, -1, -1, -1},
        {"qwen3.tokenizer.json.zst", "gpt2", "qwen2", -1, -1, -1, -1, -1},
        /* TemplateProcessing <s> $A: add_bos_token true, add_eos_token false (as SpecialVocab) */
        {"llama2.tokenizer.json.zst", "llama", "default", 1, 0, 1, -1, 0},
        /* no post-processor: [CLS] / [SEP] by name */
        {"wordpiece-kjv.tokenizer.json.zst", "bert", "default", -1, -1, 2, 3, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char path[512], dir[PATH_MAX];
        snprintf(path, sizeof path, TOKDIR "%s", want[i].file);
        size_t n;
        char *json = read_zst(path, &n);
        qfmt_status st;
        qfmt_error e;
        qfmt_gguf *g = gguf_of(json, n, NULL, dir, &st, &e);
        cr_assert_eq(st, QFMT_OK, "%s: %s", want[i].file, tmsg(&e));
        expect_str(g, "tokenizer.ggml.model", want[i].model);
        expect_str(g, "tokenizer.ggml.pre", want[i].pre);
        cr_expect_eq(get_flag(g, "tokenizer.ggml.add_bos_token"), want[i].add_bos, "%s", want[i].file);
        cr_expect_eq(get_flag(g, "tokenizer.ggml.add_eos_token"), want[i].add_eos, "%s", want[i].file);
        cr_expect_eq(get_int(g, "tokenizer.ggml.bos_token_id"), want[i].bos, "%s", want[i].file);
        cr_expect_eq(get_int(g, "tokenizer.ggml.seperator_token_id"), want[i].sep, "%s", want[i].file);
        cr_expect_eq(get_int(g, "tokenizer.ggml.unknown_token_id"), want[i].unk, "%s", want[i].file);
        if (strcmp(want[i].model, "llama") == 0) {
            /* SentencePiece: byte tokens type 6, <s> control, scores -(first merge rank) */
            int64_t ty;
            double sc;
            cr_assert_eq(qfmt_gguf_array_i64(g, "tokenizer.ggml.token_type", 3, &ty, NULL), QFMT_OK);
            cr_expect_eq(ty, 6, "<0x00> type");
            cr_assert_eq(qfmt_gguf_array_i64(g, "tokenizer.ggml.token_type", 1, &ty, NULL), QFMT_OK);
            cr_expect_eq(ty, 3, "<s> type");
            cr_assert_eq(qfmt_gguf_array_f64(g, "tokenizer.ggml.scores", 3, &sc, NULL), QFMT_OK);
            cr_expect_eq(sc, 0.0);
            qfmt_tokenizer *t = load_json(json, n);
            int32_t id = qfmt_tokenizer_token_id(t, "in"); /* the second merge: "i n" */
            qfmt_tokenizer_free(t);
            cr_assert_eq(qfmt_gguf_array_f64(g, "tokenizer.ggml.scores", (uint64_t)id, &sc, NULL), QFMT_OK);
            cr_expect_eq(sc, -1.0);
        }
        if (strcmp(want[i].model, "bert") == 0) {
            /* the phantom-space vocabulary: "▁" before word-initial pieces, "##" dropped */
            const char *s;
            size_t l;
            cr_assert_eq(qfmt_gguf_array_str(g, "tokenizer.ggml.tokens", 2, &s, &l, NULL), QFMT_OK);
            cr_expect(l == 5 && memcmp(s, "[CLS]", 5) == 0);
            cr_expect_eq(get_flag(g, "tokenizer.ggml.normalizer.lowercase"), 1);
        }
        qfmt_gguf_close(g);
        th_rmtree(dir);
        free(json);
    }
}

/* ==== 4. Refusals and hostile input ===================================================================== */

/* A small byte-level BPE tokenizer.json; %s: the pre-tokenizer, then extra members. */
static char *small_bpe(const char *pre, const char *extra)
{
    static const char fmt[] =
        "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":3,\"content\":\"<|endoftext|>\",\"single_word\":false,"
        "\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}],%s\"pre_tokenizer\":%s,"
        "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,"
        "\"<|endoftext|>\":3},\"merges\":[\"a b\"]}}";
    size_t n = sizeof fmt + strlen(pre) + strlen(extra);
    char *s = malloc(n);
    cr_assert(s);
    snprintf(s, n, fmt, extra, pre);
    return s;
}

static const char BL[] = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}";

static qfmt_status to_gguf_status(const char *json, const qfmt_gguf_special_ids *ids, qfmt_error *e)
{
    char dir[PATH_MAX];
    qfmt_status st;
    qfmt_gguf *g = gguf_of(json, strlen(json), ids, dir, &st, e);
    qfmt_gguf_close(g);
    th_rmtree(dir);
    return st;
}

Test(tk_gguf, small_bpe_there_and_back)
{
    char *json = small_bpe(BL, "");
    qfmt_tokenizer *t = via_gguf(json, strlen(json), NULL);
    idv r = enc(t, "ab<|endoftext|>ba", 17, false);
    int32_t want[] = {2, 3, 1, 0};
    cr_assert(r.n == 4 && memcmp(r.v, want, sizeof want) == 0);
    free(r.v);
    qfmt_tokenizer_free(t);
    free(json);
}

Test(tk_gguf, to_gguf_refusals)
{
    struct {
        const char *pre, *extra;
        qfmt_status want;
        const char *msg;
    } cases[] = {
        {"{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}", "", QFMT_E_UNSUPPORTED, "add_prefix_space"},
        {"{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}", "", QFMT_E_UNSUPPORTED, "regex"},
        {"{\"type\":\"Whitespace\"}", "", QFMT_E_UNSUPPORTED, "pre_tokenizer"},
        {"{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+\"},"
         "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
         "\"use_regex\":false}]}",
         "", QFMT_E_UNSUPPORTED, "regex"},
        {BL, "\"normalizer\":{\"type\":\"Lowercase\"},", QFMT_E_UNSUPPORTED, "normalizer"},
        {BL, "\"post_processor\":{\"type\":\"RobertaProcessing\",\"sep\":[\"b\",1],\"cls\":[\"a\",0]},",
         QFMT_E_UNSUPPORTED, "RobertaProcessing"},
        {BL,
         "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"a\",\"type_id\":0}},"
         "{\"SpecialToken\":{\"id\":\"b\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],"
         "\"special_tokens\":{\"a\":{\"id\":\"a\",\"ids\":[0],\"tokens\":[\"a\"]},\"b\":{\"id\":\"b\",\"ids\":[1],"
         "\"tokens\":[\"b\"]}}},",
         QFMT_E_UNSUPPORTED, "BOS"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *json = small_bpe(cases[i].pre, cases[i].extra);
        qfmt_error e;
        qfmt_status st = to_gguf_status(json, NULL, &e);
        cr_expect_eq(st, cases[i].want, "case %zu: %s", i, tmsg(&e));
        cr_expect(strstr(e.message, cases[i].msg), "case %zu: '%s' does not say '%s'", i, e.message, cases[i].msg);
        free(json);
    }
    /* a Llama 3 regex with ignore_merges false: llama.cpp's llama-bpe ignores merges */
    char pre[1024];
    snprintf(pre, sizeof pre,
             "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"%s\"},"
             "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
             "\"use_regex\":false}]}",
             "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
             "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+");
    char *json = small_bpe(pre, "");
    qfmt_error e;
    cr_expect_eq(to_gguf_status(json, NULL, &e), QFMT_E_UNSUPPORTED, "%s", tmsg(&e));
    cr_expect(strstr(e.message, "ignore_merges"), "%s", e.message);
    free(json);
    /* not a tokenizer.json / a model llama.cpp has no GGUF form for */
    const char *bad[] = {"{", "[]", "{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]],\"unk_id\":0}}",
                         "{\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"a\":0},\"unk_token\":\"a\"}}"};
    qfmt_status bad_want[] = {QFMT_E_CORRUPT, QFMT_E_CORRUPT, QFMT_E_UNSUPPORTED, QFMT_E_UNSUPPORTED};
    for (size_t i = 0; i < 4; i++) cr_expect_eq(to_gguf_status(bad[i], NULL, &e), bad_want[i], "%s: %s", bad[i], tmsg(&e));
    /* WordPiece: "a" and "##\u2581a" are both U+2581 "a" in llama.cpp's phantom-space vocabulary */
    const char *wp = "{\"added_tokens\":[{\"id\":0,\"content\":\"[UNK]\",\"special\":true}],\"normalizer\":"
                     "{\"type\":\"BertNormalizer\"},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},\"model\":{\"type\":"
                     "\"WordPiece\",\"unk_token\":\"[UNK]\",\"vocab\":{\"[UNK]\":0,\"a\":1,\"##\xE2\x96\x81" "a\":2}}}";
    cr_expect_eq(to_gguf_status(wp, NULL, &e), QFMT_E_UNSUPPORTED, "%s", tmsg(&e));
    cr_expect(strstr(e.message, "tokens 1 and 2"), "%s", e.message);
    /* arguments */
    json = small_bpe(BL, "");
    qfmt_gguf_special_ids ids = {9, -1, -1, -1, {0}};
    cr_expect_eq(to_gguf_status(json, &ids, &e), QFMT_E_RANGE, "%s", tmsg(&e));
    ids = (qfmt_gguf_special_ids){-2, -1, -1, -1, {0}};
    cr_expect_eq(to_gguf_status(json, &ids, &e), QFMT_E_ARG, "%s", tmsg(&e));
    ids = (qfmt_gguf_special_ids){-1, -1, -1, -1, {1, 0, 0, 0}};
    cr_expect_eq(to_gguf_status(json, &ids, &e), QFMT_E_ARG, "%s", tmsg(&e));
    cr_expect_eq(qfmt_tokenizer_to_gguf(NULL, 3, NULL, NULL, &e), QFMT_E_ARG);
    free(json);
}

/* A SentencePiece-style byte-fallback BPE: the 256 byte tokens, then `vocab` (JSON members
 * from id 259 on) and `merges`. */
static char *small_spm(const char *vocab, const char *merges, const char *normalizer, const char *pre)
{
    size_t cap = 16384 + strlen(vocab) + strlen(merges) + strlen(normalizer) + strlen(pre);
    char *s = malloc(cap);
    cr_assert(s);
    size_t n = (size_t)snprintf(s, cap,
                                "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true,"
                                "\"normalized\":false},{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
                                "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false}],"
                                "\"normalizer\":%s,\"pre_tokenizer\":%s,\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\","
                                "\"fuse_unk\":true,\"byte_fallback\":true,\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2",
                                normalizer, pre);
    for (int b = 0; b < 256; b++) n += (size_t)snprintf(s + n, cap - n, ",\"<0x%02X>\":%d", b, 3 + b);
    snprintf(s + n, cap - n, "%s},\"merges\":[%s]}}", vocab, merges);
    return s;
}

#define SPM_NORM                                                                                                     \
    "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},{\"type\":\"Replace\"," \
    "\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]}"

Test(tk_gguf, spm_conditions)
{
    /* complete, contiguous merges: there and back, "abc" as one token */
    const char *vocab = ",\"\xE2\x96\x81\":259,\"a\":260,\"b\":261,\"c\":262,\"ab\":263,\"bc\":264,\"abc\":265";
    char *json = small_spm(vocab, "[\"a\",\"b\"],[\"b\",\"c\"],[\"ab\",\"c\"],[\"a\",\"bc\"]", SPM_NORM, "null");
    qfmt_tokenizer *t = via_gguf(json, strlen(json), NULL);
    idv r = enc(t, "abc", 3, false);
    int32_t want[] = {259, 265};
    cr_assert(r.n == 2 && memcmp(r.v, want, sizeof want) == 0, "got %zu ids", r.n);
    free(r.v);
    qfmt_tokenizer_free(t);
    free(json);
    qfmt_error e;
    /* "abc" can be made as a + bc, but no merge says so: llama.cpp would */
    json = small_spm(vocab, "[\"a\",\"b\"],[\"b\",\"c\"],[\"ab\",\"c\"]", SPM_NORM, "null");
    cr_expect_eq(to_gguf_status(json, NULL, &e), QFMT_E_UNSUPPORTED, "%s", tmsg(&e));
    cr_expect(strstr(e.message, "no merge"), "%s", e.message);
    free(json);
    /* the merges making "abc" are not contiguous */
    json = small_spm(vocab, "[\"ab\",\"c\"],[\"a\",\"b\"],[\"b\",\"c\"],[\"a\",\"bc\"]", SPM_NORM, "null");
    cr_expect_eq(to_gguf_status(json, NULL, &e), QFMT_E_UNSUPPORTED, "%s", tmsg(&e));
    cr_expect(strstr(e.message, "contiguous"), "%s", e.message);
    free(json);
    /* Metaspace splitting into words: llama.cpp's SentencePiece runs on the whole text */
    json = small_spm(vocab, "[\"a\",\"b\"],[\"b\",\"c\"],[\"ab\",\"c\"],[\"a\",\"bc\"]", "null",
                     "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"always\",\"split\":true}");
    cr_expect_eq(to_gguf_status(json, NULL, &e), QFMT_E_UNSUPPORTED, "%s", tmsg(&e));
    free(json);
    /* ... without splitting it is the same tokenizer */
    json = small_spm(vocab, "[\"a\",\"b\"],[\"b\",\"c\"],[\"ab\",\"c\"],[\"a\",\"bc\"]", "null",
                     "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"always\",\"split\":false}");
    cr_expect_eq(to_gguf_status(json, NULL, &e), QFMT_OK, "%s", tmsg(&e));
    free(json);
}

/* ---- Hostile GGUF keys ------------------------------------------------------------------------------ */
typedef void (*fill_fn)(qfmt_gguf_writer *w);

static qfmt_status from_status_tok(fill_fn fill, qfmt_error *e, bool *loads, qfmt_tokenizer **keep);
static qfmt_status from_status(fill_fn fill, qfmt_error *e, bool *loads) { return from_status_tok(fill, e, loads, NULL); }

static qfmt_status from_status_tok(fill_fn fill, qfmt_error *e, bool *loads, qfmt_tokenizer **keep)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/h.gguf", dir);
    qfmt_gguf_writer *w = NULL;
    qfmt_error we;
    cr_assert_eq(qfmt_gguf_writer_create(&w, path, &we), QFMT_OK, "%s", tmsg(&we));
    fill(w);
    cr_assert_eq(qfmt_gguf_writer_commit(w, &we), QFMT_OK, "%s", tmsg(&we));
    qfmt_gguf_writer_free(w);
    qfmt_gguf *g = NULL;
    cr_assert_eq(qfmt_gguf_open(&g, path, &we), QFMT_OK, "%s", tmsg(&we));
    char *json = NULL;
    size_t jl = 0;
    qfmt_status st = qfmt_tokenizer_from_gguf(g, &json, &jl, e);
    if (st == QFMT_OK) {
        qfmt_tokenizer *t = NULL;
        qfmt_error le;
        *loads = qfmt_tokenizer_load(&t, json, jl, &le) == QFMT_OK;
        if (!*loads) cr_log_error("from_gguf's tokenizer.json does not load: %s", tmsg(&le));
        if (keep) *keep = t;
        else qfmt_tokenizer_free(t);
    } else {
        cr_expect_null(json);
        cr_expect_eq(jl, 0);
    }
    free(json);
    qfmt_gguf_close(g);
    th_rmtree(dir);
    return st;
}

#define GW_OK(call) cr_assert_eq((call), QFMT_OK)
static const char *const TOK4[] = {"a", "b", "ab", "<|endoftext|>"};
static const int32_t TYPES4[] = {1, 1, 1, 3};
static const char *const MERGE1[] = {"a b"};

static void put_model(qfmt_gguf_writer *w, const char *m) { GW_OK(qfmt_gguf_writer_set_str(w, "tokenizer.ggml.model", m, strlen(m), NULL)); }
static void put_pre(qfmt_gguf_writer *w) { GW_OK(qfmt_gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2", 5, NULL)); }
static void put_tokens(qfmt_gguf_writer *w, const char *const *t, uint64_t n)
{
    GW_OK(qfmt_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", t, NULL, n, NULL));
}
static void put_types(qfmt_gguf_writer *w, const int32_t *t, uint64_t n)
{
    GW_OK(qfmt_gguf_writer_set_array(w, "tokenizer.ggml.token_type", QFMT_GGUF_INT32, t, n, NULL));
}
static void put_merges(qfmt_gguf_writer *w, const char *const *m, uint64_t n)
{
    GW_OK(qfmt_gguf_writer_set_str_array(w, "tokenizer.ggml.merges", m, NULL, n, NULL));
}
static void base(qfmt_gguf_writer *w, bool types, bool merges)
{
    put_model(w, "gpt2");
    put_pre(w);
    put_tokens(w, TOK4, 4);
    if (types) put_types(w, TYPES4, 4);
    if (merges) put_merges(w, MERGE1, 1);
}

static void f_ok(qfmt_gguf_writer *w) { base(w, true, true); }
static void f_no_model(qfmt_gguf_writer *w) { put_pre(w), put_tokens(w, TOK4, 4), put_merges(w, MERGE1, 1); }
static void f_model_t5(qfmt_gguf_writer *w) { put_model(w, "t5"), put_tokens(w, TOK4, 4); }
static void f_model_int(qfmt_gguf_writer *w) { GW_OK(qfmt_gguf_writer_set_u32(w, "tokenizer.ggml.model", 2, NULL)); }
static void f_no_tokens(qfmt_gguf_writer *w) { put_model(w, "gpt2"), put_pre(w), put_merges(w, MERGE1, 1); }
static void f_tokens_ints(qfmt_gguf_writer *w)
{
    put_model(w, "gpt2"), put_pre(w), put_merges(w, MERGE1, 1);
    GW_OK(qfmt_gguf_writer_set_array(w, "tokenizer.ggml.tokens", QFMT_GGUF_INT32, TYPES4, 4, NULL));
}
static void f_types_short(qfmt_gguf_writer *w) { base(w, false, true), put_types(w, TYPES4, 3); }
static void f_types_long(qfmt_gguf_writer *w)
{
    static const int32_t t5[] = {1, 1, 1, 3, 1};
    base(w, false, true), put_types(w, t5, 5);
}
static void f_types_u8(qfmt_gguf_writer *w)
{
    static const uint8_t t[] = {1, 1, 1, 3};
    base(w, false, true);
    GW_OK(qfmt_gguf_writer_set_array(w, "tokenizer.ggml.token_type", QFMT_GGUF_UINT8, t, 4, NULL));
}
static void f_types_value(qfmt_gguf_writer *w)
{
    static const int32_t t[] = {1, 1, 99, 3};
    base(w, false, true), put_types(w, t, 4);
}
static void f_merge_unknown(qfmt_gguf_writer *w)
{
    static const char *const m[] = {"a b", "a c"};
    base(w, true, false), put_merges(w, m, 2);
}
static void f_merge_nospace(qfmt_gguf_writer *w)
{
    static const char *const m[] = {"ab"};
    base(w, true, false), put_merges(w, m, 1);
}
static void f_merge_not_token(qfmt_gguf_writer *w)
{
    static const char *const m[] = {"b a"}; /* "ba" is no token */
    base(w, true, false), put_merges(w, m, 1);
}
static void f_merge_lead_space(qfmt_gguf_writer *w)
{
    static const char *const m[] = {" a b"};
    base(w, true, false), put_merges(w, m, 1);
}
static void f_no_merges(qfmt_gguf_writer *w) { base(w, true, false); }
static void f_merges_ints(qfmt_gguf_writer *w)
{
    base(w, true, false);
    GW_OK(qfmt_gguf_writer_set_array(w, "tokenizer.ggml.merges", QFMT_GGUF_INT32, TYPES4, 1, NULL));
}
static void f_bad_utf8(qfmt_gguf_writer *w)
{
    static const char *const t[] = {"a", "b", "ab", "\xff\xfe"};
    put_model(w, "gpt2"), put_pre(w), put_tokens(w, t, 4), put_merges(w, MERGE1, 1);
}
static void f_nul(qfmt_gguf_writer *w)
{
    static const char *const t[] = {"a", "b", "ab", "x\0y"};
    static const size_t l[] = {1, 1, 2, 3};
    put_model(w, "gpt2"), put_pre(w), put_merges(w, MERGE1, 1);
    GW_OK(qfmt_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", t, l, 4, NULL));
}
static void f_dup(qfmt_gguf_writer *w)
{
    static const char *const t[] = {"a", "b", "ab", "b"};
    put_model(w, "gpt2"), put_pre(w), put_tokens(w, t, 4), put_merges(w, MERGE1, 1);
}
static void f_empty_token(qfmt_gguf_writer *w) /* llama.cpp renames it [EMPTY_3] */
{
    static const char *const t[] = {"a", "b", "ab", ""};
    put_model(w, "gpt2"), put_pre(w), put_tokens(w, t, 4), put_merges(w, MERGE1, 1);
}
static void f_pre_unknown(qfmt_gguf_writer *w)
{
    put_model(w, "gpt2"), put_tokens(w, TOK4, 4), put_merges(w, MERGE1, 1);
    GW_OK(qfmt_gguf_writer_set_str(w, "tokenizer.ggml.pre", "deepseek-llm", 12, NULL));
}
static void f_pre_missing(qfmt_gguf_writer *w) { put_model(w, "gpt2"), put_tokens(w, TOK4, 4), put_merges(w, MERGE1, 1); }
static void f_add_bos_no_bos(qfmt_gguf_writer *w) /* llama.cpp's default BOS 11 is out of range */
{
    base(w, true, true);
    GW_OK(qfmt_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true, NULL));
}
static void f_add_bos_ok(qfmt_gguf_writer *w)
{
    base(w, true, true);
    GW_OK(qfmt_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true, NULL));
    GW_OK(qfmt_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 3, NULL));
}
static void f_add_bos_eos(qfmt_gguf_writer *w)
{
    f_add_bos_ok(w);
    GW_OK(qfmt_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", true, NULL));
    GW_OK(qfmt_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2, NULL));
}
static void f_bos_string(qfmt_gguf_writer *w)
{
    base(w, true, true);
    GW_OK(qfmt_gguf_writer_set_str(w, "tokenizer.ggml.bos_token_id", "3", 1, NULL));
}
static void f_bos_huge(qfmt_gguf_writer *w) /* llama.cpp keeps its default (here none) */
{
    base(w, true, true);
    GW_OK(qfmt_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", UINT32_MAX, NULL));
}
static void f_add_bos_not_bool(qfmt_gguf_writer *w)
{
    base(w, true, true);
    GW_OK(qfmt_gguf_writer_set_u32(w, "tokenizer.ggml.add_bos_token", 1, NULL));
}

/* SentencePiece: the byte tokens, "a", "b", "ab", with scores. */
static void spm_tokens(qfmt_gguf_writer *w, bool bytes, const float *scores, uint32_t score_type, uint64_t nscores)
{
    static char names[256][8];
    const char *t[3 + 256 + 3];
    int32_t ty[3 + 256 + 3];
    size_t n = 0;
    t[n] = "<unk>", ty[n++] = 2;
    t[n] = "<s>", ty[n++] = 3;
    t[n] = "</s>", ty[n++] = 3;
    for (int b = 0; b < 256 && bytes; b++) {
        snprintf(names[b], sizeof names[b], "<0x%02X>", b);
        t[n] = names[b], ty[n++] = 6;
    }
    t[n] = "a", ty[n++] = 1;
    t[n] = "b", ty[n++] = 1;
    t[n] = "ab", ty[n++] = 1;
    put_model(w, "llama");
    put_tokens(w, t, n);
    put_types(w, ty, n);
    if (scores) GW_OK(qfmt_gguf_writer_set_array(w, "tokenizer.ggml.scores", score_type, scores, nscores, NULL));
}
static float SCORES[3 + 256 + 3];
static void f_spm_ok(qfmt_gguf_writer *w)
{
    for (size_t i = 0; i < 262; i++) SCORES[i] = 0;
    SCORES[261] = -1; /* "ab" */
    spm_tokens(w, true, SCORES, QFMT_GGUF_FLOAT32, 262);
}
static void f_spm_short_scores(qfmt_gguf_writer *w) { spm_tokens(w, true, SCORES, QFMT_GGUF_FLOAT32, 200); }
static void f_spm_scores_str(qfmt_gguf_writer *w)
{
    spm_tokens(w, true, NULL, 0, 0);
    GW_OK(qfmt_gguf_writer_set_str_array(w, "tokenizer.ggml.scores", TOK4, NULL, 4, NULL));
}
static void f_spm_nan(qfmt_gguf_writer *w)
{
    for (size_t i = 0; i < 262; i++) SCORES[i] = 0;
    SCORES[100] = NAN;
    spm_tokens(w, true, SCORES, QFMT_GGUF_FLOAT32, 262);
}
static void f_spm_no_bytes(qfmt_gguf_writer *w) { spm_tokens(w, false, NULL, 0, 0); }
static void f_spm_all_tied(qfmt_gguf_writer *w) /* LlamaHfVocab's -1000 everywhere */
{
    static const char *extra_names[] = {"a", "b", "ab", "ba", "aba"};
    const char *t[3 + 256 + 5];
    static char names[256][8];
    int32_t ty[3 + 256 + 5];
    float sc[3 + 256 + 5];
    size_t n = 0;
    t[n] = "<unk>", ty[n] = 2, sc[n++] = -1000;
    t[n] = "<s>", ty[n] = 3, sc[n++] = -1000;
    t[n] = "</s>", ty[n] = 3, sc[n++] = -1000;
    for (int b = 0; b < 256; b++) {
        snprintf(names[b], sizeof names[b], "<0x%02X>", b);
        t[n] = names[b], ty[n] = 6, sc[n++] = -1000;
    }
    for (int i = 0; i < 5; i++) t[n] = extra_names[i], ty[n] = 1, sc[n++] = -1000;
    put_model(w, "llama");
    put_tokens(w, t, n);
    put_types(w, ty, n);
    GW_OK(qfmt_gguf_writer_set_array(w, "tokenizer.ggml.scores", QFMT_GGUF_FLOAT32, sc, n, NULL));
}
static void f_spm_extra_ws(qfmt_gguf_writer *w)
{
    f_spm_ok(w);
    GW_OK(qfmt_gguf_writer_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", true, NULL));
}
static void f_bert_no_unk(qfmt_gguf_writer *w) /* llama.cpp's default unknown id 100 is out of range */
{
    static const char *const t[] = {"[CLS]", "[SEP]", ("\xE2\x96\x81" "a"), "b"};
    static const int32_t ty[] = {3, 3, 1, 1};
    put_model(w, "bert");
    put_tokens(w, t, 4);
    put_types(w, ty, 4);
}
static void f_bert_collision(qfmt_gguf_writer *w) /* "a" and "▁##a" both become "##a" */
{
    static const char *const t[] = {"[UNK]", "a", "\xE2\x96\x81##a"};
    static const int32_t ty[] = {3, 1, 1};
    put_model(w, "bert");
    put_tokens(w, t, 3);
    put_types(w, ty, 3);
    GW_OK(qfmt_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0, NULL));
}

Test(tk_gguf, hostile_gguf_keys)
{
    struct {
        const char *name;
        fill_fn fill;
        qfmt_status want;
        const char *msg; /* in the message */
    } cases[] = {
        {"valid", f_ok, QFMT_OK, ""},
        {"no model", f_no_model, QFMT_E_NOT_FOUND, "tokenizer.ggml.model"},
        {"model t5", f_model_t5, QFMT_E_UNSUPPORTED, "t5"},
        {"model not a string", f_model_int, QFMT_E_CORRUPT, "tokenizer.ggml.model"},
        {"no tokens", f_no_tokens, QFMT_E_CORRUPT, "tokenizer.ggml.tokens"},
        {"tokens of ints", f_tokens_ints, QFMT_E_CORRUPT, "tokenizer.ggml.tokens"},
        {"fewer types than tokens", f_types_short, QFMT_E_CORRUPT, "token_type has 3 entries for 4 tokens"},
        {"more types than tokens", f_types_long, QFMT_E_CORRUPT, "token_type has 5 entries for 4 tokens"},
        {"types of u8", f_types_u8, QFMT_E_CORRUPT, "token_type"},
        {"type 99", f_types_value, QFMT_E_CORRUPT, "token_type[2]"},
        {"merge of an unknown token", f_merge_unknown, QFMT_E_CORRUPT, "merges[1]"},
        {"merge without a space", f_merge_nospace, QFMT_E_CORRUPT, "merges[0]"},
        {"merge making no token", f_merge_not_token, QFMT_E_CORRUPT, "merges[0]"},
        {"merge of a space-led token", f_merge_lead_space, QFMT_E_CORRUPT, "merges[0]"},
        {"no merges", f_no_merges, QFMT_E_CORRUPT, "tokenizer.ggml.merges"},
        {"merges of ints", f_merges_ints, QFMT_E_CORRUPT, "tokenizer.ggml.merges"},
        {"invalid UTF-8", f_bad_utf8, QFMT_E_CORRUPT, "tokens[3]"},
        {"NUL in a token", f_nul, QFMT_E_CORRUPT, "tokens[3]"},
        {"duplicate token", f_dup, QFMT_E_CORRUPT, "token 1 and token 3"},
        {"empty token", f_empty_token, QFMT_OK, ""},
        {"unknown pre", f_pre_unknown, QFMT_E_UNSUPPORTED, "deepseek-llm"},
        {"no pre", f_pre_missing, QFMT_E_UNSUPPORTED, "default"},
        {"add_bos without BOS", f_add_bos_no_bos, QFMT_E_CORRUPT, "add_bos_token"},
        {"add_bos with BOS", f_add_bos_ok, QFMT_OK, ""},
        {"add_bos and add_eos", f_add_bos_eos, QFMT_OK, ""},
        {"BOS id a string", f_bos_string, QFMT_E_CORRUPT, "bos_token_id"},
        {"BOS id out of range", f_bos_huge, QFMT_OK, ""},
        {"add_bos not a bool", f_add_bos_not_bool, QFMT_E_CORRUPT, "add_bos_token"},
        {"SentencePiece", f_spm_ok, QFMT_OK, ""},
        {"SentencePiece short scores", f_spm_short_scores, QFMT_E_CORRUPT, "scores has 200 entries"},
        {"SentencePiece scores strings", f_spm_scores_str, QFMT_E_CORRUPT, "tokenizer.ggml.scores"},
        {"SentencePiece NaN score", f_spm_nan, QFMT_E_CORRUPT, "scores[100]"},
        {"SentencePiece without byte tokens", f_spm_no_bytes, QFMT_E_UNSUPPORTED, "<0x00>"},
        {"SentencePiece scores all tied", f_spm_all_tied, QFMT_E_UNSUPPORTED, "leftmost"},
        {"SentencePiece extra whitespace", f_spm_extra_ws, QFMT_E_UNSUPPORTED, "remove_extra_whitespaces"},
        {"WordPiece without unknown", f_bert_no_unk, QFMT_E_UNSUPPORTED, "unknown_token_id"},
        {"WordPiece collision", f_bert_collision, QFMT_E_UNSUPPORTED, "##a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        qfmt_error e;
        bool loads = false;
        qfmt_status st = from_status(cases[i].fill, &e, &loads);
        cr_expect_eq(st, cases[i].want, "%s: got %d (%s), want %d", cases[i].name, st, tmsg(&e), cases[i].want);
        if (st == QFMT_OK) cr_expect(loads, "%s: the tokenizer.json does not load", cases[i].name);
        else cr_expect(strstr(e.message, cases[i].msg), "%s: '%s' does not say '%s'", cases[i].name, e.message, cases[i].msg);
    }
    qfmt_error e;
    char *j = (char *)1;
    size_t l = 1;
    cr_expect_eq(qfmt_tokenizer_from_gguf(NULL, &j, &l, &e), QFMT_E_ARG);
    cr_expect(j == NULL && l == 0);
}

/* Random damage to a real GGUF's tokenizer keys (bytes flipped anywhere in them, a token's
 * character changed, token types changed, the file cut): whatever the reader lets through,
 * from_gguf refuses with a message or gives a tokenizer.json that loads and encodes. No crash,
 * no leak (the sanitizer build). */
Test(tk_gguf, damaged_files)
{
    char *buf;
    qfmt_gguf *g = open_zst_gguf("llama-kjv.Q4_K_M.gguf.zst", &buf);
    uint64_t idx, lo = UINT64_MAX, hi = 0, tok_lo = 0, tok_hi = 0, ty_lo = 0, ty_hi = 0;
    qfmt_gguf_kv kv;
    const char *keys[] = {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                          "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id"};
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(qfmt_gguf_find_key(g, keys[i], &idx, NULL), QFMT_OK);
        cr_assert_eq(qfmt_gguf_kv_get(g, idx, &kv, NULL), QFMT_OK);
        if (kv.offset < lo) lo = kv.offset;
        if (kv.offset + kv.size > hi) hi = kv.offset + kv.size;
        if (i == 2) tok_lo = kv.offset, tok_hi = kv.offset + kv.size;
        if (i == 3) ty_lo = kv.offset, ty_hi = kv.offset + kv.size;
    }
    size_t size = (size_t)qfmt_gguf_file_size(g);
    qfmt_gguf_close(g);
    uint8_t *copy = malloc(size);
    cr_assert(copy);
    uint64_t rng = 12345;
    int opened = 0, converted = 0, logged = 0;
    for (int iter = 0; iter < 400; iter++) {
        memcpy(copy, buf, size);
        size_t n = size;
        switch (iter % 4) {
        case 0: /* a few random bytes anywhere in the tokenizer keys */
            for (int k = 1 + (int)(th_rand(&rng) % 4); k > 0; k--) copy[lo + th_rand(&rng) % (hi - lo)] = (uint8_t)th_rand(&rng);
            break;
        case 1: { /* one byte of the tokens array (lengths included) becomes an ASCII letter */
            copy[tok_lo + th_rand(&rng) % (tok_hi - tok_lo)] = (uint8_t)('a' + th_rand(&rng) % 26);
            break;
        }
        case 2: /* token types: random values 0..7 */
            for (int k = 1 + (int)(th_rand(&rng) % 8); k > 0; k--)
                th_put32(copy + ty_lo + 4 * (th_rand(&rng) % ((ty_hi - ty_lo) / 4)), (uint32_t)(th_rand(&rng) % 8));
            break;
        default: /* the file cut inside the tokenizer keys */
            n = (size_t)(lo + th_rand(&rng) % (hi - lo));
        }
        qfmt_gguf *d = NULL;
        qfmt_error e;
        if (qfmt_gguf_open_memory(&d, copy, n, &e) != QFMT_OK) continue;
        opened++;
        char *json = NULL;
        size_t jl = 0;
        if (qfmt_tokenizer_from_gguf(d, &json, &jl, &e) == QFMT_OK) {
            converted++;
            qfmt_tokenizer *t = NULL;
            cr_expect_eq(qfmt_tokenizer_load(&t, json, jl, &e), QFMT_OK, "iteration %d: %s", iter, tmsg(&e));
            if (t) {
                idv r = enc(t, "In the beginning God created <|endoftext|> [PAD]", 48, true);
                free(r.v);
            }
            qfmt_tokenizer_free(t);
        } else {
            cr_expect(e.message[0], "iteration %d: a refusal without a message", iter);
            if (logged++ < 6) cr_log_info("iteration %d refused: %s", iter, tmsg(&e));
        }
        free(json);
        qfmt_gguf_close(d);
    }
    cr_log_info("damaged files: %d opened, %d converted", opened, converted);
    cr_expect(opened > 0 && converted > 0);
    free(copy);
    free(buf);
}

/* llama.cpp's defaults and flags, as the tokenizer.json from_gguf writes runs them. */
static qfmt_tokenizer *tok_of(fill_fn fill)
{
    qfmt_error e;
    bool loads = false;
    qfmt_tokenizer *t = NULL;
    cr_assert_eq(from_status_tok(fill, &e, &loads, &t), QFMT_OK, "%s", tmsg(&e));
    cr_assert(loads && t);
    return t;
}

static void expect_enc(const qfmt_tokenizer *t, const char *text, bool special, const int32_t *want, size_t wn)
{
    idv r = enc(t, text, strlen(text), special);
    bool ok = r.n == wn && memcmp(r.v, want, wn * sizeof *want) == 0;
    if (!ok) log_diff(special ? "ids with special tokens" : "ids", text, r, (idv){(int32_t *)want, wn});
    cr_expect(ok, "'%s'", text);
    free(r.v);
}

Test(tk_gguf, gguf_flags_and_defaults)
{
    /* gpt2: add_bos_token / add_eos_token with their ids; the control token split out */
    qfmt_tokenizer *t = tok_of(f_add_bos_eos);
    expect_enc(t, "ab", true, (const int32_t[]){3, 2, 2}, 3);
    expect_enc(t, "ab<|endoftext|>a", false, (const int32_t[]){2, 3, 0}, 3);
    qfmt_tokenizer_free(t);
    /* gpt-2's default: no BOS */
    t = tok_of(f_ok);
    expect_enc(t, "ab", true, (const int32_t[]){2}, 1);
    qfmt_tokenizer_free(t);
    /* an empty token is llama.cpp's [EMPTY_<id>] */
    t = tok_of(f_empty_token);
    cr_expect_eq(qfmt_tokenizer_token_id(t, "[EMPTY_3]"), 3);
    qfmt_tokenizer_free(t);
    /* SentencePiece: a space before the text, no U+2581 token: its bytes; "ab" merged; BOS 1
     * added by default (llama.cpp's SPM defaults) */
    t = tok_of(f_spm_ok);
    const int32_t want[] = {3 + 0xE2, 3 + 0x96, 3 + 0x81, 261};
    expect_enc(t, "ab", false, want, 4);
    expect_enc(t, "ab", true, (const int32_t[]){1, 3 + 0xE2, 3 + 0x96, 3 + 0x81, 261}, 5);
    char *text = NULL;
    size_t tl = 0;
    qfmt_error e;
    cr_assert_eq(qfmt_tokenizer_decode(t, want, 4, false, &text, &tl, &e), QFMT_OK, "%s", tmsg(&e));
    /* the space came as bytes: U+2581 stays (Hugging Face's Llama decoders and llama.cpp alike) */
    cr_expect(tl == 5 && memcmp(text, "\xE2\x96\x81" "ab", 5) == 0, "decoded '%.*s'", (int)tl, text);
    free(text);
    qfmt_tokenizer_free(t);
}
