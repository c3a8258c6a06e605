/*
 * metrics.c - Prometheus counters and histograms, and every line of the
 * /metrics page (see metrics.h).
 */
#include "metrics.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "invariant.h"

/* The statuses the service can answer; anything else is counted as "other". */
static const int statuses[] = {200, 201, 204, 304, 400, 401, 402, 403, 404, 405, 409,
                               413, 415, 422, 429, 500, 503};
#define NSTATUS (sizeof statuses / sizeof statuses[0] + 1)

/* Upper bounds in seconds: fine below a millisecond, where the leaderboard lives. */
static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct route_metrics {
    atomic_ullong requests[NSTATUS];
    atomic_ullong bucket[NBUCKETS + 1];         /* last: +Inf */
    atomic_ullong sum_ns;
};

struct route_labels {
    const char *method;                         /* static, the route table's */
    const char *pattern;
};

struct metrics {
    size_t nroutes;
    struct route_labels *labels;                /* nroutes, owned */
    struct route_metrics *per_route;            /* nroutes + 1: the last is "unmatched"; owned */
};

struct metrics *metrics_new(size_t nroutes)
{
    struct metrics *m = calloc(1, sizeof *m);

    if (m == NULL || (m->per_route = calloc(nroutes + 1, sizeof *m->per_route)) == NULL ||
        (m->labels = calloc(nroutes + 1, sizeof *m->labels)) == NULL) {
        metrics_free(m);
        return NULL;
    }
    m->nroutes = nroutes;
    for (size_t r = 0; r < nroutes; r++)
        m->labels[r] = (struct route_labels){"other", "unnamed"};
    return m;
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    free(m->labels);
    free(m->per_route);
    free(m);
}

void metrics_name_route(struct metrics *m, size_t route, const char *method, const char *pattern)
{
    ET_ASSERT(route < m->nroutes);
    m->labels[route] = (struct route_labels){method, pattern};
}

void metrics_observe(struct metrics *m, size_t route, int status, uint64_t duration_ns)
{
    size_t r = route, s = 0, b = 0;
    double seconds = (double)duration_ns / 1e9;
    struct route_metrics *rm;

    /* An index past the table is a caller's bug; counted as unmatched in a release build. */
    ET_ASSERT(route <= m->nroutes);
    if (r > m->nroutes)
        r = m->nroutes;
    rm = &m->per_route[r];
    while (s < NSTATUS - 1 && statuses[s] != status)
        s++;
    while (b < NBUCKETS && seconds > buckets[b])
        b++;
    atomic_fetch_add_explicit(&rm->requests[s], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rm->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rm->sum_ns, duration_ns, memory_order_relaxed);
}

static const char *route_label(const struct metrics *m, size_t r)
{
    return r < m->nroutes ? m->labels[r].pattern : "unmatched";
}

static const char *method_label(const struct metrics *m, size_t r)
{
    return r < m->nroutes ? m->labels[r].method : "any";
}

static void render_stores(const struct store_stats *st, struct buf *out)
{
    buf_printf(out,
               "# HELP eventtrack_store_connections Open connections, one per worker thread and store.\n"
               "# TYPE eventtrack_store_connections gauge\n"
               "eventtrack_store_connections{store=\"postgres\"} %ld\n"
               "eventtrack_store_connections{store=\"redis\"} %ld\n"
               "# HELP eventtrack_store_errors_total Connection failures and failed statements or commands.\n"
               "# TYPE eventtrack_store_errors_total counter\n"
               "eventtrack_store_errors_total{store=\"postgres\"} %ld\n"
               "eventtrack_store_errors_total{store=\"redis\"} %ld\n"
               "# HELP eventtrack_leaderboard_apply_failures_total Logged session views not applied to Redis.\n"
               "# TYPE eventtrack_leaderboard_apply_failures_total counter\n"
               "eventtrack_leaderboard_apply_failures_total %ld\n"
               "# HELP eventtrack_registration_groups_total Statements that saved several registrations at once.\n"
               "# TYPE eventtrack_registration_groups_total counter\n"
               "eventtrack_registration_groups_total %ld\n"
               "# HELP eventtrack_registrations_grouped_total Registrations saved by those statements.\n"
               "# TYPE eventtrack_registrations_grouped_total counter\n"
               "eventtrack_registrations_grouped_total %ld\n"
               "# HELP eventtrack_ingest_groups_total Statements that logged several single-event ingests at once.\n"
               "# TYPE eventtrack_ingest_groups_total counter\n"
               "eventtrack_ingest_groups_total %ld\n"
               "# HELP eventtrack_ingest_grouped_total Single-event ingests logged by those statements.\n"
               "# TYPE eventtrack_ingest_grouped_total counter\n"
               "eventtrack_ingest_grouped_total %ld\n",
               st->pg_connections, st->redis_connections, st->pg_errors, st->redis_errors,
               st->leaderboard_apply_failures, st->registration_groups, st->registrations_grouped,
               st->ingest_groups, st->ingest_grouped);
}

static void render_http(const struct metrics *m, struct buf *out)
{
    buf_puts(out, "# HELP eventtrack_http_requests_total HTTP requests answered, by route and status.\n"
                  "# TYPE eventtrack_http_requests_total counter\n");
    for (size_t r = 0; r <= m->nroutes; r++) {
        for (size_t s = 0; s < NSTATUS; s++) {
            unsigned long long n = atomic_load_explicit(&m->per_route[r].requests[s],
                                                        memory_order_relaxed);
            if (n == 0)
                continue;
            if (s < NSTATUS - 1)
                buf_printf(out, "eventtrack_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %llu\n",
                           method_label(m, r), route_label(m, r), statuses[s], n);
            else
                buf_printf(out, "eventtrack_http_requests_total{method=\"%s\",route=\"%s\",status=\"other\"} %llu\n",
                           method_label(m, r), route_label(m, r), n);
        }
    }
    buf_puts(out, "# HELP eventtrack_http_request_duration_seconds Time from the first byte of a request to the last byte of its response.\n"
                  "# TYPE eventtrack_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r <= m->nroutes; r++) {
        const struct route_metrics *rm = &m->per_route[r];
        unsigned long long cumulative = 0;
        for (size_t b = 0; b <= NBUCKETS; b++)
            cumulative += atomic_load_explicit(&rm->bucket[b], memory_order_relaxed);
        if (cumulative == 0)
            continue;
        cumulative = 0;
        for (size_t b = 0; b <= NBUCKETS; b++) {
            cumulative += atomic_load_explicit(&rm->bucket[b], memory_order_relaxed);
            if (b < NBUCKETS)
                buf_printf(out, "eventtrack_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%g\"} %llu\n",
                           method_label(m, r), route_label(m, r), buckets[b], cumulative);
            else
                buf_printf(out, "eventtrack_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} %llu\n",
                           method_label(m, r), route_label(m, r), cumulative);
        }
        buf_printf(out, "eventtrack_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.9f\n",
                   method_label(m, r), route_label(m, r),
                   (double)atomic_load_explicit(&rm->sum_ns, memory_order_relaxed) / 1e9);
        buf_printf(out, "eventtrack_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %llu\n",
                   method_label(m, r), route_label(m, r), cumulative);
    }
}

void metrics_render(const struct metrics *m, const struct store_stats *stores, struct buf *out)
{
    render_http(m, out);
    if (stores)
        render_stores(stores, out);
}
