/*
 * test_framing.c - the request framing rules (http/framing.c): a table of
 * header sets and the verdict each must get, and what they say about a body.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "http/framing.h"

struct framing_case {
    char fields[160];       /* "Name: value" lines separated by \n; the colon is the first one */
    bool http_1_0;
    enum framing_verdict want;
    bool body;              /* framing_has_body, when the verdict is FRAMING_OK */
    unsigned long long length;
};

static const struct framing_case cases[] = {
    {"", false, FRAMING_OK, false, 0},
    {"Host: x", false, FRAMING_OK, false, 0},
    {"Content-Length: 0", false, FRAMING_OK, false, 0},
    {"Content-Length: 12", false, FRAMING_OK, true, 12},
    {"content-length:\t 12 \t", false, FRAMING_OK, true, 12},
    {"Content-Length: 12\nContent-Length: 12", false, FRAMING_OK, true, 12},
    {"Content-Length: 12\nContent-Length: 012", false, FRAMING_OK, true, 12},
    {"Content-Length: 12\nContent-Length: 13", false, FRAMING_BAD, false, 0},
    {"Content-Length: 0\nContent-Length: 5", false, FRAMING_BAD, false, 0},
    {"Content-Length: ", false, FRAMING_BAD, false, 0},
    {"Content-Length: 1 2", false, FRAMING_BAD, false, 0},
    {"Content-Length: 5, 5", false, FRAMING_BAD, false, 0},
    {"Content-Length: +5", false, FRAMING_BAD, false, 0},
    {"Content-Length: -1", false, FRAMING_BAD, false, 0},
    {"Content-Length: 0x10", false, FRAMING_BAD, false, 0},
    {"Content-Length: 99999999999999999999999", false, FRAMING_OK, true, UINT64_MAX},
    {"Content-Length: 99999999999999999999999\nContent-Length: 99999999999999999999998", false, FRAMING_BAD, false, 0},
    {"Transfer-Encoding: chunked", false, FRAMING_OK, true, 0},
    {"transfer-encoding: CHUNKED", false, FRAMING_OK, true, 0},
    {"Transfer-Encoding: , chunked ,", false, FRAMING_OK, true, 0},
    {"Transfer-Encoding: chunked", true, FRAMING_BAD, false, 0},
    {"Transfer-Encoding: chunked\nContent-Length: 5", false, FRAMING_BAD, false, 0},
    {"Content-Length: 5\nTransfer-Encoding: chunked", false, FRAMING_BAD, false, 0},
    {"Content-Length: 0\nTransfer-Encoding: chunked", false, FRAMING_BAD, false, 0},
    {"Transfer-Encoding: chunked\nTransfer-Encoding: chunked", false, FRAMING_BAD, false, 0},
    {"Transfer-Encoding: chunked, chunked", false, FRAMING_BAD, false, 0},
    {"Transfer-Encoding: ", false, FRAMING_BAD, false, 0},
    {"Transfer-Encoding: ,", false, FRAMING_BAD, false, 0},
    {"Transfer-Encoding: chunked x", false, FRAMING_BAD, false, 0},
    {"Transfer-Encoding: chunked;a=b", false, FRAMING_BAD, false, 0},
    {"Transfer-Encoding: \"chunked\"", false, FRAMING_BAD, false, 0},
    {"Transfer-Encoding: gzip", false, FRAMING_UNKNOWN_CODING, false, 0},
    {"Transfer-Encoding: gzip, chunked", false, FRAMING_UNKNOWN_CODING, false, 0},
    {"Transfer-Encoding: chunked, gzip", false, FRAMING_UNKNOWN_CODING, false, 0},
    {"Transfer-Encoding: chunked\nTransfer-Encoding: identity", false, FRAMING_UNKNOWN_CODING, false, 0},
    {"Transfer-Encoding: x-custom;q=1", false, FRAMING_UNKNOWN_CODING, false, 0},
    {"Transfer-Encoding : chunked", false, FRAMING_BAD, false, 0},
    {"Content-Length\t: 5", false, FRAMING_BAD, false, 0},
    {": 5", false, FRAMING_BAD, false, 0},
    {"X-Ok_Name!#$%&'*+-.^`|~: v", false, FRAMING_OK, false, 0},
    {"X-Content-Length: 5\nContent-Length: 6", false, FRAMING_OK, true, 6},
    {"Content-Lengths: 5\nTransfer-Encodings: gzip", false, FRAMING_OK, false, 0},
};

/* One test over the whole table (not one process per row: the suite runs
 * under the sanitizers on shared cores, where every fork counts). */
Test(framing, verdicts)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct framing_case *c = &cases[i];
        struct framing f;
        const char *why = NULL;

        framing_init(&f);
        for (const char *line = c->fields; *line;) {
            const char *end = strchr(line, '\n');
            size_t len = end ? (size_t)(end - line) : strlen(line);
            const char *colon = memchr(line, ':', len);
            cr_assert(colon, "bad case %s", c->fields);
            const char *value = colon + 1;
            framing_field(&f, line, (size_t)(colon - line), value, len - (size_t)(value - line));
            line += len + (end ? 1 : 0);
        }
        enum framing_verdict v = framing_verdict(&f, c->http_1_0, &why);
        cr_expect_eq(v, c->want, "\"%s\"%s: verdict %d, want %d (%s)", c->fields, c->http_1_0 ? " in 1.0" : "",
                     v, c->want, why);
        cr_expect(why != NULL && (v == FRAMING_OK) == (why[0] == '\0'), "\"%s\": a refusal says why", c->fields);
        if (v == FRAMING_OK) {
            cr_expect_eq(framing_has_body(&f), c->body, "\"%s\": has_body", c->fields);
            if (f.has_length)
                cr_expect_eq(f.length, c->length, "\"%s\": length %llu", c->fields, (unsigned long long)f.length);
        }
    }
}

Test(framing, check_maps_verdicts_to_problems)
{
    struct framing f;
    struct problem p = {0};

    framing_init(&f);
    framing_field(&f, "Transfer-Encoding", 17, "gzip", 4);
    cr_assert_not(framing_check(&f, false, &p));
    cr_assert_eq(p.err, ET_ERR_NOT_IMPLEMENTED);
    cr_assert_null(p.slug);

    framing_init(&f);
    memset(&p, 0, sizeof p);
    framing_field(&f, "Content-Length", 14, "1", 1);
    framing_field(&f, "Content-Length", 14, "2", 1);
    cr_assert_not(framing_check(&f, false, &p));
    cr_assert_eq(p.err, ET_ERR_BAD_HEADER);
    cr_assert_str_eq(p.slug, "invalid-framing");
    cr_assert(strstr(p.detail, "Content-Length"));

    framing_init(&f);
    memset(&p, 0, sizeof p);
    framing_field(&f, "Content-Length", 14, "2", 1);
    cr_assert(framing_check(&f, false, &p));
    cr_assert_eq(p.err, ET_OK);
}

/* Values are taken by length: no terminating NUL is read, an embedded one is a byte. */
Test(framing, values_are_bounded_by_their_length)
{
    struct framing f;
    const char *why;

    framing_init(&f);
    framing_field(&f, "Content-Length", 14, "12345", 2);
    cr_assert_eq(framing_verdict(&f, false, &why), FRAMING_OK);
    cr_assert_eq(f.length, 12);

    framing_init(&f);
    framing_field(&f, "Content-Length", 14, "1\0" "2", 3);
    cr_assert_eq(framing_verdict(&f, false, &why), FRAMING_BAD);

    framing_init(&f);
    framing_field(&f, "Transfer-Encoding", 17, "chunked\0gzip", 12);
    cr_assert_eq(framing_verdict(&f, false, &why), FRAMING_BAD);
}
