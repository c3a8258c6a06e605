/*
 * store/group_commit.h - saves concurrent writes together: registrations
 * (store/registrations.c, design note 7) and single-event ingest
 * (store/analytics.c, design note 6); docs/adr/0008, docs/adr/0016.
 *
 * The scheduler only: queue, lanes, who leads. What an item is, and what
 * "save one" and "save a group" mean (the SQL), stay with the caller, passed
 * in as two functions; the scheduler never looks inside an item.
 */
#ifndef ET_STORE_GROUP_COMMIT_H
#define ET_STORE_GROUP_COMMIT_H

#include <pthread.h>
#include <stdbool.h>

#include "errors.h"

/* Saves one item through its one-item path, deciding every refusal; ctx is
 * the caller's own (its connection, its tenant). */
typedef enum et_err (*group_alone_fn)(void *ctx, void *item, struct problem *p);
/* Saves what it can of items[0..n) in one transaction; saved[i] tells which
 * (the item is filled in); returns how many. ctx is the leader's. Never fails
 * as a whole: what is not saved runs alone. */
typedef int (*group_save_fn)(void *ctx, void *const *items, int n, bool *saved);

struct group_waiter;

/* One queue per kind of write. Its fields belong to store/group_commit.c;
 * they are here only so that a queue can be a static with GROUP_COMMIT_INIT. */
struct group_commit {
    pthread_mutex_t lock;
    pthread_cond_t settled;                 /* a group finished: states changed, a lane freed */
    struct group_waiter *head, **tail;      /* items waiting for a lane, oldest first */
    int lanes_busy;
    long groups, grouped;                   /* for /metrics: groups saved, items in them */
};
/* Items in one group at most: a group_save_fn is never given more. */
#define GROUP_MAX 32

#define GROUP_COMMIT_INIT(g) {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, &(g).head, 0, 0, 0}

/* Saves item, in a group when others are queued on g, else alone. ctx is
 * this thread's (a connection outside any transaction); it is handed to
 * `alone` for this item and to `save` when this thread leads a group. */
enum et_err group_commit(struct group_commit *g, void *ctx, void *item, group_alone_fn alone,
                         group_save_fn save, struct problem *p);

/* Called at most once, outside the scheduler's lock, before an item of
 * group_commit_in_txn first waits or saves a group: to leave the
 * transaction its connection is in, keeping what it must keep. */
typedef void (*group_detach_fn)(void *ctx, void *item);

/* As group_commit, for an item whose connection is inside a transaction of
 * its own (a keyed registration: store/registrations.c, design note 8).
 * Alone at once (a lane free, nobody queued) it runs inside that
 * transaction, untouched; before it waits, or leads a group of others, it
 * is detached. `alone` must then run it in a transaction of its own again. */
enum et_err group_commit_in_txn(struct group_commit *g, void *ctx, void *item, group_alone_fn alone,
                                group_save_fn save, group_detach_fn detach, struct problem *p);

/* Sets how many groups of one kind may be in flight at once (the
 * group_commit_lanes setting, GROUP_LANES_DEFAULT in model.h); call before
 * any group_commit. */
void group_commit_configure(int lanes);

/* For /metrics: groups saved on g, and items in them. */
void group_commit_stats(struct group_commit *g, long *groups, long *grouped);

#endif
