/*
 * store/rows.h - how the model structs are read out of result rows.
 *
 * A statement that returns a whole event, session, organization,
 * registration or ledger entry selects the columns of the <NAME>_COLUMNS
 * macro below, and row_copy() fills the struct through the layout of the
 * same name (store/rows.c): the SQL column list and the C member list are
 * written once, side by side, so that a column added to one without the
 * other shows in one diff. Only store/ includes this header.
 */
#ifndef ET_STORE_ROWS_H
#define ET_STORE_ROWS_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "model.h"
#include "store/pg.h"
#include "store/store.h"

/* P is a table alias with its dot ("r.") or "". */
#define EVENT_COLUMNS(P) \
    P "id, " P "organization_id, " P "name, " SQL_RFC3339(P "starts_at") ", " \
    SQL_RFC3339(P "created_at")
#define SESSION_COLUMNS(P) \
    P "id, " P "event_id, " P "title, " P "speaker_id, " SQL_RFC3339(P "created_at")
/* CREDITS: the column that holds its balance. */
#define ORGANIZATION_COLUMNS(P, CREDITS) \
    P "id, " P "name, " CREDITS ", " SQL_RFC3339(P "created_at")
/* cancelled_at is '' while the registration is active. A statement that
 * also reports the balance (registration_with_balance_row) adds it last. */
#define REGISTRATION_COLUMNS(P) \
    P "id, " P "session_id, " P "user_id, " P "organization_id, " P "ticket_type, " \
    P "price_paid, " SQL_RFC3339(P "registered_at") ", coalesce(" \
    SQL_RFC3339(P "cancelled_at") ", '')"
#define LEDGER_COLUMNS(P) \
    P "id, " P "kind, " P "delta, coalesce(" P "registration_id, ''), coalesce(" P "reason, ''), " \
    SQL_RFC3339(P "created_at")

/* One column: the member it fills, a char array or a long long. */
struct row_column {
    size_t offset;
    size_t size;                   /* of a char array; 0: a long long parsed from the text */
};
struct row_layout {
    const struct row_column *columns;
    int count;
    size_t stride;                 /* sizeof the struct: rows_copy's step */
};

/* integer_row: one column, a long long. */
extern const struct row_layout integer_row, event_row, session_row, organization_row, registration_row,
    registration_with_balance_row, ledger_row, analytics_text_row, analytics_bucket_row;

/* Fills *out (a struct of the layout's kind) from row `row` of res. */
void row_copy(const PGresult *res, int row, const struct row_layout *layout, void *out);

/* Fills out[0 .. count) from the first count rows of res. */
void rows_copy(const PGresult *res, int count, const struct row_layout *layout, void *out);

/* A page fetched as limit + 1 rows: how many to keep (at most limit), and
 * in *more whether the extra row showed that another page follows. */
size_t rows_page(const PGresult *res, long long limit, bool *more);

/* Runs stmt, which names one WHAT called ID, and fills *out from its row:
 * not_found ("no <what> <id>") when it returns none. */
enum et_err row_get(struct store *st, const struct pg_stmt *stmt, const char *const *params,
                    const char *what, const char *id, const struct row_layout *layout, void *out,
                    struct problem *p);

#endif
