/* test_quota.c: the per-organization ingest quota (issue 11, point 12;
 * docs/adr/0011-ingest-quota-and-admission.md).
 *
 * A service of its own with --ingest-quota-per-day 5, on the suite's stores:
 *   - an organization's envelopes are counted per UTC day in
 *     eventtrack:quota:{ORG}:DAY, a counter with a TTL;
 *   - a request that would go over is refused whole: 429
 *     ingest-quota-exceeded with Retry-After (the seconds to 00:00 UTC), no
 *     envelope of it logged, the board and the counter unchanged;
 *   - envelopes that are not logged (duplicates) are given back, so a retry
 *     does not pay twice; a request that fits exactly passes;
 *   - another organization, and the admin key, are unaffected.
 * (Redis refusing writes: test_admission.c.)
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

static const char *LOG = ET_IT_LOG_DIR "/integration-service-quota.log";

static pid_t g_pid = -1;
static char *g_orgs[4];
static size_t g_norgs;

/* Sums (or deletes) the quota counters of an organization, whatever the day. */
static const char *const SUM_COUNTERS =
    "local s = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do"
    " s = s + tonumber(redis.call('GET', k)) end return s";
static const char *const DEL_COUNTERS =
    "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do"
    " n = n + redis.call('DEL', k) end return n";

static char *counters_of(const char *org)
{
    return fmt("eventtrack:quota:{%s}:*", org);
}

static void finish(void)
{
    release_spawned_service(&g_pid);
    for (size_t i = 0; i < g_norgs; i++)
        redis_ll("EVAL %s 0 %s", DEL_COUNTERS, counters_of(g_orgs[i]));
    g_norgs = 0;
}

TestSuite(quota, .init = it_setup, .fini = finish, .timeout = 60);

#define QUOTA 5

static char *start(void)
{
    const char *args[] = {"--threads", "4", "--ingest-quota-per-day", "5", NULL};
    char *base = NULL;
    g_pid = spawn_service(args, NULL, LOG, &base);
    return base;
}

static char *quota_org(char **key)
{
    char *org = make_org_key(0, key);
    if (g_norgs < sizeof g_orgs / sizeof g_orgs[0])
        g_orgs[g_norgs++] = org;
    return org;
}

static long long used(const char *org)
{
    return redis_ll("EVAL %s 0 %s", SUM_COUNTERS, counters_of(org));
}

static char *view(const char *id, const char *session)
{
    return fmt("{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"u_%s\","
               "\"payload\":{\"session_id\":\"%s\"}}", id, id, session);
}

/* {"batch":[...]} of the views with these ids. */
static char *batch(const char *session, char *const *ids, int n)
{
    char *s = it_strdup("{\"batch\":[");
    for (int i = 0; i < n; i++) {
        char *next = fmt("%s%s%s", s, i ? "," : "", view(ids[i], session));
        free(s);
        s = next;
    }
    char *out = fmt("%s]}", s);
    free(s);
    return out;
}

static struct http_resp *ingest(const char *base, const char *body, const char *key)
{
    struct http_req rq = {.method = "POST", .path = "/v1/analytics/events", .content_type = "application/json",
                          .body = body, .auth = key, .base = base};
    return http_do(&rq);
}

static long long logged(const char *org)
{
    return pg_ll("SELECT count(*) FROM analytics_events WHERE organization_id = $1", PG_PARAMS(org));
}

static void expect_quota_refusal(struct http_resp *r)
{
    EXPECT_PROBLEM(r, 429, "ingest-quota-exceeded");
    char *end = NULL;
    long secs = r->retry_after ? strtol(r->retry_after, &end, 10) : -1;
    cr_assert(r->retry_after && *end == '\0' && secs >= 1 && secs <= 86400,
              "%s: Retry-After must be the seconds to 00:00 UTC (1..86400), got %s", r->what,
              r->retry_after ? r->retry_after : "none");
}

Test(quota, the_excess_is_refused_whole_and_what_is_not_logged_is_given_back)
{
    char *b = start();
    char *key = NULL, *key_other = NULL;
    char *org = quota_org(&key);
    char *other = quota_org(&key_other);
    char *evt = make_event(org), *spk = it_id("spk");
    char *ses = make_session(evt, spk);
    char *evt_o = make_event(other);
    char *ses_o = make_session(evt_o, it_id("spk"));
    char *a[3] = {it_id("view"), it_id("view"), it_id("view")};

    struct http_resp *r = ingest(b, batch(ses, a, 3), key);
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "accepted", 3);
    cr_assert_eq(used(org), 3);
    long long ttl = redis_ll("TTL %s", fmt("eventtrack:quota:{%s}:%lld", org, (long long)(time(NULL) / 86400)));
    cr_assert(ttl == -2 || (ttl > 86400 && ttl <= 172800), "the day's counter has TTL %lld (expected 1..2 days;"
              " -2 only if the day turned meanwhile)", ttl);

    /* 3 + 3 > 5: the whole batch is refused, nothing of it logged or counted. */
    char *refused[3] = {it_id("view"), it_id("view"), it_id("view")};
    r = ingest(b, batch(ses, refused, 3), key);
    expect_quota_refusal(r);
    cr_assert_eq(logged(org), 3, "a refused batch logged envelopes");
    cr_assert_eq(used(org), 3, "a refused batch was counted");
    cr_assert_eq(redis_score(evt, spk), 3, "a refused batch moved the board");

    /* A duplicate is given back: a retry does not pay twice. */
    r = ingest(b, view(a[0], ses), key);
    EXPECT_JSON(r, 200);
    cr_assert_eq(used(org), 3, "a duplicate was counted");
    char *mixed[2] = {a[1], it_id("view")};         /* one duplicate, one new */
    r = ingest(b, batch(ses, mixed, 2), key);
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "accepted", 1);
    cr_assert_eq(used(org), 4);

    /* Exactly up to the quota, then no further. */
    r = ingest(b, view(it_id("view"), ses), key);
    EXPECT_JSON(r, 201);
    cr_assert_eq(used(org), QUOTA);
    char *late = it_id("view");
    r = ingest(b, view(late, ses), key);
    expect_quota_refusal(r);
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1", PG_PARAMS(late)), 0);
    cr_assert_eq(logged(org), QUOTA);
    cr_assert_eq(redis_score(evt, spk), QUOTA);

    /* Another organization has its own quota; the admin key has none. */
    char *o[3] = {it_id("view"), it_id("view"), it_id("view")};
    r = ingest(b, batch(ses_o, o, 3), key_other);
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "accepted", 3);
    char *admin_ids[QUOTA + 1];
    for (int i = 0; i <= QUOTA; i++)
        admin_ids[i] = it_id("view");
    r = ingest(b, batch(ses, admin_ids, QUOTA + 1), NULL);
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "accepted", QUOTA + 1);
}

/* A request larger than the whole quota can never pass: refused at once,
 * and the detail says so (the client must split it across days). */
Test(quota, a_batch_larger_than_the_quota_is_refused)
{
    char *b = start();
    char *key = NULL;
    char *org = quota_org(&key);
    char *ses = make_session(make_event(org), it_id("spk"));
    char *ids[QUOTA + 1];
    for (int i = 0; i <= QUOTA; i++)
        ids[i] = it_id("view");
    struct http_resp *r = ingest(b, batch(ses, ids, QUOTA + 1), key);
    expect_quota_refusal(r);
    cr_assert_eq(logged(org), 0);
    cr_assert_eq(used(org), 0);
}
