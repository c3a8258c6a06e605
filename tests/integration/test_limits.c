/* test_limits.c: the request and connection limits (issue 3, item 3).
 *
 * Every limit is a setting with a safe default (service/src/config.c); each
 * test starts its own service with small values so that crossing a limit is
 * cheap, and checks both sides of it: the largest thing allowed works, one
 * more is refused with the documented status and problem type, and a refused
 * write left no trace in PostgreSQL. Covered:
 *   - max_body_bytes: 413 payload-too-large, with Content-Length and chunked;
 *   - json_max_depth: 400 malformed-json (brackets inside strings don't count);
 *   - analytics_batch_max: 422 on the batch;
 *   - max_name_chars: 422 on the field, counted in characters, not bytes;
 *   - per_ip_connection_limit: the connection over the limit is closed unanswered
 *     while the first N keep working;
 *   - connection_limit: the connection over the limit is answered 503 and
 *     closed while the first N keep working, and a freed place is reused
 *     (floods far over the limit: test_flood.c);
 *   - connection_timeout: a half-sent request line, an idle connection and an
 *     idle keep-alive connection are closed within the timeout (measured with
 *     poll on raw sockets), and so is a client trickling its request head.
 * Why: these are the knobs that keep one hostile client from exhausting the
 * service's memory, workers or sockets.
 */
#define _GNU_SOURCE 1
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *LOG = ET_IT_LOG_DIR "/integration-service-limits.log";

/* The spawned service of the running test; .fini stops it even after a failed assertion. */
static pid_t g_pid = -1;

static void stop_service(void)
{
    release_spawned_service(&g_pid);
}

TestSuite(limits, .init = it_setup, .fini = stop_service, .timeout = 60);

static char *start(const char *const *args)
{
    char *base = NULL;
    g_pid = spawn_service(args, NULL, LOG, &base);
    return base;
}

static struct http_resp *post_at(const char *base, const char *path, const char *body, size_t len, bool chunked)
{
    struct http_req rq = {.method = "POST", .path = path, .content_type = "application/json", .body = body,
                          .len = len, .chunked = chunked, .base = base};
    return http_do(&rq);
}

/* ---- request limits --------------------------------------------------------------- */

/* A valid organization create padded with trailing spaces to exactly n bytes. */
static char *org_body_of_size(const char *id, size_t n)
{
    char *core = fmt("{\"id\":\"%s\",\"name\":\"Padded\",\"credits\":1}", id);
    size_t len = strlen(core);
    cr_assert(len <= n);
    char *body = it_malloc(n + 1);
    memcpy(body, core, len);
    memset(body + len, ' ', n - len);
    body[n] = '\0';
    free(core);
    return body;
}

static long long org_rows(const char *id)
{
    return pg_ll("SELECT count(*) FROM organizations WHERE id = $1", PG_PARAMS(id));
}

Test(limits, body_over_max_body_bytes_is_413_with_content_length_and_chunked)
{
    const char *args[] = {"--threads", "2", "--max-body-bytes", "2048", NULL};
    char *b = start(args);

    for (int chunked = 0; chunked < 2; chunked++) {
        /* Exactly the limit: accepted. */
        char *ok = it_id("org");
        struct http_resp *r = post_at(b, "/v1/organizations", org_body_of_size(ok, 2048), 2048, chunked);
        EXPECT_JSON(r, 201);
        cr_assert_eq(org_rows(ok), 1);
        /* One byte over, and far over: refused, nothing saved. */
        const size_t over[] = {2049, 300000};
        for (size_t i = 0; i < 2; i++) {
            char *id = it_id("org");
            r = post_at(b, "/v1/organizations", org_body_of_size(id, over[i]), over[i], chunked);
            EXPECT_PROBLEM(r, 413, "payload-too-large");
            cr_assert_eq(org_rows(id), 0, "%s: a refused body was saved", r->what);
        }
    }
    /* The service is unharmed. */
    struct http_resp *r = http_get_at(b, "/healthz");
    EXPECT_JSON(r, 200);
}

static long long analytics_rows(const char *event_id)
{
    return pg_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1", PG_PARAMS(event_id));
}

static char *envelope(const char *id, const char *payload)
{
    return fmt("{\"event_id\":\"%s\",\"event_type\":\"limit_probe\",\"user_id\":\"u1\",\"payload\":%s}", id, payload);
}

Test(limits, json_nesting_over_json_max_depth_is_400)
{
    const char *args[] = {"--threads", "2", "--json-max-depth", "4", NULL};
    char *b = start(args);
    static const struct {
        const char *payload;  /* the envelope is depth 1, its payload depth 2 */
        long status;
    } cases[] = {
        {"{\"a\":{\"b\":{}}}", 201},               /* depth 4: the limit */
        {"{\"a\":[[]]}", 201},
        {"{\"s\":\"[[[[[[{{{{{{\"}", 201},         /* brackets in a string are text */
        {"{\"s\":\"\\\"[[[[[[\"}", 201},           /* even after an escaped quote */
        {"{\"a\":{\"b\":{\"c\":{}}}}", 400},       /* depth 5 */
        {"{\"a\":[[[]]]}", 400},
        {"{\"a\":[{\"b\":[1]}]}", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *id = it_id("deep");
        struct http_resp *r = post_at(b, "/v1/analytics/events", envelope(id, cases[i].payload), 0, false);
        if (cases[i].status == 201) {
            EXPECT_JSON(r, 201);
            cr_assert_eq(analytics_rows(id), 1);
        } else {
            EXPECT_PROBLEM(r, 400, "malformed-json");
            cr_assert_eq(analytics_rows(id), 0, "%s: a refused event was saved", r->what);
        }
    }
    /* Nesting is refused before anything else is looked at, on any route. */
    char *id = it_id("org");
    char *body = fmt("{\"id\":\"%s\",\"name\":\"Deep\",\"x\":[[[[[1]]]]]}", id);
    struct http_resp *r = post_at(b, "/v1/organizations", body, 0, false);
    EXPECT_PROBLEM(r, 400, "malformed-json");
    cr_assert_eq(org_rows(id), 0);
}

static char *batch_of(size_t n, char **ids)
{
    char *body = it_strdup("{\"batch\":[");
    for (size_t i = 0; i < n; i++) {
        ids[i] = it_id("batch");
        char *next = fmt("%s%s%s", body, i ? "," : "", envelope(ids[i], "{\"n\":1}"));
        free(body);
        body = next;
    }
    char *done = fmt("%s]}", body);
    free(body);
    return done;
}

Test(limits, analytics_batch_over_analytics_batch_max_is_422)
{
    const char *args[] = {"--threads", "2", "--analytics-batch-max", "3", NULL};
    char *b = start(args);
    char *ids[4];

    struct http_resp *r = post_at(b, "/v1/analytics/events", batch_of(4, ids), 0, false);
    EXPECT_PROBLEM_FIELD(r, 422, "validation-failed", "batch");
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(analytics_rows(ids[i]), 0, "an envelope of a refused batch was saved");

    r = post_at(b, "/v1/analytics/events", batch_of(3, ids), 0, false);
    EXPECT_JSON(r, 200);
    EXPECT_INT(resp_json(r), "accepted", 3);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(analytics_rows(ids[i]), 1);
}

/* n copies of a UTF-8 string. */
static char *repeat_str(const char *s, size_t n)
{
    size_t len = strlen(s);
    char *out = it_malloc(len * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * len, s, len);
    out[len * n] = '\0';
    return out;
}

Test(limits, names_longer_than_max_name_chars_are_422)
{
    const char *args[] = {"--threads", "2", "--max-name-chars", "10", NULL};
    char *b = start(args);
    char *org = make_org(0);
    char *evt = make_event(org);

    /* Characters, not bytes: ten two-byte characters fit, eleven do not. */
    const char *const units[] = {"n", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x8e\xa4"};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        for (size_t n = 10; n <= 11; n++) {
            char *name = repeat_str(units[u], n);
            bool fits = n == 10;
            char *id = it_id("org");
            struct http_resp *r = post_at(b, "/v1/organizations",
                                          fmt("{\"id\":\"%s\",\"name\":\"%s\"}", id, name), 0, false);
            if (fits)
                EXPECT_JSON(r, 201);
            else
                EXPECT_PROBLEM_FIELD(r, 422, "validation-failed", "name");
            cr_assert_eq(org_rows(id), fits ? 1 : 0);

            id = it_id("evt");
            r = post_at(b, "/v1/events",
                        fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"%s\"}", id, org, name), 0, false);
            if (fits)
                EXPECT_JSON(r, 201);
            else
                EXPECT_PROBLEM_FIELD(r, 422, "validation-failed", "name");
            cr_assert_eq(pg_ll("SELECT count(*) FROM events WHERE id = $1", PG_PARAMS(id)), fits ? 1 : 0);

            id = it_id("ses");
            r = post_at(b, "/v1/sessions",
                        fmt("{\"id\":\"%s\",\"event_id\":\"%s\",\"title\":\"%s\",\"speaker_id\":\"s\"}", id, evt,
                            name),
                        0, false);
            if (fits)
                EXPECT_JSON(r, 201);
            else
                EXPECT_PROBLEM_FIELD(r, 422, "validation-failed", "title");
            cr_assert_eq(pg_ll("SELECT count(*) FROM sessions WHERE id = $1", PG_PARAMS(id)), fits ? 1 : 0);
        }
    }
}

/* ---- connection limits, on raw sockets --------------------------------------------- */

enum raw_outcome { RAW_ANSWERED, RAW_CLOSED, RAW_SILENT };

/* What the server sends within timeout_ms: a whole response (status and
 * Content-Length body: RAW_ANSWERED, *status set), the connection closed or
 * reset before a response, or part of one and no more (RAW_CLOSED), or
 * nothing at all (RAW_SILENT). */
static enum raw_outcome raw_read_response(int fd, int timeout_ms, int *status)
{
    struct raw_resp r;
    raw_read(fd, timeout_ms, &r);
    *status = r.status;
    return r.status ? RAW_ANSWERED : r.closed || r.partial ? RAW_CLOSED : RAW_SILENT;
}

static const char HEALTHZ[] = "GET /healthz HTTP/1.1\r\nHost: limits\r\n\r\n";

static void expect_sent(int fd, const char *text)
{
    cr_assert(raw_send(fd, text, strlen(text)), "send: %s", strerror(errno));
}

/* A keep-alive request on an open connection: must answer 200. */
static void expect_served(int fd, const char *which)
{
    int status = 0;
    expect_sent(fd, HEALTHZ);
    enum raw_outcome o = raw_read_response(fd, 5000, &status);
    cr_assert(o == RAW_ANSWERED && status == 200, "%s: expected 200 on /healthz, got %s (%d)", which,
              o == RAW_CLOSED ? "the connection closed" : o == RAW_SILENT ? "no answer in 5 s" : "an answer",
              status);
}

Test(limits, per_ip_connection_limit_closes_the_extra_connection)
{
    const char *args[] = {"--per-ip-connection-limit", "2", NULL}; /* the default 16 threads */
    char *b = start(args);
    int c1 = raw_connect(raw_port(b)), c2 = raw_connect(raw_port(b));
    expect_served(c1, "connection 1 of 2");
    expect_served(c2, "connection 2 of 2");

    /* The third from the same address is closed without an answer. */
    int c3 = raw_connect(raw_port(b));
    int status = 0;
    send(c3, HEALTHZ, sizeof HEALTHZ - 1, MSG_NOSIGNAL); /* may fail: already closed */
    enum raw_outcome o = raw_read_response(c3, 3000, &status);
    cr_assert(o == RAW_CLOSED, "a third connection from one address (limit 2) was %s (%d)",
              o == RAW_ANSWERED ? "answered" : "left open", status);
    close(c3);

    /* The first two still work, and a freed slot can be used again. */
    expect_served(c1, "connection 1 after the refusal");
    expect_served(c2, "connection 2 after the refusal");
    close(c1);
    bool served = false;
    for (int i = 0; i < 50 && !served; i++) {
        if (i)
            it_pause_ms(100);
        int c = raw_connect(raw_port(b));
        send(c, HEALTHZ, sizeof HEALTHZ - 1, MSG_NOSIGNAL);
        served = raw_read_response(c, 2000, &status) == RAW_ANSWERED && status == 200;
        close(c);
    }
    cr_assert(served, "no new connection was served within 5 s of one of the two closing");
    close(c2);
}

Test(limits, connection_limit_answers_503_to_the_extra_connection_and_serves_the_rest)
{
    const char *args[] = {"--connection-limit", "3", NULL}; /* the default 16 threads */
    char *b = start(args);
    int c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = raw_connect(raw_port(b));
        expect_served(c[i], "one of the first 3 connections");
    }
    /* The fourth is answered 503 (Retry-After, problem+json) and closed at
     * once, before it even sends a request: it is refused, not queued. */
    int c4 = raw_connect(raw_port(b));
    char got[2048] = "";
    size_t used = 0;
    long long t0 = it_now_ms();
    for (ssize_t n = 1; n > 0 && used < sizeof got - 1 && it_now_ms() - t0 < 5000;) {
        struct pollfd p = {.fd = c4, .events = POLLIN};
        if (poll(&p, 1, 500) > 0 && (n = recv(c4, got + used, sizeof got - 1 - used, 0)) > 0)
            used += (size_t)n;
    }
    got[used] = '\0';
    cr_assert(strncmp(got, "HTTP/1.1 503 ", 13) == 0, "a fourth connection with connection_limit 3: %.200s",
              used ? got : "(no answer)");
    cr_assert(strcasestr(got, "\r\nRetry-After: 1\r\n") && strcasestr(got, "\r\nConnection: close\r\n") &&
              strcasestr(got, "application/problem+json") && strstr(got, "/problems/too-many-connections"),
              "the 503 lacks Retry-After, Connection: close or its problem document: %s", got);
    struct pollfd p = {.fd = c4, .events = POLLIN};
    cr_assert(poll(&p, 1, 2000) == 1 && recv(c4, got, sizeof got, 0) <= 0, "the refused connection stayed open");
    close(c4);
    /* Only the excess is refused: the first three are served as before... */
    for (int i = 0; i < 3; i++)
        expect_served(c[i], "one of the first 3, after a fourth was refused");
    /* ...and a freed place is taken by the next connection. */
    close(c[0]);
    bool served = false;
    int status = 0;
    for (int i = 0; i < 50 && !served; i++) {
        if (i)
            it_pause_ms(100);
        int c5 = raw_connect(raw_port(b));
        send(c5, HEALTHZ, sizeof HEALTHZ - 1, MSG_NOSIGNAL);
        served = raw_read_response(c5, 2000, &status) == RAW_ANSWERED && status == 200;
        close(c5);
    }
    cr_assert(served, "no new connection was served within 5 s of one of the three closing");
    close(c[1]);
    close(c[2]);
}

/* Waits for the server to close fd; returns the milliseconds it took, or -1
 * after timeout_ms. Anything the server sends first is read and ignored. */
static long long ms_until_closed(int fd, long long since, int timeout_ms)
{
    char buf[4096];
    for (;;) {
        long long left = since + timeout_ms - it_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, (int)left);
        if (rc <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return it_now_ms() - since;
    }
}

Test(limits, connection_timeout_closes_half_sent_and_idle_connections)
{
    const char *args[] = {"--threads", "2", "--connection-timeout", "2", NULL};
    char *b = start(args);

    int keep_alive = raw_connect(raw_port(b));
    expect_served(keep_alive, "a keep-alive connection");
    long long t0 = it_now_ms();
    int half = raw_connect(raw_port(b));
    expect_sent(half, "GET /heal");
    int idle = raw_connect(raw_port(b));
    /* All three wait at once: closed between 1.5 s and 4 s from now. */
    const struct {
        const char *what;
        int fd;
    } conns[] = {{"half a request line (\"GET /heal\")", half},
                 {"a connection that sends nothing", idle},
                 {"an idle keep-alive connection", keep_alive}};
    for (size_t i = 0; i < 3; i++) {
        long long ms = ms_until_closed(conns[i].fd, t0, 6000);
        cr_assert(ms >= 1500 && ms <= 4000, "%s: with connection_timeout 2 the server closed it after %s%lld ms "
                  "(expected 1500 to 4000)", conns[i].what, ms < 0 ? "more than " : "", ms < 0 ? 6000 : ms);
        close(conns[i].fd);
    }
    /* A client that is quick enough is served as usual. */
    int fresh = raw_connect(raw_port(b));
    expect_served(fresh, "a new connection after the timeouts");
    close(fresh);
}

/* A slow client is as dangerous as an idle one: one byte every half second
 * resets an idle timer forever and holds a connection (a worker slot) as long
 * as it likes. The request head must arrive within a bounded time. */
Test(limits, connection_timeout_closes_a_client_trickling_its_request)
{
    const char *args[] = {"--threads", "2", "--connection-timeout", "2", NULL};
    char *b = start(args);
    int fd = raw_connect(raw_port(b));
    expect_sent(fd, "GET /healthz HTTP/1.1\r\nX-Slow: ");
    long long t0 = it_now_ms();
    long long closed = -1;
    while (closed < 0 && it_now_ms() - t0 < 6500) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 500) > 0) {
            char buf[4096];
            if (recv(fd, buf, sizeof buf, 0) <= 0)
                closed = it_now_ms() - t0;
            continue;
        }
        if (send(fd, "a", 1, MSG_NOSIGNAL) != 1)
            closed = it_now_ms() - t0;
    }
    close(fd);
    cr_assert(closed >= 0 && closed <= 6000,
              "a client sending its request head one byte every 500 ms was still connected after %lld ms "
              "(connection_timeout 2; expected a close within 6000 ms)",
              closed < 0 ? it_now_ms() - t0 : closed);
}
