/*
 * store/cluster.c - settings every replica must share (cluster_settings).
 *
 * The first replica records its value; the others compare theirs with it.
 * Two statements, not one: under a concurrent start the second INSERT waits
 * for the first and does nothing, and only a new statement's snapshot sees
 * the row the first one committed.
 */
#include <stdio.h>
#include <string.h>

#include "store/pg.h"
#include "store/store.h"

static const struct pg_stmt stmt_record = {
    "cluster_setting_record",
    "INSERT INTO cluster_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", 2};
static const struct pg_stmt stmt_read = {
    "cluster_setting_read", "SELECT value FROM cluster_settings WHERE name = $1", 1};

enum et_err cluster_setting_agree(struct pg *db, const char *name, const char *value, char *recorded,
                                  size_t recorded_size, struct problem *p)
{
    const char *params[] = {name, value};
    PGresult *res = pg_exec(db, &stmt_record, params, p);
    enum et_err err;

    if (res == NULL)
        return p->err;
    PQclear(res);
    if ((res = pg_exec_row(db, &stmt_read, params, "cluster setting", name, p)) == NULL)
        return p->err;
    snprintf(recorded, recorded_size, "%s", PQgetvalue(res, 0, 0));
    err = strcmp(recorded, value) == 0 ? ET_OK : ET_ERR_CONFLICT;
    PQclear(res);
    return err;
}
