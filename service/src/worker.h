/*
 * worker.h - the background thread: leaderboard convergence and housekeeping.
 */
#ifndef ET_WORKER_H
#define ET_WORKER_H

#include "app.h"

struct worker;

/* Starts the worker thread; NULL if it cannot. */
struct worker *worker_start(struct app *app);
/* Stops it (finishing the current pass) and frees it; NULL is a no-op. */
void worker_stop(struct worker *w);

#endif
