/*
 * test_buf_ids.c - the growable buffer every response is built in (growth, printf, sticky
 * failure, release/free ownership) and resource ids (the id_valid syntax, and id_generate's
 * prefix and UUID v4 shape), which guard every URL path, Redis key and log line.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ids.h"

/* ------------------------------------------------------------------ buf */

Test(buf, starts_empty)
{
    struct buf b = BUF_INIT;

    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
    cr_assert_not(b.failed);
}

Test(buf, appends_and_terminates)
{
    struct buf b = BUF_INIT;

    buf_puts(&b, "ab");
    buf_putc(&b, 'c');
    buf_append(&b, "d\0e", 3);
    cr_assert_eq(b.len, 6);
    cr_assert_eq(memcmp(b.data, "abcd\0e", 7), 0, "bytes and the trailing NUL");
    buf_append(&b, "", 0);
    cr_assert_eq(b.len, 6);
    buf_free(&b);
}

Test(buf, grows_and_keeps_content)
{
    struct buf b = BUF_INIT;
    char want[10001];

    for (int i = 0; i < 10000; i++) {
        char c = (char)('a' + i % 26);
        buf_putc(&b, c);
        want[i] = c;
        cr_assert_gt(b.cap, b.len, "room for the NUL at len %zu", b.len);
    }
    want[10000] = '\0';
    cr_assert_not(b.failed);
    cr_assert_eq(b.len, 10000);
    cr_assert_str_eq(b.data, want);
    buf_free(&b);
}

Test(buf, single_large_append)
{
    struct buf b = BUF_INIT;
    char *big = malloc(100000);

    cr_assert_not_null(big);
    memset(big, 'x', 100000);
    buf_puts(&b, "<");
    buf_append(&b, big, 100000);
    buf_puts(&b, ">");
    cr_assert_eq(b.len, 100002);
    cr_assert_eq(b.data[0], '<');
    cr_assert_eq(b.data[100000], 'x');
    cr_assert_eq(b.data[100001], '>');
    cr_assert_eq(b.data[100002], '\0');
    buf_free(&b);
    free(big);
}

Test(buf, printf_formats_and_appends)
{
    struct buf b = BUF_INIT;
    char big[600];

    buf_puts(&b, "n=");
    buf_printf(&b, "%d,%s,%lld,%.2f", 42, "x", -9223372036854775807LL - 1, 1.5);
    cr_assert_str_eq(b.data, "n=42,x,-9223372036854775808,1.50");
    cr_assert_eq(b.len, strlen("n=42,x,-9223372036854775808,1.50"));

    /* Longer than the initial capacity. */
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    buf_printf(&b, "[%s]", big);
    cr_assert_eq(b.len, 32 + 601);
    cr_assert_eq(b.data[32], '[');
    cr_assert_eq(b.data[32 + 600], ']');
    cr_assert_eq(b.data[b.len], '\0');
    buf_printf(&b, "%s", "");
    cr_assert_eq(b.len, 32 + 601);
    buf_free(&b);
}

Test(buf, release_hands_over_and_resets)
{
    struct buf b = BUF_INIT;
    size_t len = 99;
    char *s;

    buf_puts(&b, "hello");
    s = buf_release(&b, &len);
    cr_assert_str_eq(s, "hello");
    cr_assert_eq(len, 5);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
    free(s);

    /* The buffer is reusable after a release. */
    buf_puts(&b, "again");
    s = buf_release(&b, NULL);
    cr_assert_str_eq(s, "again");
    free(s);
}

Test(buf, release_of_empty_buffer_is_empty_string)
{
    struct buf b = BUF_INIT;
    size_t len = 99;
    char *s = buf_release(&b, &len);

    cr_assert_not_null(s);
    cr_assert_str_eq(s, "");
    cr_assert_eq(len, 0);
    free(s);
}

Test(buf, free_is_safe_repeatedly)
{
    struct buf b = BUF_INIT;
    char *s;

    buf_free(&b);
    buf_puts(&b, "x");
    buf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
    buf_free(&b);
    buf_puts(&b, "y");
    s = buf_release(&b, NULL);
    buf_free(&b);   /* after a release: nothing to free */
    cr_assert_str_eq(s, "y");
    free(s);
}

Test(buf, failure_is_sticky)
{
    struct buf b = BUF_INIT;
    size_t len = 99;

    buf_puts(&b, "ok");
    buf_append(&b, "x", SIZE_MAX);   /* cannot fit: fails before allocating or copying */
    cr_assert(b.failed);
    cr_assert_eq(b.len, 2);
    buf_puts(&b, "more");
    buf_putc(&b, 'c');
    buf_printf(&b, "%d", 5);
    cr_assert(b.failed);
    cr_assert_eq(b.len, 2, "appends after a failure are no-ops");
    cr_assert_str_eq(b.data, "ok");
    cr_assert_null(buf_release(&b, &len));
    cr_assert_eq(len, 99, "len untouched on failure");
    cr_assert_null(b.data);
    cr_assert_not(b.failed, "release of a failed buffer resets it");
    buf_puts(&b, "fresh");
    cr_assert_str_eq(b.data, "fresh");
    buf_free(&b);
}

Test(buf, free_clears_failure)
{
    struct buf b = BUF_INIT;

    buf_append(&b, "x", SIZE_MAX);   /* overflow guard: no allocation is tried */
    cr_assert(b.failed);
    buf_free(&b);
    cr_assert_not(b.failed);
    buf_putc(&b, 'z');
    cr_assert_str_eq(b.data, "z");
    buf_free(&b);
}

/* ------------------------------------------------------------------ id_valid */

struct id_case {
    char s[140];
    bool ok;
};

ParameterizedTestParameters(id_valid, table)
{
    static struct id_case cases[] = {
        {"a", true},
        {"Z", true},
        {"0", true},
        {"org_1", true},
        {"evt-2026.main:a", true},
        {"_.-:", true},
        {"550e8400-e29b-41d4-a716-446655440000", true},
        {"", false},
        {"a b", false},
        {"a/b", false},
        {"a%20b", false},
        {"a?b", false},
        {"a#b", false},
        {"a+b", false},
        {"a@b", false},
        {"a\tb", false},
        {"a\nb", false},
        {"caf\xc3\xa9", false},
        {"a*", false},
        {"{x}", false},
        {"a~b", false},
    };
    return cr_make_param_array(struct id_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct id_case *c, id_valid, table)
{
    cr_assert_eq(id_valid(c->s, strlen(c->s)), c->ok, "id_valid(\"%s\") should be %d", c->s,
                 c->ok);
}

Test(id_valid, length_bounds)
{
    char s[200];

    memset(s, 'a', sizeof s);
    cr_assert(id_valid(s, 1));
    cr_assert(id_valid(s, ID_MAX));
    cr_assert_not(id_valid(s, ID_MAX + 1));
    cr_assert_not(id_valid(s, 0));
}

Test(id_valid, uses_len_not_nul)
{
    cr_assert(id_valid("ab cd", 2), "only the first len bytes count");
    cr_assert_not(id_valid("a\0b", 3), "an embedded NUL is not an id character");
}

/* ------------------------------------------------------------------ id_generate */

static void assert_uuid_v4(const char *u)
{
    cr_assert_eq(strlen(u), 36, "\"%s\"", u);
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            cr_assert_eq(u[i], '-', "\"%s\" position %zu", u, i);
        else
            cr_assert((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f'),
                      "\"%s\" position %zu is not lowercase hex", u, i);
    }
    cr_assert_eq(u[14], '4', "version nibble of %s", u);
    cr_assert(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b',
              "variant nibble of %s", u);
}

Test(id_generate, bare_uuid_v4)
{
    char id[ID_MAX + 1];

    id_generate(id, NULL);
    assert_uuid_v4(id);
    cr_assert(id_valid(id, strlen(id)));
}

Test(id_generate, prefixed)
{
    char id[ID_MAX + 1];

    id_generate(id, "org");
    cr_assert_eq(strncmp(id, "org_", 4), 0, "%s", id);
    assert_uuid_v4(id + 4);
    cr_assert(id_valid(id, strlen(id)));
}

static int cmp_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

Test(id_generate, shape_holds_and_unique_over_1000)
{
    static char ids[1000][ID_MAX + 1];
    unsigned variants[4] = {0};

    for (int i = 0; i < 1000; i++) {
        id_generate(ids[i], "r");
        cr_assert_eq(strncmp(ids[i], "r_", 2), 0);
        assert_uuid_v4(ids[i] + 2);
        variants[ids[i][2 + 19] == 'a' ? 2 : ids[i][2 + 19] == 'b' ? 3 : ids[i][2 + 19] - '8']++;
    }
    qsort(ids, 1000, sizeof ids[0], cmp_ids);
    for (int i = 1; i < 1000; i++)
        cr_assert_str_neq(ids[i - 1], ids[i], "duplicate id %s", ids[i]);
    /* The two random variant bits are not stuck: each of 8,9,a,b shows up. */
    for (int v = 0; v < 4; v++)
        cr_assert_gt(variants[v], 0, "variant %d never generated", v);
}
