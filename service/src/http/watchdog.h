/*
 * http/watchdog.h - the slow-client watchdog (slowloris).
 *
 * MHD's connection timeout only measures inactivity, so a client trickling
 * one byte a second would hold a connection forever. The watchdog gives every
 * request `limit` from its first byte (or the previous response) to arrive
 * completely, head and body, and shuts the socket of one that has not; MHD
 * then sees the end and closes it. http/server.c adds a connection when MHD
 * reports it started and removes it when MHD reports it closed (before MHD
 * closes the descriptor), under the same lock as the watchdog's scan, so the
 * watchdog never touches a reused descriptor.
 */
#ifndef ET_HTTP_WATCHDOG_H
#define ET_HTTP_WATCHDOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* One open connection. Owned by the watchdog from watchdog_add until
 * watchdog_remove; http/server.c keeps the pointer as MHD's socket context. */
struct watched_conn {
    struct watched_conn *prev, *next;
    int fd;
    atomic_ullong arriving_since_ns;    /* a request is arriving since; 0: none */
    bool linger;                        /* answered before its body: drain it at close */
};

struct watchdog;

/* Starts the watchdog's thread; NULL when it cannot (then no connection is
 * watched, and only MHD's idle timeout applies). */
struct watchdog *watchdog_start(uint64_t limit_ns);

/* Watches fd, whose first request is arriving from now; NULL (unwatched)
 * when wd is NULL or memory is short. */
struct watched_conn *watchdog_add(struct watchdog *wd, int fd);

/* Stops watching w and frees it. */
void watchdog_remove(struct watchdog *wd, struct watched_conn *w);

/* A request has fully arrived: nothing to time until the next one begins. */
void watchdog_arrived(struct watched_conn *w);

/* The next request on this connection may begin arriving now. */
void watchdog_next_request(struct watched_conn *w);

/* Stops the thread and frees wd, after every connection was removed; NULL is fine. */
void watchdog_stop(struct watchdog *wd);

#endif
