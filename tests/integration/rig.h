/* rig.h: stores of a test's own, for tests that must break or measure them.
 *
 * Some tests cannot use the shared test stores: they kill Redis, cut
 * PostgreSQL, or count a database's transactions, and the leaderboard outbox
 * is one queue per database drained by every service connected to it (ADR
 * 0003), so a shared database would feed other runs' Redis. Such a suite gets
 * a rig:
 *   - a scratch database (CREATE DATABASE, `eventtrack migrate`; dropped by
 *     rig_fini; one left behind by a killed run is dropped by a later run of
 *     the same suite after an hour);
 *   - a redis-server of its own (no persistence, a free loopback port, a
 *     temporary --dir; ET_IT_REDIS_SERVER names the binary, default
 *     redis-server on PATH), which the test may kill -9 or restart empty;
 *   - services spawned against them (spawn_service), all killed by rig_fini.
 *
 * One rig per test process (Criterion runs each test in a process of its
 * own): the suite's .init calls rig_init(name) and its .fini rig_fini(), which
 * runs whether the test passed or failed. `name` ("faults") names what the
 * rig leaves around: databases et_<name>_*, /tmp/et-<name>-redis-*, the logs
 * ET_IT_LOG_DIR/integration-service-<name>.log and
 * ET_IT_LOG_DIR/integration-redis-<name>.log, and its stderr lines "<name>: ".
 *
 * Memory: as in harness.h, every char * returned is the caller's (tests may
 * leak them); a redisReply * is the caller's to freeReplyObject, a PGresult *
 * the caller's to PQclear. The fields of `rig` belong to the rig: tests read
 * them and never write them.
 */
#ifndef ET_IT_RIG_H
#define ET_IT_RIG_H

#include <stdbool.h>
#include <sys/types.h>

#include <hiredis.h>
#include <libpq-fe.h>

#define RIG_MAX_SERVICES 8

struct rig {
    const char *name;         /* from rig_init, borrowed */
    char *service_log;        /* where spawned services' stderr goes */
    char *redis_log;          /* where redis-server's output goes */
    PGconn *admin;            /* the shared test database: CREATE / DROP DATABASE */
    char *db_name;            /* scratch database, NULL when none */
    char *db_url;             /* its conninfo, for services */
    PGconn *db;               /* held connection to it (rig_db_create(true)), else NULL */
    int redis_port;           /* own redis-server; 0 before the first start */
    pid_t redis_pid;          /* 0 when not running */
    char redis_dir[64];
    redisContext *rc;         /* the test's connection to it */
    pid_t services[RIG_MAX_SERVICES];
};
extern struct rig rig;

void rig_init(const char *name);
/* Kills every service and the redis-server, removes its directory, drops the
 * scratch database; reports (never asserts) what it could not undo. */
void rig_fini(void);

/* ---- the scratch database ---- */

/* Creates and migrates the scratch database. hold: keep a connection to it
 * for rig_db_query (false: each rig_db_ll connects and disconnects at once,
 * for tests that count the database's backends or transactions). */
void rig_db_create(bool hold);
/* A query on the scratch database that must return rows; asserts on errors.
 * Needs rig_db_create(true). */
PGresult *rig_db_query(const char *sql, const char *const *params);
/* One integer (-1 for SQL NULL) of a one-row query on the scratch database. */
long long rig_db_ll(const char *sql, const char *const *params);

/* ---- our own redis-server ---- */

/* Starts redis-server (empty, no persistence, extra_args NULL-terminated or
 * NULL) on rig.redis_port, choosing a free one the first time, and waits until
 * it answers PING; asserts when it does not start. */
void rig_redis_start(const char *const *extra_args);
void rig_redis_kill9(void);
/* The connection to our redis-server (reconnecting after an error), or NULL. */
redisContext *rig_redis_try(void);
void rig_redis_drop(void);
/* A command on our redis-server: asserts it answered, and (rig_redis) that
 * the answer is not an error reply; rig_redis_any returns error replies. */
redisReply *rig_redis(const char *format, ...);
redisReply *rig_redis_any(const char *format, ...);
char *rig_redis_url(int port);

/* ---- services ---- */

/* A service on db_url (NULL: the scratch database) and Redis at redis_port
 * (0: ours), with extra arguments and one extra "NAME=value" (NULL: none; a
 * fault point armed in the test's own environment is removed). */
pid_t rig_service(const char *db_url, int redis_port, const char *const *args, const char *extra_env,
                  char **base);
/* The whole rig most tests start from: a migrated scratch database held
 * open, our own redis-server, and a service on both with args. */
pid_t rig_up(const char *const *args, char **base);
/* The rig no longer kills pid in rig_fini (the test has reaped it). */
void rig_forget_service(pid_t pid);
/* SIGTERM and the wait status; the caller asserts on it. */
int rig_stop_service(pid_t pid);
/* SIGTERM and assert exit status 0. */
void rig_expect_clean_stop(pid_t pid);
/* Waits up to timeout_ms for a child to end; false if it is still running. */
bool rig_wait_exit(pid_t pid, long long timeout_ms, int *status);

#endif
