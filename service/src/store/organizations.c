/*
 * store/organizations.c - organizations and their credit balance.
 *
 * The balance lives in organizations.credits under CHECK (credits >= 0), and
 * every change to it is written in the same statement as its credit_ledger
 * row (opening balance, top-up, registration), so the ledger always explains
 * the balance: credits = sum(delta). Each verb is one statement, which
 * PostgreSQL runs as one transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"
#include "store/store.h"

static const struct pg_stmt stmt_create = {
    "organizations_create",
    "WITH org AS ("
    "  INSERT INTO organizations (id, name, credits) VALUES ($1, $2, $3::integer)"
    "  ON CONFLICT (id) DO NOTHING"
    "  RETURNING id, name, credits, created_at"
    "), opening AS ("
    "  INSERT INTO credit_ledger (organization_id, kind, delta)"
    "  SELECT id, 'opening_balance', credits FROM org WHERE credits > 0"
    "), first_key AS ("
    "  INSERT INTO api_keys (id, organization_id, secret_sha256)"
    "  SELECT $4, id, sha256(convert_to($5, 'UTF8')) FROM org"
    ")"
    "SELECT id, name, credits, " SQL_RFC3339("created_at") " FROM org",
    5};

static const struct pg_stmt stmt_get = {
    "organizations_get",
    "SELECT id, name, credits, " SQL_RFC3339("created_at") " FROM organizations WHERE id = $1",
    1};

static const struct pg_stmt stmt_balance = {
    "credits_balance", "SELECT credits FROM organizations WHERE id = $1", 1};

static const struct pg_stmt stmt_top_up = {
    "credits_top_up",
    "WITH org AS ("
    "  UPDATE organizations SET credits = credits + $2::integer WHERE id = $1"
    "  RETURNING id, credits"
    "), entry AS ("
    "  INSERT INTO credit_ledger (organization_id, kind, delta, reason)"
    "  SELECT id, 'top_up', $2::integer, NULLIF($3, '') FROM org"
    ")"
    "SELECT credits FROM org",
    3};

static void organization_from_row(const PGresult *res, struct organization *o)
{
    snprintf(o->id, sizeof o->id, "%s", PQgetvalue(res, 0, 0));
    snprintf(o->name, sizeof o->name, "%s", PQgetvalue(res, 0, 1));
    o->credits = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    snprintf(o->created_at, sizeof o->created_at, "%s", PQgetvalue(res, 0, 3));
}

enum et_err organizations_create(struct pg *db, struct organization *org, struct api_key *key,
                                 struct problem *p)
{
    char credits[24];
    const char *params[] = {org->id, org->name, credits, key->id, key->secret};
    PGresult *res;

    if (org->id[0] == '\0')
        id_generate(org->id, "org");
    id_generate(key->id, "key");
    secret_generate(key->secret);
    snprintf(key->organization_id, sizeof key->organization_id, "%s", org->id);
    snprintf(credits, sizeof credits, "%lld", org->credits);
    if ((res = pg_exec(db, &stmt_create, params, p)) == NULL)
        return p->err;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return problem_set(p, ET_ERR_CONFLICT, "already-exists",
                           "organization %s already exists", org->id);
    }
    organization_from_row(res, org);
    PQclear(res);
    return ET_OK;
}

enum et_err organizations_get(struct pg *db, const char *id, struct organization *out,
                              struct problem *p)
{
    const char *params[] = {id};
    PGresult *res = pg_exec_row(db, &stmt_get, params, "organization", id, p);

    if (res == NULL)
        return p->err;
    organization_from_row(res, out);
    PQclear(res);
    return ET_OK;
}

enum et_err credits_balance(struct pg *db, const char *organization_id, long long *balance,
                            struct problem *p)
{
    const char *params[] = {organization_id};
    PGresult *res = pg_exec_row(db, &stmt_balance, params, "organization", organization_id, p);

    if (res == NULL)
        return p->err;
    *balance = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return ET_OK;
}

enum et_err credits_top_up(struct pg *db, const char *organization_id, const struct top_up *t,
                           long long *balance, struct problem *p)
{
    char amount[24];
    const char *params[] = {organization_id, amount, t->reason};
    PGresult *res;

    snprintf(amount, sizeof amount, "%lld", t->amount);
    if ((res = pg_exec(db, &stmt_top_up, params, p)) == NULL) {
        if (strcmp(pg_sqlstate(db), "22003") == 0) {       /* integer out of range */
            problem_clear(p);
            problem_field(p, "amount", "would raise the balance above 2147483647");
            return problem_set(p, ET_ERR_INVALID, NULL, "the top-up is too large");
        }
        return p->err;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return problem_set(p, ET_ERR_NOT_FOUND, NULL, "no organization %s", organization_id);
    }
    *balance = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return ET_OK;
}
