/*
 * store/ratelimit.c - requests per organization key, counted in Redis.
 *
 * A fixed window per key: the first request of a window creates the counter
 * with its expiry, in the same Lua script as the increment, so no counter
 * can ever live without a TTL (a crash between INCR and EXPIRE would leave a
 * key that blocks its owner forever). The script also repairs a counter
 * that lost its TTL some other way.
 *
 * Redis down means no limit (fail open): the limiter protects the service
 * from a runaway client, and refusing every paying client because the
 * derived-data store is down would be the worse outage (ADR 0002).
 */
#include <stdio.h>
#include <stdlib.h>

#include "store/redis.h"
#include "store/store.h"

static const struct rds_script script_hit = {
    "ratelimit_hit",
    "local n = redis.call('INCR', KEYS[1])\n"
    "local ttl = redis.call('TTL', KEYS[1])\n"
    "if ttl < 0 then\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "  ttl = tonumber(ARGV[1])\n"
    "end\n"
    "return {n, ttl}\n"};

enum et_err ratelimit_hit(struct rds_pool *redis, const char *key_id, long long limit,
                          long long window_seconds, struct problem *p)
{
    char key[ID_MAX + 40], window[24];
    const char *argv[] = {key, window};
    struct problem ignored = {0};
    struct rds *r;
    redisReply *reply = NULL;
    long long count, ttl;

    if (limit <= 0)
        return ET_OK;
    if ((r = rds_session(redis, &ignored)) == NULL)
        return ET_OK;                                       /* fail open */
    snprintf(key, sizeof key, "eventtrack:rl:{%s}", key_id);
    snprintf(window, sizeof window, "%lld", window_seconds);
    if (!rds_eval_many(r, &script_hit, 1, 2, argv, NULL, 1, &reply) || reply == NULL ||
        reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        freeReplyObject(reply);
        return ET_OK;                                       /* fail open */
    }
    count = reply->element[0]->integer;
    ttl = reply->element[1]->integer;
    freeReplyObject(reply);
    if (count <= limit)
        return ET_OK;
    p->retry_after = ttl > 0 ? (int)ttl : 1;
    return problem_set(p, ET_ERR_RATE_LIMITED, NULL,
                       "more than %lld requests in %lld s for this key; retry in %d s", limit,
                       window_seconds, p->retry_after);
}
