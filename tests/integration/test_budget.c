/* test_budget.c: the PostgreSQL connection budget replicas share
 * (pg_connection_budget, service/src/store/budget.c, docs/adr/0013 decision 5).
 *
 * Replicas of 2 threads need 4 connections each (threads, the worker, the
 * claim); a budget of 8 fits two. The third, started last, answers 503
 * store-unavailable with Retry-After to everything that needs PostgreSQL,
 * fails /readyz, writes nothing, and holds no connection beyond its claim;
 * the first two answer every request. When a replica leaves, the waiting one
 * takes its share. When a replica loses all its connections (terminated by
 * the server), the replicas race for its share again: whichever is left out
 * answers 503, the untouched one never does, and the replicas together never
 * hold more than the budget once settled.
 *
 * A rig (scratch database, so its units and its recorded settings are this
 * test's own; own redis-server); replicas are told apart by application_name.
 */
#include "harness.h"
#include "rig.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define BUDGET "8"
#define POLL_MS 100
#define SETTLE_POLLS 100           /* 10 s: a claim is retried every 100 ms pass */

static void budget_init(void)
{
    rig_init("budget");
    rig_db_create(false);
    rig_redis_start(NULL);
}

TestSuite(budget, .init = budget_init, .fini = rig_fini, .timeout = 90);

/* A replica named budget_<tag>: 2 threads, a pass every 100 ms. */
static pid_t replica(char tag, char **base)
{
    static const char *const args[] = {"--threads", "2", "--pg-connection-budget", BUDGET,
                                       "--leaderboard-sync-ms", "100", NULL};
    return rig_service(fmt("%s application_name=budget_%c", rig.db_url, tag), 0, args, NULL, base);
}

/* PostgreSQL connections the replicas hold, all together. */
static long long replica_connections(void)
{
    return pg_ll("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'budget_%'",
                 PG_PARAMS(rig.db_name));
}

/* The status of a read that needs PostgreSQL. */
static long pg_read_status(const char *base, const char *org)
{
    struct http_resp *r = http_get_at(base, fmt("/v1/organizations/%s", org));
    long status = r->status;

    if (status != 200)
        EXPECT_PROBLEM(r, 503, "store-unavailable");
    if (status == 503)
        cr_assert(r->retry_after != NULL, "a 503 beyond the budget without Retry-After");
    http_resp_free(r);
    return status;
}

/* Polls until base answers want (bounded); the status last seen. */
static long status_becomes(const char *base, const char *org, long want)
{
    long status = 0;

    for (int i = 0; i < SETTLE_POLLS && status != want; i++) {
        if (i)
            it_pause_ms(POLL_MS);
        status = pg_read_status(base, org);
    }
    return status;
}

static char *org_at(const char *base)
{
    char *id = it_id("org");
    struct http_resp *r = http_post_json_at(base, "/v1/organizations",
                                            fmt("{\"id\":\"%s\",\"name\":\"Budget %s\"}", id, id));
    EXPECT_JSON(r, 201);
    http_resp_free(r);
    return id;
}

Test(budget, a_replica_beyond_the_budget_gets_503_and_the_others_none)
{
    char *a, *b, *c;
    pid_t pa = replica('a', &a);
    replica('b', &b);
    char *org = org_at(a);
    cr_assert_eq(status_becomes(b, org, 200), 200, "the second replica, within the budget, is refused");
    replica('c', &c);

    struct http_resp *r = http_get_at(c, "/readyz");
    cr_assert_eq(r->status, 503, "the replica beyond the budget is ready: %s", r->body);
    char *refused = it_id("org");
    r = http_post_json_at(c, "/v1/organizations", fmt("{\"id\":\"%s\",\"name\":\"Refused\"}", refused));
    EXPECT_PROBLEM(r, 503, "store-unavailable");
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM organizations WHERE id = $1", PG_PARAMS(refused)), 0,
                 "the refused replica wrote");
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(pg_read_status(a, org), 200, "a replica within the budget answered 503");
        cr_assert_eq(pg_read_status(b, org), 200, "a replica within the budget answered 503");
        cr_assert_eq(pg_read_status(c, org), 503, "the replica beyond the budget answered");
    }
    cr_assert_leq(replica_connections(), 9, "3 replicas hold more than the budget and one claim connection");

    /* The first leaves: the waiting one takes its share; the other never noticed. */
    rig_expect_clean_stop(pa);
    rig_forget_service(pa);
    long status = 0;
    for (int i = 0; i < SETTLE_POLLS && status != 200; i++) {
        it_pause_ms(POLL_MS);
        cr_assert_eq(pg_read_status(b, org), 200, "the replica within the budget answered 503");
        status = pg_read_status(c, org);
    }
    cr_assert_eq(status, 200, "the waiting replica did not take the share of the one that left");
    r = http_get_at(c, "/readyz");
    cr_assert_eq(r->status, 200, "the replica admitted after the other left is not ready: %s", r->body);
    cr_assert_leq(replica_connections(), 8, "the replicas hold more than the budget");
}

Test(budget, a_replica_that_lost_its_connections_does_not_starve_the_others)
{
    char *a, *b, *c;
    replica('a', &a);
    replica('b', &b);
    char *org = org_at(a);
    cr_assert_eq(status_becomes(b, org, 200), 200, "the second replica, within the budget, is refused");
    replica('c', &c);
    cr_assert_eq(pg_read_status(c, org), 503, "the replica beyond the budget answered");

    /* Every connection of a ends at once (a restart of its network, an
     * administrator's pg_terminate_backend): a and c race for its share. */
    cr_assert_geq(pg_ll("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = $1 AND application_name = 'budget_a'", PG_PARAMS(rig.db_name)),
                  1, "replica a held no connection");
    long sa = 0, sc = 0;
    int stable = 0;
    for (int i = 0; i < SETTLE_POLLS && stable < 5; i++) {
        it_pause_ms(POLL_MS);
        cr_assert_eq(pg_read_status(b, org), 200, "the untouched replica answered 503");
        long na = pg_read_status(a, org), nc = pg_read_status(c, org);
        stable = na == sa && nc == sc && (na == 200) != (nc == 200) ? stable + 1 : 0;
        sa = na;
        sc = nc;
    }
    cr_assert(stable >= 5, "a and c did not settle on one of them within the budget (a %ld, c %ld)", sa, sc);
    cr_assert_leq(replica_connections(), 9, "the replicas hold more than the budget and one claim connection");
    cr_log_info("budget: after a lost all its connections, %s holds the share", sa == 200 ? "a" : "c");
}

/* The budget is a setting replicas share (docs/adr/0013 decision 4): one
 * started with another value refuses to start, naming it and both values,
 * and the recorded value stays. */
Test(budget, a_replica_with_another_budget_refuses_to_start)
{
    char *a;
    replica('a', &a);
    cr_assert_eq(rig_db_ll("SELECT value::bigint FROM cluster_settings WHERE name = 'pg_connection_budget'", NULL),
                 8, "the first replica did not record its pg_connection_budget");
    const char *argv[] = {ET_BINARY_PATH, "serve", "--port", "0", "--pg-connection-budget", "9", NULL};
    const char *env[] = {fmt("EVENTTRACK_DATABASE_URL=%s", rig.db_url),
                         fmt("EVENTTRACK_REDIS_URL=%s", rig_redis_url(rig.redis_port)), NULL};
    struct run r = run_binary(argv, env, 10000);
    cr_assert(!r.timed_out && WIFEXITED(r.status) && WEXITSTATUS(r.status) != 0,
              "a replica with pg_connection_budget 9 (others 8) started; stderr: %s", r.err);
    cr_assert(strstr(r.err, "pg_connection_budget") && strstr(r.err, "9") && strstr(r.err, "8"),
              "the refusal does not name the setting and both values: %s", r.err);
    cr_assert_eq(rig_db_ll("SELECT value::bigint FROM cluster_settings WHERE name = 'pg_connection_budget'", NULL),
                 8, "the refused replica changed the recorded value");
}
