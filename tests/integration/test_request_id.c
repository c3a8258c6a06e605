/* test_request_id.c: X-Request-Id on every answer, and in the log.
 *
 * A valid client id (the id syntax: 1..128 of [A-Za-z0-9_.:-]) comes back
 * unchanged on every kind of answer, including those the dispatcher gives
 * before any handler runs (404, 405, 401, 415, 413 at once); an invalid or
 * missing one is replaced by a fresh id of the service's own. The log line a
 * request causes carries its id, and every log line is one JSON object.
 */
#include "harness.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(request_id, .init = it_setup);

/* The X-Request-Id value of a response (malloc'd), NULL when absent or twice. */
static char *request_id_of(const struct http_resp *r)
{
    static const char name[] = "x-request-id:";
    char *found = NULL;

    for (const char *line = r->headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        size_t len = end ? (size_t)(end - line) : strlen(line), i = 0;

        while (i < sizeof name - 1 && i < len && tolower((unsigned char)line[i]) == name[i])
            i++;
        if (i == sizeof name - 1) {
            if (found) {
                free(found);
                return NULL;
            }
            while (i < len && line[i] == ' ')
                i++;
            found = fmt("%.*s", (int)(len - i), line + i);
        }
        line = end ? end + 2 : NULL;
    }
    return found;
}

/* 16 hex digits, '-', 16 hex digits: an id the service made. */
static bool generated(const char *id)
{
    if (id == NULL || strlen(id) != 33 || id[16] != '-')
        return false;
    for (size_t i = 0; i < 33; i++)
        if (i != 16 && !isxdigit((unsigned char)id[i]))
            return false;
    return true;
}

static struct http_resp *send_with_id(const char *method, const char *path, const char *auth,
                                      const char *content_type, const char *body, const char *id)
{
    char *line = id ? fmt("X-Request-Id: %s", id) : NULL;
    const char *headers[] = {line, NULL};
    struct http_req rq = {.method = method, .path = path, .auth = auth, .content_type = content_type,
                          .body = body, .headers = line ? headers : NULL};
    struct http_resp *r = http_do(&rq);

    free(line);
    return r;
}

struct echo_case {
    const char *method, *path, *auth, *content_type, *body;
    long status;
};

/* Every kind of answer, each decided at a different stage. */
static const struct echo_case echo_cases[] = {
    {"GET", "/healthz", "", NULL, NULL, 200},
    {"GET", "/no/such/path", "", NULL, NULL, 404},
    {"DELETE", "/healthz", "", NULL, NULL, 405},
    {"POST", "/v1/organizations", "", "application/json", "{}", 401},
    {"POST", "/v1/organizations", NULL, "text/plain", "{}", 415},
    {"POST", "/v1/organizations", NULL, "application/json", "{", 400},
    {"POST", "/v1/organizations", NULL, "application/json", "{}", 422},
};

Test(request_id, a_valid_client_id_comes_back_on_every_answer)
{
    for (size_t i = 0; i < sizeof echo_cases / sizeof echo_cases[0]; i++) {
        const struct echo_case *c = &echo_cases[i];
        char *id = it_id("rid");
        struct http_resp *r = send_with_id(c->method, c->path, c->auth, c->content_type, c->body, id);
        char *got = request_id_of(r);

        EXPECT_STATUS(r, c->status);
        cr_assert(got && strcmp(got, id) == 0, "%s %s: X-Request-Id %s, sent %s", c->method, c->path,
                  got ? got : "(absent or twice)", id);
        free(got);
        free(id);
        http_resp_free(r);
    }
}

/* A body over max_body_bytes, refused on its headers before it is read. */
Test(request_id, the_id_comes_back_on_an_answer_given_at_once)
{
    size_t len = 2 << 20;
    char *big = malloc(len + 1);
    struct http_resp *r;
    char *got;

    cr_assert_not_null(big);
    memset(big, ' ', len);
    big[len] = '\0';
    r = send_with_id("POST", "/v1/organizations", NULL, "application/json", big, "rid-too-large");
    got = request_id_of(r);
    EXPECT_STATUS(r, 413);
    cr_assert(got && strcmp(got, "rid-too-large") == 0, "X-Request-Id %s", got ? got : "(absent)");
    free(got);
    free(big);
    http_resp_free(r);
}

Test(request_id, an_invalid_or_missing_id_is_replaced)
{
    char too_long[130];
    const char *bad[] = {NULL, "has space", "quote\"d", "slash/ed", "caf\xc3\xa9", too_long};
    char *seen[sizeof bad / sizeof bad[0]];

    memset(too_long, 'x', 129);
    too_long[129] = '\0';
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_resp *r = send_with_id("GET", "/healthz", "", NULL, NULL, bad[i]);
        seen[i] = request_id_of(r);
        EXPECT_STATUS(r, 200);
        cr_assert(generated(seen[i]), "sent %s, got X-Request-Id %s", bad[i] ? bad[i] : "(none)",
                  seen[i] ? seen[i] : "(absent or twice)");
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(seen[i], seen[j], "two requests got the same id");
        http_resp_free(r);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        free(seen[i]);
}

/* The suite's service log, named as service_start names it (a test runs in a
 * process of its own, which does not share main's variables). */
static char *suite_log_path(void)
{
    const char *log = getenv("ET_IT_SERVICE_LOG");

    return log && *log ? fmt("%s", log) : fmt("%s/integration-service.log", ET_IT_LOG_DIR);
}

/* An event of an unknown organization is refused by PostgreSQL (23503, the
 * foreign key), which the store logs: that line names the request. */
Test(request_id, the_log_line_of_a_request_carries_its_id)
{
    char *org = it_id("no-such-org");
    char *evt = it_id("evt");
    char *id = it_id("rid-log");
    char *body = fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"Orphan\"}", evt, org);
    struct http_resp *r = send_with_id("POST", "/v1/events", NULL, "application/json", body, id);
    char *want = fmt("\"request_id\":\"%s\"", id);
    char *path = suite_log_path();
    FILE *f = fopen(path, "r");
    char line[8192];
    bool found = false;
    int json_lines = 0;

    EXPECT_PROBLEM_FIELD(r, 422, "validation-failed", "organization_id");
    if (f == NULL)
        cr_skip_test("no service log to read (an external service: ET_IT_BASE_URL)");
    while (fgets(line, sizeof line, f)) {
        cJSON *doc;
        if (line[0] != '{')
            continue;           /* stdout's "listening on" line shares the file */
        doc = cJSON_Parse(line);
        cr_assert(doc && cJSON_GetObjectItem(doc, "ts") && cJSON_GetObjectItem(doc, "level") &&
                      cJSON_GetObjectItem(doc, "component") && cJSON_GetObjectItem(doc, "msg"),
                  "a log line is not a complete JSON record: %s", line);
        json_lines++;
        found = found || strstr(line, want) != NULL;
        cJSON_Delete(doc);
    }
    fclose(f);
    cr_assert_gt(json_lines, 0, "no JSON log line in %s", path);
    cr_assert(found, "no log line with %s in %s", want, path);
    free(path);
    free(want);
    free(body);
    free(id);
    free(evt);
    free(org);
    http_resp_free(r);
}
