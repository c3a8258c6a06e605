/*
 * routes/cancel.c - DELETE /v1/registrations/{id}: cancel and refund.
 *
 * The refund rule lives in store/cancel.c; this handler only applies the
 * Idempotency-Key protocol (scoped to DELETE and the full path, ADR 0010)
 * and encodes. The answer is 200 with the cancelled registration rather
 * than 204, because the caller wants the balance the refund left.
 */
#include "app.h"
#include "json/codec.h"
#include "routes/routes.h"
#include "store/store.h"

struct cancel_call {
    const char *id;
    const char *tenant;
};

/* One statement: under an Idempotency-Key it runs inside the key's
 * transaction, without one it commits by itself; txn changes nothing. */
static void cancel_op(struct store *st, struct store_txn *txn, void *arg,
                      struct response *res)
{
    const struct cancel_call *call = arg;
    struct registration r = {0};
    struct problem p = {0};

    (void)txn;
    if (registrations_cancel(st, call->id, call->tenant, &r, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_registration(respond_json(res, 200), &r);
}

void api_registrations_cancel(struct request *req, struct response *res)
{
    struct cancel_call call = {req_param(req, "registration_id"), req_tenant(req)};

    idempotent_run(req, res, cancel_op, &call);
}
