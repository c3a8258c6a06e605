/*
 * store/redis.h - Redis connections for worker threads, and Lua scripts.
 *
 * Same model as store/pg.h: one hiredis context per thread, dropped on any
 * error and reopened on a later request. Only store/ includes this header.
 */
#ifndef ET_STORE_REDIS_H
#define ET_STORE_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "errors.h"
#include "redis_target.h"
#include "store/store.h"

struct rds_pool;
struct rds;

/* A Lua script run with EVALSHA; its SHA1 is learned from SCRIPT LOAD. */
struct rds_script {
    const char *name;
    const char *lua;
};


/* This thread's connection; NULL (p = unavailable) while Redis is down. */
struct rds *rds_session(struct rds_pool *pool, struct problem *p);

/* One command; NULL (and the connection dropped) on a connection failure.
 * An error reply is returned as a reply of type REDIS_REPLY_ERROR. */
redisReply *rds_command(struct rds *r, int argc, const char **argv, const size_t *lens);

/*
 * Pipelines `count` runs of one script: call i uses argv + i * argc. Replies
 * land in replies[i] (caller frees each with freeReplyObject). Returns false
 * if the connection failed; replies received before that are kept, the rest
 * are NULL.
 */
bool rds_eval_many(struct rds *r, const struct rds_script *script, int nkeys, int argc,
                   const char **argv, const size_t *lens, size_t count, redisReply **replies);

/* Marks the connection broken: closed now, reopened by a later session. */
void rds_drop(struct rds *r);

long rds_pool_connections(const struct rds_pool *pool);
long rds_pool_errors(const struct rds_pool *pool);
void rds_pool_count_error(struct rds_pool *pool);


#endif
