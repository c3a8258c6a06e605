/*
 * store/lists.c - the lists: events of an organization, sessions of an
 * event, registrations of a session, the ledger of an organization.
 *
 * Design notes (docs/adr/0015)
 *  1. Keyset pagination: a page is "the rows after the last one I saw", a
 *     row comparison (key, id) < ($after_key, $after_id) on an index whose
 *     columns are the scope, the key and the id in the list's order
 *     (schema/0006). The database walks the index from that point and stops
 *     after limit + 1 rows (the extra one only says whether a page follows),
 *     so a page costs the same at the millionth row as at the first: no
 *     OFFSET, no sort of the whole list.
 *  2. The first page uses the same statement, with the position past every
 *     row ('infinity' for a time, the largest bigint for the ledger), so one
 *     prepared plan serves every page. A ledger row's key and id are the
 *     same number.
 *  3. A filter (status=, kind=) is applied to the rows the range scan
 *     yields, not by another index: it keeps ingest and registration from
 *     paying for one more index per filter value, at the price of reading
 *     past filtered-out rows (ADR 0015 measures it).
 *  4. The listed resource is looked up first, with the tenant: a missing or
 *     foreign one is 404, an existing one with no rows an empty page.
 *  5. Rows added while a client pages are newer than its position and so
 *     appear on a later walk, never as a repeat or in place of another
 *     row: the position is a row's own (key, id), which never changes.
 */
#include <stdio.h>

#include "invariant.h"
#include "store/handle.h"
#include "store/pg.h"
#include "store/rows.h"
#include "store/store.h"

#define AFTER_TIME "(coalesce($3::timestamptz, 'infinity'), coalesce($4::text, ''))"

static const struct pg_stmt stmt_org_owner = {
    "lists_org_owner",
    "SELECT 1 FROM organizations WHERE id = $1 AND ($2::text IS NULL OR id = $2::text)", 2};
static const struct pg_stmt stmt_event_owner = {
    "lists_event_owner",
    "SELECT 1 FROM events WHERE id = $1 AND ($2::text IS NULL OR organization_id = $2::text)", 2};
static const struct pg_stmt stmt_session_owner = {
    "lists_session_owner",
    "SELECT 1 FROM sessions WHERE id = $1 AND ($2::text IS NULL OR organization_id = $2::text)", 2};

/* $1 scope, $2 filter (NULL: none), $3 after_key, $4 after_id, $5 limit + 1. */
static const struct pg_stmt stmt_events_page = {
    "lists_events",
    "SELECT " EVENT_COLUMNS("") "  FROM events WHERE organization_id = $1 AND $2::text IS NULL"
    "   AND (created_at, id::text) < " AFTER_TIME
    " ORDER BY created_at DESC, id DESC LIMIT $5",
    5};
static const struct pg_stmt stmt_sessions_page = {
    "lists_sessions",
    "SELECT " SESSION_COLUMNS("") "  FROM sessions WHERE event_id = $1 AND $2::text IS NULL"
    "   AND (created_at, id::text) < " AFTER_TIME
    " ORDER BY created_at DESC, id DESC LIMIT $5",
    5};
static const struct pg_stmt stmt_registrations_page = {
    "lists_registrations",
    "SELECT " REGISTRATION_COLUMNS("") "  FROM registrations WHERE session_id = $1"
    "   AND ($2::text IS NULL OR ($2::text = 'cancelled') = (cancelled_at IS NOT NULL))"
    "   AND (registered_at, id::text) < " AFTER_TIME
    " ORDER BY registered_at DESC, id DESC LIMIT $5",
    5};
static const struct pg_stmt stmt_ledger_page = {
    "lists_ledger",
    "SELECT " LEDGER_COLUMNS("") "  FROM credit_ledger WHERE organization_id = $1 AND ($2::text IS NULL OR kind = $2::text)"
    "   AND id < coalesce($3::bigint, $4::bigint, 9223372036854775807)"
    " ORDER BY id DESC LIMIT $5",
    5};

/* Each list: the statement that checks its resource (design note 4), what
 * that resource is called in a 404, the page statement, the rows' layout. */
static const struct {
    const struct pg_stmt *owner;
    const char *what;
    const struct pg_stmt *page;
    const struct row_layout *row;
} lists[] = {
    [LIST_EVENTS] = {&stmt_org_owner, "organization", &stmt_events_page, &event_row},
    [LIST_SESSIONS] = {&stmt_event_owner, "event", &stmt_sessions_page, &session_row},
    [LIST_REGISTRATIONS] = {&stmt_session_owner, "session", &stmt_registrations_page,
                            &registration_row},
    [LIST_LEDGER] = {&stmt_org_owner, "organization", &stmt_ledger_page, &ledger_row},
};

/* Design note 4, then the page: limit + 1 rows, the last only for *more. */
enum et_err list_fetch(struct store *st, enum list_name list, const struct list_query *q,
                       void *out, size_t *count, bool *more, struct problem *p)
{
    const char *owner_params[] = {q->scope, q->tenant};
    char fetch[24];
    struct pg *db = store_pg(st, p);
    PGresult *res;

    ET_ASSERT((size_t)list < sizeof lists / sizeof lists[0]);
    if (db == NULL ||
        (res = pg_exec_row(db, lists[list].owner, owner_params, lists[list].what, q->scope, p)) ==
            NULL)
        return p->err;
    PQclear(res);
    snprintf(fetch, sizeof fetch, "%lld", q->limit + 1);
    const char *params[] = {q->scope, q->filter, q->after_key, q->after_id, fetch};
    if ((res = pg_exec(db, lists[list].page, params, p)) == NULL)
        return p->err;
    *count = rows_page(res, q->limit, more);
    rows_copy(res, (int)*count, lists[list].row, out);
    PQclear(res);
    return ET_OK;
}
