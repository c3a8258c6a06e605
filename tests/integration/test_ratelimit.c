/* test_ratelimit.c: rate limiting per API key (issue 3, item 4).
 *
 * Each test starts its own service with --rate-limit-requests 5
 * --rate-limit-window-seconds 3 (or a proxy-routed Redis) and checks:
 *   - an organization key gets exactly 5 answers per window, then 429
 *     rate-limited with Retry-After (integer seconds, 1..3), and a refused
 *     request changes nothing; under concurrency, still exactly 5 pass;
 *   - the limit is per key: another organization's key, and a second key of
 *     the same organization, are unaffected; the admin key is never limited;
 *   - after the window the key is served again;
 *   - the counter eventtrack:rl:{<key_id>} always has a TTL (> 0, never -1),
 *     even when something removed it;
 *   - with Redis unreachable the limiter fails open: requests are admitted,
 *     neither 429 nor 5xx, and limiting resumes when Redis is back.
 * Why: a counter without a TTL locks its owner out forever, and a limiter
 * that fails closed turns a Redis outage into a full outage.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

static const char *LOG = ET_IT_LOG_DIR "/integration-service-ratelimit.log";

static pid_t g_pid = -1;

/* Key ids whose counters this test made: dropped at the end, so that none
 * expires later under another test's global "nothing changed" snapshot
 * (test_bad_inputs.c counts every Redis key). */
static char *g_key_ids[8];
static size_t g_nkey_ids;

static void finish(void)
{
    if (g_pid > 0) {
        http_close();
        stop_spawned_service(g_pid);
        g_pid = -1;
    }
    for (size_t i = 0; i < g_nkey_ids; i++)
        redis_ll("DEL eventtrack:rl:{%s}", g_key_ids[i]);
    g_nkey_ids = 0;
}

TestSuite(ratelimit, .init = it_setup, .fini = finish, .timeout = 60);

static void remember_key(const char *key_id)
{
    if (g_nkey_ids < sizeof g_key_ids / sizeof g_key_ids[0])
        g_key_ids[g_nkey_ids++] = it_strdup(key_id);
}

#define LIMIT 5
#define WINDOW 3

static char *start(const char *const *env)
{
    const char *args[] = {"--threads", "4", "--rate-limit-requests", "5", "--rate-limit-window-seconds", "3", NULL};
    char *base = NULL;
    g_pid = spawn_service(args, env, LOG, &base);
    return base;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct http_resp *get_as(const char *base, const char *path, const char *key)
{
    struct http_req rq = {.method = "GET", .path = path, .auth = key, .base = base};
    return http_do(&rq);
}

static struct http_resp *post_as(const char *base, const char *path, const char *body, const char *key)
{
    struct http_req rq = {.method = "POST", .path = path, .content_type = "application/json", .body = body,
                          .auth = key, .base = base};
    return http_do(&rq);
}

static char *first_key_id(const char *org)
{
    char *id = pg_text("SELECT id FROM api_keys WHERE organization_id = $1 ORDER BY created_at, id LIMIT 1",
                       PG_PARAMS(org));
    cr_assert(id, "no api_keys row for %s", org);
    remember_key(id);
    return id;
}

static char *rl_key(const char *key_id)
{
    return fmt("eventtrack:rl:{%s}", key_id);
}

/* The counter exists and expires within the window: TTL 1..WINDOW, never -1 (no TTL). */
static void expect_ttl(const char *key_id, const char *after)
{
    char *k = rl_key(key_id);
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

Test(ratelimit, a_key_gets_the_limit_per_window_then_429_with_retry_after)
{
    char *b = start(NULL);
    char *key_a = NULL, *key_b = NULL;
    char *a = make_org_key(0, &key_a);
    char *other = make_org_key(0, &key_b);
    char *kid = first_key_id(a);
    (void)first_key_id(other);
    char *path_a = fmt("/v1/organizations/%s", a), *path_b = fmt("/v1/organizations/%s", other);
    /* A second key of A, issued by the admin (not counted against A's first key). */
    char *kpath = fmt("/v1/organizations/%s/keys", a);
    struct http_resp *r = post_as(b, kpath, "{}", NULL);
    EXPECT_JSON(r, 201);
    char *key_a2 = it_strdup(jstr(resp_json(r), "api_key"));
    remember_key(jstr(resp_json(r), "key_id"));

    for (int i = 1; i <= LIMIT; i++) {
        r = get_as(b, path_a, key_a);
        EXPECT_JSON(r, 200);
        char *k = rl_key(kid);
        char *count = redis_text("GET %s", k);
        cr_assert(count && atoll(count) == i, "after request %d the counter %s is %s", i, k, count ? count : "nil");
        expect_ttl(kid, "a request within the limit");
    }
    /* Over the limit: refused before anything happens. */
    char *evt = it_id("evt");
    char *body = fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"Too many\"}", evt, a);
    r = post_as(b, "/v1/events", body, key_a);
    expect_limited(r);
    long retry = strtol(r->retry_after, NULL, 10);
    cr_assert_eq(pg_ll("SELECT count(*) FROM events WHERE id = $1", PG_PARAMS(evt)), 0,
                 "a rate-limited request created its event");
    r = get_as(b, path_a, key_a);
    expect_limited(r);
    expect_ttl(kid, "a refused request");

    /* Other keys are unaffected: another organization's, A's second key, the admin's. */
    for (int i = 0; i < LIMIT; i++) {
        r = get_as(b, path_b, key_b);
        EXPECT_JSON(r, 200);
        r = get_as(b, path_a, key_a2);
        EXPECT_JSON(r, 200);
    }
    for (int i = 0; i < 4 * LIMIT; i++) {
        r = get_as(b, path_a, NULL);
        EXPECT_JSON(r, 200);
    }
    cr_assert_eq(redis_ll("EXISTS %s", rl_key("admin")), 0, "the admin key has a rate-limit counter");

    /* After the window (Retry-After, then polling): served again, in a new window. */
    pause_ms((int)retry * 1000 - 200);
    long long deadline = it_now_ms() + 3000;
    long status = 0;
    while (status != 200 && it_now_ms() < deadline) {
        r = get_as(b, path_a, key_a);
        status = r->status;
        if (status != 200) {
            expect_limited(r);
            pause_ms(100);
        }
    }
    cr_assert_eq(status, 200, "key %s was still limited %d s after Retry-After: %ld", kid, 3, retry);
    char *count = redis_text("GET %s", rl_key(kid));
    cr_assert(count && strcmp(count, "1") == 0, "the new window's counter is %s, expected 1", count ? count : "nil");
    expect_ttl(kid, "the first request of a new window");
    r = post_as(b, "/v1/events", body, key_a);
    EXPECT_JSON(r, 201);
}

Test(ratelimit, exactly_the_limit_passes_under_concurrency)
{
    char *b = start(NULL);
    char *key = NULL;
    char *org = make_org_key(0, &key);
    char *kid = first_key_id(org);
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
    char *count = redis_text("GET %s", rl_key(kid));
    cr_assert(count && atoi(count) == N, "the counter is %s after %d requests", count ? count : "nil", N);
    expect_ttl(kid, "a concurrent burst");
}

Test(ratelimit, a_counter_that_lost_its_ttl_gets_one_back)
{
    char *b = start(NULL);
    char *key = NULL;
    char *org = make_org_key(0, &key);
    char *kid = first_key_id(org);
    char *path = fmt("/v1/organizations/%s", org);
    struct http_resp *r = get_as(b, path, key);
    EXPECT_JSON(r, 200);
    /* A counter left without a TTL (by a crash of an older version, an
     * operator's PERSIST, a restore...) would lock its key out forever. */
    char *k = rl_key(kid);
    cr_assert_eq(redis_ll("PERSIST %s", k), 1);
    cr_assert_eq(redis_ll("TTL %s", k), -1);
    r = get_as(b, path, key);
    EXPECT_JSON(r, 200);
    expect_ttl(kid, "a request on a counter without a TTL");
    char *count = redis_text("GET %s", k);
    cr_assert(count && strcmp(count, "2") == 0, "the counter is %s, expected 2", count ? count : "nil");
}

Test(ratelimit, with_redis_down_requests_are_admitted)
{
    struct proxy *px = proxy_start(redis_store_port());
    char *env_redis = fmt("EVENTTRACK_REDIS_URL=%s", redis_url_via(proxy_port(px)));
    const char *env[] = {env_redis, NULL};
    char *b = start(env);
    char *key = NULL;
    char *org = make_org_key(0, &key);
    (void)first_key_id(org);
    char *path = fmt("/v1/organizations/%s", org);

    /* The limiter works through the proxy... */
    struct http_resp *r;
    for (int i = 0; i < LIMIT; i++) {
        r = get_as(b, path, key);
        EXPECT_JSON(r, 200);
    }
    r = get_as(b, path, key);
    expect_limited(r);

    /* ...and with Redis gone every request is admitted, promptly. */
    proxy_cut(px);
    for (int i = 0; i < 3 * LIMIT; i++) {
        long long t0 = it_now_ms();
        r = get_as(b, path, key);
        EXPECT_JSON(r, 200);
        cr_assert(it_now_ms() - t0 < 2000, "%s took %lld ms with Redis down", r->what, it_now_ms() - t0);
    }
    char *evt = it_id("evt");
    char *body = fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"No Redis\"}", evt, org);
    r = post_as(b, "/v1/events", body, key);
    EXPECT_JSON(r, 201);
    cr_assert_eq(pg_ll("SELECT count(*) FROM events WHERE id = $1", PG_PARAMS(evt)), 1);

    /* Redis back: limiting resumes by itself (the counter of this window is
     * still over the limit, or a new window fills up again). */
    proxy_restore(px);
    long long deadline = it_now_ms() + 10000;
    long status = 200;
    while (status != 429 && it_now_ms() < deadline) {
        r = get_as(b, path, key);
        status = r->status;
        if (status == 429)
            expect_limited(r);
        else
            EXPECT_JSON(r, 200);
        pause_ms(50);
    }
    cr_assert_eq(status, 429, "the limiter did not resume within 10 s of Redis coming back");
}
