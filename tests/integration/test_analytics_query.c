/* test_analytics_query.c: reading the analytics log (issue 15, point 3) --
 * GET /v1/analytics/events with each filter (event_type, user_id,
 * since/until, payload containment) and its pages, GET /v1/analytics/counts
 * with empty buckets included, both confined to the caller's organization
 * (the admin sees all), and every malformed filter answered 400. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

TestSuite(analytics_query, .init = it_setup);

/* Logs one event with the org's key at a fixed time. */
static void log_event(const char *key, const char *type, const char *user, const char *at,
                      const char *payload)
{
    char *body = fmt("{\"event_type\":\"%s\",\"user_id\":\"%s\",\"occurred_at\":\"%s\",\"payload\":%s}",
                     type, user, at, payload);
    struct http_resp *r = http_post_json_as("/v1/analytics/events", body, key);
    EXPECT_JSON(r, 201);
    http_resp_free(r);
    free(body);
}

/* A fresh event type, so the admin's view of the shared log is this test's rows only. */
static char *fresh_type(void)
{
    char *id = it_id("t");
    for (char *c = id; *c; c++)
        *c = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : (*c == '-' || *c == ':') ? '_' : *c;
    return fmt("q%s", id);
}

static int items_of(struct http_resp *r)
{
    EXPECT_JSON(r, 200);
    cJSON *items = jget(resp_json(r), "items");
    cr_assert(cJSON_IsArray(items), "no items in %s", r->body);
    return cJSON_GetArraySize(items);
}

static int count_items(const char *path, const char *auth)
{
    struct http_resp *r = http_get_as(path, auth);
    int n = items_of(r);
    http_resp_free(r);
    return n;
}

Test(analytics_query, filters_and_tenants)
{
    char *key_a, *key_b;
    make_org_key(1, &key_a);
    make_org_key(1, &key_b);
    char *t = fresh_type();

    log_event(key_a, t, "u1", "2026-03-01T10:05:00Z", "{\"sponsor_id\":\"sp1\",\"booth\":{\"row\":3}}");
    log_event(key_a, t, "u2", "2026-03-01T10:15:00Z", "{\"sponsor_id\":\"sp2\"}");
    log_event(key_a, t, "u2", "2026-03-01T12:15:00Z", "{\"sponsor_id\":\"sp1\"}");
    log_event(key_b, t, "u1", "2026-03-01T10:20:00Z", "{\"sponsor_id\":\"sp1\"}");

    cr_assert_eq(count_items(fmt("/v1/analytics/events?event_type=%s", t), key_a), 3);
    cr_assert_eq(count_items(fmt("/v1/analytics/events?event_type=%s", t), key_b), 1);
    cr_assert_eq(count_items(fmt("/v1/analytics/events?event_type=%s", t), NULL), 4, "the admin sees all");
    cr_assert_eq(count_items(fmt("/v1/analytics/events?event_type=%s&user_id=u2", t), key_a), 2);
    cr_assert_eq(count_items(fmt("/v1/analytics/events?event_type=%s&since=2026-03-01T10:15:00Z"
                                 "&until=2026-03-01T12:15:00Z", t), key_a), 1,
                 "since is inclusive, until exclusive");
    cr_assert_eq(count_items(fmt("/v1/analytics/events?event_type=%s&since=2026-03-01T11:15:00%%2B01:00", t),
                             key_a), 2, "an offset is honoured");
    cr_assert_eq(count_items(fmt("/v1/analytics/events?event_type=%s&payload=%%7B%%22sponsor_id%%22%%3A%%22sp1%%22%%7D",
                                 t), key_a), 2);
    cr_assert_eq(count_items(fmt("/v1/analytics/events?event_type=%s&payload=%%7B%%22booth%%22%%3A%%7B%%22row%%22%%3A3%%7D%%7D",
                                 t), key_a), 1, "containment reaches into nested objects");
    cr_assert_eq(count_items(fmt("/v1/analytics/events?event_type=%s&payload=%%7B%%7D", t), key_a), 3);

    struct http_resp *r = http_get_as(fmt("/v1/analytics/events?event_type=%s&user_id=u1", t), key_a);
    EXPECT_JSON(r, 200);
    cJSON *e = cJSON_GetArrayItem(jget(resp_json(r), "items"), 0);
    EXPECT_STR(e, "event_type", t);
    EXPECT_STR(e, "user_id", "u1");
    EXPECT_STR(e, "occurred_at", "2026-03-01T10:05:00.000000Z");
    EXPECT_STR(jget(e, "payload"), "sponsor_id", "sp1");
    cr_assert(jstr(e, "received_at") && jstr(e, "event_id"), "%s", r->body);
    cr_assert(cJSON_IsNull(jget(resp_json(r), "next_cursor")));
    http_resp_free(r);
}

Test(analytics_query, pages_newest_first_and_cursors_bound_to_filters)
{
    char *key;
    make_org_key(1, &key);
    char *t = fresh_type();
    for (int i = 0; i < 7; i++)
        log_event(key, t, "u1", fmt("2026-03-02T10:%02d:00Z", i % 3), fmt("{\"i\":%d}", i));

    char *base = fmt("/v1/analytics/events?event_type=%s&limit=3", t);
    char *cursor = NULL;
    char *seen[7];
    int n = 0, pages = 0;
    const char *prev_at = "9999";
    for (; pages < 10; pages++) {
        struct http_resp *r = http_get_as(cursor ? fmt("%s&cursor=%s", base, cursor) : base, key);
        items_of(r);
        cJSON *it;
        cJSON_ArrayForEach(it, jget(resp_json(r), "items")) {
            cr_assert(n < 7, "more rows than logged");
            cr_assert(strcmp(jstr(it, "occurred_at"), prev_at) <= 0, "not newest first");
            prev_at = it_strdup(jstr(it, "occurred_at"));
            seen[n++] = it_strdup(jstr(it, "event_id"));
        }
        const char *next = jstr(resp_json(r), "next_cursor");
        cursor = next ? it_strdup(next) : NULL;
        http_resp_free(r);
        if (!cursor)
            break;
        /* The same cursor under another filter, or another tenant, is refused. */
        r = http_get_as(fmt("/v1/analytics/events?event_type=%s&user_id=u1&limit=3&cursor=%s", t, cursor), key);
        EXPECT_PROBLEM(r, 400, "invalid-cursor");
        http_resp_free(r);
        r = http_get(fmt("%s&cursor=%s", base, cursor));
        EXPECT_PROBLEM(r, 400, "invalid-cursor");
        http_resp_free(r);
    }
    cr_assert_eq(n, 7);
    cr_assert_eq(pages, 2, "7 rows in pages of 3 are 3 pages");
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            cr_assert_str_neq(seen[i], seen[j]);
}

Test(analytics_query, counts_include_empty_buckets)
{
    char *key_a, *key_b;
    make_org_key(1, &key_a);
    make_org_key(1, &key_b);
    char *t = fresh_type();
    log_event(key_a, t, "u1", "2026-03-03T10:05:00Z", "{\"sponsor_id\":\"sp1\"}");
    log_event(key_a, t, "u2", "2026-03-03T10:59:59.999Z", "{\"sponsor_id\":\"sp2\"}");
    log_event(key_a, t, "u2", "2026-03-03T12:00:00Z", "{\"sponsor_id\":\"sp1\"}");
    log_event(key_b, t, "u2", "2026-03-03T11:00:00Z", "{\"sponsor_id\":\"sp1\"}");

    struct http_resp *r = http_get_as(fmt("/v1/analytics/counts?event_type=%s&since=2026-03-03T10:00:00Z"
                                          "&until=2026-03-03T14:00:00Z&bucket=hour", t), key_a);
    cr_assert_eq(items_of(r), 4);
    const long long want[] = {2, 0, 1, 0};
    const char *starts[] = {"2026-03-03T10:00:00.000000Z", "2026-03-03T11:00:00.000000Z",
                            "2026-03-03T12:00:00.000000Z", "2026-03-03T13:00:00.000000Z"};
    for (int i = 0; i < 4; i++) {
        cJSON *b = cJSON_GetArrayItem(jget(resp_json(r), "items"), i);
        EXPECT_STR(b, "start", starts[i]);
        EXPECT_INT(b, "count", want[i]);
    }
    http_resp_free(r);
    r = http_get_as(fmt("/v1/analytics/counts?event_type=%s&payload=%%7B%%22sponsor_id%%22%%3A%%22sp1%%22%%7D"
                        "&since=2026-03-03T00:00:00Z&until=2026-03-05T00:00:00Z&bucket=day", t), NULL);
    cr_assert_eq(items_of(r), 2);
    EXPECT_INT(cJSON_GetArrayItem(jget(resp_json(r), "items"), 0), "count", 3);   /* admin: both orgs */
    EXPECT_INT(cJSON_GetArrayItem(jget(resp_json(r), "items"), 1), "count", 0);
    http_resp_free(r);
    r = http_get_as(fmt("/v1/analytics/counts?event_type=%s&since=2026-03-03T10:00:00Z"
                        "&until=2026-03-03T10:10:00Z&bucket=minute", t), key_a);
    cr_assert_eq(items_of(r), 10);
    EXPECT_INT(cJSON_GetArrayItem(jget(resp_json(r), "items"), 5), "count", 1);
    http_resp_free(r);
}

Test(analytics_query, malformed_filters_are_400)
{
    const char *bad_list[] = {
        "payload=%5B1%5D", "payload=%7B", "payload=1", "payload=%7B%22a%22%3A1%2C%22a%22%3A2%7D",
        "since=yesterday", "until=2026-02-30T00:00:00Z", "since=2026-03-01T00:00:00Z&until=2026-03-01T00:00:00Z",
        "event_type=Bad-Type", "user_id=has%20space", "limit=0", "limit=201", "cursor=abc"};
    const char *bad_counts[] = {
        "since=2026-03-01T00:00:00Z", "until=2026-03-01T00:00:00Z",
        "since=2026-03-01T00:00:00Z&until=2026-04-01T00:00:01Z",
        "since=2026-03-01T00:00:00Z&until=2026-03-09T00:00:00Z&bucket=minute",
        "since=2026-03-01T00:00:00Z&until=2026-03-02T00:00:00Z&bucket=week",
        "since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z",
        "since=2026-03-01T00:00:00Z&until=2026-03-02T00:00:00Z&payload=%22x%22"};

    for (size_t i = 0; i < sizeof bad_list / sizeof bad_list[0]; i++) {
        struct http_resp *r = http_get(fmt("/v1/analytics/events?%s", bad_list[i]));
        cr_assert_eq(r->status, 400, "%s: got %ld %s", bad_list[i], r->status, r->body);
        http_resp_free(r);
    }
    for (size_t i = 0; i < sizeof bad_counts / sizeof bad_counts[0]; i++) {
        struct http_resp *r = http_get(fmt("/v1/analytics/counts?%s", bad_counts[i]));
        EXPECT_PROBLEM(r, 400, "invalid-query");
        http_resp_free(r);
    }
    struct http_resp *r = http_get("/v1/analytics/counts?since=2026-03-01T00:00:00Z&until=2026-04-01T00:00:00Z&bucket=day");
    cr_assert_eq(items_of(r), 31, "exactly 31 days is allowed");
    http_resp_free(r);
}
