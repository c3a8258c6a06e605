/*
 * store/keys.c - organization API keys.
 *
 * A key is a 256-bit random secret ("etk_" + 64 hex digits) shown once and
 * stored as its SHA-256, computed by PostgreSQL from the parameter, so the
 * service never keeps a secret anywhere but in the response that hands it
 * out. Looking a key up is one indexed equality on the hash.
 *
 * The negative cache. A token PostgreSQL did not know is remembered for up
 * to negative_cache_seconds, so a client repeating it (a misconfigured
 * poller, a revoked key still in use, an attacker) costs one lookup per
 * period instead of one per request. Only "no such key" is remembered,
 * never a positive answer: a cache can then only refuse more, so it can
 * never hide a revocation, which takes effect on the next request on every
 * connection. Nor can it refuse a valid key: secrets are 256 random bits
 * the server generates, so no one can look one up before it exists (a
 * revoked key is unknown for good). The table is bounded (counters.h):
 * random tokens replace each other instead of growing it; per-address
 * limits (routes/admission.c) bound how many of them reach PostgreSQL.
 */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "counters.h"
#include "store/handle.h"
#include "store/pg.h"
#include "store/store.h"

static struct counters unknown_keys = COUNTERS_INIT;

static const struct pg_stmt stmt_authenticate = {
    "keys_authenticate",
    "SELECT id, organization_id FROM api_keys"
    " WHERE secret_sha256 = sha256(convert_to($1, 'UTF8')) AND revoked_at IS NULL",
    1};

static const struct pg_stmt stmt_create = {
    "keys_create",
    "INSERT INTO api_keys (id, organization_id, secret_sha256)"
    " SELECT $1, id, sha256(convert_to($3, 'UTF8')) FROM organizations WHERE id = $2"
    " RETURNING id",
    3};

static const struct pg_stmt stmt_revoke = {
    "keys_revoke",
    "UPDATE api_keys SET revoked_at = now()"
    " WHERE id = $1 AND organization_id = $2 AND revoked_at IS NULL",
    2};

/* The negative cache's current window: an entry lives at most `seconds`. */
static uint64_t negative_window(long long seconds)
{
    return monotonic_ns() / ((uint64_t)seconds * 1000000000u);
}

static enum et_err unknown_key(struct problem *p)
{
    return problem_set(p, ET_ERR_UNAUTHORIZED, PT_INVALID_TOKEN, "the bearer key is unknown or revoked");
}

enum et_err keys_recently_unknown(const char *secret, long long negative_cache_seconds,
                                  struct problem *p)
{
    if (negative_cache_seconds <= 0 ||
        counters_get(&unknown_keys, counters_key("unknown-key", secret, strlen(secret)),
                     negative_window(negative_cache_seconds)) == 0)
        return ET_OK;
    return unknown_key(p);
}

enum et_err keys_authenticate(struct store *st, const char *secret, long long negative_cache_seconds,
                              char *organization_id, char *key_id, struct problem *p)
{
    struct pg *db = store_pg(st, p);
    const char *params[] = {secret};
    PGresult *res = db ? pg_exec(db, &stmt_authenticate, params, p) : NULL;

    if (res == NULL)
        return p->err;
    if (PQntuples(res) == 0) {
        PQclear(res);
        if (negative_cache_seconds > 0)
            counters_add(&unknown_keys, counters_key("unknown-key", secret, strlen(secret)),
                         negative_window(negative_cache_seconds), 1);
        return unknown_key(p);
    }
    snprintf(key_id, ID_MAX + 1, "%s", PQgetvalue(res, 0, 0));
    snprintf(organization_id, ID_MAX + 1, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    return ET_OK;
}

enum et_err keys_create(struct store *st, const char *organization_id, struct api_key *key,
                        struct problem *p)
{
    struct pg *db = store_pg(st, p);
    const char *params[] = {key->id, organization_id, key->secret};
    PGresult *res;

    if (db == NULL)
        return p->err;
    id_generate(key->id, "key");
    secret_generate(key->secret);
    snprintf(key->organization_id, sizeof key->organization_id, "%s", organization_id);
    if ((res = pg_exec_row(db, &stmt_create, params, "organization", organization_id, p)) == NULL)
        return p->err;
    PQclear(res);
    return ET_OK;
}

enum et_err keys_revoke(struct store *st, const char *organization_id, const char *key_id,
                        struct problem *p)
{
    struct pg *db = store_pg(st, p);
    const char *params[] = {key_id, organization_id};
    PGresult *res = db ? pg_exec(db, &stmt_revoke, params, p) : NULL;
    bool revoked;

    if (res == NULL)
        return p->err;
    revoked = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    if (!revoked)
        return problem_set(p, ET_ERR_NOT_FOUND, NULL, "no active key %s in organization %s",
                           key_id, organization_id);
    return ET_OK;
}
