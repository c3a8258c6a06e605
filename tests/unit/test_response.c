/*
 * test_response.c - the single et_err -> HTTP table: respond_problem's status, content type,
 * RFC 9457 document (type, title, status, detail, errors[]) and Retry-After, parsed back
 * with cJSON, so every error any layer reports answers the same documented way.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "http/http.h"

static struct response res;

static void setup(void)
{
    memset(&res, 0, sizeof res);
}

static void teardown(void)
{
    buf_free(&res.body);
}

TestSuite(problem, .init = setup, .fini = teardown);

/* Parses the response body; the caller frees it. */
static cJSON *body_json(void)
{
    cJSON *doc;

    cr_assert_not(res.body.failed);
    cr_assert_not_null(res.body.data);
    doc = cJSON_ParseWithLength(res.body.data, res.body.len);
    cr_assert_not_null(doc, "not JSON: %s", res.body.data);
    cr_assert(cJSON_IsObject(doc));
    return doc;
}

static const char *str(const cJSON *doc, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
    cr_assert(cJSON_IsString(v), "\"%s\" is not a string", key);
    return v->valuestring;
}

static int num(const cJSON *doc, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
    cr_assert(cJSON_IsNumber(v), "\"%s\" is not a number", key);
    return v->valueint;
}

struct err_case {
    enum et_err err;
    int status;
    char slug[32];
    char title[32];
    int retry_after;
};

ParameterizedTestParameters(problem, every_error)
{
    static struct err_case cases[] = {
        {ET_ERR_MALFORMED, 400, "malformed-json", "Malformed request", 0},
        {ET_ERR_BAD_HEADER, 400, "invalid-header", "Invalid header", 0},
        {ET_ERR_INVALID, 422, "validation-failed", "Validation failed", 0},
        {ET_ERR_NOT_FOUND, 404, "not-found", "Not found", 0},
        {ET_ERR_CONFLICT, 409, "conflict", "Conflict", 0},
        {ET_ERR_NO_CREDIT, 402, "insufficient-credits", "Insufficient credits", 0},
        {ET_ERR_METHOD, 405, "method-not-allowed", "Method not allowed", 0},
        {ET_ERR_MEDIA_TYPE, 415, "unsupported-media-type", "Unsupported media type", 0},
        {ET_ERR_TOO_LARGE, 413, "payload-too-large", "Payload too large", 0},
        {ET_ERR_UNAVAILABLE, 503, "store-unavailable", "Service unavailable", 1},
        {ET_ERR_INTERNAL, 500, "internal-error", "Internal server error", 0},
        {ET_ERR_NOT_IMPLEMENTED, 501, "unsupported-transfer-coding", "Not implemented", 0},
    };
    return cr_make_param_array(struct err_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct err_case *c, problem, every_error)
{
    struct problem p = {.err = c->err};
    char type[64];
    cJSON *doc;

    memset(&res, 0, sizeof res);
    strcpy(p.detail, "what happened");
    respond_problem(&res, &p);

    cr_assert_eq(http_status_of(c->err), c->status, "http_status_of(%d)", c->err);
    cr_assert_eq(res.status, http_status_of(c->err));
    cr_assert_str_eq(res.content_type, "application/problem+json");
    cr_assert_eq(res.retry_after, c->retry_after, "Retry-After for %s", c->slug);
    doc = body_json();
    snprintf(type, sizeof type, "/problems/%s", c->slug);
    cr_assert_str_eq(str(doc, "type"), type);
    cr_assert_str_eq(str(doc, "title"), c->title);
    cr_assert_eq(num(doc, "status"), c->status);
    cr_assert_str_eq(str(doc, "detail"), "what happened");
    cr_assert_null(cJSON_GetObjectItem(doc, "errors"), "no errors[] without field errors");
    cr_assert_eq(cJSON_GetArraySize(doc), 4);
    cJSON_Delete(doc);
    buf_free(&res.body);
}

Test(problem, status_table_edges)
{
    cr_assert_eq(http_status_of(ET_OK), 200);
    cr_assert_eq(http_status_of(ET_ERR__COUNT), 500);
    cr_assert_eq(http_status_of((enum et_err)1000), 500);
}

Test(problem, ok_or_out_of_range_err_becomes_internal)
{
    struct problem p = {.err = ET_OK};
    cJSON *doc;

    respond_problem(&res, &p);
    cr_assert_eq(res.status, 500);
    doc = body_json();
    cr_assert_str_eq(str(doc, "type"), "/problems/internal-error");
    cr_assert_str_eq(str(doc, "title"), "Internal server error");
    cr_assert_str_eq(str(doc, "detail"), "Internal server error", "empty detail: the title");
    cJSON_Delete(doc);

    p.err = ET_ERR__COUNT;
    respond_problem(&res, &p);
    cr_assert_eq(res.status, 500);
    cr_assert_eq(res.retry_after, 0);
}

Test(problem, refined_type_keeps_status)
{
    struct problem p = {.err = ET_ERR_CONFLICT, .slug = "already-registered"};
    cJSON *doc;

    strcpy(p.detail, "user u1 is already registered for s1");
    respond_problem(&res, &p);
    cr_assert_eq(res.status, 409);
    doc = body_json();
    cr_assert_str_eq(str(doc, "type"), "/problems/already-registered");
    cr_assert_str_eq(str(doc, "title"), "Already registered");
    cr_assert_eq(num(doc, "status"), 409);
    cr_assert_str_eq(str(doc, "detail"), "user u1 is already registered for s1");
    cJSON_Delete(doc);
}

/* Every problem type with the status and title the contract gives it
 * (docs/openapi.yaml), written here independently of errors.h: a type moved
 * to another kind, or a new type without a row here, fails. */
struct type_case {
    char slug[40];
    int status;
    char title[40];
};

static struct type_case type_cases[] = {
    {"ok", 200, "OK"},
    {"malformed-json", 400, "Malformed request"},
    {"invalid-query", 400, "Invalid query parameter"},
    {"invalid-cursor", 400, "Invalid cursor"},
    {"invalid-header", 400, "Invalid header"},
    {"invalid-framing", 400, "Invalid message framing"},
    {"validation-failed", 422, "Validation failed"},
    {"idempotency-key-reused", 422, "Idempotency key reused"},
    {"not-found", 404, "Not found"},
    {"conflict", 409, "Conflict"},
    {"already-registered", 409, "Already registered"},
    {"registration-cancelled", 409, "Registration already cancelled"},
    {"already-exists", 409, "Already exists"},
    {"event-id-conflict", 409, "Event id conflict"},
    {"idempotency-key-in-progress", 409, "Request with this key in progress"},
    {"unauthorized", 401, "Unauthorized"},
    {"invalid-token", 401, "Invalid credentials"},
    {"forbidden", 403, "Forbidden"},
    {"rate-limited", 429, "Too many requests"},
    {"ingest-quota-exceeded", 429, "Too many requests"},
    {"too-many-failed-authentications", 429, "Too many requests"},
    {"insufficient-credits", 402, "Insufficient credits"},
    {"method-not-allowed", 405, "Method not allowed"},
    {"unsupported-media-type", 415, "Unsupported media type"},
    {"payload-too-large", 413, "Payload too large"},
    {"store-unavailable", 503, "Service unavailable"},
    {"outcome-unknown", 503, "Outcome unknown"},
    {"server-busy", 503, "Server busy"},
    {"too-many-connections", 503, "Too many connections"},
    {"internal-error", 500, "Internal server error"},
    {"unsupported-transfer-coding", 501, "Not implemented"},
};
#define NTYPE_CASES (sizeof type_cases / sizeof type_cases[0])

ParameterizedTestParameters(problem, type_slug_and_status_together)
{
    return cr_make_param_array(struct type_case, type_cases, NTYPE_CASES);
}

/* The type's row names its kind; the answer for that kind and type has the
 * contract's status, type and title. */
ParameterizedTest(struct type_case *c, problem, type_slug_and_status_together)
{
    const struct problem_type *row = problem_type_of(ET_OK, c->slug);
    struct problem p;
    char type[64];
    cJSON *doc;

    cr_assert_not_null(row, "no row for %s in ET_PROBLEM_TYPES", c->slug);
    if (row->kind == ET_OK) {          /* never an answer: respond_problem sends 500 for ET_OK */
        cr_assert_eq(http_status_of(ET_OK), c->status);
        return;
    }
    p = (struct problem){.err = row->kind, .slug = row->slug};
    memset(&res, 0, sizeof res);
    respond_problem(&res, &p);
    cr_assert_eq(res.status, c->status, "%s: status %d, the contract says %d", c->slug, res.status, c->status);
    doc = body_json();
    snprintf(type, sizeof type, "/problems/%s", c->slug);
    cr_assert_str_eq(str(doc, "type"), type);
    cr_assert_str_eq(str(doc, "title"), c->title);
    cr_assert_eq(num(doc, "status"), c->status);
    cr_assert_str_eq(str(doc, "detail"), c->title, "empty detail falls back to the title");
    cJSON_Delete(doc);
    buf_free(&res.body);
}

Test(problem, every_type_has_a_case)
{
    size_t n;
    const struct problem_type *rows = problem_types(&n);

    cr_assert_eq(n, NTYPE_CASES, "%zu problem types, %zu cases", n, NTYPE_CASES);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < NTYPE_CASES && !found; k++)
            found = strcmp(rows[i].slug, type_cases[k].slug) == 0;
        cr_assert(found, "problem type %s has no case here", rows[i].slug);
    }
}

/* The default type of a kind is its first row, sent when a problem names none. */
Test(problem, a_kind_without_a_type_sends_its_default)
{
    struct problem p = {.err = ET_ERR_CONFLICT};
    cJSON *doc;

    respond_problem(&res, &p);
    doc = body_json();
    cr_assert_str_eq(str(doc, "type"), "/problems/conflict");
    cJSON_Delete(doc);
}

Test(problem, field_errors_array)
{
    struct problem p = {0};
    const cJSON *errors, *e;
    cJSON *doc;

    problem_field(&p, "name", "is required");
    problem_field(&p, "credits", "must be between %d and %d", 0, 1000000000);
    problem_set(&p, ET_ERR_INVALID, NULL, "the request body has invalid fields");
    respond_problem(&res, &p);

    cr_assert_eq(res.status, 422);
    cr_assert_eq(res.retry_after, 0);
    doc = body_json();
    cr_assert_str_eq(str(doc, "type"), "/problems/validation-failed");
    cr_assert_str_eq(str(doc, "detail"), "the request body has invalid fields");
    errors = cJSON_GetObjectItemCaseSensitive(doc, "errors");
    cr_assert(cJSON_IsArray(errors));
    cr_assert_eq(cJSON_GetArraySize(errors), 2);
    e = cJSON_GetArrayItem(errors, 0);
    cr_assert_str_eq(str(e, "field"), "name");
    cr_assert_str_eq(str(e, "message"), "is required");
    cr_assert_eq(cJSON_GetArraySize(e), 2);
    e = cJSON_GetArrayItem(errors, 1);
    cr_assert_str_eq(str(e, "field"), "credits");
    cr_assert_str_eq(str(e, "message"), "must be between 0 and 1000000000");
    cJSON_Delete(doc);
}

Test(problem, field_errors_capped_and_escaped)
{
    struct problem p = {0};
    const cJSON *errors;
    cJSON *doc;

    for (int i = 0; i < PROBLEM_MAX_FIELDS + 3; i++)
        problem_field(&p, "f\"ield", "bad \\ value %d", i);
    cr_assert_eq(p.nfields, PROBLEM_MAX_FIELDS);
    cr_assert_eq(p.err, ET_ERR_INVALID, "problem_field sets ET_ERR_INVALID");
    respond_problem(&res, &p);
    doc = body_json();
    errors = cJSON_GetObjectItemCaseSensitive(doc, "errors");
    cr_assert_eq(cJSON_GetArraySize(errors), PROBLEM_MAX_FIELDS);
    cr_assert_str_eq(str(cJSON_GetArrayItem(errors, 0), "field"), "f\"ield");
    cr_assert_str_eq(str(cJSON_GetArrayItem(errors, 7), "message"), "bad \\ value 7");
    cr_assert_str_eq(str(doc, "detail"), "Validation failed");
    cJSON_Delete(doc);
}

Test(problem, unavailable_sets_retry_after_1)
{
    cJSON *doc;

    respond_error(&res, ET_ERR_UNAVAILABLE, NULL, "PostgreSQL is unreachable (%s)", "timeout");
    cr_assert_eq(res.status, 503);
    cr_assert_eq(res.retry_after, 1);
    cr_assert_str_eq(res.content_type, "application/problem+json");
    doc = body_json();
    cr_assert_str_eq(str(doc, "type"), "/problems/store-unavailable");
    cr_assert_str_eq(str(doc, "detail"), "PostgreSQL is unreachable (timeout)");
    cJSON_Delete(doc);
}

Test(problem, replaces_an_earlier_body)
{
    struct jw *w = respond_json(&res, 201);
    cJSON *doc;

    jw_object_begin(w);
    jw_key(w, "id");
    jw_string(w, "x");
    jw_object_end(w);
    cr_assert_eq(res.status, 201);
    cr_assert_str_eq(res.content_type, "application/json");
    cr_assert_str_eq(res.body.data, "{\"id\":\"x\"}");

    respond_error(&res, ET_ERR_NOT_FOUND, NULL, "no organization o1");
    cr_assert_eq(res.status, 404);
    doc = body_json();
    cr_assert_null(cJSON_GetObjectItem(doc, "id"));
    cr_assert_str_eq(str(doc, "detail"), "no organization o1");
    cJSON_Delete(doc);
}

Test(problem, problem_clear_forgets)
{
    struct problem p = {0};

    problem_field(&p, "a", "x");
    problem_set(&p, ET_ERR_CONFLICT, "already-exists", "dup %d", 1);
    cr_assert_str_eq(p.detail, "dup 1");
    problem_clear(&p);
    cr_assert_eq(p.err, ET_OK);
    cr_assert_null(p.slug);
    cr_assert_eq(p.nfields, 0);
    cr_assert_str_eq(p.detail, "");
}
