/*
 * routes/admission.c - who may make a request: authentication, access, rate,
 * and the ingest quota.
 *
 * Runs in the dispatcher on the first callback of every non-public route,
 * before the body is read, so an unauthenticated client cannot make the
 * service buffer a megabyte. Order, cheapest first:
 *   1. a missing or malformed Authorization header is 401 (nothing counted:
 *      it cost nothing);
 *   2. the admin key (compared in constant time, no store touched) may do
 *      everything, whatever its address did before;
 *   3. a client address with more than auth_failure_limit failed
 *      authentications in its window gets 429 (too-many-failed-
 *      authentications) without a lookup: random tokens cannot make
 *      PostgreSQL work for them faster than that;
 *   4. a token found unknown in the last negative_cache_seconds is 401
 *      without a lookup (store/keys.c); otherwise it is looked up by its
 *      SHA-256 (401 when unknown or revoked). Every 401 of a token counts
 *      as a failure of the address;
 *   5. an organization key on an admin route is 403;
 *   6. the organization's rate limit (429), shared by all its keys.
 * A valid organization key sent from an address over the failure limit is
 * refused with the rest until the window ends: telling it apart would take
 * the very lookup the limit saves. What a key may see inside its
 * organization is decided by each handler through req_tenant().
 *
 * Addresses are counted whole for IPv4 and by their /64 for IPv6 (what one
 * subscriber is given), in a bounded table (counters.h).
 */
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "app.h"
#include "clock.h"
#include "counters.h"
#include "http/router.h"
#include "routes/routes.h"
#include "store/store.h"

static struct counters auth_failures = COUNTERS_INIT;

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

/* The client as the failure counter knows it: IPv4 whole (also when mapped
 * into IPv6), IPv6 by its /64; anything else (no address) is one client. */
static struct counter_key address_key(const struct sockaddr *sa)
{
    unsigned char a[16];

    if (sa != NULL && sa->sa_family == AF_INET) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof in);
        memcpy(a, &in.sin_addr, 4);
        return counters_key("auth-failures", a, 4);
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof in6);
        memcpy(a, &in6.sin6_addr, 16);
        if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr))
            return counters_key("auth-failures", a + 12, 4);
        return counters_key("auth-failures", a, 8);
    }
    return counters_key("auth-failures", "", 0);
}

/* Step 3: 429 when the address is over its failure limit. `*window` is set for step 4. */
static enum et_err failures_check(const struct request *req, uint64_t *window, struct problem *p)
{
    const struct config *cfg = req->app->cfg;
    uint64_t window_ns = (uint64_t)cfg->auth_failure_window_seconds * 1000000000u, now = monotonic_ns();
    long long failed;

    *window = now / window_ns;
    if (cfg->auth_failure_limit <= 0)
        return ET_OK;
    failed = counters_get(&auth_failures, address_key(req->client_addr), *window);
    if (failed < cfg->auth_failure_limit)
        return ET_OK;
    p->retry_after = (int)((window_ns - now % window_ns + 999999999u) / 1000000000u);
    return problem_set(p, ET_ERR_RATE_LIMITED, PT_TOO_MANY_FAILED_AUTHENTICATIONS,
                       "%lld requests from this address had unknown or revoked keys in %lld s;"
                       " retry in %d s with a valid key",
                       failed, cfg->auth_failure_window_seconds, p->retry_after);
}

/* Step 4: the token's organization and key, from the negative cache or PostgreSQL. */
static enum et_err authenticate(struct request *req, const char *token, uint64_t window,
                                struct problem *p)
{
    const struct config *cfg = req->app->cfg;
    struct principal *who = &req->principal;
    enum et_err err = keys_recently_unknown(token, cfg->negative_cache_seconds, p);

    if (err == ET_OK) {
        err = keys_authenticate(req->store, token, cfg->negative_cache_seconds, who->organization_id,
                                who->key_id, p);
    }
    if (err == ET_ERR_UNAUTHORIZED && cfg->auth_failure_limit > 0)
        counters_add(&auth_failures, address_key(req->client_addr), window, 1);
    return err;
}

enum et_err api_admit(struct request *req, const char *authorization, struct problem *p)
{
    const struct config *cfg = req->app->cfg;
    struct principal *who = &req->principal;
    char token[256];
    uint64_t window;

    memset(who, 0, sizeof *who);
    if (authorization == NULL)
        return problem_set(p, ET_ERR_UNAUTHORIZED, NULL,
                           "send an API key as Authorization: Bearer <key>");
    if (!bearer_token(authorization, token, sizeof token))
        return problem_set(p, ET_ERR_UNAUTHORIZED, PT_INVALID_TOKEN,
                           "the Authorization header is not \"Bearer <key>\"");
    if (secret_equal(token, cfg->admin_key)) {
        who->admin = true;
        strcpy(who->key_id, "admin");
        return ET_OK;
    }
    if (failures_check(req, &window, p) != ET_OK || authenticate(req, token, window, p) != ET_OK)
        return p->err;
    if (req->route->access == ACCESS_ADMIN)
        return problem_set(p, ET_ERR_FORBIDDEN, NULL, "this operation needs the admin key");
    return ratelimit_hit(req->store, who->organization_id, cfg->rate_limit_requests,
                         cfg->rate_limit_window_seconds, p);
}

enum et_err ingest_quota_take(struct request *req, const struct analytics_event *events,
                              size_t count, struct quota_ticket *t, struct problem *p)
{
    const char *tenant = req_tenant(req);
    long long n = 0;

    memset(t, 0, sizeof *t);
    if (tenant == NULL)
        return ET_OK;                      /* the operator's key is not a tenant */
    for (size_t i = 0; i < count; i++)
        n += events[i].status != INGEST_REJECTED;
    return quota_take(req->store, tenant, n, req->app->cfg->ingest_quota_per_day, t, p);
}

void ingest_quota_settle(struct request *req, const struct quota_ticket *t,
                         const struct analytics_event *events, size_t count, bool logged)
{
    long long kept = 0;

    for (size_t i = 0; logged && i < count; i++)
        kept += events[i].status == INGEST_CREATED;
    quota_give_back(req->store, t, t->taken - kept);
}
