/*
 * store/cluster.c - settings every replica must share (cluster_settings).
 *
 * The first replica records its value; the others compare theirs with it.
 * Separate statements, not one: under a concurrent start the second INSERT waits
 * for the first and does nothing, and only a new statement's snapshot sees
 * the row the first one committed.
 */
#include <stdio.h>
#include <string.h>

#include "store/handle.h"
#include "store/pg.h"
#include "store/store.h"

static const struct pg_stmt stmt_record = {
    "cluster_setting_record",
    "INSERT INTO cluster_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", 2};
static const struct pg_stmt stmt_read = {
    "cluster_setting_read", "SELECT value FROM cluster_settings WHERE name = $1", 1};

/* The recorded value into recorded; false with p filled when there is none
 * (ET_ERR_NOT_FOUND) or the statement failed. */
static bool setting_read(struct pg *db, const char *name, char *recorded, size_t recorded_size,
                         struct problem *p)
{
    const char *params[] = {name};
    PGresult *res = pg_exec_row(db, &stmt_read, params, "cluster setting", name, p);

    if (res == NULL)
        return false;
    snprintf(recorded, recorded_size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return true;
}

enum et_err cluster_setting_agree(struct store *st, const char *name, const char *value,
                                  char *recorded, size_t recorded_size, struct problem *p)
{
    const char *params[] = {name, value};
    struct pg *db = store_pg(st, p);
    PGresult *res;

    if (db == NULL)
        return p->err;
    /* Read first: a replica that only needs to compare (every start but the
     * first) writes nothing, so a read-only session can still check. */
    if (!setting_read(db, name, recorded, recorded_size, p)) {
        if (p->err != ET_ERR_NOT_FOUND)
            return p->err;
        *p = (struct problem){0};
        if ((res = pg_exec(db, &stmt_record, params, p)) == NULL)
            return p->err;
        PQclear(res);
        if (!setting_read(db, name, recorded, recorded_size, p))
            return p->err;
    }
    return strcmp(recorded, value) == 0 ? ET_OK : ET_ERR_CONFLICT;
}
