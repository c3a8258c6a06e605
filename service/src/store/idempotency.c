/*
 * store/idempotency.c - Idempotency-Key: one effect per key, its response replayed.
 *
 * Design notes
 *  1. The stored response is written in the same transaction as the effect,
 *     so a crash can leave neither an effect without its record (a retry
 *     would apply it twice: a second top-up) nor a record without its effect.
 *  2. "Still running" is a transaction-scoped advisory lock on the key's
 *     hash, taken with pg_try_advisory_xact_lock: a concurrent request with
 *     the same key does not wait, it gets 409 at once. The lock dies with the
 *     transaction or the connection, so no crash leaves a key stuck.
 *  3. The lookup is a separate statement after the lock: under READ
 *     COMMITTED each statement takes a fresh snapshot, so it sees the record
 *     of a holder that committed just before we got the lock.
 *  4. The operation runs after SAVEPOINT op. A refused operation (4xx)
 *     rolls back to it, so the transaction stays usable for the record, and
 *     nothing but the record survives.
 *  5. "Same request" compares the SHA-256 of the bodies' canonical text
 *     (json/canonical.h): the same decoded JSON value, however written.
 *     Not jsonb equality: jsonb keeps the last of two equal member names
 *     where the decoder reads the first (schema/0005).
 *  6. A record is found by (scope, key); the scope is the caller, the method
 *     and the full path (routes/idempotent.c, docs/adr/0010). A record an
 *     older binary wrote under its one scope per caller ("<key_id> POST
 *     /v1") cannot tell which operation it answered, so it is never
 *     replayed: while it lives (25 h) the key is refused as reused.
 *  7. A keyed registration that waits for a group (store/registrations.c,
 *     design note 8) must not wait inside its transaction: its lookup holds
 *     ACCESS SHARE on idempotency_keys until the transaction ends, a DDL
 *     statement on the table (a migration, a trigger) queues behind it, and
 *     the group leader's record INSERT queues behind the DDL, while the
 *     member waits for the leader: a cycle PostgreSQL cannot see, broken
 *     only by the request deadline (measured: ADR 0016). So before it waits
 *     it takes the same key at session level (granted at once: its own
 *     transaction holds it) and rolls its transaction back; the key stays
 *     held throughout, so a concurrent request with it still gets 409 and,
 *     after, the replay. Run alone after all, it opens a transaction again,
 *     takes the transaction-level lock (granted: the session holds it),
 *     then gives the session lock back. Nothing needs looking up again: no
 *     one else could write the key's record while it was held, and a group
 *     that failed committed nothing. A connection lost meanwhile takes the
 *     session lock with it, as it would the transaction's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invariant.h"
#include "json/writer.h"
#include "store/handle.h"
#include "store/idempotency.h"
#include "store/pg.h"
#include "store/store.h"

/* The advisory lock of a key in its scope ($1 scope, $2 key): one
 * expression, so the transaction's lock and the session's are the same lock. */
#define SQL_KEY_LOCK "(hashtextextended($1 || chr(10) || $2, 0))"

static const struct pg_stmt stmt_lock = {
    "idempotency_lock", "SELECT pg_try_advisory_xact_lock" SQL_KEY_LOCK, 2};

/* Design note 7: the key at session level, and given back. */
static const struct pg_stmt stmt_hold = {
    "idempotency_hold", "SELECT pg_advisory_lock" SQL_KEY_LOCK, 2};
static const struct pg_stmt stmt_unhold = {
    "idempotency_unhold", "SELECT pg_advisory_unlock" SQL_KEY_LOCK, 2};

/* Design notes 5 and 6: this scope's record first, else an older binary's. */
static const struct pg_stmt stmt_lookup = {
    "idempotency_lookup",
    "SELECT status, response_body,"
    "       coalesce(request_sha256 = sha256(convert_to($3, 'UTF8')), false), scope = $1"
    "  FROM idempotency_keys WHERE key = $2 AND scope IN ($1, $4)"
    " ORDER BY scope = $1 DESC LIMIT 1",
    4};

static const struct pg_stmt stmt_record = {
    "idempotency_record",
    "INSERT INTO idempotency_keys (scope, key, request_sha256, status, response_body)"
    " VALUES ($1, $2, sha256(convert_to($3, 'UTF8')), $4::smallint, $5)",
    5};

/* A group's records in one statement (store/registrations.c, design note 8). */
static const struct pg_stmt stmt_record_group = {
    "idempotency_record_group",
    "INSERT INTO idempotency_keys (scope, key, request_sha256, status, response_body)"
    " SELECT x.scope, x.key, sha256(convert_to(x.request, 'UTF8')), $2::smallint, x.body"
    "   FROM jsonb_to_recordset($1::jsonb) AS x(scope text, key text, request text, body text)",
    2};

/* Batches keep each transaction short and never lock the whole table; the
 * batch size reaches the SQL as a parameter, so it has one source. */
#define PURGE_BATCH 1000
static const struct pg_stmt stmt_purge = {
    "idempotency_purge",
    "DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY("
    "  SELECT ctid FROM idempotency_keys"
    "   WHERE created_at < now() - make_interval(hours => $1::integer) LIMIT $2::integer))",
    2};

enum et_err idempotency_purge(struct store *st, int max_age_hours, long long *purged,
                              struct problem *p)
{
    struct pg *db = store_pg(st, p);
    char hours[16], batch[16];
    const char *params[] = {hours, batch};

    if (db == NULL)
        return p->err;
    *purged = 0;
    snprintf(hours, sizeof hours, "%d", max_age_hours);
    snprintf(batch, sizeof batch, "%d", PURGE_BATCH);
    for (;;) {
        PGresult *res = pg_exec(db, &stmt_purge, params, p);
        long long n;
        if (res == NULL)
            return p->err;
        n = strtoll(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        *purged += n;
        if (n < PURGE_BATCH)
            return ET_OK;
    }
}

void idempotency_abort(struct store *st, struct store_txn *txn)
{
    if (txn->open && st->pg != NULL)
        pg_rollback(st->pg);
    txn->open = false;
    idempotency_release(st, txn);
}

/* Design notes 5 and 6: what the record found says; true when it replays. */
static bool record_found(const PGresult *res, bool *replay, int *status, struct buf *body,
                         struct problem *p)
{
    if (strcmp(PQgetvalue(res, 0, 3), "t") != 0) {
        problem_set(p, ET_ERR_INVALID, PT_IDEMPOTENCY_KEY_REUSED,
                    "this Idempotency-Key was used before an upgrade of the service, by a request"
                    " whose operation cannot be told; use a new key");
        return false;
    }
    if (strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
        problem_set(p, ET_ERR_INVALID, PT_IDEMPOTENCY_KEY_REUSED,
                    "this Idempotency-Key was used with a different request body");
        return false;
    }
    *replay = true;
    *status = atoi(PQgetvalue(res, 0, 0));
    buf_append(body, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
    return true;
}

enum et_err idempotency_begin(struct store *st, const struct idempotency_request *rq,
                              struct store_txn *txn, bool *replay, int *status, struct buf *body,
                              struct problem *p)
{
    struct pg *db = store_pg(st, p);
    const char *lock_params[] = {rq->scope, rq->key};
    const char *lookup_params[] = {rq->scope, rq->key, rq->request,
                                   rq->legacy_scope ? rq->legacy_scope : rq->scope};
    PGresult *res = NULL;
    enum et_err err;

    *replay = false;
    txn->open = false;
    txn->rq = rq;
    txn->recorded = false;
    txn->held = false;
    if (db == NULL)
        return p->err;
    if ((err = pg_command(db, "BEGIN", p)) != ET_OK)
        goto done;
    txn->open = true;
    if ((res = pg_exec(db, &stmt_lock, lock_params, p)) == NULL)
        goto fail;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        problem_set(p, ET_ERR_CONFLICT, PT_IDEMPOTENCY_KEY_IN_PROGRESS,
                    "a request with this Idempotency-Key is still being processed");
        goto fail;
    }
    PQclear(res);
    if ((res = pg_exec(db, &stmt_lookup, lookup_params, p)) == NULL)
        goto fail;
    if (PQntuples(res) == 1) {
        if (!record_found(res, replay, status, body, p))
            goto fail;
        idempotency_abort(st, txn);
        err = ET_OK;
        goto done;
    }
    if ((err = pg_command(db, "SAVEPOINT op", p)) != ET_OK)
        goto fail;
    err = ET_OK;
    goto done;
fail:
    err = p->err;
    idempotency_abort(st, txn);
done:
    PQclear(res);
    return err;
}

/* rq's record, answered `status` with body, inside the caller's transaction. */
static enum et_err idempotency_record(struct pg *db, const struct idempotency_request *rq, int status,
                                      const char *body, struct problem *p)
{
    char status_text[8];
    const char *params[] = {rq->scope, rq->key, rq->request, status_text, body};
    PGresult *res;

    snprintf(status_text, sizeof status_text, "%d", status);
    if ((res = pg_exec(db, &stmt_record, params, p)) == NULL)
        return p->err;
    PQclear(res);
    return ET_OK;
}

enum et_err idempotency_record_group(struct pg *db, const struct idempotency_request *const *rqs,
                                     const char *const *bodies, int n, int status, struct problem *p)
{
    struct buf json = BUF_INIT;
    struct jw w;
    char status_text[8], *param;
    PGresult *res = NULL;

    jw_init(&w, &json);
    jw_array_begin(&w);
    for (int i = 0; i < n; i++) {
        jw_object_begin(&w);
        jw_key(&w, "scope"), jw_string(&w, rqs[i]->scope);
        jw_key(&w, "key"), jw_string(&w, rqs[i]->key);
        jw_key(&w, "request"), jw_string(&w, rqs[i]->request);
        jw_key(&w, "body"), jw_string(&w, bodies[i]);
        jw_object_end(&w);
    }
    jw_array_end(&w);
    snprintf(status_text, sizeof status_text, "%d", status);
    if ((param = buf_release(&json, NULL)) == NULL)
        return problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory writing idempotency records");
    res = pg_exec(db, &stmt_record_group, (const char *const[]){param, status_text}, p);
    free(param);
    PQclear(res);
    return res == NULL ? p->err : ET_OK;
}

enum et_err idempotency_finish(struct store *st, struct store_txn *txn,
                               const struct idempotency_request *rq, int status, const char *body,
                               struct problem *p)
{
    struct pg *db = st->pg;                /* the connection holding txn (idempotency_begin) */
    enum et_err err = ET_OK;

    if ((status < 200 || status > 299) &&
        (err = pg_command(db, "ROLLBACK TO SAVEPOINT op", p)) != ET_OK)
        goto fail;
    if ((err = idempotency_record(db, rq, status, body, p)) != ET_OK)
        goto fail;
    if ((err = pg_command(db, "COMMIT", p)) == ET_OK) {
        txn->open = false;
        return ET_OK;
    }
fail:
    idempotency_abort(st, txn);
    return err;
}

/* A statement whose one row is ignored: the advisory lock calls. */
static enum et_err exec_lock(struct pg *db, const struct pg_stmt *stmt, const struct idempotency_request *rq,
                             struct problem *p)
{
    PGresult *res = pg_exec(db, stmt, (const char *const[]){rq->scope, rq->key}, p);

    PQclear(res);
    return res == NULL ? p->err : ET_OK;
}

enum et_err idempotency_detach(struct store *st, struct store_txn *txn, struct problem *p)
{
    struct pg *db = st->pg;                /* the connection holding txn (idempotency_begin) */
    enum et_err err;

    ET_ASSERT(txn->open && !txn->held && txn->rq != NULL);
    if ((err = exec_lock(db, &stmt_hold, txn->rq, p)) != ET_OK) {
        idempotency_abort(st, txn);
        return err;
    }
    txn->held = true;
    err = pg_command(db, "ROLLBACK", p);   /* failed: the connection is gone, and the lock with it */
    txn->open = false;
    txn->held = err == ET_OK;
    return err;
}

enum et_err idempotency_reattach(struct store *st, struct store_txn *txn, struct problem *p)
{
    struct pg *db = st->pg;
    enum et_err err;

    ET_ASSERT(!txn->open && txn->held);
    if ((err = pg_command(db, "BEGIN", p)) != ET_OK)
        return err;
    txn->open = true;
    if ((err = exec_lock(db, &stmt_lock, txn->rq, p)) != ET_OK ||
        (err = pg_command(db, "SAVEPOINT op", p)) != ET_OK) {
        idempotency_abort(st, txn);
        return err;
    }
    idempotency_release(st, txn);          /* the transaction's lock holds the key now */
    return ET_OK;
}

void idempotency_release(struct store *st, struct store_txn *txn)
{
    struct problem ignored = {0};

    /* A failure drops the connection (store/pg.c), which releases the lock. */
    if (txn->held && st->pg != NULL)
        (void)exec_lock(st->pg, &stmt_unhold, txn->rq, &ignored);
    txn->held = false;
}
