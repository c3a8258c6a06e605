/*
 * metrics.h - request counters and latency histograms for /metrics.
 *
 * Lock-free: every worker thread adds with relaxed atomics; the scrape reads
 * without stopping anyone. Routes are counted by their table pattern, so the
 * label set is fixed and small however many ids clients send.
 */
#ifndef ET_METRICS_H
#define ET_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http/http.h"

struct metrics;

struct metrics *metrics_new(const struct route *routes, size_t nroutes);
void metrics_free(struct metrics *m);                    /* NULL is a no-op */

/* route NULL: the request matched no route. */
void metrics_observe(struct metrics *m, const struct route *route, int status,
                     uint64_t duration_ns);

/* Appends the HTTP series in Prometheus text format. */
void metrics_render(const struct metrics *m, struct buf *out);

#endif
