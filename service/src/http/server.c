/*
 * http/server.c - the only file that speaks libmicrohttpd.
 *
 * Request lifecycle (one `struct exchange` per request):
 *   1. URI log callback: MHD hands us the raw URI before anything else; we
 *      allocate the exchange there, so it exists for every request.
 *   2. First access callback: check the framing (http/framing.c: 400/501 for
 *      a body whose end is ambiguous), route the request, admit the caller
 *      (401, 403, 429: see routes/admission.c) and decide every cheap refusal
 *      (404, 405, 415, 413, and 503 when the body budget is spent) before
 *      reading a byte of body, but do NOT queue a response for a request
 *      without a body: queueing on the first callback makes MHD close the
 *      keep-alive connection (measured: 7k vs 50k requests/s). A refusal of a
 *      request that announces a body, or whose framing is in doubt, is the
 *      exception: it is answered at once with "Connection: close" (no 100
 *      Continue, no byte of the body read), and the lingering close
 *      (http/linger.c) drains what the client still sends so it can read it.
 *   3. Middle callbacks: append the body within its reservation of the body
 *      budget (http/body.c), or discard it once the request is refused.
 *   4. Last callback: run the handler and queue its response, whose body
 *      buffer MHD takes over without a copy.
 *   5. Completion callback: record metrics, free the exchange and give its
 *      body reservation back. Everything a request allocated is released
 *      here, once. (MHD calls it for every request whose URI callback ran,
 *      so no exchange can leak.)
 *
 * Slow clients. MHD's connection timeout only measures inactivity, so a
 * watchdog (http/watchdog.c) gives every request `connection_timeout` from
 * its first byte to arrive completely, and shuts the socket of one that has
 * not (slowloris).
 *
 * Accepting. MHD's thread pool lets every worker accept from the listen
 * socket, and whichever wakes first takes a burst: 16 keep-alive clients
 * landed on 6 of 16 workers (measured), and a worker blocked in PostgreSQL
 * for one client stalls its others. So the server owns the listen socket:
 * one acceptor thread accepts and hands each connection to MHD, which places
 * an added connection on worker (descriptor mod pool size): consecutive
 * connections go to consecutive workers. The acceptor, not MHD, enforces
 * connection_limit: MHD 0.9.75 wedges a worker that reaches its own limit
 * with an added connection (http/acceptor.c, ADR 0009).
 *
 * Shutdown drains requests, not connections: a request is work in flight
 * once it has fully arrived, or, for an admitted upload, once its head has
 * (in_flight_from_head). An idle keep-alive connection is not, nor is a
 * half-sent head: waiting for either would let any client hold a SIGTERM for
 * the whole drain time. Responses sent while draining say "Connection:
 * close", and everything else is closed at the end.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "invariant.h"
#include "log.h"
#include "http/acceptor.h"
#include "http/body.h"
#include "http/framing.h"
#include "http/linger.h"
#include "http/request_id.h"
#include "http/router.h"
#include "http/watchdog.h"
#include "metrics.h"
#include "store/store.h"

/* Lingering close (http/linger.c, ADR 0012): a refused body is read and
 * thrown away for at most this long and this much, on at most this many
 * sockets at once, so that a client still sending it can read the refusal.
 * nginx lingers up to 30 s; 5 s moves 16 MiB even at 30 Mbit/s, and 16 MiB is
 * 16 bodies of the default max_body_bytes. */
#define LINGER_MAX_MS 5000u
#define LINGER_MAX_BYTES ((size_t)16 << 20)
#define LINGER_MAX_SOCKETS 1024u

struct http_server {
    struct MHD_Daemon *daemon;
    struct app *app;
    const struct route *routes;
    size_t nroutes;
    admit_fn admit;
    unsigned port;
    struct acceptor *acceptor;  /* the listen socket and connection_limit (http/acceptor.c) */
    atomic_int in_flight;       /* requests a shutdown waits for (see in_flight_from_head) */
    atomic_bool draining;
    struct watchdog *watchdog;  /* slow clients (http/watchdog.c); NULL: none */
    /* request bodies (docs/adr/0012-request-framing-and-body-memory.md) */
    struct body_budget budget;
    struct linger_pool *linger;
};

struct exchange {
    struct request req;
    struct response res;
    struct store store;         /* req.store: this thread's connections, opened on first use */
    char *uri;                  /* raw URI; path and query are carved from it */
    struct problem refusal;     /* decided on the first callback, sent on the last */
    bool started;
    bool in_flight;             /* counted in http_server.in_flight (see in_flight_from_head) */
    bool close;                 /* answer with "Connection: close" */
    bool framing_refused;       /* the body's end is in doubt: answer at once, close */
    struct framing framing;     /* what the headers say about the body */
    struct body_intake body;    /* holds part of s->budget until completion */
    size_t discarded;           /* bytes of a refused body read and thrown away */
    uint64_t started_ns;
};

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct exchange *ex = calloc(1, sizeof *ex);

    (void)cls;
    (void)conn;
    if (ex == NULL)
        return NULL;
    ex->started_ns = monotonic_ns();
    ex->uri = strdup(uri);
    return ex;
}

static struct watched_conn *watched_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* From now on the request is work in flight that a shutdown waits for (until
 * on_completed). Called when the request has fully arrived, or earlier, once
 * its head has (in_flight_from_head). */
static void in_flight_begin(struct http_server *s, struct exchange *ex)
{
    if (!ex->in_flight) {
        ex->in_flight = true;
        atomic_fetch_add(&s->in_flight, 1);
    }
}

/* Called once the head has arrived. A request is waited for from its head
 * when it is an upload the service has accepted (a JSON-body route, caller
 * admitted, nothing refused): a client sending a batch slowly gets it saved
 * across a SIGTERM. Anything else counts only once it has fully arrived: a
 * request still arriving has had no effect, its client may retry it, and
 * waiting for it would let one half-sent header (or a stalled body nobody
 * admitted) hold a SIGTERM for the whole drain time. */
static void in_flight_from_head(struct http_server *s, struct exchange *ex)
{
    if (ex->refusal.err == ET_OK && ex->req.route != NULL && ex->req.route->json_body)
        in_flight_begin(s, ex);
}

/* A request has fully arrived (head and body): the watchdog lets go of it,
 * and it is in flight. */
static void arrival_done(struct http_server *s, struct exchange *ex, struct MHD_Connection *conn)
{
    struct watched_conn *w = watched_of(conn);
    if (w)
        watchdog_arrived(w);
    in_flight_begin(s, ex);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    struct watched_conn *w = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        /* NULL: unwatched, only the idle timeout applies. */
        *socket_context = info ? watchdog_add(s->watchdog, info->connect_fd) : NULL;
        return;
    }
    /* MHD_CONNECTION_NOTIFY_CLOSED, before close(fd): every connection came
     * from the acceptor, so every close gives a place back. */
    acceptor_closed(s->acceptor);
    if (w != NULL) {
        if (w->linger)                      /* still open: MHD closes it after this call */
            linger_adopt(s->linger, w->fd);
        watchdog_remove(s->watchdog, w);
        *socket_context = NULL;
    }
}

/* The route's index in the table, for metrics; s->nroutes: no route matched. */
static size_t route_index(const struct http_server *s, const struct route *route)
{
    ET_ASSERT(route == NULL || (route >= s->routes && route < s->routes + s->nroutes));
    return route ? (size_t)(route - s->routes) : s->nroutes;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct exchange *ex = *con_cls;
    struct watched_conn *w = watched_of(conn);

    (void)toe;
    /* The next request on this connection may begin arriving now. */
    if (w)
        watchdog_next_request(w);
    if (ex == NULL)
        return;
    if (ex->res.status)
        metrics_observe(s->app->metrics, route_index(s, ex->req.route), ex->res.status,
                        monotonic_ns() - ex->started_ns);
    body_intake_free(&ex->body, &s->budget);
    buf_free(&ex->res.body);
    if (ex->in_flight)
        atomic_fetch_sub(&s->in_flight, 1);
    free(ex->uri);
    free(ex);
    *con_cls = NULL;
}

static const char *header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result framing_field_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                         size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    framing_field(cls, key, key_size, value ? value : "", value ? value_size : 0);
    return MHD_YES;
}

/* Request smuggling: every header field, not only the first of each name
 * (all MHD looks at), must agree on where the body ends (http/framing.c). */
static bool framing_acceptable(struct exchange *ex, struct MHD_Connection *conn, const char *version)
{
    framing_init(&ex->framing);
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, framing_field_cb, &ex->framing);
    ex->framing_refused = !framing_check(&ex->framing, version && strcmp(version, MHD_HTTP_VERSION_1_0) == 0,
                                         &ex->refusal);
    return !ex->framing_refused;
}

/* Step 2: everything that can be decided from the request line and headers. */
static void exchange_begin(struct http_server *s, struct exchange *ex,
                           struct MHD_Connection *conn, const char *method, const char *version)
{
    struct request *req = &ex->req;
    char *q = strchr(ex->uri, '?');
    unsigned allowed = 0;

    req->app = s->app;
    request_id_assign(req->request_id, header(conn, "X-Request-Id"));
    log_set_request_id(req->request_id);
    /* The deadline counts from the request's first byte: that is the wait
     * the client sees (store/pg.c design note 6). */
    store_init(&ex->store, s->app->pg, s->app->redis,
               (int64_t)(ex->started_ns / 1000u) + s->app->cfg->request_deadline_ms * 1000);
    req->store = &ex->store;
    req->client_addr = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS)->client_addr;
    req->method = http_method_parse(method);
    req->query = q ? q + 1 : "";
    if (q)
        *q = '\0';
    req->path = ex->uri;
    if (!framing_acceptable(ex, conn, version))
        return;
    if (router_match(s->routes, s->nroutes, req->method, ex->uri, req, &allowed) == NULL) {
        if (allowed) {
            http_allow_header(allowed, ex->res.allow, sizeof ex->res.allow);
            /* The method is not echoed: it is raw client bytes, perhaps not even UTF-8. */
            problem_set(&ex->refusal, ET_ERR_METHOD, NULL, "this method is not allowed here; use %s",
                        ex->res.allow);
        } else {
            problem_set(&ex->refusal, ET_ERR_NOT_FOUND, NULL, "no resource at this path");
        }
        return;
    }
    req->idempotency_key = header(conn, "Idempotency-Key");
    req->if_none_match = header(conn, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (req->route->access != ACCESS_PUBLIC &&
        s->admit(req, header(conn, MHD_HTTP_HEADER_AUTHORIZATION), &ex->refusal) != ET_OK)
        return;
    if (req->route->json_body && !content_type_is_json(header(conn, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        problem_set(&ex->refusal, ET_ERR_MEDIA_TYPE, NULL,
                    "send the body as application/json (UTF-8)");
        return;
    }
    body_admit(&ex->body, &s->budget, &ex->framing, (size_t)s->app->cfg->max_body_bytes, &ex->refusal);
}

static enum MHD_Result exchange_respond(const struct http_server *s, struct exchange *ex,
                                        struct MHD_Connection *conn)
{
    struct response *res = &ex->res;
    struct MHD_Response *mr;
    size_t len = 0;
    char *body;
    enum MHD_Result ok;

    /* Conditional GET: the client already has this representation. */
    if (res->status == 200 && res->etag[0] && etag_matches(ex->req.if_none_match, res->etag)) {
        res->status = 304;
        buf_free(&res->body);
    }

    /* A final newline after JSON: harmless to parsers, and curl output stays readable. */
    if (res->body.len > 0 && res->body.data[res->body.len - 1] != '\n' && res->content_type &&
        strstr(res->content_type, "json"))
        buf_putc(&res->body, '\n');
    body = buf_release(&res->body, &len);

    if (body == NULL) {
        static const char oom[] = "{\"type\":\"/problems/internal-error\",\"status\":500}";
        res->status = 500;
        res->content_type = "application/problem+json";
        mr = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    } else {
        mr = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    }
    if (mr == NULL) {
        free(body);
        return MHD_NO;
    }
    if (res->content_type && len > 0)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, res->content_type);
    if (res->location[0])
        MHD_add_response_header(mr, MHD_HTTP_HEADER_LOCATION, res->location);
    if (res->allow[0])
        MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, res->allow);
    if (res->www_authenticate)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_WWW_AUTHENTICATE, res->www_authenticate);
    if (res->etag[0])
        MHD_add_response_header(mr, MHD_HTTP_HEADER_ETAG, res->etag);
    if (res->cache_control)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, res->cache_control);
    if (res->content_security_policy)
        MHD_add_response_header(mr, "Content-Security-Policy", res->content_security_policy);
    MHD_add_response_header(mr, "X-Request-Id", ex->req.request_id);
    /* Never let a browser guess a type other than the one we send. */
    MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    if (atomic_load(&s->draining) || ex->close)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
    if (res->retry_after > 0) {
        char seconds[16];
        snprintf(seconds, sizeof seconds, "%d", res->retry_after);
        MHD_add_response_header(mr, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
    ok = MHD_queue_response(conn, (unsigned)res->status, mr);
    MHD_destroy_response(mr);
    return ok;
}

/* A refusal decided on the headers of a request that announces a body, or
 * whose framing is in doubt, is answered now: no "100 Continue", not a byte of
 * the body read or buffered. MHD then closes the connection (a response queued
 * on the first callback sets discard_request in 0.9.75), and the lingering
 * close reads what the client still sends so that it can read this answer.
 * A refusal without a body keeps the connection (step 4 answers it). */
static enum MHD_Result answer_at_once(struct http_server *s, struct exchange *ex,
                                      struct MHD_Connection *conn)
{
    struct watched_conn *w = watched_of(conn);

    ex->close = true;
    if (w)
        w->linger = true;
    arrival_done(s, ex, conn);
    respond_problem(&ex->res, &ex->refusal);
    return exchange_respond(s, ex, conn);
}

static enum MHD_Result exchange_step(struct http_server *s, struct exchange *ex,
                                     struct MHD_Connection *conn, const char *method,
                                     const char *version, const char *upload_data,
                                     size_t *upload_data_size)
{
    size_t n;

    if (!ex->started) {                                  /* step 2 */
        ex->started = true;
        exchange_begin(s, ex, conn, method, version);
        if (ex->refusal.err != ET_OK && (ex->framing_refused || framing_has_body(&ex->framing)))
            return answer_at_once(s, ex, conn);
        in_flight_from_head(s, ex);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {                         /* step 3 */
        n = *upload_data_size;
        *upload_data_size = 0;
        if (ex->refusal.err == ET_OK)
            body_receive(&ex->body, &s->budget, upload_data, n, (size_t)s->app->cfg->max_body_bytes,
                         &ex->refusal);
        else                /* the rest of a refused chunked body: thrown away, up to a bound */
            ex->discarded += n;
        return ex->discarded > LINGER_MAX_BYTES ? MHD_NO : MHD_YES;
    }
    if (ex->res.status != 0)                             /* already answered */
        return MHD_YES;
    arrival_done(s, ex, conn);
    if (ex->refusal.err != ET_OK) {                      /* step 4 */
        respond_problem(&ex->res, &ex->refusal);
    } else {
        ex->req.body = ex->body.buf.data;
        ex->req.body_len = ex->body.buf.len;
        ex->req.route->handler(&ex->req, &ex->res);
    }
    return exchange_respond(s, ex, conn);
}

/* The request id names this request in every log line written while one of
 * its steps runs on this thread, and in none after (the thread moves on to
 * other connections, and the id is freed with the exchange). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct exchange *ex = *con_cls;
    enum MHD_Result r;

    (void)url;
    if (ex == NULL || ex->uri == NULL)
        return MHD_NO;                                   /* out of memory: drop */
    if (ex->started)
        log_set_request_id(ex->req.request_id);
    r = exchange_step(cls, ex, conn, method, version, upload_data, upload_data_size);
    log_set_request_id(NULL);
    return r;
}

/* Each connection's MHD memory pool (request head, header index, response
 * head). MHD zeroes the whole pool after every request (MHD_pool_reset), so a
 * kept-alive connection holds all of it resident: measured with 10,000
 * keep-alive connections, 32 KiB (MHD's default) 326 MB, 16 KiB 166 MB,
 * 8 KiB 86 MB (ADR 0009). 8 KiB still takes request heads up to ~7.8 KB,
 * as much as Apache's default (8,190 bytes a line); larger ones get 431. */
#define CONNECTION_MEMORY_BYTES (8 * 1024)

/* MHD's own connection limit, per worker, must never be reached: in 0.9.75
 * reaching it with an added connection wedges the worker (http/acceptor.c).
 * A worker never holds more than the acceptor lets in, so connection_limit + 1
 * on every worker is out of reach; MHD splits its total over the workers. */
static unsigned mhd_connection_limit(const struct config *cfg)
{
    unsigned long long total = ((unsigned long long)cfg->connection_limit + 1) * (unsigned long long)cfg->threads;
    return total > UINT_MAX ? UINT_MAX : (unsigned)total;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    et_vlog(LL_WARN, "http", fmt, ap);
}

struct http_server *http_server_start(struct app *app, const struct route *routes,
                                      size_t nroutes, admit_fn admit, char *err,
                                      size_t err_size)
{
    const struct config *cfg = app->cfg;
    struct http_server *s = calloc(1, sizeof *s);
    struct sockaddr_storage addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;

    if (s == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    memset(&addr, 0, sizeof addr);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    if (inet_pton(AF_INET, cfg->bind, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)cfg->port);
    } else if (inet_pton(AF_INET6, cfg->bind, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)cfg->port);
    } else {
        snprintf(err, err_size, "setting bind: \"%s\" is not an IPv4 or IPv6 address", cfg->bind);
        free(s);
        return NULL;
    }
    if ((s->acceptor = acceptor_listen(&addr, (unsigned)cfg->connection_limit, &s->port)) == NULL) {
        snprintf(err, err_size, "setting port: cannot listen on %s:%lld (%s)", cfg->bind, cfg->port,
                 strerror(errno));
        free(s);
        return NULL;
    }
    s->app = app;
    s->routes = routes;
    s->nroutes = nroutes;
    s->admit = admit;
    body_budget_init(&s->budget, (size_t)cfg->body_budget_bytes);
    s->linger = linger_start(LINGER_MAX_SOCKETS, LINGER_MAX_BYTES, LINGER_MAX_MS);
    /* Before MHD: every connection it reports is watched from its start. */
    s->watchdog = watchdog_start((uint64_t)cfg->connection_timeout * 1000000000u);
    if (s->watchdog == NULL)
        et_log(LL_WARN, "http", "no slow-client watchdog (thread failed to start);"
                                " only the idle timeout applies");
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,       /* first, so it sees every message */
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
        MHD_OPTION_CONNECTION_LIMIT, mhd_connection_limit(cfg),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY_BYTES,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->per_ip_connection_limit,
        MHD_OPTION_END);
    if (s->daemon == NULL || !acceptor_start(s->acceptor, s->daemon)) {
        snprintf(err, err_size, "cannot start the HTTP server on %s:%lld", cfg->bind, cfg->port);
        acceptor_stop(s->acceptor);
        if (s->daemon != NULL)
            MHD_stop_daemon(s->daemon);
        linger_stop(s->linger);
        watchdog_stop(s->watchdog);
        acceptor_free(s->acceptor);
        free(s);
        return NULL;
    }
    return s;
}

unsigned http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_stop(struct http_server *s, unsigned drain_seconds)
{
    uint64_t deadline;

    if (s == NULL)
        return;
    atomic_store(&s->draining, true);
    /* Refuse new connections; requests already received run to completion. */
    acceptor_stop(s->acceptor);
    deadline = monotonic_ns() + (uint64_t)drain_seconds * 1000000000u;
    while (atomic_load(&s->in_flight) > 0 && monotonic_ns() < deadline)
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    MHD_stop_daemon(s->daemon);
    linger_stop(s->linger);             /* after MHD: it may hand over sockets until then */
    acceptor_free(s->acceptor);         /* only now: MHD reported every close */
    watchdog_stop(s->watchdog);         /* after MHD: every connection was removed */
    free(s);
}
