/* test_exact_amounts.c: numbers that reach money and balances are taken
 * exactly as written (issue #11, point 5). Integers are integer literals,
 * stored to the unit; money keeps its two decimals ("10.1" is 10.10, never
 * 10.09 or 10.1000001). The refusals -- 4.9999999999999999999, 5.0, -0,
 * -1e-15 -- are in test_bad_inputs.c, with the proof that they change nothing.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

TestSuite(exact_amounts, .init = it_setup);

Test(exact_amounts, integers_are_credited_to_the_unit)
{
    char *org = make_org(0);
    char *path = fmt("/v1/organizations/%s/credits", org);
    struct http_resp *r = http_post_json(path, "{\"amount\":1000000000}");

    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "balance", 1000000000LL);
    http_resp_free(r);
    r = http_post_json(path, "{\"amount\":7}");
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "balance", 1000000007LL);
    cr_assert_eq(get_balance(org), 1000000007LL);
    cr_assert_eq(pg_ll("SELECT sum(delta) FROM credit_ledger WHERE organization_id = $1", PG_PARAMS(org)),
                 1000000007LL);
    http_resp_free(r);

    /* An opening balance written as -0 is zero, exactly. */
    char *id = it_id("org");
    r = http_post_json("/v1/organizations", fmt("{\"id\":\"%s\",\"name\":\"n\",\"credits\":-0}", id));
    EXPECT_JSON(r, 201);
    EXPECT_INT(resp_json(r), "credits", 0);
    http_resp_free(r);
}

Test(exact_amounts, money_keeps_its_two_decimals)
{
    static const struct {
        const char *sent;
        const char *stored;
    } cases[] = {
        {"10.1", "10.10"}, {"\"10.1\"", "10.10"}, {"0.29", "0.29"}, {"19.99", "19.99"},
        {"\"007.5\"", "7.50"}, {"99999999.99", "99999999.99"}, {"0", "0.00"}, {"0.00", "0.00"},
    };
    char *org = make_org(20);
    char *ses = make_session(make_event(org), it_id("spk"));

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *user = it_id("att");
        char *body = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                         "\"ticket_type\":\"standard\",\"price_paid\":%s}",
                         ses, user, org, cases[i].sent);
        struct http_resp *r = http_post_json("/v1/registrations", body);
        EXPECT_JSON(r, 201);
        EXPECT_STR(resp_json(r), "price_paid", cases[i].stored);
        cr_assert_str_eq(pg_text("SELECT price_paid::text FROM registrations WHERE session_id = $1 AND user_id = $2",
                                 PG_PARAMS(ses, user)),
                         cases[i].stored, "price_paid %s", cases[i].sent);
        http_resp_free(r);
    }
}
