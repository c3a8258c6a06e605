/*
 * routes/analytics.c - analytics ingest: one envelope or a batch of up to 1000.
 *
 * A single envelope answers like a resource (201 new, 200 duplicate, 409
 * conflict, 422 invalid). A batch always answers 200 with one result per
 * envelope, in request order: a bad envelope rejects only itself.
 * An organization's envelopes first pass its daily ingest quota (taken
 * before the insert, the unlogged ones given back after it: store/quota.c).
 */
#include <stdio.h>

#include "app.h"
#include "json/codec.h"
#include "routes/routes.h"
#include "store/store.h"

static const char *rejection_slug(enum et_err err)
{
    return err == ET_ERR_CONFLICT ? PT_EVENT_ID_CONFLICT : problem_type_of(err, NULL)->slug;
}

static void respond_single(struct response *res, const struct analytics_event *ev)
{
    struct jw *w;

    if (ev->status == INGEST_REJECTED) {
        respond_error(res, ev->error, rejection_slug(ev->error), "%s", ev->error_detail);
        return;
    }
    w = respond_json(res, ev->status == INGEST_CREATED ? 201 : 200);
    jw_object_begin(w);
    jw_key(w, "event_id");  jw_string(w, ev->event_id);
    jw_key(w, "duplicate"); jw_bool(w, ev->status == INGEST_DUPLICATE);
    jw_object_end(w);
}

static void respond_batch(struct response *res, const struct analytics_event *evs, size_t n)
{
    static const char *const status_names[] = {
        [INGEST_CREATED] = "created", [INGEST_DUPLICATE] = "duplicate",
        [INGEST_REJECTED] = "rejected"};
    long long counts[3] = {0};
    struct jw *w;

    for (size_t i = 0; i < n; i++)
        counts[evs[i].status]++;
    w = respond_json(res, 200);
    jw_object_begin(w);
    jw_key(w, "accepted");   jw_int(w, counts[INGEST_CREATED]);
    jw_key(w, "duplicates"); jw_int(w, counts[INGEST_DUPLICATE]);
    jw_key(w, "rejected");   jw_int(w, counts[INGEST_REJECTED]);
    jw_key(w, "results");
    jw_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        const struct analytics_event *ev = &evs[i];
        jw_object_begin(w);
        if (ev->event_id[0]) {
            jw_key(w, "event_id");
            jw_string(w, ev->event_id);
        }
        jw_key(w, "status");
        jw_string(w, status_names[ev->status]);
        if (ev->status == INGEST_REJECTED) {
            char type[64];
            snprintf(type, sizeof type, "/problems/%s", rejection_slug(ev->error));
            jw_key(w, "error");
            jw_object_begin(w);
            jw_key(w, "type");   jw_string(w, type);
            jw_key(w, "status"); jw_int(w, http_status_of(ev->error));
            jw_key(w, "detail"); jw_string(w, ev->error_detail);
            jw_object_end(w);
        }
        jw_object_end(w);
    }
    jw_array_end(w);
    jw_object_end(w);
}

void api_analytics_ingest(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct analytics_event *events = NULL;
    size_t count = 0;
    bool is_batch = false, logged = false;
    struct quota_ticket quota = {0};

    if (decode_analytics(req->body, req->body_len, &events, &count, &is_batch, &p) != ET_OK ||
        ingest_quota_take(req, events, count, &quota, &p) != ET_OK) {
        respond_problem(res, &p);
        goto done;
    }
    logged = true;       /* from here, what the insert logs is marked INGEST_CREATED */
    if (analytics_ingest(req->store, req_tenant(req), events, count, &p) != ET_OK) {
        respond_problem(res, &p);
        goto done;
    }
    if (is_batch)
        respond_batch(res, events, count);
    else
        respond_single(res, &events[0]);
done:
    ingest_quota_settle(req, &quota, events, count, logged);
    analytics_events_free(events, count);
}
