/*
 * app.h - the one context every handler receives (req->app).
 *
 * Built by main.c in dependency order and torn down in reverse: the settings,
 * the two stores and the metrics. Handlers read it and never change it;
 * per-thread connections hang off the store handles (store/pg.c, redis.c).
 */
#ifndef ET_APP_H
#define ET_APP_H

#include <stdatomic.h>

#include "config.h"

struct pg_pool;
struct budget;
struct rds_pool;
struct metrics;

struct app {
    const struct config *cfg;
    struct pg_pool *pg;            /* the source of truth */
    struct budget *budget;         /* this replica's share of pg_connection_budget; NULL: off */
    struct rds_pool *redis;        /* the derived leaderboard view */
    struct metrics *metrics;
    atomic_bool draining;          /* set on SIGTERM: readiness fails first */
};

#endif
