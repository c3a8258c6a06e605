/*
 * routes/registrations.c - registering attendees, constraint A.
 *
 * The credit rule itself lives in store/registrations.c; this handler only
 * validates, applies the Idempotency-Key protocol and encodes.
 */
#include <stdio.h>

#include "app.h"
#include "json/codec.h"
#include "routes/routes.h"
#include "store/store.h"

struct register_call {
    struct registration registration;
    const char *tenant;
};

static void register_op(struct store *st, struct store_txn *txn, void *arg,
                        struct response *res)
{
    struct register_call *call = arg;
    struct registration *r = &call->registration;
    struct problem p = {0};

    if (registrations_create(st, txn, r, call->tenant, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_registration(respond_json(res, 201), r);
    snprintf(res->location, sizeof res->location, "/v1/registrations/%s", r->id);
}

void api_registrations_create(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct register_call call = {.tenant = req_tenant(req)};

    if (decode_registration_new(req->body, req->body_len, &call.registration, &p) != ET_OK ||
        !tenant_owns(req, call.registration.organization_id, "organization_id", &p)) {
        respond_problem(res, &p);
        return;
    }
    idempotent_run(req, res, register_op, &call);
}

void api_registrations_get(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct registration r;

    if (registrations_get(req->store, req_param(req, "registration_id"), req_tenant(req), &r,
                          &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_registration(respond_json(res, 200), &r);
}
