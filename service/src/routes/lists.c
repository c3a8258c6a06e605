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
#include <stddef.h>
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
    return query_int(query, "limit", 1, LIST_LIMIT_MAX, LIMIT_DEFAULT, limit);
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

bool list_cursor_parse(struct request *req, struct response *res, const struct cursor_scope *scope,
                       char *key, char *id, size_t id_size, bool *present)
{
    char text[CURSOR_TEXT_MAX + 1];

    *present = false;
    switch (query_get(req->query, "cursor", text, sizeof text)) {
    case QUERY_ABSENT:
        return true;
    case QUERY_FOUND:
        if (cursor_decode(req->app->cfg->admin_key, scope, text, key, id, id_size)) {
            *present = true;
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

/* The whole query; false after answering 400. */
static bool list_args_parse(struct request *req, struct response *res, const char *list,
                            const char *scope, const char *filter_name,
                            const char *const *allowed, struct list_args *a)
{
    bool after;

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
    if (!list_cursor_parse(req, res, &a->scope, a->key, a->id, sizeof a->id, &after))
        return false;
    if (after) {
        a->q.after_key = a->key;
        a->q.after_id = a->id;
    }
    return true;
}

struct jw *list_page_begin(struct response *res)
{
    struct jw *w = respond_json(res, 200);

    jw_object_begin(w);
    jw_key(w, "items");
    jw_array_begin(w);
    return w;
}

void list_page_end(struct request *req, struct jw *w, const struct cursor_scope *scope, bool more,
                   const char *key, const char *id)
{
    char cursor[CURSOR_TEXT_MAX + 1];

    jw_array_end(w);
    jw_key(w, "next_cursor");
    if (more && cursor_encode(req->app->cfg->admin_key, scope, key, id, cursor))
        jw_string(w, cursor);
    else
        jw_null(w);
    jw_object_end(w);
}

void *rows_alloc(size_t count, size_t size, struct problem *p)
{
    void *rows = calloc(count, size);

    if (rows == NULL)
        problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
    return rows;
}

/* One list: the resource it lists, its filter, how a row is encoded and
 * where in a row its position (cursor key and id) is. The four lists differ
 * only in this; list_serve does the rest. */
struct list_kind {
    const char *name;                   /* the cursor's binding */
    enum list_name list;
    const char *scope_param;            /* the path parameter naming the listed resource */
    bool scope_is_organization;         /* checked against the caller here; else by the store */
    const char *filter_name;            /* NULL: the list has no filter */
    const char *const *filter_values;
    size_t row_size;
    void (*encode)(struct jw *w, const void *row);
    size_t key_offset, id_offset;       /* of the char arrays holding the position */
};

static void list_serve(struct request *req, struct response *res, const struct list_kind *k)
{
    struct problem p = {0};
    struct list_args a;
    char *rows = NULL;
    const char *key = "", *id = "";
    size_t n = 0;
    bool more = false;

    if (!list_args_parse(req, res, k->name, req_param(req, k->scope_param), k->filter_name,
                         k->filter_values, &a))
        return;
    if ((k->scope_is_organization && !tenant_owns(req, a.q.scope, NULL, &p)) ||
        (rows = rows_alloc((size_t)a.q.limit, k->row_size, &p)) == NULL ||
        list_fetch(req->store, k->list, &a.q, rows, &n, &more, &p) != ET_OK) {
        respond_problem(res, &p);
        goto done;
    }
    struct jw *w = list_page_begin(res);
    for (size_t i = 0; i < n; i++)
        k->encode(w, rows + i * k->row_size);
    if (n > 0) {
        key = rows + (n - 1) * k->row_size + k->key_offset;
        id = rows + (n - 1) * k->row_size + k->id_offset;
    }
    list_page_end(req, w, &a.scope, more, key, id);
done:
    free(rows);
}

/* ---- the lists: each one's encoder, then its handler */

static void event_encode(struct jw *w, const void *row) { encode_event(w, row); }

void api_events_list(struct request *req, struct response *res)
{
    static const struct list_kind events = {
        "events", LIST_EVENTS, "org_id", true, NULL, NULL, sizeof(struct event), event_encode,
        offsetof(struct event, created_at), offsetof(struct event, id)};
    list_serve(req, res, &events);
}

static void session_encode(struct jw *w, const void *row) { encode_session(w, row); }

void api_sessions_list(struct request *req, struct response *res)
{
    static const struct list_kind sessions = {
        "sessions", LIST_SESSIONS, "event_id", false, NULL, NULL, sizeof(struct session),
        session_encode, offsetof(struct session, created_at), offsetof(struct session, id)};
    list_serve(req, res, &sessions);
}

static void attendee_encode(struct jw *w, const void *row) { encode_attendee(w, row); }

void api_session_registrations_list(struct request *req, struct response *res)
{
    static const char *const statuses[] = {"active", "cancelled", NULL};
    static const struct list_kind attendees = {
        "registrations", LIST_REGISTRATIONS, "session_id", false, "status", statuses,
        sizeof(struct registration), attendee_encode, offsetof(struct registration, registered_at),
        offsetof(struct registration, id)};
    list_serve(req, res, &attendees);
}

static void ledger_entry_encode(struct jw *w, const void *row)
{
    const struct ledger_entry *e = row;

    jw_object_begin(w);
    jw_key(w, "id");              jw_raw(w, e->id);       /* a bigint from the database */
    jw_key(w, "kind");            jw_string(w, e->kind);
    jw_key(w, "delta");           jw_int(w, e->delta);
    jw_key(w, "registration_id"); jw_string(w, e->registration_id[0] ? e->registration_id : NULL);
    jw_key(w, "reason");          jw_string(w, e->reason[0] ? e->reason : NULL);
    jw_key(w, "created_at");      jw_string(w, e->created_at);
    jw_object_end(w);
}

/* The ledger's position is its id alone (ids grow with time): key and id. */
void api_ledger_list(struct request *req, struct response *res)
{
    static const char *const kinds[] = {"opening_balance", "top_up", "registration", "refund", NULL};
    static const struct list_kind ledger = {
        "ledger", LIST_LEDGER, "org_id", true, "kind", kinds, sizeof(struct ledger_entry),
        ledger_entry_encode, offsetof(struct ledger_entry, id), offsetof(struct ledger_entry, id)};
    list_serve(req, res, &ledger);
}
