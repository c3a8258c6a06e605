/*
 * routes/idempotent.c - the Idempotency-Key protocol around a write.
 *
 * A retry with the same key and body gets the first response again, with no
 * second effect; the same key with another body is refused (422); a retry
 * that overlaps the first gets 409. The transaction rules that make this
 * exact live in store/idempotency.c; this file decides what is replayed:
 * every outcome the service decided (2xx and 4xx), never a 5xx, so a retry
 * after an outage runs the operation for real.
 */
#include <stdio.h>

#include "app.h"
#include "routes/routes.h"
#include "store/store.h"

#define IDEMPOTENCY_KEY_MAX 255

static bool key_valid(const char *key)
{
    size_t n = 0;

    for (; key[n]; n++)
        if (key[n] < 0x21 || key[n] > 0x7e)
            return false;
    return n > 0 && n <= IDEMPOTENCY_KEY_MAX;
}

void idempotent_run(struct request *req, struct response *res, struct pg *db,
                    idempotent_op op, void *arg)
{
    struct problem p = {0};
    char scope[320];
    bool replay;
    int status;

    if (req->idempotency_key == NULL) {
        op(db, arg, res);
        return;
    }
    if (!key_valid(req->idempotency_key)) {
        respond_error(res, ET_ERR_BAD_HEADER, NULL,
                      "Idempotency-Key must be 1 to %d visible ASCII characters",
                      IDEMPOTENCY_KEY_MAX);
        return;
    }
    /* A key belongs to its caller and to the operation and resource it acts
     * on: two tenants choosing the same key never see each other's answers. */
    snprintf(scope, sizeof scope, "%s POST %s", req->principal.key_id[0] ? req->principal.key_id : "-",
             req->path);
    if (idempotency_begin(db, scope, req->idempotency_key, req->body, req->body_len, &replay,
                          &status, &res->body, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    if (replay) {
        res->status = status;
        res->content_type = status >= 400 ? "application/problem+json" : "application/json";
        return;
    }
    op(db, arg, res);
    if (res->status >= 500) {
        idempotency_abort(db);
        return;
    }
    if (idempotency_finish(db, scope, req->idempotency_key, req->body, req->body_len,
                           res->status, res->body.data ? res->body.data : "", &p) != ET_OK)
        respond_problem(res, &p);
}
