/*
 * routes/lists.c - the lists: events, sessions, attendees, the ledger.
 *
 * Every list answers {"items": [...], "next_cursor": "..." | null}, newest
 * first, ties broken by id. The query is validated whole before any store
 * call: `limit` 1-200 (default 50), a filter from its closed set, and a
 * cursor this server issued for this very list, resource and filter
 * (cursor.h); anything else is 400 and reads nothing. Keyset pagination
 * and the tenant rule live in store/lists.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cursor.h"
#include "http/router.h"
#include "json/codec.h"
#include "json/writer.h"
#include "routes/routes.h"
#include "store/store.h"

#define LIMIT_DEFAULT 50

/* A list request, validated. */
struct list_args {
    struct list_query q;
    struct cursor_scope scope;
    char filter_text[40];          /* "status=active": the cursor's binding */
    char filter[24];
    char key[CURSOR_KEY_MAX + 1];
    char id[ID_MAX + 1];
};

bool list_limit_parse(const char *query, long long *limit)
{
    char text[16], *end;
    long long v;

    *limit = LIMIT_DEFAULT;
    switch (query_get(query, "limit", text, sizeof text)) {
    case QUERY_ABSENT:  return true;
    case QUERY_INVALID: return false;
    case QUERY_FOUND:   break;
    }
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || text[0] < '0' || text[0] > '9' || v < 1 ||
        v > LIST_LIMIT_MAX)
        return false;
    *limit = v;
    return true;
}

/* filter_name (NULL: the list has none) must be absent or one of allowed. */
static bool parse_filter(const char *query, const char *filter_name, const char *const *allowed,
                         struct list_args *a)
{
    a->filter_text[0] = '\0';
    if (filter_name == NULL)
        return true;
    switch (query_get(query, filter_name, a->filter, sizeof a->filter)) {
    case QUERY_ABSENT:  return true;
    case QUERY_INVALID: return false;
    case QUERY_FOUND:   break;
    }
    for (; *allowed; allowed++)
        if (strcmp(a->filter, *allowed) == 0) {
            a->q.filter = a->filter;
            snprintf(a->filter_text, sizeof a->filter_text, "%s=%s", filter_name, a->filter);
            return true;
        }
    return false;
}

/* The whole query; false after answering 400. */
static bool list_args_parse(struct request *req, struct response *res, const char *list,
                            const char *scope, const char *filter_name,
                            const char *const *allowed, struct list_args *a)
{
    char cursor[CURSOR_TEXT_MAX + 1];

    memset(a, 0, sizeof *a);
    a->q.scope = scope;
    a->q.tenant = req_tenant(req);
    if (!list_limit_parse(req->query, &a->q.limit)) {
        respond_error(res, ET_ERR_MALFORMED, PT_INVALID_QUERY,
                      "limit must be an integer from 1 to %d", LIST_LIMIT_MAX);
        return false;
    }
    if (!parse_filter(req->query, filter_name, allowed, a)) {
        respond_error(res, ET_ERR_MALFORMED, PT_INVALID_QUERY, "%s is not a known %s", filter_name,
                      filter_name);
        return false;
    }
    a->scope = (struct cursor_scope){list, scope, a->filter_text};
    switch (query_get(req->query, "cursor", cursor, sizeof cursor)) {
    case QUERY_ABSENT:
        return true;
    case QUERY_FOUND:
        if (cursor_decode(req->app->cfg->admin_key, &a->scope, cursor, a->key, a->id, sizeof a->id)) {
            a->q.after_key = a->key;
            a->q.after_id = a->id;
            return true;
        }
        /* fall through */
    case QUERY_INVALID:
        break;
    }
    respond_error(res, ET_ERR_MALFORMED, PT_INVALID_CURSOR,
                  "cursor is not a next_cursor this list returned");
    return false;
}

/* Closes the items array and writes next_cursor from the last row's position. */
static void list_end(struct request *req, struct jw *w, const struct list_args *a, bool more,
                     const char *key, const char *id)
{
    char cursor[CURSOR_TEXT_MAX + 1];

    jw_array_end(w);
    jw_key(w, "next_cursor");
    if (more && cursor_encode(req->app->cfg->admin_key, &a->scope, key, id, cursor))
        jw_string(w, cursor);
    else
        jw_null(w);
    jw_object_end(w);
}

static struct jw *list_begin(struct response *res)
{
    struct jw *w = respond_json(res, 200);

    jw_object_begin(w);
    jw_key(w, "items");
    jw_array_begin(w);
    return w;
}

void api_events_list(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct list_args a;
    struct event *rows = NULL;
    size_t n = 0;
    bool more = false;

    if (!list_args_parse(req, res, "events", req_param(req, "org_id"), NULL, NULL, &a))
        return;
    if (!tenant_owns(req, a.q.scope, NULL, &p) ||
        (rows = calloc((size_t)a.q.limit, sizeof *rows)) == NULL ||
        events_list(req->store, &a.q, rows, &n, &more, &p) != ET_OK) {
        if (rows == NULL && p.err == ET_OK)
            problem_set(&p, ET_ERR_INTERNAL, NULL, "out of memory");
        respond_problem(res, &p);
        goto done;
    }
    struct jw *w = list_begin(res);
    for (size_t i = 0; i < n; i++)
        encode_event(w, &rows[i]);
    list_end(req, w, &a, more, n ? rows[n - 1].created_at : "", n ? rows[n - 1].id : "");
done:
    free(rows);
}

void api_sessions_list(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct list_args a;
    struct session *rows = NULL;
    size_t n = 0;
    bool more = false;

    if (!list_args_parse(req, res, "sessions", req_param(req, "event_id"), NULL, NULL, &a))
        return;
    if ((rows = calloc((size_t)a.q.limit, sizeof *rows)) == NULL ||
        sessions_list(req->store, &a.q, rows, &n, &more, &p) != ET_OK) {
        if (rows == NULL && p.err == ET_OK)
            problem_set(&p, ET_ERR_INTERNAL, NULL, "out of memory");
        respond_problem(res, &p);
        goto done;
    }
    struct jw *w = list_begin(res);
    for (size_t i = 0; i < n; i++)
        encode_session(w, &rows[i]);
    list_end(req, w, &a, more, n ? rows[n - 1].created_at : "", n ? rows[n - 1].id : "");
done:
    free(rows);
}

/* An attendee: the registration without credits_remaining, which is a
 * property of the organization, not of a row in a list. */
static void encode_attendee(struct jw *w, const struct registration *r)
{
    jw_object_begin(w);
    jw_key(w, "id");              jw_string(w, r->id);
    jw_key(w, "session_id");      jw_string(w, r->session_id);
    jw_key(w, "user_id");         jw_string(w, r->user_id);
    jw_key(w, "organization_id"); jw_string(w, r->organization_id);
    jw_key(w, "ticket_type");     jw_string(w, r->ticket_type);
    jw_key(w, "price_paid");      jw_string(w, r->price_paid);
    jw_key(w, "registered_at");   jw_string(w, r->registered_at);
    jw_key(w, "status");          jw_string(w, r->cancelled_at[0] ? "cancelled" : "active");
    jw_key(w, "cancelled_at");    jw_string(w, r->cancelled_at[0] ? r->cancelled_at : NULL);
    jw_object_end(w);
}

void api_session_registrations_list(struct request *req, struct response *res)
{
    static const char *const statuses[] = {"active", "cancelled", NULL};
    struct problem p = {0};
    struct list_args a;
    struct registration *rows = NULL;
    size_t n = 0;
    bool more = false;

    if (!list_args_parse(req, res, "registrations", req_param(req, "session_id"), "status",
                         statuses, &a))
        return;
    if ((rows = calloc((size_t)a.q.limit, sizeof *rows)) == NULL ||
        registrations_list(req->store, &a.q, rows, &n, &more, &p) != ET_OK) {
        if (rows == NULL && p.err == ET_OK)
            problem_set(&p, ET_ERR_INTERNAL, NULL, "out of memory");
        respond_problem(res, &p);
        goto done;
    }
    struct jw *w = list_begin(res);
    for (size_t i = 0; i < n; i++)
        encode_attendee(w, &rows[i]);
    list_end(req, w, &a, more, n ? rows[n - 1].registered_at : "", n ? rows[n - 1].id : "");
done:
    free(rows);
}

static void encode_ledger_entry(struct jw *w, const struct ledger_entry *e)
{
    jw_object_begin(w);
    jw_key(w, "id");              jw_raw(w, e->id);       /* a bigint from the database */
    jw_key(w, "kind");            jw_string(w, e->kind);
    jw_key(w, "delta");           jw_int(w, e->delta);
    jw_key(w, "registration_id"); jw_string(w, e->registration_id[0] ? e->registration_id : NULL);
    jw_key(w, "reason");          jw_string(w, e->reason[0] ? e->reason : NULL);
    jw_key(w, "created_at");      jw_string(w, e->created_at);
    jw_object_end(w);
}

void api_ledger_list(struct request *req, struct response *res)
{
    static const char *const kinds[] = {"opening_balance", "top_up", "registration", "refund", NULL};
    struct problem p = {0};
    struct list_args a;
    struct ledger_entry *rows = NULL;
    size_t n = 0;
    bool more = false;

    if (!list_args_parse(req, res, "ledger", req_param(req, "org_id"), "kind", kinds, &a))
        return;
    if (!tenant_owns(req, a.q.scope, NULL, &p) ||
        (rows = calloc((size_t)a.q.limit, sizeof *rows)) == NULL ||
        ledger_list(req->store, &a.q, rows, &n, &more, &p) != ET_OK) {
        if (rows == NULL && p.err == ET_OK)
            problem_set(&p, ET_ERR_INTERNAL, NULL, "out of memory");
        respond_problem(res, &p);
        goto done;
    }
    struct jw *w = list_begin(res);
    for (size_t i = 0; i < n; i++)
        encode_ledger_entry(w, &rows[i]);
    list_end(req, w, &a, more, n ? rows[n - 1].id : "", n ? rows[n - 1].id : "");
done:
    free(rows);
}
