/*
 * store/analytics_query.c - reading the analytics log back: the events
 * themselves, and counts per time bucket.
 *
 * Design notes (docs/adr/0015)
 *  1. An organization reads its own rows through the index
 *     analytics_events_org_time (organization_id, occurred_at, seq): a page
 *     of the list is a range scan from the cursor's position backwards, and
 *     a count is a range scan over the window. The admin reads every
 *     organization's rows; its statements have no organization condition
 *     (a separate statement, so neither plan is a compromise between both).
 *  2. `payload` filters by JSONB containment (payload @> $). A selective
 *     filter is answered from the GIN index analytics_events_payload_gin
 *     (jsonb_path_ops, schema/0008), an unselective one from the btree range
 *     with containment checked on its rows; the planner chooses per value,
 *     which at 5,000,000 events cut a sponsor's day 4-6x for an ingest cost
 *     within noise (ADR 0015). It can only choose with the value in hand:
 *     `$6 IS NULL OR payload @> $6` folds to `payload @> value` in a custom
 *     plan, never in a generic one, and a prepared statement goes generic
 *     after five executions (measured: five unfiltered lists, then a
 *     selective one planned without the GIN). So these statements are
 *     unnamed (store/pg.h): planned at every execution, a fraction of a
 *     millisecond against the several the wrong plan costs.
 *  3. Buckets are UTC-aligned (date_trunc(..., 'UTC')) and the series comes
 *     from generate_series, so empty buckets are rows with count 0 and the
 *     answer's length depends on the window only, never on the data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/handle.h"
#include "store/pg.h"
#include "store/rows.h"
#include "store/store.h"

/* $1 tenant, $2 event_type, $3 user_id, $4 since, $5 until, $6 payload. */
#define FILTERS \
    "   AND ($2::text IS NULL OR event_type = $2::text)" \
    "   AND ($3::text IS NULL OR user_id = $3::text)" \
    "   AND occurred_at >= coalesce($4::timestamptz, '-infinity')" \
    "   AND occurred_at < coalesce($5::timestamptz, 'infinity')" \
    "   AND ($6::jsonb IS NULL OR payload @> $6::jsonb)"
#define LIST_COLUMNS \
    "SELECT event_id, event_type, user_id, " SQL_RFC3339("occurred_at") ", " \
    SQL_RFC3339("received_at") ", seq, payload::text FROM analytics_events"
/* $7 after occurred_at, $8 after seq, $9 limit + 1. */
#define LIST_PAGE \
    "   AND (occurred_at, seq) < (coalesce($7::timestamptz, 'infinity')," \
    "                             coalesce($8::bigint, 9223372036854775807))" \
    " ORDER BY occurred_at DESC, seq DESC LIMIT $9"

static const struct pg_stmt stmt_list_tenant = {
    "" /* unnamed: note 2 */,
    LIST_COLUMNS " WHERE organization_id = $1::text" FILTERS LIST_PAGE, 9};
static const struct pg_stmt stmt_list_admin = {
    "" /* unnamed: note 2 */,
    LIST_COLUMNS " WHERE $1::text IS NULL" FILTERS LIST_PAGE, 9};

/* $7 bucket. */
#define COUNTS(where) \
    "WITH series AS (" \
    "  SELECT generate_series(date_trunc($7::text, $4::timestamptz, 'UTC')," \
    "                         $5::timestamptz - interval '1 microsecond'," \
    "                         ('1 ' || $7::text)::interval) AS start" \
    "), hits AS (" \
    "  SELECT date_trunc($7::text, occurred_at, 'UTC') AS start, count(*) AS n" \
    "    FROM analytics_events WHERE " where FILTERS " GROUP BY 1" \
    ")" \
    "SELECT " SQL_RFC3339("s.start") ", coalesce(h.n, 0)" \
    "  FROM series s LEFT JOIN hits h USING (start) ORDER BY s.start"

static const struct pg_stmt stmt_counts_tenant = {
    "" /* unnamed: note 2 */, COUNTS("organization_id = $1::text"), 7};
static const struct pg_stmt stmt_counts_admin = {
    "" /* unnamed: note 2 */, COUNTS("$1::text IS NULL"), 7};

enum et_err analytics_list(struct store *st, const struct analytics_filter *f,
                           const char *after_key, const char *after_id, long long limit,
                           struct analytics_row *out, size_t *count, bool *more, struct problem *p)
{
    struct pg *db = store_pg(st, p);
    char fetch[24];
    PGresult *res;

    if (db == NULL)
        return p->err;
    snprintf(fetch, sizeof fetch, "%lld", limit + 1);
    const char *params[] = {f->tenant, f->event_type, f->user_id, f->since, f->until,
                            f->payload, after_key, after_id, fetch};
    res = pg_exec(db, f->tenant ? &stmt_list_tenant : &stmt_list_admin, params, p);
    if (res == NULL)
        return p->err;
    *count = rows_page(res, limit, more);
    rows_copy(res, (int)*count, &analytics_text_row, out);
    for (int i = 0; i < (int)*count; i++) {
        if ((out[i].payload = strdup(PQgetvalue(res, i, 6))) == NULL) {
            analytics_rows_free(out, (size_t)i);
            *count = 0;
            PQclear(res);
            return problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
        }
    }
    PQclear(res);
    return ET_OK;
}

void analytics_rows_free(struct analytics_row *rows, size_t count)
{
    for (size_t i = 0; rows && i < count; i++) {
        free(rows[i].payload);
        rows[i].payload = NULL;
    }
}

enum et_err analytics_counts(struct store *st, const struct analytics_filter *f,
                             const char *bucket, struct analytics_bucket *out, size_t max,
                             size_t *count, struct problem *p)
{
    const char *params[] = {f->tenant, f->event_type, f->user_id, f->since, f->until,
                            f->payload, bucket};
    struct pg *db = store_pg(st, p);
    PGresult *res = db ? pg_exec(db, f->tenant ? &stmt_counts_tenant : &stmt_counts_admin,
                                 params, p)
                       : NULL;

    if (res == NULL)
        return p->err;
    *count = (size_t)PQntuples(res);
    if (*count > max) {                 /* the caller bounded the window: never reached */
        PQclear(res);
        return problem_set(p, ET_ERR_INTERNAL, NULL, "more buckets than the window allows");
    }
    rows_copy(res, (int)*count, &analytics_bucket_row, out);
    PQclear(res);
    return ET_OK;
}
