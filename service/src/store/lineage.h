/*
 * store/lineage.h - which Redis history the leaderboards were written to, and
 * which process rebuilds them after a loss (ADR 0014). Only store/ includes it.
 */
#ifndef ET_STORE_LINEAGE_H
#define ET_STORE_LINEAGE_H

#include <stdbool.h>

#include "store/pg.h"
#include "store/redis.h"

#define LINEAGE_REPLID_LEN 40

/*
 * Compares the primary's replication id with the one recorded in Redis by the
 * last full rebuild (or first use). *changed: the primary is not the one the
 * boards were recorded on (a failover, or a restart that may have lost its
 * last writes). replid receives the primary's id (LINEAGE_REPLID_LEN + 1
 * bytes), for lineage_record after the rebuild. False if Redis failed.
 */
bool lineage_check(struct rds *r, char *replid, bool *changed);

/* Records replid as the history the boards now belong to; false if Redis failed. */
bool lineage_record(struct rds *r, const char *replid);

/* One process rebuilds (a PostgreSQL session advisory lock, on db's
 * connection): *elected is false when another process holds it. A dropped
 * connection releases the lock by itself. False if PostgreSQL failed. */
bool lineage_elect(struct pg *db, bool *elected);
void lineage_resign(struct pg *db);

#endif
