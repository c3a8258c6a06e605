/*
 * http/linger.h - lingering close: after refusing a request whose body is
 * still arriving, read and discard a bounded amount before closing, so that
 * the client can read the refusal (as nginx's lingering_close does).
 */
#ifndef ET_HTTP_LINGER_H
#define ET_HTTP_LINGER_H

#include <stddef.h>

struct linger_pool;

/* Starts the thread that drains lingering sockets: at most max_sockets at
 * once, each for at most max_bytes and max_ms. NULL when it cannot start
 * (connections are then closed at once, as before). */
struct linger_pool *linger_start(size_t max_sockets, size_t max_bytes, unsigned max_ms);

/* Takes a duplicate of fd (the caller still closes its own descriptor),
 * ends our side of the stream after what was already sent (FIN), and
 * discards what the client sends until it closes, or a bound is reached.
 * Thread-safe; does nothing when the pool is NULL or full. */
void linger_adopt(struct linger_pool *p, int fd);

/* Stops the thread and closes every socket it still holds; NULL is fine. */
void linger_stop(struct linger_pool *p);

#endif
