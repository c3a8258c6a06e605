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
#define RDS_MAX_SCRIPTS        8

struct rds_pool {
    struct redis_target target;
    atomic_long connections;
    atomic_long errors;
};

struct rds {
    struct rds_pool *pool;            /* NULL for a one-off connection */
    struct redis_target target;
    redisContext *ctx;
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

    if (pool)
        pool->target = *target;
    return pool;
}

void rds_pool_free(struct rds_pool *pool)
{
    free(pool);
}

void rds_pool_count_error(struct rds_pool *pool)
{
    if (pool)
        atomic_fetch_add(&pool->errors, 1);
}

void rds_drop(struct rds *r)
{
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
        if (r->pool)
            atomic_fetch_sub(&r->pool->connections, 1);
    }
    for (size_t i = 0; i < RDS_MAX_SCRIPTS; i++)
        r->scripts[i].sha[0] = '\0';
    r->retry_at_ms = (long long)(monotonic_ns() / 1000000) + RDS_RETRY_AFTER_MS;
    rds_pool_count_error(r->pool);
}

static bool rds_connect(struct rds *r)
{
    struct timeval connect_tv = {0, RDS_CONNECT_TIMEOUT_MS * 1000};
    struct timeval command_tv = {0, RDS_COMMAND_TIMEOUT_MS * 1000};
    const struct redis_target *t = &r->target;
    redisReply *reply;

    if (t->socket_path[0])
        r->ctx = redisConnectUnixWithTimeout(t->socket_path, connect_tv);
    else
        r->ctx = redisConnectWithTimeout(t->host, t->port, connect_tv);
    if (r->ctx == NULL || r->ctx->err) {
        if (r->ctx) {
            et_log(LL_WARN, "redis", "connect failed: %s", r->ctx->errstr);
            redisFree(r->ctx);
        }
        r->ctx = NULL;
        r->retry_at_ms = (long long)(monotonic_ns() / 1000000) + RDS_RETRY_AFTER_MS;
        rds_pool_count_error(r->pool);
        return false;
    }
    if (r->pool)
        atomic_fetch_add(&r->pool->connections, 1);
    redisSetTimeout(r->ctx, command_tv);
    redisEnableKeepAlive(r->ctx);
    if (t->db != 0) {
        reply = redisCommand(r->ctx, "SELECT %d", t->db);
        bool ok = reply && reply->type != REDIS_REPLY_ERROR;
        freeReplyObject(reply);
        if (!ok) {
            et_log(LL_WARN, "redis", "SELECT %d failed", t->db);
            rds_drop(r);
            return false;
        }
    }
    return true;
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
    if (r->ctx == NULL && ((long long)(monotonic_ns() / 1000000) < r->retry_at_ms || !rds_connect(r))) {
        problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE, "Redis is unavailable");
        return NULL;
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
    const char *argv[] = {"PING"};
    redisReply *reply;
    bool ok;

    if (r == NULL)
        return false;
    reply = rds_command(r, 1, argv, NULL);
    ok = reply && reply->type == REDIS_REPLY_STATUS;
    freeReplyObject(reply);
    return ok;
}

long rds_pool_connections(const struct rds_pool *pool)
{
    return atomic_load(&pool->connections);
}

long rds_pool_errors(const struct rds_pool *pool)
{
    return atomic_load(&pool->errors);
}
