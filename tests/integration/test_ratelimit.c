/* test_ratelimit.c: rate limiting per organization (issue 3, item 4; issue
 * 11, points 8 and 12).
 *
 * Each test starts its own service with --rate-limit-requests 5
 * --rate-limit-window-seconds 3 (or a proxy-routed Redis) and checks:
 *   - an organization gets exactly 5 answers per window, then 429
 *     rate-limited with Retry-After (integer seconds, 1..3), and a refused
 *     request changes nothing; under concurrency, still exactly 5 pass;
 *   - the limit is per organization, not per key: a second key of the same
 *     organization (even one it minted itself) draws on the same window;
 *     another organization is unaffected; the admin key is never limited;
 *   - after the window the organization is served again;
 *   - the counter eventtrack:rl:{<organization_id>} always has a TTL (> 0,
 *     never -1), even when something removed it;
 *   - with Redis unreachable the process limits by itself: exactly 5 per
 *     window are admitted (neither refused wholesale nor 5xx), promptly, and
 *     Redis counts again when it is back. (Redis answering but refusing
 *     writes is test_admission.c's.)
 * Why: a counter without a TTL locks its owner out forever; a limiter that
 * fails closed turns a Redis outage into a full outage, and one that fails
 * open lets a runaway client through exactly when Redis is in trouble.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

static const char *LOG = ET_IT_LOG_DIR "/integration-service-ratelimit.log";

static pid_t g_pid = -1;

/* Organizations whose counters this test made: dropped at the end, so that
 * none expires later under another test's global "nothing changed" snapshot
 * (test_bad_inputs.c counts every Redis key). */
static char *g_orgs[8];
static size_t g_norgs;

static void finish(void)
{
    release_spawned_service(&g_pid);
    for (size_t i = 0; i < g_norgs; i++)
        redis_ll("DEL eventtrack:rl:{%s}", g_orgs[i]);
    g_norgs = 0;
}

TestSuite(ratelimit, .init = it_setup, .fini = finish, .timeout = 60);

static void remember_org(const char *org)
{
    if (g_norgs < sizeof g_orgs / sizeof g_orgs[0])
        g_orgs[g_norgs++] = it_strdup(org);
}

#define LIMIT 5
#define WINDOW 3

static char *start_window(const char *const *env, const char *window)
{
    const char *args[] = {"--threads", "4", "--rate-limit-requests", "5", "--rate-limit-window-seconds", window,
                          NULL};
    char *base = NULL;
    g_pid = spawn_service(args, env, LOG, &base);
    return base;
}

static char *start(const char *const *env)
{
    return start_window(env, "3");
}

/* An organization made over HTTP with its first key; its counter is dropped at the end. */
static char *limited_org(char **api_key)
{
    char *org = make_org_key(0, api_key);
    remember_org(org);
    return org;
}

static char *rl_key(const char *org)
{
    return fmt("eventtrack:rl:{%s}", org);
}

/* The counter exists and expires within the window: TTL 1..WINDOW, never -1 (no TTL). */
static void expect_ttl(const char *org, const char *after)
{
    char *k = rl_key(org);
    long long ttl = redis_ll("TTL %s", k);
    cr_assert(ttl >= 1 && ttl <= WINDOW, "after %s: TTL %s is %lld (expected 1 to %d; -1 is a counter "
              "that never expires, -2 no counter)", after, k, ttl, WINDOW);
    free(k);
}

static void expect_limited(struct http_resp *r)
{
    EXPECT_PROBLEM(r, 429, "rate-limited");
    char *end = NULL;
    long secs = r->retry_after ? strtol(r->retry_after, &end, 10) : -1;
    cr_assert(r->retry_after && end != r->retry_after && *end == '\0' && secs >= 1 && secs <= WINDOW,
              "%s: 429 needs Retry-After as integer seconds 1..%d (got %s)", r->what, WINDOW,
              r->retry_after ? r->retry_after : "none");
}

Test(ratelimit, an_organization_gets_the_limit_per_window_then_429_with_retry_after)
{
    char *b = start(NULL);
    char *key_a = NULL, *key_b = NULL;
    char *a = limited_org(&key_a);
    char *other = limited_org(&key_b);
    char *path_a = fmt("/v1/organizations/%s", a), *path_b = fmt("/v1/organizations/%s", other);
    /* A second key of A, issued by the admin (the admin is not counted). */
    char *kpath = fmt("/v1/organizations/%s/keys", a);
    struct http_resp *r = http_post_json_at_as(b, kpath, "{}", NULL);
    EXPECT_JSON(r, 201);
    char *key_a2 = it_strdup(jstr(resp_json(r), "api_key"));

    /* Both keys of A draw on one window: 3 requests with one, 2 with the other. */
    for (int i = 1; i <= LIMIT; i++) {
        r = http_get_at_as(b, path_a, i <= 3 ? key_a : key_a2);
        EXPECT_JSON(r, 200);
        char *k = rl_key(a);
        char *count = redis_text("GET %s", k);
        cr_assert(count && atoll(count) == i, "after request %d the counter %s is %s", i, k, count ? count : "nil");
        expect_ttl(a, "a request within the limit");
    }
    /* Over the limit: refused before anything happens, with either key. */
    char *evt = it_id("evt");
    char *body = fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"Too many\"}", evt, a);
    r = http_post_json_at_as(b, "/v1/events", body, key_a);
    expect_limited(r);
    long retry = strtol(r->retry_after, NULL, 10);
    cr_assert_eq(pg_ll("SELECT count(*) FROM events WHERE id = $1", PG_PARAMS(evt)), 0,
                 "a rate-limited request created its event");
    r = http_get_at_as(b, path_a, key_a);
    expect_limited(r);
    r = http_get_at_as(b, path_a, key_a2);
    expect_limited(r);
    expect_ttl(a, "a refused request");
    /* A key A mints for itself is refused as well: keys buy no requests. */
    r = http_post_json_at_as(b, kpath, "{}", key_a);
    expect_limited(r);

    /* Others are unaffected: another organization, and the admin key. */
    for (int i = 0; i < LIMIT; i++) {
        r = http_get_at_as(b, path_b, key_b);
        EXPECT_JSON(r, 200);
    }
    for (int i = 0; i < 4 * LIMIT; i++) {
        r = http_get_at_as(b, path_a, NULL);
        EXPECT_JSON(r, 200);
    }
    cr_assert_eq(redis_ll("EXISTS %s", rl_key("admin")), 0, "the admin key has a rate-limit counter");

    /* After the window (Retry-After, then polling): served again, in a new window. */
    it_pause_ms((int)retry * 1000 - 200);
    long long deadline = it_now_ms() + 3000;
    long status = 0;
    while (status != 200 && it_now_ms() < deadline) {
        r = http_get_at_as(b, path_a, key_a2);
        status = r->status;
        if (status != 200) {
            expect_limited(r);
            it_pause_ms(100);
        }
    }
    cr_assert_eq(status, 200, "organization %s was still limited %d s after Retry-After: %ld", a, 3, retry);
    char *count = redis_text("GET %s", rl_key(a));
    cr_assert(count && strcmp(count, "1") == 0, "the new window's counter is %s, expected 1", count ? count : "nil");
    expect_ttl(a, "the first request of a new window");
    r = http_post_json_at_as(b, "/v1/events", body, key_a);
    EXPECT_JSON(r, 201);
}

/* An organization key mints keys (api.md): each new key still shares the
 * organization's window, so a client cannot multiply its limit. */
Test(ratelimit, keys_an_organization_mints_share_its_window)
{
    char *b = start_window(NULL, "60");    /* 2 x LIMIT requests, all inside one window */
    char *key = NULL;
    char *org = limited_org(&key);
    char *kpath = fmt("/v1/organizations/%s/keys", org), *path = fmt("/v1/organizations/%s", org);
    char *keys[LIMIT];
    for (int i = 0; i < LIMIT - 1; i++) {     /* LIMIT - 1 requests: mint LIMIT - 1 keys */
        struct http_resp *r = http_post_json_at_as(b, kpath, "{}", key);
        EXPECT_JSON(r, 201);
        keys[i] = it_strdup(jstr(resp_json(r), "api_key"));
    }
    struct http_resp *r = http_get_at_as(b, path, keys[0]);   /* the LIMIT-th request */
    EXPECT_JSON(r, 200);
    for (int i = 0; i < LIMIT - 1; i++) {
        r = http_get_at_as(b, path, keys[i]);
        EXPECT_PROBLEM(r, 429, "rate-limited");
    }
    char *count = redis_text("GET %s", rl_key(org));
    cr_assert(count && atoll(count) == 2 * LIMIT - 1, "the organization's counter is %s after %d requests",
              count ? count : "nil", 2 * LIMIT - 1);
}

Test(ratelimit, exactly_the_limit_passes_under_concurrency)
{
    char *b = start(NULL);
    char *key = NULL;
    char *org = limited_org(&key);
    char *path = fmt("/v1/organizations/%s", org);
    enum { N = 24 };
    struct http_par reqs[N];
    memset(reqs, 0, sizeof reqs);
    for (int i = 0; i < N; i++)
        reqs[i].req = (struct http_req){.method = "GET", .path = path, .auth = key, .base = b};
    http_parallel(reqs, N);
    int ok = 0, limited = 0;
    for (int i = 0; i < N; i++) {
        if (reqs[i].resp->status == 200) {
            ok++;
        } else {
            expect_limited(reqs[i].resp);
            limited++;
        }
    }
    cr_assert(ok == LIMIT && limited == N - LIMIT, "%d concurrent requests: %d admitted, %d limited (expected %d, %d)",
              N, ok, limited, LIMIT, N - LIMIT);
    char *count = redis_text("GET %s", rl_key(org));
    cr_assert(count && atoi(count) == N, "the counter is %s after %d requests", count ? count : "nil", N);
    expect_ttl(org, "a concurrent burst");
}

Test(ratelimit, a_counter_that_lost_its_ttl_gets_one_back)
{
    char *b = start(NULL);
    char *key = NULL;
    char *org = limited_org(&key);
    char *path = fmt("/v1/organizations/%s", org);
    struct http_resp *r = http_get_at_as(b, path, key);
    EXPECT_JSON(r, 200);
    /* A counter left without a TTL (by a crash of an older version, an
     * operator's PERSIST, a restore...) would lock its key out forever. */
    char *k = rl_key(org);
    cr_assert_eq(redis_ll("PERSIST %s", k), 1);
    cr_assert_eq(redis_ll("TTL %s", k), -1);
    r = http_get_at_as(b, path, key);
    EXPECT_JSON(r, 200);
    expect_ttl(org, "a request on a counter without a TTL");
    char *count = redis_text("GET %s", k);
    cr_assert(count && strcmp(count, "2") == 0, "the counter is %s, expected 2", count ? count : "nil");
}

Test(ratelimit, with_redis_down_the_process_still_limits)
{
    struct proxy *px = proxy_start(redis_store_port());
    char *env_redis = fmt("EVENTTRACK_REDIS_URL=%s", redis_url_via(proxy_port(px)));
    const char *env[] = {env_redis, NULL};
    char *b = start(env);
    char *key = NULL;
    char *org = limited_org(&key);
    char *path = fmt("/v1/organizations/%s", org);

    /* The limiter works through the proxy... */
    struct http_resp *r;
    for (int i = 0; i < LIMIT; i++) {
        r = http_get_at_as(b, path, key);
        EXPECT_JSON(r, 200);
    }
    r = http_get_at_as(b, path, key);
    expect_limited(r);

    /* ...and with Redis gone the process counts: in each window exactly
     * LIMIT requests are admitted (one of them a write that takes effect),
     * the rest get 429, all promptly. Two windows, so that the admitted
     * ones are not an accident of where the cut fell. */
    proxy_cut(px);
    for (int window = 0; window < 2; window++) {
        int admitted = 0, limited = 0;
        long retry = WINDOW;
        /* The second burst stops at its first 429: LIMIT + 1 requests, well
         * within the window it started. */
        for (int i = 0; i < 3 * LIMIT && !(window == 1 && limited > 0); i++) {
            long long t0 = it_now_ms();
            char *evt = it_id("evt");
            char *body = fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"No Redis\"}", evt, org);
            r = i == 0 ? http_post_json_at_as(b, "/v1/events", body, key) : http_get_at_as(b, path, key);
            cr_assert(it_now_ms() - t0 < 2000, "%s took %lld ms with Redis down", r->what, it_now_ms() - t0);
            if (r->status == 429) {
                expect_limited(r);
                retry = strtol(r->retry_after, NULL, 10);
                limited++;
            } else {
                EXPECT_JSON(r, i == 0 ? 201 : 200);
                admitted++;
                if (i == 0)
                    cr_assert_eq(pg_ll("SELECT count(*) FROM events WHERE id = $1", PG_PARAMS(evt)), 1);
            }
        }
        /* The first burst may straddle two windows (then up to 2 x LIMIT
         * pass); the second starts just after a window began (Retry-After),
         * so it sees one whole window: exactly LIMIT. */
        cr_assert(window == 0 ? admitted >= LIMIT && admitted <= 2 * LIMIT && limited >= 1 : admitted == LIMIT,
                  "with Redis down, burst %d: %d admitted, %d limited (limit %d per window)", window, admitted,
                  limited, LIMIT);
        /* The pause counts from a 429 of the window the burst ended in: a
         * slow first burst (ASan) can straddle two windows and end on admitted
         * requests of the next one, and an earlier 429's Retry-After would
         * then start the second burst in a window already partly spent. */
        for (int i = 0; r->status != 429 && i < 2 * LIMIT; i++) {
            r = http_get_at_as(b, path, key);
            if (r->status == 429) {
                expect_limited(r);
                retry = strtol(r->retry_after, NULL, 10);
            }
        }
        cr_assert_eq(r->status, 429, "more than %d requests in one window were admitted with Redis down", LIMIT);
        it_pause_ms((int)retry * 1000 + 100);
    }

    /* Redis back: Redis counts again by itself (its counter fills up). */
    proxy_restore(px);
    long long deadline = it_now_ms() + 10000;
    long long counted = 0;
    while (counted < 1 && it_now_ms() < deadline) {
        r = http_get_at_as(b, path, key);
        if (r->status == 429)
            expect_limited(r);
        else
            EXPECT_JSON(r, 200);
        char *c = redis_text("GET %s", rl_key(org));
        counted = c ? atoll(c) : 0;
        it_pause_ms(50);
    }
    cr_assert(counted >= 1, "Redis did not count again within 10 s of coming back");
}
