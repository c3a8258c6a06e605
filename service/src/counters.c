/*
 * counters.c - bounded fixed-window counters (design notes in counters.h).
 */
#include "counters.h"

#include <stdbool.h>
#include <string.h>
#include <sys/random.h>

static uint64_t sip_keys[4];        /* two SipHash keys of 128 bits, drawn once */
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void sip_keys_draw(void)
{
    size_t got = 0;
    unsigned char *p = (unsigned char *)sip_keys;

    while (got < sizeof sip_keys) {
        ssize_t n = getrandom(p + got, sizeof sip_keys - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                            \
    do {                                                                    \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);           \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                              \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                              \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);           \
    } while (0)

/* SipHash-2-4 of the domain (with its NUL) followed by the data: the keyed
 * hash that hash tables facing untrusted keys use (Redis, Python, Rust). */
static uint64_t siphash(uint64_t k0, uint64_t k1, const char *domain, const unsigned char *data,
                        size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    size_t dlen = strlen(domain) + 1, total = dlen + len, i = 0;
    uint64_t m = 0;
    unsigned shift = 0;

    for (; i < total; i++) {
        unsigned char c = i < dlen ? (unsigned char)domain[i] : data[i - dlen];
        m |= (uint64_t)c << shift;
        shift += 8;
        if (shift == 64) {
            v3 ^= m;
            SIPROUND;
            SIPROUND;
            v0 ^= m;
            m = 0;
            shift = 0;
        }
    }
    m |= (uint64_t)(total & 0xff) << 56;
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

struct counter_key counters_key(const char *domain, const void *data, size_t len)
{
    pthread_once(&sip_once, sip_keys_draw);
    return (struct counter_key){
        siphash(sip_keys[0], sip_keys[1], domain, data, len),
        siphash(sip_keys[2], sip_keys[3], domain, data, len),
    };
}

static bool key_equal(struct counter_key a, struct counter_key b)
{
    return a.hi == b.hi && a.lo == b.lo;
}

static size_t bucket_of(struct counter_key key)
{
    return (size_t)(key.lo & (COUNTERS_BUCKETS - 1));
}

static pthread_mutex_t *lock_of(struct counters *t, size_t bucket)
{
    return &t->locks[bucket % COUNTERS_STRIPES];
}

/* The key's live entry in its bucket, or NULL. Called under the bucket's lock. */
static struct counter_entry *entry_find(struct counter_entry *way, struct counter_key key,
                                        uint64_t window)
{
    for (size_t i = 0; i < COUNTERS_WAYS; i++)
        if (way[i].count > 0 && way[i].window == window && key_equal(way[i].key, key))
            return &way[i];
    return NULL;
}

/* Design note 3: a free or past entry, else the smallest count. */
static struct counter_entry *entry_victim(struct counter_entry *way, uint64_t window)
{
    struct counter_entry *victim = &way[0];

    for (size_t i = 0; i < COUNTERS_WAYS; i++) {
        if (way[i].count == 0 || way[i].window != window)
            return &way[i];
        if (way[i].count < victim->count)
            victim = &way[i];
    }
    return victim;
}

long long counters_add(struct counters *t, struct counter_key key, uint64_t window,
                       long long delta)
{
    size_t bucket = bucket_of(key);
    struct counter_entry *way = &t->entries[bucket * COUNTERS_WAYS], *e;
    long long count = 0;

    pthread_mutex_lock(lock_of(t, bucket));
    e = entry_find(way, key, window);
    if (e == NULL && delta > 0) {
        e = entry_victim(way, window);
        *e = (struct counter_entry){.key = key, .window = window, .count = 0};
    }
    if (e != NULL) {
        e->count = delta < 0 && -delta > e->count ? 0 : e->count + delta;
        count = e->count;
    }
    pthread_mutex_unlock(lock_of(t, bucket));
    return count;
}

long long counters_get(struct counters *t, struct counter_key key, uint64_t window)
{
    size_t bucket = bucket_of(key);
    struct counter_entry *e;
    long long count;

    pthread_mutex_lock(lock_of(t, bucket));
    e = entry_find(&t->entries[bucket * COUNTERS_WAYS], key, window);
    count = e ? e->count : 0;
    pthread_mutex_unlock(lock_of(t, bucket));
    return count;
}
