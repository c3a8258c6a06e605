/*
 * http/server.c - the only file that speaks libmicrohttpd.
 *
 * Request lifecycle (one `struct exchange` per request):
 *   1. URI log callback: MHD hands us the raw URI before anything else; we
 *      allocate the exchange there, so it exists for every request.
 *   2. First access callback: route the request, admit the caller (401, 403,
 *      429: see routes/admission.c) and decide every cheap refusal (404,
 *      405, 415, 413) before reading a byte of body, but do NOT
 *      queue a response: queueing on the first callback makes MHD close the
 *      keep-alive connection (measured: 7k vs 50k requests/s). The one
 *      exception is a declared Content-Length over the limit: we answer 413 at
 *      once and MHD closes the connection, which is what we want then.
 *   3. Middle callbacks: append the body up to the limit (or discard it when
 *      the request is already refused).
 *   4. Last callback: run the handler and queue its response, whose body
 *      buffer MHD takes over without a copy.
 *   5. Completion callback: record metrics, free the exchange. Everything a
 *      request allocated is released here, once. (MHD calls it for every
 *      request whose URI callback ran, so no exchange can leak.)
 *
 * Slow clients. MHD's connection timeout only measures inactivity, so a
 * client trickling one byte a second would hold a connection forever
 * (slowloris). A watchdog therefore gives every request `connection_timeout`
 * from its first byte (or the previous response) to arrive completely, head
 * and body, and shuts the socket of one that has not. MHD notifies a
 * connection's close before it closes the socket, and the watchdog works
 * under the same lock as that notification, so it can never touch a reused
 * descriptor.
 *
 * Accepting. MHD's thread pool lets every worker accept from the listen
 * socket, and whichever wakes first takes a burst: 16 keep-alive clients
 * landed on 6 of 16 workers (measured), and a worker blocked in PostgreSQL
 * for one client stalls its others. So the server owns the listen socket:
 * one acceptor thread accepts and hands each connection to MHD, which places
 * an added connection on worker (descriptor mod pool size): consecutive
 * connections go to consecutive workers. MHD still applies the connection
 * limits to every added connection.
 *
 * Shutdown drains requests, not connections: an idle keep-alive connection
 * is not work in flight, and waiting for clients to close it would hold a
 * SIGTERM for the whole drain time. Responses sent while draining say
 * "Connection: close", and whatever is idle is closed at the end.
 */
#define _GNU_SOURCE     /* accept4: accepted sockets non-blocking and close-on-exec in one call */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http/router.h"
#include "metrics.h"

/* One open connection, as the slow-client watchdog sees it. */
struct watched_conn {
    struct watched_conn *prev, *next;
    int fd;
    atomic_ullong arriving_since_ns;    /* a request is arriving since; 0: none */
};

struct http_server {
    struct MHD_Daemon *daemon;
    struct app *app;
    const struct route *routes;
    size_t nroutes;
    admit_fn admit;
    unsigned port;
    int listen_fd;
    pthread_t acceptor;
    atomic_int in_flight;       /* requests between URI and completion callbacks */
    atomic_bool draining;
    /* slow-client watchdog */
    pthread_mutex_t watch_lock;
    struct watched_conn *watched;
    pthread_t watchdog;
    bool watchdog_running;
    atomic_bool watchdog_stop;
    uint64_t arrival_limit_ns;
};

struct exchange {
    struct request req;
    struct response res;
    char *uri;                  /* raw URI; path and query are carved from it */
    struct problem refusal;     /* decided on the first callback, sent on the last */
    bool started;
    struct buf body;
    uint64_t started_ns;
};

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct http_server *s = cls;
    struct exchange *ex = calloc(1, sizeof *ex);

    (void)conn;
    if (ex == NULL)
        return NULL;
    atomic_fetch_add(&s->in_flight, 1);
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

/* A request has fully arrived (head and body): the watchdog lets go of it. */
static void arrival_done(struct MHD_Connection *conn)
{
    struct watched_conn *w = watched_of(conn);
    if (w)
        atomic_store(&w->arriving_since_ns, 0);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    struct watched_conn *w = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (info == NULL || (w = calloc(1, sizeof *w)) == NULL)
            return;                         /* unwatched: only the idle timeout applies */
        w->fd = info->connect_fd;
        atomic_store(&w->arriving_since_ns, monotonic_ns());
        pthread_mutex_lock(&s->watch_lock);
        w->next = s->watched;
        if (s->watched)
            s->watched->prev = w;
        s->watched = w;
        pthread_mutex_unlock(&s->watch_lock);
        *socket_context = w;
    } else if (w != NULL) {                 /* MHD_CONNECTION_NOTIFY_CLOSED, before close(fd) */
        pthread_mutex_lock(&s->watch_lock);
        if (w->prev)
            w->prev->next = w->next;
        else
            s->watched = w->next;
        if (w->next)
            w->next->prev = w->prev;
        pthread_mutex_unlock(&s->watch_lock);
        free(w);
        *socket_context = NULL;
    }
}

static void *watchdog_main(void *arg)
{
    struct http_server *s = arg;

    while (!atomic_load(&s->watchdog_stop)) {
        uint64_t now = monotonic_ns();
        pthread_mutex_lock(&s->watch_lock);
        for (struct watched_conn *w = s->watched; w; w = w->next) {
            uint64_t since = atomic_load(&w->arriving_since_ns);
            /* since may be later than now (set by a worker after we read the
             * clock): unsigned now - since would wrap into a false timeout. */
            if (since != 0 && now > since && now - since > s->arrival_limit_ns) {
                shutdown(w->fd, SHUT_RDWR);   /* MHD sees the end and closes it */
                atomic_store(&w->arriving_since_ns, 0);
            }
        }
        pthread_mutex_unlock(&s->watch_lock);
        nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
    }
    return NULL;
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
        atomic_store(&w->arriving_since_ns, monotonic_ns());
    if (ex == NULL)
        return;
    if (ex->res.status)
        metrics_observe(s->app->metrics, ex->req.route, ex->res.status,
                        monotonic_ns() - ex->started_ns);
    buf_free(&ex->body);
    buf_free(&ex->res.body);
    free(ex->uri);
    free(ex);
    *con_cls = NULL;
    atomic_fetch_sub(&s->in_flight, 1);
}

static const char *header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* Step 2: everything that can be decided from the request line and headers. */
static void exchange_begin(struct http_server *s, struct exchange *ex,
                           struct MHD_Connection *conn, const char *method)
{
    struct request *req = &ex->req;
    char *q = strchr(ex->uri, '?');
    unsigned allowed = 0;
    const char *length;

    req->app = s->app;
    req->client_addr = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS)->client_addr;
    req->method = http_method_parse(method);
    req->query = q ? q + 1 : "";
    if (q)
        *q = '\0';
    req->path = ex->uri;
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
    if (!req->route->json_body)
        return;
    if (!content_type_is_json(header(conn, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        problem_set(&ex->refusal, ET_ERR_MEDIA_TYPE, NULL,
                    "send the body as application/json (UTF-8)");
        return;
    }
    length = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoull(length, NULL, 10) > (unsigned long long)s->app->cfg->max_body_bytes)
        problem_set(&ex->refusal, ET_ERR_TOO_LARGE, NULL, "the body is larger than %lld bytes",
                    s->app->cfg->max_body_bytes);
}

/* Does an If-None-Match header name this ETag (or "*")? RFC 9110 13.1.2. */
static bool etag_matches(const char *if_none_match, const char *etag)
{
    size_t n = strlen(etag);

    for (const char *p = if_none_match; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;                      /* weak comparison suffices for GET */
        if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return true;
        p = strchr(p, ',');
    }
    return false;
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
    /* Never let a browser guess a type other than the one we send. */
    MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    if (atomic_load(&s->draining))
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct http_server *s = cls;
    struct exchange *ex = *con_cls;

    (void)url;
    (void)version;
    if (ex == NULL || ex->uri == NULL)
        return MHD_NO;                                   /* out of memory: drop */
    if (!ex->started) {                                  /* step 2 */
        ex->started = true;
        exchange_begin(s, ex, conn, method);
        if (ex->refusal.err == ET_ERR_TOO_LARGE) {
            respond_problem(&ex->res, &ex->refusal);
            return exchange_respond(s, ex, conn);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {                         /* step 3 */
        if (ex->refusal.err == ET_OK) {
            if (ex->body.len + *upload_data_size > (size_t)s->app->cfg->max_body_bytes)
                problem_set(&ex->refusal, ET_ERR_TOO_LARGE, NULL,
                            "the body is larger than %lld bytes", s->app->cfg->max_body_bytes);
            else
                buf_append(&ex->body, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (ex->res.status != 0)                             /* already answered (413) */
        return MHD_YES;
    arrival_done(conn);
    if (ex->refusal.err != ET_OK) {                      /* step 4 */
        respond_problem(&ex->res, &ex->refusal);
    } else if (ex->body.failed) {
        respond_error(&ex->res, ET_ERR_INTERNAL, NULL, "out of memory reading the body");
    } else {
        ex->req.body = ex->body.data;
        ex->req.body_len = ex->body.len;
        ex->req.route->handler(&ex->req, &ex->res);
    }
    return exchange_respond(s, ex, conn);
}

/* Hands every accepted connection to MHD (see "Accepting" above) until
 * http_server_stop shuts the listen socket down. */
static void *acceptor_main(void *arg)
{
    struct http_server *s = arg;

    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(s->listen_fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            (void)MHD_add_connection(s->daemon, fd, (struct sockaddr *)&peer, len);  /* closes fd if refused */
            continue;
        }
        if (atomic_load(&s->draining))
            return NULL;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);   /* let descriptors free up */
        else if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN && errno != EPROTO)
            return NULL;
    }
}

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

static void on_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    fputs("eventtrack: http: ", stderr);
    vfprintf(stderr, fmt, ap);
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
    socklen_t addr_len = sizeof addr;

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
    if ((s->listen_fd = listen_on(&addr)) < 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&addr, &addr_len) != 0) {
        snprintf(err, err_size, "setting port: cannot listen on %s:%lld (%s)", cfg->bind, cfg->port,
                 strerror(errno));
        if (s->listen_fd >= 0)
            close(s->listen_fd);
        free(s);
        return NULL;
    }
    s->port = ntohs(addr.ss_family == AF_INET6 ? v6->sin6_port : v4->sin_port);
    pthread_mutex_init(&s->watch_lock, NULL);
    s->arrival_limit_ns = (uint64_t)cfg->connection_timeout * 1000000000u;
    s->app = app;
    s->routes = routes;
    s->nroutes = nroutes;
    s->admit = admit;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,       /* first, so it sees every message */
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->connection_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->per_ip_connection_limit,
        MHD_OPTION_END);
    if (s->daemon == NULL || pthread_create(&s->acceptor, NULL, acceptor_main, s) != 0) {
        snprintf(err, err_size, "cannot start the HTTP server on %s:%lld", cfg->bind, cfg->port);
        if (s->daemon != NULL)
            MHD_stop_daemon(s->daemon);
        close(s->listen_fd);
        pthread_mutex_destroy(&s->watch_lock);
        free(s);
        return NULL;
    }
    s->watchdog_running = pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0;
    if (!s->watchdog_running)
        fprintf(stderr, "eventtrack: http: no slow-client watchdog (thread failed to start);"
                        " only the idle timeout applies\n");
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
    /* Refuse new connections (shutdown wakes the blocked accept); requests
     * already received run to completion. */
    shutdown(s->listen_fd, SHUT_RDWR);
    pthread_join(s->acceptor, NULL);
    close(s->listen_fd);
    deadline = monotonic_ns() + (uint64_t)drain_seconds * 1000000000u;
    while (atomic_load(&s->in_flight) > 0 && monotonic_ns() < deadline)
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    MHD_stop_daemon(s->daemon);
    if (s->watchdog_running) {
        atomic_store(&s->watchdog_stop, true);
        pthread_join(s->watchdog, NULL);
    }
    pthread_mutex_destroy(&s->watch_lock);
    free(s);
}
