/*
 * store/leaderboards.c - speaker leaderboards in Redis, constraint B, and how
 * Redis converges on PostgreSQL.
 *
 * Keys (braces are literal: a Redis Cluster hash tag, and the separator that
 * keeps an id containing ':' from colliding):
 *   eventtrack:lb:{E}           sorted set  speaker id -> score, for conference E
 *   eventtrack:lb:{E}:applied   set         analytics events already counted on it
 *                                           ("org/event_id", "/event_id" for admin)
 *   eventtrack:lb:{E}:version   integer     views counted on the board (note 9)
 *   eventtrack:epoch            integer     bumped after every batch of writes
 *
 * Three files share the job (through store/board.h): this one reads the
 * boards, applies views and keeps the epoch; store/leaderboard_rebuild.c
 * rebuilds a board (note 5); store/leaderboard_sync.c is the convergence
 * pass (notes 3, 4 and 6).
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
 *  9. The board's version is the number of views counted on it: the apply
 *     script increments it in the same script as the ZINCRBY, a rebuild sets
 *     it to the snapshot's count and swaps it in with the board, and a read
 *     fetches it in the same script as the ZRANGE. So a version always
 *     describes exactly the board it comes with, and a board counting fewer
 *     views is older. It never goes back across a Redis loss: a view is
 *     applied only after PostgreSQL committed it, and the log only grows
 *     (no row of analytics_events is ever deleted; cancellations and the
 *     applied set's retention touch no view), so the count a rebuild reads is
 *     at least any version Redis ever served. Between the loss and the
 *     rebuild a board restarts from 0 and a reader may see low versions:
 *     the widget ignores them (docs/adr/0013, web/widget/widget.js). A
 *     board from before versions existed gets its version on its next view:
 *     when the INCR creates the key, the script sets it to the total of the
 *     scores, once.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store/board.h"
#include "store/lineage.h"
#include "store/handle.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/store.h"

#define EPOCH_KEY "eventtrack:epoch"
#define APPLY_ARGC 6                /* per view: board, applied set, version, member, speaker, retention */

static atomic_long apply_failures;
static atomic_llong epoch_seen;             /* design note 4: highest epoch acknowledged */
static atomic_bool loss_seen;               /* a write found the epoch gone or gone back */
static atomic_llong loss_at_us;             /* when loss_seen was set (wall clock, for ADR 0014) */
static atomic_ullong board_writes;          /* design note 8 */
static long long retention_seconds = 7 * 24 * 3600;

static const struct rds_script script_apply = {
    "apply_view",
    "local counted = redis.call('SADD', KEYS[2], ARGV[1])\n"
    "if counted == 1 then\n"
    "  redis.call('ZINCRBY', KEYS[1], 1, ARGV[2])\n"
    "  if redis.call('INCR', KEYS[3]) == 1 then\n"
    "    local total, all = 0, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')\n"
    "    for i = 2, #all, 2 do total = total + tonumber(all[i]) end\n"
    "    redis.call('SET', KEYS[3], string.format('%d', total))\n"
    "  end\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[3])\n"
    "return counted\n"};
/* Design note 9: the version and the top N in one round trip, from one instant. */
static const struct rds_script script_top = {
    "board_top",
    "return {redis.call('GET', KEYS[2]) or '0',\n"
    "        redis.call('ZRANGE', KEYS[1], 0, ARGV[1], 'REV', 'WITHSCORES')}\n"};
static const struct rds_script script_rank = {
    "speaker_rank",
    "local score = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
    "if not score then return false end\n"
    "return {score, redis.call('ZCOUNT', KEYS[1], '(' .. score, '+inf')}\n"};

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

long long board_retention_seconds(void)
{
    return retention_seconds;
}

unsigned long long leaderboard_writes(void)
{
    return atomic_load(&board_writes);
}

void board_note_write(void)
{
    atomic_fetch_add(&board_writes, 1);
}

long leaderboard_apply_failures(void)
{
    return atomic_load(&apply_failures);
}

long long board_epoch_seen(void)
{
    return atomic_load(&epoch_seen);
}

void board_key(char *out, const char *event_id, const char *suffix)
{
    snprintf(out, BOARD_KEY_MAX, "eventtrack:lb:{%s}%s", event_id, suffix);
}

void board_keys_of(struct board_keys *k, const char *event_id)
{
    board_key(k->board, event_id, "");
    board_key(k->applied, event_id, ":applied");
    board_key(k->version, event_id, ":version");
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
bool board_epoch_bump(struct rds *r)
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

bool board_epoch_reset(struct rds *r)
{
    char now_us[24];
    const char *argv[] = {EPOCH_KEY, now_us};
    redisReply *reply = NULL;
    bool ok;

    snprintf(now_us, sizeof now_us, "%lld", wall_us());
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

bool board_apply_views(struct rds *r, const struct board_view *views, size_t count)
{
    const char **argv = calloc(count * APPLY_ARGC, sizeof *argv);
    redisReply **replies = calloc(count, sizeof *replies);
    char retention[24];
    bool ok = argv != NULL && replies != NULL;

    snprintf(retention, sizeof retention, "%lld", retention_seconds);
    for (size_t i = 0; ok && i < count; i++) {
        const char **word = &argv[i * APPLY_ARGC];
        word[0] = views[i].keys->board;
        word[1] = views[i].keys->applied;
        word[2] = views[i].keys->version;
        word[3] = views[i].member;
        word[4] = views[i].speaker_id;
        word[5] = retention;
    }
    ok = ok && rds_eval_many(r, &script_apply, 3, APPLY_ARGC, argv, NULL, count, replies);
    board_note_write();                         /* design note 8: even a failed write may have landed */
    for (size_t i = 0; replies && i < count; i++) {
        ok = ok && replies[i] && replies[i]->type == REDIS_REPLY_INTEGER;
        freeReplyObject(replies[i]);
    }
    free(replies);
    free(argv);
    return ok && board_epoch_bump(r);
}

enum et_err leaderboard_apply(struct store *st, const struct board_increment *inc,
                              size_t count, struct problem *p)
{
    struct board_keys *keys = calloc(count, sizeof *keys);
    struct board_view *views = calloc(count, sizeof *views);
    struct rds *r = store_rds(st, p);
    enum et_err err = ET_OK;

    if (r == NULL || keys == NULL || views == NULL) {
        err = r ? problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory") : p->err;
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        board_keys_of(&keys[i], inc[i].event_id);
        views[i] = (struct board_view){&keys[i], inc[i].member, inc[i].speaker_id};
    }
    if (!board_apply_views(r, views, count))
        err = problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
                          "Redis did not take a leaderboard update");
done:
    if (err != ET_OK) {
        /* Not lost: the outbox row stays, and the worker applies it (note 3). */
        atomic_fetch_add(&apply_failures, (long)count);
        et_log(LL_WARN, "leaderboard", "%zu view(s) not applied now (%s);"
                        " the outbox worker will apply them", count, p->detail);
    }
    free(views);
    free(keys);
    return err;
}

enum et_err leaderboard_top(struct store *st, const char *event_id, long long top_n,
                            struct leaderboard_entry *out, size_t *count, long long *version,
                            struct problem *p)
{
    struct board_keys k;
    char stop[24];
    const char *argv[] = {k.board, k.version, stop};
    struct rds *r = store_rds(st, p);
    redisReply *reply = NULL, *top;

    *count = 0;
    *version = 0;
    if (r == NULL)
        return p->err;
    board_keys_of(&k, event_id);
    snprintf(stop, sizeof stop, "%lld", top_n - 1);
    if (!rds_eval_many(r, &script_top, 2, 3, argv, NULL, 1, &reply) || reply == NULL ||
        reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(reply);
        return problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
                           "the leaderboard store is unavailable");
    }
    *version = strtoll(reply->element[0]->str, NULL, 10);
    top = reply->element[1];
    for (size_t i = 0; i + 1 < top->elements && *count < (size_t)top_n; i += 2) {
        struct leaderboard_entry *e = &out[*count];
        snprintf(e->speaker_id, sizeof e->speaker_id, "%.*s", (int)top->element[i]->len,
                 top->element[i]->str);
        e->score = strtoll(top->element[i + 1]->str, NULL, 10);
        /* Design note 7: competition ranking, from the top of the board. */
        e->rank = *count > 0 && out[*count - 1].score == e->score ? out[*count - 1].rank
                                                                  : (long long)*count + 1;
        (*count)++;
    }
    freeReplyObject(reply);
    return ET_OK;
}

enum et_err leaderboard_speaker(struct store *st, const char *event_id,
                                const char *speaker_id, struct leaderboard_entry *out,
                                struct problem *p)
{
    char key[BOARD_KEY_MAX];
    const char *argv[] = {key, speaker_id};
    struct rds *r = store_rds(st, p);
    redisReply *reply = NULL;
    enum et_err err;

    if (r == NULL)
        return p->err;
    board_key(key, event_id, "");
    if (!rds_eval_many(r, &script_rank, 1, 2, argv, NULL, 1, &reply) || reply == NULL ||
        reply->type == REDIS_REPLY_ERROR) {
        err = problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
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

/* Design note 4: did Redis lose writes we saw acknowledged? */
bool board_redis_lost_data(struct rds *r, bool *lost)
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
