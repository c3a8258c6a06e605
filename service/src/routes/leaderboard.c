/*
 * routes/leaderboard.c - the speaker leaderboard, constraint B.
 *
 * The hot path of the service: attendee devices poll it every 5 seconds.
 * It touches Redis only (one round trip), never PostgreSQL, so it keeps
 * answering while PostgreSQL is down and costs the same however large the
 * analytics log grows.
 *
 * Micro-cache. Even one Redis round trip costs more than the rest of the
 * request (two syscalls, two process switches on a shared machine), so each
 * worker thread keeps the few boards it rendered last, for at most
 * CACHE_TTL_MS, and serves them without asking Redis. Staleness is bounded
 * twice: a write to any board by this process (leaderboard_writes) drops
 * every render made before it, so a client never misses its own view; and
 * writes by other processes (replicas, a rebuild) show within CACHE_TTL_MS,
 * far inside the 4 s the response already allows shared caches
 * (docs/adr/0008). A board is also served for at most CACHE_TTL_MS after
 * Redis becomes unreachable, then 503 as before. Fixed arrays, no heap: a
 * thread's cache is a few kilobytes and never leaks.
 *
 * Version. The body carries the board's version (the views counted on it,
 * store/leaderboards.c note 9), read in the same script as the top N, and
 * the ETag is a hash of the body: a cached render keeps its version with it,
 * and a 304 means the very same board, version included. Replicas, caches
 * and a rebuild may hand a client a board older than one it has shown; the
 * version lets it tell (the widget keeps the newer one).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "clock.h"
#include "http/router.h"
#include "json/codec.h"
#include "routes/routes.h"
#include "store/store.h"

#define TOP_N_DEFAULT 10
#define CACHE_TTL_MS 100
#define CACHE_SLOTS 4                /* boards per worker thread */
#define CACHE_BODY_MAX 2048          /* a top 10 is ~600 bytes; larger renders are not kept */

struct cached_board {
    char event_id[ID_MAX + 1];
    long long top_n;
    unsigned long long writes;      /* leaderboard_writes() before Redis was read */
    uint64_t expires_ns;
    char etag[24];
    size_t len;
    char body[CACHE_BODY_MAX];
};

static _Thread_local struct cached_board cache[CACHE_SLOTS];

static struct cached_board *cache_slot(const char *event_id, long long top_n)
{
    uint32_t h = 2166136261u;       /* FNV-1a */

    for (const char *c = event_id; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    return &cache[(h ^ (uint32_t)top_n) % CACHE_SLOTS];
}

void api_leaderboard_top(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct leaderboard_entry entries[LEADERBOARD_TOP_MAX];
    const char *event_id = req_param(req, "event_id");
    long long top_n, version;
    size_t n;

    if (!query_int(req->query, "top_n", 1, LEADERBOARD_TOP_MAX, TOP_N_DEFAULT, &top_n)) {
        respond_error(res, ET_ERR_MALFORMED, PT_INVALID_QUERY,
                      "top_n must be an integer from 1 to %d", LEADERBOARD_TOP_MAX);
        return;
    }
    /* Devices poll every 5 s: a cache may serve it for 4, after which the
     * browser revalidates and an unchanged board costs a 304 with no body. */
    res->cache_control = "public, max-age=4";

    struct cached_board *slot = cache_slot(event_id, top_n);
    unsigned long long writes = leaderboard_writes();
    uint64_t now = monotonic_ns();
    if (slot->len > 0 && slot->writes == writes && now < slot->expires_ns &&
        slot->top_n == top_n && strcmp(slot->event_id, event_id) == 0) {
        respond_bytes(res, 200, "application/json", slot->body, slot->len);
        memcpy(res->etag, slot->etag, sizeof res->etag);
        return;
    }
    if (leaderboard_top(req->store, event_id, top_n, entries, &n, &version, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_leaderboard(respond_json(res, 200), event_id, version, entries, n);
    respond_etag(res);
    if (!res->body.failed && res->body.len <= sizeof slot->body) {
        snprintf(slot->event_id, sizeof slot->event_id, "%s", event_id);
        slot->top_n = top_n;
        slot->writes = writes;
        slot->expires_ns = now + CACHE_TTL_MS * 1000000ull;
        memcpy(slot->etag, res->etag, sizeof slot->etag);
        memcpy(slot->body, res->body.data, res->body.len);
        slot->len = res->body.len;
    } else {
        slot->len = 0;
    }
}

void api_leaderboard_speaker(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct leaderboard_entry entry;
    const char *event_id = req_param(req, "event_id");

    if (leaderboard_speaker(req->store, event_id, req_param(req, "speaker_id"), &entry,
                            &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_speaker_rank(respond_json(res, 200), event_id, &entry);
    respond_etag(res);
    res->cache_control = "public, max-age=4";
}
