/* test_bad_inputs.c: a table of bad requests, each with its exact status and
 * problem type, and for EACH the proof that it changed nothing in either
 * store ("No request with a bad input changes any state").
 *
 * How "nothing changed" cannot flake: this suite's .init takes the suite-wide
 * advisory lock exclusively (every other test holds it shared for its whole
 * life), so while a case runs no other test of this suite -- of this run or of
 * another run on the same database -- is between requests. The snapshot is
 * then global: row counts of every table, the sum of all balances, the
 * idempotency records and the number of Redis keys of the test db (rate-limit
 * counters aside, which expire on their own), before and after.
 * Bodies name the case's own fresh organization, event and session, so a
 * wrongly accepted request would also show in that organization's balance.
 *
 * Placeholders in paths and bodies: {ORG} {EVT} {SES} (made for the case,
 * ORG has 5 credits), {NEW} (a fresh unused id), {ID129} (an id one character
 * too long), {S201} (201 characters), {S501} (501 characters).
 */
#include "harness.h"

#include <criterion/parameterized.h>

#include <stdlib.h>
#include <string.h>

enum gen { GEN_NONE, GEN_DEEP, GEN_HUGE, GEN_HUGE_CHUNKED };

struct bad_case {
    const char *name;
    const char *method;
    const char *path;
    const char *ctype;   /* NULL: no Content-Type header */
    const char *body;    /* NULL: no body */
    size_t raw_len;      /* nonzero: body is raw bytes (may hold NUL), no placeholders */
    enum gen gen;        /* a generated body instead of .body */
    const char *idem;    /* Idempotency-Key: NULL none, "" empty, "LONG" 256 characters */
    long status;
    const char *slug;
    const char *field;   /* errors[] must name it (422) */
    const char *allow;   /* 405: methods the Allow header must list, space-separated */
};

#define J "application/json"
#define RAW(s) s, sizeof(s) - 1
#define REG(price) "{\"session_id\":\"{SES}\",\"user_id\":\"{NEW}\",\"organization_id\":\"{ORG}\"," \
                   "\"ticket_type\":\"standard\",\"price_paid\":" price "}"
#define VIEW(fields) "{\"event_id\":\"{NEW}\",\"event_type\":\"session_view\",\"user_id\":\"u_{NEW}\"" fields "}"
#define VIEWP ",\"payload\":{\"session_id\":\"{SES}\"}"

static struct bad_case cases[] = {
    /* malformed bodies: 400 */
    {"unterminated JSON", "POST", "/v1/organizations", J, "{\"name\":", 0, 0, NULL, 400, "malformed-json", NULL, NULL},
    {"truncated object", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":\"x\",\"credits\":1", 0, 0, NULL,
     400, "malformed-json", NULL, NULL},
    {"empty body", "POST", "/v1/organizations", J, "", 0, 0, NULL, 400, "malformed-json", NULL, NULL},
    {"no body at all", "POST", "/v1/registrations", J, NULL, 0, 0, NULL, 400, "malformed-json", NULL, NULL},
    {"trailing comma", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":\"x\",}", 0, 0, NULL, 400,
     "malformed-json", NULL, NULL},
    {"single quotes", "POST", "/v1/organizations", J, "{'id':'{NEW}','name':'x'}", 0, 0, NULL, 400,
     "malformed-json", NULL, NULL},
    {"trailing garbage", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":\"x\"} {\"name\":\"y\"}", 0, 0,
     NULL, 400, "malformed-json", NULL, NULL},
    {"invalid UTF-8", "POST", "/v1/organizations", J, RAW("{\"name\":\"caf\xc3\x28 \xff\xfe\"}"), 0, NULL, 400,
     "malformed-json", NULL, NULL},
    {"NUL byte in body", "POST", "/v1/organizations", J, RAW("{\"name\":\"a\0b\"}"), 0, NULL, 400, "malformed-json",
     NULL, NULL},
    {"nesting 100 deep", "POST", "/v1/analytics/events", J, NULL, 0, GEN_DEEP, NULL, 400, "malformed-json", NULL,
     NULL},
    {"malformed registration", "POST", "/v1/registrations", J, "{\"session_id\":\"{SES}\",", 0, 0, NULL, 400,
     "malformed-json", NULL, NULL},
    {"malformed top-up", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":}", 0, 0, NULL, 400,
     "malformed-json", NULL, NULL},
    {"malformed analytics", "POST", "/v1/analytics/events", J, "{\"batch\":[{]}", 0, 0, NULL, 400,
     "malformed-json", NULL, NULL},

    /* a member named twice (after unescaping), at any depth, in any body: 400 */
    {"org name twice", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":\"x\",\"name\":\"y\"}", 0, 0,
     NULL, 400, "malformed-json", NULL, NULL},
    {"org name twice, escaped", "POST", "/v1/organizations", J,
     "{\"id\":\"{NEW}\",\"name\":\"x\",\"n\\u0061me\":\"y\"}", 0, 0, NULL, 400, "malformed-json", NULL, NULL},
    {"top-up amount twice", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":1,\"amount\":1000}", 0, 0,
     NULL, 400, "malformed-json", NULL, NULL},
    {"registration price twice", "POST", "/v1/registrations", J,
     "{\"session_id\":\"{SES}\",\"user_id\":\"{NEW}\",\"organization_id\":\"{ORG}\",\"ticket_type\":\"vip\","
     "\"price_paid\":1,\"price_p\\u0061id\":-5}",
     0, 0, NULL, 400, "malformed-json", NULL, NULL},
    {"analytics payload twice, HTML", "POST", "/v1/analytics/events", J,
     VIEW(VIEWP ",\"pay\\u006coad\":\"<script>alert(1)</script>\""), 0, 0, NULL, 400, "malformed-json", NULL, NULL},
    {"analytics session_id twice in payload", "POST", "/v1/analytics/events", J,
     VIEW(",\"payload\":{\"session_id\":\"{SES}\",\"session_\\u0069d\":\"other\"}"), 0, 0, NULL, 400,
     "malformed-json", NULL, NULL},
    {"analytics user_id twice", "POST", "/v1/analytics/events", J,
     "{\"event_id\":\"{NEW}\",\"event_type\":\"page_view\",\"user_id\":\"u1\",\"user_id\":\"u2\",\"payload\":{}}", 0,
     0, NULL, 400, "malformed-json", NULL, NULL},
    {"batch envelope with a name twice deep", "POST", "/v1/analytics/events", J,
     "{\"batch\":[" VIEW(VIEWP) "," VIEW(",\"payload\":{\"a\":[{\"k\":1,\"k\":2}]}") "]}", 0, 0, NULL, 400,
     "malformed-json", NULL, NULL},
    {"batch twice", "POST", "/v1/analytics/events", J, "{\"batch\":[" VIEW(VIEWP) "],\"b\\u0061tch\":[]}", 0, 0,
     NULL, 400, "malformed-json", NULL, NULL},
    /* numbers RFC 8259 forbids (cJSON alone took them; jsonb refused the batch) */
    {"top-up amount 01", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":01}", 0, 0, NULL, 400,
     "malformed-json", NULL, NULL},
    {"analytics payload number 1.", "POST", "/v1/analytics/events", J, VIEW(",\"payload\":{\"x\":1.}"), 0, 0, NULL,
     400, "malformed-json", NULL, NULL},
    {"analytics payload number -.5", "POST", "/v1/analytics/events", J, VIEW(",\"payload\":{\"x\":-.5}"), 0, 0, NULL,
     400, "malformed-json", NULL, NULL},

    /* not JSON: 415 */
    {"text/plain", "POST", "/v1/organizations", "text/plain", "{\"id\":\"{NEW}\",\"name\":\"x\"}", 0, 0, NULL, 415,
     "unsupported-media-type", NULL, NULL},
    {"no Content-Type", "POST", "/v1/organizations", NULL, "{\"id\":\"{NEW}\",\"name\":\"x\"}", 0, 0, NULL, 415,
     "unsupported-media-type", NULL, NULL},
    {"form encoded", "POST", "/v1/organizations", "application/x-www-form-urlencoded", "id={NEW}&name=x", 0, 0, NULL,
     415, "unsupported-media-type", NULL, NULL},
    {"registration as text/plain", "POST", "/v1/registrations", "text/plain", REG("10"), 0, 0, NULL, 415,
     "unsupported-media-type", NULL, NULL},
    {"top-up as text/plain", "POST", "/v1/organizations/{ORG}/credits", "text/plain", "{\"amount\":5}", 0, 0, NULL,
     415, "unsupported-media-type", NULL, NULL},
    {"analytics as XML", "POST", "/v1/analytics/events", "application/xml", VIEW(VIEWP), 0, 0, NULL, 415,
     "unsupported-media-type", NULL, NULL},
    {"json-ish media type", "POST", "/v1/events", "application/jsonx",
     "{\"id\":\"{NEW}\",\"organization_id\":\"{ORG}\",\"name\":\"x\"}", 0, 0, NULL, 415, "unsupported-media-type",
     NULL, NULL},

    /* too large: 413 */
    {"body over 1 MiB", "POST", "/v1/organizations", J, NULL, 0, GEN_HUGE, NULL, 413, "payload-too-large", NULL,
     NULL},
    {"chunked body over 1 MiB", "POST", "/v1/analytics/events", J, NULL, 0, GEN_HUGE_CHUNKED, NULL, 413,
     "payload-too-large", NULL, NULL},

    /* organizations: 422 */
    {"org without name", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\"}", 0, 0, NULL, 422, "validation-failed",
     "name", NULL},
    {"org name is a number", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":5}", 0, 0, NULL, 422,
     "validation-failed", "name", NULL},
    {"org unknown field", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":\"x\",\"nmae\":\"y\"}", 0, 0,
     NULL, 422, "validation-failed", "nmae", NULL},
    {"org negative credits", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":\"x\",\"credits\":-1}", 0, 0,
     NULL, 422, "validation-failed", "credits", NULL},
    {"org credits 1.5", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":\"x\",\"credits\":1.5}", 0, 0,
     NULL, 422, "validation-failed", "credits", NULL},
    {"org credits 1e20", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":\"x\",\"credits\":1e20}", 0, 0,
     NULL, 422, "validation-failed", "credits", NULL},
    {"org credits over 1e9", "POST", "/v1/organizations", J,
     "{\"id\":\"{NEW}\",\"name\":\"x\",\"credits\":1000000001}", 0, 0, NULL, 422, "validation-failed", "credits",
     NULL},
    {"org credits as string", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":\"x\",\"credits\":\"5\"}",
     0, 0, NULL, 422, "validation-failed", "credits", NULL},
    {"org id with a space", "POST", "/v1/organizations", J, "{\"id\":\"a b\",\"name\":\"x\"}", 0, 0, NULL, 422,
     "validation-failed", "id", NULL},
    {"org id of 129 chars", "POST", "/v1/organizations", J, "{\"id\":\"{ID129}\",\"name\":\"x\"}", 0, 0, NULL, 422,
     "validation-failed", "id", NULL},
    {"org id empty", "POST", "/v1/organizations", J, "{\"id\":\"\",\"name\":\"x\"}", 0, 0, NULL, 422,
     "validation-failed", "id", NULL},
    {"org id not a string", "POST", "/v1/organizations", J, "{\"id\":42,\"name\":\"x\"}", 0, 0, NULL, 422,
     "validation-failed", "id", NULL},
    {"org name of 201 chars", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":\"{S201}\"}", 0, 0, NULL,
     422, "validation-failed", "name", NULL},
    {"org name empty", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":\"\"}", 0, 0, NULL, 422,
     "validation-failed", "name", NULL},
    {"org body is an array", "POST", "/v1/organizations", J, "[{\"id\":\"{NEW}\",\"name\":\"x\"}]", 0, 0, NULL, 422,
     "validation-failed", NULL, NULL},
    {"org body is null", "POST", "/v1/organizations", J, "null", 0, 0, NULL, 422, "validation-failed", NULL, NULL},

    /* top-ups: 422 / 404 / 400 */
    {"top-up amount 0", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":0}", 0, 0, NULL, 422,
     "validation-failed", "amount", NULL},
    {"top-up amount negative", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":-5}", 0, 0, NULL, 422,
     "validation-failed", "amount", NULL},
    {"top-up amount 1.5", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":1.5}", 0, 0, NULL, 422,
     "validation-failed", "amount", NULL},
    {"top-up amount over 1e9", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":1000000001}", 0, 0, NULL,
     422, "validation-failed", "amount", NULL},
    {"top-up amount 4.9999999999999999999", "POST", "/v1/organizations/{ORG}/credits", J,
     "{\"amount\":4.9999999999999999999}", 0, 0, NULL, 422, "validation-failed", "amount", NULL},
    {"top-up amount 5.0", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":5.0}", 0, 0, NULL, 422,
     "validation-failed", "amount", NULL},
    {"top-up amount 5e0", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":5e0}", 0, 0, NULL, 422,
     "validation-failed", "amount", NULL},
    {"top-up amount 1E2", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":1E2}", 0, 0, NULL, 422,
     "validation-failed", "amount", NULL},
    {"top-up amount 2^63", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":9223372036854775808}", 0, 0,
     NULL, 422, "validation-failed", "amount", NULL},
    {"top-up amount 1e-400", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":1e-400}", 0, 0, NULL, 422,
     "validation-failed", "amount", NULL},
    {"org credits 5.0", "POST", "/v1/organizations", J, "{\"id\":\"{NEW}\",\"name\":\"x\",\"credits\":5.0}", 0, 0,
     NULL, 422, "validation-failed", "credits", NULL},
    {"top-up without amount", "POST", "/v1/organizations/{ORG}/credits", J, "{\"reason\":\"x\"}", 0, 0, NULL, 422,
     "validation-failed", "amount", NULL},
    {"top-up reason of 501 chars", "POST", "/v1/organizations/{ORG}/credits", J,
     "{\"amount\":1,\"reason\":\"{S501}\"}", 0, 0, NULL, 422, "validation-failed", "reason", NULL},
    {"top-up unknown field", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":1,\"amonut\":2}", 0, 0, NULL,
     422, "validation-failed", "amonut", NULL},
    {"top-up of unknown org", "POST", "/v1/organizations/{NEW}/credits", J, "{\"amount\":1}", 0, 0, NULL, 404,
     "not-found", NULL, NULL},
    {"top-up Idempotency-Key empty", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":1}", 0, 0, "", 400,
     "invalid-header", NULL, NULL},
    {"top-up Idempotency-Key 256 chars", "POST", "/v1/organizations/{ORG}/credits", J, "{\"amount\":1}", 0, 0, "LONG",
     400, "invalid-header", NULL, NULL},
    {"registration Idempotency-Key 256 chars", "POST", "/v1/registrations", J, REG("10"), 0, 0, "LONG", 400,
     "invalid-header", NULL, NULL},

    /* events and sessions: 422 */
    {"event of unknown org", "POST", "/v1/events", J, "{\"id\":\"{NEW}\",\"organization_id\":\"{NEW}\",\"name\":\"x\"}",
     0, 0, NULL, 422, "validation-failed", "organization_id", NULL},
    {"event starts_at not a date", "POST", "/v1/events", J,
     "{\"id\":\"{NEW}\",\"organization_id\":\"{ORG}\",\"name\":\"x\",\"starts_at\":\"next tuesday\"}", 0, 0, NULL, 422,
     "validation-failed", "starts_at", NULL},
    {"event starts_at month 13", "POST", "/v1/events", J,
     "{\"id\":\"{NEW}\",\"organization_id\":\"{ORG}\",\"name\":\"x\",\"starts_at\":\"2026-13-01T10:00:00Z\"}", 0, 0,
     NULL, 422, "validation-failed", "starts_at", NULL},
    {"event starts_at without offset", "POST", "/v1/events", J,
     "{\"id\":\"{NEW}\",\"organization_id\":\"{ORG}\",\"name\":\"x\",\"starts_at\":\"2026-11-01T10:00:00\"}", 0, 0,
     NULL, 422, "validation-failed", "starts_at", NULL},
    {"event starts_at Feb 29 of 2026", "POST", "/v1/events", J,
     "{\"id\":\"{NEW}\",\"organization_id\":\"{ORG}\",\"name\":\"x\",\"starts_at\":\"2026-02-29T10:00:00Z\"}", 0, 0,
     NULL, 422, "validation-failed", "starts_at", NULL},
    {"event starts_at a number", "POST", "/v1/events", J,
     "{\"id\":\"{NEW}\",\"organization_id\":\"{ORG}\",\"name\":\"x\",\"starts_at\":1767225600}", 0, 0, NULL, 422,
     "validation-failed", "starts_at", NULL},
    {"event without name", "POST", "/v1/events", J, "{\"id\":\"{NEW}\",\"organization_id\":\"{ORG}\"}", 0, 0, NULL, 422,
     "validation-failed", "name", NULL},
    {"event id with a slash", "POST", "/v1/events", J,
     "{\"id\":\"a/b\",\"organization_id\":\"{ORG}\",\"name\":\"x\"}", 0, 0, NULL, 422, "validation-failed", "id", NULL},
    {"session of unknown event", "POST", "/v1/sessions", J,
     "{\"id\":\"{NEW}\",\"event_id\":\"{NEW}\",\"title\":\"t\",\"speaker_id\":\"s1\"}", 0, 0, NULL, 422,
     "validation-failed", "event_id", NULL},
    {"session speaker id with a space", "POST", "/v1/sessions", J,
     "{\"id\":\"{NEW}\",\"event_id\":\"{EVT}\",\"title\":\"t\",\"speaker_id\":\"a b\"}", 0, 0, NULL, 422,
     "validation-failed", "speaker_id", NULL},
    {"session without title", "POST", "/v1/sessions", J,
     "{\"id\":\"{NEW}\",\"event_id\":\"{EVT}\",\"speaker_id\":\"s1\"}", 0, 0, NULL, 422, "validation-failed", "title",
     NULL},
    {"session title of 201 chars", "POST", "/v1/sessions", J,
     "{\"id\":\"{NEW}\",\"event_id\":\"{EVT}\",\"title\":\"{S201}\",\"speaker_id\":\"s1\"}", 0, 0, NULL, 422,
     "validation-failed", "title", NULL},
    {"session unknown field", "POST", "/v1/sessions", J,
     "{\"id\":\"{NEW}\",\"event_id\":\"{EVT}\",\"title\":\"t\",\"speaker_id\":\"s1\",\"speaker\":\"s2\"}", 0, 0, NULL,
     422, "validation-failed", "speaker", NULL},

    /* registrations: 422 */
    {"price with 3 decimals", "POST", "/v1/registrations", J, REG("1.005"), 0, 0, NULL, 422, "validation-failed",
     "price_paid", NULL},
    {"price string with 3 decimals", "POST", "/v1/registrations", J, REG("\"1.005\""), 0, 0, NULL, 422,
     "validation-failed", "price_paid", NULL},
    {"negative price", "POST", "/v1/registrations", J, REG("-1"), 0, 0, NULL, 422, "validation-failed", "price_paid",
     NULL},
    {"price 4.9999999999999999999", "POST", "/v1/registrations", J, REG("4.9999999999999999999"), 0, 0, NULL, 422,
     "validation-failed", "price_paid", NULL},
    {"price -0", "POST", "/v1/registrations", J, REG("-0"), 0, 0, NULL, 422, "validation-failed", "price_paid", NULL},
    {"price -0.00", "POST", "/v1/registrations", J, REG("-0.00"), 0, 0, NULL, 422, "validation-failed", "price_paid",
     NULL},
    {"price -1e-15", "POST", "/v1/registrations", J, REG("-1e-15"), 0, 0, NULL, 422, "validation-failed",
     "price_paid", NULL},
    {"price 1e1", "POST", "/v1/registrations", J, REG("1e1"), 0, 0, NULL, 422, "validation-failed", "price_paid",
     NULL},
    {"price 1.500", "POST", "/v1/registrations", J, REG("1.500"), 0, 0, NULL, 422, "validation-failed", "price_paid",
     NULL},
    {"price string -0", "POST", "/v1/registrations", J, REG("\"-0\""), 0, 0, NULL, 422, "validation-failed",
     "price_paid", NULL},
    {"price not a number", "POST", "/v1/registrations", J, REG("\"abc\""), 0, 0, NULL, 422, "validation-failed",
     "price_paid", NULL},
    {"price too large", "POST", "/v1/registrations", J, REG("100000000"), 0, 0, NULL, 422, "validation-failed",
     "price_paid", NULL},
    {"price missing", "POST", "/v1/registrations", J,
     "{\"session_id\":\"{SES}\",\"user_id\":\"{NEW}\",\"organization_id\":\"{ORG}\",\"ticket_type\":\"standard\"}", 0, 0,
     NULL, 422, "validation-failed", "price_paid", NULL},
    {"ticket type with a space", "POST", "/v1/registrations", J,
     "{\"session_id\":\"{SES}\",\"user_id\":\"{NEW}\",\"organization_id\":\"{ORG}\",\"ticket_type\":\"early bird\","
     "\"price_paid\":1}",
     0, 0, NULL, 422, "validation-failed", "ticket_type", NULL},
    {"registration without user", "POST", "/v1/registrations", J,
     "{\"session_id\":\"{SES}\",\"organization_id\":\"{ORG}\",\"ticket_type\":\"standard\",\"price_paid\":1}", 0, 0,
     NULL, 422, "validation-failed", "user_id", NULL},
    {"registration user is a number", "POST", "/v1/registrations", J,
     "{\"session_id\":\"{SES}\",\"user_id\":7,\"organization_id\":\"{ORG}\",\"ticket_type\":\"standard\","
     "\"price_paid\":1}",
     0, 0, NULL, 422, "validation-failed", "user_id", NULL},
    {"registration of unknown session", "POST", "/v1/registrations", J,
     "{\"session_id\":\"{NEW}\",\"user_id\":\"{NEW}\",\"organization_id\":\"{ORG}\",\"ticket_type\":\"standard\","
     "\"price_paid\":1}",
     0, 0, NULL, 422, "validation-failed", "session_id", NULL},
    {"registration unknown field", "POST", "/v1/registrations", J,
     "{\"session_id\":\"{SES}\",\"user_id\":\"{NEW}\",\"organization_id\":\"{ORG}\",\"ticket_type\":\"standard\","
     "\"price_paid\":1,\"coupon\":\"FREE\"}",
     0, 0, NULL, 422, "validation-failed", "coupon", NULL},

    /* analytics: 422 */
    {"event_type Bad-Type", "POST", "/v1/analytics/events", J,
     "{\"event_id\":\"{NEW}\",\"event_type\":\"Bad-Type\",\"user_id\":\"u1\",\"payload\":{}}", 0, 0, NULL, 422,
     "validation-failed", "event_type", NULL},
    {"event_type of 65 chars", "POST", "/v1/analytics/events", J,
     "{\"event_id\":\"{NEW}\",\"event_type\":\"a1234567890123456789012345678901234567890123456789012345678901234\","
     "\"user_id\":\"u1\",\"payload\":{}}",
     0, 0, NULL, 422, "validation-failed", "event_type", NULL},
    {"payload a string", "POST", "/v1/analytics/events", J, VIEW(",\"payload\":\"{SES}\""), 0, 0, NULL, 422,
     "validation-failed", "payload", NULL},
    {"payload an array", "POST", "/v1/analytics/events", J, VIEW(",\"payload\":[\"{SES}\"]"), 0, 0, NULL, 422,
     "validation-failed", "payload", NULL},
    {"payload missing", "POST", "/v1/analytics/events", J, VIEW(""), 0, 0, NULL, 422, "validation-failed", "payload",
     NULL},
    {"analytics without user", "POST", "/v1/analytics/events", J,
     "{\"event_id\":\"{NEW}\",\"event_type\":\"session_view\",\"payload\":{\"session_id\":\"{SES}\"}}", 0, 0, NULL,
     422, "validation-failed", "user_id", NULL},
    {"analytics event_id with a space", "POST", "/v1/analytics/events", J,
     "{\"event_id\":\"a b\",\"event_type\":\"session_view\",\"user_id\":\"u1\",\"payload\":{\"session_id\":\"{SES}\"}}",
     0, 0, NULL, 422, "validation-failed", "event_id", NULL},
    {"analytics occurred_at not a date", "POST", "/v1/analytics/events", J,
     VIEW(",\"occurred_at\":\"yesterday\"" VIEWP), 0, 0, NULL, 422, "validation-failed", "occurred_at", NULL},
    {"analytics occurred_at Feb 30", "POST", "/v1/analytics/events", J,
     VIEW(",\"occurred_at\":\"2026-02-30T00:00:00Z\"" VIEWP), 0, 0, NULL, 422, "validation-failed", "occurred_at",
     NULL},
    {"analytics occurred_at year 0000", "POST", "/v1/analytics/events", J,
     VIEW(",\"occurred_at\":\"0000-01-01T00:00:00Z\"" VIEWP), 0, 0, NULL, 422, "validation-failed", "occurred_at",
     NULL},
    {"analytics occurred_at offset +16:00", "POST", "/v1/analytics/events", J,
     VIEW(",\"occurred_at\":\"2026-01-01T00:00:00+16:00\"" VIEWP), 0, 0, NULL, 422, "validation-failed",
     "occurred_at", NULL},
    {"analytics occurred_at past 24:00", "POST", "/v1/analytics/events", J,
     VIEW(",\"occurred_at\":\"2026-12-31T23:59:60.5Z\"" VIEWP), 0, 0, NULL, 422, "validation-failed",
     "occurred_at", NULL},
    {"analytics payload 1e-70000", "POST", "/v1/analytics/events", J,
     VIEW(",\"payload\":{\"session_id\":\"{SES}\",\"x\":1e-70000}"), 0, 0, NULL, 422, "validation-failed", "payload",
     NULL},
    {"analytics payload 1e1000000", "POST", "/v1/analytics/events", J,
     VIEW(",\"payload\":{\"x\":[{\"y\":1e1000000}]}"), 0, 0, NULL, 422, "validation-failed", "payload", NULL},
    {"analytics unknown field", "POST", "/v1/analytics/events", J, VIEW(",\"evnet_type\":\"x\"" VIEWP), 0, 0, NULL,
     422, "validation-failed", "evnet_type", NULL},
    {"session_view with bad session id", "POST", "/v1/analytics/events", J,
     VIEW(",\"payload\":{\"session_id\":\"a b\"}"), 0, 0, NULL, 422, "validation-failed", NULL, NULL},
    {"session_view with numeric speaker", "POST", "/v1/analytics/events", J,
     VIEW(",\"payload\":{\"session_id\":\"{SES}\",\"speaker_id\":9}"), 0, 0, NULL, 422, "validation-failed", NULL,
     NULL},
    {"empty batch", "POST", "/v1/analytics/events", J, "{\"batch\":[]}", 0, 0, NULL, 422, "validation-failed", "batch",
     NULL},

    /* routing: 404 and 405 */
    {"unknown path", "GET", "/v1/nope", NULL, NULL, 0, 0, NULL, 404, "not-found", NULL, NULL},
    {"unknown top-level path", "POST", "/nope", J, "{}", 0, 0, NULL, 404, "not-found", NULL, NULL},
    {"unknown sub-resource", "GET", "/v1/organizations/{ORG}/nope", NULL, NULL, 0, 0, NULL, 404, "not-found", NULL,
     NULL},
    {"invalid id in path", "GET", "/v1/organizations/a%20b", NULL, NULL, 0, 0, NULL, 404, "not-found", NULL, NULL},
    {"unknown organization", "GET", "/v1/organizations/{NEW}", NULL, NULL, 0, 0, NULL, 404, "not-found", NULL, NULL},
    {"unknown event", "GET", "/v1/events/{NEW}", NULL, NULL, 0, 0, NULL, 404, "not-found", NULL, NULL},
    {"unknown session", "GET", "/v1/sessions/{NEW}", NULL, NULL, 0, 0, NULL, 404, "not-found", NULL, NULL},
    {"unknown registration", "GET", "/v1/registrations/{NEW}", NULL, NULL, 0, 0, NULL, 404, "not-found", NULL, NULL},
    {"DELETE organizations", "DELETE", "/v1/organizations", NULL, NULL, 0, 0, NULL, 405, "method-not-allowed", NULL,
     "POST"},
    {"PUT organization", "PUT", "/v1/organizations/{ORG}", J, "{\"name\":\"x\"}", 0, 0, NULL, 405,
     "method-not-allowed", NULL, "GET"},
    {"DELETE organization", "DELETE", "/v1/organizations/{ORG}", NULL, NULL, 0, 0, NULL, 405, "method-not-allowed",
     NULL, "GET"},
    {"PUT credits", "PUT", "/v1/organizations/{ORG}/credits", J, "{\"amount\":1}", 0, 0, NULL, 405,
     "method-not-allowed", NULL, "GET POST"},
    {"GET registrations", "GET", "/v1/registrations", NULL, NULL, 0, 0, NULL, 405, "method-not-allowed", NULL, "POST"},
    {"POST event", "POST", "/v1/events/{EVT}", J, "{}", 0, 0, NULL, 405, "method-not-allowed", NULL, "GET"},
    {"PATCH session", "PATCH", "/v1/sessions/{SES}", J, "{\"title\":\"x\"}", 0, 0, NULL, 405, "method-not-allowed",
     NULL, "GET"},
    {"PUT analytics", "PUT", "/v1/analytics/events", J, "{}", 0, 0, NULL, 405, "method-not-allowed", NULL,
     "GET POST"},
    {"DELETE leaderboard", "DELETE", "/v1/events/{EVT}/leaderboard", NULL, NULL, 0, 0, NULL, 405,
     "method-not-allowed", NULL, "GET"},
    {"POST healthz", "POST", "/healthz", J, "{}", 0, 0, NULL, 405, "method-not-allowed", NULL, "GET"},
    {"POST metrics", "POST", "/metrics", J, "{}", 0, 0, NULL, 405, "method-not-allowed", NULL, "GET"},
};

#define NCASES (sizeof cases / sizeof cases[0])

/* The runner copies parameters into a re-executed worker whose addresses
 * differ (ASLR), so a parameter must hold no pointer: it is the case index. */
ParameterizedTestParameters(bad_inputs, change_nothing)
{
    static size_t index[NCASES];
    for (size_t i = 0; i < NCASES; i++)
        index[i] = i;
    return cr_make_param_array(size_t, index, NCASES);
}

TestSuite(bad_inputs, .init = it_setup_exclusive, .timeout = 120);

static char *replace_all(char *s, const char *token, const char *value)
{
    char *p;
    while ((p = strstr(s, token)) != NULL) {
        char *next = fmt("%.*s%s%s", (int)(p - s), s, value, p + strlen(token));
        free(s);
        s = next;
    }
    return s;
}

struct ctx {
    char *org, *evt, *ses;
};

static char *expand(const char *tpl, const struct ctx *c)
{
    char *s = fmt("%s", tpl);
    s = replace_all(s, "{ORG}", c->org);
    s = replace_all(s, "{EVT}", c->evt);
    s = replace_all(s, "{SES}", c->ses);
    char *id129 = repeat_char('i', 129), *s201 = repeat_char('n', 201), *s501 = repeat_char('r', 501);
    s = replace_all(s, "{ID129}", id129);
    s = replace_all(s, "{S201}", s201);
    s = replace_all(s, "{S501}", s501);
    char *p;
    while ((p = strstr(s, "{NEW}")) != NULL) { /* each {NEW} the same fresh id */
        char *id = it_id("new");
        s = replace_all(s, "{NEW}", id);
        free(id);
        (void)p;
    }
    free(id129);
    free(s201);
    free(s501);
    return s;
}

/* Idempotency records older than the cutoff are left out: a sweeper may
 * delete expired ones at any time, which is no change a request made. */
static char *snapshot(void)
{
    static char *cutoff;
    if (!cutoff)
        cutoff = pg_text("SELECT (now() - interval '1 hour')::text", NULL);
    char *pg = pg_text("SELECT concat_ws(' ', "
                       "'organizations=' || (SELECT count(*) FROM organizations), "
                       "'credits=' || (SELECT COALESCE(sum(credits), 0) FROM credit_buckets), "
                       "'events=' || (SELECT count(*) FROM events), "
                       "'sessions=' || (SELECT count(*) FROM sessions), "
                       "'registrations=' || (SELECT count(*) FROM registrations), "
                       "'credit_ledger=' || (SELECT count(*) FROM credit_ledger), "
                       "'analytics_events=' || (SELECT count(*) FROM analytics_events), "
                       "'idempotency_keys=' || (SELECT count(*) FROM idempotency_keys "
                       "WHERE created_at > $1::timestamptz))",
                       PG_PARAMS(cutoff));
    /* Rate-limit counters come and go on their own (they expire), so they are
     * left out: every other key of the test db is counted. */
    static const char *const count_keys =
        "local n = 0 "
        "for _, k in ipairs(redis.call('KEYS', '*')) do "
        "  if string.sub(k, 1, 14) ~= 'eventtrack:rl:' then n = n + 1 end "
        "end return n";
    char *s = fmt("%s redis_keys=%lld", pg, redis_ll("EVAL %s 0", count_keys));
    free(pg);
    return s;
}

static char *generated_body(enum gen g, size_t *len)
{
    char *s = NULL;
    if (g == GEN_DEEP) {
        char *open = repeat_char('[', 100), *close = repeat_char(']', 100);
        s = fmt("{\"event_type\":\"page_view\",\"user_id\":\"u1\",\"payload\":{\"x\":%s%s}}", open, close);
        free(open);
        free(close);
    } else if (g == GEN_HUGE || g == GEN_HUGE_CHUNKED) {
        char *fill = repeat_char('a', 1024 * 1024 + 100);
        s = fmt("{\"name\":\"%s\"}", fill);
        free(fill);
    }
    *len = s ? strlen(s) : 0;
    return s;
}

ParameterizedTest(size_t *index, bad_inputs, change_nothing)
{
    const struct bad_case *c = &cases[*index];
    struct ctx x;
    x.org = make_org(5);
    x.evt = make_event(x.org);
    x.ses = make_session(x.evt, it_id("spk"));

    char *path = expand(c->path, &x);
    size_t len = 0;
    char *body = NULL;
    if (c->gen != GEN_NONE)
        body = generated_body(c->gen, &len);
    else if (c->raw_len) {
        body = malloc(c->raw_len + 1);
        memcpy(body, c->body, c->raw_len);
        body[c->raw_len] = '\0';
        len = c->raw_len;
    } else if (c->body) {
        body = expand(c->body, &x);
        len = strlen(body);
    }
    char *long_key = repeat_char('k', 256);
    const char *idem = c->idem && strcmp(c->idem, "LONG") == 0 ? long_key : c->idem;
    struct http_req rq = {.method = c->method, .path = path, .content_type = c->ctype, .body = body,
                          .len = len, .idem_key = idem, .chunked = c->gen == GEN_HUGE_CHUNKED};

    char *before = snapshot();
    struct http_resp *r = http_do(&rq);
    char *after = snapshot();

    cr_assert(r->status == c->status, "[%s] %s\n  expected %ld %s, got %ld%s%s: %.600s", c->name, r->what, c->status,
              c->slug, r->status, r->status ? "" : " transfer error ", r->status ? "" : r->error, r->body);
    const char *m = check_problem(r, c->status, c->slug, c->field);
    cr_assert(m == NULL, "[%s] %s", c->name, m);
    if (c->allow) {
        char *want = fmt("%s", c->allow);
        char *save = NULL;
        for (char *meth = strtok_r(want, " ", &save); meth; meth = strtok_r(NULL, " ", &save)) {
            bool listed = false;
            if (r->allow) {
                char *allow = fmt("%s", r->allow), *s2 = NULL;
                for (char *t = strtok_r(allow, ", ", &s2); t; t = strtok_r(NULL, ", ", &s2))
                    if (strcmp(t, meth) == 0)
                        listed = true;
                free(allow);
            }
            cr_assert(listed, "[%s] %s: Allow must list %s, got %s", c->name, r->what, meth,
                      r->allow ? r->allow : "(no Allow header)");
        }
        cr_assert(!r->allow || !strstr(r->allow, c->method), "[%s] Allow lists the refused method: %s", c->name,
                  r->allow);
        free(want);
    }
    cr_assert_str_eq(after, before, "[%s] %s changed the stores:\n  before: %s\n  after:  %s", c->name, r->what,
                     before, after);
    cr_assert_eq(pg_ll("SELECT balance FROM organization_balances WHERE organization_id = $1", PG_PARAMS(x.org)), 5,
                 "[%s] the case's organization balance moved", c->name);
}
