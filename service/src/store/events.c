/*
 * store/events.c - events (conferences) and their sessions.
 *
 * A session carries its event's organization, copied by the INSERT itself
 * from the event row and pinned by the composite foreign key
 * (event_id, organization_id) -> events: the database, not this code,
 * guarantees that the organization charged for a registration is the one
 * that runs the session's event.
 */
#include <stdio.h>
#include <string.h>

#include "store/handle.h"
#include "store/pg.h"
#include "store/rows.h"
#include "store/store.h"

static const struct pg_stmt stmt_event_create = {
    "events_create",
    "INSERT INTO events (id, organization_id, name, starts_at)"
    " VALUES ($1, $2, $3, $4::timestamptz)"
    " ON CONFLICT (id) DO NOTHING"
    " RETURNING " EVENT_COLUMNS(""),
    4};

static const struct pg_stmt stmt_event_get = {
    "events_get",
    "SELECT " EVENT_COLUMNS("") " FROM events"
    " WHERE id = $1 AND ($2::text IS NULL OR organization_id = $2::text)",
    2};

static const struct pg_stmt stmt_session_create = {
    "sessions_create",
    "INSERT INTO sessions (id, event_id, organization_id, title, speaker_id)"
    " SELECT $1, e.id, e.organization_id, $3, $4 FROM events e"
    "  WHERE e.id = $2 AND ($5::text IS NULL OR e.organization_id = $5::text)"
    " ON CONFLICT (id) DO NOTHING"
    " RETURNING " SESSION_COLUMNS(""),
    5};

/* Why a session insert returned nothing: the event is missing, or the id is taken. */
static const struct pg_stmt stmt_session_refusal = {
    "sessions_refusal",
    "SELECT EXISTS (SELECT 1 FROM events"
    "                WHERE id = $1 AND ($3::text IS NULL OR organization_id = $3::text)),"
    "       EXISTS (SELECT 1 FROM sessions WHERE id = $2)",
    3};

static const struct pg_stmt stmt_session_get = {
    "sessions_get",
    "SELECT " SESSION_COLUMNS("") " FROM sessions"
    " WHERE id = $1 AND ($2::text IS NULL OR organization_id = $2::text)",
    2};

enum et_err events_create(struct store *st, struct event *ev, struct problem *p)
{
    struct pg *db = store_pg(st, p);
    const char *params[] = {ev->id, ev->organization_id, ev->name,
                            ev->starts_at[0] ? ev->starts_at : NULL};
    PGresult *res;

    if (db == NULL)
        return p->err;
    if (ev->id[0] == '\0')
        id_generate(ev->id, "evt");
    if ((res = pg_exec(db, &stmt_event_create, params, p)) == NULL) {
        if (strcmp(pg_sqlstate(db), SQLSTATE_FOREIGN_KEY_VIOLATION) == 0) {        /* foreign key: no such org */
            problem_clear(p);
            problem_field(p, "organization_id", "no such organization");
            return problem_set(p, ET_ERR_INVALID, NULL, "the event refers to an unknown organization");
        }
        if (strncmp(pg_sqlstate(db), SQLSTATE_DATA_EXCEPTION_CLASS, 2) == 0) {      /* e.g. February 30th */
            problem_clear(p);
            problem_field(p, "starts_at", "is not a valid date-time");
            return problem_set(p, ET_ERR_INVALID, NULL, "the request body has invalid fields");
        }
        return p->err;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return problem_set(p, ET_ERR_CONFLICT, PT_ALREADY_EXISTS, "event %s already exists", ev->id);
    }
    row_copy(res, 0, &event_row, ev);
    PQclear(res);
    return ET_OK;
}

enum et_err events_get(struct store *st, const char *id, const char *tenant, struct event *out,
                       struct problem *p)
{
    const char *params[] = {id, tenant};

    return row_get(st, &stmt_event_get, params, "event", id, &event_row, out, p);
}

enum et_err sessions_create(struct store *st, struct session *s, const char *tenant,
                            struct problem *p)
{
    struct pg *db = store_pg(st, p);
    const char *params[] = {s->id, s->event_id, s->title, s->speaker_id, tenant};
    const char *why_params[] = {s->event_id, s->id, tenant};
    PGresult *res;
    bool event_exists;

    if (db == NULL)
        return p->err;
    if (s->id[0] == '\0')
        id_generate(s->id, "ses");
    if ((res = pg_exec(db, &stmt_session_create, params, p)) == NULL)
        return p->err;
    if (PQntuples(res) == 1) {
        row_copy(res, 0, &session_row, s);
        PQclear(res);
        return ET_OK;
    }
    PQclear(res);
    if ((res = pg_exec(db, &stmt_session_refusal, why_params, p)) == NULL)
        return p->err;
    event_exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!event_exists) {
        problem_field(p, "event_id", "no such event");
        return problem_set(p, ET_ERR_INVALID, NULL, "the session refers to an unknown event");
    }
    return problem_set(p, ET_ERR_CONFLICT, PT_ALREADY_EXISTS, "session %s already exists", s->id);
}

enum et_err sessions_get(struct store *st, const char *id, const char *tenant, struct session *out,
                         struct problem *p)
{
    const char *params[] = {id, tenant};

    return row_get(st, &stmt_session_get, params, "session", id, &session_row, out, p);
}
