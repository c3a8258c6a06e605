/*
 * buf.c - growable buffer (see buf.h).
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invariant.h"

static bool buf_reserve(struct buf *b, size_t extra)
{
    size_t want, cap;
    char *p;

    /* Ownership: the bytes are the buffer's (data, cap) or nobody's (NULL, 0),
     * and a released buffer is empty; anything else is a struct copied or
     * written behind the buffer's back. */
    ET_ASSERT(b->data != NULL ? b->len < b->cap : b->len == 0 && b->cap == 0);
    if (b->failed)
        return false;
    if (extra > (size_t)-1 - b->len - 1)
        goto fail;
    want = b->len + extra + 1;
    if (want <= b->cap)
        return true;
    cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap = cap > ((size_t)-1) / 2 ? want : cap * 2;
    p = realloc(b->data, cap);
    if (p == NULL)
        goto fail;
    b->data = p;
    b->cap = cap;
    return true;
fail:
    b->failed = true;
    return false;
}

bool buf_grow_to(struct buf *b, size_t cap)
{
    char *p;

    if (b->failed)
        return false;
    if (cap <= b->cap)
        return true;
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void buf_append(struct buf *b, const void *bytes, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_putc(struct buf *b, char c)
{
    buf_append(b, &c, 1);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !buf_reserve(b, (size_t)n)) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *buf_release(struct buf *b, size_t *len)
{
    char *data;

    if (b->failed || !buf_reserve(b, 0)) {
        buf_free(b);
        return NULL;
    }
    data = b->data;
    data[b->len] = '\0';
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return data;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}
