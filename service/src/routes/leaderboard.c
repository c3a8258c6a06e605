/*
 * routes/leaderboard.c - the speaker leaderboard, constraint B.
 *
 * The hot path of the service: attendee devices poll it every 5 seconds.
 * It touches Redis only (one round trip), never PostgreSQL, so it keeps
 * answering while PostgreSQL is down and costs the same however large the
 * analytics log grows.
 */
#include <errno.h>
#include <stdlib.h>

#include "app.h"
#include "http/router.h"
#include "json/codec.h"
#include "routes/routes.h"
#include "store/store.h"

#define TOP_N_DEFAULT 10

/* top_n: an integer from 1 to LEADERBOARD_TOP_MAX, default 10; else 400. */
static bool parse_top_n(const char *query, long long *top_n)
{
    char text[16], *end;
    long long v;

    *top_n = TOP_N_DEFAULT;
    switch (query_get(query, "top_n", text, sizeof text)) {
    case QUERY_ABSENT:  return true;
    case QUERY_INVALID: return false;
    case QUERY_FOUND:   break;
    }
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || text[0] == '+' || text[0] == ' ' ||
        v < 1 || v > LEADERBOARD_TOP_MAX)
        return false;
    *top_n = v;
    return true;
}

void api_leaderboard_top(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct leaderboard_entry entries[LEADERBOARD_TOP_MAX];
    const char *event_id = req_param(req, "event_id");
    long long top_n;
    size_t n;

    if (!parse_top_n(req->query, &top_n)) {
        respond_error(res, ET_ERR_MALFORMED, "invalid-query",
                      "top_n must be an integer from 1 to %d", LEADERBOARD_TOP_MAX);
        return;
    }
    if (leaderboard_top(req->app->redis, event_id, top_n, entries, &n, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_leaderboard(respond_json(res, 200), event_id, entries, n);
    /* Devices poll every 5 s: a cache may serve it for 4, after which the
     * browser revalidates and an unchanged board costs a 304 with no body. */
    respond_etag(res);
    res->cache_control = "public, max-age=4";
}

void api_leaderboard_speaker(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct leaderboard_entry entry;
    const char *event_id = req_param(req, "event_id");

    if (leaderboard_speaker(req->app->redis, event_id, req_param(req, "speaker_id"), &entry,
                            &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_speaker_rank(respond_json(res, 200), event_id, &entry);
    respond_etag(res);
    res->cache_control = "public, max-age=4";
}
