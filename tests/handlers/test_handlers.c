/*
 * test_handlers.c - the registration, ingest and leaderboard handlers, called
 * as plain functions: a fake request (matched against the real route table,
 * as the admin) and a real store handle over the test PostgreSQL and Redis
 * (EVENTTRACK_DATABASE_URL, EVENTTRACK_REDIS_URL, migrated: scripts/test).
 *
 * Why a real handle and not a store double at store.h: the handlers' whole
 * job is to call the store in the right order with the right transaction
 * (the Idempotency-Key's, passed explicitly), and a double would only assert
 * what the test itself scripted. Each test makes its own ids and reads back
 * what it changed with its own libpq connection, never through the service.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "app.h"
#include "config.h"
#include "ids.h"
#include "routes/routes.h"
#include "http/router.h"
#include "store/store.h"

static struct config cfg;
static struct app app;
static PGconn *probe;                  /* the test's own view of PostgreSQL */

/* One handler call: its request, response and store handle. */
struct call {
    struct request req;
    struct response res;
    struct store store;
    char path[512];
    cJSON *json;                       /* the parsed response body, or NULL */
};

static void suite_init(void)
{
    char *argv[] = {"handler_tests", "serve", NULL};
    char err[512];

    cr_assert(config_load(2, argv, &cfg, err, sizeof err), "config: %s", err);
    app.cfg = &cfg;
    app.pg = pg_pool_new(cfg.database_url);
    app.redis = rds_pool_new(&cfg.redis);
    cr_assert(app.pg && app.redis);
    probe = PQconnectdb(cfg.database_url);
    cr_assert_eq(PQstatus(probe), CONNECTION_OK, "the test database is not reachable: %s",
                 PQerrorMessage(probe));
}

static void suite_fini(void)
{
    PQfinish(probe);
    rds_pool_free(app.redis);
    pg_pool_free(app.pg);
}

TestSuite(handlers, .init = suite_init, .fini = suite_fini);

/* Matches method + path on the service's route table and runs its handler
 * with body (NULL: none) as the admin. The caller frees with call_free. */
static struct call *call_run(enum http_method method, const char *path, const char *body,
                             const char *idempotency_key)
{
    struct call *c = calloc(1, sizeof *c);
    unsigned allowed = 0;

    cr_assert_not_null(c);
    snprintf(c->path, sizeof c->path, "%s", path);
    store_init(&c->store, app.pg, app.redis, 0);
    c->req.app = &app;
    c->req.store = &c->store;
    c->req.method = method;
    c->req.query = "";
    c->req.path = c->path;
    c->req.principal.admin = true;
    snprintf(c->req.principal.key_id, sizeof c->req.principal.key_id, "admin");
    c->req.idempotency_key = idempotency_key;
    cr_assert_not_null(router_match(routes, routes_count, method, c->path, &c->req, &allowed),
                       "no route for %s", path);
    c->req.body = body;
    c->req.body_len = body ? strlen(body) : 0;
    c->req.route->handler(&c->req, &c->res);
    if (c->res.body.data)
        c->json = cJSON_ParseWithLength(c->res.body.data, c->res.body.len);
    return c;
}

static void call_free(struct call *c)
{
    cJSON_Delete(c->json);
    buf_free(&c->res.body);
    free(c);
}

static const char *jstr(const struct call *c, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->json, key);
    cr_assert(cJSON_IsString(v), "\"%s\" is not a string in %s", key, c->res.body.data);
    return v->valuestring;
}

static long long jint(const struct call *c, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->json, key);
    cr_assert(cJSON_IsNumber(v), "\"%s\" is not a number in %s", key, c->res.body.data);
    return (long long)v->valuedouble;
}

/* One number from the probe connection: SELECT with $1. */
static long long probe_ll(const char *sql, const char *param)
{
    const char *params[] = {param};
    PGresult *res = PQexecParams(probe, sql, 1, NULL, params, NULL, NULL, 0);
    long long v;

    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(probe));
    v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

static char *new_id(const char *tag)
{
    char *id = malloc(ID_MAX + 1);

    cr_assert_not_null(id);
    id_generate(id, tag);
    return id;
}

/* An organization with `credits`, an event of it and a session of that event
 * by `speaker`, all made through their handlers. */
static void make_session(long long credits, const char *speaker, char **org, char **evt,
                         char **ses)
{
    char body[512];
    struct call *c;

    *org = new_id("org"), *evt = new_id("evt"), *ses = new_id("ses");
    snprintf(body, sizeof body, "{\"id\":\"%s\",\"name\":\"Handlers\",\"credits\":%lld}", *org,
             credits);
    c = call_run(HTTP_POST, "/v1/organizations", body, NULL);
    cr_assert_eq(c->res.status, 201, "%s", c->res.body.data);
    call_free(c);
    snprintf(body, sizeof body, "{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"Conf\"}",
             *evt, *org);
    c = call_run(HTTP_POST, "/v1/events", body, NULL);
    cr_assert_eq(c->res.status, 201, "%s", c->res.body.data);
    call_free(c);
    snprintf(body, sizeof body,
             "{\"id\":\"%s\",\"event_id\":\"%s\",\"title\":\"Talk\",\"speaker_id\":\"%s\"}", *ses,
             *evt, speaker);
    c = call_run(HTTP_POST, "/v1/sessions", body, NULL);
    cr_assert_eq(c->res.status, 201, "%s", c->res.body.data);
    call_free(c);
}

/* A heap string from a printf format; tests are short-lived and may leak it. */
static char *fmt(const char *format, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *format, ...)
{
    char *out = malloc(1024);
    va_list ap;

    cr_assert_not_null(out);
    va_start(ap, format);
    vsnprintf(out, 1024, format, ap);
    va_end(ap);
    return out;
}

static char *registration_body(const char *org, const char *ses, const char *user)
{
    return fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
               "\"ticket_type\":\"standard\",\"price_paid\":\"10\"}",
               ses, user, org);
}

Test(handlers, registration_debits_one_credit_and_saves_one_row)
{
    char *org, *evt, *ses;
    make_session(2, "spk", &org, &evt, &ses);
    struct call *c = call_run(HTTP_POST, "/v1/registrations", registration_body(org, ses, "u1"), NULL);

    cr_assert_eq(c->res.status, 201, "%s", c->res.body.data);
    cr_assert_eq(jint(c, "credits_remaining"), 1);
    char location[300];
    snprintf(location, sizeof location, "/v1/registrations/%s", jstr(c, "id"));
    cr_assert_str_eq(c->res.location, location);
    cr_assert_eq(probe_ll("SELECT count(*) FROM registrations WHERE session_id = $1", ses), 1);
    cr_assert_eq(probe_ll("SELECT balance FROM organization_balances WHERE organization_id = $1", org), 1);
    call_free(c);
}

Test(handlers, registration_without_credit_is_402_and_changes_nothing)
{
    char *org, *evt, *ses;
    make_session(0, "spk", &org, &evt, &ses);
    long long ledger = probe_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1", org);
    struct call *c = call_run(HTTP_POST, "/v1/registrations", registration_body(org, ses, "u1"), NULL);

    cr_assert_eq(c->res.status, 402, "%s", c->res.body.data);
    cr_assert_str_eq(c->res.content_type, "application/problem+json");
    cr_assert_eq(probe_ll("SELECT count(*) FROM registrations WHERE session_id = $1", ses), 0);
    cr_assert_eq(probe_ll("SELECT count(*) FROM credit_ledger WHERE organization_id = $1", org), ledger);
    cr_assert_eq(probe_ll("SELECT balance FROM organization_balances WHERE organization_id = $1", org), 0);
    call_free(c);
}

/* The Idempotency-Key's transaction reaches the registration store as an
 * argument (struct store_txn): a retry replays, and one credit is spent. */
Test(handlers, registration_under_an_idempotency_key_replays_and_debits_once)
{
    char *org, *evt, *ses;
    make_session(3, "spk", &org, &evt, &ses);
    char *key = new_id("key");
    char *body = registration_body(org, ses, "u1");
    struct call *first = call_run(HTTP_POST, "/v1/registrations", body, key);
    struct call *again = call_run(HTTP_POST, "/v1/registrations", body, key);

    cr_assert_eq(first->res.status, 201, "%s", first->res.body.data);
    cr_assert_eq(again->res.status, 201, "%s", again->res.body.data);
    cr_assert_str_eq(jstr(again, "id"), jstr(first, "id"));
    cr_assert_eq(probe_ll("SELECT count(*) FROM registrations WHERE session_id = $1", ses), 1);
    cr_assert_eq(probe_ll("SELECT balance FROM organization_balances WHERE organization_id = $1", org), 2);
    /* Nothing is left open on this thread's connection: the next verb commits on its own. */
    struct call *next = call_run(HTTP_POST, "/v1/registrations", registration_body(org, ses, "u2"), NULL);
    cr_assert_eq(next->res.status, 201, "%s", next->res.body.data);
    cr_assert_eq(probe_ll("SELECT count(*) FROM registrations WHERE session_id = $1", ses), 2);
    call_free(first), call_free(again), call_free(next);
}

static char *view_body(const char *event_id, const char *ses, const char *user)
{
    return fmt("{\"event_id\":\"%s\",\"event_type\":\"session_view\",\"user_id\":\"%s\","
               "\"payload\":{\"session_id\":\"%s\"}}",
               event_id, user, ses);
}

Test(handlers, ingest_counts_a_view_once_on_the_leaderboard)
{
    char *org, *evt, *ses, *view = new_id("view"), path[256];
    make_session(0, "spk_a", &org, &evt, &ses);
    struct call *c = call_run(HTTP_POST, "/v1/analytics/events", view_body(view, ses, "u1"), NULL);

    cr_assert_eq(c->res.status, 201, "%s", c->res.body.data);
    cr_assert_str_eq(jstr(c, "event_id"), view);
    call_free(c);
    c = call_run(HTTP_POST, "/v1/analytics/events", view_body(view, ses, "u1"), NULL);
    cr_assert_eq(c->res.status, 200, "a duplicate: %s", c->res.body.data);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c->json, "duplicate")));
    call_free(c);
    cr_assert_eq(probe_ll("SELECT count(*) FROM analytics_events WHERE event_id = $1", view), 1);

    snprintf(path, sizeof path, "/v1/events/%s/leaderboard/speakers/spk_a", evt);
    c = call_run(HTTP_GET, path, NULL, NULL);
    cr_assert_eq(c->res.status, 200, "%s", c->res.body.data);
    cr_assert_eq(jint(c, "score"), 1);
    cr_assert_eq(jint(c, "rank"), 1);
    call_free(c);
}

Test(handlers, ingest_of_a_bad_envelope_is_refused_and_logs_nothing)
{
    char *user = new_id("user");
    char body[256];

    snprintf(body, sizeof body,
             "{\"event_type\":\"Not A Type\",\"user_id\":\"%s\",\"payload\":{}}", user);
    struct call *c = call_run(HTTP_POST, "/v1/analytics/events", body, NULL);
    cr_assert(c->res.status == 400 || c->res.status == 422, "got %d: %s", c->res.status,
              c->res.body.data);
    cr_assert_str_eq(c->res.content_type, "application/problem+json");
    cr_assert_eq(probe_ll("SELECT count(*) FROM analytics_events WHERE user_id = $1", user), 0);
    call_free(c);
}

Test(handlers, leaderboard_of_a_new_event_is_empty_and_an_unknown_speaker_404)
{
    char *evt = new_id("evt"), path[256];
    struct call *c;

    snprintf(path, sizeof path, "/v1/events/%s/leaderboard", evt);
    c = call_run(HTTP_GET, path, NULL, NULL);
    cr_assert_eq(c->res.status, 200, "%s", c->res.body.data);
    cr_assert_str_eq(jstr(c, "event_id"), evt);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c->json, "leaderboard")), 0);
    call_free(c);
    snprintf(path, sizeof path, "/v1/events/%s/leaderboard/speakers/nobody", evt);
    c = call_run(HTTP_GET, path, NULL, NULL);
    cr_assert_eq(c->res.status, 404, "%s", c->res.body.data);
    cr_assert_str_eq(c->res.content_type, "application/problem+json");
    call_free(c);
}
