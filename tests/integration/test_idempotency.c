/* test_idempotency.c: the Idempotency-Key contract on the two money-moving
 * endpoints, POST /v1/registrations and POST /v1/organizations/{id}/credits.
 *
 * A client that lost an answer retries with the same key; it must get the
 * original status and byte-identical body and no second effect -- including
 * when the original answer was a refusal (a replayed 402 stays 402 even after
 * the organization was topped up). The same key with another body is a client
 * bug and is refused (422) without effect. Without a key, two identical
 * top-ups are two top-ups.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

TestSuite(idempotency, .init = it_setup);

static char *registration_body(const char *ses, const char *user, const char *org)
{
    return fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
               "\"ticket_type\":\"standard\",\"price_paid\":\"49.90\"}",
               ses, user, org);
}

Test(idempotency, registration_retry_replays_the_original_once)
{
    char *org = make_org(5);
    char *evt = make_event(org);
    char *ses = make_session(evt, it_id("spk"));
    char *user = it_id("user");
    char *key = it_id("idem");
    char *body = registration_body(ses, user, org);

    struct http_resp *a = http_post_json_idem("/v1/registrations", body, key);
    EXPECT_JSON(a, 201);
    struct http_resp *b = http_post_json_idem("/v1/registrations", body, key);
    EXPECT_JSON(b, 201);
    cr_assert_str_eq(b->body, a->body, "the replay's body differs from the original");
    cr_assert_eq(get_balance(org), 4, "the retry consumed a second credit");
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE organization_id = $1", PG_PARAMS(org)), 1);
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1 AND kind = 'registration'",
                       PG_PARAMS(org)),
                 1);

    /* The same key with another body: refused, and nothing happens. */
    char *other_user = it_id("user");
    char *other = registration_body(ses, other_user, org);
    struct http_resp *c = http_post_json_idem("/v1/registrations", other, key);
    EXPECT_PROBLEM(c, 422, "idempotency-key-reused");
    cr_assert_eq(get_balance(org), 4);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE user_id = $1", PG_PARAMS(other_user)), 0);

    /* A fresh key for the same (session, user) is a new request: 409. */
    struct http_resp *d = http_post_json_idem("/v1/registrations", body, it_id("idem"));
    EXPECT_PROBLEM(d, 409, "already-registered");
    cr_assert_eq(get_balance(org), 4);
}

Test(idempotency, replayed_402_stays_402_after_a_top_up)
{
    char *org = make_org(0);
    char *evt = make_event(org);
    char *ses = make_session(evt, it_id("spk"));
    char *user = it_id("user");
    char *key = it_id("idem");
    char *body = registration_body(ses, user, org);

    struct http_resp *a = http_post_json_idem("/v1/registrations", body, key);
    EXPECT_PROBLEM(a, 402, "insufficient-credits");

    char *path = fmt("/v1/organizations/%s/credits", org);
    struct http_resp *t = http_post_json(path, "{\"amount\":1}");
    EXPECT_JSON(t, 200);
    EXPECT_INT(resp_json(t), "balance", 1);

    struct http_resp *b = http_post_json_idem("/v1/registrations", body, key);
    EXPECT_PROBLEM(b, 402, "insufficient-credits");
    cr_assert_str_eq(b->body, a->body, "the replayed 402 differs from the original");
    cr_assert_eq(get_balance(org), 1, "the replayed request consumed the new credit");
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE organization_id = $1", PG_PARAMS(org)), 0);
}

Test(idempotency, top_up_retry_replays_the_original_once)
{
    char *org = make_org(2);
    char *path = fmt("/v1/organizations/%s/credits", org);
    char *key = it_id("idem");
    const char *body = "{\"amount\":10,\"reason\":\"pack of ten\"}";

    struct http_resp *a = http_post_json_idem(path, body, key);
    EXPECT_JSON(a, 200);
    EXPECT_STR(resp_json(a), "organization_id", org);
    EXPECT_INT(resp_json(a), "balance", 12);
    struct http_resp *b = http_post_json_idem(path, body, key);
    EXPECT_JSON(b, 200);
    cr_assert_str_eq(b->body, a->body, "the replay's body differs from the original");
    cr_assert_eq(get_balance(org), 12, "the retry topped up twice");
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1 AND kind = 'top_up'",
                       PG_PARAMS(org)),
                 1);

    struct http_resp *c = http_post_json_idem(path, "{\"amount\":11,\"reason\":\"pack of ten\"}", key);
    EXPECT_PROBLEM(c, 422, "idempotency-key-reused");
    cr_assert_eq(get_balance(org), 12);
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1 AND kind = 'top_up'",
                       PG_PARAMS(org)),
                 1);
}

Test(idempotency, without_a_key_two_top_ups_are_two)
{
    char *org = make_org(0);
    char *path = fmt("/v1/organizations/%s/credits", org);
    struct http_resp *a = http_post_json(path, "{\"amount\":3}");
    EXPECT_JSON(a, 200);
    EXPECT_INT(resp_json(a), "balance", 3);
    struct http_resp *b = http_post_json(path, "{\"amount\":3}");
    EXPECT_JSON(b, 200);
    EXPECT_INT(resp_json(b), "balance", 6);
    cr_assert_eq(get_balance(org), 6);
}

Test(idempotency, keys_are_kept_per_endpoint_or_refused_never_mixed)
{
    /* One key used on two different endpoints must never replay the other
     * endpoint's answer: either it is a separate request (scoped keys) or it
     * is refused as a reuse. */
    char *org = make_org(3);
    char *evt = make_event(org);
    char *ses = make_session(evt, it_id("spk"));
    char *key = it_id("idem");
    char *path = fmt("/v1/organizations/%s/credits", org);

    struct http_resp *t = http_post_json_idem(path, "{\"amount\":1}", key);
    EXPECT_JSON(t, 200);
    EXPECT_INT(resp_json(t), "balance", 4);
    char *body = registration_body(ses, it_id("user"), org);
    struct http_resp *r = http_post_json_idem("/v1/registrations", body, key);
    if (r->status == 201) {
        EXPECT_JSON(r, 201);
        EXPECT_INT(resp_json(r), "credits_remaining", 3);
        cr_assert_eq(get_balance(org), 3);
    } else {
        EXPECT_PROBLEM(r, 422, "idempotency-key-reused");
        cr_assert_eq(get_balance(org), 4);
    }
}

/* Keys are promised for at least 24 h and then deleted by the background
 * worker (its first pass purges), so the table does not grow forever. */
Test(idempotency, records_past_their_retention_are_purged)
{
    char *old_key = it_id("old"), *fresh_key = it_id("fresh");
    const char *insert =
        "INSERT INTO idempotency_keys (scope, key, request, status, response_body, created_at)"
        " VALUES ('admin POST /v1/test', $1, '{}', 200, '{}', now() - make_interval(hours => $2::int))";
    pg_exec(insert, PG_PARAMS(old_key, "26"));
    pg_exec(insert, PG_PARAMS(fresh_key, "23"));

    const char *args[] = {NULL};
    char *base = NULL;
    pid_t pid = spawn_service(args, NULL, ET_IT_LOG_DIR "/integration-service-purge.log", &base);
    long long left = 1;
    for (int i = 0; i < 100 && left != 0; i++) {
        left = pg_ll("SELECT count(*) FROM idempotency_keys WHERE key = $1", PG_PARAMS(old_key));
        if (left)
            nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    cr_assert_eq(left, 0, "a 26-hour-old idempotency record was not purged within 5 s");
    cr_assert_eq(pg_ll("SELECT count(*) FROM idempotency_keys WHERE key = $1", PG_PARAMS(fresh_key)), 1,
                 "a 23-hour-old record was purged: keys are promised for 24 h");
    cr_assert_eq(stop_spawned_service(pid), 0);
}
