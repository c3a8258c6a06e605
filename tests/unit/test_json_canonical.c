/*
 * test_json_canonical.c - "the same body" for an Idempotency-Key: equal JSON
 * values give equal canonical text, different values never do.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "json/canonical.h"

/* The canonical text of s (caller frees), or NULL with *err set. */
static char *canon(const char *s, enum et_err *err)
{
    struct buf out = BUF_INIT;
    struct problem p = {0};

    *err = json_canonical(s, strlen(s), &out, &p);
    if (*err != ET_OK) {
        cr_assert(p.detail[0] != '\0', "an error without a detail for %s", s);
        buf_free(&out);
        return NULL;
    }
    return out.data ? buf_release(&out, NULL) : strdup("");
}

struct pair {
    const char *a, *b;
};

/* Each pair: one value written two ways. */
static const struct pair same[] = {
    {"{\"a\":1,\"b\":2}", " { \"b\" : 2 ,\n\t\"a\" : 1 } "},
    {"{\"user_id\":\"alice\"}", "{\"user_\\u0069d\":\"\\u0061lice\"}"},
    {"\"a/b\"", "\"a\\/b\""},
    {"\"\\u00e9\"", "\"\xc3\xa9\""},
    {"\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""},
    {"10", "1e1"},
    {"10", "10.000"},
    {"10", "0.1e2"},
    {"1.5", "15e-1"},
    {"-0", "0"},
    {"0e999", "0.0"},
    {"49.90", "4.99E+1"},
    {"[1,{\"z\":null,\"a\":[true,false]}]", "[ 1 , { \"a\" : [ true , false ] , \"z\" : null } ]"},
    {"{\"b\":{\"y\":1,\"x\":2},\"a\":0}", "{\"a\":0,\"b\":{\"x\":2,\"y\":1}}"},
    {"\"\\b\\f\\n\\r\\t\\\"\\\\\"", "\"\\u0008\\u000C\\u000a\\u000D\\u0009\\u0022\\u005c\""},
};

/* Each pair: two different values. */
static const struct pair different[] = {
    {"{\"user_id\":\"alice\"}", "{\"user_id\":\"bob\"}"},
    {"5", "4.9999999999999999999"},
    {"100000000000000000001", "100000000000000000000"},
    {"1", "-1"},
    {"1", "\"1\""},
    {"[1,2]", "[2,1]"},
    {"{\"a\":1}", "{\"a\":1,\"b\":null}"},
    {"{}", "[]"},
    {"\"\\ud800\"", "\"\\udc00\""},
    {"\"a\"", "\"A\""},
    {"1e-70000", "0"},
};

Test(json_canonical, one_value_written_two_ways_is_the_same)
{
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        enum et_err ea, eb;
        char *a = canon(same[i].a, &ea), *b = canon(same[i].b, &eb);
        cr_assert(a && b, "%s / %s: refused", same[i].a, same[i].b);
        cr_assert_str_eq(a, b, "%s and %s differ: %s vs %s", same[i].a, same[i].b, a, b);
        free(a);
        free(b);
    }
}

Test(json_canonical, different_values_never_are)
{
    for (size_t i = 0; i < sizeof different / sizeof different[0]; i++) {
        enum et_err ea, eb;
        char *a = canon(different[i].a, &ea), *b = canon(different[i].b, &eb);
        cr_assert(a && b, "%s / %s: refused", different[i].a, different[i].b);
        cr_assert_str_neq(a, b, "%s and %s are the same: %s", different[i].a, different[i].b, a);
        free(a);
        free(b);
    }
}

Test(json_canonical, the_form_is_compact_sorted_and_exact)
{
    enum et_err err;
    char *c = canon("{ \"price_paid\" : 49.90, \"amount\": 1000, \"n\": -0.0025, \"s\": \"\\u001f\\u00e9\\ud800\" }",
                    &err);
    cr_assert_str_eq(c, "{\"amount\":1e3,\"n\":-25e-4,\"price_paid\":499e-1,\"s\":\"\\u001f\xc3\xa9\\ud800\"}");
    free(c);
}

static const char *const refused[] = {
    "{\"a\":1,\"a\":2}",                          /* the same name twice */
    "{\"a\":1,\"\\u0061\":1}",                    /* ... after unescaping */
    "{\"x\":{\"b\":1,\"b\":1}}",
    "", " ", "{", "[1,]", "{\"a\"}", "{\"a\":1,}", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul",
    "\"unterminated", "\"bad \\x escape\"", "\"\\u12\"", "1 2", "\"\x01\"", "\"\xff\"",
    "\"\xed\xa0\x80\"",                           /* a raw surrogate is not UTF-8 */
    "1e1000000000000000000",                      /* exponent out of range */
};

Test(json_canonical, what_has_no_single_value_is_refused)
{
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        enum et_err err;
        char *c = canon(refused[i], &err);
        cr_assert_null(c, "accepted [%s] as %s", refused[i], c ? c : "");
        cr_assert(err == ET_ERR_MALFORMED || err == ET_ERR_INVALID, "[%s]: error %d", refused[i], err);
    }
}

/* d nested arrays: "[[...]]" (caller frees). */
static char *nested(int d)
{
    char *s = calloc((size_t)(2 * d + 1), 1);

    for (int i = 0; i < d; i++) {
        s[i] = '[';
        s[2 * d - 1 - i] = ']';
    }
    return s;
}

Test(json_canonical, nesting_is_bounded)
{
    enum et_err err;
    char *deep = nested(JSON_CANONICAL_MAX_DEPTH + 1), *fits = nested(JSON_CANONICAL_MAX_DEPTH);
    char *c = canon(deep, &err);

    cr_assert_null(c);
    cr_assert_eq(err, ET_ERR_MALFORMED);
    c = canon(fits, &err);
    cr_assert_str_eq(c, fits);
    free(c);
    free(deep);
    free(fits);
}
