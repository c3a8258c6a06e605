/*
 * test_json_read.c - json_parse (the only door from request bytes to a tree), UTF-8 checks,
 * the typed jr_* field readers and the RFC 3339 / event-type syntax checks: every
 * request body passes here, so hostile and boundary inputs are pinned down exactly.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/read.h"
#include "model.h"

/* Parses bytes from a heap buffer of exactly len bytes: no NUL after the body,
 * as libmicrohttpd hands it over, so an over-read is visible to ASan. */
static enum et_err parse_exact(const char *bytes, size_t len, cJSON **out, struct problem *p)
{
    char *copy = malloc(len ? len : 1);
    enum et_err err;

    cr_assert_not_null(copy);
    memcpy(copy, bytes, len);
    memset(p, 0, sizeof *p);
    err = json_parse(copy, len, out, p);
    free(copy);
    return err;
}

static enum et_err parse_str(const char *s, cJSON **out, struct problem *p)
{
    return parse_exact(s, strlen(s), out, p);
}

/* Asserts a malformed-json refusal whose detail starts with `detail`. */
static void assert_malformed(const char *bytes, size_t len, const char *detail)
{
    struct problem p;
    cJSON *root = (cJSON *)1;

    cr_assert_eq(parse_exact(bytes, len, &root, &p), ET_ERR_MALFORMED, "input %.40s", bytes);
    cr_assert_null(root);
    cr_assert_eq(p.err, ET_ERR_MALFORMED);
    cr_assert_str_eq(p.slug, "malformed-json");
    cr_assert_eq(strncmp(p.detail, detail, strlen(detail)), 0,
                 "input %.40s: detail \"%s\", want \"%s...\"", bytes, p.detail, detail);
    cr_assert_eq(p.nfields, 0);
}

/* ------------------------------------------------------------------ json_parse */

Test(json_parse, object_parses)
{
    struct problem p;
    cJSON *root;

    cr_assert_eq(parse_str(" {\"a\": [1, \"x\"]}\r\n\t ", &root, &p), ET_OK);
    cr_assert(cJSON_IsObject(root));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(root, "a")), 2);
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "a"), 1)->valuestring, "x");
    cJSON_Delete(root);
}

Test(json_parse, scalars_are_valid_documents)
{
    struct problem p;
    cJSON *root;

    cr_assert_eq(parse_str("42", &root, &p), ET_OK);
    cr_assert_eq(root->valuedouble, 42.0);
    cJSON_Delete(root);
    cr_assert_eq(parse_str("\"s\"", &root, &p), ET_OK);
    cr_assert_str_eq(root->valuestring, "s");
    cJSON_Delete(root);
}

Test(json_parse, truncated_object_without_terminator)
{
    static const char body[] = {'{', '"', '1', '"', ':', '1', ','};
    assert_malformed(body, sizeof body, "the body is not well-formed JSON");
}

Test(json_parse, truncated_inputs_table)
{
    static const char *const bodies[] = {
        "{", "[", "{\"a\"", "{\"a\":", "{\"a\":1", "[1,", "\"abc", "\"a\\", "\"\\u12",
        "tru", "nul", "-", "{\"a\":[}", "{,}", "[1 2]", "{'a':1}", "{a:1}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        assert_malformed(bodies[i], strlen(bodies[i]), "the body is not well-formed JSON");
}

/* cJSON would skip it and every span into the text would be three bytes off
 * (found by the fuzzer: an assertion in json_text_bind). */
Test(json_parse, byte_order_mark_is_refused)
{
    assert_malformed("\xEF\xBB\xBF{}", 5, "the body starts with a byte order mark");
    assert_malformed("\xEF\xBB\xBF{\"payload\":{}}", 16, "the body starts with a byte order mark");
}

Test(json_parse, empty_body)
{
    assert_malformed("", 0, "the request body is empty");
}

Test(json_parse, whitespace_only_body)
{
    assert_malformed("  \n", 3, "the body is not well-formed JSON");
}

Test(json_parse, trailing_garbage)
{
    assert_malformed("{} x", 4, "unexpected data after the JSON value");
    assert_malformed("{}{}", 4, "unexpected data after the JSON value");
    assert_malformed("[1]]", 4, "unexpected data after the JSON value");
    assert_malformed("1 2", 3, "unexpected data after the JSON value");
    assert_malformed("1e", 2, "unexpected data after the JSON value");
}

Test(json_parse, trailing_whitespace_is_fine)
{
    struct problem p;
    cJSON *root;

    cr_assert_eq(parse_str("{}\n\n \t\r", &root, &p), ET_OK);
    cJSON_Delete(root);
}

/* n nested arrays: "[[[...]]]" */
static char *nested(size_t n, char open, char close, size_t *len)
{
    char *s = malloc(2 * n);
    cr_assert_not_null(s);
    memset(s, open, n);
    memset(s + n, close, n);
    *len = 2 * n;
    return s;
}

Test(json_parse, nesting_32_accepted)
{
    struct problem p;
    cJSON *root;
    size_t len;
    char *s = nested(JSON_MAX_DEPTH, '[', ']', &len);

    cr_assert_eq(json_parse(s, len, &root, &p), ET_OK);
    cr_assert(cJSON_IsArray(root));
    cJSON_Delete(root);
    free(s);
}

Test(json_parse, nesting_33_refused)
{
    size_t len;
    char *s = nested(JSON_MAX_DEPTH + 1, '[', ']', &len);

    assert_malformed(s, len, "JSON nested deeper than 32 levels");
    free(s);
}

Test(json_parse, mixed_object_array_nesting_counts_both)
{
    /* 16 x {"a":[ ... ]} is 32 levels; one more [ makes 33. */
    char ok[512] = "", bad[512] = "";
    struct problem p;
    cJSON *root;

    for (int i = 0; i < 16; i++)
        strcat(ok, "{\"a\":[");
    strcat(bad, ok);
    strcat(ok, "1");
    strcat(bad, "[1]");
    for (int i = 0; i < 16; i++) {
        strcat(ok, "]}");
        strcat(bad, "]}");
    }
    cr_assert_eq(parse_str(ok, &root, &p), ET_OK);
    cJSON_Delete(root);
    assert_malformed(bad, strlen(bad), "JSON nested deeper than 32 levels");
}

Test(json_parse, brackets_inside_strings_do_not_count)
{
    char body[256];
    struct problem p;
    cJSON *root;

    /* An escaped quote must not end the string early either. */
    snprintf(body, sizeof body, "{\"k\\\"[[\":\"\\\"%s\"}",
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{");
    cr_assert_eq(parse_str(body, &root, &p), ET_OK, "%s", p.detail);
    cr_assert_str_eq(root->child->string, "k\"[[");
    cJSON_Delete(root);
}

Test(json_parse, deep_nesting_100000_refused_without_crash)
{
    size_t len;
    char *s = nested(100000, '[', ']', &len);

    assert_malformed(s, len, "JSON nested deeper than 32 levels");
    memset(s, '{', len);   /* also unterminated, all objects */
    assert_malformed(s, len, "JSON nested deeper than 32 levels");
    free(s);
}

/* Criterion copies parameters into the test worker's memory: they hold their
 * text inline, never pointers into the parent process. */
struct bytes_case {
    char name[32];
    char bytes[16];
    size_t len;
};
#define BYTES(name, lit) {name, lit, sizeof(lit) - 1}

ParameterizedTestParameters(json_parse, invalid_utf8_refused)
{
    static struct bytes_case cases[] = {
        BYTES("overlong 2-byte /", "\"\xc0\xaf\""),
        BYTES("overlong 2-byte c1", "\"\xc1\xbf\""),
        BYTES("overlong 3-byte", "\"\xe0\x80\xaf\""),
        BYTES("overlong 4-byte", "\"\xf0\x80\x80\xaf\""),
        BYTES("surrogate d800", "\"\xed\xa0\x80\""),
        BYTES("surrogate dfff", "\"\xed\xbf\xbf\""),
        BYTES("beyond 10ffff", "\"\xf4\x90\x80\x80\""),
        BYTES("f5 lead", "\"\xf5\x80\x80\x80\""),
        BYTES("truncated 2-byte", "\"\xc3\""),
        BYTES("truncated 3-byte", "\"\xe2\x82\""),
        BYTES("truncated 4-byte", "\"\xf0\x9f\x98\""),
        BYTES("truncated at end of body", "\"a\"\xe2\x82"),
        BYTES("lone continuation", "\"\x80\""),
        BYTES("0xff", "\"\xff\""),
        BYTES("0xfe", "\"\xfe\""),
        BYTES("bad continuation", "\"\xe2\x28\xa1\""),
        BYTES("in a key", "{\"\xff\":1}"),
        BYTES("outside strings", "[1]\xff"),
    };
    return cr_make_param_array(struct bytes_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct bytes_case *c, json_parse, invalid_utf8_refused)
{
    struct problem p;
    cJSON *root;

    cr_assert_eq(parse_exact(c->bytes, c->len, &root, &p), ET_ERR_MALFORMED, "%s", c->name);
    cr_assert_str_eq(p.detail, "the body is not valid UTF-8 text (or contains a NUL byte)",
                     "%s", c->name);
    cr_assert_null(root);
}

Test(json_parse, valid_multibyte_utf8_accepted)
{
    /* 2-, 3- and 4-byte forms at their boundaries: U+0080, U+07FF, U+0800, U+FFFF,
     * U+10000, U+10FFFF, and U+E000 just past the surrogates. */
    static const char body[] = "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80"
                               "\xf4\x8f\xbf\xbf\xee\x80\x80\"";
    struct problem p;
    cJSON *root;

    cr_assert_eq(parse_exact(body, sizeof body - 1, &root, &p), ET_OK, "%s", p.detail);
    cr_assert_eq(strlen(root->valuestring), sizeof body - 3);
    cJSON_Delete(root);
}

Test(json_parse, raw_nul_byte_refused)
{
    static const char in_string[] = "{\"a\":\"b\0c\"}";
    static const char after_value[] = "{}\0";

    assert_malformed(in_string, sizeof in_string - 1,
                     "the body is not valid UTF-8 text (or contains a NUL byte)");
    assert_malformed(after_value, sizeof after_value - 1,
                     "the body is not valid UTF-8 text (or contains a NUL byte)");
}

Test(json_parse, escaped_nul_refused)
{
    assert_malformed("{\"a\":\"x\\u0000y\"}", 16, "strings may not contain \\u0000");
    assert_malformed("{\"\\u0000\":1}", 12, "strings may not contain \\u0000");
}

Test(json_parse, escaped_u0001_accepted)
{
    struct problem p;
    cJSON *root;

    cr_assert_eq(parse_str("{\"a\":\"x\\u0001y\"}", &root, &p), ET_OK);
    cr_assert_str_eq(cJSON_GetObjectItem(root, "a")->valuestring, "x\x01y");
    cJSON_Delete(root);
}

Test(json_parse, escaped_backslash_before_u0000_is_text)
{
    /* "\\u0000" is a backslash followed by the text u0000, not an escape. */
    struct problem p;
    cJSON *root;

    cr_assert_eq(parse_str("[\"\\\\u0000\"]", &root, &p), ET_OK, "%s", p.detail);
    cr_assert_str_eq(root->child->valuestring, "\\u0000");
    cJSON_Delete(root);
}

/* ------------------------------------------------------------------ utf8 */

Test(utf8, chars_counts_code_points)
{
    cr_assert_eq(utf8_chars(""), 0);
    cr_assert_eq(utf8_chars("abc"), 3);
    cr_assert_eq(utf8_chars("\xc3\xa9t\xc3\xa9"), 3);                 /* été */
    cr_assert_eq(utf8_chars("\xe2\x82\xac"), 1);                       /* € */
    cr_assert_eq(utf8_chars("\xf0\x9f\x98\x80\xf0\x9f\x98\x80"), 2);   /* two emoji */
}

Test(utf8, valid_by_length)
{
    cr_assert(utf8_valid("", 0));
    cr_assert(utf8_valid("abc", 3));
    cr_assert(utf8_valid("\xe2\x82\xac", 3));
    cr_assert_not(utf8_valid("\xe2\x82\xac", 2), "cut mid-sequence by len");
    cr_assert_not(utf8_valid("a\0b", 3));
}

/* ------------------------------------------------------------------ jr_* readers */

/* Parses a literal test document (must be well-formed). */
static cJSON *doc(const char *json)
{
    struct problem p;
    cJSON *root;

    cr_assert_eq(parse_str(json, &root, &p), ET_OK, "test document %s: %s", json, p.detail);
    return root;
}

static void assert_one_field(const struct problem *p, const char *field, const char *message)
{
    cr_assert_eq(p->err, ET_ERR_INVALID);
    cr_assert_eq(p->nfields, 1, "nfields %zu", p->nfields);
    cr_assert_str_eq(p->fields[0].field, field);
    cr_assert_str_eq(p->fields[0].message, message);
}

struct syntax_case {
    char s[72];
    bool ok;
};

#define ID_MESSAGE "must be 1 to 128 characters from A-Z a-z 0-9 _ . : -"

Test(jr_object, only_listed_keys)
{
    static const char *const allowed[] = {"a", "b", NULL};
    struct problem p = {0};
    cJSON *root = doc("{\"a\":1,\"x\":2,\"b\":3,\"y\":4}");

    cr_assert_not(jr_object(root, allowed, &p));
    cr_assert_eq(p.nfields, 2);
    cr_assert_str_eq(p.fields[0].field, "x");
    cr_assert_str_eq(p.fields[0].message, "unknown field");
    cr_assert_str_eq(p.fields[1].field, "y");
    cJSON_Delete(root);

    memset(&p, 0, sizeof p);
    root = doc("{\"b\":1}");
    cr_assert(jr_object(root, allowed, &p));
    cr_assert_eq(p.nfields, 0);
    cJSON_Delete(root);

    root = doc("[1]");
    cr_assert_not(jr_object(root, allowed, &p));
    assert_one_field(&p, "(body)", "must be a JSON object");
    cJSON_Delete(root);
}

Test(jr_id, valid_and_absent)
{
    struct problem p = {0};
    char out[ID_MAX + 1];
    cJSON *root = doc("{\"id\":\"Org_1.a:b-c\",\"n\":null}");

    cr_assert(jr_id(root, "id", true, out, &p));
    cr_assert_str_eq(out, "Org_1.a:b-c");
    strcpy(out, "junk");
    cr_assert(jr_id(root, "missing", false, out, &p));
    cr_assert_str_eq(out, "");
    cr_assert(jr_id(root, "n", false, out, &p), "null means absent");
    cr_assert_eq(p.nfields, 0);
    cr_assert_not(jr_id(root, "n", true, out, &p));
    assert_one_field(&p, "n", "is required");
    cJSON_Delete(root);
}

Test(jr_id, length_limits)
{
    char json[300], out[ID_MAX + 1];
    struct problem p = {0};
    cJSON *root;

    snprintf(json, sizeof json, "{\"id\":\"%0128d\"}", 7);   /* 128 characters */
    root = doc(json);
    cr_assert(jr_id(root, "id", true, out, &p));
    cr_assert_eq(strlen(out), 128);
    cJSON_Delete(root);

    snprintf(json, sizeof json, "{\"id\":\"%0129d\"}", 7);   /* 129 characters */
    root = doc(json);
    cr_assert_not(jr_id(root, "id", true, out, &p));
    assert_one_field(&p, "id", ID_MESSAGE);
    cr_assert_str_eq(out, "");
    cJSON_Delete(root);

    memset(&p, 0, sizeof p);
    root = doc("{\"id\":\"\"}");
    cr_assert_not(jr_id(root, "id", false, out, &p));
    assert_one_field(&p, "id", ID_MESSAGE);
    cJSON_Delete(root);
}

ParameterizedTestParameters(jr_id, bad_values)
{
    static struct syntax_case cases[] = {
        {"{\"id\":\"a b\"}", false}, {"{\"id\":\"a/b\"}", false}, {"{\"id\":\"a%20\"}", false},
        {"{\"id\":\"caf\xc3\xa9\"}", false}, {"{\"id\":\"a\\nb\"}", false},
        {"{\"id\":\"a\\u0001\"}", false}, {"{\"id\":\"a?b\"}", false}, {"{\"id\":\"a#b\"}", false},
        {"{\"id\":\"a+b\"}", false}, {"{\"id\":\"a,b\"}", false},
    };
    return cr_make_param_array(struct syntax_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct syntax_case *c, jr_id, bad_values)
{
    struct problem p = {0};
    char out[ID_MAX + 1];
    cJSON *root = doc(c->s);

    cr_assert_not(jr_id(root, "id", true, out, &p), "%s", c->s);
    assert_one_field(&p, "id", ID_MESSAGE);
    cJSON_Delete(root);
}

Test(jr_id, non_string_refused)
{
    static const char *const cases[] = {"{\"id\":5}", "{\"id\":true}", "{\"id\":[]}",
                                        "{\"id\":{}}"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct problem p = {0};
        char out[ID_MAX + 1];
        cJSON *root = doc(cases[i]);
        cr_assert_not(jr_id(root, "id", false, out, &p), "%s", cases[i]);
        assert_one_field(&p, "id", "must be a string");
        cJSON_Delete(root);
    }
}

Test(jr_token, shorter_max_len)
{
    struct problem p = {0};
    char out[8];
    cJSON *root = doc("{\"t\":\"abcd\",\"u\":\"abcde\"}");

    cr_assert(jr_token(root, "t", true, 4, out, &p));
    cr_assert_str_eq(out, "abcd");
    cr_assert_not(jr_token(root, "u", true, 4, out, &p));
    assert_one_field(&p, "u", "must be 1 to 4 characters from A-Z a-z 0-9 _ . : -");
    cJSON_Delete(root);
}

/* {"t": "<n copies of ch>"} */
static cJSON *text_doc(const char *ch, size_t n)
{
    size_t cl = strlen(ch);
    char *json = malloc(n * cl + 16), *w = json;
    cJSON *root;

    cr_assert_not_null(json);
    w += sprintf(w, "{\"t\":\"");
    for (size_t i = 0; i < n; i++, w += cl)
        memcpy(w, ch, cl);
    strcpy(w, "\"}");
    root = doc(json);
    free(json);
    return root;
}

struct text_case {
    char ch[5];   /* one character, possibly multi-byte */
    size_t n;
    bool ok;
};

ParameterizedTestParameters(jr_text, length_in_characters)
{
    static struct text_case cases[] = {
        {"a", 1, true},
        {"a", 200, true},
        {"a", 201, false},
        {"\xc3\xa9", 200, true},            /* é: 400 bytes */
        {"\xc3\xa9", 201, false},
        {"\xe2\x82\xac", 200, true},        /* €: 600 bytes */
        {"\xe2\x82\xac", 201, false},
        {"\xf0\x9f\x98\x80", 200, true},    /* emoji: 800 bytes, the worst case */
        {"\xf0\x9f\x98\x80", 201, false},
    };
    return cr_make_param_array(struct text_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct text_case *c, jr_text, length_in_characters)
{
    struct problem p = {0};
    char out[TEXT_BYTES(NAME_MAX_CHARS)];
    cJSON *root = text_doc(c->ch, c->n);

    cr_assert_eq(jr_text(root, "t", true, NAME_MAX_CHARS, out, sizeof out, &p), c->ok,
                 "%zu x %zu-byte char", c->n, strlen(c->ch));
    if (c->ok) {
        cr_assert_eq(p.nfields, 0);
        cr_assert_eq(strlen(out), c->n * strlen(c->ch));
        cr_assert_eq(utf8_chars(out), c->n);
    } else {
        assert_one_field(&p, "t", "must be 1 to 200 characters");
    }
    cJSON_Delete(root);
}

Test(jr_text, empty_and_wrong_type)
{
    struct problem p = {0};
    char out[32];
    cJSON *root = doc("{\"e\":\"\",\"n\":3}");

    cr_assert_not(jr_text(root, "e", true, 10, out, sizeof out, &p));
    assert_one_field(&p, "e", "must be 1 to 10 characters");
    memset(&p, 0, sizeof p);
    cr_assert_not(jr_text(root, "n", true, 10, out, sizeof out, &p));
    assert_one_field(&p, "n", "must be a string");
    memset(&p, 0, sizeof p);
    cr_assert(jr_text(root, "absent", false, 10, out, sizeof out, &p));
    cr_assert_str_eq(out, "");
    cr_assert_not(jr_text(root, "absent", true, 10, out, sizeof out, &p));
    assert_one_field(&p, "absent", "is required");
    cJSON_Delete(root);
}

Test(jr_text, output_buffer_too_small_refused)
{
    struct problem p = {0};
    char out[4];
    cJSON *root = doc("{\"t\":\"abcd\"}");

    cr_assert_not(jr_text(root, "t", true, 100, out, sizeof out, &p));
    assert_one_field(&p, "t", "must be 1 to 100 characters");
    cJSON_Delete(root);
}

#define FRACTION_MESSAGE "must be an integer, written without a fraction or exponent"

struct int_case {
    char json[48];
    bool ok;
    long long want;
    char message[64];
};

ParameterizedTestParameters(jr_int, table)
{
    static struct int_case cases[] = {
        {"{\"v\":0}", true, 0, ""},
        {"{\"v\":-5}", true, -5, ""},
        {"{\"v\":1000}", true, 1000, ""},
        {"{\"v\":-10}", true, -10, ""},
        {"{\"v\":-0}", true, 0, ""},
        {"{\"v\":-11}", false, 0, "must be between -10 and 1000"},
        {"{\"v\":1001}", false, 0, "must be between -10 and 1000"},
        {"{\"v\":100000000000000000000000}", false, 0, "must be between -10 and 1000"},
        {"{\"v\":-100000000000000000000000}", false, 0, "must be between -10 and 1000"},
        /* Integers are exact literals: nothing is rounded, nothing computed. */
        {"{\"v\":2.0}", false, 0, FRACTION_MESSAGE},
        {"{\"v\":1e3}", false, 0, FRACTION_MESSAGE},
        {"{\"v\":5e0}", false, 0, FRACTION_MESSAGE},
        {"{\"v\":1E2}", false, 0, FRACTION_MESSAGE},
        {"{\"v\":4.9999999999999999999}", false, 0, FRACTION_MESSAGE},
        {"{\"v\":1e20}", false, 0, FRACTION_MESSAGE},
        {"{\"v\":1.5}", false, 0, FRACTION_MESSAGE},
        {"{\"v\":-0.5}", false, 0, FRACTION_MESSAGE},
        {"{\"v\":1e400}", false, 0, FRACTION_MESSAGE},
        {"{\"v\":1e-400}", false, 0, FRACTION_MESSAGE},
        {"{\"v\":\"5\"}", false, 0, "must be an integer"},
        {"{\"v\":\"abc\"}", false, 0, "must be an integer"},
        {"{\"v\":true}", false, 0, "must be an integer"},
        {"{\"v\":[1]}", false, 0, "must be an integer"},
        {"{\"v\":{}}", false, 0, "must be an integer"},
    };
    return cr_make_param_array(struct int_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct int_case *c, jr_int, table)
{
    struct problem p = {0};
    long long out = 12345;
    bool present = false;
    cJSON *root = doc(c->json);

    cr_assert_eq(jr_int(root, "v", true, -10, 1000, &out, &present, &p), c->ok, "%s", c->json);
    cr_assert(present);
    if (c->ok) {
        cr_assert_eq(out, c->want, "%s: got %lld", c->json, out);
        cr_assert_eq(p.nfields, 0);
    } else {
        cr_assert_eq(out, 12345, "%s: out written on failure", c->json);
        assert_one_field(&p, "v", c->message);
    }
    cJSON_Delete(root);
}

Test(jr_int, absent_and_null)
{
    struct problem p = {0};
    long long out = 7;
    bool present = true;
    cJSON *root = doc("{\"n\":null}");

    cr_assert(jr_int(root, "v", false, 0, 10, &out, &present, &p));
    cr_assert_not(present);
    cr_assert_eq(out, 7);
    cr_assert(jr_int(root, "n", false, 0, 10, &out, NULL, &p));
    cr_assert_eq(p.nfields, 0);
    cr_assert_not(jr_int(root, "n", true, 0, 10, &out, &present, &p));
    cr_assert_not(present);
    assert_one_field(&p, "n", "is required");
    cJSON_Delete(root);
}

Test(jr_int, credits_bounds)
{
    struct problem p = {0};
    long long out;
    cJSON *root = doc("{\"max\":1000000000,\"over\":1000000001}");

    cr_assert(jr_int(root, "max", true, 0, CREDITS_MAX, &out, NULL, &p));
    cr_assert_eq(out, 1000000000LL);
    cr_assert_not(jr_int(root, "over", true, 0, CREDITS_MAX, &out, NULL, &p));
    assert_one_field(&p, "over", "must be between 0 and 1000000000");
    cJSON_Delete(root);
}

/* The edges of long long: 2^63 is LLONG_MIN's magnitude and nothing past it
 * is negated (the fuzzer's -9223372036854775809 once was, into UB). */
Test(jr_int, the_edges_of_long_long)
{
    static const struct {
        const char *json;
        bool ok;
        long long want;
    } cases[] = {
        {"{\"v\":9223372036854775807}", true, LLONG_MAX},
        {"{\"v\":-9223372036854775808}", true, LLONG_MIN},
        {"{\"v\":9223372036854775808}", false, 0},
        {"{\"v\":-9223372036854775809}", false, 0},
        {"{\"v\":-9223372036854775810}", false, 0},
        {"{\"v\":-18446744073709551616}", false, 0},
        {"{\"v\":-99999999999999999999999}", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct problem p = {0};
        long long out = 12345;
        cJSON *root = doc(cases[i].json);

        cr_assert_eq(jr_int(root, "v", true, LLONG_MIN, LLONG_MAX, &out, NULL, &p), cases[i].ok,
                     "%s", cases[i].json);
        if (cases[i].ok)
            cr_assert_eq(out, cases[i].want, "%s: got %lld", cases[i].json, out);
        else
            assert_one_field(&p, "v", "must be between -9223372036854775808 and 9223372036854775807");
        cJSON_Delete(root);
    }
}

#define MONEY_MESSAGE "must be an amount from 0 to 99999999.99 with at most two decimals"

struct money_case {
    char value[24];      /* JSON value text */
    char want[16];       /* canonical string, "": refused */
};

ParameterizedTestParameters(jr_money, table)
{
    static struct money_case cases[] = {
        {"99", "99.00"},
        {"19.99", "19.99"},
        {"0.29", "0.29"},
        {"0", "0.00"},
        {"0.5", "0.50"},
        {"99999999.99", "99999999.99"},
        {"\"99\"", "99.00"},
        {"\"19.9\"", "19.90"},
        {"\"19.99\"", "19.99"},
        {"\"007.5\"", "7.50"},
        {"\"0\"", "0.00"},
        {"\"99999999.99\"", "99999999.99"},
        {"19.999", ""},
        {"1.005", ""},
        {"\"19.999\"", ""},
        {"\"19.9999\"", ""},
        {"-1", ""},
        {"-0.01", ""},
        {"\"-1\"", ""},
        {"\"abc\"", ""},
        {"\"\"", ""},
        {"\"1.\"", ""},
        {"\".5\"", ""},
        {"\"1,5\"", ""},
        {"\" 1\"", ""},
        {"\"1 \"", ""},
        {"\"1e2\"", ""},
        {"100000000", ""},
        {"\"100000000\"", ""},
        {"\"1000000000\"", ""},
        {"1e300", ""},
        /* money is read as written: no sign, no exponent, at most two decimals */
        {"10.1", "10.10"},
        {"\"10.1\"", "10.10"},
        {"0.00", "0.00"},
        {"99999999.9", "99999999.90"},
        {"-0", ""},
        {"-0.0", ""},
        {"-1e-15", ""},
        {"\"-0\"", ""},
        {"\"+1\"", ""},
        {"1e2", ""},
        {"1E2", ""},
        {"5e-1", ""},
        {"1.500", ""},
        {"\"1.500\"", ""},
        {"4.9999999999999999999", ""},
        {"0.000000001", ""},
        {"99999999.999", ""},
        {"100000000.00", ""},
        {"true", ""},
        {"[]", ""},
    };
    return cr_make_param_array(struct money_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct money_case *c, jr_money, table)
{
    char json[128], out[MONEY_BYTES];
    struct problem p = {0};
    cJSON *root;

    snprintf(json, sizeof json, "{\"price\":%s}", c->value);
    root = doc(json);
    strcpy(out, "unset");
    cr_assert_eq(jr_money(root, "price", out, sizeof out, &p), c->want[0] != '\0', "%s",
                 c->value);
    if (c->want[0]) {
        cr_assert_str_eq(out, c->want, "%s", c->value);
        cr_assert_eq(p.nfields, 0);
    } else {
        assert_one_field(&p, "price", MONEY_MESSAGE);
    }
    cJSON_Delete(root);
}

Test(jr_money, absent_or_null_is_required)
{
    char out[MONEY_BYTES];
    struct problem p = {0};
    cJSON *root = doc("{\"n\":null}");

    cr_assert_not(jr_money(root, "price", out, sizeof out, &p));
    assert_one_field(&p, "price", "is required");
    memset(&p, 0, sizeof p);
    cr_assert_not(jr_money(root, "n", out, sizeof out, &p));
    assert_one_field(&p, "n", "is required");
    cJSON_Delete(root);
}

Test(jr_timestamp, reads_and_refuses)
{
    char out[TIMESTAMP_BYTES];
    struct problem p = {0};
    cJSON *root = doc("{\"a\":\"2026-11-21T09:30:00+01:00\",\"b\":\"tomorrow\",\"c\":5,\"n\":null}");

    cr_assert(jr_timestamp(root, "a", out, sizeof out, &p));
    cr_assert_str_eq(out, "2026-11-21T09:30:00+01:00");
    cr_assert(jr_timestamp(root, "n", out, sizeof out, &p));
    cr_assert_str_eq(out, "");
    cr_assert(jr_timestamp(root, "absent", out, sizeof out, &p));
    cr_assert_eq(p.nfields, 0);
    cr_assert_not(jr_timestamp(root, "b", out, sizeof out, &p));
    cr_assert_not(jr_timestamp(root, "c", out, sizeof out, &p));
    cr_assert_eq(p.nfields, 2);
    cr_assert_str_eq(p.fields[0].field, "b");
    cr_assert_str_eq(p.fields[0].message, "must be an RFC 3339 date-time such as 2026-11-21T09:30:00Z, "
                                          "a real date in years 0001 to 9999");
    cr_assert_str_eq(p.fields[1].field, "c");
    cJSON_Delete(root);
}

/* ------------------------------------------------------------------ syntax checks */

ParameterizedTestParameters(rfc3339, table)
{
    static struct syntax_case cases[] = {
        {"2026-11-21T09:30:00Z", true},
        {"2026-11-21t09:30:00z", true},
        {"2026-11-21T09:30:00.1Z", true},
        {"2026-11-21T09:30:00.123Z", true},
        {"2026-11-21T09:30:00.123456789Z", true},
        {"2026-11-21T09:30:00+01:00", true},
        {"2026-11-21T09:30:00-05:30", true},
        {"2026-11-21T09:30:00.123456789+15:59", true},
        {"2026-11-21T09:30:00-00:00", true},
        {"2026-12-31T23:59:60Z", true},                 /* leap second */
        {"2026-12-31T23:59:60.000Z", true},
        {"2026-06-30T12:30:60.5Z", true},               /* PostgreSQL: 12:31:00.5 */
        {"2026-12-31T23:59:59.999999999Z", true},       /* rounds to 24:00:00, still a day */
        {"2024-02-29T00:00:00Z", true},                 /* leap year */
        {"2000-02-29T00:00:00Z", true},                 /* divisible by 400 */
        {"0001-01-01T00:00:00Z", true},
        {"9999-12-31T23:59:59Z", true},
        {"2026-01-31T00:00:00Z", true},
        {"2026-04-30T00:00:00Z", true},
        /* the calendar and PostgreSQL's range, checked here, not by a failed batch */
        {"2026-02-29T00:00:00Z", false},
        {"1900-02-29T00:00:00Z", false},                /* divisible by 100, not 400 */
        {"2026-02-30T00:00:00Z", false},
        {"2026-04-31T00:00:00Z", false},
        {"2026-06-31T00:00:00Z", false},
        {"2026-09-31T00:00:00Z", false},
        {"2026-11-31T00:00:00Z", false},
        {"0000-01-01T00:00:00Z", false},
        {"2026-12-31T23:59:60.5Z", false},              /* past 24:00:00 */
        {"2026-12-31T23:59:60.000000001Z", false},
        {"2026-11-21T09:30:00+16:00", false},           /* PostgreSQL's limit is 15:59 */
        {"2026-11-21T09:30:00-23:59", false},
        {"", false},
        {"2026-11-21", false},
        {"2026-11-21T09:30:00", false},
        {"2026-11-21T09:30Z", false},
        {"2026-11-21 09:30:00Z", false},
        {"2026-11-21X09:30:00Z", false},
        {"26-11-21T09:30:00Z", false},
        {"2026/11/21T09:30:00Z", false},
        {"2026-1a-21T09:30:00Z", false},
        {"2026-00-21T09:30:00Z", false},
        {"2026-13-21T09:30:00Z", false},
        {"2026-11-00T09:30:00Z", false},
        {"2026-11-32T09:30:00Z", false},
        {"2026-11-21T24:00:00Z", false},
        {"2026-11-21T09:60:00Z", false},
        {"2026-11-21T09:30:61Z", false},
        {"2026-11-21T09:30:00.Z", false},
        {"2026-11-21T09:30:00.1234567890Z", false},
        {"2026-11-21T09:30:00+0100", false},
        {"2026-11-21T09:30:00+01", false},
        {"2026-11-21T09:30:00+24:00", false},
        {"2026-11-21T09:30:00+01:60", false},
        {"2026-11-21T09:30:00Zjunk", false},
        {"2026-11-21T09:30:00+01:00x", false},
        {"2026-11-21T09:30:00 Z", false},
        {" 2026-11-21T09:30:00Z", false},
        {"2026-11-21T09:30:00z ", false},
    };
    return cr_make_param_array(struct syntax_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct syntax_case *c, rfc3339, table)
{
    cr_assert_eq(rfc3339_valid(c->s), c->ok, "rfc3339_valid(\"%s\") should be %d", c->s, c->ok);
}

ParameterizedTestParameters(event_type, table)
{
    static struct syntax_case cases[] = {
        {"a", true},
        {"session_view", true},
        {"page.view", true},
        {"a1_b.c9", true},
        {"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl", true},   /* 64 */
        {"", false},
        {"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm", false},  /* 65 */
        {"Session_view", false},
        {"sessionView", false},
        {"1abc", false},
        {"_abc", false},
        {".abc", false},
        {"session-view", false},
        {"session view", false},
        {"caf\xc3\xa9", false},
        {"a:b", false},
        {"a/b", false},
    };
    return cr_make_param_array(struct syntax_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct syntax_case *c, event_type, table)
{
    cr_assert_eq(event_type_valid(c->s), c->ok, "event_type_valid(\"%s\") should be %d", c->s,
                 c->ok);
}

/* ------------------------------------------------------------------ known bugs */

/*
 * Regression (fixed): json/read.c:256 - jr_money's tolerance for a JSON number is relative
 * (1e-6 * max(1, |amount in cents|)), so an amount with more than two decimals is silently
 * rounded instead of refused: 12345678.123 -> "12345678.12", 1234567.891 -> "1234567.89",
 * 10000.005 -> "10000.00", 19.99001 -> "19.99", 0.000000001 -> "0.00". Expected: refused
 * with the "at most two decimals" message, as "12345678.123" (string) and 19.999 (number)
 * already are.
 */
struct money_bug_case {
    char value[24];
};

ParameterizedTestParameters(jr_money, more_than_two_decimals_refused_at_any_size)
{
    static struct money_bug_case cases[] = {
        {"19.99001"}, {"10000.005"}, {"1234567.891"}, {"12345678.123"}, {"0.000000001"},
    };
    return cr_make_param_array(struct money_bug_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct money_bug_case *c, jr_money, more_than_two_decimals_refused_at_any_size)
{
    char json[64], out[MONEY_BYTES] = "";
    struct problem p = {0};
    cJSON *root;

    snprintf(json, sizeof json, "{\"price\":%s}", c->value);
    root = doc(json);
    cr_assert_not(jr_money(root, "price", out, sizeof out, &p), "%s accepted as \"%s\"",
                  c->value, out);
    assert_one_field(&p, "price", MONEY_MESSAGE);
    cJSON_Delete(root);
}

/*
 * Regression (fixed): jr_int compared against (double)max, and (double)LLONG_MAX
 * rounds up to 2^63, so 9223372036854775807 overflowed the conversion. The
 * range is now checked on the digits: LLONG_MAX itself is exact and in range,
 * one more is not, and neither is ever converted through a double.
 */
Test(jr_int, max_llong_bound_not_overflowed)
{
    struct problem p = {0};
    long long out = 0;
    cJSON *root = doc("{\"v\":9223372036854775807,\"w\":9223372036854775808,"
                      "\"m\":-9223372036854775808,\"o\":-9223372036854775809}");

    cr_assert(jr_int(root, "v", true, 0, 9223372036854775807LL, &out, NULL, &p));
    cr_assert_eq(out, 9223372036854775807LL);
    cr_assert(jr_int(root, "m", true, -9223372036854775807LL - 1, 0, &out, NULL, &p));
    cr_assert_eq(out, -9223372036854775807LL - 1);
    cr_assert_not(jr_int(root, "w", true, 0, 9223372036854775807LL, &out, NULL, &p));
    assert_one_field(&p, "w", "must be between 0 and 9223372036854775807");
    memset(&p, 0, sizeof p);
    cr_assert_not(jr_int(root, "o", true, -9223372036854775807LL - 1, 0, &out, NULL, &p));
    cr_assert_eq(p.nfields, 1);
    cJSON_Delete(root);
}

/* Spans of values inside validated JSON text (exact pass-through of payloads):
 * a member is found by its node in the tree, whatever escapes spell its name. */
Test(json_span, member_span_finds_the_member_by_its_node)
{
    const char *s = " { \"a\" : \"x\\\"}\" , \"pay\\u006coad\" :{\"k\":[1,2,{\"z\":\"]\"}]} , \"n\":-1.5e+3 } ";
    struct problem p = {0};
    size_t start, end;
    cJSON *root;

    cr_assert_eq(parse_str(s, &root, &p), ET_OK, "%s", p.detail);
    cr_assert(json_member_span(s, strlen(s), root, cJSON_GetObjectItemCaseSensitive(root, "payload"),
                               &start, &end));
    cr_assert_eq(end - start, strlen("{\"k\":[1,2,{\"z\":\"]\"}]}"));
    cr_assert_eq(strncmp(s + start, "{\"k\":[1,2,{\"z\":\"]\"}]}", end - start), 0);
    cr_assert(json_member_span(s, strlen(s), root, cJSON_GetObjectItemCaseSensitive(root, "a"), &start,
                               &end));
    cr_assert_eq(strncmp(s + start, "\"x\\\"}\"", end - start), 0);
    cr_assert(json_member_span(s, strlen(s), root, cJSON_GetObjectItemCaseSensitive(root, "n"), &start,
                               &end));
    cr_assert_eq(end - start, 7);
    /* Not a member of this object: no span. */
    cr_assert_not(json_member_span(s, strlen(s), root, root, &start, &end));
    cr_assert_not(json_member_span("[1]", 3, root, root->child, &start, &end));
    cJSON_Delete(root);
}

Test(json_span, element_next_walks_an_array)
{
    const char *s = "[ 1 , \"a,b\" ,{\"x\":[2,3]},[] ,true]";
    const char *want[] = {"1", "\"a,b\"", "{\"x\":[2,3]}", "[]", "true"};
    size_t pos = 0, start, end, n = 0;

    while (json_element_next(s, strlen(s), &pos, &start, &end)) {
        cr_assert_lt(n, 5);
        cr_assert_eq(end - start, strlen(want[n]));
        cr_assert_eq(strncmp(s + start, want[n], end - start), 0, "element %zu", n);
        n++;
    }
    cr_assert_eq(n, 5);
    pos = 0;
    cr_assert_not(json_element_next("[ ]", 3, &pos, &start, &end));
}

/* RFC 8259: between tokens only space, tab, CR and LF; inside strings no raw
 * control character. cJSON alone accepts both (found by the fuzzer: an ESC
 * before a payload made the stored payload text invalid). */
Test(json_parse, control_characters_are_refused)
{
    static const char *const bad[] = {
        "{\"a\":\x1b{}}", "{\"a\":\"x\x01y\"}", "\x0c{}", "{\"a\":\"tab\there\"}", "[1,\x0b 2]",
    };
    static const char *const good[] = {"{\"a\":\"x\\u0001y\"}", " {\"a\" :\r\n\t[1, 2] } "};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct problem p = {0};
        cJSON *root = NULL;
        cr_assert_eq(json_parse(bad[i], strlen(bad[i]), &root, &p), ET_ERR_MALFORMED, "case %zu accepted", i);
        cr_assert_null(root);
        cr_assert_str_eq(p.slug, "malformed-json");
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct problem p = {0};
        cJSON *root = NULL;
        cr_assert_eq(json_parse(good[i], strlen(good[i]), &root, &p), ET_OK, "case %zu: %s", i, p.detail);
        cJSON_Delete(root);
    }
}

/* ------------------------------------------------------------------ what cJSON takes too kindly */

/* An object may not name a member twice, at any depth, however the names are
 * spelled: cJSON would validate the first and PostgreSQL store the last. */
Test(json_parse, duplicate_member_names_are_refused)
{
    static const char *const bad[] = {
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"\\u0061\":2}",
        "{\"payload\":{},\"pay\\u006coad\":\"<b>x</b>\"}",
        "{\"\\u00e9\":1,\"\xc3\xa9\":2}",
        "{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}",
        "{\"x\":{\"b\":1,\"c\":2,\"b\":3}}",
        "[{\"ok\":1},[{\"k\":1,\"k\":1}]]",
        "{\"batch\":[{\"payload\":{\"session_id\":\"s1\",\"session_id\":\"s2\"}}]}",
        "{\"\":1,\"\":2}",
    };
    static const char *const good[] = {
        "{\"a\":1,\"A\":2,\"a \":3,\"\\u0062\":4}",
        "{\"a\":{\"a\":{\"a\":1}}}",
        "[{\"a\":1},{\"a\":2}]",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_malformed(bad[i], strlen(bad[i]), "an object names the member");
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct problem p;
        cJSON *root;
        cr_assert_eq(parse_str(good[i], &root, &p), ET_OK, "%s: %s", good[i], p.detail);
        cJSON_Delete(root);
    }
}

/* 100,000 members fit the 1 MiB body: the check sorts, it does not compare
 * every pair (5 * 10^9 comparisons would take a minute; this takes a tenth of
 * a second). Under AddressSanitizer, whose every allocation records a full
 * stack here, 20,000 members exercise the same code in bounded time. */
#if defined(__SANITIZE_ADDRESS__)
#define MANY_MEMBERS 20000
#else
#define MANY_MEMBERS 100000
#endif
Test(json_parse, duplicate_found_among_100000_members, .timeout = 30)
{
    const size_t n = MANY_MEMBERS;
    char *s = malloc(n * 16 + 64);
    size_t off = 0;
    struct problem p;
    cJSON *root;

    cr_assert_not_null(s);
    s[off++] = '{';
    for (size_t i = 0; i < n; i++)
        off += (size_t)sprintf(s + off, "%s\"m%zu\":null", i ? "," : "", i);
    strcpy(s + off, "}");
    cr_assert_eq(parse_str(s, &root, &p), ET_OK, "%s", p.detail);
    cr_assert_eq(cJSON_GetArraySize(root), (int)n);
    cJSON_Delete(root);
    strcpy(s + off, ",\"m17777\":1}");
    assert_malformed(s, strlen(s), "an object names the member \"m17777\" twice");
    free(s);
}

/* cJSON takes whatever strtod takes; RFC 8259 (and jsonb) do not. */
Test(json_parse, numbers_must_be_written_as_json_allows)
{
    static const char *const bad[] = {"[01]", "[-01]", "[00]", "[1.]", "[-.5]", "[1.e5]", "{\"a\":-01.5}"};
    /* cJSON itself refuses these; they stay refused. */
    static const char *const refused[] = {"[+1]", "[.5]", "{\"a\":+0}", "[1e+]", "[-]", "[1E]", "[0x10]"};
    static const char *const good[] = {"[0]", "[-0]", "[1e5]", "[1E+5]", "[1.5e-3]", "[0.0]", "[-0e0]"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_malformed(bad[i], strlen(bad[i]), "the number at byte");
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        assert_malformed(refused[i], strlen(refused[i]), "");
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct problem p;
        cJSON *root;
        cr_assert_eq(parse_str(good[i], &root, &p), ET_OK, "%s: %s", good[i], p.detail);
        cJSON_Delete(root);
    }
}

/* Every number node carries the literal as written, at every depth. */
Test(json_parse, number_nodes_carry_their_literal)
{
    const char *s = "{\"a\" : 4.9999999999999999999 ,\"b\":[1e400, -0, {\"c\":12345678901234567890123}],"
                    "\"d\":\"7\",\"e\":1E-2}";
    struct problem p;
    cJSON *root;

    cr_assert_eq(parse_str(s, &root, &p), ET_OK, "%s", p.detail);
    cr_assert_str_eq(cJSON_GetObjectItem(root, "a")->valuestring, "4.9999999999999999999");
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "b"), 0)->valuestring, "1e400");
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "b"), 1)->valuestring, "-0");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "b"), 2), "c")->valuestring,
                     "12345678901234567890123");
    cr_assert_str_eq(cJSON_GetObjectItem(root, "d")->valuestring, "7");
    cr_assert_str_eq(cJSON_GetObjectItem(root, "e")->valuestring, "1E-2");
    cJSON_Delete(root);
}

struct storable_case {
    char literal[24];
    bool ok;
};

/* The limits of PostgreSQL 15's numeric (numeric.c), each side of each edge;
 * the integration suite stores the accepted ones for real. */
ParameterizedTestParameters(json_number, storable)
{
    static struct storable_case cases[] = {
        {"0", true},          {"-0", true},         {"1.5", true},       {"1e400", true},
        {"1e-16383", true},   {"1e-16384", false},  {"0e-16384", false}, {"1.5e-16382", true},
        {"1.5e-16383", false}, {"1e131071", true},  {"1e131072", false}, {"0.1e131072", true},
        {"10e131071", false}, {"9e131071", true},   {"0e999999999", true}, {"0e1073741823", false},
        {"1e-70000", false},  {"1e1000000", false}, {"-1e1000000", false}, {"0.00001e-16378", true},
        {"0.00001e-16379", false}, {"1E+131071", true}, {"1e00000000000000000005", true},
        {"0e1073741822", true}, {"0e-1073741822", false},
    };
    return cr_make_param_array(struct storable_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct storable_case *c, json_number, storable)
{
    cr_assert(json_number_strict(c->literal, strlen(c->literal)), "%s", c->literal);
    cr_assert_eq(json_number_storable(c->literal), c->ok, "json_number_storable(%s) should be %d", c->literal,
                 c->ok);
}

/* A long repeated name is quoted cut at a character boundary, so the problem
 * detail stays valid UTF-8 (é is 2 bytes: byte 64 falls inside one). */
Test(json_parse, repeated_long_name_is_quoted_as_utf8)
{
    char name[200] = "x", body[512];
    struct problem p;
    cJSON *root;

    for (int i = 0; i < 40; i++)
        strcat(name, "\xc3\xa9");
    snprintf(body, sizeof body, "{\"%s\":1,\"%s\":2}", name, name);
    cr_assert_eq(parse_str(body, &root, &p), ET_ERR_MALFORMED);
    cr_assert(utf8_valid(p.detail, strlen(p.detail)), "detail is not UTF-8: %s", p.detail);
    cr_assert_not_null(strstr(p.detail, "...\" twice"), "%s", p.detail);
}
