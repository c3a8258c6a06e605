/*
 * test_router.c - route matching, Allow headers, query and content-type parsing.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "http/router.h"

static void noop(struct request *req, struct response *res) { (void)req; (void)res; }

static const struct route table[] = {
    {HTTP_POST, "/v1/organizations", noop, ACCESS_PUBLIC, true},
    {HTTP_GET, "/v1/organizations/{org_id}", noop, ACCESS_PUBLIC, false},
    {HTTP_GET, "/v1/organizations/{org_id}/credits", noop, ACCESS_PUBLIC, false},
    {HTTP_POST, "/v1/organizations/{org_id}/credits", noop, ACCESS_PUBLIC, true},
    {HTTP_GET, "/v1/events/{event_id}/leaderboard/speakers/{speaker_id}", noop, ACCESS_PUBLIC, false},
};
#define N (sizeof table / sizeof table[0])

static const struct route *match(enum http_method m, const char *path, struct request *req,
                                 unsigned *allowed)
{
    static char copy[512];
    strcpy(copy, path);
    memset(req, 0, sizeof *req);
    return router_match(table, N, m, copy, req, allowed);
}

Test(router, matches_literal_and_params)
{
    struct request req;
    unsigned allowed;
    const struct route *r = match(HTTP_GET, "/v1/events/e1/leaderboard/speakers/sp:9", &req, &allowed);

    cr_assert_eq(r, &table[4]);
    cr_assert_str_eq(req_param(&req, "event_id"), "e1");
    cr_assert_str_eq(req_param(&req, "speaker_id"), "sp:9");
    cr_assert_null(req_param(&req, "org_id"));
}

/* The Idempotency-Key scope names the whole path: splitting the URI for the
 * params must not cut req->path to its first segment, and an escaped id names
 * the same resource as the plain one. */
Test(router, the_whole_decoded_path_survives_matching)
{
    struct request req;
    unsigned allowed;

    cr_assert_eq(match(HTTP_POST, "/v1/organizations/org%5Fa/credits", &req, &allowed), &table[3]);
    cr_assert_str_eq(req.path, "/v1/organizations/org_a/credits");
    cr_assert_str_eq(req_param(&req, "org_id"), "org_a");
    cr_assert_eq(match(HTTP_POST, "/v1/organizations", &req, &allowed), &table[0]);
    cr_assert_str_eq(req.path, "/v1/organizations");
}

Test(router, head_is_served_by_get)
{
    struct request req;
    unsigned allowed;
    cr_assert_eq(match(HTTP_HEAD, "/v1/organizations/o1", &req, &allowed), &table[1]);
}

Test(router, wrong_method_reports_allowed_methods)
{
    struct request req;
    unsigned allowed;
    char allow[64];

    cr_assert_null(match(HTTP_DELETE, "/v1/organizations/o1/credits", &req, &allowed));
    http_allow_header(allowed, allow, sizeof allow);
    cr_assert_str_eq(allow, "GET, HEAD, POST");
}

Test(router, unknown_paths_match_nothing)
{
    static const char *const paths[] = {
        "/", "/v1", "/v1/organizations/", "/v1/organizations/o1/credits/x", "/v2/organizations",
        "/v1/organizations/a%20b", "/v1/organizations/%2", "/v1/organizations/%00",
        "v1/organizations", "//v1/organizations",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct request req;
        unsigned allowed;
        cr_assert_null(match(HTTP_GET, paths[i], &req, &allowed), "%s matched", paths[i]);
        cr_assert_eq(allowed, 0, "%s allowed methods", paths[i]);
    }
}

Test(router, percent_encoded_id_characters_decode)
{
    struct request req;
    unsigned allowed;
    cr_assert_eq(match(HTTP_GET, "/v1/organizations/%41cme", &req, &allowed), &table[1]);
    cr_assert_str_eq(req_param(&req, "org_id"), "Acme");
}

Test(router, id_longer_than_128_is_not_a_match)
{
    char path[300] = "/v1/organizations/";
    struct request req;
    unsigned allowed;
    memset(path + strlen(path), 'a', 129);
    cr_assert_null(match(HTTP_GET, path, &req, &allowed));
}

Test(query, finds_and_decodes)
{
    char v[16];
    cr_assert_eq(query_get("a=1&top_n=25&b", "top_n", v, sizeof v), QUERY_FOUND);
    cr_assert_str_eq(v, "25");
    cr_assert_eq(query_get("top_n=%31%30", "top_n", v, sizeof v), QUERY_FOUND);
    cr_assert_str_eq(v, "10");
    cr_assert_eq(query_get("top_nn=3", "top_n", v, sizeof v), QUERY_ABSENT);
    cr_assert_eq(query_get("", "top_n", v, sizeof v), QUERY_ABSENT);
    cr_assert_eq(query_get("top_n=%zz", "top_n", v, sizeof v), QUERY_INVALID);
    cr_assert_eq(query_get("top_n=12345678901234567890", "top_n", v, sizeof v), QUERY_INVALID);
    cr_assert_eq(query_get("top_n", "top_n", v, sizeof v), QUERY_FOUND);
    cr_assert_str_eq(v, "");
}

/* top_n and limit: digits only, in range; the default only when absent. */
Test(query, integer_in_range_or_refused)
{
    long long v = 0;

    cr_assert(query_int("a=1", "limit", 1, 200, 50, &v));
    cr_assert_eq(v, 50);
    cr_assert(query_int("limit=200", "limit", 1, 200, 50, &v));
    cr_assert_eq(v, 200);
    cr_assert(query_int("limit=%37", "limit", 1, 200, 50, &v));
    cr_assert_eq(v, 7);
    const char *refused[] = {"limit=0", "limit=201", "limit=-1", "limit=+5", "limit=%205",
                             "limit=%095", "limit=5x", "limit=", "limit",
                             "limit=99999999999999999999", "limit=%zz"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        cr_assert_not(query_int(refused[i], "limit", 1, 200, 50, &v), "%s accepted", refused[i]);
}

Test(content_type, json_with_parameters)
{
    cr_assert(content_type_is_json("application/json"));
    cr_assert(content_type_is_json("Application/JSON; charset=UTF-8"));
    cr_assert(content_type_is_json("application/json;charset=\"utf-8\""));
    cr_assert_not(content_type_is_json(NULL));
    cr_assert_not(content_type_is_json("text/plain"));
    cr_assert_not(content_type_is_json("application/jsonp"));
    cr_assert_not(content_type_is_json("application/json; charset=latin1"));
    cr_assert_not(content_type_is_json("application/x-www-form-urlencoded"));
}
