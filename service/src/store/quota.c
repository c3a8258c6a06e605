/*
 * store/quota.c - the ingest quota: analytics envelopes an organization may
 * log per UTC day (docs/adr/0011-ingest-quota-and-admission.md).
 *
 * Why it exists: every logged session_view costs Redis about 170 bytes for a
 * week (its member in the board's applied set, store/leaderboards.c note 6),
 * so without a bound one organization could fill Redis and freeze every
 * tenant's board. The quota bounds Redis by design: memory <= quota x
 * (retention days + 1) x bytes per view x organizations (config/redis.conf).
 *
 * Design notes
 *  1. Take, then give back. A request takes as many units as it has
 *     envelopes that passed validation, before anything is logged, in one
 *     Lua script that refuses the whole request (and counts nothing) when it
 *     would go over: a refused request leaves no trace in either store.
 *     After the insert, the envelopes PostgreSQL did not log (duplicates,
 *     conflicts, a failed statement) are given back, so a retried batch does
 *     not pay twice. The common case, all new, costs one Redis round trip.
 *  2. One counter per organization and UTC day, eventtrack:quota:{ORG}:DAY,
 *     expiring two days after it is created (created with its TTL in the
 *     same script, like the rate limiter's). The day is the day of the take;
 *     a give-back goes to that same counter, never to the next day's.
 *  3. When Redis cannot count (down, or full under noeviction), this process
 *     counts in a bounded table (counters.h), per day as well. The quota then
 *     holds per process; what is counted there is never moved to Redis.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "counters.h"
#include "store/handle.h"
#include "store/redis.h"
#include "store/store.h"

#define DAY_SECONDS 86400
#define COUNTER_TTL "172800"       /* two days: the counter outlives its day */

static struct counters fallback = COUNTERS_INIT;

static const struct rds_script script_take = {
    "quota_take",
    "local used = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local n = tonumber(ARGV[1])\n"
    "if used + n > tonumber(ARGV[2]) then return {0, used} end\n"
    "used = redis.call('INCRBY', KEYS[1], n)\n"
    "if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end\n"
    "return {1, used}\n"};

/* Never recreates a counter that expired (it would have no TTL). */
static const struct rds_script script_give_back = {
    "quota_give_back",
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "local left = redis.call('DECRBY', KEYS[1], ARGV[1])\n"
    "if left < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') return 0 end\n"
    "return left\n"};

static struct counter_key org_key(const char *organization_id)
{
    return counters_key("quota", organization_id, strlen(organization_id));
}

/* Runs one quota script on the organization's counter of `day`; NULL when Redis cannot. */
static redisReply *quota_eval(struct store *st, const struct rds_script *script,
                              const char *organization_id, long long day, const char **args,
                              int nargs)
{
    char key[ID_MAX + 64];
    const char *argv[4] = {key};
    struct problem ignored = {0};
    struct rds *r = store_rds(st, &ignored);
    redisReply *reply = NULL;

    if (r == NULL || nargs > 3)
        return NULL;
    snprintf(key, sizeof key, "eventtrack:quota:{%s}:%lld", organization_id, day);
    for (int i = 0; i < nargs; i++)
        argv[1 + i] = args[i];
    if (!rds_eval_many(r, script, 1, 1 + nargs, argv, NULL, 1, &reply) || reply == NULL ||
        reply->type == REDIS_REPLY_ERROR) {       /* OOM: Redis full under noeviction */
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

/* Design note 3: the same decision, counted by this process. */
static bool fallback_take(const char *organization_id, long long day, long long n,
                          long long per_day, long long *used)
{
    struct counter_key k = org_key(organization_id);

    *used = counters_add(&fallback, k, (uint64_t)day, n);
    if (*used <= per_day)
        return true;
    *used = counters_add(&fallback, k, (uint64_t)day, -n);
    return false;
}

enum et_err quota_take(struct store *st, const char *organization_id, long long n,
                       long long per_day, struct quota_ticket *t, struct problem *p)
{
    char n_text[24], limit_text[24];
    const char *args[] = {n_text, limit_text, COUNTER_TTL};
    time_t now = time(NULL);
    redisReply *reply;
    long long used;
    bool granted;

    memset(t, 0, sizeof *t);
    if (per_day <= 0 || n <= 0)
        return ET_OK;
    t->day = (long long)(now / DAY_SECONDS);
    snprintf(t->organization_id, sizeof t->organization_id, "%s", organization_id);
    snprintf(n_text, sizeof n_text, "%lld", n);
    snprintf(limit_text, sizeof limit_text, "%lld", per_day);
    reply = quota_eval(st, &script_take, organization_id, t->day, args, 3);
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        granted = reply->element[0]->integer == 1;
        used = reply->element[1]->integer;
    } else {
        t->in_process = true;
        granted = fallback_take(organization_id, t->day, n, per_day, &used);
    }
    freeReplyObject(reply);
    if (granted) {
        t->taken = n;
        return ET_OK;
    }
    p->retry_after = (int)(DAY_SECONDS - now % DAY_SECONDS);
    return problem_set(p, ET_ERR_RATE_LIMITED, PT_INGEST_QUOTA_EXCEEDED,
                       "organization %s has logged %lld of its %lld analytics events for today"
                       " (UTC) and this request has %lld; nothing was logged. The quota renews at"
                       " 00:00 UTC, in %d s",
                       organization_id, used, per_day, n, p->retry_after);
}

void quota_give_back(struct store *st, const struct quota_ticket *t, long long n)
{
    char n_text[24];
    const char *args[] = {n_text};

    if (n <= 0 || t->taken <= 0)
        return;
    if (n > t->taken)
        n = t->taken;
    if (t->in_process) {
        counters_add(&fallback, org_key(t->organization_id), (uint64_t)t->day, -n);
        return;
    }
    snprintf(n_text, sizeof n_text, "%lld", n);
    /* If Redis cannot take it back, the units stay counted: the quota errs
     * on the side of the store it protects. */
    freeReplyObject(quota_eval(st, &script_give_back, t->organization_id, t->day, args, 1));
}
