/*
 * store/group_commit.c - the leader/follower scheduler behind group commit
 * (store/registrations.c, design note 7; store/analytics.c, design note 6;
 * docs/adr/0008, docs/adr/0016).
 *
 * Each item (a registration, a single-event ingest) joins its kind's
 * process-wide queue. While fewer than `lanes` groups of that kind are in
 * flight (the group_commit_lanes setting, 2 by default: group_commit_configure), the oldest waiter leads: it takes up to GROUP_MAX queued items
 * and saves them in one transaction on its own connection. Nobody waits for
 * a group to fill: at an idle service the queue is empty and an item runs
 * alone, at once.
 *
 * A waiter's states (struct group_waiter.state, written under g->lock only):
 *
 *                 group_commit()
 *                       |
 *                       v
 *     +------------- QUEUED ----------------+
 *     | a lane is free and it               | a leader takes it
 *     | is still queued: it leads           | into its group
 *     | (group_lead)                        v
 *     |                                  IN_GROUP
 *     |                       leader's     |       leader's statement
 *     |                       statement    |       did not save it
 *     |                       saved it     |       (group_settle)
 *     |                     (group_settle) |
 *     |                          +---------+---------+
 *     |                          v                   v
 *     |                        SAVED             RUN_ALONE
 *     |                      (returns ET_OK)   (runs the one-item
 *     v                                          path itself)
 *   leads: saves the group, publishes every member's state, frees its lane,
 *   and runs alone itself if its own item was not saved.
 *
 * A waiter blocks on g->settled while it is IN_GROUP, or QUEUED with
 * every lane busy; every settle broadcasts. A group of one uses the
 * one-item path, which is cheaper. An item whose connection is inside a
 * transaction of its own (group_commit_in_txn) is detached from it before
 * it blocks or leads a group of others, never while it holds g->lock.
 */
#include "store/group_commit.h"

#include <stddef.h>

#include "model.h"

/* Groups of one kind in flight at once. Written once at start, before any
 * worker thread runs (group_commit_configure), then only read. Two measured
 * best on one two-core process (docs/adr/0008); N replicas on one database
 * share its cores and buckets, so each may need fewer (issue 17). */
static int lanes = GROUP_LANES_DEFAULT;

void group_commit_configure(int group_lanes)
{
    lanes = group_lanes > 0 ? group_lanes : GROUP_LANES_DEFAULT;
}

enum waiter_state { QUEUED, IN_GROUP, SAVED, RUN_ALONE };

struct group_waiter {
    void *item;
    struct group_waiter *next;
    enum waiter_state state;        /* written under g->lock */
};

/* Unlinks w from g's queue (held under g->lock). */
static void queue_remove(struct group_commit *g, struct group_waiter *w)
{
    struct group_waiter **at = &g->head;

    while (*at != w)
        at = &(*at)->next;
    *at = w->next;
    if (g->tail == &w->next)
        g->tail = at;
}

/* Takes self out of the queue with up to GROUP_MAX - 1 of the oldest waiters
 * behind it (held under g->lock). Returns the group's size; self is first. */
static int group_lead(struct group_commit *g, struct group_waiter *self,
                      struct group_waiter **members)
{
    int n = 0;

    queue_remove(g, self);
    members[n++] = self;
    while (n < GROUP_MAX && g->head != NULL) {
        members[n] = g->head;
        members[n]->state = IN_GROUP;
        queue_remove(g, members[n++]);
    }
    g->lanes_busy++;
    return n;
}

/* Publishes the outcome of a group to its followers and frees the lane. */
static void group_settle(struct group_commit *g, struct group_waiter *const *members, int n,
                         const bool *saved, int count)
{
    pthread_mutex_lock(&g->lock);
    g->lanes_busy--;
    for (int i = 1; i < n; i++)
        members[i]->state = saved[i] ? SAVED : RUN_ALONE;
    if (count > 0) {
        g->groups++;
        g->grouped += count;
    }
    pthread_cond_broadcast(&g->settled);
    pthread_mutex_unlock(&g->lock);
}

/* group_commit and group_commit_in_txn (detach not NULL). A detached item
 * is one like any other: it may be taken into a group while detach runs
 * (it is queued), and then waits for that group's outcome. */
static enum et_err group_run(struct group_commit *g, void *ctx, void *item, group_alone_fn alone,
                             group_save_fn save, group_detach_fn detach, struct problem *p)
{
    struct group_waiter self = {.item = item, .state = QUEUED};
    struct group_waiter *members[GROUP_MAX];
    void *items[GROUP_MAX];
    bool saved[GROUP_MAX] = {false};
    bool detached = false;
    enum et_err err = ET_OK;
    int n, count = 0;

    pthread_mutex_lock(&g->lock);
    *g->tail = &self;
    g->tail = &self.next;
    if (detach != NULL && g->lanes_busy >= lanes) {     /* it will wait */
        pthread_mutex_unlock(&g->lock);
        detach(ctx, item);
        detached = true;
        pthread_mutex_lock(&g->lock);
    }
    while (self.state == IN_GROUP || (self.state == QUEUED && g->lanes_busy >= lanes))
        pthread_cond_wait(&g->settled, &g->lock);
    if (self.state != QUEUED) {                   /* another thread's group settled it */
        pthread_mutex_unlock(&g->lock);
        return self.state == SAVED ? ET_OK : alone(ctx, item, p);
    }
    n = group_lead(g, &self, members);
    pthread_mutex_unlock(&g->lock);

    for (int i = 0; i < n; i++)
        items[i] = members[i]->item;
    if (n == 1) {                                 /* alone: the one-item path is cheaper */
        err = alone(ctx, item, p);
    } else {
        if (detach != NULL && !detached)          /* its connection saves the group */
            detach(ctx, item);
        count = save(ctx, items, n, saved);
    }
    group_settle(g, members, n, saved, count);
    if (n > 1 && !saved[0])
        err = alone(ctx, item, p);
    return err;
}

enum et_err group_commit(struct group_commit *g, void *ctx, void *item, group_alone_fn alone,
                         group_save_fn save, struct problem *p)
{
    return group_run(g, ctx, item, alone, save, NULL, p);
}

enum et_err group_commit_in_txn(struct group_commit *g, void *ctx, void *item, group_alone_fn alone,
                                group_save_fn save, group_detach_fn detach, struct problem *p)
{
    return group_run(g, ctx, item, alone, save, detach, p);
}

void group_commit_stats(struct group_commit *g, long *groups, long *grouped)
{
    pthread_mutex_lock(&g->lock);
    *groups = g->groups;
    *grouped = g->grouped;
    pthread_mutex_unlock(&g->lock);
}
