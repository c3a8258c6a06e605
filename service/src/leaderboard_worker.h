/*
 * leaderboard_worker.h - the thread that makes Redis catch up with PostgreSQL.
 */
#ifndef ET_LEADERBOARD_WORKER_H
#define ET_LEADERBOARD_WORKER_H

#include "app.h"

struct leaderboard_worker;

/* Starts the worker thread; NULL if it cannot. */
struct leaderboard_worker *leaderboard_worker_start(struct app *app);
/* Stops it (finishing the current pass) and frees it; NULL is a no-op. */
void leaderboard_worker_stop(struct leaderboard_worker *w);

#endif
