/*
 * routes/admission.c - who may make a request: authentication, access, rate.
 *
 * Runs in the dispatcher on the first callback of every non-public route,
 * before the body is read, so an unauthenticated client cannot make the
 * service buffer a megabyte. Order: a missing or malformed Authorization
 * header is 401; the admin key (compared in constant time, no store
 * touched) may do everything; any other token is looked up by its SHA-256
 * (401 when unknown or revoked); an organization key on an admin route is
 * 403; then the key's rate limit (429). What a key may see inside its
 * organization is decided by each handler through req_tenant().
 */
#include <string.h>

#include "app.h"
#include "http/router.h"
#include "routes/routes.h"
#include "store/store.h"

/* Constant-time comparison: the time taken does not reveal where a guess differs. */
static bool secret_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);

    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

bool tenant_owns(const struct request *req, const char *organization_id, const char *field,
                 struct problem *p)
{
    const char *tenant = req_tenant(req);

    if (tenant == NULL || strcmp(tenant, organization_id) == 0)
        return true;
    if (field == NULL) {
        problem_set(p, ET_ERR_NOT_FOUND, NULL, "no organization %s", organization_id);
    } else {
        problem_field(p, field, "no such organization");
        problem_set(p, ET_ERR_INVALID, NULL, "the request refers to an unknown organization");
    }
    return false;
}

enum et_err api_admit(struct request *req, const char *authorization, struct problem *p)
{
    const struct config *cfg = req->app->cfg;
    struct principal *who = &req->principal;
    char token[256];
    struct pg *db;

    memset(who, 0, sizeof *who);
    if (authorization == NULL)
        return problem_set(p, ET_ERR_UNAUTHORIZED, NULL,
                           "send an API key as Authorization: Bearer <key>");
    if (!bearer_token(authorization, token, sizeof token))
        return problem_set(p, ET_ERR_UNAUTHORIZED, "invalid-token",
                           "the Authorization header is not \"Bearer <key>\"");
    if (secret_equal(token, cfg->admin_key)) {
        who->admin = true;
        strcpy(who->key_id, "admin");
        return ET_OK;
    }
    if ((db = pg_session(req->app->pg, p)) == NULL ||
        keys_authenticate(db, token, who->organization_id, who->key_id, p) != ET_OK)
        return p->err;
    if (req->route->access == ACCESS_ADMIN)
        return problem_set(p, ET_ERR_FORBIDDEN, NULL, "this operation needs the admin key");
    return ratelimit_hit(req->app->redis, who->key_id, cfg->rate_limit_requests,
                         cfg->rate_limit_window_seconds, p);
}
