/* test_degraded.c: what the service does when a store goes away and comes
 * back -- without touching the shared stores.
 *
 * Each test starts a second service whose PostgreSQL or Redis traffic goes
 * through a TCP proxy inside the test process, and cuts the proxy (every
 * connection reset, new ones refused), then restores it. The contract:
 *   - PostgreSQL down: /readyz 503 with postgres "down" while /readyz/read
 *     stays 200 (it ignores PostgreSQL); requests that need it
 *     503 store-unavailable with Retry-After; the leaderboard reads keep
 *     working (they are served from Redis alone).
 *   - Redis down: the service stays ready (redis "down"), /readyz/read is
 *     503; leaderboard reads
 *     503 (after at most the 100 ms of the read micro-cache); registrations and analytics ingest are unaffected; a rebuild from
 *     PostgreSQL afterwards counts the views Redis missed, exactly once.
 *   - Either way, once the store is back the service recovers on its own
 *     (broken connections are dropped and reopened), and a refused request
 *     saved nothing.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

TestSuite(degraded, .init = it_setup, .timeout = 120);

static const char *LOG = ET_IT_LOG_DIR "/integration-service-degraded.log";

static void expect_unavailable(struct http_resp *r)
{
    EXPECT_PROBLEM(r, 503, "store-unavailable");
    cr_assert(r->retry_after && strcmp(r->retry_after, "1") == 0, "%s: 503 without Retry-After: 1 (got %s)",
              r->what, r->retry_after ? r->retry_after : "none");
}

static char *registration(const char *ses, const char *org)
{
    return fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
               "\"ticket_type\":\"standard\",\"price_paid\":1}",
               ses, it_id("user"), org);
}

Test(degraded, postgres_down_reads_the_board_refuses_writes_and_recovers)
{
    char *org = make_org(5);
    char *evt = make_event(org);
    char *spk = it_id("spk");
    char *ses = make_session(evt, spk);
    post_views((const struct view[]){{ses, NULL}, {ses, NULL}, {ses, NULL}}, 3);
    const struct board_entry board[] = {{spk, 3, 1}};

    struct proxy *px = proxy_start(pg_store_port());
    char *env_db = fmt("EVENTTRACK_DATABASE_URL=%s", pg_url_via(proxy_port(px)));
    const char *env[] = {env_db, NULL};
    const char *args[] = {"--threads", "2", NULL};
    char *b = NULL;
    pid_t pid = spawn_service(args, env, LOG, &b);

    struct http_resp *r = http_get_at(b, "/readyz");
    EXPECT_JSON(r, 200);
    r = http_post_json_at(b, "/v1/registrations", registration(ses, org));
    EXPECT_JSON(r, 201);

    proxy_cut(px);

    r = http_get_at(b, "/readyz");
    EXPECT_STATUS(r, 503);
    EXPECT_STR(resp_json(r), "status", "unready");
    EXPECT_STR(resp_json(r), "postgres", "down");
    EXPECT_STR(resp_json(r), "redis", "ok");
    /* The leaderboard's own readiness ignores PostgreSQL: the boards stay in rotation. */
    r = http_get_at(b, "/readyz/read");
    EXPECT_JSON(r, 200);
    EXPECT_STR(resp_json(r), "status", "ready");
    EXPECT_STR(resp_json(r), "redis", "ok");
    r = http_get_at(b, "/healthz");
    EXPECT_JSON(r, 200);
    for (int i = 0; i < 3; i++) { /* every worker's connection, not just the first */
        r = http_post_json_at(b, "/v1/registrations", registration(ses, org));
        expect_unavailable(r);
    }
    char *opath = fmt("/v1/organizations/%s", org);
    r = http_get_at(b, opath);
    expect_unavailable(r);

    /* The board is served from Redis alone. */
    char *lb = fmt("/v1/events/%s/leaderboard", evt);
    r = http_get_at(b, lb);
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "leaderboard.0.score", 3);
    EXPECT_STR(resp_json(r), "leaderboard.0.speaker_id", spk);
    char *sp = fmt("/v1/events/%s/leaderboard/speakers/%s", evt, spk);
    r = http_get_at(b, sp);
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "score", 3);

    proxy_restore(px);

    /* Recovery is eventual: poll for at most 10 s. */
    long status = 0;
    for (int i = 0; i < 100 && status != 201; i++) {
        if (i)
            it_pause_ms(100);
        r = http_post_json_at(b, "/v1/registrations", registration(ses, org));
        status = r->status;
        if (status != 201)
            expect_unavailable(r);
    }
    cr_assert_eq(status, 201, "the service did not recover within 10 s of PostgreSQL coming back");
    r = http_get_at(b, "/readyz");
    EXPECT_JSON(r, 200);

    /* Exactly the two accepted registrations were saved. */
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE organization_id = $1", PG_PARAMS(org)), 2);
    cr_assert_eq(get_balance(org), 3);
    EXPECT_BOARD(evt, "", board, 1);

    /* An idle keep-alive connection makes the service's SIGTERM drain last
     * its whole period (10 s); close ours first. */
    http_close();
    int st = stop_spawned_service(pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the second service did not exit 0 on SIGTERM (status 0x%x)",
              st);
}

Test(degraded, redis_down_keeps_writes_working_and_a_rebuild_catches_up)
{
    char *org = make_org(5);
    char *evt = make_event(org);
    char *spk = it_id("spk");
    char *ses = make_session(evt, spk);
    post_views((const struct view[]){{ses, NULL}, {ses, NULL}}, 2);

    struct proxy *px = proxy_start(redis_store_port());
    char *env_redis = fmt("EVENTTRACK_REDIS_URL=%s", redis_url_via(proxy_port(px)));
    const char *env[] = {env_redis, NULL};
    const char *args[] = {"--threads", "2", NULL};
    char *b = NULL;
    pid_t pid = spawn_service(args, env, LOG, &b);

    char *lb = fmt("/v1/events/%s/leaderboard", evt);
    struct http_resp *r = http_get_at(b, lb);
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "leaderboard.0.score", 2);

    proxy_cut(px);
    long long cut_ms = it_now_ms();

    /* A board rendered just before the cut may still be served from a
     * worker's micro-cache, for at most its 100 ms (routes/leaderboard.c,
     * ADR 0008); then 503. */
    for (r = http_get_at(b, lb); r->status == 200; r = http_get_at(b, lb)) {
        cr_assert_lt(it_now_ms() - cut_ms, 500, "a board still served 0.5 s after Redis was cut");
        it_pause_ms(10);
    }
    expect_unavailable(r);
    r = http_get_at(b, "/readyz");
    EXPECT_JSON(r, 200);
    EXPECT_STR(resp_json(r), "status", "ready");
    EXPECT_STR(resp_json(r), "postgres", "ok");
    EXPECT_STR(resp_json(r), "redis", "down");
    /* ... while the leaderboard's readiness takes the boards out of rotation. */
    r = http_get_at(b, "/readyz/read");
    EXPECT_STATUS(r, 503);
    EXPECT_STR(resp_json(r), "status", "unready");
    EXPECT_STR(resp_json(r), "redis", "down");
    cr_assert(r->retry_after, "GET /readyz/read: 503 without Retry-After");
    for (int i = 0; i < 3; i++) {
        r = http_get_at(b, lb);
        expect_unavailable(r);
    }
    char *sp = fmt("/v1/events/%s/leaderboard/speakers/%s", evt, spk);
    r = http_get_at(b, sp);
    expect_unavailable(r);

    for (int i = 0; i < 3; i++) {
        r = http_post_json_at(b, "/v1/registrations", registration(ses, org));
        EXPECT_JSON(r, 201);
    }
    cr_assert_eq(get_balance(org), 2);

    /* A view while Redis is away is logged; its retry is still a duplicate. */
    char *vid = it_id("view");
    char *view = fmt("{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"%s\","
                     "\"payload\":{\"session_id\":\"%s\"}}",
                     vid, it_id("att"), ses);
    r = http_post_json_at(b, "/v1/analytics/events", view);
    EXPECT_JSON(r, 201);
    r = http_post_json_at(b, "/v1/analytics/events", view);
    EXPECT_JSON(r, 200);
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1 AND leaderboard_event_id = $2",
                       PG_PARAMS(vid, evt)),
                 1);

    proxy_restore(px);
    long status = 0;
    for (int i = 0; i < 100 && status != 200; i++) {
        if (i)
            it_pause_ms(100);
        r = http_get_at(b, lb);
        status = r->status;
        if (status != 200)
            expect_unavailable(r);
    }
    cr_assert_eq(status, 200, "leaderboard reads did not recover within 10 s of Redis coming back");
    r = http_get_at(b, "/readyz/read");
    EXPECT_JSON(r, 200);

    /* The rebuild counts the missed view, once; a second rebuild changes nothing. */
    const char *argv[] = {ET_BINARY_PATH, "rebuild-leaderboards", evt, NULL};
    for (int i = 0; i < 2; i++) {
        struct run run = run_binary(argv, NULL, 60000);
        cr_assert(!run.timed_out && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
                  "rebuild-leaderboards %s failed: %s", evt, run.err);
        const struct board_entry board[] = {{spk, 3, 1}};
        EXPECT_BOARD(evt, "", board, 1);
    }
    cr_assert(redis_applied_has(evt, vid), "the rebuilt applied set lacks %s", vid);

    /* An idle keep-alive connection makes the service's SIGTERM drain last
     * its whole period (10 s); close ours first. */
    http_close();
    int st = stop_spawned_service(pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the second service did not exit 0 on SIGTERM (status 0x%x)",
              st);
}
