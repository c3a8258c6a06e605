/*
 * store/pg.c - PostgreSQL connections for worker threads.
 *
 * Design notes
 *  1. One connection per worker thread, held in thread-local storage and
 *     closed by a pthread key destructor when the thread ends. libpq
 *     connections must not be shared between threads, and a per-thread
 *     connection needs no pool lock on the request path.
 *  2. Statements are prepared lazily, once per connection, and executed by
 *     name: parse and plan once, then only parameters cross the wire. SQL is
 *     never assembled from input; every value is a parameter. A statement
 *     with an empty name is sent whole each time instead (PostgreSQL's
 *     unnamed statement), so it is planned with its values: after five
 *     executions a prepared statement may settle on a generic plan, which
 *     cannot use an index that only some values make worthwhile (the GIN
 *     index of the analytics payload filter, store/analytics_query.c).
 *  3. A connection can die while idle (server restart, failover, idle
 *     timeout). Before each use we poll the socket: an idle connection that
 *     became readable has an error or EOF waiting, so it is dropped and
 *     reopened before any statement is sent. The server's goodbye (FATAL
 *     57P01 on a shutdown) often arrives before its EOF: libpq hands an error
 *     received while idle to the notice receiver, which marks the connection
 *     dead (note 7). A statement is sent again on a new connection only when
 *     the old one died under it outside a transaction and either it has no
 *     effect (a SELECT, a BEGIN) or it never left whole (libpq failed to send
 *     it); after any other failure in flight a write's outcome is unknown, and
 *     the client (with its Idempotency-Key) is the one who may safely retry.
 *  4. SQLSTATE classes map to et_err in one function (pg_error); callers
 *     refine by constraint name where a rule has a specific answer. What
 *     PostgreSQL says (its message, SQLSTATE, constraint and relation names)
 *     goes to the log only: a problem document carries a fixed sentence per
 *     class, since the text names the schema and changes between versions.
 *  5. An outage is logged once per thread: the first failed connect or lost
 *     connection says so and sets outage_logged; later failures on that
 *     thread stay silent until a connect succeeds, which says so and clears
 *     it. Without this, every request of every worker logged a line (17,500
 *     lines in 6 s of a cut under load).
 *
 *        connected --(lost / connect fails: log once)--> outage_logged
 *            ^                                               |
 *            +-------------(connect succeeds: log "back")-----+
 *  6. Nothing blocks past the request's deadline (pg_set_deadline; by
 *     default request_deadline_ms from pg_session). Statements go out with
 *     libpq's asynchronous calls on a non-blocking connection and we poll the
 *     socket until the deadline. On expiry the connection is dropped, never
 *     cancelled: a cancel that lands while a COMMIT waits for a synchronous
 *     standby makes PostgreSQL keep the commit locally and report success.
 *     The answer is 503 with Retry-After, outcome-unknown for a write. Dead
 *     peers are found by TCP keepalives and tcp_user_timeout (on by default,
 *     a URL may override them) even on a connection nobody is waiting on.
 *     Connecting is bounded by connect_timeout per host (3 s: 2 s timed out
 *     connects to a healthy server on a loaded machine), not by the
 *     deadline: only libpq's blocking connect moves on to the next host of a
 *     multi-host URL when one hangs.
 *  7. After 08xxx (connection), 57P01-57P03 (shutdown, crash, cannot
 *     connect now) and 25006 (read-only transaction: we reached a standby,
 *     e.g. an old primary after a failover) the connection is dropped and the
 *     request answered 503; the next one reconnects, and a multi-host URL
 *     with target_session_attrs=read-write finds the new primary. A WARNING
 *     "canceling wait for synchronous replication" means the COMMIT is only
 *     local and may vanish with a failover: the request answers 503
 *     outcome-unknown, so no 2xx is ever stored or sent for it.
 */
#include "store/pg.h"
#include "store/pg_trip.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

#define PG_MAX_PREPARED 64

struct pg_pool {
    char *conninfo;
    long long deadline_ms;                        /* design note 6; 0: none */
    atomic_long connections;
    atomic_long errors;
    atomic_bool refused;                          /* beyond the connection budget (store/budget.c) */
};

struct pg {
    struct pg_pool *pool;                         /* NULL for a one-off connection */
    PGconn *conn;
    const struct pg_stmt *prepared[PG_MAX_PREPARED];
    size_t nprepared;
    char sqlstate[6];
    char constraint[64];
    bool outage_logged;                           /* design note 5 */
    bool log_once;                                /* a kept one-off logs like a thread's (pg_keep_open) */
    bool dead;                                    /* the server said goodbye (note 7) */
    bool commit_unknown;                          /* sync-rep wait canceled (note 7) */
    bool late_error;                              /* an error after a success result */
    int64_t deadline_us;                          /* CLOCK_MONOTONIC; 0: none (note 6) */
};

static pthread_key_t thread_conn_key;
static pthread_once_t thread_conn_once = PTHREAD_ONCE_INIT;
static _Thread_local struct pg *thread_conn;

static void pg_disconnect(struct pg *db)
{
    if (db->conn) {
        PQfinish(db->conn);
        db->conn = NULL;
        if (db->pool)
            atomic_fetch_sub(&db->pool->connections, 1);
    }
    db->nprepared = 0;
}

static void thread_conn_destroy(void *arg)
{
    pg_close(arg);
}

static void thread_conn_key_create(void)
{
    pthread_key_create(&thread_conn_key, thread_conn_destroy);
}

struct pg_pool *pg_pool_new(const char *conninfo)
{
    struct pg_pool *pool = calloc(1, sizeof *pool);

    if (pool == NULL || (pool->conninfo = strdup(conninfo)) == NULL) {
        free(pool);
        return NULL;
    }
    return pool;
}

void pg_pool_free(struct pg_pool *pool)
{
    if (pool == NULL)
        return;
    free(pool->conninfo);
    free(pool);
}

/* Design note 5: the first sign of an outage on this thread is logged. */
static void outage_log(struct pg *db, const char *what, const char *message)
{
    if (db->outage_logged)
        return;
    db->outage_logged = db->pool != NULL || db->log_once;  /* a one-off logs every time */
    et_log(LL_WARN, "postgres", "%s: %.*s%s", what, (int)strcspn(message, "\n"), message,
            db->outage_logged ? " (further failures of this thread are not logged until it reconnects)"
                              : "");
}

static bool sqlstate_is(const char *state, const char *prefix)
{
    return state != NULL && strncmp(state, prefix, strlen(prefix)) == 0;
}

/* Design note 7: an SQLSTATE after which this connection is no use. */
static bool sqlstate_drops(const char *state)
{
    return sqlstate_is(state, SQLSTATE_CONNECTION_EXCEPTION_CLASS) ||
           sqlstate_is(state, SQLSTATE_ADMIN_SHUTDOWN) || sqlstate_is(state, SQLSTATE_CRASH_SHUTDOWN) ||
           sqlstate_is(state, SQLSTATE_CANNOT_CONNECT_NOW) ||
           sqlstate_is(state, SQLSTATE_READ_ONLY_SQL_TRANSACTION);
}

/*
 * Design note 7: what PostgreSQL says outside a result. An error that
 * arrives while the connection is idle (the server's goodbye before it
 * closes) reaches libpq's notice path, so this is where a dead connection
 * is first seen; a commit whose synchronous-replication wait was cut short
 * is reported only here, as a WARNING, while the COMMIT itself "succeeds".
 */
static void notice_receive(void *arg, const PGresult *res)
{
    struct pg *db = arg;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (message == NULL)
        message = "";
    if (strstr(message, "wait for synchronous replication") != NULL)
        db->commit_unknown = true;
    if (sqlstate_drops(state) ||
        (severity != NULL && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0)))
        db->dead = true;
    if (severity != NULL && strcmp(severity, "NOTICE") != 0 && strcmp(severity, "INFO") != 0 &&
        strcmp(severity, "LOG") != 0 && strncmp(severity, "DEBUG", 5) != 0)
        et_log(LL_WARN, "postgres", "%s %s: %.*s", severity, state ? state : "",
               (int)strcspn(message, "\n"), message);
}

/* Design note 6: defaults first, so values in the user's string override them. */
static bool pg_connect(struct pg *db, const char *conninfo, struct problem *p)
{
    static const char *const keys[] = {"connect_timeout", "application_name", "keepalives",
                                       "keepalives_idle", "keepalives_interval", "keepalives_count",
                                       "tcp_user_timeout", "dbname", NULL};
    const char *values[] = {"3", "eventtrack", "1", "5", "2", "3", "9000", conninfo, NULL};

    db->conn = PQconnectdbParams(keys, values, 1);
    db->dead = db->commit_unknown = false;
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK || PQsetnonblocking(db->conn, 1) != 0) {
        outage_log(db, "unavailable, connect failed", db->conn ? PQerrorMessage(db->conn) : "out of memory");
        PQfinish(db->conn);
        db->conn = NULL;
        if (db->pool)
            atomic_fetch_add(&db->pool->errors, 1);
        problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "PostgreSQL is unavailable");
        return false;
    }
    if (db->outage_logged)
        et_log(LL_INFO, "postgres", "reconnected");
    db->outage_logged = false;
    PQsetNoticeReceiver(db->conn, notice_receive, db);
    if (db->pool)
        atomic_fetch_add(&db->pool->connections, 1);
    return true;
}

/* Design note 3: drop an idle connection that the server already closed. */
static void pg_check_idle(struct pg *db)
{
    struct pollfd pfd = {.fd = PQsocket(db->conn), .events = POLLIN};

    if (PQstatus(db->conn) != CONNECTION_OK || pfd.fd < 0 || db->dead) {
        pg_disconnect(db);
        return;
    }
    if (poll(&pfd, 1, 0) > 0) {
        PGnotify *n;
        /* PQconsumeInput only reads; PQnotifies parses, which is what hands
         * a goodbye to notice_receive. */
        bool read = PQconsumeInput(db->conn);
        while ((n = PQnotifies(db->conn)) != NULL)
            PQfreemem(n);
        if (!read || PQstatus(db->conn) != CONNECTION_OK || db->dead)
            pg_disconnect(db);
    }
}

void pg_set_deadline(struct pg *db, int64_t deadline_monotonic_us)
{
    db->deadline_us = deadline_monotonic_us;
}

void pg_renew_deadline(struct pg *db)
{
    long long ms = db->pool != NULL ? db->pool->deadline_ms : 0;   /* pg_open: none */
    db->deadline_us = ms > 0 ? monotonic_us() + ms * 1000 : 0;
}

void pg_pool_admit(struct pg_pool *pool, bool admitted)
{
    atomic_store(&pool->refused, !admitted);
}

void pg_pool_set_deadline(struct pg_pool *pool, long long deadline_ms)
{
    pool->deadline_ms = deadline_ms;
}

struct pg *pg_session(struct pg_pool *pool, struct problem *p)
{
    struct pg *db = thread_conn;

    if (atomic_load(&pool->refused)) {
        /* store/budget.c note 3: the units this thread's connection needs
         * belong to other replicas now; give back the one it may hold. */
        if (db != NULL)
            pg_disconnect(db);
        problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
                    "this replica is beyond the PostgreSQL connection budget");
        return NULL;
    }
    if (db == NULL) {
        pthread_once(&thread_conn_once, thread_conn_key_create);
        db = calloc(1, sizeof *db);
        if (db == NULL) {
            problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
            return NULL;
        }
        db->pool = pool;
        thread_conn = db;
        pthread_setspecific(thread_conn_key, db);
    }
    pg_renew_deadline(db);
    if (db->conn)
        pg_check_idle(db);
    if (db->conn == NULL && !pg_connect(db, pool->conninfo, p))
        return NULL;
    return db;
}

struct pg *pg_open(const char *conninfo, struct problem *p)
{
    struct pg *db = calloc(1, sizeof *db);

    if (db == NULL) {
        problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
        return NULL;
    }
    if (!pg_connect(db, conninfo, p)) {
        free(db);
        return NULL;
    }
    return db;
}

bool pg_keep_open(struct pg **db, const char *conninfo, struct problem *p)
{
    if (*db == NULL && (*db = calloc(1, sizeof **db)) == NULL) {
        problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
        return false;
    }
    (*db)->log_once = true;
    return (*db)->conn != NULL || pg_connect(*db, conninfo, p);
}

void pg_close(struct pg *db)
{
    if (db == NULL)
        return;
    pg_disconnect(db);
    if (thread_conn == db)
        thread_conn = NULL;
    free(db);
}

PGconn *pg_conn(struct pg *db)
{
    return db->conn;
}

const char *pg_sqlstate(const struct pg *db)
{
    return db->sqlstate;
}

const char *pg_constraint(const struct pg *db)
{
    return db->constraint;
}

/* Design note 4: a refused statement, logged with everything PostgreSQL said. */
static void refusal_log(const char *state, const char *constraint, const char *message)
{
    et_log(LL_INFO, "postgres", "statement refused, SQLSTATE %s%s%s: %.*s", state,
            constraint[0] ? ", constraint " : "", constraint, (int)strcspn(message, "\n"), message);
}

/* Design notes 6 and 7: a connection given up on; the client learns whether
 * its write may have happened (outcome-unknown) or surely did not. */
static enum et_err pg_lost(struct pg *db, const char *what, const char *message, bool unknown,
                           struct problem *p)
{
    outage_log(db, what, message);
    pg_disconnect(db);
    if (db->pool)
        atomic_fetch_add(&db->pool->errors, 1);
    if (unknown)
        return problem_set(p, ET_ERR_UNAVAILABLE, PT_OUTCOME_UNKNOWN,
                           "PostgreSQL did not confirm the write; it may or may not have taken"
                           " effect: retry with the same Idempotency-Key");
    return problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
                       "the connection to PostgreSQL was lost");
}

/* Design note 4: the one SQLSTATE -> et_err mapping; the details stay in the log. */
static enum et_err pg_error(struct pg *db, const PGresult *res, bool unknown, struct problem *p)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *message = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state ? state : "");
    snprintf(db->constraint, sizeof db->constraint, "%s", constraint ? constraint : "");
    if (!message)
        message = db->conn ? PQerrorMessage(db->conn) : "no connection";

    /* Log first: the message may live inside the connection we drop. */
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK || db->dead || sqlstate_drops(state)) {
        char what[64];
        snprintf(what, sizeof what, "connection dropped, SQLSTATE %s", state ? state : "none");
        return pg_lost(db, what, message, unknown, p);
    }
    if (state == NULL)
        state = SQLSTATE_INTERNAL_ERROR;
    if (strncmp(state, SQLSTATE_DATA_EXCEPTION_CLASS, 2) == 0 ||
        strncmp(state, SQLSTATE_INTEGRITY_VIOLATION_CLASS, 2) == 0) {
        refusal_log(state, db->constraint, message);
        if (strcmp(state, SQLSTATE_UNIQUE_VIOLATION) == 0)
            return problem_set(p, ET_ERR_CONFLICT, NULL,
                               "the request conflicts with a resource that already exists");
        if (strcmp(state, SQLSTATE_FOREIGN_KEY_VIOLATION) == 0)
            return problem_set(p, ET_ERR_INVALID, NULL,
                               "the request refers to a resource that does not exist");
        return problem_set(p, ET_ERR_INVALID, NULL,
                           "a value in the request is outside what the service can store");
    }
    if (db->pool)
        atomic_fetch_add(&db->pool->errors, 1);
    if (strcmp(state, SQLSTATE_SERIALIZATION_FAILURE) == 0 || strcmp(state, SQLSTATE_DEADLOCK_DETECTED) == 0 ||
        strcmp(state, SQLSTATE_LOCK_NOT_AVAILABLE) == 0 ||
        strncmp(state, SQLSTATE_OPERATOR_INTERVENTION_CLASS, 2) == 0) {
        refusal_log(state, db->constraint, message);
        return problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
                           "PostgreSQL is unavailable or overloaded; retry");
    }
    if (strncmp(state, SQLSTATE_INSUFFICIENT_RESOURCES_CLASS, 2) == 0) {
        outage_log(db, "unavailable", message);
        return problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
                           "PostgreSQL is unavailable or overloaded; retry");
    }
    et_log(LL_ERROR, "postgres", "%s: %.*s", state, (int)strcspn(message, "\n"), message);
    return problem_set(p, ET_ERR_INTERNAL, NULL, "a database statement failed");
}

/* Design note 6: a statement that may be sent again on a fresh connection
 * when the first one died under it: it reads, or it opens a transaction. */
static bool stmt_repeatable(const char *sql)
{
    return strncmp(sql, "SELECT ", 7) == 0 || strcmp(sql, "BEGIN") == 0;
}

static bool pg_prepared(const struct pg *db, const struct pg_stmt *st)
{
    for (size_t i = 0; i < db->nprepared; i++)
        if (db->prepared[i] == st)
            return true;
    return false;
}

/* One round trip of a statement (st) or command (sql), preparing st first on
 * a connection that has not seen it. `unsent` says whether its effect surely
 * did not happen. The PQsend* calls stay here, where scripts/check-sql sees
 * that their SQL is a pg_stmt's or pg_command's constant. */
static enum pg_trip pg_trip_stmt(struct pg *db, const struct pg_stmt *st, const char *sql,
                                 const char *const *params, PGresult **out, bool *unsent)
{
    enum pg_trip t;
    bool sent;

    *unsent = true;
    if (st != NULL && st->name[0] != '\0' && !pg_prepared(db, st)) {
        sent = PQsendPrepare(db->conn, st->name, st->sql, st->nparams, NULL) == 1;
        t = pg_trip(db->conn, db->deadline_us, sent, out, &db->late_error);
        if (t != TRIP_DONE || PQresultStatus(*out) != PGRES_COMMAND_OK)
            return t;
        PQclear(*out);
        if (db->nprepared < PG_MAX_PREPARED)
            db->prepared[db->nprepared++] = st;
    }
    if (st != NULL && st->name[0] == '\0')
        sent = PQsendQueryParams(db->conn, st->sql, st->nparams, NULL, params, NULL, NULL, 0) == 1;
    else if (st != NULL)
        sent = PQsendQueryPrepared(db->conn, st->name, st->nparams, params, NULL, NULL, 0) == 1;
    else
        sent = PQsendQuery(db->conn, sql) == 1;
    t = pg_trip(db->conn, db->deadline_us, sent, out, &db->late_error);
    *unsent = t == TRIP_UNSENT;
    return t;
}

/*
 * Design notes 3, 6 and 7: runs a prepared statement (st) or a command
 * (sql) under the deadline. A connection that dies under a statement outside
 * a transaction is replaced once, and the statement sent again, when its
 * effect surely did not happen or it has none. NULL with p filled on failure.
 */
static PGresult *pg_run(struct pg *db, const struct pg_stmt *st, const char *sql,
                        const char *const *params, struct problem *p)
{
    const char *text = st != NULL ? st->sql : sql;
    bool outside = db->conn != NULL && PQtransactionStatus(db->conn) == PQTRANS_IDLE;
    bool write = !stmt_repeatable(text);
    bool commits = outside ? write : strcmp(text, "COMMIT") == 0;   /* unknown if lost */
    PGresult *res = NULL;

    db->sqlstate[0] = db->constraint[0] = '\0';
    for (int attempt = 0;; attempt++) {
        bool unsent;
        enum pg_trip t;
        if (db->conn == NULL) {
            if (attempt == 0 || db->pool == NULL || !pg_connect(db, db->pool->conninfo, p)) {
                if (attempt == 0)
                    problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "PostgreSQL is unavailable");
                return NULL;
            }
        }
        db->commit_unknown = false;
        t = pg_trip_stmt(db, st, sql, params, &res, &unsent);
        if (t == TRIP_EXPIRED) {
            pg_lost(db, "deadline passed", "no answer within the request deadline", commits, p);
            return NULL;
        }
        if (t == TRIP_DONE && !db->dead && PQstatus(db->conn) == CONNECTION_OK &&
            !sqlstate_drops(PQresultErrorField(res, PG_DIAG_SQLSTATE)))
            break;
        if (attempt > 0 || !outside || db->pool == NULL || (write && !unsent))
            break;
        PQclear(res);
        res = NULL;
        outage_log(db, "connection lost, statement sent again on a new connection",
                   PQerrorMessage(db->conn));
        pg_disconnect(db);
    }
    if (res != NULL && db->commit_unknown) {
        PQclear(res);
        pg_lost(db, "a commit's synchronous replication wait was canceled",
                "committed locally, maybe not on a standby", true, p);
        return NULL;
    }
    if (res != NULL && (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK))
        return res;
    /* An error the server sent (it has an SQLSTATE) instead of a success
     * means the statement did not take effect: a FATAL is raised only where
     * interrupts are allowed, never inside a commit, and a sync-rep wait cut
     * short says so first (commit_unknown). An error libpq made up after a
     * loss, or one after a success, leaves the outcome unknown. */
    pg_error(db, res,
             commits && (res == NULL || db->late_error || PQresultErrorField(res, PG_DIAG_SQLSTATE) == NULL),
             p);
    PQclear(res);
    return NULL;
}

PGresult *pg_exec(struct pg *db, const struct pg_stmt *st, const char *const *params,
                  struct problem *p)
{
    return pg_run(db, st, NULL, params, p);
}

PGresult *pg_exec_row(struct pg *db, const struct pg_stmt *st, const char *const *params,
                      const char *what, const char *id, struct problem *p)
{
    PGresult *res = pg_exec(db, st, params, p);

    if (res != NULL && PQntuples(res) == 0) {
        PQclear(res);
        problem_set(p, ET_ERR_NOT_FOUND, NULL, "no %s %s", what, id);
        return NULL;
    }
    return res;
}

enum et_err pg_command(struct pg *db, const char *sql, struct problem *p)
{
    PGresult *res = pg_run(db, NULL, sql, NULL, p);

    if (res == NULL)
        return p->err;
    PQclear(res);
    return ET_OK;
}

void pg_rollback(struct pg *db)
{
    struct problem ignored = {0};

    pg_command(db, "ROLLBACK", &ignored);
}

bool pg_ping(struct pg_pool *pool)
{
    static const struct pg_stmt ping = {"ping", "SELECT 1", 0};
    struct problem p = {0};
    struct pg *db = pg_session(pool, &p);
    PGresult *res;

    if (db == NULL)
        return false;
    res = pg_exec(db, &ping, NULL, &p);
    bool ok = res != NULL;
    PQclear(res);
    return ok;
}

long pg_pool_connections(const struct pg_pool *pool)
{
    return atomic_load(&pool->connections);
}

long pg_pool_errors(const struct pg_pool *pool)
{
    return atomic_load(&pool->errors);
}
