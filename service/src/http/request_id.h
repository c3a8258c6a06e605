/*
 * http/request_id.h - the id that ties a request's log lines to its response.
 *
 * A client (or a proxy in front) may name its request with X-Request-Id; the
 * service keeps that id when it is a valid id in the ids.h syntax (1..ID_MAX
 * characters from [A-Za-z0-9_.:-]: bounded, and safe in a header, a JSON log
 * line and a terminal), and otherwise makes one. Either way the id is sent
 * back in X-Request-Id and stamped on every log line of the request (log.h).
 */
#ifndef ET_HTTP_REQUEST_ID_H
#define ET_HTTP_REQUEST_ID_H

#include "ids.h"

/* Writes into out the client's id (header value, NULL when absent) if it is
 * valid, else a new one: 16 hex digits fixed per process, '-', 16 hex digits
 * of a counter. Unique, not secret: it names a request, it grants nothing. */
void request_id_assign(char out[ID_MAX + 1], const char *header_value);

#endif
