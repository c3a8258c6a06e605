/*
 * store/leaderboards.c - speaker leaderboards in Redis, constraint B, and how
 * Redis converges on PostgreSQL.
 *
 * Keys (braces are literal: a Redis Cluster hash tag, and the separator that
 * keeps an id containing ':' from colliding):
 *   eventtrack:lb:{E}           sorted set  speaker id -> score, for conference E
 *   eventtrack:lb:{E}:applied   set         analytics events already counted on it
 *                                           ("org/event_id", "/event_id" for admin)
 *   eventtrack:epoch            integer     bumped after every batch of writes
 *
 * Design notes
 *  1. Reads are Redis only: ZRANGE .. REV WITHSCORES for the top N, and a
 *     script of ZSCORE + ZCOUNT for one speaker's rank. O(log M + N), one
 *     round trip, no PostgreSQL table, no log scan, whatever the log's size.
 *  2. Writes go through one Lua script, SADD then ZINCRBY. Redis runs a
 *     script atomically, so an event is counted exactly when its id enters
 *     the applied set: applying the same event twice can never count twice.
 *     ZINCRBY adds; ZADD would set, and silently lose every earlier view.
 *  3. Convergence. PostgreSQL's insert of a view also writes a
 *     leaderboard_outbox row (store/analytics.c). The request applies the
 *     view at once; the worker (leaderboard_sync) applies every outbox row
 *     again through note 2's script and deletes the rows Redis acknowledged.
 *     A view is therefore applied at least once whatever fails (Redis down,
 *     the process killed after the commit), and counted exactly once.
 *  4. Lost Redis data. After each batch of writes we increment the epoch,
 *     but only if it exists, and remember the highest value Redis
 *     acknowledged. Redis persists in order (AOF), so if it ever loses
 *     acknowledged writes (restart without persistence, FLUSHALL, failover
 *     to a lagging replica, the last second of AOF everysec) it also loses
 *     epoch increments. An increment's reply only ever grows, so the first
 *     write after a loss sees the epoch missing or not above what this
 *     process saw, and flags the loss; the worker then rebuilds every board
 *     and restarts the epoch at the current time in microseconds, above any
 *     value any process saw before. (A plain INCR would recreate a flushed
 *     epoch, and enough traffic before the worker's next look would climb it
 *     back past the old value: the loss would go unseen.)
 *  5. A rebuild reads one REPEATABLE READ snapshot of PostgreSQL: the counts
 *     (one GROUP BY on the partial index) and the ids of the views that may
 *     still be applied again (those in the outbox or received since one
 *     minute before the snapshot). It builds the board in temporary keys,
 *     swaps them in with one atomic script (readers see the old board or the
 *     new one, never half of one), then replays the views received since
 *     that minute: the applied set skips the ones the snapshot counted, and
 *     counts the ones committed after it.
 *  6. The applied set does not grow forever. It only has to hold the views
 *     that can still be applied again: PostgreSQL's unique event id already
 *     refuses client retries before they reach Redis. Re-application comes
 *     only from the outbox and from a rebuild's one-minute tail, so the set
 *     expires `retention` after the board's last view, and an outbox row
 *     older than `retention` is settled by rebuilding its board, never by a
 *     replay that could count it twice.
 *  7. Ranks are competition ranks: equal scores share a rank, the next rank
 *     skips (1, 1, 3). Within a tie Redis orders members by byte order,
 *     reversed by REV: speaker ids descending.
 *  8. leaderboard_writes() changes after every write this process makes to
 *     a board (applied views, a rebuild's swap), whether Redis took it or
 *     not: the read path's micro-cache (routes/leaderboard.c) drops what it
 *     rendered before, so this process never serves its own stale board.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ids.h"
#include "store/lineage.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/store.h"

#define KEY_MAX (ID_MAX + 80)
#define EPOCH_KEY "eventtrack:epoch"
#define SYNC_BATCH 1000
#define SADD_CHUNK 500

static atomic_long apply_failures;
static atomic_llong epoch_seen;             /* design note 4: highest epoch acknowledged */
static atomic_bool loss_seen;               /* a write found the epoch gone or gone back */
static atomic_llong loss_at_us;             /* when loss_seen was set (wall clock, for ADR 0014) */
static atomic_ullong board_writes;          /* design note 8 */
static long long retention_seconds = 7 * 24 * 3600;

static const struct rds_script script_apply = {
    "apply_view",
    "local counted = redis.call('SADD', KEYS[2], ARGV[1])\n"
    "if counted == 1 then redis.call('ZINCRBY', KEYS[1], 1, ARGV[2]) end\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[3])\n"
    "return counted\n"};

static const struct rds_script script_rank = {
    "speaker_rank",
    "local score = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
    "if not score then return false end\n"
    "return {score, redis.call('ZCOUNT', KEYS[1], '(' .. score, '+inf')}\n"};

/* KEYS: board, applied, new board, new applied. An empty rebuild clears the board. */
static const struct rds_script script_swap = {
    "swap_board",
    "redis.call('DEL', KEYS[1], KEYS[2])\n"
    "if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('RENAME', KEYS[3], KEYS[1]) end\n"
    "if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('RENAME', KEYS[4], KEYS[2]) end\n"
    "return 1\n"};

/* Increments the epoch only if it exists: a lost epoch stays lost until a rebuild. */
static const struct rds_script script_epoch_bump = {
    "epoch_bump",
    "if redis.call('EXISTS', KEYS[1]) == 0 then return false end\n"
    "return redis.call('INCR', KEYS[1])\n"};

/* After a full rebuild: the epoch restarts above anything seen before. */
static const struct rds_script script_epoch_reset = {
    "epoch_reset",
    "local now = tonumber(ARGV[1])\n"
    "local current = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if current < now then redis.call('SET', KEYS[1], now) return now end\n"
    "return redis.call('INCR', KEYS[1])\n"};

void leaderboard_configure(long long applied_retention_seconds)
{
    retention_seconds = applied_retention_seconds;
}

unsigned long long leaderboard_writes(void)
{
    return atomic_load(&board_writes);
}

long leaderboard_apply_failures(void)
{
    return atomic_load(&apply_failures);
}

static void board_key(char *out, const char *event_id, const char *suffix)
{
    snprintf(out, KEY_MAX, "eventtrack:lb:{%s}%s", event_id, suffix);
}

static void epoch_observe(long long epoch)
{
    long long seen = atomic_load(&epoch_seen);

    while (epoch > seen && !atomic_compare_exchange_weak(&epoch_seen, &seen, epoch))
        ;
}

static long long wall_us(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    return (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

static void loss_flag(void)
{
    long long none = 0;

    atomic_compare_exchange_strong(&loss_at_us, &none, wall_us());
    atomic_store(&loss_seen, true);
}

/* Another process rebuilt every board since this one flagged the loss: its
 * reset epoch is a wall-clock time later than the flag (design note 4), and
 * increments never climb that far. Then this process rebuilds nothing. */
static void loss_settled_elsewhere(long long epoch)
{
    long long at = atomic_load(&loss_at_us);

    if (atomic_load(&loss_seen) && at != 0 && epoch >= at) {
        atomic_store(&epoch_seen, epoch);
        atomic_store(&loss_seen, false);
        atomic_store(&loss_at_us, 0);
    }
}

/* Bumps the epoch after writes and checks it (design note 4); false if Redis failed. */
static bool epoch_bump(struct rds *r)
{
    const char *argv[] = {EPOCH_KEY};
    /* Compare with what was acknowledged before this increment was sent:
     * other threads' replies may be recorded before or after ours. */
    long long before = atomic_load(&epoch_seen);
    redisReply *reply = NULL;
    bool ok = rds_eval_many(r, &script_epoch_bump, 1, 1, argv, NULL, 1, &reply) && reply &&
              (reply->type == REDIS_REPLY_INTEGER || reply->type == REDIS_REPLY_NIL);

    if (ok) {
        if (reply->type == REDIS_REPLY_NIL || reply->integer <= before)
            loss_flag();
        else
            epoch_observe(reply->integer);
    }
    freeReplyObject(reply);
    return ok;
}

static bool epoch_reset(struct rds *r)
{
    struct timespec now;
    char now_us[24];
    const char *argv[] = {EPOCH_KEY, now_us};
    redisReply *reply = NULL;
    bool ok;

    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(now_us, sizeof now_us, "%lld", (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000);
    ok = rds_eval_many(r, &script_epoch_reset, 1, 2, argv, NULL, 1, &reply) && reply &&
         reply->type == REDIS_REPLY_INTEGER;
    if (ok) {
        atomic_store(&epoch_seen, reply->integer);
        atomic_store(&loss_seen, false);
        atomic_store(&loss_at_us, 0);
    }
    freeReplyObject(reply);
    return ok;
}

/* Applies views through the script, then bumps the epoch. views: 4 words per
 * view (board key, applied key, member, speaker); the retention is added here. */
static bool apply_views(struct rds *r, const char **views, size_t count)
{
    const char **argv = calloc(count * 5, sizeof *argv);
    redisReply **replies = calloc(count, sizeof *replies);
    char retention[24];
    bool ok = argv != NULL && replies != NULL;

    snprintf(retention, sizeof retention, "%lld", retention_seconds);
    for (size_t i = 0; ok && i < count; i++) {
        memcpy(&argv[i * 5], &views[i * 4], 4 * sizeof *argv);
        argv[i * 5 + 4] = retention;
    }
    ok = ok && rds_eval_many(r, &script_apply, 2, 5, argv, NULL, count, replies);
    atomic_fetch_add(&board_writes, 1);         /* design note 8: even a failed write may have landed */
    for (size_t i = 0; replies && i < count; i++) {
        ok = ok && replies[i] && replies[i]->type == REDIS_REPLY_INTEGER;
        freeReplyObject(replies[i]);
    }
    free(replies);
    free(argv);
    return ok && epoch_bump(r);
}

enum et_err leaderboard_apply(struct rds_pool *redis, const struct board_increment *inc,
                              size_t count, struct problem *p)
{
    char (*keys)[2][KEY_MAX] = calloc(count, sizeof *keys);
    const char **argv = calloc(count * 4, sizeof *argv);
    struct rds *r = rds_session(redis, p);
    enum et_err err = ET_OK;

    if (r == NULL || keys == NULL || argv == NULL) {
        err = r ? problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory") : p->err;
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        board_key(keys[i][0], inc[i].event_id, "");
        board_key(keys[i][1], inc[i].event_id, ":applied");
        argv[i * 4 + 0] = keys[i][0];
        argv[i * 4 + 1] = keys[i][1];
        argv[i * 4 + 2] = inc[i].member;
        argv[i * 4 + 3] = inc[i].speaker_id;
    }
    if (!apply_views(r, argv, count))
        err = problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable",
                          "Redis did not take a leaderboard update");
done:
    if (err != ET_OK) {
        /* Not lost: the outbox row stays, and the worker applies it (note 3). */
        atomic_fetch_add(&apply_failures, (long)count);
        fprintf(stderr, "eventtrack: leaderboard: %zu view(s) not applied now (%s);"
                        " the outbox worker will apply them\n", count, p->detail);
    }
    free(argv);
    free(keys);
    return err;
}

enum et_err leaderboard_top(struct rds_pool *redis, const char *event_id, long long top_n,
                            struct leaderboard_entry *out, size_t *count, struct problem *p)
{
    char key[KEY_MAX], stop[24];
    const char *argv[] = {"ZRANGE", key, "0", stop, "REV", "WITHSCORES"};
    struct rds *r = rds_session(redis, p);
    redisReply *reply;

    *count = 0;
    if (r == NULL)
        return p->err;
    board_key(key, event_id, "");
    snprintf(stop, sizeof stop, "%lld", top_n - 1);
    reply = rds_command(r, 6, argv, NULL);
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(reply);
        return problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable",
                           "the leaderboard store is unavailable");
    }
    for (size_t i = 0; i + 1 < reply->elements && *count < (size_t)top_n; i += 2) {
        struct leaderboard_entry *e = &out[*count];
        snprintf(e->speaker_id, sizeof e->speaker_id, "%.*s", (int)reply->element[i]->len,
                 reply->element[i]->str);
        e->score = strtoll(reply->element[i + 1]->str, NULL, 10);
        /* Design note 7: competition ranking, from the top of the board. */
        e->rank = *count > 0 && out[*count - 1].score == e->score ? out[*count - 1].rank
                                                                  : (long long)*count + 1;
        (*count)++;
    }
    freeReplyObject(reply);
    return ET_OK;
}

enum et_err leaderboard_speaker(struct rds_pool *redis, const char *event_id,
                                const char *speaker_id, struct leaderboard_entry *out,
                                struct problem *p)
{
    char key[KEY_MAX];
    const char *argv[] = {key, speaker_id};
    struct rds *r = rds_session(redis, p);
    redisReply *reply = NULL;
    enum et_err err;

    if (r == NULL)
        return p->err;
    board_key(key, event_id, "");
    if (!rds_eval_many(r, &script_rank, 1, 2, argv, NULL, 1, &reply) || reply == NULL ||
        reply->type == REDIS_REPLY_ERROR) {
        err = problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable",
                          "the leaderboard store is unavailable");
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        err = problem_set(p, ET_ERR_NOT_FOUND, NULL, "speaker %s has no score in event %s",
                          speaker_id, event_id);
    } else {
        snprintf(out->speaker_id, sizeof out->speaker_id, "%s", speaker_id);
        out->score = strtoll(reply->element[0]->str, NULL, 10);
        out->rank = reply->element[1]->integer + 1;
        err = ET_OK;
    }
    freeReplyObject(reply);
    return err;
}

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

/* Runs cmd (argc words) once per chunk of `words`, appending up to `chunk` of them. */
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

/* Writes a snapshot's counts and live members into fresh temporary keys. */
static bool rebuild_write_temp(struct rds *r, const PGresult *counts, const PGresult *members,
                               const char *tmp_board, const char *tmp_applied)
{
    const char *del[] = {"DEL", tmp_board, tmp_applied};
    const char *sadd[] = {"SADD", tmp_applied};
    const char **words;
    int n;
    bool ok;

    freeReplyObject(rds_command(r, 3, del, NULL));
    for (int i = 0; i < PQntuples(counts); i++) {
        /* ZINCRBY on a fresh key, from zero: the same operation as live traffic. */
        const char *zincrby[] = {"ZINCRBY", tmp_board, PQgetvalue(counts, i, 1),
                                 PQgetvalue(counts, i, 0)};
        redisReply *reply = rds_command(r, 4, zincrby, NULL);
        ok = reply && reply->type != REDIS_REPLY_ERROR;
        freeReplyObject(reply);
        if (!ok)
            return false;
    }
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
        const char *expire[] = {"EXPIRE", tmp_applied, retention};
        snprintf(retention, sizeof retention, "%lld", retention_seconds);
        freeReplyObject(rds_command(r, 3, expire, NULL));
    }
    return ok;
}

/* Applies the views received since `since` to the live board (the tail of note 5). */
static bool rebuild_replay_tail(struct pg *db, struct rds *r, const char *event_id,
                                const char *since, struct problem *p)
{
    const char *params[] = {event_id, since};
    char board[KEY_MAX], applied[KEY_MAX];
    PGresult *res = pg_exec(db, &stmt_tail, params, p);
    const char **argv;
    int rows;
    bool ok;

    if (res == NULL)
        return false;
    rows = PQntuples(res);
    board_key(board, event_id, "");
    board_key(applied, event_id, ":applied");
    argv = calloc((size_t)rows * 4 + 1, sizeof *argv);
    ok = argv != NULL;
    for (int i = 0; ok && i < rows; i++) {
        argv[i * 4 + 0] = board;
        argv[i * 4 + 1] = applied;
        argv[i * 4 + 2] = PQgetvalue(res, i, 0);
        argv[i * 4 + 3] = PQgetvalue(res, i, 1);
    }
    ok = ok && (rows == 0 || apply_views(r, argv, (size_t)rows));
    free(argv);
    PQclear(res);
    return ok;
}

static enum et_err rebuild_board(struct pg *db, struct rds *r, const char *event_id,
                                 size_t *events, struct problem *p)
{
    char board[KEY_MAX], applied[KEY_MAX], tmp_board[KEY_MAX], tmp_applied[KEY_MAX];
    char token[ID_MAX + 1], suffix[ID_MAX + 20], since[64];
    const char *params[2] = {event_id, since};
    const char *swap_argv[] = {board, applied, tmp_board, tmp_applied};
    PGresult *start = NULL, *counts = NULL, *members = NULL;
    redisReply *reply = NULL;
    enum et_err err = ET_OK;

    /* Temporary keys unique to this rebuild: two processes may rebuild at once. */
    id_generate(token, NULL);
    board_key(board, event_id, "");
    board_key(applied, event_id, ":applied");
    snprintf(suffix, sizeof suffix, ":rebuild:%s", token);
    board_key(tmp_board, event_id, suffix);
    snprintf(suffix, sizeof suffix, ":rebuild:%s:applied", token);
    board_key(tmp_applied, event_id, suffix);

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

    if (!rebuild_write_temp(r, counts, members, tmp_board, tmp_applied) ||
        !rds_eval_many(r, &script_swap, 4, 4, swap_argv, NULL, 1, &reply) || reply == NULL ||
        reply->type == REDIS_REPLY_ERROR || !epoch_bump(r)) {
        err = problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable",
                          "Redis failed during the rebuild of %s", event_id);
        goto done;
    }
    for (int i = 0; i < PQntuples(counts); i++)
        *events += (size_t)strtoull(PQgetvalue(counts, i, 1), NULL, 10);
    if (!rebuild_replay_tail(db, r, event_id, since, p))
        err = p->err != ET_OK ? p->err
                              : problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable",
                                            "Redis failed while replaying the tail of %s", event_id);
    goto done;
fail:
    err = p->err;
    {
        struct problem ignored = {0};
        pg_command(db, "ROLLBACK", &ignored);
    }
done:
    atomic_fetch_add(&board_writes, 1);         /* design note 8: the swap may have landed */
    freeReplyObject(reply);
    PQclear(members);
    PQclear(counts);
    PQclear(start);
    return err;
}

enum et_err leaderboard_rebuild(struct pg *db, struct rds *r, const char *event_id,
                                size_t *boards, size_t *events, struct problem *p)
{
    PGresult *res;
    enum et_err err = ET_OK;

    *boards = *events = 0;
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

/* ---- the convergence worker's pass (design notes 3, 4, 6) ---- */

static const struct pg_stmt stmt_outbox_take = {
    "leaderboard_outbox_take",
    "SELECT o.seq, e.leaderboard_event_id, e.leaderboard_speaker_id, " SQL_APPLIED_MEMBER
    "  FROM leaderboard_outbox o JOIN analytics_events e ON e.seq = o.seq"
    " WHERE o.created_at >= now() - make_interval(secs => $1::double precision)"
    " ORDER BY o.seq LIMIT 1000 FOR UPDATE OF o SKIP LOCKED",
    1};

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

/* Design note 4: did Redis lose writes we saw acknowledged? */
static bool redis_lost_data(struct rds *r, bool *lost)
{
    const char *argv[] = {"GET", EPOCH_KEY};
    /* What was acknowledged before the GET is sent: request threads keep
     * raising epoch_seen while it is in flight, and a later value would make
     * a healthy epoch look behind. */
    long long seen = atomic_load(&epoch_seen);
    redisReply *reply = rds_command(r, 2, argv, NULL);

    if (reply == NULL || (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_NIL)) {
        freeReplyObject(reply);
        return false;
    }
    if (reply->type == REDIS_REPLY_STRING)
        loss_settled_elsewhere(strtoll(reply->str, NULL, 10));
    *lost = reply->type == REDIS_REPLY_NIL || strtoll(reply->str, NULL, 10) < seen ||
            atomic_load(&loss_seen);
    freeReplyObject(reply);
    return true;
}

/* Design note 6: outbox rows too old to replay safely are settled by a rebuild. */
static enum et_err sync_stale(struct pg *db, struct rds *r, struct sync_stats *st,
                              struct problem *p)
{
    char retention[24];
    const char *params[] = {retention, NULL};
    PGresult *boards, *done;
    enum et_err err = ET_OK;

    snprintf(retention, sizeof retention, "%lld", retention_seconds);
    if ((boards = pg_exec(db, &stmt_outbox_stale_boards, params, p)) == NULL)
        return p->err;
    for (int i = 0; i < PQntuples(boards) && err == ET_OK; i++) {
        size_t rebuilt, events;
        params[1] = PQgetvalue(boards, i, 0);
        if ((err = leaderboard_rebuild(db, r, params[1], &rebuilt, &events, p)) != ET_OK)
            break;
        st->rebuilt_boards += rebuilt;
        if ((done = pg_exec(db, &stmt_outbox_stale_done, params, p)) == NULL)
            err = p->err;
        PQclear(done);
    }
    PQclear(boards);
    return err;
}

/* Applies one batch of the outbox and deletes it, in one transaction. */
static enum et_err sync_outbox_batch(struct pg *db, struct rds *r, size_t *taken,
                                     struct sync_stats *st, struct problem *p)
{
    char retention[24], (*keys)[2][KEY_MAX] = NULL;
    const char *take_params[] = {retention};
    const char **argv = NULL;
    PGresult *rows = NULL, *done = NULL;
    struct buf seqs = BUF_INIT;
    size_t n = 0;
    enum et_err err;

    *taken = 0;
    snprintf(retention, sizeof retention, "%lld", retention_seconds);
    if ((err = pg_command(db, "BEGIN", p)) != ET_OK)
        return err;
    if ((rows = pg_exec(db, &stmt_outbox_take, take_params, p)) == NULL)
        goto fail;
    n = (size_t)PQntuples(rows);
    if (n == 0)
        goto commit;
    keys = calloc(n, sizeof *keys);
    argv = calloc(n * 4, sizeof *argv);
    if (keys == NULL || argv == NULL) {
        problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
        goto fail;
    }
    buf_putc(&seqs, '{');
    for (size_t i = 0; i < n; i++) {
        buf_printf(&seqs, "%s%s", i ? "," : "", PQgetvalue(rows, (int)i, 0));
        board_key(keys[i][0], PQgetvalue(rows, (int)i, 1), "");
        board_key(keys[i][1], PQgetvalue(rows, (int)i, 1), ":applied");
        argv[i * 4 + 0] = keys[i][0];
        argv[i * 4 + 1] = keys[i][1];
        argv[i * 4 + 2] = PQgetvalue(rows, (int)i, 3);
        argv[i * 4 + 3] = PQgetvalue(rows, (int)i, 2);
    }
    buf_putc(&seqs, '}');
    if (seqs.failed) {
        problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
        goto fail;
    }
    /* Redis first, then the delete: a row leaves the outbox only once applied. */
    if (!apply_views(r, argv, n)) {
        problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable", "Redis did not take the outbox");
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
    }
    goto out;
fail:
    err = p->err;
    {
        struct problem ignored = {0};
        pg_command(db, "ROLLBACK", &ignored);
    }
out:
    buf_free(&seqs);
    PQclear(done);
    PQclear(rows);
    free(argv);
    free(keys);
    return err;
}

/* Design note 4 and ADR 0014: every board again from PostgreSQL, then the
 * epoch and the lineage restart from the Redis rebuilt. */
static enum et_err rebuild_after_loss(struct pg *db, struct rds *r, const char *replid, bool moved,
                                      struct sync_stats *st, struct problem *p)
{
    size_t events;
    enum et_err err;

    st->redis_lost = true;
    /* A process that never saw an epoch has lost nothing: Redis is new
     * or was emptied before it started. Say which, for the operator. */
    if (moved)
        fprintf(stderr, "eventtrack: leaderboard: Redis's primary changed (replication id %s);"
                        " rebuilding every board from PostgreSQL\n", replid);
    else if (atomic_load(&epoch_seen) == 0)
        fprintf(stderr, "eventtrack: leaderboard: no epoch in Redis yet (a new or emptied"
                        " Redis); building every board from PostgreSQL\n");
    else
        fprintf(stderr, "eventtrack: leaderboard: Redis lost acknowledged writes"
                        " (epoch missing or behind); rebuilding every board from PostgreSQL\n");
    if ((err = leaderboard_rebuild(db, r, NULL, &st->rebuilt_boards, &events, p)) != ET_OK)
        return err;
    if (!epoch_reset(r) || !lineage_record(r, replid))
        return problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable", "Redis is unavailable");
    return ET_OK;
}

/* ADR 0014: one process rebuilds, the others keep serving. The loss is
 * looked at again under the lock: another process may have rebuilt between
 * this one's first look and its turn. */
static enum et_err rebuild_elected(struct pg *db, struct rds *r, struct sync_stats *st, struct problem *p)
{
    bool elected = false, lost = false, moved = false;
    char replid[LINEAGE_REPLID_LEN + 1];
    enum et_err err = ET_OK;

    if (!lineage_elect(db, &elected))
        return problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable", "PostgreSQL is unavailable");
    if (!elected)
        return ET_OK;
    if (!redis_lost_data(r, &lost) || !lineage_check(r, replid, &moved))
        err = problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable", "Redis is unavailable");
    else if (lost || moved)
        err = rebuild_after_loss(db, r, replid, moved, st, p);
    lineage_resign(db);
    return err;
}

enum et_err leaderboard_sync(struct pg_pool *pg, struct rds_pool *redis, struct sync_stats *st,
                             struct problem *p)
{
    struct pg *db;
    struct rds *r;
    bool lost = false, moved = false;
    char replid[LINEAGE_REPLID_LEN + 1];
    size_t taken;
    enum et_err err;

    memset(st, 0, sizeof *st);
    if ((r = rds_session(redis, p)) == NULL || (db = pg_session(pg, p)) == NULL)
        return p->err;
    if (!redis_lost_data(r, &lost))
        return problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable", "Redis is unavailable");
    if (!lineage_check(r, replid, &moved))
        return problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable", "Redis is unavailable");
    if ((lost || moved) && (err = rebuild_elected(db, r, st, p)) != ET_OK)
        return err;
    if ((err = sync_stale(db, r, st, p)) != ET_OK)
        return err;
    /* Drain what is there now; a steady stream is left for the next pass. */
    for (int batches = 0; batches < 20; batches++) {
        if ((err = sync_outbox_batch(db, r, &taken, st, p)) != ET_OK)
            return err;
        if (taken < SYNC_BATCH)
            break;
    }
    return ET_OK;
}
