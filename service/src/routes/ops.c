/*
 * routes/ops.c - liveness, readiness and metrics for orchestrators and scrapers.
 *
 * Readiness follows PostgreSQL only: without it no write can succeed, while
 * without Redis everything but the leaderboard still works, so Redis being
 * down is reported but does not take the instance out of rotation. During a
 * graceful shutdown readiness fails first, so load balancers stop sending.
 * Redis counts as "ok" only as a primary (rds_ping asks ROLE): a replica
 * answers PING but refuses every leaderboard write (ADR 0014).
 *
 * /readyz/read is the readiness of the public leaderboard reads alone, which
 * Redis serves without PostgreSQL: a load balancer that checks it keeps the
 * boards up through a PostgreSQL failover. It never asks PostgreSQL, so a
 * hung primary cannot stall the check either.
 */
#include "app.h"
#include "metrics.h"
#include "routes/routes.h"
#include "store/store.h"

void api_healthz(struct request *req, struct response *res)
{
    struct jw *w = respond_json(res, 200);

    (void)req;
    jw_object_begin(w);
    jw_key(w, "status");
    jw_string(w, "ok");
    jw_object_end(w);
}

/* Ready when the store the check follows answers (PostgreSQL for /readyz,
 * Redis for /readyz/read) and no shutdown began; the body names each store
 * it asked. */
static void readiness(struct request *req, struct response *res, bool follows_postgres)
{
    bool draining = atomic_load(&req->app->draining);
    bool postgres = follows_postgres && pg_ping(req->app->pg);
    bool redis = rds_ping(req->app->redis);
    bool ready = (follows_postgres ? postgres : redis) && !draining;
    struct jw *w = respond_json(res, ready ? 200 : 503);

    if (!ready)
        res->retry_after = 1;
    jw_object_begin(w);
    jw_key(w, "status"); jw_string(w, ready ? "ready" : draining ? "draining" : "unready");
    if (follows_postgres) {
        jw_key(w, "postgres");
        jw_string(w, postgres ? "ok" : "down");
    }
    jw_key(w, "redis"); jw_string(w, redis ? "ok" : "down");
    jw_object_end(w);
}

void api_readyz(struct request *req, struct response *res)
{
    readiness(req, res, true);
}

void api_readyz_read(struct request *req, struct response *res)
{
    readiness(req, res, false);
}

void api_metrics(struct request *req, struct response *res)
{
    struct store_stats stores;

    respond_json(res, 200);
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    store_stats(req->app->pg, req->app->redis, &stores);
    metrics_render(req->app->metrics, &stores, &res->body);
}
