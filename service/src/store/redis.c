/*
 * store/redis.c - Redis connections for worker threads (see redis.h).
 *
 * Design notes
 *  1. Redis is a derived view (ADR 0001): its trouble must cost a request at
 *     most a short timeout, never a failure of a write to PostgreSQL. Commands
 *     carry a 500 ms timeout, connects 200 ms, and after a failed connect a
 *     thread waits a second before trying again, so a dead Redis costs nothing
 *     on the hot path but a clock read.
 *  2. hiredis says a context that returned an error cannot be reused: any
 *     failure drops it, and the next session opens a new one.
 *  3. Scripts run by EVALSHA. Redis may forget scripts (restart, SCRIPT
 *     FLUSH, failover), so a NOSCRIPT reply is answered by re-sending the
 *     script body with EVAL, which also caches it again.
 *  4. Failover (ADR 0014). Every connect asks the Sentinels in turn (200 ms
 *     each) where the primary is, connects, AUTHs, and asks ROLE: only a
 *     "master" is kept. A Sentinel may still name a dead or demoted primary
 *     during a failover, and a restarted old primary accepts writes until
 *     Sentinel turns it into a replica, so ROLE is the check that counts.
 *     A READONLY, LOADING or MASTERDOWN reply means this connection no
 *     longer reaches a usable primary: it is dropped like an I/O error, and
 *     the pool's generation is bumped so that every other thread drops its
 *     connection at its next session instead of meeting the same error.
 *     Connecting to another address than the last primary bumps it too.
 *     After such a drop a thread may try again after 100 ms, not a second:
 *     the new primary is usually ready by then.
 *  5. A planned switchover (SENTINEL FAILOVER) leaves the old primary alive
 *     and answering ROLE master until Sentinel reconfigures it, up to ~10 s
 *     after the Sentinels name the new one (its INFO period): nothing in
 *     note 4 fires, and writes made there are lost when it resyncs. So the
 *     background worker asks a Sentinel once a pass (rds_pool_follow) and
 *     bumps the generation when the named address is not the pool's: every
 *     thread reconnects before its next command, through note 4's path.
 *     Polling was chosen over a +switch-master subscription: it needs no
 *     connection kept open nor a thread blocked on it, a lost message or a
 *     Sentinel restart cannot leave it behind, and its cost is one short
 *     connection per pass (500 ms) on the worker, never on a request. Its
 *     delay is one pass plus a round trip. The ask is bounded like every
 *     Sentinel ask (200 ms to connect, 200 ms to answer, per Sentinel); no
 *     answer changes nothing, since the threads' own ROLE checks still hold.
 *     A thread that asked the Sentinels before a bump may have connected to
 *     the old address: it keeps the generation it started with, so it
 *     reconnects at once instead of moving the pool back (note_master).
 */
#include "store/redis.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

#define RDS_CONNECT_TIMEOUT_MS 200
#define RDS_COMMAND_TIMEOUT_MS 500
#define RDS_RETRY_AFTER_MS     1000
#define RDS_RETRY_SHORT_MS     100     /* after a role change (design note 4) */
#define RDS_SENTINEL_TIMEOUT_MS 200
#define RDS_MAX_SCRIPTS        8

struct rds_pool {
    struct redis_target target;
    atomic_long connections;
    atomic_long errors;
    atomic_long generation;           /* design note 4: bumped on a master change */
    pthread_mutex_t master_lock;      /* guards master */
    char master[300];                 /* "host:port" of the last primary connected to */
    bool follow_failing;              /* the worker's last ask found no Sentinel (note 5) */
};

struct rds {
    struct rds_pool *pool;            /* NULL for a one-off connection */
    struct redis_target target;
    redisContext *ctx;
    long generation;                  /* the pool's generation when ctx was opened */
    long long retry_at_ms;            /* no reconnect before this (design note 1) */
    struct {
        const struct rds_script *script;
        char sha[41];
    } scripts[RDS_MAX_SCRIPTS];
};

static pthread_key_t thread_rds_key;
static pthread_once_t thread_rds_once = PTHREAD_ONCE_INIT;
static _Thread_local struct rds *thread_rds;

static void thread_rds_destroy(void *arg)
{
    rds_close(arg);
}

static void thread_rds_key_create(void)
{
    pthread_key_create(&thread_rds_key, thread_rds_destroy);
}

struct rds_pool *rds_pool_new(const struct redis_target *target)
{
    struct rds_pool *pool = calloc(1, sizeof *pool);

    if (pool) {
        pool->target = *target;
        pthread_mutex_init(&pool->master_lock, NULL);
    }
    return pool;
}

void rds_pool_free(struct rds_pool *pool)
{
    if (pool)
        pthread_mutex_destroy(&pool->master_lock);
    free(pool);
}

void rds_pool_count_error(struct rds_pool *pool)
{
    if (pool)
        atomic_fetch_add(&pool->errors, 1);
}

static long long now_ms(void)
{
    return (long long)(monotonic_ns() / 1000000);
}

/* Closes the context without counting an error: a reconnect, not a failure. */
static void rds_close_ctx(struct rds *r)
{
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
        if (r->pool)
            atomic_fetch_sub(&r->pool->connections, 1);
    }
    for (size_t i = 0; i < RDS_MAX_SCRIPTS; i++)
        r->scripts[i].sha[0] = '\0';
}

void rds_drop(struct rds *r)
{
    rds_close_ctx(r);
    r->retry_at_ms = now_ms() + RDS_RETRY_AFTER_MS;
    rds_pool_count_error(r->pool);
}

/* Design note 4: this connection reached a replica or a primary that cannot
 * serve; every thread reconnects, and this one may try again soon. */
static void rds_drop_role(struct rds *r, const char *why)
{
    et_log(LL_WARN, "redis", "%s; asking for the primary again", why);
    rds_close_ctx(r);
    r->retry_at_ms = now_ms() + RDS_RETRY_SHORT_MS;
    rds_pool_count_error(r->pool);
    if (r->pool)
        atomic_fetch_add(&r->pool->generation, 1);
}

static bool role_error(const redisReply *reply)
{
    static const char *const codes[] = {"READONLY ", "LOADING ", "MASTERDOWN "};

    if (reply->type != REDIS_REPLY_ERROR || reply->str == NULL)
        return false;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strncmp(reply->str, codes[i], strlen(codes[i])) == 0)
            return true;
    return false;
}

/* Asks the Sentinels in turn for the primary's address; false if none knew. */
static bool sentinel_ask(const struct redis_target *t, char *host, size_t hsize, int *port)
{
    struct timeval tv = {0, RDS_SENTINEL_TIMEOUT_MS * 1000};
    bool found = false;

    for (int i = 0; i < t->sentinel_count && !found; i++) {
        redisContext *c = redisConnectWithTimeout(t->sentinels[i].host, t->sentinels[i].port, tv);
        redisReply *reply = NULL;
        if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK)
            reply = redisCommand(c, "SENTINEL get-master-addr-by-name %s", t->master_name);
        if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
            reply->element[0]->type == REDIS_REPLY_STRING && reply->element[0]->len < hsize &&
            reply->element[1]->type == REDIS_REPLY_STRING) {
            memcpy(host, reply->element[0]->str, reply->element[0]->len + 1);
            *port = atoi(reply->element[1]->str);
            found = *port > 0 && *port < 65536;
        }
        freeReplyObject(reply);
        redisFree(c);
    }
    return found;
}

/* One command on a fresh connection; true if the reply is not an error. */
static bool setup_command(struct rds *r, const char *what, int argc, const char **argv)
{
    redisReply *reply = redisCommandArgv(r->ctx, argc, argv, NULL);
    bool ok = reply && reply->type != REDIS_REPLY_ERROR;

    if (!ok)
        et_log(LL_WARN, "redis", "%s failed: %s", what,
                reply ? reply->str : r->ctx->errstr);
    freeReplyObject(reply);
    return ok;
}

/* AUTH, SELECT, ROLE on a fresh connection (design note 4). *replica is set
 * when the server answered but is not a primary. */
static bool rds_handshake(struct rds *r, bool *replica)
{
    const struct redis_target *t = &r->target;
    const char *auth_user[] = {"AUTH", t->user, t->password};
    const char *auth_pass[] = {"AUTH", t->password};
    const char *role[] = {"ROLE"};
    char db[12];
    const char *select[] = {"SELECT", db};
    redisReply *reply;
    bool ok;

    *replica = false;
    snprintf(db, sizeof db, "%d", t->db);
    if (t->password[0] && !(t->user[0] ? setup_command(r, "AUTH", 3, auth_user)
                                       : setup_command(r, "AUTH", 2, auth_pass)))
        return false;
    if (t->db != 0 && !setup_command(r, "SELECT", 2, select))
        return false;
    reply = redisCommandArgv(r->ctx, 1, role, NULL);
    ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
         reply->element[0]->type == REDIS_REPLY_STRING && strcmp(reply->element[0]->str, "master") == 0;
    *replica = reply != NULL && !ok;
    freeReplyObject(reply);
    return ok;
}

/* Design note 4: a primary at another address than the last one is a master
 * change that every thread must follow. asked_at is the generation before
 * the Sentinels were asked: if it moved since, this address may be the old
 * one (note 5), so the pool is left alone and this connection is replaced at
 * the thread's next session. */
static void note_master(struct rds *r, long asked_at, const char *host, int port)
{
    char addr[300];

    r->generation = asked_at;
    snprintf(addr, sizeof addr, "%s:%d", host, port);
    pthread_mutex_lock(&r->pool->master_lock);
    if (atomic_load(&r->pool->generation) == asked_at && strcmp(r->pool->master, addr) != 0) {
        if (r->pool->master[0])
            r->generation = atomic_fetch_add(&r->pool->generation, 1) + 1;
        snprintf(r->pool->master, sizeof r->pool->master, "%s", addr);
    }
    pthread_mutex_unlock(&r->pool->master_lock);
}

static bool rds_connect(struct rds *r)
{
    struct timeval connect_tv = {0, RDS_CONNECT_TIMEOUT_MS * 1000};
    struct timeval command_tv = {0, RDS_COMMAND_TIMEOUT_MS * 1000};
    const struct redis_target *t = &r->target;
    char host[256];
    int port = t->port;
    bool replica = false;
    long asked_at = r->pool ? atomic_load(&r->pool->generation) : 0;

    snprintf(host, sizeof host, "%s", t->host);
    if (t->master_name[0] && !sentinel_ask(t, host, sizeof host, &port)) {
        et_log(LL_WARN, "redis", "no Sentinel named a primary for \"%s\"", t->master_name);
        goto fail;
    }
    if (t->socket_path[0])
        r->ctx = redisConnectUnixWithTimeout(t->socket_path, connect_tv);
    else
        r->ctx = redisConnectWithTimeout(host, port, connect_tv);
    if (r->ctx == NULL || r->ctx->err) {
        if (r->ctx) {
            et_log(LL_WARN, "redis", "connect to %s:%d failed: %s", host, port, r->ctx->errstr);
            redisFree(r->ctx);
        }
        r->ctx = NULL;
        goto fail;
    }
    if (r->pool)
        atomic_fetch_add(&r->pool->connections, 1);
    redisSetTimeout(r->ctx, command_tv);
    redisEnableKeepAlive(r->ctx);
    if (!rds_handshake(r, &replica)) {
        if (replica)
            rds_drop_role(r, "the server named as primary answers ROLE as a replica");
        else
            rds_drop(r);
        return false;
    }
    if (r->pool)
        note_master(r, asked_at, t->socket_path[0] ? t->socket_path : host, port);
    return true;
fail:
    r->retry_at_ms = now_ms() + RDS_RETRY_AFTER_MS;
    rds_pool_count_error(r->pool);
    return false;
}

static struct rds *rds_alloc(const struct redis_target *target, struct rds_pool *pool)
{
    struct rds *r = calloc(1, sizeof *r);

    if (r) {
        r->pool = pool;
        r->target = *target;
    }
    return r;
}

struct rds *rds_session(struct rds_pool *pool, struct problem *p)
{
    struct rds *r = thread_rds;

    if (r == NULL) {
        pthread_once(&thread_rds_once, thread_rds_key_create);
        if ((r = rds_alloc(&pool->target, pool)) == NULL) {
            problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
            return NULL;
        }
        thread_rds = r;
        pthread_setspecific(thread_rds_key, r);
    }
    /* Design notes 4 and 5: another thread or the worker saw the primary
     * change. A second round covers a connect that raced such a change;
     * beyond that this connection serves, and the next session looks again. */
    for (int round = 0; round < 2; round++) {
        if (r->ctx && r->generation != atomic_load(&pool->generation))
            rds_close_ctx(r);
        if (r->ctx != NULL)
            break;
        if (now_ms() < r->retry_at_ms || !rds_connect(r)) {
            problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "Redis is unavailable");
            return NULL;
        }
    }
    return r;
}

struct rds *rds_open(const struct redis_target *target, struct problem *p)
{
    struct rds *r = rds_alloc(target, NULL);

    if (r == NULL || !rds_connect(r)) {
        free(r);
        problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "Redis is unavailable");
        return NULL;
    }
    return r;
}

void rds_close(struct rds *r)
{
    if (r == NULL)
        return;
    if (r->ctx) {
        redisFree(r->ctx);
        if (r->pool)
            atomic_fetch_sub(&r->pool->connections, 1);
    }
    if (thread_rds == r)
        thread_rds = NULL;
    free(r);
}

redisReply *rds_command(struct rds *r, int argc, const char **argv, const size_t *lens)
{
    redisReply *reply;

    if (r->ctx == NULL)
        return NULL;
    reply = redisCommandArgv(r->ctx, argc, argv, lens);
    if (reply == NULL) {
        et_log(LL_WARN, "redis", "%s", r->ctx->errstr);
        rds_drop(r);
    } else if (role_error(reply)) {
        rds_drop_role(r, reply->str);
        freeReplyObject(reply);
        reply = NULL;
    }
    return reply;
}

/* The cached SHA1 slot of a script on this connection. */
static char *script_sha(struct rds *r, const struct rds_script *script)
{
    for (size_t i = 0; i < RDS_MAX_SCRIPTS; i++) {
        if (r->scripts[i].script == script || r->scripts[i].script == NULL) {
            r->scripts[i].script = script;
            return r->scripts[i].sha;
        }
    }
    return NULL;
}

static bool script_load(struct rds *r, const struct rds_script *script, char *sha)
{
    const char *argv[] = {"SCRIPT", "LOAD", script->lua};
    redisReply *reply = rds_command(r, 3, argv, NULL);
    bool ok = reply && reply->type == REDIS_REPLY_STRING && reply->len == 40;

    if (ok)
        memcpy(sha, reply->str, 41);
    else if (reply)
        et_log(LL_ERROR, "redis", "SCRIPT LOAD %s failed: %s", script->name,
                reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    freeReplyObject(reply);
    return ok;
}

bool rds_eval_many(struct rds *r, const struct rds_script *script, int nkeys, int argc,
                   const char **argv, const size_t *lens, size_t count, redisReply **replies)
{
    enum { MAX_ARGS = 16 };
    const char *cmd[MAX_ARGS + 3];
    size_t cmd_lens[MAX_ARGS + 3];
    char nkeys_text[12];
    char *sha = script_sha(r, script);
    size_t i;

    for (i = 0; i < count; i++)
        replies[i] = NULL;
    if (r->ctx == NULL || sha == NULL || argc > MAX_ARGS)
        return false;
    if (sha[0] == '\0' && !script_load(r, script, sha))
        return false;
    snprintf(nkeys_text, sizeof nkeys_text, "%d", nkeys);

    for (int pass = 0; pass < 2; pass++) {
        bool noscript = false;
        /* Pass 0: EVALSHA for all. Pass 1: EVAL with the body, only for the
         * calls that met NOSCRIPT (design note 3). */
        for (i = 0; i < count; i++) {
            if (pass == 1 && replies[i] != NULL)
                continue;
            cmd[0] = pass == 0 ? "EVALSHA" : "EVAL";
            cmd[1] = pass == 0 ? sha : script->lua;
            cmd[2] = nkeys_text;
            cmd_lens[0] = strlen(cmd[0]);
            cmd_lens[1] = strlen(cmd[1]);
            cmd_lens[2] = strlen(nkeys_text);
            for (int a = 0; a < argc; a++) {
                cmd[3 + a] = argv[i * (size_t)argc + (size_t)a];
                cmd_lens[3 + a] = lens ? lens[i * (size_t)argc + (size_t)a] : strlen(cmd[3 + a]);
            }
            redisAppendCommandArgv(r->ctx, argc + 3, cmd, cmd_lens);
        }
        for (i = 0; i < count; i++) {
            void *reply;
            if (pass == 1 && replies[i] != NULL)
                continue;
            if (redisGetReply(r->ctx, &reply) != REDIS_OK) {
                et_log(LL_WARN, "redis", "%s", r->ctx->errstr);
                rds_drop(r);
                return false;
            }
            if (role_error(reply)) {
                rds_drop_role(r, ((redisReply *)reply)->str);
                freeReplyObject(reply);
                return false;
            }
            replies[i] = reply;
            if (replies[i]->type == REDIS_REPLY_ERROR && strncmp(replies[i]->str, "NOSCRIPT", 8) == 0) {
                freeReplyObject(replies[i]);
                replies[i] = NULL;
                noscript = true;
            }
        }
        if (!noscript)
            break;
        sha[0] = '\0';
    }
    return true;
}

bool rds_ping(struct rds_pool *pool)
{
    struct problem p = {0};
    struct rds *r = rds_session(pool, &p);
    const char *argv[] = {"ROLE"};
    redisReply *reply;
    bool ok;

    if (r == NULL)
        return false;
    /* ROLE, not PING: a replica answers PING too (design note 4). */
    reply = rds_command(r, 1, argv, NULL);
    ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
         reply->element[0]->type == REDIS_REPLY_STRING && strcmp(reply->element[0]->str, "master") == 0;
    if (reply && !ok)
        rds_drop_role(r, "the primary became a replica");
    freeReplyObject(reply);
    return ok;
}

void rds_pool_follow(struct rds_pool *pool)
{
    char host[256], addr[300];
    int port = 0;
    bool found, moved = false;

    if (pool == NULL || pool->target.master_name[0] == '\0')
        return;
    found = sentinel_ask(&pool->target, host, sizeof host, &port);
    /* Said once per outage, not twice a second: only a change is news. */
    if (found == pool->follow_failing)
        et_log(found ? LL_INFO : LL_WARN, "redis", found ? "a Sentinel answers again for \"%s\""
                                                        : "no Sentinel named a primary for \"%s\"",
                pool->target.master_name);
    pool->follow_failing = !found;
    if (!found)
        return;
    snprintf(addr, sizeof addr, "%s:%d", host, port);
    pthread_mutex_lock(&pool->master_lock);
    /* An empty master: no thread has connected yet, there is nothing to move. */
    if (pool->master[0] && strcmp(pool->master, addr) != 0) {
        snprintf(pool->master, sizeof pool->master, "%s", addr);
        atomic_fetch_add(&pool->generation, 1);
        moved = true;
    }
    pthread_mutex_unlock(&pool->master_lock);
    if (moved)
        et_log(LL_WARN, "redis", "the Sentinels name %s as the primary; every thread reconnects", addr);
}

long rds_pool_connections(const struct rds_pool *pool)
{
    return atomic_load(&pool->connections);
}

long rds_pool_errors(const struct rds_pool *pool)
{
    return atomic_load(&pool->errors);
}
