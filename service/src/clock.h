/*
 * clock.h - the monotonic clock, for timeouts and cache ages (never wall time:
 * a clock step must not expire or resurrect anything).
 */
#ifndef ET_CLOCK_H
#define ET_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The same clock in microseconds, signed: deadlines are compared by subtraction. */
static inline int64_t monotonic_us(void)
{
    return (int64_t)(monotonic_ns() / 1000u);
}

#endif
