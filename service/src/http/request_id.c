/*
 * http/request_id.c - accepting or making a request id (see request_id.h).
 *
 * A fresh id costs an atomic increment and 32 digit conversions: no system
 * call per request (getrandom runs once per process), because every request
 * without a client id needs one.
 */
#include "http/request_id.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static pthread_once_t prefix_once = PTHREAD_ONCE_INIT;
static uint64_t prefix;              /* written once under prefix_once, read-only after */
static atomic_uint_fast64_t counter;

/* Random, so ids of two processes (or of one after a restart) do not collide;
 * the clock stands in should getrandom fail. */
static void prefix_init(void)
{
    if (getrandom(&prefix, sizeof prefix, 0) != (ssize_t)sizeof prefix)
        prefix = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15u;
}

static void put_hex(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = digits[v & 0xf];
}

void request_id_assign(char out[ID_MAX + 1], const char *header_value)
{
    size_t n = header_value ? strnlen(header_value, ID_MAX + 1) : 0;

    if (id_valid(header_value, n)) {
        memcpy(out, header_value, n);
        out[n] = '\0';
        return;
    }
    pthread_once(&prefix_once, prefix_init);
    put_hex(out, prefix);
    out[16] = '-';
    put_hex(out + 17, atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed));
    out[33] = '\0';
}
