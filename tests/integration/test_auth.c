/* test_auth.c: authentication and tenant isolation (api.md, "Authentication
 * and tenants").
 *
 * Every /v1 request except the leaderboard reads needs a bearer key: missing
 * or unknown -> 401 with WWW-Authenticate: Bearer. The admin key may do
 * everything; an organization key acts only inside its organization --
 * anything of another organization answers as if it did not exist (404, or
 * 422 for a reference in a body) and changes nothing; top-ups and creating
 * organizations are admin-only (403). Keys can be issued and revoked.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

TestSuite(auth, .init = it_setup);

#define EXPECT_401(r) do {                                                                         \
        EXPECT_STATUS((r), 401);                                                                   \
        cr_assert((r)->www_authenticate && strncmp((r)->www_authenticate, "Bearer", 6) == 0,      \
                  "%s: 401 without WWW-Authenticate: Bearer (got %s)", (r)->what,                 \
                  (r)->www_authenticate ? (r)->www_authenticate : "none");                        \
        cr_assert((r)->content_type && strstr((r)->content_type, "application/problem+json"),     \
                  "%s: 401 is not problem+json", (r)->what);                                       \
    } while (0)

Test(auth, missing_or_unknown_key_is_401_and_changes_nothing)
{
    char *org = make_org(3);
    char *path = fmt("/v1/organizations/%s", org);
    struct http_resp *r = http_get_as(path, "");
    EXPECT_401(r);
    r = http_get_as(path, "not-a-key");
    EXPECT_401(r);
    char *credits = fmt("/v1/organizations/%s/credits", org);
    r = http_post_json_as(credits, "{\"amount\":5}", "");
    EXPECT_401(r);
    r = http_post_json_as(credits, "{\"amount\":5}", "it-wrong-key");
    EXPECT_401(r);
    cr_assert_eq(get_balance(org), 3);
    char *id = it_id("org");
    char *body = fmt("{\"id\":\"%s\",\"name\":\"x\"}", id);
    r = http_post_json_as("/v1/organizations", body, "");
    EXPECT_401(r);
    cr_assert_eq(pg_ll("SELECT count(*) FROM organizations WHERE id = $1", PG_PARAMS(id)), 0);
}

Test(auth, new_organization_carries_its_first_key_once)
{
    char *id = it_id("org");
    char *body = fmt("{\"id\":\"%s\",\"name\":\"Keyed\"}", id);
    struct http_resp *r = http_post_json("/v1/organizations", body);
    EXPECT_JSON(r, 201);
    const char *key = jstr(resp_json(r), "api_key");
    cr_assert(key && *key, "the organization's first api_key is missing: %s", r->body);
    char *path = fmt("/v1/organizations/%s", id);
    struct http_resp *g = http_get_as(path, key);
    EXPECT_JSON(g, 200);
    cr_assert_null(jget(resp_json(g), "api_key"), "GET shows an api_key: %s", g->body);
}

Test(auth, leaderboard_reads_and_ops_are_public)
{
    char *org = make_org(0);
    char *evt = make_event(org);
    EXPECT_BOARD(evt, "", NULL, 0); /* check_board sends no Authorization */
    struct http_resp *r = http_get_as("/healthz", "");
    EXPECT_STATUS(r, 200);
}

Test(auth, organization_key_sees_only_its_organization)
{
    char *key_a = NULL, *key_b = NULL;
    char *a = make_org_key(5, &key_a);
    char *b = make_org_key(5, &key_b);
    char *evt_b = make_event(b);
    char *ses_b = make_session(evt_b, it_id("spk"));

    char *pa = fmt("/v1/organizations/%s", a), *pb = fmt("/v1/organizations/%s", b);
    struct http_resp *r = http_get_as(pa, key_a);
    EXPECT_JSON(r, 200);
    r = http_get_as(pb, key_a);
    EXPECT_PROBLEM(r, 404, "not-found");
    char *cb = fmt("/v1/organizations/%s/credits", b);
    r = http_get_as(cb, key_a);
    EXPECT_PROBLEM(r, 404, "not-found");
    char *eb = fmt("/v1/events/%s", evt_b), *sb = fmt("/v1/sessions/%s", ses_b);
    r = http_get_as(eb, key_a);
    EXPECT_PROBLEM(r, 404, "not-found");
    r = http_get_as(sb, key_a);
    EXPECT_PROBLEM(r, 404, "not-found");

    /* References into another organization are unknown references. */
    char *body = fmt("{\"id\":\"%s\",\"event_id\":\"%s\",\"title\":\"t\",\"speaker_id\":\"s\"}", it_id("ses"),
                     evt_b);
    r = http_post_json_as("/v1/sessions", body, key_a);
    EXPECT_PROBLEM(r, 422, "validation-failed");
    body = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\",\"ticket_type\":\"standard\","
               "\"price_paid\":1}",
               ses_b, it_id("user"), b);
    r = http_post_json_as("/v1/registrations", body, key_a);
    cr_assert(r->status == 404 || r->status == 422, "%s: expected 404 or 422 for another organization's "
                                                     "registration, got %ld %s", r->what, r->status, r->body);
    cr_assert_eq(get_balance(b), 5);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE session_id = $1", PG_PARAMS(ses_b)), 0);

    /* Its own registrations work. */
    r = http_post_json_as("/v1/registrations", body, key_b);
    EXPECT_JSON(r, 201);
    const char *reg = jstr(resp_json(r), "id");
    char *pr = fmt("/v1/registrations/%s", reg);
    r = http_get_as(pr, key_a);
    EXPECT_PROBLEM(r, 404, "not-found");
    r = http_get_as(pr, key_b);
    EXPECT_JSON(r, 200);
}

Test(auth, top_ups_and_new_organizations_are_admin_only)
{
    char *key = NULL;
    char *org = make_org_key(2, &key);
    char *path = fmt("/v1/organizations/%s/credits", org);
    struct http_resp *r = http_post_json_as(path, "{\"amount\":100}", key);
    EXPECT_STATUS(r, 403);
    cr_assert_eq(get_balance(org), 2);
    char *id = it_id("org");
    char *body = fmt("{\"id\":\"%s\",\"name\":\"x\"}", id);
    r = http_post_json_as("/v1/organizations", body, key);
    EXPECT_STATUS(r, 403);
    cr_assert_eq(pg_ll("SELECT count(*) FROM organizations WHERE id = $1", PG_PARAMS(id)), 0);
    /* Reading its own balance is fine. */
    char *bal = fmt("/v1/organizations/%s/credits", org);
    r = http_get_as(bal, key);
    EXPECT_JSON(r, 200);
}

Test(auth, session_view_with_an_org_key_moves_only_its_own_sessions)
{
    char *key_a = NULL;
    char *a = make_org_key(0, &key_a);
    char *b = make_org(0);
    char *evt_b = make_event(b);
    char *spk = it_id("spk");
    char *ses_b = make_session(evt_b, spk);
    char *body = fmt("{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"%s\","
                     "\"payload\":{\"session_id\":\"%s\"}}",
                     it_id("ev"), it_id("att"), ses_b);
    struct http_resp *r = http_post_json_as("/v1/analytics/events", body, key_a);
    EXPECT_JSON(r, 201);
    EXPECT_BOARD(evt_b, "", NULL, 0);
    const char *id = jstr(resp_json(r), "event_id");
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1 AND organization_id = $2 "
                       "AND leaderboard_event_id IS NULL",
                       PG_PARAMS(id, a)),
                 1, "the event does not belong to the sending organization, or moved another's board");
}

Test(auth, keys_can_be_issued_and_revoked)
{
    char *org = make_org(0);
    char *path = fmt("/v1/organizations/%s/keys", org);
    struct http_resp *r = http_post_json(path, "{}");
    EXPECT_JSON(r, 201);
    const char *key_id = jstr(resp_json(r), "key_id");
    const char *api_key = jstr(resp_json(r), "api_key");
    cr_assert(key_id && api_key, "expected key_id and api_key: %s", r->body);
    char *kid = fmt("%s", key_id), *key = fmt("%s", api_key);
    char *opath = fmt("/v1/organizations/%s", org);
    struct http_resp *g = http_get_as(opath, key);
    EXPECT_JSON(g, 200);

    char *dpath = fmt("/v1/organizations/%s/keys/%s", org, kid);
    struct http_req del = {.method = "DELETE", .path = dpath};
    struct http_resp *d = http_do(&del);
    EXPECT_STATUS(d, 204);
    g = http_get_as(opath, key);
    EXPECT_401(g);
}

/* Issue 11, point 8: revocation takes effect at once, on every connection.
 * Nothing may remember a key as valid (there is no positive cache), and the
 * negative cache only ever refuses more. The key is used first on this
 * process's kept-alive connection and on 4 connections of their own; after
 * the revocation every one of them gets 401 on its next request, while the
 * organization's other key is unaffected. */
Test(auth, a_revoked_key_is_refused_at_once_on_every_connection)
{
    char *org = make_org(0);
    char *kpath = fmt("/v1/organizations/%s/keys", org), *opath = fmt("/v1/organizations/%s", org);
    char *keys[2];
    char *key_ids[2];
    for (int i = 0; i < 2; i++) {
        struct http_resp *r = http_post_json(kpath, "{}");
        EXPECT_JSON(r, 201);
        keys[i] = it_strdup(jstr(resp_json(r), "api_key"));
        key_ids[i] = it_strdup(jstr(resp_json(r), "key_id"));
        http_resp_free(r);
    }
    enum { N = 4 };
    struct http_par par[N];
    memset(par, 0, sizeof par);
    for (int i = 0; i < N; i++)
        par[i].req = (struct http_req){.method = "GET", .path = opath, .auth = keys[0]};
    http_parallel(par, N);
    for (int i = 0; i < N; i++) {
        EXPECT_JSON(par[i].resp, 200);
        http_resp_free(par[i].resp);
    }
    struct http_resp *r = http_get_as(opath, keys[0]);    /* this process's kept-alive connection */
    EXPECT_JSON(r, 200);
    http_resp_free(r);

    struct http_req del = {.method = "DELETE", .path = fmt("%s/%s", kpath, key_ids[0])};
    r = http_do(&del);
    EXPECT_STATUS(r, 204);
    http_resp_free(r);

    r = http_get_as(opath, keys[0]);                      /* the same connection as before */
    EXPECT_401(r);
    http_resp_free(r);
    memset(par, 0, sizeof par);
    for (int i = 0; i < N; i++)
        par[i].req = (struct http_req){.method = "GET", .path = opath, .auth = keys[0]};
    http_parallel(par, N);
    for (int i = 0; i < N; i++) {
        EXPECT_401(par[i].resp);
        http_resp_free(par[i].resp);
    }
    r = http_get_as(opath, keys[1]);                      /* the other key is untouched */
    EXPECT_JSON(r, 200);
    http_resp_free(r);
}

/* Regression: a registration naming another organization's session, paid by
 * the caller's own organization, answered "does not run the event of this
 * session", which told the caller that the session exists. It must read
 * exactly like a session that does not exist. */
Test(auth, another_tenants_session_reads_as_unknown_in_a_registration)
{
    char *key_a = NULL, *key_b = NULL;
    char *a = make_org_key(5, &key_a);
    char *b = make_org_key(5, &key_b);
    char *ses_b = make_session(make_event(b), it_id("spk"));
    char *missing = it_id("ses");
    const char *sessions[] = {ses_b, missing};
    char *details[2];

    for (int i = 0; i < 2; i++) {
        char *body = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                         "\"ticket_type\":\"standard\",\"price_paid\":1}",
                         sessions[i], it_id("user"), a);
        struct http_resp *r = http_post_json_as("/v1/registrations", body, key_a);
        EXPECT_PROBLEM_FIELD(r, 422, "validation-failed", "session_id");
        details[i] = strdup(jstr(resp_json(r), "detail"));
        http_resp_free(r);
    }
    cr_assert_str_eq(details[0], details[1], "another tenant's session is distinguishable: \"%s\" vs \"%s\"",
                     details[0], details[1]);
    cr_assert_eq(get_balance(a), 5);
    cr_assert_eq(get_balance(b), 5);
    free(details[0]);
    free(details[1]);
}
