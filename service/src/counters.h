/*
 * counters.h - bounded, in-process, fixed-window counters.
 *
 * The admission path needs a few per-process tables that anonymous traffic
 * must not be able to grow: failed authentications per client address,
 * tokens known to be unknown (the negative cache), and the stand-ins for the
 * Redis counters when Redis refuses writes (the rate limit and the ingest
 * quota). All four are the same thing: a counter per key that starts again
 * at zero in each window. This module is that thing, with a fixed size.
 *
 * Design notes
 *  1. Fixed memory. A table is COUNTERS_BUCKETS buckets of COUNTERS_WAYS
 *     entries, allocated in static storage by its owner; nothing is ever
 *     allocated, so a flood of random keys can only replace entries, never
 *     add memory.
 *  2. Keys are 128-bit keyed hashes (SipHash-2-4 under two process-random
 *     keys), compared in full: two keys share a counter only with
 *     probability 2^-128, so the negative cache cannot refuse a valid key by
 *     accident, and a client cannot aim its keys at another's bucket.
 *  3. When a bucket is full, the new key takes the entry of a past window, or
 *     else the one with the smallest count. A flood can therefore make the
 *     table forget a quiet key (its count starts again: more lenient, never
 *     stricter), but it keeps the heavy hitters it is meant to stop.
 *  4. The caller names the window (e.g. monotonic seconds / window length,
 *     or the UTC day): an entry whose window is not the current one counts
 *     zero. Locks are striped by bucket, held for a few loads and stores.
 */
#ifndef ET_COUNTERS_H
#define ET_COUNTERS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define COUNTERS_BUCKETS 4096       /* per table; a power of two */
#define COUNTERS_WAYS 4
#define COUNTERS_STRIPES 16

struct counter_key {
    uint64_t hi, lo;
};

struct counter_entry {
    struct counter_key key;
    uint64_t window;                /* the window the count belongs to */
    long long count;                /* 0: a free entry */
};

struct counters {
    pthread_mutex_t locks[COUNTERS_STRIPES];
    struct counter_entry entries[COUNTERS_BUCKETS * COUNTERS_WAYS];
};

/* A static table: `static struct counters t = COUNTERS_INIT;` (~256 KiB of
 * zeroed storage; pages are only resident once touched). */
#define COUNTERS_LOCK_ PTHREAD_MUTEX_INITIALIZER
#define COUNTERS_INIT {.locks = {COUNTERS_LOCK_, COUNTERS_LOCK_, COUNTERS_LOCK_, COUNTERS_LOCK_, \
                                 COUNTERS_LOCK_, COUNTERS_LOCK_, COUNTERS_LOCK_, COUNTERS_LOCK_, \
                                 COUNTERS_LOCK_, COUNTERS_LOCK_, COUNTERS_LOCK_, COUNTERS_LOCK_, \
                                 COUNTERS_LOCK_, COUNTERS_LOCK_, COUNTERS_LOCK_, COUNTERS_LOCK_}}

/* The key of `len` bytes of `data` under `domain` (a short constant naming
 * the table's use, so equal bytes in two uses are different keys). */
struct counter_key counters_key(const char *domain, const void *data, size_t len);

/* Adds `delta` (may be negative; the count never goes below 0) to the key's
 * count in `window` and returns the count after it. */
long long counters_add(struct counters *t, struct counter_key key, uint64_t window,
                       long long delta);

/* The key's count in `window` (0 when absent or from another window). */
long long counters_get(struct counters *t, struct counter_key key, uint64_t window);

#endif
