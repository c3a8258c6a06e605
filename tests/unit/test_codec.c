/*
 * test_codec.c - every request decoder (valid bodies, unknown and bad fields reported
 * together, the analytics single/batch forms and their event_id rules) and every resource
 * encoder, compared to exact JSON: this file pins the wire format of the API.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/codec.h"

#define LEN(s) (s), strlen(s)

/* Asserts a validation failure listing exactly these fields, in order. */
static void assert_fields(const struct problem *p, size_t n, const char *const *fields,
                          const char *const *messages)
{
    cr_assert_eq(p->err, ET_ERR_INVALID);
    cr_assert_eq(p->nfields, n, "nfields %zu, want %zu (first: %s)", p->nfields, n,
                 p->nfields ? p->fields[0].field : "-");
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(p->fields[i].field, fields[i], "field %zu", i);
        if (messages)
            cr_assert_str_eq(p->fields[i].message, messages[i], "message of %s", fields[i]);
    }
}

#define ID_MESSAGE "must be 1 to 128 characters from A-Z a-z 0-9 _ . : -"

/* ------------------------------------------------------------------ organizations */

Test(decode_organization_new, valid_full)
{
    struct organization o;
    struct problem p = {0};
    const char *body = "{\"id\":\"org_1\",\"name\":\"Acme \\\"Co\\\" \xc3\xa9\",\"credits\":100}";

    cr_assert_eq(decode_organization_new(LEN(body), &o, &p), ET_OK);
    cr_assert_eq(p.err, ET_OK);
    cr_assert_eq(p.nfields, 0);
    cr_assert_str_eq(o.id, "org_1");
    cr_assert_str_eq(o.name, "Acme \"Co\" \xc3\xa9");
    cr_assert_eq(o.credits, 100);
    cr_assert_str_eq(o.created_at, "");
}

Test(decode_organization_new, valid_minimal_defaults)
{
    struct organization o;
    struct problem p = {0};

    memset(&o, 0x55, sizeof o);
    cr_assert_eq(decode_organization_new(LEN("{\"name\":\"A\",\"id\":null}"), &o, &p), ET_OK);
    cr_assert_str_eq(o.id, "");
    cr_assert_str_eq(o.name, "A");
    cr_assert_eq(o.credits, 0);
}

Test(decode_organization_new, unknown_field_reported)
{
    static const char *const f[] = {"credit"}, *const m[] = {"unknown field"};
    struct organization o;
    struct problem p = {0};

    cr_assert_eq(decode_organization_new(LEN("{\"name\":\"A\",\"credit\":5}"), &o, &p),
                 ET_ERR_INVALID);
    assert_fields(&p, 1, f, m);
    cr_assert_null(p.slug);
    cr_assert_str_eq(p.detail, "the request body has invalid fields");
}

Test(decode_organization_new, several_bad_fields_together)
{
    static const char *const f[] = {"extra", "id", "name", "credits"};
    static const char *const m[] = {"unknown field", ID_MESSAGE, "must be 1 to 200 characters",
                                    "must be between 0 and 1000000000"};
    struct organization o;
    struct problem p = {0};

    cr_assert_eq(decode_organization_new(
                     LEN("{\"id\":\"a b\",\"name\":\"\",\"credits\":-1,\"extra\":true}"), &o, &p),
                 ET_ERR_INVALID);
    assert_fields(&p, 4, f, m);
}

Test(decode_organization_new, credits_over_limit_and_fractional)
{
    static const char *const f1[] = {"credits"}, *const m1[] = {"must be between 0 and 1000000000"};
    static const char *const m2[] = {"must be an integer, written without a fraction or exponent"};
    struct organization o;
    struct problem p = {0};

    cr_assert_eq(decode_organization_new(LEN("{\"name\":\"A\",\"credits\":1000000001}"), &o, &p),
                 ET_ERR_INVALID);
    assert_fields(&p, 1, f1, m1);
    memset(&p, 0, sizeof p);
    cr_assert_eq(decode_organization_new(LEN("{\"name\":\"A\",\"credits\":1.5}"), &o, &p),
                 ET_ERR_INVALID);
    assert_fields(&p, 1, f1, m2);
}

Test(decode_organization_new, non_object_body)
{
    static const char *const f[] = {"(body)", "name"};
    static const char *const m[] = {"must be a JSON object", "is required"};
    struct organization o;
    struct problem p = {0};

    cr_assert_eq(decode_organization_new(LEN("[{\"name\":\"A\"}]"), &o, &p), ET_ERR_INVALID);
    assert_fields(&p, 2, f, m);
}

Test(decode_organization_new, malformed_body)
{
    struct organization o;
    struct problem p = {0};

    cr_assert_eq(decode_organization_new(LEN("{\"name\":"), &o, &p), ET_ERR_MALFORMED);
    cr_assert_eq(p.err, ET_ERR_MALFORMED);
    cr_assert_str_eq(p.slug, "malformed-json");
    cr_assert_eq(p.nfields, 0);
    cr_assert_eq(decode_organization_new("", 0, &o, &p), ET_ERR_MALFORMED);
}

/* ------------------------------------------------------------------ top-ups */

Test(decode_top_up, valid)
{
    struct top_up t;
    struct problem p = {0};

    cr_assert_eq(decode_top_up(LEN("{\"amount\":50,\"reason\":\"gift\"}"), &t, &p), ET_OK);
    cr_assert_eq(t.amount, 50);
    cr_assert_str_eq(t.reason, "gift");
    cr_assert_eq(decode_top_up(LEN("{\"amount\":1000000000}"), &t, &p), ET_OK);
    cr_assert_eq(t.amount, 1000000000LL);
    cr_assert_str_eq(t.reason, "");
}

Test(decode_top_up, bad_fields)
{
    static const char *const f[] = {"amount", "reason"};
    static const char *const m[] = {"must be between 1 and 1000000000", "must be 1 to 500 characters"};
    static const char *const f2[] = {"amount"}, *const m2[] = {"is required"};
    struct top_up t;
    struct problem p = {0};

    cr_assert_eq(decode_top_up(LEN("{\"amount\":0,\"reason\":\"\"}"), &t, &p), ET_ERR_INVALID);
    assert_fields(&p, 2, f, m);
    memset(&p, 0, sizeof p);
    cr_assert_eq(decode_top_up(LEN("{}"), &t, &p), ET_ERR_INVALID);
    assert_fields(&p, 1, f2, m2);
}

/* ------------------------------------------------------------------ events, sessions */

Test(decode_event_new, valid)
{
    struct event e;
    struct problem p = {0};

    cr_assert_eq(decode_event_new(LEN("{\"id\":\"e1\",\"organization_id\":\"o1\",\"name\":\"Conf\","
                                      "\"starts_at\":\"2026-11-21T09:30:00Z\"}"),
                                  &e, &p),
                 ET_OK);
    cr_assert_str_eq(e.id, "e1");
    cr_assert_str_eq(e.organization_id, "o1");
    cr_assert_str_eq(e.name, "Conf");
    cr_assert_str_eq(e.starts_at, "2026-11-21T09:30:00Z");
    cr_assert_eq(decode_event_new(LEN("{\"organization_id\":\"o1\",\"name\":\"C\",\"starts_at\":null}"),
                                  &e, &p),
                 ET_OK);
    cr_assert_str_eq(e.id, "");
    cr_assert_str_eq(e.starts_at, "");
}

Test(decode_event_new, bad_fields)
{
    static const char *const f[] = {"organization_id", "starts_at"};
    static const char *const m[] = {"must be a string",
                                    "must be an RFC 3339 date-time such as 2026-11-21T09:30:00Z, a real date in years 0001 to 9999"};
    static const char *const f2[] = {"organization_id", "name"};
    struct event e;
    struct problem p = {0};

    cr_assert_eq(decode_event_new(LEN("{\"organization_id\":5,\"name\":\"x\","
                                      "\"starts_at\":\"2026-13-01T00:00:00Z\"}"),
                                  &e, &p),
                 ET_ERR_INVALID);
    assert_fields(&p, 2, f, m);
    memset(&p, 0, sizeof p);
    cr_assert_eq(decode_event_new(LEN("{}"), &e, &p), ET_ERR_INVALID);
    assert_fields(&p, 2, f2, NULL);
}

Test(decode_session_new, valid)
{
    struct session s;
    struct problem p = {0};

    cr_assert_eq(decode_session_new(LEN("{\"id\":\"s1\",\"event_id\":\"e1\",\"title\":\"Talk\","
                                        "\"speaker_id\":\"sp1\"}"),
                                    &s, &p),
                 ET_OK);
    cr_assert_str_eq(s.id, "s1");
    cr_assert_str_eq(s.event_id, "e1");
    cr_assert_str_eq(s.title, "Talk");
    cr_assert_str_eq(s.speaker_id, "sp1");
}

Test(decode_session_new, missing_fields_reported_together)
{
    static const char *const f[] = {"event_id", "title", "speaker_id"};
    static const char *const m[] = {"is required", "is required", "is required"};
    struct session s;
    struct problem p = {0};

    cr_assert_eq(decode_session_new(LEN("{\"id\":\"s1\"}"), &s, &p), ET_ERR_INVALID);
    assert_fields(&p, 3, f, m);
}

/* ------------------------------------------------------------------ registrations */

Test(decode_registration_new, valid)
{
    struct registration r;
    struct problem p = {0};

    cr_assert_eq(decode_registration_new(
                     LEN("{\"session_id\":\"s1\",\"user_id\":\"u1\",\"organization_id\":\"o1\","
                         "\"ticket_type\":\"vip\",\"price_paid\":\"19.9\"}"),
                     &r, &p),
                 ET_OK);
    cr_assert_str_eq(r.session_id, "s1");
    cr_assert_str_eq(r.user_id, "u1");
    cr_assert_str_eq(r.organization_id, "o1");
    cr_assert_str_eq(r.ticket_type, "vip");
    cr_assert_str_eq(r.price_paid, "19.90");
    cr_assert_str_eq(r.id, "");
    cr_assert_eq(decode_registration_new(
                     LEN("{\"session_id\":\"s1\",\"user_id\":\"u1\",\"organization_id\":\"o1\","
                         "\"ticket_type\":\"general\",\"price_paid\":99}"),
                     &r, &p),
                 ET_OK);
    cr_assert_str_eq(r.price_paid, "99.00");
}

Test(decode_registration_new, bad_fields_reported_together)
{
    static const char *const f[] = {"user_id", "ticket_type", "price_paid"};
    static const char *const m[] = {
        "is required", "must be 1 to 64 characters from A-Z a-z 0-9 _ . : -",
        "must be an amount from 0 to 99999999.99 with at most two decimals"};
    char body[400];
    struct registration r;
    struct problem p = {0};

    snprintf(body, sizeof body,
             "{\"session_id\":\"s1\",\"organization_id\":\"o1\",\"ticket_type\":\"%065d\","
             "\"price_paid\":\"abc\"}", 1);
    cr_assert_eq(decode_registration_new(LEN(body), &r, &p), ET_ERR_INVALID);
    assert_fields(&p, 3, f, m);
}

Test(decode_registration_new, field_list_capped_at_problem_max)
{
    /* 4 unknown + 5 missing = 9 errors; the problem keeps the first 8. */
    static const char *const f[] = {"a", "b", "c", "d", "session_id", "user_id",
                                    "organization_id", "ticket_type"};
    struct registration r;
    struct problem p = {0};

    cr_assert_eq(decode_registration_new(LEN("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}"), &r, &p),
                 ET_ERR_INVALID);
    cr_assert_eq(PROBLEM_MAX_FIELDS, 8);
    assert_fields(&p, 8, f, NULL);
}

/* ------------------------------------------------------------------ analytics */

struct decoded {
    struct analytics_event *ev;
    size_t n;
    bool batch;
    struct problem p;
    enum et_err err;
};

static struct decoded analytics(const char *body)
{
    struct decoded d;

    memset(&d, 0, sizeof d);
    d.batch = false;
    d.err = decode_analytics(body, strlen(body), &d.ev, &d.n, &d.batch, &d.p);
    return d;
}

static void assert_uuid_v4(const char *s)
{
    cr_assert_eq(strlen(s), 36, "\"%s\" is not a bare UUID", s);
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            cr_assert_eq(s[i], '-', "\"%s\" position %zu", s, i);
        else
            cr_assert(strchr("0123456789abcdef", s[i]) != NULL && s[i] != '\0',
                      "\"%s\" position %zu", s, i);
    }
    cr_assert_eq(s[14], '4', "version nibble of %s", s);
    cr_assert(strchr("89ab", s[19]) != NULL, "variant nibble of %s", s);
}

Test(decode_analytics, single_envelope)
{
    struct decoded d = analytics(
        "{\"event_id\":\"ev1\",\"event_type\":\"page.view\",\"user_id\":\"u1\","
        "\"occurred_at\":\"2026-11-21T09:30:00Z\",\"payload\":{\"a\": 1, \"b\": [\"x\"]}}");

    cr_assert_eq(d.err, ET_OK, "%s", d.p.detail);
    cr_assert_not(d.batch);
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.ev[0].event_id, "ev1");
    cr_assert_str_eq(d.ev[0].event_type, "page.view");
    cr_assert_str_eq(d.ev[0].user_id, "u1");
    cr_assert_str_eq(d.ev[0].occurred_at, "2026-11-21T09:30:00Z");
    /* Exactly as sent: PostgreSQL's jsonb normalizes it, exactly. */
    cr_assert_str_eq(d.ev[0].payload, "{\"a\": 1, \"b\": [\"x\"]}");
    cr_assert_str_eq(d.ev[0].session_id, "");
    cr_assert_str_eq(d.ev[0].speaker_id, "");
    cr_assert_eq(d.ev[0].status, INGEST_CREATED);
    cr_assert_eq(d.ev[0].error, ET_OK);
    cr_assert_str_eq(d.ev[0].error_detail, "");
    analytics_events_free(d.ev, d.n);
}

Test(decode_analytics, occurred_at_optional)
{
    struct decoded d = analytics("{\"event_id\":\"e\",\"event_type\":\"x\",\"user_id\":\"u\","
                                 "\"payload\":{}}");

    cr_assert_eq(d.err, ET_OK);
    cr_assert_str_eq(d.ev[0].occurred_at, "");
    cr_assert_str_eq(d.ev[0].payload, "{}");
    analytics_events_free(d.ev, d.n);
}

Test(decode_analytics, payload_event_id_fallback)
{
    struct decoded d = analytics("{\"event_type\":\"x\",\"user_id\":\"u\","
                                 "\"payload\":{\"event_id\":\"p-1\",\"k\":true}}");

    cr_assert_eq(d.err, ET_OK);
    cr_assert_str_eq(d.ev[0].event_id, "p-1");
    cr_assert_str_eq(d.ev[0].payload, "{\"event_id\":\"p-1\",\"k\":true}");
    analytics_events_free(d.ev, d.n);
}

Test(decode_analytics, envelope_event_id_wins)
{
    struct decoded d = analytics("{\"event_id\":\"env-1\",\"event_type\":\"x\",\"user_id\":\"u\","
                                 "\"payload\":{\"event_id\":\"p-1\"}}");

    cr_assert_eq(d.err, ET_OK);
    cr_assert_str_eq(d.ev[0].event_id, "env-1");
    cr_assert_str_eq(d.ev[0].payload, "{\"event_id\":\"p-1\"}");
    analytics_events_free(d.ev, d.n);
}

Test(decode_analytics, generated_uuid_when_no_event_id)
{
    struct decoded d = analytics("{\"event_type\":\"x\",\"user_id\":\"u\",\"payload\":{}}");
    struct decoded d2 = analytics("{\"event_type\":\"x\",\"user_id\":\"u\",\"event_id\":null,"
                                  "\"payload\":{}}");

    cr_assert_eq(d.err, ET_OK);
    cr_assert_eq(d2.err, ET_OK);
    assert_uuid_v4(d.ev[0].event_id);
    assert_uuid_v4(d2.ev[0].event_id);
    cr_assert_str_neq(d.ev[0].event_id, d2.ev[0].event_id);
    analytics_events_free(d.ev, d.n);
    analytics_events_free(d2.ev, d2.n);
}

Test(decode_analytics, session_view_extracts_session_and_speaker)
{
    struct decoded d = analytics("{\"event_id\":\"e\",\"event_type\":\"session_view\","
                                 "\"user_id\":\"u\",\"payload\":{\"session_id\":\"s1\","
                                 "\"speaker_id\":\"sp1\",\"seconds\":30}}");

    cr_assert_eq(d.err, ET_OK);
    cr_assert_str_eq(d.ev[0].session_id, "s1");
    cr_assert_str_eq(d.ev[0].speaker_id, "sp1");
    analytics_events_free(d.ev, d.n);
}

Test(decode_analytics, other_types_do_not_extract)
{
    struct decoded d = analytics("{\"event_id\":\"e\",\"event_type\":\"session_view2\","
                                 "\"user_id\":\"u\",\"payload\":{\"session_id\":\"s1\","
                                 "\"speaker_id\":\"sp1\"}}");

    cr_assert_eq(d.err, ET_OK);
    cr_assert_str_eq(d.ev[0].session_id, "");
    cr_assert_str_eq(d.ev[0].speaker_id, "");
    analytics_events_free(d.ev, d.n);
}

Test(decode_analytics, session_view_bad_speaker_id)
{
    static const char *const f[] = {"speaker_id"}, *const m[] = {"must be a string"};
    struct decoded d = analytics("{\"event_id\":\"e\",\"event_type\":\"session_view\","
                                 "\"user_id\":\"u\",\"payload\":{\"session_id\":\"s1\","
                                 "\"speaker_id\":7}}");

    cr_assert_eq(d.err, ET_ERR_INVALID);
    assert_fields(&d.p, 1, f, m);
    cr_assert_null(d.ev);
    cr_assert_eq(d.n, 0);
}

Test(decode_analytics, non_object_payload_rejected)
{
    static const char *const bodies[] = {
        "{\"event_type\":\"x\",\"user_id\":\"u\",\"payload\":[1]}",
        "{\"event_type\":\"x\",\"user_id\":\"u\",\"payload\":\"{}\"}",
        "{\"event_type\":\"x\",\"user_id\":\"u\",\"payload\":null}",
        "{\"event_type\":\"x\",\"user_id\":\"u\",\"payload\":3}",
        "{\"event_type\":\"x\",\"user_id\":\"u\"}",
    };
    static const char *const f[] = {"payload"};
    static const char *const m[] = {"is required and must be a JSON object"};

    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct decoded d = analytics(bodies[i]);
        cr_assert_eq(d.err, ET_ERR_INVALID, "%s", bodies[i]);
        assert_fields(&d.p, 1, f, m);
        cr_assert_str_eq(d.p.detail, "the analytics event has invalid fields");
        cr_assert_null(d.ev);
        cr_assert_eq(d.n, 0);
    }
}

Test(decode_analytics, single_envelope_bad_fields_together)
{
    static const char *const f[] = {"event_id", "event_type", "user_id", "occurred_at"};
    static const char *const m[] = {ID_MESSAGE, "must match ^[a-z][a-z0-9_.]{0,63}$",
                                    "is required",
                                    "must be an RFC 3339 date-time such as 2026-11-21T09:30:00Z, a real date in years 0001 to 9999"};
    struct decoded d = analytics("{\"event_id\":\"a b\",\"event_type\":\"Page\","
                                 "\"occurred_at\":\"yesterday\",\"payload\":{}}");

    cr_assert_eq(d.err, ET_ERR_INVALID);
    assert_fields(&d.p, 4, f, m);
}

Test(decode_analytics, unknown_envelope_field)
{
    static const char *const f[] = {"evnt_type"}, *const m[] = {"unknown field"};
    struct decoded d = analytics("{\"event_id\":\"e\",\"evnt_type\":\"x\",\"user_id\":\"u\","
                                 "\"payload\":{}}");

    cr_assert_eq(d.err, ET_ERR_INVALID);
    assert_fields(&d.p, 1, f, m);
}

Test(decode_analytics, body_must_be_object)
{
    static const char *const f[] = {"(body)"}, *const m[] = {"must be a JSON object"};
    struct decoded d = analytics("[{\"event_type\":\"x\"}]");

    cr_assert_eq(d.err, ET_ERR_INVALID);
    assert_fields(&d.p, 1, f, m);
    cr_assert_null(d.ev);
    d = analytics("{\"batch\":");
    cr_assert_eq(d.err, ET_ERR_MALFORMED);
    cr_assert_eq(d.p.nfields, 0);
}

/* {"batch":[<n good envelopes>]} */
static char *batch_body(size_t n)
{
    static const char env[] = "{\"event_type\":\"x\",\"user_id\":\"u\",\"payload\":{}}";
    char *s = malloc(n * sizeof env + 16), *w = s;

    cr_assert_not_null(s);
    w += sprintf(w, "{\"batch\":[");
    for (size_t i = 0; i < n; i++)
        w += sprintf(w, "%s%s", i ? "," : "", env);
    strcpy(w, "]}");
    return s;
}

#define BATCH_MESSAGE "must be the only field: an array of 1 to 1000 envelopes"

static void assert_batch_refused(const char *body)
{
    static const char *const f[] = {"batch"}, *const m[] = {BATCH_MESSAGE};
    struct decoded d = analytics(body);

    cr_assert_eq(d.err, ET_ERR_INVALID, "%.60s", body);
    assert_fields(&d.p, 1, f, m);
    cr_assert_null(d.ev);
    cr_assert_eq(d.n, 0);
}

Test(decode_analytics, batch_size_limits)
{
    char *b;
    struct decoded d;

    assert_batch_refused("{\"batch\":[]}");
    b = batch_body(1001);
    assert_batch_refused(b);
    free(b);

    b = batch_body(1000);
    d = analytics(b);
    free(b);
    cr_assert_eq(d.err, ET_OK);
    cr_assert(d.batch);
    cr_assert_eq(d.n, 1000);
    for (size_t i = 0; i < d.n; i++)
        cr_assert_eq(d.ev[i].status, INGEST_CREATED);
    cr_assert_str_neq(d.ev[0].event_id, d.ev[999].event_id);
    analytics_events_free(d.ev, d.n);
}

Test(decode_analytics, batch_of_one_is_still_a_batch)
{
    char *b = batch_body(1);
    struct decoded d = analytics(b);

    free(b);
    cr_assert_eq(d.err, ET_OK);
    cr_assert(d.batch);
    cr_assert_eq(d.n, 1);
    assert_uuid_v4(d.ev[0].event_id);
    analytics_events_free(d.ev, d.n);
}

Test(decode_analytics, batch_shape_refused)
{
    assert_batch_refused("{\"batch\":{}}");
    assert_batch_refused("{\"batch\":null}");
    assert_batch_refused("{\"batch\":\"x\"}");
    assert_batch_refused("{\"batch\":[{\"event_type\":\"x\",\"user_id\":\"u\",\"payload\":{}}],"
                         "\"event_type\":\"x\"}");
}

Test(decode_analytics, batch_marks_only_bad_envelopes_rejected)
{
    struct decoded d = analytics(
        "{\"batch\":["
        "{\"event_id\":\"g1\",\"event_type\":\"x\",\"user_id\":\"u\",\"payload\":{\"n\":1}},"
        "{\"event_id\":\"b1\",\"event_type\":\"x\",\"payload\":{}},"
        "{\"event_id\":\"g2\",\"event_type\":\"session_view\",\"user_id\":\"u\","
        "\"payload\":{\"session_id\":\"s\",\"speaker_id\":\"sp\"}},"
        "5,"
        "{\"event_type\":\"x\",\"user_id\":\"u\",\"payload\":[]},"
        "{\"event_type\":\"BAD\",\"user_id\":\"a b\",\"payload\":{}}"
        "]}");

    cr_assert_eq(d.err, ET_OK, "%s", d.p.detail);
    cr_assert_eq(d.p.nfields, 0);
    cr_assert(d.batch);
    cr_assert_eq(d.n, 6);

    cr_assert_eq(d.ev[0].status, INGEST_CREATED);
    cr_assert_str_eq(d.ev[0].event_id, "g1");
    cr_assert_str_eq(d.ev[0].payload, "{\"n\":1}");
    cr_assert_str_eq(d.ev[0].error_detail, "");

    cr_assert_eq(d.ev[1].status, INGEST_REJECTED);
    cr_assert_eq(d.ev[1].error, ET_ERR_INVALID);
    cr_assert_str_eq(d.ev[1].error_detail, "user_id: is required");
    cr_assert_null(d.ev[1].payload);

    cr_assert_eq(d.ev[2].status, INGEST_CREATED);
    cr_assert_str_eq(d.ev[2].session_id, "s");
    cr_assert_str_eq(d.ev[2].speaker_id, "sp");

    cr_assert_eq(d.ev[3].status, INGEST_REJECTED);
    cr_assert_str_eq(d.ev[3].error_detail, "(body): must be a JSON object");

    cr_assert_eq(d.ev[4].status, INGEST_REJECTED);
    cr_assert_str_eq(d.ev[4].error_detail, "payload: is required and must be a JSON object");

    /* Two bad fields: the detail names the first. */
    cr_assert_eq(d.ev[5].status, INGEST_REJECTED);
    cr_assert_eq(d.ev[5].error, ET_ERR_INVALID);
    cr_assert_str_eq(d.ev[5].error_detail, "event_type: must match ^[a-z][a-z0-9_.]{0,63}$");
    analytics_events_free(d.ev, d.n);
}

Test(decode_analytics, free_accepts_null)
{
    analytics_events_free(NULL, 5);
}

/* ------------------------------------------------------------------ encoders */

static struct buf out;
static struct jw w;

static void enc_setup(void)
{
    struct buf empty = BUF_INIT;
    out = empty;
    jw_init(&w, &out);
}

static void enc_teardown(void)
{
    buf_free(&out);
}

TestSuite(encode, .init = enc_setup, .fini = enc_teardown);

static void assert_output(const char *want)
{
    cr_assert_not(out.failed);
    cr_assert_not_null(out.data);
    cr_assert_str_eq(out.data, want);
}

Test(encode, organization)
{
    struct organization o = {.id = "org_1", .name = "Acme \"Co\" \xc3\xa9", .credits = 100,
                             .created_at = "2026-01-01T00:00:00Z"};

    encode_organization(&w, &o, NULL);
    assert_output("{\"id\":\"org_1\",\"name\":\"Acme \\\"Co\\\" \xc3\xa9\",\"credits\":100,"
                  "\"created_at\":\"2026-01-01T00:00:00Z\"}");
}

Test(encode, organization_with_its_first_key)
{
    struct organization o = {.id = "o", .name = "N", .credits = 0, .created_at = "t"};

    encode_organization(&w, &o, "etk_00");
    assert_output("{\"id\":\"o\",\"name\":\"N\",\"credits\":0,\"created_at\":\"t\","
                  "\"api_key\":\"etk_00\"}");
}

Test(encode, balance)
{
    encode_balance(&w, "o1", -5);
    assert_output("{\"organization_id\":\"o1\",\"balance\":-5}");
}

Test(encode, event_unscheduled_and_scheduled)
{
    struct event e = {.id = "e1", .organization_id = "o1", .name = "Conf",
                      .created_at = "2026-01-01T00:00:00Z"};

    jw_array_begin(&w);
    encode_event(&w, &e);
    strcpy(e.starts_at, "2026-11-21T09:30:00+01:00");
    encode_event(&w, &e);
    jw_array_end(&w);
    assert_output("[{\"id\":\"e1\",\"organization_id\":\"o1\",\"name\":\"Conf\",\"starts_at\":null,"
                  "\"created_at\":\"2026-01-01T00:00:00Z\"},"
                  "{\"id\":\"e1\",\"organization_id\":\"o1\",\"name\":\"Conf\","
                  "\"starts_at\":\"2026-11-21T09:30:00+01:00\","
                  "\"created_at\":\"2026-01-01T00:00:00Z\"}]");
}

Test(encode, session)
{
    struct session s = {.id = "s1", .event_id = "e1", .title = "Talk\n2", .speaker_id = "sp1",
                        .created_at = "2026-01-01T00:00:00Z"};

    encode_session(&w, &s);
    assert_output("{\"id\":\"s1\",\"event_id\":\"e1\",\"title\":\"Talk\\n2\",\"speaker_id\":\"sp1\","
                  "\"created_at\":\"2026-01-01T00:00:00Z\"}");
}

Test(encode, registration)
{
    struct registration r = {.id = "r1", .session_id = "s1", .user_id = "u1",
                             .organization_id = "o1", .ticket_type = "vip",
                             .price_paid = "19.90", .registered_at = "2026-01-02T03:04:05Z",
                             .credits_remaining = 41};

    encode_registration(&w, &r);
    assert_output("{\"id\":\"r1\",\"session_id\":\"s1\",\"user_id\":\"u1\",\"organization_id\":\"o1\","
                  "\"ticket_type\":\"vip\",\"price_paid\":\"19.90\","
                  "\"registered_at\":\"2026-01-02T03:04:05Z\",\"status\":\"active\","
                  "\"cancelled_at\":null,\"credits_remaining\":41}");
}

Test(encode, registration_cancelled)
{
    struct registration r = {.id = "r1", .session_id = "s1", .user_id = "u1",
                             .organization_id = "o1", .ticket_type = "vip",
                             .price_paid = "19.90", .registered_at = "2026-01-02T03:04:05Z",
                             .cancelled_at = "2026-01-03T00:00:00Z", .credits_remaining = 42};

    encode_registration(&w, &r);
    assert_output("{\"id\":\"r1\",\"session_id\":\"s1\",\"user_id\":\"u1\",\"organization_id\":\"o1\","
                  "\"ticket_type\":\"vip\",\"price_paid\":\"19.90\","
                  "\"registered_at\":\"2026-01-02T03:04:05Z\",\"status\":\"cancelled\","
                  "\"cancelled_at\":\"2026-01-03T00:00:00Z\",\"credits_remaining\":42}");
}

Test(encode, leaderboard_empty)
{
    encode_leaderboard(&w, "e1", 0, NULL, 0);
    assert_output("{\"event_id\":\"e1\",\"version\":0,\"leaderboard\":[]}");
}

Test(encode, leaderboard_entries)
{
    static const struct leaderboard_entry e[] = {
        {"a", 10, 1}, {"b", 10, 1}, {"c", 2, 3},
    };

    encode_leaderboard(&w, "e1", 22, e, 3);
    assert_output("{\"event_id\":\"e1\",\"version\":22,\"leaderboard\":["
                  "{\"rank\":1,\"speaker_id\":\"a\",\"score\":10},"
                  "{\"rank\":1,\"speaker_id\":\"b\",\"score\":10},"
                  "{\"rank\":3,\"speaker_id\":\"c\",\"score\":2}]}");
}

Test(encode, speaker_rank)
{
    static const struct leaderboard_entry e = {"b", 10, 1};

    encode_speaker_rank(&w, "e1", &e);
    assert_output("{\"event_id\":\"e1\",\"speaker_id\":\"b\",\"rank\":1,\"score\":10}");
}

/* cJSON keeps numbers as doubles; re-printing would store 1e400 as null and
 * round big integers. The payload must reach PostgreSQL as the client wrote it. */
Test(decode_analytics, payload_numbers_are_passed_on_exactly)
{
    struct decoded d = analytics(
        "{\"event_type\":\"t\",\"user_id\":\"u\",\"payload\":"
        "{\"big\":12345678901234567890123,\"huge\":1e400,\"pi\":3.14159265358979323846}}");

    cr_assert_eq(d.err, ET_OK, "%s", d.p.detail);
    cr_assert_str_eq(d.ev[0].payload,
                     "{\"big\":12345678901234567890123,\"huge\":1e400,\"pi\":3.14159265358979323846}");
    analytics_events_free(d.ev, d.n);
}

Test(decode_analytics, batch_payloads_are_each_envelopes_own_text)
{
    struct decoded d = analytics(
        "{\"batch\": [ {\"event_type\":\"t\",\"user_id\":\"u\",\"payload\":{\"n\": 10000000000000000001}} ,"
        "{\"payload\":{\"s\":\"a,]}\\\"b\"},\"event_type\":\"t\",\"user_id\":\"u\"},"
        "{\"event_type\":\"Bad\",\"user_id\":\"u\",\"payload\":{}},"
        "{\"event_type\":\"t\",\"user_id\":\"u\",\"payload\":[]}, "
        "{\"event_type\":\"t\",\"user_id\":\"u\",\"payload\":{\"x\":[1,{\"y\":2}]}}]}");

    cr_assert_eq(d.err, ET_OK, "%s", d.p.detail);
    cr_assert_eq(d.n, 5);
    cr_assert_str_eq(d.ev[0].payload, "{\"n\": 10000000000000000001}");
    cr_assert_str_eq(d.ev[1].payload, "{\"s\":\"a,]}\\\"b\"}");
    cr_assert_eq(d.ev[2].status, INGEST_REJECTED);
    cr_assert_eq(d.ev[3].status, INGEST_REJECTED);
    cr_assert_str_eq(d.ev[4].payload, "{\"x\":[1,{\"y\":2}]}");
    analytics_events_free(d.ev, d.n);
}

Test(decode_analytics, an_escaped_payload_key_falls_back_to_the_parsed_object)
{
    struct decoded d = analytics("{\"event_type\":\"t\",\"user_id\":\"u\",\"pay\\u006coad\":{\"a\":1}}");

    cr_assert_eq(d.err, ET_OK, "%s", d.p.detail);
    cr_assert_str_eq(d.ev[0].payload, "{\"a\":1}");
    analytics_events_free(d.ev, d.n);
}

/* ------------------------------------------------------------------ what is validated is what is stored */

/* The payload is the member cJSON validated, byte for byte, even when its
 * name is written with escapes; in a batch too. */
Test(decode_analytics, escaped_payload_name_is_stored_exactly)
{
    const char *single = "{\"event_id\":\"e1\",\"event_type\":\"session_view\",\"user_id\":\"u\","
                         "\"pay\\u006coad\" : {\"session_id\":\"s1\", \"n\":1.50}}";
    struct decoded d = analytics(single);

    cr_assert_eq(d.err, ET_OK, "%s", d.p.detail);
    cr_assert_str_eq(d.ev[0].payload, "{\"session_id\":\"s1\", \"n\":1.50}");
    cr_assert_str_eq(d.ev[0].session_id, "s1");
    analytics_events_free(d.ev, d.n);

    d = analytics("{\"b\\u0061tch\":[{\"event_type\":\"x\",\"user_id\":\"u\",\"\\u0070ayload\":{\"k\":2}},"
                  "{\"event_type\":\"y\",\"user_id\":\"u\",\"payload\":{\"k\":1e400}}]}");
    cr_assert_eq(d.err, ET_OK, "%s", d.p.detail);
    cr_assert(d.batch);
    cr_assert_eq(d.n, 2);
    cr_assert_str_eq(d.ev[0].payload, "{\"k\":2}");
    cr_assert_str_eq(d.ev[1].payload, "{\"k\":1e400}");
    analytics_events_free(d.ev, d.n);
}

/* A second member of the same name never reaches a decoder: 400 for the body. */
Test(decode_analytics, repeated_payload_is_malformed)
{
    static const char *const bodies[] = {
        "{\"event_type\":\"x\",\"user_id\":\"u\",\"payload\":{},\"pay\\u006coad\":\"<b>x</b>\"}",
        "{\"batch\":[{\"event_type\":\"x\",\"user_id\":\"u\",\"payload\":{\"session_id\":\"a\","
        "\"session_id\":\"b\"}}]}",
        "{\"batch\":[],\"batch\":[{\"event_type\":\"x\",\"user_id\":\"u\",\"payload\":{}}]}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct decoded d = analytics(bodies[i]);
        cr_assert_eq(d.err, ET_ERR_MALFORMED, "body %zu", i);
        cr_assert_null(d.ev);
        cr_assert_eq(d.n, 0);
    }
}

/* Each envelope is judged whole before SQL: an impossible date or a number
 * jsonb cannot hold rejects that envelope only; alone, it is a 422. */
Test(decode_analytics, unstorable_envelopes_are_rejected_one_by_one)
{
    struct decoded d = analytics(
        "{\"batch\":["
        "{\"event_type\":\"a\",\"user_id\":\"u\",\"occurred_at\":\"2026-02-30T00:00:00Z\",\"payload\":{}},"
        "{\"event_type\":\"b\",\"user_id\":\"u\",\"occurred_at\":\"0000-01-01T00:00:00Z\",\"payload\":{}},"
        "{\"event_type\":\"c\",\"user_id\":\"u\",\"payload\":{\"x\":[1e-70000]}},"
        "{\"event_type\":\"d\",\"user_id\":\"u\",\"payload\":{\"x\":1e1000000}},"
        "{\"event_type\":\"e\",\"user_id\":\"u\",\"payload\":[]},"
        "{\"event_type\":\"f\",\"user_id\":\"u\",\"occurred_at\":\"2024-02-29T23:59:60+15:59\","
        "\"payload\":{\"x\":1e-16383}}]}");

    cr_assert_eq(d.err, ET_OK, "%s", d.p.detail);
    cr_assert_eq(d.n, 6);
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(d.ev[i].status, INGEST_REJECTED, "envelope %zu", i);
        cr_assert_eq(d.ev[i].error, ET_ERR_INVALID, "envelope %zu", i);
    }
    cr_assert_eq(strncmp(d.ev[0].error_detail, "occurred_at: ", 13), 0, "%s", d.ev[0].error_detail);
    cr_assert_eq(strncmp(d.ev[1].error_detail, "occurred_at: ", 13), 0, "%s", d.ev[1].error_detail);
    cr_assert_str_eq(d.ev[2].error_detail, "payload: holds the number 1e-70000, which cannot be stored: "
                                           "at most 131072 digits before the decimal point and 16383 after it");
    cr_assert_eq(strncmp(d.ev[3].error_detail, "payload: holds the number 1e1000000,", 36), 0);
    cr_assert_eq(strncmp(d.ev[4].error_detail, "payload: ", 9), 0);
    cr_assert_eq(d.ev[5].status, INGEST_CREATED);
    cr_assert_str_eq(d.ev[5].payload, "{\"x\":1e-16383}");
    analytics_events_free(d.ev, d.n);

    d = analytics("{\"event_type\":\"a\",\"user_id\":\"u\",\"payload\":{\"x\":-1e131072}}");
    cr_assert_eq(d.err, ET_ERR_INVALID);
    cr_assert_null(d.ev);
    cr_assert_str_eq(d.p.fields[0].field, "payload");
}
