/*
 * tests/load/devices.c - attendee devices: many keep-alive connections, each
 * polling one URL at a steady, slow rate (issue 16, point 3).
 *
 * Why not wrk -c10000: wrk sends the next request the moment an answer
 * arrives, so 10,000 connections become a flood whose latency measures the
 * queue wrk builds, not what a device sees. A device sends one GET every
 * few seconds; 10,000 of them every 5 s are 2,000 requests/s spread over
 * the connections. This client holds that shape: one thread, one epoll, a
 * timing wheel of 1 ms slots, each connection's next poll due one interval
 * (with +-10% jitter, so devices never fall into step) after its previous one
 * was sent. The first poll of each connection is spread over the first
 * interval, as devices that wake at random times would be.
 *
 * Usage: et_devices HOST PORT PATH CONNECTIONS SECONDS INTERVAL_MS
 * Connects CONNECTIONS sockets (at most 256 connecting at once: a burst of
 * SYNs beyond the listen backlog would measure the backlog), polls for
 * SECONDS after the last one connected, then stops sending, waits up to 5 s
 * for answers still due, and prints one line:
 *   DEVICES_RESULT connections=N connected=N requests=N errors=N
 *   connect_errors=N p50_us=N p99_us=N max_us=N rps=N.N
 * errors counts non-200 answers, closed or reset connections, malformed
 * answers and answers not complete within 5 s. It exits 0 whatever it
 * measured (the caller judges), 2 on bad arguments or setup failure.
 * Source ports come from the kernel's ephemeral range; the soft descriptor
 * limit is raised to the hard one. Loopback or any IPv4 address.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTING 256
#define ANSWER_TIMEOUT_MS 5000
#define DRAIN_MS 5000
#define BUF_SIZE 8192          /* a leaderboard answer is ~1 KB; more is an error */

enum state { IDLE, CONNECTING, WAITING, READING, DEAD };

struct conn {
    int fd;
    enum state state;
    uint64_t sent_ms;         /* when the pending request was sent */
    uint64_t sent_us;
    uint64_t due_ms;          /* next poll (IDLE) or answer deadline (WAITING/READING) */
    int prev, next;           /* neighbours in its wheel slot, -1: none */
    int slot;                 /* its wheel slot, -1: not in the wheel */
    size_t got;               /* bytes of the answer so far */
    char buf[BUF_SIZE];
};

static struct conn *conns;
static int *wheel;            /* slot -> first connection, by due_ms % wheel_size */
static size_t wheel_size;
static uint64_t walked;       /* the wheel has been walked up to this ms */
static uint64_t *latencies;   /* microseconds, one per answered request */
static size_t nlat, caplat;
static unsigned long long requests, errors, connect_errors;
static struct sockaddr_in target;
static char request[1024];
static size_t request_len;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t now_ms(void)
{
    return now_us() / 1000u;
}

static void wheel_remove(int i)
{
    struct conn *c = &conns[i];

    if (c->slot < 0)
        return;
    if (c->prev >= 0)
        conns[c->prev].next = c->next;
    else
        wheel[c->slot] = c->next;
    if (c->next >= 0)
        conns[c->next].prev = c->prev;
    c->slot = c->prev = c->next = -1;
}

/* A connection is in at most one slot: rescheduling moves it. The wheel
 * spans more than any due time is ahead, so a slot never holds a
 * connection due a whole turn later. */
static void wheel_put(int i, uint64_t due)
{
    struct conn *c = &conns[i];
    int slot = (int)(due % wheel_size);

    wheel_remove(i);
    if (due <= walked)
        due = walked + 1;                         /* late already: the next turn of the walker */
    c->due_ms = due;
    c->slot = slot;
    c->prev = -1;
    c->next = wheel[slot];
    if (c->next >= 0)
        conns[c->next].prev = i;
    wheel[slot] = i;
}

static void record(uint64_t us)
{
    if (nlat == caplat) {
        size_t cap = caplat ? caplat * 2 : 65536;
        uint64_t *p = realloc(latencies, cap * sizeof *p);
        if (p == NULL)
            return;                               /* out of memory: the sample is lost, not the run */
        latencies = p;
        caplat = cap;
    }
    latencies[nlat++] = us;
}

static void conn_close(int ep, int i)
{
    wheel_remove(i);
    if (conns[i].fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, conns[i].fd, NULL);
        close(conns[i].fd);
    }
    conns[i].fd = -1;
    conns[i].state = DEAD;
}

static int conn_open(int ep, int i)
{
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&target, sizeof target) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        return -1;
    }
    conns[i].fd = fd;
    conns[i].state = CONNECTING;
    return 0;
}

/* One error: the connection is closed and not reopened (a device that lost
 * its connection is a failure to report, not to hide behind a reconnect). */
static void conn_fail(int ep, int i)
{
    errors++;
    conn_close(ep, i);
}

static void conn_send(int ep, int i)
{
    struct conn *c = &conns[i];
    ssize_t n = send(c->fd, request, request_len, MSG_NOSIGNAL);

    if (n != (ssize_t)request_len) {              /* a 100-byte request fits any socket buffer */
        conn_fail(ep, i);
        return;
    }
    requests++;
    c->sent_us = now_us();
    c->sent_ms = c->sent_us / 1000u;
    c->got = 0;
    c->state = WAITING;
    wheel_put(i, c->sent_ms + ANSWER_TIMEOUT_MS);
}

/* 1: a whole answer is in buf (status 200 sets *ok), 0: more to read, -1: malformed. */
static int answer_complete(const struct conn *c, int *ok)
{
    const char *end = memmem(c->buf, c->got, "\r\n\r\n", 4), *cl;
    size_t head, length;

    if (end == NULL)
        return c->got >= BUF_SIZE ? -1 : 0;
    head = (size_t)(end - c->buf) + 4;
    cl = memmem(c->buf, head, "\r\nContent-Length:", 17);
    if (cl == NULL)
        cl = memmem(c->buf, head, "\r\ncontent-length:", 17);
    if (cl == NULL)
        return -1;                                /* the service always sends a length */
    length = strtoul(cl + 17, NULL, 10);
    if (head + length > BUF_SIZE)
        return -1;
    if (c->got < head + length)
        return 0;
    if (c->got > head + length)
        return -1;                                /* bytes nobody asked for */
    *ok = c->got >= 12 && memcmp(c->buf + 9, "200", 3) == 0;
    return 1;
}

static void interval_next(int i, uint64_t interval_ms)
{
    uint64_t jitter = interval_ms / 5, due = conns[i].sent_ms + interval_ms - jitter / 2;

    if (jitter > 0)
        due += (uint64_t)rand() % jitter;
    conns[i].state = IDLE;
    wheel_put(i, due);
}

static void on_readable(int ep, int i, uint64_t interval_ms)
{
    struct conn *c = &conns[i];
    int ok = 0, r;

    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->got, BUF_SIZE - c->got, 0);
        if (n > 0) {
            c->got += (size_t)n;
            if (c->got < BUF_SIZE)
                continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            conn_fail(ep, i);                     /* closed or reset by the service */
            return;
        }
        break;
    }
    if (c->state != WAITING && c->state != READING) {
        if (c->got > 0)
            conn_fail(ep, i);                     /* an answer to nothing */
        c->got = 0;
        return;
    }
    c->state = READING;
    if ((r = answer_complete(c, &ok)) == 0)
        return;
    if (r < 0 || !ok) {
        conn_fail(ep, i);
        return;
    }
    record(now_us() - c->sent_us);
    interval_next(i, interval_ms);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void fd_limit_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Walks the wheel from *walked to now: polls that are due are sent, answers
 * overdue are errors. */
static void wheel_advance(int ep, uint64_t now, int sending)
{
    for (; walked <= now; walked++) {
        int slot = (int)(walked % wheel_size), i;
        while ((i = wheel[slot]) >= 0) {
            wheel_remove(i);
            if (conns[i].state == IDLE) {
                if (sending)
                    conn_send(ep, i);
            } else if (conns[i].state == WAITING || conns[i].state == READING) {
                conn_fail(ep, i);                 /* no whole answer within the timeout */
            }
        }
    }
}

static int run(int nconn, unsigned seconds, uint64_t interval_ms)
{
    struct epoll_event events[512];
    int ep = epoll_create1(EPOLL_CLOEXEC), opened = 0, connecting = 0, connected = 0;
    uint64_t stop_at = 0, drain_until = 0, t0_us = 0;

    if (ep < 0)
        return -1;
    walked = now_ms();
    for (;;) {
        uint64_t now = now_ms();
        int n;

        while (opened < nconn && connecting < MAX_CONNECTING) {
            if (conn_open(ep, opened) != 0) {
                connect_errors++;
                conns[opened].state = DEAD;
            } else {
                connecting++;
            }
            opened++;
        }
        if (stop_at == 0 && opened == nconn && connecting == 0) {
            stop_at = now + (uint64_t)seconds * 1000u;
            t0_us = now_us();
            nlat = 0;                             /* the figures are of the steady state */
            requests = 0;
        }
        if (stop_at != 0 && drain_until == 0 && now >= stop_at)
            drain_until = now + DRAIN_MS;
        if (drain_until != 0) {
            int busy = 0;
            for (int i = 0; i < nconn && !busy; i++)
                busy = conns[i].state == WAITING || conns[i].state == READING;
            if (!busy || now >= drain_until)
                break;
        }
        wheel_advance(ep, now, drain_until == 0);
        n = epoll_wait(ep, events, 512, 1);
        for (int k = 0; k < n; k++) {
            int i = (int)events[k].data.u32;
            if (conns[i].state == DEAD)
                continue;
            if (conns[i].state == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
                connecting--;
                getsockopt(conns[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0 || (events[k].events & (EPOLLERR | EPOLLHUP))) {
                    connect_errors++;
                    conn_close(ep, i);
                    continue;
                }
                epoll_ctl(ep, EPOLL_CTL_MOD, conns[i].fd, &ev);
                connected++;
                conns[i].state = IDLE;
                wheel_put(i, now_ms() + 1 + (uint64_t)rand() % interval_ms);  /* first poll: spread */
                continue;
            }
            on_readable(ep, i, interval_ms);
        }
    }
    for (int i = 0; i < nconn; i++)                 /* still unanswered after the drain */
        errors += conns[i].state == WAITING || conns[i].state == READING;
    qsort(latencies, nlat, sizeof *latencies, cmp_u64);
    printf("DEVICES_RESULT connections=%d connected=%d requests=%llu errors=%llu connect_errors=%llu"
           " p50_us=%llu p99_us=%llu max_us=%llu rps=%.1f\n",
           nconn, connected, requests, errors, connect_errors,
           nlat ? (unsigned long long)latencies[nlat / 2] : 0ull,
           nlat ? (unsigned long long)latencies[nlat * 99 / 100] : 0ull,
           nlat ? (unsigned long long)latencies[nlat - 1] : 0ull,
           t0_us ? (double)nlat / ((double)(now_us() - t0_us) / 1e6) : 0.0);
    close(ep);
    return 0;
}

int main(int argc, char **argv)
{
    long nconn, seconds, interval;
    int rc = 2;

    if (argc != 7 || (nconn = atol(argv[4])) <= 0 || nconn > 200000 || (seconds = atol(argv[5])) <= 0 ||
        seconds > 3600 || (interval = atol(argv[6])) <= 0 || interval > 600000 ||
        inet_pton(AF_INET, argv[1], &target.sin_addr) != 1 || atoi(argv[2]) <= 0 || atoi(argv[2]) > 65535) {
        fprintf(stderr, "usage: et_devices IPV4 PORT PATH CONNECTIONS SECONDS INTERVAL_MS\n");
        return 2;
    }
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)atoi(argv[2]));
    request_len = (size_t)snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n",
                                   argv[3], argv[1], argv[2]);
    if (request_len >= sizeof request) {
        fprintf(stderr, "et_devices: PATH too long\n");
        return 2;
    }
    fd_limit_raise();
    srand((unsigned)now_us());
    wheel_size = (size_t)interval * 2 + ANSWER_TIMEOUT_MS + 1;
    conns = calloc((size_t)nconn, sizeof *conns);
    wheel = malloc(wheel_size * sizeof *wheel);
    if (conns == NULL || wheel == NULL) {
        fprintf(stderr, "et_devices: out of memory\n");
        goto done;
    }
    for (size_t s = 0; s < wheel_size; s++)
        wheel[s] = -1;
    for (long i = 0; i < nconn; i++)
        conns[i].fd = conns[i].slot = conns[i].prev = conns[i].next = -1;
    rc = run((int)nconn, (unsigned)seconds, (uint64_t)interval) == 0 ? 0 : 2;
done:
    free(conns);
    free(wheel);
    free(latencies);
    return rc;
}
