/*
 * store/rows.c - the layouts of store/rows.h, and the copy that uses them.
 *
 * A text column is copied with truncation to its member's size: every
 * column here is bounded by a CHECK of the schema to fit its member, so a
 * truncation would mean schema and model.h disagree, which the integration
 * suite's round trips would show.
 */
#include <stdio.h>
#include <stdlib.h>

#include "store/handle.h"
#include "store/rows.h"

#define TEXT(type, member) {offsetof(type, member), sizeof(((type *)0)->member)}
#define INTEGER(type, member) {offsetof(type, member), 0}
#define LAYOUT(type, columns, n) {columns, n, sizeof(type)}
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const struct row_column event_columns[] = {
    TEXT(struct event, id), TEXT(struct event, organization_id), TEXT(struct event, name),
    TEXT(struct event, starts_at), TEXT(struct event, created_at)};
static const struct row_column session_columns[] = {
    TEXT(struct session, id), TEXT(struct session, event_id), TEXT(struct session, title),
    TEXT(struct session, speaker_id), TEXT(struct session, created_at)};
static const struct row_column organization_columns[] = {
    TEXT(struct organization, id), TEXT(struct organization, name),
    INTEGER(struct organization, credits), TEXT(struct organization, created_at)};
/* The last column (the balance) only with registration_with_balance_row. */
static const struct row_column registration_columns[] = {
    TEXT(struct registration, id), TEXT(struct registration, session_id),
    TEXT(struct registration, user_id), TEXT(struct registration, organization_id),
    TEXT(struct registration, ticket_type), TEXT(struct registration, price_paid),
    TEXT(struct registration, registered_at), TEXT(struct registration, cancelled_at),
    INTEGER(struct registration, credits_remaining)};
static const struct row_column ledger_columns[] = {
    TEXT(struct ledger_entry, id), TEXT(struct ledger_entry, kind),
    INTEGER(struct ledger_entry, delta), TEXT(struct ledger_entry, registration_id),
    TEXT(struct ledger_entry, reason), TEXT(struct ledger_entry, created_at)};
/* The payload (the row's one heap member) is the caller's to copy. */
static const struct row_column analytics_columns[] = {
    TEXT(struct analytics_row, event_id), TEXT(struct analytics_row, event_type),
    TEXT(struct analytics_row, user_id), TEXT(struct analytics_row, occurred_at),
    TEXT(struct analytics_row, received_at), TEXT(struct analytics_row, seq)};

static const struct row_column bucket_columns[] = {
    TEXT(struct analytics_bucket, start), INTEGER(struct analytics_bucket, count)};
static const struct row_column integer_columns[] = {{0, 0}};

const struct row_layout integer_row = {integer_columns, 1, sizeof(long long)};
const struct row_layout event_row = LAYOUT(struct event, event_columns, COUNT(event_columns));
const struct row_layout session_row =
    LAYOUT(struct session, session_columns, COUNT(session_columns));
const struct row_layout organization_row =
    LAYOUT(struct organization, organization_columns, COUNT(organization_columns));
const struct row_layout registration_row =
    LAYOUT(struct registration, registration_columns, COUNT(registration_columns) - 1);
const struct row_layout registration_with_balance_row =
    LAYOUT(struct registration, registration_columns, COUNT(registration_columns));
const struct row_layout ledger_row =
    LAYOUT(struct ledger_entry, ledger_columns, COUNT(ledger_columns));
const struct row_layout analytics_bucket_row =
    LAYOUT(struct analytics_bucket, bucket_columns, COUNT(bucket_columns));
const struct row_layout analytics_text_row =
    LAYOUT(struct analytics_row, analytics_columns, COUNT(analytics_columns));

void row_copy(const PGresult *res, int row, const struct row_layout *layout, void *out)
{
    char *base = out;

    for (int i = 0; i < layout->count; i++) {
        const struct row_column *c = &layout->columns[i];
        const char *text = PQgetvalue(res, row, i);

        if (c->size > 0)
            snprintf(base + c->offset, c->size, "%s", text);
        else
            *(long long *)(void *)(base + c->offset) = strtoll(text, NULL, 10);
    }
}

void rows_copy(const PGresult *res, int count, const struct row_layout *layout, void *out)
{
    for (int i = 0; i < count; i++)
        row_copy(res, i, layout, (char *)out + (size_t)i * layout->stride);
}

size_t rows_page(const PGresult *res, long long limit, bool *more)
{
    size_t n = (size_t)PQntuples(res);

    *more = n > (size_t)limit;
    return *more ? (size_t)limit : n;
}

enum et_err row_get(struct store *st, const struct pg_stmt *stmt, const char *const *params,
                    const char *what, const char *id, const struct row_layout *layout, void *out,
                    struct problem *p)
{
    struct pg *db = store_pg(st, p);
    PGresult *res = db ? pg_exec_row(db, stmt, params, what, id, p) : NULL;

    if (res == NULL)
        return p->err;
    row_copy(res, 0, layout, out);
    PQclear(res);
    return ET_OK;
}
