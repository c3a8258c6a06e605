/* raw.c: HTTP on a bare TCP socket, for what libcurl will not send or hides
 * (see harness.h, "raw HTTP").
 *
 * The flood, limits and framing suites each had their own connect / send /
 * read-one-response helpers; these are the one set they share. Every wait is
 * bounded by the caller's timeout (reads) or by a 10 s send timeout on the
 * socket (blocking writes): a test against a misbehaving server fails, it
 * never hangs.
 */
#define _GNU_SOURCE 1 /* strcasestr */
#include "harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int raw_port(const char *base)
{
    const char *colon = strrchr(base, ':');
    cr_assert(colon, "no port in %s", base);
    return atoi(colon + 1);
}

int raw_try_connect(int port, bool nonblocking)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

int raw_connect(int port)
{
    int fd = raw_try_connect(port, false);
    cr_assert(fd >= 0, "connect to 127.0.0.1:%d: %s", port, strerror(errno));
    return fd;
}

bool raw_send(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* Whether buf[0..used) holds a whole response (head and Content-Length
 * body); if so fills r and returns true. */
static bool whole_response(const char *buf, size_t used, struct raw_resp *r)
{
    const char *end = strstr(buf, "\r\n\r\n");
    if (end == NULL)
        return false;
    size_t head = (size_t)(end + 4 - buf);
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    size_t body = cl && cl < end ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
    if (used < head + body)
        return false;
    cr_assert(strncmp(buf, "HTTP/1.1 ", 9) == 0, "not an HTTP response: %.200s", buf);
    r->status = atoi(buf + 9);
    snprintf(r->head, sizeof r->head, "%.*s", (int)head, buf);
    snprintf(r->body, sizeof r->body, "%.*s", (int)body, buf + head);
    /* Anything after it would be a second response: that is an answer too. */
    cr_assert(used == head + body, "bytes after the response: %.200s", buf + head + body);
    return true;
}

void raw_read(int fd, int timeout_ms, struct raw_resp *r)
{
    char buf[16384];
    size_t used = 0;
    long long deadline = it_now_ms() + timeout_ms;

    memset(r, 0, sizeof *r);
    while (it_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - it_now_ms())) <= 0)
            continue;
        ssize_t n = recv(fd, buf + used, sizeof buf - 1 - used, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            r->closed = true;
            snprintf(r->error, sizeof r->error, "%s", n == 0 ? "closed" : strerror(errno));
            return;
        }
        used += (size_t)n;
        buf[used] = '\0';
        if (whole_response(buf, used, r))
            return;
        if (used == sizeof buf - 1)
            break; /* larger than any response these tests expect */
    }
    r->partial = used > 0;
    snprintf(r->error, sizeof r->error, "timeout");
}

bool raw_closed_after(int fd, int timeout_ms, char *extra, size_t extra_size)
{
    long long deadline = it_now_ms() + timeout_ms;
    while (it_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - it_now_ms())) <= 0)
            continue;
        ssize_t n = recv(fd, extra, extra_size - 1, 0);
        if (n > 0) {
            extra[n] = '\0';
            return false;
        }
        return true;
    }
    snprintf(extra, extra_size, "(still open after %d ms)", timeout_ms);
    return false;
}
