/*
 * store/leaderboard_rebuild.c - recomputes a board from PostgreSQL and swaps
 * it into Redis atomically (store/leaderboards.c, design note 5).
 *
 * The repair path: the convergence pass (store/leaderboard_sync.c) calls it
 * when Redis lost writes or an outbox row is too old to replay, and
 * `eventtrack rebuild-leaderboards` calls it by hand. A board is built in
 * temporary keys unique to this rebuild, then swapped in with one script, so
 * readers see the old board or the new one, never half of one.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "store/board.h"
#include "store/handle.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/store.h"

#define SADD_CHUNK 500               /* members per SADD while filling a temporary applied set */

/* KEYS: board, applied, version, then the new three. An empty rebuild clears
 * the board. The version moves with its board (leaderboards.c note 9). */
static const struct rds_script script_swap = {
    "swap_board",
    "redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])\n"
    "for i = 1, 3 do\n"
    "  if redis.call('EXISTS', KEYS[i + 3]) == 1 then redis.call('RENAME', KEYS[i + 3], KEYS[i]) end\n"
    "end\n"
    "return 1\n"};

/* ---- rebuild (design note 5) ---- */

static const struct pg_stmt stmt_boards = {
    "leaderboard_boards",
    "SELECT DISTINCT leaderboard_event_id FROM analytics_events"
    " WHERE leaderboard_event_id IS NOT NULL",
    0};

static const struct pg_stmt stmt_snapshot_start = {
    "leaderboard_snapshot_start", "SELECT now() - interval '1 minute'", 0};

static const struct pg_stmt stmt_counts = {
    "leaderboard_counts",
    "SELECT leaderboard_speaker_id, count(*) FROM analytics_events"
    " WHERE leaderboard_event_id = $1 GROUP BY leaderboard_speaker_id",
    1};

/* The views that may still be applied again: received since $2, or in the outbox. */
static const struct pg_stmt stmt_live_members = {
    "leaderboard_live_members",
    "SELECT " SQL_APPLIED_MEMBER " FROM analytics_events"
    " WHERE leaderboard_event_id = $1 AND received_at >= $2::timestamptz"
    " UNION "
    "SELECT " SQL_APPLIED_MEMBER " FROM analytics_events e"
    "  JOIN leaderboard_outbox o ON o.seq = e.seq WHERE e.leaderboard_event_id = $1",
    2};

static const struct pg_stmt stmt_tail = {
    "leaderboard_tail",
    "SELECT " SQL_APPLIED_MEMBER ", leaderboard_speaker_id FROM analytics_events"
    " WHERE leaderboard_event_id = $1 AND received_at >= $2::timestamptz",
    2};


static bool rds_chunked(struct rds *r, const char *const *cmd, int ncmd, const char **words,
                        size_t nwords, size_t chunk)
{
    const char **argv = malloc((size_t)(ncmd + (int)chunk) * sizeof *argv);
    bool ok = argv != NULL;

    for (size_t start = 0; ok && start < nwords; start += chunk) {
        size_t n = nwords - start < chunk ? nwords - start : chunk;
        redisReply *reply;
        for (int i = 0; i < ncmd; i++)
            argv[i] = cmd[i];
        for (size_t i = 0; i < n; i++)
            argv[(size_t)ncmd + i] = words[start + i];
        reply = rds_command(r, ncmd + (int)n, argv, NULL);
        ok = reply && reply->type != REDIS_REPLY_ERROR;
        freeReplyObject(reply);
    }
    free(argv);
    return ok;
}

/* One Redis command whose reply must not be an error. */
static bool rds_ok(struct rds *r, int argc, const char **argv)
{
    redisReply *reply = rds_command(r, argc, argv, NULL);
    bool ok = reply && reply->type != REDIS_REPLY_ERROR;

    freeReplyObject(reply);
    return ok;
}

/* Writes a snapshot's counts, their total (the version, note 9) and live
 * members into fresh temporary keys. */
static bool rebuild_write_temp(struct rds *r, const PGresult *counts, const PGresult *members,
                               const struct board_keys *tmp)
{
    const char *del[] = {"DEL", tmp->board, tmp->applied, tmp->version};
    const char *sadd[] = {"SADD", tmp->applied};
    char total_text[24];
    const char *set_version[] = {"SET", tmp->version, total_text};
    unsigned long long total = 0;
    const char **words;
    int n;
    bool ok;

    freeReplyObject(rds_command(r, 4, del, NULL));
    for (int i = 0; i < PQntuples(counts); i++) {
        /* ZINCRBY on a fresh key, from zero: the same operation as live traffic. */
        const char *zincrby[] = {"ZINCRBY", tmp->board, PQgetvalue(counts, i, 1),
                                 PQgetvalue(counts, i, 0)};
        if (!rds_ok(r, 4, zincrby))
            return false;
        total += strtoull(PQgetvalue(counts, i, 1), NULL, 10);
    }
    snprintf(total_text, sizeof total_text, "%llu", total);
    if (total > 0 && !rds_ok(r, 3, set_version))
        return false;
    n = PQntuples(members);
    if (n == 0)
        return true;
    if ((words = malloc((size_t)n * sizeof *words)) == NULL)
        return false;
    for (int i = 0; i < n; i++)
        words[i] = PQgetvalue(members, i, 0);
    ok = rds_chunked(r, sadd, 2, words, (size_t)n, SADD_CHUNK);
    free(words);
    if (ok) {
        char retention[24];
        const char *expire[] = {"EXPIRE", tmp->applied, retention};
        snprintf(retention, sizeof retention, "%lld", board_retention_seconds());
        freeReplyObject(rds_command(r, 3, expire, NULL));
    }
    return ok;
}

/* Applies the views received since `since` to the live board (the tail of note 5). */
static bool rebuild_replay_tail(struct pg *db, struct rds *r, const char *event_id,
                                const char *since, struct problem *p)
{
    const char *params[] = {event_id, since};
    struct board_keys keys;
    PGresult *res = pg_exec(db, &stmt_tail, params, p);
    struct board_view *views;
    int rows;
    bool ok;

    if (res == NULL)
        return false;
    rows = PQntuples(res);
    board_keys_of(&keys, event_id);
    views = calloc((size_t)rows + 1, sizeof *views);
    ok = views != NULL;
    for (int i = 0; ok && i < rows; i++)
        views[i] = (struct board_view){&keys, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)};
    ok = ok && (rows == 0 || board_apply_views(r, views, (size_t)rows));
    free(views);
    PQclear(res);
    return ok;
}

static enum et_err rebuild_board(struct pg *db, struct rds *r, const char *event_id,
                                 size_t *events, struct problem *p)
{
    struct board_keys live, tmp;
    char token[ID_MAX + 1], suffix[ID_MAX + 20], since[64];
    const char *params[2] = {event_id, since};
    const char *swap_argv[] = {live.board, live.applied, live.version,
                               tmp.board, tmp.applied, tmp.version};
    PGresult *start = NULL, *counts = NULL, *members = NULL;
    redisReply *reply = NULL;
    enum et_err err = ET_OK;

    /* Temporary keys unique to this rebuild: two processes may rebuild at once. */
    id_generate(token, NULL);
    board_keys_of(&live, event_id);
    snprintf(suffix, sizeof suffix, ":rebuild:%s", token);
    board_key(tmp.board, event_id, suffix);
    snprintf(suffix, sizeof suffix, ":rebuild:%s:applied", token);
    board_key(tmp.applied, event_id, suffix);
    snprintf(suffix, sizeof suffix, ":rebuild:%s:version", token);
    board_key(tmp.version, event_id, suffix);

    if ((err = pg_command(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", p)) != ET_OK)
        return err;
    if ((start = pg_exec(db, &stmt_snapshot_start, NULL, p)) == NULL)
        goto fail;
    snprintf(since, sizeof since, "%s", PQgetvalue(start, 0, 0));
    if ((counts = pg_exec(db, &stmt_counts, params, p)) == NULL ||
        (members = pg_exec(db, &stmt_live_members, params, p)) == NULL)
        goto fail;
    if ((err = pg_command(db, "COMMIT", p)) != ET_OK)
        goto done;

    if (!rebuild_write_temp(r, counts, members, &tmp) ||
        !rds_eval_many(r, &script_swap, 6, 6, swap_argv, NULL, 1, &reply) || reply == NULL ||
        reply->type == REDIS_REPLY_ERROR || !board_epoch_bump(r)) {
        err = problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
                          "Redis failed during the rebuild of %s", event_id);
        goto done;
    }
    for (int i = 0; i < PQntuples(counts); i++)
        *events += (size_t)strtoull(PQgetvalue(counts, i, 1), NULL, 10);
    if (!rebuild_replay_tail(db, r, event_id, since, p))
        err = p->err != ET_OK ? p->err
                              : problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
                                            "Redis failed while replaying the tail of %s", event_id);
    goto done;
fail:
    err = p->err;
    pg_rollback(db);
done:
    board_note_write();                         /* design note 8: the swap may have landed */
    freeReplyObject(reply);
    PQclear(members);
    PQclear(counts);
    PQclear(start);
    return err;
}

enum et_err leaderboard_rebuild(struct store *st, const char *event_id, size_t *boards,
                                size_t *events, struct problem *p)
{
    struct pg *db;
    struct rds *r;
    PGresult *res;
    enum et_err err = ET_OK;

    *boards = *events = 0;
    if ((r = store_rds(st, p)) == NULL || (db = store_pg(st, p)) == NULL)
        return p->err;
    if (event_id != NULL) {
        if ((err = rebuild_board(db, r, event_id, events, p)) == ET_OK)
            *boards = 1;
        return err;
    }
    if ((res = pg_exec(db, &stmt_boards, NULL, p)) == NULL)
        return p->err;
    for (int i = 0; i < PQntuples(res) && err == ET_OK; i++)
        if ((err = rebuild_board(db, r, PQgetvalue(res, i, 0), events, p)) == ET_OK)
            (*boards)++;
    PQclear(res);
    return err;
}
