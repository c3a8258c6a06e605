/*
 * buf.h - a growable byte buffer, the one way EventTrack builds text.
 *
 * Allocation failure is sticky: after one, every append is a no-op and
 * buf.failed is set, so a builder checks once at the end instead of after
 * every call. Ownership: the buffer owns data until buf_release() hands it
 * to the caller (who frees it with free()).
 */
#ifndef ET_BUF_H
#define ET_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
    char *data;     /* always NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
    bool failed;
};

#define BUF_INIT {NULL, 0, 0, false}

void buf_append(struct buf *b, const void *bytes, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes room for exactly cap bytes in one step (no doubling), for a caller
 * that knows the final size and accounts for it; false (and failed) when out
 * of memory. Never shrinks. */
bool buf_grow_to(struct buf *b, size_t cap);
/* Returns the bytes (NUL-terminated, caller frees) and resets b; NULL if failed. */
char *buf_release(struct buf *b, size_t *len);
/* Frees the bytes; safe on an empty or already released buffer. */
void buf_free(struct buf *b);

#endif
