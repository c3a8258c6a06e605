/* test_leaderboard.c: the public leaderboard reads (constraint B's API).
 *
 * top_n defaults to 10 and must be an integer 1..100 (anything else is a 400
 * invalid-query, never a silent clamp); an event without scores -- known or
 * not, the read touches only Redis -- is an empty list; the speaker endpoint
 * gives the same rank and score as the list and 404 for a speaker with no
 * score. The reads need no Authorization (they run on attendee devices).
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

TestSuite(leaderboard, .init = it_setup);

/* 12 speakers of one session (payload.speaker_id), speaker i scored i+1. */
static char *setup_twelve(char *speakers[12])
{
    char *org = make_org(0);
    char *evt = make_event(org);
    char *base = it_id("spk");
    for (int i = 0; i < 12; i++)
        speakers[i] = fmt("%s_%02d", base, i);
    char *ses = make_session(evt, speakers[0]);
    struct view views[78];
    size_t n = 0;
    for (int i = 0; i < 12; i++)
        for (int k = 0; k <= i; k++)
            views[n++] = (struct view){ses, speakers[i]};
    post_views(views, n);
    return evt;
}

/* setup_twelve, and the board it must show: speaker i scored i + 1, ranked 12 - i. */
static char *setup_twelve_expected(char *spk[12], struct board_entry want[12])
{
    char *evt = setup_twelve(spk);
    for (int i = 0; i < 12; i++)
        want[i] = (struct board_entry){spk[11 - i], 12 - i, i + 1};
    return evt;
}

Test(leaderboard, top_n_default_bounds_and_order)
{
    char *spk[12];
    struct board_entry want[12];
    char *evt = setup_twelve_expected(spk, want);
    EXPECT_BOARD(evt, "", want, 10);
    EXPECT_BOARD(evt, "?top_n=10", want, 10);
    EXPECT_BOARD(evt, "?top_n=1", want, 1);
    EXPECT_BOARD(evt, "?top_n=12", want, 12);
    EXPECT_BOARD(evt, "?top_n=100", want, 12);
    /* Unknown query parameters are ignored. */
    EXPECT_BOARD(evt, "?top_n=2&colour=blue", want, 2);
}

Test(leaderboard, speaker_endpoint_matches_the_list)
{
    char *spk[12];
    char *evt = setup_twelve(spk);
    for (int i = 0; i < 12; i += 5) {
        char *path = fmt("/v1/events/%s/leaderboard/speakers/%s", evt, spk[i]);
        struct http_resp *r = http_get_as(path, "");
        EXPECT_JSON(r, 200);
        EXPECT_STR(resp_json(r), "event_id", evt);
        EXPECT_STR(resp_json(r), "speaker_id", spk[i]);
        EXPECT_INT(resp_json(r), "score", i + 1);
        EXPECT_INT(resp_json(r), "rank", 12 - i);
    }
    char *nobody = fmt("/v1/events/%s/leaderboard/speakers/%s", evt, it_id("spk_nobody"));
    struct http_resp *r = http_get_as(nobody, "");
    EXPECT_PROBLEM(r, 404, "not-found");
    char *no_event = fmt("/v1/events/%s/leaderboard/speakers/%s", it_id("evt_ghost"), spk[0]);
    r = http_get_as(no_event, "");
    EXPECT_PROBLEM(r, 404, "not-found");
}

Test(leaderboard, ties_share_a_rank_in_the_speaker_endpoint)
{
    char *org = make_org(0);
    char *evt = make_event(org);
    char *base = it_id("spk");
    char *x = fmt("%s_x", base), *y = fmt("%s_y", base), *z = fmt("%s_z", base);
    char *ses = make_session(evt, x);
    const struct view views[] = {{ses, x}, {ses, x}, {ses, y}, {ses, y}, {ses, z}};
    post_views(views, 5);
    const struct board_entry want[] = {{y, 2, 1}, {x, 2, 1}, {z, 1, 3}};
    EXPECT_BOARD(evt, "", want, 3);
    const char *who[] = {x, y, z};
    const long long rank[] = {1, 1, 3};
    for (int i = 0; i < 3; i++) {
        char *path = fmt("/v1/events/%s/leaderboard/speakers/%s", evt, who[i]);
        struct http_resp *r = http_get_as(path, "");
        EXPECT_JSON(r, 200);
        EXPECT_INT(resp_json(r), "rank", rank[i]);
    }
}

Test(leaderboard, bad_top_n_is_400_invalid_query)
{
    char *org = make_org(0);
    char *evt = make_event(org);
    const char *bad[] = {"0", "101", "abc", "1.5", "-1", "", "10abc", "1e1", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *path = fmt("/v1/events/%s/leaderboard?top_n=%s", evt, bad[i]);
        struct http_resp *r = http_get_as(path, "");
        EXPECT_PROBLEM(r, 400, "invalid-query");
        http_resp_free(r);
        free(path);
    }
}

Test(leaderboard, unknown_event_is_an_empty_list)
{
    char *ghost = it_id("evt_ghost");
    EXPECT_BOARD(ghost, "", NULL, 0);
    /* A known event with no score yet is the same. */
    char *org = make_org(0);
    char *evt = make_event(org);
    EXPECT_BOARD(evt, "?top_n=5", NULL, 0);
}

/* ---- the board's version (store/leaderboards.c note 9, docs/adr/0013) ---- */

/* The board's version as served, and its ETag into etag (caller frees). */
static long long board_version(const char *evt, const char *query, char **etag)
{
    struct http_resp *r = http_get_as(fmt("/v1/events/%s/leaderboard%s", evt, query), "");
    long long v = -1;

    EXPECT_JSON(r, 200);
    cr_assert(jint(resp_json(r), "version", &v), "%s: no integer version: %s", r->what, r->body);
    if (etag) {
        const char *h = r->headers;
        while (h && strncasecmp(h, "etag:", 5) != 0)
            h = (h = strchr(h, '\n')) ? h + 1 : NULL;
        cr_assert(h, "%s: no ETag", r->what);
        h += strlen("etag:");
        h += strspn(h, " ");
        *etag = fmt("%.*s", (int)strcspn(h, "\r\n"), h);
    }
    return v;
}

/* Reads until the served version is want (bounded: the micro-cache serves a
 * render for 100 ms after another process wrote); returns the last one read. */
static long long board_version_becomes(const char *evt, long long want)
{
    long long v = -1;

    for (int i = 0; i < 40 && v != want; i++) {
        if (i)
            it_pause_ms(50);
        v = board_version(evt, "", NULL);
    }
    return v;
}

/* The version is the number of views counted on the board: every applied
 * view raises it by one, wherever its speaker ranks (top_n=1 included), and
 * a duplicate, counted once, raises it once. Stored beside the board. */
Test(leaderboard, version_counts_every_applied_view)
{
    char *org = make_org(0);
    char *evt = make_event(org);
    char *a = it_id("spk_a"), *b = it_id("spk_b");
    char *ses = make_session(evt, a);
    char *user = it_id("att");
    char *dup = it_id("view");

    cr_assert_eq(board_version(evt, "", NULL), 0, "a board with no view has version 0");
    for (long long i = 1; i <= 3; i++) {
        EXPECT_JSON(post_view(i == 1 ? dup : it_id("view"), ses, a, user), 201);
        cr_assert_eq(board_version(evt, "?top_n=1", NULL), i, "after %lld views", i);
    }
    EXPECT_JSON(post_view(it_id("view"), ses, b, user), 201);
    cr_assert_eq(board_version(evt, "?top_n=1", NULL), 4, "a view below the top 1 did not raise the version");
    EXPECT_JSON(post_view(dup, ses, a, user), 200);
    cr_assert_eq(board_version(evt, "", NULL), 4, "a duplicate raised the version");
    cr_assert_eq(redis_ll("GET %s:version", lb_key(evt)), 4, "the version is not kept beside the board");
}

/* Redis loses a board (its three keys gone, as after a flush): the board
 * restarts at version 0 until the rebuild, which restores exactly the version
 * readers saw before the loss -- never less -- and the same board. */
Test(leaderboard, version_after_a_rebuild_equals_the_version_before_the_loss)
{
    char *spk[12];
    struct board_entry want[12];
    char *evt = setup_twelve_expected(spk, want);
    long long before = board_version(evt, "", NULL);
    cr_assert_eq(before, 78, "12 speakers scored 1..12 are 78 views");

    /* The outbox worker re-applies views until it settles their rows; one
     * re-applied after the loss would start the lost board above 0. */
    long long outbox = -1;
    for (int i = 0; i < 100 && outbox != 0; i++) {
        if (i)
            it_pause_ms(50);
        outbox = pg_ll("SELECT count(*) FROM leaderboard_outbox o JOIN analytics_events e ON e.seq = o.seq"
                       " WHERE e.leaderboard_event_id = $1", PG_PARAMS(evt));
    }
    cr_assert_eq(outbox, 0, "the outbox worker did not settle the views within 5 s");
    char *key = lb_key(evt);
    redis_ll("DEL %s %s %s:version", key, lb_applied_key(evt), key);
    cr_assert_eq(board_version_becomes(evt, 0), 0, "a lost board is not served as version 0");
    const char *argv[] = {ET_BINARY_PATH, "rebuild-leaderboards", evt, NULL};
    struct run run = run_binary(argv, NULL, 60000);
    cr_assert(!run.timed_out && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
              "rebuild-leaderboards %s failed; stderr: %s", evt, run.err);
    cr_assert_eq(board_version_becomes(evt, before), before, "the rebuilt version is not the one before the loss");
    EXPECT_BOARD(evt, "", want, 10);

    /* A board from before versions (no version key): its next view sets the
     * version to the total of its scores, plus that view. */
    redis_ll("DEL %s:version", key);
    EXPECT_JSON(post_view(it_id("view"), make_session(evt, spk[0]), spk[0], it_id("att")), 201);
    cr_assert_eq(board_version(evt, "", NULL), before + 1, "the first view on a board without a version");
}

/* The ETag hashes the body, version included: an unchanged board answers
 * 304 to its ETag; a view anywhere on the board, even below the top N,
 * makes a new version and so a 200 with a new ETag. */
Test(leaderboard, etag_revalidation_follows_the_version)
{
    char *spk[12];
    char *evt = setup_twelve(spk);
    char *etag = NULL, *etag2 = NULL;
    long long v = board_version(evt, "?top_n=3", &etag);
    const char *inm[] = {fmt("If-None-Match: %s", etag), NULL};
    struct http_req rq = {.method = "GET", .path = fmt("/v1/events/%s/leaderboard?top_n=3", evt),
                          .auth = "", .headers = inm};

    struct http_resp *r = http_do(&rq);
    EXPECT_STATUS(r, 304);
    cr_assert_eq(r->len, 0, "a 304 carries no body");
    EXPECT_JSON(post_view(it_id("view"), make_session(evt, spk[0]), spk[0], it_id("att")), 201);
    r = http_do(&rq);
    EXPECT_JSON(r, 200);
    cr_assert_eq(jint_or(resp_json(r), "version", -1), v + 1, "the view below the top 3 is not in the version");
    cr_assert_eq(board_version(evt, "?top_n=3", &etag2), v + 1);
    cr_assert_str_neq(etag, etag2, "a new version kept the old ETag");
}
