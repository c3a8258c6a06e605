/*
 * http/body.h - request bodies held in memory, bounded in total.
 *
 * Each request body is buffered whole before its handler runs, so the sum of
 * the bodies being received is the service's largest use of memory, and a
 * client chooses it: 900 connections each half-sending a 960 KiB body once
 * took the process from 9 MB to 882 MB. A body_budget is one process-wide
 * total of reserved bytes; a body_intake reserves from it before it allocates,
 * and its buffer never holds more than it reserved (the buffer's capacity IS
 * the reservation, so buf's doubling cannot overshoot it).
 * See docs/adr/0012-request-framing-and-body-memory.md.
 */
#ifndef ET_HTTP_BODY_H
#define ET_HTTP_BODY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "errors.h"
#include "http/framing.h"

struct body_budget {
    atomic_size_t reserved;     /* bytes reserved by all intakes */
    size_t limit;               /* the most they may reserve together */
};

/* One request's body. Zero-initialised is an empty intake. */
struct body_intake {
    struct buf buf;             /* the bytes received; buf.cap == reserved once allocated */
    size_t reserved;            /* bytes of the budget this intake holds */
};

void body_budget_init(struct body_budget *b, size_t limit);

/* Reserves room for a body of exactly `length` bytes (a Content-Length)
 * before any byte arrives. ET_ERR_UNAVAILABLE when the budget cannot give
 * it (nothing is reserved then). */
enum et_err body_intake_expect(struct body_intake *in, struct body_budget *b, size_t length);

/* Appends received bytes, reserving more first if they do not fit (a chunked
 * body grows by doubling, up to max + 1). ET_ERR_TOO_LARGE past `max` bytes,
 * ET_ERR_UNAVAILABLE when the budget is spent, ET_ERR_INTERNAL when out of
 * memory; on any error the intake is emptied and its reservation returned,
 * so a refused body holds nothing while the rest of it is discarded. */
enum et_err body_intake_append(struct body_intake *in, struct body_budget *b, const char *data,
                               size_t n, size_t max);

/* The first-callback decision on a body the headers announce: 413 for a
 * declared length over max; 503 server-busy (Retry-After) when the bodies
 * being received hold the budget. Sets p and returns false when refused. A
 * chunked body reserves as it arrives instead (body_receive). */
bool body_admit(struct body_intake *in, struct body_budget *b, const struct framing *f, size_t max,
                struct problem *p);
/* body_intake_append, with its errors as problems (413, 503, 500) in p. */
void body_receive(struct body_intake *in, struct body_budget *b, const char *data, size_t n,
                  size_t max, struct problem *p);

/* Frees the bytes and returns the reservation; safe on an empty intake. */
void body_intake_free(struct body_intake *in, struct body_budget *b);

#endif
