/*
 * routes/analytics_query.c - GET /v1/analytics/events and /v1/analytics/counts.
 *
 * Both read the caller's organization's log (the admin: every
 * organization's). Filters are validated whole before any SQL runs, each
 * bad one answering 400 invalid-query: event_type by its ingest syntax,
 * user_id as an id, since/until as RFC 3339 (since inclusive, until
 * exclusive, since < until), payload as a JSON object (the same strict
 * parser as bodies: a repeated member name is refused, docs/adr/0010).
 * Counts need since and until at most 31 days apart, and at most
 * COUNTS_BUCKETS_MAX buckets (a week of minutes), so one answer stays under
 * a megabyte. The list's cursor is bound to a hash of the filters
 * (cursor.h): another filter's cursor is 400 invalid-cursor.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cursor.h"
#include "http/router.h"
#include "ids.h"
#include "json/canonical.h"
#include "json/read.h"
#include "json/writer.h"
#include "routes/routes.h"
#include "store/store.h"

#define PAYLOAD_FILTER_MAX 4096
#define WINDOW_DAYS_MAX 31
#define COUNTS_BUCKETS_MAX 10080

struct query_args {
    struct analytics_filter f;
    char event_type[EVENT_TYPE_MAX + 1];
    char user_id[ID_MAX + 1];
    char since[TIMESTAMP_BYTES], until[TIMESTAMP_BYTES];
    char payload_text[PAYLOAD_FILTER_MAX + 1];
    struct buf payload;            /* canonical JSON of the payload filter */
    double since_s, until_s;       /* seconds since the epoch, for the window rules */
};

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

/* Seconds since the epoch of an rfc3339_valid() text. */
static double rfc3339_seconds(const char *s)
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    double frac = 0;
    const char *z = s + 19;

    sscanf(s, "%4d-%2d-%2d%*c%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec);
    if (*z == '.') {
        frac = strtod(z, NULL);
        for (z++; *z >= '0' && *z <= '9'; z++)
            ;
    }
    if (*z == '+' || *z == '-') {
        sscanf(z + 1, "%2d:%2d", &oh, &om);
        if (*z == '-')
            oh = -oh, om = -om;
    }
    return (double)days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400.0 + h * 3600.0 +
           mi * 60.0 + sec + frac - oh * 3600.0 - om * 60.0;
}

/* One optional text parameter; false (with *why) when present but invalid. */
static bool text_param(const char *query, const char *name, char *out, size_t size,
                       const char **set, bool (*valid)(const char *), const char **why)
{
    switch (query_get(query, name, out, size)) {
    case QUERY_ABSENT:  return true;
    case QUERY_INVALID: break;
    case QUERY_FOUND:
        if (valid(out)) {
            *set = out;
            return true;
        }
        break;
    }
    *why = name;
    return false;
}

static bool user_id_ok(const char *s) { return id_valid(s, strlen(s)); }

/* The payload filter: a JSON object, stored canonical. */
static bool payload_param(const char *query, struct query_args *a)
{
    struct problem p = {0};

    switch (query_get(query, "payload", a->payload_text, sizeof a->payload_text)) {
    case QUERY_ABSENT:  return true;
    case QUERY_INVALID: return false;
    case QUERY_FOUND:   break;
    }
    if (json_canonical(a->payload_text, strlen(a->payload_text), &a->payload, &p) != ET_OK ||
        a->payload.data == NULL || a->payload.data[0] != '{')
        return false;
    a->f.payload = a->payload.data;
    return true;
}

/* Every filter; false after answering 400. */
static bool query_args_parse(struct request *req, struct response *res, struct query_args *a)
{
    const char *why = NULL;

    memset(a, 0, sizeof *a);
    a->payload = (struct buf)BUF_INIT;
    a->f.tenant = req_tenant(req);
    if (!text_param(req->query, "event_type", a->event_type, sizeof a->event_type,
                    &a->f.event_type, event_type_valid, &why) ||
        !text_param(req->query, "user_id", a->user_id, sizeof a->user_id, &a->f.user_id,
                    user_id_ok, &why) ||
        !text_param(req->query, "since", a->since, sizeof a->since, &a->f.since, rfc3339_valid,
                    &why) ||
        !text_param(req->query, "until", a->until, sizeof a->until, &a->f.until, rfc3339_valid,
                    &why)) {
        respond_error(res, ET_ERR_MALFORMED, PT_INVALID_QUERY, "%s is not valid", why);
        return false;
    }
    if (!payload_param(req->query, a)) {
        respond_error(res, ET_ERR_MALFORMED, PT_INVALID_QUERY,
                      "payload must be a URL-encoded JSON object of at most %d bytes",
                      PAYLOAD_FILTER_MAX);
        return false;
    }
    a->since_s = a->f.since ? rfc3339_seconds(a->f.since) : 0;
    a->until_s = a->f.until ? rfc3339_seconds(a->f.until) : 0;
    if (a->f.since && a->f.until && a->since_s >= a->until_s) {
        respond_error(res, ET_ERR_MALFORMED, PT_INVALID_QUERY, "since must be before until");
        return false;
    }
    return true;
}

static void encode_analytics_row(struct jw *w, const struct analytics_row *r)
{
    jw_object_begin(w);
    jw_key(w, "event_id");    jw_string(w, r->event_id);
    jw_key(w, "event_type");  jw_string(w, r->event_type);
    jw_key(w, "user_id");     jw_string(w, r->user_id);
    jw_key(w, "occurred_at"); jw_string(w, r->occurred_at);
    jw_key(w, "payload");     jw_raw(w, r->payload);      /* jsonb's own text: valid JSON */
    jw_key(w, "received_at"); jw_string(w, r->received_at);
    jw_object_end(w);
}

/* The cursor's binding: the filters, hashed (a payload may be long). */
static void filter_digest(const struct query_args *a, char hex[65])
{
    struct buf all = BUF_INIT;
    uint8_t d[32];

    buf_printf(&all, "t=%s\037u=%s\037s=%s\037e=%s\037p=%s", a->f.event_type ? a->f.event_type : "",
               a->f.user_id ? a->f.user_id : "", a->f.since ? a->f.since : "",
               a->f.until ? a->f.until : "", a->f.payload ? a->f.payload : "");
    cursor_sha256(all.data ? all.data : "", all.len, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    buf_free(&all);
}

void api_analytics_list(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct query_args a;
    struct analytics_row *rows = NULL;
    char digest[65], key[CURSOR_KEY_MAX + 1], id[24];
    long long limit;
    size_t n = 0;
    bool more = false, after;

    if (!query_args_parse(req, res, &a))
        goto done;
    if (!list_limit_parse(req->query, &limit)) {
        respond_error(res, ET_ERR_MALFORMED, PT_INVALID_QUERY,
                      "limit must be an integer from 1 to %d", LIST_LIMIT_MAX);
        goto done;
    }
    filter_digest(&a, digest);
    struct cursor_scope scope = {"analytics", a.f.tenant ? a.f.tenant : "", digest};
    if (!list_cursor_parse(req, res, &scope, key, id, sizeof id, &after))
        goto done;
    if ((rows = rows_alloc((size_t)limit, sizeof *rows, &p)) == NULL ||
        analytics_list(req->store, &a.f, after ? key : NULL, after ? id : NULL, limit, rows, &n, &more,
                       &p) != ET_OK) {
        respond_problem(res, &p);
        goto done;
    }
    struct jw *w = list_page_begin(res);
    for (size_t i = 0; i < n; i++)
        encode_analytics_row(w, &rows[i]);
    list_page_end(req, w, &scope, more && n > 0, n > 0 ? rows[n - 1].occurred_at : "",
                  n > 0 ? rows[n - 1].seq : "");
done:
    analytics_rows_free(rows, n);
    free(rows);
    buf_free(&a.payload);
}

/* bucket: minute, hour or day (default hour); its length in seconds, 0 if invalid. */
static double bucket_param(const char *query, char *bucket, size_t size)
{
    static const struct { const char *name; double seconds; } buckets[] = {
        {"minute", 60}, {"hour", 3600}, {"day", 86400}};

    switch (query_get(query, "bucket", bucket, size)) {
    case QUERY_ABSENT:
        snprintf(bucket, size, "hour");
        return 3600;
    case QUERY_INVALID:
        return 0;
    case QUERY_FOUND:
        break;
    }
    for (size_t i = 0; i < sizeof buckets / sizeof buckets[0]; i++)
        if (strcmp(bucket, buckets[i].name) == 0)
            return buckets[i].seconds;
    return 0;
}

void api_analytics_counts(struct request *req, struct response *res)
{
    struct problem p = {0};
    struct query_args a;
    struct analytics_bucket *out = NULL;
    char bucket[8];
    double seconds;
    size_t n = 0, max;

    if (!query_args_parse(req, res, &a))
        goto done;
    if ((seconds = bucket_param(req->query, bucket, sizeof bucket)) == 0) {
        respond_error(res, ET_ERR_MALFORMED, PT_INVALID_QUERY, "bucket must be minute, hour or day");
        goto done;
    }
    if (!a.f.since || !a.f.until || a.until_s - a.since_s > WINDOW_DAYS_MAX * 86400.0) {
        respond_error(res, ET_ERR_MALFORMED, PT_INVALID_QUERY,
                      "since and until are required, at most %d days apart", WINDOW_DAYS_MAX);
        goto done;
    }
    /* Aligned buckets: the window may touch one more than its length holds. */
    max = (size_t)((a.until_s - a.since_s) / seconds) + 2;
    if (max > COUNTS_BUCKETS_MAX + 2) {
        respond_error(res, ET_ERR_MALFORMED, PT_INVALID_QUERY,
                      "at most %d buckets: choose a larger bucket or a shorter window",
                      COUNTS_BUCKETS_MAX);
        goto done;
    }
    if ((out = rows_alloc(max, sizeof *out, &p)) == NULL ||
        analytics_counts(req->store, &a.f, bucket, out, max, &n, &p) != ET_OK) {
        respond_problem(res, &p);
        goto done;
    }
    struct jw *w = respond_json(res, 200);
    jw_object_begin(w);
    jw_key(w, "bucket");
    jw_string(w, bucket);
    jw_key(w, "items");
    jw_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        jw_object_begin(w);
        jw_key(w, "start"); jw_string(w, out[i].start);
        jw_key(w, "count"); jw_int(w, out[i].count);
        jw_object_end(w);
    }
    jw_array_end(w);
    jw_key(w, "next_cursor");      /* every list's shape; a window is one page */
    jw_null(w);
    jw_object_end(w);
done:
    free(out);
    buf_free(&a.payload);
}
