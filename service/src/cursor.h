/*
 * cursor.h - opaque, signed keyset cursors for the lists (docs/adr/0015).
 *
 * A cursor carries the sort key and id of the last row of a page, and an
 * HMAC-SHA-256 (truncated to 128 bits) over them AND the list it belongs to:
 * the list's name, the resource it lists (organization, event, session) and
 * its filter. So a cursor decodes only on the very list that issued it; a
 * malformed, tampered or foreign one is refused (400), never read as a
 * position. The key is the server's admin key: rotating it invalidates the
 * cursors in flight, which clients answer by starting again from page one.
 */
#ifndef ET_CURSOR_H
#define ET_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CURSOR_TEXT_MAX 400            /* encoded length, '\0' excluded */
#define CURSOR_KEY_MAX 63              /* the sort key's text (a timestamp, a number) */

/* Which list a cursor belongs to. `filter` is "" when the list has none. */
struct cursor_scope {
    const char *list;                  /* "events", "sessions", ... */
    const char *scope;                 /* the listed resource's id */
    const char *filter;                /* the filters, as one canonical string */
};

/* Writes the cursor of (key, id) into out (CURSOR_TEXT_MAX + 1 bytes);
 * false if key or id are too long. */
bool cursor_encode(const char *secret, const struct cursor_scope *s, const char *key,
                   const char *id, char *out);
/* The (key, id) of `text` if it is a cursor this server issued for `s`;
 * false otherwise. key: CURSOR_KEY_MAX + 1 bytes, id: id_size bytes. */
bool cursor_decode(const char *secret, const struct cursor_scope *s, const char *text, char *key,
                   char *id, size_t id_size);

/* SHA-256 and HMAC-SHA-256 (FIPS 180-4, RFC 2104), exposed for the unit tests. */
void cursor_sha256(const void *data, size_t len, uint8_t out[32]);
void cursor_hmac(const char *key, const void *msg, size_t len, uint8_t out[32]);

#endif
