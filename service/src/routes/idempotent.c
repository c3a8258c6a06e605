/*
 * routes/idempotent.c - the Idempotency-Key protocol around a write.
 *
 * A retry with the same key and body gets the first response again, with no
 * second effect; the same key with another body is refused (422); a retry
 * that overlaps the first gets 409. The transaction rules that make this
 * exact live in store/idempotency.c; this file decides what is replayed:
 * every outcome the service decided (2xx and 4xx), never a 5xx, so a retry
 * after an outage runs the operation for real.
 *
 * A key's scope (docs/adr/0010) is the caller and the exact operation:
 *   "org:<organization id>" or "admin", the method, the decoded full path.
 * The caller is the organization, not the bearer key, as the contract says:
 * two keys of one organization (a key rotation mid-retry) share one key
 * space. The path names the resource, so one key sent to two organizations'
 * top-ups is two top-ups, never a replay of the first one's answer. The
 * method is in the scope already for the DELETE routes to come.
 */
#include <stdio.h>

#include "app.h"
#include "json/canonical.h"
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

static const char *method_name(enum http_method m)
{
    switch (m) {
    case HTTP_GET: return "GET";
    case HTTP_HEAD: return "HEAD";
    case HTTP_POST: return "POST";
    case HTTP_PUT: return "PUT";
    case HTTP_PATCH: return "PATCH";
    case HTTP_DELETE: return "DELETE";
    case HTTP_OPTIONS: return "OPTIONS";
    default: return "OTHER";
    }
}

/* The whole protocol once the request's identity is known. */
static void run_keyed(struct response *res, struct store *st, const struct idempotency_request *rq,
                      idempotent_op op, void *arg)
{
    struct problem p = {0};
    struct store_txn txn;
    bool replay;
    int status;

    if (idempotency_begin(st, rq, &txn, &replay, &status, &res->body, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    if (replay) {
        res->status = status;
        res->content_type = status >= 400 ? "application/problem+json" : "application/json";
        return;
    }
    op(st, &txn, arg, res);
    /* A 5xx is never recorded; a write saved in a group was recorded with
     * it, and this transaction only held the key until then. */
    if (res->status >= 500 || txn.recorded) {
        idempotency_abort(st, &txn);
        return;
    }
    if (idempotency_finish(st, &txn, rq, res->status, res->body.data ? res->body.data : "", &p) !=
        ET_OK)
        respond_problem(res, &p);
}

void idempotent_run(struct request *req, struct response *res, idempotent_op op, void *arg)
{
    const struct principal *who = &req->principal;
    struct problem p = {0};
    struct buf canonical = BUF_INIT;
    char scope[1400], legacy[ID_MAX + 16];
    struct idempotency_request rq = {scope, legacy, req->idempotency_key, ""};

    if (req->idempotency_key == NULL) {
        op(req->store, NULL, arg, res);
        return;
    }
    if (!key_valid(req->idempotency_key)) {
        respond_error(res, ET_ERR_BAD_HEADER, NULL,
                      "Idempotency-Key must be 1 to %d visible ASCII characters",
                      IDEMPOTENCY_KEY_MAX);
        return;
    }
    if (req->body_len > 0 && json_canonical(req->body, req->body_len, &canonical, &p) != ET_OK) {
        respond_problem(res, &p);
        goto done;
    }
    if (canonical.data)
        rq.request = canonical.data;
    snprintf(scope, sizeof scope, "%s%s %s %s", who->admin ? "admin" : "org:",
             who->admin ? "" : who->organization_id, method_name(req->method), req->path);
    /* What an older binary wrote for every route (ADR 0010): never replayed. */
    snprintf(legacy, sizeof legacy, "%s POST /v1", who->key_id[0] ? who->key_id : "-");
    run_keyed(res, req->store, &rq, op, arg);
done:
    buf_free(&canonical);
}
