/*
 * store/busy.h - the back-off of a statement that found every credit bucket
 * of an organization locked and changed nothing: a registration
 * (store/registrations.c, design note 6) or a cancellation (store/cancel.c,
 * design note 3). Such a statement holds no lock between attempts, so it is
 * simply run again: at once BUSY_AT_ONCE times, then after pauses growing by
 * BUSY_PAUSE_STEP_US up to BUSY_PAUSE_MAX_US, for at most BUSY_BUDGET_MS in
 * all; past that the organization is saturated and the answer is 503 with
 * Retry-After. Only store/ includes this header.
 */
#ifndef ET_STORE_BUSY_H
#define ET_STORE_BUSY_H

#include <stdbool.h>
#include <time.h>

#define BUSY_BUDGET_MS 2000
#define BUSY_AT_ONCE 2
#define BUSY_PAUSE_STEP_US 100
#define BUSY_PAUSE_MAX_US 1000
/* Each attempt is charged this on top of its pause (the statement's own time,
 * roughly), so the budget ends even when no pause is taken. */
#define BUSY_ATTEMPT_COST_US 100

/* Before attempt `attempt` + 1: false once *waited_us has spent the budget;
 * else pauses as the schedule says and charges the pause to *waited_us. */
static inline bool busy_backoff(int attempt, long long *waited_us)
{
    long pause_us = (long)(attempt - BUSY_AT_ONCE + 1) * BUSY_PAUSE_STEP_US;

    if (*waited_us >= BUSY_BUDGET_MS * 1000LL)
        return false;
    if (attempt < BUSY_AT_ONCE)
        pause_us = 0;
    else if (pause_us > BUSY_PAUSE_MAX_US)
        pause_us = BUSY_PAUSE_MAX_US;
    if (pause_us > 0)
        nanosleep(&(struct timespec){0, pause_us * 1000}, NULL);
    *waited_us += pause_us + BUSY_ATTEMPT_COST_US;
    return true;
}

#endif
