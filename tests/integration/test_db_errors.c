/* test_db_errors.c: what a client and the log learn when PostgreSQL refuses
 * or goes away (issue 11, point 10).
 *
 *   1. Inputs that PostgreSQL itself refuses (a date it cannot store, a
 *      number it cannot hold) answer with a sentence of the service's own:
 *      no PostgreSQL message, SQLSTATE, constraint or relation name in any
 *      answer; nothing is stored.
 *   2. A statement the database will not run at all (a second service whose
 *      sessions are read-only: every write fails with 25006) is a 500 whose
 *      problem document says nothing of it; the service's log keeps the
 *      SQLSTATE and PostgreSQL's message.
 *   3. During a PostgreSQL outage under load the log says so at most once per
 *      thread (the HTTP workers and the background worker), says it again in
 *      the next outage, and the service recovers on its own.
 */
#define _GNU_SOURCE 1 /* strcasestr */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

TestSuite(db_errors, .init = it_setup, .timeout = 120);

/* What PostgreSQL's text would give away. NULL when the text is clean. */
static const char *internal_leak(const char *text)
{
    static const char *const tells[] = {
        "SQLSTATE", "sqlstate", "constraint", "relation", "violates", "syntax error", "date/time field",
        "out of range for type", "overflows numeric", "numeric field overflow", "invalid input syntax",
        "_pkey", "_fkey", "_check", "credit_buckets", "credit_ledger", "analytics_events", "api_keys",
        "idempotency_keys", "22008", "22003", "22007", "23505", "23503", "23514", "42P01", "XX000",
        "does not exist", "read-only transaction", "25006", "PostgreSQL said",
    };
    for (size_t i = 0; i < sizeof tells / sizeof tells[0]; i++)
        if (strstr(text, tells[i]))
            return tells[i];
    return NULL;
}

#define EXPECT_NO_INTERNALS(r)                                                                 \
    do {                                                                                       \
        const char *t_ = internal_leak((r)->body);                                             \
        cr_assert(t_ == NULL, "%s: the answer gives away \"%s\": %s", (r)->what, t_, (r)->body); \
    } while (0)

static long long events_of(const char *user)
{
    return pg_ll("SELECT count(*) FROM analytics_events WHERE user_id = $1", PG_PARAMS(user));
}

Test(db_errors, values_postgresql_refuses_are_answered_in_the_services_words)
{
    char *user = it_id("user");
    const char *const values[] = {
        "\"occurred_at\":\"2026-02-30T00:00:00Z\",\"payload\":{}",
        "\"occurred_at\":\"0000-01-01T00:00:00Z\",\"payload\":{}",
        "\"payload\":{\"n\":1e-70000}",
        "\"payload\":{\"n\":1e400000}",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char *one = fmt("{\"event_type\":\"db.errors\",\"user_id\":\"%s\",%s}", user, values[i]);
        struct http_resp *r = http_post_json("/v1/analytics/events", one);
        cr_assert(r->status == 422 || r->status == 400, "%s: %s -> %ld %s", r->what, one, r->status, r->body);
        EXPECT_NO_INTERNALS(r);
        char *batch = fmt("{\"batch\":[%s]}", one);
        r = http_post_json("/v1/analytics/events", batch);
        cr_assert(r->status == 200 || r->status == 422 || r->status == 400, "%s: %s -> %ld %s", r->what, batch,
                  r->status, r->body);
        EXPECT_NO_INTERNALS(r);
    }
    cr_assert_eq(events_of(user), 0, "a refused envelope was stored");
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *copy = it_malloc(len + 1);
        memcpy(copy, line, len);
        copy[len] = '\0';
        n += strcasestr(copy, needle) != NULL;
        free(copy);
        line += len + (end != NULL);
    }
    return n;
}

/* 25006 is what a standby (an old primary after a failover) answers a write:
 * the connection is dropped so the next request finds the primary (issue 14). */
Test(db_errors, a_read_only_postgresql_is_a_503_that_names_nothing)
{
    static const char *LOG = ET_IT_LOG_DIR "/integration-service-db-errors.log";
    char *env_db = fmt("EVENTTRACK_DATABASE_URL=%s options='-c default_transaction_read_only=on'",
                       pg_url_via(pg_store_port()));
    const char *env[] = {env_db, NULL};
    const char *args[] = {"--threads", "2", NULL};
    char *base = NULL;
    long log_start = file_size(LOG);
    pid_t pid = spawn_service(args, env, LOG, &base);
    char *org = make_org(3);
    char *other = it_id("org");

    struct http_resp *r = http_post_json_at(base, "/v1/organizations", fmt("{\"id\":\"%s\",\"name\":\"x\"}", other));
    EXPECT_PROBLEM(r, 503, "store-unavailable");
    EXPECT_NO_INTERNALS(r);
    r = http_post_json_at(base, fmt("/v1/organizations/%s/credits", org), "{\"amount\":5}");
    EXPECT_PROBLEM(r, 503, "store-unavailable");
    EXPECT_NO_INTERNALS(r);
    cr_assert_eq(pg_ll("SELECT count(*) FROM organizations WHERE id = $1", PG_PARAMS(other)), 0);
    cr_assert_eq(get_balance(org), 3);

    http_close();
    cr_assert_eq(stop_spawned_service(pid), 0);
    char *log = it_file_since(LOG, log_start);
    cr_assert(strstr(log, "25006") && strstr(log, "read-only transaction"),
              "the log does not keep what PostgreSQL said:\n%s", log);
    free(log);
}

/* Requests that each need PostgreSQL, in parallel bursts, for about ms. */
static int load(const char *base, const char *org, int ms)
{
    enum { BURST = 40 };
    long long until = it_now_ms() + ms;
    int sent = 0;
    char *path = fmt("/v1/organizations/%s", org);

    for (int round = 0; round < 200 && it_now_ms() < until; round++) {
        struct http_par p[BURST] = {0};
        for (int i = 0; i < BURST; i++)
            p[i].req = (struct http_req){.method = "GET", .path = path, .base = base};
        http_parallel(p, BURST);
        for (int i = 0; i < BURST; i++) {
            cr_assert(p[i].resp->status == 503 || p[i].resp->status == 200, "%s: %ld %s", p[i].resp->what,
                      p[i].resp->status, p[i].resp->body);
            EXPECT_NO_INTERNALS(p[i].resp);
            http_resp_free(p[i].resp);
        }
        sent += BURST;
    }
    return sent;
}

Test(db_errors, an_outage_is_logged_once_per_thread_and_again_in_the_next)
{
    enum { THREADS = 4 };
    /* Threads that reach PostgreSQL: the HTTP workers and the background
     * worker, which also says once that its leaderboard sync failed, and the
     * connection that holds the replica's share of the connection budget. */
    const int most = THREADS + 3;
    static const char *LOG = ET_IT_LOG_DIR "/integration-service-outage.log";
    char *org = make_org(1);
    struct proxy *px = proxy_start(pg_store_port());
    char *env_db = fmt("EVENTTRACK_DATABASE_URL=%s", pg_url_via(proxy_port(px)));
    const char *env[] = {env_db, NULL};
    char threads[8];
    snprintf(threads, sizeof threads, "%d", THREADS);
    const char *args[] = {"--threads", threads, NULL};
    char *base = NULL;
    pid_t pid = spawn_service(args, env, LOG, &base);

    for (int outage = 1; outage <= 2; outage++) {
        struct http_resp *r = http_get_at(base, fmt("/v1/organizations/%s", org));
        EXPECT_JSON(r, 200);
        long start = file_size(LOG);
        proxy_cut(px);
        int sent = load(base, org, 1500);
        char *log = it_file_since(LOG, start);
        int lines = count_lines_with(log, "postgres");        /* and "PostgreSQL" */
        fprintf(stderr, "db_errors: outage %d: %d request(s), %d log line(s) about PostgreSQL\n", outage, sent,
                lines);
        cr_assert_leq(lines, most, "outage %d: %d lines about PostgreSQL for %d threads:\n%.2000s", outage, lines,
                      THREADS, log);
        cr_assert_geq(lines, 1, "outage %d was not logged at all", outage);
        free(log);
        proxy_restore(px);
        long status = 0;
        for (int i = 0; i < 100 && status != 200; i++) {    /* recovery: at most 10 s */
            if (i)
                it_pause_ms(100);
            r = http_get_at(base, fmt("/v1/organizations/%s", org));
            status = r->status;
        }
        cr_assert_eq(status, 200, "the service did not recover within 10 s of PostgreSQL coming back");
    }
    http_close();
    int st = stop_spawned_service(pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the service did not exit 0 on SIGTERM (0x%x)", st);
}
