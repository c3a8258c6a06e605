/* test_bola.c: the broken-object-level-authorization matrix (issue 3, items 1
 * and 2; api.md, "Authentication and tenants").
 *
 * Two organizations, A and B, each with its own keys. B has credits, an event,
 * a session, a registration made with an Idempotency-Key, session_views on its
 * leaderboard and a second key. Then A's key is aimed at B's things through
 * every route and method of the route table (service/src/routes/routes.c):
 * each case is one row of a static table -- method, path, body, expected
 * status and problem type -- and after each one the test asserts that the
 * answer carries none of B's data (no id, name, key or user of B that the
 * request did not itself send) and that B's whole state is unchanged:
 * organization row and balance, ledger, registrations, events, sessions, keys,
 * analytics rows, and B's leaderboard in Redis (scores and applied set).
 *
 * Then credentials: a missing header, malformed headers, an unknown key, a
 * revoked key and near-misses of the admin key get 401 with WWW-Authenticate:
 * Bearer (error="invalid_token" when an Authorization header was sent) on
 * every non-public route of the table, and change nothing; the public routes
 * (leaderboard reads, healthz, readyz, metrics) answer without a key, and
 * ignore a bad one.
 *
 * Why a matrix: one forgotten tenant check in one handler is a cross-tenant
 * read or a spend of someone else's credits; listing every route makes the
 * forgotten one visible.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

/* Key ids whose rate-limit counters this test made: dropped at the end, so
 * that no counter of this test expires later under another test's global
 * "nothing changed" snapshot (test_bad_inputs.c counts every Redis key). */
static char *g_key_ids[16];
static size_t g_nkey_ids;

static void remember_key(const char *key_id)
{
    if (g_nkey_ids < sizeof g_key_ids / sizeof g_key_ids[0])
        g_key_ids[g_nkey_ids++] = it_strdup(key_id);
}

static void drop_counters(void)
{
    for (size_t i = 0; i < g_nkey_ids; i++)
        redis_ll("DEL eventtrack:rl:{%s}", g_key_ids[i]);
    g_nkey_ids = 0;
}

TestSuite(bola, .init = it_setup, .fini = drop_counters, .timeout = 120);

/* ---- a tenant and its things -------------------------------------------------- */

struct tenant {
    char *id, *name;
    char *key, *key_id;       /* the first key, from POST /v1/organizations */
    char *key2, *key2_id;     /* a second key, from POST /v1/organizations/{id}/keys */
    char *event, *event_name;
    char *session, *title, *speaker;
    char *user, *reg, *idem;  /* a registration made with Idempotency-Key idem */
    char *view[2];            /* analytics event ids of two session_views */
    char *top_up_idem;        /* Idempotency-Key of an admin top-up */
};

/* The exact bodies the tenant's own requests used; the matrix sends them again with A's key. */
#define REG_BODY                                                                                   \
    "{\"session_id\":\"{SB}\",\"user_id\":\"{UB}\",\"organization_id\":\"{B}\","                   \
    "\"ticket_type\":\"standard\",\"price_paid\":\"99.00\"}"
#define VIEW_BODY                                                                                  \
    "{\"event_id\":\"{VB}\",\"event_type\":\"session_view\",\"user_id\":\"{UB}\","                 \
    "\"payload\":{\"session_id\":\"{SB}\"}}"
#define TOP_UP_BODY "{\"amount\":3,\"reason\":\"bola\"}"

/* ---- templates ------------------------------------------------------------------ */

struct var {
    const char *name;
    const char *value;
};

#define MAX_VARS 40

struct vars {
    struct var v[MAX_VARS];
    size_t n;
};

static void var_set(struct vars *vs, const char *name, const char *value)
{
    cr_assert(vs->n < MAX_VARS);
    vs->v[vs->n++] = (struct var){name, value};
}

/* Replaces every {NAME} of vs in t ({NEW} and {U} by fresh ids, the same
 * within one call); any other brace is copied as is (JSON). */
static char *expand(const char *t, const struct vars *vs, const char *fresh_id, const char *fresh_user)
{
    size_t cap = strlen(t) * 2 + 64, len = 0;
    char *out = it_malloc(cap);
    while (*t) {
        const char *value = NULL;
        size_t skip = 1;
        if (*t == '{') {
            size_t k = 1;
            while (t[k] && ((t[k] >= 'A' && t[k] <= 'Z') || (t[k] >= '0' && t[k] <= '9')))
                k++;
            if (t[k] == '}' && k > 1) {
                for (size_t i = 0; i < vs->n && !value; i++)
                    if (strlen(vs->v[i].name) == k - 1 && strncmp(vs->v[i].name, t + 1, k - 1) == 0)
                        value = vs->v[i].value;
                if (!value && k - 1 == 3 && strncmp(t + 1, "NEW", 3) == 0)
                    value = fresh_id;
                if (!value && k - 1 == 1 && t[1] == 'U')
                    value = fresh_user;
                cr_assert(value, "template names an unknown variable: %.*s", (int)k + 1, t);
                skip = k + 1;
            }
        }
        size_t add = value ? strlen(value) : 1;
        if (len + add + 1 > cap) {
            cap = (len + add + 1) * 2;
            char *grown = realloc(out, cap);
            cr_assert(grown);
            out = grown;
        }
        memcpy(out + len, value ? value : t, add);
        len += add;
        t += skip;
    }
    out[len] = '\0';
    return out;
}

static struct http_resp *send_as(const char *method, const char *path, const char *body, const char *auth,
                                 const char *idem)
{
    struct http_req rq = {.method = method, .path = path, .body = body, .auth = auth, .idem_key = idem,
                          .content_type = body ? "application/json" : NULL};
    return http_do(&rq);
}

static char *first_key_id(const char *org)
{
    char *id = pg_text("SELECT id FROM api_keys WHERE organization_id = $1 ORDER BY created_at, id LIMIT 1",
                       PG_PARAMS(org));
    cr_assert(id, "no api_keys row for %s", org);
    return id;
}

/* An organization with its first key; with `full`, everything listed in struct tenant. */
static struct tenant make_tenant(const char *tag, long long credits, bool full)
{
    struct tenant t = {0};
    t.id = it_id(tag);
    t.name = fmt("Tenant %s name", t.id);
    char *body = fmt("{\"id\":\"%s\",\"name\":\"%s\",\"credits\":%lld}", t.id, t.name, credits);
    struct http_resp *r = http_post_json("/v1/organizations", body);
    EXPECT_JSON(r, 201);
    cr_assert(jstr(resp_json(r), "api_key"), "POST /v1/organizations: no api_key: %s", r->body);
    t.key = it_strdup(jstr(resp_json(r), "api_key"));
    t.key_id = first_key_id(t.id);
    remember_key(t.key_id);
    if (!full)
        return t;

    char *path = fmt("/v1/organizations/%s/keys", t.id);
    r = send_as("POST", path, NULL, t.key, NULL);
    EXPECT_JSON(r, 201);
    t.key2 = it_strdup(jstr(resp_json(r), "api_key"));
    t.key2_id = it_strdup(jstr(resp_json(r), "key_id"));
    cr_assert(t.key2[0] && t.key2_id[0], "POST %s: expected key_id and api_key: %s", path, r->body);
    remember_key(t.key2_id);

    t.event = it_id("evt");
    t.event_name = fmt("Conference of %s", t.id);
    body = fmt("{\"id\":\"%s\",\"organization_id\":\"%s\",\"name\":\"%s\"}", t.event, t.id, t.event_name);
    r = send_as("POST", "/v1/events", body, t.key, NULL);
    EXPECT_JSON(r, 201);

    t.session = it_id("ses");
    t.title = fmt("Talk of %s", t.id);
    t.speaker = it_id("spk");
    body = fmt("{\"id\":\"%s\",\"event_id\":\"%s\",\"title\":\"%s\",\"speaker_id\":\"%s\"}", t.session, t.event,
               t.title, t.speaker);
    r = send_as("POST", "/v1/sessions", body, t.key, NULL);
    EXPECT_JSON(r, 201);

    t.user = it_id("user");
    t.idem = it_id("idem");
    t.view[0] = it_id("view");
    t.view[1] = it_id("view");
    t.top_up_idem = it_id("topup");
    struct vars vs = {0};
    var_set(&vs, "SB", t.session);
    var_set(&vs, "UB", t.user);
    var_set(&vs, "B", t.id);
    var_set(&vs, "VB", t.view[0]);
    body = expand(REG_BODY, &vs, "", "");
    r = send_as("POST", "/v1/registrations", body, t.key, t.idem);
    EXPECT_JSON(r, 201);
    t.reg = it_strdup(jstr(resp_json(r), "id"));

    for (int i = 0; i < 2; i++) {
        vs.v[3].value = t.view[i];
        body = expand(VIEW_BODY, &vs, "", "");
        r = send_as("POST", "/v1/analytics/events", body, t.key, NULL);
        EXPECT_JSON(r, 201);
    }
    cr_assert_eq(redis_score(t.event, t.speaker), 2, "%s's board was not built", t.id);

    path = fmt("/v1/organizations/%s/credits", t.id);
    r = send_as("POST", path, TOP_UP_BODY, NULL, t.top_up_idem); /* the admin's top-up */
    EXPECT_JSON(r, 200);
    return t;
}

/* Everything of the tenant that a request could change, as one comparable text. */
static char *tenant_state(const struct tenant *t)
{
    const char *const org[] = {t->id, NULL};
    char *lb = lb_key(t->event);
    char *s = fmt(
        "organization: %s\n"
        "ledger: %s\n"
        "registrations: %lld of the organization, %lld on its session\n"
        "events: %s; %lld of the organization\n"
        "sessions: %s; %lld of the organization, %lld on its event\n"
        "keys: %s\n"
        "analytics: %lld rows of the organization, %lld rows scoring on its event\n"
        "board: %lld speakers, %s=%lld, applied set %lld\n",
        pg_text("SELECT o.name || ', credits ' || b.balance FROM organizations o"
                " JOIN organization_balances b ON b.organization_id = o.id WHERE o.id = $1", org),
        pg_text("SELECT count(*) || ' rows, sum ' || coalesce(sum(delta), 0) || ', last id '"
                "       || coalesce(max(id), 0) FROM credit_ledger WHERE organization_id = $1",
                org),
        pg_ll("SELECT count(*) FROM registrations WHERE organization_id = $1", org),
        pg_ll("SELECT count(*) FROM registrations WHERE session_id = $1", PG_PARAMS(t->session)),
        pg_text("SELECT organization_id || '/' || name || '/' || coalesce(starts_at::text, '-') FROM events"
                " WHERE id = $1",
                PG_PARAMS(t->event)),
        pg_ll("SELECT count(*) FROM events WHERE organization_id = $1", org),
        pg_text("SELECT organization_id || '/' || event_id || '/' || title || '/' || speaker_id FROM sessions"
                " WHERE id = $1",
                PG_PARAMS(t->session)),
        pg_ll("SELECT count(*) FROM sessions WHERE organization_id = $1", org),
        pg_ll("SELECT count(*) FROM sessions WHERE event_id = $1", PG_PARAMS(t->event)),
        pg_text("SELECT count(*) || ' issued, ' || count(*) FILTER (WHERE revoked_at IS NULL) || ' active'"
                "  FROM api_keys WHERE organization_id = $1",
                org),
        pg_ll("SELECT count(*) FROM analytics_events WHERE organization_id = $1", org),
        pg_ll("SELECT count(*) FROM analytics_events WHERE leaderboard_event_id = $1", PG_PARAMS(t->event)),
        redis_ll("ZCARD %s", lb), t->speaker, redis_score(t->event, t->speaker),
        redis_applied_count(t->event));
    free(lb);
    return s;
}

/* ---- response checks --------------------------------------------------------------- */

static bool id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

/* Does `hay` contain `needle` as a whole token (not inside a longer id)? */
static bool has_token(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (!hay || n == 0)
        return false;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        if ((p == hay || !id_char(p[-1])) && !id_char(p[n]))
            return true;
    return false;
}

/* The answer must show none of the tenant's secrets and ids but those the
 * request sent. NULL when it shows none, else a message. */
static char *data_shown(const struct http_resp *r, const struct tenant *t, const char *sent)
{
    const char *const data[] = {t->id,      t->name,    t->key,      t->key_id,  t->key2, t->key2_id,
                                t->event,   t->event_name, t->session, t->title, t->speaker, t->user,
                                t->reg,     t->idem,    t->view[0],  t->view[1], t->top_up_idem};
    for (size_t i = 0; i < sizeof data / sizeof data[0]; i++) {
        if (!data[i] || has_token(sent, data[i]))
            continue;
        if (has_token(r->body, data[i]) || has_token(r->headers, data[i]))
            return fmt("%s\n  -> the answer reveals \"%s\" of organization %s, which the request did not "
                       "send:\n  %ld %s\n%s",
                       r->what, data[i], t->id, r->status, r->headers, r->body);
    }
    return NULL;
}

/* "path=value": a member of the JSON answer, compared as text (strings,
 * integers, booleans). NULL when it holds, else a message. */
static char *member_differs(struct http_resp *r, const char *want)
{
    const char *eq = strchr(want, '=');
    cr_assert(eq);
    char *path = fmt("%.*s", (int)(eq - want), want);
    const cJSON *v = jget(resp_json(r), path);
    char *got = NULL;
    if (cJSON_IsString(v))
        got = it_strdup(v->valuestring);
    else if (cJSON_IsBool(v))
        got = it_strdup(cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNumber(v))
        got = fmt("%lld", (long long)v->valuedouble);
    if (got && strcmp(got, eq + 1) == 0)
        return NULL;
    return fmt("%s\n  -> expected %s = %s, got %s\n  body: %s", r->what, path, eq + 1, got ? got : "(missing)",
               r->body);
}

/* ---- the matrix: A's key against B's things ---------------------------------------- */

struct bola_case {
    const char *what;
    const char *method;
    const char *path;   /* template: {A} {B} {EA} {SA} {EB} {SB} {RB} {KB} {KB1} {SPK} {UB}
                         {VB} {VB2} {IDB} {IDT} {NEW} {U} */
    const char *body;   /* template, NULL: no body */
    const char *idem;   /* Idempotency-Key template, NULL: none */
    long status;
    const char *slug;   /* problem type, NULL: a 2xx JSON answer */
    const char *field;  /* a field errors[] must name, or NULL */
    const char *want;   /* "member=value" the answer must hold (templates allowed), or NULL */
};

static const struct bola_case matrix[] = {
    /* organizations, credits */
    {"read B's organization", "GET", "/v1/organizations/{B}", NULL, NULL, 404, "not-found", NULL, NULL},
    {"read B's balance", "GET", "/v1/organizations/{B}/credits", NULL, NULL, 404, "not-found", NULL, NULL},
    {"top up B", "POST", "/v1/organizations/{B}/credits", "{\"amount\":1000}", NULL, 403, "forbidden", NULL,
     NULL},
    {"top up B with the admin's Idempotency-Key and body", "POST", "/v1/organizations/{B}/credits", TOP_UP_BODY,
     "{IDT}", 403, "forbidden", NULL, NULL},
    {"create an organization with B's id", "POST", "/v1/organizations", "{\"id\":\"{B}\",\"name\":\"Intruder\"}",
     NULL, 403, "forbidden", NULL, NULL},
    /* keys */
    {"issue a key for B", "POST", "/v1/organizations/{B}/keys", NULL, NULL, 404, "not-found", NULL, NULL},
    {"revoke B's second key", "DELETE", "/v1/organizations/{B}/keys/{KB}", NULL, NULL, 404, "not-found", NULL,
     NULL},
    {"revoke B's first key", "DELETE", "/v1/organizations/{B}/keys/{KB1}", NULL, NULL, 404, "not-found", NULL,
     NULL},
    {"revoke B's key through A's own path", "DELETE", "/v1/organizations/{A}/keys/{KB}", NULL, NULL, 404,
     "not-found", NULL, NULL},
    /* events and sessions */
    {"create an event for B", "POST", "/v1/events",
     "{\"id\":\"{NEW}\",\"organization_id\":\"{B}\",\"name\":\"Intruder\"}", NULL, 422, "validation-failed",
     "organization_id", NULL},
    {"take B's event id for A", "POST", "/v1/events",
     "{\"id\":\"{EB}\",\"organization_id\":\"{A}\",\"name\":\"Intruder\",\"starts_at\":\"2030-01-01T00:00:00Z\"}",
     NULL, 409, "already-exists", NULL, NULL},
    {"read B's event", "GET", "/v1/events/{EB}", NULL, NULL, 404, "not-found", NULL, NULL},
    {"add a session to B's event", "POST", "/v1/sessions",
     "{\"id\":\"{NEW}\",\"event_id\":\"{EB}\",\"title\":\"Intruder\",\"speaker_id\":\"{SPK}\"}", NULL, 422,
     "validation-failed", "event_id", NULL},
    {"take B's session id for A's event", "POST", "/v1/sessions",
     "{\"id\":\"{SB}\",\"event_id\":\"{EA}\",\"title\":\"Intruder\",\"speaker_id\":\"intruder\"}", NULL, 409,
     "already-exists", NULL, NULL},
    {"read B's session", "GET", "/v1/sessions/{SB}", NULL, NULL, 404, "not-found", NULL, NULL},
    /* registrations */
    {"register on B's session, charged to B", "POST", "/v1/registrations",
     "{\"session_id\":\"{SB}\",\"user_id\":\"{U}\",\"organization_id\":\"{B}\",\"ticket_type\":\"standard\","
     "\"price_paid\":1}",
     NULL, 422, "validation-failed", "organization_id", NULL},
    /* B's session must look exactly like a session that does not exist: the
     * same field as for an unknown session id (see the next case). */
    {"register on B's session, charged to A", "POST", "/v1/registrations",
     "{\"session_id\":\"{SB}\",\"user_id\":\"{U}\",\"organization_id\":\"{A}\",\"ticket_type\":\"standard\","
     "\"price_paid\":1}",
     NULL, 422, "validation-failed", "session_id", NULL},
    {"(control) register on an unknown session, charged to A", "POST", "/v1/registrations",
     "{\"session_id\":\"{NEW}\",\"user_id\":\"{U}\",\"organization_id\":\"{A}\",\"ticket_type\":\"standard\","
     "\"price_paid\":1}",
     NULL, 422, "validation-failed", "session_id", NULL},
    {"register on A's session, charged to B", "POST", "/v1/registrations",
     "{\"session_id\":\"{SA}\",\"user_id\":\"{U}\",\"organization_id\":\"{B}\",\"ticket_type\":\"standard\","
     "\"price_paid\":1}",
     NULL, 422, "validation-failed", "organization_id", NULL},
    {"replay B's registration: B's Idempotency-Key and body", "POST", "/v1/registrations", REG_BODY, "{IDB}", 422,
     "validation-failed", "organization_id", NULL},
    {"B's Idempotency-Key on A's own registration", "POST", "/v1/registrations",
     "{\"session_id\":\"{SA}\",\"user_id\":\"{U}\",\"organization_id\":\"{A}\",\"ticket_type\":\"standard\","
     "\"price_paid\":1}",
     "{IDB}", 201, NULL, NULL, "organization_id={A}"},
    {"read B's registration", "GET", "/v1/registrations/{RB}", NULL, NULL, 404, "not-found", NULL, NULL},
    /* analytics: accepted as A's own events, but no board of B moves */
    {"a session_view naming B's session", "POST", "/v1/analytics/events",
     "{\"event_id\":\"{NEW}\",\"event_type\":\"session_view\",\"user_id\":\"{U}\","
     "\"payload\":{\"session_id\":\"{SB}\"}}",
     NULL, 201, NULL, NULL, "duplicate=false"},
    {"a session_view naming B's session and speaker", "POST", "/v1/analytics/events",
     "{\"event_id\":\"{NEW}\",\"event_type\":\"session_view\",\"user_id\":\"{U}\","
     "\"payload\":{\"session_id\":\"{SB}\",\"speaker_id\":\"{SPK}\"}}",
     NULL, 201, NULL, NULL, "duplicate=false"},
    {"a batch of session_views naming B's session", "POST", "/v1/analytics/events",
     "{\"batch\":[{\"event_type\":\"session_view\",\"user_id\":\"{U}\",\"payload\":{\"session_id\":\"{SB}\"}},"
     "{\"event_type\":\"session_view\",\"user_id\":\"{U}\","
     "\"payload\":{\"session_id\":\"{SB}\",\"speaker_id\":\"intruder\"}}]}",
     NULL, 200, NULL, NULL, "accepted=2"},
    /* B's event ids are B's: A reusing one is a new event of A, neither a
     * duplicate nor a conflict (either would tell A that B logged it). Each
     * case uses its own id of B: the first makes {VB} one of A's ids too. */
    {"B's analytics event, sent again as is", "POST", "/v1/analytics/events", VIEW_BODY, NULL, 201, NULL, NULL,
     "duplicate=false"},
    {"B's analytics event id with another payload", "POST", "/v1/analytics/events",
     "{\"event_id\":\"{VB2}\",\"event_type\":\"sponsor_scan\",\"user_id\":\"{U}\",\"payload\":{\"booth\":1}}", NULL,
     201, NULL, NULL, "duplicate=false"},
    /* methods the table does not serve on B's paths */
    {"DELETE B's organization", "DELETE", "/v1/organizations/{B}", NULL, NULL, 405, "method-not-allowed", NULL,
     NULL},
    {"PATCH B's organization", "PATCH", "/v1/organizations/{B}", "{\"name\":\"Intruder\"}", NULL, 405,
     "method-not-allowed", NULL, NULL},
    {"list B's keys", "GET", "/v1/organizations/{B}/keys", NULL, NULL, 405, "method-not-allowed", NULL, NULL},
    {"PUT B's event", "PUT", "/v1/events/{EB}", "{\"name\":\"Intruder\"}", NULL, 405, "method-not-allowed", NULL,
     NULL},
    {"DELETE B's session", "DELETE", "/v1/sessions/{SB}", NULL, NULL, 405, "method-not-allowed", NULL, NULL},
    /* served since issue 15: B's registration is as unknown to A as any other */
    {"cancel B's registration", "DELETE", "/v1/registrations/{RB}", NULL, NULL, 404, "not-found", NULL, NULL},
};

Test(bola, organization_key_cannot_read_or_change_another_organization)
{
    struct tenant a = make_tenant("orgA", 10, true);
    struct tenant b = make_tenant("orgB", 5, true);

    struct vars vs = {0};
    var_set(&vs, "A", a.id);
    var_set(&vs, "EA", a.event);
    var_set(&vs, "SA", a.session);
    var_set(&vs, "B", b.id);
    var_set(&vs, "EB", b.event);
    var_set(&vs, "SB", b.session);
    var_set(&vs, "RB", b.reg);
    var_set(&vs, "KB", b.key2_id);
    var_set(&vs, "KB1", b.key_id);
    var_set(&vs, "SPK", b.speaker);
    var_set(&vs, "UB", b.user);
    var_set(&vs, "VB", b.view[0]);
    var_set(&vs, "VB2", b.view[1]);
    var_set(&vs, "IDB", b.idem);
    var_set(&vs, "IDT", b.top_up_idem);

    char *before = tenant_state(&b);
    cr_assert(strstr(before, ", credits 7\n"), "B's starting state is not as built:\n%s", before);

    for (size_t i = 0; i < sizeof matrix / sizeof matrix[0]; i++) {
        const struct bola_case *c = &matrix[i];
        char *fresh = it_id("intruder"), *user = it_id("intruder_user");
        char *path = expand(c->path, &vs, fresh, user);
        char *body = c->body ? expand(c->body, &vs, fresh, user) : NULL;
        char *idem = c->idem ? expand(c->idem, &vs, fresh, user) : NULL;
        struct http_resp *r = send_as(c->method, path, body, a.key, idem);
        char *tag = fmt("[%s] %s", c->what, r->what);
        free(r->what);
        r->what = tag;

        /* Every case is checked even after one fails (cr_expect), so a run
         * lists every hole at once. */
        const char *m = c->slug ? check_problem(r, c->status, c->slug, c->field) : check_json(r, c->status);
        cr_expect(m == NULL, "%s", m);
        char *sent = fmt("%s\n%s\n%s", path, body ? body : "", idem ? idem : "");
        char *shown = data_shown(r, &b, sent);
        cr_expect(shown == NULL, "%s", shown);
        if (m == NULL && c->want) {
            char *differs = member_differs(r, expand(c->want, &vs, fresh, user));
            cr_expect(differs == NULL, "%s", differs);
        }
        char *after = tenant_state(&b);
        cr_expect_str_eq(after, before, "%s\n  -> changed organization %s:\nbefore:\n%s\nafter:\n%s", r->what,
                         b.id, before, after);
        if (strcmp(after, before) != 0)
            before = after; /* report each change once, at the case that made it */
        /* Nothing the request named came to exist: no event or session
         * with its fresh id, no registration of its fresh user under B. */
        cr_expect_eq(pg_ll("SELECT (SELECT count(*) FROM events WHERE id = $1)"
                           "     + (SELECT count(*) FROM sessions WHERE id = $1)"
                           "     + (SELECT count(*) FROM registrations WHERE user_id = $2 AND organization_id = $3)",
                           PG_PARAMS(fresh, user, b.id)),
                     0, "%s\n  -> created %s under organization %s", r->what, fresh, b.id);
        http_resp_free(r);
    }

    /* A's session_views were logged as A's, and none of them scores anywhere. */
    cr_assert_eq(pg_ll("SELECT count(*) FROM analytics_events WHERE organization_id = $1"
                       " AND event_type = 'session_view' AND leaderboard_event_id IS NULL",
                       PG_PARAMS(a.id)),
                 5, "A's five session_views naming B's session are not all A's, unscored rows");
    cr_assert_eq(redis_score(b.event, "intruder"), -1, "an intruder speaker reached B's board");

    /* B's things are intact and B's keys still work. */
    const char *keys[] = {b.key, b.key2};
    char *opath = fmt("/v1/organizations/%s", b.id);
    for (int k = 0; k < 2; k++) {
        struct http_resp *r = http_get_as(opath, keys[k]);
        EXPECT_JSON(r, 200);
        EXPECT_STR(resp_json(r), "name", b.name);
        EXPECT_INT(resp_json(r), "credits", 7);
    }
    /* B's retry of its own registration still replays B's stored answer. */
    char *reg_body = expand(REG_BODY, &vs, "", "");
    struct http_resp *r = send_as("POST", "/v1/registrations", reg_body, b.key, b.idem);
    EXPECT_JSON(r, 201);
    EXPECT_STR(resp_json(r), "id", b.reg);
    cr_assert_str_eq(tenant_state(&b), before, "B's own replay changed B's state");
}

/* ---- credentials: every non-public route refuses what is not a live key -------------- */

struct route_case {
    const char *method;
    const char *path;   /* template: {V} {EV} {SV} {RV} {KID2} {SPK} {NEW} {U} */
    const char *body;   /* template (a request that would succeed with the admin key) */
    bool is_public;
    long with_key;      /* status for the victim's own key ("bearer", lower case) */
};

/* Every route of service/src/routes/routes.c, in its order. */
static const struct route_case routes_table[] = {
    {"POST", "/v1/organizations", "{\"id\":\"{NEW}\",\"name\":\"Intruder\",\"credits\":100}", false, 403},
    {"GET", "/v1/organizations/{V}", NULL, false, 200},
    {"GET", "/v1/organizations/{V}/credits", NULL, false, 200},
    {"POST", "/v1/organizations/{V}/credits", "{\"amount\":1000}", false, 403},
    {"POST", "/v1/organizations/{V}/keys", NULL, false, 201},
    {"DELETE", "/v1/organizations/{V}/keys/{KID2}", NULL, false, 204},
    {"POST", "/v1/events", "{\"id\":\"{NEW}\",\"organization_id\":\"{V}\",\"name\":\"Intruder\"}", false, 201},
    {"GET", "/v1/events/{EV}", NULL, false, 200},
    {"POST", "/v1/sessions", "{\"id\":\"{NEW}\",\"event_id\":\"{EV}\",\"title\":\"Intruder\",\"speaker_id\":\"x\"}",
     false, 201},
    {"GET", "/v1/sessions/{SV}", NULL, false, 200},
    {"POST", "/v1/registrations",
     "{\"session_id\":\"{SV}\",\"user_id\":\"{U}\",\"organization_id\":\"{V}\",\"ticket_type\":\"standard\","
     "\"price_paid\":1}",
     false, 201},
    {"GET", "/v1/registrations/{RV}", NULL, false, 200},
    {"POST", "/v1/analytics/events",
     "{\"event_id\":\"{NEW}\",\"event_type\":\"session_view\",\"user_id\":\"{U}\","
     "\"payload\":{\"session_id\":\"{SV}\"}}",
     false, 201},
    {"GET", "/v1/events/{EV}/leaderboard", NULL, true, 200},
    {"GET", "/v1/events/{EV}/leaderboard/speakers/{SPK}", NULL, true, 200},
    {"GET", "/healthz", NULL, true, 200},
    {"GET", "/readyz", NULL, true, 200},
    {"GET", "/readyz/read", NULL, true, 200},
    {"GET", "/metrics", NULL, true, 200},
};

struct bad_credential {
    const char *what;
    const char *header;   /* template of the whole header line; NULL: no Authorization */
    const char *slug;
    bool invalid_token;   /* WWW-Authenticate carries error="invalid_token" */
};

static const struct bad_credential bad_credentials[] = {
    {"no Authorization header", NULL, "unauthorized", false},
    {"\"Bearer\" with no token", "Authorization: Bearer", "invalid-token", true},
    {"the Basic scheme", "Authorization: Basic aW50cnVkZXI6c2VjcmV0", "invalid-token", true},
    {"a live key with no scheme", "Authorization: {KV}", "invalid-token", true},
    {"two live keys", "Authorization: Bearer {KV} {KV2}", "invalid-token", true},
    {"an unknown key", "Authorization: Bearer etk_0000000000000000000000000000000000000000000000000000000000000000",
     "invalid-token", true},
    {"a revoked key", "Authorization: Bearer {KR}", "invalid-token", true},
    {"the admin key with one more byte", "Authorization: Bearer {ADMIN}x", "invalid-token", true},
    {"the admin key one byte short", "Authorization: Bearer {ADMINCUT}", "invalid-token", true},
    {"a 4000-byte token", "Authorization: Bearer {LONG}", "invalid-token", true},
};

static void expect_401(struct http_resp *r, const struct bad_credential *c)
{
    EXPECT_OK_(check_problem(r, 401, c->slug, NULL));
    const char *w = r->www_authenticate;
    cr_assert(w && strncmp(w, "Bearer", 6) == 0 && (w[6] == '\0' || w[6] == ' '),
              "%s\n  -> 401 without WWW-Authenticate: Bearer ... (got %s)", r->what, w ? w : "none");
    bool has_error = strstr(w, "error=\"invalid_token\"") != NULL;
    cr_assert(has_error == c->invalid_token, "%s\n  -> WWW-Authenticate: %s; expected %s error=\"invalid_token\"",
              r->what, w, c->invalid_token ? "with" : "without");
}

Test(bola, bad_credentials_are_401_on_every_non_public_route_and_change_nothing)
{
    struct tenant v = make_tenant("victim", 5, true);
    /* A key issued, then revoked by the organization itself. */
    char *kpath = fmt("/v1/organizations/%s/keys", v.id);
    struct http_resp *r = send_as("POST", kpath, NULL, NULL, NULL);
    EXPECT_JSON(r, 201);
    char *revoked = it_strdup(jstr(resp_json(r), "api_key"));
    char *dpath = fmt("/v1/organizations/%s/keys/%s", v.id, jstr(resp_json(r), "key_id"));
    r = send_as("DELETE", dpath, NULL, v.key, NULL);
    EXPECT_STATUS(r, 204);

    const char *admin = it_admin_key();
    char *admin_cut = fmt("%.*s", (int)strlen(admin) - 1, admin);
    struct vars vs = {0};
    var_set(&vs, "V", v.id);
    var_set(&vs, "EV", v.event);
    var_set(&vs, "SV", v.session);
    var_set(&vs, "RV", v.reg);
    var_set(&vs, "KV", v.key);
    var_set(&vs, "KV2", v.key2);
    var_set(&vs, "KR", revoked);
    var_set(&vs, "SPK", v.speaker);
    var_set(&vs, "ADMIN", admin);
    var_set(&vs, "ADMINCUT", admin_cut);
    var_set(&vs, "KID2", v.key2_id);
    var_set(&vs, "LONG", repeat_char('k', 4000));

    char *before = tenant_state(&v);
    char *prefix = it_id("intruder");
    size_t n_refused = 0;
    for (size_t i = 0; i < sizeof routes_table / sizeof routes_table[0]; i++) {
        const struct route_case *rc = &routes_table[i];
        if (rc->is_public)
            continue;
        for (size_t k = 0; k < sizeof bad_credentials / sizeof bad_credentials[0]; k++) {
            const struct bad_credential *c = &bad_credentials[k];
            char *fresh = fmt("%s_%zu_%zu", prefix, i, k), *user = fmt("%s_user_%zu_%zu", prefix, i, k);
            char *path = expand(rc->path, &vs, fresh, user);
            char *body = rc->body ? expand(rc->body, &vs, fresh, user) : NULL;
            char *line = c->header ? expand(c->header, &vs, "", "") : NULL;
            const char *headers[] = {line, NULL};
            struct http_req rq = {.method = rc->method, .path = path, .body = body, .auth = "",
                                  .content_type = body ? "application/json" : NULL,
                                  .headers = line ? headers : NULL};
            r = http_do(&rq);
            char *tag = fmt("[%s] %s", c->what, r->what);
            free(r->what);
            r->what = tag;
            expect_401(r, c);
            char *sent = fmt("%s\n%s", path, body ? body : "");
            char *shown = data_shown(r, &v, sent);
            cr_assert(shown == NULL, "%s", shown);
            http_resp_free(r);
            n_refused++;
        }
        char *after = tenant_state(&v);
        cr_assert_str_eq(after, before, "%s %s with bad credentials changed %s:\nbefore:\n%s\nafter:\n%s",
                         rc->method, rc->path, v.id, before, after);
    }
    cr_assert_eq(n_refused, 13 * (sizeof bad_credentials / sizeof bad_credentials[0]));
    /* Nothing any refused request named exists. */
    cr_assert_eq(pg_ll("SELECT (SELECT count(*) FROM organizations WHERE starts_with(id, $1))"
                       "     + (SELECT count(*) FROM events WHERE starts_with(id, $1))"
                       "     + (SELECT count(*) FROM sessions WHERE starts_with(id, $1))"
                       "     + (SELECT count(*) FROM registrations WHERE starts_with(user_id, $1))"
                       "     + (SELECT count(*) FROM analytics_events WHERE starts_with(event_id, $1))",
                       PG_PARAMS(prefix)),
                 0, "a request with bad credentials created something");

    /* Control: the same routes with the victim's own live key (and the scheme
     * in lower case, RFC 7235) get past authentication. */
    for (size_t i = 0; i < sizeof routes_table / sizeof routes_table[0]; i++) {
        const struct route_case *rc = &routes_table[i];
        char *fresh = fmt("%s_ok_%zu", prefix, i), *user = fmt("%s_okuser_%zu", prefix, i);
        char *path = expand(rc->path, &vs, fresh, user);
        char *body = rc->body ? expand(rc->body, &vs, fresh, user) : NULL;
        char *line = fmt("Authorization: bearer %s", v.key);
        const char *headers[] = {line, NULL};
        struct http_req rq = {.method = rc->method, .path = path, .body = body, .auth = "",
                              .content_type = body ? "application/json" : NULL, .headers = headers};
        r = http_do(&rq);
        EXPECT_STATUS(r, rc->with_key);
        http_resp_free(r);
    }
    /* The revoked key stays revoked; the first key still works. */
    char *opath = fmt("/v1/organizations/%s", v.id);
    r = http_get_as(opath, revoked);
    EXPECT_STATUS(r, 401);
    r = http_get_as(opath, v.key);
    EXPECT_JSON(r, 200);
}

Test(bola, public_routes_answer_without_a_key_and_ignore_a_bad_one)
{
    struct tenant v = make_tenant("public", 5, true);
    struct vars vs = {0};
    var_set(&vs, "V", v.id);
    var_set(&vs, "EV", v.event);
    var_set(&vs, "SV", v.session);
    var_set(&vs, "RV", v.reg);
    var_set(&vs, "KID2", v.key2_id);
    var_set(&vs, "SPK", v.speaker);
    const char *const garbage[] = {"Authorization: Bearer not-a-key", NULL};
    size_t n_public = 0;
    for (size_t i = 0; i < sizeof routes_table / sizeof routes_table[0]; i++) {
        const struct route_case *rc = &routes_table[i];
        if (!rc->is_public)
            continue;
        n_public++;
        char *path = expand(rc->path, &vs, "", "");
        for (int with_garbage = 0; with_garbage < 2; with_garbage++) {
            struct http_req rq = {.method = rc->method, .path = path, .auth = "",
                                  .headers = with_garbage ? garbage : NULL};
            struct http_resp *r = http_do(&rq);
            EXPECT_STATUS(r, 200);
            cr_assert_null(r->www_authenticate, "%s: a public route asks for credentials", r->what);
            if (strstr(path, "/leaderboard")) {
                cJSON *j = resp_json(r);
                long long score = jint_or(j, strstr(path, "/speakers/") ? "score" : "leaderboard.0.score", -1);
                cr_assert_eq(score, 2, "%s: expected the speaker's score 2: %s", r->what, r->body);
            } else if (strcmp(path, "/metrics") == 0) {
                /* Metrics are labelled by route pattern: no tenant's id is shown. */
                cr_assert(!has_token(r->body, v.id) && !has_token(r->body, v.event),
                          "/metrics shows a tenant's ids");
            }
            http_resp_free(r);
        }
    }
    cr_assert_eq(n_public, 6);
}
