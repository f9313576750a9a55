/*
 * fuzz_tokenizer.c - libFuzzer target for the runtime's tokenizer.json loader and the whole
 * tokenizer pipeline (libqfmt_model/src/tokenizer/: normalizers, pre-tokenizers, the BPE,
 * WordPiece, WordLevel and Unigram models, added tokens, post-processors, decoders).
 *
 * Input: a tokenizer.json text, optionally followed by a NUL byte and a text to encode (JSON
 * cannot hold a raw NUL, so the split is unambiguous). Whatever loads encodes a fixed text
 * (ASCII, Unicode letters, digits, white space, an added token, invalid UTF-8) and the
 * fuzz-derived one (without and with the post-processor's special tokens), then decodes the
 * ids, with and without special tokens, and streams them through qfmt_decode_stream.
 *
 * Besides memory errors (ASan, UBSan), the target aborts when the tokenizer contradicts itself:
 * an id outside [0, vocab_size), a failing decode of ids it produced, a token id lookup that
 * does not give back the token's string, a stream whose pieces do not add up to the decoded
 * text's prefix, or a broken round trip. For a byte-level BPE (no normalizer, ByteLevel
 * pre-tokenizer and decoder) decode(encode(x)) == x for every valid UTF-8 string x when every
 * byte's character is in the vocabulary, no added token has lstrip / rstrip, and no prefix
 * space is added; the check is made only then, and only when every added token decodes to its
 * own text (an added token written in byte characters, such as "Ġx", decodes to other bytes
 * than it matched).
 *
 * Build: with clang and -DQFMT_FUZZ=ON (libFuzzer), or with any compiler linked with
 * regression_driver.c to replay a corpus. See fuzz/README.md.
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt_model.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const char FIXED_TEXT[] =
    "And God said, Let there be light: and there was light.\n\n"
    "  It's 1611's   text\t\t\r\n caf\xc3\xa9 \xce\xb1\xce\xb2\xce\xb3 \xe4\xb8\xad\xe6\x96\x87 "
    "\xf0\x9f\x98\x80 <|endoftext|>[MASK] [CLS]x<s></s> 12345 a\xc2\xa0" "b\xe2\x80\x83" "c "
    "\xff\xfe\x80 \xe2\x82 \xed\xa0\x80 end";

/* Not a ByteLevel pre-tokenizer, or one with add_prefix_space explicitly false. */
static bool prefix_space_off(const cJSON *p)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(p, "type");
    if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "ByteLevel") != 0)
        return true;
    return cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space"));
}

/* What the round trip needs of the tokenizer.json, read independently of the loader: no
 * prefix space, no lstrip/rstrip, every added token's decoded bytes equal to its content. */
static bool round_trip_expected(const qfmt_tokenizer *t, const char *json, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    bool ok = root != NULL;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *dty = cJSON_GetObjectItemCaseSensitive(dec, "type");
    const cJSON *mty = cJSON_GetObjectItemCaseSensitive(model, "type");
    if ((norm && !cJSON_IsNull(norm)) || !cJSON_IsString(dty) || strcmp(dty->valuestring, "ByteLevel") != 0 ||
        !cJSON_IsString(mty) || strcmp(mty->valuestring, "BPE") != 0 || !pre || cJSON_IsNull(pre))
        ok = false;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    /* a ByteLevel pre-tokenizer adds a prefix space unless add_prefix_space is false: absent
     * (HF's default, true) counts as adding one (a campaign finding of the target itself,
     * seed regress_bytelevel_prefix_space_default) */
    if (!prefix_space_off(pre))
        ok = false;
    for (const cJSON *p = cJSON_IsArray(list) ? list->child : NULL; p; p = p->next)
        if (!prefix_space_off(p))
            ok = false;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a && ok; a = a->next) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "lstrip")) ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "rstrip"))) {
            ok = false;
            break;
        }
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsString(content))
            continue;
        int32_t id = qfmt_tokenizer_token_id(t, content->valuestring);
        const char *b;
        size_t bl;
        if (id < 0 || qfmt_tokenizer_token_bytes(t, id, &b, &bl) != 0 ||
            bl != strlen(content->valuestring) || memcmp(b, content->valuestring, bl) != 0)
            ok = false;
    }
    cJSON_Delete(root);
    /* every byte's character is a token */
    for (unsigned c = 0; c < 256 && ok; c++) {
        unsigned cp = c;
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) {
            unsigned k = 0;
            for (unsigned x = 0; x < c; x++)
                if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE))
                    k++;
            cp = 256 + k;
        }
        char s[3] = {0};
        if (cp < 0x80)
            s[0] = (char)cp;
        else {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
        }
        if (qfmt_tokenizer_token_id(t, s) < 0)
            ok = false;
    }
    return ok;
}

static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t l = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (!l || i + l > n) return false;
        uint32_t v = l == 1 ? c : l == 2 ? (c & 0x1F) : l == 3 ? (c & 0x0F) : (c & 0x07);
        for (size_t k = 1; k < l; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            v = (v << 6) | (s[i + k] & 0x3F);
        }
        if ((l == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) || (l == 4 && (v < 0x10000 || v > 0x10FFFF)))
            return false;
        i += l;
    }
    return true;
}

/* The pieces of a decode stream, concatenated, are a prefix of the full decode (the stream
 * holds back a character still incomplete at the end). Checked for the byte-level tokenizers
 * of the round trip (strict); other decoders may rewrite earlier text (WordPiece's cleanup of
 * " ." depends on the next token), so there only memory safety is checked. */
static void stream(const qfmt_tokenizer *t, const int32_t *ids, size_t n, bool strict)
{
    char *full = NULL;
    size_t flen = 0;
    if (qfmt_tokenizer_decode(t, ids, n, false, &full, &flen, NULL) != QFMT_OK) return;
    qfmt_decode_stream *ds = NULL;
    CHECK(qfmt_decode_stream_new(&ds, t, false, NULL) == QFMT_OK);
    size_t at = 0;
    bool prefix = true;
    for (size_t i = 0; i < n && i < 256; i++) {
        const char *p;
        size_t pl;
        qfmt_status st = qfmt_decode_stream_step(ds, ids[i], &p, &pl, NULL);
        /* QFMT_E_STATE: the decode no longer starts with the text already returned (HF's
         * InvalidPrefix), possible only with decoders that rewrite earlier text */
        CHECK(st == QFMT_OK || (st == QFMT_E_STATE && !strict));
        if (st != QFMT_OK) break;
        touch(p, pl);
        if (prefix && (at + pl > flen || memcmp(full + at, p, pl) != 0)) prefix = false;
        at += pl;
    }
    CHECK(prefix || !strict);
    qfmt_decode_stream_free(ds);
    free(full);
}

static void encode_decode(const qfmt_tokenizer *t, const char *text, size_t len, bool round_trip)
{
    round_trip = round_trip && valid_utf8((const unsigned char *)text, len);
    int32_t *ids = (int32_t *)(void *)&fuzz_sink; /* must be reset */
    size_t n = 12345;
    qfmt_error err = {0};
    char msg[1024];
    if (qfmt_tokenizer_encode(t, text, len, &ids, &n, &err) != 0) {
        CHECK(ids == NULL && n == 0);
        CHECK(err.code != QFMT_OK && qfmt_error_format(&err, msg, sizeof msg)[0] != '\0' && memchr(msg, 0x1b, strlen(msg)) == NULL);
        return;
    }
    CHECK(n == 0 || ids != NULL);
    size_t vs = qfmt_tokenizer_vocab_size(t);
    for (size_t i = 0; i < n; i++) {
        CHECK(ids[i] >= 0 && (size_t)ids[i] < vs);
        const char *b;
        size_t bl;
        CHECK(qfmt_tokenizer_token_bytes(t, ids[i], &b, &bl) == 0);
        touch(b, bl);
    }
    for (int skip = 0; skip <= 1; skip++) {
        char *out = NULL;
        size_t olen = 0;
        CHECK(qfmt_tokenizer_decode(t, ids, n, skip, &out, &olen, NULL) == 0);
        CHECK(out != NULL && out[olen] == '\0');
        touch(out, olen + 1);
        if (!skip && round_trip)
            CHECK(olen == len && memcmp(out, text, len) == 0);
        size_t keep = qfmt_utf8_complete_len(out, olen);
        CHECK(keep <= olen && olen - keep <= 3);
        free(out);
    }
    stream(t, ids, n, round_trip);
    int32_t *with = NULL;
    size_t nw = 0;
    if (qfmt_tokenizer_encode_with(t, text, len, QFMT_TOKENIZE_ADD_SPECIAL, &with, &nw, &err) == QFMT_OK) {
        CHECK(nw == 0 || with != NULL);
        for (size_t i = 0; i < nw; i++) CHECK(with[i] >= 0 && (size_t)with[i] < vs);
        free(with);
    } else {
        CHECK(with == NULL && nw == 0);
    }
    /* an id past the end is refused */
    if (n > 0) {
        int32_t saved = ids[n - 1];
        ids[n - 1] = (int32_t)vs;
        char *out = (char *)&fuzz_sink;
        size_t olen = 1;
        CHECK(qfmt_tokenizer_decode(t, ids, n, false, &out, &olen, NULL) != 0);
        CHECK(out == NULL && olen == 0);
        ids[n - 1] = saved;
    }
    free(ids);
}

/* Every id: its string looks up to itself (or, for an id whose string another token has, to a
 * token with the same string), its bytes are readable. */
static void walk_vocab(const qfmt_tokenizer *t)
{
    size_t vs = qfmt_tokenizer_vocab_size(t);
    CHECK(vs > 0);
    size_t lim = vs < 4096 ? vs : 4096;
    for (size_t id = 0; id < lim; id++) {
        const char *s, *b;
        size_t sl, bl;
        int rs = qfmt_tokenizer_token_string(t, (int32_t)id, &s, &sl);
        int rb = qfmt_tokenizer_token_bytes(t, (int32_t)id, &b, &bl);
        CHECK(rs == rb);
        if (rs != 0) {
            CHECK(!qfmt_tokenizer_is_special(t, (int32_t)id));
            continue;
        }
        touch(s, sl);
        touch(b, bl);
        if (memchr(s, '\0', sl) == NULL) {
            char *z = malloc(sl + 1);
            if (z != NULL) {
                memcpy(z, s, sl);
                z[sl] = '\0';
                CHECK(qfmt_tokenizer_token_id(t, z) == (int32_t)id);
                free(z);
            }
        }
    }
    const char *s;
    size_t sl;
    CHECK(qfmt_tokenizer_token_string(t, (int32_t)vs, &s, &sl) != 0);
    CHECK(qfmt_tokenizer_token_string(t, -1, &s, &sl) != 0);
    CHECK(!qfmt_tokenizer_is_special(t, -1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t jlen = nul ? (size_t)(nul - data) : size;
    /* exactly-sized copies, so ASan sees an overread of either part */
    char *json = malloc(jlen ? jlen : 1);
    size_t tlen = nul ? size - jlen - 1 : 0;
    char *text = malloc(tlen ? tlen : 1);
    if (json == NULL || text == NULL) {
        free(json);
        free(text);
        return 0;
    }
    memcpy(json, data, jlen);
    if (tlen)
        memcpy(text, nul + 1, tlen);

    qfmt_tokenizer *t = (qfmt_tokenizer *)(void *)&fuzz_sink;
    qfmt_error err = {0};
    char msg[1024];
    qfmt_error je; /* the one JSON policy: what it refuses, the loader refuses, saying where */
    bool json_ok = qfmt_json_check(json, jlen, 0, "tokenizer.json", &je) == QFMT_OK;
    if (qfmt_tokenizer_load(&t, json, jlen, &err) != QFMT_OK) {
        CHECK(t == NULL);
        CHECK(err.code != QFMT_OK && qfmt_error_format(&err, msg, sizeof msg)[0] != '\0' &&
              memchr(msg, 0x1b, strlen(msg)) == NULL);
        CHECK(json_ok || jlen == 0 || je.code != QFMT_E_CORRUPT || je.offset == QFMT_NO_OFFSET ||
              strstr(msg, "at byte") != NULL);
    } else {
        CHECK(json_ok);
        CHECK(t != NULL);
        walk_vocab(t);
        bool rt = round_trip_expected(t, json, jlen);
        encode_decode(t, FIXED_TEXT, sizeof FIXED_TEXT - 1, rt);
        encode_decode(t, text, tlen, rt);
        encode_decode(t, "", 0, rt);
        qfmt_tokenizer_free(t);
    }
    free(json);
    free(text);
    return 0;
}
