/*
 * routes/events.c - events (conferences) and their sessions.
 */
#include <stdio.h>

#include "app.h"
#include "json/codec.h"
#include "routes/routes.h"
#include "store/store.h"

void api_events_create(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct event ev;

    if (decode_event_new(req->body, req->body_len, &ev, &p) != ET_OK ||
        !tenant_owns(req, ev.organization_id, "organization_id", &p) ||
        events_create(req->store, &ev, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_event(respond_json(res, 201), &ev);
    snprintf(res->location, sizeof res->location, "/v1/events/%s", ev.id);
}

void api_events_get(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct event ev;

    if (events_get(req->store, req_param(req, "event_id"), req_tenant(req), &ev, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_event(respond_json(res, 200), &ev);
}

void api_sessions_create(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct session s;

    if (decode_session_new(req->body, req->body_len, &s, &p) != ET_OK ||
        sessions_create(req->store, &s, req_tenant(req), &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_session(respond_json(res, 201), &s);
    snprintf(res->location, sizeof res->location, "/v1/sessions/%s", s.id);
}

void api_sessions_get(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct session s;

    if (sessions_get(req->store, req_param(req, "session_id"), req_tenant(req), &s, &p) != ET_OK) {
        respond_problem(res, &p);
        return;
    }
    encode_session(respond_json(res, 200), &s);
}
