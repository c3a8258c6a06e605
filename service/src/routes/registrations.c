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

static void register_op(struct pg *db, void *arg, struct response *res)
{
    struct registration *r = arg;
    struct problem p = {0};

    if (registrations_create(db, r, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_registration(respond_json(res, 201), r);
    snprintf(res->location, sizeof res->location, "/v1/registrations/%s", r->id);
}

void api_registrations_create(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct registration r;
    struct pg *db;

    if (decode_registration_new(req->body, req->body_len, &r, &p) != ET_OK ||
        !tenant_owns(req, r.organization_id, "organization_id", &p) ||
        (db = pg_session(req->app->pg, &p)) == NULL) {
        respond_problem(res, &p);
        return;
    }
    idempotent_run(req, res, db, register_op, &r);
}

void api_registrations_get(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct registration r;
    struct pg *db;

    if ((db = pg_session(req->app->pg, &p)) == NULL ||
        registrations_get(db, req_param(req, "registration_id"), req_tenant(req), &r, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_registration(respond_json(res, 200), &r);
}
