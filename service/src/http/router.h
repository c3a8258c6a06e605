/*
 * http/router.h - matching a method and a path against the route table.
 *
 * Pure functions over strings, so they can be unit-tested and fuzzed without
 * a socket. A path parameter only matches a valid id (ids.h): a path such as
 * /v1/events/a%20b is an unknown resource (404), never handed to a handler.
 */
#ifndef ET_HTTP_ROUTER_H
#define ET_HTTP_ROUTER_H

#include "http/http.h"

enum http_method http_method_parse(const char *method);

/* "GET", ..., or "other" for HTTP_OTHER and anything not a single method. */
const char *http_method_name(enum http_method method);

/*
 * Matches `path` (raw, percent-encoded, without the query) in place: the
 * buffer is decoded and split, and req->params point into it. Returns the
 * route, or NULL with *allowed holding the methods the path does accept
 * (0: unknown path -> 404, else 405).
 */
const struct route *router_match(const struct route *table, size_t n, enum http_method method,
                                 char *path, struct request *req, unsigned *allowed);

/* Writes "GET, HEAD, POST" for a method mask. */
void http_allow_header(unsigned methods, char *out, size_t size);

enum query_result { QUERY_ABSENT, QUERY_FOUND, QUERY_INVALID };

/* Finds the first `name` in a query string and percent-decodes its value into
 * out; QUERY_INVALID when the value does not fit or has a bad escape. */
enum query_result query_get(const char *query, const char *name, char *out, size_t size);

/* An integer parameter: *out = dflt when absent; false unless its value is
 * decimal digits only (no sign, no space) within [min, max]. */
bool query_int(const char *query, const char *name, long long min, long long max, long long dflt,
               long long *out);

/* Extracts the token of "Authorization: Bearer <token>" (scheme case-insensitive,
 * token of visible ASCII, at most size - 1 bytes); false if absent or malformed. */
bool bearer_token(const char *authorization, char *out, size_t size);

/* True for application/json, with optional parameters (charset must be utf-8). */
bool content_type_is_json(const char *value);

#endif
