/* test_tk_decoder.c - the tokenizer's decoders (decoder.c) and post-processors
 * (post_processor.c) against HF `tokenizers` behaviour, built from JSON. */
#include "test_helpers.h"

#include <pthread.h>

#include "tokenizer/tk_internal.h"

/* ---- helpers ------------------------------------------------------------------------------ */
static tk_decoder *dec_load(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j, "bad test JSON: %s", json);
    tk_decoder *d = NULL;
    qfmt_error err = {0};
    int rc = qfmt__tk_decoder_load(j, &d, &err);
    cJSON_Delete(j);
    cr_assert_eq(rc, 0, "load failed: %s", err.message);
    return d;
}

/* Decodes the n tokens with d; returns the text (malloc'd, NUL-terminated), its length in *len. */
static char *dec_run(const tk_decoder *d, const char *const *toks, size_t n, size_t *len)
{
    tk_list l = {0};
    for (size_t i = 0; i < n; i++) cr_assert_eq(qfmt__tk_list_push(&l, toks[i], strlen(toks[i])), 0);
    tk_str out = {0};
    qfmt_error err = {0};
    cr_assert_eq(qfmt__tk_decode(d, &l, &out, &err), 0, "decode failed: %s", err.message);
    qfmt__tk_list_free(&l);
    char *s = malloc(out.len + 1);
    cr_assert_not_null(s);
    if (out.len) memcpy(s, out.p, out.len);
    s[out.len] = '\0';
    *len = out.len;
    qfmt__tk_str_free(&out);
    return s;
}

#define EXPECT_DECODE(json, expect, ...)                                                                      \
    do {                                                                                                      \
        tk_decoder *d_ = dec_load(json);                                                                      \
        const char *const toks_[] = {__VA_ARGS__};                                                            \
        size_t len_;                                                                                          \
        char *got_ = dec_run(d_, toks_, sizeof toks_ / sizeof toks_[0], &len_);                               \
        cr_expect_eq(len_, strlen(expect), "length %zu, want %zu", len_, strlen(expect));                     \
        cr_expect_str_eq(got_, (expect));                                                                     \
        free(got_);                                                                                           \
        qfmt__tk_decoder_free(d_);                                                                                  \
    } while (0)

static qfmt_error dec_refuse(const char *json, qfmt_status code)
{
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j);
    tk_decoder *d = (tk_decoder *)1;
    qfmt_error err = {0};
    cr_assert_eq(qfmt__tk_decoder_load(j, &d, &err), -1, "accepted: %s", json);
    cr_expect_null(d);
    cr_expect_eq(err.code, code, "code %d (%s)", (int)err.code, err.message);
    cJSON_Delete(j);
    return err;
}

static const char *LLAMA2 = "{\"type\":\"Sequence\",\"decoders\":["
                            "{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},\"content\":\" \"},"
                            "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
                            "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}";

/* ---- ByteLevel ------------------------------------------------------------------------------ */
Test(tk_decoder, byte_level_basic)
{
    EXPECT_DECODE("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}",
                  "Hello world", "Hello", "\xC4\xA0world");
}

Test(tk_decoder, byte_level_lone_byte_is_replacement)
{
    /* 0xE2 is bytes_to_unicode U+00E2 ("â") */
    EXPECT_DECODE("{\"type\":\"ByteLevel\"}", "\xEF\xBF\xBD", "\xC3\xA2");
    /* a split euro sign across tokens joins back */
    EXPECT_DECODE("{\"type\":\"ByteLevel\"}", "\xE2\x82\xAC", "\xC3\xA2", "\xC4\xA4", "\xC2\xAC");
}

Test(tk_decoder, byte_level_maximal_subparts)
{
    /* E2 82 then 'A': one U+FFFD for the truncated sequence (maximal subpart), then A */
    EXPECT_DECODE("{\"type\":\"ByteLevel\"}", "\xEF\xBF\xBD" "A", "\xC3\xA2\xC4\xA4", "A");
    /* ED A0 (a surrogate's start): ED alone is the maximal subpart, A0 another */
    EXPECT_DECODE("{\"type\":\"ByteLevel\"}", "\xEF\xBF\xBD\xEF\xBF\xBD", "\xC3\xAD\xC5\x82");
    /* C0 (never valid), F0 9F 98 (truncated 4-byte): two replacements */
    EXPECT_DECODE("{\"type\":\"ByteLevel\"}", "\xEF\xBF\xBD\xEF\xBF\xBD", "\xC3\x80\xC3\xB0\xC5\x81\xC4\xBA");
}

Test(tk_decoder, byte_level_unmapped_char_keeps_token_bytes)
{
    /* "€" is not a bytes_to_unicode image: the token's own UTF-8 is kept */
    EXPECT_DECODE("{\"type\":\"ByteLevel\"}", "a\xE2\x82\xAC b", "a\xE2\x82\xAC", "\xC4\xA0" "b");
}

/* ---- Llama 2 chain ------------------------------------------------------------------------- */
Test(tk_decoder, llama2_chain)
{
    /* Replace: " Hello", " world", bytes; ByteFallback: "€"; Fuse: " Hello world€"; Strip: one
     * leading space */
    EXPECT_DECODE(LLAMA2, "Hello world\xE2\x82\xAC", "\xE2\x96\x81Hello", "\xE2\x96\x81world", "<0xE2>", "<0x82>",
                  "<0xAC>");
}

Test(tk_decoder, llama2_chain_invalid_bytes)
{
    /* <0xE2> <0x82> then a non-byte token: the run is invalid, one U+FFFD per byte token */
    EXPECT_DECODE(LLAMA2, "a\xEF\xBF\xBD\xEF\xBF\xBD b", "\xE2\x96\x81" "a", "<0xE2>", "<0x82>", "\xE2\x96\x81" "b");
}

/* ---- ByteFallback ------------------------------------------------------------------------- */
Test(tk_decoder, byte_fallback)
{
    const char *bf = "{\"type\":\"ByteFallback\"}";
    EXPECT_DECODE(bf, "Hi\xE2\x82\xAC!", "Hi", "<0xE2>", "<0x82>", "<0xAC>", "!");
    EXPECT_DECODE(bf, "\xEF\xBF\xBD\xEF\xBF\xBD", "<0xE2>", "<0x82>");
    EXPECT_DECODE(bf, "\xEF\xBF\xBD", "<0xFF>");
    EXPECT_DECODE(bf, "A\n", "<0x41>", "<0x0a>");
    /* not byte tokens: kept as they are */
    EXPECT_DECODE(bf, "<0xG1><0x41<0x411>", "<0xG1>", "<0x41", "<0x411>");
    /* Rust's from_str_radix takes a leading '+' */
    EXPECT_DECODE(bf, "\n", "<0x+A>");
}

Test(tk_decoder, byte_fallback_per_token_replacements)
{
    /* HF pushes one U+FFFD token per byte token; a following Strip sees them separately */
    EXPECT_DECODE("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"},"
                  "{\"type\":\"Strip\",\"content\":\"\xEF\xBF\xBD\",\"start\":1,\"stop\":0}]}",
                  "", "<0xE2>", "<0x82>");
}

/* ---- WordPiece ------------------------------------------------------------------------------ */
Test(tk_decoder, wordpiece_cleanup)
{
    EXPECT_DECODE("{\"type\":\"WordPiece\",\"prefix\":\"##\",\"cleanup\":true}", "helloworld, there", "hello",
                  "##world", ",", "there");
    EXPECT_DECODE("{\"type\":\"WordPiece\"}", "I don't know.", "I", "do", "n't", "know", ".");
    EXPECT_DECODE("{\"type\":\"WordPiece\"}", "it's ok?", "it", "'s", "ok", "?");
    EXPECT_DECODE("{\"type\":\"WordPiece\",\"cleanup\":false}", "helloworld , there", "hello", "##world", ",",
                  "there");
    /* the first token keeps its prefix */
    EXPECT_DECODE("{\"type\":\"WordPiece\"}", "##a b", "##a", "b");
}

/* ---- Strip, Metaspace, Fuse, Replace, BPE, CTC ---------------------------------------------- */
Test(tk_decoder, strip)
{
    const char *s = "{\"type\":\"Strip\",\"content\":\"H\",\"start\":1,\"stop\":0}";
    EXPECT_DECODE(s, "ey friend!HH", "Hey", " friend!", "HHH");
    EXPECT_DECODE("{\"type\":\"Strip\",\"content\":\"x\",\"start\":2,\"stop\":2}", "xaxaa", "xxxaxxx", "xaa", "x");
}

Test(tk_decoder, metaspace_first_token)
{
    const char *m = "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"always\",\"split\":true}";
    EXPECT_DECODE(m, "Hey friend!", "\xE2\x96\x81Hey", "\xE2\x96\x81" "friend!");
    /* every replacement of the first token goes, as in HF */
    EXPECT_DECODE(m, "ab c", "\xE2\x96\x81" "a\xE2\x96\x81" "b", "\xE2\x96\x81" "c");
    const char *never = "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"never\"}";
    EXPECT_DECODE(never, " Hey friend!", "\xE2\x96\x81Hey", "\xE2\x96\x81" "friend!");
    const char *legacy = "{\"type\":\"Metaspace\",\"replacement\":\"_\",\"add_prefix_space\":false}";
    EXPECT_DECODE(legacy, " a b", "_a", "_b");
    const char *first = "{\"type\":\"Metaspace\",\"replacement\":\"_\",\"prepend_scheme\":\"first\"}";
    EXPECT_DECODE(first, "a b", "_a", "_b");
}

Test(tk_decoder, replace_regex_and_string)
{
    EXPECT_DECODE("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"a+\"},\"content\":\"-\"}", "b-c-d", "baac", "ad");
    EXPECT_DECODE("{\"type\":\"Replace\",\"pattern\":{\"String\":\"ab\"},\"content\":\"X\"}", "XaXb", "abaab", "b");
    /* an empty match is taken at each character boundary, not right after a match */
    EXPECT_DECODE("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"x*\"},\"content\":\"-\"}", "-a-b-", "axb");
}

Test(tk_decoder, bpe_ctc_fuse)
{
    EXPECT_DECODE("{\"type\":\"BPEDecoder\"}", "hello world", "hel", "lo</w>", "world</w>");
    EXPECT_DECODE("{\"type\":\"CTC\"}", "hello world", "<pad>", "h", "e", "l", "l", "<pad>", "l", "o", "o", "|", "w",
                  "o", "r", "l", "d", "<pad>");
    EXPECT_DECODE("{\"type\":\"Fuse\"}", "abc", "a", "", "bc");
}

Test(tk_decoder, sequence_nested_and_empty)
{
    EXPECT_DECODE("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Fuse\"}]},"
                  "{\"type\":\"Strip\",\"content\":\"a\",\"start\":1,\"stop\":1}]}",
                  "bcb", "ab", "cba");
    EXPECT_DECODE("{\"type\":\"Sequence\",\"decoders\":[]}", "ab", "a", "b");
    tk_decoder *d = dec_load(LLAMA2);
    size_t len;
    char *s = dec_run(d, NULL, 0, &len);
    cr_expect_eq(len, 0);
    free(s);
    qfmt__tk_decoder_free(d);
}

Test(tk_decoder, refusals)
{
    qfmt_error e = dec_refuse("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Fuse\"},{\"type\":\"Fuse\"},"
                              "{\"type\":\"X\"}]}",
                              QFMT_E_UNSUPPORTED);
    cr_expect(strstr(e.message, "decoder.decoders[2]: type 'X' is not supported") != NULL, "%s", e.message);
    dec_refuse("{\"type\":\"Strip\",\"content\":\"ab\",\"start\":1,\"stop\":0}", QFMT_E_CORRUPT);
    dec_refuse("{\"type\":\"Strip\",\"content\":\" \",\"start\":-1,\"stop\":0}", QFMT_E_CORRUPT);
    dec_refuse("{\"type\":\"WordPiece\",\"prefix\":3}", QFMT_E_CORRUPT);
    dec_refuse("{\"type\":\"Replace\",\"pattern\":\"x\",\"content\":\"y\"}", QFMT_E_CORRUPT);
    dec_refuse("{\"type\":\"Metaspace\"}", QFMT_E_CORRUPT);
    dec_refuse("{\"type\":\"Metaspace\",\"replacement\":\"_\",\"prepend_scheme\":\"sometimes\"}", QFMT_E_CORRUPT);
    dec_refuse("{\"type\":\"Metaspace\",\"replacement\":\"_\",\"add_prefix_space\":false,\"prepend_scheme\":\"always\"}",
               QFMT_E_CORRUPT);
    dec_refuse("{\"type\":\"Sequence\",\"decoders\":{}}", QFMT_E_CORRUPT);
    dec_refuse("{\"decoders\":[]}", QFMT_E_CORRUPT);
    dec_refuse("[]", QFMT_E_CORRUPT);
}

Test(tk_decoder, depth_bounded)
{
    char json[4096] = "";
    int depth = TK_MAX_DEPTH + 2;
    for (int i = 0; i < depth; i++) strcat(json, "{\"type\":\"Sequence\",\"decoders\":[");
    strcat(json, "{\"type\":\"Fuse\"}");
    for (int i = 0; i < depth; i++) strcat(json, "]}");
    dec_refuse(json, QFMT_E_UNSUPPORTED);
}

/* ---- Post-processors ----------------------------------------------------------------------- */
static tk_post_processor *pp_load(const char *json, uint32_t max_id)
{
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j, "bad test JSON: %s", json);
    tk_post_processor *pp = NULL;
    qfmt_error err = {0};
    int rc = qfmt__tk_post_processor_load(j, max_id, &pp, &err);
    cJSON_Delete(j);
    cr_assert_eq(rc, 0, "load failed: %s", err.message);
    return pp;
}

static void pp_expect(const char *json, uint32_t max_id, const int32_t *in, size_t n, const int32_t *want,
                      size_t wn)
{
    tk_post_processor *pp = pp_load(json, max_id);
    tk_ids out = {0};
    qfmt_error err = {0};
    cr_assert_eq(qfmt__tk_post_process(pp, in, n, &out, &err), 0, "%s", err.message);
    cr_expect_eq(out.n, wn, "got %zu ids, want %zu", out.n, wn);
    for (size_t i = 0; i < wn && i < out.n; i++) cr_expect_eq(out.v[i], want[i], "id %zu: %d != %d", i, out.v[i], want[i]);
    qfmt__tk_ids_free(&out);
    qfmt__tk_post_processor_free(pp);
}

static void pp_refuse(const char *json, uint32_t max_id, qfmt_status code)
{
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j);
    tk_post_processor *pp = (tk_post_processor *)1;
    qfmt_error err = {0};
    cr_assert_eq(qfmt__tk_post_processor_load(j, max_id, &pp, &err), -1, "accepted: %s", json);
    cr_expect_null(pp);
    cr_expect_eq(err.code, code, "code %d (%s)", (int)err.code, err.message);
    cJSON_Delete(j);
}

static const char *LLAMA3_PP =
    "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,"
    "\"use_regex\":true},{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<|begin_of_text|>\","
    "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[{\"SpecialToken\":{\"id\":\"<|begin_of_"
    "text|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"<|begin_of_text|"
    ">\",\"type_id\":1}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],\"special_tokens\":{\"<|begin_of_text|>\":{\"id\":"
    "\"<|begin_of_text|>\",\"ids\":[128000],\"tokens\":[\"<|begin_of_text|>\"]}}}]}";

static const char *BERT_TP =
    "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"[CLS]\",\"type_id\":0}},{\"Sequence\":{"
    "\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"[SEP]\",\"type_id\":0}}],\"pair\":null,\"special_tokens\":"
    "{\"[CLS]\":{\"id\":\"[CLS]\",\"ids\":[101],\"tokens\":[\"[CLS]\"]},\"[SEP]\":{\"id\":\"[SEP]\",\"ids\":[102],"
    "\"tokens\":[\"[SEP]\"]}}}";

Test(tk_post_processor, template_llama3)
{
    const int32_t in[] = {9906, 1917};
    const int32_t want[] = {128000, 9906, 1917};
    pp_expect(LLAMA3_PP, 128256, in, 2, want, 3);
    const int32_t want0[] = {128000};
    pp_expect(LLAMA3_PP, 128256, NULL, 0, want0, 1);
}

Test(tk_post_processor, template_bert_and_multi_id)
{
    const int32_t in[] = {7592, 2088};
    const int32_t want[] = {101, 7592, 2088, 102};
    pp_expect(BERT_TP, 30522, in, 2, want, 4);
    /* a special token with several ids emits them all */
    const char *multi = "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
                        "{\"SpecialToken\":{\"id\":\"E\",\"type_id\":0}}],\"special_tokens\":{\"E\":{\"id\":\"E\","
                        "\"ids\":[5,6,7],\"tokens\":[\"a\",\"b\",\"c\"]}}}";
    const int32_t want2[] = {1, 5, 6, 7};
    const int32_t in2[] = {1};
    pp_expect(multi, 10, in2, 1, want2, 4);
}

Test(tk_post_processor, bert_roberta_bytelevel)
{
    const int32_t in[] = {7592};
    const int32_t want[] = {101, 7592, 102};
    pp_expect("{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",102],\"cls\":[\"[CLS]\",101]}", 30522, in, 1, want, 3);
    const int32_t want_r[] = {0, 7592, 2};
    pp_expect("{\"type\":\"RobertaProcessing\",\"sep\":[\"</s>\",2],\"cls\":[\"<s>\",0],\"trim_offsets\":true,"
              "\"add_prefix_space\":false}",
              50265, in, 1, want_r, 3);
    pp_expect("{\"type\":\"ByteLevel\",\"trim_offsets\":true}", 50265, in, 1, in, 1);
}

Test(tk_post_processor, refusals)
{
    pp_refuse(BERT_TP, 102, QFMT_E_CORRUPT);   /* id 102 out of 0..101 */
    pp_refuse(LLAMA3_PP, 128000, QFMT_E_CORRUPT);
    pp_refuse("{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",102],\"cls\":[\"[CLS]\",-1]}", 30522, QFMT_E_CORRUPT);
    pp_refuse("{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",1.5],\"cls\":[\"[CLS]\",1]}", 30522, QFMT_E_CORRUPT);
    pp_refuse("{\"type\":\"BertProcessing\",\"sep\":\"[SEP]\",\"cls\":[\"[CLS]\",1]}", 30522, QFMT_E_CORRUPT);
    /* a SpecialToken piece naming no entry */
    pp_refuse("{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}}],"
              "\"special_tokens\":{}}",
              10, QFMT_E_CORRUPT);
    /* ids and tokens of different lengths */
    pp_refuse("{\"type\":\"TemplateProcessing\",\"single\":[],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\","
              "\"ids\":[1,2],\"tokens\":[\"<s>\"]}}}",
              10, QFMT_E_CORRUPT);
    /* $B in the single template */
    pp_refuse("{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"B\",\"type_id\":0}}],"
              "\"special_tokens\":{}}",
              10, QFMT_E_CORRUPT);
    pp_refuse("{\"type\":\"Sequence\",\"processors\":[{\"type\":\"Nope\"}]}", 10, QFMT_E_UNSUPPORTED);
    pp_refuse("{\"type\":\"Sequence\"}", 10, QFMT_E_CORRUPT);
}

/* ---- Robustness ---------------------------------------------------------------------------- */
/* Strict UTF-8 validity, written independently of decoder.c. */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return false;
        uint32_t v = len == 1 ? c : c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            v = (v << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (v < min[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

Test(tk_decoder, random_bytes_give_valid_utf8)
{
    const char *chains[] = {
        "{\"type\":\"ByteLevel\"}",
        "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},"
        "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
        "\"start\":1,\"stop\":0}]}",
        "{\"type\":\"WordPiece\"}",
        "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\"}",
        "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\"_\"}",
        "{\"type\":\"CTC\"}",
    };
    uint64_t st = 42;
    for (size_t c = 0; c < sizeof chains / sizeof chains[0]; c++) {
        tk_decoder *d = dec_load(chains[c]);
        for (int round = 0; round < 200; round++) {
            tk_list l = {0};
            size_t ntok = th_rand(&st) % 8;
            for (size_t t = 0; t < ntok; t++) {
                unsigned char b[12];
                size_t n = th_rand(&st) % sizeof b;
                for (size_t i = 0; i < n; i++) b[i] = (unsigned char)th_rand(&st);
                if (n == 6 && (th_rand(&st) & 1)) memcpy(b, "<0xE2>", 6);
                cr_assert_eq(qfmt__tk_list_push(&l, b, n), 0);
            }
            tk_str out = {0};
            qfmt_error err = {0};
            cr_assert_eq(qfmt__tk_decode(d, &l, &out, &err), 0, "%s", err.message);
            cr_expect(valid_utf8((const unsigned char *)out.p, out.len), "chain %zu round %d", c, round);
            qfmt__tk_str_free(&out);
            qfmt__tk_list_free(&l);
        }
        qfmt__tk_decoder_free(d);
    }
}

Test(tk_decoder, regex_refusal_is_unsupported)
{
    dec_refuse("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"[a\"},\"content\":\"y\"}", QFMT_E_UNSUPPORTED);
}

/* One loaded decoder shared by threads: decoding is const on it. */
static void *decode_worker(void *arg)
{
    const tk_decoder *d = arg;
    for (int i = 0; i < 200; i++) {
        tk_list l = {0};
        const char *toks[] = {"\xE2\x96\x81Hello", "\xE2\x96\x81world", "<0xE2>", "<0x82>", "<0xAC>"};
        for (size_t t = 0; t < 5; t++)
            if (qfmt__tk_list_push(&l, toks[t], strlen(toks[t])) < 0) return (void *)1;
        tk_str out = {0};
        qfmt_error err = {0};
        int bad = qfmt__tk_decode(d, &l, &out, &err) != 0 || out.len != 14 || memcmp(out.p, "Hello world\xE2\x82\xAC", 14) != 0;
        qfmt__tk_str_free(&out);
        qfmt__tk_list_free(&l);
        if (bad) return (void *)1;
    }
    return NULL;
}

Test(tk_decoder, shared_across_threads)
{
    tk_decoder *d = dec_load(LLAMA2);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) cr_assert_eq(pthread_create(&th[i], NULL, decode_worker, d), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        cr_expect_null(r, "thread %d", i);
    }
    qfmt__tk_decoder_free(d);
}

Test(tk_post_processor, sequence_applies_in_order)
{
    /* two templates in a row wrap twice, inner first */
    const char *json = "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"BertProcessing\",\"sep\":[\"b\",2],"
                       "\"cls\":[\"a\",1]},{\"type\":\"RobertaProcessing\",\"sep\":[\"d\",4],\"cls\":[\"c\",3]}]}";
    const int32_t in[] = {9};
    const int32_t want[] = {3, 1, 9, 2, 4};
    pp_expect(json, 10, in, 1, want, 5);
}
