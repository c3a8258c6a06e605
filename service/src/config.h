/*
 * config.h - every setting of the service, where it comes from, and checks.
 *
 * Precedence, lowest first: built-in defaults, the config file
 * (config/eventtrack.conf, or --config PATH / EVENTTRACK_CONFIG), environment
 * variables (EVENTTRACK_<KEY>), command-line flags (--<key>). Everything is
 * validated once at start; a bad value stops the process with one line that
 * names the setting and where the value came from.
 */
#ifndef ET_CONFIG_H
#define ET_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "ids.h"
#include "redis_target.h"

enum command { CMD_SERVE, CMD_MIGRATE, CMD_REBUILD_LEADERBOARDS, CMD_VERSION, CMD_HELP };

struct config {
    enum command command;
    char rebuild_event_id[ID_MAX + 1];   /* rebuild-leaderboards argument, empty: all */

    char bind[64];
    long long port;
    char database_url[1024];
    char redis_url[512];
    struct redis_target redis;           /* parsed from redis_url */
    long long threads;
    long long pg_connection_budget;      /* -1 auto, 0 off, else connections (store/budget.c) */
    long long max_body_bytes;
    long long body_budget_bytes;         /* all request bodies being received, together */
    long long connection_timeout;        /* seconds an idle or slow client may hold a connection */
    long long connection_limit;
    long long per_ip_connection_limit;
    long long shutdown_grace_seconds;    /* SIGTERM: unready but still accepting, for load balancers */
    long long shutdown_drain_seconds;
    char admin_key[256];                 /* required by serve; compared in constant time */
    long long rate_limit_requests;       /* per organization and window; 0: no limit */
    long long rate_limit_window_seconds;
    long long auth_failure_limit;        /* failed authentications per client address and window; 0: none */
    long long auth_failure_window_seconds;
    long long negative_cache_seconds;    /* how long an unknown token is answered without a lookup */
    long long ingest_quota_per_day;      /* analytics envelopes logged per organization per UTC day; 0: none */
    long long json_max_depth;            /* request bodies nested deeper get 400 */
    long long analytics_batch_max;       /* envelopes in one analytics batch */
    long long max_name_chars;            /* names and titles */
    long long request_deadline_ms;       /* longest a request waits on PostgreSQL, then 503 */
    long long leaderboard_sync_ms;       /* pause between passes of the convergence worker */
    long long applied_retention_hours;   /* a board's applied set outlives its last view by this */
    long long group_commit_lanes;        /* groups of one kind of write in flight at once */
    long long credit_buckets;            /* rows new credits are spread over */
    char log_format[8];                  /* "json" or "text" (log.h) */
};

#define ADMIN_KEY_MIN_CHARS 32

/* Fills cfg from defaults, file, env and argv. On failure returns false with
 * a one-line message in err. */
bool config_load(int argc, char **argv, struct config *cfg, char *err, size_t err_size);

/* Writes the --help text. */
void config_usage(FILE *out);

#endif
