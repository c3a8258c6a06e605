/* test_flood.c: connection floods and shutdown (issue 11, points 1 and 11;
 * ADR 0009).
 *
 * Each test starts its own service and speaks raw TCP to it over loopback
 * (client ports from the kernel's ephemeral range), because what is tested is
 * below HTTP: how many connections are taken, which are refused and how, and
 * what a SIGTERM waits for. Covered:
 *   - bursts of connects far over connection_limit, while a few keep-alive
 *     clients keep polling: the excess is answered 503 and closed (never left
 *     hanging), the pollers are served throughout, fresh connections are
 *     served within a second of each burst, the service's open descriptors
 *     return to their baseline, nothing logs MHD's own limit (the path that
 *     wedged workers in libmicrohttpd 0.9.75), and SIGTERM exits 0;
 *   - 10,000 keep-alive connections (a large conference's devices) are all
 *     served at the default connection_limit, in under 256 MB resident; the
 *     service raises its descriptor limit to the hard limit, and refuses to
 *     start, in one line, when connection_limit cannot fit in it;
 *   - a half-sent request head, or a body that never comes on a request
 *     nobody was admitted for, does not hold a SIGTERM for the drain time,
 *     while a request that has arrived is still answered during the drain.
 * Bounds are generous (seconds, not milliseconds) so that a loaded machine
 * cannot fail them; each failure they catch is one of seconds to forever.
 */
#define _GNU_SOURCE 1
#include "harness.h"

#include <libpq-fe.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Tests run in parallel: each service logs to a file of its own. */
static char LOG[512];

static pid_t g_pid = -1;

static void stop_service(void)
{
    release_spawned_service(&g_pid);
}

TestSuite(flood, .init = it_setup, .fini = stop_service, .timeout = 90);

/* The test process holds thousands of sockets: its soft descriptor limit
 * goes up to the hard one. Returns that limit. */
static long long raise_own_fd_limit(void)
{
    struct rlimit rl;
    cr_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    cr_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    return rl.rlim_cur == RLIM_INFINITY ? 1LL << 30 : (long long)rl.rlim_cur;
}

static char *start(const char *name, const char *const *args)
{
    char *base = NULL;
    snprintf(LOG, sizeof LOG, "%s/integration-service-flood-%s.log", ET_IT_LOG_DIR, name);
    /* The test reads its service's log: start it empty. */
    unlink(LOG);
    g_pid = spawn_service(args, NULL, LOG, &base);
    return base;
}

/* SIGTERM; asserts a clean exit (0) and returns the milliseconds it took. */
static long long stop_and_time(void)
{
    long long t0 = it_now_ms();
    int st = stop_spawned_service(g_pid);
    long long ms = it_now_ms() - t0;
    g_pid = -1;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the service did not exit 0 on SIGTERM (%s %d after %lld ms); see %s",
              WIFEXITED(st) ? "exit status" : "killed by signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
              ms, LOG);
    return ms;
}

static const char HEALTHZ[] = "GET /healthz HTTP/1.1\r\nHost: flood\r\n\r\n";

/* One response on fd within timeout_ms: its status, 0 when the server closed
 * first, -1 when no whole response came in time. */
static int read_status(int fd, int timeout_ms)
{
    struct raw_resp r;
    raw_read(fd, timeout_ms, &r);
    return r.status ? r.status : r.closed ? 0 : -1;
}

/* GET /healthz on an open connection; its status (see read_status). */
static int healthz_on(int fd, int timeout_ms)
{
    if (!raw_send(fd, HEALTHZ, sizeof HEALTHZ - 1))
        return 0;
    return read_status(fd, timeout_ms);
}

/* A fresh connection's /healthz status. */
static int healthz_fresh(int port, int timeout_ms)
{
    int fd = raw_try_connect(port, false);
    if (fd < 0)
        return -1;
    int st = healthz_on(fd, timeout_ms);
    close(fd);
    return st;
}

/* Open descriptors of a process (/proc/PID/fd). */
static int open_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    cr_assert(d, "%s: %s", path, strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Resident memory of a process, in KiB (VmRSS in /proc/PID/status). */
static long long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atoll(line + 6);
    fclose(f);
    return kib;
}

static bool log_contains(const char *needle)
{
    FILE *f = fopen(LOG, "r");
    char line[1024];
    bool found = false;
    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* Waits (bounded) until the server has answered or closed every socket of
 * conns[0..n) that it is going to: a socket turns "done" on the first
 * readable event (the 503 or the end). Returns how many were done and
 * counts the 503s among them. */
static int refusals_seen(const int *conns, int n, int expect, int timeout_ms, int *n503)
{
    struct pollfd *p = it_malloc(sizeof *p * (size_t)n);
    bool *done = calloc((size_t)n, sizeof *done);
    int ndone = 0;
    long long deadline = it_now_ms() + timeout_ms;
    cr_assert(done);
    *n503 = 0;
    while (ndone < expect && it_now_ms() < deadline) {
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){.fd = done[i] ? -1 : conns[i], .events = POLLIN};
        if (poll(p, (nfds_t)n, 100) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (done[i] || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[1024];
            ssize_t got = recv(conns[i], buf, sizeof buf - 1, MSG_DONTWAIT);
            if (got < 0 && errno == EAGAIN)
                continue;
            done[i] = true;
            ndone++;
            if (got > 12 && strncmp(buf, "HTTP/1.1 503", 12) == 0)
                (*n503)++;
        }
    }
    free(p);
    free(done);
    return ndone;
}

enum { LIMIT = 64, POLLERS = 8, BURST = 1000, BURSTS = 3 };

Test(flood, bursts_far_over_the_limit_refuse_only_the_excess_and_leave_the_service_whole)
{
    raise_own_fd_limit();
    const char *args[] = {"--threads", "2", "--connection-limit", "64", NULL};
    char *b = start("bursts", args);
    int port = raw_port(b);
    cr_assert_eq(healthz_fresh(port, 5000), 200);
    /* Settled: the background worker has opened its store connections. */
    nanosleep(&(struct timespec){0, 500 * 1000 * 1000}, NULL);
    int baseline = open_fds(g_pid);

    int pollers[POLLERS];
    for (int i = 0; i < POLLERS; i++) {
        pollers[i] = raw_try_connect(port, false);
        cr_assert(pollers[i] >= 0 && healthz_on(pollers[i], 5000) == 200, "keep-alive client %d not served", i);
    }
    static int conns[BURST];
    for (int burst = 0; burst < BURSTS; burst++) {
        int opened = 0;
        for (; opened < BURST; opened++) {
            conns[opened] = raw_try_connect(port, true);
            cr_assert(conns[opened] >= 0, "burst %d: connect %d: %s", burst, opened, strerror(errno));
        }
        /* Everything over the limit is answered or closed by the server: at
         * most LIMIT - POLLERS of the burst are admitted (and stay silent). */
        int n503 = 0;
        int refused = refusals_seen(conns, BURST, BURST - (LIMIT - POLLERS), 10000, &n503);
        cr_assert(refused >= BURST - (LIMIT - POLLERS),
                  "burst %d: only %d of %d connections over connection_limit %d were refused within 10 s "
                  "(the rest hang)", burst, refused, BURST - (LIMIT - POLLERS), LIMIT);
        cr_assert(n503 > 0, "burst %d: no refused connection was answered 503", burst);
        /* Those under the limit are served meanwhile. */
        for (int i = 0; i < POLLERS; i++)
            cr_assert_eq(healthz_on(pollers[i], 5000), 200, "burst %d: keep-alive client %d not served during "
                         "the flood", burst, i);
        for (int i = 0; i < BURST; i++)
            close(conns[i]);
        /* A fresh connection is served within a second of the burst ending. */
        long long t0 = it_now_ms();
        int st = 0;
        while ((st = healthz_fresh(port, 1000)) != 200 && it_now_ms() - t0 < 1000)
            nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        cr_assert_eq(st, 200, "burst %d: no fresh connection was served within 1 s (last status %d)", burst, st);
    }
    for (int i = 0; i < POLLERS; i++)
        close(pollers[i]);

    /* After the flood: 20 of 20 fresh connections served... */
    for (int i = 0; i < 20; i++)
        cr_assert_eq(healthz_fresh(port, 2000), 200, "fresh connection %d of 20 after the flood", i + 1);
    /* ...every refused or closed socket released by the service... */
    int fds = open_fds(g_pid);
    for (long long t0 = it_now_ms(); fds > baseline + 4 && it_now_ms() - t0 < 5000; fds = open_fds(g_pid))
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    cr_assert(fds <= baseline + 4, "the service holds %d descriptors after the flood, %d before", fds, baseline);
    /* ...MHD's own limit never reached (it wedged workers in 0.9.75)... */
    cr_assert(!log_contains("Server reached connection limit"),
              "libmicrohttpd reached its own connection limit; see %s", LOG);
    cr_assert(log_contains("connection_limit (64) reached"), "the refusals were not logged; see %s", LOG);
    /* ...and SIGTERM ends it cleanly. */
    stop_and_time();
}

/* Its own time limit, above the suite's 90 s: its answers alone may take up
 * to 90 s (the deadline below), after the start and the 10,000 connects and
 * before the second round and the stop. Under the suite's 90 s, the test
 * passed in 86.9 s at load average 55 and the timeout then struck its .fini:
 * Criterion 2.4.1 aborted the whole run ("The test has already ended,
 * invalid state 'timeout'"). */
Test(flood, ten_thousand_keep_alive_connections_are_served_in_under_256_mb, .timeout = 180)
{
    enum { N = 10000 };
    long long limit = raise_own_fd_limit();
    if (limit < N + 100)
        cr_skip_test("this process may open only %lld descriptors; 10,000 connections need more", limit);
    /* The default connection_limit, and no idle timeout during the test. */
    const char *args[] = {"--connection-timeout", "300", NULL};
    char *b = start("keepalive", args);
    int port = raw_port(b);
    cr_assert_eq(healthz_fresh(port, 5000), 200);
    long long before = rss_kib(g_pid);

    /* Opened and served a wave at a time, all kept open: 10,000 connects at
     * once overflow the kernel's accept queue (somaxconn 4096) whenever the
     * service's acceptor is starved of CPU (ASan, beside the suite's other
     * tests), and the kernel, not the service, then drops a handshake: once
     * seen as a connection never answered in 90 s. A wave stays well within
     * the queue; what is measured is the same 10,000 open connections. */
    enum { WAVE = 500 };
    _Static_assert(N % WAVE == 0, "whole waves");
    static int conns[N];
    /* One deadline for all the answers, not one per connection: under the
     * sanitizers, beside the suite's other tests, 10,000 answers can take a
     * while, and what this test is about is that none is lost. */
    long long deadline = it_now_ms() + 90000;
    for (int w = 0; w < N; w += WAVE) {
        for (int i = w; i < w + WAVE; i++) {
            conns[i] = raw_try_connect(port, false);
            cr_assert(conns[i] >= 0, "connect %d of %d: %s", i + 1, N, strerror(errno));
            cr_assert(send(conns[i], HEALTHZ, sizeof HEALTHZ - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof HEALTHZ - 1));
        }
        for (int i = w; i < w + WAVE; i++) {
            long long left = deadline - it_now_ms();
            int st = read_status(conns[i], left > 1000 ? (int)left : 1000);
            cr_assert_eq(st, 200, "connection %d of %d: status %d", i + 1, N, st);
        }
    }
    long long rss = rss_kib(g_pid);
    cr_log_info("10,000 keep-alive connections: service RSS %lld KiB -> %lld KiB", before, rss);
#ifndef __SANITIZE_ADDRESS__    /* ASan's redzones and shadow memory are not the service's */
    cr_assert(rss < 256 * 1024, "10,000 keep-alive connections: the service holds %lld KiB resident", rss);
#endif
    /* Still kept alive, and still served, all of them. */
    for (int i = 0; i < N; i += 97)
        cr_assert_eq(healthz_on(conns[i], 5000), 200, "connection %d: second request", i + 1);
    for (int i = 0; i < N; i++)
        close(conns[i]);
    cr_assert_eq(healthz_fresh(port, 5000), 200);
    stop_and_time();
}

/* The descriptor limit: raised from soft to hard at start, and a
 * connection_limit that cannot fit in it stops the start with one line.
 * (Criterion runs each test in its own process, so lowering this process's
 * limits, which the services inherit, touches no other test.) */
Test(flood, the_descriptor_limit_is_raised_and_a_connection_limit_that_cannot_fit_stops_the_start)
{
    struct rlimit rl = {.rlim_cur = 1024, .rlim_max = 4096};
    cr_assert(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s", strerror(errno));

    const char *argv[] = {ET_BINARY_PATH, "serve", "--port", "0", "--connection-limit", "5000", NULL};
    struct run r = run_binary(argv, NULL, 10000);
    cr_assert(!r.timed_out && WIFEXITED(r.status) && WEXITSTATUS(r.status) != 0,
              "serve started with connection_limit 5000 and 4096 descriptors at most: %s", r.err);
    cr_assert(strstr(r.err, "setting connection_limit: 5000 connections need") && strstr(r.err, "4096"),
              "the refusal does not name the setting and the limit: %s", r.err);
    cr_assert(strchr(r.err, '\n') == strrchr(r.err, '\n'), "more than one line: %s", r.err);

    const char *args[] = {"--threads", "2", "--connection-limit", "4000", NULL};
    char *b = start("nofile", args);
    cr_assert_eq(healthz_fresh(raw_port(b), 5000), 200);
    cr_assert(log_contains("file descriptors: up to 4096 (RLIMIT_NOFILE, was 1024); connection_limit 4000"),
              "the raised limit was not logged; see %s", LOG);
    stop_and_time();
}

/* A shutdown waits for requests that have arrived, not for clients. */
Test(flood, sigterm_is_not_held_by_half_sent_requests)
{
    const char *args[] = {"--threads", "2", "--shutdown-drain-seconds", "30", NULL};
    char *b = start("half-sent", args);
    int port = raw_port(b);

    /* The request line, and half a header. */
    int head = raw_try_connect(port, false);
    cr_assert(head >= 0);
    static const char half_head[] = "GET /healthz HTTP/1.1\r\nHost: flood\r\nX-Half: ";
    cr_assert(send(head, half_head, sizeof half_head - 1, MSG_NOSIGNAL) > 0);
    /* Whole heads, and bodies that never come: one no caller was admitted
     * for (no credentials: it will be a 401), one on a route without a body.
     * (An admitted upload is waited for: test_faults.c, sigterm_under_load.) */
    int body = raw_try_connect(port, false);
    cr_assert(body >= 0);
    static const char no_body[] = "POST /v1/organizations HTTP/1.1\r\nHost: flood\r\n"
                                  "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":";
    cr_assert(send(body, no_body, sizeof no_body - 1, MSG_NOSIGNAL) > 0);
    int get_body = raw_try_connect(port, false);
    cr_assert(get_body >= 0);
    static const char get_no_body[] = "GET /healthz HTTP/1.1\r\nHost: flood\r\nContent-Length: 100\r\n\r\nab";
    cr_assert(send(get_body, get_no_body, sizeof get_no_body - 1, MSG_NOSIGNAL) > 0);
    /* All three are with the service before the signal. The unauthenticated
     * upload is refused on its head, answered at once and closed (ADR 0012),
     * so it cannot hold anything either. */
    cr_assert_eq(read_status(body, 5000), 401);
    cr_assert_eq(healthz_fresh(port, 5000), 200);

    long long ms = stop_and_time();
    cr_assert(ms < 8000, "SIGTERM took %lld ms with shutdown_drain_seconds 30: half-sent requests held it", ms);
    /* The half-sent requests were dropped, unanswered. */
    cr_assert_eq(read_status(head, 2000), 0);
    cr_assert_eq(read_status(body, 2000), 0);         /* closed after its 401 */
    cr_assert_eq(read_status(get_body, 2000), 0);
    close(head);
    close(body);
    close(get_body);
}

/* ...and a request whose handler is running is answered before the exit. */
Test(flood, sigterm_waits_for_a_request_that_has_arrived)
{
    const char *args[] = {"--threads", "2", "--shutdown-drain-seconds", "30", NULL};
    char *b = start("in-flight", args);
    int port = raw_port(b);
    char *org = make_org(0);
    char *event = make_event(org);

    /* Hold the event row: creating a session for it waits on the foreign key. */
    PGconn *lock = PQconnectdb(getenv("EVENTTRACK_DATABASE_URL"));
    cr_assert(PQstatus(lock) == CONNECTION_OK, "%s", PQerrorMessage(lock));
    PQclear(PQexec(lock, "BEGIN"));
    const char *params[] = {event};
    PGresult *res = PQexecParams(lock, "SELECT 1 FROM events WHERE id = $1 FOR UPDATE", 1, NULL, params, NULL,
                                 NULL, 0);
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "%s", PQerrorMessage(lock));
    PQclear(res);

    int fd = raw_try_connect(port, false);
    cr_assert(fd >= 0);
    char *body = fmt("{\"event_id\":\"%s\",\"title\":\"Drained\",\"speaker_id\":\"s1\"}", event);
    char *req = fmt("POST /v1/sessions HTTP/1.1\r\nHost: flood\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                    it_admin_key(), strlen(body), body);
    cr_assert(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
    char *blocked_sql = fmt("SELECT count(*) FROM pg_stat_activity WHERE %d = ANY(pg_blocking_pids(pid))",
                            PQbackendPID(lock));
    long long blocked = 0;
    for (long long t0 = it_now_ms(); blocked == 0 && it_now_ms() - t0 < 10000;) {
        blocked = pg_ll(blocked_sql, NULL);
        if (blocked == 0)
            nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    cr_assert(blocked > 0, "the session create never reached PostgreSQL's lock");

    /* SIGTERM while the request runs: the service waits for it. */
    cr_assert(kill(g_pid, SIGTERM) == 0);
    nanosleep(&(struct timespec){0, 500 * 1000 * 1000}, NULL);
    int st;
    cr_assert_eq(waitpid(g_pid, &st, WNOHANG), 0, "the service exited with a request in flight");
    PQclear(PQexec(lock, "COMMIT"));
    PQfinish(lock);
    cr_assert_eq(read_status(fd, 10000), 201, "the request in flight was not answered during the drain");
    close(fd);
    stop_and_time();
}
