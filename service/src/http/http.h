/*
 * http/http.h - what a handler sees of HTTP: a parsed request and a response
 * to fill. Nothing here mentions libmicrohttpd; http/server.c is the only file
 * that does, so handlers are plain functions that unit tests can call.
 */
#ifndef ET_HTTP_H
#define ET_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "errors.h"
#include "ids.h"
#include "json/writer.h"

struct app;
struct store;
struct sockaddr;

enum http_method {
    HTTP_GET = 1 << 0,
    HTTP_HEAD = 1 << 1,
    HTTP_POST = 1 << 2,
    HTTP_PUT = 1 << 3,
    HTTP_PATCH = 1 << 4,
    HTTP_DELETE = 1 << 5,
    HTTP_OPTIONS = 1 << 6,
    HTTP_OTHER = 1 << 7,
};

#define ROUTE_MAX_PARAMS 4
#define ROUTE_MAX_SEGMENTS 8

struct request;
struct response;
typedef void (*handler_fn)(struct request *req, struct response *res);

/* Who may call a route. */
enum route_access {
    ACCESS_PUBLIC,            /* anyone: health, metrics, leaderboard reads */
    ACCESS_TENANT,            /* the admin key, or an organization key within its organization */
    ACCESS_ADMIN,             /* the admin key only (an organization key gets 403) */
};

/* One line of the route table (routes/routes.c). */
struct route {
    enum http_method method;  /* HEAD is served by the GET route of the same path */
    const char *pattern;      /* "/v1/organizations/{org_id}": {name} matches one id */
    handler_fn handler;
    enum route_access access;
    bool json_body;           /* the handler reads a JSON body: 415/413 apply */
};

/* The caller, as established by the admission hook. */
struct principal {
    bool admin;
    char organization_id[ID_MAX + 1];     /* an organization key's tenant; empty for admin */
    char key_id[ID_MAX + 1];              /* "admin" for the admin key */
};

/* Decides, before the body is read, whether the caller may make this request
 * at all (authentication, route access, rate limit); fills req->principal.
 * Called for every non-public route. */
typedef enum et_err (*admit_fn)(struct request *req, const char *authorization,
                                struct problem *p);

struct request {
    struct app *app;
    struct store *store;                    /* this request's store handle (store/store.h):
                                               every store verb takes it */
    enum http_method method;
    const struct route *route;
    const char *path;                       /* decoded, whole; see path_buf */
    const char *query;                      /* raw, after '?', "" when none */
    const char *param_names[ROUTE_MAX_PARAMS];
    const char *params[ROUTE_MAX_PARAMS];   /* decoded, valid ids */
    size_t nparams;
    const char *body;                       /* NULL when none; not NUL-terminated */
    size_t body_len;
    const char *idempotency_key;            /* header values, NULL when absent */
    const char *if_none_match;
    struct principal principal;             /* who is asking (non-public routes) */
    /* The matched path, decoded and whole ("/v1/organizations/acme/credits"):
     * router_match splits the URI in place for params, so the full path needs
     * a copy of its own. Segments are literals or ids, so it always fits. */
    char path_buf[ROUTE_MAX_SEGMENTS * (ID_MAX + 1) + 1];
    const struct sockaddr *client_addr;     /* the peer; owned by the connection, which outlives
                                               the request */
    char request_id[ID_MAX + 1];            /* X-Request-Id, the client's or ours (http/request_id.h) */
};

/* The organization a request is confined to: NULL for the admin key. */
static inline const char *req_tenant(const struct request *req)
{
    return req->principal.admin ? NULL : req->principal.organization_id;
}

struct response {
    int status;
    const char *content_type;               /* a static string */
    struct buf body;                        /* handed to the client, then freed */
    struct jw json;                         /* writer over body, see respond_json */
    char location[300];                     /* Location header, "" when none */
    char allow[64];                         /* Allow header, "" when none */
    int retry_after;                        /* seconds, 0: no Retry-After header */
    const char *www_authenticate;           /* WWW-Authenticate header (401), static */
    char etag[24];                          /* strong ETag, "" when none; see respond_etag */
    const char *cache_control;              /* static string, NULL: none */
    const char *content_security_policy;    /* static string, NULL: none */
};

/* A path parameter by its name in the route pattern; NULL if the route has none. */
const char *req_param(const struct request *req, const char *name);

/* Starts a JSON body with the given status; write the document into the result. */
struct jw *respond_json(struct response *res, int status);

/* A body of bytes (copied) with its content type. */
void respond_bytes(struct response *res, int status, const char *content_type, const void *data,
                   size_t len);

/* Sets a strong ETag from the body written so far. The server answers a
 * matching If-None-Match with 304 and no body (http/server.c). */
void respond_etag(struct response *res);
/* Does an If-None-Match header name this ETag (or "*")? RFC 9110 13.1.2. */
bool etag_matches(const char *if_none_match, const char *etag);

/* The single et_err -> HTTP table: status, problem type, title, Retry-After. */
void respond_problem(struct response *res, const struct problem *p);
void respond_error(struct response *res, enum et_err err, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int http_status_of(enum et_err err);

#endif
