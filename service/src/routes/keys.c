/*
 * routes/keys.c - issuing and revoking an organization's API keys.
 *
 * An organization key may manage the keys of its own organization (to
 * rotate itself); the admin key may manage anyone's.
 */
#include "app.h"
#include "routes/routes.h"
#include "store/store.h"

void api_keys_create(struct request *req, struct response *res)
{
    struct problem p = {0};
    const char *org_id = req_param(req, "org_id");
    struct api_key key;
    struct jw *w;

    if (!tenant_owns(req, org_id, NULL, &p) || keys_create(req->store, org_id, &key, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    w = respond_json(res, 201);
    jw_object_begin(w);
    jw_key(w, "key_id");  jw_string(w, key.id);
    jw_key(w, "api_key"); jw_string(w, key.secret);
    jw_object_end(w);
}

void api_keys_revoke(struct request *req, struct response *res)
{
    struct problem p = {0};
    const char *org_id = req_param(req, "org_id");

    if (!tenant_owns(req, org_id, NULL, &p) ||
        keys_revoke(req->store, org_id, req_param(req, "key_id"), &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    res->status = 204;
}
