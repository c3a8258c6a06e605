/*
 * http/framing.h - is a request's body framing unambiguous? (RFC 9112 6)
 *
 * A pure function over the request's header fields, so that it can be unit
 * tested and fuzzed without a socket: http/server.c feeds it every header
 * field libmicrohttpd parsed, in order, and refuses the request when the
 * verdict is not FRAMING_OK. See docs/adr/0012-request-framing-and-body-memory.md
 * for why each rule exists (request smuggling behind a proxy).
 */
#ifndef ET_HTTP_FRAMING_H
#define ET_HTTP_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

enum framing_verdict {
    FRAMING_OK,              /* at most one way to find the body's end */
    FRAMING_BAD,             /* 400 and close: the body's end is ambiguous */
    FRAMING_UNKNOWN_CODING,  /* 501 and close: a transfer coding other than chunked */
};

/* What the header fields seen so far say about the body. Plain data, no
 * heap memory: lives inside the request's exchange. */
struct framing {
    bool bad_name;           /* a field name that is not a token ("Content-Length :") */
    bool has_length;
    bool bad_length;         /* a Content-Length that is not 1*DIGIT */
    bool length_conflict;    /* two Content-Length values that differ */
    uint64_t length;         /* the Content-Length; UINT64_MAX when it overflows */
    unsigned te_fields;      /* Transfer-Encoding fields seen */
    unsigned chunked;        /* "chunked" elements seen, over all of them */
    bool chunked_not_last;   /* an element after "chunked" */
    bool bad_coding;         /* an element that is not token *(OWS ";" ...) */
    bool unknown_coding;     /* a coding other than plain "chunked" */
    unsigned codings;        /* non-empty elements, over all Transfer-Encoding fields */
};

void framing_init(struct framing *f);
/* One header field as received: name and value need no terminating NUL. */
void framing_field(struct framing *f, const char *name, size_t name_len, const char *value,
                   size_t value_len);
/* The verdict once every field was fed; *why is a static sentence for the
 * problem detail (never NULL). http_1_0: the request line said HTTP/1.0, where
 * Transfer-Encoding does not exist (RFC 9112 6.1). */
enum framing_verdict framing_verdict(const struct framing *f, bool http_1_0, const char **why);
/* framing_verdict as a problem: true when the framing is fine, else false
 * with p set (400 invalid-framing, or 501 unsupported-transfer-coding). */
bool framing_check(const struct framing *f, bool http_1_0, struct problem *p);
/* Does the request announce a body (a non-zero length, or any transfer coding)? */
bool framing_has_body(const struct framing *f);

#endif
