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

Test(leaderboard, top_n_default_bounds_and_order)
{
    char *spk[12];
    char *evt = setup_twelve(spk);
    struct board_entry want[12];
    for (int i = 0; i < 12; i++)
        want[i] = (struct board_entry){spk[11 - i], 12 - i, i + 1};
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
