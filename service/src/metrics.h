/*
 * metrics.h - request counters and latency histograms, and the one renderer
 * of the /metrics page.
 *
 * Lock-free: every worker thread adds with relaxed atomics; the scrape reads
 * without stopping anyone. Routes are counted by their table pattern, so the
 * label set is fixed and small however many ids clients send.
 *
 * Below http/: a route is an index into the route table with two label
 * strings, named by main.c, so this module needs nothing of HTTP and
 * http/server.c can count without a cycle between the two.
 */
#ifndef ET_METRICS_H
#define ET_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store/store.h"

struct metrics;

/* Counters for routes 0..nroutes-1 and "unmatched"; name each route with
 * metrics_name_route before the first scrape. */
struct metrics *metrics_new(size_t nroutes);
void metrics_free(struct metrics *m);                    /* NULL is a no-op */

/* Labels of route i; both strings static (the route table's). */
void metrics_name_route(struct metrics *m, size_t route, const char *method, const char *pattern);

/* route == nroutes: the request matched no route. */
void metrics_observe(struct metrics *m, size_t route, int status, uint64_t duration_ns);

/* The whole /metrics page in Prometheus text format: the HTTP series, then
 * the stores' (none when stores is NULL). */
void metrics_render(const struct metrics *m, const struct store_stats *stores, struct buf *out);

#endif
