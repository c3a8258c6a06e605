/*
 * worker.c - one background thread per process.
 *
 * Every `leaderboard_sync_ms` it runs leaderboard_sync: it checks that Redis
 * has not lost acknowledged writes (and rebuilds every board if it has), then
 * applies the outbox, the views PostgreSQL committed that the request path
 * may not have applied. This is what bounds the board's staleness when Redis
 * was down or the process died after a commit (docs/adr/0003). Once a minute
 * it also deletes Idempotency-Key records past their retention.
 *
 * The thread owns its own PostgreSQL and Redis connections, like every HTTP
 * worker thread. Several processes may run it at once: outbox rows are taken
 * with FOR UPDATE SKIP LOCKED, applying a view twice counts it once, and a
 * purge is idempotent.
 */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "store/store.h"

struct worker {
    struct app *app;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
};

#define PURGE_EVERY_MS 60000

/* Idempotency records are promised for 24 h; keep them an hour longer. */
#define IDEMPOTENCY_KEEP_HOURS (24 + 1)

static void purge_idempotency_keys(struct app *app)
{
    struct problem p = {0};
    struct store st;
    long long purged = 0;

    store_init(&st, app->pg, app->redis, 0);
    if (idempotency_purge(&st, IDEMPOTENCY_KEEP_HOURS, &purged, &p) != ET_OK) {
        /* An outage is logged once by store/pg.c (design note 5); a
         * skipped purge during it is no news, and the next pass catches up. */
        if (p.err != ET_ERR_UNAVAILABLE)
            et_log(LL_WARN, "worker", "idempotency purge skipped: %s", p.detail);
    }
    else if (purged > 0)
        et_log(LL_INFO, "worker", "%lld expired idempotency record(s) deleted", purged);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    long long interval_ms = w->app->cfg->leaderboard_sync_ms;
    long long since_purge_ms = PURGE_EVERY_MS;
    bool was_failing = false;

    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        struct problem p = {0};
        struct sync_stats st;
        struct store handle;               /* one per pass; each outbox batch has its own deadline */
        struct timespec until;

        pthread_mutex_unlock(&w->lock);
        if (w->app->budget != NULL)
            budget_keep(w->app->budget);   /* store/budget.c note 4: before this pass connects */
        rds_pool_follow(w->app->redis);    /* store/redis.c note 5: before this pass writes */
        store_init(&handle, w->app->pg, w->app->redis, 0);
        if (leaderboard_sync(&handle, &st, &p) != ET_OK) {
            if (!was_failing)   /* say it once per outage, not twice a second */
                et_log(LL_WARN, "worker", "leaderboard sync failed: %s; retrying every %lld ms",
                        p.detail, interval_ms);
            was_failing = true;
        } else {
            if (was_failing || st.redis_lost || st.rebuilt_boards > 0)
                et_log(LL_INFO, "worker", "leaderboards caught up (%zu board(s) rebuilt,"
                                " %zu outbox view(s) applied)", st.rebuilt_boards, st.applied);
            was_failing = false;
        }
        if ((since_purge_ms += interval_ms) >= PURGE_EVERY_MS) {
            purge_idempotency_keys(w->app);
            since_purge_ms = 0;
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += interval_ms / 1000;
        until.tv_nsec += (interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&w->lock);
        while (!w->stopping && pthread_cond_timedwait(&w->wake, &w->lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

struct worker *worker_start(struct app *app)
{
    struct worker *w = calloc(1, sizeof *w);

    if (w == NULL)
        return NULL;
    w->app = app;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

void worker_stop(struct worker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
