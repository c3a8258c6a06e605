/*
 * leaderboard_worker.c - one thread per process running leaderboard_sync.
 *
 * Every `leaderboard_sync_ms` it checks that Redis has not lost acknowledged
 * writes (and rebuilds every board if it has), then applies the outbox: the
 * views PostgreSQL committed that the request path may not have applied.
 * This is what bounds the board's staleness when Redis was down or the
 * process died after a commit (docs/adr/0001, "Convergence"). The thread owns
 * its own PostgreSQL and Redis connections, like every worker thread.
 * Several processes may run it at once: outbox rows are taken with
 * FOR UPDATE SKIP LOCKED, and applying a view twice counts it once.
 */
#include "leaderboard_worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "store/store.h"

struct leaderboard_worker {
    struct app *app;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
};

static void *worker_main(void *arg)
{
    struct leaderboard_worker *w = arg;
    long long interval_ms = w->app->cfg->leaderboard_sync_ms;
    bool was_failing = false;

    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        struct problem p = {0};
        struct sync_stats st;
        struct timespec until;

        pthread_mutex_unlock(&w->lock);
        if (leaderboard_sync(w->app->pg, w->app->redis, &st, &p) != ET_OK) {
            if (!was_failing)   /* say it once per outage, not twice a second */
                fprintf(stderr, "eventtrack: leaderboard worker: %s; retrying every %lld ms\n",
                        p.detail, interval_ms);
            was_failing = true;
        } else {
            if (was_failing || st.redis_lost || st.rebuilt_boards > 0)
                fprintf(stderr, "eventtrack: leaderboard worker: caught up (%zu board(s) rebuilt,"
                                " %zu outbox view(s) applied)\n", st.rebuilt_boards, st.applied);
            was_failing = false;
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

struct leaderboard_worker *leaderboard_worker_start(struct app *app)
{
    struct leaderboard_worker *w = calloc(1, sizeof *w);

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

void leaderboard_worker_stop(struct leaderboard_worker *w)
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
