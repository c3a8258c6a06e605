/*
 * routes/organizations.c - organizations, their balance and top-ups.
 */
#include <stdio.h>

#include "app.h"
#include "json/codec.h"
#include "routes/routes.h"
#include "store/store.h"

void api_organizations_create(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct organization org;
    struct api_key key;

    if (decode_organization_new(req->body, req->body_len, &org, &p) != ET_OK ||
        organizations_create(req->store, &org, &key, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_organization(respond_json(res, 201), &org, key.secret);
    snprintf(res->location, sizeof res->location, "/v1/organizations/%s", org.id);
}

void api_organizations_get(struct request *req, struct response *res)
{
    struct problem p = {0};
    const char *org_id = req_param(req, "org_id");
    struct organization org;

    if (!tenant_owns(req, org_id, NULL, &p) ||
        organizations_get(req->store, org_id, &org, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_organization(respond_json(res, 200), &org, NULL);
}

void api_credits_get(struct request *req, struct response *res)
{
    struct problem p = {0};
    const char *org_id = req_param(req, "org_id");
    long long balance;

    if (!tenant_owns(req, org_id, NULL, &p) ||
        credits_balance(req->store, org_id, &balance, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_balance(respond_json(res, 200), org_id, balance);
}

struct top_up_call {
    const char *organization_id;
    const struct top_up *top_up;
};

static void top_up_op(struct store *st, struct store_txn *txn, void *arg,
                      struct response *res)
{
    const struct top_up_call *call = arg;
    struct problem p = {0};
    long long balance;

    (void)txn;                     /* one statement: it runs inside the caller's transaction, if any */
    if (credits_top_up(st, call->organization_id, call->top_up, &balance, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_balance(respond_json(res, 200), call->organization_id, balance);
}

void api_credits_top_up(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct top_up t;
    struct top_up_call call = {req_param(req, "org_id"), &t};

    if (decode_top_up(req->body, req->body_len, &t, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    idempotent_run(req, res, top_up_op, &call);
}
