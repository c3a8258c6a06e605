/*
 * store/budget.c - the PostgreSQL connection budget shared by every replica
 * (pg_connection_budget; docs/adr/0013-replicas.md decision 5, ADR 0005).
 *
 * A replica opens at most threads + 2 PostgreSQL connections: one per HTTP
 * worker thread, one for the background worker, one that holds its claim.
 * N replicas must fit the server's max_connections, and a replica beyond it
 * used to take connections from the others one failed connect at a time.
 * So each replica claims its threads + 2 units of the budget before its
 * threads may connect, and gives them back by ending the claiming session.
 *
 * Design notes
 *  1. A unit is a session advisory lock (BUDGET_LOCK_CLASS, unit) for unit
 *     in 0 .. budget-1, taken with pg_try_advisory_lock on the claim
 *     connection. PostgreSQL releases a session's locks when it ends, however
 *     it ends: a replica killed, partitioned or restarted gives its units back
 *     without anyone cleaning up, and a crashed one cannot hold them forever.
 *  2. A claim is all or nothing: one statement takes the first free units up
 *     to the need; short of it, the replica releases what it took and stays
 *     out. Two replicas claiming at once can both fall short and both retry
 *     at the next pass; neither ever exceeds the budget.
 *  3. A replica without its claim refuses every PostgreSQL connection of its
 *     threads (pg_pool_admit): requests that need PostgreSQL answer 503
 *     store-unavailable with Retry-After and /readyz fails, so the load
 *     balancer routes around it while the others keep their connections.
 *     Reads served by Redis alone (the leaderboards) still work.
 *  4. The background worker keeps the claim (budget_keep, every pass): it
 *     checks that the claim connection is alive and, when it died (a restart,
 *     a failover, an administrator's pg_terminate_backend), reconnects and
 *     claims again at once. Only a definite refusal (the units are taken)
 *     shuts the threads out; PostgreSQL unreachable changes nothing, since
 *     no thread can connect either. After a restart every replica races for
 *     the units again: whoever is beyond the budget then, a waiting replica
 *     or one that served before, is the one kept out; the total never
 *     exceeds it. A waiting replica holds one connection (its claim
 *     connection), inside the room auto keeps for tools.
 *
 *        unclaimed --(claim: all units)--> held --(connection lost)--+
 *            ^  \--(short: release, refuse threads)                  |
 *            +------------------(reclaim fails: refuse threads)------+
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "store/pg.h"
#include "store/store.h"

/* "ET17": the advisory lock class of the budget's units (note 1). */
#define BUDGET_LOCK_CLASS "1163149623"
/* auto leaves room for migrations, psql, backups and monitoring. */
#define BUDGET_TOOLS_ROOM "10"
#define BUDGET_STATEMENT_US (2 * 1000 * 1000)

struct budget {
    struct pg_pool *pool;          /* borrowed: its threads are admitted or refused */
    char *conninfo;
    long long setting;             /* pg_connection_budget: -1 auto, else the budget */
    long long need;                /* threads + 2 */
    struct pg *db;                 /* the claim connection; NULL when not connected */
    bool held;                     /* db holds need units */
    bool refusal_logged;
};

static const struct pg_stmt stmt_auto = {
    "budget_auto",
    "SELECT current_setting('max_connections')::int"
    " - current_setting('superuser_reserved_connections')::int - " BUDGET_TOOLS_ROOM, 0};
static const struct pg_stmt stmt_claim = {
    "budget_claim",
    "SELECT count(*) FROM (SELECT FROM generate_series(0, $1::int - 1) AS unit"
    " WHERE pg_try_advisory_lock(" BUDGET_LOCK_CLASS ", unit) LIMIT $2::int) AS taken", 2};
static const struct pg_stmt stmt_release = {"budget_release", "SELECT pg_advisory_unlock_all()", 0};
static const struct pg_stmt stmt_alive = {"budget_alive", "SELECT 1", 0};

struct budget *budget_new(struct pg_pool *pool, const char *conninfo, long long setting,
                          long long need)
{
    struct budget *b = calloc(1, sizeof *b);

    if (b == NULL || (b->conninfo = strdup(conninfo)) == NULL) {
        free(b);
        return NULL;
    }
    b->pool = pool;
    b->setting = setting;
    b->need = need;
    return b;
}

void budget_free(struct budget *b)
{
    if (b == NULL)
        return;
    pg_close(b->db);                /* ends the session: the units go back */
    free(b->conninfo);
    free(b);
}

/* One statement's first value as an integer; -1 when it failed. */
static long long budget_value(struct budget *b, const struct pg_stmt *st, const char *const *params)
{
    struct problem p = {0};
    PGresult *res;
    long long v = -1;

    pg_set_deadline(b->db, monotonic_us() + BUDGET_STATEMENT_US);
    if ((res = pg_exec(b->db, st, params, &p)) != NULL) {
        v = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10)
                                                           : 0;
        PQclear(res);
    }
    return v;                       /* a dropped connection is reopened by the next budget_keep */
}

/* Note 2: all the units or none. Sets b->held; false if PostgreSQL did not answer. */
static bool budget_claim(struct budget *b, long long *size)
{
    char size_text[24], need_text[24];
    const char *params[] = {size_text, need_text};
    long long taken;

    *size = b->setting > 0 ? b->setting : budget_value(b, &stmt_auto, NULL);
    if (*size < 0 && b->setting < 0)
        return false;
    snprintf(size_text, sizeof size_text, "%lld", *size > 0 ? *size : 0);
    snprintf(need_text, sizeof need_text, "%lld", b->need);
    if ((taken = budget_value(b, &stmt_claim, params)) < 0)
        return false;
    b->held = taken == b->need;
    if (!b->held && taken > 0 && budget_value(b, &stmt_release, NULL) < 0)
        return false;
    return true;
}

bool budget_keep(struct budget *b)
{
    struct problem p = {0};
    long long size = 0;
    bool answered;

    if (b->held && pg_conn(b->db) != NULL && budget_value(b, &stmt_alive, NULL) == 1)
        return true;
    /* Lost or never held. The claim connection's outage is logged once by
     * store/pg.c, like a thread's; what this module says is the outcome. */
    b->held = false;
    if (!pg_keep_open(&b->db, b->conninfo, &p))
        return false;               /* note 4: unreachable refuses nothing more */
    answered = budget_claim(b, &size);
    if (answered)
        pg_pool_admit(b->pool, b->held);
    if (answered && !b->held && !b->refusal_logged)
        et_log(LL_WARN, "budget", "beyond the PostgreSQL connection budget: this replica needs %lld"
                                  " of pg_connection_budget %lld and the other replicas hold the rest;"
                                  " answering 503 to what needs PostgreSQL and retrying every pass",
               b->need, size);
    else if (b->held)
        et_log(LL_INFO, "budget", "holding %lld of pg_connection_budget %lld PostgreSQL connections",
               b->need, size);
    b->refusal_logged = answered && !b->held;
    return b->held;
}
