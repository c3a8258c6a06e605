/*
 * http/linger.c - lingering close (see linger.h).
 *
 * Why. A client that sends a body without "Expect: 100-continue" (Python's
 * http.client, Node's fetch) writes all of it before it reads anything. When
 * the server refuses such a request on its headers (401, 413, 503...),
 * libmicrohttpd 0.9.75 sends the answer and closes the socket with the body
 * still unread (connection.c: a response queued on the first callback sets
 * discard_request, so keepalive_possible() answers MHD_CONN_MUST_CLOSE).
 * Closing a socket with unread data makes the kernel send a reset, and the
 * client, still writing, gets ECONNRESET instead of the answer that is
 * waiting in its receive buffer.
 *
 * How. MHD tells the application a connection is closing
 * (MHD_CONNECTION_NOTIFY_CLOSED, in MHD_cleanup_connections) BEFORE it takes
 * the socket out of its epoll set and closes it. http/server.c then hands the
 * descriptor here: we keep a dup(), so MHD's close() releases only its own
 * descriptor, and the kernel socket lives on. Our side is shut for writing
 * (the client sees the answer, then end of stream), and one thread discards
 * what the client still sends until it closes, max_bytes were read, or
 * max_ms passed; only then do we close. Nothing races MHD: it never sees the
 * socket again (its epoll registration was removed by descriptor before its
 * close, and the dup is in no epoll set).
 *
 * Bounds. At most max_sockets linger at once (beyond that a socket is closed
 * at once, as before), each for at most max_bytes and max_ms; one 64 KiB
 * scratch buffer serves them all. A lingering socket costs a descriptor and
 * a few bytes here, never a worker or a connection slot.
 */
#define _GNU_SOURCE     /* pipe2 */
#include "http/linger.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"

#define SCRATCH_BYTES (64 * 1024)

struct lingering {
    int fd;
    uint64_t deadline_ns;
    size_t drained;             /* bytes read and thrown away */
    bool done;
};

struct linger_pool {
    pthread_t thread;
    pthread_mutex_t lock;       /* guards n, and socks[i] for i >= the thread's snapshot */
    struct lingering *socks;    /* max entries; only the thread removes */
    struct pollfd *pfds;        /* max + 1: the wake pipe first */
    size_t n, max;
    size_t max_bytes;
    uint64_t max_ns;
    int wake[2];                /* adopt writes a byte: poll the new socket now */
    atomic_bool stop;
    char *scratch;
};

/* Reads and discards what is there; true when this socket is finished. */
static bool drain(struct linger_pool *p, struct lingering *l, uint64_t now)
{
    if (now >= l->deadline_ns)
        return true;
    for (;;) {
        ssize_t got = recv(l->fd, p->scratch, SCRATCH_BYTES, MSG_DONTWAIT);
        if (got > 0) {
            l->drained += (size_t)got;
            if (l->drained >= p->max_bytes)
                return true;
            continue;
        }
        if (got < 0 && errno == EINTR)
            continue;
        return got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    }
}

/* Drops finished sockets: under the lock, since adopt may be appending. */
static void sweep(struct linger_pool *p)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n;) {
        if (p->socks[i].done) {
            close(p->socks[i].fd);
            p->socks[i] = p->socks[--p->n];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&p->lock);
}

static void *linger_main(void *arg)
{
    struct linger_pool *p = arg;

    while (!atomic_load(&p->stop)) {
        uint64_t now = monotonic_ns(), next = now + 1000000000u;
        size_t n;

        pthread_mutex_lock(&p->lock);
        n = p->n;
        pthread_mutex_unlock(&p->lock);
        /* Entries below n are ours alone until the sweep: adopt only appends. */
        for (size_t i = 0; i < n; i++) {
            p->pfds[i + 1] = (struct pollfd){.fd = p->socks[i].fd, .events = POLLIN};
            if (p->socks[i].deadline_ns < next)
                next = p->socks[i].deadline_ns;
        }
        p->pfds[0] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        int ms = next > now ? (int)((next - now) / 1000000u) + 1 : 0;
        if (poll(p->pfds, n + 1, ms) < 0 && errno != EINTR)
            break;
        if (p->pfds[0].revents)
            while (read(p->wake[0], p->scratch, SCRATCH_BYTES) > 0)
                ;
        now = monotonic_ns();
        for (size_t i = 0; i < n; i++)
            if (p->pfds[i + 1].revents || now >= p->socks[i].deadline_ns)
                p->socks[i].done = drain(p, &p->socks[i], now);
        sweep(p);
    }
    return NULL;
}

/* Everything linger_start made, in any state it may have reached: the
 * thread, if it ran, has been joined. */
static void linger_free(struct linger_pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        close(p->socks[i].fd);
    if (p->wake[0] >= 0) {
        close(p->wake[0]);
        close(p->wake[1]);
    }
    pthread_mutex_destroy(&p->lock);
    free(p->socks);
    free(p->pfds);
    free(p->scratch);
    free(p);
}

struct linger_pool *linger_start(size_t max_sockets, size_t max_bytes, unsigned max_ms)
{
    struct linger_pool *p = calloc(1, sizeof *p);

    if (p == NULL)
        return NULL;
    p->max = max_sockets;
    p->max_bytes = max_bytes;
    p->max_ns = (uint64_t)max_ms * 1000000u;
    p->wake[0] = p->wake[1] = -1;
    p->socks = calloc(max_sockets, sizeof *p->socks);
    p->pfds = calloc(max_sockets + 1, sizeof *p->pfds);
    p->scratch = malloc(SCRATCH_BYTES);
    pthread_mutex_init(&p->lock, NULL);
    if (p->socks == NULL || p->pfds == NULL || p->scratch == NULL ||
        pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) != 0 ||
        pthread_create(&p->thread, NULL, linger_main, p) != 0) {
        linger_free(p);
        return NULL;
    }
    return p;
}

void linger_adopt(struct linger_pool *p, int fd)
{
    int dup_fd;
    bool kept = false;

    if (p == NULL || (dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
        return;
    /* FIN after the answer already queued: the client reads it, then the end. */
    shutdown(dup_fd, SHUT_WR);
    pthread_mutex_lock(&p->lock);
    if (p->n < p->max) {
        p->socks[p->n++] = (struct lingering){.fd = dup_fd, .deadline_ns = monotonic_ns() + p->max_ns};
        kept = true;
    }
    pthread_mutex_unlock(&p->lock);
    if (!kept)
        close(dup_fd);
    else if (write(p->wake[1], "", 1) < 0) {
        /* The pipe is full: the thread is awake already. */
    }
}

void linger_stop(struct linger_pool *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->stop, true);
    if (write(p->wake[1], "", 1) < 0) {
        /* full: it wakes anyway */
    }
    pthread_join(p->thread, NULL);
    linger_free(p);
}
