/*
 * store/pg.h - PostgreSQL connections, prepared statements, SQLSTATE -> et_err.
 *
 * A libpq connection is not thread-safe, so each worker thread owns one,
 * opened on first use and reopened after it breaks (design notes in pg.c).
 * Only store/ includes this header: no PGresult leaves the store.
 */
#ifndef ET_STORE_PG_H
#define ET_STORE_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "store/store.h"

/* The SQLSTATEs (PostgreSQL, Appendix A) the stores act on, by name; a
 * two-character one is a class, compared with strncmp(state, CLASS, 2). */
#define SQLSTATE_CONNECTION_EXCEPTION_CLASS "08"
#define SQLSTATE_DATA_EXCEPTION_CLASS "22"
#define SQLSTATE_READ_ONLY_SQL_TRANSACTION "25006"
#define SQLSTATE_INTEGRITY_VIOLATION_CLASS "23"
#define SQLSTATE_FOREIGN_KEY_VIOLATION "23503"
#define SQLSTATE_UNIQUE_VIOLATION "23505"
#define SQLSTATE_SERIALIZATION_FAILURE "40001"
#define SQLSTATE_DEADLOCK_DETECTED "40P01"
#define SQLSTATE_UNDEFINED_TABLE "42P01"
#define SQLSTATE_INSUFFICIENT_RESOURCES_CLASS "53"
#define SQLSTATE_LOCK_NOT_AVAILABLE "55P03"
#define SQLSTATE_OPERATOR_INTERVENTION_CLASS "57"
#define SQLSTATE_ADMIN_SHUTDOWN "57P01"
#define SQLSTATE_CRASH_SHUTDOWN "57P02"
#define SQLSTATE_CANNOT_CONNECT_NOW "57P03"
#define SQLSTATE_INTERNAL_ERROR "XX000"

struct pg_pool;     /* process-wide: connection string and counters */
struct pg;          /* one thread's connection */

/* A statement prepared once per connection under `name`. Define as static const.
 * An empty name ("") is never prepared: each execution is parsed and planned
 * with its parameters' values (PostgreSQL's unnamed statement), for a
 * statement whose best plan depends on them -- a prepared one switches to a
 * generic plan after five executions, blind to the values (store/pg.c note 2). */
struct pg_stmt {
    const char *name;
    const char *sql;
    int nparams;
};

/* An analytics event's identity in a board's applied set: tenant and event id
 * ("org/evt", "/evt" for the admin's namespace; ids cannot contain '/'). */
#define SQL_APPLIED_MEMBER "coalesce(organization_id, '') || '/' || event_id"

/* The arguments of an organization's top-up gate, pg_advisory_xact_lock(2 x int):
 * the two-key form, a lock space no other lock of the service uses
 * (store/organizations.c, design notes 2 and 3). */
#define SQL_TOP_UP_GATE(org) "7310563, hashtext(" org ")"

/* Renders a timestamptz column as RFC 3339 UTC with microseconds. */
#define SQL_RFC3339(col) \
    "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"



/* This thread's PostgreSQL connection, (re)opened as needed; NULL with
 * p = unavailable when PostgreSQL cannot be reached. Reached through a store
 * handle (store_pg, store/handle.c); nothing above store/ calls it. */
struct pg *pg_session(struct pg_pool *pool, struct problem *p);

/* A one-off connection kept across outages (store/budget.c): *db NULL is
 * allocated here (pg_close frees it); a dropped connection is reopened in
 * place. Unlike pg_open's, it logs an outage once until it reconnects
 * (note 5), since its owner retries every pass. false with p filled when
 * PostgreSQL cannot be reached. */
bool pg_keep_open(struct pg **db, const char *conninfo, struct problem *p);

/* Ends the connection's transaction, if any, throwing away what it did. A
 * failure needs no answer: the connection is then dropped, which ends the
 * transaction too. */
void pg_rollback(struct pg *db);

/*
 * Runs a prepared statement with text parameters (NULL = SQL NULL). Returns
 * the result (caller PQclear()s it), or NULL with p filled from the SQLSTATE;
 * pg_sqlstate()/pg_constraint() then tell which rule refused the statement.
 */
PGresult *pg_exec(struct pg *db, const struct pg_stmt *st, const char *const *params,
                  struct problem *p);
/* pg_exec for a statement that names one resource: NULL with ET_ERR_NOT_FOUND
 * ("no <what> <id>") when it returns no row. */
PGresult *pg_exec_row(struct pg *db, const struct pg_stmt *st, const char *const *params,
                      const char *what, const char *id, struct problem *p);

/* A parameterless utility command: BEGIN, COMMIT, SAVEPOINT ... */
enum et_err pg_command(struct pg *db, const char *sql, struct problem *p);

const char *pg_sqlstate(const struct pg *db);       /* of the last failure, "" if none */
const char *pg_constraint(const struct pg *db);     /* constraint named by it, "" if none */

/* The raw connection, for the migration runner's multi-statement scripts. */
PGconn *pg_conn(struct pg *db);


/*
 * The request's deadline, CLOCK_MONOTONIC in microseconds (0: none): a
 * statement still unanswered then drops the connection and fails with 503
 * (store/pg.c design note 6). pg_session() sets now + request_deadline_ms;
 * a caller that knows its request started earlier may set it tighter.
 */
void pg_set_deadline(struct pg *db, int64_t deadline_monotonic_us);
/* The pool's deadline again, from now (none for pg_open's connections):
 * for a caller that runs several bounded transactions on one session (the
 * worker's outbox batches), each with the time a request would have. */
void pg_renew_deadline(struct pg *db);

long pg_pool_connections(const struct pg_pool *pool);
long pg_pool_errors(const struct pg_pool *pool);

#endif
