/* test_registrations.c: constraint A beyond the empty organization -- the
 * shape of a successful registration, the one credit it consumes and the
 * ledger row that explains it, the duplicate (409, no credit consumed), the
 * organization that does not run the session's event (422, nothing saved),
 * and reading a registration back.
 *
 * Every balance assertion is made twice: through the API and against
 * balance (sum of credit_buckets) == sum(credit_ledger.delta), the schema's invariant.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

TestSuite(registrations, .init = it_setup);

static void expect_ledger_consistent(const char *org)
{
    cr_assert_eq(pg_ll("SELECT b.balance - COALESCE((SELECT sum(delta) FROM credit_ledger l "
                       "WHERE l.organization_id = b.organization_id), 0)"
                       " FROM organization_balances b WHERE b.organization_id = $1",
                       PG_PARAMS(org)),
                 0, "the balance differs from the sum of its credit_ledger deltas for %s", org);
}

static bool is_utc_timestamp(const char *s)
{
    /* 2026-11-21T23:16:54[.123456]Z */
    if (!s || strlen(s) < 20)
        return false;
    return s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' && s[strlen(s) - 1] == 'Z';
}

Test(registrations, created_consumes_one_credit_and_writes_one_ledger_row)
{
    char *org = make_org(3);
    char *evt = make_event(org);
    char *ses = make_session(evt, it_id("spk"));
    char *user = it_id("user");

    char *body = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                     "\"ticket_type\":\"vip\",\"price_paid\":\"12.5\"}",
                     ses, user, org);
    struct http_resp *r = http_post_json("/v1/registrations", body);
    EXPECT_JSON(r, 201);
    cJSON *j = resp_json(r);
    const char *id = jstr(j, "id");
    cr_assert(id && strncmp(id, "reg_", 4) == 0, "expected a generated id reg_..., got %s", r->body);
    EXPECT_STR(j, "session_id", ses);
    EXPECT_STR(j, "user_id", user);
    EXPECT_STR(j, "organization_id", org);
    EXPECT_STR(j, "ticket_type", "vip");
    EXPECT_STR(j, "price_paid", "12.50");
    EXPECT_INT(j, "credits_remaining", 2);
    cr_assert(is_utc_timestamp(jstr(j, "registered_at")), "registered_at is not RFC 3339 UTC: %s", r->body);
    char *loc = fmt("/v1/registrations/%s", id);
    cr_assert(r->location && strlen(r->location) >= strlen(loc) &&
                  strcmp(r->location + strlen(r->location) - strlen(loc), loc) == 0,
              "expected Location ending in %s, got %s", loc, r->location ? r->location : "(none)");

    cr_assert_eq(get_balance(org), 2);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE id = $1 AND session_id = $2 AND user_id = $3 "
                       "AND organization_id = $4 AND price_paid = 12.50",
                       PG_PARAMS(id, ses, user, org)),
                 1);
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1 AND kind = 'registration' "
                       "AND delta = -1 AND registration_id = $2",
                       PG_PARAMS(org, id)),
                 1, "no ledger row explains the consumed credit");
    expect_ledger_consistent(org);

    /* Read back: same shape, credits_remaining is the current balance. */
    char *path = fmt("/v1/registrations/%s", id);
    struct http_resp *g = http_get(path);
    EXPECT_JSON(g, 200);
    cJSON *gj = resp_json(g);
    EXPECT_STR(gj, "id", id);
    EXPECT_STR(gj, "session_id", ses);
    EXPECT_STR(gj, "user_id", user);
    EXPECT_STR(gj, "organization_id", org);
    EXPECT_STR(gj, "ticket_type", "vip");
    EXPECT_STR(gj, "price_paid", "12.50");
    EXPECT_STR(gj, "registered_at", jstr(j, "registered_at"));
    EXPECT_INT(gj, "credits_remaining", 2);
}

Test(registrations, price_forms_are_normalised_to_two_decimals)
{
    char *org = make_org(3);
    char *evt = make_event(org);
    char *ses = make_session(evt, it_id("spk"));
    const char *sent[] = {"0", "99.0", "\"1234.5\""};
    const char *want[] = {"0.00", "99.00", "1234.50"};
    for (size_t i = 0; i < 3; i++) {
        char *body = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                         "\"ticket_type\":\"standard\",\"price_paid\":%s}",
                         ses, it_id("user"), org, sent[i]);
        struct http_resp *r = http_post_json("/v1/registrations", body);
        EXPECT_JSON(r, 201);
        EXPECT_STR(resp_json(r), "price_paid", want[i]);
        EXPECT_INT(resp_json(r), "credits_remaining", 2 - (long long)i);
    }
    cr_assert_eq(get_balance(org), 0);
    expect_ledger_consistent(org);
}

Test(registrations, duplicate_is_409_and_consumes_no_credit)
{
    char *org = make_org(5);
    char *evt = make_event(org);
    char *ses = make_session(evt, it_id("spk"));
    char *user = it_id("user");

    struct http_resp *r = post_registration(ses, user, org, NULL);
    EXPECT_JSON(r, 201);
    cr_assert_eq(get_balance(org), 4);

    r = post_registration(ses, user, org, NULL);
    EXPECT_PROBLEM(r, 409, "already-registered");
    cr_assert_eq(get_balance(org), 4, "a duplicate registration consumed a credit");
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE session_id = $1 AND user_id = $2",
                       PG_PARAMS(ses, user)),
                 1);
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1 AND kind = 'registration'",
                       PG_PARAMS(org)),
                 1);
    expect_ledger_consistent(org);

    /* The same user may register for another session. */
    char *ses2 = make_session(evt, it_id("spk"));
    r = post_registration(ses2, user, org, NULL);
    EXPECT_JSON(r, 201);
    cr_assert_eq(get_balance(org), 3);
}

Test(registrations, organization_not_running_the_event_is_422_and_saves_nothing)
{
    char *owner = make_org(5);
    char *evt = make_event(owner);
    char *ses = make_session(evt, it_id("spk"));
    char *other = make_org(5);
    char *user = it_id("user");

    struct http_resp *r = post_registration(ses, user, other, NULL);
    EXPECT_PROBLEM(r, 422, "validation-failed");
    cr_assert_eq(get_balance(other), 5);
    cr_assert_eq(get_balance(owner), 5);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE session_id = $1", PG_PARAMS(ses)), 0);
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id IN ($1, $2) "
                       "AND kind = 'registration'",
                       PG_PARAMS(owner, other)),
                 0);
}

Test(registrations, unknown_session_or_organization_is_422_naming_the_field)
{
    char *org = make_org(5);
    char *evt = make_event(org);
    char *ses = make_session(evt, it_id("spk"));

    struct http_resp *r = post_registration(it_id("ses_nope"), it_id("user"), org, NULL);
    EXPECT_PROBLEM_FIELD(r, 422, "validation-failed", "session_id");
    r = post_registration(ses, it_id("user"), it_id("org_nope"), NULL);
    EXPECT_PROBLEM_FIELD(r, 422, "validation-failed", "organization_id");
    cr_assert_eq(get_balance(org), 5);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE organization_id = $1", PG_PARAMS(org)), 0);
}

Test(registrations, unknown_registration_is_404)
{
    char *path = fmt("/v1/registrations/%s", it_id("reg_nope"));
    struct http_resp *r = http_get(path);
    EXPECT_PROBLEM(r, 404, "not-found");
}

Test(registrations, last_credit_then_402)
{
    char *org = make_org(1);
    char *evt = make_event(org);
    char *ses = make_session(evt, it_id("spk"));

    struct http_resp *r = post_registration(ses, it_id("user"), org, NULL);
    EXPECT_JSON(r, 201);
    EXPECT_INT(resp_json(r), "credits_remaining", 0);
    char *late = it_id("user");
    r = post_registration(ses, late, org, NULL);
    EXPECT_PROBLEM(r, 402, "insufficient-credits");
    cr_assert_eq(get_balance(org), 0);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE user_id = $1", PG_PARAMS(late)), 0);
    expect_ledger_consistent(org);
}
