/*
 * store/health.c - the stores' gauges and counters, as numbers: metrics.c
 * renders them on /metrics with the HTTP series, so the page has one author.
 */
#include "store/pg.h"
#include "store/redis.h"
#include "store/store.h"

void store_stats(const struct pg_pool *pg, const struct rds_pool *redis, struct store_stats *out)
{
    out->pg_connections = pg_pool_connections(pg);
    out->redis_connections = rds_pool_connections(redis);
    out->pg_errors = pg_pool_errors(pg);
    out->redis_errors = rds_pool_errors(redis);
    out->leaderboard_apply_failures = leaderboard_apply_failures();
    registrations_group_stats(&out->registration_groups, &out->registrations_grouped);
    analytics_group_stats(&out->ingest_groups, &out->ingest_grouped);
}
