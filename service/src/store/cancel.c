/*
 * store/cancel.c - cancelling a registration and refunding its credit.
 *
 * Design notes (constraint A, extended to refunds; docs/adr/0007)
 *  1. One statement does everything: mark the registration cancelled, put
 *     one credit back in a bucket, append the `refund` ledger row of +1 that
 *     names the registration. They commit together or not at all, so the
 *     balance always equals credited - active registrations and the ledger
 *     sum always equals the balance.
 *  2. At most one refund per registration: the UPDATE only matches a row
 *     whose cancelled_at IS NULL. Concurrent cancels of one registration
 *     queue on its row lock; READ COMMITTED re-checks the condition after the
 *     wait, so every one but the first finds it cancelled and changes
 *     nothing. The partial unique index credit_ledger_one_refund
 *     (schema/0006) is a second wall that is never reached.
 *  3. The bucket is taken first, FOR UPDATE SKIP LOCKED, and the statement
 *     never waits for one. Waiting would deadlock with a registration of the
 *     same (session, user) running at the same time: it holds a bucket and
 *     waits on this transaction for the unique check of the freed place,
 *     while this one would wait for its bucket. When all 16 buckets are busy
 *     the statement changes nothing and is run again, exactly as a busy
 *     registration is (store/busy.h); past its budget the answer is 503
 *     with Retry-After.
 *  4. The refund goes to any bucket, funded or dry: a bucket only has to
 *     stay >= 0, and registrations find credit in any of them.
 *  5. When nothing was written, one read explains why: no such registration
 *     (or another tenant's: 404), already cancelled (409), or busy (retry).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/busy.h"
#include "store/handle.h"
#include "store/pg.h"
#include "store/rows.h"
#include "store/store.h"

static const struct pg_stmt stmt_cancel = {
    "registrations_cancel",
    "WITH target AS ("
    "  SELECT organization_id FROM registrations"
    "   WHERE id = $1 AND ($2::text IS NULL OR organization_id = $2::text)"
    "), bucket AS MATERIALIZED ("           /* design note 3: never waits */
    "  SELECT c.organization_id, c.slot FROM credit_buckets c JOIN target USING (organization_id)"
    "   ORDER BY random() LIMIT 1 FOR UPDATE OF c SKIP LOCKED"
    "), cancel AS ("
    "  UPDATE registrations r SET cancelled_at = greatest(now(), r.registered_at)"
    "    FROM bucket WHERE r.id = $1 AND r.organization_id = bucket.organization_id"
    "     AND r.cancelled_at IS NULL"
    "  RETURNING r.id, r.session_id, r.user_id, r.organization_id, r.ticket_type, r.price_paid,"
    "            r.registered_at, r.cancelled_at"
    "), credit AS ("
    "  UPDATE credit_buckets c SET credits = c.credits + 1"
    "    FROM bucket, cancel WHERE c.organization_id = bucket.organization_id"
    "     AND c.slot = bucket.slot"
    "  RETURNING c.slot, c.credits"
    "), entry AS ("
    "  INSERT INTO credit_ledger (organization_id, kind, delta, registration_id)"
    "  SELECT organization_id, 'refund', 1, id FROM cancel"
    ")"
    "SELECT " REGISTRATION_COLUMNS("r.") ","
    "       d.credits + (SELECT coalesce(sum(c.credits), 0) FROM credit_buckets c"
    "                     WHERE c.organization_id = r.organization_id AND c.slot <> d.slot)"
    "  FROM cancel r, credit d",
    2};

/* Design note 5. */
static const struct pg_stmt stmt_cancel_refusal = {
    "registrations_cancel_refusal",
    "SELECT cancelled_at IS NOT NULL FROM registrations"
    " WHERE id = $1 AND ($2::text IS NULL OR organization_id = $2::text)",
    2};

/* Design note 5: ET_OK means "busy, run again". */
static enum et_err cancel_refused(struct pg *db, const char *id, const char *tenant,
                                  struct problem *p)
{
    const char *params[] = {id, tenant};
    PGresult *res = pg_exec_row(db, &stmt_cancel_refusal, params, "registration", id, p);
    enum et_err err = ET_OK;

    if (res == NULL)
        return p->err;
    if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
        err = problem_set(p, ET_ERR_CONFLICT, PT_REGISTRATION_CANCELLED,
                          "registration %s is already cancelled", id);
    PQclear(res);
    return err;
}

enum et_err registrations_cancel(struct store *st, const char *id, const char *tenant,
                                 struct registration *out, struct problem *p)
{
    const char *params[] = {id, tenant};
    struct pg *db = store_pg(st, p);
    long long waited_us = 0;
    PGresult *res;

    if (db == NULL)
        return p->err;
    for (int attempt = 0;; attempt++) {
        if ((res = pg_exec(db, &stmt_cancel, params, p)) == NULL)
            return p->err;
        if (PQntuples(res) > 0)
            break;
        PQclear(res);
        if (cancel_refused(db, id, tenant, p) != ET_OK)
            return p->err;
        if (!busy_backoff(attempt, &waited_us))
            return problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
                               "the organization of registration %s is saturated; retry", id);
    }
    row_copy(res, 0, &registration_with_balance_row, out);
    PQclear(res);
    return ET_OK;
}
