/*
 * store/group_commit.c - the leader/follower scheduler behind group commit
 * (store/registrations.c, design note 7; docs/adr/0008).
 *
 * Each registration joins one process-wide queue. While fewer than
 * GROUP_LANES groups are in flight, the oldest waiter leads: it takes up to
 * GROUP_MAX queued registrations and saves them with one statement on its own
 * connection. Nobody waits for a group to fill: at an idle service the queue
 * is empty and a registration runs alone, at once.
 *
 * A waiter's states (struct waiter.state, written under group.lock only):
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
 *     |                      (returns ET_OK)   (runs the one-row
 *     v                                          path itself)
 *   leads: saves the group, publishes every member's state, frees its lane,
 *   and runs alone itself if its own registration was not saved.
 *
 * A waiter blocks on group.settled while it is IN_GROUP, or QUEUED with
 * every lane busy; every settle broadcasts. A group of one uses the one-row
 * statement, which is cheaper.
 */
#include "store/group_commit.h"

#include <pthread.h>
#include <stddef.h>

#define GROUP_LANES 2                /* groups in flight at once */
#define GROUP_MAX 32                 /* registrations in one group */

enum waiter_state { QUEUED, IN_GROUP, SAVED, RUN_ALONE };

struct waiter {
    struct registration *r;
    struct waiter *next;
    enum waiter_state state;        /* written under group.lock */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t settled;         /* a group finished: states changed, a lane freed */
    struct waiter *head, **tail;    /* registrations waiting for a lane, oldest first */
    int lanes_busy;
    long groups, grouped;           /* for /metrics: groups saved, registrations in them */
} group = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, &group.head, 0, 0, 0};

/* Unlinks w from the queue (held under group.lock). */
static void queue_remove(struct waiter *w)
{
    struct waiter **at = &group.head;

    while (*at != w)
        at = &(*at)->next;
    *at = w->next;
    if (group.tail == &w->next)
        group.tail = at;
}

/* Takes self out of the queue with up to GROUP_MAX - 1 of the oldest waiters
 * behind it (held under group.lock). Returns the group's size; self is first. */
static int group_lead(struct waiter *self, struct waiter **members)
{
    int n = 0;

    queue_remove(self);
    members[n++] = self;
    while (n < GROUP_MAX && group.head != NULL) {
        members[n] = group.head;
        members[n]->state = IN_GROUP;
        queue_remove(members[n++]);
    }
    group.lanes_busy++;
    return n;
}

/* Publishes the outcome of a group to its followers and frees the lane. */
static void group_settle(struct waiter *const *members, int n, const bool *saved, int count)
{
    pthread_mutex_lock(&group.lock);
    group.lanes_busy--;
    for (int i = 1; i < n; i++)
        members[i]->state = saved[i] ? SAVED : RUN_ALONE;
    if (count > 0) {
        group.groups++;
        group.grouped += count;
    }
    pthread_cond_broadcast(&group.settled);
    pthread_mutex_unlock(&group.lock);
}

enum et_err group_commit(struct pg *db, struct registration *r, const char *tenant,
                         group_alone_fn alone, group_save_fn save, struct problem *p)
{
    struct waiter self = {.r = r, .state = QUEUED};
    struct waiter *members[GROUP_MAX];
    struct registration *regs[GROUP_MAX];
    bool saved[GROUP_MAX] = {false};
    enum et_err err = ET_OK;
    int n, count = 0;

    pthread_mutex_lock(&group.lock);
    *group.tail = &self;
    group.tail = &self.next;
    while (self.state == IN_GROUP || (self.state == QUEUED && group.lanes_busy == GROUP_LANES))
        pthread_cond_wait(&group.settled, &group.lock);
    if (self.state != QUEUED) {                   /* another thread's group settled it */
        pthread_mutex_unlock(&group.lock);
        return self.state == SAVED ? ET_OK : alone(db, r, tenant, p);
    }
    n = group_lead(&self, members);
    pthread_mutex_unlock(&group.lock);

    for (int i = 0; i < n; i++)
        regs[i] = members[i]->r;
    if (n == 1)                                   /* alone: the one-row statement is cheaper */
        err = alone(db, r, tenant, p);
    else
        count = save(db, regs, n, saved);
    group_settle(members, n, saved, count);
    if (n > 1 && !saved[0])
        err = alone(db, r, tenant, p);
    return err;
}

void group_commit_stats(long *groups, long *grouped)
{
    pthread_mutex_lock(&group.lock);
    *groups = group.groups;
    *grouped = group.grouped;
    pthread_mutex_unlock(&group.lock);
}
