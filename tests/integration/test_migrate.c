/* test_migrate.c: `eventtrack migrate` with a migration that must run
 * outside a transaction (schema/0008: CREATE INDEX CONCURRENTLY of the GIN
 * index on the analytics payload, whose pending list schema/0009 turns off;
 * service/src/store/migrate.c design notes 2-4), and the analytics
 * containment filter answered through that index.
 *
 * Each test has a scratch database of its own (rig.h), migrated by the rig
 * before the test starts, and puts it back into a state a real deployment can
 * be in: the migration not recorded (a migrate killed before its record), an
 * INVALID index (a concurrent build that failed), two migrates at once while
 * a writer holds the table (two replicas starting, the Kubernetes Job).
 */
#include "harness.h"
#include "rig.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define GIN "analytics_events_payload_gin"
#define GIN_MIGRATION "0008_analytics_payload_gin"
#define GIN_SETTING_MIGRATION "0009_analytics_gin_without_pending_list"
#define MIGRATE_TIMEOUT_MS 60000
#define WAIT_MS 30000   /* bound of every wait for the database to reach a state */

static void migrate_init(void)
{
    it_setup();
    rig_init("migrate");
}

TestSuite(migrate, .init = migrate_init, .fini = rig_fini, .timeout = 120);

static struct run migrate_scratch(void)
{
    char *env_db = fmt("EVENTTRACK_DATABASE_URL=%s", rig.db_url);
    const char *argv[] = {ET_BINARY_PATH, "migrate", NULL};
    const char *env[] = {env_db, NULL};
    return run_binary(argv, env, MIGRATE_TIMEOUT_MS);
}

static void expect_migrated(const struct run *r, int applied)
{
    cr_assert(!r->timed_out && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
              "migrate failed; stderr: %s", r->err);
    char *want = fmt("%d migration(s) applied", applied);
    cr_assert(strstr(r->out, want) != NULL, "migrate said \"%s\", expected \"%s\"", r->out, want);
}

/* A statement on the scratch database that returns no rows. */
static void scratch_exec(const char *sql)
{
    PGresult *res = PQexec(rig.db, sql);
    cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
}

/* The GIN index as PostgreSQL has it: its oid (-1 when absent) and whether it is valid. */
static long long gin_oid(void)
{
    return rig_db_ll("SELECT coalesce((SELECT to_regclass('" GIN "')::oid::bigint), -1)", NULL);
}

static void expect_gin_valid(void)
{
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('" GIN "')"
                           " AND indisvalid AND indisready", NULL), 1, GIN " is missing or not valid");
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM pg_indexes WHERE indexname = '" GIN "'"
                           " AND indexdef LIKE '%USING gin (payload jsonb_path_ops)%'", NULL), 1,
                 GIN " is not the GIN (jsonb_path_ops) index on payload that schema/0008 defines");
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM pg_class WHERE oid = to_regclass('" GIN "')"
                           " AND reloptions @> ARRAY['fastupdate=off']", NULL), 1,
                 GIN " has a pending list: schema/0009 sets fastupdate = off");
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM schema_migrations WHERE version IN ('" GIN_MIGRATION "', '"
                           GIN_SETTING_MIGRATION "')", NULL), 2);
}

/* As a migrate killed after its build and before its record leaves it: the
 * migrations after 0008 (0009 sets the index's fastupdate) never ran either. */
static int forget_the_migration(void)
{
    return (int)rig_db_ll("WITH forgotten AS (DELETE FROM schema_migrations WHERE version >= '" GIN_MIGRATION "'"
                          " RETURNING 1) SELECT count(*) FROM forgotten", NULL);
}

static void insert_log_rows(void)
{
    scratch_exec("INSERT INTO analytics_events (event_id, event_type, user_id, occurred_at, payload) VALUES"
                 " ('mg-1', 'page_view', 'u1', now(), '{\"a\": 1}'),"
                 " ('mg-2', 'page_view', 'u2', now(), '{\"a\": 2}')");
}

Test(migrate, the_concurrent_build_is_recorded_once_and_a_rerun_changes_nothing)
{
    rig_db_create(true);
    expect_gin_valid();
    long long oid = gin_oid();
    long long versions = rig_db_ll("SELECT count(*) FROM schema_migrations", NULL);

    struct run r = migrate_scratch();
    expect_migrated(&r, 0);
    cr_assert_eq(gin_oid(), oid, "a second migrate rebuilt the index");
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM schema_migrations", NULL), versions);
    expect_gin_valid();
}

Test(migrate, an_invalid_index_left_by_a_failed_concurrent_build_is_dropped_and_rebuilt)
{
    rig_db_create(true);
    insert_log_rows();
    int forgotten = forget_the_migration();
    scratch_exec("DROP INDEX " GIN);
    /* A real failed CONCURRENTLY build under the index's name: a unique
     * index over two equal values fails in its last phase and stays behind
     * INVALID. IF NOT EXISTS alone would keep it. */
    PGresult *res = PQexec(rig.db, "CREATE UNIQUE INDEX CONCURRENTLY " GIN " ON analytics_events (event_type)");
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    cr_assert(state && strcmp(state, "23505") == 0, "the failing build did not fail on the duplicate: %s",
              PQresultErrorMessage(res));
    PQclear(res);
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('" GIN "')"
                           " AND NOT indisvalid", NULL), 1, "the failed build left no INVALID index");

    struct run r = migrate_scratch();
    expect_migrated(&r, forgotten);
    cr_assert(strstr(r.err, "INVALID") != NULL, "migrate did not say it rebuilt an INVALID index: %s", r.err);
    expect_gin_valid();
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM analytics_events WHERE event_id IN ('mg-1', 'mg-2')", NULL), 2,
                 "the repair touched the log's rows");
}

Test(migrate, a_valid_index_whose_record_was_lost_is_kept_not_rebuilt)
{
    rig_db_create(true);
    long long oid = gin_oid();
    int forgotten = forget_the_migration();

    struct run r = migrate_scratch();
    expect_migrated(&r, forgotten);
    cr_assert_eq(gin_oid(), oid, "a valid index was dropped and rebuilt");
    expect_gin_valid();
}

struct migrate_thread {
    pthread_t thread;
    struct run run;
};

static void *migrate_in_thread(void *arg)
{
    struct migrate_thread *t = arg;
    t->run = migrate_scratch();
    return NULL;
}

/* Waits until `sql` (a count over pg_stat_activity of the scratch database)
 * is at least 1. */
static void wait_for_activity(const char *what, const char *sql)
{
    long long t0 = it_now_ms();
    while (rig_db_ll(sql, PG_PARAMS(rig.db_name)) < 1) {
        cr_assert(it_now_ms() - t0 < WAIT_MS, "after %d s still no %s", WAIT_MS / 1000, what);
        it_pause_ms(50);
    }
}

/* Two migrates while the concurrent build waits for a writer: the second
 * must wait for the first without holding a snapshot, or the build waits for
 * the second, the second for the first's lock, and PostgreSQL aborts one of
 * them as a deadlock (store/migrate.c design note 4). */
Test(migrate, two_migrates_racing_a_concurrent_build_both_succeed_and_build_once)
{
    rig_db_create(true);
    int forgotten = forget_the_migration();
    scratch_exec("DROP INDEX " GIN);
    /* A writer in flight: the build's first phase waits for it. */
    PGconn *writer = PQconnectdb(rig.db_url);
    cr_assert(PQstatus(writer) == CONNECTION_OK, "%s", PQerrorMessage(writer));
    PGresult *res = PQexec(writer, "BEGIN; INSERT INTO analytics_events (event_id, event_type, user_id,"
                                   " occurred_at, payload) VALUES ('mg-w', 'page_view', 'u', now(), '{}')");
    cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);

    struct migrate_thread a = {0}, b = {0};
    cr_assert(pthread_create(&a.thread, NULL, migrate_in_thread, &a) == 0);
    wait_for_activity("concurrent build waiting for the writer",
                      "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
                      " AND query LIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'");
    cr_assert(pthread_create(&b.thread, NULL, migrate_in_thread, &b) == 0);
    wait_for_activity("second migrate asking for the migrations' lock",
                      "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
                      " AND query LIKE '%advisory_lock(7310562)%' AND query NOT LIKE '%pg_stat_activity%'");
    res = PQexec(writer, "ROLLBACK");
    PQclear(res);
    PQfinish(writer);
    pthread_join(a.thread, NULL);
    pthread_join(b.thread, NULL);

    expect_migrated(&a.run, forgotten);
    expect_migrated(&b.run, 0);
    expect_gin_valid();
    cr_assert_eq(rig_db_ll("SELECT count(*) FROM analytics_events WHERE event_id = 'mg-w'", NULL), 0);
}

/* ---- the containment filter through the index ------------------------------------- */

#define LOG_ROWS 60
#define SELECTIVE "{\"sponsor_id\":\"sp_2\",\"booth\":1}"
#define SELECTIVE_URL "%7B%22sponsor_id%22%3A%22sp_2%22%2C%22booth%22%3A1%7D"
#define WINDOW "since=2026-03-01T00:00:00Z&until=2026-03-02T00:00:00Z"

/* The event ids of one page of the filtered list, sorted into one string,
 * and the hourly counts, as one string each: what a client sees. */
static char *filtered_answer(const char *base, const char *key)
{
    struct http_resp *l = http_get_at_as(base, "/v1/analytics/events?limit=200&" WINDOW "&payload=" SELECTIVE_URL,
                                         key);
    struct http_resp *c = http_get_at_as(
        base, "/v1/analytics/counts?bucket=hour&" WINDOW "&payload=" SELECTIVE_URL, key);
    EXPECT_JSON(l, 200);
    EXPECT_JSON(c, 200);
    char *ids = it_strdup("");
    const cJSON *item;
    cJSON_ArrayForEach(item, jget(resp_json(l), "items")) {
        ids = fmt("%s %s", ids, jstr(item, "event_id"));
    }
    char *counts = cJSON_PrintUnformatted(jget(resp_json(c), "items"));
    char *answer = fmt("ids:%s counts:%s", ids, counts ? counts : "none");
    free(counts);
    http_resp_free(l);
    http_resp_free(c);
    return answer;
}

/* The list and the counts give the same rows whether PostgreSQL answers the
 * payload filter from the GIN index or by reading every row: once the rows
 * are logged, the index is forced (the btrees that could serve the tenant's
 * rows dropped, sequential and plain index scans priced out for the
 * service's new connections), its use read back from pg_stat_user_indexes;
 * then it is dropped, the planner's settings restored, and the same
 * questions asked again: now answered by reading every row. The service has
 * one worker (one connection) and first answers unfiltered reads: a prepared
 * statement would have settled on a generic plan by then, which cannot use
 * the index (store/analytics_query.c design note 2). */
Test(migrate, containment_answers_the_same_rows_through_the_gin_index_as_without_it)
{
    char *b = NULL;
    pid_t pid = rig_up(NULL, &b);
    char *org = it_id("org");
    struct http_resp *r = http_post_json_at(b, "/v1/organizations",
                                            fmt("{\"id\":\"%s\",\"name\":\"Migrate %s\",\"credits\":1}", org, org));
    EXPECT_JSON(r, 201);
    char *key = it_strdup(jstr(resp_json(r), "api_key"));
    http_resp_free(r);
    int expected = 0;
    for (int i = 0; i < LOG_ROWS; i++) {
        r = http_post_json_at_as(b, "/v1/analytics/events",
                                 fmt("{\"event_id\":\"mg-%d\",\"event_type\":\"sponsor_scan\",\"user_id\":\"u%d\","
                                     "\"occurred_at\":\"2026-03-01T%02d:%02d:00Z\",\"payload\":{\"sponsor_id\":"
                                     "\"sp_%d\",\"booth\":%d,\"kind\":\"scan\"}}",
                                     i, i, i % 24, i, i % 5, i % 3),
                                 key);
        EXPECT_JSON(r, 201);
        http_resp_free(r);
        expected += i % 5 == 2 && i % 3 == 1;
    }
    rig_stop_service(pid);
    scratch_exec("DROP INDEX analytics_events_org_time");
    scratch_exec("ALTER TABLE analytics_events DROP CONSTRAINT analytics_events_tenant_event_id");
    scratch_exec("ANALYZE analytics_events");
    scratch_exec(fmt("ALTER DATABASE \"%s\" SET enable_seqscan = off", rig.db_name));
    scratch_exec(fmt("ALTER DATABASE \"%s\" SET enable_indexscan = off", rig.db_name));
    const char *one_worker[] = {"--threads", "1", NULL};
    pid = rig_service(NULL, 0, one_worker, NULL, &b);
    for (int i = 0; i < 8; i++) {
        const char *paths[] = {"/v1/analytics/events?limit=200&" WINDOW,
                               "/v1/analytics/counts?bucket=hour&" WINDOW};
        for (size_t k = 0; k < 2; k++) {
            r = http_get_at_as(b, paths[k], key);
            EXPECT_JSON(r, 200);
            http_resp_free(r);
        }
    }
    long long scans = rig_db_ll("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = '" GIN "'", NULL);

    char *with_gin = filtered_answer(b, key);
    int ids = 0;
    for (const char *s = strstr(with_gin, "mg-"); s; s = strstr(s + 1, "mg-"))
        ids++;
    cr_assert_eq(ids, expected, "the filtered list has %d rows, %d match: %s", ids, expected, with_gin);
    /* Statistics reach the view when the service's backend next goes idle
     * and its flush interval has passed: bounded by WAIT_MS. */
    long long t0 = it_now_ms();
    while (rig_db_ll("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = '" GIN "'", NULL) <= scans) {
        cr_assert(it_now_ms() - t0 < WAIT_MS, "the filter never read " GIN " (idx_scan stays %lld)", scans);
        it_pause_ms(200);
        free(filtered_answer(b, key));
    }

    rig_stop_service(pid);
    scratch_exec("DROP INDEX " GIN);
    scratch_exec(fmt("ALTER DATABASE \"%s\" RESET ALL", rig.db_name));   /* a plain sequential scan */
    pid = rig_service(NULL, 0, NULL, NULL, &b);    /* new connections: no plan remembers the index */
    char *without = filtered_answer(b, key);
    cr_assert_str_eq(with_gin, without, "the GIN index changed the answer");
}
