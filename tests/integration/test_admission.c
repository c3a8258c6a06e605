/* test_admission.c: what refusals cost, and the limits that hold when Redis
 * refuses writes (issue 11, points 8 and 12; docs/adr/0011).
 *
 *   1. An unknown bearer key repeated 400 times costs PostgreSQL a bounded
 *      number of transactions (the negative cache), while 20 distinct unknown
 *      keys cost at least 20 (the control: the measure sees lookups).
 *   2. A client address with more than --auth-failure-limit failed
 *      authentications gets 429 too-many-failed-authentications, and those
 *      refusals cost PostgreSQL nothing; the admin key still passes; after
 *      Retry-After the address is looked up again.
 *   3. With Redis full (maxmemory reached under noeviction: every write gets
 *      OOM), the per-organization rate limit still limits (exactly the limit
 *      per window) and the ingest quota still refuses the excess, storing
 *      none of a refused request.
 *
 * How PostgreSQL's work is measured: pg_stat_database.xact_commit of a
 * scratch database that only the service under test uses. A backend
 * publishes its counts when it exits, so each measure stops the service and
 * waits for its backends to be gone and the count to settle (bounded loops).
 *
 * Isolation, as in test_faults.c: a scratch database (dropped by .fini; one
 * left by a killed run is dropped by a later run after an hour) and a
 * redis-server of its own (no persistence; ET_IT_REDIS_SERVER names the
 * binary), so that the leaderboard worker of a test service never drains
 * the shared database's outbox into a Redis no one reads.
 *
 * Figures are printed to stderr on lines starting with "admission:".
 */
#include "harness.h"
#include "rig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

/* ---- what a measure reads ----------------------------------------------------------- */

/* Transactions committed in the scratch database, once every backend of it
 * is gone and the count has settled (a backend publishes its counts as it
 * exits, just after it leaves pg_stat_activity). */
static long long settled_commits(void)
{
    const char *const p[] = {rig.db_name, NULL};
    long long deadline = it_now_ms() + 10000, last = -1;
    while (it_now_ms() < deadline) {
        char *busy = pg_text("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", p);
        char *v = pg_text("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", p);
        long long now = v ? atoll(v) : -1;
        bool idle = busy && atoll(busy) == 0;
        free(busy);
        free(v);
        if (idle && now == last)
            return now;
        last = idle ? now : -1;
        it_pause_ms(300);
    }
    cr_assert_fail("the scratch database %s did not settle within 10 s", rig.db_name);
    return -1;
}

/* ---- the rig's lifecycle -------------------------------------------------------------- */

/* The service under test; 0 when none (rig_fini kills one left running). */
static pid_t service;

static void admission_init(void)
{
    static const char *const redis_args[] = {"--maxmemory-policy", "noeviction", NULL};
    it_setup();
    rig_init("admission");
    rig_db_create(false); /* no connection of ours: settled_commits waits for there to be none */
    rig_redis_start(redis_args);
}

static void stop_service(void)
{
    if (service > 0) {
        pid_t pid = service;
        service = 0;
        rig_expect_clean_stop(pid);
    }
}

TestSuite(admission, .init = admission_init, .fini = rig_fini, .timeout = 90);

/* A service on the scratch database and our Redis. The leaderboard worker
 * is slowed down so that its passes do not blur the transaction counts. */
static char *start(const char *const *args)
{
    const char *all[24] = {"--threads", "4", "--leaderboard-sync-ms", "60000"};
    size_t n = 4;
    for (size_t i = 0; args && args[i] && n < 23; i++)
        all[n++] = args[i];
    char *base = NULL;
    service = rig_service(NULL, 0, all, NULL, &base);
    return base;
}

/* An organization with its first key, made with the admin key. */
static char *org_at(const char *base, char **api_key)
{
    char *id = it_id("org");
    struct http_resp *r =
        http_post_json_at_as(base, "/v1/organizations", fmt("{\"id\":\"%s\",\"name\":\"Adm %s\"}", id, id), NULL);
    EXPECT_JSON(r, 201);
    *api_key = it_strdup(jstr(resp_json(r), "api_key"));
    http_resp_free(r);
    return id;
}

static char *unknown_token(void)
{
    return fmt("etk_%s", it_id("unknown"));
}

/* ---- 1. the negative cache ------------------------------------------------------------ */

Test(admission, an_unknown_key_repeated_costs_postgresql_a_bounded_number_of_lookups)
{
    /* The address limit is off: this test is about the cache alone. */
    const char *args[] = {"--auth-failure-limit", "0", "--negative-cache-seconds", "30", NULL};
    enum { DISTINCT = 20, REPEATS = 400, SLACK = 40 };

    /* Control: distinct unknown keys are each looked up. */
    long long c0 = settled_commits();
    char *b = start(args);
    for (int i = 0; i < DISTINCT; i++) {
        struct http_resp *r = http_get_at_as(b, "/v1/organizations/org_none", unknown_token());
        EXPECT_PROBLEM(r, 401, "invalid-token");
        http_resp_free(r);
    }
    stop_service();
    long long c1 = settled_commits();
    fprintf(stderr, "admission: %d distinct unknown keys: %lld PostgreSQL transactions\n", DISTINCT, c1 - c0);
    cr_assert(c1 - c0 >= DISTINCT, "%d distinct unknown keys cost only %lld transactions: the measure does not"
              " see the lookups", DISTINCT, c1 - c0);

    /* One unknown key, repeated: looked up once. */
    b = start(args);
    char *token = unknown_token();
    for (int i = 0; i < REPEATS; i++) {
        struct http_resp *r = http_get_at_as(b, "/v1/organizations/org_none", token);
        EXPECT_PROBLEM(r, 401, "invalid-token");
        cr_assert(r->www_authenticate && strncmp(r->www_authenticate, "Bearer", 6) == 0);
        http_resp_free(r);
    }
    stop_service();
    long long c2 = settled_commits();
    fprintf(stderr, "admission: one unknown key x %d: %lld PostgreSQL transactions (service start and stop"
            " included)\n", REPEATS, c2 - c1);
    cr_assert(c2 - c1 <= SLACK, "one unknown key sent %d times cost %lld PostgreSQL transactions (at most %d"
              " expected: one lookup, plus the service's own start and stop)", REPEATS, c2 - c1, SLACK);
}

/* ---- 2. failed authentications per address -------------------------------------------- */

/* Sends unknown keys until the first 429 (at most `bound` requests); returns
 * how many got 401 before it and sets *retry to its Retry-After. */
static int failures_until_refused(const char *base, const char *path, int bound, long max_retry, long *retry)
{
    for (int failed = 0; failed < bound; failed++) {
        struct http_resp *r = http_get_at_as(base, path, unknown_token());
        if (r->status == 429) {
            EXPECT_PROBLEM(r, 429, "too-many-failed-authentications");
            char *end = NULL;
            *retry = r->retry_after ? strtol(r->retry_after, &end, 10) : -1;
            cr_assert(r->retry_after && *end == '\0' && *retry >= 1 && *retry <= max_retry,
                      "Retry-After %s (1..%ld expected)", r->retry_after ? r->retry_after : "none", max_retry);
            http_resp_free(r);
            return failed;
        }
        EXPECT_PROBLEM(r, 401, "invalid-token");
        http_resp_free(r);
    }
    cr_assert_fail("%d unknown keys from one address and no 429", bound);
    return -1;
}

/* The windows are fixed, so a burst may straddle the end of one: then the
 * address gets its LIMIT failures once more (never more than once here, the
 * window being an hour). The counts below allow for that and no more. */
Test(admission, failed_authentications_per_address_then_429_without_a_lookup)
{
    enum { LIMIT = 10, MORE = 300, SLACK = 40 };
    const char *args[] = {"--auth-failure-limit", "10", "--auth-failure-window-seconds", "3600", NULL};

    long long c0 = settled_commits();
    char *b = start(args);
    char *key = NULL;
    char *org = org_at(b, &key);
    char *path = fmt("/v1/organizations/%s", org);
    long retry = 0;
    int failed = failures_until_refused(b, path, 3 * LIMIT, 3600, &retry);
    cr_assert(failed >= LIMIT && failed <= 2 * LIMIT, "%d failures before the first 429 (limit %d)", failed, LIMIT);
    int looked_up = 0;
    struct http_resp *r;
    for (int i = 0; i < MORE; i++) {
        r = http_get_at_as(b, path, unknown_token());
        if (r->status == 401)
            looked_up++;
        else
            EXPECT_PROBLEM(r, 429, "too-many-failed-authentications");
        http_resp_free(r);
    }
    cr_assert(looked_up <= LIMIT, "%d of %d unknown keys from a refused address were looked up", looked_up, MORE);
    /* A valid organization key from this address waits with the rest (telling
     * it apart would take the lookup); the admin key is never refused. */
    r = http_get_at_as(b, path, key);
    cr_assert(r->status == 429 || looked_up > 0, "a valid key from a refused address got %ld", r->status);
    http_resp_free(r);
    r = http_get_at_as(b, path, NULL);
    EXPECT_JSON(r, 200);
    http_resp_free(r);
    /* A missing key costs nothing and is not counted: still a plain 401. */
    r = http_get_at_as(b, path, "");
    EXPECT_STATUS(r, 401);
    http_resp_free(r);
    stop_service();
    long long c1 = settled_commits();
    fprintf(stderr, "admission: %d failed authentications then %d more (%d looked up): %lld PostgreSQL"
            " transactions\n", failed, MORE, looked_up, c1 - c0);
    cr_assert(c1 - c0 >= LIMIT && c1 - c0 <= 2 * LIMIT + SLACK,
              "%d failures and %d refusals cost %lld PostgreSQL transactions (expected %d to %d: the refusals"
              " must cost none)", failed, MORE, c1 - c0, LIMIT, 2 * LIMIT + SLACK);

    /* With a short window: refused, then, once Retry-After has passed, looked up again. */
    const char *short_args[] = {"--auth-failure-limit", "10", "--auth-failure-window-seconds", "2", NULL};
    b = start(short_args);
    (void)failures_until_refused(b, path, 10 * LIMIT, 2, &retry);
    it_pause_ms(retry * 1000 + 100);
    r = http_get_at_as(b, path, key);
    EXPECT_JSON(r, 200);
    http_resp_free(r);
    r = http_get_at_as(b, path, unknown_token());
    EXPECT_PROBLEM(r, 401, "invalid-token");
    http_resp_free(r);
}

/* ---- 3. Redis full -------------------------------------------------------------------- */

static char *view_batch(const char *session, int n, char **ids)
{
    char *s = it_strdup("{\"batch\":[");
    for (int i = 0; i < n; i++) {
        ids[i] = it_id("view");
        char *next = fmt("%s%s{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"u_%s\","
                         "\"payload\":{\"session_id\":\"%s\"}}", s, i ? "," : "", ids[i], ids[i], session);
        free(s);
        s = next;
    }
    char *out = fmt("%s]}", s);
    free(s);
    return out;
}

static long long logged(char **ids, int n)
{
    long long found = 0;
    for (int i = 0; i < n; i++)
        found += rig_db_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1", PG_PARAMS(ids[i]));
    return found;
}

/* A service on our Redis with every write refused from now on (maxmemory
 * reached under noeviction: OOM), and an organization with a session made
 * before. Returns the number of keys Redis holds, which must not change. */
static long long redis_full(char **base, const char *const *args, char **key, char **org, char **ses)
{
    *base = start(args);
    *org = org_at(*base, key);
    char *evt = it_id("evt");
    struct http_resp *r =
        http_post_json_at_as(*base, "/v1/events",
                             fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"E\"}", evt, *org), NULL);
    EXPECT_JSON(r, 201);
    *ses = it_id("ses");
    r = http_post_json_at_as(
        *base, "/v1/sessions",
        fmt("{\"id\":\"%s\",\"event_id\":\"%s\",\"title\":\"T\",\"speaker_id\":\"spk\"}", *ses, evt), NULL);
    EXPECT_JSON(r, 201);
    freeReplyObject(rig_redis_any("CONFIG SET maxmemory 1"));
    redisReply *oom = rig_redis_any("SET probe 1");
    cr_assert(oom->type == REDIS_REPLY_ERROR && strncmp(oom->str, "OOM", 3) == 0,
              "the test's Redis accepted a write with maxmemory 1: %s", oom->str ? oom->str : "?");
    freeReplyObject(oom);
    redisReply *keys = rig_redis_any("DBSIZE");
    long long n = keys->integer;
    freeReplyObject(keys);
    return n;
}

static void expect_keys(long long before)
{
    redisReply *keys = rig_redis_any("DBSIZE");
    cr_assert_eq(keys->integer, before, "Redis went from %lld to %lld keys while it refused every write", before,
                 keys->integer);
    freeReplyObject(keys);
}

Test(admission, with_redis_refusing_writes_the_rate_limit_still_limits)
{
    enum { RATE = 5, WINDOW = 3 };
    const char *args[] = {"--rate-limit-requests", "5", "--rate-limit-window-seconds", "3", NULL};
    char *b, *key, *org, *ses;
    long long keys_before = redis_full(&b, args, &key, &org, &ses);

    /* Requests until the first 429, whose Retry-After leads to a fresh
     * window: then exactly RATE of many pass. */
    char *path = fmt("/v1/organizations/%s", org);
    struct http_resp *r;
    long retry = 0;
    for (int i = 0; i < 3 * RATE && retry == 0; i++) {
        r = http_get_at_as(b, path, key);
        if (r->status == 429) {
            EXPECT_PROBLEM(r, 429, "rate-limited");
            retry = strtol(r->retry_after, NULL, 10);
        } else {
            EXPECT_JSON(r, 200);
        }
        http_resp_free(r);
    }
    cr_assert(retry >= 1 && retry <= WINDOW, "no 429 with Retry-After 1..%d after %d requests", WINDOW, 3 * RATE);
    /* Until the first 429: RATE + 1 requests, well within the window. */
    it_pause_ms(retry * 1000 + 100);
    int admitted = 0;
    for (long status = 200; status == 200 && admitted <= 4 * RATE;) {
        r = http_get_at_as(b, path, key);
        status = r->status;
        if (status == 429)
            EXPECT_PROBLEM(r, 429, "rate-limited");
        else
            EXPECT_JSON(r, 200);
        admitted += status == 200;
        http_resp_free(r);
    }
    fprintf(stderr, "admission: Redis refusing writes: %d requests admitted in a window, then 429 (limit %d)\n",
            admitted, RATE);
    cr_assert_eq(admitted, RATE, "with Redis refusing writes, %d requests were admitted in one window (limit %d)",
                 admitted, RATE);
    expect_keys(keys_before);
}

Test(admission, with_redis_refusing_writes_the_ingest_quota_still_holds)
{
    enum { QUOTA = 4 };
    const char *args[] = {"--ingest-quota-per-day", "4", NULL};
    char *b, *key, *org, *ses;
    long long keys_before = redis_full(&b, args, &key, &org, &ses);

    /* 3 views pass, the next 3 are refused whole (nothing logged), 1 more fits. */
    char *ids_a[3], *ids_b[3], *ids_c[1];
    struct http_resp *r = http_post_json_at_as(b, "/v1/analytics/events", view_batch(ses, 3, ids_a), key);
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "accepted", 3);
    r = http_post_json_at_as(b, "/v1/analytics/events", view_batch(ses, 3, ids_b), key);
    EXPECT_PROBLEM(r, 429, "ingest-quota-exceeded");
    cr_assert(r->retry_after && atol(r->retry_after) >= 1 && atol(r->retry_after) <= 86400,
              "Retry-After %s: the seconds to 00:00 UTC expected", r->retry_after ? r->retry_after : "none");
    cr_assert_eq(logged(ids_b, 3), 0, "a batch refused by the quota logged some of its envelopes");
    r = http_post_json_at_as(b, "/v1/analytics/events", view_batch(ses, 1, ids_c), key);
    EXPECT_JSON(r, 200);
    cr_assert_eq(logged(ids_a, 3) + logged(ids_c, 1), QUOTA);
    r = http_post_json_at_as(b, "/v1/analytics/events", view_batch(ses, 1, ids_c), key);
    EXPECT_PROBLEM(r, 429, "ingest-quota-exceeded");
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM analytics_events WHERE organization_id = $1", PG_PARAMS(org)), QUOTA);
    expect_keys(keys_before);
}
