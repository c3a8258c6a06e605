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
 *     to a millisecond, for at most BUSY_BUDGET_MS (store/busy.h); past that the answer is
 *     503 with Retry-After (the organization is saturated, not out of
 *     credit). Between attempts the statement holds no lock, so retries
 *     cannot deadlock. The refusal read (note 5) first waits for a top-up of
 *     the organization under way, if any (its buckets are busy, not
 *     saturated; store/organizations.c, design note 3); that wait is not
 *     counted.
 *  7. Group commit for a ticket rush. A transaction per registration spends
 *     most of its time in per-transaction work (executor start, commit, WAL
 *     flush, two process switches), not in the rows it writes, so under load
 *     concurrent registrations are saved together: each request joins a
 *     queue (store/group_commit.c, where its states are drawn); while fewer
 *     than group_commit_lanes (a setting) groups are in flight, the oldest
 *     waiter leads, takes up to GROUP_MAX queued registrations and saves
 *     them in ONE statement (stmt_register_group), on its own connection.
 *     Nobody waits for a group to fill: a request arriving at an idle
 *     service runs alone, at once; a queue only forms while the lanes are
 *     busy, and what queued meanwhile is the next group (docs/adr/0008).
 *     The group statement is an accelerator, never a judge: it saves the
 *     registrations that clearly succeed (a bucket holding credit for all of
 *     the organization's group, a session of that organization, no existing
 *     registration) and every other one is run alone by its own thread
 *     through notes 1-6, which decide every refusal exactly as before. Each
 *     saved registration still debits exactly one credit in the transaction
 *     that saves it; a group that fails as a whole saved nothing, and all of
 *     its registrations run alone.
 *  8. A keyed registration (Idempotency-Key) joins groups too, and its record
 *     still commits with it (store/idempotency.c, design note 1). Its
 *     connection is inside the caller's transaction (the key's lock, a
 *     savepoint). Alone at once, it runs there, as without groups. Before it
 *     waits, or leads a group of others on that connection, it is detached
 *     (group_commit_in_txn): it keeps its key at session level and ends its
 *     transaction (store/idempotency.c, design note 7), so it waits holding
 *     no lock a DDL on idempotency_keys could queue behind, and a group it
 *     leads commits by itself. The group's transaction saves, with the
 *     registrations, each saved keyed member's record: 201 and the body
 *     rendered by encode_registration from the values the group statement
 *     returned, which is what the route then answers (routes/registrations.c
 *     renders the same struct). The key stays held until that commit, so a
 *     concurrent request with it still gets 409, and the replay after
 *     (txn->recorded). A keyed member the group does not save runs alone in
 *     its own transaction, reopened. docs/adr/0016.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json/codec.h"
#include "json/writer.h"
#include "store/busy.h"
#include "store/group_commit.h"
#include "store/handle.h"
#include "store/idempotency.h"
#include "store/pg.h"
#include "store/rows.h"
#include "store/store.h"


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

/* Design note 7: a group of registrations in one statement. $1 is a JSON
 * array of {n, id, session_id, organization_id, user_id, ticket_type,
 * price_paid}; a row comes back for each registration saved (by its n), with
 * the balance left after it, as if the group had been saved one by one. */
static const struct pg_stmt stmt_register_group = {
    "registrations_create_group",
    "WITH item AS ("
    "  SELECT * FROM jsonb_to_recordset($1::jsonb)"
    "    AS x (n integer, id text, session_id text, organization_id text, user_id text,"
    "          ticket_type text, price_paid text)"
    "), payable AS ("
    "  SELECT i.* FROM item i"
    "   WHERE EXISTS (SELECT 1 FROM sessions s"
    "                  WHERE s.id = i.session_id AND s.organization_id = i.organization_id)"
    "), bucket AS ("                        /* one bucket per organization, credit for all of it */
    "  SELECT o.organization_id, b.slot, b.credits"
    "    FROM (SELECT organization_id, count(*) AS wanted FROM payable GROUP BY 1) o"
    "   CROSS JOIN LATERAL ("
    "     SELECT c.slot, c.credits FROM credit_buckets c"
    "      WHERE c.organization_id = o.organization_id AND c.credits >= o.wanted"
    "      ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED) b"
    "), registration AS ("
    "  INSERT INTO registrations (id, session_id, organization_id, user_id, ticket_type, price_paid)"
    "  SELECT p.id, p.session_id, p.organization_id, p.user_id, p.ticket_type, p.price_paid::numeric"
    "    FROM payable p JOIN bucket USING (organization_id)"
    "  ON CONFLICT DO NOTHING"              /* already registered: that one runs alone (409) */
    "  RETURNING id, organization_id, price_paid, registered_at"
    "), spent AS ("
    "  SELECT organization_id, count(*) AS n FROM registration GROUP BY 1"
    "), debit AS ("
    "  UPDATE credit_buckets c SET credits = c.credits - spent.n"
    "    FROM spent JOIN bucket USING (organization_id)"
    "   WHERE c.organization_id = spent.organization_id AND c.slot = bucket.slot"
    "), entry AS ("
    "  INSERT INTO credit_ledger (organization_id, kind, delta, registration_id)"
    "  SELECT organization_id, 'registration', -1, id FROM registration"
    ")"
    "SELECT i.n, r.price_paid, " SQL_RFC3339("r.registered_at") ","
    "       b.credits - row_number() OVER (PARTITION BY r.organization_id ORDER BY i.n)"
    "       + (SELECT coalesce(sum(c.credits), 0) FROM credit_buckets c"
    "           WHERE c.organization_id = r.organization_id AND c.slot <> b.slot)"
    "  FROM registration r JOIN item i ON i.id = r.id"
    "  JOIN bucket b ON b.organization_id = r.organization_id",
    1};

/* Design note 5: why a registration was refused. Design note 6: it first
 * waits out a top-up of the organization under way, if any (its buckets are
 * busy, not saturated), taking the top-up gate shared and releasing it in
 * the same statement, so it holds nothing after (store/organizations.c,
 * design note 3). */
static const struct pg_stmt stmt_refusal = {
    "registrations_refusal",
    "WITH gate AS MATERIALIZED ("
    "  SELECT pg_advisory_lock_shared(" SQL_TOP_UP_GATE("$1") ") AS taken"
    "), open AS MATERIALIZED ("
    "  SELECT pg_advisory_unlock_shared(" SQL_TOP_UP_GATE("$1") ") FROM gate"
    ")"
    "SELECT (SELECT balance FROM organization_balances WHERE organization_id = $1),"
    "       (SELECT organization_id FROM sessions WHERE id = $2),"
    "       EXISTS (SELECT 1 FROM registrations WHERE session_id = $2 AND user_id = $3"
    "                AND cancelled_at IS NULL)"
    "  FROM open",
    3};

static const struct pg_stmt stmt_get = {
    "registrations_get",
    "SELECT " REGISTRATION_COLUMNS("r.") ", b.balance"
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
        err = problem_set(p, ET_ERR_CONFLICT, PT_ALREADY_REGISTERED,
                          "user %s is already registered for session %s", r->user_id,
                          r->session_id);
    } else if (strtoll(PQgetvalue(res, 0, 0), NULL, 10) > 0) {
        *busy = true;
        err = problem_set(p, ET_ERR_UNAVAILABLE, PT_STORE_UNAVAILABLE,
                          "organization %s is saturated with registrations; retry",
                          r->organization_id);
    } else {
        err = problem_set(p, ET_ERR_NO_CREDIT, PT_INSUFFICIENT_CREDITS,
                          "organization %s has no credit left", r->organization_id);
    }
    PQclear(res);
    return err;
}
/* Design notes 1-6: one registration, one statement. */
static enum et_err register_alone(struct pg *db, struct registration *r, const char *tenant,
                                  struct problem *p)
{
    const char *params[] = {r->id, r->session_id, r->organization_id, r->user_id, r->ticket_type,
                            r->price_paid};
    PGresult *res;

    long long waited_us = 0;

    for (int attempt = 0;; attempt++) {
        bool busy = false;
        if ((res = pg_exec(db, &stmt_register, params, p)) == NULL) {
            if (strcmp(pg_sqlstate(db), SQLSTATE_UNIQUE_VIOLATION) == 0 &&
                strcmp(pg_constraint(db), "registrations_one_per_user") == 0)
                return problem_set(p, ET_ERR_CONFLICT, PT_ALREADY_REGISTERED,
                                   "user %s is already registered for session %s", r->user_id,
                                   r->session_id);
            return p->err;
        }
        if (PQntuples(res) > 0)
            break;
        PQclear(res);
        if (registration_refused(db, r, tenant, &busy, p) != ET_OK && !busy)
            return p->err;
        if (!busy_backoff(attempt, &waited_us))
            return p->err;                           /* 503: saturated (design note 6) */
        problem_clear(p);
    }
    snprintf(r->price_paid, sizeof r->price_paid, "%s", PQgetvalue(res, 0, 0));
    snprintf(r->registered_at, sizeof r->registered_at, "%s", PQgetvalue(res, 0, 1));
    r->credits_remaining = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);
    return ET_OK;
}

/* ------------------------------------------------ design note 7: groups */

/* A group_commit context: the calling thread's connection and tenant. */
struct register_ctx {
    struct pg *db;
    const char *tenant;
    struct store *st;               /* a keyed member's (design note 8): its handle... */
    struct store_txn *txn;          /* ...and the transaction holding its key */
};

/* A group_commit item: the registration, and for a keyed one (design note
 * 8) its key and whether the leader saved its record with it. */
struct member {
    struct registration *r;
    const struct idempotency_request *rq;   /* NULL: not keyed */
    bool recorded;                          /* written by the leader before it settles */
    struct problem lost;                    /* why its detach failed; err ET_OK: it did not */
};

static struct group_commit register_group = GROUP_COMMIT_INIT(register_group);

/* register_alone as a group_alone_fn. */
static enum et_err register_member_alone(void *ctx, void *item, struct problem *p)
{
    const struct register_ctx *c = ctx;

    return register_alone(c->db, ((struct member *)item)->r, c->tenant, p);
}

/* Design note 8: a keyed member about to wait or lead lets go of its
 * transaction, keeping its key (a group_detach_fn; store/idempotency.c,
 * design note 7). */
static void register_keyed_detach(void *ctx, void *item)
{
    const struct register_ctx *c = ctx;
    struct member *m = item;

    (void)idempotency_detach(c->st, c->txn, &m->lost);
}

/* A keyed member's one-item path: in its own transaction again if it was
 * detached from it (its transaction is no longer open). */
static enum et_err register_keyed_alone(void *ctx, void *item, struct problem *p)
{
    const struct register_ctx *c = ctx;
    struct member *m = item;

    if (!c->txn->open) {
        if (m->lost.err != ET_OK) {
            *p = m->lost;
            return p->err;
        }
        if (idempotency_reattach(c->st, c->txn, p) != ET_OK)
            return p->err;
    }
    return register_alone(c->db, m->r, c->tenant, p);
}

/* stmt_register_group's parameter: the members as a JSON array (caller frees). */
static char *group_param(void *const *items, int n)
{
    struct buf json = BUF_INIT;
    struct jw w;

    jw_init(&w, &json);
    jw_array_begin(&w);
    for (int i = 0; i < n; i++) {
        const struct registration *r = ((const struct member *)items[i])->r;
        jw_object_begin(&w);
        jw_key(&w, "n"), jw_int(&w, i);
        jw_key(&w, "id"), jw_string(&w, r->id);
        jw_key(&w, "session_id"), jw_string(&w, r->session_id);
        jw_key(&w, "organization_id"), jw_string(&w, r->organization_id);
        jw_key(&w, "user_id"), jw_string(&w, r->user_id);
        jw_key(&w, "ticket_type"), jw_string(&w, r->ticket_type);
        jw_key(&w, "price_paid"), jw_string(&w, r->price_paid);
        jw_object_end(&w);
    }
    jw_array_end(&w);
    return buf_release(&json, NULL);
}

/* Design note 8: the records of the saved keyed members, in the group's
 * transaction, in one statement; false when they could not be written. */
static bool record_keyed(struct pg *db, void *const *items, int n, const bool *saved)
{
    const struct idempotency_request *rqs[GROUP_MAX];
    struct buf bodies[GROUP_MAX];
    const char *texts[GROUP_MAX];
    struct problem p = {0};
    int k = 0;
    bool ok = true;

    for (int i = 0; i < n && k < GROUP_MAX; i++) {
        struct member *m = items[i];
        struct jw w;
        if (!saved[i] || m->rq == NULL)
            continue;
        bodies[k] = (struct buf)BUF_INIT;
        jw_init(&w, &bodies[k]);
        encode_registration(&w, m->r);
        ok = ok && bodies[k].data != NULL;
        rqs[k] = m->rq;
        texts[k] = bodies[k].data;
        k++;
    }
    ok = ok && (k == 0 || idempotency_record_group(db, rqs, texts, k, 201, &p) == ET_OK);
    for (int i = 0; i < k; i++)
        buf_free(&bodies[i]);
    return ok;
}

/* Fills saved[] and the saved registrations from the group statement's rows. */
static int group_rows(const PGresult *res, void *const *items, int n, bool *saved)
{
    int count = 0;

    for (int row = 0; row < PQntuples(res); row++) {
        int i = atoi(PQgetvalue(res, row, 0));
        if (i < 0 || i >= n || saved[i])
            continue;
        struct registration *r = ((struct member *)items[i])->r;
        snprintf(r->price_paid, sizeof r->price_paid, "%s", PQgetvalue(res, row, 1));
        snprintf(r->registered_at, sizeof r->registered_at, "%s", PQgetvalue(res, row, 2));
        r->credits_remaining = strtoll(PQgetvalue(res, row, 3), NULL, 10);
        saved[i] = true;
        count++;
    }
    return count;
}

/* Design notes 7 and 8: saves what it can of the group in one transaction;
 * saved[i] tells which (a group_save_fn). Runs on the leader's thread, whose
 * connection is outside any transaction; the other members are blocked and
 * only read their registration after the leader publishes the states
 * (store/group_commit.c). With keyed members the statement and their records
 * share an explicit transaction; without, the statement is its own. */
static int save_group(void *ctx, void *const *items, int n, bool *saved)
{
    struct pg *db = ((const struct register_ctx *)ctx)->db;
    struct problem p = {0};
    PGresult *res = NULL;
    char *param = group_param(items, n);
    bool keyed = false, ok;
    int count = 0;

    for (int i = 0; i < n; i++) {
        saved[i] = false;
        keyed = keyed || ((const struct member *)items[i])->rq != NULL;
    }
    /* A keyed leader whose detach failed lost its connection, and its key
     * with it (design note 8): it saves nothing, and every member runs alone. */
    if (((const struct member *)items[0])->lost.err != ET_OK) {
        free(param);
        return 0;
    }
    ok = param != NULL && (!keyed || pg_command(db, "BEGIN", &p) == ET_OK);
    if (ok && (res = pg_exec(db, &stmt_register_group, (const char *const[]){param}, &p)) != NULL)
        count = group_rows(res, items, n, saved);
    ok = ok && res != NULL;
    if (ok && keyed)
        ok = record_keyed(db, items, n, saved) && pg_command(db, "COMMIT", &p) == ET_OK;
    if (!ok && keyed)
        pg_rollback(db);
    for (int i = 0; i < n; i++) {
        struct member *m = items[i];
        saved[i] = saved[i] && ok;          /* nothing was saved: every one runs alone */
        m->recorded = saved[i] && m->rq != NULL;
    }
    PQclear(res);
    free(param);
    return ok ? count : 0;
}

/* One registration: debit a credit and save it, in one transaction (design
 * notes 7 and 8: the caller's, when it passes one and no group saves it). */
enum et_err registrations_create(struct store *st, struct store_txn *txn,
                                 struct registration *r, const char *tenant, struct problem *p)
{
    struct pg *db = store_pg(st, p);
    struct register_ctx ctx = {db, tenant, st, txn};
    struct member m = {.r = r};
    enum et_err err;

    if (db == NULL)
        return p->err;
    id_generate(r->id, "reg");
    if (txn == NULL || !txn->open)
        return group_commit(&register_group, &ctx, &m, register_member_alone, save_group, p);
    if (txn->rq == NULL)
        return register_alone(db, r, tenant, p);  /* its commit belongs to the caller */
    m.rq = txn->rq;
    err = group_commit_in_txn(&register_group, &ctx, &m, register_keyed_alone, save_group,
                              register_keyed_detach, p);
    txn->recorded = err == ET_OK && m.recorded;
    idempotency_release(st, txn);   /* saved by a group: its record is committed, the key can go */
    return err;
}

void registrations_group_stats(long *groups, long *grouped)
{
    group_commit_stats(&register_group, groups, grouped);
}

enum et_err registrations_get(struct store *st, const char *id, const char *tenant,
                              struct registration *out, struct problem *p)
{
    const char *params[] = {id, tenant};

    return row_get(st, &stmt_get, params, "registration", id, &registration_with_balance_row, out,
                   p);
}
