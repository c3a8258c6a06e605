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
 *     never assembled from input; every value is a parameter.
 *  3. A connection can die while idle (server restart, failover, idle
 *     timeout). Before each use we poll the socket: an idle connection that
 *     became readable has an error or EOF waiting, so it is dropped and
 *     reopened before any statement is sent. No statement is ever resent
 *     after a failure in flight: for a write the outcome is unknown, and the
 *     client (with its Idempotency-Key) is the one who may safely retry.
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
 */
#include "store/pg.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define PG_MAX_PREPARED 64

struct pg_pool {
    char *conninfo;
    atomic_long connections;
    atomic_long errors;
};

struct pg {
    struct pg_pool *pool;                         /* NULL for a one-off connection */
    PGconn *conn;
    const struct pg_stmt *prepared[PG_MAX_PREPARED];
    size_t nprepared;
    char sqlstate[6];
    char constraint[64];
    bool outage_logged;                           /* design note 5 */
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

static void notice_ignore(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Design note 5: the first sign of an outage on this thread is logged. */
static void outage_log(struct pg *db, const char *what, const char *message)
{
    if (db->outage_logged)
        return;
    db->outage_logged = db->pool != NULL;        /* a one-off connection logs every time */
    et_log(LL_WARN, "postgres", "%s: %.*s%s", what, (int)strcspn(message, "\n"), message,
            db->outage_logged ? " (further failures of this thread are not logged until it reconnects)"
                              : "");
}

static bool pg_connect(struct pg *db, const char *conninfo, struct problem *p)
{
    /* Defaults first: values in the user's connection string override them. */
    static const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *values[] = {"3", "eventtrack", conninfo, NULL};

    db->conn = PQconnectdbParams(keys, values, 1);
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
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
    PQsetNoticeProcessor(db->conn, notice_ignore, NULL);
    if (db->pool)
        atomic_fetch_add(&db->pool->connections, 1);
    return true;
}

/* Design note 3: drop an idle connection that the server already closed. */
static void pg_check_idle(struct pg *db)
{
    struct pollfd pfd = {.fd = PQsocket(db->conn), .events = POLLIN};

    if (PQstatus(db->conn) != CONNECTION_OK || pfd.fd < 0) {
        pg_disconnect(db);
        return;
    }
    if (poll(&pfd, 1, 0) > 0) {
        PGnotify *n;
        if (!PQconsumeInput(db->conn) || PQstatus(db->conn) != CONNECTION_OK) {
            pg_disconnect(db);
            return;
        }
        while ((n = PQnotifies(db->conn)) != NULL)
            PQfreemem(n);
    }
}

struct pg *pg_session(struct pg_pool *pool, struct problem *p)
{
    struct pg *db = thread_conn;

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

/* Design note 4: the one SQLSTATE -> et_err mapping; the details stay in the log. */
static enum et_err pg_error(struct pg *db, const PGresult *res, struct problem *p)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *message = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state ? state : "");
    snprintf(db->constraint, sizeof db->constraint, "%s", constraint ? constraint : "");
    if (!message)
        message = db->conn ? PQerrorMessage(db->conn) : "no connection";

    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        /* Log first: the message may live inside the connection we drop. */
        outage_log(db, "connection lost", message);
        pg_disconnect(db);
        if (db->pool)
            atomic_fetch_add(&db->pool->errors, 1);
        return problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
                           "the connection to PostgreSQL was lost");
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
    if (strncmp(state, SQLSTATE_CONNECTION_EXCEPTION_CLASS, 2) == 0 ||
        strncmp(state, SQLSTATE_INSUFFICIENT_RESOURCES_CLASS, 2) == 0) {
        outage_log(db, "unavailable", message);
        return problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
                           "PostgreSQL is unavailable or overloaded; retry");
    }
    et_log(LL_ERROR, "postgres", "%s: %.*s", state, (int)strcspn(message, "\n"), message);
    return problem_set(p, ET_ERR_INTERNAL, NULL, "a database statement failed");
}

static bool pg_prepare(struct pg *db, const struct pg_stmt *st, struct problem *p)
{
    PGresult *res;

    for (size_t i = 0; i < db->nprepared; i++)
        if (db->prepared[i] == st)
            return true;
    res = PQprepare(db->conn, st->name, st->sql, st->nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pg_error(db, res, p);
        PQclear(res);
        return false;
    }
    PQclear(res);
    if (db->nprepared < PG_MAX_PREPARED)
        db->prepared[db->nprepared++] = st;
    return true;
}

PGresult *pg_exec(struct pg *db, const struct pg_stmt *st, const char *const *params,
                  struct problem *p)
{
    PGresult *res;
    ExecStatusType status;

    db->sqlstate[0] = db->constraint[0] = '\0';
    if (db->conn == NULL) {
        problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "PostgreSQL is unavailable");
        return NULL;
    }
    if (!pg_prepare(db, st, p))
        return NULL;
    res = PQexecPrepared(db->conn, st->name, st->nparams, params, NULL, NULL, 0);
    status = PQresultStatus(res);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        return res;
    pg_error(db, res, p);
    PQclear(res);
    return NULL;
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
    PGresult *res;

    db->sqlstate[0] = db->constraint[0] = '\0';
    if (db->conn == NULL)
        return problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "PostgreSQL is unavailable");
    res = PQexec(db->conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        enum et_err err = pg_error(db, res, p);
        PQclear(res);
        return err;
    }
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
