/*
 * json/codec.c - typed request decoders and resource encoders (see codec.h).
 *
 * Every decoder follows one shape: parse, check the set of keys (an unknown
 * key is an error, so a typo such as "credit" never passes silently), read
 * each field, and fail with all field errors together.
 */
#include "json/codec.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/read.h"

/* Parses body and checks that it is an object with only `allowed` keys. */
static enum et_err decode_begin(const char *body, size_t len, const char *const *allowed,
                                cJSON **root, struct problem *p)
{
    if (json_parse(body, len, root, p) != ET_OK)
        return p->err;
    jr_object(*root, allowed, p);
    return ET_OK;
}

/* Frees the tree; the decode succeeded iff no field error was recorded. */
static enum et_err decode_end(cJSON *root, struct problem *p)
{
    cJSON_Delete(root);
    if (p->nfields > 0)
        return problem_set(p, ET_ERR_INVALID, NULL, "the request body has invalid fields");
    return ET_OK;
}

enum et_err decode_organization_new(const char *body, size_t len, struct organization *out,
                                    struct problem *p)
{
    static const char *const allowed[] = {"id", "name", "credits", NULL};
    cJSON *root;

    memset(out, 0, sizeof *out);
    if (decode_begin(body, len, allowed, &root, p) != ET_OK)
        return p->err;
    jr_id(root, "id", false, out->id, p);
    jr_text(root, "name", true, json_limits()->name_max_chars, out->name, sizeof out->name, p);
    jr_int(root, "credits", false, 0, CREDITS_MAX, &out->credits, NULL, p);
    return decode_end(root, p);
}

enum et_err decode_top_up(const char *body, size_t len, struct top_up *out, struct problem *p)
{
    static const char *const allowed[] = {"amount", "reason", NULL};
    cJSON *root;

    memset(out, 0, sizeof *out);
    if (decode_begin(body, len, allowed, &root, p) != ET_OK)
        return p->err;
    jr_int(root, "amount", true, 1, CREDITS_MAX, &out->amount, NULL, p);
    jr_text(root, "reason", false, REASON_MAX_CHARS, out->reason, sizeof out->reason, p);
    return decode_end(root, p);
}

enum et_err decode_event_new(const char *body, size_t len, struct event *out, struct problem *p)
{
    static const char *const allowed[] = {"id", "organization_id", "name", "starts_at", NULL};
    cJSON *root;

    memset(out, 0, sizeof *out);
    if (decode_begin(body, len, allowed, &root, p) != ET_OK)
        return p->err;
    jr_id(root, "id", false, out->id, p);
    jr_id(root, "organization_id", true, out->organization_id, p);
    jr_text(root, "name", true, json_limits()->name_max_chars, out->name, sizeof out->name, p);
    jr_timestamp(root, "starts_at", out->starts_at, sizeof out->starts_at, p);
    return decode_end(root, p);
}

enum et_err decode_session_new(const char *body, size_t len, struct session *out,
                               struct problem *p)
{
    static const char *const allowed[] = {"id", "event_id", "title", "speaker_id", NULL};
    cJSON *root;

    memset(out, 0, sizeof *out);
    if (decode_begin(body, len, allowed, &root, p) != ET_OK)
        return p->err;
    jr_id(root, "id", false, out->id, p);
    jr_id(root, "event_id", true, out->event_id, p);
    jr_text(root, "title", true, json_limits()->name_max_chars, out->title, sizeof out->title, p);
    jr_id(root, "speaker_id", true, out->speaker_id, p);
    return decode_end(root, p);
}

enum et_err decode_registration_new(const char *body, size_t len, struct registration *out,
                                    struct problem *p)
{
    static const char *const allowed[] = {"session_id", "user_id", "organization_id",
                                          "ticket_type", "price_paid", NULL};
    cJSON *root;

    memset(out, 0, sizeof *out);
    if (decode_begin(body, len, allowed, &root, p) != ET_OK)
        return p->err;
    jr_id(root, "session_id", true, out->session_id, p);
    jr_id(root, "user_id", true, out->user_id, p);
    jr_id(root, "organization_id", true, out->organization_id, p);
    jr_token(root, "ticket_type", true, TICKET_TYPE_MAX, out->ticket_type, p);
    jr_money(root, "price_paid", out->price_paid, sizeof out->price_paid, p);
    return decode_end(root, p);
}

/* The first number under node that jsonb cannot store, or NULL. */
static const char *unstorable_number(const cJSON *node)
{
    const cJSON *c;

    if (cJSON_IsNumber(node))
        return json_number_storable(node->valuestring) ? NULL : node->valuestring;
    cJSON_ArrayForEach(c, node) {
        const char *bad = unstorable_number(c);
        if (bad)
            return bad;
    }
    return NULL;
}

/* The payload byte for byte as the client wrote it and the validator saw it:
 * the text of the very member cJSON returned, located by its place in the
 * envelope's tree (json_member_span), so PostgreSQL stores its numbers
 * exactly and no other member of the text can stand in for it. */
static char *payload_text(const cJSON *env, const cJSON *payload, const char *text, size_t len)
{
    size_t start, end;

    if (!json_member_span(text, len, env, payload, &start, &end)) {
        assert(!"the envelope's text does not hold its payload");
        return NULL;
    }
    return strndup(text + start, end - start);
}

/*
 * Validates one envelope (the cJSON tree and its text) into *ev. The
 * idempotency key is the envelope's event_id, else payload.event_id (the
 * seed's form), else a fresh UUID.
 */
static void decode_envelope(const cJSON *env, const char *text, size_t len,
                            struct analytics_event *ev, struct problem *p)
{
    static const char *const allowed[] = {"event_id", "event_type", "user_id", "occurred_at",
                                          "payload", NULL};
    const cJSON *payload, *type;
    const char *bad;

    if (!jr_object(env, allowed, p))
        return;
    jr_id(env, "event_id", false, ev->event_id, p);
    type = cJSON_GetObjectItemCaseSensitive(env, "event_type");
    if (!cJSON_IsString(type) || !event_type_valid(type->valuestring))
        problem_field(p, "event_type", "must match ^[a-z][a-z0-9_.]{0,63}$");
    else
        strcpy(ev->event_type, type->valuestring);
    jr_id(env, "user_id", true, ev->user_id, p);
    jr_timestamp(env, "occurred_at", ev->occurred_at, sizeof ev->occurred_at, p);

    payload = cJSON_GetObjectItemCaseSensitive(env, "payload");
    if (!cJSON_IsObject(payload)) {
        problem_field(p, "payload", "is required and must be a JSON object");
        return;
    }
    if ((bad = unstorable_number(payload)) != NULL)
        problem_field(p, "payload", "holds the number %.40s%s, which cannot be stored: at most "
                      "131072 digits before the decimal point and 16383 after it",
                      bad, strlen(bad) > 40 ? "..." : "");
    if (ev->event_id[0] == '\0' && cJSON_GetObjectItemCaseSensitive(payload, "event_id"))
        jr_id(payload, "event_id", false, ev->event_id, p);
    if (strcmp(ev->event_type, "session_view") == 0) {
        jr_id(payload, "session_id", false, ev->session_id, p);
        jr_id(payload, "speaker_id", false, ev->speaker_id, p);
    }
    if (p->nfields > 0)
        return;
    if (ev->event_id[0] == '\0')
        id_generate(ev->event_id, NULL);
    ev->payload = payload_text(env, payload, text, len);
    if (ev->payload == NULL)
        problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
}

/* Folds an envelope's problem into its per-item outcome (batch form). */
static void envelope_reject(struct analytics_event *ev, const struct problem *p)
{
    ev->status = INGEST_REJECTED;
    ev->error = p->err;
    if (p->nfields > 0)
        snprintf(ev->error_detail, sizeof ev->error_detail, "%s: %s", p->fields[0].field,
                 p->fields[0].message);
    else
        snprintf(ev->error_detail, sizeof ev->error_detail, "%s", p->detail);
    utf8_trim_partial(ev->error_detail);
}

enum et_err decode_analytics(const char *body, size_t len, struct analytics_event **events,
                             size_t *count, bool *is_batch, struct problem *p)
{
    cJSON *root, *batch, *item;
    struct analytics_event *evs = NULL;
    size_t n = 0, i = 0;

    *events = NULL;
    *count = 0;
    if (json_parse(body, len, &root, p) != ET_OK)
        return p->err;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        problem_field(p, "(body)", "must be a JSON object");
        return problem_set(p, ET_ERR_INVALID, NULL, "the request body has invalid fields");
    }
    batch = cJSON_GetObjectItemCaseSensitive(root, "batch");
    *is_batch = batch != NULL;
    if (*is_batch) {
        n = (size_t)cJSON_GetArraySize(batch);
        if (!cJSON_IsArray(batch) || n == 0 || n > json_limits()->batch_max ||
            cJSON_GetArraySize(root) != 1) {
            cJSON_Delete(root);
            problem_field(p, "batch", "must be the only field: an array of 1 to %zu envelopes",
                          json_limits()->batch_max);
            return problem_set(p, ET_ERR_INVALID, NULL, "the request body has invalid fields");
        }
    } else {
        n = 1;
    }
    evs = calloc(n, sizeof *evs);
    if (evs == NULL) {
        cJSON_Delete(root);
        return problem_set(p, ET_ERR_INTERNAL, NULL, "out of memory");
    }
    if (!*is_batch) {
        decode_envelope(root, body, len, &evs[0], p);
        cJSON_Delete(root);
        if (p->err != ET_OK) {
            analytics_events_free(evs, 1);
            if (p->nfields > 0)
                problem_set(p, ET_ERR_INVALID, NULL, "the analytics event has invalid fields");
            return p->err;
        }
        *events = evs;
        *count = 1;
        return ET_OK;
    }
    size_t batch_start = 0, batch_end = 0, pos = 0, el_start = 0, el_end = 0;
    json_member_span(body, len, root, batch, &batch_start, &batch_end);
    cJSON_ArrayForEach(item, batch) {
        struct problem ip = {0};
        /* The element's text, for its exact payload; empty if not found. */
        if (!json_element_next(body + batch_start, batch_end - batch_start, &pos, &el_start, &el_end))
            el_start = el_end = 0;
        decode_envelope(item, body + batch_start + el_start, el_end - el_start, &evs[i], &ip);
        if (ip.err == ET_ERR_INTERNAL) {
            cJSON_Delete(root);
            analytics_events_free(evs, n);
            *p = ip;
            return p->err;
        }
        if (ip.err != ET_OK)
            envelope_reject(&evs[i], &ip);
        i++;
    }
    cJSON_Delete(root);
    *events = evs;
    *count = n;
    return ET_OK;
}

void analytics_events_free(struct analytics_event *events, size_t count)
{
    if (events == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(events[i].payload);
    free(events);
}

void encode_organization(struct jw *w, const struct organization *o, const char *api_key)
{
    jw_object_begin(w);
    jw_key(w, "id");         jw_string(w, o->id);
    jw_key(w, "name");       jw_string(w, o->name);
    jw_key(w, "credits");    jw_int(w, o->credits);
    jw_key(w, "created_at"); jw_string(w, o->created_at);
    if (api_key) {
        jw_key(w, "api_key");
        jw_string(w, api_key);
    }
    jw_object_end(w);
}

void encode_balance(struct jw *w, const char *organization_id, long long balance)
{
    jw_object_begin(w);
    jw_key(w, "organization_id"); jw_string(w, organization_id);
    jw_key(w, "balance");         jw_int(w, balance);
    jw_object_end(w);
}

void encode_event(struct jw *w, const struct event *e)
{
    jw_object_begin(w);
    jw_key(w, "id");              jw_string(w, e->id);
    jw_key(w, "organization_id"); jw_string(w, e->organization_id);
    jw_key(w, "name");            jw_string(w, e->name);
    jw_key(w, "starts_at");       jw_string(w, e->starts_at[0] ? e->starts_at : NULL);
    jw_key(w, "created_at");      jw_string(w, e->created_at);
    jw_object_end(w);
}

void encode_session(struct jw *w, const struct session *s)
{
    jw_object_begin(w);
    jw_key(w, "id");         jw_string(w, s->id);
    jw_key(w, "event_id");   jw_string(w, s->event_id);
    jw_key(w, "title");      jw_string(w, s->title);
    jw_key(w, "speaker_id"); jw_string(w, s->speaker_id);
    jw_key(w, "created_at"); jw_string(w, s->created_at);
    jw_object_end(w);
}

/* The members a registration and an attendee share. */
static void registration_members(struct jw *w, const struct registration *r)
{
    jw_key(w, "id");              jw_string(w, r->id);
    jw_key(w, "session_id");      jw_string(w, r->session_id);
    jw_key(w, "user_id");         jw_string(w, r->user_id);
    jw_key(w, "organization_id"); jw_string(w, r->organization_id);
    jw_key(w, "ticket_type");     jw_string(w, r->ticket_type);
    jw_key(w, "price_paid");      jw_string(w, r->price_paid);
    jw_key(w, "registered_at");   jw_string(w, r->registered_at);
    jw_key(w, "status");          jw_string(w, r->cancelled_at[0] ? "cancelled" : "active");
    jw_key(w, "cancelled_at");    jw_string(w, r->cancelled_at[0] ? r->cancelled_at : NULL);
}

void encode_registration(struct jw *w, const struct registration *r)
{
    jw_object_begin(w);
    registration_members(w, r);
    jw_key(w, "credits_remaining"); jw_int(w, r->credits_remaining);
    jw_object_end(w);
}

void encode_attendee(struct jw *w, const struct registration *r)
{
    jw_object_begin(w);
    registration_members(w, r);
    jw_object_end(w);
}

void encode_leaderboard(struct jw *w, const char *event_id, long long version,
                        const struct leaderboard_entry *e, size_t n)
{
    jw_object_begin(w);
    jw_key(w, "event_id");
    jw_string(w, event_id);
    jw_key(w, "version");
    jw_int(w, version);
    jw_key(w, "leaderboard");
    jw_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        jw_object_begin(w);
        jw_key(w, "rank");       jw_int(w, e[i].rank);
        jw_key(w, "speaker_id"); jw_string(w, e[i].speaker_id);
        jw_key(w, "score");      jw_int(w, e[i].score);
        jw_object_end(w);
    }
    jw_array_end(w);
    jw_object_end(w);
}

void encode_speaker_rank(struct jw *w, const char *event_id, const struct leaderboard_entry *e)
{
    jw_object_begin(w);
    jw_key(w, "event_id");   jw_string(w, event_id);
    jw_key(w, "speaker_id"); jw_string(w, e->speaker_id);
    jw_key(w, "rank");       jw_int(w, e->rank);
    jw_key(w, "score");      jw_int(w, e->score);
    jw_object_end(w);
}
