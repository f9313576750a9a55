/*
 * test_json.c - the one JSON policy (qfmt_json_check, libqfmt/src/json.c) and its use at the
 * real entry points: safetensors headers (qfmt_st_open*), config.json (qfmt_family_config_to_meta)
 * and tokenizer.json (qfmt_tokenizer_load). The CLI's reading of a model directory (config.json,
 * tokenizer.json, generation_config.json, model.safetensors.index.json) is checked end to end in
 * tests/cli_convert.sh ("# convert: the JSON policy").
 *
 * Every refused class has a case with the byte offset it must report; the accepted edge cases
 * (surrogate pairs, an escaped backslash before "u0000", deep-but-allowed nesting, objects of
 * many keys) must pass.
 */
#include "test_helpers.h"

#define QFMT_STATIC_LINKING_ONLY /* qfmt_utf8_valid */
#include "qfmt.h"
#include "qfmt_model.h"

#define FIX QFMT_TEST_DATA_DIR "/fixtures/"

/* A literal with its exact length (embedded NULs included). */
#define L(s) s, sizeof s - 1

typedef struct {
    const char *what, *text;
    size_t len;
    uint64_t off;     /* expected err.offset (base 0) */
    const char *says; /* a piece of the message */
} refused;

static const refused REFUSED[] = {
    /* the grammar */
    {"empty text", L(""), 0, "no JSON value"},
    {"only whitespace", L(" \t\r\n"), 4, "no JSON value"},
    {"trailing comma in an object", L("{\"a\":1,}"), 7, "a string key"},
    {"trailing comma in an array", L("[1,]"), 3, "a JSON value"},
    {"missing comma", L("{\"a\":1 \"b\":2}"), 7, "',' or '}'"},
    {"missing colon", L("{\"a\" 1}"), 5, "':'"},
    {"unclosed array", L("[1"), 2, "ends inside an array"},
    {"unclosed object", L("{\"a\":1"), 6, "ends inside an object"},
    {"unclosed string", L("\"abc"), 0, "not closed"},
    {"escape cut off", L("\"a\\"), 2, "cut off"},
    {"bytes after the value", L("{\"a\":1} x"), 8, "bytes after"},
    {"two values", L("{} {}"), 3, "bytes after"},
    {"single quotes", L("{'a':1}"), 1, "a string key"},
    {"single-quoted value", L("['a']"), 1, "single-quoted"},
    {"line comment", L("// c\n{}"), 0, "comments"},
    {"block comment inside", L("[1,/* x */2]"), 3, "comments"},
    {"comment after the value", L("{} // x"), 3, "comments"},
    {"byte order mark", L("\xef\xbb\xbf{}"), 0, "byte order mark"},
    {"form feed is not whitespace", L("\f{}"), 0, "0x0c"},
    {"vertical tab is not whitespace", L("[1,\v2]"), 3, "0x0b"},
    {"no-break space is not whitespace", L("[1,\xc2\xa0 2]"), 3, "0xc2"},
    {"bare word", L("{\"a\":nope}"), 5, "a JSON value"},
    {"True capitalised", L("True"), 0, "a JSON value"},
    {"tru", L("[tru]"), 1, "a JSON value"},
    {"NaN", L("[NaN]"), 1, "a JSON value"},
    {"Infinity", L("[-Infinity]"), 1, "digits"},
    /* numbers */
    {"leading zero", L("[01]"), 1, "leading zero"},
    {"negative leading zero", L("[-01]"), 1, "leading zero"},
    {"plus sign", L("[+1]"), 1, "a JSON value"},
    {"bare minus", L("[-]"), 1, "digits"},
    {"leading dot", L("[.5]"), 1, "a JSON value"},
    {"trailing dot", L("[1.]"), 1, "after '.'"},
    {"dot before exponent", L("[1.e5]"), 1, "after '.'"},
    {"empty exponent", L("[1e]"), 1, "exponent"},
    {"signed empty exponent", L("[1e+]"), 1, "exponent"},
    {"hex", L("[0x10]"), 2, "','"},
    /* NUL, raw and escaped */
    {"raw NUL in a string value", L("{\"type\":\"BPE\0junk\"}"), 12, "NUL byte in a string"},
    {"raw NUL in a key", L("{\"n_h\0ead\":1}"), 5, "NUL byte in a string"},
    {"escaped NUL in a value", L("[\"a\\u0000b\"]"), 3, "\\u0000"},
    {"escaped NUL in a key", L("{\"a\\u0000\":1}"), 3, "\\u0000"},
    {"NUL between tokens", L("{\"a\":\0 1}"), 5, "NUL byte outside a string"},
    {"NUL before a comma", L("[1\0,2]"), 2, "NUL byte outside a string"},
    {"NUL before a colon", L("{\"a\"\0:1}"), 4, "NUL byte outside a string"},
    {"NUL after the value", L("{\"a\":1}\0"), 7, "NUL byte after"},
    {"NUL before the value", L("\0{}"), 0, "NUL byte outside a string"},
    /* strings */
    {"raw tab in a string", L("[\"a\tb\"]"), 3, "control character 0x09"},
    {"raw newline in a string", L("[\"a\nb\"]"), 3, "control character 0x0a"},
    {"raw 0x1f in a string", L("[\"\x1f\"]"), 2, "control character 0x1f"},
    {"invalid escape \\x", L("[\"\\x41\"]"), 2, "invalid escape"},
    {"invalid escape \\'", L("[\"\\'\"]"), 2, "invalid escape"},
    {"invalid escape \\U", L("[\"\\U0041\"]"), 2, "invalid escape"},
    {"\\u with 3 hex digits", L("[\"\\u12g4\"]"), 2, "4 hex digits"},
    {"\\u cut off", L("[\"\\u12"), 2, "4 hex digits"},
    {"lone high surrogate", L("[\"\\ud800\"]"), 2, "high surrogate"},
    {"high surrogate then text", L("[\"\\ud800x\"]"), 2, "high surrogate"},
    {"high surrogate then a BMP escape", L("[\"\\ud800\\u0041\"]"), 2, "high surrogate"},
    {"two high surrogates", L("[\"\\ud800\\ud800\"]"), 2, "high surrogate"},
    {"lone low surrogate", L("[\"\\udc00\"]"), 2, "low surrogate"},
    {"pair in the wrong order", L("[\"\\ude00\\ud83d\"]"), 2, "low surrogate"},
    {"high surrogate at the very end", L("[\"\\ud83d"), 2, "high surrogate"},
    {"UTF-8: lone continuation byte", L("[\"\x80\"]"), 2, "UTF-8"},
    {"UTF-8: 0xff", L("[\"\xff\"]"), 2, "UTF-8"},
    {"UTF-8: overlong NUL", L("[\"\xc0\x80\"]"), 2, "overlong"},
    {"UTF-8: overlong slash", L("[\"\xe0\x80\xaf\"]"), 2, "overlong"},
    {"UTF-8: encoded surrogate", L("[\"\xed\xa0\x80\"]"), 2, "not a character"},
    {"UTF-8: above U+10FFFF", L("[\"\xf4\x90\x80\x80\"]"), 2, "not a character"},
    {"UTF-8: cut off by the quote", L("[\"\xe2\x82\"]"), 2, "UTF-8"},
    {"UTF-8: cut off by the end", L("[\"\xe2\x82"), 2, "UTF-8"},
    {"UTF-8 outside a string", L("[1,\xc3\xa9]"), 3, "a JSON value"},
    /* duplicate keys */
    {"duplicate n_head", L("{\"n_head\":12,\"n_head\":16}"), 13, "duplicate key \"n_head\""},
    {"duplicate once unescaped", L("{\"a\":1,\"\\u0061\":2}"), 7, "duplicate key \"a\""},
    {"duplicate: escape vs raw UTF-8", L("{\"\\u00e9\":1,\"\xc3\xa9\":2}"), 12, "duplicate key \"\xc3\xa9\""},
    {"duplicate: surrogate pair vs raw UTF-8", L("{\"\xf0\x9f\x98\x80\":1,\"\\ud83d\\ude00\":2}"), 10,
     "duplicate key \"\xf0\x9f\x98\x80\""},
    {"duplicate: escaped slash", L("{\"a/b\":1,\"a\\/b\":2}"), 9, "duplicate key \"a/b\""},
    {"duplicate empty key", L("{\"\":1,\"\":2}"), 6, "duplicate key \"\""},
    {"duplicate in a nested object", L("{\"x\":{\"k\":1,\"j\":2,\"k\":3}}"), 18, "duplicate key \"k\""},
    {"duplicate in the second of two objects", L("[{\"k\":1},{\"k\":1,\"k\":2}]"), 16,
     "duplicate key \"k\""},
    {"the first repeated key is named", L("{\"b\":1,\"a\":1,\"a\":2,\"b\":2}"), 13, "duplicate key \"a\""},
    {"duplicate key: control characters escaped", L("{\"a\\nb\\\"\":1,\"a\\u000ab\\\"\":2}"), 12,
     "duplicate key \"a\\u000ab\\\"\""},
};

static void expect_refused(const refused *k)
{
    qfmt_error e;
    memset(&e, 0x5a, sizeof e);
    qfmt_status s = qfmt_json_check(k->text, k->len, 0, "x.json", &e);
    cr_expect_eq(s, QFMT_E_CORRUPT, "%s: status %d", k->what, s);
    cr_expect_eq(e.code, QFMT_E_CORRUPT, "%s", k->what);
    cr_expect_eq(e.offset, k->off, "%s: offset %" PRIu64 ", want %" PRIu64 " (%s)", k->what, e.offset,
                 k->off, e.message);
    cr_expect_str_eq(e.path, "x.json", "%s", k->what);
    cr_expect_str_eq(e.tensor, "", "%s", k->what);
    cr_expect(strncmp(e.message, "JSON: ", 6) == 0, "%s: '%s'", k->what, e.message);
    cr_expect(strstr(e.message, k->says) != NULL, "%s: '%s' lacks '%s'", k->what, e.message, k->says);
    cr_expect(qfmt_utf8_valid((const uint8_t *)e.message, strlen(e.message), false), "%s", k->what);
    /* the same text elsewhere in a file: every offset moves with it */
    cr_expect_eq(qfmt_json_check(k->text, k->len, 1000, NULL, &e), QFMT_E_CORRUPT, "%s", k->what);
    cr_expect_eq(e.offset, 1000 + k->off, "%s", k->what);
    cr_expect_str_eq(e.path, "", "%s", k->what);
    cr_expect_eq(qfmt_json_check(k->text, k->len, 0, "x.json", NULL), QFMT_E_CORRUPT, "%s", k->what);
}

Test(json, refuses_each_class_at_its_byte) {
    for (size_t i = 0; i < sizeof REFUSED / sizeof REFUSED[0]; i++) expect_refused(&REFUSED[i]);
}

Test(json, duplicate_key_message_gives_both_offsets) {
    qfmt_error e;
    const char t[] = "{\"n_head\": 12, \"d\": 1, \"n_head\": 16}";
    cr_assert_eq(qfmt_json_check(t, sizeof t - 1, 0, "/m/config.json", &e), QFMT_E_CORRUPT);
    cr_expect_eq(e.offset, 23);
    cr_expect(strstr(e.message, "at bytes 1 and 23") != NULL, "%s", e.message);
    char line[1024];
    qfmt_error_format(&e, line, sizeof line);
    cr_expect(strstr(line, "/m/config.json: at byte 23: JSON: duplicate key \"n_head\"") == line, "%s", line);
    /* in a safetensors header (text at file offset 8): both offsets are the file's */
    cr_assert_eq(qfmt_json_check(t, sizeof t - 1, 8, "m.safetensors", &e), QFMT_E_CORRUPT);
    cr_expect_eq(e.offset, 31);
    cr_expect(strstr(e.message, "at bytes 9 and 31") != NULL, "%s", e.message);
}

Test(json, long_duplicate_key_is_cut_in_the_message) {
    size_t n = 5000;
    char *key = malloc(n + 1);
    cr_assert_not_null(key);
    for (size_t i = 0; i < n; i++) key[i] = i % 3 == 2 ? '\n' : (char)('a' + i % 26);
    key[n] = '\0';
    /* the key once raw (its newlines escaped as \n) and once with \u escapes */
    size_t cap = 16 * n + 64, len = 0;
    char *t = malloc(cap);
    cr_assert_not_null(t);
    len += (size_t)snprintf(t + len, cap - len, "{\"");
    for (size_t i = 0; i < n; i++) len += (size_t)snprintf(t + len, cap - len, key[i] == '\n' ? "\\n" : "%c", key[i]);
    len += (size_t)snprintf(t + len, cap - len, "\":1,\"");
    size_t second = len - 1;
    for (size_t i = 0; i < n; i++) len += (size_t)snprintf(t + len, cap - len, "\\u%04x", (unsigned char)key[i]);
    len += (size_t)snprintf(t + len, cap - len, "\":2}");
    qfmt_error e;
    cr_assert_eq(qfmt_json_check(t, len, 0, NULL, &e), QFMT_E_CORRUPT);
    cr_expect_eq(e.offset, second);
    cr_expect(strstr(e.message, "duplicate key \"ab\\u000ade") != NULL, "%s", e.message);
    cr_expect(strstr(e.message, "...\"") != NULL, "%s", e.message);
    char want[64];
    snprintf(want, sizeof want, "at bytes 1 and %zu", second);
    cr_expect(strstr(e.message, want) != NULL, "%s", e.message);
    free(t);
    free(key);
}

static void expect_accepted(const char *what, const char *text, size_t len)
{
    qfmt_error e;
    qfmt_status s = qfmt_json_check(text, len, 0, "x.json", &e);
    cr_expect_eq(s, QFMT_OK, "%s: %s (at %" PRIu64 ")", what, e.message, e.offset);
    if (s == QFMT_OK) {
        cr_expect_eq(e.code, QFMT_OK, "%s", what);
        cr_expect_eq(e.offset, QFMT_NO_OFFSET, "%s", what);
    }
}

Test(json, accepts_rfc8259_edge_cases) {
    static const struct {
        const char *what, *text;
        size_t len;
    } OK[] = {
        {"empty object", L("{}")},
        {"empty array", L("[]")},
        {"empty containers with whitespace", L("{ \t\r\n}")},
        {"all four whitespace bytes around", L(" \t\r\n{\"a\" : [ 1 , 2 ] }\r\n\t ")},
        {"top-level number", L("0")},
        {"negative zero", L("-0")},
        {"number forms", L("[-0.0e+00,1E5,123.456e-7,0.5,10,-1e-0,9007199254740993,1e999]")},
        {"literals", L("[true,false,null]")},
        {"empty string", L("\"\"")},
        {"every short escape", L("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]")},
        {"escaped control characters", L("[\"\\u0001\\u001f\\u007f\"]")},
        {"DEL raw", L("[\"\x7f\"]")},
        {"surrogate pair", L("[\"\\ud83d\\ude00\"]")},
        {"surrogate pair upper case", L("[\"\\uD83D\\uDE00\"]")},
        {"highest code point escaped", L("[\"\\udbff\\udfff\"]")},
        {"BMP escapes", L("[\"\\u00e9\\u4e2d\\uffff\\ufeff\"]")},
        {"raw UTF-8 of 2, 3 and 4 bytes", L("[\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"]")},
        {"escaped backslash before u0000", L("[\"\\\\u0000\"]")},
        {"equal keys in different objects", L("[{\"k\":1},{\"k\":2}]")},
        {"equal keys at different levels", L("{\"k\":{\"k\":{\"k\":1}}}")},
        {"keys differing in case", L("{\"a\":1,\"A\":2}")},
        {"keys differing by a trailing space", L("{\"a\":1,\"a \":2}")},
        {"key that is a prefix of another", L("{\"ab\":1,\"a\":2,\"abc\":3}")},
        {"keys differing only after an escape", L("{\"\\u00e9a\":1,\"\\u00e9b\":2}")},
        {"brackets inside strings", L("{\"{[\":\"]}\",\"\\\"}\":1}")},
    };
    for (size_t i = 0; i < sizeof OK / sizeof OK[0]; i++) expect_accepted(OK[i].what, OK[i].text, OK[i].len);
}

Test(json, nesting_limit) {
    unsigned d = QFMT_JSON_MAX_DEPTH;
    char t[2 * QFMT_JSON_MAX_DEPTH + 8];
    memset(t, '[', d);
    memset(t + d, ']', d);
    expect_accepted("QFMT_JSON_MAX_DEPTH arrays", t, 2 * d);
    /* one more, in objects and arrays mixed */
    char *big = malloc(8 * (d + 1));
    cr_assert_not_null(big);
    size_t n = 0;
    uint64_t at = 0;
    for (unsigned i = 0; i <= d; i++) {
        if (i == d) at = n;
        if (i % 2) big[n++] = '[';
        else memcpy(big + n, "{\"\":", 4), n += 4;
    }
    qfmt_error e;
    cr_assert_eq(qfmt_json_check(big, n, 0, NULL, &e), QFMT_E_CORRUPT);
    cr_expect_eq(e.offset, at);
    cr_expect(strstr(e.message, "nesting deeper than 128") != NULL, "%s", e.message);
    free(big);
}

Test(json, size_limit_and_arguments) {
    qfmt_error e;
    /* refused on its length alone, before a byte is read */
    cr_assert_eq(qfmt_json_check("{}", (size_t)QFMT_JSON_MAX_SIZE + 1, 0, "big.json", &e), QFMT_E_CORRUPT);
    cr_expect_eq(e.offset, QFMT_NO_OFFSET);
    cr_expect_str_eq(e.path, "big.json");
    cr_expect(strstr(e.message, "268435456") != NULL, "%s", e.message);
    cr_expect_eq(qfmt_json_check(NULL, 3, 0, NULL, &e), QFMT_E_ARG);
    cr_expect_eq(qfmt_json_check("{}", 2, UINT64_MAX, NULL, &e), QFMT_E_ARG);
    cr_expect_eq(qfmt_json_check(NULL, 0, 0, NULL, &e), QFMT_E_CORRUPT); /* no value */
    /* not NUL-terminated: only len bytes are read (ASan catches more) */
    char *exact = malloc(7);
    cr_assert_not_null(exact);
    memcpy(exact, "{\"a\":1}", 7);
    expect_accepted("exactly sized", exact, 7);
    cr_expect_eq(qfmt_json_check(exact, 6, 0, NULL, &e), QFMT_E_CORRUPT);
    cr_expect_eq(e.offset, 6);
    free(exact);
}

/* An object of n keys "k<i>" (values: i), optionally with key k<dup> again at the end. */
static char *many_keys(size_t n, long dup, size_t *len, size_t *dup_off, size_t *first_off)
{
    size_t cap = n * 24 + 64;
    char *t = malloc(cap);
    cr_assert_not_null(t);
    size_t l = 0;
    t[l++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (dup >= 0 && i == (size_t)dup) *first_off = l + (i ? 1 : 0);
        l += (size_t)snprintf(t + l, cap - l, "%s\"k%zu\":%zu", i ? "," : "", i, i);
    }
    if (dup >= 0) {
        *dup_off = l + 1;
        l += (size_t)snprintf(t + l, cap - l, ",\"k%ld\":0", dup);
    }
    t[l++] = '}';
    *len = l;
    return t;
}

Test(json, objects_of_many_keys) {
    /* a vocab-sized object: n log n (heap sort), well under a second even under ASan */
    size_t len, dup_off = 0, first_off = 0;
    char *t = many_keys(200000, -1, &len, NULL, NULL);
    expect_accepted("200000 distinct keys", t, len);
    free(t);
    t = many_keys(200000, 123456, &len, &dup_off, &first_off);
    qfmt_error e;
    cr_assert_eq(qfmt_json_check(t, len, 0, NULL, &e), QFMT_E_CORRUPT);
    cr_expect_eq(e.offset, dup_off);
    char want[96];
    snprintf(want, sizeof want, "duplicate key \"k123456\" in one object, at bytes %zu and %zu", first_off, dup_off);
    cr_expect(strstr(e.message, want) != NULL, "%s (want %s)", e.message, want);
    free(t);
    /* many small objects: each one's keys leave the stack when it closes */
    size_t n = 100000, cap = n * 16 + 8, l = 0;
    t = malloc(cap);
    cr_assert_not_null(t);
    t[l++] = '[';
    for (size_t i = 0; i < n; i++) l += (size_t)snprintf(t + l, cap - l, "%s{\"a\":1,\"b\":2}", i ? "," : "");
    t[l++] = ']';
    expect_accepted("100000 objects of two keys", t, l);
    free(t);
    /* keys sharing a long prefix, all equal in length */
    n = 2000;
    cap = n * 1100 + 8, l = 0;
    t = malloc(cap);
    cr_assert_not_null(t);
    t[l++] = '{';
    for (size_t i = 0; i < n; i++) {
        l += (size_t)snprintf(t + l, cap - l, "%s\"", i ? "," : "");
        memset(t + l, 'p', 1000), l += 1000;
        l += (size_t)snprintf(t + l, cap - l, "%06zu\":0", i);
    }
    t[l++] = '}';
    expect_accepted("2000 keys with a 1000-byte common prefix", t, l);
    free(t);
}

/* ---- Through the real entry points ----------------------------------------------------------- */

static uint8_t *st_bytes(const char *header, size_t hlen, size_t data_len, size_t *size)
{
    *size = 8 + hlen + data_len;
    uint8_t *b = calloc(1, *size);
    cr_assert_not_null(b);
    for (int k = 0; k < 8; k++) b[k] = (uint8_t)((uint64_t)hlen >> (8 * k));
    memcpy(b + 8, header, hlen);
    return b;
}

#define ENTRY(offs) "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":" offs "}"

Test(json, safetensors_header_with_a_duplicate_key) {
    /* two tensors named "a": the last would win in Python's json, the first in cJSON */
    const char h[] = "{\"a\":" ENTRY("[0,1]") ",\"a\":" ENTRY("[1,2]") "}";
    size_t size;
    uint8_t *b = st_bytes(h, sizeof h - 1, 2, &size);
    qfmt_st_file *f = NULL;
    qfmt_error e;
    cr_assert_eq(qfmt_st_open_memory(&f, b, size, NULL, &e), QFMT_E_CORRUPT);
    cr_assert_null(f);
    uint64_t second = 8 + (uint64_t)(strstr(h + 2, "\"a\"") - h);
    cr_expect_eq(e.offset, second);
    char want[64];
    snprintf(want, sizeof want, "duplicate key \"a\" in one object, at bytes 9 and %" PRIu64, second);
    cr_expect(strstr(e.message, want) != NULL, "%s", e.message);
    /* from a file: the file is named */
    char dir[256], path[300];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/dup.safetensors", dir);
    th_write_file(path, b, size);
    cr_assert_eq(qfmt_st_open(&f, path, NULL, &e), QFMT_E_CORRUPT);
    cr_expect_str_eq(e.path, path);
    cr_expect_eq(e.offset, second);
    /* a duplicate inside an entry (two dtypes) too */
    const char h2[] = "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    free(b);
    b = st_bytes(h2, sizeof h2 - 1, 1, &size);
    cr_assert_eq(qfmt_st_open_memory(&f, b, size, NULL, &e), QFMT_E_CORRUPT);
    cr_expect_eq(e.offset, 8 + (uint64_t)(strstr(h2, "\"dtype\":\"U8") - h2));
    free(b);
    th_rmtree(dir);
}

Test(json, safetensors_header_nul_and_grammar) {
    static const struct {
        const char *h;
        size_t len;
        size_t off; /* in the header */
        const char *says;
    } C[] = {
        /* the same \u0000 rule as every other JSON text (index.json included) */
        {L("{\"a\\u0000b\":" ENTRY("[0,1]") "}"), 3, "\\u0000"},
        {L("{\"__metadata__\":{\"k\":\"v\\u0000\"},\"a\":" ENTRY("[0,1]") "}"), 23, "\\u0000"},
        {L("{\"a\":{\"dtype\":\"U8\0x\",\"shape\":[1],\"data_offsets\":[0,1]}}"), 17, "NUL byte in a string"},
        {L("{\"a\":" ENTRY("[0,1]") "\0}"), 52, "NUL byte outside a string"},
        {L("{\"a\":" ENTRY("[0,01]") "}"), 49, "leading zero"},
        {L("{\"a\":" ENTRY("[0,1]") ",}"), 53, "a string key"},
        {L("{\"a\":" ENTRY("[0,1]") "}\t"), 53, "header has bytes after"}, /* JSON allows it; safetensors pads with spaces only */
    };
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        size_t size;
        uint8_t *b = st_bytes(C[i].h, C[i].len, 1, &size);
        qfmt_st_file *f = NULL;
        qfmt_error e;
        cr_expect_eq(qfmt_st_open_memory(&f, b, size, NULL, &e), QFMT_E_CORRUPT, "case %zu", i);
        cr_expect_eq(e.offset, 8 + C[i].off, "case %zu: offset %" PRIu64 " (%s)", i, e.offset, e.message);
        cr_expect(strstr(e.message, C[i].says) != NULL, "case %zu: %s", i, e.message);
        free(b);
    }
    /* padded with spaces, as writers do: fine */
    const char ok[] = "{\"a\":" ENTRY("[0,1]") "}   ";
    size_t size;
    uint8_t *b = st_bytes(ok, sizeof ok - 1, 1, &size);
    qfmt_st_file *f = NULL;
    qfmt_error e;
    cr_expect_eq(qfmt_st_open_memory(&f, b, size, NULL, &e), QFMT_OK, "%s", e.message);
    qfmt_st_close(f);
    free(b);
}

Test(json, config_json_with_two_n_head) {
    char dir[256], path[300];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/x.qfmt", dir);
    qfmt_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, path, NULL, &e), e);
    const char cfg[] = "{\"model_type\": \"gpt2\", \"n_head\": 12, \"n_embd\": 768, \"n_head\": 16}";
    cr_assert_eq(qfmt_family_config_to_meta(w, cfg, sizeof cfg - 1, &e), QFMT_E_CORRUPT);
    uint64_t second = (uint64_t)(strstr(cfg + 30, "\"n_head\"") - cfg);
    cr_expect_eq(e.offset, second);
    cr_expect_str_eq(e.path, "config.json");
    cr_expect(strstr(e.message, "duplicate key \"n_head\"") != NULL, "%s", e.message);
    /* a raw NUL cutting a value short */
    const char nul[] = "{\"model_type\": \"llama\0gpt2\"}";
    cr_assert_eq(qfmt_family_config_to_meta(w, nul, sizeof nul - 1, &e), QFMT_E_CORRUPT);
    cr_expect_eq(e.offset, 21);
    /* a duplicate under rope_parameters, which the family mapping reads too */
    const char rope[] = "{\"model_type\": \"llama\", \"rope_parameters\": {\"rope_theta\": 1e4, \"rope_theta\": 5e5}}";
    cr_assert_eq(qfmt_family_config_to_meta(w, rope, sizeof rope - 1, &e), QFMT_E_CORRUPT);
    cr_expect(strstr(e.message, "duplicate key \"rope_theta\"") != NULL, "%s", e.message);
    qfmt_writer_free(w);
    th_rmtree(dir);
}

static char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f, "%s", p);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_gt(n, 0);
    rewind(f);
    char *b = malloc((size_t)n);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* The fixture tokenizer.json with `ins` (ilen bytes) inserted after the first `after`. */
static char *tok_edit(const char *after, const char *ins, size_t ilen, size_t *len, size_t *at)
{
    size_t n;
    char *src = slurp(FIX "tokenizer.json", &n);
    char *z = malloc(n + 1);
    cr_assert_not_null(z);
    memcpy(z, src, n);
    z[n] = '\0';
    const char *p = strstr(z, after);
    cr_assert_not_null(p, "fixture tokenizer.json lacks %s", after);
    *at = (size_t)(p - z) + strlen(after);
    char *out = malloc(n + ilen);
    cr_assert_not_null(out);
    memcpy(out, src, *at);
    memcpy(out + *at, ins, ilen);
    memcpy(out + *at + ilen, src + *at, n - *at);
    *len = n + ilen;
    free(src);
    free(z);
    return out;
}

Test(json, tokenizer_json_with_a_raw_nul) {
    size_t len, at;
    qfmt_tokenizer *t = NULL;
    qfmt_error err = {0};
    char want[64];
    /* "type": "BPE\0junk": cJSON alone would read "BPE" */
    char *j = tok_edit("\"type\": \"BPE", L("\0junk"), &len, &at);
    cr_assert_eq(qfmt_tokenizer_load(&t, j, len, &err), QFMT_E_CORRUPT);
    cr_assert_null(t);
    snprintf(want, sizeof want, "tokenizer.json: at byte %zu: JSON: NUL byte in a string", at);
    cr_expect(strncmp(tmsg(&err), want, strlen(want)) == 0, "%s (want %s)", tmsg(&err), want);
    free(j);
    /* a NUL between tokens */
    j = tok_edit("\"model\":", L("\0"), &len, &at);
    cr_assert_eq(qfmt_tokenizer_load(&t, j, len, &err), QFMT_E_CORRUPT);
    snprintf(want, sizeof want, "at byte %zu: JSON: NUL byte outside a string", at);
    cr_expect(strstr(tmsg(&err), want) != NULL, "%s (want %s)", tmsg(&err), want);
    free(j);
    /* a second "type" in the model object: which would count? */
    j = tok_edit("\"type\": \"BPE\"", L(", \"type\": \"WordPiece\""), &len, &at);
    cr_assert_eq(qfmt_tokenizer_load(&t, j, len, &err), QFMT_E_CORRUPT);
    snprintf(want, sizeof want, "at byte %zu: JSON: duplicate key \"type\"", at + 2);
    cr_expect(strstr(tmsg(&err), want) != NULL, "%s (want %s)", tmsg(&err), want);
    free(j);
    /* the fixture itself passes (150k-entry-scale vocab object) */
    j = slurp(FIX "tokenizer.json", &len);
    qfmt_error e;
    cr_expect_eq(qfmt_json_check(j, len, 0, "tokenizer.json", &e), QFMT_OK, "%s", e.message);
    cr_assert_eq(qfmt_tokenizer_load(&t, j, len, &err), QFMT_OK, "%s", tmsg(&err));
    qfmt_tokenizer_free(t);
    free(j);
}
