/*
 * http/response.c - response builders and THE error table.
 *
 * Every error any layer reports becomes an HTTP status and an RFC 9457
 * problem document here and nowhere else. The table is indexed by et_err; a
 * handler may refine the problem type (`slug`) but never the status, so the
 * same kind of failure always answers the same way.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "http/http.h"
#include "json/writer.h"

static const struct {
    int status;
    const char *slug;        /* default problem type: /problems/<slug> */
    const char *title;
    int retry_after;         /* seconds, 0: none */
} error_table[ET_ERR__COUNT] = {
    [ET_OK]              = {200, "ok", "OK", 0},
    [ET_ERR_MALFORMED]   = {400, "malformed-json", "Malformed request", 0},
    [ET_ERR_BAD_HEADER]  = {400, "invalid-header", "Invalid header", 0},
    [ET_ERR_INVALID]     = {422, "validation-failed", "Validation failed", 0},
    [ET_ERR_NOT_FOUND]   = {404, "not-found", "Not found", 0},
    [ET_ERR_CONFLICT]    = {409, "conflict", "Conflict", 0},
    [ET_ERR_UNAUTHORIZED] = {401, "unauthorized", "Unauthorized", 0},
    [ET_ERR_FORBIDDEN]   = {403, "forbidden", "Forbidden", 0},
    [ET_ERR_RATE_LIMITED] = {429, "rate-limited", "Too many requests", 1},
    [ET_ERR_NO_CREDIT]   = {402, "insufficient-credits", "Insufficient credits", 0},
    [ET_ERR_METHOD]      = {405, "method-not-allowed", "Method not allowed", 0},
    [ET_ERR_MEDIA_TYPE]  = {415, "unsupported-media-type", "Unsupported media type", 0},
    [ET_ERR_TOO_LARGE]   = {413, "payload-too-large", "Payload too large", 0},
    [ET_ERR_UNAVAILABLE] = {503, "store-unavailable", "Service unavailable", 1},
    [ET_ERR_INTERNAL]    = {500, "internal-error", "Internal server error", 0},
    [ET_ERR_NOT_IMPLEMENTED] = {501, "unsupported-transfer-coding", "Not implemented", 0},
};

/* Titles of the refined problem types: a title names the type, not the status. */
static const struct {
    const char *slug;
    const char *title;
} refined_titles[] = {
    {"already-registered", "Already registered"},
    {"already-exists", "Already exists"},
    {"event-id-conflict", "Event id conflict"},
    {"idempotency-key-reused", "Idempotency key reused"},
    {"idempotency-key-in-progress", "Request with this key in progress"},
    {"invalid-query", "Invalid query parameter"},
    {"invalid-token", "Invalid credentials"},
    {"invalid-framing", "Invalid message framing"},
    {"server-busy", "Server busy"},
    {"registration-cancelled", "Registration already cancelled"},
    {"invalid-cursor", "Invalid cursor"},
};

static const char *problem_title(enum et_err err, const char *slug)
{
    for (size_t i = 0; slug && i < sizeof refined_titles / sizeof refined_titles[0]; i++)
        if (strcmp(slug, refined_titles[i].slug) == 0)
            return refined_titles[i].title;
    return error_table[err].title;
}

void respond_bytes(struct response *res, int status, const char *content_type, const void *data,
                   size_t len)
{
    buf_free(&res->body);
    res->status = status;
    res->content_type = content_type;
    buf_append(&res->body, data, len);
}

/* FNV-1a, 64 bits: a change of a single byte changes the tag; it is a cache
 * validator, not a security boundary. */
void respond_etag(struct response *res)
{
    uint64_t h = 0xcbf29ce484222325u;

    for (size_t i = 0; i < res->body.len; i++) {
        h ^= (unsigned char)res->body.data[i];
        h *= 0x100000001b3u;
    }
    snprintf(res->etag, sizeof res->etag, "\"%016llx\"", (unsigned long long)h);
}

int http_status_of(enum et_err err)
{
    return err < ET_ERR__COUNT ? error_table[err].status : 500;
}

struct jw *respond_json(struct response *res, int status)
{
    buf_free(&res->body);
    res->status = status;
    res->content_type = "application/json";
    jw_init(&res->json, &res->body);
    return &res->json;
}

void respond_problem(struct response *res, const struct problem *p)
{
    enum et_err err = p->err < ET_ERR__COUNT && p->err != ET_OK ? p->err : ET_ERR_INTERNAL;
    struct jw *w = respond_json(res, error_table[err].status);
    char type[96];

    res->content_type = "application/problem+json";
    res->retry_after = p->retry_after > 0 ? p->retry_after : error_table[err].retry_after;
    /* RFC 6750: a 401 names the scheme, and says when a token was refused. */
    if (err == ET_ERR_UNAUTHORIZED)
        res->www_authenticate = p->slug && strcmp(p->slug, "invalid-token") == 0
                                    ? "Bearer realm=\"eventtrack\", error=\"invalid_token\""
                                    : "Bearer realm=\"eventtrack\"";
    snprintf(type, sizeof type, "/problems/%s", p->slug ? p->slug : error_table[err].slug);
    jw_object_begin(w);
    jw_key(w, "type");   jw_string(w, type);
    jw_key(w, "title");  jw_string(w, problem_title(err, p->slug));
    jw_key(w, "status"); jw_int(w, error_table[err].status);
    jw_key(w, "detail"); jw_string(w, p->detail[0] ? p->detail : problem_title(err, p->slug));
    if (p->nfields > 0) {
        jw_key(w, "errors");
        jw_array_begin(w);
        for (size_t i = 0; i < p->nfields; i++) {
            jw_object_begin(w);
            jw_key(w, "field");   jw_string(w, p->fields[i].field);
            jw_key(w, "message"); jw_string(w, p->fields[i].message);
            jw_object_end(w);
        }
        jw_array_end(w);
    }
    jw_object_end(w);
}

void respond_error(struct response *res, enum et_err err, const char *slug, const char *fmt, ...)
{
    struct problem p = {.err = err, .slug = slug};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p.detail, sizeof p.detail, fmt, ap);
    va_end(ap);
    utf8_trim_partial(p.detail);
    respond_problem(res, &p);
}
