/* test_keyed_groups.c: keyed registrations (Idempotency-Key) saved in groups
 * (store/registrations.c, design note 8; docs/adr/0016).
 *
 * The record must commit with the registration: the test proves it by the
 * transaction id, which PostgreSQL stamps on every row a transaction writes
 * (xmin). A keyed 201 whose record has another xmin than its registration
 * was not saved atomically; a keyed registration sharing its xmin with
 * another registration was saved in a group.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

TestSuite(keyed_groups, .init = it_setup, .timeout = 120);

enum { N = 160, FOREIGN = 6, SAME_KEY = 10, CREDITS = 1000 };

struct rush {
    char *org, *ses, *foreign_ses, *same_key;
    struct http_par p[N];
};

/* Request i: even ones keyed (each its own key, except the first SAME_KEY
 * even ones, which share one key and body), odd ones not; the last FOREIGN
 * keyed ones name another organization's session (422, run alone). */
static bool keyed(size_t i) { return i % 2 == 0; }
static bool foreign(size_t i) { return keyed(i) && i >= N - 2 * FOREIGN; }
static bool same_key(size_t i) { return keyed(i) && i < 2 * SAME_KEY; }

/* Every worker thread's PostgreSQL connection open before the rush: on a
 * loaded machine a burst of first connections can time out (503), which is
 * not what this suite tests. Bounded: 10 rounds of 32 reads at once. */
static void warm_connections(const char *org)
{
    enum { W = 32 };
    struct http_par p[W];
    bool all_ok = false;

    for (int round = 0; round < 10 && !all_ok; round++) {
        memset(p, 0, sizeof p);
        for (size_t i = 0; i < W; i++)
            p[i].req = (struct http_req){.method = "GET", .path = fmt("/v1/organizations/%s", org)};
        http_parallel(p, W);
        all_ok = true;
        for (size_t i = 0; i < W; i++) {
            all_ok = all_ok && p[i].resp->status == 200;
            http_resp_free(p[i].resp);
        }
    }
    cr_assert(all_ok, "the service's connections did not all open in 10 rounds");
}

static void rush_prepare(struct rush *r)
{
    char *same_user = it_id("same");

    r->org = make_org(CREDITS);
    r->ses = make_session(make_event(r->org), it_id("spk"));
    r->foreign_ses = make_session(make_event(make_org(10)), it_id("spk"));
    r->same_key = it_id("idem");
    warm_connections(r->org);
    for (size_t i = 0; i < N; i++)
        r->p[i].req = (struct http_req){
            .method = "POST", .path = "/v1/registrations", .content_type = "application/json",
            .idem_key = !keyed(i) ? NULL : same_key(i) ? r->same_key : it_id("idem"),
            .body = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                        "\"ticket_type\":\"standard\",\"price_paid\":5}",
                        foreign(i) ? r->foreign_ses : r->ses, same_key(i) ? same_user : it_id("user"),
                        r->org)};
}

/* A keyed 201: its record holds its body and was written by its transaction. */
static void expect_recorded_with(const struct http_resp *resp, const char *key)
{
    const char *id = jstr(resp_json((struct http_resp *)resp), "id");

    cr_assert_not_null(id);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations r JOIN idempotency_keys k"
                       " ON k.key = $2 AND k.xmin = r.xmin AND k.status = 201 WHERE r.id = $1",
                       PG_PARAMS(id, key)), 1,
                 "the record of %s was not committed by the transaction of its registration", key);
    /* The wire adds a final newline to every JSON body (http/response.c). */
    char *stored = pg_text("SELECT response_body || chr(10) FROM idempotency_keys WHERE key = $1",
                           PG_PARAMS(key));
    cr_assert_str_eq(stored, resp->body, "the record stores another body than the answer:\n%s\n%s",
                     stored, resp->body);
}

Test(keyed_groups, keyed_registrations_join_groups_with_their_records_and_replay)
{
    static struct rush r;
    int created = 0, same_key_201 = 0;
    const char *same_key_body = NULL;

    rush_prepare(&r);
    http_parallel(r.p, N);
    for (size_t i = 0; i < N; i++) {
        struct http_resp *resp = r.p[i].resp;
        if (foreign(i)) {
            EXPECT_PROBLEM(resp, 422, "validation-failed");
            continue;
        }
        if (same_key(i) && resp->status == 409) {
            EXPECT_PROBLEM(resp, 409, "idempotency-key-in-progress");
            continue;
        }
        EXPECT_JSON(resp, 201);
        if (same_key(i)) {                    /* the first answer, or its replay */
            if (same_key_body == NULL) {
                same_key_body = resp->body;
                created++;
            }
            cr_assert_str_eq(resp->body, same_key_body, "one key answered two different 201s");
            same_key_201++;
            continue;
        }
        created++;
        if (keyed(i)) {
            expect_recorded_with(resp, r.p[i].req.idem_key);
        }
    }
    cr_assert_geq(same_key_201, 1);
    cr_assert_eq(created, N / 2 + N / 2 - FOREIGN - SAME_KEY + 1);
    cr_assert_eq(get_balance(r.org), CREDITS - created);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE organization_id = $1", PG_PARAMS(r.org)),
                 created);
    cr_assert_eq(pg_ll("SELECT b.balance - COALESCE((SELECT sum(delta) FROM credit_ledger l"
                       " WHERE l.organization_id = b.organization_id), 0)"
                       " FROM organization_balances b WHERE b.organization_id = $1", PG_PARAMS(r.org)),
                 0, "the balance differs from the sum of the ledger");
    /* Keyed registrations that share their transaction with another one. */
    cr_assert_gt(pg_ll("SELECT count(*) FROM registrations r JOIN idempotency_keys k ON k.xmin = r.xmin"
                       " WHERE r.organization_id = $1 AND EXISTS (SELECT 1 FROM registrations o"
                       "   WHERE o.organization_id = $1 AND o.xmin = r.xmin AND o.id <> r.id)",
                       PG_PARAMS(r.org)), 0,
                 "no keyed registration was saved in a group: the test proved nothing about them");

    /* Every keyed request again, one by one: the same answer, nothing more. */
    for (size_t i = 0; i < N; i++) {
        if (!keyed(i))
            continue;
        struct http_resp *again = http_do(&r.p[i].req);
        const struct http_resp *first = r.p[i].resp;
        if (same_key(i)) {
            EXPECT_JSON(again, 201);
            cr_assert_str_eq(again->body, same_key_body);
        } else {
            cr_assert_eq(again->status, first->status, "a replay changed the status: %s", again->body);
            cr_assert_str_eq(again->body, first->body, "a replay changed the body");
        }
        http_resp_free(again);
    }
    cr_assert_eq(get_balance(r.org), CREDITS - created, "a replay took another credit");

    /* The first key with another body is refused and changes nothing. */
    struct http_req other = r.p[2 * SAME_KEY].req;
    other.body = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                     "\"ticket_type\":\"standard\",\"price_paid\":5}", r.ses, it_id("user"), r.org);
    struct http_resp *reused = http_do(&other);
    EXPECT_PROBLEM(reused, 422, "idempotency-key-reused");
    http_resp_free(reused);
    cr_assert_eq(get_balance(r.org), CREDITS - created);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE organization_id = $1", PG_PARAMS(r.org)),
                 created);

    for (size_t i = 0; i < N; i++) {
        http_resp_free(r.p[i].resp);
        free((char *)r.p[i].req.body);
    }
}

/* Clients that send a key with every request (as a retrying client should):
 * with no unkeyed request to lead, keyed ones lead groups themselves, each
 * detached from its own transaction first, and every record still commits
 * with its registration. */
Test(keyed_groups, keyed_registrations_alone_still_form_groups)
{
    enum { K = 96 };
    char *org = make_org(CREDITS);
    char *ses = make_session(make_event(org), it_id("spk"));
    struct http_par *p = calloc(K, sizeof *p);

    warm_connections(org);
    for (size_t i = 0; i < K; i++)
        p[i].req = (struct http_req){
            .method = "POST", .path = "/v1/registrations", .content_type = "application/json",
            .idem_key = it_id("idem"),
            .body = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                        "\"ticket_type\":\"standard\",\"price_paid\":5}", ses, it_id("user"), org)};
    http_parallel(p, K);
    for (size_t i = 0; i < K; i++) {
        EXPECT_JSON(p[i].resp, 201);
        expect_recorded_with(p[i].resp, p[i].req.idem_key);
    }
    cr_assert_eq(get_balance(org), CREDITS - K);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE organization_id = $1", PG_PARAMS(org)), K);
    cr_assert_gt(pg_ll("SELECT count(*) FROM registrations r"
                       " WHERE r.organization_id = $1 AND EXISTS (SELECT 1 FROM registrations o"
                       "   WHERE o.organization_id = $1 AND o.xmin = r.xmin AND o.id <> r.id)",
                       PG_PARAMS(org)), 0,
                 "%d keyed registrations at once, and none shared its transaction: no group formed", K);
    for (size_t i = 0; i < K; i++) {
        struct http_resp *again = http_do(&p[i].req);
        EXPECT_JSON(again, 201);
        cr_assert_str_eq(again->body, p[i].resp->body, "a replay changed the body");
        http_resp_free(again);
        http_resp_free(p[i].resp);
        free((char *)p[i].req.body);
    }
    cr_assert_eq(get_balance(org), CREDITS - K, "a replay took another credit");
    free(p);
}

/* A group that fails as a whole (here: the record of one keyed member is
 * refused by a trigger of the test's own, as a full disk or a broken
 * constraint would) saves nothing, and every member gets its own answer by
 * running alone: the refused one a 5xx with neither its registration nor its
 * record, every other one 201 and saved once. */
Test(keyed_groups, a_group_that_fails_saves_nothing_and_its_members_run_alone)
{
    enum { M = 120, BAD = 6 };
    char *org = make_org(CREDITS);
    char *ses = make_session(make_event(org), it_id("spk"));
    char *bad_prefix = it_id("refused");
    struct http_par *p = calloc(M, sizeof *p);
    int created = 0;

    pg_exec("CREATE OR REPLACE FUNCTION it_refuse_record() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN IF NEW.key LIKE 'refused%' THEN RAISE EXCEPTION 'record refused by the test';"
            " END IF; RETURN NEW; END$$", NULL);
    pg_exec("CREATE OR REPLACE TRIGGER it_refuse_record BEFORE INSERT ON idempotency_keys"
            " FOR EACH ROW EXECUTE FUNCTION it_refuse_record()", NULL);
    warm_connections(org);
    for (size_t i = 0; i < M; i++)
        p[i].req = (struct http_req){
            .method = "POST", .path = "/v1/registrations", .content_type = "application/json",
            .idem_key = i % 3 == 0 ? (i < 3 * BAD ? fmt("%s-%zu", bad_prefix, i) : it_id("idem")) : NULL,
            .body = fmt("{\"session_id\":\"%s\",\"user_id\":\"u%zu-%s\",\"organization_id\":\"%s\","
                        "\"ticket_type\":\"standard\",\"price_paid\":5}", ses, i, bad_prefix, org)};
    http_parallel(p, M);
    pg_exec("DROP TRIGGER it_refuse_record ON idempotency_keys", NULL);
    for (size_t i = 0; i < M; i++) {
        struct http_resp *resp = p[i].resp;
        bool bad = i % 3 == 0 && i < 3 * BAD;
        if (bad) {
            cr_assert(resp->status >= 500, "a refused record answered %ld: %s", resp->status, resp->body);
            cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE organization_id = $1"
                               " AND user_id = $2", PG_PARAMS(org, fmt("u%zu-%s", i, bad_prefix))), 0,
                         "a registration whose record was refused was saved");
            continue;
        }
        EXPECT_JSON(resp, 201);
        created++;
    }
    cr_assert_eq(created, M - BAD);
    cr_assert_eq(pg_ll("SELECT count(*) FROM idempotency_keys WHERE key LIKE $1 || '%'",
                       PG_PARAMS(bad_prefix)), 0);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE organization_id = $1", PG_PARAMS(org)),
                 created);
    cr_assert_eq(get_balance(org), CREDITS - created);
    cr_assert_eq(pg_ll("SELECT b.balance - COALESCE((SELECT sum(delta) FROM credit_ledger l"
                       " WHERE l.organization_id = b.organization_id), 0)"
                       " FROM organization_balances b WHERE b.organization_id = $1", PG_PARAMS(org)),
                 0, "the balance differs from the sum of the ledger");
    for (size_t i = 0; i < M; i++) {
        http_resp_free(p[i].resp);
        free((char *)p[i].req.body);
    }
    free(p);
}
