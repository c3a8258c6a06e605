/* test_idempotency.c: the Idempotency-Key contract on the two money-moving
 * endpoints, POST /v1/registrations and POST /v1/organizations/{id}/credits.
 * A key is scoped to the caller (the organization, or the admin) and the
 * exact operation (method and full path), and "the same body" is the same
 * decoded JSON value (docs/adr/0010-idempotency-key-scope.md).
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

/* ---- the scope: caller and exact operation (issue 11, point 2; ADR 0010) ---- */

static long long top_ups(const char *org)
{
    return pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1 AND kind = 'top_up'",
                 PG_PARAMS(org));
}

static struct http_resp *post_as(const char *path, const char *body, const char *auth, const char *key)
{
    struct http_req rq = {.method = "POST", .path = path, .content_type = "application/json",
                          .body = body, .auth = auth, .idem_key = key};
    return http_do(&rq);
}

/* Today's money loss: one key, two organizations' top-ups. Each is its own
 * operation, so each is credited, each with its own answer. */
Test(idempotency, one_key_tops_up_two_organizations_and_credits_both)
{
    char *a = make_org(0), *b = make_org(5);
    char *key = it_id("idem");
    const char *body = "{\"amount\":10}";

    struct http_resp *ra = http_post_json_idem(fmt("/v1/organizations/%s/credits", a), body, key);
    EXPECT_JSON(ra, 200);
    EXPECT_STR(resp_json(ra), "organization_id", a);
    EXPECT_INT(resp_json(ra), "balance", 10);
    struct http_resp *rb = http_post_json_idem(fmt("/v1/organizations/%s/credits", b), body, key);
    EXPECT_JSON(rb, 200);
    EXPECT_STR(resp_json(rb), "organization_id", b);
    EXPECT_INT(resp_json(rb), "balance", 15);
    cr_assert_eq(get_balance(a), 10);
    cr_assert_eq(get_balance(b), 15, "organization B was not credited");
    cr_assert_eq(top_ups(a), 1);
    cr_assert_eq(top_ups(b), 1);

    /* Each retry replays its own answer, with no second effect. */
    struct http_resp *rb2 = http_post_json_idem(fmt("/v1/organizations/%s/credits", b), body, key);
    cr_assert_str_eq(rb2->body, rb->body);
    struct http_resp *ra2 = http_post_json_idem(fmt("/v1/organizations/%s/credits", a), body, key);
    cr_assert_str_eq(ra2->body, ra->body);
    cr_assert_eq(get_balance(a), 10);
    cr_assert_eq(get_balance(b), 15);
    cr_assert_eq(top_ups(a) + top_ups(b), 2);

    /* An escaped id in the path names the same resource: a replay. */
    char *escaped = fmt("/v1/organizations/%%%02X%s/credits", (unsigned)a[0], a + 1);
    struct http_resp *ra3 = http_post_json_idem(escaped, body, key);
    cr_assert_str_eq(ra3->body, ra->body, "%s was not a replay of /v1/organizations/%s/credits", escaped, a);
    cr_assert_eq(get_balance(a), 10);
}

/* The same key on another route is another request, never a replay nor a
 * "reuse": the registration after a top-up is made for real. */
Test(idempotency, the_same_key_on_another_route_is_a_new_request)
{
    char *org = make_org(3);
    char *evt = make_event(org);
    char *ses = make_session(evt, it_id("spk"));
    char *key = it_id("idem");
    char *path = fmt("/v1/organizations/%s/credits", org);

    struct http_resp *t = http_post_json_idem(path, "{\"amount\":1}", key);
    EXPECT_JSON(t, 200);
    EXPECT_INT(resp_json(t), "balance", 4);
    char *user = it_id("user");
    struct http_resp *r = http_post_json_idem("/v1/registrations", registration_body(ses, user, org), key);
    EXPECT_JSON(r, 201);
    EXPECT_INT(resp_json(r), "credits_remaining", 3);
    cr_assert_eq(get_balance(org), 3);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE user_id = $1", PG_PARAMS(user)), 1);
    cr_assert_eq(top_ups(org), 1);
}

/* alice's key and body, replayed with a body that names bob: never alice's
 * 201. A body naming user_id twice has no single value (400); bob's own body
 * is another request under a used key (422). Nothing changes either way. */
Test(idempotency, alices_key_never_replays_her_201_for_bob)
{
    char *org = make_org(5);
    char *evt = make_event(org);
    char *ses = make_session(evt, it_id("spk"));
    char *alice = it_id("alice"), *bob = it_id("bob");
    char *key = it_id("idem");

    struct http_resp *a = http_post_json_idem("/v1/registrations", registration_body(ses, alice, org), key);
    EXPECT_JSON(a, 201);
    const char *const bodies[] = {
        fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
            "\"ticket_type\":\"standard\",\"price_paid\":\"49.90\",\"user_id\":\"%s\"}",
            ses, bob, org, alice),
        fmt("{\"session_id\":\"%s\",\"user_\\u0069d\":\"%s\",\"organization_id\":\"%s\","
            "\"ticket_type\":\"standard\",\"price_paid\":\"49.90\",\"user_id\":\"%s\"}",
            ses, bob, org, alice),
        registration_body(ses, bob, org),
    };
    const long want[] = {400, 400, 422};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct http_resp *r = http_post_json_idem("/v1/registrations", bodies[i], key);
        if (want[i] == 422)
            EXPECT_PROBLEM(r, 422, "idempotency-key-reused");
        else
            EXPECT_STATUS(r, 400);
        cr_assert(r->content_type && strstr(r->content_type, "application/problem+json"),
                  "%s: not a problem document", bodies[i]);
        cr_assert(strstr(r->body, alice) == NULL, "alice's answer was replayed for %s", bodies[i]);
    }
    cr_assert_eq(get_balance(org), 4);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE user_id = $1", PG_PARAMS(bob)), 0);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE organization_id = $1", PG_PARAMS(org)), 1);
}

/* "The same body" is the same decoded JSON value: member order, whitespace,
 * escapes and the spelling of a number do not make a retry different. */
Test(idempotency, the_same_value_written_differently_is_a_replay)
{
    char *org = make_org(0);
    char *path = fmt("/v1/organizations/%s/credits", org);
    char *key = it_id("idem");

    struct http_resp *a = http_post_json_idem(path, "{\"amount\":7,\"reason\":\"pack A/B\"}", key);
    EXPECT_JSON(a, 200);
    const char *const same[] = {
        "{\"reason\":\"pack A/B\",\"amount\":7}",
        " {\n\t\"amount\" : 7 ,\r\n \"reason\" : \"pack A/B\" } ",
        "{\"\\u0061mount\":7,\"reason\":\"pack \\u0041\\/B\"}",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        struct http_resp *r = http_post_json_idem(path, same[i], key);
        EXPECT_JSON(r, 200);
        cr_assert_str_eq(r->body, a->body, "%s was not replayed", same[i]);
    }
    const char *const other[] = {
        "{\"amount\":7,\"reason\":\"pack a/B\"}",
        "{\"amount\":7}",
        "{\"amount\":8,\"reason\":\"pack A/B\"}",
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        struct http_resp *r = http_post_json_idem(path, other[i], key);
        EXPECT_PROBLEM(r, 422, "idempotency-key-reused");
    }
    cr_assert_eq(get_balance(org), 7);
    cr_assert_eq(top_ups(org), 1);
}

/* The caller is the organization (the contract's word), not the bearer key:
 * a client that rotates its key between a request and its retry still gets
 * the replay. Another organization with the same key is another caller. */
Test(idempotency, an_organizations_keys_share_one_key_space)
{
    char *first = NULL;
    char *org = make_org_key(5, &first);
    char *evt = make_event(org);
    char *ses = make_session(evt, it_id("spk"));
    struct http_resp *k = http_post_json(fmt("/v1/organizations/%s/keys", org), NULL);
    EXPECT_JSON(k, 201);
    char *second = it_strdup(jstr(resp_json(k), "api_key"));
    char *key = it_id("idem");
    char *body = registration_body(ses, it_id("user"), org);

    struct http_resp *a = post_as("/v1/registrations", body, first, key);
    EXPECT_JSON(a, 201);
    struct http_resp *b = post_as("/v1/registrations", body, second, key);
    EXPECT_JSON(b, 201);
    cr_assert_str_eq(b->body, a->body, "the organization's second key did not get the replay");
    cr_assert_eq(get_balance(org), 4);

    char *other_key = NULL;
    char *other = make_org_key(5, &other_key);
    char *oevt = make_event(other);
    char *oses = make_session(oevt, it_id("spk"));
    struct http_resp *c = post_as("/v1/registrations", registration_body(oses, it_id("user"), other),
                                  other_key, key);
    EXPECT_JSON(c, 201);
    cr_assert_eq(get_balance(other), 4);
    cr_assert_eq(get_balance(org), 4);
}

/* A record an older binary wrote (one scope per key for every route) cannot
 * say which operation it answered: the key is refused as reused, never
 * replayed and never run a second time (ADR 0010). */
Test(idempotency, an_older_binarys_record_is_refused_not_replayed)
{
    char *org = make_org(1);
    char *key = it_id("idem");
    pg_exec("INSERT INTO idempotency_keys (scope, key, request, status, response_body)"
            " VALUES ('admin POST /v1', $1, '{\"amount\": 10}', 200, '{}')",
            PG_PARAMS(key));
    struct http_resp *r = http_post_json_idem(fmt("/v1/organizations/%s/credits", org), "{\"amount\":10}", key);
    EXPECT_PROBLEM(r, 422, "idempotency-key-reused");
    cr_assert_eq(get_balance(org), 1);
    cr_assert_eq(top_ups(org), 0);
    cr_assert_eq(pg_ll("SELECT count(*) FROM idempotency_keys WHERE key = $1", PG_PARAMS(key)), 1);
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
