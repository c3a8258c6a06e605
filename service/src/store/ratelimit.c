/*
 * store/ratelimit.c - requests per organization, counted in Redis.
 *
 * Per organization, not per key: every key of an organization draws on one
 * window, so minting more keys buys no more requests (an organization key
 * may issue keys).
 *
 * A fixed window per organization: the first request of a window creates
 * the counter with its expiry, in the same Lua script as the increment, so
 * no counter can ever live without a TTL (a crash between INCR and EXPIRE
 * would leave a key that blocks its owner forever). The script also repairs
 * a counter that lost its TTL some other way.
 *
 * When Redis cannot count (down, or full and refusing writes under
 * `maxmemory-policy noeviction`), this process counts instead, in a bounded
 * table (counters.h) with the same limit and window. The limit then holds
 * per process rather than across processes, which still stops a runaway
 * client; failing open, as before, let 1,100 of 1,100 requests through a
 * full Redis. Failing closed would turn a Redis outage into a full outage.
 * The switch is logged once each way.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "counters.h"
#include "log.h"
#include "store/handle.h"
#include "store/redis.h"
#include "store/store.h"

static struct counters fallback = COUNTERS_INIT;
static atomic_bool in_fallback;

static const struct rds_script script_hit = {
    "ratelimit_hit",
    "local n = redis.call('INCR', KEYS[1])\n"
    "local ttl = redis.call('TTL', KEYS[1])\n"
    "if ttl < 0 then\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "  ttl = tonumber(ARGV[1])\n"
    "end\n"
    "return {n, ttl}\n"};

static void note_fallback(bool now)
{
    if (atomic_exchange(&in_fallback, now) != now)
        et_log(now ? LL_WARN : LL_INFO, "ratelimit", "%s", now ? "Redis cannot count; limiting in this process"
                                                               : "Redis counts again");
}

/* This process's count of the organization's requests in the current window. */
static void fallback_hit(const char *organization_id, long long window_seconds, long long *count,
                         long long *ttl)
{
    uint64_t window_ns = (uint64_t)window_seconds * 1000000000u, now = monotonic_ns();

    note_fallback(true);
    *count = counters_add(&fallback, counters_key("ratelimit", organization_id, strlen(organization_id)),
                          now / window_ns, 1);
    *ttl = (long long)((window_ns - now % window_ns + 999999999u) / 1000000000u);
}

/* The organization's count in Redis; false when Redis cannot count. */
static bool redis_hit(struct store *st, const char *organization_id, long long window_seconds,
                      long long *count, long long *ttl)
{
    char key[ID_MAX + 40], window[24];
    const char *argv[] = {key, window};
    struct problem ignored = {0};
    struct rds *r;
    redisReply *reply = NULL;
    bool ok;

    if ((r = store_rds(st, &ignored)) == NULL)
        return false;
    snprintf(key, sizeof key, "eventtrack:rl:{%s}", organization_id);
    snprintf(window, sizeof window, "%lld", window_seconds);
    ok = rds_eval_many(r, &script_hit, 1, 2, argv, NULL, 1, &reply) && reply != NULL &&
         reply->type == REDIS_REPLY_ARRAY && reply->elements == 2;    /* an OOM error is not */
    if (ok) {
        *count = reply->element[0]->integer;
        *ttl = reply->element[1]->integer;
    }
    freeReplyObject(reply);
    return ok;
}

enum et_err ratelimit_hit(struct store *st, const char *organization_id, long long limit,
                          long long window_seconds, struct problem *p)
{
    long long count, ttl;

    if (limit <= 0)
        return ET_OK;
    if (redis_hit(st, organization_id, window_seconds, &count, &ttl))
        note_fallback(false);
    else
        fallback_hit(organization_id, window_seconds, &count, &ttl);
    if (count <= limit)
        return ET_OK;
    p->retry_after = ttl > 0 ? (int)ttl : 1;
    return problem_set(p, ET_ERR_RATE_LIMITED, NULL,
                       "more than %lld requests in %lld s for this organization; retry in %d s",
                       limit, window_seconds, p->retry_after);
}
