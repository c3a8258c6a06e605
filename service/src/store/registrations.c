/*
 * store/registrations.c - registrations, and constraint A.
 *
 * Design notes (the credit rule)
 *  1. One statement does everything: debit one credit, insert the
 *     registration, append the ledger row. PostgreSQL runs a statement as one
 *     transaction, so the three commit together or not at all; there is no
 *     window in which a credit is gone and no registration exists, or the
 *     reverse.
 *  2. The balance is 16 credit_buckets rows (schema/0004). The debit takes
 *     one bucket with credit, in random order, FOR UPDATE SKIP LOCKED:
 *     concurrent registrations for one organization take different rows and
 *     their commits overlap instead of queueing on one row lock.
 *     The statement never waits for a bucket. When it finds none free and
 *     the committed balance is still above zero, every funded bucket was
 *     busy: the statement is simply run again (design note 6). A refusal
 *     (402) therefore means the committed balance was zero, so an
 *     organization with N credits admits exactly N registrations; each
 *     bucket's CHECK (credits >= 0) is a second wall that is never reached.
 *     Waiting instead (FOR UPDATE after SKIP LOCKED found nothing) deadlocks:
 *     a row that fails its re-check after a wait stays locked by the waiter,
 *     so waiters end up holding dry buckets in no common order (seen under
 *     test, three transactions in a cycle).
 *  3. "Already registered" is decided by the UNIQUE (session_id, user_id)
 *     constraint, never by a look-then-insert (a TOCTOU race). Its violation
 *     aborts the whole statement, so the debit is undone with it.
 *  4. The debit only happens for a session that belongs to the paying
 *     organization; the composite foreign key on registrations proves the
 *     same thing again inside the database.
 *  5. When nothing was written, one read explains why (409, 422 or 402). It
 *     runs after the refusal and reports the state it sees; it never changes
 *     anything.
 *  6. "All funded buckets busy" is retried at once, then with pauses growing
 *     to a millisecond, for at most REGISTER_BUSY_MS; past that the answer is
 *     503 with Retry-After (the organization is saturated, not out of
 *     credit). Between attempts the statement holds no lock, so retries
 *     cannot deadlock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pg.h"
#include "store/store.h"

#define REGISTER_BUSY_MS 2000        /* design note 6 */

static const struct pg_stmt stmt_register = {
    "registrations_create",
    "WITH bucket AS ("                      /* design note 2: a free bucket, never waiting */
    "  SELECT slot FROM credit_buckets"
    "   WHERE organization_id = $3 AND credits > 0"
    "     AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = $2 AND s.organization_id = $3)"
    "   ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED"
    "), debit AS ("
    "  UPDATE credit_buckets c SET credits = c.credits - 1"
    "    FROM bucket WHERE c.organization_id = $3 AND c.slot = bucket.slot"
    "  RETURNING c.slot, c.credits"
    "), registration AS ("
    "  INSERT INTO registrations (id, session_id, organization_id, user_id, ticket_type, price_paid)"
    "  SELECT $1, $2, $3, $4, $5, $6::numeric FROM debit"
    "  RETURNING id, price_paid, registered_at"
    "), entry AS ("
    "  INSERT INTO credit_ledger (organization_id, kind, delta, registration_id)"
    "  SELECT $3, 'registration', -1, id FROM registration"
    ")"
    /* The balance left: this bucket's new value plus the others as this
     * statement's snapshot saw them. */
    "SELECT r.price_paid, " SQL_RFC3339("r.registered_at") ","
    "       d.credits + (SELECT coalesce(sum(c.credits), 0) FROM credit_buckets c"
    "                     WHERE c.organization_id = $3 AND c.slot <> d.slot)"
    "  FROM registration r, debit d",
    6};

/* Design note 5: why a registration was refused. */
static const struct pg_stmt stmt_refusal = {
    "registrations_refusal",
    "SELECT (SELECT balance FROM organization_balances WHERE organization_id = $1),"
    "       (SELECT organization_id FROM sessions WHERE id = $2),"
    "       EXISTS (SELECT 1 FROM registrations WHERE session_id = $2 AND user_id = $3)",
    3};

static const struct pg_stmt stmt_get = {
    "registrations_get",
    "SELECT r.id, r.session_id, r.user_id, r.organization_id, r.ticket_type, r.price_paid, "
    SQL_RFC3339("r.registered_at") ", b.balance"
    "  FROM registrations r JOIN organization_balances b ON b.organization_id = r.organization_id"
    " WHERE r.id = $1 AND ($2::text IS NULL OR r.organization_id = $2::text)",
    2};

/* Design note 5; *busy: nothing is wrong but every funded bucket was locked. */
static enum et_err registration_refused(struct pg *db, const struct registration *r,
                                        const char *tenant, bool *busy, struct problem *p)
{
    const char *params[] = {r->organization_id, r->session_id, r->user_id};
    PGresult *res = pg_exec(db, &stmt_refusal, params, p);
    enum et_err err;

    if (res == NULL)
        return p->err;
    if (PQgetisnull(res, 0, 0)) {
        problem_field(p, "organization_id", "no such organization");
        err = problem_set(p, ET_ERR_INVALID, NULL, "the registration refers to an unknown organization");
    } else if (PQgetisnull(res, 0, 1) ||
               (tenant != NULL && strcmp(PQgetvalue(res, 0, 1), tenant) != 0)) {
        /* Another tenant's session must look exactly like a missing one. */
        problem_field(p, "session_id", "no such session");
        err = problem_set(p, ET_ERR_INVALID, NULL, "the registration refers to an unknown session");
    } else if (strcmp(PQgetvalue(res, 0, 1), r->organization_id) != 0) {
        problem_field(p, "organization_id", "does not run the event of this session");
        err = problem_set(p, ET_ERR_INVALID, NULL,
                          "organization %s does not run the event of session %s",
                          r->organization_id, r->session_id);
    } else if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
        err = problem_set(p, ET_ERR_CONFLICT, "already-registered",
                          "user %s is already registered for session %s", r->user_id,
                          r->session_id);
    } else if (strtoll(PQgetvalue(res, 0, 0), NULL, 10) > 0) {
        *busy = true;
        err = problem_set(p, ET_ERR_UNAVAILABLE, "store-unavailable",
                          "organization %s is saturated with registrations; retry",
                          r->organization_id);
    } else {
        err = problem_set(p, ET_ERR_NO_CREDIT, "insufficient-credits",
                          "organization %s has no credit left", r->organization_id);
    }
    PQclear(res);
    return err;
}

enum et_err registrations_create(struct pg *db, struct registration *r, const char *tenant,
                                 struct problem *p)
{
    const char *params[] = {r->id, r->session_id, r->organization_id, r->user_id, r->ticket_type,
                            r->price_paid};
    PGresult *res;

    long long waited_us = 0;

    id_generate(r->id, "reg");
    for (int attempt = 0;; attempt++) {
        bool busy = false;
        if ((res = pg_exec(db, &stmt_register, params, p)) == NULL) {
            if (strcmp(pg_sqlstate(db), "23505") == 0 &&
                strcmp(pg_constraint(db), "registrations_one_per_user") == 0)
                return problem_set(p, ET_ERR_CONFLICT, "already-registered",
                                   "user %s is already registered for session %s", r->user_id,
                                   r->session_id);
            return p->err;
        }
        if (PQntuples(res) > 0)
            break;
        PQclear(res);
        if (registration_refused(db, r, tenant, &busy, p) != ET_OK && !busy)
            return p->err;
        if (waited_us >= REGISTER_BUSY_MS * 1000)
            return p->err;                           /* 503: saturated (design note 6) */
        /* Design note 6: at once, then pauses growing to 1 ms. */
        long pause_us = attempt < 2 ? 0 : attempt < 12 ? 100 * (attempt - 1) : 1000;
        if (pause_us > 0)
            nanosleep(&(struct timespec){0, pause_us * 1000}, NULL);
        waited_us += pause_us + 100;
        problem_clear(p);
    }
    snprintf(r->price_paid, sizeof r->price_paid, "%s", PQgetvalue(res, 0, 0));
    snprintf(r->registered_at, sizeof r->registered_at, "%s", PQgetvalue(res, 0, 1));
    r->credits_remaining = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);
    return ET_OK;
}

enum et_err registrations_get(struct pg *db, const char *id, const char *tenant,
                              struct registration *out, struct problem *p)
{
    const char *params[] = {id, tenant};
    PGresult *res = pg_exec_row(db, &stmt_get, params, "registration", id, p);

    if (res == NULL)
        return p->err;
    snprintf(out->id, sizeof out->id, "%s", PQgetvalue(res, 0, 0));
    snprintf(out->session_id, sizeof out->session_id, "%s", PQgetvalue(res, 0, 1));
    snprintf(out->user_id, sizeof out->user_id, "%s", PQgetvalue(res, 0, 2));
    snprintf(out->organization_id, sizeof out->organization_id, "%s", PQgetvalue(res, 0, 3));
    snprintf(out->ticket_type, sizeof out->ticket_type, "%s", PQgetvalue(res, 0, 4));
    snprintf(out->price_paid, sizeof out->price_paid, "%s", PQgetvalue(res, 0, 5));
    snprintf(out->registered_at, sizeof out->registered_at, "%s", PQgetvalue(res, 0, 6));
    out->credits_remaining = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
    PQclear(res);
    return ET_OK;
}
