/*
 * test_metrics.c - metrics_observe + metrics_render: per-route/status counters, cumulative
 * latency histograms (+Inf == count, le bounds inclusive) and the "unmatched" label, in the
 * exact Prometheus text that /metrics scrapes and dashboards depend on.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* A route table's labels, as main.c names them from routes[]. */
static const struct {
    const char *method, *pattern;
} routes[] = {
    {"GET", "/v1/a"},
    {"POST", "/v1/a"},
    {"GET", "/v1/b/{id}"},
    {"DELETE", "/v1/c"},
};
#define NROUTES (sizeof routes / sizeof routes[0])
#define UNMATCHED NROUTES

#define US 1000ULL
#define MS 1000000ULL
#define SEC 1000000000ULL

static const char *const les[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                  "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                  "0.5", "1", "2.5", "+Inf"};
#define NLES (sizeof les / sizeof les[0])

#define HEADER_REQUESTS                                                                   \
    "# HELP eventtrack_http_requests_total HTTP requests answered, by route and status.\n" \
    "# TYPE eventtrack_http_requests_total counter\n"
#define HEADER_DURATION                                                                   \
    "# HELP eventtrack_http_request_duration_seconds Time from the first byte of a "     \
    "request to the last byte of its response.\n"                                        \
    "# TYPE eventtrack_http_request_duration_seconds histogram\n"

static struct metrics *m;
static struct buf out;

static void setup(void)
{
    struct buf empty = BUF_INIT;
    out = empty;
    m = metrics_new(NROUTES);
    cr_assert_not_null(m);
    for (size_t i = 0; i < NROUTES; i++)
        metrics_name_route(m, i, routes[i].method, routes[i].pattern);
}

static void teardown(void)
{
    metrics_free(m);
    buf_free(&out);
}

TestSuite(metrics, .init = setup, .fini = teardown);

static const char *render(void)
{
    buf_free(&out);
    metrics_render(m, NULL, &out);
    cr_assert_not(out.failed);
    cr_assert_not_null(out.data);
    return out.data;
}

/* The value of the sample whose name+labels is exactly `series`; -1 if absent. */
static long long sample(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtoll(line + n + 1, NULL, 10);
    }
    return -1;
}

static long long requests(const char *text, const char *method, const char *route,
                          const char *status)
{
    char series[256];
    snprintf(series, sizeof series,
             "eventtrack_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"}", method,
             route, status);
    return sample(text, series);
}

static long long bucket(const char *text, const char *method, const char *route, const char *le)
{
    char series[256];
    snprintf(series, sizeof series,
             "eventtrack_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%s\"}",
             method, route, le);
    return sample(text, series);
}

static long long count(const char *text, const char *method, const char *route)
{
    char series[256];
    snprintf(series, sizeof series,
             "eventtrack_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"}", method,
             route);
    return sample(text, series);
}

/* Asserts the histogram of a route holds exactly these cumulative bucket counts. */
static void assert_histogram(const char *text, const char *method, const char *route,
                             const long long want[NLES])
{
    long long prev = 0;

    for (size_t i = 0; i < NLES; i++) {
        long long v = bucket(text, method, route, les[i]);
        cr_assert_eq(v, want[i], "%s %s le=%s: %lld, want %lld", method, route, les[i], v,
                     want[i]);
        cr_assert_geq(v, prev, "buckets are cumulative");
        prev = v;
    }
    cr_assert_eq(count(text, method, route), want[NLES - 1], "+Inf equals _count");
}

Test(metrics, empty_render_is_headers_only)
{
    cr_assert_str_eq(render(), HEADER_REQUESTS HEADER_DURATION);
}

Test(metrics, exact_render_of_one_request)
{
    metrics_observe(m, 3, 204, 300 * US);
    cr_assert_str_eq(
        render(),
        HEADER_REQUESTS
        "eventtrack_http_requests_total{method=\"DELETE\",route=\"/v1/c\",status=\"204\"} 1\n"
        HEADER_DURATION
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"0.0001\"} 0\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"0.00025\"} 0\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"0.0005\"} 1\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"0.001\"} 1\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"0.0025\"} 1\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"0.005\"} 1\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"0.01\"} 1\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"0.025\"} 1\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"0.05\"} 1\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"0.1\"} 1\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"0.25\"} 1\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"0.5\"} 1\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"1\"} 1\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"2.5\"} 1\n"
        "eventtrack_http_request_duration_seconds_bucket{method=\"DELETE\",route=\"/v1/c\",le=\"+Inf\"} 1\n"
        "eventtrack_http_request_duration_seconds_sum{method=\"DELETE\",route=\"/v1/c\"} 0.000300000\n"
        "eventtrack_http_request_duration_seconds_count{method=\"DELETE\",route=\"/v1/c\"} 1\n");
}

Test(metrics, counts_per_route_and_status)
{
    const char *t;

    metrics_observe(m, 0, 200, 50 * US);
    metrics_observe(m, 0, 200, 100 * US);
    metrics_observe(m, 0, 404, 300 * US);
    metrics_observe(m, 1, 201, 3 * SEC);
    metrics_observe(m, 1, 422, 2 * MS);
    metrics_observe(m, 1, 201, 1 * MS);
    t = render();

    cr_assert_eq(requests(t, "GET", "/v1/a", "200"), 2);
    cr_assert_eq(requests(t, "GET", "/v1/a", "404"), 1);
    cr_assert_eq(requests(t, "GET", "/v1/a", "201"), -1, "no zero-valued series");
    cr_assert_eq(requests(t, "POST", "/v1/a", "201"), 2);
    cr_assert_eq(requests(t, "POST", "/v1/a", "422"), 1);
    cr_assert_null(strstr(t, "/v1/b/{id}"), "a route never hit is not rendered");
    cr_assert_null(strstr(t, "unmatched"));
    cr_assert_eq(count(t, "GET", "/v1/a"), 3);
    cr_assert_eq(count(t, "POST", "/v1/a"), 3);
}

Test(metrics, histogram_buckets_cumulative)
{
    /* 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, +Inf */
    static const long long want_get[NLES] = {2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3};
    static const long long want_post[NLES] = {0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3};
    const char *t;

    metrics_observe(m, 0, 200, 50 * US);
    metrics_observe(m, 0, 200, 100 * US);   /* exactly on a bound: le is inclusive */
    metrics_observe(m, 0, 404, 300 * US);
    metrics_observe(m, 1, 201, 3 * SEC);    /* beyond the last bound: only +Inf */
    metrics_observe(m, 1, 422, 2 * MS);
    metrics_observe(m, 1, 201, 1 * MS);
    t = render();

    assert_histogram(t, "GET", "/v1/a", want_get);
    assert_histogram(t, "POST", "/v1/a", want_post);
    cr_assert_not_null(strstr(t, "eventtrack_http_request_duration_seconds_sum{method=\"GET\","
                                 "route=\"/v1/a\"} 0.000450000\n"));
    cr_assert_not_null(strstr(t, "eventtrack_http_request_duration_seconds_sum{method=\"POST\","
                                 "route=\"/v1/a\"} 3.003000000\n"));
}

Test(metrics, bucket_bounds_inclusive)
{
    static const long long want[NLES] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 4};
    const char *t;

    metrics_observe(m, 2, 200, 0);
    metrics_observe(m, 2, 200, 1 * SEC);
    metrics_observe(m, 2, 200, 2500 * MS);
    metrics_observe(m, 2, 200, 2500 * MS + 1);
    t = render();
    assert_histogram(t, "GET", "/v1/b/{id}", want);
}

Test(metrics, unmatched_route_and_other_status)
{
    static const long long want[NLES] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3};
    const char *t;

    metrics_observe(m, UNMATCHED, 404, 5 * MS);
    metrics_observe(m, UNMATCHED, 404, 10 * SEC);
    metrics_observe(m, UNMATCHED, 418, 10 * SEC);
    metrics_observe(m, 0, 599, 1 * US);
    t = render();

    cr_assert_eq(requests(t, "any", "unmatched", "404"), 2);
    cr_assert_eq(requests(t, "any", "unmatched", "other"), 1);
    cr_assert_eq(requests(t, "GET", "/v1/a", "other"), 1);
    assert_histogram(t, "any", "unmatched", want);
    cr_assert_not_null(strstr(t, "eventtrack_http_request_duration_seconds_sum{method=\"any\","
                                 "route=\"unmatched\"} 20.005000000\n"));
}

Test(metrics, every_known_status_has_its_own_label)
{
    static const int statuses[] = {200, 201, 204, 304, 400, 401, 402, 403, 404, 405, 409,
                                   413, 415, 422, 429, 500, 503};
    const char *t;

    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        for (size_t k = 0; k <= i; k++)
            metrics_observe(m, 3, statuses[i], 1 * MS);
    t = render();
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        char s[8];
        snprintf(s, sizeof s, "%d", statuses[i]);
        cr_assert_eq(requests(t, "DELETE", "/v1/c", s), (long long)i + 1, "status %s", s);
    }
    cr_assert_eq(requests(t, "DELETE", "/v1/c", "other"), -1);
}

Test(metrics, free_null_is_noop)
{
    metrics_free(NULL);
}
