/* test_ops.c: the operations endpoints a load balancer and Prometheus use.
 *
 * /healthz answers while the process serves; /readyz reports each store (both
 * are up while this suite runs, so both must say "ok"); /metrics is Prometheus
 * text that counts requests by route and status -- checked to move when a
 * request is made, not just to exist.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

TestSuite(ops, .init = it_setup);

Test(ops, healthz)
{
    struct http_resp *r = http_get_as("/healthz", "");
    EXPECT_JSON(r, 200);
    EXPECT_STR(resp_json(r), "status", "ok");

    struct http_req head = {.method = "HEAD", .path = "/healthz", .auth = ""};
    r = http_do(&head);
    EXPECT_STATUS(r, 200);
    cr_assert_eq(r->len, 0, "HEAD returned a body");
}

Test(ops, readyz_reports_both_stores_ok)
{
    struct http_resp *r = http_get_as("/readyz", "");
    EXPECT_JSON(r, 200);
    EXPECT_STR(resp_json(r), "status", "ready");
    EXPECT_STR(resp_json(r), "postgres", "ok");
    EXPECT_STR(resp_json(r), "redis", "ok");
}

Test(ops, readyz_read_reports_redis_only)
{
    struct http_resp *r = http_get_as("/readyz/read", "");
    EXPECT_JSON(r, 200);
    EXPECT_STR(resp_json(r), "status", "ready");
    EXPECT_STR(resp_json(r), "redis", "ok");
    cr_assert_null(cJSON_GetObjectItemCaseSensitive(resp_json(r), "postgres"),
                   "/readyz/read must not depend on (nor report) PostgreSQL");
}

/* The sum of every sample of metric `name` whose labels contain each of
 * labels (NULL-terminated); -1 if there is none. */
static double sample_sum(const char *text, const char *name, const char *const *labels)
{
    size_t nl = strlen(name);
    double sum = -1;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > nl && strncmp(line, name, nl) == 0 && line[nl] == '{') {
            char *l = strndup(line, len);
            bool all = true;
            for (const char *const *x = labels; x && *x; x++)
                if (!strstr(l, *x))
                    all = false;
            const char *sp = strrchr(l, ' ');
            if (all && sp)
                sum = (sum < 0 ? 0 : sum) + strtod(sp + 1, NULL);
            free(l);
        }
        line = end ? end + 1 : NULL;
    }
    return sum;
}

Test(ops, metrics_count_requests_by_route_and_status)
{
    struct http_resp *r = http_get_as("/metrics", "");
    EXPECT_STATUS(r, 200);
    cr_assert(r->content_type && strncasecmp(r->content_type, "text/plain", 10) == 0,
              "expected a text/plain Prometheus exposition, got %s", r->content_type ? r->content_type : "(none)");
    cr_assert(strstr(r->body, "eventtrack_http_requests_total"), "no eventtrack_http_requests_total in:\n%.2000s",
              r->body);
    cr_assert(strstr(r->body, "# TYPE eventtrack_http_requests_total counter"),
              "eventtrack_http_requests_total has no TYPE counter line");
    cr_assert(strstr(r->body, "eventtrack_http_request_duration_seconds_bucket"),
              "no latency histogram eventtrack_http_request_duration_seconds in:\n%.2000s", r->body);

    /* Three 404s on a known route (unknown organization ids) must move the
     * 404 counters by at least three (other tests run at the same time). */
    const char *const labels[] = {"status=\"404\"", NULL};
    double before = sample_sum(r->body, "eventtrack_http_requests_total", labels);
    http_resp_free(r);
    for (int i = 0; i < 3; i++) {
        char *p = fmt("/v1/organizations/%s", it_id("org_ghost"));
        struct http_resp *n = http_get(p);
        EXPECT_PROBLEM(n, 404, "not-found");
        http_resp_free(n);
        free(p);
    }
    r = http_get_as("/metrics", "");
    EXPECT_STATUS(r, 200);
    double after = sample_sum(r->body, "eventtrack_http_requests_total", labels);
    cr_assert(after >= (before < 0 ? 0 : before) + 3,
              "eventtrack_http_requests_total{status=\"404\"} went from %g to %g after three 404s", before, after);
}

Test(ops, errors_are_problem_json_and_never_5xx_for_client_mistakes)
{
    struct http_resp *r = http_get("/v1/this/does/not/exist");
    EXPECT_PROBLEM(r, 404, "not-found");
    r = http_request("POST", "/healthz", "application/json", "{}", 0);
    EXPECT_PROBLEM(r, 405, "method-not-allowed");
    cr_assert(r->allow && strstr(r->allow, "GET"), "405 without an Allow listing GET: %s",
              r->allow ? r->allow : "(none)");
}
