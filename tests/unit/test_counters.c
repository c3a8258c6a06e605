/*
 * test_counters.c - the bounded fixed-window counters behind the admission
 * path (per-address failures, the negative cache, the in-process rate limit
 * and quota): counts per key and window, keys kept apart by domain, a
 * give-back never below zero, and a flood of keys that replaces entries but
 * keeps the heavy hitter (design notes in counters.h).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "counters.h"

static struct counters table = COUNTERS_INIT;

static struct counter_key key(const char *domain, const char *s)
{
    return counters_key(domain, s, strlen(s));
}

Test(counters, counts_per_key_and_window)
{
    struct counter_key a = key("t1", "alpha"), b = key("t1", "beta");

    cr_assert_eq(counters_get(&table, a, 7), 0);
    cr_assert_eq(counters_add(&table, a, 7, 1), 1);
    cr_assert_eq(counters_add(&table, a, 7, 2), 3);
    cr_assert_eq(counters_get(&table, a, 7), 3);
    cr_assert_eq(counters_get(&table, b, 7), 0, "another key has its own count");
    cr_assert_eq(counters_get(&table, a, 8), 0, "a new window starts at zero");
    cr_assert_eq(counters_add(&table, a, 8, 1), 1);
}

Test(counters, domains_separate_equal_bytes)
{
    struct counter_key x = key("quota", "org_1"), y = key("ratelimit", "org_1");

    cr_assert(x.hi != y.hi || x.lo != y.lo);
    cr_assert_eq(counters_add(&table, x, 1, 5), 5);
    cr_assert_eq(counters_get(&table, y, 1), 0);
}

Test(counters, give_back_stops_at_zero_and_never_creates)
{
    struct counter_key k = key("t2", "gamma"), absent = key("t2", "delta");

    cr_assert_eq(counters_add(&table, k, 3, 2), 2);
    cr_assert_eq(counters_add(&table, k, 3, -5), 0);
    cr_assert_eq(counters_add(&table, absent, 3, -1), 0);
    cr_assert_eq(counters_get(&table, absent, 3), 0);
}

/* 8 x the table's capacity in distinct keys: memory cannot grow (it is
 * static), and the one key with a high count survives the flood. */
Test(counters, a_flood_of_keys_keeps_the_heavy_hitter)
{
    static struct counters t = COUNTERS_INIT;
    struct counter_key heavy = key("t3", "attacker");
    char name[32];

    cr_assert_eq(counters_add(&t, heavy, 1, 1000), 1000);
    for (int i = 0; i < 8 * COUNTERS_BUCKETS * COUNTERS_WAYS; i++) {
        snprintf(name, sizeof name, "random-%d", i);
        counters_add(&t, key("t3", name), 1, 1);
    }
    cr_assert_eq(counters_get(&t, heavy, 1), 1000);
}
