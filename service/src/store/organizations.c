/*
 * store/organizations.c - organizations and their credit balance.
 *
 * The balance lives in credit_buckets rows, each under CHECK (credits >= 0),
 * so that registrations for one organization can debit different rows at
 * once (schema/0004, docs/adr/0007). How many is the credit_buckets setting
 * (credits_configure, 16 by default): amounts are spread over slots
 * 0 .. n - 1, bucket s getting amount / n, plus one for s < amount % n.
 * Every change is written in the same statement as its credit_ledger row
 * (opening balance, top-up, registration), so the ledger always explains the
 * balance: sum(bucket credits) = sum(delta). Each verb is one statement,
 * which PostgreSQL runs as one transaction.
 *
 * Design notes (top-ups, issue 11)
 *  1. A top-up locks all the buckets, always in slot order (ORDER BY slot FOR
 *     UPDATE, before the UPDATE touches a row), so two top-ups can never
 *     hold buckets in opposite orders. A bare UPDATE locks rows in the order
 *     its plan visits them: slot order on an index scan, heap order on a
 *     sequential or bitmap scan, and heap order changes with every update;
 *     30 concurrent top-ups then deadlocked (PostgreSQL aborts one of each
 *     cycle after deadlock_timeout: 503s, and buckets held for a second).
 *  2. Before any bucket, the top-up takes a transaction-scoped advisory lock
 *     of its organization (the gate): top-ups of one organization queue on
 *     it, one at a time, and the lock says "a top-up is under way" to ...
 *  3. ... registrations, which debit a free bucket without waiting (SKIP
 *     LOCKED, store/registrations.c). While a top-up holds them all they find
 *     none free, and used to count that as saturation: 503 after 2 s of a
 *     burst of top-ups. Their refusal read now waits for the gate (taken
 *     shared and released in the same statement), holding no bucket, before
 *     they try again. No cycle is possible: a waiting
 *     registration holds no bucket, and a top-up waits only for buckets.
 *
 * Design note 4 (changing the number of buckets on a live database, issue 17)
 *  A registration debits any bucket of its organization, whatever its slot,
 *  so the number only decides where credits are put. An organization
 *  created gets n rows. A top-up locks every row the organization has, then
 *  upserts slots 0 .. n - 1: a slot it lacks (n was raised) is inserted
 *  with its share, and rows of slots >= n (n was lowered) keep their credits,
 *  receive nothing more and are drained by registrations. No credit is ever
 *  moved or lost, replicas may disagree on n during a rolling change, and
 *  the balance stays the sum of all the rows. n is at most 16 (schema/0004's
 *  CHECK on slot) and at least 8 (an opening balance of CREDITS_MAX must
 *  fit in n rows of at most BUCKET_CREDITS_MAX each).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "store/handle.h"
#include "store/pg.h"
#include "store/rows.h"
#include "store/store.h"

/* Written once at start, before any worker thread runs; then only read. */
static int buckets = CREDIT_BUCKETS_DEFAULT;

void credits_configure(int credit_buckets)
{
    buckets = credit_buckets >= CREDIT_BUCKETS_MIN && credit_buckets <= CREDIT_BUCKETS_MAX
                  ? credit_buckets
                  : CREDIT_BUCKETS_DEFAULT;
}

static const struct pg_stmt stmt_create = {
    "organizations_create",
    "WITH org AS ("
    "  INSERT INTO organizations (id, name) VALUES ($1, $2)"
    "  ON CONFLICT (id) DO NOTHING"
    "  RETURNING id, name, $3::integer AS credits, created_at"
    "), buckets AS ("
    "  INSERT INTO credit_buckets (organization_id, slot, credits)"
    "  SELECT id, s, credits / $6::integer + (s < credits % $6::integer)::integer"
    "    FROM org, generate_series(0, $6::integer - 1) AS s"
    "), opening AS ("
    "  INSERT INTO credit_ledger (organization_id, kind, delta)"
    "  SELECT id, 'opening_balance', credits FROM org WHERE credits > 0"
    "), first_key AS ("
    "  INSERT INTO api_keys (id, organization_id, secret_sha256)"
    "  SELECT $4, id, sha256(convert_to($5, 'UTF8')) FROM org"
    ")"
    "SELECT " ORGANIZATION_COLUMNS("", "credits") " FROM org",
    6};

static const struct pg_stmt stmt_get = {
    "organizations_get",
    "SELECT " ORGANIZATION_COLUMNS("o.", "b.balance")
    "  FROM organizations o JOIN organization_balances b ON b.organization_id = o.id"
    " WHERE o.id = $1",
    1};

static const struct pg_stmt stmt_balance = {
    "credits_balance", "SELECT balance FROM organization_balances WHERE organization_id = $1", 1};

/* Design notes 1, 2 and 4; $4 is the number of buckets. Locking every row
 * (FOR UPDATE returns each one's latest version) makes the new values add up
 * to the exact balance at this moment. */
static const struct pg_stmt stmt_top_up = {
    "credits_top_up",
    "WITH gate AS MATERIALIZED ("
    "  SELECT pg_advisory_xact_lock(" SQL_TOP_UP_GATE("$1") ")"
    "), locked AS MATERIALIZED ("
    "  SELECT b.slot, b.credits FROM credit_buckets b, gate"
    "   WHERE b.organization_id = $1 ORDER BY b.slot FOR UPDATE OF b"
    "), added AS ("
    "  INSERT INTO credit_buckets AS c (organization_id, slot, credits)"
    "  SELECT $1, s, $2::integer / $4::integer + (s < $2::integer % $4::integer)::integer"
    "    FROM generate_series(0, $4::integer - 1) AS s WHERE EXISTS (SELECT 1 FROM locked)"
    "  ON CONFLICT (organization_id, slot) DO UPDATE SET credits = c.credits + excluded.credits"
    "  RETURNING c.credits"
    "), entry AS ("
    "  INSERT INTO credit_ledger (organization_id, kind, delta, reason)"
    "  SELECT $1, 'top_up', $2::integer, NULLIF($3, '') WHERE EXISTS (SELECT 1 FROM added)"
    ")"
    "SELECT (SELECT sum(credits) FROM added)"
    "     + (SELECT coalesce(sum(credits), 0) FROM locked WHERE slot >= $4::integer)"
    " WHERE EXISTS (SELECT 1 FROM added)",
    4};

enum et_err organizations_create(struct store *st, struct organization *org, struct api_key *key,
                                 struct problem *p)
{
    struct pg *db = store_pg(st, p);
    char credits[24], count[8];
    const char *params[] = {org->id, org->name, credits, key->id, key->secret, count};
    PGresult *res;

    if (db == NULL)
        return p->err;
    if (org->id[0] == '\0')
        id_generate(org->id, "org");
    id_generate(key->id, "key");
    secret_generate(key->secret);
    snprintf(key->organization_id, sizeof key->organization_id, "%s", org->id);
    snprintf(credits, sizeof credits, "%lld", org->credits);
    snprintf(count, sizeof count, "%d", buckets);
    if ((res = pg_exec(db, &stmt_create, params, p)) == NULL)
        return p->err;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return problem_set(p, ET_ERR_CONFLICT, PT_ALREADY_EXISTS,
                           "organization %s already exists", org->id);
    }
    row_copy(res, 0, &organization_row, org);
    PQclear(res);
    return ET_OK;
}

enum et_err organizations_get(struct store *st, const char *id, struct organization *out,
                              struct problem *p)
{
    const char *params[] = {id};

    return row_get(st, &stmt_get, params, "organization", id, &organization_row, out, p);
}

enum et_err credits_balance(struct store *st, const char *organization_id, long long *balance,
                            struct problem *p)
{
    const char *params[] = {organization_id};

    return row_get(st, &stmt_balance, params, "organization", organization_id, &integer_row,
                   balance, p);
}

enum et_err credits_top_up(struct store *st, const char *organization_id, const struct top_up *t,
                           long long *balance, struct problem *p)
{
    struct pg *db = store_pg(st, p);
    char amount[24], count[8];
    const char *params[] = {organization_id, amount, t->reason, count};
    PGresult *res;

    if (db == NULL)
        return p->err;
    snprintf(amount, sizeof amount, "%lld", t->amount);
    snprintf(count, sizeof count, "%d", buckets);
    if ((res = pg_exec_row(db, &stmt_top_up, params, "organization", organization_id, p)) == NULL) {
        if (strcmp(pg_constraint(db), "credit_buckets_credits_range") == 0) {
            problem_clear(p);
            problem_field(p, "amount", "would raise the balance above %lld",
                          buckets * BUCKET_CREDITS_MAX);
            return problem_set(p, ET_ERR_INVALID, NULL, "the top-up is too large");
        }
        return p->err;
    }
    *balance = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return ET_OK;
}
