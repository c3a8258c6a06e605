/*
 * store/migrate.c - applying schema/ migrations.
 *
 * Each migration runs in its own transaction together with the row that
 * records it in schema_migrations, so a migration is applied entirely or not
 * at all, and running `eventtrack migrate` again applies nothing twice. A
 * session-level advisory lock serialises concurrent migrators (two
 * containers starting at once).
 */
#include <stdio.h>
#include <string.h>

#include "embedded.h"
#include "log.h"
#include "store/handle.h"
#include "store/pg.h"
#include "store/store.h"

#define MIGRATE_LOCK_ID "7310562"   /* arbitrary, fixed: the advisory lock of migrations */

static const struct pg_stmt stmt_applied = {
    "migrate_applied", "SELECT 1 FROM schema_migrations WHERE version = $1", 1};
static const struct pg_stmt stmt_record = {
    "migrate_record", "INSERT INTO schema_migrations (version) VALUES ($1)", 1};

static enum et_err migrate_exec_script(struct pg *db, const struct embedded_file *m, struct problem *p)
{
    PGresult *res = PQexec(pg_conn(db), m->data);
    enum et_err err = ET_OK;

    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        err = problem_set(p, ET_ERR_INTERNAL, NULL, "migration %s failed: %s", m->name,
                          PQresultErrorMessage(res));
    PQclear(res);
    return err;
}

static bool migrate_is_applied(struct pg *db, const char *version, bool *applied,
                               struct problem *p)
{
    const char *params[] = {version};
    PGresult *res = pg_exec(db, &stmt_applied, params, p);

    if (res == NULL)
        return false;
    *applied = PQntuples(res) > 0;
    PQclear(res);
    return true;
}

enum et_err migrate_run(struct store *st, size_t *applied, struct problem *p)
{
    struct pg *db = store_pg(st, p);
    enum et_err err;

    if (db == NULL)
        return p->err;
    *applied = 0;
    if ((err = pg_command(db, "SELECT pg_advisory_lock(" MIGRATE_LOCK_ID ")", p)) != ET_OK)
        return err;
    err = pg_command(db,
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version text PRIMARY KEY,"
                     " applied_at timestamptz NOT NULL DEFAULT now())", p);
    for (size_t i = 0; err == ET_OK && i < migrations_count; i++) {
        const struct embedded_file *m = &migrations[i];
        const char *params[] = {m->name};
        bool done;
        PGresult *res;

        if (!migrate_is_applied(db, m->name, &done, p)) {
            err = p->err;
            break;
        }
        if (done)
            continue;
        if ((err = pg_command(db, "BEGIN", p)) != ET_OK)
            break;
        if ((err = migrate_exec_script(db, m, p)) == ET_OK &&
            (res = pg_exec(db, &stmt_record, params, p)) != NULL) {
            PQclear(res);
            err = pg_command(db, "COMMIT", p);
        } else {
            err = p->err;
        }
        if (err != ET_OK) {
            pg_rollback(db);
            break;
        }
        et_log(LL_INFO, "migrate", "applied %s", m->name);
        (*applied)++;
    }
    struct problem ignored = {0};
    pg_command(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_ID ")", &ignored);
    return err;
}

long migrate_pending(struct store *st)
{
    struct problem ignored = {0};
    struct pg *db = store_pg(st, &ignored);
    PGresult *res = db ? PQexec(pg_conn(db), "SELECT version FROM schema_migrations") : NULL;
    long pending = (long)migrations_count;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool no_table = state && strcmp(state, SQLSTATE_UNDEFINED_TABLE) == 0;
        PQclear(res);
        return no_table ? pending : -1;
    }
    for (int r = 0; r < PQntuples(res); r++)
        for (size_t i = 0; i < migrations_count; i++)
            if (strcmp(PQgetvalue(res, r, 0), migrations[i].name) == 0)
                pending--;
    PQclear(res);
    return pending;
}
