/*
 * http/server.h - the HTTP server: libmicrohttpd behind a small interface.
 */
#ifndef ET_HTTP_SERVER_H
#define ET_HTTP_SERVER_H

#include <stddef.h>

#include "app.h"
#include "http/http.h"

struct http_server;

/* Starts listening with cfg's address and worker threads; NULL with err set on failure. */
struct http_server *http_server_start(struct app *app, const struct route *routes,
                                      size_t nroutes, admit_fn admit, char *err,
                                      size_t err_size);
/* The bound port (useful with port 0). */
unsigned http_server_port(const struct http_server *s);
/* Stops accepting, lets in-flight requests finish (bounded), then stops and frees. */
void http_server_stop(struct http_server *s, unsigned drain_seconds);

#endif
