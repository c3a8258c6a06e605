/* test_buckets.c: the write-path settings of issue 17 -- credit_buckets
 * changed on a live database (store/organizations.c, design note 4) and
 * group_commit_lanes (store/group_commit.c).
 *
 * Replicas may disagree on credit_buckets during a rolling change, so the
 * tests run two services on one database, one per count, and check after
 * every step that no credit moved or vanished: the rows, the balance and the
 * ledger, then that every credit is still spent exactly once.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

TestSuite(buckets, .init = it_setup, .timeout = 120);

static pid_t spawn_with(const char *setting, char **base)
{
    const char *env[] = {setting, NULL};
    const char *args[] = {NULL};

    return spawn_service(args, env, ET_IT_LOG_DIR "/integration-service-buckets.log", base);
}

static long long buckets_of(const char *org)
{
    return pg_ll("SELECT count(*) FROM credit_buckets WHERE organization_id = $1", PG_PARAMS(org));
}

static long long credits_in(const char *org, const char *slots_sql)
{
    return pg_ll(fmt("SELECT coalesce(sum(credits), 0) FROM credit_buckets"
                     " WHERE organization_id = $1 AND %s", slots_sql), PG_PARAMS(org));
}

/* The balance the API reports, the rows' sum and the ledger's sum agree. */
static void expect_exact(const char *org, long long balance)
{
    cr_assert_eq(get_balance(org), balance);
    cr_assert_eq(credits_in(org, "true"), balance);
    cr_assert_eq(pg_ll("SELECT coalesce(sum(delta), 0) FROM credit_ledger WHERE organization_id = $1",
                       PG_PARAMS(org)), balance, "the ledger does not explain the balance");
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_buckets WHERE organization_id = $1 AND credits < 0",
                       PG_PARAMS(org)), 0);
}

static void top_up_at(const char *base, const char *org, int amount, long long balance)
{
    struct http_resp *r = http_post_json_at(base, fmt("/v1/organizations/%s/credits", org),
                                            fmt("{\"amount\":%d}", amount));
    long long got = -1;

    EXPECT_JSON(r, 200);
    cr_assert(jint(resp_json(r), "balance", &got) && got == balance, "top-up answered %s", r->body);
    http_resp_free(r);
}

/* n registrations at once for org on session ses, each sent to bases[i % 2]
 * (NULL: the suite's service); returns how many got a credit. A 503 is a
 * fresh service's connection still opening on a loaded machine: it is sent
 * again, as a client would, and a 409 to a resend means the first attempt
 * had registered (its answer was lost). Anything else than 201 or 402 fails. */
static int register_many(size_t n, const char *org, const char *ses, const char *const bases[2])
{
    struct http_par *p = calloc(n, sizeof *p);
    bool *done = calloc(n, sizeof *done);
    int created = 0;

    for (size_t i = 0; i < n; i++)
        p[i].req = (struct http_req){
            .method = "POST", .path = "/v1/registrations", .content_type = "application/json",
            .base = bases[i % 2],
            .body = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                        "\"ticket_type\":\"standard\",\"price_paid\":1}", ses, it_id("user"), org)};
    for (int round = 0, left = (int)n; left > 0 && round < 20; round++) {
        size_t k = 0;
        struct http_par *again = calloc(n, sizeof *again);
        for (size_t i = 0; i < n; i++)
            if (!done[i])
                again[k++].req = p[i].req;
        http_parallel(again, k);
        for (size_t i = 0, j = 0; i < n; i++) {
            if (done[i])
                continue;
            struct http_resp *r = again[j++].resp;
            if (r->status != 503) {
                if (r->status == 201 || (round > 0 && r->status == 409))
                    created++;
                else
                    EXPECT_PROBLEM(r, 402, "insufficient-credits");
                done[i] = true;
                left--;
            }
            http_resp_free(r);
        }
        free(again);
    }
    for (size_t i = 0; i < n; i++) {
        cr_assert(done[i], "a registration still got 503 after 20 attempts");
        free((char *)p[i].req.body);
    }
    free(p);
    free(done);
    return created;
}

Test(buckets, changing_the_count_on_a_live_database_moves_and_loses_no_credit)
{
    char *eight = NULL;
    pid_t pid = spawn_with("EVENTTRACK_CREDIT_BUCKETS=8", &eight);
    char *org = it_id("org");
    struct http_resp *r = http_post_json_at(eight, "/v1/organizations",
                                            fmt("{\"id\":\"%s\",\"name\":\"Eight\",\"credits\":20}", org));

    EXPECT_JSON(r, 201);
    http_resp_free(r);
    cr_assert_eq(buckets_of(org), 8, "an organization created with credit_buckets=8 has other rows");
    expect_exact(org, 20);

    /* More buckets (the suite's service has the default 16): the missing
     * slots are created with their share, the others keep theirs. */
    top_up_at(it_base_url(), org, 16, 36);
    cr_assert_eq(buckets_of(org), 16);
    cr_assert_eq(credits_in(org, "slot >= 8"), 8, "slots 8-15 should hold one credit each");
    expect_exact(org, 36);

    /* Fewer again: slots 8-15 get nothing more and keep what they hold. */
    top_up_at(eight, org, 8, 44);
    cr_assert_eq(buckets_of(org), 16, "a smaller count must never delete a row");
    cr_assert_eq(credits_in(org, "slot >= 8"), 8, "rows beyond the count were changed");
    expect_exact(org, 44);

    /* Every credit, wherever it lies, is spent once and only once. */
    char *ses = make_session(make_event(org), it_id("spk"));
    int created = register_many(50, org, ses, (const char *const[]){NULL, eight});
    cr_assert_eq(created, 44, "%d registrations for 44 credits", created);
    expect_exact(org, 0);
    http_close();
    cr_assert_eq(stop_spawned_service(pid), 0);
}

Test(buckets, a_count_outside_8_to_16_refuses_to_start)
{
    const char *const counts[] = {"EVENTTRACK_CREDIT_BUCKETS=7", "EVENTTRACK_CREDIT_BUCKETS=17",
                                  "EVENTTRACK_GROUP_COMMIT_LANES=0"};

    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        const char *argv[] = {ET_BINARY_PATH, "serve", "--port", "0", NULL};
        char **env = env_with((const char *const[]){counts[i], NULL});
        struct run r = run_binary(argv, (const char *const *)env, 10000);
        const char *name = strstr(counts[i], "LANES") ? "group_commit_lanes" : "credit_buckets";
        cr_assert(!r.timed_out && WIFEXITED(r.status) && WEXITSTATUS(r.status) != 0,
                  "%s did not refuse to start; stderr: %s", counts[i], r.err);
        cr_assert(strstr(r.err, name) != NULL, "the refusal does not name %s: %s", name, r.err);
        free(env);
        free(r.out);
        free(r.err);
    }
}

static long long metric_at(const char *base, const char *name)
{
    struct http_resp *r = http_get_at(base, "/metrics");
    const char *line = strstr(r->body, fmt("\n%s ", name));
    long long v = line ? strtoll(line + strlen(name) + 2, NULL, 10) : -1;

    http_resp_free(r);
    return v;
}

/* One lane: groups still form (bigger ones), and N credits admit exactly N. */
Test(buckets, one_group_commit_lane_groups_and_stays_exact)
{
    enum { N = 120, CREDITS = 90 };
    char *base = NULL;
    pid_t pid = spawn_with("EVENTTRACK_GROUP_COMMIT_LANES=1", &base);
    char *org = make_org(CREDITS);
    char *ses = make_session(make_event(org), it_id("spk"));
    int created = register_many(N, org, ses, (const char *const[]){base, base});

    cr_assert_eq(created, CREDITS);
    expect_exact(org, 0);
    cr_assert_gt(metric_at(base, "eventtrack_registrations_grouped_total"), 0,
                 "no registration was grouped with one lane: the test proved nothing about it");
    http_close();
    cr_assert_eq(stop_spawned_service(pid), 0);
}
