/*
 * main.c - wiring only: settings -> stores -> HTTP -> wait for a signal ->
 * tear down in reverse. Each sub-command is one function below.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "app.h"
#include "config.h"
#include "http/router.h"
#include "http/server.h"
#include "json/read.h"
#include "log.h"
#include "worker.h"
#include "metrics.h"
#include "routes/routes.h"
#include "store/group_commit.h"
#include "store/store.h"

static int cmd_migrate(const struct config *cfg)
{
    struct problem p = {0};
    struct pg *db = pg_open(cfg->database_url, &p);
    struct store st;
    size_t applied = 0;

    store_init_conns(&st, db, NULL);
    if (db == NULL || migrate_run(&st, &applied, &p) != ET_OK) {
        fprintf(stderr, "eventtrack: migrate: %s\n", p.detail);
        pg_close(db);
        return 1;
    }
    printf("eventtrack: migrate: %zu migration(s) applied, schema up to date\n", applied);
    pg_close(db);
    return 0;
}

static int cmd_rebuild(const struct config *cfg)
{
    struct problem p = {0};
    struct pg *db = pg_open(cfg->database_url, &p);
    struct rds *r = db ? rds_open(&cfg->redis, &p) : NULL;
    struct store st;
    size_t boards = 0, events = 0;
    int status = 1;

    leaderboard_configure(cfg->applied_retention_hours * 3600);
    store_init_conns(&st, db, r);
    if (r == NULL ||
        leaderboard_rebuild(&st, cfg->rebuild_event_id[0] ? cfg->rebuild_event_id : NULL,
                            &boards, &events, &p) != ET_OK) {
        fprintf(stderr, "eventtrack: rebuild-leaderboards: %s\n", p.detail);
    } else {
        printf("eventtrack: rebuild-leaderboards: %zu board(s) rebuilt from %zu logged view(s)\n",
               boards, events);
        status = 0;
    }
    rds_close(r);
    pg_close(db);
    return status;
}

/* Settings that change shared state, so every replica must use the same
 * value (schema/0007_cluster_settings.sql, docs/adr/0013-replicas.md):
 * applied_retention_hours decides when a board's dedup set may be forgotten,
 * and replicas that disagree count a replayed view twice; replicas that
 * disagree on pg_connection_budget claim units of different budgets and
 * together exceed the server's connections. Limits (rate, quota) may differ
 * for a while during a rolling change without corrupting anything, so they
 * are not here. */
static bool setting_agrees(struct store *st, const char *name, long long own)
{
    struct problem p = {0};
    char value[32], recorded[64];
    enum et_err err;

    snprintf(value, sizeof value, "%lld", own);
    err = cluster_setting_agree(st, name, value, recorded, sizeof recorded, &p);
    if (err == ET_ERR_CONFLICT)
        et_log(LL_ERROR, "main", "setting %s: this replica has %s, the others %s;"
                                 " every replica must use the same value (to change it: stop them all,"
                                 " DELETE FROM cluster_settings WHERE name = '%s',"
                                 " start them with the new value)", name, value, recorded, name);
    else if (err != ET_OK)
        et_log(LL_WARN, "main", "cannot check the settings replicas share (%s); serving, and checking"
                                " at the next start", p.detail);
    return err != ET_ERR_CONFLICT;
}

static bool settings_agree(const struct config *cfg, struct store *st)
{
    return setting_agrees(st, "applied_retention_hours", cfg->applied_retention_hours) &&
           setting_agrees(st, "pg_connection_budget", cfg->pg_connection_budget);
}

/* Refuses to serve a schema older than the binary, or settings other
 * replicas do not share; tolerates PostgreSQL being down or read-only
 * (nothing to check against, or no first value can be recorded: the check
 * runs at the next start). Only a definite disagreement refuses. */
static bool schema_current(const struct config *cfg)
{
    struct problem p = {0};
    struct pg *db = pg_open(cfg->database_url, &p);
    struct store st;
    long pending;
    bool ok;

    if (db == NULL) {
        et_log(LL_WARN, "main", "PostgreSQL is not reachable yet; serving, and retrying on each request");
        return true;
    }
    store_init_conns(&st, db, NULL);
    pending = migrate_pending(&st);
    if (pending > 0) {
        et_log(LL_ERROR, "main", "the database schema is behind this binary by %ld migration(s):"
                                 " run `eventtrack migrate` first", pending);
        pg_close(db);
        return false;
    }
    ok = settings_agree(cfg, &st);
    pg_close(db);
    return ok;
}

/* Descriptors the service needs besides client connections: per worker
 * thread its epoll and wake-up descriptors and its PostgreSQL and Redis
 * connections, the background worker's connections, stdio, the listen socket,
 * and room for the odd file or name lookup. Measured: 4 per thread + 13. */
static long long fds_reserved(const struct config *cfg)
{
    return 4 * cfg->threads + 64;
}

/* Every attendee device holds a connection, so the soft descriptor limit
 * (often 1024) is raised to the hard one; a connection_limit that still
 * cannot fit is a setting that cannot be honoured, and stops the start
 * rather than failing accept() in the middle of a conference (ADR 0009). */
static bool fd_limit_raise(const struct config *cfg)
{
    struct rlimit rl;
    unsigned long long was, need = (unsigned long long)(cfg->connection_limit + fds_reserved(cfg));

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        et_log(LL_ERROR, "main", "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return false;
    }
    was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        /* An unlimited hard limit cannot be a soft one (Linux caps it at
         * fs.nr_open): ask for its default, 1048576, instead. */
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = (rlim_t)was;
    }
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
        et_log(LL_ERROR, "main", "setting connection_limit: %lld connections need %llu file descriptors"
               " (%lld more for stores and threads), but this process may open only %llu"
               " (RLIMIT_NOFILE); lower connection_limit or raise the hard limit"
               " (ulimit -Hn, systemd LimitNOFILE=, docker --ulimit nofile=)",
                cfg->connection_limit, need, fds_reserved(cfg), (unsigned long long)rl.rlim_cur);
        return false;
    }
    et_log(LL_INFO, "main", "file descriptors: up to %llu (RLIMIT_NOFILE, was %llu); connection_limit %lld",
           (unsigned long long)rl.rlim_cur, was, cfg->connection_limit);
    return true;
}

static int cmd_serve(const struct config *cfg)
{
    struct app app = {.cfg = cfg};
    struct http_server *server = NULL;
    struct worker *worker = NULL;
    sigset_t signals;
    char err[256];
    int sig, status = 1;

    /* Block the stop signals before any thread starts, so every thread
     * inherits the mask and only sigwait() below receives them. */
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (!fd_limit_raise(cfg) || !schema_current(cfg))
        return 1;
    app.pg = pg_pool_new(cfg->database_url);
    if (app.pg != NULL)
        pg_pool_set_deadline(app.pg, cfg->request_deadline_ms);
    if (app.pg != NULL && cfg->pg_connection_budget != 0 &&
        (app.budget = budget_new(app.pg, cfg->database_url, cfg->pg_connection_budget,
                                 cfg->threads + 2)) == NULL) {
        et_log(LL_ERROR, "main", "out of memory");
        goto done;
    }
    /* Claimed before the listener opens: a replica beyond the budget never
     * connects its threads (store/budget.c); the worker retries every pass. */
    if (app.budget != NULL)
        budget_keep(app.budget);
    app.redis = rds_pool_new(&cfg->redis);
    app.metrics = metrics_new(routes_count);
    for (size_t i = 0; app.metrics && i < routes_count; i++)
        metrics_name_route(app.metrics, i, http_method_name(routes[i].method), routes[i].pattern);
    if (app.pg == NULL || app.redis == NULL || app.metrics == NULL) {
        et_log(LL_ERROR, "main", "out of memory");
        goto done;
    }
    json_limits_set(&(struct json_limits){
        .max_depth = (unsigned)cfg->json_max_depth,
        .batch_max = (size_t)cfg->analytics_batch_max,
        .name_max_chars = (size_t)cfg->max_name_chars,
    });
    leaderboard_configure(cfg->applied_retention_hours * 3600);
    group_commit_configure((int)cfg->group_commit_lanes);
    credits_configure((int)cfg->credit_buckets);
    server = http_server_start(&app, routes, routes_count, api_admit, err, sizeof err);
    if (server == NULL) {
        et_log(LL_ERROR, "http", "%s", err);
        goto done;
    }
    if ((worker = worker_start(&app)) == NULL) {
        et_log(LL_ERROR, "main", "cannot start the background worker thread");
        http_server_stop(server, 0);
        goto done;
    }
    printf("eventtrack: listening on http://%s:%u\n", cfg->bind, http_server_port(server));
    fflush(stdout);

    sigwait(&signals, &sig);
    /* Shutdown order: readiness fails first; after the grace period new
     * connections are refused; in-flight requests get the drain time; then
     * the worker and the stores close. */
    et_log(LL_INFO, "main", "%s received: unready now, closing in %llds, draining for up to %llds",
           sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg->shutdown_grace_seconds,
           cfg->shutdown_drain_seconds);
    atomic_store(&app.draining, true);
    if (cfg->shutdown_grace_seconds > 0)
        nanosleep(&(struct timespec){(time_t)cfg->shutdown_grace_seconds, 0}, NULL);
    http_server_stop(server, (unsigned)cfg->shutdown_drain_seconds);
    worker_stop(worker);
    status = 0;
done:
    budget_free(app.budget);
    metrics_free(app.metrics);
    rds_pool_free(app.redis);
    pg_pool_free(app.pg);
    return status;
}

int main(int argc, char **argv)
{
    struct config cfg;
    char err[512];
    enum log_format format = LOG_FORMAT_JSON;

    if (!config_load(argc, argv, &cfg, err, sizeof err)) {
        fprintf(stderr, "eventtrack: %s\n", err);
        return 2;
    }
    /* Validated by config_load, except for --help and --version, which do not log. */
    if (log_format_parse(cfg.log_format, &format))
        log_set_format(format);
    switch (cfg.command) {
    case CMD_HELP:
        config_usage(stdout);
        return 0;
    case CMD_VERSION:
        printf("eventtrack %s\n", ET_VERSION);
        return 0;
    case CMD_MIGRATE:
        return cmd_migrate(&cfg);
    case CMD_REBUILD_LEADERBOARDS:
        return cmd_rebuild(&cfg);
    case CMD_SERVE:
        break;
    }
    return cmd_serve(&cfg);
}
