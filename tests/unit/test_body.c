/*
 * test_body.c - the request body budget (http/body.c): reservations never
 * exceed the limit, a buffer never holds more than it reserved, and every
 * refusal or completion gives the reservation back.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "http/body.h"

static char data[8192];

static size_t reserved(struct body_budget *b)
{
    return atomic_load(&b->reserved);
}

static struct framing length_of(const char *v)
{
    struct framing f;
    framing_init(&f);
    framing_field(&f, "Content-Length", 14, v, strlen(v));
    return f;
}

Test(body, a_content_length_body_is_reserved_then_allocated_once_at_its_size)
{
    struct body_budget b;
    struct body_intake in = {0};
    struct problem p = {0};
    struct framing f = length_of("3000");

    body_budget_init(&b, 10000);
    cr_assert(body_admit(&in, &b, &f, 4096, &p));
    cr_assert_eq(reserved(&b), 3001);
    cr_assert_null(in.buf.data, "memory before the first byte");
    for (size_t sent = 0; sent < 3000; sent += 1000) {
        body_receive(&in, &b, data, 1000, 4096, &p);
        cr_assert_eq(p.err, ET_OK);
        cr_assert_eq(in.buf.cap, 3001, "capacity %zu: no doubling past the declared size", in.buf.cap);
    }
    cr_assert_eq(in.buf.len, 3000);
    cr_assert_eq(reserved(&b), 3001);
    body_intake_free(&in, &b);
    cr_assert_eq(reserved(&b), 0);
    cr_assert_null(in.buf.data);
}

Test(body, over_the_limit_is_413_and_over_the_budget_503)
{
    struct body_budget b;
    struct body_intake first = {0}, second = {0};
    struct problem p = {0};
    struct framing big = length_of("5000"), fits = length_of("6000"), rest = length_of("3998");

    body_budget_init(&b, 10000);
    cr_assert_not(body_admit(&first, &b, &big, 4096, &p));
    cr_assert_eq(p.err, ET_ERR_TOO_LARGE);
    cr_assert_eq(reserved(&b), 0);

    memset(&p, 0, sizeof p);
    cr_assert(body_admit(&first, &b, &fits, 8192, &p));
    cr_assert_eq(reserved(&b), 6001);
    cr_assert_not(body_admit(&second, &b, &fits, 8192, &p));
    cr_assert_eq(p.err, ET_ERR_UNAVAILABLE);
    cr_assert_str_eq(p.slug, "server-busy");
    cr_assert_eq(reserved(&b), 6001, "a refused reservation holds nothing");
    cr_assert_eq(second.reserved, 0);

    memset(&p, 0, sizeof p);
    cr_assert(body_admit(&second, &b, &rest, 8192, &p), "exactly the rest of the budget fits");
    cr_assert_eq(reserved(&b), 10000);
    body_intake_free(&first, &b);
    body_intake_free(&second, &b);
    cr_assert_eq(reserved(&b), 0);
}

Test(body, a_chunked_body_reserves_as_it_grows_and_is_freed_when_refused)
{
    struct body_budget b;
    struct body_intake in = {0};
    struct problem p = {0};

    body_budget_init(&b, 5000);
    body_receive(&in, &b, data, 100, 4096, &p);
    cr_assert_eq(p.err, ET_OK);
    cr_assert_eq(in.buf.cap, reserved(&b), "capacity == reservation");
    for (int i = 0; i < 30; i++) {
        body_receive(&in, &b, data, 100, 4096, &p);
        cr_assert_eq(p.err, ET_OK);
        cr_assert_eq(in.buf.cap, reserved(&b), "capacity == reservation");
        cr_assert_leq(in.buf.cap, 4097, "never past max + 1");
    }
    cr_assert_eq(in.buf.len, 3100);
    /* Past max: 413, and the memory and reservation are gone at once. */
    body_receive(&in, &b, data, 1000, 4096, &p);
    cr_assert_eq(p.err, ET_ERR_TOO_LARGE);
    cr_assert_eq(reserved(&b), 0);
    cr_assert_null(in.buf.data);
    body_intake_free(&in, &b);
    cr_assert_eq(reserved(&b), 0);
}

Test(body, a_chunked_body_over_the_budget_is_503)
{
    struct body_budget b;
    struct body_intake holder = {0}, in = {0};
    struct problem p = {0};
    struct framing f = length_of("3000");

    body_budget_init(&b, 4000);
    cr_assert(body_admit(&holder, &b, &f, 4096, &p));
    body_receive(&in, &b, data, 500, 4096, &p);
    cr_assert_eq(p.err, ET_OK);
    body_receive(&in, &b, data, 1000, 4096, &p);
    cr_assert_eq(p.err, ET_ERR_UNAVAILABLE);
    cr_assert_eq(reserved(&b), 3001, "only the holder's reservation remains");
    body_intake_free(&in, &b);
    body_intake_free(&holder, &b);
    cr_assert_eq(reserved(&b), 0);
}
