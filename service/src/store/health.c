/*
 * store/health.c - store gauges and counters for /metrics.
 */
#include "store/pg.h"
#include "store/redis.h"
#include "store/store.h"

void store_metrics_render(const struct pg_pool *pg, const struct rds_pool *redis, struct buf *out)
{
    long groups, grouped, ingest_groups, ingest_grouped;

    registrations_group_stats(&groups, &grouped);
    analytics_group_stats(&ingest_groups, &ingest_grouped);
    buf_printf(out,
               "# HELP eventtrack_store_connections Open connections, one per worker thread and store.\n"
               "# TYPE eventtrack_store_connections gauge\n"
               "eventtrack_store_connections{store=\"postgres\"} %ld\n"
               "eventtrack_store_connections{store=\"redis\"} %ld\n"
               "# HELP eventtrack_store_errors_total Connection failures and failed statements or commands.\n"
               "# TYPE eventtrack_store_errors_total counter\n"
               "eventtrack_store_errors_total{store=\"postgres\"} %ld\n"
               "eventtrack_store_errors_total{store=\"redis\"} %ld\n"
               "# HELP eventtrack_leaderboard_apply_failures_total Logged session views not applied to Redis.\n"
               "# TYPE eventtrack_leaderboard_apply_failures_total counter\n"
               "eventtrack_leaderboard_apply_failures_total %ld\n"
               "# HELP eventtrack_registration_groups_total Statements that saved several registrations at once.\n"
               "# TYPE eventtrack_registration_groups_total counter\n"
               "eventtrack_registration_groups_total %ld\n"
               "# HELP eventtrack_registrations_grouped_total Registrations saved by those statements.\n"
               "# TYPE eventtrack_registrations_grouped_total counter\n"
               "eventtrack_registrations_grouped_total %ld\n"
               "# HELP eventtrack_ingest_groups_total Statements that logged several single-event ingests at once.\n"
               "# TYPE eventtrack_ingest_groups_total counter\n"
               "eventtrack_ingest_groups_total %ld\n"
               "# HELP eventtrack_ingest_grouped_total Single-event ingests logged by those statements.\n"
               "# TYPE eventtrack_ingest_grouped_total counter\n"
               "eventtrack_ingest_grouped_total %ld\n",
               pg_pool_connections(pg), rds_pool_connections(redis), pg_pool_errors(pg),
               rds_pool_errors(redis), leaderboard_apply_failures(), groups, grouped,
               ingest_groups, ingest_grouped);
}
