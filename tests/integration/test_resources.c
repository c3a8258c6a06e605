/* test_resources.c: the plain resources -- organizations (with their opening
 * balance and top-ups), events and sessions: create (201 + Location, client or
 * generated ids), read back, duplicates (409 already-exists), unknown
 * references (422 naming the field) and unknown ids (404).
 *
 * The shapes asserted are those of docs/openapi.yaml; the ledger checks
 * hold the schema's invariant credits == sum(credit_ledger.delta).
 */
#include "harness.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

TestSuite(resources, .init = it_setup);

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = s ? strlen(s) : 0, m = strlen(suffix);
    return s && n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_uuid_v4(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i]))
            return false;
    }
    return s[14] == '4' && strchr("89abAB", s[19]) != NULL;
}

static bool is_utc_timestamp(const char *s)
{
    if (!s || strlen(s) < 20)
        return false;
    return s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' && s[strlen(s) - 1] == 'Z';
}

#define EXPECT_LOCATION(r, path) \
    cr_assert(ends_with((r)->location, (path)), "%s: expected Location ending in %s, got %s", (r)->what, (path), \
              (r)->location ? (r)->location : "(none)")

Test(resources, organization_create_get_and_duplicate)
{
    char *id = it_id("org");
    char *body = fmt("{\"id\":\"%s\",\"name\":\"Acme Conferences\",\"credits\":7}", id);
    struct http_resp *r = http_post_json("/v1/organizations", body);
    EXPECT_JSON(r, 201);
    cJSON *j = resp_json(r);
    EXPECT_STR(j, "id", id);
    EXPECT_STR(j, "name", "Acme Conferences");
    EXPECT_INT(j, "credits", 7);
    cr_assert(is_utc_timestamp(jstr(j, "created_at")), "created_at is not RFC 3339 UTC: %s", r->body);
    char *loc = fmt("/v1/organizations/%s", id);
    EXPECT_LOCATION(r, loc);

    struct http_resp *g = http_get(loc);
    EXPECT_JSON(g, 200);
    EXPECT_STR(resp_json(g), "id", id);
    EXPECT_STR(resp_json(g), "name", "Acme Conferences");
    EXPECT_INT(resp_json(g), "credits", 7);
    EXPECT_STR(resp_json(g), "created_at", jstr(j, "created_at"));

    /* The opening balance is explained by the ledger. */
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1 AND kind = 'opening_balance' "
                       "AND delta = 7",
                       PG_PARAMS(id)),
                 1);
    cr_assert_eq(pg_ll("SELECT COALESCE(sum(delta), 0) FROM credit_ledger WHERE organization_id = $1",
                       PG_PARAMS(id)),
                 7);

    /* Same id again, even with another name: 409, the original untouched. */
    char *again = fmt("{\"id\":\"%s\",\"name\":\"Impostor\",\"credits\":1000}", id);
    struct http_resp *d = http_post_json("/v1/organizations", again);
    EXPECT_PROBLEM(d, 409, "already-exists");
    cr_assert_eq(get_balance(id), 7);
    char *name = pg_text("SELECT name FROM organizations WHERE id = $1", PG_PARAMS(id));
    cr_assert_str_eq(name, "Acme Conferences");
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1", PG_PARAMS(id)), 1);
}

Test(resources, organization_generated_id_and_default_credits)
{
    struct http_resp *r = http_post_json("/v1/organizations", "{\"name\":\"No Id Given\"}");
    EXPECT_JSON(r, 201);
    const char *id = jstr(resp_json(r), "id");
    cr_assert(id && strncmp(id, "org_", 4) == 0 && is_uuid_v4(id + 4), "expected id org_<uuid v4>, got %s",
              r->body);
    EXPECT_INT(resp_json(r), "credits", 0);
    char *loc = fmt("/v1/organizations/%s", id);
    EXPECT_LOCATION(r, loc);
    cr_assert_eq(get_balance(id), 0);
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1", PG_PARAMS(id)), 0,
                 "an organization with no credit has no ledger row (deltas are never 0)");
}

Test(resources, balance_and_top_up)
{
    char *org = make_org(4);
    cr_assert_eq(get_balance(org), 4);
    char *path = fmt("/v1/organizations/%s/credits", org);
    struct http_resp *r = http_post_json(path, "{\"amount\":5,\"reason\":\"conference pack\"}");
    EXPECT_JSON(r, 200);
    EXPECT_STR(resp_json(r), "organization_id", org);
    EXPECT_INT(resp_json(r), "balance", 9);
    cr_assert_eq(get_balance(org), 9);
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1 AND kind = 'top_up' "
                       "AND delta = 5 AND reason = 'conference pack' AND registration_id IS NULL",
                       PG_PARAMS(org)),
                 1);
    r = http_post_json(path, "{\"amount\":1}");
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "balance", 10);
    cr_assert_eq(pg_ll("SELECT balance FROM organization_balances WHERE organization_id = $1", PG_PARAMS(org)), 10);
    cr_assert_eq(pg_ll("SELECT sum(delta) FROM credit_ledger WHERE organization_id = $1", PG_PARAMS(org)), 10);
    /* The organization resource shows the same balance. */
    char *opath = fmt("/v1/organizations/%s", org);
    r = http_get(opath);
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "credits", 10);
}

Test(resources, unknown_organization_is_404_everywhere)
{
    char *ghost = it_id("org_ghost");
    char *p1 = fmt("/v1/organizations/%s", ghost);
    char *p2 = fmt("/v1/organizations/%s/credits", ghost);
    struct http_resp *r = http_get(p1);
    EXPECT_PROBLEM(r, 404, "not-found");
    r = http_get(p2);
    EXPECT_PROBLEM(r, 404, "not-found");
    r = http_post_json(p2, "{\"amount\":5}");
    EXPECT_PROBLEM(r, 404, "not-found");
    cr_assert_eq(pg_ll("SELECT count(*) FROM organizations WHERE id = $1", PG_PARAMS(ghost)), 0);
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1", PG_PARAMS(ghost)), 0);
}

Test(resources, event_create_get_and_references)
{
    char *org = make_org(0);
    char *id = it_id("evt");
    char *body = fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"EventConf 2026\","
                     "\"starts_at\":\"2026-11-21T09:30:00+01:00\"}",
                     id, org);
    struct http_resp *r = http_post_json("/v1/events", body);
    EXPECT_JSON(r, 201);
    cJSON *j = resp_json(r);
    EXPECT_STR(j, "id", id);
    EXPECT_STR(j, "organization_id", org);
    EXPECT_STR(j, "name", "EventConf 2026");
    const char *starts = jstr(j, "starts_at");
    /* Any offset in, UTC out: 09:30+01:00 is 08:30Z. */
    cr_assert(starts && strncmp(starts, "2026-11-21T08:30:00", 19) == 0 && starts[strlen(starts) - 1] == 'Z',
              "expected starts_at 2026-11-21T08:30:00[.000000]Z, got %s", r->body);
    cr_assert(is_utc_timestamp(jstr(j, "created_at")), "created_at: %s", r->body);
    char *loc = fmt("/v1/events/%s", id);
    EXPECT_LOCATION(r, loc);

    struct http_resp *g = http_get(loc);
    EXPECT_JSON(g, 200);
    EXPECT_STR(resp_json(g), "id", id);
    EXPECT_STR(resp_json(g), "organization_id", org);
    EXPECT_STR(resp_json(g), "starts_at", starts);

    struct http_resp *d = http_post_json("/v1/events", body);
    EXPECT_PROBLEM(d, 409, "already-exists");

    /* No starts_at: null; no id: evt_<uuid>. */
    char *b2 = fmt("{\"organization_id\":\"%s\",\"name\":\"Unscheduled\"}", org);
    struct http_resp *u = http_post_json("/v1/events", b2);
    EXPECT_JSON(u, 201);
    cr_assert(cJSON_IsNull(jget(resp_json(u), "starts_at")), "expected starts_at null, got %s", u->body);
    const char *gid = jstr(resp_json(u), "id");
    cr_assert(gid && strncmp(gid, "evt_", 4) == 0 && is_uuid_v4(gid + 4), "expected evt_<uuid v4>: %s", u->body);

    char *ghost_org = it_id("org_ghost");
    char *eid = it_id("evt");
    char *b3 = fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"Orphan\"}", eid, ghost_org);
    struct http_resp *x = http_post_json("/v1/events", b3);
    EXPECT_PROBLEM_FIELD(x, 422, "validation-failed", "organization_id");
    cr_assert_eq(pg_ll("SELECT count(*) FROM events WHERE id = $1", PG_PARAMS(eid)), 0);

    char *p404 = fmt("/v1/events/%s", eid);
    struct http_resp *n = http_get(p404);
    EXPECT_PROBLEM(n, 404, "not-found");
}

Test(resources, session_create_get_and_references)
{
    char *org = make_org(0);
    char *evt = make_event(org);
    char *spk = it_id("spk");
    char *id = it_id("ses");
    char *body = fmt("{\"id\":\"%s\",\"event_id\":\"%s\",\"title\":\"Making Redis Boring\",\"speaker_id\":\"%s\"}",
                     id, evt, spk);
    struct http_resp *r = http_post_json("/v1/sessions", body);
    EXPECT_JSON(r, 201);
    cJSON *j = resp_json(r);
    EXPECT_STR(j, "id", id);
    EXPECT_STR(j, "event_id", evt);
    EXPECT_STR(j, "title", "Making Redis Boring");
    EXPECT_STR(j, "speaker_id", spk);
    cr_assert(is_utc_timestamp(jstr(j, "created_at")), "created_at: %s", r->body);
    char *loc = fmt("/v1/sessions/%s", id);
    EXPECT_LOCATION(r, loc);
    cr_assert_eq(pg_ll("SELECT count(*) FROM sessions WHERE id = $1 AND organization_id = $2", PG_PARAMS(id, org)),
                 1, "the session does not carry its event's organization");

    struct http_resp *g = http_get(loc);
    EXPECT_JSON(g, 200);
    EXPECT_STR(resp_json(g), "id", id);
    EXPECT_STR(resp_json(g), "event_id", evt);
    EXPECT_STR(resp_json(g), "speaker_id", spk);

    struct http_resp *d = http_post_json("/v1/sessions", body);
    EXPECT_PROBLEM(d, 409, "already-exists");

    char *b2 = fmt("{\"event_id\":\"%s\",\"title\":\"Generated\",\"speaker_id\":\"%s\"}", evt, spk);
    struct http_resp *u = http_post_json("/v1/sessions", b2);
    EXPECT_JSON(u, 201);
    const char *gid = jstr(resp_json(u), "id");
    cr_assert(gid && strncmp(gid, "ses_", 4) == 0 && is_uuid_v4(gid + 4), "expected ses_<uuid v4>: %s", u->body);

    char *sid = it_id("ses");
    char *b3 = fmt("{\"id\":\"%s\",\"event_id\":\"%s\",\"title\":\"Orphan\",\"speaker_id\":\"%s\"}", sid,
                   it_id("evt_ghost"), spk);
    struct http_resp *x = http_post_json("/v1/sessions", b3);
    EXPECT_PROBLEM_FIELD(x, 422, "validation-failed", "event_id");
    cr_assert_eq(pg_ll("SELECT count(*) FROM sessions WHERE id = $1", PG_PARAMS(sid)), 0);

    char *p404 = fmt("/v1/sessions/%s", sid);
    struct http_resp *n = http_get(p404);
    EXPECT_PROBLEM(n, 404, "not-found");
}

Test(resources, ids_may_use_every_allowed_character_and_128_chars)
{
    /* [A-Za-z0-9_.:-]{1,128}: the longest and the most varied id work. */
    char *tail = it_id("x");
    char *mixed = fmt("Aa.9:_-%s", tail);
    size_t pad = 128 - strlen(mixed);
    char *fill = repeat_char('z', pad);
    char *id = fmt("%s%s", mixed, fill);
    cr_assert_eq(strlen(id), 128);
    char *body = fmt("{\"id\":\"%s\",\"name\":\"Long id\"}", id);
    struct http_resp *r = http_post_json("/v1/organizations", body);
    EXPECT_JSON(r, 201);
    EXPECT_STR(resp_json(r), "id", id);
    char *path = fmt("/v1/organizations/%s", id);
    struct http_resp *g = http_get(path);
    EXPECT_JSON(g, 200);
    EXPECT_STR(resp_json(g), "id", id);
}

Test(resources, top_up_past_the_integer_limit_is_422_and_changes_nothing)
{
    /* The balance is 16 buckets of at most 134217728 each (schema/0004):
     * 2^31 at most, refused exactly at the bucket that would pass it. */
    char *org = make_org(1000000000);
    char *path = fmt("/v1/organizations/%s/credits", org);
    struct http_resp *r = http_post_json(path, "{\"amount\":1000000000}");
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "balance", 2000000000);
    r = http_post_json(path, "{\"amount\":147483649}");
    EXPECT_PROBLEM(r, 422, "validation-failed");
    cr_assert_eq(get_balance(org), 2000000000);
    r = http_post_json(path, "{\"amount\":147483648}");
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "balance", 2147483648);
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1 AND kind = 'top_up'",
                       PG_PARAMS(org)),
                 2);
}

Test(resources, json_media_type_parameters_are_accepted)
{
    char *id = it_id("org");
    char *body = fmt("{\"id\":\"%s\",\"name\":\"Charset\"}", id);
    struct http_resp *r = http_request("POST", "/v1/organizations", "application/json; charset=utf-8", body, 0);
    EXPECT_JSON(r, 201);
    /* Non-ASCII names survive the round trip. */
    char *id2 = it_id("org");
    char *body2 = fmt("{\"id\":\"%s\",\"name\":\"Caf\xc3\xa9 \\u00e9v\xc3\xa9nements \\ud83c\\udf89\"}", id2);
    r = http_post_json("/v1/organizations", body2);
    EXPECT_JSON(r, 201);
    EXPECT_STR(resp_json(r), "name", "Caf\xc3\xa9 \xc3\xa9v\xc3\xa9nements \xf0\x9f\x8e\x89");
}
