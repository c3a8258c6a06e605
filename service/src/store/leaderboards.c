/*
 * store/leaderboards.c - speaker leaderboards in Redis, constraint B.
 *
 * Keys, per conference E (braces are literal: a Redis Cluster hash tag, and
 * the separator that keeps an id containing ':' from colliding):
 *   eventtrack:lb:{E}           sorted set  speaker id -> score
 *   eventtrack:lb:{E}:applied   set         analytics event ids already counted
 *
 * Design notes
 *  1. Reads are Redis only: ZRANGE .. REV WITHSCORES for the top N, and a
 *     script of ZSCORE + ZCOUNT for one speaker's rank. O(log M + N), one
 *     round trip, no PostgreSQL table, no log scan, whatever the log's size.
 *  2. Writes go through one Lua script, SADD then ZINCRBY. Redis runs a
 *     script atomically, so an event is counted exactly when its id enters
 *     the applied set: applying the same event twice (a retry, a replay, a
 *     rebuild overlapping live traffic) can never count twice. ZINCRBY adds;
 *     ZADD would set, and silently lose every earlier view.
 *  3. Ranks are competition ranks: equal scores share a rank, the next rank
 *     skips (1, 1, 3). Within a tie Redis orders members by byte order,
 *     reversed by REV: speaker ids descending.
 *  4. A rebuild recomputes a board from PostgreSQL into temporary keys and
 *     swaps them in with one atomic script, so readers see the old board or
 *     the new one, never a half-built one. Views committed while it ran are
 *     then applied again through note 2's script; the applied set makes that
 *     harmless for views the snapshot already counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>

#include "store/pg.h"
#include "store/redis.h"
#include "store/store.h"

#define KEY_MAX (ID_MAX + 40)

static atomic_long apply_failures;

static const struct rds_script script_apply = {
    "apply_view",
    "if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then\n"
    "  return redis.call('ZINCRBY', KEYS[1], 1, ARGV[2])\n"
    "end\n"
    "return false\n"};

static const struct rds_script script_rank = {
    "speaker_rank",
    "local score = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
    "if not score then return false end\n"
    "return {score, redis.call('ZCOUNT', KEYS[1], '(' .. score, '+inf')}\n"};

/* Swaps rebuilt keys in: KEYS = board, applied, new board, new applied. */
static const struct rds_script script_swap = {
    "swap_board",
    "redis.call('DEL', KEYS[1], KEYS[2])\n"
    "if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('RENAME', KEYS[3], KEYS[1]) end\n"
    "if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('RENAME', KEYS[4], KEYS[2]) end\n"
    "return 1\n"};

static void board_key(char *out, const char *event_id, const char *suffix)
{
    snprintf(out, KEY_MAX, "eventtrack:lb:{%s}%s", event_id, suffix);
}

long leaderboard_apply_failures(void)
{
    return atomic_load(&apply_failures);
}

static enum et_err apply_on(struct rds *r, const struct board_increment *inc, size_t count,
                            struct problem *p)
{
    char (*keys)[2][KEY_MAX] = calloc(count, sizeof *keys);
    const char **argv = calloc(count * 4, sizeof *argv);
    redisReply **replies = calloc(count, sizeof *replies);
    enum et_err err = ET_OK;
    size_t failed = 0;

    if (keys == NULL || argv == NULL || replies == NULL) {
        err = problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
        failed = count;
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
    if (!rds_eval_many(r, &script_apply, 2, 4, argv, NULL, count, replies))
        err = problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable", "Redis is unavailable");
    for (size_t i = 0; i < count; i++) {
        if (replies[i] == NULL || replies[i]->type == REDIS_REPLY_ERROR)
            failed++;
        freeReplyObject(replies[i]);
    }
done:
    if (failed > 0) {
        atomic_fetch_add(&apply_failures, (long)failed);
        fprintf(stderr, "eventtrack: leaderboard: %zu of %zu views not applied to Redis;"
                        " run `eventtrack rebuild-leaderboards` to catch up\n", failed, count);
        if (err == ET_OK)
            err = problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable",
                              "Redis refused a leaderboard update");
    }
    free(replies);
    free(argv);
    free(keys);
    return err;
}

enum et_err leaderboard_apply(struct rds_pool *redis, const struct board_increment *inc,
                              size_t count, struct problem *p)
{
    struct rds *r = rds_session(redis, p);

    if (r == NULL) {
        atomic_fetch_add(&apply_failures, (long)count);
        fprintf(stderr, "eventtrack: leaderboard: Redis unavailable, %zu views not applied;"
                        " run `eventtrack rebuild-leaderboards` to catch up\n", count);
        return p->err;
    }
    return apply_on(r, inc, count, p);
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
        rds_pool_count_error(NULL);
        return problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable",
                           "the leaderboard store is unavailable");
    }
    for (size_t i = 0; i + 1 < reply->elements && *count < (size_t)top_n; i += 2) {
        struct leaderboard_entry *e = &out[*count];
        snprintf(e->speaker_id, sizeof e->speaker_id, "%.*s", (int)reply->element[i]->len,
                 reply->element[i]->str);
        e->score = strtoll(reply->element[i + 1]->str, NULL, 10);
        /* Design note 3: competition ranking, from the top of the board. */
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

/* ---- rebuild (design note 4) ---- */

static const struct pg_stmt stmt_boards = {
    "leaderboard_boards",
    "SELECT DISTINCT leaderboard_event_id FROM analytics_events"
    " WHERE leaderboard_event_id IS NOT NULL AND ($1::text IS NULL OR leaderboard_event_id = $1)",
    1};

static const struct pg_stmt stmt_views = {
    "leaderboard_views",
    "SELECT " SQL_APPLIED_MEMBER ", leaderboard_speaker_id FROM analytics_events"
    " WHERE leaderboard_event_id = $1 AND ($2::timestamptz IS NULL OR received_at >= $2::timestamptz)",
    2};

static const struct pg_stmt stmt_now = {
    "leaderboard_now", "SELECT now() - interval '1 minute'", 0};

/* Applies every view of a board (since `since`, or all) to the given keys. */
static enum et_err rebuild_apply(struct pg *db, struct rds *r, const char *event_id,
                                 const char *since, const char *board, const char *applied,
                                 size_t *events, struct problem *p)
{
    enum { CHUNK = 1000 };
    const char *params[] = {event_id, since};
    PGresult *res = pg_exec(db, &stmt_views, params, p);
    int rows;

    if (res == NULL)
        return p->err;
    rows = PQntuples(res);
    for (int start = 0; start < rows; start += CHUNK) {
        size_t n = (size_t)(rows - start < CHUNK ? rows - start : CHUNK);
        const char *argv[CHUNK * 4];
        redisReply *replies[CHUNK];
        bool ok;

        for (size_t i = 0; i < n; i++) {
            argv[i * 4 + 0] = board;
            argv[i * 4 + 1] = applied;
            argv[i * 4 + 2] = PQgetvalue(res, start + (int)i, 0);
            argv[i * 4 + 3] = PQgetvalue(res, start + (int)i, 1);
        }
        ok = rds_eval_many(r, &script_apply, 2, 4, argv, NULL, n, replies);
        for (size_t i = 0; i < n; i++) {
            ok = ok && replies[i] && replies[i]->type != REDIS_REPLY_ERROR;
            freeReplyObject(replies[i]);
        }
        if (!ok) {
            PQclear(res);
            return problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable",
                               "Redis failed during the rebuild of %s", event_id);
        }
    }
    *events += (size_t)rows;
    PQclear(res);
    return ET_OK;
}

static enum et_err rebuild_one(struct pg *db, struct rds *r, const char *event_id,
                               size_t *events, struct problem *p)
{
    char board[KEY_MAX], applied[KEY_MAX], tmp_board[KEY_MAX], tmp_applied[KEY_MAX];
    const char *swap_argv[] = {board, applied, tmp_board, tmp_applied};
    const char *del_argv[] = {"DEL", tmp_board, tmp_applied};
    PGresult *res;
    redisReply *reply = NULL;
    char since[64];
    size_t replayed = 0;
    enum et_err err;

    board_key(board, event_id, "");
    board_key(applied, event_id, ":applied");
    board_key(tmp_board, event_id, ":rebuild");
    board_key(tmp_applied, event_id, ":rebuild:applied");

    if ((res = pg_exec(db, &stmt_now, NULL, p)) == NULL)
        return p->err;
    snprintf(since, sizeof since, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    freeReplyObject(rds_command(r, 3, del_argv, NULL));
    if ((err = rebuild_apply(db, r, event_id, NULL, tmp_board, tmp_applied, events, p)) != ET_OK)
        return err;
    if (!rds_eval_many(r, &script_swap, 4, 4, swap_argv, NULL, 1, &reply) || reply == NULL ||
        reply->type == REDIS_REPLY_ERROR) {
        freeReplyObject(reply);
        return problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable",
                           "Redis failed while swapping the rebuilt board of %s", event_id);
    }
    freeReplyObject(reply);
    /* Views committed while the snapshot was read went to the old keys. */
    return rebuild_apply(db, r, event_id, since, board, applied, &replayed, p);
}

enum et_err leaderboard_rebuild(struct pg *db, const struct redis_target *redis,
                                const char *event_id, size_t *boards, size_t *events,
                                struct problem *p)
{
    const char *params[] = {event_id};
    struct rds *r = rds_open(redis, p);
    PGresult *res;
    enum et_err err = ET_OK;

    *boards = *events = 0;
    if (r == NULL)
        return p->err;
    if ((res = pg_exec(db, &stmt_boards, params, p)) == NULL) {
        rds_close(r);
        return p->err;
    }
    for (int i = 0; i < PQntuples(res) && err == ET_OK; i++) {
        err = rebuild_one(db, r, PQgetvalue(res, i, 0), events, p);
        if (err == ET_OK)
            (*boards)++;
    }
    PQclear(res);
    /* A board whose views were all removed has no row above: clear it too. */
    if (err == ET_OK && event_id != NULL && *boards == 0) {
        err = rebuild_one(db, r, event_id, events, p);
        if (err == ET_OK)
            (*boards)++;
    }
    rds_close(r);
    return err;
}
