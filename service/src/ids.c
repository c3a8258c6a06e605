/*
 * ids.c - id syntax and generation (see ids.h).
 *
 * Random bits come from getrandom(2): ids double as unguessable references
 * for clients that let the server choose them.
 */
#include "ids.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

bool id_valid(const char *s, size_t len)
{
    if (len == 0 || len > ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

static void random_bytes(uint8_t *r, size_t size)
{
    size_t got = 0;

    while (got < size) {
        ssize_t n = getrandom(r + got, size - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
}

void secret_generate(char out[69])
{
    uint8_t r[32];

    random_bytes(r, sizeof r);
    memcpy(out, "etk_", 4);
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 4 + 2 * i, 3, "%02x", r[i]);
}

void id_generate(char out[ID_MAX + 1], const char *prefix)
{
    uint8_t r[16];

    random_bytes(r, sizeof r);
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);   /* version 4 */
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
    snprintf(out, ID_MAX + 1,
             "%s%s%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             prefix ? prefix : "", prefix ? "_" : "",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7],
             r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}
