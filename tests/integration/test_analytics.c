/* test_analytics.c: idempotent ingest of analytics events, single and batch.
 *
 * The event id is the dedup key: the envelope's event_id, else
 * payload.event_id, else a generated UUID. A repeat with the same content is
 * a duplicate (stored and counted once); a repeat with other content is a
 * conflict (409) that changes nothing. A batch answers per item, in request
 * order, and a bad envelope rejects only itself; a batch that is itself
 * invalid (empty, over 1000 items, not an array) is refused whole with no
 * effect.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(analytics, .init = it_setup);

static char *view_env(const char *id, const char *user, const char *ses)
{
    return fmt("{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"%s\","
               "\"payload\":{\"session_id\":\"%s\",\"duration_seconds\":42}}",
               id, user, ses);
}

Test(analytics, single_conflict_is_409_and_changes_nothing)
{
    char *org = make_org(0);
    char *evt = make_event(org);
    char *spk = it_id("spk");
    char *ses = make_session(evt, spk);
    char *id = it_id("ev");
    char *user = it_id("att");

    char *orig = view_env(id, user, ses);
    struct http_resp *r = http_post_json("/v1/analytics/events", orig);
    EXPECT_JSON(r, 201);

    /* Same id; another user, then another payload, then another type. */
    char *bodies[] = {
        view_env(id, it_id("att"), ses),
        fmt("{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"%s\","
            "\"payload\":{\"session_id\":\"%s\",\"duration_seconds\":43}}",
            id, user, ses),
        fmt("{\"event_id\":\"%s\",\"event_type\":\"session_like\",\"user_id\":\"%s\","
            "\"payload\":{\"session_id\":\"%s\",\"duration_seconds\":42}}",
            id, user, ses),
    };
    for (size_t i = 0; i < 3; i++) {
        r = http_post_json("/v1/analytics/events", bodies[i]);
        EXPECT_PROBLEM(r, 409, "event-id-conflict");
    }
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1 AND user_id = $2 "
                       "AND event_type = 'session_view' AND payload->>'duration_seconds' = '42'",
                       PG_PARAMS(id, user)),
                 1, "the original event was altered by a conflicting one");
    cr_assert_eq(redis_score(evt, spk), 1);
    cr_assert_eq(redis_applied_count(evt), 1);

    /* The original content is still a plain duplicate. */
    r = http_post_json("/v1/analytics/events", orig);
    EXPECT_JSON(r, 200);
    bool dup = false;
    cr_assert(jbool(resp_json(r), "duplicate", &dup) && dup, "expected duplicate:true: %s", r->body);
}

Test(analytics, envelope_event_id_wins_over_payload_event_id)
{
    char *env_id = it_id("ev_env");
    char *pay_id = it_id("ev_pay");
    char *body = fmt("{\"event_id\":\"%s\",\"event_type\":\"badge_scan\",\"user_id\":\"%s\","
                     "\"payload\":{\"event_id\":\"%s\",\"gate\":\"B\"}}",
                     env_id, it_id("att"), pay_id);
    struct http_resp *r = http_post_json("/v1/analytics/events", body);
    EXPECT_JSON(r, 201);
    EXPECT_STR(resp_json(r), "event_id", env_id);
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1", PG_PARAMS(env_id)), 1);
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1", PG_PARAMS(pay_id)), 0);
}

Test(analytics, occurred_at_is_stored_and_defaults_to_now)
{
    char *id1 = it_id("ev"), *id2 = it_id("ev");
    char *b1 = fmt("{\"event_id\":\"%s\",\"event_type\":\"page_view\",\"user_id\":\"%s\","
                   "\"occurred_at\":\"2026-03-01T10:00:00-05:00\",\"payload\":{}}",
                   id1, it_id("att"));
    struct http_resp *r = http_post_json("/v1/analytics/events", b1);
    EXPECT_JSON(r, 201);
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1 "
                       "AND occurred_at = '2026-03-01T15:00:00Z'",
                       PG_PARAMS(id1)),
                 1, "occurred_at was not stored as sent");
    char *b2 = fmt("{\"event_id\":\"%s\",\"event_type\":\"page_view\",\"user_id\":\"%s\",\"payload\":{}}", id2,
                   it_id("att"));
    r = http_post_json("/v1/analytics/events", b2);
    EXPECT_JSON(r, 201);
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1 "
                       "AND occurred_at BETWEEN now() - interval '5 minutes' AND now() + interval '1 minute'",
                       PG_PARAMS(id2)),
                 1, "a missing occurred_at was not set to the time of receipt");
}

Test(analytics, batch_answers_each_item_in_order)
{
    char *org = make_org(0);
    char *evt = make_event(org);
    char *spk = it_id("spk");
    char *ses = make_session(evt, spk);
    char *user = it_id("att");
    char *p = it_id("ev_prev"), *n1 = it_id("ev_new"), *n2 = it_id("ev_bad"), *n3 = it_id("ev_scan");

    char *prev = view_env(p, user, ses);
    struct http_resp *r = http_post_json("/v1/analytics/events", prev);
    EXPECT_JSON(r, 201);

    char *body = fmt("{\"batch\":["
                     "%s,"                                   /* 0 new: created */
                     "%s,"                                   /* 1 p again: duplicate */
                     "%s,"                                   /* 2 p, another user: conflict */
                     "{\"event_id\":\"%s\",\"event_type\":\"Bad-Type\",\"user_id\":\"%s\",\"payload\":{}},"
                     "%s,"                                   /* 4 n1 again in the same batch */
                     "{\"event_id\":\"%s\",\"event_type\":\"sponsor_scan\",\"user_id\":\"%s\","
                     "\"payload\":{\"sponsor_id\":\"sp_9\"}},"
                     "{\"event_type\":\"sponsor_scan\",\"user_id\":\"%s\"}" /* 6 no payload, no id */
                     "]}",
                     view_env(n1, user, ses), prev, view_env(p, it_id("att"), ses), n2, user,
                     view_env(n1, user, ses), n3, user, user);
    r = http_post_json("/v1/analytics/events", body);
    EXPECT_JSON(r, 200);
    cJSON *j = resp_json(r);
    EXPECT_INT(j, "accepted", 2);
    EXPECT_INT(j, "duplicates", 2);
    EXPECT_INT(j, "rejected", 3);
    cJSON *res = jget(j, "results");
    cr_assert(cJSON_IsArray(res) && cJSON_GetArraySize(res) == 7, "expected 7 results in order: %s", r->body);

    EXPECT_STR(j, "results.0.event_id", n1);
    EXPECT_STR(j, "results.0.status", "created");
    EXPECT_STR(j, "results.1.event_id", p);
    EXPECT_STR(j, "results.1.status", "duplicate");
    EXPECT_STR(j, "results.2.event_id", p);
    EXPECT_STR(j, "results.2.status", "rejected");
    EXPECT_INT(j, "results.2.error.status", 409);
    EXPECT_STR(j, "results.2.error.type", "/problems/event-id-conflict");
    EXPECT_STR(j, "results.3.status", "rejected");
    EXPECT_INT(j, "results.3.error.status", 422);
    EXPECT_STR(j, "results.3.error.type", "/problems/validation-failed");
    EXPECT_STR(j, "results.4.event_id", n1);
    EXPECT_STR(j, "results.4.status", "duplicate");
    EXPECT_STR(j, "results.5.event_id", n3);
    EXPECT_STR(j, "results.5.status", "created");
    EXPECT_STR(j, "results.6.status", "rejected");
    EXPECT_INT(j, "results.6.error.status", 422);
    cr_assert_null(jget(j, "results.0.error"), "a created item carries an error: %s", r->body);

    /* Stored: p (once, unchanged), n1 (once), n3; not n2. Counted: p and n1. */
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id IN ($1, $2, $3)",
                       PG_PARAMS(p, n1, n3)),
                 3);
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1 AND user_id = $2",
                       PG_PARAMS(p, user)),
                 1);
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1", PG_PARAMS(n2)), 0);
    const struct board_entry want[] = {{spk, 2, 1}};
    EXPECT_BOARD(evt, "", want, 1);
    cr_assert_eq(redis_applied_count(evt), 2);
}

Test(analytics, batch_of_1000_is_accepted_and_1001_refused_whole)
{
    char *prefix = it_id("bulk");
    char *user = it_id("att");
    for (int size = 1001; size >= 1000; size--) {
        size_t cap = (size_t)size * 160 + 64, off = 0;
        char *body = malloc(cap);
        off += (size_t)snprintf(body + off, cap - off, "{\"batch\":[");
        for (int i = 0; i < size; i++)
            off += (size_t)snprintf(body + off, cap - off,
                                    "%s{\"event_id\":\"%s_%d_%d\",\"event_type\":\"page_view\","
                                    "\"user_id\":\"%s\",\"payload\":{\"i\":%d}}",
                                    i ? "," : "", prefix, size, i, user, i);
        snprintf(body + off, cap - off, "]}");
        struct http_resp *r = http_post_json("/v1/analytics/events", body);
        char *like = fmt("%s\\_%d\\_%%", prefix, size);
        if (size == 1001) {
            EXPECT_PROBLEM_FIELD(r, 422, "validation-failed", "batch");
            cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id LIKE $1", PG_PARAMS(like)), 0,
                         "a refused batch of 1001 stored events");
        } else {
            EXPECT_JSON(r, 200);
            EXPECT_INT(resp_json(r), "accepted", 1000);
            EXPECT_INT(resp_json(r), "duplicates", 0);
            EXPECT_INT(resp_json(r), "rejected", 0);
            cr_assert_eq(cJSON_GetArraySize(jget(resp_json(r), "results")), 1000);
            EXPECT_STR(resp_json(r), "results.999.status", "created");
            cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id LIKE $1", PG_PARAMS(like)),
                         1000);
        }
        http_resp_free(r);
        free(body);
    }
}

Test(analytics, empty_or_non_array_batch_is_422)
{
    const char *bodies[] = {"{\"batch\":[]}", "{\"batch\":{}}", "{\"batch\":\"x\"}", "{\"batch\":null}"};
    for (size_t i = 0; i < 4; i++) {
        struct http_resp *r = http_post_json("/v1/analytics/events", bodies[i]);
        EXPECT_PROBLEM_FIELD(r, 422, "validation-failed", "batch");
    }
}

Test(analytics, session_view_with_non_string_session_id_is_422)
{
    char *id = it_id("ev");
    char *body = fmt("{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"%s\","
                     "\"payload\":{\"session_id\":5}}",
                     id, it_id("att"));
    struct http_resp *r = http_post_json("/v1/analytics/events", body);
    EXPECT_PROBLEM(r, 422, "validation-failed");
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1", PG_PARAMS(id)), 0);
}

Test(analytics, other_types_naming_a_session_move_no_board)
{
    char *org = make_org(0);
    char *evt = make_event(org);
    char *spk = it_id("spk");
    char *ses = make_session(evt, spk);
    char *body = fmt("{\"event_id\":\"%s\",\"event_type\":\"session_like\",\"user_id\":\"%s\","
                     "\"payload\":{\"session_id\":\"%s\",\"speaker_id\":\"%s\"}}",
                     it_id("ev"), it_id("att"), ses, spk);
    struct http_resp *r = http_post_json("/v1/analytics/events", body);
    EXPECT_JSON(r, 201);
    EXPECT_BOARD(evt, "", NULL, 0);
    char *key = lb_key(evt);
    cr_assert_eq(redis_ll("EXISTS %s", key), 0, "a session_like created the event's leaderboard");
}

/* The payload is stored as sent: numbers beyond a double's range or precision
 * keep every digit (cJSON alone would print 1e400 as null, and round big
 * integers), and a retry of the same text is still a duplicate. */
Test(analytics, payload_numbers_are_stored_exactly)
{
    char *eid = it_id("num");
    char *body = fmt("{\"event_id\":\"%s\",\"event_type\":\"measure\",\"user_id\":\"u\",\"payload\":"
                     "{\"big\":12345678901234567890123,\"huge\":1e400,\"pi\":3.14159265358979323846}}",
                     eid);
    struct http_resp *r = http_post_json("/v1/analytics/events", body);
    EXPECT_JSON(r, 201);
    http_resp_free(r);
    char *big = pg_text("SELECT payload->>'big' FROM analytics_events WHERE event_id = $1", PG_PARAMS(eid));
    char *huge = pg_text("SELECT (payload->'huge')::numeric = 1e400 FROM analytics_events WHERE event_id = $1",
                         PG_PARAMS(eid));
    char *pi = pg_text("SELECT payload->>'pi' FROM analytics_events WHERE event_id = $1", PG_PARAMS(eid));
    cr_assert_str_eq(big, "12345678901234567890123");
    cr_assert_str_eq(huge, "t");
    cr_assert_str_eq(pi, "3.14159265358979323846");
    r = http_post_json("/v1/analytics/events", body);
    EXPECT_JSON(r, 200);
    http_resp_free(r);
}

/* Issue #11, point 4: one batch with envelopes PostgreSQL would refuse
 * (impossible dates, numbers beyond jsonb's numeric, a non-object payload).
 * Each bad one is rejected by itself with a readable reason and no database
 * text; the good ones of the same batch are stored and counted. */
Test(analytics, batch_rejects_only_its_unstorable_envelopes)
{
    char *org = make_org(0);
    char *evt = make_event(org);
    char *spk = it_id("spk");
    char *ses = make_session(evt, spk);
    char *user = it_id("att");
    char *pre = it_id("ev_mix");
    /* Good envelopes sit at the edges of what is accepted, so acceptance is
     * proven against the real database, not only against the validator. */
    static const struct {
        const char *fields;   /* {SES}: the session */
        bool good;
    } items[] = {
        {"\"occurred_at\":\"2024-02-29T23:59:60+15:59\",\"payload\":{\"session_id\":\"{SES}\",\"x\":1e-16383}", true},
        {"\"occurred_at\":\"2026-02-30T00:00:00Z\",\"payload\":{\"session_id\":\"{SES}\"}", false},
        {"\"occurred_at\":\"0001-01-01T00:00:00Z\",\"payload\":{\"session_id\":\"{SES}\",\"x\":1e131071}", true},
        {"\"occurred_at\":\"0000-01-01T00:00:00Z\",\"payload\":{\"session_id\":\"{SES}\"}", false},
        {"\"occurred_at\":\"9999-12-31T23:59:59.999999999-15:59\","
         "\"payload\":{\"session_id\":\"{SES}\",\"x\":0.1e131072}", true},
        {"\"payload\":{\"session_id\":\"{SES}\",\"x\":1e-70000}", false},
        {"\"payload\":{\"session_id\":\"{SES}\",\"x\":[1e1000000]}", false},
        {"\"payload\":[\"{SES}\"]", false},
        {"\"occurred_at\":\"2026-06-01T10:00:00+16:00\",\"payload\":{\"session_id\":\"{SES}\"}", false},
        {"\"occurred_at\":\"2025-02-29T10:00:00Z\",\"payload\":{\"session_id\":\"{SES}\"}", false},
    };
    const size_t n = sizeof items / sizeof items[0];
    long long ngood = 0;
    char *body = it_strdup("{\"batch\":[");

    for (size_t i = 0; i < n; i++) {
        const char *tpl = items[i].fields, *at = strstr(tpl, "{SES}");
        char *next = fmt("%s%s{\"event_id\":\"%s_%zu\",\"event_type\":\"session_view\",\"user_id\":\"%s\","
                         "%.*s%s%s}",
                         body, i ? "," : "", pre, i, user, (int)(at - tpl), tpl, ses, at + 5);
        free(body);
        body = next;
        ngood += items[i].good;
    }
    char *closed = fmt("%s]}", body);

    struct http_resp *r = http_post_json("/v1/analytics/events", closed);
    EXPECT_JSON(r, 200);
    cJSON *j = resp_json(r);
    EXPECT_INT(j, "accepted", ngood);
    EXPECT_INT(j, "duplicates", 0);
    EXPECT_INT(j, "rejected", (long long)n - ngood);
    for (size_t i = 0; i < n; i++) {
        bool is_good = items[i].good;
        char *id = fmt("%s_%zu", pre, i);
        char *path = fmt("results.%zu.", i);
        EXPECT_STR(j, fmt("%sevent_id", path), id);
        EXPECT_STR(j, fmt("%sstatus", path), is_good ? "created" : "rejected");
        cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1", PG_PARAMS(id)),
                     is_good ? 1 : 0, "item %zu: stored %s", i, is_good ? "no row" : "a row");
        if (!is_good) {
            const char *detail = jstr(j, fmt("%serror.detail", path));
            EXPECT_INT(j, fmt("%serror.status", path), 422);
            EXPECT_STR(j, fmt("%serror.type", path), "/problems/validation-failed");
            cr_assert(detail && (strncmp(detail, "occurred_at: ", 13) == 0 || strncmp(detail, "payload: ", 9) == 0),
                      "item %zu: detail names no field: %s", i, detail ? detail : "(none)");
            cr_assert(!strstr(detail, "overflow") && !strstr(detail, "out of range") && !strstr(detail, "SQL") &&
                          !strstr(detail, "jsonb") && !strstr(detail, "ERROR"),
                      "item %zu: database text in the detail: %s", i, detail);
        }
    }
    /* The good ones counted once each, exactly as stored. */
    const struct board_entry want[] = {{spk, (long long)ngood, 1}};
    EXPECT_BOARD(evt, "", want, 1);
    cr_assert_eq(redis_applied_count(evt), (long long)ngood);
    char *first = fmt("%s_0", pre), *last_good = fmt("%s_4", pre);
    cr_assert_str_eq(pg_text("SELECT payload->>'x' FROM analytics_events WHERE event_id = $1", PG_PARAMS(first)),
                     pg_text("SELECT (1e-16383::numeric)::text", NULL));
    cr_assert_str_eq(pg_text("SELECT occurred_at = '2024-02-29T08:01:00Z' FROM analytics_events "
                             "WHERE event_id = $1",
                             PG_PARAMS(first)),
                     "t");
    cr_assert_str_eq(pg_text("SELECT occurred_at = '10000-01-01T15:59:00Z' FROM analytics_events "
                             "WHERE event_id = $1",
                             PG_PARAMS(last_good)),
                     "t");
}

/* Issue #11, point 4: a single envelope with the same faults answers 422,
 * in our words, and stores nothing. */
Test(analytics, single_unstorable_envelope_is_422_without_database_text)
{
    static const char *const fields[] = {
        "\"occurred_at\":\"2026-02-30T00:00:00Z\",\"payload\":{}",
        "\"payload\":{\"x\":1e-70000}",
        "\"payload\":{\"x\":-1e1000000}",
    };
    for (size_t i = 0; i < 3; i++) {
        char *id = it_id("ev_one");
        char *body = fmt("{\"event_id\":\"%s\",\"event_type\":\"page_view\",\"user_id\":\"u\",%s}", id, fields[i]);
        struct http_resp *r = http_post_json("/v1/analytics/events", body);
        EXPECT_PROBLEM(r, 422, "validation-failed");
        const char *detail = jstr(resp_json(r), "errors.0.message");
        cr_assert(detail && !strstr(detail, "overflow") && !strstr(detail, "out of range"), "%s", r->body);
        cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1", PG_PARAMS(id)), 0);
        http_resp_free(r);
    }
}

/* Issue #11, point 3: the payload stored is the member that was validated,
 * byte for byte, even when the client spells its name with escapes; and a
 * second member of the same name (the old way to smuggle another tenant's
 * session or HTML past the validator) is a 400 that stores and counts
 * nothing. */
Test(analytics, escaped_payload_name_is_stored_as_validated)
{
    char *org = make_org(0);
    char *evt = make_event(org);
    char *spk = it_id("spk");
    char *ses = make_session(evt, spk);
    char *id = it_id("ev_esc");
    char *body = fmt("{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"%s\","
                     "\"pay\\u006coad\":{\"session_id\":\"%s\",\"price\":1.50,\"big\":12345678901234567890123}}",
                     id, it_id("att"), ses);
    struct http_resp *r = http_post_json("/v1/analytics/events", body);
    EXPECT_JSON(r, 201);
    cr_assert_str_eq(pg_text("SELECT payload->>'session_id' FROM analytics_events WHERE event_id = $1",
                             PG_PARAMS(id)),
                     ses);
    cr_assert_str_eq(pg_text("SELECT payload->>'price' FROM analytics_events WHERE event_id = $1", PG_PARAMS(id)),
                     "1.50");
    cr_assert_str_eq(pg_text("SELECT payload->>'big' FROM analytics_events WHERE event_id = $1", PG_PARAMS(id)),
                     "12345678901234567890123");
    cr_assert_eq(redis_score(evt, spk), 1);

    /* The smuggling forms: another session (of another organization) or
     * HTML in a second payload; a second session_id inside the payload. */
    char *other_org = make_org(0);
    char *other_ses = make_session(make_event(other_org), it_id("spk"));
    char *id2 = it_id("ev_dup");
    const char *tails[] = {
        fmt("\"payload\":{\"session_id\":\"%s\"},\"pay\\u006coad\":{\"session_id\":\"%s\"}", ses, other_ses),
        fmt("\"payload\":{\"session_id\":\"%s\"},\"pay\\u006coad\":\"<script>alert(1)</script>\"", ses),
        fmt("\"payload\":{\"session_id\":\"%s\",\"session_\\u0069d\":\"%s\"}", ses, other_ses),
    };
    for (size_t i = 0; i < 3; i++) {
        char *b = fmt("{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"u\",%s}", id2, tails[i]);
        r = http_post_json("/v1/analytics/events", b);
        EXPECT_PROBLEM(r, 400, "malformed-json");
        http_resp_free(r);
    }
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1", PG_PARAMS(id2)), 0);
    cr_assert_eq(redis_score(evt, spk), 1, "a refused body moved the board");
}
