/*
 * http/acceptor.c - the listen socket, and the one thread that accepts from
 * it, counts open connections and hands each to libmicrohttpd, or refuses it.
 *
 * Why the server accepts and not MHD: server.c, "Accepting" (ADR 0008).
 *
 * Why the limit is enforced here and not by MHD (ADR 0009). In libmicrohttpd
 * 0.9.75 (Debian's) MHD_add_connection only queues a connection for its
 * worker; the worker counts it later, in new_connection_process_, and when
 * that worker is full by then it takes this branch (src/microhttpd/daemon.c):
 *
 *     MHD_mutex_lock_chk_ (&daemon->cleanup_connection_mutex);
 *     // Firm check under lock.
 *     if (daemon->connections >= daemon->connection_limit)
 *     { // Connections limit
 *       MHD_DLOG (daemon, _ ("Server reached connection limit. "
 *                            "Closing inbound connection.\n"));
 *       eno = ENFILE;
 *     }
 *
 * and never unlocks the mutex (upstream fixed it in 1.0.0, commit 67061d5c,
 * "fixed missing mutex unlock in error handling path"). The worker's next
 * MHD_cleanup_connections locks it again and blocks for good: its
 * connections are never served or closed, every socket queued to it leaks,
 * and MHD_stop_daemon never returns. A burst of connects fills the queue
 * faster than workers drain it, so a flood over the limit always got there.
 *
 * So MHD is given a limit it cannot reach (connection_limit + 1 on every
 * worker) and the limit is kept here. `open` counts a connection from accept
 * until MHD reports its close (acceptor_closed, called before MHD closes the
 * descriptor). Only this thread increments it, so "check, then add" cannot
 * overshoot; a worker's own count never exceeds `open`, because a worker
 * reports closes and counts new connections on the same thread.
 *
 * Over the limit, a connection gets a canned 503 problem (Retry-After: 1,
 * Connection: close), written without blocking, and is closed at once: the
 * excess is refused, everything under the limit is served, no descriptor is
 * held, and the client sees an answer or an end, never a hang.
 *
 * The per-IP limit stays MHD's: it is checked synchronously inside
 * MHD_add_connection (new_connection_prepare_, on this thread), which closes
 * the socket and returns MHD_NO before any worker sees the connection.
 *
 * Known gap: if the worker cannot allocate a connection's memory pool
 * (malloc failing), MHD closes it without a notification and `open` keeps
 * one place too many until the process restarts.
 */
#define _GNU_SOURCE     /* accept4: accepted sockets non-blocking and close-on-exec in one call */
#include "http/acceptor.h"

#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define REFUSAL_LOG_INTERVAL_NS (10ull * 1000000000u)

static const char busy_body[] =
    "{\"type\":\"/problems/too-many-connections\",\"title\":\"Too many connections\",\"status\":503,"
    "\"detail\":\"the service holds as many connections as it is configured for; retry shortly\"}\n";

struct acceptor {
    int listen_fd;
    struct MHD_Daemon *daemon;
    unsigned limit;
    atomic_uint open;               /* handed to MHD and not yet reported closed */
    pthread_t thread;
    bool running;
    atomic_bool stopping;
    char busy[512];                 /* the whole canned 503 response */
    size_t busy_len;
    /* refusals, logged at most once per REFUSAL_LOG_INTERVAL_NS (this thread only) */
    unsigned long long refused;
    uint64_t refusal_logged_ns;
};

/* A bound, listening TCP socket for addr; -1 with errno on failure. */
static int listen_on(const struct sockaddr_storage *addr)
{
    socklen_t len = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;

    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        (addr->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) ||
        bind(fd, (const struct sockaddr *)addr, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

struct acceptor *acceptor_listen(const struct sockaddr_storage *addr, unsigned connection_limit,
                                 unsigned *port)
{
    struct acceptor *a = calloc(1, sizeof *a);
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    int saved;

    if (a == NULL)
        return NULL;
    a->limit = connection_limit;
    a->busy_len = (size_t)snprintf(a->busy, sizeof a->busy,
                                   "HTTP/1.1 503 Service Unavailable\r\n"
                                   "Content-Type: application/problem+json\r\n"
                                   "Content-Length: %zu\r\n"
                                   "Retry-After: 1\r\n"
                                   "Connection: close\r\n"
                                   "X-Content-Type-Options: nosniff\r\n\r\n%s",
                                   sizeof busy_body - 1, busy_body);
    assert(a->busy_len < sizeof a->busy);
    if ((a->listen_fd = listen_on(addr)) < 0 ||
        getsockname(a->listen_fd, (struct sockaddr *)&bound, &len) != 0) {
        saved = errno;
        if (a->listen_fd >= 0)
            close(a->listen_fd);
        free(a);
        errno = saved;
        return NULL;
    }
    *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
    return a;
}

/* Over the limit: answer 503 and close, without ever blocking this thread.
 * What the client already sent is read first, because closing a socket with
 * unread data sends a reset, which can destroy the 503 before it is read. */
static void refuse(struct acceptor *a, int fd)
{
    char sink[4096];
    uint64_t now = monotonic_ns();

    for (int i = 0; i < 4 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
        ;
    (void)send(fd, a->busy, a->busy_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(fd, SHUT_WR);
    close(fd);
    /* One line per interval, not one per refusal: a flood must not become a log flood. */
    a->refused++;
    if (a->refusal_logged_ns == 0 || now - a->refusal_logged_ns >= REFUSAL_LOG_INTERVAL_NS) {
        et_log(LL_WARN, "http", "connection_limit (%u) reached: %llu connection(s) answered 503"
                                " and closed since the last report", a->limit, a->refused);
        a->refused = 0;
        a->refusal_logged_ns = now;
    }
}

static void admit(struct acceptor *a, int fd, const struct sockaddr_storage *peer, socklen_t len)
{
    if (atomic_load(&a->open) >= a->limit) {
        refuse(a, fd);
        return;
    }
    atomic_fetch_add(&a->open, 1);
    /* MHD_NO: refused synchronously (per-IP limit, out of memory); MHD closed
     * the socket and will never report it, so its place is given back here. */
    if (MHD_add_connection(a->daemon, fd, (const struct sockaddr *)peer, len) != MHD_YES)
        acceptor_closed(a);
}

/* Accepts until acceptor_stop shuts the listen socket down. */
static void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;

    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(a->listen_fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            admit(a, fd, &peer, len);
            continue;
        }
        if (atomic_load(&a->stopping))
            return NULL;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);   /* let descriptors free up */
        else if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN && errno != EPROTO)
            return NULL;
    }
}

bool acceptor_start(struct acceptor *a, struct MHD_Daemon *daemon)
{
    a->daemon = daemon;
    a->running = pthread_create(&a->thread, NULL, acceptor_main, a) == 0;
    return a->running;
}

void acceptor_closed(struct acceptor *a)
{
    unsigned was = atomic_fetch_sub(&a->open, 1);
    assert(was > 0);
    (void)was;
}

void acceptor_stop(struct acceptor *a)
{
    if (a == NULL || a->listen_fd < 0)
        return;
    atomic_store(&a->stopping, true);
    shutdown(a->listen_fd, SHUT_RDWR);      /* wakes the blocked accept */
    if (a->running)
        pthread_join(a->thread, NULL);
    a->running = false;
    if (a->refused > 0)
        et_log(LL_WARN, "http", "connection_limit (%u): %llu more connection(s) answered 503"
                                " and closed", a->limit, a->refused);
    close(a->listen_fd);
    a->listen_fd = -1;
}

void acceptor_free(struct acceptor *a)
{
    if (a == NULL)
        return;
    acceptor_stop(a);
    free(a);
}
