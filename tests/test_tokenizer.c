/*
 * test_tokenizer.c - the byte-level BPE tokenizer of the runtime (libqfmt_model: qfmt_model.h).
 *
 * Ground truth: tests/data/fixtures/tokenizer.json applied by Hugging Face tokenizers to the
 * whole of heldout.txt gives heldout.safetensors `tokens` (I32 [52109]); see
 * tests/data/fixtures/README.md. The other expectations are derived from that tokenizer
 * (vocab strings, and encodings of pieces that the GPT-2 regex must produce).
 */
#include "test_helpers.h"

#include <pthread.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "qfmt_model.h"

#define FIX QFMT_TEST_DATA_DIR "/fixtures/"
#define HELDOUT_TOKENS 52109

/* ---- helpers ------------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long sz = ftell(f);
    cr_assert_geq(sz, 0);
    rewind(f);
    char *buf = malloc((size_t)sz + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    buf[sz] = '\0';
    *len = (size_t)sz;
    return buf;
}

static qfmt_tokenizer *load_json(const char *json, size_t len) {
    qfmt_error err = {0};
    qfmt_tokenizer *t = NULL;
    int rc = qfmt_tokenizer_load(&t, json, len, &err);
    cr_assert_eq(rc, 0, "load failed: %s", tmsg(&err));
    cr_assert_not_null(t);
    return t;
}

static qfmt_tokenizer *load_fixture(void) {
    size_t len;
    char *json = slurp(FIX "tokenizer.json", &len);
    qfmt_tokenizer *t = load_json(json, len);
    free(json);
    return t;
}

/* Loads a variant of the fixture tokenizer.json edited by `edit`; returns its status, the error in *err. */
static int load_variant(void (*edit)(cJSON *root), qfmt_tokenizer **out, qfmt_error *err) {
    size_t len;
    char *json = slurp(FIX "tokenizer.json", &len);
    cJSON *root = cJSON_ParseWithLength(json, len);
    free(json);
    cr_assert_not_null(root);
    edit(root);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    cr_assert_not_null(text);
    *out = NULL;
    int rc = qfmt_tokenizer_load(out, text, strlen(text), err);
    cJSON_free(text);
    return rc;
}

static void encode(const qfmt_tokenizer *t, const char *s, size_t len, int32_t **ids, size_t *n) {
    qfmt_error err = {0};
    int rc = qfmt_tokenizer_encode(t, s, len, ids, n, &err);
    cr_assert_eq(rc, 0, "encode failed: %s", tmsg(&err));
}

static void encode_str(const qfmt_tokenizer *t, const char *s, int32_t **ids, size_t *n) {
    encode(t, s, strlen(s), ids, n);
}

static void assert_roundtrip(const qfmt_tokenizer *t, const char *s, size_t len) {
    int32_t *ids;
    size_t n;
    encode(t, s, len, &ids, &n);
    char *back;
    size_t blen;
    cr_assert_eq(qfmt_tokenizer_decode(t, ids, n, false, &back, &blen, NULL), 0);
    cr_assert_eq(blen, len, "round trip length %zu != %zu", blen, len);
    cr_assert(len == 0 || memcmp(back, s, len) == 0, "round trip differs");
    cr_assert_eq(back[blen], '\0');
    free(back);
    free(ids);
}

static const int32_t *heldout_tokens(qfmt_st_file **f) {
    qfmt_error err;
    cr_assert_eq(qfmt_st_open(f, FIX "heldout.safetensors", NULL, &err), QFMT_OK, "%s",
                 err.message);
    uint64_t idx;
    cr_assert_eq(qfmt_st_find(*f, "tokens", &idx, &err), QFMT_OK, "%s", err.message);
    qfmt_st_tensor ten;
    cr_assert_eq(qfmt_st_get(*f, idx, &ten, &err), QFMT_OK, "%s", err.message);
    cr_assert_str_eq(ten.dtype, "I32");
    cr_assert_eq(ten.ndim, 1);
    cr_assert_eq(ten.nelements, HELDOUT_TOKENS);
    return ten.data; /* little-endian int32; this test runs on little-endian hosts */
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- (1) (2) held-out text --------------------------------------------------------------- */

Test(tokenizer, heldout_matches_reference_ids) {
    qfmt_tokenizer *t = load_fixture();
    size_t len;
    char *text = slurp(FIX "heldout.txt", &len);
    qfmt_st_file *f;
    const int32_t *ref = heldout_tokens(&f);

    int32_t *ids;
    size_t n;
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        encode(t, text, len, &ids, &n);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
        if (rep < 4) free(ids);
    }
    cr_log_info("encode heldout.txt: %zu bytes -> %zu tokens in %.2f ms (%.1f MB/s)", len, n,
                best * 1e3, (double)len / best / 1e6);

    size_t common = n < HELDOUT_TOKENS ? n : HELDOUT_TOKENS;
    size_t first = common;
    for (size_t i = 0; i < common; i++) {
        int32_t r;
        memcpy(&r, (const char *)ref + 4 * i, 4);
        if (ids[i] != r) {
            first = i;
            break;
        }
    }
    if (first < common || n != HELDOUT_TOKENS) {
        /* Report the first mismatch with its context, decoded. */
        size_t lo = first > 8 ? first - 8 : 0, hi = first + 8 < common ? first + 8 : common;
        char ctx[2048] = "";
        size_t o = 0;
        for (size_t i = lo; i < hi && o < sizeof ctx - 64; i++) {
            int32_t r;
            memcpy(&r, (const char *)ref + 4 * i, 4);
            const char *b;
            size_t bl;
            const char *got = qfmt_tokenizer_token_bytes(t, ids[i], &b, &bl) == 0 ? b : "?";
            o += (size_t)snprintf(ctx + o, sizeof ctx - o, "%s[%zu] got %d '%.*s' want %d | ",
                                  i == first ? ">>" : "", i, ids[i], (int)(got == b ? bl : 1),
                                  got, r);
        }
        cr_assert_fail("%zu ids (want %d); first mismatch at %zu: %s", n, HELDOUT_TOKENS, first,
                       ctx);
    }
    free(ids);
    qfmt_st_close(f);
    free(text);
    qfmt_tokenizer_free(t);
}

Test(tokenizer, heldout_decode_roundtrip) {
    qfmt_tokenizer *t = load_fixture();
    size_t len;
    char *text = slurp(FIX "heldout.txt", &len);
    assert_roundtrip(t, text, len);

    /* Decoding the reference ids gives the text back too, and streaming token by token
     * (token_bytes) gives the same bytes as decode. */
    qfmt_st_file *f;
    const int32_t *ref = heldout_tokens(&f);
    int32_t *ids = malloc(sizeof(int32_t) * HELDOUT_TOKENS);
    cr_assert_not_null(ids);
    memcpy(ids, ref, sizeof(int32_t) * HELDOUT_TOKENS);
    char *back;
    size_t blen;
    cr_assert_eq(qfmt_tokenizer_decode(t, ids, HELDOUT_TOKENS, false, &back, &blen, NULL), 0);
    cr_assert_eq(blen, len);
    cr_assert_eq(memcmp(back, text, len), 0);
    size_t o = 0;
    for (size_t i = 0; i < HELDOUT_TOKENS; i++) {
        const char *b;
        size_t bl;
        cr_assert_eq(qfmt_tokenizer_token_bytes(t, ids[i], &b, &bl), 0);
        cr_assert_leq(o + bl, blen);
        cr_assert_eq(memcmp(back + o, b, bl), 0);
        o += bl;
    }
    cr_assert_eq(o, blen);
    free(back);
    free(ids);
    qfmt_st_close(f);
    free(text);
    qfmt_tokenizer_free(t);
}

/* ---- (3) special tokens ------------------------------------------------------------------- */

Test(tokenizer, special_tokens_in_text) {
    qfmt_tokenizer *t = load_fixture();
    cr_assert_eq(qfmt_tokenizer_vocab_size(t), 4096);
    cr_assert_eq(qfmt_tokenizer_token_id(t, "<|endoftext|>"), 0);
    cr_assert_eq(qfmt_tokenizer_token_id(t, "[PAD]"), 1);
    cr_assert_eq(qfmt_tokenizer_token_id(t, "[CLS]"), 2);
    cr_assert_eq(qfmt_tokenizer_token_id(t, "[SEP]"), 3);
    cr_assert_eq(qfmt_tokenizer_token_id(t, "[MASK]"), 4);
    cr_assert_eq(qfmt_tokenizer_token_id(t, "[NOPE]"), -1);
    cr_assert(qfmt_tokenizer_is_special(t, 4));
    cr_assert_not(qfmt_tokenizer_is_special(t, 5));
    cr_assert_not(qfmt_tokenizer_is_special(t, 4096));

    int32_t *ids, *a, *b, *c;
    size_t n, na, nb, nc;
    encode_str(t, "<|endoftext|>", &ids, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], 0);
    free(ids);

    /* "[CLS] In the beginning [MASK] created [SEP]" = [CLS] + enc(" In the beginning ") +
     * [MASK] + enc(" created ") + [SEP]: specials split the text before the regex. */
    encode_str(t, "[CLS] In the beginning [MASK] created [SEP]", &ids, &n);
    encode_str(t, " In the beginning ", &a, &na);
    encode_str(t, " created ", &b, &nb);
    cr_assert_eq(n, 3 + na + nb);
    cr_assert_eq(ids[0], 2);
    cr_assert_arr_eq(ids + 1, a, na * sizeof *a);
    cr_assert_eq(ids[1 + na], 4);
    cr_assert_arr_eq(ids + 2 + na, b, nb * sizeof *b);
    cr_assert_eq(ids[n - 1], 3);
    /* The trailing space before [MASK] is a piece of its own (\s+(?!\S) at the end). */
    const char *s;
    size_t sl;
    cr_assert_eq(qfmt_tokenizer_token_string(t, a[na - 1], &s, &sl), 0);
    cr_assert_eq(sl, 2);
    cr_assert_eq(memcmp(s, "\xC4\xA0", 2), 0); /* "Ġ" */
    free(a);
    free(b);
    free(ids);

    /* Adjacent specials, specials glued to words, and partial specials. */
    encode_str(t, "[SEP][SEP]x<|endoftext|>", &ids, &n);
    encode_str(t, "x", &c, &nc);
    cr_assert_eq(n, 4);
    cr_assert_eq(ids[0], 3);
    cr_assert_eq(ids[1], 3);
    cr_assert_eq(nc, 1);
    cr_assert_eq(ids[2], c[0]);
    cr_assert_eq(ids[3], 0);
    free(c);
    free(ids);
    encode_str(t, "[MASK", &ids, &n);
    for (size_t i = 0; i < n; i++) cr_assert_gt(ids[i], 4);
    free(ids);

    /* decode: specials as their content unless skipped. */
    int32_t seq[] = {2, qfmt_tokenizer_token_id(t, "And"), 4, 3};
    char *out;
    size_t ol;
    cr_assert_eq(qfmt_tokenizer_decode(t, seq, 4, false, &out, &ol, NULL), 0);
    cr_assert_str_eq(out, "[CLS]And[MASK][SEP]");
    free(out);
    cr_assert_eq(qfmt_tokenizer_decode(t, seq, 4, true, &out, &ol, NULL), 0);
    cr_assert_str_eq(out, "And");
    free(out);
    qfmt_tokenizer_free(t);
}

/* ---- (4) small known cases --------------------------------------------------------------- */

Test(tokenizer, empty_string) {
    qfmt_tokenizer *t = load_fixture();
    int32_t *ids = (int32_t *)1;
    size_t n = 99;
    encode(t, "", 0, &ids, &n);
    cr_assert_eq(n, 0);
    free(ids);
    char *out;
    size_t ol;
    cr_assert_eq(qfmt_tokenizer_decode(t, NULL, 0, false, &out, &ol, NULL), 0);
    cr_assert_eq(ol, 0);
    cr_assert_str_eq(out, "");
    free(out);
    qfmt_tokenizer_free(t);
}

Test(tokenizer, and_god_said) {
    qfmt_tokenizer *t = load_fixture();
    /* heldout.txt starts "And God said, Let there be a firmament"; its reference tokens
     * start with those of "And God said" (the comma is a pre-token of its own). */
    qfmt_st_file *f;
    const int32_t *ref = heldout_tokens(&f);
    int32_t *ids;
    size_t n;
    encode_str(t, "And God said", &ids, &n);
    /* By hand from the vocab: "And", "ĠGod", "Ġsaid" are all single vocab entries, so BPE
     * ends with exactly those three. */
    int32_t want[3] = {qfmt_tokenizer_token_id(t, "And"), qfmt_tokenizer_token_id(t, "\xC4\xA0God"),
                       qfmt_tokenizer_token_id(t, "\xC4\xA0said")};
    cr_assert_eq(n, 3);
    for (int i = 0; i < 3; i++) {
        int32_t r;
        memcpy(&r, (const char *)ref + 4 * i, 4);
        cr_assert_geq(want[i], 0);
        cr_assert_eq(ids[i], want[i], "token %d: %d != %d", i, ids[i], want[i]);
        cr_assert_eq(ids[i], r, "token %d differs from the reference: %d != %d", i, ids[i], r);
    }
    cr_log_info("\"And God said\" -> %d %d %d", ids[0], ids[1], ids[2]);
    free(ids);

    /* Mid-text, a phrase encodes like its reference span: find "\nAnd God said" at a line
     * start beyond the first line and compare with the reference tokens there. */
    size_t len;
    char *text = slurp(FIX "heldout.txt", &len);
    const char *p = strstr(text + 1, "\nAnd God said,");
    cr_assert_not_null(p);
    int32_t *pre;
    size_t npre;
    encode(t, text, (size_t)(p - text) + 1, &pre, &npre); /* everything up to the newline */
    encode_str(t, "And God said,", &ids, &n);
    for (size_t i = 0; i < n; i++) {
        int32_t r;
        memcpy(&r, (const char *)ref + 4 * (npre + i), 4);
        cr_assert_eq(ids[i], r, "token %zu of the second \"And God said,\"", i);
    }
    free(pre);
    free(ids);
    free(text);
    qfmt_st_close(f);
    qfmt_tokenizer_free(t);
}

/* The GPT-2 regex splits; each piece is BPE'd alone, so the encoding of a text is the
 * concatenation of the encodings of its pieces (each a single pre-token on its own). */
static void assert_pieces(const qfmt_tokenizer *t, const char *text, const char *const *pieces,
                          size_t np) {
    int32_t *ids;
    size_t n, o = 0;
    encode_str(t, text, &ids, &n);
    for (size_t i = 0; i < np; i++) {
        int32_t *p;
        size_t pn;
        encode_str(t, pieces[i], &p, &pn);
        cr_assert_leq(o + pn, n, "'%s': piece %zu '%s' runs past the end", text, i, pieces[i]);
        cr_assert_arr_eq(ids + o, p, pn * sizeof *p, "'%s': piece %zu '%s' differs", text, i,
                         pieces[i]);
        o += pn;
        free(p);
    }
    cr_assert_eq(o, n, "'%s': %zu ids, pieces cover %zu", text, n, o);
    free(ids);
    assert_roundtrip(t, text, strlen(text));
}

Test(tokenizer, regex_pieces) {
    qfmt_tokenizer *t = load_fixture();
    const char *p1[] = {"a", " ", " b", "\n\n", " c"};
    assert_pieces(t, "a  b\n\n c", p1, 5);
    /* contractions are case-sensitive: "'S" is punctuation then a word */
    const char *p2[] = {"Don", "'t", " you", "'ll", " see", "'", "S", "?!..."};
    assert_pieces(t, "Don't you'll see'S?!...", p2, 8);
    const char *p4[] = {"verse", " 3", ":", "16", " \xC2\xBD", " \xD9\xA3"};
    assert_pieces(t, "verse 3:16 \xC2\xBD \xD9\xA3", p4, 6);
    const char *p5[] = {"   ", " end", "  \n"};
    assert_pieces(t, "    end  \n", p5, 3);
    qfmt_tokenizer_free(t);
}

Test(tokenizer, unicode_roundtrip) {
    qfmt_tokenizer *t = load_fixture();
    const char *cases[] = {
        "caf\xC3\xA9 na\xC3\xAFve \xC3\x89lohim",          /* é ï É */
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",             /* 日本語 */
        "\xC2\xBD + \xD9\xA3 = \xE2\x85\xA7",               /* ½ ٣ Ⅷ */
        "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!", /* 😀👍🏽 */
        "nbsp\xC2\xA0here\xE2\x80\x83" "em\xE3\x80\x80ideo\xC2\x85nel",
        "tab\tcr\r\nlf\n\x0b\x0c",
        "A\x00" "B", /* NUL inside (length-delimited) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_roundtrip(t, cases[i], i == 6 ? 3 : strlen(cases[i]));

    /* é is not in the 4096 vocab as a merged token necessarily, but its two bytes are. */
    int32_t *ids;
    size_t n;
    encode_str(t, "\xC3\xA9", &ids, &n);
    cr_assert_geq(n, 1);
    cr_assert_leq(n, 2);
    free(ids);
    qfmt_tokenizer_free(t);
}

/* Text that is not valid UTF-8 (which Hugging Face cannot take) encodes without failing, its
 * bytes as they are (byte-level BPE), and decodes as HF decodes such bytes: each maximal
 * invalid subpart becomes U+FFFD (Rust's from_utf8_lossy); the valid parts come back. */
Test(tokenizer, invalid_utf8_encodes_and_decodes_lossily) {
    qfmt_tokenizer *t = load_fixture();
    const char bad[] = "ok\xFF\xFE x\xC3 y\xE6\x97 \xED\xA0\x80 end\xF0\x9F\x98";
    int32_t *ids;
    size_t n;
    encode(t, bad, sizeof bad - 1, &ids, &n);
    char *back;
    size_t blen;
    cr_assert_eq(qfmt_tokenizer_decode(t, ids, n, false, &back, &blen, NULL), 0);
#define R "\xEF\xBF\xBD"
    const char want[] = "ok" R R " x" R " y" R " " R R R " end" R;
#undef R
    cr_assert_eq(blen, sizeof want - 1, "decoded %zu bytes: '%s'", blen, back);
    cr_assert_arr_eq(back, want, blen);
    free(back);
    free(ids);
    uint64_t seed = 12345;
    for (int rep = 0; rep < 50; rep++) { /* random bytes: ids in range, decode valid UTF-8 */
        size_t len = (size_t)(th_rand(&seed) % 3000);
        unsigned char *buf = malloc(len + 1);
        cr_assert_not_null(buf);
        th_fill_random(buf, len, th_rand(&seed));
        encode(t, (const char *)buf, len, &ids, &n);
        for (size_t i = 0; i < n; i++) cr_assert(ids[i] >= 0 && (size_t)ids[i] < qfmt_tokenizer_vocab_size(t));
        cr_assert_eq(qfmt_tokenizer_decode(t, ids, n, false, &back, &blen, NULL), 0);
        cr_assert_eq(qfmt_utf8_complete_len(back, blen), blen);
        free(back);
        free(ids);
        free(buf);
    }
    qfmt_tokenizer_free(t);
}

/* Long runs must not be quadratic, nor overflow PCRE2's JIT stack. */
Test(tokenizer, long_runs) {
    qfmt_tokenizer *t = load_fixture();
    const char fill[] = {'a', ' ', '7', '!', '\n', 'e'};
    size_t len = 1 << 20;
    char *buf = malloc(len);
    cr_assert_not_null(buf);
    for (size_t k = 0; k < sizeof fill; k++) {
        memset(buf, fill[k], len);
        if (fill[k] == 'e') /* é repeated: multi-byte letters */
            for (size_t i = 0; i + 1 < len; i += 2) buf[i] = '\xC3', buf[i + 1] = '\xA9';
        double t0 = now_s();
        assert_roundtrip(t, buf, len);
        double dt = now_s() - t0;
        cr_log_info("1 MiB run of '%c': %.1f ms", fill[k] == '\n' ? 'N' : fill[k], dt * 1e3);
        cr_assert_lt(dt, 20.0);
    }
    /* spaces then a letter: \s+(?!\S) backtracks one character over a 1 MiB run */
    memset(buf, ' ', len);
    buf[len - 1] = 'x';
    assert_roundtrip(t, buf, len);
    free(buf);
    qfmt_tokenizer_free(t);
}

/* ---- concurrency --------------------------------------------------------------------------- */

typedef struct {
    const qfmt_tokenizer *t;
    const char *text;
    size_t len;
    const int32_t *want;
    size_t nwant;
    int ok;
} thread_arg;

static void *encode_thread(void *p) {
    thread_arg *a = p;
    a->ok = 1;
    for (int rep = 0; rep < 3; rep++) {
        int32_t *ids;
        size_t n;
        qfmt_error err = {0};
        if (qfmt_tokenizer_encode(a->t, a->text, a->len, &ids, &n, &err) != 0 ||
            n != a->nwant || memcmp(ids, a->want, n * sizeof *ids) != 0)
            a->ok = 0;
        free(ids);
    }
    return NULL;
}

Test(tokenizer, concurrent_encode) {
    qfmt_tokenizer *t = load_fixture();
    size_t len;
    char *text = slurp(FIX "heldout.txt", &len);
    int32_t *want;
    size_t nwant;
    encode(t, text, len, &want, &nwant);
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){t, text, len, want, nwant, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, encode_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert(args[i].ok, "thread %d got different ids", i);
    }
    free(want);
    free(text);
    qfmt_tokenizer_free(t);
}

/* ---- variants of the configuration ------------------------------------------------------ */

static cJSON *added_token(cJSON *root, const char *content) {
    cJSON *a = cJSON_GetObjectItem(root, "added_tokens");
    cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (strcmp(cJSON_GetObjectItem(e, "content")->valuestring, content) == 0) return e;
    }
    cr_assert_fail("no added token %s", content);
    return NULL;
}

static void set_bool(cJSON *obj, const char *key, bool v) {
    cJSON_ReplaceItemInObject(obj, key, cJSON_CreateBool(v));
}

static void edit_prefix_space(cJSON *root) {
    set_bool(cJSON_GetObjectItem(root, "pre_tokenizer"), "add_prefix_space", true);
}

Test(tokenizer, add_prefix_space) {
    qfmt_tokenizer *base = load_fixture(), *t;
    qfmt_error err = {0};
    cr_assert_eq(load_variant(edit_prefix_space, &t, &err), 0, "%s", tmsg(&err));
    int32_t *a, *b, *c;
    size_t na, nb, nc;
    /* "Hello world" with the prefix space is " Hello world" without it. */
    encode_str(t, "In the beginning", &a, &na);
    encode_str(base, " In the beginning", &b, &nb);
    cr_assert_eq(na, nb);
    cr_assert_arr_eq(a, b, na * sizeof *a);
    free(a);
    free(b);
    /* Already starting with a space: nothing added. */
    encode_str(t, " In", &a, &na);
    encode_str(base, " In", &b, &nb);
    cr_assert_eq(na, nb);
    cr_assert_arr_eq(a, b, na * sizeof *a);
    free(a);
    free(b);
    /* Each segment after a special token gets its own prefix space (HF pre-tokenizes the
     * pieces between added tokens separately). A leading newline is not ' ': prefixed. */
    encode_str(t, "[CLS]God[SEP]\nx", &a, &na);
    encode_str(base, " God", &b, &nb);
    encode_str(base, " \nx", &c, &nc);
    cr_assert_eq(na, 2 + nb + nc);
    cr_assert_eq(a[0], 2);
    cr_assert_arr_eq(a + 1, b, nb * sizeof *b);
    cr_assert_eq(a[1 + nb], 3);
    cr_assert_arr_eq(a + 2 + nb, c, nc * sizeof *c);
    free(a);
    free(b);
    free(c);
    encode_str(t, "", &a, &na);
    cr_assert_eq(na, 0);
    free(a);
    qfmt_tokenizer_free(t);
    qfmt_tokenizer_free(base);
}

static void edit_strip_flags(cJSON *root) {
    set_bool(added_token(root, "[MASK]"), "lstrip", true);
    set_bool(added_token(root, "[SEP]"), "rstrip", true);
    set_bool(added_token(root, "[CLS]"), "single_word", true);
}

Test(tokenizer, added_token_flags) {
    qfmt_tokenizer *base = load_fixture(), *t;
    qfmt_error err = {0};
    cr_assert_eq(load_variant(edit_strip_flags, &t, &err), 0, "%s", tmsg(&err));
    int32_t *a, *b, *c;
    size_t na, nb, nc;
    /* lstrip: the spaces before [MASK] go with it. */
    encode_str(t, "God  [MASK] x", &a, &na);
    encode_str(base, "God", &b, &nb);
    encode_str(base, " x", &c, &nc);
    cr_assert_eq(na, nb + 1 + nc);
    cr_assert_arr_eq(a, b, nb * sizeof *b);
    cr_assert_eq(a[nb], 4);
    cr_assert_arr_eq(a + nb + 1, c, nc * sizeof *c);
    free(a);
    free(b);
    free(c);
    /* rstrip: the whitespace after [SEP] goes with it. */
    encode_str(t, "x[SEP] \n y", &a, &na);
    encode_str(base, "y", &b, &nb);
    cr_assert_eq(na, 2 + nb);
    cr_assert_eq(a[1], 3);
    cr_assert_arr_eq(a + 2, b, nb * sizeof *b);
    free(a);
    free(b);
    /* single_word: [CLS] glued to a word is not the special token. */
    encode_str(t, "x[CLS]", &a, &na);
    for (size_t i = 0; i < na; i++) cr_assert_neq(a[i], 2);
    free(a);
    encode_str(t, "\xC3\xA9[CLS]", &a, &na); /* é is a word character too */
    for (size_t i = 0; i < na; i++) cr_assert_neq(a[i], 2);
    free(a);
    encode_str(t, "x [CLS]!", &a, &na);
    cr_assert_eq(a[na - 2], 2);
    free(a);
    encode_str(t, "[CLS]", &a, &na);
    cr_assert_eq(na, 1);
    cr_assert_eq(a[0], 2);
    free(a);
    qfmt_tokenizer_free(t);
    qfmt_tokenizer_free(base);
}

static void edit_split_sequence(cJSON *root) {
    cJSON *seq = cJSON_CreateObject();
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(seq, "pretokenizers");
    cJSON *split = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON *pat = cJSON_AddObjectToObject(split, "pattern");
    cJSON_AddStringToObject(pat, "Regex",
                            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
                            "\\s+(?!\\S)|\\s+");
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_AddItemToArray(list, split);
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddFalseToObject(bl, "add_prefix_space");
    cJSON_AddTrueToObject(bl, "trim_offsets");
    cJSON_AddFalseToObject(bl, "use_regex");
    cJSON_AddItemToArray(list, bl);
    cJSON_ReplaceItemInObject(root, "pre_tokenizer", seq);
}

static void edit_no_regex(cJSON *root) {
    set_bool(cJSON_GetObjectItem(root, "pre_tokenizer"), "use_regex", false);
}

static void edit_string_merges(cJSON *root) {
    cJSON *model = cJSON_GetObjectItem(root, "model");
    cJSON *merges = cJSON_GetObjectItem(model, "merges");
    cJSON *legacy = cJSON_CreateArray();
    cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s %s", m->child->valuestring, m->child->next->valuestring);
        cJSON_AddItemToArray(legacy, cJSON_CreateString(buf));
    }
    cJSON_ReplaceItemInObject(model, "merges", legacy);
}

Test(tokenizer, equivalent_configurations) {
    qfmt_tokenizer *base = load_fixture(), *t;
    qfmt_error err = {0};
    size_t len;
    char *text = slurp(FIX "heldout.txt", &len);
    len = len > 20000 ? 20000 : len;
    int32_t *want, *got;
    size_t nwant, ngot;
    encode(base, text, len, &want, &nwant);
    void (*edits[])(cJSON *) = {edit_split_sequence, edit_string_merges};
    for (size_t e = 0; e < 2; e++) {
        cr_assert_eq(load_variant(edits[e], &t, &err), 0, "variant %zu: %s", e, tmsg(&err));
        encode(t, text, len, &got, &ngot);
        cr_assert_eq(ngot, nwant, "variant %zu", e);
        cr_assert_arr_eq(got, want, nwant * sizeof *got, "variant %zu", e);
        free(got);
        qfmt_tokenizer_free(t);
    }
    /* use_regex=false: the whole text is one pre-token; still lossless. */
    cr_assert_eq(load_variant(edit_no_regex, &t, &err), 0, "%s", tmsg(&err));
    assert_roundtrip(t, text, len);
    encode_str(t, "In the", &got, &ngot);
    int32_t *b;
    size_t nb;
    encode_str(base, "In the", &b, &nb); /* "In", "Ġthe": no merge across the pieces here */
    cr_assert_geq(ngot, 1);
    free(b);
    free(got);
    qfmt_tokenizer_free(t);
    free(want);
    free(text);
    qfmt_tokenizer_free(base);
}

/* ---- (5) refusals ------------------------------------------------------------------------ */

static void assert_refused(const char *json, const char *needle) {
    qfmt_error err = {0};
    qfmt_tokenizer *t = (qfmt_tokenizer *)1;
    int rc = qfmt_tokenizer_load(&t, json, strlen(json), &err);
    cr_assert_neq(rc, QFMT_OK, "accepted: %s", json);
    cr_assert_null(t);
    cr_assert_not_null(strstr(tmsg(&err), needle), "message '%s' does not mention '%s'", tmsg(&err), needle);
}

#define MINI_HEAD "{\"added_tokens\":[],\"normalizer\":null,"
#define MINI_PRE "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"
#define MINI_DEC "\"decoder\":{\"type\":\"ByteLevel\"},"
#define MINI_OK_MODEL "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}}"

Test(tokenizer, minimal_ok) {
    qfmt_tokenizer *t;
    const char *json = MINI_HEAD MINI_PRE MINI_DEC MINI_OK_MODEL;
    t = load_json(json, strlen(json));
    int32_t *ids;
    size_t n;
    encode_str(t, "abab ab", &ids, &n); /* "abab" -> ab ab; " ab": no 'Ġ' -> dropped, ab */
    cr_assert_eq(n, 3);
    cr_assert_eq(ids[0], 2);
    cr_assert_eq(ids[1], 2);
    cr_assert_eq(ids[2], 2);
    free(ids);
    qfmt_tokenizer_free(t);
}

Test(tokenizer, refuses_other_models_and_components) {
    /* what the runtime does not implement is refused by name, never run differently */
    assert_refused(MINI_HEAD MINI_PRE MINI_DEC "\"model\":{\"type\":\"Chars\",\"vocab\":{}}}", "'Chars'");
    assert_refused("{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"\"}," MINI_PRE MINI_DEC
                   MINI_OK_MODEL,
                   "Precompiled");
    assert_refused("{\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Mystery\"}," MINI_DEC MINI_OK_MODEL,
                   "Mystery");
    assert_refused("{" MINI_PRE "\"decoder\":{\"type\":\"Mystery\"}," MINI_OK_MODEL, "Mystery");
    assert_refused("{" MINI_PRE MINI_DEC "\"post_processor\":{\"type\":\"Mystery\"}," MINI_OK_MODEL, "Mystery");
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"dropout\":0.1,"
                   "\"vocab\":{\"a\":0},\"merges\":[]}}",
                   "dropout");
}

Test(tokenizer, refuses_malformed) {
    assert_refused("{\"model\":", "JSON");
    assert_refused("[]", "object");
    assert_refused("{}", "model");
    assert_refused("", "empty");
    /* merges naming unknown tokens */
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},"
                   "\"merges\":[\"a c\"]}}",
                   "'c'");
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},"
                   "\"merges\":[[\"a\",\"b\"]]}}",
                   "'ab'");
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,"
                   "\"ab\":2},\"merges\":[\"a  b\"]}}",
                   "merges[0]: token ' b'");
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},"
                   "\"merges\":[42]}}",
                   "merges[0]");
    /* ids: negative, fractional, huge, duplicate, sparse, wrong type */
    const char *bad_ids[] = {"-1", "0.5", "1e30", "16777216", "\"0\"", "null", "true"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":%s},"
                 "\"merges\":[]}}",
                 bad_ids[i]);
        assert_refused(json, "id");
    }
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},"
                   "\"merges\":[]}}",
                   "id 0");
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"a\":1},"
                   "\"merges\":[]}}",
                   "duplicate key \"a\""); /* the JSON policy */
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,"
                   "\"b\":9000000},\"merges\":[]}}",
                   "sparse");
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":[\"a\"],"
                   "\"merges\":[]}}",
                   "vocab");
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{}," "\"merges\":[]}}",
                   "empty");
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\\u0000b\":0},"
                   "\"merges\":[]}}",
                   "u0000");
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\","
                   "\"vocab\":{\"a\":0},\"merges\":[]}}",
                   "unk_token");
    /* added tokens: bad fields, ids HF would not keep, duplicates */
    assert_refused("{\"added_tokens\":[{\"id\":5,\"content\":\"<x>\"}]," MINI_PRE MINI_DEC
                   MINI_OK_MODEL,
                   "would give it id 3");
    assert_refused("{\"added_tokens\":[{\"id\":1,\"content\":\"a\"}]," MINI_PRE MINI_DEC
                   MINI_OK_MODEL,
                   "would give it id 0");
    assert_refused("{\"added_tokens\":[{\"id\":3,\"content\":\"<x>\"},{\"id\":3,\"content\":"
                   "\"<x>\"}]," MINI_PRE MINI_DEC MINI_OK_MODEL,
                   "twice");
    assert_refused("{\"added_tokens\":[{\"id\":3,\"content\":\"\"}]," MINI_PRE MINI_DEC
                   MINI_OK_MODEL,
                   "content");
    assert_refused("{\"added_tokens\":[{\"id\":3,\"content\":\"<x>\",\"special\":1}]," MINI_PRE
                   MINI_DEC MINI_OK_MODEL,
                   "boolean");
    assert_refused("{\"added_tokens\":{}," MINI_PRE MINI_DEC MINI_OK_MODEL, "array");
    assert_refused("{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":\"no\"},"
                   MINI_DEC MINI_OK_MODEL,
                   "add_prefix_space");
}

/* Random corruption of the real tokenizer.json: never a crash (ASan/UBSan build), and any
 * tokenizer that loads still encodes and decodes. */
Test(tokenizer, corrupted_json_no_crash) {
    size_t len;
    char *json = slurp(FIX "tokenizer.json", &len);
    char *copy = malloc(len);
    cr_assert_not_null(copy);
    uint64_t seed = 777;
    int loaded = 0;
    const char junk[] = "\"{}[],:0-9e.\\ntruefalsnul";
    for (int rep = 0; rep < 150; rep++) {
        memcpy(copy, json, len);
        size_t flips = 1 + th_rand(&seed) % 4;
        for (size_t k = 0; k < flips; k++) {
            size_t at = (size_t)(th_rand(&seed) % len);
            copy[at] = (th_rand(&seed) & 1) ? junk[th_rand(&seed) % (sizeof junk - 1)]
                                            : (char)th_rand(&seed);
        }
        size_t l = (th_rand(&seed) % 8 == 0) ? (size_t)(th_rand(&seed) % len) : len;
        qfmt_error err = {0};
        qfmt_tokenizer *t;
        if (qfmt_tokenizer_load(&t, copy, l, &err) == 0) {
            loaded++;
            int32_t *ids;
            size_t n;
            char *out;
            size_t ol;
            const char s[] = "[CLS] And God said, Let there be light: and there was light.";
            cr_assert_eq(qfmt_tokenizer_encode(t, s, sizeof s - 1, &ids, &n, &err), 0);
            if (qfmt_tokenizer_decode(t, ids, n, false, &out, &ol, NULL) == 0) free(out);
            free(ids);
            qfmt_tokenizer_free(t);
        } else {
            cr_assert_gt(strlen(tmsg(&err)), 0);
        }
    }
    cr_log_info("corrupted tokenizer.json: %d of 150 still loaded", loaded);
    free(copy);
    free(json);
}

/* Valid JSON with hostile values: ids moved, duplicated, out of range or of the wrong type,
 * vocab entries renamed or removed, merges broken or reordered, added tokens changed.
 * Every variant either loads (and then encodes and decodes) or is refused with a message. */
static void mutate(cJSON *root, uint64_t *seed) {
    cJSON *model = cJSON_GetObjectItem(root, "model");
    cJSON *vocab = cJSON_GetObjectItem(model, "vocab");
    cJSON *merges = cJSON_GetObjectItem(model, "merges");
    cJSON *added = cJSON_GetObjectItem(root, "added_tokens");
    int nv = cJSON_GetArraySize(vocab), nm = cJSON_GetArraySize(merges);
    int na = cJSON_GetArraySize(added);
    static const double ids[] = {-1, 0, 4, 4095, 4096, 4097, 5000, 1e9, 0.5, 16777215, 16777216};
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges) || !cJSON_IsArray(added) || nv < 300 ||
        nm == 0 || na == 0)
        return; /* an earlier mutation already broke the structure */
    switch (th_rand(seed) % 10) {
    case 0: { /* a vocab id changed */
        cJSON *e = cJSON_GetArrayItem(vocab, (int)(th_rand(seed) % (uint64_t)nv));
        cJSON_SetNumberValue(e, ids[th_rand(seed) % (sizeof ids / sizeof *ids)]);
        break;
    }
    case 1: /* a vocab entry removed (breaks merges, or the byte alphabet) */
        cJSON_DeleteItemFromArray(vocab, (int)(th_rand(seed) % (uint64_t)nv));
        break;
    case 2: { /* a vocab key renamed */
        cJSON *e = cJSON_GetArrayItem(vocab, (int)(th_rand(seed) % (uint64_t)nv));
        const char *names[] = {"zz", "", "\xC4\xA0", "[MASK]", "the"};
        cJSON_AddNumberToObject(vocab, names[th_rand(seed) % 5], e->valuedouble);
        cJSON_DeleteItemFromArray(vocab, (int)(th_rand(seed) % (uint64_t)nv));
        break;
    }
    case 3: /* a merge removed: still a valid tokenizer */
        cJSON_DeleteItemFromArray(merges, (int)(th_rand(seed) % (uint64_t)nm));
        break;
    case 4: { /* a merge duplicated at the end (later rank wins) */
        cJSON *m = cJSON_GetArrayItem(merges, (int)(th_rand(seed) % (uint64_t)nm));
        cJSON_AddItemToArray(merges, cJSON_Duplicate(m, true));
        break;
    }
    case 5: { /* a merge's element replaced by a wrong type or unknown token */
        cJSON *m = cJSON_GetArrayItem(merges, (int)(th_rand(seed) % (uint64_t)nm));
        cJSON *r = (th_rand(seed) & 1) ? cJSON_CreateNumber(3) : cJSON_CreateString("qq");
        cJSON_ReplaceItemInArray(m, (int)(th_rand(seed) & 1), r);
        break;
    }
    case 6: { /* an added token's id or content changed */
        cJSON *a = cJSON_GetArrayItem(added, (int)(th_rand(seed) % (uint64_t)na));
        if (th_rand(seed) & 1)
            cJSON_ReplaceItemInObject(a, "id", cJSON_CreateNumber(ids[th_rand(seed) % 11]));
        else
            cJSON_ReplaceItemInObject(a, "content", cJSON_CreateString("the"));
        break;
    }
    case 7: { /* a new added token, maybe with flags */
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", (th_rand(seed) & 1) ? 4096 : 4097);
        cJSON_AddStringToObject(a, "content", (th_rand(seed) & 1) ? "<new>" : " ");
        cJSON_AddBoolToObject(a, "lstrip", th_rand(seed) & 1);
        cJSON_AddBoolToObject(a, "rstrip", th_rand(seed) & 1);
        cJSON_AddBoolToObject(a, "single_word", th_rand(seed) & 1);
        cJSON_AddBoolToObject(a, "normalized", th_rand(seed) & 1);
        cJSON_AddItemToArray(added, a);
        break;
    }
    case 8: /* a field of the wrong type */
        cJSON_ReplaceItemInObject(model, (th_rand(seed) & 1) ? "vocab" : "merges",
                                  cJSON_CreateString("x"));
        break;
    default: /* the model options */
        cJSON_ReplaceItemInObject(model, "unk_token", cJSON_CreateString("[PAD]"));
        cJSON_ReplaceItemInObject(model, "fuse_unk", cJSON_CreateBool(th_rand(seed) & 1));
        cJSON_ReplaceItemInObject(model, "ignore_merges", cJSON_CreateBool(th_rand(seed) & 1));
        cJSON_DeleteItemFromArray(vocab, 5 + (int)(th_rand(seed) % 200)); /* a byte char */
        break;
    }
}

Test(tokenizer, hostile_values_no_crash) {
    size_t len;
    char *json = slurp(FIX "tokenizer.json", &len);
    cJSON *orig = cJSON_ParseWithLength(json, len);
    cr_assert_not_null(orig);
    free(json);
    uint64_t seed = 4242;
    int loaded = 0;
    for (int rep = 0; rep < 120; rep++) {
        cJSON *root = cJSON_Duplicate(orig, true);
        int nmut = 1 + (int)(th_rand(&seed) % 3);
        for (int k = 0; k < nmut; k++) mutate(root, &seed);
        char *text = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        qfmt_error err = {0};
        qfmt_tokenizer *t;
        if (qfmt_tokenizer_load(&t, text, strlen(text), &err) == 0) {
            loaded++;
            const char s[] = "[CLS] And  God said,\n Let there <new> be \xC3\xA9 light [MASK].";
            int32_t *ids;
            size_t n;
            char *out;
            size_t ol;
            cr_assert_eq(qfmt_tokenizer_encode(t, s, sizeof s - 1, &ids, &n, &err), 0);
            for (size_t i = 0; i < n; i++)
                cr_assert(ids[i] >= 0 && (size_t)ids[i] < qfmt_tokenizer_vocab_size(t));
            cr_assert_eq(qfmt_tokenizer_decode(t, ids, n, false, &out, &ol, NULL), 0);
            free(out);
            free(ids);
            qfmt_tokenizer_free(t);
        } else {
            cr_assert_gt(strlen(tmsg(&err)), 0);
        }
        cJSON_free(text);
    }
    cr_log_info("hostile tokenizer.json values: %d of 120 still loaded", loaded);
    cJSON_Delete(orig);
}

/* ---- (6) decode errors, lookups, streaming helper -------------------------------------- */

Test(tokenizer, decode_invalid_ids) {
    qfmt_tokenizer *t = load_fixture();
    int32_t bad[][2] = {{5, -1}, {5, 4096}, {5, INT32_MAX}, {INT32_MIN, 5}};
    for (size_t i = 0; i < 4; i++) {
        char *out = (char *)1;
        size_t ol = 7;
        cr_assert_eq(qfmt_tokenizer_decode(t, bad[i], 2, false, &out, &ol, NULL), QFMT_E_RANGE);
        cr_assert_null(out);
        cr_assert_eq(ol, 0);
    }
    const char *b;
    size_t bl;
    cr_assert_eq(qfmt_tokenizer_token_bytes(t, 4096, &b, &bl), QFMT_E_RANGE);
    cr_assert_eq(qfmt_tokenizer_token_bytes(t, -3, &b, &bl), QFMT_E_RANGE);
    cr_assert_eq(qfmt_tokenizer_token_string(t, 4096, &b, &bl), QFMT_E_RANGE);
    /* Byte tokens decode to one raw byte each: 'Ġ' is the space, 'Ċ' the newline. */
    cr_assert_eq(qfmt_tokenizer_token_bytes(t, qfmt_tokenizer_token_id(t, "\xC4\xA0"), &b, &bl), 0);
    cr_assert_eq(bl, 1);
    cr_assert_eq(b[0], ' ');
    cr_assert_eq(qfmt_tokenizer_token_bytes(t, qfmt_tokenizer_token_id(t, "\xC4\x8A"), &b, &bl), 0);
    cr_assert_eq(bl, 1);
    cr_assert_eq(b[0], '\n');
    qfmt_tokenizer_free(t);
}

Test(tokenizer, utf8_complete_len) {
    cr_assert_eq(qfmt_utf8_complete_len("", 0), 0);
    cr_assert_eq(qfmt_utf8_complete_len("abc", 3), 3);
    cr_assert_eq(qfmt_utf8_complete_len("a\xC3", 2), 1);
    cr_assert_eq(qfmt_utf8_complete_len("a\xC3\xA9", 3), 3);
    cr_assert_eq(qfmt_utf8_complete_len("a\xF0\x9F\x98", 4), 1);
    cr_assert_eq(qfmt_utf8_complete_len("a\xF0\x9F\x98\x80", 5), 5);
    cr_assert_eq(qfmt_utf8_complete_len("a\xE6\x97", 3), 1);
    cr_assert_eq(qfmt_utf8_complete_len("a\xFF", 2), 2);     /* invalid: release */
    cr_assert_eq(qfmt_utf8_complete_len("a\x80", 2), 2);     /* stray continuation */
    cr_assert_eq(qfmt_utf8_complete_len("a\xED\xA0", 3), 3); /* would be a surrogate */
    cr_assert_eq(qfmt_utf8_complete_len("a\xF4\x90", 3), 3); /* would exceed U+10FFFF */
}

/* qfmt_decode_stream: the pieces add up to the whole decode, an emoji split over byte tokens
 * printed once complete, and no piece ends inside a character. */
Test(tokenizer, streaming_decode_of_emoji) {
    qfmt_tokenizer *t = load_fixture();
    const char *s = "light \xF0\x9F\x98\x80 and \xE6\x97\xA5";
    int32_t *ids;
    size_t n;
    encode_str(t, s, &ids, &n);
    qfmt_decode_stream *ds;
    cr_assert_eq(qfmt_decode_stream_new(&ds, t, false, NULL), QFMT_OK);
    char out[256];
    size_t o = 0;
    int empty_steps = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p;
        size_t pl;
        cr_assert_eq(qfmt_decode_stream_step(ds, ids[i], &p, &pl, NULL), QFMT_OK);
        cr_assert_eq(qfmt_utf8_complete_len(p, pl), pl, "a piece ends inside a character");
        cr_assert_lt(o + pl, sizeof out);
        memcpy(out + o, p, pl);
        o += pl;
        empty_steps += pl == 0;
    }
    cr_assert_eq(o, strlen(s));
    cr_assert_eq(memcmp(out, s, o), 0);
    cr_assert_gt(empty_steps, 0, "the emoji's first byte tokens print nothing");
    const char *p;
    size_t pl;
    cr_assert_eq(qfmt_decode_stream_step(ds, -1, &p, &pl, NULL), QFMT_E_RANGE);
    qfmt_decode_stream_free(ds);
    free(ids);
    qfmt_tokenizer_free(t);
}

/* ---- Hostile tokenizer.json files: a clear error, bounded time and memory ------------------ */

/* A Sequence of Sequences `depth` deep around one normalizer (or pre-tokenizer, decoder). */
static char *nested(const char *part, const char *list, const char *leaf, int depth) {
    size_t cap = (size_t)depth * 64 + 1024;
    char *s = malloc(cap), *p = s;
    p += sprintf(p, "{\"%s\":", part);
    for (int i = 0; i < depth; i++) p += sprintf(p, "{\"type\":\"Sequence\",\"%s\":[", list);
    p += sprintf(p, "%s", leaf);
    for (int i = 0; i < depth; i++) p += sprintf(p, "]}");
    sprintf(p, ",%s%s", strcmp(part, "decoder") ? MINI_DEC : "", MINI_OK_MODEL);
    if (strcmp(part, "pre_tokenizer")) { /* the other parts need a pre-tokenizer too */
        char *q = malloc(cap + 256);
        sprintf(q, "{" MINI_PRE "%s", s + 1);
        free(s);
        s = q;
    }
    return s;
}

Test(tokenizer_hostile, nesting_is_bounded) {
    struct { const char *part, *list, *leaf; } c[] = {
        {"normalizer", "normalizers", "{\"type\":\"NFC\"}"},
        {"pre_tokenizer", "pretokenizers", "{\"type\":\"ByteLevel\",\"add_prefix_space\":false}"},
        {"decoder", "decoders", "{\"type\":\"ByteLevel\"}"},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        char *ok = nested(c[i].part, c[i].list, c[i].leaf, 4); /* real files nest 1 or 2 deep */
        qfmt_tokenizer_free(load_json(ok, strlen(ok)));
        free(ok);
        char *deep = nested(c[i].part, c[i].list, c[i].leaf, 40); /* past TK_MAX_DEPTH (16) */
        assert_refused(deep, "deep");
        free(deep);
        char *deeper = nested(c[i].part, c[i].list, c[i].leaf, 200); /* past the JSON policy's 128 */
        assert_refused(deeper, "nesting deeper than 128");
        free(deeper);
    }
}

Test(tokenizer_hostile, backtracking_regex_fails_in_bounded_time) {
    /* (a+)+$ against a run of a's followed by b: exponential backtracking without a bound */
    const char *json = "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a+)+$\"},"
                       "\"behavior\":\"Isolated\",\"invert\":false}," MINI_DEC MINI_OK_MODEL;
    qfmt_tokenizer *t = load_json(json, strlen(json));
    char text[64];
    memset(text, 'a', 40);
    text[40] = 'b';
    int32_t *ids = (int32_t *)1;
    size_t n = 1;
    qfmt_error e;
    qfmt_status s = qfmt_tokenizer_encode(t, text, 41, &ids, &n, &e);
    cr_assert_eq(s, QFMT_E_RANGE, "status %d: %s", (int)s, tmsg(&e));
    cr_assert(strstr(e.message, "match limit") != NULL, "%s", tmsg(&e));
    cr_assert(ids == NULL && n == 0);
    qfmt_tokenizer_free(t);
}

Test(tokenizer_hostile, ids_out_of_range_are_refused) {
    assert_refused("{" MINI_PRE MINI_DEC "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":"
                   "[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
                   "\"pair\":[],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1000000],\"tokens\":[\"<s>\"]}}},"
                   MINI_OK_MODEL,
                   "ids[0] is not an id");
    assert_refused("{" MINI_PRE MINI_DEC "\"post_processor\":{\"type\":\"BertProcessing\",\"sep\":[\"x\",7],"
                   "\"cls\":[\"a\",0]}," MINI_OK_MODEL,
                   "sep[1] is not an id");
    assert_refused("{\"added_tokens\":[{\"id\":16777216,\"content\":\"<x>\"}]," MINI_PRE MINI_DEC MINI_OK_MODEL,
                   "id");
    assert_refused("{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"Unigram\",\"unk_id\":5,\"vocab\":[[\"a\",-1.0]]}}",
                   "unk_id");
}

Test(tokenizer_hostile, invalid_utf8_in_the_file_is_refused) {
    const char json[] = "{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\xff\":0},\"merges\":[]}}";
    assert_refused(json, "UTF-8");
}

Test(tokenizer_hostile, many_merges_load) {
    /* 20000 merges over a 2-character vocab, most naming tokens that are not there: refused at
     * the first, in one pass; then 20000 valid ones (a chain a, aa, aaa, ...) load */
    size_t cap = 4u << 20;
    char *json = malloc(cap), *p = json;
    p += sprintf(p, "{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[");
    for (int i = 0; i < 20000; i++) p += sprintf(p, "%s\"a b%d\"", i ? "," : "", i);
    sprintf(p, "]}}");
    assert_refused(json, "merges[0]");
    p = json;
    p += sprintf(p, "{" MINI_PRE MINI_DEC "\"model\":{\"type\":\"BPE\",\"vocab\":{");
    char *w = malloc(64 * 1024);
    for (int i = 1; i <= 2000; i++) {
        memset(w, 'a', (size_t)i);
        w[i] = '\0';
        p += sprintf(p, "%s\"%s\":%d", i > 1 ? "," : "", w, i - 1);
    }
    p += sprintf(p, "},\"merges\":[");
    for (int i = 1; i < 2000; i++) {
        memset(w, 'a', (size_t)i);
        w[i] = '\0';
        p += sprintf(p, "%s[\"%s\",\"a\"]", i > 1 ? "," : "", w);
    }
    sprintf(p, "]}}");
    qfmt_tokenizer *t = load_json(json, strlen(json));
    int32_t *ids;
    size_t n;
    memset(w, 'a', 3000);
    encode(t, w, 3000, &ids, &n); /* one word of 3000 a's: rank 0 (a a) merges every pair left
                                   * to right first; no merge joins "aa" and "aa" */
    cr_assert_eq(n, 1500);
    for (size_t i = 0; i < n; i++) cr_assert_eq(ids[i], 1);
    free(ids);
    qfmt_tokenizer_free(t);
    free(w);
    free(json);
}
