/*
 * store/analytics.c - the analytics log, constraint C, and idempotent ingest.
 *
 * Design notes (the dedup rule)
 *  1. PostgreSQL decides "new or duplicate": (tenant, event id) is unique
 *     and the insert is ON CONFLICT (organization_id, event_id) DO NOTHING
 *     RETURNING. Only rows
 *     it returns are new; nothing else ever counts. A concurrent insert of the
 *     same id waits for the first to commit and then sees the conflict.
 *  2. A non-new id is compared with the stored row: the same type, user,
 *     organization and payload (compared as jsonb values, not text) is a
 *     duplicate; anything else is an event-id conflict. That read is its own
 *     statement, so its snapshot includes rows committed by the concurrent
 *     inserts that note 1 waited for.
 *  3. One statement serves one envelope or a batch of 1000: the validated
 *     envelopes travel as one JSON parameter expanded by jsonb_to_recordset,
 *     so a batch costs one round trip and one transaction.
 *  4. The leaderboard effect of a session_view (its conference and speaker)
 *     is resolved by the same insert and stored on the row, so a rebuild of
 *     Redis is an indexed GROUP BY and never re-reads payloads.
 *  5. Redis is told only after the commit, and only about new rows: the log
 *     is the truth, and Redis trouble cannot undo or fail an ingest. The same
 *     statement writes a leaderboard_outbox row per new view, so a view the
 *     request fails to apply (Redis down, the process killed right after the
 *     commit) is applied later by the worker (leaderboards.c, note 3).
 *  6. Group commit for single-event ingest (docs/adr/0016). A widget sends
 *     one view per request, and a transaction per view spends its time in
 *     per-transaction work (commit, WAL flush, round trips), not in the row.
 *     So a request of ONE envelope joins the ingest queue
 *     (store/group_commit.c, the registrations' scheduler): under load the
 *     leader inserts the queued envelopes of up to GROUP_MAX requests, of
 *     any tenants, with their outbox rows, in ONE statement
 *     (stmt_ingest_group), then applies the new views to Redis in one
 *     pipeline (note 5 unchanged: after the commit, new views only). At an
 *     idle service nothing queues and a request runs alone, at once.
 *     The group statement is an accelerator, never a judge: it only says
 *     "created" (the first envelope of the group with a (tenant, event id)
 *     it inserted); every other envelope (a duplicate, a conflict, a
 *     repeat of an id earlier in the same group) runs alone afterwards,
 *     through notes 1-2, which see the group's committed row and decide
 *     duplicate or conflict exactly as before. A group that fails as a
 *     whole inserted nothing, and every envelope runs alone. Batches never
 *     group: they already are one statement.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "json/writer.h"
#include "store/group_commit.h"
#include "store/handle.h"
#include "store/pg.h"
#include "store/store.h"

#define INPUT_COLUMNS \
    "i int, event_id text, event_type text, user_id text, occurred_at timestamptz," \
    " payload jsonb, session_id text, speaker_id text"

static const struct pg_stmt stmt_ingest = {
    "analytics_ingest",
    "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(" INPUT_COLUMNS ")),"
    " ins AS (INSERT INTO analytics_events (event_id, event_type, user_id, organization_id, occurred_at,"
    "                               payload, leaderboard_event_id, leaderboard_speaker_id)"
    " SELECT i.event_id, i.event_type, i.user_id, $2::text, coalesce(i.occurred_at, now()),"
    "        i.payload, s.event_id, CASE WHEN s.id IS NOT NULL"
    "                               THEN coalesce(i.speaker_id, s.speaker_id) END"
    "   FROM input i"
    "   LEFT JOIN sessions s ON i.event_type = 'session_view' AND s.id = i.session_id"
    "                       AND ($2::text IS NULL OR s.organization_id = $2::text)"
    "  ORDER BY i.i"
    " ON CONFLICT (organization_id, event_id) DO NOTHING"
    " RETURNING seq, event_id, leaderboard_event_id, leaderboard_speaker_id,"
    "           " SQL_APPLIED_MEMBER " AS member"
    "), outbox AS ("
    " INSERT INTO leaderboard_outbox (seq) SELECT seq FROM ins WHERE leaderboard_event_id IS NOT NULL"
    ")"
    " SELECT event_id, leaderboard_event_id, leaderboard_speaker_id, member FROM ins",
    2};

/* Design note 6: stmt_ingest for the envelopes of many requests, each with
 * its own tenant; a row comes back per envelope inserted. */
static const struct pg_stmt stmt_ingest_group = {
    "analytics_ingest_group",
    "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(tenant text, " INPUT_COLUMNS ")),"
    " ins AS (INSERT INTO analytics_events (event_id, event_type, user_id, organization_id, occurred_at,"
    "                               payload, leaderboard_event_id, leaderboard_speaker_id)"
    " SELECT i.event_id, i.event_type, i.user_id, i.tenant, coalesce(i.occurred_at, now()),"
    "        i.payload, s.event_id, CASE WHEN s.id IS NOT NULL"
    "                               THEN coalesce(i.speaker_id, s.speaker_id) END"
    "   FROM input i"
    "   LEFT JOIN sessions s ON i.event_type = 'session_view' AND s.id = i.session_id"
    "                       AND (i.tenant IS NULL OR s.organization_id = i.tenant)"
    /* One key order for every group, so two groups in flight that share
     * ids wait for each other in order instead of deadlocking. */
    "  ORDER BY i.tenant, i.event_id, i.i"
    " ON CONFLICT (organization_id, event_id) DO NOTHING"
    " RETURNING seq, organization_id, event_id, leaderboard_event_id, leaderboard_speaker_id,"
    "           " SQL_APPLIED_MEMBER " AS member"
    "), outbox AS ("
    " INSERT INTO leaderboard_outbox (seq) SELECT seq FROM ins WHERE leaderboard_event_id IS NOT NULL"
    ")"
    " SELECT organization_id, event_id, leaderboard_event_id, leaderboard_speaker_id, member FROM ins",
    1};

/* Design note 2: is each not-new envelope the same event as the stored one? */
static const struct pg_stmt stmt_compare = {
    "analytics_compare",
    "SELECT x.i, e.event_type = x.event_type AND e.user_id = x.user_id"
    "            AND e.payload = x.payload"
    "  FROM jsonb_to_recordset($1::jsonb) AS x(" INPUT_COLUMNS ")"
    "  JOIN analytics_events e ON e.event_id = x.event_id"
    "                        AND e.organization_id IS NOT DISTINCT FROM $2::text",
    2};

/* An envelope as the insert statements expand it from JSON, with its
 * position i in the request (the statements answer per position). */
static void envelope_members(struct jw *w, const struct analytics_event *e, long long i)
{
    jw_key(w, "i");           jw_int(w, i);
    jw_key(w, "event_id");    jw_string(w, e->event_id);
    jw_key(w, "event_type");  jw_string(w, e->event_type);
    jw_key(w, "user_id");     jw_string(w, e->user_id);
    jw_key(w, "occurred_at"); jw_string(w, e->occurred_at[0] ? e->occurred_at : NULL);
    jw_key(w, "payload");     jw_raw(w, e->payload);
    jw_key(w, "session_id");  jw_string(w, e->session_id[0] ? e->session_id : NULL);
    jw_key(w, "speaker_id");  jw_string(w, e->speaker_id[0] ? e->speaker_id : NULL);
}

/* Writes the envelopes selected by `want` as the JSON array the statements expand. */
static char *input_json(const struct analytics_event *events, size_t count,
                        enum ingest_status want, const bool *pending)
{
    struct buf out = BUF_INIT;
    struct jw w;

    jw_init(&w, &out);
    jw_array_begin(&w);
    for (size_t i = 0; i < count; i++) {
        const struct analytics_event *e = &events[i];
        if (e->status != want || (pending && !pending[i]))
            continue;
        jw_object_begin(&w);
        envelope_members(&w, e, (long long)i);
        jw_object_end(&w);
    }
    jw_array_end(&w);
    return buf_release(&out, NULL);
}

/* Index of envelopes by event id, to find the first one a returned row names. */
struct id_index {
    const char *id;
    size_t i;
};

static int id_index_cmp(const void *a, const void *b)
{
    const struct id_index *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* Marks the first still-pending envelope with this id as created; returns its index. */
static long mark_created(struct id_index *index, size_t n, const char *id,
                         struct analytics_event *events, bool *pending)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {                        /* lower bound of id */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(index[mid].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < n && strcmp(index[lo].id, id) == 0; lo++) {
        size_t i = index[lo].i;
        if (pending[i]) {
            pending[i] = false;
            events[i].status = INGEST_CREATED;
            return (long)i;
        }
    }
    return -1;
}

static enum et_err classify_not_new(struct pg *db, const char *tenant,
                                    struct analytics_event *events, size_t count,
                                    const bool *pending, struct problem *p)
{
    char *json = input_json(events, count, INGEST_DUPLICATE, pending);
    const char *params[] = {json, tenant};
    PGresult *res;

    if (json == NULL)
        return problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
    res = pg_exec(db, &stmt_compare, params, p);
    free(json);
    if (res == NULL)
        return p->err;
    for (int r = 0; r < PQntuples(res); r++) {
        size_t i = (size_t)strtoul(PQgetvalue(res, r, 0), NULL, 10);
        if (i >= count || strcmp(PQgetvalue(res, r, 1), "t") == 0)
            continue;
        events[i].status = INGEST_REJECTED;
        events[i].error = ET_ERR_CONFLICT;
        snprintf(events[i].error_detail, sizeof events[i].error_detail,
                 "event id %s was already logged with a different type, user or payload",
                 events[i].event_id);
    }
    PQclear(res);
    return ET_OK;
}

/* Design note 5: after the commit, the new views go to Redis; a failure is
 * left to the outbox, never returned. */
static void apply_after_commit(struct store *st, const struct board_increment *incs, size_t nincs)
{
    fault_point("ingest-after-commit");
    if (nincs > 0) {
        struct problem ignored = {0};
        leaderboard_apply(st, incs, nincs, &ignored);
    }
}

/* Design notes 1-5: the envelopes of one request, in one statement. */
static enum et_err ingest_alone(struct store *st, const char *tenant,
                                struct analytics_event *events, size_t count, struct problem *p)
{
    struct pg *db = store_pg(st, p);
    struct id_index *index = calloc(count, sizeof *index);
    bool *pending = calloc(count, sizeof *pending);
    struct board_increment *incs = calloc(count, sizeof *incs);
    char *json = NULL;
    PGresult *res = NULL;
    size_t n = 0, nincs = 0, npending = 0;
    enum et_err err;

    if (db == NULL) {
        err = p->err;
        goto done;
    }
    if (index == NULL || pending == NULL || incs == NULL) {
        err = problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
        goto done;
    }
    /* Every envelope that passed validation starts as "not new"; the insert
     * promotes the ones PostgreSQL accepted (design note 1). */
    for (size_t i = 0; i < count; i++) {
        if (events[i].status == INGEST_REJECTED)
            continue;
        events[i].status = INGEST_DUPLICATE;
        pending[i] = true;
        index[n++] = (struct id_index){events[i].event_id, i};
    }
    err = ET_OK;
    if (n == 0)
        goto done;
    qsort(index, n, sizeof *index, id_index_cmp);

    json = input_json(events, count, INGEST_DUPLICATE, NULL);
    if (json == NULL) {
        err = problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
        goto done;
    }
    const char *params[] = {json, tenant};
    if ((res = pg_exec(db, &stmt_ingest, params, p)) == NULL) {
        err = p->err;
        goto done;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        long i = mark_created(index, n, PQgetvalue(res, r, 0), events, pending);
        if (i >= 0 && !PQgetisnull(res, r, 1)) {
            incs[nincs++] = (struct board_increment){
                .event_id = PQgetvalue(res, r, 1),
                .speaker_id = PQgetvalue(res, r, 2),
                .member = PQgetvalue(res, r, 3),
            };
        }
    }
    for (size_t i = 0; i < count; i++)
        npending += pending[i];
    if (npending > 0 && (err = classify_not_new(db, tenant, events, count, pending, p)) != ET_OK)
        goto done;
    apply_after_commit(st, incs, nincs);
done:
    PQclear(res);
    free(json);
    free(incs);
    free(pending);
    free(index);
    return err;
}

/* ------------------------------------------------ design note 6: groups */

/* A group_commit item: one request's only envelope, and its tenant. */
struct ingest_item {
    struct analytics_event *event;
    const char *tenant;                 /* NULL: the admin key */
};

static struct group_commit ingest_group = GROUP_COMMIT_INIT(ingest_group);

/* ingest_alone as a group_alone_fn; ctx is the caller's store handle. */
static enum et_err ingest_member_alone(void *ctx, void *item, struct problem *p)
{
    struct ingest_item *it = item;

    return ingest_alone(ctx, it->tenant, it->event, 1, p);
}

/* The group's envelopes as the JSON array stmt_ingest_group expands. */
static char *group_json(void *const *items, int n)
{
    struct buf out = BUF_INIT;
    struct jw w;

    jw_init(&w, &out);
    jw_array_begin(&w);
    for (int i = 0; i < n; i++) {
        const struct ingest_item *it = items[i];
        const struct analytics_event *e = it->event;
        jw_object_begin(&w);
        jw_key(&w, "tenant");      jw_string(&w, it->tenant);
        envelope_members(&w, e, i);
        jw_object_end(&w);
    }
    jw_array_end(&w);
    return buf_release(&out, NULL);
}

/* The first member not yet saved whose (tenant, event id) a returned row
 * names (SQL NULL tenant: the admin key's); -1 if none. */
static int group_member_of(PGresult *res, int row, void *const *items, int n, const bool *saved)
{
    bool no_tenant = PQgetisnull(res, row, 0);
    const char *tenant = PQgetvalue(res, row, 0), *id = PQgetvalue(res, row, 1);

    for (int i = 0; i < n; i++) {
        const struct ingest_item *it = items[i];
        if (saved[i] || strcmp(it->event->event_id, id) != 0 ||
            (it->tenant == NULL) != no_tenant || (it->tenant && strcmp(it->tenant, tenant) != 0))
            continue;
        return i;
    }
    return -1;
}

/* Design note 6: inserts the group in one statement, then applies its new
 * views to Redis in one pipeline, both on the leader's handle (a
 * group_save_fn). The other members are blocked and only read their event
 * after the leader publishes the states (store/group_commit.c). */
static int ingest_save_group(void *ctx, void *const *items, int n, bool *saved)
{
    struct store *st = ctx;
    struct problem p = {0};
    struct board_increment *incs = calloc((size_t)n, sizeof *incs);
    struct pg *db = store_pg(st, &p);
    char *json = db && incs ? group_json(items, n) : NULL;
    PGresult *res = NULL;
    int count = 0;
    size_t nincs = 0;

    for (int i = 0; i < n; i++)
        saved[i] = false;
    if (json == NULL || (res = pg_exec(db, &stmt_ingest_group, (const char *const[]){json}, &p)) == NULL)
        goto done;                          /* nothing was inserted: every one runs alone */
    for (int row = 0; row < PQntuples(res); row++) {
        int i = group_member_of(res, row, items, n, saved);
        if (i < 0)
            continue;
        ((struct ingest_item *)items[i])->event->status = INGEST_CREATED;
        saved[i] = true;
        count++;
        if (!PQgetisnull(res, row, 2))
            incs[nincs++] = (struct board_increment){.event_id = PQgetvalue(res, row, 2),
                                                     .speaker_id = PQgetvalue(res, row, 3),
                                                     .member = PQgetvalue(res, row, 4)};
    }
    apply_after_commit(st, incs, nincs);
done:
    PQclear(res);
    free(json);
    free(incs);
    return count;
}

enum et_err analytics_ingest(struct store *st, const char *tenant,
                             struct analytics_event *events, size_t count, struct problem *p)
{
    struct ingest_item item = {events, tenant};

    if (count != 1 || events[0].status == INGEST_REJECTED)
        return ingest_alone(st, tenant, events, count, p);
    return group_commit(&ingest_group, st, &item, ingest_member_alone, ingest_save_group, p);
}

void analytics_group_stats(long *groups, long *grouped)
{
    group_commit_stats(&ingest_group, groups, grouped);
}
