/*
 * test_errors.c - building problems: truncated client text stays valid UTF-8.
 * (The fuzzer found problem documents with a multi-byte key cut in half.)
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "errors.h"
#include "json/read.h"

struct trim_case {
    char in[16];
    char want[16];
};

static struct trim_case trim_cases[] = {
    {"abc", "abc"},
    {"", ""},
    {"a\xc3\xa9", "a\xc3\xa9"},                 /* complete 2-byte */
    {"a\xc3", "a"},                             /* cut 2-byte */
    {"a\xe2\x82\xac", "a\xe2\x82\xac"},         /* complete 3-byte */
    {"a\xe2\x82", "a"},                         /* cut 3-byte, 2 of 3 */
    {"a\xe2", "a"},                             /* cut 3-byte, 1 of 3 */
    {"a\xf0\x9f\x98\x80", "a\xf0\x9f\x98\x80"}, /* complete 4-byte */
    {"a\xf0\x9f\x98", "a"},                     /* cut 4-byte */
    {"\xf0\x9f", ""},
};

ParameterizedTestParameters(utf8, trim_partial)
{
    return cr_make_param_array(struct trim_case, trim_cases, sizeof trim_cases / sizeof trim_cases[0]);
}

ParameterizedTest(struct trim_case *c, utf8, trim_partial)
{
    char s[16];
    strcpy(s, c->in);
    utf8_trim_partial(s);
    cr_assert_str_eq(s, c->want);
}

Test(problem, a_long_multibyte_field_name_is_cut_on_a_character_boundary)
{
    struct problem p = {0};
    char field[200] = "x";

    for (int i = 0; i < 60; i++)
        strcat(field, "\xc3\xa9");                  /* 1 + 120 bytes: cut inside a character */
    problem_field(&p, field, "unknown field");
    cr_assert_lt(strlen(p.fields[0].field), sizeof p.fields[0].field);
    cr_assert(utf8_valid(p.fields[0].field, strlen(p.fields[0].field)),
              "a cut field name is not valid UTF-8");
    cr_assert_eq(strlen(p.fields[0].field) % 2, 1, "not cut on a character boundary");
}
