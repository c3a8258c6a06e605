/*
 * store/lineage.c - Redis's history and the rebuild election (ADR 0014).
 *
 * Design notes
 *  1. Why a lineage. The epoch (leaderboards.c, design note 4) catches a
 *     loss only in the process whose increments were lost, and only if no
 *     other process pushes the epoch back above what it saw first. A failover
 *     to a replica that missed acknowledged writes is a loss every process
 *     must see alike, whoever made the writes. Redis gives every primary
 *     history a replication id (INFO replication, master_replid): a promoted
 *     replica starts a new one, and a restarted primary does too. So the
 *     rebuild records the id under eventtrack:lineage, and every worker pass
 *     of every process compares it with the primary it is connected to: a
 *     different id means "the boards may miss writes", for all processes at
 *     once. A missing key on a Redis that has an epoch is first use after an
 *     upgrade, and is recorded without a rebuild.
 *  2. The price: a switchover that lost nothing (a planned failover, a clean
 *     restart) also rebuilds every board once. A rebuild is one GROUP BY per
 *     board and does not block reads (leaderboards.c, design note 5).
 *  3. Who rebuilds. pg_try_advisory_lock on the worker's connection: one
 *     process wins and rebuilds; the others skip the rebuild and keep
 *     applying the outbox and serving, and see the recorded lineage on their
 *     next pass. The lock is a session lock, because a rebuild spans several
 *     transactions; the lock is released when the rebuild ends, or by
 *     PostgreSQL when the connection dies.
 */
#include "store/lineage.h"

#include <stdio.h>
#include <string.h>

#define LINEAGE_KEY "eventtrack:lineage"
/* "ET14" + 1: the advisory lock of the leaderboard rebuild. */
#define LINEAGE_LOCK "1163150388"

static const struct pg_stmt stmt_elect = {
    "lineage_elect", "SELECT pg_try_advisory_lock(" LINEAGE_LOCK ")", 0};
static const struct pg_stmt stmt_resign = {
    "lineage_resign", "SELECT pg_advisory_unlock(" LINEAGE_LOCK ")", 0};

/* master_replid from INFO replication; false if absent. */
static bool read_replid(struct rds *r, char *replid)
{
    const char *argv[] = {"INFO", "replication"};
    redisReply *reply = rds_command(r, 2, argv, NULL);
    const char *at = NULL;
    bool ok = false;

    if (reply && reply->type == REDIS_REPLY_STRING)
        at = strstr(reply->str, "master_replid:");
    if (at) {
        at += strlen("master_replid:");
        ok = strspn(at, "0123456789abcdef") == LINEAGE_REPLID_LEN;
        if (ok) {
            memcpy(replid, at, LINEAGE_REPLID_LEN);
            replid[LINEAGE_REPLID_LEN] = '\0';
        }
    }
    freeReplyObject(reply);
    return ok;
}

bool lineage_check(struct rds *r, char *replid, bool *changed)
{
    const char *argv[] = {"GET", LINEAGE_KEY};
    redisReply *reply;
    bool ok;

    *changed = false;
    if (!read_replid(r, replid))
        return false;
    reply = rds_command(r, 2, argv, NULL);
    ok = reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_NIL);
    if (ok && reply->type == REDIS_REPLY_STRING)
        *changed = strcmp(reply->str, replid) != 0;
    if (ok && reply->type == REDIS_REPLY_NIL)
        ok = lineage_record(r, replid);       /* design note 1: first use */
    freeReplyObject(reply);
    return ok;
}

bool lineage_record(struct rds *r, const char *replid)
{
    const char *argv[] = {"SET", LINEAGE_KEY, replid};
    redisReply *reply = rds_command(r, 3, argv, NULL);
    bool ok = reply && reply->type == REDIS_REPLY_STATUS;

    freeReplyObject(reply);
    return ok;
}

bool lineage_elect(struct pg *db, bool *elected)
{
    struct problem p = {0};
    PGresult *res = pg_exec(db, &stmt_elect, NULL, &p);

    *elected = res && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return res != NULL;
}

void lineage_resign(struct pg *db)
{
    struct problem p = {0};

    PQclear(pg_exec(db, &stmt_resign, NULL, &p));
}
