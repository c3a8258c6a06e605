/* test_cancel.c: DELETE /v1/registrations/{id} -- cancel and refund one
 * credit in one transaction (issue 15, point 2): the refund ledger row, the
 * kept row with cancelled_at, the freed (session, user) place, 409 on a
 * second cancel, tenant isolation, Idempotency-Key, and exactness under
 * concurrency (one refund for 20 racing cancels; cancels racing
 * registrations keep balance = credited - active, every bucket >= 0 and the
 * ledger sum = the balance). */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

TestSuite(cancel, .init = it_setup);

static void expect_books_balance(const char *org, long long credited)
{
    long long active = pg_ll("SELECT count(*) FROM registrations WHERE organization_id = $1"
                             " AND cancelled_at IS NULL", PG_PARAMS(org));
    long long balance = pg_ll("SELECT balance FROM organization_balances WHERE organization_id = $1",
                              PG_PARAMS(org));
    cr_assert_eq(balance, credited - active, "balance %lld != credited %lld - active %lld",
                 balance, credited, active);
    cr_assert_eq(pg_ll("SELECT coalesce(sum(delta), 0) FROM credit_ledger WHERE organization_id = $1",
                       PG_PARAMS(org)), balance, "the ledger sum differs from the balance");
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_buckets WHERE organization_id = $1 AND credits < 0",
                       PG_PARAMS(org)), 0, "a bucket went below zero");
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations r WHERE organization_id = $1 AND"
                       " (cancelled_at IS NOT NULL) <> EXISTS (SELECT 1 FROM credit_ledger l"
                       "  WHERE l.registration_id = r.id AND l.kind = 'refund')", PG_PARAMS(org)),
                 0, "a cancelled registration without exactly its refund (or the reverse)");
}

/* Registers a user and returns the registration id. */
static char *registered(const char *ses, const char *user, const char *org)
{
    struct http_resp *r = post_registration(ses, user, org, NULL);
    EXPECT_JSON(r, 201);
    char *id = it_strdup(jstr(resp_json(r), "id"));
    http_resp_free(r);
    return id;
}

static struct http_resp *cancel_as(const char *id, const char *auth, const char *idem_key)
{
    char *path = fmt("/v1/registrations/%s", id);
    struct http_resp *r = http_do(&(struct http_req){.method = "DELETE", .path = path,
                                                     .auth = auth, .idem_key = idem_key});
    free(path);
    return r;
}

Test(cancel, refunds_one_credit_and_keeps_the_row)
{
    char *org = make_org(2);
    char *ses = make_session(make_event(org), it_id("spk"));
    char *id = registered(ses, it_id("user"), org);

    struct http_resp *r = cancel_as(id, NULL, NULL);
    EXPECT_JSON(r, 200);
    cJSON *j = resp_json(r);
    EXPECT_STR(j, "id", id);
    EXPECT_STR(j, "status", "cancelled");
    EXPECT_INT(j, "credits_remaining", 2);
    cr_assert(jstr(j, "cancelled_at") != NULL, "no cancelled_at in %s", r->body);
    http_resp_free(r);

    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE registration_id = $1 AND kind = 'refund'"
                       " AND delta = 1", PG_PARAMS(id)), 1, "expected one refund row of +1");
    r = http_get(fmt("/v1/registrations/%s", id));
    EXPECT_JSON(r, 200);
    EXPECT_STR(resp_json(r), "status", "cancelled");
    http_resp_free(r);
    expect_books_balance(org, 2);
}

Test(cancel, second_cancel_is_409_and_changes_nothing)
{
    char *org = make_org(2);
    char *ses = make_session(make_event(org), it_id("spk"));
    char *id = registered(ses, it_id("user"), org);

    http_resp_free(cancel_as(id, NULL, NULL));
    char *before = pg_text("SELECT cancelled_at::text FROM registrations WHERE id = $1", PG_PARAMS(id));
    struct http_resp *r = cancel_as(id, NULL, NULL);
    EXPECT_PROBLEM(r, 409, "registration-cancelled");
    http_resp_free(r);
    cr_assert_str_eq(pg_text("SELECT cancelled_at::text FROM registrations WHERE id = $1", PG_PARAMS(id)),
                     before);
    cr_assert_eq(get_balance(org), 2);
    expect_books_balance(org, 2);
}

Test(cancel, frees_the_place_for_one_new_credit)
{
    char *org = make_org(1);
    char *ses = make_session(make_event(org), it_id("spk"));
    char *user = it_id("user");
    char *id = registered(ses, user, org);

    struct http_resp *r = post_registration(ses, user, org, NULL);
    EXPECT_PROBLEM(r, 409, "already-registered");
    http_resp_free(r);
    http_resp_free(cancel_as(id, NULL, NULL));
    char *again = registered(ses, user, org);
    cr_assert_str_neq(again, id);
    cr_assert_eq(get_balance(org), 0);
    /* Out of credit again: the cancelled row must not make this a 409. */
    r = post_registration(ses, user, org, NULL);
    EXPECT_PROBLEM(r, 409, "already-registered");
    http_resp_free(r);
    r = post_registration(ses, it_id("user"), org, NULL);
    EXPECT_PROBLEM(r, 402, "insufficient-credits");
    http_resp_free(r);
    http_resp_free(cancel_as(again, NULL, NULL));
    r = post_registration(ses, it_id("user"), org, NULL);
    EXPECT_JSON(r, 201);
    http_resp_free(r);
    expect_books_balance(org, 1);
}

Test(cancel, refused_registration_of_a_cancelled_user_is_402_not_409)
{
    char *org = make_org(1);
    char *ses = make_session(make_event(org), it_id("spk"));
    char *user = it_id("user");
    char *id = registered(ses, user, org);

    http_resp_free(cancel_as(id, NULL, NULL));
    http_resp_free(post_registration(ses, it_id("user"), org, NULL));   /* spends the refund */
    struct http_resp *r = post_registration(ses, user, org, NULL);
    EXPECT_PROBLEM(r, 402, "insufficient-credits");
    http_resp_free(r);
    expect_books_balance(org, 1);
}

Test(cancel, unknown_and_foreign_registrations_are_404)
{
    char *key_a, *key_b;
    char *org_a = make_org_key(2, &key_a);
    make_org_key(2, &key_b);
    char *ses = make_session(make_event(org_a), it_id("spk"));
    char *id = registered(ses, it_id("user"), org_a);

    struct http_resp *r = cancel_as(it_id("reg_missing"), NULL, NULL);
    EXPECT_PROBLEM(r, 404, "not-found");
    http_resp_free(r);
    r = cancel_as(id, key_b, NULL);
    EXPECT_PROBLEM(r, 404, "not-found");
    http_resp_free(r);
    cr_assert_eq(pg_ll("SELECT count(*) FROM registrations WHERE id = $1 AND cancelled_at IS NULL",
                       PG_PARAMS(id)), 1, "another organization's key cancelled the registration");
    cr_assert_eq(get_balance(org_a), 1);
    r = cancel_as(id, key_a, NULL);
    EXPECT_JSON(r, 200);
    http_resp_free(r);
    expect_books_balance(org_a, 2);
}

Test(cancel, idempotency_key_replays_the_first_answer)
{
    char *org = make_org(2);
    char *ses = make_session(make_event(org), it_id("spk"));
    char *id = registered(ses, it_id("user"), org);
    char *key = it_id("idem");

    struct http_resp *first = cancel_as(id, NULL, key);
    EXPECT_JSON(first, 200);
    struct http_resp *again = cancel_as(id, NULL, key);
    EXPECT_JSON(again, 200);
    cr_assert_str_eq(again->body, first->body, "the retry was not a replay");
    http_resp_free(first);
    http_resp_free(again);
    /* The same key on another operation is another key (ADR 0010). */
    struct http_resp *other = cancel_as(id, NULL, it_id("idem"));
    EXPECT_PROBLEM(other, 409, "registration-cancelled");
    http_resp_free(other);
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE registration_id = $1 AND kind = 'refund'",
                       PG_PARAMS(id)), 1);
    expect_books_balance(org, 2);
}

Test(cancel, twenty_concurrent_cancels_refund_once)
{
    enum { N = 20 };
    char *org = make_org(3);
    char *ses = make_session(make_event(org), it_id("spk"));
    char *id = registered(ses, it_id("user"), org);
    char *path = fmt("/v1/registrations/%s", id);
    struct http_par par[N];

    for (int i = 0; i < N; i++)
        par[i] = (struct http_par){.req = {.method = "DELETE", .path = path,
                                           .idem_key = i % 2 ? it_id("idem") : NULL}};
    http_parallel(par, N);
    int ok = 0, conflict = 0;
    for (int i = 0; i < N; i++) {
        if (par[i].resp->status == 200)
            ok++;
        else if (check_problem(par[i].resp, 409, "registration-cancelled", NULL) == NULL)
            conflict++;
        http_resp_free(par[i].resp);
    }
    cr_assert_eq(ok, 1, "%d cancels succeeded", ok);
    cr_assert_eq(conflict, N - 1, "%d of %d others answered 409", conflict, N - 1);
    cr_assert_eq(pg_ll("SELECT count(*) FROM credit_ledger WHERE registration_id = $1 AND kind = 'refund'",
                       PG_PARAMS(id)), 1);
    expect_books_balance(org, 3);
}

Test(cancel, cancels_racing_registrations_keep_the_books)
{
    enum { EXISTING = 30, NEW = 40 };
    const long long credited = 40;
    char *org = make_org(credited);
    char *ses = make_session(make_event(org), it_id("spk"));
    char *users[EXISTING];
    char *ids[EXISTING];
    struct http_par par[EXISTING + NEW];

    for (int i = 0; i < EXISTING; i++) {
        users[i] = it_id("user");
        ids[i] = registered(ses, users[i], org);
    }
    for (int i = 0; i < EXISTING; i++)
        par[i] = (struct http_par){.req = {.method = "DELETE",
                                           .path = fmt("/v1/registrations/%s", ids[i])}};
    for (int i = 0; i < NEW; i++) {
        /* Half re-register a user whose place is being freed right now. */
        const char *user = i < EXISTING / 2 ? users[i] : it_id("user");
        par[EXISTING + i] = (struct http_par){.req = {
            .method = "POST", .path = "/v1/registrations", .content_type = "application/json",
            .body = fmt("{\"session_id\":\"%s\",\"user_id\":\"%s\",\"organization_id\":\"%s\","
                        "\"ticket_type\":\"standard\",\"price_paid\":\"1.00\"}", ses, user, org)}};
    }
    http_parallel(par, EXISTING + NEW);
    for (int i = 0; i < EXISTING + NEW; i++) {
        long st = par[i].resp->status;
        cr_assert(st == 200 || st == 201 || st == 402 || st == 409,
                  "unexpected %ld: %s", st, par[i].resp->body);
        if (i < EXISTING)
            cr_assert_eq(st, 200, "cancel %d answered %ld: %s", i, st, par[i].resp->body);
        http_resp_free(par[i].resp);
    }
    expect_books_balance(org, credited);
}
