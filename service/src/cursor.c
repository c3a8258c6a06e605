/*
 * cursor.c - opaque, signed keyset cursors (see cursor.h, docs/adr/0015).
 *
 * Layout before encoding: "c1|" key "|" id, then 16 bytes of
 * HMAC-SHA-256(secret, "eventtrack-cursor|" list "|" scope "|" filter "|"
 * payload). The list binding is signed but not carried: a cursor never has
 * to name its list for the server to check it, and cannot be made to name
 * another. Encoded base64url without padding (RFC 4648 section 5), so it is
 * safe in a query string as it is.
 *
 * SHA-256 is written out here (about 60 lines, FIPS 180-4) rather than
 * linking libcrypto for one function: the service's dependencies stay the
 * four it documents. It is checked against the standard's test vectors and
 * RFC 4231's HMAC vectors in tests/unit/test_cursor.c.
 */
#include "cursor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAC_BYTES 16                   /* 128 bits: forging one takes 2^128 tries */
#define PAYLOAD_MAX 300
#define BINDING_MAX 2048

static const uint32_t k256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

struct sha256 {
    uint32_t h[8];
    uint8_t block[64];
    size_t used;                       /* bytes in block */
    uint64_t total;                    /* bytes hashed */
};

static uint32_t ror(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_block(struct sha256 *c, const uint8_t *p)
{
    uint32_t w[64], v[8];

    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, c->h, sizeof v);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = v[7] + (ror(v[4], 6) ^ ror(v[4], 11) ^ ror(v[4], 25)) +
                      ((v[4] & v[5]) ^ (~v[4] & v[6])) + k256[i] + w[i];
        uint32_t t2 = (ror(v[0], 2) ^ ror(v[0], 13) ^ ror(v[0], 22)) +
                      ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        memmove(v + 1, v, 7 * sizeof v[0]);
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        c->h[i] += v[i];
}

static void sha256_init(struct sha256 *c)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->used = 0;
    c->total = 0;
}

static void sha256_update(struct sha256 *c, const void *data, size_t len)
{
    const uint8_t *p = data;

    c->total += len;
    while (len > 0) {
        size_t n = 64 - c->used < len ? 64 - c->used : len;
        memcpy(c->block + c->used, p, n);
        c->used += n, p += n, len -= n;
        if (c->used == 64) {
            sha256_block(c, c->block);
            c->used = 0;
        }
    }
}

static void sha256_final(struct sha256 *c, uint8_t out[32])
{
    uint64_t bits = c->total * 8;
    uint8_t pad = 0x80, zero = 0, len[8];

    sha256_update(c, &pad, 1);
    while (c->used != 56)
        sha256_update(c, &zero, 1);
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(c->h[i] >> (24 - 8 * j));
}

void cursor_sha256(const void *data, size_t len, uint8_t out[32])
{
    struct sha256 c;

    sha256_init(&c);
    sha256_update(&c, data, len);
    sha256_final(&c, out);
}

void cursor_hmac(const char *key, const void *msg, size_t len, uint8_t out[32])
{
    uint8_t k[64] = {0}, pad[64], inner[32];
    size_t klen = strlen(key);
    struct sha256 c;

    if (klen > 64)
        cursor_sha256(key, klen, k);
    else
        memcpy(k, key, klen);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    sha256_init(&c);
    sha256_update(&c, pad, 64);
    sha256_update(&c, msg, len);
    sha256_final(&c, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    sha256_init(&c);
    sha256_update(&c, pad, 64);
    sha256_update(&c, inner, 32);
    sha256_final(&c, out);
}

/* The MAC of payload on list s; false if the binding does not fit. */
static bool cursor_mac(const char *secret, const struct cursor_scope *s, const char *payload,
                       size_t len, uint8_t mac[32])
{
    char binding[BINDING_MAX];
    int n = snprintf(binding, sizeof binding, "eventtrack-cursor|%s|%s|%s|", s->list, s->scope,
                     s->filter);

    if (n < 0 || (size_t)n + len >= sizeof binding)
        return false;
    memcpy(binding + n, payload, len);
    cursor_hmac(secret, binding, (size_t)n + len, mac);
    return true;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_value(char ch)
{
    const char *at = ch ? strchr(b64url, ch) : NULL;
    return at ? (int)(at - b64url) : -1;
}

bool cursor_encode(const char *secret, const struct cursor_scope *s, const char *key,
                   const char *id, char *out)
{
    uint8_t raw[PAYLOAD_MAX + MAC_BYTES], mac[32];
    int n = snprintf((char *)raw, PAYLOAD_MAX, "c1|%s|%s", key, id);
    size_t len, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (n < 0 || n >= PAYLOAD_MAX || strlen(key) > CURSOR_KEY_MAX ||
        !cursor_mac(secret, s, (const char *)raw, (size_t)n, mac))
        return false;
    memcpy(raw + n, mac, MAC_BYTES);
    len = (size_t)n + MAC_BYTES;
    if ((len * 4 + 2) / 3 > CURSOR_TEXT_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        acc = acc << 8 | raw[i];
        for (bits += 8; bits >= 6; bits -= 6)
            out[o++] = b64url[(acc >> (bits - 6)) & 63];
    }
    if (bits > 0)
        out[o++] = b64url[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return true;
}

/* base64url without padding into raw; false for any other byte, or for
 * leftover bits that are not zero (one cursor, one spelling). */
static bool b64_decode(const char *text, uint8_t *raw, size_t size, size_t *len)
{
    uint32_t acc = 0;
    int bits = 0;

    *len = 0;
    for (const char *c = text; *c; c++) {
        int v = b64_value(*c);
        if (v < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            if (*len == size)
                return false;
            raw[(*len)++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    return bits < 6 && (acc & ((1u << bits) - 1)) == 0;
}

bool cursor_decode(const char *secret, const struct cursor_scope *s, const char *text, char *key,
                   char *id, size_t id_size)
{
    uint8_t raw[PAYLOAD_MAX + MAC_BYTES + 1], mac[32], diff = 0;
    char payload[PAYLOAD_MAX + 1];
    size_t len, plen;
    char *bar;

    if (strlen(text) > CURSOR_TEXT_MAX || !b64_decode(text, raw, sizeof raw - 1, &len) ||
        len <= MAC_BYTES + 3)
        return false;
    plen = len - MAC_BYTES;
    memcpy(payload, raw, plen);
    payload[plen] = '\0';
    if (memchr(payload, '\0', plen) != NULL || !cursor_mac(secret, s, payload, plen, mac))
        return false;
    for (size_t i = 0; i < MAC_BYTES; i++)          /* constant time: no oracle on the MAC */
        diff |= (uint8_t)(mac[i] ^ raw[plen + i]);
    if (diff != 0 || strncmp(payload, "c1|", 3) != 0 || (bar = strchr(payload + 3, '|')) == NULL)
        return false;
    *bar = '\0';
    if (strlen(payload + 3) > CURSOR_KEY_MAX || strlen(bar + 1) >= id_size || bar[1] == '\0' ||
        payload[3] == '\0')
        return false;
    strcpy(key, payload + 3);
    strcpy(id, bar + 1);
    return true;
}
