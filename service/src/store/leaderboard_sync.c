/*
 * store/leaderboard_sync.c - one pass of the convergence worker: Redis is
 * brought back to what PostgreSQL committed (store/leaderboards.c, design
 * notes 3, 4 and 6).
 *
 * In order: a Redis that lost acknowledged writes gets every board rebuilt;
 * outbox rows too old to replay settle by rebuilding their board; then the
 * outbox is applied in batches, each deleted in the transaction that took it,
 * only after Redis acknowledged it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store/board.h"
#include "store/handle.h"
#include "store/lineage.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/store.h"

#define SYNC_BATCH 1000              /* outbox rows applied per transaction */
#define SYNC_BATCHES_PER_PASS 20     /* a steady stream is left for the next pass */

static const struct pg_stmt stmt_outbox_take = {
    "leaderboard_outbox_take",
    "SELECT o.seq, e.leaderboard_event_id, e.leaderboard_speaker_id, " SQL_APPLIED_MEMBER
    "  FROM leaderboard_outbox o JOIN analytics_events e ON e.seq = o.seq"
    " WHERE o.created_at >= now() - make_interval(secs => $1::double precision)"
    "   AND o.seq > $3::bigint"
    " ORDER BY o.seq LIMIT $2::integer FOR UPDATE OF o SKIP LOCKED",
    3};

static const struct pg_stmt stmt_outbox_done = {
    "leaderboard_outbox_done",
    "DELETE FROM leaderboard_outbox WHERE seq = ANY($1::bigint[])", 1};

/* Boards with outbox rows older than the applied set's retention (note 6). */
static const struct pg_stmt stmt_outbox_stale_boards = {
    "leaderboard_outbox_stale_boards",
    "SELECT DISTINCT e.leaderboard_event_id"
    "  FROM leaderboard_outbox o JOIN analytics_events e ON e.seq = o.seq"
    " WHERE o.created_at < now() - make_interval(secs => $1::double precision)",
    1};

/* After its board was rebuilt (which counted them), the stale rows can go. */
static const struct pg_stmt stmt_outbox_stale_done = {
    "leaderboard_outbox_stale_done",
    "DELETE FROM leaderboard_outbox o USING analytics_events e"
    " WHERE e.seq = o.seq AND e.leaderboard_event_id = $2"
    "   AND o.created_at < now() - make_interval(secs => $1::double precision)",
    2};

/* Design note 6: outbox rows too old to replay safely are settled by a rebuild. */
static enum et_err sync_stale(struct store *store, struct pg *db, struct sync_stats *st,
                              struct problem *p)
{
    char retention[24];
    const char *params[] = {retention, NULL};
    PGresult *boards, *done;
    enum et_err err = ET_OK;

    snprintf(retention, sizeof retention, "%lld", board_retention_seconds());
    if ((boards = pg_exec(db, &stmt_outbox_stale_boards, params, p)) == NULL)
        return p->err;
    for (int i = 0; i < PQntuples(boards) && err == ET_OK; i++) {
        size_t rebuilt, events;
        params[1] = PQgetvalue(boards, i, 0);
        if ((err = leaderboard_rebuild(store, params[1], &rebuilt, &events, p)) != ET_OK)
            break;
        st->rebuilt_boards += rebuilt;
        if ((done = pg_exec(db, &stmt_outbox_stale_done, params, p)) == NULL)
            err = p->err;
        PQclear(done);
    }
    PQclear(boards);
    return err;
}

/*
 * Applies one batch of the outbox and deletes it, in one transaction: the
 * rows after seq `after` (a decimal string), which becomes the batch's last.
 *
 * Why a pass resumes after its previous batch instead of at the outbox's
 * head: the rows a batch deleted stay in the index until VACUUM, and until
 * every snapshot older than the delete has ended no scan can mark them dead,
 * so each batch started at the head visited every row the pass had deleted
 * before it. Under batch ingest that took 1.9 s, then past the 5 s deadline,
 * per take (scripts/bench, ingest100). A row with a lower seq that commits
 * after its batch passed is taken by the next pass, which starts at 0.
 *
 * Each batch has a request's deadline of its own: a pass of 20 batches
 * behind a backlog, on a loaded machine, outlasted one deadline and had its
 * connection dropped in the middle of a healthy transaction.
 */
static enum et_err sync_outbox_batch(struct pg *db, struct rds *r, char after[24], size_t *taken,
                                     struct sync_stats *st, struct problem *p)
{
    char retention[24], batch[16];
    const char *take_params[] = {retention, batch, after};
    struct board_keys *keys = NULL;
    struct board_view *views = NULL;
    PGresult *rows = NULL, *done = NULL;
    struct buf seqs = BUF_INIT;
    size_t n = 0;
    enum et_err err;

    *taken = 0;
    snprintf(retention, sizeof retention, "%lld", board_retention_seconds());
    snprintf(batch, sizeof batch, "%d", SYNC_BATCH);
    pg_renew_deadline(db);
    if ((err = pg_command(db, "BEGIN", p)) != ET_OK)
        return err;
    if ((rows = pg_exec(db, &stmt_outbox_take, take_params, p)) == NULL)
        goto fail;
    n = (size_t)PQntuples(rows);
    if (n == 0)
        goto commit;
    keys = calloc(n, sizeof *keys);
    views = calloc(n, sizeof *views);
    if (keys == NULL || views == NULL) {
        problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
        goto fail;
    }
    buf_putc(&seqs, '{');
    for (size_t i = 0; i < n; i++) {
        buf_printf(&seqs, "%s%s", i ? "," : "", PQgetvalue(rows, (int)i, 0));
        board_keys_of(&keys[i], PQgetvalue(rows, (int)i, 1));
        views[i] = (struct board_view){&keys[i], PQgetvalue(rows, (int)i, 3),
                                       PQgetvalue(rows, (int)i, 2)};
    }
    buf_putc(&seqs, '}');
    if (seqs.failed) {
        problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
        goto fail;
    }
    /* Redis first, then the delete: a row leaves the outbox only once applied. */
    if (!board_apply_views(r, views, n)) {
        problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "Redis did not take the outbox");
        goto fail;
    }
    {
        const char *done_params[] = {seqs.data};
        if ((done = pg_exec(db, &stmt_outbox_done, done_params, p)) == NULL)
            goto fail;
    }
commit:
    if ((err = pg_command(db, "COMMIT", p)) == ET_OK) {
        *taken = n;
        st->applied += n;
        if (n > 0)
            snprintf(after, 24, "%s", PQgetvalue(rows, (int)n - 1, 0));
    }
    goto out;
fail:
    err = p->err;
    pg_rollback(db);
out:
    buf_free(&seqs);
    PQclear(done);
    PQclear(rows);
    free(views);
    free(keys);
    return err;
}

/* Design note 4 and ADR 0014: every board again from PostgreSQL, then the
 * epoch and the lineage restart from the Redis rebuilt. */
static enum et_err rebuild_after_loss(struct store *store, struct rds *r, const char *replid,
                                      bool moved, struct sync_stats *st, struct problem *p)
{
    size_t events;
    enum et_err err;

    st->redis_lost = true;
    /* A process that never saw an epoch has lost nothing: Redis is new
     * or was emptied before it started. Say which, for the operator. */
    if (moved)
        et_log(LL_WARN, "leaderboard", "Redis's primary changed (replication id %s);"
                        " rebuilding every board from PostgreSQL", replid);
    else if (board_epoch_seen() == 0)
        et_log(LL_INFO, "leaderboard", "no epoch in Redis yet (a new or emptied"
                        " Redis); building every board from PostgreSQL");
    else
        et_log(LL_WARN, "leaderboard", "Redis lost acknowledged writes"
                        " (epoch missing or behind); rebuilding every board from PostgreSQL");
    if ((err = leaderboard_rebuild(store, NULL, &st->rebuilt_boards, &events, p)) != ET_OK)
        return err;
    if (!board_epoch_reset(r) || !lineage_record(r, replid))
        return problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "Redis is unavailable");
    return ET_OK;
}

/* ADR 0014: one process rebuilds, the others keep serving. The loss is
 * looked at again under the lock: another process may have rebuilt between
 * this one's first look and its turn. */
static enum et_err rebuild_elected(struct store *store, struct pg *db, struct rds *r,
                                   struct sync_stats *st, struct problem *p)
{
    bool elected = false, lost = false, moved = false;
    char replid[LINEAGE_REPLID_LEN + 1];
    enum et_err err = ET_OK;

    if (!lineage_elect(db, &elected))
        return problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "PostgreSQL is unavailable");
    if (!elected)
        return ET_OK;
    if (!board_redis_lost_data(r, &lost) || !lineage_check(r, replid, &moved))
        err = problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "Redis is unavailable");
    else if (lost || moved)
        err = rebuild_after_loss(store, r, replid, moved, st, p);
    lineage_resign(db);
    return err;
}

enum et_err leaderboard_sync(struct store *store, struct sync_stats *st, struct problem *p)
{
    struct pg *db;
    struct rds *r;
    bool lost = false, moved = false;
    char replid[LINEAGE_REPLID_LEN + 1], after[24] = "0";
    size_t taken;
    enum et_err err;

    memset(st, 0, sizeof *st);
    if ((r = store_rds(store, p)) == NULL || (db = store_pg(store, p)) == NULL)
        return p->err;
    if (!board_redis_lost_data(r, &lost) || !lineage_check(r, replid, &moved))
        return problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "Redis is unavailable");
    if ((lost || moved) && (err = rebuild_elected(store, db, r, st, p)) != ET_OK)
        return err;
    if ((err = sync_stale(store, db, st, p)) != ET_OK)
        return err;
    /* Drain what is there now; a steady stream is left for the next pass. */
    for (int batches = 0; batches < SYNC_BATCHES_PER_PASS; batches++) {
        if ((err = sync_outbox_batch(db, r, after, &taken, st, p)) != ET_OK)
            return err;
        if (taken < SYNC_BATCH)
            break;
    }
    return ET_OK;
}
