/* test_lists.c: the lists of issue 15, point 1 -- events of an organization,
 * sessions of an event, the attendees of a session (status=), the ledger
 * (kind=). Each is walked page by page and compared with the database's own
 * order (newest first, ties by id); limits and filters are validated; a
 * malformed, tampered or foreign cursor is 400; another organization's list
 * is 404; and a walk while rows are being added neither skips nor repeats
 * a row that existed when it began. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

TestSuite(lists, .init = it_setup);

#define MAX_ROWS 200

struct walk {
    char *ids[MAX_ROWS];
    size_t n;
    size_t pages;
};

/* GET base (which has a '?') page after page; between pages calls between(). */
static void walk_list(const char *base, const char *auth, struct walk *w, void (*between)(void *),
                      void *arg)
{
    char *cursor = NULL;

    memset(w, 0, sizeof *w);
    for (int guard = 0; guard < 100; guard++) {
        char *path = cursor ? fmt("%s&cursor=%s", base, cursor) : it_strdup(base);
        struct http_resp *r = http_get_as(path, auth);
        EXPECT_JSON(r, 200);
        cJSON *items = jget(resp_json(r), "items");
        cr_assert(cJSON_IsArray(items), "no items array in %s", r->body);
        cJSON *it;
        cJSON_ArrayForEach(it, items) {
            cr_assert(w->n < MAX_ROWS, "too many rows");
            const char *id = jstr(it, "id");
            w->ids[w->n++] = it_strdup(id ? id : cJSON_PrintUnformatted(jget(it, "id")));
        }
        w->pages++;
        const char *next = jstr(resp_json(r), "next_cursor");
        free(cursor);
        cursor = next ? it_strdup(next) : NULL;
        cr_assert(next != NULL || cJSON_IsNull(jget(resp_json(r), "next_cursor")),
                  "next_cursor is neither a string nor null: %s", r->body);
        http_resp_free(r);
        free(path);
        if (cursor == NULL)
            return;
        if (between)
            between(arg);
    }
    cr_assert_fail("the walk of %s did not end", base);
}

/* The ids the database lists for `sql` (one text column, in order). */
static void expect_walk_is(const struct walk *w, const char *sql, const char *param)
{
    long long n = pg_ll(fmt("SELECT count(*) FROM (%s) q", sql), PG_PARAMS(param));
    cr_assert_eq((long long)w->n, n, "walked %zu rows, the database has %lld", w->n, n);
    for (size_t i = 0; i < w->n; i++) {
        char *want = pg_text(fmt("%s OFFSET %zu LIMIT 1", sql, i), PG_PARAMS(param));
        cr_assert_str_eq(w->ids[i], want, "row %zu", i);
    }
}

static char *register_user(const char *ses, const char *org)
{
    struct http_resp *r = post_registration(ses, it_id("user"), org, NULL);
    EXPECT_JSON(r, 201);
    char *id = it_strdup(jstr(resp_json(r), "id"));
    http_resp_free(r);
    return id;
}

Test(lists, every_list_walks_in_order)
{
    char *org = make_org(20);
    char *evt = NULL, *ses = NULL;
    for (int i = 0; i < 5; i++)
        evt = make_event(org);
    for (int i = 0; i < 5; i++)
        ses = make_session(evt, it_id("spk"));
    for (int i = 0; i < 7; i++)
        free(register_user(ses, org));
    struct walk w;

    walk_list(fmt("/v1/organizations/%s/events?limit=2", org), NULL, &w, NULL, NULL);
    cr_assert_eq(w.pages, 3);
    expect_walk_is(&w, "SELECT id::text FROM events WHERE organization_id = $1"
                       " ORDER BY created_at DESC, id DESC", org);
    walk_list(fmt("/v1/events/%s/sessions?limit=2", evt), NULL, &w, NULL, NULL);
    expect_walk_is(&w, "SELECT id::text FROM sessions WHERE event_id = $1"
                       " ORDER BY created_at DESC, id DESC", evt);
    walk_list(fmt("/v1/sessions/%s/registrations?limit=3", ses), NULL, &w, NULL, NULL);
    expect_walk_is(&w, "SELECT id::text FROM registrations WHERE session_id = $1"
                       " ORDER BY registered_at DESC, id DESC", ses);
    walk_list(fmt("/v1/organizations/%s/ledger?limit=3", org), NULL, &w, NULL, NULL);
    expect_walk_is(&w, "SELECT id::text FROM credit_ledger WHERE organization_id = $1"
                       " ORDER BY id DESC", org);
    cr_assert_eq(w.n, 8, "an opening balance and 7 registrations");
    /* An exact multiple of the page size ends with next_cursor null, not an empty page. */
    walk_list(fmt("/v1/organizations/%s/ledger?limit=4", org), NULL, &w, NULL, NULL);
    cr_assert_eq(w.pages, 2);
}

Test(lists, shapes_and_filters)
{
    char *org = make_org(5);
    char *ses = make_session(make_event(org), it_id("spk"));
    char *kept = register_user(ses, org);
    char *gone = register_user(ses, org);
    http_resp_free(http_do(&(struct http_req){.method = "DELETE",
                                              .path = fmt("/v1/registrations/%s", gone)}));
    http_resp_free(http_post_json(fmt("/v1/organizations/%s/credits", org),
                                  "{\"amount\":3,\"reason\":\"sponsor deal\"}"));

    struct http_resp *r = http_get(fmt("/v1/sessions/%s/registrations?status=active", ses));
    EXPECT_JSON(r, 200);
    cJSON *items = jget(resp_json(r), "items");
    cr_assert_eq(cJSON_GetArraySize(items), 1);
    EXPECT_STR(cJSON_GetArrayItem(items, 0), "id", kept);
    EXPECT_STR(cJSON_GetArrayItem(items, 0), "status", "active");
    cr_assert(cJSON_IsNull(jget(cJSON_GetArrayItem(items, 0), "cancelled_at")));
    http_resp_free(r);
    r = http_get(fmt("/v1/sessions/%s/registrations?status=cancelled", ses));
    items = jget(resp_json(r), "items");
    cr_assert_eq(cJSON_GetArraySize(items), 1);
    EXPECT_STR(cJSON_GetArrayItem(items, 0), "id", gone);
    EXPECT_STR(cJSON_GetArrayItem(items, 0), "status", "cancelled");
    http_resp_free(r);

    r = http_get(fmt("/v1/organizations/%s/ledger", org));
    EXPECT_JSON(r, 200);
    items = jget(resp_json(r), "items");
    cr_assert_eq(cJSON_GetArraySize(items), 5, "opening, 2 registrations, refund, top-up: %s", r->body);
    cJSON *top = cJSON_GetArrayItem(items, 0), *refund = cJSON_GetArrayItem(items, 1);
    EXPECT_STR(top, "kind", "top_up");
    EXPECT_INT(top, "delta", 3);
    EXPECT_STR(top, "reason", "sponsor deal");
    cr_assert(cJSON_IsNull(jget(top, "registration_id")));
    EXPECT_STR(refund, "kind", "refund");
    EXPECT_INT(refund, "delta", 1);
    EXPECT_STR(refund, "registration_id", gone);
    cr_assert(jint(refund, "id", &(long long){0}), "a ledger id is a number: %s", r->body);
    http_resp_free(r);
    r = http_get(fmt("/v1/organizations/%s/ledger?kind=registration&limit=1", org));
    items = jget(resp_json(r), "items");
    cr_assert_eq(cJSON_GetArraySize(items), 1);
    EXPECT_STR(cJSON_GetArrayItem(items, 0), "kind", "registration");
    cr_assert(jstr(resp_json(r), "next_cursor") != NULL);
    http_resp_free(r);
}

Test(lists, bad_queries_are_400)
{
    char *org = make_org(1);
    char *evt = make_event(org);
    char *ses = make_session(evt, it_id("spk"));
    const char *bad[] = {"limit=0", "limit=201", "limit=abc", "limit=-1", "limit=%2B5", "limit=",
                         "limit=1.5", "status=gone", "status=", "status=ACTIVE"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_resp *r = http_get(fmt("/v1/sessions/%s/registrations?%s", ses, bad[i]));
        EXPECT_PROBLEM(r, 400, "invalid-query");
        http_resp_free(r);
    }
    struct http_resp *r = http_get(fmt("/v1/organizations/%s/ledger?kind=bonus", org));
    EXPECT_PROBLEM(r, 400, "invalid-query");
    http_resp_free(r);
    r = http_get(fmt("/v1/organizations/%s/events?limit=200", org));
    EXPECT_JSON(r, 200);
    http_resp_free(r);
}

/* The first page's cursor of a list with more than one row. */
static char *first_cursor(const char *path)
{
    struct http_resp *r = http_get(path);
    EXPECT_JSON(r, 200);
    const char *c = jstr(resp_json(r), "next_cursor");
    cr_assert(c != NULL, "no next_cursor on %s: %s", path, r->body);
    char *out = it_strdup(c);
    http_resp_free(r);
    return out;
}

static void expect_cursor_refused(const char *path, const char *cursor)
{
    struct http_resp *r = http_get(fmt("%s%scursor=%s", path, strchr(path, '?') ? "&" : "?", cursor));
    EXPECT_PROBLEM(r, 400, "invalid-cursor");
    http_resp_free(r);
}

Test(lists, malformed_tampered_and_foreign_cursors_are_400)
{
    char *org = make_org(10);
    char *evt = make_event(org), *evt2 = make_event(org);
    char *ses = make_session(evt, it_id("spk")), *ses2 = make_session(evt, it_id("spk"));
    make_session(evt2, it_id("spk")), make_session(evt2, it_id("spk"));
    for (int i = 0; i < 3; i++)
        free(register_user(ses, org)), free(register_user(ses2, org));

    char *sessions = first_cursor(fmt("/v1/events/%s/sessions?limit=1", evt));
    char *regs = first_cursor(fmt("/v1/sessions/%s/registrations?limit=1&status=active", ses));
    char *ledger = first_cursor(fmt("/v1/organizations/%s/ledger?limit=1", org));

    expect_cursor_refused(fmt("/v1/events/%s/sessions", evt2), sessions);         /* other event */
    expect_cursor_refused(fmt("/v1/sessions/%s/registrations?status=active", ses2), regs);
    expect_cursor_refused(fmt("/v1/sessions/%s/registrations", ses), regs);          /* other filter */
    expect_cursor_refused(fmt("/v1/sessions/%s/registrations?status=cancelled", ses), regs);
    expect_cursor_refused(fmt("/v1/organizations/%s/events", org), ledger);        /* other list */
    expect_cursor_refused(fmt("/v1/organizations/%s/ledger?kind=refund", org), ledger);
    for (size_t i = 0, n = strlen(ledger); i < n; i += 3) {                        /* tampered */
        char *t = it_strdup(ledger);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        expect_cursor_refused(fmt("/v1/organizations/%s/ledger", org), t);
    }
    const char *junk[] = {"", "x", "%25%25", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "a.b", "%00"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        expect_cursor_refused(fmt("/v1/organizations/%s/ledger", org), junk[i]);
    char *longer = fmt("%s%s", ledger, repeat_char('A', 600));
    expect_cursor_refused(fmt("/v1/organizations/%s/ledger", org), longer);
    /* The genuine ones still work. */
    struct http_resp *r = http_get(fmt("/v1/organizations/%s/ledger?limit=1&cursor=%s", org, ledger));
    EXPECT_JSON(r, 200);
    http_resp_free(r);
}

Test(lists, another_organizations_lists_are_404)
{
    char *key_a, *key_b;
    char *org_a = make_org_key(3, &key_a);
    make_org_key(3, &key_b);
    char *evt = make_event(org_a);
    char *ses = make_session(evt, it_id("spk"));
    free(register_user(ses, org_a));
    const char *paths[] = {
        fmt("/v1/organizations/%s/events", org_a), fmt("/v1/events/%s/sessions", evt),
        fmt("/v1/sessions/%s/registrations", ses), fmt("/v1/organizations/%s/ledger", org_a)};

    for (size_t i = 0; i < 4; i++) {
        struct http_resp *r = http_get_as(paths[i], key_b);
        EXPECT_PROBLEM(r, 404, "not-found");
        http_resp_free(r);
        r = http_get_as(paths[i], key_a);
        EXPECT_JSON(r, 200);
        cr_assert(cJSON_GetArraySize(jget(resp_json(r), "items")) >= 1, "%s: %s", paths[i], r->body);
        http_resp_free(r);
    }
    const char *missing[] = {"/v1/organizations/nobody_here/events", "/v1/events/nothing_here/sessions",
                             "/v1/sessions/nothing_here/registrations",
                             "/v1/organizations/nobody_here/ledger"};
    for (size_t i = 0; i < 4; i++) {
        struct http_resp *r = http_get(missing[i]);
        EXPECT_PROBLEM(r, 404, "not-found");
        http_resp_free(r);
    }
}

struct adder {
    const char *ses, *org;
    int added;
};

static void add_three(void *arg)
{
    struct adder *a = arg;
    for (int i = 0; i < 3; i++, a->added++)
        free(register_user(a->ses, a->org));
}

Test(lists, walking_while_rows_are_added_skips_and_repeats_nothing)
{
    enum { BEFORE = 25 };
    char *org = make_org(100);
    char *ses = make_session(make_event(org), it_id("spk"));
    char *before[BEFORE];
    struct adder adder = {ses, org, 0};
    struct walk w;

    for (int i = 0; i < BEFORE; i++)
        before[i] = register_user(ses, org);
    walk_list(fmt("/v1/sessions/%s/registrations?limit=4", ses), NULL, &w, add_three, &adder);
    cr_assert(adder.added >= 3, "rows were added during the walk");
    for (int i = 0; i < BEFORE; i++) {
        int seen = 0;
        for (size_t j = 0; j < w.n; j++)
            seen += strcmp(w.ids[j], before[i]) == 0;
        cr_assert_eq(seen, 1, "%s was seen %d times", before[i], seen);
    }
    for (size_t i = 0; i < w.n; i++)
        for (size_t j = i + 1; j < w.n; j++)
            cr_assert_str_neq(w.ids[i], w.ids[j], "%s repeated", w.ids[i]);
}
